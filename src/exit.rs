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
