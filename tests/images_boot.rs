//! The test images booted for real with QEMU (TCG) and the pinned Debian cloud kernel:
//! the marker system from RAM by direct kernel boot, the ISO from CD in front of a blank disk,
//! and the server from RAM, which gets its password from a metadata service (this test's, on
//! 127.0.0.1, relayed by `guestfwd ... cmd:busybox nc`) and lets root in over SSH with it.
//!
//! Disk boots through GRUB and an initrd are fsmaker's tests; here no disk driver is needed.

mod common;
#[path = "support/metadata.rs"]
mod metadata;
#[path = "support/tiny.rs"]
mod tiny;

use common::Vm;
use metadata::{Metadata, PASSWORD};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tiny::{build_tiny, repo, script};

/// The pinned kernel package of images/assets.toml, fetched, verified and unpacked once.
struct Kernel {
    /// The unpacked package: boot/vmlinuz-VERSION and lib/modules/VERSION.
    root: PathBuf,
    version: String,
}

impl Kernel {
    fn get() -> Kernel {
        let out = script("images/fetch-assets.sh", &[&"--role", &"kernel"], true);
        let deb = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        let assets = std::env::var_os("IMGTEST_ASSETS")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join("target/test-assets"));
        let root = assets
            .join("kernel")
            .join(deb.file_stem().unwrap().to_str().unwrap());
        if !root.join("boot").exists() {
            // Unpack beside, then rename: concurrent tests never see half a kernel.
            std::fs::create_dir_all(root.parent().unwrap()).unwrap();
            let tmp = tempfile::tempdir_in(root.parent().unwrap()).unwrap();
            let ok = Command::new("dpkg-deb")
                .arg("-x")
                .arg(&deb)
                .arg(tmp.path())
                .status()
                .unwrap();
            assert!(ok.success(), "dpkg-deb -x {deb:?}");
            let kept = tmp.keep();
            if std::fs::rename(&kept, &root).is_err() {
                // Another test unpacked it first.
                std::fs::remove_dir_all(&kept).unwrap();
            }
        }
        let version = std::fs::read_dir(root.join("lib/modules"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .file_name()
            .into_string()
            .unwrap();
        Kernel { root, version }
    }

    fn vmlinuz(&self) -> PathBuf {
        self.root.join(format!("boot/vmlinuz-{}", self.version))
    }

    /// Boots this kernel directly with `initrd` as the root filesystem in RAM (console on
    /// the serial line, power off on panic), with `devices` (network) added.
    fn boot_ram(&self, initrd: &Path, devices: &[&str]) -> Vm {
        let vmlinuz = self.vmlinuz();
        let mut args = vec![
            "-kernel",
            vmlinuz.to_str().unwrap(),
            "-initrd",
            initrd.to_str().unwrap(),
            "-append",
            "console=ttyS0 panic=-1",
        ];
        args.extend_from_slice(devices);
        Vm::start(256, &args)
    }
}

const BOOT: Duration = Duration::from_secs(240);

fn marker_lines(kernel: &Kernel) -> [String; 3] {
    [
        "IMGTEST-TINY-BOOTED\n".to_string(),
        format!("kernel={}\n", kernel.version),
        "root=rootfs\n".to_string(),
    ]
}

#[test]
fn marker_boots_from_ram_and_powers_off() {
    let kernel = Kernel::get();
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("tiny.cpio.gz");
    build_tiny(&["--format", "cpio"], &initrd);
    let mut g = kernel.boot_ram(&initrd, &["-nic", "none"]);
    let want = marker_lines(&kernel);
    let mut want: Vec<&str> = want.iter().map(String::as_str).collect();
    // The marker's last line: waited for, never read before it has arrived.
    want.push("cmdline=console=ttyS0 panic=-1\n");
    g.expect_all(&want, BOOT);
    g.expect_poweroff(Duration::from_secs(60));
}

#[test]
fn iso_boots_from_cd_before_the_disk() {
    let kernel = Kernel::get();
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("tiny.cpio.gz");
    let iso = dir.path().join("tiny.iso");
    build_tiny(&["--format", "cpio"], &initrd);
    script(
        "images/iso/build.sh",
        &[&"--append", &"panic=-1", &kernel.vmlinuz(), &initrd, &iso],
        true,
    );
    let again = dir.path().join("again.iso");
    script(
        "images/iso/build.sh",
        &[&"--append", &"panic=-1", &kernel.vmlinuz(), &initrd, &again],
        true,
    );
    // Reproducible, and an ISO 9660 volume with an El Torito boot record.
    let bytes = std::fs::read(&iso).unwrap();
    assert!(bytes == std::fs::read(&again).unwrap(), "two builds differ");
    assert_eq!(&bytes[0x8001..0x8006], b"CD001");
    assert_eq!(&bytes[0x8801..0x8806], b"CD001");
    assert_eq!(&bytes[0x8807..0x8807 + 23], b"EL TORITO SPECIFICATION");

    let disk = dir.path().join("blank.img");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let mut g = Vm::start(
        256,
        &[
            "-nic",
            "none",
            "-cdrom",
            iso.to_str().unwrap(),
            "-drive",
            &format!("file={},if=virtio,format=raw", disk.display()),
            "-boot",
            "order=dc",
        ],
    );
    let want = marker_lines(&kernel);
    let mut want: Vec<&str> = want.iter().map(String::as_str).collect();
    want.push("cmdline=BOOT_IMAGE=/boot/vmlinuz console=tty0 console=ttyS0,115200 panic=-1\n");
    g.expect_all(&want, BOOT);
    g.expect_poweroff(Duration::from_secs(60));
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Log in over SSH as root; Ok(session) or the last error once the deadline passed.
fn ssh_login(port: u16, password: &str, deadline: Duration) -> Result<ssh2::Session, String> {
    let end = Instant::now() + deadline;
    loop {
        let attempt = (|| -> Result<ssh2::Session, String> {
            let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
            let mut s = ssh2::Session::new().map_err(|e| e.to_string())?;
            s.set_timeout(30_000);
            s.set_tcp_stream(tcp);
            s.handshake().map_err(|e| format!("handshake: {e}"))?;
            s.userauth_password("root", password)
                .map_err(|e| format!("auth: {e}"))?;
            Ok(s)
        })();
        match attempt {
            Ok(s) => return Ok(s),
            Err(e) if e.starts_with("auth") || Instant::now() > end => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

fn run(s: &ssh2::Session, cmd: &str) -> String {
    use std::io::Read;
    let mut ch = s.channel_session().unwrap();
    ch.exec(cmd).unwrap();
    let mut out = String::new();
    ch.read_to_string(&mut out).unwrap();
    ch.wait_close().unwrap();
    assert_eq!(ch.exit_status().unwrap(), 0, "{cmd}: {out}");
    out
}

#[test]
fn server_takes_its_password_from_metadata_and_lets_root_in() {
    let kernel = Kernel::get();
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("server.cpio.gz");
    let modules = kernel.root.to_str().unwrap().to_string();
    build_tiny(
        &[
            "--mode",
            "server",
            "--format",
            "cpio",
            "--modules-from",
            &modules,
        ],
        &initrd,
    );
    let md = Metadata::standard();
    let ssh = free_port();
    let netdev = format!(
        "user,id=n0,restrict=on,net=169.254.0.0/16,host=169.254.0.2,\
         hostfwd=tcp:127.0.0.1:{ssh}-:22,\
         guestfwd=tcp:169.254.169.254:80-cmd:busybox nc 127.0.0.1 {}",
        md.port
    );
    let mut g = kernel.boot_ram(
        &initrd,
        &["-netdev", &netdev, "-device", "virtio-net-pci,netdev=n0"],
    );
    let text = g.expect_all(
        &[
            "IMGTEST-TINY-BOOTED",
            "udhcpc: eth0 169.254.",
            "firstboot: password set for root",
            "firstboot: SSH host keys regenerated",
            "firstboot: hostname set to web-01.example",
            "firstboot: done",
            "web-01.example login:",
        ],
        BOOT,
    );
    assert!(!text.contains(PASSWORD), "the password reached the console");
    assert!(
        md.requests()
            .contains(&"/2009-04-04/meta-data/initial-password".to_string())
    );

    let wrong = ssh_login(ssh, "not-the-password", Duration::from_secs(60));
    assert!(wrong.is_err(), "a wrong password was accepted");
    let s = ssh_login(ssh, PASSWORD, Duration::from_secs(60))
        .expect("login with the metadata password");
    let keys = s.host_key().map(|(k, _)| k.to_vec()).unwrap();
    let out = run(
        &s,
        "/usr/sbin/firstboot status; hostname; wc -c < /etc/machine-id; \
         dropbearkey -y -f /etc/dropbear/dropbear_ed25519_host_key | grep -c ^ssh-ed25519; \
         cat /root/.ssh/authorized_keys | wc -l",
    );
    assert_eq!(
        out, "state=done\nhook=disabled\nweb-01.example\n33\n1\n1\n",
        "{out}"
    );
    // The key the SSH handshake showed is one the guest generated at first boot.
    let guest_keys = run(
        &s,
        "for k in /etc/dropbear/dropbear_*_host_key; do dropbearkey -y -f $k; done \
         | grep ^ssh- | cut -d' ' -f2",
    );
    assert!(
        guest_keys
            .lines()
            .any(|k| k == imgtest::encoding::base64(&keys)),
        "handshake key {} is not among the guest's host keys:\n{guest_keys}",
        imgtest::encoding::base64(&keys)
    );
}
