//! SRC as a sequence of pieces: holes (known without reading) and data.
//!
//! A regular file or block device is read only where its extent map says
//! there is data: through a read-only mapping, with a helper thread finding
//! zero blocks ahead of the writes (or, for verification and where mapping
//! fails, with `pread`s into one reused buffer). Anything else (stdin, a
//! pipe, a character device, or a compressed file) is a stream, sniffed for
//! gzip/zstd/xz: a compressed one is decoded by a reader thread that fills
//! buffers while the caller writes the previous ones, so decompression and
//! writing overlap on two cores; a plain one is read inline in small chunks. A stream
//! that may block for ever (a pipe, a terminal) is read only once it has data, so a
//! request to stop ([`crate::interrupt`]) is noticed while it is idle.

use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use super::extents::data_extents;
use super::zero::is_zero;
use super::{CopyPlan, Source, SparseError};
use crate::disk::blockdev::{BlockDevice, RealDevice};
use crate::disk::sniff::{self, Compression};

/// Size of every read and of every buffer handed between threads.
pub const CHUNK: usize = 1 << 20;
/// Reads of an uncompressed stream: small enough to stay in cache between
/// the read, the zero check and the write.
const PLAIN_CHUNK: usize = 128 << 10;
/// Buffers in flight between the reader thread and the writer.
const DEPTH: usize = 4;

/// One step through SRC.
pub enum Piece<'a> {
    /// This many bytes that read as zeros, known without reading them.
    Hole(u64),
    /// The next bytes of SRC.
    Data(&'a [u8]),
}

/// Identifies the file behind SRC, to refuse copying a file onto itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// A file, by its filesystem's device and its inode number.
    Inode {
        /// The device of the filesystem holding it.
        dev: u64,
        /// Its inode number.
        ino: u64,
    },
    /// A block device, by its device number.
    Device {
        /// The device number it stands for.
        rdev: u64,
    },
}

impl Identity {
    /// The identity of the file `meta` describes.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        if meta.file_type().is_block_device() {
            Identity::Device { rdev: meta.rdev() }
        } else {
            Identity::Inode {
                dev: meta.dev(),
                ino: meta.ino(),
            }
        }
    }
}

/// An opened SRC.
pub struct Input {
    /// SRC's identity, if it is a file or device.
    pub identity: Option<Identity>,
    /// Bytes the region holds, if known before reading (not for streams).
    pub len: Option<u64>,
    /// Bytes actually read from SRC (data pieces; holes are not read).
    pub bytes_read: u64,
    /// Whether SRC can be opened and read again (a file or device), to verify the copy.
    pub rereadable: bool,
    kind: Kind,
}

enum Kind {
    Scanned(Scanned),
    Mapped(Mapped),
    Plain(Plain),
    Stream(Stream),
}

/// An uncompressed stream, read in the copy loop's own thread: handing
/// buffers to another thread measured slower behind a pipe.
struct Plain {
    reader: Box<dyn Read + Send>,
    skip: u64,
    left: u64,
    pos: u64,
    buf: Vec<u8>,
}

/// A file read with `pread` into one buffer, extent by extent.
struct Mapped {
    file: File,
    pos: u64,
    end: u64,
    extents: std::vec::IntoIter<Range<u64>>,
    current: Option<Range<u64>>,
    buf: Vec<u8>,
}

/// A mapped file whose zero blocks a helper thread finds ahead of the copy
/// loop, so scanning (and faulting pages in) overlaps with writing. Data comes
/// straight from the page cache through the mapping: no copy.
struct Scanned {
    map: Arc<Map>,
    rx: Receiver<Batch>,
    runs: std::vec::IntoIter<Run>,
}

/// The runs of one chunk of SRC, in order, and the bytes read to find them.
struct Batch {
    runs: Vec<Run>,
    read: u64,
}

/// A stretch of SRC that is all data (some non-zero block) or all zeros.
struct Run {
    range: Range<u64>,
    data: bool,
}

/// Chunks the scanning helper may run ahead of the copy loop.
const AHEAD: usize = 8;

/// A read-only shared mapping of the whole of SRC.
///
/// Only data extents are touched. Should another process shrink SRC during
/// the copy, touching the lost pages raises SIGBUS: the price of not copying
/// every byte through a buffer.
struct Map {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: a read-only mapping; any thread may read it while it exists.
unsafe impl Send for Map {}
// SAFETY: as above, nothing ever writes through it.
unsafe impl Sync for Map {}

impl Map {
    fn new(file: &File, len: u64) -> Option<Map> {
        use std::os::fd::AsRawFd;
        let len = usize::try_from(len).ok().filter(|&l| l > 0)?;
        // SAFETY: a fresh read-only mapping of an open file; checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        (ptr != libc::MAP_FAILED).then_some(Map { ptr, len })
    }

    fn slice(&self, range: Range<u64>) -> &[u8] {
        let (start, end) = (range.start as usize, range.end as usize);
        assert!(
            start <= end && end <= self.len,
            "mapped range out of bounds"
        );
        // SAFETY: within the mapping, which lives as long as `self`.
        unsafe { std::slice::from_raw_parts((self.ptr as *const u8).add(start), end - start) }
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

struct Stream {
    rx: Receiver<Result<Vec<u8>, SparseError>>,
    recycle: SyncSender<Vec<u8>>,
    current: Option<Vec<u8>>,
    thread: Option<JoinHandle<()>>,
}

impl Input {
    /// Open the plan's SRC at its `skip`, limited to its `count`. With
    /// `use_extents` false, a file is read in full (holes included), which is
    /// what verification wants.
    pub fn open(plan: &CopyPlan, use_extents: bool) -> Result<Input, SparseError> {
        let path = match &plan.src {
            Source::Stdin => return Self::stdin(plan),
            Source::Path(p) => p,
        };
        let src_err = |e| SparseError::SrcOpen {
            path: path.clone(),
            source: e,
        };
        let (file, meta) = crate::disk::open_for_reading(path).map_err(src_err)?;
        let identity = Some(Identity::of(&meta));
        let Some(size) = known_size(&file, &meta).map_err(src_err)? else {
            grow_pipe(&file);
            return Self::stream(Box::new(Interruptible(file)), identity, plan, false);
        };
        if is_compressed(&file).map_err(src_err)? {
            return Self::stream(Box::new(file), identity, plan, true);
        }
        if plan.skip > size {
            return Err(SparseError::SkipPastEnd {
                skip: plan.skip,
                len: size,
            });
        }
        Self::region(plan, file, size, identity, use_extents).map_err(src_err)
    }

    /// Standard input, always a stream.
    fn stdin(plan: &CopyPlan) -> Result<Input, SparseError> {
        grow_pipe(io::stdin());
        // stdin redirected from a file still must not be DST.
        let identity = rustix::fs::fstat(io::stdin())
            .ok()
            .filter(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_file())
            .map(|st| Identity::Inode {
                dev: st.st_dev,
                ino: st.st_ino,
            });
        Self::stream(Box::new(Interruptible(io::stdin())), identity, plan, false)
    }

    /// The plan's region of an uncompressed file or device of `size` bytes: mapped and
    /// scanned ahead by a helper thread, or (for verification, or where mapping fails)
    /// read with `pread`s.
    fn region(
        plan: &CopyPlan,
        file: File,
        size: u64,
        identity: Option<Identity>,
        use_extents: bool,
    ) -> io::Result<Input> {
        let start = plan.skip.min(size);
        let end = plan
            .count
            .map_or(size, |c| start.saturating_add(c).min(size));
        let extents = if use_extents {
            data_extents(&file, start..end)?
        } else {
            std::iter::once(start..end).collect()
        };
        let map = if use_extents {
            Map::new(&file, size)
        } else {
            None
        };
        let kind = match map {
            Some(map) => {
                // Blocks follow DST's grid: SRC offset o lands at o + seek - skip.
                let bs = plan.block_size as u64;
                let shift = (plan.seek % bs + bs - plan.skip % bs) % bs;
                Kind::Scanned(Scanned::start(
                    Arc::new(map),
                    extents,
                    start..end,
                    shift,
                    bs,
                ))
            }
            None => Kind::Mapped(Mapped {
                file,
                pos: start,
                end,
                extents: extents.into_iter(),
                current: None,
                buf: vec![0u8; CHUNK],
            }),
        };
        Ok(Input {
            identity,
            len: Some(end - start),
            bytes_read: 0,
            rereadable: true,
            kind,
        })
    }

    /// A stream: sniffed here; decompressed in a reader thread, or read inline.
    /// `rereadable`: whether it can be opened again (a compressed file).
    fn stream(
        mut raw: Box<dyn Read + Send>,
        identity: Option<Identity>,
        plan: &CopyPlan,
        rereadable: bool,
    ) -> Result<Input, SparseError> {
        let mut head = [0u8; sniff::MAGIC_LEN];
        let n = fill(&mut raw, &mut head).map_err(|e| SparseError::SrcRead {
            offset: 0,
            source: e,
        })?;
        let format = sniff::compression(&head[..n]);
        let chained = io::Cursor::new(head[..n].to_vec()).chain(raw);
        let (skip, count) = (plan.skip, plan.count);
        let reader: Box<dyn Read + Send> = match format {
            None => {
                let left = count.unwrap_or(u64::MAX);
                let buf = vec![0u8; PLAIN_CHUNK];
                let plain = Plain {
                    reader: Box::new(chained),
                    skip,
                    left,
                    pos: 0,
                    buf,
                };
                return Ok(Input {
                    identity,
                    len: None,
                    bytes_read: 0,
                    rereadable,
                    kind: Kind::Plain(plain),
                });
            }
            Some(Compression::Gzip) => Box::new(flate2::read::MultiGzDecoder::new(chained)),
            Some(Compression::Zstd) => Box::new(
                zstd::stream::read::Decoder::new(chained)
                    .map_err(|e| stream_error(format, 0, e))?,
            ),
            Some(Compression::Xz) => Box::new(liblzma::read::XzDecoder::new_multi_decoder(chained)),
        };
        let (tx, rx) = sync_channel(DEPTH);
        let (recycle, spare) = sync_channel(DEPTH + 2);
        let thread = std::thread::spawn(move || pump(reader, format, skip, count, tx, spare));
        let stream = Stream {
            rx,
            recycle,
            current: None,
            thread: Some(thread),
        };
        Ok(Input {
            identity,
            len: None,
            bytes_read: 0,
            rereadable,
            kind: Kind::Stream(stream),
        })
    }

    /// Whether data comes in whole runs of a mapped file (cut only at 1 MiB chunks),
    /// rather than as a stream's reads.
    pub fn whole_runs(&self) -> bool {
        matches!(self.kind, Kind::Scanned(_))
    }

    /// The next piece of SRC, or `None` at its end.
    pub fn next_piece(&mut self) -> Result<Option<Piece<'_>>, SparseError> {
        match &mut self.kind {
            Kind::Scanned(s) => loop {
                if let Some(run) = s.runs.next() {
                    let len = run.range.end - run.range.start;
                    return Ok(Some(if run.data {
                        Piece::Data(s.map.slice(run.range))
                    } else {
                        Piece::Hole(len)
                    }));
                }
                match s.rx.recv() {
                    Ok(batch) => {
                        self.bytes_read += batch.read;
                        s.runs = batch.runs.into_iter();
                    }
                    Err(_) => return Ok(None),
                }
            },
            Kind::Mapped(m) => {
                let piece = m.next_piece()?;
                if let Some(Piece::Data(d)) = &piece {
                    self.bytes_read += d.len() as u64;
                }
                Ok(piece)
            }
            Kind::Plain(p) => {
                if p.skip > 0 {
                    p.pos = discard(&mut p.reader, p.skip, None)?;
                    p.skip = 0;
                }
                // One read, whatever it brings: waiting to fill a buffer from
                // a pipe costs a sleep and a wake-up per chunk.
                let want = p.left.min(PLAIN_CHUNK as u64) as usize;
                let n = loop {
                    match p.reader.read(&mut p.buf[..want]) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        r => break r.map_err(|e| stream_error(None, p.pos, e))?,
                    }
                };
                p.pos += n as u64;
                p.left -= n as u64;
                self.bytes_read += n as u64;
                Ok((n > 0).then(|| Piece::Data(&p.buf[..n])))
            }
            Kind::Stream(s) => {
                if let Some(buf) = s.current.take() {
                    // The reader may have finished; a closed channel is fine.
                    let _ = s.recycle.try_send(buf);
                }
                match s.rx.recv() {
                    Ok(Ok(buf)) => {
                        self.bytes_read += buf.len() as u64;
                        Ok(Some(Piece::Data(s.current.insert(buf))))
                    }
                    Ok(Err(e)) => Err(e),
                    Err(_) => {
                        if let Some(t) = s.thread.take() {
                            t.join().map_err(|_| {
                                SparseError::Internal("SRC reader thread panicked".into())
                            })?;
                        }
                        Ok(None)
                    }
                }
            }
        }
    }
}

impl Scanned {
    /// Start the helper that classifies `region` of the mapping into runs.
    fn start(
        map: Arc<Map>,
        extents: Vec<Range<u64>>,
        region: Range<u64>,
        shift: u64,
        bs: u64,
    ) -> Self {
        let (tx, rx) = sync_channel(AHEAD);
        let scan_map = map.clone();
        std::thread::spawn(move || {
            let mut pos = region.start;
            let mut pending = Vec::new();
            for ext in extents {
                if ext.start > pos {
                    pending.push(Run {
                        range: pos..ext.start,
                        data: false,
                    });
                }
                let mut chunk = ext.start;
                while chunk < ext.end {
                    let end = (chunk + CHUNK as u64).min(ext.end);
                    classify(&scan_map, chunk..end, shift, bs, &mut pending);
                    let runs = std::mem::take(&mut pending);
                    if tx
                        .send(Batch {
                            runs,
                            read: end - chunk,
                        })
                        .is_err()
                    {
                        return;
                    }
                    chunk = end;
                }
                pos = ext.end;
            }
            if pos < region.end {
                pending.push(Run {
                    range: pos..region.end,
                    data: false,
                });
            }
            let _ = tx.send(Batch {
                runs: pending,
                read: 0,
            });
        });
        Scanned {
            map,
            rx,
            runs: Vec::new().into_iter(),
        }
    }
}

/// Append `range`'s runs of data and zero blocks to `runs`, merging with the
/// last run where they continue it. Block `k` starts where `o + shift` is a
/// multiple of `bs`.
fn classify(map: &Map, range: Range<u64>, shift: u64, bs: u64, runs: &mut Vec<Run>) {
    let bytes = map.slice(range.clone());
    let mut o = range.start;
    while o < range.end {
        let next = ((o + shift) / bs + 1) * bs - shift;
        let next = next.min(range.end);
        let data = !is_zero(&bytes[(o - range.start) as usize..(next - range.start) as usize]);
        match runs.last_mut() {
            Some(r) if r.data == data && r.range.end == o => r.range.end = next,
            _ => runs.push(Run {
                range: o..next,
                data,
            }),
        }
        o = next;
    }
}

impl Mapped {
    fn next_piece(&mut self) -> Result<Option<Piece<'_>>, SparseError> {
        let ext = match self.current.take().filter(|r| r.start < r.end) {
            Some(r) => r,
            None => match self.extents.next() {
                Some(r) => r,
                None if self.pos < self.end => {
                    let hole = self.end - self.pos;
                    self.pos = self.end;
                    return Ok(Some(Piece::Hole(hole)));
                }
                None => return Ok(None),
            },
        };
        if ext.start > self.pos {
            let hole = ext.start - self.pos;
            self.pos = ext.start;
            self.current = Some(ext);
            return Ok(Some(Piece::Hole(hole)));
        }
        let len = (ext.end - ext.start).min(CHUNK as u64) as usize;
        let next = ext.start + len as u64;
        self.pos = next;
        self.current = Some(next..ext.end);
        let buf = &mut self.buf[..len];
        let n = read_at_most(&self.file, buf, ext.start).map_err(|e| SparseError::SrcRead {
            offset: ext.start,
            source: e,
        })?;
        if n < len {
            // The file shrank while we copied it.
            return Err(SparseError::SrcRead {
                offset: ext.start + n as u64,
                source: io::Error::new(io::ErrorKind::UnexpectedEof, "SRC ended early"),
            });
        }
        Ok(Some(Piece::Data(&self.buf[..len])))
    }
}

/// `pread` until `buf` is full or the end of the file.
fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// The size of a regular file or block device; `None` for anything else (a pipe, a
/// character device), which is read as a stream.
fn known_size(file: &File, meta: &std::fs::Metadata) -> io::Result<Option<u64>> {
    if meta.file_type().is_block_device() {
        RealDevice::new(file.try_clone()?).size().map(Some)
    } else if meta.is_file() {
        Ok(Some(meta.len()))
    } else {
        Ok(None)
    }
}

/// Whether the file starts with a gzip, zstd or xz magic number.
fn is_compressed(file: &File) -> io::Result<bool> {
    let mut head = [0u8; sniff::MAGIC_LEN];
    let n = read_at_most(file, &mut head, 0)?;
    Ok(sniff::compression(&head[..n]).is_some())
}

/// The reader thread: decompress, skip, and send full buffers.
fn pump(
    mut reader: Box<dyn Read + Send>,
    format: Option<Compression>,
    skip: u64,
    count: Option<u64>,
    tx: SyncSender<Result<Vec<u8>, SparseError>>,
    spare: Receiver<Vec<u8>>,
) {
    let mut pos = match discard(&mut reader, skip, format) {
        Ok(pos) => pos,
        Err(e) => {
            let _ = tx.send(Err(e));
            return;
        }
    };
    let mut left = count.unwrap_or(u64::MAX);
    let mut fresh = DEPTH + 2;
    while left > 0 {
        let mut buf = match spare.try_recv() {
            Ok(b) => b,
            Err(_) if fresh > 0 => {
                fresh -= 1;
                vec![0u8; CHUNK]
            }
            Err(_) => match spare.recv() {
                Ok(b) => b,
                Err(_) => return,
            },
        };
        buf.resize(left.min(CHUNK as u64) as usize, 0);
        match read_chunk(&mut reader, &mut buf, pos, format) {
            Ok(0) => return,
            Ok(n) => {
                buf.truncate(n);
                pos += n as u64;
                left -= n as u64;
                if tx.send(Ok(buf)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

/// Read and drop the first `skip` bytes; a stream that ends before is an error.
fn discard(
    reader: &mut dyn Read,
    skip: u64,
    format: Option<Compression>,
) -> Result<u64, SparseError> {
    let mut pos = 0u64;
    let mut sink = vec![0u8; CHUNK.min(skip as usize)];
    while pos < skip {
        let want = (skip - pos).min(sink.len() as u64) as usize;
        match read_chunk(reader, &mut sink[..want], pos, format)? {
            0 => return Err(SparseError::SkipPastEnd { skip, len: pos }),
            n => pos += n as u64,
        }
    }
    Ok(pos)
}

/// A stream that may block for ever (a pipe, a terminal, a character device), read only
/// once it has data or has ended: while it is idle, a request to stop
/// ([`crate::interrupt`]) is noticed within [`IDLE_CHECK`] and ends the read with an error.
struct Interruptible<R>(R);

/// How often an idle stream looks for a request to stop.
const IDLE_CHECK: rustix::event::Timespec = rustix::event::Timespec {
    tv_sec: 0,
    tv_nsec: 100_000_000,
};

impl<R: Read + AsFd> Read for Interruptible<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use rustix::event::{PollFd, PollFlags, poll};
        loop {
            if crate::interrupt::requested() {
                return Err(io::Error::other("interrupted"));
            }
            let mut fds = [PollFd::new(&self.0, PollFlags::IN)];
            match poll(&mut fds, Some(&IDLE_CHECK)) {
                Ok(0) | Err(rustix::io::Errno::INTR) => {}
                Ok(_) => return self.0.read(buf),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Pipe capacity asked for a SRC that is a pipe.
const PIPE_SIZE: usize = 256 << 10;

/// Grow SRC's pipe (if it is one) from the default 64 KiB to [`PIPE_SIZE`]. With the
/// default, the writer (`cat`, `zcat`) and this reader wake each other every 64 KiB,
/// and when they run on different CPUs each wake-up is an inter-processor interrupt:
/// `cat 4G | sparsecopy -` measured 2.6× faster with the larger pipe. Best effort:
/// a full per-user pipe quota leaves the pipe as it is.
fn grow_pipe(fd: impl std::os::fd::AsFd) {
    let is_fifo = rustix::fs::fstat(&fd).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Fifo
    });
    if is_fifo {
        let _ = rustix::pipe::fcntl_setpipe_size(&fd, PIPE_SIZE);
    }
}

/// Fill `buf` from the stream at output offset `pos`, naming errors by format.
fn read_chunk(
    reader: &mut dyn Read,
    buf: &mut [u8],
    pos: u64,
    format: Option<Compression>,
) -> Result<usize, SparseError> {
    fill(reader, buf).map_err(|e| stream_error(format, pos, e))
}

fn stream_error(format: Option<Compression>, at: u64, e: io::Error) -> SparseError {
    match format {
        Some(format) => SparseError::Corrupt {
            format,
            at,
            message: e.to_string(),
        },
        None => SparseError::SrcRead {
            offset: at,
            source: e,
        },
    }
}

/// `read` until `buf` is full or the end of the stream.
fn fill(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
