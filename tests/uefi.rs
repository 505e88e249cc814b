//! UEFI, GPT and Secure Boot end to end, under OVMF (TCG): the tiny server built by fsmaker
//! as a GPT hybrid disk passes `imgtest run` under both firmwares (one boot each); with its
//! ESP emptied the UEFI boot fails with the firmware's reason while the BIOS one passes; a
//! UEFI-only disk passes under UEFI and fails fast under BIOS; with Secure Boot the signed
//! chain (shim, Debian's GRUB and kernel) passes and an unsigned GRUB is refused by the
//! firmware at once. Each image is built once and booted once per property.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::{Outcome, run_ok};

/// The tiny server made bootable by fsmaker with `args`.
fn disk(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let img = dir.join(format!("{name}.img"));
    run_ok(
        common::fsmaker()
            .arg(common::tiny_server_rootfs())
            .arg(&img)
            .args(args),
    );
    img
}

/// `imgtest run` with the tiny image's RAM (384 MiB: OVMF's Secure Boot build
/// triple-faults the kernel with 256 MiB here).
fn imgtest(dir: &Path, image: &Path, args: &[&str]) -> Outcome {
    common::imgtest_run(dir, image, args)
}

#[test]
fn hybrid_gpt_image_passes_under_both_firmwares() {
    let d = tempfile::tempdir().unwrap();
    let img = disk(
        d.path(),
        "hybrid",
        &["--table", "gpt", "--firmware", "hybrid"],
    );
    let store = Path::new("/usr/share/OVMF/OVMF_VARS_4M.fd");
    let store_before = common::sha256(store);
    let junit = d.path().join("junit.xml");
    // The default: the image offers both, so the two boots take one firmware each.
    let o = imgtest(d.path(), &img, &["--junit", junit.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{}", o.log());
    assert_eq!(o.firmwares(), ["bios", "uefi"]);
    let why = o.report[0]["facts"]["firmware"]["reason"].as_str().unwrap();
    assert!(
        why.contains("boot code in the MBR") && why.contains("EFI/BOOT/BOOTX64.EFI"),
        "{why}"
    );
    assert_eq!(o.status("metadata.password"), ["pass", "pass"]);
    assert_eq!(o.status("hostkeys.unique"), ["pass"]);
    // The firmware, bootloader, kernel and userspace of the UEFI boot, in order.
    assert_eq!(
        o.phases(1),
        ["firmware", "bootloader", "kernel", "userspace", "login"]
    );
    let xml = std::fs::read_to_string(junit).unwrap();
    assert!(
        xml.contains("name=\"boot.userspace [boot 0, bios]\"")
            && xml.contains("name=\"boot.userspace [boot 1, uefi]\""),
        "{xml}"
    );
    // OVMF ran on a private copy of its variable store, left in no place.
    assert_eq!(common::sha256(store), store_before);
    let console = std::fs::read_to_string(d.path().join("artifacts/boot1-console.log")).unwrap();
    assert!(console.contains("BdsDxe: starting Boot0001"), "{console}");
    assert!(
        !console.contains('\u{fffd}'),
        "line drawing left in the log"
    );
}

#[test]
fn emptied_esp_fails_uefi_with_the_firmwares_reason_and_passes_bios() {
    let d = tempfile::tempdir().unwrap();
    let img = disk(d.path(), "no-loader", &["--table", "gpt"]);
    // The ESP is partition 3 at 4 MiB: take its loader away (mtools, no mount).
    run_ok(
        Command::new("mdel")
            .arg("-i")
            .arg(format!("{}@@4M", img.display()))
            .arg("::/EFI/BOOT/BOOTX64.EFI"),
    );
    let o = imgtest(
        d.path(),
        &img,
        &[
            "--firmware",
            "both",
            "--check",
            "boot.userspace",
            "--check",
            "console.clean",
        ],
    );
    assert_eq!(o.code, 1, "{}", o.log());
    assert_eq!(o.firmwares(), ["bios", "uefi"]);
    assert_eq!(o.status("boot.userspace"), ["pass", "fail"], "{}", o.out);
    let why = &o.evidence("boot.userspace")[1];
    assert!(
        why.contains("firmware shell on the console") && why.contains("failed to load Boot0001"),
        "{why}"
    );
    // The offline facts already said so: no loader on the ESP.
    let missing = o.report[0]["facts"]["firmware"]["support"]["missing"].to_string();
    assert!(missing.contains("holds no EFI loader"), "{missing}");
}

#[test]
fn uefi_only_image_passes_under_uefi_and_fails_fast_under_bios() {
    let d = tempfile::tempdir().unwrap();
    let img = disk(d.path(), "uefi-only", &["--firmware", "uefi"]);
    // sparsecopy --info names the ESP by its type; no BIOS boot partition here.
    let info = run_ok(
        Command::new(env!("CARGO_BIN_EXE_sparsecopy"))
            .args(["--info", "--json"])
            .arg(&img),
    );
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let kinds: Vec<&str> = info["table"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Linux filesystem", "EFI System"], "{info}");
    let only_boot = ["--boots", "1", "--check", "boot.userspace"];
    let o = imgtest(d.path(), &img, &only_boot);
    assert_eq!(o.code, 0, "{}", o.log());
    assert_eq!(o.firmwares(), ["uefi"], "auto picks what the image offers");
    let t = Instant::now();
    let o = imgtest(
        d.path(),
        &img,
        &[&only_boot[..], &["--firmware", "bios"]].concat(),
    );
    assert_eq!(o.code, 1, "{}", o.log());
    assert!(
        o.evidence("boot.userspace")[0]
            .contains("no boot device on the console: No bootable device"),
        "{}",
        o.out
    );
    // Fast: long before the 60 s x 4 boot deadline.
    assert!(t.elapsed().as_secs() < 120, "took {:?}", t.elapsed());
}

#[test]
fn secure_boot_passes_the_signed_chain_and_refuses_an_unsigned_grub_at_once() {
    let d = tempfile::tempdir().unwrap();
    let cache = common::signed_chain_cache();
    let signed = d.path().join("signed.img");
    run_ok(
        common::fsmaker_in(&cache)
            .arg(common::tiny_server_rootfs())
            .arg(&signed)
            .arg("--secure-boot"),
    );
    let sb = [
        "--secure-boot",
        "--firmware",
        "uefi",
        "--boots",
        "1",
        "--check",
        "boot.userspace",
        "--check",
        "boot.secure-boot",
    ];
    let o = imgtest(d.path(), &signed, &sb);
    assert_eq!(o.code, 0, "{}", o.log());
    assert_eq!(o.report[0]["facts"]["firmware"]["secure_boot"], true);
    assert!(
        o.evidence("boot.secure-boot")[0].contains("Secure Boot enabled"),
        "{}",
        o.out
    );
    let unsigned = disk(d.path(), "unsigned", &["--firmware", "uefi"]);
    let t = Instant::now();
    let o = imgtest(d.path(), &unsigned, &sb);
    assert_eq!(o.code, 1, "{}", o.log());
    let why = &o.evidence("boot.userspace")[0];
    assert!(
        why.contains("secure boot violation on the console") && why.contains("Access Denied"),
        "{why}"
    );
    assert!(t.elapsed().as_secs() < 120, "took {:?}", t.elapsed());
}
