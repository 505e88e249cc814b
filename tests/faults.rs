//! The fault suite: the three tools given what would lose data, leak a secret or blame the
//! image for the host, and interrupted (SIGINT, SIGTERM) or killed (SIGKILL) at several
//! moments of their work. Each case counts what is left behind (processes, temp files,
//! listening ports, partial outputs: the goal is none), checks that inputs kept their
//! bytes and that the exit code is the documented one: 2 for "could not judge", never 1
//! for the host's fault, never a panic's 101.
//!
//! Moments are found by what the tools print or start, never by waiting a fixed time.
//! Each case has its own TMPDIR and cache directory; VM cases take the suite's `vm` lock.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use common::sha256;

const IMGTEST: &str = env!("CARGO_BIN_EXE_imgtest");
const FSMAKER: &str = env!("CARGO_BIN_EXE_fsmaker");
const SPARSECOPY: &str = env!("CARGO_BIN_EXE_sparsecopy");
const RESCUE_ISO: &str = "/usr/lib/grub-rescue/grub-rescue-cdrom.iso";

/// How long a signalled tool may take to stop, and a guest to reach a moment.
const STOP: Duration = Duration::from_secs(30);
const BOOT: Duration = Duration::from_secs(240);

/// One case's own place: files, a TMPDIR and a cache directory for the tools it runs.
struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        for d in ["tmp", "cache"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        Case { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn tmp(&self) -> PathBuf {
        self.path("tmp")
    }

    /// `program` with this case's TMPDIR and caches, run in the case's directory.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.current_dir(self.dir.path())
            .env("TMPDIR", self.tmp())
            .env("XDG_CACHE_HOME", self.path("cache"))
            .env("FSMAKER_CACHE", common::kernel_cache());
        c
    }

    fn imgtest(&self, args: &[&str]) -> Command {
        let mut c = self.command(IMGTEST);
        c.args(args);
        c
    }

    /// The names left in TMPDIR.
    fn left(&self) -> Vec<String> {
        names(&self.tmp())
    }

    /// Whether the KVM probe ran (it remembers its answer in the cache).
    fn probed(&self) -> bool {
        !names(&self.path("cache/imgtest")).is_empty()
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Runs `cmd` to its end: exit code, stdout, stderr.
fn output(mut cmd: impl std::borrow::BorrowMut<Command>) -> (Option<i32>, String, String) {
    let o = cmd.borrow_mut().stdin(Stdio::null()).output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The pids and command lines of the processes whose command line holds `needle`.
fn processes_mentioning(needle: &str) -> Vec<(i32, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().parse::<i32>().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let zombie =
                std::fs::read_to_string(e.path().join("stat")).is_ok_and(|s| s.contains(") Z "));
            (cmd.contains(needle) && !zombie).then_some((pid, cmd))
        })
        .collect()
}

/// Polls `done` every 50 ms until it holds; fails naming `what` at `deadline`.
fn wait_until(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(t.elapsed() < deadline, "{what}: not after {deadline:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: a plain kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// The child's exit status; fails if it is still running after [`STOP`].
fn stopped(child: &mut Child) -> ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(t.elapsed() < STOP, "did not stop after the signal");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The lines a child writes on stderr, as they come.
fn stderr_lines(child: &mut Child) -> Receiver<String> {
    let err = child.stderr.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Reads lines until `n` of them hold `needle`; returns every line read.
fn until_lines(rx: &Receiver<String>, needle: &str, n: usize, deadline: Duration) -> Vec<String> {
    let t = Instant::now();
    let mut seen = Vec::new();
    while seen.iter().filter(|l: &&String| l.contains(needle)).count() < n {
        let left = deadline.saturating_sub(t.elapsed());
        match rx.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("no {n} line(s) with {needle:?} after {deadline:?}:\n{seen:#?}"),
        }
    }
    seen
}

/// The QEMU pids and SSH ports of `QEMU started (pid N, ssh 127.0.0.1:P)` lines.
fn started(lines: &[String]) -> Vec<(i32, u16)> {
    lines
        .iter()
        .filter_map(|l| {
            let rest = l.split("QEMU started (pid ").nth(1)?;
            let (pid, rest) = rest.split_once(", ssh 127.0.0.1:")?;
            Some((pid.parse().ok()?, rest.trim_end_matches(')').parse().ok()?))
        })
        .collect()
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Nothing of a stopped or killed run is left: no process with a file in `tmp`, none of
/// its QEMUs, no SSH port of theirs listening.
fn nothing_runs(tmp: &Path, qemus: &[(i32, u16)]) {
    let tmp = tmp.to_string_lossy().into_owned();
    wait_until("every process of the run gone", STOP, || {
        processes_mentioning(&tmp).is_empty()
            && qemus
                .iter()
                .all(|(pid, _)| !Path::new(&format!("/proc/{pid}")).exists())
    });
    for (_, port) in qemus {
        assert!(!listening(*port), "port {port} still listens");
    }
}

/// A raw image imgtest recognises but cannot read offline (a boot sector, no
/// filesystem): image-scope checks judge it without booting.
fn unreadable_image(c: &Case) -> PathBuf {
    let img = c.path("disk.img");
    let mut b = vec![0u8; 1 << 20];
    b[510..512].copy_from_slice(&[0x55, 0xaa]);
    std::fs::write(&img, b).unwrap();
    img
}

#[test]
fn outputs_that_would_lose_data_are_refused_before_any_boot() {
    let c = Case::new();
    let img = unreadable_image(&c);
    let before = sha256(&img);
    std::fs::create_dir(c.path("mine")).unwrap();
    std::fs::write(c.path("mine/thesis.tex"), "mine").unwrap();
    std::fs::write(c.path("data.img"), "data").unwrap();
    std::fs::create_dir(c.path("art")).unwrap();
    let image = img.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--json", image], "the JSON report"),
        (&["--junit", "disk.img"], "which this command reads"),
        (
            &["--disk", "data.img", "--html", "data.img"],
            "which this command reads",
        ),
        (
            &["--json", "r.xml", "--junit", "./r.xml"],
            "are the same file",
        ),
        (&["--json", "no/such/dir/r.json"], "does not exist"),
        (
            &["--artifacts", "mine"],
            "holds files imgtest did not write",
        ),
        (&["--artifacts", "."], "holds files imgtest did not write"),
        (
            &["--artifacts", "art", "--json", "art/r.json"],
            "inside the artifacts",
        ),
    ];
    for (args, message) in cases {
        let (code, out, err) = output(c.imgtest(&["run"]).args(*args).arg(&img));
        assert_eq!(code, Some(2), "{args:?}: {out}{err}");
        assert!(err.contains(message), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(!err.contains("accelerator"), "{args:?}: {err}");
    }
    assert_eq!(sha256(&img), before, "the image is untouched");
    assert_eq!(std::fs::read(c.path("mine/thesis.tex")).unwrap(), b"mine");
    assert_eq!(std::fs::read(c.path("data.img")).unwrap(), b"data");
    assert!(!c.path("r.xml").exists() && !c.probed() && c.left().is_empty());
}

#[test]
fn matrix_and_merge_outputs_are_checked_like_run_s() {
    let c = Case::new();
    let rootfs = c.path("rootfs.ext4");
    std::fs::write(&rootfs, vec![7u8; 1 << 16]).unwrap();
    let shard = c.path("shard.json");
    std::fs::write(&shard, "{}").unwrap();
    let before = (sha256(&rootfs), sha256(&shard));
    let matrix = ["matrix", "rootfs.ext4", "--kernel", "6.1.0-56-cloud-amd64"];
    let cases: &[(&[&str], &[&str], &str)] = &[
        (
            &matrix,
            &["--html", "rootfs.ext4"],
            "which this command reads",
        ),
        (
            &matrix,
            &["--html", "r.x", "--json", "./r.x"],
            "are the same file",
        ),
        (
            &["report", "merge", "shard.json"],
            &["--html", "shard.json"],
            "which this command reads",
        ),
        (
            &["report", "merge", "shard.json"],
            &["--html", "r.x", "--junit", "r.x"],
            "are the same file",
        ),
    ];
    for (command, outputs, message) in cases {
        let (code, out, err) = output(c.imgtest(command).args(*outputs));
        assert_eq!(code, Some(2), "{outputs:?}: {out}{err}");
        assert!(err.contains(message), "{outputs:?}: {err}");
        assert!(err.contains("the HTML report"), "{outputs:?}: {err}");
    }
    assert_eq!(
        (sha256(&rootfs), sha256(&shard)),
        before,
        "the inputs are untouched"
    );
    assert!(!c.path("r.x").exists() && !c.probed() && c.left().is_empty());
}

#[test]
fn a_previous_artifacts_directory_is_replaced_as_a_whole() {
    let c = Case::new();
    let img = unreadable_image(&c);
    let art = c.path("art");
    std::fs::create_dir(&art).unwrap();
    // What an earlier run wrote, before artifacts directories were marked.
    std::fs::write(art.join("boot0-console.log"), "old console").unwrap();
    std::fs::write(art.join("report.json"), "[]").unwrap();
    let (code, out, err) = output(c.imgtest(&[
        "run",
        "--check",
        "logs.clean",
        "--allow-unjudged",
        "--artifacts",
        "art",
        img.to_str().unwrap(),
    ]));
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        names(&art),
        [
            ".imgtest-artifacts",
            "metadata-requests.jsonl",
            "report.html",
            "report.json"
        ],
        "the old console log is gone with its run"
    );
    assert!(c.left().is_empty(), "{:?}", c.left());
}

#[test]
fn numbers_no_run_can_mean_are_usage_errors_not_panics() {
    let c = Case::new();
    let img = unreadable_image(&c);
    let image = img.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--timeout", "1000000000000000h"],
            "longer than the 24h maximum",
        ),
        (
            &["--timeout", "login=0s"],
            "the login timeout must be longer than 0s",
        ),
        (&["--boots", "1000"], "boots must be from 1 to 16, not 1000"),
        (&["-m", "99999999"], "the boots do not fit"),
        (
            &["--metadata-fault", "delay=48h"],
            "longer than the 24h maximum",
        ),
    ];
    for (args, message) in cases {
        let (code, out, err) = output(c.imgtest(&["run", "--accel", "tcg"]).args(*args).arg(image));
        assert_eq!(code, Some(2), "{args:?}: {out}{err}");
        assert!(
            err.contains(message) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("QEMU started"), "{args:?}: {err}");
    }
    // A merged report with a negative duration.
    let shard = r#"{"rootfs":"r","specs":["a"],"shard":null,"duration_secs":-5.0,
        "kernels":[{"index":0,"spec":"a","kernel":null,"verdict":"error","error":"x",
        "build_secs":1.0,"report":null}]}"#;
    std::fs::write(c.path("shard.json"), shard).unwrap();
    let (code, _, err) = output(c.imgtest(&["report", "merge", "shard.json"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("duration_secs -5 is not a number of seconds"),
        "{err}"
    );
    // The same kernel as the good and the bad end.
    let (code, _, err) = output(c.imgtest(&[
        "bisect", "--accel", "tcg", image, "--good", "6.1.0-9", "--bad", "6.1.0-9",
    ]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("kernel 6.1.0-9 is named twice"), "{err}");
    assert!(c.left().is_empty() && !c.probed(), "{:?}", c.left());
}

/// MiB of guest RAM of which one VM fits the host's available memory and two do not.
fn one_vm_fits() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kib / 1024 * 6 / 10
}

#[test]
fn the_memory_check_counts_what_the_boots_really_get() {
    let c = Case::new();
    let mib = one_vm_fits().to_string();
    // An ISO boots with iso-memory, not -m's default.
    std::fs::write(c.path("iso.toml"), format!("iso-memory = {mib}\n")).unwrap();
    // --firmware both boots twice even when one boot is asked for.
    let img = unreadable_image(&c);
    let image = img.to_str().unwrap();
    let cases: &[&[&str]] = &[
        &["--config", "iso.toml", "--boots", "2", RESCUE_ISO],
        &["--firmware", "both", "--boots", "1", "-m", &mib, image],
    ];
    for args in cases {
        let (code, out, err) = output(c.imgtest(&["run", "--accel", "tcg"]).args(*args));
        assert_eq!(code, Some(2), "{args:?}: {out}{err}");
        assert!(
            err.contains(&format!("the boots do not fit: 2 VM(s) of {mib} MiB")),
            "{args:?}: {err}"
        );
        assert!(err.contains("lower --boots or --memory"), "{args:?}: {err}");
        assert!(!err.contains("QEMU started"), "{args:?}: {err}");
    }
    assert!(c.left().is_empty());
}

#[test]
fn a_missing_or_corrupt_image_is_said_before_the_probe_or_any_boot() {
    let c = Case::new();
    let (code, _, err) = output(c.imgtest(&["run", "missing.img"]));
    assert_eq!(code, Some(2));
    assert!(err.contains("missing.img: no such file"), "{err}");
    // A qcow2 with data, cut short: its header still reads.
    let q = c.path("cut.qcow2");
    common::run_ok(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&q)
            .arg("64M"),
    );
    common::run_ok(
        Command::new("qemu-io")
            .args(["-c", "write -P 0x55 0 8M"])
            .arg(&q),
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(&q)
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    let before = sha256(&q);
    let (code, _, err) = output(c.imgtest(&["run", "cut.qcow2"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("cut.qcow2: corrupt image: qemu-img check found"),
        "{err}"
    );
    assert_eq!(sha256(&q), before);
    assert!(!err.contains("accelerator"), "{err}");
    assert!(!c.probed() && c.left().is_empty(), "{:?}", c.left());
}

#[test]
fn a_qemu_that_cannot_start_the_guest_is_the_host_s_fault() {
    let _vm = common::lock("vm");
    let c = Case::new();
    let (code, out, err) = output(c.imgtest(&[
        "run", "--accel", "tcg", "--boots", "1", "--smp", "9999", RESCUE_ISO,
    ]));
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(
        err.contains("QEMU could not run the guest: Invalid SMP CPUs 9999"),
        "{err}"
    );
    assert!(!out.contains("FAIL"), "the image is not blamed: {out}");
    nothing_runs(&c.tmp(), &[]);
    assert!(c.left().is_empty(), "{:?}", c.left());
}

#[test]
fn doctor_tells_a_broken_kvm_from_none_and_checks_what_matrix_needs() {
    let c = Case::new();
    let (code, out, err) = output(c.imgtest(&["doctor"]));
    assert!(code == Some(0) || code == Some(2), "{out}{err}");
    assert!(
        !out.contains("imgtest doctor"),
        "it does not refer to itself:\n{out}"
    );
    let kvm = out
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("KVM"))
        .expect("a KVM line");
    let present = Path::new("/dev/kvm").exists();
    assert!(
        kvm.contains("usable")
            || kvm.contains(if present {
                "present but unusable"
            } else {
                "not present"
            }),
        "{kvm}"
    );
    for need in [
        "GRUB i386-pc",
        "grub-mkimage",
        "debugfs",
        "dpkg-deb",
        "kernel cache",
    ] {
        assert!(out.contains(need), "{need}:\n{out}");
    }
}

#[test]
fn fsmaker_kernel_fetch_of_a_directory_is_refused() {
    let c = Case::new();
    for fetch in [["kernel", "fetch"], ["secure-boot", "fetch"]] {
        let (code, _, err) = output(c.command(FSMAKER).args(fetch).arg(c.path("tmp")));
        assert_eq!(code, Some(2), "{fetch:?}: {err}");
        assert!(
            err.contains("a directory, not a .deb file"),
            "{fetch:?}: {err}"
        );
        let (code, _, err) = output(c.command(FSMAKER).args(fetch).arg("gone.deb"));
        assert_eq!(code, Some(2), "{fetch:?}: {err}");
        assert!(err.contains("gone.deb: no such file"), "{fetch:?}: {err}");
    }
}

#[test]
fn fsmaker_writes_only_a_regular_file() {
    let c = Case::new();
    let rootfs = common::tiny_rootfs();
    let fifo = c.path("fifo");
    common::run_ok(Command::new("mkfifo").arg(&fifo));
    let socket = c.path("socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::fs::create_dir(c.path("dir")).unwrap();
    let cases = [
        (PathBuf::from("/dev/null"), "is a character device"),
        (fifo.clone(), "is a FIFO"),
        (socket.clone(), "is a socket"),
        (c.path("dir"), "is a directory"),
    ];
    for (out, message) in &cases {
        let (code, _, err) = output(c.command(FSMAKER).arg(&rootfs).arg(out).arg("--force"));
        assert_eq!(code, Some(2), "{}: {err}", out.display());
        assert!(
            err.contains(message) && err.contains("fsmaker writes a regular file"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let null = std::fs::metadata("/dev/null").unwrap();
    assert!(
        null.file_type().is_char_device(),
        "/dev/null is still a device"
    );
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert!(names(&c.path("dir")).is_empty());
    assert_eq!(
        names(c.dir.path()),
        ["cache", "dir", "fifo", "socket", "tmp"]
    );
}

/// A directory of stand-ins for fsmaker's helpers that block at the moment a test wants:
/// when `$FAULT_AT` names it and its arguments hold `when`, one writes its pid to
/// `ready/NAME` and sleeps instead of running; otherwise it runs the real program.
fn blocking_helpers(c: &Case, helpers: &[(&str, &str)]) -> PathBuf {
    let bin = c.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(c.path("ready")).unwrap();
    for (name, when) in helpers {
        let real = String::from_utf8(
            common::run_ok(Command::new("sh").args(["-c", &format!("command -v {name}")])).stdout,
        )
        .unwrap();
        let script = format!(
            "#!/bin/sh\ncase \"$FAULT_AT: $* \" in \"{name}:\"*\"{when}\"*) echo $$ > '{}/{name}'; exec sleep 600;; esac\nexec {} \"$@\"\n",
            c.path("ready").display(),
            real.trim()
        );
        let p = bin.join(name);
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    bin
}

/// Starts fsmaker with `args`, its helpers from `bin` first, and waits until the helper
/// `name` blocks; returns fsmaker and the helper's pid.
fn fsmaker_at(c: &Case, bin: &Path, args: &[&str], name: &str) -> (Child, i32) {
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let mut child = c
        .command(FSMAKER)
        .args(args)
        .env("PATH", path)
        .env("FAULT_AT", name)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ready = c.path("ready").join(name);
    wait_until(&format!("fsmaker runs {name}"), STOP, || {
        ready.is_file() || child.try_wait().unwrap().is_some()
    });
    let Ok(pid) = std::fs::read_to_string(&ready) else {
        panic!("fsmaker ended before {name}: {}", stderr_of(&mut child));
    };
    std::fs::remove_file(&ready).unwrap();
    (child, pid.trim().parse().unwrap())
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[test]
fn fsmaker_interrupted_or_killed_leaves_out_as_it_was_and_no_temp_file() {
    let c = Case::new();
    let rootfs = common::tiny_rootfs();
    let r = rootfs.to_str().unwrap();
    let helpers = [
        ("resize2fs", " "),
        ("debugfs", " -w "),
        ("qemu-img", "convert"),
    ];
    let bin = blocking_helpers(&c, &helpers);
    let out = c.path("out.img");
    std::fs::write(&out, "the user's old image").unwrap();
    let o = out.to_str().unwrap();
    let moments: [(&[&str], &str, i32); 4] = [
        (
            &[r, o, "--force", "--size", "400M", "--grow"],
            "resize2fs",
            libc::SIGINT,
        ),
        (&[r, o, "--force"], "debugfs", libc::SIGTERM),
        (
            &[r, o, "--force", "--format", "qcow2"],
            "qemu-img",
            libc::SIGKILL,
        ),
        (&[r, o, "--force"], "debugfs", libc::SIGKILL),
    ];
    for (args, helper, sig) in moments {
        let (mut child, helper_pid) = fsmaker_at(&c, &bin, args, helper);
        signal(&child, sig);
        let status = stopped(&mut child);
        if sig == libc::SIGKILL {
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&status),
                Some(sig)
            );
        } else {
            assert_eq!(status.code(), Some(2), "signal {sig}");
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            assert!(
                err.contains("fsmaker: interrupted; OUT was not written"),
                "{err}"
            );
        }
        wait_until(
            &format!("{helper} {helper_pid} gone with fsmaker"),
            STOP,
            || !alive(helper_pid),
        );
        assert_eq!(
            std::fs::read(&out).unwrap(),
            b"the user's old image",
            "{helper}, signal {sig}"
        );
        let mut here = names(c.dir.path());
        here.retain(|n| !["bin", "cache", "ready", "tmp", "out.img"].contains(&n.as_str()));
        assert!(here.is_empty(), "left next to OUT: {here:?}");
    }
    // Killed builds left their private work dirs; the next build removes them.
    let work = c.left();
    assert!(work.iter().all(|n| n.starts_with("fsmaker-")), "{work:?}");
    owners_gone_long_enough(&c.tmp(), &work);
    common::run_ok(c.command(FSMAKER).arg(&rootfs).arg(c.path("next.img")));
    assert!(c.left().is_empty(), "{:?}", c.left());
}

/// Waits until the owner locks of `dirs` in `tmp` are as old as a later run wants before
/// it removes a directory whose owner is gone (3 s: the owner could be between making
/// its lock file and taking the lock).
fn owners_gone_long_enough(tmp: &Path, dirs: &[String]) {
    wait_until("the dead owners' locks are 3 s old", STOP, || {
        dirs.iter().all(|d| {
            std::fs::metadata(tmp.join(d).join(".owner.lock"))
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|a| a >= Duration::from_secs(3)))
        })
    });
}

/// A zero-free pattern, so that every block of it is data.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 | 1).collect()
}

/// Starts sparsecopy reading a pipe this test writes: `feed` bytes then (unless `hold`)
/// the end of the pipe, and returns it and the count of bytes the pipe took so far.
fn sparsecopy_from_pipe(
    c: &Case,
    args: &[&str],
    feed: usize,
) -> (Child, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let mut child = c
        .command(SPARSECOPY)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let fed = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = fed.clone();
    std::thread::spawn(move || {
        let data = pattern(1 << 20);
        let mut sent = 0;
        while sent < feed {
            if pipe.write_all(&data).is_err() {
                return;
            }
            sent += data.len();
            counter.store(sent, Ordering::SeqCst);
        }
        // Keep the pipe open, idle: only a signal ends the copy.
        std::thread::sleep(STOP * 2);
    });
    (child, fed)
}

fn stderr_of(child: &mut Child) -> String {
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    err
}

#[test]
fn sparsecopy_interrupted_or_killed_leaves_no_partial_dst() {
    use std::sync::atomic::Ordering;
    let c = Case::new();
    // Idle on an empty pipe, then SIGINT: the DST it would create does not appear.
    let (mut child, _) = sparsecopy_from_pipe(&c, &["-q", "-", "new.img"], 0);
    // Its signal guard is a thread of its own: once it is there, signals are handled.
    let tasks = format!("/proc/{}/task", child.id());
    wait_until("sparsecopy's signal guard", STOP, || {
        names(Path::new(&tasks)).len() >= 2
    });
    signal(&child, libc::SIGINT);
    assert_eq!(stopped(&mut child).code(), Some(2));
    let err = stderr_of(&mut child);
    assert_eq!(
        err.trim(),
        "sparsecopy: error: interrupted; DST was not created"
    );
    // Mid-stream into an existing DST, then SIGTERM: left as written, and said so.
    let old = vec![0xaau8; 64 << 20];
    std::fs::write(c.path("old.img"), &old).unwrap();
    let (mut child, fed) = sparsecopy_from_pipe(&c, &["-q", "-", "old.img"], 16 << 20);
    wait_until("16 MiB through the pipe", STOP, || {
        fed.load(Ordering::SeqCst) >= 16 << 20
    });
    signal(&child, libc::SIGTERM);
    assert_eq!(stopped(&mut child).code(), Some(2));
    let err = stderr_of(&mut child);
    let to: usize = err
        .split("written from byte 0 up to byte ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("says how far: {err}"));
    let now = std::fs::read(c.path("old.img")).unwrap();
    assert!(to > 0 && to <= 16 << 20, "{err}");
    assert_eq!(
        &now[..to],
        &pattern(1 << 20).repeat(16)[..to],
        "written as said"
    );
    assert!(now[to..].iter().all(|&b| b == 0xaa), "the rest untouched");
    // Mid-stream into a new DST, then SIGKILL: nothing of it is left.
    let (mut child, fed) = sparsecopy_from_pipe(&c, &["-q", "-", "killed.img"], 16 << 20);
    wait_until("16 MiB through the pipe", STOP, || {
        fed.load(Ordering::SeqCst) >= 16 << 20
    });
    signal(&child, libc::SIGKILL);
    stopped(&mut child);
    assert_eq!(names(c.dir.path()), ["cache", "old.img", "tmp"]);
}

#[test]
fn sparsecopy_verify_of_a_named_pipe_compares_what_it_copied_and_ends() {
    let c = Case::new();
    let fifo = c.path("fifo");
    common::run_ok(Command::new("mkfifo").arg(&fifo));
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(fifo, pattern(3 << 20)).unwrap())
    };
    let mut child = c
        .command(SPARSECOPY)
        .args(["--verify", "fifo", "copy.img"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = stopped(&mut child);
    writer.join().unwrap();
    assert_eq!(status.code(), Some(0), "{}", stderr_of(&mut child));
    assert_eq!(std::fs::read(c.path("copy.img")).unwrap(), pattern(3 << 20));
}

/// Starts `imgtest run ARGS` with its stderr read line by line.
fn imgtest_spawn(c: &Case, args: &[&str]) -> (Child, Receiver<String>) {
    let mut child = c
        .imgtest(&["run"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = stderr_lines(&mut child);
    (child, rx)
}

#[test]
fn sigterm_during_the_boots_leaves_nothing() {
    let _vm = common::lock("vm");
    let c = Case::new();
    let before = sha256(Path::new(RESCUE_ISO));
    let (mut child, rx) = imgtest_spawn(&c, &["--accel", "tcg", "-m", "256", RESCUE_ISO]);
    let lines = until_lines(&rx, "QEMU started", 2, BOOT);
    signal(&child, libc::SIGTERM);
    assert_eq!(stopped(&mut child).code(), Some(2));
    nothing_runs(&c.tmp(), &started(&lines));
    assert!(c.left().is_empty(), "{:?}", c.left());
    assert_eq!(sha256(Path::new(RESCUE_ISO)), before);
}

#[test]
fn sigkill_leaves_no_qemu_and_a_later_run_removes_the_temp_dir() {
    let _vm = common::lock("vm");
    let c = Case::new();
    // Three moments: while the KVM probe may run (a fresh cache, `--accel auto`) beside the
    // offline phase; once both QEMUs started; once GRUB runs in the guests.
    let moments: [(&[&str], &str, usize); 3] = [
        (&["-m", "256", RESCUE_ISO], "offline:", 1),
        (
            &["--accel", "tcg", "-m", "256", RESCUE_ISO],
            "QEMU started",
            2,
        ),
        (
            &["--accel", "tcg", "-m", "256", RESCUE_ISO],
            "bootloader at",
            2,
        ),
    ];
    for (args, line, n) in moments {
        let (mut child, rx) = imgtest_spawn(&c, args);
        let lines = until_lines(&rx, line, n, BOOT);
        let probe = processes_mentioning("-accel kvm");
        signal(&child, libc::SIGKILL);
        stopped(&mut child);
        nothing_runs(&c.tmp(), &started(&lines));
        for (pid, _) in probe {
            wait_until("the KVM probe's QEMU gone", STOP, || !alive(pid));
        }
    }
    let dead = c.left();
    assert!(
        !dead.is_empty() && dead.iter().all(|d| d.starts_with("imgtest-")),
        "{dead:?}"
    );
    owners_gone_long_enough(&c.tmp(), &dead);
    let img = unreadable_image(&c);
    let (code, out, err) = output(c.imgtest(&[
        "run",
        "--accel",
        "tcg",
        "--check",
        "logs.clean",
        "--allow-unjudged",
        img.to_str().unwrap(),
    ]));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        c.left().is_empty(),
        "a later run removed {dead:?}: {:?}",
        c.left()
    );
}

/// The inodes of the TCP sockets process `pid` listens on.
fn tcp_listeners_of(pid: u32) -> Vec<u64> {
    let inodes: Vec<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let l = std::fs::read_link(e.path()).ok()?;
            l.to_string_lossy()
                .strip_prefix("socket:[")?
                .trim_end_matches(']')
                .parse()
                .ok()
        })
        .collect();
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap()
        + &std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    tcp.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // State 0A: LISTEN.
            (f.get(3) == Some(&"0A")).then(|| f.get(9)?.parse().ok())?
        })
        .filter(|i| inodes.contains(i))
        .collect()
}

#[test]
fn secrets_stay_with_their_user_during_a_run() {
    let _vm = common::lock("vm");
    let c = Case::new();
    let (mut child, rx) = imgtest_spawn(&c, &["--accel", "tcg", "-m", "256", RESCUE_ISO]);
    let lines = until_lines(&rx, "QEMU started", 2, BOOT);
    let run = c.tmp().join(
        c.left()
            .into_iter()
            .find(|d| d.starts_with("imgtest-"))
            .unwrap(),
    );
    assert_eq!(std::fs::metadata(&run).unwrap().mode() & 0o777, 0o700);
    for f in names(&run) {
        let mode = std::fs::symlink_metadata(run.join(&f)).unwrap().mode();
        assert_eq!(mode & 0o077, 0, "{f} is {mode:o}: others may use it");
    }
    // The relay QEMU runs gets a socket path, no token, no password.
    for (pid, _) in started(&lines) {
        let argv =
            String::from_utf8(std::fs::read(format!("/proc/{pid}/cmdline")).unwrap()).unwrap();
        let relay = argv.split("__relay ").nth(1).expect("a metadata relay");
        let words: Vec<&str> = relay
            .split(['\0', ','])
            .next()
            .unwrap()
            .split(' ')
            .collect();
        assert_eq!(words.len(), 1, "only the socket: {relay}");
        assert!(words[0].contains(&*run.to_string_lossy()), "{relay}");
    }
    assert_eq!(
        tcp_listeners_of(child.id()),
        Vec::<u64>::new(),
        "imgtest listens on no TCP port"
    );
    if rustix::process::geteuid().is_root() {
        // Another local user cannot read the run's files or reach its metadata sockets.
        let nobody = |cmd: &str| {
            Command::new("setpriv")
                .args([
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "sh",
                    "-c",
                    cmd,
                ])
                .status()
                .unwrap()
                .success()
        };
        let target = run.join("boot0-metadata.sock");
        assert!(!nobody(&format!(
            "cat '{}'/boot0.qcow2 >/dev/null",
            run.display()
        )));
        assert!(!nobody(&format!("ls '{}'", run.display())));
        assert!(!nobody(&format!("[ -e '{}' ]", target.display())));
    }
    signal(&child, libc::SIGINT);
    assert_eq!(stopped(&mut child).code(), Some(2));
    nothing_runs(&c.tmp(), &started(&lines));
    assert!(c.left().is_empty(), "{:?}", c.left());
}

#[test]
fn fsmaker_refuses_kernel_arguments_grub_would_change() {
    let c = Case::new();
    let rootfs = common::tiny_rootfs();
    for append in ["it's", "a\\b", "line\nbreak", r#"p="open"#] {
        let (code, _, err) = output(
            c.command(FSMAKER)
                .arg(&rootfs)
                .arg("out.img")
                .args(["--append", append]),
        );
        assert_eq!(code, Some(2), "{append:?}: {err}");
        assert!(err.contains("cannot be written into grub.cfg"), "{err}");
        assert!(err.contains("(change --append)"), "{err}");
    }
    assert!(!c.path("out.img").exists() && c.left().is_empty());
}
