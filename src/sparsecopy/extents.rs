//! The data extents of a file, from `SEEK_DATA`/`SEEK_HOLE`.
//!
//! Only these ranges are read; everything between them is a hole and reads as
//! zeros. Where the file system (or a block device) cannot tell, the whole
//! range is one data extent, which is always correct, only slower.

use std::fs::File;
use std::io;
use std::ops::Range;

use rustix::fs::{SeekFrom, seek};
use rustix::io::Errno;

/// The data ranges of `file` within `range`, in order, clipped to `range`.
pub fn data_extents(file: &File, range: Range<u64>) -> io::Result<Vec<Range<u64>>> {
    let mut out = Vec::new();
    let mut pos = range.start;
    while pos < range.end {
        let start = match seek(file, SeekFrom::Data(pos)) {
            Ok(off) => off,
            // No data at or after `pos`: the rest is a hole.
            Err(Errno::NXIO) => break,
            // The file system cannot say: treat everything as data.
            Err(Errno::INVAL | Errno::OPNOTSUPP) => return Ok(std::iter::once(range).collect()),
            Err(e) => return Err(e.into()),
        };
        if start >= range.end {
            break;
        }
        let end = match seek(file, SeekFrom::Hole(start)) {
            Ok(off) => off.min(range.end),
            Err(Errno::NXIO) => range.end,
            Err(e) => return Err(e.into()),
        };
        if end <= start {
            // A file system that reports data without a following hole: be safe.
            out.push(start..range.end);
            break;
        }
        out.push(start..end);
        pos = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn reports_written_ranges_and_skips_holes() {
        let f = tempfile::tempfile().unwrap();
        let mib = 1 << 20;
        f.set_len(8 * mib).unwrap();
        f.write_all_at(&[1u8; 4096], 2 * mib).unwrap();
        f.write_all_at(&[1u8; 4096], 5 * mib).unwrap();
        let ext = data_extents(&f, 0..8 * mib).unwrap();
        // The file system may round extents to its block size, never drop data.
        assert_eq!(ext.len(), 2, "{ext:?}");
        assert!(ext[0].start <= 2 * mib && ext[0].end >= 2 * mib + 4096);
        assert!(ext[1].start <= 5 * mib && ext[1].end >= 5 * mib + 4096);
        assert!(ext[0].end < 5 * mib);
        let clipped = data_extents(&f, 2 * mib + 100..3 * mib).unwrap();
        assert_eq!(clipped.first().map(|r| r.start), Some(2 * mib + 100));
        assert!(data_extents(&f, 6 * mib..8 * mib).unwrap().is_empty());
    }
}
