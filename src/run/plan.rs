//! Flags and `imgtest.toml` become one [`RunPlan`]; nothing below the CLI sees flags.
//! The embedded default config ([`DEFAULT_CONFIG`]) is both the documentation and the
//! source of every default. Precedence: flag, then config file, then default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::checks::Selection;
use crate::cloudinit::FirstbootChoice;
use crate::metadata::Fault;
use crate::vm::accel::AccelChoice;
use crate::vm::{Accel, DirectKernel, DiskBus};

/// The commented default configuration.
pub const DEFAULT_CONFIG: &str = include_str!("imgtest.toml");

/// The boot and check options `imgtest run`, `matrix` and `bisect` share.
#[derive(Debug, Clone, Default, Args)]
pub struct BootOptions {
    /// Configuration file (default: ./imgtest.toml if present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Accelerator: auto, kvm or tcg.
    #[arg(long)]
    pub accel: Option<AccelChoice>,
    /// Guest RAM in MiB.
    #[arg(short = 'm', long = "memory", value_name = "MiB")]
    pub memory: Option<u32>,
    /// vCPUs per guest (default: the host's CPUs shared among all parallel boots under TCG).
    #[arg(long)]
    pub smp: Option<u32>,
    /// Disk bus: virtio, ide or scsi.
    #[arg(long)]
    pub disk_bus: Option<DiskBus>,
    /// Number of parallel boots (per image).
    #[arg(long)]
    pub boots: Option<usize>,
    /// Timeout, PHASE=DURATION (boot, login, shutdown, overall) or DURATION for overall.
    #[arg(long = "timeout", value_name = "[PHASE=]DURATION")]
    pub timeouts: Vec<String>,
    /// Login user (default: root for firstboot, the image's cloud-init default user).
    #[arg(long)]
    pub user: Option<String>,
    /// First-boot agent: auto, firstboot or cloud-init.
    #[arg(long, value_enum, value_name = "AGENT")]
    pub firstboot: Option<FirstbootChoice>,
    /// Run only this check id (repeatable).
    #[arg(long = "check", value_name = "ID")]
    pub checks: Vec<String>,
    /// Skip this check id (repeatable).
    #[arg(long = "skip", value_name = "ID")]
    pub skips: Vec<String>,
    /// Test-script pattern (repeatable; replaces the configured list).
    #[arg(long = "test-script", value_name = "GLOB")]
    pub test_scripts: Vec<String>,
    /// Metadata fault: none, delay=DURATION, 404, 500, drop, never.
    #[arg(long)]
    pub metadata_fault: Option<Fault>,
    /// Keep console logs, metadata request log and report here (kept on failure anyway;
    /// a matrix keeps each kernel's in DIR/VERSION).
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
}

/// `imgtest run` flags.
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// Images to test (raw, qcow2, vmdk or ISO).
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub boot: BootOptions,
    /// Boot this kernel directly (no firmware boot of the image's bootloader).
    #[arg(long, value_name = "FILE")]
    pub kernel: Option<PathBuf>,
    /// Initrd for --kernel.
    #[arg(long, value_name = "FILE", requires = "kernel")]
    pub initrd: Option<PathBuf>,
    /// Kernel command line for --kernel.
    #[arg(
        long,
        value_name = "CMDLINE",
        requires = "kernel",
        default_value = "console=ttyS0"
    )]
    pub append: String,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    boots: Option<usize>,
    memory: Option<u32>,
    smp: Option<u32>,
    disk_bus: Option<DiskBus>,
    accel: Option<AccelChoice>,
    user: Option<String>,
    firstboot: Option<FirstbootChoice>,
    tcg_scale: Option<u32>,
    #[serde(default)]
    timeouts: ConfigTimeouts,
    #[serde(default)]
    checks: ConfigChecks,
    #[serde(default)]
    metadata: ConfigMetadata,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigTimeouts {
    boot: Option<String>,
    login: Option<String>,
    shutdown: Option<String>,
    overall: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ConfigChecks {
    only: Option<Vec<String>>,
    skip: Option<Vec<String>>,
    test_scripts: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigMetadata {
    fault: Option<String>,
}

/// Per-phase deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// VM start until userspace.
    #[serde(with = "secs")]
    pub boot: Duration,
    /// Userspace until the password works.
    #[serde(with = "secs")]
    pub login: Duration,
    /// Power button until QEMU exits.
    #[serde(with = "secs")]
    pub shutdown: Duration,
    /// One image's whole run.
    #[serde(with = "secs")]
    pub overall: Duration,
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs_f64(f64::deserialize(d)?))
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
    /// Guest RAM (MiB).
    pub memory_mib: u32,
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
    /// Test-script globs.
    pub test_scripts: Vec<String>,
    /// Metadata fault.
    pub fault: Fault,
    /// JSON report path.
    pub json: Option<PathBuf>,
    /// JUnit report path.
    pub junit: Option<PathBuf>,
    /// Artifacts directory.
    pub artifacts: Option<PathBuf>,
    /// Direct kernel boot instead of the image's bootloader.
    pub direct_kernel: Option<DirectKernel>,
    /// The program QEMU runs as metadata relay (`PROGRAM __relay ADDR TOKEN`).
    pub relay_program: PathBuf,
    /// The QEMU binary.
    pub qemu: String,
}

/// Why flags/config do not make a plan.
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
    /// A flag or config value is invalid.
    #[error("{0}")]
    Invalid(String),
}

fn parse_config(text: &str, path: &str) -> Result<Config, PlanError> {
    toml::from_str(text).map_err(|e| PlanError::BadConfig {
        path: path.to_string(),
        message: e.to_string(),
    })
}

fn duration(s: &str, what: &str) -> Result<Duration, PlanError> {
    humantime::parse_duration(s)
        .map_err(|e| PlanError::Invalid(format!("bad {what} timeout `{s}`: {e}")))
}

impl RunPlan {
    /// Resolves flags against a config (text and name) and the embedded defaults.
    /// `relay_program` is the imgtest binary itself.
    pub fn resolve(
        args: RunArgs,
        config: Option<(&str, &str)>,
        relay_program: PathBuf,
    ) -> Result<RunPlan, PlanError> {
        let d = parse_config(DEFAULT_CONFIG, "built-in defaults")?;
        let c = match config {
            Some((text, name)) => parse_config(text, name)?,
            None => parse_config("", "")?,
        };
        macro_rules! pick {
            ($flag:expr, $field:ident) => {
                $flag
                    .or(c.$field.clone())
                    .or(d.$field.clone())
                    .expect(concat!("default for ", stringify!($field)))
            };
        }
        let mut timeouts = Timeouts {
            boot: duration(&pick_t(&c.timeouts.boot, &d.timeouts.boot), "boot")?,
            login: duration(&pick_t(&c.timeouts.login, &d.timeouts.login), "login")?,
            shutdown: duration(
                &pick_t(&c.timeouts.shutdown, &d.timeouts.shutdown),
                "shutdown",
            )?,
            overall: duration(&pick_t(&c.timeouts.overall, &d.timeouts.overall), "overall")?,
        };
        for t in &args.boot.timeouts {
            let (phase, value) = t.split_once('=').unwrap_or(("overall", t));
            let v = duration(value, phase)?;
            match phase {
                "boot" => timeouts.boot = v,
                "login" => timeouts.login = v,
                "shutdown" => timeouts.shutdown = v,
                "overall" => timeouts.overall = v,
                p => {
                    return Err(PlanError::Invalid(format!(
                        "unknown timeout phase `{p}` (boot, login, shutdown, overall)"
                    )));
                }
            }
        }
        let flag_or = |flag: Vec<String>, conf: &Option<Vec<String>>, def: &Option<Vec<String>>| {
            if flag.is_empty() {
                conf.clone().or(def.clone()).unwrap_or_default()
            } else {
                flag
            }
        };
        let selection = Selection {
            only: flag_or(args.boot.checks, &c.checks.only, &d.checks.only),
            skip: flag_or(args.boot.skips, &c.checks.skip, &d.checks.skip),
        };
        let unknown = selection.unknown();
        if !unknown.is_empty() {
            return Err(PlanError::Invalid(format!(
                "unknown check id(s): {} (see `imgtest checks`)",
                unknown.join(", ")
            )));
        }
        let fault = match args.boot.metadata_fault {
            Some(f) => f,
            None => pick_t(&c.metadata.fault, &d.metadata.fault)
                .parse()
                .map_err(PlanError::Invalid)?,
        };
        let boots: usize = pick!(args.boot.boots, boots);
        if boots == 0 {
            return Err(PlanError::Invalid("--boots must be at least 1".into()));
        }
        let memory_mib: u32 = pick!(args.boot.memory, memory);
        let smp: u32 = pick!(args.boot.smp, smp);
        if memory_mib < 64 {
            return Err(PlanError::Invalid("memory must be at least 64 MiB".into()));
        }
        Ok(RunPlan {
            images: args.images,
            accel: pick!(args.boot.accel, accel),
            memory_mib,
            smp,
            disk_bus: pick!(args.boot.disk_bus, disk_bus),
            boots,
            timeouts,
            tcg_scale: pick!(None, tcg_scale),
            user: args.boot.user.or(c.user.clone()).or(d.user.clone()),
            firstboot: pick!(args.boot.firstboot, firstboot),
            selection,
            test_scripts: flag_or(
                args.boot.test_scripts,
                &c.checks.test_scripts,
                &d.checks.test_scripts,
            ),
            fault,
            json: args.json,
            junit: args.junit,
            artifacts: args.boot.artifacts,
            direct_kernel: args.kernel.map(|kernel| DirectKernel {
                kernel,
                initrd: args.initrd,
                append: args.append,
            }),
            relay_program,
            qemu: "qemu-system-x86_64".into(),
        })
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

    /// Reads the config named by `--config`, else `./imgtest.toml` if it exists, and resolves.
    pub fn from_args(args: RunArgs, relay_program: PathBuf) -> Result<RunPlan, PlanError> {
        let path = args
            .boot
            .config
            .clone()
            .or_else(|| Some(PathBuf::from("imgtest.toml")).filter(|p| p.exists()));
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(&p).map_err(|source| PlanError::ReadConfig {
                    path: p.clone(),
                    source,
                })?;
                RunPlan::resolve(args, Some((&text, &display(&p))), relay_program)
            }
            None => RunPlan::resolve(args, None, relay_program),
        }
    }
}

fn pick_t(c: &Option<String>, d: &Option<String>) -> String {
    c.clone().or(d.clone()).unwrap_or_default()
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn args(a: &[&str]) -> RunArgs {
        Cli::try_parse_from(std::iter::once("imgtest").chain(a.iter().copied()))
            .unwrap()
            .run
    }

    #[test]
    fn defaults_come_from_the_embedded_config() {
        let p = RunPlan::resolve(args(&["a.img"]), None, "/bin/imgtest".into()).unwrap();
        assert_eq!(
            (p.boots, p.memory_mib, p.smp, p.disk_bus),
            (2, 384, 0, DiskBus::Virtio)
        );
        assert_eq!(p.vcpus(Accel::Kvm, 2), 2);
        assert_eq!(p.vcpus(Accel::Tcg, 2), 1);
        assert_eq!(p.vcpus(Accel::Tcg, 16), 2);
        let one = RunPlan {
            boots: 1,
            ..p.clone()
        };
        assert_eq!(one.vcpus(Accel::Tcg, 2), 2);
        let fixed = RunPlan {
            smp: 3,
            ..p.clone()
        };
        assert_eq!(fixed.vcpus(Accel::Tcg, 2), 3);
        assert_eq!(p.accel, AccelChoice::Auto);
        assert_eq!(p.timeouts.boot, Duration::from_secs(60));
        assert_eq!(p.user, None);
        assert_eq!(p.firstboot, FirstbootChoice::Auto);
        assert_eq!(p.fault, Fault::None);
        assert!(p.test_scripts.contains(&"/root/test*.sh".to_string()));
        assert_eq!(
            p.timeouts.for_accel(Accel::Tcg, p.tcg_scale).boot,
            Duration::from_secs(240)
        );
        assert_eq!(
            p.timeouts.for_accel(Accel::Kvm, p.tcg_scale).boot,
            Duration::from_secs(60)
        );
    }

    #[test]
    fn flags_override_config_which_overrides_defaults() {
        let conf = "boots = 3\nmemory = 256\n[timeouts]\nlogin = \"2m\"\n[checks]\nskip = [\"shutdown.clean\"]\n[metadata]\nfault = \"404\"\n";
        let p = RunPlan::resolve(
            args(&[
                "--boots",
                "1",
                "--timeout",
                "boot=5s",
                "--timeout",
                "9m",
                "--accel",
                "tcg",
                "--disk-bus",
                "ide",
                "a.img",
            ]),
            Some((conf, "imgtest.toml")),
            "/bin/imgtest".into(),
        )
        .unwrap();
        assert_eq!(p.boots, 1);
        assert_eq!(p.memory_mib, 256);
        assert_eq!(p.timeouts.boot, Duration::from_secs(5));
        assert_eq!(p.timeouts.login, Duration::from_secs(120));
        assert_eq!(p.timeouts.overall, Duration::from_secs(540));
        assert_eq!(p.selection.skip, ["shutdown.clean"]);
        assert_eq!(p.fault, Fault::NotFound);
        assert_eq!((p.accel, p.disk_bus), (AccelChoice::Tcg, DiskBus::Ide));
        let p = RunPlan::resolve(
            args(&["--firstboot", "cloud-init", "a.img"]),
            Some((
                "user = \"admin\"\nfirstboot = \"firstboot\"\n",
                "imgtest.toml",
            )),
            "/bin/imgtest".into(),
        )
        .unwrap();
        assert_eq!(p.firstboot, FirstbootChoice::CloudInit);
        assert_eq!(p.user.as_deref(), Some("admin"));
        assert!(Cli::try_parse_from(["imgtest", "--firstboot", "ignition", "a.img"]).is_err());
    }

    #[test]
    fn rejects_bad_values_with_a_clear_message() {
        let e =
            RunPlan::resolve(args(&["--check", "nope", "a.img"]), None, "/x".into()).unwrap_err();
        assert!(e.to_string().contains("unknown check id(s): nope"), "{e}");
        let e = RunPlan::resolve(args(&["--timeout", "lunch=5s", "a.img"]), None, "/x".into())
            .unwrap_err();
        assert!(
            e.to_string().contains("unknown timeout phase `lunch`"),
            "{e}"
        );
        let e = RunPlan::resolve(
            args(&["a.img"]),
            Some(("boots = \"two\"", "my.toml")),
            "/x".into(),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("my.toml:"), "{e}");
        let e = RunPlan::resolve(
            args(&["a.img"]),
            Some(("colour = 1", "my.toml")),
            "/x".into(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        assert!(Cli::try_parse_from(["imgtest", "--accel", "xen", "a.img"]).is_err());
    }
}
