//! `imgtest doctor`: which dependencies and accelerators this host has.

use super::probe_kernel;
use crate::exit;
use crate::vm::accel;
use crate::vm::firmware::Ovmf;

/// `imgtest doctor`.
pub(super) fn doctor() -> i32 {
    let mut ok = true;
    let mut line =
        |name: &str, found: Result<String, String>, hint: &str, required: bool| match found {
            Ok(v) => println!("ok       {name:<22} {v}"),
            Err(e) => {
                ok &= !required;
                println!(
                    "{}  {name:<22} {e}; {hint}",
                    if required { "MISSING" } else { "absent " }
                );
            }
        };
    let version = |prog: &str| {
        std::process::Command::new(prog)
            .arg("--version")
            .output()
            .map_err(|e| e.to_string())
            .and_then(|o| {
                if o.status.success() {
                    Ok(String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_string())
                } else {
                    Err("does not run".into())
                }
            })
    };
    line(
        "qemu-system-x86_64",
        version("qemu-system-x86_64"),
        "install: apt-get install qemu-system-x86",
        true,
    );
    line(
        "qemu-img",
        version("qemu-img"),
        "install: apt-get install qemu-utils",
        true,
    );
    let firmware = [
        "/usr/share/seabios/bios-256k.bin",
        "/usr/share/qemu/bios-256k.bin",
    ];
    line(
        "SeaBIOS",
        firmware
            .iter()
            .find(|p| std::path::Path::new(p).exists())
            .map(|p| p.to_string())
            .ok_or_else(|| "not found".into()),
        "install: apt-get install seabios",
        true,
    );
    ovmf_lines(&mut line);
    let dir = tempfile::tempdir().expect("temp dir");
    let kernel = probe_kernel();
    line(
        "KVM probe kernel",
        kernel
            .as_ref()
            .map(|k| k.display().to_string())
            .ok_or_else(|| "none".into()),
        "run `fsmaker kernel fetch`; without it KVM is not proven and TCG is used",
        false,
    );
    let kvm = accel::probe_kvm("qemu-system-x86_64", dir.path(), kernel.as_deref());
    let auto = if kvm.is_ok() { "kvm" } else { "tcg" };
    line(
        "KVM",
        kvm.map(|_| "usable".into()),
        "imgtest uses TCG (slower; timeouts are scaled)",
        false,
    );
    println!("accelerator for --accel auto: {auto}");
    if ok { exit::SUCCESS } else { exit::ERROR }
}

/// OVMF's two builds (UEFI, Secure Boot), as `line` reports a dependency.
fn ovmf_lines(line: &mut impl FnMut(&str, Result<String, String>, &str, bool)) {
    for (name, secure) in [("OVMF (UEFI)", false), ("OVMF Secure Boot", true)] {
        line(
            name,
            Ovmf::locate(secure)
                .map(|o| format!("{} + {}", o.code.display(), o.vars.display()))
                .map_err(|e| e.to_string()),
            "install: apt-get install ovmf (needed for --firmware uefi|both, --secure-boot)",
            false,
        );
    }
}
