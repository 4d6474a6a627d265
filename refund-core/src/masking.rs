//! Gateway messages made safe to answer, log and store.
//!
//! A PG's refusal is free text, and some PGs echo what they were sent: the
//! refund account (often regrouped with their own separators,
//! `562-1110594-8400` or `5621 1105 9484 00`), the holder's name, the
//! phone. The message is shown to the client (`gateway_message`), logged
//! and stored in the journal, so everything the request sent is masked
//! before any of that happens, in [`mask_gateway_message`], the one place
//! that decides what of a gateway's message survives.

use crate::refund::RefundAccount;

/// Longest gateway message kept, in characters.
const MAX_MESSAGE_CHARS: usize = 500;

/// Shortest run of an account's or phone's digits that counts as an echo.
/// Three digits are too common in ordinary text ("code 400") to mask, and
/// reveal too little of a number to matter.
const MIN_ECHOED_DIGITS: usize = 4;

/// How many non-alphanumeric characters may separate two digits of one
/// echoed number (`-`, ` `, `.`, ` - `, ...).
const MAX_SEPARATOR_CHARS: usize = 3;

/// Unknown digit runs at least this long are masked too (a number the PG
/// prints that we did not send, e.g. another account).
const MIN_MASKED_RUN: usize = 8;

/// The character a masked character becomes.
const MASK: char = '*';

/// `message` as it may be shown, logged and stored.
///
/// Whatever the request sent in `sent` (the refund account, the holder's
/// name and phone) is masked wherever the message repeats it:
/// - account and phone: every run of at least four of their digits, in
///   order, whatever separators or grouping the message uses in between
///   (all digits of the run are masked, none is shown);
/// - holder: the name in any letter case, with or without its spaces, and
///   each of its space-separated parts of two characters or more.
///
/// Independently of `sent`, control characters are dropped, the text is cut
/// to 500 characters, and any other run of eight or more digits shows only
/// its last four.
///
/// Pure and idempotent: masking a masked message changes nothing.
pub fn mask_gateway_message(message: &str, sent: Option<&RefundAccount>) -> String {
    let mut chars: Vec<char> = message
        .chars()
        .take(MAX_MESSAGE_CHARS)
        .filter(|c| !c.is_control())
        .collect();
    if let Some(account) = sent {
        let mut masked = vec![false; chars.len()];
        mark_digits(&chars, &digits_of(&account.account), &mut masked);
        if let Some(tel) = &account.tel {
            mark_digits(&chars, &digits_of(tel), &mut masked);
        }
        mark_name(&chars, &account.holder, &mut masked);
        for (c, masked) in chars.iter_mut().zip(masked) {
            if masked {
                *c = MASK;
            }
        }
    }
    mask_long_digit_runs(&chars)
}

fn digits_of(text: &str) -> Vec<char> {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// Marks every run of `secret`'s digits (at least [`MIN_ECHOED_DIGITS`] of
/// them in a row, or all of a shorter secret) that appears in `chars` as
/// one number: digits separated by at most [`MAX_SEPARATOR_CHARS`]
/// non-alphanumeric characters.
fn mark_digits(chars: &[char], secret: &[char], masked: &mut [bool]) {
    if secret.is_empty() {
        return;
    }
    let min_run = MIN_ECHOED_DIGITS.min(secret.len());
    for number in numbers(chars) {
        let digits: Vec<char> = number.iter().map(|&at| chars[at]).collect();
        // Every common substring of at least `min_run` digits, found from
        // each pair of starting points: the inputs are at most 500 and 20
        // digits, so the quadratic walk is cheap.
        for start in 0..digits.len() {
            for from in 0..secret.len() {
                let common = digits[start..]
                    .iter()
                    .zip(&secret[from..])
                    .take_while(|(a, b)| a == b)
                    .count();
                if common >= min_run {
                    for &at in &number[start..start + common] {
                        masked[at] = true;
                    }
                }
            }
        }
    }
}

/// The positions of the digits of each number in `chars`: maximal chains of
/// ASCII digits joined by short non-alphanumeric separators.
fn numbers(chars: &[char]) -> Vec<Vec<usize>> {
    let mut numbers = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut gap = 0;
    for (at, c) in chars.iter().enumerate() {
        if c.is_ascii_digit() {
            current.push(at);
            gap = 0;
        } else if !current.is_empty() && !c.is_alphanumeric() && gap < MAX_SEPARATOR_CHARS {
            gap += 1;
        } else if !current.is_empty() {
            numbers.push(std::mem::take(&mut current));
            gap = 0;
        }
    }
    if !current.is_empty() {
        numbers.push(current);
    }
    numbers
}

/// Marks the holder's name in `chars`: the whole name with its spaces
/// optional, and each part of two or more characters, in any letter case.
fn mark_name(chars: &[char], holder: &str, masked: &mut [bool]) {
    let whole: Vec<char> = holder.chars().filter(|c| !c.is_whitespace()).collect();
    mark_text(chars, &whole, masked);
    for part in holder.split_whitespace() {
        let part: Vec<char> = part.chars().collect();
        if part.len() >= 2 {
            mark_text(chars, &part, masked);
        }
    }
}

/// Marks each occurrence of `pattern` in `chars`, ignoring letter case and
/// whitespace between the pattern's characters.
fn mark_text(chars: &[char], pattern: &[char], masked: &mut [bool]) {
    let Some(&first) = pattern.first() else {
        return;
    };
    for start in 0..chars.len() {
        if !same_letter(chars[start], first) {
            continue;
        }
        let mut at = start + 1;
        let mut matched = 1;
        while matched < pattern.len() && at < chars.len() {
            if same_letter(chars[at], pattern[matched]) {
                matched += 1;
            } else if !chars[at].is_whitespace() {
                break;
            }
            at += 1;
        }
        if matched == pattern.len() {
            masked[start..at].iter_mut().for_each(|m| *m = true);
        }
    }
}

fn same_letter(a: char, b: char) -> bool {
    a == b || a.to_lowercase().eq(b.to_lowercase())
}

/// Masks runs of [`MIN_MASKED_RUN`] or more digits but their last four: a
/// number the gateway printed that the request did not send.
fn mask_long_digit_runs(chars: &[char]) -> String {
    let mut cleaned = String::with_capacity(chars.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if digits.len() >= MIN_MASKED_RUN {
            out.push_str(&crate::refund::mask_account(digits));
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for &c in chars {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        flush(&mut digits, &mut cleaned);
        cleaned.push(c);
    }
    flush(&mut digits, &mut cleaned);
    cleaned
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(holder: &str, account: &str, tel: Option<&str>) -> RefundAccount {
        RefundAccount {
            holder: holder.to_owned(),
            bank: "88".to_owned(),
            account: account.to_owned(),
            tel: tel.map(str::to_owned),
        }
    }

    #[test]
    fn messages_without_a_request_keep_the_old_cleaning() {
        assert_eq!(
            mask_gateway_message("환불 실패 (code 12)", None),
            "환불 실패 (code 12)"
        );
        assert_eq!(
            mask_gateway_message("bad\u{0}account 56211105948400", None),
            "badaccount **********8400"
        );
        assert_eq!(
            mask_gateway_message(&"x".repeat(600), None).chars().count(),
            500
        );
    }

    #[test]
    fn an_echoed_account_holder_and_phone_are_masked() {
        let sent = account("홍길동", "562-1110594-8400", Some("010-1234-5678"));
        let masked = mask_gateway_message(
            "[PG] 환불계좌 562-1110594-8400 (예금주 홍길동, 010 1234 5678) 확인 불가",
            Some(&sent),
        );
        assert_eq!(
            masked,
            "[PG] 환불계좌 ***-*******-**** (예금주 ***, *** **** ****) 확인 불가"
        );
    }

    #[test]
    fn regrouped_and_partial_echoes_are_masked() {
        let sent = account("Kim Min Su", "56211105948400", None);
        let masked = mask_gateway_message(
            "acct 5621.1105.9484.00 / tail **8400 / KIM MINSU / minsu",
            Some(&sent),
        );
        assert_eq!(
            masked,
            "acct ****.****.****.** / tail ****** / ********* / *****"
        );
        // Ordinary short numbers and unrelated text survive.
        let masked = mask_gateway_message("code 400: limit 3 per day", Some(&sent));
        assert_eq!(masked, "code 400: limit 3 per day");
    }

    #[test]
    fn masking_is_idempotent() {
        let sent = account("Lee", "1002-345-678901", Some("+82-10-9876-5432"));
        let once = mask_gateway_message(
            "account 1002345678901 holder LEE tel 010-9876-5432 ref 99887766554433",
            Some(&sent),
        );
        assert_eq!(mask_gateway_message(&once, Some(&sent)), once);
        assert!(!once.contains("5432") && !once.contains("9876"), "{once}");
        assert!(once.ends_with("ref **********4433"), "{once}");
    }
}
