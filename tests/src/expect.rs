//! Checks on the messages `pcap` prints, shared by several test files.

/// Whether `word` occurs in `text` as a whole word (names may hold `.`, `_`, `-`).
pub fn has_word(text: &str, word: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')))
        .any(|w| w == word || w.trim_end_matches('.') == word)
}

/// Asserts an error message names `name` and says no capture is known by it.
pub fn assert_unknown_capture(err: &str, name: &str) {
    assert!(
        has_word(err, name),
        "the message should name {name:?}: {err}"
    );
    let lower = err.to_lowercase();
    assert!(
        ["unknown", "no capture", "not found", "no such"]
            .iter()
            .any(|w| lower.contains(w)),
        "the message should say {name:?} is unknown: {err}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_whole() {
        assert!(has_word("known: eth0, lo.", "lo"));
        assert!(has_word("capture web-1 not found", "web-1"));
        assert!(!has_word("loopback allowed", "lo"));
        assert!(has_word("socket /tmp/x/p.sock is gone", "/tmp/x/p.sock"));
    }
}
