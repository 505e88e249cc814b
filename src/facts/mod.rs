//! Facts: what imgtest learned about an image, offline from the file and online from each
//! boot, and the conditions it learned them under. The bottom of the result model: the
//! collectors (`offline`, `console`, `guest`, `metadata`, `run`) fill these types, the
//! checks (`crate::checks`) judge them, the report (`crate::report`) carries them.
//! Everything here is plain serialisable data; this module depends on no other module of
//! the crate but [`crate::named`].

pub mod artifacts;
mod conditions;
mod console;
pub mod excerpt;
mod files;
mod firmware;
mod screen;

use serde::{Deserialize, Serialize};

pub use conditions::{Accel, AccelDecision, Fault};
pub use console::{ConsoleFailure, ConsoleSummary, FailureKind, Phase};
pub use files::{Account, FileKind, Finding, RuntimeKey, Tried};
pub use firmware::{BootSupport, Firmware, FirmwareFacts, SecureBootState};
pub use screen::{Screenshot, ShotMoment};

/// A host key file and the SHA-256 of its contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    /// Path inside the guest.
    pub path: String,
    /// Hex SHA-256 of the file.
    pub sha256: String,
}

/// Facts read from the image file before booting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflineFacts {
    /// Where the root filesystem was found.
    pub source: String,
    /// Whether /etc/shadow exists.
    pub shadow_readable: bool,
    /// Accounts with a usable (or empty) password.
    pub password_accounts: Vec<String>,
    /// SSH host keys baked into the image.
    pub host_keys: Vec<KeyFile>,
    /// Non-empty logs, login records and shell histories (`path (N bytes)`).
    pub dirty_logs: Vec<String>,
    /// Files matching the test-script patterns.
    pub test_scripts: Vec<String>,
    /// /etc/machine-id when non-empty.
    pub machine_id: Option<String>,
    /// /usr/sbin/firstboot exists.
    pub firstboot_program: bool,
    /// Boot hooks that run firstboot.
    pub firstboot_hooks: Vec<String>,
    /// cloud-init as installed and configured in the image (None: not installed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init: Option<CloudInitFacts>,
    /// The accounts of `/etc/passwd`.
    #[serde(default)]
    pub accounts: Vec<Account>,
    /// The package database leftovers are judged against (`dpkg`, `apk`), None without one.
    #[serde(default)]
    pub package_db: Option<String>,
    /// SSH servers the image can run; empty: none can (see [`OfflineFacts::no_ssh`]).
    #[serde(default)]
    pub ssh_servers: Vec<String>,
    /// Why no SSH server can ever answer, when the image shows it (programs absent, units
    /// masked).
    #[serde(default)]
    pub no_ssh: Option<String>,
    /// Why no SSH server starts at boot (none enabled), when the image shows it.
    #[serde(default)]
    pub ssh_disabled: Option<String>,
    /// SHA-256 (hex) of the public host keys baked into the image (`ssh_host_*_key.pub`),
    /// as an SSH handshake shows a server's key.
    #[serde(default)]
    pub host_key_fingerprints: Vec<String>,
    /// The SSH public keys (`type base64`) the image's authorized keys files hold.
    #[serde(default)]
    pub baked_keys: Vec<String>,
    /// Files the hygiene checks found, by kind.
    #[serde(default)]
    pub findings: std::collections::BTreeMap<FileKind, Vec<Finding>>,
}

impl OfflineFacts {
    /// The files found of `kind`.
    pub fn found(&self, kind: FileKind) -> &[Finding] {
        self.findings.get(&kind).map_or(&[], Vec::as_slice)
    }
}

/// cloud-init in the image, read from its files and `/etc/cloud/cloud.cfg` (+ `cloud.cfg.d`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudInitFacts {
    /// `/usr/bin/cloud-init` and `/etc/cloud/cloud.cfg` both exist.
    pub installed: bool,
    /// Why cloud-init will not run at boot, when the image shows it:
    /// `/etc/cloud/cloud-init.disabled`, or (under systemd) every one of its units masked
    /// or none of them enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switched_off: Option<String>,
    /// `system_info: default_user: name:`, the account `password:` in user-data sets.
    pub default_user: Option<String>,
    /// `ssh_deletekeys` (cloud-init's default: true, delete and regenerate host keys).
    pub ssh_deletekeys: bool,
}

crate::named_enum! {
    /// What sets the metadata password and regenerates host keys at first boot.
    pub enum Agent("first-boot agent") {
        /// imgtest's firstboot (`/usr/sbin/firstboot`, EC2-style `initial-password`).
        Firstboot = "firstboot",
        /// Stock cloud-init (NoCloud seed URL from the SMBIOS serial, `#cloud-config` user-data).
        CloudInit = "cloud-init",
    }
}

impl Agent {
    /// What carries the password to the guest for this agent.
    pub fn password_source(self) -> &'static str {
        match self {
            Agent::Firstboot => "initial-password",
            Agent::CloudInit => "user-data",
        }
    }
}

/// The file cloud-init's final stage writes when it has run every module of this instance:
/// its existence means cloud-init will not run the instance's per-instance modules again.
pub const CLOUD_INIT_BOOT_FINISHED: &str = "/var/lib/cloud/instance/boot-finished";

/// The first-boot agent and login user a run used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentFacts {
    /// The agent.
    pub agent: Agent,
    /// The account imgtest logs in as.
    pub user: String,
    /// How both were chosen (flag, or what auto-detection found).
    pub reason: String,
}

/// Offline facts, or why the image could not be read offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "status")]
pub enum Offline {
    /// The root filesystem was read.
    Read(Box<OfflineFacts>),
    /// It could not be (ISO, unknown filesystem, ...).
    Unreadable {
        /// Why.
        reason: String,
    },
}

/// What `harness/probe.sh` reports from inside a booted guest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeFacts {
    /// `uname -r`.
    pub kernel: String,
    /// /etc/machine-id contents (may be empty).
    pub machine_id: String,
    /// The running hostname.
    pub hostname: String,
    /// Host key files present at runtime.
    pub host_keys: Vec<KeyFile>,
    /// `firstboot status`: state=done|pending|failed (empty if not installed).
    pub firstboot_state: String,
    /// `firstboot status`: hook=enabled|disabled.
    pub firstboot_hook: String,
    /// Accounts with a usable password at runtime.
    pub password_accounts: Vec<String>,
    /// Accounts with a login shell (for the empty-password logins).
    #[serde(default)]
    pub login_accounts: Vec<String>,
    /// sshd's effective settings (`sshd -T`) that decide who may log in, by lower-case name;
    /// empty without OpenSSH.
    #[serde(default)]
    pub sshd: std::collections::BTreeMap<String, String>,
    /// Dropbear's command lines, when it runs (its options are flags).
    #[serde(default)]
    pub dropbear: Vec<String>,
    /// The SSH public keys accounts accept at runtime.
    #[serde(default)]
    pub authorized_keys: Vec<RuntimeKey>,
    /// SHA-256 of the files imgtest asked about (the image's private keys): whether each
    /// boot replaced them. Empty SHA-256: the file is gone.
    #[serde(default)]
    pub files: Vec<KeyFile>,
    /// UEFI and Secure Boot as the guest sees them.
    #[serde(default)]
    pub secure_boot: SecureBootState,
}

impl ProbeFacts {
    /// The facts with every string and list the guest controls bounded
    /// ([`excerpt`]): free text at a few hundred characters, paths and keys (which the
    /// checks compare whole) at [`excerpt::VALUE_CHARS`], lists at
    /// [`excerpt::EXCERPT_ITEMS`].
    pub fn bounded(mut self) -> ProbeFacts {
        use excerpt::{bound, bound_list, bound_value, more_strings};
        let key_file = |k: &mut KeyFile| {
            bound_value(&mut k.path);
            bound(&mut k.sha256);
        };
        for s in [
            &mut self.kernel,
            &mut self.machine_id,
            &mut self.hostname,
            &mut self.firstboot_state,
            &mut self.firstboot_hook,
            &mut self.secure_boot.source,
        ] {
            bound(s);
        }
        bound_list(&mut self.host_keys, key_file, |_| None);
        bound_list(&mut self.files, key_file, |_| None);
        bound_list(&mut self.password_accounts, bound, more_strings);
        bound_list(&mut self.login_accounts, bound, more_strings);
        bound_list(&mut self.dropbear, bound, more_strings);
        bound_list(
            &mut self.authorized_keys,
            |k| {
                bound(&mut k.user);
                bound_value(&mut k.file);
                bound_value(&mut k.key);
            },
            |_| None,
        );
        let mut sshd: Vec<(String, String)> = std::mem::take(&mut self.sshd).into_iter().collect();
        bound_list(
            &mut sshd,
            |(k, v)| {
                bound(k);
                bound(v);
            },
            |_| None,
        );
        self.sshd = sshd.into_iter().collect();
        self
    }
}

/// Why a boot stopped waiting before its stages ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "reason")]
pub enum StopReason {
    /// QEMU exited (the guest powered off, rebooted or crashed it).
    QemuExited,
    /// The console showed a failure of this kind.
    Console {
        /// The failure.
        kind: FailureKind,
    },
    /// The run was interrupted (Ctrl-C, a signal).
    Interrupted,
    /// The run fails fast: another boot failed `check`.
    FailFast {
        /// The check that failed.
        check: String,
        /// The boot it failed on.
        boot: usize,
    },
    /// The host could not run one of the run's boots (QEMU's words).
    HostFault {
        /// What QEMU said.
        said: String,
    },
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::QemuExited => write!(f, "QEMU exited"),
            StopReason::Console { kind } => write!(f, "{} on the console", kind.words()),
            StopReason::Interrupted => write!(f, "interrupted"),
            StopReason::FailFast { check, boot } => {
                write!(
                    f,
                    "failing fast: stopped after {check} failed on boot {boot}"
                )
            }
            StopReason::HostFault { said } => f.write_str(said),
        }
    }
}

/// How logging in with the metadata password went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum Login {
    /// The password worked this many seconds after QEMU started.
    Worked {
        /// Seconds since QEMU started.
        after_secs: f64,
    },
    /// The SSH server answered but never accepted the password before the deadline.
    Refused {
        /// The last error.
        reason: String,
    },
    /// No SSH server answered before the deadline.
    NoSsh {
        /// The last error.
        reason: String,
    },
    /// Not attempted.
    NotTried {
        /// Why.
        reason: String,
    },
}

/// How the ACPI shutdown went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum Shutdown {
    /// QEMU exited this many seconds after `system_powerdown`.
    Clean {
        /// Seconds.
        secs: f64,
    },
    /// The guest did not power off within the deadline.
    TimedOut {
        /// The deadline in seconds.
        deadline_secs: f64,
    },
    /// Not attempted or QMP failed.
    NotDone {
        /// Why.
        reason: String,
    },
}

/// Everything learned from one boot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootFacts {
    /// Boot number, from 0.
    pub index: usize,
    /// The firmware it booted with.
    #[serde(default)]
    pub firmware: Firmware,
    /// Phases, failures and tail of the serial console.
    pub console: ConsoleSummary,
    /// How QEMU ended, if it ended on its own before imgtest stopped it.
    pub qemu_exit: Option<String>,
    /// Whether the guest fetched its initial password (HTTP 200).
    pub password_fetched: bool,
    /// Number of metadata requests from this boot.
    pub metadata_requests: usize,
    /// Connections to the metadata service closed unanswered because this boot already
    /// held its cap of them open.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub metadata_refused: usize,
    /// Seconds until the SSH server completed a handshake.
    pub ssh_secs: Option<f64>,
    /// SHA-256 fingerprint of the host key from the SSH handshake (hex).
    pub host_key_sha256: Option<String>,
    /// Login with the metadata password.
    pub login: Login,
    /// Whether a wrong password was rejected (None: not tried on this boot; it is tried
    /// once per run, on the first boot whose SSH server answered).
    pub wrong_password_rejected: Option<bool>,
    /// The probe's report, if it ran.
    pub probe: Option<ProbeFacts>,
    /// Why the probe did not run or failed.
    pub probe_error: Option<String>,
    /// The ACPI shutdown.
    pub shutdown: Shutdown,
    /// cloud-init images: seconds (since QEMU started) until
    /// `/var/lib/cloud/instance/boot-finished` existed, None if it never did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init_finished_secs: Option<f64>,
    /// The SSH public key the metadata service handed this boot (`public-keys`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_key: Option<String>,
    /// Logins with an empty password, one per account with a login shell (tried once per
    /// run, on the boot that tried the wrong password).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub empty_passwords: Vec<Tried>,
    /// Why the boot was stopped before its stages ended (failing fast after another
    /// boot's failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<StopReason>,
    /// Seconds (since QEMU started) until the probe finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_secs: Option<f64>,
    /// Seconds (since QEMU started) until the ACPI power button was pressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub powerdown_secs: Option<f64>,
    /// Seconds (since QEMU started) until QEMU was gone: the boot's whole length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_secs: Option<f64>,
    /// The screens the guest showed (VGA screenshots over QMP), in the order taken.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub screenshots: Vec<Screenshot>,
}

impl BootFacts {
    /// A boot under `firmware` about which nothing is known yet.
    pub fn new(index: usize, firmware: Firmware) -> Self {
        BootFacts {
            index,
            firmware,
            console: ConsoleSummary::default(),
            qemu_exit: None,
            password_fetched: false,
            metadata_requests: 0,
            metadata_refused: 0,
            ssh_secs: None,
            host_key_sha256: None,
            login: Login::NotTried {
                reason: "the guest did not boot".into(),
            },
            wrong_password_rejected: None,
            probe: None,
            probe_error: None,
            shutdown: Shutdown::NotDone {
                reason: "the guest did not boot".into(),
            },
            cloud_init_finished_secs: None,
            metadata_key: None,
            empty_passwords: Vec::new(),
            stopped: None,
            probe_secs: None,
            powerdown_secs: None,
            end_secs: None,
            screenshots: Vec::new(),
        }
    }

    /// Whether the guest reached userspace (console, or an SSH server answered).
    pub fn reached_userspace(&self) -> bool {
        self.console.reached(Phase::Userspace).is_some() || self.ssh_secs.is_some()
    }

    /// The screenshot taken at `moment`, if one was.
    pub fn screenshot(&self, moment: ShotMoment) -> Option<&Screenshot> {
        self.screenshots.iter().find(|s| s.moment == moment)
    }
}

/// All facts of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    /// From the image file.
    pub offline: Offline,
    /// From each boot (empty when no selected check needs a boot).
    pub boots: Vec<BootFacts>,
    /// The metadata fault injected for every boot.
    pub fault: Fault,
    /// The first-boot agent and login user (None: firstboot as root, the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentFacts>,
    /// Why no boot ran although a selected check needed one (`--fail-fast`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_boot: Option<String>,
    /// The firmwares the boots used and why (None: no boot was planned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<FirmwareFacts>,
}

impl Facts {
    /// The first-boot agent the checks judge.
    pub fn agent(&self) -> Agent {
        self.agent.as_ref().map_or(Agent::Firstboot, |a| a.agent)
    }
}

/// Whether a count is zero (a field serde leaves out).
fn is_zero(n: &usize) -> bool {
    *n == 0
}
