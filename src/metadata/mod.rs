//! The platform's metadata service as the guest sees it at 169.254.169.254:80.
//!
//! An in-process HTTP/1.0 server serves EC2-style paths under `/2009-04-04/` and
//! `/latest/` and a cloud-init NoCloud seed at the root ([`answer`]). It listens on one
//! Unix socket per boot, in the run's private (0700) temp dir, and answers only
//! connections from its own user: which socket a connection came in on says which boot
//! asked, and nothing another local user can see (no argv, no environment, no TCP port)
//! lets them ask. QEMU reaches it through a `guestfwd ... cmd:` rule that runs
//! `imgtest __relay SOCKET` per guest connection; the relay ([`relay`]) copies bytes both
//! ways. Requests are parsed with bounds ([`parse_request`]): a guest cannot make the
//! server wait or grow without end. Every request is logged (paths and status only, never
//! bodies, so secrets, also the password inside user-data, stay out of the log) and a
//! [`Fault`] can be injected for every request.
//!
//! A guest cannot exhaust the host: one boot holds at most its cap of connections open
//! (each is a relay process and a server thread); a connection over the cap is closed at
//! once, so its relay exits at once, and counted ([`MetadataServer::refused`]). A request
//! must arrive whole within [`REQUEST_DEADLINE`] however slowly it trickles, and the log
//! keeps at most [`MAX_LOGGED`] requests, each path at most a few hundred characters.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::encoding;
use crate::facts::Fault;
use crate::facts::excerpt::excerpt;
use crate::wait;

/// How long a connection may take to send its whole request.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// How long a connection that is never answered is held: longer than any run.
const NEVER: Duration = Duration::from_secs(7 * 24 * 3600);

/// The most requests the log keeps (a boot makes a few dozen).
pub const MAX_LOGGED: usize = 10_000;

/// The longest request line or header line read.
const MAX_LINE: u64 = 8 << 10;

/// The most header lines read.
const MAX_HEADERS: usize = 100;

/// One boot's secrets, unique per boot.
#[derive(Clone, PartialEq, Eq)]
pub struct BootSecrets {
    /// The initial password the guest must set.
    pub password: String,
    /// `instance-id`.
    pub instance_id: String,
    /// `hostname` and `local-hostname`.
    pub hostname: String,
    /// `public-keys/0/openssh-key`, if any (404 otherwise).
    pub ssh_key: Option<String>,
}

impl std::fmt::Debug for BootSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootSecrets")
            .field("instance_id", &self.instance_id)
            .field("hostname", &self.hostname)
            .finish_non_exhaustive()
    }
}

impl BootSecrets {
    /// Fresh random secrets for boot number `index`.
    pub fn generate(index: usize) -> std::io::Result<Self> {
        let id = random_string(8)?;
        Ok(BootSecrets {
            password: random_string(20)?,
            instance_id: format!("i-imgtest-{index}-{id}"),
            hostname: format!("imgtest-{index}-{}", &id[..4].to_ascii_lowercase()),
            ssh_key: Some(random_public_key(&format!("imgtest-boot-{index}"))?),
        })
    }
}

/// A fresh Ed25519 public key in OpenSSH's one-line form, `ssh-ed25519 AAAA... comment`:
/// 32 random bytes as the key. No one holds its private half; it stands for the platform
/// user's key that the metadata service hands out, so a run can tell it from any other
/// key the guest accepts.
pub fn random_public_key(comment: &str) -> std::io::Result<String> {
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    let mut blob = Vec::with_capacity(51);
    for field in [&b"ssh-ed25519"[..], &key[..]] {
        blob.extend_from_slice(&(field.len() as u32).to_be_bytes());
        blob.extend_from_slice(field);
    }
    Ok(format!("ssh-ed25519 {} {comment}", encoding::base64(&blob)))
}

/// `len` random alphanumeric characters from /dev/urandom.
pub fn random_string(len: usize) -> std::io::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = vec![0u8; len];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

/// One request as the server saw it. Never contains a response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Milliseconds since the server started.
    pub at_ms: u64,
    /// The boot that asked (None: a connection from another user, refused).
    pub boot: Option<usize>,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Status sent; None when the connection was dropped or never answered.
    pub status: Option<u16>,
}

struct Inner {
    log: Mutex<Vec<RequestRecord>>,
    /// Connections closed unanswered because their boot held its cap open, per boot.
    refused: Mutex<std::collections::BTreeMap<usize, usize>>,
    /// The most connections one boot holds open.
    cap: usize,
    fault: Fault,
    stop: AtomicBool,
    start: Instant,
}

/// One boot's socket and the thread accepting on it.
struct Listener {
    socket: PathBuf,
    accept: JoinHandle<()>,
}

/// A running metadata server; stops (and unblocks never-answering connections) on drop.
pub struct MetadataServer {
    dir: PathBuf,
    inner: Arc<Inner>,
    listeners: Mutex<Vec<Listener>>,
}

impl MetadataServer {
    /// A server with `fault`, whose sockets go in `dir` (which must be private: see the
    /// module note), letting each boot hold at most `connections` open.
    pub fn start(fault: Fault, dir: &Path, connections: usize) -> std::io::Result<Self> {
        Ok(MetadataServer {
            dir: dir.to_path_buf(),
            inner: Arc::new(Inner {
                log: Mutex::new(Vec::new()),
                refused: Mutex::new(Default::default()),
                cap: connections.max(1),
                fault,
                stop: AtomicBool::new(false),
                start: Instant::now(),
            }),
            listeners: Mutex::new(Vec::new()),
        })
    }

    /// Starts answering `secrets` to boot number `boot` on a socket of its own; returns
    /// the socket's path, for [`MetadataServer::relay_command`].
    pub fn register(&self, boot: usize, secrets: BootSecrets) -> std::io::Result<PathBuf> {
        let socket = self.dir.join(format!("boot{boot}-metadata.sock"));
        let listener = UnixListener::bind(&socket)?;
        std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        let inner = self.inner.clone();
        let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if inner.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = conn else { continue };
                if open.fetch_add(1, Ordering::SeqCst) >= inner.cap {
                    open.fetch_sub(1, Ordering::SeqCst);
                    let mut refused = inner.refused.lock().unwrap_or_else(|e| e.into_inner());
                    *refused.entry(boot).or_default() += 1;
                    drop(refused);
                    drop(stream);
                    continue;
                }
                let (inner, secrets, open) = (inner.clone(), secrets.clone(), open.clone());
                std::thread::spawn(move || {
                    serve(stream, boot, &secrets, &inner);
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        let mut listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        listeners.push(Listener {
            socket: socket.clone(),
            accept,
        });
        Ok(socket)
    }

    /// The requests so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.inner
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many of boot `boot`'s connections were closed unanswered because it held its
    /// cap open.
    pub fn refused(&self, boot: usize) -> usize {
        let refused = self.inner.refused.lock().unwrap_or_else(|e| e.into_inner());
        refused.get(&boot).copied().unwrap_or(0)
    }

    /// The shell command QEMU runs per guest connection: `'PROGRAM' __relay 'SOCKET'`.
    pub fn relay_command(&self, program: &Path, socket: &Path) -> String {
        format!(
            "{} __relay {}",
            shell_quote(&program.to_string_lossy()),
            shell_quote(&socket.to_string_lossy())
        )
    }
}

impl Drop for MetadataServer {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        let listeners =
            std::mem::take(&mut *self.listeners.lock().unwrap_or_else(|e| e.into_inner()));
        for l in listeners {
            // Wake the accept loop, which then sees the stop. A socket already gone (its
            // directory removed) cannot wake it: the thread is left to end with the process
            // rather than waited for forever.
            if UnixStream::connect(&l.socket).is_ok() {
                let _ = l.accept.join();
            }
            let _ = std::fs::remove_file(&l.socket);
        }
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The body for `path`, or None for 404: the EC2-style tree under `/2009-04-04/` and
/// `/latest/` (meta-data and user-data, what firstboot and cloud-init's Ec2 datasource
/// read) and the NoCloud seed at the root (`meta-data`, `user-data`, `vendor-data`, what
/// cloud-init's NoCloud reads from the SMBIOS seed URL `s=http://169.254.169.254/`).
pub fn answer(path: &str, s: &BootSecrets) -> Option<String> {
    match path {
        "/meta-data" => return Some(nocloud_meta_data(s)),
        "/user-data" | "/2009-04-04/user-data" | "/latest/user-data" => {
            return Some(cloud_config_user_data(s));
        }
        "/vendor-data" => return Some("#cloud-config\n{}\n".into()),
        _ => {}
    }
    let rest = ["/2009-04-04/meta-data", "/latest/meta-data"]
        .iter()
        .find_map(|root| path.strip_prefix(root))?;
    let rest = rest.trim_start_matches('/');
    Some(match rest {
        "" => {
            let mut idx = "hostname\ninitial-password\ninstance-id\nlocal-hostname\n".to_string();
            if s.ssh_key.is_some() {
                idx.push_str("public-keys/\n");
            }
            idx
        }
        "instance-id" => s.instance_id.clone(),
        "hostname" | "local-hostname" => s.hostname.clone(),
        "initial-password" => s.password.clone(),
        "public-keys" | "public-keys/" => s.ssh_key.as_ref().map(|_| "0=imgtest".to_string())?,
        "public-keys/0/openssh-key" => s.ssh_key.clone()?,
        _ => return None,
    })
}

/// Whether the answer to `path` carries the boot's password (firstboot's
/// `initial-password`, cloud-init's user-data).
pub fn delivers_password(path: &str) -> bool {
    path.ends_with("/initial-password") || path.ends_with("/user-data")
}

/// NoCloud `meta-data` (YAML): a per-boot `instance-id` (cloud-init runs its per-instance
/// modules, host keys and passwords among them, once per new id) and the hostname.
fn nocloud_meta_data(s: &BootSecrets) -> String {
    let mut md = format!(
        "instance-id: {}\nlocal-hostname: {}\n",
        s.instance_id, s.hostname
    );
    if let Some(key) = &s.ssh_key {
        md.push_str(&format!("public-keys:\n  - \"{key}\"\n"));
    }
    md
}

/// `#cloud-config` user-data giving the image's default user (whatever its name) this
/// boot's password: the top-level `password:` key, which every cloud-init version applies
/// to the default user (`chpasswd: users:` needs 22.3+ and the user's name), not expired,
/// with sshd's password authentication switched on.
fn cloud_config_user_data(s: &BootSecrets) -> String {
    format!(
        "#cloud-config\n# imgtest: this boot's password for the default user\npassword: \"{}\"\nchpasswd:\n  expire: false\nssh_pwauth: true\n",
        s.password
    )
}

/// A request line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The connection ended (or timed out) before a complete request.
    #[error("the connection ended before the request did")]
    Incomplete,
    /// A line was longer than the server reads.
    #[error("a request line longer than {MAX_LINE} bytes")]
    LineTooLong,
    /// More header lines than the server reads.
    #[error("more than {MAX_HEADERS} header lines")]
    TooManyHeaders,
    /// The request line is not `METHOD PATH VERSION`.
    #[error("not an HTTP request line")]
    NotHttp,
}

/// Reads one HTTP request from `reader`: the request line's method and path, its headers
/// skipped up to the blank line. Bounded: at most [`MAX_LINE`] bytes a line and
/// [`MAX_HEADERS`] header lines, whatever the guest sends.
pub fn parse_request(mut reader: impl BufRead) -> Result<(String, String), RequestError> {
    let request_line = read_line(&mut reader)?;
    for _ in 0..MAX_HEADERS {
        if read_line(&mut reader)?.trim().is_empty() {
            let mut parts = request_line.split_whitespace();
            return match (parts.next(), parts.next(), parts.next()) {
                (Some(method), Some(path), Some(v)) if v.starts_with("HTTP/") => {
                    Ok((method.to_string(), path.to_string()))
                }
                _ => Err(RequestError::NotHttp),
            };
        }
    }
    Err(RequestError::TooManyHeaders)
}

/// One line of at most [`MAX_LINE`] bytes, ended by `\n`.
fn read_line(reader: &mut impl BufRead) -> Result<String, RequestError> {
    let mut line = Vec::new();
    let n = reader
        .take(MAX_LINE + 1)
        .read_until(b'\n', &mut line)
        .map_err(|_| RequestError::Incomplete)?;
    match line.last() {
        Some(b'\n') => Ok(String::from_utf8_lossy(&line).into_owned()),
        _ if n as u64 > MAX_LINE => Err(RequestError::LineTooLong),
        _ => Err(RequestError::Incomplete),
    }
}

/// A connection read with one deadline for everything read from it: each read may wait
/// only what is left, so a request trickled a byte at a time still ends at the deadline.
struct Deadlined {
    stream: UnixStream,
    until: Instant,
}

impl Read for Deadlined {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

/// Serves one connection on boot `boot`'s socket: only from this server's own user.
fn serve(stream: UnixStream, boot: usize, secrets: &BootSecrets, inner: &Inner) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mine = rustix::net::sockopt::socket_peercred(&stream)
        .is_ok_and(|c| c.uid == rustix::process::getuid());
    let request = Deadlined {
        stream,
        until: Instant::now() + REQUEST_DEADLINE,
    };
    let Ok((method, path)) = parse_request(BufReader::new(request)) else {
        let _ = out.shutdown(Shutdown::Both);
        return;
    };
    if inner.stop.load(Ordering::SeqCst) {
        return;
    }
    let (status, body) = match mine {
        true => response(inner.fault, &method, &path, secrets),
        false => (Some(403), "not yours\n".to_string()),
    };
    let mut log = inner.log.lock().unwrap_or_else(|e| e.into_inner());
    if log.len() < MAX_LOGGED {
        log.push(RequestRecord {
            at_ms: inner.start.elapsed().as_millis() as u64,
            boot: mine.then_some(boot),
            method: excerpt(&method, None),
            path: excerpt(&path, None),
            status,
        });
    }
    drop(log);
    send(&mut out, inner, status, &body);
    let _ = out.shutdown(Shutdown::Both);
}

/// The status (None: no answer at all) and body for a `method` request of `path` under
/// `fault`.
fn response(
    fault: Fault,
    method: &str,
    path: &str,
    secrets: &BootSecrets,
) -> (Option<u16>, String) {
    match fault {
        Fault::Drop | Fault::NeverAnswer => (None, String::new()),
        Fault::NotFound => (Some(404), "not found\n".to_string()),
        Fault::ServerError => (Some(500), "internal error\n".to_string()),
        _ => match (method, answer(path, secrets)) {
            ("GET", Some(b)) => (Some(200), b),
            _ => (Some(404), "not found\n".to_string()),
        },
    }
}

/// Sends the answer as the fault wants it: after its delay, or never.
fn send(out: &mut UnixStream, inner: &Inner, status: Option<u16>, body: &str) {
    // Held until the delay is over or the server stops.
    let hold = |d: Duration| {
        let until = Instant::now().checked_add(d).unwrap_or_else(Instant::now);
        let mut stopped = || inner.stop.load(Ordering::SeqCst).then(String::new);
        wait::until(
            until,
            Duration::from_millis(50),
            &mut stopped,
            |_| None::<()>,
        );
    };
    match (inner.fault, status) {
        // Never is as long as a run may last.
        (Fault::NeverAnswer, _) => hold(NEVER),
        (_, None) => {}
        (fault, Some(code)) => {
            if let Fault::Delay(d) = fault {
                hold(d);
            }
            let reason = match code {
                200 => "OK",
                403 => "Forbidden",
                404 => "Not Found",
                _ => "Internal Server Error",
            };
            let _ = write!(
                out,
                "HTTP/1.0 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    }
}

/// The relay QEMU runs per guest connection: connect to the boot's `socket`, then copy
/// `input` to the server and the server's answer to `output` until the server closes the
/// connection.
pub fn relay(
    socket: &Path,
    mut input: impl Read + Send + 'static,
    mut output: impl Write,
) -> std::io::Result<()> {
    let mut server = UnixStream::connect(socket)?;
    let mut up = server.try_clone()?;
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut input, &mut up);
        let _ = up.shutdown(Shutdown::Write);
    });
    std::io::copy(&mut server, &mut output)?;
    output.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_keys_are_well_formed_and_fresh() {
        let a = random_public_key("imgtest-boot-0").unwrap();
        let b = random_public_key("imgtest-boot-0").unwrap();
        assert_ne!(a, b);
        let words: Vec<&str> = a.split(' ').collect();
        assert_eq!(words[0], "ssh-ed25519");
        assert!(words[1].starts_with("AAAAC3NzaC1lZDI1NTE5AAAAI"), "{a}");
        assert_eq!(words[1].len(), 68);
        assert_eq!(words[2], "imgtest-boot-0");
    }

    fn secrets() -> BootSecrets {
        BootSecrets {
            password: "pw-zero".into(),
            instance_id: "i-0".into(),
            hostname: "h0".into(),
            ssh_key: None,
        }
    }

    fn get(socket: &Path, path: &str) -> String {
        let mut out = Vec::new();
        let req = format!("GET {path} HTTP/1.0\r\nHost: 169.254.169.254\r\n\r\n");
        relay(socket, std::io::Cursor::new(req.into_bytes()), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// A server with `fault` in a temp dir, with boot 0 registered.
    fn server(fault: Fault) -> (tempfile::TempDir, MetadataServer, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let server = MetadataServer::start(fault, dir.path(), 8).unwrap();
        let socket = server.register(0, secrets()).unwrap();
        (dir, server, socket)
    }

    #[test]
    fn a_boot_holding_its_cap_of_connections_is_refused_more_at_once_and_others_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let server = MetadataServer::start(Fault::None, dir.path(), 2).unwrap();
        let hog = server.register(0, secrets()).unwrap();
        let other = server.register(1, secrets()).unwrap();
        // Two held open (a request never finished), then more: each closed unanswered.
        let held: Vec<UnixStream> = (0..2)
            .map(|_| {
                let mut c = UnixStream::connect(&hog).unwrap();
                c.write_all(b"GET /").unwrap();
                c
            })
            .collect();
        let t = Instant::now();
        for _ in 0..3 {
            let mut c = UnixStream::connect(&hog).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut answer = Vec::new();
            c.read_to_end(&mut answer).unwrap();
            assert!(answer.is_empty());
        }
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert_eq!((server.refused(0), server.refused(1)), (3, 0));
        // Another boot is answered meanwhile; once one is let go, the hog is answered too.
        assert!(get(&other, "/latest/meta-data/instance-id").ends_with("i-0"));
        drop(held);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut out = Vec::new();
            let req = b"GET /latest/meta-data/instance-id HTTP/1.0\r\n\r\n".to_vec();
            let _ = relay(&hog, std::io::Cursor::new(req), &mut out);
            if out.ends_with(b"i-0") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the hog's slots were never freed"
            );
        }
    }

    #[test]
    fn answers_paths() {
        let mut s = secrets();
        assert_eq!(
            answer("/2009-04-04/meta-data/initial-password", &s).as_deref(),
            Some("pw-zero")
        );
        assert_eq!(
            answer("/latest/meta-data/instance-id", &s).as_deref(),
            Some("i-0")
        );
        assert_eq!(
            answer("/latest/meta-data/local-hostname", &s).as_deref(),
            Some("h0")
        );
        assert_eq!(
            answer("/latest/meta-data/public-keys/0/openssh-key", &s),
            None
        );
        assert_eq!(answer("/other", &s), None);
        s.ssh_key = Some("ssh-ed25519 AAAA x".into());
        assert_eq!(
            answer("/2009-04-04/meta-data/public-keys/", &s).as_deref(),
            Some("0=imgtest")
        );
        assert!(
            answer("/2009-04-04/meta-data/", &s)
                .unwrap()
                .contains("public-keys/")
        );
    }

    #[test]
    fn answers_a_nocloud_seed_and_ec2_user_data() {
        let mut s = secrets();
        assert_eq!(
            answer("/meta-data", &s).as_deref(),
            Some("instance-id: i-0\nlocal-hostname: h0\n")
        );
        let ud = answer("/user-data", &s).unwrap();
        assert!(ud.starts_with("#cloud-config\n"), "{ud}");
        for line in [
            "password: \"pw-zero\"",
            "chpasswd:",
            "  expire: false",
            "ssh_pwauth: true",
        ] {
            assert!(ud.lines().any(|l| l == line), "{line}: {ud}");
        }
        assert_eq!(answer("/latest/user-data", &s), Some(ud.clone()));
        assert_eq!(answer("/2009-04-04/user-data", &s), Some(ud));
        assert_eq!(
            answer("/vendor-data", &s).as_deref(),
            Some("#cloud-config\n{}\n")
        );
        assert_eq!(answer("/network-config", &s), None);
        s.ssh_key = Some("ssh-ed25519 AAAA x".into());
        assert!(
            answer("/meta-data", &s)
                .unwrap()
                .ends_with("public-keys:\n  - \"ssh-ed25519 AAAA x\"\n")
        );
        assert!(delivers_password("/user-data") && delivers_password("/latest/user-data"));
        assert!(delivers_password("/2009-04-04/meta-data/initial-password"));
        assert!(!delivers_password("/meta-data") && !delivers_password("/vendor-data"));
    }

    #[test]
    fn serves_each_boot_its_own_secrets_and_logs_without_bodies() {
        let (_dir, server, s0) = server(Fault::None);
        let mut one = secrets();
        one.password = "pw-one".into();
        let s1 = server.register(1, one).unwrap();
        let r0 = get(&s0, "/2009-04-04/meta-data/initial-password");
        let r1 = get(&s1, "/2009-04-04/meta-data/initial-password");
        assert!(get(&s0, "/user-data").contains("\"pw-zero\""));
        assert!(
            r0.starts_with("HTTP/1.0 200 OK") && r0.ends_with("\r\n\r\npw-zero"),
            "{r0}"
        );
        assert!(r1.ends_with("pw-one"), "{r1}");
        assert!(get(&s1, "/2009-04-04/meta-data/nope").starts_with("HTTP/1.0 404"));
        let log = server.requests();
        assert_eq!(log.len(), 4);
        assert_eq!((log[0].boot, log[0].status), (Some(0), Some(200)));
        assert_eq!((log[1].boot, log[3].boot), (Some(1), Some(1)));
        let json = serde_json::to_string(&log).unwrap();
        assert!(!json.contains("pw-zero") && !json.contains("pw-one"));
        drop(server);
        assert!(!s0.exists() && !s1.exists(), "sockets removed");
    }

    #[test]
    fn injects_faults() {
        for (fault, prefix) in [
            (Fault::NotFound, "HTTP/1.0 404"),
            (Fault::ServerError, "HTTP/1.0 500"),
            (Fault::Drop, ""),
        ] {
            let (_dir, _server, socket) = server(fault);
            let r = get(&socket, "/latest/meta-data/initial-password");
            assert!(
                r.starts_with(prefix) && (fault != Fault::Drop || r.is_empty()),
                "{fault}: {r}"
            );
            assert!(!r.contains("pw-zero"));
        }
        let (_dir, _server, socket) = server(Fault::Delay(Duration::from_millis(300)));
        let t = Instant::now();
        assert!(get(&socket, "/latest/meta-data/hostname").ends_with("h0"));
        assert!(t.elapsed() >= Duration::from_millis(300));
    }

    #[test]
    fn a_server_whose_sockets_are_gone_still_stops() {
        let (dir, server, _socket) = server(Fault::None);
        drop(dir);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(server);
            let _ = tx.send(());
        });
        assert!(
            rx.recv_timeout(Duration::from_secs(10)).is_ok(),
            "dropping the server hung"
        );
    }

    #[test]
    fn never_answer_holds_until_the_server_stops() {
        let (_dir, server, socket) = server(Fault::NeverAnswer);
        let mut conn = UnixStream::connect(&socket).unwrap();
        conn.write_all(b"GET /latest/meta-data/hostname HTTP/1.0\r\n\r\n")
            .unwrap();
        conn.set_read_timeout(Some(Duration::from_millis(400)))
            .unwrap();
        let mut buf = [0u8; 16];
        assert!(conn.read(&mut buf).is_err(), "answered despite the fault");
        assert_eq!(server.requests()[0].status, None);
        drop(server);
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(conn.read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn requests_are_read_with_bounds() {
        let parse = |b: &[u8]| parse_request(std::io::Cursor::new(b.to_vec()));
        assert_eq!(
            parse(b"GET /a HTTP/1.0\r\nHost: x\r\n\r\n"),
            Ok(("GET".into(), "/a".into()))
        );
        assert_eq!(parse(b"GET /a HTTP/1.0\r\n"), Err(RequestError::Incomplete));
        assert_eq!(parse(b"hello\n\n"), Err(RequestError::NotHttp));
        let long = [b"GET /".as_slice(), &[b'a'; 9000], b" HTTP/1.0\n\n"].concat();
        assert_eq!(parse(&long), Err(RequestError::LineTooLong));
        let headers = [b"GET / HTTP/1.0\n".as_slice(), &b"X: y\n".repeat(200)].concat();
        assert_eq!(parse(&headers), Err(RequestError::TooManyHeaders));
    }

    proptest::proptest! {
        #![proptest_config(crate::fuzz::config())]

        /// Whatever a guest sends: a request, or a clear error; never a panic, never a wait
        /// past the bytes it sent.
        #[test]
        fn any_bytes_are_a_request_or_a_clear_error(
            sent in proptest::prop_oneof![
                crate::fuzz::bytes(2_000),
                crate::fuzz::mutated(
                    b"GET /latest/meta-data/initial-password HTTP/1.0\r\nHost: 169.254.169.254\r\n\r\n"
                        .to_vec()
                ),
            ]
        ) {
            let parsed = crate::fuzz::within(move || parse_request(std::io::Cursor::new(sent)));
            match parsed {
                Ok((method, path)) => {
                    proptest::prop_assert!(!method.is_empty() && !path.is_empty());
                    let _ = response(Fault::None, &method, &path, &secrets());
                }
                Err(e) => proptest::prop_assert!(!e.to_string().is_empty()),
            }
        }
    }

    #[test]
    fn parses_faults_and_relay_command_quotes() {
        assert_eq!(
            "delay=2s".parse::<Fault>().unwrap(),
            Fault::Delay(Duration::from_secs(2))
        );
        assert_eq!("never".parse::<Fault>().unwrap().to_string(), "never");
        assert!("sometimes".parse::<Fault>().is_err());
        let (_dir, server, socket) = server(Fault::None);
        let cmd = server.relay_command(Path::new("/o'k/imgtest"), &socket);
        assert_eq!(
            cmd,
            format!("'/o'\\''k/imgtest' __relay '{}'", socket.display())
        );
        let a = BootSecrets::generate(0).unwrap();
        let b = BootSecrets::generate(1).unwrap();
        assert_ne!(a.password, b.password);
        assert_eq!(a.password.len(), 20);
        assert!(!format!("{a:?}").contains(&a.password));
    }
}
