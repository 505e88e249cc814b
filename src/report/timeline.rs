//! The boot timeline as inline SVG: one lane per boot (or, for a matrix, per kernel) on one
//! time axis, the console's phases as coloured spans (firmware, bootloader, kernel,
//! userspace, login prompt) and the harness's moments as marks (SSH answered, password
//! works, probe done, powered off), so a slow phase, or the boot that held the verdict
//! back, shows at a glance. Pure: facts in, markup out.

use std::fmt::Write as _;

use super::html::esc;
use crate::facts::{BootFacts, Login, Phase, Shutdown};
use crate::named::Named;

/// One lane of the timeline.
pub struct Lane<'a> {
    /// What the lane is (`boot 0`, a kernel version).
    pub label: String,
    /// Where the label links to (the boot's section), if anywhere.
    pub href: Option<String>,
    /// The boot drawn.
    pub boot: &'a BootFacts,
}

/// The moments the harness marks on a lane, in the order they happen.
const MARKS: [&str; 4] = ["ssh", "password", "probe", "power-off"];

/// Seconds (since QEMU started) of each harness moment this boot reached.
fn marks(b: &BootFacts) -> Vec<(&'static str, f64)> {
    let password = match b.login {
        Login::Worked { after_secs } => Some(after_secs),
        _ => None,
    };
    let off = match (&b.shutdown, b.powerdown_secs) {
        (Shutdown::Clean { secs }, Some(at)) => Some(at + secs),
        _ => None,
    };
    MARKS
        .into_iter()
        .zip([b.ssh_secs, password, b.probe_secs, off])
        .filter_map(|(m, t)| t.map(|t| (m, t)))
        .collect()
}

/// Where a lane ends: QEMU gone, else its last phase or mark.
fn end(b: &BootFacts) -> f64 {
    let last_phase = b.console.phases.iter().map(|&(_, t)| t);
    let last_mark = marks(b).into_iter().map(|(_, t)| t);
    b.end_secs
        .into_iter()
        .chain(last_phase)
        .chain(last_mark)
        .fold(0.0, f64::max)
}

/// The words for a mark.
fn mark_words(mark: &str) -> &'static str {
    match mark {
        "ssh" => "SSH answered",
        "password" => "password works",
        "probe" => "probe done",
        _ => "powered off",
    }
}

/// A tick step that gives at most ten ticks over `span` seconds.
fn tick_step(span: f64) -> f64 {
    [1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0]
        .into_iter()
        .find(|s| span / s <= 10.0)
        .unwrap_or(1200.0)
}

const WIDTH: f64 = 960.0;
const LEFT: f64 = 170.0;
const RIGHT: f64 = 20.0;
const LANE: f64 = 30.0;
const TOP: f64 = 24.0;

/// The SVG of `lanes` on one axis; the lane that ended last is marked as the one that held
/// the verdict back.
pub fn svg(lanes: &[Lane]) -> String {
    let span = lanes.iter().map(|l| end(l.boot)).fold(1.0, f64::max);
    let x = |t: f64| LEFT + (WIDTH - LEFT - RIGHT) * t / span;
    let height = TOP + LANE * lanes.len() as f64 + 62.0;
    let mut s = format!(
        "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} \
         {height}\" role=\"img\" aria-label=\"boot timeline\">"
    );
    axis(&mut s, span, &x, height - 58.0);
    let slowest = lanes
        .iter()
        .enumerate()
        .max_by(|a, b| end(a.1.boot).total_cmp(&end(b.1.boot)))
        .map(|(i, _)| i);
    for (i, lane) in lanes.iter().enumerate() {
        let y = TOP + LANE * i as f64;
        lane_svg(&mut s, lane, y, &x, Some(i) == slowest && lanes.len() > 1);
    }
    legend(&mut s, height - 32.0);
    s.push_str("</svg>");
    s
}

/// Tick lines and their seconds.
fn axis(s: &mut String, span: f64, x: &dyn Fn(f64) -> f64, bottom: f64) {
    let step = tick_step(span);
    let mut t = 0.0;
    while t <= span + 1e-9 {
        let _ = write!(
            s,
            "<line class=\"tick\" x1=\"{0:.1}\" y1=\"{TOP}\" x2=\"{0:.1}\" y2=\"{bottom}\"/>\
             <text class=\"tick-label\" x=\"{0:.1}\" y=\"{1}\">{t}s</text>",
            x(t),
            TOP - 8.0
        );
        t += step;
    }
}

/// One lane: its label, a span per console phase, a mark per harness moment.
fn lane_svg(s: &mut String, lane: &Lane, y: f64, x: &dyn Fn(f64) -> f64, slowest: bool) {
    let b = lane.boot;
    let label = if slowest {
        format!("{} (slowest)", lane.label)
    } else {
        lane.label.clone()
    };
    let text = format!(
        "<text class=\"lane-label{}\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
        if slowest { " slowest" } else { "" },
        LEFT - 8.0,
        y + 19.0,
        esc(&label)
    );
    match &lane.href {
        Some(h) => {
            let _ = write!(s, "<a href=\"{}\">{text}</a>", esc(h));
        }
        None => s.push_str(&text),
    }
    let end = end(b);
    let mut phases = b.console.phases.clone();
    phases.sort_by(|a, b| a.1.total_cmp(&b.1));
    for (k, &(phase, from)) in phases.iter().enumerate() {
        let to = phases.get(k + 1).map_or(end, |&(_, t)| t);
        phase_span(s, phase, from, to, y, x);
    }
    for (mark, t) in marks(b) {
        let (cx, cy) = (x(t), y + 15.0);
        let _ = write!(
            s,
            "<g class=\"mark mark-{mark}\" data-mark=\"{mark}\"><path d=\"M{cx:.1} {:.1} l6 6 \
             l-6 6 l-6 -6 z\"/><title>{} at {t:.1}s</title></g>",
            cy - 6.0,
            mark_words(mark)
        );
    }
}

/// A phase's span from `from` to `to`, labelled when there is room.
fn phase_span(s: &mut String, p: Phase, from: f64, to: f64, y: f64, x: &dyn Fn(f64) -> f64) {
    let (x0, w) = (x(from), (x(to) - x(from)).max(1.0));
    let name = p.name();
    let _ = write!(
        s,
        "<g class=\"phase phase-{name}\" data-phase=\"{name}\"><rect x=\"{x0:.1}\" \
         y=\"{:.1}\" width=\"{w:.1}\" height=\"20\"/><title>{} from {from:.1}s to \
         {to:.1}s</title>",
        y + 5.0,
        phase_words(p)
    );
    if w > 8.0 * name.len() as f64 {
        let _ = write!(
            s,
            "<text class=\"phase-label\" x=\"{:.1}\" y=\"{:.1}\">{name}</text>",
            x0 + 4.0,
            y + 19.0
        );
    }
    s.push_str("</g>");
}

/// How the legend names a phase.
fn phase_words(p: Phase) -> &'static str {
    match p {
        Phase::Login => "login prompt",
        p => p.name(),
    }
}

/// The legend: each phase's colour, and below, each mark's shape.
fn legend(s: &mut String, y: f64) {
    let mut x = LEFT;
    for &p in Phase::ALL {
        let _ = write!(
            s,
            "<g class=\"phase phase-{0}\"><rect x=\"{x:.1}\" y=\"{1:.1}\" width=\"12\" \
             height=\"12\"/></g><text class=\"legend\" x=\"{2:.1}\" y=\"{y:.1}\">{3}</text>",
            p.name(),
            y - 10.0,
            x + 16.0,
            phase_words(p)
        );
        x += 24.0 + 7.0 * phase_words(p).len() as f64;
    }
    let (mut x, y) = (LEFT, y + 20.0);
    for mark in MARKS {
        let _ = write!(
            s,
            "<g class=\"mark mark-{mark}\"><path d=\"M{0:.1} {1:.1} l6 6 l-6 6 l-6 -6 z\"/></g>\
             <text class=\"legend\" x=\"{2:.1}\" y=\"{y:.1}\">{3}</text>",
            x + 6.0,
            y - 11.0,
            x + 16.0,
            mark_words(mark)
        );
        x += 24.0 + 7.0 * mark_words(mark).len() as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{ConsoleSummary, Firmware};

    fn boot(i: usize, userspace: f64, end: f64) -> BootFacts {
        BootFacts {
            console: ConsoleSummary {
                phases: vec![
                    (Phase::Firmware, 0.3),
                    (Phase::Bootloader, 1.0),
                    (Phase::Kernel, 2.0),
                    (Phase::Userspace, userspace),
                ],
                ..Default::default()
            },
            ssh_secs: Some(userspace + 3.0),
            login: Login::Worked {
                after_secs: userspace + 4.0,
            },
            probe_secs: Some(userspace + 6.0),
            powerdown_secs: Some(end - 3.0),
            shutdown: Shutdown::Clean { secs: 2.0 },
            end_secs: Some(end),
            ..BootFacts::new(i, Firmware::Bios)
        }
    }

    #[test]
    fn lanes_share_one_axis_and_the_slowest_is_named() {
        let (fast, slow) = (boot(0, 6.0, 20.0), boot(1, 9.0, 40.0));
        let lanes = [
            Lane {
                label: "boot 0".into(),
                href: Some("#b0".into()),
                boot: &fast,
            },
            Lane {
                label: "boot 1".into(),
                href: None,
                boot: &slow,
            },
        ];
        let svg = svg(&lanes);
        // Each phase once per lane (and once in the legend), each mark once per lane.
        for p in ["firmware", "bootloader", "kernel", "userspace"] {
            assert_eq!(
                svg.matches(&format!("data-phase=\"{p}\"")).count(),
                2,
                "{p}"
            );
        }
        for m in MARKS {
            assert_eq!(svg.matches(&format!("data-mark=\"{m}\"")).count(), 2, "{m}");
        }
        assert!(svg.contains(">boot 1 (slowest)</text>"), "{svg}");
        assert!(svg.contains("<a href=\"#b0\">"), "{svg}");
        // 40 s on the axis: ticks every 5 s, the last at 40 s at the right edge.
        assert!(
            svg.contains(">40s</text>") && !svg.contains(">45s<"),
            "{svg}"
        );
        assert!(svg.contains("x1=\"940.0\""), "{svg}");
        assert!(svg.contains("<title>powered off at 39.0s</title>"), "{svg}");
    }

    #[test]
    fn a_boot_with_no_console_still_has_a_lane() {
        let b = BootFacts {
            end_secs: Some(240.0),
            ..BootFacts::new(0, Firmware::Bios)
        };
        let svg = svg(&[Lane {
            label: "boot 0".into(),
            href: None,
            boot: &b,
        }]);
        assert!(
            svg.contains(">boot 0</text>") && svg.contains(">240s</text>"),
            "{svg}"
        );
        assert!(!svg.contains("slowest"));
    }
}
