//! The one place YAML is parsed (serde_yaml is frozen upstream; a maintained fork replaces it
//! here). Also finds the line and column of any node by path, and of any character inside a
//! scalar, for errors found after parsing; and reads a rule file part by part, so that every
//! shape error of the file is reported, not only the first ([`parse_rule_file`]).

mod document;
mod flow;
mod hints;
mod locate;
#[cfg(test)]
pub(crate) mod mutate;
mod rule_file;
mod scalar;
mod written;

use serde::de::DeserializeOwned;

use document::second_document;
pub use document::{check_document, rule_file_values, test_file_values};
pub use hints::unseen_on_line;
pub use locate::{alias_on_path, locate, locate_key, locate_written, outermost_alias, Seg};
pub use rule_file::parse_rule_file;
pub use scalar::{position_in_scalar, Origin};
pub use written::{numbers_as_written, Texts};

/// A 1-based position in a YAML source; ordered as read (line, then column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// A file's first character: where an error about the file as a whole (its name, a link
    /// to it, reading it) is put, so that it reads `FILE:LINE:COL` as every other does and
    /// editors and CI annotations that match that shape show it.
    pub const START: Location = Location { line: 1, column: 1 };

    /// The position just after `text` (columns count characters): where what follows a
    /// source's first `text.len()` bytes starts.
    pub fn after(text: &str) -> Location {
        let line_start = text.rfind('\n').map_or(0, |i| i + 1);
        Location {
            line: text.matches('\n').count() + 1,
            column: text[line_start..].chars().count() + 1,
        }
    }
}

/// A parse error with where it happened.
#[derive(Debug)]
pub struct ParseError {
    pub location: Option<Location>,
    pub message: String,
}

/// Parses a whole document into `T`, strictly (the types deny unknown fields).
pub fn from_str<T: DeserializeOwned>(src: &str) -> Result<T, ParseError> {
    serde_yaml::from_str(src).map_err(|e| parse_error(src, &e))
}

/// [`from_str`] through a seed (a reading that leaves parts out, say).
pub fn from_str_seed<'de, S: serde::de::DeserializeSeed<'de>>(
    src: &'de str,
    seed: S,
) -> Result<S::Value, ParseError> {
    seed.deserialize(serde_yaml::Deserializer::from_str(src))
        .map_err(|e| parse_error(src, &e))
}

fn parse_error(src: &str, e: &serde_yaml::Error) -> ParseError {
    match e.location() {
        Some(l) => ParseError {
            location: Some(Location {
                line: l.line(),
                column: l.column(),
            }),
            message: clean_message(&e.to_string()),
        },
        // serde_yaml gives no position for a second document; it is found here.
        None => match second_document(src) {
            Some(at) => ParseError {
                location: Some(at),
                message: SECOND_DOCUMENT.into(),
            },
            None => ParseError {
                location: None,
                message: clean_message(&e.to_string()),
            },
        },
    }
}

/// The error for a file of more than one document, at the start of the second.
const SECOND_DOCUMENT: &str = "a second YAML document: a file holds exactly one (a \"---\" line after the content starts another, and nothing may follow a \"...\" line)";

/// The number at `path`, `n` as serde_yaml read it, as the source writes it, when that differs:
/// serde_yaml reads a number with a fraction or exponent through an `f64`
/// (`999.99999999999999999` becomes 1000, `10.50` becomes 10.5). Integers come through exactly
/// and need no look at the source (finding a node reads the whole document). `None` when `n` is
/// an integer or the text there is no JSON number.
pub fn number_as_written<'s>(
    src: &'s str,
    path: &[Seg<'_>],
    n: &serde_json::Number,
) -> Option<&'s str> {
    if n.is_u64() || n.is_i64() {
        return None;
    }
    plain_scalar_at(src, locate(src, path))
        .filter(|t| serde_json::from_str::<serde_json::Number>(t).is_ok())
}

/// The text of the value at `path` when it is written without quotes (`None` for a quoted one):
/// `1e400` reads as a string (no `f64` holds it), yet is a number in JSON as written.
pub fn unquoted_at<'s>(src: &'s str, path: &[Seg<'_>]) -> Option<&'s str> {
    plain_scalar_at(src, locate(src, path))
}

/// The text of the plain scalar starting at `at`; `None` when no plain token starts there.
fn plain_scalar_at(src: &str, at: Location) -> Option<&str> {
    let line = src.lines().nth(at.line.checked_sub(1)?)?;
    let start = line
        .char_indices()
        .nth(at.column.checked_sub(1)?)
        .map(|(i, _)| i)?;
    let rest = &line[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || matches!(c, ',' | '}' | ']' | '#'))
        .unwrap_or(rest.len());
    Some(&rest[..end]).filter(|t| !t.is_empty())
}

/// Whether the unquoted value `value` starting at `at` is followed on its line by a comment:
/// YAML ends a plain scalar at ` #`, so `require: payload.tier != #{ t: 1 }` holds only
/// `payload.tier !=`, and the expression error that follows says nothing of why.
pub fn cut_by_comment(src: &str, at: Location, value: &str) -> bool {
    comment_after(src, at, value).is_some()
}

/// Where the text before each ` #word` (or tab `#word`: a comment glued to its first word)
/// that follows something else on its line ends, trailing blanks left out: an unquoted value
/// whose text was cut that way ends at one of them. Quoted text may hold such a `#` too; these
/// are candidates to look at, not comments for sure.
pub fn ends_before_comments(src: &str) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut line_start = 0;
    for line in src.split_inclusive('\n') {
        for (i, _) in line.match_indices('#') {
            let before = line[..i].trim_end_matches([' ', '\t']);
            let glued = line[i + 1..].starts_with(|c: char| !c.is_whitespace() && c != '#');
            if glued && before.len() < i && !before.trim_start().is_empty() {
                ends.push(line_start + before.len());
            }
        }
        line_start += line.len();
    }
    ends
}

/// The comment (after its `#`) that follows the unquoted value `value` starting at `at` on
/// its line; see [`cut_by_comment`].
pub fn comment_after<'s>(src: &'s str, at: Location, value: &str) -> Option<&'s str> {
    let line = src.lines().nth(at.line.checked_sub(1)?)?;
    let (start, _) = line.char_indices().nth(at.column.checked_sub(1)?)?;
    let rest = line[start..].strip_prefix(value)?;
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    rest.trim_start().strip_prefix('#')
}

/// serde_yaml appends " at line L column C" to messages; we print the location ourselves.
fn clean_message(msg: &str) -> String {
    let msg = match msg.find(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    // serde_yaml prefixes nested errors with the path ("rules[0]: ..."), which helps; keep it.
    // Rust's integer type names mean nothing to an operator; every u16 of the rule and test
    // files is an HTTP status.
    let msg = msg
        .replace('`', "\"")
        // serde's word for one of a fixed set of values (`on_error: deny`) is Rust's.
        .replace("unknown variant \"", "invalid value \"")
        .replace(
            "expected u16",
            "expected an HTTP status code (a number such as 409)",
        )
        .replace("expected u32", "expected a whole number")
        // serde's words for a key of a struct, met by a key that is a list or a mapping.
        .replace("expected field identifier", "expected a key name")
        // serde_yaml's words for an integer beyond 64 bits: `integer "1000…000" as u128`.
        .replace("\" as u128", "\"")
        .replace("\" as i128", "\"");
    // `amount： { max: 5 }`: the key runs on past the full-width colon to the first ": ".
    if unknown_name(&msg).is_some_and(|name| name.contains('：')) {
        return format!("{msg}; {FULL_WIDTH_COLON}");
    }
    if unknown_name(&msg) == Some("<<") {
        return format!("{msg}; {MERGE_KEY}");
    }
    // `upstreams:` indented under `settings:` (a key of the top, read as one of settings').
    if let Some(name) = unknown_name(&msg).filter(|n| TOP_KEYS.contains(n)) {
        if !msg.starts_with("unknown") {
            return format!("{msg}; {}", top_key_hint(name));
        }
    }
    // `error_reason:` in a rule: a key of the whole file's settings only.
    if let Some(name) = unknown_name(&msg).filter(|n| SETTINGS_ONLY.contains(n)) {
        if msg.starts_with("rules[") {
            return format!("{msg}; \"{name}\" is a key of settings, for every rule of the file: a rule has its own reason and on_error, but not {name}");
        }
    }
    // `deadline: 3s` at the start of its line, below `settings:`: a key of the top of the file
    // to YAML.
    if let Some(name) = unknown_name(&msg).filter(|_| msg.starts_with("unknown field \"")) {
        if msg.ends_with(r#"expected one of "settings", "upstreams", "rules""#) {
            let hint = if SETTINGS_KEYS.contains(&name) {
                Some(format!(
                    "\"{name}\" belongs under settings: indent it two spaces more than settings:"
                ))
            } else if RULE_KEYS.contains(&name) {
                Some(format!("\"{name}\" is a key of a rule: indent it under its rule in rules:, lined up with the rule's name"))
            } else {
                UPSTREAM_KEYS.contains(&name).then(|| format!("\"{name}\" is a key of an upstream: indent it under the upstream's name in upstreams:"))
            };
            if let Some(hint) = hint {
                return format!("{msg}; {hint}");
            }
        }
    }
    if let Some(known) = did_you_mean(&msg) {
        return format!("{msg}; did you mean \"{known}\"?");
    }
    if unknown_name(&msg).is_some_and(digits_only) {
        return format!("{msg}; {THOUSANDS_SEPARATOR}");
    }
    // `shadow: lower-limit-trial`: one name where a list is read.
    if let Some(text) = msg
        .split_once("invalid type: string \"")
        .and_then(|(_, rest)| rest.strip_suffix("\", expected a sequence"))
    {
        return format!("{msg}; write a list, even of one: [{text}]");
    }
    // `deadline： 4s`: one plain string to YAML, so its mapping became a string.
    if msg.contains("invalid type: string \"") && msg.contains('：') {
        return format!("{msg}; {FULL_WIDTH_COLON}");
    }
    if let Some(number) = number_in_text(&msg) {
        return format!("{msg}; write the number alone: {number}");
    }
    // `max: "99000"`: a number in quotes is text to YAML.
    if let Some(text) = string_for_number(&msg).filter(|t| plain_number(t)) {
        return format!("{msg}; write the number without quotes: {}", text.trim());
    }
    // `min: 1e400`: YAML keeps a number no float holds as text.
    if let Some(text) =
        string_for_number(&msg).filter(|t| t.parse::<f64>().is_ok_and(f64::is_infinite))
    {
        return format!("{msg}; {text} is larger than any number can hold (about 1.8e308): write the limit you mean");
    }
    msg
}

/// The text in `invalid type: string "…", expected …` where a number (or a whole number, or a
/// status) is expected.
fn string_for_number(msg: &str) -> Option<&str> {
    let (_, rest) = msg.split_once("invalid type: string \"")?;
    let (text, expected) = rest.split_once("\", expected ")?;
    (expected.starts_with("a number")
        || expected.starts_with("a whole number")
        || expected.starts_with("an HTTP status"))
    .then_some(text)
}

/// The number an operator meant by the text in `invalid type: string "…", expected a number`
/// (or a whole number, or a status): `55_000`, `1 000`, `55000원`, `5,000 KRW` — digit
/// separators and a currency after it, which YAML leaves a string.
fn number_in_text(msg: &str) -> Option<String> {
    let text = string_for_number(msg)?;
    let bare = ["원", "KRW", "krw", "won"]
        .iter()
        .find_map(|unit| text.trim().strip_suffix(unit))
        .unwrap_or(text);
    let number: String = bare
        .chars()
        .filter(|c| !matches!(c, '_' | ',' | ' '))
        .collect();
    let (whole, fraction) = number.split_once('.').unwrap_or((&number, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (number != text && digits(whole) && digits(fraction)).then_some(number)
}

/// Digits, with a fraction or a minus sign: a number YAML reads as one when unquoted.
fn plain_number(text: &str) -> bool {
    let t = text.trim();
    let t = t.strip_prefix('-').unwrap_or(t);
    let (whole, fraction) = t.split_once('.').unwrap_or((t, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && digits(fraction)
}

/// The keys at the top of a rule file.
pub(super) const TOP_KEYS: [&str; 3] = ["settings", "upstreams", "rules"];
/// The keys of `settings`.
const SETTINGS_KEYS: [&str; 4] = ["deadline", "on_error", "error_reason", "reject_status"];
/// The keys of a rule.
const RULE_KEYS: [&str; 13] = [
    "name", "when", "mode", "action", "reason", "on_error", "amount", "window", "require",
    "healthy", "fetch", "forward", "script",
];
/// The keys of `settings` that a rule has not.
const SETTINGS_ONLY: [&str; 3] = ["deadline", "error_reason", "reject_status"];
/// The keys of an upstream.
const UPSTREAM_KEYS: [&str; 5] = ["url", "timeout", "headers", "health", "max_connections"];

/// The hint for an error about an upstream whose name is a key of an upstream (`health:`
/// outdented to the level of the upstreams' names) or of the top of the file (`rules:` indented
/// under `upstreams:`): each is read as an upstream of its own.
pub(super) fn upstream_name_hint(message: &str) -> Option<String> {
    let (name, _) = message.strip_prefix("upstreams.")?.split_once(':')?;
    if UPSTREAM_KEYS.contains(&name) {
        return Some(format!("\"{name}\" is read as the name of an upstream: indent it under the upstream it belongs to"));
    }
    TOP_KEYS.contains(&name).then(|| top_key_hint(name))
}

/// The hint for a key of the top of a rule file found inside another.
pub(super) fn top_key_hint(name: &str) -> String {
    format!("\"{name}\" is a key of the top of the file, not of the one it is indented under: start it at the beginning of its line")
}

/// The hint for a number written with a thousands separator inside `{ … }`.
pub(super) const THOUSANDS_SEPARATOR: &str = "write numbers without thousands separators (1000, not 1,000): inside { … } a comma ends an entry";

/// The hint for a key followed by a full-width colon from a Korean input method.
/// Why `<<: *defaults` does not work: serde_yaml reads YAML 1.2, which has no merge keys.
pub(super) const MERGE_KEY: &str = "\"<<\" (a YAML merge key) is not supported: it is read as a field named \"<<\", not as the fields of its alias; write the fields out";

pub(super) const FULL_WIDTH_COLON: &str =
    "\"：\" is a full-width colon, which YAML does not read as one: type \":\" and a space";

/// Whether `s` is a non-empty run of ASCII digits (the `000` of `1,000`).
pub(super) fn digits_only(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The name in serde's `unknown field "x", …` or `unknown variant "x", …` (after
/// [`clean_message`], `invalid value "x", …`).
fn unknown_name(msg: &str) -> Option<&str> {
    let rest = msg
        .split_once("unknown field \"")
        .or_else(|| msg.split_once("unknown variant \""))
        .or_else(|| msg.split_once("invalid value \""))?
        .1;
    Some(rest.split_once('"')?.0)
}

/// For serde's `unknown field "reasn", expected one of "name", …` (or `unknown variant`): the
/// expected name closest to the unknown one, when it is close enough to be a slip (`reasn`,
/// `Reason`, `ammount`, `shdow`).
fn did_you_mean(msg: &str) -> Option<&str> {
    // An empty value (`mode: ''`) is near no name; its quotes would split the message wrong.
    let unknown = unknown_name(msg).filter(|name| !name.is_empty())?;
    let expected = msg.split_once(&format!("{unknown}\""))?.1;
    let names = || expected.split('"').skip(1).step_by(2);
    // As written first: `GTE` is `GET`, where a set also has `get`.
    crate::suggest::closest(unknown, names())
        .or_else(|| crate::suggest::closest(&unknown.to_lowercase(), names()))
}

/// The most `[` and `{` a YAML file may hold open at once. libyaml reads flow collections
/// nested N deep in time growing with N² (64 KB of `[` took 14 s, 1 MiB would take about an
/// hour, holding every reload behind it) before serde_yaml's own limit of 128 levels refuses
/// the file; no rule or test file comes near this.
pub const MAX_FLOW_DEPTH: usize = 100;

/// Where a `[` or `{` first makes more than [`MAX_FLOW_DEPTH`] open at once. A linear count
/// over every byte, quotes and comments included: an unmatched bracket in text counts too,
/// which no real file has a hundred of.
pub fn too_deep(src: &str) -> Option<Location> {
    let mut depth = 0usize;
    for (i, b) in src.bytes().enumerate() {
        match b {
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Some(Location::after(&src[..i]));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// The most errors, and the most warnings, of one file that are located: locating one reads
/// the file again from its start, so a generated file with the same slip in each of 5,000
/// rules took minutes (and held every reload behind it). The rest are counted in one line.
pub const MAX_LOCATED: usize = 50;

/// How many times a file is read again to find the next error, at most.
const MAX_PASSES: usize = 200;

/// How many nodes all the readings of one file for its next error may read, at most (about a
/// second): each reads the whole file, so a big generated file with an error in each part
/// (a 600 KB one with 200 repeated keys) took over 10 s, and held every reload behind it.
const REREAD_VALUES: usize = 2_000_000;

/// How many times a file of `values` nodes ([`document::Checked::values`]) is read to find its errors
/// one by one, at most: [`MAX_PASSES`], fewer for a big file, but at least 3.
pub fn passes_for(values: usize) -> usize {
    (REREAD_VALUES / values.max(1)).clamp(3, MAX_PASSES)
}

/// The location of a serde_yaml error; never line 0.
fn error_location(e: &serde_yaml::Error) -> Location {
    e.location()
        .map(|l| Location {
            line: l.line(),
            column: l.column(),
        })
        .unwrap_or(Location { line: 1, column: 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "settings:\n  deadline: 4s\nrules:\n  - name: a\n    require: 'x > 1'\n  - name: b\n    amount: { min: 1 }\n";

    #[test]
    fn text_ends_before_comments_are_found_once_for_the_file() {
        let src = "# heading\nrules:\n  - reason: 좌석 #1 매진\n    when: a  #note\n    y: b # a comment\n    x: \"q #x\"\n  #\tb\n";
        let ends: Vec<&str> = ends_before_comments(src)
            .into_iter()
            .map(|end| &src[..end])
            .collect();
        assert_eq!(ends.len(), 3, "{ends:?}");
        assert!(ends[0].ends_with("reason: 좌석"));
        assert!(ends[1].ends_with("when: a"));
        assert!(ends[2].ends_with("x: \"q"), "a candidate, though quoted");
    }

    /// serde_yaml reads integers beyond 64 bits as 128-bit ones: they are found like any
    /// node, and the error naming one carries no Rust type name.
    #[test]
    fn integers_beyond_64_bits_are_located_and_named_plainly() {
        use Seg::*;
        let src = "a:\n  b: 100000000000000000000000\n  c: -100000000000000000000000\n";
        assert_eq!(
            locate(src, &[Key("a"), Key("c")]),
            Location { line: 3, column: 6 }
        );
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct A {
            a: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u16>>,
        }
        let e = from_str::<A>(src).unwrap_err();
        assert_eq!(
            e.message,
            r#"a.b: invalid type: integer "100000000000000000000000", expected a map"#
        );
    }

    /// A number in quotes where a number is read is told to lose them; other text is not.
    #[test]
    fn a_quoted_number_is_told_to_lose_its_quotes() {
        let msg = |text: &str| {
            format!(
                r#"rules[0].amount.max: invalid type: string "{text}", expected a number at line 3 column 31"#
            )
        };
        for (text, write) in [("99000", "99000"), ("10.5", "10.5"), ("-1", "-1")] {
            assert_eq!(
                clean_message(&msg(text)),
                format!(
                    r#"rules[0].amount.max: invalid type: string "{text}", expected a number; write the number without quotes: {write}"#
                )
            );
        }
        for text in ["many", "1.2.3", "", "."] {
            assert_eq!(
                clean_message(&msg(text)),
                format!(r#"rules[0].amount.max: invalid type: string "{text}", expected a number"#)
            );
        }
    }

    /// One name where a list is read (`shadow: lower-limit-trial`) gets the list to write.
    #[test]
    fn one_name_where_a_list_belongs_gets_the_list() {
        assert_eq!(
            clean_message(
                r#"cases[0].expect.shadow: invalid type: string "trial", expected a sequence at line 7 column 42"#
            ),
            r#"cases[0].expect.shadow: invalid type: string "trial", expected a sequence; write a list, even of one: [trial]"#
        );
    }

    /// `55_000`, `1000원`, `5,000 KRW`: a number with separators or a currency, which YAML
    /// reads as text, gets the number to write.
    #[test]
    fn a_number_written_as_text_gets_the_number_to_write() {
        let message = |text: &str, expected: &str| {
            clean_message(&format!(
                r#"max: invalid type: string "{text}", expected {expected}"#
            ))
        };
        for (text, number) in [
            ("55_000", "55000"),
            ("1000원", "1000"),
            ("1,000 원", "1000"),
            ("5,000 KRW", "5000"),
            ("1 000.5", "1000.5"),
        ] {
            assert_eq!(
                message(text, "a number"),
                format!(
                    r#"max: invalid type: string "{text}", expected a number; write the number alone: {number}"#
                )
            );
        }
        assert!(message("4_09", "u16").ends_with("; write the number alone: 409"));
        for text in ["4O9", "abc", "12.3.4", "원"] {
            assert!(
                !message(text, "a number").contains("write the number"),
                "{text}"
            );
        }
        assert!(!message("55_000", "a map").contains("write the number"));
    }

    #[test]
    fn locates_nodes_by_path() {
        use Seg::*;
        assert_eq!(
            locate(SRC, &[Key("settings"), Key("deadline")]),
            Location {
                line: 2,
                column: 13
            }
        );
        assert_eq!(
            locate(SRC, &[Key("rules"), Index(1), Key("amount"), Key("min")]),
            Location {
                line: 7,
                column: 20
            }
        );
        assert_eq!(
            locate(SRC, &[Key("rules"), Index(1)]),
            Location { line: 6, column: 5 }
        );
        // A missing node is reported at its nearest ancestor.
        assert_eq!(
            locate(SRC, &[Key("rules"), Index(1), Key("reason")]),
            Location { line: 6, column: 5 }
        );
    }

    #[test]
    fn locates_keys_by_path() {
        use Seg::*;
        assert_eq!(
            locate_key(SRC, &[Key("rules")]),
            Some(Location { line: 3, column: 1 })
        );
        assert_eq!(
            locate_key(SRC, &[Key("settings"), Key("deadline")]),
            Some(Location { line: 2, column: 3 })
        );
        assert_eq!(
            locate_key(SRC, &[Key("rules"), Index(1), Key("amount")]),
            Some(Location { line: 7, column: 5 })
        );
        // An empty value is still a key; a missing key is none.
        let empty = "# header\nsettings: {}\n? 1\n: x\n!tag other: y\nrules:\n";
        assert_eq!(
            locate_key(empty, &[Key("rules")]),
            Some(Location { line: 6, column: 1 })
        );
        assert_eq!(
            locate_key("{ settings: {}, rules: [] }", &[Key("rules")]),
            Some(Location {
                line: 1,
                column: 17
            })
        );
        assert_eq!(locate_key(SRC, &[Key("upstreams")]), None);
        assert_eq!(
            locate_key(SRC, &[Key("rules"), Index(5), Key("name")]),
            None
        );
        assert_eq!(locate_key("", &[Key("rules")]), None);
        // A tagged key is found by its name (a slip of `!` makes one: `!Authorization: "x"`
        // is the key "x", tagged `!Authorization:`).
        assert_eq!(
            locate_key(empty, &[Key("other")]),
            Some(Location { line: 5, column: 1 })
        );
        let slip = "h: { !Authorization: \"Bearer x\" }\n";
        assert_eq!(
            locate_key(slip, &[Key("h"), Key("Bearer x")]),
            Some(Location { line: 1, column: 6 })
        );
        // Found before the rest of the document is read.
        assert_eq!(
            locate_key("rules: [", &[Key("rules")]),
            Some(Location { line: 1, column: 1 })
        );
        // `locate` still finds values after keys of every kind.
        assert_eq!(
            locate(empty, &[Key("settings")]),
            Location {
                line: 2,
                column: 11
            }
        );
    }

    #[test]
    fn positions_inside_scalars() {
        let at = locate(
            SRC,
            &[Seg::Key("rules"), Seg::Index(0), Seg::Key("require")],
        );
        assert_eq!(
            at,
            Location {
                line: 5,
                column: 14
            }
        );
        // Column 3 of the expression `x > 1` is the `>`, one past the quote.
        assert_eq!(
            position_in_scalar(SRC, at, "x > 1", 1, 3),
            Location {
                line: 5,
                column: 17
            }
        );
        let block = "a:\n  b: |\n    x +\n    y\n";
        let at = locate(block, &[Seg::Key("a"), Seg::Key("b")]);
        assert_eq!(
            position_in_scalar(block, at, "x +\ny\n", 2, 1),
            Location { line: 4, column: 5 }
        );
    }

    #[test]
    fn positions_inside_scalars_of_every_kind() {
        let at = |src: &str, key: &str, value: &str, line: usize, column: usize| {
            let scalar = locate(src, &[Seg::Key(key)]);
            let l = position_in_scalar(src, scalar, value, line, column);
            (l.line, l.column)
        };
        // Windows line breaks fold like any other.
        let crlf = "a: x +\r\n   yy\r\n";
        assert_eq!(at(crlf, "a", "x + yy", 1, 5), (2, 4));
        // An indentation indicator: the content may start with spaces of its own.
        let indented = "a: |2\n     x\n    y\n";
        assert_eq!(at(indented, "a", "   x\n  y\n", 2, 3), (3, 5));
        // Keep-chomping and blank lines at the end; past the end is after the last character.
        let kept = "a: >+\n  x\n\n\nb: 1\n";
        assert_eq!(at(kept, "a", "x\n\n\n", 1, 2), (2, 4));
        assert_eq!(at(kept, "a", "x\n\n\n", 4, 1), (2, 4));
        // Empty lines inside a quoted scalar are line breaks.
        let quoted = "a: \"x\n\n  y\"\n";
        assert_eq!(at(quoted, "a", "x\ny", 2, 1), (3, 3));
        // An anchored scalar, and an alias to it: the text is where the anchor is.
        let anchored = "a: &e 'p > 1'\nb: *e\n";
        assert_eq!(at(anchored, "a", "p > 1", 1, 3), (1, 10));
        // Text that does not read as the value: the start of the scalar, never a guess.
        assert_eq!(at("a: 'x > 1'\n", "a", "something else", 1, 3), (1, 4));
        assert_eq!(at("a: |\n  x\n", "a", "y\n", 1, 1), (1, 4));
    }

    #[test]
    fn parse_errors_carry_locations() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            a: u32,
        }
        let err = from_str::<T>("a: 1\nb: 2\n").unwrap_err();
        assert_eq!(err.location, Some(Location { line: 2, column: 1 }));
        assert_eq!(err.message, "unknown field \"b\", expected \"a\"");
        // A second document, where it starts (serde_yaml gives no position).
        let err = from_str::<T>("a: 1\n---\na: 2\n").unwrap_err();
        assert_eq!(err.location, Some(Location { line: 2, column: 1 }));
        assert_eq!(err.message, SECOND_DOCUMENT);
    }

    /// One anchor of N items used at N aliases reads N² values: refused once past the limit,
    /// in about the time the limit's values take, rather than read whole.
    #[test]
    fn aliases_fanning_out_to_too_many_values_are_refused_early() {
        let n = 5_000;
        let src = format!(
            "x: &a [{}]\ny: [{}]\n",
            vec!["1"; n].join(","),
            vec!["*a"; n].join(",")
        );
        let started = std::time::Instant::now();
        let e = check_document(&src).unwrap_err();
        println!(
            "{} KB: refused after {:?}",
            src.len() / 1000,
            started.elapsed()
        );
        assert!(
            e.message.starts_with(&format!(
                "the file's aliases (*name) repeat its anchors (&name) to more than {} values",
                2 * src.len() + 100_000
            )),
            "{}",
            e.message
        );
        assert!(e.location.is_some());
        // A few hundred values repeated a hundred times are well within it.
        let few = format!(
            "x: &a [{}]\ny: [{}]\n",
            vec!["1"; 300].join(","),
            vec!["*a"; 100].join(",")
        );
        let checked = check_document(&few).unwrap();
        assert_eq!(checked.values, 1 + 2 + 300 + 2 + 100 * 301);
    }

    /// Each repeated key is found by reading the file again: a big file is read fewer times,
    /// the rest of its repeated keys counted in one line after those shown.
    #[test]
    fn repeated_keys_of_a_big_file_are_found_within_a_reading_budget() {
        let items = vec!["1"; 100_000].join(",");
        let src = format!("x: [{items}]\n{}", "y: 1\n".repeat(50));
        let checked = check_document(&src).unwrap();
        let passes = passes_for(checked.values);
        assert_eq!(passes, 19, "{} values", checked.values);
        assert_eq!(checked.duplicates.len(), 20);
        assert!(checked.duplicates[18]
            .message
            .starts_with("duplicate key \"y\" (first at line 2)"));
        assert_eq!(
            checked.duplicates[18].location,
            Some(Location {
                line: 21,
                column: 1
            })
        );
        assert_eq!(
            checked.duplicates[19].message,
            "and 30 more repeated keys, not shown: fix these and check again"
        );
    }
}
