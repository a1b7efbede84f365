use crate::{CancelToken, Error};

/// The largest `n` whose fibonacci number fits in a `u64` (with fib(0) = fib(1) = 1).
pub const FIB_MAX_N: u32 = 92;

/// Below this `n` the recursion runs without checks or splitting: a subtree
/// of fib(23) is ~0.1 ms of work, so a cancelled job stops within about that.
const CHECK_BELOW: u32 = 24;
/// Above this `n` the parallel version splits with `rayon::join`; below, a
/// fork would cost more than the work it shares.
const SPLIT_ABOVE: u32 = 27;

/// Naive doubly-recursive fibonacci with fib(0) = fib(1) = 1, so
/// fib(30) = 1346269 and fib(42) = 433494437.
///
/// Deliberately exponential: it is the CPU-bound benchmark workload.
///
/// # Errors
/// [`Error::Overflow`] for `n` > [`FIB_MAX_N`], whose result does not fit in a `u64`.
pub fn fib(n: u32) -> Result<u64, Error> {
    check(n)?;
    Ok(naive(n))
}

/// [`fib`], with the recursion split across the current rayon pool above a
/// cutoff (so one request uses every core), stopping early when `cancel`
/// fires.
///
/// Run it inside a [`ComputePool`](crate::ComputePool) job to use that pool's threads.
///
/// # Errors
/// [`Error::Overflow`] as for [`fib`]; [`Error::Cancelled`] or
/// [`Error::DeadlineExceeded`] when `cancel` fired before the result was known.
pub fn fib_parallel(n: u32, cancel: &CancelToken) -> Result<u64, Error> {
    check(n)?;
    parallel(n, cancel).ok_or_else(|| cancel.reason())
}

fn check(n: u32) -> Result<(), Error> {
    if n > FIB_MAX_N { Err(Error::Overflow { n, max: FIB_MAX_N }) } else { Ok(()) }
}

fn naive(n: u32) -> u64 {
    if n < 2 { 1 } else { naive(n - 1) + naive(n - 2) }
}

/// `None` once cancelled.
fn parallel(n: u32, cancel: &CancelToken) -> Option<u64> {
    if n < CHECK_BELOW {
        return Some(naive(n));
    }
    if cancel.is_cancelled() {
        return None;
    }
    if n > SPLIT_ABOVE {
        let (a, b) = rayon::join(|| parallel(n - 1, cancel), || parallel(n - 2, cancel));
        Some(a? + b?)
    } else {
        Some(parallel(n - 1, cancel)? + parallel(n - 2, cancel)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same numbers by iteration, with overflow checks.
    fn iterative(n: u32) -> Option<u64> {
        let (mut a, mut b) = (1u64, 1u64); // fib(0), fib(1)
        for _ in 1..n.max(1) {
            (a, b) = (b, a.checked_add(b)?);
        }
        Some(b)
    }

    #[test]
    fn known_values() {
        let first: Vec<u64> = (0..=10).map(|n| fib(n).unwrap()).collect();
        assert_eq!(first, [1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89]);
        assert_eq!(fib(30).unwrap(), 1_346_269);
        assert_eq!(fib(35).unwrap(), 14_930_352);
    }

    #[test]
    fn the_overflow_boundary_is_exact() {
        assert_eq!(iterative(FIB_MAX_N), Some(12_200_160_415_121_876_738));
        assert_eq!(iterative(FIB_MAX_N + 1), None);
        assert!(matches!(fib(FIB_MAX_N + 1), Err(Error::Overflow { n: 93, max: 92 })));
        assert!(matches!(fib(u32::MAX), Err(Error::Overflow { .. })));
        let never = CancelToken::new();
        assert!(matches!(fib_parallel(FIB_MAX_N + 1, &never), Err(Error::Overflow { .. })));
    }

    #[test]
    fn parallel_equals_sequential() {
        let never = CancelToken::new();
        for n in 0..=34 {
            assert_eq!(fib_parallel(n, &never).unwrap(), fib(n).unwrap(), "n = {n}");
            assert_eq!(fib(n).unwrap(), iterative(n).unwrap(), "n = {n}");
        }
    }

    #[test]
    fn a_cancelled_token_stops_the_recursion() {
        let cancel = CancelToken::new();
        cancel.cancel();
        assert!(matches!(fib_parallel(80, &cancel), Err(Error::Cancelled)));
        // Below the check cutoff there is nothing to stop: the answer is immediate.
        assert_eq!(fib_parallel(10, &cancel).unwrap(), 89);
    }
}
