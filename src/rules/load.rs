//! Rules directory → [`Rules`]: read every file, parse strictly, compile every expression and
//! script, resolve every reference and `${VAR}`, and report every error with its location.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use super::model::{RawScriptRefs, RawSettings, RawUpstream};
use super::yaml::{self, Location, Seg};
use super::{
    Expr, HealthSpec, HealthState, LoadError, LoadErrors, Mode, Rule, Rules, Ruleset, Settings,
    Upstream, DEFAULT_UPSTREAM_TIMEOUT, PORTONE_TIMEOUT,
};
use crate::script::native::Native;
use crate::script::ScriptEngine;

/// Reads `${VAR}` values; the process environment in production, a map in tests.
pub type Env<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// What a load needs from outside the rules directory.
pub struct LoadOptions<'a> {
    pub engine: &'a ScriptEngine,
    pub env: Env<'a>,
}

/// Loads and validates a whole rules directory; nothing is returned unless everything is valid.
pub fn load_dir(dir: &Path, opts: &LoadOptions<'_>) -> Result<Rules, LoadErrors> {
    // The version is taken before the files are read: a file saved while this load runs then
    // changes the next reload's version, so that reload is not skipped as unchanged.
    let version = rules_version(dir);
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut rulesets = BTreeMap::new();
    let files = match ruleset_files(dir) {
        Ok(listing) => listing,
        Err(e) => return Err(LoadErrors(vec![e])),
    };
    errors.extend(files.bad_names);
    warnings.extend(files.not_rulesets);
    let files = files.rulesets;
    for (name, path) in files {
        let src = match read_text(&path) {
            Ok(src) => src,
            Err(e) => {
                errors.push(e.into_load_error(path, ""));
                continue;
            }
        };
        let mut file = FileCompiler {
            dir,
            path: &path,
            src: &src,
            opts,
            errors: Vec::new(),
            warnings: &mut warnings,
            broken_upstreams: Vec::new(),
            upstreams_broken: false,
            uses_payload: false,
        };
        let ruleset = file.compile(&name);
        if file.errors.is_empty() {
            if let Some(r) = ruleset {
                rulesets.insert(name, Arc::new(r));
            }
        } else {
            sort_by_position(&mut file.errors, &path);
            errors.append(&mut file.errors);
        }
    }
    if !errors.is_empty() {
        return Err(LoadErrors(errors));
    }
    if !rulesets.contains_key("default") {
        warnings.push(format!(
            "{}: no default.yaml, so POST /confirm answers 404",
            dir.display()
        ));
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
    let slots: Vec<usize> = (0..errors.len())
        .filter(|&i| errors[i].file == file)
        .collect();
    let mut own: Vec<LoadError> = slots.iter().map(|&i| errors[i].clone()).collect();
    own.sort_by_key(|e| e.location.map(|l| (l.line, l.column)));
    for (slot, e) in slots.into_iter().zip(own) {
        errors[slot] = e;
    }
}

/// What the rules directory holds, by name.
struct Listing {
    /// `*.yaml` files directly in the directory, by ruleset name.
    rulesets: Vec<(String, PathBuf)>,
    /// `*.yaml` files whose name is not a ruleset name: errors at `FILE:1:1`.
    bad_names: Vec<LoadError>,
    /// Warnings for files that look like rulesets but are not read (`shop.yml`, `shop.YAML`).
    not_rulesets: Vec<String>,
}

/// The message for a `*.yaml` file whose name is not a ruleset name.
const BAD_RULESET_NAME: &str = "not a ruleset name: the name before \".yaml\" may only hold letters (a-z, A-Z), digits, \"-\" and \"_\" (it is the ruleset's name in /confirm/{ruleset})";

/// Whether `stem` may name a ruleset: ASCII letters, digits, `-` and `_`.
fn is_ruleset_name(stem: &str) -> bool {
    !stem.is_empty()
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Reads the rules directory: `*.yaml` files directly in `dir` are rulesets. Symlinks are
/// followed (Kubernetes mounts).
fn ruleset_files(dir: &Path) -> Result<Listing, LoadError> {
    let entries = fs::read_dir(dir).map_err(|e| LoadError {
        file: dir.to_owned(),
        location: None,
        message: format!("cannot read rules directory: {e}"),
    })?;
    let mut listing = Listing {
        rulesets: Vec::new(),
        bad_names: Vec::new(),
        not_rulesets: Vec::new(),
    };
    let mut not_rulesets = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if file_name.starts_with('.') || !path.is_file() {
            continue;
        }
        let Some(stem) = file_name.strip_suffix(".yaml") else {
            if is_misnamed_ruleset(&path) {
                not_rulesets.push(path);
            }
            continue;
        };
        if !is_ruleset_name(stem) {
            listing.bad_names.push(LoadError {
                file: path,
                location: Some(Location { line: 1, column: 1 }),
                message: BAD_RULESET_NAME.into(),
            });
            continue;
        }
        listing.rulesets.push((stem.to_owned(), path));
    }
    listing.bad_names.sort_by(|a, b| a.file.cmp(&b.file));
    listing.rulesets.sort();
    not_rulesets.sort();
    listing.not_rulesets = not_rulesets
        .into_iter()
        .map(|path| {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let rename = if is_ruleset_name(stem) {
                format!(" (rename it to {stem}.yaml to load it)")
            } else {
                String::new()
            };
            format!(
                "{}: not a ruleset and not read: only files ending in \".yaml\" (lower case) are rulesets{rename}",
                path.display()
            )
        })
        .collect();
    Ok(listing)
}

/// A YAML file whose extension is not exactly `.yaml` (`shop.yml`, `shop.YAML`): someone meant
/// a ruleset, but it is not read. The load warns about such files directly in the rules
/// directory.
fn is_misnamed_ruleset(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        e != "yaml" && (e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
    })
}

/// The rules version: a short hash of the files the load reads, so operators can tell which
/// rules answered, and a reload can skip a directory that did not change.
///
/// It covers every `.yaml` and `.rhai` file under the directory (rulesets, rule tests under
/// `tests/`, scripts, also ones no rule references yet), YAML files named otherwise (`.yml`,
/// `.YAML`: the load warns about them) and every script a ruleset references
/// whatever its name (`script: scripts/check.txt`), found by reading the `script:` keys of the
/// ruleset files. Every other file is left out on purpose rather than hashing "every regular
/// file": a decision log or notes kept in the directory would otherwise change the version (and,
/// through the watcher, reload the rules) on every write. Hidden files, names ending in `~`
/// (editor swap files and backups) and Kubernetes' `..data` internals are skipped; a ConfigMap's
/// visible names link through `..data`, so its content still counts.
pub fn rules_version(dir: &Path) -> std::io::Result<String> {
    let mut files = Vec::new();
    collect_files(dir, Path::new(""), 0, &mut files)?;
    files.extend(referenced_scripts(dir));
    files.sort();
    files.dedup();
    let mut hash = Sha256::new();
    for rel in files {
        let content = match fs::read(dir.join(&rel)) {
            Ok(content) => Some(content),
            // A referenced script that is missing (the load says so): creating it changes the
            // version. Also a file removed between listing and reading.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        hash.update(rel.to_string_lossy().as_bytes());
        hash.update([0]);
        match content {
            Some(content) => {
                hash.update((content.len() as u64).to_le_bytes());
                hash.update(&content);
            }
            None => hash.update(u64::MAX.to_le_bytes()),
        }
    }
    Ok(hex::encode(&hash.finalize()[..6]))
}

/// Every script the ruleset files in `dir` reference (`script:`), relative to `dir` and without
/// `.` components, whatever its extension. Read leniently from files that may not load; paths
/// the loader refuses (absolute, with `..`) are left out.
pub fn referenced_scripts(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut scripts = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.ends_with(".yaml") || name.starts_with('.') || !path.is_file() {
            continue;
        }
        let Ok(src) = fs::read_to_string(&path) else {
            continue;
        };
        let Ok(refs) = yaml::from_str::<RawScriptRefs>(&src) else {
            continue;
        };
        scripts.extend(
            refs.rules
                .iter()
                .filter_map(|r| r.script.as_deref())
                .filter_map(script_rel_path),
        );
    }
    scripts.sort();
    scripts.dedup();
    scripts
}

/// `rel` as a path inside the rules directory without `.` components, or `None` when the loader
/// refuses it (empty, absolute, or with `..`).
fn script_rel_path(rel: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

fn collect_files(
    root: &Path,
    rel: &Path,
    depth: usize,
    out: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    // Symlinked directories are followed; the depth bound stops a link loop.
    if depth > 8 {
        return Ok(());
    }
    for entry in fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name_str) = name.to_str() else {
            continue;
        };
        if name_str.starts_with('.') || name_str.ends_with('~') {
            continue;
        }
        let rel_path = rel.join(&name);
        let meta = fs::metadata(root.join(&rel_path))?;
        if meta.is_dir() {
            collect_files(root, &rel_path, depth + 1, out)?;
        } else if meta.is_file() && is_rule_source(&rel_path) {
            out.push(rel_path);
        }
    }
    Ok(())
}

/// Files the loader may read, known by name: rule files, rule tests and `.rhai` scripts. A
/// script with another name counts through [`referenced_scripts`]. Anything else in the
/// directory (a decision log someone put there, notes) neither changes the version nor reloads.
///
/// YAML files with another extension (`.yml`, `.YAML`) count too: the load warns about them in
/// the rules directory, so adding, renaming or removing one must reload and change the version
/// (the warnings are part of what a version loaded).
pub fn is_rule_source(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "yaml" || e == "rhai") || is_misnamed_ruleset(path)
}

/// Why a rule file or script could not be read as text.
#[derive(Debug)]
pub(crate) enum ReadError {
    Io(std::io::Error),
    /// Not UTF-8 from `location` (the first invalid byte, its column counted in characters
    /// like every other location); `detail` says what was found there.
    Utf8 {
        location: Location,
        detail: String,
    },
}

impl ReadError {
    /// As reported for `file`; `suffix` is appended to the message (which rule a script is for).
    pub(crate) fn into_load_error(self, file: PathBuf, suffix: &str) -> LoadError {
        match self {
            ReadError::Io(e) => LoadError {
                file,
                location: None,
                message: format!("cannot read: {e}{suffix}"),
            },
            ReadError::Utf8 { location, detail } => LoadError {
                file,
                location: Some(location),
                message: format!("not valid UTF-8 ({detail}); save the file as UTF-8{suffix}"),
            },
        }
    }
}

/// Reads a whole file as UTF-8 text; invalid UTF-8 is located at its first bad byte.
pub(crate) fn read_text(path: &Path) -> Result<String, ReadError> {
    let bytes = fs::read(path).map_err(ReadError::Io)?;
    String::from_utf8(bytes).map_err(|e| {
        let err = e.utf8_error();
        let bytes = e.as_bytes();
        let at = err.valid_up_to();
        // Valid by definition of `valid_up_to`.
        let valid = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
        let line_start = valid.rfind('\n').map_or(0, |i| i + 1);
        let location = Location {
            line: valid.matches('\n').count() + 1,
            column: valid[line_start..].chars().count() + 1,
        };
        let detail = match err.error_len() {
            Some(_) => format!("byte 0x{:02X}", bytes[at]),
            None => "the file ends inside a character".to_owned(),
        };
        ReadError::Utf8 { location, detail }
    })
}

/// Parses `500ms`, `1.5s`, `4s`, `1m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let expected = || {
        format!("invalid duration \"{s}\", expected a number and a unit like 500ms, 1.5s, 4s or 1m")
    };
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(expected)?;
    let (num, unit) = s.split_at(split);
    let num: Decimal = num.parse().map_err(|_| expected())?;
    let millis_per_unit = match unit.trim() {
        "ms" => Decimal::ONE,
        "s" => Decimal::from(1000),
        "m" => Decimal::from(60_000),
        "h" => Decimal::from(3_600_000),
        _ => return Err(expected()),
    };
    let micros = (num * millis_per_unit * Decimal::from(1000)).trunc();
    let micros: u64 = micros.try_into().map_err(|_| expected())?;
    if micros == 0 {
        return Err(format!("duration \"{s}\" must be greater than zero"));
    }
    Ok(Duration::from_micros(micros))
}

/// Replaces `${VAR}` from the environment: `Ok((value, substituted_any))`, or every problem
/// of `s` (each unset variable, not only the first).
fn substitute(s: &str, env: Env<'_>) -> Result<(String, bool), Vec<String>> {
    let mut out = String::with_capacity(s.len());
    let mut errors = Vec::new();
    let mut rest = s;
    let mut any = false;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 2..];
        let Some(end) = tail.find('}') else {
            errors.push("unclosed \"${\" (expected ${VARIABLE})".to_owned());
            rest = "";
            break;
        };
        let var = &tail[..end];
        if var.is_empty() || !var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            errors.push(format!("invalid variable name \"{var}\" in ${{...}}"));
        } else if let Some(value) = env(var) {
            out.push_str(&value);
            any = true;
        } else {
            errors.push(format!("environment variable {var} is not set"));
        }
        rest = &tail[end + 1..];
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    out.push_str(rest);
    Ok((out, any))
}

/// Whether Rhai source may read `payload`. Rhai has no way to name a variable at run time
/// (`eval` is disabled), so a plain token search is a safe over-approximation.
fn mentions_payload(src: &str) -> bool {
    src.match_indices("payload").any(|(i, _)| {
        let ident = |c: char| c.is_alphanumeric() || c == '_';
        let before = src[..i].chars().next_back().is_some_and(ident);
        let after = src[i + "payload".len()..].chars().next().is_some_and(ident);
        !before && !after
    })
}

/// Health probes run at most this often: a shorter interval floods the upstream with probes
/// (`interval: 1ms` is a thousand a second) and says nothing more about its health.
const MIN_PROBE_INTERVAL: Duration = Duration::from_millis(50);
const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// The error for a ruleset without rules (an empty file, `rules:` with nothing under it).
const NO_RULES: &str = "no rules: a ruleset needs at least one rule (an empty ruleset would approve every payment; to approve everything on purpose, write a rule with when: 'true' and action: approve)";

/// The warning for a ruleset whose every rule is `mode: shadow` or `mode: off`.
const NOTHING_ENFORCED: &str = "no rule is enforced (every rule has mode: shadow or off), so this ruleset approves every payment";

/// The error for a `{` or `}` in `forward.path` (after `rule "NAME": `): the engine sends that
/// path as written, so a placeholder would reach the merchant as `%7Border_id%7D`.
const FORWARD_PATH_IS_FIXED: &str = "forward.path is a fixed path: placeholders like {order_id} are not filled in there (forward sends the original request unchanged, so the merchant's handler reads the order from the body); remove the braces, or use fetch, whose path is a template";

/// Compiles one rule file, collecting every error it can find.
struct FileCompiler<'a, 'o> {
    dir: &'a Path,
    path: &'a Path,
    src: &'a str,
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
}

impl FileCompiler<'_, '_> {
    fn error(&mut self, path: &[Seg<'_>], message: impl Into<String>) {
        let location = yaml::locate(self.src, path);
        self.error_at(location, message);
    }

    fn error_at(&mut self, location: Location, message: impl Into<String>) {
        self.errors.push(LoadError {
            file: self.path.to_owned(),
            location: Some(location),
            message: message.into(),
        });
    }

    fn compile(&mut self, name: &str) -> Option<Ruleset> {
        // Every shape error of the file (unknown keys, wrong types, duplicate keys), each part
        // read on its own; the parts that read are compiled below, so their errors come too.
        let file = yaml::parse_rule_file(self.src);
        for e in file.errors {
            self.error_at(
                e.location.unwrap_or(Location { line: 1, column: 1 }),
                e.message,
            );
        }
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
            let at = yaml::locate_key(self.src, &[Seg::Key("rules")])
                .unwrap_or(Location { line: 1, column: 1 });
            self.error_at(at, NO_RULES);
        }
        let mut rules: Vec<Rule> = Vec::new();
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, raw_rule) in &file.rules {
            let i = *i;
            let at = [Seg::Key("rules"), Seg::Index(i), Seg::Key("name")];
            if raw_rule.name.trim().is_empty() {
                self.error(&at, "rule name must not be empty");
            } else if let Some(&first) = seen.get(raw_rule.name.as_str()) {
                let first_at = yaml::locate(
                    self.src,
                    &[Seg::Key("rules"), Seg::Index(first), Seg::Key("name")],
                );
                self.error(
                    &at,
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
        if !rules.is_empty() && rules.iter().all(|r| r.mode != Mode::Enforce) {
            self.warnings
                .push(format!("{}: {NOTHING_ENFORCED}", self.path.display()));
        }
        Some(Ruleset {
            name: name.to_owned(),
            file: self.path.to_owned(),
            settings,
            upstreams,
            uses_payload: std::mem::take(&mut self.uses_payload),
            uses_rhai: rules.iter().any(Rule::uses_rhai),
            rules,
            metrics: std::sync::OnceLock::new(),
        })
    }

    fn duration(&mut self, path: &[Seg<'_>], s: &str) -> Option<Duration> {
        parse_duration(s).map_err(|e| self.error(path, e)).ok()
    }

    fn settings(&mut self, raw: &RawSettings) -> Settings {
        let mut s = Settings::default();
        if let Some(d) = &raw.deadline {
            if let Some(d) = self.duration(&[Seg::Key("settings"), Seg::Key("deadline")], d) {
                if d > PORTONE_TIMEOUT {
                    self.warnings.push(format!(
                        "{}: settings.deadline {d:?} is over 5s: PortOne may stop waiting first and count the payment as refused",
                        self.path.display()
                    ));
                }
                s.deadline = d;
            }
        }
        if let Some(o) = raw.on_error {
            s.on_error = o;
        }
        if let Some(r) = &raw.error_reason {
            if r.trim().is_empty() {
                self.error(
                    &[Seg::Key("settings"), Seg::Key("error_reason")],
                    "error_reason must not be empty",
                );
            }
            s.error_reason = r.clone();
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

    fn upstream(&mut self, ruleset: &str, name: &str, raw: &RawUpstream) -> Option<Upstream> {
        let base = [Seg::Key("upstreams"), Seg::Key(name)];
        let at = |k: &'static str| [base[0], base[1], Seg::Key(k)];
        // Every problem of the upstream is reported (each unset variable of the url and of
        // every header, say), so an operator fixes them in one go.
        let url = match substitute(&raw.url, self.opts.env) {
            // The value may have come from a secret variable; say what is wrong without echoing it.
            Ok((url, _)) => match reqwest::Url::parse(&url) {
                // The url is a base that rule paths are appended to: a query string or fragment
                // would end up in front of them (`/base?q=1/api/stock`), the path lost.
                Ok(u)
                    if matches!(u.scheme(), "http" | "https")
                        && u.host().is_some()
                        && (u.query().is_some() || u.fragment().is_some()) =>
                {
                    self.error(
                        &at("url"),
                        format!("upstream \"{name}\": url must not have a query string (\"?\") or fragment (\"#\"): it is a base (scheme, host, port and an optional path prefix) that rule paths are appended to; put query parameters in a fetch's query"),
                    );
                    None
                }
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(url),
                _ => {
                    self.error(
                        &at("url"),
                        format!("upstream \"{name}\": url is not an http:// or https:// URL"),
                    );
                    None
                }
            },
            Err(errors) => {
                for e in errors {
                    self.error(&at("url"), format!("upstream \"{name}\": url: {e}"));
                }
                None
            }
        };
        let timeout = match &raw.timeout {
            Some(t) => self.duration(&at("timeout"), t),
            None => Some(DEFAULT_UPSTREAM_TIMEOUT),
        };
        let mut headers = http::HeaderMap::new();
        for (k, v) in &raw.headers {
            let hpath = [base[0], base[1], Seg::Key("headers"), Seg::Key(k.as_str())];
            let Ok(hname) = http::HeaderName::from_bytes(k.as_bytes()) else {
                self.error(
                    &hpath,
                    format!("upstream \"{name}\": invalid header name \"{k}\""),
                );
                continue;
            };
            match substitute(v, self.opts.env) {
                Ok((value, secret)) => match http::HeaderValue::from_str(&value) {
                    Ok(mut hv) => {
                        hv.set_sensitive(secret);
                        headers.insert(hname, hv);
                    }
                    Err(_) => self.error(&hpath, format!("upstream \"{name}\": header \"{k}\" has characters not allowed in a header value")),
                },
                Err(errors) => {
                    for e in errors {
                        self.error(&hpath, format!("upstream \"{name}\": header \"{k}\": {e}"));
                    }
                }
            }
        }
        let health = match &raw.health {
            None => Some(None),
            Some(h) => {
                let hp = |k: &'static str| [base[0], base[1], Seg::Key("health"), Seg::Key(k)];
                if !h.path.starts_with('/') {
                    self.error(
                        &hp("path"),
                        format!("upstream \"{name}\": health path must start with \"/\""),
                    );
                }
                let interval = match &h.interval {
                    Some(i) => self.duration(&hp("interval"), i).and_then(|d| {
                        if d < MIN_PROBE_INTERVAL {
                            self.error(&hp("interval"), format!("upstream \"{name}\": health interval {d:?} is too short, expected at least {MIN_PROBE_INTERVAL:?} (every interval sends a probe to the upstream)"));
                            return None;
                        }
                        Some(d)
                    }),
                    None => Some(DEFAULT_PROBE_INTERVAL),
                };
                let unhealthy_after = h.unhealthy_after.unwrap_or(2);
                let healthy_after = h.healthy_after.unwrap_or(1);
                if unhealthy_after == 0 || healthy_after == 0 {
                    self.error(&[base[0], base[1], Seg::Key("health")], format!("upstream \"{name}\": unhealthy_after and healthy_after must be at least 1"));
                }
                // `None` (a bad interval, already reported) fails the upstream below.
                interval.map(|interval| {
                    Some(HealthSpec {
                        path: h.path.clone(),
                        interval,
                        unhealthy_after,
                        healthy_after,
                    })
                })
            }
        };
        // Only now, so every error of the upstream above is reported.
        let (Some(url), Some(timeout), Some(health)) = (url, timeout, health) else {
            return None;
        };
        let client = match reqwest::Client::builder()
            // A confirm check must see the merchant's own answer, not wherever it redirects.
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                self.error(
                    &base,
                    format!("upstream \"{name}\": cannot build HTTP client: {e}"),
                );
                return None;
            }
        };
        Some(Upstream {
            name: name.to_owned(),
            ruleset: ruleset.into(),
            url: url.trim_end_matches('/').to_owned(),
            timeout,
            headers,
            health,
            client,
            state: Arc::new(HealthState::default()),
        })
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
        match self.opts.engine.compile_expression(src, extra) {
            Ok(ast) => Some(Expr {
                src: src.to_owned(),
                ast,
                native: Native::recognise(src),
            }),
            Err(e) => {
                let scalar = yaml::locate(self.src, path);
                let at = yaml::position_in_scalar(self.src, scalar, src, e.line, e.column);
                self.error_at(
                    at,
                    format!(
                        "rule \"{rule}\": {field}: invalid expression: {}",
                        e.message
                    ),
                );
                None
            }
        }
    }
}

mod rule;

#[cfg(test)]
mod tests;
