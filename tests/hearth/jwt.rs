//! Issue: Hearth's JWTs as bearer credentials: what the auth layer refuses (each attack by a
//! test), the JWK set, key rotation with its grace period, and session revocation.
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hearth::clock::Clock;
use hearth::identity::jwt::{sign, Claims, JwtKey};
use hearth::identity::key::NodeKey;
use hmac::{Hmac, Mac};
use tonic::Code;

use crate::support::*;

/// A signed-in user's (user id, session id) and a JWT for them from the node itself.
async fn issued(n: &TestNode, email: &str) -> (u64, u64, String) {
    let (_, sid, uid) = n.sign_up(email).await;
    (uid, sid, n.domain().jwts.issue(uid, sid))
}

fn claims_for(n: &TestNode, uid: u64, sid: u64) -> Claims {
    let now = n.clock.now_ms() / 1000;
    Claims {
        iss: "localhost".into(),
        sub: uid.to_string(),
        aud: "hearth".into(),
        iat: now,
        nbf: now,
        exp: now + 600,
        jti: "t".into(),
        sid: sid.to_string(),
    }
}

/// The node's current signing key, read from its data dir.
fn node_key(n: &TestNode) -> JwtKey {
    hearth::keys::files::load_or_generate_jwt(&n.config.data_dir)
        .unwrap()
        .current
}

/// A token with `header` (JSON) and `claims`, signed by `key` over the exact bytes.
fn forge(header: serde_json::Value, claims: &Claims, key: &NodeKey) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(serde_json::to_vec(claims).unwrap())
    );
    format!("{input}.{}", B64.encode(key.sign(input.as_bytes())))
}

async fn refused(n: &TestNode, token: &str, needle: &str) {
    assert_refused(
        n.pong(Some(token)).await,
        Code::Unauthenticated,
        "JWT_INVALID",
        needle,
    );
}

#[tokio::test]
async fn the_auth_layer_refuses_every_forged_or_stale_jwt() {
    let n = TestNode::start().await;
    let (uid, sid, good) = issued(&n, "jwt@example.org").await;
    n.pong(Some(&good)).await.unwrap();
    let key = node_key(&n);
    let c = claims_for(&n, uid, sid);
    let head = |alg: &str| serde_json::json!({"alg": alg, "typ": "JWT", "kid": key.kid});

    // alg none, with and without a signature.
    let none = format!(
        "{}.{}.",
        B64.encode(head("none").to_string()),
        B64.encode(serde_json::to_vec(&c).unwrap())
    );
    refused(&n, &none, "alg").await;
    // HS256 keyed with the public key (the classic confusion), and RS256.
    let input = format!(
        "{}.{}",
        B64.encode(head("HS256").to_string()),
        B64.encode(serde_json::to_vec(&c).unwrap())
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key.key.public()).unwrap();
    mac.update(input.as_bytes());
    let hs = format!("{input}.{}", B64.encode(mac.finalize().into_bytes()));
    refused(&n, &hs, "alg").await;
    refused(&n, &forge(head("RS256"), &c, &key.key), "alg").await;
    // Headers that point at other keys.
    for (field, value) in [
        ("jku", serde_json::json!("https://evil.example/keys")),
        (
            "jwk",
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}),
        ),
        ("x5u", serde_json::json!("https://evil.example/cert")),
    ] {
        let mut h = head("EdDSA");
        h[field] = value;
        refused(&n, &forge(h, &c, &key.key), field).await;
    }
    // Right key, wrong claims.
    let wrong = |f: &dyn Fn(&mut Claims)| {
        let mut c = c.clone();
        f(&mut c);
        sign(&key, &c)
    };
    refused(&n, &wrong(&|c| c.aud = "another-app".into()), "audience").await;
    refused(&n, &wrong(&|c| c.iss = "evil.example".into()), "issuer").await;
    refused(&n, &wrong(&|c| c.exp = c.iat - 3600), "expired").await;
    refused(&n, &wrong(&|c| c.nbf = c.iat + 3600), "not valid yet").await;
    // An unknown key, and a tampered body.
    let stranger = JwtKey {
        kid: "stranger".into(),
        key: NodeKey::generate(),
    };
    refused(&n, &sign(&stranger, &c), "unknown").await;
    let other_kid = JwtKey {
        kid: key.kid.clone(),
        key: NodeKey::generate(),
    };
    refused(&n, &sign(&other_kid, &c), "signature").await;

    // Time passes: the token expires (with 30 s of leeway).
    n.clock.advance_ms(3_631_000);
    refused(&n, &good, "expired").await;
}

#[tokio::test]
async fn a_rotated_key_verifies_its_tokens_until_they_expire() {
    let n = TestNode::start().await;
    let (_, _, old) = issued(&n, "rotate@example.org").await;
    let jwks: serde_json::Value =
        serde_json::from_str(&get_text(&format!("{}/.well-known/jwks.json", n.url())).await)
            .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (keys[0]["kty"].as_str(), keys[0]["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );

    let mut n = n;
    n.stop().await;
    let out = ok(n.cli(&["key", "rotate", "--jwt"]));
    assert!(out.contains("new JWT key"), "{out}");
    let n = n.restart().await;
    let jwks: serde_json::Value =
        serde_json::from_str(&get_text(&format!("{}/.well-known/jwks.json", n.url())).await)
            .unwrap();
    assert_eq!(
        jwks["keys"].as_array().unwrap().len(),
        2,
        "current and previous"
    );
    n.pong(Some(&old))
        .await
        .expect("the previous key still verifies");
    let (_, _, new) = issued(&n, "rotate2@example.org").await;
    assert_ne!(
        new.split('.').next(),
        old.split('.').next(),
        "signed with the new kid"
    );
    // Past the grace period (a token lifetime after the rotation) the old key is gone.
    n.clock.advance_ms(3_601_000);
    let jwks: serde_json::Value =
        serde_json::from_str(&get_text(&format!("{}/.well-known/jwks.json", n.url())).await)
            .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    refused(&n, &old, "unknown or retired").await;
}
