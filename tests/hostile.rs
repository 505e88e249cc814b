//! A hostile guest is harmless and bounded: tiny server images whose last start script
//! (`images/tiny/hostile/`) attacks the runner's views (escape sequences, markup, a
//! megabyte line), floods its console, hammers the metadata service, never powers off or
//! reboots. Each run is judged right, keeps its bounds (excerpts, reports, console logs,
//! relays and threads), ends within its deadlines and leaves nothing behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::{Outcome, fsmaker, imgtest_run_watched, run_ok};

/// A disk of the tiny server whose system start ends with `images/tiny/hostile/NAME.sh`.
fn hostile_disk(dir: &Path, name: &str) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rootfs = dir.join(format!("{name}.ext4"));
    run_ok(
        Command::new(repo.join("images/tiny/build.sh"))
            .args(["--mode", "server", "--start"])
            .arg(repo.join(format!("images/tiny/hostile/{name}.sh")))
            .arg(&rootfs),
    );
    let img = dir.join(format!("{name}.img"));
    run_ok(fsmaker().arg(&rootfs).arg(&img));
    std::fs::remove_file(rootfs).unwrap();
    img
}

/// The bounds every view keeps, whatever the guest did (two boots).
const MAX_STDOUT: usize = 64 << 10;
const MAX_JSON: usize = 1 << 20;
const MAX_JUNIT: usize = 256 << 10;
const MAX_HTML: usize = 4 << 20;
/// An excerpt: 300 characters and its note; evidence: 2000 and its note; a path or key
/// the checks compare whole: 16 Ki characters and its note.
const MAX_EXCERPT: usize = 300 + 100;
const MAX_EVIDENCE: usize = 2000 + 100;
const MAX_VALUE: usize = (16 << 10) + 100;

/// Control characters a terminal acts on: C0 but newline and tab, DEL, C1.
fn controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| {
            (c.is_control() && c != '\n' && c != '\t') || ('\u{80}'..='\u{9f}').contains(&c)
        })
        .collect()
}

/// Every string in `v` with its JSON path.
fn strings<'a>(v: &'a serde_json::Value, path: String, out: &mut Vec<(String, &'a str)>) {
    match v {
        serde_json::Value::String(s) => out.push((path, s)),
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                strings(x, format!("{path}[{i}]"), out);
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                strings(x, format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// What holds for every hostile run: no guest control byte reached stdout or stderr, the
/// reports parse and stay within their bounds, every excerpt too, and no process of the
/// run is left.
fn assert_harmless(dir: &Path, o: &Outcome) {
    for (name, text) in [("stdout", &o.out), ("stderr", &o.err)] {
        let c = controls(text);
        assert!(c.is_empty(), "{name} has control characters {c:?}");
    }
    assert!(o.out.len() <= MAX_STDOUT, "stdout of {} bytes", o.out.len());
    assert!(o.report.is_array(), "the JSON report parses: {}", o.log());
    let json = std::fs::read(dir.join("report.json")).unwrap();
    assert!(
        json.len() <= MAX_JSON,
        "JSON report of {} bytes",
        json.len()
    );
    let mut all = Vec::new();
    strings(&o.report, String::new(), &mut all);
    for (path, s) in all {
        let n = s.chars().count();
        let bound = if path.ends_with(".evidence") {
            MAX_EVIDENCE
        } else if path.contains(".console.") || path.contains("firstboot_lines") {
            MAX_EXCERPT
        } else {
            MAX_VALUE
        };
        assert!(n <= bound, "{path} of {n} characters (bound {bound})");
    }
    let junit = std::fs::read_to_string(dir.join("r.xml")).unwrap();
    assert!(junit.len() <= MAX_JUNIT, "JUnit of {} bytes", junit.len());
    roxmltree::Document::parse(&junit).unwrap_or_else(|e| panic!("JUnit does not parse: {e}"));
    let html = std::fs::read_to_string(dir.join("r.html")).unwrap();
    assert!(html.len() <= MAX_HTML, "HTML of {} bytes", html.len());
    let tags: Vec<&str> = ["<script>alert", "]]><![CDATA[", "<script"]
        .into_iter()
        .filter(|t| html.contains(t))
        .collect();
    assert!(tags.is_empty(), "guest markup in the HTML: {tags:?}");
    assert_no_process_in(dir);
}

/// No process (QEMU, a relay) names a file in `dir`: the run left none behind.
fn assert_no_process_in(dir: &Path) {
    let dir = dir.to_string_lossy();
    let left: Vec<String> = processes()
        .into_iter()
        .filter(|(_, cmd)| cmd.contains(&*dir))
        .map(|(pid, cmd)| format!("{pid}: {cmd}"))
        .collect();
    assert!(left.is_empty(), "processes left: {left:?}");
}

/// Every process's id and command line.
fn processes() -> Vec<(u32, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            Some((pid, String::from_utf8_lossy(&cmd).replace('\0', " ")))
        })
        .collect()
}

/// `imgtest run` with every report.
fn run(dir: &Path, img: &Path, args: &[&str]) -> Outcome {
    run_watched(dir, img, args, |_| {})
}

/// [`run`], with `watch` called with imgtest's process id while it runs.
fn run_watched(dir: &Path, img: &Path, args: &[&str], watch: impl FnMut(u32)) -> Outcome {
    let (junit, html) = (dir.join("r.xml"), dir.join("r.html"));
    let mut all: Vec<&str> = vec![
        "--junit",
        junit.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    imgtest_run_watched(dir, &[img], &all, watch)
}

#[test]
fn escapes_markup_and_a_megabyte_line_fail_the_console_and_reach_no_view() {
    let d = tempfile::tempdir().unwrap();
    let img = hostile_disk(d.path(), "escapes");
    let o = run(d.path(), &img, &[]);
    assert_eq!(o.code, 1, "{}", o.log());
    // The line is a failure pattern, judged on each boot, and shown cut, saying where the
    // whole line is.
    assert_eq!(o.status("console.clean"), ["fail", "fail"], "{}", o.out);
    for (i, why) in o.evidence("console.clean").iter().enumerate() {
        assert!(why.starts_with("kernel panic: Kernel panic"), "{why}");
        assert!(
            why.contains(&format!(
                "more characters; whole: boot{i}-console.log line "
            )),
            "{why}"
        );
    }
    // Text the guest sent stays text; what a terminal would act on is gone.
    assert!(o.out.contains("</pre><script>"), "{}", o.out);
    assert!(!o.out.contains("OWNED-TITLE"), "{}", o.out);
    let html = std::fs::read_to_string(d.path().join("r.html")).unwrap();
    assert!(
        html.contains("&lt;/pre&gt;&lt;script&gt;"),
        "the line is in the HTML"
    );
    assert_harmless(d.path(), &o);
}

#[test]
fn a_console_flood_is_no_failure_and_its_log_stops_at_the_limit() {
    let d = tempfile::tempdir().unwrap();
    let img = hostile_disk(d.path(), "flood");
    let o = run(d.path(), &img, &["--console-log-limit", "64K"]);
    assert_eq!(o.code, 0, "{}", o.log());
    for i in 0..2 {
        let log = std::fs::read(d.path().join(format!("artifacts/boot{i}-console.log"))).unwrap();
        assert!(
            log.len() <= (64 << 10) + 200,
            "boot {i}: {} bytes",
            log.len()
        );
        let log = String::from_utf8_lossy(&log);
        assert!(
            log.contains("[imgtest: the console log stops here, at its limit of 64.0 KiB"),
            "boot {i}"
        );
        // The console was still read: every line counted past the cut.
        let lines = o.report[0]["facts"]["boots"][i]["console"]["lines"]
            .as_u64()
            .unwrap();
        assert!(
            lines as usize > log.lines().count(),
            "boot {i}: {lines} lines"
        );
    }
    assert_harmless(d.path(), &o);
}

#[test]
fn metadata_connections_are_capped_per_boot_and_bad_requests_bounded() {
    let d = tempfile::tempdir().unwrap();
    let img = hostile_disk(d.path(), "metadata");
    // Relays alive at once, relays alive for 2 s or more at once (held open, not
    // refused), imgtest's threads.
    let mut peak = (0, 0, 0);
    let mut first_seen = std::collections::HashMap::new();
    let sockets = d.path().to_string_lossy().into_owned();
    let o = run_watched(d.path(), &img, &[], |pid| {
        let now = Instant::now();
        let relays: Vec<u32> = processes()
            .into_iter()
            .filter(|(_, cmd)| cmd.contains("__relay") && cmd.contains(&sockets))
            .map(|(pid, _)| pid)
            .collect();
        let held = relays
            .iter()
            .filter(|p| {
                now.duration_since(*first_seen.entry(**p).or_insert(now))
                    .as_secs()
                    >= 2
            })
            .count();
        let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |t| t.count());
        peak = (
            peak.0.max(relays.len()),
            peak.1.max(held),
            peak.2.max(threads),
        );
    });
    eprintln!(
        "peak relays {} ({} held), peak imgtest threads {}",
        peak.0, peak.1, peak.2
    );
    // Both boots logged in with their own password, each holding at most its cap of 8.
    assert_eq!(o.code, 0, "{}", o.log());
    assert_eq!(o.status("metadata.password"), ["pass", "pass"], "{}", o.out);
    for b in o.report[0]["facts"]["boots"].as_array().unwrap() {
        assert!(
            b["metadata_refused"].as_u64().unwrap_or(0) > 0,
            "the guest held more than its cap: {b}"
        );
    }
    // QEMU starts a relay for every connection; one over the cap exits at once, so only
    // the cap's stay (the rest are the moment between QEMU's fork and the refusal).
    assert!(peak.1 <= 2 * 8, "relays held open at once: {}", peak.1);
    assert!(peak.0 <= 2 * 8 + 16, "relays alive at once: {}", peak.0);
    assert!(peak.2 <= 2 * 8 + 24, "peak imgtest threads {}", peak.2);
    // A path of 7000 characters is logged cut.
    let log = std::fs::read_to_string(d.path().join("artifacts/metadata-requests.jsonl")).unwrap();
    assert!(log.lines().all(|l| l.len() < 600), "{log}");
    assert!(log.contains("ppp[... 6701 more characters"), "{log}");
    assert_harmless(d.path(), &o);
}

#[test]
fn a_guest_that_never_powers_off_is_stopped_at_its_deadline() {
    let d = tempfile::tempdir().unwrap();
    let img = hostile_disk(d.path(), "no-poweroff");
    let t = Instant::now();
    let o = run(d.path(), &img, &["--timeout", "shutdown=5s"]);
    let took = t.elapsed();
    // Ignoring the power button is a warning, not a failure: the VM is stopped anyway.
    assert_eq!(o.code, 0, "{}", o.log());
    assert_eq!(o.report[0]["counts"]["warnings"], 1, "{}", o.out);
    let shutdown = o.status("shutdown.clean");
    assert!(
        shutdown.contains(&"fail".to_string()),
        "{shutdown:?}: {}",
        o.out
    );
    assert!(
        o.evidence("shutdown.clean")
            .iter()
            .any(|e| e.contains("still running 20s after")),
        "{}",
        o.out
    );
    assert!(took.as_secs() < 150, "took {took:?}");
    assert_harmless(d.path(), &o);
}

#[test]
fn a_guest_that_reboots_ends_its_boot_at_once() {
    let d = tempfile::tempdir().unwrap();
    let img = hostile_disk(d.path(), "reboot");
    let t = Instant::now();
    let o = run(d.path(), &img, &[]);
    let took = t.elapsed();
    assert_eq!(o.code, 1, "{}", o.log());
    for why in o.evidence("metadata.password") {
        assert!(why.contains("QEMU exited"), "{why}");
    }
    assert!(took.as_secs() < 120, "took {took:?}");
    assert_harmless(d.path(), &o);
}
