use std::num::NonZeroUsize;

/// Limits on the size of a spawn batch.
///
/// `batch_size` caps the number of agents in one batch; `max_concurrency` caps the summed
/// weight (actors to start) of one batch. An agent heavier than `max_concurrency` gets a
/// batch of its own. The default sets no limit.
///
/// # Examples
///
/// ```
/// use apiary_planner::PlanLimits;
///
/// let limits = PlanLimits::default().batch_size(8).max_concurrency(32);
/// assert_eq!(limits.batch_size_value().map(|n| n.get()), Some(8));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanLimits {
    batch_size: Option<NonZeroUsize>,
    max_concurrency: Option<NonZeroUsize>,
}

impl PlanLimits {
    /// At most `n` agents per batch (`0` means no limit).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = NonZeroUsize::new(n);
        self
    }

    /// At most `n` actors started per batch (`0` means no limit).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = NonZeroUsize::new(n);
        self
    }

    /// The agent-count limit, if any.
    pub fn batch_size_value(&self) -> Option<NonZeroUsize> {
        self.batch_size
    }

    /// The actor-count limit, if any.
    pub fn max_concurrency_value(&self) -> Option<NonZeroUsize> {
        self.max_concurrency
    }

    /// Whether a batch holding `len` agents of summed weight `weight` may take one more of
    /// weight `next`. An empty batch always takes one.
    pub(crate) fn admits(&self, len: usize, weight: usize, next: usize) -> bool {
        if len == 0 {
            return true;
        }
        let by_count = self.batch_size.is_none_or(|n| len < n.get());
        let by_weight = self
            .max_concurrency
            .is_none_or(|n| weight.saturating_add(next) <= n.get());
        by_count && by_weight
    }
}
