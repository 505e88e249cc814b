//! A read-only view of an ext2/3/4 filesystem inside an image file (at a byte offset,
//! e.g. a partition), through `ext4-view`: nothing is mounted and nothing is written.
//! It knows files and directories, not what they mean: `crate::offline` reads the facts.
//! The filesystem is untrusted: a walk goes at most [`MAX_DEPTH`] directories deep and
//! through at most [`MAX_ENTRIES`] entries, so that a damaged or crafted filesystem whose
//! directories loop cannot hold a run; a view that met either bound says so
//! ([`FsView::overrun`]).

mod source;

pub use source::{
    DirEntry, EntryKind, Filesystem, FsType, Identity, Meta, ReadError, Slice, Volume,
};

use std::cell::Cell;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use ext4_view::{Ext4, Ext4Error, Ext4Read};

/// Why a filesystem could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The image could not be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The image.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No ext2/3/4 superblock at the offset.
    #[error("no readable ext2/3/4 filesystem at offset {offset}: {message}")]
    NotExt {
        /// Where the filesystem was looked for, in bytes.
        offset: u64,
        /// What `ext4-view` said.
        message: String,
    },
}

struct OffsetReader {
    file: File,
    offset: u64,
}

impl Ext4Read for OffsetReader {
    fn read(
        &mut self,
        start: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        self.file.seek(SeekFrom::Start(self.offset + start))?;
        self.file.read_exact(dst)?;
        Ok(())
    }
}

/// A regular file found by [`FsView::files`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Absolute path inside the filesystem.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits (without the file type).
    pub mode: u32,
}

impl FileInfo {
    /// Whether anyone may execute it.
    pub fn executable(&self) -> bool {
        self.mode & 0o111 != 0
    }
}

/// The deepest directory a walk enters, below the directory it starts from.
pub const MAX_DEPTH: usize = 64;

/// The most directory entries the walks of one view go through.
pub const MAX_ENTRIES: u64 = 2_000_000;

/// An open filesystem.
pub struct FsView {
    fs: Ext4,
    /// Directory entries walked so far.
    walked: Cell<u64>,
    /// Whether a walk met [`MAX_DEPTH`] or [`MAX_ENTRIES`].
    overrun: Cell<bool>,
}

/// Whether the bytes at `offset` carry the ext2/3/4 superblock magic.
pub fn has_ext_magic(image: &Path, offset: u64) -> bool {
    let mut magic = [0u8; 2];
    File::open(image)
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(offset + 1024 + 56))?;
            f.read_exact(&mut magic)
        })
        .is_ok()
        && magic == [0x53, 0xef]
}

impl FsView {
    /// Opens the filesystem starting `offset` bytes into `image`.
    pub fn open(image: &Path, offset: u64) -> Result<Self, FsError> {
        let file = File::open(image).map_err(|source| FsError::Open {
            path: image.display().to_string(),
            source,
        })?;
        Self::load(Box::new(OffsetReader { file, offset }), offset)
    }

    /// Opens the filesystem `reader` reads (found `offset` bytes into its image).
    pub fn load(reader: Box<dyn Ext4Read>, offset: u64) -> Result<Self, FsError> {
        let fs = Ext4::load(reader).map_err(|e| FsError::NotExt {
            offset,
            message: e.to_string(),
        })?;
        Ok(FsView {
            fs,
            walked: Cell::new(0),
            overrun: Cell::new(false),
        })
    }

    /// Whether a walk stopped at [`MAX_DEPTH`] or [`MAX_ENTRIES`]: the filesystem's
    /// directories loop, or there are more than this reads.
    pub fn overrun(&self) -> bool {
        self.overrun.get()
    }

    /// The file's bytes, None if it does not exist or is not a regular file.
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.fs.read(path).ok()
    }

    /// Whether `path` exists (following symlinks inside the filesystem).
    pub fn exists(&self, path: &str) -> bool {
        self.fs.exists(path).unwrap_or(false)
    }

    /// Size of a regular file (None if absent or not a regular file).
    pub fn file_len(&self, path: &str) -> Option<u64> {
        let m = self.fs.symlink_metadata(path).ok()?;
        (m.file_type().is_regular_file()).then(|| m.len())
    }

    /// Entry names of a directory (without `.` and `..`); empty if not a directory.
    pub fn list(&self, dir: &str) -> Vec<String> {
        let Ok(rd) = self.fs.read_dir(dir) else {
            return Vec::new();
        };
        rd.filter_map(|e: Result<_, Ext4Error>| e.ok())
            .filter_map(|e| e.file_name().as_str().ok().map(str::to_string))
            .filter(|n| n != "." && n != "..")
            .collect()
    }

    /// Every regular file below `dir`, recursively, with its size and mode (symlinks are
    /// not followed), sorted by path. Directory entries carry their type, so only regular
    /// files cost an inode read. Bounded (see the module note).
    pub fn files(&self, dir: &str) -> Vec<FileInfo> {
        let mut out = Vec::new();
        // A linked directory (`/tmp` -> `/var/tmp`) is walked, and named, where it really is.
        let Some(dir) = self
            .fs
            .canonicalize(dir)
            .ok()
            .and_then(|p| p.to_str().ok().map(str::to_string))
        else {
            return out;
        };
        let mut stack = vec![(dir.trim_end_matches('/').to_string(), 0)];
        while let Some((d, depth)) = stack.pop() {
            let Ok(rd) = self
                .fs
                .read_dir(if d.is_empty() { "/" } else { d.as_str() })
            else {
                continue;
            };
            for e in rd.flatten() {
                self.walked.set(self.walked.get() + 1);
                if self.walked.get() > MAX_ENTRIES {
                    self.overrun.set(true);
                    break;
                }
                let Ok(name) = e.file_name().as_str().map(str::to_string) else {
                    continue;
                };
                if name == "." || name == ".." {
                    continue;
                }
                let p = format!("{d}/{name}");
                match e.file_type() {
                    Ok(t) if t.is_dir() && depth < MAX_DEPTH => stack.push((p, depth + 1)),
                    Ok(t) if t.is_dir() => self.overrun.set(true),
                    Ok(t) if t.is_regular_file() => {
                        if let Ok(m) = e.metadata() {
                            out.push(FileInfo {
                                path: p,
                                size: m.len(),
                                mode: u32::from(m.mode()) & 0o7777,
                            });
                        }
                    }
                    _ => {}
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// Every regular file below `dir`, recursively (symlinks are not followed).
    pub fn walk_files(&self, dir: &str) -> Vec<String> {
        self.files(dir).into_iter().map(|f| f.path).collect()
    }

    /// The regular file at `path` with its size and mode (None: absent or not a file).
    pub fn file(&self, path: &str) -> Option<FileInfo> {
        let m = self.fs.symlink_metadata(path).ok()?;
        m.file_type().is_regular_file().then(|| FileInfo {
            path: path.to_string(),
            size: m.len(),
            mode: u32::from(m.mode()) & 0o7777,
        })
    }

    /// At most `limit` bytes from the start of the regular file at `path`.
    pub fn head(&self, path: &str, limit: usize) -> Option<Vec<u8>> {
        let mut f = self.fs.open(path).ok()?;
        if !f.metadata().file_type().is_regular_file() {
            return None;
        }
        let mut buf = vec![0u8; limit.min(usize::try_from(f.metadata().len()).unwrap_or(limit))];
        let mut got = 0;
        while got < buf.len() {
            match f.read_bytes(&mut buf[got..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        buf.truncate(got);
        Some(buf)
    }

    /// Where the symlink at `path` points (None: not a symlink).
    pub fn link_target(&self, path: &str) -> Option<String> {
        let target = self.fs.read_link(path).ok()?;
        target.to_str().ok().map(str::to_string)
    }

    /// Absolute paths matching `pattern`, where `*` and `?` match within one component.
    pub fn glob(&self, pattern: &str) -> Vec<String> {
        let mut current = vec![String::new()];
        for comp in pattern.split('/').filter(|c| !c.is_empty()) {
            let mut next = Vec::new();
            for base in &current {
                if comp.contains(['*', '?']) {
                    let dir = if base.is_empty() {
                        "/".to_string()
                    } else {
                        base.clone()
                    };
                    for name in self.list(&dir) {
                        if wildcard(comp, &name) {
                            next.push(format!("{base}/{name}"));
                        }
                    }
                } else {
                    let p = format!("{base}/{comp}");
                    if self.fs.symlink_metadata(p.as_str()).is_ok() {
                        next.push(p);
                    }
                }
            }
            current = next;
        }
        current.retain(|p| !p.is_empty());
        current.sort();
        current
    }
}

/// Shell-style match of one path component: `*` any run, `?` one character.
pub fn wildcard(pattern: &str, name: &str) -> bool {
    fn m(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| m(rest, &n[i..])),
            Some(('?', rest)) => !n.is_empty() && m(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && m(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    m(&p, &n)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Small ext4 images for tests, made with `mke2fs -d` (no root needed).

    use std::path::{Path, PathBuf};

    /// An ext4 image at `offset` bytes into a file (a gap before it, like a partition),
    /// holding `files` (path, contents) and `dirs`; the temp dir owns the file.
    pub fn ext4_image(
        files: &[(&str, &[u8])],
        dirs: &[&str],
        offset: u64,
    ) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        for d in dirs {
            std::fs::create_dir_all(root.join(d.trim_start_matches('/'))).unwrap();
        }
        for (path, content) in files {
            let p = root.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap_or(Path::new("/"))).unwrap();
            std::fs::write(p, content).unwrap();
        }
        std::fs::create_dir_all(&root).unwrap();
        let img = dir.path().join("fs.img");
        ext4_of(&root, &img, offset);
        (dir, img)
    }

    /// Makes `img` an 8 MiB ext4 filesystem at `offset` holding the tree `root` (symlinks
    /// and modes as they are there).
    pub fn ext4_of(root: &Path, img: &Path, offset: u64) {
        let st = std::process::Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-E"])
            .arg(format!("offset={offset}"))
            .arg("-d")
            .arg(root)
            .arg(img)
            .arg("8M")
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// The bytes of a 256 KiB ext4 filesystem (1 KiB blocks, no journal) holding `files`:
    /// small enough to copy and damage thousands of times.
    pub fn small_ext4(files: &[(&str, &[u8])]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        for (path, content) in files {
            let p = root.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap_or(Path::new("/"))).unwrap();
            std::fs::write(p, content).unwrap();
        }
        let img = dir.path().join("fs.img");
        let st = std::process::Command::new("mke2fs")
            .args([
                "-q",
                "-F",
                "-t",
                "ext4",
                "-O",
                "^has_journal",
                "-N",
                "64",
                "-b",
                "1024",
            ])
            .arg("-d")
            .arg(&root)
            .arg(&img)
            .arg("256K")
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::read(&img).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_matches_within_a_component() {
        assert!(wildcard("ssh_host_*_key", "ssh_host_ed25519_key"));
        assert!(!wildcard("ssh_host_*_key", "ssh_host_ed25519_key.pub"));
        assert!(wildcard("test?.sh", "test1.sh"));
        assert!(wildcard(".*history", ".bash_history"));
        assert!(!wildcard("test*.sh", "mytest.sh"));
    }

    #[test]
    fn finds_the_filesystem_at_its_offset() {
        let (_d, img) = testing::ext4_image(&[("/etc/hostname", b"x\n")], &["/var/log"], 1 << 20);
        assert!(has_ext_magic(&img, 1 << 20) && !has_ext_magic(&img, 0));
        let view = FsView::open(&img, 1 << 20).unwrap();
        assert_eq!(view.read("/etc/hostname").as_deref(), Some(&b"x\n"[..]));
        assert!(view.exists("/var/log") && !view.exists("/nope"));
        assert_eq!(view.walk_files("/etc"), ["/etc/hostname"]);
        assert_eq!(view.glob("/etc/host*"), ["/etc/hostname"]);
    }

    #[test]
    fn not_ext_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("zero");
        std::fs::write(&p, vec![0u8; 65536]).unwrap();
        assert!(matches!(FsView::open(&p, 0), Err(FsError::NotExt { .. })));
    }
}
