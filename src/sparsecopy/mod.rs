//! sparsecopy: copy disk images keeping holes, like `dd` but sparse-aware.
//!
//! [`copy`] takes a [`CopyPlan`] and returns [`CopyStats`]. SRC is read only
//! where it has data ([`extents`]), or streamed (stdin, pipes, gzip/zstd/xz by
//! magic, [`input`]); every block is checked for zeros ([`zero`]) and only
//! non-zero blocks are written ([`output`]), so DST holds holes wherever SRC
//! is zero. Block devices are reached through [`crate::disk::blockdev`]. This module never
//! prints: progress goes to an observer ([`copy_with`]) as [`Progress`] events; the
//! terminal bar is the command line's (`crate::cli::progress`).
//!
//! DST semantics: DST is never truncated unless asked. Bytes outside
//! `[seek, seek + copied)` are untouched; a file DST ends at
//! `max(old size, seek + copied)`, or exactly `size` if given and not shorter than it
//! was; `truncate` lets it end at `seek + copied` (or `size`) even if that cuts SRC or
//! DST. A DST the copy creates appears only once complete; one that existed is written in
//! place, and an interrupted copy says how far.

mod engine;
pub mod extents;
pub mod input;
pub mod output;
pub mod zero;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

pub use engine::{copy, copy_with};

use crate::disk::sniff::Compression;

/// Where the bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file or block device (compressed files are detected and decoded).
    Path(PathBuf),
    /// Standard input (compressed streams are detected and decoded).
    Stdin,
}

/// Everything one copy needs, resolved from the command line or built by code.
#[derive(Debug, Clone)]
pub struct CopyPlan {
    /// Where the bytes come from.
    pub src: Source,
    /// Where they go: a file (created if missing) or a block device.
    pub dst: PathBuf,
    /// Zero-detection granularity in bytes (default 4096): a power of two, 512 to 1 MiB.
    pub block_size: usize,
    /// Byte offset in DST where the copy starts.
    pub seek: u64,
    /// Byte offset in SRC (after decompression) where the copy starts.
    pub skip: u64,
    /// Copy at most this many bytes of SRC.
    pub count: Option<u64>,
    /// Final size of a file DST.
    pub size: Option<u64>,
    /// Allow DST to end at `seek + copied` or `size`, even if that cuts SRC or DST.
    pub truncate: bool,
    /// Re-read and compare after the copy.
    pub verify: bool,
    /// Block device: discard zero ranges instead of `BLKZEROOUT`.
    pub discard: bool,
    /// Block device: DST already reads as zeros, skip zero ranges.
    pub assume_zero: bool,
    /// `fsync` a file DST at the end (a block device is always flushed).
    pub sync: bool,
}

impl CopyPlan {
    /// A plain copy of all of `src` to the start of `dst`: 4 KiB blocks, no final size,
    /// no cutting, no verification, no sync.
    pub fn new(src: Source, dst: impl Into<PathBuf>) -> Self {
        CopyPlan {
            src,
            dst: dst.into(),
            block_size: 4096,
            seek: 0,
            skip: 0,
            count: None,
            size: None,
            truncate: false,
            verify: false,
            discard: false,
            assume_zero: false,
            sync: false,
        }
    }
}

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyStats {
    /// Bytes read from SRC (after decompression); holes are not read.
    pub bytes_read: u64,
    /// Bytes written to DST.
    pub bytes_written: u64,
    /// Bytes of SRC's region that were holes or zero blocks, not written.
    pub bytes_skipped: u64,
    /// Length of SRC's region that was copied (`written + skipped`).
    pub copied: u64,
    /// DST's size at the end.
    pub dst_size: u64,
    /// How long the copy took.
    pub elapsed: Duration,
    /// The backup GPT was moved to the end of a larger DST.
    pub gpt_relocated: bool,
    /// Things that went wrong without failing the copy (e.g. `BLKRRPART` busy).
    pub warnings: Vec<String>,
}

/// Progress of a running copy, for observers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of SRC's region done.
    pub done: u64,
    /// Bytes of SRC's region in all, if known.
    pub total: Option<u64>,
}

/// What an interrupted copy did to DST, for [`SparseError::Interrupted`]'s message.
fn interrupted_dst(written: &Option<(u64, u64)>) -> String {
    match written {
        None => "DST was not created".into(),
        Some((from, to)) => format!(
            "DST existed and is left as it is: written from byte {from} up to byte {to}, the rest untouched"
        ),
    }
}

/// Why a copy failed. Every message is one line and speaks of the plan ([`CopyPlan`]),
/// never of a command-line flag: fsmaker copies through this engine too, and the
/// `sparsecopy` binary adds the flag hints.
#[derive(Debug, thiserror::Error)]
pub enum SparseError {
    /// SRC cannot be opened (or is a directory).
    #[error("cannot read SRC {path}: {source}")]
    SrcOpen {
        /// SRC's path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The region to copy starts past SRC's end.
    #[error("skip offset {skip} is past the end of SRC ({len} bytes)")]
    SkipPastEnd {
        /// Where the region was to start.
        skip: u64,
        /// SRC's length (after decompression).
        len: u64,
    },
    /// Reading SRC failed partway.
    #[error("reading SRC at offset {offset}: {source}")]
    SrcRead {
        /// Where in SRC (after decompression) the read failed.
        offset: u64,
        /// The cause.
        source: io::Error,
    },
    /// A compressed SRC does not decode to its end.
    #[error("corrupt or truncated {format} stream after {at} bytes of output: {message}")]
    Corrupt {
        /// The compression format.
        format: Compression,
        /// How many decompressed bytes came out before the fault.
        at: u64,
        /// The decoder's complaint.
        message: String,
    },
    /// DST cannot be opened or created.
    #[error("cannot open DST {path}: {source}")]
    DstOpen {
        /// DST's path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// DST is a directory.
    #[error("DST {0} is a directory")]
    DstIsDir(PathBuf),
    /// DST is something other than a regular file or a block device.
    #[error("DST {0} is neither a regular file nor a block device")]
    DstKind(PathBuf),
    /// DST did not exist when the copy started but did when it ended: it is left alone
    /// and the copy discarded.
    #[error("DST {0} was created by something else during the copy; the copy is discarded")]
    DstAppeared(PathBuf),
    /// DST is the very file (or device) SRC is.
    #[error("DST {0} is the same file as SRC")]
    SameFile(PathBuf),
    /// DST is a block device with a mounted filesystem on it (or on a partition).
    #[error("DST {path} is mounted on {mountpoint}; unmount it first")]
    Mounted {
        /// The device.
        path: PathBuf,
        /// Where it (or one of its partitions) is mounted.
        mountpoint: String,
    },
    /// SRC's region, placed at the seek offset, runs past the end of a DST device.
    #[error(
        "SRC does not fit: {needed} bytes needed at seek offset {seek}, but DST device {path} has {size} bytes"
    )]
    TooLarge {
        /// The device.
        path: PathBuf,
        /// Bytes of SRC to place.
        needed: u64,
        /// Where in DST they would start.
        seek: u64,
        /// The device's size in bytes.
        size: u64,
    },
    /// The final DST size asked for ends before SRC's region does, and cutting was not
    /// allowed.
    #[error(
        "size {size} is too small: SRC's {needed} bytes at seek offset {seek} end at byte {}",
        seek + needed
    )]
    SizeTooSmall {
        /// The DST size asked for.
        size: u64,
        /// Bytes of SRC to place.
        needed: u64,
        /// Where in DST they start.
        seek: u64,
    },
    /// The final DST size asked for is shorter than the existing DST, and cutting was not
    /// allowed.
    #[error("size {size} would cut DST short: it has {len} bytes")]
    WouldShorten {
        /// The DST size asked for.
        size: u64,
        /// DST's length now.
        len: u64,
    },
    /// DST would have to reach a byte no file may reach there: past its filesystem's
    /// largest file, the process's file size limit, or the largest file offset (2^63 - 1).
    #[error("DST cannot reach byte {offset}: {reason}")]
    FileTooBig {
        /// The byte.
        offset: u64,
        /// Which limit (the system's `EFBIG` message, or the largest offset).
        reason: String,
    },
    /// A final size was asked for a block device, which cannot be resized.
    #[error("block device {0} cannot be given another size")]
    SizeOnDevice(PathBuf),
    /// DST's filesystem (or device) is full.
    #[error("no space left on DST at offset {offset} after writing {written} bytes: {source}")]
    NoSpace {
        /// Where the write failed.
        offset: u64,
        /// Bytes written before it.
        written: u64,
        /// The cause (`ENOSPC`, `EDQUOT`).
        source: io::Error,
    },
    /// Writing (or reading back) DST failed.
    #[error("writing DST at offset {offset}: {source}")]
    DstWrite {
        /// Where in DST.
        offset: u64,
        /// The cause.
        source: io::Error,
    },
    /// A block-device operation on DST failed.
    #[error("{op} on DST at offset {offset} failed: {source}")]
    Device {
        /// The operation (`BLKZEROOUT`, `BLKDISCARD`, `BLKGETSIZE64`).
        op: &'static str,
        /// Where in DST.
        offset: u64,
        /// The cause.
        source: io::Error,
    },
    /// A size in the plan's text form does not parse.
    #[error(transparent)]
    BadSize(#[from] crate::units::SizeError),
    /// The zero-detection block size is not a power of two from 512 to 1 MiB.
    #[error("invalid block size {0}: use a power of two from 512 to 1M")]
    BadBlockSize(usize),
    /// Verification found DST differing from SRC at a byte.
    #[error("verify failed: DST differs from SRC at DST offset {offset}")]
    Mismatch {
        /// The first differing byte of DST.
        offset: u64,
    },
    /// Verification of a stream found a chunk of DST differing from what was read.
    #[error("verify failed: DST differs from SRC within DST bytes {start}..{end}")]
    MismatchIn {
        /// The chunk's first byte in DST.
        start: u64,
        /// The byte after its last.
        end: u64,
    },
    /// Moving the backup GPT to the end of a larger DST failed.
    #[error("relocating the backup GPT: {0}")]
    Gpt(String),
    /// The process was asked to stop (SIGINT, SIGTERM) before the copy finished.
    #[error("interrupted; {}", interrupted_dst(written))]
    Interrupted {
        /// Where an existing DST was written, from and up to which byte; None: DST did not
        /// exist and was not created.
        written: Option<(u64, u64)>,
    },
    /// A bug: something that cannot happen did.
    #[error("internal error: {0}")]
    Internal(String),
}
