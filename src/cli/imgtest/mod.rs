//! `imgtest`: boot an image the way the platform will and check its first boot is safe.
//! Thin: parse flags, resolve a plan, call the library, render, map to an exit code.

pub mod args;
mod doctor;
mod matrix;
mod report_html;
mod shell;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use super::live::Live;
use super::{CliError, Outcome, all_ok, with_hint};
use crate::checks::{self, CATALOGUE};
use crate::disk::image::ImageInfo;
use crate::exit;
use crate::named::Named;
use crate::report::{self, Event, Report, Verdict};
use crate::run::outputs::OutputError;
use crate::run::plan::{DEFAULT_CONFIG, RunPlan};
use crate::run::shell::Person;
use crate::run::{self, RunError};
use crate::vm::VmError;
use crate::vm::accel::Pending;
use args::{BisectArgs, MatrixArgs, RunArgs};

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
    #[command(long_about = super::docs::RUN_ABOUT, after_long_help = super::docs::RUN_AFTER)]
    Run(Box<RunArgs>),
    /// List the check catalogue.
    Checks {
        /// As JSON.
        #[arg(long, conflicts_with = "markdown")]
        json: bool,
        /// As the Markdown table of docs/checks.md.
        #[arg(long)]
        markdown: bool,
    },
    /// Report which dependencies and accelerators are available.
    Doctor,
    /// Print the commented default imgtest.toml.
    Config,
    /// Test one root filesystem with many kernels: exit 0 all pass, 1 one failed, 2 could not judge.
    #[command(long_about = super::docs::MATRIX_ABOUT, after_long_help = super::docs::MATRIX_AFTER)]
    Matrix(Box<MatrixArgs>),
    /// Find the first failing kernel of an ordered list: --good, --kernel..., --bad.
    #[command(long_about = super::docs::BISECT_ABOUT)]
    Bisect(Box<BisectArgs>),
    /// Boot IMAGE as `run` would and get into it: SSH as the first-boot user with the
    /// metadata password (printed once), or the serial console (--console; Ctrl-] leaves).
    #[command(long_about = super::docs::SHELL_ABOUT)]
    Shell(Box<shell::ShellArgs>),
    /// Work with reports.
    Report {
        #[command(subcommand)]
        cmd: ReportCmd,
    },
    /// Internal: the metadata relay QEMU runs per guest connection.
    #[command(name = "__relay", hide = true)]
    Relay { socket: PathBuf },
    /// Internal: the KVM proof, in a process of its own that `--accel auto` can kill.
    #[command(name = "__kvm-probe", hide = true)]
    KvmProbe,
    /// Internal: write the three tools' manuals (DIR/man) and shell completions
    /// (DIR/completions), for the Debian package.
    #[command(name = "__docs", hide = true)]
    Docs { dir: PathBuf },
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
        /// Write the merged HTML report here.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Render a saved JSON report (of `run`, `matrix` or `report merge`) as one HTML page;
    /// console logs and screenshots are taken from the report's artifacts.
    Html {
        /// The JSON report.
        #[arg(value_name = "REPORT.json")]
        report: PathBuf,
        /// Write the page here.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
}

/// imgtest's command line as clap defines it (for its manual and completions).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// The `imgtest` binary.
pub fn main() -> ExitCode {
    super::guarded("imgtest", "imgtest", imgtest)
}

fn imgtest() -> Result<Outcome, CliError> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run(args) => run(*args),
        Cmd::Checks { json, markdown } => {
            list_checks(json, markdown);
            Ok(Outcome::Success)
        }
        Cmd::Doctor => doctor::doctor(),
        Cmd::Matrix(args) => matrix::matrix(*args),
        Cmd::Bisect(args) => matrix::bisect(*args),
        Cmd::Shell(args) => shell::shell(*args),
        Cmd::Report {
            cmd:
                ReportCmd::Merge {
                    reports,
                    json,
                    junit,
                    html,
                },
        } => matrix::merge(&reports, json, junit, html),
        Cmd::Report {
            cmd: ReportCmd::Html { report, output },
        } => report_html::render(&report, &output),
        Cmd::Config => {
            exit::quiet_on_closed_stdout();
            print!("{DEFAULT_CONFIG}");
            Ok(Outcome::Success)
        }
        Cmd::Docs { dir } => super::docs::write(&dir)
            .map(|()| Outcome::Success)
            .map_err(|e| format!("{}: {e}", dir.display()).into()),
        Cmd::KvmProbe => crate::vm::accel::probe_child(&mut std::io::stdout())
            .map(|()| Outcome::Success)
            .map_err(|_| CliError::Said),
        Cmd::Relay { socket } => {
            crate::metadata::relay(&socket, std::io::stdin(), std::io::stdout())
                .map(|()| Outcome::Success)
                .map_err(|_| CliError::Said)
        }
    }
}

/// `imgtest checks`: the catalogue as a table, JSON or docs/checks.md's Markdown.
fn list_checks(json: bool, markdown: bool) {
    exit::quiet_on_closed_stdout();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(CATALOGUE).expect("serialises")
        );
    } else if markdown {
        print!("{}", checks::markdown_table());
    } else {
        for rule in checks::Rule::ALL {
            let number = rule
                .number()
                .map(|n| format!("rule {n}, "))
                .unwrap_or_default();
            println!("# {number}{rule}: {}", rule.help());
            for c in CATALOGUE.iter().filter(|c| c.rule == *rule) {
                println!(
                    "{:<26} {:<8} {:<6} {}",
                    c.id,
                    c.severity,
                    c.scope(),
                    c.title
                );
            }
        }
    }
}

/// The imgtest binary itself: QEMU runs it as the metadata relay, and the KVM proof runs
/// in it.
fn relay_program() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("imgtest"))
}

fn run(args: RunArgs) -> Result<Outcome, CliError> {
    crate::vm::process::install_signal_guard();
    if args.shell_on_failure && !std::io::stdin().is_terminal() {
        return Err("--shell-on-failure needs a terminal on stdin".into());
    }
    let live = Arc::new(Live::new(std::io::stderr().is_terminal()));
    let quiet = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let wanted = args.shell_on_failure;
    let mut request = args.request();
    if wanted {
        let (live, person) = (live.clone(), shell::person(quiet.clone()));
        request.shell_on_failure = Some(Person(Arc::new(move |access| {
            live.clear();
            (person.0)(access)
        })));
    }
    let plan = RunPlan::load(request, relay_program()).map_err(|e| e.to_string())?;
    let infos = run::check(&plan)
        .and_then(|i| run::prepare_artifacts(&plan).map(|()| i))
        .map_err(|e| with_hint(&e.to_string(), run_hint(&e)))?;
    let view = live.clone();
    let emit: run::Emit = Arc::new(move |e: Event| {
        // Nothing is drawn over a session the person is in.
        if !quiet.load(std::sync::atomic::Ordering::SeqCst) {
            view.event(&e)
        }
    });
    let accel = run::start_accel(&plan, accel_cache());
    let (reports, outcome) = run_images(&plan, &infos, &accel, &emit, &live);
    live.finish(&format!(
        "done: imgtest's own CPU {:.2}s (QEMU excluded)",
        own_cpu_secs()
    ));
    all_ok([
        write_named(&plan.json, || report::to_json(&reports)),
        write_named(&plan.junit, || report::to_junit(&reports)),
        write_named(&plan.html, || report::html::to_html(&reports)),
    ])?;
    Ok(outcome)
}

/// Where the KVM probe's answers are remembered: `$XDG_CACHE_HOME/imgtest`, else
/// `~/.cache/imgtest`.
fn accel_cache() -> Option<PathBuf> {
    crate::scratch::user_cache_dir("imgtest")
}

/// Tests each image in turn, printing each summary and saying what it could not judge;
/// the reports and their worst verdict (an image it could not test, or an interrupted
/// run, is unjudged).
fn run_images(
    plan: &RunPlan,
    infos: &[ImageInfo],
    accel: &Pending,
    emit: &run::Emit,
    live: &Live,
) -> (Vec<Report>, Outcome) {
    let mut reports = Vec::new();
    let mut outcome = Outcome::Success;
    for (image, info) in plan.images.iter().zip(infos) {
        match run::run_image(plan, image, info, accel, emit.clone()) {
            Ok(r) => {
                live.clear();
                print!("{}", report::render_summary(&r));
                match r.verdict {
                    Verdict::Pass => {}
                    Verdict::Fail => outcome = outcome.worst(Outcome::CheckFailed),
                    Verdict::Unjudged => {
                        for u in &r.unjudged {
                            eprintln!(
                                "imgtest: {}: could not judge {u} (--allow-unjudged passes it)",
                                r.image
                            );
                        }
                        outcome = Outcome::Unjudged;
                    }
                }
                reports.push(r);
            }
            Err(e) => {
                live.clear();
                eprintln!(
                    "imgtest: {}: {}",
                    image.display(),
                    with_hint(&e.to_string(), run_hint(&e))
                );
                outcome = Outcome::Unjudged;
            }
        }
        if crate::vm::process::interrupted() {
            outcome = Outcome::Unjudged;
            break;
        }
    }
    (reports, outcome)
}

/// What the user can do about a run error, naming the flag or command that helps.
fn run_hint(e: &RunError) -> Option<String> {
    Some(match e {
        RunError::Agent(_) => "pass --user NAME".into(),
        RunError::Vm(VmError::Spawn { .. }) => "is it installed? see `imgtest doctor`".into(),
        RunError::Memory(_) => "lower --boots or --memory".into(),
        RunError::Host(_) => "see `imgtest doctor`".into(),
        RunError::Output(e) => output_hint(e)?,
        RunError::NoOverlay => "drop --keep-overlay".into(),
        _ => return None,
    })
}

/// The flag that names an output the library refused.
fn output_hint(e: &OutputError) -> Option<String> {
    let what = match e {
        OutputError::IsInput { what, .. }
        | OutputError::Same { what, .. }
        | OutputError::Inside { what, .. }
        | OutputError::Foreign { what, .. }
        | OutputError::Unusable { what, .. } => *what,
    };
    let flag = match what {
        "the JSON report" => "--json FILE",
        "the JUnit report" => "--junit FILE",
        "the HTML report" => "--html FILE",
        "the artifacts directory" => "--artifacts DIR",
        _ => return None,
    };
    Some(format!("choose another {flag}"))
}

/// imgtest's own CPU time so far (user and system), QEMU excluded.
fn own_cpu_secs() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let cpu = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    cpu(usage.ru_utime) + cpu(usage.ru_stime)
}

/// Writes `text()` to `path` if one was named; the line saying why it could not.
fn write_named(path: &Option<PathBuf>, text: impl FnOnce() -> String) -> Result<(), String> {
    let Some(p) = path else { return Ok(()) };
    std::fs::write(p, text()).map_err(|e| format!("cannot write {}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_get_the_hint_that_helps() {
        let e = RunError::Agent(crate::cloudinit::NoDefaultUser);
        assert!(with_hint(&e.to_string(), run_hint(&e)).contains("pass --user NAME"));
        assert_eq!(run_hint(&RunError::Interrupted), None);
        let iso = RunError::NoOverlay;
        assert!(!iso.to_string().contains("--"), "{iso}");
        assert!(run_hint(&iso).unwrap().contains("--keep-overlay"));
    }

    #[test]
    fn the_checks_doc_table_is_the_catalogue() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/checks.md"))
            .expect("docs/checks.md");
        let table = checks::markdown_table();
        assert!(
            doc.contains(&table),
            "docs/checks.md's check table differs from the catalogue; replace it with the output \
             of `imgtest checks --markdown`:\n{table}"
        );
    }
}
