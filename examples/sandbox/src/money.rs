//! Exact money handling.
//!
//! i'mport sends and receives amounts as JSON numbers in the currency's major
//! unit (`1000` won, `12.5` dollars). Going through `f64` would turn `10.05`
//! into `10.050000000000000711`, so the sandbox never does: amounts are parsed
//! from their decimal *text* straight into integer minor units, and written
//! back as decimal text.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

/// Currencies the sandbox can settle in, with their minor-unit scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Currency {
    /// Korean won, no minor unit. i'mport's default currency.
    #[default]
    #[serde(rename = "KRW")]
    Krw,
    /// US dollar, cents.
    #[serde(rename = "USD")]
    Usd,
    /// Japanese yen, no minor unit.
    #[serde(rename = "JPY")]
    Jpy,
    /// Euro, cents.
    #[serde(rename = "EUR")]
    Eur,
}

impl Currency {
    /// The ISO 4217 code, as i'mport writes it in `currency`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Krw => "KRW",
            Self::Usd => "USD",
            Self::Jpy => "JPY",
            Self::Eur => "EUR",
        }
    }

    /// Number of decimal digits of the minor unit.
    pub fn decimals(self) -> u32 {
        match self {
            Self::Krw | Self::Jpy => 0,
            Self::Usd | Self::Eur => 2,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A currency code the sandbox does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported currency {0:?}")]
pub struct UnknownCurrency(pub String);

impl FromStr for Currency {
    type Err = UnknownCurrency;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Krw, Self::Usd, Self::Jpy, Self::Eur]
            .into_iter()
            .find(|c| c.code().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownCurrency(s.to_owned()))
    }
}

/// Why an amount's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not a decimal number at all.
    #[error("amount is not a number")]
    Malformed,
    /// Amounts are never negative.
    #[error("amount must not be negative")]
    Negative,
    /// More decimals than the currency's minor unit has (e.g. `10.005` USD).
    #[error("amount has more decimals than {0} allows")]
    TooPrecise(Currency),
    /// Does not fit the sandbox's integer range.
    #[error("amount is too large")]
    TooLarge,
}

/// Largest number of significant digits accepted: keeps every amount well
/// inside `i64` minor units.
const MAX_DIGITS: usize = 18;

/// Parses a decimal amount in major units (`"10.05"`, `"1000"`, `"1e3"`)
/// into exact minor units of `currency`.
///
/// Accepts what a JSON number can spell plus surrounding whitespace, which
/// covers form-urlencoded values too. Trailing zeros beyond the minor unit
/// are fine (`"1000.00"` KRW is 1000); non-zero ones are not.
pub fn parse_amount(text: &str, currency: Currency) -> Result<i64, AmountError> {
    let text = text.trim();
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], parse_exponent(&unsigned[at + 1..])?),
        None => (unsigned, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.len() + frac_part.len() == 0 || !all_digits(int_part) || !all_digits(frac_part) {
        return Err(AmountError::Malformed);
    }

    // value = digits * 10^(exponent - frac_len); in minor units the power
    // grows by the currency's decimals.
    let digits = format!("{int_part}{frac_part}");
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return Ok(0);
    }
    if negative {
        return Err(AmountError::Negative);
    }
    let frac_len = i64::try_from(frac_part.len()).map_err(|_| AmountError::TooPrecise(currency))?;
    let shift = exponent - frac_len + i64::from(currency.decimals());

    let (kept, scale) = if shift >= 0 {
        (significant, shift)
    } else {
        // Digits below the minor unit must all be zeros.
        let dropped = usize::try_from(-shift).map_err(|_| AmountError::TooPrecise(currency))?;
        if dropped >= significant.len() {
            return Err(AmountError::TooPrecise(currency));
        }
        let (kept, below) = significant.split_at(significant.len() - dropped);
        if below.bytes().any(|b| b != b'0') {
            return Err(AmountError::TooPrecise(currency));
        }
        (kept, 0)
    };
    let scale = usize::try_from(scale).map_err(|_| AmountError::TooLarge)?;
    if kept.len().saturating_add(scale) > MAX_DIGITS {
        return Err(AmountError::TooLarge);
    }
    let base: i64 = kept.parse().map_err(|_| AmountError::TooLarge)?;
    let factor = 10_i64.checked_pow(u32::try_from(scale).map_err(|_| AmountError::TooLarge)?);
    factor
        .and_then(|f| base.checked_mul(f))
        .ok_or(AmountError::TooLarge)
}

/// Exponents are clamped: anything this far out is too large or too precise
/// anyway, and clamping keeps the arithmetic above overflow-free.
fn parse_exponent(text: &str) -> Result<i64, AmountError> {
    const LIMIT: i64 = 10_000;
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AmountError::Malformed);
    }
    let significant = digits.trim_start_matches('0');
    let magnitude = if significant.len() > 5 {
        LIMIT
    } else {
        significant.parse::<i64>().unwrap_or(0).min(LIMIT)
    };
    Ok(if negative { -magnitude } else { magnitude })
}

/// Writes minor units as a major-unit decimal without trailing zeros, the
/// way i'mport prints numbers: USD 1250 -> `12.5`, USD 1000 -> `10`,
/// KRW 1000 -> `1000`.
pub fn format_amount(minor: i64, currency: Currency) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let magnitude = minor.unsigned_abs();
    let decimals = currency.decimals();
    let unit = 10_u64.pow(decimals);
    let (major, fraction) = (magnitude / unit, magnitude % unit);
    if fraction == 0 {
        return format!("{sign}{major}");
    }
    let width = decimals as usize;
    let fraction = format!("{fraction:0width$}");
    format!("{sign}{major}.{}", fraction.trim_end_matches('0'))
}

/// An amount that serializes as a bare JSON number in major units, written
/// from its exact decimal text (never through `f64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JsonAmount {
    pub(crate) minor: i64,
    pub(crate) currency: Currency,
}

impl Serialize for JsonAmount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = format_amount(self.minor, self.currency);
        RawValue::from_string(text)
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_minor_units() {
        let cases = [
            ("1000", Currency::Krw, 1000),
            ("1000.0", Currency::Krw, 1000),
            ("1e3", Currency::Krw, 1000),
            ("10.05", Currency::Usd, 1005),
            ("0.01", Currency::Usd, 1),
            ("12.5", Currency::Usd, 1250),
            ("12.50", Currency::Usd, 1250),
            ("1.005e1", Currency::Usd, 1005),
            ("1005E-2", Currency::Eur, 1005),
            (" 7 ", Currency::Jpy, 7),
            ("0", Currency::Usd, 0),
            ("-0", Currency::Krw, 0),
            ("0e999999999999", Currency::Krw, 0),
        ];
        for (text, currency, minor) in cases {
            assert_eq!(parse_amount(text, currency), Ok(minor), "{text} {currency}");
        }
    }

    #[test]
    fn refuses_what_the_currency_cannot_hold() {
        use AmountError::*;
        let cases = [
            ("10.5", Currency::Krw, TooPrecise(Currency::Krw)),
            ("10.005", Currency::Usd, TooPrecise(Currency::Usd)),
            ("1e-3", Currency::Usd, TooPrecise(Currency::Usd)),
            ("1e-999999999", Currency::Usd, TooPrecise(Currency::Usd)),
            ("-5", Currency::Krw, Negative),
            ("1e99", Currency::Krw, TooLarge),
            ("99999999999999999999", Currency::Krw, TooLarge),
            ("", Currency::Krw, Malformed),
            (".", Currency::Krw, Malformed),
            ("1,000", Currency::Krw, Malformed),
            ("12abc", Currency::Krw, Malformed),
            ("1e", Currency::Krw, Malformed),
            ("NaN", Currency::Usd, Malformed),
        ];
        for (text, currency, error) in cases {
            assert_eq!(
                parse_amount(text, currency),
                Err(error),
                "{text} {currency}"
            );
        }
    }

    #[test]
    fn formats_major_units_without_trailing_zeros() {
        assert_eq!(format_amount(1250, Currency::Usd), "12.5");
        assert_eq!(format_amount(1005, Currency::Usd), "10.05");
        assert_eq!(format_amount(1000, Currency::Usd), "10");
        assert_eq!(format_amount(1, Currency::Eur), "0.01");
        assert_eq!(format_amount(1000, Currency::Krw), "1000");
        assert_eq!(format_amount(0, Currency::Usd), "0");
    }

    #[test]
    fn json_amount_is_a_bare_number() {
        let json = serde_json::to_string(&JsonAmount {
            minor: 1006,
            currency: Currency::Usd,
        })
        .unwrap();
        assert_eq!(json, "10.06");
    }

    #[test]
    fn currency_codes_round_trip() {
        for c in [Currency::Krw, Currency::Usd, Currency::Jpy, Currency::Eur] {
            assert_eq!(c.code().parse::<Currency>(), Ok(c));
        }
        assert_eq!("usd".parse::<Currency>(), Ok(Currency::Usd));
        assert!("XYZ".parse::<Currency>().is_err());
    }
}
