//! Running the helper programs the tools drive (`qemu-img`, `debugfs`, `grub-mkimage`,
//! `dpkg-deb`, ...): [`run`] runs a command to completion, captures its output and turns
//! every way it can go wrong into a [`ToolError`] naming the program (and, when it is not
//! installed, the Debian package that has it); [`run_lines`] does the same and hands over
//! each line of standard output as it comes, for helpers that report progress there.
//!
//! `std::process::Command` is enough here: every helper is one program with arguments,
//! never a pipeline, so a process-composition crate would add nothing but a dependency.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, ExitStatus, Stdio};

/// Why a helper program did not do its job.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
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

/// Runs `cmd` to completion. A program that is not installed is [`ToolError::Missing`]
/// naming `package`; a non-zero exit is [`ToolError::Failed`] with the last non-empty line
/// of its standard error.
pub fn run(cmd: &mut Command, package: &str) -> Result<Output, ToolError> {
    let tool = program(cmd);
    let out = cmd.output().map_err(|e| spawn_error(&tool, package, e))?;
    finish(
        tool,
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Like [`run`], and hands each line of standard output to `on_line` as it comes (for a
/// helper that reports its progress there, such as `apt-get -o APT::Status-Fd=1`).
pub fn run_lines(
    cmd: &mut Command,
    package: &str,
    on_line: &mut dyn FnMut(&str),
) -> Result<Output, ToolError> {
    let tool = program(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| spawn_error(&tool, package, e))?;
    let mut err = child.stderr.take().expect("stderr is piped");
    // Standard error is drained beside standard output, so neither pipe can fill and stall
    // the program.
    let errors = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = err.read_to_end(&mut text);
        text
    });
    let mut stdout = String::new();
    let read = BufReader::new(child.stdout.take().expect("stdout is piped"));
    for line in read.split(b'\n') {
        let Ok(line) = line else { break };
        let line = String::from_utf8_lossy(&line);
        on_line(&line);
        stdout.push_str(&line);
        stdout.push('\n');
    }
    let status = child.wait().map_err(|source| ToolError::Spawn {
        tool: tool.clone(),
        source,
    })?;
    let stderr = errors.join().unwrap_or_default();
    finish(
        tool,
        status,
        stdout,
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// The program `cmd` runs, as error messages name it.
fn program(cmd: &Command) -> String {
    cmd.get_program().to_string_lossy().into_owned()
}

/// Why `tool` could not be started: not installed (named by its `package`), or else.
fn spawn_error(tool: &str, package: &str, source: std::io::Error) -> ToolError {
    if source.kind() == std::io::ErrorKind::NotFound {
        ToolError::Missing {
            tool: tool.into(),
            package: package.into(),
        }
    } else {
        ToolError::Spawn {
            tool: tool.into(),
            source,
        }
    }
}

/// The output of a finished program, or [`ToolError::Failed`] if it exited non-zero.
fn finish(
    tool: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
) -> Result<Output, ToolError> {
    if !status.success() {
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no error output")
            .trim();
        return Err(ToolError::Failed {
            tool,
            message: format!("{last} ({status})"),
        });
    }
    Ok(Output { stdout, stderr })
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
        assert!(matches!(e, ToolError::Missing { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "/nonexistent/qemu-img not found: install the Debian package qemu-utils"
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
        assert!(matches!(e, Err(ToolError::Missing { .. })), "{e:?}");
    }
}
