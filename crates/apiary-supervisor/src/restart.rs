use serde::{Deserialize, Serialize};

/// Which exits of a child its supervisor answers with a restart.
///
/// The names follow Erlang/OTP; in a manifest they are written `permanent`, `transient`
/// and `temporary`.
///
/// # Examples
///
/// ```
/// use apiary_supervisor::RestartType;
///
/// assert_eq!(RestartType::default(), RestartType::Permanent);
/// assert!(RestartType::Permanent.restarts_after(true));
/// assert!(!RestartType::Temporary.restarts_after(false));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartType {
    /// Always restarted, whatever the exit.
    #[default]
    Permanent,
    /// Restarted only after an abnormal exit (a failure or a panic).
    Transient,
    /// Never restarted.
    Temporary,
}

impl RestartType {
    /// Whether a child of this type is restarted after an exit; `normal` is true for a
    /// clean stop and false for a failure.
    pub fn restarts_after(self, normal: bool) -> bool {
        match self {
            Self::Permanent => true,
            Self::Transient => !normal,
            Self::Temporary => false,
        }
    }
}
