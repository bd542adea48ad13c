//! Which PortOne format a parsed body is in, and its ids, amount and store id read into a
//! [`ConfirmRequest`], with errors that name each field by its path.

use serde_json::{Map, Value};

use super::{
    scan, Amount, AmountError, Api, ConfirmRequest, Parsed, Payload, PayloadError, CONFIRM_TYPE,
};

/// Reads the request from a body's value. `raw` has the raw text of a JSON body's fields (for
/// the amount as written; a form has none), `keep` makes the `payload` of the value.
pub(super) fn normalise(
    payload: Value,
    raw: Option<&scan::Top<'_>>,
    keep: impl FnOnce(Value) -> Payload,
) -> Result<Parsed, PayloadError> {
    let Value::Object(obj) = &payload else {
        return Err(PayloadError::NotAnObject);
    };
    // V1 first, then V2 `2024-01-01`, and V2 `2024-04-25` last: an ignored message approves
    // the payment (200) without a rule, so extra `type`/`data` fields on a request that names
    // V1 or V2 `2024-01-01` ids must never turn it into one (fail closed: those ids are then
    // required and validated).
    let (api, ids, store_id) = if obj.contains_key("imp_uid") || obj.contains_key("merchant_uid") {
        (
            Api::V1,
            read_ids(
                obj,
                "merchant_uid",
                "imp_uid",
                "amount",
                raw.and_then(|r| r.amount.raw()),
            )?,
            None,
        )
    } else if obj.contains_key("payment_id") || obj.contains_key("tx_id") {
        (
            Api::V2_2024_01_01,
            read_ids(
                obj,
                "payment_id",
                "tx_id",
                "total_amount",
                raw.and_then(|r| r.total_amount.raw()),
            )?,
            None,
        )
    } else if obj.contains_key("type") && obj.contains_key("data") {
        // V2 sends its messages as JSON (`raw`): a form that looks like one must not be the
        // 200 of an ignored message.
        if raw.is_none() {
            return Err(PayloadError::MessageAsForm);
        }
        let message_type =
            obj.get("type")
                .and_then(Value::as_str)
                .ok_or(PayloadError::WrongType {
                    field: "type",
                    expected: "문자열",
                })?;
        if message_type != CONFIRM_TYPE {
            return Ok(Parsed::Ignored {
                message_type: crate::text::cut(message_type, 100).into_owned(),
                api: Api::V2_2024_04_25,
            });
        }
        let data = obj
            .get("data")
            .and_then(Value::as_object)
            .ok_or(PayloadError::WrongType {
                field: "data",
                expected: "객체",
            })?;
        let raw_amount = match raw.map(|r| &r.data) {
            Some(scan::Data::Object(fields)) => fields.total_amount.raw(),
            _ => None,
        };
        let ids = read_ids(
            data,
            "data.paymentId",
            "data.transactionId",
            "data.totalAmount",
            raw_amount,
        )?;
        (Api::V2_2024_04_25, ids, read_store_id(data)?)
    } else {
        return Err(PayloadError::UnknownFormat);
    };
    Ok(Parsed::Confirm(ConfirmRequest {
        order_id: ids.order_id,
        tx_id: ids.tx_id,
        amount: ids.amount,
        store_id,
        api,
        payload: keep(payload),
    }))
}

struct Ids {
    order_id: String,
    tx_id: String,
    amount: Amount,
}

/// Field names are given with their path (`data.paymentId`) so errors say exactly where;
/// `raw_amount` is the amount's JSON text in the body, when there is one.
fn read_ids(
    obj: &Map<String, Value>,
    order_field: &'static str,
    tx_field: &'static str,
    amount_field: &'static str,
    raw_amount: Option<&str>,
) -> Result<Ids, PayloadError> {
    Ok(Ids {
        order_id: read_id(obj, order_field)?,
        tx_id: read_id(obj, tx_field)?,
        amount: read_amount(obj, amount_field, raw_amount)?,
    })
}

/// V2 `2024-04-25`'s optional `data.storeId`.
fn read_store_id(data: &Map<String, Value>) -> Result<Option<String>, PayloadError> {
    match data.get("storeId") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(PayloadError::WrongType {
            field: "data.storeId",
            expected: "문자열",
        }),
    }
}

fn key(field: &str) -> &str {
    field.rsplit('.').next().unwrap_or(field)
}

fn read_id(obj: &Map<String, Value>, field: &'static str) -> Result<String, PayloadError> {
    match obj.get(key(field)) {
        None | Some(Value::Null) => Err(PayloadError::Missing(field)),
        // An id that shows nothing (zero-width spaces, the Hangul filler, NUL) is no id:
        // nothing an operator could look up or a log would show.
        Some(Value::String(s)) if crate::text::shows_nothing(s) => Err(PayloadError::Empty(field)),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(PayloadError::WrongType {
            field,
            expected: "문자열",
        }),
    }
}

fn read_amount(
    obj: &Map<String, Value>,
    field: &'static str,
    raw: Option<&str>,
) -> Result<Amount, PayloadError> {
    let parsed = match obj.get(key(field)) {
        None | Some(Value::Null) => return Err(PayloadError::Missing(field)),
        // The number as the body wrote it, from the scan: serde_json's `arbitrary_precision`
        // keeps the digits but rewrites an exponent (`1E3` becomes `1e+3`). (A form has no
        // numbers.)
        Some(Value::Number(n)) => raw.unwrap_or(n.as_str()).parse::<Amount>(),
        Some(Value::String(s)) if s.trim().is_empty() => return Err(PayloadError::Empty(field)),
        Some(Value::String(s)) => Amount::from_numeric_string(s),
        Some(_) => {
            return Err(PayloadError::WrongType {
                field,
                expected: "숫자",
            })
        }
    };
    parsed.map_err(|e| match e {
        AmountError::NotANumber => PayloadError::WrongType {
            field,
            expected: "숫자",
        },
        AmountError::Negative => PayloadError::NegativeAmount(field),
        AmountError::TooLarge => PayloadError::AmountTooLarge(field),
    })
}
