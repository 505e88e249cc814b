//! The terminal progress bar: one observer of [`super::Progress`] events.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Progress;

/// An `indicatif` bar on stderr.
pub struct Bar {
    bar: ProgressBar,
    sized: bool,
}

impl Bar {
    /// A bar, if stderr is a terminal.
    pub fn on_terminal() -> Option<Bar> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{bytes}/{total_bytes} {wide_bar} {binary_bytes_per_sec} {eta}",
            )
            .expect("valid template"),
        );
        Some(Bar { bar, sized: false })
    }

    pub fn update(&mut self, p: Progress) {
        if !self.sized
            && let Some(total) = p.total
        {
            self.bar.set_length(total);
            self.sized = true;
        }
        self.bar.set_position(p.done);
    }

    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}
