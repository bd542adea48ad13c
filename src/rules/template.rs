//! Reason, path, header and body templates: `{order_id}`-style placeholders parsed once at load.

use std::borrow::Cow;

use serde_json::Value;

use crate::payload::ConfirmRequest;
use crate::text::{display_within, head_within};

/// A parsed template. Rendering never fails: a missing response field renders empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

/// The template as an operator would write it (`/api/stock/{order_id}`), literal braces
/// doubled again: what `/admin/rules` shows of a fetch's path.
impl std::fmt::Display for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for part in &self.parts {
            match part {
                Part::Text(t) => f.write_str(&t.replace('{', "{{").replace('}', "}}"))?,
                Part::Var(var, fallback, grouped) => {
                    f.write_str("{")?;
                    match var {
                        Var::OrderId => f.write_str("order_id")?,
                        Var::TxId => f.write_str("tx_id")?,
                        Var::Amount => f.write_str("amount")?,
                        Var::StoreId => f.write_str("store_id")?,
                        Var::Min => f.write_str("min")?,
                        Var::Max => f.write_str("max")?,
                        Var::From => f.write_str("from")?,
                        Var::Until => f.write_str("until")?,
                        Var::ResponseBody(path) => write!(f, "response.body.{}", path.join("."))?,
                    }
                    if *grouped {
                        f.write_str(GROUPED)?;
                    }
                    if let Some(fallback) = fallback {
                        write!(f, "|{fallback}")?;
                    }
                    f.write_str("}")?;
                }
            }
        }
        Ok(())
    }
}

/// The reason a refusal gives when its template rendered nothing a buyer can read: that of a
/// rule without one.
pub const NOTHING_TO_SHOW: &str = super::DEFAULT_REASON;

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    /// A placeholder, with the text that stands in when it has nothing to show
    /// (`{response.body.message|재고가 없습니다}`), and whether a number it renders is
    /// written with thousands separators (`{amount:,}`: `1,500,000`).
    Var(Var, Option<String>, bool),
}

/// What follows a placeholder's name for thousands separators, as in Python's `{n:,}`.
const GROUPED: &str = ":,";

#[derive(Debug, Clone, PartialEq)]
enum Var {
    OrderId,
    TxId,
    Amount,
    StoreId,
    /// `{min}`, `{max}`: an `amount` rule's bounds, in its reason only, filled in at load
    /// ([`Template::fill_bounds`]), so that the limit a buyer reads is the one enforced.
    Min,
    Max,
    /// `{from}`, `{until}`: a `window` rule's bounds, in its reason only, filled in at load in
    /// Korean time ([`Template::fill_window`]), so that the sale hours a buyer reads are the
    /// ones enforced (a trial's reason kept naming the hours it had before an edit).
    From,
    Until,
    /// `{response.body.a.b}`: a field of the JSON answer of this rule's fetch.
    ResponseBody(Vec<String>),
}

/// Which placeholders a template may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Request,
    /// Reasons of fetch rules may also read the response.
    WithResponse,
    /// What a fetch sends: the request only, its answer is not there yet.
    Call,
}

const REQUEST_VARS: &str = "{order_id}, {tx_id}, {amount}, {store_id}";

/// The most characters one placeholder puts into a reason (an id is far shorter).
pub const PLACEHOLDER_MAX: usize = 100;

impl Template {
    /// A template of what a `fetch` sends (path, query, headers, body), with an error's place
    /// as [`Template::parse_at`] gives it. `${…}` there is a slip for `{…}`: it would be sent
    /// as a literal `$` (`GET /api/stock/$order-1`), since `${VAR}` reads the environment only
    /// in upstream settings.
    pub fn parse_call_at(src: &str) -> Result<Template, Vec<(String, usize)>> {
        let mut errors = Vec::new();
        for (i, _) in src.match_indices("${") {
            let at = src[..i].chars().count();
            let Some((written, _)) = src[i + 2..].split_once('}') else {
                errors.push((
                    "unclosed \"${\" (a placeholder is written {order_id}, without \"$\")"
                        .to_owned(),
                    at,
                ));
                continue;
            };
            // `${order_id|없음}`, `${ order_id }`: the placeholder as it would be without `$`.
            let name = written.split('|').next().unwrap_or("").trim();
            let message = match parse_var(name, Scope::Call) {
                Ok(_) => format!("\"${{{written}}}\": request placeholders are written without \"$\", like {{{written}}} (${{VAR}} reads an environment variable, and only in upstream settings)"),
                // `${response.body.x}`: not there yet when the call is sent, `$` or not.
                Err(e) if parse_var(name, Scope::WithResponse).is_ok() => format!("\"${{{written}}}\": {e}"),
                Err(_) => format!("\"${{{written}}}\": ${{VAR}} reads an environment variable only in an upstream's url and headers, not in what a fetch sends; set it there (under upstreams), where every call of the upstream sends it"),
            };
            errors.push((message, at));
        }
        match Template::parse_at(src, Scope::Call) {
            Ok(t) if errors.is_empty() => Ok(t),
            Ok(_) => Err(errors),
            Err(more) => {
                // A `${…}`'s own brace is said above, as a `$` slip.
                let dollars: Vec<usize> = errors.iter().map(|(_, at)| at + 1).collect();
                errors.extend(more.into_iter().filter(|(_, at)| !dollars.contains(at)));
                errors.sort_by_key(|(_, at)| *at);
                Err(errors)
            }
        }
    }

    /// [`Template::parse_at`] with its first error's message alone.
    #[cfg(test)]
    pub fn parse(src: &str, scope: Scope) -> Result<Template, String> {
        Template::parse_at(src, scope).map_err(|errors| {
            errors
                .into_iter()
                .next()
                .map(|(message, _)| message)
                .unwrap_or_default()
        })
    }

    /// The template `src` writes in `scope`, or every error of it (not only the first: each
    /// misspelt placeholder of a reason, fixed in one go), each with its place in `src` as a character
    /// offset (the brace or `$` it is about), so that a load error can point at it rather than
    /// at the value's start.
    pub fn parse_at(src: &str, scope: Scope) -> Result<Template, Vec<(String, usize)>> {
        let mut parts = Vec::new();
        let mut errors = Vec::new();
        let mut text = String::new();
        let mut rest = src;
        let offset = |rest: &str| src[..src.len() - rest.len()].chars().count();
        // `｛order_id｝`, typed by a Korean input method in full-width mode: no placeholder,
        // so the buyer would read the braces and the name as typed.
        for (i, _) in src.match_indices('｛') {
            let tail = &src[i..];
            let name = tail['｛'.len_utf8()..]
                .split_once('｝')
                .map(|(name, _)| name.trim());
            if let Some(name) = name.filter(|name| parse_var(name, scope).is_ok()) {
                errors.push((
                    format!("\"｛{name}｝\" has full-width braces, which are no placeholder (the buyer would read them as typed): type the ASCII ones, {{{name}}}"),
                    offset(tail),
                ));
            }
        }
        // What is left of text that went through the wrong encoding on its way into the file
        // (EUC-KR read as UTF-8, pasted from a broken page): the buyer would read it as is.
        if let Some(i) = src.find('\u{FFFD}') {
            errors.push((
                "holds U+FFFD (\u{FFFD}), the mark of text that was not in the encoding it was \
                 read as (EUC-KR read as UTF-8): the buyer would read the marks; retype the text"
                    .into(),
                offset(&src[i..]),
            ));
        }
        while let Some(i) = rest.find(['{', '}']) {
            text.push_str(&rest[..i]);
            let tail = &rest[i..];
            if tail.starts_with("{{") || tail.starts_with("}}") {
                text.push_str(&tail[..1]);
                rest = &tail[2..];
                continue;
            }
            if let Some(after) = tail.strip_prefix('}') {
                errors.push((
                    "unmatched \"}\" (write \"}}\" for a literal brace)".into(),
                    offset(tail),
                ));
                rest = after;
                continue;
            }
            let Some(end) = tail.find('}') else {
                errors.push((
                    "unclosed \"{\" (write \"{{\" for a literal brace)".into(),
                    offset(tail),
                ));
                rest = "";
                break;
            };
            match placeholder(&tail[..=end], &text, scope) {
                Ok(part) => {
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(part);
                }
                Err((message, back)) => {
                    errors.push((message, offset(tail) - back));
                    // Kept as text, so that a `$` before it is not taken for the next one's.
                    text.push_str(&tail[..=end]);
                }
            }
            rest = &tail[end + 1..];
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template { parts })
    }

    /// A template without placeholders.
    pub fn literal(text: &str) -> Template {
        Template {
            parts: vec![Part::Text(text.to_owned())],
        }
    }

    pub fn render(&self, req: &ConfirmRequest, response: Option<&Value>) -> String {
        self.render_escaped(req, response, |s| Cow::Borrowed(s))
    }

    /// Renders a reason, which a buyer is shown: every placeholder value comes from outside (the
    /// caller chooses the ids, the merchant its answer), so each is made safe to show (line
    /// breaks as spaces, control and text-direction characters left out) and cut at
    /// [`PLACEHOLDER_MAX`] characters.
    pub fn render_reason(&self, req: &ConfirmRequest, response: Option<&Value>) -> String {
        let out = self.render_escaped(req, response, |s| {
            crate::text::for_buyers_cut(s, PLACEHOLDER_MAX)
        });
        // A placeholder with nothing to show at either end (`{response.body.seat} 좌석이
        // 매진되었습니다` without `seat`) leaves a space the buyer would see first.
        let shown = out.trim();
        if crate::text::shows_nothing(shown) {
            // `reason: "{store_id}"` for a request without one: a refusal says something.
            NOTHING_TO_SHOW.to_owned()
        } else if shown.len() == out.len() {
            out
        } else {
            shown.to_owned()
        }
    }

    /// Whether what the template renders is never blank: it has words of its own, or a
    /// placeholder every request fills (`{order_id}`, `{tx_id}`, `{amount}`; not `{store_id}`,
    /// which V1 requests lack, nor an answer's field).
    pub fn never_blank(&self) -> bool {
        self.parts.iter().any(|p| match p {
            Part::Text(t) => !crate::text::shows_nothing(t),
            Part::Var(_, Some(_), _) => true,
            Part::Var(v, None, _) => matches!(v, Var::OrderId | Var::TxId | Var::Amount),
        })
    }

    /// The placeholders given a fallback that every request fills (`{order_id|없음}`), by
    /// name: the fallback is dead text, and the operator most likely meant another field.
    pub fn fallbacks_never_shown(&self) -> Vec<&'static str> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Var(Var::OrderId, Some(_), _) => Some("order_id"),
                Part::Var(Var::TxId, Some(_), _) => Some("tx_id"),
                Part::Var(Var::Amount, Some(_), _) => Some("amount"),
                _ => None,
            })
            .collect()
    }

    /// Renders with every placeholder value passed through `escape` (URL-encoding for paths).
    pub fn render_escaped(
        &self,
        req: &ConfirmRequest,
        response: Option<&Value>,
        escape: impl for<'s> Fn(&'s str) -> Cow<'s, str>,
    ) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(var, fallback, grouped) => {
                    let value = value_of(var, req, response);
                    let value = if *grouped {
                        with_separators(value)
                    } else {
                        value
                    };
                    // Judged on the value itself: escaped for a path, a blank one would show
                    // (`%20`).
                    match fallback {
                        Some(fallback) if crate::text::shows_nothing(&value) => {
                            out.push_str(&escape(fallback));
                        }
                        _ => out.push_str(&escape(&value)),
                    }
                }
            }
        }
        out
    }

    /// The first of `{min}`, `{max}`, `{from}` and `{until}` it holds, which only an `amount`
    /// or a `window` rule's reason fills.
    pub fn bound(&self) -> Option<&'static str> {
        self.parts.iter().find_map(|p| match p {
            Part::Var(Var::Min, ..) => Some("min"),
            Part::Var(Var::Max, ..) => Some("max"),
            Part::Var(Var::From, ..) => Some("from"),
            Part::Var(Var::Until, ..) => Some("until"),
            _ => None,
        })
    }

    /// The rule whose reason `bound` (as [`Template::bound`] names it) belongs to, as a
    /// message names it.
    pub fn bound_rule(bound: &str) -> &'static str {
        match check_of(bound) {
            "window" => "a window rule",
            _ => "an amount rule",
        }
    }

    /// The error for bound `name` in the reason of a rule whose check it is not of.
    pub fn not_this_rules(name: &str) -> String {
        format!(
            "placeholder {{{name}}} is {}'s bound, and this rule has no {} check",
            Template::bound_rule(name),
            check_of(name)
        )
    }

    /// Writes a `window` rule's bounds, in Korean time (`2026-12-20 20:00`, with the seconds
    /// when they are not zero), where its reason has `{from}` and `{until}`; an error names a
    /// bound the rule does not set, and one of an amount rule's.
    pub fn fill_window(
        &mut self,
        from: Option<chrono::DateTime<chrono::FixedOffset>>,
        until: Option<chrono::DateTime<chrono::FixedOffset>>,
    ) -> Result<(), String> {
        let korean = |t: chrono::DateTime<chrono::FixedOffset>| {
            let t = t.with_timezone(&super::SEOUL);
            // A bound between seconds is shown to the millisecond: a buyer must not read a
            // start they are already past (20:00 for 20:00:00.5).
            let shape = if chrono::Timelike::nanosecond(&t) != 0 {
                "%Y-%m-%d %H:%M:%S%.3f"
            } else if chrono::Timelike::second(&t) == 0 {
                "%Y-%m-%d %H:%M"
            } else {
                "%Y-%m-%d %H:%M:%S"
            };
            t.format(shape).to_string()
        };
        let (from, until) = (from.map(korean), until.map(korean));
        self.fill(&[("from", from.as_deref()), ("until", until.as_deref())])
    }

    /// Writes an `amount` rule's bounds (the numbers they are: `1e6` as `1000000`) where its
    /// reason has `{min}` and `{max}`; an error names a bound the rule does not set.
    pub fn fill_bounds(&mut self, min: Option<&str>, max: Option<&str>) -> Result<(), String> {
        self.fill(&[("min", min), ("max", max)])
    }

    /// Writes each bound of `bounds` (its placeholder's name, its text) where the template
    /// names it; the other bounds are an error, as is one not set (without a fallback).
    fn fill(&mut self, bounds: &[(&str, Option<&str>)]) -> Result<(), String> {
        for part in &mut self.parts {
            let name = match part {
                Part::Var(Var::Min, ..) => "min",
                Part::Var(Var::Max, ..) => "max",
                Part::Var(Var::From, ..) => "from",
                Part::Var(Var::Until, ..) => "until",
                _ => continue,
            };
            let Some((_, bound)) = bounds.iter().find(|(n, _)| *n == name) else {
                return Err(Template::not_this_rules(name));
            };
            // A bound not set shows the placeholder's fallback, when it has one
            // (`{until|마감 없음}`), as any placeholder with nothing to show does.
            let fallback = match part {
                Part::Var(_, Some(fallback), _) => Some(fallback.clone()),
                _ => None,
            };
            let Some(bound) = bound.map(str::to_owned).or(fallback) else {
                return Err(format!(
                    "placeholder {{{name}}} reads the rule's {} {name}, which it does not set",
                    check_of(name)
                ));
            };
            let bound = bound.as_str();
            let grouped = matches!(part, Part::Var(_, _, true));
            *part = Part::Text(if grouped {
                with_separators(Cow::Borrowed(bound)).into_owned()
            } else {
                bound.to_owned()
            });
        }
        // Text next to text, as a template parsed so would hold it.
        let mut parts: Vec<Part> = Vec::with_capacity(self.parts.len());
        for part in self.parts.drain(..) {
            match (parts.last_mut(), part) {
                (Some(Part::Text(before)), Part::Text(t)) => before.push_str(&t),
                (_, part) => parts.push(part),
            }
        }
        self.parts = parts;
        Ok(())
    }

    /// Whether anything of a request (or an answer) goes into it.
    pub fn has_placeholders(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Var(..)))
    }

    /// The first field of each `{response.body.…}` placeholder (`available` of
    /// `{response.body.available}`).
    pub fn response_fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(Var::ResponseBody(path), ..) => path.first().map(String::as_str),
            _ => None,
        })
    }
}

/// The value `var` puts into the text, before any escaping; empty for a field the answer
/// lacks.
fn value_of<'a>(var: &Var, req: &'a ConfirmRequest, response: Option<&'a Value>) -> Cow<'a, str> {
    match var {
        Var::OrderId => Cow::Borrowed(&req.order_id),
        Var::TxId => Cow::Borrowed(&req.tx_id),
        Var::Amount => req.amount.for_template(),
        Var::StoreId => Cow::Borrowed(req.store_id.as_deref().unwrap_or("")),
        // Filled in at load: never left in a template that runs.
        Var::Min | Var::Max | Var::From | Var::Until => Cow::Borrowed(""),
        Var::ResponseBody(path) => {
            let mut node = response;
            for key in path {
                node = node.and_then(|v| match v {
                    Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
                    _ => v.get(key),
                });
            }
            match node {
                None | Some(Value::Null) => Cow::Borrowed(""),
                // Text the answer's bytes did not hold in its charset (U+FFFD where they
                // could not be read) would show the buyer mojibake: left out, like a missing
                // field.
                Some(Value::String(s)) if s.contains(char::REPLACEMENT_CHARACTER) => {
                    Cow::Borrowed("")
                }
                Some(Value::String(s)) => Cow::Borrowed(head_within(s, FIELD_MAX)),
                Some(other) => {
                    // Written only as far as a reason can show: `{response.body}` of a
                    // megabyte answer would otherwise be written whole on a worker, to be cut
                    // after.
                    let (s, _) = display_within(other, FIELD_MAX);
                    if s.contains(char::REPLACEMENT_CHARACTER) {
                        Cow::Borrowed("")
                    } else {
                        Cow::Owned(s)
                    }
                }
            }
        }
    }
}

/// The most of one answer field a template renders, in bytes: past what any reason shows
/// (reasons are cut at 500 characters, at most 2,000 bytes, after controls are left out).
const FIELD_MAX: usize = 16 * 1024;

/// Whether `name` is spelt like an environment variable (`SHOP_API_TOKEN`: a capital letter or
/// `_`, then capitals, digits and `_`, two characters at least), so that `{NAME}` or `$NAME`
/// was most likely meant as `${NAME}`.
pub(crate) fn looks_like_variable(name: &str) -> bool {
    name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// `value` with thousands separators if it is a number written plainly (`1500000`, `-1000.5`,
/// as an amount or an answer's number is); any other text as it is.
fn with_separators(value: Cow<'_, str>) -> Cow<'_, str> {
    let (sign, unsigned) = value
        .strip_prefix('-')
        .map_or(("", &*value), |rest| ("-", rest));
    let (int, frac) = match unsigned.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !frac.is_none_or(digits) {
        return value;
    }
    // A numeric string's leading zeros (`"01234567"`) are no digits of the value.
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
    let grouped = format!("{sign}{}{frac}", crate::script::format_amount_text(int));
    if grouped == *value {
        value
    } else {
        Cow::Owned(grouped)
    }
}

/// Whether `{name}` is a placeholder of some template (`order_id`, `response.body.left`).
pub(crate) fn is_placeholder(name: &str) -> bool {
    parse_var(name, Scope::WithResponse).is_ok()
}

/// One placeholder, `braced` from its `{` to its `}`, after `text`; an error comes with how
/// many characters before the brace it is about (1 for a `$` before it, else 0).
fn placeholder(braced: &str, text: &str, scope: Scope) -> Result<Part, (String, usize)> {
    let inner = &braced[1..braced.len() - 1];
    // `{name|fallback}`: the fallback stands in for a value that shows nothing (an answer
    // without the field, V1's `store_id`), where the text around it would read broken
    // ("예약할 수 없습니다: ").
    let (name, fallback) = match inner.split_once('|') {
        Some((name, fallback)) => (name.trim(), Some(fallback.trim())),
        None => (inner.trim(), None),
    };
    // `{amount:,}`: thousands separators, for a number a buyer reads.
    let (name, grouped) = match name.strip_suffix(GROUPED) {
        Some(name) => (name.trim_end(), true),
        None => (name, false),
    };
    let var = parse_var(name, scope).map_err(|e| (e, 0))?;
    if grouped
        && (scope == Scope::Call
            || matches!(
                var,
                Var::OrderId | Var::TxId | Var::StoreId | Var::From | Var::Until
            ))
    {
        let what = if scope == Scope::Call {
            "what a fetch sends"
        } else if matches!(var, Var::From | Var::Until) {
            "a time"
        } else {
            "an id"
        };
        return Err((
            format!("placeholder {{{name}{GROUPED}}}: thousands separators are for numbers a buyer reads, not for {what}; write {{{name}}} (separators go on {{amount{GROUPED}}}, {{max{GROUPED}}} or an answer's number in a reason)"),
            0,
        ));
    }
    if fallback.is_some_and(crate::text::shows_nothing) {
        return Err((
            format!("placeholder {{{name}|}} has an empty fallback after \"|\"; write the text that stands in when {{{name}}} has nothing to show, such as {{{name}|없음}}, or leave out the \"|\""),
            0,
        ));
    }
    // A fallback is plain text on one line: `{store_id|{order_id}` would show the buyer a
    // brace, and a line break cannot go into a header.
    if let Some(fallback) = fallback.filter(|f| f.contains(|c: char| c == '{' || c.is_control())) {
        return Err((
            format!("placeholder {{{name}|{}}} has a fallback with a brace or a control character (a line break, a tab); a fallback is plain text on one line, and no placeholder", fallback.escape_debug()),
            0,
        ));
    }
    // `${order_id}` (a shell's habit) would show the buyer a `$` before the id. Before
    // `{amount}` a `$` may well be meant: a price in dollars.
    if scope != Scope::Call
        && text.ends_with('$')
        && matches!(var, Var::OrderId | Var::TxId | Var::StoreId)
    {
        return Err((
            format!("\"${{{name}}}\" would show the buyer a \"$\" before the value; placeholders are written without it: {{{name}}}"),
            1,
        ));
    }
    Ok(Part::Var(var, fallback.map(str::to_owned), grouped))
}

/// The check whose bound placeholder `bound` is: `window` for `from` and `until`, `amount` for
/// `min` and `max`.
fn check_of(bound: &str) -> &'static str {
    match bound {
        "from" | "until" => "window",
        _ => "amount",
    }
}

fn parse_var(name: &str, scope: Scope) -> Result<Var, String> {
    Ok(match name {
        "order_id" => Var::OrderId,
        "tx_id" => Var::TxId,
        "amount" => Var::Amount,
        "store_id" => Var::StoreId,
        "min" | "max" if scope == Scope::Call => {
            return Err(format!(
                "placeholder {{{name}}} is an amount rule's bound, which only its reason shows; expected one of {REQUEST_VARS}"
            ))
        }
        "from" | "until" if scope == Scope::Call => {
            return Err(format!(
                "placeholder {{{name}}} is a window rule's bound, which only its reason shows; expected one of {REQUEST_VARS}"
            ))
        }
        "min" => Var::Min,
        "max" => Var::Max,
        "from" => Var::From,
        "until" => Var::Until,
        _ => {
            if let Some(path) = name.strip_prefix("response.body.") {
                // `{response.body..left}`, `{response.body.left.}`: a field named "" is none
                // an answer has, so the text would always read empty there.
                if path.split('.').any(str::is_empty) {
                    return Err(format!(
                        "placeholder {{{name}}} has an empty field name (two dots together, or a dot at the end); write the fields' names with one dot between each, such as {{response.body.stock.left}}"
                    ));
                }
                // `{response.body.items[0].name}`, as a script indexes: no key of an answer is
                // likely to be named `items[0]`, so the text would always read empty there.
                if let Some(dotted) = dotted_path(path) {
                    return Err(format!(
                        "placeholder {{{name}}} reads an item or a field in brackets, as a script does; a placeholder writes every step with a dot: {{response.body.{dotted}}}"
                    ));
                }
                if scope == Scope::WithResponse && !path.is_empty() {
                    return Ok(Var::ResponseBody(
                        path.split('.').map(str::to_owned).collect(),
                    ));
                }
                if scope == Scope::Call {
                    return Err(format!(
                        "placeholder {{{name}}} reads this fetch's answer, which is not there yet when its request is sent; use it in the rule's require or reason. Expected one of {REQUEST_VARS}"
                    ));
                }
                return Err(format!(
                    "placeholder {{{name}}} reads a fetch's answer, which only a fetch rule's reason has; expected one of {REQUEST_VARS}"
                ));
            }
            let expected = match scope {
                Scope::Request | Scope::Call => REQUEST_VARS.to_owned(),
                Scope::WithResponse => format!("{REQUEST_VARS}, {{response.body.<field>}}"),
            };
            // PortOne's own names for the request fields, and slips.
            let meant = match name {
                "merchant_uid" | "payment_id" | "paymentId" => Some("order_id"),
                "imp_uid" | "transactionId" | "transaction_id" => Some("tx_id"),
                "total_amount" | "totalAmount" | "amt" | "price" => Some("amount"),
                "storeId" => Some("store_id"),
                _ => crate::suggest::closest(name, ["order_id", "tx_id", "amount", "store_id"]),
            };
            let hint = match meant {
                Some(m) => format!(" (did you mean {{{m}}}?)"),
                // `{response.bdy.left}`, `{response.status}`: only the body's fields are read.
                None if name.starts_with("response.") && scope == Scope::WithResponse => {
                    let field = name.splitn(3, '.').nth(2).unwrap_or("<field>");
                    format!(" (an answer's fields are read as {{response.body.{field}}}; its status and headers are for require)")
                }
                // `Authorization: "Bearer {SHOP_API_TOKEN}"` in a fetch's headers.
                None if looks_like_variable(name) => format!(" (an environment variable is read only in an upstream's url and headers, as ${{{name}}})"),
                None => String::new(),
            };
            return Err(format!(
                "unknown placeholder {{{name}}}{hint}, expected one of {expected}"
            ));
        }
    })
}

/// `path` with its bracketed steps written with dots (`items[0].name` → `items.0.name`,
/// `stock["left"]` → `stock.left`), when it has any.
fn dotted_path(path: &str) -> Option<String> {
    if !path.contains('[') || !path.contains(']') {
        return None;
    }
    let mut dotted = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('[') {
        let close = open + rest[open..].find(']')?;
        let inner = rest[open + 1..close].trim();
        let inner = ["\"", "'"]
            .iter()
            .find_map(|q| inner.strip_prefix(q)?.strip_suffix(q))
            .unwrap_or(inner);
        dotted.push_str(&rest[..open]);
        if !dotted.is_empty() && !dotted.ends_with('.') {
            dotted.push('.');
        }
        dotted.push_str(inner);
        rest = &rest[close + 1..];
    }
    dotted.push_str(rest);
    Some(dotted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{parse, Parsed};

    #[test]
    fn displays_as_written() {
        for src in [
            "/api/stock/{order_id}",
            "{{literal}} {tx_id}-{amount}",
            "{store_id|없음} {response.body.stock.left|0}",
        ] {
            let scope = Scope::WithResponse;
            let t = Template::parse(src, scope).unwrap();
            assert_eq!(t.to_string(), src);
            assert_eq!(Template::parse(&t.to_string(), scope).unwrap(), t);
        }
    }

    fn request() -> ConfirmRequest {
        let body = br#"{"type":"Transaction.Confirm","data":{"paymentId":"order 1/2","transactionId":"tx-9","totalAmount":"10.50","storeId":"store-1"}}"#;
        match parse(Some("application/json"), body).unwrap() {
            Parsed::Confirm(r) => r,
            Parsed::Ignored { .. } => unreachable!(),
        }
    }

    /// A trial: a reason could not name its rule's limit, so after the limit was lowered
    /// buyers read the old one; nor write the amount as they read prices (`1,234,567원`).
    #[test]
    fn bounds_are_filled_in_and_numbers_may_be_grouped() {
        let mut t = Template::parse(
            "한도 {max:,}원 (최소 {min}원), 요청 {amount:,}원, 남은 {response.body.left:,|0}석 {response.body.code:,}",
            Scope::WithResponse,
        )
        .unwrap();
        assert_eq!(t.bound(), Some("max"));
        assert_eq!(
            t.to_string(),
            "한도 {max:,}원 (최소 {min}원), 요청 {amount:,}원, 남은 {response.body.left:,|0}석 {response.body.code:,}"
        );
        t.fill_bounds(Some("1000"), Some("660000")).unwrap();
        assert_eq!(t.bound(), None);
        let answer = serde_json::json!({"left": 12345, "code": "SOLD-1000000"});
        // The request's amount is "10.50": below a thousand, as written.
        assert_eq!(
            t.render_reason(&request(), Some(&answer)),
            "한도 660,000원 (최소 1000원), 요청 10.50원, 남은 12,345석 SOLD-1000000"
        );
        for (value, shown) in [
            ("1234567", "1,234,567"),
            ("-1000.5", "-1,000.5"),
            ("999", "999"),
            ("1e6", "1e6"),
            ("12,345", "12,345"),
            ("", ""),
            // A review: a numeric string's leading zeros were grouped (`01,234,567`).
            ("01234567", "1,234,567"),
            ("0001.5", "1.5"),
            ("-0", "-0"),
            ("0", "0"),
        ] {
            assert_eq!(with_separators(Cow::Borrowed(value)), shown);
        }
        let mut min_only = Template::parse("{max}원", Scope::Request).unwrap();
        assert_eq!(
            min_only.fill_bounds(Some("1"), None).unwrap_err(),
            "placeholder {max} reads the rule's amount max, which it does not set"
        );
        for (src, scope) in [
            ("{order_id:,}", Scope::Request),
            ("/{amount:,}", Scope::Call),
            ("/{max}", Scope::Call),
        ] {
            assert!(Template::parse(src, scope).is_err(), "{src}");
        }
    }

    /// A step written in brackets, as a script indexes, is an error that shows the placeholder
    /// with dots: it would read a key named `items[0]`, which no answer has.
    #[test]
    fn a_bracketed_step_is_shown_with_dots() {
        for (written, dotted) in [
            ("items[0].name", "items.0.name"),
            ("stock[\"left\"]", "stock.left"),
            ("a['b'][2]", "a.b.2"),
        ] {
            let e = Template::parse(
                &format!("품절: {{response.body.{written}}}"),
                Scope::WithResponse,
            )
            .unwrap_err();
            assert!(
                e.ends_with(&format!(
                    "a placeholder writes every step with a dot: {{response.body.{dotted}}}"
                )),
                "{e}"
            );
        }
        assert_eq!(dotted_path("items.0.name"), None);
        assert_eq!(dotted_path("odd[key"), None);
    }

    #[test]
    fn reasons_show_ids_made_safe_and_cut() {
        let long = "x".repeat(300);
        let body = format!(
            r#"{{"type":"Transaction.Confirm","data":{{"paymentId":"a\nb\u202ec\u0007d","transactionId":"{long}","totalAmount":1,"storeId":"s\r\nX"}}}}"#
        );
        let Ok(Parsed::Confirm(req)) = parse(Some("application/json"), body.as_bytes()) else {
            panic!("{body}");
        };
        let t = Template::parse("주문 {order_id} / {tx_id} / {store_id}", Scope::Request).unwrap();
        let reason = t.render_reason(&req, None);
        let cut = format!("{}…", "x".repeat(PLACEHOLDER_MAX));
        assert_eq!(reason, format!("주문 a bcd / {cut} / s  X"));
        // Paths, headers and bodies get the ids exactly as sent.
        assert!(t
            .render(&req, None)
            .starts_with("주문 a\nb\u{202e}c\u{7}d / "));
        // Clean, short values are left as they are.
        assert_eq!(
            t.render_reason(&request(), None),
            "주문 order 1/2 / tx-9 / store-1"
        );
        // A placeholder with nothing to show leaves no space at either end.
        let t = Template::parse(
            "{response.body.seat} 좌석이 매진되었습니다 {response.body.note}",
            Scope::WithResponse,
        )
        .unwrap();
        let body = serde_json::json!({ "available": 0 });
        assert_eq!(
            t.render_reason(&request(), Some(&body)),
            "좌석이 매진되었습니다"
        );
        // Nothing at all to show: a refusal still says something.
        let t = Template::parse("{response.body.note}", Scope::WithResponse).unwrap();
        assert!(!t.never_blank());
        assert_eq!(t.render_reason(&request(), Some(&body)), NOTHING_TO_SHOW);
    }

    /// Trial: "예약할 수 없습니다: {response.body.errorMessage}" read "예약할 수 없습니다:" to the
    /// buyer when the answer had no message. A fallback after `|` stands in for a value that
    /// shows nothing; a value that shows something is written as before.
    #[test]
    fn a_fallback_stands_in_for_a_value_that_shows_nothing() {
        let t = Template::parse(
            "예약할 수 없습니다: {response.body.errorMessage | 잠시 후 다시 시도해 주세요}",
            Scope::WithResponse,
        )
        .unwrap();
        assert!(t.never_blank());
        for (body, shown) in [
            (
                serde_json::json!({ "code": "SOLD_OUT" }),
                "예약할 수 없습니다: 잠시 후 다시 시도해 주세요",
            ),
            (
                serde_json::json!({ "errorMessage": " \u{200b} " }),
                "예약할 수 없습니다: 잠시 후 다시 시도해 주세요",
            ),
            (
                serde_json::json!({ "errorMessage": "매진" }),
                "예약할 수 없습니다: 매진",
            ),
        ] {
            assert_eq!(t.render_reason(&request(), Some(&body)), shown, "{body}");
        }
        assert_eq!(
            t.render_reason(&request(), None),
            "예약할 수 없습니다: 잠시 후 다시 시도해 주세요"
        );
        // V1 has no store id; in a path the fallback is escaped as a value would be.
        let v1 = br#"{"imp_uid":"i","merchant_uid":"o","amount":1}"#;
        let Ok(Parsed::Confirm(v1)) = parse(Some("application/json"), v1) else {
            panic!("v1");
        };
        let path = Template::parse("/stock/{store_id|본점 1}", Scope::Call).unwrap();
        fn encoded(s: &str) -> Cow<'_, str> {
            Cow::Owned(s.replace(' ', "%20"))
        }
        assert_eq!(path.render_escaped(&v1, None, encoded), "/stock/본점%201");
        assert_eq!(
            path.render_escaped(&request(), None, encoded),
            "/stock/store-1"
        );
        // Verification: a blank store id (a space, U+200B) escaped for the path showed, and
        // was sent instead of the fallback.
        for blank in [" ", "\u{200b}"] {
            let body = format!(
                r#"{{"type":"Transaction.Confirm","data":{{"paymentId":"o","transactionId":"t","totalAmount":1,"storeId":"{blank}"}}}}"#
            );
            let Ok(Parsed::Confirm(req)) = parse(Some("application/json"), body.as_bytes()) else {
                panic!("{body}");
            };
            assert_eq!(path.render_escaped(&req, None, encoded), "/stock/본점%201");
        }
        // An empty fallback is a slip, and so is one holding a brace or a control character.
        let e = Template::parse("품절 {response.body.left| }", Scope::WithResponse).unwrap_err();
        assert!(
            e.starts_with("placeholder {response.body.left|} has an empty fallback"),
            "{e}"
        );
        for src in [
            "{store_id|{order_id|z}",
            "{store_id|a\nb}",
            "{store_id|a\u{7f}b}",
        ] {
            let e = Template::parse(src, Scope::Call).unwrap_err();
            assert!(
                e.contains("a fallback is plain text on one line"),
                "{src}: {e}"
            );
        }
    }

    #[test]
    fn renders_request_fields() {
        let t = Template::parse(
            "{order_id}/{tx_id}: {amount}원 @{store_id} {{x}}",
            Scope::Request,
        )
        .unwrap();
        assert_eq!(
            t.render(&request(), None),
            "order 1/2/tx-9: 10.50원 @store-1 {x}"
        );
    }

    /// SPEC §9: `{amount}` renders as written — the body's own text of the number, whichever
    /// parser read it (an escape in an id sends a body to the full parser).
    #[test]
    fn amount_renders_as_written() {
        let t = Template::parse("요청: {amount}원", Scope::Request).unwrap();
        for amount in [
            "50000",
            "10.5",
            "10.50",
            "1e3",
            "5000e0",
            "3.0000001e6",
            "0e5",
            "3E+6",
            "5000.000000000000000000000000000000",
        ] {
            let mut bodies = vec![
                format!(r#"{{"imp_uid":"i","merchant_uid":"m","amount":{amount}}}"#),
                format!(r#"{{"imp_uid":"i\u0031","merchant_uid":"m","amount":{amount}}}"#),
            ];
            // A numeric string is a plain decimal.
            if !amount.contains(['e', 'E']) {
                bodies.push(format!(
                    r#"{{"imp_uid":"i","merchant_uid":"m","amount":"{amount}"}}"#
                ));
            }
            for body in bodies {
                let Ok(Parsed::Confirm(r)) = parse(Some("application/json"), body.as_bytes())
                else {
                    panic!("{body}")
                };
                assert_eq!(t.render(&r, None), format!("요청: {amount}원"), "{body}");
            }
        }
    }

    #[test]
    fn renders_response_fields() {
        let t = Template::parse(
            "남은 수량 {response.body.stock.left}개, {response.body.missing}.",
            Scope::WithResponse,
        )
        .unwrap();
        let body = serde_json::json!({"stock": {"left": 3}});
        assert_eq!(t.render(&request(), Some(&body)), "남은 수량 3개, .");
        // Text the answer's charset could not give (U+FFFD) is left out, like a missing field.
        let body = serde_json::json!({"stock": {"left": 3}, "missing": "\u{fffd}\u{fffd} 없음"});
        assert_eq!(t.render(&request(), Some(&body)), "남은 수량 3개, .");
        let body = serde_json::json!({"stock": {"left": 3}, "missing": {"m": "\u{fffd}"}});
        assert_eq!(t.render(&request(), Some(&body)), "남은 수량 3개, .");
    }

    /// A path segment indexes into an array by number; a name or an index past the end
    /// renders empty, like a missing field.
    #[test]
    fn response_fields_index_into_arrays() {
        let t = Template::parse(
            "{response.body.items.1.sku}|{response.body.items.sku}|{response.body.items.2}|{response.body.items.0}",
            Scope::WithResponse,
        )
        .unwrap();
        let body = serde_json::json!({"items": [{"sku": "A-1"}, {"sku": "B-2"}]});
        assert_eq!(t.render(&request(), Some(&body)), r#"B-2|||{"sku":"A-1"}"#);
    }

    #[test]
    fn escapes_values_not_text() {
        let t = Template::parse("/api/stock/{order_id}", Scope::Request).unwrap();
        let out = t.render_escaped(&request(), None, |s| {
            Cow::Owned(s.replace(' ', "%20").replace('/', "%2F"))
        });
        assert_eq!(out, "/api/stock/order%201%2F2");
    }

    /// An answer's field is written only as far as a reason can show: a megabyte object or
    /// text is not written whole to be cut after.
    #[test]
    fn a_large_answer_field_is_written_only_as_far_as_a_reason_shows() {
        let t = Template::parse("품절: {response.body.items}", Scope::WithResponse).unwrap();
        let items: Vec<_> = (0..100_000)
            .map(|i| serde_json::json!({"sku": i}))
            .collect();
        let body = serde_json::json!({ "items": items });
        let out = t.render_escaped(&request(), Some(&body), |s| Cow::Borrowed(s));
        assert!(
            out.starts_with("품절: [{\"sku\":0},{\"sku\":1}"),
            "{}",
            &out[..40]
        );
        assert_eq!(out.len(), "품절: ".len() + FIELD_MAX);
        let text = serde_json::json!({ "items": "가".repeat(100_000) });
        let out = t.render_escaped(&request(), Some(&text), |s| Cow::Borrowed(s));
        // Cut at a character boundary: 3-byte characters, 16 KiB is not a multiple of 3.
        assert_eq!(out, format!("품절: {}", "가".repeat(FIELD_MAX / 3)));
    }

    #[test]
    fn rejects_bad_templates() {
        assert_eq!(
            Template::parse("{nope}", Scope::Request).unwrap_err(),
            "unknown placeholder {nope}, expected one of {order_id}, {tx_id}, {amount}, {store_id}"
        );
        assert_eq!(
            Template::parse("Bearer {SHOP_API_TOKEN}", Scope::Call).unwrap_err(),
            "unknown placeholder {SHOP_API_TOKEN} (an environment variable is read only in an upstream's url and headers, as ${SHOP_API_TOKEN}), expected one of {order_id}, {tx_id}, {amount}, {store_id}"
        );
        assert!(Template::parse("{response.body.x}", Scope::Request)
            .unwrap_err()
            .contains("which only a fetch rule's reason has"));
        assert!(Template::parse("{order_id", Scope::Request)
            .unwrap_err()
            .contains("unclosed"));
        assert!(Template::parse("a } b", Scope::Request)
            .unwrap_err()
            .contains("unmatched"));
    }

    /// Audit: only a text's first bad placeholder was reported, so a reason with two slips
    /// took two rounds to fix. Every one is, each at its brace (or its `$`).
    #[test]
    fn every_error_of_a_text_is_given_at_its_place() {
        let errors = Template::parse_at(
            "한도 {amout}원, ${order_id} } {response.bdy.left} {x",
            Scope::WithResponse,
        )
        .unwrap_err();
        let found: Vec<(usize, &str)> = errors
            .iter()
            .map(|(message, at)| (*at, message.split(" (").next().unwrap_or("")))
            .collect();
        assert_eq!(
            found,
            [
                (3, "unknown placeholder {amout}"),
                (13, "\"${order_id}\" would show the buyer a \"$\" before the value; placeholders are written without it: {order_id}"),
                (25, "unmatched \"}\""),
                (27, "unknown placeholder {response.bdy.left}"),
                (47, "unclosed \"{\""),
            ]
        );
        assert!(
            errors[3].0.contains("read as {response.body.left}"),
            "{errors:?}"
        );
        let amt = Template::parse("{amt}", Scope::Request).unwrap_err();
        assert!(amt.contains("(did you mean {amount}?)"), "{amt}");
        // A `$` before a failed placeholder is not taken for the next one's.
        let once = Template::parse_at("${order_id}{store_id} 주문", Scope::Request).unwrap_err();
        assert_eq!(once.len(), 1, "{once:?}");
        // What a fetch sends: every `${…}` and every other slip.
        let call = Template::parse_call_at("/s/${order_id}/${tx_id}/{amout}").unwrap_err();
        let at: Vec<usize> = call.iter().map(|(_, at)| *at).collect();
        assert_eq!(at, [3, 15, 24], "{call:?}");
        // Each `${…}` as the placeholder it would be without its `$`.
        for (src, says) in [
            (
                "/s/${order_id|없음}",
                "request placeholders are written without \"$\", like {order_id|없음}",
            ),
            (
                "/s/${ order_id }",
                "request placeholders are written without \"$\"",
            ),
            (
                "/s/${response.body.x}",
                "reads this fetch's answer, which is not there yet",
            ),
            ("/s/${order_id/x", "unclosed \"${\""),
            (
                "/s/${SHOP_TOKEN}",
                "${VAR} reads an environment variable only in an upstream's url and headers",
            ),
        ] {
            let e = Template::parse_call_at(src).unwrap_err();
            assert_eq!(e.len(), 1, "{src}: {e:?}");
            assert!(e[0].0.contains(says), "{src}: {e:?}");
        }
    }
}
