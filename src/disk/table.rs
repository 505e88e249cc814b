//! Read an image's partition table (MBR with `mbrman`, GPT with `gpt`) and
//! describe the image for `sparsecopy --info`, as a serialisable model with a
//! human rendering. It only reads; printing the rendering is the command line's job.

use std::fmt::Write as _;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::sniff::{self, Compression};
use crate::disk::blockdev::{BlockDevice, RealDevice};
use crate::units::human;

/// Why an image could not be described.
#[derive(Debug, thiserror::Error)]
pub enum InfoError {
    /// The image cannot be opened or read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The image.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The image has a partition table that does not parse.
    #[error("{path}: unreadable {kind} partition table: {message}")]
    Table {
        /// The image.
        path: PathBuf,
        /// Which table (`MBR`, `GPT`).
        kind: &'static str,
        /// What the parser said.
        message: String,
    },
}

/// What `--info` reports.
#[derive(Debug, Clone, Serialize)]
pub struct ImageInfo {
    /// The image, as given.
    pub path: PathBuf,
    /// Apparent size in bytes.
    pub size: u64,
    /// Bytes allocated on disk (st_blocks * 512); for a device, its size.
    pub allocated: u64,
    /// Set if the image is a compressed stream (its table is then not read).
    pub compression: Option<Compression>,
    /// Its partition table.
    pub table: Table,
}

/// A partition table.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Table {
    /// No partition table (a bare filesystem, an empty disk).
    None,
    /// Not read: the image is compressed (its table is in the decompressed bytes).
    Unread,
    /// An MBR (DOS) partition table.
    Mbr {
        /// The 32-bit disk signature at byte 440, as hex.
        disk_signature: String,
        /// The used primary partitions.
        partitions: Vec<Partition>,
    },
    /// A GUID partition table.
    Gpt {
        /// The disk GUID.
        disk_guid: String,
        /// The logical sector size the table was found with, in bytes.
        sector_size: u64,
        /// Whether the backup header is in the disk's last sector, where it belongs.
        backup_at_end: bool,
        /// The used partition entries.
        partitions: Vec<Partition>,
    },
}

/// One partition; offsets in bytes.
#[derive(Debug, Clone, Serialize)]
pub struct Partition {
    /// Its number, from 1, as the kernel names it (`sda1`).
    pub number: u32,
    /// Its first byte.
    pub start: u64,
    /// Its length in bytes.
    pub size: u64,
    /// MBR: the system id as hex (`83`); GPT: the type GUID.
    pub type_id: String,
    /// What the type means, when it is one a boot depends on or a common one (`EFI System`,
    /// `BIOS boot`, `Linux filesystem`), as sfdisk names them.
    pub kind: Option<&'static str>,
    /// GPT partition name, MBR active flag as `boot`.
    pub name: String,
}

/// Describe the image at `path`.
pub fn inspect(path: &Path) -> Result<ImageInfo, InfoError> {
    let read_err = |e| InfoError::Read {
        path: path.to_path_buf(),
        source: e,
    };
    let (file, meta) = super::open_for_reading(path).map_err(read_err)?;
    let (size, allocated) = if meta.file_type().is_block_device() {
        let size = RealDevice::new(file.try_clone().map_err(read_err)?)
            .size()
            .map_err(read_err)?;
        (size, size)
    } else {
        (meta.len(), meta.blocks() * 512)
    };
    let mut mbr = [0u8; 512];
    let n = file.read_at(&mut mbr, 0).map_err(read_err)?;
    let compression = sniff::compression(&mbr[..n]);
    let table = if compression.is_some() {
        Table::Unread
    } else if n < 512 || mbr[510..512] != [0x55, 0xaa] {
        Table::None
    } else if (0..4).any(|i| mbr[446 + 16 * i + 4] == 0xee) {
        read_gpt(path, &file, size)?
    } else {
        read_mbr(path, &file)?
    };
    Ok(ImageInfo {
        path: path.to_path_buf(),
        size,
        allocated,
        compression,
        table,
    })
}

fn read_mbr(path: &Path, file: &File) -> Result<Table, InfoError> {
    let err = |e: mbrman::Error| InfoError::Table {
        path: path.to_path_buf(),
        kind: "MBR",
        message: e.to_string(),
    };
    let f = file.try_clone().map_err(|e| InfoError::Read {
        path: path.to_path_buf(),
        source: e,
    })?;
    // mbrman reads field by field: buffered, that is a few reads, not hundreds.
    let mbr = mbrman::MBR::read_from(&mut std::io::BufReader::new(f), 512).map_err(err)?;
    let mut partitions = Vec::new();
    let entries = mbr.iter().map(|(i, p)| (i as u32, p.clone()));
    let logical = mbr
        .logical_partitions
        .iter()
        .enumerate()
        .map(|(i, l)| (5 + i as u32, l.partition.clone()));
    for (number, p) in entries.chain(logical) {
        if p.is_used() {
            partitions.push(Partition {
                number,
                start: p.starting_lba as u64 * 512,
                size: p.sectors as u64 * 512,
                type_id: format!("{:02x}", p.sys),
                kind: kind(&format!("{:02x}", p.sys)),
                name: if p.is_active() {
                    "boot".into()
                } else {
                    String::new()
                },
            });
        }
    }
    let sig = mbr.header.disk_signature;
    Ok(Table::Mbr {
        disk_signature: format!("{:08x}", u32::from_le_bytes(sig)),
        partitions,
    })
}

fn read_gpt(path: &Path, file: &File, size: u64) -> Result<Table, InfoError> {
    let err = |message: String| InfoError::Table {
        path: path.to_path_buf(),
        kind: "GPT",
        message,
    };
    let lb = super::gpt::sector_size(file).ok_or_else(|| err("no GPT header at LBA 1".into()))?;
    let lb_size = if lb == 4096 {
        gpt::disk::LogicalBlockSize::Lb4096
    } else {
        gpt::disk::LogicalBlockSize::Lb512
    };
    let f = file.try_clone().map_err(|e| InfoError::Read {
        path: path.to_path_buf(),
        source: e,
    })?;
    let disk = gpt::GptConfig::new()
        .writable(false)
        .logical_block_size(lb_size)
        .open_from_device(f)
        .map_err(|e| err(e.to_string()))?;
    let backup_at_end = disk
        .primary_header()
        .map(|h| h.backup_lba == size / lb - 1)
        .unwrap_or(false)
        && disk.backup_header().is_ok();
    let partitions = disk
        .partitions()
        .iter()
        .filter(|(_, p)| p.is_used())
        .map(|(&number, p)| Partition {
            number,
            start: p.first_lba * lb,
            size: (p.last_lba + 1 - p.first_lba) * lb,
            type_id: p.part_type_guid.guid.to_string().to_uppercase(),
            kind: kind(&p.part_type_guid.guid.to_string().to_uppercase()),
            name: p.name.clone(),
        })
        .collect();
    Ok(Table::Gpt {
        disk_guid: disk.guid().to_string().to_uppercase(),
        sector_size: lb,
        backup_at_end,
        partitions,
    })
}

/// The name of a partition type (MBR id in hex, GPT type GUID in upper case), if known.
pub fn kind(type_id: &str) -> Option<&'static str> {
    const KINDS: &[(&str, &str)] = &[
        (super::bootable::ESP_GUID, "EFI System"),
        (super::bootable::ESP_MBR_TYPE, "EFI System"),
        (super::bootable::BIOS_BOOT_GUID, "BIOS boot"),
        ("0FC63DAF-8483-4772-8E79-3D69D8477DE4", "Linux filesystem"),
        (
            "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
            "Linux root (x86-64)",
        ),
        ("0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", "Linux swap"),
        ("E6D6D379-F507-44C2-A23C-238F2A3DF928", "Linux LVM"),
        ("83", "Linux"),
        ("82", "Linux swap"),
        ("8e", "Linux LVM"),
        ("ee", "GPT protective"),
    ];
    KINDS.iter().find(|(t, _)| *t == type_id).map(|&(_, k)| k)
}

/// The human view of [`ImageInfo`].
pub fn render(info: &ImageInfo) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", info.path.display());
    let _ = writeln!(s, "  size:      {} ({} bytes)", human(info.size), info.size);
    let _ = writeln!(
        s,
        "  allocated: {} ({} bytes)",
        human(info.allocated),
        info.allocated
    );
    if let Some(c) = info.compression {
        let _ = writeln!(s, "  compressed: {c}");
    }
    let partitions = match &info.table {
        Table::None => {
            let _ = writeln!(s, "  partition table: none");
            return s;
        }
        Table::Unread => {
            let _ = writeln!(
                s,
                "  partition table: not read (decompress the image to see it)"
            );
            return s;
        }
        Table::Mbr {
            disk_signature,
            partitions,
        } => {
            let _ = writeln!(s, "  partition table: MBR, disk signature {disk_signature}");
            partitions
        }
        Table::Gpt {
            disk_guid,
            sector_size,
            backup_at_end,
            partitions,
        } => {
            let backup = if *backup_at_end {
                "backup at end"
            } else {
                "backup NOT at end of disk"
            };
            let _ = writeln!(
                s,
                "  partition table: GPT, disk GUID {disk_guid}, {sector_size}-byte sectors, {backup}"
            );
            partitions
        }
    };
    let _ = writeln!(
        s,
        "  {:>3} {:>14} {:>14} {:>10}  {:<36} {:<16} name",
        "#", "start", "end", "size", "type", "kind"
    );
    for p in partitions {
        let _ = writeln!(
            s,
            "  {:>3} {:>14} {:>14} {:>10}  {:<36} {:<16} {}",
            p.number,
            p.start,
            p.start + p.size,
            human(p.size),
            p.type_id,
            p.kind.unwrap_or("-"),
            p.name
        );
    }
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A 64 KiB disk that `tool` partitioned from `script` on its standard input.
    fn partitioned(tool: &[&str], script: &str) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::write(&path, vec![0u8; 64 << 10]).unwrap();
        let mut child = std::process::Command::new(tool[0])
            .args(&tool[1..])
            .arg(&path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success(), "{tool:?}");
        std::fs::read(&path).unwrap()
    }

    /// An MBR disk with a primary partition and an extended one holding two logical
    /// partitions (a chain of extended boot records).
    pub(crate) fn mbr_sample() -> Vec<u8> {
        partitioned(
            &["sfdisk", "-q"],
            "label: dos\nstart=1, size=20, type=83\nstart=21, size=100, type=5\n\
             start=22, size=10, type=83\nstart=33, size=10, type=83\n",
        )
    }

    /// A GPT disk with one partition, its backup at the end.
    fn gpt_sample() -> Vec<u8> {
        partitioned(&["sgdisk", "-n", "1:34:60"], "")
    }

    #[test]
    fn the_samples_read_as_their_tables() {
        let dir = tempfile::tempdir().unwrap();
        for (sample, numbers) in [(mbr_sample(), &[1, 2, 5, 6][..]), (gpt_sample(), &[1])] {
            let path = dir.path().join("disk");
            std::fs::write(&path, sample).unwrap();
            let found: Vec<u32> = match inspect(&path).unwrap().table {
                Table::Mbr { partitions, .. } | Table::Gpt { partitions, .. } => {
                    partitions.iter().map(|p| p.number).collect()
                }
                _ => Vec::new(),
            };
            assert!(numbers.iter().all(|n| found.contains(n)), "{found:?}");
        }
    }

    /// Reads `bytes` as an image file: its description or a clear error, never a panic
    /// or a hang.
    fn inspect_bytes(bytes: Vec<u8>) -> Result<(), TestCaseError> {
        let file = crate::fuzz::file_with(&bytes);
        let path = file.path().to_path_buf();
        match crate::fuzz::within(move || inspect(&path).map(|i| render(&i))) {
            Ok(text) => prop_assert!(text.contains("partition table:")),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        drop(file);
        Ok(())
    }

    proptest! {
        #![proptest_config(crate::fuzz::config())]

        /// Damaged MBRs, their extended boot record chains included.
        #[test]
        fn any_mbr_is_read_or_refused_clearly(bytes in crate::fuzz::mutated(mbr_sample())) {
            inspect_bytes(bytes)?;
        }

        /// Damaged GPTs: headers, entry arrays, the backup.
        #[test]
        fn any_gpt_is_read_or_refused_clearly(bytes in crate::fuzz::mutated(gpt_sample())) {
            inspect_bytes(bytes)?;
        }
    }
}
