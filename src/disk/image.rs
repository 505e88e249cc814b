//! What `imgtest run` was given: raw disk, qcow2, vmdk, ISO 9660 (with or without an
//! El Torito boot record), or something it must refuse (missing, empty, compressed,
//! truncated, corrupt, unrecognisable, depending on other files). A qcow2 header is read
//! first ([`super::qcow2`]); qcow2/vmdk are then confirmed with `qemu-img info` and
//! checked with `qemu-img check`, so a corrupt one is refused before it boots; ISO 9660
//! is read from its volume descriptors at 32 KiB. Nothing here writes the image.
//!
//! [`root_candidates`] lists where an ext2/3/4 root filesystem may start (the whole
//! image, then each partition) for the offline view in [`crate::fs`].

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::qcow2::{self, HeaderError};
use super::table::Table;
use crate::helper::{self, HelperError};

/// The image's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "format")]
pub enum ImageKind {
    /// A raw disk (or bare filesystem).
    Raw,
    /// qcow2.
    Qcow2,
    /// VMware vmdk.
    Vmdk,
    /// ISO 9660.
    Iso {
        /// Whether an El Torito boot record is present.
        el_torito: bool,
    },
}

impl ImageKind {
    /// The `format=` name QEMU uses.
    pub fn qemu_format(self) -> &'static str {
        match self {
            ImageKind::Raw | ImageKind::Iso { .. } => "raw",
            ImageKind::Qcow2 => "qcow2",
            ImageKind::Vmdk => "vmdk",
        }
    }

    /// A short description.
    pub fn describe(self) -> String {
        match self {
            ImageKind::Iso { el_torito: true } => "ISO 9660 (El Torito bootable)".into(),
            ImageKind::Iso { el_torito: false } => "ISO 9660 (no El Torito boot record)".into(),
            k => k.qemu_format().into(),
        }
    }
}

/// A recognised image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// Absolute path.
    pub path: PathBuf,
    /// Format.
    pub kind: ImageKind,
    /// Size of the disk the guest sees, in bytes.
    pub virtual_size: u64,
}

/// Why an image cannot be judged.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file does not exist.
    #[error("{0}: no such file")]
    Missing(PathBuf),
    /// It is not a regular file.
    #[error("{0}: not a regular file")]
    NotAFile(PathBuf),
    /// It is empty.
    #[error("{0}: empty file, not a disk image")]
    Empty(PathBuf),
    /// It is compressed.
    #[error("{path}: {kind}-compressed; decompress it first (e.g. `sparsecopy {path} image.raw`)")]
    Compressed {
        /// The file.
        path: PathBuf,
        /// The compression.
        kind: String,
    },
    /// It is not any known image format.
    #[error("{path}: not a disk image ({reason})")]
    Unrecognised {
        /// The file.
        path: PathBuf,
        /// What was looked for.
        reason: String,
    },
    /// It is shorter than its own structures say.
    #[error("{path}: truncated image: {reason}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        reason: String,
    },
    /// Its structures contradict each other (`qemu-img check`).
    #[error("{path}: corrupt image: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// It is a valid image imgtest will not boot.
    #[error("{path}: {reason}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// It could not be read.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        message: String,
    },
}

const ISO_PVD: u64 = 32768;

/// Recognises the image at `path`.
pub fn sniff(path: &Path) -> Result<ImageInfo, ImageError> {
    let meta = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ImageError::Missing(path.into()));
        }
        Err(e) => return Err(io_err(path, e)),
        Ok(m) => m,
    };
    if !meta.is_file() {
        return Err(ImageError::NotAFile(path.into()));
    }
    if meta.len() == 0 {
        return Err(ImageError::Empty(path.into()));
    }
    let abs = std::fs::canonicalize(path).map_err(|e| io_err(path, e))?;
    let file = File::open(&abs).map_err(|e| io_err(path, e))?;
    let mut head = [0u8; 512];
    let n = file.read_at(&mut head, 0).map_err(|e| io_err(path, e))?;
    let head = &head[..n];
    if let Some(kind) = super::sniff::compression(head) {
        return Err(ImageError::Compressed {
            path: path.into(),
            kind: kind.to_string(),
        });
    }
    if head.starts_with(&qcow2::MAGIC) {
        qcow2::Header::parse(head, meta.len()).map_err(|e| match e {
            HeaderError::Invalid(reason) => ImageError::Corrupt {
                path: path.into(),
                reason,
            },
            HeaderError::Truncated(reason) => ImageError::Truncated {
                path: path.into(),
                reason,
            },
            HeaderError::Unsupported(reason) => ImageError::Unsupported {
                path: path.into(),
                reason,
            },
        })?;
        return qemu_img_info(&abs, ImageKind::Qcow2);
    }
    if head.starts_with(b"KDMV") || head.starts_with(b"# Disk DescriptorFile") {
        return qemu_img_info(&abs, ImageKind::Vmdk);
    }
    let mut vd = [0u8; 2048 * 2];
    let got = file.read_at(&mut vd, ISO_PVD).unwrap_or(0);
    if let Some(kind) = iso_kind(&vd[..got]) {
        return Ok(ImageInfo {
            path: abs,
            kind,
            virtual_size: meta.len(),
        });
    }
    let boot_sig = n == 512 && head[510..512] == [0x55, 0xaa];
    if !boot_sig && !crate::fs::has_ext_magic(&abs, 0) {
        return Err(ImageError::Unrecognised {
            path: path.into(),
            reason: "no qcow2/vmdk header, no ISO 9660 descriptor, no boot sector signature, no filesystem".into(),
        });
    }
    for (what, start, size) in partitions(&abs) {
        if start + size > meta.len() {
            return Err(ImageError::Truncated {
                path: path.into(),
                reason: format!(
                    "{what} ends at byte {} but the file has {} bytes",
                    start + size,
                    meta.len()
                ),
            });
        }
    }
    Ok(ImageInfo {
        path: abs,
        kind: ImageKind::Raw,
        virtual_size: meta.len(),
    })
}

/// An ISO 9660 image, if `vd` (the bytes from 32 KiB on: its first two volume
/// descriptors) holds one, with or without an El Torito boot record as the second.
fn iso_kind(vd: &[u8]) -> Option<ImageKind> {
    if vd.get(1..6) != Some(b"CD001") {
        return None;
    }
    let el_torito = vd
        .get(2048..)
        .is_some_and(super::bootable::is_el_torito_record);
    Some(ImageKind::Iso { el_torito })
}

/// Recognises a further disk attached after the tested image: what [`sniff`] accepts, or a
/// raw file of any content (a blank disk an installer installs onto is all zeros, and
/// need not have a table yet). Missing, empty, compressed or truncated files are refused.
pub fn sniff_disk(path: &Path) -> Result<ImageInfo, ImageError> {
    match sniff(path) {
        Err(ImageError::Unrecognised { .. }) => Ok(ImageInfo {
            path: std::fs::canonicalize(path).map_err(|e| io_err(path, e))?,
            kind: ImageKind::Raw,
            virtual_size: std::fs::metadata(path).map_err(|e| io_err(path, e))?.len(),
        }),
        r => r,
    }
}

fn io_err(path: &Path, e: std::io::Error) -> ImageError {
    ImageError::Io {
        path: path.into(),
        message: e.to_string(),
    }
}

/// A qcow2 or vmdk image as `qemu-img info` sees it, after `qemu-img check` found it
/// consistent; one that depends on another file (a backing file, a vmdk extent elsewhere)
/// is refused.
fn qemu_img_info(path: &Path, kind: ImageKind) -> Result<ImageInfo, ImageError> {
    let tool_error = |e: HelperError| ImageError::Io {
        path: path.into(),
        message: e.to_string(),
    };
    let out = helper::run(
        std::process::Command::new("qemu-img")
            .args(["info", "--output=json", "-f", kind.qemu_format()])
            .arg(path),
        "qemu-utils",
    )
    .map_err(|e| match e {
        // qemu-img ran and refused the file: its header promises more than is there.
        HelperError::Failed { message, .. } => ImageError::Truncated {
            path: path.into(),
            reason: message,
        },
        e => tool_error(e),
    })?;
    let v: serde_json::Value = serde_json::from_str(&out.stdout).map_err(|e| ImageError::Io {
        path: path.into(),
        message: format!("qemu-img info: {e}"),
    })?;
    if let Some(other) = other_files(&v, path) {
        return Err(ImageError::Unsupported {
            path: path.into(),
            reason: format!(
                "it reads another file, {other}: imgtest tests one self-contained image"
            ),
        });
    }
    qemu_img_check(path, kind)?;
    Ok(ImageInfo {
        path: path.into(),
        kind,
        virtual_size: v["virtual-size"].as_u64().unwrap_or(0),
    })
}

/// The first file other than `path` that `qemu-img info`'s JSON `v` says the image reads:
/// a backing file, or a vmdk extent.
fn other_files(v: &serde_json::Value, path: &Path) -> Option<String> {
    if let Some(backing) = v["backing-filename"].as_str() {
        return Some(backing.to_string());
    }
    let extents = v["format-specific"]["data"]["extents"].as_array()?;
    extents
        .iter()
        .filter_map(|e| e["filename"].as_str())
        .find(|f| Path::new(f) != path)
        .map(str::to_string)
}

/// `qemu-img check`: corruptions (or a check that could not complete) refuse the image;
/// leaked clusters only waste space and pass, as do formats without checks.
fn qemu_img_check(path: &Path, kind: ImageKind) -> Result<(), ImageError> {
    let (status, out) = helper::output(
        std::process::Command::new("qemu-img")
            .args(["check", "--output=json", "-f", kind.qemu_format()])
            .arg(path),
        "qemu-utils",
    )
    .map_err(|e| ImageError::Io {
        path: path.into(),
        message: e.to_string(),
    })?;
    let corrupt = |reason: String| {
        Err(ImageError::Corrupt {
            path: path.into(),
            reason,
        })
    };
    match status.code() {
        Some(0 | 3 | 63) => Ok(()),
        Some(2) => {
            let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
            corrupt(format!(
                "qemu-img check found {} corruption(s)",
                v["corruptions"].as_u64().unwrap_or(0)
            ))
        }
        _ => corrupt(format!(
            "qemu-img check could not complete: {}",
            helper::last_error_line(&out.stderr)
        )),
    }
}

/// Partitions of a raw disk as (description, start, size) in bytes; empty without a
/// readable table.
pub fn partitions(path: &Path) -> Vec<(String, u64, u64)> {
    let Ok(info) = super::table::inspect(path) else {
        return Vec::new();
    };
    let (kind, parts) = match info.table {
        Table::None | Table::Unread => return Vec::new(),
        Table::Mbr { partitions, .. } => ("MBR", partitions),
        Table::Gpt { partitions, .. } => ("GPT", partitions),
    };
    parts
        .into_iter()
        .map(|p| (format!("{kind} partition {}", p.number), p.start, p.size))
        .collect()
}

/// Where an ext2/3/4 root filesystem may start: (description, byte offset).
pub fn root_candidates(path: &Path) -> Vec<(String, u64)> {
    let mut c: Vec<(String, u64)> = Vec::new();
    if crate::fs::has_ext_magic(path, 0) {
        c.push(("whole image".into(), 0));
    }
    for (what, start, _) in partitions(path) {
        if crate::fs::has_ext_magic(path, start) {
            c.push((what, start));
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The first 36 KiB of a bootable ISO: its primary volume descriptor at 32 KiB and an
    /// El Torito boot record after it.
    fn iso_sample() -> Vec<u8> {
        let mut b = vec![0u8; 36 << 10];
        b[32768] = 1;
        b[32769..32774].copy_from_slice(b"CD001");
        b[34816..34822].copy_from_slice(b"\0CD001");
        b[34823..34846].copy_from_slice(b"EL TORITO SPECIFICATION");
        b
    }

    proptest! {
        #![proptest_config(crate::fuzz::config())]

        /// Random files, damaged ISOs and damaged partitioned disks: recognised, or refused
        /// with a clear error, never a panic or a hang. (A qcow2 or vmdk header goes to
        /// qemu-img once its header reads: `qcow2`'s own property covers that header.)
        #[test]
        fn any_file_is_recognised_or_refused_clearly(
            bytes in prop_oneof![
                crate::fuzz::bytes(40_000),
                crate::fuzz::mutated(iso_sample()),
                crate::fuzz::mutated(crate::disk::table::tests::mbr_sample()),
            ]
        ) {
            let mut bytes = bytes;
            if [&b"QFI\xfb"[..], b"KDMV", b"# Disk"].iter().any(|m| bytes.starts_with(m)) {
                bytes[0] ^= 0x80;
            }
            let file = crate::fuzz::file_with(&bytes);
            let path = file.path().to_path_buf();
            let iso = iso_kind(bytes.get(32768..).unwrap_or(&[]));
            match crate::fuzz::within(move || sniff(&path).map(|i| i.kind)) {
                Ok(kind) => prop_assert!(iso.is_none() || Some(kind) == iso),
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn refuses_missing_empty_garbage_and_compressed() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            sniff(&d.path().join("nope")),
            Err(ImageError::Missing(_))
        ));
        assert!(matches!(sniff(d.path()), Err(ImageError::NotAFile(_))));
        assert!(matches!(
            sniff(&write(d.path(), "e", b"")),
            Err(ImageError::Empty(_))
        ));
        let garbage: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let e = sniff(&write(d.path(), "g", &garbage)).unwrap_err();
        assert!(matches!(e, ImageError::Unrecognised { .. }), "{e}");
        // As a further disk, unknown content is a raw disk (a blank one, say).
        let blank = write(d.path(), "blank", &[0u8; 4096]);
        assert!(matches!(
            sniff(&blank),
            Err(ImageError::Unrecognised { .. })
        ));
        assert_eq!(sniff_disk(&blank).unwrap().kind, ImageKind::Raw);
        assert!(matches!(
            sniff_disk(&write(d.path(), "e2", b"")),
            Err(ImageError::Empty(_))
        ));
        let e = sniff(&write(d.path(), "z", b"\x28\xb5\x2f\xfd\0\0\0\0")).unwrap_err();
        assert!(
            e.to_string()
                .contains("zstd-compressed; decompress it first"),
            "{e}"
        );
    }

    #[test]
    fn recognises_raw_with_mbr_and_detects_truncation() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("disk.raw");
        std::fs::write(&p, vec![0u8; 4 << 20]).unwrap();
        let st = std::process::Command::new("sfdisk")
            .arg("-q")
            .arg(&p)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin
                    .take()
                    .unwrap()
                    .write_all(b"label: dos\nstart=2048, type=83\n")?;
                c.wait()
            })
            .unwrap();
        assert!(st.success());
        let info = sniff(&p).unwrap();
        assert_eq!(info.kind, ImageKind::Raw);
        assert_eq!(
            partitions(&p),
            [("MBR partition 1".to_string(), 1 << 20, 3 << 20)]
        );
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(2 << 20).unwrap();
        let e = sniff(&p).unwrap_err();
        assert!(matches!(e, ImageError::Truncated { .. }), "{e}");
    }

    #[test]
    fn recognises_qcow2_and_iso() {
        let d = tempfile::tempdir().unwrap();
        let q = d.path().join("a.qcow2");
        assert!(
            std::process::Command::new("qemu-img")
                .args(["create", "-q", "-f", "qcow2"])
                .arg(&q)
                .arg("64M")
                .status()
                .unwrap()
                .success()
        );
        let info = sniff(&q).unwrap();
        assert_eq!((info.kind, info.virtual_size), (ImageKind::Qcow2, 64 << 20));
        // With data written, then cut short: the header still reads, `qemu-img check`
        // finds the clusters past the end.
        let run = |args: &[&str], p: &Path| {
            let ok = std::process::Command::new(args[0])
                .args(&args[1..])
                .arg(p)
                .output()
                .unwrap()
                .status
                .success();
            assert!(ok, "{args:?}");
        };
        let cut = d.path().join("cut.qcow2");
        std::fs::copy(&q, &cut).unwrap();
        run(&["qemu-io", "-c", "write -P 0x55 0 8M"], &cut);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&cut)
            .unwrap()
            .set_len(2 << 20)
            .unwrap();
        let e = sniff(&cut).unwrap_err();
        assert!(
            e.to_string()
                .contains("corrupt image: qemu-img check found"),
            "{e}"
        );
        // An overlay reads its backing file: not one self-contained image.
        let overlay = d.path().join("overlay.qcow2");
        let backing = format!("{}", q.display());
        run(
            &[
                "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", &backing,
            ],
            &overlay,
        );
        let e = sniff(&overlay).unwrap_err();
        assert!(e.to_string().contains("backing file"), "{e}");
        let v = d.path().join("a.vmdk");
        assert!(
            std::process::Command::new("qemu-img")
                .args(["create", "-q", "-f", "vmdk"])
                .arg(&v)
                .arg("32M")
                .status()
                .unwrap()
                .success()
        );
        assert_eq!(sniff(&v).unwrap().kind, ImageKind::Vmdk);
        let iso = sniff(Path::new("/usr/lib/grub-rescue/grub-rescue-cdrom.iso")).unwrap();
        assert_eq!(iso.kind, ImageKind::Iso { el_torito: true });
        let plain = d.path().join("plain.iso");
        let src = d.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("hello"), "hi").unwrap();
        assert!(
            std::process::Command::new("xorriso")
                .args(["-as", "mkisofs", "-quiet", "-o"])
                .arg(&plain)
                .arg(&src)
                .status()
                .unwrap()
                .success()
        );
        assert_eq!(
            sniff(&plain).unwrap().kind,
            ImageKind::Iso { el_torito: false }
        );
    }
}
