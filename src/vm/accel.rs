//! Accelerator choice: KVM only when a short probe proves it works, else TCG.
//!
//! `/dev/kvm` existing is not enough (on some hosts guests hang under it), so the probe
//! starts a diskless VM with `-accel kvm` and waits a few seconds for SeaBIOS to print
//! its banner on the serial console; the VM is killed afterwards either way.

use std::io::Read;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::process::VmProcess;
use super::{Accel, VmSpec};

/// What the user asked for with `--accel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AccelChoice {
    /// KVM if the probe proves it works, else TCG.
    #[default]
    Auto,
    /// KVM, unconditionally.
    Kvm,
    /// TCG, unconditionally.
    Tcg,
}

impl std::str::FromStr for AccelChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(AccelChoice::Auto),
            "kvm" => Ok(AccelChoice::Kvm),
            "tcg" => Ok(AccelChoice::Tcg),
            o => Err(format!(
                "unknown accelerator `{o}` (expected auto, kvm or tcg)"
            )),
        }
    }
}

/// The chosen accelerator and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccelDecision {
    /// The accelerator every VM of the run uses.
    pub accel: Accel,
    /// Why (e.g. "requested", "KVM probe: no firmware output within 3s").
    pub reason: String,
}

/// How long the KVM probe waits for the firmware banner.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(3);

/// Resolves `choice`; for `auto` runs the KVM probe with `qemu` and temp files in `tmp`.
pub fn decide(choice: AccelChoice, qemu: &str, tmp: &Path) -> AccelDecision {
    match choice {
        AccelChoice::Kvm => AccelDecision {
            accel: Accel::Kvm,
            reason: "requested with --accel kvm".into(),
        },
        AccelChoice::Tcg => AccelDecision {
            accel: Accel::Tcg,
            reason: "requested with --accel tcg".into(),
        },
        AccelChoice::Auto => match probe_kvm(qemu, tmp) {
            Ok(()) => AccelDecision {
                accel: Accel::Kvm,
                reason: "KVM probe booted firmware".into(),
            },
            Err(why) => AccelDecision {
                accel: Accel::Tcg,
                reason: format!("KVM unusable: {why}"),
            },
        },
    }
}

/// Boots firmware under KVM and waits [`PROBE_DEADLINE`] for "SeaBIOS" on serial.
pub fn probe_kvm(qemu: &str, tmp: &Path) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("/dev/kvm: {e}"))?;
    let spec = VmSpec::new(Accel::Kvm, 64, 1);
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
            if String::from_utf8_lossy(&seen).contains("SeaBIOS") {
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
            "no firmware output within {}s",
            PROBE_DEADLINE.as_secs()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_choices_skip_the_probe() {
        let d = decide(AccelChoice::Tcg, "/nonexistent/qemu", Path::new("/tmp"));
        assert_eq!(d.accel, Accel::Tcg);
        let d = decide(AccelChoice::Kvm, "/nonexistent/qemu", Path::new("/tmp"));
        assert_eq!(d.accel, Accel::Kvm);
    }

    #[test]
    fn auto_falls_back_to_tcg_when_the_probe_cannot_run() {
        let dir = tempfile::tempdir().unwrap();
        let d = decide(AccelChoice::Auto, "/nonexistent/qemu", dir.path());
        assert_eq!(d.accel, Accel::Tcg);
        assert!(d.reason.starts_with("KVM unusable"), "{}", d.reason);
    }
}
