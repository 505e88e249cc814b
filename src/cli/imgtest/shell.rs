//! `imgtest shell IMAGE`: into the guest the harness would test. One overlay of IMAGE
//! boots exactly as `imgtest run` boots it (firmware, metadata service with a fresh
//! password, the isolated network); then the user gets an interactive SSH session as the
//! first-boot user, logged in with that password (printed once, on the terminal, and
//! nowhere else), or with `--console` the serial console (Ctrl-] leaves it). The same
//! session is what `imgtest run --shell-on-failure` opens on a failed boot.
//!
//! The terminal is put in raw mode for the session (and restored, also on error); with
//! stdin not a terminal, the session has no pty and reads stdin to its end, like `ssh -T`.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ChildStdin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use clap::Args;
use ssh2::Session;

use super::args::{BootOptions, TimeoutFlag};
use super::{accel_cache, relay_program, run_hint, with_hint};
use crate::cli::{CliError, Outcome};
use crate::cloudinit::FirstbootChoice;
use crate::facts::Login;
use crate::report::{Event, render_event};
use crate::run::outputs::{self, Output};
use crate::run::plan::RunPlan;
use crate::run::shell::{Access, Door, Person};
use crate::run::{self, Emit};
use crate::vm::DiskBus;
use crate::vm::accel::AccelChoice;
use crate::vm::firmware::FirmwareChoice;

/// The byte Ctrl-] sends: it leaves the serial console.
const ESCAPE: u8 = 0x1d;

/// `imgtest shell` flags.
#[derive(Debug, Clone, Args)]
pub struct ShellArgs {
    /// The image (raw, qcow2, vmdk or ISO); it is never written.
    #[arg(value_name = "IMAGE")]
    image: PathBuf,
    /// The serial console instead of SSH, from the firmware on (Ctrl-] leaves it).
    #[arg(long)]
    console: bool,
    /// Keep the boot's qcow2 overlay here (backed by IMAGE) instead of deleting it.
    #[arg(long, value_name = "FILE")]
    keep_overlay: Option<PathBuf>,
    /// Configuration file (default: ./imgtest.toml if present).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Accelerator [default: auto].
    #[arg(long, value_enum)]
    accel: Option<AccelChoice>,
    /// Firmware [default: auto: the image's own; BIOS for a hybrid image].
    #[arg(long, value_enum)]
    firmware: Option<FirmwareChoice>,
    /// UEFI boots run OVMF's Secure Boot build with Microsoft's keys enrolled.
    #[arg(long)]
    secure_boot: bool,
    /// Guest RAM in MiB [default: 384].
    #[arg(short = 'm', long = "memory", value_name = "MiB")]
    memory: Option<u32>,
    /// vCPUs.
    #[arg(long)]
    smp: Option<u32>,
    /// Disk bus [default: virtio].
    #[arg(long, value_enum)]
    disk_bus: Option<DiskBus>,
    /// Timeout, PHASE=DURATION (boot, login) or DURATION for overall.
    #[arg(long = "timeout", value_name = "[PHASE=]DURATION")]
    timeouts: Vec<TimeoutFlag>,
    /// Login user (default: root for firstboot, the image's cloud-init default user).
    #[arg(long)]
    user: Option<String>,
    /// First-boot agent [default: auto].
    #[arg(long, value_enum, value_name = "AGENT")]
    firstboot: Option<FirstbootChoice>,
}

impl ShellArgs {
    /// The run these flags ask for: one boot, every check's needs (a login).
    fn plan(&self) -> Result<RunPlan, String> {
        let options = BootOptions {
            config: self.config.clone(),
            accel: self.accel,
            firmware: self.firmware,
            secure_boot: self.secure_boot,
            memory: self.memory,
            smp: self.smp,
            disk_bus: self.disk_bus,
            boots: Some(1),
            timeouts: self.timeouts.clone(),
            user: self.user.clone(),
            firstboot: self.firstboot,
            ..BootOptions::default()
        };
        let mut request = options.request();
        request.images = vec![self.image.clone()];
        RunPlan::load(request, relay_program()).map_err(|e| e.to_string())
    }
}

/// `imgtest shell`.
pub(super) fn shell(args: ShellArgs) -> Result<Outcome, CliError> {
    crate::vm::process::install_signal_guard();
    if let Some(keep) = args.keep_overlay.as_ref().filter(|k| k.exists()) {
        return Err(format!(
            "{} already exists (--keep-overlay never replaces a file)",
            keep.display()
        )
        .into());
    }
    let plan = args.plan()?;
    let infos = run::check(&plan)
        .and_then(|infos| {
            let keep = args.keep_overlay.as_deref();
            let outs: Vec<Output> = keep
                .map(|k| Output::File(k, "--keep-overlay"))
                .into_iter()
                .collect();
            outputs::check(&outs, &[args.image.as_path()])?;
            Ok(infos)
        })
        .map_err(|e| with_hint(&e.to_string(), run_hint(&e)))?;
    let accel = run::start_accel(&plan, accel_cache());
    let (emit, quiet) = progress();
    let door = if args.console {
        Door::Console
    } else {
        Door::Ssh
    };
    let person = person(quiet);
    let held = run::shell(
        &plan,
        (&args.image, &infos[0]),
        &accel,
        emit,
        (door, &person),
        args.keep_overlay.as_deref(),
    );
    let facts = held.map_err(|e| with_hint(&e.to_string(), run_hint(&e)))?;
    match facts.login {
        _ if door == Door::Console => Ok(Outcome::Success),
        Login::Worked { .. } => Ok(Outcome::Success),
        other => Err(format!(
            "no way in: {}; last console line: {}",
            login_words(&other),
            facts.console.last_line()
        )
        .into()),
    }
}

fn login_words(l: &Login) -> String {
    match l {
        Login::Worked { after_secs } => format!("logged in after {after_secs:.1}s"),
        Login::Refused { reason } => format!("the password was refused ({reason})"),
        Login::NoSsh { reason } => format!("no SSH server answered ({reason})"),
        Login::NotTried { reason } => reason.clone(),
    }
}

/// Progress lines on stderr until the session starts (then `quiet` is set).
fn progress() -> (Emit, Arc<AtomicBool>) {
    let quiet = Arc::new(AtomicBool::new(false));
    let q = quiet.clone();
    let emit: Emit = Arc::new(move |e: Event| {
        if let Some(line) = render_event(&e).filter(|_| !q.load(Ordering::SeqCst)) {
            eprintln!("imgtest shell: {line}");
        }
    });
    (emit, quiet)
}

/// The person at this terminal: SSH or the serial console, whichever the boot offers.
pub(super) fn person(quiet: Arc<AtomicBool>) -> Person {
    Person(Arc::new(move |access| {
        quiet.store(true, Ordering::SeqCst);
        let done = match access {
            Access::Ssh {
                session,
                user,
                password,
            } => {
                eprintln!(
                    "imgtest shell: logged in as {user} with the metadata password {password}"
                );
                ssh_session(session)
            }
            Access::Console { output, input } => {
                eprintln!("imgtest shell: the serial console; Ctrl-] leaves it");
                serial_console(output, input)
            }
        };
        if let Err(e) = done {
            eprintln!("imgtest shell: the session ended: {e}");
        }
        quiet.store(false, Ordering::SeqCst);
    }))
}

/// The terminal in raw mode while this lives (keys go to the guest as typed).
struct Raw(Option<rustix::termios::Termios>);

impl Raw {
    fn enter() -> Raw {
        let stdin = std::io::stdin();
        let saved = std::io::stdin()
            .is_terminal()
            .then(|| rustix::termios::tcgetattr(stdin.as_fd()).ok())
            .flatten();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            raw.make_raw();
            let _ = rustix::termios::tcsetattr(
                stdin.as_fd(),
                rustix::termios::OptionalActions::Now,
                &raw,
            );
        }
        Raw(saved)
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin().as_fd(),
                rustix::termios::OptionalActions::Now,
                t,
            );
        }
    }
}

/// Whether stdin has input within `wait`.
fn stdin_ready(wait: Duration) -> std::io::Result<bool> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let stdin = std::io::stdin();
    let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: 0,
        tv_nsec: wait.as_nanos() as _,
    };
    rustix::event::poll(&mut fds, Some(&timeout))?;
    Ok(!fds[0].revents().is_empty())
}

/// Reads what stdin has now; None at its end.
fn read_stdin(buf: &mut [u8]) -> std::io::Result<Option<usize>> {
    match rustix::io::read(std::io::stdin(), buf)? {
        0 => Ok(None),
        n => Ok(Some(n)),
    }
}

/// An interactive shell on `session`: a pty the size of this terminal when stdin is one,
/// keys and output passed through until the guest's shell exits.
fn ssh_session(session: &Session) -> std::io::Result<()> {
    let mut channel = session.channel_session()?;
    if std::io::stdin().is_terminal() {
        let size = rustix::termios::tcgetwinsize(std::io::stdout()).ok();
        let dim = size.map(|w| (u32::from(w.ws_col), u32::from(w.ws_row), 0, 0));
        let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".into());
        channel.request_pty(&term, None, dim)?;
    }
    channel.shell()?;
    let _raw = Raw::enter();
    session.set_blocking(false);
    let (mut buf, mut out) = ([0u8; 8192], std::io::stdout());
    let mut stdin_open = true;
    while !channel.eof() {
        let mut idle = true;
        for stream in [0, 1] {
            match channel.stream(stream).read(&mut buf) {
                Ok(0) => {}
                Ok(n) => {
                    idle = false;
                    out.write_all(&buf[..n])?;
                    out.flush()?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        if stdin_open && stdin_ready(Duration::from_millis(if idle { 20 } else { 0 }))? {
            match read_stdin(&mut buf)? {
                Some(n) => write_all_nonblocking(&mut channel, &buf[..n])?,
                None => {
                    stdin_open = false;
                    while let Err(e) = channel.send_eof() {
                        if e.code() != ssh2::ErrorCode::Session(-37) {
                            return Err(e.into());
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        } else if !stdin_open && idle {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    session.set_blocking(true);
    let _ = channel.wait_close();
    Ok(())
}

/// Writes all of `data` to a channel of a non-blocking session.
fn write_all_nonblocking(channel: &mut ssh2::Channel, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        match channel.write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The serial console: what the guest prints goes to stdout, keys go to the guest, until
/// Ctrl-], the end of stdin or the end of QEMU.
fn serial_console(output: Receiver<Vec<u8>>, mut input: ChildStdin) -> std::io::Result<()> {
    let leaving = Arc::new(AtomicBool::new(false));
    let (left, gone) = (leaving.clone(), Arc::new(AtomicBool::new(false)));
    let ended = gone.clone();
    std::thread::spawn(move || {
        let mut out = std::io::stdout();
        for chunk in output {
            if left.load(Ordering::SeqCst) {
                break;
            }
            let _ = out.write_all(&chunk).and_then(|()| out.flush());
        }
        ended.store(true, Ordering::SeqCst);
    });
    let _raw = Raw::enter();
    let mut buf = [0u8; 1024];
    let result = loop {
        if gone.load(Ordering::SeqCst) {
            break Ok(());
        }
        if !stdin_ready(Duration::from_millis(50))? {
            continue;
        }
        let Some(n) = read_stdin(&mut buf)? else {
            break Ok(());
        };
        let keys = &buf[..n];
        match keys.iter().position(|&b| b == ESCAPE) {
            Some(at) => break input.write_all(&keys[..at]),
            None => {
                if let Err(e) = input.write_all(keys).and_then(|()| input.flush()) {
                    break Err(e);
                }
            }
        }
    };
    leaving.store(true, Ordering::SeqCst);
    result
}
