//! `--accel auto` proves KVM from `/dev/kvm` itself: `imgtest doctor` with no kernel
//! anywhere (an empty cache) still answers, within the proof's deadline, says which test
//! decided and why, and leaves no proof process behind. What it answers is whatever this
//! host's device really does (here a nested `/dev/kvm` whose vCPUs crawl; elsewhere a
//! working one, or none): the reason must match the answer.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Processes running `program` (by their executable's path).
fn running(program: &Path) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == program)
        })
        .collect()
}

#[test]
fn doctor_proves_or_refutes_kvm_without_a_kernel_and_says_how() {
    let dir = tempfile::tempdir().unwrap();
    // A copy of the binary of our own, so that its processes are ours alone to count.
    let imgtest = dir.path().join("imgtest");
    std::fs::copy(env!("CARGO_BIN_EXE_imgtest"), &imgtest).unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    let started = Instant::now();
    let out = Command::new(&imgtest)
        .arg("doctor")
        .env("XDG_CACHE_HOME", &cache)
        .env("HOME", dir.path())
        .env_remove("FSMAKER_CACHE")
        .output()
        .unwrap();
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let kvm = stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("KVM"))
        .unwrap_or_else(|| panic!("no KVM line:\n{stdout}"));
    let verdict = stdout
        .lines()
        .find_map(|l| l.strip_prefix("accelerator for --accel auto: "))
        .unwrap_or_else(|| panic!("no accelerator line:\n{stdout}"));
    assert!(
        stdout.contains("kernel cache") && stdout.contains("none in"),
        "the cache is empty:\n{stdout}"
    );
    let device = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm");
    match device {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(kvm.contains("/dev/kvm not present"), "{kvm}");
            assert_eq!(verdict, "tcg");
        }
        Err(_) => {
            assert!(kvm.contains("permission denied"), "{kvm}");
            assert_eq!(verdict, "tcg");
        }
        Ok(_) if verdict == "kvm" => assert!(
            kvm.contains(
                "usable: a vCPU ran real, protected and long mode and 10 000 000 loop steps in"
            ),
            "{kvm}"
        ),
        Ok(_) => assert!(
            kvm.contains(
                "present but unusable: a vCPU did not run 10 000 000 loop steps within 1.5 s"
            ) || kvm.contains("present but unusable: KVM refused the proof's VM"),
            "{kvm}"
        ),
    }
    assert!(
        !kvm.contains("no kernel"),
        "the answer comes from /dev/kvm, not a kernel: {kvm}"
    );
    // The proof's deadline (1.5 s) bounds the doctor, whatever the device does; the rest
    // of the doctor's lines take well under a second, but the machine may be loaded.
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert_eq!(
        running(&imgtest),
        Vec::<u32>::new(),
        "a proof process was left"
    );
    // The answer is remembered for the next run, under the empty cache given.
    let remembered = std::fs::read_dir(cache.join("imgtest"))
        .map(|rd| rd.count())
        .unwrap_or(0);
    if device_opens() {
        assert_eq!(remembered, 1, "one remembered answer");
    }
}

fn device_opens() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}
