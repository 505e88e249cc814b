//! Offline facts: what an image file shows before it boots. [`read`] finds the root
//! filesystem (the whole image, or one of its partitions; a qcow2 or vmdk is first
//! converted to a sparse raw copy in the run's temp dir, never written), and [`facts`]
//! reads from it what the image checks judge, one collector per rule: [`accounts`] (who
//! could log in), [`leftovers`], [`usage`] (logs and usage information), [`identity`]
//! (what must be unique per server), and [`agent`] (the first-boot agent and the SSH
//! servers). From the same copy [`read`] also tells which firmware can boot the image
//! ([`crate::disk::bootable`]). Nothing here boots or writes the image.

mod accounts;
mod agent;
mod identity;
mod leftovers;
mod scan;
mod usage;

use std::path::Path;

use crate::cloudinit;
use crate::disk::bootable;
use crate::disk::image::{self, ImageInfo, ImageKind};
use crate::facts::{BootSupport, Offline, OfflineFacts};
use crate::fs::FsView;
use crate::helper::{self, HelperError};
use scan::Scan;

pub use accounts::{key_lines, usable_password_accounts};
pub use identity::{HOST_KEY_PATTERNS, private_key_kind};

/// What the offline phase is told to look for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Globs of leftover test scripts (judged by name on every image).
    pub test_scripts: Vec<String>,
    /// Globs of files no package owns that are still fine to publish.
    pub allow: Vec<String>,
}

/// Reads the offline facts of the image `info` describes, looking for what `options` name,
/// and what it offers each firmware; temp files go to `tmp`. An image without a readable
/// root filesystem (an ISO, an unknown filesystem) gives [`Offline::Unreadable`] with the
/// reason; only a failing conversion is an error.
pub fn read(
    info: &ImageInfo,
    options: &Options,
    tmp: &Path,
) -> Result<(Offline, BootSupport), HelperError> {
    let raw = match info.kind {
        ImageKind::Iso { .. } => {
            let unreadable = Offline::Unreadable {
                reason: "ISO 9660: the installed system exists only after booting".into(),
            };
            return Ok((unreadable, bootable::iso_support(&info.path)));
        }
        ImageKind::Raw => info.path.clone(),
        ImageKind::Qcow2 | ImageKind::Vmdk => {
            // A sparse raw copy in the temp dir: qemu-img reads the image, never writes it.
            let raw = tmp.join("offline.raw");
            crate::scratch::private_file(&raw).map_err(|source| HelperError::Spawn {
                tool: "qemu-img".into(),
                source,
            })?;
            helper::run(
                std::process::Command::new("qemu-img")
                    .args(["convert", "-f", info.kind.qemu_format(), "-O", "raw"])
                    .arg(&info.path)
                    .arg(&raw),
                "qemu-utils",
            )?;
            raw
        }
    };
    let found = root_filesystem(&raw, options);
    let support = bootable::support(&raw);
    let _ = std::fs::remove_file(tmp.join("offline.raw"));
    Ok((found, support))
}

/// The facts of the first candidate filesystem with an `/etc`, or why there is none.
fn root_filesystem(raw: &Path, options: &Options) -> Offline {
    let mut tried = Vec::new();
    for (what, offset) in image::root_candidates(raw) {
        match FsView::open(raw, offset) {
            Ok(view) if view.exists("/etc") => {
                let source = format!("ext2/3/4 root filesystem on {what}");
                let read = facts(&view, &source, options);
                if view.overrun() {
                    return Offline::Unreadable {
                        reason: format!(
                            "{what}: its directories nest deeper than {} or hold more than {} entries (they may loop)",
                            crate::fs::MAX_DEPTH,
                            crate::fs::MAX_ENTRIES
                        ),
                    };
                }
                return Offline::Read(Box::new(read));
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

/// Reads the facts the offline checks judge from the root filesystem in `view`. `source`
/// describes where the filesystem was found.
pub fn facts(view: &FsView, source: &str, options: &Options) -> OfflineFacts {
    let mut scan = Scan::new(view, options);
    let password_accounts = accounts::fixed_passwords(view);
    accounts::password_copies(&mut scan);
    accounts::authorized_keys(&mut scan);
    accounts::host_trust(&mut scan);
    let dirty_logs = usage::dirty_logs(&scan);
    usage::spools(&mut scan);
    usage::crash_dumps(&mut scan);
    usage::leases(&mut scan);
    usage::temp_files(&mut scan);
    usage::package_cache(&mut scan);
    identity::dbus_machine_id(&mut scan);
    identity::seeds(&mut scan);
    identity::persistent_net(&mut scan);
    identity::cloud_init_state(&mut scan);
    identity::private_keys(&mut scan);
    let test_scripts = test_scripts(view, &options.test_scripts);
    scan.claimed.extend(test_scripts.iter().cloned());
    scan.claimed.extend(dirty_logs.iter().map(|l| path_of(l)));
    let owned = leftovers::owned_paths(view);
    leftovers::unowned(&mut scan, owned.as_ref().map(|(o, _)| o));
    let (ssh_servers, no_ssh) = agent::ssh_servers(view);
    let (firstboot_program, firstboot_hooks) = agent::firstboot(view);
    OfflineFacts {
        source: source.to_string(),
        shadow_readable: password_accounts.is_some(),
        password_accounts: password_accounts.unwrap_or_default(),
        host_keys: identity::host_keys(view),
        host_key_fingerprints: identity::host_key_fingerprints(view),
        dirty_logs,
        test_scripts,
        machine_id: identity::machine_id(view),
        firstboot_program,
        firstboot_hooks,
        cloud_init: cloudinit::offline_facts(view),
        accounts: scan.accounts,
        package_db: owned.map(|(_, db)| db.to_string()),
        ssh_servers,
        no_ssh,
        ssh_disabled: agent::ssh_disabled(view),
        baked_keys: scan.baked_keys,
        findings: scan.findings,
    }
}

/// The path of a `path (N bytes)` entry.
fn path_of(entry: &str) -> String {
    entry
        .rsplit_once(" (")
        .map_or(entry, |(p, _)| p)
        .to_string()
}

/// Files matching the test-script globs.
fn test_scripts(view: &FsView, patterns: &[String]) -> Vec<String> {
    let mut scripts: Vec<String> = patterns.iter().flat_map(|p| view.glob(p)).collect();
    scripts.sort();
    scripts.dedup();
    scripts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::testing::ext4_image;

    fn options(test_scripts: &[&str]) -> Options {
        Options {
            test_scripts: test_scripts.iter().map(|s| s.to_string()).collect(),
            allow: Vec::new(),
        }
    }

    const DIRS: &[&str] = &[
        "etc/ssh",
        "etc/init.d",
        "var/log/apt",
        "root",
        "home/alice",
        "usr/sbin",
    ];

    /// A small root filesystem with something for every collector to read: accounts,
    /// keys, cloud-init's configuration, logs, histories, leftovers, the first-boot agent.
    fn small_root() -> Vec<u8> {
        crate::fs::testing::small_ext4(&[
            (
                "/etc/passwd",
                b"root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
            ),
            ("/etc/shadow", b"root:$6$s$h:19000::::::\nalice:!:1::::::\n"),
            (
                "/etc/ssh/ssh_host_ed25519_key",
                b"-----BEGIN OPENSSH PRIVATE KEY-----\nAA\n",
            ),
            (
                "/etc/ssh/sshd_config",
                b"PermitRootLogin yes\nAuthorizedKeysFile .ssh/k\n",
            ),
            (
                "/etc/cloud/cloud.cfg",
                b"system_info:\n  default_user:\n    name: debian\nssh_authorized_keys: [a]\n",
            ),
            ("/etc/machine-id", b"0123456789abcdef0123456789abcdef\n"),
            ("/var/log/auth.log", b"login\n"),
            ("/root/.bash_history", b"ls\n"),
            ("/root/test-run.sh", b"#!/bin/sh\n"),
            ("/home/alice/.ssh/authorized_keys", b"ssh-ed25519 AAAA x\n"),
            ("/usr/sbin/firstboot", b"#!/bin/sh\n"),
            (
                "/var/lib/dpkg/status",
                b"Package: a\nStatus: install ok installed\n\n",
            ),
            ("/var/lib/dpkg/info/a.list", b"/usr/sbin/firstboot\n"),
        ])
    }

    proptest::proptest! {
        #![proptest_config(crate::fuzz::config())]

        /// A damaged root filesystem: opened and walked, every directory listed and every
        /// file read, or refused; never a panic or a hang.
        #[test]
        fn any_damaged_filesystem_is_read_or_refused(
            bytes in crate::fuzz::mutated(small_root())
        ) {
            crate::fuzz::within(move || {
                let Ok(view) = FsView::load(Box::new(bytes), 0) else {
                    return;
                };
                for f in view.files("/") {
                    let _ = (view.head(&f.path, 4096), view.link_target(&f.path));
                }
                for dir in ["/", "/etc", "/etc/ssh", "/root", "/home/alice/.ssh", "/var/log"] {
                    let _ = (view.list(dir), view.glob(&format!("{dir}/*")));
                }
            });
        }

        /// The same, read by every offline collector (accounts, keys, logs, leftovers,
        /// cloud-init's configuration, package ownership): facts, never a panic or a hang.
        #[test]
        fn any_damaged_root_gives_facts(bytes in crate::fuzz::mutated(small_root())) {
            crate::fuzz::within(move || {
                if let Ok(view) = FsView::load(Box::new(bytes), 0) {
                    let _ = facts(&view, "fuzz", &options(&["/root/test*.sh"]));
                }
            });
        }

        /// The text parsers of the files an image holds, on random and damaged text:
        /// `passwd`, `shadow`, authorized keys, private key headers.
        #[test]
        fn any_account_and_key_text_is_read(
            bytes in proptest::prop_oneof![
                crate::fuzz::bytes(2_000),
                crate::fuzz::mutated(b"root:$6$s$h:19000:0:99999:7:::\nalice::1::::::\nssh-ed25519 AAAA k\n".to_vec()),
            ]
        ) {
            crate::fuzz::within(move || {
                let text = String::from_utf8_lossy(&bytes);
                let _ = (usable_password_accounts(&text), key_lines(&text));
                let _ = accounts::parse_passwd(&text);
                let _ = private_key_kind(&bytes);
            });
        }
    }

    #[test]
    fn the_small_root_shows_its_defects() {
        let view = FsView::load(Box::new(small_root()), 0).unwrap();
        let f = facts(&view, "test", &options(&["/root/test*.sh"]));
        assert_eq!(f.password_accounts, ["root"]);
        assert!(!f.host_keys.is_empty() && !f.dirty_logs.is_empty());
        assert_eq!(f.test_scripts, ["/root/test-run.sh"]);
    }

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
        let f = facts(&view, "test", &options(&["/root/test*.sh"]));
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
            &options(&["/root/test*.sh", "/usr/local/bin/run-tests.sh"]),
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
