//! PortOne V2 credentials: the API secret itself, or the access and refresh
//! tokens `/login/api-secret` and `/token/refresh` hand out.
//!
//! As the V2 schema documents: access tokens live 30 minutes (the
//! configured `token_ttl` here), refresh tokens a day, and every login or
//! refresh immediately expires the refresh token issued before it. Access
//! tokens are JWTs (HS256 under a per-sandbox key) whose `exp` claim is the
//! expiry, so a client can read it as it would from the real gateway.

use std::collections::HashMap;

use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::auth::random_hex;

/// Lifetime of a refresh token (the schema: one day).
pub(crate) const REFRESH_TOKEN_TTL_SECS: i64 = 24 * 3600;

/// What a login or refresh answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenPair {
    pub(crate) access_token: String,
    pub(crate) refresh_token: String,
}

/// How a V2 call authenticated itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Credential<'a> {
    /// `Authorization: PortOne <apiSecret>`.
    ApiSecret(&'a str),
    /// `Authorization: Bearer <accessToken>`.
    Bearer(&'a str),
}

/// The credential in a request's `Authorization` header, if it has one of
/// the two V2 schemes (matched case-insensitively).
pub(crate) fn presented_credential(headers: &HeaderMap) -> Option<Credential<'_>> {
    let raw = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, value) = raw.split_once(' ')?;
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if scheme.eq_ignore_ascii_case("portone") {
        Some(Credential::ApiSecret(value))
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Credential::Bearer(value))
    } else {
        None
    }
}

/// The live V2 tokens of the sandbox's single API secret.
#[derive(Debug)]
pub(crate) struct PortoneTokens {
    access_ttl_secs: i64,
    refresh_ttl_secs: i64,
    signing_key: Vec<u8>,
    /// Access token -> expiry (unix seconds). Several can be live at once.
    access: HashMap<String, i64>,
    /// The one refresh token that still works, with its expiry.
    refresh: Option<(String, i64)>,
}

impl PortoneTokens {
    pub(crate) fn new(access_ttl_secs: i64) -> Self {
        Self {
            access_ttl_secs,
            refresh_ttl_secs: REFRESH_TOKEN_TTL_SECS.max(access_ttl_secs),
            signing_key: random_hex(32).into_bytes(),
            access: HashMap::new(),
            refresh: None,
        }
    }

    /// A fresh pair; the previous refresh token stops working.
    pub(crate) fn login(&mut self, now: i64) -> TokenPair {
        self.access.retain(|_, expires_at| now < *expires_at);
        let expires_at = now.saturating_add(self.access_ttl_secs);
        let access_token = self.jwt(now, expires_at);
        self.access.insert(access_token.clone(), expires_at);
        let refresh_token = random_hex(32);
        self.refresh = Some((
            refresh_token.clone(),
            now.saturating_add(self.refresh_ttl_secs),
        ));
        TokenPair {
            access_token,
            refresh_token,
        }
    }

    /// A fresh pair for the live refresh token; `None` for any other.
    pub(crate) fn refresh(&mut self, presented: &str, now: i64) -> Option<TokenPair> {
        let live = self
            .refresh
            .as_ref()
            .is_some_and(|(token, expires_at)| token == presented && now < *expires_at);
        live.then(|| self.login(now))
    }

    /// True for an access token this sandbox issued that has not expired
    /// (nor been revoked).
    pub(crate) fn is_valid(&self, presented: &str, now: i64) -> bool {
        self.access
            .get(presented)
            .is_some_and(|expires_at| now < *expires_at)
    }

    /// Forgets every access and refresh token.
    pub(crate) fn revoke_all(&mut self) {
        self.access.clear();
        self.refresh = None;
    }

    fn jwt(&self, now: i64, expires_at: i64) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "iss": "https://sandbox.portone.invalid",
            "iat": now,
            "exp": expires_at,
            "jti": random_hex(8),
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.signing_key)
            .expect("HMAC takes keys of any length");
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    #[test]
    fn access_tokens_expire_and_each_login_retires_the_previous_refresh_token() {
        let mut tokens = PortoneTokens::new(1800);
        let first = tokens.login(1_000);
        assert!(tokens.is_valid(&first.access_token, 2_799));
        assert!(!tokens.is_valid(&first.access_token, 2_800));

        let second = tokens.refresh(&first.refresh_token, 2_900).unwrap();
        assert_ne!(second.access_token, first.access_token);
        assert!(tokens.is_valid(&second.access_token, 2_901));
        assert_eq!(tokens.refresh(&first.refresh_token, 2_901), None);

        let third = tokens.login(3_000);
        assert_eq!(tokens.refresh(&second.refresh_token, 3_001), None);
        assert_eq!(
            tokens.refresh(&third.refresh_token, 3_000 + REFRESH_TOKEN_TTL_SECS),
            None
        );
        tokens.revoke_all();
        assert!(!tokens.is_valid(&third.access_token, 3_001));
    }

    #[test]
    fn access_tokens_are_jwts_carrying_their_expiry() {
        let mut tokens = PortoneTokens::new(600);
        let pair = tokens.login(1_700_000_000);
        let parts: Vec<&str> = pair.access_token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["exp"], 1_700_000_600);
        assert_eq!(claims["iat"], 1_700_000_000);
    }

    #[test]
    fn both_authorization_schemes_are_read() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_credential(&headers), None);
        for (value, expected) in [
            ("PortOne abc", Some(Credential::ApiSecret("abc"))),
            ("portone  abc ", Some(Credential::ApiSecret("abc"))),
            ("Bearer t.o.k", Some(Credential::Bearer("t.o.k"))),
            ("Basic abc", None),
            ("abc", None),
            ("PortOne ", None),
        ] {
            headers.insert(AUTHORIZATION, HeaderValue::from_static(value));
            assert_eq!(presented_credential(&headers), expected, "{value}");
        }
    }
}
