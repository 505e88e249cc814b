//! The exit codes of every binary, in one documented table.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success: the copy/build completed, or the image passed every check |
//! | 1 | the image failed a check (imgtest only) |
//! | 2 | the tool could not do or judge it: usage, bad input, missing dependency, internal error |

/// Success, or the image passed.
pub const SUCCESS: i32 = 0;
/// The image failed at least one check.
pub const CHECK_FAILED: i32 = 1;
/// The tool could not judge: usage error, bad input, missing dependency, internal error.
pub const ERROR: i32 = 2;

/// The process exit code for `code` (one of the constants above).
pub fn code(code: i32) -> std::process::ExitCode {
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX))
}

/// Let a closed standard output (`imgtest checks | head`) end the process quietly, as Unix
/// filters do, instead of panicking inside `println!`. Only for commands that write to no
/// socket: SIGPIPE's default action would also end a process writing to a closed TCP
/// connection (an SSH session, the metadata relay).
pub fn quiet_on_closed_stdout() {
    // SAFETY: restoring a signal's default disposition has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
