//! The runner: a [`plan::RunPlan`] in, [`Event`]s out, a [`Report`] at the end.
//!
//! For one image: sniff -> offline facts -> metadata server -> N boots in parallel (each
//! with its own overlay, password, SSH port, QMP socket and console log) -> checks ->
//! artifacts. Every wait is bounded by its phase deadline and by the overall deadline, and
//! notices a dead QEMU. QEMU, sockets and overlays live in a temp dir and process groups
//! that are gone when this returns, also on error, panic or SIGINT.

pub mod plan;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use crate::checks::facts::{Agent, AgentFacts, BootFacts, Facts, Login, Offline, Shutdown};
use crate::checks::{self, CheckResult};
use crate::console::{Console, ConsoleEvent, Phase, WaitOutcome};
use crate::disk::image::{self, ImageError, ImageInfo, ImageKind};
use crate::metadata::{BootSecrets, MetadataServer};
use crate::report::{self, Report, Verdict};
use crate::vm::accel::AccelDecision;
use crate::vm::process::{VmProcess, interrupted};
use crate::vm::qmp::Qmp;
use crate::vm::{self, VmError, VmSpec};
use plan::{RunPlan, Timeouts};

/// Something the runner wants reported as it happens.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An image was recognised.
    Image {
        /// The path as given.
        image: String,
        /// Its format.
        format: String,
    },
    /// The accelerator was chosen.
    Accel(AccelDecision),
    /// Where offline facts came from (or why not).
    Offline(String),
    /// A boot made progress.
    Boot {
        /// Boot number.
        boot: usize,
        /// What happened.
        step: String,
    },
    /// A check finished.
    Check(CheckResult),
}

/// Why a run could not judge the image.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The image is unusable.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// QEMU or qemu-img failed.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// Local I/O failed.
    #[error("{0}")]
    Io(String),
    /// A signal stopped the run.
    #[error("interrupted")]
    Interrupted,
    /// The first-boot agent or login user cannot be determined.
    #[error("{0}")]
    Agent(String),
}

fn io(what: &str) -> impl Fn(std::io::Error) -> RunError + '_ {
    move |e| RunError::Io(format!("{what}: {e}"))
}

/// Size of the blank disk an ISO boots with.
const ISO_BLANK_DISK: u64 = 8 << 30;

/// Where events go; shared with console reader threads.
pub type Emit = std::sync::Arc<dyn Fn(Event) + Send + Sync>;

/// Tests one image.
pub fn run_image(
    plan: &RunPlan,
    image: &Path,
    accel: &AccelDecision,
    emit: Emit,
) -> Result<Report, RunError> {
    let started = Instant::now();
    let info = image::sniff(image)?;
    emit(Event::Image {
        image: image.display().to_string(),
        format: info.kind.describe(),
    });
    let tmp = tempfile::Builder::new()
        .prefix("imgtest-")
        .tempdir()
        .map_err(io("temp dir"))?;
    let offline = offline_facts(plan, &info, tmp.path())?;
    emit(Event::Offline(match &offline {
        Offline::Read(f) => f.source.clone(),
        Offline::Unreadable { reason } => format!("not readable ({reason})"),
    }));
    let agent = crate::cloudinit::choose(plan.firstboot, plan.user.as_deref(), &offline)
        .map_err(RunError::Agent)?;
    emit(Event::Offline(format!(
        "first boot by {} ({})",
        agent.agent.name(),
        agent.reason
    )));
    let timeouts = plan.timeouts.for_accel(accel.accel, plan.tcg_scale);
    let overall = started + timeouts.overall;
    let server = MetadataServer::start(plan.fault).map_err(io("metadata server"))?;
    let boots: Vec<BootFacts> = if plan.selection.needs_boot() {
        let shared = Shared {
            plan,
            accel,
            agent: &agent,
            t: &timeouts,
            overall,
            info: &info,
            server: &server,
            tmp: tmp.path(),
            wrong_password_claimed: AtomicBool::new(false),
            powered_off_by: AtomicUsize::new(usize::MAX),
        };
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..plan.boots)
                .map(|i| {
                    let (shared, emit) = (&shared, emit.clone());
                    s.spawn(move || boot_one(shared, i, emit))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect::<Result<Vec<_>, _>>()
        })?
    } else {
        Vec::new()
    };
    if interrupted() {
        return Err(RunError::Interrupted);
    }
    let facts = Facts {
        offline,
        boots,
        fault: plan.fault,
        agent: Some(agent),
    };
    let results = checks::evaluate(&facts, &plan.selection);
    for r in &results {
        emit(Event::Check(r.clone()));
    }
    let mut report = Report {
        image: image.display().to_string(),
        format: info.kind.describe(),
        accel: accel.clone(),
        timeouts,
        verdict: report::verdict(&results),
        checks: results,
        facts,
        duration_secs: started.elapsed().as_secs_f64(),
        artifacts: None,
    };
    let keep = plan.artifacts.clone().or_else(|| {
        (report.verdict == Verdict::Fail).then(|| {
            let name = image
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "image".into());
            PathBuf::from("imgtest-artifacts").join(name)
        })
    });
    if let Some(dir) = keep {
        let dir = if plan.images.len() > 1 {
            dir.join(
                image
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            )
        } else {
            dir
        };
        report.artifacts = Some(dir.display().to_string());
        save_artifacts(&dir, tmp.path(), &server, &report)?;
    }
    Ok(report)
}

fn save_artifacts(
    dir: &Path,
    tmp: &Path,
    server: &MetadataServer,
    report: &Report,
) -> Result<(), RunError> {
    std::fs::create_dir_all(dir).map_err(io("artifacts dir"))?;
    for e in std::fs::read_dir(tmp).map_err(io("temp dir"))?.flatten() {
        let name = e.file_name();
        if name.to_string_lossy().ends_with(".log") {
            std::fs::copy(e.path(), dir.join(&name)).map_err(io("copying a log"))?;
        }
    }
    let requests: String = server
        .requests()
        .iter()
        .map(|r| serde_json::to_string(r).expect("serialises") + "\n")
        .collect();
    std::fs::write(dir.join("metadata-requests.jsonl"), requests).map_err(io("request log"))?;
    std::fs::write(
        dir.join("report.json"),
        report::to_json(std::slice::from_ref(report)),
    )
    .map_err(io("report"))?;
    Ok(())
}

fn offline_facts(plan: &RunPlan, info: &ImageInfo, tmp: &Path) -> Result<Offline, RunError> {
    let raw = match info.kind {
        ImageKind::Iso { .. } => {
            return Ok(Offline::Unreadable {
                reason: "ISO 9660: the installed system exists only after booting".into(),
            });
        }
        ImageKind::Raw => info.path.clone(),
        ImageKind::Qcow2 | ImageKind::Vmdk => {
            // A sparse raw copy in the temp dir: qemu-img reads the image, never writes it.
            let raw = tmp.join("offline.raw");
            let mut c = std::process::Command::new("qemu-img");
            c.args(["convert", "-f", info.kind.qemu_format(), "-O", "raw"])
                .arg(&info.path)
                .arg(&raw);
            vm::run_helper(c)?;
            raw
        }
    };
    let candidates = image::root_candidates(&raw);
    let mut tried = Vec::new();
    for (what, offset) in &candidates {
        match crate::fs::FsView::open(&raw, *offset) {
            Ok(view) if view.exists("/etc") => {
                let source = format!("ext2/3/4 root filesystem on {what}");
                let facts = crate::fs::offline_facts(&view, &source, &plan.test_scripts);
                let _ = std::fs::remove_file(tmp.join("offline.raw"));
                return Ok(Offline::Read(facts));
            }
            Ok(_) => tried.push(format!("{what}: no /etc")),
            Err(e) => tried.push(format!("{what}: {e}")),
        }
    }
    let _ = std::fs::remove_file(tmp.join("offline.raw"));
    Ok(Offline::Unreadable {
        reason: if tried.is_empty() {
            "no ext2/3/4 filesystem found".into()
        } else {
            format!("no root filesystem ({})", tried.join("; "))
        },
    })
}

fn free_port() -> Result<u16, RunError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("port"))?;
    Ok(l.local_addr().map_err(io("port"))?.port())
}

/// What the boots of one image share.
struct Shared<'a> {
    plan: &'a RunPlan,
    accel: &'a AccelDecision,
    agent: &'a AgentFacts,
    t: &'a Timeouts,
    overall: Instant,
    info: &'a ImageInfo,
    server: &'a MetadataServer,
    tmp: &'a Path,
    /// Set by the first boot whose SSH server answers: that boot alone tries a wrong
    /// password (the image's authentication is the same on every boot, and the guest's
    /// failure delay would otherwise hold up every boot's verdict).
    wrong_password_claimed: AtomicBool,
    /// The boot that powers its guest off with the ACPI button (usize::MAX: none yet):
    /// the first to finish its other checks. The others are stopped at once, so the
    /// guest's shutdown time is spent while later boots still work, not after them.
    powered_off_by: AtomicUsize,
}

fn boot_one(shared: &Shared, i: usize, emit: Emit) -> Result<BootFacts, RunError> {
    let Shared {
        plan,
        accel,
        agent,
        t,
        overall,
        info,
        server,
        tmp,
        ..
    } = *shared;
    let step = |s: String| emit(Event::Boot { boot: i, step: s });
    let console_emit = emit.clone();
    let secrets = BootSecrets::generate(i).map_err(io("random"))?;
    server.register(i, secrets.clone());
    let disk = tmp.join(format!("boot{i}.qcow2"));
    let host_cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let mut spec = VmSpec::new(
        accel.accel,
        plan.memory_mib,
        plan.vcpus(accel.accel, host_cpus),
    );
    match info.kind {
        ImageKind::Iso { .. } => {
            vm::run_helper(vm::blank_disk_command(&disk, ISO_BLANK_DISK))?;
            spec.cdrom = Some(info.path.clone());
        }
        k => vm::create_overlay(&info.path, k.qemu_format(), &disk)?,
    }
    spec.disk = Some(disk);
    spec.disk_bus = plan.disk_bus;
    spec.direct_kernel = plan.direct_kernel.clone();
    let port = free_port()?;
    spec.ssh_port = Some(port);
    spec.metadata_cmd = Some(server.relay_command(&plan.relay_program, &secrets.token));
    if agent.agent == Agent::CloudInit {
        spec.smbios_serial = Some(crate::cloudinit::NOCLOUD_SERIAL.into());
    }
    let qmp_path = tmp.join(format!("boot{i}.qmp"));
    spec.qmp_socket = Some(qmp_path.clone());

    let start = Instant::now();
    let (mut vm, serial) =
        VmProcess::spawn(&plan.qemu, &spec, &tmp.join(format!("boot{i}-qemu.log")))?;
    step(format!(
        "QEMU started (pid {}, ssh 127.0.0.1:{port})",
        vm.pid()
    ));
    let console = Console::attach(
        serial,
        tmp.join(format!("boot{i}-console.log")),
        vec![secrets.password.clone(), secrets.token.clone()],
        start,
        move |e| match e {
            ConsoleEvent::Phase(p, d) => console_emit(Event::Boot {
                boot: i,
                step: format!("{} at {:.1}s", p.name(), d.as_secs_f64()),
            }),
            ConsoleEvent::Failure(f) => console_emit(Event::Boot {
                boot: i,
                step: format!("console: {:?}: {}", f.kind, f.line),
            }),
        },
    )
    .map_err(io("console log"))?;
    let mut facts = BootFacts::new(i);
    let boot_deadline = (start + t.boot).min(overall);
    let reached = match console.wait_for(Phase::Userspace, boot_deadline) {
        WaitOutcome::Reached(_) => true,
        WaitOutcome::Failed(_) => {
            // Fail fast, but give the console a moment to print the rest of the panic.
            vm.wait_until(Instant::now() + std::time::Duration::from_secs(1));
            false
        }
        WaitOutcome::Closed => false,
        // No userspace marker on the console: an SSH server answering also proves userspace.
        WaitOutcome::TimedOut => !matches!(
            crate::guest::attempt(
                port,
                &agent.user,
                "\u{1}",
                Instant::now() + std::time::Duration::from_secs(3),
                &mut || true,
            ),
            crate::guest::Attempt::NoSsh(_)
        ),
    };
    if let Some(status) = vm.try_exited() {
        facts.qemu_exit = Some(status.to_string());
    }
    if reached && !interrupted() {
        let login_deadline = (Instant::now() + t.login).min(overall);
        let mut alive =
            || vm.try_exited().is_none() && console.summary().failure.is_none() && !interrupted();
        let r = crate::guest::login(
            port,
            &agent.user,
            &secrets.password,
            start,
            login_deadline,
            &mut alive,
        );
        facts.ssh_secs = r.ssh_secs;
        facts.host_key_sha256 = r.host_key;
        facts.login = r.login;
        match &facts.login {
            Login::Worked { after_secs } => {
                step(format!("password login worked at {after_secs:.1}s"))
            }
            Login::Refused { reason } => {
                step(format!("password refused until the deadline: {reason}"))
            }
            Login::NoSsh { reason } => step(format!("no SSH server: {reason}")),
            Login::NotTried { .. } => {}
        }
        let claim =
            facts.ssh_secs.is_some() && !shared.wrong_password_claimed.swap(true, Ordering::SeqCst);
        let wrong = claim
            .then(|| crate::metadata::random_string(20))
            .transpose()
            .map_err(io("random"))?;
        std::thread::scope(|scope| {
            // The wrong-password login runs on its own connection while the probe runs.
            let rejected = wrong.as_deref().map(|wrong| {
                scope.spawn(move || {
                    let rejected = crate::guest::rejects(port, &agent.user, wrong);
                    (rejected, start.elapsed().as_secs_f64())
                })
            });
            if let (Some(session), Agent::CloudInit, true) = (
                &r.session,
                agent.agent,
                plan.selection.includes("firstboot.disabled"),
            ) {
                // Not readiness (the login already works): whether cloud-init went on to
                // finish this instance's modules, for firstboot.disabled.
                facts.cloud_init_finished_secs = crate::guest::wait_for_path(
                    session,
                    crate::cloudinit::BOOT_FINISHED,
                    start,
                    login_deadline,
                    &mut alive,
                );
                match facts.cloud_init_finished_secs {
                    Some(t) => step(format!("cloud-init finished at {t:.1}s")),
                    None => step("cloud-init did not finish before the deadline".into()),
                }
            }
            match &r.session {
                Some(session) => {
                    match crate::guest::probe(session) {
                        Ok(p) => facts.probe = Some(p),
                        Err(e) => facts.probe_error = Some(e),
                    }
                    step(format!(
                        "probe done at {:.1}s",
                        start.elapsed().as_secs_f64()
                    ));
                }
                None => facts.probe_error = Some("no login".into()),
            }
            if let Some(Ok((rejected, at))) = rejected.map(|h| h.join()) {
                facts.wrong_password_rejected = rejected;
                step(format!("wrong-password login tried at {at:.1}s"));
            }
        });
        drop(r.session);
        facts.shutdown = if !plan.selection.includes("shutdown.clean") {
            Shutdown::NotDone {
                reason: "not selected".into(),
            }
        } else {
            match shared.powered_off_by.compare_exchange(
                usize::MAX,
                i,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => power_off(&mut vm, &qmp_path, t, overall),
                Err(first) => Shutdown::NotDone {
                    reason: format!(
                        "stopped at once: the power-off is judged on boot {first}, the first \
                         to finish its other checks"
                    ),
                },
            }
        };
        if let Shutdown::Clean { secs } = facts.shutdown {
            step(format!("powered off {secs:.1}s after system_powerdown"));
        }
    } else {
        facts.login = Login::NotTried {
            reason: "the guest did not reach userspace".into(),
        };
    }
    vm.kill();
    drop(vm);
    let requests = server.requests();
    let mine: Vec<_> = requests.iter().filter(|r| r.boot == Some(i)).collect();
    facts.metadata_requests = mine.len();
    facts.password_fetched = mine
        .iter()
        .any(|r| crate::metadata::delivers_password(&r.path) && r.status == Some(200));
    facts.console = console.finish();
    Ok(facts)
}

fn power_off(vm: &mut VmProcess, qmp_path: &Path, t: &Timeouts, overall: Instant) -> Shutdown {
    if vm.try_exited().is_some() {
        return Shutdown::NotDone {
            reason: "QEMU had already exited".into(),
        };
    }
    let sent = Instant::now();
    let deadline = (sent + t.shutdown).min(overall);
    let result =
        Qmp::connect(qmp_path, deadline).and_then(|mut q| q.execute("system_powerdown").map(|_| q));
    match result {
        Err(e) => Shutdown::NotDone {
            reason: e.to_string(),
        },
        Ok(_q) => match vm.wait_until(deadline) {
            Some(_) => Shutdown::Clean {
                secs: sent.elapsed().as_secs_f64(),
            },
            None => Shutdown::TimedOut {
                deadline_secs: deadline.saturating_duration_since(sent).as_secs_f64(),
            },
        },
    }
}
