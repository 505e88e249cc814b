//! The scan of one root filesystem that the collectors share: the view, the accounts,
//! the findings so far and the paths other checks already judge.

use std::collections::{BTreeMap, HashSet};

use super::{Options, accounts, identity};
use crate::facts::{Account, FileKind, Finding};
use crate::fs::{FileInfo, FsView};

/// The scan of one root filesystem: the view, its accounts, what was found so far.
pub(crate) struct Scan<'a> {
    pub(super) view: &'a FsView,
    pub(super) options: &'a Options,
    pub(super) accounts: Vec<Account>,
    pub(super) findings: BTreeMap<FileKind, Vec<Finding>>,
    /// Paths other checks judge (histories, pattern scripts): leftovers leaves them alone.
    pub(super) claimed: HashSet<String>,
    /// Public keys found in authorized keys files.
    pub(super) baked_keys: Vec<String>,
}

/// Directories that are no one's home to scan, though system accounts name them.
fn system_dir(home: &str) -> bool {
    home == "/"
        || [
            "/bin", "/sbin", "/usr", "/lib", "/dev", "/proc", "/sys", "/run", "/boot", "/etc",
        ]
        .iter()
        .any(|d| home == *d || home.starts_with(&format!("{d}/")))
        || home == "/nonexistent"
}

impl<'a> Scan<'a> {
    pub(super) fn new(view: &'a FsView, options: &'a Options) -> Self {
        let passwd = view.read("/etc/passwd").unwrap_or_default();
        Scan {
            view,
            options,
            accounts: accounts::parse_passwd(&String::from_utf8_lossy(&passwd)),
            findings: BTreeMap::new(),
            claimed: HashSet::new(),
            baked_keys: Vec::new(),
        }
    }

    /// The accounts, with root's entry even when `/etc/passwd` lacks it.
    pub(super) fn accounts_with_root(&self) -> Vec<Account> {
        let mut all = self.accounts.clone();
        if !all.iter().any(|a| a.uid == 0) {
            all.push(Account {
                name: "root".into(),
                uid: 0,
                home: "/root".into(),
                shell: "/bin/sh".into(),
            });
        }
        all
    }

    /// The homes to look into: `/root`, every `/home/*`, and the home of every account that
    /// can log in (system directories aside), each once, those that exist.
    pub(super) fn homes(&self) -> Vec<String> {
        let mut homes = vec!["/root".to_string()];
        homes.extend(self.view.list("/home").iter().map(|n| format!("/home/{n}")));
        homes.extend(
            self.accounts
                .iter()
                .filter(|a| a.can_log_in() && !system_dir(&a.home))
                .map(|a| a.home.trim_end_matches('/').to_string()),
        );
        let mut seen = HashSet::new();
        homes.retain(|h| seen.insert(h.clone()) && self.view.exists(h));
        homes
    }

    /// Records a finding of `kind`.
    pub(super) fn found(&mut self, kind: FileKind, f: &FileInfo, why: String) {
        self.found_with(kind, f, why, None);
    }

    /// Records a finding identified by the SHA-256 of its contents.
    pub(super) fn found_with_sha(
        &mut self,
        kind: FileKind,
        f: &FileInfo,
        why: String,
        sha256: String,
    ) {
        self.found_with(kind, f, why, Some(sha256));
    }

    pub(super) fn found_with(
        &mut self,
        kind: FileKind,
        f: &FileInfo,
        why: String,
        sha256: Option<String>,
    ) {
        self.findings.entry(kind).or_default().push(Finding {
            path: f.path.clone(),
            size: f.size,
            mode: f.mode,
            why,
            sha256,
        });
    }

    /// Every path a check other than `leftovers.unowned` judges.
    pub(super) fn judged_paths(&self) -> HashSet<String> {
        let mut paths = self.claimed.clone();
        for (kind, found) in &self.findings {
            if *kind != FileKind::Unowned {
                paths.extend(found.iter().map(|f| f.path.clone()));
            }
        }
        paths.extend(identity::host_keys(self.view).into_iter().map(|k| k.path));
        paths
    }
}

/// Whether a file is a script (`#!`) or a program (anyone may execute it).
pub(super) fn is_script(view: &FsView, f: &FileInfo) -> bool {
    f.executable() || view.head(&f.path, 2).is_some_and(|h| h == b"#!")
}
