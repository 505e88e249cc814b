//! Checks over hand-made facts: a clean image passes, each defect fails exactly one id.

use super::*;
use crate::facts::*;

fn offline() -> OfflineFacts {
    OfflineFacts {
        source: "ext4 at 1048576".into(),
        shadow_readable: true,
        firstboot_program: true,
        firstboot_hooks: vec!["/etc/inittab".into()],
        ..Default::default()
    }
}

fn boot(i: usize) -> BootFacts {
    BootFacts {
        console: ConsoleSummary {
            phases: vec![
                (Phase::Kernel, 2.0),
                (Phase::Userspace, 5.0),
                (Phase::Login, 7.0),
            ],
            firstboot_lines: vec!["firstboot: done".into()],
            ..Default::default()
        },
        password_fetched: true,
        metadata_requests: 3,
        ssh_secs: Some(6.0),
        host_key_sha256: Some(format!("{i}{}", "ab".repeat(31))),
        login: Login::Worked { after_secs: 8.0 },
        // Tried once per run, on the first boot whose SSH server answered.
        wrong_password_rejected: (i == 0).then_some(true),
        probe: Some(ProbeFacts {
            kernel: "6.1".into(),
            machine_id: format!("id{i}"),
            hostname: format!("imgtest-{i}"),
            host_keys: vec![KeyFile {
                path: "/etc/dropbear/dropbear_ed25519_host_key".into(),
                sha256: format!("k{i}"),
            }],
            firstboot_state: "done".into(),
            firstboot_hook: "disabled".into(),
            password_accounts: vec!["root".into()],
            sshd: [("permitemptypasswords".to_string(), "no".to_string())].into(),
            ..Default::default()
        }),
        // Tried once per run, beside the wrong password.
        empty_passwords: if i == 0 {
            vec![Tried {
                user: "root".into(),
                rejected: Some(true),
            }]
        } else {
            Vec::new()
        },
        shutdown: Shutdown::Clean { secs: 2.0 },
        ..BootFacts::new(i, Firmware::Bios)
    }
}

fn clean() -> Facts {
    Facts {
        offline: Offline::Read(Box::new(offline())),
        boots: vec![boot(0), boot(1)],
        fault: Fault::None,
        agent: None,
        no_boot: None,
        firmware: None,
    }
}

fn failing(facts: &Facts) -> Vec<&'static str> {
    let mut ids: Vec<&str> = evaluate(facts, &Selection::default())
        .into_iter()
        .filter(|r| r.status == Status::Fail)
        .map(|r| r.id.name())
        .collect();
    ids.dedup();
    ids
}

#[test]
fn clean_image_passes_everything_it_can_judge() {
    let results = evaluate(&clean(), &Selection::default());
    assert!(failing(&clean()).is_empty(), "{results:#?}");
    let skipped: Vec<_> = results
        .iter()
        .filter(|r| r.status == Status::Skip)
        .map(|r| r.id.name())
        .collect();
    assert_eq!(
        skipped,
        [
            "boot.secure-boot",
            "boot.secure-boot",
            "firstboot.fail-safe",
            "firstboot.fail-safe"
        ]
    );
    // Per-boot checks appear once per boot, the others once.
    assert_eq!(
        results
            .iter()
            .filter(|r| r.id == CheckId::BootUserspace)
            .count(),
        2
    );
    assert_eq!(
        results
            .iter()
            .filter(|r| r.id == CheckId::HostkeysUnique)
            .count(),
        1
    );
}

type Defect = Box<dyn Fn(&mut Facts)>;

/// Defects the image file shows, each with the one check that must fail.
fn offline_defects() -> Vec<(&'static str, Defect)> {
    vec![
        (
            "passwords.none-fixed",
            Box::new(|f| off(f).password_accounts = vec!["root".into()]),
        ),
        (
            "logs.clean",
            Box::new(|f| off(f).dirty_logs = vec!["/var/log/wtmp (384 bytes)".into()]),
        ),
        (
            "hostkeys.absent",
            Box::new(|f| {
                off(f).host_keys = vec![KeyFile {
                    path: "/etc/ssh/ssh_host_rsa_key".into(),
                    sha256: "baked".into(),
                }]
            }),
        ),
        (
            "scripts.none",
            Box::new(|f| off(f).test_scripts = vec!["/root/test.sh".into()]),
        ),
        (
            "machine-id.empty",
            Box::new(|f| {
                off(f).machine_id = Some("same".into());
                for b in &mut f.boots {
                    b.probe.as_mut().unwrap().machine_id = "same".into();
                }
            }),
        ),
    ]
}

/// A file finding of `kind`, as the offline scan reports one.
fn finding(f: &mut Facts, kind: FileKind, path: &str) {
    off(f).findings.entry(kind).or_default().push(Finding {
        path: path.into(),
        size: 42,
        mode: 0o644,
        why: "planted".into(),
        sha256: Some("image".into()),
    });
}

/// The hygiene checks that judge files: one planted file each fails exactly that check.
fn file_defects() -> Vec<(&'static str, Defect)> {
    [
        (
            "logins.password-copies",
            FileKind::PasswordCopy,
            "/etc/shadow-",
        ),
        (
            "logins.authorized-keys",
            FileKind::AuthorizedKey,
            "/root/.ssh/authorized_keys",
        ),
        ("logins.host-trust", FileKind::HostTrust, "/root/.rhosts"),
        ("leftovers.unowned", FileKind::Unowned, "/opt/ci/smoke"),
        ("logs.spools", FileKind::Spool, "/var/mail/root"),
        (
            "logs.crash-dumps",
            FileKind::CrashDump,
            "/var/crash/x.crash",
        ),
        (
            "logs.leases",
            FileKind::Lease,
            "/var/lib/dhcp/dhclient.eth0.leases",
        ),
        ("logs.temp-files", FileKind::TempFile, "/tmp/build.out"),
        (
            "logs.package-cache",
            FileKind::PackageCache,
            "/var/cache/apt/archives/a.deb",
        ),
        (
            "identity.dbus-machine-id",
            FileKind::DbusMachineId,
            "/var/lib/dbus/machine-id",
        ),
        (
            "identity.seeds",
            FileKind::Seed,
            "/var/lib/systemd/random-seed",
        ),
        (
            "identity.persistent-net",
            FileKind::PersistentNet,
            "/etc/udev/rules.d/70-persistent-net.rules",
        ),
        (
            "identity.cloud-init-state",
            FileKind::CloudInitState,
            "/var/lib/cloud/data/instance-id",
        ),
        (
            "identity.private-keys",
            FileKind::PrivateKey,
            "/etc/ssl/private/ssl-cert-snakeoil.key",
        ),
    ]
    .into_iter()
    .map(|(id, kind, path)| -> (&'static str, Defect) {
        (id, Box::new(move |f| finding(f, kind, path)))
    })
    .collect()
}

/// Login defects the running guests show, each with the one check that must fail.
fn login_defects() -> Vec<(&'static str, Defect)> {
    vec![
        (
            "logins.sshd-config",
            Box::new(|f| {
                let p = f.boots[1].probe.as_mut().unwrap();
                p.sshd.insert("permitemptypasswords".into(), "yes".into());
            }),
        ),
        (
            "logins.runtime-keys",
            Box::new(|f| {
                f.boots[0]
                    .probe
                    .as_mut()
                    .unwrap()
                    .authorized_keys
                    .push(RuntimeKey {
                        user: "root".into(),
                        file: "/root/.ssh/authorized_keys".into(),
                        key: "ssh-ed25519 AAAAbuilder".into(),
                    })
            }),
        ),
        (
            "logins.empty-password",
            Box::new(|f| f.boots[0].empty_passwords[0].rejected = Some(false)),
        ),
    ]
}

/// Defects the boots show, each with the one check that must fail.
fn online_defects() -> Vec<(&'static str, Defect)> {
    vec![
        (
            "firstboot.installed",
            Box::new(|f| {
                off(f).firstboot_program = false;
                for b in &mut f.boots {
                    b.password_fetched = false;
                    b.login = Login::Refused {
                        reason: "auth failed".into(),
                    };
                    b.wrong_password_rejected = None;
                    b.probe = None;
                }
            }),
        ),
        (
            "boot.userspace",
            Box::new(|f| {
                for b in &mut f.boots {
                    *b = BootFacts::new(b.index, b.firmware);
                    b.console.failure = Some(ConsoleFailure {
                        kind: FailureKind::RootNotFound,
                        line: "VFS: Unable to mount root fs".into(),
                        cause: None,
                    });
                }
            }),
        ),
        (
            "hostkeys.unique",
            Box::new(|f| f.boots[1].host_key_sha256 = f.boots[0].host_key_sha256.clone()),
        ),
        (
            "machine-id.unique",
            Box::new(|f| f.boots[1].probe.as_mut().unwrap().machine_id = "id0".into()),
        ),
        (
            "hostkeys.regenerated",
            Box::new(|f| {
                off(f).host_keys.clear();
                f.boots[0].probe.as_mut().unwrap().host_keys[0].sha256 = "baked".into();
                off(f).host_keys.push(KeyFile {
                    path: "/x".into(),
                    sha256: "baked".into(),
                });
            }),
        ),
        (
            "firstboot.disabled",
            Box::new(|f| f.boots[0].probe.as_mut().unwrap().firstboot_hook = "enabled".into()),
        ),
        (
            "ssh.wrong-password",
            Box::new(|f| f.boots[1].wrong_password_rejected = Some(false)),
        ),
        (
            "metadata.password",
            Box::new(|f| f.boots[0].password_fetched = false),
        ),
        (
            "shutdown.clean",
            Box::new(|f| {
                f.boots[0].shutdown = Shutdown::TimedOut {
                    deadline_secs: 30.0,
                }
            }),
        ),
        (
            "console.clean",
            Box::new(|f| {
                f.boots[0].console.failure = Some(ConsoleFailure {
                    kind: FailureKind::Oops,
                    line: "Oops: 0000".into(),
                    cause: None,
                })
            }),
        ),
    ]
}

#[test]
fn each_defect_fails_exactly_one_check() {
    let cases = offline_defects()
        .into_iter()
        .chain(file_defects())
        .chain(login_defects())
        .chain(online_defects());
    for (expected, defect) in cases {
        let mut f = clean();
        defect(&mut f);
        // hostkeys.regenerated needs the baked key to be judged offline too: allow its root cause.
        let got = failing(&f);
        if expected == "hostkeys.regenerated" {
            assert_eq!(
                got,
                ["hostkeys.absent", "hostkeys.regenerated"],
                "{expected}"
            );
        } else {
            assert_eq!(got, [expected], "defect {expected}");
        }
    }
}

#[test]
fn one_boot_is_judged_alone_as_the_whole_run_judges_it() {
    let sel = Selection::default();
    for (name, defect) in online_defects().into_iter().chain(login_defects()) {
        let mut f = clean();
        defect(&mut f);
        let before = Facts {
            boots: Vec::new(),
            ..f.clone()
        };
        for b in &f.boots {
            let whole: Vec<_> = evaluate(&f, &sel)
                .into_iter()
                .filter(|r| r.boot == Some(b.index))
                .collect();
            assert_eq!(
                judge_boot(b, &before, &sel),
                whole,
                "{name}, boot {}",
                b.index
            );
        }
    }
}

fn off(f: &mut Facts) -> &mut OfflineFacts {
    match &mut f.offline {
        Offline::Read(o) => o,
        _ => unreachable!(),
    }
}

#[test]
fn fail_safe_under_a_metadata_fault() {
    let mut f = clean();
    f.fault = Fault::NeverAnswer;
    for b in &mut f.boots {
        b.password_fetched = false;
        b.login = Login::Refused {
            reason: "auth failed".into(),
        };
        b.probe = None;
    }
    let r = evaluate(&f, &Selection::default());
    assert!(failing(&f).is_empty(), "{r:#?}");
    let fs: Vec<_> = r
        .iter()
        .filter(|r| r.id == CheckId::FirstbootFailSafe)
        .collect();
    assert_eq!(fs.len(), 2, "judged on each boot: {r:#?}");
    assert!(fs.iter().all(|r| r.status == Status::Pass), "{fs:?}");
    // A delayed answer still delivers the password: judged like no fault at all.
    let mut delayed = clean();
    delayed.fault = Fault::Delay(std::time::Duration::from_secs(5));
    assert!(failing(&delayed).is_empty());
    assert!(
        evaluate(&delayed, &Selection::default())
            .iter()
            .any(|r| r.id == CheckId::MetadataPassword && r.status == Status::Pass)
    );
    // A login that works although the metadata never answered fails it.
    f.boots[0].login = Login::Worked { after_secs: 3.0 };
    assert_eq!(failing(&f), ["firstboot.fail-safe"]);
}

#[test]
fn wrong_password_is_judged_once_per_run_on_the_boot_that_tried_it() {
    let mut f = clean();
    let count = |f: &Facts| {
        evaluate(f, &Selection::default())
            .iter()
            .filter(|r| r.id == CheckId::SshWrongPassword)
            .count()
    };
    assert_eq!(count(&f), 1);
    assert_eq!(evidence(&f, "ssh.wrong-password"), "rejected on boot 0");
    // Whichever boot tried it: an acceptance is a failure.
    f.boots[0].wrong_password_rejected = None;
    f.boots[1].wrong_password_rejected = Some(false);
    assert_eq!(failing(&f), ["ssh.wrong-password"]);
    assert!(evidence(&f, "ssh.wrong-password").ends_with("on boot 1"));
    // No boot tried it: not judged, with the first boot's login as the reason.
    f.boots[1].wrong_password_rejected = None;
    f.boots[0].login = Login::NoSsh {
        reason: "connection reset".into(),
    };
    let r = evaluate(&f, &Selection::default());
    let w = r
        .iter()
        .find(|r| r.id == CheckId::SshWrongPassword)
        .unwrap();
    assert_eq!(w.status, Status::Skip);
    assert!(w.evidence.contains("connection reset"), "{w:?}");
}

#[test]
fn unreadable_image_skips_offline_checks_with_the_reason() {
    let mut f = clean();
    f.offline = Offline::Unreadable {
        reason: "ISO 9660 image".into(),
    };
    let r = evaluate(&f, &Selection::default());
    let logs = r.iter().find(|r| r.id == CheckId::LogsClean).unwrap();
    assert_eq!(logs.status, Status::Skip);
    assert!(logs.evidence.contains("ISO 9660"));
    assert!(failing(&f).is_empty());
}

#[test]
fn selection_filters_and_knows_what_needs_a_boot() {
    let sel = Selection {
        only: vec![CheckId::LogsClean, CheckId::ScriptsNone],
        skip: vec![CheckId::ScriptsNone],
        ..Selection::default()
    };
    let r = evaluate(&clean(), &sel);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].id, CheckId::LogsClean);
    assert!(!sel.needs_boot());
    assert!(Selection::default().needs_boot());
    // What to collect follows from the selected checks' declared needs.
    for need in Need::ALL {
        assert!(Selection::default().needs(*need), "{need}");
        assert!(!sel.needs(*need), "{need}");
    }
    let shutdown_only = Selection {
        only: vec![CheckId::ShutdownClean],
        ..Selection::default()
    };
    assert!(shutdown_only.needs(Need::PowerOff) && !shutdown_only.needs(Need::Login));
    let no_shutdown = Selection {
        skip: vec![CheckId::ShutdownClean],
        ..Selection::default()
    };
    assert!(!no_shutdown.needs(Need::PowerOff) && no_shutdown.needs(Need::Probe));
}

#[test]
fn catalogue_ids_are_unique_and_stable() {
    let ids: Vec<&str> = CATALOGUE.iter().map(|c| c.id.name()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len());
    assert_eq!(ids.len(), 34);
    // Every id has exactly one entry, and the catalogue lists them in declaration order.
    assert_eq!(
        CATALOGUE.iter().map(|c| c.id).collect::<Vec<_>>(),
        CheckId::ALL
    );
    for id in CheckId::ALL {
        assert_eq!(find(*id).id, *id);
    }
}

/// The clean facts as a cloud-init image shows them: cloud-init instead of firstboot.
fn cloud_init() -> Facts {
    let mut f = clean();
    let o = off(&mut f);
    o.firstboot_program = false;
    o.firstboot_hooks.clear();
    o.cloud_init = Some(CloudInitFacts {
        installed: true,
        switched_off: None,
        default_user: Some("debian".into()),
        ssh_deletekeys: true,
    });
    f.agent = Some(AgentFacts {
        agent: Agent::CloudInit,
        user: "debian".into(),
        reason: "test".into(),
    });
    for b in &mut f.boots {
        b.probe.as_mut().unwrap().firstboot_state.clear();
        b.probe.as_mut().unwrap().firstboot_hook.clear();
        b.console.firstboot_lines.clear();
        b.cloud_init_finished_secs = Some(12.0);
    }
    f
}

fn evidence(f: &Facts, id: &str) -> String {
    evaluate(f, &Selection::default())
        .into_iter()
        .find(|r| r.id.name() == id)
        .map(|r| r.evidence)
        .unwrap()
}

#[test]
fn cloud_init_images_are_judged_by_cloud_init_equivalents() {
    let f = cloud_init();
    assert!(
        failing(&f).is_empty(),
        "{:#?}",
        evaluate(&f, &Selection::default())
    );
    assert!(evidence(&f, "firstboot.installed").contains("default user debian"));
    assert!(evidence(&f, "firstboot.disabled").contains("boot-finished"));
    // The password's timeline: sshd answered at 6s, the password worked at 8s.
    assert!(
        evidence(&f, "metadata.password").contains("after 8.0s (SSH answered at 6.0s)"),
        "{}",
        evidence(&f, "metadata.password")
    );
    // The same facts judged as a firstboot image fail: no firstboot, no firstboot status.
    let mut as_firstboot = f.clone();
    as_firstboot.agent = None;
    assert_eq!(failing(&as_firstboot), ["firstboot.installed"]);

    let mut g = cloud_init();
    g.boots[1].cloud_init_finished_secs = None;
    assert_eq!(failing(&g), ["firstboot.disabled"]);
    let mut g = cloud_init();
    off(&mut g).cloud_init.as_mut().unwrap().switched_off = Some("masked".into());
    assert_eq!(failing(&g), ["firstboot.installed"]);
    let mut g = cloud_init();
    off(&mut g).cloud_init = None;
    assert_eq!(failing(&g), ["firstboot.installed"]);
    let mut g = cloud_init();
    g.boots[0].password_fetched = false;
    assert_eq!(failing(&g), ["metadata.password"]);
    assert!(evidence(&g, "metadata.password").contains("never fetched user-data"));
}

#[test]
fn host_keys_unreadable_to_the_login_user_are_not_judged() {
    let mut f = cloud_init();
    for b in &mut f.boots {
        b.probe.as_mut().unwrap().host_keys[0].sha256.clear();
    }
    let r: Vec<_> = evaluate(&f, &Selection::default())
        .into_iter()
        .filter(|r| r.id == CheckId::HostkeysRegenerated)
        .collect();
    assert_eq!(r.len(), 2, "judged on each boot");
    assert!(r.iter().all(|r| r.status == Status::Skip), "{r:#?}");
}

#[test]
fn runtime_keys_from_the_metadata_service_or_already_judged_offline_pass() {
    let mut f = clean();
    let key = |k: &str| RuntimeKey {
        user: "root".into(),
        file: "/root/.ssh/authorized_keys".into(),
        key: k.into(),
    };
    f.boots[0].metadata_key = Some("ssh-ed25519 AAAAmeta imgtest-boot-0".into());
    f.boots[0].probe.as_mut().unwrap().authorized_keys = vec![key("ssh-ed25519 AAAAmeta")];
    assert!(failing(&f).is_empty());
    // A key baked into the image is logins.authorized-keys' failure, not a second one.
    off(&mut f).baked_keys = vec!["ssh-rsa AAAAbaked".into()];
    finding(
        &mut f,
        FileKind::AuthorizedKey,
        "/root/.ssh/authorized_keys",
    );
    f.boots[0]
        .probe
        .as_mut()
        .unwrap()
        .authorized_keys
        .push(key("ssh-rsa AAAAbaked"));
    assert_eq!(failing(&f), ["logins.authorized-keys"]);
}

#[test]
fn an_empty_password_the_image_shows_is_judged_offline_only() {
    let mut f = clean();
    off(&mut f).password_accounts = vec!["root (empty password)".into()];
    f.boots[0].empty_passwords[0].rejected = Some(false);
    assert_eq!(failing(&f), ["passwords.none-fixed"]);
}

#[test]
fn a_private_key_replaced_on_every_boot_passes_one_kept_fails() {
    let mut f = clean();
    finding(&mut f, FileKind::PrivateKey, "/etc/app/key.pem");
    let at_boot = |sha: &str| KeyFile {
        path: "/etc/app/key.pem".into(),
        sha256: sha.into(),
    };
    // No boot showed the file: the image's key is what the servers use.
    assert_eq!(failing(&f), ["identity.private-keys"]);
    f.boots[0].probe.as_mut().unwrap().files = vec![at_boot("boot0")];
    f.boots[1].probe.as_mut().unwrap().files = vec![at_boot("boot1")];
    assert!(
        failing(&f).is_empty(),
        "{:#?}",
        evaluate(&f, &Selection::default())
    );
    assert!(evidence(&f, "identity.private-keys").contains("replaced"));
    // The same new key on both boots, or the image's key on one: not unique per server.
    f.boots[1].probe.as_mut().unwrap().files = vec![at_boot("boot0")];
    assert_eq!(failing(&f), ["identity.private-keys"]);
    f.boots[1].probe.as_mut().unwrap().files = vec![at_boot("image")];
    assert_eq!(failing(&f), ["identity.private-keys"]);
}

#[test]
fn a_rule_no_check_could_judge_is_named_and_all_skipped_is_never_a_pass() {
    let mut f = clean();
    f.offline = Offline::Unreadable {
        reason: "XFS".into(),
    };
    let results = evaluate(&f, &Selection::default());
    let u = unjudged(&results, &Selection::default());
    // Leftovers and logs are judged only offline; logins and identity also online.
    assert_eq!(u.len(), 2, "{u:#?}");
    assert!(
        u[0].starts_with("rule 1 (leftovers): no check could judge it"),
        "{u:?}"
    );
    assert!(u[0].contains("XFS"), "{u:?}");
    assert!(u[1].starts_with("rule 3 (logs)"), "{u:?}");
    // The readable image is judged on every rule.
    assert!(
        unjudged(
            &evaluate(&clean(), &Selection::default()),
            &Selection::default()
        )
        .is_empty()
    );
    // Only checks that cannot judge selected: the whole run is unjudged.
    let sel = Selection {
        only: vec![CheckId::LogsClean],
        ..Selection::default()
    };
    let u = unjudged(&evaluate(&f, &sel), &sel);
    assert_eq!(u.len(), 2, "{u:?}");
    assert_eq!(u[1], "the image: every selected check was skipped");
}

#[test]
fn a_baked_host_key_in_the_handshake_fails_even_without_a_probe() {
    let mut f = clean();
    let fp = f.boots[0].host_key_sha256.clone().unwrap();
    off(&mut f).host_key_fingerprints = vec![fp];
    off(&mut f).host_keys = vec![KeyFile {
        path: "/etc/ssh/ssh_host_ed25519_key".into(),
        sha256: "private".into(),
    }];
    for b in &mut f.boots {
        b.probe = None;
    }
    let r = evaluate(&f, &Selection::default());
    let regenerated: Vec<_> = r
        .iter()
        .filter(|r| r.id == CheckId::HostkeysRegenerated)
        .collect();
    assert_eq!(regenerated.len(), 2);
    assert_eq!(regenerated[0].status, Status::Fail, "{regenerated:?}");
    assert!(
        regenerated[0]
            .evidence
            .contains("still the image's baked key")
    );
    // The other boot showed a key of its own: judged as before.
    assert_eq!(regenerated[1].status, Status::Pass, "{regenerated:?}");
}

#[test]
fn a_boot_medium_is_judged_on_its_boot_and_nothing_it_leaves_out_is_unjudged() {
    let mut f = clean();
    f.offline = Offline::Unreadable {
        reason: "ISO 9660".into(),
    };
    let sel = Selection {
        expect: Expect::Boot,
        ..Selection::default()
    };
    let r = evaluate(&f, &sel);
    assert_eq!(
        r.len(),
        CATALOGUE.len() + 2,
        "two per-boot checks judged per boot"
    );
    let judged: Vec<CheckId> = r
        .iter()
        .filter(|c| !c.evidence.starts_with("not judged"))
        .map(|c| c.id)
        .collect();
    assert_eq!(
        judged,
        [
            CheckId::BootUserspace,
            CheckId::BootUserspace,
            CheckId::ConsoleClean,
            CheckId::ConsoleClean
        ]
    );
    let left = r.iter().find(|c| c.id == CheckId::LogsClean).unwrap();
    assert_eq!(left.status, Status::Skip);
    assert!(left.evidence.contains("expect boot"), "{}", left.evidence);
    assert!(unjudged(&r, &sel).is_empty(), "{:?}", unjudged(&r, &sel));
    // A medium needs no login: nothing to collect but the console.
    assert!(sel.needs_boot() && !sel.needs(Need::Login) && !sel.needs(Need::PowerOff));
    // The same unreadable image as a server leaves rules unjudged.
    assert!(!unjudged(&evaluate(&f, &Selection::default()), &Selection::default()).is_empty());
}

#[test]
fn secure_boot_is_judged_on_uefi_boots_when_requested() {
    let mut f = clean();
    let judge = |f: &Facts| {
        evaluate(
            f,
            &Selection {
                only: vec![CheckId::BootSecureBoot],
                ..Selection::default()
            },
        )
        .into_iter()
        .map(|r| (r.status, r.evidence))
        .collect::<Vec<_>>()
    };
    assert!(judge(&f).iter().all(|(s, _)| *s == Status::Skip));
    f.firmware = Some(FirmwareFacts {
        firmwares: vec![Firmware::Bios, Firmware::Uefi],
        secure_boot: true,
        reason: "requested".into(),
        support: BootSupport::default(),
    });
    f.boots[1].firmware = Firmware::Uefi;
    f.boots[1].probe.as_mut().unwrap().secure_boot = SecureBootState {
        efi: true,
        enabled: Some(true),
        source: "SecureBoot EFI variable".into(),
    };
    let r = judge(&f);
    assert_eq!(r[0].0, Status::Skip, "a BIOS boot: {:?}", r[0]);
    assert_eq!(r[1].0, Status::Pass, "{:?}", r[1]);
    f.boots[1].probe.as_mut().unwrap().secure_boot.enabled = Some(false);
    assert_eq!(judge(&f)[1].0, Status::Fail);
    f.boots[1].probe.as_mut().unwrap().secure_boot.efi = false;
    assert!(judge(&f)[1].1.contains("no UEFI"));
}

#[test]
fn a_boot_silent_on_the_serial_console_names_its_screenshot() {
    let shot = |moment| Screenshot {
        moment,
        secs: 240.0,
        file: Screenshot::file_name(0, moment),
    };
    let mut f = clean();
    let b = &mut f.boots[0];
    b.console = ConsoleSummary::default();
    b.ssh_secs = None;
    b.screenshots = vec![shot(ShotMoment::Deadline)];
    assert_eq!(
        evidence(&f, "boot.userspace"),
        "no userspace before the deadline; no serial output; see boot0-deadline.png"
    );
    // SeaBIOS and GRUB mirrored to the serial port, then nothing (`console=tty0` only).
    let b = &mut f.boots[0];
    b.console.phases = vec![(Phase::Firmware, 0.5), (Phase::Bootloader, 2.0)];
    b.console.tail = vec!["Booting `Debian'".into()];
    b.console.lines = 1;
    assert_eq!(
        evidence(&f, "boot.userspace"),
        "no userspace before the deadline; no serial output after the bootloader (last \
         console line: Booting `Debian'); see boot0-deadline.png"
    );
    // A console that went on to the kernel: its last line, and the screen too.
    let b = &mut f.boots[0];
    b.console.phases.push((Phase::Kernel, 4.0));
    b.console.tail.push("Waiting for root".into());
    assert_eq!(
        evidence(&f, "boot.userspace"),
        "no userspace before the deadline; last console line: Waiting for root; see \
         boot0-deadline.png"
    );
}
