//! A run's settings become one [`RunPlan`]. Settings come in layers of the same shape
//! ([`Settings`]): the command line's, then `imgtest.toml`'s, then the built-in defaults
//! ([`DEFAULT_CONFIG`], the commented default configuration, which is both the
//! documentation and the source of every default). The first layer that sets a field
//! wins. Nothing here knows a flag: the command line (`crate::cli`) fills its layer.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::checks::{CheckId, Expect, Selection};
use crate::cloudinit::FirstbootChoice;
use crate::disk::image::ImageKind;
use crate::facts::{Accel, Fault};
use crate::named::Named;
use crate::report::Timeouts;
use crate::vm::accel::AccelChoice;
use crate::vm::firmware::FirmwareChoice;
use crate::vm::{DirectKernel, DiskBus};

/// The commented default configuration.
pub const DEFAULT_CONFIG: &str = include_str!("imgtest.toml");

/// The most parallel boots of one image (each is a QEMU with its own RAM).
pub const MAX_BOOTS: usize = 16;

/// The longest deadline a phase (or the metadata fault's delay) may have.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// The largest TCG timeout multiplier.
pub const MAX_TCG_SCALE: u32 = 100;

/// The most connections one boot may be allowed to hold open to the metadata service.
pub const MAX_METADATA_CONNECTIONS: usize = 64;

/// The smallest console log limit: room for a boot's messages up to its login prompt.
pub const MIN_CONSOLE_LOG_LIMIT: u64 = 64 << 10;

/// One layer of settings: every field is optional, a layer sets what it names. The
/// fields are `imgtest.toml`'s.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// Parallel boots per image.
    pub boots: Option<usize>,
    /// Guest RAM in MiB (every image).
    pub memory: Option<u32>,
    /// Guest RAM in MiB for ISOs, unless `memory` is set by the command line or config.
    pub iso_memory: Option<u32>,
    /// vCPUs per boot (0: automatic).
    pub smp: Option<u32>,
    /// Bus of the image's disk.
    pub disk_bus: Option<DiskBus>,
    /// Accelerator request.
    pub accel: Option<AccelChoice>,
    /// Firmware request.
    pub firmware: Option<FirmwareChoice>,
    /// UEFI boots run OVMF's Secure Boot build with Microsoft's keys.
    pub secure_boot: Option<bool>,
    /// What the images are expected to be (unset: server for disks, boot for ISOs).
    pub expect: Option<Expect>,
    /// Login user.
    pub user: Option<String>,
    /// First-boot agent.
    pub firstboot: Option<FirstbootChoice>,
    /// Timeout multiplier under TCG.
    pub tcg_scale: Option<u32>,
    /// The most bytes of one boot's console log kept (`64M`).
    pub console_log_limit: Option<String>,
    /// Per-phase deadlines.
    #[serde(default)]
    pub timeouts: TimeoutSettings,
    /// Which checks run, and their parameters.
    #[serde(default)]
    pub checks: CheckSettings,
    /// The metadata service.
    #[serde(default)]
    pub metadata: MetadataSettings,
}

crate::named_enum! {
    /// A phase with a deadline of its own.
    pub enum TimeoutPhase("timeout phase") {
        /// VM start until the console shows userspace.
        Boot = "boot",
        /// Userspace until the metadata password works over SSH.
        Login = "login",
        /// ACPI power button until QEMU exits.
        Shutdown = "shutdown",
        /// The whole run of one image.
        Overall = "overall",
    }
}

/// `[timeouts]`: durations as people write them (`"60s"`, `"2m"`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutSettings {
    /// VM start until the console shows userspace.
    #[serde(default, with = "humantime_serde::option")]
    pub boot: Option<Duration>,
    /// Userspace until the metadata password works over SSH.
    #[serde(default, with = "humantime_serde::option")]
    pub login: Option<Duration>,
    /// ACPI power button until QEMU exits.
    #[serde(default, with = "humantime_serde::option")]
    pub shutdown: Option<Duration>,
    /// The whole run of one image.
    #[serde(default, with = "humantime_serde::option")]
    pub overall: Option<Duration>,
}

impl TimeoutSettings {
    /// Sets `phase`'s deadline.
    pub fn set(&mut self, phase: TimeoutPhase, d: Duration) {
        *match phase {
            TimeoutPhase::Boot => &mut self.boot,
            TimeoutPhase::Login => &mut self.login,
            TimeoutPhase::Shutdown => &mut self.shutdown,
            TimeoutPhase::Overall => &mut self.overall,
        } = Some(d);
    }
}

/// `[checks]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CheckSettings {
    /// Run only these check ids (all when empty).
    pub only: Option<Vec<String>>,
    /// Never run these check ids.
    pub skip: Option<Vec<String>>,
    /// Leftover test-script globs.
    pub test_scripts: Option<Vec<String>>,
    /// Globs of files no package owns that are still fine to publish.
    pub allow: Option<Vec<String>>,
}

/// `[metadata]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataSettings {
    /// The fault injected into every answer (`none`, `delay=5s`, `404`, ...).
    pub fault: Option<String>,
    /// The most connections one boot may hold open to the metadata service.
    pub connections: Option<usize>,
}

impl Settings {
    /// This layer, with the fields it leaves unset taken from `lower`.
    pub fn over(self, lower: Settings) -> Settings {
        Settings {
            boots: self.boots.or(lower.boots),
            memory: self.memory.or(lower.memory),
            iso_memory: self.iso_memory.or(lower.iso_memory),
            smp: self.smp.or(lower.smp),
            disk_bus: self.disk_bus.or(lower.disk_bus),
            accel: self.accel.or(lower.accel),
            firmware: self.firmware.or(lower.firmware),
            secure_boot: self.secure_boot.or(lower.secure_boot),
            expect: self.expect.or(lower.expect),
            user: self.user.or(lower.user),
            firstboot: self.firstboot.or(lower.firstboot),
            tcg_scale: self.tcg_scale.or(lower.tcg_scale),
            console_log_limit: self.console_log_limit.or(lower.console_log_limit),
            timeouts: TimeoutSettings {
                boot: self.timeouts.boot.or(lower.timeouts.boot),
                login: self.timeouts.login.or(lower.timeouts.login),
                shutdown: self.timeouts.shutdown.or(lower.timeouts.shutdown),
                overall: self.timeouts.overall.or(lower.timeouts.overall),
            },
            checks: CheckSettings {
                only: self.checks.only.or(lower.checks.only),
                skip: self.checks.skip.or(lower.checks.skip),
                test_scripts: self.checks.test_scripts.or(lower.checks.test_scripts),
                allow: self.checks.allow.or(lower.checks.allow),
            },
            metadata: MetadataSettings {
                fault: self.metadata.fault.or(lower.metadata.fault),
                connections: self.metadata.connections.or(lower.metadata.connections),
            },
        }
    }

    /// Parses an `imgtest.toml`; `name` (the file) prefixes the error.
    pub fn parse(text: &str, name: &str) -> Result<Settings, PlanError> {
        toml::from_str(text).map_err(|e| PlanError::BadConfig {
            path: name.to_string(),
            message: e.to_string(),
        })
    }

    /// The built-in defaults.
    pub fn defaults() -> Settings {
        Settings::parse(DEFAULT_CONFIG, "built-in defaults").expect("the default config parses")
    }
}

impl Timeouts {
    /// These timeouts for `accel`: multiplied by `tcg_scale` under TCG.
    pub fn for_accel(self, accel: Accel, tcg_scale: u32) -> Timeouts {
        let k = if accel == Accel::Tcg {
            tcg_scale.max(1)
        } else {
            1
        };
        Timeouts {
            boot: self.boot * k,
            login: self.login * k,
            shutdown: self.shutdown * k,
            overall: self.overall * k,
        }
    }
}

/// Everything one `imgtest run` does.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    /// Images, tested one after the other.
    pub images: Vec<PathBuf>,
    /// Accelerator request.
    pub accel: AccelChoice,
    /// Firmware request.
    pub firmware: FirmwareChoice,
    /// UEFI boots run OVMF's Secure Boot build with Microsoft's keys enrolled.
    pub secure_boot: bool,
    /// What the images are expected to be; None: by kind ([`RunPlan::expect_for`]).
    pub expect: Option<Expect>,
    /// Further disks attached after the image (or the CD), each on its own overlay.
    pub disks: Vec<PathBuf>,
    /// Guest RAM (MiB) of a disk image.
    pub memory_mib: u32,
    /// Guest RAM (MiB) of an ISO.
    pub iso_memory_mib: u32,
    /// vCPUs per boot; 0 is automatic (see [`RunPlan::vcpus`]).
    pub smp: u32,
    /// Disk bus.
    pub disk_bus: DiskBus,
    /// Parallel boots.
    pub boots: usize,
    /// Timeouts as configured (before TCG scaling).
    pub timeouts: Timeouts,
    /// TCG multiplier.
    pub tcg_scale: u32,
    /// Login user; None: chosen per image with the agent ([`crate::cloudinit::choose`]).
    pub user: Option<String>,
    /// First-boot agent.
    pub firstboot: FirstbootChoice,
    /// Selected checks.
    pub selection: Selection,
    /// What the offline phase looks for: test-script globs, allowed unowned files.
    pub offline: crate::offline::Options,
    /// Stop at the first failed check.
    pub fail_fast: bool,
    /// A rule no check could judge does not stop the run from passing.
    pub allow_unjudged: bool,
    /// Metadata fault.
    pub fault: Fault,
    /// The most connections one boot may hold open to the metadata service; the rest are
    /// closed at once.
    pub metadata_connections: usize,
    /// The most bytes of one boot's console log written; the rest is cut, with a marker.
    pub console_log_limit: u64,
    /// JSON report path.
    pub json: Option<PathBuf>,
    /// JUnit report path.
    pub junit: Option<PathBuf>,
    /// HTML report path.
    pub html: Option<PathBuf>,
    /// Artifacts directory.
    pub artifacts: Option<PathBuf>,
    /// Direct kernel boot instead of the image's bootloader.
    pub direct_kernel: Option<DirectKernel>,
    /// The configuration file the settings came from, if any.
    pub config: Option<PathBuf>,
    /// The program QEMU runs as metadata relay (`PROGRAM __relay SOCKET`).
    pub relay_program: PathBuf,
    /// Who takes over the first boot whose checks fail, instead of its power-off.
    pub shell_on_failure: Option<crate::run::shell::Person>,
    /// The QEMU binary.
    pub qemu: String,
}

/// Why the settings do not make a plan.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The config file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The config file is invalid.
    #[error("{path}: {message}")]
    BadConfig {
        /// The file.
        path: String,
        /// The parse error.
        message: String,
    },
    /// A setting is invalid.
    #[error("{0}")]
    Invalid(String),
}

/// What a caller asks of a run besides its settings layer.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// Images to test.
    pub images: Vec<PathBuf>,
    /// The caller's settings (the command line's), over the config file's.
    pub settings: Settings,
    /// The config file; None: `./imgtest.toml` if it exists.
    pub config: Option<PathBuf>,
    /// JSON report path.
    pub json: Option<PathBuf>,
    /// JUnit report path.
    pub junit: Option<PathBuf>,
    /// HTML report path.
    pub html: Option<PathBuf>,
    /// Artifacts directory.
    pub artifacts: Option<PathBuf>,
    /// Direct kernel boot instead of the image's bootloader.
    pub direct_kernel: Option<DirectKernel>,
    /// Further disks attached after the image (or the CD).
    pub disks: Vec<PathBuf>,
    /// Stop at the first failed check.
    pub fail_fast: bool,
    /// A rule no check could judge does not stop the run from passing.
    pub allow_unjudged: bool,
    /// Who takes over the first boot whose checks fail, instead of its power-off.
    pub shell_on_failure: Option<crate::run::shell::Person>,
}

/// A field every complete layer stack sets (the built-in defaults set them all: tested).
fn set<T>(v: Option<T>, what: &str) -> T {
    v.unwrap_or_else(|| panic!("the built-in defaults set {what}"))
}

fn check_ids(ids: Vec<String>) -> Result<Vec<CheckId>, PlanError> {
    let unknown: Vec<&str> = ids
        .iter()
        .filter(|id| CheckId::from_name(id).is_none())
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(PlanError::Invalid(format!(
            "unknown check id(s): {} (see `imgtest checks`)",
            unknown.join(", ")
        )));
    }
    Ok(ids.iter().filter_map(|id| CheckId::from_name(id)).collect())
}

/// Refuses numbers no run can mean: no boot or more than [`MAX_BOOTS`], less than 64 MiB
/// of RAM, a zero deadline or one longer than [`MAX_TIMEOUT`] (also the metadata fault's
/// delay), a TCG multiplier outside 1..=[`MAX_TCG_SCALE`].
fn check_limits(
    boots: usize,
    memory_mib: u32,
    timeouts: &Timeouts,
    tcg_scale: u32,
    fault: Fault,
) -> Result<(), PlanError> {
    let bad = |m: String| Err(PlanError::Invalid(m));
    if !(1..=MAX_BOOTS).contains(&boots) {
        return bad(format!("boots must be from 1 to {MAX_BOOTS}, not {boots}"));
    }
    if memory_mib < 64 {
        return bad("memory must be at least 64 MiB".into());
    }
    if !(1..=MAX_TCG_SCALE).contains(&tcg_scale) {
        return bad(format!(
            "tcg-scale must be from 1 to {MAX_TCG_SCALE}, not {tcg_scale}"
        ));
    }
    let delay = match fault {
        Fault::Delay(d) => Some(("metadata fault delay", d)),
        _ => None,
    };
    let phases = [
        ("boot timeout", timeouts.boot),
        ("login timeout", timeouts.login),
        ("shutdown timeout", timeouts.shutdown),
        ("overall timeout", timeouts.overall),
    ];
    for (what, d) in phases.into_iter().chain(delay) {
        if d.is_zero() && what.ends_with("timeout") {
            return bad(format!("the {what} must be longer than 0s"));
        }
        if d > MAX_TIMEOUT {
            return bad(format!(
                "the {what} of {}h is longer than the {}h maximum",
                d.as_secs() / 3600,
                MAX_TIMEOUT.as_secs() / 3600
            ));
        }
    }
    Ok(())
}

/// The bounds a guest is held to: the metadata connections one boot may hold open
/// (1..=[`MAX_METADATA_CONNECTIONS`]) and the console log's limit (at least
/// [`MIN_CONSOLE_LOG_LIMIT`]).
fn guest_bounds(s: &Settings) -> Result<(usize, u64), PlanError> {
    let metadata_connections = set(s.metadata.connections, "metadata.connections");
    if !(1..=MAX_METADATA_CONNECTIONS).contains(&metadata_connections) {
        return Err(PlanError::Invalid(format!(
            "metadata connections must be from 1 to {MAX_METADATA_CONNECTIONS}, not {metadata_connections}"
        )));
    }
    let limit = set(s.console_log_limit.clone(), "console-log-limit");
    let console_log_limit = crate::units::parse_size(&limit)
        .map_err(|e| PlanError::Invalid(format!("console-log-limit: {e}")))?;
    if console_log_limit < MIN_CONSOLE_LOG_LIMIT {
        return Err(PlanError::Invalid(format!(
            "console-log-limit must be at least {}, not {}",
            crate::units::human(MIN_CONSOLE_LOG_LIMIT),
            crate::units::human(console_log_limit)
        )));
    }
    Ok((metadata_connections, console_log_limit))
}

impl RunPlan {
    /// Resolves `request` against a config (text and name) and the built-in defaults.
    /// `relay_program` is the imgtest binary itself.
    pub fn resolve(
        request: RunRequest,
        config: Option<(&str, &str)>,
        relay_program: PathBuf,
    ) -> Result<RunPlan, PlanError> {
        let file = match config {
            Some((text, name)) => Settings::parse(text, name)?,
            None => Settings::default(),
        };
        // `memory` set by the command line or the config applies to ISOs too.
        let explicit_memory = request.settings.memory.or(file.memory);
        let s = request.settings.over(file).over(Settings::defaults());
        let (metadata_connections, console_log_limit) = guest_bounds(&s)?;
        let t = &s.timeouts;
        let timeouts = Timeouts {
            boot: set(t.boot, "timeouts.boot"),
            login: set(t.login, "timeouts.login"),
            shutdown: set(t.shutdown, "timeouts.shutdown"),
            overall: set(t.overall, "timeouts.overall"),
        };
        let selection = Selection {
            only: check_ids(s.checks.only.unwrap_or_default())?,
            skip: check_ids(s.checks.skip.unwrap_or_default())?,
            expect: Expect::Server,
        };
        let fault = s
            .metadata
            .fault
            .as_deref()
            .unwrap_or("none")
            .parse()
            .map_err(PlanError::Invalid)?;
        let boots = set(s.boots, "boots");
        let memory_mib = set(s.memory, "memory");
        let tcg_scale = set(s.tcg_scale, "tcg-scale");
        check_limits(boots, memory_mib, &timeouts, tcg_scale, fault)?;
        let iso_memory_mib = explicit_memory.unwrap_or(set(s.iso_memory, "iso-memory"));
        if iso_memory_mib < 64 {
            return Err(PlanError::Invalid("memory must be at least 64 MiB".into()));
        }
        if !request.disks.is_empty() && s.disk_bus == Some(DiskBus::Ide) {
            return Err(PlanError::Invalid(
                "further disks need a disk bus with room for them (virtio or scsi), not ide".into(),
            ));
        }
        Ok(RunPlan {
            images: request.images,
            accel: set(s.accel, "accel"),
            firmware: set(s.firmware, "firmware"),
            secure_boot: set(s.secure_boot, "secure-boot"),
            expect: s.expect,
            disks: request.disks,
            memory_mib,
            iso_memory_mib,
            smp: set(s.smp, "smp"),
            disk_bus: set(s.disk_bus, "disk-bus"),
            boots,
            timeouts,
            tcg_scale,
            user: s.user,
            firstboot: set(s.firstboot, "firstboot"),
            selection,
            offline: crate::offline::Options {
                test_scripts: s.checks.test_scripts.unwrap_or_default(),
                allow: s.checks.allow.unwrap_or_default(),
            },
            fail_fast: request.fail_fast,
            allow_unjudged: request.allow_unjudged,
            fault,
            metadata_connections,
            console_log_limit,
            json: request.json,
            junit: request.junit,
            html: request.html,
            artifacts: request.artifacts,
            direct_kernel: request.direct_kernel,
            config: None,
            relay_program,
            shell_on_failure: request.shell_on_failure,
            qemu: "qemu-system-x86_64".into(),
        })
    }

    /// What `kind` of image is expected to be: as set, else a boot medium for an ISO
    /// and a server for a disk.
    pub fn expect_for(&self, kind: ImageKind) -> Expect {
        self.expect.unwrap_or(match kind {
            ImageKind::Iso { .. } => Expect::Boot,
            _ => Expect::Server,
        })
    }

    /// Guest RAM (MiB) for `kind` of image.
    pub fn memory_for(&self, kind: ImageKind) -> u32 {
        match kind {
            ImageKind::Iso { .. } => self.iso_memory_mib,
            _ => self.memory_mib,
        }
    }

    /// vCPUs per boot under `accel` on a host with `host_cpus` CPUs: the configured
    /// number, or automatically 2 under KVM and, under TCG, the host's CPUs divided among
    /// the parallel boots (1 or 2).
    pub fn vcpus(&self, accel: Accel, host_cpus: u32) -> u32 {
        match (self.smp, accel) {
            (0, Accel::Kvm) => 2,
            (0, Accel::Tcg) => (host_cpus / self.boots.max(1) as u32).clamp(1, 2),
            (n, _) => n,
        }
    }

    /// Reads the request's config file, else `./imgtest.toml` if it exists, and resolves.
    pub fn load(request: RunRequest, relay_program: PathBuf) -> Result<RunPlan, PlanError> {
        let path = request
            .config
            .clone()
            .or_else(|| Some(PathBuf::from("imgtest.toml")).filter(|p| p.exists()));
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(&p).map_err(|source| PlanError::ReadConfig {
                    path: p.clone(),
                    source,
                })?;
                let plan = RunPlan::resolve(request, Some((&text, &display(&p))), relay_program)?;
                Ok(RunPlan {
                    config: Some(p),
                    ..plan
                })
            }
            None => RunPlan::resolve(request, None, relay_program),
        }
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(settings: Settings, config: Option<&str>) -> Result<RunPlan, PlanError> {
        let request = RunRequest {
            images: vec!["a.img".into()],
            settings,
            ..RunRequest::default()
        };
        RunPlan::resolve(request, config.map(|c| (c, "my.toml")), "/x".into())
    }

    #[test]
    fn the_default_config_sets_every_field() {
        let d = Settings::defaults();
        let all = Settings {
            user: Some("u".into()),
            ..d.clone()
        };
        // Every field but the user (chosen per image) is set by the defaults: a layer
        // that sets everything changes nothing when the defaults go under it.
        assert_eq!(all.clone().over(Settings::default()), all);
        assert_eq!(d.clone().over(all.clone()).user.as_deref(), Some("u"));
        assert!(resolve(Settings::default(), None).is_ok());
    }

    #[test]
    fn config_values_are_checked() {
        let e = resolve(Settings::default(), Some("[checks]\nonly = [\"nope\"]\n")).unwrap_err();
        assert!(e.to_string().contains("unknown check id(s): nope"), "{e}");
        let e = resolve(Settings::default(), Some("disk-bus = \"sata\"\n")).unwrap_err();
        assert!(e.to_string().contains("unknown disk bus `sata`"), "{e}");
        let e = resolve(Settings::default(), Some("[timeouts]\nboot = \"soon\"\n")).unwrap_err();
        assert!(e.to_string().starts_with("my.toml:"), "{e}");
        let e = resolve(Settings::default(), Some("[metadata]\nfault = \"flaky\"\n")).unwrap_err();
        assert!(
            e.to_string().contains("unknown metadata fault `flaky`"),
            "{e}"
        );
    }

    #[test]
    fn numbers_no_run_can_mean_are_refused() {
        let cases = [
            ("boots = 0\n", "boots must be from 1 to 16, not 0"),
            ("boots = 1000\n", "boots must be from 1 to 16, not 1000"),
            ("memory = 10\n", "memory must be at least 64 MiB"),
            ("tcg-scale = 0\n", "tcg-scale must be from 1 to 100, not 0"),
            (
                "[metadata]\nconnections = 0\n",
                "metadata connections must be from 1 to 64, not 0",
            ),
            (
                "console-log-limit = \"1K\"\n",
                "console-log-limit must be at least 64.0 KiB, not 1.0 KiB",
            ),
            (
                "console-log-limit = \"lots\"\n",
                "console-log-limit: invalid size 'lots': expected a number of bytes, e.g. 4096, 512K, 2G",
            ),
            (
                "[timeouts]\nboot = \"0s\"\n",
                "the boot timeout must be longer than 0s",
            ),
            (
                "[timeouts]\noverall = \"1000000000000000h\"\n",
                "the overall timeout of 1000000000000000h is longer than the 24h maximum",
            ),
            (
                "[metadata]\nfault = \"delay=2days\"\n",
                "the metadata fault delay of 48h is longer than the 24h maximum",
            ),
        ];
        for (config, message) in cases {
            let e = resolve(Settings::default(), Some(config)).unwrap_err();
            assert_eq!(e.to_string(), message, "{config}");
        }
        assert!(
            resolve(
                Settings::default(),
                Some("[metadata]\nfault = \"delay=0s\"\n")
            )
            .is_ok()
        );
    }
}
