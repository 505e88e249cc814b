//! What a serial console showed: the boot phases it reached and when, the first failure
//! pattern, and its last lines. Filled by `crate::console`, judged by the boot checks.

use serde::{Deserialize, Serialize};

crate::named_enum! {
    /// Boot phases in the order a guest normally reaches them.
    #[derive(PartialOrd, Ord)]
    pub enum Phase("boot phase") {
        /// SeaBIOS/iPXE banner, OVMF's boot manager (`BdsDxe:`).
        Firmware = "firmware",
        /// GRUB or ISOLINUX.
        Bootloader = "bootloader",
        /// "Linux version" (or the EFI stub).
        Kernel = "kernel",
        /// The real root's init started (for a boot medium, the kernel starting `/init`).
        Userspace = "userspace",
        /// A getty printed "login:".
        Login = "login",
    }
}

crate::named_enum! {
    /// What went wrong, as seen on the console.
    pub enum FailureKind("console failure") {
        /// "Kernel panic".
        KernelPanic = "kernel-panic",
        /// A kernel oops.
        Oops = "oops",
        /// The `grub rescue>` prompt.
        GrubRescue = "grub-rescue",
        /// systemd emergency mode, a maintenance login or the initramfs shell.
        EmergencyShell = "emergency-shell",
        /// The kernel or the initrd could not find or mount the root filesystem.
        RootNotFound = "root-not-found",
        /// The firmware found nothing to boot.
        NoBootDevice = "no-boot-device",
        /// The firmware fell back to its shell (OVMF's `Shell>`): nothing else booted.
        FirmwareShell = "firmware-shell",
        /// The firmware showed its boot manager menu, waiting for someone to choose.
        FirmwareMenu = "firmware-menu",
        /// Secure Boot refused a bootloader or kernel (OVMF's `Access Denied`, shim's
        /// `Security Violation`, GRUB's `bad shim signature`).
        SecureBootViolation = "secure-boot-violation",
        /// A bootloader stopped at its command line (GRUB's `grub>`, SYSLINUX's `boot:`).
        BootloaderPrompt = "bootloader-prompt",
        /// A bootloader menu waits with no timeout.
        BootloaderMenu = "bootloader-menu",
        /// The bootloader could boot none of its entries (GRUB's "Failed to boot both
        /// default and fallback entries").
        BootloaderFailed = "bootloader-failed",
    }
}

impl FailureKind {
    /// How people name it, as every view shows it: `kernel panic`, `grub rescue`.
    pub fn words(self) -> String {
        crate::named::Named::name(self).replace('-', " ")
    }
}

/// A failure pattern and the console line that showed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleFailure {
    /// The pattern's kind.
    pub kind: FailureKind,
    /// The (redacted) line.
    pub line: String,
    /// The firmware's last complaint before it (`BdsDxe: failed to load Boot0001 ...: Not
    /// Found`), when it had one: why nothing else booted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

impl ConsoleFailure {
    /// The line, and the firmware's complaint before it.
    pub fn describe(&self) -> String {
        match &self.cause {
            Some(c) if *c != self.line => format!("{} (after: {c})", self.line),
            _ => self.line.clone(),
        }
    }
}

/// The state a console has gathered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConsoleSummary {
    /// First time each phase was reached, in seconds since the VM started.
    pub phases: Vec<(Phase, f64)>,
    /// The first failure pattern seen.
    pub failure: Option<ConsoleFailure>,
    /// Whether QEMU closed the console (exited).
    pub closed: bool,
    /// The last lines (redacted).
    pub tail: Vec<String>,
    /// Lines starting with `firstboot:` (redacted).
    pub firstboot_lines: Vec<String>,
    /// The line of the console log (from 1) on which each phase was first seen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phase_lines: Vec<(Phase, usize)>,
    /// The line of the console log (from 1) that showed the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_line: Option<usize>,
    /// How many lines the console printed.
    #[serde(default)]
    pub lines: usize,
    /// When (seconds since the VM started) the first-boot agent said on the console that
    /// it has finished, and the line: cloud-init's final message (`Cloud-init v. 22.4
    /// finished at ...`), firstboot's `done` or its giving up (`accounts stay locked`).
    /// Whatever the agent does for a login it has done by then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_finished: Option<(f64, String)>,
}

impl ConsoleSummary {
    /// When `phase` was reached, if it was.
    pub fn reached(&self, phase: Phase) -> Option<f64> {
        self.phases
            .iter()
            .find(|(p, _)| *p == phase)
            .map(|&(_, t)| t)
    }

    /// Whether the console showed nothing at all (not even the firmware's banner).
    pub fn silent(&self) -> bool {
        self.phases.is_empty() && self.tail.iter().all(|l| l.trim().is_empty())
    }

    /// The line on which `phase` was first seen, if it was.
    pub fn line_of(&self, phase: Phase) -> Option<usize> {
        self.phase_lines
            .iter()
            .find(|(p, _)| *p == phase)
            .map(|&(_, l)| l)
    }

    /// The last non-empty line, or `(console empty)`.
    pub fn last_line(&self) -> String {
        self.tail
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .cloned()
            .unwrap_or_else(|| "(console empty)".into())
    }
}
