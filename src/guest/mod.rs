//! The guest over SSH (`ssh2`, through the forwarded port on 127.0.0.1): password login
//! retried until a deadline (an SSH server often answers before first boot has set the
//! password), the host key fingerprint from the handshake, a wrong-password probe, and
//! one run of `harness/probe.sh` that returns every runtime fact as JSON.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ssh2::{HashType, Session};

use crate::checks::facts::{Login, ProbeFacts};

/// The guest-side fact gatherer, run once per boot.
pub const PROBE_SCRIPT: &str = include_str!("../../harness/probe.sh");

/// Per-operation network timeout.
const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause between login attempts.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Outcome of one connection attempt.
pub enum Attempt {
    /// Authenticated.
    Accepted(Session, String),
    /// The handshake worked (host key fingerprint) but the password was refused.
    Rejected(String, String),
    /// No SSH handshake.
    NoSsh(String),
}

/// One connection: handshake, record the host key, try `password` for `user`.
pub fn attempt(port: u16, user: &str, password: &str) -> Attempt {
    attempt_within(port, user, password, IO_TIMEOUT)
}

/// [`attempt`] with a per-operation `timeout`.
pub fn attempt_within(port: u16, user: &str, password: &str, timeout: Duration) -> Attempt {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let tcp = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(t) => t,
        Err(e) => return Attempt::NoSsh(format!("connect: {e}")),
    };
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout));
    let mut s = match Session::new() {
        Ok(s) => s,
        Err(e) => return Attempt::NoSsh(e.to_string()),
    };
    s.set_tcp_stream(tcp);
    s.set_timeout(timeout.as_millis() as u32);
    if let Err(e) = s.handshake() {
        return Attempt::NoSsh(format!("handshake: {e}"));
    }
    let fp = s
        .host_key_hash(HashType::Sha256)
        .map(hex::encode)
        .unwrap_or_default();
    match s.userauth_password(user, password) {
        Ok(()) if s.authenticated() => Attempt::Accepted(s, fp),
        Ok(()) => Attempt::Rejected(fp, "not authenticated".into()),
        Err(e) => Attempt::Rejected(fp, e.to_string()),
    }
}

/// The result of [`login`].
pub struct LoginResult {
    /// How the login went (times relative to `start`).
    pub login: Login,
    /// When the first handshake worked, seconds since `start`.
    pub ssh_secs: Option<f64>,
    /// Host key SHA-256 fingerprint (hex) from the handshake.
    pub host_key: Option<String>,
    /// The authenticated session.
    pub session: Option<Session>,
}

/// Logs in with `password`, retrying until `deadline` or until `alive` says the VM is gone.
pub fn login(
    port: u16,
    user: &str,
    password: &str,
    start: Instant,
    deadline: Instant,
    alive: &mut dyn FnMut() -> bool,
) -> LoginResult {
    let mut r = LoginResult {
        login: Login::NoSsh {
            reason: "no attempt before the deadline".into(),
        },
        ssh_secs: None,
        host_key: None,
        session: None,
    };
    while Instant::now() < deadline {
        if !alive() {
            let reason = "QEMU exited".to_string();
            r.login = if r.ssh_secs.is_some() {
                Login::Refused { reason }
            } else {
                Login::NoSsh { reason }
            };
            return r;
        }
        match attempt(port, user, password) {
            Attempt::Accepted(s, fp) => {
                let t = start.elapsed().as_secs_f64();
                r.ssh_secs.get_or_insert(t);
                r.host_key = Some(fp);
                r.login = Login::Worked { after_secs: t };
                r.session = Some(s);
                return r;
            }
            Attempt::Rejected(fp, e) => {
                r.ssh_secs.get_or_insert(start.elapsed().as_secs_f64());
                r.host_key = Some(fp);
                r.login = Login::Refused { reason: e };
            }
            Attempt::NoSsh(e) => {
                if r.ssh_secs.is_none() {
                    r.login = Login::NoSsh { reason: e };
                }
            }
        }
        let pause = RETRY_PAUSE.min(deadline.saturating_duration_since(Instant::now()));
        std::thread::sleep(pause);
    }
    r
}

/// Whether `password` is rejected (Some(true)), accepted (Some(false)); None without SSH.
pub fn rejects(port: u16, user: &str, password: &str) -> Option<bool> {
    match attempt(port, user, password) {
        Attempt::Accepted(..) => Some(false),
        Attempt::Rejected(..) => Some(true),
        Attempt::NoSsh(_) => None,
    }
}

/// How the probe is started: as root, or through passwordless `sudo` when logged in as
/// another user (cloud-init's default user; host keys and /etc/shadow are root's).
pub const PROBE_COMMAND: &str = r#"if [ "$(id -u)" != 0 ] && sudo -n true 2>/dev/null; then exec sudo -n sh -s; fi; exec sh -s"#;

/// Runs [`PROBE_SCRIPT`] with [`PROBE_COMMAND`] in one round trip and parses its JSON.
pub fn probe(session: &Session) -> Result<ProbeFacts, String> {
    let mut ch = session
        .channel_session()
        .map_err(|e| format!("channel: {e}"))?;
    ch.exec(PROBE_COMMAND).map_err(|e| format!("exec: {e}"))?;
    ch.write_all(PROBE_SCRIPT.as_bytes())
        .map_err(|e| format!("sending the probe: {e}"))?;
    ch.send_eof().map_err(|e| format!("eof: {e}"))?;
    let mut out = String::new();
    ch.read_to_string(&mut out)
        .map_err(|e| format!("reading the probe: {e}"))?;
    let _ = ch.wait_close();
    let status = ch.exit_status().unwrap_or(-1);
    let json = out
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or("");
    serde_json::from_str(json)
        .map_err(|e| format!("probe exited {status}, bad output {out:?}: {e}"))
}

/// Polls (every [`RETRY_PAUSE`]) until `path` exists in the guest: seconds since `start`
/// when it did, None at `deadline`, when `alive` says the VM is gone, or on SSH errors.
pub fn wait_for_path(
    session: &Session,
    path: &str,
    start: Instant,
    deadline: Instant,
    alive: &mut dyn FnMut() -> bool,
) -> Option<f64> {
    let cmd = format!("test -e '{}'", path.replace('\'', "'\\''"));
    while Instant::now() < deadline && alive() {
        let mut ch = session.channel_session().ok()?;
        ch.exec(&cmd).ok()?;
        let mut sink = String::new();
        let _ = ch.read_to_string(&mut sink);
        let _ = ch.wait_close();
        if ch.exit_status().ok()? == 0 {
            return Some(start.elapsed().as_secs_f64());
        }
        std::thread::sleep(RETRY_PAUSE.min(deadline.saturating_duration_since(Instant::now())));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_script_prints_json_that_parses_into_probe_facts() {
        for shell in ["busybox", "dash", "bash"] {
            let mut cmd = std::process::Command::new(shell);
            if shell == "busybox" {
                cmd.arg("sh");
            }
            let out = cmd.arg("-c").arg(PROBE_SCRIPT).output().unwrap();
            assert!(out.status.success(), "{shell}");
            let p: ProbeFacts =
                serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{shell}: {e}"));
            assert!(!p.kernel.is_empty());
        }
    }

    #[test]
    fn probe_command_runs_the_script_from_stdin_as_root_or_through_sudo() {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(PROBE_COMMAND)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().unwrap().write_all(b"echo uid=$(id -u)\n")?;
                c.wait_with_output()
            })
            .unwrap();
        let uid = rustix::process::getuid().as_raw();
        let said = String::from_utf8_lossy(&out.stdout);
        // Root runs it directly; anyone else through sudo if allowed, else as themselves.
        assert!(
            said == format!("uid={uid}\n") || said == "uid=0\n",
            "{said}"
        );
    }

    #[test]
    fn no_ssh_server_means_no_login_before_the_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let start = Instant::now();
        let r = login(
            port,
            "root",
            "x",
            start,
            start + Duration::from_millis(500),
            &mut || true,
        );
        assert!(matches!(r.login, Login::NoSsh { .. }));
        assert!(r.session.is_none() && r.ssh_secs.is_none());
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(rejects(port, "root", "x"), None);
    }
}
