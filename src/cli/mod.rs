//! The command lines of the three tools: clap's types, turning flags into the library's
//! plans, drawing progress and reports on the terminal, adding the flag hints to the
//! library's errors, and mapping results to exit codes ([`crate::exit`]). This is the only
//! module that knows a flag's name or prints; `src/bin/` holds one-line `main`s.

pub mod fsmaker;
pub mod imgtest;
pub mod sparsecopy;
