//! Views of a [`MatrixReport`]: the kernel × check table for humans, JSON (`serde_json` of
//! the model), JUnit (one testsuite per kernel, built by the run report's own
//! [`crate::report::junit_suite`]) and one HTML page (the same table, a timeline with one
//! lane per kernel, and each kernel's run as [`crate::report::html`] draws it). Nothing
//! here decides a verdict.

use std::fmt::Write as _;

use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};

use super::{KernelOutcome, KernelVerdict, MatrixReport, MatrixVerdict};
use crate::checks::{CATALOGUE, CheckId, Severity, Status};
use crate::named::Named;
use crate::report::html::{self, esc};
use crate::report::timeline::{self, Lane};

/// One table cell: the worst result of a check over a kernel's boots.
fn cell(k: &KernelOutcome, id: CheckId) -> &'static str {
    let Some(r) = &k.report else { return "-" };
    let mine: Vec<_> = r.checks.iter().filter(|c| c.id == id).collect();
    if mine.is_empty() {
        "-"
    } else if mine
        .iter()
        .any(|c| c.status == Status::Fail && c.severity == Severity::Error)
    {
        "FAIL"
    } else if mine.iter().any(|c| c.status == Status::Fail) {
        "WARN"
    } else if mine.iter().all(|c| c.status == Status::Skip) {
        "skip"
    } else {
        "pass"
    }
}

fn verdict_word(v: KernelVerdict) -> &'static str {
    match v {
        KernelVerdict::Pass => "PASS",
        KernelVerdict::Fail => "FAIL",
        KernelVerdict::Error => "ERROR",
    }
}

/// The check ids any kernel reported, in catalogue order.
fn check_ids(m: &MatrixReport) -> Vec<CheckId> {
    CATALOGUE
        .iter()
        .map(|c| c.id)
        .filter(|id| {
            m.kernels
                .iter()
                .filter_map(|k| k.report.as_ref())
                .any(|r| r.checks.iter().any(|c| c.id == *id))
        })
        .collect()
}

/// The human view: a check × kernel table, the verdict row, each failure with its
/// evidence, each kernel that could not be judged with the reason, and a summary line.
pub fn table(m: &MatrixReport) -> String {
    let mut s = String::new();
    let ids = check_ids(m);
    let first = ids.iter().map(|i| i.name().len()).max().unwrap_or(0).max(7);
    let widths: Vec<usize> = m.kernels.iter().map(|k| k.label().len().max(5)).collect();
    let row = |s: &mut String, head: &str, cells: Vec<&str>| {
        let mut line = format!("{head:<first$}");
        for (c, w) in cells.iter().zip(&widths) {
            let _ = write!(line, "  {c:<w$}");
        }
        let _ = writeln!(s, "{}", line.trim_end());
    };
    row(
        &mut s,
        "check",
        m.kernels.iter().map(|k| k.label()).collect(),
    );
    for id in &ids {
        row(
            &mut s,
            id.name(),
            m.kernels.iter().map(|k| cell(k, *id)).collect(),
        );
    }
    row(
        &mut s,
        "verdict",
        m.kernels.iter().map(|k| verdict_word(k.verdict)).collect(),
    );
    for k in &m.kernels {
        if let Some(e) = &k.error {
            let _ = writeln!(s, "ERROR {}: could not judge: {e}", k.label());
        }
        let Some(r) = &k.report else { continue };
        for c in r
            .checks
            .iter()
            .filter(|c| c.status == Status::Fail && c.severity == Severity::Error)
        {
            let boot = c.boot.map(|b| format!(" [boot {b}]")).unwrap_or_default();
            let _ = writeln!(s, "FAIL  {} {}{boot}: {}", k.label(), c.id, c.evidence);
        }
        if let Some(a) = r
            .artifacts
            .as_ref()
            .filter(|_| k.verdict != KernelVerdict::Pass)
        {
            let _ = writeln!(s, "      {} artifacts: {a}", k.label());
        }
    }
    let count = |v| m.kernels.iter().filter(|k| k.verdict == v).count();
    let shard = m
        .shard
        .map(|sh| format!(", shard {sh} of {} kernels", m.specs.len()))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "matrix {}: {} kernels ({} passed, {} failed, {} not judged{shard}) in {:.1}s",
        matrix_word(m.verdict()),
        m.kernels.len(),
        count(KernelVerdict::Pass),
        count(KernelVerdict::Fail),
        count(KernelVerdict::Error),
        m.duration_secs,
    );
    s
}

/// The JSON view.
pub fn to_json(m: &MatrixReport) -> String {
    serde_json::to_string_pretty(m).expect("the matrix model serialises")
}

/// The JUnit view: a testsuite `kernel VERSION` per kernel, a testcase per check (per
/// boot); a kernel that could not be judged has one errored testcase `imgtest.matrix`.
pub fn to_junit(m: &MatrixReport) -> String {
    let mut junit = quick_junit::Report::new("imgtest matrix");
    for k in &m.kernels {
        let name = format!("kernel {}", k.label());
        let suite = match &k.report {
            Some(r) => crate::report::junit_suite(name, r),
            None => {
                let mut suite = TestSuite::new(name);
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
                st.set_message(k.error.clone().unwrap_or_default());
                let mut tc = TestCase::new("imgtest.matrix", st);
                tc.set_classname("imgtest.matrix");
                suite.add_test_case(tc);
                suite
            }
        };
        junit.add_test_suite(suite);
    }
    junit.to_string().expect("JUnit serialises")
}

fn matrix_word(v: MatrixVerdict) -> &'static str {
    match v {
        MatrixVerdict::Pass => "PASS",
        MatrixVerdict::Fail => "FAIL",
        MatrixVerdict::Error => "ERROR",
    }
}

/// The HTML view: the verdict, the check × kernel table, one timeline lane per kernel (its
/// slowest boot, on one axis for all kernels) and each kernel's run.
pub fn to_html(m: &MatrixReport) -> String {
    let v = m.verdict();
    let class = match v {
        MatrixVerdict::Pass => "pass",
        MatrixVerdict::Fail => "fail",
        MatrixVerdict::Error => "unjudged",
    };
    let mut s = format!(
        "<header class=\"banner {class}\"><h1><span class=\"verdict\">{}</span> <span \
         class=\"image\">matrix of {}</span></h1><p>{}</p></header>",
        matrix_word(v),
        esc(&m.rootfs),
        esc(table(m).lines().last().unwrap_or_default())
    );
    html_table(&mut s, m);
    let lanes: Vec<Lane> = m
        .kernels
        .iter()
        .filter_map(|k| {
            let r = k.report.as_ref()?;
            let slowest = r.facts.boots.iter().max_by(|a, b| {
                a.end_secs
                    .unwrap_or(0.0)
                    .total_cmp(&b.end_secs.unwrap_or(0.0))
            })?;
            Some(Lane {
                label: format!("{} (boot {})", k.label(), slowest.index),
                href: Some(format!("#k{}", k.index)),
                boot: slowest,
            })
        })
        .collect();
    if !lanes.is_empty() {
        s.push_str("<h2>Timeline</h2><p class=\"note\">Each kernel's slowest boot, in seconds since its QEMU started.</p>");
        s.push_str(&timeline::svg(&lanes));
    }
    for k in &m.kernels {
        let _ = write!(s, "<h2 class=\"kernel\">kernel {}</h2>", esc(k.label()));
        match (&k.report, &k.error) {
            (Some(r), _) => s.push_str(&html::section(r, &format!("k{}", k.index))),
            (None, e) => {
                let _ = write!(
                    s,
                    "<p class=\"unjudged\" id=\"k{}\">could not judge: {}</p>",
                    k.index,
                    esc(e.as_deref().unwrap_or_default())
                );
            }
        }
    }
    html::page(
        &format!("imgtest matrix {}: {}", matrix_word(v), m.rootfs),
        &s,
    )
}

/// The check × kernel table, each cell coloured by its result.
fn html_table(s: &mut String, m: &MatrixReport) {
    s.push_str("<h2>Kernels</h2><table class=\"checks matrix\"><tr><th>check</th>");
    for k in &m.kernels {
        let _ = write!(
            s,
            "<th><a href=\"#k{}\">{}</a></th>",
            k.index,
            esc(k.label())
        );
    }
    s.push_str("</tr>");
    for id in check_ids(m) {
        let _ = write!(s, "<tr><td><code>{id}</code></td>");
        for k in &m.kernels {
            let c = cell(k, id);
            let _ = write!(s, "<td class=\"tag cell-{}\">{c}</td>", c.to_lowercase());
        }
        s.push_str("</tr>");
    }
    s.push_str("<tr><td>verdict</td>");
    for k in &m.kernels {
        let w = verdict_word(k.verdict);
        let _ = write!(s, "<td class=\"tag cell-{}\">{w}</td>", w.to_lowercase());
    }
    s.push_str("</tr></table>");
}
