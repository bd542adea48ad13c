//! Looking for rare bytes eight at a time, for the two line writers: the decision log's JSON
//! strings ([`audit`](crate::audit)) and the log line's values ([`logfmt`](crate::logfmt)). Both
//! scan every value they write, on every request, for bytes that need escaping or quoting and
//! almost never occur, so the common case is a run without any: a word at a time it takes an
//! eighth of the loop iterations.
//!
//! A word is tested with the classic bit tricks (any byte equal to `b`, any byte below `n`),
//! which are exact for the word as a whole; the byte test then finds the position inside the
//! first word that has one.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Whether some byte of `word` is below `n` (`n` at most 0x80).
pub const fn any_below(word: u64, n: u8) -> bool {
    word.wrapping_sub(ONES * n as u64) & !word & HIGH != 0
}

/// Whether some byte of `word` equals `b`.
pub const fn any_eq(word: u64, b: u8) -> bool {
    any_below(word ^ (ONES * b as u64), 1)
}

/// Whether some byte of `word` is 0x80 or above (not ASCII).
pub const fn any_high(word: u64) -> bool {
    word & HIGH != 0
}

/// The position of the first byte of `bytes` for which `hit` holds. `word_hit` must hold for
/// an eight-byte word (read little-endian) exactly when `hit` holds for one of its bytes.
pub fn find(
    bytes: &[u8],
    word_hit: impl Fn(u64) -> bool,
    hit: impl Fn(u8) -> bool,
) -> Option<usize> {
    let mut at = 0;
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        if word_hit(u64::from_le_bytes(word)) {
            break;
        }
        at += 8;
    }
    bytes[at..].iter().position(|&b| hit(b)).map(|n| at + n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json_special(b: u8) -> bool {
        b < 0x20 || b == b'"' || b == b'\\'
    }

    fn json_word(w: u64) -> bool {
        any_below(w, 0x20) || any_eq(w, b'"') || any_eq(w, b'\\')
    }

    #[test]
    fn every_byte_value_is_found_at_every_offset_of_a_word() {
        // A plain run around one byte of each value, at each position of two words and a tail:
        // the word test must neither miss it nor report a word without it.
        for value in 0..=u8::MAX {
            for at in 0..19 {
                let mut bytes = vec![b'a'; 19];
                bytes[at] = value;
                let expected = json_special(value).then_some(at);
                assert_eq!(
                    find(&bytes, json_word, json_special),
                    expected,
                    "{value:#x} at {at}"
                );
                let high = (value >= 0x80).then_some(at);
                assert_eq!(
                    find(&bytes, any_high, |b| b >= 0x80),
                    high,
                    "{value:#x} at {at}"
                );
            }
        }
    }

    #[test]
    fn a_byte_next_to_its_neighbour_values_is_told_apart() {
        // The subtraction borrows across bytes; values just above a limit next to one just
        // below must not be taken for a hit.
        let word = u64::from_le_bytes([0x20, 0x21, 0x23, 0x5b, 0x5d, 0xff, 0x80, 0x7f]);
        assert!(!json_word(word));
        assert!(any_below(word, 0x21));
        assert!(any_eq(word, 0x7f));
        assert!(!any_eq(word, b'='));
    }

    proptest! {
        #[test]
        fn finds_what_a_byte_by_byte_search_finds(
            // Mostly plain letters, so that hits also come late and in later words.
            bytes in proptest::collection::vec(prop_oneof![20 => b'a'..=b'z', 1 => any::<u8>()], 0..64)
        ) {
            prop_assert_eq!(
                find(&bytes, json_word, json_special),
                bytes.iter().position(|&b| json_special(b))
            );
        }
    }
}
