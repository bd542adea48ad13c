//! The common JSON body read without building a `serde_json::Value` of it.
//!
//! Parsing every body into a `Value` (and writing that `Value` back out for the decision log)
//! was a seventh of a request's instructions (callgrind, see BENCHMARKS.md). This reads only the
//! known fields, borrowed, and leaves the rest of the body as it came. It answers only when it
//! is sure to agree with the full parser: for anything unusual — a backslash anywhere, deep
//! nesting, a duplicate key, an id that is not a plain string, a message that is not a
//! confirmation, any error at all — it returns `None` and the full parser decides (and words the
//! error). A property test holds the two to the same answers. The fields are read by
//! [`scan`](super::scan), which also refuses a duplicate key anywhere in the body.

use super::scan::{self, Data, Field};
use super::{Amount, Api};

/// What the fast path read; the rest of `ConfirmRequest` is the body itself.
#[derive(Debug, PartialEq)]
pub(super) struct Ids {
    pub api: Api,
    pub order_id: String,
    pub tx_id: String,
    pub amount: Amount,
    pub store_id: Option<String>,
}

/// More nesting than this goes to the full parser, whose depth limit then applies.
pub(super) const MAX_OPEN_BRACKETS: usize = 32;

impl<'a> Field<'a> {
    /// The text of a JSON string (without escapes, since the body has no backslash at all).
    fn string(self) -> Option<&'a str> {
        let s = self.raw()?;
        s.strip_prefix('"')?.strip_suffix('"')
    }

    fn id(self) -> Option<String> {
        self.string()
            .filter(|s| !crate::text::shows_nothing(s))
            .map(str::to_owned)
    }

    /// A JSON number as written, or a numeric string, as the full parser accepts them.
    fn amount(self) -> Option<Amount> {
        match self.string() {
            Some(s) if s.trim().is_empty() => None,
            Some(s) => Amount::from_numeric_string(s).ok(),
            None => self.raw()?.parse().ok(),
        }
    }
}

/// The ids of a JSON confirm body, or `None` to leave it to the full parser.
pub(super) fn parse(body: &[u8]) -> Option<Ids> {
    let text = std::str::from_utf8(body).ok()?;
    let mut open = 0;
    for &b in body {
        match b {
            b'\\' => return None,
            b'{' | b'[' => open += 1,
            _ => {}
        }
    }
    if open > MAX_OPEN_BRACKETS {
        return None;
    }
    // A duplicate key anywhere is an error, which the full parser words.
    let mut top = scan::Top::default();
    scan::scan(text, &mut top).ok()?;
    // The order of the full parser's format detection.
    let (api, order_id, tx_id, amount, store_id) =
        if top.imp_uid.present() || top.merchant_uid.present() {
            (Api::V1, top.merchant_uid, top.imp_uid, top.amount, None)
        } else if top.payment_id.present() || top.tx_id.present() {
            (
                Api::V2_2024_01_01,
                top.payment_id,
                top.tx_id,
                top.total_amount,
                None,
            )
        } else if top.kind.present() && !matches!(top.data, Data::Absent) {
            if top.kind.string()? != super::CONFIRM_TYPE {
                return None;
            }
            let Data::Object(data) = &top.data else {
                return None;
            };
            let store_id = match data.store_id.raw() {
                None | Some("null") => None,
                Some(_) => Some(data.store_id.string()?.to_owned()),
            };
            (
                Api::V2_2024_04_25,
                data.payment_id,
                data.transaction_id,
                data.total_amount,
                store_id,
            )
        } else {
            return None;
        };
    Some(Ids {
        api,
        order_id: order_id.id()?,
        tx_id: tx_id.id()?,
        amount: amount.amount()?,
        store_id,
    })
}

/// Appends a JSON text on one line: its bytes as sent, with line breaks made spaces. In valid
/// JSON (every body either parser accepted) a raw line break can only be whitespace between
/// tokens (inside a string it would have to be escaped), so the value is unchanged.
pub(super) fn write_one_line(json: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(json);
    for b in &mut out[start..] {
        if matches!(*b, b'\n' | b'\r') {
            *b = b' ';
        }
    }
}
