//! The command lines of the three tools: clap's types, turning flags into the library's
//! plans, drawing progress and reports on the terminal, adding the flag hints to the
//! library's errors, and mapping results to exit codes ([`crate::exit`]). This is the only
//! module that knows a flag's name or prints; `src/bin/` holds one-line `main`s.

pub mod fsmaker;
pub mod imgtest;
pub mod progress;
pub mod sparsecopy;

/// A library error's message with the flag hint a tool adds to it (`... already exists
/// (use --force to replace it)`). The library says what is wrong; only the tool knows its
/// flags.
pub fn with_hint(message: &str, hint: Option<String>) -> String {
    match hint {
        Some(h) => format!("{message} ({h})"),
        None => message.to_string(),
    }
}
