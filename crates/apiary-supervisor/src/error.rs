use thiserror::Error;

/// A supervision setting that cannot work, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{field}`: {reason}")]
pub struct ConfigError {
    field: &'static str,
    reason: String,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }

    /// The name of the field at fault, as written in a manifest.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// Why the value is refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}
