//! Money, counted in whole nanodollars so that budgets can be reserved with atomic integers,
//! and the price table that turns tokens into money.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::chat::Usage;

/// An amount of US dollars, in nanodollars (10⁻⁹ $).
///
/// ```
/// use apiary_llm::Money;
///
/// let m = Money::from_dollars(0.25);
/// assert_eq!(m.nanos(), 250_000_000);
/// assert_eq!(m.to_string(), "$0.250000");
/// ```
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Money(u64);

impl Money {
    /// Zero.
    pub const ZERO: Money = Money(0);

    /// An amount in dollars (negative and NaN amounts are zero).
    pub fn from_dollars(dollars: f64) -> Self {
        Money((dollars.max(0.0) * 1e9).round() as u64)
    }

    /// An amount in nanodollars.
    pub const fn from_nanos(nanos: u64) -> Self {
        Money(nanos)
    }

    /// The amount in nanodollars.
    pub const fn nanos(self) -> u64 {
        self.0
    }

    /// The amount in dollars.
    pub fn dollars(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// The sum, saturating.
    pub fn saturating_add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${:.6}", self.dollars())
    }
}

/// What a model costs, in dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Per million prompt tokens.
    pub input: f64,
    /// Per million answer tokens.
    pub output: f64,
    /// Per million prompt tokens read from the provider's cache (default: `input`).
    #[serde(default)]
    pub cached_input: Option<f64>,
}

impl Price {
    /// A price of `input` and `output` dollars per million tokens.
    pub fn per_million(input: f64, output: f64) -> Self {
        Self {
            input,
            output,
            cached_input: None,
        }
    }

    /// What `usage` costs.
    pub fn cost(&self, usage: &Usage) -> Money {
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let fresh = usage.input_tokens - cached;
        // $ per million tokens is 1,000 nanodollars per token.
        let nanos = fresh as f64 * self.input * 1e3
            + cached as f64 * self.cached_input.unwrap_or(self.input) * 1e3
            + usage.output_tokens as f64 * self.output * 1e3;
        Money(nanos.round() as u64)
    }
}

/// Prices by model name.
///
/// ```
/// use apiary_llm::{Price, Prices, Usage};
///
/// let prices = Prices::new().with("gpt-4o-mini", Price::per_million(0.15, 0.60));
/// let usage = Usage { input_tokens: 1_000_000, output_tokens: 500_000, cached_input_tokens: 0 };
/// assert_eq!(prices.cost("gpt-4o-mini", &usage).unwrap().dollars(), 0.45);
/// assert!(prices.cost("unknown", &usage).is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Prices(HashMap<String, Price>);

impl Prices {
    /// An empty table: nothing is priced.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the price of `model`.
    pub fn with(mut self, model: impl Into<String>, price: Price) -> Self {
        self.0.insert(model.into(), price);
        self
    }

    /// The price of `model`, if known.
    pub fn get(&self, model: &str) -> Option<&Price> {
        self.0.get(model)
    }

    /// What `usage` of `model` costs, if the model is priced.
    pub fn cost(&self, model: &str, usage: &Usage) -> Option<Money> {
        self.get(model).map(|p| p.cost(usage))
    }
}
