//! Budgets in tokens and money, enforced before each call: the call's worst case is
//! reserved first, and settled to what it really used after.
//!
//! A budget keeps two numbers per resource: what is *committed* (spent plus reserved by calls
//! in flight) and what is *spent*. A reservation is one compare-and-swap on the committed
//! count, refused if it would pass the limit, so agents calling at the same time can never
//! overspend together; settling moves the committed count to the real usage. The state is
//! lock-free and checked with loom (`--cfg apiary_loom`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::money::Money;
use crate::sync::{AtomicU64, Ordering};

/// What a budget limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// Tokens, input and output together.
    Tokens,
    /// Money, from the price table.
    Cost,
}

/// Limits of a budget: tokens, money, or both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// The most tokens (input and output together).
    #[serde(default)]
    pub tokens: Option<u64>,
    /// The most money (needs prices for the models used).
    #[serde(default)]
    pub cost: Option<Money>,
}

impl Limits {
    /// No limit.
    pub fn none() -> Self {
        Self::default()
    }

    /// At most `n` tokens.
    pub fn tokens(mut self, n: u64) -> Self {
        self.tokens = Some(n);
        self
    }

    /// At most `cost`.
    pub fn cost(mut self, cost: Money) -> Self {
        self.cost = Some(cost);
        self
    }

    /// Whether anything is limited.
    pub fn is_limited(&self) -> bool {
        self.tokens.is_some() || self.cost.is_some()
    }
}

/// A call refused by a budget: which budget, which resource, its limit, what was spent and
/// reserved, and what the call would have needed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub struct BudgetExceeded {
    /// The budget (`swarm`, `agent coder`, `task 17`).
    pub budget: String,
    /// What ran out.
    pub resource: Resource,
    /// Its limit (tokens, or nanodollars).
    pub limit: u64,
    /// Spent so far.
    pub spent: u64,
    /// Reserved by calls in flight.
    pub reserved: u64,
    /// What this call needed at worst.
    pub wanted: u64,
}

impl fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |n: u64| match self.resource {
            Resource::Tokens => format!("{n} tokens"),
            Resource::Cost => Money::from_nanos(n).to_string(),
        };
        write!(
            f,
            "budget `{}` of {}: {} spent, {} reserved by calls in flight; the next call needs up to {}",
            self.budget,
            show(self.limit),
            show(self.spent),
            show(self.reserved),
            show(self.wanted)
        )
    }
}

/// A budget: limits, and what has been spent and reserved against them. Share it (in an
/// `Arc`) between everything it covers.
///
/// ```
/// use apiary_llm::{Budget, Limits, Money};
///
/// let budget = Budget::new("swarm", Limits::none().tokens(1_000));
/// let held = budget.reserve(800, Money::ZERO)?;      // a call's worst case
/// assert!(budget.reserve(300, Money::ZERO).is_err()); // 800 + 300 > 1,000: not made
/// budget.settle(held, 250, Money::ZERO);              // it used 250
/// assert_eq!(budget.spent().0, 250);
/// assert!(budget.reserve(300, Money::ZERO).is_ok());
/// # Ok::<(), apiary_llm::BudgetExceeded>(())
/// ```
#[derive(Debug)]
pub struct Budget {
    name: String,
    limits: Limits,
    committed_tokens: AtomicU64,
    committed_cost: AtomicU64,
    spent_tokens: AtomicU64,
    spent_cost: AtomicU64,
}

/// What a successful [`Budget::reserve`] holds until it is settled or released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a reservation holds budget until settled or released"]
pub struct Reservation {
    tokens: u64,
    cost: u64,
}

impl Budget {
    /// A budget called `name` with `limits`.
    pub fn new(name: impl Into<String>, limits: Limits) -> Self {
        Self {
            name: name.into(),
            limits,
            committed_tokens: AtomicU64::new(0),
            committed_cost: AtomicU64::new(0),
            spent_tokens: AtomicU64::new(0),
            spent_cost: AtomicU64::new(0),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Reserves a call's worst case, or refuses it if the budget cannot cover it.
    ///
    /// # Errors
    ///
    /// [`BudgetExceeded`] naming the resource that ran out; nothing stays reserved.
    pub fn reserve(&self, tokens: u64, cost: Money) -> Result<Reservation, BudgetExceeded> {
        self.take(Resource::Tokens, tokens)?;
        if let Err(e) = self.take(Resource::Cost, cost.nanos()) {
            self.committed_tokens.fetch_sub(tokens, Ordering::AcqRel);
            return Err(e);
        }
        Ok(Reservation {
            tokens,
            cost: cost.nanos(),
        })
    }

    fn take(&self, resource: Resource, want: u64) -> Result<(), BudgetExceeded> {
        let (committed, spent, limit) = match resource {
            Resource::Tokens => (
                &self.committed_tokens,
                &self.spent_tokens,
                self.limits.tokens,
            ),
            Resource::Cost => (
                &self.committed_cost,
                &self.spent_cost,
                self.limits.cost.map(Money::nanos),
            ),
        };
        let Some(limit) = limit else {
            committed.fetch_add(want, Ordering::AcqRel);
            return Ok(());
        };
        let mut current = committed.load(Ordering::Acquire);
        loop {
            if current.saturating_add(want) > limit {
                let spent = spent.load(Ordering::Acquire).min(current);
                return Err(BudgetExceeded {
                    budget: self.name.clone(),
                    resource,
                    limit,
                    spent,
                    reserved: current - spent,
                    wanted: want,
                });
            }
            match committed.compare_exchange_weak(
                current,
                current + want,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => current = now,
            }
        }
    }

    /// Settles a reservation to what the call really used (which may exceed the
    /// reservation when the prompt estimate was low: the budget then shows the overrun and
    /// refuses the next call).
    pub fn settle(&self, held: Reservation, tokens: u64, cost: Money) {
        adjust(&self.committed_tokens, held.tokens, tokens);
        adjust(&self.committed_cost, held.cost, cost.nanos());
        self.spent_tokens.fetch_add(tokens, Ordering::AcqRel);
        self.spent_cost.fetch_add(cost.nanos(), Ordering::AcqRel);
    }

    /// Gives a reservation back unused (the call was not made).
    pub fn release(&self, held: Reservation) {
        self.settle(held, 0, Money::ZERO);
    }

    /// Counts what was spent before (a resumed run's earlier spending, from a journal).
    pub fn restore(&self, tokens: u64, cost: Money) {
        self.committed_tokens.fetch_add(tokens, Ordering::AcqRel);
        self.committed_cost
            .fetch_add(cost.nanos(), Ordering::AcqRel);
        self.spent_tokens.fetch_add(tokens, Ordering::AcqRel);
        self.spent_cost.fetch_add(cost.nanos(), Ordering::AcqRel);
    }

    /// Counts what this budget had spent in an earlier run of the same journal (see
    /// [`tally_names`](Self::tally_names)): a resumed run does not get its money back.
    ///
    /// # Errors
    ///
    /// [`apiary_journal::JournalError`] if the journal cannot be read.
    pub fn restore_from(
        &self,
        journal: &apiary_journal::Journal,
    ) -> Result<(), apiary_journal::JournalError> {
        let (tokens, nanos) = self.tally_names();
        let tokens = journal.tally(&tokens)?;
        let cost = Money::from_nanos(journal.tally(&nanos)?);
        self.restore(tokens, cost);
        Ok(())
    }

    /// The journal tallies an LLM agent adds this budget's spending to, in a journaled task:
    /// `budget/<name>/tokens` and `budget/<name>/nanodollars`.
    pub fn tally_names(&self) -> (String, String) {
        (
            format!("budget/{}/tokens", self.name),
            format!("budget/{}/nanodollars", self.name),
        )
    }

    /// Tokens and money spent so far (settled calls).
    pub fn spent(&self) -> (u64, Money) {
        (
            self.spent_tokens.load(Ordering::Acquire),
            Money::from_nanos(self.spent_cost.load(Ordering::Acquire)),
        )
    }

    /// The share of the tightest limit spent or reserved, in `[0, 1]` (0 when unlimited).
    pub fn used_fraction(&self) -> f64 {
        let share = |committed: &AtomicU64, limit: Option<u64>| {
            limit.map_or(0.0, |l| {
                committed.load(Ordering::Acquire) as f64 / l.max(1) as f64
            })
        };
        share(&self.committed_tokens, self.limits.tokens)
            .max(share(
                &self.committed_cost,
                self.limits.cost.map(Money::nanos),
            ))
            .min(1.0)
    }
}

/// Moves `counter` from `held` to `actual`.
fn adjust(counter: &AtomicU64, held: u64, actual: u64) {
    if actual >= held {
        counter.fetch_add(actual - held, Ordering::AcqRel);
    } else {
        counter.fetch_sub(held - actual, Ordering::AcqRel);
    }
}

/// Reservations in several budgets at once (a task's, its agent's, the swarm's): all or none.
#[derive(Debug, Default)]
pub(crate) struct Held {
    held: Vec<(std::sync::Arc<Budget>, Reservation)>,
}

impl Held {
    /// Reserves in every budget of `budgets`, or in none.
    pub(crate) fn reserve(
        budgets: &[std::sync::Arc<Budget>],
        tokens: u64,
        cost: Money,
    ) -> Result<Self, BudgetExceeded> {
        let mut held = Held::default();
        for b in budgets {
            match b.reserve(tokens, cost) {
                Ok(r) => held.held.push((std::sync::Arc::clone(b), r)),
                Err(e) => {
                    held.release();
                    return Err(e);
                }
            }
        }
        Ok(held)
    }

    /// Settles every reservation to the real usage.
    pub(crate) fn settle(mut self, tokens: u64, cost: Money) {
        for (b, r) in self.held.drain(..) {
            b.settle(r, tokens, cost);
        }
    }

    fn release(&mut self) {
        for (b, r) in self.held.drain(..) {
            b.release(r);
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // A call abandoned (cancelled) before it was settled gives its reservation back.
        self.release();
    }
}

#[cfg(all(test, apiary_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    #[test]
    fn loom_concurrent_reservations_never_pass_the_limit() {
        loom::model(|| {
            let budget = Arc::new(Budget::new("swarm", Limits::none().tokens(100)));
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let b = Arc::clone(&budget);
                    loom::thread::spawn(move || match b.reserve(60, Money::ZERO) {
                        Ok(r) => {
                            b.settle(r, 40, Money::ZERO);
                            true
                        }
                        Err(_) => false,
                    })
                })
                .collect();
            let made: Vec<bool> = threads.into_iter().map(|t| t.join().unwrap()).collect();
            // 60 + 60 > 100: both may run only if one settled (to 40) before the other
            // reserved; what is spent never passes the limit.
            let (spent, _) = budget.spent();
            assert!(spent <= 100);
            assert_eq!(spent, 40 * made.iter().filter(|m| **m).count() as u64);
            assert_eq!(budget.committed_tokens.load(Ordering::Acquire), spent);
        });
    }

    #[test]
    fn loom_a_refused_cost_gives_the_tokens_back() {
        loom::model(|| {
            let budget = Arc::new(Budget::new(
                "agent",
                Limits::none().tokens(100).cost(Money::from_nanos(10)),
            ));
            let b = Arc::clone(&budget);
            let t = loom::thread::spawn(move || b.reserve(50, Money::from_nanos(8)).is_ok());
            let mine = budget.reserve(50, Money::from_nanos(8)).is_ok();
            let theirs = t.join().unwrap();
            // The money admits only one of the two, and the refused one holds no tokens.
            assert!(mine ^ theirs);
            assert_eq!(budget.committed_tokens.load(Ordering::Acquire), 50);
            assert_eq!(budget.committed_cost.load(Ordering::Acquire), 8);
        });
    }
}
