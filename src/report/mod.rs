//! One result model ([`Report`]), the [`Event`]s a run emits while it builds one, and
//! their views: the human summary, JSON (`serde_json` of the model), JUnit (one testcase
//! per check per boot, derived from the model) and one progress line per event
//! ([`render_event`]) and one self-contained HTML page ([`html`], with the boot
//! [`timeline`] as SVG). Views return text; nothing here prints or decides a verdict.

mod event;
pub mod html;
pub mod timeline;

use std::fmt::Write as _;
use std::time::Duration;

use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
use serde::{Deserialize, Serialize};

use crate::checks::{CheckResult, Severity, Status};
use crate::facts::{AccelDecision, Facts};
use crate::named::Named;

pub use event::{BootEvent, Event, boot_line, render_event};

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No error-severity check failed.
    Pass,
    /// At least one error-severity check failed.
    Fail,
    /// Nothing failed, but a rule could not be judged (see [`Report::unjudged`]).
    Unjudged,
}

/// Per-phase deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// VM start until userspace.
    #[serde(with = "secs")]
    pub boot: Duration,
    /// Userspace until the password works.
    #[serde(with = "secs")]
    pub login: Duration,
    /// Power button until QEMU exits.
    #[serde(with = "secs")]
    pub shutdown: Duration,
    /// One image's whole run.
    #[serde(with = "secs")]
    pub overall: Duration,
}

/// Durations in reports are numbers of seconds, for the programs that read them
/// (configuration files spell them for people, `"60s"`, with `humantime-serde`).
mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs)
            .map_err(|_| serde::de::Error::custom(format!("{secs} is not a duration in seconds")))
    }
}

/// Everything one image's run established.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The image path as given.
    pub image: String,
    /// Its format.
    pub format: String,
    /// The accelerator and why.
    pub accel: AccelDecision,
    /// Effective timeouts (after TCG scaling).
    pub timeouts: Timeouts,
    /// The verdict.
    pub verdict: Verdict,
    /// Check results.
    pub checks: Vec<CheckResult>,
    /// The facts the checks judged.
    pub facts: Facts,
    /// Wall time of the run in seconds.
    pub duration_secs: f64,
    /// Seconds spent on the image before any boot: recognising it and reading its offline
    /// facts.
    #[serde(default)]
    pub offline_secs: f64,
    /// Where artifacts were kept, if anywhere.
    pub artifacts: Option<String>,
    /// What could not be judged: a rule none of whose checks could judge, or every check
    /// skipped. Unless allowed, this makes the verdict [`Verdict::Unjudged`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unjudged: Vec<String>,
    /// The files the run made (console logs, QEMU's stderr, screenshots), by name, as
    /// long as this value lives: the HTML view embeds them. Not in the JSON, which names
    /// them; `--artifacts` keeps them, and a report read back finds them there.
    #[serde(skip)]
    pub files: Files,
}

/// How the checks of a report came out. A failed warning-severity check is a warning,
/// not a failure: only failures fail the image. Every view (summary, JSON, JUnit, HTML)
/// counts with this.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Checks that passed.
    pub passed: usize,
    /// Error-severity checks that failed.
    pub failed: usize,
    /// Warning-severity checks that failed.
    pub warnings: usize,
    /// Checks that could not run.
    pub skipped: usize,
}

impl Counts {
    /// The counts of `checks`.
    pub fn of(checks: &[CheckResult]) -> Counts {
        let mut n = Counts::default();
        for c in checks {
            match (c.status, c.severity) {
                (Status::Pass, _) => n.passed += 1,
                (Status::Fail, Severity::Error) => n.failed += 1,
                (Status::Fail, Severity::Warning) => n.warnings += 1,
                (Status::Skip, _) => n.skipped += 1,
            }
        }
        n
    }
}

impl std::fmt::Display for Counts {
    /// `38 passed, 1 failed, 2 warnings, 5 skipped`, naming warnings only when there are.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)?;
        match self.warnings {
            0 => {}
            1 => write!(f, ", 1 warning")?,
            n => write!(f, ", {n} warnings")?,
        }
        write!(f, ", {} skipped", self.skipped)
    }
}

/// A run's files by name (`boot0-console.log`, `boot0-deadline.png`).
pub type Files = std::collections::BTreeMap<String, Vec<u8>>;

/// The verdict implied by `checks`: a failure fails; otherwise an unjudged rule (unless
/// `allow_unjudged`) leaves the image unjudged; otherwise it passes.
pub fn verdict(checks: &[CheckResult], unjudged: &[String], allow_unjudged: bool) -> Verdict {
    if checks
        .iter()
        .any(|c| c.status == Status::Fail && c.severity == Severity::Error)
    {
        Verdict::Fail
    } else if !unjudged.is_empty() && !allow_unjudged {
        Verdict::Unjudged
    } else {
        Verdict::Pass
    }
}

/// A result's name: its check, and for a per-boot check the boot and its firmware
/// (`boot.userspace [boot 1, uefi]`).
fn label(c: &CheckResult, r: &Report) -> String {
    match c.boot {
        Some(b) => match r.facts.boots.iter().find(|f| f.index == b) {
            Some(f) => format!("{} [boot {b}, {}]", c.id, f.firmware),
            None => format!("{} [boot {b}]", c.id),
        },
        None => c.id.to_string(),
    }
}

/// The human summary printed at the end of a run.
pub fn render_summary(r: &Report) -> String {
    let mut s = String::new();
    for c in &r.checks {
        let tag = match (c.status, c.severity) {
            (Status::Pass, _) => "PASS",
            (Status::Fail, Severity::Error) => "FAIL",
            (Status::Fail, Severity::Warning) => "WARN",
            (Status::Skip, _) => "SKIP",
        };
        let _ = writeln!(s, "{tag}  {:<40} {}", label(c, r), c.evidence);
    }
    for b in &r.facts.boots {
        if r.verdict == Verdict::Fail && (b.console.failure.is_some() || !b.reached_userspace()) {
            let _ = writeln!(s, "console tail of boot {} ({}):", b.index, b.firmware);
            let lines: Vec<&String> = b
                .console
                .tail
                .iter()
                .filter(|l| !l.trim().is_empty())
                .collect();
            for l in &lines[lines.len().saturating_sub(10)..] {
                let _ = writeln!(s, "  | {l}");
            }
        }
    }
    let _ = writeln!(
        s,
        "{}: {} ({}) in {:.1}s under {}",
        r.image,
        match r.verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Unjudged => "COULD NOT JUDGE",
        },
        Counts::of(&r.checks),
        r.duration_secs,
        r.accel.accel.name()
    );
    for u in &r.unjudged {
        let _ = writeln!(s, "could not judge {u}");
    }
    if let Some(a) = &r.artifacts {
        let _ = writeln!(s, "artifacts: {a}");
    }
    s
}

/// The JSON report: each report with its [`Counts`] (read back, they are derived again).
pub fn to_json(reports: &[Report]) -> String {
    #[derive(Serialize)]
    struct Counted<'a> {
        #[serde(flatten)]
        report: &'a Report,
        counts: Counts,
    }
    let counted: Vec<Counted> = reports
        .iter()
        .map(|report| Counted {
            report,
            counts: Counts::of(&report.checks),
        })
        .collect();
    serde_json::to_string_pretty(&counted).expect("the report model serialises")
}

/// The JUnit report: a suite per image, a testcase per check (per boot).
pub fn to_junit(reports: &[Report]) -> String {
    let mut junit = quick_junit::Report::new("imgtest");
    for r in reports {
        junit.add_test_suite(junit_suite(r.image.clone(), r));
    }
    junit.to_string().expect("JUnit serialises")
}

/// One image's JUnit testsuite named `name`: a testcase per check (per boot).
pub fn junit_suite(name: String, r: &Report) -> TestSuite {
    let mut suite = TestSuite::new(name);
    for c in &r.checks {
        let status = match c.status {
            Status::Pass => TestCaseStatus::success(),
            Status::Skip => {
                let mut st = TestCaseStatus::skipped();
                st.set_message(c.evidence.clone());
                st
            }
            Status::Fail if c.severity == Severity::Warning => TestCaseStatus::success(),
            Status::Fail => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(c.evidence.clone()).set_type("error");
                st
            }
        };
        let mut tc = TestCase::new(label(c, r), status);
        if c.status == Status::Fail && c.severity == Severity::Warning {
            // JUnit has no warnings: a passing testcase that says so in its output, and
            // the suite's `warnings` property counts them, as the summary does.
            tc.set_system_out(format!("warning: {}", c.evidence));
        }
        tc.set_classname(c.id.name());
        suite.add_test_case(tc);
    }
    let counts = Counts::of(&r.checks);
    suite.add_property(quick_junit::Property::new(
        "warnings",
        counts.warnings.to_string(),
    ));
    suite
}

#[cfg(test)]
pub(crate) mod tests;
