//! A read-only view of an ext2/3/4 filesystem inside an image file (at a byte offset,
//! e.g. a partition), through `ext4-view`: nothing is mounted and nothing is written.
//! [`offline_facts`] reads what the checks need to judge an image before it boots.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use ext4_view::{Ext4, Ext4Error, Ext4Read};

use crate::checks::facts::{KeyFile, OfflineFacts};

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
    NotExt { offset: u64, message: String },
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

/// An open filesystem.
pub struct FsView {
    fs: Ext4,
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
        let fs =
            Ext4::load(Box::new(OffsetReader { file, offset })).map_err(|e| FsError::NotExt {
                offset,
                message: e.to_string(),
            })?;
        Ok(FsView { fs })
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

    fn is_dir(&self, path: &str) -> bool {
        self.fs
            .symlink_metadata(path)
            .map(|m| m.is_dir())
            .unwrap_or(false)
    }

    /// Every regular file below `dir`, recursively (symlinks are not followed).
    pub fn walk_files(&self, dir: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.trim_end_matches('/').to_string()];
        while let Some(d) = stack.pop() {
            for name in self.list(&d) {
                let p = format!("{d}/{name}");
                if self.is_dir(&p) {
                    stack.push(p);
                } else if self.file_len(&p).is_some() {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
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

/// Accounts in a shadow file whose password field allows a password login: not locked
/// (`!`, `*`) and not empty (an empty field means *no* password, reported as such).
pub fn usable_password_accounts(shadow: &str) -> Vec<String> {
    shadow
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let (name, hash) = (f.next()?, f.next()?);
            if name.is_empty() || hash.starts_with('!') || hash.starts_with('*') {
                None
            } else if hash.is_empty() {
                Some(format!("{name} (empty password)"))
            } else {
                Some(name.to_string())
            }
        })
        .collect()
}

/// Where host keys live.
pub const HOST_KEY_PATTERNS: &[&str] = &[
    "/etc/ssh/ssh_host_*_key",
    "/etc/dropbear/dropbear_*_host_key",
];

/// Reads the facts the offline checks judge. `source` describes where the filesystem was
/// found; `test_script_patterns` are globs of leftover test scripts.
pub fn offline_facts(view: &FsView, source: &str, test_script_patterns: &[String]) -> OfflineFacts {
    let shadow = view
        .read("/etc/shadow")
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let host_keys = HOST_KEY_PATTERNS
        .iter()
        .flat_map(|p| view.glob(p))
        .map(|path| {
            use sha2::Digest;
            let sha256 = hex::encode(sha2::Sha256::digest(view.read(&path).unwrap_or_default()));
            KeyFile { path, sha256 }
        })
        .collect();
    let mut dirty = Vec::new();
    let mut histories = view.glob("/root/.*history");
    histories.extend(view.glob("/home/*/.*history"));
    for f in view.walk_files("/var/log").into_iter().chain(histories) {
        if let Some(n) = view.file_len(&f).filter(|&n| n > 0) {
            dirty.push(format!("{f} ({n} bytes)"));
        }
    }
    let mut scripts: Vec<String> = test_script_patterns
        .iter()
        .flat_map(|p| view.glob(p))
        .collect();
    scripts.sort();
    scripts.dedup();
    let machine_id = view
        .read("/etc/machine-id")
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .filter(|s| !s.is_empty() && s != "uninitialized");
    let mut hooks = view.glob("/etc/systemd/system/*/firstboot.service");
    hooks.extend(view.glob("/etc/init.d/firstboot"));
    if let Some(inittab) = view.read("/etc/inittab")
        && String::from_utf8_lossy(&inittab)
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains("firstboot"))
    {
        hooks.push("/etc/inittab".into());
    }
    OfflineFacts {
        source: source.to_string(),
        shadow_readable: shadow.is_some(),
        password_accounts: shadow
            .as_deref()
            .map(usable_password_accounts)
            .unwrap_or_default(),
        host_keys,
        dirty_logs: dirty,
        test_scripts: scripts,
        machine_id,
        firstboot_program: view.exists("/usr/sbin/firstboot"),
        firstboot_hooks: hooks,
        cloud_init: crate::cloudinit::offline_facts(view),
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
    fn shadow_usable_hashes() {
        let s = "root:$6$salt$hash:19000:0:99999:7:::\ndaemon:*:19000::::::\nlocked:!$6$x:1::::::\nopen::1::::::\n";
        assert_eq!(
            usable_password_accounts(s),
            ["root", "open (empty password)"]
        );
    }

    fn make_fs(populate: impl Fn(&Path)) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        for d in [
            "etc/ssh",
            "etc/init.d",
            "var/log/apt",
            "root",
            "home/alice",
            "usr/sbin",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        populate(&root);
        let img = dir.path().join("fs.img");
        // A 1 MiB gap before the filesystem, like a partition.
        let st = std::process::Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-E", "offset=1048576", "-d"])
            .arg(&root)
            .arg(&img)
            .arg("8M")
            .status()
            .unwrap();
        assert!(st.success());
        (dir, img)
    }

    #[test]
    fn clean_filesystem_has_clean_facts() {
        let (_d, img) = make_fs(|r| {
            std::fs::write(r.join("etc/shadow"), "root:!:19000::::::\n").unwrap();
            std::fs::write(r.join("var/log/wtmp"), "").unwrap();
            std::fs::write(r.join("etc/machine-id"), "").unwrap();
            std::fs::write(r.join("usr/sbin/firstboot"), "#!/bin/sh\n").unwrap();
            std::fs::write(r.join("etc/init.d/firstboot"), "#!/bin/sh\n").unwrap();
        });
        assert!(has_ext_magic(&img, 1048576) && !has_ext_magic(&img, 0));
        let view = FsView::open(&img, 1048576).unwrap();
        let f = offline_facts(&view, "test", &["/root/test*.sh".into()]);
        assert!(f.shadow_readable);
        assert!(
            f.password_accounts.is_empty() && f.host_keys.is_empty() && f.dirty_logs.is_empty()
        );
        assert!(f.test_scripts.is_empty() && f.machine_id.is_none());
        assert!(f.firstboot_program);
        assert_eq!(f.firstboot_hooks, ["/etc/init.d/firstboot"]);
    }

    #[test]
    fn dirty_filesystem_shows_each_defect() {
        let (_d, img) = make_fs(|r| {
            std::fs::write(r.join("etc/shadow"), "root:$6$a$b:19000::::::\n").unwrap();
            std::fs::write(r.join("etc/ssh/ssh_host_ed25519_key"), "KEY").unwrap();
            std::fs::write(r.join("etc/ssh/ssh_host_ed25519_key.pub"), "PUB").unwrap();
            std::fs::write(r.join("var/log/apt/history.log"), "x").unwrap();
            std::fs::write(r.join("home/alice/.bash_history"), "ls\n").unwrap();
            std::fs::write(r.join("root/test.sh"), "echo\n").unwrap();
            std::fs::write(
                r.join("etc/machine-id"),
                "0123456789abcdef0123456789abcdef\n",
            )
            .unwrap();
            std::fs::write(r.join("etc/inittab"), "::sysinit:/usr/sbin/firstboot run\n").unwrap();
        });
        let view = FsView::open(&img, 1048576).unwrap();
        let f = offline_facts(
            &view,
            "test",
            &[
                "/root/test*.sh".into(),
                "/usr/local/bin/run-tests.sh".into(),
            ],
        );
        assert_eq!(f.password_accounts, ["root"]);
        assert_eq!(f.host_keys.len(), 1);
        assert_eq!(f.host_keys[0].path, "/etc/ssh/ssh_host_ed25519_key");
        assert_eq!(
            f.host_keys[0].sha256,
            "5ca24005b740717ba4f3f6bc48a230700e68c2a4b11ecedb96f169f4efaf1f21"
        ); // sha256("KEY")
        assert_eq!(
            f.dirty_logs,
            [
                "/var/log/apt/history.log (1 bytes)",
                "/home/alice/.bash_history (3 bytes)"
            ]
        );
        assert_eq!(f.test_scripts, ["/root/test.sh"]);
        assert_eq!(
            f.machine_id.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert!(!f.firstboot_program);
        assert_eq!(f.firstboot_hooks, ["/etc/inittab"]);
    }

    #[test]
    fn not_ext_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("zero");
        std::fs::write(&p, vec![0u8; 65536]).unwrap();
        assert!(matches!(FsView::open(&p, 0), Err(FsError::NotExt { .. })));
    }
}
