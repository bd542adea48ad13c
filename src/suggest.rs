//! "Did you mean …?": the known name closest to a misspelt one, for the messages of rule files
//! (unknown keys and values) and of expressions (unknown functions).

/// Longer than every name a word could be a slip of (keys, values, functions).
const MAX_SLIP_BYTES: usize = 100;

/// `; did you mean "x"?` when one of `candidates` is near `word` (see [`closest`]), else
/// nothing: the end of an error naming what was expected.
pub fn hint<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(word, candidates)
        .map(|near| format!("; did you mean \"{near}\"?"))
        .unwrap_or_default()
}

/// The candidate closest to `word`, when it is close enough to be a slip: one edit away (more in
/// longer names; a swap of neighbours is one) and not all of it, or sharing most of its start
/// (`minimum` → `min`).
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // No slip of a name, and comparing a word of a megabyte with each name took seconds: the
    // measures below take time growing with the product of the lengths.
    if word.len() > MAX_SLIP_BYTES {
        return None;
    }
    candidates
        .into_iter()
        .map(|known| {
            let edits = strsim::damerau_levenshtein(word, known);
            let alike = strsim::jaro_winkler(word, known);
            (edits, alike, known)
        })
        .filter(|&(edits, alike, known)| {
            // A one-letter word is no slip of a one-letter name: it shares nothing with it.
            let near = edits <= (known.chars().count() / 3).max(1) && edits < word.chars().count();
            near || alike > 0.85
        })
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
        .map(|(.., known)| known)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn slips_find_their_name_and_other_words_none() {
        let keys = [
            "name", "when", "mode", "reason", "amount", "on_error", "min", "max",
        ];
        for (slip, meant) in [
            ("reasn", "reason"),
            ("ammount", "amount"),
            ("wehn", "when"),
            ("onerror", "on_error"),
            ("mx", "max"),
            ("minimum", "min"),
        ] {
            assert_eq!(closest(slip, keys), Some(meant), "{slip}");
        }
        for word in ["foo", "bogus", "deny", "x", "b"] {
            assert_eq!(closest(word, keys), None, "{word}");
        }
        let long = format!("reaso{}", "n".repeat(1_000_000));
        assert_eq!(closest(&long, keys), None);
    }
}
