//! Word frequencies: the sample crate of apiary's quality-fleet demo.

use std::collections::HashMap;

/// Counts the words of `text` (case-insensitive, split on anything not alphanumeric) and
/// returns them most frequent first, ties in alphabetical order.
///
/// ```
/// let top = wordfreq::frequencies("The cat and the hat");
/// assert_eq!(top[0], ("the".to_string(), 2));
/// ```
pub fn frequencies(text: &str) -> Vec<(String, usize)> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        *counts.entry(word.to_lowercase()).or_default() += 1;
    }
    let mut sorted: Vec<(String, usize)> = counts.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_case_insensitively() {
        assert_eq!(
            frequencies("a A b"),
            vec![("a".to_string(), 2), ("b".to_string(), 1)]
        );
    }

    #[test]
    fn empty_text_has_no_words() {
        assert!(frequencies(" ,. ").is_empty());
    }

    #[test]
    fn ties_are_alphabetical() {
        let words: Vec<String> = frequencies("b a c").into_iter().map(|(w, _)| w).collect();
        assert_eq!(words, ["a", "b", "c"]);
    }
}
