//! The kernel cache: Debian `linux-image-*` packages imported once, with an initrd built
//! for each. Layout under the cache directory:
//!
//! ```text
//! kernels/<version>/vmlinuz        the kernel
//! kernels/<version>/initrd.img     fsmaker's initrd (see `initrd`)
//! kernels/<version>/modules/       /lib/modules/<version>, with depmod's indexes
//! kernels/<version>/kernel.json    package, version, sha256 of the .deb
//! ```
//!
//! The cache directory is `$FSMAKER_CACHE`, else `$XDG_CACHE_HOME/fsmaker`, else
//! `~/.cache/fsmaker`. An entry appears atomically (built in a temp dir, then renamed).
//! Only an import writes, and only inside the cache; nothing here touches a disk image.

use std::cmp::Ordering;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{BuildError, Event, Step, initrd};
use crate::helper::{self, HelperError};

/// The package `fsmaker kernel fetch` imports by default.
pub const DEFAULT_PACKAGE: &str = "linux-image-cloud-amd64";

/// What the cache records about an imported kernel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KernelMeta {
    /// `uname -r` of the kernel, e.g. `6.1.0-56-cloud-amd64`.
    pub version: String,
    /// The Debian package it came from.
    pub package: String,
    /// That package's version.
    pub package_version: String,
    /// sha256 of the imported .deb.
    pub deb_sha256: String,
}

/// A kernel in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedKernel {
    /// What the cache recorded at import.
    pub meta: KernelMeta,
    /// Its entry, `kernels/<version>` in the cache.
    pub dir: PathBuf,
}

impl CachedKernel {
    /// The kernel image.
    pub fn vmlinuz(&self) -> PathBuf {
        self.dir.join("vmlinuz")
    }
    /// fsmaker's initrd for it.
    pub fn initrd(&self) -> PathBuf {
        self.dir.join("initrd.img")
    }
    /// Its `/lib/modules/<version>` tree, with depmod's indexes.
    pub fn modules(&self) -> PathBuf {
        self.dir.join("modules")
    }
}

/// The kernel cache directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    /// The cache directory (see the module note for how it is chosen).
    pub root: PathBuf,
}

impl Cache {
    /// The cache named by the environment (see the module note).
    pub fn from_env() -> Result<Cache, BuildError> {
        let root = std::env::var_os("FSMAKER_CACHE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| crate::scratch::user_cache_dir("fsmaker"))
            .ok_or(BuildError::NoCacheDir)?;
        Ok(Cache { root })
    }

    fn kernels(&self) -> PathBuf {
        self.root.join("kernels")
    }

    /// Every cached kernel, oldest version first.
    pub fn list(&self) -> Result<Vec<CachedKernel>, BuildError> {
        let mut v = Vec::new();
        let rd = match std::fs::read_dir(self.kernels()) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(v),
            Err(e) => {
                return Err(BuildError::io(
                    format!("cannot list {}", self.kernels().display()),
                    e,
                ));
            }
        };
        for e in rd.flatten() {
            let dir = e.path();
            let Ok(text) = std::fs::read_to_string(dir.join("kernel.json")) else {
                continue;
            };
            if let Ok(meta) = serde_json::from_str::<KernelMeta>(&text) {
                v.push(CachedKernel { meta, dir });
            }
        }
        v.sort_by(|a, b| version_cmp(&a.meta.version, &b.meta.version));
        Ok(v)
    }

    /// The newest cached kernel, or the one whose version is `version`.
    pub fn pick(&self, version: Option<&str>) -> Result<CachedKernel, BuildError> {
        let all = self.list()?;
        match version {
            Some(want) => all
                .into_iter()
                .find(|k| k.meta.version == want)
                .ok_or_else(|| BuildError::NoKernel {
                    cache: self.root.clone(),
                    detail: format!("kernel {want} is not cached"),
                }),
            None => all
                .into_iter()
                .next_back()
                .ok_or_else(|| BuildError::NoKernel {
                    cache: self.root.clone(),
                    detail: "no kernel is cached".into(),
                }),
        }
    }

    /// Imports a package: a path to a `.deb`, or a package name fetched with
    /// `apt-get download` (a meta package such as `linux-image-cloud-amd64` is resolved
    /// to the `linux-image-<version>` package it depends on). Its steps (download, unpack,
    /// depmod, initrd) and the download's bytes go to `on`.
    pub fn fetch(
        &self,
        what: &str,
        epoch: i64,
        on: &mut dyn FnMut(Event),
    ) -> Result<CachedKernel, BuildError> {
        let local = is_path(what).then(|| local_deb(what)).transpose()?;
        std::fs::create_dir_all(self.kernels())
            .map_err(|e| BuildError::io(format!("cannot create {}", self.root.display()), e))?;
        let work = tempfile::Builder::new()
            .prefix(".fetch-")
            .tempdir_in(&self.root)
            .map_err(|e| BuildError::io("cannot create a temp dir in the cache", e))?;
        let deb = match local {
            Some(p) => p,
            None => {
                let first = apt_download(what, work.path(), on)?;
                if deb_has_kernel(&first)? {
                    first
                } else {
                    let dep = kernel_dependency(&first)?;
                    apt_download(&dep, work.path(), on)?
                }
            }
        };
        self.import(&deb, work.path(), epoch, on)
    }

    fn import(
        &self,
        deb: &Path,
        work: &Path,
        epoch: i64,
        on: &mut dyn FnMut(Event),
    ) -> Result<CachedKernel, BuildError> {
        let package = deb_field(deb, "Package")?;
        let package_version = deb_field(deb, "Version")?;
        on(Event::Step(Step::Unpack {
            package: package.clone(),
            version: package_version.clone(),
        }));
        let tree = work.join("tree");
        let (vmlinuz, version, moddir) = unpack(deb, &package, &tree)?;
        on(Event::Step(Step::Depmod {
            kernel: version.clone(),
        }));
        helper::run(
            Command::new("depmod").arg("-b").arg(&tree).arg(&version),
            "kmod",
        )?;
        let entry = work.join("entry");
        std::fs::create_dir_all(&entry)
            .map_err(|e| BuildError::io("cannot create the cache entry", e))?;
        let mv = |from: &Path, to: &Path| {
            std::fs::rename(from, to).map_err(|e| BuildError::io("cannot fill the cache entry", e))
        };
        mv(&vmlinuz, &entry.join("vmlinuz"))?;
        mv(&moddir, &entry.join("modules"))?;
        on(Event::Step(Step::Initrd {
            kernel: version.clone(),
        }));
        let img = initrd::build(&entry.join("modules"), &version, epoch)?;
        std::fs::write(entry.join("initrd.img"), img)
            .map_err(|e| BuildError::io("cannot write initrd.img", e))?;
        let meta = KernelMeta {
            version: version.clone(),
            package,
            package_version,
            deb_sha256: sha256_file(deb)?,
        };
        let json = serde_json::to_string_pretty(&meta).expect("plain struct serialises");
        std::fs::write(entry.join("kernel.json"), json + "\n")
            .map_err(|e| BuildError::io("cannot write kernel.json", e))?;
        let dest = self.kernels().join(&version);
        if dest.exists() {
            std::fs::remove_dir_all(&dest)
                .map_err(|e| BuildError::io(format!("cannot replace {}", dest.display()), e))?;
        }
        mv(&entry, &dest)?;
        Ok(CachedKernel { meta, dir: dest })
    }
}

/// `what` as a package file to import, if it is a regular file.
pub(super) fn local_deb(what: &str) -> Result<PathBuf, BuildError> {
    let p = PathBuf::from(what);
    let why = if p.is_file() {
        return Ok(p);
    } else if p.is_dir() {
        "a directory, not a .deb file"
    } else if p.exists() {
        "not a regular file"
    } else {
        "no such file"
    };
    Err(BuildError::BadDeb {
        deb: p,
        why: why.into(),
    })
}

/// Whether `what` names a file rather than a package: it ends in `.deb`, it has a `/`
/// (which no Debian package name has), or something by that name exists.
pub(super) fn is_path(what: &str) -> bool {
    what.ends_with(".deb") || what.contains('/') || Path::new(what).exists()
}

/// A control field of a package file (`Package`, `Version`).
pub(super) fn deb_field(deb: &Path, field: &str) -> Result<String, BuildError> {
    let out = helper::run(
        Command::new("dpkg-deb").arg("-f").arg(deb).arg(field),
        "dpkg",
    )
    .map_err(|e| BuildError::BadDeb {
        deb: deb.to_owned(),
        why: e.to_string(),
    })?;
    Ok(out.stdout.trim().to_string())
}

/// Unpacks package file `deb` into `tree` (`dpkg-deb -x`).
pub(super) fn unpack_deb(deb: &Path, tree: &Path) -> Result<(), BuildError> {
    helper::run(
        Command::new("dpkg-deb").arg("-x").arg(deb).arg(tree),
        "dpkg",
    )
    .map_err(|e| BuildError::BadDeb {
        deb: deb.to_owned(),
        why: e.to_string(),
    })?;
    Ok(())
}

/// Unpacks kernel package `deb` (named `package`) into `tree`: its kernel image, the
/// release that kernel reports, and its `/lib/modules/<release>`.
fn unpack(
    deb: &Path,
    package: &str,
    tree: &Path,
) -> Result<(PathBuf, String, PathBuf), BuildError> {
    let bad = |why: String| BuildError::BadDeb {
        deb: deb.to_owned(),
        why,
    };
    unpack_deb(deb, tree)?;
    let vmlinuz = newest_vmlinuz(&tree.join("boot"))?.ok_or_else(|| {
        bad(format!(
            "package {package} holds no /boot/vmlinuz-*: it is not a Linux kernel package"
        ))
    })?;
    let version = bzimage_version(&vmlinuz)?;
    let moddir = tree.join("lib/modules").join(&version);
    if !moddir.is_dir() {
        return Err(bad(format!("no /lib/modules/{version} in {package}")));
    }
    Ok((vmlinuz, version, moddir))
}

/// Downloads `package` into `dir` with `apt-get download`. Its progress goes to `on` as
/// bytes: apt's status lines (`APT::Status-Fd`) give a percentage, and `--print-uris`
/// the size beforehand.
pub(super) fn apt_download(
    package: &str,
    dir: &Path,
    on: &mut dyn FnMut(Event),
) -> Result<PathBuf, BuildError> {
    let before: Vec<PathBuf> = debs_in(dir);
    let apt = || {
        let mut c = Command::new("apt-get");
        c.args(["download", "-q"]).current_dir(dir);
        c
    };
    let total = helper::run(apt().arg("--print-uris").arg(package), "apt")
        .ok()
        .and_then(|o| uris_size(&o.stdout));
    on(Event::Step(Step::Download {
        package: package.into(),
        bytes: total,
    }));
    helper::run_lines(
        apt().args(["-o", "APT::Status-Fd=1"]).arg(package),
        "apt",
        &mut |line| {
            if let (Some(total), Some(percent)) = (total, download_percent(line)) {
                let done = (total as f64 * percent / 100.0) as u64;
                on(Event::Bytes {
                    done: done.min(total),
                    total: Some(total),
                });
            }
        },
    )?;
    let deb = debs_in(dir)
        .into_iter()
        .find(|p| !before.contains(p))
        .ok_or_else(|| HelperError::Failed {
            tool: "apt-get download".into(),
            message: format!("no .deb appeared for {package}"),
        })?;
    if let Ok(m) = deb.metadata() {
        on(Event::Bytes {
            done: m.len(),
            total: total.or(Some(m.len())),
        });
    }
    Ok(deb)
}

/// The bytes `apt-get download --print-uris` announces (`'URL' FILE SIZE HASH` lines).
pub fn uris_size(print_uris: &str) -> Option<u64> {
    let sizes: Vec<u64> = print_uris
        .lines()
        .filter(|l| l.starts_with('\''))
        .filter_map(|l| l.split_whitespace().nth(2)?.parse().ok())
        .collect();
    (!sizes.is_empty()).then(|| sizes.iter().sum())
}

/// The percentage of an apt status line `dlstatus:ITEM:PERCENT:MESSAGE`.
pub fn download_percent(line: &str) -> Option<f64> {
    let mut f = line.strip_prefix("dlstatus:")?.split(':');
    f.nth(1)?.parse().ok()
}

fn debs_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "deb"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn deb_has_kernel(deb: &Path) -> Result<bool, BuildError> {
    let out = helper::run(Command::new("dpkg-deb").arg("-c").arg(deb), "dpkg")?;
    Ok(out.stdout.lines().any(|l| l.contains("./boot/vmlinuz-")))
}

/// The `linux-image-*` package a meta package depends on.
fn kernel_dependency(deb: &Path) -> Result<String, BuildError> {
    let out = helper::run(
        Command::new("dpkg-deb").arg("-f").arg(deb).arg("Depends"),
        "dpkg",
    )?;
    pick_kernel_dependency(&out.stdout).ok_or_else(|| BuildError::BadDeb {
        deb: deb.to_owned(),
        why: "it holds no /boot/vmlinuz-* and depends on no linux-image-* package: it is not a Linux kernel package".into(),
    })
}

/// Picks the first `linux-image-*` name out of a Depends field.
pub fn pick_kernel_dependency(depends: &str) -> Option<String> {
    depends
        .split([',', '|'])
        .map(|d| d.split_whitespace().next().unwrap_or(""))
        .find(|n| n.starts_with("linux-image-"))
        .map(str::to_string)
}

fn newest_vmlinuz(boot: &Path) -> Result<Option<PathBuf>, BuildError> {
    let Ok(rd) = std::fs::read_dir(boot) else {
        return Ok(None);
    };
    let mut names: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.starts_with("vmlinuz-"))
        .collect();
    names.sort_by(|a, b| version_cmp(a, b));
    Ok(names.pop().map(|n| boot.join(n)))
}

/// The version string a bzImage carries (the first word of its banner), read from the
/// setup header's `kernel_version` pointer.
pub fn bzimage_version(path: &Path) -> Result<String, BuildError> {
    let b = std::fs::read(path)
        .map_err(|e| BuildError::io(format!("cannot read {}", path.display()), e))?;
    parse_bzimage_version(&b).ok_or_else(|| BuildError::NotKernel(path.to_owned()))
}

/// Parses the setup header: "HdrS" at 0x202, `kernel_version` (u16) at 0x20e.
pub fn parse_bzimage_version(b: &[u8]) -> Option<String> {
    if b.len() < 0x210 || &b[0x202..0x206] != b"HdrS" {
        return None;
    }
    let off = usize::from(u16::from_le_bytes([b[0x20e], b[0x20f]])) + 0x200;
    let tail = b.get(off..)?;
    let end = tail.iter().position(|&c| c == 0 || c == b' ')?;
    let v = std::str::from_utf8(&tail[..end]).ok()?;
    (!v.is_empty()).then(|| v.to_string())
}

/// Orders version strings by runs of digits (compared as numbers) and non-digits, so
/// `6.1.0-9` sorts before `6.1.0-10`.
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    fn runs(s: &str) -> Vec<(bool, &str)> {
        let mut v = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                v.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        v
    }
    let (ra, rb) = (runs(a), runs(b));
    for (x, y) in ra.iter().zip(rb.iter()) {
        let o = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    ra.len().cmp(&rb.len())
}

/// Whether the EFI application (or bzImage, whose EFI stub makes it one) at `path`
/// carries an Authenticode signature: a certificate table in its PE header, which UEFI
/// Secure Boot and shim check. Debian's kernels are signed; a kernel built locally is not.
pub fn is_signed(path: &Path) -> Result<bool, BuildError> {
    let b = std::fs::read(path)
        .map_err(|e| BuildError::io(format!("cannot read {}", path.display()), e))?;
    Ok(pe_certificate_table(&b)
        .is_some_and(|(at, len)| len > 0 && at.checked_add(len).is_some_and(|end| end <= b.len())))
}

/// The certificate table (file offset, length) a PE image's header names, if it parses.
pub fn pe_certificate_table(b: &[u8]) -> Option<(usize, usize)> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?));
    if b.get(..2)? != b"MZ" {
        return None;
    }
    let pe = u32_at(0x3c)? as usize;
    if b.get(pe..pe + 4)? != b"PE\0\0" {
        return None;
    }
    let optional = pe + 24;
    // The data directories follow the standard and Windows fields: 96 bytes for PE32,
    // 112 for PE32+; the certificate table is the fifth directory.
    let dirs = match u16_at(optional)? {
        0x10b => optional + 96,
        0x20b => optional + 112,
        _ => return None,
    };
    let entry = dirs + 4 * 8;
    Some((u32_at(entry)? as usize, u32_at(entry + 4)? as usize))
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String, BuildError> {
    let mut f = std::fs::File::open(path)
        .map_err(|e| BuildError::io(format!("cannot read {}", path.display()), e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| BuildError::io(format!("cannot read {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_numerically() {
        let mut v = vec![
            "6.1.0-9-cloud-amd64",
            "6.1.0-56-cloud-amd64",
            "5.10.0-30-amd64",
            "6.12.1",
        ];
        v.sort_by(|a, b| version_cmp(a, b));
        assert_eq!(
            v,
            [
                "5.10.0-30-amd64",
                "6.1.0-9-cloud-amd64",
                "6.1.0-56-cloud-amd64",
                "6.12.1"
            ]
        );
    }

    #[test]
    fn meta_package_dependency() {
        assert_eq!(
            pick_kernel_dependency("linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)").as_deref(),
            Some("linux-image-6.1.0-56-cloud-amd64")
        );
        assert_eq!(
            pick_kernel_dependency("kmod, linux-base (>= 4.3~), initramfs-tools | x"),
            None
        );
    }

    #[test]
    fn pe_certificate_table_is_read_from_the_optional_header() {
        let mut pe = vec![0u8; 0x400];
        pe[..2].copy_from_slice(b"MZ");
        pe[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        pe[0x80..0x84].copy_from_slice(b"PE\0\0");
        pe[0x98..0x9a].copy_from_slice(&0x20bu16.to_le_bytes());
        let entry = 0x98 + 112 + 32;
        assert_eq!(pe_certificate_table(&pe), Some((0, 0)));
        pe[entry..entry + 4].copy_from_slice(&0x300u32.to_le_bytes());
        pe[entry + 4..entry + 8].copy_from_slice(&0x100u32.to_le_bytes());
        assert_eq!(pe_certificate_table(&pe), Some((0x300, 0x100)));
        assert_eq!(pe_certificate_table(b"not a PE file"), None);
    }

    #[test]
    fn apt_sizes_and_percentages() {
        let uris = "'http://deb.debian.org/pool/l/linux-image-6.1.0-56-cloud-amd64_6.1.192-2_amd64.deb' linux-image-6.1.0-56-cloud-amd64_6.1.192-2_amd64.deb 26713492 SHA256:e7d0\n";
        assert_eq!(uris_size(uris), Some(26713492));
        assert_eq!(uris_size("W: Download is performed unsandboxed\n"), None);
        assert_eq!(
            download_percent("dlstatus:1:45.5000:Retrieving file 1 of 1"),
            Some(45.5)
        );
        assert_eq!(download_percent("pmstatus:dpkg:50:x"), None);
        assert_eq!(download_percent("Get:1 http://deb.debian.org"), None);
    }

    #[test]
    fn bzimage_header_version() {
        let mut b = vec![0u8; 0x400];
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        b[0x300..0x317].copy_from_slice(b"6.1.0-56-cloud-amd64 (d");
        assert_eq!(
            parse_bzimage_version(&b).as_deref(),
            Some("6.1.0-56-cloud-amd64")
        );
        b[0x202] = b'X';
        assert_eq!(parse_bzimage_version(&b), None);
    }
}
