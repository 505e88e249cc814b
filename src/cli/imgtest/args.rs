//! `imgtest`'s flags: clap's types, and how they become the library's settings layer
//! ([`Settings`]) and [`RunRequest`]. The flags `run`, `matrix` and `bisect` share are one
//! struct ([`BootOptions`]).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::checks::Expect;
use crate::cli::value_enum;
use crate::cloudinit::FirstbootChoice;
use crate::facts::Fault;
use crate::matrix::Shard;
use crate::run::plan::{
    CheckSettings, MetadataSettings, RunRequest, Settings, TimeoutPhase, TimeoutSettings,
};
use crate::vm::accel::AccelChoice;
use crate::vm::firmware::FirmwareChoice;
use crate::vm::{DirectKernel, DiskBus};

value_enum!(
    AccelChoice,
    DiskBus,
    FirstbootChoice,
    TimeoutPhase,
    FirmwareChoice,
    Expect
);

/// `--timeout [PHASE=]DURATION`: a phase's deadline (the overall one without a phase).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutFlag {
    /// The phase.
    pub phase: TimeoutPhase,
    /// Its deadline.
    pub value: Duration,
}

impl std::str::FromStr for TimeoutFlag {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (phase, value) = match s.split_once('=') {
            Some((p, v)) => (p.parse().map_err(|e| format!("{e}"))?, v),
            None => (TimeoutPhase::Overall, s),
        };
        let value = humantime::parse_duration(value)
            .map_err(|e| format!("bad {phase} timeout `{value}`: {e}"))?;
        Ok(TimeoutFlag { phase, value })
    }
}

/// The boot and check options `imgtest run`, `matrix` and `bisect` share.
#[derive(Debug, Clone, Default, Args)]
pub struct BootOptions {
    /// Configuration file (default: ./imgtest.toml if present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Accelerator [default: auto].
    #[arg(long, value_enum)]
    pub accel: Option<AccelChoice>,
    /// Firmware [default: auto].
    #[arg(long, value_enum)]
    pub firmware: Option<FirmwareChoice>,
    /// UEFI boots run OVMF's Secure Boot build with Microsoft's keys enrolled.
    #[arg(long)]
    pub secure_boot: bool,
    /// What the image is [default: boot for ISOs, server for disks].
    #[arg(long, value_enum)]
    pub expect: Option<Expect>,
    /// Guest RAM in MiB [default: 384; 2048 for ISOs].
    #[arg(short = 'm', long = "memory", value_name = "MiB")]
    pub memory: Option<u32>,
    /// vCPUs per guest (default: the host's CPUs shared among all parallel boots under TCG).
    #[arg(long)]
    pub smp: Option<u32>,
    /// Disk bus [default: virtio].
    #[arg(long, value_enum)]
    pub disk_bus: Option<DiskBus>,
    /// Number of parallel boots (per image), at most 16 [default: 2].
    #[arg(long)]
    pub boots: Option<usize>,
    /// Timeout, PHASE=DURATION (boot, login, shutdown, overall) or DURATION for overall;
    /// at most 24h each [default: boot=60s, login=60s, shutdown=30s, overall=300s, each x4
    /// under TCG].
    #[arg(long = "timeout", value_name = "[PHASE=]DURATION")]
    pub timeouts: Vec<TimeoutFlag>,
    /// Login user (default: root for firstboot, the image's cloud-init default user).
    #[arg(long)]
    pub user: Option<String>,
    /// First-boot agent [default: auto].
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
    /// A file no package owns that may stay in the image (repeatable; replaces the
    /// configured list).
    #[arg(long = "allow", value_name = "GLOB")]
    pub allow: Vec<String>,
    /// Stop at the first failed check (an offline failure ends the run before any boot).
    #[arg(long)]
    pub fail_fast: bool,
    /// Let a rule that no check could judge (e.g. an unreadable filesystem) pass instead
    /// of exiting 2.
    #[arg(long)]
    pub allow_unjudged: bool,
    /// Fault injected into every metadata answer [default: none] [possible values: none,
    /// delay=DURATION, 404, 500, drop, never].
    #[arg(long, value_name = "FAULT")]
    pub metadata_fault: Option<Fault>,
    /// The most connections one boot may hold open to the metadata service, 1 to 64
    /// [default: 8].
    #[arg(long, value_name = "N")]
    pub metadata_connections: Option<usize>,
    /// The most bytes of one boot's console log kept, at least 64K [default: 64M].
    #[arg(long, value_name = "SIZE")]
    pub console_log_limit: Option<String>,
    /// Keep console logs, screenshots, metadata request log and report (JSON and HTML)
    /// here (kept on failure anyway; a matrix keeps each kernel's in DIR/VERSION).
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
}

/// A repeatable flag's values, or None when it was not given (the layer below decides).
fn given(v: Vec<String>) -> Option<Vec<String>> {
    (!v.is_empty()).then_some(v)
}

impl BootOptions {
    /// The command line's settings layer.
    pub fn settings(&self) -> Settings {
        let mut timeouts = TimeoutSettings::default();
        for t in &self.timeouts {
            timeouts.set(t.phase, t.value);
        }
        Settings {
            boots: self.boots,
            memory: self.memory,
            iso_memory: None,
            smp: self.smp,
            disk_bus: self.disk_bus,
            accel: self.accel,
            firmware: self.firmware,
            secure_boot: self.secure_boot.then_some(true),
            expect: self.expect,
            user: self.user.clone(),
            firstboot: self.firstboot,
            tcg_scale: None,
            console_log_limit: self.console_log_limit.clone(),
            timeouts,
            checks: CheckSettings {
                only: given(self.checks.clone()),
                skip: given(self.skips.clone()),
                test_scripts: given(self.test_scripts.clone()),
                allow: given(self.allow.clone()),
            },
            metadata: MetadataSettings {
                fault: self.metadata_fault.map(|f| f.to_string()),
                connections: self.metadata_connections,
            },
        }
    }

    /// A request with these options and no images (a matrix makes them).
    pub fn request(&self) -> RunRequest {
        RunRequest {
            settings: self.settings(),
            config: self.config.clone(),
            artifacts: self.artifacts.clone(),
            fail_fast: self.fail_fast,
            allow_unjudged: self.allow_unjudged,
            ..RunRequest::default()
        }
    }
}

/// `imgtest run` flags.
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// Images to test (raw, qcow2, vmdk or ISO).
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// The options `run` shares with `matrix` and `bisect`.
    #[command(flatten)]
    pub boot: BootOptions,
    /// Boot this kernel directly (no firmware boot of the image's bootloader).
    #[arg(long, value_name = "FILE")]
    pub kernel: Option<PathBuf>,
    /// Initrd for --kernel.
    #[arg(long, value_name = "FILE", requires = "kernel")]
    pub initrd: Option<PathBuf>,
    /// A further disk attached after the image (or the CD), on its own overlay, never
    /// written (repeatable, in order; an ISO otherwise gets one blank disk).
    #[arg(long = "disk", value_name = "FILE")]
    pub disks: Vec<PathBuf>,
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
    /// Write a self-contained HTML report here (timeline, checks, screenshots, consoles).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// On the first boot whose checks fail, open an SSH session into it (as `imgtest
    /// shell` does) before it is powered off; needs a terminal on stdin.
    #[arg(long)]
    pub shell_on_failure: bool,
}

impl RunArgs {
    /// What the flags ask of the run.
    pub fn request(self) -> RunRequest {
        RunRequest {
            images: self.images,
            json: self.json,
            junit: self.junit,
            html: self.html,
            direct_kernel: self.kernel.map(|kernel| DirectKernel {
                kernel,
                initrd: self.initrd,
                append: self.append,
            }),
            disks: self.disks,
            ..self.boot.request()
        }
    }
}

/// The `imgtest run` options a matrix or bisection passes to every kernel's run.
#[derive(Debug, Clone, Default, Args)]
pub struct RunOptions {
    /// The options of `imgtest run`.
    #[command(flatten)]
    pub boot: BootOptions,
    /// Extra kernel command-line arguments for every image (fsmaker --append).
    #[arg(long, value_name = "ARGS", default_value = "")]
    pub append: String,
}

/// `imgtest matrix` flags.
#[derive(Debug, Clone, Args)]
pub struct MatrixArgs {
    /// The root filesystem (ext2/3/4, no kernel) every image is built from.
    pub rootfs: PathBuf,
    /// A kernel: cached version, .deb path or Debian package name (repeatable).
    #[arg(long = "kernel", value_name = "SPEC", required = true)]
    pub kernels: Vec<String>,
    /// Kernels tested in parallel (default: what the host's CPUs and memory fit).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Test only slice K of N (1-based): the specs whose sorted index i has i % N == K-1.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Write the JSON matrix report here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write a JUnit XML report here (one testsuite per kernel).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a self-contained HTML report here (one timeline lane per kernel).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Every kernel's run.
    #[command(flatten)]
    pub run: RunOptions,
}

/// `imgtest bisect` flags.
#[derive(Debug, Clone, Args)]
pub struct BisectArgs {
    /// The root filesystem (ext2/3/4, no kernel) every image is built from.
    pub rootfs: PathBuf,
    /// The last kernel known to pass (trusted, not booted).
    #[arg(long, value_name = "SPEC")]
    pub good: String,
    /// The first kernel known to fail (trusted, not booted).
    #[arg(long, value_name = "SPEC")]
    pub bad: String,
    /// The candidates between them, oldest first (repeatable).
    #[arg(long = "kernel", value_name = "SPEC")]
    pub kernels: Vec<String>,
    /// Write the JSON bisection report here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Every kernel's run.
    #[command(flatten)]
    pub run: RunOptions,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Accel;
    use crate::named::Named;
    use crate::run::plan::{PlanError, RunPlan};
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

    fn resolve(a: RunArgs, config: Option<(&str, &str)>) -> Result<RunPlan, PlanError> {
        RunPlan::resolve(a.request(), config, "/bin/imgtest".into())
    }

    fn parse_error(a: &[&str]) -> String {
        match Cli::try_parse_from(std::iter::once("imgtest").chain(a.iter().copied())) {
            Ok(_) => panic!("{a:?} parsed"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_come_from_the_embedded_config() {
        let p = resolve(args(&["a.img"]), None).unwrap();
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
        assert!(
            p.offline
                .test_scripts
                .contains(&"/root/test*.sh".to_string())
        );
        assert!(p.offline.allow.contains(&"/home/*/.bashrc".to_string()));
        assert!(!p.fail_fast && !p.allow_unjudged);
        assert_eq!(
            (p.firmware, p.secure_boot, p.expect),
            (FirmwareChoice::Auto, false, None)
        );
        // ISOs get an installer's RAM unless -m or the config says otherwise.
        assert_eq!(p.iso_memory_mib, 2048);
        let m = resolve(args(&["-m", "512", "a.iso"]), None).unwrap();
        assert_eq!((m.memory_mib, m.iso_memory_mib), (512, 512));
        let c = resolve(
            args(&["a.iso"]),
            Some(("iso-memory = 1024\n", "imgtest.toml")),
        )
        .unwrap();
        assert_eq!((c.memory_mib, c.iso_memory_mib), (384, 1024));
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
        let p = resolve(
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
        )
        .unwrap();
        assert_eq!(p.boots, 1);
        assert_eq!(p.memory_mib, 256);
        assert_eq!(p.timeouts.boot, Duration::from_secs(5));
        assert_eq!(p.timeouts.login, Duration::from_secs(120));
        assert_eq!(p.timeouts.overall, Duration::from_secs(540));
        assert_eq!(p.selection.skip, [crate::checks::CheckId::ShutdownClean]);
        assert_eq!(p.fault, Fault::NotFound);
        assert_eq!((p.accel, p.disk_bus), (AccelChoice::Tcg, DiskBus::Ide));
        let p = resolve(
            args(&["--firstboot", "cloud-init", "a.img"]),
            Some((
                "user = \"admin\"\nfirstboot = \"firstboot\"\n",
                "imgtest.toml",
            )),
        )
        .unwrap();
        assert_eq!(p.firstboot, FirstbootChoice::CloudInit);
        assert_eq!(p.user.as_deref(), Some("admin"));
        assert!(Cli::try_parse_from(["imgtest", "--firstboot", "ignition", "a.img"]).is_err());
        let p = resolve(
            args(&[
                "--firmware",
                "both",
                "--secure-boot",
                "--expect",
                "server",
                "--disk",
                "b.img",
                "a.iso",
            ]),
            Some(("firmware = \"bios\"\nexpect = \"boot\"\n", "imgtest.toml")),
        )
        .unwrap();
        assert_eq!(
            (p.firmware, p.secure_boot, p.expect),
            (FirmwareChoice::Both, true, Some(Expect::Server))
        );
        assert_eq!(p.disks, [std::path::PathBuf::from("b.img")]);
        let e = resolve(
            args(&["--disk-bus", "ide", "--disk", "b.img", "a.img"]),
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not ide"), "{e}");
    }

    #[test]
    fn rejects_bad_values_with_a_clear_message() {
        let e = resolve(args(&["--check", "nope", "a.img"]), None).unwrap_err();
        assert!(e.to_string().contains("unknown check id(s): nope"), "{e}");
        let e = parse_error(&["--timeout", "lunch=5s", "a.img"]);
        assert!(e.contains("unknown timeout phase `lunch`"), "{e}");
        let e = resolve(args(&["a.img"]), Some(("boots = \"two\"", "my.toml"))).unwrap_err();
        assert!(e.to_string().starts_with("my.toml:"), "{e}");
        let e = resolve(args(&["a.img"]), Some(("colour = 1", "my.toml"))).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        assert!(Cli::try_parse_from(["imgtest", "--accel", "xen", "a.img"]).is_err());
    }

    /// Each flag's help, as `-h` prints it.
    fn flag_help(help: &str, flag: &str) -> String {
        let mut lines = help.lines().skip_while(|l| !l.contains(flag));
        let first = lines.next().unwrap_or_default().to_string();
        lines
            .take_while(|l| !l.trim_start().starts_with('-'))
            .fold(first, |acc, l| acc + " " + l.trim())
    }

    #[test]
    fn help_shows_the_defaults_the_built_in_config_has() {
        use clap::CommandFactory;
        let help = Cli::command().render_help().to_string();
        let d = Settings::defaults();
        let t = &d.timeouts;
        let secs = |x: Option<Duration>| format!("{}s", x.unwrap().as_secs());
        let defaults = [
            ("--accel", d.accel.unwrap().name().to_string()),
            (
                "--memory",
                format!("{}; {} for ISOs", d.memory.unwrap(), d.iso_memory.unwrap()),
            ),
            ("--disk-bus", d.disk_bus.unwrap().name().to_string()),
            ("--boots", d.boots.unwrap().to_string()),
            ("--firstboot", d.firstboot.unwrap().name().to_string()),
            ("--metadata-fault", d.metadata.fault.clone().unwrap()),
            (
                "--timeout",
                format!(
                    "boot={}, login={}, shutdown={}, overall={}, each x{} under TCG",
                    secs(t.boot),
                    secs(t.login),
                    secs(t.shutdown),
                    secs(t.overall),
                    d.tcg_scale.unwrap()
                ),
            ),
        ];
        for (flag, value) in defaults {
            let h = flag_help(&help, flag);
            assert!(h.contains(&format!("[default: {value}]")), "{flag}: {h}");
        }
        let fault = flag_help(&help, "--metadata-fault");
        assert!(
            fault.contains("[possible values: none, delay=DURATION, 404, 500, drop, never]"),
            "{fault}"
        );
    }

    #[test]
    fn help_shows_the_possible_values_of_named_flags() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        for values in [
            "auto, kvm, tcg",
            "virtio, ide, scsi",
            "auto, firstboot, cloud-init",
            "auto, bios, uefi, both",
            "server, boot",
        ] {
            assert!(
                help.contains(&format!("[possible values: {values}]")) || {
                    // The long help lists values one per line with their help.
                    values
                        .split(", ")
                        .all(|v| help.contains(&format!("- {v}:")))
                },
                "{values}:\n{help}"
            );
        }
    }
}
