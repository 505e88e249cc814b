//! `imgtest shell` and `imgtest run --shell-on-failure`, driven as a person would drive
//! them: commands typed on stdin, the guest's answers read back. The tiny server image
//! under TCG: an SSH session as root with the metadata password (printed once, in no
//! file), the overlay kept on request; the serial console, where typed keys reach the
//! guest's getty and Ctrl-] leaves; and a failed boot check opening the session on a
//! terminal (a pty from `script`) before the guest is powered off.

mod common;

use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{lock, run_ok, sha256};

fn imgtest() -> Command {
    Command::new(env!("CARGO_BIN_EXE_imgtest"))
}

/// Starts `cmd` with stdin to type into and stdout read through [`lines`].
fn typed(cmd: &mut Command) -> (Child, mpsc::Receiver<String>) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines(&mut child);
    (child, rx)
}

/// Everything `child` writes on stdout, as it comes, through a channel (so a test waits
/// for the text it needs, with a deadline).
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut r = BufReader::new(out);
        let mut buf = Vec::new();
        // Prompts end without a newline: pass on what came, at each read.
        loop {
            let mut chunk = [0u8; 4096];
            match r.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            let text = String::from_utf8_lossy(&buf).into_owned();
            buf.clear();
            if tx.send(text).is_err() {
                break;
            }
        }
    });
    rx
}

/// Reads from `rx` until the text seen so far contains `want`; panics at the deadline.
fn wait_for(rx: &mpsc::Receiver<String>, seen: &mut String, want: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !seen.contains(want) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(t) => seen.push_str(&t),
            Err(_) => panic!("no {want:?} within {secs}s; so far:\n{seen}"),
        }
    }
}

#[test]
fn shell_logs_in_over_ssh_and_keeps_the_overlay_then_the_serial_console_takes_keys() {
    let d = tempfile::tempdir().unwrap();
    let img = common::tiny_disk(d.path(), None, &[]);
    let before = sha256(&img);
    let tmp = d.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let kept = d.path().join("kept.qcow2");
    let _vm = lock("vm");
    let mut child = imgtest()
        .args(["shell", "--accel", "tcg", "-m", "256", "--keep-overlay"])
        .arg(&kept)
        .arg(&img)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"echo in-the-guest-$((6*7)) $(id -un)\ncat /etc/hostname\nexit\n")
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("in-the-guest-42 root"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("imgtest-0-"),
        "the first-boot hostname: {stdout}"
    );
    // The password, once, on the terminal; no file of the run is left to hold it.
    let password = stderr
        .split("with the metadata password ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("the password is printed");
    assert_eq!(format!("{stdout}{stderr}").matches(password).count(), 1);
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
    // The overlay kept, backed by the untouched image.
    assert_eq!(sha256(&img), before);
    let info = run_ok(
        Command::new("qemu-img")
            .args(["info", "--output=json"])
            .arg(&kept),
    );
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["format"], "qcow2");
    assert_eq!(
        info["backing-filename"].as_str().map(PathBuf::from),
        Some(img.canonicalize().unwrap())
    );
    // An overlay file is never replaced.
    let again = imgtest()
        .args(["shell", "--keep-overlay"])
        .arg(&kept)
        .arg(&img)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    serial_console(&img, &tmp);
}

/// `--console`: the guest's serial console from the firmware on; a user name typed at the
/// getty's prompt gets its password prompt back; Ctrl-] leaves.
fn serial_console(img: &Path, tmp: &Path) {
    let (mut child, rx) = typed(
        imgtest()
            .args(["shell", "--console", "--accel", "tcg", "-m", "256"])
            .arg(img)
            .env("TMPDIR", tmp),
    );
    let mut seen = String::new();
    wait_for(&rx, &mut seen, "SeaBIOS", 60);
    wait_for(&rx, &mut seen, "login:", 300);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"root\r").unwrap();
    stdin.flush().unwrap();
    wait_for(&rx, &mut seen, "Password:", 60);
    stdin.write_all(b"\x1d").unwrap();
    stdin.flush().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{seen}");
    let left: Vec<_> = std::fs::read_dir(tmp).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn shell_on_failure_opens_the_failed_boot_on_a_terminal_and_is_refused_without_one() {
    let d = tempfile::tempdir().unwrap();
    // Without a terminal on stdin: refused before anything boots.
    let o = imgtest()
        .args(["run", "--shell-on-failure", "missing.img"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--shell-on-failure needs a terminal"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A boot script adds a builder's key: logins.runtime-keys fails on the running guest.
    let img = common::tiny_disk(d.path(), Some("boot-time-key"), &[]);
    let cmd = format!(
        "{} run --accel tcg -m 256 --boots 1 --check logins.runtime-keys --check \
         metadata.password --shell-on-failure {}",
        env!("CARGO_BIN_EXE_imgtest"),
        img.display()
    );
    // A failed run keeps its artifacts in ./imgtest-artifacts: here, not in the checkout.
    let cwd = d.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    let _vm = lock("vm");
    // `script` gives imgtest a pty as its terminal; what is typed here reaches it.
    let (mut child, rx) = typed(
        Command::new("script")
            .args(["-qfec", &cmd, "/dev/null"])
            .current_dir(&cwd)
            .env("TMPDIR", d.path()),
    );
    let mut seen = String::new();
    wait_for(&rx, &mut seen, "with the metadata password", 400);
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"echo keys-$((1+1)); cat /root/.ssh/authorized_keys; exit\r")
        .unwrap();
    stdin.flush().unwrap();
    wait_for(&rx, &mut seen, "keys-2", 60);
    let status = child.wait().unwrap();
    let rest: String = rx.try_iter().collect();
    seen.push_str(&rest);
    // The run goes on after the session: the verdict names the failed check.
    assert_eq!(status.code(), Some(1), "{seen}");
    assert!(
        seen.contains("FAIL  logins.runtime-keys [boot 0, bios]"),
        "{seen}"
    );
    assert!(seen.contains("ssh-"), "the guest's keys: {seen}");
    assert!(
        cwd.join("imgtest-artifacts/boot-time-key.img").is_dir(),
        "the failed run's artifacts"
    );
    common::assert_no_temp_left(d.path());
}
