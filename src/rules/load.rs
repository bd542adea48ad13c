//! Rules directory → [`Rules`]: read every file, parse strictly, compile every expression and
//! script, resolve every reference and `${VAR}`, and report every error with its location.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use super::model::{RawFile, RawSettings, RawUpstream};
use super::yaml::{self, Location, Seg};
use super::{
    Expr, HealthSpec, HealthState, LoadError, LoadErrors, Rule, Rules, Ruleset, Settings, Upstream,
    DEFAULT_UPSTREAM_TIMEOUT, PORTONE_TIMEOUT,
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
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut rulesets = BTreeMap::new();
    let files = match ruleset_files(dir) {
        Ok(files) => files,
        Err(e) => return Err(LoadErrors(e)),
    };
    for (name, path) in files {
        let src = match fs::read_to_string(&path) {
            Ok(src) => src,
            Err(e) => {
                errors.push(LoadError {
                    file: path,
                    location: None,
                    message: format!("cannot read: {e}"),
                });
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
            uses_payload: false,
        };
        let ruleset = file.compile(&name);
        if file.errors.is_empty() {
            if let Some(r) = ruleset {
                rulesets.insert(name, Arc::new(r));
            }
        } else {
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
    let version = rules_version(dir).map_err(|e| {
        LoadErrors(vec![LoadError {
            file: dir.to_owned(),
            location: None,
            message: format!("cannot read: {e}"),
        }])
    })?;
    Ok(Rules::new(version, rulesets, warnings))
}

/// `*.yaml` files directly in `dir`, by ruleset name. Symlinks are followed (Kubernetes mounts).
fn ruleset_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, Vec<LoadError>> {
    let entries = fs::read_dir(dir).map_err(|e| {
        vec![LoadError {
            file: dir.to_owned(),
            location: None,
            message: format!("cannot read rules directory: {e}"),
        }]
    })?;
    let mut files = Vec::new();
    let mut bad_names = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = file_name.strip_suffix(".yaml") else {
            continue;
        };
        if file_name.starts_with('.') || !path.is_file() {
            continue;
        }
        if stem.is_empty()
            || !stem
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            bad_names.push(LoadError {
                file: path,
                location: None,
                message: "ruleset names may only hold letters, digits, \"-\" and \"_\"".into(),
            });
            continue;
        }
        files.push((stem.to_owned(), path));
    }
    if !bad_names.is_empty() {
        bad_names.sort_by(|a, b| a.file.cmp(&b.file));
        return Err(bad_names);
    }
    files.sort();
    Ok(files)
}

/// A short hash of every rule file, script and rule test under the rules directory, so operators
/// can tell which rules answered. Hidden files and Kubernetes' `..data` internals are skipped.
pub fn rules_version(dir: &Path) -> std::io::Result<String> {
    let mut files = Vec::new();
    collect_files(dir, Path::new(""), 0, &mut files)?;
    files.sort();
    let mut hash = Sha256::new();
    for rel in files {
        let content = fs::read(dir.join(&rel))?;
        hash.update(rel.to_string_lossy().as_bytes());
        hash.update([0]);
        hash.update((content.len() as u64).to_le_bytes());
        hash.update(&content);
    }
    Ok(hex::encode(&hash.finalize()[..6]))
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

/// Files the loader reads: rule files, rule tests and scripts. Anything else in the directory
/// (a decision log someone put there, editor backups) neither changes the version nor reloads.
pub fn is_rule_source(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "yaml" || e == "rhai")
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

/// Replaces `${VAR}` from the environment; `Ok((value, substituted_any))`.
fn substitute(s: &str, env: Env<'_>) -> Result<(String, bool), String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut any = false;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 2..];
        let end = tail
            .find('}')
            .ok_or_else(|| "unclosed \"${\" (expected ${VARIABLE})".to_owned())?;
        let var = &tail[..end];
        if var.is_empty() || !var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("invalid variable name \"{var}\" in ${{...}}"));
        }
        let value = env(var).ok_or_else(|| format!("environment variable {var} is not set"))?;
        out.push_str(&value);
        any = true;
        rest = &tail[end + 1..];
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
        // An empty file (or one of comments only) is an empty ruleset, not an error.
        let raw: RawFile = if self
            .src
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            RawFile::default()
        } else {
            match yaml::from_str(self.src) {
                Ok(raw) => raw,
                Err(e) => {
                    self.error_at(e.location.unwrap_or_default(), e.message);
                    return None;
                }
            }
        };
        let settings = self.settings(&raw.settings);
        let mut upstreams = BTreeMap::new();
        for (key, up) in &raw.upstreams {
            match self.upstream(key, up) {
                Some(u) => {
                    upstreams.insert(key.clone(), Arc::new(u));
                }
                None => self.broken_upstreams.push(key.clone()),
            }
        }
        let mut rules: Vec<Rule> = Vec::new();
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, raw_rule) in raw.rules.iter().enumerate() {
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

    fn upstream(&mut self, name: &str, raw: &RawUpstream) -> Option<Upstream> {
        let base = [Seg::Key("upstreams"), Seg::Key(name)];
        let at = |k: &'static str| [base[0], base[1], Seg::Key(k)];
        let url = match substitute(&raw.url, self.opts.env) {
            Ok((url, _)) => url,
            Err(e) => {
                self.error(&at("url"), format!("upstream \"{name}\": url: {e}"));
                return None;
            }
        };
        // The value may have come from a secret variable; say what is wrong without echoing it.
        match reqwest::Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                self.error(
                    &at("url"),
                    format!("upstream \"{name}\": url is not an http:// or https:// URL"),
                );
                return None;
            }
        }
        let timeout = match &raw.timeout {
            Some(t) => self.duration(&at("timeout"), t)?,
            None => DEFAULT_UPSTREAM_TIMEOUT,
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
                Err(e) => self.error(&hpath, format!("upstream \"{name}\": header \"{k}\": {e}")),
            }
        }
        let health = match &raw.health {
            None => None,
            Some(h) => {
                let hp = |k: &'static str| [base[0], base[1], Seg::Key("health"), Seg::Key(k)];
                if !h.path.starts_with('/') {
                    self.error(
                        &hp("path"),
                        format!("upstream \"{name}\": health path must start with \"/\""),
                    );
                }
                let interval = match &h.interval {
                    Some(i) => self.duration(&hp("interval"), i)?,
                    None => Duration::from_secs(5),
                };
                let unhealthy_after = h.unhealthy_after.unwrap_or(2);
                let healthy_after = h.healthy_after.unwrap_or(1);
                if unhealthy_after == 0 || healthy_after == 0 {
                    self.error(&[base[0], base[1], Seg::Key("health")], format!("upstream \"{name}\": unhealthy_after and healthy_after must be at least 1"));
                }
                Some(HealthSpec {
                    path: h.path.clone(),
                    interval,
                    unhealthy_after,
                    healthy_after,
                })
            }
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
                let at = yaml::position_in_scalar(self.src, scalar, e.line, e.column);
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
