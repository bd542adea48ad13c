//! Rules directory → [`Rules`]: read every file, parse strictly, compile every expression and
//! script, resolve every reference and `${VAR}`, and report every error with its location.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use super::model::{Action, RawFetch, RawFile, RawRule, RawSettings, RawUpstream};
use super::template::{Scope as TemplateScope, Template};
use super::yaml::{self, Location, Seg};
use super::{
    BodyTemplate, Check, Expr, Fetch, Forward, HealthSpec, HealthState, HttpMethod, LoadError,
    LoadErrors, Rule, Rules, Ruleset, Settings, Upstream, DEFAULT_REASON, DEFAULT_UPSTREAM_TIMEOUT,
    PORTONE_TIMEOUT,
};
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

/// A short hash of every file under the rules directory (rules, scripts, tests), so operators
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
        } else if meta.is_file() {
            out.push(rel_path);
        }
    }
    Ok(())
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
            rules,
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
        match self.opts.engine.compile_expression(src, extra) {
            Ok(ast) => Some(Expr {
                src: src.to_owned(),
                ast,
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

    fn rule(
        &mut self,
        i: usize,
        raw: &RawRule,
        upstreams: &BTreeMap<String, Arc<Upstream>>,
    ) -> Option<Rule> {
        let name = raw.name.as_str();
        let path = |k: &'static str| [Seg::Key("rules"), Seg::Index(i), Seg::Key(k)];
        let rule_path = [Seg::Key("rules"), Seg::Index(i)];
        let errors_before = self.errors.len();

        let when = raw
            .when
            .as_deref()
            .and_then(|w| self.expression(&path("when"), w, name, "when", &[]));

        let mut given: Vec<&'static str> = Vec::new();
        for (present, key) in [
            (raw.amount.is_some(), "amount"),
            (raw.window.is_some(), "window"),
            (raw.require.is_some() && raw.fetch.is_none(), "require"),
            (raw.healthy.is_some(), "healthy"),
            (raw.fetch.is_some(), "fetch"),
            (raw.forward.is_some(), "forward"),
            (raw.script.is_some(), "script"),
        ] {
            if present {
                given.push(key);
            }
        }
        const CHECKS: &str = "amount, window, require, healthy, fetch, forward, script";
        let check = match (raw.action, given.as_slice()) {
            (Some(Action::Approve), []) => {
                if raw.when.is_none() {
                    self.error(&path("action"), format!("rule \"{name}\": action: approve needs a when guard (otherwise it approves everything)"));
                }
                Some(Check::Approve)
            }
            (Some(Action::Approve), [first, ..]) => {
                self.error(
                    &path(first),
                    format!(
                        "rule \"{name}\": action: approve cannot be combined with a check ({})",
                        given.join(", ")
                    ),
                );
                None
            }
            (None, []) => {
                self.error(&rule_path, format!("rule \"{name}\": no check, expected one of {CHECKS} (or action: approve with when)"));
                None
            }
            (None, [one]) => self.check(i, raw, one, upstreams),
            (None, [_, second, ..]) => {
                self.error(
                    &path(second),
                    format!(
                        "rule \"{name}\": a rule has exactly one check, found {}",
                        given.join(" and ")
                    ),
                );
                None
            }
        };

        let reason_scope = if raw.fetch.is_some() {
            TemplateScope::WithResponse
        } else {
            TemplateScope::Request
        };
        let reason = match &raw.reason {
            Some(r) => match Template::parse(r, reason_scope) {
                Ok(t) => t,
                Err(e) => {
                    self.error(&path("reason"), format!("rule \"{name}\": reason: {e}"));
                    Template::literal(r)
                }
            },
            None => {
                let needs_reason =
                    raw.action.is_none() && raw.forward.is_none() && raw.script.is_none();
                if needs_reason && !given.is_empty() {
                    self.error(&rule_path, format!("rule \"{name}\": missing reason (the text the buyer sees when this rule refuses)"));
                }
                Template::literal(DEFAULT_REASON)
            }
        };

        if self.errors.len() > errors_before {
            return None;
        }
        Some(Rule {
            name: name.to_owned(),
            when,
            mode: raw.mode.unwrap_or_default(),
            on_error: raw.on_error,
            reason,
            check: check?,
        })
    }

    fn check(
        &mut self,
        i: usize,
        raw: &RawRule,
        kind: &str,
        upstreams: &BTreeMap<String, Arc<Upstream>>,
    ) -> Option<Check> {
        let name = raw.name.as_str();
        let path = |k: &'static str| [Seg::Key("rules"), Seg::Index(i), Seg::Key(k)];
        let sub = |k: &'static str, f: &'static str| {
            [Seg::Key("rules"), Seg::Index(i), Seg::Key(k), Seg::Key(f)]
        };
        match kind {
            "amount" => {
                let a = raw.amount.as_ref()?;
                let mut bound = |f: &'static str,
                                 n: &Option<serde_json::Number>|
                 -> Option<Option<Decimal>> {
                    let Some(n) = n else { return Some(None) };
                    match n.to_string().parse::<crate::payload::Amount>() {
                        Ok(a) => Some(Some(a.value())),
                        Err(_) => {
                            self.error(&sub("amount", f), format!("rule \"{name}\": amount.{f}: expected a number of 0 or more, found {n}"));
                            None
                        }
                    }
                };
                let min = bound("min", &a.min)?;
                let max = bound("max", &a.max)?;
                if min.is_none() && max.is_none() {
                    self.error(
                        &path("amount"),
                        format!("rule \"{name}\": amount needs min, max or both"),
                    );
                    return None;
                }
                if let (Some(lo), Some(hi)) = (min, max) {
                    if lo > hi {
                        self.error(
                            &path("amount"),
                            format!("rule \"{name}\": amount.min {lo} is above amount.max {hi}"),
                        );
                        return None;
                    }
                }
                Some(Check::Amount { min, max })
            }
            "window" => {
                let w = raw.window.as_ref()?;
                let mut ts = |f: &'static str,
                              v: &Option<String>|
                 -> Option<Option<DateTime<chrono::FixedOffset>>> {
                    let Some(v) = v else { return Some(None) };
                    match DateTime::parse_from_rfc3339(v) {
                        Ok(t) => Some(Some(t)),
                        Err(_) => {
                            self.error(&sub("window", f), format!("rule \"{name}\": window.{f}: invalid timestamp \"{v}\", expected RFC 3339 like 2026-12-01T10:00:00+09:00"));
                            None
                        }
                    }
                };
                let from = ts("from", &w.from)?;
                let until = ts("until", &w.until)?;
                if from.is_none() && until.is_none() {
                    self.error(
                        &path("window"),
                        format!("rule \"{name}\": window needs from, until or both"),
                    );
                    return None;
                }
                if let (Some(f), Some(u)) = (from, until) {
                    if f >= u {
                        self.error(
                            &path("window"),
                            format!("rule \"{name}\": window.from must be before window.until"),
                        );
                        return None;
                    }
                }
                Some(Check::Window { from, until })
            }
            "require" => {
                let src = raw.require.as_deref()?;
                self.expression(&path("require"), src, name, "require", &[])
                    .map(Check::Require)
            }
            "healthy" => {
                let up_name = raw.healthy.as_deref()?;
                let up = self.upstream_ref(&path("healthy"), name, up_name, upstreams)?;
                if up.health.is_none() {
                    self.error(&path("healthy"), format!("rule \"{name}\": upstream \"{up_name}\" has no health probe; add health: {{ path: /health }} to it"));
                    return None;
                }
                Some(Check::Healthy(up))
            }
            "fetch" => self
                .fetch(i, raw, raw.fetch.as_ref()?, upstreams)
                .map(Check::Fetch),
            "forward" => {
                let f = raw.forward.as_ref()?;
                let up =
                    self.upstream_ref(&sub("forward", "upstream"), name, &f.upstream, upstreams)?;
                if !f.path.starts_with('/') {
                    self.error(
                        &sub("forward", "path"),
                        format!("rule \"{name}\": forward.path must start with \"/\""),
                    );
                    return None;
                }
                Some(Check::Forward(Forward {
                    upstream: up,
                    path: f.path.clone(),
                }))
            }
            "script" => self.script(&path("script"), name, raw.script.as_deref()?),
            _ => None,
        }
    }

    fn upstream_ref(
        &mut self,
        path: &[Seg<'_>],
        rule: &str,
        up: &str,
        upstreams: &BTreeMap<String, Arc<Upstream>>,
    ) -> Option<Arc<Upstream>> {
        match upstreams.get(up) {
            Some(u) => Some(u.clone()),
            None if self.broken_upstreams.iter().any(|b| b == up) => None,
            None => {
                let known: Vec<&str> = upstreams.keys().map(String::as_str).collect();
                let expected = if known.is_empty() {
                    "no upstreams are defined in this file".to_owned()
                } else {
                    format!("expected one of {}", known.join(", "))
                };
                self.error(
                    path,
                    format!("rule \"{rule}\": unknown upstream \"{up}\", {expected}"),
                );
                None
            }
        }
    }

    fn fetch(
        &mut self,
        i: usize,
        raw: &RawRule,
        f: &RawFetch,
        upstreams: &BTreeMap<String, Arc<Upstream>>,
    ) -> Option<Fetch> {
        let name = raw.name.as_str();
        let sub = |k: &'static str| {
            [
                Seg::Key("rules"),
                Seg::Index(i),
                Seg::Key("fetch"),
                Seg::Key(k),
            ]
        };
        let upstream = self.upstream_ref(&sub("upstream"), name, &f.upstream, upstreams);
        let method = f.method.unwrap_or(HttpMethod::GET);
        let mut template =
            |at: &[Seg<'_>], field: &str, s: &str| match Template::parse(s, TemplateScope::Request)
            {
                Ok(t) => Some(t),
                Err(e) => {
                    self.error(at, format!("rule \"{name}\": fetch.{field}: {e}"));
                    None
                }
            };
        let path = template(&sub("path"), "path", &f.path);
        let mut query = Vec::new();
        for (k, v) in &f.query {
            let at = [
                Seg::Key("rules"),
                Seg::Index(i),
                Seg::Key("fetch"),
                Seg::Key("query"),
                Seg::Key(k.as_str()),
            ];
            if let Some(t) = template(&at, "query", v) {
                query.push((k.clone(), t));
            }
        }
        let mut headers = Vec::new();
        let mut bad_headers = Vec::new();
        for (k, v) in &f.headers {
            let at = [
                Seg::Key("rules"),
                Seg::Index(i),
                Seg::Key("fetch"),
                Seg::Key("headers"),
                Seg::Key(k.as_str()),
            ];
            let t = template(&at, "headers", v);
            match http::HeaderName::from_bytes(k.as_bytes()) {
                Ok(h) => headers.extend(t.map(|t| (h, t))),
                Err(_) => bad_headers.push((at, k)),
            }
        }
        for (at, k) in bad_headers {
            self.error(
                &at,
                format!("rule \"{name}\": fetch.headers: invalid header name \"{k}\""),
            );
        }
        let body = match (&f.body, method) {
            (None, _) => None,
            (Some(_), HttpMethod::GET) => {
                self.error(
                    &sub("body"),
                    format!("rule \"{name}\": a GET fetch has no body; use method: POST or PUT"),
                );
                None
            }
            (Some(b), _) => match body_template(b) {
                Ok(t) => Some(t),
                Err(e) => {
                    self.error(&sub("body"), format!("rule \"{name}\": fetch.body: {e}"));
                    None
                }
            },
        };
        if !f.path.starts_with('/') {
            self.error(
                &sub("path"),
                format!("rule \"{name}\": fetch.path must start with \"/\""),
            );
        }
        let require = match raw.require.as_deref() {
            Some(src) => Some(self.expression(
                &[Seg::Key("rules"), Seg::Index(i), Seg::Key("require")],
                src,
                name,
                "require",
                &["response"],
            )?),
            None => None,
        };
        Some(Fetch {
            upstream: upstream?,
            method,
            path: path?,
            query,
            headers,
            body,
            require,
        })
    }

    fn script(&mut self, at: &[Seg<'_>], rule: &str, rel: &str) -> Option<Check> {
        let rel_path = Path::new(rel);
        let escapes = rel_path.is_absolute()
            || rel_path
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
        if escapes || rel.is_empty() {
            self.error(at, format!("rule \"{rule}\": script path \"{rel}\" must be relative to the rules directory, without \"..\""));
            return None;
        }
        let file = self.dir.join(rel_path);
        let src = match fs::read_to_string(&file) {
            Ok(s) => s,
            Err(e) => {
                self.error(
                    at,
                    format!("rule \"{rule}\": cannot read script \"{rel}\": {e}"),
                );
                return None;
            }
        };
        match self.opts.engine.compile_script(&src) {
            Ok(ast) => Some(Check::Script {
                path: rel.to_owned(),
                ast,
            }),
            Err(e) => {
                // Errors inside a script are reported against the script, where the fix is.
                self.errors.push(LoadError {
                    file,
                    location: Some(Location {
                        line: e.line,
                        column: e.column,
                    }),
                    message: format!("{} (script of rule \"{rule}\")", e.message),
                });
                None
            }
        }
    }
}

fn body_template(v: &serde_json::Value) -> Result<BodyTemplate, String> {
    Ok(match v {
        serde_json::Value::String(s) => {
            BodyTemplate::Text(Template::parse(s, TemplateScope::Request)?)
        }
        serde_json::Value::Array(items) => {
            BodyTemplate::Array(items.iter().map(body_template).collect::<Result<_, _>>()?)
        }
        serde_json::Value::Object(map) => BodyTemplate::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), body_template(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => BodyTemplate::Value(other.clone()),
    })
}

#[cfg(test)]
mod tests;
