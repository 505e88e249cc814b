//! Rule 1: the author's test scripts and build leftovers are erased.

use super::{Judgement, fail, files, list, pass};
use crate::facts::{Facts, FileKind, OfflineFacts};

/// `scripts.none`: no file matches the test-script patterns.
pub(super) fn no_test_scripts(f: &OfflineFacts, _: &Facts) -> Judgement {
    if f.test_scripts.is_empty() {
        pass("no file matches the test-script patterns")
    } else {
        fail(format!("leftover: {}", list(&f.test_scripts)))
    }
}

/// `leftovers.unowned`: no file outside the installed packages where builds leave them.
pub(super) fn unowned(f: &OfflineFacts, _: &Facts) -> Judgement {
    let clean = match &f.package_db {
        Some(db) => format!(
            "every file in /root, /home, /usr/local, /opt, /srv is owned by a package ({db}), \
             allowed or a skeleton copy"
        ),
        None => "no package database: judged by type, and no script or program is in /root, \
                 /home, /tmp or /var/tmp (see also scripts.none)"
            .to_string(),
    };
    files(f, FileKind::Unowned, &clean)
}
