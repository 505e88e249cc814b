//! The terminal progress bar: one observer of [`super::Progress`] events.
//! A bar with ETA when SRC's length is known, a byte counter for streams.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Progress;

/// An `indicatif` bar on stderr, styled at the first event.
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    /// A bar, if stderr is a terminal.
    pub fn on_terminal() -> Option<Bar> {
        std::io::stderr().is_terminal().then_some(Bar { bar: None })
    }

    pub fn update(&mut self, p: Progress) {
        let bar = self.bar.get_or_insert_with(|| {
            let (bar, template) = match p.total {
                Some(total) => (
                    ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
                    "{bytes}/{total_bytes} {wide_bar} {binary_bytes_per_sec} {eta}",
                ),
                None => (
                    ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
                    "{spinner} {bytes} {binary_bytes_per_sec}",
                ),
            };
            bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
            bar
        });
        bar.set_position(p.done);
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
