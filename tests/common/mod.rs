//! Shared helpers for the integration tests: cached test assets (the kernel cache, the
//! tiny root filesystem), building bootable disks with `fsmaker`, and booting them under
//! QEMU (TCG) with a deadline, reading the serial console.
//!
//! Assets live under `target/test-assets/` and are built once, guarded by file locks so
//! parallel test processes (nextest) share them. VMs are serialised by a lock too: the
//! machine is small and TCG is CPU-bound.
#![allow(dead_code)] // each test binary uses a different subset

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, flock};

/// The first line the tiny rootfs's init (`images/tiny/marker/sbin/init`) prints on the
/// serial console; `kernel=`, `root=`, `root_uuid=` and `cmdline=` lines follow.
pub const MARKER: &str = "IMGTEST-TINY-BOOTED";

/// The start of the marker's last line: once it is on the console, every line before it
/// is complete (the serial console delivers lines in pieces).
pub const MARKER_LAST: &str = "\ncmdline=";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `target/test-assets`, created on demand.
pub fn assets_dir() -> PathBuf {
    let d = repo().join("target/test-assets");
    std::fs::create_dir_all(&d).expect("create target/test-assets");
    d
}

/// An exclusive lock on `target/test-assets/NAME.lock`, held until dropped.
pub struct Lock(File);

pub fn lock(name: &str) -> Lock {
    let f = File::create(assets_dir().join(format!("{name}.lock"))).expect("create lock file");
    flock(&f, FlockOperation::LockExclusive).expect("flock");
    Lock(f)
}

/// Runs `cmd`, panicking with its output if it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The shared kernel cache (`target/test-assets/fsmaker-cache`), holding the pinned
/// kernel of `images/assets.toml` (fetched and checksummed by `images/fetch-assets.sh`),
/// imported once with `fsmaker kernel fetch DEB`.
pub fn kernel_cache() -> PathBuf {
    let cache = assets_dir().join("fsmaker-cache");
    let _l = lock("fsmaker-cache");
    let has_kernel = std::fs::read_dir(cache.join("kernels"))
        .map(|rd| rd.flatten().any(|e| e.path().join("kernel.json").is_file()))
        .unwrap_or(false);
    if !has_kernel {
        run_ok(
            fsmaker_in(&cache)
                .args(["kernel", "fetch"])
                .arg(kernel_deb()),
        );
    }
    cache
}

/// The shared kernel cache with the signed boot chain of `images/assets.toml` (shim,
/// Debian's signed GRUB) imported, for `fsmaker --secure-boot`.
pub fn signed_chain_cache() -> PathBuf {
    let cache = kernel_cache();
    let _l = lock("fsmaker-cache");
    if !cache.join("secure-boot/chain.json").is_file() {
        let o =
            run_ok(Command::new(repo().join("images/fetch-assets.sh")).args(["--role", "boot"]));
        let debs: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(debs.len(), 2, "{debs:?}");
        run_ok(
            fsmaker_in(&cache)
                .args(["secure-boot", "fetch"])
                .args(&debs),
        );
    }
    cache
}

/// The pinned kernel package of `images/assets.toml`, fetched and checksummed by
/// `images/fetch-assets.sh` (the one the shared kernel cache holds).
pub fn kernel_deb() -> PathBuf {
    let o = run_ok(Command::new(repo().join("images/fetch-assets.sh")).args(["--role", "kernel"]));
    let deb = String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .expect("a pinned kernel")
        .to_string();
    PathBuf::from(deb)
}

/// Runs `cmd` (program, arguments, environment) with a pseudo-terminal as its stdout and
/// stderr, 160 columns wide, under `script`; returns its exit code and everything it wrote
/// to the terminal, escape sequences and all.
pub fn on_a_terminal(cmd: &Command) -> (Option<i32>, String) {
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"));
    let words: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(quote)
        .collect();
    let line = format!("stty cols 160 && exec {}", words.join(" "));
    let mut script = Command::new("script");
    script.args(["-qec", &line, "/dev/null"]);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        script.current_dir(d);
    }
    let o = script
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

/// What a terminal shows line by line, roughly: `text` with escape sequences removed,
/// split at carriage returns and newlines (each redraw of a bar is one piece).
pub fn screen_pieces(text: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters final-byte.
            if chars.next_if_eq(&'[').is_some() {
                while chars.next().is_some_and(|c| !c.is_ascii_alphabetic()) {}
            }
            continue;
        }
        plain.push(c);
    }
    plain
        .split(['\r', '\n'])
        .map(str::to_string)
        .filter(|p| !p.trim().is_empty())
        .collect()
}

/// Whether a terminal transcript shows a spinner line with `words` (`{spinner} {elapsed}
/// {words}`, the spinner one of indicatif's frames).
pub fn shows_spinner(text: &str, words: &str) -> bool {
    screen_pieces(text).iter().any(|p| {
        p.split_once(words).is_some_and(|(before, _)| {
            let mut w = before.split_whitespace();
            let (spinner, elapsed) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
            spinner.chars().count() == 1
                && spinner.chars().all(|c| "⠁⠂⠄⡀⢀⠠⠐⠈".contains(c))
                && elapsed.starts_with(|c: char| c.is_ascii_digit())
                && w.next().is_none()
        })
    })
}

/// Whether a terminal transcript shows `words` followed by a full byte bar
/// (`25.48 MiB/25.48 MiB`, done equal to the total).
pub fn shows_full_bar(text: &str, words: &str) -> bool {
    screen_pieces(text).iter().any(|p| {
        p.split_once(words).is_some_and(|(_, after)| {
            let t: Vec<&str> = after.split_whitespace().take(3).collect();
            t.len() == 3 && t[1] == format!("{}/{}", t[2], t[0])
        })
    })
}

/// The version of the newest kernel in the shared cache.
pub fn cached_kernel_version() -> String {
    let cache = kernel_cache();
    let out = run_ok(fsmaker_in(&cache).args(["kernel", "list"]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .last()
        .and_then(|l| l.split('\t').next())
        .expect("a cached kernel")
        .to_string()
}

/// The directory of the newest cached kernel (vmlinuz, initrd.img, modules/).
pub fn cached_kernel_dir() -> PathBuf {
    kernel_cache().join("kernels").join(cached_kernel_version())
}

/// The `fsmaker` binary with its kernel cache set to `cache`.
pub fn fsmaker_in(cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fsmaker"));
    c.env("FSMAKER_CACHE", cache)
        .env_remove("SOURCE_DATE_EPOCH");
    c
}

/// The `fsmaker` binary using the shared kernel cache.
pub fn fsmaker() -> Command {
    fsmaker_in(&kernel_cache())
}

/// Makes a small busybox root filesystem of `kind` (ext2/ext3/ext4) and `size_mib` with
/// `mke2fs -d`, rootless, whose init is the tiny image's marker init. `extra` files are
/// (path inside, host file) pairs. (`images/tiny/build.sh` makes ext4 only.)
pub fn make_rootfs(out: &Path, kind: &str, size_mib: u64, extra: &[(&str, &Path)]) {
    let tree = tempfile::tempdir().expect("tempdir");
    let t = tree.path();
    for d in [
        "bin", "sbin", "proc", "sys", "dev", "etc", "root", "tmp", "boot",
    ] {
        std::fs::create_dir_all(t.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", t.join("bin/busybox")).expect("busybox-static is installed");
    let list = run_ok(Command::new("/bin/busybox").arg("--list"));
    for applet in String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|a| *a != "busybox")
    {
        std::os::unix::fs::symlink("busybox", t.join("bin").join(applet)).unwrap();
    }
    std::fs::copy(
        repo().join("images/tiny/marker/sbin/init"),
        t.join("sbin/init"),
    )
    .unwrap();
    std::fs::set_permissions(
        t.join("sbin/init"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    for (inside, host) in extra {
        let dest = t.join(inside.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(host, &dest).unwrap();
    }
    let _ = std::fs::remove_file(out);
    File::create(out).unwrap().set_len(size_mib << 20).unwrap();
    run_ok(
        Command::new("mke2fs")
            .args(["-q", "-F", "-t", kind, "-d"])
            .arg(t)
            .arg(out),
    );
}

/// The tiny marker root filesystem (ext4, `images/tiny/build.sh`), built once and cached
/// under `target/test-assets`.
pub fn tiny_rootfs() -> PathBuf {
    tiny("marker")
}

/// The tiny server root filesystem (busybox init, dropbear, firstboot), built once.
pub fn tiny_server_rootfs() -> PathBuf {
    tiny("server")
}

fn tiny(mode: &str) -> PathBuf {
    let name = if mode == "marker" {
        "tiny-rootfs"
    } else {
        "tiny-server"
    };
    let out = assets_dir().join(format!("{name}.ext4"));
    let _l = lock(name);
    if !out.is_file() {
        let tmp = assets_dir().join(format!("{name}.ext4.tmp"));
        run_ok(
            Command::new(repo().join("images/tiny/build.sh"))
                .args(["--mode", mode])
                .arg(&tmp),
        );
        std::fs::rename(&tmp, &out).unwrap();
    }
    out
}

/// A bootable disk DIR/NAME.img from the clean tiny server rootfs (NAME `clean`), or from
/// the defect `variant` of `images/defects/build.sh`, made with `fsmaker ... ARGS`.
pub fn tiny_disk(dir: &Path, variant: Option<&str>, fsmaker_args: &[&str]) -> PathBuf {
    let name = variant.unwrap_or("clean");
    let rootfs = match variant {
        None => tiny_server_rootfs(),
        Some(v) => {
            let out = dir.join(format!("{v}.ext4"));
            run_ok(
                Command::new(repo().join("images/defects/build.sh"))
                    .arg(v)
                    .arg(&out),
            );
            out
        }
    };
    let img = dir.join(format!("{name}.img"));
    run_ok(fsmaker().arg(&rootfs).arg(&img).args(fsmaker_args));
    img
}

/// Runs fsmaker ROOTFS OUT ARGS... and returns its stdout (panics on failure).
pub fn build_disk(rootfs: &Path, out: &Path, args: &[&str]) -> String {
    let o = run_ok(fsmaker().arg(rootfs).arg(out).args(args));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// How the disk is attached to the VM.
#[derive(Debug, Clone, Copy)]
pub enum Bus {
    Virtio,
    Ide,
}

/// A QEMU guest under TCG, its serial console going to a log file; the whole process
/// group is killed on drop.
pub struct Vm {
    child: Child,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
    _lock: Lock,
}

impl Vm {
    /// Boots `disk` (raw) under TCG with `mem_mib` of RAM and no network. The disk is
    /// opened read-only through a snapshot, so the image under test is never modified.
    pub fn boot(disk: &Path, bus: Bus, mem_mib: u32) -> Vm {
        let iface = match bus {
            Bus::Virtio => "virtio",
            Bus::Ide => "ide",
        };
        let drive = format!("file={},format=raw,if={iface}", disk.display());
        Vm::start(mem_mib, &["-snapshot", "-nic", "none", "-drive", &drive])
    }

    /// Starts QEMU under TCG with `mem_mib` of RAM, one CPU, the serial console in a log,
    /// and `args` for the rest (disks, kernel, network). Holds the suite's VM lock.
    pub fn start(mem_mib: u32, args: &[&str]) -> Vm {
        let lock = lock("vm");
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let child = Command::new("qemu-system-x86_64")
            .args(["-accel", "tcg", "-m", &mem_mib.to_string(), "-smp", "1"])
            .args(["-display", "none", "-no-reboot"])
            .args(["-monitor", "none", "-parallel", "none"])
            .arg("-serial")
            .arg(format!("file:{}", log.display()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(dir.path().join("qemu.stderr")).expect("create qemu.stderr"))
            .process_group(0)
            .spawn()
            .expect("qemu-system-x86_64 (run scripts/deps.sh)");
        Vm {
            child,
            log,
            _dir: dir,
            _lock: lock,
        }
    }

    /// What QEMU itself printed (errors about the command line, the disk, ...).
    pub fn qemu_stderr(&self) -> String {
        let p = self.log.with_file_name("qemu.stderr");
        String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned()
    }

    /// The console so far, lines ending in `\n` (the serial line sends CR LF).
    pub fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).replace("\r\n", "\n")
    }

    /// Waits until every one of `wanted` is on the console; panics (with the console
    /// tail) at the deadline. QEMU exiting first is only an error if something is missing.
    pub fn expect_all(&mut self, wanted: &[&str], deadline: Duration) -> String {
        let start = Instant::now();
        loop {
            let text = self.console();
            if wanted.iter().all(|w| text.contains(w)) {
                return text;
            }
            let exited = self.child.try_wait().expect("wait on qemu").is_some();
            if exited || start.elapsed() > deadline {
                let text = self.console();
                let tail: String = text
                    .lines()
                    .rev()
                    .take(40)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                let missing: Vec<&&str> = wanted.iter().filter(|w| !text.contains(**w)).collect();
                panic!(
                    "{} after {:?}: console lacks {missing:?}\n--- console tail ---\n{tail}\n--- qemu stderr ---\n{}",
                    if exited {
                        "QEMU exited"
                    } else {
                        "deadline passed"
                    },
                    start.elapsed(),
                    self.qemu_stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Waits for QEMU to exit by itself (e.g. the guest powered off); `None` at the deadline.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < deadline {
            if let Some(s) = self.child.try_wait().expect("wait on qemu") {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        None
    }

    /// The guest powers itself off: QEMU exits cleanly within the deadline.
    pub fn expect_poweroff(&mut self, deadline: Duration) {
        match self.wait_exit(deadline) {
            Some(status) => assert!(status.success(), "QEMU: {status}"),
            None => panic!("the guest did not power off:\n{}", self.console()),
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let pgid = rustix::process::Pid::from_child(&self.child);
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
            let _ = self.child.wait();
        }
    }
}

/// The sha256 of a file, streamed (images are large and sparse).
pub fn sha256(path: &Path) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match std::io::Read::read(&mut f, &mut buf).unwrap() {
            0 => break hex::encode(h.finalize()),
            n => h.update(&buf[..n]),
        }
    }
}

/// Fails if an `imgtest-*` temp file or directory was left in `dir`.
pub fn assert_no_temp_left(dir: &Path) {
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("imgtest-"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

/// What one `imgtest run` with a JSON report said.
pub struct Outcome {
    pub code: i32,
    pub out: String,
    pub err: String,
    pub report: serde_json::Value,
}

impl Outcome {
    /// The outcome of the `i`-th image of a run of several (same output, its report).
    pub fn image(&self, i: usize) -> Outcome {
        Outcome {
            code: self.code,
            out: self.out.clone(),
            err: self.err.clone(),
            report: serde_json::Value::Array(vec![self.report[i].clone()]),
        }
    }

    fn checks(&self) -> impl Iterator<Item = &serde_json::Value> {
        self.report[0]["checks"].as_array().into_iter().flatten()
    }

    /// The ids of the checks with `status` (pass, fail, skip), once each, in report order.
    pub fn ids(&self, status: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .checks()
            .filter(|c| c["status"] == status)
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect();
        ids.dedup();
        ids
    }

    /// Check `id`'s status, once per boot (once for an image-scope check).
    pub fn status(&self, id: &str) -> Vec<String> {
        self.field(id, "status")
    }

    /// Check `id`'s evidence, once per boot (once for an image-scope check).
    pub fn evidence(&self, id: &str) -> Vec<String> {
        self.field(id, "evidence")
    }

    fn field(&self, id: &str, field: &str) -> Vec<String> {
        self.checks()
            .filter(|c| c["id"] == id)
            .map(|c| c[field].as_str().unwrap().to_string())
            .collect()
    }

    /// The firmware of each boot, in boot order.
    pub fn firmwares(&self) -> Vec<String> {
        self.boots()
            .map(|b| b["firmware"].as_str().unwrap().to_string())
            .collect()
    }

    /// The phases boot `i`'s console reached, in order.
    pub fn phases(&self, i: usize) -> Vec<String> {
        self.report[0]["facts"]["boots"][i]["console"]["phases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[0].as_str().unwrap().to_string())
            .collect()
    }

    fn boots(&self) -> impl Iterator<Item = &serde_json::Value> {
        self.report[0]["facts"]["boots"]
            .as_array()
            .into_iter()
            .flatten()
    }

    /// Standard output and standard error, for assertion messages.
    pub fn log(&self) -> String {
        format!("{}\n{}", self.out, self.err)
    }
}

/// `imgtest run --accel tcg ARGS IMAGE` with its JSON report, artifacts and temp files in
/// `dir`, one VM test at a time (the `vm` lock). Asserts that the image file is unchanged
/// and that no temp file is left behind.
pub fn imgtest_run(dir: &Path, image: &Path, args: &[&str]) -> Outcome {
    imgtest_run_all(dir, &[image], args)
}

/// `imgtest run` of several images in one invocation; `Outcome::image(i)` is the i-th's.
pub fn imgtest_run_all(dir: &Path, images: &[&Path], args: &[&str]) -> Outcome {
    imgtest_run_watched(dir, images, args, |_| {})
}

/// [`imgtest_run_all`], calling `watch` with imgtest's process id every 50 ms while it
/// runs (to sample what it holds on the host).
pub fn imgtest_run_watched(
    dir: &Path,
    images: &[&Path],
    args: &[&str],
    mut watch: impl FnMut(u32),
) -> Outcome {
    let _vm = lock("vm");
    let before: Vec<String> = images.iter().map(|i| sha256(i)).collect();
    let json = dir.join("report.json");
    let _ = std::fs::remove_file(&json);
    let (out, err) = (dir.join("imgtest.stdout"), dir.join("imgtest.stderr"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_imgtest"))
        .args(["run", "--accel", "tcg"])
        .args(args)
        .arg("--json")
        .arg(&json)
        .arg("--artifacts")
        .arg(dir.join("artifacts"))
        .args(images)
        .env("TMPDIR", dir)
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        watch(child.id());
        std::thread::sleep(Duration::from_millis(50));
    };
    for (image, before) in images.iter().zip(before) {
        assert_eq!(sha256(image), before, "imgtest changed {}", image.display());
    }
    let read = |p: &Path| {
        let bytes = std::fs::read(p).unwrap();
        std::fs::remove_file(p).unwrap();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let (out, err) = (read(&out), read(&err));
    assert_no_temp_left(dir);
    Outcome {
        code: status.code().unwrap_or(-1),
        out,
        err,
        report: std::fs::read_to_string(&json)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default(),
    }
}

/// The check catalogue, as `imgtest checks --json` gives it.
pub fn catalogue() -> Vec<serde_json::Value> {
    let o = run_ok(Command::new(env!("CARGO_BIN_EXE_imgtest")).args(["checks", "--json"]));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// `--check ID` for every image-scope check of `imgtest checks --json`: judged without
/// booting.
pub fn image_checks() -> Vec<String> {
    let ids: Vec<String> = catalogue()
        .iter()
        .filter(|c| c["scope"] == "image")
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.len() >= 6, "image checks: {ids:?}");
    ids.iter()
        .flat_map(|id| ["--check".to_string(), id.clone()])
        .collect()
}

/// One table of `images/defects/variants.toml`: a defect variant of the test images.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// What it has that the clean image has not.
    pub description: String,
    /// The ids of the checks an `imgtest run` of it must fail, exactly these.
    pub fails: Vec<String>,
    /// The images it is built for: `tiny` (`images/defects/build.sh`), `debian`.
    pub images: Vec<String>,
}

/// Every defect variant of `images/defects/variants.toml`, by name.
pub fn variants() -> std::collections::BTreeMap<String, Variant> {
    let path = repo().join("images/defects/variants.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    toml::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// The names of the variants built for `image` (`tiny`, `debian`).
pub fn variants_of(image: &str) -> Vec<String> {
    variants()
        .into_iter()
        .filter(|(_, v)| v.images.iter().any(|i| i == image))
        .map(|(name, _)| name)
        .collect()
}

/// The check ids the defect `variant` must fail (`images/defects/variants.toml`).
pub fn defect_fails(variant: &str) -> Vec<String> {
    variants()
        .remove(variant)
        .unwrap_or_else(|| panic!("no variant {variant} in images/defects/variants.toml"))
        .fails
}
