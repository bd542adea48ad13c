//! [`Amount`]: a payment amount held exactly as a `Decimal` and kept as written, and the
//! exact reading of JSON number syntax behind it.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

/// A payment amount kept exactly as PortOne sent it: compared as a decimal, rendered as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount {
    value: Decimal,
    text: String,
}

/// The longest spelling of an amount a template writes as it came: a value a `Decimal` holds
/// needs at most 29 digits, a point and a few zeros.
const MAX_WRITTEN: usize = 40;

impl Amount {
    pub fn value(&self) -> Decimal {
        self.value
    }

    /// The amount digit for digit as it was sent: a JSON number's own text (`1e3`, `10.50`),
    /// or the content of a numeric string (JSON or form) without surrounding whitespace.
    /// Templates render [`Self::for_template`], which shortens a padded spelling.
    #[cfg(test)]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The amount for a template (`{amount}` in a reason, a path, a body): as written, except
    /// a spelling longer than 40 characters (`5000.000…0` padded to 60 KB, which
    /// would make a 60 KB reason), which is written as its value (`5000`).
    pub fn for_template(&self) -> Cow<'_, str> {
        if self.text.len() <= MAX_WRITTEN {
            Cow::Borrowed(&self.text)
        } else {
            Cow::Owned(self.value.normalize().to_string())
        }
    }

    /// The amount as a JSON number, for the decision log: as written, except that a numeric
    /// string with leading zeros (`"0100"`), which JSON numbers may not have, is written as its
    /// value (`100`).
    pub fn as_json_number(&self) -> Cow<'_, str> {
        let unsigned = self.text.strip_prefix('-').unwrap_or(&self.text);
        let bytes = unsigned.as_bytes();
        if bytes.len() > 1 && bytes[0] == b'0' && bytes[1].is_ascii_digit() {
            Cow::Owned(self.value.to_string())
        } else {
            Cow::Borrowed(&self.text)
        }
    }

    /// The amount as an integer when it is one (the usual case for KRW).
    pub fn as_i64(&self) -> Option<i64> {
        use rust_decimal::prelude::ToPrimitive;
        if self.value.fract().is_zero() {
            self.value.to_i64()
        } else {
            None
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Amount {
    /// A numeric string's amount (`"50000"`, `"10.50"`, a form's `amount=50000`): plain
    /// decimal notation only, surrounded by nothing but ASCII whitespace. JSON numbers may be
    /// written `1e3`, but in a string that is text each reader reads its own way (`parseInt`
    /// says 1, `Number` 1000), and a `forward` hands the merchant the string as it came.
    pub fn from_numeric_string(s: &str) -> Result<Amount, AmountError> {
        let text = s.trim_matches(|c: char| c.is_ascii_whitespace());
        let unsigned = text.strip_prefix('-').unwrap_or(text);
        let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, "0"));
        let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
        if !(digits(int) && digits(frac)) {
            return Err(AmountError::NotANumber);
        }
        let amount: Amount = text.parse()?;
        // `-0`: no negative amount, but a sign all the same, which a plain decimal has not.
        if unsigned.len() < text.len() {
            return Err(AmountError::NotANumber);
        }
        Ok(amount)
    }
}

impl FromStr for Amount {
    type Err = AmountError;

    /// Parses a non-negative decimal number written in JSON style (`50000`, `10.5`, `1e3`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
        // The usual case, a plain integer (`50000`), without the general parse.
        let value =
            if !text.is_empty() && text.len() <= 18 && text.bytes().all(|b| b.is_ascii_digit()) {
                text.parse::<u64>()
                    .map(Decimal::from)
                    .map_err(|_| AmountError::NotANumber)?
            } else if is_json_number(text) {
                exact_decimal(text)?
            } else {
                return Err(AmountError::NotANumber);
            };
        Ok(Amount {
            value,
            text: text.to_owned(),
        })
    }
}

/// The value of a number in JSON syntax, exactly or not at all.
///
/// Digits that carry no value are dropped first — leading zeros, and trailing zeros, which
/// only move the point (`5000.000…0` is 5000, `0.000…0` and `0e-50` are 0) — so only a value
/// that really needs more than `Decimal` holds is refused: over 28 decimal places, or a
/// mantissa over 96 bits (79,228,162,514,264,337,593,543,950,335). Nothing is ever rounded:
/// `Decimal::from_scientific` rounds digits beyond its precision
/// (`999.99999999999999999999999999e0` became 1000 and passed a `min: 1000`).
fn exact_decimal(text: &str) -> Result<Decimal, AmountError> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (unsigned, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = || int.bytes().chain(frac.bytes());
    let total = int.len() + frac.len();
    let leading = digits().take_while(|&b| b == b'0').count();
    if leading == total {
        // Zero, whatever the sign or the exponent.
        return Ok(Decimal::ZERO);
    }
    if negative {
        return Err(AmountError::Negative);
    }
    let trailing = digits().rev().take_while(|&b| b == b'0').count();
    // The value is `significand × 10^-scale`.
    let significant = total - leading - trailing;
    // Decimal's largest mantissa has 29 digits.
    if significant > 29 {
        return Err(AmountError::TooLarge);
    }
    let significand = digits()
        .skip(leading)
        .take(significant)
        .fold(0i128, |n, b| n * 10 + i128::from(b - b'0'));
    let exponent: i128 = match exponent {
        None => 0,
        // An exponent beyond i64 can only be out of range, the digits being so few.
        Some(e) => e.parse::<i64>().map_err(|_| AmountError::TooLarge)?.into(),
    };
    let scale = i128::try_from(frac.len()).map_err(|_| AmountError::TooLarge)?
        - i128::try_from(trailing).map_err(|_| AmountError::TooLarge)?
        - exponent;
    if scale >= 0 {
        // More than 28 decimal places cannot be held.
        let scale = u32::try_from(scale).map_err(|_| AmountError::TooLarge)?;
        return Decimal::try_from_i128_with_scale(significand, scale)
            .map_err(|_| AmountError::TooLarge);
    }
    // A positive power of ten: 10^29 already exceeds Decimal's range.
    let shift = u32::try_from(-scale).map_err(|_| AmountError::TooLarge)?;
    if shift > 28 {
        return Err(AmountError::TooLarge);
    }
    let value = significand
        .checked_mul(10i128.pow(shift))
        .ok_or(AmountError::TooLarge)?;
    Decimal::try_from_i128_with_scale(value, 0).map_err(|_| AmountError::TooLarge)
}

/// The value of a JSON number of either sign, exactly or `None` (see [`exact_decimal`]): a
/// number of `payload` or of an upstream's answer written with an exponent (`1.5e2`) is as
/// exact as one written out.
pub(crate) fn exact_number(text: &str) -> Option<Decimal> {
    match text.strip_prefix('-') {
        Some(unsigned) => exact_decimal(unsigned).ok().map(|d| -d),
        None => exact_decimal(text).ok(),
    }
}

/// JSON number syntax: `-?digits(.digits)?([eE][+-]?digits)?`.
fn is_json_number(s: &str) -> bool {
    fn digits(s: &str) -> (&str, usize) {
        let n = s.bytes().take_while(u8::is_ascii_digit).count();
        (&s[n..], n)
    }
    let s = s.strip_prefix('-').unwrap_or(s);
    let (mut rest, n) = digits(s);
    if n == 0 {
        return false;
    }
    if let Some(frac) = rest.strip_prefix('.') {
        let (r, n) = digits(frac);
        if n == 0 {
            return false;
        }
        rest = r;
    }
    if let Some(exp) = rest.strip_prefix(['e', 'E']) {
        let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
        let (r, n) = digits(exp);
        if n == 0 {
            return false;
        }
        rest = r;
    }
    rest.is_empty()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountError {
    NotANumber,
    Negative,
    TooLarge,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_write_an_amount_as_written_unless_the_spelling_is_long() {
        for (text, written) in [
            ("50000", "50000"),
            ("1e3", "1e3"),
            ("10.50", "10.50"),
            (
                "5000.000000000000000000000000000000",
                "5000.000000000000000000000000000000",
            ),
        ] {
            assert_eq!(text.parse::<Amount>().unwrap().for_template(), written);
        }
        let padded = format!("5000.{}", "0".repeat(60_000));
        assert_eq!(padded.parse::<Amount>().unwrap().for_template(), "5000");
        let padded = format!("0.{}5", "0".repeat(20));
        assert_eq!(
            padded.parse::<Amount>().unwrap().for_template(),
            "0.000000000000000000005"
        );
    }

    #[test]
    fn amount_parsing() {
        let a: Amount = "1e3".parse().unwrap();
        assert_eq!(a.as_i64(), Some(1000));
        assert_eq!(a.to_string(), "1e3");
        let a: Amount = "1000.00".parse().unwrap();
        assert_eq!(a.as_i64(), Some(1000));
        assert_eq!("-0".parse::<Amount>().unwrap().value(), Decimal::ZERO);
        assert_eq!("0x10".parse::<Amount>(), Err(AmountError::NotANumber));
        assert_eq!("1.2.3".parse::<Amount>(), Err(AmountError::NotANumber));
        assert_eq!(
            "99999999999999999999".parse::<Amount>().unwrap().as_i64(),
            None,
            "too big for i64 but still exact"
        );
    }

    #[test]
    fn amounts_render_as_written() {
        for text in [
            "50000",
            "10.5",
            "10.50",
            "1e3",
            "1E3",
            "1e+3",
            "5000e0",
            "3.0000001e6",
            "0e5",
            "3e6",
            "-0",
            "5000.000000000000000000000000000000",
        ] {
            let a: Amount = text.parse().unwrap();
            assert_eq!(a.to_string(), text);
            assert_eq!(a.as_str(), text);
            assert_eq!(a.as_json_number(), text, "valid JSON number syntax already");
        }
        // Surrounding whitespace of a numeric string is not part of the amount.
        assert_eq!(" 1000 ".parse::<Amount>().unwrap().to_string(), "1000");
        // A numeric string may have leading zeros, which a JSON number may not: the decision
        // log then writes the value.
        let a: Amount = "0100".parse().unwrap();
        assert_eq!((a.as_str(), a.as_json_number().as_ref()), ("0100", "100"));
        let a: Amount = "00.50".parse().unwrap();
        assert_eq!((a.as_str(), a.as_json_number().as_ref()), ("00.50", "0.5"));
        assert_eq!("0".parse::<Amount>().unwrap().as_json_number(), "0");
        assert_eq!("0.5".parse::<Amount>().unwrap().as_json_number(), "0.5");
    }

    #[test]
    fn numeric_strings_are_plain_decimals() {
        let value = |s: &str| Amount::from_numeric_string(s).map(|a| a.to_string());
        for (given, amount) in [
            ("50000", "50000"),
            (" 10.50\r\n", "10.50"),
            ("0100", "0100"),
        ] {
            assert_eq!(value(given), Ok(amount.to_owned()), "{given:?}");
        }
        assert_eq!(value("-5"), Err(AmountError::Negative));
        for bad in [
            "1e3",
            "1E3",
            "+5",
            ".5",
            "5.",
            "1,000",
            "\u{3000}1000",
            "0x10",
            "",
            "-",
            "-0",
            "-0.00",
            "-0000",
        ] {
            assert_eq!(value(bad), Err(AmountError::NotANumber), "{bad:?}");
        }
    }

    #[test]
    fn exponents_are_exact_or_refused() {
        let value = |s: &str| s.parse::<Amount>().map(|a| a.value().to_string());
        assert_eq!(value("1e3"), Ok("1000".into()));
        assert_eq!(value("1.5E1"), Ok("15".into()));
        assert_eq!(value("12345e-2"), Ok("123.45".into()));
        assert_eq!(value("0e-50"), Ok("0".into()));
        assert_eq!(value("5000e0"), Ok("5000".into()));
        assert_eq!(value("3.0000001e6"), Ok("3000000.1".into()));
        assert_eq!(value("0e5"), Ok("0".into()));
        assert_eq!(value("5e28"), Ok("50000000000000000000000000000".into()));
        // The audited fail-open: these were rounded to 1000 and 3000000 and passed the range.
        for s in [
            "999.99999999999999999999999999e0",
            "3000000.000000000000000000000001e0",
            "1e-30",
            "1e29",
            "1e400",
            "1e99999999999999999999",
        ] {
            assert_eq!(s.parse::<Amount>(), Err(AmountError::TooLarge), "{s}");
        }
        // Without an exponent the same digits were already refused.
        assert_eq!(
            "999.99999999999999999999999999".parse::<Amount>(),
            Err(AmountError::TooLarge)
        );
    }
}
