//! Rule 3 offline: logs and usage information the build left. Everything under `/var/log`
//! (journal included) and the login records; the shell and tool histories of every home;
//! mail and cron spools; crash dumps; DHCP and NetworkManager leases; the contents of
//! `/tmp` and `/var/tmp` that are not scripts (those are leftovers); package caches, which
//! are reported as a warning with their size.

use super::scan::{Scan, is_script};
use crate::facts::FileKind;
use crate::fs::FileInfo;

/// Whether a file in a home records what someone did: shell and tool histories (bash,
/// zsh, ash, fish, python, node, mysql, psql, sqlite, redis, irb, less, vim), wget's HSTS
/// list, the hosts SSH connected to, sudo's first-use note, recently used files.
pub fn is_history(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or("");
    name.contains("history")
        || name.ends_with("hist")
        || name.ends_with("hst")
        || matches!(
            name,
            ".viminfo"
                | ".wget-hsts"
                | "known_hosts"
                | ".sudo_as_admin_successful"
                | "recently-used.xbel"
        )
}

/// Non-empty logs and login records under `/var/log` and `/var/lib/wtmpdb`, the stale
/// `utmp` of the build, and histories in every home, as `path (N bytes)`.
pub(super) fn dirty_logs(scan: &Scan) -> Vec<String> {
    let view = scan.view;
    let mut files = view.files("/var/log");
    files.extend(view.files("/var/lib/wtmpdb"));
    files.extend(
        ["/run/utmp", "/var/run/utmp"]
            .iter()
            .filter_map(|p| view.file(p)),
    );
    for home in scan.homes() {
        files.extend(
            view.files(&home)
                .into_iter()
                .filter(|f| is_history(&f.path)),
        );
    }
    files
        .into_iter()
        .filter(|f| f.size > 0)
        .map(|f| format!("{} ({} bytes)", f.path, f.size))
        .collect()
}

/// Mail and cron spools: mail the build's processes sent, crontabs a builder left.
pub(super) fn spools(scan: &mut Scan) {
    let mut files = Vec::new();
    for dir in [
        "/var/mail",
        "/var/spool/mail",
        "/var/spool/cron",
        "/var/spool/postfix/maildrop",
        "/var/spool/postfix/deferred",
        "/var/spool/exim4/input",
    ] {
        files.extend(scan.view.files(dir));
    }
    found_non_empty(
        scan,
        FileKind::Spool,
        files,
        "a mail or cron spool the build left",
    );
}

/// Crash dumps and core files.
pub(super) fn crash_dumps(scan: &mut Scan) {
    let mut files = Vec::new();
    for dir in [
        "/var/crash",
        "/var/lib/systemd/coredump",
        "/var/lib/apport/coredump",
    ] {
        files.extend(scan.view.files(dir));
    }
    let mut roots = vec!["/".to_string()];
    roots.extend(scan.homes());
    for dir in roots {
        for name in scan.view.list(&dir) {
            if name == "core" || name.starts_with("core.") {
                files.extend(
                    scan.view
                        .file(&format!("{}/{name}", dir.trim_end_matches('/'))),
                );
            }
        }
    }
    found_non_empty(
        scan,
        FileKind::CrashDump,
        files,
        "a crash dump from the build",
    );
}

/// DHCP and NetworkManager leases: the build network's addresses and servers.
pub(super) fn leases(scan: &mut Scan) {
    let mut files = Vec::new();
    for dir in [
        "/var/lib/dhcp",
        "/var/lib/dhclient",
        "/var/lib/dhcpcd",
        "/var/lib/dhcpcd5",
        "/var/lib/NetworkManager",
        "/var/lib/udhcpc",
    ] {
        files.extend(
            scan.view
                .files(dir)
                .into_iter()
                .filter(|f| f.path.contains("lease") || f.path.ends_with(".lease")),
        );
    }
    found_non_empty(
        scan,
        FileKind::Lease,
        files,
        "a lease from the build network",
    );
}

/// The contents of `/tmp` and `/var/tmp` that are not scripts or programs (those are
/// leftovers, judged by `leftovers.unowned`).
pub(super) fn temp_files(scan: &mut Scan) {
    let mut files = scan.view.files("/tmp");
    files.extend(scan.view.files("/var/tmp"));
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    for f in files {
        if !is_script(scan.view, &f) {
            scan.found(
                FileKind::TempFile,
                &f,
                "temporary data the build left".into(),
            );
        }
    }
}

/// Downloaded packages and package lists: not secret, but they make every copy of the
/// image larger (a warning, with the total).
pub(super) fn package_cache(scan: &mut Scan) {
    let mut files: Vec<FileInfo> = scan
        .view
        .files("/var/cache/apt/archives")
        .into_iter()
        .filter(|f| f.path.ends_with(".deb"))
        .collect();
    files.extend(
        scan.view
            .files("/var/lib/apt/lists")
            .into_iter()
            .filter(|f| !f.path.contains("/partial/") && !f.path.ends_with("/lock") && f.size > 0),
    );
    files.extend(
        scan.view
            .files("/var/cache/apt")
            .into_iter()
            .filter(|f| f.path.ends_with(".bin")),
    );
    for f in files {
        scan.found(FileKind::PackageCache, &f, "package cache".into());
    }
}

fn found_non_empty(scan: &mut Scan, kind: FileKind, files: Vec<FileInfo>, why: &str) {
    for f in files.into_iter().filter(|f| f.size > 0) {
        scan.found(kind, &f, why.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histories_of_shells_and_tools() {
        for h in [
            "/root/.bash_history",
            "/home/a/.zsh_history",
            "/root/.python_history",
            "/root/.lesshst",
            "/root/.viminfo",
            "/root/.wget-hsts",
            "/root/.mysql_history",
            "/root/.psql_history",
            "/root/.sqlite_history",
            "/root/.node_repl_history",
            "/home/a/.local/share/fish/fish_history",
            "/root/.ash_history",
        ] {
            assert!(is_history(h), "{h}");
        }
        assert!(is_history("/root/.ssh/known_hosts"));
        for other in [
            "/root/.bashrc",
            "/root/.profile",
            "/home/a/.ssh/authorized_keys",
        ] {
            assert!(!is_history(other), "{other}");
        }
    }
}
