//! A client walking through cross-node login, as a client author would write it:
//! sign up on a home node, ask it for a federation token for another node (Federate), and
//! present that token there (LoginFederated) to get a session on it.
//!
//! Usage: federation_client HOME_URL HOME_ID [TARGET_URL TARGET_ID]...
//! (scripts/federation-demo.sh runs it against three local nodes.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hearth::pb::protocol::auth::v1::{
    auth_service_client::AuthServiceClient, FederateRequest, LoginFederatedRequest,
};
use hearth::pb::tangle::client::auth::{auth_client::AuthClient, SignUp};
use hearth::pb::test::v1::{test_auth_service_client::TestAuthServiceClient, PongRequest};
use tonic::transport::Channel;
use tonic::Request;

fn with_token<T>(msg: T, token: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 || !args.len().is_multiple_of(2) {
        eprintln!("usage: federation_client HOME_URL HOME_ID TARGET_URL TARGET_ID [TARGET_URL TARGET_ID]...");
        std::process::exit(2);
    }
    let (home_url, home_id) = (&args[0], &args[1]);
    let home = Channel::from_shared(home_url.clone())?.connect().await?;

    let email = format!("ada+{}@example.org", std::process::id());
    println!("1. Signing up {email} on {home_id} ({home_url}).");
    let signed = AuthClient::new(home.clone())
        .sign_up(SignUp {
            email: Some(email.clone()),
            password: Some("correct horse battery staple".into()),
            name: "Ada".into(),
            invite_code: None,
        })
        .await?
        .into_inner();
    println!(
        "   {home_id} created user {} and a session.",
        signed.user.map(|u| u.id).unwrap_or_default()
    );

    for (step, pair) in args[2..].chunks(2).enumerate() {
        let (url, id) = (&pair[0], &pair[1]);
        println!(
            "{}. Asking {home_id} for a token that lets Ada into {id} (Federate).",
            step * 2 + 2
        );
        let token = AuthServiceClient::new(home.clone())
            .federate(with_token(
                FederateRequest {
                    server_id: id.clone(),
                },
                &signed.token,
            ))
            .await?
            .into_inner()
            .token
            .expect("Federate returns a token");
        println!(
            "   Got {} signed bytes, valid for two minutes and for {id} only.",
            token.data.len()
        );

        println!(
            "{}. Presenting it to {id} at {url} (LoginFederated).",
            step * 2 + 3
        );
        let target = Channel::from_shared(url.clone())?.connect().await?;
        let session = AuthServiceClient::new(target.clone())
            .login_federated(LoginFederatedRequest {
                auth_token: Some(token),
                server_id: home_id.clone(),
            })
            .await?
            .into_inner()
            .session
            .expect("LoginFederated returns a session");
        TestAuthServiceClient::new(target)
            .pong(with_token(PongRequest {}, &session.session_token))
            .await?;
        println!("   {id} checked the signature with {home_id}'s key and signed Ada in as its user {}; an authenticated call (Pong) works.", session.user_id);
    }
    println!(
        "Done: one account on {home_id}, sessions on {} other node(s).",
        args[2..].len() / 2
    );
    Ok(())
}
