//! Refusals over real gRPC and HTTP: a stable reason code in `google.rpc.ErrorInfo`, an
//! `x-request-id` on every answer, and no internal detail sent to the caller.
use hearth::pb::tangle::client::auth as tangle;
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::*;

#[tokio::test]
async fn refusals_carry_a_reason_code_and_a_request_id() {
    let n = TestNode::start().await;
    n.sign_up("reasons@example.org").await;
    let wrong = n.sign_in("reasons@example.org", "not the password").await;
    let s = assert_code(wrong, Code::Unauthenticated, "wrong");
    assert_eq!(reason(&s), "BAD_CREDENTIALS");
    let id = s
        .metadata()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(id.is_some_and(|id| id.len() == 16), "{:?}", s.metadata());

    let s = assert_code(n.pong(None).await, Code::Unauthenticated, "credential");
    assert_eq!(reason(&s), "CREDENTIAL_MISSING");
    let s = assert_code(
        n.pong(Some("hs_not-a-token")).await,
        Code::Unauthenticated,
        "",
    );
    assert_eq!(reason(&s), "CREDENTIAL_MALFORMED");

    let bad = n
        .tangle()
        .sign_up(tangle::SignUp {
            email: Some("x".repeat(5000)),
            password: Some(PASSWORD.into()),
            name: "X".into(),
            invite_code: None,
        })
        .await;
    let s = assert_code(bad, Code::InvalidArgument, "email");
    assert_eq!(reason(&s), "FIELD_INVALID");
    assert!(s.message().len() < 600, "echoed input is bounded");
    let field = s
        .get_details_error_info()
        .and_then(|i| i.metadata.get("field").cloned());
    assert_eq!(field.as_deref(), Some("email"));
}

#[tokio::test]
async fn a_callers_request_id_is_kept_and_a_bad_one_replaced() {
    let n = TestNode::start().await;
    let mut req = tonic::Request::new(hearth::pb::test::v1::PingRequest {});
    req.metadata_mut()
        .insert("x-request-id", "trace-42".parse().unwrap());
    let res = hearth::pb::test::v1::test_no_auth_service_client::TestNoAuthServiceClient::new(
        n.channel.clone(),
    )
    .ping(req)
    .await
    .unwrap();
    assert_eq!(res.metadata().get("x-request-id").unwrap(), "trace-42");
    let mut req = tonic::Request::new(hearth::pb::test::v1::PingRequest {});
    req.metadata_mut()
        .insert("x-request-id", "a b\tc".parse().unwrap());
    let res = hearth::pb::test::v1::test_no_auth_service_client::TestNoAuthServiceClient::new(
        n.channel.clone(),
    )
    .ping(req)
    .await
    .unwrap();
    assert_ne!(res.metadata().get("x-request-id").unwrap(), "a b\tc");
}

#[tokio::test]
async fn an_undecodable_request_is_invalid_argument_naming_the_message() {
    let n = TestNode::start().await;
    // SignIn{email: <the byte 0xff>}: not UTF-8, so it cannot decode.
    let frame = vec![0u8, 0, 0, 0, 3, 0x0a, 0x01, 0xff];
    let res = reqwest::Client::builder()
        .http1_only()
        .build()
        .unwrap()
        .post(format!("{}/tangle.client.auth.Auth/SignIn", n.url()))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(frame)
        .send()
        .await
        .unwrap();
    let headers = res.headers().clone();
    let body = String::from_utf8_lossy(&res.bytes().await.unwrap()).into_owned();
    let status = headers
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_else(|| body.clone());
    assert!(
        status == "3" || status.contains("grpc-status:3"),
        "{headers:?} {body}"
    );
    let message = headers
        .get("grpc-message")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or(body);
    assert!(message.contains("tangle.client.auth.SignIn"), "{message}");
}

/// Security review: malformed gRPC-Web framing answered INTERNAL with the library's text.
#[tokio::test]
async fn broken_grpc_web_framing_is_invalid_argument_with_a_reason() {
    let n = TestNode::start().await;
    let client = reqwest::Client::builder().http1_only().build().unwrap();
    for (content_type, body) in [
        // A frame that says 9 bytes and carries 3.
        (
            "application/grpc-web+proto",
            b"\x00\x00\x00\x00\x09abc".to_vec(),
        ),
        // gRPC-Web text that is not base64.
        ("application/grpc-web-text", b"!!!notbase64".to_vec()),
    ] {
        let res = client
            .post(format!("{}/test.v1.TestNoAuthService/Ping", n.url()))
            .header("content-type", content_type)
            .header("x-grpc-web", "1")
            .body(body)
            .send()
            .await
            .unwrap();
        let headers = res.headers().clone();
        let text = String::from_utf8_lossy(&res.bytes().await.unwrap()).into_owned();
        let status = headers
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_else(|| text.clone());
        assert!(
            status == "3" || status.contains("grpc-status:3"),
            "{content_type}: {headers:?} {text}"
        );
        assert!(
            headers.contains_key("grpc-status-details-bin")
                || text.contains("grpc-status-details-bin"),
            "a reason code: {headers:?} {text}"
        );
    }
}
