//! One boot as a short sequence of named stages, each with its own deadline and its own
//! typed event ([`BootEvent`]):
//!
//! 1. [`start`]: overlay, metadata secrets, QEMU, serial console;
//! 2. [`to_userspace`]: the console until userspace, a failure pattern or the boot deadline;
//! 3. [`login`]: the metadata password over SSH, retried until the login deadline;
//! 4. [`inspect`]: cloud-init's finish and the [`probe`]'s facts, beside one
//!    [`wrong_password`] on a connection of its own;
//! 5. [`power_off`]: the ACPI power button, judged on one boot ([`Roles`]);
//! 6. [`finish`]: QEMU stopped, the console's summary and the metadata requests collected.
//!
//! A stage runs only when a selected check [`Need`]s what it collects. The end of each
//! stage, a failure and a boot deadline are also photographed ([`screenshot`]): the VGA
//! screen shows what images that are silent on the serial console print.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ssh2::Session;

use super::plan::RunPlan;
use super::shell::{Access, Door, Person};
use super::{Emit, RunError, boot_count, io};
use crate::checks::{self, CheckId, Expect, Need, Selection, Status};
use crate::cloudinit::NOCLOUD_SERIAL;
use crate::console::{Console, ConsoleEvent, PROMPT_GRACE, Reader, WaitOutcome};
use crate::disk::image::{ImageInfo, ImageKind};
use crate::facts::artifacts::BootFiles;
use crate::facts::{
    AccelDecision, Agent, AgentFacts, BootFacts, CLOUD_INIT_BOOT_FINISHED, ConsoleSummary, Facts,
    FileKind, Firmware, FirmwareFacts, Login, Offline, OfflineFacts, Phase, Screenshot, ShotMoment,
    Shutdown, StopReason,
};
use crate::guest;
use crate::metadata::{self, BootSecrets, MetadataServer};
use crate::report::{BootEvent, Event, Timeouts};
use crate::vm::firmware::Ovmf;
use crate::vm::process::{VmProcess, interrupted};
use crate::vm::qmp::Qmp;
use crate::vm::{self, Uefi, VmError, VmSpec};
use crate::wait::{self, Waited};

/// Size of the blank disk an ISO boots with.
const ISO_BLANK_DISK: u64 = 8 << 30;

/// What every boot of one image shares.
pub(super) struct BootContext<'a> {
    pub plan: &'a RunPlan,
    /// The checks judged on this image (the plan's, under the image's expectation).
    pub selection: &'a Selection,
    pub accel: &'a AccelDecision,
    /// What is known before booting: offline facts, agent, fault.
    pub facts: &'a Facts,
    /// Effective timeouts (after TCG scaling).
    pub timeouts: &'a Timeouts,
    /// The image's overall deadline.
    pub overall: Instant,
    pub info: &'a ImageInfo,
    /// Further disks, attached after the image (or the CD) in this order.
    pub disks: &'a [ImageInfo],
    /// Which firmware each boot uses.
    pub firmware: &'a FirmwareFacts,
    /// OVMF, when a boot uses UEFI.
    pub ovmf: Option<&'a Ovmf>,
    pub server: &'a MetadataServer,
    /// The run's temp dir: overlays, sockets, logs.
    pub tmp: &'a std::path::Path,
    pub roles: Roles,
}

impl BootContext<'_> {
    fn needs(&self, need: Need) -> bool {
        self.selection.needs(need)
    }

    /// The first-boot agent and login user.
    fn agent(&self) -> &AgentFacts {
        self.facts
            .agent
            .as_ref()
            .expect("the runner chose the agent before booting")
    }

    fn offline(&self) -> Option<&OfflineFacts> {
        match &self.facts.offline {
            Offline::Read(o) => Some(o),
            Offline::Unreadable { .. } => None,
        }
    }

    /// `d` from now, but never past the overall deadline.
    fn deadline(&self, d: Duration) -> Instant {
        (Instant::now() + d).min(self.overall)
    }
}

/// Who does the once-per-run acts among the parallel boots of one image.
///
/// The image's authentication is the same on every boot, so the wrong password is tried
/// once, by the first boot whose SSH server answers: the guest's failure delay (~2 s)
/// then holds up that boot alone. The ACPI power-off is judged once too, on the first boot
/// to finish its other work; the others are stopped at once, so the guest's shutdown time
/// is spent while later boots still work, not after them.
///
/// With `--fail-fast`, the first boot whose checks fail stops the others ([`Roles::stop`]).
#[derive(Debug)]
pub(super) struct Roles {
    wrong_password: AtomicBool,
    power_off: AtomicUsize,
    stopped: std::sync::Mutex<Option<StopReason>>,
    shell: AtomicBool,
}

impl Default for Roles {
    fn default() -> Self {
        Roles {
            wrong_password: AtomicBool::new(false),
            power_off: AtomicUsize::new(usize::MAX),
            stopped: std::sync::Mutex::new(None),
            shell: AtomicBool::new(false),
        }
    }
}

impl Roles {
    /// True for the first caller only: with `--shell-on-failure`, its failed boot is
    /// handed to the person.
    fn claim_shell(&self) -> bool {
        !self.shell.swap(true, Ordering::SeqCst)
    }

    /// True for the first caller only: it tries the wrong password.
    fn claim_wrong_password(&self) -> bool {
        !self.wrong_password.swap(true, Ordering::SeqCst)
    }

    /// Ok for the first caller (boot `i` powers its guest off), else the boot that does.
    fn claim_power_off(&self, i: usize) -> Result<(), usize> {
        self.power_off
            .compare_exchange(usize::MAX, i, Ordering::SeqCst, Ordering::SeqCst)
            .map(|_| ())
    }

    /// Stops every boot's waits with `why` (the first reason given stays).
    fn stop(&self, why: StopReason) {
        self.stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(why);
    }

    /// Why the boots were stopped, if they were.
    fn stopped(&self) -> Option<StopReason> {
        self.stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// OVMF (its Secure Boot build if asked), when a boot uses UEFI.
pub(super) fn ovmf_for(firmware: &FirmwareFacts) -> Result<Option<Ovmf>, RunError> {
    Ok(firmware
        .firmwares
        .contains(&Firmware::Uefi)
        .then(|| Ovmf::locate(firmware.secure_boot))
        .transpose()?)
}

/// Runs the plan's boots in parallel, one thread each.
pub(super) fn run_boots(ctx: &BootContext, emit: &Emit) -> Result<Vec<BootFacts>, RunError> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..boot_count(ctx.plan, ctx.firmware))
            .map(|i| s.spawn(move || boot_one(ctx, i, emit)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// A started boot.
struct Guest {
    i: usize,
    vm: VmProcess,
    console: Console,
    ssh_port: u16,
    qmp_socket: PathBuf,
    /// The QMP connection, once made (QEMU serves one client at a time).
    qmp: Option<Qmp>,
    /// The serial console's input, for a boot held open on its console.
    stdin: Option<std::process::ChildStdin>,
    secrets: BootSecrets,
    /// When QEMU started; the times in the boot's facts count from here.
    start: Instant,
    emit: Emit,
}

impl Guest {
    fn event(&self, event: BootEvent) {
        (self.emit)(Event::Boot {
            boot: self.i,
            event,
        });
    }

    /// Why waiting on this guest is pointless now, if it is: QEMU exited, the console
    /// showed a failure, a signal or `--fail-fast` stopped the run.
    fn gone(&mut self, roles: &Roles) -> Option<StopReason> {
        if self.vm.try_exited().is_some() {
            Some(StopReason::QemuExited)
        } else if let Some(f) = self.console.summary().failure {
            Some(StopReason::Console { kind: f.kind })
        } else if interrupted() {
            Some(StopReason::Interrupted)
        } else {
            roles.stopped()
        }
    }

    /// [`Guest::gone`] in words, as a wait's stop asks it.
    fn gone_why(&mut self, roles: &Roles) -> Option<String> {
        self.gone(roles).map(|r| r.to_string())
    }

    fn since_start(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// The QMP connection, made on first use (waiting for the socket until `deadline`).
    fn qmp(&mut self, deadline: Instant) -> Result<&mut Qmp, VmError> {
        if self.qmp.is_none() {
            self.qmp = Some(Qmp::connect(&self.qmp_socket, deadline)?);
        }
        Ok(self.qmp.as_mut().expect("connected above"))
    }
}

/// How long a screenshot may take.
const SCREENSHOT_WAIT: Duration = Duration::from_secs(10);

/// A screenshot of the guest's screen at `moment`, into the run's temp dir, recorded in
/// `facts`. A screen that cannot be taken (QEMU gone) is left out: it is no fact about the
/// image.
fn screenshot(ctx: &BootContext, g: &mut Guest, facts: &mut BootFacts, moment: ShotMoment) {
    if g.vm.try_exited().is_some() {
        return;
    }
    let file = Screenshot::file_name(g.i, moment);
    let path = ctx.tmp.join(&file);
    let taken = g
        .qmp(Instant::now() + SCREENSHOT_WAIT)
        .and_then(|q| q.screendump(&path));
    if taken.is_ok() && path.is_file() {
        facts.screenshots.push(Screenshot {
            moment,
            secs: g.since_start(),
            file,
        });
    }
}

/// One boot: the stages in order.
fn boot_one(ctx: &BootContext, i: usize, emit: &Emit) -> Result<BootFacts, RunError> {
    let mut g = start(ctx, i, emit, None)?;
    let mut facts = BootFacts::new(i, ctx.firmware.for_boot(i));
    facts.metadata_key = g.secrets.ssh_key.clone();
    let reached = to_userspace(ctx, &mut g, &mut facts);
    facts.qemu_exit = g.vm.try_exited().map(|s| s.to_string());
    if !reached && let Some(why) = host_fault(ctx, &mut g) {
        ctx.roles.stop(StopReason::HostFault { said: why.clone() });
        return Err(RunError::Host(why));
    }
    if reached && !interrupted() {
        let login_deadline = ctx.deadline(ctx.timeouts.login);
        let session = login(ctx, &mut g, &mut facts, login_deadline);
        if ctx.needs(Need::Login) {
            screenshot(ctx, &mut g, &mut facts, ShotMoment::Login);
        }
        inspect(ctx, &mut g, &mut facts, session.as_ref(), login_deadline)?;
        if ctx.needs(Need::Probe) {
            screenshot(ctx, &mut g, &mut facts, ShotMoment::Inspect);
        }
        if let (Some(person), Some(session)) = (&ctx.plan.shell_on_failure, &session)
            && failed_check(ctx, &facts).is_some()
            && ctx.roles.claim_shell()
        {
            hand_over(ctx, &g, session, person);
        }
        facts.shutdown = power_off(ctx, &mut g, &mut facts);
    } else {
        facts.login = Login::NotTried {
            reason: "the guest did not reach userspace".into(),
        };
    }
    if ctx.plan.fail_fast {
        fail_fast(ctx, &mut facts);
    }
    Ok(finish(ctx, g, facts))
}

/// Why the host, not the image, stopped the boot, if it did: QEMU ended (with an error
/// status, or killed by a signal imgtest did not send) before the console showed anything
/// at all, not even the firmware. The reason is QEMU's last word on its stderr (memory,
/// CPU count, firmware, accelerator, image format).
fn host_fault(ctx: &BootContext, g: &mut Guest) -> Option<String> {
    // A console QEMU closed means QEMU is exiting: wait for it to be done.
    let status = match g.vm.try_exited() {
        Some(s) => s,
        None if g.console.summary().closed => {
            g.vm.wait_until(Instant::now() + Duration::from_secs(5))?
        }
        None => return None,
    };
    if status.success() || interrupted() || !g.console.summary().silent() {
        return None;
    }
    let log = std::fs::read_to_string(ctx.tmp.join(BootFiles(g.i).qemu_log())).unwrap_or_default();
    let said = log
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.strip_prefix(&format!("{}: ", ctx.plan.qemu)).unwrap_or(l));
    Some(match said {
        Some(reason) => format!("QEMU could not run the guest: {reason}"),
        None => format!("QEMU could not run the guest ({status}) and said nothing"),
    })
}

/// `--fail-fast`: a boot that another boot's failure cut short is marked stopped (its
/// checks are not judged); a boot whose own checks fail stops the others.
fn fail_fast(ctx: &BootContext, facts: &mut BootFacts) {
    if let Some(why) = ctx.roles.stopped() {
        facts.stopped = Some(why);
        return;
    }
    if let Some(r) = failed_check(ctx, facts) {
        ctx.roles.stop(StopReason::FailFast {
            check: r.id.to_string(),
            boot: facts.index,
        });
    }
}

/// The first error-severity check of this boot that fails, judged on its facts alone.
fn failed_check(ctx: &BootContext, facts: &BootFacts) -> Option<checks::CheckResult> {
    checks::judge_boot(facts, ctx.facts, ctx.selection)
        .into_iter()
        .find(|r| r.status == Status::Fail && r.severity == checks::Severity::Error)
}

/// Hands the logged-in guest to `person` until they are done with it.
fn hand_over(ctx: &BootContext, g: &Guest, session: &Session, person: &Person) {
    (person.0)(Access::Ssh {
        session,
        user: &ctx.agent().user,
        password: &g.secrets.password,
    });
}

/// One boot held open for a person, who comes in through `door`: the serial console at
/// once, or SSH once the metadata password works (the boot's facts say why not, when it
/// never does).
pub(super) fn hold(
    ctx: &BootContext,
    emit: &Emit,
    door: Door,
    person: &Person,
) -> Result<BootFacts, RunError> {
    let (tap, output) = std::sync::mpsc::channel();
    let mut g = start(ctx, 0, emit, (door == Door::Console).then_some(tap))?;
    let mut facts = BootFacts::new(0, ctx.firmware.for_boot(0));
    match (door, g.stdin.take()) {
        (Door::Console, Some(input)) => (person.0)(Access::Console { output, input }),
        _ => {
            if to_userspace(ctx, &mut g, &mut facts) {
                let deadline = ctx.deadline(ctx.timeouts.login);
                if let Some(session) = login(ctx, &mut g, &mut facts, deadline) {
                    hand_over(ctx, &g, &session, person);
                }
            }
        }
    }
    facts.qemu_exit = g.vm.try_exited().map(|s| s.to_string());
    Ok(finish(ctx, g, facts))
}

/// A reader that also sends what it reads (the serial console held open for a person).
struct Tee<R> {
    inner: R,
    copy: std::sync::mpsc::Sender<Vec<u8>>,
}

impl<R: std::io::Read> std::io::Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            let _ = self.copy.send(buf[..n].to_vec());
        }
        Ok(n)
    }
}

/// Stage 1: the overlay (or blank disk for an ISO), this boot's secrets, QEMU and its
/// console; with `tap`, the console's output is copied there and its input kept.
fn start(
    ctx: &BootContext,
    i: usize,
    emit: &Emit,
    tap: Option<std::sync::mpsc::Sender<Vec<u8>>>,
) -> Result<Guest, RunError> {
    let secrets = BootSecrets::generate(i).map_err(io("random"))?;
    let socket = ctx
        .server
        .register(i, secrets.clone())
        .map_err(io("metadata socket"))?;
    let spec = spec(ctx, i, &socket)?;
    let (ssh_port, qmp_socket) = (
        spec.ssh_port.expect("spec forwards SSH"),
        spec.qmp_socket.clone().expect("spec has QMP"),
    );
    let start = Instant::now();
    let log = ctx.tmp.join(BootFiles(i).qemu_log());
    let (vm, serial, stdin): (_, Box<dyn std::io::Read + Send>, _) = match tap {
        None => {
            let (vm, serial) = VmProcess::spawn(&ctx.plan.qemu, &spec, &log)?;
            (vm, Box::new(serial), None)
        }
        Some(copy) => {
            let (vm, serial, stdin) = VmProcess::spawn_interactive(&ctx.plan.qemu, &spec, &log)?;
            (
                vm,
                Box::new(Tee {
                    inner: serial,
                    copy,
                }),
                Some(stdin),
            )
        }
    };
    let console_emit = emit.clone();
    let console = Console::attach(
        serial,
        ctx.tmp.join(BootFiles(i).console_log()),
        vec![secrets.password.clone()],
        Reader {
            start,
            medium: ctx.selection.expect == Expect::Boot,
            grace: PROMPT_GRACE,
            log_limit: ctx.plan.console_log_limit,
        },
        move |e| {
            let event = match e {
                ConsoleEvent::Phase(phase, d) => BootEvent::Phase {
                    phase,
                    secs: d.as_secs_f64(),
                },
                ConsoleEvent::Failure(f) => BootEvent::ConsoleFailure(f),
            };
            console_emit(Event::Boot { boot: i, event });
        },
    )
    .map_err(io("console log"))?;
    let g = Guest {
        i,
        vm,
        console,
        ssh_port,
        qmp_socket,
        qmp: None,
        stdin,
        secrets,
        start,
        emit: emit.clone(),
    };
    g.event(BootEvent::Started {
        firmware: ctx.firmware.for_boot(i),
        pid: g.vm.pid(),
        ssh_port,
    });
    Ok(g)
}

/// The QEMU invocation of boot `i`: its firmware, disks, network forwards (the metadata
/// relay to the boot's `socket`) and QMP socket.
fn spec(ctx: &BootContext, i: usize, socket: &Path) -> Result<VmSpec, RunError> {
    let plan = ctx.plan;
    let host_cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let mut spec = VmSpec::new(
        ctx.accel.accel,
        plan.memory_for(ctx.info.kind),
        plan.vcpus(ctx.accel.accel, host_cpus),
    );
    if ctx.firmware.for_boot(i) == Firmware::Uefi {
        let ovmf = ctx.ovmf.expect("the runner found OVMF for the UEFI boots");
        spec.uefi = Some(Uefi {
            code: ovmf.code.clone(),
            vars: ovmf.private_vars(&ctx.tmp.join(BootFiles(i).ovmf_vars()))?,
            secure_boot: ovmf.secure_boot,
        });
    }
    let mut disks = disks(ctx, i)?;
    if let ImageKind::Iso { .. } = ctx.info.kind {
        spec.cdrom = Some(ctx.info.path.clone());
    }
    spec.disk = Some(disks.remove(0));
    spec.extra_disks = disks;
    spec.disk_bus = plan.disk_bus;
    spec.direct_kernel = plan.direct_kernel.clone();
    spec.ssh_port = Some(free_port()?);
    spec.metadata_cmd = Some(ctx.server.relay_command(&plan.relay_program, socket));
    if ctx.agent().agent == Agent::CloudInit {
        spec.smbios_serial = Some(NOCLOUD_SERIAL.into());
    }
    spec.qmp_socket = Some(ctx.tmp.join(BootFiles(i).qmp_socket()));
    Ok(spec)
}

/// Where boot `i` keeps its overlay of a disk image (its first disk; an ISO has none).
pub(super) fn image_overlay(tmp: &Path, i: usize) -> PathBuf {
    tmp.join(BootFiles(i).overlay(0))
}

/// Boot `i`'s disks, each a qcow2 overlay in the temp dir (nothing attached is ever
/// written): the image (for an ISO, a blank disk unless further disks are given), then the
/// further disks in order.
fn disks(ctx: &BootContext, i: usize) -> Result<Vec<PathBuf>, RunError> {
    let mut out = Vec::new();
    let mut attach = |info: &ImageInfo| -> Result<(), RunError> {
        let overlay = match out.len() {
            0 => image_overlay(ctx.tmp, i),
            n => ctx.tmp.join(BootFiles(i).overlay(n)),
        };
        vm::create_overlay(&info.path, info.kind.qemu_format(), &overlay)?;
        out.push(overlay);
        Ok(())
    };
    match ctx.info.kind {
        ImageKind::Iso { .. } => {}
        _ => attach(ctx.info)?,
    }
    for d in ctx.disks {
        attach(d)?;
    }
    if out.is_empty() {
        let blank = ctx.tmp.join(BootFiles(i).blank_disk());
        vm::create_blank_disk(&blank, ISO_BLANK_DISK)?;
        out.push(blank);
    }
    Ok(out)
}

fn free_port() -> Result<u16, RunError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("port"))?;
    Ok(l.local_addr().map_err(io("port"))?.port())
}

/// Stage 2: whether the guest reached userspace before the boot deadline: the console
/// names it, or an SSH server answers (which proves userspace too, for images whose
/// console is VGA only). A failure on the console ends the wait at once. The screen is
/// photographed at the end: reached, failed, or at the deadline.
fn to_userspace(ctx: &BootContext, g: &mut Guest, facts: &mut BootFacts) -> bool {
    let deadline = (g.start + ctx.timeouts.boot).min(ctx.overall);
    let (port, roles) = (g.ssh_port, &ctx.roles);
    let mut done = || {
        let console = g.console.summary();
        let seen = console.reached(Phase::Userspace).is_some() || console.closed;
        if seen {
            Some(String::new())
        } else {
            g.gone_why(roles)
        }
    };
    // QEMU refuses connections until its forward listens: try again until it does.
    let answered = |stop: &mut guest::Stop| guest::connect(port, deadline, stop).ok();
    let ssh_answered = matches!(
        wait::until(deadline, Duration::from_millis(100), &mut done, answered),
        Waited::Done(_)
    );
    let (reached, moment) = if ssh_answered {
        (true, Some(ShotMoment::Userspace))
    } else {
        match g.console.wait_for(Phase::Userspace, Instant::now()) {
            WaitOutcome::Reached(_) => (true, Some(ShotMoment::Userspace)),
            WaitOutcome::Failed(_) => {
                // Fail fast, but give the console a moment to print the rest of the panic.
                g.vm.wait_until(Instant::now() + Duration::from_secs(1));
                (false, Some(ShotMoment::Failure))
            }
            WaitOutcome::Closed => {
                // QEMU closed the console: let it exit, so the boot records how it ended.
                g.vm.wait_until(Instant::now() + Duration::from_secs(5));
                (false, None)
            }
            // Stopped early (a signal, --fail-fast), or the deadline passed.
            WaitOutcome::TimedOut => (
                false,
                (Instant::now() >= deadline).then_some(ShotMoment::Deadline),
            ),
        }
    };
    if let Some(moment) = moment {
        screenshot(ctx, g, facts, moment);
    }
    reached
}

/// Stage 3: the metadata password over SSH, retried until `deadline`. Returns the
/// authenticated session. When the image shows that no login can ever work, the wait
/// ends as soon as the guest's state proves it (see [`no_login_ever`]).
fn login(
    ctx: &BootContext,
    g: &mut Guest,
    facts: &mut BootFacts,
    deadline: Instant,
) -> Option<Session> {
    if !ctx.needs(Need::Login) {
        facts.login = Login::NotTried {
            reason: "no selected check needs a login".into(),
        };
        return None;
    }
    if let Some(reason) = no_ssh_server(ctx, g, deadline) {
        facts.login = Login::NoSsh { reason };
        g.event(BootEvent::Login(facts.login.clone()));
        return None;
    }
    let (port, start, roles) = (g.ssh_port, g.start, &ctx.roles);
    let password = g.secrets.password.clone();
    // Nothing in the guest will ever set the password: one refusal proves it, and an SSH
    // server is waited for only briefly (its host key is evidence; the login is not).
    let hopeless = no_login_ever(ctx.facts);
    let deadline = match hopeless {
        Some(_) => deadline.min(Instant::now() + HOPELESS_GRACE),
        None => deadline,
    };
    let r = guest::login(
        port,
        &ctx.agent().user,
        &password,
        (start, deadline),
        hopeless.is_none(),
        &mut || {
            g.gone_why(roles)
                .or_else(|| agent_gave_up(&g.console.summary(), start.elapsed()))
        },
    );
    facts.ssh_secs = r.ssh_secs;
    facts.host_key_sha256 = r.host_key;
    facts.login = match (r.login, hopeless) {
        (Login::Refused { reason }, Some(why)) => Login::Refused {
            reason: format!("{reason}; not retried: {why}"),
        },
        (Login::NoSsh { reason }, Some(why)) => Login::NoSsh {
            reason: format!("{reason}; not waited for longer: {why}"),
        },
        (l, _) => l,
    };
    g.event(BootEvent::Login(facts.login.clone()));
    r.session
}

/// How long a login the offline facts rule out is still tried: long enough for an SSH
/// server to show its host key, not the login deadline.
const HOPELESS_GRACE: Duration = Duration::from_secs(20);

/// How long after the first-boot agent said it finished a login is still tried: the agent
/// may restart the SSH server as its last step.
const AGENT_GRACE: Duration = Duration::from_secs(20);

/// Why no login will work any more, once the guest shows it: its first-boot agent said on
/// the console that it finished (see [`crate::facts::ConsoleSummary::agent_finished`]) at
/// least [`AGENT_GRACE`] ago, and no login has worked (the caller stops at the first that
/// does).
fn agent_gave_up(console: &ConsoleSummary, since_start: Duration) -> Option<String> {
    let (at, line) = console.agent_finished.as_ref()?;
    let grace = AGENT_GRACE.as_secs_f64();
    (since_start.as_secs_f64() >= at + grace).then(|| {
        format!(
            "the first-boot agent finished at {at:.1}s (console: {line}) and no login worked {grace:.0}s later"
        )
    })
}

/// Why no login can ever work on this image, when its offline facts show it: no
/// first-boot agent will set the password (`firstboot.installed` fails).
fn no_login_ever(facts: &Facts) -> Option<String> {
    let only = Selection {
        only: vec![CheckId::FirstbootInstalled],
        ..Selection::default()
    };
    checks::evaluate(facts, &only)
        .into_iter()
        .find(|r| r.status == Status::Fail)
        .map(|r| format!("{} (see firstboot.installed)", r.evidence))
}

/// Why no SSH server will answer, once the guest proves it: at once when the image has
/// none that can run (absent, masked); when none is enabled, once the boot finished (the
/// console's login prompt) without one answering. None: an SSH server answers, or may.
fn no_ssh_server(ctx: &BootContext, g: &mut Guest, deadline: Instant) -> Option<String> {
    // What the image shows, and how long after the boot finished an SSH server may still
    // start: none when the image enables none; when the image could not be read, the
    // guest alone tells, so a server gets NO_SSH_GRACE after the login prompt.
    let (why, grace) = match ctx.offline() {
        Some(offline) => {
            if let Some(why) = &offline.no_ssh {
                return Some(format!("{why}: no SSH server can answer"));
            }
            (offline.ssh_disabled.clone()?, Duration::ZERO)
        }
        None => (
            "the image could not be read offline".to_string(),
            NO_SSH_GRACE,
        ),
    };
    let (port, roles, start) = (g.ssh_port, &ctx.roles, g.start);
    let waited = guest::connect(port, deadline, &mut || {
        g.gone_why(roles).or_else(|| {
            let prompt = g.console.summary().reached(Phase::Login)?;
            (start.elapsed().as_secs_f64() >= prompt + grace.as_secs_f64()).then(|| {
                format!(
                    "{why}, and the boot finished (login prompt at {prompt:.1}s) without one{}",
                    match grace.as_secs() {
                        0 => String::new(),
                        n => format!(" answering {n}s later"),
                    }
                )
            })
        })
    });
    waited.err().map(|e| e.reason)
}

/// How long after the login prompt an SSH server of an image that could not be read
/// offline may still start listening.
const NO_SSH_GRACE: Duration = Duration::from_secs(30);

/// Stage 4: what the logged-in session shows (cloud-init's finish until `deadline`, then
/// the probe), while the wrong password is tried on a connection of its own by the first
/// boot whose SSH server answered.
fn inspect(
    ctx: &BootContext,
    g: &mut Guest,
    facts: &mut BootFacts,
    session: Option<&Session>,
    deadline: Instant,
) -> Result<(), RunError> {
    let tries = facts.ssh_secs.is_some()
        && (ctx.needs(Need::WrongPassword) || ctx.needs(Need::EmptyPasswords))
        && ctx.roles.claim_wrong_password();
    let wrong = (tries && ctx.needs(Need::WrongPassword))
        .then(|| metadata::random_string(20))
        .transpose()
        .map_err(io("random"))?;
    let empty_for = if tries && ctx.needs(Need::EmptyPasswords) {
        login_accounts(ctx)
    } else {
        Vec::new()
    };
    let (port, user, start) = (g.ssh_port, ctx.agent().user.as_str(), g.start);
    std::thread::scope(|scope| {
        let rejected = wrong
            .as_deref()
            .map(|w| scope.spawn(move || wrong_password(port, user, w, start)));
        let empty =
            (!empty_for.is_empty()).then(|| scope.spawn(|| guest::try_each(port, &empty_for, "")));
        if let Some(session) = session
            && ctx.agent().agent == Agent::CloudInit
            && ctx.needs(Need::CloudInitFinished)
        {
            cloud_init_finished(ctx, g, facts, session, deadline);
        }
        if ctx.needs(Need::Probe) {
            probe(ctx, g, facts, session);
            facts.probe_secs = Some(g.since_start());
        }
        if let Some(Ok((rejected, secs))) = rejected.map(|h| h.join()) {
            facts.wrong_password_rejected = rejected;
            g.event(BootEvent::WrongPasswordTried { secs });
        }
        if let Some(Ok(tried)) = empty.map(|h| h.join()) {
            facts.empty_passwords = tried;
        }
    });
    Ok(())
}

/// The accounts an empty password is tried for: those of the image that have a login
/// shell, and the login user (at most [`MAX_EMPTY_TRIES`]).
fn login_accounts(ctx: &BootContext) -> Vec<String> {
    let mut users = vec![ctx.agent().user.clone()];
    match ctx.offline() {
        Some(o) => users.extend(
            o.accounts
                .iter()
                .filter(|a| a.can_log_in())
                .map(|a| a.name.clone()),
        ),
        None => users.push("root".into()),
    }
    let mut seen = std::collections::HashSet::new();
    users.retain(|u| seen.insert(u.clone()));
    users.truncate(MAX_EMPTY_TRIES);
    users
}

/// The most accounts tried with an empty password, each on its own connection at once
/// (SSH servers limit unauthenticated connections: dropbear to 5 per address).
const MAX_EMPTY_TRIES: usize = 4;

/// Not readiness (the login already works): whether cloud-init went on to finish this
/// instance's modules before `deadline`.
fn cloud_init_finished(
    ctx: &BootContext,
    g: &mut Guest,
    facts: &mut BootFacts,
    session: &Session,
    deadline: Instant,
) {
    let (start, roles) = (g.start, &ctx.roles);
    let secs = guest::wait_for_path(
        session,
        CLOUD_INIT_BOOT_FINISHED,
        start,
        deadline,
        &mut || g.gone_why(roles),
    );
    facts.cloud_init_finished_secs = secs;
    g.event(BootEvent::CloudInitFinished { secs });
}

/// A login with `wrong` as the password: whether it was rejected (None: no SSH server),
/// and when the try ended.
fn wrong_password(port: u16, user: &str, wrong: &str, start: Instant) -> (Option<bool>, f64) {
    let rejected = guest::rejects(port, user, wrong);
    (rejected, start.elapsed().as_secs_f64())
}

/// The probe's facts from inside the guest, over the logged-in session; it hashes the host
/// keys where the offline reader looks for them, and the files where the image holds
/// private keys (has each boot replaced them?).
fn probe(ctx: &BootContext, g: &Guest, facts: &mut BootFacts, session: Option<&Session>) {
    let Some(session) = session else {
        facts.probe_error = Some("no login".into());
        return;
    };
    let paths: Vec<String> = ctx
        .offline()
        .map(|o| {
            o.found(FileKind::PrivateKey)
                .iter()
                .map(|f| f.path.clone())
                .collect()
        })
        .unwrap_or_default();
    let input = guest::ProbeInput {
        host_keys: crate::offline::HOST_KEY_PATTERNS,
        hash: &paths,
    };
    match guest::probe(session, input) {
        Ok(p) => facts.probe = Some(p),
        Err(e) => facts.probe_error = Some(e),
    }
    g.event(BootEvent::Probed {
        secs: g.since_start(),
    });
}

/// Stage 5: the ACPI power button on the boot that claims the power-off; the others are
/// stopped at once by [`finish`].
fn power_off(ctx: &BootContext, g: &mut Guest, facts: &mut BootFacts) -> Shutdown {
    if !ctx.needs(Need::PowerOff) {
        return Shutdown::NotDone {
            reason: "not selected".into(),
        };
    }
    if let Err(first) = ctx.roles.claim_power_off(g.i) {
        return Shutdown::NotDone {
            reason: format!(
                "stopped at once: the power-off is judged on boot {first}, the first to finish \
                 its other checks"
            ),
        };
    }
    facts.powerdown_secs = Some(g.since_start());
    let shutdown = press_power_button(ctx, g);
    if let Shutdown::Clean { secs } = shutdown {
        g.event(BootEvent::PoweredOff { secs });
    }
    shutdown
}

/// `system_powerdown` over QMP, then wait for QEMU to exit until the shutdown deadline.
fn press_power_button(ctx: &BootContext, g: &mut Guest) -> Shutdown {
    if g.vm.try_exited().is_some() {
        return Shutdown::NotDone {
            reason: "QEMU had already exited".into(),
        };
    }
    let sent = Instant::now();
    let deadline = ctx.deadline(ctx.timeouts.shutdown);
    let pressed = g.qmp(deadline).and_then(|q| q.execute("system_powerdown"));
    match pressed {
        Err(e) => Shutdown::NotDone {
            reason: e.to_string(),
        },
        Ok(_) => match g.vm.wait_until(deadline) {
            Some(_) => Shutdown::Clean {
                secs: sent.elapsed().as_secs_f64(),
            },
            None => Shutdown::TimedOut {
                deadline_secs: deadline.saturating_duration_since(sent).as_secs_f64(),
            },
        },
    }
}

/// Stage 6: QEMU stopped; the console's summary and this boot's metadata requests.
fn finish(ctx: &BootContext, mut g: Guest, mut facts: BootFacts) -> BootFacts {
    g.vm.kill();
    facts.end_secs = Some(g.since_start());
    let Guest { vm, console, .. } = g;
    drop(vm);
    let requests = ctx.server.requests();
    let mine: Vec<_> = requests
        .iter()
        .filter(|r| r.boot == Some(facts.index))
        .collect();
    facts.metadata_requests = mine.len();
    facts.metadata_refused = ctx.server.refused(facts.index);
    facts.password_fetched = mine
        .iter()
        .any(|r| metadata::delivers_password(&r.path) && r.status == Some(200));
    facts.console = console.finish();
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_once_per_run_role_goes_to_the_first_boot_that_claims_it() {
        let roles = Roles::default();
        assert!(roles.claim_wrong_password());
        assert!(!roles.claim_wrong_password());
        assert_eq!(roles.claim_power_off(1), Ok(()));
        assert_eq!(roles.claim_power_off(0), Err(1));
        assert_eq!(roles.claim_power_off(1), Err(1));
        // --fail-fast: the first failure's reason stops every boot.
        assert_eq!(roles.stopped(), None);
        let failed = |check: &str, boot| StopReason::FailFast {
            check: check.into(),
            boot,
        };
        roles.stop(failed("boot.userspace", 1));
        roles.stop(failed("console.clean", 0));
        assert_eq!(
            roles.stopped().map(|r| r.to_string()).as_deref(),
            Some("failing fast: stopped after boot.userspace failed on boot 1")
        );
    }
}
