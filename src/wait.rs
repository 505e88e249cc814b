//! Waiting with a deadline. Every wait of the crate that polls goes through [`until`],
//! which asks its `stop` between polls (a dead VM, another boot's failure, Ctrl-C), so a
//! wait that notices its deadline and a request to stop holds by construction.

use std::time::{Duration, Instant};

/// Why to stop waiting early, asked between polls: a reason, or None to go on.
pub type Stop<'a> = dyn FnMut() -> Option<String> + 'a;

/// How a wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waited<T> {
    /// The poll gave its value.
    Done(T),
    /// `stop` gave this reason first.
    Stopped(String),
    /// The deadline passed first.
    TimedOut,
}

/// Polls `poll` every `pause` until it gives a value, `stop` gives a reason or `deadline`
/// passes. The first poll is at once; the last pause is cut to the deadline, and a poll
/// is always made at the deadline itself (one that takes time may still succeed then).
/// A poll that waits itself is handed `stop`, to end its own wait by the same reasons.
pub fn until<T>(
    deadline: Instant,
    pause: Duration,
    stop: &mut Stop,
    mut poll: impl FnMut(&mut Stop) -> Option<T>,
) -> Waited<T> {
    loop {
        if let Some(why) = stop() {
            return Waited::Stopped(why);
        }
        if let Some(v) = poll(stop) {
            return Waited::Done(v);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Waited::TimedOut;
        }
        std::thread::sleep(pause.min(left));
    }
}

/// The stop of a wait nothing but Ctrl-C (or a signal the guard caught) ends.
pub fn on_interrupt() -> Option<String> {
    crate::interrupt::requested().then(|| "interrupted".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_with_the_value_the_stop_or_the_deadline() {
        let mut n = 0;
        let far = Instant::now() + Duration::from_secs(60);
        let got = until(far, Duration::from_millis(1), &mut || None, |_| {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(got, Waited::Done(3));
        let mut asked = 0;
        let stopped = until(
            far,
            Duration::from_millis(1),
            &mut || {
                asked += 1;
                (asked == 2).then(|| "QEMU exited".to_string())
            },
            |_| None::<()>,
        );
        assert_eq!(stopped, Waited::Stopped("QEMU exited".into()));
        let t = Instant::now();
        let mut polls = 0;
        let timed_out = until(
            t + Duration::from_millis(120),
            Duration::from_secs(10),
            &mut || None,
            |_| {
                polls += 1;
                None::<()>
            },
        );
        assert_eq!(timed_out, Waited::TimedOut);
        // The long pause was cut to the deadline, and the deadline itself was polled.
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert_eq!(polls, 2);
    }
}
