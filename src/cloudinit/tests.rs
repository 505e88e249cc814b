//! The cloud-init config reader on Debian's own cloud.cfg, detection from a real ext4
//! filesystem, and the agent/user choice.

use super::*;
use crate::facts::OfflineFacts;

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

/// The scalar at `path` of `doc`, as the offline facts read it.
fn at(doc: &str, path: &[&str]) -> Option<String> {
    lookup(&parse(doc)?, path).and_then(scalar)
}

#[test]
fn reads_nested_block_scalars_only_at_their_path() {
    let d = DEBIAN_CLOUD_CFG;
    assert_eq!(
        at(d, &["system_info", "default_user", "name"]).as_deref(),
        Some("debian")
    );
    assert_eq!(at(d, &["system_info", "distro"]).as_deref(), Some("debian"));
    assert_eq!(at(d, &["disable_root"]).as_deref(), Some("true"));
    assert_eq!(
        at(d, &["system_info", "paths", "cloud_dir"]).as_deref(),
        Some("/var/lib/cloud/")
    );
    // Not at the top level, and not inside list items.
    assert_eq!(at(d, &["name"]), None);
    assert_eq!(at(d, &["users", "shell"]), None);
    assert_eq!(at(d, &["ssh_deletekeys"]), None);
    assert_eq!(
        at(
            "ssh_deletekeys: \"false\" # keep them\n",
            &["ssh_deletekeys"]
        )
        .as_deref(),
        Some("false")
    );
    let truth = |v: &str| cloud_init_true(&parse(&format!("v: {v}")).unwrap()["v"]);
    assert!(!truth("False") && truth("yes") && truth("True") && truth("\"on\""));
    assert!(!truth("no") && !truth("\"0\"") && truth("1"));
}

#[test]
fn reads_flow_mappings_block_scalars_anchors_and_quoted_hashes() {
    // Flow mappings, which the previous line reader could not see.
    let flow = "system_info: {distro: debian, default_user: {name: admin, shell: /bin/sh}}\n";
    assert_eq!(
        at(flow, &["system_info", "default_user", "name"]).as_deref(),
        Some("admin")
    );
    // A `#` inside quotes is part of the value, not a comment.
    let quoted = "system_info:\n  default_user:\n    name: \"ops #1\"  # the team\n";
    assert_eq!(
        at(quoted, &["system_info", "default_user", "name"]).as_deref(),
        Some("ops #1")
    );
    // Block scalars: literal and folded.
    let block = "motd: |\n  line one\n  line two\nnote: >\n  folded\n  text\n";
    assert_eq!(
        at(block, &["motd"]).as_deref(),
        Some("line one\nline two\n")
    );
    assert_eq!(at(block, &["note"]).as_deref(), Some("folded text\n"));
    // Anchors, aliases and YAML 1.1 merge keys, as PyYAML resolves them.
    let anchors = "base: &base {name: builder, shell: /bin/bash}\n\
                   system_info:\n  default_user:\n    <<: *base\n    shell: /bin/sh\n\
                   copy: *base\n";
    assert_eq!(
        at(anchors, &["system_info", "default_user", "name"]).as_deref(),
        Some("builder")
    );
    assert_eq!(
        at(anchors, &["system_info", "default_user", "shell"]).as_deref(),
        Some("/bin/sh"),
        "a mapping's own key wins over the merged one"
    );
    assert_eq!(at(anchors, &["copy", "name"]).as_deref(), Some("builder"));
    // A file that is not YAML is skipped, not misread.
    assert_eq!(parse("key: [unclosed\n"), None);
}

fn make_fs(files: &[(&str, &str)]) -> (tempfile::TempDir, std::path::PathBuf) {
    let files: Vec<(&str, &[u8])> = files.iter().map(|(p, c)| (*p, c.as_bytes())).collect();
    crate::fs::testing::ext4_image(&files, &["/etc"], 0)
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
    assert!(c.installed && c.switched_off.is_none());
    assert_eq!(c.default_user.as_deref(), Some("admin"));
    assert!(!c.ssh_deletekeys);

    let (_d, img) = make_fs(&[
        ("/etc/cloud/cloud.cfg", DEBIAN_CLOUD_CFG),
        ("/etc/cloud/cloud-init.disabled", ""),
    ]);
    let c = offline_facts(&FsView::open(&img, 0).unwrap()).unwrap();
    assert!(!c.installed && c.ssh_deletekeys);
    assert_eq!(
        c.switched_off.as_deref(),
        Some("/etc/cloud/cloud-init.disabled switches cloud-init off")
    );
    assert_eq!(c.default_user.as_deref(), Some("debian"));

    let (_d, img) = make_fs(&[("/etc/hostname", "x\n")]);
    assert_eq!(offline_facts(&FsView::open(&img, 0).unwrap()), None);
}

fn read(firstboot: bool, user: Option<&str>) -> Offline {
    Offline::Read(Box::new(OfflineFacts {
        firstboot_program: firstboot,
        cloud_init: Some(CloudInitFacts {
            installed: true,
            switched_off: None,
            default_user: user.map(str::to_string),
            ssh_deletekeys: true,
        }),
        ..Default::default()
    }))
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
    let a = choose(FirstbootChoice::Auto, None, &Offline::Read(Box::default())).unwrap();
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
    assert_eq!(e, NoDefaultUser);
    let a = choose(
        FirstbootChoice::Firstboot,
        Some("admin"),
        &read(false, None),
    )
    .unwrap();
    assert_eq!((a.agent, a.user.as_str()), (Agent::Firstboot, "admin"));
}

#[test]
fn documents_too_deep_or_expanding_too_far_are_skipped() {
    assert!(parse("a: [1, [2, [3]]]").is_some());
    let deep = format!(
        "{}1{}",
        "[".repeat(MAX_NESTING + 1),
        "]".repeat(MAX_NESTING + 1)
    );
    assert_eq!(parse(&deep), None);
    let block_deep: String = (0..=MAX_NESTING)
        .map(|i| format!("{}k:\n", "  ".repeat(i)))
        .collect();
    assert_eq!(
        parse(&format!("{block_deep}{}v\n", "  ".repeat(MAX_NESTING + 1))),
        None
    );
    // Ten aliases of ten aliases of ...: 10^9 nodes from a few lines.
    let mut laughs = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n".to_string();
    for i in 1..9 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        laughs.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let t = std::time::Instant::now();
    assert_eq!(parse(&laughs), None);
    assert!(t.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(parse(&"x".repeat(MAX_CONFIG + 1)), None);
}

proptest::proptest! {
    #![proptest_config(crate::fuzz::config())]

    /// Random and damaged configuration files: a document or nothing, never a panic or a
    /// hang, and what the offline facts read from it is read without one either.
    #[test]
    fn any_text_parses_or_is_skipped(
        bytes in proptest::prop_oneof![
            crate::fuzz::bytes(2_000),
            crate::fuzz::mutated(DEBIAN_CLOUD_CFG.as_bytes().to_vec()),
        ]
    ) {
        crate::fuzz::within(move || {
            let text = String::from_utf8_lossy(&bytes);
            if let Some(doc) = parse(&text) {
                let _ = lookup(&doc, &["system_info", "default_user", "name"]).and_then(scalar);
                let _ = authorized_keys(&doc);
                let _ = lookup(&doc, &["ssh_deletekeys"]).map(cloud_init_true);
            }
        });
    }
}

/// A systemd image with Debian's cloud-init units enabled as its package enables them
/// (`cloud-init.target.wants`), then each way of switching it off: masking every unit, or
/// disabling them (no link left); masking one unit of four is not enough to tell.
#[test]
fn cloud_init_units_masked_or_disabled_switch_it_off() {
    use std::os::unix::fs::symlink;
    let facts = |setup: &dyn Fn(&std::path::Path)| {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        for dir in [
            "etc/cloud",
            "sbin",
            "usr/bin",
            "lib/systemd/system",
            "etc/systemd/system",
        ] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(root.join("etc/cloud/cloud.cfg"), DEBIAN_CLOUD_CFG).unwrap();
        std::fs::write(root.join("usr/bin/cloud-init"), "#!/usr/bin/python3\n").unwrap();
        symlink("/lib/systemd/systemd", root.join("sbin/init")).unwrap();
        for u in UNITS {
            std::fs::write(root.join("lib/systemd/system").join(u), "[Unit]\n").unwrap();
        }
        setup(&root);
        let img = d.path().join("fs.img");
        crate::fs::testing::ext4_of(&root, &img, 0);
        offline_facts(&FsView::open(&img, 0).unwrap()).unwrap()
    };
    let enable = |root: &std::path::Path| {
        let wants = root.join("etc/systemd/system/cloud-init.target.wants");
        std::fs::create_dir_all(&wants).unwrap();
        for u in UNITS {
            symlink(format!("/lib/systemd/system/{u}"), wants.join(u)).unwrap();
        }
    };
    let mask = |root: &std::path::Path, units: &[&str]| {
        for u in units {
            symlink("/dev/null", root.join("etc/systemd/system").join(u)).unwrap();
        }
    };
    assert_eq!(facts(&enable).switched_off, None);
    assert_eq!(
        facts(&|r| {
            enable(r);
            mask(r, &["cloud-config.service"]);
        })
        .switched_off,
        None
    );
    let masked = facts(&|r| {
        enable(r);
        mask(r, &UNITS);
    });
    assert!(
        masked
            .switched_off
            .as_deref()
            .unwrap()
            .starts_with("every cloud-init unit is masked"),
        "{masked:?}"
    );
    let disabled = facts(&|_| {});
    assert!(
        disabled
            .switched_off
            .as_deref()
            .unwrap()
            .starts_with("no cloud-init unit is enabled"),
        "{disabled:?}"
    );
}
