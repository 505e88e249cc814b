//! `imgtest run` end to end on the real tiny server image (busybox init, dropbear,
//! firstboot) made bootable by fsmaker, under TCG: the clean image passes with two
//! parallel boots; a qcow2 works; each planted defect fails exactly its check id with
//! exit 1; a kernel that cannot find root fails fast; a metadata service that never
//! answers leaves the image locked (fail safe). The image file never changes.
//!
//! Defect variants come from images/defects/build.sh (one planted defect each), the check
//! ids each must fail from images/defects/variants.toml, the disks from fsmaker. The HTML reports these runs leave are read in a real browser; an
//! image whose console is VGA only is judged over SSH and shown in screenshots.

#[path = "support/browser.rs"]
mod browser;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Outcome, defect_fails, run_ok};

use common::tiny_disk as disk;

/// `imgtest run` with the tiny image's small RAM.
fn imgtest(dir: &Path, image: &Path, args: &[&str]) -> Outcome {
    common::imgtest_run(dir, image, &[&["-m", "256"], args].concat())
}

#[test]
fn clean_tiny_image_passes_with_two_parallel_boots() {
    let d = tempfile::tempdir().unwrap();
    let img = disk(d.path(), None, &[]);
    let junit = d.path().join("junit.xml");
    let o = imgtest(d.path(), &img, &["--junit", junit.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{}\n{}", o.out, o.err);
    assert!(o.ids("fail").is_empty());
    for id in ["hostkeys.unique", "machine-id.unique"] {
        assert_eq!(o.status(id), ["pass"], "{id}\n{}", o.out);
    }
    assert_eq!(o.status("metadata.password"), ["pass", "pass"]);
    assert_eq!(o.status("firstboot.disabled"), ["pass", "pass"]);
    // One boot tried a wrong password and was stopped at once; the other powered off.
    assert_eq!(o.status("ssh.wrong-password"), ["pass"], "{}", o.out);
    let mut shutdown = o.status("shutdown.clean");
    shutdown.sort();
    assert_eq!(shutdown, ["pass", "skip"], "{}", o.out);
    // Each boot fetched its own password; the logs never carry it.
    let art = d.path().join("artifacts");
    let requests = std::fs::read_to_string(art.join("metadata-requests.jsonl")).unwrap();
    for boot in 0..2 {
        assert!(
            requests
                .lines()
                .any(|l| l.contains(&format!("\"boot\":{boot}"))
                    && l.contains("initial-password")
                    && l.contains("\"status\":200")),
            "{requests}"
        );
    }
    let console = std::fs::read_to_string(art.join("boot0-console.log")).unwrap();
    assert!(console.contains("firstboot: done"), "{console}");
    assert_eq!(
        o.phases(0),
        ["firmware", "bootloader", "kernel", "userspace", "login"]
    );
    let xml = std::fs::read_to_string(junit).unwrap();
    assert!(
        xml.contains("<testcase name=\"hostkeys.unique\"") && xml.contains("failures=\"0\""),
        "{xml}"
    );
    passing_report_in_a_browser(&o, &art);
}

/// The passing run's `report.html` as a browser shows it: the verdict, a timeline lane per
/// boot with every phase and harness moment, and each boot's screenshots (real PNGs of
/// the VGA screen, kept beside it).
fn passing_report_in_a_browser(o: &Outcome, art: &Path) {
    let dom = browser::dom(&art.join("report.html"));
    assert!(dom.contains("<span class=\"verdict\">PASS</span>"), "{dom}");
    for phase in ["firmware", "bootloader", "kernel", "userspace", "login"] {
        let lanes = dom.matches(&format!("data-phase=\"{phase}\"")).count();
        assert_eq!(lanes, 2, "{phase} on each boot's lane");
    }
    for mark in ["ssh", "password", "probe"] {
        assert_eq!(
            dom.matches(&format!("data-mark=\"{mark}\"")).count(),
            2,
            "{mark}"
        );
    }
    // One boot was powered off with the button, the other stopped at once.
    assert_eq!(dom.matches("data-mark=\"power-off\"").count(), 1);
    let row = browser::row(&dom, "data-check=\"metadata.password\"");
    assert!(
        row.contains("PASS") && row.contains("console line"),
        "{row}"
    );
    for boot in 0..2 {
        let shots = &o.report[0]["facts"]["boots"][boot]["screenshots"];
        let moments: Vec<&str> = shots
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["moment"].as_str().unwrap())
            .collect();
        assert_eq!(moments, ["userspace", "login", "inspect"], "boot {boot}");
        let png = std::fs::read(art.join(format!("boot{boot}-userspace.png"))).unwrap();
        assert_eq!(browser::png_size(&png), (720, 400), "the VGA text screen");
    }
    assert_eq!(dom.matches("src=\"data:image/png;base64,").count(), 6);
}

/// One boot (no power-off) of the clean image made with `fsmaker_args`.
fn one_boot(dir: &Path, fsmaker_args: &[&str]) -> Outcome {
    let img = disk(dir, None, fsmaker_args);
    imgtest(dir, &img, &["--boots", "1", "--skip", "shutdown.clean"])
}

#[test]
fn qcow2_image_works() {
    let d = tempfile::tempdir().unwrap();
    let o = one_boot(d.path(), &["--format", "qcow2"]);
    assert_eq!(o.code, 0, "{}\n{}", o.out, o.err);
    assert_eq!(o.report[0]["format"], "qcow2");
    // Offline facts were read through a raw conversion, not skipped.
    assert_eq!(o.status("logs.clean"), ["pass"]);
    assert_eq!(o.status("metadata.password"), ["pass"]);
}

/// The defect `variant` fails exactly its check ids (`images/defects/variants.toml`) with
/// one boot.
fn defect(variant: &str, extra: &[&str]) {
    let d = tempfile::tempdir().unwrap();
    let img = disk(d.path(), Some(variant), &[]);
    let mut args = vec!["--boots", "1", "--skip", "shutdown.clean"];
    args.extend_from_slice(extra);
    let o = imgtest(d.path(), &img, &args);
    assert_eq!(o.code, 1, "{variant}: {}\n{}", o.out, o.err);
    assert_eq!(o.ids("fail"), defect_fails(variant), "{variant}: {}", o.out);
}

#[test]
fn defect_fixed_password() {
    defect("fixed-password", &[]);
}

#[test]
fn defect_dirty_logs() {
    defect("dirty-logs", &[]);
}

#[test]
fn defect_baked_host_keys() {
    defect("baked-host-keys", &[]);
}

#[test]
fn defect_leftover_test_scripts() {
    defect("test-scripts", &[]);
}

#[test]
fn defect_machine_id_set() {
    defect("machine-id", &[]);
}

#[test]
fn defect_firstboot_missing() {
    // Without firstboot root stays locked: the login deadline is kept short.
    defect("no-firstboot", &["--timeout", "login=5s"]);
}

/// Hygiene defects the image file shows, each failing exactly its check: a file a real
/// build leaves behind, under a name no list of examples has.
const OFFLINE_DEFECTS: &[&str] = &[
    "authorized-key",
    "shadow-backup",
    "rhosts",
    "random-seed",
    "dbus-machine-id",
    "private-key",
    "persistent-net",
    "cloud-init-state",
    "crash-dump",
    "mail-spool",
    "dhcp-lease",
    "tmp-files",
    "unowned-script",
    "package-cache",
];

#[test]
fn each_offline_hygiene_defect_fails_exactly_its_check() {
    let d = tempfile::tempdir().unwrap();
    let images: Vec<PathBuf> = OFFLINE_DEFECTS
        .iter()
        .map(|v| disk(d.path(), Some(v), &[]))
        .collect();
    let paths: Vec<&Path> = images.iter().map(PathBuf::as_path).collect();
    let checks = common::image_checks();
    let args: Vec<&str> = checks.iter().map(String::as_str).collect();
    let o = common::imgtest_run_all(d.path(), &paths, &args);
    assert_eq!(o.code, 1, "{}\n{}", o.out, o.err);
    for (i, variant) in OFFLINE_DEFECTS.iter().enumerate() {
        let r = o.image(i);
        let ids = defect_fails(variant);
        assert_eq!(r.ids("fail"), ids, "{variant}: {}", r.out);
        // Each file with its size and mode; the package cache (a warning: it does not fail
        // the image) with the total.
        let id = ids[0].as_str();
        let (evidence, verdict) = match id {
            "logs.package-cache" => ("cached package file(s), 4.0 KiB", "pass"),
            _ => ("bytes, mode", "fail"),
        };
        let said = r.evidence(id).join(" ");
        assert!(said.contains(evidence), "{variant}: {said}");
        assert_eq!(r.report[0]["verdict"], verdict, "{variant}");
    }
    // --fail-fast: an offline failure ends the run before any boot.
    let o = imgtest(d.path(), &images[0], &["--fail-fast"]);
    assert_eq!(o.code, 1, "{}\n{}", o.out, o.err);
    assert_eq!(o.ids("fail"), defect_fails(OFFLINE_DEFECTS[0]), "{}", o.out);
    assert!(!o.err.contains("QEMU started"), "{}", o.err);
    assert!(o.report[0]["facts"]["boots"].as_array().unwrap().is_empty());
    assert!(
        o.evidence("boot.userspace")[0].contains("failing fast: stopped before booting"),
        "{}",
        o.out
    );
}

#[test]
fn online_hygiene_defects_fail_exactly_their_check() {
    let d = tempfile::tempdir().unwrap();
    let cases = [
        // Clean offline: a boot script adds a builder's key; only the running guest shows it.
        "boot-time-key",
        // dropbear -B lets accounts with a blank password in.
        "dropbear-blank",
    ];
    let images: Vec<PathBuf> = cases.iter().map(|v| disk(d.path(), Some(v), &[])).collect();
    let paths: Vec<&Path> = images.iter().map(PathBuf::as_path).collect();
    let o = common::imgtest_run_all(
        d.path(),
        &paths,
        &["-m", "256", "--boots", "1", "--skip", "shutdown.clean"],
    );
    assert_eq!(o.code, 1, "{}\n{}", o.out, o.err);
    for (i, variant) in cases.iter().enumerate() {
        let r = o.image(i);
        assert_eq!(r.ids("fail"), defect_fails(variant), "{variant}: {}", r.out);
        // The metadata service's own key is expected; empty passwords were refused.
        assert_eq!(r.status("logins.empty-password"), ["pass"], "{variant}");
    }
    assert!(
        o.image(0).evidence("logins.runtime-keys")[0].contains("root: ssh-ed25519"),
        "{}",
        o.out
    );
}

#[test]
fn kernel_that_cannot_find_root_fails_fast_with_the_console_evidence() {
    let d = tempfile::tempdir().unwrap();
    let img = disk(
        d.path(),
        Some("no-root"),
        &["--append", "root=UUID=00000000-0000-0000-0000-000000000000"],
    );
    let t = std::time::Instant::now();
    let o = imgtest(d.path(), &img, &["--boots", "1", "--timeout", "boot=150s"]);
    assert_eq!(o.code, 1, "{}\n{}", o.out, o.err);
    assert_eq!(o.ids("fail"), defect_fails("no-root"), "{}", o.out);
    let failure = &o.report[0]["facts"]["boots"][0]["console"]["failure"];
    assert!(
        failure["kind"] == "root-not-found" || failure["kind"] == "kernel-panic",
        "{failure}"
    );
    assert!(
        o.out.contains("console tail of boot 0 (bios):"),
        "{}",
        o.out
    );
    // Fail fast: long before the 150s x 4 boot deadline.
    assert!(t.elapsed().as_secs() < 240, "took {:?}", t.elapsed());
    // The page a reviewer opens: the failure, its row linked to the console line that
    // showed it, that line highlighted.
    let page = d.path().join("artifacts/report.html");
    let dom = browser::dom(&page);
    assert!(dom.contains("<span class=\"verdict\">FAIL</span>"), "{dom}");
    let line = o.report[0]["facts"]["boots"][0]["console"]["failure_line"]
        .as_u64()
        .unwrap();
    let row = browser::row(&dom, "class=\"check fail\" data-check=\"boot.userspace\"");
    assert!(row.contains(">FAIL<"), "{row}");
    assert!(
        row.contains(&format!("href=\"#i0-b0-l{line}\">console line {line}</a>")),
        "{row}"
    );
    assert!(
        dom.contains(&format!(
            "<span class=\"line failure\" id=\"i0-b0-l{line}\">"
        )),
        "{dom}"
    );
    // Failures come first: the failed check is the page's first check row.
    let first = browser::row(&dom, "<tr class=\"check");
    assert!(first.contains("boot.userspace"), "{first}");
    let png = browser::screenshot(&page, 1200, 900);
    assert_eq!(browser::png_size(&png), (1200, 900));
    // The same page again from the saved JSON and the artifacts beside it.
    let again = d.path().join("again.html");
    let r = run_ok(
        Command::new(env!("CARGO_BIN_EXE_imgtest"))
            .args(["report", "html"])
            .arg(d.path().join("report.json"))
            .arg("-o")
            .arg(&again),
    );
    assert!(r.status.success());
    let redone = browser::dom(&again);
    assert!(
        redone.contains(&format!("id=\"i0-b0-l{line}\"")),
        "{redone}"
    );
}

/// An image whose kernel and userspace talk only on the VGA console (`8250.nr_uarts=0`:
/// no serial port at all after GRUB): its online checks still run over SSH, and its
/// screen is in the screenshots. When it does not boot, the evidence says the serial
/// console was silent and names the screenshot of the deadline.
#[test]
fn an_image_with_a_vga_only_console_is_judged_over_ssh_and_photographed() {
    let d = tempfile::tempdir().unwrap();
    let o = one_boot(d.path(), &["--append", "8250.nr_uarts=0"]);
    assert_eq!(o.code, 0, "{}\n{}", o.out, o.err);
    assert_eq!(o.evidence("boot.userspace"), ["an SSH server answered"]);
    assert_eq!(o.status("metadata.password"), ["pass"]);
    assert_eq!(o.status("logins.sshd-config"), ["pass"]);
    let console = std::fs::read_to_string(d.path().join("artifacts/boot0-console.log")).unwrap();
    assert!(
        !console.contains("Linux version"),
        "the kernel was silent on the serial port"
    );
    let shot = std::fs::read(d.path().join("artifacts/boot0-userspace.png")).unwrap();
    assert_eq!(browser::png_size(&shot), (720, 400));
    // The same console with a root that never appears: the initrd waits (30 s) on the VGA
    // screen only, and the boot deadline (5 s x 4 under TCG) comes first.
    let broken = d.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    let img = disk(
        &broken,
        None,
        &[
            "--append",
            "8250.nr_uarts=0 root=UUID=00000000-0000-0000-0000-000000000000",
        ],
    );
    let o = imgtest(&broken, &img, &["--boots", "1", "--timeout", "boot=5s"]);
    assert_eq!(o.code, 1, "{}\n{}", o.out, o.err);
    let said = o.evidence("boot.userspace").join(" ");
    assert!(
        said.contains("no serial output after the bootloader")
            && said.ends_with("see boot0-deadline.png"),
        "{said}"
    );
    let shot = std::fs::read(broken.join("artifacts/boot0-deadline.png")).unwrap();
    assert_eq!(browser::png_size(&shot), (720, 400));
}

#[test]
fn metadata_that_never_answers_leaves_the_image_locked() {
    let d = tempfile::tempdir().unwrap();
    let img = disk(d.path(), None, &[]);
    let o = imgtest(
        d.path(),
        &img,
        &[
            "--boots",
            "1",
            "--metadata-fault",
            "never",
            "--timeout",
            "login=10s",
            "--skip",
            "shutdown.clean",
        ],
    );
    assert_eq!(o.code, 0, "{}\n{}", o.out, o.err);
    assert_eq!(o.status("firstboot.fail-safe"), ["pass"], "{}", o.out);
    assert_eq!(o.status("metadata.password"), ["skip"]);
    let requests =
        std::fs::read_to_string(d.path().join("artifacts/metadata-requests.jsonl")).unwrap();
    assert!(
        requests.contains("initial-password") && requests.contains("\"status\":null"),
        "{requests}"
    );
}

#[test]
fn tiny_server_iso_boots_from_cd_and_passes() {
    let d = tempfile::tempdir().unwrap();
    let iso = tiny_iso(d.path());
    iso_boots_as_a_medium_under_both_firmwares(d.path(), &iso);
    iso_passes_as_a_server(d.path(), &iso);
}

/// The tiny server as a live CD (BIOS and UEFI) in `dir`.
fn tiny_iso(dir: &Path) -> PathBuf {
    let kernel = common::cached_kernel_dir();
    let version = common::cached_kernel_version();
    // images/tiny/build.sh takes modules from DIR/lib/modules/VERSION.
    let mods = dir.join("kernel");
    std::fs::create_dir_all(mods.join("lib/modules")).unwrap();
    std::os::unix::fs::symlink(
        kernel.join("modules"),
        mods.join("lib/modules").join(&version),
    )
    .unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let initrd = dir.join("tiny.cpio.gz");
    run_ok(
        Command::new(repo.join("images/tiny/build.sh"))
            .args(["--mode", "server", "--format", "cpio", "--modules-from"])
            .arg(&mods)
            .arg(&initrd),
    );
    let iso = dir.join("tiny.iso");
    run_ok(
        Command::new(repo.join("images/iso/build.sh"))
            .arg(kernel.join("vmlinuz"))
            .arg(&initrd)
            .arg(&iso),
    );
    iso
}

/// The default for an ISO: a boot medium, judged on its boots alone.
fn iso_boots_as_a_medium_under_both_firmwares(dir: &Path, iso: &Path) {
    // An ISO is a boot medium by default: it must boot from the CD to its userspace under
    // each firmware it supports (BIOS and UEFI here, one boot each); first-boot and
    // hygiene checks are left out, and leaving them out is no unjudged rule. The server's
    // further disks follow the CD in order, each on its own overlay, never written.
    let (first, second) = (dir.join("first.raw"), dir.join("second.qcow2"));
    std::fs::File::create(&first)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    run_ok(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&second)
            .arg("96M"),
    );
    let before = (common::sha256(&first), common::sha256(&second));
    let o = imgtest(
        dir,
        iso,
        &[
            "--disk",
            first.to_str().unwrap(),
            "--disk",
            second.to_str().unwrap(),
        ],
    );
    assert_eq!(o.code, 0, "{}\n{}", o.out, o.err);
    assert_eq!((common::sha256(&first), common::sha256(&second)), before);
    assert_eq!(o.report[0]["format"], "ISO 9660 (El Torito bootable)");
    assert_eq!(o.firmwares(), ["bios", "uefi"]);
    assert_eq!(o.status("boot.userspace"), ["pass", "pass"], "{}", o.out);
    assert!(
        o.evidence("metadata.password")[0].contains("expect boot"),
        "{}",
        o.out
    );
    assert!(o.report[0].get("unjudged").is_none(), "{}", o.report);
    let uefi = std::fs::read_to_string(dir.join("artifacts/boot1-console.log")).unwrap();
    let cd = uefi
        .find("BdsDxe: starting Boot0001 \"UEFI QEMU DVD-ROM")
        .expect("OVMF booted the CD first");
    assert!(!uefi[..cd].contains("HARDDISK"), "{uefi}");
}

/// `--expect server`: the live system's first boot judged like a disk's.
fn iso_passes_as_a_server(dir: &Path, iso: &Path) {
    // The same CD as a live server with a first-boot agent: judged as a server.
    let o = imgtest(
        dir,
        iso,
        &[
            "--expect",
            "server",
            "--firmware",
            "bios",
            "--boots",
            "1",
            "--skip",
            "shutdown.clean",
            "--allow-unjudged",
        ],
    );
    assert_eq!(o.code, 0, "{}\n{}", o.out, o.err);
    assert_eq!(o.status("metadata.password"), ["pass"]);
    assert_eq!(o.status("logs.clean"), ["skip"]);
    // What only the image file shows cannot be judged from a CD: named, allowed here.
    let unjudged = o.report[0]["unjudged"].to_string();
    assert!(
        unjudged.contains("rule 1 (leftovers)") && unjudged.contains("rule 3 (logs)"),
        "{unjudged}"
    );
    let console = std::fs::read_to_string(dir.join("artifacts/boot0-console.log")).unwrap();
    let cd = console
        .find("Booting from DVD/CD")
        .expect("the firmware booted the CD");
    assert!(
        !console[..cd].contains("Booting from Hard Disk"),
        "{console}"
    );
}

#[test]
fn debian_installer_cd_boots_to_its_installer_under_both_firmwares() {
    // A real install CD: debian-installer's netboot kernel and initrd (pinned in
    // images/assets.toml), on the serial console, under the default (a boot medium, RAM
    // for an installer: no -m here).
    let d = tempfile::tempdir().unwrap();
    let iso = d.path().join("installer.iso");
    run_ok(
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("images/iso/installer-iso.sh"))
            .arg(&iso),
    );
    let o = common::imgtest_run(d.path(), &iso, &[]);
    assert_eq!(o.code, 0, "{}", o.log());
    assert_eq!(o.firmwares(), ["bios", "uefi"]);
    assert_eq!(o.status("boot.userspace"), ["pass", "pass"], "{}", o.out);
    for boot in 0..2 {
        let log = d.path().join(format!("artifacts/boot{boot}-console.log"));
        let console = std::fs::read_to_string(log).unwrap();
        assert!(console.contains("Run /init as init process"), "{console}");
    }
}
