//! Which firmware can boot an image, read offline ([`support`]):
//!
//! * a disk: BIOS boot code in sector 0 (its first 440 bytes, before the disk signature
//!   and partition table, are not all zero, and do more than hand the boot back to the
//!   BIOS: [`HAND_BACK`]); an EFI system partition (GPT type
//!   `C12A7328-...`, MBR type `0xef`) whose FAT filesystem holds `EFI/BOOT/BOOTX64.EFI`,
//!   the loader a firmware with no boot entries of its own (every new VM) starts;
//! * an ISO: the platforms of its El Torito boot catalogue (x86 BIOS, EFI).
//!
//! Other loaders on an ESP (`EFI/debian/shimx64.efi`) are named in the reason: only a
//! boot entry in the firmware's variables would start them, and a new VM has none.
//! Nothing here writes the image.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::table::{self, Table};
use crate::facts::BootSupport;

/// The GPT type of an EFI system partition.
pub const ESP_GUID: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/// The MBR type of an EFI system partition.
pub const ESP_MBR_TYPE: &str = "ef";
/// The GPT type of a BIOS boot partition (GRUB's core image on a GPT disk).
pub const BIOS_BOOT_GUID: &str = "21686148-6449-6E6F-744E-656564454649";
/// The loader UEFI starts from a disk it has no boot entry for.
pub const REMOVABLE_LOADER: &str = "EFI/BOOT/BOOTX64.EFI";

/// Boot code that boots nothing: `int 18h` (boot failed: the BIOS tries its next device,
/// and says "No bootable device" when none is left), then `hlt` forever. What a disk that
/// UEFI alone boots (fsmaker's `--firmware uefi`) carries, so that a BIOS gives up at once
/// instead of running a zeroed boot sector.
pub const HAND_BACK: [u8; 5] = [0xcd, 0x18, 0xf4, 0xeb, 0xfd];

/// What the raw disk (or bare filesystem) at `path` offers each firmware.
pub fn support(path: &Path) -> BootSupport {
    let mut s = BootSupport::default();
    match bios_code(path) {
        Ok(true) => s.bios = Some("boot code in the MBR".into()),
        Ok(false) => s.missing.push("no boot code in sector 0".into()),
        Err(e) => s.missing.push(format!("sector 0 unreadable: {e}")),
    }
    let esps: Vec<(u32, u64, u64)> = match table::inspect(path).map(|i| i.table) {
        Ok(Table::Gpt { partitions, .. }) | Ok(Table::Mbr { partitions, .. }) => partitions
            .iter()
            .filter(|p| p.type_id == ESP_GUID || p.type_id == ESP_MBR_TYPE)
            .map(|p| (p.number, p.start, p.size))
            .collect(),
        _ => Vec::new(),
    };
    if esps.is_empty() {
        s.missing.push("no EFI system partition".into());
    }
    for (number, start, size) in esps {
        match esp_loaders(path, start, size) {
            Ok(l) if l.iter().any(|p| p.eq_ignore_ascii_case(REMOVABLE_LOADER)) => {
                s.uefi = Some(format!("{REMOVABLE_LOADER} on the ESP (partition {number})"));
                break;
            }
            Ok(l) if l.is_empty() => s
                .missing
                .push(format!("the ESP (partition {number}) holds no EFI loader")),
            Ok(l) => s.missing.push(format!(
                "the ESP (partition {number}) has no {REMOVABLE_LOADER}, only {} (a new VM has no boot entry for it)",
                l.join(", ")
            )),
            Err(e) => s.missing.push(format!(
                "the ESP (partition {number}) is not a readable FAT filesystem: {e}"
            )),
        }
    }
    s
}

/// Whether sector 0 holds boot code: the 55 AA signature and a non-zero code area that
/// is not [`HAND_BACK`].
fn bios_code(path: &Path) -> io::Result<bool> {
    let mut sector = [0u8; 512];
    let f = File::open(path)?;
    let n = f.read_at(&mut sector, 0)?;
    Ok(n == 512
        && sector[510..] == [0x55, 0xaa]
        && sector[..440].iter().any(|&b| b != 0)
        && !sector.starts_with(&HAND_BACK))
}

/// The EFI applications (`*.efi`, upper-cased paths without a leading `/`) in the FAT
/// filesystem at `start` (`size` bytes) of `path`, two directory levels deep.
fn esp_loaders(path: &Path, start: u64, size: u64) -> io::Result<Vec<String>> {
    let region = Region {
        file: File::open(path)?,
        start,
        size,
        pos: 0,
    };
    let fs = fatfs::FileSystem::new(region, fatfs::FsOptions::new())?;
    let mut found = Vec::new();
    let efi = match fs.root_dir().open_dir("EFI") {
        Ok(d) => d,
        Err(_) => return Ok(found),
    };
    for vendor in efi.iter().flatten().filter(|e| e.is_dir()) {
        let name = vendor.file_name();
        if name == "." || name == ".." {
            continue;
        }
        for f in vendor.to_dir().iter().flatten().filter(|e| e.is_file()) {
            if f.file_name().to_ascii_lowercase().ends_with(".efi") {
                found.push(format!("EFI/{name}/{}", f.file_name()).to_ascii_uppercase());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// A partition of an image file as a read-only stream (writes fail: nothing is written).
struct Region {
    file: File,
    start: u64,
    size: u64,
    pos: u64,
}

impl Read for Region {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.size.saturating_sub(self.pos);
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let got = self.file.read_at(&mut buf[..n], self.start + self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Write for Region {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the image is read only",
        ))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Region {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos =
            pos.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek out of range"))?;
        Ok(self.pos)
    }
}

/// El Torito platform ids.
const PLATFORM_X86: u8 = 0;
const PLATFORM_EFI: u8 = 0xef;

/// What the ISO at `path` offers each firmware: its El Torito boot catalogue's platforms.
pub fn iso_support(path: &Path) -> BootSupport {
    let mut s = BootSupport::default();
    let platforms = match el_torito_platforms(path) {
        Ok(p) => p,
        Err(e) => {
            s.missing
                .push(format!("no readable El Torito catalogue: {e}"));
            return s;
        }
    };
    if platforms.contains(&PLATFORM_X86) {
        s.bios = Some("an El Torito BIOS boot image".into());
    } else {
        s.missing.push("no El Torito BIOS boot image".into());
    }
    if platforms.contains(&PLATFORM_EFI) {
        s.uefi = Some("an El Torito EFI boot image".into());
    } else {
        s.missing.push("no El Torito EFI boot image".into());
    }
    s
}

/// Whether `b`, an ISO 9660 volume descriptor, is El Torito's boot record.
pub fn is_el_torito_record(b: &[u8]) -> bool {
    b.first() == Some(&0)
        && b.get(1..6) == Some(b"CD001")
        && b.get(7..)
            .is_some_and(|r| r.starts_with(b"EL TORITO SPECIFICATION"))
}

/// The platform ids of the bootable entries of the ISO's El Torito boot catalogue.
fn el_torito_platforms(path: &Path) -> io::Result<Vec<u8>> {
    let f = File::open(path)?;
    let mut record = [0u8; 2048];
    f.read_exact_at(&mut record, 17 * 2048)?;
    if !is_el_torito_record(&record) {
        return Err(io::Error::other("no El Torito boot record"));
    }
    let at = u32::from_le_bytes(record[0x47..0x4b].try_into().expect("4 bytes"));
    let mut catalogue = [0u8; 2048];
    f.read_exact_at(&mut catalogue, u64::from(at) * 2048)?;
    Ok(catalogue_platforms(&catalogue))
}

/// The platforms of a boot catalogue's bootable entries: the default entry (under the
/// validation entry's platform) and each section's.
pub fn catalogue_platforms(c: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if c.len() < 64 || c[0] != 1 || c[30..32] != [0x55, 0xaa] {
        return out;
    }
    if c[32] == 0x88 {
        out.push(c[1]);
    }
    let mut at = 64;
    while at + 32 <= c.len() && matches!(c[at], 0x90 | 0x91) {
        let (platform, entries) = (c[at + 1], u16::from_le_bytes([c[at + 2], c[at + 3]]));
        let last = c[at] == 0x91;
        at += 32;
        for _ in 0..entries {
            if at + 32 > c.len() {
                break;
            }
            if c[at] == 0x88 {
                out.push(platform);
            }
            at += 32;
        }
        if last {
            break;
        }
    }
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_platforms_read_the_default_and_section_entries() {
        let mut c = vec![0u8; 2048];
        c[0] = 1;
        c[30] = 0x55;
        c[31] = 0xaa;
        c[32] = 0x88;
        assert_eq!(catalogue_platforms(&c), [PLATFORM_X86]);
        c[64] = 0x91;
        c[65] = PLATFORM_EFI;
        c[66] = 1;
        c[96] = 0x88;
        assert_eq!(catalogue_platforms(&c), [PLATFORM_X86, PLATFORM_EFI]);
        c[31] = 0;
        assert!(catalogue_platforms(&c).is_empty());
    }

    #[test]
    fn boot_code_that_hands_back_is_no_boot_code() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("mbr.img");
        let mut sector = vec![0u8; 512];
        sector[510..].copy_from_slice(&[0x55, 0xaa]);
        sector[..5].copy_from_slice(&HAND_BACK);
        std::fs::write(&p, &sector).unwrap();
        assert!(!bios_code(&p).unwrap());
        sector[0] = 0xeb;
        std::fs::write(&p, &sector).unwrap();
        assert!(bios_code(&p).unwrap());
    }

    #[test]
    fn a_bare_file_offers_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("zero.img");
        std::fs::write(&p, vec![0u8; 1 << 20]).unwrap();
        let s = support(&p);
        assert_eq!((s.bios, s.uefi), (None, None));
        assert_eq!(
            s.missing,
            ["no boot code in sector 0", "no EFI system partition"]
        );
        assert!(iso_support(&p).missing[0].contains("no El Torito boot record"));
        let rescue = Path::new("/usr/lib/grub-rescue/grub-rescue-cdrom.iso");
        let r = iso_support(rescue);
        assert!(r.bios.is_some(), "{r:?}");
    }
}
