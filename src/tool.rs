//! Running the helper programs the tools drive (`qemu-img`, `debugfs`, `grub-mkimage`,
//! `dpkg-deb`, ...): one function, [`run`], that runs a command to completion, captures
//! its output and turns every way it can go wrong into a [`ToolError`] naming the
//! program (and, when it is not installed, the Debian package that has it).
//!
//! `std::process::Command` is enough here: every helper is one program with arguments,
//! never a pipeline, so a process-composition crate would add nothing but a dependency.

use std::process::Command;

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
    let tool = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ToolError::Missing {
                tool: tool.clone(),
                package: package.into(),
            }
        } else {
            ToolError::Spawn {
                tool: tool.clone(),
                source,
            }
        }
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no error output")
            .trim();
        return Err(ToolError::Failed {
            tool,
            message: format!("{last} ({})", out.status),
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
}
