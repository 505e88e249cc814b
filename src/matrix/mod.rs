//! The kernel regression matrix: one root filesystem, many kernels. For each kernel
//! SPEC (a cached version, a `.deb`, or a Debian package name) the matrix resolves it
//! into fsmaker's kernel cache, builds a disk with fsmaker and tests it with the runner;
//! the result is one [`MatrixReport`] whose views (table, JSON, JUnit) live in [`render`].
//!
//! Specs are sorted (by [`version_cmp`]) and de-duplicated, so every CI job that passes the
//! same list sees the same matrix; `--shard K/N` takes the specs whose index `i` (0-based,
//! in that order) has `i % N == K - 1` (round-robin, so a shard mixes old and new kernels).
//! [`merge`] joins shard reports back into the report of the whole matrix. [`bisect`]
//! finds the first failing kernel of an ordered list with the same per-kernel test.
//!
//! Kernels run `jobs` at a time, their images built one ahead by a builder thread; cache
//! look-ups and downloads are serialised (one writer per cache). Each image lives in a
//! temp dir that is gone when the matrix returns. This module never prints: progress
//! goes out as [`MatrixEvent`]s.

pub mod bisect;
pub mod merge;
pub mod render;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::disk::image;
use crate::facts::Accel;
use crate::fsmaker::kernel::{Cache, CachedKernel, KernelMeta, sha256_file, version_cmp};
use crate::fsmaker::{self, BuildError, BuildPlan, Format, KernelSource};
use crate::report::Event;
use crate::report::{Report, Verdict};
use crate::run;
use crate::run::outputs::{self, Output, OutputError, Reports};
use crate::run::plan::RunPlan;
use crate::vm;
use crate::vm::accel::Pending;

/// A slice of the matrix: shard `index` (1-based) of `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// K, 1-based.
    pub index: usize,
    /// N.
    pub total: usize,
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("bad shard `{s}`: expected K/N with 1 <= K <= N, e.g. 2/4");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, total) = (
            k.trim().parse::<usize>().map_err(|_| bad())?,
            n.trim().parse::<usize>().map_err(|_| bad())?,
        );
        if index == 0 || index > total {
            return Err(bad());
        }
        Ok(Shard { index, total })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.total)
    }
}

impl Shard {
    /// The indices (into a matrix of `n` specs) this shard tests.
    pub fn select(&self, n: usize) -> Vec<usize> {
        (0..n)
            .filter(|i| i % self.total == self.index - 1)
            .collect()
    }
}

/// What a SPEC names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSpec {
    /// A Debian `linux-image-*` package file.
    Deb(PathBuf),
    /// A Debian package, fetched with `apt-get download` unless already imported.
    Package(String),
    /// A kernel version already in the cache (`fsmaker kernel list`).
    Cached(String),
}

impl KernelSpec {
    /// Classifies `s`: a path ending in `.deb` (or an existing file), a `linux-image-*`
    /// package name, else a cached version.
    pub fn parse(s: &str) -> KernelSpec {
        if s.ends_with(".deb") || Path::new(s).is_file() {
            KernelSpec::Deb(PathBuf::from(s))
        } else if s.starts_with("linux-image-") {
            KernelSpec::Package(s.to_string())
        } else {
            KernelSpec::Cached(s.to_string())
        }
    }

    /// The cached kernel it names, importing it into `cache` when it is not there yet (a
    /// `.deb` is recognised by its sha256, a package by its name).
    /// `epoch` dates the files of a new import (see `fsmaker kernel fetch`).
    pub fn resolve(&self, cache: &Cache, epoch: i64) -> Result<CachedKernel, BuildError> {
        match self {
            KernelSpec::Cached(v) => cache.pick(Some(v)),
            KernelSpec::Deb(p) => {
                if !p.is_file() {
                    return Err(BuildError::BadDeb {
                        deb: p.clone(),
                        why: "no such file".into(),
                    });
                }
                let sha = sha256_file(p)?;
                match cache.list()?.into_iter().find(|k| k.meta.deb_sha256 == sha) {
                    Some(k) => Ok(k),
                    None => cache.fetch(&p.to_string_lossy(), epoch, &mut |_| {}),
                }
            }
            KernelSpec::Package(name) => {
                match cache.list()?.into_iter().find(|k| &k.meta.package == name) {
                    Some(k) => Ok(k),
                    None => cache.fetch(name, epoch, &mut |_| {}),
                }
            }
        }
    }
}

/// Why a matrix could not start.
#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    /// Bad flags or inputs.
    #[error("{0}")]
    Usage(String),
    /// The kernel cache or a build input is unusable.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Local I/O failed.
    #[error("{0}")]
    Io(String),
    /// A kernel a bisection needed could not be judged.
    #[error("could not judge {0}")]
    NotJudged(String),
    /// A report or the artifacts directory cannot be written as asked.
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// Checks what a matrix (or bisection) reads and writes, before it starts: its `reports`
/// and artifacts directory against each other and against its inputs
/// (the root filesystem, the config file, `.deb` specs), and its parallel boots against
/// the host's memory. Then the artifacts directory is made afresh (a previous one is
/// replaced as a whole).
pub fn check(plan: &MatrixPlan, reports: Reports) -> Result<(), MatrixError> {
    let mut outs: Vec<Output> = Vec::new();
    outs.extend(
        plan.run
            .artifacts
            .as_deref()
            .map(|a| Output::Dir(a, "the artifacts directory")),
    );
    outs.extend(reports.outputs());
    let debs: Vec<PathBuf> = plan
        .specs
        .iter()
        .filter_map(|s| match KernelSpec::parse(s) {
            KernelSpec::Deb(p) => Some(p),
            _ => None,
        })
        .collect();
    let mut inputs: Vec<&Path> = vec![&plan.rootfs];
    inputs.extend(plan.run.config.as_deref());
    inputs.extend(debs.iter().map(PathBuf::as_path));
    outputs::check(&outs, &inputs)?;
    let parallel = plan.jobs.min(plan.selected().len().max(1)) * plan.run.boots;
    vm::fits_memory(
        parallel,
        plan.run.memory_mib,
        vm::available_mib().unwrap_or(u64::MAX),
    )
    .map_err(|why| MatrixError::Usage(format!("the kernels tested at once do not fit: {why}")))?;
    if let Some(dir) = &plan.run.artifacts {
        outputs::replace_dir(dir, "the artifacts directory")?;
    }
    Ok(())
}

/// Sorts and de-duplicates specs: the order shards and reports use.
pub fn sorted_specs(specs: &[String]) -> Vec<String> {
    let mut v = specs.to_vec();
    v.sort_by(|a, b| version_cmp(a, b).then_with(|| a.cmp(b)));
    v.dedup();
    v
}

/// How many kernels fit the host at once: one TCG vCPU per boot and `per_boot_mib` of
/// RAM per boot (guest RAM plus QEMU's own), at least one.
pub fn default_jobs(host_cpus: usize, avail_mib: u64, boots: usize, per_boot_mib: u64) -> usize {
    let boots = boots.max(1);
    let by_cpu = host_cpus / boots;
    let by_mem = (avail_mib / (per_boot_mib * boots as u64).max(1)) as usize;
    by_cpu.min(by_mem).max(1)
}

/// Everything one matrix (or bisection) does.
#[derive(Debug, Clone)]
pub struct MatrixPlan {
    /// The root filesystem every image is built from.
    pub rootfs: PathBuf,
    /// The whole matrix: sorted, de-duplicated specs (a bisection keeps its order).
    pub specs: Vec<String>,
    /// The slice this run tests (`None`: all of it).
    pub shard: Option<Shard>,
    /// Kernels tested at once.
    pub jobs: usize,
    /// The per-kernel run (its `images` is filled per kernel).
    pub run: RunPlan,
    /// fsmaker's kernel cache.
    pub cache: Cache,
    /// GRUB i386-pc directory.
    pub grub_dir: PathBuf,
    /// Extra kernel command-line arguments.
    pub append: String,
    /// `SOURCE_DATE_EPOCH`, for fsmaker's timestamps.
    pub epoch: Option<i64>,
}

impl MatrixPlan {
    /// A plan testing `rootfs` with each kernel of `specs`, every kernel's run as `run`
    /// describes (its images are filled per kernel) and `append` on every kernel command
    /// line; `epoch` dates the files fsmaker writes (`SOURCE_DATE_EPOCH`). `specs` are kept
    /// in the given order: callers sort them ([`sorted_specs`]) for a matrix and keep them
    /// for a bisection.
    pub fn new(
        rootfs: PathBuf,
        specs: Vec<String>,
        shard: Option<Shard>,
        jobs: Option<usize>,
        run: RunPlan,
        append: String,
        epoch: Option<i64>,
    ) -> Result<MatrixPlan, MatrixError> {
        if !rootfs.is_file() {
            return Err(MatrixError::Usage(format!(
                "root filesystem {} does not exist",
                rootfs.display()
            )));
        }
        for s in &specs {
            if let KernelSpec::Deb(p) = KernelSpec::parse(s)
                && !p.is_file()
            {
                return Err(MatrixError::Usage(format!("kernel {s}: no such .deb file")));
            }
        }
        if jobs == Some(0) {
            return Err(MatrixError::Usage("jobs must be at least 1".into()));
        }
        let host_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let jobs = jobs.unwrap_or_else(|| {
            default_jobs(
                host_cpus,
                vm::available_mib().unwrap_or(1024),
                run.boots,
                u64::from(run.memory_mib) + vm::QEMU_OVERHEAD_MIB,
            )
        });
        Ok(MatrixPlan {
            epoch,
            rootfs,
            specs,
            shard,
            jobs,
            run,
            cache: Cache::from_env()?,
            grub_dir: PathBuf::from(fsmaker::grub::DEFAULT_DIR),
            append,
        })
    }

    /// The indices of [`MatrixPlan::specs`] this run tests.
    pub fn selected(&self) -> Vec<usize> {
        match self.shard {
            Some(s) => s.select(self.specs.len()),
            None => (0..self.specs.len()).collect(),
        }
    }

    /// Under TCG with no `--smp`, the host's CPUs shared among every parallel boot.
    fn vcpus_for(&self, accel: Accel) -> u32 {
        let host = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        match (self.run.smp, accel) {
            (0, Accel::Tcg) => {
                let parallel =
                    (self.jobs.min(self.selected().len().max(1)) * self.run.boots).max(1) as u32;
                (host / parallel).clamp(1, 2)
            }
            (n, _) => n,
        }
    }
}

/// How one kernel fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelVerdict {
    /// Every error-severity check passed.
    Pass,
    /// A check failed.
    Fail,
    /// Could not judge: the kernel could not be resolved, the image built or the run done.
    Error,
}

/// One kernel's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelOutcome {
    /// Index into the matrix's specs.
    pub index: usize,
    /// The spec as given.
    pub spec: String,
    /// What the cache knows about the kernel, once resolved.
    pub kernel: Option<KernelMeta>,
    /// The verdict.
    pub verdict: KernelVerdict,
    /// Why it could not be judged.
    pub error: Option<String>,
    /// Seconds spent resolving and building the image.
    pub build_secs: f64,
    /// The run's report (its `image` is the kernel version).
    pub report: Option<Report>,
}

impl KernelOutcome {
    /// The kernel's name in tables: its version once known, else the spec.
    pub fn label(&self) -> &str {
        self.kernel
            .as_ref()
            .map_or(self.spec.as_str(), |k| k.version.as_str())
    }
}

/// The verdict of a whole matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatrixVerdict {
    /// Every kernel passed.
    Pass,
    /// Every kernel was judged and at least one failed.
    Fail,
    /// At least one kernel could not be judged.
    Error,
}

/// A matrix's (or a shard's) results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixReport {
    /// The root filesystem.
    pub rootfs: String,
    /// The whole matrix's specs, in order.
    pub specs: Vec<String>,
    /// The slice this report holds (`None`: the whole matrix).
    pub shard: Option<Shard>,
    /// The tested kernels, by index.
    pub kernels: Vec<KernelOutcome>,
    /// Wall time in seconds.
    pub duration_secs: f64,
}

impl MatrixReport {
    /// Error if any kernel could not be judged, else fail if any failed, else pass.
    pub fn verdict(&self) -> MatrixVerdict {
        let has = |v| self.kernels.iter().any(|k| k.verdict == v);
        if has(KernelVerdict::Error) {
            MatrixVerdict::Error
        } else if has(KernelVerdict::Fail) {
            MatrixVerdict::Fail
        } else {
            MatrixVerdict::Pass
        }
    }
}

/// What a kernel's test is doing.
#[derive(Debug, Clone, PartialEq)]
pub enum KernelStep {
    /// Looking the spec up in the cache (maybe downloading and importing it).
    Resolving,
    /// fsmaker is building the image.
    Building,
    /// A runner event.
    Run(Event),
    /// Finished.
    Done(KernelVerdict),
}

/// A matrix progress event.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixEvent {
    /// Index into the specs.
    pub index: usize,
    /// The kernel's current label (spec, then version).
    pub label: String,
    /// What happened.
    pub step: KernelStep,
}

/// Where matrix events go.
pub type MatrixEmit = Arc<dyn Fn(MatrixEvent) + Send + Sync>;

/// Resolves, builds and tests one kernel. `cache_lock` serialises cache writers.
pub fn test_kernel(
    plan: &MatrixPlan,
    index: usize,
    accel: &Pending,
    work: &Path,
    cache_lock: &Mutex<()>,
    emit: &MatrixEmit,
) -> KernelOutcome {
    match build_kernel(plan, index, work, cache_lock, emit) {
        Ok(built) => run_kernel(plan, built, accel, emit),
        Err(outcome) => *outcome,
    }
}

/// A kernel's image, built and waiting for its test.
struct Built {
    outcome: KernelOutcome,
    image: PathBuf,
    version: String,
}

/// Resolves one kernel and builds its image; a failure is the kernel's final outcome.
fn build_kernel(
    plan: &MatrixPlan,
    index: usize,
    work: &Path,
    cache_lock: &Mutex<()>,
    emit: &MatrixEmit,
) -> Result<Built, Box<KernelOutcome>> {
    let spec = plan.specs[index].clone();
    let started = Instant::now();
    let send = |label: &str, step| {
        emit(MatrixEvent {
            index,
            label: label.to_string(),
            step,
        })
    };
    let mut outcome = KernelOutcome {
        index,
        spec: spec.clone(),
        kernel: None,
        verdict: KernelVerdict::Error,
        error: None,
        build_secs: 0.0,
        report: None,
    };
    send(&spec, KernelStep::Resolving);
    let resolved = {
        let _g = cache_lock.lock().unwrap_or_else(|p| p.into_inner());
        KernelSpec::parse(&spec).resolve(&plan.cache, plan.epoch.unwrap_or(0))
    };
    let kernel = match resolved {
        Ok(k) => k,
        Err(e) => {
            outcome.error = Some(format!("kernel {spec}: {e}"));
            send(&spec, KernelStep::Done(KernelVerdict::Error));
            return Err(Box::new(outcome));
        }
    };
    let version = kernel.meta.version.clone();
    outcome.kernel = Some(kernel.meta.clone());
    send(&version, KernelStep::Building);
    // Indexed: two specs may name the same kernel (a version and its .deb).
    let image = work.join(format!("{index}-{version}.img"));
    let bplan = BuildPlan {
        rootfs: plan.rootfs.clone(),
        out: image.clone(),
        force: true,
        size: None,
        grow: false,
        format: Format::Raw,
        kernel: KernelSource::Cached(kernel),
        boot: fsmaker::BootSetup {
            grub_dir: plan.grub_dir.clone(),
            ..fsmaker::BootSetup::default()
        },
        append: plan.append.clone(),
        epoch: plan.epoch,
    };
    let built = fsmaker::build(&bplan, &mut |_| {});
    outcome.build_secs = started.elapsed().as_secs_f64();
    if let Err(e) = built {
        outcome.error = Some(format!("building the image: {e}"));
        send(&version, KernelStep::Done(KernelVerdict::Error));
        return Err(Box::new(outcome));
    }
    Ok(Built {
        outcome,
        image,
        version,
    })
}

/// Tests a built kernel image with the runner, then deletes the image.
fn run_kernel(
    plan: &MatrixPlan,
    built: Built,
    accel: &Pending,
    emit: &MatrixEmit,
) -> KernelOutcome {
    let Built {
        mut outcome,
        image,
        version,
    } = built;
    let index = outcome.index;
    let mut run_plan = plan.run.clone();
    run_plan.images = vec![image.clone()];
    run_plan.smp = plan.vcpus_for(accel.wait().0.accel);
    run_plan.artifacts = plan.run.artifacts.as_ref().map(|d| d.join(&version));
    let run_emit: run::Emit = {
        let (emit, version) = (emit.clone(), version.clone());
        Arc::new(move |e| {
            emit(MatrixEvent {
                index,
                label: version.clone(),
                step: KernelStep::Run(e),
            })
        })
    };
    let tested = image::sniff(&image)
        .map_err(run::RunError::from)
        .and_then(|info| run::run_image(&run_plan, &image, &info, accel, run_emit));
    match tested {
        Ok(mut r) => {
            r.image = version.clone();
            outcome.verdict = match r.verdict {
                Verdict::Pass => KernelVerdict::Pass,
                Verdict::Fail => KernelVerdict::Fail,
                Verdict::Unjudged => KernelVerdict::Error,
            };
            outcome.report = Some(r);
        }
        Err(e) => outcome.error = Some(format!("running the image: {e}")),
    }
    let _ = std::fs::remove_file(&image);
    emit(MatrixEvent {
        index,
        label: version,
        step: KernelStep::Done(outcome.verdict),
    });
    outcome
}

/// A private temp dir for the matrix's images.
pub fn work_dir() -> Result<crate::scratch::Dir, MatrixError> {
    crate::scratch::Dir::new("imgtest-matrix-")
        .map_err(|e| MatrixError::Io(format!("temp dir: {e}")))
}

/// Runs the matrix (this shard of it): `plan.jobs` kernels at a time.
pub fn run_matrix(
    plan: &MatrixPlan,
    accel: &Pending,
    emit: MatrixEmit,
) -> Result<MatrixReport, MatrixError> {
    let started = Instant::now();
    let work = work_dir()?;
    let selected = plan.selected();
    let cache_lock = Mutex::new(());
    let results = Mutex::new(Vec::new());
    // One builder runs ahead of the `jobs` testers, so a tester that finishes a kernel
    // finds the next image built instead of building it while its CPU share sits idle.
    let (to_test, built) = std::sync::mpsc::sync_channel::<Built>(1);
    let built = Mutex::new(built);
    std::thread::scope(|s| {
        let (results, cache_lock, emit, work, selected) =
            (&results, &cache_lock, &emit, &work, &selected);
        s.spawn(move || {
            for &index in selected {
                if crate::vm::process::interrupted() {
                    break;
                }
                match build_kernel(plan, index, work.path(), cache_lock, emit) {
                    Ok(b) => {
                        if to_test.send(b).is_err() {
                            break;
                        }
                    }
                    Err(o) => results.lock().unwrap_or_else(|p| p.into_inner()).push(*o),
                }
            }
        });
        for _ in 0..plan.jobs.min(selected.len()) {
            s.spawn(|| {
                loop {
                    let next = built.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok(b) = next else { break };
                    if crate::vm::process::interrupted() {
                        let _ = std::fs::remove_file(&b.image);
                        continue;
                    }
                    let o = run_kernel(plan, b, accel, emit);
                    results.lock().unwrap_or_else(|p| p.into_inner()).push(o);
                }
            });
        }
    });
    let mut kernels = results.into_inner().unwrap_or_else(|p| p.into_inner());
    kernels.sort_by_key(|k| k.index);
    if kernels.len() != selected.len() {
        return Err(MatrixError::Io("interrupted".into()));
    }
    Ok(MatrixReport {
        rootfs: plan.rootfs.display().to_string(),
        specs: plan.specs.clone(),
        shard: plan.shard,
        kernels,
        duration_secs: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests;
