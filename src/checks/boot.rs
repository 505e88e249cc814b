//! Boot health: the image boots to userspace, its console shows no failure, and it powers
//! off when the platform presses the power button.

use super::{Judgement, fail, pass, probed, skip};
use crate::facts::{BootFacts, Facts, Firmware, Phase, ShotMoment, Shutdown};

/// `boot.userspace`: the console showed userspace, or an SSH server answered.
pub(super) fn userspace(b: &BootFacts, _: &Facts) -> Judgement {
    match (b.console.reached(Phase::Userspace), &b.console.failure) {
        (Some(t), _) => pass(format!("userspace after {t:.1}s")),
        (None, _) if b.ssh_secs.is_some() => pass("an SSH server answered"),
        (None, Some(f)) => fail(format!(
            "{} on the console: {}",
            f.kind.words(),
            f.describe()
        )),
        (None, None) => fail(match &b.qemu_exit {
            Some(e) => format!("QEMU exited before userspace ({e}); {}", console_words(b)),
            None => format!("no userspace before the deadline; {}", console_words(b)),
        }),
    }
}

/// What the serial console showed of a boot that stopped short of userspace: its last
/// line, or that it stayed silent (after the firmware and bootloader, which SeaBIOS
/// mirrors to it) and which screenshot shows the screen instead.
fn console_words(b: &BootFacts) -> String {
    let shot = b
        .screenshot(ShotMoment::Deadline)
        .or_else(|| b.screenshot(ShotMoment::Failure))
        .map(|s| format!("; see {}", s.file));
    let last = b.console.phases.iter().map(|&(p, _)| p).max();
    match (shot, last) {
        (Some(see), _) if b.console.lines == 0 => format!("no serial output{see}"),
        (Some(see), Some(p)) if p < Phase::Kernel => format!(
            "no serial output after the {p} (last console line: {}){see}",
            b.console.last_line()
        ),
        (see, _) => format!(
            "last console line: {}{}",
            b.console.last_line(),
            see.unwrap_or_default()
        ),
    }
}

/// `console.clean`: no failure pattern on the console.
pub(super) fn console_clean(b: &BootFacts, _: &Facts) -> Judgement {
    match &b.console.failure {
        None => pass("no failure pattern"),
        Some(f) => fail(format!("{}: {}", f.kind.words(), f.describe())),
    }
}

/// `shutdown.clean`: QEMU exited within the deadline after the ACPI power button.
pub(super) fn shutdown_clean(b: &BootFacts, _: &Facts) -> Judgement {
    match &b.shutdown {
        Shutdown::Clean { secs } => pass(format!("powered off {secs:.1}s after system_powerdown")),
        Shutdown::TimedOut { deadline_secs } => fail(format!(
            "still running {deadline_secs:.0}s after system_powerdown (ACPI power button)"
        )),
        Shutdown::NotDone { reason } => skip(reason.clone()),
    }
}

/// `boot.secure-boot`: under `--secure-boot`, a UEFI boot's guest says Secure Boot is on.
pub(super) fn secure_boot(b: &BootFacts, f: &Facts) -> Judgement {
    if !f.firmware.as_ref().is_some_and(|w| w.secure_boot) {
        return skip("only judged with Secure Boot requested");
    }
    if b.firmware != Firmware::Uefi {
        return skip("a BIOS boot has no Secure Boot");
    }
    let p = match probed(b) {
        Ok(p) => p,
        Err(no_probe) => return no_probe,
    };
    let sb = &p.secure_boot;
    match (sb.efi, sb.enabled) {
        (false, _) => fail("the guest sees no UEFI (/sys/firmware/efi is absent)"),
        (true, Some(true)) => pass(format!("Secure Boot enabled ({})", sb.source)),
        (true, Some(false)) => fail(format!("Secure Boot disabled ({})", sb.source)),
        (true, None) => fail(format!(
            "the guest cannot tell whether Secure Boot is on ({})",
            sb.source
        )),
    }
}
