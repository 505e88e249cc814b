//! fsmaker: turns a bare ext2/3/4 root filesystem image into a bootable BIOS disk image
//! without root, loop devices or mounting.
//!
//! Flow of [`build`]: read the superblock -> plan the layout and the files to install
//! -> check the room -> optionally grow a copy with `resize2fs` -> copy the filesystem
//! (sparse) into partition 1 of a temp file next to OUT -> one `debugfs -w` batch writes the
//! kernel, initrd, `/lib/modules/<version>`, GRUB modules and `grub.cfg` -> MBR,
//! boot.img and core.img go into the first MiB -> optional qcow2 -> rename to OUT.
//! On any error the temp file is dropped, so OUT is either complete or untouched.
//!
//! The library never prints: progress goes out as [`Event`]s, the result as a [`Summary`].

pub mod debugfs;
pub mod grub;
pub mod initrd;
pub mod kernel;
pub mod layout;
pub mod superblock;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::sparsecopy;
use crate::units::human;
use debugfs::Batch;
use grub::GrubDir;
use kernel::{CachedKernel, version_cmp};
use layout::{Layout, PART_START};
use superblock::Superblock;

/// Everything that can stop a build or a kernel import. Messages say what is wrong in
/// terms of the plan; they name no command-line flag (the library has callers without
/// flags, such as `imgtest matrix`): the `fsmaker` binary adds the flag hints.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// OUT names the root filesystem image itself.
    #[error("OUT {0} is ROOTFS itself: fsmaker never modifies its input")]
    OutIsRootfs(PathBuf),
    /// Growing the filesystem was asked for without a disk size to grow into.
    #[error("growing the filesystem needs a disk size to grow into")]
    GrowNeedsSize,
    /// The disk size asked for cannot hold the filesystem and the boot gap before it.
    #[error(
        "a disk of {} is smaller than the filesystem plus 1 MiB ({})",
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
    #[error("GRUB file {path} is missing: install the Debian package grub-pc-bin")]
    GrubMissing {
        /// The missing file.
        path: PathBuf,
    },
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
    Tool(#[from] crate::tool::ToolError),
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
        kernel: PathBuf,
        initrd: Option<PathBuf>,
    },
    /// The newest `/boot/vmlinuz-*` already in the filesystem (with its `initrd.img-*`).
    InRootfs,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Raw,
    Qcow2,
}

/// A resolved build request.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    pub rootfs: PathBuf,
    pub out: PathBuf,
    pub force: bool,
    /// Whole-disk size; `None` = just big enough for the filesystem.
    pub size: Option<u64>,
    /// Grow the filesystem to fill the partition (needs `size`).
    pub grow: bool,
    pub format: Format,
    pub kernel: KernelSource,
    pub grub_dir: PathBuf,
    /// Extra kernel command-line arguments, appended last.
    pub append: String,
    /// Timestamp for every file fsmaker writes (`SOURCE_DATE_EPOCH`); `None` uses the
    /// root filesystem's last write time, so the same inputs always give the same bytes.
    pub epoch: Option<i64>,
}

/// Progress events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new phase starts.
    Step(String),
    /// The filesystem copy advanced (bytes of the filesystem done, of `total`).
    Copy { done: u64, total: Option<u64> },
}

/// What was built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub out: PathBuf,
    pub format: Format,
    pub disk_size: u64,
    pub allocated: u64,
    pub fs_kind: String,
    pub root_uuid: String,
    pub kernel_version: String,
    pub kernel_path: String,
    pub initrd_path: Option<String>,
    pub cmdline: String,
}

impl Summary {
    /// A QEMU command line that boots the image.
    pub fn qemu_command(&self) -> String {
        let fmt = match self.format {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
        };
        format!(
            "qemu-system-x86_64 -accel kvm -accel tcg -m 512 -nographic -drive file={},format={fmt},if=virtio",
            self.out.display()
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

/// One file to put into the filesystem.
struct Put {
    host: PathBuf,
    dest: String,
    size: u64,
}

/// Files and directories to create, in creation order.
#[derive(Default)]
struct Install {
    dirs: Vec<String>,
    files: Vec<Put>,
    symlinks: Vec<(String, String)>,
}

impl Install {
    fn file(&mut self, host: &Path, dest: String) -> Result<(), BuildError> {
        let size = std::fs::metadata(host)
            .map_err(|e| BuildError::io(format!("cannot read {}", host.display()), e))?
            .len();
        self.files.push(Put {
            host: host.to_owned(),
            dest,
            size,
        });
        Ok(())
    }

    /// Adds the host tree `src` under `dest` (sorted, so the batch is the same every run).
    fn tree(&mut self, src: &Path, dest: &str) -> Result<(), BuildError> {
        self.dirs.push(dest.to_string());
        let mut entries: Vec<_> = std::fs::read_dir(src)
            .map_err(|e| BuildError::io(format!("cannot list {}", src.display()), e))?
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let d = format!("{dest}/{name}");
            let ft = e.file_type().map_err(|err| {
                BuildError::io(format!("cannot stat {}", e.path().display()), err)
            })?;
            if ft.is_dir() {
                self.tree(&e.path(), &d)?;
            } else if ft.is_symlink() {
                let t = std::fs::read_link(e.path())
                    .map_err(|err| BuildError::io("cannot read a symlink", err))?;
                self.symlinks.push((d, t.to_string_lossy().into_owned()));
            } else {
                self.file(&e.path(), d)?;
            }
        }
        Ok(())
    }

    /// Bytes and inodes the files need in a filesystem of block size `block`, with a
    /// margin for extent/indirect blocks.
    fn needs(&self, block: u64) -> (u64, u64) {
        let data: u64 = self
            .files
            .iter()
            .map(|f| f.size.div_ceil(block) * block)
            .sum();
        let meta = (self.dirs.len() as u64 + self.symlinks.len() as u64) * block;
        let indirect = data / 1024 + self.files.len() as u64 * 64;
        let inodes = (self.dirs.len() + self.files.len() + self.symlinks.len()) as u64;
        (data + meta + indirect + (1 << 20), inodes)
    }
}

/// What already exists in the filesystem where fsmaker installs.
struct Existing {
    paths: BTreeSet<String>,
}

impl Existing {
    fn probe(device: &str, dirs: &[&str]) -> Result<Existing, BuildError> {
        let mut paths = BTreeSet::new();
        for d in dirs {
            if let Some(entries) = debugfs::list(device, d)? {
                // A directory that exists has parents that exist.
                let mut acc = String::new();
                for part in d.split('/').filter(|p| !p.is_empty()) {
                    acc.push('/');
                    acc.push_str(part);
                    paths.insert(acc.clone());
                }
                for e in entries {
                    paths.insert(format!("{}/{}", d.trim_end_matches('/'), e.name));
                }
            }
        }
        Ok(Existing { paths })
    }

    fn has(&self, p: &str) -> bool {
        self.paths.contains(p)
    }
}

/// Where `/lib` really is inside the filesystem (merged-/usr systems link it to `usr/lib`).
fn lib_dir(device: &str) -> Result<String, BuildError> {
    Ok(match debugfs::read_link(device, "/lib")? {
        Some(t) if t.starts_with('/') => t,
        Some(t) => format!("/{t}"),
        None => "/lib".to_string(),
    })
}

/// The newest `vmlinuz-*` (and matching `initrd.img-*`) in the filesystem's /boot.
fn kernel_in_rootfs(device: &str, rootfs: &Path) -> Result<(String, Option<String>), BuildError> {
    let boot = debugfs::list(device, "/boot")?.unwrap_or_default();
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

/// Copies the filesystem image into `disk` at byte `offset` with the sparse engine:
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
        on(Event::Copy {
            done: p.done,
            total: p.total,
        })
    })
    .map_err(BuildError::Copy)?;
    Ok(())
}

/// Builds the image described by `plan`.
pub fn build(plan: &BuildPlan, on: &mut dyn FnMut(Event)) -> Result<Summary, BuildError> {
    on(Event::Step("checking the inputs".into()));
    let sb = Superblock::read(&plan.rootfs)?;
    if !plan.force && plan.out.symlink_metadata().is_ok() {
        return Err(BuildError::OutExists(plan.out.clone()));
    }
    if let (Ok(a), Ok(b)) = (plan.rootfs.canonicalize(), plan.out.canonicalize())
        && a == b
    {
        return Err(BuildError::OutIsRootfs(plan.out.clone()));
    }
    let grub = GrubDir::locate(&plan.grub_dir)?;
    let layout: Layout = layout::plan(sb.size(), sb.block_size, plan.size, plan.grow)?;
    let uuid = sb.uuid_string();
    let epoch = plan.epoch.unwrap_or(sb.wtime);
    let work = tempfile::tempdir().map_err(|e| BuildError::io("cannot create a temp dir", e))?;

    // What goes where.
    let src_device = plan.rootfs.to_string_lossy().into_owned();
    let lib = lib_dir(&src_device)?;
    let modules_root = format!("{lib}/modules");
    let mut probe_dirs = vec![
        "/boot",
        "/boot/grub",
        "/boot/grub/i386-pc",
        lib.as_str(),
        modules_root.as_str(),
    ];
    let (version, kernel_dest, initrd_dest, mut install) = match &plan.kernel {
        KernelSource::Cached(k) => {
            let v = k.meta.version.clone();
            let mut ins = Install::default();
            ins.file(&k.vmlinuz(), format!("/boot/vmlinuz-{v}"))?;
            ins.file(&k.initrd(), format!("/boot/initrd.img-{v}"))?;
            (
                v.clone(),
                format!("/boot/vmlinuz-{v}"),
                Some(format!("/boot/initrd.img-{v}")),
                ins,
            )
        }
        KernelSource::Files { kernel, initrd } => {
            let v = kernel::bzimage_version(kernel)?;
            let mut ins = Install::default();
            ins.file(kernel, format!("/boot/vmlinuz-{v}"))?;
            if let Some(i) = initrd {
                ins.file(i, format!("/boot/initrd.img-{v}"))?;
            }
            (
                v.clone(),
                format!("/boot/vmlinuz-{v}"),
                initrd.as_ref().map(|_| format!("/boot/initrd.img-{v}")),
                ins,
            )
        }
        KernelSource::InRootfs => {
            let (v, initrd) = kernel_in_rootfs(&src_device, &plan.rootfs)?;
            (
                v.clone(),
                format!("/boot/vmlinuz-{v}"),
                initrd.map(|i| format!("/boot/{i}")),
                Install::default(),
            )
        }
    };
    let moddir_dest = format!("{modules_root}/{version}");
    probe_dirs.push(&moddir_dest);
    let existing = Existing::probe(&src_device, &probe_dirs)?;
    if let KernelSource::Cached(k) = &plan.kernel
        && !existing.has(&moddir_dest)
    {
        install.tree(&k.modules(), &moddir_dest)?;
    }
    for f in grub.runtime_files()? {
        let name = f
            .file_name()
            .expect("listed files have names")
            .to_string_lossy()
            .into_owned();
        install.file(&f, format!("/boot/grub/i386-pc/{name}"))?;
    }
    let cmdline = cmdline(&uuid, &plan.append);
    let cfg = grub::config(
        &uuid,
        &format!("Linux {version}"),
        &kernel_dest,
        initrd_dest.as_deref(),
        &cmdline,
    );
    let cfg_path = work.path().join("grub.cfg");
    std::fs::write(&cfg_path, cfg).map_err(|e| BuildError::io("cannot write grub.cfg", e))?;
    install.file(&cfg_path, "/boot/grub/grub.cfg".into())?;

    // Room: free space now plus what growing adds (less ~3% for new group metadata).
    let (needed, inodes) = install.needs(sb.block_size);
    let grown = (layout.part.saturating_sub(sb.size())) / 100 * 97;
    let free = sb.free_blocks * sb.block_size + grown;
    let free_inodes = if plan.grow { u64::MAX } else { sb.free_inodes };
    if needed > free || inodes > free_inodes {
        let want = PART_START + sb.size() + (needed.saturating_sub(free)) * 11 / 10;
        let fits_mib = want
            .div_ceil(1 << 20)
            .max(layout.disk.div_ceil(1 << 20) + 1);
        return Err(BuildError::TooSmall {
            needed,
            free,
            inodes,
            free_inodes: sb.free_inodes,
            fits: fits_mib << 20,
        });
    }

    // The disk, built in a temp file next to OUT.
    let out_dir = match plan.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = plan
        .out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(&out_dir)
        .map_err(|e| {
            BuildError::io(
                format!("cannot create a temp file in {}", out_dir.display()),
                e,
            )
        })?;
    if plan.grow && layout.part > sb.size() {
        // resize2fs sizes a regular file to the filesystem's new end, ignoring any
        // ?offset=, so the filesystem grows in a file of its own first.
        on(Event::Step("growing the filesystem".into()));
        let fs = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".fs.tmp")
            .tempfile_in(&out_dir)
            .map_err(|e| BuildError::io("cannot create a temp file", e))?;
        copy_rootfs(&plan.rootfs, fs.path(), 0, on)?;
        let blocks = (layout.part / sb.block_size).to_string();
        // libext2fs takes its clock from E2FSPROGS_FAKE_TIME: the grown filesystem's
        // timestamps are then the same on every run.
        crate::tool::run(
            Command::new("resize2fs")
                .env("E2FSPROGS_FAKE_TIME", epoch.to_string())
                .arg("-f")
                .arg(fs.path())
                .arg(&blocks),
            "e2fsprogs",
        )?;
        on(Event::Step(
            "copying the filesystem into partition 1".into(),
        ));
        copy_rootfs(fs.path(), tmp.path(), PART_START, on)?;
    } else {
        on(Event::Step(
            "copying the filesystem into partition 1".into(),
        ));
        copy_rootfs(&plan.rootfs, tmp.path(), PART_START, on)?;
    }
    tmp.as_file()
        .set_len(layout.disk)
        .map_err(|e| BuildError::io("cannot size the disk image", e))?;
    let device = format!("{}?offset={PART_START}", tmp.path().display());

    on(Event::Step(
        "installing the kernel, modules and GRUB files".into(),
    ));
    batch(&install, &existing, epoch).run(&device, work.path())?;

    on(Event::Step("installing GRUB into the MBR".into()));
    let core = grub::patch_core_img(&grub.mkimage(work.path())?, 1)?;
    if core.len() as u64 > PART_START - layout::SECTOR {
        return Err(BuildError::Grub(format!(
            "core.img ({} bytes) does not fit before partition 1",
            core.len()
        )));
    }
    let table = layout::mbr(&layout, [sb.uuid[0], sb.uuid[1], sb.uuid[2], sb.uuid[3]])?;
    let mbr = grub::patch_boot_img(&grub.boot_img()?, &table, 1);
    write_at(tmp.as_file(), 0, &mbr)?;
    write_at(tmp.as_file(), layout::SECTOR, &core)?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| BuildError::io("cannot sync the disk image", e))?;

    let final_tmp = match plan.format {
        Format::Raw => tmp,
        Format::Qcow2 => {
            on(Event::Step("converting to qcow2".into()));
            let q = tempfile::Builder::new()
                .prefix(&format!(".{name}."))
                .suffix(".qcow2.tmp")
                .tempfile_in(&out_dir)
                .map_err(|e| BuildError::io("cannot create a temp file", e))?;
            crate::tool::run(
                Command::new("qemu-img")
                    .args(["convert", "-f", "raw", "-O", "qcow2"])
                    .arg(tmp.path())
                    .arg(q.path()),
                "qemu-utils",
            )?;
            q
        }
    };
    final_tmp
        .as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(|e| BuildError::io("cannot set the image's permissions", e))?;
    let done = final_tmp
        .persist(&plan.out)
        .map_err(|e| BuildError::io(format!("cannot create {}", plan.out.display()), e.error))?;
    let meta = done
        .metadata()
        .map_err(|e| BuildError::io("cannot stat the image", e))?;
    Ok(Summary {
        out: plan.out.clone(),
        format: plan.format,
        disk_size: layout.disk,
        allocated: meta.blocks() * 512,
        fs_kind: sb.kind.to_string(),
        root_uuid: uuid,
        kernel_version: version,
        kernel_path: kernel_dest,
        initrd_path: initrd_dest,
        cmdline,
    })
}

fn write_at(f: &File, at: u64, data: &[u8]) -> Result<(), BuildError> {
    let mut f = f;
    f.seek(SeekFrom::Start(at))
        .and_then(|_| f.write_all(data))
        .map_err(|e| BuildError::io("cannot write the boot sectors", e))
}

/// The debugfs batch: parents before children, replaced files removed first.
fn batch(install: &Install, existing: &Existing, epoch: i64) -> Batch {
    let mut b = Batch::new(epoch);
    let mut made: BTreeSet<String> = BTreeSet::new();
    let ensure = |b: &mut Batch, dir: &str, made: &mut BTreeSet<String>| {
        let mut acc = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            acc.push('/');
            acc.push_str(part);
            if !existing.has(&acc) && made.insert(acc.clone()) {
                b.mkdir(&acc);
            }
        }
    };
    for d in &install.dirs {
        ensure(&mut b, d, &mut made);
    }
    for f in &install.files {
        if let Some((parent, _)) = f.dest.rsplit_once('/') {
            ensure(&mut b, parent, &mut made);
        }
        if existing.has(&f.dest) {
            b.rm(&f.dest);
        }
        b.write(&f.host, &f.dest);
    }
    for (path, target) in &install.symlinks {
        if existing.has(path) {
            b.rm(path);
        }
        b.symlink(path, target);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn batch_creates_parents_once_and_replaces_files() {
        let mut ins = Install::default();
        ins.files.push(Put {
            host: "/h/a".into(),
            dest: "/boot/grub/i386-pc/a.mod".into(),
            size: 1,
        });
        ins.files.push(Put {
            host: "/h/cfg".into(),
            dest: "/boot/grub/grub.cfg".into(),
            size: 1,
        });
        let existing = Existing {
            paths: [
                "/boot".to_string(),
                "/boot/grub/grub.cfg".to_string(),
                "/boot/grub".to_string(),
            ]
            .into(),
        };
        let s = batch(&ins, &existing, 0).script().to_string();
        assert_eq!(
            s,
            "set_current_time @0\nmkdir \"/boot/grub/i386-pc\"\nwrite \"/h/a\" \"/boot/grub/i386-pc/a.mod\"\n\
             rm \"/boot/grub/grub.cfg\"\nwrite \"/h/cfg\" \"/boot/grub/grub.cfg\"\n"
        );
    }
}
