//! Writes files into an ext2/3/4 filesystem without mounting it, through one batched
//! `debugfs -w -f CMDFILE` run. The batch pins debugfs's clock (`set_current_time`) so
//! every inode and the superblock get the same timestamps on every run.
//!
//! debugfs exits 0 even when a command fails, so any stderr line other than its
//! version banner is treated as an error.
//!
//! This module only speaks debugfs: what to install and where is decided by the build
//! (`install`), and it never opens an image itself.

use std::path::Path;
use std::process::Command;

use super::BuildError;
use crate::helper::{self, HelperError};

/// A list of debugfs commands, built in memory and run once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    script: String,
}

/// debugfs splits arguments on blanks unless quoted.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\\\""))
}

impl Batch {
    /// A batch whose timestamps are all `epoch` (seconds since 1970, UTC).
    pub fn new(epoch: i64) -> Batch {
        let mut b = Batch::default();
        b.line(&format!("set_current_time @{epoch}"));
        b
    }

    fn line(&mut self, l: &str) {
        self.script.push_str(l);
        self.script.push('\n');
    }

    /// `mkdir PATH` (the parent must exist or be created earlier in the batch).
    pub fn mkdir(&mut self, path: &str) {
        self.line(&format!("mkdir {}", quote(path)));
    }

    /// Copies the host file `host` to `path`; host permissions are kept, owner is root.
    pub fn write(&mut self, host: &Path, path: &str) {
        self.line(&format!(
            "write {} {}",
            quote(&host.to_string_lossy()),
            quote(path)
        ));
    }

    /// `symlink PATH TARGET`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.line(&format!("symlink {} {}", quote(path), quote(target)));
    }

    /// Removes the file at `path` (used before replacing it).
    pub fn rm(&mut self, path: &str) {
        self.line(&format!("rm {}", quote(path)));
    }

    /// The command file text.
    pub fn script(&self) -> &str {
        &self.script
    }

    /// Runs the batch against `device` (which may carry a `?offset=N` suffix).
    pub fn run(&self, device: &str, workdir: &Path) -> Result<(), BuildError> {
        let cmdfile = workdir.join("debugfs.cmd");
        std::fs::write(&cmdfile, &self.script)
            .map_err(|e| BuildError::io("cannot write the debugfs command file", e))?;
        let out = helper::run(
            Command::new("debugfs")
                .arg("-w")
                .arg("-f")
                .arg(&cmdfile)
                .arg(device),
            "e2fsprogs",
        )?;
        let errors: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("debugfs "))
            .collect();
        if let Some(first) = errors.first() {
            return Err(HelperError::Failed {
                tool: "debugfs".into(),
                message: format!("{first} ({} error line(s))", errors.len()),
            }
            .into());
        }
        Ok(())
    }
}

/// One entry of `debugfs -R 'ls -p DIR'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name within the directory.
    pub name: String,
    /// Its inode's mode: file type and permission bits.
    pub mode: u32,
}

impl DirEntry {
    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & 0o170000 == 0o040000
    }
    /// Whether it is a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.mode & 0o170000 == 0o120000
    }
}

/// Parses `ls -p` lines: `/INO/MODE/UID/GID/NAME/SIZE/`.
pub fn parse_ls(text: &str) -> Vec<DirEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split('/').collect();
            if f.len() < 7 || f[5] == "." || f[5] == ".." || f[5].is_empty() {
                return None;
            }
            Some(DirEntry {
                name: f[5].to_string(),
                mode: u32::from_str_radix(f[2], 8).ok()?,
            })
        })
        .collect()
}

/// Lists `dir` inside the filesystem at `device`; `None` if it does not exist.
pub fn list(device: &str, dir: &str) -> Result<Option<Vec<DirEntry>>, BuildError> {
    let out = helper::run(
        Command::new("debugfs")
            .arg("-R")
            .arg(format!("ls -p {}", quote(dir)))
            .arg(device),
        "e2fsprogs",
    )?;
    if out.stderr.contains("File not found") || out.stderr.contains("Ext2 inode is not a directory")
    {
        return Ok(None);
    }
    Ok(Some(parse_ls(&out.stdout)))
}

/// Reads a symlink's target inside the filesystem (`None` if `path` is not a symlink).
pub fn read_link(device: &str, path: &str) -> Result<Option<String>, BuildError> {
    let out = helper::run(
        Command::new("debugfs")
            .arg("-R")
            .arg(format!("stat {}", quote(path)))
            .arg(device),
        "e2fsprogs",
    )?;
    if !out.stdout.contains("Type: symlink") {
        return Ok(None);
    }
    Ok(out.stdout.lines().find_map(|l| {
        l.trim()
            .strip_prefix("Fast link dest: ")
            .map(|t| t.trim_matches('"').to_string())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_quotes_and_pins_time() {
        let mut b = Batch::new(1_700_000_000);
        b.mkdir("/boot");
        b.write(Path::new("/tmp/a b"), "/boot/vmlinuz-6.1");
        b.symlink("/vmlinuz", "boot/vmlinuz-6.1");
        b.rm("/boot/x");
        assert_eq!(
            b.script(),
            "set_current_time @1700000000\nmkdir \"/boot\"\nwrite \"/tmp/a b\" \"/boot/vmlinuz-6.1\"\n\
             symlink \"/vmlinuz\" \"boot/vmlinuz-6.1\"\nrm \"/boot/x\"\n"
        );
    }

    #[test]
    fn parses_ls_p() {
        let text = "/2/040755/0/0/./\n/2/040755/0/0/../\n/12/100644/0/0/vmlinuz-6.1.0-1/123/\n/13/040755/0/0/grub//\n/14/120777/0/0/lib/7/\n";
        let e = parse_ls(text);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].name, "vmlinuz-6.1.0-1");
        assert!(!e[0].is_dir());
        assert!(e[1].is_dir());
        assert!(e[2].is_symlink());
    }
}
