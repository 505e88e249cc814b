//! Scratch space that stays private and does not outlive its owner.
//!
//! - [`Dir`]: a temp directory of mode 0700 whose owner holds a lock file inside it for
//!   its whole life. Making one first removes the directories of the same prefix whose
//!   owner died without cleaning up (SIGKILL, the OOM killer): their lock is free.
//! - [`private_file`]: a new file only its owner may read or write (0600).
//! - [`Unnamed`]: a file that has no name until it is complete ([`Unnamed::link`]), so a
//!   process killed while writing it leaves nothing behind (Linux `O_TMPFILE`; where the
//!   filesystem lacks it, a hidden temp name, removed on drop). Private while unnamed, it
//!   gets the mode any new file gets (0666 less the umask) when it is named.
//! - [`user_cache_dir`]: where a tool keeps what outlives a run (the XDG cache).
//!
//! Nothing here knows what the scratch space is for.

use std::fs::{File, OpenOptions, Permissions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{AtFlags, CWD, FlockOperation, Mode, OFlags, flock};
use rustix::io::Errno;

/// The lock file a [`Dir`]'s owner holds.
const LOCK: &str = ".owner.lock";

/// A directory whose lock is free is removed only once its lock file is this old: its
/// owner may be between creating the lock file and taking the lock.
const GRACE: Duration = Duration::from_secs(3);

/// A private temp directory, removed when dropped; while it exists its owner holds the
/// lock that tells later runs it is alive.
#[derive(Debug)]
pub struct Dir {
    dir: tempfile::TempDir,
    _lock: File,
}

impl Dir {
    /// A new directory `PREFIX` + random characters, mode 0700, in the temp dir
    /// (`$TMPDIR`, else `/tmp`), after removing the stale ones of the same prefix
    /// ([`sweep`]).
    pub fn new(prefix: &str) -> io::Result<Dir> {
        let parent = std::env::temp_dir();
        sweep(&parent, prefix);
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .permissions(Permissions::from_mode(0o700))
            .tempdir_in(&parent)?;
        let lock = private_file(&dir.path().join(LOCK))?;
        flock(&lock, FlockOperation::LockExclusive)?;
        Ok(Dir { dir, _lock: lock })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes the directories in `parent` named `prefix...` that this user owns, that hold a
/// [`Dir`]'s lock file, and whose lock no process holds (older than [`GRACE`]): what a
/// killed owner left. Anything else, another user's or a directory that merely shares the
/// prefix, is left alone. Best effort: what cannot be removed stays.
pub fn sweep(parent: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let me = rustix::process::getuid().as_raw();
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let dir = e.path();
        let mine = |p: &Path, dir: bool| {
            std::fs::symlink_metadata(p)
                .is_ok_and(|m| m.uid() == me && if dir { m.is_dir() } else { m.is_file() })
        };
        let lock_path = dir.join(LOCK);
        if !mine(&dir, true) || !mine(&lock_path, false) {
            continue;
        }
        let Ok(lock) = File::open(&lock_path) else {
            continue;
        };
        let old = lock
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= GRACE);
        if old && flock(&lock, FlockOperation::NonBlockingLockExclusive).is_ok() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// Creates (or truncates) `path` as a file only its owner may read and write (0600).
pub fn private_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing file keeps its mode on open: narrow it.
    file.set_permissions(Permissions::from_mode(0o600))?;
    Ok(file)
}

/// A file without a name in its directory until [`Unnamed::link`] gives it one.
#[derive(Debug)]
pub struct Unnamed {
    file: File,
    /// Where the filesystem has no `O_TMPFILE`: the hidden name it has meanwhile.
    named: Option<tempfile::TempPath>,
}

/// The user's cache directory for `name`: `$XDG_CACHE_HOME/NAME`, else `~/.cache/NAME`
/// (empty variables count as unset); None without either variable.
pub fn user_cache_dir(name: &str) -> Option<PathBuf> {
    let var = |k| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("XDG_CACHE_HOME")
        .map(|d| d.join(name))
        .or_else(|| var("HOME").map(|h| h.join(".cache").join(name)))
}

/// The process's umask (`Umask:` in `/proc/self/status`; 022 where it cannot be read).
/// Read, not set: setting it to learn it would race with other threads creating files.
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let field = s.lines().find_map(|l| l.strip_prefix("Umask:"))?;
            u32::from_str_radix(field.trim(), 8).ok()
        })
        .unwrap_or(0o022)
}

/// The directory `path` is in (`.` for a bare name) and its file name.
pub fn dir_and_name(path: &Path) -> (&Path, String) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir, name)
}

impl Unnamed {
    /// A new empty file (0600) in `dest`'s directory, to be named `dest` by
    /// [`Unnamed::link`]. Where the filesystem cannot make unnamed files it is
    /// `.NAME.XXXXXX.tmp` until then.
    pub fn next_to(dest: &Path) -> io::Result<Unnamed> {
        let (dir, name) = dir_and_name(dest);
        let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
        match rustix::fs::open(dir, flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => Ok(Unnamed {
                file: File::from(fd),
                named: None,
            }),
            // EISDIR: a kernel without O_TMPFILE; EOPNOTSUPP: a filesystem without it.
            Err(Errno::ISDIR | Errno::OPNOTSUPP | Errno::INVAL) => {
                let (file, path) = tempfile::Builder::new()
                    .prefix(&format!(".{name}."))
                    .suffix(".tmp")
                    .permissions(Permissions::from_mode(0o600))
                    .tempfile_in(dir)?
                    .into_parts();
                Ok(Unnamed {
                    file,
                    named: Some(path),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// A path other programs (`debugfs`, `qemu-img`) can open the file by while this
    /// process lives.
    pub fn path(&self) -> PathBuf {
        match &self.named {
            Some(p) => p.to_path_buf(),
            None => PathBuf::from(format!(
                "/proc/{}/fd/{}",
                std::process::id(),
                self.file.as_raw_fd()
            )),
        }
    }

    /// Gives the file its name `dest` (the one it was made for) and the mode a new file
    /// gets (0666 less the umask), and returns it. Without `replace`, an existing `dest`
    /// is an error (`AlreadyExists`) and is left alone; with it, `dest` is replaced
    /// atomically.
    pub fn link(self, dest: &Path, replace: bool) -> io::Result<File> {
        let Unnamed { file, named } = self;
        file.set_permissions(Permissions::from_mode(0o666 & !umask()))?;
        match named {
            Some(p) if replace => p.persist(dest).map_err(|e| e.error)?,
            Some(p) => p.persist_noclobber(dest).map_err(|e| e.error)?,
            None if !replace => link_fd(&file, dest)?,
            None => {
                let (dir, name) = dir_and_name(dest);
                let hidden = tempfile::Builder::new()
                    .prefix(&format!(".{name}."))
                    .suffix(".tmp")
                    .make_in(dir, |p| link_fd(&file, p))?;
                hidden.persist(dest).map_err(|e| e.error)?;
            }
        }
        Ok(file)
    }
}

/// Links an unnamed file at `dest` (`linkat` through `/proc/self/fd`, which needs no
/// privilege).
fn link_fd(file: &File, dest: &Path) -> io::Result<()> {
    let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
    rustix::fs::linkat(CWD, proc_path.as_str(), CWD, dest, AtFlags::SYMLINK_FOLLOW)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn dirs_are_private_and_stale_ones_are_swept() {
        let parent = tempfile::tempdir().unwrap();
        let live = tempfile::Builder::new()
            .prefix("t-")
            .tempdir_in(parent.path())
            .unwrap();
        let lock = private_file(&live.path().join(LOCK)).unwrap();
        flock(&lock, FlockOperation::LockExclusive).unwrap();
        let dead = parent.path().join("t-dead");
        std::fs::create_dir(&dead).unwrap();
        drop(private_file(&dead.join(LOCK)).unwrap());
        let young = parent.path().join("t-young");
        std::fs::create_dir(&young).unwrap();
        drop(private_file(&young.join(LOCK)).unwrap());
        let foreign = parent.path().join("t-not-ours");
        std::fs::create_dir(&foreign).unwrap();
        let old = std::time::SystemTime::now() - GRACE * 2;
        for d in [live.path(), &dead, &foreign] {
            let f = File::open(d.join(LOCK)).or_else(|_| File::open(d));
            f.unwrap().set_modified(old).unwrap();
        }
        sweep(parent.path(), "t-");
        assert!(live.path().is_dir(), "a held lock keeps its dir");
        assert!(!dead.exists(), "a free old lock's dir is removed");
        assert!(young.is_dir(), "a young lock may be about to be taken");
        assert!(foreign.is_dir(), "a dir without a lock file is not ours");
        let d = Dir::new("imgtest-scratch-test-").unwrap();
        let mode = std::fs::metadata(d.path()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let f = private_file(&d.path().join("f")).unwrap();
        assert_eq!(f.metadata().unwrap().mode() & 0o777, 0o600);
        let path = d.path().to_path_buf();
        drop(d);
        assert!(!path.exists());
    }

    #[test]
    fn an_unnamed_file_appears_only_when_linked() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.img");
        let u = Unnamed::next_to(&dest).unwrap();
        u.file().write_all_at(b"data", 0).unwrap();
        assert_eq!(std::fs::read(u.path()).unwrap(), b"data");
        assert_eq!(
            u.file().metadata().unwrap().mode() & 0o777,
            0o600,
            "private meanwhile"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        std::fs::write(&dest, b"old").unwrap();
        let e = Unnamed::next_to(&dest)
            .unwrap()
            .link(&dest, false)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        u.link(&dest, true).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"data");
        let mode = std::fs::metadata(&dest).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o666 & !umask(), "named, it has a new file's mode");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "{names:?}");
        // Dropped unlinked, it leaves nothing.
        drop(Unnamed::next_to(&dir.path().join("gone")).unwrap());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
