//! `imgtest`: boot an image the way the platform will and check its first boot is safe.
//! Thin: parse flags, resolve a plan, call the library, render, map to an exit code.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use imgtest::checks::CATALOGUE;
use imgtest::exit;
use imgtest::report::live::Live;
use imgtest::report::{self, Report, Verdict};
use imgtest::run::plan::{DEFAULT_CONFIG, RunArgs, RunPlan};
use imgtest::run::{self, Event};
use imgtest::vm::accel;

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
    /// Internal: the metadata relay QEMU runs per guest connection.
    #[command(name = "__relay", hide = true)]
    Relay { addr: String, token: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Run(args) => run(*args),
        Cmd::Checks { json } => {
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
        Cmd::Config => {
            print!("{DEFAULT_CONFIG}");
            exit::SUCCESS
        }
        Cmd::Relay { addr, token } => {
            match imgtest::metadata::relay(&addr, &token, std::io::stdin(), std::io::stdout()) {
                Ok(()) => exit::SUCCESS,
                Err(_) => exit::ERROR,
            }
        }
    };
    ExitCode::from(code as u8)
}

fn run(args: RunArgs) -> i32 {
    imgtest::vm::process::install_signal_guard();
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
    let probe_dir = match tempfile::Builder::new().prefix("imgtest-accel-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("imgtest: temp dir: {e}");
            return exit::ERROR;
        }
    };
    let kernel = plan
        .direct_kernel
        .as_ref()
        .map(|k| k.kernel.clone())
        .or_else(accel::probe_kernel);
    let decision = if plan.selection.needs_boot() {
        accel::decide(plan.accel, &plan.qemu, probe_dir.path(), kernel.as_deref())
    } else {
        accel::decide(accel::AccelChoice::Tcg, &plan.qemu, probe_dir.path(), None)
    };
    drop(probe_dir);
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
        if imgtest::vm::process::interrupted() {
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
