//! The EFI system partition: a FAT32 filesystem made without mounting (the `fatfs`
//! crate) in a file of its own, holding the UEFI boot files. Reproducible: the volume id
//! comes from the caller and every timestamp is the build's epoch.
//!
//! It writes only the file it is given; where the partition goes on the disk is the
//! build's business.

use std::fs::{File, OpenOptions};
use std::path::Path;

use fatfs::{FatType, FormatVolumeOptions, FsOptions, TimeProvider};

use super::BuildError;

/// The ESP's volume label.
const LABEL: [u8; 11] = *b"EFI        ";

/// A file to put on the ESP: its contents and its path there (`/EFI/BOOT/BOOTX64.EFI`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspFile {
    /// The bytes.
    pub data: Vec<u8>,
    /// Where it goes, absolute, with `/` separators.
    pub dest: String,
}

/// A DOS date and time from seconds since 1970 (clamped to what FAT can hold).
#[derive(Debug)]
struct Epoch(fatfs::DateTime);

impl Epoch {
    fn new(epoch: i64) -> Epoch {
        let secs = epoch.clamp(315_532_800, 4_354_819_199) as u64;
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        // `YYYY-MM-DDTHH:MM:SSZ`
        let s = humantime::format_rfc3339_seconds(t).to_string();
        let n = |a: usize, b: usize| s[a..b].parse::<u16>().unwrap_or(0);
        Epoch(fatfs::DateTime {
            date: fatfs::Date {
                year: n(0, 4),
                month: n(5, 7),
                day: n(8, 10),
            },
            time: fatfs::Time {
                hour: n(11, 13),
                min: n(14, 16),
                sec: n(17, 19),
                millis: 0,
            },
        })
    }
}

impl TimeProvider for Epoch {
    fn get_current_date(&self) -> fatfs::Date {
        self.0.date
    }
    fn get_current_date_time(&self) -> fatfs::DateTime {
        self.0
    }
}

/// Makes `path` (`size` bytes) a FAT32 filesystem with volume id `volume_id` holding
/// `files`, every timestamp `epoch`.
pub fn build(
    path: &Path,
    size: u64,
    volume_id: u32,
    epoch: i64,
    files: &[EspFile],
) -> Result<(), BuildError> {
    let err = |what: &str, e: std::io::Error| BuildError::Esp(format!("{what}: {e}"));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| err("cannot create the ESP image", e))?;
    file.set_len(size)
        .map_err(|e| err("cannot size the ESP image", e))?;
    fatfs::format_volume(
        &file,
        FormatVolumeOptions::new()
            .fat_type(FatType::Fat32)
            .volume_id(volume_id)
            .volume_label(LABEL),
    )
    .map_err(|e| err("cannot format the ESP", e))?;
    // fatfs takes its clock as a `&'static`: one small provider per build lives on.
    let clock: &'static Epoch = Box::leak(Box::new(Epoch::new(epoch)));
    let fs = fatfs::FileSystem::new(&file, FsOptions::new().time_provider(clock))
        .map_err(|e| err("cannot open the new ESP", e))?;
    for f in files {
        put(&fs, f).map_err(|e| err(&format!("cannot write {}", f.dest), e))?;
    }
    fs.unmount().map_err(|e| err("cannot close the ESP", e))?;
    file.sync_all().map_err(|e| err("cannot sync the ESP", e))
}

/// Writes one file, creating its directories.
fn put(fs: &fatfs::FileSystem<&File>, f: &EspFile) -> std::io::Result<()> {
    use std::io::Write;
    let mut dir = fs.root_dir();
    let parts: Vec<&str> = f.dest.split('/').filter(|p| !p.is_empty()).collect();
    let Some((name, parents)) = parts.split_last() else {
        return Err(std::io::Error::other("empty path"));
    };
    for p in parents {
        dir = match dir.open_dir(p) {
            Ok(d) => d,
            Err(_) => dir.create_dir(p)?,
        };
    }
    let mut out = dir.create_file(name)?;
    out.truncate()?;
    out.write_all(&f.data)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<EspFile> {
        vec![
            EspFile {
                data: b"MZ fake loader".to_vec(),
                dest: "/EFI/BOOT/BOOTX64.EFI".into(),
            },
            EspFile {
                data: b"configfile x\n".to_vec(),
                dest: "/EFI/BOOT/grub.cfg".into(),
            },
        ]
    }

    #[test]
    fn epoch_becomes_a_dos_date() {
        let e = Epoch::new(1_700_000_000);
        assert_eq!(
            (e.0.date.year, e.0.date.month, e.0.date.day),
            (2023, 11, 14)
        );
        assert_eq!((e.0.time.hour, e.0.time.min, e.0.time.sec), (22, 13, 20));
        assert_eq!(Epoch::new(0).0.date.year, 1980);
    }

    #[test]
    fn same_inputs_same_bytes_and_the_files_read_back() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        build(&a, 124 << 20, 0x1234_5678, 1_700_000_000, &files()).unwrap();
        build(&b, 124 << 20, 0x1234_5678, 1_700_000_000, &files()).unwrap();
        assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
        let f = File::open(&a).unwrap();
        let fs = fatfs::FileSystem::new(&f, FsOptions::new()).unwrap();
        assert_eq!(fs.fat_type(), FatType::Fat32);
        assert_eq!(fs.volume_id(), 0x1234_5678);
        let mut loader = Vec::new();
        std::io::Read::read_to_end(
            &mut fs.root_dir().open_file("efi/boot/bootx64.efi").unwrap(),
            &mut loader,
        )
        .unwrap();
        assert_eq!(loader, b"MZ fake loader");
        let out = std::process::Command::new("mdir")
            .arg("-i")
            .arg(&a)
            .arg("::/EFI/BOOT")
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(listing.contains("2023-11-14"), "{listing}");
    }
}
