//! Bisection over an ordered list of kernels: `list[0]` is known good, the last is known
//! bad (both trusted, as `git bisect` trusts its ends), and exactly one boundary is
//! assumed between them. Each step tests the middle of the open interval, so the first
//! bad kernel of `n` is found in at most `ceil(log2(n - 1))` tests. The search is pure:
//! the caller's oracle builds and runs the image.

use serde::{Deserialize, Serialize};

/// One tested kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Index into the list.
    pub index: usize,
    /// Whether it passed.
    pub passed: bool,
}

/// The result of a bisection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bisection {
    /// Index of the first failing kernel.
    pub first_bad: usize,
    /// Index of the last passing kernel before it.
    pub last_good: usize,
    /// The tests, in order.
    pub steps: Vec<Step>,
}

/// The most tests a list of `n` kernels (ends included) needs: `ceil(log2(n - 1))`.
pub fn max_steps(n: usize) -> usize {
    let unknown = n.saturating_sub(1).max(1);
    (usize::BITS - (unknown - 1).leading_zeros()) as usize
}

/// Bisects a list of `n >= 2` kernels. `test(i)` says whether kernel `i` passes (or why
/// it could not judge, which stops the search); `on_step` sees each step as it is done.
pub fn bisect<E>(
    n: usize,
    mut test: impl FnMut(usize) -> Result<bool, E>,
    mut on_step: impl FnMut(&Step),
) -> Result<Bisection, E> {
    assert!(n >= 2, "a bisection needs a good and a bad end");
    let (mut good, mut bad) = (0, n - 1);
    let mut steps = Vec::new();
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        let passed = test(mid)?;
        let step = Step { index: mid, passed };
        on_step(&step);
        steps.push(step);
        if passed {
            good = mid;
        } else {
            bad = mid;
        }
    }
    Ok(Bisection {
        first_bad: bad,
        last_good: good,
        steps,
    })
}

/// Refuses a list no bisection can search: fewer than a good and a bad kernel, or a
/// kernel named twice (the good end as the bad one).
pub fn check_list(specs: &[String]) -> Result<(), super::MatrixError> {
    if specs.len() < 2 {
        return Err(super::MatrixError::Usage(
            "a bisection needs a good and a bad kernel".into(),
        ));
    }
    if let Some(twice) = specs
        .iter()
        .enumerate()
        .find(|(i, s)| specs[..*i].contains(s))
    {
        return Err(super::MatrixError::Usage(format!(
            "kernel {} is named twice: the list must go from a good kernel to another, bad one",
            twice.1
        )));
    }
    Ok(())
}

/// A bisection over real kernels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BisectReport {
    /// The root filesystem.
    pub rootfs: String,
    /// The ordered list: good end, candidates, bad end.
    pub specs: Vec<String>,
    /// The spec of the first failing kernel.
    pub first_bad: String,
    /// The spec of the last passing kernel.
    pub last_good: String,
    /// The search.
    pub bisection: Bisection,
    /// Each tested kernel's outcome, in test order.
    pub tested: Vec<super::KernelOutcome>,
}

/// Bisects `plan.specs` (in their given order): each step resolves, builds and tests one
/// kernel as the matrix does. A kernel that cannot be judged stops the search; a list
/// that names a kernel twice (the good end as the bad one) is refused.
pub fn run_bisect(
    plan: &super::MatrixPlan,
    accel: &crate::vm::accel::Pending,
    emit: super::MatrixEmit,
    mut on_step: impl FnMut(&Step, &super::KernelOutcome),
) -> Result<BisectReport, super::MatrixError> {
    check_list(&plan.specs)?;
    let work = super::work_dir()?;
    let cache_lock = std::sync::Mutex::new(());
    let mut tested: Vec<super::KernelOutcome> = Vec::new();
    let bisection = bisect(
        plan.specs.len(),
        |i| {
            let o = super::test_kernel(plan, i, accel, work.path(), &cache_lock, &emit);
            let passed = match o.verdict {
                super::KernelVerdict::Pass => true,
                super::KernelVerdict::Fail => false,
                super::KernelVerdict::Error => {
                    return Err(super::MatrixError::NotJudged(format!(
                        "kernel {}: {}",
                        plan.specs[i],
                        o.error.unwrap_or_default()
                    )));
                }
            };
            on_step(&Step { index: i, passed }, &o);
            tested.push(o);
            Ok(passed)
        },
        |_| {},
    )?;
    Ok(BisectReport {
        rootfs: plan.rootfs.display().to_string(),
        specs: plan.specs.clone(),
        first_bad: plan.specs[bisection.first_bad].clone(),
        last_good: plan.specs[bisection.last_good].clone(),
        bisection,
        tested,
    })
}
