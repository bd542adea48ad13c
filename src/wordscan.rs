//! Looking for rare bytes eight at a time, for the two line writers: the decision log's JSON
//! strings ([`audit`](crate::audit)) and the log line's values ([`logfmt`](crate::logfmt)). Both
//! scan every value they write, on every request, for bytes that need escaping or quoting and
//! almost never occur, so the common case is a run without any: a word at a time it takes an
//! eighth of the loop iterations.
//!
//! A set is described once ([`Bytes`]) and tested both ways from that description: a word with
//! the classic bit tricks (any byte equal to `b`, any byte below `n`), which are exact for the
//! word as a whole, then byte by byte inside the first word that has one. The tests are
//! inlined into each caller, where the set is a constant and its loops unroll: called with the
//! set as data they cost about 1.5k instructions per request more (callgrind).

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// A set of bytes: every byte below `below` (at most 0x80), the bytes of `any_of`, and with
/// `high` every byte from 0x80 up.
#[derive(Debug, Clone, Copy)]
pub struct Bytes {
    pub below: u8,
    pub any_of: &'static [u8],
    pub high: bool,
}

impl Bytes {
    /// Whether `b` is in the set.
    #[inline(always)]
    // Not `contains`: for bytes that is a `memchr` call for every byte tested (+0.5k
    // instructions per request); this loop over a constant set unrolls.
    #[allow(clippy::manual_contains)]
    pub fn has(&self, b: u8) -> bool {
        b < self.below || (self.high && b >= 0x80) || self.any_of.iter().any(|&x| x == b)
    }

    /// Whether some byte of `word` is in the set.
    #[inline(always)]
    fn in_word(&self, word: u64) -> bool {
        any_below(word, self.below)
            || (self.high && word & HIGH != 0)
            || self
                .any_of
                .iter()
                .any(|&b| any_below(word ^ (ONES * u64::from(b)), 1))
    }
}

/// Whether some byte of `word` is below `n` (`n` at most 0x80).
const fn any_below(word: u64, n: u8) -> bool {
    word.wrapping_sub(ONES * n as u64) & !word & HIGH != 0
}

/// The position of the first byte of `bytes` in `set`.
#[inline(always)]
pub fn find(bytes: &[u8], set: &Bytes) -> Option<usize> {
    let mut at = 0;
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        if set.in_word(u64::from_le_bytes(word)) {
            break;
        }
        at += 8;
    }
    bytes[at..].iter().position(|&b| set.has(b)).map(|n| at + n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const JSON: Bytes = Bytes {
        below: 0x20,
        any_of: b"\"\\",
        high: false,
    };
    const NOT_ASCII: Bytes = Bytes {
        below: 0,
        any_of: &[],
        high: true,
    };

    #[test]
    fn every_byte_value_is_found_at_every_offset_of_a_word() {
        // A plain run around one byte of each value, at each position of two words and a tail:
        // the word test must neither miss it nor report a word without it.
        for value in 0..=u8::MAX {
            for at in 0..19 {
                let mut bytes = vec![b'a'; 19];
                bytes[at] = value;
                let json = (value < 0x20 || value == b'"' || value == b'\\').then_some(at);
                assert_eq!(find(&bytes, &JSON), json, "{value:#x} at {at}");
                let high = (value >= 0x80).then_some(at);
                assert_eq!(find(&bytes, &NOT_ASCII), high, "{value:#x} at {at}");
            }
        }
    }

    #[test]
    fn a_byte_next_to_its_neighbour_values_is_told_apart() {
        // The subtraction borrows across bytes; values just above a limit next to one just
        // below must not be taken for a hit.
        let word = u64::from_le_bytes([0x20, 0x21, 0x23, 0x5b, 0x5d, 0xff, 0x80, 0x7f]);
        assert!(!JSON.in_word(word));
        assert!(any_below(word, 0x21));
        let set = |any_of| Bytes {
            below: 0,
            any_of,
            high: false,
        };
        assert!(set(&[0x7f]).in_word(word));
        assert!(!set(b"=").in_word(word));
    }

    proptest! {
        #[test]
        fn finds_what_a_byte_by_byte_search_finds(
            // Mostly plain letters, so that hits also come late and in later words.
            bytes in proptest::collection::vec(prop_oneof![20 => b'a'..=b'z', 1 => any::<u8>()], 0..64)
        ) {
            for set in [JSON, NOT_ASCII] {
                prop_assert_eq!(find(&bytes, &set), bytes.iter().position(|&b| set.has(b)));
            }
        }
    }
}
