//! `imgtest doctor`: what this host has of what `imgtest run`, `matrix` and `bisect`
//! need, and which accelerator `--accel auto` gets (the KVM probe runs afresh and its
//! answer replaces the remembered one). Exit 2 when something `imgtest run` needs is
//! missing (said on its line).

use std::path::Path;

use super::accel_cache;
use crate::cli::{CliError, Outcome};
use crate::exit;
use crate::fsmaker::grub::{self, GrubDir};
use crate::fsmaker::initrd::{BUSYBOX, BUSYBOX_PACKAGE};
use crate::fsmaker::kernel::Cache;
use crate::helper;
use crate::vm::accel::{self, ProbeSetup};
use crate::vm::firmware::Ovmf;

const QEMU: &str = "qemu-system-x86_64";

/// The word of an item `imgtest run` needs and the host lacks (exit 2).
const MISSING: &str = "MISSING";
/// The word of an item `imgtest run` does without.
const ABSENT: &str = "absent";

/// `imgtest doctor`.
pub(super) fn doctor() -> Result<Outcome, CliError> {
    exit::quiet_on_closed_stdout();
    println!("for imgtest run:");
    let run_ok = [
        line(
            "qemu-system-x86_64",
            version(QEMU),
            "install: apt-get install qemu-system-x86",
            MISSING,
        ),
        line(
            "qemu-img",
            version("qemu-img"),
            "install: apt-get install qemu-utils",
            MISSING,
        ),
        line(
            "SeaBIOS",
            seabios(),
            "install: apt-get install seabios",
            MISSING,
        ),
    ]
    .iter()
    .all(|ok| *ok);
    ovmf_lines();
    let setup = ProbeSetup {
        program: super::relay_program(),
        cache: accel_cache(),
    };
    let usable = kvm(&setup);
    println!("for imgtest matrix and bisect (and fsmaker):");
    matrix_needs();
    println!(
        "accelerator for --accel auto: {}",
        if usable { "kvm" } else { "tcg" }
    );
    if run_ok {
        Ok(Outcome::Success)
    } else {
        Err(CliError::Said)
    }
}

/// OVMF's two builds (UEFI, Secure Boot): `imgtest run` does without them for BIOS boots.
fn ovmf_lines() {
    for (name, secure) in [("OVMF (UEFI)", false), ("OVMF Secure Boot", true)] {
        line(
            name,
            Ovmf::locate(secure)
                .map(|o| format!("{} + {}", o.code.display(), o.vars.display()))
                .map_err(|e| e.to_string()),
            "install: apt-get install ovmf (needed for --firmware uefi|both, --secure-boot)",
            ABSENT,
        );
    }
}

/// Prints one line: `ok` and what was found, or `missing` (the word) with why and what to
/// do; returns false if `imgtest run` cannot work without it.
fn line(name: &str, found: Result<String, String>, hint: &str, missing: &str) -> bool {
    match found {
        Ok(v) => {
            println!("  ok       {name:<22} {v}");
            true
        }
        Err(e) => {
            println!("  {missing:<8} {name:<22} {e}; {hint}");
            missing != MISSING
        }
    }
}

/// The first line `PROGRAM --version` prints.
fn version(program: &str) -> Result<String, String> {
    let out = helper::run(std::process::Command::new(program).arg("--version"), "").map_err(
        |e| match e {
            helper::HelperError::Missing { .. } => "not installed".to_string(),
            e => e.to_string(),
        },
    )?;
    Ok(out.stdout.lines().next().unwrap_or("").to_string())
}

fn seabios() -> Result<String, String> {
    [
        "/usr/share/seabios/bios-256k.bin",
        "/usr/share/qemu/bios-256k.bin",
    ]
    .iter()
    .find(|p| Path::new(p).exists())
    .map(|p| p.to_string())
    .ok_or_else(|| "not found".into())
}

/// The KVM line: no `/dev/kvm`, a `/dev/kvm` that does not work, or a working one.
fn kvm(setup: &ProbeSetup) -> bool {
    let answer = accel::probe_and_remember(setup);
    let (found, word) = match (&answer, Path::new("/dev/kvm").exists()) {
        (Ok(how), _) => (Ok(format!("usable: {how}")), ABSENT),
        (Err(why), false) => (Err(format!("not present ({why})")), ABSENT),
        (Err(why), true) => (
            Err(format!("/dev/kvm is present but unusable: {why}")),
            "unusable",
        ),
    };
    line(
        "KVM",
        found,
        "runs use TCG (slower; timeouts are scaled)",
        word,
    );
    answer.is_ok()
}

/// What building images per kernel needs: GRUB's files and tools, e2fsprogs, the kernel
/// import's tools, busybox for the initrd, and a kernel (or apt-get to fetch one).
fn matrix_needs() {
    line(
        "GRUB i386-pc",
        GrubDir::locate(Path::new(grub::DEFAULT_DIR), grub::Platform::I386Pc)
            .map(|g| g.dir.display().to_string())
            .map_err(|e| e.to_string()),
        "install: apt-get install grub-pc-bin",
        ABSENT,
    );
    for (program, package) in [
        ("grub-mkimage", "grub-common"),
        ("debugfs", "e2fsprogs"),
        ("resize2fs", "e2fsprogs"),
        ("dpkg-deb", "dpkg"),
        ("depmod", "kmod"),
        ("apt-get", "apt"),
    ] {
        line(
            program,
            helper::find(program)
                .map(|p| p.display().to_string())
                .ok_or_else(|| "not installed".into()),
            &format!("install: apt-get install {package}"),
            ABSENT,
        );
    }
    line(
        "busybox",
        Path::new(BUSYBOX)
            .is_file()
            .then(|| BUSYBOX.to_string())
            .ok_or_else(|| "not found".into()),
        &format!("install: apt-get install {BUSYBOX_PACKAGE}"),
        ABSENT,
    );
    let cached = Cache::from_env().map_err(|e| e.to_string()).and_then(|c| {
        let all = c.list().map_err(|e| e.to_string())?;
        match all.last() {
            Some(k) => Ok(format!(
                "{} kernel(s) in {}, newest {}",
                all.len(),
                c.root.display(),
                k.meta.version
            )),
            None => Err(format!("none in {}", c.root.display())),
        }
    });
    line(
        "kernel cache",
        cached,
        "run `fsmaker kernel fetch`, or name .deb files or packages as kernels",
        ABSENT,
    );
}
