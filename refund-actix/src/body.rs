//! [`JsonBody`]: a JSON request body whose shape errors name the field.
//!
//! actix's `Json<T>` reports a wrong type with serde's text, which quotes
//! the client's value (a mistyped account number would come back in the
//! error and land in logs). This extractor lets the scope's `JsonConfig`
//! enforce content type, size and syntax, then deserializes with the
//! field's path so the error can say `cancel_request_amount: expected a
//! number` without repeating what was sent.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::error::ApiError;

/// A request body deserialized from JSON into `T`.
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // Reading as a raw JSON value applies the scope's JsonConfig.
        let raw = web::Json::<Box<RawValue>>::from_request(req, payload);
        Box::pin(async move {
            let raw = raw.await?.into_inner();
            // serde would also read a struct from an array of its fields.
            if !raw.get().starts_with('{') {
                return Err(ApiError::invalid_request("the body must be a JSON object").into());
            }
            let mut deserializer = serde_json::Deserializer::from_str(raw.get());
            serde_path_to_error::deserialize(&mut deserializer)
                .map(JsonBody)
                .map_err(|error| ApiError::from_shape(&error).into())
        })
    }
}
