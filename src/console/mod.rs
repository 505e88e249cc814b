//! The serial console: a reader thread turns QEMU's serial output into lines, writes them
//! (with secrets redacted) to a log file, timestamps the boot phases and spots failure
//! patterns. Waits ([`Console::wait_for`]) have deadlines and end early when the console
//! reports a failure or QEMU closes it, so a panicking guest fails fast with its tail.
//!
//! Classification is pure ([`classify_line`], [`classify_prompt`]) and unit-tested.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::facts::{ConsoleFailure, ConsoleSummary, FailureKind, Phase};

/// Phase and failure a complete console line signals.
pub fn classify_line(line: &str) -> (Option<Phase>, Option<FailureKind>) {
    const PHASES: &[(&str, Phase)] = &[
        ("SeaBIOS", Phase::Firmware),
        ("iPXE", Phase::Firmware),
        ("GRUB", Phase::Bootloader),
        ("ISOLINUX", Phase::Bootloader),
        ("SYSLINUX", Phase::Bootloader),
        ("Booting `", Phase::Bootloader),
        ("Linux version", Phase::Kernel),
        ("IMGTEST-TINY-BOOTED", Phase::Userspace),
        ("Run /sbin/init as init process", Phase::Userspace),
        ("systemd[1]: ", Phase::Userspace),
        ("INIT: version", Phase::Userspace),
        ("Welcome to Debian", Phase::Userspace),
    ];
    const FAILURES: &[(&str, FailureKind)] = &[
        ("Kernel panic", FailureKind::KernelPanic),
        ("Oops: ", FailureKind::Oops),
        ("] Oops", FailureKind::Oops),
        ("grub rescue>", FailureKind::GrubRescue),
        ("You are in emergency mode", FailureKind::EmergencyShell),
        (
            "Give root password for maintenance",
            FailureKind::EmergencyShell,
        ),
        ("VFS: Unable to mount root", FailureKind::RootNotFound),
        ("Gave up waiting for root", FailureKind::RootNotFound),
        ("No bootable device", FailureKind::NoBootDevice),
    ];
    let phase = PHASES
        .iter()
        .find(|(p, _)| line.contains(p))
        .map(|&(_, ph)| ph);
    let mut failure = FAILURES
        .iter()
        .find(|(p, _)| line.contains(p))
        .map(|&(_, f)| f);
    let lower = line.to_ascii_lowercase();
    if failure.is_none() && lower.contains("root device") && lower.contains("not found") {
        failure = Some(FailureKind::RootNotFound);
    }
    (phase, failure)
}

/// Prompts print no newline: classify the pending partial line.
pub fn classify_prompt(partial: &str) -> (Option<Phase>, Option<FailureKind>) {
    let t = partial.trim_end();
    if t.ends_with("login:") {
        (Some(Phase::Login), None)
    } else if t.ends_with("grub rescue>") {
        (None, Some(FailureKind::GrubRescue))
    } else if t.ends_with("(initramfs)") {
        (None, Some(FailureKind::EmergencyShell))
    } else {
        (None, None)
    }
}

/// Replaces every secret in `line` with `[REDACTED]`.
pub fn redact(line: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(line.to_string(), |l, s| l.replace(s.as_str(), "[REDACTED]"))
}

/// Removes ANSI escape sequences and carriage returns.
pub fn strip_control(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for d in chars.by_ref() {
                        if d.is_ascii_alphabetic() {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' => {}
            c if c.is_control() && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// Something the console noticed, for live reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleEvent {
    /// A phase was first reached, after this long since the VM started.
    Phase(Phase, Duration),
    /// A failure pattern.
    Failure(ConsoleFailure),
}

/// How a wait ended.
#[derive(Debug, Clone, PartialEq)]
pub enum WaitOutcome {
    /// The phase was reached after this many seconds.
    Reached(f64),
    /// A failure pattern showed first.
    Failed(ConsoleFailure),
    /// QEMU closed the console first.
    Closed,
    /// The deadline passed.
    TimedOut,
}

/// Number of lines kept as the console tail.
pub const TAIL_LINES: usize = 40;

struct ConsoleState {
    state: Mutex<ConsoleSummary>,
    cond: Condvar,
}

/// A console being read by its own thread.
pub struct Console {
    shared: Arc<ConsoleState>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Console {
    /// Starts reading `serial` into `log`, redacting `secrets`; times are relative to
    /// `start`; `on_event` is called (on the reader thread) for each new phase/failure.
    pub fn attach(
        serial: impl Read + Send + 'static,
        log: PathBuf,
        secrets: Vec<String>,
        start: Instant,
        on_event: impl Fn(ConsoleEvent) + Send + 'static,
    ) -> std::io::Result<Console> {
        let file = BufWriter::new(File::create(&log)?);
        let shared = Arc::new(ConsoleState {
            state: Mutex::new(ConsoleSummary::default()),
            cond: Condvar::new(),
        });
        let s2 = shared.clone();
        let reader =
            std::thread::spawn(move || read_loop(serial, file, secrets, start, s2, on_event));
        Ok(Console {
            shared,
            reader: Some(reader),
        })
    }

    /// Waits until `phase` is reached, a failure shows, QEMU exits or `deadline` passes.
    pub fn wait_for(&self, phase: Phase, deadline: Instant) -> WaitOutcome {
        let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(f) = &st.failure {
                return WaitOutcome::Failed(f.clone());
            }
            if let Some(t) = st.reached(phase) {
                return WaitOutcome::Reached(t);
            }
            if st.closed {
                return WaitOutcome::Closed;
            }
            let now = Instant::now();
            if now >= deadline {
                return WaitOutcome::TimedOut;
            }
            st = self
                .shared
                .cond
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// A copy of what the console has gathered so far.
    pub fn summary(&self) -> ConsoleSummary {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits for the reader thread (QEMU must be gone) and returns the final summary.
    pub fn finish(mut self) -> ConsoleSummary {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.summary()
    }
}

/// Counts a complete line and keeps it in the tail (and the first-boot lines); its number.
fn keep_line(shared: &ConsoleState, line: &str) -> usize {
    let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    if st.tail.len() == TAIL_LINES {
        st.tail.remove(0);
    }
    st.tail.push(line.to_string());
    st.lines += 1;
    if line.trim_start().starts_with("firstboot:") {
        st.firstboot_lines.push(line.trim().to_string());
    }
    st.lines
}

fn read_loop(
    mut serial: impl Read,
    mut log: BufWriter<File>,
    secrets: Vec<String>,
    start: Instant,
    shared: Arc<ConsoleState>,
    on_event: impl Fn(ConsoleEvent),
) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    // `number` is the line's place in the log, from 1 (a prompt's: the line it will end).
    let note = |phase: Option<Phase>, failure: Option<FailureKind>, line: &str, number: usize| {
        let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let t = start.elapsed();
        let mut events = Vec::new();
        if let Some(p) = phase {
            // Reaching a later phase implies the ones it needs (a getty means userspace).
            let implied: &[Phase] = if p == Phase::Login {
                &[Phase::Userspace, Phase::Login]
            } else {
                &[p]
            };
            for &q in implied {
                if st.reached(q).is_none() {
                    st.phases.push((q, t.as_secs_f64()));
                    st.phase_lines.push((q, number));
                    events.push(ConsoleEvent::Phase(q, t));
                }
            }
        }
        if let Some(kind) = failure
            && st.failure.is_none()
        {
            let f = ConsoleFailure {
                kind,
                line: line.to_string(),
            };
            st.failure = Some(f.clone());
            st.failure_line = Some(number);
            events.push(ConsoleEvent::Failure(f));
        }
        if !events.is_empty() {
            shared.cond.notify_all();
        }
        drop(st);
        for e in events {
            on_event(e);
        }
    };
    loop {
        let n = match serial.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some(pos) = pending.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = pending.drain(..=pos).collect();
            let line = redact(&strip_control(&String::from_utf8_lossy(&raw)), &secrets);
            let _ = writeln!(log, "{line}");
            let (phase, failure) = classify_line(&line);
            let number = keep_line(&shared, &line);
            note(phase, failure, &line, number);
        }
        if !pending.is_empty() {
            let partial = redact(&strip_control(&String::from_utf8_lossy(&pending)), &secrets);
            let (phase, failure) = classify_prompt(&partial);
            let number = shared.state.lock().unwrap_or_else(|e| e.into_inner()).lines + 1;
            note(phase, failure, partial.trim(), number);
        }
        let _ = log.flush();
    }
    if !pending.is_empty() {
        let line = redact(&strip_control(&String::from_utf8_lossy(&pending)), &secrets);
        let _ = writeln!(log, "{line}");
        keep_line(&shared, &line);
    }
    let _ = log.flush();
    let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    st.closed = true;
    shared.cond.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_phases() {
        assert_eq!(
            classify_line("SeaBIOS (version 1.16.3)").0,
            Some(Phase::Firmware)
        );
        assert_eq!(classify_line("Welcome to GRUB!").0, Some(Phase::Bootloader));
        assert_eq!(
            classify_line("[    0.000000] Linux version 6.1.0-56-cloud-amd64").0,
            Some(Phase::Kernel)
        );
        assert_eq!(
            classify_line("IMGTEST-TINY-BOOTED").0,
            Some(Phase::Userspace)
        );
        assert_eq!(classify_prompt("tiny login: ").0, Some(Phase::Login));
        assert_eq!(classify_line("nothing here"), (None, None));
    }

    #[test]
    fn classifies_failures() {
        let f = |l: &str| classify_line(l).1;
        assert_eq!(
            f("[ 1.2] Kernel panic - not syncing: VFS: Unable to mount root fs"),
            Some(FailureKind::KernelPanic)
        );
        assert_eq!(
            f("[ 1.1] VFS: Unable to mount root fs on unknown-block(0,0)"),
            Some(FailureKind::RootNotFound)
        );
        assert_eq!(
            f("[ 3.0] Oops: general protection fault, probably for non-canonical address"),
            Some(FailureKind::Oops)
        );
        assert_eq!(
            f("You are in emergency mode. After logging in, type \"journalctl -xb\""),
            Some(FailureKind::EmergencyShell)
        );
        assert_eq!(
            f("initrd: root device UUID=1234 not found"),
            Some(FailureKind::RootNotFound)
        );
        assert_eq!(
            f("Gave up waiting for root file system device."),
            Some(FailureKind::RootNotFound)
        );
        assert_eq!(f("No bootable device."), Some(FailureKind::NoBootDevice));
        assert_eq!(
            classify_prompt("grub rescue> ").1,
            Some(FailureKind::GrubRescue)
        );
        assert_eq!(
            classify_prompt("(initramfs) ").1,
            Some(FailureKind::EmergencyShell)
        );
        assert_eq!(f("Oopsie is not a kernel oops"), None);
    }

    #[test]
    fn strips_escapes_and_redacts() {
        assert_eq!(
            strip_control("\u{1b}c\u{1b}[?7l\u{1b}[2J\u{1b}[0mSeaBIOS\r"),
            "SeaBIOS"
        );
        assert_eq!(
            redact("pw is s3cret!", &["s3cret".into()]),
            "pw is [REDACTED]!"
        );
    }

    #[test]
    fn reader_times_phases_writes_redacted_log_and_fails_fast() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let text = "\u{1b}cSeaBIOS (version x)\r\nLinux version 6.1\r\nfirstboot: password hunter2 set\r\n\
                    VFS: Unable to mount root fs\r\nKernel panic - not syncing\r\n";
        let (tx, rx) = std::sync::mpsc::channel();
        let c = Console::attach(
            std::io::Cursor::new(text.as_bytes().to_vec()),
            log.clone(),
            vec!["hunter2".into()],
            Instant::now(),
            move |e| tx.send(e).unwrap(),
        )
        .unwrap();
        let out = c.wait_for(Phase::Userspace, Instant::now() + Duration::from_secs(5));
        match out {
            WaitOutcome::Failed(f) => assert_eq!(f.kind, FailureKind::RootNotFound),
            o => panic!("unexpected {o:?}"),
        }
        let s = c.finish();
        assert!(s.closed);
        assert!(s.reached(Phase::Firmware).is_some() && s.reached(Phase::Kernel).is_some());
        // Each phase and the failure on the log line that showed it.
        assert_eq!(s.line_of(Phase::Firmware), Some(1));
        assert_eq!(s.line_of(Phase::Kernel), Some(2));
        assert_eq!((s.failure_line, s.lines), (Some(4), 5));
        assert_eq!(s.firstboot_lines, ["firstboot: password [REDACTED] set"]);
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(!logged.contains("hunter2") && logged.contains("[REDACTED]"));
        let events: Vec<_> = rx.try_iter().collect();
        assert!(matches!(events[0], ConsoleEvent::Phase(Phase::Firmware, _)));
        assert!(events.iter().any(|e| matches!(e, ConsoleEvent::Failure(_))));
    }

    #[test]
    fn wait_times_out_and_reports_close() {
        let dir = tempfile::tempdir().unwrap();
        let (r, w) = std::io::pipe().unwrap();
        let c = Console::attach(r, dir.path().join("l"), vec![], Instant::now(), |_| {}).unwrap();
        let t = Instant::now();
        assert_eq!(
            c.wait_for(Phase::Login, t + Duration::from_millis(150)),
            WaitOutcome::TimedOut
        );
        drop(w);
        assert_eq!(
            c.wait_for(Phase::Login, t + Duration::from_secs(5)),
            WaitOutcome::Closed
        );
    }
}
