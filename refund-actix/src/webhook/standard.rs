//! Standard Webhooks signatures, as PortOne V2 signs its webhooks.
//!
//! A notice carries `webhook-id`, `webhook-timestamp` (unix seconds) and
//! `webhook-signature`: space-separated `v1,<base64>` entries, each an
//! HMAC-SHA256 of `"{id}.{timestamp}.{body}"` under the key that the secret
//! (`whsec_<base64>`) encodes. One matching entry is enough (senders list
//! several while rotating keys). The body is the raw bytes as received,
//! checked before anything parses it.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a notice's timestamp may be from now, either way, in seconds.
pub(crate) const TOLERANCE_SECS: i64 = 5 * 60;

/// The prefix of a Standard Webhooks secret.
const PREFIX: &str = "whsec_";

/// A PortOne V2 webhook secret (`whsec_...`), checked when it is made, so
/// a bad secret is a start-up error rather than a failure per notice.
/// Shown as `<redacted>` in `Debug`.
#[derive(Clone)]
pub struct PortOneWebhookSecret {
    key: Vec<u8>,
}

impl fmt::Debug for PortOneWebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PortOneWebhookSecret(<redacted>)")
    }
}

/// Why a webhook secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the PortOne webhook secret must be `whsec_` followed by base64 (as the console shows it)")]
pub struct InvalidWebhookSecret;

impl PortOneWebhookSecret {
    /// Parses the secret as PortOne's console shows it: `whsec_` and the
    /// base64 of the key (the prefix may be left out, as Standard Webhooks
    /// allows). An empty or undecodable key is refused.
    pub fn parse(secret: &str) -> Result<Self, InvalidWebhookSecret> {
        let encoded = secret.trim();
        let encoded = encoded.strip_prefix(PREFIX).unwrap_or(encoded);
        match STANDARD.decode(encoded) {
            Ok(key) if !key.is_empty() => Ok(PortOneWebhookSecret { key }),
            _ => Err(InvalidWebhookSecret),
        }
    }
}

/// The three signature headers of a notice, as received.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignedHeaders<'a> {
    pub(crate) id: Option<&'a str>,
    pub(crate) timestamp: Option<&'a str>,
    pub(crate) signature: Option<&'a str>,
}

/// Why a notice's signature did not verify (logged; the answer is the same
/// 401 whatever the reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignatureError {
    /// A signature header is missing or empty.
    MissingHeader(&'static str),
    /// `webhook-timestamp` is not a number of seconds.
    BadTimestamp,
    /// The timestamp is more than [`TOLERANCE_SECS`] from now.
    OutsideTolerance,
    /// No `v1` entry is the body's signature under our key.
    NoMatch,
}

/// Verifies `body` against its headers under `secret`, at `now_s` (unix
/// seconds). Pure: the caller reads the clock.
pub(crate) fn verify(
    secret: &PortOneWebhookSecret,
    headers: SignedHeaders<'_>,
    body: &[u8],
    now_s: i64,
) -> Result<(), SignatureError> {
    fn present<'h>(value: Option<&'h str>, name: &'static str) -> Result<&'h str, SignatureError> {
        value
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or(SignatureError::MissingHeader(name))
    }
    let id = present(headers.id, "webhook-id")?;
    let timestamp = present(headers.timestamp, "webhook-timestamp")?;
    let signature = present(headers.signature, "webhook-signature")?;
    let sent_at: i64 = timestamp
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if now_s.abs_diff(sent_at) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::OutsideTolerance);
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(&secret.key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let matches = signature
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        // verify_slice compares in constant time.
        .any(|candidate| mac.clone().verify_slice(&candidate).is_ok());
    if matches {
        Ok(())
    } else {
        Err(SignatureError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_225_600;
    const BODY: &[u8] = br#"{"type":"Transaction.Cancelled","timestamp":"2026-01-01T00:00:00Z","data":{"paymentId":"ORD-1","storeId":"s","transactionId":"tx-1","cancellationId":"c-1"}}"#;

    /// The test's own HMAC-SHA256 (RFC 2104 over the sha2 crate), so the
    /// expected signatures do not come from the code under test.
    fn reference_signature(key: &[u8], message: &[u8]) -> String {
        use sha2::Digest;
        let mut block = [0u8; 64];
        block[..key.len()].copy_from_slice(key);
        let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
        let inner = Sha256::new()
            .chain_update(pad(0x36))
            .chain_update(message)
            .finalize();
        let outer = Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize();
        STANDARD.encode(outer)
    }

    fn key() -> Vec<u8> {
        (0u8..32).collect()
    }

    fn secret() -> PortOneWebhookSecret {
        PortOneWebhookSecret::parse(&format!("whsec_{}", STANDARD.encode(key()))).unwrap()
    }

    fn signed(id: &str, timestamp: i64, body: &[u8], key: &[u8]) -> String {
        let message = [
            id.as_bytes(),
            b".",
            timestamp.to_string().as_bytes(),
            b".",
            body,
        ]
        .concat();
        format!("v1,{}", reference_signature(key, &message))
    }

    fn check(
        id: &str,
        timestamp: &str,
        signature: &str,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        let headers = SignedHeaders {
            id: Some(id),
            timestamp: Some(timestamp),
            signature: Some(signature),
        };
        verify(&secret(), headers, body, NOW)
    }

    #[test]
    fn a_signature_under_our_key_verifies() {
        let signature = signed("msg_1", NOW, BODY, &key());
        assert_eq!(check("msg_1", &NOW.to_string(), &signature, BODY), Ok(()));
        // A known vector from the Standard Webhooks specification.
        let spec_secret =
            PortOneWebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let spec = SignedHeaders {
            id: Some("msg_p5jXN8AQM9LWM0D4loKWxJek"),
            timestamp: Some("1614265330"),
            signature: Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        };
        assert_eq!(
            verify(
                &spec_secret,
                spec,
                br#"{"test": 2432232314}"#,
                1_614_265_330
            ),
            Ok(())
        );
    }

    #[test]
    fn one_valid_entry_among_several_is_enough() {
        let good = signed("msg_1", NOW, BODY, &key());
        let other = signed("msg_1", NOW, BODY, b"someone else's key");
        for header in [
            format!("{other} {good}"),
            format!("v2,abc {good}"),
            format!("v1,!!!notbase64 {good} v1,"),
        ] {
            assert_eq!(
                check("msg_1", &NOW.to_string(), &header, BODY),
                Ok(()),
                "{header}"
            );
        }
    }

    #[test]
    fn hostile_notices_are_refused() {
        let now = NOW.to_string();
        let good = signed("msg_1", NOW, BODY, &key());
        // A foreign key, a tampered body, another id, garbage.
        let foreign = signed("msg_1", NOW, BODY, b"foreign key");
        assert_eq!(
            check("msg_1", &now, &foreign, BODY),
            Err(SignatureError::NoMatch)
        );
        let tampered = br#"{"type":"Transaction.Cancelled","data":{"paymentId":"ORD-2"}}"#;
        assert_eq!(
            check("msg_1", &now, &good, tampered),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            check("msg_2", &now, &good, BODY),
            Err(SignatureError::NoMatch)
        );
        for garbage in [
            "v1,",
            "v1,%%%",
            "garbage",
            "v1 ,x",
            &good.replace("v1,", "v2,"),
        ] {
            assert_eq!(
                check("msg_1", &now, garbage, BODY),
                Err(SignatureError::NoMatch)
            );
        }
        // Missing headers.
        let headers = |id, ts, sig| SignedHeaders {
            id,
            timestamp: ts,
            signature: sig,
        };
        let missing = [
            (
                headers(None, Some(now.as_str()), Some(good.as_str())),
                "webhook-id",
            ),
            (
                headers(Some("msg_1"), None, Some(good.as_str())),
                "webhook-timestamp",
            ),
            (
                headers(Some("msg_1"), Some(now.as_str()), None),
                "webhook-signature",
            ),
            (
                headers(Some(" "), Some(now.as_str()), Some(good.as_str())),
                "webhook-id",
            ),
        ];
        for (headers, name) in missing {
            assert_eq!(
                verify(&secret(), headers, BODY, NOW),
                Err(SignatureError::MissingHeader(name))
            );
        }
        assert_eq!(
            check("msg_1", "soon", &good, BODY),
            Err(SignatureError::BadTimestamp)
        );
    }

    #[test]
    fn timestamps_more_than_five_minutes_away_are_refused_either_way() {
        for offset in [-TOLERANCE_SECS, 0, TOLERANCE_SECS] {
            let at = NOW + offset;
            let signature = signed("msg_1", at, BODY, &key());
            assert_eq!(check("msg_1", &at.to_string(), &signature, BODY), Ok(()));
        }
        for offset in [-TOLERANCE_SECS - 1, TOLERANCE_SECS + 1, -86_400] {
            let at = NOW + offset;
            // Correctly signed, but stale (a replay) or from the future.
            let signature = signed("msg_1", at, BODY, &key());
            assert_eq!(
                check("msg_1", &at.to_string(), &signature, BODY),
                Err(SignatureError::OutsideTolerance)
            );
        }
    }

    #[test]
    fn secrets_are_checked_when_made() {
        assert!(PortOneWebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert!(PortOneWebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        for bad in ["", "whsec_", "whsec_not base64!", "whsec_%%%%"] {
            assert_eq!(
                PortOneWebhookSecret::parse(bad).unwrap_err(),
                InvalidWebhookSecret
            );
        }
        let shown = format!("{:?}", secret());
        assert!(!shown.contains(&STANDARD.encode(key())), "{shown}");
    }
}
