//! What the property tests of the parsers of untrusted input share (image headers,
//! partition tables, filesystems, cloud-init YAML, the metadata service's HTTP, merged
//! reports): a fixed seed, so that every run tries the same cases, [`CASES`] of them per
//! property, inputs made of random bytes or of a valid sample with some bytes changed or
//! cut ([`mutated`]), and a deadline per case ([`within`]): a parser may refuse its input,
//! never panic or hang on it.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

/// Cases per property in every run.
pub const CASES: u32 = 10_000;

/// How long one case may take before it counts as a hang.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The property tests' configuration: [`CASES`] cases from a fixed seed.
pub fn config() -> Config {
    Config {
        cases: CASES,
        rng_seed: RngSeed::Fixed(0x1d_5eed),
        failure_persistence: None,
        ..Config::default()
    }
}

/// `f`'s result, computed on a thread of its own; a case that takes longer than
/// [`DEADLINE`] fails as a hang (its thread is left behind).
pub fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("the parser hung for {DEADLINE:?}"),
    }
}

/// `sample` with 1 to 16 bytes changed, and sometimes cut short: what a damaged or
/// crafted file looks like next to a valid one.
pub fn mutated(sample: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = sample.len();
    (
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        prop::option::weighted(0.1, any::<prop::sample::Index>()),
    )
        .prop_map(move |(edits, cut)| {
            let mut b = sample.clone();
            if !b.is_empty() {
                for (i, v) in edits {
                    let at = i.index(b.len());
                    b[at] = v;
                }
            }
            if let Some(c) = cut {
                b.truncate(c.index(len + 1));
            }
            b
        })
}

/// A temp file holding `bytes`, for parsers that open a path; dropped, it is gone.
pub fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, bytes).unwrap();
    file
}

/// Random bytes, up to `max` of them (from a seed, which is far cheaper to draw than
/// each byte: the cases stay fast).
pub fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    (0..max, any::<u64>()).prop_map(|(len, seed)| {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    })
}
