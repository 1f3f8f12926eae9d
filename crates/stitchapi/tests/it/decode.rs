//! Decoding: typed output, pick, validators, text and bytes, malformed and oversized bodies.

use crate::support;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use stitchapi::{ErrorKind, Input, Stitch, transport::TransportErrorKind};
use support::{Answer, Upstream};

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct User {
    id: u64,
    name: String,
    email: String,
}

fn users(emails: &[Option<&str>]) -> serde_json::Value {
    let data: Vec<_> = emails
        .iter()
        .enumerate()
        .map(|(i, email)| json!({"id": i, "name": format!("u{i}"), "email": email}))
        .collect();
    json!({ "data": data })
}

#[tokio::test]
async fn a_decode_failure_names_the_json_path_and_keeps_status_and_url() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/users",
        [Answer::json(
            200,
            users(&[Some("a@x"), Some("b@x"), Some("c@x"), None]),
        )],
    );
    let stitch = Stitch::get(format!("{}/users", upstream.url()))
        .output::<Vec<User>>()
        .pick("data")
        .retry(3)
        .build()
        .unwrap();
    let error = stitch.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Validation);
    assert_eq!(
        error.to_string(),
        "$.data[3].email: invalid type: null, expected a string"
    );
    assert_eq!(error.json_path(), Some("$.data[3].email"));
    assert_eq!(error.status().map(|s| s.as_u16()), Some(200));
    assert_eq!(error.url().unwrap().path(), "/users");
    assert_eq!(upstream.hit_count(), 1, "validation errors are not retried");
}

#[tokio::test]
async fn typed_output_with_pick_and_validator() {
    let upstream = Upstream::start().await;
    upstream.script(
        "/users",
        [Answer::json(200, users(&[Some("a@x"), Some("nope")]))],
    );
    let stitch = Stitch::get(format!("{}/users", upstream.url()))
        .output::<Vec<User>>()
        .pick("data")
        .validate(
            |users: &Vec<User>| match users.iter().position(|u| !u.email.contains('@')) {
                Some(i) => Err(format!("user {i} has no valid email")),
                None => Ok(()),
            },
        )
        .build()
        .unwrap();
    let error = stitch.call(Input::new()).await.unwrap_err();
    assert_eq!(error.to_string(), "$.data: user 1 has no valid email");

    upstream.script("/users", [Answer::json(200, users(&[Some("a@x")]))]);
    let users = stitch.call(Input::new()).await.unwrap();
    assert_eq!(users[0].email, "a@x");
}

#[tokio::test]
async fn malformed_json_is_a_validation_error() {
    let upstream = Upstream::start().await;
    upstream.script("/broken", [Answer::status(200).body("{\"id\": 1,")]);
    let stitch = Stitch::get(format!("{}/broken", upstream.url()))
        .build()
        .unwrap();
    let error = stitch.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Validation);
    assert!(
        error.to_string().starts_with("$: EOF while parsing"),
        "{error}"
    );
    assert_eq!(error.body_bytes().map(|b| b.len()), Some(9));
}

#[tokio::test]
async fn text_and_bytes_outputs() {
    let upstream = Upstream::start().await;
    upstream.script("/hello", [Answer::status(200).body("héllo")]);
    upstream.script(
        "/blob",
        [Answer::status(200).body(vec![0_u8, 159, 146, 150])],
    );
    let text = Stitch::get(format!("{}/hello", upstream.url()))
        .text()
        .build()
        .unwrap();
    assert_eq!(text.call(Input::new()).await.unwrap(), "héllo");
    let bytes = Stitch::get(format!("{}/blob", upstream.url()))
        .bytes()
        .build()
        .unwrap();
    assert_eq!(
        bytes.call(Input::new()).await.unwrap(),
        Bytes::from_static(&[0, 159, 146, 150])
    );
    let not_text = Stitch::get(format!("{}/blob", upstream.url()))
        .text()
        .build()
        .unwrap();
    assert_eq!(
        not_text.call(Input::new()).await.unwrap_err().kind(),
        ErrorKind::Validation
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_and_without_content_length() {
    let upstream = Upstream::start().await;
    let big = vec![b'x'; 300_000];
    upstream.script("/sized", [Answer::status(200).body(big.clone())]);
    upstream.script("/chunked", [Answer::status(200).body(big).chunked()]);
    for path in ["/sized", "/chunked"] {
        let stitch = Stitch::get(format!("{}{path}", upstream.url()))
            .bytes()
            .max_response_bytes(100_000)
            .retry(3)
            .build()
            .unwrap();
        let error = stitch.call(Input::new()).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Transport, "{path}");
        // The same body comes back over the limit: not retryable, so sent once.
        assert_eq!(
            error.transport_kind(),
            Some(TransportErrorKind::BodyTooLarge)
        );
        assert!(!error.is_retryable());
        assert_eq!(error.attempts(), 1);
        assert_eq!(
            error.to_string(),
            "response body exceeds the limit of 100000 bytes"
        );
        let source = std::error::Error::source(&error).unwrap();
        let transport = source
            .downcast_ref::<stitchapi::transport::TransportError>()
            .unwrap();
        assert_eq!(transport.kind(), TransportErrorKind::BodyTooLarge);
    }
    let roomy = Stitch::get(format!("{}/chunked", upstream.url()))
        .bytes()
        .build()
        .unwrap();
    assert_eq!(roomy.call(Input::new()).await.unwrap().len(), 300_000);
    assert_eq!(upstream.hit_count(), 3, "one request per call");
}

#[tokio::test]
async fn an_empty_body_decodes_as_null() {
    let upstream = Upstream::start().await;
    upstream.script("/gone", [Answer::status(204)]);
    let stitch = Stitch::delete(format!("{}/gone", upstream.url()))
        .output::<Option<User>>()
        .build()
        .unwrap();
    assert!(stitch.call(Input::new()).await.unwrap().is_none());
}

/// Decodes `body` from `path` into `T` and returns the error.
async fn decode_error<T>(
    upstream: &Upstream,
    path: &str,
    body: serde_json::Value,
) -> stitchapi::Error
where
    T: serde::de::DeserializeOwned + std::fmt::Debug + stitchapi::runtime::MaybeSend + 'static,
{
    upstream.script(path, [Answer::json(200, body)]);
    Stitch::get(format!("{}{path}", upstream.url()))
        .output::<T>()
        .build()
        .unwrap()
        .call(Input::new())
        .await
        .expect_err("the body must not decode")
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Session {
    expires: u64,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
enum Role {
    Admin,
    Reader,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Account {
    role: Role,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Quota {
    max: std::num::NonZeroU64,
}

/// A type whose own deserializer quotes the value in its message.
#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
#[allow(dead_code)]
struct Code(String);

impl TryFrom<String> for Code {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Err(format!("{text:?} is not a valid code"))
    }
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Coupon {
    code: Code,
}

/// `Display` and `Debug` of a decode error keep the JSON path and the expected and found
/// types, never a value of the response; the full serde message is behind `decode_detail()`.
#[tokio::test]
async fn decode_errors_name_the_types_never_the_response_values() {
    let upstream = Upstream::start().await;
    let cases = [
        (
            decode_error::<Session>(
                &upstream,
                "/session",
                json!({"expires": "SESSION-TOKEN-abc123"}),
            )
            .await,
            "SESSION-TOKEN-abc123",
            "$.expires: invalid type: string, expected u64",
        ),
        (
            decode_error::<Account>(&upstream, "/account", json!({"role": "SECRET-ROLE"})).await,
            "SECRET-ROLE",
            "$.role: unknown variant, expected `Admin` or `Reader`",
        ),
        (
            decode_error::<Quota>(&upstream, "/quota", json!({"max": 0})).await,
            "`0`",
            "$.max: invalid value: integer, expected a nonzero u64",
        ),
        (
            decode_error::<Coupon>(&upstream, "/coupon", json!({"code": "SECRET-CODE"})).await,
            "SECRET-CODE",
            "$.code: the value was refused by its deserializer (its message may quote the \
             response: see Error::decode_detail)",
        ),
    ];
    for (error, secret, display) in cases {
        assert_eq!(error.kind(), ErrorKind::Validation);
        assert_eq!(error.to_string(), display);
        let debug = format!("{error:?}");
        assert!(!debug.contains(secret), "{debug}");
        let detail = error.decode_detail().expect("the detail stays reachable");
        assert!(detail.contains(secret), "{detail}");
    }
}

/// A second JSON document after the first is refused, whatever the output type; trailing
/// whitespace is not.
#[tokio::test]
async fn trailing_content_after_the_json_document_is_refused() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Balance {
        balance: u64,
    }
    let upstream = Upstream::start().await;
    let smuggled = r#"{"balance":100}{"balance":999999,"admin":true}"#;
    upstream.script("/smuggled", [Answer::status(200).body(smuggled)]);
    upstream.script(
        "/spaced",
        [Answer::status(200).body("{\"balance\":100} \r\n\t ")],
    );
    let untyped = Stitch::get(format!("{}/smuggled", upstream.url()))
        .build()
        .unwrap();
    let typed = Stitch::get(format!("{}/smuggled", upstream.url()))
        .output::<Balance>()
        .build()
        .unwrap();
    let error = untyped.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Validation, "{error:?}");
    assert_eq!(error.to_string(), "$: trailing characters");
    let error = typed.call(Input::new()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Validation, "{error:?}");
    assert_eq!(error.to_string(), "$: trailing characters");

    let spaced = Stitch::get(format!("{}/spaced", upstream.url()))
        .output::<Balance>()
        .build()
        .unwrap();
    assert_eq!(spaced.call(Input::new()).await.unwrap().balance, 100);
}
