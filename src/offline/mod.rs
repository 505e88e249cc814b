//! Offline facts: what an image file shows before it boots. [`read`] finds the root
//! filesystem (the whole image, or one of its partitions; a qcow2 or vmdk is first
//! converted to a sparse raw copy in the run's temp dir, never written), and [`facts`]
//! reads from it what the image checks judge: accounts, baked keys, logs, leftovers,
//! machine-id and the first-boot agent. Nothing here boots or writes the image.

use std::path::Path;

use crate::cloudinit;
use crate::disk::image::{self, ImageInfo, ImageKind};
use crate::facts::{KeyFile, Offline, OfflineFacts};
use crate::fs::FsView;
use crate::tool::{self, ToolError};

/// Reads the offline facts of the image `info` describes, with `test_scripts` as the
/// leftover patterns; temp files go to `tmp`. An image without a readable root filesystem
/// (an ISO, an unknown filesystem) gives [`Offline::Unreadable`] with the reason; only a
/// failing conversion is an error.
pub fn read(info: &ImageInfo, test_scripts: &[String], tmp: &Path) -> Result<Offline, ToolError> {
    let raw = match info.kind {
        ImageKind::Iso { .. } => {
            return Ok(Offline::Unreadable {
                reason: "ISO 9660: the installed system exists only after booting".into(),
            });
        }
        ImageKind::Raw => info.path.clone(),
        ImageKind::Qcow2 | ImageKind::Vmdk => {
            // A sparse raw copy in the temp dir: qemu-img reads the image, never writes it.
            let raw = tmp.join("offline.raw");
            tool::run(
                std::process::Command::new("qemu-img")
                    .args(["convert", "-f", info.kind.qemu_format(), "-O", "raw"])
                    .arg(&info.path)
                    .arg(&raw),
                "qemu-utils",
            )?;
            raw
        }
    };
    let found = root_filesystem(&raw, test_scripts);
    let _ = std::fs::remove_file(tmp.join("offline.raw"));
    Ok(found)
}

/// The facts of the first candidate filesystem with an `/etc`, or why there is none.
fn root_filesystem(raw: &Path, test_scripts: &[String]) -> Offline {
    let mut tried = Vec::new();
    for (what, offset) in image::root_candidates(raw) {
        match FsView::open(raw, offset) {
            Ok(view) if view.exists("/etc") => {
                let source = format!("ext2/3/4 root filesystem on {what}");
                return Offline::Read(facts(&view, &source, test_scripts));
            }
            Ok(_) => tried.push(format!("{what}: no /etc")),
            Err(e) => tried.push(format!("{what}: {e}")),
        }
    }
    Offline::Unreadable {
        reason: if tried.is_empty() {
            "no ext2/3/4 filesystem found".into()
        } else {
            format!("no root filesystem ({})", tried.join("; "))
        },
    }
}

/// Accounts in a shadow file whose password field allows a password login: not locked
/// (`!`, `*`) and not empty (an empty field means *no* password, reported as such).
pub fn usable_password_accounts(shadow: &str) -> Vec<String> {
    shadow
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let (name, hash) = (f.next()?, f.next()?);
            if name.is_empty() || hash.starts_with('!') || hash.starts_with('*') {
                None
            } else if hash.is_empty() {
                Some(format!("{name} (empty password)"))
            } else {
                Some(name.to_string())
            }
        })
        .collect()
}

/// Where host keys live.
pub const HOST_KEY_PATTERNS: &[&str] = &[
    "/etc/ssh/ssh_host_*_key",
    "/etc/dropbear/dropbear_*_host_key",
];

/// Reads the facts the offline checks judge from the root filesystem in `view`. `source` describes where the filesystem was
/// found; `test_script_patterns` are globs of leftover test scripts.
pub fn facts(view: &FsView, source: &str, test_script_patterns: &[String]) -> OfflineFacts {
    let shadow = view
        .read("/etc/shadow")
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let host_keys = HOST_KEY_PATTERNS
        .iter()
        .flat_map(|p| view.glob(p))
        .map(|path| {
            use sha2::Digest;
            let sha256 = hex::encode(sha2::Sha256::digest(view.read(&path).unwrap_or_default()));
            KeyFile { path, sha256 }
        })
        .collect();
    let mut dirty = Vec::new();
    let mut histories = view.glob("/root/.*history");
    histories.extend(view.glob("/home/*/.*history"));
    for f in view.walk_files("/var/log").into_iter().chain(histories) {
        if let Some(n) = view.file_len(&f).filter(|&n| n > 0) {
            dirty.push(format!("{f} ({n} bytes)"));
        }
    }
    let mut scripts: Vec<String> = test_script_patterns
        .iter()
        .flat_map(|p| view.glob(p))
        .collect();
    scripts.sort();
    scripts.dedup();
    let machine_id = view
        .read("/etc/machine-id")
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .filter(|s| !s.is_empty() && s != "uninitialized");
    let mut hooks = view.glob("/etc/systemd/system/*/firstboot.service");
    hooks.extend(view.glob("/etc/init.d/firstboot"));
    if let Some(inittab) = view.read("/etc/inittab")
        && String::from_utf8_lossy(&inittab)
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains("firstboot"))
    {
        hooks.push("/etc/inittab".into());
    }
    OfflineFacts {
        source: source.to_string(),
        shadow_readable: shadow.is_some(),
        password_accounts: shadow
            .as_deref()
            .map(usable_password_accounts)
            .unwrap_or_default(),
        host_keys,
        dirty_logs: dirty,
        test_scripts: scripts,
        machine_id,
        firstboot_program: view.exists("/usr/sbin/firstboot"),
        firstboot_hooks: hooks,
        cloud_init: cloudinit::offline_facts(view),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::testing::ext4_image;

    const DIRS: &[&str] = &[
        "etc/ssh",
        "etc/init.d",
        "var/log/apt",
        "root",
        "home/alice",
        "usr/sbin",
    ];

    #[test]
    fn shadow_usable_hashes() {
        let s = "root:$6$salt$hash:19000:0:99999:7:::\ndaemon:*:19000::::::\nlocked:!$6$x:1::::::\nopen::1::::::\n";
        assert_eq!(
            usable_password_accounts(s),
            ["root", "open (empty password)"]
        );
    }

    #[test]
    fn clean_filesystem_has_clean_facts() {
        let (_d, img) = ext4_image(
            &[
                ("/etc/shadow", b"root:!:19000::::::\n"),
                ("/var/log/wtmp", b""),
                ("/etc/machine-id", b""),
                ("/usr/sbin/firstboot", b"#!/bin/sh\n"),
                ("/etc/init.d/firstboot", b"#!/bin/sh\n"),
            ],
            DIRS,
            1048576,
        );
        let view = FsView::open(&img, 1048576).unwrap();
        let f = facts(&view, "test", &["/root/test*.sh".into()]);
        assert!(f.shadow_readable);
        assert!(
            f.password_accounts.is_empty() && f.host_keys.is_empty() && f.dirty_logs.is_empty()
        );
        assert!(f.test_scripts.is_empty() && f.machine_id.is_none());
        assert!(f.firstboot_program);
        assert_eq!(f.firstboot_hooks, ["/etc/init.d/firstboot"]);
    }

    #[test]
    fn dirty_filesystem_shows_each_defect() {
        let (_d, img) = ext4_image(
            &[
                ("/etc/shadow", b"root:$6$a$b:19000::::::\n"),
                ("/etc/ssh/ssh_host_ed25519_key", b"KEY"),
                ("/etc/ssh/ssh_host_ed25519_key.pub", b"PUB"),
                ("/var/log/apt/history.log", b"x"),
                ("/home/alice/.bash_history", b"ls\n"),
                ("/root/test.sh", b"echo\n"),
                ("/etc/machine-id", b"0123456789abcdef0123456789abcdef\n"),
                ("/etc/inittab", b"::sysinit:/usr/sbin/firstboot run\n"),
            ],
            DIRS,
            1048576,
        );
        let view = FsView::open(&img, 1048576).unwrap();
        let f = facts(
            &view,
            "test",
            &[
                "/root/test*.sh".into(),
                "/usr/local/bin/run-tests.sh".into(),
            ],
        );
        assert_eq!(f.password_accounts, ["root"]);
        assert_eq!(f.host_keys.len(), 1);
        assert_eq!(f.host_keys[0].path, "/etc/ssh/ssh_host_ed25519_key");
        assert_eq!(
            f.host_keys[0].sha256,
            "5ca24005b740717ba4f3f6bc48a230700e68c2a4b11ecedb96f169f4efaf1f21"
        ); // sha256("KEY")
        assert_eq!(
            f.dirty_logs,
            [
                "/var/log/apt/history.log (1 bytes)",
                "/home/alice/.bash_history (3 bytes)"
            ]
        );
        assert_eq!(f.test_scripts, ["/root/test.sh"]);
        assert_eq!(
            f.machine_id.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert!(!f.firstboot_program);
        assert_eq!(f.firstboot_hooks, ["/etc/inittab"]);
    }
}
