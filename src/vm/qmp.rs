//! A minimal QMP client: JSON lines over QEMU's unix socket, just enough to negotiate
//! capabilities, send `system_powerdown` (ACPI power button) or `quit`, and take a
//! screenshot of the VGA screen ([`Qmp::screendump`], PNG).
//! Every read has a deadline (socket timeouts), asynchronous events are skipped.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::VmError;
use crate::wait::{self, Waited};

/// A negotiated QMP connection.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to `socket` (retrying while QEMU creates it, until `deadline`), reads the
    /// greeting and negotiates capabilities.
    pub fn connect(socket: &Path, deadline: Instant) -> Result<Self, VmError> {
        let mut last = None;
        let connected =
            |_: &mut wait::Stop| UnixStream::connect(socket).map_err(|e| last = Some(e)).ok();
        let stream = match wait::until(
            deadline,
            Duration::from_millis(50),
            &mut wait::on_interrupt,
            connected,
        ) {
            Waited::Done(s) => s,
            Waited::Stopped(why) => return Err(VmError::Qmp(why)),
            Waited::TimedOut => {
                return Err(VmError::Qmp(format!(
                    "cannot connect to {}: {}",
                    socket.display(),
                    last.map_or("no attempt".into(), |e| e.to_string())
                )));
            }
        };
        let timeout = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(VmError::Qmp(format!("unexpected greeting {greeting}")));
        }
        qmp.execute("qmp_capabilities")?;
        Ok(qmp)
    }

    fn read_message(&mut self) -> Result<Value, VmError> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).map_err(io)?;
        if n == 0 {
            return Err(VmError::Qmp("QEMU closed the QMP socket".into()));
        }
        serde_json::from_str(&line).map_err(|e| VmError::Qmp(format!("bad JSON {line:?}: {e}")))
    }

    /// Executes `command` and returns its `return` value, skipping events.
    pub fn execute(&mut self, command: &str) -> Result<Value, VmError> {
        self.send(command, json!({ "execute": command }))
    }

    /// Writes the screen of the VGA display to `png` (QEMU's `screendump`, PNG format).
    pub fn screendump(&mut self, png: &Path) -> Result<(), VmError> {
        let filename = png.to_string_lossy();
        let msg = json!({
            "execute": "screendump",
            "arguments": { "filename": filename, "format": "png" },
        });
        self.send("screendump", msg).map(|_| ())
    }

    fn send(&mut self, command: &str, msg: Value) -> Result<Value, VmError> {
        writeln!(self.writer, "{msg}").map_err(io)?;
        loop {
            let v = self.read_message()?;
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                return Err(VmError::Qmp(format!("{command}: {e}")));
            }
        }
    }
}

fn io(e: std::io::Error) -> VmError {
    VmError::Qmp(e.to_string())
}
