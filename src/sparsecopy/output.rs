//! DST: a regular file or a block device, written only where SRC has data.
//!
//! Zero ranges are coalesced and then made to read as zeros as cheaply as the
//! target allows: in a file, nothing at all where the file was a hole or
//! beyond its old end (it is extended with `set_len`), a punched hole where it
//! had data; on a block device, `BLKZEROOUT`, `BLKDISCARD` (the plan's `discard`) or
//! nothing (`assume_zero`), with explicit zeros for unaligned edges. It never reads SRC
//! and never decides where bytes go: the copy loop gives every offset.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;

use rustix::fs::{FallocateFlags, fallocate};
use rustix::io::Errno;

use super::SparseError;
use crate::disk::blockdev::BlockDevice;

/// How zero ranges are made to read as zeros on a block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceZero {
    /// `BLKZEROOUT`: the device writes (or unmaps) zeros itself.
    ZeroOut,
    /// `BLKDISCARD`: the range is discarded (reads as zeros on devices that promise it).
    Discard,
    /// Nothing: the device already reads as zeros.
    AssumeZero,
}

/// Where the bytes go.
pub enum Target {
    /// A regular file; bytes at or beyond `old_len` are holes already.
    File {
        /// Its length before the copy.
        old_len: u64,
    },
    /// A block device driven through `dev`.
    Device {
        /// The device's block-layer operations.
        dev: Box<dyn BlockDevice>,
        /// How zero ranges are made to read as zeros on it.
        zero: DeviceZero,
    },
}

/// DST with a pending zero range.
pub struct Output {
    /// DST, open for reading and writing.
    pub file: File,
    /// What kind of DST it is.
    pub target: Target,
    pending: Option<Range<u64>>,
    /// Bytes written with data.
    pub bytes_written: u64,
    /// Allocate each write's blocks with `fallocate` first. ext4's delayed allocation
    /// otherwise reserves and tracks every 4 KiB block of a buffered write one by one;
    /// this measured 25–30% faster copies of SRC's data runs. Set by the copy for a file
    /// DST when the writes are whole runs of a mapped SRC: a stream's data comes cut at
    /// read boundaries, and allocating each piece apart left more extents.
    pub preallocate: bool,
    /// Whether a sync follows the copy (a device, or `--sync`): then writeback starts
    /// during the copy. Without one it would only cost the copy time.
    early_writeback: bool,
    /// With early writeback: bytes written since writeback was last asked for, and the
    /// range they span.
    unflushed: u64,
    unflushed_range: Option<Range<u64>>,
    /// The writeback helper, started with the first [`WRITEBACK_EVERY`] bytes.
    writeback: Option<std::sync::mpsc::SyncSender<Range<u64>>>,
}

/// Writeback of the data written so far is asked for after every this many bytes.
const WRITEBACK_EVERY: u64 = 8 << 20;

const SECTOR: u64 = 512;

impl Output {
    /// DST `file`; `synced` says whether the copy ends with a sync of it.
    pub fn new(file: File, target: Target, synced: bool) -> Self {
        Output {
            file,
            preallocate: false,
            early_writeback: synced || matches!(target, Target::Device { .. }),
            target,
            pending: None,
            bytes_written: 0,
            unflushed: 0,
            unflushed_range: None,
            writeback: None,
        }
    }

    /// Write `data` at `offset`.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), SparseError> {
        self.flush_zeros()?;
        if self.preallocate {
            // Best effort: where the file system cannot, the write allocates as usual.
            let _ = fallocate(
                &self.file,
                FallocateFlags::KEEP_SIZE,
                offset,
                data.len() as u64,
            );
        }
        self.file
            .write_all_at(data, offset)
            .map_err(|e| write_error(offset, self.bytes_written, e))?;
        self.bytes_written += data.len() as u64;
        if self.early_writeback {
            let end = offset + data.len() as u64;
            self.unflushed += data.len() as u64;
            self.unflushed_range = Some(match self.unflushed_range.take() {
                Some(r) => r.start.min(offset)..r.end.max(end),
                None => offset..end,
            });
            if self.unflushed >= WRITEBACK_EVERY {
                self.start_writeback();
            }
        }
        Ok(())
    }

    /// Make `len` bytes at `offset` read as zeros (deferred and coalesced).
    pub fn zero(&mut self, offset: u64, len: u64) -> Result<(), SparseError> {
        if len == 0 {
            return Ok(());
        }
        match &mut self.pending {
            Some(r) if r.end == offset => r.end += len,
            _ => {
                self.flush_zeros()?;
                self.pending = Some(offset..offset + len);
            }
        }
        Ok(())
    }

    /// Apply the pending zero range.
    pub fn flush_zeros(&mut self) -> Result<(), SparseError> {
        let Some(r) = self.pending.take() else {
            return Ok(());
        };
        match &self.target {
            Target::File { old_len } => {
                let end = r.end.min(*old_len);
                if r.start < end {
                    punch(&self.file, r.start, end - r.start)
                        .map_err(|e| write_error(r.start, self.bytes_written, e))?;
                }
            }
            Target::Device {
                zero: DeviceZero::AssumeZero,
                ..
            } => {}
            Target::Device { dev, zero } => {
                // The ioctls need sector-aligned ranges: write the edges.
                let start = r.start.next_multiple_of(SECTOR).min(r.end);
                let end = (r.end / SECTOR * SECTOR).max(start);
                self.write_zeros(r.start..start)?;
                if start < end {
                    let res = match zero {
                        DeviceZero::Discard => dev.discard(start, end - start),
                        _ => dev.zero_out(start, end - start),
                    };
                    let op = if *zero == DeviceZero::Discard {
                        "BLKDISCARD"
                    } else {
                        "BLKZEROOUT"
                    };
                    res.map_err(|source| SparseError::Device {
                        op,
                        offset: start,
                        source,
                    })?;
                }
                self.write_zeros(end..r.end)?;
            }
        }
        Ok(())
    }

    fn write_zeros(&self, r: Range<u64>) -> Result<(), SparseError> {
        let zeros = [0u8; SECTOR as usize];
        let mut off = r.start;
        while off < r.end {
            let n = (r.end - off).min(SECTOR) as usize;
            self.file
                .write_all_at(&zeros[..n], off)
                .map_err(|e| write_error(off, self.bytes_written, e))?;
            off += n as u64;
        }
        Ok(())
    }

    /// Have DST's dirty pages written to the disk while the copy goes on, so that the
    /// final sync finds little left to write. `sync_file_range` builds the writes in the
    /// calling thread, so a helper thread calls it, on the CPU the copy leaves idle; a
    /// request while it is busy waits to be folded into the next one. Each call covers
    /// only what was written since the last, so the helper never holds the copy's end up
    /// for long. The helper ends when DST is dropped. Advisory: errors show up, if at
    /// all, in that sync.
    fn start_writeback(&mut self) {
        use std::os::fd::AsRawFd;
        if self.writeback.is_none() {
            let Ok(file) = self.file.try_clone() else {
                return;
            };
            let (tx, rx) = std::sync::mpsc::sync_channel::<Range<u64>>(1);
            let spawned = std::thread::Builder::new()
                .name("writeback".into())
                .spawn(move || {
                    // SAFETY: sets this thread's own policy; the parameter is valid.
                    unsafe {
                        let p = libc::sched_param { sched_priority: 0 };
                        libc::sched_setscheduler(0, libc::SCHED_IDLE, &p);
                    }
                    while let Ok(r) = rx.recv() {
                        // SAFETY: a plain syscall on a descriptor this thread owns.
                        unsafe {
                            libc::sync_file_range(
                                file.as_raw_fd(),
                                r.start as libc::off64_t,
                                (r.end - r.start) as libc::off64_t,
                                libc::SYNC_FILE_RANGE_WRITE,
                            )
                        };
                    }
                });
            if spawned.is_err() {
                return;
            }
            self.writeback = Some(tx);
        }
        if let (Some(tx), Some(r)) = (&self.writeback, self.unflushed_range.clone())
            && tx.try_send(r).is_ok()
        {
            self.unflushed = 0;
            self.unflushed_range = None;
        }
    }
}

/// Punch a hole; where the file system cannot, write zeros.
fn punch(file: &File, offset: u64, len: u64) -> io::Result<()> {
    match fallocate(
        file,
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        offset,
        len,
    ) {
        Ok(()) => Ok(()),
        Err(Errno::OPNOTSUPP) => {
            let zeros = vec![0u8; 1 << 16];
            let mut off = offset;
            while off < offset + len {
                let n = (offset + len - off).min(zeros.len() as u64) as usize;
                file.write_all_at(&zeros[..n], off)?;
                off += n as u64;
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// A failed write: running out of space is its own error, saying how far we got, and so
/// is passing the largest file the filesystem allows.
pub fn write_error(offset: u64, written: u64, e: io::Error) -> SparseError {
    match e.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => SparseError::NoSpace {
            offset,
            written,
            source: e,
        },
        Some(libc::EFBIG) => SparseError::FileTooBig {
            offset,
            reason: e.to_string(),
        },
        _ => SparseError::DstWrite { offset, source: e },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_filesystem_and_a_too_large_file_are_told_apart() {
        let e = write_error(8, 4, io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(
            e.to_string()
                .starts_with("no space left on DST at offset 8 after writing 4 bytes"),
            "{e}"
        );
        let e = write_error(8, 4, io::Error::from_raw_os_error(libc::EFBIG));
        assert_eq!(
            e.to_string(),
            "DST cannot reach byte 8: File too large (os error 27)"
        );
    }

    #[test]
    fn writeback_starts_during_the_copy_only_when_a_sync_follows() {
        for synced in [false, true] {
            let file = tempfile::tempfile().unwrap();
            let mut out = Output::new(file, Target::File { old_len: 0 }, synced);
            let block = vec![7u8; 1 << 20];
            for i in 0..(WRITEBACK_EVERY >> 20) + 1 {
                out.write(i << 20, &block).unwrap();
            }
            assert_eq!(out.writeback.is_some(), synced, "synced {synced}");
            assert_eq!(out.bytes_written, WRITEBACK_EVERY + (1 << 20));
            let mut back = vec![0u8; 1 << 20];
            out.file.read_exact_at(&mut back, WRITEBACK_EVERY).unwrap();
            assert_eq!(back, block);
        }
    }
}
