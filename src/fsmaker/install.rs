//! What fsmaker puts into the filesystem and how: the list of files, directories and
//! symlinks to install ([`Install`]), what already exists where they go ([`Existing`]),
//! and the one `debugfs` batch that writes them ([`batch`]). It decides nothing about the
//! disk around the filesystem and never runs debugfs in write mode itself.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::BuildError;
use super::debugfs::{self, Batch};

/// One file to put into the filesystem.
pub(super) struct Put {
    host: PathBuf,
    dest: String,
    size: u64,
}

/// Files and directories to create, in creation order.
#[derive(Default)]
pub(super) struct Install {
    dirs: Vec<String>,
    files: Vec<Put>,
    symlinks: Vec<(String, String)>,
}

impl Install {
    /// Adds the host file `host`, to be written as `dest`.
    pub(super) fn file(&mut self, host: &Path, dest: String) -> Result<(), BuildError> {
        let size = std::fs::metadata(host)
            .map_err(|e| BuildError::io(format!("cannot read {}", host.display()), e))?
            .len();
        self.files.push(Put {
            host: host.to_owned(),
            dest,
            size,
        });
        Ok(())
    }

    /// Adds the host tree `src` under `dest` (sorted, so the batch is the same every run).
    pub(super) fn tree(&mut self, src: &Path, dest: &str) -> Result<(), BuildError> {
        self.dirs.push(dest.to_string());
        let mut entries: Vec<_> = std::fs::read_dir(src)
            .map_err(|e| BuildError::io(format!("cannot list {}", src.display()), e))?
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let d = format!("{dest}/{name}");
            let ft = e.file_type().map_err(|err| {
                BuildError::io(format!("cannot stat {}", e.path().display()), err)
            })?;
            if ft.is_dir() {
                self.tree(&e.path(), &d)?;
            } else if ft.is_symlink() {
                let t = std::fs::read_link(e.path())
                    .map_err(|err| BuildError::io("cannot read a symlink", err))?;
                self.symlinks.push((d, t.to_string_lossy().into_owned()));
            } else {
                self.file(&e.path(), d)?;
            }
        }
        Ok(())
    }

    /// Bytes and inodes the files need in a filesystem of block size `block`, with a
    /// margin for extent/indirect blocks.
    pub(super) fn needs(&self, block: u64) -> (u64, u64) {
        let data: u64 = self
            .files
            .iter()
            .map(|f| f.size.div_ceil(block) * block)
            .sum();
        let meta = (self.dirs.len() as u64 + self.symlinks.len() as u64) * block;
        let indirect = data / 1024 + self.files.len() as u64 * 64;
        let inodes = (self.dirs.len() + self.files.len() + self.symlinks.len()) as u64;
        (data + meta + indirect + (1 << 20), inodes)
    }
}

/// What already exists in the filesystem where fsmaker installs.
pub(super) struct Existing {
    paths: BTreeSet<String>,
}

impl Existing {
    /// Lists each of `dirs` (and their parents) inside the filesystem at `device`.
    pub(super) fn probe(device: &str, dirs: &[&str]) -> Result<Existing, BuildError> {
        let mut paths = BTreeSet::new();
        for d in dirs {
            if let Some(entries) = debugfs::list(device, d)? {
                // A directory that exists has parents that exist.
                paths.extend(ancestors(d));
                for e in entries {
                    paths.insert(format!("{}/{}", d.trim_end_matches('/'), e.name));
                }
            }
        }
        Ok(Existing { paths })
    }

    /// Whether `p` exists in the filesystem.
    pub(super) fn has(&self, p: &str) -> bool {
        self.paths.contains(p)
    }
}

/// `/a/b/c` and the directories above it, from the top: `/a`, `/a/b`, `/a/b/c`.
fn ancestors(path: &str) -> Vec<String> {
    let mut acc = String::new();
    path.split('/')
        .filter(|p| !p.is_empty())
        .map(|part| {
            acc.push('/');
            acc.push_str(part);
            acc.clone()
        })
        .collect()
}

/// Where `/lib` really is inside the filesystem (merged-/usr systems link it to `usr/lib`).
pub(super) fn lib_dir(device: &str) -> Result<String, BuildError> {
    Ok(match debugfs::read_link(device, "/lib")? {
        Some(t) if t.starts_with('/') => t,
        Some(t) => format!("/{t}"),
        None => "/lib".to_string(),
    })
}

/// The debugfs batch: parents before children, replaced files removed first.
pub(super) fn batch(install: &Install, existing: &Existing, epoch: i64) -> Batch {
    let mut b = Batch::new(epoch);
    let mut made: BTreeSet<String> = BTreeSet::new();
    let ensure = |b: &mut Batch, dir: &str, made: &mut BTreeSet<String>| {
        for d in ancestors(dir) {
            if !existing.has(&d) && made.insert(d.clone()) {
                b.mkdir(&d);
            }
        }
    };
    for d in &install.dirs {
        ensure(&mut b, d, &mut made);
    }
    for f in &install.files {
        if let Some((parent, _)) = f.dest.rsplit_once('/') {
            ensure(&mut b, parent, &mut made);
        }
        if existing.has(&f.dest) {
            b.rm(&f.dest);
        }
        b.write(&f.host, &f.dest);
    }
    for (path, target) in &install.symlinks {
        if existing.has(path) {
            b.rm(path);
        }
        b.symlink(path, target);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_come_from_the_top() {
        assert_eq!(ancestors("/a/b/c/"), ["/a", "/a/b", "/a/b/c"]);
        assert!(ancestors("/").is_empty());
    }

    #[test]
    fn batch_creates_parents_once_and_replaces_files() {
        let mut ins = Install::default();
        ins.files.push(Put {
            host: "/h/a".into(),
            dest: "/boot/grub/i386-pc/a.mod".into(),
            size: 1,
        });
        ins.files.push(Put {
            host: "/h/cfg".into(),
            dest: "/boot/grub/grub.cfg".into(),
            size: 1,
        });
        let existing = Existing {
            paths: [
                "/boot".to_string(),
                "/boot/grub/grub.cfg".to_string(),
                "/boot/grub".to_string(),
            ]
            .into(),
        };
        let s = batch(&ins, &existing, 0).script().to_string();
        assert_eq!(
            s,
            "set_current_time @0\nmkdir \"/boot/grub/i386-pc\"\nwrite \"/h/a\" \"/boot/grub/i386-pc/a.mod\"\n\
             rm \"/boot/grub/grub.cfg\"\nwrite \"/h/cfg\" \"/boot/grub/grub.cfg\"\n"
        );
    }
}
