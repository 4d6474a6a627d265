//! Exact money: integer minor units inside, decimal text at the gateway boundary.
//!
//! i'mport sends and receives amounts as JSON numbers in the currency's major
//! unit (`1000` won, `12.34` dollars). Floats cannot hold most decimal
//! fractions exactly, so amounts are parsed from the number's *text* into an
//! [`Amount`] of minor units and written back as text. Nothing here touches
//! `f64`.

use std::fmt;
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// A currency i'mport settles in, with its number of minor-unit digits.
///
/// The list is closed on purpose: an amount in a currency whose exponent we
/// do not know cannot be converted exactly, so such a payment is refused
/// rather than guessed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Currency {
    /// Korean won (no minor unit).
    Krw,
    /// US dollar (cents).
    Usd,
    /// Japanese yen (no minor unit).
    Jpy,
    /// Euro (cents).
    Eur,
    /// Chinese yuan (fen).
    Cny,
}

impl Currency {
    /// The ISO 4217 code, as i'mport spells it.
    pub fn code(self) -> &'static str {
        match self {
            Currency::Krw => "KRW",
            Currency::Usd => "USD",
            Currency::Jpy => "JPY",
            Currency::Eur => "EUR",
            Currency::Cny => "CNY",
        }
    }

    /// Digits after the decimal point in the major unit.
    pub fn minor_digits(self) -> u32 {
        match self {
            Currency::Krw | Currency::Jpy => 0,
            Currency::Usd | Currency::Eur | Currency::Cny => 2,
        }
    }

    /// Parses a decimal number in the major unit (`"12.34"`, `"1000"`,
    /// `"1.5e2"`) into minor units, exactly.
    ///
    /// Refuses anything that is not a plain JSON number, that carries more
    /// precision than the currency has (`"0.001"` USD, `"10.5"` KRW), or that
    /// does not fit an `i64` of minor units.
    pub fn parse_major(self, text: &str) -> Result<Amount, AmountError> {
        let decimal = Decimal::parse(text)?;
        decimal.to_minor(self.minor_digits()).map(Amount)
    }

    /// Formats minor units as a decimal in the major unit, without trailing
    /// zeros (`1250` cents is `"12.5"`).
    pub fn format_major(self, amount: Amount) -> String {
        let digits = self.minor_digits();
        let minor = amount.0;
        if digits == 0 {
            return minor.to_string();
        }
        let scale = 10i64.pow(digits);
        let sign = if minor < 0 { "-" } else { "" };
        let magnitude = minor.unsigned_abs();
        let whole = magnitude / scale.unsigned_abs();
        let fraction = magnitude % scale.unsigned_abs();
        if fraction == 0 {
            return format!("{sign}{whole}");
        }
        let fraction = format!("{fraction:0width$}", width = digits as usize);
        format!("{sign}{whole}.{}", fraction.trim_end_matches('0'))
    }

    /// The amount as a JSON number token in the major unit.
    pub fn to_json(self, amount: Amount) -> Box<RawValue> {
        RawValue::from_string(self.format_major(amount))
            .expect("a formatted decimal is a valid JSON number")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = AmountError;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        [
            Currency::Krw,
            Currency::Usd,
            Currency::Jpy,
            Currency::Eur,
            Currency::Cny,
        ]
        .into_iter()
        .find(|c| c.code().eq_ignore_ascii_case(code))
        .ok_or_else(|| AmountError::UnknownCurrency(code.to_owned()))
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        code.parse().map_err(D::Error::custom)
    }
}

/// An exact amount in a currency's minor unit (won for KRW, cents for USD).
///
/// The currency travels beside it (on the payment): every amount of one
/// payment shares its currency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(i64);

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(0);

    /// An amount of `minor` units.
    pub const fn from_minor(minor: i64) -> Self {
        Amount(minor)
    }

    /// The amount in minor units.
    pub const fn minor(self) -> i64 {
        self.0
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// `self - other`, or `None` on overflow.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// `max(self - other, 0)`: what is left, never negative.
    pub fn saturating_remaining(self, spent: Amount) -> Amount {
        Amount(self.0.saturating_sub(spent.0).max(0))
    }

    /// True for amounts above zero.
    pub fn is_positive(self) -> bool {
        self.0 > 0
    }
}

/// Why an amount could not be converted exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AmountError {
    /// Not a JSON number.
    #[error("not a number")]
    NotANumber,
    /// More decimals than the currency's minor unit holds.
    #[error("more decimal places than the currency allows")]
    TooPrecise,
    /// Does not fit the range of amounts we handle.
    #[error("amount out of range")]
    OutOfRange,
    /// A currency code we cannot convert exactly.
    #[error("unsupported currency {0:?}")]
    UnknownCurrency(String),
}

/// The text of a JSON number, kept verbatim until its currency is known.
///
/// Deserializes only from a JSON number token (a string such as `"2000"` is a
/// type error), so a request's amount is never rounded on the way in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecimalText(String);

impl DecimalText {
    /// Wraps number text; checks that it is a JSON number.
    pub fn new(text: impl Into<String>) -> Result<Self, AmountError> {
        let text = text.into();
        Decimal::parse(&text)?;
        Ok(DecimalText(text))
    }

    /// The verbatim text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for numbers below zero (`-0` is not).
    pub fn is_negative(&self) -> bool {
        self.0.starts_with('-') && !self.is_zero()
    }

    /// True for any spelling of zero (`0`, `0.00`, `-0e5`).
    pub fn is_zero(&self) -> bool {
        Decimal::parse(&self.0).is_ok_and(|d| d.digits.bytes().all(|b| b == b'0'))
    }
}

impl<'de> Deserialize<'de> for DecimalText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        DecimalText::new(raw.get()).map_err(|_| {
            D::Error::invalid_type(serde::de::Unexpected::Other(raw.get()), &"a number")
        })
    }
}

impl Serialize for DecimalText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RawValue::from_string(self.0.clone())
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

/// A parsed JSON number: `negative`, decimal `digits`, times 10^`exponent`.
struct Decimal {
    negative: bool,
    digits: String,
    exponent: i64,
}

impl Decimal {
    /// Parses the JSON number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn parse(text: &str) -> Result<Decimal, AmountError> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        let (int_part, frac_part) = match mantissa.split_once('.') {
            Some((int_part, frac_part)) => (int_part, Some(frac_part)),
            None => (mantissa, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int_part) || (int_part.len() > 1 && int_part.starts_with('0')) {
            return Err(AmountError::NotANumber);
        }
        let frac_part = match frac_part {
            Some(f) if !all_digits(f) => return Err(AmountError::NotANumber),
            Some(f) => f,
            None => "",
        };
        let mut exponent: i64 = match exponent {
            Some(e) => {
                let unsigned = e.strip_prefix(['+', '-']).unwrap_or(e);
                if !all_digits(unsigned) {
                    return Err(AmountError::NotANumber);
                }
                // Absurd exponents cannot describe an amount in range.
                if unsigned.len() > 6 {
                    return Err(AmountError::OutOfRange);
                }
                e.parse().map_err(|_| AmountError::NotANumber)?
            }
            None => 0,
        };
        exponent -= i64::try_from(frac_part.len()).map_err(|_| AmountError::OutOfRange)?;
        let digits = format!("{int_part}{frac_part}");
        Ok(Decimal {
            negative,
            digits,
            exponent,
        })
    }

    /// The value in units of 10^-`scale`, if exact and in range.
    fn to_minor(&self, scale: u32) -> Result<i64, AmountError> {
        let shift = self.exponent + i64::from(scale);
        let significant = self.digits.trim_start_matches('0');
        if significant.is_empty() {
            return Ok(0);
        }
        let text = if shift >= 0 {
            // i64 holds at most 19 digits: reject before building huge strings.
            if significant.len() as i64 + shift > 19 {
                return Err(AmountError::OutOfRange);
            }
            format!("{significant}{}", "0".repeat(shift as usize))
        } else {
            let cut = usize::try_from(-shift).map_err(|_| AmountError::TooPrecise)?;
            if cut >= self.digits.len() {
                // Every significant digit would fall below the minor unit.
                return Err(AmountError::TooPrecise);
            }
            let (kept, dropped) = self.digits.split_at(self.digits.len() - cut);
            if dropped.bytes().any(|b| b != b'0') {
                return Err(AmountError::TooPrecise);
            }
            kept.to_owned()
        };
        let magnitude: i64 = text.parse().map_err(|_| AmountError::OutOfRange)?;
        Ok(if self.negative { -magnitude } else { magnitude })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_exact_decimals() {
        let usd = Currency::Usd;
        assert_eq!(usd.parse_major("12.34"), Ok(Amount(1234)));
        assert_eq!(usd.parse_major("12.5"), Ok(Amount(1250)));
        assert_eq!(usd.parse_major("12.50"), Ok(Amount(1250)));
        assert_eq!(usd.parse_major("0.01"), Ok(Amount(1)));
        assert_eq!(usd.parse_major("1e2"), Ok(Amount(10000)));
        assert_eq!(usd.parse_major("1.5E-1"), Ok(Amount(15)));
        assert_eq!(usd.parse_major("0.001"), Err(AmountError::TooPrecise));
        assert_eq!(usd.parse_major("0.010"), Ok(Amount(1)));
        let krw = Currency::Krw;
        assert_eq!(krw.parse_major("1000"), Ok(Amount(1000)));
        assert_eq!(krw.parse_major("1000.0"), Ok(Amount(1000)));
        assert_eq!(krw.parse_major("1000.5"), Err(AmountError::TooPrecise));
        assert_eq!(krw.parse_major("-5"), Ok(Amount(-5)));
        assert_eq!(krw.parse_major("0"), Ok(Amount(0)));
        assert_eq!(krw.parse_major("0.000"), Ok(Amount(0)));
    }

    #[test]
    fn refuses_what_is_not_a_json_number() {
        for text in [
            "", "-", "+1", "01", "1.", ".5", "1e", "1e+", "NaN", "Infinity", "0x10", "1 ", " 1",
            "1_000", "١٢", "1.2.3",
        ] {
            assert_eq!(
                Currency::Krw.parse_major(text),
                Err(AmountError::NotANumber),
                "{text:?}"
            );
        }
    }

    #[test]
    fn refuses_out_of_range() {
        assert_eq!(
            Currency::Krw.parse_major("99999999999999999999"),
            Err(AmountError::OutOfRange)
        );
        assert_eq!(
            Currency::Krw.parse_major("1e999999999"),
            Err(AmountError::OutOfRange)
        );
        assert_eq!(
            Currency::Usd.parse_major("1e-999999"),
            Err(AmountError::TooPrecise)
        );
        assert_eq!(
            Currency::Krw.parse_major("9223372036854775807"),
            Ok(Amount(i64::MAX))
        );
    }

    #[test]
    fn formats_without_trailing_zeros() {
        assert_eq!(Currency::Usd.format_major(Amount(1250)), "12.5");
        assert_eq!(Currency::Usd.format_major(Amount(1205)), "12.05");
        assert_eq!(Currency::Usd.format_major(Amount(1200)), "12");
        assert_eq!(Currency::Usd.format_major(Amount(-1)), "-0.01");
        assert_eq!(Currency::Krw.format_major(Amount(1000)), "1000");
    }

    #[test]
    fn decimal_text_takes_only_number_tokens() {
        assert!(serde_json::from_str::<DecimalText>("12.5").is_ok());
        assert!(serde_json::from_str::<DecimalText>("\"12.5\"").is_err());
        assert!(serde_json::from_str::<DecimalText>("null").is_err());
        assert!(serde_json::from_str::<DecimalText>("[1]").is_err());
        let text: DecimalText = serde_json::from_str("1.10").unwrap();
        assert_eq!(serde_json::to_string(&text).unwrap(), "1.10");
    }

    fn currency() -> impl Strategy<Value = Currency> {
        prop_oneof![
            Just(Currency::Krw),
            Just(Currency::Usd),
            Just(Currency::Jpy),
            Just(Currency::Eur),
            Just(Currency::Cny),
        ]
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(currency in currency(), minor in any::<i64>()) {
            let text = currency.format_major(Amount(minor));
            prop_assert_eq!(currency.parse_major(&text), Ok(Amount(minor)));
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,40}") {
            let _ = Currency::Usd.parse_major(&text);
            let _ = Currency::Krw.parse_major(&text);
        }

        #[test]
        fn parse_agrees_with_integer_arithmetic(
            whole in 0i64..1_000_000_000, cents in 0i64..100, exp in -3i64..4
        ) {
            // (whole.cents × 10^exp) dollars is N × 10^exp cents, N = whole·100 + cents.
            let text = format!("{whole}.{cents:02}e{exp}");
            let n = i128::from(whole * 100 + cents);
            let thousandths_of_cents = n * 10i128.pow(u32::try_from(exp + 3).unwrap());
            let exact = thousandths_of_cents % 1000 == 0;
            let expected_cents = thousandths_of_cents / 1000;
            match Currency::Usd.parse_major(&text) {
                Ok(Amount(got)) => { prop_assert!(exact); prop_assert_eq!(i128::from(got), expected_cents); }
                Err(AmountError::TooPrecise) => prop_assert!(!exact),
                Err(other) => prop_assert!(false, "{text}: {other:?}"),
            }
        }
    }
}
