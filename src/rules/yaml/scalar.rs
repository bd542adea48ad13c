//! Positions inside a scalar: maps each character of a parsed value back to the source
//! character it came from, through quotes, escapes, folding and block indentation.

use std::sync::{Arc, OnceLock};

use super::{locate, Location, Seg};

/// Where the character at `line`/`column` of a scalar's value (1-based, in characters, as Rhai
/// counts them) is in the file, given where the scalar starts (`scalar`, from
/// [`locate`](fn@super::locate)) and its parsed `value`. See [`ScalarMap`].
pub fn position_in_scalar(
    src: &str,
    scalar: Location,
    value: &str,
    line: usize,
    column: usize,
) -> Location {
    ScalarMap::new(src, scalar, value).position(line, column)
}

/// Where a scalar (an inline expression) is in its source, worked out when first asked for (a
/// run-time error of the expression): finding a node reads the whole document, far too much to
/// do for every expression of every load. Keeps the source (shared by a file's expressions)
/// and the node's path until then.
#[derive(Debug)]
pub struct Origin {
    src: Arc<str>,
    path: Vec<SegBuf>,
    map: OnceLock<ScalarMap>,
}

/// A [`Seg`] that owns its key, for a path kept past the borrow of the rule being compiled.
#[derive(Debug)]
enum SegBuf {
    Key(String),
    Index(usize),
}

impl Origin {
    pub fn new(src: Arc<str>, path: &[Seg<'_>]) -> Origin {
        let path = path
            .iter()
            .map(|seg| match seg {
                Seg::Key(k) => SegBuf::Key((*k).to_owned()),
                Seg::Index(i) => SegBuf::Index(*i),
            })
            .collect();
        Origin {
            src,
            path,
            map: OnceLock::new(),
        }
    }

    /// Where `line`/`column` of `value` (the scalar's parsed text) is in the source.
    pub fn position(&self, value: &str, line: usize, column: usize) -> Location {
        let map = self.map.get_or_init(|| {
            let path: Vec<Seg<'_>> = self
                .path
                .iter()
                .map(|seg| match seg {
                    SegBuf::Key(k) => Seg::Key(k),
                    SegBuf::Index(i) => Seg::Index(*i),
                })
                .collect();
            ScalarMap::new(&self.src, locate(&self.src, &path), value)
        });
        map.position(line, column)
    }
}

/// Where each character of a scalar's value is in its file, for any number of positions.
/// Plain, single-quoted, double-quoted (escapes included), literal (`|`) and folded (`>`)
/// scalars are mapped character by character, so a position on a folded line lands on that
/// line. A position past the end of the value is just after its last character.
/// When the text at the scalar cannot be matched with its value (an alias, say), every answer
/// is the start of the scalar: never a place that may be wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ScalarMap {
    start: Location,
    /// The location of each character of the value; empty when unmatched.
    chars: Vec<Location>,
    /// The index of the first character of each line of the value.
    lines: Vec<usize>,
    /// Just after the last character that is not a line break (the scalar's start if none).
    end: Location,
}

impl ScalarMap {
    fn new(src: &str, scalar: Location, value: &str) -> ScalarMap {
        let unmatched = ScalarMap {
            start: scalar,
            chars: Vec::new(),
            lines: Vec::new(),
            end: scalar,
        };
        let text = Text::new(src);
        let Some(map) = text.scalar_map(scalar, value) else {
            return unmatched;
        };
        let value: Vec<char> = value.chars().collect();
        let chars: Vec<Location> = map.iter().map(|&i| text.locs[i]).collect();
        let mut lines = vec![0];
        lines.extend(
            value
                .iter()
                .enumerate()
                .filter(|(_, c)| **c == '\n')
                .map(|(i, _)| i + 1),
        );
        let end = match value.iter().rposition(|c| *c != '\n') {
            Some(last) => Location {
                line: chars[last].line,
                column: chars[last].column + 1,
            },
            None => scalar,
        };
        ScalarMap {
            start: scalar,
            chars,
            lines,
            end,
        }
    }

    /// Where `line`/`column` of the value (1-based, in characters) is in the file.
    fn position(&self, line: usize, column: usize) -> Location {
        if self.chars.is_empty() {
            return self.start;
        }
        let index = line
            .checked_sub(1)
            .and_then(|l| self.lines.get(l))
            .map(|s| s + column.saturating_sub(1));
        match index.and_then(|i| self.chars.get(i)) {
            Some(at) => *at,
            // Past the end (Rhai wanted more): the position stays on a line of the scalar.
            None => self.end,
        }
    }
}

/// A source as characters, with the location of each (and of the end).
pub(super) struct Text {
    pub(super) chars: Vec<char>,
    pub(super) locs: Vec<Location>,
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
    pub(super) fn new(src: &str) -> Text {
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
