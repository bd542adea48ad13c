//! Standard Webhooks verification (`webhook-id`, `webhook-timestamp`, `webhook-signature`),
//! the scheme PortOne V2 signs its requests with. Pure: headers, body and the current time in,
//! a reasoned verdict out.

use std::fmt;
use std::time::Duration;

use axum::http::HeaderMap;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

const ID_HEADER: &str = "webhook-id";
/// The longest `webhook-id` taken: senders' ids are a few dozen characters, and each one is
/// logged whole and remembered for repeats.
const MAX_ID_LEN: usize = 256;
const TIMESTAMP_HEADER: &str = "webhook-timestamp";
const SIGNATURE_HEADER: &str = "webhook-signature";
const SECRET_PREFIX: &str = "whsec_";
/// The shortest key taken. Standard Webhooks secrets are 24 to 64 bytes; a key much shorter
/// than that (a truncated copy, `whsec_QQ==`) could be found from one signed request by trying
/// every value, and then any request could be forged. Below the spec's 24 only by a margin,
/// so that no secret a sender issues is refused.
const MIN_SECRET_BYTES: usize = 16;
/// A secret's base64, with or without its `=` padding: a copy that lost it is still the key.
const SECRET_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);
const V1_PREFIX: &[u8] = b"v1,";
const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// A signing secret. Holds the HMAC already keyed, so each verification only clones it
/// instead of re-deriving the padded key blocks.
#[derive(Clone)]
pub struct WebhookSecret {
    keyed: HmacSha256,
}

impl WebhookSecret {
    /// Parses `whsec_<base64>`, or the base64 alone: PortOne's own server SDK takes either,
    /// and its examples show the bare form. Errors say what is wrong but never include the
    /// secret. Surrounding whitespace is ignored because secrets read from files
    /// or environment variables often carry a trailing newline.
    pub fn parse(s: &str) -> Result<WebhookSecret, SecretError> {
        if s.trim().is_empty() {
            return Err(SecretError::Blank);
        }
        let encoded = s.trim();
        // `"whsec_…"` from an env file whose tool keeps quotes as part of the value.
        if encoded.starts_with(['"', '\'']) || encoded.ends_with(['"', '\'']) {
            return Err(SecretError::Quoted);
        }
        let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
        let key = SECRET_BASE64
            .decode(encoded)
            .map_err(|_| SecretError::InvalidBase64)?;
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        if key.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort { bytes: key.len() });
        }
        if key.iter().all(|&b| b == key[0]) {
            return Err(SecretError::Placeholder);
        }
        // HMAC accepts keys of any length, so this cannot fail in practice; mapping the error
        // keeps parsing free of panics.
        let keyed = HmacSha256::new_from_slice(&key).map_err(|_| SecretError::InvalidKey)?;
        Ok(WebhookSecret { keyed })
    }

    /// Whether `other` is the same key, however it was written (with or without `whsec_`,
    /// padded or not): the two sign a fixed message alike.
    pub fn same_key_as(&self, other: &WebhookSecret) -> bool {
        self.mac(b"", b"", b"") == other.mac(b"", b"", b"")
    }

    fn mac(&self, msg_id: &[u8], timestamp: &[u8], body: &[u8]) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        for part in [msg_id, b".", timestamp, b".", body] {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

/// Why a `whsec_...` string could not be used. Never carries any part of the secret.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// `CONFIRM_PROXY_WEBHOOK_SECRET=whsec_…,`: the list's empty last item.
    #[error("a webhook secret is empty (an empty --webhook-secret, or a comma too many in CONFIRM_PROXY_WEBHOOK_SECRET?)")]
    Blank,
    #[error("webhook secret is not valid base64 (after its {SECRET_PREFIX} prefix, if any)")]
    InvalidBase64,
    #[error("webhook secret starts or ends with a quote, which is no part of a secret: an env file read by a tool that keeps quotes (docker --env-file, systemd EnvironmentFile with inner quotes) passes them on; write the secret there without quotes")]
    Quoted,
    #[error("webhook secret is empty after {SECRET_PREFIX}")]
    Empty,
    #[error("webhook secret is only {bytes} bytes (base64-decoded), too short to keep signatures from being forged; Standard Webhooks secrets are 24 to 64 bytes: copy the whole secret PortOne issued")]
    TooShort { bytes: usize },
    #[error("webhook secret's bytes are all the same (a placeholder such as {SECRET_PREFIX}AAAA…?): use the secret PortOne issued")]
    Placeholder,
    #[error("webhook secret cannot be used as an hmac-sha256 key")]
    InvalidKey,
}

/// Signs like a Standard Webhooks sender would, returning one `v1,<base64>` entry.
pub fn sign(secret: &WebhookSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = secret.mac(msg_id.as_bytes(), timestamp.to_string().as_bytes(), body);
    format!("v1,{}", BASE64.encode(mac))
}

/// Checks requests against a set of secrets; more than one lets a secret be rotated without
/// rejecting requests signed with the old one.
#[derive(Debug, Clone)]
pub struct Verifier {
    secrets: Vec<WebhookSecret>,
    tolerance: Duration,
}

impl Verifier {
    pub fn new(secrets: Vec<WebhookSecret>) -> Self {
        Verifier {
            secrets,
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    /// How many secrets it checks against.
    pub fn secrets(&self) -> usize {
        self.secrets.len()
    }

    /// The ±5 minutes of Standard Webhooks are not an operator's choice; tests try others.
    #[cfg(test)]
    pub fn with_tolerance(self, tolerance: Duration) -> Self {
        Verifier { tolerance, ..self }
    }

    /// `now_unix` is seconds since the epoch (passed in so tests are deterministic).
    pub fn verify<'h>(
        &self,
        headers: &'h HeaderMap,
        body: &[u8],
        now_unix: i64,
    ) -> Result<Signed<'h>, VerifyError> {
        // An empty id counts as missing, as in the reference implementations: the id is what
        // tells a retry from a replay.
        let msg_id = Some(header(headers, ID_HEADER)?)
            .filter(|id| !id.is_empty())
            .ok_or(VerifyError::MissingHeader(ID_HEADER))?;
        // Ids are printable ASCII (`msg_2KWP…`). Any other byte would be shown as `�` in the
        // logs and the decision log, where two ids that differ must be told apart.
        if msg_id.len() > MAX_ID_LEN || !msg_id.iter().all(u8::is_ascii_graphic) {
            return Err(VerifyError::BadId);
        }
        let raw_timestamp = header(headers, TIMESTAMP_HEADER)?;
        let signatures = header(headers, SIGNATURE_HEADER)?;

        let timestamp = parse_timestamp(raw_timestamp)?;
        self.check_freshness(timestamp, now_unix)?;

        let candidates = v1_signatures(signatures);
        // The raw timestamp bytes are what the sender signed, so they are hashed as received.
        let matched = self.secrets.iter().position(|secret| {
            let expected = secret.mac(msg_id, raw_timestamp, body);
            candidates
                .iter()
                .any(|candidate| bool::from(candidate.as_slice().ct_eq(&expected)))
        });
        match matched {
            Some(secret) => Ok(Signed {
                id: msg_id,
                valid_until: timestamp.saturating_add_unsigned(self.tolerance.as_secs()),
                secret,
            }),
            None => Err(VerifyError::NoMatchingSignature),
        }
    }

    fn check_freshness(&self, timestamp: i64, now_unix: i64) -> Result<(), VerifyError> {
        // i128 so that extreme inputs cannot overflow the subtraction or the tolerance cast.
        let age = i128::from(now_unix) - i128::from(timestamp);
        let tolerance = i128::from(self.tolerance.as_secs());
        if age > tolerance {
            Err(VerifyError::TooOld)
        } else if age < -tolerance {
            // A sender's slip worth naming: Unix time in milliseconds, which reads as a time
            // thousands of years ahead.
            let as_seconds = i128::from(timestamp / 1000);
            if (i128::from(now_unix) - as_seconds).abs() <= tolerance {
                return Err(VerifyError::InMilliseconds);
            }
            Err(VerifyError::TooNew)
        } else {
            Ok(())
        }
    }
}

/// A message whose signature held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signed<'h> {
    /// Its `webhook-id`: the same for every delivery of one message, retries included.
    pub id: &'h [u8],
    /// The last second (Unix time) at which its signature still verifies: after it, a copy is
    /// refused as too old whatever else is remembered about it.
    pub valid_until: i64,
    /// Which secret verified it (0 for the first given): a rotation is over once the old one
    /// verifies nothing more.
    pub secret: usize,
}

/// The one value of `name`. Given twice, which one counts is up to each reader, and a
/// `forward` passes both on to the merchant, whose own check may read the other: refused.
fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a [u8], VerifyError> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Ok(value.as_bytes()),
        (None, _) => Err(VerifyError::MissingHeader(name)),
        (Some(_), Some(_)) => Err(VerifyError::RepeatedHeader(name)),
    }
}

/// What a request whose signature was refused claims, for its log line and record: its
/// `webhook-id` when it is one an id can be (printable ASCII, at most 256 characters), and how
/// many seconds its `webhook-timestamp` lies before `now_unix` (negative: after). An operator
/// tells a sender's clock adrift from a wrong secret, and finds the message at its sender.
pub fn claimed(headers: &HeaderMap, now_unix: i64) -> (Option<String>, Option<i64>) {
    let id = header(headers, ID_HEADER).ok().filter(|id| {
        !id.is_empty() && id.len() <= MAX_ID_LEN && id.iter().all(u8::is_ascii_graphic)
    });
    let age = header(headers, TIMESTAMP_HEADER)
        .ok()
        .and_then(|raw| parse_timestamp(raw).ok())
        .map(|t| now_unix.saturating_sub(t));
    (id.map(|id| String::from_utf8_lossy(id).into_owned()), age)
}

/// Only plain digits are accepted: `i64::from_str` would also take a sign, which no sender emits.
fn parse_timestamp(raw: &[u8]) -> Result<i64, VerifyError> {
    if raw.is_empty() || !raw.iter().all(u8::is_ascii_digit) {
        return Err(VerifyError::BadTimestamp);
    }
    std::str::from_utf8(raw)
        .ok()
        .and_then(|digits| digits.parse().ok())
        .ok_or(VerifyError::BadTimestamp)
}

/// Decoded `v1` MACs. Other versions and undecodable entries are skipped rather than rejected
/// so that senders can add new schemes alongside `v1`.
fn v1_signatures(header: &[u8]) -> Vec<Vec<u8>> {
    header
        .split(|&byte| byte == b' ')
        .filter_map(|entry| entry.strip_prefix(V1_PREFIX))
        .filter_map(|encoded| BASE64.decode(encoded).ok())
        .collect()
}

#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("header {0} given more than once")]
    RepeatedHeader(&'static str),
    #[error("webhook-id is not printable ASCII of at most {MAX_ID_LEN} characters")]
    BadId,
    #[error("webhook-timestamp is not an integer number of seconds")]
    BadTimestamp,
    #[error("timestamp is older than the allowed tolerance")]
    TooOld,
    #[error("timestamp is further in the future than the allowed tolerance")]
    TooNew,
    #[error("webhook-timestamp is in milliseconds, expected seconds since 1970")]
    InMilliseconds,
    #[error("no matching signature")]
    NoMatchingSignature,
}

impl VerifyError {
    /// Short Korean text safe to show to the buyer. The timestamp texts name no number of
    /// minutes: tests try other tolerances.
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::MissingHeader(ID_HEADER) => "서명 헤더(webhook-id)가 없습니다",
            VerifyError::MissingHeader(TIMESTAMP_HEADER) => {
                "서명 헤더(webhook-timestamp)가 없습니다"
            }
            VerifyError::MissingHeader(SIGNATURE_HEADER) => {
                "서명 헤더(webhook-signature)가 없습니다"
            }
            VerifyError::MissingHeader(_) => "서명 헤더가 없습니다",
            VerifyError::RepeatedHeader(_) => "서명 헤더가 두 번 이상 있습니다",
            VerifyError::BadId => "서명 헤더(webhook-id)가 올바르지 않습니다",
            VerifyError::BadTimestamp => "서명 시각(webhook-timestamp)이 올바른 숫자가 아닙니다",
            VerifyError::TooOld => "서명 시각이 허용 범위를 벗어났습니다(너무 오래됨)",
            VerifyError::TooNew => "서명 시각이 허용 범위를 벗어났습니다(미래 시각)",
            VerifyError::InMilliseconds => {
                "서명 시각(webhook-timestamp)이 초 단위가 아닙니다(밀리초)"
            }
            VerifyError::NoMatchingSignature => "서명이 올바르지 않습니다",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use axum::http::{HeaderName, HeaderValue};
    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/testdata/webhook-signatures.json"
    );

    #[derive(Deserialize)]
    struct Fixture {
        secret: String,
        tolerance_seconds: u64,
        cases: Vec<Case>,
    }

    #[derive(Deserialize)]
    struct Case {
        name: String,
        headers: BTreeMap<String, String>,
        body: String,
        now: i64,
        valid: bool,
    }

    fn secret(s: &str) -> WebhookSecret {
        WebhookSecret::parse(s).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                )
            })
            .collect()
    }

    fn signed_headers(secret: &WebhookSecret, id: &str, ts: i64, body: &[u8]) -> HeaderMap {
        headers(&[
            (ID_HEADER, id),
            (TIMESTAMP_HEADER, &ts.to_string()),
            (SIGNATURE_HEADER, &sign(secret, id, ts, body)),
        ])
    }

    const SECRET_A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SECRET_B: &str = "whsec_c3RhbmRhcmQtd2ViaG9va3MtaW50ZXJvcC1rZXkhISE=";
    const TS: i64 = 1_714_039_200;
    const BODY: &[u8] = br#"{"type":"Transaction.Confirm"}"#;

    #[test]
    fn fixture_cases_verify_as_expected() {
        let text = std::fs::read_to_string(FIXTURE).unwrap_or_else(|e| panic!("{FIXTURE}: {e}"));
        let fixture: Fixture = serde_json::from_str(&text).unwrap();
        let verifier = Verifier::new(vec![secret(&fixture.secret)])
            .with_tolerance(Duration::from_secs(fixture.tolerance_seconds));
        assert!(!fixture.cases.is_empty());
        for case in &fixture.cases {
            let pairs: Vec<(&str, &str)> = case
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let result = verifier
                .verify(&headers(&pairs), case.body.as_bytes(), case.now)
                .map(|_| ());
            assert_eq!(
                result.is_ok(),
                case.valid,
                "case {:?}: got {result:?}",
                case.name
            );
        }
    }

    #[test]
    fn matches_python_standard_library() {
        // Reproduce with:
        // python3 -c 'import hmac,hashlib,base64;print("v1,"+base64.b64encode(hmac.new(base64.b64decode("c3RhbmRhcmQtd2ViaG9va3MtaW50ZXJvcC1rZXkhISE="),b"msg_interop.1700000000.{\"amount\":1000,\"name\":\"\xed\x95\x9c\"}",hashlib.sha256).digest()).decode())'
        const EXPECTED: &str = "v1,bs8XA+Kp2oKVln4uaviu2bc6X3sUFziBurb9d94jHNA=";
        let body = "{\"amount\":1000,\"name\":\"한\"}".as_bytes();
        let key = secret(SECRET_B);
        assert_eq!(sign(&key, "msg_interop", 1_700_000_000, body), EXPECTED);

        let request = headers(&[
            (ID_HEADER, "msg_interop"),
            (TIMESTAMP_HEADER, "1700000000"),
            (SIGNATURE_HEADER, EXPECTED),
        ]);
        assert_eq!(
            Verifier::new(vec![key])
                .verify(&request, body, 1_700_000_000)
                .map(|_| ()),
            Ok(())
        );
    }

    #[test]
    fn sign_then_verify_round_trips() {
        let key = secret(SECRET_A);
        let request = signed_headers(&key, "msg_1", TS, BODY);
        assert_eq!(
            Verifier::new(vec![key])
                .verify(&request, BODY, TS)
                .map(|_| ()),
            Ok(())
        );
    }

    #[test]
    fn any_secret_in_rotation_is_accepted() {
        let verifier = Verifier::new(vec![secret(SECRET_A), secret(SECRET_B)]);
        for key in [SECRET_A, SECRET_B] {
            let request = signed_headers(&secret(key), "msg_1", TS, BODY);
            assert_eq!(
                verifier.verify(&request, BODY, TS).map(|_| ()),
                Ok(()),
                "{key}"
            );
        }
    }

    #[test]
    fn no_secrets_matches_nothing() {
        let request = signed_headers(&secret(SECRET_A), "msg_1", TS, BODY);
        assert_eq!(
            Verifier::new(vec![]).verify(&request, BODY, TS),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn each_missing_header_is_named() {
        let key = secret(SECRET_A);
        let verifier = Verifier::new(vec![key.clone()]);
        for missing in [ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER] {
            let mut request = signed_headers(&key, "msg_1", TS, BODY);
            request.remove(missing);
            assert_eq!(
                verifier.verify(&request, BODY, TS),
                Err(VerifyError::MissingHeader(missing))
            );
        }
    }

    /// A header given twice is refused even when one of its values verifies: a forward would
    /// pass both to the merchant, whose check may read the other one.
    #[test]
    fn each_repeated_header_is_refused() {
        let key = secret(SECRET_A);
        let verifier = Verifier::new(vec![key.clone()]);
        for repeated in [ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER] {
            let mut request = signed_headers(&key, "msg_1", TS, BODY);
            let again = request[repeated].clone();
            request.append(repeated, again);
            assert_eq!(
                verifier.verify(&request, BODY, TS),
                Err(VerifyError::RepeatedHeader(repeated))
            );
        }
    }

    #[test]
    fn an_empty_header_counts_as_missing() {
        let key = secret(SECRET_A);
        let verifier = Verifier::new(vec![key.clone()]);
        // Signed over an empty id, so only the emptiness can refuse it.
        let request = signed_headers(&key, "", TS, BODY);
        assert_eq!(
            verifier.verify(&request, BODY, TS),
            Err(VerifyError::MissingHeader(ID_HEADER))
        );
    }

    /// An id that is not printable ASCII, or too long, is refused even when signed: in the
    /// logs two such ids could not be told apart.
    #[test]
    fn an_id_must_be_printable_ascii_of_bounded_length() {
        let key = secret(SECRET_A);
        let verifier = Verifier::new(vec![key.clone()]);
        let signed_as = |id: &[u8]| {
            let mac = key.mac(id, TS.to_string().as_bytes(), BODY);
            let mut h = headers(&[
                (TIMESTAMP_HEADER, &TS.to_string()),
                (SIGNATURE_HEADER, &format!("v1,{}", BASE64.encode(mac))),
            ]);
            h.insert(ID_HEADER, HeaderValue::from_bytes(id).unwrap());
            verifier.verify(&h, BODY, TS).map(|m| m.id.to_vec())
        };
        let longest = "m".repeat(MAX_ID_LEN);
        assert_eq!(
            signed_as(longest.as_bytes()),
            Ok(longest.clone().into_bytes())
        );
        assert_eq!(signed_as(b"msg_2KWPBgLl"), Ok(b"msg_2KWPBgLl".to_vec()));
        let too_long = format!("{longest}m");
        for id in [
            &b"msg_\xfe\xffq"[..],
            b"msg_\xc0\xc1q",
            b"msg 1",
            b"msg_\t1",
            too_long.as_bytes(),
        ] {
            assert_eq!(signed_as(id), Err(VerifyError::BadId), "{id:?}");
        }
    }

    #[test]
    fn header_names_are_case_insensitive() {
        let key = secret(SECRET_A);
        let signature = sign(&key, "msg_1", TS, BODY);
        let request = headers(&[
            ("Webhook-Id", "msg_1"),
            ("WEBHOOK-TIMESTAMP", "1714039200"),
            ("Webhook-Signature", &signature),
        ]);
        assert_eq!(
            Verifier::new(vec![key])
                .verify(&request, BODY, TS)
                .map(|_| ()),
            Ok(())
        );
    }

    #[test]
    fn non_numeric_timestamps_are_rejected() {
        let key = secret(SECRET_A);
        let verifier = Verifier::new(vec![key.clone()]);
        let signature = sign(&key, "msg_1", TS, BODY);
        for ts in [
            "",
            "abc",
            "1714039200.5",
            "+1714039200",
            "-1",
            " 1714039200",
            "99999999999999999999",
        ] {
            let request = headers(&[
                (ID_HEADER, "msg_1"),
                (TIMESTAMP_HEADER, ts),
                (SIGNATURE_HEADER, &signature),
            ]);
            assert_eq!(
                verifier.verify(&request, BODY, TS),
                Err(VerifyError::BadTimestamp),
                "{ts:?}"
            );
        }
    }

    #[test]
    fn tolerance_bounds_are_inclusive() {
        let key = secret(SECRET_A);
        let request = signed_headers(&key, "msg_1", TS, BODY);
        let verifier = Verifier::new(vec![key]);
        assert_eq!(
            verifier.verify(&request, BODY, TS + 300).map(|_| ()),
            Ok(())
        );
        assert_eq!(
            verifier.verify(&request, BODY, TS - 300).map(|_| ()),
            Ok(())
        );
        assert_eq!(
            verifier.verify(&request, BODY, TS + 301),
            Err(VerifyError::TooOld)
        );
        assert_eq!(
            verifier.verify(&request, BODY, TS - 301),
            Err(VerifyError::TooNew)
        );
        // Milliseconds by mistake: named, within the tolerance of the seconds they stand for.
        let request = signed_headers(&secret(SECRET_A), "msg_1", TS * 1000 + 999, BODY);
        for now in [TS - 300, TS, TS + 300] {
            assert_eq!(
                verifier.verify(&request, BODY, now),
                Err(VerifyError::InMilliseconds)
            );
        }
        assert_eq!(
            verifier.verify(&request, BODY, TS - 301),
            Err(VerifyError::TooNew)
        );
    }

    /// What a verified message tells its receiver: the id that all its deliveries share, and
    /// the last second at which a copy of it would still pass (the bound of
    /// [`tolerance_bounds_are_inclusive`]).
    #[test]
    fn a_verified_message_names_its_id_and_how_long_it_stays_valid() {
        let key = secret(SECRET_A);
        let request = signed_headers(&key, "msg_1", TS, BODY);
        let verifier = Verifier::new(vec![key]);
        let signed = verifier.verify(&request, BODY, TS).unwrap();
        assert_eq!(signed.id, b"msg_1");
        assert_eq!(signed.valid_until, TS + 300);
        assert!(verifier.verify(&request, BODY, signed.valid_until).is_ok());
        assert!(verifier
            .verify(&request, BODY, signed.valid_until + 1)
            .is_err());
        let huge = verifier.with_tolerance(Duration::MAX);
        assert_eq!(
            huge.verify(&request, BODY, TS).unwrap().valid_until,
            i64::MAX
        );
    }

    #[test]
    fn custom_tolerance_is_used() {
        let key = secret(SECRET_A);
        let request = signed_headers(&key, "msg_1", TS, BODY);
        let verifier = Verifier::new(vec![key]).with_tolerance(Duration::from_secs(10));
        assert_eq!(verifier.verify(&request, BODY, TS + 10).map(|_| ()), Ok(()));
        assert_eq!(
            verifier.verify(&request, BODY, TS + 11),
            Err(VerifyError::TooOld)
        );
        let huge = verifier.with_tolerance(Duration::MAX);
        assert_eq!(huge.verify(&request, BODY, i64::MIN).map(|_| ()), Ok(()));
    }

    #[test]
    fn malformed_signature_entries_are_skipped() {
        let key = secret(SECRET_A);
        let verifier = Verifier::new(vec![key.clone()]);
        let good = sign(&key, "msg_1", TS, BODY);
        let with = |signature: &str| {
            let request = headers(&[
                (ID_HEADER, "msg_1"),
                (TIMESTAMP_HEADER, "1714039200"),
                (SIGNATURE_HEADER, signature),
            ]);
            verifier.verify(&request, BODY, TS).map(|_| ())
        };
        assert_eq!(
            with(&format!("v1,!!notbase64!! v2,xyz v1 , {good}")),
            Ok(())
        );
        assert_eq!(with(&format!("  {good}  ")), Ok(()));
        for bad in [
            "",
            "v1,",
            "v1,!!notbase64!!",
            "v1,AAAA",
            "v2,xyz",
            "v1",
            ",",
        ] {
            assert_eq!(with(bad), Err(VerifyError::NoMatchingSignature), "{bad:?}");
        }
        // The same MAC under another version label must not count as v1.
        let relabelled = good.replacen("v1,", "v2,", 1);
        assert_eq!(with(&relabelled), Err(VerifyError::NoMatchingSignature));
    }

    #[test]
    fn tampering_is_detected() {
        let key = secret(SECRET_A);
        let verifier = Verifier::new(vec![key.clone()]);
        let request = signed_headers(&key, "msg_1", TS, BODY);
        assert_eq!(
            verifier.verify(&request, b"{}", TS),
            Err(VerifyError::NoMatchingSignature)
        );
        let mut other_id = request.clone();
        other_id.insert(ID_HEADER, HeaderValue::from_static("msg_2"));
        assert_eq!(
            verifier.verify(&other_id, BODY, TS),
            Err(VerifyError::NoMatchingSignature)
        );
        // Leading zeros keep the numeric value but change the signed bytes.
        let mut padded_ts = request;
        padded_ts.insert(TIMESTAMP_HEADER, HeaderValue::from_static("01714039200"));
        assert_eq!(
            verifier.verify(&padded_ts, BODY, TS),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn secret_parsing_errors() {
        let cases = [
            // Not the prefix: `_` is no base64 character.
            (
                "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                SecretError::InvalidBase64,
            ),
            ("MfKQ9r8GKYqrTwjUPD8I", SecretError::TooShort { bytes: 15 }),
            (
                "whsec_MfKQ9r8G*KYqrTwjUPD8ILPZIo2LaLaSw",
                SecretError::InvalidBase64,
            ),
            ("whsec_MfKQ9", SecretError::InvalidBase64),
            ("whsec_QQ==", SecretError::TooShort { bytes: 1 }),
            (
                "whsec_MfKQ9r8GKYqrTwjUPD8I",
                SecretError::TooShort { bytes: 15 },
            ),
            (
                "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                SecretError::Placeholder,
            ),
            ("whsec_", SecretError::Empty),
            // A trial's env file kept the quotes.
            (
                "\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"",
                SecretError::Quoted,
            ),
            ("'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'", SecretError::Quoted),
            ("", SecretError::Blank),
            (" \n", SecretError::Blank),
        ];
        for (input, expected) in cases {
            let err = WebhookSecret::parse(input).unwrap_err();
            assert_eq!(err, expected, "{input:?}");
            let message = err.to_string();
            assert!(!message.contains("MfKQ9"), "{message}");
        }
    }

    /// 16 bytes is the shortest key taken, 15 the longest refused.
    #[test]
    fn the_shortest_secret_taken_is_sixteen_bytes() {
        use base64::Engine as _;
        let key = |n: usize| {
            let bytes: Vec<u8> = (1..=n as u8).collect();
            format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(bytes)
            )
        };
        assert!(WebhookSecret::parse(&key(16)).is_ok());
        assert_eq!(
            WebhookSecret::parse(&key(15)).unwrap_err(),
            SecretError::TooShort { bytes: 15 }
        );
    }

    #[test]
    fn a_secret_copied_without_its_base64_padding_is_the_same_key() {
        let padded = secret(SECRET_B);
        let unpadded = secret(SECRET_B.trim_end_matches('='));
        assert_eq!(
            sign(&padded, "msg_1", TS, BODY),
            sign(&unpadded, "msg_1", TS, BODY)
        );
    }

    /// PortOne's server SDK takes a secret with or without `whsec_`: so does the proxy.
    #[test]
    fn a_secret_copied_without_its_prefix_is_the_same_key() {
        let prefixed = secret(SECRET_A);
        let bare = secret(SECRET_A.trim_start_matches(SECRET_PREFIX));
        assert_eq!(
            sign(&prefixed, "msg_1", TS, BODY),
            sign(&bare, "msg_1", TS, BODY)
        );
    }

    #[test]
    fn secret_surrounding_whitespace_is_ignored() {
        let trimmed = secret(SECRET_A);
        let padded = secret(&format!("  {SECRET_A}\n"));
        assert_eq!(
            sign(&trimmed, "msg_1", TS, BODY),
            sign(&padded, "msg_1", TS, BODY)
        );
    }

    #[test]
    fn debug_does_not_leak_the_key() {
        let key = secret(SECRET_A);
        assert_eq!(format!("{key:?}"), "WebhookSecret(..)");
        let verifier = format!("{:?}", Verifier::new(vec![key]));
        for leak in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "31 f2 90", "[49, 242"] {
            assert!(!verifier.contains(leak), "{verifier}");
        }
        assert!(verifier.contains("WebhookSecret(..)"), "{verifier}");
    }

    #[test]
    fn messages_are_short_and_consistent() {
        let all = [
            VerifyError::MissingHeader(ID_HEADER),
            VerifyError::MissingHeader(TIMESTAMP_HEADER),
            VerifyError::MissingHeader(SIGNATURE_HEADER),
            VerifyError::BadTimestamp,
            VerifyError::TooOld,
            VerifyError::TooNew,
            VerifyError::InMilliseconds,
            VerifyError::NoMatchingSignature,
        ];
        for err in all {
            let display = err.to_string();
            assert_eq!(display, display.to_lowercase());
            assert!(!display.ends_with('.'), "{display}");
            assert!(!err.reason().is_empty());
        }
        assert_eq!(
            VerifyError::MissingHeader(SIGNATURE_HEADER).to_string(),
            "missing header webhook-signature"
        );
        assert_eq!(
            VerifyError::MissingHeader(SIGNATURE_HEADER).reason(),
            "서명 헤더(webhook-signature)가 없습니다"
        );
        assert_eq!(
            VerifyError::NoMatchingSignature.reason(),
            "서명이 올바르지 않습니다"
        );
    }

    fn header_text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[ -~]{0,64}",
            "-?[0-9]{0,25}",
            any::<i64>().prop_map(|n| n.to_string()),
            prop::collection::vec(
                prop_oneof!["v1,[A-Za-z0-9+/=]{0,60}", "v[0-9]?,?[ -~]{0,20}"],
                0..5
            )
            .prop_map(|entries| entries.join(" ")),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_requests_never_panic(
            id in proptest::option::of(header_text()),
            ts in proptest::option::of(header_text()),
            signature in proptest::option::of(header_text()),
            body in any::<Vec<u8>>(),
            now in any::<i64>(),
            tolerance in any::<u64>(),
        ) {
            let mut request = HeaderMap::new();
            for (name, value) in [(ID_HEADER, id), (TIMESTAMP_HEADER, ts), (SIGNATURE_HEADER, signature)] {
                // Some strings are not legal header values at all; those cannot reach us.
                if let Some(value) = value.and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()) {
                    request.insert(name, value);
                }
            }
            let verifier = Verifier::new(vec![secret(SECRET_A), secret(SECRET_B)])
                .with_tolerance(Duration::from_secs(tolerance));
            let _ = verifier.verify(&request, &body, now);
        }

        #[test]
        fn signed_requests_always_verify(
            id in "[!-~]{1,40}",
            ts in 0..=i64::MAX,
            body in any::<Vec<u8>>(),
        ) {
            let key = secret(SECRET_A);
            let request = signed_headers(&key, &id, ts, &body);
            prop_assert_eq!(Verifier::new(vec![key]).verify(&request, &body, ts).map(|_| ()), Ok(()));
        }
    }
}
