//! A rule file read part by part: after an error the file is read again without what failed,
//! so every shape error of every part is reported, not only the first.

mod seeds;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{check_document, clean_message, error_location, passes_for, ParseError, Seg};
use crate::rules::model::{RawRule, RawSettings, RawUpstream};
use seeds::Root;

/// A rule file read as far as its YAML allows: every part (the settings, each upstream, each
/// rule) that is well-formed, and an error for every one that is not.
#[derive(Debug, Default)]
pub struct RuleFile {
    /// `None` when absent or not well-formed.
    pub settings: Option<RawSettings>,
    pub upstreams: BTreeMap<String, RawUpstream>,
    /// Each well-formed rule with its index in `rules`.
    pub rules: Vec<(usize, RawRule)>,
    /// Upstreams that are defined but not well-formed (their errors are in `errors`).
    pub broken_upstreams: Vec<String>,
    /// `upstreams` as a whole is not readable, so no upstream name is known.
    pub upstreams_broken: bool,
    /// A rule, or `rules` as a whole, is not well-formed: the file has rules, not all readable.
    pub rules_broken: bool,
    /// The names of the rules that are not well-formed, where they have one: a later rule
    /// reading `fetched["stock"]` of a broken `stock` rule gets no second, false error.
    pub unreadable_rules: Vec<String>,
    /// Every error, in file order.
    pub errors: Vec<ParseError>,
}

/// Reads a rule file strictly, reporting every shape error (unknown keys, wrong types, missing
/// keys, duplicate keys) of every part, not only the first of the file. A YAML syntax error or a
/// second document ends the reading: it is the only error then.
///
/// serde stops at the first error, so after one the file is read again without the part key
/// that failed (or the part, when the error is about the part as a whole), until it reads.
/// Within one key of a part (`amount: { mx: 1, mn: 2 }`) only the first error is found.
pub fn parse_rule_file(src: &str) -> RuleFile {
    let mut file = RuleFile::default();
    let values = match check_document(src) {
        Ok(checked) => {
            file.errors = checked.duplicates;
            checked.values
        }
        Err(fatal) => {
            file.errors.push(fatal);
            file.upstreams_broken = true;
            file.rules_broken = true;
            return file;
        }
    };
    let duplicates = !file.errors.is_empty();
    // Tags come first: at a key, one is why the key has no value (`{ !Authorization: "x" }`).
    file.errors.extend(super::rule_file_values(src));
    walk_file(src, duplicates, passes_for(values), &mut file);
    // Read once, for both, and only when either needs them.
    let mut names = None;
    name_rules(src, &mut file.errors, &mut names);
    if file.rules_broken {
        let read: HashSet<usize> = file.rules.iter().map(|(i, _)| *i).collect();
        let names = names.unwrap_or_else(|| rule_names(src));
        file.unreadable_rules = (names.into_iter().enumerate())
            .filter(|(i, _)| !read.contains(i))
            .filter_map(|(_, name)| name)
            .collect();
    }
    // `reason: {order_id}` is a mapping where text belongs and, inside, a key without a value:
    // the second error says what to change, the first only that the type is wrong.
    let path = |e: &ParseError| e.message.split_once(": ").map(|(path, _)| path.to_owned());
    let quoted: HashSet<String> = (file.errors.iter())
        .filter(|e| e.message.contains(super::document::UNQUOTED_PLACEHOLDER))
        .filter_map(path)
        .collect();
    file.errors.retain(|e| {
        !(e.message.ends_with("invalid type: map, expected a string")
            && path(e).is_some_and(|p| quoted.contains(&p)))
    });
    for e in &mut file.errors {
        if let Some(hint) = super::upstream_name_hint(&e.message) {
            e.message = format!("{}; {hint}", e.message);
        }
    }
    // Located ones in file order, a count of those not located after them.
    file.errors
        .sort_by_key(|e| (e.location.is_none(), e.location));
    file
}

/// Shape errors say where as serde does, `rules[2].amount`: the rule's name is added where it
/// has one (`rules[2].amount (rule "amount-range")`), since operators know rules by name.
/// `known` holds the names once read (see [`rule_names`]), for the caller to use again.
fn name_rules(src: &str, errors: &mut [ParseError], known: &mut Option<Vec<Option<String>>>) {
    for e in errors.iter_mut() {
        let Some((path, what)) = e.message.split_once(": ") else {
            continue;
        };
        let index = path
            .strip_prefix("rules[")
            .and_then(|rest| rest.split_once(']'))
            .and_then(|(i, _)| i.parse::<usize>().ok());
        let Some(i) = index else { continue };
        let names = known.get_or_insert_with(|| rule_names(src));
        if let Some(Some(name)) = names.get(i) {
            e.message = format!("{path} (rule \"{name}\"): {what}");
        }
    }
}

/// The name of each rule of `src` by its index in `rules` (`None` for one without a name);
/// empty when `rules` is no sequence. Read leniently: a duplicate key elsewhere (which a
/// `serde_yaml::Value` refuses) must not cost every rule its name.
fn rule_names(src: &str) -> Vec<Option<String>> {
    #[derive(serde::Deserialize)]
    struct Names {
        #[serde(default)]
        rules: Vec<Named>,
    }
    serde_yaml::from_str::<Names>(src)
        .map(|file| file.rules.into_iter().map(|r| r.0).collect())
        .unwrap_or_default()
}

/// A rule's name, when the rule is a mapping with a string `name`; any other node is read past.
/// Hand-written because serde's untagged enums cannot hold the 128-bit integers serde_yaml
/// reads for long numbers, and one such number must not cost every rule its name.
struct Named(Option<String>);

impl<'de> serde::Deserialize<'de> for Named {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NameVisitor { rule: true }).map(Named)
    }
}

/// With `rule`, reads a rule's `name`; without, the text of a string node (a key or a name).
#[derive(Clone, Copy)]
struct NameVisitor {
    rule: bool,
}

impl<'de> DeserializeSeed<'de> for NameVisitor {
    type Value = Option<String>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NameVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any node")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<String>, E> {
        Ok((!self.rule).then(|| v.to_owned()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
        let text = NameVisitor { rule: false };
        let mut name = None;
        while let Some(key) = map.next_key_seed(text)? {
            if self.rule && key.as_deref() == Some("name") {
                name = map.next_value_seed(text)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(name)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<String>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Option<String>, A::Error> {
        // A tagged node (`!tag value`).
        let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
        de::VariantAccess::newtype_variant::<IgnoredAny>(variant)?;
        Ok(None)
    }

    crate::ignore_scalars!(Option<String>, None);
}

/// A shape error as an operator reads it: no Rust type names, no JSON.
fn rule_file_message(e: &serde_yaml::Error) -> String {
    clean_message(&e.to_string().replace("a JSON number", "a number"))
}

/// A part of a rule file, read (and failing) on its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Part {
    Settings,
    Upstream(String),
    Rule(usize),
}

/// What a walk leaves out, because an earlier walk failed there.
#[derive(Default)]
struct Skip {
    sections: HashSet<String>,
    parts: HashSet<Part>,
    keys: HashMap<Part, HashSet<String>>,
}

/// Where a walk is: on failure, where the error belongs.
#[derive(Default)]
struct Cursor {
    section: Option<String>,
    part: Option<Part>,
    key: Option<String>,
    /// Every key of the part is read: the error is about the part as a whole.
    done: bool,
}

/// The well-formed parts one walk read.
#[derive(Default)]
struct Found {
    settings: Option<RawSettings>,
    upstreams: BTreeMap<String, RawUpstream>,
    rules: Vec<(usize, RawRule)>,
}

struct Walker<'s> {
    skip: &'s Skip,
    cursor: RefCell<Cursor>,
    found: RefCell<Found>,
}

/// Reads the file's parts, again and again (`passes` times at most), each time without what
/// failed the time before.
fn walk_file(src: &str, duplicates: bool, passes: usize, file: &mut RuleFile) {
    let mut skip = Skip::default();
    for pass in 0..=passes {
        if pass == passes {
            // Said, so that an operator does not take the list for all there is; placed at the
            // last error, so that it is listed after them.
            file.errors.push(ParseError {
                location: file.errors.last().and_then(|e| e.location),
                message: format!("stopped reading this file after {passes} errors; fix those and check again for the rest"),
            });
            break;
        }
        let walker = Walker {
            skip: &skip,
            cursor: RefCell::default(),
            found: RefCell::default(),
        };
        let result = (Root { w: &walker }).deserialize(serde_yaml::Deserializer::from_str(src));
        let found = walker.found.into_inner();
        let cursor = walker.cursor.into_inner();
        let e = match result {
            Ok(()) => {
                file.settings = found.settings;
                file.upstreams = found.upstreams;
                file.rules = found.rules;
                return;
            }
            Err(e) => e,
        };
        let raw = e.to_string();
        let message = rule_file_message(&e);
        // An error inside the value of the part's key (serde's path goes through the key:
        // `rules[1].window`, `rules[1].window.from`) is placed at that value's alias when it is
        // one (its anchor is every use's); an unknown key of the part itself (`rules[1]:
        // unknown field "window"`), at the key, whatever its value.
        let inside = (cursor.key.as_deref()).is_some_and(|key| {
            let step = format!(".{key}");
            message.split_once(": ").is_some_and(|(path, _)| {
                path.match_indices(&step).any(|(i, _)| {
                    let rest = &path[i + step.len()..];
                    rest.is_empty() || rest.starts_with(['.', '['])
                })
            })
        });
        let error = ParseError {
            location: Some(
                inside
                    .then(|| alias_used(src, &cursor))
                    .flatten()
                    .unwrap_or_else(|| error_location(&e)),
            ),
            message,
        };
        // Already reported, at the repeated key, by `check_document`.
        let repeated = duplicates && raw.contains("duplicate field");
        let progress = match (cursor.part, cursor.key) {
            (Some(part), Some(key)) if !cursor.done => {
                if !repeated {
                    file.errors.push(error);
                }
                file.broken(&part);
                skip.keys.entry(part).or_default().insert(key)
            }
            (Some(part), _) => {
                // A missing key that is there but was left out for its own error.
                let left_out = missing_field(&raw)
                    .is_some_and(|f| skip.keys.get(&part).is_some_and(|keys| keys.contains(f)));
                if !left_out && !repeated {
                    file.errors.push(error);
                }
                file.broken(&part);
                skip.parts.insert(part)
            }
            (None, _) => {
                file.errors.push(error);
                match cursor.section {
                    Some(section) => {
                        match section.as_str() {
                            "upstreams" => file.upstreams_broken = true,
                            "settings" => {}
                            // `rules` unreadable, or an unknown key that may be a misspelt
                            // `rules`: "no rules" would only add noise.
                            _ => file.rules_broken = true,
                        }
                        skip.sections.insert(section)
                    }
                    None => false,
                }
            }
        };
        if !progress {
            break;
        }
    }
    // Could not read on: whatever is not known is broken.
    file.upstreams_broken = true;
    file.rules_broken = true;
}

/// Where the value of the key the walk failed in is an alias (`mode: *lim`): serde_yaml places
/// an error in an aliased value where its anchor defines it, not where it was used wrongly.
fn alias_used(src: &str, cursor: &Cursor) -> Option<super::Location> {
    let key = cursor.key.as_deref().filter(|_| !cursor.done)?;
    let mut path = match cursor.part.as_ref()? {
        Part::Settings => vec![Seg::Key("settings")],
        Part::Upstream(name) => vec![Seg::Key("upstreams"), Seg::Key(name)],
        Part::Rule(i) => vec![Seg::Key("rules"), Seg::Index(*i)],
    };
    path.push(Seg::Key(key));
    super::locate::alias_at(src, &path)
}

impl RuleFile {
    fn broken(&mut self, part: &Part) {
        match part {
            Part::Settings => {}
            Part::Upstream(name) => {
                if !self.broken_upstreams.contains(name) {
                    self.broken_upstreams.push(name.clone());
                }
            }
            Part::Rule(_) => self.rules_broken = true,
        }
    }
}

/// `name` from serde's "missing field `name`".
fn missing_field(msg: &str) -> Option<&str> {
    let rest = &msg[msg.find("missing field `")? + "missing field `".len()..];
    rest.split('`').next()
}
