//! The contract every filesystem reader serves: [`Volume`] (the bytes a filesystem lives
//! in: a partition, a logical volume, a whole image) and [`Filesystem`] (one filesystem's
//! entries, by path). Readers (ext2/3/4, XFS, btrfs) implement [`Filesystem`] over a
//! [`Volume`]; the tree an image's fstab assembles is built above them and never learns
//! which reader served a file.
//!
//! Paths given to a [`Filesystem`] are absolute inside that filesystem, `/`-separated,
//! without `.`, `..` or empty components, and name no symlink before their last
//! component: the caller resolves symlinks (they may point into another filesystem). No
//! method follows a symlink.
//!
//! Everything a reader reads is untrusted. A reader never panics, never loops forever and
//! never allocates by a size the volume states without bounding it first: a damaged or
//! crafted structure is [`ReadError::Corrupt`] (or the entry is left out), whatever it says.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// Bytes of a volume, read at an offset. Implementations are cheap to share between
/// threads (`pread`, no seek position).
pub trait Volume: Send + Sync {
    /// Fills `buf` from `offset`; reading past [`Volume::len`] is an error.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// The volume's size in bytes.
    fn len(&self) -> u64;
    /// Whether the volume holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A byte range of a file: a whole image, or a partition of one.
#[derive(Debug, Clone)]
pub struct Slice {
    file: Arc<File>,
    offset: u64,
    len: u64,
}

impl Slice {
    /// `len` bytes of `file` from `offset`.
    pub fn new(file: Arc<File>, offset: u64, len: u64) -> Self {
        Slice { file, offset, len }
    }

    /// The whole of `file`.
    pub fn whole(file: Arc<File>) -> io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(Slice::new(file, 0, len))
    }

    /// Where the slice starts in its file.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

impl Volume for Slice {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.len) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "read of {} bytes at {offset} is past the end of a {}-byte volume",
                    buf.len(),
                    self.len
                ),
            ));
        }
        self.file.read_exact_at(buf, self.offset + offset)
    }

    fn len(&self) -> u64 {
        self.len
    }
}

impl Volume for Vec<u8> {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn len(&self) -> u64 {
        Vec::len(self) as u64
    }
}

crate::named_enum! {
    /// A filesystem type imgtest reads.
    pub enum FsType("filesystem type") {
        /// ext2, ext3 or ext4.
        Ext4 = "ext4",
        /// XFS (v5, as current xfsprogs makes it; v4 where it reads the same).
        Xfs = "xfs",
        /// btrfs (one subvolume of it).
        Btrfs = "btrfs",
        /// FAT12/16/32 (an EFI system partition).
        Vfat = "vfat",
    }
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A character device node.
    CharDevice,
    /// A block device node.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
}

/// An entry's metadata (what `lstat` gives).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits with setuid, setgid and sticky (`0o7777`), without the type.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (a symlink: its target's length).
    pub size: u64,
    /// Last content change, seconds since the epoch.
    pub mtime: i64,
}

/// One entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The name (never `.` or `..`). A name that is not UTF-8 is left out of listings.
    pub name: String,
    /// What it is, when the directory says (otherwise ask [`Filesystem::lstat`]).
    pub kind: Option<EntryKind>,
}

/// Why a reader could not serve a request.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No such entry (or a component before the last is not a directory).
    #[error("not found")]
    NotFound,
    /// The entry is not of the kind the request needs (not a directory, not a symlink...).
    #[error("not a {0}")]
    WrongKind(&'static str),
    /// The structures on the volume are damaged or crafted: what was wrong.
    #[error("damaged filesystem: {0}")]
    Corrupt(String),
    /// The filesystem uses a feature this reader does not read: which.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The volume could not be read.
    #[error("read error: {0}")]
    Io(#[from] io::Error),
}

/// One filesystem's entries, read-only. See the module note for what paths are. Not
/// `Send`: a reader may cache with `Rc`/`Cell` (ext4-view does); a thread that wants its own
/// reader opens one over the shared [`Volume`].
pub trait Filesystem {
    /// The filesystem's type.
    fn fs_type(&self) -> FsType;
    /// The entry at `path`, not following a symlink there.
    fn lstat(&self, path: &str) -> Result<Meta, ReadError>;
    /// The entries of the directory at `path`, in any order.
    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, ReadError>;
    /// Where the symlink at `path` points.
    fn read_link(&self, path: &str) -> Result<String, ReadError>;
    /// Up to `buf.len()` bytes of the regular file at `path` from `offset`: the count read,
    /// 0 at or past its end. Holes and unwritten extents read as zeros.
    fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize, ReadError>;
}

/// What identifies a filesystem to `/etc/fstab` and the kernel's `root=`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The filesystem UUID, lower-case with dashes (FAT: `XXXX-XXXX` upper-case).
    pub uuid: Option<String>,
    /// The label, when set.
    pub label: Option<String>,
}
