//! Progress drawn from the library's progress events: sparsecopy's byte bar ([`CopyBar`],
//! from [`crate::sparsecopy::Progress`]) and fsmaker's steps ([`StepProgress`], from
//! [`crate::fsmaker::Event`]). Bars draw on stderr, and only when it is a terminal; off a
//! terminal (a CI log) fsmaker's steps are one plain line each, and sparsecopy's bar is
//! nothing. They decide nothing about the work they show.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::fsmaker::{Event, Step};
use crate::sparsecopy::Progress;
use crate::units::human;

/// The byte bar's part of a template: bytes done of the total, rate and ETA.
const BYTES: &str = "{bytes}/{total_bytes} {wide_bar} {binary_bytes_per_sec} {eta}";
/// The same for a stream of unknown length.
const STREAM: &str = "{bytes} {binary_bytes_per_sec}";
/// A step's part: spinner, elapsed time, the step's words.
const STEP: &str = "{spinner} {elapsed} {msg}";

/// Whether progress may be drawn: asked for, and stderr is a terminal.
fn drawable(wanted: bool) -> bool {
    wanted && std::io::stderr().is_terminal()
}

/// An `indicatif` bar on stderr with `template`.
fn bar(len: Option<u64>, template: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    bar.set_style(style(template));
    bar
}

/// The style of `template` (the templates here are constants: they parse).
fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).expect("valid template")
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
            Some(total) => bar(Some(total), BYTES),
            None => bar(None, &format!("{{spinner}} {STREAM}")),
        });
        b.set_position(p.done);
    }

    /// Clears the bar.
    pub fn finish(self) {
        clear(self.bar);
    }
}

/// fsmaker's progress through the steps of a build or a kernel import. On a terminal: a
/// spinner per step with its elapsed time and words, which becomes sparsecopy's byte bar
/// while the step moves bytes; drawn at once when a step starts and when its bytes are all
/// done, ticking in between, cleared at the end. Elsewhere (a CI log): one plain line per
/// step, `TOOL: <words> (<bytes it moves>)`, and nothing else.
pub struct StepProgress {
    /// The plain lines' prefix (the program's name).
    tool: &'static str,
    /// Whether stderr is a terminal.
    terminal: bool,
    /// The step under way's bar, on a terminal.
    bar: Option<ProgressBar>,
    /// Whether that bar shows bytes yet.
    bytes: bool,
}

impl StepProgress {
    /// Progress for `tool`, drawn if stderr is a terminal and written as lines otherwise.
    pub fn new(tool: &'static str) -> StepProgress {
        StepProgress {
            tool,
            terminal: drawable(true),
            bar: None,
            bytes: false,
        }
    }

    /// Shows `e`.
    pub fn event(&mut self, e: Event) {
        match e {
            Event::Step(step) if self.terminal => {
                clear(self.bar.take());
                let b = bar(None, STEP);
                b.set_message(step_words(&step));
                b.enable_steady_tick(Duration::from_millis(120));
                b.force_draw();
                self.bar = Some(b);
                self.bytes = false;
            }
            Event::Step(step) => eprintln!("{}: {}", self.tool, step_line(&step)),
            Event::Bytes { done, total } => {
                let Some(b) = &self.bar else { return };
                if !self.bytes {
                    self.bytes = true;
                    let rest = match total {
                        Some(t) => {
                            b.set_length(t);
                            BYTES
                        }
                        None => STREAM,
                    };
                    b.set_style(style(&format!("{STEP} {rest}")));
                }
                b.set_position(done);
                if Some(done) == total {
                    b.force_draw();
                }
            }
        }
    }

    /// Clears the bar.
    pub fn finish(self) {
        clear(self.bar);
    }
}

/// What a step does, in words (on a terminal its bar shows the bytes).
fn step_words(step: &Step) -> String {
    match step {
        Step::CopyToGrow { .. } => "copying the filesystem to grow it".into(),
        Step::Grow { bytes } => format!("growing the filesystem to {}", human(*bytes)),
        Step::CopyToPartition { .. } => "copying the filesystem into partition 1".into(),
        Step::Install => "installing the kernel, initrd, modules and GRUB files".into(),
        Step::BootSectors => "installing GRUB into the MBR".into(),
        Step::GptBoot => "writing the GPT and the boot partitions".into(),
        Step::Convert => "converting to qcow2".into(),
        Step::Download { package, .. } => format!("downloading {package}"),
        Step::Unpack { package, version } => format!("unpacking {package} {version}"),
        Step::Depmod { kernel } => format!("indexing the modules of {kernel} (depmod)"),
        Step::Initrd { kernel } => format!("building the initrd for {kernel}"),
    }
}

/// A step's plain line: its words, and the bytes it moves when it moves any.
fn step_line(step: &Step) -> String {
    let bytes = match step {
        Step::CopyToGrow { bytes } | Step::CopyToPartition { bytes } => Some(*bytes),
        Step::Download { bytes, .. } => *bytes,
        _ => None,
    };
    match bytes {
        Some(b) => format!("{} ({})", step_words(step), human(b)),
        None => step_words(step),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_say_the_step_and_its_bytes() {
        let line = |s| step_line(&s);
        assert_eq!(
            line(Step::CopyToPartition { bytes: 256 << 20 }),
            "copying the filesystem into partition 1 (256.0 MiB)"
        );
        assert_eq!(
            line(Step::Grow { bytes: 299 << 20 }),
            "growing the filesystem to 299.0 MiB"
        );
        assert_eq!(
            line(Step::Download {
                package: "linux-image-cloud-amd64".into(),
                bytes: None
            }),
            "downloading linux-image-cloud-amd64"
        );
        assert_eq!(
            line(Step::Unpack {
                package: "linux-image-6.1.0-56-cloud-amd64".into(),
                version: "6.1.192-2".into()
            }),
            "unpacking linux-image-6.1.0-56-cloud-amd64 6.1.192-2"
        );
        // On a terminal the bar shows the bytes: the words alone.
        assert_eq!(
            step_words(&Step::CopyToGrow { bytes: 1 << 30 }),
            "copying the filesystem to grow it"
        );
    }

    #[test]
    fn templates_parse() {
        for t in [BYTES, STREAM, STEP] {
            style(t);
            style(&format!("{STEP} {t}"));
        }
    }
}
