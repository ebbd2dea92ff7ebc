use std::ops::Range;

use serde::{Deserialize, Serialize};

/// Which children a supervisor restarts when one fails (Erlang/OTP's strategies).
///
/// Children are numbered in start order.
///
/// # Examples
///
/// ```
/// use apiary_supervisor::Strategy;
///
/// assert_eq!(Strategy::OneForOne.affected(2, 5), 2..3);
/// assert_eq!(Strategy::OneForAll.affected(2, 5), 0..5);
/// assert_eq!(Strategy::RestForOne.affected(2, 5), 2..5);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Restart only the failed child.
    #[default]
    OneForOne,
    /// Restart every child.
    OneForAll,
    /// Restart the failed child and every child started after it.
    RestForOne,
}

impl Strategy {
    /// The children (by start index) to restart when child `failed` of `children` fails.
    pub fn affected(self, failed: usize, children: usize) -> Range<usize> {
        match self {
            Self::OneForOne => failed..failed + 1,
            Self::OneForAll => 0..children,
            Self::RestForOne => failed..children,
        }
    }
}
