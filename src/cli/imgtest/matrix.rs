//! `imgtest matrix`, `imgtest bisect` and `imgtest report merge`: the kernel regression
//! matrix on the command line, with plain progress lines on stderr.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::args::{BisectArgs, MatrixArgs, RunOptions};
use super::{accel_cache, relay_program, write_named};
use crate::cli::{CliError, Outcome, all_ok};
use crate::matrix::{
    self, KernelStep, MatrixEmit, MatrixEvent, MatrixPlan, MatrixReport, MatrixVerdict, Shard,
    render,
};
use crate::named::Named;
use crate::report;
use crate::run;
use crate::run::outputs::{self, Output, Reports};
use crate::run::plan::RunPlan;
use crate::vm::accel::Pending;

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

/// Prints a matrix's table, writes its JSON, JUnit and HTML reports and gives its
/// verdict (an unwritable report is an error).
fn finish_matrix(
    m: Result<MatrixReport, impl std::fmt::Display>,
    json: &Option<PathBuf>,
    junit: &Option<PathBuf>,
    html: &Option<PathBuf>,
) -> Result<Outcome, CliError> {
    let m = m.map_err(|e| e.to_string())?;
    print!("{}", render::table(&m));
    all_ok([
        write_named(json, || render::to_json(&m)),
        write_named(junit, || render::to_junit(&m)),
        write_named(html, || render::to_html(&m)),
    ])?;
    Ok(match m.verdict() {
        MatrixVerdict::Pass => Outcome::Success,
        MatrixVerdict::Fail => Outcome::CheckFailed,
        MatrixVerdict::Error => Outcome::Unjudged,
    })
}

/// The plan of a matrix or bisection, checked with its reports before anything runs
/// ([`matrix::check`]), and its accelerator.
fn matrix_plan(
    rootfs: PathBuf,
    specs: Vec<String>,
    shard: Option<Shard>,
    jobs: Option<usize>,
    opts: &RunOptions,
    reports: Reports,
) -> Result<(MatrixPlan, Pending), String> {
    let run = RunPlan::load(opts.boot.request(), relay_program()).map_err(|e| e.to_string())?;
    let epoch = crate::cli::source_date_epoch()?;
    let plan = MatrixPlan::new(rootfs, specs, shard, jobs, run, opts.append.clone(), epoch)
        .map_err(|e| e.to_string())?;
    matrix::check(&plan, reports).map_err(|e| e.to_string())?;
    let accel = run::start_accel(&plan.run, accel_cache());
    Ok((plan, accel))
}

/// `imgtest matrix`.
pub(super) fn matrix(args: MatrixArgs) -> Result<Outcome, CliError> {
    crate::vm::process::install_signal_guard();
    let specs = matrix::sorted_specs(&args.kernels);
    let reports = Reports {
        json: args.json.as_deref(),
        junit: args.junit.as_deref(),
        html: args.html.as_deref(),
    };
    let (plan, accel) = matrix_plan(
        args.rootfs,
        specs,
        args.shard,
        args.jobs,
        &args.run,
        reports,
    )?;
    let (decision, _) = accel.wait();
    eprintln!(
        "matrix: {} of {} kernels, {} at a time, accelerator {} ({})",
        plan.selected().len(),
        plan.specs.len(),
        plan.jobs,
        decision.accel.name(),
        decision.reason
    );
    finish_matrix(
        matrix::run_matrix(&plan, &accel, matrix_progress()),
        &args.json,
        &args.junit,
        &args.html,
    )
}

/// `imgtest bisect`.
pub(super) fn bisect(args: BisectArgs) -> Result<Outcome, CliError> {
    crate::vm::process::install_signal_guard();
    let mut specs = vec![args.good];
    specs.extend(args.kernels);
    specs.push(args.bad);
    matrix::bisect::check_list(&specs).map_err(|e| e.to_string())?;
    let n = specs.len();
    let reports = Reports {
        json: args.json.as_deref(),
        ..Reports::default()
    };
    let (plan, accel) = matrix_plan(args.rootfs, specs, None, Some(1), &args.run, reports)?;
    let most = matrix::bisect::max_steps(n);
    println!(
        "bisecting {} candidate(s) between {} (good) and {} (bad): at most {most} run(s)",
        n - 2,
        plan.specs[0],
        plan.specs[n - 1]
    );
    let mut count = 0;
    let result = matrix::bisect::run_bisect(&plan, &accel, matrix_progress(), |s, o| {
        count += 1;
        let failed: Vec<&str> = o
            .report
            .iter()
            .flat_map(|r| r.checks.iter())
            .filter(|c| c.status == crate::checks::Status::Fail)
            .map(|c| c.id.name())
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
    let r = result.map_err(|e| e.to_string())?;
    println!(
        "first bad kernel: {} (last good: {}) after {} run(s)",
        r.first_bad,
        r.last_good,
        r.bisection.steps.len()
    );
    write_named(&args.json, || {
        serde_json::to_string_pretty(&r).expect("serialises")
    })?;
    Ok(Outcome::Success)
}

/// `imgtest report merge`.
pub(super) fn merge(
    files: &[PathBuf],
    json: Option<PathBuf>,
    junit: Option<PathBuf>,
    html: Option<PathBuf>,
) -> Result<Outcome, CliError> {
    let outs: Vec<Output> = Reports {
        json: json.as_deref(),
        junit: junit.as_deref(),
        html: html.as_deref(),
    }
    .outputs()
    .collect();
    let inputs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    outputs::check(&outs, &inputs).map_err(|e| e.to_string())?;
    let mut parts = Vec::new();
    for f in files {
        let parsed = std::fs::read_to_string(f)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<MatrixReport>(&t).map_err(|e| e.to_string()));
        parts.push(parsed.map_err(|e| format!("{}: not a matrix JSON report: {e}", f.display()))?);
    }
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    finish_matrix(matrix::merge::merge(parts, &names), &json, &junit, &html)
}
