//! The first-boot agent and the SSH servers the image holds: what makes a login possible
//! at all. When the image shows no SSH server can ever answer, the login stage need not
//! wait for one.

use crate::fs::FsView;

/// `/usr/sbin/firstboot` exists, and the boot hooks that run it (systemd unit, LSB script,
/// busybox inittab). A masked unit runs nothing, whatever links want it.
pub(super) fn firstboot(view: &FsView) -> (bool, Vec<String>) {
    let mut hooks = if masked(view, "firstboot.service") {
        Vec::new()
    } else {
        view.glob("/etc/systemd/system/*/firstboot.service")
    };
    hooks.extend(view.glob("/etc/init.d/firstboot"));
    if let Some(inittab) = view.read("/etc/inittab")
        && String::from_utf8_lossy(&inittab)
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains("firstboot"))
    {
        hooks.push("/etc/inittab".into());
    }
    (view.exists("/usr/sbin/firstboot"), hooks)
}

/// The SSH server programs, with the systemd units that start each.
const SERVERS: &[(&str, &[&str])] = &[
    (
        "/usr/sbin/sshd",
        &["ssh.service", "ssh.socket", "sshd.service"],
    ),
    ("/usr/sbin/dropbear", &["dropbear.service"]),
    ("/usr/bin/dropbear", &["dropbear.service"]),
    ("/sbin/dropbear", &["dropbear.service"]),
    ("/usr/bin/dropbearmulti", &["dropbear.service"]),
];

/// Whether systemd will refuse to start `unit`: masked (a link to `/dev/null` in
/// `/etc/systemd/system`).
fn masked(view: &FsView, unit: &str) -> bool {
    view.link_target(&format!("/etc/systemd/system/{unit}"))
        .is_some_and(|t| t == "/dev/null")
}

/// The SSH servers that can run, and why none can when the image proves it: no server
/// program at all, or (under systemd) every unit that would start one masked. Anything
/// less certain (a unit merely not enabled, an init script) counts as able to run.
pub(super) fn ssh_servers(view: &FsView) -> (Vec<String>, Option<String>) {
    let present: Vec<(&str, &[&str])> = SERVERS
        .iter()
        .copied()
        .filter(|(p, _)| view.exists(p))
        .collect();
    if present.is_empty() {
        return (
            Vec::new(),
            Some("no SSH server in the image (no sshd, no dropbear)".into()),
        );
    }
    let systemd = view
        .link_target("/sbin/init")
        .is_some_and(|t| t.contains("systemd"));
    let runnable: Vec<String> = present
        .iter()
        .filter(|(_, units)| !systemd || !units.iter().all(|u| masked(view, u)))
        .map(|(p, _)| p.to_string())
        .collect();
    let why = runnable.is_empty().then(|| {
        "every systemd unit that starts an SSH server is masked (linked to /dev/null)".into()
    });
    (runnable, why)
}

/// Why no SSH server starts at boot, when the image shows it: under systemd, no unit of an
/// SSH server is enabled (no `.wants` link), no unit or drop-in in `/etc/systemd/system`
/// names one, and no SysV runlevel link starts one. An SSH server started another way
/// (an init script of the image's own, a container) is not seen: the runner only uses
/// this after the boot finished (the login prompt), and says so.
pub(super) fn ssh_disabled(view: &FsView) -> Option<String> {
    let systemd = view
        .link_target("/sbin/init")
        .is_some_and(|t| t.contains("systemd"));
    if !systemd {
        return None;
    }
    let names = ["ssh", "dropbear"];
    let mentions = |text: &[u8]| {
        let t = String::from_utf8_lossy(text);
        t.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .any(|l| {
                names.iter().any(|n| {
                    l.contains(&format!("{n}.service")) || l.contains(&format!("{n}.socket"))
                })
            })
    };
    for dir in [
        "/etc/systemd/system",
        "/lib/systemd/system",
        "/usr/lib/systemd/system",
    ] {
        for wants in view
            .list(dir)
            .iter()
            .filter(|d| d.ends_with(".wants") || d.ends_with(".requires"))
        {
            if view
                .list(&format!("{dir}/{wants}"))
                .iter()
                .any(|u| names.iter().any(|n| u.starts_with(n)))
            {
                return None;
            }
        }
    }
    if view
        .files("/etc/systemd/system")
        .iter()
        .any(|f| f.size < 1 << 16 && view.read(&f.path).is_some_and(|t| mentions(&t)))
    {
        return None;
    }
    let sysv = (2..=5).any(|l| {
        view.list(&format!("/etc/rc{l}.d"))
            .iter()
            .any(|n| n.starts_with('S') && names.iter().any(|s| n.contains(s)))
    });
    (!sysv).then(|| "no SSH server is enabled (no systemd .wants link, no unit naming one, no runlevel link)".into())
}
