//! Progress on the terminal, drawn from the library's progress events: sparsecopy's byte
//! bar ([`CopyBar`], from [`crate::sparsecopy::Progress`]) and fsmaker's step spinner
//! ([`StepSpinner`], from [`crate::fsmaker::Event`]). Both draw on stderr, and only when
//! it is a terminal; they decide nothing about the work they show.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::fsmaker::Event;
use crate::sparsecopy::Progress;
use crate::units::human;

/// Whether progress may be drawn: asked for, and stderr is a terminal.
fn drawable(wanted: bool) -> bool {
    wanted && std::io::stderr().is_terminal()
}

/// An `indicatif` bar on stderr with `template`.
fn bar(len: Option<u64>, template: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
    bar
}

/// Clears a bar that was drawn.
fn clear(bar: Option<ProgressBar>) {
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}

/// sparsecopy's bar: bytes of SRC done, with rate and ETA when SRC's length is known, a
/// byte counter for streams. Made at the first event, when the length is known.
pub struct CopyBar {
    /// Whether to draw at all.
    enabled: bool,
    /// The bar, once the first event came.
    bar: Option<ProgressBar>,
}

impl CopyBar {
    /// A bar drawn if `wanted` and stderr is a terminal.
    pub fn new(wanted: bool) -> CopyBar {
        CopyBar {
            enabled: drawable(wanted),
            bar: None,
        }
    }

    /// Shows `p`.
    pub fn update(&mut self, p: Progress) {
        if !self.enabled {
            return;
        }
        let b = self.bar.get_or_insert_with(|| match p.total {
            Some(total) => bar(
                Some(total),
                "{bytes}/{total_bytes} {wide_bar} {binary_bytes_per_sec} {eta}",
            ),
            None => bar(None, "{spinner} {bytes} {binary_bytes_per_sec}"),
        });
        b.set_position(p.done);
    }

    /// Clears the bar.
    pub fn finish(self) {
        clear(self.bar);
    }
}

/// fsmaker's spinner: elapsed time, the current step, and the bytes copied while the
/// filesystem is copied.
pub struct StepSpinner {
    /// The spinner, if stderr is a terminal.
    bar: Option<ProgressBar>,
    /// The step under way.
    step: String,
}

impl StepSpinner {
    /// A spinner ticking on stderr, if it is a terminal.
    pub fn new() -> StepSpinner {
        let bar = drawable(true).then(|| {
            let b = bar(None, "{spinner} {elapsed} {msg}");
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        StepSpinner {
            bar,
            step: String::new(),
        }
    }

    /// Shows `e`.
    pub fn event(&mut self, e: Event) {
        let Some(b) = &self.bar else { return };
        match e {
            Event::Step(s) => {
                b.set_message(s.clone());
                self.step = s;
            }
            Event::Copy { done, total } => {
                let of = total
                    .map(|t| format!(" of {}", human(t)))
                    .unwrap_or_default();
                b.set_message(format!("{}: {}{of}", self.step, human(done)));
            }
        }
    }

    /// Clears the spinner.
    pub fn finish(self) {
        clear(self.bar);
    }
}

impl Default for StepSpinner {
    fn default() -> Self {
        Self::new()
    }
}
