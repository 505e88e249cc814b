//! One result model ([`Report`]) and its views: the human summary, JSON (`serde_json` of
//! the model) and JUnit (one testcase per check per boot, derived from the model).
//! Live progress lines come from [`render_event`]; nothing here decides a verdict.

pub mod live;

use std::fmt::Write as _;

use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
use serde::{Deserialize, Serialize};

use crate::checks::facts::Facts;
use crate::checks::{CheckResult, Severity, Status};
use crate::run::Event;
use crate::run::plan::Timeouts;
use crate::vm::accel::AccelDecision;

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No error-severity check failed.
    Pass,
    /// At least one error-severity check failed.
    Fail,
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
    /// Where artifacts were kept, if anywhere.
    pub artifacts: Option<String>,
}

/// The verdict implied by `checks`.
pub fn verdict(checks: &[CheckResult]) -> Verdict {
    if checks
        .iter()
        .any(|c| c.status == Status::Fail && c.severity == Severity::Error)
    {
        Verdict::Fail
    } else {
        Verdict::Pass
    }
}

fn label(c: &CheckResult) -> String {
    match c.boot {
        Some(b) => format!("{} [boot {b}]", c.id),
        None => c.id.clone(),
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
        let _ = writeln!(s, "{tag}  {:<34} {}", label(c), c.evidence);
    }
    for b in &r.facts.boots {
        if r.verdict == Verdict::Fail && (b.console.failure.is_some() || !b.reached_userspace()) {
            let _ = writeln!(s, "console tail of boot {}:", b.index);
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
    let count = |st: Status| r.checks.iter().filter(|c| c.status == st).count();
    let _ = writeln!(
        s,
        "{}: {} ({} passed, {} failed, {} skipped) in {:.1}s under {}",
        r.image,
        match r.verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
        },
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Skip),
        r.duration_secs,
        r.accel.accel.name()
    );
    if let Some(a) = &r.artifacts {
        let _ = writeln!(s, "artifacts: {a}");
    }
    s
}

/// A live progress line for `e`, if it deserves one.
pub fn render_event(e: &Event) -> Option<String> {
    Some(match e {
        Event::Image { image, format } => format!("{image}: {format}"),
        Event::Accel(d) => format!("accelerator: {} ({})", d.accel.name(), d.reason),
        Event::Offline(what) => format!("offline: {what}"),
        Event::Boot { boot, step } => format!("boot {boot}: {step}"),
        Event::Check(_) => return None,
    })
}

/// The JSON report.
pub fn to_json(reports: &[Report]) -> String {
    serde_json::to_string_pretty(reports).expect("the report model serialises")
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
            Status::Fail => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(c.evidence.clone())
                    .set_type(match c.severity {
                        Severity::Error => "error",
                        Severity::Warning => "warning",
                    });
                st
            }
        };
        let mut tc = TestCase::new(label(c), status);
        tc.set_classname(c.id.clone());
        suite.add_test_case(tc);
    }
    suite
}

#[cfg(test)]
pub(crate) mod tests;
