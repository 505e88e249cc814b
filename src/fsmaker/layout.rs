//! Disk layout: one MBR partition (type 0x83, bootable) starting at 1 MiB, the gap
//! before it holding GRUB's core image. Sizes are pure arithmetic, kept apart from I/O.

use std::io::Cursor;

use mbrman::{BOOT_ACTIVE, CHS, MBRHeader, MBRPartitionEntry};

use super::BuildError;

/// Bytes in a disk sector, as the MBR counts them.
pub const SECTOR: u64 = 512;
/// Partition 1 starts here (and the GRUB embedding area ends here).
pub const PART_START: u64 = 1 << 20;
/// Linux filesystem partition type.
pub const PART_TYPE_LINUX: u8 = 0x83;

/// The sizes of the disk to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Whole disk, bytes.
    pub disk: u64,
    /// Partition 1 (= the filesystem after any growing), bytes.
    pub part: u64,
}

/// Works out the layout for a filesystem of `fs_size` bytes (block size `block`).
/// `size`: the whole disk; `grow`: the filesystem fills the partition up to the disk end.
pub fn plan(fs_size: u64, block: u64, size: Option<u64>, grow: bool) -> Result<Layout, BuildError> {
    let min_disk = PART_START + fs_size.div_ceil(SECTOR) * SECTOR;
    let Some(disk) = size else {
        if grow {
            return Err(BuildError::GrowNeedsSize);
        }
        return Ok(Layout {
            disk: min_disk,
            part: min_disk - PART_START,
        });
    };
    if disk < min_disk {
        return Err(BuildError::DiskTooSmall {
            disk,
            min: min_disk,
        });
    }
    let disk = disk.div_ceil(SECTOR) * SECTOR;
    let part = if grow {
        (disk - PART_START) / block * block
    } else {
        min_disk - PART_START
    };
    Ok(Layout { disk, part })
}

fn chs(lba: u64) -> CHS {
    u32::try_from(lba)
        .ok()
        .and_then(|l| CHS::from_lba_exact(l, 1024, 255, 63).ok())
        .unwrap_or_else(|| CHS::new(1023, 254, 63))
}

/// Sector 0 with the partition table (no boot code yet).
pub fn mbr(layout: &Layout, signature: [u8; 4]) -> Result<Vec<u8>, BuildError> {
    let start = PART_START / SECTOR;
    let sectors = layout.part / SECTOR;
    let sectors32 =
        u32::try_from(sectors).map_err(|_| BuildError::PartitionTooLarge(layout.part))?;
    let mut h = MBRHeader::new(signature);
    h.partition_1 = MBRPartitionEntry {
        boot: BOOT_ACTIVE,
        first_chs: chs(start),
        sys: PART_TYPE_LINUX,
        last_chs: chs(start + sectors - 1),
        starting_lba: start as u32,
        sectors: sectors32,
    };
    let mut c = Cursor::new(vec![0u8; SECTOR as usize]);
    h.write_into(&mut c)
        .map_err(|e| BuildError::Grub(format!("cannot encode the MBR: {e}")))?;
    Ok(c.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_sizes() {
        let l = plan(64 << 20, 4096, None, false).unwrap();
        assert_eq!(
            l,
            Layout {
                disk: (64 << 20) + PART_START,
                part: 64 << 20
            }
        );
        let g = plan(64 << 20, 4096, Some(256 << 20), true).unwrap();
        assert_eq!(
            g,
            Layout {
                disk: 256 << 20,
                part: (256 << 20) - PART_START
            }
        );
        let n = plan(64 << 20, 4096, Some(256 << 20), false).unwrap();
        assert_eq!(n.part, 64 << 20);
        assert!(plan(64 << 20, 4096, Some(32 << 20), true).is_err());
        assert!(plan(64 << 20, 4096, None, true).is_err());
    }

    #[test]
    fn mbr_has_one_bootable_linux_partition() {
        let m = mbr(
            &Layout {
                disk: 65 << 20,
                part: 64 << 20,
            },
            [1, 2, 3, 4],
        )
        .unwrap();
        assert_eq!(&m[0x1b8..0x1bc], &[1, 2, 3, 4]);
        assert_eq!(m[0x1be], 0x80);
        assert_eq!(m[0x1be + 4], 0x83);
        assert_eq!(&m[0x1be + 8..0x1be + 12], &2048u32.to_le_bytes());
        assert_eq!(&m[0x1be + 12..0x1be + 16], &(131072u32).to_le_bytes());
        assert_eq!(&m[510..], &[0x55, 0xAA]);
        assert!(m[0x1ce..0x1fe].iter().all(|&b| b == 0));
    }
}
