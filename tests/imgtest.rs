//! `imgtest` end to end, without the tiny server image: bad inputs, the catalogue, the
//! default config, an ISO booted from CD before the disk (grub-rescue-pc's real ISO),
//! and SIGINT leaving no QEMU, relay or temp file behind. Real QEMU under TCG.

mod common;

use common::sha256;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RESCUE_ISO: &str = "/usr/lib/grub-rescue/grub-rescue-cdrom.iso";

fn imgtest() -> Command {
    Command::new(env!("CARGO_BIN_EXE_imgtest"))
}

fn run(args: &[&str], cwd: &Path) -> (i32, String, String) {
    let out = imgtest()
        .args(args)
        .current_dir(cwd)
        .env("TMPDIR", cwd)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_inputs_exit_2_with_a_clear_message_and_are_left_alone() {
    let d = tempfile::tempdir().unwrap();
    let garbage = d.path().join("garbage.img");
    std::fs::write(
        &garbage,
        (0..200_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let empty = d.path().join("empty.img");
    std::fs::write(&empty, b"").unwrap();
    // A disk whose only partition runs past the end of the file.
    let truncated = d.path().join("truncated.img");
    std::fs::write(&truncated, vec![0u8; 4 << 20]).unwrap();
    let mut sf = Command::new("sfdisk")
        .arg("-q")
        .arg(&truncated)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    sf.stdin
        .take()
        .unwrap()
        .write_all(b"label: dos\nstart=2048, type=83\n")
        .unwrap();
    assert!(sf.wait().unwrap().success());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&truncated)
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    let compressed = d.path().join("disk.img.zst");
    std::fs::write(&compressed, b"\x28\xb5\x2f\xfd\x00\x00\x00\x00").unwrap();
    let cases = [
        (garbage.clone(), "not a disk image"),
        (empty.clone(), "empty file"),
        (truncated.clone(), "truncated image"),
        (compressed.clone(), "zstd-compressed; decompress it first"),
        (d.path().join("missing.img"), "no such file"),
    ];
    for (path, message) in cases {
        let before = path.exists().then(|| sha256(&path));
        let (code, _out, err) = run(&["run", "--accel", "tcg", path.to_str().unwrap()], d.path());
        assert_eq!(code, 2, "{}: {err}", path.display());
        assert!(err.contains(message), "{}: {err}", path.display());
        assert_eq!(
            before,
            path.exists().then(|| sha256(&path)),
            "{} changed",
            path.display()
        );
    }
    // Usage errors are "could not judge" too.
    let (code, _, err) = run(
        &["run", "--check", "no.such-check", garbage.to_str().unwrap()],
        d.path(),
    );
    assert_eq!(code, 2);
    assert!(err.contains("unknown check id(s): no.such-check"), "{err}");
    // Nothing left behind in the temp dir.
    common::assert_no_temp_left(d.path());
}

#[test]
fn checks_lists_the_catalogue_and_config_is_the_default() {
    let d = tempfile::tempdir().unwrap();
    let (code, out, _) = run(&["checks"], d.path());
    assert_eq!(code, 0);
    for id in [
        "boot.userspace",
        "metadata.password",
        "hostkeys.unique",
        "shutdown.clean",
        "firstboot.fail-safe",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(id)),
            "{id} missing:\n{out}"
        );
    }
    let (code, conf, _) = run(&["config"], d.path());
    assert_eq!(code, 0);
    // The printed default config is accepted back as a config file.
    std::fs::write(d.path().join("imgtest.toml"), &conf).unwrap();
    let (code, _, err) = run(&["run", "missing.img"], d.path());
    assert_eq!(code, 2);
    assert!(err.contains("no such file"), "{err}");
}

#[test]
fn iso_boots_from_cd_before_the_blank_disk() {
    let _vm = common::lock("vm");
    let d = tempfile::tempdir().unwrap();
    let iso = Path::new(RESCUE_ISO);
    let before = sha256(iso);
    let started = std::time::Instant::now();
    let art = d.path().join("art");
    let json = d.path().join("r.json");
    let (code, out, err) = run(
        &[
            "run",
            "--accel",
            "tcg",
            "--boots",
            "1",
            "-m",
            "256",
            "--artifacts",
            art.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
            RESCUE_ISO,
        ],
        d.path(),
    );
    // GRUB rescue never reaches userspace: the image fails, it is not an imgtest error,
    // and it fails when GRUB gives up on its entries, long before the 60 s x 4 deadline.
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        out.contains("FAIL  boot.userspace [boot 0, bios]")
            && out.contains("bootloader failed on the console:   Failed to boot both default and fallback entries"),
        "{out}"
    );
    assert!(
        started.elapsed().as_secs() < 180,
        "took {:?}",
        started.elapsed()
    );
    // A boot medium: the checks of the installed system are left out, and say so.
    assert!(
        out.contains("SKIP  logs.clean")
            && out.contains("not judged: the image is expected to be a boot medium"),
        "{out}"
    );
    let console = std::fs::read_to_string(art.join("boot0-console.log")).unwrap();
    let cd = console
        .find("Booting from DVD/CD")
        .expect("firmware booted the CD");
    assert!(
        !console[..cd].contains("Booting from Hard Disk"),
        "{console}"
    );
    assert!(console.contains("GRUB"), "{console}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report[0]["format"], "ISO 9660 (El Torito bootable)");
    let phases = report[0]["facts"]["boots"][0]["console"]["phases"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = phases.iter().map(|p| p[0].as_str().unwrap()).collect();
    assert_eq!(names, ["firmware", "bootloader"]);
    assert_eq!(sha256(iso), before);
}

fn processes_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(needle))
        .collect()
}

#[test]
fn sigint_leaves_no_qemu_relay_or_temp_file() {
    let _vm = common::lock("vm");
    let d = tempfile::tempdir().unwrap();
    let tmp: PathBuf = d.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut child = imgtest()
        .args([
            "run", "--accel", "tcg", "--boots", "2", "-m", "256", RESCUE_ISO,
        ])
        .env("TMPDIR", &tmp)
        .current_dir(d.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut pids = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut line = String::new();
    while pids.len() < 2 && Instant::now() < deadline {
        line.clear();
        if err.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(rest) = line.split("QEMU started under bios (pid ").nth(1) {
            pids.push(rest.split(',').next().unwrap().parse::<i32>().unwrap());
        }
    }
    assert_eq!(pids.len(), 2, "both boots started");
    let tmp_str = tmp.to_string_lossy().into_owned();
    assert!(
        !processes_mentioning(&tmp_str).is_empty(),
        "QEMU runs with its files in TMPDIR"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "imgtest did not stop after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(2));
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "QEMU {pid} survived"
        );
    }
    assert!(
        processes_mentioning(&tmp_str).is_empty(),
        "{:?}",
        processes_mentioning(&tmp_str)
    );
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A reader that stops early (`imgtest checks --json | head -1`) ends the listing quietly:
/// no panic about a broken pipe, as with any Unix filter.
#[test]
fn a_closed_stdout_ends_the_listing_quietly() {
    let mut child = imgtest()
        .args(["checks", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert!(!stderr.contains("Broken pipe"), "stderr: {stderr}");
    // Ended by SIGPIPE, as `cat` would be, or finished before the pipe closed: never a
    // panic's exit code 101.
    use std::os::unix::process::ExitStatusExt;
    assert!(
        out.status.signal() == Some(libc::SIGPIPE) || out.status.code() == Some(0),
        "{:?}, stderr: {stderr}",
        out.status
    );
}

/// An image whose root filesystem imgtest cannot read (here a FAT partition) is not a
/// pass: the rules only the image file shows are named and the run exits 2, unless
/// `--allow-unjudged`.
#[test]
fn a_rule_no_check_can_judge_exits_2_unless_allowed() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("fat.img");
    std::fs::write(&img, vec![0u8; 8 << 20]).unwrap();
    let mut sf = Command::new("sfdisk")
        .arg("-q")
        .arg(&img)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        sf.stdin.as_mut().unwrap(),
        b"label: dos\nstart=2048, type=c\n",
    )
    .unwrap();
    assert!(sf.wait().unwrap().success());
    // mkfs.vfat writes into the partition through its offset option on the image itself.
    assert!(
        Command::new("mkfs.vfat")
            .args(["--offset", "2048"])
            .arg(&img)
            .arg("6144")
            .status()
            .unwrap()
            .success()
    );
    let ids = [
        "logs.clean",
        "scripts.none",
        "leftovers.unowned",
        "hostkeys.absent",
    ];
    let mut args = vec!["run", "--accel", "tcg"];
    for id in &ids {
        args.extend(["--check", id]);
    }
    args.push(img.to_str().unwrap());
    let (code, out, err) = run(&args, d.path());
    assert_eq!(code, 2, "{out}\n{err}");
    for rule in ["rule 1 (leftovers)", "rule 3 (logs)", "rule 4 (identity)"] {
        assert!(
            err.contains(&format!("could not judge {rule}")),
            "{rule}: {err}"
        );
    }
    assert!(err.contains("every selected check was skipped"), "{err}");
    assert!(out.contains("COULD NOT JUDGE"), "{out}");
    args.insert(3, "--allow-unjudged");
    let (code, out, err) = run(&args, d.path());
    assert_eq!(code, 0, "{out}\n{err}");
    common::assert_no_temp_left(d.path());
}
