//! fsmaker without booting: the disk it writes (MBR, GRUB patching, files inside the
//! filesystem), reproducibility, the kernel cache, and every bad input (exit 2, a clear
//! message, nothing left behind).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Files in `dir` other than `keep` (to prove no temp file was left behind).
fn leftovers(dir: &Path, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

fn debugfs(disk: &Path, request: &str) -> String {
    let dev = format!("{}?offset=1048576", disk.display());
    let o = run_ok(Command::new("debugfs").arg("-R").arg(request).arg(dev));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// e2fsck finds the filesystem in partition 1 of `disk` clean.
fn assert_partition_clean(disk: &Path) {
    run_ok(
        Command::new("e2fsck")
            .args(["-fn"])
            .arg(format!("{}?offset=1048576", disk.display())),
    );
}

/// The word that follows the first `marker` in `text`.
fn word_after(text: &str, marker: &str) -> String {
    text.split(marker)
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Standard error's lines.
fn stderr_lines(o: &Output) -> Vec<String> {
    stderr(o).lines().map(str::to_string).collect()
}

/// The word after `prefix` in standard output (`fsmaker: cached kernel VERSION ...`).
fn stdout_word_after(o: &Output, prefix: &str) -> String {
    word_after(&String::from_utf8_lossy(&o.stdout), prefix)
}

fn assert_fails(o: &Output, wanted: &[&str]) {
    assert_eq!(o.status.code(), Some(2), "exit code; stderr: {}", stderr(o));
    let e = stderr(o);
    assert_eq!(e.trim().lines().count(), 1, "one-line error, got: {e}");
    for w in wanted {
        assert!(e.contains(w), "error {e:?} lacks {w:?}");
    }
}

#[test]
fn disk_layout_grub_patching_and_installed_files() {
    let version = cached_kernel_version();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("disk.img");
    let summary = build_disk(&tiny_rootfs(), &out, &["--append", "quiet"]);
    let disk = std::fs::read(&out).unwrap();
    assert_mbr(&disk);
    assert_core_img(&disk);
    assert_installed_files(&out, &version);
    let uuid = word_after(&summary, "UUID=");
    assert_grub_cfg(&out, &uuid, &version);

    // The filesystem is still clean after debugfs.
    assert_partition_clean(&out);
    // Summary.
    for w in [
        "disk size:",
        "allocated:",
        &version,
        &uuid,
        "qemu-system-x86_64",
    ] {
        assert!(summary.contains(w), "summary lacks {w}: {summary}");
    }
    // Sparse: far less allocated than the disk size.
    let allocated = std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&out).unwrap()) * 512;
    assert!(
        allocated < disk.len() as u64,
        "sparse output: {allocated} of {}",
        disk.len()
    );
    // The input was not touched.
    run_ok(Command::new("e2fsck").args(["-fn"]).arg(tiny_rootfs()));
    assert!(
        debugfs_plain(&tiny_rootfs(), "ls -p /boot")
            .lines()
            .all(|l| !l.contains("vmlinuz"))
    );
}

/// MBR: boot.img's code, our table, GRUB's setup patches.
fn assert_mbr(disk: &[u8]) {
    let boot = std::fs::read("/usr/lib/grub/i386-pc/boot.img").unwrap();
    assert_eq!(&disk[0..3], &boot[0..3], "boot.img jump");
    assert_eq!(&disk[0x5c..0x64], &1u64.to_le_bytes(), "kernel sector");
    assert_eq!(disk[0x64], 0xff, "boot drive");
    assert_eq!(&disk[0x66..0x68], &[0x90, 0x90], "drive check NOPs");
    assert_eq!(
        &disk[0x68..0x1b8],
        &boot[0x68..0x1b8],
        "rest of the boot code"
    );
    assert_eq!(disk[0x1be], 0x80, "bootable");
    assert_eq!(disk[0x1c2], 0x83, "Linux partition");
    assert_eq!(
        &disk[0x1c6..0x1ca],
        &2048u32.to_le_bytes(),
        "partition at 1 MiB"
    );
    let sectors = u32::from_le_bytes(disk[0x1ca..0x1ce].try_into().unwrap()) as usize;
    assert_eq!(
        sectors * 512 + (1 << 20),
        disk.len(),
        "partition fills the disk"
    );
    assert_eq!(&disk[510..512], &[0x55, 0xAA]);
}

/// core.img in sector 1, its blocklist pointing at sectors 2.. loaded at 0x820.
fn assert_core_img(disk: &[u8]) {
    let diskboot = std::fs::read("/usr/lib/grub/i386-pc/diskboot.img").unwrap();
    assert_eq!(&disk[512..512 + 0x100], &diskboot[..0x100], "diskboot code");
    let bl = 512 + 0x200 - 12;
    assert_eq!(&disk[bl..bl + 8], &2u64.to_le_bytes());
    let len = u16::from_le_bytes([disk[bl + 8], disk[bl + 9]]) as usize;
    assert!(len > 10 && (len + 1) * 512 < (1 << 20), "core length {len}");
    assert_eq!(&disk[bl + 10..bl + 12], &0x820u16.to_le_bytes());
    assert!(disk[bl - 12..bl].iter().all(|&b| b == 0), "terminator");
}

/// Inside the filesystem: kernel, initrd, modules and GRUB modules.
fn assert_installed_files(out: &Path, version: &str) {
    let boot_ls = debugfs(out, "ls -p /boot");
    assert!(
        boot_ls.contains(&format!("/vmlinuz-{version}/")),
        "{boot_ls}"
    );
    assert!(
        boot_ls.contains(&format!("/initrd.img-{version}/")),
        "{boot_ls}"
    );
    let mods = debugfs(out, &format!("ls -p /lib/modules/{version}"));
    assert!(
        mods.contains("/modules.dep/") && mods.contains("/kernel/"),
        "{mods}"
    );
    let virtio = debugfs(
        out,
        &format!("stat /lib/modules/{version}/kernel/drivers/net/virtio_net.ko"),
    );
    assert!(
        virtio.contains("Type: regular"),
        "network driver installed: {virtio}"
    );
    let grub_mods = debugfs(out, "ls -p /boot/grub/i386-pc");
    assert!(
        grub_mods.contains("/linux.mod/") && grub_mods.contains("/moddep.lst/"),
        "{grub_mods}"
    );
}

/// grub.cfg: serial console, short menu, root by UUID, the appended argument, the initrd.
fn assert_grub_cfg(out: &Path, uuid: &str, version: &str) {
    let cfg = debugfs(out, "cat /boot/grub/grub.cfg");
    assert!(cfg.contains("serial --unit=0 --speed=115200"), "{cfg}");
    assert!(cfg.contains("terminal_input serial console"), "{cfg}");
    assert!(cfg.contains("set timeout=1"), "{cfg}");
    assert!(
        cfg.contains(&format!(
            "root=UUID={uuid} ro console=tty0 console=ttyS0,115200 quiet"
        )),
        "{cfg}"
    );
    assert!(
        cfg.contains(&format!("initrd /boot/initrd.img-{version}")),
        "{cfg}"
    );
}

fn debugfs_plain(fs: &Path, request: &str) -> String {
    let o = run_ok(Command::new("debugfs").arg("-R").arg(request).arg(fs));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// In a log (stderr not a terminal) a build says each step once, with the bytes it
/// moves, and nothing else; on a terminal it draws a spinner per step and the byte bar
/// of the copy instead, and writes no such line.
#[test]
fn build_progress_is_one_line_per_step_in_a_log_and_a_bar_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("disk.qcow2");
    let args = ["--size", "300M", "--grow", "--format", "qcow2"];
    let o = run_ok(fsmaker().arg(tiny_rootfs()).arg(&out).args(args));
    assert_eq!(
        stderr_lines(&o),
        [
            "fsmaker: copying the filesystem to grow it (256.0 MiB)",
            "fsmaker: growing the filesystem to 299.0 MiB",
            "fsmaker: copying the filesystem into partition 1 (299.0 MiB)",
            "fsmaker: installing the kernel, initrd, modules and GRUB files",
            "fsmaker: installing GRUB into the MBR",
            "fsmaker: converting to qcow2",
        ]
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("fsmaker: wrote"));

    let mut on_tty = fsmaker();
    on_tty
        .arg(tiny_rootfs())
        .arg(&out)
        .args(args)
        .arg("--force");
    let (code, screen) = on_a_terminal(&on_tty);
    assert_eq!(code, Some(0), "{screen}");
    for words in [
        "copying the filesystem to grow it",
        "growing the filesystem to 299.0 MiB",
        "copying the filesystem into partition 1",
        "installing the kernel, initrd, modules and GRUB files",
        "installing GRUB into the MBR",
        "converting to qcow2",
    ] {
        assert!(
            shows_spinner(&screen, words),
            "no spinner for {words}: {screen:?}"
        );
    }
    assert!(
        shows_full_bar(&screen, "copying the filesystem into partition 1"),
        "{screen:?}"
    );
    assert!(shows_full_bar(&screen, "copying the filesystem to grow it"));
    assert!(!screen.contains("fsmaker: copying"), "{screen:?}");
    assert!(screen.contains("fsmaker: wrote"), "{screen:?}");
}

#[test]
fn two_runs_give_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.img"), dir.path().join("b.img"));
    build_disk(&tiny_rootfs(), &a, &["--size", "300M", "--grow"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    build_disk(&tiny_rootfs(), &b, &["--size", "300M", "--grow"]);
    let (x, y) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(x.len(), y.len());
    let first_diff = x.iter().zip(&y).position(|(p, q)| p != q);
    assert_eq!(first_diff, None, "images differ at byte {first_diff:?}");
    // SOURCE_DATE_EPOCH sets the timestamps fsmaker writes.
    let c = dir.path().join("c.img");
    run_ok(
        fsmaker()
            .env("SOURCE_DATE_EPOCH", "1234567890")
            .arg(tiny_rootfs())
            .arg(&c),
    );
    let stat = debugfs(&c, "stat /boot/grub/grub.cfg");
    assert!(stat.contains("mtime: 0x499602d2"), "{stat}");
}

#[test]
fn initrd_is_reproducible_and_holds_the_module_closure() {
    let k = cached_kernel_dir();
    let version = cached_kernel_version();
    let a = imgtest::fsmaker::initrd::build(&k.join("modules"), &version, 7).unwrap();
    let b = imgtest::fsmaker::initrd::build(&k.join("modules"), &version, 7).unwrap();
    assert_eq!(a, b);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("i.gz"), &a).unwrap();
    let list = run_ok(
        Command::new("sh")
            .arg("-c")
            .arg("zcat i.gz | cpio -it --quiet")
            .current_dir(dir.path()),
    );
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    for f in [
        "init",
        "bin/busybox",
        "dev/console",
        "etc/fsmaker/modules",
        "virtio_blk.ko",
        "ata_piix.ko",
        "sd_mod.ko",
        "virtio_scsi.ko",
    ] {
        assert!(list.contains(f), "initrd lacks {f}:\n{list}");
    }
    let order = run_ok(
        Command::new("sh")
            .arg("-c")
            .arg("zcat i.gz | cpio -i --to-stdout --quiet etc/fsmaker/modules")
            .current_dir(dir.path()),
    );
    let order = String::from_utf8_lossy(&order.stdout).into_owned();
    let pos = |n: &str| {
        order
            .lines()
            .position(|l| l.ends_with(n))
            .unwrap_or_else(|| panic!("{n} not in {order}"))
    };
    assert!(pos("/virtio_ring.ko") < pos("/virtio_blk.ko"));
    assert!(pos("/scsi_mod.ko") < pos("/sd_mod.ko"));
    assert!(pos("/libata.ko") < pos("/ata_piix.ko"));
}

#[test]
fn kernel_list_shows_the_cache_with_checksum() {
    let version = cached_kernel_version();
    let o = run_ok(fsmaker().args(["kernel", "list"]));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        text.contains(&version) && text.contains("sha256:"),
        "{text}"
    );
    let meta = std::fs::read_to_string(cached_kernel_dir().join("kernel.json")).unwrap();
    assert!(
        meta.contains("\"deb_sha256\"") && meta.contains("linux-image-"),
        "{meta}"
    );
}

#[test]
fn qcow2_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("disk.qcow2");
    build_disk(&tiny_rootfs(), &out, &["--format", "qcow2"]);
    let o = run_ok(
        Command::new("qemu-img")
            .args(["info", "--output=json"])
            .arg(&out),
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"format\": \"qcow2\""));
    assert_eq!(leftovers(dir.path(), &["disk.qcow2"]), Vec::<String>::new());
}

#[test]
fn missing_rootfs() {
    let dir = tempfile::tempdir().unwrap();
    let o = fsmaker()
        .arg(dir.path().join("nope.ext4"))
        .arg(dir.path().join("o.img"))
        .output()
        .unwrap();
    assert_fails(&o, &["nope.ext4", "does not exist"]);
    assert_eq!(leftovers(dir.path(), &[]), Vec::<String>::new());
}

#[test]
fn rootfs_not_ext() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("fat.img");
    std::fs::File::create(&bad)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    run_ok(Command::new("mkfs.vfat").arg(&bad));
    let o = fsmaker()
        .arg(&bad)
        .arg(dir.path().join("o.img"))
        .output()
        .unwrap();
    assert_fails(&o, &["not an ext2/ext3/ext4 filesystem"]);
    assert_eq!(leftovers(dir.path(), &["fat.img"]), Vec::<String>::new());
}

#[test]
fn rootfs_too_small_says_how_much_and_suggests_grow() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.ext4");
    make_rootfs(&small, "ext4", 24, &[]);
    let o = fsmaker()
        .arg(&small)
        .arg(dir.path().join("o.img"))
        .output()
        .unwrap();
    assert_fails(&o, &["too small", "needs", "MiB", "--size", "--grow"]);
    assert_eq!(leftovers(dir.path(), &["small.ext4"]), Vec::<String>::new());
    // The suggestion works.
    let e = stderr(&o);
    let size = word_after(&e, "--size ");
    build_disk(
        &small,
        &dir.path().join("o.img"),
        &["--size", &size, "--grow"],
    );
}

#[test]
fn existing_output_needs_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.img");
    std::fs::write(&out, b"precious").unwrap();
    let o = fsmaker().arg(tiny_rootfs()).arg(&out).output().unwrap();
    assert_fails(&o, &["already exists", "--force"]);
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    assert_eq!(leftovers(dir.path(), &["o.img"]), Vec::<String>::new());
    build_disk(&tiny_rootfs(), &out, &["--force"]);
    assert!(std::fs::metadata(&out).unwrap().len() > 100 << 20);
}

#[test]
fn missing_grub_names_the_package() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("grub");
    std::fs::create_dir(&empty).unwrap();
    let o = fsmaker()
        .arg(tiny_rootfs())
        .arg(dir.path().join("o.img"))
        .arg("--grub-dir")
        .arg(&empty)
        .output()
        .unwrap();
    assert_fails(&o, &["grub-pc-bin", "boot.img"]);
    assert_eq!(leftovers(dir.path(), &["grub"]), Vec::<String>::new());
}

#[test]
fn no_cached_kernel_says_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let o = fsmaker_in(&dir.path().join("empty-cache"))
        .arg(tiny_rootfs())
        .arg(dir.path().join("o.img"))
        .output()
        .unwrap();
    assert_fails(&o, &["fsmaker kernel fetch"]);
    assert_eq!(leftovers(dir.path(), &[]), Vec::<String>::new());
}

#[test]
fn deb_that_is_not_a_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("pkg");
    std::fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(pkg.join("usr/share/doc/hello")).unwrap();
    std::fs::write(pkg.join("usr/share/doc/hello/README"), "hi\n").unwrap();
    std::fs::write(
        pkg.join("DEBIAN/control"),
        "Package: hello-not-kernel\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: not a kernel\n",
    )
    .unwrap();
    let deb = dir.path().join("hello.deb");
    run_ok(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-b"])
            .arg(&pkg)
            .arg(&deb),
    );
    let cache = dir.path().join("cache");
    let o = fsmaker_in(&cache)
        .args(["kernel", "fetch"])
        .arg(&deb)
        .output()
        .unwrap();
    // It fails while unpacking: that step's line, then the one-line error.
    let lines = stderr_lines(&o);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], "fsmaker: unpacking hello-not-kernel 1.0");
    assert_eq!(o.status.code(), Some(2));
    for w in ["hello.deb", "not a Linux kernel package"] {
        assert!(lines[1].contains(w), "{lines:?}");
    }
    let o = fsmaker_in(&cache)
        .args(["kernel", "list"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("no kernel cached"));
    // A file that is no .deb at all.
    std::fs::write(dir.path().join("junk.deb"), b"junk").unwrap();
    let o = fsmaker_in(&cache)
        .args(["kernel", "fetch"])
        .arg(dir.path().join("junk.deb"))
        .output()
        .unwrap();
    assert_fails(&o, &["junk.deb"]);
}

/// Importing a local package: one line per step in a log, a spinner per step on a
/// terminal.
#[test]
fn kernel_fetch_of_a_deb_shows_its_steps() {
    let deb = kernel_deb();
    let field = |f: &str| {
        let o = run_ok(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(f));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let (package, version) = (field("Package"), field("Version"));
    let dir = tempfile::tempdir().unwrap();
    let o = run_ok(
        fsmaker_in(&dir.path().join("log"))
            .args(["kernel", "fetch"])
            .arg(&deb),
    );
    let kernel = stdout_word_after(&o, "cached kernel");
    let steps = [
        format!("unpacking {package} {version}"),
        format!("indexing the modules of {kernel} (depmod)"),
        format!("building the initrd for {kernel}"),
    ];
    let lines: Vec<String> = steps.iter().map(|s| format!("fsmaker: {s}")).collect();
    assert_eq!(stderr_lines(&o), lines);

    let mut on_tty = fsmaker_in(&dir.path().join("tty"));
    on_tty.args(["kernel", "fetch"]).arg(&deb);
    let (code, screen) = on_a_terminal(&on_tty);
    assert_eq!(code, Some(0), "{screen}");
    for s in &steps {
        assert!(shows_spinner(&screen, s), "no spinner for {s}: {screen:?}");
    }
    assert!(!screen.contains("fsmaker: unpacking"), "{screen:?}");
    assert!(screen.contains(&format!("fsmaker: cached kernel {kernel}")));
}

#[test]
fn kernel_fetch_resolves_the_default_meta_package() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let o = run_ok(fsmaker_in(&cache).args(["kernel", "fetch"]));
    // The meta package, then the kernel it depends on, each with its size; then the import.
    let lines = stderr_lines(&o);
    let kernel = stdout_word_after(&o, "cached kernel");
    let expected = [
        "fsmaker: downloading linux-image-cloud-amd64 (",
        &format!("fsmaker: downloading linux-image-{kernel} ("),
        "fsmaker: unpacking linux-image-",
        &format!("fsmaker: indexing the modules of {kernel} (depmod)"),
        &format!("fsmaker: building the initrd for {kernel}"),
    ];
    assert_eq!(lines.len(), expected.len(), "{lines:?}");
    for (line, start) in lines.iter().zip(expected) {
        assert!(line.starts_with(start), "{line:?} is not {start:?}...");
    }
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    // linux-image-cloud-amd64 holds no kernel: fsmaker follows its Depends to linux-image-<version>.
    assert!(
        text.contains("from linux-image-") && text.contains("-cloud-amd64"),
        "{text}"
    );
    let list = run_ok(fsmaker_in(&cache).args(["kernel", "list"]));
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    let version = list.split('\t').next().unwrap();
    assert!(version.ends_with("-cloud-amd64"), "{list}");
    let k = cache.join("kernels").join(version);
    for f in [
        "vmlinuz",
        "initrd.img",
        "kernel.json",
        "modules/modules.dep",
        "modules/modules.alias",
    ] {
        assert!(k.join(f).is_file(), "cache entry lacks {f}");
    }
    assert_eq!(
        leftovers(&cache, &["kernels"]),
        Vec::<String>::new(),
        "no temp dirs left in the cache"
    );

    // On a terminal the download is a byte bar, drawn full when the package is in.
    let mut on_tty = fsmaker_in(&dir.path().join("tty"));
    on_tty.args(["kernel", "fetch"]);
    let (code, screen) = on_a_terminal(&on_tty);
    assert_eq!(code, Some(0), "{screen}");
    let download = format!("downloading linux-image-{kernel}");
    assert!(shows_spinner(&screen, &download), "{screen:?}");
    assert!(shows_full_bar(&screen, &download), "{screen:?}");
    assert!(!screen.contains("fsmaker: downloading"), "{screen:?}");
}

#[test]
fn merged_usr_rootfs_gets_modules_under_usr_lib() {
    let version = cached_kernel_version();
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("usr/lib")).unwrap();
    std::fs::create_dir_all(tree.join("boot/grub")).unwrap();
    std::fs::write(tree.join("boot/grub/grub.cfg"), "old config\n").unwrap();
    std::os::unix::fs::symlink("usr/lib", tree.join("lib")).unwrap();
    let rootfs = dir.path().join("root.ext4");
    std::fs::File::create(&rootfs)
        .unwrap()
        .set_len(200 << 20)
        .unwrap();
    run_ok(
        Command::new("mke2fs")
            .args(["-q", "-t", "ext4", "-d"])
            .arg(&tree)
            .arg(&rootfs),
    );
    let out = dir.path().join("disk.img");
    build_disk(&rootfs, &out, &[]);
    let mods = debugfs(&out, &format!("ls -p /usr/lib/modules/{version}"));
    assert!(mods.contains("/modules.dep/"), "{mods}");
    assert!(
        debugfs(&out, "stat /lib").contains("Type: symlink"),
        "/lib stays a symlink"
    );
    let cfg = debugfs(&out, "cat /boot/grub/grub.cfg");
    assert!(
        cfg.contains("Generated by fsmaker") && !cfg.contains("old config"),
        "{cfg}"
    );
    assert_partition_clean(&out);
}

#[test]
fn out_may_not_be_the_rootfs() {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("root.ext4");
    std::fs::copy(tiny_rootfs(), &rootfs).unwrap();
    let before = std::fs::read(&rootfs).unwrap();
    let o = fsmaker()
        .arg(&rootfs)
        .arg(&rootfs)
        .arg("--force")
        .output()
        .unwrap();
    assert_fails(&o, &["is ROOTFS itself"]);
    assert!(
        std::fs::read(&rootfs).unwrap() == before,
        "ROOTFS untouched"
    );
}

#[test]
fn gpt_hybrid_disk_is_debians_layout_and_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.img"), dir.path().join("b.img"));
    let args = ["--table", "gpt", "--firmware", "hybrid"];
    let summary = build_disk(&tiny_rootfs(), &a, &args);
    assert!(
        summary.contains("boots with:     hybrid on gpt"),
        "{summary}"
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    build_disk(&tiny_rootfs(), &b, &args);
    // The same bytes: GPT GUIDs, FAT volume id and timestamps included.
    assert!(sha256(&a) == sha256(&b), "two GPT builds differ");
    // sgdisk agrees with the table, the backup at the end included.
    let v = run_ok(Command::new("sgdisk").arg("-v").arg(&a));
    assert!(String::from_utf8_lossy(&v.stdout).contains("No problems found"));
    let p = run_ok(Command::new("sgdisk").arg("-p").arg(&a));
    let table = String::from_utf8_lossy(&p.stdout);
    for row in ["2048            8191", "8192          262143", "262144"] {
        assert!(table.contains(row), "{row}:\n{table}");
    }
    // The ESP (FAT32 at 4 MiB) holds GRUB's EFI image and the grub.cfg that finds the root.
    let esp = format!("{}@@4M", a.display());
    let info = run_ok(Command::new("minfo").arg("-i").arg(&esp).arg("::"));
    assert!(String::from_utf8_lossy(&info.stdout).contains("FAT32"));
    let cfg = run_ok(
        Command::new("mtype")
            .arg("-i")
            .arg(&esp)
            .arg("::/EFI/BOOT/grub.cfg"),
    );
    let uuid = word_after(&summary, "UUID=");
    assert!(
        String::from_utf8_lossy(&cfg.stdout).contains(&format!("--set=root {uuid}")),
        "{}",
        String::from_utf8_lossy(&cfg.stdout)
    );
    let loader = run_ok(
        Command::new("mtype")
            .arg("-i")
            .arg(&esp)
            .arg("::/EFI/BOOT/BOOTX64.EFI"),
    );
    assert!(loader.stdout.starts_with(b"MZ"));
    // GRUB's core image sits in the BIOS boot partition, boot.img points at it.
    let disk = std::fs::read(&a).unwrap();
    assert_eq!(&disk[0x5c..0x64], &2048u64.to_le_bytes());
    assert_eq!(
        &disk[1 << 20..(1 << 20) + 4],
        &std::fs::read("/usr/lib/grub/i386-pc/diskboot.img").unwrap()[..4]
    );
    assert_eq!(disk[446 + 4], 0xee, "protective MBR");
}

#[test]
fn uefi_needs_gpt_and_secure_boot_needs_uefi_and_a_signed_chain() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.img");
    let try_build = |args: &[&str]| {
        fsmaker_in(&dir.path().join("no-chain"))
            .arg(tiny_rootfs())
            .arg(&out)
            .args(args)
            .args([
                "--kernel",
                cached_kernel_dir().join("vmlinuz").to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    assert_fails(
        &try_build(&["--table", "mbr", "--firmware", "uefi"]),
        &["BIOS only", "--table gpt"],
    );
    assert_fails(
        &try_build(&["--firmware", "bios", "--secure-boot"]),
        &["Secure Boot needs", "--firmware uefi"],
    );
    assert_fails(
        &try_build(&["--secure-boot"]),
        &["no signed boot chain", "fsmaker secure-boot fetch"],
    );
    assert_eq!(leftovers(dir.path(), &[]), Vec::<String>::new());
    // Debian's cloud kernel is signed, and fsmaker installs it as it is.
    assert!(imgtest::fsmaker::kernel::is_signed(&cached_kernel_dir().join("vmlinuz")).unwrap());
}
