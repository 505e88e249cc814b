//! The tiny test rootfs and its defect variants, built rootless from the pinned packages and
//! inspected offline with `ext4-view` (no mounting): ext4, root-owned, no kernel, the marker
//! init; the server locked down (root locked, no host keys, empty logs, empty machine-id,
//! firstboot installed); each defect variant differs from it by exactly its defect.

#[path = "support/tiny.rs"]
mod tiny;

use ext4_view::Ext4;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use tiny::{build_tiny, script};

/// Every entry of the filesystem: (path, uid, gid, mode, size).
fn walk(fs: &Ext4) -> Vec<(String, u32, u32, u16, u64)> {
    let mut out = Vec::new();
    let mut todo = vec!["/".to_string()];
    while let Some(dir) = todo.pop() {
        for entry in fs.read_dir(dir.as_str()).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().as_str().unwrap().to_string();
            if name == "." || name == ".." {
                continue;
            }
            let path = format!("{}/{name}", dir.trim_end_matches('/'));
            let md = entry.metadata().unwrap();
            if md.is_dir() {
                todo.push(path.clone());
            }
            out.push((path, md.uid(), md.gid(), md.mode(), md.len()));
        }
    }
    out
}

/// Positioned reads from the image file (no mounting, no loading it whole).
struct ImageFile(std::fs::File);

impl ext4_view::Ext4Read for ImageFile {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        Ok(self.0.read_exact_at(dst, start_byte)?)
    }
}

fn open(p: &Path) -> Ext4 {
    Ext4::load(Box::new(ImageFile(std::fs::File::open(p).unwrap()))).unwrap()
}

fn text(fs: &Ext4, p: &str) -> String {
    fs.read_to_string(p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// The server image as shipped: everything the clean-image checks look at.
fn assert_clean_server(fs: &Ext4) {
    for line in text(fs, "/etc/shadow").lines() {
        let hash = line.split(':').nth(1).unwrap();
        assert!(hash == "*" || hash.starts_with('!'), "unlocked: {line}");
    }
    assert_eq!(
        fs.read_dir("/etc/dropbear").unwrap().count(),
        2,
        "host keys present"
    );
    assert_eq!(text(fs, "/etc/machine-id"), "");
    for (path, .., size) in walk(fs) {
        if path.starts_with("/var/log/") {
            assert_eq!(size, 0, "{path} not empty");
        }
        assert!(!path.ends_with("_history"), "{path}");
        assert!(
            !path.starts_with("/root/") && !path.starts_with("/usr/local/bin/"),
            "{path}"
        );
    }
    assert!(text(fs, "/usr/sbin/firstboot").contains("metadata service unreachable"));
    assert!(fs.exists("/etc/init.d/S45firstboot").unwrap());
}

#[test]
fn marker_rootfs_is_small_root_owned_ext4_without_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tiny.ext4");
    let uuid = "12345678-9abc-4def-8123-456789abcdef";
    build_tiny(&["--uuid", uuid], &out);

    let meta = std::fs::metadata(&out).unwrap();
    assert_eq!(meta.len(), 256 << 20);
    assert!(
        meta.blocks() * 512 < 32 << 20,
        "not sparse: {}",
        meta.blocks() * 512
    );
    let fs = open(&out);
    assert_eq!(fs.uuid().to_string(), uuid);
    let init = text(&fs, "/sbin/init");
    for line in [
        "IMGTEST-TINY-BOOTED",
        "kernel=$(uname -r)",
        "root=$root",
        "poweroff -f",
    ] {
        assert!(init.contains(line), "{line}");
    }
    assert_eq!(fs.metadata("/sbin/init").unwrap().mode() & 0o777, 0o755);
    let entries = walk(&fs);
    assert!(entries.len() > 300, "busybox applets missing");
    for (path, uid, gid, ..) in &entries {
        let shadow_group = path == "/etc/shadow" && *gid == 42;
        assert!(
            *uid == 0 && (*gid == 0 || shadow_group),
            "{path} owned {uid}:{gid}"
        );
        assert!(
            !path.starts_with("/boot/") && !path.starts_with("/lib/modules/"),
            "{path}"
        );
    }
    assert_eq!(fs.metadata("/tmp").unwrap().mode() & 0o7777, 0o1777);
    assert_eq!(fs.metadata("/root").unwrap().mode() & 0o777, 0o700);
    assert_eq!(
        fs.read_link("/usr/bin/wget").unwrap().to_str().unwrap(),
        "../../bin/busybox"
    );
}

#[test]
fn same_inputs_give_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.ext4"), dir.path().join("b.ext4"));
    build_tiny(&["--mode", "server"], &a);
    build_tiny(&["--mode", "server"], &b);
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
}

#[test]
fn server_rootfs_is_locked_down_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("server.ext4");
    build_tiny(&["--mode", "server"], &out);
    let fs = open(&out);
    assert_clean_server(&fs);
    assert!(text(&fs, "/etc/shadow").starts_with("root:*:"));
    assert!(text(&fs, "/etc/passwd").starts_with("root:x:0:0:root:/root:/bin/sh\n"));
    assert!(text(&fs, "/etc/shells").contains("/bin/sh\n"));
    assert!(text(&fs, "/etc/inittab").contains("ttyS0::respawn:/sbin/getty -L 115200 ttyS0"));
    assert!(text(&fs, "/etc/init.d/rcS").contains("IMGTEST-TINY-BOOTED"));
    assert!(text(&fs, "/etc/init.d/S50dropbear").contains("dropbear -R -p 22"));
    for f in [
        "/usr/sbin/dropbear",
        "/usr/bin/dropbearkey",
        "/lib64/ld-linux-x86-64.so.2",
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/x86_64-linux-gnu/libcrypt.so.1",
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libtomcrypt.so.1",
        "/usr/lib/x86_64-linux-gnu/libtommath.so.1",
        "/usr/lib/x86_64-linux-gnu/libgmp.so.10",
        "/var/log/wtmp",
        "/var/log/btmp",
        "/var/log/lastlog",
    ] {
        assert!(fs.exists(f).unwrap(), "{f} missing");
    }
    assert!(!fs.exists("/var/lib/firstboot/done").unwrap());
}

/// Each variant is the clean server plus exactly its defect.
#[test]
fn defect_variants_plant_exactly_one_defect() {
    let dir = tempfile::tempdir().unwrap();
    let build = |variant: &str| {
        let out = dir.path().join(format!("{variant}.ext4"));
        script("images/defects/build.sh", &[&variant, &out], true);
        open(&out)
    };

    let fs = build("fixed-password");
    let shadow = text(&fs, "/etc/shadow");
    assert!(shadow.starts_with("root:$6$imgtestsalt$"), "{shadow}");
    assert!(shadow.contains("\nnobody:*:"));

    let fs = build("dirty-logs");
    assert!(text(&fs, "/var/log/auth.log").contains("Accepted password for root"));
    let wtmp = fs.read("/var/log/wtmp").unwrap();
    assert_eq!(wtmp.len(), 384);
    assert_eq!(&wtmp[..2], &[7, 0], "USER_PROCESS");
    assert_eq!(&wtmp[44..48], b"root");
    assert!(!text(&fs, "/root/.ash_history").is_empty());
    assert!(!text(&fs, "/root/.bash_history").is_empty());

    let fs = build("baked-host-keys");
    for t in ["rsa", "ecdsa", "ed25519"] {
        let key = fs
            .read(format!("/etc/dropbear/dropbear_{t}_host_key").as_str())
            .unwrap();
        assert!(key.len() > 50, "{t}");
    }

    let fs = build("test-scripts");
    assert!(text(&fs, "/root/test.sh").starts_with("#!/bin/sh"));
    assert!(text(&fs, "/usr/local/bin/run-tests.sh").starts_with("#!/bin/sh"));

    let fs = build("no-firstboot");
    assert!(!fs.exists("/usr/sbin/firstboot").unwrap());
    assert!(!fs.exists("/etc/init.d/S45firstboot").unwrap());
    assert_eq!(
        text(&fs, "/etc/shadow").lines().next().unwrap(),
        "root:*:19675:0:99999:7:::"
    );

    let fs = build("machine-id");
    assert_eq!(
        text(&fs, "/etc/machine-id"),
        "5c4e9d2a7b1f4e08a3c6d9e2f1b0a7c4\n"
    );

    // no-root is made by fsmaker's --append; its rootfs is the clean server.
    assert_clean_server(&build("no-root"));
}

#[test]
fn bad_input_is_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.ext4");
    let cases: [(&str, Vec<&dyn AsRef<std::ffi::OsStr>>, &str); 5] = [
        (
            "images/tiny/build.sh",
            vec![&"--mode", &"desktop", &out],
            "--mode must be marker or server",
        ),
        (
            "images/tiny/build.sh",
            vec![&"--uuid", &"nope", &out],
            "bad --uuid",
        ),
        (
            "images/tiny/build.sh",
            vec![&"/nonexistent/dir/x.ext4"],
            "does not exist",
        ),
        (
            "images/defects/build.sh",
            vec![&"bogus", &out],
            "unknown variant 'bogus'",
        ),
        (
            "images/fetch-assets.sh",
            vec![&"no-such-package"],
            "is not pinned",
        ),
    ];
    for (path, args, message) in cases {
        let o = script(path, &args, false);
        assert_eq!(o.status.code(), Some(2), "{path} {message}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(message), "{path}: {err}");
        assert!(!out.exists());
    }
}
