//! The Debian package as a team adopting imgtest installs it: `scripts/package.sh` packs the
//! binaries this suite built, `apt-get install ./imgtest_*.deb` installs it on this machine
//! (as CI does on its own), and the installed tools, not `target/`, do the demo: `imgtest
//! doctor`, the tiny server image built with the scripts under `/usr/share/imgtest`, made
//! bootable by `/usr/bin/fsmaker` and passed by `/usr/bin/imgtest run`; `man imgtest-run`
//! renders. The package is removed again at the end, also when an assertion fails.
//! Needs root (apt-get), like the suite's Debian image tests.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{assets_dir, kernel_cache, lock, run_ok};

/// Removes the installed package when dropped.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = apt(&["remove", "-y", "-q", "imgtest"]);
    }
}

fn apt(args: &[&str]) -> Output {
    Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .expect("apt-get")
}

/// `scripts/package.sh --bin-dir DIR OUT` with the binaries this suite built.
fn package(out: &Path) -> PathBuf {
    let bins = Path::new(env!("CARGO_BIN_EXE_imgtest")).parent().unwrap();
    let o = run_ok(
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/package.sh"))
            .arg("--bin-dir")
            .arg(bins)
            .arg(out),
    );
    let deb = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    let name = deb.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("imgtest_") && name.ends_with("_amd64.deb"),
        "{name}"
    );
    deb
}

/// A program of the installed package, run from a directory outside the checkout.
fn installed(program: &str, cwd: &Path) -> Command {
    let mut c = Command::new(format!("/usr/bin/{program}"));
    c.current_dir(cwd).env("TMPDIR", cwd);
    c
}

#[test]
fn the_package_installs_with_apt_and_its_tools_pass_the_demo() {
    assert!(
        rustix::process::geteuid().is_root(),
        "installing a package needs root"
    );
    let _l = lock("package");
    let d = tempfile::tempdir().unwrap();
    let deb = package(d.path());
    let contents =
        String::from_utf8_lossy(&run_ok(Command::new("dpkg-deb").arg("-c").arg(&deb)).stdout)
            .into_owned();
    for file in [
        "./usr/bin/imgtest",
        "./usr/share/man/man1/imgtest-run.1.gz",
        "./usr/share/bash-completion/completions/imgtest",
        "./usr/share/imgtest/harness/firstboot/firstboot",
        "./usr/share/imgtest/images/tiny/build.sh",
        "./usr/share/doc/imgtest/README.md.gz",
        "./usr/share/doc/imgtest/docs/checks.md.gz",
    ] {
        assert!(
            contents.contains(file),
            "{file} not in the package:\n{contents}"
        );
    }
    let o = apt(&["install", "-y", "-q", deb.to_str().unwrap()]);
    let _installed = Installed;
    assert!(
        o.status.success(),
        "apt-get install: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let work = d.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let doctor = run_ok(installed("imgtest", &work).arg("doctor"));
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert!(said.contains("ok       qemu-system-x86_64"), "{said}");
    demo(&work);
    let man = run_ok(
        Command::new("man")
            .args(["-P", "cat", "imgtest-run"])
            .env("MANWIDTH", "100"),
    );
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(
        page.contains("imgtest-run") && page.contains("artifacts"),
        "{page}"
    );
    drop(_installed);
    assert!(!Path::new("/usr/bin/imgtest").exists(), "removed again");
}

/// The tiny server image built by the installed scripts and tools, passed by the
/// installed `imgtest run` (the relay QEMU runs is the installed binary too).
fn demo(work: &Path) {
    let rootfs = work.join("tiny.ext4");
    run_ok(
        installed_script("/usr/share/imgtest/images/tiny/build.sh", work)
            .args(["--mode", "server"])
            .arg(&rootfs),
    );
    let img = work.join("tiny.img");
    run_ok(
        installed("fsmaker", work)
            .env("FSMAKER_CACHE", kernel_cache())
            .arg(&rootfs)
            .arg(&img),
    );
    let _vm = lock("vm");
    let out = installed("imgtest", work)
        .args(["run", "--accel", "tcg", "-m", "256", "--boots", "1"])
        .args(["--skip", "shutdown.clean", "--artifacts", "art"])
        .arg(&img)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("PASS  metadata.password [boot 0, bios]"),
        "{stdout}"
    );
    assert!(work.join("art/report.html").is_file());
}

/// An installed script, with the suite's cache of pinned packages (no download).
fn installed_script(path: &str, cwd: &Path) -> Command {
    let mut c = Command::new(path);
    c.current_dir(cwd).env("IMGTEST_ASSETS", assets_dir());
    c
}
