//! `imgtest report merge`: joins the JSON reports of a matrix's shards (or any disjoint
//! parts of it) into the report of the whole matrix, as an unsharded run would have
//! written it: kernels in spec order, `shard` unset, wall time the longest part's.
//! Refuses parts of different matrices, a kernel reported twice, a kernel missing, or a
//! duration that is not a number of seconds (the parts are files anyone may have edited).

use std::collections::BTreeMap;

use super::{KernelOutcome, MatrixReport};

/// Why parts do not merge.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("no reports to merge")]
    Empty,
    /// The parts are of different matrices.
    #[error("{0}")]
    Mismatch(String),
    /// A kernel appears in two parts.
    #[error("kernel {0} is in more than one report")]
    Duplicate(String),
    /// Kernels no part tested.
    #[error("no report has kernel(s) {0}: is a shard missing?")]
    Missing(String),
    /// A part holds a duration that is negative or not a number.
    #[error("{0}")]
    BadNumber(String),
}

/// Refuses a duration of a part (`name`) that is not a finite, non-negative number of
/// seconds.
fn seconds(name: &str, what: &str, v: f64) -> Result<(), MergeError> {
    if v.is_finite() && v >= 0.0 {
        return Ok(());
    }
    Err(MergeError::BadNumber(format!(
        "{name}: {what} {v} is not a number of seconds"
    )))
}

/// Merges `parts` (each from a JSON file named in the same position of `names`).
pub fn merge(parts: Vec<MatrixReport>, names: &[String]) -> Result<MatrixReport, MergeError> {
    let first = parts.first().ok_or(MergeError::Empty)?;
    let (rootfs, specs) = (first.rootfs.clone(), first.specs.clone());
    let mut kernels: BTreeMap<usize, KernelOutcome> = BTreeMap::new();
    let mut duration: f64 = 0.0;
    for (i, p) in parts.into_iter().enumerate() {
        let name = names.get(i).map_or("a report", String::as_str);
        if p.specs != specs || p.rootfs != rootfs {
            return Err(MergeError::Mismatch(format!(
                "{name} is of another matrix (rootfs {}, kernels {}) than the first (rootfs {rootfs}, kernels {})",
                p.rootfs,
                p.specs.join(" "),
                specs.join(" ")
            )));
        }
        seconds(name, "duration_secs", p.duration_secs)?;
        duration = duration.max(p.duration_secs);
        for k in p.kernels {
            seconds(name, "build_secs", k.build_secs)?;
            if let Some(r) = &k.report {
                seconds(name, "duration_secs", r.duration_secs)?;
                seconds(name, "offline_secs", r.offline_secs)?;
            }
            if k.index >= specs.len() || specs[k.index] != k.spec {
                return Err(MergeError::Mismatch(format!(
                    "{name}: kernel {} is not spec #{} of the matrix",
                    k.spec, k.index
                )));
            }
            let spec = k.spec.clone();
            if kernels.insert(k.index, k).is_some() {
                return Err(MergeError::Duplicate(spec));
            }
        }
    }
    let missing: Vec<&str> = specs
        .iter()
        .enumerate()
        .filter(|(i, _)| !kernels.contains_key(i))
        .map(|(_, s)| s.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(MergeError::Missing(missing.join(", ")));
    }
    Ok(MatrixReport {
        rootfs,
        specs,
        shard: None,
        kernels: kernels.into_values().collect(),
        duration_secs: duration,
    })
}
