//! One pass over a JSON body that refuses duplicate keys (and keys other parsers read as a field
//! the proxy reads) and keeps the raw text of the fields the proxy reads.
//!
//! A `serde_json::Value` keeps the last of two equal keys, while a `forward` rule sends the body
//! as it came to a merchant whose parser may keep the first: the proxy would check one order and
//! the merchant act on another. So no object anywhere in a body may name a key twice (keys are
//! compared decoded: `"merchant\u005fuid"` is `merchant_uid`). Both parsers use this scan: the
//! fast path for its fields, the full parser for the duplicate check and the amount's text as
//! written (serde_json rewrites `1E3` as `1e+3`).
//!
//! Single pass, no `Value`: keys are borrowed when they have no escapes, the read fields are
//! captured as `&RawValue`, and every other value is walked only to look at the keys of the
//! objects inside it.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// A field's raw JSON text, `null` included: the full parser tells "present but null" from
/// "absent" (`{"imp_uid": null, …}` is a V1 body with a missing id, not another format).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Field<'a>(pub Option<&'a RawValue>);

impl<'a> Field<'a> {
    pub fn present(self) -> bool {
        self.0.is_some()
    }

    /// The value's JSON text as it is in the body.
    pub fn raw(self) -> Option<&'a str> {
        self.0.map(RawValue::get)
    }
}

/// The top-level fields the format detection and the V1 / V2 `2024-01-01` formats read.
#[derive(Debug, Default)]
pub(super) struct Top<'a> {
    pub imp_uid: Field<'a>,
    pub merchant_uid: Field<'a>,
    pub amount: Field<'a>,
    pub payment_id: Field<'a>,
    pub tx_id: Field<'a>,
    pub total_amount: Field<'a>,
    /// `type`.
    pub kind: Field<'a>,
    pub data: Data<'a>,
}

/// `data`, which V2 `2024-04-25` reads into.
#[derive(Debug, Default)]
pub(super) enum Data<'a> {
    #[default]
    Absent,
    /// Present but not an object. (With serde_json's `arbitrary_precision` a number arrives as
    /// a one-key map and reads as an object without any of the fields below, which every
    /// reader of this treats the same way.)
    NotAnObject,
    Object(DataFields<'a>),
}

#[derive(Debug, Default)]
pub(super) struct DataFields<'a> {
    pub payment_id: Field<'a>,
    pub transaction_id: Field<'a>,
    pub total_amount: Field<'a>,
    pub store_id: Field<'a>,
}

#[derive(Debug)]
pub(super) enum ScanError {
    /// The path of the first key found twice: `merchant_uid`, `data.paymentId`,
    /// `items[1].sku`.
    Duplicate(String),
    /// The path of a key serde_json reserves for itself (see [`RESERVED`]).
    Reserved(String),
    /// The path of a key that other parsers read as the field named (see [`look_alike`]).
    LookAlike(String, &'static str),
    /// Not JSON (or nested beyond serde_json's limit).
    Json(serde_json::Error),
}

/// Reads the fields the proxy uses from a JSON text into `top` (which starts empty), refusing
/// a duplicate key at any depth. A text that is not an object gives no fields (but is still
/// checked for duplicates). Filled in place: moving the fields out through the layers of
/// `Result` cost more than the scan of a small body's keys.
pub(super) fn scan<'a>(text: &'a str, top: &mut Top<'a>) -> Result<(), ScanError> {
    // A reserved key written without escapes is in the text as it is (its path is not worth
    // a walk: no PortOne body has one); one spelled with escapes is caught by `ObjectKeys::check`.
    if let Some(name) = reserved_in(text) {
        return Err(ScanError::Reserved(name));
    }
    let mut dup = None;
    let mut de = serde_json::Deserializer::from_str(text);
    let result = TopSeed { top, dup: &mut dup }
        .deserialize(&mut de)
        .and_then(|()| de.end());
    result.map_err(|e| match dup {
        Some(Flaw { path, kind }) => match kind {
            FlawKind::Duplicate => ScanError::Duplicate(path),
            FlawKind::Reserved => ScanError::Reserved(path),
            FlawKind::LookAlike(field) => ScanError::LookAlike(path, field),
        },
        None => ScanError::Json(e),
    })
}

/// What makes the JSON `text` read differently by different readers: a key found twice in an
/// object (serde_json keeps the last, other readers the first) or a key serde_json reserves,
/// at any depth, as its path and what is wrong with it (`items[1].sku: a key named twice in
/// one object`); `None`
/// when there is none, or when the text is not JSON (which its parse says on its own). For
/// JSON a rule reads from the request's own text (`parse_json`) and for an upstream's answer,
/// both held to what a body is.
pub(crate) fn json_flaw(text: &str) -> Option<String> {
    if let Some(name) = reserved_in(text) {
        return Some(format!(
            "{name}: a key the JSON reader takes for an instruction"
        ));
    }
    let mut dup = None;
    let mut de = serde_json::Deserializer::from_str(text);
    let _ = Walk { dup: &mut dup }.deserialize(&mut de);
    dup.map(|Flaw { path, kind }| match kind {
        FlawKind::Reserved => format!("{path}: a key the JSON reader takes for an instruction"),
        _ => format!("{path}: a key named twice in one object"),
    })
}

/// The first reserved name written out as a key in `text`, if any. Looks for `$` (one
/// `memchr` pass, and bodies rarely hold one) rather than the whole name: a substring searcher
/// costs more to set up than a confirm body takes to scan. Only a key is read as an
/// instruction: the same words inside a value (a buyer's memo quoting them) are text.
fn reserved_in(text: &str) -> Option<String> {
    let mut from = 0;
    // The end of the string the last candidate was in, and whether it is a key: a candidate
    // before that end is in the same string (a `$` is never inside an escape, so a scan from
    // either finds the same closing quote). Scanning to that end again for each candidate took a
    // 64 KiB body of them, quoted in one value, 43–69 ms (an audit's).
    let mut last: Option<(usize, bool)> = None;
    while let Some(i) = text[from..].find('$') {
        let start = from + i;
        let at = &text[start..];
        if at.starts_with(RESERVED) && text[..start].ends_with('"') {
            let key = match last {
                Some((end, key)) if start < end => key,
                _ => {
                    let (end, key) = string_end(at);
                    last = Some((start + end, key));
                    key
                }
            };
            if key {
                // Whole (a body is at most 64 KiB): what shows it cuts it, with `…`.
                return Some(at.chars().take_while(|c| *c != '"').collect());
            }
        }
        from = start + 1;
    }
    None
}

/// Where the JSON string whose text (after its opening quote) starts `rest` ends, at its
/// closing quote, the first one not escaped, and whether it is an object's key: the quote is
/// followed by a colon (so a value that writes key-like text with escaped quotes,
/// `"a \"$serde_json::private::x\": 1"`, is text).
fn string_end(rest: &str) -> (usize, bool) {
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => {
                let key = rest[i + 1..]
                    .trim_start_matches([' ', '\t', '\n', '\r'])
                    .starts_with(':');
                return (i, key);
            }
            _ => i += 1,
        }
    }
    (bytes.len(), false)
}

/// Whether `body` holds more than `limit` values and keys, counted outside strings as the `{`,
/// `[`, `,` and `:` that come with them: one pass over the bytes, before any is parsed.
pub(crate) fn more_parts_than(body: &[u8], limit: usize) -> bool {
    if body.len() <= limit {
        return false;
    }
    outside_strings(body)
        .filter(|b| matches!(b, b'{' | b'[' | b',' | b':'))
        .nth(limit)
        .is_some()
}

/// The bytes of a JSON text that are outside its strings (quotes included in neither).
pub(crate) fn outside_strings(body: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let (mut in_string, mut escaped) = (false, false);
    body.iter().copied().filter(move |&b| {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            return false;
        }
        in_string = b == b'"';
        !in_string
    })
}

/// The first key of the JSON `text` that serde_json's `Value` parser takes for an instruction
/// ([`RESERVED`]), written out or spelled with escapes; `None` when there is none, or when the
/// text is not JSON (which its parse says on its own). For JSON read from elsewhere than a
/// confirm body (an upstream's answer), whose repeated keys [`json_flaw`] finds after it.
pub(crate) fn reserved_key(text: &str) -> Option<String> {
    // Written out, it has a `$`; spelled with escapes, a backslash.
    if !text.contains(['$', '\\']) {
        return None;
    }
    let mut found = None;
    let mut de = serde_json::Deserializer::from_str(text);
    let body = text.as_bytes().as_ptr_range();
    let _ = Reserved {
        found: &mut found,
        body: &body,
    }
    .deserialize(&mut de);
    found
}

/// Walks a JSON value for [`reserved_key`], ending at the first reserved key.
struct Reserved<'s> {
    found: &'s mut Option<String>,
    /// The text's bytes: a key borrowed from them is the body's (a number's own key, see
    /// [`RESERVED`], is borrowed from serde_json's static text).
    body: &'s std::ops::Range<*const u8>,
}

impl Reserved<'_> {
    fn inner(&mut self) -> Reserved<'_> {
        Reserved {
            found: &mut *self.found,
            body: self.body,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Reserved<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Reserved<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    crate::ignore_scalars!();

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self.inner())?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(Key)? {
            // Decoded from escapes (owned), or written out in the body.
            let from_body = match &key {
                Cow::Owned(_) => true,
                Cow::Borrowed(k) => self.body.contains(&k.as_ptr()),
            };
            if from_body && key.starts_with(RESERVED) {
                *self.found = Some(key.into_owned());
                return Err(de::Error::custom(RESERVED));
            }
            map.next_value_seed(self.inner())?;
        }
        Ok(())
    }
}

/// The key that ended a scan, and where: its path is built on the way out.
#[derive(Debug)]
pub(super) struct Flaw {
    path: String,
    kind: FlawKind,
}

#[derive(Debug, Clone, Copy)]
enum FlawKind {
    Duplicate,
    Reserved,
    LookAlike(&'static str),
}

/// The fields the proxy reads at the top of a body.
pub(super) const TOP_FIELDS: [&str; 8] = [
    "imp_uid",
    "merchant_uid",
    "amount",
    "payment_id",
    "tx_id",
    "total_amount",
    "type",
    "data",
];
/// The fields the proxy reads inside `data` (V2 `2024-04-25`).
const DATA_FIELDS: [&str; 4] = ["paymentId", "transactionId", "totalAmount", "storeId"];

/// The field of `fields` that `key` is not, yet other parsers read it as: Go's `encoding/json`
/// and ASP.NET match names whatever their case (`AMOUNT`, with Unicode folding: `ſ` is `s`), and
/// PHP drops leading spaces, reads ` `, `.` and a `[` never closed as `_`, and `amount[x]` and
/// `amount\0x` as `amount`. With both `amount` and `AMOUNT` in a body, the proxy would check one amount while a
/// merchant's handler behind a `forward` acts on the other, so such a key is refused at the top
/// of a body or directly in `data`, where the fields are read (no PortOne body has one).
pub(super) fn look_alike(key: &str, fields: &[&'static str]) -> Option<&'static str> {
    fn folded(s: &str) -> impl Iterator<Item = char> + '_ {
        let s = s.trim_start_matches(' ');
        // PHP (and C) ends a name at a NUL: `amount%00x` is `amount` to it.
        let s = s.split('\0').next().unwrap_or(s);
        // `amount[x]` is PHP's array `amount`; a `[` never closed is a `_` to it (`merchant[uid`).
        let s = match s.find('[') {
            Some(i) if s[i..].contains(']') => &s[..i],
            _ => s,
        };
        s.chars().flat_map(|c| {
            match c {
                ' ' | '.' | '[' => '_',
                'ſ' => 's',
                c => c,
            }
            .to_lowercase()
        })
    }
    fields
        .iter()
        .copied()
        .find(|field| key != *field && folded(key).eq(folded(field)))
}

/// Records `key` as a look-alike of `field` and gives the error that unwinds the scan.
fn look_alike_error<E: de::Error>(dup: &mut Option<Flaw>, key: &str, field: &'static str) -> E {
    flaw(dup, key, FlawKind::LookAlike(field))
}

/// Records `key` as the scan's flaw and gives the error that unwinds the scan.
fn flaw<E: de::Error>(dup: &mut Option<Flaw>, key: &str, kind: FlawKind) -> E {
    *dup = Some(Flaw {
        path: segment(key).into_owned(),
        kind,
    });
    E::custom(DUPLICATE)
}

/// A key as one step of a path: quoted when it shows nothing (`x.""`, where `x.` would read
/// as a slip).
fn segment(key: &str) -> Cow<'_, str> {
    if crate::text::shows_nothing(key) {
        Cow::Owned(format!("{key:?}"))
    } else {
        Cow::Borrowed(key)
    }
}

/// Keys serde_json's own `Value` parser reads as instructions (with the `arbitrary_precision`
/// and `raw_value` features this crate needs): an object whose key is
/// `"$serde_json::private::RawValue"` becomes the JSON inside its string value, one with
/// `"$serde_json::private::Number"` a number. Every other parser, the merchant's included, sees
/// an ordinary key, so a body using one could make the proxy check a different order or amount
/// than the one a `forward` delivers. No PortOne body has such a key: refused. (The scan
/// itself meets the number key for every real number: serde_json hands numbers to
/// `deserialize_any` as a one-key map with it, borrowed from its own static text. A key from the
/// body that spells it either is in the text as it is, or was decoded from escapes into an
/// owned string.)
pub(crate) const RESERVED: &str = "$serde_json::private::";

/// The message of the error that unwinds the scan once a duplicate is found; the path is in
/// the scan's `dup`, built on the way out.
const DUPLICATE: &str = "duplicate key";

/// Puts the enclosing key in front of the path of a duplicate found inside its value.
fn prefix_key(dup: &mut Option<Flaw>, key: &str) {
    prefix(dup, segment(key));
}

fn prefix_index(dup: &mut Option<Flaw>, index: usize) {
    prefix(dup, format_args!("[{index}]"));
}

fn prefix(dup: &mut Option<Flaw>, head: impl fmt::Display) {
    if let Some(Flaw { path, .. }) = dup {
        let sep = if path.starts_with('[') { "" } else { "." };
        *path = format!("{head}{sep}{path}");
    }
}

/// Keys inline up to this many per object, then a hash set (so a 64 KiB object of distinct
/// keys stays linear).
const INLINE_KEYS: usize = 8;

/// The keys of one object so far (of the fields the proxy reads, their slots say whether they
/// were seen). Keys with escapes, which only the full parser sees, go to the set.
struct ObjectKeys<'de> {
    inline: [&'de str; INLINE_KEYS],
    len: usize,
    more: Option<HashSet<Cow<'de, str>>>,
}

impl<'de> ObjectKeys<'de> {
    fn new() -> Self {
        ObjectKeys {
            inline: [""; INLINE_KEYS],
            len: 0,
            more: None,
        }
    }

    fn contains(&self, key: &str) -> bool {
        self.inline[..self.len].contains(&key)
            || self.more.as_ref().is_some_and(|more| more.contains(key))
    }

    fn push(&mut self, key: Cow<'de, str>) {
        match key {
            Cow::Borrowed(key) if self.len < INLINE_KEYS => {
                self.inline[self.len] = key;
                self.len += 1;
            }
            key => {
                self.more.get_or_insert_with(HashSet::new).insert(key);
            }
        }
    }

    /// Checks `key` against the keys before it; a repeat (or a reserved key spelled with
    /// escapes) ends the scan.
    // The `Cow`'s variant is the point: an owned key was decoded from escapes.
    #[allow(clippy::ptr_arg)]
    fn check<E: de::Error>(&self, key: &Cow<'_, str>, dup: &mut Option<Flaw>) -> Result<(), E> {
        if self.contains(key) {
            return Err(duplicate(dup, key));
        }
        if matches!(key, Cow::Owned(_)) && key.starts_with(RESERVED) {
            return Err(flaw(dup, key, FlawKind::Reserved));
        }
        Ok(())
    }
}

/// Records `key` as the duplicate and gives the error that unwinds the scan.
fn duplicate<E: de::Error>(dup: &mut Option<Flaw>, key: &str) -> E {
    flaw(dup, key, FlawKind::Duplicate)
}

/// An object key, borrowed from the body when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Captures a read field's raw text into its (empty) slot. A field that is an object or an
/// array (never a valid id, amount or type, but still part of the body) is checked for
/// duplicates inside too.
fn raw_field<'de, A: MapAccess<'de>>(
    map: &mut A,
    slot: &mut Field<'de>,
    dup: &mut Option<Flaw>,
) -> Result<(), A::Error> {
    let raw: &'de RawValue = map.next_value()?;
    if raw.get().starts_with(['{', '[']) {
        let mut de = serde_json::Deserializer::from_str(raw.get());
        Walk { dup: &mut *dup }
            .deserialize(&mut de)
            .map_err(|e| de::Error::custom(e.to_string()))?;
    }
    *slot = Field(Some(raw));
    Ok(())
}

/// Any value: checks the keys of every object in it and keeps nothing.
struct Walk<'s> {
    dup: &'s mut Option<Flaw>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    crate::ignore_scalars!();

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        loop {
            match seq.next_element_seed(Walk {
                dup: &mut *self.dup,
            }) {
                Ok(Some(())) => index += 1,
                Ok(None) => return Ok(()),
                Err(e) => {
                    prefix_index(self.dup, index);
                    return Err(e);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = ObjectKeys::new();
        while let Some(key) = map.next_key_seed(Key)? {
            seen.check::<A::Error>(&key, self.dup)?;
            if let Err(e) = map.next_value_seed(Walk {
                dup: &mut *self.dup,
            }) {
                prefix_key(self.dup, &key);
                return Err(e);
            }
            seen.push(key);
        }
        Ok(())
    }
}

struct TopSeed<'s, 'de> {
    top: &'s mut Top<'de>,
    dup: &'s mut Option<Flaw>,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let top = self.top;
        // Only for keys the proxy does not read; made at the first one (V1 bodies have none).
        let mut others: Option<ObjectKeys<'de>> = None;
        while let Some(key) = map.next_key_seed(Key)? {
            let dup = &mut *self.dup;
            if key == "data" {
                if !matches!(top.data, Data::Absent) {
                    return Err(duplicate(dup, &key));
                }
                let data = DataSeed {
                    data: &mut top.data,
                    dup: &mut *dup,
                };
                if let Err(e) = map.next_value_seed(data) {
                    prefix_key(dup, &key);
                    return Err(e);
                }
                continue;
            }
            let slot = match &*key {
                "imp_uid" => Some(&mut top.imp_uid),
                "merchant_uid" => Some(&mut top.merchant_uid),
                "amount" => Some(&mut top.amount),
                "payment_id" => Some(&mut top.payment_id),
                "tx_id" => Some(&mut top.tx_id),
                "total_amount" => Some(&mut top.total_amount),
                "type" => Some(&mut top.kind),
                _ => match look_alike(&key, &TOP_FIELDS) {
                    Some(field) => return Err(look_alike_error(dup, &key, field)),
                    None => None,
                },
            };
            field_value(&mut map, key, slot, &mut others, dup)?;
        }
        Ok(())
    }

    // Not an object: no fields, but an array may still hold objects with duplicates.

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        Walk { dup: self.dup }.visit_seq(seq)
    }

    crate::ignore_scalars!();
}

/// Fills `data` (which is `Absent`).
struct DataSeed<'s, 'de> {
    data: &'s mut Data<'de>,
    dup: &'s mut Option<Flaw>,
}

impl<'de> DeserializeSeed<'de> for DataSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        // Anything but an object; `visit_map` makes it one.
        *self.data = Data::NotAnObject;
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DataSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut data = DataFields::default();
        let mut others: Option<ObjectKeys<'de>> = None;
        while let Some(key) = map.next_key_seed(Key)? {
            let slot = match &*key {
                "paymentId" => Some(&mut data.payment_id),
                "transactionId" => Some(&mut data.transaction_id),
                "totalAmount" => Some(&mut data.total_amount),
                "storeId" => Some(&mut data.store_id),
                _ => match look_alike(&key, &DATA_FIELDS) {
                    Some(field) => return Err(look_alike_error(self.dup, &key, field)),
                    None => None,
                },
            };
            field_value(&mut map, key, slot, &mut others, &mut *self.dup)?;
        }
        *self.data = Data::Object(data);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        Walk { dup: self.dup }.visit_seq(seq)
    }

    crate::ignore_scalars!();
}

/// The value of `key` in an object whose read fields have slots: captured into its `slot` (at
/// its first occurrence; a second is a duplicate), or, for another key, checked against the
/// object's other keys and walked for duplicates inside. A duplicate found inside the value
/// gets `key` in front of its path.
fn field_value<'de, A: MapAccess<'de>>(
    map: &mut A,
    key: Cow<'de, str>,
    slot: Option<&mut Field<'de>>,
    others: &mut Option<ObjectKeys<'de>>,
    dup: &mut Option<Flaw>,
) -> Result<(), A::Error> {
    let read = match slot {
        Some(slot) if slot.present() => return Err(duplicate(dup, &key)),
        Some(slot) => raw_field(map, slot, dup),
        None => {
            let seen = others.get_or_insert_with(ObjectKeys::new);
            seen.check(&key, dup)?;
            let walked = map.next_value_seed(Walk { dup: &mut *dup });
            if walked.is_ok() {
                seen.push(key);
                return Ok(());
            }
            walked
        }
    };
    read.inspect_err(|_| prefix_key(dup, &key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanned(text: &str) -> Result<Top<'_>, ScanError> {
        let mut top = Top::default();
        scan(text, &mut top).map(|()| top)
    }

    #[test]
    fn reserved_keys_of_other_json_are_found_however_written() {
        let number = r#"{"available":{"$serde_json::private::Number":"99"}}"#;
        let escaped = r#"[1, {"a": 2.5, "\u0024serde_json::private::RawValue": "{}"}]"#;
        let spelled = r#"{"x":{"\u0024serde_json::priv\u0061te::Number":"1"}}"#;
        assert_eq!(
            reserved_key(number).as_deref(),
            Some("$serde_json::private::Number")
        );
        assert_eq!(
            reserved_key(escaped).as_deref(),
            Some("$serde_json::private::RawValue")
        );
        assert_eq!(
            reserved_key(spelled).as_deref(),
            Some("$serde_json::private::Number")
        );
        // Numbers, repeated keys, `$` and escapes elsewhere, and the name in a value are data.
        for data in [
            r#"{"available":3,"price":"$5","n":[1.5,1e400,-0],"a":1,"a":2}"#,
            r#"{"url":"http:\/\/x","note":"$serde_json::private::Number"}"#,
            "not json $ \\",
        ] {
            assert_eq!(reserved_key(data), None, "{data}");
        }
    }

    #[test]
    fn reserved_names_are_found_past_other_dollars() {
        assert_eq!(reserved_in(r#"{"a":"$5","b":"$$"}"#), None);
        assert_eq!(
            reserved_in(r#"{"price":"$5","$serde_json::private::RawValue":"{}"}"#).as_deref(),
            Some("$serde_json::private::RawValue")
        );
        assert_eq!(
            reserved_in(r#"{"$serde_json::private::" : 1}"#),
            Some(RESERVED.to_owned())
        );
        // Not a key: a value, a value with a quote escaped in it, text that is no string.
        for text in [
            r#"{"a":"$serde_json::private::Number"}"#,
            r#"{"a":["$serde_json::private::Number", 1]}"#,
            r#"{"a":"$serde_json::private::\"x\"","b":1}"#,
            "$serde_json::private::",
        ] {
            assert_eq!(reserved_in(text), None, "{text}");
        }
        // Candidates quoted in one value share its end (each once scanned to it, an audit's
        // 43 ms a body); a key after that value, and one in a later value's place, are seen.
        let quoted = r#"\"$serde_json::private::"#.repeat(3);
        let memo = format!(r#"{{"memo":"{quoted}","$serde_json::private::RawValue":1}}"#);
        assert_eq!(
            reserved_in(&memo).as_deref(),
            Some("$serde_json::private::RawValue")
        );
        let two = format!(r#"{{"a":"{quoted}","b":"{quoted} x\": 1"}}"#);
        assert_eq!(reserved_in(&two), None, "{two}");
        let keyish = format!(r#"{{"a":"{quoted}","$serde_json::private::x\"y": 1}}"#);
        assert_eq!(
            reserved_in(&keyish).as_deref(),
            Some("$serde_json::private::x\\")
        );
    }

    fn duplicate(text: &str) -> Option<String> {
        match scanned(text) {
            Err(ScanError::Duplicate(path)) => Some(path),
            Err(ScanError::Json(e)) => panic!("{text}: {e}"),
            Err(ScanError::Reserved(path)) => panic!("{text}: reserved {path}"),
            Err(ScanError::LookAlike(path, field)) => panic!("{text}: {path} looks like {field}"),
            Ok(_) => None,
        }
    }

    #[test]
    fn keys_other_parsers_read_as_a_read_field_are_refused_by_path() {
        let cases = [
            (
                r#"{"imp_uid":"a","merchant_uid":"b","amount":5000,"AMOUNT":9000000}"#,
                "AMOUNT",
                "amount",
            ),
            // Before the field too, and without it.
            (
                r#"{"Merchant_Uid":"legacy-1","merchant_uid":"b"}"#,
                "Merchant_Uid",
                "merchant_uid",
            ),
            (r#"{"Imp_uid":"a"}"#, "Imp_uid", "imp_uid"),
            (
                r#"{"type":"Transaction.Confirm","Data":{}}"#,
                "Data",
                "data",
            ),
            (
                r#"{"type":"Transaction.Confirm","data":{"totalAmount":1,"totalamount":9}}"#,
                "data.totalamount",
                "totalAmount",
            ),
            // Unicode folding as Go's: the long s is an s.
            (
                r#"{"data":{"tranſactionId":"t"}}"#,
                "data.tranſactionId",
                "transactionId",
            ),
            // PHP's renaming: a leading space dropped, `.` and ` ` as `_`, `a[x]` as `a`.
            (r#"{" amount":1}"#, " amount", "amount"),
            (r#"{"merchant.uid":"x"}"#, "merchant.uid", "merchant_uid"),
            (r#"{"total amount":1}"#, "total amount", "total_amount"),
            (r#"{"amount[0]":1}"#, "amount[0]", "amount"),
        ];
        for (text, path, field) in cases {
            match scanned(text) {
                Err(ScanError::LookAlike(p, f)) => {
                    assert_eq!((p.as_str(), f), (path, field), "{text}")
                }
                other => panic!("{text}: {:?}", other.map(|_| ())),
            }
        }
        // Fields of one level are not look-alikes at the other, and other keys are left alone.
        for text in [
            r#"{"imp_uid":"a","merchant_uid":"b","amount":1,"paymentid":"x","Timestamp":"t"}"#,
            r#"{"type":"Transaction.Confirm","data":{"paymentId":"p","Amount":1,"TYPE":"x"}}"#,
            r#"{"custom":{"AMOUNT":1,"Data":2}}"#,
        ] {
            assert!(scanned(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn duplicates_are_found_at_any_depth_and_named_by_path() {
        let cases = [
            (
                r#"{"imp_uid":"i","merchant_uid":"a","merchant_uid":"o","amount":5000}"#,
                "merchant_uid",
            ),
            (r#"{"amount":1,"amount":"1"}"#, "amount"),
            (r#"{"type":"a","data":{},"type":"b"}"#, "type"),
            (r#"{"data":{},"data":{}}"#, "data"),
            (
                r#"{"type":"Transaction.Confirm","data":{"paymentId":"p","paymentId":"q"}}"#,
                "data.paymentId",
            ),
            (r#"{"data":{"storeId":null,"storeId":"s"}}"#, "data.storeId"),
            (r#"{"memo":"x","memo":"y"}"#, "memo"),
            (r#"{"custom":{"tier":1,"tier":2}}"#, "custom.tier"),
            (r#"{"items":[{"sku":1},{"sku":1,"sku":2}]}"#, "items[1].sku"),
            (r#"{"x":[[{"a":{"b":0,"b":0}}]]}"#, "x[0][0].a.b"),
            (r#"{"data":{"extra":[{"k":1,"k":1}]}}"#, "data.extra[0].k"),
            // The value of a read field that is not a scalar is checked as well.
            (r#"{"imp_uid":{"a":1,"a":2}}"#, "imp_uid.a"),
            (r#"{"amount":[{"a":1,"a":2}]}"#, "amount[0].a"),
            // Keys are compared decoded.
            (
                r#"{"merchant_uid":"a","merchant\u005fuid":"b"}"#,
                "merchant_uid",
            ),
            (r#"{"\u0061":1,"a":2}"#, "a"),
            // Not an object at the top, still checked.
            (r#"[{"a":1},{"a":1,"a":1}]"#, "[1].a"),
        ];
        for (text, path) in cases {
            assert_eq!(duplicate(text).as_deref(), Some(path), "{text}");
        }
    }

    #[test]
    fn equal_keys_in_different_objects_are_not_duplicates() {
        for text in [
            r#"{"imp_uid":"i","merchant_uid":"m","amount":1,"data":{"amount":1,"merchant_uid":"x"}}"#,
            r#"{"a":{"a":{"a":1}},"b":[{"a":1},{"a":1}]}"#,
            r#"{"A":1,"a":2,"a ":3}"#,
            r#"[1,2,1]"#,
            r#""x""#,
            "5",
            "null",
        ] {
            assert_eq!(duplicate(text), None, "{text}");
        }
    }

    #[test]
    fn many_keys_spill_into_a_set_and_are_still_checked() {
        let keys: Vec<String> = (0..100).map(|i| format!("\"k{i}\":{i}")).collect();
        let text = format!("{{{}}}", keys.join(","));
        assert_eq!(duplicate(&text), None);
        for repeat in [0, 15, 16, 17, 99] {
            let text = format!("{{{},\"k{repeat}\":0}}", keys.join(","));
            assert_eq!(duplicate(&text), Some(format!("k{repeat}")), "k{repeat}");
        }
    }

    #[test]
    fn read_fields_keep_their_text() {
        let top = scanned(
            r#"{"type":"Transaction.Confirm","data":{"paymentId":"p","transactionId":"t","totalAmount":3E6,"storeId":null},"amount":1e3,"imp_uid":null}"#,
        )
        .unwrap();
        assert_eq!(top.kind.raw(), Some(r#""Transaction.Confirm""#));
        assert_eq!(top.amount.raw(), Some("1e3"));
        assert_eq!(top.imp_uid.raw(), Some("null"));
        assert!(!top.merchant_uid.present());
        let Data::Object(data) = top.data else {
            panic!("data is an object")
        };
        assert_eq!(data.total_amount.raw(), Some("3E6"));
        assert_eq!(data.store_id.raw(), Some("null"));
        assert!(matches!(
            scanned(r#"{"data":[1]}"#).unwrap().data,
            Data::NotAnObject
        ));
        assert!(matches!(scanned("{").unwrap_err(), ScanError::Json(_)));
        assert!(matches!(scanned("{} x").unwrap_err(), ScanError::Json(_)));
    }
}
