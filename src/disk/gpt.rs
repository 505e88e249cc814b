//! Move a GPT's backup to the end of a disk that is larger than its image,
//! as `sgdisk -e` does.
//!
//! A GPT keeps a backup header in the disk's last sector and a backup entry
//! array just before it. After an image is copied onto a larger disk both sit
//! in the middle, where firmware and the kernel do not look. This rewrites the
//! backup at the end, points the primary header at it, extends the last
//! usable LBA, fixes both CRCs and the protective MBR's size, and clears the
//! stale backup header. The `gpt` crate reads tables but cannot move them.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// Where the GPT header fields live (UEFI spec, table 5-5).
const SIGNATURE: &[u8; 8] = b"EFI PART";
const HEADER_SIZE: usize = 12;
const HEADER_CRC: usize = 16;
const CURRENT_LBA: usize = 24;
const BACKUP_LBA: usize = 32;
const LAST_USABLE: usize = 48;
const ENTRIES_LBA: usize = 72;
const NUM_ENTRIES: usize = 80;
const ENTRY_SIZE: usize = 84;
const ENTRIES_CRC: usize = 88;

/// The logical sector size of a GPT disk image (512 or 4096), if it has a GPT.
pub fn sector_size(file: &File) -> Option<u64> {
    [512u64, 4096].into_iter().find(|&lb| {
        let mut sig = [0u8; 8];
        file.read_exact_at(&mut sig, lb).is_ok() && &sig == SIGNATURE
    })
}

/// If `file` holds a valid GPT whose backup lies within the first `copied`
/// bytes but not at the end of its `disk_len` bytes, move the backup to the
/// end. Returns whether it did.
pub fn relocate_backup(file: &File, copied: u64, disk_len: u64) -> Result<bool, String> {
    let Some(lb) = sector_size(file) else {
        return Ok(false);
    };
    let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
    let mut primary = vec![0u8; lb as usize];
    file.read_exact_at(&mut primary, lb)
        .map_err(|e| io("reading the primary header", e))?;
    let header_len = u32_at(&primary, HEADER_SIZE) as usize;
    if !(92..=lb as usize).contains(&header_len)
        || header_crc(&primary, header_len) != u32_at(&primary, HEADER_CRC)
    {
        return Ok(false);
    }
    let old_backup = u64_at(&primary, BACKUP_LBA);
    let new_backup = disk_len / lb - 1;
    if old_backup == new_backup || (old_backup + 1) * lb > copied || old_backup > new_backup {
        return Ok(false);
    }
    let entries_len = u32_at(&primary, NUM_ENTRIES) as u64 * u32_at(&primary, ENTRY_SIZE) as u64;
    let entries_lbs = entries_len.div_ceil(lb);
    if entries_len == 0 || entries_len > 1 << 24 || new_backup < entries_lbs + 3 {
        return Err(format!(
            "implausible GPT entry array of {entries_len} bytes"
        ));
    }
    let mut entries = vec![0u8; entries_len as usize];
    file.read_exact_at(&mut entries, u64_at(&primary, ENTRIES_LBA) * lb)
        .map_err(|e| io("reading the entry array", e))?;
    if crc32fast::hash(&entries) != u32_at(&primary, ENTRIES_CRC) {
        return Err("the primary entry array fails its CRC".into());
    }
    let new_entries = new_backup - entries_lbs;
    let last_usable = new_entries - 1;

    let mut backup = primary.clone();
    put_u64(&mut backup, CURRENT_LBA, new_backup);
    put_u64(&mut backup, BACKUP_LBA, 1);
    put_u64(&mut backup, LAST_USABLE, last_usable);
    put_u64(&mut backup, ENTRIES_LBA, new_entries);
    seal(&mut backup, header_len);
    put_u64(&mut primary, BACKUP_LBA, new_backup);
    put_u64(&mut primary, LAST_USABLE, last_usable);
    seal(&mut primary, header_len);

    let write =
        |what: &str, buf: &[u8], off: u64| file.write_all_at(buf, off).map_err(|e| io(what, e));
    write("writing the backup entry array", &entries, new_entries * lb)?;
    write("writing the backup header", &backup, new_backup * lb)?;
    write("writing the primary header", &primary, lb)?;
    write(
        "clearing the old backup header",
        &vec![0u8; lb as usize],
        old_backup * lb,
    )?;
    fix_protective_mbr(file, disk_len).map_err(|e| io("updating the protective MBR", e))?;
    Ok(true)
}

/// A protective MBR's 0xEE entry covers the whole disk (or 2^32-1 sectors).
fn fix_protective_mbr(file: &File, disk_len: u64) -> std::io::Result<()> {
    let mut mbr = [0u8; 512];
    file.read_exact_at(&mut mbr, 0)?;
    for i in 0..4 {
        let e = 446 + 16 * i;
        if mbr[e + 4] == 0xee && mbr[510..512] == [0x55, 0xaa] {
            let start = u32_at(&mbr, e + 8) as u64;
            let sectors = (disk_len / 512).saturating_sub(start).min(u32::MAX as u64) as u32;
            file.write_all_at(&sectors.to_le_bytes(), (e + 12) as u64)?;
        }
    }
    Ok(())
}

fn header_crc(header: &[u8], len: usize) -> u32 {
    let mut h = header[..len].to_vec();
    h[HEADER_CRC..HEADER_CRC + 4].fill(0);
    crc32fast::hash(&h)
}

fn seal(header: &mut [u8], len: usize) {
    let crc = header_crc(header, len);
    header[HEADER_CRC..HEADER_CRC + 4].copy_from_slice(&crc.to_le_bytes());
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
