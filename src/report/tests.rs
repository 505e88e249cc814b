//! Snapshot tests of the reporters (insta): the human summary, JSON and JUnit views of one
//! hand-made report with a pass, a failure, a warning and skips.

use super::*;
use crate::checks::{CheckId, Selection, evaluate};
use crate::facts::*;

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
        ..BootFacts::new(0, Firmware::Uefi)
    };
    let facts = Facts {
        offline: Offline::Read(Box::new(OfflineFacts {
            source: "ext2/3/4 root filesystem on MBR partition 1".into(),
            shadow_readable: true,
            dirty_logs: vec!["/var/log/wtmp (384 bytes)".into()],
            firstboot_program: true,
            firstboot_hooks: vec!["/etc/inittab".into()],
            ..Default::default()
        })),
        boots: vec![boot],
        fault: Fault::None,
        agent: None,
        no_boot: None,
        firmware: Some(FirmwareFacts {
            firmwares: vec![Firmware::Uefi],
            secure_boot: false,
            reason: "the image offers uefi: EFI/BOOT/BOOTX64.EFI on the ESP (partition 3)".into(),
            support: BootSupport {
                bios: None,
                uefi: Some("EFI/BOOT/BOOTX64.EFI on the ESP (partition 3)".into()),
                missing: vec!["no boot code in sector 0".into()],
            },
        }),
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
        verdict: verdict(&checks, &[], false),
        checks,
        facts,
        duration_secs,
        offline_secs: 0.25,
        artifacts,
        unjudged: Vec::new(),
        files: Files::new(),
    }
}

#[test]
fn verdict_ignores_warnings_and_skips() {
    let r = sample();
    assert_eq!(r.verdict, Verdict::Fail);
    let mut only_warning = r.checks.clone();
    only_warning.retain(|c| c.id != CheckId::LogsClean);
    assert_eq!(verdict(&only_warning, &[], false), Verdict::Pass);
    // A rule no check could judge: not a pass, unless allowed; a failure still fails.
    let unjudged = ["rule 1 (leftovers): ...".to_string()];
    assert_eq!(verdict(&only_warning, &unjudged, false), Verdict::Unjudged);
    assert_eq!(verdict(&only_warning, &unjudged, true), Verdict::Pass);
    assert_eq!(verdict(&r.checks, &unjudged, false), Verdict::Fail);
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
            event: BootEvent::Phase {
                phase: Phase::Kernel,
                secs: 2.5,
            },
        },
    ]
    .iter()
    .filter_map(render_event)
    .collect();
    insta::assert_snapshot!(lines.join("\n"));
}

#[test]
fn every_boot_event_has_its_words() {
    let line = |event| render_event(&Event::Boot { boot: 0, event });
    let cases = [
        (
            BootEvent::Started {
                firmware: Firmware::Uefi,
                pid: 42,
                ssh_port: 40022,
            },
            "QEMU started under uefi (pid 42, ssh 127.0.0.1:40022)",
        ),
        (
            BootEvent::ConsoleFailure(ConsoleFailure {
                kind: FailureKind::KernelPanic,
                line: "Kernel panic".into(),
                cause: None,
            }),
            "console: kernel panic: Kernel panic",
        ),
        (
            BootEvent::ConsoleFailure(ConsoleFailure {
                kind: FailureKind::FirmwareShell,
                line: "BdsDxe: loading Boot0002 \"EFI Internal Shell\"".into(),
                cause: Some("BdsDxe: failed to load Boot0001: Not Found".into()),
            }),
            "console: firmware shell: BdsDxe: loading Boot0002 \"EFI Internal Shell\" \
             (after: BdsDxe: failed to load Boot0001: Not Found)",
        ),
        (
            BootEvent::Login(Login::Worked { after_secs: 9.25 }),
            "password login worked at 9.2s",
        ),
        (
            BootEvent::Login(Login::NoSsh {
                reason: "reset".into(),
            }),
            "no SSH server: reset",
        ),
        (
            BootEvent::CloudInitFinished { secs: None },
            "cloud-init did not finish before the deadline",
        ),
        (BootEvent::Probed { secs: 11.0 }, "probe done at 11.0s"),
        (
            BootEvent::WrongPasswordTried { secs: 12.5 },
            "wrong-password login tried at 12.5s",
        ),
        (
            BootEvent::PoweredOff { secs: 1.5 },
            "powered off 1.5s after system_powerdown",
        ),
    ];
    for (event, words) in cases {
        assert_eq!(line(event), Some(format!("boot 0: {words}")));
    }
    let not_tried = BootEvent::Login(Login::NotTried { reason: "x".into() });
    assert_eq!(line(not_tried), None);
}

#[test]
fn a_report_with_an_impossible_duration_is_refused_not_a_panic() {
    let json = to_json(&[sample()]).replace("\"boot\": 240.0", "\"boot\": -1.0");
    let e = serde_json::from_str::<Vec<Report>>(&json).unwrap_err();
    assert!(e.to_string().contains("-1 is not a duration"), "{e}");
}

#[test]
fn html_report_is_one_page_with_failures_first_and_links_into_the_console() {
    let mut r = sample();
    r.facts.boots[0].console.phase_lines = vec![(Phase::Firmware, 1), (Phase::Kernel, 2)];
    r.facts.boots[0].console.lines = 4;
    r.facts.boots[0].screenshots = vec![Screenshot {
        moment: ShotMoment::Userspace,
        secs: 6.0,
        file: "boot0-userspace.png".into(),
    }];
    r.files.insert(
        "boot0-console.log".into(),
        b"SeaBIOS\nLinux version 6.1 <x>\nfirstboot: done\ntiny login: \n".to_vec(),
    );
    r.files
        .insert("boot0-userspace.png".into(), b"\x89PNG\r\n\x1a\n".to_vec());
    let page = html::to_html(std::slice::from_ref(&r));
    assert!(page.starts_with("<!DOCTYPE html>") && page.ends_with("</html>\n"));
    // Self-contained: nothing fetched.
    let without_svg_ns = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for remote in ["http://", "https://", "<script", "<link", "src=\"/", "url("] {
        assert!(!without_svg_ns.contains(remote), "{remote}");
    }
    assert!(page.contains("<span class=\"verdict\">FAIL</span>"));
    // The failing rule comes before the passing ones, its failure first.
    let logs = page.find("<h3>rule 3: logs</h3>").unwrap();
    let boot = page.find("<h3>boot</h3>").unwrap();
    assert!(logs < boot, "the rule with a failure first");
    let row = &page[page.find("data-check=\"logs.clean\"").unwrap()..];
    assert!(row.contains("FAIL") && row.contains("/var/log/wtmp (384 bytes)"));
    // A boot check links to its line of the console; the lines are anchored.
    assert!(
        page.contains("href=\"#i0-b0-l3\">console line 3</a>"),
        "firstboot line"
    );
    assert!(page.contains("id=\"i0-b0-l3\""));
    assert!(page.contains("&lt;x&gt;"), "console text is escaped");
    assert!(page.contains("<span class=\"badge\">kernel 2.5s</span>"));
    assert!(page.contains("src=\"data:image/png;base64,iVBORw0KGgo=\""));
    assert!(page.contains("data-phase=\"userspace\"") && page.contains("data-mark=\"ssh\""));
}

/// A run whose only non-pass is a warning passes, and every view counts the warning as a
/// warning: the summary, the JSON, the JUnit (no failure) and the HTML header.
#[test]
fn every_view_counts_a_warning_as_a_warning() {
    let mut r = sample();
    r.checks.retain(|c| c.id != CheckId::LogsClean);
    r.verdict = verdict(&r.checks, &[], false);
    assert_eq!(r.verdict, Verdict::Pass);
    let counts = Counts::of(&r.checks);
    assert_eq!((counts.failed, counts.warnings), (0, 1), "{counts:?}");
    let words = counts.to_string();
    assert!(words.contains(" 0 failed, 1 warning, "), "{words}");

    let summary = render_summary(&r);
    let last = summary
        .lines()
        .find(|l| l.starts_with("tiny.img: "))
        .unwrap();
    assert!(
        last.starts_with(&format!("tiny.img: PASS ({words})")),
        "{last}"
    );

    let json: serde_json::Value = serde_json::from_str(&to_json(&[r.clone()])).unwrap();
    assert_eq!(json[0]["counts"]["warnings"], 1);
    assert_eq!(json[0]["counts"]["failed"], 0);
    assert_eq!(json[0]["counts"]["passed"], counts.passed);

    let junit = to_junit(std::slice::from_ref(&r));
    assert!(junit.contains("failures=\"0\""), "{junit}");
    assert!(
        junit.contains("<property name=\"warnings\" value=\"1\"/>"),
        "{junit}"
    );
    assert!(junit.contains("warning: "), "{junit}");

    let header = html::summary_fields(&r);
    let checks = &header.iter().find(|(k, _)| *k == "checks").unwrap().1;
    assert_eq!(checks, &words);
}
