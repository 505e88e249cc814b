//! fsmaker images booted for real: QEMU (TCG, BIOS) -> GRUB from the MBR -> kernel ->
//! fsmaker's initrd -> switch_root into the test rootfs, whose init prints a marker with
//! the kernel version and root device. One VM at a time (see `common::Vm`).

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

/// Boot deadline under TCG: GRUB, kernel and initrd take ~10-30 s; be generous.
const BOOT: Duration = Duration::from_secs(240);

fn uuid_of(summary: &str) -> String {
    summary
        .lines()
        .find_map(|l| l.split("UUID=").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .expect("summary names the root UUID")
        .to_string()
}

/// Boots `disk` and checks the marker line: kernel version, root device on `bus`, UUID.
fn boots_to_marker(disk: &Path, bus: Bus, version: &str, uuid: &str) -> String {
    let mut vm = Vm::boot(disk, bus, 384);
    let dev = match bus {
        Bus::Virtio => "/dev/vda1",
        Bus::Ide => "/dev/sda1",
    };
    let console = vm.expect_all(&[MARKER, MARKER_LAST, "fsmaker-initrd: root UUID="], BOOT);
    // The marker init's console lines come after the marker; the console may carry CRs.
    let after = &console[console.find(MARKER).unwrap()..];
    let lines: Vec<&str> = after.lines().map(str::trim).collect();
    for want in [
        format!("kernel={version}"),
        format!("root={dev}"),
        format!("root_uuid={uuid}"),
    ] {
        assert!(
            lines.contains(&want.as_str()),
            "console lacks the line {want:?}:\n{console}"
        );
    }
    assert!(
        console.contains("GNU GRUB"),
        "GRUB menu on the serial console"
    );
    console
}

#[test]
fn boots_on_virtio_through_grub_and_initrd() {
    let version = cached_kernel_version();
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    let summary = build_disk(&tiny_rootfs(), &disk, &[]);
    boots_to_marker(&disk, Bus::Virtio, &version, &uuid_of(&summary));
}

/// Also: extra kernel arguments holding what GRUB's script gives a meaning to (`$`, `;`,
/// a double-quoted value with a space) reach the kernel as the kernel reads them.
#[test]
fn boots_on_ide() {
    let version = cached_kernel_version();
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    let append = r#"x=$y;z a="b c""#;
    let summary = build_disk(&tiny_rootfs(), &disk, &["--append", append]);
    let console = boots_to_marker(&disk, Bus::Ide, &version, &uuid_of(&summary));
    let cmdline = console
        .lines()
        .find_map(|l| l.trim().strip_prefix("cmdline="))
        .expect("the marker prints the command line");
    assert!(
        cmdline.ends_with(r#"console=ttyS0,115200 x=$y;z "a=b c""#),
        "{cmdline}"
    );
}

#[test]
fn ext2_rootfs_with_the_users_own_kernel_and_initrd() {
    let version = cached_kernel_version();
    let k = cached_kernel_dir();
    let dir = tempfile::tempdir().unwrap();
    let (kernel, initrd) = (dir.path().join("my-vmlinuz"), dir.path().join("my-initrd"));
    std::fs::copy(k.join("vmlinuz"), &kernel).unwrap();
    std::fs::copy(k.join("initrd.img"), &initrd).unwrap();
    let rootfs = dir.path().join("root.ext2");
    make_rootfs(&rootfs, "ext2", 64, &[]);
    let disk = dir.path().join("disk.img");
    let args = [
        "--kernel",
        kernel.to_str().unwrap(),
        "--initrd",
        initrd.to_str().unwrap(),
    ];
    let summary = build_disk(&rootfs, &disk, &args);
    assert!(summary.contains("ext2"), "{summary}");
    boots_to_marker(&disk, Bus::Virtio, &version, &uuid_of(&summary));
}

#[test]
fn ext3_rootfs_grown_to_a_bigger_disk() {
    let version = cached_kernel_version();
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("root.ext3");
    make_rootfs(&rootfs, "ext3", 160, &[]);
    let disk = dir.path().join("disk.img");
    let summary = build_disk(&rootfs, &disk, &["--size", "512M", "--grow"]);
    assert!(summary.contains("ext3"), "{summary}");
    assert_eq!(std::fs::metadata(&disk).unwrap().len(), 512 << 20);
    let sb = std::fs::read(&disk).unwrap()[(1 << 20) + 1024..(1 << 20) + 2048].to_vec();
    let fs = imgtest::fsmaker::superblock::Superblock::parse(&sb).unwrap();
    assert_eq!(
        fs.size(),
        (512 << 20) - (1 << 20),
        "filesystem fills the partition"
    );
    run_ok(
        std::process::Command::new("e2fsck")
            .arg("-fn")
            .arg(format!("{}?offset=1048576", disk.display())),
    );
    boots_to_marker(&disk, Bus::Ide, &version, &uuid_of(&summary));
}

#[test]
fn kernel_in_rootfs() {
    let version = cached_kernel_version();
    let k = cached_kernel_dir();
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("root.ext4");
    let (vmlinuz, initrd) = (
        format!("/boot/vmlinuz-{version}"),
        format!("/boot/initrd.img-{version}"),
    );
    make_rootfs(
        &rootfs,
        "ext4",
        64,
        &[
            (&vmlinuz, &k.join("vmlinuz")),
            (&initrd, &k.join("initrd.img")),
        ],
    );
    let disk = dir.path().join("disk.img");
    // An empty cache proves the cache is not used.
    let o = run_ok(
        fsmaker_in(&dir.path().join("no-cache"))
            .arg(&rootfs)
            .arg(&disk)
            .arg("--kernel-in-rootfs"),
    );
    let summary = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        summary.contains(&vmlinuz) && summary.contains(&initrd),
        "{summary}"
    );
    boots_to_marker(&disk, Bus::Virtio, &version, &uuid_of(&summary));
}

#[test]
fn wrong_root_uuid_gives_the_initrd_message_and_powers_off() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    let wrong = "00000000-1111-2222-3333-444444444444";
    build_disk(
        &tiny_rootfs(),
        &disk,
        &[
            "--append",
            &format!("root=UUID={wrong} fsmaker.rootdelay=5"),
        ],
    );
    let mut vm = Vm::boot(&disk, Bus::Virtio, 256);
    let console = vm.expect_all(
        &[&format!(
            "fsmaker-initrd: root device UUID={wrong} not found after 5s"
        )],
        BOOT,
    );
    assert!(!console.contains(MARKER));
    let status = vm.wait_exit(Duration::from_secs(60));
    assert!(
        status.is_some(),
        "the guest powers off after the message:\n{}",
        vm.console()
    );
}
