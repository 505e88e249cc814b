//! Disk layout: which partition table and boot partitions the disk gets, and where. Sizes
//! are pure arithmetic, kept apart from I/O.
//!
//! * MBR (BIOS only): one partition (type 0x83, bootable) at 1 MiB, the gap before it
//!   holding GRUB's core image.
//! * GPT, laid out like Debian's cloud images: a BIOS boot partition at 1 MiB (3 MiB, for
//!   GRUB's core image), an EFI system partition at 4 MiB (124 MiB, FAT32), the root
//!   partition at 128 MiB, and the backup table in the disk's last MiB. A UEFI-only disk
//!   leaves the BIOS boot partition out, a BIOS-only one the ESP. The root is partition 1
//!   (then BIOS boot, then ESP: the `gpt` crate numbers entries in order).

use std::io::Cursor;

use mbrman::{BOOT_ACTIVE, CHS, MBRHeader, MBRPartitionEntry};

use super::BuildError;

/// Bytes in a disk sector, as the MBR counts them.
pub const SECTOR: u64 = 512;
/// Partition 1 of an MBR disk starts here (and the GRUB embedding area ends here).
pub const PART_START: u64 = 1 << 20;
/// Linux filesystem partition type.
pub const PART_TYPE_LINUX: u8 = 0x83;
/// A GPT disk's BIOS boot partition: where GRUB's core image is embedded.
pub const BIOS_BOOT: Region = Region {
    start: 1 << 20,
    size: 3 << 20,
};
/// A GPT disk's EFI system partition.
pub const ESP: Region = Region {
    start: 4 << 20,
    size: 124 << 20,
};
/// The root partition of a GPT disk with an ESP.
const GPT_ROOT_AFTER_ESP: u64 = ESP.start + ESP.size;
/// The root partition of a BIOS-only GPT disk.
const GPT_ROOT_AFTER_BIOS_BOOT: u64 = BIOS_BOOT.start + BIOS_BOOT.size;
/// Kept free at the end of a GPT disk for the backup table (33 sectors, rounded to a MiB).
const GPT_TAIL: u64 = 1 << 20;

crate::named_enum! {
    /// The partition table fsmaker writes.
    #[derive(Default)]
    pub enum Table("partition table") {
        /// MBR (DOS): the root as partition 1, GRUB's core image in the gap before it
        /// (BIOS only).
        #[default]
        Mbr = "mbr",
        /// GPT (protective MBR, backup at the end): BIOS boot partition, ESP and root as
        /// Debian's cloud images have them.
        Gpt = "gpt",
    }
}

crate::named_enum! {
    /// The firmware a disk boots with.
    #[derive(Default)]
    pub enum Firmware("firmware") {
        /// Legacy BIOS: GRUB i386-pc in the boot sector and core image.
        #[default]
        Bios = "bios",
        /// UEFI: an EFI system partition with `EFI/BOOT/BOOTX64.EFI`.
        Uefi = "uefi",
        /// Both, as Debian's, Ubuntu's and Fedora's cloud images boot.
        Hybrid = "hybrid",
    }
}

impl Firmware {
    /// Whether BIOS boots the disk.
    pub fn bios(self) -> bool {
        self != Firmware::Uefi
    }
    /// Whether UEFI boots the disk.
    pub fn uefi(self) -> bool {
        self != Firmware::Bios
    }
}

/// The partition table and firmware of a build, with those not asked for chosen: MBR for
/// BIOS as before; asking for GPT, UEFI or Secure Boot gets GPT, and GPT gets a hybrid
/// disk unless a firmware is named. MBR is built for BIOS only, Secure Boot needs UEFI.
pub fn scheme(
    table: Option<Table>,
    firmware: Option<Firmware>,
    secure_boot: bool,
) -> Result<(Table, Firmware), BuildError> {
    let wants_gpt = secure_boot || firmware.is_some_and(Firmware::uefi);
    let table = table.unwrap_or(if wants_gpt { Table::Gpt } else { Table::Mbr });
    let firmware = firmware.unwrap_or(if table == Table::Gpt {
        Firmware::Hybrid
    } else {
        Firmware::Bios
    });
    if table == Table::Mbr && firmware.uefi() {
        return Err(BuildError::MbrIsBiosOnly(firmware));
    }
    if secure_boot && !firmware.uefi() {
        return Err(BuildError::SecureBootNeedsUefi);
    }
    Ok((table, firmware))
}

/// A byte range of the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Its first byte.
    pub start: u64,
    /// Its length in bytes.
    pub size: u64,
}

/// The disk to build: its table, size and partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The partition table.
    pub table: Table,
    /// Whole disk, bytes.
    pub disk: u64,
    /// Where the root partition starts.
    pub part_start: u64,
    /// The root partition (= the filesystem after any growing), bytes.
    pub part: u64,
    /// The GPT BIOS boot partition, if the disk has one.
    pub bios_boot: Option<Region>,
    /// The EFI system partition, if the disk has one.
    pub esp: Option<Region>,
}

impl Layout {
    /// The root partition.
    pub fn root(&self) -> Region {
        Region {
            start: self.part_start,
            size: self.part,
        }
    }

    /// Bytes of the disk that are not the root partition at its smallest: what comes
    /// before it and the space kept after it.
    pub fn overhead(&self) -> u64 {
        self.part_start + tail(self.table)
    }
}

fn tail(table: Table) -> u64 {
    match table {
        Table::Mbr => 0,
        Table::Gpt => GPT_TAIL,
    }
}

/// Works out the layout for a filesystem of `fs_size` bytes (block size `block`) on a disk
/// with `table` booted by `firmware`. `size`: the whole disk; `grow`: the filesystem fills
/// the partition up to the disk end (or the backup table).
pub fn plan(
    fs_size: u64,
    block: u64,
    size: Option<u64>,
    grow: bool,
    (table, firmware): (Table, Firmware),
) -> Result<Layout, BuildError> {
    let (part_start, bios_boot, esp) = match table {
        Table::Mbr => (PART_START, None, None),
        Table::Gpt => (
            if firmware.uefi() {
                GPT_ROOT_AFTER_ESP
            } else {
                GPT_ROOT_AFTER_BIOS_BOOT
            },
            firmware.bios().then_some(BIOS_BOOT),
            firmware.uefi().then_some(ESP),
        ),
    };
    let layout = |disk, part| Layout {
        table,
        disk,
        part_start,
        part,
        bios_boot,
        esp,
    };
    let overhead = part_start + tail(table);
    let min_disk = overhead + fs_size.div_ceil(SECTOR) * SECTOR;
    let Some(disk) = size else {
        if grow {
            return Err(BuildError::GrowNeedsSize);
        }
        return Ok(layout(min_disk, min_disk - overhead));
    };
    if disk < min_disk {
        return Err(BuildError::DiskTooSmall {
            disk,
            min: min_disk,
        });
    }
    let disk = disk.div_ceil(SECTOR) * SECTOR;
    let part = if grow {
        (disk - overhead) / block * block
    } else {
        min_disk - overhead
    };
    Ok(layout(disk, part))
}

fn chs(lba: u64) -> CHS {
    u32::try_from(lba)
        .ok()
        .and_then(|l| CHS::from_lba_exact(l, 1024, 255, 63).ok())
        .unwrap_or_else(|| CHS::new(1023, 254, 63))
}

/// Sector 0 of an MBR disk with the partition table (no boot code yet).
pub fn mbr(layout: &Layout, signature: [u8; 4]) -> Result<Vec<u8>, BuildError> {
    let start = layout.part_start / SECTOR;
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
        let bios = (Table::Mbr, Firmware::Bios);
        let l = plan(64 << 20, 4096, None, false, bios).unwrap();
        assert_eq!(
            (l.disk, l.part_start, l.part, l.esp, l.bios_boot),
            ((64 << 20) + PART_START, PART_START, 64 << 20, None, None)
        );
        let g = plan(64 << 20, 4096, Some(256 << 20), true, bios).unwrap();
        assert_eq!((g.disk, g.part), (256 << 20, (256 << 20) - PART_START));
        let n = plan(64 << 20, 4096, Some(256 << 20), false, bios).unwrap();
        assert_eq!(n.part, 64 << 20);
        assert!(plan(64 << 20, 4096, Some(32 << 20), true, bios).is_err());
        assert!(plan(64 << 20, 4096, None, true, bios).is_err());
    }

    #[test]
    fn gpt_layouts_are_debians() {
        let h = plan(64 << 20, 4096, None, false, (Table::Gpt, Firmware::Hybrid)).unwrap();
        assert_eq!(h.bios_boot, Some(BIOS_BOOT));
        assert_eq!(h.esp, Some(ESP));
        // Debian's sectors: BIOS boot 2048-8191, ESP 8192-262143, root from 262144.
        assert_eq!((BIOS_BOOT.start / SECTOR, ESP.start / SECTOR), (2048, 8192));
        assert_eq!(h.part_start / SECTOR, 262144);
        // The backup table gets the last MiB.
        assert_eq!(h.disk, (128 << 20) + (64 << 20) + (1 << 20));
        let u = plan(64 << 20, 4096, None, false, (Table::Gpt, Firmware::Uefi)).unwrap();
        assert_eq!(
            (u.bios_boot, u.esp, u.part_start),
            (None, Some(ESP), 128 << 20)
        );
        let b = plan(64 << 20, 4096, None, false, (Table::Gpt, Firmware::Bios)).unwrap();
        assert_eq!(
            (b.bios_boot, b.esp, b.part_start),
            (Some(BIOS_BOOT), None, 4 << 20)
        );
        let g = plan(
            64 << 20,
            4096,
            Some(1 << 30),
            true,
            (Table::Gpt, Firmware::Hybrid),
        )
        .unwrap();
        assert_eq!(g.part_start + g.part + (1 << 20), 1 << 30);
    }

    #[test]
    fn scheme_picks_gpt_and_hybrid_for_uefi_and_refuses_what_cannot_boot() {
        assert_eq!(
            scheme(None, None, false).unwrap(),
            (Table::Mbr, Firmware::Bios)
        );
        assert_eq!(
            scheme(Some(Table::Gpt), None, false).unwrap(),
            (Table::Gpt, Firmware::Hybrid)
        );
        assert_eq!(
            scheme(None, Some(Firmware::Uefi), false).unwrap(),
            (Table::Gpt, Firmware::Uefi)
        );
        assert_eq!(
            scheme(None, None, true).unwrap(),
            (Table::Gpt, Firmware::Hybrid)
        );
        assert!(matches!(
            scheme(Some(Table::Mbr), Some(Firmware::Hybrid), false),
            Err(BuildError::MbrIsBiosOnly(Firmware::Hybrid))
        ));
        assert!(matches!(
            scheme(None, Some(Firmware::Bios), true),
            Err(BuildError::SecureBootNeedsUefi)
        ));
    }

    #[test]
    fn mbr_has_one_bootable_linux_partition() {
        let layout = plan(64 << 20, 4096, None, false, (Table::Mbr, Firmware::Bios)).unwrap();
        let m = mbr(&layout, [1, 2, 3, 4]).unwrap();
        assert_eq!(&m[0x1b8..0x1bc], &[1, 2, 3, 4]);
        assert_eq!(m[0x1be], 0x80);
        assert_eq!(m[0x1be + 4], 0x83);
        assert_eq!(&m[0x1be + 8..0x1be + 12], &2048u32.to_le_bytes());
        assert_eq!(&m[0x1be + 12..0x1be + 16], &(131072u32).to_le_bytes());
        assert_eq!(&m[510..], &[0x55, 0xAA]);
        assert!(m[0x1ce..0x1fe].iter().all(|&b| b == 0));
    }
}
