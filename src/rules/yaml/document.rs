//! Checks of a whole document that serde does not make (or not where they are): YAML syntax
//! errors, a second document, and every duplicate key.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::flow::open_flow;
use super::hints::hint;
use super::locate::{locate_key, Find, Seg};
use super::scalar::Text;
use super::{error_location, passes_for, Location, ParseError, SECOND_DOCUMENT};

/// A document that reads: its repeated keys, each an error of its own, and how many values
/// it holds.
#[derive(Debug)]
pub struct Checked {
    pub duplicates: Vec<ParseError>,
    /// Every node, each key and each value, aliases expanded: what one reading costs, which
    /// bounds how often the file is read again for its next error ([`passes_for`]).
    pub values: usize,
}

/// Syntax (and a second document, and duplicate keys, and aliases expanding to too much): the
/// errors serde would not find, or not where they are. Every duplicate key is an error of its
/// own (`Ok`); any other is the one error of the file (`Err`). YAML itself keeps the last of
/// two equal keys without a word, so rule files and rule test files are both checked with this.
pub fn check_document(src: &str) -> Result<Checked, ParseError> {
    // The first reading counts the values and the repeated keys. Each repeated key is then
    // found by a reading that fails at it, serde_yaml placing the error at the key.
    let (values, repeated) = match scan(src, usize::MAX) {
        Scanned::Read { values, repeated } => (values, repeated),
        // (No repeated key fails a reading that allows them all.)
        Scanned::Failed(e) | Scanned::Duplicate(e) => return Err(e),
    };
    let mut checked = Checked {
        duplicates: Vec::new(),
        values,
    };
    let shown = repeated.min(passes_for(values));
    for allowed in 0..shown {
        match scan(src, allowed) {
            Scanned::Duplicate(e) => checked.duplicates.push(e),
            // Read as before: the same file, the same readings.
            Scanned::Read { .. } | Scanned::Failed(_) => break,
        }
    }
    if repeated > checked.duplicates.len() {
        let at = checked.duplicates.last().and_then(|e| e.location);
        checked.duplicates.push(ParseError {
            location: at,
            message: format!(
                "and {} more repeated keys, not shown: fix these and check again",
                repeated - checked.duplicates.len()
            ),
        });
    }
    Ok(checked)
}

/// What one reading of a document found.
enum Scanned {
    /// Read to the end: its size in nodes, and how many keys repeat one before them.
    Read { values: usize, repeated: usize },
    /// The repeated key after the first `allowed` ones.
    Duplicate(ParseError),
    /// The document's one error.
    Failed(ParseError),
}

/// Reads `src` through, allowing `allowed` repeated keys.
fn scan(src: &str, allowed: usize) -> Scanned {
    let mut documents = serde_yaml::Deserializer::from_str(src);
    let Some(first) = documents.next() else {
        return Scanned::Read {
            values: 0,
            repeated: 0,
        };
    };
    let scan = Scan {
        allowed,
        seen: Cell::new(0),
        values: Cell::new(0),
        max_values: max_values(src),
        path: RefCell::new(Vec::new()),
        found: RefCell::new(None),
    };
    if let Err(e) = (ScanSeed { scan: &scan }).deserialize(first) {
        if scan.values.get() > scan.max_values {
            return Scanned::Failed(too_many_values(&e, scan.max_values));
        }
        return match scan.found.take() {
            Some((path, key)) => Scanned::Duplicate(duplicate_key(src, &e, &path, &key)),
            None => Scanned::Failed(syntax_error(src, &e)),
        };
    }
    if let Some(second) = documents.next() {
        // No `---` nor `...`: libyaml saw a document end where the file did not mean one.
        if second_document(src).is_none() {
            if let Some(why) = no_second_document(src) {
                return Scanned::Failed(why);
            }
        }
        return Scanned::Failed(ParseError {
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
    Scanned::Read {
        values: scan.values.get(),
        repeated: scan.seen.get(),
    }
}

/// The most nodes a file of `src` may expand to through its aliases: far more than any file
/// written out holds (a node takes a character or more), and a few hundred values repeated at
/// a hundred aliases, yet bounded. A single anchor of N items used at N aliases reads N² values
/// (N = 5,000, a 25 KB file, took 3.5 s and 1.8 GB), and serde_yaml's own limit only stops
/// aliases of aliases.
fn max_values(src: &str) -> usize {
    2 * src.len() + 100_000
}

fn too_many_values(e: &serde_yaml::Error, max: usize) -> ParseError {
    ParseError {
        location: Some(error_location(e)),
        message: format!("the file's aliases (*name) repeat its anchors (&name) to more than {max} values in all (two per character of the file, and 100000): write the values out instead of repeating large anchors"),
    }
}

/// The first character YAML does not allow in a file (C0 and C1 controls but tab, line
/// breaks and NEL, DEL, U+FFFE and U+FFFF), where it is and which it is.
fn control_character(src: &str) -> Option<ParseError> {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r' | '\u{85}')
            || !(c.is_control() || matches!(c, '\u{FFFE}' | '\u{FFFF}'))
    };
    let (at, c) = src.char_indices().find(|&(_, c)| !allowed(c))?;
    Some(ParseError {
        location: Some(Location::after(&src[..at])),
        message: format!(
            "a control character (U+{:04X}) is not allowed in YAML, even in quotes; delete it (an editor may show it as ^[ or a box), or inside double quotes write it as an escape (\\u{:04X})",
            c as u32, c as u32
        ),
    })
}

/// A YAML syntax error: libyaml's message without the position we print anyway, with the
/// context it gives (where the construct that is not closed starts). An error at the very end
/// of the file (an unclosed `[` or `{`) is reported where that construct starts.
fn syntax_error(src: &str, e: &serde_yaml::Error) -> ParseError {
    let msg = e.to_string();
    // libyaml names such a character by its byte offset and serde_yaml gives no position: the
    // character is found, and named, here.
    if msg.starts_with("control characters are not allowed") {
        if let Some(found) = control_character(src) {
            return found;
        }
    }
    let (problem, context) = match msg.split_once(", while ") {
        Some((p, c)) => (p, Some(c)),
        None => (msg.as_str(), None),
    };
    let problem = match problem.find(" at line ") {
        Some(i) => &problem[..i],
        None => problem,
    };
    let mut location = error_location(e);
    // One at the start of a line above (where a joined file began) or on the error's line.
    if let Some(bom) = mid_file_bom(src).filter(|bom| {
        bom.location.is_some_and(|at| {
            at.line == location.line || (at.line < location.line && at.column == 1)
        })
    }) {
        return bom;
    }
    let mut message = problem.replace('`', "\"");
    // A `{` or `[` left open at the end of its line, which libyaml gives no start for.
    let mut left_open = None;
    if let Some(context) = context {
        let (mut what, mut start) = match context.split_once(" at line ") {
            Some((what, at)) => (what, parse_line_column(at)),
            None => (context, None),
        };
        if start.is_none() && what == "parsing a flow node" {
            if let Some((open, c)) = open_flow(src, location) {
                what = if c == '{' {
                    "parsing a flow mapping"
                } else {
                    "parsing a flow sequence"
                };
                start = Some(open);
                left_open = (open.line < location.line).then_some(c);
            }
        }
        match start {
            // libyaml notices a missing `:` lines later; the key that lacks it is where it began.
            Some(start) if message.starts_with("could not find expected ':'") => {
                location = start;
                message.push_str(&format!(" (while {what})"));
            }
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
    // An alias of an alias of …: serde_yaml stops expanding it, at no position of its own.
    if message == "repetition limit exceeded" {
        message.push_str(": the file's aliases (*name) expand to too many values; write the values out instead of repeating anchors");
    }
    if let Some(hint) = hint(src, location, &message) {
        message.push_str(": ");
        message.push_str(&hint);
    } else if message.contains("expected ',' or '}'") || left_open == Some('{') {
        message
            .push_str(": a flow mapping { ... } needs a \",\" between entries and a closing \"}\"");
    } else if message.contains("expected ',' or ']'") || left_open == Some('[') {
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

/// What made libyaml read a second document in a file with no `---` or `...` line: a
/// byte-order mark past the start (two files joined), or a first key indented more than a
/// later one at column 1 (`settings:` deleted above its indented keys).
fn no_second_document(src: &str) -> Option<ParseError> {
    if let Some(bom) = mid_file_bom(src) {
        return Some(bom);
    }
    let content = |l: &&str| {
        let t = l.trim_start_matches('\u{feff}').trim();
        !t.is_empty() && !t.starts_with('#')
    };
    let mut lines = src.lines().enumerate().filter(|(_, l)| content(l));
    let (_, first) = lines.next()?;
    let indent = first.len() - first.trim_start_matches([' ', '\u{feff}']).len();
    if indent == 0 {
        return None;
    }
    let (n, _) = lines.find(|(_, l)| !l.starts_with(' '))?;
    Some(ParseError {
        location: Some(Location {
            line: n + 1,
            column: 1,
        }),
        message: format!(
            "this key starts at column 1, but the file's first key is indented (column {}): top-level keys start at column 1, so the key the first lines belong under (settings: in a rule file, say) is probably missing above them",
            indent + 1
        ),
    })
}

/// A byte-order mark past the start of the file (two files joined, or a line pasted from
/// one): invisible in an editor, and libyaml reads it as text, so the error it reports (a
/// second document, a line "indented wrongly") points at a line that looks right.
fn mid_file_bom(src: &str) -> Option<ParseError> {
    let (i, _) = src.char_indices().skip(1).find(|&(_, c)| c == '\u{feff}')?;
    Some(ParseError {
        location: Some(Location::after(&src[..i])),
        message: "a byte-order mark (U+FEFF, invisible) in the middle of the file, as when two files are joined: delete it".into(),
    })
}

/// Where a second document starts: a `---` line after content (or after another `---`), or
/// content after a `...` line.
pub(super) fn second_document(src: &str) -> Option<Location> {
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

/// `path` as the borrowed steps `locate` takes.
fn segs(path: &[PathSeg]) -> Vec<Seg<'_>> {
    path.iter()
        .map(|s| match s {
            PathSeg::Key(k) => Seg::Key(k),
            PathSeg::Index(i) => Seg::Index(*i),
        })
        .collect()
}

fn duplicate_key(src: &str, e: &serde_yaml::Error, path: &[PathSeg], key: &str) -> ParseError {
    let mut segs = segs(path);
    segs.push(Seg::Key(key));
    let first = locate_key(src, &segs)
        .map(|l| format!(" (first at line {})", l.line))
        .unwrap_or_default();
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{}: ", path_text(path))
    };
    // `{ amount: 3,000,000 }`: the commas ended entries, and `000` came twice.
    let separator = if super::digits_only(key) {
        format!("; {}", super::THOUSANDS_SEPARATOR)
    } else if key == "name"
        && matches!(path, [PathSeg::Key(rules), PathSeg::Index(_)] if rules == "rules")
    {
        // A rule's `- ` left out: its keys joined the rule above it, `name` first.
        "; if a new rule starts here, put \"- \" on its first line (its name, or a when written above it), in line with the other rules' dashes"
            .to_owned()
    } else {
        String::new()
    };
    ParseError {
        location: Some(error_location(e)),
        message: format!(
            "{prefix}duplicate key \"{key}\"{first}: a key may appear only once in a mapping{separator}"
        ),
    }
}

/// A walk over a whole document that fails at the first duplicate key after `allowed` ones
/// (serde_yaml marks an error raised while a key is read with the key's position), or once it
/// has met more than `max_values` nodes.
struct Scan {
    allowed: usize,
    seen: Cell<usize>,
    values: Cell<usize>,
    max_values: usize,
    path: RefCell<Vec<PathSeg>>,
    /// The duplicate the walk failed at: the mapping's path and the key.
    found: RefCell<Option<(Vec<PathSeg>, String)>>,
}

const DUPLICATE: &str = "\u{0}duplicate";
const TOO_MANY: &str = "\u{0}too many values";

impl Scan {
    /// Counts a node about to be read; an error once there are too many.
    fn count<E: de::Error>(&self) -> Result<(), E> {
        let n = self.values.get() + 1;
        self.values.set(n);
        if n > self.max_values {
            return Err(E::custom(TOO_MANY));
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
struct ScanSeed<'a> {
    scan: &'a Scan,
}

impl<'de> DeserializeSeed<'de> for ScanSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.scan.count()?;
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

    crate::ignore_scalars!();
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
        self.scan.count()?;
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

/// The checks of a rule file's values, on one reading of it as a `serde_yaml::Value` (none for
/// a file with a syntax error, which is reported on its own): its [`tags`] and
/// [`keys_without_value`].
pub fn rule_file_values(src: &str) -> Vec<ParseError> {
    let Ok(root) = serde_yaml::from_str::<serde_yaml::Value>(src) else {
        return Vec::new();
    };
    let mut errors = tags(src, &root);
    errors.extend(keys_without_value(src, &root));
    // A fetch's `body` is the JSON sent: no type there refuses a key, `<<` included.
    let in_body = |path: &[PathSeg]| {
        path.windows(2)
            .any(|w| matches!(w, [PathSeg::Key(f), PathSeg::Key(b)] if f == "fetch" && b == "body"))
    };
    errors.extend(merge_keys(src, &root, in_body));
    errors.extend(non_finite_numbers(src, &root, in_body));
    let sent = "the body sent would not be the one written";
    errors.extend(reserved_keys(src, &root, sent, in_body));
    errors
}

/// [`rule_file_values`] for a rule test file: its [`tags`], [`test_keys_without_value`] and
/// [`merge_keys`].
pub fn test_file_values(src: &str) -> Vec<ParseError> {
    let Ok(root) = serde_yaml::from_str::<serde_yaml::Value>(src) else {
        return Vec::new();
    };
    let mut errors = tags(src, &root);
    errors.extend(test_keys_without_value(src, &root));
    errors.extend(merge_keys(src, &root, |_| true));
    // A case's `request` and a canned answer's `body` are JSON.
    let serve = "a payment with one is refused, an upstream answer with one is not read as JSON";
    errors.extend(reserved_keys(src, &root, serve, |path| {
        path.iter()
            .any(|seg| matches!(seg, PathSeg::Key(k) if k == "request" || k == "body"))
    }));
    errors
}

/// Every key of the JSON a file writes (`json` picks the paths inside it) that serde_json
/// reads as an instruction rather than data ([`RESERVED`](crate::payload::RESERVED)), at the
/// key, with `why` it matters there. Read from YAML, `{ available: { "$serde_json::private::Number": "99" } }` would be the
/// number 99, where a payment with such a key is refused and an upstream answer with one is not
/// read as JSON: a rule test would pass on what `serve` never decides, a fetch would send what
/// was not written.
fn reserved_keys(
    src: &str,
    root: &serde_yaml::Value,
    why: &str,
    json: impl Fn(&[PathSeg]) -> bool,
) -> Vec<ParseError> {
    use crate::payload::RESERVED;
    // Written out it has a `$`; spelled with escapes (`"\x24serde_json…"`), a backslash.
    if !src.contains(['$', '\\']) {
        return Vec::new();
    }
    let reserved = |path: &[PathSeg], _: &serde_yaml::Value| match path.split_last() {
        Some((PathSeg::Key(k), inside)) if k.starts_with(RESERVED) && json(inside) => Visit::Found,
        _ => Visit::Descend,
    };
    entries_where(root, &reserved)
        .into_iter()
        .take(super::MAX_LOCATED)
        .map(|path| ParseError {
            location: locate_key(src, &segs(&path)),
            message: format!(
                "{}: a key starting with \"{RESERVED}\" is read by the JSON reader here as an instruction, not as data ({why}); rename the key",
                path_text(&path)
            ),
        })
        .collect()
}

/// Every key of a rule file written without a value (`mode:`, `min: ~`), at the key. YAML reads
/// such a value as null, which serde takes for an absent optional key without a word: a shadow
/// rule whose `mode:` was cleared would start refusing payments, an amount range whose `min:`
/// was cleared would let any amount through. A null is meaningful only inside a fetch `body`
/// (the JSON sent), which is left alone, and an empty top-level section is simply none.
fn keys_without_value(src: &str, root: &serde_yaml::Value) -> Vec<ParseError> {
    // A section left empty (`settings:` with every line commented out) is no section, which
    // is what it says; `rules:` has its own error for that.
    without_value(src, root, |path| path.len() > 1)
}

/// [`keys_without_value`] for a rule test file, whose `request` and canned answers' `body` are
/// JSON, where a null may be meant — except for a key made of digits alone: in `{ amount:
/// 3,000,001 }` the commas end entries, so the amount is 3 and `000` and `001` are keys.
/// Elsewhere, top-level keys included, a cleared `now:` would run the cases on today's clock,
/// and a cleared `reason:` or `status:` in `expect` would stop checking it, each without a word.
fn test_keys_without_value(src: &str, root: &serde_yaml::Value) -> Vec<ParseError> {
    without_value(src, root, |path| {
        let json = |seg: &PathSeg| matches!(seg, PathSeg::Key(k) if k == "request" || k == "body");
        matches!(path.last(), Some(PathSeg::Key(k)) if super::digits_only(k))
            || !path.iter().any(json)
    })
}

/// Every infinite or not-a-number value (`.inf`, `.nan`) under a path `within` takes, at the
/// value: JSON has no such number, and the JSON writer sends `null` in its place.
fn non_finite_numbers(
    src: &str,
    root: &serde_yaml::Value,
    within: impl Fn(&[PathSeg]) -> bool,
) -> Vec<ParseError> {
    let non_finite = |_: &[PathSeg], value: &serde_yaml::Value| match value {
        serde_yaml::Value::Number(n) if n.as_f64().is_some_and(|f| !f.is_finite()) => Visit::Found,
        _ => Visit::Descend,
    };
    // List items too (`[1, .inf]`).
    entries_or_items_where(root, &non_finite)
        .into_iter()
        .filter(|path| within(path))
        .take(super::MAX_LOCATED)
        .map(|path| ParseError {
            location: Some(super::locate(src, &segs(&path))),
            message: format!(
                "{}: infinity and NaN are no JSON numbers, so the body would carry null here; write a number",
                path_text(&path)
            ),
        })
        .collect()
}

/// Every `<<` key under a path `within` takes, at the key: in a rule test's request, or a
/// fetch's body, it would be sent as a field named `<<` (see [`MERGE_KEY`](super::MERGE_KEY));
/// elsewhere in a rule file its types refuse it as an unknown field.
fn merge_keys(
    src: &str,
    root: &serde_yaml::Value,
    within: impl Fn(&[PathSeg]) -> bool,
) -> Vec<ParseError> {
    if !src.contains("<<") {
        return Vec::new();
    }
    let merge = |path: &[PathSeg], _: &serde_yaml::Value| match path.split_last() {
        Some((PathSeg::Key(k), inside)) if k == "<<" && within(inside) => Visit::Found,
        _ => Visit::Descend,
    };
    entries_where(root, &merge)
        .into_iter()
        .map(|path| ParseError {
            location: locate_key(src, &segs(&path)),
            message: format!("{}: {}", path_text(&path), super::MERGE_KEY),
        })
        .collect()
}

/// Every YAML tag (`!name` before a value or a key), at the tag. serde_yaml reads a tagged
/// value as the value alone, so a reason typed as `!Sold out` would reach buyers as `out`
/// without a word; rule files and rule tests use no tags, so each one is an error.
fn tags(src: &str, root: &serde_yaml::Value) -> Vec<ParseError> {
    use serde_yaml::Value;
    /// A tag's path, the tag, and whether it is on the key at the end of the path.
    type Found = (Vec<PathSeg>, String, bool);
    fn walk(node: &Value, path: &mut Vec<PathSeg>, found: &mut Vec<Found>) {
        match node {
            Value::Tagged(tagged) => {
                found.push((path.clone(), tagged.tag.to_string(), false));
                walk(&tagged.value, path, found);
            }
            Value::Mapping(map) => {
                for (key, value) in map {
                    let Some(name) = key.as_str() else { continue };
                    path.push(PathSeg::Key(name.to_owned()));
                    if let Value::Tagged(tagged) = key {
                        found.push((path.clone(), tagged.tag.to_string(), true));
                    }
                    walk(value, path, found);
                    path.pop();
                }
            }
            Value::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(PathSeg::Index(i));
                    walk(item, path, found);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    if !src.contains('!') {
        return Vec::new();
    }
    let mut found = Vec::new();
    walk(root, &mut Vec::new(), &mut found);
    found
        .into_iter()
        .take(super::MAX_LOCATED)
        .map(|(path, tag, on_key)| {
            let segs = segs(&path);
            let location = if on_key {
                locate_key(src, &segs)
            } else {
                Some(super::locate(src, &segs))
            };
            // As typed (serde_yaml shows a bare `!` as `!!`).
            let tag = location
                .and_then(|l| written_at(src, l))
                .filter(|t| t.starts_with('!'))
                .map_or(tag, str::to_owned);
            let what = match (path.is_empty(), on_key) {
                (true, _) => format!("\"{tag}\" before the document"),
                (false, true) => format!("{}: \"{tag}\" before the key", path_text(&path)),
                (false, false) => format!("{}: \"{tag}\"", path_text(&path)),
            };
            ParseError {
                location,
                message: format!("{what} is read as a YAML tag, which means nothing here and is dropped from what it tags; a text that starts with \"!\" goes in quotes (\"!…\")"),
            }
        })
        .collect()
}

/// The text at `at` in `src` up to the next space or line end.
fn written_at(src: &str, at: Location) -> Option<&str> {
    let line = src.lines().nth(at.line.checked_sub(1)?)?;
    let start = line.char_indices().nth(at.column.checked_sub(1)?)?.0;
    line[start..].split([' ', '\t']).next()
}

/// [`keys_without_value`] for the keys `pick` chooses.
fn without_value(
    src: &str,
    root: &serde_yaml::Value,
    pick: impl Fn(&[PathSeg]) -> bool,
) -> Vec<ParseError> {
    let null = |path: &[PathSeg], value: &serde_yaml::Value| {
        let key = |i: usize, name: &str| matches!(&path[i], PathSeg::Key(k) if k == name);
        // How deep into a fetch's body the entry is (1: a field of the body itself).
        let in_body = (1..path.len())
            .find(|&i| key(i, "body") && key(i - 1, "fetch"))
            .map(|i| path.len() - 1 - i);
        match in_body {
            // A null in a body is JSON's `null`, sent as written, but not a field that is
            // only `{amount}` unquoted: YAML's mapping `{amount: null}`, no placeholder.
            // `body:` itself left empty (its lines commented out) sends no body at all.
            Some(depth) if depth > 0 && value.is_null() => {
                if depth >= 2 && unquoted_placeholder(src, path).is_some() {
                    Visit::Found
                } else {
                    Visit::Skip
                }
            }
            _ if value.is_null() => Visit::Found,
            _ => Visit::Descend,
        }
    };
    let found: Vec<Vec<PathSeg>> = entries_where(root, &null)
        .into_iter()
        .filter(|path| pick(path))
        .collect();
    // Each is located by reading the file again: the first ones only, the rest counted.
    let more = found.len().saturating_sub(super::MAX_LOCATED);
    let mut errors: Vec<ParseError> = found
        .into_iter()
        .take(super::MAX_LOCATED)
        .map(|path| ParseError {
            location: locate_key(src, &segs(&path)),
            message: match path.last() {
                // `{ max: 1,000 }`: the comma ended the entry, and `000` became a key.
                Some(PathSeg::Key(k)) if super::digits_only(k) => format!(
                    "{}: no value; {}",
                    path_text(&path),
                    super::THOUSANDS_SEPARATOR
                ),
                // `upstreams:` indented under `settings:`, its entries not.
                Some(PathSeg::Key(k))
                    if path.len() > 1 && super::TOP_KEYS.contains(&k.as_str()) =>
                {
                    format!("{}: no value; {}", path_text(&path), super::top_key_hint(k))
                }
                _ => match unquoted_placeholder(src, &path) {
                    Some(name) => format!(
                        "{}: {{{name}}} {UNQUOTED_PLACEHOLDER} {{{name}: no value}}, not text; write it in quotes, \"{{{name}}}\"",
                        path_text(&path[..path.len() - 1])
                    ),
                    None => format!(
                        "{}: no value; write one, or delete the key",
                        path_text(&path)
                    ),
                },
            },
        })
        .collect();
    if more > 0 {
        errors.push(ParseError {
            location: None,
            message: format!("and {more} more keys without a value, not shown"),
        });
    }
    errors
}

/// What the error of an [`unquoted_placeholder`] says it is.
pub(super) const UNQUOTED_PLACEHOLDER: &str = "without quotes is YAML's mapping";

/// The placeholder an entry without a value was meant to be: `reason: {order_id}` or
/// `amount: {amount}` unquoted is a mapping whose one key is the placeholder's name, written
/// without a colon after it — unlike `amount: null` (or `amount: ~`), a null written on
/// purpose, which a fetch body may hold.
fn unquoted_placeholder<'p>(src: &str, path: &'p [PathSeg]) -> Option<&'p str> {
    let [_, .., PathSeg::Key(name)] = path else {
        return None;
    };
    // Only where templates are: elsewhere (`max: {amount}`) quoting it would not help.
    let templated = |seg: &PathSeg| matches!(seg, PathSeg::Key(k) if ["reason", "error_reason", "fetch"].contains(&k.as_str()));
    if !crate::rules::template::is_placeholder(name) || !path.iter().any(templated) {
        return None;
    }
    let at = super::locate_key(src, &segs(path))?;
    let line = src.lines().nth(at.line.checked_sub(1)?)?;
    let key: String = line.chars().skip(at.column.checked_sub(1)?).collect();
    let after = key.strip_prefix(name.as_str())?.trim_start();
    after.starts_with(['}', ',']).then_some(name.as_str())
}

/// What [`entries_where`] does with one mapping entry.
enum Visit {
    /// Its path is one of those looked for.
    Found,
    /// Nothing under it is looked at.
    Skip,
    Descend,
}

/// The path of every mapping entry of the document `root` that `decide` finds, in document
/// order; `decide` sees each entry's path (its key last) and value.
fn entries_where(
    root: &serde_yaml::Value,
    decide: &dyn Fn(&[PathSeg], &serde_yaml::Value) -> Visit,
) -> Vec<Vec<PathSeg>> {
    walk_where(root, decide, false)
}

/// [`entries_where`], judging each list item too, not only mapping entries.
fn entries_or_items_where(
    root: &serde_yaml::Value,
    decide: &dyn Fn(&[PathSeg], &serde_yaml::Value) -> Visit,
) -> Vec<Vec<PathSeg>> {
    walk_where(root, decide, true)
}

fn walk_where(
    root: &serde_yaml::Value,
    decide: &dyn Fn(&[PathSeg], &serde_yaml::Value) -> Visit,
    items_too: bool,
) -> Vec<Vec<PathSeg>> {
    struct Walk<'d> {
        decide: &'d dyn Fn(&[PathSeg], &serde_yaml::Value) -> Visit,
        items_too: bool,
        found: Vec<Vec<PathSeg>>,
    }
    impl Walk<'_> {
        fn judge(&mut self, value: &serde_yaml::Value, path: &mut Vec<PathSeg>) {
            match (self.decide)(path, value) {
                Visit::Found => self.found.push(path.clone()),
                Visit::Skip => {}
                Visit::Descend => self.walk(value, path),
            }
        }

        fn walk(&mut self, node: &serde_yaml::Value, path: &mut Vec<PathSeg>) {
            use serde_yaml::Value;
            match node {
                Value::Mapping(map) => {
                    for (key, value) in map {
                        let Some(key) = key.as_str() else { continue };
                        path.push(PathSeg::Key(key.to_owned()));
                        self.judge(value, path);
                        path.pop();
                    }
                }
                Value::Sequence(items) => {
                    for (i, item) in items.iter().enumerate() {
                        path.push(PathSeg::Index(i));
                        if self.items_too {
                            self.judge(item, path);
                        } else {
                            self.walk(item, path);
                        }
                        path.pop();
                    }
                }
                Value::Tagged(tagged) => self.walk(&tagged.value, path),
                _ => {}
            }
        }
    }
    let mut walk = Walk {
        decide,
        items_too,
        found: Vec::new(),
    };
    walk.walk(root, &mut Vec::new());
    walk.found
}
