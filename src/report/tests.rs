//! Snapshot tests of the reporters (insta): the human summary, JSON and JUnit views of one
//! hand-made report with a pass, a failure, a warning and skips.

use super::*;
use crate::checks::facts::*;
use crate::checks::{Selection, evaluate};
use crate::console::{ConsoleSummary, Phase};
use crate::metadata::Fault;
use crate::vm::Accel;
use std::time::Duration;

fn sample() -> Report {
    let boot = BootFacts {
        console: ConsoleSummary {
            phases: vec![
                (Phase::Firmware, 0.2),
                (Phase::Kernel, 2.5),
                (Phase::Userspace, 6.0),
                (Phase::Login, 7.5),
            ],
            tail: vec!["tiny login: ".into()],
            firstboot_lines: vec!["firstboot: done".into()],
            ..Default::default()
        },
        password_fetched: true,
        metadata_requests: 3,
        ssh_secs: Some(7.0),
        host_key_sha256: Some("00112233445566778899aabbccddeeff".into()),
        login: Login::Worked { after_secs: 9.25 },
        wrong_password_rejected: Some(true),
        probe: Some(ProbeFacts {
            kernel: "6.1.0-56-cloud-amd64".into(),
            firstboot_state: "done".into(),
            firstboot_hook: "disabled".into(),
            ..Default::default()
        }),
        shutdown: Shutdown::TimedOut {
            deadline_secs: 30.0,
        },
        ..BootFacts::new(0)
    };
    let facts = Facts {
        offline: Offline::Read(OfflineFacts {
            source: "ext2/3/4 root filesystem on MBR partition 1".into(),
            shadow_readable: true,
            dirty_logs: vec!["/var/log/wtmp (384 bytes)".into()],
            firstboot_program: true,
            firstboot_hooks: vec!["/etc/inittab".into()],
            ..Default::default()
        }),
        boots: vec![boot],
        fault: Fault::None,
        agent: None,
    };
    let checks = evaluate(&facts, &Selection::default());
    tcg_report(
        "tiny.img",
        checks,
        facts,
        31.5,
        Some("out/artifacts".into()),
    )
}

/// A report of a raw `image` judged under TCG with the default timeouts.
pub(crate) fn tcg_report(
    image: &str,
    checks: Vec<CheckResult>,
    facts: Facts,
    duration_secs: f64,
    artifacts: Option<String>,
) -> Report {
    Report {
        image: image.into(),
        format: "raw".into(),
        accel: AccelDecision {
            accel: Accel::Tcg,
            reason: "requested with --accel tcg".into(),
        },
        timeouts: Timeouts {
            boot: Duration::from_secs(240),
            login: Duration::from_secs(240),
            shutdown: Duration::from_secs(120),
            overall: Duration::from_secs(1200),
        },
        verdict: verdict(&checks),
        checks,
        facts,
        duration_secs,
        artifacts,
    }
}

#[test]
fn verdict_ignores_warnings_and_skips() {
    let r = sample();
    assert_eq!(r.verdict, Verdict::Fail);
    let mut only_warning = r.checks.clone();
    only_warning.retain(|c| c.id != "logs.clean");
    assert_eq!(verdict(&only_warning), Verdict::Pass);
}

#[test]
fn human_summary() {
    insta::assert_snapshot!(render_summary(&sample()));
}

#[test]
fn json_report() {
    let json = to_json(&[sample()]);
    let back: Vec<Report> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, [sample()]);
    insta::assert_snapshot!(json);
}

#[test]
fn junit_report() {
    insta::assert_snapshot!(to_junit(&[sample()]));
}

#[test]
fn live_event_lines() {
    let lines: Vec<String> = [
        Event::Accel(AccelDecision {
            accel: Accel::Tcg,
            reason: "KVM unusable: /dev/kvm: No such file".into(),
        }),
        Event::Image {
            image: "a.img".into(),
            format: "qcow2".into(),
        },
        Event::Boot {
            boot: 1,
            step: "kernel at 2.5s".into(),
        },
    ]
    .iter()
    .filter_map(render_event)
    .collect();
    insta::assert_snapshot!(lines.join("\n"));
}
