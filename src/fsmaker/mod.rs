//! fsmaker: turns a bare ext2/3/4 root filesystem image into a bootable disk image (BIOS
//! on MBR; BIOS, UEFI or both on GPT; optionally the signed chain for Secure Boot)
//! without root, loop devices or mounting.
//!
//! [`build`] is a short sequence of stages, each taking what the one before produced:
//! check the inputs (superblock, OUT, GRUB directory, layout) -> resolve the kernel (what
//! to install and where) -> plan the files to install and `grub.cfg` -> check the room ->
//! assemble the disk in a temp file next to OUT (grow a copy with `resize2fs` if asked,
//! copy the filesystem sparsely into partition 1, one `debugfs -w` batch for the kernel,
//! initrd, `/lib/modules/<version>`, GRUB modules and `grub.cfg`, then the partition table
//! and the boot code: MBR, boot.img and core.img in the first MiB; or GPT, core.img in the
//! BIOS boot partition and a FAT32 ESP ([`esp`]) with GRUB's EFI image or shim and Debian's
//! signed GRUB ([`signed`])) -> convert (optional qcow2) -> link it as OUT.
//! The disk is built in files that have no name until the end
//! ([`crate::scratch::Unnamed`]), so OUT is either complete or untouched, and a build
//! that fails, is interrupted (SIGINT, SIGTERM: [`crate::interrupt`]) or is killed leaves
//! no temp file. OUT must be a regular file or absent: fsmaker never writes into a device,
//! a FIFO or a directory.
//!
//! The library never prints and knows no command-line flag: progress goes out as
//! [`Event`]s, the result as a [`Summary`], failures as a [`BuildError`] that says what is
//! wrong (the `fsmaker` binary adds which flag would help).

pub mod debugfs;
pub mod esp;
pub mod gpt;
pub mod grub;
pub mod initrd;
mod install;
pub mod kernel;
pub mod layout;
pub mod signed;
pub mod superblock;

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helper;
use crate::scratch::Unnamed;
use crate::sparsecopy;
use crate::units::human;
use crate::vm::Uefi;
use crate::vm::firmware::{OVMF_DIR, Ovmf};
use esp::EspFile;
use grub::{GrubDir, Platform};
use install::{Existing, Install};
use kernel::{CachedKernel, version_cmp};
use layout::{Firmware, Layout, Table};
use signed::SignedChain;
use superblock::Superblock;

/// Everything that can stop a build or a kernel import. Messages say what is wrong in
/// terms of the plan; they name no command-line flag (the library has callers without
/// flags, such as `imgtest matrix`): the `fsmaker` binary adds the flag hints.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// OUT exists and is not a regular file (or a link to replace).
    #[error("OUT {path} is {kind}: fsmaker writes a regular file")]
    OutKind {
        /// OUT.
        path: PathBuf,
        /// What it is (`a block device`, `a directory`, ...).
        kind: &'static str,
    },
    /// The extra kernel arguments cannot reach the kernel through GRUB unchanged.
    #[error("the extra kernel arguments cannot be written into grub.cfg: {0}")]
    BadAppend(String),
    /// The process was asked to stop (SIGINT, SIGTERM) before the image was complete.
    #[error("interrupted; OUT was not written")]
    Interrupted,
    /// OUT names the root filesystem image itself.
    #[error("OUT {0} is ROOTFS itself: fsmaker never modifies its input")]
    OutIsRootfs(PathBuf),
    /// Growing the filesystem was asked for without a disk size to grow into.
    #[error("growing the filesystem needs a disk size to grow into")]
    GrowNeedsSize,
    /// The disk size asked for cannot hold the filesystem and the boot partitions before it.
    #[error(
        "a disk of {} is smaller than the filesystem plus its boot area and tables ({})",
        human(*.disk),
        human(*.min)
    )]
    DiskTooSmall {
        /// The disk size asked for, in bytes.
        disk: u64,
        /// The smallest disk that holds the filesystem, in bytes.
        min: u64,
    },
    /// Partition 1 would be larger than an MBR partition table can describe.
    #[error("partition 1 ({}) is larger than MBR allows (2 TiB)", human(*.0))]
    PartitionTooLarge(u64),
    /// No environment variable names a place for the kernel cache.
    #[error("no kernel cache directory: set FSMAKER_CACHE or HOME")]
    NoCacheDir,
    /// The root filesystem image does not exist.
    #[error("root filesystem {0} does not exist")]
    RootfsMissing(PathBuf),
    /// The root filesystem image is not ext2/3/4.
    #[error("{0} is not an ext2/ext3/ext4 filesystem image (no ext superblock at byte 1024)")]
    NotExt(PathBuf),
    /// The filesystem has no room for what fsmaker installs, even on the disk asked for.
    #[error(
        "the filesystem is too small: fsmaker needs {} ({inodes} inodes) for the kernel, modules and GRUB but only {} ({free_inodes} inodes) is free; a disk of {} with the filesystem grown to fill it would fit",
        human(*.needed), human(*.free), human(*.fits)
    )]
    TooSmall {
        /// Bytes the installed files need, with a margin for their metadata.
        needed: u64,
        /// Bytes free in the filesystem (after any growing).
        free: u64,
        /// Inodes the installed files need.
        inodes: u64,
        /// Inodes free in the filesystem as it is.
        free_inodes: u64,
        /// A whole-disk size, in bytes (a MiB multiple), that would fit once the filesystem
        /// is grown to fill it.
        fits: u64,
    },
    /// OUT exists and the plan does not allow replacing it.
    #[error("{0} already exists")]
    OutExists(PathBuf),
    /// The GRUB directory lacks a file fsmaker needs.
    #[error("GRUB file {path} is missing: install the Debian package {package}")]
    GrubMissing {
        /// The missing file.
        path: PathBuf,
        /// The package that has it.
        package: &'static str,
    },
    /// An MBR disk was asked to boot with UEFI.
    #[error("an MBR disk is built for BIOS only, not {0}: UEFI needs GPT")]
    MbrIsBiosOnly(Firmware),
    /// Secure Boot was asked for a disk UEFI does not boot.
    #[error("Secure Boot needs a disk that boots with UEFI")]
    SecureBootNeedsUefi,
    /// The kernel the Secure Boot chain would load is not signed.
    #[error("{0} is not signed: shim and GRUB would refuse it under Secure Boot")]
    UnsignedKernel(PathBuf),
    /// The signed chain is not in the cache.
    #[error("no signed boot chain (shim, GRUB) in the cache {cache}")]
    NoSignedChain {
        /// The cache directory.
        cache: PathBuf,
    },
    /// A package the signed chain comes from was not among those given.
    #[error("the signed boot chain needs the package {0}")]
    SignedPackageMissing(&'static str),
    /// The partition table could not be written.
    #[error("GPT: {0}")]
    Gpt(String),
    /// The EFI system partition could not be made.
    #[error("ESP: {0}")]
    Esp(String),
    /// GRUB's images could not be prepared.
    #[error("GRUB: {0}")]
    Grub(String),
    /// The kernel cache holds no kernel to install (or not the one asked for).
    #[error("{detail} in the kernel cache {cache}")]
    NoKernel {
        /// The cache directory.
        cache: PathBuf,
        /// What is missing (`no kernel is cached`, `kernel 6.1.0-9 is not cached`).
        detail: String,
    },
    /// A package to import is not a usable Linux kernel package.
    #[error("{deb}: {why}")]
    BadDeb {
        /// The package file.
        deb: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A kernel file to install is not a bzImage.
    #[error("{0} is not a Linux kernel image (no bzImage header)")]
    NotKernel(PathBuf),
    /// The plan boots the root filesystem's own kernel and it has none.
    #[error("{0} holds no /boot/vmlinuz-* to boot")]
    NoKernelInRootfs(PathBuf),
    /// A helper program (debugfs, resize2fs, grub-mkimage, qemu-img, ...) failed.
    #[error(transparent)]
    Helper(#[from] crate::helper::HelperError),
    /// The sparse copy of the filesystem into the disk failed.
    #[error("copying the filesystem: {0}")]
    Copy(#[source] sparsecopy::SparseError),
    /// The initrd cannot be built for a kernel.
    #[error("initrd: {0}")]
    Initrd(String),
    /// Local I/O failed.
    #[error("{what}: {source}")]
    Io {
        /// What fsmaker was doing.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl BuildError {
    /// An [`BuildError::Io`] saying what fsmaker was doing.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> BuildError {
        BuildError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Which kernel the image boots.
#[derive(Debug, Clone)]
pub enum KernelSource {
    /// A kernel from the cache: it, its initrd and its modules are installed.
    Cached(CachedKernel),
    /// The user's own kernel (and initrd), installed as-is.
    Files {
        /// The kernel image (a bzImage).
        kernel: PathBuf,
        /// Its initrd, if it needs one.
        initrd: Option<PathBuf>,
    },
    /// The newest `/boot/vmlinuz-*` already in the filesystem (with its `initrd.img-*`).
    InRootfs,
}

crate::named_enum! {
    /// The format of the image fsmaker writes.
    pub enum Format("image format") {
        /// A raw disk image, sparse where the disk is zero.
        Raw = "raw",
        /// A qcow2 image converted from the raw disk with qemu-img.
        Qcow2 = "qcow2",
    }
}

/// How the disk boots: its partition table, firmware, and where the boot code comes from.
#[derive(Debug, Clone)]
pub struct BootSetup {
    /// The partition table.
    pub table: Table,
    /// The firmware the disk boots with.
    pub firmware: Firmware,
    /// The GRUB i386-pc directory boot.img, core.img and the modules come from.
    pub grub_dir: PathBuf,
    /// The GRUB x86_64-efi directory `BOOTX64.EFI` is built from.
    pub grub_efi_dir: PathBuf,
    /// For Secure Boot: shim and Debian's signed GRUB instead of GRUB's EFI image.
    pub signed: Option<SignedChain>,
}

impl Default for BootSetup {
    /// MBR, BIOS, the host's GRUB builds.
    fn default() -> Self {
        BootSetup {
            table: Table::Mbr,
            firmware: Firmware::Bios,
            grub_dir: grub::DEFAULT_DIR.into(),
            grub_efi_dir: grub::DEFAULT_EFI_DIR.into(),
            signed: None,
        }
    }
}

/// A resolved build request.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    /// The bare root filesystem image (ext2/3/4); never modified.
    pub rootfs: PathBuf,
    /// The disk image to write.
    pub out: PathBuf,
    /// Whether an existing OUT may be replaced.
    pub force: bool,
    /// Whole-disk size; `None` = just big enough for the filesystem.
    pub size: Option<u64>,
    /// Grow the filesystem to fill the partition (needs `size`).
    pub grow: bool,
    /// The image's format.
    pub format: Format,
    /// The kernel the image boots.
    pub kernel: KernelSource,
    /// How the disk boots.
    pub boot: BootSetup,
    /// Extra kernel command-line arguments, appended last.
    pub append: String,
    /// Timestamp for every file fsmaker writes (`SOURCE_DATE_EPOCH`); `None` uses the
    /// root filesystem's last write time, so the same inputs always give the same bytes.
    pub epoch: Option<i64>,
}

/// Progress of a build or a kernel import, for the caller to show: typed, so the caller
/// chooses the words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A step starts (the one before it is done).
    Step(Step),
    /// The step under way moved bytes (the filesystem copied, the package downloaded).
    Bytes {
        /// Bytes done so far.
        done: u64,
        /// Bytes in all, if known.
        total: Option<u64>,
    },
}

/// The steps that take time, in the order they come. A build checks its inputs, the
/// kernel and the room before its first step, so a bad input fails before any step starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The filesystem (`bytes` long) is copied into a scratch file to be grown there;
    /// [`Event::Bytes`] follow.
    CopyToGrow {
        /// The filesystem's size.
        bytes: u64,
    },
    /// That copy is grown with `resize2fs` to fill partition 1.
    Grow {
        /// The size it grows to.
        bytes: u64,
    },
    /// The filesystem (`bytes` long) is copied sparsely into partition 1;
    /// [`Event::Bytes`] follow.
    CopyToPartition {
        /// The filesystem's size.
        bytes: u64,
    },
    /// The kernel, initrd, modules, GRUB's modules and `grub.cfg` go into the filesystem.
    Install,
    /// The MBR and GRUB's core image go into the disk's first MiB.
    BootSectors,
    /// The GPT is written, with GRUB's core image in the BIOS boot partition (hybrid
    /// disks) and the EFI system partition (its FAT filesystem and loaders).
    GptBoot,
    /// The raw disk is converted to qcow2.
    Convert,
    /// A package is downloaded with `apt-get download`; [`Event::Bytes`] follow.
    Download {
        /// The package's name.
        package: String,
        /// Its size, if apt says it beforehand.
        bytes: Option<u64>,
    },
    /// A kernel package is unpacked.
    Unpack {
        /// The package's name.
        package: String,
        /// Its version.
        version: String,
    },
    /// The kernel's modules are indexed (`depmod`).
    Depmod {
        /// The kernel's release.
        kernel: String,
    },
    /// fsmaker's initrd is built for the kernel.
    Initrd {
        /// The kernel's release.
        kernel: String,
    },
}

/// What was built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The image written.
    pub out: PathBuf,
    /// Its format.
    pub format: Format,
    /// The size of the disk it holds, in bytes.
    pub disk_size: u64,
    /// Bytes the image file allocates on the host (it is sparse).
    pub allocated: u64,
    /// The root filesystem's kind (`ext4`).
    pub fs_kind: String,
    /// The root filesystem's UUID, as `root=UUID=` names it.
    pub root_uuid: String,
    /// The release of the kernel it boots.
    pub kernel_version: String,
    /// Where that kernel is inside the filesystem.
    pub kernel_path: String,
    /// Where its initrd is inside the filesystem, if it has one.
    pub initrd_path: Option<String>,
    /// The kernel command line GRUB passes.
    pub cmdline: String,
    /// The partition table.
    pub table: Table,
    /// The firmware the disk boots with.
    pub firmware: Firmware,
    /// Whether the UEFI boot is the signed chain.
    pub secure_boot: bool,
}

impl Summary {
    /// A QEMU command line that boots the image (under BIOS when it can; a UEFI-only
    /// image under OVMF, with a private copy of the variable store `OVMF_VARS.fd`).
    pub fn qemu_command(&self) -> String {
        let firmware = if self.firmware.bios() {
            String::new()
        } else {
            let ovmf = Ovmf::in_dir(Path::new(OVMF_DIR), false);
            let uefi = Uefi {
                code: ovmf.code,
                vars: "OVMF_VARS.fd".into(),
                secure_boot: false,
            };
            format!(" {}", crate::vm::firmware_args(Some(&uefi)).join(" "))
        };
        format!(
            "qemu-system-x86_64 -accel kvm -accel tcg -m 512 -nographic{firmware} -drive file={},format={},if=virtio",
            self.out.display(),
            self.format
        )
    }
}

/// The kernel command line: root by UUID, serial and VGA consoles, then `append`.
/// `console=ttyS0` comes last so that /dev/console (userspace's output) is the serial port.
pub fn cmdline(uuid: &str, append: &str) -> String {
    let mut c = format!("root=UUID={uuid} ro console=tty0 console=ttyS0,115200");
    if !append.trim().is_empty() {
        c.push(' ');
        c.push_str(append.trim());
    }
    c
}

/// Builds the image described by `plan`, as a short sequence of stages: check the inputs,
/// resolve the kernel, plan what to install, check the room, assemble the disk in an
/// unnamed file next to OUT, convert it, and link it as OUT. Asked to stop, it stops at
/// the next step with [`BuildError::Interrupted`].
pub fn build(plan: &BuildPlan, on: &mut dyn FnMut(Event)) -> Result<Summary, BuildError> {
    stages(plan, on).map_err(|e| {
        if crate::interrupt::requested() {
            BuildError::Interrupted
        } else {
            e
        }
    })
}

/// [`build`]'s stages in order; between the long ones, whether to go on.
fn stages(plan: &BuildPlan, on: &mut dyn FnMut(Event)) -> Result<Summary, BuildError> {
    let inputs = check_inputs(plan)?;
    let work = crate::scratch::Dir::new("fsmaker-")
        .map_err(|e| BuildError::io("cannot create a temp dir", e))?;
    let boot = resolve_kernel(plan)?;
    let contents = plan_install(plan, &inputs, &boot, work.path())?;
    check_room(&inputs, plan.grow, &contents.install)?;
    go_on()?;
    let disk = assemble(plan, &inputs, &contents, work.path(), on)?;
    go_on()?;
    let image = convert(plan, disk, on)?;
    go_on()?;
    let allocated = persist(image, &plan.out, plan.force)?;
    Ok(Summary {
        out: plan.out.clone(),
        format: plan.format,
        disk_size: inputs.layout.disk,
        allocated,
        fs_kind: inputs.sb.kind.to_string(),
        root_uuid: inputs.sb.uuid_string(),
        kernel_version: boot.version,
        kernel_path: boot.kernel,
        initrd_path: boot.initrd,
        cmdline: contents.cmdline,
        table: plan.boot.table,
        firmware: plan.boot.firmware,
        secure_boot: plan.boot.signed.is_some(),
    })
}

/// Err when the process was asked to stop ([`crate::interrupt`]).
fn go_on() -> Result<(), BuildError> {
    if crate::interrupt::requested() {
        return Err(BuildError::Interrupted);
    }
    Ok(())
}

/// The checked inputs of a build: the root filesystem's superblock, the GRUB directories,
/// the disk layout and the timestamp of every file written.
struct Inputs {
    /// The root filesystem image's superblock.
    sb: Superblock,
    /// The GRUB i386-pc directory, checked to hold what fsmaker needs (BIOS boots).
    grub: Option<GrubDir>,
    /// The GRUB x86_64-efi directory (UEFI boots without the signed chain).
    grub_efi: Option<GrubDir>,
    /// The sizes of the disk and of partition 1.
    layout: Layout,
    /// Seconds since 1970 for every timestamp fsmaker writes.
    epoch: i64,
}

/// Stage 1: refuses a table and firmware that do not go together ([`layout::scheme`], for
/// every caller, not only the command line), reads ROOTFS's superblock, refuses an OUT
/// that is not a regular file, that exists (unless forced) or that is ROOTFS itself, and
/// extra kernel arguments GRUB cannot pass on; checks the GRUB directories and works out
/// the layout.
fn check_inputs(plan: &BuildPlan) -> Result<Inputs, BuildError> {
    let b = &plan.boot;
    layout::scheme(Some(b.table), Some(b.firmware), b.signed.is_some())?;
    let sb = Superblock::read(&plan.rootfs)?;
    check_out(&plan.out, plan.force)?;
    grub::linux_args(&plan.append).map_err(BuildError::BadAppend)?;
    if let (Ok(a), Ok(b)) = (plan.rootfs.canonicalize(), plan.out.canonicalize())
        && a == b
    {
        return Err(BuildError::OutIsRootfs(plan.out.clone()));
    }
    let grub = (b.firmware.bios())
        .then(|| GrubDir::locate(&b.grub_dir, Platform::I386Pc))
        .transpose()?;
    let grub_efi = (b.firmware.uefi() && b.signed.is_none())
        .then(|| GrubDir::locate(&b.grub_efi_dir, Platform::X86_64Efi))
        .transpose()?;
    let layout = layout::plan(
        sb.size(),
        sb.block_size,
        plan.size,
        plan.grow,
        (b.table, b.firmware),
    )?;
    let epoch = plan.epoch.unwrap_or(sb.wtime);
    Ok(Inputs {
        sb,
        grub,
        grub_efi,
        layout,
        epoch,
    })
}

/// Refuses an OUT that is anything but a regular file (a symbolic link is replaced, never
/// followed), or that exists unless `force`.
fn check_out(out: &Path, force: bool) -> Result<(), BuildError> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match out.symlink_metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(BuildError::io(
                format!("cannot look at {}", out.display()),
                e,
            ));
        }
    };
    let t = meta.file_type();
    let kind = match () {
        _ if t.is_file() || t.is_symlink() => None,
        _ if t.is_dir() => Some("a directory"),
        _ if t.is_block_device() => Some("a block device"),
        _ if t.is_char_device() => Some("a character device"),
        _ if t.is_fifo() => Some("a FIFO"),
        _ => Some("a socket"),
    };
    if let Some(kind) = kind {
        return Err(BuildError::OutKind {
            path: out.to_owned(),
            kind,
        });
    }
    if !force {
        return Err(BuildError::OutExists(out.to_owned()));
    }
    Ok(())
}

/// The kernel the image boots: where it and its initrd go, and the host files behind them.
struct BootKernel {
    /// The kernel's release (`uname -r`).
    version: String,
    /// Where the kernel is inside the filesystem (`/boot/vmlinuz-<version>`).
    kernel: String,
    /// Where its initrd is inside the filesystem, if it has one.
    initrd: Option<String>,
    /// Host files to install and where: the kernel and its initrd (none for a kernel
    /// already in ROOTFS).
    files: Vec<(PathBuf, String)>,
    /// A cached kernel's modules tree, installed unless ROOTFS already has one.
    modules: Option<PathBuf>,
}

/// Stage 2: what kernel to install and where. For Secure Boot a kernel from the host must
/// be signed (one already in ROOTFS is installed as it is).
fn resolve_kernel(plan: &BuildPlan) -> Result<BootKernel, BuildError> {
    let boot = kernel_files(&plan.kernel, &plan.rootfs)?;
    if plan.boot.signed.is_some()
        && let Some((host, _)) = boot.files.first()
        && !kernel::is_signed(host)?
    {
        return Err(BuildError::UnsignedKernel(host.clone()));
    }
    Ok(boot)
}

/// The kernel of `source`: where it and its initrd go, and the host files behind them.
fn kernel_files(source: &KernelSource, rootfs: &Path) -> Result<BootKernel, BuildError> {
    let (version, host_kernel, host_initrd, modules) = match source {
        KernelSource::Cached(k) => (
            k.meta.version.clone(),
            k.vmlinuz(),
            Some(k.initrd()),
            Some(k.modules()),
        ),
        KernelSource::Files { kernel, initrd } => (
            kernel::bzimage_version(kernel)?,
            kernel.clone(),
            initrd.clone(),
            None,
        ),
        KernelSource::InRootfs => {
            let (v, initrd) = kernel_in_rootfs(rootfs)?;
            return Ok(BootKernel {
                kernel: format!("/boot/vmlinuz-{v}"),
                initrd: initrd.map(|i| format!("/boot/{i}")),
                version: v,
                files: Vec::new(),
                modules: None,
            });
        }
    };
    let kernel = format!("/boot/vmlinuz-{version}");
    let mut files = vec![(host_kernel, kernel.clone())];
    let initrd = host_initrd.map(|host| {
        let dest = format!("/boot/initrd.img-{version}");
        files.push((host, dest.clone()));
        dest
    });
    Ok(BootKernel {
        version,
        kernel,
        initrd,
        files,
        modules,
    })
}

/// The newest `vmlinuz-*` (and matching `initrd.img-*`) in the filesystem's /boot.
fn kernel_in_rootfs(rootfs: &Path) -> Result<(String, Option<String>), BuildError> {
    let boot = debugfs::list(&device(rootfs), "/boot")?.unwrap_or_default();
    let mut versions: Vec<String> = boot
        .iter()
        .filter(|e| !e.is_dir())
        .filter_map(|e| e.name.strip_prefix("vmlinuz-").map(str::to_string))
        .collect();
    versions.sort_by(|a, b| version_cmp(a, b));
    let v = versions
        .pop()
        .ok_or_else(|| BuildError::NoKernelInRootfs(rootfs.to_owned()))?;
    let initrd = format!("initrd.img-{v}");
    let has_initrd = boot.iter().any(|e| e.name == initrd);
    Ok((v, has_initrd.then_some(initrd)))
}

/// `path` as debugfs names a filesystem image.
fn device(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// What goes into the filesystem.
struct Contents {
    /// Every file, directory and symlink to write.
    install: Install,
    /// What already exists where they go.
    existing: Existing,
    /// The kernel command line in grub.cfg.
    cmdline: String,
}

/// Stage 3: the files to install (kernel, initrd, modules, GRUB's modules, a `grub.cfg`
/// written into `workdir`) and what already exists in ROOTFS where they go.
fn plan_install(
    plan: &BuildPlan,
    inputs: &Inputs,
    boot: &BootKernel,
    workdir: &Path,
) -> Result<Contents, BuildError> {
    let src = device(&plan.rootfs);
    let lib = install::lib_dir(&src)?;
    let modules_root = format!("{lib}/modules");
    let moddir = format!("{modules_root}/{}", boot.version);
    let probe = [
        "/boot",
        "/boot/grub",
        "/boot/grub/i386-pc",
        &lib,
        &modules_root,
        &moddir,
    ];
    let existing = Existing::probe(&src, &probe)?;
    let mut install = Install::default();
    for (host, dest) in &boot.files {
        install.file(host, dest.clone())?;
    }
    if let Some(tree) = &boot.modules
        && !existing.has(&moddir)
    {
        install.tree(tree, &moddir)?;
    }
    if let Some(grub) = &inputs.grub {
        for f in grub.runtime_files()? {
            let name = f.file_name().expect("listed files have names");
            install.file(&f, format!("/boot/grub/i386-pc/{}", name.to_string_lossy()))?;
        }
    }
    let uuid = inputs.sb.uuid_string();
    let cmdline = cmdline(&uuid, &plan.append);
    let title = format!("Linux {}", boot.version);
    let args = grub::linux_args(&cmdline).map_err(BuildError::BadAppend)?;
    let cfg = grub::config(&uuid, &title, &boot.kernel, boot.initrd.as_deref(), &args);
    let cfg_path = workdir.join("grub.cfg");
    std::fs::write(&cfg_path, cfg).map_err(|e| BuildError::io("cannot write grub.cfg", e))?;
    install.file(&cfg_path, "/boot/grub/grub.cfg".into())?;
    Ok(Contents {
        install,
        existing,
        cmdline,
    })
}

/// Stage 4: whether the filesystem (grown, if `grow`) has the bytes and inodes `install`
/// needs. Free space counts what growing adds, less ~3% for the new groups' metadata; the
/// error names a disk size that would fit.
fn check_room(inputs: &Inputs, grow: bool, install: &Install) -> Result<(), BuildError> {
    let (sb, layout) = (&inputs.sb, &inputs.layout);
    let (needed, inodes) = install.needs(sb.block_size);
    let grown = (layout.part.saturating_sub(sb.size())) / 100 * 97;
    let free = sb.free_blocks * sb.block_size + grown;
    let free_inodes = if grow { u64::MAX } else { sb.free_inodes };
    if needed <= free && inodes <= free_inodes {
        return Ok(());
    }
    let want = layout.overhead() + sb.size() + (needed.saturating_sub(free)) * 11 / 10;
    let fits_mib = want
        .div_ceil(1 << 20)
        .max(layout.disk.div_ceil(1 << 20) + 1);
    Err(BuildError::TooSmall {
        needed,
        free,
        inodes,
        free_inodes: sb.free_inodes,
        fits: fits_mib << 20,
    })
}

/// Stage 5: the raw disk, in a temp file next to OUT: the filesystem (grown first if asked)
/// copied sparsely into the root partition, the files installed by one debugfs batch, then
/// the partition table and the boot code.
fn assemble(
    plan: &BuildPlan,
    inputs: &Inputs,
    contents: &Contents,
    workdir: &Path,
    on: &mut dyn FnMut(Event),
) -> Result<Unnamed, BuildError> {
    let disk = temp_next_to(&plan.out)?;
    let grown = grow_filesystem(plan, inputs, on)?;
    let source = grown.as_ref().map_or(plan.rootfs.clone(), |g| g.path());
    on(Event::Step(Step::CopyToPartition {
        bytes: file_len(&source)?,
    }));
    let part_start = inputs.layout.part_start;
    copy_rootfs(&source, &disk.path(), part_start, on)?;
    disk.file()
        .set_len(inputs.layout.disk)
        .map_err(|e| BuildError::io("cannot size the disk image", e))?;
    on(Event::Step(Step::Install));
    let partition = format!("{}?offset={part_start}", disk.path().display());
    install::batch(&contents.install, &contents.existing, inputs.epoch).run(&partition, workdir)?;
    match inputs.layout.table {
        Table::Mbr => {
            on(Event::Step(Step::BootSectors));
            write_boot_sectors(disk.file(), inputs, workdir)?;
        }
        Table::Gpt => {
            on(Event::Step(Step::GptBoot));
            write_gpt_boot(plan, &disk, inputs, workdir)?;
        }
    }
    disk.file()
        .sync_all()
        .map_err(|e| BuildError::io("cannot sync the disk image", e))?;
    Ok(disk)
}

/// A copy of ROOTFS grown with `resize2fs` to fill partition 1, when the plan grows it.
/// resize2fs sizes a regular file to the filesystem's new end, ignoring any `?offset=`,
/// so the filesystem grows in a file of its own first.
fn grow_filesystem(
    plan: &BuildPlan,
    inputs: &Inputs,
    on: &mut dyn FnMut(Event),
) -> Result<Option<Unnamed>, BuildError> {
    let (sb, layout) = (&inputs.sb, &inputs.layout);
    if !plan.grow || layout.part <= sb.size() {
        return Ok(None);
    }
    on(Event::Step(Step::CopyToGrow {
        bytes: file_len(&plan.rootfs)?,
    }));
    let fs = temp_next_to(&plan.out)?;
    copy_rootfs(&plan.rootfs, &fs.path(), 0, on)?;
    on(Event::Step(Step::Grow { bytes: layout.part }));
    // libext2fs takes its clock from E2FSPROGS_FAKE_TIME: the grown filesystem's
    // timestamps are then the same on every run.
    helper::run(
        Command::new("resize2fs")
            .env("E2FSPROGS_FAKE_TIME", inputs.epoch.to_string())
            .arg("-f")
            .arg(fs.path())
            .arg((layout.part / sb.block_size).to_string()),
        "e2fsprogs",
    )?;
    Ok(Some(fs))
}

/// The length of the file at `path`: what a copy of it moves.
fn file_len(path: &Path) -> Result<u64, BuildError> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| BuildError::io(format!("cannot stat {}", path.display()), e))
}

/// Copies an image (the filesystem, the ESP) into `disk` at byte `offset` with the sparse engine:
/// only data is read, zero blocks become holes, the rest of `disk` is kept.
fn copy_rootfs(
    rootfs: &Path,
    disk: &Path,
    offset: u64,
    on: &mut dyn FnMut(Event),
) -> Result<(), BuildError> {
    let mut plan = sparsecopy::CopyPlan::new(sparsecopy::Source::Path(rootfs.to_owned()), disk);
    plan.seek = offset;
    sparsecopy::copy_with(&plan, &mut |p| {
        on(Event::Bytes {
            done: p.done,
            total: p.total,
        })
    })
    .map_err(BuildError::Copy)?;
    Ok(())
}

/// Sector 0 (boot.img patched around the partition table) and GRUB's core image from
/// sector 1, which must end before partition 1.
fn write_boot_sectors(disk: &File, inputs: &Inputs, workdir: &Path) -> Result<(), BuildError> {
    let grub = inputs.grub.as_ref().expect("an MBR disk boots with BIOS");
    let uuid = &inputs.sb.uuid;
    let table = layout::mbr(&inputs.layout, [uuid[0], uuid[1], uuid[2], uuid[3]])?;
    let gap = layout::Region {
        start: layout::SECTOR,
        size: inputs.layout.part_start - layout::SECTOR,
    };
    embed_grub(disk, grub, "(,msdos1)/boot/grub", gap, &table, workdir)
}

/// GRUB for BIOS: core.img (with `prefix`) embedded at `area`, its blocklist pointing
/// there, and boot.img in sector 0 around `sector0`'s partition table.
fn embed_grub(
    disk: &File,
    grub: &GrubDir,
    prefix: &str,
    area: layout::Region,
    sector0: &[u8],
    workdir: &Path,
) -> Result<(), BuildError> {
    let first = area.start / layout::SECTOR;
    let core = grub::patch_core_img(&grub.mkimage(workdir, prefix)?, first)?;
    if core.len() as u64 > area.size {
        return Err(BuildError::Grub(format!(
            "core.img ({} bytes) does not fit in the {} bytes before partition 1 or in the BIOS boot partition",
            core.len(),
            area.size
        )));
    }
    let mbr = grub::patch_boot_img(&grub.boot_img()?, sector0, first);
    write_at(disk, 0, &mbr)?;
    write_at(disk, area.start, &core)
}

/// A GPT disk's boot: the table (with its protective MBR), GRUB's core image in the BIOS
/// boot partition and boot.img in sector 0 (BIOS; without BIOS, boot code that hands the
/// boot back), the ESP (UEFI).
fn write_gpt_boot(
    plan: &BuildPlan,
    disk: &crate::scratch::Unnamed,
    inputs: &Inputs,
    workdir: &Path,
) -> Result<(), BuildError> {
    let file = disk.file();
    let layout = &inputs.layout;
    gpt::write(file, layout, &inputs.sb.uuid)?;
    if layout.bios_boot.is_none() {
        // UEFI only: a BIOS that boots the disk anyway is handed back at once.
        write_at(file, 0, &crate::disk::bootable::HAND_BACK)?;
    }
    if let (Some(area), Some(grub)) = (layout.bios_boot, &inputs.grub) {
        let mut sector0 = vec![0u8; layout::SECTOR as usize];
        std::os::unix::fs::FileExt::read_exact_at(file, &mut sector0, 0)
            .map_err(|e| BuildError::io("cannot read the protective MBR", e))?;
        embed_grub(file, grub, "(,gpt1)/boot/grub", area, &sector0, workdir)?;
    }
    if let Some(area) = layout.esp {
        let image = workdir.join("esp.img");
        let uuid = &inputs.sb.uuid;
        let volume_id = u32::from_le_bytes([uuid[4], uuid[5], uuid[6], uuid[7]]);
        let files = esp_files(plan, inputs, workdir)?;
        esp::build(&image, area.size, volume_id, inputs.epoch, &files)?;
        copy_rootfs(&image, &disk.path(), area.start, &mut |_| {})?;
    }
    Ok(())
}

/// What the ESP holds: GRUB's EFI image as `EFI/BOOT/BOOTX64.EFI` with its `grub.cfg`;
/// for Secure Boot shim as `BOOTX64.EFI`, Debian's signed GRUB beside it and the
/// `grub.cfg` where that GRUB looks. Either `grub.cfg` reads the root's `/boot/grub`.
fn esp_files(
    plan: &BuildPlan,
    inputs: &Inputs,
    workdir: &Path,
) -> Result<Vec<EspFile>, BuildError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| BuildError::io(format!("cannot read {}", p.display()), e))
    };
    let file = |data: Vec<u8>, dest: &str| EspFile {
        data,
        dest: dest.to_string(),
    };
    let cfg = grub::esp_config(&inputs.sb.uuid_string()).into_bytes();
    let boot = grub::EFI_PREFIX;
    Ok(match &plan.boot.signed {
        Some(chain) => vec![
            file(read(&chain.shim())?, &format!("{boot}/BOOTX64.EFI")),
            file(read(&chain.grub())?, &format!("{boot}/grubx64.efi")),
            file(cfg, &format!("{}/grub.cfg", signed::SIGNED_GRUB_PREFIX)),
        ],
        None => {
            let grub = (inputs.grub_efi.as_ref())
                .expect("a UEFI disk without the signed chain has GRUB's EFI directory");
            vec![
                file(grub.mkimage(workdir, boot)?, &format!("{boot}/BOOTX64.EFI")),
                file(cfg, &format!("{boot}/grub.cfg")),
            ]
        }
    })
}

fn write_at(f: &File, at: u64, data: &[u8]) -> Result<(), BuildError> {
    let mut f = f;
    f.seek(SeekFrom::Start(at))
        .and_then(|_| f.write_all(data))
        .map_err(|e| BuildError::io("cannot write the boot sectors", e))
}

/// Stage 6: the image in the plan's format: the raw disk itself, or a qcow2 converted
/// from it into another unnamed file next to OUT.
fn convert(
    plan: &BuildPlan,
    raw: Unnamed,
    on: &mut dyn FnMut(Event),
) -> Result<Unnamed, BuildError> {
    match plan.format {
        Format::Raw => Ok(raw),
        Format::Qcow2 => {
            on(Event::Step(Step::Convert));
            let q = temp_next_to(&plan.out)?;
            helper::run(
                Command::new("qemu-img")
                    .args(["convert", "-f", "raw", "-O", "qcow2"])
                    .arg(raw.path())
                    .arg(q.path()),
                "qemu-utils",
            )?;
            Ok(q)
        }
    }
}

/// Stage 7: links the image as `out` (replacing an existing `out` only if `replace`),
/// with the mode a new file gets; returns the bytes it allocates.
fn persist(image: Unnamed, out: &Path, replace: bool) -> Result<u64, BuildError> {
    let done = image.link(out, replace).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            BuildError::OutExists(out.to_owned())
        } else {
            BuildError::io(format!("cannot create {}", out.display()), e)
        }
    })?;
    let meta = done
        .metadata()
        .map_err(|e| BuildError::io("cannot stat the image", e))?;
    Ok(meta.blocks() * 512)
}

/// A file for an image of `out`, in `out`'s directory (so that linking it as `out` is one
/// step) and without a name until then: dropped (on any error), it leaves nothing.
fn temp_next_to(out: &Path) -> Result<Unnamed, BuildError> {
    Unnamed::next_to(out).map_err(|e| {
        let dir = crate::scratch::dir_and_name(out).0.display().to_string();
        BuildError::io(format!("cannot create a temp file in {dir}"), e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_qemu_command_boots_a_uefi_only_disk_under_ovmf() {
        let mut s = Summary {
            out: "/o/disk.img".into(),
            format: Format::Raw,
            disk_size: 0,
            allocated: 0,
            fs_kind: "ext4".into(),
            root_uuid: String::new(),
            kernel_version: String::new(),
            kernel_path: String::new(),
            initrd_path: None,
            cmdline: String::new(),
            table: Table::Gpt,
            firmware: Firmware::Hybrid,
            secure_boot: false,
        };
        let bios = s.qemu_command();
        assert!(!bios.contains("pflash"), "{bios}");
        assert!(
            bios.ends_with("-drive file=/o/disk.img,format=raw,if=virtio"),
            "{bios}"
        );
        s.firmware = Firmware::Uefi;
        let uefi = s.qemu_command();
        for part in [
            "-machine q35",
            "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
            "if=pflash,format=raw,unit=1,file=OVMF_VARS.fd",
        ] {
            assert!(uefi.contains(part), "{part}: {uefi}");
        }
    }

    #[test]
    fn cmdline_puts_serial_last_and_appends() {
        assert_eq!(
            cmdline("u", ""),
            "root=UUID=u ro console=tty0 console=ttyS0,115200"
        );
        assert_eq!(
            cmdline("u", " quiet "),
            "root=UUID=u ro console=tty0 console=ttyS0,115200 quiet"
        );
    }
}
