//! sparsecopy: copy disk images keeping holes, like `dd` but sparse-aware.
//!
//! [`copy`] takes a [`CopyPlan`] and returns [`CopyStats`]. SRC is read only
//! where it has data ([`extents`]), or streamed (stdin, pipes, gzip/zstd/xz by
//! magic, [`input`]); every block is checked for zeros ([`zero`]) and only
//! non-zero blocks are written ([`output`]), so DST holds holes wherever SRC
//! is zero. Block devices are reached through [`crate::disk::blockdev`]. This module never
//! prints: progress goes to an observer ([`copy_with`]); the terminal bar is
//! one such observer ([`progress`]).
//!
//! DST semantics: DST is never truncated unless asked. Bytes outside
//! `[seek, seek + copied)` are untouched; a file DST ends at
//! `max(old size, seek + copied)`, or exactly `size` if given; `--truncate`
//! lets it end at `seek + copied` (or `size`) even if that cuts SRC or DST.

mod engine;
pub mod extents;
pub mod input;
pub mod output;
pub mod progress;
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
    pub src: Source,
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
    /// Show a progress bar on stderr if it is a terminal.
    pub progress: bool,
    /// `fsync` a file DST at the end (a block device is always flushed).
    pub sync: bool,
}

impl CopyPlan {
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
            progress: false,
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

/// Why a copy failed. Every message is one line.
#[derive(Debug, thiserror::Error)]
pub enum SparseError {
    #[error("cannot read SRC {path}: {source}")]
    SrcOpen { path: PathBuf, source: io::Error },
    #[error("reading SRC at offset {offset}: {source}")]
    SrcRead { offset: u64, source: io::Error },
    #[error("corrupt or truncated {format} stream after {at} bytes of output: {message}")]
    Corrupt {
        format: Compression,
        at: u64,
        message: String,
    },
    #[error("cannot open DST {path}: {source}")]
    DstOpen { path: PathBuf, source: io::Error },
    #[error("DST {0} is a directory")]
    DstIsDir(PathBuf),
    #[error("DST {0} is neither a regular file nor a block device")]
    DstKind(PathBuf),
    #[error("DST {0} is the same file as SRC")]
    SameFile(PathBuf),
    #[error("DST {path} is mounted on {mountpoint}; unmount it first")]
    Mounted { path: PathBuf, mountpoint: String },
    #[error(
        "SRC does not fit: {needed} bytes needed at --seek {seek}, but DST device {path} has {size} bytes"
    )]
    TooLarge {
        path: PathBuf,
        needed: u64,
        seek: u64,
        size: u64,
    },
    #[error("--size {size} is too small: SRC needs {} bytes ({needed} at --seek {seek}); add --truncate to cut it", seek + needed)]
    SizeTooSmall { size: u64, needed: u64, seek: u64 },
    #[error("--size cannot resize block device {0}")]
    SizeOnDevice(PathBuf),
    #[error("no space left on DST at offset {offset} after writing {written} bytes: {source}")]
    NoSpace {
        offset: u64,
        written: u64,
        source: io::Error,
    },
    #[error("writing DST at offset {offset}: {source}")]
    DstWrite { offset: u64, source: io::Error },
    #[error("{op} on DST at offset {offset} failed: {source}")]
    Device {
        op: &'static str,
        offset: u64,
        source: io::Error,
    },
    #[error(transparent)]
    BadSize(#[from] crate::units::SizeError),
    #[error("invalid block size {0}: use a power of two from 512 to 1M")]
    BadBlockSize(usize),
    #[error("verify failed: DST differs from SRC at DST offset {offset}")]
    Mismatch { offset: u64 },
    #[error("verify failed: DST differs from SRC within DST bytes {start}..{end}")]
    MismatchIn { start: u64, end: u64 },
    #[error("relocating the backup GPT: {0}")]
    Gpt(String),
    #[error("internal error: {0}")]
    Internal(String),
}
