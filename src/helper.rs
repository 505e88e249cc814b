//! Running the helper programs the tools drive (`qemu-img`, `debugfs`, `grub-mkimage`,
//! `dpkg-deb`, ...): [`run`] runs a command to completion, captures its output and turns
//! every way it can go wrong into a [`HelperError`] naming the program (and, when it is not
//! installed, the Debian package that has it); [`output`] does the same but leaves the
//! exit status to the caller; [`run_lines`] is [`run`] handing over each line of standard
//! output as it comes, for helpers that report progress there. A helper dies with the thread that started it
//! ([`die_with_parent`], also for SIGKILL) and is killed when the process is asked to stop
//! ([`crate::interrupt`]).
//!
//! `std::process::Command` is enough here: every helper is one program with arguments,
//! never a pipeline, so a process-composition crate would add nothing but a dependency.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;

/// Why a helper program did not do its job.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// The program is not installed.
    #[error("{tool} not found: install the Debian package {package}")]
    Missing {
        /// The program.
        tool: String,
        /// The Debian package that provides it.
        package: String,
    },
    /// The program exists but could not be started.
    #[error("cannot run {tool}: {source}")]
    Spawn {
        /// The program.
        tool: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The process was asked to stop while the program ran; the program was killed.
    #[error("interrupted while {tool} ran")]
    Interrupted {
        /// The program.
        tool: String,
    },
    /// The program ran and failed.
    #[error("{tool} failed: {message}")]
    Failed {
        /// The program.
        tool: String,
        /// The last line of its standard error and its exit status.
        message: String,
    },
}

/// What a successful helper printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Standard output.
    pub stdout: String,
    /// Standard error (some helpers report warnings there and still succeed).
    pub stderr: String,
}

/// Runs `cmd` to completion. A program that is not installed is [`HelperError::Missing`]
/// naming `package`; a non-zero exit is [`HelperError::Failed`] with the last non-empty line
/// of its standard error.
pub fn run(cmd: &mut Command, package: &str) -> Result<Output, HelperError> {
    run_lines(cmd, package, &mut |_| {})
}

/// Like [`run`], and hands each line of standard output to `on_line` as it comes (for a
/// helper that reports its progress there, such as `apt-get -o APT::Status-Fd=1`).
pub fn run_lines(
    cmd: &mut Command,
    package: &str,
    on_line: &mut dyn FnMut(&str),
) -> Result<Output, HelperError> {
    let (status, out) = output_lines(cmd, package, on_line)?;
    if !status.success() {
        let last = last_error_line(&out.stderr);
        return Err(HelperError::Failed {
            tool: cmd.get_program().to_string_lossy().into_owned(),
            message: format!("{last} ({status})"),
        });
    }
    Ok(out)
}

/// Runs `cmd` to completion (its standard input empty) and returns its exit status and
/// what it printed, whatever the status. Errors: the program is missing or cannot start
/// ([`HelperError::Missing`], [`HelperError::Spawn`]), or the process was asked to stop
/// meanwhile ([`HelperError::Interrupted`], the program killed).
pub fn output(cmd: &mut Command, package: &str) -> Result<(ExitStatus, Output), HelperError> {
    output_lines(cmd, package, &mut |_| {})
}

/// [`output`], handing each line of standard output (without its newline) to `on_line`
/// on this thread as it comes.
fn output_lines(
    cmd: &mut Command,
    package: &str,
    on_line: &mut dyn FnMut(&str),
) -> Result<(ExitStatus, Output), HelperError> {
    use std::sync::mpsc::RecvTimeoutError;
    let tool = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_parent(cmd);
    let mut child = cmd.spawn().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            HelperError::Missing {
                tool: tool.clone(),
                package: package.into(),
            }
        } else {
            HelperError::Spawn {
                tool: tool.clone(),
                source,
            }
        }
    })?;
    let lines = read_lines(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let mut stdout = Vec::new();
    let interrupted = loop {
        match lines.recv_timeout(POLL) {
            Ok(chunk) => {
                on_line(String::from_utf8_lossy(&chunk).trim_end_matches(['\n', '\r']));
                stdout.extend(chunk);
            }
            Err(RecvTimeoutError::Timeout) if crate::interrupt::requested() => break true,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break false,
        }
    };
    let status = if interrupted {
        let _ = child.kill();
        let _ = child.wait();
        None
    } else {
        wait_unless_interrupted(&mut child)
    };
    let out = Output {
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: stderr.join().unwrap_or_default(),
    };
    match status {
        Some(status) => Ok((status, out)),
        None => Err(HelperError::Interrupted { tool }),
    }
}

/// How often a wait for a helper looks at whether the process was asked to stop.
const POLL: Duration = Duration::from_millis(100);

/// Reads a child's standard output on a thread of its own and sends it line by line
/// (each with its newline, the last one as it ends), until the pipe closes.
fn read_lines(pipe: Option<impl Read + Send + 'static>) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Some(pipe) = pipe else { return };
        let mut r = BufReader::new(pipe);
        loop {
            let mut chunk = Vec::new();
            match r.read_until(b'\n', &mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(_) if tx.send(chunk).is_err() => return,
                Ok(_) => {}
            }
        }
    });
    rx
}

/// Reads a child's pipe to its end on a thread of its own, so neither pipe can fill up
/// while the other is read.
/// What a failed helper said last on `stderr` (its last non-blank line), which is where
/// programs put the reason they stopped.
pub fn last_error_line(stderr: &str) -> &str {
    stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no error output")
        .trim()
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The child's exit status, or None after killing it because the process was asked to
/// stop ([`crate::interrupt::requested`]).
fn wait_unless_interrupted(child: &mut Child) -> Option<ExitStatus> {
    loop {
        match child.wait_timeout(POLL) {
            Ok(Some(status)) => return Some(status),
            Ok(None) if !crate::interrupt::requested() => {}
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// `program` as `exec` would find it: a path as it is (if it is a file), a name in
/// `PATH`.
pub fn find(program: &str) -> Option<std::path::PathBuf> {
    if program.contains('/') {
        return Some(std::path::PathBuf::from(program)).filter(|p| p.is_file());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Makes the program `cmd` starts die (SIGKILL) when the thread that starts it ends, also
/// when this process is killed with SIGKILL and can clean up nothing: Linux's
/// `PR_SET_PDEATHSIG`, set in the child before it runs the program, and a check that the
/// parent did not already die between the fork and that call.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the hook calls only prctl and getppid, both async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_captured() {
        let o = run(
            Command::new("sh").args(["-c", "echo out; echo err >&2"]),
            "dash",
        )
        .unwrap();
        assert_eq!((o.stdout.as_str(), o.stderr.as_str()), ("out\n", "err\n"));
    }

    #[test]
    fn a_missing_program_names_its_package() {
        let e = run(&mut Command::new("/nonexistent/qemu-img"), "qemu-utils").unwrap_err();
        assert!(matches!(e, HelperError::Missing { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "/nonexistent/qemu-img not found: install the Debian package qemu-utils"
        );
    }

    #[test]
    fn a_helper_dies_with_the_thread_that_started_it() {
        use std::os::unix::process::ExitStatusExt;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut cmd = Command::new("sleep");
            cmd.arg("30");
            die_with_parent(&mut cmd);
            tx.send(cmd.spawn().unwrap()).unwrap();
            // The thread ends without waiting: the kernel kills the helper.
        })
        .join()
        .unwrap();
        let mut child = rx.recv().unwrap();
        let status = child.wait_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(
            status.and_then(|s| s.signal()),
            Some(libc::SIGKILL),
            "sleep outlived the thread that started it"
        );
    }

    #[test]
    fn a_failure_quotes_the_last_error_line_and_the_status() {
        let e = run(
            Command::new("sh").args([
                "-c",
                "echo first >&2; echo 'the reason' >&2; echo >&2; exit 3",
            ]),
            "dash",
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "sh failed: the reason (exit status: 3)");
        let (status, out) = output(
            Command::new("sh").args(["-c", "echo partial; exit 3"]),
            "dash",
        )
        .unwrap();
        assert_eq!((status.code(), out.stdout.as_str()), (Some(3), "partial\n"));
    }

    #[test]
    fn lines_arrive_one_by_one_and_failures_read_alike() {
        let mut seen = Vec::new();
        let o = run_lines(
            Command::new("sh").args(["-c", "echo one; echo err >&2; printf 'two\\nthree'"]),
            "dash",
            &mut |l| seen.push(l.to_string()),
        )
        .unwrap();
        assert_eq!(seen, ["one", "two", "three"]);
        assert_eq!(o.stderr, "err\n");
        let e = run_lines(
            Command::new("sh").args(["-c", "echo out; echo 'the reason' >&2; exit 3"]),
            "dash",
            &mut |_| {},
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "sh failed: the reason (exit status: 3)");
        let e = run_lines(
            &mut Command::new("/nonexistent/apt-get"),
            "apt",
            &mut |_| {},
        );
        assert!(matches!(e, Err(HelperError::Missing { .. })), "{e:?}");
    }
}
