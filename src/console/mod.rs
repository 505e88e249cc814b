//! The serial console: a reader thread turns QEMU's serial output into lines, writes them
//! (with secrets redacted, terminal control and line drawing stripped) to a log file,
//! timestamps the boot phases and spots failure patterns. Waits ([`Console::wait_for`])
//! have deadlines and end early when the console reports a failure or QEMU closes it, so a
//! panicking guest fails fast with its tail.
//!
//! Classification is pure ([`classify_line`], [`classify_prompt`], [`Stripper`]) and
//! unit-tested. A bootloader that stops for a person fails fast: at its command line at
//! once (`grub>`, `grub rescue>`, OVMF's `Shell>`); at a prompt or menu that may still
//! time out (SYSLINUX's `boot:`, a GRUB menu whose countdown never showed) once it has
//! stood unchanged for [`PROMPT_GRACE`].
//!
//! Bounded whatever the guest prints: a line is read whole up to [`MAX_LINE`] bytes, the
//! log file up to its limit (then a marker; the console is still read and judged to the
//! end), and every line the summary keeps is an excerpt naming where the whole is.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::facts::excerpt::excerpt;
use crate::facts::{ConsoleFailure, ConsoleSummary, FailureKind, Phase};

/// How long a bootloader prompt or menu that may still time out stands before it fails.
pub const PROMPT_GRACE: Duration = Duration::from_secs(20);

/// Phase and failure a complete console line signals.
pub fn classify_line(line: &str) -> (Option<Phase>, Option<FailureKind>) {
    const PHASES: &[(&str, Phase)] = &[
        ("SeaBIOS", Phase::Firmware),
        ("iPXE", Phase::Firmware),
        ("BdsDxe: ", Phase::Firmware),
        ("GRUB", Phase::Bootloader),
        ("ISOLINUX", Phase::Bootloader),
        ("SYSLINUX", Phase::Bootloader),
        ("Booting `", Phase::Bootloader),
        ("EFI stub: ", Phase::Kernel),
        ("Linux version", Phase::Kernel),
        ("IMGTEST-TINY-BOOTED", Phase::Userspace),
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
        (
            "No bootable option or device was found",
            FailureKind::NoBootDevice,
        ),
        ("\"EFI Internal Shell\"", FailureKind::FirmwareShell),
        ("UEFI Interactive Shell", FailureKind::FirmwareShell),
        ("Boot Manager Menu", FailureKind::FirmwareMenu),
        (
            "Failed to boot both default and fallback entries",
            FailureKind::BootloaderFailed,
        ),
        ("Security Violation", FailureKind::SecureBootViolation),
        ("bad shim signature", FailureKind::SecureBootViolation),
    ];
    let mut phase = PHASES
        .iter()
        .find(|(p, _)| line.contains(p))
        .map(|&(_, ph)| ph);
    if init_started(line).is_some_and(|init| init != "/init") {
        phase = Some(Phase::Userspace);
    }
    let mut failure = FAILURES
        .iter()
        .find(|(p, _)| line.contains(p))
        .map(|&(_, f)| f);
    let lower = line.to_ascii_lowercase();
    if failure.is_none() && lower.contains("root device") && lower.contains("not found") {
        failure = Some(FailureKind::RootNotFound);
    }
    if failure.is_none() && firmware_complaint(line) && line.contains("Access Denied") {
        failure = Some(FailureKind::SecureBootViolation);
    }
    (phase, failure)
}

/// The program the kernel starts as init (`Run /sbin/init as init process`): the real
/// root's init, or an initramfs's `/init` (which is the system itself on an installer or
/// live medium, and only a step on the way for a disk).
pub fn init_started(line: &str) -> Option<&str> {
    let start = line.find("Run ")? + 4;
    let end = start + line[start..].find(" as init process")?;
    Some(&line[start..end])
}

/// Whether `line` is the firmware saying a boot option failed (why nothing else booted).
fn firmware_complaint(line: &str) -> bool {
    line.contains("BdsDxe: failed to load")
}

/// A GRUB menu's help text: the menu waits unless its countdown follows.
fn menu_shown(line: &str) -> bool {
    line.contains("Press enter to boot the selected OS")
}

/// A GRUB menu's countdown: it will boot by itself.
fn menu_counts_down(line: &str) -> bool {
    line.contains("executed automatically")
}

/// Prompts print no newline: classify the pending partial line. A prompt that may still
/// time out is returned as the second element (the caller waits [`PROMPT_GRACE`]).
pub fn classify_prompt(partial: &str) -> (Option<Phase>, Option<FailureKind>, Option<FailureKind>) {
    let t = partial.trim_end();
    if t.ends_with("login:") {
        (Some(Phase::Login), None, None)
    } else if t.ends_with("grub rescue>") {
        (None, Some(FailureKind::GrubRescue), None)
    } else if t.ends_with("grub>") {
        (None, Some(FailureKind::BootloaderPrompt), None)
    } else if t.ends_with("Shell>") {
        (None, Some(FailureKind::FirmwareShell), None)
    } else if t.ends_with("(initramfs)") {
        (None, Some(FailureKind::EmergencyShell), None)
    } else if t.ends_with("boot:") {
        (None, None, Some(FailureKind::BootloaderPrompt))
    } else {
        (None, None, None)
    }
}

/// Replaces every secret in `line` with `[REDACTED]`.
pub fn redact(line: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(line.to_string(), |l, s| l.replace(s.as_str(), "[REDACTED]"))
}

/// Turns terminal output into plain text: drops escape sequences (CSI, OSC, character set
/// designations), carriage returns and other controls, and line drawing: the DEC special
/// graphics set newt and dialog switch to (`ESC ( 0`, or `ESC ) 0` with SO), box-drawing
/// characters, and the bytes of a non-UTF-8 code page (OVMF's terminal draws GRUB's menu
/// box in CP437: invalid UTF-8, except where two box bytes happen to form a Latin letter,
/// which is dropped when it follows such garbage). It keeps its state across lines, as a
/// terminal does.
#[derive(Debug, Default, Clone)]
pub struct Stripper {
    /// G0 is the DEC special graphics set.
    g0_graphics: bool,
    /// G1 is the DEC special graphics set.
    g1_graphics: bool,
    /// Shifted out (SO): G1 is in use.
    shifted: bool,
    /// The last character was dropped line drawing.
    after_drawing: bool,
}

impl Stripper {
    /// `s` as plain text.
    pub fn strip(&mut self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            let drawing = match c {
                '\u{fffd}' | '\u{2500}'..='\u{259f}' => true,
                '\u{80}'..='\u{7ff}' => self.after_drawing,
                c => self.graphics() && ('_'..='~').contains(&c),
            };
            self.after_drawing = drawing;
            match c {
                _ if drawing => {}
                '\u{1b}' => self.escape(&mut chars),
                '\u{0e}' => self.shifted = true,
                '\u{0f}' => self.shifted = false,
                '\r' => {}
                c if c.is_control() && c != '\t' => {}
                c => out.push(c),
            }
        }
        out
    }

    fn graphics(&self) -> bool {
        if self.shifted {
            self.g1_graphics
        } else {
            self.g0_graphics
        }
    }

    /// Consumes one escape sequence after its ESC.
    fn escape(&mut self, chars: &mut std::iter::Peekable<std::str::Chars>) {
        match chars.next() {
            // CSI: parameters and intermediates, then a final byte in @..~.
            Some('[') => {
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            }
            // OSC: up to BEL or ST (ESC \\).
            Some(']') => {
                while let Some(d) = chars.next() {
                    if d == '\u{7}' || (d == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            Some(g @ ('(' | ')')) => {
                let graphics = chars.next() == Some('0');
                if g == '(' {
                    self.g0_graphics = graphics;
                } else {
                    self.g1_graphics = graphics;
                }
            }
            Some('#' | '%') => {
                chars.next();
            }
            _ => {}
        }
    }
}

/// Removes terminal control and line drawing from `s` on its own ([`Stripper`]).
pub fn strip_control(s: &str) -> String {
    Stripper::default().strip(s)
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

/// Number of lines kept as the console tail, and of first-boot lines.
pub const TAIL_LINES: usize = 40;

/// The longest line read as one: more without a newline is cut into lines of this size.
pub const MAX_LINE: usize = 4 << 20;

/// How much of a partial line is searched for a prompt (which ends it).
const PROMPT_WINDOW: usize = 512;

struct ConsoleState {
    state: Mutex<Reading>,
    cond: Condvar,
}

/// What the reader has gathered, and what it is still deciding.
#[derive(Default)]
struct Reading {
    summary: ConsoleSummary,
    /// A prompt or menu that fails if it stands until [`PROMPT_GRACE`] after it showed.
    pending: Option<(ConsoleFailure, Instant)>,
    /// The firmware's last complaint about a boot option.
    complaint: Option<String>,
    /// How long a pending prompt stands before it fails.
    grace: Duration,
    /// The console log's line (from 1) the text being read is on.
    at: usize,
}

impl Reading {
    /// Records `failure` (the first one stays), naming the firmware's last complaint.
    fn fail(&mut self, kind: FailureKind, line: &str) -> Option<ConsoleFailure> {
        if self.summary.failure.is_some() {
            return None;
        }
        let f = ConsoleFailure {
            kind,
            line: line.to_string(),
            cause: self.complaint.clone(),
        };
        self.summary.failure = Some(f.clone());
        self.summary.failure_line = Some(self.at);
        Some(f)
    }

    /// A pending prompt that has stood for its grace becomes the failure.
    fn settle(&mut self, now: Instant) {
        if let Some((f, since)) = &self.pending
            && now >= *since + self.grace
        {
            let (kind, line) = (f.kind, f.line.clone());
            self.pending = None;
            self.fail(kind, &line);
        }
    }
}

/// A console being read by its own thread.
pub struct Console {
    shared: Arc<ConsoleState>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// How a console reads the boot: when the VM started (times count from there), and
/// whether the kernel starting an initramfs's `/init` is already userspace (a boot medium:
/// installer, live or rescue system) or only a step towards the real root's init (a disk).
#[derive(Debug, Clone, Copy)]
pub struct Reader {
    /// When the VM started.
    pub start: Instant,
    /// `/init` from an initramfs counts as userspace.
    pub medium: bool,
    /// How long a prompt or menu that may still time out stands before it fails
    /// ([`PROMPT_GRACE`]).
    pub grace: Duration,
    /// The most bytes of the log file written.
    pub log_limit: u64,
}

impl Console {
    /// Starts reading `serial` into `log`, redacting `secrets`, as `reader` says;
    /// `on_event` is called (on the reader thread) for each new phase/failure.
    pub fn attach(
        serial: impl Read + Send + 'static,
        log: PathBuf,
        secrets: Vec<String>,
        reader: Reader,
        on_event: impl Fn(ConsoleEvent) + Send + 'static,
    ) -> std::io::Result<Console> {
        let file = Log {
            name: log
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            out: BufWriter::new(crate::scratch::private_file(&log)?),
            written: 0,
            limit: reader.log_limit,
            cut: false,
        };
        let shared = Arc::new(ConsoleState {
            state: Mutex::new(Reading {
                grace: reader.grace,
                ..Reading::default()
            }),
            cond: Condvar::new(),
        });
        let s2 = shared.clone();
        let thread =
            std::thread::spawn(move || read_loop(serial, file, secrets, reader, s2, on_event));
        Ok(Console {
            shared,
            reader: Some(thread),
        })
    }

    /// Waits until `phase` is reached, a failure shows, QEMU exits or `deadline` passes.
    pub fn wait_for(&self, phase: Phase, deadline: Instant) -> WaitOutcome {
        let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = Instant::now();
            st.settle(now);
            let sum = &st.summary;
            if let Some(f) = &sum.failure {
                return WaitOutcome::Failed(f.clone());
            }
            if let Some(t) = sum.reached(phase) {
                return WaitOutcome::Reached(t);
            }
            if sum.closed {
                return WaitOutcome::Closed;
            }
            if now >= deadline {
                return WaitOutcome::TimedOut;
            }
            let wake = match &st.pending {
                Some((_, since)) => deadline.min(*since + st.grace),
                None => deadline,
            };
            st = self
                .shared
                .cond
                .wait_timeout(st, wake.saturating_duration_since(now))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// A copy of what the console has gathered so far.
    pub fn summary(&self) -> ConsoleSummary {
        let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        st.settle(Instant::now());
        st.summary.clone()
    }

    /// Waits for the reader thread (QEMU must be gone) and returns the final summary.
    pub fn finish(mut self) -> ConsoleSummary {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.summary()
    }
}

/// What one piece of console text signals.
struct Seen {
    phase: Option<Phase>,
    failure: Option<FailureKind>,
    /// A prompt that fails once it stands for the reader's grace.
    waiting: Option<FailureKind>,
    line: String,
}

/// Applies `seen` to the state; the events to report.
fn note(st: &mut Reading, t: Duration, seen: Seen) -> Vec<ConsoleEvent> {
    let mut events = Vec::new();
    if let Some(p) = seen.phase {
        // Reaching a later phase implies the ones it needs (a getty means userspace).
        let implied: &[Phase] = if p == Phase::Login {
            &[Phase::Userspace, Phase::Login]
        } else {
            &[p]
        };
        for &q in implied {
            if st.summary.reached(q).is_none() {
                st.summary.phases.push((q, t.as_secs_f64()));
                st.summary.phase_lines.push((q, st.at));
                events.push(ConsoleEvent::Phase(q, t));
            }
        }
        if p >= Phase::Kernel {
            st.pending = None;
        }
    }
    if let Some(kind) = seen.failure
        && let Some(f) = st.fail(kind, &seen.line)
    {
        events.push(ConsoleEvent::Failure(f));
    }
    if let Some(kind) = seen.waiting
        && st.pending.is_none()
    {
        let f = ConsoleFailure {
            kind,
            line: seen.line,
            cause: None,
        };
        st.pending = Some((f, Instant::now()));
    }
    events
}

/// What a complete line signals, for a console reading as `reader` says; it also updates
/// what the line settles (the firmware's complaints, a menu's countdown). The whole
/// `line` is judged, its excerpt `kept` is what is kept.
fn see_line(st: &mut Reading, line: &str, kept: &str, reader: &Reader) -> Seen {
    let (mut phase, failure) = classify_line(line);
    if reader.medium && init_started(line) == Some("/init") {
        phase = Some(Phase::Userspace);
    }
    if firmware_complaint(line) {
        st.complaint = Some(kept.trim().to_string());
    }
    let menu = (menu_shown(line) && !menu_counts_down(line)).then_some(FailureKind::BootloaderMenu);
    if menu.is_none()
        && (menu_counts_down(line)
            || st
                .pending
                .as_ref()
                .is_some_and(|(f, _)| f.kind == FailureKind::BootloaderPrompt))
    {
        st.pending = None;
    }
    Seen {
        phase,
        failure,
        waiting: menu,
        line: kept.to_string(),
    }
}

/// Whether a console line is the first-boot agent saying it has finished: cloud-init's
/// final message (printed by its last stage, after the stage that sets passwords), or
/// firstboot's last word, `done` or that it gave up (`accounts stay locked`).
fn agent_finished(line: &str) -> bool {
    let line = line.trim();
    let cloud_init = line
        .find("Cloud-init v. ")
        .is_some_and(|at| line[at..].contains(" finished at "));
    let firstboot = line
        .strip_prefix("firstboot: ")
        .is_some_and(|rest| rest == "done" || rest.contains("accounts stay locked"));
    cloud_init || firstboot
}

/// Counts a complete line and keeps it in the tail (and the first-boot lines); the line
/// being read is then that one.
fn keep_line(st: &mut Reading, line: &str) {
    let s = &mut st.summary;
    if s.tail.len() == TAIL_LINES {
        s.tail.remove(0);
    }
    s.tail.push(line.to_string());
    s.lines += 1;
    if line.trim_start().starts_with("firstboot:") && s.firstboot_lines.len() < TAIL_LINES {
        s.firstboot_lines.push(line.trim().to_string());
    }
    st.at = s.lines;
}

/// The console log file, written up to its limit.
struct Log {
    /// The file's name, which excerpts point to.
    name: String,
    out: BufWriter<File>,
    written: u64,
    limit: u64,
    /// The limit was reached: nothing more is written.
    cut: bool,
}

impl Log {
    /// Writes line number `at`; where the whole line is, for its excerpt.
    fn line(&mut self, line: &str, at: usize) -> String {
        let len = line.len() as u64 + 1;
        if !self.cut && self.written + len > self.limit {
            self.cut = true;
            let _ = writeln!(
                self.out,
                "[imgtest: the console log stops here, at its limit of {}; the console was read \
                 and judged to its end]",
                crate::units::human(self.limit)
            );
        }
        if self.cut {
            return format!("not kept ({} stops before line {at})", self.name);
        }
        self.written += len;
        let _ = writeln!(self.out, "{line}");
        format!("{} line {at}", self.name)
    }

    /// Writes the console's next line; its excerpt, which names where the whole is.
    fn keep(&mut self, shared: &ConsoleState, line: &str) -> String {
        let at = shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .summary
            .lines
            + 1;
        excerpt(line, Some(&self.line(line, at)))
    }
}

fn read_loop(
    mut serial: impl Read,
    mut log: Log,
    secrets: Vec<String>,
    reader: Reader,
    shared: Arc<ConsoleState>,
    on_event: impl Fn(ConsoleEvent),
) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    let mut stripper = Stripper::default();
    let apply = |f: &dyn Fn(&mut Reading) -> Seen| {
        let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let seen = f(&mut st);
        let events = note(&mut st, reader.start.elapsed(), seen);
        shared.cond.notify_all();
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
        let searched = pending.len();
        pending.extend_from_slice(&buf[..n]);
        let mut from = searched;
        loop {
            let end = match pending[from..].iter().position(|&b| b == b'\n') {
                Some(pos) => (from + pos + 1).min(MAX_LINE),
                None if pending.len() >= MAX_LINE => MAX_LINE,
                None => break,
            };
            let raw: Vec<u8> = pending.drain(..end).collect();
            from = 0;
            let line = redact(&stripper.strip(&String::from_utf8_lossy(&raw)), &secrets);
            let kept = log.keep(&shared, &line);
            let at = reader.start.elapsed().as_secs_f64();
            apply(&|st| {
                keep_line(st, &kept);
                if st.summary.agent_finished.is_none() && agent_finished(&line) {
                    st.summary.agent_finished = Some((at, kept.trim().to_string()));
                }
                see_line(st, &line, &kept, &reader)
            });
        }
        if !pending.is_empty() {
            // A prompt ends the partial line: only its end is searched, so a long line
            // arriving in pieces is not searched again and again.
            let window = &pending[pending.len().saturating_sub(PROMPT_WINDOW)..];
            let partial = redact(
                &stripper.clone().strip(&String::from_utf8_lossy(window)),
                &secrets,
            );
            let (phase, failure, waiting) = classify_prompt(&partial);
            apply(&|st| {
                // A prompt: the line it will end.
                st.at = st.summary.lines + 1;
                Seen {
                    phase,
                    failure,
                    waiting,
                    line: partial.trim().to_string(),
                }
            });
        }
        let _ = log.out.flush();
    }
    if !pending.is_empty() {
        let line = redact(
            &stripper.strip(&String::from_utf8_lossy(&pending)),
            &secrets,
        );
        // The line the console ended in is judged as a line too: a guest cannot hide a
        // failure by never ending its line.
        let kept = log.keep(&shared, &line);
        apply(&|st| {
            keep_line(st, &kept);
            see_line(st, &line, &kept, &reader)
        });
    }
    let _ = log.out.flush();
    let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    st.summary.closed = true;
    shared.cond.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_when_the_agent_has_finished() {
        for done in [
            "[   45.123456] cloud-init[612]: Cloud-init v. 22.4.2 finished at Mon, 07 Dec 2026 \
             20:00:00 +0000. Datasource DataSourceNoCloudNet [seed=dmi].  Up 45.10 seconds",
            "firstboot: done",
            "firstboot: metadata service unreachable, accounts stay locked; will retry at next boot",
        ] {
            assert!(agent_finished(done), "{done}");
        }
        for not in [
            "cloud-init[401]: Cloud-init v. 22.4.2 running 'init' at Mon, 07 Dec 2026",
            "firstboot: password set for root",
            "firstboot: done-ish",
            "echo firstboot: done",
        ] {
            assert!(!agent_finished(not), "{not}");
        }
    }

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
    fn strips_line_drawing_and_character_sets() {
        // debian-installer's newt: G1 is DEC graphics, SO/SI switch to it and back.
        let mut s = Stripper::default();
        assert_eq!(
            s.strip("\u{1b})0\u{0e}lqqqqqk\u{0f} [!] Configure\u{1b}[1;1H"),
            " [!] Configure"
        );
        assert_eq!(s.strip("\u{1b}(0qqqq\u{1b}(Bdone"), "done");
        // The state carries over lines, as on a terminal.
        assert_eq!(s.strip("\u{1b}(0x"), "");
        assert_eq!(s.strip("xq\u{1b}(B ok"), " ok");
        // GRUB's box through OVMF: CP437 bytes, lossily decoded.
        let cp437 = String::from_utf8_lossy(b"\xda\xc4\xc4\xc4\xbfmenu \xb3 caf\xc3\xa9");
        assert_eq!(strip_control(&cp437), "menu  café");
        assert_eq!(strip_control("\u{250c}\u{2500}\u{2510} box"), " box");
        assert_eq!(strip_control("\u{1b}]0;title\u{7}text\u{1b}[2~!"), "text!");
    }

    #[test]
    fn classifies_uefi_and_bootloader_stops() {
        let f = |l: &str| classify_line(l).1;
        assert_eq!(
            classify_line("BdsDxe: loading Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)").0,
            Some(Phase::Firmware)
        );
        assert_eq!(
            f("BdsDxe: loading Boot0002 \"EFI Internal Shell\" from Fv(7CB8BDC9)"),
            Some(FailureKind::FirmwareShell)
        );
        assert_eq!(
            f("BdsDxe: No bootable option or device was found."),
            Some(FailureKind::NoBootDevice)
        );
        assert_eq!(
            f(
                "BdsDxe: failed to load Boot0001 \"UEFI Misc Device\" from PciRoot(0x0): Access Denied"
            ),
            Some(FailureKind::SecureBootViolation)
        );
        assert_eq!(
            f("BdsDxe: failed to load Boot0001 \"UEFI Misc Device\" from PciRoot(0x0): Not Found"),
            None
        );
        assert_eq!(
            f("Verification failed: (0x1A) Security Violation"),
            Some(FailureKind::SecureBootViolation)
        );
        assert_eq!(
            classify_prompt("grub> ").1,
            Some(FailureKind::BootloaderPrompt)
        );
        assert_eq!(
            classify_prompt("Shell> ").1,
            Some(FailureKind::FirmwareShell)
        );
        assert_eq!(
            classify_prompt("boot: ").2,
            Some(FailureKind::BootloaderPrompt)
        );
        assert_eq!(classify_prompt("boot: ").1, None);
        assert_eq!(
            classify_line("[ 1.0] Run /sbin/init as init process").0,
            Some(Phase::Userspace)
        );
        assert_eq!(
            classify_line("[ 1.0] Run /bin/sh as init process").0,
            Some(Phase::Userspace)
        );
        // An initramfs's /init is userspace only for a boot medium (see Reader).
        assert_eq!(classify_line("[ 1.0] Run /init as init process").0, None);
        assert_eq!(
            init_started("[ 1.0] Run /init as init process"),
            Some("/init")
        );
    }

    fn read(text: &[u8], medium: bool) -> Console {
        let dir = tempfile::tempdir().unwrap();
        Console::attach(
            std::io::Cursor::new(text.to_vec()),
            dir.path().join("log"),
            vec![],
            Reader {
                start: Instant::now(),
                medium,
                grace: PROMPT_GRACE,
                log_limit: u64::MAX,
            },
            |_| {},
        )
        .unwrap()
    }

    #[test]
    fn a_medium_s_init_is_userspace_and_the_firmware_s_complaint_is_the_cause() {
        let init = b"Linux version 6.1\r\nRun /init as init process\r\n";
        let wait =
            |c: &Console| c.wait_for(Phase::Userspace, Instant::now() + Duration::from_secs(5));
        assert!(matches!(wait(&read(init, true)), WaitOutcome::Reached(_)));
        assert_eq!(wait(&read(init, false)), WaitOutcome::Closed);
        let shell = b"BdsDxe: failed to load Boot0001 \"UEFI Misc Device\": Not Found\r\n\
                      BdsDxe: loading Boot0002 \"EFI Internal Shell\" from Fv(1)\r\n";
        match wait(&read(shell, false)) {
            WaitOutcome::Failed(f) => {
                assert_eq!(f.kind, FailureKind::FirmwareShell);
                assert!(
                    f.describe()
                        .contains("(after: BdsDxe: failed to load Boot0001"),
                    "{f:?}"
                );
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn a_menu_without_countdown_fails_after_the_grace_and_one_with_it_does_not() {
        let (r, mut w) = std::io::pipe().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let start = Instant::now();
        let grace = Duration::from_millis(600);
        let reader = Reader {
            start,
            medium: false,
            grace,
            log_limit: u64::MAX,
        };
        let c = Console::attach(r, dir.path().join("l"), vec![], reader, |_| {}).unwrap();
        w.write_all(b"GNU GRUB\r\n Press enter to boot the selected OS, `e' to edit\r\n *Debian")
            .unwrap();
        // Before the grace the menu is only pending; after it, the wait fails with it.
        assert_eq!(
            c.wait_for(Phase::Kernel, Instant::now() + Duration::from_millis(200)),
            WaitOutcome::TimedOut
        );
        match c.wait_for(Phase::Kernel, start + grace + Duration::from_secs(5)) {
            WaitOutcome::Failed(f) => assert_eq!(f.kind, FailureKind::BootloaderMenu),
            o => panic!("{o:?}"),
        }
        let counting = read(
            b"Press enter to boot the selected OS\r\nThe highlighted entry will be executed automatically in 1s.\r\n",
            false,
        );
        let mut st = counting.shared.state.lock().unwrap();
        // Wait for the reader to finish the text.
        while !st.summary.closed {
            st = counting.shared.cond.wait(st).unwrap();
        }
        assert!(st.pending.is_none());
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
    fn a_hostile_console_is_read_to_its_end_and_kept_within_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("boot0-console.log");
        // A failure line of a megabyte, a line of 9 MiB with no newline in it, then a
        // flood of short lines past the log's limit and a prompt at the very end.
        let mut text = format!("Kernel panic - not syncing: {}\n", "A".repeat(1 << 20));
        text.push_str(&"B".repeat(MAX_LINE * 2 + 10));
        text.push('\n');
        for i in 0..20_000 {
            text.push_str(&format!("firstboot: flood {i}\n"));
        }
        text.push_str("tiny login: ");
        let limit = 6 << 20;
        let reader = Reader {
            start: Instant::now(),
            medium: false,
            grace: PROMPT_GRACE,
            log_limit: limit,
        };
        let c = Console::attach(
            std::io::Cursor::new(text.into_bytes()),
            log.clone(),
            vec![],
            reader,
            |_| {},
        )
        .unwrap();
        let s = c.finish();
        // Read to the end: every line counted, the prompt seen, the failure judged.
        assert_eq!(s.lines, 1 + 3 + 20_000 + 1);
        assert!(s.reached(Phase::Login).is_some());
        let f = s.failure.unwrap();
        assert_eq!(f.kind, FailureKind::KernelPanic);
        assert!(
            f.line
                .ends_with("more characters; whole: boot0-console.log line 1]"),
            "{}",
            &f.line[f.line.len() - 80..]
        );
        // Everything kept is bounded.
        assert_eq!(s.tail.len(), TAIL_LINES);
        assert_eq!(s.firstboot_lines.len(), TAIL_LINES);
        for kept in s.tail.iter().chain(&s.firstboot_lines).chain([&f.line]) {
            assert!(kept.len() < 500, "{}", kept.len());
        }
        // The log stops at its limit, and says so.
        let logged = std::fs::read(&log).unwrap();
        assert!(logged.len() as u64 <= limit + 200, "{}", logged.len());
        let logged = String::from_utf8_lossy(&logged);
        assert!(logged.contains("[imgtest: the console log stops here, at its limit of 6.0 MiB"));
        assert!(!logged.contains("flood 19999"));
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
            Reader {
                start: Instant::now(),
                medium: false,
                grace: PROMPT_GRACE,
                log_limit: u64::MAX,
            },
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
        let reader = Reader {
            start: Instant::now(),
            medium: false,
            grace: PROMPT_GRACE,
            log_limit: u64::MAX,
        };
        let c = Console::attach(r, dir.path().join("l"), vec![], reader, |_| {}).unwrap();
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
