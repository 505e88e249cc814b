//! Unit tests of the matrix's pure parts: spec order and shard slicing, job sizing,
//! merging shard reports, the table/JUnit views (insta) and bisection over fake oracles.

use super::bisect::{bisect, max_steps};
use super::merge::{MergeError, merge};
use super::*;
use crate::checks::{CheckId, CheckResult, Severity, Status};
use crate::facts::{Facts, Fault, Offline};
use crate::report::Verdict;

fn check(id: &str, boot: Option<usize>, status: Status, evidence: &str) -> CheckResult {
    CheckResult {
        id: id.parse::<CheckId>().unwrap(),
        boot,
        status,
        severity: Severity::Error,
        evidence: evidence.into(),
    }
}

fn report(version: &str, checks: Vec<CheckResult>) -> Report {
    let facts = Facts {
        offline: Offline::Unreadable {
            reason: "not read in this test".into(),
        },
        boots: Vec::new(),
        fault: Fault::None,
        agent: None,
        no_boot: None,
        firmware: None,
    };
    crate::report::tests::tcg_report(version, checks, facts, 42.0, None)
}

fn meta(version: &str) -> KernelMeta {
    KernelMeta {
        version: version.into(),
        package: format!("linux-image-{version}"),
        package_version: "6.1.0".into(),
        deb_sha256: "00".into(),
    }
}

fn outcome(index: usize, spec: &str, version: &str, pass: bool) -> KernelOutcome {
    let login = if pass {
        check(
            "metadata.password",
            Some(0),
            Status::Pass,
            "login worked after 12.0s",
        )
    } else {
        check(
            "metadata.password",
            Some(0),
            Status::Fail,
            "no SSH server: connection refused until the login deadline",
        )
    };
    let r = report(
        version,
        vec![
            check("boot.userspace", Some(0), Status::Pass, "userspace at 8.1s"),
            check("console.clean", Some(0), Status::Pass, "clean"),
            check("hostkeys.absent", None, Status::Pass, "none"),
            login,
            check(
                "hostkeys.unique",
                None,
                Status::Skip,
                "one boot: nothing to compare",
            ),
        ],
    );
    KernelOutcome {
        index,
        spec: spec.into(),
        kernel: Some(meta(version)),
        verdict: if r.verdict == Verdict::Pass {
            KernelVerdict::Pass
        } else {
            KernelVerdict::Fail
        },
        error: None,
        build_secs: 1.5,
        report: Some(r),
    }
}

fn sample() -> MatrixReport {
    let specs = vec![
        "6.1.0-54-cloud-amd64".to_string(),
        "linux-image-6.1.0-55-cloud-amd64".to_string(),
        "broken.deb".to_string(),
        "9.9.9-missing".to_string(),
    ];
    MatrixReport {
        rootfs: "tiny.ext4".into(),
        kernels: vec![
            outcome(0, &specs[0], "6.1.0-54-cloud-amd64", true),
            outcome(1, &specs[1], "6.1.0-55-cloud-amd64", true),
            outcome(2, &specs[2], "6.1.0-56-cloud-amd64", false),
            KernelOutcome {
                index: 3,
                spec: specs[3].clone(),
                kernel: None,
                verdict: KernelVerdict::Error,
                error: Some("kernel 9.9.9-missing: kernel 9.9.9-missing is not cached".into()),
                build_secs: 0.0,
                report: None,
            },
        ],
        specs,
        shard: None,
        duration_secs: 99.5,
    }
}

#[test]
fn shards_are_round_robin_over_the_sorted_index() {
    assert_eq!(Shard::from_str("1/3").unwrap().select(7), [0, 3, 6]);
    assert_eq!(Shard::from_str("2/3").unwrap().select(7), [1, 4]);
    assert_eq!(Shard::from_str("3/3").unwrap().select(7), [2, 5]);
    assert_eq!(
        Shard::from_str("4/4").unwrap().select(2),
        Vec::<usize>::new()
    );
    for bad in ["0/2", "3/2", "1", "a/b", "1/0", ""] {
        assert!(Shard::from_str(bad).is_err(), "{bad}");
    }
    assert_eq!(Shard::from_str(" 2 / 5").unwrap().to_string(), "2/5");
}

proptest::proptest! {
    #[test]
    fn shards_partition_the_matrix(n in 0usize..40, total in 1usize..9) {
        let mut all: Vec<usize> = (1..=total)
            .flat_map(|k| Shard { index: k, total }.select(n))
            .collect();
        all.sort();
        proptest::prop_assert_eq!(all, (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn bisect_finds_any_boundary_within_log2(n in 2usize..200, seed in 0usize..10_000) {
        let first_bad = 1 + seed % (n - 1);
        let mut tests = 0;
        let b = bisect(n, |i| { tests += 1; Ok::<_, ()>(i < first_bad) }, |_| {}).unwrap();
        proptest::prop_assert_eq!(b.first_bad, first_bad);
        proptest::prop_assert_eq!(b.last_good, first_bad - 1);
        proptest::prop_assert!(tests <= max_steps(n));
        proptest::prop_assert_eq!(b.steps.len(), tests);
    }
}

#[test]
fn specs_sort_by_version_and_dedup() {
    let given: Vec<String> = [
        "6.1.0-56-cloud-amd64",
        "6.1.0-9-cloud-amd64",
        "6.1.0-56-cloud-amd64",
        "a.deb",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        sorted_specs(&given),
        ["6.1.0-9-cloud-amd64", "6.1.0-56-cloud-amd64", "a.deb"]
    );
}

#[test]
fn specs_are_classified() {
    assert_eq!(
        KernelSpec::parse("k/linux.deb"),
        KernelSpec::Deb("k/linux.deb".into())
    );
    assert_eq!(
        KernelSpec::parse("linux-image-6.1.0-55-cloud-amd64"),
        KernelSpec::Package("linux-image-6.1.0-55-cloud-amd64".into())
    );
    assert_eq!(
        KernelSpec::parse("6.1.0-55-cloud-amd64"),
        KernelSpec::Cached("6.1.0-55-cloud-amd64".into())
    );
}

#[test]
fn jobs_fit_cpus_and_memory() {
    assert_eq!(default_jobs(2, 8000, 1, 544), 2);
    assert_eq!(default_jobs(8, 8000, 2, 544), 4);
    assert_eq!(default_jobs(8, 1200, 1, 544), 2);
    assert_eq!(default_jobs(1, 100, 2, 544), 1);
}

#[test]
fn a_bisection_list_goes_from_one_kernel_to_another() {
    let list =
        |s: &[&str]| bisect::check_list(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>());
    assert!(list(&["a", "b"]).is_ok() && list(&["a", "x", "b"]).is_ok());
    let e = list(&["a", "a"]).unwrap_err().to_string();
    assert!(e.starts_with("kernel a is named twice"), "{e}");
    assert!(list(&["a", "b", "a"]).is_err() && list(&["a"]).is_err());
}

#[test]
fn bisect_steps_and_bounds() {
    assert_eq!(
        [2, 3, 4, 5, 6, 9, 10, 17].map(max_steps),
        [0, 1, 2, 2, 3, 3, 4, 4]
    );
    // good, c1, c2(bad), bad: c1 then c2 are tested.
    let b = bisect(4, |i| Ok::<_, ()>(i < 2), |_| {}).unwrap();
    assert_eq!((b.first_bad, b.last_good), (2, 1));
    assert_eq!(
        b.steps
            .iter()
            .map(|s| (s.index, s.passed))
            .collect::<Vec<_>>(),
        [(1, true), (2, false)]
    );
    // An oracle that cannot judge stops the search.
    assert_eq!(bisect(8, |_| Err::<bool, _>("boom"), |_| {}), Err("boom"));
}

fn split(m: &MatrixReport, total: usize) -> Vec<MatrixReport> {
    (1..=total)
        .map(|index| {
            let shard = Shard { index, total };
            let keep = shard.select(m.specs.len());
            MatrixReport {
                shard: Some(shard),
                kernels: m
                    .kernels
                    .iter()
                    .filter(|k| keep.contains(&k.index))
                    .cloned()
                    .collect(),
                duration_secs: 10.0 * index as f64,
                ..m.clone()
            }
        })
        .collect()
}

#[test]
fn merging_shards_gives_the_unsharded_report() {
    let whole = sample();
    for total in 1..=5 {
        let mut parts = split(&whole, total);
        parts.reverse();
        let merged = merge(parts, &[]).unwrap();
        assert_eq!(
            MatrixReport {
                duration_secs: whole.duration_secs,
                ..merged.clone()
            },
            whole
        );
        assert_eq!(render::to_junit(&merged), render::to_junit(&whole));
        assert_eq!(merged.verdict(), MatrixVerdict::Error);
    }
}

#[test]
fn merge_refuses_durations_that_are_not_seconds() {
    let mut parts = split(&sample(), 2);
    parts[1].duration_secs = -3.0;
    assert_eq!(
        merge(parts.clone(), &["a.json".into(), "b.json".into()]),
        Err(MergeError::BadNumber(
            "b.json: duration_secs -3 is not a number of seconds".into()
        ))
    );
    parts[1].duration_secs = 1.0;
    parts[0].kernels[0].build_secs = f64::INFINITY;
    assert!(matches!(merge(parts, &[]), Err(MergeError::BadNumber(_))));
}

/// Numbers a damaged or crafted report may hold where a report has numbers.
const ODD_NUMBERS: &[&str] = &[
    "-1",
    "-0.5",
    "0",
    "1e308",
    "-1e308",
    "18446744073709551615",
    "-9223372036854775808",
    "4294967296",
    "1.5",
    "1e-320",
];

/// How many numbers `v` holds.
fn numbers(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Number(_) => 1,
        serde_json::Value::Array(a) => a.iter().map(numbers).sum(),
        serde_json::Value::Object(o) => o.values().map(numbers).sum(),
        _ => 0,
    }
}

/// Replaces the `n`-th number of `v` (depth first) with `with`; true once done.
fn replace_number(v: &mut serde_json::Value, n: &mut usize, with: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Number(_) if *n == 0 => {
            *v = with.clone();
            true
        }
        serde_json::Value::Number(_) => {
            *n -= 1;
            false
        }
        serde_json::Value::Array(a) => a.iter_mut().any(|x| replace_number(x, n, with)),
        serde_json::Value::Object(o) => o.values_mut().any(|x| replace_number(x, n, with)),
        _ => false,
    }
}

/// Parses `text` as a shard report and merges it with `other`, then renders the result
/// every way: an error or a report, never a panic.
fn merge_text(text: &str, other: &MatrixReport) {
    let Ok(part) = serde_json::from_str::<MatrixReport>(text) else {
        return;
    };
    match merge(
        vec![part, other.clone()],
        &["a.json".into(), "b.json".into()],
    ) {
        Ok(m) => {
            let _ = (
                render::table(&m),
                render::to_json(&m),
                render::to_junit(&m),
                m.verdict(),
            );
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

proptest::proptest! {
    #![proptest_config(crate::fuzz::config())]

    /// A shard report with damaged bytes: refused at parsing or merging with a clear
    /// error, or merged and rendered; never a panic.
    #[test]
    fn any_damaged_shard_report_is_refused_or_merged(
        text in crate::fuzz::mutated(render::to_json(&split(&sample(), 2)[0]).into_bytes())
    ) {
        let other = split(&sample(), 2).remove(1);
        crate::fuzz::within(move || merge_text(&String::from_utf8_lossy(&text), &other));
    }

    /// A shard report with an odd number anywhere it has a number.
    #[test]
    fn any_number_in_a_shard_report_is_refused_or_merged(
        n in 0usize..1000,
        odd in proptest::sample::select(ODD_NUMBERS),
    ) {
        let mut parts = split(&sample(), 2);
        let other = parts.remove(1);
        let mut v = serde_json::to_value(&parts[0]).unwrap();
        let mut at = n % numbers(&v);
        replace_number(&mut v, &mut at, &serde_json::from_str(odd).unwrap());
        let text = v.to_string();
        crate::fuzz::within(move || merge_text(&text, &other));
    }
}

#[test]
fn merge_refuses_missing_duplicate_and_foreign_parts() {
    let whole = sample();
    let parts = split(&whole, 3);
    assert_eq!(
        merge(parts[..2].to_vec(), &[]),
        Err(MergeError::Missing("broken.deb".into()))
    );
    assert_eq!(
        merge(vec![parts[0].clone(), parts[0].clone()], &[]).unwrap_err(),
        MergeError::Duplicate("6.1.0-54-cloud-amd64".into())
    );
    let mut foreign = parts[1].clone();
    foreign.specs.pop();
    let e = merge(
        vec![parts[0].clone(), foreign],
        &["a.json".into(), "b.json".into()],
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with("b.json is of another matrix"),
        "{e}"
    );
    assert_eq!(merge(Vec::new(), &[]), Err(MergeError::Empty));
}

#[test]
fn verdicts() {
    let mut m = sample();
    assert_eq!(m.verdict(), MatrixVerdict::Error);
    m.kernels.pop();
    assert_eq!(m.verdict(), MatrixVerdict::Fail);
    m.kernels.pop();
    assert_eq!(m.verdict(), MatrixVerdict::Pass);
}

#[test]
fn table_view() {
    insta::assert_snapshot!(render::table(&sample()));
    let mut shard = split(&sample(), 2).remove(0);
    shard.duration_secs = 12.0;
    insta::assert_snapshot!("table_shard", render::table(&shard));
}

#[test]
fn junit_view() {
    insta::assert_snapshot!(render::to_junit(&sample()));
}

#[test]
fn json_round_trips() {
    let m = sample();
    let back: MatrixReport = serde_json::from_str(&render::to_json(&m)).unwrap();
    assert_eq!(back, m);
}
