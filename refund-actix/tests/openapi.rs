//! `GET {prefix}/openapi.json` is public and describes the answers the
//! scope really gives: every answer's status is documented for its
//! operation, an error's code is one that status lists, and a payment
//! view has exactly the documented properties.

mod common;

use actix_web::test::{self, TestRequest};
use actix_web::App;
use common::{cancel_request, send, sync_request, view_request, Env, Reply};
use serde_json::{json, Value};

/// The schema `reference` (`#/components/schemas/X`) points at.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap();
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// Checks `value` against `schema`'s object shape, recursively: no
/// undocumented property, every required one present.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) {
    let schema = resolve(doc, schema);
    // Option<T> of a struct is `oneOf: [null, T]` in utoipa's output.
    if let Some(choices) = schema["oneOf"].as_array() {
        if value.is_null() {
            return;
        }
        let object = choices.iter().find(|c| !c["$ref"].is_null()).unwrap();
        return conforms(doc, object, value, at);
    }
    if let Some(properties) = schema["properties"].as_object() {
        let object = value
            .as_object()
            .unwrap_or_else(|| panic!("{at}: not an object"));
        for (key, item) in object {
            let property = properties
                .get(key)
                .unwrap_or_else(|| panic!("{at}.{key} is not documented"));
            conforms(doc, property, item, &format!("{at}.{key}"));
        }
        for required in schema["required"].as_array().into_iter().flatten() {
            let required = required.as_str().unwrap();
            assert!(object.contains_key(required), "{at}.{required} missing");
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            conforms(doc, items, item, &format!("{at}[{i}]"));
        }
    }
}

/// Checks one real answer of `method path_template` against the document.
fn check(doc: &Value, method: &str, template: &str, reply: &Reply) {
    let status = reply.status.as_str();
    let response = &doc["paths"][template][method]["responses"][status];
    assert!(
        response.is_object(),
        "{method} {template} answered {status}, which is not documented: {}",
        reply.text
    );
    let description = response["description"].as_str().unwrap();
    if let Some(code) = reply.json["code"]
        .as_str()
        .filter(|_| reply.status.as_u16() >= 400)
    {
        assert!(
            description.contains(&format!("`{code}`")),
            "{method} {template} {status} {code} is not listed: {description}"
        );
    }
    let schema = &response["content"]["application/json"]["schema"];
    conforms(
        doc,
        schema,
        &reply.json,
        &format!("{method} {template} {status}"),
    );
}

#[actix_web::test]
async fn the_document_is_public_and_real_answers_match_it() {
    let env = Env::start().await;
    let app = test::init_service(App::new().service(env.scope())).await;
    let served = send(
        &app,
        TestRequest::get()
            .uri("/payments/openapi.json")
            .to_request(),
    )
    .await;
    assert_eq!(served.status.as_u16(), 200, "public: {}", served.text);
    let doc = served.json;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");

    let payment = env.seed_krw(10_000).await;
    let uid = payment.merchant_uid.as_str();
    let cancel = "/payments/cancel";
    let answers = [
        (
            "post",
            cancel,
            cancel_request(json!({"merchant_uid": uid, "cancel_request_amount": 1000})),
        ),
        (
            "post",
            cancel,
            cancel_request(json!({"merchant_uid": uid, "cancel_request_amount": 1_000_000})),
        ),
        (
            "post",
            cancel,
            cancel_request(json!({"merchant_uid": uid, "cancel_request_ammount": 1})),
        ),
        (
            "post",
            cancel,
            cancel_request(json!({"merchant_uid": "nobody"})),
        ),
        (
            "post",
            cancel,
            TestRequest::post()
                .uri(cancel)
                .insert_header(common::admin())
                .set_payload("x"),
        ),
        (
            "post",
            cancel,
            TestRequest::post().uri(cancel).set_json(json!({})),
        ),
        ("get", "/payments/{merchant_uid}", view_request(uid)),
        ("get", "/payments/{merchant_uid}", view_request("nobody")),
        ("post", "/payments/{merchant_uid}/sync", sync_request(uid)),
        (
            "post",
            "/payments/webhook",
            TestRequest::post()
                .uri("/payments/webhook")
                .set_json(json!({"imp_uid": payment.imp_uid})),
        ),
        (
            "post",
            "/payments/webhook",
            TestRequest::post()
                .uri("/payments/webhook")
                .set_json(json!({})),
        ),
        (
            "get",
            "/payments/refunds",
            TestRequest::get()
                .uri(&format!("/payments/refunds?merchant_uid={uid}&limit=1"))
                .insert_header(common::admin()),
        ),
        (
            "get",
            "/payments/refunds",
            TestRequest::get()
                .uri("/payments/refunds?status=refunded")
                .insert_header(common::admin()),
        ),
        (
            "post",
            "/payments/{merchant_uid}/review",
            TestRequest::post()
                .uri(&format!("/payments/{uid}/review"))
                .insert_header(common::admin())
                .set_json(json!({"note": "looked"})),
        ),
        (
            "post",
            "/payments/{merchant_uid}/review",
            TestRequest::post()
                .uri(&format!("/payments/{uid}/review"))
                .insert_header(common::admin())
                .set_json(json!({})),
        ),
    ];
    // The check itself bites: an undocumented property is caught.
    let error = json!({"$ref": "#/components/schemas/Error"});
    let extra = json!({"code": "forbidden", "message": "no", "stack": "..."});
    let caught = std::panic::catch_unwind(|| conforms(&doc, &error, &extra, "probe"));
    assert!(caught.is_err(), "an undocumented property passed");

    let mut statuses = Vec::new();
    for (method, template, request) in answers {
        let reply = send(&app, request.to_request()).await;
        check(&doc, method, template, &reply);
        statuses.push(reply.status.as_u16());
    }
    assert_eq!(
        statuses,
        [200, 409, 400, 404, 415, 401, 200, 404, 200, 200, 400, 200, 400, 409, 400],
        "the answers this test means to check"
    );
}
