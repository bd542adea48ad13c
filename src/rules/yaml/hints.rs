//! Hints for the YAML syntax errors operators make most, after libyaml's own words (which speak
//! of its scanner, not of what to change).

use super::Location;

/// What to do about the YAML mistakes operators make most, which libyaml describes in terms of
/// its scanner: a tab in the indentation, `: ` inside an unquoted value (a Korean reason such as
/// `주의: …`), a value starting with a character YAML reserves (`@`, `!` of a negated
/// expression), a key without a space after its colon (or with a full-width `：` from a Korean
/// input method), a quote inside a quoted value, a line indented wrongly.
pub(super) fn hint(src: &str, at: Location, message: &str) -> Option<String> {
    // Whatever libyaml says, a blank it does not read as one is the mistake to show first: on
    // this line, or ending the key of the line above (`- name:　a`, whose value then runs on).
    if let Some((_, unseen)) = unseen_on_line(src, at.line) {
        return Some(unseen);
    }
    let about_a_key = message.starts_with("mapping values are not allowed")
        || message.starts_with("could not find expected ':'");
    if let Some((_, unseen)) =
        unseen_on_line(src, at.line.saturating_sub(1)).filter(|_| about_a_key)
    {
        return Some(unseen.replacen("this line", &format!("line {}", at.line - 1), 1));
    }
    let line = src.lines().nth(at.line.checked_sub(1)?);
    let found = line.and_then(|line| line.chars().nth(at.column.checked_sub(1)?));
    // "line 26", or "this line" when the error is on it.
    let which = |n: usize| {
        if n + 1 == at.line {
            "this line".to_owned()
        } else {
            format!("line {}", n + 1)
        }
    };
    if message.starts_with("found character that cannot start any token") {
        return match found? {
            '\t' => Some(TAB.into()),
            '@' | '`' => {
                Some("a value starting with @ or a backquote must be quoted, e.g. \"@home\"".into())
            }
            _ => None,
        };
    }
    if message.starts_with("found a tab character") {
        return Some(TAB.into());
    }
    if message.contains("while scanning a tag") {
        // A quote left open above runs on to the next quote, the opening one of a `'!…'`
        // here, which leaves its `!` outside quotes: the quote above is what to fix.
        if let Some(n) = broken_quote(src, at.line).filter(|&n| n + 1 < at.line) {
            return Some(broken_quote_hint(&which(n)));
        }
        return Some(
            "a value starting with ! must be quoted, e.g. require: '!order_id.starts_with(\"x\")'"
                .into(),
        );
    }
    if message.starts_with("mapping values are not allowed in this context") {
        // `- name：a` above a `key: value` line: the full-width colon, not this line's colon,
        // is the mistake.
        let from = at.line.saturating_sub(2);
        if let Some(n) = (from..at.line)
            .rev()
            .find(|&n| src.lines().nth(n).is_some_and(|l| l.contains('：')))
        {
            return Some(format!(
                "{} has a full-width \"：\", which YAML does not read as a colon: type \":\" and a space",
                which(n)
            ));
        }
        // `- name:a` above: without a space YAML reads `name:a` as one text, which the next
        // line's `key: value` then continues.
        if let Some(n) = (from..at.line.saturating_sub(1))
            .rev()
            .find(|&n| src.lines().nth(n).is_some_and(glued_key))
        {
            return Some(format!(
                "{} needs a space after the colon of its key, e.g. name: a (without it, YAML reads the key and value as one text, which this line cannot continue)",
                which(n)
            ));
        }
        // `-name: a` above: without a space after the dash YAML reads `-name` as a key, no
        // list item, and this line's key as more of its value.
        if let Some(n) = (from..at.line)
            .rev()
            .find(|&n| src.lines().nth(n).is_some_and(dash_glued))
        {
            return Some(dash_hint(&which(n)));
        }
        // `  deadline: 3s` then `    on_error: approve`: indented past the key above, the
        // line is read as more of that key's value.
        if let Some((n, column)) = over_indented(src, at.line) {
            // `  deadline: 3s` / `on_error: reject` / `  reject_status: 409`: the line above is
            // the one out of place, less indented than the lines on both sides of it.
            if let Some(want) = outdented_between(src, n, at.line) {
                return Some(format!(
                    "line {} is indented less than the lines before and after it: if it belongs with them, start it at column {want}, as they do",
                    n + 1
                ));
            }
            return Some(format!(
                "this line is indented more than line {} above it, whose key has a value already: keys of one mapping line up, so start this one at column {column} (or, if it belongs under a key, end that key's line with its colon)",
                n + 1
            ));
        }
        // `reason: “주의: 한도 초과”`: quoted, to its writer, but not to YAML.
        let line = src
            .lines()
            .nth(at.line.saturating_sub(1))
            .unwrap_or_default();
        let curly = line
            .split_once(": ")
            .map(|(_, value)| value.trim_start())
            .and_then(|value| value.chars().next())
            .filter(|c| matches!(c, '“' | '”' | '‘' | '’'));
        if let Some(c) = curly {
            return Some(format!(
                "the value starts with {c}, a typographic quote, which YAML reads as text, not as a quote: type straight quotes (\") at both ends"
            ));
        }
        return Some(
            "a value holding \": \" (a colon and a space) must be quoted, e.g. reason: \"주의: 한도 초과\"".into(),
        );
    }
    if message.starts_with("could not find expected ':'") {
        let lines: Vec<&str> = src.lines().take(at.line).collect();
        if let Some(n) = lines.iter().rposition(|l| l.contains('：')) {
            return Some(format!(
                "{} has a full-width \"：\", which YAML does not read as a colon: type \":\" and a space",
                which(n)
            ));
        }
        if let Some(n) = lines.iter().rposition(|l| glued_key(l)) {
            return Some(format!(
                "{} needs a space after the colon of its key, e.g. reason: \"…\"",
                which(n)
            ));
        }
        if let Some(key) = lines.last().and_then(|l| key_without_colon(l)) {
            return Some(format!(
                "{key} is a key: write a colon and a space after it ({key}: …)"
            ));
        }
        return block_left_early(&lines).map(|n| block_hint(&which(n)));
    }
    if message.starts_with("unknown anchor") {
        let alias: String = line?
            .chars()
            .skip(at.column.checked_sub(1)?)
            .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | ']' | '}'))
            .collect();
        let name = alias.strip_prefix('*')?;
        return Some(format!("{alias} refers to no &{name} defined above it: an alias repeats a value marked with &{name} earlier in the file; mark one, or write the value out"));
    }
    // `&& amount < 5` slipped left of its block: YAML reads `&` as an anchor and `|` as a new
    // block, and says so in its own terms.
    if message.starts_with("did not find expected alphabetic or numeric character")
        || message.starts_with("did not find expected comment or line break")
    {
        let lines: Vec<&str> = src.lines().take(at.line).collect();
        let operator = lines
            .last()
            .is_some_and(|l| l.trim_start().starts_with(['&', '|', '>', '!']));
        return block_left_early(&lines)
            .filter(|_| operator)
            .map(|n| block_hint(&which(n)));
    }
    if message.starts_with("did not find expected key")
        || message.starts_with("did not find expected '-' indicator")
    {
        if let Some(n) = broken_quote(src, at.line) {
            return Some(broken_quote_hint(&which(n)));
        }
        let lines: Vec<&str> = src.lines().take(at.line).collect();
        let unquoted_brace =
            |l: &&str| value_of(l).is_some_and(|v| v.starts_with('{') && !v.ends_with('}'));
        if let Some(n) = lines.iter().rposition(unquoted_brace) {
            return Some(format!(
                "{}: a value starting with {{ is read as a mapping; quote it, e.g. reason: \"{{order_id}} 주문은 …\"",
                which(n)
            ));
        }
        if let Some(n) = block_left_early(&lines) {
            return Some(block_hint(&which(n)));
        }
        // `-name: b` after a list's first item: a key where the next item was due.
        if lines.last().is_some_and(|l| dash_glued(l)) {
            return Some(dash_hint(&which(lines.len() - 1)));
        }
        // `reason: …` at column 1 between two rules' keys: the line out of place is above
        // this one, which only ends what it broke.
        if let Some((m, want)) = dented_above(&lines) {
            return Some(format!(
                "{} is indented less than the lines before and after it: if it belongs with the line before it, start it at column {want}, as that one's key does",
                which(m)
            ));
        }
        return Some(
            "check this line's indentation against the lines above it (spaces only)".into(),
        );
    }
    None
}

/// Whether `line` starts (after its indentation) with a `-` glued to a word: `-name: a`, a
/// list item without the space after its dash.
fn dash_glued(line: &str) -> bool {
    let item = line.trim_start();
    item.starts_with('-') && item[1..].starts_with(|c: char| c.is_alphabetic())
}

fn dash_hint(line: &str) -> String {
    format!("{line} needs a space after its \"-\", e.g. - name: a (without it, YAML reads \"-name\" as a key, not as a list item)")
}

fn block_hint(line: &str) -> String {
    format!("this line is indented less than the lines of the block (| or >) started on {line}, so the block ended above it: indent it like the block's other lines")
}

/// The keys of rule files, for a `key value` line missing its colon.
const KEYS: [&str; 28] = [
    "settings",
    "upstreams",
    "rules",
    "deadline",
    "on_error",
    "error_reason",
    "reject_status",
    "url",
    "timeout",
    "headers",
    "health",
    "max_connections",
    "name",
    "when",
    "mode",
    "action",
    "reason",
    "amount",
    "window",
    "require",
    "healthy",
    "fetch",
    "forward",
    "script",
    "upstream",
    "path",
    "method",
    "query",
];

/// The key of a `key value` line written without its colon (`reason "재고 없음"`).
fn key_without_colon(line: &str) -> Option<&'static str> {
    let t = line.trim_start().trim_start_matches("- ");
    let (word, rest) = t.split_once(char::is_whitespace)?;
    let rest = rest.trim();
    // `amount == 50000`: a line of an expression (one that slipped out of its block), not a
    // key missing its colon.
    let expression = rest.starts_with([
        '=', '!', '<', '>', '&', '|', '+', '-', '*', '/', '%', '.', ')',
    ]) || rest.starts_with("in ");
    (!rest.is_empty() && !expression && !word.contains(':'))
        .then(|| KEYS.iter().find(|k| **k == word).copied())
        .flatten()
}

/// A character on line `line` (from 1) that an editor shows as a blank, or not at all (a
/// no-break or full-width space pasted from a web page or typed by a Korean input method, a
/// zero-width space), where YAML needs an ordinary space or nothing: in the indentation, in a
/// plain key, or between a key's colon and its value — a key indented with one, or glued to
/// its value by one, is another key or none. (In a value it is text like any.) Named with its
/// column: its code (`U+3000`), and what to say.
pub fn unseen_on_line(src: &str, line: usize) -> Option<(String, String)> {
    let text: Vec<char> = src.lines().nth(line.checked_sub(1)?)?.chars().collect();
    let unseen = |i: usize| crate::text::unseen(text[i]);
    let named = |i: usize| {
        let (name, fix) = crate::text::unseen(text[i])?;
        Some((
            format!("U+{:04X}", text[i] as u32),
            format!("this line has {name} at column {}, which YAML does not read as a space or as part of a key: {fix}", i + 1),
        ))
    };
    // The indentation, list dashes included.
    let mut i = 0;
    while i < text.len() && (matches!(text[i], ' ' | '-') || unseen(i).is_some()) {
        if unseen(i).is_some() {
            return named(i);
        }
        i += 1;
    }
    // A plain key up to its colon (a quoted key, a comment or a line without a colon has none).
    if matches!(text.get(i), Some('"' | '\'' | '#')) {
        return None;
    }
    let colon = (i..text.len()).find(|&j| text[j] == ':')?;
    if let Some(j) = (i..colon).find(|&j| unseen(j).is_some()) {
        return named(j);
    }
    // Between the colon and the value.
    let mut j = colon + 1;
    while j < text.len() && (text[j] == ' ' || unseen(j).is_some()) {
        if unseen(j).is_some() {
            return named(j);
        }
        j += 1;
    }
    None
}

const TAB: &str = "a tab; YAML indents with spaces only, so replace the tab with spaces";

/// The index of the `key: |` (or `>`, `|-`, …) line whose block the last of `lines` was meant
/// to continue: the nearest line above it indented no more than it is such a key, with the
/// block's lines between them indented more (`require: >-` over a multi-line expression, one
/// line of which slipped left).
fn block_left_early(lines: &[&str]) -> Option<usize> {
    let (last, above) = lines.split_last()?;
    // Up from the line, over the block's lines (each indented more than any line after
    // them), to the key that started the block.
    let mut least = usize::MAX;
    for (n, line) in above.iter().enumerate().rev() {
        if line.trim().is_empty() {
            continue;
        }
        let depth = indent(line);
        if depth < least && opens_block(line) {
            let block_lines = least != usize::MAX;
            return (block_lines && indent(last) < least).then_some(n);
        }
        if depth >= least {
            continue;
        }
        if least != usize::MAX && depth <= indent(last) {
            return None;
        }
        least = depth;
    }
    None
}

/// The value of a `key: value` line, trimmed; a plain (unquoted) one without its comment.
fn value_of(line: &str) -> Option<&str> {
    let (_, value) = line.split_once(": ")?;
    let value = value.trim();
    let value = if value.starts_with(['"', '\'']) {
        value
    } else {
        value.split(" #").next().unwrap_or(value).trim_end()
    };
    Some(value).filter(|v| !v.is_empty())
}

/// A `key:value` line (`reason:"…"`), which YAML reads as one plain word.
/// For a `key: value` line `line` (1-based) indented past the content line above it, which is a
/// `key: value` too (its value given, so nothing may nest under it): that line's index and the
/// column its key starts at.
fn over_indented(src: &str, line: usize) -> Option<(usize, usize)> {
    let lines: Vec<&str> = src.lines().take(line).collect();
    let this = lines.last()?;
    let is_key_value = |l: &str| {
        let t = l.trim_start().trim_start_matches("- ");
        t.split_once(": ").is_some_and(|(key, value)| {
            !key.is_empty() && !value.trim().is_empty() && !key.contains(['"', '\'', '{', '['])
        })
    };
    if !is_key_value(this) {
        return None;
    }
    let (n, above) = lines[..lines.len() - 1]
        .iter()
        .enumerate()
        .rev()
        .find(|(_, l)| is_content(l))?;
    let above_key = key_column(above);
    (indent(this) > above_key
        && is_key_value(above)
        && !above.trim_end().ends_with(['|', '>', '[', '{']))
    .then_some((n, above_key + 1))
}

/// The key line just above the last of `lines` (the error's), when it is indented less than
/// both the line before it and the error's line, with the column the key before it starts at.
fn dented_above(lines: &[&str]) -> Option<(usize, usize)> {
    let content: Vec<usize> = (0..lines.len()).filter(|&i| is_content(lines[i])).collect();
    // Only the key just above the line the parser stopped at: further up, any parent key
    // (`rules:` after `settings:`'s lines) is less indented than the lines around it.
    let w = content.get(content.len().checked_sub(3)?..)?;
    if w[2] != lines.len() - 1 {
        return None;
    }
    let (before, m, after) = (lines[w[0]], lines[w[1]], lines[w[2]]);
    // The line before may be text of a block scalar (`reason: >-` and its lines), whose
    // column says nothing of where keys go (a trial's was told to indent a `when:` into a
    // reason's text).
    if in_block_scalar(lines, w[0]) {
        return None;
    }
    let with_value = m
        .trim_start()
        .split_once(':')
        .is_some_and(|(k, v)| !k.is_empty() && !v.trim().is_empty());
    (with_value
        && !m.trim_start().starts_with("- ")
        && !top_level_key(m)
        && indent(m) < indent(before)
        && indent(m) < indent(after))
    .then_some((w[1], key_column(before) + 1))
}

/// Whether line index `n` of `lines` is text of a block scalar: the nearest line above it that
/// is less indented ends with `|` or `>` (and their `-`/`+`), as a key whose value follows.
fn in_block_scalar(lines: &[&str], n: usize) -> bool {
    let own = indent(lines[n]);
    lines[..n]
        .iter()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .find(|l| indent(l) < own)
        .is_some_and(|parent| opens_block(parent))
}

/// How many spaces `line` starts with.
fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// The column (from 0) where `line`'s key starts: after the `- ` of a list item's first key.
fn key_column(line: &str) -> usize {
    indent(line)
        + if line.trim_start().starts_with("- ") {
            2
        } else {
            0
        }
}

/// Whether `line` holds something YAML reads: neither blank nor a comment.
fn is_content(line: &str) -> bool {
    !line.trim().is_empty() && !line.trim_start().starts_with('#')
}

/// Whether `line` is a key whose value is a block scalar that starts below it (`reason: >-`,
/// `require: |2`, a comment after it or not).
fn opens_block(line: &str) -> bool {
    line.split_once(':').is_some_and(|(_, value)| {
        let value = value.split(" #").next().unwrap_or(value).trim();
        value.starts_with(['|', '>'])
            && value[1..]
                .chars()
                .all(|c| matches!(c, '-' | '+') || c.is_ascii_digit())
    })
}

/// Whether `line` is one of a rule file's own keys at column 1 (`settings:`, `upstreams:`,
/// `rules:`), which no hint should tell to move under another.
fn top_level_key(line: &str) -> bool {
    !line.starts_with(' ')
        && line
            .split_once(':')
            .is_some_and(|(key, _)| matches!(key.trim(), "settings" | "upstreams" | "rules"))
}

/// The column the lines around line index `n` start at, when `n` is indented less than both the
/// line `below` (1-based) and the key line before it, which line up: `n` is the one out of
/// place, not the line below, which is in line with the rest.
fn outdented_between(src: &str, n: usize, below: usize) -> Option<usize> {
    let lines: Vec<&str> = src.lines().collect();
    let this = key_column(lines.get(below.checked_sub(1)?)?);
    let before_at = (0..n).rev().find(|&i| is_content(lines[i]))?;
    let before = lines[before_at];
    let is_key = |l: &str| {
        let t = l.trim_start().trim_start_matches("- ");
        t.split_once(':').is_some_and(|(key, _)| !key.is_empty())
    };
    let out = lines.get(n)?;
    (key_column(before) == this
        && indent(out) < this
        && is_key(before)
        && !in_block_scalar(&lines, before_at)
        && !top_level_key(out))
    .then_some(this + 1)
}

fn glued_key(line: &str) -> bool {
    let t = line.trim_start().trim_start_matches("- ");
    let Some((key, value)) = t.split_once(':') else {
        return false;
    };
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        && value.starts_with(|c: char| !c.is_whitespace())
}

/// The index of the first line up to `last` whose quoted value is broken: a quote never closed,
/// or text after the quote that closes it (a quote inside the value).
fn broken_quote(src: &str, last: usize) -> Option<usize> {
    let lines: Vec<&str> = src.lines().take(last).collect();
    let mut n = 0;
    while n < lines.len() {
        let line = lines[n];
        let Some(value) = value_of(line).or_else(|| line.trim().strip_prefix("- ")) else {
            n += 1;
            continue;
        };
        let Some(quote) = value.chars().next().filter(|c| matches!(c, '"' | '\'')) else {
            n += 1;
            continue;
        };
        // A quoted value may go on over the next lines (a long expression): it is closed
        // where its closing quote is, on whichever line.
        let mut rest = &value[1..];
        let mut at = n;
        let after = loop {
            if let Some(after) = closing_quote(rest, quote) {
                break Some(after);
            }
            at += 1;
            match lines.get(at) {
                Some(next) => rest = next,
                None => break None,
            }
        };
        match after {
            Some(after) if after.trim().is_empty() || after.trim_start().starts_with('#') => {
                n = at + 1;
            }
            _ => return Some(n),
        }
    }
    None
}

/// The hint for a quote [`broken_quote`] found on `line` (`"line 4"`, `"this line"`).
fn broken_quote_hint(line: &str) -> String {
    format!("{line} has a quote that ends its value early or is never closed: inside \"…\" write \\\" for a quote, inside '…' write ''")
}

/// What follows the quote that closes a value quoted with `quote`, given the text after its
/// opening quote (or a continuation line of it); `None` when it is not closed there.
fn closing_quote(inner: &str, quote: char) -> Option<&str> {
    if quote == '"' {
        // `\"` is a quote inside.
        let mut escaped = false;
        inner
            .char_indices()
            .find(|&(_, c)| {
                let closes = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                closes
            })
            .map(|(i, _)| &inner[i + 1..])
    } else {
        // `''` is a quote inside.
        let mut rest = inner;
        loop {
            match rest.find('\'') {
                Some(i) if rest[i + 1..].starts_with('\'') => rest = &rest[i + 2..],
                Some(i) => break Some(&rest[i + 1..]),
                None => break None,
            }
        }
    }
}
