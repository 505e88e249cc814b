//! The copy loop: pieces of SRC in, data runs and zero runs out.
//!
//! [`copy_with`] opens SRC ([`super::input`]) and DST ([`super::output`]) and runs the
//! copy as named steps: the bounds DST allows, the pieces, DST's final size, the
//! verification, the backup GPT, the sync. It reports progress to its observer only and
//! never prints. A DST it creates has no name until the copy is complete
//! ([`crate::scratch::Unnamed`]): a failed, interrupted or killed copy leaves none. A
//! request to stop ([`crate::interrupt`]) ends the copy between two pieces.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;
use std::time::Instant;

use super::input::{CHUNK, Identity, Input, Piece};
use super::output::{DeviceZero, Output, Target, write_error};
use super::zero::is_zero;
use super::{CopyPlan, CopyStats, Progress, SparseError};
use crate::disk::blockdev::{self, RealDevice};
use crate::scratch::Unnamed;

/// The largest file offset: `off_t` is signed.
const MAX_OFFSET: u64 = i64::MAX as u64;

/// Why a copy past [`MAX_OFFSET`] is refused.
const LARGEST_OFFSET: &str = "past the largest file offset, 2^63 - 1";

/// Copy as the plan says, silently.
pub fn copy(plan: &CopyPlan) -> Result<CopyStats, SparseError> {
    copy_with(plan, &mut |_| {})
}

/// Copy as the plan says, reporting progress to `observer`.
pub fn copy_with(
    plan: &CopyPlan,
    observer: &mut dyn FnMut(Progress),
) -> Result<CopyStats, SparseError> {
    let started = Instant::now();
    let bs = plan.block_size;
    if !bs.is_power_of_two() || !(512..=CHUNK).contains(&bs) {
        return Err(SparseError::BadBlockSize(bs));
    }
    let input = Input::open(plan, true).map_err(|e| match e {
        // Asked to stop before anything was written.
        _ if crate::interrupt::requested() => SparseError::Interrupted {
            written: plan.dst.exists().then_some((plan.seek, plan.seek)),
        },
        e => e,
    })?;
    let (out, new) = open_dst(plan, input.identity)?;
    let mut stats = run(plan, input, out, observer).map_err(|e| match (e, &new) {
        // A DST this copy was creating is never linked: there is none.
        (SparseError::Interrupted { .. }, Some(_)) => SparseError::Interrupted { written: None },
        (e, _) => e,
    })?;
    if let Some(new) = new {
        new.link(&plan.dst, false).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                SparseError::DstAppeared(plan.dst.clone())
            } else {
                SparseError::DstOpen {
                    path: plan.dst.clone(),
                    source: e,
                }
            }
        })?;
    }
    stats.elapsed = started.elapsed();
    Ok(stats)
}

/// Opens DST: an existing file or block device, written in place, or a new file made in
/// DST's directory without a name, returned beside it to be linked once complete.
fn open_dst(
    plan: &CopyPlan,
    src: Option<Identity>,
) -> Result<(Output, Option<Unnamed>), SparseError> {
    let path = &plan.dst;
    let open_err = |e| SparseError::DstOpen {
        path: path.clone(),
        source: e,
    };
    let existing = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if path.symlink_metadata().is_ok() {
                return Err(open_err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "a symbolic link to nothing",
                )));
            }
            return new_dst(plan).map_err(open_err);
        }
        Err(e) => return Err(open_err(e)),
    };
    if existing.is_dir() {
        return Err(SparseError::DstIsDir(path.clone()));
    }
    if src.is_some() && src == Some(Identity::of(&existing)) {
        return Err(SparseError::SameFile(path.clone()));
    }
    if existing.file_type().is_block_device() {
        return Ok((open_device(plan, path, &existing)?, None));
    }
    if !existing.is_file() {
        return Err(SparseError::DstKind(path.clone()));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(open_err)?;
    let old_len = file.metadata().map_err(open_err)?.len();
    Ok((Output::new(file, Target::File { old_len }, plan.sync), None))
}

/// A new DST: a file without a name in DST's directory.
fn new_dst(plan: &CopyPlan) -> io::Result<(Output, Option<Unnamed>)> {
    let new = Unnamed::next_to(&plan.dst)?;
    let file = new.file().try_clone()?;
    let out = Output::new(file, Target::File { old_len: 0 }, plan.sync);
    Ok((out, Some(new)))
}

fn open_device(
    plan: &CopyPlan,
    path: &Path,
    meta: &std::fs::Metadata,
) -> Result<Output, SparseError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let open_err = |e| SparseError::DstOpen {
        path: path.to_path_buf(),
        source: e,
    };
    let mounts = std::fs::read_to_string("/proc/self/mounts").map_err(open_err)?;
    if let Some(mountpoint) =
        blockdev::mounted_on(meta.rdev(), &mounts, blockdev::resolve_block_source)
    {
        return Err(SparseError::Mounted {
            path: path.to_path_buf(),
            mountpoint,
        });
    }
    if plan.size.is_some() {
        return Err(SparseError::SizeOnDevice(path.to_path_buf()));
    }
    // O_EXCL on a block device fails with EBUSY while anything holds it.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_EXCL)
        .open(path)
        .map_err(open_err)?;
    let dev = RealDevice::new(file.try_clone().map_err(open_err)?);
    let zero = if plan.assume_zero {
        DeviceZero::AssumeZero
    } else if plan.discard {
        DeviceZero::Discard
    } else {
        DeviceZero::ZeroOut
    };
    Ok(Output::new(
        file,
        Target::Device {
            dev: Box::new(dev),
            zero,
        },
        true,
    ))
}

/// What happens when SRC's region would pass the end DST allows.
enum Limit {
    /// Nothing: a file DST grows as needed.
    None,
    /// The copy stops at this final size of a file DST (the plan allows cutting).
    Cut(u64),
    /// A file DST must end at this size and SRC must fit before it.
    SizeTooSmall(u64),
    /// A block device of this size: SRC must fit on it.
    Device(u64),
}

/// Where the copy may go in DST: starting at the seek offset, up to the limit (and never
/// past the largest file offset).
struct Bounds<'a> {
    /// DST's path, for messages.
    dst: &'a Path,
    /// Where in DST the copy starts.
    seek: u64,
    /// Where DST ends, or must end.
    limit: Limit,
}

impl<'a> Bounds<'a> {
    /// The bounds of `plan`'s copy into `out` (a device is asked its size). A final size
    /// that would cut an existing file DST short is refused unless the plan allows cutting.
    fn of(plan: &'a CopyPlan, out: &Output) -> Result<Bounds<'a>, SparseError> {
        let limit = match (&out.target, plan.size) {
            (Target::Device { dev, .. }, _) => {
                Limit::Device(dev.size().map_err(|source| SparseError::Device {
                    op: "BLKGETSIZE64",
                    offset: 0,
                    source,
                })?)
            }
            (Target::File { .. }, Some(size)) if size > MAX_OFFSET => {
                return Err(SparseError::FileTooBig {
                    offset: size,
                    reason: LARGEST_OFFSET.into(),
                });
            }
            (Target::File { .. }, Some(size)) if plan.truncate => Limit::Cut(size),
            (Target::File { old_len }, Some(size)) if size < *old_len => {
                return Err(SparseError::WouldShorten {
                    size,
                    len: *old_len,
                });
            }
            (Target::File { .. }, Some(size)) => Limit::SizeTooSmall(size),
            (Target::File { .. }, None) => Limit::None,
        };
        Ok(Bounds {
            dst: &plan.dst,
            seek: plan.seek,
            limit,
        })
    }

    /// Refuses `needed` bytes of SRC at the seek offset if they pass DST's end.
    fn check(&self, needed: u64) -> Result<(), SparseError> {
        let seek = self.seek;
        if seek.saturating_add(needed) > MAX_OFFSET {
            return Err(SparseError::FileTooBig {
                offset: seek.saturating_add(needed),
                reason: LARGEST_OFFSET.into(),
            });
        }
        match self.limit {
            Limit::SizeTooSmall(size) if seek.saturating_add(needed) > size => {
                Err(SparseError::SizeTooSmall { size, needed, seek })
            }
            Limit::Device(size) if seek.saturating_add(needed) > size => {
                Err(SparseError::TooLarge {
                    path: self.dst.to_path_buf(),
                    needed,
                    seek,
                    size,
                })
            }
            _ => Ok(()),
        }
    }

    /// The most bytes of SRC to copy.
    fn max(&self) -> u64 {
        match self.limit {
            Limit::Cut(size) => size.saturating_sub(self.seek),
            _ => u64::MAX,
        }
    }

    /// The size of a device DST.
    fn device_size(&self) -> Option<u64> {
        match self.limit {
            Limit::Device(size) => Some(size),
            _ => None,
        }
    }
}

/// The copy proper, once SRC and DST are open: check the bounds, copy the pieces, give a
/// file DST its final size, verify, move a backup GPT to the end, sync.
pub(super) fn run(
    plan: &CopyPlan,
    mut input: Input,
    mut out: Output,
    observer: &mut dyn FnMut(Progress),
) -> Result<CopyStats, SparseError> {
    let bounds = Bounds::of(plan, &out)?;
    bounds.check(input.len.unwrap_or(0))?;
    out.preallocate = matches!(out.target, Target::File { .. }) && input.whole_runs();
    let Copied { done, crcs } = copy_pieces(plan, &mut input, &mut out, &bounds, observer)?;
    let bytes_read = input.bytes_read;
    drop(input);
    let end = plan.seek + done;
    let dst_size = final_size(plan, &out, &bounds, end)?;
    // Verify first: moving the backup GPT clears its old copy inside the region.
    if plan.verify {
        verify(plan, &out.file, done, crcs)?;
    }
    let mut gpt_relocated = false;
    if plan.seek == 0 && plan.skip == 0 && dst_size > done {
        gpt_relocated = crate::disk::gpt::relocate_backup(&out.file, done, dst_size)
            .map_err(SparseError::Gpt)?;
    }
    let mut warnings = Vec::new();
    sync_dst(plan, &out, end, &mut warnings)?;
    Ok(CopyStats {
        bytes_read,
        bytes_written: out.bytes_written,
        bytes_skipped: done - out.bytes_written,
        copied: done,
        dst_size,
        elapsed: Default::default(),
        gpt_relocated,
        warnings,
    })
}

/// What the copy loop did.
struct Copied {
    /// Bytes of SRC's region copied.
    done: u64,
    /// For a SRC that is to be verified but cannot be read again (stdin, a pipe, a
    /// character device): (DST offset, length, CRC32) of each data piece.
    crcs: Option<Vec<(u64, u64, u32)>>,
}

/// Copies SRC's pieces into DST within `bounds`: holes become zero ranges, data is
/// written block by block; `observer` hears after every piece. A request to stop ends
/// the copy with [`SparseError::Interrupted`], DST written up to the piece before.
fn copy_pieces(
    plan: &CopyPlan,
    input: &mut Input,
    out: &mut Output,
    bounds: &Bounds,
    observer: &mut dyn FnMut(Progress),
) -> Result<Copied, SparseError> {
    let seek = plan.seek;
    let max = bounds.max();
    let total = input.len.map(|l| l.min(max));
    let mut crcs = (plan.verify && !input.rereadable).then(Vec::new);
    let mut done = 0u64;
    while done < max {
        let piece = match input.next_piece() {
            _ if crate::interrupt::requested() => return Err(interrupted(out, seek, done)),
            Ok(Some(piece)) => piece,
            Ok(None) => break,
            Err(e) => return Err(e),
        };
        let len = match &piece {
            Piece::Hole(n) => *n,
            Piece::Data(d) => d.len() as u64,
        };
        let take = len.min(max - done);
        bounds.check(done + take)?;
        match piece {
            Piece::Hole(_) => out.zero(seek + done, take)?,
            Piece::Data(d) => {
                let d = &d[..take as usize];
                if let Some(crcs) = &mut crcs {
                    crcs.push((seek + done, take, crc32fast::hash(d)));
                }
                write_blocks(out, seek + done, d, plan.block_size as u64)?;
            }
        }
        done += take;
        observer(Progress { done, total });
    }
    out.flush_zeros()?;
    Ok(Copied { done, crcs })
}

/// The error of a copy asked to stop after `done` bytes at `seek`: DST was written from
/// `seek` to `seek + done` (the pending zero range flushed first, so that it holds).
fn interrupted(out: &mut Output, seek: u64, done: u64) -> SparseError {
    let _ = out.flush_zeros();
    SparseError::Interrupted {
        written: Some((seek, seek + done)),
    }
}

/// Gives a file DST its final size (the plan's `size`, the copy's `end`, or at least its
/// old length) and returns DST's size: a device's is its own.
fn final_size(
    plan: &CopyPlan,
    out: &Output,
    bounds: &Bounds,
    end: u64,
) -> Result<u64, SparseError> {
    let old_len = match (&out.target, bounds.device_size()) {
        (_, Some(size)) => return Ok(size),
        (Target::File { old_len }, None) => *old_len,
        (Target::Device { .. }, None) => unreachable!("a device always has a size"),
    };
    let want = match plan.size {
        Some(size) => size,
        None if plan.truncate => end,
        None => end.max(old_len),
    };
    let now = out
        .file
        .metadata()
        .map_err(|e| write_error(end, out.bytes_written, e))?
        .len();
    if now != want {
        out.file
            .set_len(want)
            .map_err(|e| write_error(want, out.bytes_written, e))?;
    }
    Ok(want)
}

/// Makes the copy durable: a device is always flushed and its partition table re-read (a
/// failure there is a warning); a file only when the plan syncs.
fn sync_dst(
    plan: &CopyPlan,
    out: &Output,
    end: u64,
    warnings: &mut Vec<String>,
) -> Result<(), SparseError> {
    let sync = || {
        out.file
            .sync_all()
            .map_err(|e| write_error(end, out.bytes_written, e))
    };
    match &out.target {
        Target::Device { dev, .. } => {
            sync()?;
            if let Err(e) = dev.reread_partitions() {
                warnings.push(format!(
                    "could not re-read the partition table (BLKRRPART): {e}"
                ));
            }
        }
        Target::File { .. } if plan.sync => sync()?,
        Target::File { .. } => {}
    }
    Ok(())
}

/// Write the non-zero blocks of `data` (which goes at DST `offset`) and zero
/// the rest. Blocks are aligned to DST offsets, so holes land on block
/// boundaries; data runs are written straight from SRC's buffer.
fn write_blocks(out: &mut Output, offset: u64, data: &[u8], bs: u64) -> Result<(), SparseError> {
    let mut run: Option<usize> = None;
    let mut i = 0usize;
    while i < data.len() {
        let abs = offset + i as u64;
        let next = ((abs / bs + 1) * bs - offset).min(data.len() as u64) as usize;
        let block = &data[i..next];
        if is_zero(block) {
            if let Some(s) = run.take() {
                out.write(offset + s as u64, &data[s..i])?;
            }
            out.zero(abs, block.len() as u64)?;
        } else if run.is_none() {
            run = Some(i);
        }
        i = next;
    }
    if let Some(s) = run {
        out.write(offset + s as u64, &data[s..])?;
    }
    Ok(())
}

/// Compare DST with SRC again. A file or device is re-read (and re-decompressed); a SRC
/// that cannot be read again (stdin, a pipe) has its per-chunk CRCs, recorded during the
/// copy, compared.
fn verify(
    plan: &CopyPlan,
    dst: &File,
    copied: u64,
    crcs: Option<Vec<(u64, u64, u32)>>,
) -> Result<(), SparseError> {
    let read_dst = |buf: &mut [u8], off: u64| {
        dst.read_exact_at(buf, off)
            .map_err(|e| SparseError::DstWrite {
                offset: off,
                source: e,
            })
    };
    let mut theirs = vec![0u8; CHUNK];
    if let Some(crcs) = crcs {
        for (off, len, crc) in crcs {
            let buf = &mut theirs[..len as usize];
            read_dst(buf, off)?;
            if crc32fast::hash(buf) != crc {
                return Err(SparseError::MismatchIn {
                    start: off,
                    end: off + len,
                });
            }
        }
        return Ok(());
    }
    let again = CopyPlan {
        count: Some(copied),
        ..plan.clone()
    };
    let mut input = Input::open(&again, false)?;
    let mut off = plan.seek;
    while let Some(piece) = input.next_piece()? {
        let Piece::Data(ours) = piece else {
            return Err(SparseError::Internal("verify read a hole".into()));
        };
        let buf = &mut theirs[..ours.len()];
        read_dst(buf, off)?;
        if let Some(i) = ours.iter().zip(buf.iter()).position(|(a, b)| a != b) {
            return Err(SparseError::Mismatch {
                offset: off + i as u64,
            });
        }
        off += ours.len() as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::blockdev::BlockDevice;
    use crate::sparsecopy::Source;
    use std::sync::{Arc, Mutex};

    /// A block device made of a regular file; records every ioctl.
    struct FakeDevice {
        file: File,
        size: u64,
        calls: Arc<Mutex<Vec<String>>>,
    }

    impl BlockDevice for FakeDevice {
        fn size(&self) -> io::Result<u64> {
            Ok(self.size)
        }
        fn zero_out(&self, offset: u64, len: u64) -> io::Result<()> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("zeroout {offset}+{len}"));
            self.file.write_all_at(&vec![0u8; len as usize], offset)
        }
        fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("discard {offset}+{len}"));
            self.file.write_all_at(&vec![0u8; len as usize], offset)
        }
        fn reread_partitions(&self) -> io::Result<()> {
            self.calls.lock().unwrap().push("rereadpt".into());
            Ok(())
        }
    }

    const DEV: u64 = 1 << 20;

    /// SRC: 4 KiB data, 8 KiB explicit zeros, a 16 KiB hole, 1000 bytes data.
    fn src(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
        let mut bytes = vec![0u8; 4096 + 8192 + 16384 + 1000];
        bytes[..4096].fill(0x11);
        bytes[28672..].fill(0x22);
        let path = dir.join("src");
        let f = File::create(&path).unwrap();
        f.write_all_at(&bytes[..4096 + 8192], 0).unwrap();
        f.write_all_at(&bytes[28672..], 28672).unwrap();
        (path, bytes)
    }

    fn copy_to_fake(
        plan: &CopyPlan,
        zero: DeviceZero,
    ) -> (Result<CopyStats, SparseError>, Vec<u8>, Vec<String>) {
        let backing = tempfile::tempfile().unwrap();
        backing
            .write_all_at(&vec![0xaau8; DEV as usize], 0)
            .unwrap();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let dev = FakeDevice {
            file: backing.try_clone().unwrap(),
            size: DEV,
            calls: calls.clone(),
        };
        let out = Output::new(
            backing.try_clone().unwrap(),
            Target::Device {
                dev: Box::new(dev),
                zero,
            },
            true,
        );
        let input = Input::open(plan, true).unwrap();
        let res = run(plan, input, out, &mut |_| {});
        let mut content = vec![0u8; DEV as usize];
        backing.read_exact_at(&mut content, 0).unwrap();
        let calls = calls.lock().unwrap().clone();
        (res, content, calls)
    }

    #[test]
    fn device_zero_ranges_use_the_ioctl_with_written_unaligned_edges() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes) = src(dir.path());
        let seek = 8192 + 100;
        let plan = CopyPlan {
            seek,
            ..CopyPlan::new(Source::Path(path), "/dev/fake")
        };
        for (zero, op) in [
            (DeviceZero::ZeroOut, "zeroout"),
            (DeviceZero::Discard, "discard"),
        ] {
            let (res, content, calls) = copy_to_fake(&plan, zero);
            let stats = res.unwrap();
            assert_eq!(stats.dst_size, DEV);
            // Blocks follow DST's 4 KiB grid: data lands in DST 8292..12388, so
            // blocks 8292..12288 and 12288..16384 are written, then the tail.
            assert_eq!(stats.bytes_written, 3996 + 4096 + 1000);
            let s = seek as usize;
            assert_eq!(
                &content[s..s + bytes.len()],
                &bytes[..],
                "{op}: region equals SRC"
            );
            assert!(
                content[..s].iter().all(|&b| b == 0xaa),
                "{op}: before the region untouched"
            );
            assert!(
                content[s + bytes.len()..].iter().all(|&b| b == 0xaa),
                "{op}: after untouched"
            );
            // Zeros and the hole: DST 16384..36964; the ioctl takes the
            // sector-aligned 16384..36864, the 100-byte edge is written.
            assert_eq!(
                calls,
                vec![format!("{op} 16384+20480"), "rereadpt".to_string()]
            );
        }
    }

    #[test]
    fn assume_zero_leaves_zero_ranges_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes) = src(dir.path());
        let plan = CopyPlan::new(Source::Path(path), "/dev/fake");
        let (res, content, calls) = copy_to_fake(&plan, DeviceZero::AssumeZero);
        res.unwrap();
        assert_eq!(calls, vec!["rereadpt".to_string()]);
        assert_eq!(&content[..4096], &bytes[..4096]);
        assert!(
            content[4096..28672].iter().all(|&b| b == 0xaa),
            "zero ranges not written"
        );
        assert_eq!(&content[28672..bytes.len()], &bytes[28672..]);
    }

    #[test]
    fn a_source_larger_than_the_device_is_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = src(dir.path());
        let plan = CopyPlan {
            seek: DEV - 4096,
            ..CopyPlan::new(Source::Path(path), "/dev/fake")
        };
        let (res, content, calls) = copy_to_fake(&plan, DeviceZero::ZeroOut);
        assert_eq!(
            res.unwrap_err().to_string(),
            "SRC does not fit: 29672 bytes needed at seek offset 1044480, but DST device /dev/fake has 1048576 bytes"
        );
        assert!(content.iter().all(|&b| b == 0xaa));
        assert!(calls.is_empty());
    }

    #[test]
    fn verify_reports_the_first_differing_offset() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes) = src(dir.path());
        let dst = tempfile::tempfile().unwrap();
        dst.write_all_at(&bytes, 100).unwrap();
        let plan = CopyPlan {
            seek: 100,
            ..CopyPlan::new(Source::Path(path), "dst")
        };
        let len = bytes.len() as u64;
        verify(&plan, &dst, len, None).unwrap();
        dst.write_all_at(&[0x33], 100 + 20000).unwrap();
        dst.write_all_at(&[0x33], 100 + 29000).unwrap();
        assert_eq!(
            verify(&plan, &dst, len, None).unwrap_err().to_string(),
            "verify failed: DST differs from SRC at DST offset 20100"
        );
        // Stdin cannot be re-read: per-chunk CRCs locate the difference.
        let crcs = vec![
            (100, 16384, crc32fast::hash(&bytes[..16384])),
            (16484, len - 16384, crc32fast::hash(&bytes[16384..])),
        ];
        assert_eq!(
            verify(&plan, &dst, len, Some(crcs))
                .unwrap_err()
                .to_string(),
            format!(
                "verify failed: DST differs from SRC within DST bytes 16484..{}",
                100 + len
            )
        );
    }

    #[test]
    fn a_src_that_cannot_be_read_again_is_verified_against_its_digests() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let (r, w) = rustix::pipe::pipe().unwrap();
        let data = vec![0x5au8; 3 << 20];
        let sent = data.clone();
        let writer = std::thread::spawn(move || File::from(w).write_all(&sent));
        // A path to a pipe, as `/dev/stdin` or a process substitution is.
        let src = std::path::PathBuf::from(format!("/proc/self/fd/{}", r.as_raw_fd()));
        let plan = CopyPlan {
            verify: true,
            ..CopyPlan::new(Source::Path(src), dir.path().join("dst"))
        };
        let mut input = Input::open(&plan, true).unwrap();
        assert!(!input.rereadable);
        let (mut out, _new) = open_dst(&plan, input.identity).unwrap();
        let bounds = Bounds::of(&plan, &out).unwrap();
        let copied = copy_pieces(&plan, &mut input, &mut out, &bounds, &mut |_| {}).unwrap();
        writer.join().unwrap().unwrap();
        assert_eq!(copied.done, data.len() as u64);
        verify(&plan, &out.file, copied.done, copied.crcs.clone()).unwrap();
        // DST corrupted after the copy: reading the pipe again would see nothing and
        // pass; the digests kept during the copy see the difference.
        out.file.write_all_at(b"X", 2 << 20).unwrap();
        let e = verify(&plan, &out.file, copied.done, copied.crcs).unwrap_err();
        assert!(matches!(e, SparseError::MismatchIn { .. }), "{e}");
    }

    #[test]
    fn observers_see_progress_up_to_the_total() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes) = src(dir.path());
        let plan = CopyPlan::new(Source::Path(path), dir.path().join("dst"));
        let mut seen = Vec::new();
        let stats = copy_with(&plan, &mut |p| seen.push(p)).unwrap();
        let total = Some(bytes.len() as u64);
        assert!(seen.windows(2).all(|w| w[0].done < w[1].done), "{seen:?}");
        assert!(seen.iter().all(|p| p.total == total));
        assert_eq!(seen.last().map(|p| p.done), Some(stats.copied));
        assert_eq!(stats.copied, bytes.len() as u64);
    }
}
