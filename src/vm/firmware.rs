//! Firmware: SeaBIOS (QEMU's default) or OVMF (UEFI) from Debian's `ovmf` package, and
//! which one each boot of an image uses ([`decide`]).
//!
//! OVMF's code is attached read-only; its variable store is written by the guest (boot
//! entries, Secure Boot state), so every boot gets a private copy in the run's temp dir
//! ([`Ovmf::private_vars`]), never shared and never the package's file. Secure Boot uses
//! the build with Microsoft's keys enrolled (`*.ms.fd`), which needs SMM (`q35,smm=on`,
//! secure pflash: [`super::VmSpec::args`]).

use std::path::{Path, PathBuf};

use super::VmError;
use crate::facts::{BootSupport, Firmware, FirmwareFacts};
use crate::named::Named;

/// Where Debian's `ovmf` package installs the firmware.
pub const OVMF_DIR: &str = "/usr/share/OVMF";

crate::named_enum! {
    /// Which firmware boots the image.
    #[derive(Default)]
    pub enum FirmwareChoice("firmware") {
        /// What the image offers: BIOS boot code only -> bios, an ESP loader only -> uefi,
        /// both -> both.
        #[default]
        Auto = "auto",
        /// SeaBIOS only.
        Bios = "bios",
        /// OVMF only.
        Uefi = "uefi",
        /// The boots split between SeaBIOS and OVMF (at least one each).
        Both = "both",
    }
}

/// OVMF's two files: the code and the variable store to copy per boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ovmf {
    /// The firmware code (read-only).
    pub code: PathBuf,
    /// The pristine variable store (never attached itself).
    pub vars: PathBuf,
    /// Whether this is the Secure Boot build with Microsoft's keys enrolled.
    pub secure_boot: bool,
}

impl Ovmf {
    /// The files in `dir`: the 4 MiB build, or its Secure Boot build with Microsoft's keys.
    pub fn in_dir(dir: &Path, secure_boot: bool) -> Ovmf {
        let (code, vars) = if secure_boot {
            ("OVMF_CODE_4M.ms.fd", "OVMF_VARS_4M.ms.fd")
        } else {
            ("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd")
        };
        Ovmf {
            code: dir.join(code),
            vars: dir.join(vars),
            secure_boot,
        }
    }

    /// Debian's OVMF, checked to be installed.
    pub fn locate(secure_boot: bool) -> Result<Ovmf, VmError> {
        let o = Ovmf::in_dir(Path::new(OVMF_DIR), secure_boot);
        for f in [&o.code, &o.vars] {
            if !f.is_file() {
                return Err(VmError::Firmware(format!(
                    "{} is missing (Debian package ovmf)",
                    f.display()
                )));
            }
        }
        Ok(o)
    }

    /// A private copy of the variable store at `dest` (mode 0600), for one boot.
    pub fn private_vars(&self, dest: &Path) -> Result<PathBuf, VmError> {
        let fail = |e: std::io::Error| {
            VmError::Firmware(format!("cannot copy {}: {e}", self.vars.display()))
        };
        let mut from = std::fs::File::open(&self.vars).map_err(fail)?;
        let mut to = crate::scratch::private_file(dest).map_err(fail)?;
        std::io::copy(&mut from, &mut to).map_err(fail)?;
        Ok(dest.to_owned())
    }
}

/// Why no firmware plan fits the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FirmwareError {
    /// Secure Boot was asked for but no boot runs under UEFI.
    #[error("Secure Boot needs a UEFI boot, but {0}")]
    SecureBootWithoutUefi(String),
}

/// The firmwares the boots of an image use, and why: `choice`, or for `auto` what the
/// image offers (`support`; an image that shows neither boots under BIOS, as before; a
/// direct kernel boot needs no firmware choice and takes BIOS). `secure_boot`: UEFI
/// boots run OVMF's Secure Boot build.
pub fn decide(
    choice: FirmwareChoice,
    support: &BootSupport,
    direct_kernel: bool,
    secure_boot: bool,
) -> Result<FirmwareFacts, FirmwareError> {
    let offers = support.firmwares();
    let (firmwares, reason) = match choice {
        FirmwareChoice::Bios => (vec![Firmware::Bios], "requested".to_string()),
        FirmwareChoice::Uefi => (vec![Firmware::Uefi], "requested".to_string()),
        FirmwareChoice::Both => (
            vec![Firmware::Bios, Firmware::Uefi],
            "requested".to_string(),
        ),
        FirmwareChoice::Auto if direct_kernel => (
            vec![Firmware::Bios],
            "direct kernel boot: the firmware loads no bootloader".to_string(),
        ),
        FirmwareChoice::Auto if offers.is_empty() => (
            vec![Firmware::Bios],
            format!(
                "the image shows no boot code for either firmware ({}): BIOS tried",
                support.missing.join("; ")
            ),
        ),
        FirmwareChoice::Auto => {
            let names: Vec<String> = [&support.bios, &support.uefi]
                .into_iter()
                .zip(Firmware::ALL)
                .filter_map(|(e, f)| e.as_ref().map(|e| format!("{f}: {e}")))
                .collect();
            let mut reason = format!("the image offers {}", names.join("; "));
            if offers.len() == 1 {
                reason.push_str(&format!(" ({})", support.missing.join("; ")));
            }
            (offers, reason)
        }
    };
    if secure_boot && !firmwares.contains(&Firmware::Uefi) {
        return Err(FirmwareError::SecureBootWithoutUefi(format!(
            "the boots use BIOS only ({reason})"
        )));
    }
    Ok(FirmwareFacts {
        firmwares,
        secure_boot,
        reason,
        support: support.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offers(bios: bool, uefi: bool) -> BootSupport {
        BootSupport {
            bios: bios.then(|| "boot code in the MBR".into()),
            uefi: uefi.then(|| "EFI/BOOT/BOOTX64.EFI on the ESP (partition 3)".into()),
            missing: [(!bios, "no boot code"), (!uefi, "no ESP")]
                .into_iter()
                .filter(|&(m, _)| m)
                .map(|(_, s)| s.to_string())
                .collect(),
        }
    }

    #[test]
    fn auto_follows_what_the_image_offers() {
        let d = |b, u| decide(FirmwareChoice::Auto, &offers(b, u), false, false).unwrap();
        assert_eq!(d(true, false).firmwares, [Firmware::Bios]);
        assert_eq!(d(false, true).firmwares, [Firmware::Uefi]);
        let hybrid = d(true, true);
        assert_eq!(hybrid.firmwares, [Firmware::Bios, Firmware::Uefi]);
        assert_eq!(
            (hybrid.for_boot(0), hybrid.for_boot(1), hybrid.for_boot(2)),
            (Firmware::Bios, Firmware::Uefi, Firmware::Bios)
        );
        assert!(d(false, true).reason.contains("uefi: EFI/BOOT/BOOTX64.EFI"));
        assert!(d(false, true).reason.contains("no boot code"));
        let neither = d(false, false);
        assert_eq!(neither.firmwares, [Firmware::Bios]);
        assert!(neither.reason.contains("no ESP"), "{}", neither.reason);
        let direct = decide(FirmwareChoice::Auto, &offers(false, true), true, false).unwrap();
        assert_eq!(direct.firmwares, [Firmware::Bios]);
    }

    #[test]
    fn requests_win_and_secure_boot_needs_uefi() {
        let both = decide(FirmwareChoice::Both, &offers(true, false), false, true).unwrap();
        assert_eq!(both.firmwares, [Firmware::Bios, Firmware::Uefi]);
        assert!(both.secure_boot);
        let e = decide(FirmwareChoice::Auto, &offers(true, false), false, true).unwrap_err();
        assert!(
            e.to_string().contains("Secure Boot needs a UEFI boot"),
            "{e}"
        );
        assert!(decide(FirmwareChoice::Bios, &offers(true, true), false, true).is_err());
    }

    #[test]
    fn ovmf_files_and_private_copies() {
        let d = tempfile::tempdir().unwrap();
        let o = Ovmf::in_dir(d.path(), true);
        assert!(o.code.ends_with("OVMF_CODE_4M.ms.fd"));
        assert!(o.vars.ends_with("OVMF_VARS_4M.ms.fd"));
        std::fs::write(&o.vars, b"vars").unwrap();
        let copy = o.private_vars(&d.path().join("boot0.fd")).unwrap();
        assert_eq!(std::fs::read(&copy).unwrap(), b"vars");
        let mode = std::fs::metadata(&copy).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let plain = Ovmf::in_dir(Path::new(OVMF_DIR), false);
        assert!(plain.code.ends_with("OVMF_CODE_4M.fd"));
    }
}
