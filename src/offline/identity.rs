//! Rule 4 offline: what must be unique per server and so must not be in the image. SSH
//! host keys and `/etc/machine-id` (as before), and beyond them: the D-Bus machine-id
//! systemd would copy, saved entropy and secrets, interface names pinned to the build
//! machine, cloud-init's record of an instance that already ran, and every private key.

use sha2::Digest;

use super::scan::Scan;
use crate::facts::{FileKind, KeyFile};
use crate::fs::FsView;

/// Where SSH host keys live: read from the image offline, and told to the probe that
/// hashes them in each booted guest (`HOST_KEY_GLOBS`).
pub const HOST_KEY_PATTERNS: &[&str] = &[
    "/etc/ssh/ssh_host_*_key",
    "/etc/dropbear/dropbear_*_host_key",
];

/// The image's SSH host keys and the SHA-256 of each.
pub(super) fn host_keys(view: &FsView) -> Vec<KeyFile> {
    HOST_KEY_PATTERNS
        .iter()
        .flat_map(|p| view.glob(p))
        .map(|path| {
            let sha256 = hex::encode(sha2::Sha256::digest(view.read(&path).unwrap_or_default()));
            KeyFile { path, sha256 }
        })
        .collect()
}

/// SHA-256 (hex) of each baked public host key's blob, the fingerprint an SSH handshake
/// with a server holding that key shows.
pub(super) fn host_key_fingerprints(view: &FsView) -> Vec<String> {
    view.glob("/etc/ssh/ssh_host_*_key.pub")
        .iter()
        .filter_map(|p| view.read(p))
        .filter_map(|b| {
            let text = String::from_utf8_lossy(&b).into_owned();
            let blob = text.split_whitespace().nth(1)?.to_string();
            crate::encoding::base64_decode(&blob)
        })
        .map(|blob| hex::encode(sha2::Sha256::digest(&blob)))
        .collect()
}

/// `/etc/machine-id` when it holds an id.
pub(super) fn machine_id(view: &FsView) -> Option<String> {
    view.read("/etc/machine-id")
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .filter(|s| !s.is_empty() && s != "uninitialized")
}

/// A regular `/var/lib/dbus/machine-id` with an id: systemd copies it into an empty
/// `/etc/machine-id` at boot, so every clone gets the same id. A symlink to
/// `/etc/machine-id` (Debian's default) is fine.
pub(super) fn dbus_machine_id(scan: &mut Scan) {
    for path in ["/var/lib/dbus/machine-id", "/etc/dbus-1/machine-id"] {
        if let Some(f) = scan.view.file(path)
            && f.size > 0
        {
            let why = "a D-Bus machine-id systemd reuses as every clone's /etc/machine-id";
            scan.found(FileKind::DbusMachineId, &f, why.into());
        }
    }
}

/// Saved entropy and secrets that systemd and init scripts load at boot: every clone would
/// start from the same seed, or encrypt with the same key.
const SEEDS: &[(&str, &str)] = &[
    (
        "/var/lib/systemd/random-seed",
        "systemd's saved entropy, loaded before it is replaced",
    ),
    (
        "/var/lib/urandom/random-seed",
        "saved entropy the urandom init script loads",
    ),
    ("/var/lib/random-seed", "saved entropy loaded at boot"),
    ("/etc/random-seed", "saved entropy loaded at boot"),
    (
        "/var/lib/systemd/credential.secret",
        "the key systemd encrypts credentials with",
    ),
];

/// Seeds and secrets: present in the image means shared by every clone.
pub(super) fn seeds(scan: &mut Scan) {
    for (path, why) in SEEDS {
        if let Some(f) = scan.view.file(path)
            && f.size > 0
        {
            scan.found(FileKind::Seed, &f, (*why).into());
        }
    }
}

/// udev rules naming interfaces after the build machine's MAC addresses: a clone's NIC
/// would get another name and its network configuration would not apply.
pub(super) fn persistent_net(scan: &mut Scan) {
    for path in scan.view.glob("/etc/udev/rules.d/*persistent-net*.rules") {
        let Some(f) = scan.view.file(&path) else {
            continue;
        };
        let text = String::from_utf8_lossy(&scan.view.read(&path).unwrap_or_default()).into_owned();
        let pinned = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#') && l.contains("ATTR{address}"))
            .count();
        if pinned > 0 {
            let why = format!("{pinned} interface name(s) pinned to the build machine's MACs");
            scan.found(FileKind::PersistentNet, &f, why);
        }
    }
}

/// cloud-init's state from a boot during the build: the instance it ran as, its
/// semaphores and data. `cloud-init clean` removes them.
pub(super) fn cloud_init_state(scan: &mut Scan) {
    let mut files = scan.view.files("/var/lib/cloud/instances");
    files.extend(scan.view.files("/var/lib/cloud/data"));
    files.extend(scan.view.files("/var/lib/cloud/sem"));
    for f in files {
        let why = "cloud-init state from an instance that already ran (`cloud-init clean`)";
        scan.found(FileKind::CloudInitState, &f, why.into());
    }
}

/// Where private keys are looked for, besides the homes.
const KEY_DIRS: &[&str] = &["/etc", "/var/lib", "/usr/local", "/opt", "/srv"];

/// The most of a file read to look for a key, and the largest file looked at.
const KEY_HEAD: usize = 64 << 10;
const KEY_MAX_FILE: u64 = 1 << 20;

/// What kind of private key `head` (a file's first bytes) holds, if any.
pub fn private_key_kind(head: &[u8]) -> Option<&'static str> {
    const TEXT: &[(&[u8], &str)] = &[
        (
            b"-----BEGIN OPENSSH PRIVATE KEY-----",
            "OpenSSH private key",
        ),
        (b"-----BEGIN RSA PRIVATE KEY-----", "PEM RSA private key"),
        (b"-----BEGIN EC PRIVATE KEY-----", "PEM EC private key"),
        (b"-----BEGIN DSA PRIVATE KEY-----", "PEM DSA private key"),
        (b"-----BEGIN PRIVATE KEY-----", "PKCS#8 private key"),
        (
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----",
            "encrypted PKCS#8 private key",
        ),
        (b"PuTTY-User-Key-File-", "PuTTY private key"),
    ];
    for (marker, kind) in TEXT {
        if head.windows(marker.len()).any(|w| w == *marker) {
            return Some(kind);
        }
    }
    // Dropbear's binary format: a length-prefixed key type, then the private fields.
    const DROPBEAR: &[&[u8]] = &[
        b"\0\0\0\x07ssh-rsa",
        b"\0\0\0\x0bssh-ed25519",
        b"\0\0\0\x13ecdsa-sha2-nistp",
        b"\0\0\0\x07ssh-dss",
    ];
    DROPBEAR
        .iter()
        .any(|m| head.starts_with(m) && head.len() > 64)
        .then_some("dropbear private key")
}

/// Every private key in the places a build leaves them (the homes, `/etc`, `/var/lib`,
/// `/usr/local`, `/opt`, `/srv`), by content: host keys in unusual places, TLS keys made at
/// package install, a builder's `id_rsa`. The SSH host keys at their usual paths are
/// `hostkeys.absent`'s.
pub(super) fn private_keys(scan: &mut Scan) {
    let mut dirs: Vec<String> = KEY_DIRS.iter().map(|d| d.to_string()).collect();
    dirs.extend(scan.homes());
    let host: Vec<String> = host_keys(scan.view).into_iter().map(|k| k.path).collect();
    for dir in dirs {
        for f in scan.view.files(&dir) {
            if f.size == 0 || f.size > KEY_MAX_FILE || host.contains(&f.path) {
                continue;
            }
            let Some(head) = scan.view.head(&f.path, KEY_HEAD) else {
                continue;
            };
            let Some(kind) = private_key_kind(&head) else {
                continue;
            };
            let whole = scan.view.read(&f.path).unwrap_or_default();
            let sha = hex::encode(sha2::Sha256::digest(&whole));
            let why = format!("{kind}: every server made from the image holds it");
            scan.found_with_sha(FileKind::PrivateKey, &f, why, sha);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_keys_are_recognised_by_content() {
        let pem = b"junk\n-----BEGIN RSA PRIVATE KEY-----\nMIIE...\n";
        assert_eq!(private_key_kind(pem), Some("PEM RSA private key"));
        assert_eq!(
            private_key_kind(b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl"),
            Some("OpenSSH private key")
        );
        assert_eq!(
            private_key_kind(b"PuTTY-User-Key-File-3: ssh-ed25519\n"),
            Some("PuTTY private key")
        );
        let mut dropbear = b"\0\0\0\x0bssh-ed25519".to_vec();
        dropbear.extend([7u8; 100]);
        assert_eq!(private_key_kind(&dropbear), Some("dropbear private key"));
        // Certificates and public keys are not private keys.
        assert_eq!(private_key_kind(b"-----BEGIN CERTIFICATE-----\nMII"), None);
        assert_eq!(private_key_kind(b"ssh-ed25519 AAAAC3Nz user@host\n"), None);
        assert_eq!(private_key_kind(b"-----BEGIN PUBLIC KEY-----\n"), None);
    }
}
