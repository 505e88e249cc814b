//! Rule 3: logs and usage information are cleared before the image is published.

use super::{Judgement, fail, files, list, pass};
use crate::facts::{Facts, FileKind, OfflineFacts};
use crate::units::human;

/// `logs.clean`: logs, login records and shell histories are empty in the image.
pub(super) fn clean(f: &OfflineFacts, _: &Facts) -> Judgement {
    if f.dirty_logs.is_empty() {
        pass("logs and histories empty")
    } else {
        fail(format!("not empty: {}", list(&f.dirty_logs)))
    }
}

/// `logs.spools`: no mail or cron spool.
pub(super) fn spools(f: &OfflineFacts, _: &Facts) -> Judgement {
    files(f, FileKind::Spool, "no mail or cron spool")
}

/// `logs.crash-dumps`: no crash dump.
pub(super) fn crash_dumps(f: &OfflineFacts, _: &Facts) -> Judgement {
    files(f, FileKind::CrashDump, "no crash dump")
}

/// `logs.leases`: no lease of the build network.
pub(super) fn leases(f: &OfflineFacts, _: &Facts) -> Judgement {
    files(f, FileKind::Lease, "no DHCP or NetworkManager lease")
}

/// `logs.temp-files`: nothing left in `/tmp` and `/var/tmp`.
pub(super) fn temp_files(f: &OfflineFacts, _: &Facts) -> Judgement {
    files(f, FileKind::TempFile, "/tmp and /var/tmp are empty")
}

/// `logs.package-cache`: no package cache (a warning, with the total).
pub(super) fn package_cache(f: &OfflineFacts, _: &Facts) -> Judgement {
    let found = f.found(FileKind::PackageCache);
    if found.is_empty() {
        return pass("no package cache");
    }
    let total: u64 = found.iter().map(|x| x.size).sum();
    let paths: Vec<String> = found.iter().map(|x| x.path.clone()).collect();
    fail(format!(
        "{} cached package file(s), {}: {}",
        found.len(),
        human(total),
        list(&paths)
    ))
}
