//! The circuit breaker: stop feeding an agent that keeps failing, then probe it with one trial.

mod config;
mod error;

use std::sync::atomic::Ordering;
use std::time::Duration;

pub use config::{BreakerConfig, MAX_RESET_TIMEOUT};
pub use error::BreakerOpen;

use crate::sync::AtomicU64;

/// Where a breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls flow; consecutive failures are counted.
    Closed,
    /// Calls are refused until the reset timeout passes.
    Open,
    /// One trial call is in flight; its outcome closes or reopens the breaker.
    HalfOpen,
}

impl BreakerState {
    /// The state as a number for gauges: 0 closed, 1 open, 2 half-open.
    pub fn as_gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::Open => 1.0,
            Self::HalfOpen => 2.0,
        }
    }
}

/// A change of state, returned to exactly one caller: the one whose call caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    /// Closed -> open: the failure threshold was reached.
    Opened,
    /// Open -> half-open: the reset timeout passed and a trial was let through.
    HalfOpened,
    /// Half-open -> closed: the trial succeeded.
    Closed,
    /// Half-open -> open: the trial failed; the next open period is longer.
    Reopened,
}

/// Permission to make one call, from [`CircuitBreaker::try_acquire`]. Report its outcome
/// with [`CircuitBreaker::on_success`] or [`CircuitBreaker::on_failure`]; a permit dropped
/// unreported (a cancelled call) counts as neither.
///
/// A permit belongs to the breaker's epoch it was issued in: a report that arrives after the
/// breaker has moved on (a slow call from before it opened, a trial that was given up on)
/// decides nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit {
    trial: bool,
    epoch: u64,
}

impl Permit {
    /// Whether this is the one trial call of a half-open breaker.
    pub fn is_trial(&self) -> bool {
        self.trial
    }
}

// Layout of the packed state word, low bits first:
// [state: 2][exponent: 5][failures: 12][epoch: 16][since, ms, wrapping: 29]
// While closed, `since` is not needed and counts the calls of the current rate window.
//
// Why the epoch may wrap: it moves on at every transition, and a permit is acted on only if
// its epoch equals the current one, so a stale permit could be mistaken for a current one
// only if its call stayed in flight across exactly a multiple of 65,536 transitions. Half of
// any run of transitions at least are open periods (closed -> open -> half-open -> ...), each
// lasting at least `reset_timeout` (1 ms at the very least, 1 s by default, doubling after
// each failed trial): 32,768 of them take over half a minute at the most extreme settings and
// many hours at the defaults, while the call that holds the permit is still running. Even
// then the harm is one call's outcome counted in the wrong epoch. (It was 8 bits, 128 open
// periods, until API v2 widened it.)
//
// Why `since` may wrap: it only ever measures an open period, at most `max_reset_timeout`,
// which `BreakerConfig::validate` bounds to a day, a fraction of the 6.2-day wrap.
const STATE_BITS: u64 = 0b11;
const EXP_SHIFT: u32 = 2;
const EXP_MASK: u64 = 0x1f;
const FAIL_SHIFT: u32 = 7;
const FAIL_MASK: u64 = 0xfff;
const EPOCH_SHIFT: u32 = 19;
const EPOCH_MASK: u64 = 0xffff;
const SINCE_SHIFT: u32 = 35;
const SINCE_MASK: u64 = (1 << 29) - 1;

/// The largest failure threshold a breaker accepts.
pub const MAX_FAILURE_THRESHOLD: u32 = FAIL_MASK as u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Word {
    state: BreakerState,
    exp: u64,
    failures: u64,
    epoch: u64,
    since: u64,
}

impl Word {
    fn unpack(w: u64) -> Self {
        let state = match w & STATE_BITS {
            0 => BreakerState::Closed,
            1 => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        };
        Self {
            state,
            exp: (w >> EXP_SHIFT) & EXP_MASK,
            failures: (w >> FAIL_SHIFT) & FAIL_MASK,
            epoch: (w >> EPOCH_SHIFT) & EPOCH_MASK,
            since: w >> SINCE_SHIFT,
        }
    }

    fn pack(self) -> u64 {
        let state = match self.state {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        };
        state
            | (self.exp.min(EXP_MASK) << EXP_SHIFT)
            | (self.failures.min(FAIL_MASK) << FAIL_SHIFT)
            | ((self.epoch & EPOCH_MASK) << EPOCH_SHIFT)
            | ((self.since & SINCE_MASK) << SINCE_SHIFT)
    }

    /// Milliseconds from `since` to `now`, on the wrapping 29-bit clock (good for open
    /// periods up to about six days; they are at most a day).
    fn elapsed(self, now_ms: u64) -> u64 {
        (now_ms.wrapping_sub(self.since)) & SINCE_MASK
    }

    /// The next state, in a new epoch: permits of the old one become stale.
    fn enter(self, state: BreakerState, now_ms: u64) -> Self {
        Self {
            state,
            failures: 0,
            epoch: (self.epoch + 1) & EPOCH_MASK,
            since: now_ms & SINCE_MASK,
            ..self
        }
    }
}

/// A lock-free circuit breaker: closed -> open after `failure_threshold` consecutive
/// failures -> half-open after the reset timeout (doubling after each failed trial, up to the
/// maximum) -> one trial call: success closes, failure reopens.
///
/// The whole state is one atomic word, so concurrent callers never see a torn state and every
/// transition is won by exactly one of them (checked with loom). Time is passed in by the
/// caller as milliseconds on a monotonic clock, which keeps the machine deterministic.
///
/// A trial that is never reported (its call was cancelled) does not wedge the breaker: once
/// another reset timeout has passed, a new trial is let through, and the lost one's late
/// report is ignored.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use apiary_supervisor::{BreakerConfig, BreakerState, CircuitBreaker, Transition};
///
/// let breaker = CircuitBreaker::new(
///     BreakerConfig::default().failure_threshold(2).reset_timeout(Duration::from_millis(100)),
/// );
/// let p = breaker.try_acquire(0)?;
/// assert_eq!(breaker.on_failure(p, 0), None);
/// let p = breaker.try_acquire(1)?;
/// assert_eq!(breaker.on_failure(p, 1), Some(Transition::Opened));
/// assert!(breaker.try_acquire(50).is_err()); // open: fail fast
///
/// let trial = breaker.try_acquire(101)?; // the reset timeout passed
/// assert!(trial.is_trial());
/// assert!(breaker.try_acquire(102).is_err(), "only one trial at a time");
/// assert_eq!(breaker.on_success(trial), Some(Transition::Closed));
/// assert_eq!(breaker.state(), BreakerState::Closed);
/// # Ok::<(), apiary_supervisor::BreakerOpen>(())
/// ```
#[derive(Debug)]
pub struct CircuitBreaker {
    word: AtomicU64,
    threshold: u64,
    // Some((rate, window calls)) when the breaker opens on a failure rate.
    rate: Option<(f64, u64)>,
    reset_ms: u64,
    max_reset_ms: u64,
}

impl CircuitBreaker {
    /// A closed breaker with these settings (thresholds above
    /// [`MAX_FAILURE_THRESHOLD`] are clamped to it).
    pub fn new(config: BreakerConfig) -> Self {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
        let closed = Word {
            state: BreakerState::Closed,
            exp: 0,
            failures: 0,
            epoch: 0,
            since: 0,
        };
        Self {
            word: AtomicU64::new(closed.pack()),
            threshold: u64::from(
                config
                    .failure_threshold_value()
                    .clamp(1, MAX_FAILURE_THRESHOLD),
            ),
            rate: config.failure_rate_value().map(|r| {
                let window = config.window_value().clamp(1, MAX_FAILURE_THRESHOLD);
                (r, u64::from(window))
            }),
            reset_ms: ms(config.reset_timeout_value()),
            max_reset_ms: ms(config.max_reset_timeout_value()).min(SINCE_MASK / 2),
        }
    }

    /// The state now.
    pub fn state(&self) -> BreakerState {
        Word::unpack(self.word.load(Ordering::Acquire)).state
    }

    /// Consecutive failures counted while closed.
    pub fn failures(&self) -> u32 {
        Word::unpack(self.word.load(Ordering::Acquire)).failures as u32
    }

    /// The open period after `exp` failed trials.
    fn open_for(&self, exp: u64) -> u64 {
        self.reset_ms
            .saturating_mul(1u64 << exp.min(40))
            .min(self.max_reset_ms)
    }

    /// Asks to make a call at `now_ms`.
    ///
    /// # Errors
    ///
    /// [`BreakerOpen`] while the breaker is open, or half-open with its trial in flight; it
    /// says how long until a trial may be let through.
    pub fn try_acquire(&self, now_ms: u64) -> Result<Permit, BreakerOpen> {
        let mut cur = self.word.load(Ordering::Acquire);
        loop {
            let w = Word::unpack(cur);
            if w.state == BreakerState::Closed {
                return Ok(Permit {
                    trial: false,
                    epoch: w.epoch,
                });
            }
            let open_for = self.open_for(w.exp);
            let elapsed = w.elapsed(now_ms);
            if elapsed < open_for {
                return Err(BreakerOpen::new(Duration::from_millis(open_for - elapsed)));
            }
            // Open past its timeout, or a half-open trial that never reported: let one trial
            // through, in an epoch of its own, stamped now so nobody else gets one until
            // another timeout passes.
            let next = w.enter(BreakerState::HalfOpen, now_ms);
            match self.word.compare_exchange_weak(
                cur,
                next.pack(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Ok(Permit {
                        trial: true,
                        epoch: next.epoch,
                    })
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// Reports a successful call. Returns the transition it caused, if any.
    pub fn on_success(&self, permit: Permit) -> Option<Transition> {
        self.update(permit, |w| match (permit.trial, w.state) {
            (false, BreakerState::Closed) => self.closed_report(w, false, 0),
            (true, BreakerState::HalfOpen) => Some((
                Word {
                    exp: 0,
                    ..w.enter(BreakerState::Closed, 0)
                },
                Some(Transition::Closed),
            )),
            _ => None,
        })
    }

    /// Reports a failed call at `now_ms` (a task past its deadline counts as failed).
    /// Returns the transition it caused, if any.
    pub fn on_failure(&self, permit: Permit, now_ms: u64) -> Option<Transition> {
        self.update(permit, |w| match (permit.trial, w.state) {
            (false, BreakerState::Closed) => self.closed_report(w, true, now_ms),
            (true, BreakerState::HalfOpen) => {
                // Grow the open period only while it is below the maximum.
                let exp = if self.open_for(w.exp) < self.max_reset_ms {
                    w.exp + 1
                } else {
                    w.exp
                };
                let open = Word {
                    exp,
                    ..w.enter(BreakerState::Open, now_ms)
                };
                Some((open, Some(Transition::Reopened)))
            }
            _ => None,
        })
    }

    /// A call's outcome while closed: counts it, and opens the breaker when the threshold
    /// (consecutive failures) or the failure rate of a full window is reached.
    fn closed_report(
        &self,
        w: Word,
        failed: bool,
        now_ms: u64,
    ) -> Option<(Word, Option<Transition>)> {
        let open = || {
            let open = Word {
                exp: 0,
                ..w.enter(BreakerState::Open, now_ms)
            };
            Some((open, Some(Transition::Opened)))
        };
        match self.rate {
            None if failed => {
                let failures = w.failures + 1;
                if failures >= self.threshold {
                    open()
                } else {
                    Some((Word { failures, ..w }, None))
                }
            }
            // A success ends a run of consecutive failures.
            None if w.failures > 0 => Some((Word { failures: 0, ..w }, None)),
            None => None,
            Some((rate, window)) => {
                let calls = w.since + 1;
                let failures = w.failures + u64::from(failed);
                if calls < window {
                    Some((
                        Word {
                            failures,
                            since: calls,
                            ..w
                        },
                        None,
                    ))
                } else if failures as f64 >= rate * calls as f64 {
                    open()
                } else {
                    // The window is over and healthy: start the next one.
                    Some((
                        Word {
                            failures: 0,
                            since: 0,
                            ..w
                        },
                        None,
                    ))
                }
            }
        }
    }

    /// Applies a report to the state word with a compare-and-swap loop. `next` sees the
    /// current state and gives the new one (and its transition), or `None` when the report
    /// changes nothing; a permit from another epoch never changes anything.
    fn update(
        &self,
        permit: Permit,
        next: impl Fn(Word) -> Option<(Word, Option<Transition>)>,
    ) -> Option<Transition> {
        let mut cur = self.word.load(Ordering::Acquire);
        loop {
            let w = Word::unpack(cur);
            if w.epoch != permit.epoch {
                return None;
            }
            let (new, transition) = next(w)?;
            match self.word.compare_exchange_weak(
                cur,
                new.pack(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return transition,
                Err(actual) => cur = actual,
            }
        }
    }
}

#[cfg(all(test, not(apiary_loom)))]
mod tests {
    use super::*;

    fn breaker(threshold: u32, reset: u64, max: u64) -> CircuitBreaker {
        CircuitBreaker::new(
            BreakerConfig::default()
                .failure_threshold(threshold)
                .reset_timeout(Duration::from_millis(reset))
                .max_reset_timeout(Duration::from_millis(max)),
        )
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let b = breaker(3, 10, 100);
        for _ in 0..2 {
            b.on_failure(b.try_acquire(0).unwrap(), 0);
        }
        assert_eq!(b.failures(), 2);
        b.on_success(b.try_acquire(0).unwrap());
        assert_eq!(b.failures(), 0);
        for _ in 0..2 {
            assert_eq!(b.on_failure(b.try_acquire(0).unwrap(), 0), None);
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn every_transition_in_order() {
        let b = breaker(1, 100, 1_000);
        assert_eq!(
            b.on_failure(b.try_acquire(0).unwrap(), 0),
            Some(Transition::Opened)
        );
        assert_eq!(
            b.try_acquire(99).unwrap_err().retry_after(),
            Duration::from_millis(1)
        );
        let trial = b.try_acquire(100).unwrap();
        assert!(trial.is_trial());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.on_failure(trial, 100), Some(Transition::Reopened));
        // The second open period is twice the first.
        assert!(b.try_acquire(299).is_err());
        let trial = b.try_acquire(300).unwrap();
        assert_eq!(b.on_success(trial), Some(Transition::Closed));
        assert_eq!(b.state(), BreakerState::Closed);
        // Closing resets the growth.
        b.on_failure(b.try_acquire(400).unwrap(), 400);
        assert!(b.try_acquire(499).is_err());
        assert!(b.try_acquire(500).is_ok());
    }

    #[test]
    fn the_open_period_grows_to_its_maximum_and_stays() {
        let b = breaker(1, 100, 350);
        b.on_failure(b.try_acquire(0).unwrap(), 0);
        let mut now = 0;
        let mut periods = Vec::new();
        for _ in 0..5 {
            let wait = b.try_acquire(now).unwrap_err().retry_after().as_millis() as u64;
            periods.push(wait);
            now += wait;
            let trial = b.try_acquire(now).unwrap();
            b.on_failure(trial, now);
        }
        assert_eq!(periods, [100, 200, 350, 350, 350]);
    }

    #[test]
    fn stale_permits_decide_nothing() {
        let b = breaker(1, 100, 100);
        let stale = b.try_acquire(0).unwrap();
        b.on_failure(b.try_acquire(0).unwrap(), 0);
        assert_eq!(
            b.on_success(stale),
            None,
            "a success from before the opening"
        );
        assert_eq!(b.on_failure(stale, 1), None);
        assert_eq!(b.state(), BreakerState::Open);
        // Still stale after the breaker closed again: it belongs to an older epoch.
        let trial = b.try_acquire(100).unwrap();
        b.on_success(trial);
        assert_eq!(b.on_failure(stale, 101), None);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn a_permit_stays_stale_across_hundreds_of_transitions() {
        // 128 open/half-open cycles: 256 transitions, where the 8-bit epoch used to wrap.
        let b = breaker(1, 1, 1);
        let stale = b.try_acquire(0).unwrap();
        let mut now = 0;
        b.on_failure(b.try_acquire(now).unwrap(), now);
        for _ in 0..128 {
            now += 1;
            let trial = b.try_acquire(now).unwrap();
            assert!(trial.is_trial());
            b.on_failure(trial, now);
        }
        // The breaker reopened 128 times: its epoch moved on 1 + 256 times.
        now += 1;
        let trial = b.try_acquire(now).unwrap();
        assert_eq!(b.on_success(trial), Some(Transition::Closed));
        assert_eq!(b.on_failure(stale, now), None, "still stale");
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn a_lost_trial_is_retried_after_another_timeout() {
        let b = breaker(1, 100, 100);
        b.on_failure(b.try_acquire(0).unwrap(), 0);
        let lost = b.try_acquire(100).unwrap();
        assert!(b.try_acquire(150).is_err());
        let trial = b.try_acquire(200).unwrap();
        assert!(trial.is_trial());
        assert_eq!(
            b.on_failure(lost, 201),
            None,
            "the lost trial's late report is ignored"
        );
        assert_eq!(b.on_success(trial), Some(Transition::Closed));
    }

    #[test]
    fn a_failure_rate_over_a_window_of_calls_opens_it() {
        let b = CircuitBreaker::new(
            BreakerConfig::default()
                .failure_rate(0.5)
                .window(4)
                .reset_timeout(Duration::from_millis(100)),
        );
        // Window 1: 1 failure in 4 calls, below the rate: stays closed, counts start over.
        for failed in [true, false, false, false] {
            let p = b.try_acquire(0).unwrap();
            if failed {
                b.on_failure(p, 0)
            } else {
                b.on_success(p)
            };
        }
        assert_eq!(b.state(), BreakerState::Closed);
        // Window 2: failures interleaved with successes still open it at 2 of 4.
        let mut last = None;
        for failed in [true, false, true, false] {
            let p = b.try_acquire(1).unwrap();
            last = if failed {
                b.on_failure(p, 1)
            } else {
                b.on_success(p)
            };
        }
        assert_eq!(last, Some(Transition::Opened));
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn the_clock_may_wrap() {
        let b = breaker(1, 100, 100);
        let start = SINCE_MASK - 10;
        b.on_failure(b.try_acquire(start).unwrap(), start);
        assert!(b.try_acquire(start + 50).is_err());
        assert!(b.try_acquire(start + 100).unwrap().is_trial());
    }
}

#[cfg(all(test, apiary_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    fn breaker(threshold: u32) -> CircuitBreaker {
        CircuitBreaker::new(
            BreakerConfig::default()
                .failure_threshold(threshold)
                .reset_timeout(Duration::from_millis(10))
                .max_reset_timeout(Duration::from_millis(40)),
        )
    }

    /// Two callers race for the half-open trial: exactly one gets it.
    #[test]
    fn loom_only_one_trial_passes() {
        loom::model(|| {
            let b = Arc::new(breaker(1));
            b.on_failure(b.try_acquire(0).unwrap(), 0);
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let b = b.clone();
                    thread::spawn(move || b.try_acquire(10).ok())
                })
                .collect();
            let trials: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            assert_eq!(
                trials
                    .iter()
                    .filter(|p| p.is_some_and(|p| p.is_trial()))
                    .count(),
                1
            );
            assert_eq!(b.state(), BreakerState::HalfOpen);
        });
    }

    /// Concurrent failures at the threshold open the breaker once, and one caller hears it.
    #[test]
    fn loom_threshold_opens_exactly_once() {
        loom::model(|| {
            let b = Arc::new(breaker(2));
            let permit = b.try_acquire(0).unwrap();
            let handles: Vec<_> = (0..3)
                .map(|_| {
                    let b = b.clone();
                    thread::spawn(move || b.on_failure(permit, 1))
                })
                .collect();
            let opened = handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|t| *t == Some(Transition::Opened))
                .count();
            assert_eq!(opened, 1);
            assert_eq!(b.state(), BreakerState::Open);
        });
    }

    /// Failure-rate mode: concurrent reports that complete a failing window open the breaker
    /// once, and no report is lost from the count.
    #[test]
    fn loom_rate_window_opens_exactly_once() {
        loom::model(|| {
            let b = Arc::new(CircuitBreaker::new(
                BreakerConfig::default()
                    .failure_rate(0.5)
                    .window(3)
                    .reset_timeout(Duration::from_millis(10)),
            ));
            let permit = b.try_acquire(0).unwrap();
            b.on_success(permit);
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let b = b.clone();
                    thread::spawn(move || b.on_failure(permit, 1))
                })
                .collect();
            let opened = handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|t| *t == Some(Transition::Opened))
                .count();
            assert_eq!(opened, 1);
            assert_eq!(b.state(), BreakerState::Open);
        });
    }

    /// A trial's outcome races a late success from before the opening: only the trial
    /// decides, and the breaker ends closed.
    #[test]
    fn loom_trial_outcome_wins_over_stale_reports() {
        loom::model(|| {
            let b = Arc::new(breaker(1));
            let stale_permit = b.try_acquire(0).unwrap();
            b.on_failure(b.try_acquire(0).unwrap(), 0);
            let trial = b.try_acquire(10).unwrap();
            let b1 = b.clone();
            let stale = thread::spawn(move || b1.on_failure(stale_permit, 11));
            let b2 = b.clone();
            let decide = thread::spawn(move || b2.on_success(trial));
            assert_eq!(stale.join().unwrap(), None);
            assert_eq!(decide.join().unwrap(), Some(Transition::Closed));
            assert_eq!(b.state(), BreakerState::Closed);
        });
    }
}
