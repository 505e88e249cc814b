//! Rule 1: the author's test scripts and build leftovers are erased.

use super::{Judgement, fail, list, pass};
use crate::facts::{Facts, OfflineFacts};

/// `scripts.none`: no file matches the test-script patterns.
pub(super) fn no_test_scripts(f: &OfflineFacts, _: &Facts) -> Judgement {
    if f.test_scripts.is_empty() {
        pass("no file matches the test-script patterns")
    } else {
        fail(format!("leftover: {}", list(&f.test_scripts)))
    }
}
