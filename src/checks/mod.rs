//! The check catalogue: one [`Check`] per check ([`CATALOGUE`]), each with its stable
//! [`CheckId`], the [`Rule`] of the image-hygiene policy it serves, its severity, what it
//! [`Need`]s collected from a booted guest, and a pure judge over [`Facts`]. Adding a check
//! is one entry here plus its judge in the file of its rule; `imgtest checks`, the table of
//! `docs/checks.md` ([`markdown_table`]) and the runner's choice of what to collect all
//! read the catalogue.
//!
//! A check that cannot judge (its facts are missing, or another check already names the
//! root cause) is skipped with a reason, so each defect shows up as exactly one failing
//! check id.
//!
//! For cloud-init images ([`Agent::CloudInit`]) the firstboot checks judge cloud-init's
//! equivalents: `firstboot.installed` that cloud-init is installed and not disabled,
//! `metadata.password` that user-data (instead of `initial-password`) was fetched and its
//! password works, `firstboot.disabled` that cloud-init finished the instance
//! ([`crate::facts::CLOUD_INIT_BOOT_FINISHED`]), so its per-instance modules will not run again.

mod boot;
mod firstboot;
mod identity;
mod leftovers;
mod logins;
mod logs;

use serde::{Deserialize, Serialize};

use crate::facts::{BootFacts, Facts, FileKind, Finding, Login, Offline, OfflineFacts};
use crate::named::Named;

crate::named_enum! {
    /// A check's stable id, as `--check`, the reports and `docs/checks.md` name it.
    pub enum CheckId("check id") {
        /// Boots to userspace.
        BootUserspace = "boot.userspace",
        /// No panic, oops or emergency shell on the console.
        ConsoleClean = "console.clean",
        /// Under Secure Boot, the guest runs with Secure Boot enforced.
        BootSecureBoot = "boot.secure-boot",
        /// The first-boot agent is installed with a boot hook.
        FirstbootInstalled = "firstboot.installed",
        /// The metadata password is fetched and works.
        MetadataPassword = "metadata.password",
        /// No login without the metadata password.
        FirstbootFailSafe = "firstboot.fail-safe",
        /// A wrong password is rejected.
        SshWrongPassword = "ssh.wrong-password",
        /// An empty password is rejected for every account with a login shell.
        LoginsEmptyPassword = "logins.empty-password",
        /// No copy of the account files holds a usable password.
        LoginsPasswordCopies = "logins.password-copies",
        /// No SSH public key in the image lets anyone in.
        LoginsAuthorizedKeys = "logins.authorized-keys",
        /// No host-based trust.
        LoginsHostTrust = "logins.host-trust",
        /// sshd's effective configuration lets no one in without a secret of the server's.
        LoginsSshdConfig = "logins.sshd-config",
        /// At runtime, accounts accept only the metadata service's SSH keys.
        LoginsRuntimeKeys = "logins.runtime-keys",
        /// No SSH host keys in the image.
        HostkeysAbsent = "hostkeys.absent",
        /// Host keys are generated at first boot.
        HostkeysRegenerated = "hostkeys.regenerated",
        /// Host keys differ between boots.
        HostkeysUnique = "hostkeys.unique",
        /// No account has a usable fixed password.
        PasswordsNoneFixed = "passwords.none-fixed",
        /// Logs and histories are empty.
        LogsClean = "logs.clean",
        /// No leftover test scripts.
        ScriptsNone = "scripts.none",
        /// No file no package owns where builds leave leftovers.
        LeftoversUnowned = "leftovers.unowned",
        /// No mail or cron spool.
        LogsSpools = "logs.spools",
        /// No crash dump.
        LogsCrashDumps = "logs.crash-dumps",
        /// No DHCP or NetworkManager lease.
        LogsLeases = "logs.leases",
        /// Nothing left in /tmp and /var/tmp.
        LogsTempFiles = "logs.temp-files",
        /// No package cache.
        LogsPackageCache = "logs.package-cache",
        /// machine-id is empty in the image.
        MachineIdEmpty = "machine-id.empty",
        /// machine-id differs between boots.
        MachineIdUnique = "machine-id.unique",
        /// No D-Bus machine-id systemd would reuse.
        IdentityDbusMachineId = "identity.dbus-machine-id",
        /// No saved entropy or shared secret.
        IdentitySeeds = "identity.seeds",
        /// No interface names pinned to the build machine.
        IdentityPersistentNet = "identity.persistent-net",
        /// No cloud-init instance state.
        IdentityCloudInitState = "identity.cloud-init-state",
        /// No private key every server would share.
        IdentityPrivateKeys = "identity.private-keys",
        /// The first-boot agent ran and disabled itself.
        FirstbootDisabled = "firstboot.disabled",
        /// ACPI power-off completes.
        ShutdownClean = "shutdown.clean",
    }
}

crate::named_enum! {
    /// What the image is expected to be, which decides what is judged.
    #[derive(Default)]
    pub enum Expect("expectation") {
        /// A server image: every check (the default for disks).
        #[default]
        Server = "server",
        /// A boot medium (installer, live or rescue system): it boots, from the CD before
        /// the disk, under each firmware, to its userspace; first-boot and hygiene checks
        /// are left out (the default for ISOs).
        Boot = "boot",
    }
}

impl Expect {
    /// Whether this expectation judges `check`.
    fn judges(self, check: &Check) -> bool {
        match self {
            Expect::Server => true,
            Expect::Boot => {
                check.rule == Rule::Boot
                    && !check
                        .needs
                        .iter()
                        .any(|n| matches!(n, Need::Login | Need::Probe | Need::PowerOff))
            }
        }
    }
}

crate::named_enum! {
    /// How much a failure matters.
    pub enum Severity("severity") {
        /// A failure fails the image (exit 1).
        Error = "error",
        /// A failure is reported but does not fail the image.
        Warning = "warning",
    }
}

crate::named_enum! {
    /// What a check looks at.
    pub enum Scope("scope") {
        /// The image file, before booting.
        Image = "image",
        /// Each boot separately.
        Boot = "boot",
        /// All boots together.
        Boots = "boots",
    }
}

crate::named_enum! {
    /// What a check is for: the four rules of the image guide, plus the health of the boot
    /// and of the first-boot handover that make the image usable at all.
    pub enum Rule("rule") {
        /// The image boots to userspace, cleanly, and powers off when asked.
        Boot = "boot",
        /// The platform's first-boot handover works: the password from the metadata
        /// service, and nothing else, opens the server.
        FirstBoot = "first-boot",
        /// The author's test scripts and build leftovers are erased.
        Leftovers = "leftovers",
        /// No login is reachable over the network that the image's author (or
        /// anyone holding the image) can use.
        Logins = "logins",
        /// Logs and usage information are cleared.
        Logs = "logs",
        /// Information that must be unique per server is regenerated.
        Identity = "identity",
    }
}

crate::named_enum! {
    /// What a check needs from a booted guest, beyond its console. The runner collects
    /// only what a selected check needs.
    pub enum Need("need") {
        /// The boot reached userspace (otherwise the check is skipped, naming
        /// `boot.userspace`).
        Userspace = "userspace",
        /// A login over SSH with the metadata password (and the SSH handshake's host key).
        Login = "login",
        /// The probe's facts from inside the guest (needs a login).
        Probe = "probe",
        /// One login with a wrong password, on the first boot whose SSH server answers.
        WrongPassword = "wrong-password",
        /// Logins with an empty password, one per account with a login shell, on the boot
        /// that tries the wrong password.
        EmptyPasswords = "empty-passwords",
        /// For cloud-init: waiting for cloud-init to finish the instance (needs a login).
        CloudInitFinished = "cloud-init-finished",
        /// The ACPI power button, on the first boot to finish its other work.
        PowerOff = "power-off",
    }
}

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Passed.
    Pass,
    /// Failed.
    Fail,
    /// Could not or need not judge.
    Skip,
}

/// What a judge found: a status and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// Pass, fail or skip.
    pub status: Status,
    /// Evidence on failure, reason on skip, short note on pass.
    pub evidence: String,
}

fn pass(s: impl Into<String>) -> Judgement {
    Judgement {
        status: Status::Pass,
        evidence: s.into(),
    }
}
fn fail(s: impl Into<String>) -> Judgement {
    Judgement {
        status: Status::Fail,
        evidence: s.into(),
    }
}
fn skip(s: impl Into<String>) -> Judgement {
    Judgement {
        status: Status::Skip,
        evidence: s.into(),
    }
}

/// A check's judge: a pure function of the facts it looks at.
#[derive(Clone, Copy)]
pub enum Judge {
    /// Judges the image file's facts (skipped when the image was not readable offline).
    Image(fn(&OfflineFacts, &Facts) -> Judgement),
    /// Judges each boot (skipped when no boot ran).
    Boot(fn(&BootFacts, &Facts) -> Judgement),
    /// Judges all boots together.
    Boots(fn(&Facts) -> Judgement),
}

/// One entry of the catalogue.
#[derive(Clone, Copy)]
pub struct Check {
    /// Stable id.
    pub id: CheckId,
    /// One-line title (`imgtest checks`).
    pub title: &'static str,
    /// What must hold for the check to pass, in a sentence (the table of `docs/checks.md`).
    pub holds: &'static str,
    /// The rule it serves.
    pub rule: Rule,
    /// Severity of a failure.
    pub severity: Severity,
    /// What the runner must collect for it.
    pub needs: &'static [Need],
    /// The judge.
    pub judge: Judge,
}

impl Check {
    /// What the check looks at, from its judge.
    pub fn scope(&self) -> Scope {
        match self.judge {
            Judge::Image(_) => Scope::Image,
            Judge::Boot(_) => Scope::Boot,
            Judge::Boots(_) => Scope::Boots,
        }
    }

    fn result(&self, boot: Option<usize>, j: Judgement) -> CheckResult {
        CheckResult {
            id: self.id,
            boot,
            status: j.status,
            severity: self.severity,
            evidence: crate::facts::excerpt::cut(
                &j.evidence,
                crate::facts::excerpt::EVIDENCE_CHARS,
                Some("the facts of the JSON report"),
            ),
        }
    }

    /// A per-boot check's result for boot `b`, with what else is known in `facts`.
    fn boot_result(
        &self,
        judge: fn(&BootFacts, &Facts) -> Judgement,
        b: &BootFacts,
        facts: &Facts,
    ) -> CheckResult {
        let j = if let Some(why) = &b.stopped {
            skip(why.to_string())
        } else if self.needs.contains(&Need::Userspace) && !b.reached_userspace() {
            skip("the boot did not reach userspace (see boot.userspace)")
        } else {
            judge(b, facts)
        };
        self.result(Some(b.index), j)
    }

    /// This check's results for `facts`: one, or one per boot for a per-boot check.
    fn results(&self, facts: &Facts) -> Vec<CheckResult> {
        match self.judge {
            Judge::Image(judge) => vec![self.result(
                None,
                match &facts.offline {
                    Offline::Read(o) => judge(o, facts),
                    Offline::Unreadable { reason } => {
                        skip(format!("image not readable offline: {reason}"))
                    }
                },
            )],
            Judge::Boot(_) if facts.boots.is_empty() => vec![self.result(
                None,
                skip(facts.no_boot.as_deref().unwrap_or("no boot was run")),
            )],
            Judge::Boot(judge) => facts
                .boots
                .iter()
                .map(|b| self.boot_result(judge, b, facts))
                .collect(),
            Judge::Boots(judge) => vec![self.result(None, judge(facts))],
        }
    }
}

impl Serialize for Check {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Check", 6)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("title", self.title)?;
        st.serialize_field("severity", &self.severity)?;
        st.serialize_field("scope", &self.scope())?;
        st.serialize_field("rule", &self.rule)?;
        st.serialize_field("holds", self.holds)?;
        st.end()
    }
}

/// Every check, in report order.
pub const CATALOGUE: &[Check] = &[
    Check {
        id: CheckId::BootUserspace,
        title: "boots to userspace",
        holds: "the console shows userspace (or SSH answers) before the boot deadline",
        rule: Rule::Boot,
        severity: Severity::Error,
        needs: &[],
        judge: Judge::Boot(boot::userspace),
    },
    Check {
        id: CheckId::ConsoleClean,
        title: "no panic, oops or emergency shell on the console",
        holds: "no kernel panic, oops, `grub rescue>`, emergency shell, root-not-found, \"No \
                bootable device\"; no firmware shell or boot menu, Secure Boot violation, \
                bootloader command line (`grub>`, `boot:`), menu without a timeout or failed \
                entries (any of these before userspace fails `boot.userspace` fast)",
        rule: Rule::Boot,
        severity: Severity::Error,
        needs: &[Need::Userspace],
        judge: Judge::Boot(boot::console_clean),
    },
    Check {
        id: CheckId::BootSecureBoot,
        title: "the guest runs with Secure Boot enforced (under --secure-boot)",
        holds: "with `--secure-boot`, each UEFI boot's guest reports Secure Boot enabled (the \
                `SecureBoot` EFI variable, or `mokutil --sb-state`); an unsigned bootloader \
                is refused by the firmware, which fails `boot.userspace` fast",
        rule: Rule::Boot,
        severity: Severity::Error,
        needs: &[Need::Userspace, Need::Login, Need::Probe],
        judge: Judge::Boot(boot::secure_boot),
    },
    Check {
        id: CheckId::FirstbootInstalled,
        title: "firstboot is installed with a boot hook",
        holds: "`/usr/sbin/firstboot` and a boot hook (systemd unit, init.d script, inittab); \
                for cloud-init images, cloud-init installed and not disabled",
        rule: Rule::FirstBoot,
        severity: Severity::Error,
        needs: &[],
        judge: Judge::Image(firstboot::installed),
    },
    Check {
        id: CheckId::MetadataPassword,
        title: "password from the metadata service is fetched and works over SSH",
        holds: "the guest fetched `initial-password` (cloud-init: `user-data`) and it works \
                over SSH",
        rule: Rule::FirstBoot,
        severity: Severity::Error,
        needs: &[Need::Userspace, Need::Login],
        judge: Judge::Boot(firstboot::metadata_password),
    },
    Check {
        id: CheckId::FirstbootFailSafe,
        title: "without metadata answers no login is possible",
        holds: "with `--metadata-fault`, no login is possible (only judged then)",
        rule: Rule::FirstBoot,
        severity: Severity::Error,
        needs: &[Need::Userspace, Need::Login],
        judge: Judge::Boot(firstboot::fail_safe),
    },
    Check {
        id: CheckId::SshWrongPassword,
        title: "a wrong password is rejected (tried on the first boot whose SSH server answers)",
        holds: "a random password is rejected (tried once, on the first boot whose SSH server \
                answers: the guest's failure delay of ~2 s stays off the other boots' verdicts)",
        rule: Rule::Logins,
        severity: Severity::Error,
        needs: &[Need::Login, Need::WrongPassword],
        judge: Judge::Boots(logins::wrong_password),
    },
    Check {
        id: CheckId::LoginsEmptyPassword,
        title: "an empty password is refused for every account with a login shell",
        holds: "an SSH login with an empty password is refused for every account with a login shell (tried once, beside the wrong password)",
        rule: Rule::Logins,
        severity: Severity::Error,
        needs: &[Need::Login, Need::EmptyPasswords],
        judge: Judge::Boots(logins::empty_password),
    },
    Check {
        id: CheckId::LoginsPasswordCopies,
        title: "no copy of the account files holds a usable password",
        holds: "no backup or editor copy of `passwd`, `shadow`, `gshadow` or `group` (`shadow-`, `*.bak`, `*~`, `*.dpkg-old`, ...) in `/etc`, `/var/backups` or a home holds a usable or empty password",
        rule: Rule::Logins,
        severity: Severity::Error,
        needs: &[],
        judge: Judge::Image(logins::password_copies),
    },
    Check {
        id: CheckId::LoginsAuthorizedKeys,
        title: "no SSH public key in the image lets anyone in",
        holds: "no account has authorized keys (`authorized_keys`, `authorized_keys2`, `sshd_config`'s `AuthorizedKeysFile`) and cloud-init's configuration installs none (`ssh_authorized_keys`)",
        rule: Rule::Logins,
        severity: Severity::Error,
        needs: &[],
        judge: Judge::Image(logins::authorized_keys),
    },
    Check {
        id: CheckId::LoginsHostTrust,
        title: "no host-based trust",
        holds: "no `.rhosts`, `.shosts`, `/etc/hosts.equiv` or `/etc/ssh/shosts.equiv` with entries",
        rule: Rule::Logins,
        severity: Severity::Error,
        needs: &[],
        judge: Judge::Image(logins::host_trust),
    },
    Check {
        id: CheckId::LoginsSshdConfig,
        title: "the SSH server admits no one without a secret of this server's",
        holds: "`sshd -T` at runtime: no `PermitEmptyPasswords yes`, no `TrustedUserCAKeys`, no `HostbasedAuthentication yes`; dropbear without `-B`",
        rule: Rule::Logins,
        severity: Severity::Error,
        needs: &[Need::Userspace, Need::Login, Need::Probe],
        judge: Judge::Boot(logins::sshd_config),
    },
    Check {
        id: CheckId::LoginsRuntimeKeys,
        title: "at runtime, accounts accept only the metadata service's SSH keys",
        holds: "after first boot, every account's authorized keys are the ones the metadata service handed out (keys already in the image are `logins.authorized-keys`')",
        rule: Rule::Logins,
        severity: Severity::Error,
        needs: &[Need::Userspace, Need::Login, Need::Probe],
        judge: Judge::Boot(logins::runtime_keys),
    },
    Check {
        id: CheckId::HostkeysAbsent,
        title: "no SSH host keys in the image",
        holds: "no SSH host keys (OpenSSH or dropbear) in the image",
        rule: Rule::Identity,
        severity: Severity::Error,
        needs: &[],
        judge: Judge::Image(identity::host_keys_absent),
    },
    Check {
        id: CheckId::HostkeysRegenerated,
        title: "SSH host keys are generated at first boot",
        holds: "host keys exist at runtime and are not the image's",
        rule: Rule::Identity,
        severity: Severity::Error,
        needs: &[Need::Userspace, Need::Login, Need::Probe],
        judge: Judge::Boot(identity::host_keys_regenerated),
    },
    Check {
        id: CheckId::HostkeysUnique,
        title: "SSH host keys differ between boots",
        holds: "every boot has a different host key",
        rule: Rule::Identity,
        severity: Severity::Error,
        needs: &[Need::Login],
        judge: Judge::Boots(identity::host_keys_unique),
    },
    Check {
        id: CheckId::PasswordsNoneFixed,
        title: "no account has a usable fixed password",
        holds: "no account has a usable or empty password in `/etc/shadow` or in `/etc/passwd`'s legacy field",
        rule: Rule::Logins,
        severity: Severity::Error,
        needs: &[],
        judge: Judge::Image(logins::no_fixed_password),
    },
    Check {
        id: CheckId::LogsClean,
        title: "logs, login records and shell histories are empty",
        holds: "`/var/log/**` (journal, wtmp, btmp, lastlog included), `/var/lib/wtmpdb`, a stale `utmp`, and the shell and tool histories of every home (bash, zsh, fish, python, node, mysql, psql, sqlite, less, vim, wget, `known_hosts`) are empty",
        rule: Rule::Logs,
        severity: Severity::Error,
        needs: &[],
        judge: Judge::Image(logs::clean),
    },
    Check {
        id: CheckId::ScriptsNone,
        title: "no leftover test scripts",
        holds: "no file matches the test-script patterns (`[checks] test-scripts`)",
        rule: Rule::Leftovers,
        severity: Severity::Error,
        needs: &[],
        judge: Judge::Image(leftovers::no_test_scripts),
    },
    Check {
        id: CheckId::LeftoversUnowned,
        title: "no file outside the installed packages where builds leave them",
        holds: "with a package database (dpkg, apk): no regular file in `/root`, `/home`, `/usr/local`, `/opt`, `/srv` (and no script in `/tmp`, `/var/tmp`) that no package owns, unless `[checks] allow` allows it or it is a copy of `/etc/skel`'s; without one, no script or program in `/root`, `/home`, `/tmp`, `/var/tmp`",
        rule: Rule::Leftovers,
        severity: Severity::Error,
        needs: &[],
        judge: Judge::Image(leftovers::unowned),
    },
    Check {
        id: CheckId::LogsSpools,
        title: "no mail or cron spool",
        holds: "`/var/mail`, `/var/spool/{mail,cron}` and mail queues are empty",
        rule: Rule::Logs,
        severity: Severity::Error,
        needs: &[],
        judge: Judge::Image(logs::spools),
    },
    Check {
        id: CheckId::LogsCrashDumps,
        title: "no crash dump",
        holds: "no crash dump (`/var/crash`, systemd's and apport's coredumps, `core` files)",
        rule: Rule::Logs,
        severity: Severity::Error,
        needs: &[],
        judge: Judge::Image(logs::crash_dumps),
    },
    Check {
        id: CheckId::LogsLeases,
        title: "no DHCP or NetworkManager lease",
        holds: "no lease of the build network (dhclient, dhcpcd, NetworkManager, udhcpc)",
        rule: Rule::Logs,
        severity: Severity::Error,
        needs: &[],
        judge: Judge::Image(logs::leases),
    },
    Check {
        id: CheckId::LogsTempFiles,
        title: "nothing left in /tmp and /var/tmp",
        holds: "`/tmp` and `/var/tmp` hold no files (scripts there are `leftovers.unowned`')",
        rule: Rule::Logs,
        severity: Severity::Error,
        needs: &[],
        judge: Judge::Image(logs::temp_files),
    },
    Check {
        id: CheckId::LogsPackageCache,
        title: "no package cache",
        holds: "no downloaded `.deb` or apt lists (warning only, with their size)",
        rule: Rule::Logs,
        severity: Severity::Warning,
        needs: &[],
        judge: Judge::Image(logs::package_cache),
    },
    Check {
        id: CheckId::MachineIdEmpty,
        title: "machine-id is empty in the image",
        holds: "`/etc/machine-id` is empty or absent",
        rule: Rule::Identity,
        severity: Severity::Error,
        needs: &[],
        judge: Judge::Image(identity::machine_id_empty),
    },
    Check {
        id: CheckId::MachineIdUnique,
        title: "machine-id differs between boots",
        holds: "boots have different machine-ids (skipped without one)",
        rule: Rule::Identity,
        severity: Severity::Error,
        needs: &[Need::Login, Need::Probe],
        judge: Judge::Boots(identity::machine_id_unique),
    },
    Check {
        id: CheckId::IdentityDbusMachineId,
        title: "no D-Bus machine-id systemd would reuse",
        holds: "`/var/lib/dbus/machine-id` is absent, empty or a link to `/etc/machine-id` (systemd copies a regular one into every clone)",
        rule: Rule::Identity,
        severity: Severity::Error,
        needs: &[],
        judge: Judge::Image(identity::dbus_machine_id),
    },
    Check {
        id: CheckId::IdentitySeeds,
        title: "no saved entropy or shared secret",
        holds: "no saved random seed (`/var/lib/systemd/random-seed` and equivalents) or systemd credential secret: a clone uses them at boot, before anything could replace them",
        rule: Rule::Identity,
        severity: Severity::Error,
        needs: &[],
        judge: Judge::Image(identity::seeds),
    },
    Check {
        id: CheckId::IdentityPersistentNet,
        title: "no interface names pinned to the build machine",
        holds: "no `70-persistent-net.rules` naming interfaces after the build machine's MACs",
        rule: Rule::Identity,
        severity: Severity::Error,
        needs: &[],
        judge: Judge::Image(identity::persistent_net),
    },
    Check {
        id: CheckId::IdentityCloudInitState,
        title: "no cloud-init instance state",
        holds: "`/var/lib/cloud/{instances,data,sem}` are empty (`cloud-init clean`)",
        rule: Rule::Identity,
        severity: Severity::Error,
        needs: &[],
        judge: Judge::Image(identity::cloud_init_state),
    },
    Check {
        id: CheckId::IdentityPrivateKeys,
        title: "no private key every server would share",
        holds: "no private key (PEM, OpenSSH, PuTTY, dropbear) in `/etc`, `/var/lib`, `/usr/local`, `/opt`, `/srv` or a home, unless every boot replaced it with a different one (SSH host keys at their usual paths are `hostkeys.absent`')",
        rule: Rule::Identity,
        severity: Severity::Error,
        needs: &[Need::Login, Need::Probe],
        judge: Judge::Image(identity::private_keys),
    },
    Check {
        id: CheckId::FirstbootDisabled,
        title: "firstboot ran and disabled itself",
        holds: "`firstboot status` says `state=done` and `hook=disabled` (cloud-init: \
                `/var/lib/cloud/instance/boot-finished` exists)",
        rule: Rule::FirstBoot,
        severity: Severity::Error,
        needs: &[
            Need::Userspace,
            Need::Login,
            Need::Probe,
            Need::CloudInitFinished,
        ],
        judge: Judge::Boot(firstboot::disabled),
    },
    Check {
        id: CheckId::ShutdownClean,
        title: "ACPI power-off completes within the deadline",
        holds: "QEMU exits within the deadline after `system_powerdown` (warning only; judged \
                on the first boot to finish its other checks, skipped on the others)",
        rule: Rule::Boot,
        severity: Severity::Warning,
        needs: &[Need::Userspace, Need::PowerOff],
        judge: Judge::Boot(boot::shutdown_clean),
    },
];

/// The catalogue entry of `id`.
pub fn find(id: CheckId) -> &'static Check {
    CATALOGUE
        .iter()
        .find(|c| c.id == id)
        .expect("every check id has a catalogue entry (tested)")
}

/// One check's result (for one boot, for per-boot checks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Check id.
    pub id: CheckId,
    /// Boot number for per-boot checks.
    pub boot: Option<usize>,
    /// Verdict.
    pub status: Status,
    /// Severity (copied from the catalogue).
    pub severity: Severity,
    /// Why: evidence on failure, reason on skip, short note on pass.
    pub evidence: String,
}

/// Which checks to run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Only these ids (all when empty).
    pub only: Vec<CheckId>,
    /// Never these ids.
    pub skip: Vec<CheckId>,
    /// What the image is expected to be: the checks it leaves out are reported skipped,
    /// never judged, and never count as unjudged.
    pub expect: Expect,
}

impl Selection {
    /// Whether `id` is selected.
    pub fn includes(&self, id: CheckId) -> bool {
        (self.only.is_empty() || self.only.contains(&id)) && !self.skip.contains(&id)
    }

    /// The selected checks the expectation judges.
    fn selected(&self) -> impl Iterator<Item = &'static Check> + '_ {
        CATALOGUE
            .iter()
            .filter(|c| self.includes(c.id) && self.expect.judges(c))
    }

    /// Whether any selected check needs the image booted.
    pub fn needs_boot(&self) -> bool {
        self.selected().any(|c| c.scope() != Scope::Image)
    }

    /// Whether any selected check needs `need` collected.
    pub fn needs(&self, need: Need) -> bool {
        self.selected().any(|c| c.needs.contains(&need))
    }
}

/// Evaluates the selected checks, in catalogue order (per-boot checks boot by boot); those
/// the expectation leaves out are skipped with that reason.
pub fn evaluate(facts: &Facts, selection: &Selection) -> Vec<CheckResult> {
    CATALOGUE
        .iter()
        .filter(|c| selection.includes(c.id))
        .flat_map(|c| {
            if !selection.expect.judges(c) {
                vec![c.result(
                    None,
                    skip(format!(
                        "not judged: the image is expected to be a boot medium (expect {}), \
                         whose system is not the one that is published",
                        selection.expect
                    )),
                )]
            } else {
                c.results(facts)
            }
        })
        .collect()
}

/// The per-boot checks of `selection` judged on one boot `b` alone, as soon as it is
/// done, with what else is known before the other boots end (`facts`: the offline facts,
/// the agent): what a boot needs to know whether it failed (`--fail-fast`, the shell on
/// failure) without waiting for the others.
pub fn judge_boot(b: &BootFacts, facts: &Facts, selection: &Selection) -> Vec<CheckResult> {
    CATALOGUE
        .iter()
        .filter(|c| selection.includes(c.id) && selection.expect.judges(c))
        .filter_map(|c| match c.judge {
            Judge::Boot(judge) => Some(c.boot_result(judge, b, facts)),
            Judge::Image(_) | Judge::Boots(_) => None,
        })
        .collect()
}

impl Rule {
    /// The rule's number in the image guide (1 to 4), None for boot and first-boot health.
    pub fn number(self) -> Option<u8> {
        match self {
            Rule::Boot | Rule::FirstBoot => None,
            Rule::Leftovers => Some(1),
            Rule::Logins => Some(2),
            Rule::Logs => Some(3),
            Rule::Identity => Some(4),
        }
    }
}

/// What `results` leave unjudged: each of the guide's rules whose judged checks all
/// skipped (with their reasons), and a run whose every judged check skipped. Such a run is
/// not a pass: a gate fails closed. Checks `selection`'s expectation leaves out do not
/// count: they were not to be judged.
pub fn unjudged(results: &[CheckResult], selection: &Selection) -> Vec<String> {
    let results: Vec<&CheckResult> = results
        .iter()
        .filter(|r| selection.expect.judges(find(r.id)))
        .collect();
    let mut out = Vec::new();
    for rule in Rule::ALL.iter().filter(|r| r.number().is_some()) {
        let mine: Vec<&CheckResult> = results
            .iter()
            .filter(|r| find(r.id).rule == *rule)
            .copied()
            .collect();
        if !mine.is_empty() && mine.iter().all(|r| r.status == Status::Skip) {
            let why: Vec<String> = mine
                .iter()
                .map(|r| format!("{}: {}", r.id, r.evidence))
                .collect();
            out.push(format!(
                "rule {} ({rule}): no check could judge it ({})",
                rule.number().unwrap_or(0),
                list(&why)
            ));
        }
    }
    if !results.is_empty() && results.iter().all(|r| r.status == Status::Skip) {
        out.push("the image: every selected check was skipped".into());
    }
    out
}

/// The catalogue as `docs/checks.md`'s Markdown table, grouped by rule.
pub fn markdown_table() -> String {
    let mut s = String::from(
        "| check id | rule | scope | severity | what must hold |\n|---|---|---|---|---|\n",
    );
    for rule in Rule::ALL {
        for c in CATALOGUE.iter().filter(|c| c.rule == *rule) {
            s.push_str(&format!(
                "| `{}` | {} | {} | {} | {} |\n",
                c.id,
                c.rule,
                c.scope(),
                c.severity,
                c.holds
            ));
        }
    }
    s
}

/// `items` joined for evidence: the first few and how many more.
fn list(items: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        s.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    s
}

/// The files of `kind` an offline scan found: none passes with `clean`, any fails with
/// each file, its size, mode and why.
fn files(f: &OfflineFacts, kind: FileKind, clean: &str) -> Judgement {
    let found: Vec<String> = f.found(kind).iter().map(Finding::evidence).collect();
    if found.is_empty() {
        pass(clean)
    } else {
        fail(list(&found))
    }
}

/// A fingerprint shortened for evidence.
fn short(fp: &str) -> &str {
    &fp[..fp.len().min(16)]
}

/// How the metadata-password login went, in words.
/// The boot's probe, or the one skip every check of it gives without one: why there was
/// none (the probe's error, else why there was no login).
fn probed(b: &BootFacts) -> Result<&crate::facts::ProbeFacts, Judgement> {
    b.probe.as_ref().ok_or_else(|| {
        skip(format!(
            "no probe: {}",
            b.probe_error
                .clone()
                .unwrap_or_else(|| login_text(&b.login))
        ))
    })
}

fn login_text(l: &Login) -> String {
    match l {
        Login::Worked { after_secs } => format!("login worked after {after_secs:.1}s"),
        Login::Refused { reason } => {
            format!("SSH refused the metadata password until the deadline ({reason})")
        }
        Login::NoSsh { reason } => format!("no SSH server answered before the deadline ({reason})"),
        Login::NotTried { reason } => format!("login not tried: {reason}"),
    }
}

#[cfg(test)]
mod tests;
