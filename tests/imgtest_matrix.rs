//! `imgtest matrix`, `imgtest report merge` and `imgtest bisect` end to end: real Debian
//! cloud kernels (6.1.0-53 .. -56 from the Debian archive) on the tiny server rootfs,
//! booted under TCG with one boot each. A "broken" kernel is a real Debian kernel package
//! repacked without `virtio_net.ko`: it boots, but the guest has no network, so the
//! first-boot password never arrives and SSH never answers — a real boot-time failure.
//!
//! Each test uses its own kernel cache (a temp dir), so the repacked kernels never meet
//! the real ones of the same version.

#[path = "support/browser.rs"]
mod browser;
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{assets_dir, lock, run_ok};
use serde_json::Value;

fn debs_dir() -> PathBuf {
    let d = assets_dir().join("kernel-debs");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The real Debian package `linux-image-6.1.0-<abi>-cloud-amd64`, downloaded once.
fn kernel_deb(abi: u32) -> PathBuf {
    let name = format!("linux-image-6.1.0-{abi}-cloud-amd64");
    let _l = lock("kernel-debs");
    let find = || {
        std::fs::read_dir(debs_dir())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("{name}_"))
            })
    };
    if let Some(p) = find() {
        return p;
    }
    run_ok(
        Command::new("apt-get")
            .args(["download", "-q", &name])
            .current_dir(debs_dir()),
    );
    find().expect("apt-get download left a .deb")
}

/// `kernel_deb(abi)` repacked (rootless) without the virtio network driver.
fn broken_deb(abi: u32) -> PathBuf {
    let out = debs_dir().join(format!("broken-net-6.1.0-{abi}.deb"));
    let src = kernel_deb(abi);
    let _l = lock("kernel-debs");
    if out.is_file() {
        return out;
    }
    let tree = tempfile::tempdir_in(assets_dir()).unwrap();
    let root = tree.path().join("pkg");
    run_ok(Command::new("dpkg-deb").arg("-R").arg(&src).arg(&root));
    let ko = root.join(format!(
        "lib/modules/6.1.0-{abi}-cloud-amd64/kernel/drivers/net/virtio_net.ko"
    ));
    std::fs::remove_file(&ko).unwrap_or_else(|e| panic!("{}: {e}", ko.display()));
    let control = root.join("DEBIAN/control");
    let text = std::fs::read_to_string(&control).unwrap();
    let text = text.replace(
        &format!("Package: linux-image-6.1.0-{abi}-cloud-amd64\n"),
        &format!("Package: linux-image-6.1.0-{abi}-cloud-amd64-no-virtio-net\n"),
    );
    std::fs::write(&control, text).unwrap();
    let _ = std::fs::remove_file(root.join("DEBIAN/md5sums"));
    let tmp = out.with_extension("deb.tmp");
    run_ok(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Znone", "-b"])
            .arg(&root)
            .arg(&tmp),
    );
    std::fs::rename(&tmp, &out).unwrap();
    out
}

struct Run {
    code: i32,
    out: String,
    err: String,
}

/// `imgtest ARGS` with its kernel cache in `cache` and temp files in `dir`; checks that
/// no temp file is left behind. It runs in `dir/cwd`: a failed kernel's artifacts go to
/// `./imgtest-artifacts` when no `--artifacts` is given, and not into the checkout.
fn imgtest(dir: &Path, cache: &Path, args: &[&str]) -> Run {
    let cwd = dir.join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let o: Output = Command::new(env!("CARGO_BIN_EXE_imgtest"))
        .args(args)
        .current_dir(&cwd)
        .env("FSMAKER_CACHE", cache)
        .env("TMPDIR", dir)
        .output()
        .unwrap();
    common::assert_no_temp_left(dir);
    Run {
        code: o.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Options for every test run: one small TCG boot, login deadline short enough that a
/// guest without network fails in about a minute and a half.
const RUN: &[&str] = &[
    "--accel",
    "tcg",
    "-m",
    "256",
    "--boots",
    "1",
    "--timeout",
    "login=20s",
    "--skip",
    "shutdown.clean",
];

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// The parts of a matrix report that do not depend on timing: per kernel its index,
/// spec, version, verdict and each check's (id, boot, status).
fn essence(m: &Value) -> Vec<String> {
    m["kernels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let checks: Vec<String> = k["report"]["checks"]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .map(|c| format!("{}/{}={}", c["id"], c["boot"], c["status"]))
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "{} {} {} {} {}",
                k["index"],
                k["spec"],
                k["kernel"]["version"],
                k["verdict"],
                checks.join(",")
            )
        })
        .collect()
}

fn suites(junit: &str) -> Vec<String> {
    junit
        .lines()
        .filter(|l| l.trim_start().starts_with("<testsuite "))
        .map(|l| {
            let name = l
                .split("name=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            let failures = l
                .split("failures=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            format!("{name} failures={failures}")
        })
        .collect()
}

#[test]
fn matrix_flags_the_broken_kernel_and_shards_merge_to_the_same_result() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let rootfs = common::tiny_server_rootfs();
    let k54 = kernel_deb(54).display().to_string();
    let broken = broken_deb(56).display().to_string();
    let k55 = "linux-image-6.1.0-55-cloud-amd64";
    let (u_json, u_junit, arts) = (
        d.path().join("u.json"),
        d.path().join("u.xml"),
        d.path().join("artifacts"),
    );
    let mut args: Vec<&str> = vec!["matrix", rootfs.to_str().unwrap()];
    args.extend(["--kernel", k55, "--kernel", &k54, "--kernel", &broken]);
    args.extend(["--jobs", "2"]);
    args.extend(RUN);
    let mut whole = args.clone();
    whole.extend(["--json", u_json.to_str().unwrap()]);
    whole.extend(["--junit", u_junit.to_str().unwrap()]);
    whole.extend(["--artifacts", arts.to_str().unwrap()]);
    let page = d.path().join("matrix.html");
    whole.extend(["--html", page.to_str().unwrap()]);
    let r = {
        let _vm = lock("vm");
        imgtest(d.path(), &cache, &whole)
    };
    assert_eq!(r.code, 1, "{}\n{}", r.out, r.err);
    let u = json(&u_json);
    assert_the_broken_kernel_alone_fails(&u, &r, &arts, &u_junit);
    matrix_page_in_a_browser(&page);
    assert_shards_merge_to(&u, &args, d.path(), &cache, &u_junit);
}

/// The unsharded matrix: its JSON, JUnit, artifacts and table show the broken kernel, and
/// only it, failing `metadata.password`.
fn assert_the_broken_kernel_alone_fails(u: &Value, r: &Run, arts: &Path, u_junit: &Path) {
    // Sorted specs: the two .deb paths (broken-net-..., linux-image-...-54...), then 55.
    let verdicts: Vec<(String, String)> = u["kernels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kernel"]["version"].as_str().unwrap().to_string(),
                k["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("6.1.0-56-cloud-amd64".to_string(), "fail".to_string()),
            ("6.1.0-54-cloud-amd64".to_string(), "pass".to_string()),
            ("6.1.0-55-cloud-amd64".to_string(), "pass".to_string()),
        ],
        "{}\n{}",
        r.out,
        r.err
    );
    for k in u["kernels"].as_array().unwrap() {
        let version = k["kernel"]["version"].as_str().unwrap();
        let probe = &k["report"]["facts"]["boots"][0]["probe"];
        if k["verdict"] == "pass" {
            // The guest really ran that kernel.
            assert_eq!(probe["kernel"], version, "{k}");
        } else {
            assert!(probe.is_null(), "no login, no probe: {probe}");
            let failed: Vec<&str> = k["report"]["checks"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["status"] == "fail")
                .map(|c| c["id"].as_str().unwrap())
                .collect();
            assert_eq!(failed, ["metadata.password"], "{}", r.out);
        }
        assert!(
            arts.join(version).join("report.json").is_file(),
            "artifacts of {version}"
        );
    }
    assert_eq!(
        suites(&std::fs::read_to_string(u_junit).unwrap()),
        [
            "kernel 6.1.0-56-cloud-amd64 failures=1",
            "kernel 6.1.0-54-cloud-amd64 failures=0",
            "kernel 6.1.0-55-cloud-amd64 failures=0",
        ]
    );
    let table = r.out.lines().find(|l| l.starts_with("check")).unwrap();
    assert!(table.contains("6.1.0-56-cloud-amd64  6.1.0-54-cloud-amd64  6.1.0-55-cloud-amd64"));
    assert!(
        r.out
            .contains("FAIL  6.1.0-56-cloud-amd64 metadata.password [boot 0]"),
        "{}",
        r.out
    );
    assert!(
        r.out
            .contains("matrix FAIL: 3 kernels (2 passed, 1 failed, 0 not judged)")
    );
}

/// The matrix's HTML page as a browser shows it: the verdict, the kernel table with the
/// broken kernel's failure, one timeline lane per kernel on one axis, and each kernel's
/// run as `imgtest run` draws it (its own timeline with its boot's lane).
fn matrix_page_in_a_browser(page: &Path) {
    let dom = browser::dom(page);
    assert!(dom.contains("<span class=\"verdict\">FAIL</span>"), "{dom}");
    let timelines: Vec<&str> = dom
        .split("<svg class=\"timeline\"")
        .skip(1)
        .map(|t| &t[..t.find("</svg>").unwrap()])
        .collect();
    let lanes = |svg: &str| -> Vec<String> {
        svg.split("class=\"lane-label")
            .skip(1)
            .map(|l| {
                l[l.find('>').unwrap() + 1..l.find("</text>").unwrap()].replace(" (slowest)", "")
            })
            .collect()
    };
    assert_eq!(timelines.len(), 4, "the matrix's and each kernel's: {dom}");
    assert_eq!(
        lanes(timelines[0]),
        [
            "6.1.0-56-cloud-amd64 (boot 0)",
            "6.1.0-54-cloud-amd64 (boot 0)",
            "6.1.0-55-cloud-amd64 (boot 0)",
        ]
    );
    assert_eq!(
        timelines[0].matches("(slowest)</text>").count(),
        1,
        "one lane held the verdict back"
    );
    for t in &timelines[1..] {
        assert_eq!(lanes(t), ["boot 0 (bios)"], "a kernel's own run");
    }
    let row = browser::row(&dom, "<tr><td><code>metadata.password</code>");
    assert_eq!(row.matches("cell-fail").count(), 1, "{row}");
    assert_eq!(row.matches("cell-pass").count(), 2, "{row}");
    // Each kernel's run, with its boot's console.
    for k in 0..3 {
        assert!(dom.contains(&format!("id=\"k{k}-b0\"")), "kernel {k}");
    }
}

/// Shard 2/3 for real (the 6.1.0-54 .deb, now cached), shards 1/3 and 3/3 cut from the
/// unsharded report `u`: merging them gives the unsharded result, and a missing shard is
/// refused.
fn assert_shards_merge_to(u: &Value, args: &[&str], dir: &Path, cache: &Path, u_junit: &Path) {
    let s2 = dir.join("s2.json");
    let mut shard = args.to_vec();
    shard.extend(["--shard", "2/3", "--json", s2.to_str().unwrap()]);
    let r2 = {
        let _vm = lock("vm");
        imgtest(dir, cache, &shard)
    };
    assert_eq!(r2.code, 0, "{}\n{}", r2.out, r2.err);
    assert!(r2.out.contains("shard 2/3 of 3 kernels"), "{}", r2.out);
    let mut parts = vec![];
    for (k, idx) in [(1, 0usize), (3, 2)] {
        let mut part = u.clone();
        part["shard"] = serde_json::json!({"index": k, "total": 3});
        part["kernels"] = Value::Array(vec![u["kernels"][idx].clone()]);
        let p = dir.join(format!("s{k}.json"));
        std::fs::write(&p, part.to_string()).unwrap();
        parts.push(p);
    }
    let (m_json, m_junit) = (dir.join("m.json"), dir.join("m.xml"));
    let mut merge: Vec<&str> = vec!["report", "merge"];
    merge.extend([
        parts[1].to_str().unwrap(),
        s2.to_str().unwrap(),
        parts[0].to_str().unwrap(),
    ]);
    merge.extend(["--json", m_json.to_str().unwrap()]);
    merge.extend(["--junit", m_junit.to_str().unwrap()]);
    let m = imgtest(dir, cache, &merge);
    assert_eq!(m.code, 1, "{}\n{}", m.out, m.err);
    let merged = json(&m_json);
    assert_eq!(essence(&merged), essence(u));
    assert!(merged["shard"].is_null());
    assert_eq!(
        suites(&std::fs::read_to_string(&m_junit).unwrap()),
        suites(&std::fs::read_to_string(u_junit).unwrap())
    );

    // A missing shard is refused, not merged into a smaller matrix.
    let partial = imgtest(
        dir,
        cache,
        &[
            "report",
            "merge",
            s2.to_str().unwrap(),
            parts[0].to_str().unwrap(),
        ],
    );
    assert_eq!(partial.code, 2);
    assert!(
        partial.err.contains("is a shard missing?"),
        "{}",
        partial.err
    );
}

#[test]
fn bisect_finds_the_first_broken_kernel_in_log2_runs() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let rootfs = common::tiny_server_rootfs();
    let good = kernel_deb(53).display().to_string();
    let c1 = kernel_deb(54).display().to_string();
    let c2 = broken_deb(55).display().to_string();
    let bad = broken_deb(56).display().to_string();
    let report = d.path().join("bisect.json");
    let mut args: Vec<&str> = vec!["bisect", rootfs.to_str().unwrap()];
    args.extend([
        "--good", &good, "--kernel", &c1, "--kernel", &c2, "--bad", &bad,
    ]);
    args.extend(["--json", report.to_str().unwrap()]);
    args.extend(RUN);
    let r = {
        let _vm = lock("vm");
        imgtest(d.path(), &cache, &args)
    };
    assert_eq!(r.code, 0, "{}\n{}", r.out, r.err);
    assert!(
        r.out.contains(&format!(
            "first bad kernel: {c2} (last good: {c1}) after 2 run(s)"
        )),
        "{}",
        r.out
    );
    assert!(r.out.contains("at most 2 run(s)"), "{}", r.out);
    let b = json(&report);
    let steps: Vec<(u64, bool)> = b["bisection"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["index"].as_u64().unwrap(), s["passed"].as_bool().unwrap()))
        .collect();
    assert_eq!(steps, [(1, true), (2, false)]);
    // Without --artifacts, the failed step's evidence is kept as `imgtest run` keeps it.
    let kept = d
        .path()
        .join("cwd/imgtest-artifacts/2-6.1.0-55-cloud-amd64.img");
    assert!(kept.join("report.json").is_file(), "{}", kept.display());
    // The trusted ends were never imported, let alone booted.
    let cached: Vec<String> = std::fs::read_dir(cache.join("kernels"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut cached = cached;
    cached.sort();
    assert_eq!(cached, ["6.1.0-54-cloud-amd64", "6.1.0-55-cloud-amd64"]);
}

#[test]
fn bad_matrix_input_is_one_line_and_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let r = imgtest(
        d.path(),
        &cache,
        &[
            "matrix",
            "/nonexistent.ext4",
            "--kernel",
            "6.1.0-56-cloud-amd64",
        ],
    );
    assert_eq!(r.code, 2);
    assert_eq!(
        r.err,
        "imgtest: root filesystem /nonexistent.ext4 does not exist\n"
    );
    let rootfs = common::tiny_server_rootfs();
    let r = imgtest(
        d.path(),
        &cache,
        &[
            "matrix",
            rootfs.to_str().unwrap(),
            "--kernel",
            "/no/such.deb",
        ],
    );
    assert_eq!(r.code, 2);
    assert_eq!(r.err, "imgtest: kernel /no/such.deb: no such .deb file\n");
    // A kernel that is not cached cannot be judged: exit 2, said in the table.
    let mut args = vec!["matrix", rootfs.to_str().unwrap(), "--kernel", "9.9.9-none"];
    args.extend(RUN);
    let r = imgtest(d.path(), &cache, &args);
    assert_eq!(r.code, 2, "{}\n{}", r.out, r.err);
    assert!(
        r.out
            .contains("ERROR 9.9.9-none: could not judge: kernel 9.9.9-none:"),
        "{}",
        r.out
    );
}
