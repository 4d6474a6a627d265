//! Property tests of [`mask_gateway_message`]: whatever account, holder and
//! phone a request sent, and however a gateway's message regroups and
//! surrounds them, nothing of them survives.

use proptest::prelude::*;
use proptest::sample::select;
use refund_core::{mask_gateway_message, RefundAccount};

/// An account number as a client sends it: 8 to 14 digits, maybe grouped
/// with `-` (the only separator the contract allows), at most 16 characters.
fn sent_account() -> impl Strategy<Value = (String, String)> {
    (
        proptest::collection::vec(0..10u8, 8..=14),
        any::<bool>(),
        2..=6usize,
    )
        .prop_map(|(digits, hyphens, group)| {
            let digits: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
            let mut sent = String::new();
            for (i, c) in digits.chars().enumerate() {
                // At most two hyphens, so the text stays within 16 characters.
                if hyphens && i > 0 && i % group == 0 && sent.matches('-').count() < 2 {
                    sent.push('-');
                }
                sent.push(c);
            }
            (digits, sent)
        })
}

/// A holder's name: Hangul or Latin letters, one or two words.
fn holder() -> impl Strategy<Value = String> {
    let hangul = proptest::collection::vec(0xAC00u32..=0xD7A3, 2..=4).prop_map(|cs| {
        cs.into_iter()
            .filter_map(char::from_u32)
            .collect::<String>()
    });
    let latin =
        ("[A-Z][a-z]{1,5}", proptest::option::of("[A-Z][a-z]{1,6}")).prop_map(|(first, last)| {
            match last {
                Some(last) => format!("{first} {last}"),
                None => first,
            }
        });
    prop_oneof![hangul, latin]
}

/// A Korean mobile number, national or international, as sent.
fn phone() -> impl Strategy<Value = (String, String)> {
    ("[0-9]{4}", "[0-9]{4}", any::<bool>()).prop_map(|(middle, last, international)| {
        let sent = if international {
            format!("+82-10-{middle}-{last}")
        } else {
            format!("010-{middle}-{last}")
        };
        // What a PG prints back: always the national form.
        (format!("010{middle}{last}"), sent)
    })
}

/// How a gateway prints a number back: its digits in groups of its own
/// choosing (`sizes`, repeated), joined by one separator style.
fn regroup(digits: &str, sizes: &[usize], separator: &str) -> String {
    let mut out = String::new();
    let mut rest = digits;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let take = (*size).min(rest.len());
        if !out.is_empty() {
            out.push_str(separator);
        }
        out.push_str(&rest[..take]);
        rest = &rest[take..];
    }
    out
}

fn separator() -> impl Strategy<Value = &'static str> {
    select(vec!["", "-", " ", ".", " - ", "/", "_", "  "])
}

fn grouping() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(1..=6usize, 1..=4)
}

/// Filler text around the echoes: words in Korean and English, punctuation,
/// no digits (so every digit left in the result comes from an echo).
fn filler() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        select(vec![
            "환불",
            "계좌",
            "예금주",
            "불일치",
            "확인",
            "실패",
            "PG",
            "error",
            "account",
            "holder",
            "tel",
            ":",
            "(",
            ")",
            "[",
            "]",
            ",",
            ".",
            "/",
            "*",
            "  ",
        ]),
        0..6,
    )
    .prop_map(|words| words.join(" "))
}

fn digits_only(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// True when `haystack` contains a run of `min` or more of `secret`'s
/// digits in a row.
fn shares_a_run(haystack: &str, secret: &str, min: usize) -> bool {
    secret.len() >= min && (0..=secret.len() - min).any(|i| haystack.contains(&secret[i..i + min]))
}

fn without_spaces(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn nothing_of_an_echoed_account_holder_or_phone_survives(
        (account_digits, account_sent) in sent_account(),
        holder in holder(),
        (phone_digits, phone_sent) in phone(),
        account_grouping in grouping(),
        account_separator in separator(),
        phone_grouping in grouping(),
        phone_separator in separator(),
        fillers in proptest::collection::vec(filler(), 5),
        order in 0..6u8,
        upper in any::<bool>(),
        tight in any::<bool>(),
    ) {
        let account_echo = regroup(&account_digits, &account_grouping, account_separator);
        let holder_echo = if upper { holder.to_uppercase() } else { holder.clone() };
        let phone_echo = regroup(&phone_digits, &phone_grouping, phone_separator);
        let mut echoes = [account_echo.clone(), holder_echo.clone(), phone_echo.clone()];
        echoes.rotate_left(usize::from(order % 3));
        if order >= 3 {
            echoes.swap(0, 1);
        }
        // Echoes glued to each other (`tight`) or set in filler text.
        let glue = |i: usize| if tight { String::new() } else { format!(" {} ", fillers[i]) };
        let message = format!(
            "{}{}{}{}{}{}{}",
            fillers[3], echoes[0], glue(0), echoes[1], glue(1), echoes[2], fillers[4]
        );
        let sent = RefundAccount {
            holder: holder.clone(),
            bank: "088".to_owned(),
            account: account_sent,
            tel: Some(phone_sent),
        };

        let masked = mask_gateway_message(&message, Some(&sent));

        let left = digits_only(&masked);
        prop_assert!(!shares_a_run(&left, &account_digits, 4), "account in {masked:?} (from {message:?})");
        prop_assert!(!shares_a_run(&left, &phone_digits, 4), "phone in {masked:?} (from {message:?})");
        prop_assert!(
            !without_spaces(&masked).contains(&without_spaces(&holder)),
            "holder in {masked:?} (from {message:?})"
        );
        for part in holder.split_whitespace().filter(|p| p.chars().count() >= 2) {
            prop_assert!(
                !masked.to_lowercase().contains(&part.to_lowercase()),
                "{part:?} in {masked:?} (from {message:?})"
            );
        }
        // Masking is stable: a stored message masked again does not change.
        prop_assert_eq!(mask_gateway_message(&masked, Some(&sent)), masked.clone());
    }

    /// With nothing sent (a lookup's refusal), an unknown long number still
    /// shows only its last four digits, and short numbers are kept.
    #[test]
    fn unknown_long_numbers_show_only_their_last_four(
        number in "[0-9]{8,20}",
        short in "[0-9]{1,3}",
        before in filler(),
        after in filler(),
    ) {
        let message = format!("{before} {number} code {short} {after}");
        let masked = mask_gateway_message(&message, None);
        prop_assert!(!masked.contains(&number));
        let expected_tail = format!("{} code {short}", &number[number.len() - 4..]);
        prop_assert!(masked.contains(&expected_tail), "{masked:?}");
    }
}
