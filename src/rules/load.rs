//! Rules directory → [`Rules`]: read every file, parse strictly, compile every expression and
//! script, resolve every reference and `${VAR}`, and report every error with its location.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;

use super::model::RawSettings;
use super::template::{Scope as TemplateScope, Template};
use super::yaml::{self, Location, Seg, MAX_LOCATED};
use super::{
    Check, Expr, LoadError, LoadErrors, Mode, OnError, Rule, Rules, Ruleset, Settings,
    PORTONE_TIMEOUT,
};
use crate::script::native::Native;
use crate::script::ScriptEngine;
use source::ruleset_files;
pub(crate) use source::{
    is_misnamed_yaml, leads_outside, read_text, read_yaml_text, ReadError, UNKNOWN_RULESET,
};
pub use source::{is_rule_source, referenced_scripts, rules_version};

/// Reads `${VAR}` values; the process environment in production, a map in tests.
pub type Env<'a> = &'a dyn Environment;

/// Where `${VAR}` values come from: the process's environment, or a test's own (any
/// `Fn(&str) -> Result<String, VarError>`).
pub trait Environment: Sync {
    fn var(&self, name: &str) -> Result<String, std::env::VarError>;
    /// The names of the variables that are set, for a "did you mean" when one is not.
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
}

impl<F: Fn(&str) -> Result<String, std::env::VarError> + Sync> Environment for F {
    fn var(&self, name: &str) -> Result<String, std::env::VarError> {
        self(name)
    }
}

/// The process's own environment, as `serve`, `check` and `test` read it.
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Result<String, std::env::VarError> {
        std::env::var(name)
    }

    fn names(&self) -> Vec<String> {
        std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .collect()
    }
}

/// What a load needs from outside the rules directory.
pub struct LoadOptions<'a> {
    pub engine: &'a ScriptEngine,
    pub env: Env<'a>,
    /// The running generation, when this load may replace it: an upstream it has too (same
    /// ruleset, same name) takes over its HTTP clients and so their open connections. A
    /// reload then sends the next fetch, forward and probe over a connection already made
    /// instead of opening one (a TCP, maybe TLS, handshake on the request's time) and
    /// leaving the old ones to close in TIME-WAIT. The clients hold nothing of the upstream's
    /// url or headers, so a changed one takes effect all the same; they hold a connect timeout
    /// from its `timeout`, so an upstream whose timeout changed gets new ones.
    pub previous: Option<&'a Rules>,
}

/// Loads and validates a whole rules directory; nothing is returned unless everything is valid.
pub fn load_dir(dir: &Path, opts: &LoadOptions<'_>) -> Result<Rules, LoadErrors> {
    // The version is taken before the files are read: a file saved while this load runs then
    // changes the next reload's version, so that reload is not skipped as unchanged.
    let version = rules_version(dir);
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut rulesets = BTreeMap::new();
    let mut scripts = HashMap::new();
    let files = match ruleset_files(dir) {
        Ok(listing) => listing,
        Err(e) => return Err(LoadErrors(vec![e])),
    };
    errors.extend(files.bad_names);
    // Kept for the error below: with no ruleset at all, a misnamed file is likely why.
    let misnamed = files.not_rulesets.clone();
    warnings.extend(files.not_rulesets);
    let files = files.rulesets;
    for (name, path) in files {
        let src: Arc<str> = match read_yaml_text(&path) {
            Ok(src) => src.into(),
            Err(e) => {
                errors.push(e.into_load_error(path, ""));
                continue;
            }
        };
        let name_in_dir = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        let mut file = FileCompiler {
            dir,
            path: &path,
            src,
            name: name_in_dir.into(),
            opts,
            errors: Vec::new(),
            warnings: &mut warnings,
            broken_upstreams: Vec::new(),
            upstreams_broken: false,
            uses_payload: false,
            rule_order: Vec::new(),
            unreadable_rules: Vec::new(),
            current_rule: 0,
            before_comments: None,
            number_texts: None,
            scripts: &mut scripts,
            located_errors: 0,
            located_warnings: 0,
            unlocated_errors: 0,
            unlocated_warnings: 0,
        };
        let warned_before = file.warnings.len();
        let ruleset = file.compile(&name);
        sort_warnings_by_position(&mut file.warnings[warned_before..], &path);
        let (more_errors, more_warnings) = (file.unlocated_errors, file.unlocated_warnings);
        if file.errors.is_empty() {
            rulesets.insert(name, Arc::new(ruleset));
        } else {
            sort_by_position(&mut file.errors, &path);
            errors.append(&mut file.errors);
        }
        if more_errors > 0 {
            errors.push(LoadError {
                file: path.clone(),
                location: None,
                message: format!("and {more_errors} more errors, not shown: only the first {MAX_LOCATED} errors of a file are located; fix these and check again"),
            });
        }
        if more_warnings > 0 {
            warnings.push(format!("{}: and {more_warnings} more warnings, not shown: only the first {MAX_LOCATED} warnings of a file are located", path.display()));
        }
    }
    // Nothing to evaluate refuses every payment with 404, while the proxy would look healthy:
    // a wrong --rules path, or a deploy that removed the files, must not go live.
    if errors.is_empty() && rulesets.is_empty() {
        errors.push(LoadError {
            file: dir.to_owned(),
            location: None,
            message: std::iter::once(
                "no rulesets: no *.yaml rule file directly in this directory, so every \
                 confirm request would be refused with 404",
            )
            .chain(misnamed.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("; "),
        });
    }
    if !errors.is_empty() {
        return Err(LoadErrors(errors));
    }
    let version = version.map_err(|e| {
        LoadErrors(vec![LoadError {
            file: dir.to_owned(),
            location: None,
            message: format!("cannot read: {e}"),
        }])
    })?;
    Ok(Rules::new(version, rulesets, warnings))
}

/// Orders the errors located in `file` by position, so a file's errors read top to bottom
/// whatever found them. Errors in other files (a script a rule refers to) keep their place.
fn sort_by_position(errors: &mut [LoadError], file: &Path) {
    sort_own(errors, |e| {
        (e.file == file).then_some((e.location.is_none(), e.location))
    });
}

/// [`sort_by_position`] for the warnings of `file` (`FILE:LINE:COL: …`, as
/// [`FileCompiler::warn`] writes them): each file's read top to bottom as its errors do.
fn sort_warnings_by_position(warnings: &mut [String], file: &Path) {
    let prefix = format!("{}:", file.display());
    let position = |w: &str| -> Option<(usize, usize)> {
        let mut parts = w.strip_prefix(&prefix)?.splitn(3, ':');
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    };
    sort_own(warnings, |w| position(w));
}

/// Sorts the items that have a `key` among the places they hold; the others keep theirs.
fn sort_own<T: Clone, K: Ord>(items: &mut [T], key: impl Fn(&T) -> Option<K>) {
    let slots: Vec<usize> = (0..items.len())
        .filter(|&i| key(&items[i]).is_some())
        .collect();
    let mut own: Vec<T> = slots.iter().map(|&i| items[i].clone()).collect();
    own.sort_by_key(|item| key(item));
    for (slot, item) in slots.into_iter().zip(own) {
        items[slot] = item;
    }
}

/// The longest duration anything takes (a deadline, a timeout, a probe interval, the idle
/// timeout): longer is a typo, and would overflow the timers' clock at the extreme.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Parses `500ms`, `1.5s`, `4s`, `1m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let expected = || {
        format!("invalid duration \"{s}\", expected a number and a unit like 500ms, 1.5s, 4s or 1m")
    };
    let s = s.trim();
    // `-1s`: a number and a unit, as asked, so say what is wrong with it. Only a digit after
    // one `-` is read on (never a recursion per dash: a review's 100,000 dashes overflowed the
    // stack of a reload).
    if let Some(rest) = s
        .strip_prefix('-')
        .filter(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
    {
        let zero = format!("duration \"{rest}\" must be greater than zero");
        let inner = parse_duration(rest);
        if inner.is_ok() || inner == Err(zero) {
            return Err(format!("duration \"{s}\" must be greater than zero"));
        }
    }
    // `３s`, `３ｓ` from a Korean input method in full-width mode looks like `3s` but is no
    // duration: what the ASCII forms of those characters make, if that is one.
    if let Some(wide) = s.chars().find(|c| ('\u{FF01}'..='\u{FF5E}').contains(c)) {
        let typed: String = s
            .chars()
            .map(|c| match c {
                '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
                c => c,
            })
            .collect();
        let fix = match parse_duration(&typed) {
            Ok(_) => format!("type {typed}"),
            Err(e) => {
                format!("typed in ASCII it reads \"{typed}\", which is no duration either: {e}")
            }
        };
        return Err(format!(
            "{}: \"{wide}\" is a full-width character, which YAML and the proxy read as another letter than the one it looks like; {fix}",
            expected()
        ));
    }
    // A number alone (`deadline: 3`): which unit was meant is not for the loader to guess, so
    // each that makes a duration it takes is offered (none for `0`).
    let no_unit = || {
        let units: Vec<String> = ["s", "ms"]
            .iter()
            .map(|unit| format!("{s}{unit}"))
            .filter(|written| parse_duration(written).is_ok())
            .collect();
        match &units[..] {
            [] => expected(),
            units => format!(
                "{}; a number alone has no unit: write {}",
                expected(),
                units.join(" or ")
            ),
        }
    };
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(no_unit)?;
    let (num, unit) = s.split_at(split);
    let num: Decimal = num.parse().map_err(|_| expected())?;
    let millis_per_unit = match unit.trim() {
        "ms" => Decimal::ONE,
        "s" => Decimal::from(1000),
        "m" => Decimal::from(60_000),
        "h" => Decimal::from(3_600_000),
        // Korean units, as an operator may write them: the unit to write instead.
        korean @ ("밀리초" | "초" | "분" | "시간") => {
            let unit = match korean {
                "밀리초" => "ms",
                "초" => "s",
                "분" => "m",
                _ => "h",
            };
            return Err(format!("{}; write {num}{unit}", expected()));
        }
        _ => return Err(expected()),
    };
    let too_long = || format!("duration \"{s}\" is too long (at most 24h)");
    let micros = num
        .checked_mul(millis_per_unit * Decimal::from(1000))
        .ok_or_else(too_long)?
        .trunc();
    let micros: u64 = micros.try_into().map_err(|_| too_long())?;
    if micros == 0 {
        return Err(format!("duration \"{s}\" must be greater than zero"));
    }
    let duration = Duration::from_micros(micros);
    if duration > MAX_DURATION {
        return Err(too_long());
    }
    Ok(duration)
}

/// Whether Rhai source may read `payload`. Rhai has no way to name a variable at run time
/// (`eval` is disabled), so a plain token search is a safe over-approximation.
fn mentions_payload(src: &str) -> bool {
    mentions_word(src, "payload")
}

/// Whether `word` is in `src` as a word of its own (not part of a longer name).
fn mentions_word(src: &str, word: &str) -> bool {
    !word.is_empty()
        && src.match_indices(word).any(|(i, _)| {
            let ident = |c: char| c.is_alphanumeric() || c == '_';
            let before = src[..i].chars().next_back().is_some_and(ident);
            let after = src[i + word.len()..].chars().next().is_some_and(ident);
            !before && !after
        })
}

/// The text of each fractional number of `rules` that is sent or compared as written — an
/// amount bound, a number in a fetch `body` — (by its path below the file's `rules`), read in
/// one pass over the file: finding one number by its path reads the file up to it (4,000
/// rules with `max: 1000.5` took 41 s). `None` when every such number is an integer (those
/// come through exactly), or when the pass could not be made (each is then found on its own).
fn number_texts(src: &str, rules: &[(usize, super::model::RawRule)]) -> Option<yaml::Texts> {
    let fractional = |n: &serde_json::Number| !(n.is_i64() || n.is_u64());
    let mut guide = vec![serde_json::Value::Null; rules.iter().map(|(i, _)| i + 1).max()?];
    let mut any = false;
    for (i, r) in rules {
        let mut numbers = serde_json::Map::new();
        if let Some(a) = &r.amount {
            any |= a.min.iter().chain(&a.max).any(fractional);
            numbers.insert(
                "amount".into(),
                serde_json::json!({ "min": a.min, "max": a.max }),
            );
        }
        if let Some(body) = r.fetch.as_ref().and_then(|f| f.body.as_ref()) {
            any |= has_fraction(body);
            numbers.insert("fetch".into(), serde_json::json!({ "body": body }));
        }
        if !numbers.is_empty() {
            guide[*i] = serde_json::Value::Object(numbers);
        }
    }
    if !any {
        return None;
    }
    yaml::numbers_as_written(src, &[Seg::Key("rules")], &serde_json::Value::Array(guide))
}

/// Whether `v` holds a number with a fraction or exponent (as serde_yaml read it).
fn has_fraction(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Number(n) => !(n.is_i64() || n.is_u64()),
        serde_json::Value::Array(items) => items.iter().any(has_fraction),
        serde_json::Value::Object(map) => map.values().any(has_fraction),
        _ => false,
    }
}

/// The error for a ruleset without rules (an empty file, `rules:` with nothing under it).
const NO_RULES: &str = "no rules: a ruleset needs at least one rule (an empty ruleset would approve every payment; to approve everything on purpose, write a rule with when: 'true' and action: approve)";

/// The warning for a ruleset whose every rule is `mode: shadow` or `mode: off`.
const NOTHING_ENFORCED: &str = "no rule is enforced (every rule has mode: shadow or off), so this ruleset approves every payment";
/// The warning for a ruleset whose enforced rules are all approvals.
const NOTHING_REFUSES: &str = "no enforced rule can refuse (the enforced rules are all action: approve; the others have mode: shadow or off), so this ruleset approves every payment";

/// The error for a `{` or `}` in `forward.path` (after `rule "NAME": `): the engine sends that
/// path as written, so a placeholder would reach the merchant as `%7Border_id%7D`.
const FORWARD_PATH_IS_FIXED: &str = "forward.path is a fixed path: placeholders like {order_id} are not filled in there (forward sends the original request unchanged, so the merchant's handler reads the order from the body); remove the braces, or use fetch, whose path is a template";

/// Compiles one rule file, collecting every error it can find.
struct FileCompiler<'a, 'o> {
    dir: &'a Path,
    path: &'a Path,
    /// The file's text, shared with its expressions (see [`yaml::Origin`]).
    src: Arc<str>,
    /// The file's name relative to the rules directory, as run-time errors name it.
    name: Arc<str>,
    opts: &'a LoadOptions<'o>,
    errors: Vec<LoadError>,
    warnings: &'a mut Vec<String>,
    /// Upstreams defined in the file that failed to load: already reported, so a rule naming
    /// one is not told it is unknown.
    broken_upstreams: Vec<String>,
    /// `upstreams` itself did not read (already reported): no upstream name is known.
    upstreams_broken: bool,
    /// Set when an expression or script of this file mentions `payload`.
    uses_payload: bool,
    /// The file's rules in order, and the position of the rule being compiled: what
    /// `fetched["name"]` may name.
    rule_order: Vec<RuleEntry>,
    /// The names of the file's rules that do not read (see [`yaml::RuleFile`]).
    unreadable_rules: Vec<String>,
    current_rule: usize,
    /// Where the text before each glued comment that follows something on its line ends (see
    /// [`yaml::ends_before_comments`]), found once: locating a value reads the file from its
    /// start, so doing it for every reason made loading a long file quadratic.
    before_comments: Option<Vec<usize>>,
    /// The text of each fractional amount bound and fetch body number, read in one pass over
    /// the file (see [`number_texts`]).
    number_texts: Option<yaml::Texts>,
    /// The scripts compiled in this load, by file: a script that many rules name is read and
    /// compiled once, and its AST shared (each rule kept its own: 80 rules naming a 1 MiB
    /// script took 1.2 GB).
    scripts: &'a mut HashMap<PathBuf, CompiledScript>,
    /// Errors and warnings located so far, and those past [`MAX_LOCATED`], counted only.
    located_errors: usize,
    located_warnings: usize,
    unlocated_errors: usize,
    unlocated_warnings: usize,
}

/// A script file as one load read and compiled it.
type CompiledScript = (
    Arc<str>,
    Result<Arc<rhai::AST>, crate::script::CompileError>,
);

impl FileCompiler<'_, '_> {
    /// Counts an error not to be located, when no more of this file are (then `true`; see
    /// [`MAX_LOCATED`]).
    fn error_not_located(&mut self) -> bool {
        let full = self.located_errors >= MAX_LOCATED;
        self.unlocated_errors += usize::from(full);
        full
    }

    /// [`Self::error_not_located`] for a warning.
    fn warning_not_located(&mut self) -> bool {
        let full = self.located_warnings >= MAX_LOCATED;
        self.unlocated_warnings += usize::from(full);
        full
    }
    /// Reports, at `at`, what keeps a path written in the file (`fetch.path`, `forward.path`, a
    /// health `path`; `subject` names it) from being sent as written after the upstream's url.
    fn check_path(&mut self, at: &[Seg<'_>], subject: &str, path: &str) {
        if !path.starts_with('/') {
            self.error(at, format!("{subject} must start with \"/\""));
        }
        // In an http(s) URL the URL parser reads `\` as `/`: after it, an id of `..` would be
        // a segment of its own, and take the call out of the path (`/x\{order_id}`).
        if path.contains('\\') {
            self.error(at, format!("{subject} must not hold \"\\\": URL parsers read it as \"/\", so the call would go to another path than the one written; write a literal \\ as %5C"));
        }
        // A fragment is never sent: the rest of the path, and the query after it, would be.
        if path.contains('#') {
            self.error(at, format!("{subject} must not hold \"#\": a fragment is never sent, so what follows it (and the query) would be dropped; write a literal # as %23"));
        }
        // The URL parser resolves `.` and `..`: `/../admin` after `http://shop/api` calls
        // `http://shop/admin`, outside the prefix the url names. In an http(s) URL it reads
        // `\` as `/` too (`/..\admin`).
        let segments = path
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .split(['/', '\\']);
        if let Some(dots) = segments
            .into_iter()
            .find(|s| crate::upstream::is_dot_segment(s))
        {
            self.error(at, format!("{subject} must not have the segment \"{dots}\": URL parsers resolve it, so the call would go to another path than the one written (outside the upstream url's path too)"));
        }
    }

    /// An error about the node at `path`, placed there, or at the alias it was used through
    /// (`window: *w` for a `window.from` of the anchor's): the anchor's text is every use's.
    fn error(&mut self, path: &[Seg<'_>], message: impl Into<String>) {
        if self.error_not_located() {
            return;
        }
        let location =
            yaml::outermost_alias(&self.src, path).unwrap_or_else(|| yaml::locate(&self.src, path));
        self.error_at(location, message);
    }

    /// An error about the key of the entry at `path` (a header's name), located at the key
    /// rather than at its value.
    fn error_at_key(&mut self, path: &[Seg<'_>], message: impl Into<String>) {
        if self.error_not_located() {
            return;
        }
        let location =
            yaml::locate_key(&self.src, path).unwrap_or_else(|| yaml::locate(&self.src, path));
        self.error_at(location, message);
    }

    /// A warning at the node `path`, as `FILE:LINE:COL: message`.
    fn warn(&mut self, path: &[Seg<'_>], message: impl std::fmt::Display) {
        if self.warning_not_located() {
            return;
        }
        self.located_warnings += 1;
        let at = yaml::locate(&self.src, path);
        self.warnings.push(format!(
            "{}:{}:{}: {message}",
            self.path.display(),
            at.line,
            at.column
        ));
    }

    /// Warnings about a buyer's text `value` at `path`, loaded as `template`: cut by a YAML
    /// comment, or made of placeholders that may all be empty (it would render blank).
    fn warn_about_reason(
        &mut self,
        path: &[Seg<'_>],
        value: &str,
        template: &Template,
        what: &str,
    ) {
        self.warn_cut_by_comment(path, value, what);
        if !template.never_blank() {
            self.warn(path, format_args!("{what} has no words of its own, only placeholders that may be empty: then the buyer reads \"{}\"; add words", super::template::NOTHING_TO_SHOW));
        }
        for name in template.fallbacks_never_shown() {
            self.warn(path, format_args!("{what}: {{{name}|…}}'s fallback never shows: every request that reaches the rules has its {name} (one without is refused as a payload); write {{{name}}}"));
        }
    }

    /// A warning when the buyer's text `value` at `path` was cut by YAML at ` #` (`reason:
    /// 좌석 #1 매진` reads as `좌석`): a comment of a word glued to its `#` is most likely
    /// the rest of the text; `# 설명` with a space reads as a comment meant as one.
    fn warn_cut_by_comment(&mut self, path: &[Seg<'_>], value: &str, what: &str) {
        let src = &self.src;
        let ends = self
            .before_comments
            .get_or_insert_with(|| yaml::ends_before_comments(src));
        if !ends.iter().any(|&end| src[..end].ends_with(value)) {
            return;
        }
        // Whether it is a warning takes its location: past the cap, a candidate is not
        // counted as one.
        if self.located_warnings >= MAX_LOCATED {
            return;
        }
        let at = yaml::locate(&self.src, path);
        let glued = yaml::comment_after(&self.src, at, value)
            .filter(|comment| comment.starts_with(|c: char| !c.is_whitespace() && c != '#'))
            .map(|comment| crate::text::for_buyers_cut(comment.trim_end(), 20).into_owned());
        if let Some(rest) = glued {
            self.warn(path, format_args!("{what} ends before \" #{rest}\": YAML reads an unquoted value only up to \" #\", the rest of the line being a comment; put the whole text in quotes"));
        }
    }

    /// Every error [`Template::parse_at`] found in `value`, the template at `path`, each
    /// after `what` (`rule "a": reason`).
    fn errors_in_template(
        &mut self,
        path: &[Seg<'_>],
        value: &str,
        errors: Vec<(String, usize)>,
        what: &str,
    ) {
        for (e, offset) in errors {
            self.error_in_value(path, value, offset, format!("{what}: {e}"));
        }
    }

    /// An error about the character at `offset` (in characters) of the value at `path`, whose
    /// parsed text is `value`: it points at that character, through quotes and escapes — or at
    /// the alias the value was used through (`reason: *rs`, `fetch: *f`), since a place in the
    /// anchor's text is every use's.
    fn error_in_value(&mut self, path: &[Seg<'_>], value: &str, offset: usize, message: String) {
        if self.error_not_located() {
            return;
        }
        let at = yaml::outermost_alias(&self.src, path).unwrap_or_else(|| {
            let before: String = value.chars().take(offset).collect();
            let Location { line, column } = Location::after(&before);
            let scalar = yaml::locate(&self.src, path);
            yaml::position_in_scalar(&self.src, scalar, value, line, column)
        });
        self.error_at(at, message);
    }

    fn error_at(&mut self, location: Location, message: impl Into<String>) {
        self.located_errors += 1;
        let mut message = message.into();
        // `unknown field "　reason"` shows a key indented, or glued to its value, by a blank
        // YAML does not read as one: say which (a syntax error says so already).
        if let Some((_, unseen)) = yaml::unseen_on_line(&self.src, location.line)
            .filter(|(code, _)| !message.contains(code.as_str()))
        {
            message.push_str("; ");
            message.push_str(&unseen);
        }
        self.errors.push(LoadError {
            file: self.path.to_owned(),
            location: Some(location),
            message,
        });
    }

    fn compile(&mut self, name: &str) -> Ruleset {
        // Every shape error of the file (unknown keys, wrong types, duplicate keys), each part
        // read on its own; the parts that read are compiled below, so their errors come too.
        let file = yaml::parse_rule_file(&self.src);
        for e in file.errors {
            match e.location {
                Some(at) => self.error_at(at, e.message),
                // A count of errors not located (see `yaml::keys_without_value`).
                None => self.errors.push(LoadError {
                    file: self.path.to_owned(),
                    location: None,
                    message: e.message,
                }),
            }
        }
        self.number_texts = number_texts(&self.src, &file.rules);
        self.broken_upstreams = file.broken_upstreams;
        self.upstreams_broken = file.upstreams_broken;
        let settings = match &file.settings {
            Some(raw) => self.settings(raw),
            None => Settings::default(),
        };
        let mut upstreams = BTreeMap::new();
        for (key, up) in &file.upstreams {
            match self.upstream(name, key, up) {
                Some(u) => {
                    upstreams.insert(key.clone(), Arc::new(u));
                }
                None => self.broken_upstreams.push(key.clone()),
            }
        }
        if file.rules.is_empty() && !file.rules_broken {
            // Fail closed: with no rule to refuse, every payment would be approved. A truncated
            // or half-saved file (a full disk, an editor that does not save atomically) looks
            // exactly like this, so it must never load.
            let at = yaml::locate_key(&self.src, &[Seg::Key("rules")])
                .unwrap_or(Location { line: 1, column: 1 });
            self.error_at(at, NO_RULES);
        }
        let mut rules: Vec<Rule> = Vec::new();
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        self.unreadable_rules = file.unreadable_rules.clone();
        self.rule_order = file
            .rules
            .iter()
            .map(|(_, r)| RuleEntry {
                name: r.name.clone(),
                fetch: r.fetch.is_some(),
                off: r.mode == Some(Mode::Off),
                shadow: r.mode == Some(Mode::Shadow),
                when: r.when.clone(),
                // Not a fetch's: a failed call with `on_error: approve` passes unevaluated.
                requires_fields: match (r.mode, &r.when, &r.require, &r.fetch) {
                    (None | Some(Mode::Enforce), None, Some(require), None) => {
                        fields_required(require)
                    }
                    _ => Vec::new(),
                },
            })
            .collect();
        for (position, (i, raw_rule)) in file.rules.iter().enumerate() {
            let i = *i;
            self.current_rule = position;
            let at = [Seg::Key("rules"), Seg::Index(i), Seg::Key("name")];
            if raw_rule.name.trim().is_empty() {
                self.error(&at, "rule name must not be empty");
            } else if let Some(c) = raw_rule
                .name
                .chars()
                .find(|&c| c.is_control() || crate::logfmt::escaped_in_json_lines(c))
            {
                // A name goes into log lines, metric labels, traces and test reports, where a
                // line break or a direction control would split or disguise them.
                self.error(&at, format!("rule name {:?} holds U+{:04X}, a control or invisible character: a name is shown in log lines, metrics and traces, where it would break a line or hide; use letters, digits, spaces, - and _", raw_rule.name, c as u32));
            } else if let Some(&first) = seen.get(raw_rule.name.as_str()) {
                if self.error_not_located() {
                    continue;
                }
                // A name may be an alias (`name: *n`): each is placed where it is written.
                let first_at = yaml::locate_written(
                    &self.src,
                    &[Seg::Key("rules"), Seg::Index(first), Seg::Key("name")],
                );
                let here = yaml::locate_written(&self.src, &at);
                self.error_at(
                    here,
                    format!(
                        "duplicate rule name \"{}\" (first used at line {})",
                        raw_rule.name, first_at.line
                    ),
                );
            } else {
                seen.insert(&raw_rule.name, i);
            }
            if let Some(rule) = self.rule(i, raw_rule, &upstreams) {
                rules.push(rule);
            }
        }
        self.warn_about_ruleset(&file.rules, &settings, &upstreams, &rules);
        Ruleset {
            name: name.to_owned(),
            file: self.path.to_owned(),
            settings,
            upstreams,
            uses_payload: std::mem::take(&mut self.uses_payload),
            uses_rhai: rules.iter().any(Rule::uses_rhai),
            calls_upstreams: rules.iter().any(Rule::calls_upstream),
            has_side_effects: rules.iter().any(Rule::has_side_effects),
            prefetches: rules.iter().any(Rule::is_prefetch),
            early_whens: rules.iter().any(Rule::when_known_early),
            rules,
            metrics: std::sync::OnceLock::new(),
        }
    }

    /// The warnings about a ruleset as a whole, once its rules are compiled: upstream timeouts
    /// the deadline makes moot (or too short to be meant), failing open where the merchant is
    /// asked to act, rules hidden behind one approving everything, and nothing that refuses.
    fn warn_about_ruleset(
        &mut self,
        raw_rules: &[(usize, super::model::RawRule)],
        settings: &Settings,
        upstreams: &BTreeMap<String, Arc<super::Upstream>>,
        rules: &[Rule],
    ) {
        // A call that hangs is ended by the deadline before its own timeout: the ruleset's
        // on_error decides, not the rule's (health probes are not bound by the deadline).
        for (key, up) in upstreams {
            let called = rules
                .iter()
                .any(|r| r.called().is_some_and(|u| u.name == *key));
            if called && up.timeout >= settings.deadline {
                // At its `timeout` (at the upstream when the default is left).
                self.warn(
                    &[Seg::Key("upstreams"), Seg::Key(key), Seg::Key("timeout")],
                    format_args!("upstream \"{key}\": its timeout {:?} is not below the deadline {:?}, so a call that hangs is ended by the deadline first and the ruleset's on_error decides, not the rule's; set a timeout below the deadline", up.timeout, settings.deadline),
                );
            } else if called && up.timeout < SHORT_TIMEOUT {
                // `5ms` for `5s`: no call over a network answers that fast.
                self.warn(
                    &[Seg::Key("upstreams"), Seg::Key(key), Seg::Key("timeout")],
                    format_args!("upstream \"{key}\": its timeout {:?} is very short: a call that takes longer, as most calls over a network do, ends in on_error (was a unit of seconds meant?)", up.timeout),
                );
            }
        }
        // Failing open where the merchant is asked to act: a call the deadline stops is the
        // ruleset's `on_error` to decide, never the rule's.
        if settings.on_error == OnError::Approve {
            if let Some(r) = rules
                .iter()
                .find(|r| r.mode == Mode::Enforce && r.has_side_effects())
            {
                self.warn(
                    &[Seg::Key("settings"), Seg::Key("on_error")],
                    format_args!("settings.on_error: approve with rule \"{}\", which asks the merchant to act (a forward, or a POST/PUT fetch): when the deadline stops that call (not sent, reached too close to the deadline; or its answer not in by then), the payment is approved without the merchant's answer, whatever the rule's own on_error says; use on_error: reject unless approving then is what you want", r.name),
                );
            }
        }
        // A forward asks the merchant to confirm the order: an enforced rule after it that
        // may still refuse leaves an order the merchant confirmed for a payment refused.
        // (Another forward after it, both guarded by a `when`, is the same step for other
        // requests: one confirm handler per API version or store, say.)
        if raw_rules.len() == rules.len() {
            let enforced = |r: &&Rule| r.mode == Mode::Enforce;
            for (k, fw) in rules.iter().enumerate() {
                if fw.mode != Mode::Enforce || !matches!(fw.check, Check::Forward(_)) {
                    continue;
                }
                let after: Vec<String> = rules[k + 1..]
                    .iter()
                    .filter(enforced)
                    .filter(|r| !matches!(r.check, Check::Approve))
                    .filter(|r| {
                        !(matches!(r.check, Check::Forward(_))
                            && fw.when.is_some()
                            && r.when.is_some())
                    })
                    .map(|r| format!("\"{}\"", r.name))
                    .collect();
                if !after.is_empty() {
                    self.warn(
                        &[Seg::Key("rules"), Seg::Index(raw_rules[k].0), Seg::Key("forward")],
                        format_args!("rule \"{}\" forwards to the merchant's confirm handler before {} {}, which may still refuse: the merchant would confirm an order whose payment is then refused; put the forward after the checks", fw.name, if after.len() == 1 { "rule" } else { "rules" }, after.join(", ")),
                    );
                }
            }
        }
        // `when: 'true'` with `action: approve` is how approving everything on purpose is
        // written (the error for a missing `when` says so): only the rules it hides are news.
        let approves_all = |r: &super::model::RawRule| {
            r.action.is_some()
                && r.mode.unwrap_or_default() == Mode::Enforce
                && r.when.as_deref().and_then(rule::constant) == Some(true)
        };
        let first_approving_all = raw_rules.iter().position(|(_, r)| approves_all(r));
        if let Some(first) = first_approving_all {
            let (i, r) = &raw_rules[first];
            let hidden = raw_rules[first + 1..]
                .iter()
                .filter(|(_, r)| r.mode != Some(Mode::Off))
                .count();
            if hidden > 0 {
                self.warn(
                    &[Seg::Key("rules"), Seg::Index(*i), Seg::Key("when")],
                    format_args!("rule \"{}\": when is always true, so this rule approves every payment and {} never evaluated", r.name, if hidden == 1 { "the rule after it is".to_owned() } else { format!("the {hidden} rules after it are") }),
                );
            }
        }
        if !rules.is_empty() && rules.iter().all(|r| r.mode != Mode::Enforce) {
            self.warnings
                .push(format!("{}: {NOTHING_ENFORCED}", self.path.display()));
        } else if !rules.is_empty()
            && first_approving_all.is_none()
            && !rules
                .iter()
                .any(|r| r.mode == Mode::Enforce && !matches!(r.check, Check::Approve))
        {
            self.warnings
                .push(format!("{}: {NOTHING_REFUSES}", self.path.display()));
        }
    }

    fn duration(&mut self, path: &[Seg<'_>], s: &str) -> Option<Duration> {
        parse_duration(s).map_err(|e| self.error(path, e)).ok()
    }

    fn settings(&mut self, raw: &RawSettings) -> Settings {
        let mut s = Settings::default();
        if let Some(d) = &raw.deadline {
            if let Some(d) = self.duration(&[Seg::Key("settings"), Seg::Key("deadline")], d) {
                if d > PORTONE_TIMEOUT {
                    self.warn(
                        &[Seg::Key("settings"), Seg::Key("deadline")],
                        format_args!("settings.deadline {d:?} is over 5s: PortOne may stop waiting first and count the payment as refused"),
                    );
                } else if d < SHORT_DEADLINE {
                    // `3ms` for `3s`: every upstream call, and a busy moment, ends in on_error.
                    self.warn(
                        &[Seg::Key("settings"), Seg::Key("deadline")],
                        format_args!("settings.deadline {d:?} is very short: an upstream call or a busy moment ends in on_error (PortOne waits 5-10 s; was a unit of seconds meant?)"),
                    );
                }
                s.deadline = d;
            }
        }
        if let Some(o) = raw.on_error {
            s.on_error = o;
        }
        if let Some(r) = &raw.error_reason {
            let at = [Seg::Key("settings"), Seg::Key("error_reason")];
            if crate::text::shows_nothing(r) {
                self.error(&at, "error_reason must not be empty (it is what the buyer sees when a check cannot complete; spaces, controls and invisible characters show nothing)");
            }
            match Template::parse_at(buyer_text(r), TemplateScope::Request) {
                Ok(t) if t.bound().is_some() => {
                    let bound = t.bound().unwrap_or_default();
                    self.error(
                        &at,
                        format!("error_reason: placeholder {{{bound}}} is {}'s bound, which only that rule's reason shows", Template::bound_rule(bound)),
                    );
                }
                Ok(t) => {
                    self.warn_about_reason(&at, r, &t, "error_reason");
                    s.error_reason = t;
                }
                Err(errors) => self.errors_in_template(&at, buyer_text(r), errors, "error_reason"),
            }
        }
        if let Some(st) = raw.reject_status {
            if !(400..=599).contains(&st) {
                self.error(
                    &[Seg::Key("settings"), Seg::Key("reject_status")],
                    format!("reject_status {st} is not a refusal, expected a 4xx or 5xx status"),
                );
            }
            s.reject_status = st;
        }
        s
    }

    fn expression(
        &mut self,
        path: &[Seg<'_>],
        src: &str,
        rule: &str,
        field: &str,
        extra: &[&str],
    ) -> Option<Expr> {
        self.uses_payload |= mentions_payload(src);
        // Rhai's word for an empty text (incomplete, a value missing) sends one looking for an
        // operator that is not there.
        if src.trim().is_empty() {
            self.error(
                path,
                format!("rule \"{rule}\": {field} is empty; write a condition, e.g. {field}: 'amount >= 1000'"),
            );
            return None;
        }
        if let Some(line) = self.comment_swallowing_lines(path, src) {
            self.error(
                path,
                format!("rule \"{rule}\": {field}: the // comment on line {line} runs to the end of the expression, taking the lines after it with it (YAML folds a value's lines into one); write it as /* … */, or start the value with | to keep its line breaks"),
            );
            return None;
        }
        let compiled = self
            .opts
            .engine
            .compile_expression(src, extra)
            .and_then(|ast| self.fetched_checked(&ast).map(|()| ast));
        match compiled {
            Ok(ast) => {
                self.warn_shadow_fetched(path, &ast);
                self.warn_unguarded_payload(path, &ast, None);
                Some(Expr {
                    src: src.to_owned(),
                    ast,
                    native: Native::recognise(src),
                    mentions_fetched: src.contains("fetched"),
                    file: self.name.clone(),
                    origin: yaml::Origin::new(self.src.clone(), path),
                })
            }
            Err(_) if self.error_not_located() => None,
            Err(errors) => {
                let scalar = yaml::locate(&self.src, path);
                // Used through an alias (`require: *ex`): at the alias, as in `error_in_value`.
                let alias = yaml::outermost_alias(&self.src, path);
                for e in errors.into_all() {
                    let at = alias.unwrap_or_else(|| {
                        yaml::position_in_scalar(&self.src, scalar, src, e.line, e.column)
                    });
                    // Only an error where the value ends can come from the cut (Rhai wanted
                    // more); an error elsewhere is the expression's own, and its comment a
                    // real one.
                    let last_line = src.lines().count().max(1);
                    let last_len = src.lines().last().map_or(0, |l| l.chars().count());
                    let at_end = e.line > last_line || (e.line == last_line && e.column > last_len);
                    let hint = if at_end && yaml::cut_by_comment(&self.src, scalar, src) {
                        " (YAML reads an unquoted value only up to \" #\", the rest of the line being a comment: put the expression in quotes)"
                    } else {
                        ""
                    };
                    self.error_at(
                        at,
                        format!(
                            "rule \"{rule}\": {field}: invalid expression: {}{hint}",
                            e.message
                        ),
                    );
                }
                None
            }
        }
    }

    /// The file line of a `//` comment in expression `src` (at `path`) that swallows text from
    /// later lines of the file: a folded (`>`) or plain value joins its lines with spaces, so
    /// `amount <= 1000000  // 기본 한도` followed by a line `|| vip` is one line whose comment
    /// holds the `|| vip` (a trial's VIPs were refused so).
    fn comment_swallowing_lines(&self, path: &[Seg<'_>], src: &str) -> Option<usize> {
        if src.contains('\n') {
            return None;
        }
        let at = crate::script::line_comment_at(src)?;
        let scalar = yaml::locate(&self.src, path);
        let column = src[..at].chars().count() + 1;
        let comment = yaml::position_in_scalar(&self.src, scalar, src, 1, column);
        let last = src.chars().count();
        let end = yaml::position_in_scalar(&self.src, scalar, src, 1, last);
        (end.line > comment.line).then_some(comment.line)
    }

    /// `ast`, unless it names in `fetched` what is never there: a rule that is not a fetch
    /// rule, does not come before the rule being compiled, or is `mode: off` (`fetched["stok"]`
    /// reads `()` on every request, and a `require` on it refuses every payment). A rule that is
    /// off itself may read an off fetch rule: neither runs (both turned off together).
    fn fetched_checked(&self, ast: &rhai::AST) -> Result<(), crate::script::CompileError> {
        let earlier = &self.rule_order[..self.current_rule.min(self.rule_order.len())];
        let reader_off = self
            .rule_order
            .get(self.current_rule)
            .is_some_and(|r| r.off);
        for (name, at) in crate::script::fetched_names(ast) {
            let message = match self.rule_order.iter().position(|r| r.name == name) {
                Some(p) if !self.rule_order[p].fetch => format!(
                    "fetched[\"{name}\"]: rule \"{name}\" is not a fetch rule; fetched holds the answers of the fetch rules before this one"
                ),
                Some(p) if p >= earlier.len() => format!(
                    "fetched[\"{name}\"]: the fetch rule \"{name}\" does not come before this rule, so its answer is never there when this rule runs"
                ),
                Some(p) if self.rule_order[p].off && !reader_off => format!(
                    "fetched[\"{name}\"]: the fetch rule \"{name}\" has mode: off, so it never runs and its answer is never there; turn it on (mode: enforce or shadow), or turn this rule off too"
                ),
                Some(_) => continue,
                // Its own errors are reported: whatever it is, it is fixed first.
                None if self.unreadable_rules.contains(&name) => continue,
                None => {
                    let fetches = earlier
                        .iter()
                        .filter(|r| r.fetch && (!r.off || reader_off))
                        .map(|r| r.name.as_str());
                    let hint = crate::suggest::closest(&name, fetches)
                        .map_or(String::new(), |c| format!("; did you mean \"{c}\"?"));
                    format!("fetched[\"{name}\"]: no fetch rule \"{name}\" before this rule{hint}")
                }
            };
            return Err(crate::script::CompileError {
                message,
                line: at.line().unwrap_or(1),
                column: at.position().unwrap_or(1),
                also: Vec::new(),
            });
        }
        Ok(())
    }
}

impl FileCompiler<'_, '_> {
    /// Warns, at `path`, about each field `ast` reads inside a field of `payload` that a
    /// payment may not have (see [`crate::script::unguarded_payload_reads`]); `script` names
    /// the script file and the line, for a script rule. A rule that is off runs nothing, and a
    /// field its own `when` tests, or an earlier rule refuses every payment without, is there
    /// when its check runs.
    fn warn_unguarded_payload(&mut self, path: &[Seg<'_>], ast: &rhai::AST, script: Option<&str>) {
        let rule = self.rule_order.get(self.current_rule);
        if rule.is_some_and(|r| r.off) {
            return;
        }
        let is_when = matches!(path.last(), Some(Seg::Key("when")));
        let guard = rule.and_then(|r| r.when.clone()).filter(|_| !is_when);
        let earlier = &self.rule_order[..self.current_rule.min(self.rule_order.len())];
        let required: Vec<String> = earlier
            .iter()
            .flat_map(|r| r.requires_fields.iter().cloned())
            .collect();
        let mut said = Vec::new();
        for (field, read, at) in crate::script::unguarded_payload_reads(ast) {
            if said.contains(&read)
                || required.contains(&field)
                || guard.as_deref().is_some_and(|w| mentions_word(w, &field))
            {
                continue;
            }
            let place = match (script, at.line()) {
                (Some(file), Some(line)) => format!("{file}, line {line}: "),
                _ => String::new(),
            };
            // Not "write ?." alone: `payload.custom_data?.tier != "blocked"` is true for a
            // payment without it, which a buyer choosing a V1 body's fields could use.
            self.warn(
                path,
                format!(
                    "{place}{read} fails on every payment whose body has no {field}, and on_error decides; to decide those payments here, test it first (\"{field}\" in payload && …) or read it with ?. (payload.{field}?…), which gives () for them — and () != \"x\" is true"
                ),
            );
            said.push(read);
        }
    }

    /// Warns, at `path`, about each shadow rule whose answer `ast` reads from `fetched` when
    /// the rule being compiled is enforced: the trial would decide payments after all, and
    /// whether its answer is there at all depends on the shadow cut-off.
    fn warn_shadow_fetched(&mut self, path: &[Seg<'_>], ast: &rhai::AST) {
        let reader = self.rule_order.get(self.current_rule);
        if reader.is_none_or(|r| r.off || r.shadow) {
            return;
        }
        let mut named = Vec::new();
        for (name, _) in crate::script::fetched_names(ast) {
            let shadow = self.rule_order.iter().any(|r| r.name == name && r.shadow);
            if shadow && !named.contains(&name) {
                named.push(name);
            }
        }
        for name in named {
            self.warn(
                path,
                format!(
                    "fetched[\"{name}\"] is the answer of a shadow rule, read by an enforced rule: the trial decides payments after all, and when it is cut off at half the deadline its answer is missing and on_error decides; make \"{name}\" enforced, or let this rule make the call itself"
                ),
            );
        }
    }
}

/// A rule of the file being compiled, as `fetched["name"]` sees it.
struct RuleEntry {
    name: String,
    /// It is a fetch rule.
    fetch: bool,
    /// It has `mode: off`: it never runs.
    off: bool,
    /// It has `mode: shadow`: it never decides.
    shadow: bool,
    /// Its `when`, as written: a field it tests is there when the rule's check runs.
    when: Option<String>,
    /// The fields of `payload` it refuses every payment without, whatever else it checks: an
    /// enforced rule with no `when` and no call whose `require` starts with `"K" in payload`
    /// (`&& …`).
    requires_fields: Vec<String>,
}

/// The fields of `payload` that `require` refuses a payment without, whatever else it says:
/// each `"K" in payload` it starts with, joined by `&&` (the test the payload warning advises).
fn fields_required(require: &str) -> Vec<String> {
    let mut fields = Vec::new();
    // `"a" in payload && x || y` passes on `y` alone.
    if require.contains("||") {
        return fields;
    }
    for part in require.split("&&") {
        let part = part.trim();
        let Some(test) = part.strip_suffix("in payload").map(str::trim_end) else {
            break;
        };
        match test
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .or_else(|| test.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')))
        {
            Some(field) if !field.contains(['"', '\'', '\\']) => fields.push(field.to_owned()),
            _ => break,
        }
    }
    fields
}

/// Below this a deadline is most likely a slip of the unit (`3ms` for `3s`).
const SHORT_DEADLINE: Duration = Duration::from_millis(100);
/// Below this an upstream's timeout is most likely a slip of the unit (`5ms` for `5s`).
const SHORT_TIMEOUT: Duration = Duration::from_millis(10);

/// A reason as the buyer should see it: without the line break a YAML block scalar (`reason: >`
/// or `|`) ends with, which no payment window shows well.
pub(super) fn buyer_text(reason: &str) -> &str {
    reason.trim_end_matches(['\n', '\r'])
}

mod rule;
mod source;
mod upstream;

#[cfg(test)]
mod tests;
