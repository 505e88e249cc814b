//! Accelerator choice: KVM only when a short probe proves it works, else TCG.
//!
//! `/dev/kvm` existing is not enough: on some hosts firmware runs under KVM but a kernel
//! hangs as soon as it leaves real mode. So the probe boots a Linux kernel directly
//! (`-kernel`, no disk) under `-accel kvm` and waits a few seconds for "Linux version" on
//! the serial console, which the kernel prints from 64-bit code; the VM is killed
//! afterwards either way. Without a kernel to boot, KVM is not proven and TCG is used.

use std::io::Read;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::process::VmProcess;
use super::{DirectKernel, VmSpec};
use crate::facts::{Accel, AccelDecision};

crate::named_enum! {
    /// Which accelerator a run asks for.
    #[derive(Default)]
    pub enum AccelChoice("accelerator") {
        /// KVM if a probe proves it works, else TCG.
        #[default]
        Auto = "auto",
        /// KVM, unconditionally.
        Kvm = "kvm",
        /// TCG, unconditionally.
        Tcg = "tcg",
    }
}

/// How long the KVM probe waits for the firmware banner.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(3);

/// Resolves `choice`; for `auto` runs the KVM probe with `qemu`, `kernel` (any Linux
/// kernel image; without one KVM is not proven) and temp files in `tmp`.
pub fn decide(choice: AccelChoice, qemu: &str, tmp: &Path, kernel: Option<&Path>) -> AccelDecision {
    match choice {
        AccelChoice::Kvm => AccelDecision {
            accel: Accel::Kvm,
            reason: "KVM requested".into(),
        },
        AccelChoice::Tcg => AccelDecision {
            accel: Accel::Tcg,
            reason: "TCG requested".into(),
        },
        AccelChoice::Auto => match probe_kvm(qemu, tmp, kernel) {
            Ok(()) => AccelDecision {
                accel: Accel::Kvm,
                reason: "a kernel booted under KVM in the probe".into(),
            },
            Err(why) => AccelDecision {
                accel: Accel::Tcg,
                reason: format!("KVM unusable: {why}"),
            },
        },
    }
}

/// Boots `kernel` under KVM and waits [`PROBE_DEADLINE`] for "Linux version" on serial.
pub fn probe_kvm(qemu: &str, tmp: &Path, kernel: Option<&Path>) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("/dev/kvm: {e}"))?;
    let kernel = kernel.ok_or("no kernel to prove it with (see `imgtest doctor`)")?;
    let mut spec = VmSpec::new(Accel::Kvm, 128, 1);
    spec.direct_kernel = Some(DirectKernel {
        kernel: kernel.to_path_buf(),
        initrd: None,
        append: "console=ttyS0 panic=-1".into(),
    });
    let (mut vm, mut serial) =
        VmProcess::spawn(qemu, &spec, &tmp.join("kvm-probe.err")).map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 512];
        while let Ok(n) = serial.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&seen).contains("Linux version") {
                let _ = tx.send(());
                break;
            }
        }
    });
    let deadline = Instant::now() + PROBE_DEADLINE;
    let got = rx
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .is_ok();
    vm.kill();
    if got {
        Ok(())
    } else {
        Err(format!(
            "a kernel printed nothing within {}s under KVM",
            PROBE_DEADLINE.as_secs()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_choices_skip_the_probe() {
        let d = decide(
            AccelChoice::Tcg,
            "/nonexistent/qemu",
            Path::new("/tmp"),
            None,
        );
        assert_eq!(d.accel, Accel::Tcg);
        let d = decide(
            AccelChoice::Kvm,
            "/nonexistent/qemu",
            Path::new("/tmp"),
            None,
        );
        assert_eq!(d.accel, Accel::Kvm);
    }

    #[test]
    fn auto_falls_back_to_tcg_when_the_probe_cannot_run() {
        let dir = tempfile::tempdir().unwrap();
        let d = decide(
            AccelChoice::Auto,
            "/nonexistent/qemu",
            dir.path(),
            Some(Path::new("/k")),
        );
        assert_eq!(d.accel, Accel::Tcg);
        assert!(d.reason.starts_with("KVM unusable"), "{}", d.reason);
        let d = decide(AccelChoice::Auto, "qemu-system-x86_64", dir.path(), None);
        assert_eq!(d.accel, Accel::Tcg, "{}", d.reason);
    }
}
