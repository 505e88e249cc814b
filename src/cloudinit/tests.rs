//! The cloud-init config reader on Debian's own cloud.cfg, detection from a real ext4
//! filesystem, and the agent/user choice.

use super::*;
use crate::checks::facts::OfflineFacts;

/// The parts of Debian 12's /etc/cloud/cloud.cfg (cloud-init 22.4) that matter here.
const DEBIAN_CLOUD_CFG: &str = "\
# The top level settings are used as module
users:
   - default
   - name: other
     shell: /bin/sh

disable_root: true
# name: commented-out
system_info:
   # This will affect which distro class gets used
   distro: debian
   default_user:
     name: debian
     lock_passwd: True
     gecos: Debian
     groups: [adm, audio, cdrom, dialout, dip, floppy, netdev, plugdev, sudo, video]
     sudo: [\"ALL=(ALL) NOPASSWD:ALL\"]
     shell: /bin/bash
   paths:
      cloud_dir: /var/lib/cloud/
   ssh_svcname: ssh
";

#[test]
fn reads_nested_block_scalars_only_at_their_path() {
    let d = DEBIAN_CLOUD_CFG;
    assert_eq!(
        yaml_scalar(d, &["system_info", "default_user", "name"]).as_deref(),
        Some("debian")
    );
    assert_eq!(
        yaml_scalar(d, &["system_info", "distro"]).as_deref(),
        Some("debian")
    );
    assert_eq!(yaml_scalar(d, &["disable_root"]).as_deref(), Some("true"));
    assert_eq!(
        yaml_scalar(d, &["system_info", "paths", "cloud_dir"]).as_deref(),
        Some("/var/lib/cloud/")
    );
    // Not at the top level, and not inside list items.
    assert_eq!(yaml_scalar(d, &["name"]), None);
    assert_eq!(yaml_scalar(d, &["users", "shell"]), None);
    assert_eq!(yaml_scalar(d, &["ssh_deletekeys"]), None);
    assert_eq!(
        yaml_scalar(
            "ssh_deletekeys: \"false\" # keep them\n",
            &["ssh_deletekeys"]
        )
        .as_deref(),
        Some("false")
    );
    assert!(!yaml_true("False") && yaml_true("yes") && yaml_true("True"));
}

fn make_fs(files: &[(&str, &str)]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    for (path, content) in files {
        let p = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    let img = dir.path().join("fs.img");
    let st = std::process::Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-d"])
        .arg(&root)
        .arg(&img)
        .arg("4M")
        .status()
        .unwrap();
    assert!(st.success());
    (dir, img)
}

#[test]
fn detects_cloud_init_and_later_drop_ins_win() {
    let (_d, img) = make_fs(&[
        ("/usr/bin/cloud-init", "#!/usr/bin/python3\n"),
        ("/etc/cloud/cloud.cfg", DEBIAN_CLOUD_CFG),
        (
            "/etc/cloud/cloud.cfg.d/50-user.cfg",
            "system_info:\n  default_user:\n    name: admin\n",
        ),
        (
            "/etc/cloud/cloud.cfg.d/99-keep-keys.cfg",
            "ssh_deletekeys: false\n",
        ),
        ("/etc/cloud/cloud.cfg.d/README", "ssh_deletekeys: true\n"),
    ]);
    let view = FsView::open(&img, 0).unwrap();
    let c = offline_facts(&view).unwrap();
    assert!(c.installed && !c.disabled);
    assert_eq!(c.default_user.as_deref(), Some("admin"));
    assert!(!c.ssh_deletekeys);

    let (_d, img) = make_fs(&[
        ("/etc/cloud/cloud.cfg", DEBIAN_CLOUD_CFG),
        ("/etc/cloud/cloud-init.disabled", ""),
    ]);
    let c = offline_facts(&FsView::open(&img, 0).unwrap()).unwrap();
    assert!(!c.installed && c.disabled && c.ssh_deletekeys);
    assert_eq!(c.default_user.as_deref(), Some("debian"));

    let (_d, img) = make_fs(&[("/etc/hostname", "x\n")]);
    assert_eq!(offline_facts(&FsView::open(&img, 0).unwrap()), None);
}

fn read(firstboot: bool, user: Option<&str>) -> Offline {
    Offline::Read(OfflineFacts {
        firstboot_program: firstboot,
        cloud_init: Some(CloudInitFacts {
            installed: true,
            disabled: false,
            default_user: user.map(str::to_string),
            ssh_deletekeys: true,
        }),
        ..Default::default()
    })
}

#[test]
fn auto_picks_cloud_init_without_firstboot_and_its_default_user() {
    let a = choose(FirstbootChoice::Auto, None, &read(false, Some("debian"))).unwrap();
    assert_eq!((a.agent, a.user.as_str()), (Agent::CloudInit, "debian"));
    assert!(
        a.reason.contains("auto: cloud-init installed"),
        "{}",
        a.reason
    );
    let a = choose(FirstbootChoice::Auto, None, &read(true, Some("debian"))).unwrap();
    assert_eq!((a.agent, a.user.as_str()), (Agent::Firstboot, "root"));
    let a = choose(
        FirstbootChoice::Auto,
        None,
        &Offline::Read(OfflineFacts::default()),
    )
    .unwrap();
    assert_eq!(a.agent, Agent::Firstboot);
    let iso = Offline::Unreadable {
        reason: "ISO".into(),
    };
    assert_eq!(
        choose(FirstbootChoice::Auto, None, &iso).unwrap().agent,
        Agent::Firstboot
    );
    // Forced, with an explicit user: no detection needed.
    let a = choose(FirstbootChoice::CloudInit, Some("ubuntu"), &iso).unwrap();
    assert_eq!((a.agent, a.user.as_str()), (Agent::CloudInit, "ubuntu"));
    let e = choose(FirstbootChoice::CloudInit, None, &read(false, None)).unwrap_err();
    assert!(e.contains("pass --user NAME"), "{e}");
    let a = choose(
        FirstbootChoice::Firstboot,
        Some("admin"),
        &read(false, None),
    )
    .unwrap();
    assert_eq!((a.agent, a.user.as_str()), (Agent::Firstboot, "admin"));
}
