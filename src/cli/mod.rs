//! The command lines of the three tools: clap's types, turning flags into the library's
//! plans, drawing progress and reports on the terminal, adding the flag hints to the
//! library's errors, and mapping results to exit codes ([`crate::exit`]). This is the only
//! module that knows a flag's name or prints; `src/bin/` holds one-line `main`s, each
//! run through [`guarded`]: a panic anywhere is one line and exit 2, after cleanup.
//!
//! A command returns what it concluded, `Result<`[`Outcome`]`, `[`CliError`]`>`; one
//! function, [`exit_code`], prints the error and picks the exit code.

mod docs;
pub mod fsmaker;
pub mod imgtest;
mod live;
pub mod progress;
pub mod sparsecopy;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::exit;

/// The verdict of a command that ran to its end, best first: a command over several
/// images keeps the [`worst`](Outcome::worst).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Done, or every image passed (exit 0).
    Success,
    /// An image failed a check (exit 1).
    CheckFailed,
    /// The tool could not judge an image: a rule no check could judge, an image it could
    /// not test, an interrupted run (exit 2; what it could not judge was said as it ran).
    Unjudged,
}

impl Outcome {
    /// The worse of two verdicts.
    pub fn worst(self, other: Outcome) -> Outcome {
        self.max(other)
    }
}

/// Why a command could not do or judge what it was asked (exit 2): usage, bad input, a
/// missing dependency, an unwritable report.
#[derive(Debug, PartialEq, Eq)]
pub enum CliError {
    /// The lines to print, each after the tool's prefix.
    Lines(Vec<String>),
    /// Already said where it happened (or, for the internal subcommands, said by the exit
    /// code alone).
    Said,
}

impl From<String> for CliError {
    fn from(line: String) -> CliError {
        CliError::Lines(vec![line])
    }
}

impl From<&str> for CliError {
    fn from(line: &str) -> CliError {
        CliError::from(line.to_string())
    }
}

/// Ok if every one of `results` is, else every failure's line, in order.
pub fn all_ok(results: impl IntoIterator<Item = Result<(), String>>) -> Result<(), CliError> {
    let lines: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if lines.is_empty() {
        Ok(())
    } else {
        Err(CliError::Lines(lines))
    }
}

/// The one mapping from what a command returned to its exit code ([`crate::exit`]): an
/// error's lines go to stderr, each as `PREFIX: LINE`, and make it 2.
pub fn exit_code(prefix: &str, result: Result<Outcome, CliError>) -> i32 {
    match result {
        Ok(Outcome::Success) => exit::SUCCESS,
        Ok(Outcome::CheckFailed) => exit::CHECK_FAILED,
        Ok(Outcome::Unjudged) => exit::ERROR,
        Err(e) => {
            if let CliError::Lines(lines) = e {
                for line in lines {
                    eprintln!("{prefix}: {line}");
                }
            }
            exit::ERROR
        }
    }
}

/// Whether any thread panicked.
static PANICKED: AtomicBool = AtomicBool::new(false);

/// Runs a tool's `main` body and returns its exit code ([`exit_code`], errors printed
/// after `prefix`). A panic, in this thread or any other, is reported as one line
/// (`TOOL: internal error: MESSAGE at FILE:LINE`) and makes the exit code 2: the
/// panicking thread unwinds (dropping its temp dirs and VMs), and every QEMU process
/// group still registered is killed.
pub fn guarded(
    tool: &'static str,
    prefix: &str,
    body: impl FnOnce() -> Result<Outcome, CliError>,
) -> ExitCode {
    std::panic::set_hook(Box::new(move |info| {
        PANICKED.store(true, Ordering::SeqCst);
        eprintln!("{tool}: {}", panic_line(info));
    }));
    let mut result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(Err(CliError::Said));
    if PANICKED.load(Ordering::SeqCst) {
        crate::vm::process::kill_all();
        result = result.and(Err(CliError::Said));
    }
    exit::code(exit_code(prefix, result))
}

/// A panic as one line: its message and where it happened.
fn panic_line(info: &std::panic::PanicHookInfo) -> String {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    let at = info
        .location()
        .map(|l| format!(" at {}:{}", l.file(), l.line()))
        .unwrap_or_default();
    format!(
        "internal error: {}{at}",
        message.split_whitespace().collect::<Vec<_>>().join(" ")
    )
}

/// An error and its causes on one line, each cause said once: a cause whose text the
/// line already holds (a library error that quotes its source) is not repeated.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.contains(&text) {
            line = format!("{line}: {text}");
        }
    }
    line
}

/// `SOURCE_DATE_EPOCH`, the timestamp reproducible builds give every file they write.
pub fn source_date_epoch() -> Result<Option<i64>, String> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("SOURCE_DATE_EPOCH={v:?} is not a number")),
        _ => Ok(None),
    }
}

/// A library error's message with the flag hint a tool adds to it (`... already exists
/// (use --force to replace it)`). The library says what is wrong; only the tool knows its
/// flags.
pub fn with_hint(message: &str, hint: Option<String>) -> String {
    match hint {
        Some(h) => format!("{message} ({h})"),
        None => message.to_string(),
    }
}

/// Makes enums declared with [`named_enum!`](crate::named_enum) clap value enums, so a
/// flag's possible values, their `--help` lines and the parsing come from the enum's one
/// definition (its names and doc comments), like its config and report spellings:
///
/// ```ignore
/// crate::cli::value_enum!(Format, DiskBus);
///
/// #[derive(clap::Args)]
/// struct Flags {
///     /// Output format.
///     #[arg(long, value_enum, default_value = "raw")]
///     format: Format,
/// }
/// ```
///
/// Each type gets `clap::ValueEnum` with `value_variants` = [`Named::ALL`] and one
/// possible value per variant, named [`Named::name`] and helped by [`Named::help`].
///
/// [`Named::ALL`]: crate::named::Named::ALL
/// [`Named::name`]: crate::named::Named::name
/// [`Named::help`]: crate::named::Named::help
macro_rules! value_enum {
    ($($t:ty),+ $(,)?) => {$(
        impl ::clap::ValueEnum for $t {
            fn value_variants<'a>() -> &'a [Self] {
                <$t as $crate::named::Named>::ALL
            }

            fn to_possible_value(&self) -> Option<::clap::builder::PossibleValue> {
                let v = *self;
                Some(
                    ::clap::builder::PossibleValue::new($crate::named::Named::name(v))
                        .help($crate::named::Named::help(v)),
                )
            }
        }
    )+};
}
pub(crate) use value_enum;

#[cfg(test)]
mod tests {
    use clap::{Parser, ValueEnum};

    crate::named_enum! {
        /// A test enum.
        enum Colour("colour") {
            /// The colour of the sky.
            Blue = "blue",
            /// Of grass.
            Green = "light-green",
        }
    }
    super::value_enum!(Colour);

    #[derive(Parser)]
    struct Flags {
        #[arg(long, value_enum, default_value = "blue")]
        colour: Colour,
    }

    #[test]
    fn an_error_line_says_each_cause_once() {
        let io = std::io::Error::from_raw_os_error(libc::EISDIR);
        let e = anyhow::Error::new(crate::fsmaker::BuildError::io("cannot create out", io));
        assert_eq!(
            super::error_line(&e),
            "cannot create out: Is a directory (os error 21)"
        );
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(super::error_line(&e), "outer: inner");
    }

    #[test]
    fn a_panic_anywhere_is_one_line_and_exit_2() {
        // The hook is the process's: this test only looks at the exit code and the line.
        let code = super::guarded("t", "t", || {
            std::thread::spawn(|| panic!("in a thread\nwith two lines"))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            Ok(super::Outcome::Success)
        });
        assert_eq!(format!("{code:?}"), format!("{:?}", crate::exit::code(2)));
        let _ = std::panic::take_hook();
    }

    #[test]
    fn one_mapping_gives_each_result_its_exit_code() {
        use super::{CliError, Outcome, all_ok, exit_code};
        assert_eq!(exit_code("t", Ok(Outcome::Success)), 0);
        assert_eq!(exit_code("t", Ok(Outcome::CheckFailed)), 1);
        assert_eq!(exit_code("t", Ok(Outcome::Unjudged)), 2);
        assert_eq!(exit_code("t", Err(CliError::from("no"))), 2);
        assert_eq!(exit_code("t", Err(CliError::Said)), 2);
        let worst = [Outcome::CheckFailed, Outcome::Success]
            .into_iter()
            .fold(Outcome::Success, Outcome::worst);
        assert_eq!(worst, Outcome::CheckFailed);
        assert_eq!(worst.worst(Outcome::Unjudged), Outcome::Unjudged);
        assert_eq!(all_ok([Ok(()), Ok(())]), Ok(()));
        assert_eq!(
            all_ok([Err("a".into()), Ok(()), Err("b".into())]),
            Err(CliError::Lines(vec!["a".into(), "b".into()]))
        );
    }

    #[test]
    fn value_enum_takes_names_and_help_from_the_definition() {
        assert_eq!(Colour::value_variants(), [Colour::Blue, Colour::Green]);
        let v = Colour::Green.to_possible_value().unwrap();
        assert_eq!(v.get_name(), "light-green");
        assert_eq!(v.get_help().unwrap().to_string(), "Of grass.");
        let parse = |args: &[&str]| Flags::try_parse_from(args).map(|f| f.colour);
        assert_eq!(parse(&["t"]).unwrap(), Colour::Blue);
        assert_eq!(
            parse(&["t", "--colour", "light-green"]).unwrap(),
            Colour::Green
        );
        assert!(parse(&["t", "--colour", "red"]).is_err());
    }
}
