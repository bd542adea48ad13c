//! Raw serde types mirroring the parts of a rule file (its `settings`, each upstream, each
//! rule). No behaviour and no validation beyond shape: `yaml::parse_rule_file` reads
//! each part on its own, `load` compiles them into [`crate::rules::Ruleset`].
//!
//! `expecting` texts say what a mapping should hold, in the words of the rule file reference
//! (serde would name the Rust type).

use std::collections::BTreeMap;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IntoDeserializer, Visitor};
use serde::Deserialize;

/// A choice among words (`on_error: reject`) read from a plain word only, for fields marked
/// `#[serde(deserialize_with = "choice")]` (or [`optional_choice`]). serde_yaml also reads an
/// enum from a list or a mapping, as a variant named by a YAML tag, and its error for one
/// (`on_error: [reject]`) says `expected a YAML tag starting with '!'`; this one names the
/// choices, as the error for a misspelt word does.
pub fn choice<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(Choice(PhantomData))
        .and_then(|t: Option<T>| {
            t.ok_or_else(|| {
                de::Error::invalid_type(de::Unexpected::Unit, &Choice::<T>(PhantomData))
            })
        })
}

/// [`choice`] for an optional field: `~` (null) is no choice, as for any optional field.
pub fn optional_choice<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    d.deserialize_any(Choice(PhantomData))
}

struct Choice<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for Choice<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        // serde's own list of the words, from its error for a word that is none of them.
        let probe: Result<T, de::value::Error> = T::deserialize("\u{1}".into_deserializer());
        let words = probe
            .err()
            .and_then(|e| {
                let text = e.to_string();
                text.split_once(", expected ")
                    .map(|(_, words)| words.replace('`', "\""))
            })
            .unwrap_or_else(|| "a word".to_owned());
        f.write_str(&words)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<T>, E> {
        T::deserialize(v.into_deserializer()).map(Some)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of settings (deadline, on_error, error_reason, reject_status)"
)]
pub struct RawSettings {
    pub deadline: Option<String>,
    #[serde(default, deserialize_with = "optional_choice")]
    pub on_error: Option<OnError>,
    pub error_reason: Option<String>,
    pub reject_status: Option<u16>,
}

/// What a check that could not complete decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    Reject,
    Approve,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an upstream: a mapping with url (and timeout, headers, health, max_connections)"
)]
pub struct RawUpstream {
    pub url: String,
    pub timeout: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub health: Option<RawHealth>,
    pub max_connections: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with path (and interval, unhealthy_after, healthy_after)"
)]
pub struct RawHealth {
    pub path: String,
    pub interval: Option<String>,
    pub unhealthy_after: Option<u32>,
    pub healthy_after: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a rule: a mapping with name, a check and reason"
)]
pub struct RawRule {
    pub name: String,
    pub when: Option<String>,
    #[serde(default, deserialize_with = "optional_choice")]
    pub mode: Option<Mode>,
    #[serde(default, deserialize_with = "optional_choice")]
    pub action: Option<Action>,
    pub reason: Option<String>,
    #[serde(default, deserialize_with = "optional_choice")]
    pub on_error: Option<OnError>,
    // The checks; exactly one (or `action: approve`) is allowed, which `load` enforces so the
    // error can name every check that was given.
    pub amount: Option<RawAmount>,
    pub window: Option<RawWindow>,
    pub require: Option<String>,
    pub healthy: Option<String>,
    pub fetch: Option<RawFetch>,
    pub forward: Option<RawForward>,
    pub script: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    Shadow,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Approve,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with min, max or both")]
pub struct RawAmount {
    pub min: Option<serde_json::Number>,
    pub max: Option<serde_json::Number>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with from, until or both")]
pub struct RawWindow {
    pub from: Option<String>,
    pub until: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum HttpMethod {
    // Lower case too, as rule tests read `get /x`.
    #[serde(alias = "get")]
    GET,
    #[serde(alias = "post")]
    POST,
    #[serde(alias = "put")]
    PUT,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with upstream and path (and method, query, headers, body)"
)]
pub struct RawFetch {
    pub upstream: String,
    #[serde(default, deserialize_with = "optional_choice")]
    pub method: Option<HttpMethod>,
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with upstream and path")]
pub struct RawForward {
    pub upstream: String,
    pub path: String,
}

/// Only the `script:` references of a rule file, read leniently (other keys and their types are
/// not looked at), so the rules version and the watcher know every script a ruleset reads even
/// when the file does not load. Any file that loads parses this way too.
#[derive(Debug, Default, Deserialize)]
pub struct RawScriptRefs {
    #[serde(default)]
    pub rules: Vec<RawScriptRef>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawScriptRef {
    #[serde(default)]
    pub script: Option<String>,
}
