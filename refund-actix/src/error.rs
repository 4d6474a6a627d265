//! Every error the scope answers, as DESIGN.md's `{"code", "message"}` body.
//!
//! Workflow errors come from [`RefundError`]'s stable codes; extractor
//! failures (bad JSON, wrong content type, body too large, bad path) are
//! mapped here too, so a client sees one error shape whatever went wrong.
//! Messages never echo client values (a mistyped `refund_account` must not
//! come back in a body or a log line) and internal causes are logged, never
//! shown.

use std::error::Error as StdError;
use std::fmt;

use actix_web::error::{JsonPayloadError, PathError, UrlencodedError};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use refund_core::RefundError;
use serde::Serialize;

/// An error answer: HTTP status plus the JSON body.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    gateway_message: Option<String>,
    allow: Option<Method>,
    /// The authorizer's `WWW-Authenticate` challenge, for a 401 (boxed:
    /// rare, and it would double the size of every error result).
    challenge: Option<Box<HeaderValue>>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway_message: Option<&'a str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            gateway_message: None,
            allow: None,
            challenge: None,
        }
    }

    /// The stable error code (`invalid_request`, `payment_not_found`, ...).
    pub(crate) fn code(&self) -> &'static str {
        self.code
    }

    /// `400 invalid_request`.
    pub(crate) fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// `401 unauthorized`: the authorizer did not recognize the caller;
    /// `challenge` is its `WWW-Authenticate` value, if it has one.
    pub(crate) fn unauthorized(challenge: Option<HeaderValue>) -> Self {
        ApiError {
            challenge: challenge.map(Box::new),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "authentication is required",
            )
        }
    }

    /// `403 forbidden`: a known caller, or a webhook source, that may not do this.
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// `503 overloaded`: a webhook that could not be looked up in time
    /// (too many lookups already running); the gateway resends on 5xx.
    pub(crate) fn overloaded() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many webhook notices are being looked up; send it again later",
        )
    }

    /// `404 not_found`: no route of the scope has this path.
    pub(crate) fn no_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such route")
    }

    /// `405 method_not_allowed`, naming the method the route takes.
    pub(crate) fn method_not_allowed(allowed: Method) -> Self {
        ApiError {
            allow: Some(allowed),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        }
    }

    /// `401 invalid_signature`: a PortOne V2 webhook whose signature or
    /// timestamp does not verify.
    pub(crate) fn invalid_signature() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            "the webhook signature does not verify",
        )
    }

    /// `413 payload_too_large`.
    pub(crate) fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {limit} bytes"),
        )
    }

    /// `415 unsupported_media_type`, naming what the route takes.
    pub(crate) fn unsupported_media_type(expected: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("the body must be {expected}"),
        )
    }

    /// Maps a `JsonConfig` failure (content type, size, syntax).
    pub(crate) fn from_json(error: &JsonPayloadError) -> Self {
        match error {
            JsonPayloadError::OverflowKnownLength { limit, .. }
            | JsonPayloadError::Overflow { limit } => Self::payload_too_large(*limit),
            JsonPayloadError::ContentType => {
                Self::unsupported_media_type("JSON (application/json)")
            }
            JsonPayloadError::Deserialize(error) => Self::invalid_request(syntax_problem(error)),
            _ => Self::invalid_request("the body could not be read"),
        }
    }

    /// Maps a `FormConfig` failure (the webhook's form-urlencoded variant).
    pub(crate) fn from_form(error: &UrlencodedError) -> Self {
        match error {
            UrlencodedError::Overflow { limit, .. } => Self::payload_too_large(*limit),
            UrlencodedError::ContentType => {
                Self::unsupported_media_type("application/x-www-form-urlencoded")
            }
            UrlencodedError::Parse(error) => Self::invalid_request(
                missing_field(&error.to_string())
                    .unwrap_or_else(|| "the form body is malformed".to_owned()),
            ),
            _ => Self::invalid_request("the body could not be read"),
        }
    }

    /// Maps a `PathConfig` failure.
    pub(crate) fn from_path(_: &PathError) -> Self {
        Self::invalid_request("the URL path is malformed")
    }

    /// Maps a body that is valid JSON but not the expected shape, naming the
    /// field (never its value).
    pub(crate) fn from_shape(error: &serde_path_to_error::Error<serde_json::Error>) -> Self {
        let inner = error.inner();
        if !inner.is_data() {
            return Self::invalid_request(syntax_problem(inner));
        }
        let text = inner.to_string();
        let path = error.path().to_string();
        let message = if let Some(missing) = missing_field(&text) {
            missing
        } else if let Some(unknown) = unknown_field(&text) {
            unknown
        } else if let Some(duplicate) = duplicate_field(&text) {
            duplicate
        } else if path == "." {
            "the body must be a JSON object".to_owned()
        } else {
            match expectation(&text) {
                Some(expected) => format!("{path}: expected {expected}"),
                None => format!("{path} has the wrong type"),
            }
        };
        Self::invalid_request(message)
    }
}

impl From<RefundError> for ApiError {
    /// Logs failures on our side with their cause chain (5xx), then keeps
    /// only the code and the safe message.
    fn from(error: RefundError) -> Self {
        match &error {
            RefundError::Internal(_) => {
                tracing::error!(error = %CauseChain(&error), "refund request failed internally");
            }
            RefundError::Gateway(_) | RefundError::StorageUnavailable(_) => {
                tracing::warn!(error = %CauseChain(&error), code = error.code(), "refund request failed");
            }
            _ => tracing::debug!(code = error.code(), "refund request refused"),
        }
        let status =
            StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError {
            gateway_message: error.gateway_message().map(str::to_owned),
            // `Internal`'s Display is the fixed "internal error"; the cause
            // lives only in its `source()`, which was logged above.
            ..Self::new(status, error.code(), error.to_string())
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(allow) = &self.allow {
            if let Ok(value) = HeaderValue::from_str(allow.as_str()) {
                response.insert_header((header::ALLOW, value));
            }
        }
        if let Some(challenge) = &self.challenge {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::clone(challenge)));
        }
        response.json(ErrorBody {
            code: self.code,
            message: &self.message,
            gateway_message: self.gateway_message.as_deref(),
        })
    }
}

/// `JsonConfig` error handler: our error body instead of actix's text.
pub(crate) fn json_error_handler(error: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::from_json(&error).into()
}

/// `FormConfig` error handler.
pub(crate) fn form_error_handler(error: UrlencodedError, _: &HttpRequest) -> actix_web::Error {
    ApiError::from_form(&error).into()
}

/// `PathConfig` error handler.
pub(crate) fn path_error_handler(error: PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::from_path(&error).into()
}

/// Where JSON stopped parsing; serde's own text may quote the body.
fn syntax_problem(error: &serde_json::Error) -> String {
    format!(
        "the body is not valid JSON (line {}, column {})",
        error.line(),
        error.column()
    )
}

/// serde's "missing field `name`" message: it names one of our own fields,
/// never client data, so it is safe to pass on.
fn missing_field(serde_message: &str) -> Option<String> {
    let field = serde_message
        .strip_prefix("missing field `")?
        .split('`')
        .next()?;
    Some(format!("missing field `{field}`"))
}

/// serde's "unknown field `NAME`, expected one of `a`, `b`" message (from
/// `deny_unknown_fields`). The list after "expected" is our own field names;
/// NAME is the client's, so it is repeated only when it looks like a field
/// name (a short identifier without a long number in it), never when it
/// could be data such as an account number used as a key.
fn unknown_field(serde_message: &str) -> Option<String> {
    let rest = serde_message.strip_prefix("unknown field `")?;
    let (name, expected) = rest.rsplit_once("`, expected ")?;
    let expected = expected
        .rsplit_once(" at line ")
        .map_or(expected, |(what, _)| what);
    Some(if is_plain_field_name(name) {
        format!("unknown field `{name}`: expected {expected}")
    } else {
        format!("unknown field (its name is not repeated): expected {expected}")
    })
}

/// True for names safe to repeat in an answer and a log line: 1 to 64
/// ASCII letters, digits, `_`, `-` or `.`, with no run of 4 or more digits.
fn is_plain_field_name(name: &str) -> bool {
    let mut digits = 0;
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| {
            digits = if b.is_ascii_digit() { digits + 1 } else { 0 };
            digits < 4 && (b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        })
}

/// serde's "duplicate field `name`": only our own fields are reported so.
fn duplicate_field(serde_message: &str) -> Option<String> {
    let field = serde_message
        .strip_prefix("duplicate field `")?
        .split('`')
        .next()?;
    Some(format!("duplicate field `{field}`"))
}

/// The "expected ..." part of serde's "invalid type: VALUE, expected WHAT"
/// message. WHAT comes from our types; VALUE (the client's) is dropped.
fn expectation(serde_message: &str) -> Option<&str> {
    let (_, expected) = serde_message.rsplit_once(", expected ")?;
    Some(
        expected
            .rsplit_once(" at line ")
            .map_or(expected, |(what, _)| what),
    )
}

/// An error and its `source()` chain on one line, for logs.
struct CauseChain<'a>(&'a (dyn StdError + 'static));

impl fmt::Display for CauseChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)] // only deserialized, to provoke serde's messages
    struct Shape {
        name: String,
        amount: refund_core::DecimalText,
    }

    fn shape_error(json: &str) -> String {
        let mut de = serde_json::Deserializer::from_str(json);
        let error = serde_path_to_error::deserialize::<_, Shape>(&mut de).unwrap_err();
        ApiError::from_shape(&error).message
    }

    #[test]
    fn shape_errors_name_the_field_but_never_the_value() {
        assert_eq!(
            shape_error(r#"{"name":"a","amount":"98765"}"#),
            "amount: expected a number"
        );
        assert_eq!(
            shape_error(r#"{"name":98765, "amount":1}"#),
            "name: expected a string"
        );
        assert_eq!(shape_error(r#"{"name":"a"}"#), "missing field `amount`");
        assert_eq!(shape_error(r#""98765""#), "the body must be a JSON object");
        let sneaky = shape_error(r#"{"name":"a","amount":"1, expected 98765 at line 1"}"#);
        assert_eq!(sneaky, "amount: expected a number");
    }

    #[test]
    fn cause_chains_are_joined() {
        let error = RefundError::Internal("disk on fire".into());
        assert_eq!(
            CauseChain(&error).to_string(),
            "internal error: disk on fire"
        );
    }
}
