//! Accelerator choice: KVM only when a short proof shows it works, else TCG.
//!
//! `/dev/kvm` existing is not enough: on some hosts (nested virtualisation without
//! hardware support) a vCPU runs, but thousands of times slower than hardware, and a guest
//! kernel takes minutes to print its first line. So the proof ([`super::kvm`]) runs a
//! vCPU through real, protected and long mode and a counted loop that takes milliseconds
//! on working KVM, with a deadline ([`PROBE_DEADLINE`]). It needs no kernel, no image and
//! no QEMU: only `/dev/kvm`. Because `KVM_RUN` may not return on a broken host, the proof
//! runs in a child process (`PROGRAM __kvm-probe`, which prints its stages), killed at the
//! deadline.
//!
//! The answer is remembered in the caller's cache directory, per host boot (the kernel's
//! `boot_id`, which covers the KVM module) and version of the proof, so that only the first
//! run after a reboot pays for a proof that fails; [`Pending`] runs the proof on a thread
//! while the caller does other work.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::kvm::{LOOP_STEPS, Stage};
use crate::facts::{Accel, AccelDecision};
use crate::named::Named;

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

/// How long the proof may take, from starting its process to the vCPU's `hlt`. Working
/// KVM needs a few milliseconds (the process's start included); a host whose vCPUs are so
/// slow that the loop of [`LOOP_STEPS`] steps does not end by then runs guests slower than
/// TCG would.
pub const PROBE_DEADLINE: Duration = Duration::from_millis(1500);

/// The version of the proof: a remembered answer of another version is not used.
const PROOF: &str = "vcpu-1";

/// Where the proof runs and where its answers are remembered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeSetup {
    /// The program that runs the proof as `PROGRAM __kvm-probe` (the imgtest binary).
    pub program: PathBuf,
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
                Ok(how) => AccelDecision {
                    accel: Accel::Kvm,
                    reason: format!("KVM usable: {how}"),
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
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("/dev/kvm not present".into()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(
            "/dev/kvm: permission denied (add the user to the kvm group, or give the device \
             to the container)"
                .into(),
        ),
        Err(e) => Err(format!("/dev/kvm: {e}")),
    }
}

/// Runs the proof afresh and remembers its answer (unless the process was asked to stop
/// meanwhile). Ok: what the proof showed; Err: why KVM is unusable.
pub fn probe_and_remember(setup: &ProbeSetup) -> Result<String, String> {
    let answer = probe_kvm(&setup.program, PROBE_DEADLINE);
    if !crate::interrupt::requested()
        && let (Some(dir), Some(key)) = (&setup.cache, cache_key())
    {
        let r = Remembered {
            key,
            usable: answer.is_ok(),
            reason: match &answer {
                Ok(how) | Err(how) => how.clone(),
            },
        };
        // Best effort: a cache that cannot be written is probed again next time.
        let _ = r.store(dir);
    }
    answer
}

/// What the proof's process printed: the stages reached, then how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// A stage the guest reached.
    Reached(Stage),
    /// The guest halted after `micros` microseconds of running.
    Done(u64),
    /// The proof failed: why.
    Failed(String),
}

impl Line {
    fn parse(text: &str) -> Option<Line> {
        let (word, rest) = text.split_once(' ').unwrap_or((text, ""));
        match word {
            "reached" => Stage::from_name(rest).map(Line::Reached),
            "done" => rest.parse().ok().map(Line::Done),
            "failed" => Some(Line::Failed(rest.chars().take(300).collect())),
            _ => None,
        }
    }
}

/// The proof's side in its own process (`imgtest __kvm-probe`): runs it, printing each
/// stage and the end as lines [`probe_kvm`] reads.
pub fn probe_child(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut stage = |s: Stage| {
        let _ = writeln!(out, "reached {s}").and_then(|()| out.flush());
    };
    let result = super::kvm::run(&mut stage);
    match result {
        Ok(ran) => writeln!(out, "done {}", ran.as_micros()),
        Err(e) => writeln!(out, "failed {e}"),
    }
}

/// Runs `program __kvm-probe` and judges what it prints before `deadline` (from now):
/// Ok with what the vCPU did, or Err with why KVM is unusable. The process is killed at
/// the deadline and reaped.
pub fn probe_kvm(program: &Path, deadline: Duration) -> Result<String, String> {
    kvm_device()?;
    let started = Instant::now();
    let mut cmd = Command::new(program);
    cmd.arg("__kvm-probe")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    crate::helper::die_with_parent(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run the proof ({}): {e}", program.display()))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().take(16) {
            let Ok(line) = line else { break };
            if let Some(l) = Line::parse(&line)
                && tx.send(l).is_err()
            {
                break;
            }
        }
    });
    let end = started + deadline;
    let mut reached: Option<Stage> = None;
    let verdict = loop {
        match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
            Ok(Line::Reached(s)) => reached = Some(s),
            Ok(Line::Done(micros)) => break Ok(micros),
            Ok(Line::Failed(why)) => break Err(format!("KVM refused the proof's VM: {why}")),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break Err("the proof's process ended without an answer".to_string());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => break Err(too_slow(reached, deadline)),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    verdict.map(|micros| {
        format!(
            "a vCPU ran real, protected and long mode and {} loop steps in {:.1} ms ({:.0} ms \
             in all)",
            steps(LOOP_STEPS),
            micros as f64 / 1000.0,
            started.elapsed().as_secs_f64() * 1000.0
        )
    })
}

/// Why a proof that missed its deadline says KVM is unusable.
fn too_slow(reached: Option<Stage>, deadline: Duration) -> String {
    let how_far = match reached {
        None => "it never ran its first instruction".to_string(),
        Some(Stage::Loop) => "it finished the loop but never halted".to_string(),
        Some(s) => format!("it reached {s}"),
    };
    format!(
        "a vCPU did not run {} loop steps within {:.1} s ({how_far}): guests would run slower \
         than under TCG (nested virtualisation without hardware support?)",
        steps(LOOP_STEPS),
        deadline.as_secs_f64()
    )
}

/// A count with thin-space thousands: `10 000 000`.
fn steps(n: u32) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
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
    fn answer(&self) -> Result<String, String> {
        if self.usable {
            Ok(self.reason.clone())
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

/// The cache's answer, if it has one; only where `/dev/kvm` opens (without it there is
/// nothing to probe).
fn remembered(setup: &ProbeSetup) -> Option<Remembered> {
    let dir = setup.cache.as_ref()?;
    let key = cache_key()?;
    kvm_device().ok()?;
    let text = std::fs::read_to_string(Remembered::file(dir, &key)).ok()?;
    serde_json::from_str::<Remembered>(&text)
        .ok()
        .filter(|r| r.key == key)
}

/// What a proof's answer depends on: this boot of the host (its kernel and KVM module) and
/// the proof's version. None when the boot cannot be told.
fn cache_key() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(format!("boot={} proof={PROOF}", boot.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(program: &str, cache: Option<&Path>) -> ProbeSetup {
        ProbeSetup {
            program: program.into(),
            cache: cache.map(Path::to_path_buf),
        }
    }

    /// A stand-in for the proof's process: a shell script printing `lines`, then
    /// sleeping for ever when `hang` (as a vCPU stuck in `KVM_RUN` would).
    fn fake_proof(dir: &Path, lines: &[&str], hang: bool) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("proof");
        let mut script = String::from("#!/bin/sh\n[ \"$1\" = __kvm-probe ] || exit 9\n");
        for l in lines {
            script.push_str(&format!("echo '{l}'\n"));
        }
        if hang {
            script.push_str("exec sleep 600\n");
        }
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn explicit_choices_skip_the_probe() {
        let s = setup("/nonexistent/imgtest", None);
        assert_eq!(decide(AccelChoice::Tcg, &s).accel, Accel::Tcg);
        assert_eq!(decide(AccelChoice::Kvm, &s).accel, Accel::Kvm);
        let pending = Pending::start(AccelChoice::Tcg, s);
        let (d, first) = pending.wait();
        assert_eq!((d.accel, d.reason.as_str()), (Accel::Tcg, "TCG requested"));
        assert!(first);
        assert!(!pending.wait().1, "only the first look is the first");
    }

    #[test]
    fn auto_falls_back_to_tcg_when_the_proof_cannot_run() {
        let d = decide(AccelChoice::Auto, &setup("/nonexistent/imgtest", None));
        assert_eq!(d.accel, Accel::Tcg);
        assert!(d.reason.starts_with("KVM unusable: "), "{}", d.reason);
    }

    #[test]
    fn the_proofs_lines_are_read_strictly() {
        assert_eq!(
            Line::parse("reached long-mode"),
            Some(Line::Reached(Stage::Long))
        );
        assert_eq!(Line::parse("done 2100"), Some(Line::Done(2100)));
        assert_eq!(
            Line::parse("failed KVM_CREATE_VM: x"),
            Some(Line::Failed("KVM_CREATE_VM: x".into()))
        );
        for junk in ["reached nowhere", "done soon", "", "hello"] {
            assert_eq!(Line::parse(junk), None, "{junk:?}");
        }
        assert_eq!(steps(10_000_000), "10 000 000");
        assert_eq!(steps(999), "999");
    }

    /// The judgement of what a proof's process says, whatever the host's /dev/kvm does
    /// (the fakes stand in for the process; the device must open for a proof to run).
    #[test]
    fn a_hung_proof_is_refuted_within_the_deadline_and_a_complete_one_proves_kvm() {
        if kvm_device().is_err() {
            // Without /dev/kvm the answer comes from the device alone, at once.
            let e = probe_kvm(Path::new("/nonexistent"), PROBE_DEADLINE).unwrap_err();
            assert!(e.contains("/dev/kvm"), "{e}");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let hung = fake_proof(
            dir.path(),
            &["reached real-mode", "reached long-mode"],
            true,
        );
        let t = Instant::now();
        let e = probe_kvm(&hung, Duration::from_millis(300)).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(
            e.starts_with(
                "a vCPU did not run 10 000 000 loop steps within 0.3 s (it reached long-mode)"
            ),
            "{e}"
        );
        let never = fake_proof(dir.path(), &[], true);
        let e = probe_kvm(&never, Duration::from_millis(200)).unwrap_err();
        assert!(e.contains("it never ran its first instruction"), "{e}");
        let refused = fake_proof(
            dir.path(),
            &["failed KVM_CREATE_VM: Operation not permitted"],
            false,
        );
        let e = probe_kvm(&refused, PROBE_DEADLINE).unwrap_err();
        assert_eq!(
            e,
            "KVM refused the proof's VM: KVM_CREATE_VM: Operation not permitted"
        );
        let silent = fake_proof(dir.path(), &["nonsense"], false);
        let e = probe_kvm(&silent, PROBE_DEADLINE).unwrap_err();
        assert_eq!(e, "the proof's process ended without an answer");
        let ok = fake_proof(
            dir.path(),
            &[
                "reached real-mode",
                "reached protected-mode",
                "reached long-mode",
                "reached loop",
                "done 2100",
            ],
            false,
        );
        let how = probe_kvm(&ok, PROBE_DEADLINE).unwrap();
        assert!(
            how.starts_with(
                "a vCPU ran real, protected and long mode and 10 000 000 loop steps in 2.1 ms"
            ),
            "{how}"
        );
    }

    #[test]
    fn answers_are_remembered_per_boot_and_proof() {
        let dir = tempfile::tempdir().unwrap();
        let s = setup("/nonexistent/imgtest", Some(&dir.path().join("cache")));
        let key = cache_key().expect("a key on Linux");
        assert!(
            key.starts_with("boot=") && key.ends_with(&format!("proof={PROOF}")),
            "{key}"
        );
        let r = Remembered {
            key: key.clone(),
            usable: false,
            reason: "it hung".into(),
        };
        r.store(s.cache.as_ref().unwrap()).unwrap();
        let file = Remembered::file(s.cache.as_ref().unwrap(), &key);
        use std::os::unix::fs::MetadataExt;
        let mode = std::fs::metadata(file.parent().unwrap()).unwrap().mode();
        assert_eq!(mode & 0o777, 0o700);
        // A cache entry is used only where /dev/kvm opens; its key must match.
        if kvm_device().is_ok() {
            assert_eq!(remembered(&s), Some(r));
            let d = decide(AccelChoice::Auto, &s);
            assert_eq!(d.reason, "KVM unusable: it hung (remembered)");
            // An answer of an older proof (another key) is not used.
            std::fs::write(
                &file,
                r#"{"key":"boot=x kernel=y","usable":false,"reason":"no kernel"}"#,
            )
            .unwrap();
            assert_eq!(remembered(&s), None);
        }
    }
}
