//! Firmware: which firmware can boot an image (read offline from its boot sector, EFI
//! system partition or El Torito catalogue), which ones the run booted it with and why,
//! and what the running guest says about Secure Boot.

use serde::{Deserialize, Serialize};

crate::named_enum! {
    /// The firmware one boot ran under.
    #[derive(PartialOrd, Ord, Default)]
    pub enum Firmware("firmware") {
        /// SeaBIOS (legacy BIOS).
        #[default]
        Bios = "bios",
        /// OVMF (UEFI).
        Uefi = "uefi",
    }
}

/// What an image offers each firmware, read offline: the evidence for each, and why the
/// other is missing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootSupport {
    /// What BIOS would boot (boot code in sector 0, an El Torito BIOS image), if anything.
    pub bios: Option<String>,
    /// What UEFI would boot (`EFI/BOOT/BOOTX64.EFI` on an ESP, an El Torito EFI image).
    pub uefi: Option<String>,
    /// Why a firmware finds nothing (no boot code, no ESP, no loader on the ESP).
    pub missing: Vec<String>,
}

impl BootSupport {
    /// The firmwares the image can boot with, BIOS first.
    pub fn firmwares(&self) -> Vec<Firmware> {
        [
            (self.bios.is_some(), Firmware::Bios),
            (self.uefi.is_some(), Firmware::Uefi),
        ]
        .into_iter()
        .filter_map(|(yes, f)| yes.then_some(f))
        .collect()
    }
}

/// The firmwares a run booted the image with, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareFacts {
    /// Each firmware used, in the order the boots take them (boot i: `firmwares[i % n]`).
    pub firmwares: Vec<Firmware>,
    /// Whether UEFI boots ran OVMF's Secure Boot build with Microsoft's keys enrolled.
    pub secure_boot: bool,
    /// How they were chosen (flag, or what the image offers).
    pub reason: String,
    /// What the image offers each firmware, when it could be read.
    pub support: BootSupport,
}

impl FirmwareFacts {
    /// The firmware boot `i` runs under.
    pub fn for_boot(&self, i: usize) -> Firmware {
        self.firmwares[i % self.firmwares.len()]
    }
}

/// What the running guest says about Secure Boot (the probe).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecureBootState {
    /// Whether the guest booted through UEFI (`/sys/firmware/efi` exists).
    pub efi: bool,
    /// Secure Boot enforced (true), off (false), or unknown (the variable unreadable).
    pub enabled: Option<bool>,
    /// Where the answer came from (`SecureBoot` EFI variable, `mokutil --sb-state`).
    pub source: String,
}
