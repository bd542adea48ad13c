//! Compiling one upstream of a rule file: its url and headers with `${VAR}` filled in, its
//! timeout and health probe, and its HTTP client; every error located in the file.

use std::sync::Arc;
use std::time::Duration;

use super::super::model::{RawHealth, RawUpstream};
use super::super::template::looks_like_variable;
use super::super::yaml::Seg;
use super::super::{HealthSpec, HealthState, Slots, Upstream, DEFAULT_UPSTREAM_TIMEOUT};
use super::{Env, FileCompiler};

/// The most `max_connections` an upstream may have: a limit is for protecting the merchant's
/// service, and beyond this the proxy's own open-files limit comes first.
const MAX_CONNECTIONS: u32 = 10_000;

/// The set variable `var` is a slip of: a letter or two away (one in a short name). Closer
/// than the rule files' "did you mean": variables of one service share long prefixes
/// (`SHOP_API_URL`, `SHOP_API_TOKEN`), and naming another of them would mislead.
fn misspelt(var: &str, names: Vec<String>) -> Option<String> {
    let most = (var.len() / 5).clamp(1, 2);
    names
        .into_iter()
        .map(|name| (strsim::damerau_levenshtein(var, &name), name))
        .filter(|(edits, _)| *edits <= most)
        .min()
        .map(|(_, name)| name)
}

/// Replaces `${VAR}` from the environment, or gives every problem of `s` (each unset
/// variable, not only the first). A value put in `encoded` (a byte range of `s`) is
/// percent-encoded: see [`userinfo`].
fn substitute(
    s: &str,
    env: Env<'_>,
    encoded: std::ops::Range<usize>,
    unset: Unset,
) -> Result<Substituted, Vec<String>> {
    let mut out = String::with_capacity(s.len());
    let mut placeheld = String::with_capacity(s.len());
    let mut names = Vec::new();
    let mut errors = Vec::new();
    let mut rest = s;
    let mut empty = Vec::new();
    let mut values = Vec::new();
    let mut unplain = None;
    let mut bare = Vec::new();
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        placeheld.push_str(&rest[..i]);
        bare.extend(bare_variables(&rest[..i]));
        let tail = &rest[i + 2..];
        let Some(end) = tail.find('}') else {
            errors.push("unclosed \"${\" (expected ${VARIABLE})".to_owned());
            rest = "";
            break;
        };
        let var = &tail[..end];
        if var.is_empty() || !var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            errors.push(format!("invalid variable name \"{var}\" in ${{...}}"));
        } else if let Ok(value) = env.var(var) {
            if value.is_empty() {
                empty.push(var.to_owned());
            }
            let at = s.len() - rest.len() + i;
            // A line break or space at its end (a value read from a file) is left as it is,
            // for the url check to name, rather than sent encoded as part of a password.
            let plain = value.trim() == value && !value.contains(char::is_control);
            if !plain && unplain.is_none() {
                unplain = Some(var.to_owned());
            }
            if encoded.contains(&at) && plain {
                out.extend(percent_encoding::utf8_percent_encode(
                    &value,
                    percent_encoding::NON_ALPHANUMERIC,
                ));
            } else {
                out.push_str(&value);
            }
            values.push(value);
            placeheld.push(VARIABLE_MARK);
            if !names.iter().any(|n| n == var) {
                names.push(var.to_owned());
            }
        } else if let Err(std::env::VarError::NotUnicode(_)) = env.var(var) {
            errors.push(format!("environment variable {var} is set, but its value is not UTF-8 text (a secret in another encoding, or binary data: set it as UTF-8, or as hex or base64 if the service takes that)"));
        } else if let Some(set) = [var.to_ascii_uppercase(), var.to_ascii_lowercase()]
            .into_iter()
            .find(|other| other != var && env.var(other).is_ok())
        {
            // `${shop_api_url}` for SHOP_API_URL, or the other way round: environment variable
            // names are case-sensitive.
            errors.push(format!(
                "environment variable {var} is not set; did you mean ${{{set}}}?"
            ));
        } else {
            // A slip in the name (`SHOP_API_URI` for SHOP_API_URL) is named; a variable set
            // after the proxy started is another reason it may be missing.
            let hint = match misspelt(var, env.names()) {
                Some(set) => format!("; did you mean ${{{set}}}, which is set?"),
                None => unset.hint(),
            };
            errors.push(format!("environment variable {var} is not set{hint}"));
        }
        rest = &tail[end + 1..];
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    out.push_str(rest);
    placeheld.push_str(rest);
    bare.extend(bare_variables(rest));
    Ok(Substituted {
        value: out,
        placeheld,
        names,
        empty,
        values,
        unplain,
        bare,
    })
}

/// Where a variable is not set, for what to say of it.
#[derive(Clone, Copy)]
enum Unset {
    /// In a url, loaded by `serve` at start-up or by `check`, `test`, `replay`, `eval`.
    Url,
    /// In a header, loaded so.
    Header,
    /// Anywhere, in a reload of the running proxy, which cannot see a variable set since it
    /// started.
    Reload,
}

impl Unset {
    fn hint(self) -> String {
        const READ_AT_START: &str = "the proxy reads its environment only when it starts: a variable set later needs a restart; check, test and replay make no calls, so a stand-in value does for them";
        match self {
            Unset::Url => format!(" ({READ_AT_START}: for a url, one that keeps it a URL, such as http://shop.invalid)"),
            Unset::Header => format!(" ({READ_AT_START})"),
            Unset::Reload => " in the environment the running proxy started with, the only one it reads: a variable set since needs a restart with it set, and until then no change to the rules loads (to load the others, undo the edit that added it, or move a new file out of the rules directory); the running rules stay".to_owned(),
        }
    }
}

/// What to say of a variable whose value has a space at an end or a control character: its
/// name, never its value (which may be a secret).
fn unplain_variable(var: &str) -> String {
    format!("the value of environment variable {var} has a space at an end, a line break or another control character, as a value read from a file often does")
}

/// Where a variable's value goes in [`Substituted::placeheld`].
const VARIABLE_MARK: char = '\u{0}';

/// Whether the url as the file writes it (`placeheld`) makes an http(s) URL with some values
/// of its variables: then a URL that is none is the variables' to fix; else the file's
/// (`htp://${HOST}`, `https://${HOST}:99999`), whatever they hold. The values tried: a word,
/// a number (a port), nothing (a scheme's `s`), an IPv6 address, and for a url that starts with
/// a variable a whole base URL (`${SHOP_API_URL}/v1`).
fn file_makes_a_url(placeheld: &str) -> bool {
    let base = placeheld.starts_with(VARIABLE_MARK).then_some("http://x");
    ["x", "1", "", "::1"]
        .into_iter()
        .chain(base)
        .any(|stand_in| {
            reqwest::Url::parse(&placeheld.replace(VARIABLE_MARK, stand_in))
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        })
}

/// Where in a url as written the user name and password are: from after `://` to the last
/// `@` before the path. A variable's value there is percent-encoded, as a user name or
/// password in a URL must be: a password holding `@` or `/` (`Kx9@Zq7/w`) would otherwise end
/// the user part early, and the rest of it become the host the calls go to — with the
/// credentials, and its text in DNS errors in the log.
fn userinfo(url: &str) -> std::ops::Range<usize> {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return 0..0;
    };
    let authority = &url[start..];
    let end = authority.find(['/', '?', '#']).unwrap_or(authority.len());
    match authority[..end].rfind('@') {
        Some(at) => start..start + at,
        None => 0..0,
    }
}

/// `$NAME`s and `{NAME}`s in `text` (a capital letter or `_`, then capitals, digits and
/// `_`), as written: the shell's spelling of a variable and the placeholders' one, which the
/// rules send as written — `Bearer $SHOP_API_TOKEN` would be refused by the shop on every
/// call, and a fetch without `require` tells every buyer the item is sold out.
fn bare_variables(text: &str) -> Vec<String> {
    let name_at = |from: usize| -> Option<&str> {
        let rest = &text[from..];
        let len = rest
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(rest.len());
        Some(&rest[..len]).filter(|name| looks_like_variable(name))
    };
    text.match_indices(['$', '{'])
        .filter_map(|(i, sign)| {
            let name = name_at(i + 1)?;
            if sign == "$" {
                Some(format!("${name}"))
            } else {
                let closed = text[i + 1 + name.len()..].starts_with('}');
                (closed && !text[..i].ends_with('$')).then(|| format!("{{{name}}}"))
            }
        })
        .collect()
}

/// The first `{…}` in `text` that is no `${…}` (as written in the file, before substitution).
fn braced_word(text: &str) -> Option<&str> {
    text.match_indices('{').find_map(|(i, _)| {
        if text[..i].ends_with('$') {
            return None;
        }
        let end = text[i..].find('}')?;
        Some(&text[i..=i + end])
    })
}

/// The scheme a url without `://` begins with, when it seems to name one (`htp:/shop`,
/// `ftp:shop`) rather than be a host and port with no scheme (`shop.internal:9090`,
/// `localhost:8080`).
fn other_scheme(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once(':')?;
    let port = rest.split('/').next().unwrap_or("");
    let port = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    let named = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-');
    (named && !port).then_some(scheme)
}

/// The variable name in a form [`bare_variables`] found.
fn variable_in(written: &str) -> &str {
    written.trim_start_matches(['$', '{']).trim_end_matches('}')
}

/// A value with its `${VAR}`s filled in.
struct Substituted {
    value: String,
    /// The text with each variable as [`VARIABLE_MARK`]: what the file alone makes of it (see
    /// [`file_makes_a_url`]).
    placeheld: String,
    /// The variables used, each once, in order.
    names: Vec<String>,
    /// Variables that are set but empty: most often a secret that was never filled in (an
    /// unfilled Kubernetes secret key reads as ""), which loads but sends `Bearer `.
    empty: Vec<String>,
    /// The variables' values, in order.
    values: Vec<String>,
    /// The first variable whose value has a space at an end or a control character (a value
    /// read from a file, ending in a line break): what to name when the result is refused.
    unplain: Option<String>,
    /// `$NAME`s written without braces (see [`bare_variables`]).
    bare: Vec<String>,
}

impl Substituted {
    /// Whether any part came from the environment: such a value may be a secret, never printed.
    fn secret(&self) -> bool {
        !self.values.is_empty()
    }
}

/// Shorter values are not masked in answers (see [`Upstream::secrets`]): "8443" or "v1" also
/// occur in data that is no secret, and masking them would change what rules read.
const MIN_MASKED_SECRET: usize = 6;

/// The most headers an upstream's and a fetch's `headers` may name together: a server takes
/// at most 100 (hyper's limit; more is a 431, which a fetch without `require` reads as the
/// merchant's refusal), and a call carries up to [`OWN_HEADERS`] of the proxy's own besides.
/// (Tens of thousands also overflowed the HTTP library's header map: a panic an audit found.)
pub(super) const MAX_HEADERS: usize = 100 - OWN_HEADERS;

/// The headers the proxy adds to a call: `Host`, `Accept`, `Content-Type`, `Content-Length`,
/// `Connection`, and a forward's `webhook-id`, `webhook-timestamp` and `webhook-signature`.
const OWN_HEADERS: usize = 8;

/// The error for `count` headers written where at most [`MAX_HEADERS`] may be.
pub(super) fn too_many_headers(count: usize) -> String {
    format!("{count} headers, more than the {MAX_HEADERS} a call may carry beside the proxy's own {OWN_HEADERS} (Host, Accept, Content-Type, …): servers take at most 100; send fewer")
}

/// The header names of `headers` that repeat an earlier one in another case (`x-api-key`
/// after `X-Api-Key`), each with the one it repeats: HTTP header names ignore case, so only one
/// of them would be sent, silently.
pub(super) fn repeated_headers(
    headers: &std::collections::BTreeMap<String, String>,
) -> Vec<(&str, &str)> {
    let mut seen: Vec<&str> = Vec::new();
    let mut repeated = Vec::new();
    for k in headers.keys() {
        match seen.iter().find(|s| s.eq_ignore_ascii_case(k)) {
            Some(first) => repeated.push((k.as_str(), *first)),
            None => seen.push(k),
        }
    }
    repeated
}

/// Whether the HTTP client alone may set `name`: it frames the message or manages the
/// connection, and a value from the rules would contradict what is sent (a `Content-Length`
/// that is not the body's length hangs or cuts the call).
pub(super) fn client_owned_header(name: &http::HeaderName) -> bool {
    use http::header;
    [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::CONNECTION,
        header::UPGRADE,
        header::TE,
        header::TRAILER,
    ]
    .contains(name)
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

/// The error for a header the rules may not set (see [`client_owned_header`]).
pub(super) fn client_owned_message(header: &str) -> String {
    format!("header \"{header}\" is set by the HTTP client from the message and the connection; it cannot be set in the rules")
}

/// Health probes run at most this often: a shorter interval floods the upstream with probes
/// (`interval: 1ms` is a thousand a second) and says nothing more about its health.
const MIN_PROBE_INTERVAL: Duration = Duration::from_millis(50);
const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(5);

impl FileCompiler<'_, '_> {
    /// Warnings about what `${VAR}` substitution made of upstream `name`'s `what`: variables
    /// set but empty, and `$NAME`s sent as written.
    fn substitution_warnings(
        &mut self,
        path: &[Seg<'_>],
        name: &str,
        what: &str,
        empty: &[String],
        bare: &[String],
    ) {
        for var in empty {
            self.warn(
                path,
                format_args!(
                    "upstream \"{name}\": {what}: environment variable {var} is set but empty"
                ),
            );
        }
        for written in bare {
            let var = variable_in(written);
            self.warn(path, format_args!("upstream \"{name}\": {what}: {written} is sent as written; an environment variable is read only as ${{{var}}}"));
        }
    }

    pub(super) fn upstream(
        &mut self,
        ruleset: &str,
        name: &str,
        raw: &RawUpstream,
    ) -> Option<Upstream> {
        let base = [Seg::Key("upstreams"), Seg::Key(name)];
        let at = |k: &'static str| [base[0], base[1], Seg::Key(k)];
        // Every problem of the upstream is reported (each unset variable of the url and of
        // every header, say), so an operator fixes them in one go.
        let mut secrets: Vec<Box<str>> = Vec::new();
        let url = self.upstream_url(name, raw, &mut secrets);
        let timeout = match &raw.timeout {
            Some(t) => self.duration(&at("timeout"), t),
            None => Some(DEFAULT_UPSTREAM_TIMEOUT),
        };
        let max_connections = match raw.max_connections {
            // Reported, and the load fails; the upstream's other keys are still checked.
            Some(n) if !(1..=MAX_CONNECTIONS).contains(&n) => {
                self.error(&at("max_connections"), format!("upstream \"{name}\": max_connections {n}, expected 1 to {MAX_CONNECTIONS} (the calls to it in flight at once; leave it out for no limit)"));
                None
            }
            n => n,
        };
        let headers = self.upstream_headers(name, raw, &mut secrets);
        let health = match &raw.health {
            None => Some(None),
            Some(h) => self.health_spec(name, h).map(Some),
        };
        // Only now, so every error of the upstream above is reported.
        let (Some(url), Some(timeout), Some(health)) = (url, timeout, health) else {
            return None;
        };
        let running = (self.opts.previous)
            .and_then(|rules| rules.get(ruleset))
            .and_then(|set| set.upstreams.get(name));
        // The same limit keeps its slots, which calls of the running rules hold: a reload must
        // not let twice as many in.
        let slots = max_connections.map(|max| {
            running
                .and_then(|up| up.slots.clone())
                .filter(|slots| slots.max == max)
                .unwrap_or_else(|| Slots::new(max))
        });
        // Kept with their pooled connections, unless the timeout they connect within changed.
        let clients = match running.filter(|up| up.timeout == timeout) {
            Some(up) => Ok((up.client.clone(), up.fresh.clone())),
            None => crate::upstream::http_client(true, timeout)
                .and_then(|pooled| Ok((pooled, crate::upstream::http_client(false, timeout)?))),
        };
        let (client, fresh) = match clients {
            Ok(c) => c,
            Err(e) => {
                self.error(
                    &base,
                    format!("upstream \"{name}\": cannot build HTTP client: {e}"),
                );
                return None;
            }
        };
        // Named as sent (lowercase), in the order sent.
        let written: Vec<(String, &String)> = (raw.headers.iter())
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let mut up = Upstream {
            name: name.to_owned(),
            ruleset: ruleset.into(),
            url: url.trim_end_matches('/').to_owned(),
            timeout,
            headers,
            health,
            client,
            fresh,
            state: Arc::new(HealthState::default()),
            slots,
            secrets: mask_list(secrets),
            sends: crate::upstream::digest_start(
                &raw.url,
                written.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            ),
            digest: String::new(),
        };
        up.digest = crate::upstream::fingerprint(&up, None);
        Some(up)
    }

    /// What an unset variable's error says: in a reload, that of the running proxy.
    fn unset(&self, at: Unset) -> Unset {
        if self.opts.previous.is_some() {
            Unset::Reload
        } else {
            at
        }
    }

    /// An upstream's `url`, `${VAR}`s filled in, checked to be a base that rule paths can be
    /// appended to; each problem reported. Values from variables are added to `secrets`.
    fn upstream_url(
        &mut self,
        name: &str,
        raw: &RawUpstream,
        secrets: &mut Vec<Box<str>>,
    ) -> Option<String> {
        let at = |k: &'static str| [Seg::Key("upstreams"), Seg::Key(name), Seg::Key(k)];
        let unset = self.unset(Unset::Url);
        match substitute(&raw.url, self.opts.env, userinfo(&raw.url), unset) {
            // URL parsers drop spaces and line breaks at the ends (a variable's value read from
            // a file often ends in one), so the url would load and every call then fail.
            Ok(Substituted {
                value: url,
                unplain,
                ..
            }) if url.contains(|c: char| c.is_whitespace() || c.is_control())
                && url.trim().starts_with("http") =>
            {
                let from = unplain.map_or(String::new(), |var| {
                    format!(" ({})", unplain_variable(&var))
                });
                self.error(
                    &at("url"),
                    format!("upstream \"{name}\": url has a space, line break or other control character, which no URL has{from}"),
                );
                None
            }
            // `http://{SHOP_HOST}:8080`, `http://shop/{order_id}`: braces are no part of a URL,
            // and `{…}` is filled in in a fetch's path, never in an upstream's url.
            Ok(_) if let Some(braced) = braced_word(&raw.url) => {
                let inner = &braced[1..braced.len() - 1];
                let why = if looks_like_variable(inner) {
                    format!("; an environment variable is read only as ${{{inner}}}")
                } else {
                    ": an upstream's url takes no placeholders (they go in a fetch's path) and reads environment variables as ${VAR}".to_owned()
                };
                self.error(
                    &at("url"),
                    format!("upstream \"{name}\": url: {braced} is sent as written{why}"),
                );
                None
            }
            // The value may have come from a secret variable; say what is wrong without echoing it.
            Ok(Substituted {
                value: url,
                placeheld,
                names,
                values,
                empty,
                bare,
                ..
            }) => match reqwest::Url::parse(&url) {
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
                // Basic authentication ends the user name at its first `:` (RFC 7617).
                Ok(u)
                    if percent_encoding::percent_decode_str(u.username())
                        .decode_utf8_lossy()
                        .contains(':') =>
                {
                    self.error(
                        &at("url"),
                        format!("upstream \"{name}\": url: the user name holds \":\", which Basic authentication cannot carry: the server would read the user name as ending there"),
                    );
                    None
                }
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                    // Some merchant APIs take their key in the path (`/hooks/${TOKEN}`) or as
                    // a password (`https://user:${PASSWORD}@host`).
                    secrets.extend(url_secrets(&u, &values));
                    // A value put in the host shows as the URL parser writes the host (lower
                    // case, punycode, percent-decoded) in every error naming it (`DNS lookup
                    // failed for …`): that host is masked whole.
                    if variable_in_host(&raw.url) {
                        secrets.extend(u.host_str().map(Into::into));
                    }
                    secrets.extend(values.into_iter().map(Into::into));
                    self.substitution_warnings(&at("url"), name, "url", &empty, &bare);
                    Some(url)
                }
                // The variable, not the URL it left, is what to fix.
                _ if !empty.is_empty() => {
                    for var in empty {
                        self.error(&at("url"), format!("upstream \"{name}\": url: environment variable {var} is set but empty"));
                    }
                    None
                }
                parsed => {
                    // `url: "$SHOP_API_URL"`, `url: SHOP_API_URL`: a variable misspelt; a
                    // url without its scheme (from a variable too, so the value is not shown);
                    // what the URL parser found wrong (`invalid port number`), which names no
                    // part of the value.
                    let whole = raw.url.trim();
                    // What to fix may be a variable's value, not the file: say which (never
                    // the value, which may hold a token) — when the file's text, each variable
                    // standing for a plain word, makes a URL.
                    let file_makes_one = file_makes_a_url(&placeheld);
                    let from = match names.as_slice() {
                        _ if !file_makes_one => String::new(),
                        [] => String::new(),
                        [one] => format!(" (made from environment variable {one}: fix its value)"),
                        many => format!(
                            " (made from environment variables {}: fix their values)",
                            many.join(", ")
                        ),
                    };
                    // The file's own text where it is at fault: its slip, shown, and never a
                    // variable's value.
                    let (url, parsed) = if file_makes_one || names.is_empty() {
                        (url, parsed)
                    } else {
                        let url = placeheld.replace(VARIABLE_MARK, "x");
                        let parsed = reqwest::Url::parse(&url);
                        (url, parsed)
                    };
                    let hint = match bare.first() {
                        Some(written) => format!(
                            "; an environment variable is read only as ${{{}}}, not {written}",
                            variable_in(written)
                        ),
                        None if looks_like_variable(whole) => {
                            format!("; an environment variable is read only as ${{{whole}}}")
                        }
                        None if !url.contains("://") => match other_scheme(&url) {
                            Some(scheme) if from.is_empty() => {
                                format!("; it begins \"{scheme}:\", no http:// or https://")
                            }
                            Some(_) => "; its scheme is no http:// or https://".to_owned(),
                            None => "; write its scheme too (http://… or https://…)".to_owned(),
                        },
                        None => match parsed {
                            Err(e) => format!(": {e}"),
                            // `htp://shop`: the file's scheme, shown (a variable's is not).
                            Ok(u) if from.is_empty() && !matches!(u.scheme(), "http" | "https") => {
                                format!("; its scheme \"{}\" is neither http nor https", u.scheme())
                            }
                            Ok(_) => String::new(),
                        },
                    };
                    self.error(
                        &at("url"),
                        format!("upstream \"{name}\": url is not an http:// or https:// URL{from}{hint}"),
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
        }
    }

    /// An upstream's `health` probe settings, each problem reported; `None` when one is wrong.
    fn health_spec(&mut self, name: &str, h: &RawHealth) -> Option<HealthSpec> {
        let base = [Seg::Key("upstreams"), Seg::Key(name)];
        let hp = |k: &'static str| [base[0], base[1], Seg::Key("health"), Seg::Key(k)];
        self.check_path(
            &hp("path"),
            &format!("upstream \"{name}\": health path"),
            &h.path,
        );
        // A probe belongs to no request: `{order_id}` would be sent as `%7Border_id%7D`.
        if REQUEST_PLACEHOLDERS.iter().any(|p| h.path.contains(p)) {
            self.error(
                &hp("path"),
                format!("upstream \"{name}\": health path is sent as written, for no request: placeholders such as {{order_id}} are not filled in"),
            );
        }
        if h.path.contains("${") {
            self.error(
                &hp("path"),
                format!("upstream \"{name}\": health path: ${{VAR}} is read only in the upstream's url and headers; the probe sends the upstream's headers (put a key there), or put the variable in the url"),
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
        for (key, n) in [
            ("unhealthy_after", unhealthy_after),
            ("healthy_after", healthy_after),
        ] {
            if n == 0 {
                self.error(&hp(key), format!("upstream \"{name}\": health.{key} must be at least 1 (probes in a row that decide the state)"));
            }
        }
        // `None` (a bad interval, already reported) fails the upstream.
        // Named as sent, as a fetch's call is: the trace, the decision log and replay compare it.
        interval.map(|interval| HealthSpec {
            path: crate::upstream::as_sent(&h.path).into_owned(),
            interval,
            unhealthy_after,
            healthy_after,
        })
    }

    /// An upstream's `headers`, each problem reported (the load then fails); `${VAR}` values
    /// go into `secrets`, to be masked wherever they could show.
    fn upstream_headers(
        &mut self,
        name: &str,
        raw: &RawUpstream,
        secrets: &mut Vec<Box<str>>,
    ) -> http::HeaderMap {
        let base = [Seg::Key("upstreams"), Seg::Key(name)];
        let mut headers = http::HeaderMap::new();
        if raw.headers.len() > MAX_HEADERS {
            self.error(
                &[base[0], base[1], Seg::Key("headers")],
                format!(
                    "upstream \"{name}\": {}",
                    too_many_headers(raw.headers.len())
                ),
            );
            return headers;
        }
        for (k, first) in repeated_headers(&raw.headers) {
            let hpath = [base[0], base[1], Seg::Key("headers"), Seg::Key(k)];
            self.error_at_key(&hpath, format!("upstream \"{name}\": header \"{k}\" is \"{first}\" again (header names ignore case): only one would be sent; keep one"));
        }
        for (k, v) in &raw.headers {
            let hpath = [base[0], base[1], Seg::Key("headers"), Seg::Key(k.as_str())];
            let Ok(hname) = http::HeaderName::from_bytes(k.as_bytes()) else {
                self.error_at_key(
                    &hpath,
                    format!(
                        "upstream \"{name}\": {}",
                        crate::upstream::invalid_header_name(k)
                    ),
                );
                continue;
            };
            if client_owned_header(&hname) {
                self.error_at_key(
                    &hpath,
                    format!("upstream \"{name}\": {}", client_owned_message(k)),
                );
                continue;
            }
            // Sent as written with every call and probe, for no request in particular.
            if let Some(var) = REQUEST_PLACEHOLDERS.into_iter().find(|var| v.contains(var)) {
                let var = if var.ends_with('.') {
                    "{response.body.…}"
                } else {
                    var
                };
                self.error(
                    &hpath,
                    format!("upstream \"{name}\": header \"{k}\": {var} is not filled in here: an upstream's headers are sent as written, with every call and health probe; a header filled in from the request goes in a fetch's headers"),
                );
                continue;
            }
            match substitute(v, self.opts.env, 0..0, self.unset(Unset::Header)) {
                Ok(sub) => match http::HeaderValue::from_str(&sub.value) {
                    Ok(mut hv) => {
                        self.substitution_warnings(
                            &hpath,
                            name,
                            &format!("header \"{k}\""),
                            &sub.empty,
                            &sub.bare,
                        );
                        hv.set_sensitive(sub.secret());
                        headers.insert(hname, hv);
                        secrets.extend(sub.values.into_iter().map(Into::into));
                    }
                    Err(_) => {
                        let from = sub
                            .unplain
                            .as_deref()
                            .map_or(String::new(), |var| format!(": {}", unplain_variable(var)));
                        self.error(&hpath, format!("upstream \"{name}\": header \"{k}\" has characters not allowed in a header value{from}"));
                    }
                },
                Err(errors) => {
                    for e in errors {
                        self.error(&hpath, format!("upstream \"{name}\": header \"{k}\": {e}"));
                    }
                }
            }
        }
        headers
    }
}

/// The starts of the placeholders filled in from a request or an answer: in what goes with
/// every call and probe of an upstream (its headers, its health path) they would be sent as
/// written.
const REQUEST_PLACEHOLDERS: [&str; 5] = [
    "{order_id}",
    "{tx_id}",
    "{amount}",
    "{store_id}",
    "{response.",
];

/// The parts of an upstream's url that may be secret besides the `${VAR}` values themselves
/// (`values`): its password and, when a variable filled it in, its user name — as written,
/// decoded, and as the `Authorization: Basic …` credentials the HTTP client sends for them,
/// which an upstream that echoes its request shows. (Not the path of a url a variable gives
/// whole: `/api/v1` is no secret, and masking it would change answers rules read, such as a
/// `next` link; a token in the path goes in a variable of its own, `/hooks/${TOKEN}`.)
fn url_secrets(url: &reqwest::Url, values: &[String]) -> Vec<Box<str>> {
    use base64::Engine;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|d| d.into_owned())
            .unwrap_or_else(|_| s.to_owned())
    };
    let mut secrets: Vec<Box<str>> = Vec::new();
    let from_variable = |part: &str| !part.is_empty() && values.iter().any(|v| v.contains(part));
    let (user, password) = (url.username(), url.password());
    if from_variable(user) {
        secrets.extend([user.into(), decode(user).into()]);
    }
    if let Some(password) = password {
        secrets.extend([password.into(), decode(password).into()]);
    }
    if !user.is_empty() || password.is_some() {
        let credentials = format!(
            "{}:{}",
            decode(user),
            password.map(decode).unwrap_or_default()
        );
        secrets.push(
            base64::engine::general_purpose::STANDARD
                .encode(credentials)
                .into(),
        );
    }
    secrets
}

/// Whether a `${VAR}` is part of the host of the url written as `url` (`https://${SHOP_ID}.api`),
/// not of its user, path or the whole url.
fn variable_in_host(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    // Without the port (`shop:${PORT}`), which is no part of the host; an IPv6 host keeps
    // its colons inside brackets.
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    host.contains("${")
}

/// The secrets worth masking, longest first: a token that holds a shorter one is masked whole.
fn mask_list(mut secrets: Vec<Box<str>>) -> Arc<[memchr::memmem::Finder<'static>]> {
    secrets.retain(|s| s.chars().count() >= MIN_MASKED_SECRET);
    secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    secrets.dedup();
    secrets
        .iter()
        .map(|s| memchr::memmem::Finder::new(s.as_bytes()).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::misspelt;

    #[test]
    fn a_slip_of_a_set_name_is_found_and_a_sibling_is_not() {
        let set = || {
            ["SHOP_API_URL", "SHOP_API_TOKEN", "HOME", "PATH"]
                .map(String::from)
                .to_vec()
        };
        for (slip, meant) in [
            ("SHOP_API_URI", "SHOP_API_URL"),
            ("SHOP_APIURL", "SHOP_API_URL"),
            ("SHOP_API_TOKN", "SHOP_API_TOKEN"),
            ("HOEM", "HOME"),
        ] {
            assert_eq!(misspelt(slip, set()).as_deref(), Some(meant), "{slip}");
        }
        for other in ["SHOP_API_KEY", "SHOP_URL", "TOKEN", "PAY"] {
            assert_eq!(misspelt(other, set()), None, "{other}");
        }
    }
}
