//! `fsmaker ROOTFS OUT.img`: a bootable disk image (BIOS, UEFI or both) from a bare
//! ext2/3/4 root filesystem; `fsmaker kernel fetch|list` manages the kernel cache,
//! `fsmaker secure-boot fetch` imports the signed boot chain.
//! Flags become a [`BuildPlan`]; the library does the work and reports
//! [`Event`](crate::fsmaker::Event)s, drawn as a spinner and byte bar on a terminal and
//! written as one line per step elsewhere ([`StepProgress`]); a failure prints the
//! library's message plus the flag that would help (`hint`) and exits 2.

use std::path::PathBuf;
use std::process::ExitCode;

use super::source_date_epoch;
use crate::cli::progress::StepProgress;
use crate::cli::{CliError, Outcome, error_line, value_enum, with_hint};
use crate::exit;
use crate::fsmaker::kernel::{Cache, DEFAULT_PACKAGE};
use crate::fsmaker::layout::{self, Firmware, Table};
use crate::fsmaker::{
    BootSetup, BuildError, BuildPlan, Format, KernelSource, Summary, build, grub,
};
use crate::units::{self, human};
use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "fsmaker",
    version,
    about = "Make a bootable disk image from a bare ext2/3/4 root filesystem, rootless",
    long_about = super::docs::FSMAKER_ABOUT,
    after_long_help = super::docs::FSMAKER_AFTER
)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    build: BuildArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Manage the kernel cache.
    Kernel {
        #[command(subcommand)]
        cmd: KernelCmd,
    },
    /// Manage the signed boot chain (shim, GRUB) --secure-boot installs.
    SecureBoot {
        #[command(subcommand)]
        cmd: SecureBootCmd,
    },
}

#[derive(Subcommand)]
enum SecureBootCmd {
    /// Import shim-signed and grub-efi-amd64-signed into the cache.
    Fetch {
        /// The two .deb files (default: download both packages with apt-get).
        debs: Vec<String>,
    },
}

#[derive(Subcommand)]
enum KernelCmd {
    /// Import a Debian kernel package (and build its initrd) into the cache.
    Fetch {
        /// Package to download with apt-get (a meta package is resolved to its kernel).
        #[arg(long, conflicts_with = "deb")]
        package: Option<String>,
        /// A local linux-image .deb instead of downloading.
        deb: Option<PathBuf>,
    },
    /// List the cached kernels, newest last.
    List,
}

value_enum!(Format, Table, Firmware);

#[derive(Args)]
struct BuildArgs {
    /// The root filesystem image (ext2/3/4); it is never modified.
    #[arg(required = true)]
    rootfs: Option<PathBuf>,
    /// The disk image to write.
    #[arg(required = true)]
    out: Option<PathBuf>,
    /// Replace OUT if it exists.
    #[arg(long)]
    force: bool,
    /// Whole-disk size (e.g. 2G, 512M); default: just big enough for the filesystem.
    #[arg(long, value_parser = parse_size)]
    size: Option<u64>,
    /// Grow the filesystem (resize2fs) to fill the disk given by --size.
    #[arg(long, requires = "size")]
    grow: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "raw")]
    format: Format,
    /// Partition table [default: mbr; gpt for --firmware uefi or hybrid, --secure-boot].
    #[arg(long, value_enum)]
    table: Option<Table>,
    /// Firmware the disk boots with [default: bios; hybrid with --table gpt].
    #[arg(long, value_enum)]
    firmware: Option<Firmware>,
    /// UEFI boots through shim and Debian's signed GRUB (`fsmaker secure-boot fetch`);
    /// the kernel must be signed.
    #[arg(long)]
    secure_boot: bool,
    /// Boot this kernel instead of a cached one.
    #[arg(long, conflicts_with = "kernel_in_rootfs")]
    kernel: Option<PathBuf>,
    /// Initrd for --kernel.
    #[arg(long, requires = "kernel")]
    initrd: Option<PathBuf>,
    /// Boot the newest /boot/vmlinuz-* already in the filesystem.
    #[arg(long)]
    kernel_in_rootfs: bool,
    /// Cached kernel version to install (default: the newest).
    #[arg(long, conflicts_with_all = ["kernel", "kernel_in_rootfs"])]
    kernel_version: Option<String>,
    /// GRUB i386-pc directory (boot.img, *.mod).
    #[arg(long, default_value = grub::DEFAULT_DIR)]
    grub_dir: PathBuf,
    /// GRUB x86_64-efi directory (kernel.img, *.mod).
    #[arg(long, default_value = grub::DEFAULT_EFI_DIR)]
    grub_efi_dir: PathBuf,
    /// Extra kernel command-line arguments (a later root= overrides fsmaker's).
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    append: String,
}

fn parse_size(s: &str) -> Result<u64, String> {
    units::parse_size(s).map_err(|e| e.to_string())
}

fn plan(a: BuildArgs) -> Result<BuildPlan> {
    let kernel = if a.kernel_in_rootfs {
        KernelSource::InRootfs
    } else if let Some(k) = a.kernel {
        KernelSource::Files {
            kernel: k,
            initrd: a.initrd,
        }
    } else {
        KernelSource::Cached(Cache::from_env()?.pick(a.kernel_version.as_deref())?)
    };
    let (Some(rootfs), Some(out)) = (a.rootfs, a.out) else {
        bail!("usage: fsmaker ROOTFS OUT")
    };
    let (table, firmware) = layout::scheme(a.table, a.firmware, a.secure_boot)?;
    let signed = if a.secure_boot {
        Some(Cache::from_env()?.signed_chain()?)
    } else {
        None
    };
    Ok(BuildPlan {
        rootfs,
        out,
        force: a.force,
        size: a.size,
        grow: a.grow,
        format: a.format,
        kernel,
        boot: BootSetup {
            table,
            firmware,
            grub_dir: a.grub_dir,
            grub_efi_dir: a.grub_efi_dir,
            signed,
        },
        append: a.append,
        epoch: source_date_epoch().map_err(anyhow::Error::msg)?,
    })
}

fn print_summary(s: &Summary) {
    println!("fsmaker: wrote {}", s.out.display());
    println!(
        "  disk size:      {} ({} bytes)",
        human(s.disk_size),
        s.disk_size
    );
    println!(
        "  allocated:      {} ({} bytes)",
        human(s.allocated),
        s.allocated
    );
    println!("  filesystem:     {} UUID={}", s.fs_kind, s.root_uuid);
    println!("  kernel:         {} ({})", s.kernel_version, s.kernel_path);
    println!(
        "  initrd:         {}",
        s.initrd_path.as_deref().unwrap_or("none")
    );
    println!("  command line:   {}", s.cmdline);
    println!(
        "  boots with:     {} on {}{}",
        s.firmware,
        s.table,
        if s.secure_boot {
            " (UEFI: shim and signed GRUB, for Secure Boot)"
        } else {
            ""
        }
    );
    println!("  boot it with:   {}", s.qemu_command());
}

fn run_build(a: BuildArgs) -> Result<()> {
    let plan = plan(a)?;
    let mut progress = StepProgress::new("fsmaker");
    let result = build(&plan, &mut |e| progress.event(e));
    progress.finish();
    print_summary(&result?);
    Ok(())
}

fn run_secure_boot(cmd: SecureBootCmd) -> Result<()> {
    let SecureBootCmd::Fetch { debs } = cmd;
    let mut progress = StepProgress::new("fsmaker");
    let chain = Cache::from_env()?.fetch_signed_chain(&debs, &mut |e| progress.event(e));
    progress.finish();
    let chain = chain?;
    for p in &chain.packages {
        println!(
            "fsmaker: cached {} {} (sha256 {})",
            p.package, p.version, p.deb_sha256
        );
    }
    println!("  in {}", chain.dir.display());
    Ok(())
}

fn run_kernel(cmd: KernelCmd) -> Result<()> {
    let cache = Cache::from_env()?;
    match cmd {
        KernelCmd::Fetch { package, deb } => {
            let what = match (package, deb) {
                (_, Some(d)) => d.to_string_lossy().into_owned(),
                (Some(p), None) => p,
                (None, None) => DEFAULT_PACKAGE.to_string(),
            };
            let epoch = source_date_epoch()
                .map_err(anyhow::Error::msg)?
                .unwrap_or(0);
            let mut progress = StepProgress::new("fsmaker");
            let k = cache.fetch(&what, epoch, &mut |e| progress.event(e));
            progress.finish();
            let k = k?;
            println!(
                "fsmaker: cached kernel {} from {} {} (sha256 {})",
                k.meta.version, k.meta.package, k.meta.package_version, k.meta.deb_sha256
            );
            println!("  in {}", k.dir.display());
        }
        KernelCmd::List => {
            let all = cache.list()?;
            if all.is_empty() {
                println!(
                    "no kernel cached in {} (run `fsmaker kernel fetch`)",
                    cache.root.display()
                );
            }
            for k in all {
                println!(
                    "{}\t{} {}\tsha256:{}",
                    k.meta.version, k.meta.package, k.meta.package_version, k.meta.deb_sha256
                );
            }
        }
    }
    Ok(())
}

/// The flag that would get past `e`, if there is one.
fn hint(e: &BuildError) -> Option<String> {
    Some(match e {
        BuildError::TooSmall { fits, .. } => {
            format!("use --size {}M --grow", fits.div_ceil(1 << 20))
        }
        BuildError::DiskTooSmall { min, .. } => {
            format!("give --size at least {}M", min.div_ceil(1 << 20))
        }
        BuildError::GrowNeedsSize => "--grow needs --size SIZE".into(),
        BuildError::OutExists(_) => "use --force to replace it".into(),
        BuildError::GrubMissing { package, .. } => match *package {
            "grub-pc-bin" => "or point --grub-dir at a GRUB i386-pc directory".into(),
            _ => "or point --grub-efi-dir at a GRUB x86_64-efi directory".into(),
        },
        BuildError::MbrIsBiosOnly(_) => "use --table gpt".into(),
        BuildError::SecureBootNeedsUefi => {
            "use --firmware uefi or hybrid, or drop --secure-boot".into()
        }
        BuildError::NoSignedChain { .. } => "run `fsmaker secure-boot fetch` first".into(),
        BuildError::UnsignedKernel(_) => {
            "boot a signed kernel, such as Debian's from `fsmaker kernel fetch`".into()
        }
        BuildError::NoKernel { .. } => {
            "run `fsmaker kernel fetch` first, or use --kernel FILE or --kernel-in-rootfs".into()
        }
        BuildError::NoKernelInRootfs(_) => {
            "drop --kernel-in-rootfs to boot a cached kernel, or use --kernel FILE".into()
        }
        BuildError::OutKind {
            kind: "a block device",
            ..
        } => "write an image file, then copy it onto the device with `sparsecopy IMAGE DEVICE`"
            .into(),
        BuildError::BadAppend(_) => "change --append".into(),
        _ => return None,
    })
}

/// fsmaker's command line as clap defines it (for its manual and completions).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// The `fsmaker` binary. SIGINT, SIGTERM and SIGHUP stop a build at its next step,
/// leaving no temp file and OUT as it was.
pub fn main() -> ExitCode {
    crate::cli::guarded("fsmaker", "fsmaker", || {
        exit::quiet_on_closed_stdout();
        crate::vm::process::install_signal_guard();
        let cli = Cli::parse();
        let r = match cli.cmd {
            Some(Cmd::Kernel { cmd }) => run_kernel(cmd),
            Some(Cmd::SecureBoot { cmd }) => run_secure_boot(cmd),
            None => run_build(cli.build),
        };
        r.map(|()| Outcome::Success).map_err(|e| {
            let hint = e
                .chain()
                .find_map(|c| c.downcast_ref::<BuildError>())
                .and_then(hint);
            CliError::from(with_hint(&error_line(&e), hint))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// A filesystem 1 MiB short that a 300 MiB disk would fit.
    fn too_small() -> BuildError {
        BuildError::TooSmall {
            needed: 1 << 20,
            free: 0,
            inodes: 10,
            free_inodes: 0,
            fits: 300 << 20,
        }
    }

    #[test]
    fn hints_name_the_flags_that_help() {
        let too_small = too_small();
        assert_eq!(hint(&too_small).unwrap(), "use --size 300M --grow");
        let line = with_hint(&too_small.to_string(), hint(&too_small));
        assert!(
            line.ends_with("would fit (use --size 300M --grow)"),
            "{line}"
        );
        assert_eq!(
            hint(&BuildError::OutExists("o.img".into())).unwrap(),
            "use --force to replace it"
        );
        let no_kernel = BuildError::NoKernel {
            cache: "/c".into(),
            detail: "no kernel is cached".into(),
        };
        assert!(hint(&no_kernel).unwrap().contains("fsmaker kernel fetch"));
        let grub = BuildError::GrubMissing {
            path: "/g/boot.img".into(),
            package: "grub-pc-bin",
        };
        assert!(hint(&grub).unwrap().contains("--grub-dir"));
        let efi = BuildError::GrubMissing {
            path: "/g/kernel.img".into(),
            package: "grub-efi-amd64-bin",
        };
        assert!(hint(&efi).unwrap().contains("--grub-efi-dir"));
        let mbr = BuildError::MbrIsBiosOnly(Firmware::Uefi);
        assert_eq!(hint(&mbr).unwrap(), "use --table gpt");
        assert!(!mbr.to_string().contains("--"), "{mbr}");
        assert_eq!(hint(&BuildError::NotExt("x".into())), None);
    }

    #[test]
    fn library_messages_name_no_flag() {
        let e = too_small();
        assert!(!e.to_string().contains("--"), "{e}");
        assert!(e.to_string().contains("300.0 MiB"), "{e}");
    }

    #[test]
    fn format_takes_the_library_names() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|c| c.build.format);
        assert_eq!(parse(&["fsmaker", "r", "o"]).unwrap(), Format::Raw);
        assert_eq!(
            parse(&["fsmaker", "r", "o", "--format", "qcow2"]).unwrap(),
            Format::Qcow2
        );
        assert!(parse(&["fsmaker", "r", "o", "--format", "vmdk"]).is_err());
    }

    #[test]
    fn version_names_the_tool() {
        assert_eq!(Cli::command().render_version(), "fsmaker 0.1.0\n");
    }
}
