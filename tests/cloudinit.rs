//! Stock cloud-init images under `imgtest run --firstboot auto`, booted for real under TCG:
//! the `cloud-init` Debian variant (Debian's cloud-init package, default configuration)
//! passes two parallel boots, host keys unique per boot included; the
//! `cloud-init-keep-keys` variant (`ssh_deletekeys: false`, baked keys) fails with
//! `hostkeys.absent` offline and `hostkeys.regenerated` and `hostkeys.unique` online. The
//! image file is never changed: imgtest seeds cloud-init through the SMBIOS serial and its
//! metadata service. Needs root and the Debian mirror (images/debian/build.sh), like
//! tests/debian.rs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assets_dir, lock, run_ok};

/// The bootable disk of Debian `variant`, built by images/debian/build.sh and fsmaker.
fn disk(dir: &Path, variant: &str) -> PathBuf {
    let fs = dir.join(format!("{variant}.ext4"));
    {
        let _l = lock("debian-build");
        run_ok(
            Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("images/debian/build.sh"))
                .args(["--variant", variant])
                .arg(&fs)
                .env("IMGTEST_ASSETS", assets_dir()),
        );
    }
    let img = dir.join(format!("{variant}.img"));
    common::build_disk(&fs, &img, &[]);
    std::fs::remove_file(&fs).unwrap();
    img
}

fn sha256(path: &Path) -> String {
    let o = run_ok(Command::new("sha256sum").arg(path));
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

struct Run {
    code: i32,
    out: String,
    report: serde_json::Value,
}

impl Run {
    fn ids(&self, status: &str) -> Vec<String> {
        let mut ids: Vec<String> = self.report[0]["checks"]
            .as_array()
            .expect("checks in the JSON report")
            .iter()
            .filter(|c| c["status"] == status)
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect();
        ids.dedup();
        ids
    }

    fn evidence(&self, id: &str) -> Vec<String> {
        self.report[0]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["id"] == id)
            .map(|c| c["evidence"].as_str().unwrap().to_string())
            .collect()
    }
}

/// `imgtest run --accel tcg --firstboot auto ARGS IMAGE`; the image must not change.
fn imgtest(dir: &Path, image: &Path, args: &[&str]) -> Run {
    let before = sha256(image);
    let json = dir.join("report.json");
    let out = {
        let _vm = lock("vm");
        Command::new(env!("CARGO_BIN_EXE_imgtest"))
            .args(["run", "--accel", "tcg", "--firstboot", "auto"])
            .args(args)
            .arg("--json")
            .arg(&json)
            .arg("--artifacts")
            .arg(dir.join("artifacts"))
            .arg(image)
            .env("TMPDIR", dir)
            .output()
            .unwrap()
    };
    assert_eq!(sha256(image), before, "imgtest changed the image");
    Run {
        code: out.status.code().unwrap_or(-1),
        out: format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        report: std::fs::read_to_string(&json)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default(),
    }
}

#[test]
fn stock_cloud_init_image_passes_two_boots_with_unique_host_keys() {
    let d = tempfile::tempdir_in(assets_dir()).unwrap();
    let img = disk(d.path(), "cloud-init");
    // A generous login deadline (x4 under TCG): two 1-vCPU boots of cloud-init's Python
    // on a shared machine set the password minutes after boot.
    let r = imgtest(d.path(), &img, &["--timeout", "login=120s"]);
    for b in r.report[0]["facts"]["boots"]
        .as_array()
        .into_iter()
        .flatten()
    {
        eprintln!(
            "boot {}: userspace {}s, sshd answered {}s, password {}, cloud-init finished {}s; run {}s",
            b["index"],
            b["console"]["phases"],
            b["ssh_secs"],
            b["login"],
            b["cloud_init_finished_secs"],
            r.report[0]["duration_secs"]
        );
    }
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(r.ids("fail").is_empty(), "{}", r.out);
    for id in [
        "firstboot.installed",
        "metadata.password",
        "ssh.wrong-password",
        "hostkeys.absent",
        "hostkeys.regenerated",
        "hostkeys.unique",
        "machine-id.unique",
        "firstboot.disabled",
    ] {
        assert!(r.ids("pass").contains(&id.to_string()), "{id}: {}", r.out);
    }
    // Detected offline: cloud-init, Debian's default user, logged in as that user.
    let agent = &r.report[0]["facts"]["agent"];
    assert_eq!(agent["agent"], "cloud-init", "{agent}");
    assert_eq!(agent["user"], "debian", "{agent}");
    // The password came from user-data, and the report shows when it started working
    // against when sshd first answered.
    for e in r.evidence("metadata.password") {
        assert!(e.contains("SSH answered at"), "{e}");
    }
    let requests =
        std::fs::read_to_string(d.path().join("artifacts/metadata-requests.jsonl")).unwrap();
    for path in ["/meta-data", "/user-data", "/vendor-data"] {
        for boot in [0, 1] {
            assert!(
                requests
                    .lines()
                    .any(|l| l.contains(&format!("\"boot\":{boot},"))
                        && l.contains(&format!("\"path\":\"{path}\""))
                        && l.contains("\"status\":200")),
                "boot {boot} never fetched {path}: {requests}"
            );
        }
    }
    // cloud-init really ran with the seed: per-boot hostname from meta-data, and no secret
    // in any artifact (console, request log, report).
    for b in r.report[0]["facts"]["boots"].as_array().unwrap() {
        let host = b["probe"]["hostname"].as_str().unwrap();
        assert!(host.starts_with("imgtest-"), "{host}");
    }
    let console = std::fs::read_to_string(d.path().join("artifacts/boot0-console.log")).unwrap();
    assert!(console.contains("Cloud-init v. 22.4"), "{console}");
    for f in std::fs::read_dir(d.path().join("artifacts")).unwrap() {
        let text = String::from_utf8_lossy(&std::fs::read(f.unwrap().path()).unwrap()).into_owned();
        assert!(!text.contains("password: \""), "user-data leaked");
    }
}

#[test]
fn cloud_init_told_to_keep_baked_keys_fails_offline_and_online() {
    let d = tempfile::tempdir_in(assets_dir()).unwrap();
    let img = disk(d.path(), "cloud-init-keep-keys");
    // Two boots, so the same baked key shows up in both handshakes.
    let r = imgtest(
        d.path(),
        &img,
        &[
            "--timeout",
            "login=120s",
            "--skip",
            "firstboot.disabled",
            "--skip",
            "shutdown.clean",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.out);
    assert_eq!(
        r.ids("fail"),
        ["hostkeys.absent", "hostkeys.regenerated", "hostkeys.unique"],
        "{}",
        r.out
    );
    for e in r.evidence("hostkeys.regenerated") {
        assert!(e.contains("still the image's baked key"), "{e}");
    }
    // Everything else about the image is fine: cloud-init set the password.
    assert!(
        r.ids("pass").contains(&"metadata.password".to_string()),
        "{}",
        r.out
    );
}
