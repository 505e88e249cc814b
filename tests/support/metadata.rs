//! A stand-in for the platform's metadata service on 127.0.0.1 for the guest-side tests:
//! fixed answers by path under `/2009-04-04/meta-data/`, 404 otherwise, every request path
//! recorded. Guests in QEMU reach it through `guestfwd=...-cmd:busybox nc 127.0.0.1 PORT`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

pub const PASSWORD: &str = "Fresh-Pw-7f3a9c";
pub const PUBKEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx9 user@laptop";

/// A metadata service on 127.0.0.1: fixed answers by path, every request path recorded.
pub struct Metadata {
    pub port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Metadata {
    pub fn start(routes: &[(&str, u16, &str)]) -> Metadata {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let routes: HashMap<String, (u16, String)> = routes
            .iter()
            .map(|(p, s, b)| (format!("/2009-04-04/meta-data/{p}"), (*s, b.to_string())))
            .collect();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap_or(0);
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                log.lock().unwrap().push(path.clone());
                let (status, body) = routes
                    .get(&path)
                    .cloned()
                    .unwrap_or((404, "not found\n".into()));
                let reason = if status == 200 { "OK" } else { "Error" };
                let _ = write!(
                    stream,
                    "HTTP/1.0 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Metadata { port, requests }
    }

    pub fn standard() -> Metadata {
        Metadata::start(&[
            ("initial-password", 200, &format!("{PASSWORD}\n")),
            ("hostname", 200, "web-01.example\n"),
            ("public-keys/0/openssh-key", 200, &format!("{PUBKEY}\n")),
        ])
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}
