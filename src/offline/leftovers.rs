//! Rule 1 offline: the author's test scripts and build leftovers. With a package database
//! (dpkg's `/var/lib/dpkg/info/*.list`, apk's `/lib/apk/db/installed`), every regular file
//! where builds leave things (`/root`, the homes, `/usr/local`, `/opt`, `/srv`, and the
//! scripts in `/tmp` and `/var/tmp`) that no installed package owns is a leftover, whatever
//! its name, unless the configuration allows it or it is a copy of `/etc/skel`'s. Without
//! one, the scripts and programs in `/root`, the homes, `/tmp` and `/var/tmp` are. Files
//! another check already judges (keys, histories, copies of the account files) are left to
//! it, so one defect fails one check.

use std::collections::HashSet;

use super::scan::{Scan, is_script};
use crate::facts::FileKind;
use crate::fs::{FileInfo, FsView, wildcard};

/// The paths an installed package owns, and which database said so; None without one.
pub(super) fn owned_paths(view: &FsView) -> Option<(HashSet<String>, &'static str)> {
    if view.exists("/var/lib/dpkg/status") {
        let mut owned = HashSet::new();
        for name in view.list("/var/lib/dpkg/info") {
            if name.ends_with(".list")
                && let Some(b) = view.read(&format!("/var/lib/dpkg/info/{name}"))
            {
                owned.extend(String::from_utf8_lossy(&b).lines().map(str::to_string));
            }
        }
        return Some((owned, "dpkg"));
    }
    let apk = view.read("/lib/apk/db/installed")?;
    let mut owned = HashSet::new();
    let mut dir = String::new();
    for line in String::from_utf8_lossy(&apk).lines() {
        if let Some(d) = line.strip_prefix("F:") {
            dir = d.to_string();
        } else if let Some(f) = line.strip_prefix("R:") {
            owned.insert(format!("/{dir}/{f}"));
        }
    }
    Some((owned, "apk"))
}

/// Whether `path` matches one of the allow globs (`*` and `?` within a component).
pub fn allowed(path: &str, globs: &[String]) -> bool {
    globs.iter().any(|g| {
        let (gp, pp): (Vec<&str>, Vec<&str>) = (g.split('/').collect(), path.split('/').collect());
        gp.len() == pp.len() && gp.iter().zip(&pp).all(|(a, b)| wildcard(a, b))
    })
}

/// Whether a file in a home is an unchanged copy of the skeleton file of the same name
/// (what `useradd -m` copies into every new home).
fn skeleton_copy(view: &FsView, f: &FileInfo, homes: &[String]) -> bool {
    let Some(rel) = homes
        .iter()
        .find_map(|h| f.path.strip_prefix(&format!("{h}/")))
    else {
        return false;
    };
    let skel = format!("/etc/skel/{rel}");
    view.file(&skel).is_some_and(|s| s.size == f.size) && view.read(&skel) == view.read(&f.path)
}

/// Every leftover: unowned (or, without a package database, script) files where builds
/// leave them, not allowed, not a skeleton copy, not judged by another check.
pub(super) fn unowned(scan: &mut Scan, owned: Option<&HashSet<String>>) {
    let homes = scan.homes();
    let mut places: Vec<String> = vec!["/root".into(), "/tmp".into(), "/var/tmp".into()];
    places.extend(scan.view.list("/home").iter().map(|n| format!("/home/{n}")));
    if owned.is_some() {
        places.extend(["/usr/local", "/opt", "/srv"].map(String::from));
    }
    let judged: HashSet<String> = scan.judged_paths();
    let mut files: Vec<FileInfo> = places.iter().flat_map(|d| scan.view.files(d)).collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    for f in files {
        if judged.contains(&f.path)
            || owned.is_some_and(|o| o.contains(&f.path))
            || allowed(&f.path, &scan.options.allow)
            || skeleton_copy(scan.view, &f, &homes)
        {
            continue;
        }
        let script = is_script(scan.view, &f);
        let in_tmp = f.path.starts_with("/tmp/") || f.path.starts_with("/var/tmp/");
        if (owned.is_none() || in_tmp) && !script {
            continue; // only scripts count without ownership; /tmp's data is usage information
        }
        let why = match (script, owned.is_some()) {
            (true, true) => "a script or program no installed package owns",
            (false, _) => "a file no installed package owns",
            (true, false) => "a script or program (no package database to tell its owner)",
        };
        scan.found(FileKind::Unowned, &f, why.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_globs_match_whole_paths_component_by_component() {
        let globs = vec!["/home/*/.bashrc".to_string(), "/opt/vendor/*".to_string()];
        assert!(allowed("/home/debian/.bashrc", &globs));
        assert!(allowed("/opt/vendor/agent", &globs));
        assert!(!allowed("/opt/vendor/bin/agent", &globs));
        assert!(!allowed("/home/debian/.bashrc.bak", &globs));
        assert!(!allowed("/root/.bashrc", &globs));
    }
}
