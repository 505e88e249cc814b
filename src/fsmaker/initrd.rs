//! fsmaker's initrd: a gzip'd cpio (newc) archive holding busybox (from Debian's
//! `busybox-static`), the closure of the modules needed to find a root disk under QEMU
//! and common hypervisors, and an `/init` that loads them, waits for `root=` and
//! `switch_root`s into it.
//!
//! The module closure is resolved from `modules.dep` (written by depmod at import) and
//! listed dependencies-first in `/etc/fsmaker/modules`; compressed modules are stored
//! decompressed so busybox `insmod` can load them. Entries are sorted and carry a fixed
//! mtime (`SOURCE_DATE_EPOCH`), so the same kernel gives the same bytes.
//!
//! `/init` contract (documented in `docs/images.md`, fsmaker's Initrd): the LAST `root=` on the command line
//! wins (`UUID=`, `LABEL=`, `PARTUUID=` or a `/dev` path); it waits up to
//! `fsmaker.rootdelay=` seconds (default 30); `ro`/`rw`, `rootfstype=`, `rootflags=`
//! and `init=` are honoured. If the root never appears, or cannot be mounted, or has no
//! init, it prints `fsmaker-initrd: ...` on every console (through /dev/kmsg at
//! critical level) and powers the machine off with `poweroff -f`.
//!
//! [`build`] reads the modules tree and busybox and returns the archive's bytes; it
//! writes no file (the kernel cache stores it).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

use super::BuildError;
use crate::helper::HelperError;

/// The busybox binary the initrd uses.
pub const BUSYBOX: &str = "/bin/busybox";
/// The Debian package that provides a static [`BUSYBOX`].
pub const BUSYBOX_PACKAGE: &str = "busybox-static";

/// Modules that give a root disk on QEMU (virtio, IDE, AHCI, NVMe) and ext2/3/4.
/// `crc32c_generic` is ext4's checksum provider (a softdep depmod does not list).
pub const ROOT_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "ata_piix",
    "ahci",
    "sd_mod",
    "nvme",
    "crc32c_generic",
    "ext4",
];

/// Without these the initrd cannot mount an ext root on a virtio disk.
pub const REQUIRED_MODULES: &[&str] = &["virtio_pci", "virtio_blk", "ext4"];

/// The `/init` script (busybox sh).
pub const INIT: &str = include_str!("init.sh");

/// Module name as the kernel sees it: file stem without `.ko*`, `-` as `_`.
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

/// Parsed `modules.dep`: module name -> (path, direct+indirect dependency paths).
pub struct ModDep {
    by_name: BTreeMap<String, (String, Vec<String>)>,
}

impl ModDep {
    /// Parses the text of `modules.dep` (`path: dep dep ...` lines).
    pub fn parse(text: &str) -> ModDep {
        let mut by_name = BTreeMap::new();
        for line in text.lines() {
            let Some((path, deps)) = line.split_once(':') else {
                continue;
            };
            let deps = deps.split_whitespace().map(str::to_string).collect();
            by_name.insert(module_name(path), (path.to_string(), deps));
        }
        ModDep { by_name }
    }

    /// Paths of `wanted` modules and everything they need, dependencies first.
    /// A kernel may lack some drivers (Debian's cloud kernel has no AHCI): absent
    /// names are skipped, except those in `required`, which must be a module or built in.
    pub fn closure(
        &self,
        wanted: &[&str],
        required: &[&str],
        builtin: &BTreeSet<String>,
    ) -> Result<Vec<String>, String> {
        let by_path: BTreeMap<&str, &Vec<String>> = self
            .by_name
            .values()
            .map(|(p, d)| (p.as_str(), d))
            .collect();
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        fn visit<'a>(
            p: &'a str,
            by_path: &BTreeMap<&str, &'a Vec<String>>,
            seen: &mut BTreeSet<&'a str>,
            order: &mut Vec<String>,
        ) {
            if !seen.insert(p) {
                return;
            }
            if let Some(deps) = by_path.get(p) {
                for d in deps.iter() {
                    visit(d, by_path, seen, order);
                }
            }
            order.push(p.to_string());
        }
        for w in wanted {
            let n = w.replace('-', "_");
            match self.by_name.get(&n) {
                Some((p, _)) => visit(p, &by_path, &mut seen, &mut order),
                None if builtin.contains(&n) || !required.contains(w) => {}
                None => return Err(format!("module {w} is neither in modules.dep nor built in")),
            }
        }
        Ok(order)
    }
}

fn builtin_names(moddir: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(moddir.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .map(module_name)
        .collect()
}

/// Reads a module, decompressing `.ko.xz` / `.ko.zst` / `.ko.gz`.
fn read_module(path: &Path) -> std::io::Result<Vec<u8>> {
    let raw = std::fs::read(path)?;
    let name = path.to_string_lossy();
    let mut out = Vec::new();
    if name.ends_with(".xz") {
        liblzma::read::XzDecoder::new(&raw[..]).read_to_end(&mut out)?;
    } else if name.ends_with(".zst") {
        out = zstd::decode_all(&raw[..])?;
    } else if name.ends_with(".gz") {
        flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out)?;
    } else {
        out = raw;
    }
    Ok(out)
}

/// A cpio "newc" archive writer (the format the kernel unpacks into its rootfs).
pub struct Cpio {
    buf: Vec<u8>,
    ino: u32,
    mtime: u32,
}

impl Cpio {
    /// An empty archive whose entries all get modification time `mtime` (seconds since
    /// 1970, clamped to what newc can hold).
    pub fn new(mtime: i64) -> Cpio {
        Cpio {
            buf: Vec::new(),
            ino: 0,
            mtime: mtime.clamp(0, i64::from(u32::MAX)) as u32,
        }
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0,
            0,
            nlink,
            self.mtime,
            data.len(),
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() + 1,
            0
        );
        self.buf.extend_from_slice(header.as_bytes());
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    /// Adds directory `name` (mode 0755).
    pub fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, (0, 0), &[]);
    }
    /// Adds regular file `name` with permission bits `mode` and contents `data`.
    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.entry(name, 0o100000 | mode, (0, 0), data);
    }
    /// Adds symbolic link `name` pointing at `target`.
    pub fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120777, (0, 0), target.as_bytes());
    }
    /// Adds character device `name` (`major`:`minor`) with permission bits `mode`.
    pub fn char_dev(&mut self, name: &str, mode: u32, major: u32, minor: u32) {
        self.entry(name, 0o020000 | mode, (major, minor), &[]);
    }

    /// Appends the trailer and returns the archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.ino = 0;
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.buf
    }
}

/// Builds the initrd for the kernel whose modules are in `moddir` (a `/lib/modules/<version>` tree).
pub fn build(moddir: &Path, version: &str, epoch: i64) -> Result<Vec<u8>, BuildError> {
    let busybox = std::fs::read(BUSYBOX).map_err(|_| HelperError::Missing {
        tool: BUSYBOX.into(),
        package: BUSYBOX_PACKAGE.into(),
    })?;
    let dep_text = std::fs::read_to_string(moddir.join("modules.dep"))
        .map_err(|e| BuildError::io(format!("cannot read {}/modules.dep", moddir.display()), e))?;
    let closure = ModDep::parse(&dep_text)
        .closure(ROOT_MODULES, REQUIRED_MODULES, &builtin_names(moddir))
        .map_err(|why| BuildError::Initrd(format!("kernel {version}: {why}")))?;

    let mut files: BTreeMap<String, (u32, Vec<u8>)> = BTreeMap::new();
    let mut dirs: BTreeSet<String> = [
        "bin",
        "dev",
        "etc",
        "etc/fsmaker",
        "lib",
        "proc",
        "root",
        "run",
        "sbin",
        "sys",
        "tmp",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    files.insert("bin/busybox".into(), (0o755, busybox));
    files.insert("init".into(), (0o755, INIT.as_bytes().to_vec()));
    let mut list = String::new();
    for rel in &closure {
        let stored = rel
            .trim_end_matches(".xz")
            .trim_end_matches(".zst")
            .trim_end_matches(".gz");
        let inside = format!("lib/modules/{version}/{stored}");
        let data = read_module(&moddir.join(rel))
            .map_err(|e| BuildError::io(format!("cannot read module {rel}"), e))?;
        let mut d = PathBuf::from(&inside);
        while d.pop() && !d.as_os_str().is_empty() {
            dirs.insert(d.to_string_lossy().into_owned());
        }
        files.insert(inside.clone(), (0o644, data));
        list.push('/');
        list.push_str(&inside);
        list.push('\n');
    }
    files.insert("etc/fsmaker/modules".into(), (0o644, list.into_bytes()));

    let mut cpio = Cpio::new(epoch);
    // Names in one sorted sequence: a directory sorts before its contents.
    let mut names: BTreeSet<&str> = dirs.iter().map(String::as_str).collect();
    names.extend(files.keys().map(String::as_str));
    names.insert("dev/console");
    names.insert("bin/sh");
    for n in names {
        if n == "dev/console" {
            cpio.char_dev(n, 0o600, 5, 1);
        } else if n == "bin/sh" {
            cpio.symlink(n, "busybox");
        } else if let Some((mode, data)) = files.get(n) {
            cpio.file(n, *mode, data);
        } else {
            cpio.dir(n);
        }
    }
    let archive = cpio.finish();
    let mut gz = GzEncoder::new(Vec::new(), Compression::new(6));
    gz.write_all(&archive)
        .map_err(|e| BuildError::io("cannot compress the initrd", e))?;
    gz.finish()
        .map_err(|e| BuildError::io("cannot compress the initrd", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n\
kernel/drivers/virtio/virtio.ko:\n\
kernel/drivers/virtio/virtio_ring.ko:\n\
kernel/drivers/ata/ata_piix.ko.xz: kernel/drivers/ata/libata.ko.xz kernel/drivers/scsi/scsi_mod.ko.xz kernel/drivers/scsi/scsi_common.ko\n\
kernel/drivers/ata/libata.ko.xz: kernel/drivers/scsi/scsi_mod.ko.xz kernel/drivers/scsi/scsi_common.ko\n\
kernel/drivers/scsi/scsi_mod.ko.xz: kernel/drivers/scsi/scsi_common.ko\n\
kernel/drivers/scsi/scsi_common.ko:\n\
kernel/drivers/nvme/host/nvme-core.ko:\n";

    #[test]
    fn closure_loads_dependencies_first() {
        let d = ModDep::parse(DEP);
        let builtin: BTreeSet<String> = ["ext4".to_string()].into();
        let c = d
            .closure(
                &["ata_piix", "virtio_blk", "ext4", "nvme_core", "ahci"],
                &["ext4"],
                &builtin,
            )
            .unwrap();
        let pos = |n: &str| c.iter().position(|p| p.contains(n)).unwrap();
        assert!(pos("scsi_common") < pos("scsi_mod"));
        assert!(pos("scsi_mod") < pos("libata"));
        assert!(pos("libata") < pos("ata_piix"));
        assert!(pos("virtio_ring") < pos("virtio_blk"));
        assert_eq!(c.len(), 8, "each module once: {c:?}");
        assert!(
            d.closure(&["nope"], &["nope"], &builtin)
                .unwrap_err()
                .contains("nope")
        );
        assert!(d.closure(&["nope"], &[], &builtin).unwrap().is_empty());
    }

    #[test]
    fn compressed_modules_are_stored_decompressed() {
        let dir = tempfile::tempdir().unwrap();
        let body = b"\x7fELF module body".repeat(100);
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
        xz.write_all(&body).unwrap();
        std::fs::write(dir.path().join("a.ko.xz"), xz.finish().unwrap()).unwrap();
        std::fs::write(
            dir.path().join("b.ko.zst"),
            zstd::encode_all(&body[..], 3).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.path().join("c.ko"), &body).unwrap();
        for f in ["a.ko.xz", "b.ko.zst", "c.ko"] {
            assert_eq!(read_module(&dir.path().join(f)).unwrap(), body, "{f}");
        }
    }

    #[test]
    fn cpio_newc_layout() {
        let mut c = Cpio::new(5);
        c.file("init", 0o755, b"abc");
        let a = c.finish();
        assert_eq!(&a[0..6], b"070701");
        assert_eq!(&a[6..14], b"00000001");
        assert_eq!(&a[14..22], b"000081ed");
        assert_eq!(&a[46..54], b"00000005", "mtime");
        assert_eq!(&a[54..62], b"00000003", "size");
        assert_eq!(&a[110..115], b"init\0");
        assert_eq!(&a[116..119], b"abc", "name padded to 4");
        assert_eq!(a.len() % 4, 0);
        assert!(a.windows(10).any(|w| w == b"TRAILER!!!"));
    }

    #[test]
    fn init_takes_last_root_and_has_deadline() {
        assert!(INIT.contains("root=*) root="));
        assert!(INIT.contains("fsmaker.rootdelay="));
        assert!(INIT.contains("not found after"));
        assert!(INIT.contains("poweroff -f"));
    }
}
