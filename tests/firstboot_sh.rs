//! The guest-side first-boot agent (`harness/firstboot/firstboot`) run for real under busybox
//! sh, dash and bash against a temporary root tree and a local metadata service on 127.0.0.1,
//! and its packaging (`package.sh`: .deb and tarball, rootless and reproducible).
//!
//! Each shell runs with a different tool set, so every code path the guests use is exercised:
//! busybox applets only (busybox wget + mkpasswd), the full host (curl + openssl), and GNU wget
//! without curl or openssl (hash by `busybox mkpasswd`).

#[path = "support/metadata.rs"]
mod metadata;

use metadata::{Metadata, PASSWORD, PUBKEY};
use std::net::TcpListener;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The service's base URL as FIRSTBOOT_METADATA_URL.
fn url(md: &Metadata) -> String {
    format!("http://127.0.0.1:{}/2009-04-04/meta-data", md.port)
}

/// A URL where nothing listens.
fn dead_url() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}/2009-04-04/meta-data")
}

#[derive(Clone, Copy, Debug)]
enum Shell {
    /// busybox sh with only busybox applets (and dropbearkey) on PATH.
    Busybox,
    /// dash with the host's PATH (curl, openssl, ssh-keygen).
    Dash,
    /// bash with the host's tools minus curl and openssl (GNU wget, busybox mkpasswd).
    Bash,
}

const SHELLS: [Shell; 3] = [Shell::Busybox, Shell::Dash, Shell::Bash];

fn which(tool: &str) -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{tool} is missing: run scripts/deps.sh"
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A fresh root tree with firstboot installed and traces of a previous life to clean up.
struct Guest {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    bin: PathBuf,
    shell: Shell,
}

impl Guest {
    fn new(shell: Shell) -> Guest {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        for d in ["etc/dropbear", "var/log/apt", "root", "etc/ssh"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let w = |p: &str, s: &str| std::fs::write(root.join(p), s).unwrap();
        w("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
        w(
            "etc/shadow",
            "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n",
        );
        w("etc/hostname", "tiny\n");
        w("etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\ttiny\n");
        w("etc/machine-id", "");
        w("etc/dropbear/dropbear_rsa_host_key", "OLD");
        w("etc/ssh/ssh_host_ed25519_key", "OLD");
        w("etc/ssh/ssh_host_ed25519_key.pub", "OLD");
        w(
            "var/log/messages",
            "Nov 1 sshd: Accepted password for root\n",
        );
        w("var/log/wtmp", "wtmp-record");
        w("var/log/apt/history.log", "Start-Date: 2024\n");
        w("var/log/messages.1", "old\n");
        w("var/log/syslog.2.gz", "old\n");
        let out = Command::new(repo().join("harness/firstboot/install.sh"))
            .arg("--root")
            .arg(&root)
            .output()
            .unwrap();
        assert!(out.status.success(), "install.sh: {out:?}");
        let bin = tmp.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let link = |tool: &str| symlink(which(tool), bin.join(tool)).unwrap();
        match shell {
            Shell::Busybox => {
                let list = Command::new("busybox").arg("--list").output().unwrap();
                for applet in String::from_utf8(list.stdout).unwrap().lines() {
                    symlink(which("busybox"), bin.join(applet)).unwrap();
                }
                link("dropbearkey");
            }
            Shell::Dash => {}
            Shell::Bash => {
                for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
                    for entry in std::fs::read_dir(dir).unwrap() {
                        let entry = entry.unwrap();
                        let name = entry.file_name();
                        if ["curl", "openssl", "mkpasswd"].contains(&name.to_str().unwrap_or(""))
                            || bin.join(&name).exists()
                        {
                            continue;
                        }
                        symlink(entry.path(), bin.join(&name)).unwrap();
                    }
                }
            }
        }
        Guest {
            _tmp: tmp,
            root,
            bin,
            shell,
        }
    }

    fn run(&self, url: &str, arg: &str) -> Output {
        let script = self.root.join("usr/sbin/firstboot");
        let mut cmd = match self.shell {
            Shell::Busybox => {
                let mut c = Command::new("busybox");
                c.arg("sh").arg(&script);
                c.env("PATH", &self.bin);
                c
            }
            Shell::Dash => {
                let mut c = Command::new("dash");
                c.arg(&script);
                c.env(
                    "PATH",
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                );
                c
            }
            Shell::Bash => {
                let mut c = Command::new("bash");
                c.arg(&script);
                c.env("PATH", &self.bin);
                c
            }
        };
        cmd.arg(arg)
            .env_remove("http_proxy")
            .env("FIRSTBOOT_ROOT", &self.root)
            .env("FIRSTBOOT_METADATA_URL", url)
            .output()
            .unwrap()
    }

    fn read(&self, p: &str) -> String {
        std::fs::read_to_string(self.root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    fn status(&self) -> String {
        let out = self.run("http://127.0.0.1:9/unused", "status");
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }

    fn set_timeout(&self, secs: u32) {
        let conf = self.root.join("etc/default/firstboot");
        let mut s = std::fs::read_to_string(&conf).unwrap();
        s.push_str(&format!("FIRSTBOOT_TIMEOUT={secs}\n"));
        std::fs::write(conf, s).unwrap();
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// SHA-512 crypt of `password` with the salt of `hash`, computed independently by openssl.
fn crypt_like(hash: &str, password: &str) -> String {
    let salt = hash.split('$').nth(2).unwrap();
    let out = Command::new(which("openssl"))
        .args(["passwd", "-6", "-salt", salt, password])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn check_first_boot(shell: Shell) {
    let md = Metadata::standard();
    let g = Guest::new(shell);
    assert_eq!(g.status(), "state=pending\nhook=enabled\n", "{shell:?}");

    let out = g.run(&url(&md), "boot");
    let text = stdout(&out);
    assert!(out.status.success(), "{shell:?}: {out:?}");
    assert!(text.lines().all(|l| l.starts_with("firstboot: ")), "{text}");
    assert!(text.ends_with("firstboot: done\n"), "{text}");
    assert!(!text.contains(PASSWORD), "the password leaked: {text}");

    // Password: a SHA-512 crypt of exactly the served password, for root only.
    let shadow = g.read("etc/shadow");
    let root_hash = shadow.lines().next().unwrap().split(':').nth(1).unwrap();
    assert!(root_hash.starts_with("$6$"), "{shadow}");
    assert_eq!(crypt_like(root_hash, PASSWORD), root_hash, "{shell:?}");
    assert!(shadow.contains("\nnobody:*:19000:"), "{shadow}");

    // Host keys: replaced by real ones of every type.
    for t in ["rsa", "ecdsa", "ed25519"] {
        let key = g.root.join(format!("etc/dropbear/dropbear_{t}_host_key"));
        let out = Command::new("dropbearkey")
            .arg("-y")
            .arg("-f")
            .arg(&key)
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell:?} {t}: {out:?}");
    }
    if matches!(shell, Shell::Dash | Shell::Bash) {
        assert_ne!(g.read("etc/ssh/ssh_host_ed25519_key"), "OLD");
        assert!(
            g.read("etc/ssh/ssh_host_ed25519_key.pub")
                .starts_with("ssh-ed25519 ")
        );
        assert!(g.root.join("etc/ssh/ssh_host_rsa_key").exists());
    }

    assert_eq!(g.read("root/.ssh/authorized_keys"), format!("{PUBKEY}\n"));
    assert_eq!(g.read("etc/hostname"), "web-01.example\n");
    assert!(g.read("etc/hosts").contains("127.0.1.1\tweb-01.example\n"));
    let id = g.read("etc/machine-id");
    assert_eq!(id.trim().len(), 32, "{id:?}");
    assert!(id.trim().chars().all(|c| c.is_ascii_hexdigit()), "{id:?}");

    // Logs: truncated, rotated copies gone.
    for log in [
        "var/log/messages",
        "var/log/wtmp",
        "var/log/apt/history.log",
    ] {
        assert_eq!(g.read(log), "", "{log}");
    }
    assert!(!g.root.join("var/log/messages.1").exists());
    assert!(!g.root.join("var/log/syslog.2.gz").exists());

    // Done, disabled, and never again.
    assert_eq!(g.status(), "state=done\nhook=disabled\n");
    assert!(
        !g.root
            .join("etc/systemd/system/multi-user.target.wants/firstboot.service")
            .exists()
    );
    assert!(!g.root.join("etc/rc2.d/S01firstboot").exists());
    let asked = md.requests();
    assert!(asked.contains(&"/2009-04-04/meta-data/initial-password".to_string()));
    let again = g.run(&url(&md), "boot");
    assert!(again.status.success());
    assert_eq!(stdout(&again), "");
    assert_eq!(md.requests(), asked, "a second boot must not ask again");
}

#[test]
fn first_boot_busybox_sh() {
    check_first_boot(Shell::Busybox);
}

#[test]
fn first_boot_dash() {
    check_first_boot(Shell::Dash);
}

#[test]
fn first_boot_bash() {
    check_first_boot(Shell::Bash);
}

/// The metadata service never answers: nothing unlocked, the exact console line, state failed,
/// hooks still enabled; the next boot (service back) succeeds.
#[test]
fn fails_safe_and_retries_next_boot() {
    for shell in SHELLS {
        let g = Guest::new(shell);
        g.set_timeout(2);
        let before = g.read("etc/shadow");
        let out = g.run(&dead_url(), "boot");
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{shell:?}: {out:?}");
        assert!(
            text.contains(
                "firstboot: metadata service unreachable, accounts stay locked; will retry at next boot\n"
            ),
            "{shell:?}: {text}"
        );
        assert_eq!(g.read("etc/shadow"), before);
        assert_eq!(g.status(), "state=failed\nhook=enabled\n");

        let md = Metadata::standard();
        let out = g.run(&url(&md), "boot");
        assert!(out.status.success(), "{shell:?}: {out:?}");
        assert!(g.read("etc/shadow").starts_with("root:$6$"));
        assert_eq!(g.status(), "state=done\nhook=disabled\n");
    }
}

/// A service that answers with errors, or serves a password that cannot be a password, unlocks
/// nothing; a missing public key and hostname are not errors.
#[test]
fn bad_answers_unlock_nothing() {
    let g = Guest::new(Shell::Busybox);
    g.set_timeout(2);
    let before = g.read("etc/shadow");
    let md = Metadata::start(&[("initial-password", 500, "oops")]);
    assert_eq!(g.run(&url(&md), "boot").status.code(), Some(1));
    assert_eq!(g.read("etc/shadow"), before);
    assert!(
        md.requests().len() >= 2,
        "retried with backoff: {:?}",
        md.requests()
    );

    let md = Metadata::start(&[("initial-password", 200, "root:x\n")]);
    let out = g.run(&url(&md), "boot");
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("accounts stay locked"));
    assert_eq!(g.read("etc/shadow"), before);

    let md = Metadata::start(&[("initial-password", 200, PASSWORD)]);
    let out = g.run(&url(&md), "boot");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(g.read("etc/hostname"), "tiny\n");
    assert!(!g.root.join("root/.ssh/authorized_keys").exists());
}

#[test]
fn configured_users_and_unknown_user() {
    let g = Guest::new(Shell::Dash);
    std::fs::write(
        g.root.join("etc/default/firstboot"),
        "FIRSTBOOT_USERS=\"root nobody\"\nFIRSTBOOT_TIMEOUT=2\n",
    )
    .unwrap();
    let md = Metadata::standard();
    assert!(g.run(&url(&md), "boot").status.success());
    let shadow = g.read("etc/shadow");
    assert!(
        shadow
            .lines()
            .all(|l| l.split(':').nth(1).unwrap().starts_with("$6$"))
    );

    let g = Guest::new(Shell::Dash);
    std::fs::write(
        g.root.join("etc/default/firstboot"),
        "FIRSTBOOT_USERS=\"admin\"\n",
    )
    .unwrap();
    let out = g.run(&url(&md), "boot");
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("firstboot: no user admin in /etc/shadow"));
    assert_eq!(g.status(), "state=failed\nhook=enabled\n");
}

#[test]
fn packages_are_rootless_reproducible_and_install() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for dir in [a.path(), b.path()] {
        let out = Command::new(repo().join("harness/firstboot/package.sh"))
            .arg(dir)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let version = std::fs::read_to_string(repo().join("harness/firstboot/firstboot"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("FIRSTBOOT_VERSION=").map(str::to_string))
        .unwrap();
    let deb = format!("firstboot_{version}_all.deb");
    let tgz = format!("firstboot-{version}.tar.gz");
    for name in [&deb, &tgz] {
        assert_eq!(
            std::fs::read(a.path().join(name)).unwrap(),
            std::fs::read(b.path().join(name)).unwrap(),
            "{name} differs between two builds"
        );
    }
    assert_deb_files_owned_by_root(&a.path().join(&deb));
    assert_tarball_installs(&a.path().join(&tgz), &version);
}

/// The .deb holds the agent, its units and defaults, all owned by root.
fn assert_deb_files_owned_by_root(deb: &Path) {
    let listing = Command::new("dpkg-deb")
        .arg("-c")
        .arg(deb)
        .output()
        .unwrap();
    let listing = stdout(&listing);
    for f in [
        "./usr/sbin/firstboot",
        "./lib/systemd/system/firstboot.service",
        "./etc/init.d/firstboot",
        "./etc/default/firstboot",
    ] {
        let line = listing
            .lines()
            .find(|l| l.ends_with(f))
            .unwrap_or_else(|| panic!("{f} not in {listing}"));
        assert!(line.contains("root/root"), "{line}");
    }
}

/// The tarball's installer, offline into a directory tree: the systemd unit and its
/// enabling link, and the sysvinit script and its links.
fn assert_tarball_installs(tgz: &Path, version: &str) {
    let dest = tempfile::tempdir().unwrap();
    let tar = Command::new("tar")
        .arg("-xzf")
        .arg(tgz)
        .arg("-C")
        .arg(dest.path())
        .status()
        .unwrap();
    assert!(tar.success());
    let root = dest.path().join("root");
    std::fs::create_dir_all(root.join("sbin")).unwrap();
    symlink("../bin/busybox", root.join("sbin/init")).unwrap();
    let out = Command::new(dest.path().join(format!("firstboot-{version}/install.sh")))
        .arg("--root")
        .arg(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/firstboot.service")).unwrap();
    for want in [
        "After=network-online.target",
        "Before=ssh.service sshd.service dropbear.service",
        "ConditionPathExists=!/var/lib/firstboot/done",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.contains(want), "{want}");
    }
    assert_eq!(
        std::fs::read_link(
            root.join("etc/systemd/system/multi-user.target.wants/firstboot.service")
        )
        .unwrap(),
        Path::new("/lib/systemd/system/firstboot.service")
    );
    assert_eq!(
        std::fs::read_link(root.join("etc/init.d/S45firstboot")).unwrap(),
        Path::new("firstboot")
    );
    assert!(root.join("etc/rc2.d/S01firstboot").exists());
    assert!(
        std::fs::read_to_string(root.join("etc/init.d/firstboot"))
            .unwrap()
            .contains("X-Start-Before:    ssh dropbear")
    );
}

/// Every guest-side shell script passes shellcheck as POSIX sh.
#[test]
fn scripts_pass_shellcheck() {
    let scripts = [
        "harness/firstboot/firstboot",
        "harness/firstboot/firstboot.init",
        "harness/firstboot/install.sh",
        "harness/firstboot/package.sh",
        "harness/probe.sh",
        "images/fetch-assets.sh",
        "images/tiny/build.sh",
        "images/defects/build.sh",
        "images/iso/build.sh",
        "images/iso/real-iso.sh",
        "images/tiny/marker/sbin/init",
        "images/tiny/server/etc/init.d/rcS",
        "images/tiny/server/etc/init.d/rcK",
        "images/tiny/server/etc/init.d/S10syslog",
        "images/tiny/server/etc/init.d/S20acpid",
        "images/tiny/server/etc/init.d/S50dropbear",
        "images/tiny/server/etc/acpi/PWRF/00000080",
        "images/tiny/server/usr/share/udhcpc/default.script",
    ];
    let out = Command::new(which("shellcheck"))
        .args(["-s", "sh", "-S", "info"])
        .args(scripts.iter().map(|s| repo().join(s)))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
}

fn debugfs(image: &Path, request: &str) -> String {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(request)
        .arg(image)
        .output()
        .unwrap();
    stdout(&out)
}

/// `install.sh --image`: offline into an ext4 image, no mounting, files owned by root,
/// idempotent, the filesystem still clean; a non-ext4 file is refused with exit 2.
#[test]
fn installs_offline_into_a_filesystem_image() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::create_dir_all(tree.join("sbin")).unwrap();
    std::fs::write(tree.join("etc/inittab"), "::sysinit:/etc/init.d/rcS\n").unwrap();
    let image = tmp.path().join("fs.ext4");
    let made = Command::new("mke2fs")
        .args(["-q", "-t", "ext4", "-d"])
        .arg(&tree)
        .arg(&image)
        .arg("16M")
        .status()
        .unwrap();
    assert!(made.success());

    let install = repo().join("harness/firstboot/install.sh");
    for _ in 0..2 {
        let out = Command::new(&install)
            .arg("--image")
            .arg(&image)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let fsck = Command::new("e2fsck")
            .arg("-fn")
            .arg(&image)
            .output()
            .unwrap();
        assert!(fsck.status.success(), "{fsck:?}");
    }
    assert_eq!(
        debugfs(&image, "cat /usr/sbin/firstboot"),
        std::fs::read_to_string(repo().join("harness/firstboot/firstboot")).unwrap()
    );
    let stat = debugfs(&image, "stat /usr/sbin/firstboot");
    assert!(stat.contains("Mode:  0755"), "{stat}");
    assert!(stat.contains("User:     0   Group:     0"), "{stat}");
    for (link, target) in [
        ("/etc/init.d/S45firstboot", "firstboot"),
        ("/etc/rc2.d/S01firstboot", "../init.d/firstboot"),
        (
            "/etc/systemd/system/multi-user.target.wants/firstboot.service",
            "/lib/systemd/system/firstboot.service",
        ),
    ] {
        let stat = debugfs(&image, &format!("stat {link}"));
        assert!(
            stat.contains(&format!("Fast link dest: \"{target}\"")),
            "{link}: {stat}"
        );
    }
    assert!(debugfs(&image, "stat /var/lib/firstboot").contains("Mode:  0700"));

    let garbage = tmp.path().join("garbage.img");
    std::fs::write(&garbage, vec![0x5a; 1 << 20]).unwrap();
    let out = Command::new(&install)
        .arg("--image")
        .arg(&garbage)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not an ext2/3/4 filesystem"));
}
