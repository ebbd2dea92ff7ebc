//! Keys are `namespace/name` paths; the namespace is the first segment.

use crate::MemoryError;

/// Checks `key` and returns its namespace.
///
/// A key has at least two non-empty `/`-separated segments, e.g. `swarm/phase1/design`
/// (namespace `swarm`). Keys are case-sensitive and at most 1 KiB.
pub fn namespace_of(key: &str) -> Result<&str, MemoryError> {
    let invalid = |reason| MemoryError::InvalidKey {
        key: key.to_owned(),
        reason,
    };
    if key.len() > 1024 {
        return Err(invalid("longer than 1024 bytes"));
    }
    let Some((namespace, rest)) = key.split_once('/') else {
        return Err(invalid("expected `namespace/name`"));
    };
    if namespace.is_empty() {
        return Err(invalid("empty namespace"));
    }
    if rest.is_empty() || rest.split('/').any(str::is_empty) {
        return Err(invalid("empty segment"));
    }
    Ok(namespace)
}

/// The namespace a prefix or glob pins down: its first segment, if that segment is complete
/// and (for globs) literal.
pub(crate) fn pinned_namespace(pattern: &str, glob: bool) -> Option<&str> {
    let (first, _) = pattern.split_once('/')?;
    let literal = !glob || !first.contains(['*', '?', '[', '{', '\\']);
    (!first.is_empty() && literal).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces() {
        assert_eq!(namespace_of("swarm/phase1/design").unwrap(), "swarm");
        for bad in ["plain", "/x", "ns/", "ns//x", "ns/x/"] {
            assert!(
                matches!(namespace_of(bad), Err(MemoryError::InvalidKey { .. })),
                "{bad}"
            );
        }
        assert_eq!(pinned_namespace("swarm/phase", false), Some("swarm"));
        assert_eq!(pinned_namespace("swa", false), None);
        assert_eq!(pinned_namespace("sw*/x", true), None);
        assert_eq!(pinned_namespace("swarm/*", true), Some("swarm"));
    }
}
