//! The runner: a [`plan::RunPlan`] in, [`Event`]s out, a [`Report`] at the end.
//!
//! For one image: sniff -> offline facts ([`crate::offline`]) -> first-boot agent ->
//! metadata server -> N boots in parallel ([`boot`]: each with its own overlay, password,
//! SSH port, QMP socket and console log) -> checks -> artifacts. Every wait is bounded by
//! its stage's deadline and by the overall deadline, and notices a dead QEMU. QEMU,
//! sockets and overlays live in a temp dir and process groups that are gone when this
//! returns, also on error, panic or SIGINT.

mod boot;
pub mod plan;
pub mod shell;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::checks::{self, Need};
use crate::cloudinit::{self, NoDefaultUser};
use crate::disk::image::{self, ImageError, ImageInfo};
use crate::facts::{AccelDecision, Facts, Offline};
use crate::metadata::MetadataServer;
use crate::report::{self, Event, Report, Verdict};
use crate::tool::ToolError;
use crate::vm::VmError;
use crate::vm::process::interrupted;
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
    Tool(#[from] ToolError),
    /// Local I/O failed.
    #[error("{0}")]
    Io(String),
    /// A signal stopped the run.
    #[error("interrupted")]
    Interrupted,
    /// The login user of a cloud-init image cannot be told.
    #[error(transparent)]
    Agent(#[from] NoDefaultUser),
}

fn io(what: &str) -> impl Fn(std::io::Error) -> RunError + '_ {
    move |e| RunError::Io(format!("{what}: {e}"))
}

/// Where events go; shared with console reader threads.
pub type Emit = Arc<dyn Fn(Event) + Send + Sync>;

/// What is known and running before an image's boots: the image, its offline facts and
/// agent, the metadata service and the run's temp dir.
struct Prepared {
    info: ImageInfo,
    tmp: tempfile::TempDir,
    facts: Facts,
    server: MetadataServer,
    offline_secs: f64,
}

/// Recognises `image`, reads it offline, chooses the agent, starts the metadata service.
fn prepare(
    plan: &RunPlan,
    image: &Path,
    started: Instant,
    emit: &Emit,
) -> Result<Prepared, RunError> {
    let info = image::sniff(image)?;
    emit(Event::Image {
        image: image.display().to_string(),
        format: info.kind.describe(),
    });
    let tmp = tempfile::Builder::new()
        .prefix("imgtest-")
        .tempdir()
        .map_err(io("temp dir"))?;
    let offline = crate::offline::read(&info, &plan.offline, tmp.path())?;
    emit(match &offline {
        Offline::Read(f) => Event::OfflineRead {
            source: f.source.clone(),
        },
        Offline::Unreadable { reason } => Event::OfflineUnreadable {
            reason: reason.clone(),
        },
    });
    let offline_secs = started.elapsed().as_secs_f64();
    let agent = cloudinit::choose(plan.firstboot, plan.user.as_deref(), &offline)?;
    emit(Event::Agent(agent.clone()));
    let server = MetadataServer::start(plan.fault).map_err(io("metadata server"))?;
    let facts = Facts {
        offline,
        boots: Vec::new(),
        fault: plan.fault,
        agent: Some(agent),
        no_boot: None,
    };
    Ok(Prepared {
        info,
        tmp,
        facts,
        server,
        offline_secs,
    })
}

/// Tests one image.
pub fn run_image(
    plan: &RunPlan,
    image: &Path,
    accel: &AccelDecision,
    emit: Emit,
) -> Result<Report, RunError> {
    let started = Instant::now();
    let Prepared {
        info,
        tmp,
        mut facts,
        server,
        offline_secs,
    } = prepare(plan, image, started, &emit)?;
    let timeouts = plan.timeouts.for_accel(accel.accel, plan.tcg_scale);
    let offline_failure = plan
        .fail_fast
        .then(|| first_failure(&facts, plan))
        .flatten();
    if let Some(failed) = offline_failure {
        facts.no_boot = Some(format!(
            "--fail-fast: stopped before booting, {failed} failed"
        ));
    } else if plan.selection.needs_boot() {
        let ctx = boot::BootContext {
            plan,
            accel,
            facts: &facts,
            timeouts: &timeouts,
            overall: started + timeouts.overall,
            info: &info,
            server: &server,
            tmp: tmp.path(),
            roles: boot::Roles::default(),
        };
        facts.boots = boot::run_boots(&ctx, &emit)?;
    }
    if interrupted() {
        return Err(RunError::Interrupted);
    }
    let results = checks::evaluate(&facts, &plan.selection);
    for r in &results {
        emit(Event::Check(r.clone()));
    }
    let unjudged = checks::unjudged(&results);
    let mut report = Report {
        image: image.display().to_string(),
        format: info.kind.describe(),
        accel: accel.clone(),
        timeouts,
        verdict: report::verdict(&results, &unjudged, plan.allow_unjudged),
        checks: results,
        facts,
        duration_secs: started.elapsed().as_secs_f64(),
        offline_secs,
        artifacts: None,
        unjudged,
        files: run_files(tmp.path())?,
    };
    if let Some(dir) = artifacts_dir(plan, image, report.verdict) {
        report.artifacts = Some(dir.display().to_string());
        save_artifacts(&dir, &server, &report)?;
    }
    Ok(report)
}

/// The files the boots left in the run's temp dir: console logs, QEMU's stderr and
/// screenshots (not the overlays and sockets).
fn run_files(tmp: &Path) -> Result<report::Files, RunError> {
    let mut files = report::Files::new();
    for e in std::fs::read_dir(tmp).map_err(io("temp dir"))?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".log") || name.ends_with(".png") {
            files.insert(name, std::fs::read(e.path()).map_err(io("reading a log"))?);
        }
    }
    Ok(files)
}

/// Boots one overlay of `image` as [`run_image`] would and holds it open for `person`,
/// who comes in through `door`; then stops it. The overlay is deleted unless
/// `keep_overlay` names where to keep it. The boot's facts say how far it got.
pub fn shell(
    plan: &RunPlan,
    image: &Path,
    accel: &AccelDecision,
    emit: Emit,
    (door, person): (shell::Door, &shell::Person),
    keep_overlay: Option<&Path>,
) -> Result<crate::facts::BootFacts, RunError> {
    let started = Instant::now();
    let p = prepare(plan, image, started, &emit)?;
    let timeouts = plan.timeouts.for_accel(accel.accel, plan.tcg_scale);
    let ctx = boot::BootContext {
        plan,
        accel,
        facts: &p.facts,
        timeouts: &timeouts,
        overall: started + timeouts.overall,
        info: &p.info,
        server: &p.server,
        tmp: p.tmp.path(),
        roles: boot::Roles::default(),
    };
    let facts = boot::hold(&ctx, &emit, door, person)?;
    if let Some(keep) = keep_overlay {
        std::fs::copy(p.tmp.path().join("boot0.qcow2"), keep)
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
        None => (verdict == Verdict::Fail).then(|| PathBuf::from("imgtest-artifacts").join(name)),
    }
}

/// Keeps the run's files, the metadata request log and the report (JSON and HTML) in
/// `dir`.
fn save_artifacts(dir: &Path, server: &MetadataServer, report: &Report) -> Result<(), RunError> {
    std::fs::create_dir_all(dir).map_err(io("artifacts dir"))?;
    for (name, bytes) in &report.files {
        std::fs::write(dir.join(name), bytes).map_err(io("keeping a log"))?;
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
    std::fs::write(
        dir.join("report.html"),
        report::html::to_html(std::slice::from_ref(report)),
    )
    .map_err(io("report"))?;
    Ok(())
}

/// The first error-severity check that fails on `facts` so far, for `--fail-fast`.
fn first_failure(facts: &Facts, plan: &RunPlan) -> Option<checks::CheckId> {
    checks::evaluate(facts, &plan.selection)
        .into_iter()
        .find(|r| r.status == checks::Status::Fail && r.severity == checks::Severity::Error)
        .map(|r| r.id)
}

impl RunPlan {
    /// Whether a selected check needs `need` collected.
    fn needs(&self, need: Need) -> bool {
        self.selection.needs(need)
    }
}
