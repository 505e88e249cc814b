//! Accelerator choice: KVM only when a short probe proves it works, else TCG.
//!
//! `/dev/kvm` existing is not enough: on some hosts firmware runs under KVM but a kernel
//! hangs as soon as it leaves real mode. So the probe boots a Linux kernel directly
//! (`-kernel`, no disk) under `-accel kvm` and waits a few seconds for "Linux version" on
//! the serial console, which the kernel prints from 64-bit code; the VM is killed
//! afterwards either way. Without a kernel to boot, KVM is not proven and TCG is used.
//!
//! The answer is remembered in the caller's cache directory, per host boot (the kernel's
//! `boot_id`), QEMU binary and probe kernel, so that only the first run after a reboot or
//! an upgrade pays for a probe that fails; [`Pending`] runs the probe on a thread while
//! the caller does other work.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

/// How long the KVM probe waits for the kernel's banner.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(3);

/// What the probe runs and where its answers are remembered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeSetup {
    /// The QEMU binary (a name looked up in `PATH`, or a path).
    pub qemu: String,
    /// A Linux kernel image to boot; without one KVM is not proven.
    pub kernel: Option<PathBuf>,
    /// The directory remembering answers; None: probe every time.
    pub cache: Option<PathBuf>,
}

/// Resolves `choice`; for `auto`, asks the cache, else runs the KVM probe (and remembers
/// its answer).
pub fn decide(choice: AccelChoice, setup: &ProbeSetup) -> AccelDecision {
    match choice {
        AccelChoice::Kvm => AccelDecision {
            accel: Accel::Kvm,
            reason: "KVM requested".into(),
        },
        AccelChoice::Tcg => AccelDecision {
            accel: Accel::Tcg,
            reason: "TCG requested".into(),
        },
        AccelChoice::Auto => {
            let proven = match remembered(setup) {
                Some(r) => r.answer().map_err(|why| format!("{why} (remembered)")),
                None => probe_and_remember(setup),
            };
            match proven {
                Ok(()) => AccelDecision {
                    accel: Accel::Kvm,
                    reason: "a kernel booted under KVM in the probe".into(),
                },
                Err(why) => AccelDecision {
                    accel: Accel::Tcg,
                    reason: format!("KVM unusable: {why}"),
                },
            }
        }
    }
}

/// An accelerator decision being made on a thread of its own.
pub struct Pending {
    probe: Mutex<Option<std::thread::JoinHandle<AccelDecision>>>,
    decision: OnceLock<AccelDecision>,
    seen: AtomicBool,
}

impl Pending {
    /// Starts deciding `choice` (see [`decide`]); an answer the cache holds is ready at once.
    pub fn start(choice: AccelChoice, setup: ProbeSetup) -> Pending {
        if choice != AccelChoice::Auto || remembered(&setup).is_some() || kvm_device().is_err() {
            return Pending::ready(decide(choice, &setup));
        }
        let probe = std::thread::spawn(move || decide(choice, &setup));
        Pending {
            probe: Mutex::new(Some(probe)),
            decision: OnceLock::new(),
            seen: AtomicBool::new(false),
        }
    }

    /// A decision already made.
    pub fn ready(decision: AccelDecision) -> Pending {
        Pending {
            probe: Mutex::new(None),
            decision: OnceLock::from(decision),
            seen: AtomicBool::new(false),
        }
    }

    /// The decision, waiting for the probe if it still runs, and whether this call is the
    /// first to see it.
    pub fn wait(&self) -> (AccelDecision, bool) {
        let mut probe = self.probe.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(handle) = probe.take() {
            let d = handle
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            let _ = self.decision.set(d);
        }
        drop(probe);
        let decision = self.decision.get().cloned().unwrap_or(AccelDecision {
            accel: Accel::Tcg,
            reason: "KVM unusable: the probe did not answer".into(),
        });
        (decision, !self.seen.swap(true, Ordering::SeqCst))
    }
}

/// Opens `/dev/kvm` for use, or says why it cannot be.
fn kvm_device() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(|e| format!("/dev/kvm: {e}"))
}

/// Runs the probe afresh and remembers its answer (unless the process was asked to stop
/// meanwhile, which also stops the probe).
pub fn probe_and_remember(setup: &ProbeSetup) -> Result<(), String> {
    let answer = probe_kvm(&setup.qemu, setup.kernel.as_deref());
    if !crate::interrupt::requested()
        && let (Some(dir), Some(key)) = (&setup.cache, cache_key(setup))
    {
        let r = Remembered {
            key,
            usable: answer.is_ok(),
            reason: answer.clone().err().unwrap_or_default(),
        };
        // Best effort: a cache that cannot be written is probed again next time.
        let _ = r.store(dir);
    }
    answer
}

/// Boots `kernel` under KVM and waits [`PROBE_DEADLINE`] for "Linux version" on serial.
pub fn probe_kvm(qemu: &str, kernel: Option<&Path>) -> Result<(), String> {
    kvm_device()?;
    let kernel = kernel.ok_or("no kernel to prove it with")?;
    let tmp = crate::scratch::Dir::new("imgtest-accel-").map_err(|e| format!("temp dir: {e}"))?;
    let mut spec = VmSpec::new(Accel::Kvm, 128, 1);
    spec.direct_kernel = Some(DirectKernel {
        kernel: kernel.to_path_buf(),
        initrd: None,
        append: "console=ttyS0 panic=-1".into(),
    });
    let (mut vm, mut serial) = VmProcess::spawn(qemu, &spec, &tmp.path().join("kvm-probe.err"))
        .map_err(|e| e.to_string())?;
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

/// A probe's answer as the cache keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Remembered {
    /// What the answer holds for ([`cache_key`]).
    key: String,
    /// Whether KVM worked.
    usable: bool,
    /// If not, why.
    reason: String,
}

impl Remembered {
    fn answer(&self) -> Result<(), String> {
        if self.usable {
            Ok(())
        } else {
            Err(self.reason.clone())
        }
    }

    fn file(dir: &Path, key: &str) -> PathBuf {
        let digest = hex::encode(Sha256::digest(key.as_bytes()));
        dir.join(format!("kvm-probe-{}.json", &digest[..16]))
    }

    /// Writes the answer into `dir` (created 0700), atomically.
    fn store(&self, dir: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        serde_json::to_writer(&mut tmp, self)?;
        tmp.persist(Self::file(dir, &self.key))
            .map(drop)
            .map_err(|e| e.error)
    }
}

/// The cache's answer for this setup, if it has one; only where `/dev/kvm` opens (without
/// it there is nothing to probe).
fn remembered(setup: &ProbeSetup) -> Option<Remembered> {
    let dir = setup.cache.as_ref()?;
    let key = cache_key(setup)?;
    kvm_device().ok()?;
    let text = std::fs::read_to_string(Remembered::file(dir, &key)).ok()?;
    serde_json::from_str::<Remembered>(&text)
        .ok()
        .filter(|r| r.key == key)
}

/// What a probe's answer depends on: this boot of the host (its kernel and KVM module),
/// the QEMU binary and the probe kernel, each file by path, size, modification time and
/// inode. None when one of them cannot be told.
fn cache_key(setup: &ProbeSetup) -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let file = |p: &Path| {
        let m = std::fs::metadata(p).ok()?;
        Some(format!(
            "{}:{}:{}.{}:{}",
            p.display(),
            m.len(),
            m.mtime(),
            m.mtime_nsec(),
            m.ino()
        ))
    };
    let qemu = file(&crate::tool::find(&setup.qemu)?)?;
    let kernel = file(setup.kernel.as_deref()?)?;
    Some(format!("boot={} qemu={qemu} kernel={kernel}", boot.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(qemu: &str, kernel: Option<&str>, cache: Option<&Path>) -> ProbeSetup {
        ProbeSetup {
            qemu: qemu.into(),
            kernel: kernel.map(PathBuf::from),
            cache: cache.map(Path::to_path_buf),
        }
    }

    #[test]
    fn explicit_choices_skip_the_probe() {
        let s = setup("/nonexistent/qemu", None, None);
        assert_eq!(decide(AccelChoice::Tcg, &s).accel, Accel::Tcg);
        assert_eq!(decide(AccelChoice::Kvm, &s).accel, Accel::Kvm);
        let pending = Pending::start(AccelChoice::Tcg, s);
        let (d, first) = pending.wait();
        assert_eq!((d.accel, d.reason.as_str()), (Accel::Tcg, "TCG requested"));
        assert!(first);
        assert!(!pending.wait().1, "only the first look is the first");
    }

    #[test]
    fn auto_falls_back_to_tcg_when_the_probe_cannot_run() {
        let d = decide(
            AccelChoice::Auto,
            &setup("/nonexistent/qemu", Some("/k"), None),
        );
        assert_eq!(d.accel, Accel::Tcg);
        assert!(d.reason.starts_with("KVM unusable"), "{}", d.reason);
        let d = decide(AccelChoice::Auto, &setup("qemu-system-x86_64", None, None));
        assert_eq!(d.accel, Accel::Tcg, "{}", d.reason);
    }

    #[test]
    fn answers_are_remembered_per_boot_qemu_and_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("vmlinuz");
        std::fs::write(&kernel, b"k").unwrap();
        let s = setup("sh", kernel.to_str(), Some(&dir.path().join("cache")));
        let key = cache_key(&s).expect("a key for an existing qemu and kernel");
        assert!(
            key.starts_with("boot=") && key.contains("vmlinuz:1:"),
            "{key}"
        );
        let r = Remembered {
            key: key.clone(),
            usable: false,
            reason: "it hung".into(),
        };
        r.store(s.cache.as_ref().unwrap()).unwrap();
        let file = Remembered::file(s.cache.as_ref().unwrap(), &key);
        let mode = std::fs::metadata(file.parent().unwrap()).unwrap().mode();
        assert_eq!(mode & 0o777, 0o700);
        // A cache entry is used only where /dev/kvm opens; its key must match.
        if kvm_device().is_ok() {
            assert_eq!(remembered(&s), Some(r));
            let d = decide(AccelChoice::Auto, &s);
            assert_eq!(d.reason, "KVM unusable: it hung (remembered)");
        }
        // Another kernel (here: the same file changed) is another key.
        std::fs::write(&kernel, b"kk").unwrap();
        assert_ne!(cache_key(&s), Some(key));
        assert_eq!(remembered(&s), None);
    }
}
