//! Property tests of the two places hostile or foreign text enters the
//! core: the cancel request parser (`serde_json` into [`CancelRequest`],
//! then [`CancelRequest::validate`] and [`ValidRequest::amounts`]) and the
//! money conversion between decimal text and exact minor units.
//!
//! For the parser: nothing panics on any input, whatever passes validation
//! honours every limit of DESIGN.md's contract, and every request the
//! contract allows does pass, with its amount converted exactly. For money:
//! parsing agrees with an independent integer computation, formatting and
//! parsing round-trip, and the sandbox's separate implementation of i'mport
//! reads exactly what we write (and we read what it writes).

use proptest::prelude::*;
use proptest::sample::select;
use refund_core::{Amount, AmountError, CancelRequest, Currency, DecimalText, RequestError};

/// The contract's limits (DESIGN.md, `invalid_request`).
const MAX_REASON: usize = 256;
const MAX_HOLDER: usize = 16;
const MAX_ACCOUNT: usize = 16;
const MAX_BANK: usize = 4;
const MAX_ID: usize = 128;

const CURRENCIES: [Currency; 5] = [
    Currency::Krw,
    Currency::Usd,
    Currency::Jpy,
    Currency::Eur,
    Currency::Cny,
];

fn currency() -> impl Strategy<Value = Currency> {
    select(CURRENCIES.to_vec())
}

// ---------------------------------------------------------------------------
// The request parser.

/// Strings of every kind: any unicode, controls, lengths around the limits.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,20}",
        "\\PC{0,3}[\\x00-\\x1f\\x7f\u{85}]\\PC{0,3}",
        select(vec![3usize, 4, 5, 15, 16, 17, 127, 128, 129, 255, 256, 257])
            .prop_map(|n| "9".repeat(n)),
        select(vec![16usize, 17, 128, 129, 256, 257]).prop_map(|n| "가".repeat(n)),
        "[ \t]{0,3}[0-9-]{0,18}[ \t]{0,3}",
    ]
}

/// JSON values as text, including numbers no float can hold.
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        select(vec![
            "null",
            "true",
            "false",
            "-0",
            "0.0",
            "1e999999",
            "1e-999999",
            "-1e2"
        ])
        .prop_map(str::to_owned),
        any::<i64>().prop_map(|n| n.to_string()),
        "-?(0|[1-9][0-9]{0,25})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,7})?",
        any_text().prop_map(|s| serde_json::to_string(&s).unwrap()),
        (select(vec!["$ne", "$gt", "$where"]), any_text())
            .prop_map(|(op, v)| format!("{{\"{op}\":{}}}", serde_json::to_string(&v).unwrap())),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(|items| format!("[{}]", items.join(",")))
    })
}

const FIELDS: [&str; 9] = [
    "merchant_uid",
    "cancel_request_amount",
    "reason",
    "refund_holder",
    "refund_bank",
    "refund_account",
    "refund_tel",
    "tax_free",
    "vat_amount",
];

/// A request-shaped JSON object: known and unknown fields, any values.
fn request_json() -> impl Strategy<Value = String> {
    let name = prop_oneof![4 => select(FIELDS.to_vec()).prop_map(str::to_owned), 1 => any_text()];
    let value = prop_oneof![
        any_text().prop_map(|s| serde_json::to_string(&s).unwrap()),
        json_value(),
    ];
    (any_text(), prop::collection::vec((name, value), 0..8)).prop_map(|(uid, fields)| {
        let mut text = format!(
            "{{\"merchant_uid\":{}",
            serde_json::to_string(&uid).unwrap()
        );
        for (name, value) in fields {
            text.push_str(&format!(
                ",{}:{value}",
                serde_json::to_string(&name).unwrap()
            ));
        }
        text + "}"
    })
}

/// A decimal amount `minor` in `currency`, spelled one of several ways.
fn spelled(minor: i64, currency: Currency, spelling: u8) -> String {
    let plain = currency.format_major(Amount::from_minor(minor));
    match spelling % 4 {
        0 => plain,
        1 if plain.contains('.') => format!("{plain}000"),
        1 => format!("{plain}.000"),
        2 => format!("{minor}e-{}", currency.minor_digits()),
        _ => format!("{}0E-{}", minor, currency.minor_digits() + 1),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Nothing panics, and whatever validates honours every limit.
    #[test]
    fn the_parser_never_panics_and_enforces_the_limits(
        body in prop_oneof![request_json(), json_value(), "\\PC{0,60}"],
        currency in currency(),
        refund_minor in any::<i64>(),
    ) {
        let Ok(request) = serde_json::from_str::<CancelRequest>(&body) else { return Ok(()) };
        let Ok(valid) = request.validate() else { return Ok(()) };
        let uid = &valid.merchant_uid;
        prop_assert!(!uid.trim().is_empty() && uid.chars().count() <= MAX_ID);
        prop_assert!(!uid.chars().any(char::is_control));
        if let Some(reason) = &valid.reason {
            prop_assert!(!reason.is_empty() && reason.trim() == reason);
            prop_assert!(reason.chars().count() <= MAX_REASON);
            prop_assert!(!reason.chars().any(char::is_control));
        }
        if let Some(account) = &valid.account {
            prop_assert!(!account.holder.is_empty() && account.holder.chars().count() <= MAX_HOLDER);
            prop_assert!(!account.holder.chars().any(char::is_control));
            prop_assert!(!account.bank.is_empty() && account.bank.len() <= MAX_BANK);
            prop_assert!(account.bank.chars().all(|c| c.is_ascii_alphanumeric()));
            prop_assert!(!account.account.is_empty() && account.account.len() <= MAX_ACCOUNT);
            prop_assert!(account.account.chars().all(|c| c.is_ascii_digit() || c == '-'));
        }
        let Ok(amounts) = valid.amounts(currency) else { return Ok(()) };
        prop_assert!(amounts.amount.is_none_or(Amount::is_positive));
        let _ = amounts.check_parts(Amount::from_minor(refund_minor));
        let fingerprint = valid.fingerprint(&amounts);
        prop_assert_eq!(fingerprint.len(), 64);
        prop_assert_eq!(valid.fingerprint(&amounts), fingerprint);
    }

    /// Every request the contract allows passes, amounts exact whatever
    /// their spelling, and the same refund spelled differently has the same
    /// fingerprint (so a retried request replays instead of being refused).
    #[test]
    fn every_allowed_request_passes_with_its_exact_amount(
        uid in "[A-Za-z0-9_-]{1,128}",
        reason in prop::option::of("[^\\p{C}\\s]\\PC{0,200}[^\\p{C}\\s]"),
        account in prop::option::of(("[가-힣a-zA-Z]{1,16}", "[0-9A-Z]{1,4}", "[0-9]{1,8}(-[0-9]{1,6})?")),
        currency in currency(),
        minor in 1i64..=1_000_000_000_000,
        spelling in any::<u8>(),
        other_spelling in any::<u8>(),
    ) {
        let amount = spelled(minor, currency, spelling);
        let mut body = serde_json::json!({"merchant_uid": uid, "reason": reason});
        if let Some((holder, bank, number)) = &account {
            body["refund_holder"] = holder.as_str().into();
            body["refund_bank"] = bank.as_str().into();
            body["refund_account"] = number.as_str().into();
        }
        let with_amount = |amount: &str| {
            let text = body.to_string();
            format!("{},\"cancel_request_amount\":{amount}}}", &text[..text.len() - 1])
        };
        let parse = |text: String| {
            let request: CancelRequest = serde_json::from_str(&text).expect("a request");
            request.validate().expect("an allowed request")
        };
        let valid = parse(with_amount(&amount));
        prop_assert_eq!(&valid.merchant_uid, &uid);
        prop_assert_eq!(valid.account.is_some(), account.is_some());
        let amounts = valid.amounts(currency).expect("an exact amount");
        prop_assert_eq!(amounts.amount, Some(Amount::from_minor(minor)));
        let again = parse(with_amount(&spelled(minor, currency, other_spelling)));
        let again_amounts = again.amounts(currency).unwrap();
        prop_assert_eq!(valid.fingerprint(&amounts), again.fingerprint(&again_amounts));
        let more = parse(with_amount(&currency.format_major(Amount::from_minor(minor + 1))));
        let more_amounts = more.amounts(currency).unwrap();
        prop_assert_ne!(valid.fingerprint(&amounts), more.fingerprint(&more_amounts));
    }

    /// Some but not all of the account fields is always the dedicated error.
    #[test]
    fn a_partial_refund_account_is_refused(
        holder in prop::option::of("[a-z]{1,16}"),
        bank in prop::option::of("[0-9]{2}"),
        number in prop::option::of("[0-9]{6,16}"),
    ) {
        let given = [holder.is_some(), bank.is_some(), number.is_some()];
        prop_assume!(given.iter().any(|g| *g) && !given.iter().all(|g| *g));
        let request = serde_json::json!({
            "merchant_uid": "order-1",
            "refund_holder": holder,
            "refund_bank": bank,
            "refund_account": number,
        });
        let request: CancelRequest = serde_json::from_value(request).unwrap();
        prop_assert_eq!(request.validate().unwrap_err(), RequestError::PartialAccount);
    }
}

// ---------------------------------------------------------------------------
// Money.

/// What `text` (a JSON number: `-`? `int`.`frac` e`exp`) is in `currency`'s
/// minor units, computed independently with 128-bit integers: the exact
/// value, or why it has none.
fn oracle(
    negative: bool,
    int: &str,
    frac: &str,
    exp: i64,
    currency: Currency,
) -> Result<i64, AmountError> {
    let digits = format!("{int}{frac}");
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return Ok(0);
    }
    let mantissa: i128 = significant.parse().map_err(|_| AmountError::OutOfRange)?;
    let shift = exp - i64::try_from(frac.len()).unwrap() + i64::from(currency.minor_digits());
    let magnitude = if shift >= 0 {
        10i128
            .checked_pow(u32::try_from(shift).unwrap())
            .and_then(|p| mantissa.checked_mul(p))
    } else {
        let divisor = 10i128.checked_pow(u32::try_from(-shift).unwrap());
        match divisor {
            Some(d) if mantissa % d == 0 => Some(mantissa / d),
            _ => return Err(AmountError::TooPrecise),
        }
    };
    let magnitude = magnitude
        .and_then(|m| i64::try_from(m).ok())
        .ok_or(AmountError::OutOfRange)?;
    Ok(if negative { -magnitude } else { magnitude })
}

fn sandbox_currency(currency: Currency) -> Option<iamport_sandbox::Currency> {
    match currency {
        Currency::Krw => Some(iamport_sandbox::Currency::Krw),
        Currency::Usd => Some(iamport_sandbox::Currency::Usd),
        Currency::Jpy => Some(iamport_sandbox::Currency::Jpy),
        Currency::Eur => Some(iamport_sandbox::Currency::Eur),
        Currency::Cny => None,
    }
}

/// The sandbox keeps amounts under 18 significant digits.
const SANDBOX_LIMIT: i64 = 100_000_000_000_000_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Parsing agrees with exact integer arithmetic on every JSON number
    /// spelling: value, too many decimals, or out of range.
    #[test]
    fn parsing_matches_exact_integer_arithmetic(
        negative in any::<bool>(),
        int in "(0|[1-9][0-9]{0,22})",
        frac in prop::option::of("[0-9]{1,12}"),
        exp in prop::option::of(-30i64..30),
        upper_e in any::<bool>(),
        currency in currency(),
    ) {
        let mut text = format!("{}{int}", if negative { "-" } else { "" });
        if let Some(frac) = &frac {
            text.push('.');
            text.push_str(frac);
        }
        if let Some(exp) = exp {
            text.push_str(&format!("{}{exp}", if upper_e { 'E' } else { 'e' }));
        }
        let expected = oracle(negative, &int, frac.as_deref().unwrap_or(""), exp.unwrap_or(0), currency);
        let got = currency.parse_major(&text).map(Amount::minor);
        prop_assert_eq!(got, expected, "{} in {}", text, currency);
    }

    /// Formatting never panics, and its text is a JSON number that parses
    /// back to the same amount, also through `DecimalText` and serde.
    #[test]
    fn formatting_round_trips_through_json(minor in any::<i64>(), currency in currency()) {
        let amount = Amount::from_minor(minor);
        let json = currency.to_json(amount);
        prop_assert_eq!(json.get(), currency.format_major(amount));
        let text: DecimalText = serde_json::from_str(json.get()).expect("a JSON number");
        prop_assert_eq!(text.as_str(), json.get());
        prop_assert_eq!(serde_json::to_string(&text).unwrap(), json.get());
        prop_assert_eq!(currency.parse_major(text.as_str()), Ok(amount));
        prop_assert_eq!(text.is_negative(), minor < 0);
        prop_assert_eq!(text.is_zero(), minor == 0);
    }

    /// What we send, i'mport (modelled independently by the sandbox) reads
    /// as the same amount, and what it writes we read back exactly.
    #[test]
    fn the_gateway_reads_what_we_write_and_we_read_what_it_writes(
        minor in 0i64..SANDBOX_LIMIT,
        currency in currency(),
    ) {
        let Some(theirs) = sandbox_currency(currency) else { return Ok(()) };
        let ours = currency.format_major(Amount::from_minor(minor));
        prop_assert_eq!(iamport_sandbox::parse_amount(&ours, theirs), Ok(minor));
        let written = iamport_sandbox::format_amount(minor, theirs);
        prop_assert_eq!(currency.parse_major(&written), Ok(Amount::from_minor(minor)));
    }

    /// On any JSON number both parsers agree: the same exact value, or
    /// both refuse a value finer than the currency's minor unit.
    #[test]
    fn both_parsers_agree_on_every_number(
        int in "(0|[1-9][0-9]{0,12})",
        frac in prop::option::of("[0-9]{1,6}"),
        exp in prop::option::of(-8i64..8),
        currency in currency(),
    ) {
        let Some(theirs) = sandbox_currency(currency) else { return Ok(()) };
        let mut text = int.clone();
        if let Some(frac) = &frac {
            text.push('.');
            text.push_str(frac);
        }
        if let Some(exp) = exp {
            text.push_str(&format!("e{exp}"));
        }
        let ours = currency.parse_major(&text);
        let sandbox = iamport_sandbox::parse_amount(&text, theirs);
        match &ours {
            Ok(amount) if amount.minor() < SANDBOX_LIMIT => {
                prop_assert_eq!(&sandbox, &Ok(amount.minor()), "{}", text);
            }
            Err(AmountError::TooPrecise) => {
                prop_assert!(matches!(sandbox, Err(iamport_sandbox::AmountError::TooPrecise(_))), "{}", text);
            }
            _ => {}
        }
        if let Ok(minor) = sandbox {
            prop_assert_eq!(ours, Ok(Amount::from_minor(minor)), "{}", text);
        }
    }

    /// Number-like garbage never panics the parser.
    #[test]
    fn number_like_garbage_never_panics(text in "[-+0-9.eE ]{0,40}", currency in currency()) {
        let _ = currency.parse_major(&text);
        let _ = DecimalText::new(text);
    }

    /// Amount arithmetic is exact or says it overflowed, never wraps.
    #[test]
    fn amount_arithmetic_is_exact_or_checked(a in any::<i64>(), b in any::<i64>()) {
        let (x, y) = (Amount::from_minor(a), Amount::from_minor(b));
        let exact = |v: i128| i64::try_from(v).ok().map(Amount::from_minor);
        prop_assert_eq!(x.checked_add(y), exact(i128::from(a) + i128::from(b)));
        prop_assert_eq!(x.checked_sub(y), exact(i128::from(a) - i128::from(b)));
        let remaining = x.saturating_remaining(y);
        prop_assert!(remaining.minor() >= 0);
        if let Some(difference) = exact(i128::from(a) - i128::from(b)) {
            prop_assert_eq!(remaining, difference.max(Amount::ZERO));
        }
    }
}
