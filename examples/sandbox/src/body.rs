//! Request bodies in either encoding the gateway accepts.
//!
//! i'mport takes JSON and `application/x-www-form-urlencoded` alike, and is
//! loose about types (`"amount": "1000"` works as well as `1000`). Fields are
//! therefore read as *text*: a JSON number keeps its exact source text, which
//! is what lets amounts be parsed without ever becoming an `f64`.

use std::collections::HashMap;

use actix_web::{HttpMessage, HttpRequest};
use serde_json::value::RawValue;

/// A body that is neither valid JSON (object) nor a valid form.
#[derive(Debug, thiserror::Error)]
#[error("request body could not be parsed: {0}")]
pub(crate) struct BodyError(String);

/// A field whose JSON value is an object, array or boolean.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} must be a string or a number")]
pub(crate) struct FieldError(pub(crate) String);

#[derive(Debug)]
enum Value {
    Form(String),
    Json(Box<RawValue>),
}

/// The top-level fields of a request body. Unknown fields are kept but never
/// looked at, so clients may send extras (`retain_promotion`, `extra`, ...).
#[derive(Debug, Default)]
pub(crate) struct Fields(HashMap<String, Value>);

impl Fields {
    /// Parses `body` as a form when the request says so, as JSON otherwise.
    /// An empty body has no fields.
    pub(crate) fn parse(req: &HttpRequest, body: &[u8]) -> Result<Self, BodyError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        if req
            .content_type()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(body).map_err(|e| BodyError(e.to_string()))?;
            Ok(Self(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k, Value::Form(v)))
                    .collect(),
            ))
        } else {
            let map: HashMap<String, Box<RawValue>> =
                serde_json::from_slice(body).map_err(|e| BodyError(e.to_string()))?;
            Ok(Self(
                map.into_iter().map(|(k, v)| (k, Value::Json(v))).collect(),
            ))
        }
    }

    /// The field as text; `None` when absent, null or empty. A JSON number
    /// comes back exactly as it was written (`10.050` stays `10.050`).
    pub(crate) fn text(&self, name: &str) -> Result<Option<String>, FieldError> {
        let text = match self.0.get(name) {
            None => return Ok(None),
            Some(Value::Form(value)) => value.clone(),
            Some(Value::Json(raw)) => {
                let raw = raw.get().trim();
                match raw.as_bytes().first() {
                    Some(b'"') => serde_json::from_str::<String>(raw)
                        .map_err(|_| FieldError(name.to_owned()))?,
                    Some(b'n') => return Ok(None),
                    Some(b'-' | b'0'..=b'9') => raw.to_owned(),
                    _ => return Err(FieldError(name.to_owned())),
                }
            }
        };
        Ok((!text.trim().is_empty()).then_some(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn parse(content_type: Option<&str>, body: &str) -> Result<Fields, BodyError> {
        let mut req = TestRequest::default();
        if let Some(ct) = content_type {
            req = req.insert_header(("content-type", ct));
        }
        Fields::parse(&req.to_http_request(), body.as_bytes())
    }

    #[test]
    fn json_numbers_keep_their_source_text() {
        let fields = parse(
            Some("application/json"),
            r#"{"amount": 10.050, "imp_uid": "imp_1", "reason": null, "extra": {"a": 1}, "blank": ""}"#,
        )
        .unwrap();
        assert_eq!(fields.text("amount"), Ok(Some("10.050".to_owned())));
        assert_eq!(fields.text("imp_uid"), Ok(Some("imp_1".to_owned())));
        assert_eq!(fields.text("reason"), Ok(None));
        assert_eq!(fields.text("blank"), Ok(None));
        assert_eq!(fields.text("missing"), Ok(None));
        assert_eq!(fields.text("extra"), Err(FieldError("extra".to_owned())));
    }

    #[test]
    fn forms_and_untyped_bodies() {
        let form = parse(
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            "amount=10.05&reason=%ED%99%98%EB%B6%88&extra%5Brequester%5D=customer",
        )
        .unwrap();
        assert_eq!(form.text("amount"), Ok(Some("10.05".to_owned())));
        assert_eq!(form.text("reason"), Ok(Some("환불".to_owned())));

        let untyped = parse(None, r#"{"amount": "1000"}"#).unwrap();
        assert_eq!(untyped.text("amount"), Ok(Some("1000".to_owned())));
        assert!(parse(None, "").unwrap().text("amount").unwrap().is_none());
        assert!(parse(Some("application/json"), "[1]").is_err());
        assert!(parse(Some("application/json"), "{").is_err());
    }
}
