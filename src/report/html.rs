//! The HTML view of reports: one self-contained page a reviewer opens from a CI artifact
//! or `file://`. Inline CSS and SVG, screenshots as `data:` URIs, no script and nothing
//! fetched. Top: the verdict and what was tested; then the [timeline](super::timeline),
//! the checks grouped by rule (failures first, each boot check linked to its place in
//! that boot's console), and each boot: its facts, its screenshots (thumbnails that open
//! full size when clicked) and its console (redacted like the log it comes from), with
//! the phase boundaries and the failure line highlighted and anchored.
//!
//! It renders what the model has: the header and each boot's facts are lists of
//! (label, value) pairs ([`summary_fields`], [`boot_fields`]), so a new field of the
//! model is one more pair. The files a page embeds come from [`Report::files`]
//! ([`wanted_files`] names them, for a report read back from its artifacts).

use std::fmt::Write as _;

use super::timeline::{self, Lane};
use super::{Report, Verdict};
use crate::checks::{self, CheckId, CheckResult, Rule, Severity, Status};
use crate::facts::artifacts::BootFiles;
use crate::facts::excerpt::excerpt;
use crate::facts::{BootFacts, Login, Offline, Phase, Shutdown};
use crate::named::Named;

/// The page for one run's reports (one section per image).
pub fn to_html(reports: &[Report]) -> String {
    let title = match reports {
        [r] => format!("imgtest {}: {}", verdict_word(r.verdict), r.image),
        _ => format!("imgtest: {} images", reports.len()),
    };
    let mut body = String::new();
    if reports.len() > 1 {
        body.push_str("<nav class=\"images\"><ul>");
        for (i, r) in reports.iter().enumerate() {
            let _ = write!(
                body,
                "<li class=\"{}\"><a href=\"#i{i}\">{}</a> {}</li>",
                verdict_class(r.verdict),
                esc(&r.image),
                verdict_word(r.verdict)
            );
        }
        body.push_str("</ul></nav>");
    }
    for (i, r) in reports.iter().enumerate() {
        body.push_str(&section(r, &format!("i{i}")));
    }
    page(&title, &body)
}

/// A whole page around `body`, with the stylesheet.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>\n",
        esc(title)
    )
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// How the page names a verdict.
pub fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::Unjudged => "COULD NOT JUDGE",
    }
}

/// The CSS class of a verdict.
pub fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Unjudged => "unjudged",
    }
}

/// The files a page of `r` embeds: each boot's console log and screenshots.
pub fn wanted_files(r: &Report) -> Vec<String> {
    r.facts
        .boots
        .iter()
        .flat_map(|b| {
            std::iter::once(BootFiles(b.index).console_log())
                .chain(b.screenshots.iter().map(|s| s.file.clone()))
        })
        .collect()
}

/// One image's section; `id` prefixes every anchor in it.
pub fn section(r: &Report, id: &str) -> String {
    let mut s = format!("<section class=\"report\" id=\"{id}\">");
    banner(&mut s, r);
    if !r.facts.boots.is_empty() {
        s.push_str(
            "<h2>Timeline</h2><p class=\"note\">Seconds since each boot's QEMU started.</p>",
        );
        let lanes: Vec<Lane> = r
            .facts
            .boots
            .iter()
            .map(|b| Lane {
                label: format!("boot {} ({})", b.index, b.firmware),
                href: Some(format!("#{id}-b{}", b.index)),
                boot: b,
            })
            .collect();
        s.push_str(&timeline::svg(&lanes));
    }
    checks_by_rule(&mut s, r, id);
    for b in &r.facts.boots {
        boot_section(&mut s, r, b, id);
    }
    s.push_str("</section>");
    s
}

/// The header's facts, in order.
pub fn summary_fields(r: &Report) -> Vec<(&'static str, String)> {
    vec![
        ("format", r.format.clone()),
        ("firmware", firmware_words(r)),
        (
            "accelerator",
            format!("{} ({})", r.accel.accel.name(), r.accel.reason),
        ),
        ("time to verdict", format!("{:.1}s", r.duration_secs)),
        ("offline", format!("{:.1}s", r.offline_secs)),
        ("boots", r.facts.boots.len().to_string()),
        ("checks", super::Counts::of(&r.checks).to_string()),
        ("artifacts", r.artifacts.clone().unwrap_or_default()),
    ]
}

/// The firmwares the boots used, Secure Boot, and why (empty when nothing booted).
fn firmware_words(r: &Report) -> String {
    r.facts.firmware.as_ref().map_or_else(String::new, |f| {
        let names: Vec<&str> = f.firmwares.iter().map(|f| f.name()).collect();
        let secure = if f.secure_boot { ", Secure Boot" } else { "" };
        format!("{}{secure} ({})", names.join(", "), f.reason)
    })
}

fn banner(s: &mut String, r: &Report) {
    let _ = write!(
        s,
        "<header class=\"banner {}\"><h1><span class=\"verdict\">{}</span> <span \
         class=\"image\">{}</span></h1><dl class=\"fields\">",
        verdict_class(r.verdict),
        verdict_word(r.verdict),
        esc(&r.image)
    );
    for (k, v) in summary_fields(r).into_iter().filter(|(_, v)| !v.is_empty()) {
        let _ = write!(s, "<div><dt>{k}</dt><dd>{}</dd></div>", esc(&v));
    }
    s.push_str("</dl>");
    for u in &r.unjudged {
        let _ = write!(s, "<p class=\"unjudged\">could not judge {}</p>", esc(u));
    }
    if let Some(why) = &r.facts.no_boot {
        let _ = write!(s, "<p class=\"note\">{}</p>", esc(why));
    }
    if let Offline::Unreadable { reason } = &r.facts.offline {
        let _ = write!(
            s,
            "<p class=\"note\">offline: not readable ({})</p>",
            esc(reason)
        );
    }
    s.push_str("</header>");
}

/// How bad a result is, worst first: error failures, warnings, skips, passes.
fn rank(c: &CheckResult) -> u8 {
    match (c.status, c.severity) {
        (Status::Fail, Severity::Error) => 0,
        (Status::Fail, Severity::Warning) => 1,
        (Status::Skip, _) => 2,
        (Status::Pass, _) => 3,
    }
}

/// A result's tag and CSS class.
fn tag(c: &CheckResult) -> (&'static str, &'static str) {
    match rank(c) {
        0 => ("FAIL", "fail"),
        1 => ("WARN", "warn"),
        2 => ("SKIP", "skip"),
        _ => ("PASS", "pass"),
    }
}

/// The checks grouped by rule, the rules with failures first, failures first in each.
fn checks_by_rule(s: &mut String, r: &Report, id: &str) {
    s.push_str("<h2>Checks</h2>");
    let mut rules: Vec<(Rule, Vec<&CheckResult>)> = Rule::ALL
        .iter()
        .map(|&rule| {
            let mut mine: Vec<&CheckResult> = r
                .checks
                .iter()
                .filter(|c| checks::find(c.id).rule == rule)
                .collect();
            mine.sort_by_key(|c| rank(c));
            (rule, mine)
        })
        .filter(|(_, mine)| !mine.is_empty())
        .collect();
    rules.sort_by_key(|(_, mine)| mine.iter().map(|c| rank(c)).min());
    for (rule, mine) in rules {
        let number = rule
            .number()
            .map(|n| format!("rule {n}: "))
            .unwrap_or_default();
        let _ = write!(
            s,
            "<h3>{number}{rule}</h3><p class=\"note\">{}</p><table class=\"checks\">\
             <colgroup><col class=\"c-tag\"><col class=\"c-id\"><col class=\"c-boot\"><col>\
             <col class=\"c-link\"></colgroup>",
            esc(rule.help())
        );
        for c in mine {
            check_row(s, r, c, id);
        }
        s.push_str("</table>");
    }
}

fn check_row(s: &mut String, r: &Report, c: &CheckResult, id: &str) {
    let (word, class) = tag(c);
    let boot = c.boot.map(|b| format!("boot {b}")).unwrap_or_default();
    let link = c
        .boot
        .and_then(|b| r.facts.boots.iter().find(|f| f.index == b))
        .and_then(|b| console_line(r, c.id, b).map(|l| (b.index, l)))
        .map(|(b, l)| format!("<a href=\"#{id}-b{b}-l{l}\">console line {l}</a>"))
        .unwrap_or_default();
    let _ = write!(
        s,
        "<tr class=\"check {class}\" data-check=\"{0}\"><td class=\"tag\">{word}</td>\
         <td><code title=\"{1}\">{0}</code></td><td class=\"boot\">{boot}</td>\
         <td class=\"evidence\">{2}</td><td class=\"link\">{link}</td></tr>",
        c.id,
        esc(checks::find(c.id).title),
        esc(&c.evidence)
    );
}

/// The console line a boot check's evidence points at: the failure, the phase it is
/// about, the first-boot agent's first line, else the console's last line.
fn console_line(r: &Report, id: CheckId, b: &BootFacts) -> Option<usize> {
    let text = r.files.get(&BootFiles(b.index).console_log())?;
    let last = Some(b.console.lines).filter(|&n| n > 0);
    let rule = checks::find(id).rule;
    match id {
        CheckId::BootUserspace | CheckId::ConsoleClean if b.console.failure_line.is_some() => {
            b.console.failure_line
        }
        CheckId::BootUserspace => b.console.line_of(Phase::Userspace).or(last),
        _ if rule == Rule::FirstBoot => String::from_utf8_lossy(text)
            .lines()
            .position(|l| l.trim_start().starts_with("firstboot:"))
            .map(|i| i + 1)
            .or(last),
        _ => last,
    }
}

/// One boot's facts, in order.
pub fn boot_fields(b: &BootFacts) -> Vec<(&'static str, String)> {
    let secs = |t: Option<f64>| t.map(|t| format!("{t:.1}s")).unwrap_or_default();
    let login = match &b.login {
        Login::Worked { after_secs } => format!("password worked at {after_secs:.1}s"),
        Login::Refused { reason } => format!("refused: {reason}"),
        Login::NoSsh { reason } => format!("no SSH server: {reason}"),
        Login::NotTried { reason } => format!("not tried: {reason}"),
    };
    let shutdown = match &b.shutdown {
        Shutdown::Clean { secs } => format!("powered off {secs:.1}s after the power button"),
        Shutdown::TimedOut { deadline_secs } => {
            format!("still running {deadline_secs:.0}s after the power button")
        }
        Shutdown::NotDone { reason } => reason.clone(),
    };
    vec![
        ("SSH answered", secs(b.ssh_secs)),
        ("login", login),
        ("probe done", secs(b.probe_secs)),
        (
            "kernel",
            b.probe
                .as_ref()
                .map(|p| p.kernel.clone())
                .unwrap_or_default(),
        ),
        ("shutdown", shutdown),
        ("QEMU exit", b.qemu_exit.clone().unwrap_or_default()),
        (
            "stopped",
            b.stopped
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        ),
        ("metadata requests", b.metadata_requests.to_string()),
    ]
}

fn boot_section(s: &mut String, r: &Report, b: &BootFacts, id: &str) {
    let bid = format!("{id}-b{}", b.index);
    let _ = write!(
        s,
        "<section class=\"boot\" id=\"{bid}\"><h2>Boot {}</h2><dl class=\"fields\">",
        b.index
    );
    for (k, v) in boot_fields(b).into_iter().filter(|(_, v)| !v.is_empty()) {
        let _ = write!(s, "<div><dt>{k}</dt><dd>{}</dd></div>", esc(&v));
    }
    s.push_str("</dl>");
    screenshots(s, r, b);
    console(s, r, b, &bid);
    s.push_str("</section>");
}

/// The boot's screenshots as thumbnails; a click shows one full size.
fn screenshots(s: &mut String, r: &Report, b: &BootFacts) {
    if b.screenshots.is_empty() {
        return;
    }
    s.push_str("<h3>Screen</h3><div class=\"shots\">");
    for shot in &b.screenshots {
        let caption = format!("{} at {:.1}s: {}", shot.moment, shot.secs, shot.file);
        match r.files.get(&shot.file) {
            Some(png) => {
                let data = crate::encoding::base64(png);
                let _ = write!(
                    s,
                    "<figure class=\"shot\"><label><input type=\"checkbox\"><img \
                     src=\"data:image/png;base64,{data}\" alt=\"{0}\"></label>\
                     <figcaption>{0}</figcaption></figure>",
                    esc(&caption)
                );
            }
            None => {
                let _ = write!(s, "<p class=\"note\">{} (file not kept)</p>", esc(&caption));
            }
        }
    }
    s.push_str("</div>");
}

/// How many lines of a console's start and of its end the page shows (with the phase
/// and failure lines between them): a console of a million lines would make a page no
/// browser opens; the log file holds them all.
const CONSOLE_ENDS: usize = 1000;

/// The boot's console, each line anchored (`BID-lN`), phase lines and the failure line
/// marked; the tail from the model when the log itself is not at hand. At most
/// [`CONSOLE_ENDS`] lines of each end and the marked lines between, each an excerpt.
fn console(s: &mut String, r: &Report, b: &BootFacts, bid: &str) {
    s.push_str("<h3>Console</h3>");
    let Some(text) = r.files.get(&BootFiles(b.index).console_log()) else {
        let _ = write!(
            s,
            "<p class=\"note\">The console log was not kept; its last {} lines:</p><pre \
             class=\"console\">",
            b.console.tail.len()
        );
        for l in &b.console.tail {
            let _ = writeln!(s, "{}", esc(l));
        }
        s.push_str("</pre>");
        return;
    };
    let text = String::from_utf8_lossy(text);
    if text.is_empty() {
        s.push_str("<p class=\"note\">No serial output.</p>");
        return;
    }
    let name = BootFiles(b.index).console_log();
    let total = text.lines().count();
    let mut skipped = 0;
    s.push_str("<pre class=\"console\">");
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let phase = b
            .console
            .phase_lines
            .iter()
            .find(|&&(_, l)| l == n)
            .map(|&(p, _)| p);
        let failure = b.console.failure_line == Some(n);
        if n > CONSOLE_ENDS && n + CONSOLE_ENDS <= total && phase.is_none() && !failure {
            skipped += 1;
            continue;
        }
        if skipped > 0 {
            let _ = writeln!(
                s,
                "<span class=\"line\">[... {skipped} lines not shown; all are in {}]</span>",
                esc(&name)
            );
            skipped = 0;
        }
        let line = excerpt(line, Some(&format!("{name} line {n}")));
        let class = match (phase, failure) {
            (_, true) => " failure".to_string(),
            (Some(p), _) => format!(" phase phase-{}", p.name()),
            _ => String::new(),
        };
        let _ = write!(s, "<span class=\"line{class}\" id=\"{bid}-l{n}\">");
        if let Some(p) = phase {
            let at = b.console.reached(p).unwrap_or_default();
            let _ = write!(s, "<span class=\"badge\">{} {at:.1}s</span>", p.name());
        }
        if let (true, Some(f)) = (failure, &b.console.failure) {
            let _ = write!(s, "<span class=\"badge\">{}</span>", f.kind.words());
        }
        let _ = writeln!(
            s,
            "<a href=\"#{bid}-l{n}\" class=\"n\">{n}</a>{}</span>",
            esc(&line)
        );
    }
    s.push_str("</pre>");
}

const STYLE: &str = "\
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;\
max-width:1100px;padding:0 16px 40px;color:#1f2328;background:#fff}\
h1{font-size:1.5em;margin:.2em 0}h2{margin-top:1.6em;border-bottom:1px solid #d0d7de}\
h3{margin:1.2em 0 .2em}.note{color:#59636e;margin:.2em 0}code{font-size:.92em}\
.banner{border-radius:8px;padding:12px 18px;margin-top:16px;border:1px solid}\
.banner.pass{background:#dafbe1;border-color:#1a7f37}.banner.fail{background:#ffebe9;\
border-color:#cf222e}.banner.unjudged{background:#fff8c5;border-color:#9a6700}\
.verdict{font-weight:700}.pass .verdict,li.pass{color:#1a7f37}.fail .verdict,\
li.fail{color:#cf222e}.unjudged .verdict{color:#9a6700}\
dl.fields{display:flex;flex-wrap:wrap;gap:4px 24px;margin:.4em 0}dl.fields div{display:flex;\
gap:6px}dt{color:#59636e}dd{margin:0}.unjudged{font-weight:600}\
table.checks{border-collapse:collapse;width:100%;table-layout:fixed}.c-tag{width:4em}\
.c-id{width:14.5em}.c-boot{width:4.5em}.c-link{width:9em}table.matrix{table-layout:auto}table.checks td{border-top:1px solid \
#d0d7de;padding:4px 8px;vertical-align:top}td.tag{font-weight:700;width:3.5em}\
tr.fail td.tag{color:#cf222e}tr.warn td.tag{color:#9a6700}tr.skip td.tag{color:#59636e}\
tr.pass td.tag{color:#1a7f37}tr.fail{background:#fff5f5}td.boot,td.link{white-space:nowrap}\
td.evidence{word-break:break-word}\
svg.timeline{width:100%;height:auto;font-size:12px}.tick{stroke:#d8dee4}\
.tick-label{fill:#59636e;text-anchor:middle}.lane-label{text-anchor:end;fill:#1f2328}\
.lane-label.slowest{font-weight:700}.phase-label{fill:#fff;font-size:11px}\
.legend{fill:#59636e}.phase-firmware rect{fill:#8c959f}.phase-bootloader rect{fill:#bf8700}\
.phase-kernel rect{fill:#0969da}.phase-userspace rect{fill:#1a7f37}.phase-login rect{fill:#8250df}\
.mark path{stroke:#fff;stroke-width:1}.mark-ssh path{fill:#1f2328}.mark-password path{fill:#cf222e}\
.mark-probe path{fill:#bc4c00}.mark-power-off path{fill:#57606a}\
.shots{display:flex;flex-wrap:wrap;gap:12px}figure.shot{margin:0}figure.shot input{display:none}\
figure.shot img{width:240px;border:1px solid #d0d7de;cursor:zoom-in;display:block}\
figure.shot input:checked+img{width:auto;max-width:100%;cursor:zoom-out}\
figcaption{font-size:.85em;color:#59636e}\
pre.console{background:#0d1117;color:#e6edf3;padding:8px 0;overflow-x:auto;font-size:12.5px;\
line-height:1.35;border-radius:6px}pre.console .line{display:inline-block;width:100%;\
box-sizing:border-box;padding:0 10px}\
pre.console .n{display:inline-block;width:3.5em;color:#6e7781;text-decoration:none;\
user-select:none}pre.console .phase{background:#1c2d41}pre.console .failure{background:#5d1a1d}\
pre.console :target{outline:2px solid #d29922}.badge{float:right;font-size:11px;\
background:#30363d;color:#e6edf3;border-radius:4px;padding:0 6px;margin-left:8px}\
nav.images ul{padding-left:1.2em}.cell-fail,.cell-error{color:#cf222e}.cell-pass{color:#1a7f37}\
.cell-warn{color:#9a6700}.cell-skip,.cell--{color:#59636e}table.matrix th{text-align:left;\
padding:4px 8px}";
