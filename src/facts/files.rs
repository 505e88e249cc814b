//! What the hygiene checks look at beyond single values: the accounts of an image, the
//! files an offline scan found (each with why it matters), the SSH keys a running guest
//! accepts, and the logins tried with an empty password.

use serde::{Deserialize, Serialize};

/// An account of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
}

impl Account {
    /// Whether the shell lets the account log in (not `nologin`, `false` or empty).
    pub fn can_log_in(&self) -> bool {
        let shell = self.shell.rsplit('/').next().unwrap_or("");
        !matches!(
            shell,
            "" | "nologin" | "false" | "sync" | "halt" | "shutdown"
        )
    }
}

crate::named_enum! {
    /// What kind of file an offline scan found: one kind per hygiene check that judges files.
    #[derive(PartialOrd, Ord)]
    pub enum FileKind("finding") {
        /// A copy of passwd/shadow/gshadow (backup, editor copy) with a usable password.
        PasswordCopy = "password-copy",
        /// SSH public keys that let their holder log in.
        AuthorizedKey = "authorized-key",
        /// Host-based trust: `.rhosts`, `.shosts`, `hosts.equiv`, `shosts.equiv`.
        HostTrust = "host-trust",
        /// A file no installed package owns where builds leave leftovers.
        Unowned = "unowned",
        /// Mail and cron spools.
        Spool = "spool",
        /// Crash dumps and core files.
        CrashDump = "crash-dump",
        /// DHCP and NetworkManager leases.
        Lease = "lease",
        /// The contents of `/tmp` and `/var/tmp`.
        TempFile = "temp-file",
        /// Downloaded packages and package lists.
        PackageCache = "package-cache",
        /// A D-Bus machine-id that systemd would reuse.
        DbusMachineId = "dbus-machine-id",
        /// Saved entropy and secrets every clone would share (random seeds, credential keys).
        Seed = "seed",
        /// Network interface names pinned to the build machine's MAC addresses.
        PersistentNet = "persistent-net",
        /// cloud-init's record of an instance that already ran.
        CloudInitState = "cloud-init-state",
        /// A private key (PEM, OpenSSH, PuTTY, dropbear).
        PrivateKey = "private-key",
    }
}

/// One file an offline scan found, and why it matters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Path inside the image.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// What it is and why it matters.
    pub why: String,
    /// SHA-256 of what identifies it (a key's contents), when a boot may replace it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl Finding {
    /// The finding as evidence: `path (N bytes, mode 0644): why`.
    pub fn evidence(&self) -> String {
        format!(
            "{} ({} bytes, mode {:04o}): {}",
            self.path, self.size, self.mode, self.why
        )
    }
}

/// An SSH public key an account accepts at runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeKey {
    /// The account.
    pub user: String,
    /// The file it is in.
    pub file: String,
    /// Key type and base64 blob (`ssh-ed25519 AAAA...`), without the comment.
    pub key: String,
}

/// A login tried with one password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tried {
    /// The account.
    pub user: String,
    /// Whether SSH refused it (None: no SSH answer).
    pub rejected: Option<bool>,
}
