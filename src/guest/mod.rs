//! The guest over SSH (`ssh2`, through the forwarded port on 127.0.0.1): password login
//! retried until a deadline (an SSH server often answers before first boot has set the
//! password), the host key fingerprint from the handshake, a wrong-password probe, and
//! one run of `harness/probe.sh` that returns every runtime fact as JSON.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ssh2::{HashType, Session};

use crate::facts::excerpt::excerpt;
use crate::facts::{Login, ProbeFacts, Tried};

/// The guest-side fact gatherer, run once per boot.
pub const PROBE_SCRIPT: &str = include_str!("../../harness/probe.sh");

/// Per-operation network timeout of the login attempts, retried until the login deadline.
const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// Per-operation network timeout of a login tried once (a wrong or empty password): it runs
/// beside other connections to a guest that may be slow under emulation, with no retry.
const TRY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the probe may take to answer: it runs a few dozen commands in the guest.
const PROBE_TIMEOUT: Duration = Duration::from_secs(90);
/// Pause between login attempts once the SSH server answers.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// While no SSH server has answered, a new connection is opened this often.
const RECONNECT: Duration = Duration::from_millis(250);
/// How long a newer connection may wait for the banner; the oldest waits [`IO_TIMEOUT`].
const PROBE_WAIT: Duration = Duration::from_secs(1);

/// Asked between waits: Some(reason) ends the wait (QEMU exited, the run was stopped, the
/// guest showed it will never let anyone in).
pub use crate::wait::Stop;
use crate::wait::{self, Waited};

/// Never stops a wait early.
pub fn never() -> Option<String> {
    None
}

/// Outcome of one connection attempt.
pub enum Attempt {
    /// Authenticated.
    Accepted(Session, String),
    /// The handshake worked (host key fingerprint) but the password was refused.
    Rejected(String, String),
    /// No SSH handshake.
    NoSsh(String),
    /// Nothing listens on the forwarded port any more: QEMU is gone.
    Gone(String),
}

/// Why [`connect`] reached no SSH server.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct NoBanner {
    /// What happened last.
    pub reason: String,
    /// Whether the port refused the connection: QEMU is gone (or its forward is not set
    /// up yet).
    pub refused: bool,
}

/// A connection to the forwarded port whose SSH server has sent its banner (left unread).
///
/// Through QEMU's user network a connect to the forwarded port succeeds at once whatever
/// the guest does. A guest with its network up but no listener resets the connection;
/// one whose network is not up yet leaves it hanging while QEMU retransmits the SYN
/// seconds apart, so a single connection would notice a new SSH server seconds late.
/// Instead a new connection is opened every [`RECONNECT`] and all are polled: a server
/// that starts listening is reached within [`RECONNECT`]. Newer connections are dropped
/// after [`PROBE_WAIT`], but the oldest waits up to [`IO_TIMEOUT`], so a server slow to
/// send its banner still answers on it.
pub fn connect(port: u16, deadline: Instant, stop: &mut Stop) -> Result<TcpStream, NoBanner> {
    let no_banner = |reason: String| NoBanner {
        reason,
        refused: false,
    };
    use rustix::event::{PollFd, PollFlags, Timespec};
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut pending: Vec<(Instant, TcpStream)> = Vec::new();
    let mut last_error = String::from("no SSH banner before the deadline");
    let mut next_open = Instant::now();
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(no_banner(last_error));
        }
        if let Some(why) = stop() {
            return Err(no_banner(why));
        }
        let oldest = pending.first().map(|(t, _)| *t);
        pending.retain(|(t, _)| {
            let limit = if Some(*t) == oldest {
                IO_TIMEOUT
            } else {
                PROBE_WAIT
            };
            now.duration_since(*t) < limit
        });
        if now >= next_open {
            next_open = now + RECONNECT;
            // QEMU listens on the port from its start: a refusal means it is gone.
            match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
                Ok(s) => pending.push((now, s)),
                Err(e) => {
                    return Err(NoBanner {
                        reason: format!("connect: {e}"),
                        refused: true,
                    });
                }
            }
        }
        let wait = next_open.min(deadline).saturating_duration_since(now);
        let timeout = Timespec {
            tv_sec: wait.as_secs() as _,
            tv_nsec: wait.subsec_nanos() as _,
        };
        let mut fds: Vec<PollFd> = pending
            .iter()
            .map(|(_, s)| PollFd::new(s, PollFlags::IN))
            .collect();
        if let Err(e) = rustix::event::poll(&mut fds, Some(&timeout)) {
            return Err(no_banner(format!("poll: {e}")));
        }
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        drop(fds);
        for i in (0..pending.len()).rev().filter(|&i| ready[i]) {
            match pending[i].1.peek(&mut [0u8; 1]) {
                Ok(0) => last_error = "connection closed before the SSH banner".into(),
                Ok(_) => return Ok(pending.swap_remove(i).1),
                Err(e) => last_error = format!("waiting for the SSH banner: {e}"),
            }
            pending.remove(i);
        }
    }
}

/// One login: wait (until `deadline`) for the SSH server, handshake, record the host key,
/// try `password` for `user`.
pub fn attempt(
    port: u16,
    (user, password): (&str, &str),
    deadline: Instant,
    io: Duration,
    stop: &mut Stop,
) -> Attempt {
    let tcp = match connect(port, deadline, stop) {
        Ok(t) => t,
        Err(e) if e.refused => return Attempt::Gone(e.reason),
        Err(e) => return Attempt::NoSsh(e.reason),
    };
    let _ = tcp.set_read_timeout(Some(io));
    let _ = tcp.set_write_timeout(Some(io));
    let mut s = match Session::new() {
        Ok(s) => s,
        Err(e) => return Attempt::NoSsh(e.to_string()),
    };
    s.set_tcp_stream(tcp);
    s.set_timeout(io.as_millis() as u32);
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
        // The connection ended before the server judged the password: no answer.
        Err(e) if connection_lost(&e) => Attempt::NoSsh(format!("authenticating: {e}")),
        Err(e) => Attempt::Rejected(fp, e.to_string()),
    }
}

/// Whether libssh2's error is the connection's end (sent, received, closed or timed out:
/// `LIBSSH2_ERROR_SOCKET_SEND`, `_TIMEOUT`, `_SOCKET_DISCONNECT`, `_SOCKET_TIMEOUT`,
/// `_SOCKET_RECV`) rather than the server's answer.
fn connection_lost(e: &ssh2::Error) -> bool {
    matches!(
        e.code(),
        ssh2::ErrorCode::Session(-7 | -9 | -13 | -30 | -43)
    )
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

/// Logs in with `password`, retrying until `deadline` or until `stop` gives a reason; with
/// `retry` false, the first refusal ends it (nothing in the guest will ever set the
/// password).
pub fn login(
    port: u16,
    user: &str,
    password: &str,
    (start, deadline): (Instant, Instant),
    retry: bool,
    stop: &mut Stop,
) -> LoginResult {
    let mut r = LoginResult {
        login: Login::NoSsh {
            reason: "no attempt before the deadline".into(),
        },
        ssh_secs: None,
        host_key: None,
        session: None,
    };
    if Instant::now() >= deadline {
        return r;
    }
    let once = |stop: &mut Stop| match attempt(port, (user, password), deadline, IO_TIMEOUT, stop) {
        Attempt::Accepted(s, fp) => {
            let t = start.elapsed().as_secs_f64();
            r.ssh_secs.get_or_insert(t);
            r.host_key = Some(fp);
            r.login = Login::Worked { after_secs: t };
            r.session = Some(s);
            Some(())
        }
        Attempt::Rejected(fp, e) => {
            r.ssh_secs.get_or_insert(start.elapsed().as_secs_f64());
            r.host_key = Some(fp);
            r.login = Login::Refused { reason: e };
            (!retry).then_some(())
        }
        Attempt::NoSsh(e) | Attempt::Gone(e) => {
            if r.ssh_secs.is_none() {
                r.login = Login::NoSsh { reason: e };
            }
            None
        }
    };
    let waited = wait::until(deadline, RETRY_PAUSE, stop, once);
    if let Waited::Stopped(reason) = waited {
        r.login = if r.ssh_secs.is_some() {
            Login::Refused { reason }
        } else {
            Login::NoSsh { reason }
        };
    }
    r
}

/// Whether `password` is rejected (Some(true)), accepted (Some(false)); None when no SSH
/// server answered it within [`TRY_TIMEOUT`]. A connection the server drops before it
/// judges the password (an SSH server restarted by the first-boot agent once it has set
/// the password or made new host keys) is tried again; a port nothing listens on (QEMU
/// gone) or a request to stop ends the tries at once.
pub fn rejects(port: u16, user: &str, password: &str) -> Option<bool> {
    let deadline = Instant::now() + TRY_TIMEOUT;
    // Some(None): nothing listens any more, which ends the tries too.
    let judged = |stop: &mut Stop| {
        let left = deadline.saturating_duration_since(Instant::now());
        match attempt(port, (user, password), deadline, left, stop) {
            Attempt::Accepted(..) => Some(Some(false)),
            Attempt::Rejected(..) => Some(Some(true)),
            Attempt::Gone(_) => Some(None),
            Attempt::NoSsh(_) => None,
        }
    };
    match wait::until(deadline, RETRY_PAUSE, &mut wait::on_interrupt, judged) {
        Waited::Done(rejected) => rejected,
        Waited::Stopped(_) | Waited::TimedOut => None,
    }
}

/// One login with `password` for each of `users`, all at once (each on its own
/// connection, so the guest's failure delays overlap).
pub fn try_each(port: u16, users: &[String], password: &str) -> Vec<Tried> {
    std::thread::scope(|s| {
        let handles: Vec<_> = users
            .iter()
            .map(|u| s.spawn(move || rejects(port, u, password)))
            .collect();
        users
            .iter()
            .zip(handles)
            .map(|(user, h)| Tried {
                user: user.clone(),
                rejected: h.join().unwrap_or(None),
            })
            .collect()
    })
}

/// How the probe is started: as root, or through passwordless `sudo` when logged in as
/// another user (cloud-init's default user; host keys and /etc/shadow are root's).
pub const PROBE_COMMAND: &str = r#"if [ "$(id -u)" != 0 ] && sudo -n true 2>/dev/null; then exec sudo -n sh -s; fi; exec sh -s"#;

/// Where SSH host keys live (shell patterns) and which files to hash: what the probe is told.
#[derive(Clone, Copy)]
pub struct ProbeInput<'a> {
    /// Patterns of the host key files, in `HOST_KEY_GLOBS`.
    pub host_keys: &'a [&'a str],
    /// Files whose SHA-256 is wanted, in `HASH_PATHS`.
    pub hash: &'a [String],
}

/// `lines` as one single-quoted shell word, a line each (lines holding a newline left out).
fn quoted_lines<S: AsRef<str>>(lines: &[S]) -> String {
    let body = lines
        .iter()
        .map(AsRef::as_ref)
        .filter(|p| !p.contains('\n'))
        .map(|p| p.replace('\'', "'\\''"))
        .collect::<Vec<_>>()
        .join("\n");
    format!("'{body}'")
}

/// The probe's script, told where host keys live (`HOST_KEY_GLOBS`) and which files to
/// hash (`HASH_PATHS`), one per line.
pub fn probe_script(input: ProbeInput) -> String {
    format!(
        "HOST_KEY_GLOBS={}\nHASH_PATHS={}\n{PROBE_SCRIPT}",
        quoted_lines(input.host_keys),
        quoted_lines(input.hash)
    )
}

/// Runs [`PROBE_SCRIPT`] (told `input`) with [`PROBE_COMMAND`] in one round trip and
/// parses its JSON.
pub fn probe(session: &Session, input: ProbeInput) -> Result<ProbeFacts, String> {
    let mut ch = session
        .channel_session()
        .map_err(|e| format!("channel: {e}"))?;
    ch.exec(PROBE_COMMAND).map_err(|e| format!("exec: {e}"))?;
    let io = session.timeout();
    session.set_timeout(PROBE_TIMEOUT.as_millis() as u32);
    let answer = read_probe(ch, input);
    session.set_timeout(io);
    answer
}

/// The most bytes of the probe's output read: its JSON is a few kilobytes.
const PROBE_OUTPUT_MAX: u64 = 16 << 20;

/// Sends the probe's script on `ch` and parses the JSON line it prints.
fn read_probe(mut ch: ssh2::Channel, input: ProbeInput) -> Result<ProbeFacts, String> {
    ch.write_all(probe_script(input).as_bytes())
        .map_err(|e| format!("sending the probe: {e}"))?;
    ch.send_eof().map_err(|e| format!("eof: {e}"))?;
    let mut out = Vec::new();
    (&mut ch)
        .take(PROBE_OUTPUT_MAX)
        .read_to_end(&mut out)
        .map_err(|e| format!("reading the probe: {e}"))?;
    let out = String::from_utf8_lossy(&out);
    let _ = ch.close();
    let _ = ch.wait_close();
    let status = ch.exit_status().unwrap_or(-1);
    let json = out
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or("");
    serde_json::from_str(json)
        .map(ProbeFacts::bounded)
        .map_err(|e| {
            let out = excerpt(&format!("{out:?}"), None);
            format!("probe exited {status}, bad output {out}: {e}")
        })
}

/// Polls (every [`RETRY_PAUSE`]) until `path` exists in the guest: seconds since `start`
/// when it did, None at `deadline`, when `stop` gives a reason, or on SSH errors.
pub fn wait_for_path(
    session: &Session,
    path: &str,
    start: Instant,
    deadline: Instant,
    stop: &mut Stop,
) -> Option<f64> {
    let cmd = format!("test -e '{}'", path.replace('\'', "'\\''"));
    // Some(None): SSH failed, which ends the wait too.
    let exists = |_: &mut Stop| -> Option<Option<f64>> {
        let Ok(mut ch) = session.channel_session() else {
            return Some(None);
        };
        if ch.exec(&cmd).is_err() {
            return Some(None);
        }
        let _ = std::io::copy(&mut (&mut ch).take(PROBE_OUTPUT_MAX), &mut std::io::sink());
        let _ = ch.close();
        let _ = ch.wait_close();
        match ch.exit_status() {
            Ok(0) => Some(Some(start.elapsed().as_secs_f64())),
            Ok(_) => None,
            Err(_) => Some(None),
        }
    };
    match wait::until(deadline, RETRY_PAUSE, stop, exists) {
        Waited::Done(at) => at,
        Waited::Stopped(_) | Waited::TimedOut => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `script` under each shell the probe supports (busybox sh, dash, bash): each
    /// shell's name and standard output, once it exited successfully.
    fn under_each_shell(script: &str) -> Vec<(&'static str, String)> {
        ["busybox", "dash", "bash"]
            .into_iter()
            .map(|shell| {
                let mut cmd = std::process::Command::new(shell);
                if shell == "busybox" {
                    cmd.arg("sh");
                }
                let out = cmd.arg("-c").arg(script).output().unwrap();
                assert!(out.status.success(), "{shell}: {out:?}");
                (shell, String::from_utf8(out.stdout).unwrap())
            })
            .collect()
    }

    /// Runs `body` under each shell the probe supports, after the probe's shell function
    /// `name` (its text from the script, up to its closing brace); returns each output.
    fn with_probe_function(name: &str, body: &str) -> Vec<(&'static str, String)> {
        let start = PROBE_SCRIPT
            .find(&format!("\n{name}() {{"))
            .unwrap_or_else(|| panic!("no function {name} in the probe"));
        let len = PROBE_SCRIPT[start..]
            .find("\n}\n")
            .expect("its closing brace")
            + 3;
        under_each_shell(&format!("{}{body}", &PROBE_SCRIPT[start..start + len]))
    }

    #[test]
    fn the_probe_quotes_plain_values_as_they_are_and_strips_what_json_would_escape() {
        let body = r#"for v in 'root' 'a b/c:d%' '' 'x"y\z' "$(printf 'tab\there\001\nnl')" 'é'; do
            qv "$v"; printf '%s|' "$Q"; done"#;
        for (shell, out) in with_probe_function("qv", body) {
            assert_eq!(
                out, r#""root"|"a b/c:d%"|""|"xyz"|"tabherenl"|"é"|"#,
                "{shell}"
            );
        }
    }

    #[test]
    fn the_probe_expands_sshds_tokens_in_authorized_keys_patterns() {
        let body = r#"home=/home/a%u name=ann uid=1001
            for p in .ssh/keys /etc/k/%u %h/.ssh/x_%U%% 100%x %; do expand "$p"; printf '%s|' "$F"; done"#;
        for (shell, out) in with_probe_function("expand", body) {
            assert_eq!(
                out, ".ssh/keys|/etc/k/ann|/home/a%u/.ssh/x_1001%|100%x|%|",
                "{shell}"
            );
        }
    }

    #[test]
    fn probe_script_prints_json_that_parses_into_probe_facts() {
        for (shell, out) in under_each_shell(PROBE_SCRIPT) {
            let p: ProbeFacts =
                serde_json::from_str(&out).unwrap_or_else(|e| panic!("{shell}: {e}"));
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

    /// A fake forwarded port: every connection is accepted at once (as QEMU does);
    /// those accepted before `up` hang silently (the guest's network is not up yet),
    /// later ones get a banner after `delay`.
    fn fake_port(up: Duration, delay: Duration) -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let start = Instant::now();
        std::thread::spawn(move || {
            let mut hung = Vec::new();
            for conn in listener.incoming() {
                let mut conn = conn.unwrap();
                if start.elapsed() < up {
                    hung.push(conn);
                    continue;
                }
                std::thread::spawn(move || {
                    std::thread::sleep(delay);
                    let _ = conn.write_all(b"SSH-2.0-fake\r\n");
                    std::thread::sleep(Duration::from_secs(30));
                });
            }
        });
        port
    }

    #[test]
    fn a_server_that_comes_up_is_reached_although_earlier_connections_hang() {
        let port = fake_port(Duration::from_millis(600), Duration::ZERO);
        let start = Instant::now();
        let mut stream = connect(port, start + IO_TIMEOUT, &mut never).unwrap();
        // The first connection hangs for good: waiting on it alone would take IO_TIMEOUT.
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        let mut banner = [0u8; 8];
        stream.read_exact(&mut banner).unwrap();
        assert_eq!(&banner, b"SSH-2.0-", "the banner is left unread");
    }

    #[test]
    fn a_server_slow_to_send_its_banner_still_answers() {
        // Slower than PROBE_WAIT on every connection: only the oldest can answer.
        let port = fake_port(Duration::ZERO, PROBE_WAIT * 2);
        let start = Instant::now();
        assert!(connect(port, start + IO_TIMEOUT, &mut never).is_ok());
        assert!(start.elapsed() >= PROBE_WAIT * 2);
    }

    #[test]
    fn waiting_for_the_banner_stops_at_the_deadline_or_when_the_vm_is_gone() {
        let port = fake_port(Duration::from_secs(60), Duration::ZERO);
        let start = Instant::now();
        let e = connect(port, start + Duration::from_millis(700), &mut never).unwrap_err();
        assert!(e.reason.contains("no SSH banner") && !e.refused, "{e}");
        assert!(start.elapsed() < Duration::from_secs(3));
        let e = connect(port, start + IO_TIMEOUT, &mut || Some("QEMU exited".into())).unwrap_err();
        assert_eq!(e.reason, "QEMU exited");
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
            (start, start + Duration::from_millis(500)),
            true,
            &mut never,
        );
        assert!(matches!(r.login, Login::NoSsh { .. }));
        assert!(r.session.is_none() && r.ssh_secs.is_none());
        assert!(start.elapsed() < Duration::from_secs(5));
        let start = Instant::now();
        assert_eq!(rejects(port, "root", "x"), None);
        assert!(
            start.elapsed() < RETRY_PAUSE,
            "a closed port ends the tries at once"
        );
        let tried = try_each(port, &["root".into(), "ops".into()], "");
        assert_eq!(
            tried.iter().map(|t| t.rejected).collect::<Vec<_>>(),
            [None, None]
        );
    }

    #[test]
    fn a_stop_reason_ends_the_login_wait_with_that_reason() {
        let port = fake_port(Duration::from_secs(60), Duration::ZERO);
        let start = Instant::now();
        let r = login(
            port,
            "root",
            "x",
            (start, start + IO_TIMEOUT),
            true,
            &mut || Some("the guest cannot run an SSH server".into()),
        );
        assert_eq!(
            r.login,
            Login::NoSsh {
                reason: "the guest cannot run an SSH server".into()
            }
        );
        assert!(start.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn the_probe_is_told_where_host_keys_are_and_which_files_to_hash() {
        let script = probe_script(ProbeInput {
            host_keys: &["/etc/a/*_key", "/etc/b/b_*_key"],
            hash: &[
                "/etc/ssl/private/it's.key".into(),
                "/root/.ssh/id_rsa".into(),
            ],
        });
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{}printf '%s|%s' \"$HOST_KEY_GLOBS\" \"$HASH_PATHS\"",
                &script[..script.len() - PROBE_SCRIPT.len()]
            ))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "/etc/a/*_key\n/etc/b/b_*_key|\
             /etc/ssl/private/it's.key\n/root/.ssh/id_rsa"
        );
    }

    #[test]
    fn the_probe_hashes_the_host_keys_its_patterns_match() {
        let d = tempfile::tempdir().unwrap();
        for (name, body) in [
            ("a_host_key", "A"),
            ("b_host_key", "B"),
            ("a_host_key.pub", "P"),
        ] {
            std::fs::write(d.path().join(name), body).unwrap();
        }
        let pattern = format!("{}/*_host_key", d.path().display());
        let none = "/nonexistent/*_host_key";
        let script = probe_script(ProbeInput {
            host_keys: &[&pattern, none],
            hash: &[],
        });
        for (shell, out) in under_each_shell(&script) {
            let p: ProbeFacts =
                serde_json::from_str(&out).unwrap_or_else(|e| panic!("{shell}: {e}"));
            let keys: Vec<(String, String)> = p
                .host_keys
                .iter()
                .map(|k| (k.path.clone(), k.sha256.clone()))
                .collect();
            let sha = |s: &str| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(s));
            let at = |n: &str| d.path().join(n).display().to_string();
            assert_eq!(
                keys,
                [(at("a_host_key"), sha("A")), (at("b_host_key"), sha("B"))],
                "{shell}"
            );
        }
    }
}
