//! The process-wide request to stop: set once when the user (or a CI runner cancelling a
//! job) sends SIGINT, SIGTERM or SIGHUP, which `crate::vm::process::install_signal_guard`
//! turns into a call to [`request`]. Long work (a copy loop, a helper program, a boot)
//! checks [`requested`] between steps and returns an "interrupted" error, so that every
//! temp file, partial output and process is removed by its owner on the way out.
//!
//! Nothing here handles signals or exits: it is the flag the handlers and the work share.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks every running piece of work to stop as soon as it can.
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Whether the process was asked to stop.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
