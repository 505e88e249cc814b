//! The platform's metadata service as the guest sees it at 169.254.169.254:80.
//!
//! An in-process HTTP/1.0 server on 127.0.0.1 (ephemeral port) serves EC2-style paths
//! under `/2009-04-04/` and `/latest/` and a cloud-init NoCloud seed at the root
//! ([`answer`]). QEMU reaches it through a
//! `guestfwd ... cmd:` rule that runs `imgtest __relay ADDR TOKEN` per guest connection:
//! the relay ([`relay`]) sends one preamble line naming the boot's token, then copies
//! bytes both ways, so the server knows which boot asked and answers with that boot's
//! secrets. Every request is logged (paths and status only, never bodies, so secrets, also
//! the password inside user-data, stay out of the log) and a [`Fault`] can be injected for every request.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::encoding;
use crate::facts::Fault;

/// The first line a relay sends, followed by the boot token.
pub const PREAMBLE: &str = "IMGTEST-RELAY";

/// How long a connection may take to send its request.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// One boot's secrets, unique per boot.
#[derive(Clone, PartialEq, Eq)]
pub struct BootSecrets {
    /// Identifies the boot's relay connections.
    pub token: String,
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
            token: random_string(24)?,
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
    /// The boot that asked (None: unknown token or no preamble).
    pub boot: Option<usize>,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Status sent; None when the connection was dropped or never answered.
    pub status: Option<u16>,
}

struct Inner {
    boots: Mutex<HashMap<String, (usize, BootSecrets)>>,
    log: Mutex<Vec<RequestRecord>>,
    fault: Fault,
    stop: AtomicBool,
    start: Instant,
}

/// A running metadata server; stops (and unblocks never-answering connections) on drop.
pub struct MetadataServer {
    addr: SocketAddr,
    inner: Arc<Inner>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl MetadataServer {
    /// Binds 127.0.0.1 on an ephemeral port and starts serving with `fault`.
    pub fn start(fault: Fault) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            boots: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            fault,
            stop: AtomicBool::new(false),
            start: Instant::now(),
        });
        let i2 = inner.clone();
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if i2.stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = conn {
                    let i3 = i2.clone();
                    std::thread::spawn(move || serve(stream, &i3));
                }
            }
        });
        Ok(MetadataServer {
            addr,
            inner,
            accept: Some(accept),
        })
    }

    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Makes the server answer `secrets` to connections carrying their token.
    pub fn register(&self, boot: usize, secrets: BootSecrets) {
        let mut boots = self.inner.boots.lock().unwrap_or_else(|e| e.into_inner());
        boots.insert(secrets.token.clone(), (boot, secrets));
    }

    /// The requests so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.inner
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The shell command QEMU runs per guest connection: `'PROGRAM' __relay ADDR TOKEN`.
    pub fn relay_command(&self, program: &Path, token: &str) -> String {
        format!(
            "{} __relay {} {token}",
            shell_quote(&program.to_string_lossy()),
            self.addr
        )
    }
}

impl Drop for MetadataServer {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(a) = self.accept.take() {
            let _ = a.join();
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

/// One request as read from a connection.
struct Request {
    /// The boot whose token the relay named, with its secrets.
    boot: Option<(usize, BootSecrets)>,
    method: String,
    path: String,
}

fn serve(stream: TcpStream, inner: &Inner) {
    let _ = stream.set_read_timeout(Some(REQUEST_DEADLINE));
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let Some(req) = read_request(BufReader::new(stream), inner) else {
        return;
    };
    let (status, body) = response(inner.fault, &req);
    inner
        .log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(RequestRecord {
            at_ms: inner.start.elapsed().as_millis() as u64,
            boot: req.boot.as_ref().map(|(i, _)| *i),
            method: req.method,
            path: req.path,
            status,
        });
    send(&mut out, inner, status, &body);
    let _ = out.shutdown(Shutdown::Both);
}

/// The relay's preamble (naming the boot) and the HTTP request line; headers are skipped.
fn read_request(mut reader: BufReader<TcpStream>, inner: &Inner) -> Option<Request> {
    let mut first = String::new();
    if reader.read_line(&mut first).unwrap_or(0) == 0 || inner.stop.load(Ordering::SeqCst) {
        return None;
    }
    let (boot, request_line) = match first.strip_prefix(PREAMBLE) {
        Some(token) => {
            let boots = inner.boots.lock().unwrap_or_else(|e| e.into_inner());
            let boot = boots.get(token.trim()).map(|(i, s)| (*i, s.clone()));
            drop(boots);
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return None;
            }
            (boot, line)
        }
        None => (None, first),
    };
    // Skip headers up to the blank line.
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    Some(Request {
        boot,
        method: parts.next().unwrap_or("").to_string(),
        path: parts.next().unwrap_or("").to_string(),
    })
}

/// The status (None: no answer at all) and body for `req` under `fault`.
fn response(fault: Fault, req: &Request) -> (Option<u16>, String) {
    match (fault, &req.boot) {
        (Fault::Drop | Fault::NeverAnswer, _) => (None, String::new()),
        (Fault::NotFound, _) => (Some(404), "not found\n".to_string()),
        (Fault::ServerError, _) => (Some(500), "internal error\n".to_string()),
        (_, None) => (Some(403), "unknown boot\n".to_string()),
        (_, Some((_, secrets))) => match (req.method.as_str(), answer(&req.path, secrets)) {
            ("GET", Some(b)) => (Some(200), b),
            _ => (Some(404), "not found\n".to_string()),
        },
    }
}

/// Sends the answer as the fault wants it: after its delay, or never.
fn send(out: &mut TcpStream, inner: &Inner, status: Option<u16>, body: &str) {
    match (inner.fault, status) {
        (Fault::NeverAnswer, _) => {
            while !inner.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        (_, None) => {}
        (fault, Some(code)) => {
            if let Fault::Delay(d) = fault {
                let until = Instant::now() + d;
                while Instant::now() < until && !inner.stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
                }
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

/// The relay QEMU runs per guest connection: connect to the server at `addr`, name the
/// boot with `token`, then copy `input` to the server and the server's answer to `output`
/// until the server closes the connection.
pub fn relay(
    addr: &str,
    token: &str,
    mut input: impl Read + Send + 'static,
    mut output: impl Write,
) -> std::io::Result<()> {
    let mut server = TcpStream::connect(addr)?;
    server.write_all(format!("{PREAMBLE} {token}\n").as_bytes())?;
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
            token: "tok0".into(),
            password: "pw-zero".into(),
            instance_id: "i-0".into(),
            hostname: "h0".into(),
            ssh_key: None,
        }
    }

    fn get(server: &MetadataServer, token: &str, path: &str) -> String {
        let mut out = Vec::new();
        let req = format!("GET {path} HTTP/1.0\r\nHost: 169.254.169.254\r\n\r\n");
        relay(
            &server.addr().to_string(),
            token,
            std::io::Cursor::new(req.into_bytes()),
            &mut out,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
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
    fn serves_each_boot_its_own_secrets_over_tcp_and_logs_without_bodies() {
        let server = MetadataServer::start(Fault::None).unwrap();
        server.register(0, secrets());
        let mut s1 = secrets();
        s1.token = "tok1".into();
        s1.password = "pw-one".into();
        server.register(1, s1);
        let r0 = get(&server, "tok0", "/2009-04-04/meta-data/initial-password");
        let r1 = get(&server, "tok1", "/2009-04-04/meta-data/initial-password");
        assert!(get(&server, "tok0", "/user-data").contains("\"pw-zero\""));
        assert!(
            r0.starts_with("HTTP/1.0 200 OK") && r0.ends_with("\r\n\r\npw-zero"),
            "{r0}"
        );
        assert!(r1.ends_with("pw-one"), "{r1}");
        assert!(get(&server, "tok1", "/2009-04-04/meta-data/nope").starts_with("HTTP/1.0 404"));
        assert!(get(&server, "bogus", "/latest/meta-data/hostname").starts_with("HTTP/1.0 403"));
        let log = server.requests();
        assert_eq!(log.len(), 5);
        assert_eq!((log[0].boot, log[0].status), (Some(0), Some(200)));
        assert_eq!(log[4].boot, None);
        let json = serde_json::to_string(&log).unwrap();
        assert!(!json.contains("pw-zero") && !json.contains("pw-one"));
    }

    #[test]
    fn injects_faults() {
        for (fault, prefix) in [
            (Fault::NotFound, "HTTP/1.0 404"),
            (Fault::ServerError, "HTTP/1.0 500"),
            (Fault::Drop, ""),
        ] {
            let server = MetadataServer::start(fault).unwrap();
            server.register(0, secrets());
            let r = get(&server, "tok0", "/latest/meta-data/initial-password");
            assert!(
                r.starts_with(prefix) && (fault != Fault::Drop || r.is_empty()),
                "{fault}: {r}"
            );
            assert!(!r.contains("pw-zero"));
        }
        let server = MetadataServer::start(Fault::Delay(Duration::from_millis(300))).unwrap();
        server.register(0, secrets());
        let t = Instant::now();
        assert!(get(&server, "tok0", "/latest/meta-data/hostname").ends_with("h0"));
        assert!(t.elapsed() >= Duration::from_millis(300));
    }

    #[test]
    fn never_answer_holds_until_the_server_stops() {
        let server = MetadataServer::start(Fault::NeverAnswer).unwrap();
        server.register(0, secrets());
        let mut conn = TcpStream::connect(server.addr()).unwrap();
        conn.write_all(b"IMGTEST-RELAY tok0\nGET /latest/meta-data/hostname HTTP/1.0\r\n\r\n")
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
    fn parses_faults_and_relay_command_quotes() {
        assert_eq!(
            "delay=2s".parse::<Fault>().unwrap(),
            Fault::Delay(Duration::from_secs(2))
        );
        assert_eq!("never".parse::<Fault>().unwrap().to_string(), "never");
        assert!("sometimes".parse::<Fault>().is_err());
        let server = MetadataServer::start(Fault::None).unwrap();
        let cmd = server.relay_command(Path::new("/o'k/imgtest"), "T");
        assert_eq!(
            cmd,
            format!("'/o'\\''k/imgtest' __relay {} T", server.addr())
        );
        let a = BootSecrets::generate(0).unwrap();
        let b = BootSecrets::generate(1).unwrap();
        assert_ne!(a.password, b.password);
        assert_eq!(a.password.len(), 20);
        assert!(!format!("{a:?}").contains(&a.password));
    }
}
