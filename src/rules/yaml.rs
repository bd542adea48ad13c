//! The one place YAML is parsed (serde_yaml is frozen upstream; a maintained fork replaces it
//! here). Also finds the line and column of any node by path, and of any character inside a
//! scalar, for errors found after parsing; and reads a rule file part by part, so that every
//! shape error of the file is reported, not only the first ([`parse_rule_file`]).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::marker::PhantomData;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IgnoredAny, IntoDeserializer, MapAccess, SeqAccess,
    Visitor,
};

use super::model::{RawRule, RawSettings, RawUpstream};

/// A 1-based position in a YAML source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// A parse error with where it happened.
#[derive(Debug)]
pub struct ParseError {
    pub location: Option<Location>,
    pub message: String,
}

/// Parses a whole document into `T`, strictly (the types deny unknown fields).
pub fn from_str<T: DeserializeOwned>(src: &str) -> Result<T, ParseError> {
    serde_yaml::from_str(src).map_err(|e| match e.location() {
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
    })
}

/// The error for a file of more than one document, at the start of the second.
const SECOND_DOCUMENT: &str = "a second YAML document: a file holds exactly one (a \"---\" line after the content starts another, and nothing may follow a \"...\" line)";

/// serde_yaml appends " at line L column C" to messages; we print the location ourselves.
fn clean_message(msg: &str) -> String {
    let msg = match msg.find(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    // serde_yaml prefixes nested errors with the path ("rules[0]: ..."), which helps; keep it.
    msg.replace('`', "\"")
}

/// One step of a path into a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// The location of the node at `path`, or of its deepest existing ancestor.
pub fn locate(src: &str, path: &[Seg<'_>]) -> Location {
    let mut best = Location { line: 1, column: 1 };
    // Walk up the path until a node exists; a missing optional key is reported at its parent.
    for len in (0..=path.len()).rev() {
        let seed = Find {
            path: &path[..len],
            key: false,
        };
        match seed.deserialize(serde_yaml::Deserializer::from_str(src)) {
            Err(e) if e.to_string().contains(FOUND) => {
                if let Some(l) = e.location() {
                    best = Location {
                        line: l.line(),
                        column: l.column(),
                    };
                }
                return best;
            }
            _ => continue,
        }
    }
    best
}

/// The location of the key of the mapping entry at `path` (`rules:` rather than what follows
/// it), or `None` when there is no such entry. For errors about a key whose value is empty.
pub fn locate_key(src: &str, path: &[Seg<'_>]) -> Option<Location> {
    let seed = Find { path, key: true };
    match seed.deserialize(serde_yaml::Deserializer::from_str(src)) {
        Err(e) if e.to_string().contains(FOUND) => e.location().map(|l| Location {
            line: l.line(),
            column: l.column(),
        }),
        _ => None,
    }
}

const FOUND: &str = "\u{0}found";
const MISSING: &str = "\u{0}missing";

/// Walks to the node at `path` and fails there on purpose: serde_yaml marks every error with the
/// position of the node being read, which is exactly the location we want.
struct Find<'p, 'a> {
    path: &'p [Seg<'a>],
    /// Fail at the key of the last step instead of at its value.
    key: bool,
}

impl<'de> DeserializeSeed<'de> for Find<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Find<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Seg::Key(want), rest)) = self.path.split_first() else {
            return Err(self.end());
        };
        let at_key = self.key && rest.is_empty();
        while let Some(key) = map.next_key_seed(Key { want, at_key })? {
            if key {
                return map.next_value_seed(Find {
                    path: rest,
                    key: self.key,
                });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Err(de::Error::custom(MISSING))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Seg::Index(want), rest)) = self.path.split_first() else {
            return Err(self.end());
        };
        for _ in 0..*want {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom(MISSING));
            }
        }
        seq.next_element_seed(Find {
            path: rest,
            key: self.key,
        })?
        .ok_or_else(|| de::Error::custom(MISSING))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.end())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.end())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(self.end())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(self.end())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(self.end())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.end())
    }
}

impl Find<'_, '_> {
    fn end<E: de::Error>(&self) -> E {
        E::custom(if self.path.is_empty() { FOUND } else { MISSING })
    }
}

/// Reads a mapping key: whether it is the wanted one, or (with `at_key`) fails right there when
/// it is, so the error carries the key's position.
struct Key<'a> {
    want: &'a str,
    at_key: bool,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        // The error must be raised while the key is read, for serde_yaml to mark it there.
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        let found = key == self.want;
        if found && self.at_key {
            return Err(E::custom(FOUND));
        }
        Ok(found)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<bool, A::Error> {
        // A tagged key (`!tag name:`) is never the wanted one.
        let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
        de::VariantAccess::newtype_variant::<IgnoredAny>(variant)?;
        Ok(false)
    }
}

/// Where the character at `line`/`column` of a scalar's value (1-based, in characters, as Rhai
/// counts them) is in the file, given where the scalar starts (`scalar`, from [`locate`]) and its
/// parsed `value`. Plain, single-quoted, double-quoted (escapes included), literal (`|`) and
/// folded (`>`) scalars are mapped character by character, so a position on a folded line lands
/// on that line. A position past the end of the value is just after its last character. When the
/// text at `scalar` cannot be matched with `value` (an alias, say), the start of the scalar is
/// the answer: never a place that may be wrong.
pub fn position_in_scalar(
    src: &str,
    scalar: Location,
    value: &str,
    line: usize,
    column: usize,
) -> Location {
    let text = Text::new(src);
    let Some(map) = text.scalar_map(scalar, value) else {
        return scalar;
    };
    let chars: Vec<char> = value.chars().collect();
    let mut start = Some(0);
    if line > 1 {
        start = chars
            .iter()
            .enumerate()
            .filter(|(_, c)| **c == '\n')
            .nth(line - 2)
            .map(|(i, _)| i + 1);
    }
    let index = start.map(|s| s + column.saturating_sub(1));
    match index {
        Some(i) if i < chars.len() => text.locs[map[i]],
        // Past the end (Rhai wanted more): just after the last character that is not a line
        // break, so the position stays on a line of the scalar.
        _ => match chars.iter().rposition(|c| *c != '\n') {
            Some(last) => {
                let at = text.locs[map[last]];
                Location {
                    line: at.line,
                    column: at.column + 1,
                }
            }
            None => scalar,
        },
    }
}

/// A source as characters, with the location of each (and of the end).
struct Text {
    chars: Vec<char>,
    locs: Vec<Location>,
}

/// A YAML line break (libyaml counts NEL, LS and PS as line breaks too).
fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_white(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Which quotes a flow scalar has.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quotes {
    None,
    Single,
    Double,
}

/// Characters of a reconstructed value, each with the index in [`Text::chars`] it came from.
type Mapped = Vec<(char, usize)>;

impl Text {
    fn new(src: &str) -> Text {
        let chars: Vec<char> = src.chars().collect();
        let mut locs = Vec::with_capacity(chars.len() + 1);
        let (mut line, mut column) = (1, 1);
        for (i, c) in chars.iter().enumerate() {
            locs.push(Location { line, column });
            // `\r\n` is one line break.
            if is_break(*c) && !(*c == '\r' && chars.get(i + 1) == Some(&'\n')) {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        locs.push(Location { line, column });
        Text { chars, locs }
    }

    fn get(&self, i: usize) -> Option<char> {
        self.chars.get(i).copied()
    }

    /// The index after the line break at `i`.
    fn skip_break(&self, i: usize) -> usize {
        if self.get(i) == Some('\r') && self.get(i + 1) == Some('\n') {
            i + 2
        } else {
            i + 1
        }
    }

    /// For every character of `value`, the index of the source character it comes from, or
    /// `None` when the scalar at `at` does not read as `value`.
    fn scalar_map(&self, at: Location, value: &str) -> Option<Vec<usize>> {
        let mut i = self.locs.iter().position(|l| *l == at)?;
        // Properties (`!!str`, `&anchor`) before the scalar.
        while matches!(self.get(i), Some('!' | '&')) {
            while self.get(i).is_some_and(|c| !is_white(c) && !is_break(c)) {
                i += 1;
            }
            while self.get(i).is_some_and(|c| is_white(c) || is_break(c)) {
                i += 1;
            }
        }
        let want: Vec<char> = value.chars().collect();
        let mapped = match self.get(i)? {
            '\'' => self.flow(i + 1, Quotes::Single, want.len())?,
            '"' => self.flow(i + 1, Quotes::Double, want.len())?,
            '|' => self.block(i, false, &want)?,
            '>' => self.block(i, true, &want)?,
            '*' => return None,
            _ => self.flow(i, Quotes::None, want.len())?,
        };
        let same = mapped.len() == want.len() && mapped.iter().zip(&want).all(|(m, c)| m.0 == *c);
        same.then(|| mapped.into_iter().map(|(_, i)| i).collect())
    }

    /// A plain or quoted scalar from `i` (after the opening quote), read until `want`
    /// characters are produced or the closing quote: line breaks fold into a space (or into the
    /// line breaks of the empty lines after them), white space around them is dropped.
    fn flow(&self, mut i: usize, quotes: Quotes, want: usize) -> Option<Mapped> {
        let mut out = Mapped::new();
        while out.len() < want {
            let c = self.get(i)?;
            match (quotes, c) {
                (Quotes::Single, '\'') if self.get(i + 1) == Some('\'') => {
                    out.push(('\'', i));
                    i += 2;
                }
                (Quotes::Single, '\'') | (Quotes::Double, '"') => break,
                (Quotes::Double, '\\') => {
                    let e = self.get(i + 1)?;
                    if is_break(e) {
                        // An escaped line break joins the lines without a space.
                        i = self.fold(self.skip_break(i + 1), None, &mut out);
                    } else {
                        let (ch, len) = self.unescape(i + 1)?;
                        out.push((ch, i));
                        i += 1 + len;
                    }
                }
                (_, c) if is_white(c) => {
                    let mut j = i;
                    while self.get(j).is_some_and(is_white) {
                        j += 1;
                    }
                    if self.get(j).is_some_and(is_break) {
                        // White space before a line break is not part of the value.
                        i = j;
                    } else {
                        out.push((c, i));
                        i += 1;
                    }
                }
                (_, c) if is_break(c) => {
                    i = self.fold(self.skip_break(i), Some(i), &mut out);
                }
                (_, c) => {
                    out.push((c, i));
                    i += 1;
                }
            }
        }
        Some(out)
    }

    /// After a line break in a flow scalar (at `at`, or an escaped one when `None`): empty
    /// lines become line breaks; without any, the break is a space (none if escaped). Returns
    /// the index of the next line's first character after its indentation.
    fn fold(&self, mut i: usize, at: Option<usize>, out: &mut Mapped) -> usize {
        let mut empty = Vec::new();
        loop {
            let mut j = i;
            while self.get(j).is_some_and(is_white) {
                j += 1;
            }
            match self.get(j) {
                Some(c) if is_break(c) => {
                    empty.push(j);
                    i = self.skip_break(j);
                }
                _ => {
                    i = j;
                    break;
                }
            }
        }
        match (empty.is_empty(), at) {
            (true, Some(at)) => out.push((' ', at)),
            (true, None) => {}
            (false, _) => out.extend(empty.into_iter().map(|e| ('\n', e))),
        }
        i
    }

    /// The escape after a backslash at `i`: the character and how many source characters the
    /// escape has after the backslash.
    fn unescape(&self, i: usize) -> Option<(char, usize)> {
        let hex = |n: usize| -> Option<(char, usize)> {
            let digits: String = (1..=n).map(|k| self.get(i + k)).collect::<Option<_>>()?;
            let code = u32::from_str_radix(&digits, 16).ok()?;
            Some((char::from_u32(code)?, n + 1))
        };
        let simple = match self.get(i)? {
            '0' => '\0',
            'a' => '\u{7}',
            'b' => '\u{8}',
            't' | '\t' => '\t',
            'n' => '\n',
            'v' => '\u{b}',
            'f' => '\u{c}',
            'r' => '\r',
            'e' => '\u{1b}',
            ' ' => ' ',
            '"' => '"',
            '/' => '/',
            '\\' => '\\',
            'N' => '\u{85}',
            '_' => '\u{a0}',
            'L' => '\u{2028}',
            'P' => '\u{2029}',
            'x' => return hex(2),
            'u' => return hex(4),
            'U' => return hex(8),
            _ => return None,
        };
        Some((simple, 1))
    }

    /// A literal (`|`) or folded (`>`) scalar whose indicator is at `i`.
    fn block(&self, mut i: usize, folded: bool, want: &[char]) -> Option<Mapped> {
        i += 1;
        let mut explicit = false;
        while let Some(c) = self.get(i) {
            match c {
                '1'..='9' => explicit = true,
                '+' | '-' => {}
                _ => break,
            }
            i += 1;
        }
        // The rest of the header line (white space, a comment).
        while self.get(i).is_some_and(|c| !is_break(c)) {
            i += 1;
        }
        // Lines as (start, end): `end` is the index of the line break (or of the end).
        let mut lines = Vec::new();
        while i < self.chars.len() {
            i = self.skip_break(i);
            let start = i;
            while self.get(i).is_some_and(|c| !is_break(c)) {
                i += 1;
            }
            lines.push((start, i));
        }
        let indent = |(s, e): (usize, usize)| (s..e).take_while(|k| self.chars[*k] == ' ').count();
        // The indentation is that of the first line with text, unless the header gives it; then
        // every smaller one is tried (the header counts from the parent's, unknown here).
        let auto = lines
            .iter()
            .find(|(s, e)| (*s..*e).any(|k| self.chars[k] != ' '))
            .map(|l| indent(*l))?;
        let candidates = if explicit { 1..=auto } else { auto..=auto };
        candidates
            .rev()
            .find_map(|n| self.block_text(&lines, n, folded, want))
    }

    /// The text of a block scalar whose content is indented by `n`, if it reads as `want` (up to
    /// trailing line breaks, which chomping decides).
    fn block_text(
        &self,
        lines: &[(usize, usize)],
        n: usize,
        folded: bool,
        want: &[char],
    ) -> Option<Mapped> {
        let mut out = Mapped::new();
        // The break ending the previous line with text, and whether that line was more indented.
        let mut previous: Option<(usize, bool)> = None;
        let mut empty = Vec::new();
        for &(s, e) in lines {
            let spaces = (s..e).take_while(|k| self.chars[*k] == ' ').count();
            if spaces == e - s && spaces <= n {
                empty.push(e);
                continue;
            }
            if spaces < n {
                break;
            }
            let spaced = is_white(self.chars[s + n]);
            match previous {
                // Between two lines of text: one break folds into a space, or into the breaks of
                // the empty lines after it.
                Some((brk, false)) if folded && !spaced && empty.is_empty() => out.push((' ', brk)),
                Some((_, false)) if folded && !spaced => {}
                Some((brk, _)) => out.push(('\n', brk)),
                None => {}
            }
            out.extend(empty.drain(..).map(|b| ('\n', b)));
            out.extend((s + n..e).map(|k| (self.chars[k], k)));
            previous = Some((e, spaced));
        }
        if let Some((brk, _)) = previous {
            if brk < self.chars.len() {
                out.push(('\n', brk));
            }
        }
        out.extend(empty.into_iter().map(|b| ('\n', b)));
        // Chomping drops trailing line breaks, nothing else.
        let fits = out.len() >= want.len()
            && out.iter().zip(want).all(|(m, c)| m.0 == *c)
            && out[want.len()..].iter().all(|m| m.0 == '\n');
        fits.then(|| {
            out.truncate(want.len());
            out
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Rule files: every error of a file in one read

/// A rule file read as far as its YAML allows: every part (the settings, each upstream, each
/// rule) that is well-formed, and an error for every one that is not.
#[derive(Debug, Default)]
pub struct RuleFile {
    /// `None` when absent or not well-formed.
    pub settings: Option<RawSettings>,
    pub upstreams: BTreeMap<String, RawUpstream>,
    /// Each well-formed rule with its index in `rules`.
    pub rules: Vec<(usize, RawRule)>,
    /// Upstreams that are defined but not well-formed (their errors are in `errors`).
    pub broken_upstreams: Vec<String>,
    /// `upstreams` as a whole is not readable, so no upstream name is known.
    pub upstreams_broken: bool,
    /// A rule, or `rules` as a whole, is not well-formed: the file has rules, not all readable.
    pub rules_broken: bool,
    /// Every error, in file order.
    pub errors: Vec<ParseError>,
}

/// The keys of a rule file's top level.
const SECTIONS: &[&str] = &["settings", "upstreams", "rules"];

/// How many times a file is read again to find the next error, at most.
const MAX_PASSES: usize = 200;

/// Reads a rule file strictly, reporting every shape error (unknown keys, wrong types, missing
/// keys, duplicate keys) of every part, not only the first of the file. A YAML syntax error or a
/// second document ends the reading: it is the only error then.
///
/// serde stops at the first error, so after one the file is read again without the part key
/// that failed (or the part, when the error is about the part as a whole), until it reads.
/// Within one key of a part (`amount: { mx: 1, mn: 2 }`) only the first error is found.
pub fn parse_rule_file(src: &str) -> RuleFile {
    let mut file = RuleFile::default();
    match check_document(src) {
        Ok(duplicates) => file.errors = duplicates,
        Err(fatal) => {
            file.errors.push(fatal);
            file.upstreams_broken = true;
            file.rules_broken = true;
            return file;
        }
    }
    let duplicates = !file.errors.is_empty();
    walk_file(src, duplicates, &mut file);
    file.errors
        .sort_by_key(|e| e.location.map(|l| (l.line, l.column)));
    file
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

/// A shape error as an operator reads it: no Rust type names, no JSON.
fn rule_file_message(e: &serde_yaml::Error) -> String {
    clean_message(&e.to_string()).replace("a JSON number", "a number")
}

/// Syntax (and a second document, and duplicate keys): the errors serde would not find, or
/// not where they are. Every duplicate key is an error of its own (`Ok`); a syntax error or a
/// second document is the one error of the file (`Err`). YAML itself keeps the last of two
/// equal keys without a word, so rule files and rule test files are both checked with this.
pub fn check_document(src: &str) -> Result<Vec<ParseError>, ParseError> {
    let mut duplicates = Vec::new();
    loop {
        let mut documents = serde_yaml::Deserializer::from_str(src);
        let Some(first) = documents.next() else {
            return Ok(duplicates);
        };
        let scan = Scan {
            allowed: duplicates.len(),
            seen: Cell::new(0),
            path: RefCell::new(Vec::new()),
            found: RefCell::new(None),
        };
        if let Err(e) = (ScanSeed { scan: &scan }).deserialize(first) {
            let Some((path, key)) = scan.found.take() else {
                return Err(syntax_error(src, &e));
            };
            duplicates.push(duplicate_key(src, &e, &path, &key));
            if duplicates.len() >= MAX_PASSES {
                return Ok(duplicates);
            }
            continue;
        }
        if let Some(second) = documents.next() {
            return Err(ParseError {
                location: Some(second_document(src).unwrap_or_else(|| {
                    // The scan below finds every document start; this is a fallback.
                    let find = Find {
                        path: &[],
                        key: false,
                    };
                    match find.deserialize(second) {
                        Err(e) => error_location(&e),
                        Ok(()) => Location { line: 1, column: 1 },
                    }
                })),
                message: SECOND_DOCUMENT.into(),
            });
        }
        return Ok(duplicates);
    }
}

/// A YAML syntax error: libyaml's message without the position we print anyway, with the
/// context it gives (where the construct that is not closed starts). An error at the very end
/// of the file (an unclosed `[` or `{`) is reported where that construct starts.
fn syntax_error(src: &str, e: &serde_yaml::Error) -> ParseError {
    let msg = e.to_string();
    let (problem, context) = match msg.split_once(", while ") {
        Some((p, c)) => (p, Some(c)),
        None => (msg.as_str(), None),
    };
    let problem = match problem.find(" at line ") {
        Some(i) => &problem[..i],
        None => problem,
    };
    let mut location = error_location(e);
    let mut message = problem.replace('`', "\"");
    if let Some(context) = context {
        let (what, start) = match context.split_once(" at line ") {
            Some((what, at)) => (what, parse_line_column(at)),
            None => (context, None),
        };
        match start {
            Some(start) if at_end(src, location) => {
                location = start;
                message.push_str(&format!(
                    " before the end of the file (while {what} that starts here)"
                ));
            }
            Some(start) => message.push_str(&format!(
                " (while {what} that starts at line {} column {})",
                start.line, start.column
            )),
            None => message.push_str(&format!(" (while {what})")),
        }
    }
    if message.contains("expected ',' or '}'") {
        message
            .push_str(": a flow mapping { ... } needs a \",\" between entries and a closing \"}\"");
    } else if message.contains("expected ',' or ']'") {
        message
            .push_str(": a flow sequence [ ... ] needs a \",\" between items and a closing \"]\"");
    }
    ParseError {
        location: Some(location),
        message,
    }
}

/// `L column C` as libyaml writes a position.
fn parse_line_column(at: &str) -> Option<Location> {
    let (line, rest) = at.split_once(" column ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some(Location {
        line: line.trim().parse().ok()?,
        column: column.parse().ok()?,
    })
}

/// Whether nothing but white space and comments follows `at`.
fn at_end(src: &str, at: Location) -> bool {
    let text = Text::new(src);
    let Some(i) = text.locs.iter().position(|l| *l == at) else {
        return true;
    };
    let rest: String = text.chars[i.min(text.chars.len())..].iter().collect();
    rest.lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
}

/// Where a second document starts: a `---` line after content (or after another `---`), or
/// content after a `...` line.
fn second_document(src: &str) -> Option<Location> {
    let marker = |line: &str, m: &str| {
        line.strip_prefix(m)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
    };
    let (mut started, mut ended) = (false, false);
    for (n, line) in src.lines().enumerate() {
        let line = line.trim_start_matches('\u{feff}');
        let at = Some(Location {
            line: n + 1,
            column: 1,
        });
        if marker(line, "---") {
            if started {
                return at;
            }
            started = true;
        } else if marker(line, "...") {
            ended = started;
        } else if line.trim().is_empty()
            || line.trim_start().starts_with('#')
            || line.starts_with('%')
        {
            continue;
        } else if ended {
            return at;
        } else {
            started = true;
        }
    }
    None
}

/// One step of a path, owned.
#[derive(Debug, Clone)]
enum PathSeg {
    Key(String),
    Index(usize),
}

/// `rules[0].amount`, as serde_yaml writes paths.
fn path_text(path: &[PathSeg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            PathSeg::Key(k) if out.is_empty() => out.push_str(k),
            PathSeg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            PathSeg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn duplicate_key(src: &str, e: &serde_yaml::Error, path: &[PathSeg], key: &str) -> ParseError {
    let mut segs: Vec<Seg<'_>> = path
        .iter()
        .map(|s| match s {
            PathSeg::Key(k) => Seg::Key(k),
            PathSeg::Index(i) => Seg::Index(*i),
        })
        .collect();
    segs.push(Seg::Key(key));
    let first = locate_key(src, &segs)
        .map(|l| format!(" (first at line {})", l.line))
        .unwrap_or_default();
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{}: ", path_text(path))
    };
    ParseError {
        location: Some(error_location(e)),
        message: format!(
            "{prefix}duplicate key \"{key}\"{first}: a key may appear only once in a mapping"
        ),
    }
}

/// A walk over a whole document that fails at the first duplicate key after `allowed` ones
/// (serde_yaml marks an error raised while a key is read with the key's position).
struct Scan {
    allowed: usize,
    seen: Cell<usize>,
    path: RefCell<Vec<PathSeg>>,
    /// The duplicate the walk failed at: the mapping's path and the key.
    found: RefCell<Option<(Vec<PathSeg>, String)>>,
}

const DUPLICATE: &str = "\u{0}duplicate";

#[derive(Clone, Copy)]
struct ScanSeed<'a> {
    scan: &'a Scan,
}

impl<'de> DeserializeSeed<'de> for ScanSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScanSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let keys = RefCell::new(HashSet::new());
        while let Some(key) = map.next_key_seed(ScanKey {
            scan: self.scan,
            keys: &keys,
        })? {
            self.scan
                .path
                .borrow_mut()
                .push(PathSeg::Key(key.unwrap_or_default()));
            map.next_value_seed(self)?;
            self.scan.path.borrow_mut().pop();
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            self.scan.path.borrow_mut().push(PathSeg::Index(i));
            let more = seq.next_element_seed(self)?.is_some();
            self.scan.path.borrow_mut().pop();
            if !more {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged node (`!tag value`).
        let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
        de::VariantAccess::newtype_variant_seed(variant, self)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// A mapping key during the scan: its text (`None` for a mapping or sequence as a key), or the
/// error when it repeats an earlier key of the same mapping.
struct ScanKey<'a> {
    scan: &'a Scan,
    keys: &'a RefCell<HashSet<String>>,
}

impl<'de> DeserializeSeed<'de> for ScanKey<'_> {
    type Value = Option<String>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(self)
    }
}

impl ScanKey<'_> {
    fn key<E: de::Error>(self, key: String) -> Result<Option<String>, E> {
        if !self.keys.borrow_mut().insert(key.clone()) {
            let n = self.scan.seen.get() + 1;
            self.scan.seen.set(n);
            if n > self.scan.allowed {
                let path = self.scan.path.borrow().clone();
                *self.scan.found.borrow_mut() = Some((path, key));
                return Err(E::custom(DUPLICATE));
            }
        }
        Ok(Some(key))
    }
}

impl<'de> Visitor<'de> for ScanKey<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<String>, E> {
        self.key(v.to_owned())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<String>, E> {
        self.key(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<String>, E> {
        self.key(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<String>, E> {
        self.key(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<String>, E> {
        self.key(v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
        self.key("~".to_owned())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<String>, A::Error> {
        (ScanSeed { scan: self.scan }).visit_map(map)?;
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<String>, A::Error> {
        (ScanSeed { scan: self.scan }).visit_seq(seq)?;
        Ok(None)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Option<String>, A::Error> {
        (ScanSeed { scan: self.scan }).visit_enum(data)?;
        Ok(None)
    }
}

/// A part of a rule file, read (and failing) on its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Part {
    Settings,
    Upstream(String),
    Rule(usize),
}

/// What a walk leaves out, because an earlier walk failed there.
#[derive(Default)]
struct Skip {
    sections: HashSet<String>,
    parts: HashSet<Part>,
    keys: HashMap<Part, HashSet<String>>,
}

/// Where a walk is: on failure, where the error belongs.
#[derive(Default)]
struct Cursor {
    section: Option<String>,
    part: Option<Part>,
    key: Option<String>,
    /// Every key of the part is read: the error is about the part as a whole.
    done: bool,
}

/// The well-formed parts one walk read.
#[derive(Default)]
struct Found {
    settings: Option<RawSettings>,
    upstreams: BTreeMap<String, RawUpstream>,
    rules: Vec<(usize, RawRule)>,
}

struct Walker<'s> {
    skip: &'s Skip,
    cursor: RefCell<Cursor>,
    found: RefCell<Found>,
}

/// Reads the file's parts, again and again, each time without what failed the time before.
fn walk_file(src: &str, duplicates: bool, file: &mut RuleFile) {
    let mut skip = Skip::default();
    for _ in 0..MAX_PASSES {
        let walker = Walker {
            skip: &skip,
            cursor: RefCell::default(),
            found: RefCell::default(),
        };
        let result = (Root { w: &walker }).deserialize(serde_yaml::Deserializer::from_str(src));
        let found = walker.found.into_inner();
        let cursor = walker.cursor.into_inner();
        let e = match result {
            Ok(()) => {
                file.settings = found.settings;
                file.upstreams = found.upstreams;
                file.rules = found.rules;
                return;
            }
            Err(e) => e,
        };
        let raw = e.to_string();
        let error = ParseError {
            location: Some(error_location(&e)),
            message: rule_file_message(&e),
        };
        // Already reported, at the repeated key, by `check_document`.
        let repeated = duplicates && raw.contains("duplicate field");
        let progress = match (cursor.part, cursor.key) {
            (Some(part), Some(key)) if !cursor.done => {
                if !repeated {
                    file.errors.push(error);
                }
                file.broken(&part);
                skip.keys.entry(part).or_default().insert(key)
            }
            (Some(part), _) => {
                // A missing key that is there but was left out for its own error.
                let left_out = missing_field(&raw)
                    .is_some_and(|f| skip.keys.get(&part).is_some_and(|keys| keys.contains(f)));
                if !left_out && !repeated {
                    file.errors.push(error);
                }
                file.broken(&part);
                skip.parts.insert(part)
            }
            (None, _) => {
                file.errors.push(error);
                match cursor.section {
                    Some(section) => {
                        match section.as_str() {
                            "upstreams" => file.upstreams_broken = true,
                            "settings" => {}
                            // `rules` unreadable, or an unknown key that may be a misspelt
                            // `rules`: "no rules" would only add noise.
                            _ => file.rules_broken = true,
                        }
                        skip.sections.insert(section)
                    }
                    None => false,
                }
            }
        };
        if !progress {
            break;
        }
    }
    // Could not read on: whatever is not known is broken.
    file.upstreams_broken = true;
    file.rules_broken = true;
}

impl RuleFile {
    fn broken(&mut self, part: &Part) {
        match part {
            Part::Settings => {}
            Part::Upstream(name) => {
                if !self.broken_upstreams.contains(name) {
                    self.broken_upstreams.push(name.clone());
                }
            }
            Part::Rule(_) => self.rules_broken = true,
        }
    }
}

/// `name` from serde's "missing field `name`".
fn missing_field(msg: &str) -> Option<&str> {
    let rest = &msg[msg.find("missing field `")? + "missing field `".len()..];
    rest.split('`').next()
}

/// The document: nothing (an empty file), or a mapping of the sections.
struct Root<'a, 's> {
    w: &'a Walker<'s>,
}

const ROOT_EXPECTED: &str = "a mapping with the keys settings, upstreams and rules";

impl<'de> DeserializeSeed<'de> for Root<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for Root<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(ROOT_EXPECTED)
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let w = self.w;
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key_seed(SectionKey { w })? {
            // A repeated section was reported as a duplicate key; the first one counts.
            let Some(section) = key.filter(|k| seen.insert(k.clone())) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            w.cursor.borrow_mut().section = Some(section.clone());
            match section.as_str() {
                "settings" if w.skip.parts.contains(&Part::Settings) => {
                    map.next_value::<IgnoredAny>()?;
                }
                "settings" => {
                    let settings = map.next_value_seed(PartSeed::<RawSettings> {
                        w,
                        part: Part::Settings,
                        expected: "a mapping of settings (deadline, on_error, error_reason, reject_status)",
                        ty: PhantomData,
                    })?;
                    w.found.borrow_mut().settings = settings;
                }
                "upstreams" => map.next_value_seed(Upstreams { w })?,
                _ => map.next_value_seed(Rules { w })?,
            }
            w.cursor.borrow_mut().section = None;
        }
        Ok(())
    }
}

/// A top-level key: a section (`None` when left out), or an error at the key.
struct SectionKey<'a, 's> {
    w: &'a Walker<'s>,
}

impl<'de> DeserializeSeed<'de> for SectionKey<'_, '_> {
    type Value = Option<String>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for SectionKey<'_, '_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("one of settings, upstreams, rules")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<String>, E> {
        if self.w.skip.sections.contains(key) {
            return Ok(None);
        }
        self.w.cursor.borrow_mut().section = Some(key.to_owned());
        if !SECTIONS.contains(&key) {
            return Err(E::unknown_field(key, SECTIONS));
        }
        Ok(Some(key.to_owned()))
    }
}

/// `upstreams`: a mapping of upstreams by name.
struct Upstreams<'a, 's> {
    w: &'a Walker<'s>,
}

impl<'de> DeserializeSeed<'de> for Upstreams<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Upstreams<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of upstreams by name")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let w = self.w;
        while let Some(name) = map.next_key::<String>()? {
            let part = Part::Upstream(name.clone());
            // A repeated name was reported as a duplicate key.
            if w.found.borrow().upstreams.contains_key(&name) || w.skip.parts.contains(&part) {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let upstream = map.next_value_seed(PartSeed::<RawUpstream> {
                w,
                part,
                expected: "an upstream: a mapping with url (and timeout, headers, health)",
                ty: PhantomData,
            })?;
            if let Some(upstream) = upstream {
                w.found.borrow_mut().upstreams.insert(name, upstream);
            }
        }
        Ok(())
    }
}

/// `rules`: a sequence of rules (or nothing).
struct Rules<'a, 's> {
    w: &'a Walker<'s>,
}

impl<'de> DeserializeSeed<'de> for Rules<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for Rules<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let w = self.w;
        for i in 0.. {
            let part = Part::Rule(i);
            if w.skip.parts.contains(&part) {
                if seq.next_element::<IgnoredAny>()?.is_none() {
                    break;
                }
                continue;
            }
            let seed = PartSeed::<RawRule> {
                w,
                part,
                expected: "a rule: a mapping with name, a check and reason",
                ty: PhantomData,
            };
            match seq.next_element_seed(seed)? {
                None => break,
                Some(Some(rule)) => w.found.borrow_mut().rules.push((i, rule)),
                Some(None) => {}
            }
        }
        Ok(())
    }
}

/// One part, read as `T` without the keys an earlier walk failed at: `None` when some were
/// left out (the part is broken, its errors reported).
struct PartSeed<'a, 's, T> {
    w: &'a Walker<'s>,
    part: Part,
    expected: &'static str,
    ty: PhantomData<T>,
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for PartSeed<'_, '_, T> {
    type Value = Option<T>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        let w = self.w;
        {
            let mut cursor = w.cursor.borrow_mut();
            cursor.part = Some(self.part.clone());
            cursor.key = None;
            cursor.done = false;
        }
        let value = d.deserialize_map(self)?;
        let mut cursor = w.cursor.borrow_mut();
        cursor.part = None;
        cursor.key = None;
        cursor.done = false;
        Ok(value)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for PartSeed<'_, '_, T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<T>, A::Error> {
        let left_out = self.w.skip.keys.get(&self.part);
        let value = T::deserialize(de::value::MapAccessDeserializer::new(Filtered {
            inner: map,
            left_out,
            w: self.w,
        }))?;
        Ok(left_out.is_none().then_some(value))
    }
}

/// A part's mapping without the keys left out; it records which key is being read.
struct Filtered<'a, 's, A> {
    inner: A,
    left_out: Option<&'a HashSet<String>>,
    w: &'a Walker<'s>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Filtered<'_, '_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        mut seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            let key = self.inner.next_key_seed(FilterKey {
                seed,
                left_out: self.left_out,
                w: self.w,
            })?;
            match key {
                None => {
                    self.w.cursor.borrow_mut().done = true;
                    return Ok(None);
                }
                Some(Ok(key)) => return Ok(Some(key)),
                Some(Err(back)) => {
                    self.inner.next_value::<IgnoredAny>()?;
                    seed = back;
                }
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.inner.next_value_seed(seed)
    }
}

/// Reads a key of a part for `seed` (the type's own field names), so an unknown key fails
/// while serde_yaml reads it and is reported at the key; a key left out gives the seed back.
struct FilterKey<'a, 's, K> {
    seed: K,
    left_out: Option<&'a HashSet<String>>,
    w: &'a Walker<'s>,
}

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for FilterKey<'_, '_, K> {
    type Value = Result<K::Value, K>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, K: DeserializeSeed<'de>> Visitor<'de> for FilterKey<'_, '_, K> {
    type Value = Result<K::Value, K>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        if self.left_out.is_some_and(|keys| keys.contains(key)) {
            return Ok(Err(self.seed));
        }
        self.w.cursor.borrow_mut().key = Some(key.to_owned());
        self.seed
            .deserialize(IntoDeserializer::<E>::into_deserializer(key))
            .map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "settings:\n  deadline: 4s\nrules:\n  - name: a\n    require: 'x > 1'\n  - name: b\n    amount: { min: 1 }\n";

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
}
