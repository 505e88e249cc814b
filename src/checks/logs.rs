//! Rule 3: logs and usage information are cleared before the image is published.

use super::{Judgement, fail, list, pass};
use crate::facts::{Facts, OfflineFacts};

/// `logs.clean`: logs, login records and shell histories are empty in the image.
pub(super) fn clean(f: &OfflineFacts, _: &Facts) -> Judgement {
    if f.dirty_logs.is_empty() {
        pass("logs and histories empty")
    } else {
        fail(format!("not empty: {}", list(&f.dirty_logs)))
    }
}
