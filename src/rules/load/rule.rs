//! Compiling one rule: its guard, its one check, its reason; every error located in the file.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use chrono::DateTime;
use rust_decimal::Decimal;

use super::super::model::{Action, RawFetch, RawRule};
use super::super::template::{Scope as TemplateScope, Template};
use super::super::yaml::{self, Location, Seg, MAX_LOCATED};
use super::super::{
    BodyTemplate, Check, Fetch, Forward, HttpMethod, LoadError, Rule, Upstream, DEFAULT_REASON,
    SEOUL,
};
use super::{FileCompiler, FORWARD_PATH_IS_FIXED};

impl FileCompiler<'_, '_> {
    pub(super) fn rule(
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
        const CHECKS: [&str; 7] = [
            "amount", "window", "require", "healthy", "fetch", "forward", "script",
        ];
        let check = match (raw.action, given.as_slice()) {
            (Some(Action::Approve), []) => {
                if raw.when.is_none() {
                    self.error(&path("action"), format!("rule \"{name}\": action: approve needs a when guard (otherwise it approves everything)"));
                }
                if raw.reason.is_some() {
                    self.warn(&path("reason"), format_args!("rule \"{name}\": reason is never shown: an action: approve rule does not refuse"));
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
                // A check key left without a value (`require:`) is reported as such already.
                let cleared = CHECKS
                    .into_iter()
                    .any(|key| yaml::locate_key(&self.src, &path(key)).is_some());
                if !cleared {
                    self.error(&rule_path, format!("rule \"{name}\": no check, expected one of {} (or action: approve with when)", CHECKS.join(", ")));
                }
                None
            }
            (None, [one]) => self.check(i, raw, one, upstreams),
            (None, [_, _, ..]) => {
                // Said in the order written, at the second: the one likely added by mistake.
                let mut written: Vec<(Option<yaml::Location>, &str)> = given
                    .iter()
                    .map(|&key| (yaml::locate_key(&self.src, &path(key)), key))
                    .collect();
                written.sort_by_key(|&(at, _)| (at.is_none(), at));
                let keys: Vec<&str> = written.iter().map(|&(_, key)| key).collect();
                self.error(
                    &path(keys[1]),
                    format!(
                        "rule \"{name}\": a rule has exactly one check, found {}",
                        keys.join(" and ")
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
            // What the buyer would see: an empty refusal says nothing (as for error_reason).
            Some(r) if crate::text::shows_nothing(r) => {
                self.error(
                    &path("reason"),
                    format!("rule \"{name}\": reason must not be empty (it is the text the buyer sees when this rule refuses; spaces, controls and invisible characters show nothing)"),
                );
                Template::literal(r)
            }
            Some(r) => match Template::parse_at(super::buyer_text(r), reason_scope) {
                Ok(mut t) => {
                    // `{min}`, `{max}`: the bounds written in, so that a limit changed is the
                    // limit said; before the reason is judged (`"{max:,}"` is never blank).
                    if let Some(bound) = t.bound() {
                        let filled = match &check {
                            Some(Check::Amount { min, max }) => t.fill_bounds(
                                min.map(|d| d.to_string()).as_deref(),
                                max.map(|d| d.to_string()).as_deref(),
                            ),
                            Some(Check::Window { from, until }) => t.fill_window(*from, *until),
                            Some(_) => Err(Template::not_this_rules(bound)),
                            None => Ok(()),
                        };
                        if let Err(e) = filled {
                            self.error(&path("reason"), format!("rule \"{name}\": reason: {e}"));
                        }
                    }
                    self.warn_about_reason(
                        &path("reason"),
                        r,
                        &t,
                        &format!("rule \"{name}\": reason"),
                    );
                    if let Some(require) = raw.require.as_deref().filter(|_| raw.fetch.is_some()) {
                        self.warn_about_misspelt_fields(&path("reason"), name, &t, require);
                    }
                    t
                }
                Err(errors) => {
                    self.errors_in_template(
                        &path("reason"),
                        super::buyer_text(r),
                        errors,
                        &format!("rule \"{name}\": reason"),
                    );
                    Template::literal(r)
                }
            },
            None => {
                // A rule that is off refuses no one until it is turned on, and is warned about then.
                let needs_reason = raw.action.is_none()
                    && raw.forward.is_none()
                    && raw.script.is_none()
                    && raw.mode != Some(crate::rules::Mode::Off);
                // SPEC §4 does not require a reason, so the rule loads; but the buyer it refuses
                // is told nothing of why, which the operator should know before going live.
                if needs_reason && !given.is_empty() {
                    self.warn(&rule_path, format!("rule \"{name}\": no reason: a buyer this rule refuses reads \"{DEFAULT_REASON}\"; write one that says why (reason: \"…\")"));
                }
                Template::literal(DEFAULT_REASON)
            }
        };

        if self.errors.len() > errors_before {
            return None;
        }
        let mode = raw.mode.unwrap_or_default();
        // A trial is read as a dry run; a call that may change something at the merchant is
        // made all the same.
        let sends = match &check {
            Some(Check::Forward(_)) => Some(("forward", "forward")),
            Some(Check::Fetch(f)) if f.method == HttpMethod::POST => Some(("fetch", "POST fetch")),
            Some(Check::Fetch(f)) if f.method == HttpMethod::PUT => Some(("fetch", "PUT fetch")),
            _ => None,
        };
        if let (super::super::Mode::Shadow, Some((key, what))) = (mode, sends) {
            self.warn(&path(key), format_args!("rule \"{name}\": a shadow {what} is still sent to the merchant, which may act on it (reserve stock, confirm the order); only its answer is ignored; to try it without side effects, use a rule test with canned answers (confirm-proxy test) or eval --dry-run"));
        }
        if mode != super::super::Mode::Off {
            self.warn_if_it_never_acts(i, raw, check.as_ref());
        }
        Some(Rule {
            name: name.into(),
            when,
            mode,
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
                    // Exactly as written, not as the `f64` serde_yaml made of a fraction.
                    let text = match &self.number_texts {
                        Some(texts) => texts.get(&[Seg::Index(i), Seg::Key("amount"), Seg::Key(f)]),
                        None => yaml::number_as_written(&self.src, &sub("amount", f), n),
                    }
                    .map_or_else(|| n.to_string(), str::to_owned);
                    match text.parse::<crate::payload::Amount>() {
                        Ok(a) => Some(Some(a.value())),
                        Err(e) => {
                            let why = match e {
                                crate::payload::AmountError::TooLarge => "more digits than an amount can have (at most 28 after the point, and below 79,228,162,514,264,337,593,543,950,335)",
                                _ => "expected a number of 0 or more",
                            };
                            self.error(
                                &sub("amount", f),
                                format!("rule \"{name}\": amount.{f}: {why}, found {text}"),
                            );
                            None
                        }
                    }
                };
                let min = bound("min", &a.min)?;
                let max = bound("max", &a.max)?;
                // `min: ~` is reported as a key without a value, which says it better.
                let written = |k| {
                    yaml::locate_key(
                        &self.src,
                        &[
                            Seg::Key("rules"),
                            Seg::Index(i),
                            Seg::Key("amount"),
                            Seg::Key(k),
                        ],
                    )
                    .is_some()
                };
                if min.is_none() && max.is_none() && !written("min") && !written("max") {
                    self.error(
                        &path("amount"),
                        format!("rule \"{name}\": amount needs min, max or both"),
                    );
                    return None;
                }
                if let (Some(lo), Some(hi)) = (min, max) {
                    if lo > hi {
                        self.error(
                            &sub("amount", "min"),
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
                    match crate::rules::parse_time(v) {
                        Ok(t) => Some(Some(t)),
                        Err(why) => {
                            // `until` is exclusive: the start of the date written would end the
                            // window a day before the one meant.
                            let next_day = chrono::NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d")
                                .ok()
                                .filter(|_| f == "until")
                                .and_then(|d| d.succ_opt());
                            let why = match next_day {
                                Some(next) => Some(format!("a date alone: add the time and the offset; until is exclusive, so to include all of {} write the next day's start ({next}T00:00:00+09:00)", v.trim())),
                                None => why,
                            };
                            let slip = why.map(|h| format!("; {h}")).unwrap_or_default();
                            self.error(&sub("window", f), format!("rule \"{name}\": window.{f}: invalid timestamp \"{v}\", expected RFC 3339 like 2026-12-01T10:00:00+09:00{slip}"));
                            None
                        }
                    }
                };
                // Both read before either fails, so that both errors are reported.
                let (from, until) = (ts("from", &w.from), ts("until", &w.until));
                let (from, until) = (from?, until?);
                if from.is_none() && until.is_none() {
                    self.error(
                        &path("window"),
                        format!("rule \"{name}\": window needs from, until or both"),
                    );
                    return None;
                }
                if let (Some(f), Some(u)) = (from, until) {
                    if f >= u {
                        // With two offsets (`Z` beside `+09:00`) the order is not what it seems.
                        let both = if f.offset() == u.offset() {
                            String::new()
                        } else {
                            format!(
                                " (in Korean time, from is {} and until {})",
                                f.with_timezone(&SEOUL).to_rfc3339(),
                                u.with_timezone(&SEOUL).to_rfc3339()
                            )
                        };
                        self.error(
                            &sub("window", "from"),
                            format!(
                                "rule \"{name}\": window.from must be before window.until{both}"
                            ),
                        );
                        return None;
                    }
                }
                // A rule parked with `mode: off` is not warned about, as for the other warnings.
                let parked = raw.mode == Some(super::super::Mode::Off);
                for (f, t) in [("from", from), ("until", until)]
                    .into_iter()
                    .filter(|_| !parked)
                {
                    if let Some(t) = t.filter(|t| t.offset() != &SEOUL) {
                        self.warn(&sub("window", f), foreign_offset(name, f, t));
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
                // The path is the rule's own: checked whatever the upstream's state.
                let up =
                    self.upstream_ref(&sub("forward", "upstream"), name, &f.upstream, upstreams);
                let errors_before = self.errors.len();
                self.check_path(
                    &sub("forward", "path"),
                    &format!("rule \"{name}\": forward.path"),
                    &f.path,
                );
                // The path is sent as written: a placeholder would reach the merchant as
                // `%7Border_id%7D`. Forward passes the original request on unchanged, so the
                // handler reads the order from the body; a path built from it is a fetch.
                if let Some(brace) = f
                    .path
                    .find(['{', '}'])
                    .filter(|_| !self.error_not_located())
                {
                    let scalar = yaml::locate(&self.src, &sub("forward", "path"));
                    let column = f.path[..brace].chars().count() + 1;
                    let at = yaml::position_in_scalar(&self.src, scalar, &f.path, 1, column);
                    self.error_at(at, format!("rule \"{name}\": {FORWARD_PATH_IS_FIXED}"));
                }
                if self.errors.len() > errors_before {
                    return None;
                }
                Some(Check::Forward(Forward {
                    upstream: up?,
                    path: crate::upstream::as_sent(&f.path).into_owned(),
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
            None if self.upstreams_broken || self.broken_upstreams.iter().any(|b| b == up) => None,
            None => {
                // Broken upstreams (reported on their own) are still the names there are.
                let mut known: Vec<&str> = upstreams
                    .keys()
                    .chain(&self.broken_upstreams)
                    .map(String::as_str)
                    .collect();
                known.sort_unstable();
                known.dedup();
                let expected = if known.is_empty() {
                    "no upstreams are defined in this file".to_owned()
                } else {
                    format!(
                        "expected one of {}{}",
                        known.join(", "),
                        crate::suggest::hint(up, known.iter().copied())
                    )
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
        let mut template = |at: &[Seg<'_>], field: &str, s: &str| match Template::parse_call_at(s) {
            Ok(t) => Some(t),
            Err(errors) => {
                self.errors_in_template(at, s, errors, &format!("rule \"{name}\": fetch.{field}"));
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
        if f.headers.len() > super::upstream::MAX_HEADERS {
            self.error(
                &[
                    Seg::Key("rules"),
                    Seg::Index(i),
                    Seg::Key("fetch"),
                    Seg::Key("headers"),
                ],
                format!(
                    "rule \"{name}\": fetch.headers: {}",
                    super::upstream::too_many_headers(f.headers.len())
                ),
            );
            return None;
        }
        // Sent together with the upstream's own (a fetch's header replaces the upstream's of
        // the same name).
        if let Some(up) = &upstream {
            let added = f.headers.keys().filter(|k| {
                http::HeaderName::from_bytes(k.as_bytes())
                    .map_or(true, |h| !up.headers.contains_key(h))
            });
            let sent = up.headers.keys_len() + added.count();
            if sent > super::upstream::MAX_HEADERS {
                self.error(
                    &sub("headers"),
                    format!("rule \"{name}\": fetch.headers: with upstream \"{}\"'s {}, the call would send {}", up.name, up.headers.keys_len(), super::upstream::too_many_headers(sent)),
                );
                return None;
            }
        }
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
                Ok(h) if super::upstream::client_owned_header(&h) => {
                    bad_headers.push((at, true, super::upstream::client_owned_message(k)));
                }
                // The host at the merchant the call, with the upstream's credentials, goes to
                // is the operator's to name, never a request field's.
                Ok(h)
                    if h == http::header::HOST
                        && t.as_ref().is_some_and(Template::has_placeholders) =>
                {
                    bad_headers.push((at, false, format!("\"{k}\" must not hold a placeholder: a request field would choose which host at the merchant the call, with the upstream's headers, goes to")));
                }
                // Readers drop them (and so does `fetch_call`): a slip, never what was meant.
                Ok(_) if v.starts_with([' ', '\t']) || v.ends_with([' ', '\t']) => {
                    bad_headers.push((at, false, format!("\"{k}\" starts or ends with a space or tab, which HTTP readers drop; remove it")));
                }
                // The rule's own text: every call would fail, each blamed on a request field.
                Ok(_) if v.chars().any(|c| c.is_ascii_control() && c != '\t') => {
                    bad_headers.push((at, false, format!("\"{k}\" holds a control character (a line break, say), which a header value cannot carry; remove it")));
                }
                Ok(h) => headers.extend(t.map(|t| (h, t))),
                Err(_) => bad_headers.push((at, true, crate::upstream::invalid_header_name(k))),
            }
        }
        for (k, first) in super::upstream::repeated_headers(&f.headers) {
            let at = [
                Seg::Key("rules"),
                Seg::Index(i),
                Seg::Key("fetch"),
                Seg::Key("headers"),
                Seg::Key(k),
            ];
            bad_headers.push((at, true, format!("\"{k}\" is \"{first}\" again (header names ignore case): only one would be sent; keep one")));
        }
        // Each at what it is about: the header's name, or its value.
        for (at, about_the_name, message) in bad_headers {
            let message = format!("rule \"{name}\": fetch.headers: {message}");
            if about_the_name {
                self.error_at_key(&at, message);
            } else {
                self.error(&at, message);
            }
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
            // SPEC §9: a YAML mapping, sent as a JSON object; a string or a list would be sent
            // as JSON too (`"raw o1"`), which no handler written for an object reads.
            (Some(b), _) if !b.is_object() => {
                self.error(
                    &sub("body"),
                    format!("rule \"{name}\": fetch.body is a mapping of fields, sent as a JSON object (body: {{ order: \"{{order_id}}\" }}), not {}", match b {
                        serde_json::Value::Array(_) => "a list",
                        serde_json::Value::String(_) => "text",
                        serde_json::Value::Null => "empty",
                        _ => "a single value",
                    }),
                );
                None
            }
            // Every text of the body is checked, each error at its own place.
            (Some(b), _) => {
                // Out of `self` for the call, whose closure borrows `self` mutably.
                let written = Written {
                    src: Arc::clone(&self.src),
                    texts: self.number_texts.take(),
                };
                let body = body_template(&written, b, &mut sub("body").to_vec(), &mut |at, s| {
                    match Template::parse_call_at(s) {
                        Ok(t) => Some(t),
                        Err(errors) => {
                            let what = format!("rule \"{name}\": fetch.body");
                            self.errors_in_template(at, s, errors, &what);
                            None
                        }
                    }
                });
                self.number_texts = written.texts;
                body
            }
        };
        self.check_path(
            &sub("path"),
            &format!("rule \"{name}\": fetch.path"),
            &f.path,
        );
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

    /// What an error inside a script ends with: the rule that runs it, and the rule file it
    /// is in (rules of several files may share a script, and one of them may be the one
    /// lacking what the error says): ` (script of rule "qty" in events.yaml)`.
    fn script_of(&self, rule: &str) -> String {
        format!(" (script of rule \"{rule}\" in {})", self.name)
    }

    fn script(&mut self, at: &[Seg<'_>], rule: &str, rel: &str) -> Option<Check> {
        // `script: |` over a path keeps its line break.
        let rel = rel.trim();
        let rel_path = Path::new(rel);
        let escapes = rel_path.is_absolute()
            || rel_path
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
        if rel.trim().is_empty() {
            self.error(at, format!("rule \"{rule}\": script path is empty; write the script's path, relative to the rules directory (scripts/vip.rhai)"));
            return None;
        }
        // `script: |` followed by code: taken as a path it would give a message of many lines.
        if looks_like_code(rel) {
            self.error(at, format!("rule \"{rule}\": script takes the path of a .rhai file, relative to the rules directory (scripts/vip.rhai), not the script's code: put the code in that file (one expression fits in require:)"));
            return None;
        }
        if escapes {
            self.error(at, format!("rule \"{rule}\": script path \"{rel}\" must be relative to the rules directory, without \"..\""));
            return None;
        }
        let file = self.dir.join(rel_path);
        if let Some((src, compiled)) = self.scripts.get(&file) {
            let (src, compiled) = (src.clone(), compiled.clone());
            return self.script_compiled(at, rule, rel, file, &src, compiled);
        }
        let src = match super::read_text(&file) {
            Ok(s) => s,
            Err(super::ReadError::Io(e)) => {
                let mut message = format!(
                    "rule \"{rule}\": cannot read script \"{rel}\": {}",
                    super::source::io_message(&file, &e)
                );
                // (A dangling link is named with its target instead.)
                if e.kind() == std::io::ErrorKind::NotFound && file.symlink_metadata().is_err() {
                    message.push_str(&missing_script_hint(self.dir, &file, rel));
                }
                self.error(at, message);
                return None;
            }
            // Like a script's syntax error: reported against the script, where the fix is.
            Err(e) => {
                let suffix = self.script_of(rule);
                self.errors.push(e.into_load_error(file, &suffix));
                return None;
            }
        };
        let src: Arc<str> = src.into();
        let compiled = self.opts.engine.compile_script(&src).map(Arc::new);
        self.scripts
            .insert(file.clone(), (src.clone(), compiled.clone()));
        self.script_compiled(at, rule, rel, file, &src, compiled)
    }

    /// The check of a script rule whose script `file` (`rel` as the rule names it) was read as
    /// `src` and compiled: the checks that depend on the rule's place in the file, then the
    /// rule's check, or the script's error reported against the script.
    fn script_compiled(
        &mut self,
        at: &[Seg<'_>],
        rule: &str,
        rel: &str,
        file: PathBuf,
        src: &str,
        compiled: Result<Arc<rhai::AST>, crate::script::CompileError>,
    ) -> Option<Check> {
        self.uses_payload |= super::mentions_payload(src);
        let compiled = compiled.and_then(|ast| self.fetched_checked(&ast).map(|()| ast));
        match compiled {
            Ok(ast) => {
                self.warn_shadow_fetched(at, &ast);
                self.warn_unguarded_payload(at, &ast, Some(rel));
                Some(Check::Script {
                    path: rel.to_owned(),
                    ast,
                })
            }
            Err(errors) => {
                // Errors inside a script are reported against the script, where the fix is;
                // as many as of a rule file, so that a generated script's thousand slips do
                // not bury the rest of the load.
                let mut errors = errors.into_all();
                for e in errors.by_ref().take(MAX_LOCATED) {
                    self.errors.push(LoadError {
                        file: file.clone(),
                        location: Some(Location {
                            line: e.line,
                            column: e.column,
                        }),
                        message: format!("{}{}", e.message, self.script_of(rule)),
                    });
                }
                let more = errors.count();
                if more > 0 {
                    self.errors.push(LoadError {
                        file: file.clone(),
                        location: None,
                        message: format!("and {more} more errors in this script, not shown: only the first {MAX_LOCATED} are listed; fix these and check again{}", self.script_of(rule)),
                    });
                }
                None
            }
        }
    }

    /// Rules that load and can never do what they are there for: a guard or a requirement
    /// written as a constant, a window that is over for every payment (an unconditional
    /// approval hiding the rules after it is the ruleset's to see). Each is most likely a slip
    /// (a test value left in, a wrong year), and none shows in a rule test that does not look
    /// for it.
    fn warn_if_it_never_acts(&mut self, i: usize, raw: &RawRule, check: Option<&Check>) {
        let name = raw.name.as_str();
        let path = |k: &'static str| [Seg::Key("rules"), Seg::Index(i), Seg::Key(k)];
        if raw.when.as_deref().and_then(constant) == Some(false) {
            self.warn(&path("when"), format_args!("rule \"{name}\": when is always false, so this rule never applies; to keep a rule in the file without evaluating it, use mode: off"));
        }
        if raw.fetch.is_none() && raw.require.as_deref().and_then(constant) == Some(true) {
            self.warn(
                &path("require"),
                format_args!("rule \"{name}\": require is always true, so this rule never refuses"),
            );
        }
        if let Some(Check::Window {
            until: Some(until), ..
        }) = check
        {
            if raw.when.is_none() && *until <= chrono::Utc::now() {
                self.warn(&path("window"), format_args!("rule \"{name}\": the window ended at {}, so this rule refuses every payment from now on; is the date right?", until.to_rfc3339()));
            }
        }
    }

    /// A `{response.body.x}` in a fetch rule's reason that names no field its `require` reads,
    /// but one close to it (`availble` where the require reads `available`): the answer has
    /// no such field, so the buyer would read the reason with nothing in its place.
    fn warn_about_misspelt_fields(
        &mut self,
        at: &[Seg<'_>],
        rule: &str,
        reason: &Template,
        require: &str,
    ) {
        let read = crate::rules::fields_read(require);
        for field in reason.response_fields() {
            if read.contains(&field) {
                continue;
            }
            if let Some(known) = crate::suggest::closest(field, read.iter().copied()) {
                self.warn(at, format_args!("rule \"{rule}\": reason: {{response.body.{field}}} names a field the require never reads, and the require reads response.body.{known}: one of the two is misspelt (a field the answer lacks renders empty in a reason, and is () in a require)"));
            }
        }
    }
}

/// How the file writes its numbers: from the one pass over it when that was made
/// ([`super::number_texts`]), else found one by one.
struct Written {
    src: Arc<str>,
    texts: Option<yaml::Texts>,
}

impl Written {
    /// The number at `at` (below the file's top) as the file writes it, when that differs from
    /// serde_yaml's `n` (see [`yaml::number_as_written`]).
    fn number(&self, at: &[Seg<'_>], n: &serde_json::Number) -> Option<serde_json::Number> {
        match &self.texts {
            // Its paths start below `rules`.
            Some(texts) => texts.get(at.get(1..)?),
            None => yaml::number_as_written(&self.src, at, n),
        }
        .and_then(|t| serde_json::from_str(t).ok())
    }

    /// The text `s` at `at`, when it is a number written without quotes: YAML reads one past
    /// any `f64` (`1e400`) as text, yet it is a number in JSON as written. (The file is read
    /// only for a text that is a number at all.)
    fn unquoted_number(&self, at: &[Seg<'_>], s: &str) -> Option<serde_json::Number> {
        let n = serde_json::from_str(s).ok()?;
        (yaml::unquoted_at(&self.src, at) == Some(s)).then_some(n)
    }
}

/// `v` as a template, each of its texts made by `text` (at its place in the file, `at`), each
/// number sent as the file writes it; `None` when any text gave none, after all were tried.
fn body_template<'v>(
    src: &Written,
    v: &'v serde_json::Value,
    at: &mut Vec<Seg<'v>>,
    text: &mut dyn FnMut(&[Seg<'_>], &str) -> Option<Template>,
) -> Option<BodyTemplate> {
    let mut part = |at: &mut Vec<Seg<'v>>, seg, v| {
        at.push(seg);
        let t = body_template(src, v, at, text);
        at.pop();
        t
    };
    match v {
        serde_json::Value::String(s) => match src.unquoted_number(at, s) {
            Some(n) => Some(BodyTemplate::Value(serde_json::Value::Number(n))),
            None => text(at, s).map(BodyTemplate::Text),
        },
        serde_json::Value::Array(items) => {
            let items: Vec<_> = items
                .iter()
                .enumerate()
                .map(|(j, item)| part(at, Seg::Index(j), item))
                .collect();
            items
                .into_iter()
                .collect::<Option<_>>()
                .map(BodyTemplate::Array)
        }
        serde_json::Value::Object(map) => {
            let fields: Vec<_> = map
                .iter()
                .map(|(k, v)| part(at, Seg::Key(k), v).map(|t| (k.clone(), t)))
                .collect();
            fields
                .into_iter()
                .collect::<Option<_>>()
                .map(BodyTemplate::Object)
        }
        // The merchant reads the number the operator wrote: serde_yaml reads one with a
        // fraction or exponent through an `f64` (`10.50` was sent as 10.5, a 20-digit id with a
        // fraction rounded).
        serde_json::Value::Number(n) => Some(BodyTemplate::Value(
            src.number(at, n)
                .map_or_else(|| v.clone(), serde_json::Value::Number),
        )),
        other => Some(BodyTemplate::Value(other.clone())),
    }
}

/// Whether a `script:` value is Rhai code rather than a path: a line break, or characters of
/// code (`;`, braces, brackets, quotes, comparisons) in a value that does not name a `.rhai`
/// file.
fn looks_like_code(value: &str) -> bool {
    value.contains('\n')
        || (!value.ends_with(".rhai")
            && value.contains(['{', '}', ';', '(', ')', '"', '\'', '<', '>', '=', '&', '|']))
}

/// What to write instead of a script path that names no file: where it was looked for (script
/// paths are relative to the rules directory, not to where `confirm-proxy` was started), and
/// the script that was probably meant: one the path written ends with (`scripts/vip.rhai` for
/// `concert/scripts/vip.rhai`, written from where the proxy was started), one whose path ends
/// with the one written (`scripts/vip.rhai` for `vip.rhai`), one of the same file name
/// elsewhere (a slip in a directory's name), or one whose file name is a slip away or starts
/// the other's. Whole paths are not compared: sharing `scripts/`, any two would look alike.
fn missing_script_hint(dir: &Path, file: &Path, rel: &str) -> String {
    // The `.rhai` files under the rules directory, as the rules version finds them.
    let mut files = Vec::new();
    let _ = super::source::collect_files(dir, &mut files);
    let mut scripts: Vec<String> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    scripts.sort();
    // `scripts\vip.rhai`, written as Windows does: `\` is part of a file name here.
    if rel.contains('\\') {
        let slashed = rel.replace('\\', "/");
        if scripts.contains(&slashed) {
            return format!(" (folders are separated by /, not \\: write {slashed})");
        }
    }
    // The same name in another Unicode form: Hangul decomposed (NFD), as macOS names files, is
    // other bytes than the same text typed elsewhere (NFC), and looks the same.
    if let Some(same) = scripts
        .iter()
        .find(|s| crate::text::nfc(s) == crate::text::nfc(rel))
    {
        return format!(
            " (\"{same}\" is there, the same name in another Unicode form: its Hangul decomposed, as macOS writes file names; rename the file, typing its name anew, or give scripts ASCII names)"
        );
    }
    let name_of = |p: &str| p.rsplit('/').next().unwrap_or(p).to_owned();
    let rel_name = name_of(rel);
    let meant = scripts
        .iter()
        .filter(|s| rel.ends_with(&format!("/{s}")))
        .max_by_key(|s| s.len())
        .or_else(|| {
            scripts
                .iter()
                .filter(|s| s.ends_with(&format!("/{rel}")))
                .min_by_key(|s| s.len())
        })
        .or_else(|| scripts.iter().find(|s| name_of(s) == rel_name))
        .map(String::as_str)
        .or_else(|| {
            // By file name without `.rhai`, which every candidate shares: a slip, or one
            // name the start of the other (`vip_limit` for `vip`).
            let stem = |name: &str| name.strip_suffix(".rhai").unwrap_or(name).to_owned();
            let written = stem(&rel_name);
            let stems: Vec<String> = scripts.iter().map(|s| stem(&name_of(s))).collect();
            let near = crate::suggest::closest(&written, stems.iter().map(String::as_str))
                .or_else(|| {
                    stems
                        .iter()
                        .filter(|s| !s.is_empty() && !written.is_empty())
                        .filter(|s| written.starts_with(s.as_str()) || s.starts_with(&written))
                        .max_by_key(|s| s.len())
                        .map(String::as_str)
                })?;
            scripts
                .iter()
                .find(|s| stem(&name_of(s)) == near)
                .map(String::as_str)
        });
    let mut hint = format!(
        " (looked for {}; a script path is relative to the rules directory",
        file.display()
    );
    if let Some(meant) = meant {
        hint.push_str(&format!("; did you mean \"{meant}\"?"));
    }
    hint.push(')');
    hint
}

/// The value of an expression written as a constant (`true`, `(false)`), if it is one.
pub(super) fn constant(src: &str) -> Option<bool> {
    let mut s = src.trim();
    while let Some(inner) = s.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
        s = inner.trim();
    }
    match s {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// A window bound written with another offset than Korea's (`Z`, `+00:00`): the buyers and the
/// sale are in Korea, so the clock time written was most likely meant there, nine hours away
/// from when the bound falls. Shown in Korean time, with the bound to write if it was.
fn foreign_offset(rule: &str, field: &str, t: DateTime<chrono::FixedOffset>) -> String {
    let meant = t.naive_local().and_local_timezone(SEOUL).single();
    let instead = meant
        .map(|m| {
            let clock = if chrono::Timelike::second(&t) == 0 {
                t.format("%H:%M")
            } else {
                t.format("%H:%M:%S")
            };
            format!("; if {clock} in Korea was meant, write {}", m.to_rfc3339())
        })
        .unwrap_or_default();
    format!(
        "rule \"{rule}\": window.{field} is {} in Korean time{instead}",
        t.with_timezone(&SEOUL).to_rfc3339()
    )
}
