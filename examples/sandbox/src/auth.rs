//! Access tokens, the way `/users/getToken` hands them out.
//!
//! The gateway keeps one live token per API key: asking again while it is
//! live returns the *same* token (with the same expiry), except in the last
//! minute before expiry, where the expiry is pushed back by five minutes.
//! After expiry (or revocation) a fresh token is minted.

use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use rand::Rng;

/// The official last-minute window and the extension granted inside it.
const EXTENSION_WINDOW_SECS: i64 = 60;
const EXTENSION_SECS: i64 = 5 * 60;

/// Alternative header i'mport accepts for the token.
const IMP_TOKEN_HEADER: &str = "x-imptokenheader";

/// What `/users/getToken` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IssuedToken {
    pub(crate) access_token: String,
    pub(crate) expired_at: i64,
    /// Whether this call created the token (vs. reusing the live one).
    pub(crate) minted: bool,
}

#[derive(Debug)]
struct LiveToken {
    value: String,
    expires_at: i64,
}

/// The live token of the sandbox's single API key.
#[derive(Debug)]
pub(crate) struct TokenStore {
    ttl_secs: i64,
    live: Option<LiveToken>,
}

impl TokenStore {
    pub(crate) fn new(ttl_secs: i64) -> Self {
        Self {
            ttl_secs,
            live: None,
        }
    }

    /// Reuses the live token (extending it in its last minute) or mints one.
    pub(crate) fn issue(&mut self, now: i64) -> IssuedToken {
        if let Some(token) = self.live.as_mut().filter(|t| now < t.expires_at) {
            if token.expires_at - now <= EXTENSION_WINDOW_SECS {
                token.expires_at += EXTENSION_SECS;
            }
            return IssuedToken {
                access_token: token.value.clone(),
                expired_at: token.expires_at,
                minted: false,
            };
        }
        let token = LiveToken {
            value: random_hex(20),
            expires_at: now.saturating_add(self.ttl_secs),
        };
        let issued = IssuedToken {
            access_token: token.value.clone(),
            expired_at: token.expires_at,
            minted: true,
        };
        self.live = Some(token);
        issued
    }

    /// True only for the live, unexpired token.
    pub(crate) fn is_valid(&self, presented: &str, now: i64) -> bool {
        self.live
            .as_ref()
            .is_some_and(|t| t.value == presented && now < t.expires_at)
    }

    /// Forgets every token: the next authenticated call gets 401.
    pub(crate) fn revoke_all(&mut self) {
        self.live = None;
    }
}

/// Token presented by a request: `Authorization: Bearer <token>`, a bare
/// `Authorization: <token>` (what i'mport's own samples send), or
/// `X-ImpTokenHeader: <token>`.
pub(crate) fn presented_token(headers: &HeaderMap) -> Option<&str> {
    let raw = headers
        .get(AUTHORIZATION)
        .or_else(|| headers.get(IMP_TOKEN_HEADER))?
        .to_str()
        .ok()?
        .trim();
    let token = match raw.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => raw,
    };
    (!token.is_empty()).then_some(token)
}

/// `bytes` random bytes as lowercase hex (tokens are 40 hex characters).
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.gen::<u8>()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    #[test]
    fn live_token_is_reused_then_extended_in_its_last_minute() {
        let mut store = TokenStore::new(1800);
        let first = store.issue(1_000);
        assert!(first.minted);
        assert_eq!(first.access_token.len(), 40);
        assert_eq!(first.expired_at, 2_800);

        let again = store.issue(2_000);
        assert_eq!(
            (again.access_token.as_str(), again.expired_at, again.minted),
            (first.access_token.as_str(), 2_800, false)
        );

        let extended = store.issue(2_750);
        assert_eq!(extended.access_token, first.access_token);
        assert_eq!(extended.expired_at, 3_100);
        // Outside the last minute again: no second extension.
        assert_eq!(store.issue(2_760).expired_at, 3_100);

        assert!(store.is_valid(&first.access_token, 3_099));
        assert!(!store.is_valid(&first.access_token, 3_100));
        let fresh = store.issue(3_100);
        assert!(fresh.minted);
        assert_ne!(fresh.access_token, first.access_token);
    }

    #[test]
    fn revocation_invalidates_the_live_token() {
        let mut store = TokenStore::new(1800);
        let token = store.issue(0).access_token;
        store.revoke_all();
        assert!(!store.is_valid(&token, 1));
    }

    #[test]
    fn token_is_read_from_every_accepted_header_form() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_token(&headers), None);
        headers.insert(
            IMP_TOKEN_HEADER.parse().unwrap(),
            HeaderValue::from_static("abc"),
        );
        assert_eq!(presented_token(&headers), Some("abc"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer  def "));
        assert_eq!(presented_token(&headers), Some("def"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("ghi"));
        assert_eq!(presented_token(&headers), Some("ghi"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("  "));
        assert_eq!(presented_token(&headers), None);
    }
}
