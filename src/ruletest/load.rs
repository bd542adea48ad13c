//! Reading a rule test file into a [`Suite`]: its shape, its times and requests, and the names
//! its cases use, each error located in the file.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::names::CaseNames;
use super::{Case, RawCase, RawSuite, Suite, SuiteWithout};
use crate::payload::{self, Parsed};
use crate::rules::yaml::{self, Seg};
use crate::rules::{LoadError, Rules, Ruleset};
use crate::upstream::canned::{CannedAnswer, RawAnswer};

/// Reads every `tests/*.yaml` under the rules directory. Errors are `FILE:LINE:COL: message`.
///
/// Beyond the shape, every name a case uses must exist in its ruleset: canned upstreams and
/// health states name upstreams it defines (health only ones with a probe), canned calls are
/// `METHOD /path` with a method rules can call with, `expect.rule` and `expect.shadow` name its
/// rules, and case names are unique in a file. A canned answer that no rule would ask for with
/// the case's request is a warning ([`Suite::warnings`]).
pub fn load_suites(rules_dir: &Path, rules: &Rules) -> Result<Vec<Suite>, Vec<LoadError>> {
    let dir = rules_dir.join("tests");
    let files = match test_files(&dir) {
        Ok(files) => files,
        Err(e) => {
            return Err(vec![LoadError {
                file: dir,
                location: None,
                message: format!("cannot read: {e}"),
            }])
        }
    };
    let mut suites = Vec::new();
    let mut errors = misnamed_tests(&dir);
    for file in files {
        match load_suite(&file, rules) {
            Ok(s) => suites.push(s),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(suites)
    } else {
        Err(errors)
    }
}

/// The case a shape error is in, from the path serde_yaml starts its message with
/// (`cases[3].expect: …`).
fn case_of(message: &str) -> Option<usize> {
    let (index, _) = message.strip_prefix("cases[")?.split_once(']')?;
    index.parse().ok()
}

/// The test files in `dir` (none when it does not exist), sorted.
fn test_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        // Not only regular files: a FIFO or a link to a device named like a test file is an
        // error when read (never opened), rather than a suite silently not run.
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && !p.is_dir())
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Test files named `.yml` or `.YAML`, and directories of test files under `tests/`, are not
/// read: an error each, so that a suite saved under the wrong name or place cannot leave `test`
/// and CI green having run nothing.
fn misnamed_tests(dir: &Path) -> Vec<LoadError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut misnamed: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let hidden = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            (p.is_file() && crate::rules::is_misnamed_yaml(p)) || (!hidden && nested_tests(p))
        })
        .collect();
    misnamed.sort();
    misnamed
        .into_iter()
        .map(|file| {
            // A file's error is put at its start, as every other error of a file is located.
            let (message, location) = if file.is_dir() {
                ("not read: rule tests are the *.yaml files directly in tests/, not in a directory under it; move them up".to_owned(), None)
            } else {
                let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                (format!(
                    "not read: rule test files end in \".yaml\" (lower case); rename it to {stem}.yaml"
                ), Some(crate::rules::yaml::Location::START))
            };
            LoadError {
                message,
                file,
                location,
            }
        })
        .collect()
}

/// Whether `path` is a directory holding `*.yaml` files: tests someone meant to run, which are
/// not read (only `tests/*.yaml` is).
fn nested_tests(path: &Path) -> bool {
    path.is_dir()
        && std::fs::read_dir(path).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        })
}

/// A test file read as far as its shape goes, without the rules.
struct ReadSuite {
    src: String,
    raw: RawSuite,
    /// The repeated keys found (errors, reported with the rest).
    repeated: Vec<LoadError>,
    /// How many times the file may be read again to locate its errors ([`yaml::passes_for`]).
    passes: usize,
}

/// Keys of a case that no PortOne request has at its top level: found in `request:`, they were
/// indented one level too deep.
const CASE_ONLY_KEYS: [&str; 4] = ["now", "upstreams", "health", "expect"];

/// Whether case `i` of the test file `src` has `key` in its `request:` mapping.
fn under_request(src: &str, i: usize, key: &str) -> bool {
    yaml::from_str::<serde_json::Value>(src).is_ok_and(|v| {
        v.get("cases")
            .and_then(|c| c.get(i))
            .and_then(|c| c.get("request"))
            .is_some_and(|r| r.get(key).is_some())
    })
}

/// The test file `file` read as far as its shape goes, without the rules; or every syntax and
/// shape error of it.
fn read_suite(file: &Path) -> Result<ReadSuite, Vec<LoadError>> {
    let error = |location, message: String| error_in(file, location, message);
    let src = crate::rules::read_yaml_text(file)
        .map_err(|e| vec![e.into_load_error(file.to_owned(), "")])?;
    // Syntax first, with the hints rule files get (an unclosed `{`, a tab, an unquoted `: `);
    // a repeated key would have a case test another answer (or request) than the one its
    // author is looking at.
    let (mut errors, passes): (Vec<LoadError>, usize) = match yaml::check_document(&src) {
        Ok(checked) => (
            checked
                .duplicates
                .into_iter()
                .map(|e| error(e.location, e.message))
                .collect(),
            yaml::passes_for(checked.values),
        ),
        Err(e) => return Err(vec![error(e.location, e.message)]),
    };
    // An empty file (or one of comments) would be told it lacks `ruleset`, placed after its
    // last line.
    if yaml::from_str::<serde_json::Value>(&src).is_ok_and(|v| v.is_null()) {
        let start = Some(yaml::Location { line: 1, column: 1 });
        return Err(vec![error(
            start,
            "the file holds no test: write ruleset: and cases:, or delete the file".into(),
        )]);
    }
    // A case that is not well-formed is left out and the file read again, for the next one's
    // error: every case's shape error in one run.
    let mut left_out = std::collections::HashSet::new();
    let mut shape_errors = Vec::new();
    let raw: Option<RawSuite> = loop {
        let e = match yaml::from_str_seed(&src, SuiteWithout(&left_out)) {
            Ok(raw) if shape_errors.is_empty() => break Some(raw),
            Ok(_) => break None,
            Err(e) => e,
        };
        let case = case_of(&e.message).filter(|i| !left_out.contains(i));
        // A repeated key is reported at the repetition (above), better than serde's words:
        // serde's own complaint about the same key — at the same place, or, for a struct's
        // field, at its mapping (`cases[0].expect: duplicate field "decision"`) — is left out
        // (the file fails either way). Any other error stands, whatever its words (a key
        // named `duplicate-shop`).
        let same_key = e
            .message
            .split_once(": duplicate field ")
            .map(|(path, key)| format!("{path}: duplicate key {key}"));
        let reported = errors.iter().any(|d| {
            d.location == e.location
                || same_key
                    .as_ref()
                    .is_some_and(|k| d.message.starts_with(k.as_str()))
        });
        if !reported {
            let mut message = e.message;
            if let Some(i) = case.filter(|_| message.ends_with("missing field \"expect\"")) {
                if under_request(&src, i, "expect") {
                    message.push_str(": it is indented under request:, where it is a field of the request; indent it as request: is");
                }
            }
            // Met through an alias, at the alias: every use of the anchor is another place.
            let at = yaml::alias_on_path(&src, &message).or(e.location);
            shape_errors.push(error(at, message));
        }
        match case {
            Some(i) if shape_errors.len() < yaml::MAX_LOCATED.min(passes) => {
                left_out.insert(i);
            }
            Some(i) => {
                // When more is malformed (one more read says), it is said, so that the list is
                // not taken for all there is; placed at the last error, so that it is listed
                // after them.
                left_out.insert(i);
                if yaml::from_str_seed(&src, SuiteWithout(&left_out)).is_ok() {
                    break None;
                }
                let at = shape_errors.last().and_then(|e| e.location);
                let stopped = format!(
                    "stopped reading this file after {} errors; fix those and check again for the rest",
                    shape_errors.len()
                );
                shape_errors.push(error(at, stopped));
                break None;
            }
            None => break None,
        }
    };
    match raw {
        Some(raw) => Ok(ReadSuite {
            src,
            raw,
            repeated: errors,
            passes,
        }),
        None => {
            errors.extend(shape_errors);
            errors.sort_by_key(|e| e.location.map(|l| (l.line, l.column)));
            Err(errors)
        }
    }
}

/// The syntax and shape errors of every test file under `rules_dir`, read without rules: for
/// `check` when the rules themselves do not load, so that a broken test file is not found
/// only once they do.
pub fn shape_errors(rules_dir: &Path) -> Vec<LoadError> {
    let dir = rules_dir.join("tests");
    let files = test_files(&dir).unwrap_or_default();
    let mut errors = misnamed_tests(&dir);
    for file in files {
        match read_suite(&file) {
            Ok(mut read) => errors.append(&mut read.repeated),
            Err(mut e) => errors.append(&mut e),
        }
    }
    errors
}

fn load_suite(file: &Path, rules: &Rules) -> Result<Suite, Vec<LoadError>> {
    let error = |location, message: String| error_in(file, location, message);
    let ReadSuite {
        src,
        raw,
        repeated: mut errors,
        passes,
    } = read_suite(file)?;
    let at = |path: &[Seg<'_>]| Some(yaml::locate(&src, path));
    errors.extend(
        yaml::test_file_values(&src)
            .into_iter()
            .map(|e| error(e.location, e.message)),
    );
    if rules.get(&raw.ruleset).is_none() {
        let known: Vec<&str> = rules.rulesets.keys().map(String::as_str).collect();
        let near = crate::suggest::closest(&raw.ruleset, known.iter().copied());
        let why = match raw.ruleset.strip_suffix(".yaml") {
            Some(name) if rules.get(name).is_some() => {
                format!("a ruleset is named without .yaml: write {name}")
            }
            // `defualt`: a slip — or a removed ruleset next to one named alike (`sale-1201`
            // beside `sale-1202`): both are said.
            _ if near.is_some() => format!(
                "did you mean {}? if {}.yaml was removed, its test file goes with it",
                near.unwrap_or_default(),
                raw.ruleset
            ),
            _ => format!(
                "the rules directory has no {}.yaml: when a ruleset is removed, its test file \
                 goes with it",
                raw.ruleset
            ),
        };
        errors.push(error(
            at(&[Seg::Key("ruleset")]),
            format!(
                "unknown ruleset \"{}\", expected one of {} ({why})",
                raw.ruleset,
                known.join(", "),
            ),
        ));
    }
    // `field` names the key as the other errors of a test file do: `now`, `cases[2].now`.
    let parse_now = |s: &str, path: &[Seg<'_>], field: &str, errors: &mut Vec<LoadError>| {
        match crate::rules::parse_time(s) {
            Ok(t) => Some(t),
            Err(why) => {
                let slip = why.map(|h| format!("; {h}")).unwrap_or_default();
                errors.push(error(
                    at(path),
                    format!(
                        "{field}: invalid time \"{s}\", expected RFC 3339 like 2026-12-01T12:00:00+09:00{slip}"
                    ),
                ));
                None
            }
        }
    };
    let suite_now = raw
        .now
        .as_deref()
        .and_then(|s| parse_now(s, &[Seg::Key("now")], "now", &mut errors));
    let ruleset = rules.get(&raw.ruleset).map(|r| &**r);
    let mut warnings = suite_warnings(file, &src, &raw, ruleset);
    errors.append(&mut duplicate_case_names(file, &src, &raw.cases, passes));
    let chunks = case_texts(&src, raw.cases.len());
    // The numbers the cases send as written, read in one pass over the file: finding one
    // number by its path reads the file up to it, once per number.
    let written = yaml::numbers_as_written(&src, &[Seg::Key("cases")], &sent(&raw.cases));
    let mut cases = Vec::new();
    // Where the last case's text starts and its line: the cases come in file order, so each
    // counts the line breaks from the one before (from the top for each, a file of thousands
    // of cases took seconds to load, at every reload).
    let mut line_at = (0, 1);
    for (i, c) in raw.cases.into_iter().enumerate() {
        let now = match c.now.as_deref() {
            Some(s) => parse_now(
                s,
                &[Seg::Key("cases"), Seg::Index(i), Seg::Key("now")],
                &format!("cases[{i}].now"),
                &mut errors,
            ),
            None => suite_now,
        };
        // The case's own text, where it can be told apart and reads on its own: one that uses
        // an anchor set elsewhere (`request: *v2`) does not, and places looked up in it would
        // all fall back to the case's first line.
        let chunk = chunks
            .as_ref()
            .and_then(|c| c.get(i))
            .copied()
            .filter(|text| yaml::from_str::<serde::de::IgnoredAny>(text).is_ok());
        // One number at a time, within that text where there is one.
        let (case_text, case_path) = match chunk {
            Some(chunk) => (chunk, vec![Seg::Index(0)]),
            None => (src.as_str(), vec![Seg::Key("cases"), Seg::Index(i)]),
        };
        let as_written = AsWritten {
            texts: written.as_ref(),
            case: i,
            case_text,
            case_path,
        };
        let (body, content_type) = match &c.request {
            serde_json::Value::String(s) => (s.clone().into_bytes(), None),
            v @ serde_json::Value::Object(fields) => {
                // A key of the case indented one level too deep is a field of the request, and
                // the case runs without it (on today's clock, with no canned answers).
                for key in CASE_ONLY_KEYS.iter().filter(|k| fields.contains_key(**k)) {
                    errors.push(error(
                        at(&[Seg::Key("cases"), Seg::Index(i), Seg::Key("request"), Seg::Key(key)]),
                        format!("{key}: is indented under request:, where it is a field of the request, not the case's {key}; indent it as request: is"),
                    ));
                }
                let mut json = String::new();
                as_written.json(&mut vec![Seg::Key("request")], v, &mut json);
                (json.into_bytes(), Some("application/json"))
            }
            // Refused while the shape was read (`request_body`).
            _ => continue,
        };
        if c.expect.reason.is_some() && c.expect.reason_contains.is_some() {
            errors.push(error(
                at(&[Seg::Key("cases"), Seg::Index(i), Seg::Key("expect")]),
                "give reason or reason_contains, not both".into(),
            ));
        }
        let names = CaseNames {
            src: &src,
            case: i,
            text: chunk.map(|text| {
                // A slice of `src`: its line is one more than the line breaks before it.
                let start = text.as_ptr() as usize - src.as_ptr() as usize;
                let (from, line) = if start >= line_at.0 { line_at } else { (0, 1) };
                line_at = (start, line + src[from..start].matches('\n').count());
                (text, line_at.1)
            }),
            ruleset,
        };
        for (path, message) in names.errors(&c) {
            errors.push(error(Some(path), message));
        }
        if let Some(ruleset) = ruleset {
            let req = match payload::parse(content_type, &body) {
                Ok(Parsed::Confirm(req)) => Some(req),
                _ => None,
            };
            for (path, message) in names.unused(ruleset, &c, req.as_ref()) {
                warnings.push(error(Some(path), message));
            }
        }
        let upstreams = canned_answers(file, &src, &as_written, c.upstreams, &mut errors);
        cases.push(Case {
            index: i,
            name: c.name,
            body,
            content_type,
            now,
            upstreams,
            health: c.health,
            expect: c.expect,
        });
    }
    // In the order they are written, whichever check found them.
    errors.sort_by_key(|e| e.location);
    warnings.sort_by_key(|e| e.location);
    if errors.is_empty() {
        Ok(Suite {
            file: file.to_owned(),
            ruleset: raw.ruleset,
            warnings,
            cases,
            src: src.into(),
        })
    } else {
        Err(errors)
    }
}

/// An error (or warning) at `location` in the test file `file`.
fn error_in(file: &Path, location: Option<yaml::Location>, message: String) -> LoadError {
    LoadError {
        file: file.to_owned(),
        location,
        message,
    }
}

/// What a suite proves less than it seems to: no cases at all (`0 passed, 0 failed` proves
/// nothing), or cases on today's clock for rules that depend on it, which pass or fail with
/// the date (a suite written before a sale opens starts failing, or passing wrongly, once it
/// has).
fn suite_warnings(
    file: &Path,
    src: &str,
    raw: &RawSuite,
    ruleset: Option<&Ruleset>,
) -> Vec<LoadError> {
    let at_key = |key| {
        Some(
            yaml::locate_key(src, &[Seg::Key(key)])
                .unwrap_or(yaml::Location { line: 1, column: 1 }),
        )
    };
    let mut warnings = Vec::new();
    if raw.cases.is_empty() {
        warnings.push(error_in(
            file,
            at_key("cases"),
            "no cases: this file tests nothing".to_owned(),
        ));
    }
    let unpinned = raw.cases.iter().filter(|c| c.now.is_none()).count();
    let clock_rule = ruleset.and_then(|r| r.rules.iter().find(|rule| rule.reads_clock()));
    if let (None, true, Some(rule)) = (&raw.now, unpinned > 0, clock_rule) {
        // A time inside the rule's window when it has one (a copied example time outside it
        // would fail every case), else any fixed one.
        let example = match &rule.check {
            crate::rules::Check::Window {
                from: Some(from), ..
            } => from.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            crate::rules::Check::Window {
                until: Some(until), ..
            } => (*until - chrono::Duration::hours(1))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            _ => "2026-12-01T12:00:00+09:00".to_owned(),
        };
        warnings.push(error_in(
            file,
            at_key("ruleset"),
            format!(
                "no now: {unpinned} of {} cases run on today's clock, and rule \"{}\" depends on it ({}), so they pass or fail with the date; fix the time with now: \"{example}\" at the top (or per case)",
                raw.cases.len(),
                rule.name,
                if matches!(rule.check, crate::rules::Check::Window { .. }) {
                    "a window: the now suggested is inside it"
                } else {
                    "it reads now"
                },
            ),
        ));
    }
    warnings
}

/// A case name used twice in a file, as errors: each is located by reading the file again
/// (twice), so only the first ones (as many as `passes` allows) are, the rest counted.
fn duplicate_case_names(
    file: &Path,
    src: &str,
    cases: &[RawCase],
    passes: usize,
) -> Vec<LoadError> {
    let mut errors = Vec::new();
    let mut first_named: HashMap<&str, usize> = HashMap::new();
    let mut duplicates = 0;
    let located = yaml::MAX_LOCATED.min(passes);
    for (i, c) in cases.iter().enumerate() {
        if let Some(&first) = first_named.get(c.name.as_str()) {
            duplicates += 1;
            if duplicates > located {
                continue;
            }
            let first_at = yaml::locate_written(
                src,
                &[Seg::Key("cases"), Seg::Index(first), Seg::Key("name")],
            );
            let here = [Seg::Key("cases"), Seg::Index(i), Seg::Key("name")];
            errors.push(error_in(
                file,
                Some(yaml::locate_written(src, &here)),
                format!(
                    "duplicate case name \"{}\" (also at line {}): case names are unique in a file",
                    c.name, first_at.line
                ),
            ));
        } else {
            first_named.insert(&c.name, i);
        }
    }
    if duplicates > located {
        // At the last one shown, so that it is listed after them.
        let at = errors.last().and_then(|e| e.location);
        errors.push(error_in(
            file,
            at,
            format!(
                "and {} more duplicate case names, not shown",
                duplicates - located
            ),
        ));
    }
    errors
}

/// A case's canned `upstreams` converted to answers, each body's numbers as written; what is
/// wrong in one goes to `errors`, located at the answer (at its `delay` when that is it).
fn canned_answers(
    file: &Path,
    src: &str,
    as_written: &AsWritten<'_>,
    raw: BTreeMap<String, BTreeMap<String, RawAnswer>>,
    errors: &mut Vec<LoadError>,
) -> BTreeMap<String, BTreeMap<String, CannedAnswer>> {
    let i = as_written.case;
    let mut upstreams = BTreeMap::new();
    for (up, answers) in raw {
        let mut converted = BTreeMap::new();
        for (call, mut raw) in answers {
            // Its numbers as written, as `serve` would read them from the answer's JSON
            // (`0.99999999999999999999999999999` is not the float 1.0).
            if let Some(body) = raw.body_mut() {
                let read = body.clone();
                let mut path = vec![
                    Seg::Key("upstreams"),
                    Seg::Key(&up),
                    Seg::Key(&call),
                    Seg::Key("body"),
                ];
                let mut json = String::new();
                as_written.json(&mut path, &read, &mut json);
                if let Ok(written) = serde_json::from_str(&json) {
                    *body = written;
                }
            }
            let answer_at = [
                Seg::Key("cases"),
                Seg::Index(i),
                Seg::Key("upstreams"),
                Seg::Key(&up),
                Seg::Key(&call),
            ];
            match CannedAnswer::try_from(raw) {
                Ok(answer) => {
                    converted.insert(call, answer);
                }
                // At the key at fault when one is (a delay's error names it, as it says
                // nothing of the answer; a status or body says itself what it is about).
                Err(e) => {
                    let at_path = match e.key {
                        Some(key) => [&answer_at[..], &[Seg::Key(key)]].concat(),
                        None => answer_at.to_vec(),
                    };
                    let field = if e.key == Some("delay") { ".delay" } else { "" };
                    errors.push(error_in(
                        file,
                        Some(yaml::locate(src, &at_path)),
                        format!("cases[{i}].upstreams.{up}.\"{call}\"{field}: {}", e.message),
                    ));
                }
            }
        }
        upstreams.insert(up, converted);
    }
    upstreams
}

/// The text of each of the `count` cases of a test file written the usual way — `cases:` at
/// the top level, then one block-sequence item per case, each starting with `- ` at the same
/// indentation — each a YAML document of its own (a one-item sequence); `None` for any other
/// layout (a flow sequence, say), which is then read as a whole.
fn case_texts(src: &str, count: usize) -> Option<Vec<&str>> {
    let start = src
        .match_indices("cases:")
        .find(|(at, _)| *at == 0 || src[..*at].ends_with('\n'))
        .map(|(at, _)| at)?;
    let body_start = start + src[start..].find('\n')? + 1;
    let body = &src[body_start..];
    let mut items: Vec<usize> = Vec::new();
    let mut indent: Option<usize> = None;
    let mut end = body.len();
    let mut offset = 0;
    for line in body.split_inclusive('\n') {
        let trimmed = line.trim_start_matches(' ');
        let ind = line.len() - trimmed.len();
        let blank = trimmed.trim().is_empty() || trimmed.starts_with('#');
        if !blank {
            let item = trimmed.starts_with("- ") || trimmed.trim_end() == "-";
            match indent {
                None if item => indent = Some(ind),
                None => return None,
                Some(i) if ind == i && item => {}
                // Another top-level key ends the cases.
                Some(_) if ind == 0 && !item => {
                    end = offset;
                    break;
                }
                Some(_) => {
                    offset += line.len();
                    continue;
                }
            }
            if indent == Some(ind) && item {
                items.push(offset);
            }
        }
        offset += line.len();
    }
    if items.len() != count {
        return None;
    }
    let bounds = items.iter().copied().chain(std::iter::once(end));
    Some(
        items
            .iter()
            .zip(bounds.skip(1))
            .map(|(&from, to)| &body[from..to])
            .collect(),
    )
}

/// What the cases send whose numbers are sent as written: each request, and each canned
/// answer's body, at their places in `cases`.
fn sent(cases: &[super::RawCase]) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let case = |c: &super::RawCase| {
        let upstreams: Map<String, Value> = c
            .upstreams
            .iter()
            .map(|(up, answers)| {
                let bodies = answers
                    .iter()
                    .filter_map(|(call, a)| Some((call.clone(), json!({ "body": a.body()? }))));
                (up.clone(), Value::Object(bodies.collect()))
            })
            .collect();
        json!({ "request": c.request, "upstreams": upstreams })
    };
    Value::Array(cases.iter().map(case).collect())
}

/// Where the numbers of one case are found as the file writes them: serde_yaml hands a number
/// with a fraction over as an `f64`, so `amount: 10.50` would be sent as `10.5` (and `{amount}`
/// render differently from `serve`), and `1000.000000000000000001` as `1000.0` (and pass a
/// limit that `serve` enforces).
struct AsWritten<'a> {
    /// Every fractional number of the file's cases, read in one pass (`None` when that could
    /// not be done).
    texts: Option<&'a yaml::Texts>,
    case: usize,
    /// Where to find one number at a time: the case's text and the case's path in it.
    case_text: &'a str,
    case_path: Vec<Seg<'a>>,
}

impl AsWritten<'_> {
    /// `v`, the value at `path` in the case (its `request`, a canned answer's body), as JSON,
    /// each number as written.
    fn json<'v>(&self, path: &mut Vec<Seg<'v>>, v: &'v serde_json::Value, out: &mut String) {
        use serde_json::Value;
        match v {
            Value::Object(map) => {
                out.push('{');
                for (n, (key, value)) in map.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    path.push(Seg::Key(key));
                    self.json(path, value, out);
                    path.pop();
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    path.push(Seg::Index(n));
                    self.json(path, item, out);
                    path.pop();
                }
                out.push(']');
            }
            // The text found is the number's own only if it reads as the same value.
            Value::Number(number) => match self
                .number(path, number)
                .filter(|text| text.parse::<f64>().ok() == number.as_f64())
            {
                Some(text) => out.push_str(text),
                None => out.push_str(&number.to_string()),
            },
            // A number beyond a float (`1e400`) comes from YAML as a string; written without
            // quotes it is the number `serve` would be sent.
            Value::String(s)
                if serde_json::from_str::<serde_json::Number>(s).is_ok()
                    && yaml::unquoted_at(self.case_text, &self.in_case_text(path))
                        == Some(s.as_str()) =>
            {
                out.push_str(s)
            }
            other => out.push_str(&other.to_string()),
        }
    }

    /// The text of the fractional number `n` at `path`, if it is a JSON number.
    fn number(&self, path: &[Seg<'_>], n: &serde_json::Number) -> Option<&str> {
        match self.texts {
            Some(texts) => texts.get(&[&[Seg::Index(self.case)], path].concat()),
            None => yaml::number_as_written(self.case_text, &self.in_case_text(path), n),
        }
    }

    /// `path`, a path within the case, as a path in [`Self::case_text`].
    fn in_case_text<'p>(&self, path: &[Seg<'p>]) -> Vec<Seg<'p>>
    where
        Self: 'p,
    {
        self.case_path
            .iter()
            .copied()
            .chain(path.iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_case_is_found_in_its_own_text() {
        let src = "ruleset: default\ncases:\n  - name: a\n    request: { amount: 10.50 }\n  # a comment\n\n  - name: b\n    request:\n      amount: 1e3\n      note: |\n        - not an item\nnow: \"2026-12-01T12:00:00+09:00\"\n";
        let texts = case_texts(src, 2).unwrap();
        assert_eq!(
            texts,
            [
                "  - name: a\n    request: { amount: 10.50 }\n  # a comment\n\n",
                "  - name: b\n    request:\n      amount: 1e3\n      note: |\n        - not an item\n",
            ]
        );
        // Items at the left margin, too.
        assert_eq!(
            case_texts("cases:\n- name: a\n- name: b\n", 2)
                .unwrap()
                .len(),
            2
        );
        // Another layout, or a count that does not match: the file is read as a whole.
        assert_eq!(case_texts("cases: [{ name: a }]\n", 1), None);
        assert_eq!(case_texts(src, 3), None);
        assert_eq!(case_texts("ruleset: x\n", 0), None);
    }

    /// A suite saved as `.yml` would leave `test` (and CI) green having run nothing.
    #[test]
    fn a_test_file_named_yml_is_an_error() {
        let (dir, rules) = crate::rules::load_files(&[
            ("default.yaml", RULES),
            ("tests/default.yml", "ruleset: default\ncases: []\n"),
            ("tests/ok.yaml", "ruleset: default\ncases: []\n"),
        ]);
        let errors = load_suites(dir.path(), &rules).unwrap_err();
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [format!(
                "{}:1:1: not read: rule test files end in \".yaml\" (lower case); rename it to default.yaml",
                dir.path().join("tests/default.yml").display()
            )]
        );
    }

    /// A FIFO or a link to a device named like a test file is an error, never opened (a FIFO
    /// would wait for a writer): not a suite silently left out.
    #[cfg(unix)]
    #[test]
    fn a_test_file_that_is_no_regular_file_is_an_error() {
        let (dir, rules) = crate::rules::load_files(&[
            ("default.yaml", RULES),
            ("tests/ok.yaml", "ruleset: default\ncases: []\n"),
        ]);
        let made = std::process::Command::new("mkfifo")
            .arg(dir.path().join("tests/pipe.yaml"))
            .status();
        assert!(made.is_ok_and(|s| s.success()));
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("tests/zero.yaml")).unwrap();
        let errors = load_suites(dir.path(), &rules).unwrap_err();
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let not_a_file = "cannot read: not a regular file (a FIFO, socket or device), never read";
        assert_eq!(
            lines,
            ["pipe.yaml", "zero.yaml"].map(|f| format!(
                "{}:1:1: {not_a_file}",
                dir.path().join("tests").join(f).display()
            ))
        );
    }

    /// Only `tests/*.yaml` is read: a directory of test files under it would also pass having
    /// run nothing. One without test files (fixtures) is left alone.
    #[test]
    fn a_directory_of_test_files_is_an_error() {
        let (dir, rules) = crate::rules::load_files(&[
            ("default.yaml", RULES),
            (
                "tests/sub/nested.yaml",
                "ruleset: default
cases: []
",
            ),
            ("tests/fixtures/body.json", "{}"),
            (
                "tests/ok.yaml",
                "ruleset: default
cases: []
",
            ),
        ]);
        let errors = load_suites(dir.path(), &rules).unwrap_err();
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [format!(
                "{}: not read: rule tests are the *.yaml files directly in tests/, not in a directory under it; move them up",
                dir.path().join("tests/sub").display()
            )]
        );
    }

    const RULES: &str = r#"upstreams:
  shop:
    url: "http://127.0.0.1:9"
    health: { path: /health }
  pay: { url: "http://127.0.0.1:9" }
rules:
  - name: shop-up
    healthy: shop
    reason: down
  - name: stock
    fetch: { upstream: shop, path: "/api/stock/{order_id}", query: { n: "{amount} left" } }
    reason: sold out
  - name: trial
    amount: { max: 100 }
    mode: shadow
    reason: over
  - name: existing
    forward: { upstream: shop, path: /payments/confirm }
"#;

    /// Loads `RULES` as `default` and `test` as `tests/t.yaml`: the suite's warnings, or its
    /// errors, each as `tests/t.yaml:LINE:COL: message`.
    fn load(test: &str) -> Result<Vec<String>, Vec<String>> {
        load_with(RULES, test)
    }

    /// [`load`] with other rules.
    fn load_with(rules: &str, test: &str) -> Result<Vec<String>, Vec<String>> {
        let (dir, _rules, suites) = super::super::loaded(rules, test);
        let prefix = format!("{}/", dir.path().display());
        let lines = |e: Vec<LoadError>| -> Vec<String> {
            e.iter()
                .map(|e| e.to_string().replace(&prefix, ""))
                .collect()
        };
        suites
            .map(|suites| suites.into_iter().flat_map(|s| s.warnings).collect())
            .map(lines)
            .map_err(lines)
    }

    fn errors(test: &str) -> Vec<String> {
        load(test).expect_err("the test file should be refused")
    }

    fn warnings(test: &str) -> Vec<String> {
        load(test).expect("the test file should load")
    }

    const CASE: &str = "ruleset: default\ncases:\n  - name: a\n    request: { imp_uid: i, merchant_uid: o-1, amount: 50 }\n";

    /// Expectations that no run could ever meet, or that every run meets, are errors.
    #[test]
    fn expectations_that_cannot_mean_anything_are_errors() {
        assert_eq!(
            errors(
                "ruleset: default\ncases:\n  - name: \"\"\n    request: { imp_uid: i, merchant_uid: o-1, amount: 50 }\n    expect: { decision: reject, rule: trial, status: 99, reason_contains: \"\" }\n"
            ),
            [
                "tests/t.yaml:3:11: a case needs a name (it is how failures and FILTER name it)",
                r#"tests/t.yaml:5:39: rule "trial" is not enforced, so it never decides; name it under expect.shadow, or an enforced rule here"#,
                "tests/t.yaml:5:54: status 99 is never answered: expected 200 or a refusal's 4xx or 5xx",
                r#"tests/t.yaml:5:75: reason_contains is empty, which every reason contains; give the text to look for"#,
            ]
        );
    }

    /// The statuses a case may expect: 200, and a refusal's 4xx and 5xx at both ends.
    #[test]
    fn statuses_that_can_be_answered_are_expectations() {
        for (decision, status) in [
            ("approve", 200),
            ("reject", 409),
            ("reject", 400),
            ("reject", 599),
        ] {
            warnings(&format!(
                "{CASE}    expect: {{ decision: {decision}, status: {status} }}\n"
            ));
        }
        // Trial: expectations that contradict their decision loaded, and failed every run.
        for (expect, said) in [
            (
                "decision: approve, status: 409",
                "decision: approve is answered 200, never 409",
            ),
            (
                "decision: reject, status: 200",
                "a refusal is never answered 200",
            ),
            (
                "decision: approve, reason: x",
                "decision: approve has no reason, so expect.reason",
            ),
            (
                "decision: approve, reason_contains: x",
                "decision: approve has no reason, so expect.reason_contains",
            ),
            // Verification: an ignored message's expectations were let through.
            (
                "decision: ignored, status: 409",
                "decision: ignored is answered 200, never 409",
            ),
            (
                "decision: ignored, reason: x",
                "decision: ignored has no reason, so expect.reason",
            ),
        ] {
            let errors = errors(&format!("{CASE}    expect: {{ {expect} }}\n"));
            assert_eq!(errors.len(), 1, "{expect}: {errors:?}");
            assert!(errors[0].contains(said), "{expect}: {errors:?}");
        }
        for status in [199, 201, 399, 600] {
            let errors = errors(&format!(
                "{CASE}    expect: {{ decision: reject, status: {status} }}\n"
            ));
            assert_eq!(errors.len(), 1, "{status}: {errors:?}");
            assert!(
                errors[0].contains(&format!("status {status} is never answered")),
                "{errors:?}"
            );
        }
    }

    /// A rule whose mode can never give the outcome expected of it: an enforced rule under
    /// `shadow`, a `mode: off` rule anywhere.
    #[test]
    fn expected_rules_must_be_able_to_give_the_outcome() {
        let rules = "rules:\n  - { name: limit, amount: { max: 100 }, reason: x }\n  - { name: trial, amount: { max: 10 }, reason: y, mode: shadow }\n  - { name: off1, amount: { max: 1 }, reason: z, mode: off }\n";
        assert_eq!(
            load_with(
                rules,
                "ruleset: default\ncases:\n  - name: a\n    request: { imp_uid: i, merchant_uid: o-1, amount: 50 }\n    expect: { decision: approve, rule: off1, shadow: [trial, limit, off1] }\n"
            )
            .expect_err("refused"),
            [
                r#"tests/t.yaml:5:40: rule "off1" has mode: off, so it never runs; name an enforced rule here"#,
                r#"tests/t.yaml:5:62: rule "limit" is enforced, so it has no shadow outcome; expect.shadow names shadow rules (mode: shadow) that would refuse, and expect.rule the enforced rule that decides"#,
                r#"tests/t.yaml:5:69: rule "off1" has mode: off, so it never runs; name a shadow rule here"#,
            ]
            .map(String::from)
        );
    }

    /// What is wrong inside one canned answer is reported at that answer, naming its call
    /// (every such answer of the file, not only the first).
    #[test]
    fn a_bad_canned_answer_is_named_at_its_call() {
        assert_eq!(
            errors(&format!(
                "{CASE}    upstreams:\n      shop:\n        \"GET /x\":\n          status: 200\n        \"POST /y\":\n          status: 200\n          error: dns\n      pay: {{ \"GET /z\": {{ status: 1000 }} }}\n    expect: {{ decision: approve }}\n"
            )),
            [
                r#"tests/t.yaml:10:11: cases[0].upstreams.shop."POST /y": an answer has a status or an error, not both"#,
                r#"tests/t.yaml:12:34: cases[0].upstreams.pay."GET /z": status 1000 is not an HTTP status (100 to 999)"#,
            ]
        );
    }

    /// An upstream may answer 600-999 (a fetch without `require` refuses such a status, as
    /// any non-2xx that is no 5xx): a test can say so.
    #[test]
    fn a_canned_status_of_three_digits_beyond_599_is_an_answer() {
        // Loaded, with only the warning that no call of the case asks for it.
        let warned = warnings(&format!(
            "{CASE}    upstreams:\n      shop: {{ \"GET /x\": {{ status: 600 }} }}\n    expect: {{ decision: approve }}\n"
        ));
        assert!(
            warned.len() == 1 && warned[0].contains("is never used"),
            "{warned:?}"
        );
    }

    #[test]
    fn canned_answers_for_an_upstream_the_ruleset_does_not_define_are_an_error() {
        assert_eq!(
            errors(&format!(
                "{CASE}    upstreams:\n      nope:\n        \"GET /x\": {{ status: 200 }}\n    expect: {{ decision: approve }}\n"
            )),
            ["tests/t.yaml:6:7: unknown upstream \"nope\", expected one of pay, shop"]
        );
    }

    /// A delay that is no duration is placed at the delay, not at the answer's `{`.
    #[test]
    fn a_bad_canned_delay_is_an_error_at_the_delay() {
        assert_eq!(
            errors(&format!(
                "{CASE}    upstreams:\n      shop:\n        \"GET /x\": {{ status: 200, delay: soon }}\n        \"GET /y\": {{ status: 99 }}\n    expect: {{ decision: approve }}\n"
            )),
            [
                "tests/t.yaml:7:41: cases[0].upstreams.shop.\"GET /x\".delay: invalid duration \"soon\", expected a number and a unit like 500ms, 1.5s, 4s or 1m",
                "tests/t.yaml:8:29: cases[0].upstreams.shop.\"GET /y\": status 99 is not an HTTP status (100 to 999)",
            ]
        );
        // Likewise a status no final answer has, and a body HTTP would not send, at theirs.
        assert_eq!(
            errors(&format!(
                "{CASE}    upstreams:\n      shop:\n        \"GET /x\": {{ status: 102 }}\n        \"GET /y\": {{ status: 204, body: {{ a: 1 }} }}\n    expect: {{ decision: approve }}\n"
            )),
            [
                "tests/t.yaml:7:29: cases[0].upstreams.shop.\"GET /x\": status 102 is an interim answer, which an HTTP client reads past to the final one: no rule ever sees it; give the final status (101, or 200 to 999)",
                "tests/t.yaml:8:40: cases[0].upstreams.shop.\"GET /y\": a 204 answer has no body (HTTP sends none with 204 or 304, whatever the upstream writes): leave body out",
            ]
        );
    }

    #[test]
    fn canned_calls_need_a_known_method_and_a_path() {
        assert_eq!(
            errors(&format!(
                "{CASE}    upstreams:\n      shop:\n        \"GETT /x\": {{ status: 200 }}\n        nospace: {{ status: 200 }}\n        \"GET x\": {{ status: 200 }}\n    expect: {{ decision: approve }}\n"
            )),
            [
                "tests/t.yaml:7:9: invalid canned call \"GETT /x\": unknown method \"GETT\", expected GET, POST or PUT",
                "tests/t.yaml:8:9: invalid canned call \"nospace\", expected a method and a path like \"GET /api/stock/order-1\"",
                "tests/t.yaml:9:9: invalid canned call \"GET x\", expected a method and a path like \"GET /api/stock/order-1\"",
            ]
        );
    }

    #[test]
    fn health_of_an_upstream_without_a_probe_or_not_defined_is_an_error() {
        assert_eq!(
            errors(&format!(
                "{CASE}    health: {{ shop: up, nope: up, pay: down }}\n    expect: {{ decision: approve }}\n"
            )),
            [
                "tests/t.yaml:5:25: unknown upstream \"nope\", expected one of pay, shop",
                "tests/t.yaml:5:35: upstream \"pay\" has no health probe, so no rule reads its health: leave it out of the case's health, or give the upstream a probe in the rule file (health: { path: /health }) for a healthy: pay rule",
            ]
        );
    }

    #[test]
    fn expected_rules_must_be_rules_of_the_ruleset() {
        assert_eq!(
            errors(&format!(
                "{CASE}    expect: {{ decision: reject, rule: nosuchrule, shadow: [trial, trail] }}\n"
            )),
            [
                "tests/t.yaml:5:39: unknown rule \"nosuchrule\", ruleset \"default\" has rules shop-up, stock, trial, existing",
                "tests/t.yaml:5:67: unknown rule \"trail\", ruleset \"default\" has rules shop-up, stock, trial, existing; did you mean \"trial\"?",
            ]
        );
    }

    /// A case that reads its request from an anchor another case set (`request: *r`) does not
    /// read on its own: its errors are placed by the whole file, each where it is written,
    /// not all at the case's first line.
    #[test]
    fn errors_of_a_case_using_an_anchor_are_placed_where_they_are_written() {
        assert_eq!(
            errors(
                "ruleset: default\ncases:\n  - name: a\n    request: &r { imp_uid: i, merchant_uid: o-1, amount: 50 }\n    expect: { decision: approve }\n  - name: b\n    request: *r\n    health: { shop: up, nope: down }\n    expect: { decision: reject, rule: nosuch }\n"
            ),
            [
                "tests/t.yaml:8:25: unknown upstream \"nope\", expected one of pay, shop",
                "tests/t.yaml:9:39: unknown rule \"nosuch\", ruleset \"default\" has rules shop-up, stock, trial, existing",
            ]
        );
    }

    #[test]
    fn case_names_are_unique_in_a_file() {
        assert_eq!(
            errors(&format!(
                "{CASE}    expect: {{ decision: reject }}\n  - name: b\n    request: {{ imp_uid: i, merchant_uid: o-2, amount: 50 }}\n    expect: {{ decision: reject }}\n  - name: a\n    request: {{ imp_uid: i, merchant_uid: o-3, amount: 50 }}\n    expect: {{ decision: reject }}\n"
            )),
            ["tests/t.yaml:9:11: duplicate case name \"a\" (also at line 3): case names are unique in a file"]
        );
        // A name written as an alias is placed at the alias, not at its anchor.
        assert_eq!(
            errors(&(CASE.replace("name: a", "name: &n a")
                + "    expect: { decision: reject }\n  - name: *n\n    request: { imp_uid: i, merchant_uid: o-2, amount: 50 }\n    expect: { decision: reject }\n")),
            ["tests/t.yaml:6:11: duplicate case name \"a\" (also at line 3): case names are unique in a file"]
        );
        // Audit: a shape error met through an alias was placed at the anchor, twice.
        assert_eq!(
            errors(&format!(
                "{CASE}    expect: &e {{ decision: reject, rulee: x }}\n  - name: b\n    request: {{ imp_uid: i, merchant_uid: o-2, amount: 50 }}\n    expect: *e\n"
            )),
            [
                "tests/t.yaml:5:36: cases[0].expect: unknown field \"rulee\", expected one of \"decision\", \"rule\", \"reason\", \"reason_contains\", \"status\", \"shadow\", \"errors\"; did you mean \"rule\"?",
                "tests/t.yaml:8:13: cases[1].expect: unknown field \"rulee\", expected one of \"decision\", \"rule\", \"reason\", \"reason_contains\", \"status\", \"shadow\", \"errors\"; did you mean \"rule\"?",
            ]
        );
        // Past the first 50, counted in one line after them.
        let more: String = (0..53)
            .map(|i| format!("  - name: a\n    request: {{ imp_uid: i, merchant_uid: o-{i}, amount: 50 }}\n    expect: {{ decision: reject }}\n"))
            .collect();
        let errors = errors(&format!("{CASE}    expect: {{ decision: reject }}\n{more}"));
        assert_eq!(errors.len(), 51, "{errors:?}");
        assert_eq!(
            errors[49],
            "tests/t.yaml:153:11: duplicate case name \"a\" (also at line 3): case names are unique in a file"
        );
        assert_eq!(
            errors[50],
            "tests/t.yaml:153:11: and 3 more duplicate case names, not shown"
        );
    }

    /// An approval names no refusing rule (unless the deadline may approve with one in
    /// flight, on_error: approve): such a case could never pass.
    #[test]
    fn an_approval_decided_by_a_refusing_rule_is_an_error() {
        let expect = |rule: &str| {
            format!("{CASE}    health: {{ shop: up }}\n    expect: {{ decision: approve, rule: {rule} }}\n")
        };
        assert_eq!(
            errors(&expect("stock")),
            ["tests/t.yaml:6:40: rule \"stock\" never decides an approval (only an action: approve rule does), so this case could never pass; when every rule passes, the approval names no rule: leave expect.rule out"]
        );
        let approving = format!(
            "{RULES}  - name: qa\n    when: 'order_id.starts_with(\"qa-\")'\n    action: approve\n"
        );
        assert!(load_with(&approving, &expect("qa")).is_ok());
        let fail_open = format!("settings: {{ on_error: approve }}\n{RULES}");
        assert!(load_with(&fail_open, &expect("stock")).is_ok());
    }

    /// A misspelt key of the file itself is placed at that key, wherever it is in the file.
    #[test]
    fn a_misspelt_top_key_is_placed_at_the_key() {
        assert_eq!(
            errors(&format!(
                "# the shop's cases\n{CASE}    expect: {{ decision: approve }}\ncase:\n  - name: b\n"
            )),
            ["tests/t.yaml:7:1: unknown field \"case\", expected one of \"ruleset\", \"now\", \"cases\"; did you mean \"cases\"?"]
        );
    }

    /// An empty test file, or one of comments, is said to hold no test, at its first line
    /// (not to lack `ruleset` after its last).
    #[test]
    fn an_empty_test_file_is_said_to_hold_no_test() {
        for text in ["", "# cases to come\n\n", "~\n"] {
            assert_eq!(
                errors(text),
                ["tests/t.yaml:1:1: the file holds no test: write ruleset: and cases:, or delete the file"],
                "{text:?}"
            );
        }
    }

    /// The shape errors of every case come in one run: a case that is not well-formed is left
    /// out and the file read again.
    #[test]
    fn every_case_shape_error_is_reported_at_once() {
        assert_eq!(
            errors(&format!(
                "{CASE}    health: {{ shop: upp }}\n    expect: {{ decision: approve }}\n  - name: b\n    request: {{ imp_uid: i, merchant_uid: o-2, amount: 50 }}\n    expct: {{ decision: approve }}\n  - name: c\n    request: {{ imp_uid: i, merchant_uid: o-3, amount: 50 }}\n    expect: {{ decision: approve }}\n  - name: d\n    request: {{ imp_uid: i, merchant_uid: o-4, amount: 50 }}\n    expect: {{ decision: {{ reject: true }} }}\n"
            )),
            [
                "tests/t.yaml:5:21: cases[0].health.shop: invalid value \"upp\", expected one of \"up\", \"down\", \"unknown\"; did you mean \"up\"?",
                "tests/t.yaml:9:5: cases[1]: unknown field \"expct\", expected one of \"name\", \"request\", \"now\", \"upstreams\", \"health\", \"expect\"; did you mean \"expect\"?",
                "tests/t.yaml:15:25: cases[3].expect.decision: invalid type: map, expected one of \"approve\", \"reject\", \"ignored\"",
            ]
        );
        // A request that is neither a mapping nor a string is one of them, at the value; so is
        // none at all (a review: such a case was passed over in silence).
        for (empty, column) in [("", 13), (" ~", 14)] {
            let e = errors(&format!(
                "ruleset: default\ncases:\n  - name: a\n    request:{empty}\n    expect: {{ decision: approve }}\n"
            ));
            assert_eq!(
                e,
                [format!("tests/t.yaml:4:{column}: cases[0].request: no value; write the request: a mapping (sent as JSON) or a string (sent as it is)")],
                "{empty:?}"
            );
        }
        assert_eq!(
            errors(
                "ruleset: default\ncases:\n  - name: a\n    request: [1, 2]\n    expect: { decision: approve }\n  - name: b\n    request: { imp_uid: i, merchant_uid: o-2, amount: 50 }\n    expect: { decision: aprove }\n"
            ),
            [
                "tests/t.yaml:4:14: cases[0].request: invalid type: sequence, expected a mapping (sent as JSON) or a string (sent as it is)",
                "tests/t.yaml:8:25: cases[1].expect.decision: invalid value \"aprove\", expected one of \"approve\", \"reject\", \"ignored\"; did you mean \"approve\"?",
            ]
        );
        // A repeated key (reported at the repetition) and another case's shape error: both.
        assert_eq!(
            errors(&format!(
                "{CASE}    upstreams:\n      shop:\n        \"GET /x\": {{ status: 200 }}\n        \"GET /x\": {{ status: 500 }}\n    expect: {{ decision: approve }}\n  - name: b\n    request: {{ imp_uid: i, merchant_uid: o-2, amount: 50 }}\n    expect: {{ decision: aprove }}\n"
            )),
            [
                "tests/t.yaml:8:9: cases[0].upstreams.shop: duplicate key \"GET /x\" (first at line 7): a key may appear only once in a mapping",
                "tests/t.yaml:12:25: cases[1].expect.decision: invalid value \"aprove\", expected one of \"approve\", \"reject\", \"ignored\"; did you mean \"approve\"?",
            ]
        );
        // Past the first 50, one line says the list is not all there is.
        let misspelt: String = (0..60)
            .map(|i| format!("  - name: c{i}\n    request: {{ imp_uid: i, merchant_uid: o-{i}, amount: 50 }}\n    decison: approve\n    expect: {{ decision: approve }}\n"))
            .collect();
        let errors_of_many = errors(&format!("ruleset: default\ncases:\n{misspelt}"));
        assert_eq!(errors_of_many.len(), 51, "{errors_of_many:?}");
        assert_eq!(
            errors_of_many[50],
            "tests/t.yaml:201:5: stopped reading this file after 50 errors; fix those and check again for the rest"
        );
        // Exactly 50, and nothing more to find: no such line.
        let fifty: String = misspelt.split_inclusive("  - name: c").take(51).collect();
        let fifty = fifty.trim_end_matches("  - name: c");
        let errors_of_fifty = errors(&format!("ruleset: default\ncases:\n{fifty}"));
        assert_eq!(errors_of_fifty.len(), 50, "{errors_of_fifty:?}");
        // Cases as a mapping: the list it should be.
        assert_eq!(
            errors("ruleset: default\ncases:\n  a: { request: {}, expect: { decision: approve } }\n"),
            ["tests/t.yaml:3:3: cases: invalid type: map, expected a list of cases, each starting with \"- name: …\""]
        );
    }

    /// A field the require reads that the canned body lacks, where the body has one close to
    /// it, is a warning: one side is misspelt. A field left out on purpose (no near miss) is not.
    #[test]
    fn a_canned_body_lacking_a_field_the_require_reads_by_a_slip_is_a_warning() {
        let rules = "upstreams: { shop: { url: \"http://127.0.0.1:9\" } }\nrules:\n  - name: stock\n    fetch: { upstream: shop, path: \"/stock/{order_id}\" }\n    require: 'response.status == 200 && response.body.availabe >= 1'\n    reason: 매진\n";
        let case = |body: &str| {
            format!("ruleset: default\ncases:\n  - name: a\n    request: {{ imp_uid: i, merchant_uid: o-1, amount: 50 }}\n    upstreams:\n      shop:\n        \"GET /stock/o-1\": {{ status: 200, body: {body} }}\n    expect: {{ decision: reject }}\n")
        };
        assert_eq!(
            load_with(rules, &case("{ available: 0 }")).unwrap(),
            ["tests/t.yaml:7:42: rule \"stock\" reads response.body.availabe, and this canned answer has no such field but has \"available\": one of the two is misspelt, and the case tests () instead of the answer"]
        );
        for body in ["{}", "{ sold_out: true }", "\"text\"", "{ availabe: 0 }"] {
            assert_eq!(
                load_with(rules, &case(body)).unwrap(),
                Vec::<String>::new(),
                "{body}"
            );
        }
        // A near miss the require reads too is a field of its own, and a field read with a
        // default may be left out on purpose.
        let two = "upstreams: { shop: { url: \"http://127.0.0.1:9\" } }\nrules:\n  - name: stock\n    fetch: { upstream: shop, path: \"/stock/{order_id}\" }\n    require: 'response.status == 200 && !(response.body.sold_out ?? false) && response.body.sold < 100'\n    reason: 매진\n";
        assert_eq!(
            load_with(two, &case("{ sold: 5 }")).unwrap(),
            Vec::<String>::new()
        );
        let read_twice = "upstreams: { shop: { url: \"http://127.0.0.1:9\" } }\nrules:\n  - name: stock\n    fetch: { upstream: shop, path: \"/stock/{order_id}\" }\n    require: 'response.body.sold < 100 && response.body.sold_out != true'\n    reason: 매진\n";
        assert_eq!(
            load_with(read_twice, &case("{ sold: 5 }")).unwrap(),
            Vec::<String>::new()
        );
    }

    /// A case's own key indented under `request:` is a field of the request: said, where the
    /// case would run without it (today's clock, no canned answers) or not at all.
    #[test]
    fn a_case_key_indented_under_request_is_an_error() {
        let request = "ruleset: default\ncases:\n  - name: a\n    request:\n      imp_uid: i\n      merchant_uid: o-1\n      amount: 50\n";
        assert_eq!(
            errors(&format!(
                "{request}      now: \"2026-12-10T23:59:59+09:00\"\n      health: {{ shop: up }}\n    expect: {{ decision: approve }}\n"
            )),
            [
                "tests/t.yaml:8:12: now: is indented under request:, where it is a field of the request, not the case's now; indent it as request: is",
                "tests/t.yaml:9:15: health: is indented under request:, where it is a field of the request, not the case's health; indent it as request: is",
            ]
        );
        assert_eq!(
            errors(&format!("{request}      expect: {{ decision: approve }}\n")),
            ["tests/t.yaml:3:5: cases[0]: missing field \"expect\": it is indented under request:, where it is a field of the request; indent it as request: is"]
        );
    }

    /// A decision written as a mapping or a list names the decisions, as a misspelt one does.
    #[test]
    fn a_decision_that_is_no_word_names_the_decisions() {
        assert_eq!(
            errors(&format!("{CASE}    expect: {{ decision: {{ reject: true }} }}\n")),
            ["tests/t.yaml:5:25: cases[0].expect.decision: invalid type: map, expected one of \"approve\", \"reject\", \"ignored\""]
        );
        assert_eq!(
            errors(&format!("{CASE}    expect: {{ decision: rejct }}\n")),
            ["tests/t.yaml:5:25: cases[0].expect.decision: invalid value \"rejct\", expected one of \"approve\", \"reject\", \"ignored\"; did you mean \"reject\"?"]
        );
    }

    #[test]
    fn a_repeated_key_or_call_is_an_error() {
        assert_eq!(
            errors(&format!(
                "{CASE}    upstreams:\n      shop:\n        \"GET /x\": {{ status: 200 }}\n        \"GET /x\": {{ status: 500 }}\n    expect: {{ decision: approve }}\n"
            )),
            ["tests/t.yaml:8:9: cases[0].upstreams.shop: duplicate key \"GET /x\" (first at line 7): a key may appear only once in a mapping"]
        );
        assert_eq!(
            errors("ruleset: default\ncases:\n  - name: a\n    request: { imp_uid: i, merchant_uid: o-1, amount: 50, amount: 5000 }\n    expect: { decision: approve }\n"),
            ["tests/t.yaml:4:59: cases[0].request: duplicate key \"amount\" (first at line 4): a key may appear only once in a mapping"]
        );
        assert_eq!(
            errors(&format!(
                "{CASE}    upstreams:\n      shop:\n        \"GET /api/stock/o-1?n=50+left\": {{ status: 200 }}\n        \"get  /api/stock/o-1?n=50+left\": {{ status: 500 }}\n    expect: {{ decision: approve }}\n"
            )),
            ["tests/t.yaml:8:9: canned call \"get  /api/stock/o-1?n=50+left\" is the same call as \"GET /api/stock/o-1?n=50+left\""]
        );
    }

    /// A shape error whose words hold "duplicate" (a key so named) is no repeated key: it is
    /// an error of its own, not dropped with its case. A repeated field of a case is reported
    /// once, at the repetition.
    #[test]
    fn a_shape_error_mentioning_duplicate_is_still_an_error() {
        assert_eq!(
            errors(&format!(
                "{CASE}    expect:\n      decision: approve\n      decision: reject\n"
            )),
            ["tests/t.yaml:7:7: cases[0].expect: duplicate key \"decision\" (first at line 6): a key may appear only once in a mapping"]
        );
        let errors = errors(&format!(
            "{CASE}    expect: {{ decision: approve, duplicate: 1 }}\n"
        ));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0]
                .starts_with("tests/t.yaml:5:34: cases[0].expect: unknown field \"duplicate\""),
            "{errors:?}"
        );
    }

    /// `amount: 3,000,001` in a flow mapping is the amount 3 and two keys without values: the
    /// case would test something else than its author meant.
    #[test]
    fn a_thousands_separator_in_a_request_is_an_error() {
        let hint = "write numbers without thousands separators (1000, not 1,000): inside { … } a comma ends an entry";
        assert_eq!(
            errors("ruleset: default\ncases:\n  - name: a\n    request: { imp_uid: i, merchant_uid: o-1, amount: 3,000,001 }\n    expect: { decision: reject }\n"),
            [
                format!("tests/t.yaml:4:57: cases[0].request.000: no value; {hint}"),
                format!("tests/t.yaml:4:61: cases[0].request.001: no value; {hint}"),
            ]
        );
        assert_eq!(
            errors("ruleset: default\ncases:\n  - name: a\n    request: { imp_uid: i, merchant_uid: o-1, amount: 3,000,000 }\n    expect: { decision: reject }\n"),
            [format!("tests/t.yaml:4:61: cases[0].request: duplicate key \"000\" (first at line 4): a key may appear only once in a mapping; {hint}")]
        );
        // A null a request means stays one.
        assert!(warnings("ruleset: default\ncases:\n  - name: a\n    request: { imp_uid: i, merchant_uid: o-1, amount: 50, memo: null }\n    expect: { decision: approve }\n").is_empty());
    }

    /// A key left without its value outside the JSON a case sends or stands in: a cleared
    /// `now:` would run the case on today's clock, a cleared `reason:` check nothing.
    #[test]
    fn a_key_without_a_value_is_an_error_outside_json() {
        assert_eq!(
            errors("ruleset: default\nnow:\ncases:\n  - name: a\n    request: { imp_uid: i, merchant_uid: o-1, amount: 50, memo: null }\n    upstreams: { shop: { \"GET /x\": { status: 200, body: { n: null } } } }\n    expect: { decision: approve, reason: }\n"),
            [
                "tests/t.yaml:2:1: now: no value; write one, or delete the key",
                "tests/t.yaml:7:34: cases[0].expect.reason: no value; write one, or delete the key",
            ]
        );
        assert_eq!(
            warnings("ruleset: default\ncases: []\n"),
            ["tests/t.yaml:2:1: no cases: this file tests nothing"]
        );
    }

    /// Cases without a fixed time are a warning when a rule of the ruleset depends on the
    /// clock (they pass or fail with the date), and only then.
    #[test]
    fn cases_on_todays_clock_are_a_warning_where_a_rule_reads_the_clock() {
        let case = |now: &str| {
            format!("  - name: a{now}\n    request: {{ imp_uid: i, merchant_uid: o-1, amount: 50 }}\n    expect: {{ decision: approve }}\n")
        };
        let pinned = case("-pinned\n    now: \"2026-12-01T12:00:00+09:00\"");
        let window = "rules:\n  - { name: open, window: { from: \"2026-12-10T10:00:00+09:00\" }, reason: x }\n";
        let script = "rules:\n  - { name: hours, require: 'seoul_hour(now) >= 9', reason: x }\n";
        let amount = "rules:\n  - { name: limit, amount: { max: 100 }, reason: x }\n";
        assert_eq!(
            load_with(window, &format!("ruleset: default\ncases:\n{}{pinned}", case(""))),
            Ok(vec![r#"tests/t.yaml:1:1: no now: 1 of 2 cases run on today's clock, and rule "open" depends on it (a window: the now suggested is inside it), so they pass or fail with the date; fix the time with now: "2026-12-10T10:00:00+09:00" at the top (or per case)"#.to_owned()])
        );
        let until = "rules:\n  - { name: sale, window: { until: \"2026-12-31T00:00:00+09:00\" }, reason: x }\n";
        let got = load_with(until, &format!("ruleset: default\ncases:\n{}", case(""))).unwrap();
        assert!(
            got[0].ends_with(
                r#"fix the time with now: "2026-12-30T23:00:00+09:00" at the top (or per case)"#
            ),
            "{got:?}"
        );
        assert_eq!(
            load_with(script, &format!("ruleset: default\ncases:\n{}", case(""))),
            Ok(vec![r#"tests/t.yaml:1:1: no now: 1 of 1 cases run on today's clock, and rule "hours" depends on it (it reads now), so they pass or fail with the date; fix the time with now: "2026-12-01T12:00:00+09:00" at the top (or per case)"#.to_owned()])
        );
        // Every case pinned, a time for the file, or no rule that reads the clock: no warning.
        assert_eq!(
            load_with(window, &format!("ruleset: default\ncases:\n{pinned}")),
            Ok(vec![])
        );
        assert_eq!(
            load_with(
                script,
                &format!(
                    "ruleset: default\nnow: \"2026-12-01T12:00:00+09:00\"\ncases:\n{}",
                    case("")
                )
            ),
            Ok(vec![])
        );
        assert_eq!(
            load_with(amount, &format!("ruleset: default\ncases:\n{}", case(""))),
            Ok(vec![])
        );
    }

    /// A test file nesting `[` or `{` deeper than any needs is refused before YAML reads it,
    /// as a rule file is.
    #[test]
    fn a_test_file_nested_too_deep_is_refused() {
        assert_eq!(
            errors(&format!("ruleset: default\ncases: {}", "{a: ".repeat(50_000))),
            ["tests/t.yaml:2:408: more than 100 [ and { open at once here: no rule or test file nests that deep, and YAML would take minutes to read it; close them"]
        );
    }

    /// A time that is no RFC 3339 timestamp is named by its key, the file's or a case's.
    #[test]
    fn an_invalid_time_names_its_key() {
        assert_eq!(
            errors("ruleset: default\nnow: yesterday\ncases:\n  - name: a\n    request: { imp_uid: i, merchant_uid: o-1, amount: 50 }\n    now: \"2026-13-01T00:00:00Z\"\n    expect: { decision: approve }\n"),
            [
                "tests/t.yaml:2:6: now: invalid time \"yesterday\", expected RFC 3339 like 2026-12-01T12:00:00+09:00",
                "tests/t.yaml:6:10: cases[0].now: invalid time \"2026-13-01T00:00:00Z\", expected RFC 3339 like 2026-12-01T12:00:00+09:00; a part of it is out of range: months 01-12, a day the month has, hours 00-23, minutes and seconds 00-59, an offset from -23:59 to +23:59 (+09:00 for Korean time)",
            ]
        );
    }

    /// A value of the wrong shape is told what was expected in the file's words, not by a
    /// Rust type name.
    #[test]
    fn a_misplaced_canned_answer_says_what_was_expected() {
        let e = errors(&format!(
            "{CASE}    upstreams:\n      shop:\n        \"GET /x\": 401\n    expect: {{ decision: approve }}\n"
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("expected a canned answer: a mapping with status (and body, headers, delay) or error"),
            "{e:?}"
        );
    }

    /// YAML 1.2 has no merge keys: `<<: *base` in a request would be sent as a field `<<`.
    #[test]
    fn a_merge_key_is_an_error() {
        assert_eq!(
            errors("ruleset: default\ncases:\n  - name: a\n    request: &r { imp_uid: i, merchant_uid: o-1, amount: 50 }\n    expect: { decision: approve }\n  - name: b\n    request: { <<: *r, amount: 500 }\n    expect: { decision: approve }\n"),
            ["tests/t.yaml:7:16: cases[1].request.<<: \"<<\" (a YAML merge key) is not supported: it is read as a field named \"<<\", not as the fields of its alias; write the fields out"]
        );
    }

    /// A tag is dropped from what it tags, so an expected reason typed as `!Sold out` would
    /// expect `out`: an error, as in a rule file.
    #[test]
    fn a_yaml_tag_is_an_error() {
        assert_eq!(
            errors("ruleset: default\ncases:\n  - name: a\n    request: { imp_uid: i, merchant_uid: o-1, amount: 50 }\n    expect: { decision: reject, reason: !Sold out }\n"),
            ["tests/t.yaml:5:41: cases[0].expect.reason: \"!Sold\" is read as a YAML tag, which means nothing here and is dropped from what it tags; a text that starts with \"!\" goes in quotes (\"!…\")"]
        );
    }

    /// Read from YAML, a key serde_json takes for an instruction makes a canned answer
    /// `{ available: 99 }` and a request's amount a number, where `serve` errs on the answer
    /// and refuses the payment: each is an error, at the key, however it is spelled.
    #[test]
    fn a_key_serde_json_reserves_is_an_error() {
        assert_eq!(
            errors(&format!(
                "{CASE}    upstreams:\n      shop:\n        \"GET /x\": {{ status: 200, body: {{ available: {{ \"$serde_json::private::Number\": \"99\" }} }} }}\n    expect: {{ decision: approve }}\n  - name: b\n    request: {{ imp_uid: i, merchant_uid: o-1, amount: {{ \"\\x24serde_json::private::Number\": \"50\" }} }}\n    expect: {{ decision: approve }}\n"
            )),
            [
                "tests/t.yaml:7:55: cases[0].upstreams.shop.GET /x.body.available.$serde_json::private::Number: a key starting with \"$serde_json::private::\" is read by the JSON reader here as an instruction, not as data (a payment with one is refused, an upstream answer with one is not read as JSON); rename the key",
                "tests/t.yaml:10:57: cases[1].request.amount.$serde_json::private::Number: a key starting with \"$serde_json::private::\" is read by the JSON reader here as an instruction, not as data (a payment with one is refused, an upstream answer with one is not read as JSON); rename the key",
            ]
        );
    }

    /// A syntax error in a test file gets the hint a rule file's would.
    #[test]
    fn syntax_errors_get_the_hints_of_rule_files() {
        assert_eq!(
            errors("ruleset: default\ncases:\n  - name: a\n    request: { imp_uid: i, merchant_uid: o-1, amount: 50\n    expect: { decision: approve }\n"),
            ["tests/t.yaml:5:11: did not find expected ',' or '}' (while parsing a flow mapping that starts at line 4 column 14): a flow mapping { ... } needs a \",\" between entries and a closing \"}\""]
        );
        assert_eq!(
            errors("ruleset: default\ncases:\n  - name: a\n\trequest: { imp_uid: i }\n"),
            ["tests/t.yaml:4:1: found a tab character that violates indentation (while scanning a plain scalar that starts at line 3 column 11): a tab; YAML indents with spaces only, so replace the tab with spaces"]
        );
    }

    #[test]
    fn the_ruleset_must_exist() {
        assert_eq!(
            errors("ruleset: shop\ncases: []\n"),
            [
                "tests/t.yaml:1:10: unknown ruleset \"shop\", expected one of default (the rules \
              directory has no shop.yaml: when a ruleset is removed, its test file goes with it)"
            ]
        );
        assert_eq!(
            errors("ruleset: defualt\ncases: []\n"),
            [
                "tests/t.yaml:1:10: unknown ruleset \"defualt\", expected one of default (did you \
              mean default? if defualt.yaml was removed, its test file goes with it)"
            ]
        );
        assert_eq!(
            errors("ruleset: default.yaml\ncases: []\n"),
            [
                "tests/t.yaml:1:10: unknown ruleset \"default.yaml\", expected one of default (a \
              ruleset is named without .yaml: write default)"
            ]
        );
    }

    #[test]
    fn canned_answers_the_rules_do_ask_for_load_without_warnings() {
        // As the rule renders it: the order id percent-encoded in the path, the query value
        // form-encoded. (The method's case does not matter.)
        for key in [
            "GET /api/stock/o%201?n=50+left",
            "get /api/stock/o%201?n=50+left",
        ] {
            assert_eq!(
                warnings(&format!(
                    "ruleset: default\ncases:\n  - name: a\n    request: {{ imp_uid: i, merchant_uid: o 1, amount: 50 }}\n    health: {{ shop: up }}\n    upstreams:\n      shop:\n        \"{key}\": {{ status: 200 }}\n        \"POST /payments/confirm\": {{ status: 200 }}\n    expect: {{ decision: approve }}\n"
                )),
                Vec::<String>::new(),
                "{key}"
            );
        }
    }

    #[test]
    fn canned_answers_no_rule_asks_for_are_warnings() {
        let calls = "for this request the rules of ruleset \"default\" call \"shop\" with \"GET /api/stock/o-1?n=50+left\", \"POST /payments/confirm\"";
        assert_eq!(
            warnings(&format!(
                "{CASE}    upstreams:\n      shop:\n        \"GET /api/stock/o-2?n=50+left\": {{ status: 200 }}\n        \"GET /api/stock/o-1\": {{ status: 200 }}\n        \"PUT /payments/confirm\": {{ status: 200 }}\n        \"GET /health\": {{ status: 200 }}\n      pay:\n        \"POST /x\": {{ status: 200 }}\n    expect: {{ decision: approve }}\n"
            )),
            [
                format!("tests/t.yaml:7:9: canned answer \"GET /api/stock/o-2?n=50+left\" is never used: {calls}"),
                format!("tests/t.yaml:8:9: canned answer \"GET /api/stock/o-1\" is never used: {calls}"),
                format!("tests/t.yaml:9:9: canned answer \"PUT /payments/confirm\" is never used: {calls}"),
                format!("tests/t.yaml:10:9: canned answer \"GET /health\" is never used: {calls} (rule tests make no health probes: set health: {{ shop: up }} instead)"),
                "tests/t.yaml:12:9: canned answer \"POST /x\" is never used: no rule of ruleset \"default\" calls upstream \"pay\"".to_owned(),
            ]
        );
    }

    /// A canned call written as the buyer reads the order id is the call sent where the URL
    /// parser encodes the same way (text beyond ASCII); where a placeholder's value is encoded
    /// further (`:` → `%3A`), the warning says how to write it.
    #[test]
    fn a_canned_call_written_undecoded_says_how_it_is_sent() {
        let case = |id: &str, key: &str| {
            format!("ruleset: default\ncases:\n  - name: a\n    request: {{ imp_uid: i, merchant_uid: \"{id}\", amount: 50 }}\n    health: {{ shop: up }}\n    upstreams:\n      shop:\n        \"GET /api/stock/{key}?n=50+left\": {{ status: 200 }}\n        \"POST /payments/confirm\": {{ status: 200 }}\n    expect: {{ decision: approve }}\n")
        };
        assert_eq!(warnings(&case("주문-1", "주문-1")), Vec::<String>::new());
        let sent = "GET /api/stock/%EC%A3%BC%EB%AC%B8:1?n=50+left";
        let sent = sent.replace(':', "%3A");
        assert_eq!(
            warnings(&case("주문:1", "주문:1")),
            [format!("tests/t.yaml:8:9: canned answer \"GET /api/stock/주문:1?n=50+left\" is never used: for this request the rules of ruleset \"default\" call \"shop\" with \"{sent}\", \"POST /payments/confirm\" (the call is named as it is sent, percent-encoded: write \"{sent}\")")]
        );
    }

    /// A trial: the calls a warning listed included those of rules whose simple `when` skips
    /// the case's request; such a rule makes no call, and a canned answer for it is unused.
    #[test]
    fn a_rule_whose_when_skips_the_request_makes_no_call() {
        let rules = "upstreams:\n  shop: { url: \"http://127.0.0.1:9\" }\nrules:\n  - { name: vip, when: 'order_id.starts_with(\"vip-\")', fetch: { upstream: shop, path: /seats/vip }, reason: x }\n  - { name: r, when: 'order_id.starts_with(\"r-\")', fetch: { upstream: shop, path: /seats/r }, reason: y }\n";
        let test = "ruleset: default\ncases:\n  - name: a\n    request: { imp_uid: i, merchant_uid: vip-1, amount: 50 }\n    upstreams:\n      shop:\n        \"GET /seats/vip\": { status: 200 }\n        \"GET /seats/r\": { status: 200 }\n    expect: { decision: approve }\n";
        assert_eq!(
            load_with(rules, test).expect("the test file should load"),
            ["tests/t.yaml:8:9: canned answer \"GET /seats/r\" is never used: for this request the rules of ruleset \"default\" call \"shop\" with \"GET /seats/vip\""]
        );
        // A review: with no other call, it said no rule calls the upstream at all.
        let test = test
            .replace("vip-1", "r-1")
            .replace("        \"GET /seats/r\": { status: 200 }\n", "");
        let test = test.replace("r-1", "x-1");
        assert_eq!(
            load_with(rules, &test).expect("the test file should load"),
            ["tests/t.yaml:7:9: canned answer \"GET /seats/vip\" is never used: for this request no rule of ruleset \"default\" calls upstream \"shop\" (the whens of rules \"vip\", \"r\" skip it)"]
        );
    }

    #[test]
    fn a_health_state_no_rule_reads_is_a_warning() {
        let rules = "upstreams:\n  shop: { url: \"http://127.0.0.1:9\", health: { path: /health } }\nrules:\n  - name: parked\n    healthy: shop\n    mode: off\n    reason: x\n  - name: limit\n    amount: { max: 100 }\n    reason: y\n";
        let test =
            format!("{CASE}    health: {{ shop: up }}\n    expect: {{ decision: approve }}\n");
        assert_eq!(
            load_with(rules, &test).expect("the test file should load"),
            ["tests/t.yaml:5:15: no rule of ruleset \"default\" reads the health of \"shop\" (no healthy: shop rule)"]
        );
    }
}
