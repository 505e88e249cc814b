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

use common::{Outcome, assets_dir, lock, run_ok};

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

/// `imgtest run --firstboot auto ARGS IMAGE`.
fn imgtest(dir: &Path, image: &Path, args: &[&str]) -> Outcome {
    common::imgtest_run(dir, image, &[&["--firstboot", "auto"], args].concat())
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
    assert_eq!(r.code, 0, "{}", r.log());
    assert!(r.ids("fail").is_empty(), "{}", r.log());
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
        assert!(r.ids("pass").contains(&id.to_string()), "{id}: {}", r.log());
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
    assert_eq!(r.code, 1, "{}", r.log());
    assert_eq!(
        r.ids("fail"),
        ["hostkeys.absent", "hostkeys.regenerated", "hostkeys.unique"],
        "{}",
        r.log()
    );
    for e in r.evidence("hostkeys.regenerated") {
        assert!(e.contains("still the image's baked key"), "{e}");
    }
    // Everything else about the image is fine: cloud-init set the password.
    assert!(
        r.ids("pass").contains(&"metadata.password".to_string()),
        "{}",
        r.log()
    );
}

/// cloud-init switched off, by its own switch file (`cloud-init-off`) or with its units
/// masked (`cloud-init-masked`): nothing will ever set the metadata password, and without
/// host keys sshd cannot even start. The image shows it, so the run does not wait out the
/// login deadline: each boot ends its login stage within 30 s of userspace (and still
/// boots, and powers off), and the image fails `firstboot.installed` with the reason.
#[test]
fn cloud_init_switched_off_fails_at_once_not_after_the_login_deadline() {
    let d = tempfile::tempdir_in(assets_dir()).unwrap();
    let off = disk(d.path(), "cloud-init-off");
    let masked = disk(d.path(), "cloud-init-masked");
    let r = common::imgtest_run_all(
        d.path(),
        &[&off, &masked],
        &["--firstboot", "auto", "--boots", "1"],
    );
    assert_eq!(r.code, 1, "{}", r.log());
    for (i, why) in [
        (0, "/etc/cloud/cloud-init.disabled switches cloud-init off"),
        (1, "every cloud-init unit is masked"),
    ] {
        let img = r.image(i);
        assert!(
            img.ids("fail").contains(&"firstboot.installed".to_string()),
            "{}",
            r.log()
        );
        assert!(
            img.evidence("firstboot.installed")[0].contains(why),
            "{:?}",
            img.evidence("firstboot.installed")
        );
        let boot = &img.report[0]["facts"]["boots"][0];
        let userspace = boot["console"]["phases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p[0] == "userspace")
            .map(|p| p[1].as_f64().unwrap())
            .expect("the boot reached userspace");
        let login_ended = boot["powerdown_secs"]
            .as_f64()
            .expect("the boot powered off");
        eprintln!(
            "{why}: userspace {userspace:.1}s, login stage over at {login_ended:.1}s ({:.1}s after)",
            login_ended - userspace
        );
        assert!(
            login_ended - userspace <= 30.0,
            "login ended {:.1}s after userspace: {boot}",
            login_ended - userspace
        );
        assert_eq!(boot["shutdown"]["outcome"], "clean", "{boot}");
    }
}
