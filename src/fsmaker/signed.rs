//! The signed UEFI boot chain for Secure Boot, from Debian's packages: shim
//! (`shim-signed`, signed by Microsoft's UEFI CA, which OVMF's and most clouds' key
//! databases trust) and GRUB (`grub-efi-amd64-signed`, signed by Debian's key, which shim
//! carries). Imported once into the kernel cache's directory, like a kernel:
//!
//! ```text
//! secure-boot/shimx64.efi    shim, as BOOTX64.EFI
//! secure-boot/grubx64.efi    GRUB, beside it (shim loads grubx64.efi from its directory)
//! secure-boot/chain.json     each package, its version and the sha256 of its .deb
//! ```
//!
//! The signed GRUB is one image with its modules built in; it reads its configuration from
//! [`SIGNED_GRUB_PREFIX`] on the ESP and checks the kernel's signature through shim, so
//! the kernel must be signed too ([`super::kernel::is_signed`]). Only an import writes, and
//! only inside the cache.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::kernel::{Cache, apt_download, deb_field, is_path, local_deb, sha256_file, unpack_deb};
use super::{BuildError, Event};

/// The packages `fsmaker secure-boot fetch` imports by default.
pub const PACKAGES: [&str; 2] = ["shim-signed", "grub-efi-amd64-signed"];

/// The directory Debian's signed GRUB takes as its prefix on the ESP: its `grub.cfg`
/// goes there.
pub const SIGNED_GRUB_PREFIX: &str = "/EFI/debian";

/// The signed file each package holds, and its name in the cache.
const FILES: [(&str, &str, &str); 2] = [
    (
        "shim-signed",
        "usr/lib/shim/shimx64.efi.signed",
        "shimx64.efi",
    ),
    (
        "grub-efi-amd64-signed",
        "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
        "grubx64.efi",
    ),
];

/// One imported package.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PackageMeta {
    /// The package's name.
    pub package: String,
    /// Its version.
    pub version: String,
    /// sha256 of the imported .deb.
    pub deb_sha256: String,
}

/// The signed chain in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedChain {
    /// Its directory (`secure-boot` in the cache).
    pub dir: PathBuf,
    /// The packages it came from (shim, then GRUB).
    pub packages: Vec<PackageMeta>,
}

impl SignedChain {
    /// shim, booted as `BOOTX64.EFI`.
    pub fn shim(&self) -> PathBuf {
        self.dir.join(FILES[0].2)
    }
    /// The signed GRUB, `grubx64.efi` beside shim.
    pub fn grub(&self) -> PathBuf {
        self.dir.join(FILES[1].2)
    }
}

impl Cache {
    fn chain_dir(&self) -> PathBuf {
        self.root.join("secure-boot")
    }

    /// The signed chain imported into the cache.
    pub fn signed_chain(&self) -> Result<SignedChain, BuildError> {
        let dir = self.chain_dir();
        let meta = std::fs::read_to_string(dir.join("chain.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .ok_or_else(|| BuildError::NoSignedChain {
                cache: self.root.clone(),
            })?;
        Ok(SignedChain {
            dir,
            packages: meta,
        })
    }

    /// Imports the signed chain from `what`: `.deb` files, or package names fetched with
    /// `apt-get download` ([`PACKAGES`] when empty). Both packages must be among them.
    /// Downloads report their steps and bytes to `on`.
    pub fn fetch_signed_chain(
        &self,
        what: &[String],
        on: &mut dyn FnMut(Event),
    ) -> Result<SignedChain, BuildError> {
        std::fs::create_dir_all(&self.root)
            .map_err(|e| BuildError::io(format!("cannot create {}", self.root.display()), e))?;
        let work = tempfile::Builder::new()
            .prefix(".fetch-")
            .tempdir_in(&self.root)
            .map_err(|e| BuildError::io("cannot create a temp dir in the cache", e))?;
        let names: Vec<String> = if what.is_empty() {
            PACKAGES.iter().map(|p| p.to_string()).collect()
        } else {
            what.to_vec()
        };
        let mut debs = Vec::new();
        for n in &names {
            let deb = if is_path(n) {
                local_deb(n)?
            } else {
                apt_download(n, work.path(), on)?
            };
            let package = deb_field(&deb, "Package")?;
            debs.push((deb, package));
        }
        let chain = work.path().join("secure-boot");
        std::fs::create_dir(&chain)
            .map_err(|e| BuildError::io("cannot create a temp dir in the cache", e))?;
        let mut packages = Vec::new();
        for (package, inside, name) in FILES {
            let (deb, meta) = find_package(&debs, package)?;
            extract(&deb, inside, &work.path().join(name), &chain.join(name))?;
            packages.push(meta);
        }
        let json = serde_json::to_string_pretty(&packages).expect("serialises");
        std::fs::write(chain.join("chain.json"), json)
            .map_err(|e| BuildError::io("cannot write chain.json", e))?;
        let dest = self.chain_dir();
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::rename(&chain, &dest)
            .map_err(|e| BuildError::io(format!("cannot create {}", dest.display()), e))?;
        self.signed_chain()
    }
}

/// The one of `debs` (each with its package name) that is `package`, with what the cache
/// records of it.
fn find_package(
    debs: &[(PathBuf, String)],
    package: &'static str,
) -> Result<(PathBuf, PackageMeta), BuildError> {
    let (deb, _) = debs
        .iter()
        .find(|(_, name)| name == package)
        .ok_or(BuildError::SignedPackageMissing(package))?;
    let meta = PackageMeta {
        package: package.to_string(),
        version: deb_field(deb, "Version")?,
        deb_sha256: sha256_file(deb)?,
    };
    Ok((deb.clone(), meta))
}

/// Copies `inside` out of `deb` (unpacked into `tree`) to `to`.
fn extract(deb: &Path, inside: &str, tree: &Path, to: &Path) -> Result<(), BuildError> {
    unpack_deb(deb, tree)?;
    std::fs::copy(tree.join(inside), to).map_err(|_| BuildError::BadDeb {
        deb: deb.to_owned(),
        why: format!("it holds no /{inside}"),
    })?;
    Ok(())
}
