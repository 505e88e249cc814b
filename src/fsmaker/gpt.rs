//! The GPT of a disk fsmaker builds, written with the `gpt` crate: the protective MBR in
//! sector 0, the primary header and entries after it, the backup entries and header in the
//! disk's last sectors. Every GUID is derived from the root filesystem's UUID, so the same
//! inputs give the same table. Boot code in sector 0 is GRUB's business (`grub`), written
//! over the protective MBR afterwards.

use std::collections::BTreeMap;
use std::fs::File;

use gpt::disk::LogicalBlockSize;
use gpt::mbr::ProtectiveMBR;
use gpt::partition::Partition;
use gpt::partition_types::{self, Type};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::BuildError;
use super::layout::{Layout, Region, SECTOR};

/// A GUID for `what` on the disk whose root filesystem has UUID `seed`: random-looking
/// (version 4 bits), the same on every build.
pub fn derived_guid(seed: &[u8; 16], what: &str) -> Uuid {
    let digest = Sha256::new()
        .chain_update(seed)
        .chain_update(what.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// The partitions of `layout`, numbered as the `gpt` crate writes them (in key order):
/// the root first, then the BIOS boot partition and the ESP.
fn entries(layout: &Layout, seed: &[u8; 16]) -> BTreeMap<u32, Partition> {
    let entry = |region: Region, kind: Type, name: &str| Partition {
        part_type_guid: kind,
        part_guid: derived_guid(seed, name),
        first_lba: region.start / SECTOR,
        last_lba: (region.start + region.size) / SECTOR - 1,
        flags: 0,
        name: name.to_string(),
    };
    let mut parts = vec![entry(layout.root(), partition_types::LINUX_FS, "root")];
    if let Some(r) = layout.bios_boot {
        parts.push(entry(r, partition_types::BIOS, "BIOS boot"));
    }
    if let Some(r) = layout.esp {
        parts.push(entry(r, partition_types::EFI, "EFI system"));
    }
    (1..).zip(parts).collect()
}

/// Writes the protective MBR and both GPTs of `layout` onto `disk` (already sized).
pub fn write(disk: &File, layout: &Layout, seed: &[u8; 16]) -> Result<(), BuildError> {
    let err = |e: String| BuildError::Gpt(e);
    let device = disk
        .try_clone()
        .map_err(|e| BuildError::io("cannot reopen the disk image", e))?;
    let mut gpt = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(LogicalBlockSize::Lb512)
        .create_from_device(device, Some(derived_guid(seed, "disk")))
        .map_err(|e| err(e.to_string()))?;
    gpt.update_partitions(entries(layout, seed))
        .map_err(|e| err(e.to_string()))?;
    let mut device = gpt.write().map_err(|e| err(e.to_string()))?;
    let sectors = u32::try_from(layout.disk / SECTOR - 1).unwrap_or(u32::MAX);
    let mut mbr = ProtectiveMBR::with_lb_size(sectors);
    mbr.set_disk_signature([seed[0], seed[1], seed[2], seed[3]]);
    mbr.overwrite_lba0(&mut device)
        .map_err(|e| err(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsmaker::layout::{Firmware, Table, plan};

    #[test]
    fn guids_are_derived_and_distinct() {
        let seed = [7u8; 16];
        assert_eq!(derived_guid(&seed, "disk"), derived_guid(&seed, "disk"));
        assert_ne!(derived_guid(&seed, "disk"), derived_guid(&seed, "root"));
        assert_ne!(
            derived_guid(&seed, "disk"),
            derived_guid(&[8u8; 16], "disk")
        );
        assert_eq!(derived_guid(&seed, "disk").get_version_num(), 4);
    }

    #[test]
    fn writes_a_table_the_reader_understands() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.img");
        let layout = plan(8 << 20, 4096, None, false, (Table::Gpt, Firmware::Hybrid)).unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        f.set_len(layout.disk).unwrap();
        write(&f, &layout, &[1u8; 16]).unwrap();
        let info = crate::disk::table::inspect(&path).unwrap();
        let crate::disk::table::Table::Gpt {
            partitions,
            backup_at_end,
            ..
        } = info.table
        else {
            panic!("no GPT: {:?}", info.table)
        };
        assert!(backup_at_end);
        let got: Vec<(u32, u64, u64)> = partitions
            .iter()
            .map(|p| (p.number, p.start, p.size))
            .collect();
        assert_eq!(
            got,
            [
                (1, 128 << 20, 8 << 20),
                (2, 1 << 20, 3 << 20),
                (3, 4 << 20, 124 << 20)
            ]
        );
        let sector0 = std::fs::read(&path).unwrap()[..512].to_vec();
        assert_eq!(sector0[446 + 4], 0xee, "protective MBR");
        assert_eq!(&sector0[440..444], &[1, 1, 1, 1]);
    }
}
