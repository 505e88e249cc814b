//! Rule 2 offline: who could log in to every server made from the image. Passwords in
//! `/etc/shadow`, in `/etc/passwd`'s legacy field and in every copy of those files the
//! build left; SSH public keys of any account, wherever sshd or cloud-init would take them
//! from; host-based trust files.

use std::collections::BTreeSet;

use super::scan::Scan;
use crate::cloudinit;
use crate::facts::{Account, FileKind};
use crate::fs::{FileInfo, FsView};

/// The accounts of a passwd file.
pub fn parse_passwd(text: &str) -> Vec<Account> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 7 && !f[0].is_empty()).then(|| Account {
                name: f[0].to_string(),
                uid: f[2].parse().unwrap_or(u32::MAX),
                home: f[5].to_string(),
                shell: f[6].to_string(),
            })
        })
        .collect()
}

/// How a password field lets an account in: None when it does not (locked, `*`, `!...`, or
/// `x` pointing at the shadow file).
pub fn usable(field: &str) -> Option<&'static str> {
    if field.is_empty() {
        Some("empty password")
    } else if field.starts_with('!') || field.starts_with('*') || field == "x" {
        None
    } else {
        Some("password hash")
    }
}

/// Accounts in a passwd- or shadow-format text whose password field allows a login,
/// `name` or `name (empty password)`.
pub fn usable_password_accounts(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let (name, field) = (f.next()?, f.next()?);
            if name.is_empty() || f.next().is_none() {
                return None; // not an account line
            }
            match usable(field)? {
                "empty password" => Some(format!("{name} (empty password)")),
                _ => Some(name.to_string()),
            }
        })
        .collect()
}

/// The account files a password can hide in.
const ACCOUNT_FILES: &[&str] = &["passwd", "shadow", "gshadow", "group"];

/// Whether a file name is one of the account files, or a copy of one (`shadow-`,
/// `shadow.bak`, `passwd~`, `shadow.dpkg-old`, `shadow.20240101`, `.shadow.swp`, ...).
fn account_file_copy(name: &str) -> bool {
    let name = name.trim_start_matches('.');
    ACCOUNT_FILES
        .iter()
        .any(|base| name.starts_with(base) && name != *base)
}

/// Accounts with a usable password in `/etc/shadow` and in `/etc/passwd`'s legacy second
/// field; None without a shadow file.
pub(super) fn fixed_passwords(view: &FsView) -> Option<Vec<String>> {
    let text = |p| {
        view.read(p)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    let shadow = text("/etc/shadow")?;
    let mut who = usable_password_accounts(&shadow);
    who.extend(
        usable_password_accounts(&text("/etc/passwd").unwrap_or_default())
            .into_iter()
            .map(|a| format!("{a} in /etc/passwd")),
    );
    Some(who)
}

/// Usable passwords in copies of the account files (backups, editor copies) anywhere the
/// build may leave them: `/etc`, `/var/backups` and the homes.
pub(super) fn password_copies(scan: &mut Scan) {
    let view = scan.view;
    let mut candidates: Vec<FileInfo> = Vec::new();
    let mut dirs = vec!["/etc".to_string(), "/var/backups".to_string()];
    dirs.extend(scan.homes());
    for dir in dirs {
        let files = if dir != "/etc" {
            view.files(&dir)
        } else {
            view.list("/etc")
                .into_iter()
                .filter_map(|n| view.file(&format!("/etc/{n}")))
                .collect()
        };
        candidates.extend(files.into_iter().filter(|f| {
            account_file_copy(f.path.rsplit('/').next().unwrap_or("")) && f.size < 1 << 20
        }));
    }
    for f in candidates {
        let text = String::from_utf8_lossy(&view.read(&f.path).unwrap_or_default()).into_owned();
        let who = usable_password_accounts(&text);
        if !who.is_empty() {
            let why = format!("usable password for {}", who.join(", "));
            scan.found(FileKind::PasswordCopy, &f, why);
        }
    }
}

/// Where sshd reads authorized keys: `AuthorizedKeysFile` from `sshd_config` and its
/// `.d` files (the first setting wins, as in sshd), else its default.
fn authorized_keys_files(view: &FsView) -> Vec<String> {
    let mut texts = vec![view.read("/etc/ssh/sshd_config").unwrap_or_default()];
    let mut dropins = view.list("/etc/ssh/sshd_config.d");
    dropins.sort();
    texts.extend(
        dropins
            .iter()
            .filter(|n| n.ends_with(".conf"))
            .filter_map(|n| view.read(&format!("/etc/ssh/sshd_config.d/{n}"))),
    );
    let setting = texts.iter().find_map(|t| {
        String::from_utf8_lossy(t).lines().find_map(|l| {
            let mut words = l.split_whitespace();
            let key = words.next()?;
            key.eq_ignore_ascii_case("AuthorizedKeysFile")
                .then(|| words.map(str::to_string).collect::<Vec<_>>())
        })
    });
    setting.unwrap_or_else(|| {
        vec![
            ".ssh/authorized_keys".to_string(),
            ".ssh/authorized_keys2".to_string(),
        ]
    })
}

/// An `AuthorizedKeysFile` pattern for one account: `%h`, `%u`, `%U`, `%%`; relative
/// paths are below the home.
fn expand(pattern: &str, a: &Account) -> String {
    let p = pattern
        .replace("%%", "\u{0}")
        .replace("%h", &a.home)
        .replace("%u", &a.name)
        .replace("%U", &a.uid.to_string())
        .replace('\u{0}', "%");
    if p.starts_with('/') {
        p
    } else {
        format!("{}/{p}", a.home.trim_end_matches('/'))
    }
}

/// The key lines of an authorized_keys text: `type base64`, options and comments dropped.
pub fn key_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words.iter().position(|w| {
                w.starts_with("ssh-") || w.starts_with("ecdsa-") || w.starts_with("sk-")
            })?;
            let blob = words.get(at + 1)?;
            Some(format!("{} {blob}", words[at]))
        })
        .collect()
}

/// SSH public keys that let their holder in: every account's authorized keys files (the
/// defaults, `.ssh/authorized_keys2` and `sshd_config`'s `AuthorizedKeysFile`), and keys
/// written into cloud-init's configuration.
pub(super) fn authorized_keys(scan: &mut Scan) {
    let view = scan.view;
    let mut patterns = authorized_keys_files(view);
    patterns.extend([
        ".ssh/authorized_keys".into(),
        ".ssh/authorized_keys2".into(),
    ]);
    let mut paths = BTreeSet::new();
    for a in scan.accounts_with_root() {
        for p in &patterns {
            paths.insert(expand(p, &a));
        }
    }
    for home in scan.homes() {
        paths.insert(format!("{home}/.ssh/authorized_keys"));
        paths.insert(format!("{home}/.ssh/authorized_keys2"));
    }
    for path in paths {
        let Some(f) = view.file(&path) else { continue };
        let keys = key_lines(&String::from_utf8_lossy(
            &view.read(&path).unwrap_or_default(),
        ));
        if !keys.is_empty() {
            let why = format!("{} key(s) anyone holding them can log in with", keys.len());
            scan.found(FileKind::AuthorizedKey, &f, why);
            scan.baked_keys.extend(keys);
        }
    }
    cloud_init_keys(scan);
}

/// `ssh_authorized_keys` in cloud-init's configuration: at the top, for the default user,
/// or for listed users. cloud-init installs them on every instance.
fn cloud_init_keys(scan: &mut Scan) {
    let view = scan.view;
    for f in view.files("/etc/cloud") {
        if !(f.path.ends_with(".cfg") || f.path.ends_with(".yaml") || f.path.ends_with(".yml")) {
            continue;
        }
        let Some(doc) = view
            .read(&f.path)
            .and_then(|b| cloudinit::parse(&String::from_utf8_lossy(&b)))
        else {
            continue;
        };
        let n = cloudinit::authorized_keys(&doc);
        if n > 0 {
            let why = format!("{n} ssh_authorized_keys that cloud-init installs on every server");
            scan.found(FileKind::AuthorizedKey, &f, why);
        }
    }
}

/// Host-based trust: a non-empty `.rhosts`/`.shosts` in any home, `/etc/hosts.equiv` or
/// `/etc/ssh/shosts.equiv` lets users of the named hosts in without a password.
pub(super) fn host_trust(scan: &mut Scan) {
    let view = scan.view;
    let mut paths = vec![
        "/etc/hosts.equiv".to_string(),
        "/etc/ssh/shosts.equiv".to_string(),
    ];
    for home in scan.homes() {
        paths.push(format!("{home}/.rhosts"));
        paths.push(format!("{home}/.shosts"));
    }
    for path in paths {
        let Some(f) = view.file(&path) else { continue };
        let text = String::from_utf8_lossy(&view.read(&path).unwrap_or_default()).into_owned();
        let entries = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .count();
        if entries > 0 {
            let why = format!("{entries} trusted host entr(ies): logins without a password");
            scan.found(FileKind::HostTrust, &f, why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_fields() {
        let s = "root:$6$salt$hash:19000:0:99999:7:::\ndaemon:*:19000::::::\nlocked:!$6$x:1::::::\nopen::1::::::\n";
        assert_eq!(
            usable_password_accounts(s),
            ["root", "open (empty password)"]
        );
        // /etc/passwd's legacy field: `x` defers to the shadow file, a hash is a password.
        let p = "root:x:0:0:root:/root:/bin/bash\nold:$1$ab$cd:1000:1000::/home/old:/bin/sh\n";
        assert_eq!(usable_password_accounts(p), ["old"]);
        // Not account lines: prose, a single field.
        assert!(usable_password_accounts("# a comment: with colons\nfoo\n").is_empty());
        assert_eq!(
            parse_passwd(p)[1],
            Account {
                name: "old".into(),
                uid: 1000,
                home: "/home/old".into(),
                shell: "/bin/sh".into()
            }
        );
    }

    #[test]
    fn copies_of_account_files_are_recognised_by_name() {
        for copy in [
            "shadow-",
            "shadow.bak",
            "passwd~",
            "shadow.dpkg-old",
            "gshadow-",
            "shadow.2024-01-01",
            ".shadow.swp",
            "passwd.orig",
        ] {
            assert!(account_file_copy(copy), "{copy}");
        }
        for other in ["shadow", "passwd", "hosts", "subuid", "login.defs"] {
            assert!(!account_file_copy(other), "{other}");
        }
    }

    #[test]
    fn authorized_keys_lines_and_paths() {
        let text =
            "# builder\nno-pty,command=\"x\" ssh-ed25519 AAAAC3Nz builder@ci\n\nssh-rsa AAAAB3 x\n";
        assert_eq!(key_lines(text), ["ssh-ed25519 AAAAC3Nz", "ssh-rsa AAAAB3"]);
        let a = Account {
            name: "ops".into(),
            uid: 1001,
            home: "/home/ops".into(),
            shell: "/bin/bash".into(),
        };
        assert_eq!(
            expand(".ssh/authorized_keys", &a),
            "/home/ops/.ssh/authorized_keys"
        );
        assert_eq!(expand("/etc/ssh/keys/%u", &a), "/etc/ssh/keys/ops");
        assert_eq!(expand("%h/.keys/%U", &a), "/home/ops/.keys/1001");
    }
}
