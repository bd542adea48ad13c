//! Text from outside (a merchant's answer, a script, a request's fields) made fit to show:
//! to a buyer in a reason, or to an operator in a log line. Shared by the payload reader,
//! the rules loader and templates, the engine and the log line writer.

/// `text` as a buyer may be shown it: line breaks and tabs made spaces, other control
/// characters, text-direction controls and zero-width spaces (U+200B, the word joiner and
/// invisible operators U+2060–2064, U+FEFF) left out. Text from outside (a merchant's answer, a
/// script, a field name in a request) must not garble the payment window. The zero-width
/// joiners (U+200C, U+200D) stay: emoji sequences and some scripts are built with them.
pub fn for_buyers(text: String) -> String {
    if shown_as_is(&text) {
        text
    } else {
        text.chars().filter_map(shown).collect()
    }
}

/// `text` from outside as a buyer may be shown it ([`for_buyers`]), cut at `max` characters
/// ([`cut_chars`]); borrowed when it already is.
pub fn for_buyers_cut(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if shown_as_is(text) {
        return cut(text, max);
    }
    let mut shown = for_buyers(text.to_owned());
    cut_chars(&mut shown, max);
    std::borrow::Cow::Owned(shown)
}

/// Whether [`for_buyers`] leaves `text` as it is.
pub fn shown_as_is(text: &str) -> bool {
    text.chars().all(|c| shown(c) == Some(c))
}

/// A character as a buyer may be shown it (see [`for_buyers`]).
fn shown(c: char) -> Option<char> {
    match c {
        '\n' | '\r' | '\t' | '\u{85}' | '\u{2028}' | '\u{2029}' => Some(' '),
        '\u{61c}'
        | '\u{200b}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}'
        | '\u{feff}' => None,
        c if c.is_control() => None,
        c => Some(c),
    }
}

/// Cuts `text` after at most `max` characters, marking the cut with `…`: for text that comes
/// from outside (a merchant's answer, a script) into reasons, errors and log lines. The cut
/// falls between what a reader sees as characters, never inside one made of several (an emoji
/// with its skin tone or joined to another, a letter with its accents), which would show half
/// of it — unless that would keep nothing: text that is one character built of hundreds
/// (a letter under 600 combining marks, a run of conjoining jamo) is cut between its parts.
pub fn cut_chars(text: &mut String, max: usize) {
    use unicode_segmentation::UnicodeSegmentation;
    let Some((at, _)) = text.char_indices().nth(max) else {
        return;
    };
    let between_seen = text
        .grapheme_indices(true)
        .map(|(i, _)| i)
        .take_while(|&i| i <= at)
        .last()
        .unwrap_or(0);
    text.truncate(if between_seen > 0 { between_seen } else { at });
    text.push('…');
}

/// `text` cut at `max` characters ([`cut_chars`]); borrowed when it is no longer.
pub fn cut(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    // A character takes at least a byte, so a text of at most `max` bytes is not counted.
    if text.len() <= max || text.chars().nth(max).is_none() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut shown = text.to_owned();
    cut_chars(&mut shown, max);
    std::borrow::Cow::Owned(shown)
}

/// `message` with each quoted text in it (between two `"`) longer than `max` characters cut to
/// `max` ([`cut_chars`]): an error quoting what an operator wrote (a misspelt name, a duration, a
/// placeholder) stays a line they can read, however long that was. Borrowed when none is.
pub fn cut_quoted(message: &str, max: usize) -> std::borrow::Cow<'_, str> {
    let long = |quoted: &&str| quoted.len() > max && quoted.chars().nth(max).is_some();
    if message.len() <= max || !message.split('"').skip(1).step_by(2).any(|q| long(&q)) {
        return std::borrow::Cow::Borrowed(message);
    }
    let mut out = String::new();
    for (i, part) in message.split('"').enumerate() {
        if i > 0 {
            out.push('"');
        }
        if i % 2 == 1 {
            out.push_str(&cut(part, max));
        } else {
            out.push_str(part);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `value` as its `Display` writes it, stopped after `max` bytes (at a character boundary), and
/// whether it was cut. The writer fails once full, which stops the writing: a megabyte answer
/// or a map holding one string under thousands of keys costs no more than `max`.
pub fn display_within(value: impl std::fmt::Display, max: usize) -> (String, bool) {
    use std::fmt::Write;
    struct Bounded(String, usize);
    impl Write for Bounded {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let room = self.1 - self.0.len();
            if s.len() <= room {
                self.0.push_str(s);
                Ok(())
            } else {
                self.0.push_str(head_within(s, room));
                Err(std::fmt::Error)
            }
        }
    }
    let mut out = Bounded(String::new(), max);
    let cut = write!(out, "{value}").is_err();
    (out.0, cut)
}

/// `s` up to `max` bytes, cut at a character boundary.
pub fn head_within(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether `text` shows a buyer nothing: only whitespace and characters that take no room —
/// controls, format characters (zero-width space, joiners, text-direction marks, U+FEFF,
/// U+00AD), the Hangul fillers and the blank Braille pattern, which render as blanks, and the
/// object replacement character, which stands for something that is not there.
pub fn shows_nothing(text: &str) -> bool {
    text.chars().all(|c| {
        c.is_whitespace()
            || c.is_control()
            || hidden(c)
            || matches!(
                c,
                '\u{115F}'
                    | '\u{1160}'
                    | '\u{3164}'
                    | '\u{FFA0}'
                    | '\u{034F}'
                    | '\u{2800}'
                    | '\u{17B4}'
                    | '\u{17B5}'
                    | '\u{FFFC}'
            )
    })
}

/// A character above ASCII that a terminal or log viewer would not show as itself: C1 controls
/// (U+009B starts an escape sequence on many terminals), line and paragraph separators,
/// text-direction controls, and invisible format characters (U+200B, U+00AD, U+FEFF, tags)
/// that would make one id look like another. Exactly those `{:?}` escapes, so a quoted value
/// shows each as `\u{…}`.
pub fn hidden(c: char) -> bool {
    // Hangul syllables, the bulk of Korean reasons, are all shown: no table lookup.
    !c.is_ascii() && !('\u{AC00}'..='\u{D7A3}').contains(&c) && c.escape_debug().len() > 1
}

/// `text` in composed form (NFC): Hangul typed on a Mac, or in a file name it wrote, is
/// decomposed (NFD), other bytes than the same text typed elsewhere, though it looks the same.
pub fn nfc(text: &str) -> String {
    unicode_normalization::UnicodeNormalization::nfc(text).collect()
}

/// A character an editor shows as a blank, or not at all (pasted from a web page, a chat or a
/// word processor), named so an operator can find it, with what to type instead: where code or
/// YAML needs an ordinary space, or nothing. ASCII's own (a tab) are not among them.
pub fn unseen(c: char) -> Option<(String, &'static str)> {
    const SPACE: &str = "type an ordinary space";
    const DELETE: &str = "delete it (it came with pasted text)";
    let (what, fix) = match c {
        '\u{00A0}' | '\u{202F}' => ("a no-break space", SPACE),
        '\u{3000}' => ("a full-width space", SPACE),
        '\u{FEFF}' => ("a byte-order mark", DELETE),
        '\u{200B}' => ("a zero-width space", DELETE),
        '\u{00AD}' => ("a soft hyphen", DELETE),
        c if c.is_whitespace() && !c.is_ascii() => ("a space other than the ordinary one", SPACE),
        c if hidden(c) => ("an invisible character", DELETE),
        _ => return None,
    };
    Some((format!("U+{:04X} ({what})", c as u32), fix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_an_editor_shows_as_blanks_are_named() {
        let named = |c| unseen(c).map(|(name, _)| name);
        for (c, name) in [
            ('\u{A0}', "U+00A0 (a no-break space)"),
            ('\u{3000}', "U+3000 (a full-width space)"),
            ('\u{2003}', "U+2003 (a space other than the ordinary one)"),
            ('\u{200B}', "U+200B (a zero-width space)"),
            ('\u{202E}', "U+202E (an invisible character)"),
        ] {
            assert_eq!(named(c).as_deref(), Some(name));
        }
        for shown in [' ', '\t', 'a', '한', '“', '；'] {
            assert_eq!(named(shown), None, "{shown:?}");
        }
    }

    #[test]
    fn long_quoted_texts_are_cut_and_the_rest_kept() {
        let long = "h".repeat(1000);
        let message = format!("unknown function \"{long}\": did you mean \"starts_with\"?");
        let shown = cut_quoted(&message, 20);
        assert_eq!(
            shown,
            format!(
                "unknown function \"{}…\": did you mean \"starts_with\"?",
                &long[..20]
            )
        );
        // Short quotes and unquoted text are left alone, borrowed.
        let plain = format!("\"short\" {long}");
        assert!(matches!(
            cut_quoted(&plain, 10),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn cut_borrows_what_fits_and_marks_a_cut() {
        use std::borrow::Cow;
        assert!(matches!(cut("order-1", 7), Cow::Borrowed("order-1")));
        // Three characters of nine bytes fit three characters.
        assert!(matches!(cut("가나다", 3), Cow::Borrowed("가나다")));
        assert_eq!(cut("가나다라", 3), "가나다…");
        assert_eq!(cut(&"o".repeat(500), 200), format!("{}…", "o".repeat(200)));
    }

    #[test]
    fn cuts_fall_between_the_characters_a_reader_sees() {
        let cut = |text: &str, max: usize| {
            let mut t = text.to_owned();
            cut_chars(&mut t, max);
            t
        };
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcd", 3), "abc…");
        // A thumbs-up with its skin tone is two chars: cut before it, not between them.
        assert_eq!(cut("ab👍🏽", 3), "ab…");
        assert_eq!(cut("ab👍🏽c", 4), "ab👍🏽…");
        // Hangul written as conjoining jamo (ᄒ+ᅡ+ᆫ is one syllable).
        assert_eq!(cut("가\u{1112}\u{1161}\u{11ab}", 2), "가…");
        assert_eq!(cut("한국어", 2), "한국…");
        // One cluster longer than the cut: cut inside it rather than keep nothing.
        let marks = format!("a{}", "\u{301}".repeat(600));
        assert_eq!(cut(&marks, 3), "a\u{301}\u{301}…");
        let jamo = "\u{1100}".repeat(600);
        assert_eq!(cut(&jamo, 2), "\u{1100}\u{1100}…");
    }

    #[test]
    fn what_shows_a_buyer_nothing() {
        for blank in [
            "",
            " \t\n",
            "\u{200b}\u{feff}\u{2060}",
            "\u{202e}\u{200f}",
            "\u{3164}\u{115f}\u{ad}\u{34f}",
            "\u{2800}\u{fffc}\u{17b4}",
            "\u{7}",
        ] {
            assert!(shows_nothing(blank), "{blank:?}");
        }
        for shown in ["\"", "'", "\\", "재고", "x\u{200b}", "…"] {
            assert!(!shows_nothing(shown), "{shown:?}");
        }
    }
}
