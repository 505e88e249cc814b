//! The live view while a run progresses, on stderr. On a terminal: one status line per
//! boot, updated in place (indicatif), other events printed above them. Otherwise:
//! plain timestamped lines, one per event. It only renders [`Event`]s.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::{Event, boot_line, render_event};

/// Renders events as they come, from any thread.
pub(crate) struct Live {
    t0: Instant,
    bars: Option<(MultiProgress, Mutex<BTreeMap<usize, ProgressBar>>)>,
}

impl Live {
    /// A live view; `tty` selects the in-place view.
    pub fn new(tty: bool) -> Live {
        let bars = tty.then(|| {
            (
                MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                Mutex::new(BTreeMap::new()),
            )
        });
        Live {
            t0: Instant::now(),
            bars,
        }
    }

    /// Renders one event.
    pub fn event(&self, e: &Event) {
        let Some(line) = render_event(e) else { return };
        let stamp = format!("[{:6.1}s]", self.t0.elapsed().as_secs_f64());
        match (&self.bars, e) {
            (None, _) => eprintln!("{stamp} {line}"),
            (Some((multi, bars)), Event::Boot { boot, event }) => {
                let mut bars = bars.lock().unwrap_or_else(|p| p.into_inner());
                let bar = bars.entry(*boot).or_insert_with(|| {
                    let b = multi.add(ProgressBar::new_spinner());
                    b.set_style(
                        ProgressStyle::with_template("{prefix:.bold} {msg}")
                            .expect("valid template"),
                    );
                    b.set_prefix(format!("boot {boot}"));
                    b
                });
                let step = boot_line(event).unwrap_or_default();
                bar.set_message(format!("{stamp} {step}"));
            }
            (Some((multi, _)), _) => {
                let _ = multi.println(format!("{stamp} {line}"));
            }
        }
    }

    /// Prints a final line after removing the status lines.
    pub fn finish(&self, line: &str) {
        self.clear();
        eprintln!("[{:6.1}s] {line}", self.t0.elapsed().as_secs_f64());
    }

    /// Removes the in-place status lines (before printing a summary).
    pub fn clear(&self) {
        if let Some((multi, bars)) = &self.bars {
            let bars = std::mem::take(&mut *bars.lock().unwrap_or_else(|p| p.into_inner()));
            for b in bars.values() {
                b.finish_and_clear();
            }
            let _ = multi.clear();
        }
    }
}
