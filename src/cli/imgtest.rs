//! `imgtest`: boot an image the way the platform will and check its first boot is safe.
//! Thin: parse flags, resolve a plan, call the library, render, map to an exit code.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::checks::CATALOGUE;
use crate::exit;
use crate::matrix::{
    self, BisectArgs, KernelStep, MatrixArgs, MatrixEmit, MatrixEvent, MatrixPlan, MatrixReport,
    MatrixVerdict, RunOptions, Shard, render,
};
use crate::report::live::Live;
use crate::report::{self, Report, Verdict};
use crate::run::plan::{DEFAULT_CONFIG, RunArgs, RunPlan};
use crate::run::{self, Event};
use crate::vm::accel;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "imgtest",
    version,
    about = "Boot VM images like the platform will and prove their first boot is safe"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Test images: exit 0 pass, 1 a check failed, 2 could not judge.
    Run(Box<RunArgs>),
    /// List the check catalogue.
    Checks {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Report which dependencies and accelerators are available.
    Doctor,
    /// Print the commented default imgtest.toml.
    Config,
    /// Test one root filesystem with many kernels: exit 0 all pass, 1 one failed, 2 could not judge.
    Matrix(Box<MatrixArgs>),
    /// Find the first failing kernel of an ordered list: --good, --kernel..., --bad.
    Bisect(Box<BisectArgs>),
    /// Work with reports.
    Report {
        #[command(subcommand)]
        cmd: ReportCmd,
    },
    /// Internal: the metadata relay QEMU runs per guest connection.
    #[command(name = "__relay", hide = true)]
    Relay { addr: String, token: String },
}

#[derive(Subcommand)]
enum ReportCmd {
    /// Merge the JSON reports of a matrix's shards into one report (exit as the matrix would).
    Merge {
        /// Shard reports (`imgtest matrix --shard K/N --json FILE`).
        #[arg(required = true, value_name = "SHARD.json")]
        reports: Vec<PathBuf>,
        /// Write the merged JSON report here.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Write the merged JUnit XML report here.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
}

/// The `imgtest` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Run(args) => run(*args),
        Cmd::Checks { json } => {
            exit::quiet_on_closed_stdout();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(CATALOGUE).expect("serialises")
                );
            } else {
                for c in CATALOGUE {
                    println!(
                        "{:<22} {:<8} {:<6} {}",
                        c.id,
                        format!("{:?}", c.severity).to_lowercase(),
                        format!("{:?}", c.scope).to_lowercase(),
                        c.title
                    );
                }
            }
            exit::SUCCESS
        }
        Cmd::Doctor => doctor(),
        Cmd::Matrix(args) => matrix(*args),
        Cmd::Bisect(args) => bisect(*args),
        Cmd::Report {
            cmd:
                ReportCmd::Merge {
                    reports,
                    json,
                    junit,
                },
        } => merge(&reports, json, junit),
        Cmd::Config => {
            exit::quiet_on_closed_stdout();
            print!("{DEFAULT_CONFIG}");
            exit::SUCCESS
        }
        Cmd::Relay { addr, token } => {
            match crate::metadata::relay(&addr, &token, std::io::stdin(), std::io::stdout()) {
                Ok(()) => exit::SUCCESS,
                Err(_) => exit::ERROR,
            }
        }
    };
    exit::code(code)
}

fn run(args: RunArgs) -> i32 {
    crate::vm::process::install_signal_guard();
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("imgtest"));
    let plan = match RunPlan::from_args(args, exe) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("imgtest: {e}");
            return exit::ERROR;
        }
    };
    let live = Arc::new(Live::new(std::io::stderr().is_terminal()));
    let view = live.clone();
    let emit: run::Emit = Arc::new(move |e: Event| view.event(&e));
    let decision = match decide_accel(&plan) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("imgtest: {e}");
            return exit::ERROR;
        }
    };
    emit(Event::Accel(decision.clone()));
    let mut reports: Vec<Report> = Vec::new();
    let mut code = exit::SUCCESS;
    for image in &plan.images {
        match run::run_image(&plan, image, &decision, emit.clone()) {
            Ok(r) => {
                live.clear();
                print!("{}", report::render_summary(&r));
                if r.verdict == Verdict::Fail {
                    code = code.max(exit::CHECK_FAILED);
                }
                reports.push(r);
            }
            Err(e) => {
                eprintln!("imgtest: {e}");
                code = exit::ERROR;
            }
        }
        if crate::vm::process::interrupted() {
            code = exit::ERROR;
            break;
        }
    }
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let cpu = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    live.finish(&format!(
        "done: imgtest's own CPU {:.2}s (QEMU excluded)",
        cpu(usage.ru_utime) + cpu(usage.ru_stime)
    ));
    if let Some(p) = &plan.json
        && let Err(e) = std::fs::write(p, report::to_json(&reports))
    {
        eprintln!("imgtest: cannot write {}: {e}", p.display());
        code = exit::ERROR;
    }
    if let Some(p) = &plan.junit
        && let Err(e) = std::fs::write(p, report::to_junit(&reports))
    {
        eprintln!("imgtest: cannot write {}: {e}", p.display());
        code = exit::ERROR;
    }
    code
}

/// The accelerator for `plan`: KVM only if a probe kernel boots under it.
fn decide_accel(plan: &RunPlan) -> Result<accel::AccelDecision, String> {
    let probe_dir = tempfile::Builder::new()
        .prefix("imgtest-accel-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let kernel = plan
        .direct_kernel
        .as_ref()
        .map(|k| k.kernel.clone())
        .or_else(accel::probe_kernel);
    Ok(if plan.selection.needs_boot() {
        accel::decide(plan.accel, &plan.qemu, probe_dir.path(), kernel.as_deref())
    } else {
        accel::decide(accel::AccelChoice::Tcg, &plan.qemu, probe_dir.path(), None)
    })
}

/// Plain progress lines on stderr for matrix and bisect, tagged with the kernel.
fn matrix_progress() -> MatrixEmit {
    let start = std::time::Instant::now();
    Arc::new(move |e: MatrixEvent| {
        let text = match &e.step {
            KernelStep::Resolving => "resolving in the kernel cache".to_string(),
            KernelStep::Building => "building the image (fsmaker)".to_string(),
            KernelStep::Run(ev) => match report::render_event(ev) {
                Some(t) => t,
                None => return,
            },
            KernelStep::Done(v) => format!("done: {v:?}").to_lowercase(),
        };
        eprintln!(
            "[{:7.1}s] {}: {text}",
            start.elapsed().as_secs_f64(),
            e.label
        );
    })
}

fn write_or_complain(path: &Option<PathBuf>, text: impl FnOnce() -> String) -> bool {
    match path {
        Some(p) => match std::fs::write(p, text()) {
            Ok(()) => true,
            Err(e) => {
                eprintln!("imgtest: cannot write {}: {e}", p.display());
                false
            }
        },
        None => true,
    }
}

/// Prints a matrix's table, writes its JSON and JUnit reports and maps its verdict to an
/// exit code (an unwritable report is an error too).
fn finish_matrix(
    m: Result<MatrixReport, impl std::fmt::Display>,
    json: &Option<PathBuf>,
    junit: &Option<PathBuf>,
) -> i32 {
    let m = match m {
        Ok(m) => m,
        Err(e) => {
            eprintln!("imgtest: {e}");
            return exit::ERROR;
        }
    };
    print!("{}", render::table(&m));
    let written = write_or_complain(json, || render::to_json(&m))
        & write_or_complain(junit, || render::to_junit(&m));
    match m.verdict() {
        _ if !written => exit::ERROR,
        MatrixVerdict::Pass => exit::SUCCESS,
        MatrixVerdict::Fail => exit::CHECK_FAILED,
        MatrixVerdict::Error => exit::ERROR,
    }
}

fn matrix_plan(
    rootfs: PathBuf,
    specs: Vec<String>,
    shard: Option<Shard>,
    jobs: Option<usize>,
    opts: &RunOptions,
) -> Result<(MatrixPlan, accel::AccelDecision), String> {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("imgtest"));
    let plan = MatrixPlan::new(rootfs, specs, shard, jobs, opts, exe).map_err(|e| e.to_string())?;
    let decision = decide_accel(&plan.run)?;
    Ok((plan, decision))
}

fn matrix(args: MatrixArgs) -> i32 {
    crate::vm::process::install_signal_guard();
    let specs = matrix::sorted_specs(&args.kernels);
    let (plan, decision) = match matrix_plan(args.rootfs, specs, args.shard, args.jobs, &args.run) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("imgtest: {e}");
            return exit::ERROR;
        }
    };
    eprintln!(
        "matrix: {} of {} kernels, {} at a time, accelerator {} ({})",
        plan.selected().len(),
        plan.specs.len(),
        plan.jobs,
        decision.accel.name(),
        decision.reason
    );
    finish_matrix(
        matrix::run_matrix(&plan, &decision, matrix_progress()),
        &args.json,
        &args.junit,
    )
}

fn bisect(args: BisectArgs) -> i32 {
    crate::vm::process::install_signal_guard();
    let mut specs = vec![args.good];
    specs.extend(args.kernels);
    specs.push(args.bad);
    let n = specs.len();
    let (plan, decision) = match matrix_plan(args.rootfs, specs, None, Some(1), &args.run) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("imgtest: {e}");
            return exit::ERROR;
        }
    };
    let most = matrix::bisect::max_steps(n);
    println!(
        "bisecting {} candidate(s) between {} (good) and {} (bad): at most {most} run(s)",
        n - 2,
        plan.specs[0],
        plan.specs[n - 1]
    );
    let mut count = 0;
    let result = matrix::bisect::run_bisect(&plan, &decision, matrix_progress(), |s, o| {
        count += 1;
        let failed: Vec<&str> = o
            .report
            .iter()
            .flat_map(|r| r.checks.iter())
            .filter(|c| c.status == crate::checks::Status::Fail)
            .map(|c| c.id.as_str())
            .collect();
        println!(
            "step {count}/{most}: {} ({}) {}{}",
            plan.specs[s.index],
            o.label(),
            if s.passed { "PASS" } else { "FAIL" },
            if failed.is_empty() {
                String::new()
            } else {
                format!(": {}", failed.join(", "))
            }
        );
    });
    match result {
        Ok(r) => {
            println!(
                "first bad kernel: {} (last good: {}) after {} run(s)",
                r.first_bad,
                r.last_good,
                r.bisection.steps.len()
            );
            if write_or_complain(&args.json, || {
                serde_json::to_string_pretty(&r).expect("serialises")
            }) {
                exit::SUCCESS
            } else {
                exit::ERROR
            }
        }
        Err(e) => {
            eprintln!("imgtest: {e}");
            exit::ERROR
        }
    }
}

fn merge(files: &[PathBuf], json: Option<PathBuf>, junit: Option<PathBuf>) -> i32 {
    let mut parts = Vec::new();
    for f in files {
        let parsed = std::fs::read_to_string(f)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<MatrixReport>(&t).map_err(|e| e.to_string()));
        match parsed {
            Ok(p) => parts.push(p),
            Err(e) => {
                eprintln!("imgtest: {}: not a matrix JSON report: {e}", f.display());
                return exit::ERROR;
            }
        }
    }
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    finish_matrix(matrix::merge::merge(parts, &names), &json, &junit)
}

fn doctor() -> i32 {
    let mut ok = true;
    let mut line =
        |name: &str, found: Result<String, String>, hint: &str, required: bool| match found {
            Ok(v) => println!("ok       {name:<22} {v}"),
            Err(e) => {
                ok &= !required;
                println!(
                    "{}  {name:<22} {e}; {hint}",
                    if required { "MISSING" } else { "absent " }
                );
            }
        };
    let version = |prog: &str| {
        std::process::Command::new(prog)
            .arg("--version")
            .output()
            .map_err(|e| e.to_string())
            .and_then(|o| {
                if o.status.success() {
                    Ok(String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_string())
                } else {
                    Err("does not run".into())
                }
            })
    };
    line(
        "qemu-system-x86_64",
        version("qemu-system-x86_64"),
        "install: apt-get install qemu-system-x86",
        true,
    );
    line(
        "qemu-img",
        version("qemu-img"),
        "install: apt-get install qemu-utils",
        true,
    );
    let firmware = [
        "/usr/share/seabios/bios-256k.bin",
        "/usr/share/qemu/bios-256k.bin",
    ];
    line(
        "SeaBIOS",
        firmware
            .iter()
            .find(|p| std::path::Path::new(p).exists())
            .map(|p| p.to_string())
            .ok_or_else(|| "not found".into()),
        "install: apt-get install seabios",
        true,
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let kernel = accel::probe_kernel();
    line(
        "KVM probe kernel",
        kernel
            .as_ref()
            .map(|k| k.display().to_string())
            .ok_or_else(|| "none".into()),
        "run `fsmaker kernel fetch`; without it KVM is not proven and TCG is used",
        false,
    );
    let kvm = accel::probe_kvm("qemu-system-x86_64", dir.path(), kernel.as_deref());
    let auto = if kvm.is_ok() { "kvm" } else { "tcg" };
    line(
        "KVM",
        kvm.map(|_| "usable".into()),
        "imgtest uses TCG (slower; timeouts are scaled)",
        false,
    );
    println!("accelerator for --accel auto: {auto}");
    if ok { exit::SUCCESS } else { exit::ERROR }
}
