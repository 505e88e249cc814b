//! The command lines of the three tools: clap's types, turning flags into the library's
//! plans, drawing progress and reports on the terminal, adding the flag hints to the
//! library's errors, and mapping results to exit codes ([`crate::exit`]). This is the only
//! module that knows a flag's name or prints; `src/bin/` holds one-line `main`s, each
//! run through [`guarded`]: a panic anywhere is one line and exit 2, after cleanup.

mod docs;
pub mod fsmaker;
pub mod imgtest;
mod live;
pub mod progress;
pub mod sparsecopy;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::exit;

/// Whether any thread panicked.
static PANICKED: AtomicBool = AtomicBool::new(false);

/// Runs a tool's `main` body and returns its exit code. A panic, in this thread or any
/// other, is reported as one line (`TOOL: internal error: MESSAGE at FILE:LINE`) and
/// makes the exit code 2: the panicking thread unwinds (dropping its temp dirs and
/// VMs), and every QEMU process group still registered is killed.
pub fn guarded(tool: &'static str, body: impl FnOnce() -> i32) -> ExitCode {
    std::panic::set_hook(Box::new(move |info| {
        PANICKED.store(true, Ordering::SeqCst);
        eprintln!("{tool}: {}", panic_line(info));
    }));
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(exit::ERROR);
    if PANICKED.load(Ordering::SeqCst) {
        crate::vm::process::kill_all();
        return exit::code(code.max(exit::ERROR));
    }
    exit::code(code)
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
        let code = super::guarded("t", || {
            std::thread::spawn(|| panic!("in a thread\nwith two lines"))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            0
        });
        assert_eq!(format!("{code:?}"), format!("{:?}", crate::exit::code(2)));
        let _ = std::panic::take_hook();
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
