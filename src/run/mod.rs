//! The runner: a [`plan::RunPlan`] in, [`Event`]s out, a [`Report`] at the end.
//!
//! Before anything else, [`check`] looks at every input and output: the images are
//! recognised ([`crate::disk::image::sniff`]), the reports and artifacts directories must
//! be writable and clobber nothing ([`outputs`]), the boots must fit the host's memory.
//! Then [`start_accel`] decides the accelerator, on a thread of its own when the probe has
//! to run, and for each image [`run_image`] does: offline facts ([`crate::offline`],
//! while the probe runs) -> first-boot agent -> metadata server -> N boots in parallel
//! ([`boot`]: each with its own overlay, password, SSH port, QMP socket and console log)
//! -> checks -> artifacts. Every wait is bounded by its stage's deadline and by the
//! overall deadline, and notices a dead QEMU; a QEMU that could not start the guest at all
//! is the host's fault, not the image's ([`RunError::Host`]). QEMU, sockets and overlays
//! live in a private temp dir ([`crate::scratch::Dir`]) and process groups that are gone
//! when this returns, also on error, panic, SIGINT or (for QEMU) SIGKILL.

mod boot;
pub mod outputs;
pub mod plan;
pub mod shell;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::checks::{self, Selection};
use crate::cloudinit::{self, NoDefaultUser};
use crate::disk::image::{self, ImageError, ImageInfo};
use crate::facts::artifacts;
use crate::facts::{AccelDecision, BootSupport, Facts, FirmwareFacts, Offline};
use crate::helper::HelperError;
use crate::metadata::MetadataServer;
use crate::report::{self, Event, Report, Verdict};
use crate::vm::VmError;
use crate::vm::accel::{AccelChoice, Pending, ProbeSetup};
use crate::vm::firmware::{self, FirmwareChoice, FirmwareError, Ovmf};
use crate::vm::process::interrupted;
use outputs::{Output, OutputError};
use plan::RunPlan;

/// Why a run could not judge the image.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The image is unusable.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// QEMU failed.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// A helper program (`qemu-img`) failed.
    #[error(transparent)]
    Helper(#[from] HelperError),
    /// Local I/O failed.
    #[error("{0}")]
    Io(String),
    /// A signal stopped the run.
    #[error("interrupted")]
    Interrupted,
    /// The login user of a cloud-init image cannot be told.
    #[error(transparent)]
    Agent(#[from] NoDefaultUser),
    /// A report or artifacts directory cannot be written as asked.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The boots, each with its guest RAM and QEMU's own, need more memory than the host
    /// has available (why).
    #[error("the boots do not fit: {0}")]
    Memory(String),
    /// The host cannot run the boots: QEMU could not start the guest (the reason QEMU
    /// gave).
    #[error("{0}")]
    Host(String),
    /// No firmware plan fits the request.
    #[error(transparent)]
    Firmware(#[from] FirmwareError),
    /// An overlay was to be kept of an ISO, which boots from a read-only CD with none.
    #[error("an ISO boots from a read-only CD and has no overlay to keep")]
    NoOverlay,
}

fn io(what: &str) -> impl Fn(std::io::Error) -> RunError + '_ {
    move |e| RunError::Io(format!("{what}: {e}"))
}

/// Where events go; shared with console reader threads.
pub type Emit = Arc<dyn Fn(Event) + Send + Sync>;

/// The image artifacts go under when one fails and no artifacts directory was named.
pub const DEFAULT_ARTIFACTS: &str = "imgtest-artifacts";

/// Checks every input and output of `plan` before anything runs or boots, and returns
/// what each image is: the outputs ([`outputs::check`]), the direct-boot kernel and
/// initrd, each image, then its boots against the host's memory (at the RAM its kind
/// gets, and two boots when both firmwares are asked for; [`plan_boots`] checks again
/// once the firmwares are settled).
pub fn check(plan: &RunPlan) -> Result<Vec<ImageInfo>, RunError> {
    let dirs = artifacts_dirs(plan)?;
    let mut outs: Vec<Output> = dirs
        .iter()
        .map(|d| Output::Dir(d, "the artifacts directory"))
        .collect();
    outs.extend(
        outputs::Reports {
            json: plan.json.as_deref(),
            junit: plan.junit.as_deref(),
            html: plan.html.as_deref(),
        }
        .outputs(),
    );
    outputs::check(&outs, &inputs(plan))?;
    if let Some(k) = &plan.direct_kernel {
        for f in std::iter::once(&k.kernel).chain(&k.initrd) {
            std::fs::File::open(f).map_err(io(&f.display().to_string()))?;
        }
    }
    let infos = plan
        .images
        .iter()
        .map(|i| image::sniff(i).map_err(RunError::from))
        .collect::<Result<Vec<_>, _>>()?;
    if plan.selection.needs_boot() {
        let firmwares = if plan.firmware == FirmwareChoice::Both {
            2
        } else {
            1
        };
        for info in &infos {
            fits_memory(plan.boots.max(firmwares), plan.memory_for(info.kind))?;
        }
    }
    Ok(infos)
}

/// Whether `boots` VMs of `memory_mib` each fit in the memory the host has available.
fn fits_memory(boots: usize, memory_mib: u32) -> Result<(), RunError> {
    let available = crate::vm::available_mib().unwrap_or(u64::MAX);
    crate::vm::fits_memory(boots, memory_mib, available).map_err(RunError::Memory)
}

/// The artifacts directories `plan` may replace: the one it names; or, without one, the
/// directory of each image under [`DEFAULT_ARTIFACTS`] (written only if the image fails),
/// or that directory itself while it does not exist. Two images whose artifacts would
/// share a directory are refused.
fn artifacts_dirs(plan: &RunPlan) -> Result<Vec<PathBuf>, RunError> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for image in &plan.images {
        let dir = artifacts_dir(plan, image, Verdict::Fail).unwrap_or_default();
        if dirs.contains(&dir) {
            return Err(RunError::Output(OutputError::Unusable {
                what: "the artifacts directory",
                path: dir,
                why: "two images have this name".into(),
            }));
        }
        dirs.push(dir);
    }
    Ok(match &plan.artifacts {
        Some(a) => vec![a.clone()],
        None if !Path::new(DEFAULT_ARTIFACTS).exists() => vec![PathBuf::from(DEFAULT_ARTIFACTS)],
        None => dirs,
    })
}

/// Every file `plan` reads: the images, the config file, the direct-boot kernel and initrd.
fn inputs(plan: &RunPlan) -> Vec<&Path> {
    let mut v: Vec<&Path> = plan.images.iter().map(PathBuf::as_path).collect();
    v.extend(plan.disks.iter().map(PathBuf::as_path));
    v.extend(plan.config.as_deref());
    if let Some(k) = &plan.direct_kernel {
        v.push(&k.kernel);
        v.extend(k.initrd.as_deref());
    }
    v
}

/// Makes a fresh artifacts directory for a run of several images (each writes its own
/// subdirectory into it): the previous one is replaced as a whole.
pub fn prepare_artifacts(plan: &RunPlan) -> Result<(), RunError> {
    if let Some(dir) = plan.artifacts.as_deref().filter(|_| plan.images.len() > 1) {
        outputs::replace_dir(dir, "the artifacts directory")?;
    }
    Ok(())
}

/// Starts deciding the accelerator for `plan`: KVM or TCG as asked, or the probe's answer
/// (remembered in `cache`, else probed on a thread of its own) for `auto`. A plan that
/// boots nothing uses TCG without probing.
pub fn start_accel(plan: &RunPlan, cache: Option<PathBuf>) -> Pending {
    let choice = if plan.selection.needs_boot() {
        plan.accel
    } else {
        AccelChoice::Tcg
    };
    let setup = ProbeSetup {
        program: plan.relay_program.clone(),
        cache,
    };
    Pending::start(choice, setup)
}

/// What is known and running before an image's boots: its offline facts and agent, the
/// accelerator and timeouts, the checks and firmwares, the further disks, the metadata
/// service and the run's temp dir.
///
/// Fields drop in order: the server (its sockets are in the temp dir) before the temp dir.
struct Prepared {
    server: MetadataServer,
    tmp: crate::scratch::Dir,
    facts: Facts,
    offline_secs: f64,
    accel: AccelDecision,
    timeouts: crate::report::Timeouts,
    selection: Selection,
    disks: Vec<ImageInfo>,
}

/// Reads `image` offline, chooses the agent, waits for the accelerator, starts the
/// metadata service and settles what the boots need ([`plan_boots`]).
fn prepare(
    plan: &RunPlan,
    image: &Path,
    info: &ImageInfo,
    accel: &Pending,
    (started, emit): (Instant, &Emit),
) -> Result<Prepared, RunError> {
    emit(Event::Image {
        image: image.display().to_string(),
        format: info.kind.describe(),
    });
    let tmp = crate::scratch::Dir::new("imgtest-").map_err(io("temp dir"))?;
    let (offline, support) = crate::offline::read(info, &plan.offline, tmp.path())?;
    emit(offline_event(&offline));
    let offline_secs = started.elapsed().as_secs_f64();
    let agent = cloudinit::choose(plan.firstboot, plan.user.as_deref(), &offline)?;
    emit(Event::Agent(agent.clone()));
    let (accel, first) = accel.wait();
    if first {
        emit(Event::Accel(accel.clone()));
    }
    let timeouts = plan.timeouts.for_accel(accel.accel, plan.tcg_scale);
    let server = MetadataServer::start(plan.fault, tmp.path(), plan.metadata_connections)
        .map_err(io("metadata server"))?;
    let (selection, firmware, disks) = plan_boots(plan, info, &support, emit)?;
    let facts = Facts {
        offline,
        boots: Vec::new(),
        fault: plan.fault,
        agent: Some(agent),
        no_boot: None,
        firmware,
    };
    Ok(Prepared {
        server,
        tmp,
        facts,
        offline_secs,
        accel,
        timeouts,
        selection,
        disks,
    })
}

/// The boots' shared context over what [`prepare`] settled, with the firmware plan.
fn context<'a>(
    plan: &'a RunPlan,
    info: &'a ImageInfo,
    p: &'a Prepared,
    (started, firmware, ovmf): (Instant, &'a FirmwareFacts, Option<&'a Ovmf>),
) -> boot::BootContext<'a> {
    boot::BootContext {
        plan,
        selection: &p.selection,
        accel: &p.accel,
        facts: &p.facts,
        timeouts: &p.timeouts,
        overall: started + p.timeouts.overall,
        info,
        disks: &p.disks,
        firmware,
        ovmf,
        server: &p.server,
        tmp: p.tmp.path(),
        roles: boot::Roles::default(),
    }
}

/// Tests one image, recognised by [`check`] (its `path` as given by `image`), under the
/// accelerator `accel` decides.
pub fn run_image(
    plan: &RunPlan,
    image: &Path,
    info: &ImageInfo,
    accel: &Pending,
    emit: Emit,
) -> Result<Report, RunError> {
    let started = Instant::now();
    let mut p = prepare(plan, image, info, accel, (started, &emit))?;
    let offline_failure = plan
        .fail_fast
        .then(|| first_failure(&p.facts, &p.selection))
        .flatten();
    if let Some(failed) = offline_failure {
        p.facts.no_boot = Some(format!(
            "failing fast: stopped before booting, {failed} failed"
        ));
    } else if let Some(firmware) = p.facts.firmware.clone() {
        let ovmf = boot::ovmf_for(&firmware)?;
        let ctx = context(plan, info, &p, (started, &firmware, ovmf.as_ref()));
        let boots = boot::run_boots(&ctx, &emit)?;
        p.facts.boots = boots;
    }
    if interrupted() {
        return Err(RunError::Interrupted);
    }
    let results = checks::evaluate(&p.facts, &p.selection);
    for r in &results {
        emit(Event::Check(r.clone()));
    }
    let unjudged = checks::unjudged(&results, &p.selection);
    let mut report = Report {
        image: image.display().to_string(),
        format: info.kind.describe(),
        accel: p.accel.clone(),
        timeouts: p.timeouts,
        verdict: report::verdict(&results, &unjudged, plan.allow_unjudged),
        checks: results,
        facts: p.facts,
        duration_secs: started.elapsed().as_secs_f64(),
        offline_secs: p.offline_secs,
        artifacts: None,
        unjudged,
        files: run_files(p.tmp.path())?,
    };
    if let Some(dir) = artifacts_dir(plan, image, report.verdict) {
        report.artifacts = Some(dir.display().to_string());
        save_artifacts(&dir, &p.server, &report)?;
    }
    Ok(report)
}

/// The files the boots left in the run's temp dir: console logs, QEMU's stderr and
/// screenshots (not the overlays and sockets).
fn run_files(tmp: &Path) -> Result<report::Files, RunError> {
    let mut files = report::Files::new();
    for e in std::fs::read_dir(tmp).map_err(io("temp dir"))?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if artifacts::kept(&name) {
            files.insert(name, std::fs::read(e.path()).map_err(io("reading a log"))?);
        }
    }
    Ok(files)
}

/// Boots one overlay of `image` as [`run_image`] would (its first firmware) and holds it
/// open for `person`, who comes in through `door`; then stops it. The overlay is deleted
/// unless `keep_overlay` names where to keep it. The boot's facts say how far it got.
pub fn shell(
    plan: &RunPlan,
    (image, info): (&Path, &ImageInfo),
    accel: &Pending,
    emit: Emit,
    (door, person): (shell::Door, &shell::Person),
    keep_overlay: Option<&Path>,
) -> Result<crate::facts::BootFacts, RunError> {
    if keep_overlay.is_some() && matches!(info.kind, image::ImageKind::Iso { .. }) {
        return Err(RunError::NoOverlay);
    }
    let started = Instant::now();
    let p = prepare(plan, image, info, accel, (started, &emit))?;
    let firmware = p
        .facts
        .firmware
        .clone()
        .ok_or_else(|| RunError::Io("nothing to boot: no check needs a boot".into()))?;
    let ovmf = boot::ovmf_for(&firmware)?;
    let ctx = context(plan, info, &p, (started, &firmware, ovmf.as_ref()));
    let facts = boot::hold(&ctx, &emit, door, person)?;
    if let Some(keep) = keep_overlay {
        std::fs::copy(boot::image_overlay(p.tmp.path(), 0), keep)
            .map_err(io(&format!("keeping the overlay as {}", keep.display())))?;
    }
    Ok(facts)
}

/// Where `image`'s artifacts go: the plan's directory (a subdirectory per image when the
/// run tests several), or `./imgtest-artifacts/IMAGE/` when the image failed.
fn artifacts_dir(plan: &RunPlan, image: &Path, verdict: Verdict) -> Option<PathBuf> {
    let name = image
        .file_name()
        .map_or_else(|| "image".into(), |n| n.to_string_lossy().into_owned());
    match &plan.artifacts {
        Some(dir) if plan.images.len() > 1 => Some(dir.join(name)),
        Some(dir) => Some(dir.clone()),
        None => (verdict == Verdict::Fail).then(|| PathBuf::from(DEFAULT_ARTIFACTS).join(name)),
    }
}

/// Writes the run's files (console logs, QEMU's stderr, screenshots), the metadata
/// request log and the report (JSON and HTML) into `dir`, which is replaced as a whole.
fn save_artifacts(dir: &Path, server: &MetadataServer, report: &Report) -> Result<(), RunError> {
    outputs::replace_dir(dir, "the artifacts directory")?;
    for (name, bytes) in &report.files {
        std::fs::write(dir.join(name), bytes).map_err(io("keeping a log"))?;
    }
    let requests: String = server
        .requests()
        .iter()
        .map(|r| serde_json::to_string(r).expect("serialises") + "\n")
        .collect();
    std::fs::write(dir.join(artifacts::METADATA_REQUESTS), requests).map_err(io("request log"))?;
    std::fs::write(
        dir.join(artifacts::REPORT_JSON),
        report::to_json(std::slice::from_ref(report)),
    )
    .map_err(io("report"))?;
    std::fs::write(
        dir.join(artifacts::REPORT_HTML),
        report::html::to_html(std::slice::from_ref(report)),
    )
    .map_err(io("report"))?;
    Ok(())
}

/// The live event for what the offline phase found.
fn offline_event(offline: &Offline) -> Event {
    match offline {
        Offline::Read(f) => Event::OfflineRead {
            source: f.source.clone(),
        },
        Offline::Unreadable { reason } => Event::OfflineUnreadable {
            reason: reason.clone(),
        },
    }
}

/// What the image's boots need settled first: the checks judged (the plan's, under the
/// image's expectation), the firmwares ([`firmware::decide`], when anything boots) and the
/// further disks, recognised.
fn plan_boots(
    plan: &RunPlan,
    info: &ImageInfo,
    support: &BootSupport,
    emit: &Emit,
) -> Result<(Selection, Option<FirmwareFacts>, Vec<ImageInfo>), RunError> {
    let selection = Selection {
        expect: plan.expect_for(info.kind),
        ..plan.selection.clone()
    };
    let firmware = if selection.needs_boot() {
        let f = firmware::decide(
            plan.firmware,
            support,
            plan.direct_kernel.is_some(),
            plan.secure_boot,
        )?;
        fits_memory(boot_count(plan, &f), plan.memory_for(info.kind))?;
        emit(Event::Firmware(f.clone()));
        Some(f)
    } else {
        None
    };
    let disks = plan
        .disks
        .iter()
        .map(|d| image::sniff_disk(d))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((selection, firmware, disks))
}

/// The first error-severity check that fails on `facts` so far, for `--fail-fast`.
fn first_failure(facts: &Facts, selection: &Selection) -> Option<checks::CheckId> {
    checks::evaluate(facts, selection)
        .into_iter()
        .find(|r| r.status == checks::Status::Fail && r.severity == checks::Severity::Error)
        .map(|r| r.id)
}

/// How many boots an image gets: the plan's, and at least one per firmware.
fn boot_count(plan: &RunPlan, firmware: &FirmwareFacts) -> usize {
    plan.boots.max(firmware.firmwares.len())
}
