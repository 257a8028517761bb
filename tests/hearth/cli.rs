//! The operator's CLI beside a running node: disable, enable, unlock, verify, reset mail,
//! delete; session list and revoke-all; `--json`; readable times; key export to a 0600 file;
//! key import checked against the rotation history.
use tonic::Code;

use crate::support::*;

#[tokio::test]
async fn operators_disable_enable_unlock_verify_and_delete_accounts() {
    let n = TestNode::start().await;
    let (token, _, _) = n.sign_up("managed@example.org").await;

    ok(n.cli(&["user", "disable", "managed@example.org"]));
    assert!(n.pong(Some(&token)).await.is_err(), "signed out everywhere");
    let s = assert_code(
        n.sign_in("managed@example.org", PASSWORD).await,
        Code::PermissionDenied,
        "disabled",
    );
    assert_eq!(
        tonic_types::StatusExt::get_details_error_info(&s)
            .map(|i| i.reason)
            .as_deref(),
        Some("ACCOUNT_DISABLED")
    );
    ok(n.cli(&["user", "enable", "managed@example.org"]));
    n.sign_in("managed@example.org", PASSWORD).await.unwrap();

    for _ in 0..6 {
        let _ = n.sign_in("managed@example.org", "wrong wrong wrong").await;
    }
    assert_code(
        n.sign_in("managed@example.org", PASSWORD).await,
        Code::ResourceExhausted,
        "try again",
    );
    ok(n.cli(&["user", "unlock", "managed@example.org"]));
    n.sign_in("managed@example.org", PASSWORD).await.unwrap();

    ok(n.cli(&["user", "verify", "managed@example.org"]));
    ok(n.cli(&["user", "reset-password", "managed@example.org"]));
    assert!(n
        .last_mail_to("managed@example.org")
        .await
        .subject
        .contains("password reset"));
    let listed = ok(n.cli(&["user", "list", "--json"]));
    let row: serde_json::Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!(row["email"], "managed@example.org");
    assert_eq!(row["email_verified"], true);
    assert!(row["created_at"].as_str().unwrap().ends_with('Z'));

    ok(n.cli(&["user", "delete", "managed@example.org"]));
    assert!(ok(n.cli(&["user", "list", "--json"])).trim().is_empty());
    let missing = n.cli(&["user", "disable", "managed@example.org"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no local account"));
}

#[tokio::test]
async fn operators_list_and_revoke_a_users_sessions() {
    let n = TestNode::start().await;
    let (first, first_id, _) = n.sign_up("many@example.org").await;
    let second = n.sign_in("many@example.org", PASSWORD).await.unwrap();
    let listed = ok(n.cli(&["session", "list", "--email", "many@example.org", "--json"]));
    let ids: Vec<u64> = listed
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&first_id));
    let text = ok(n.cli(&["session", "list", "--email", "many@example.org"]));
    assert!(
        text.contains("LAST ACTIVE") && text.contains('T') && text.contains('Z'),
        "{text}"
    );

    ok(n.cli(&["session", "revoke", &first_id.to_string()]));
    let again = n.cli(&["session", "revoke", &first_id.to_string()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already revoked"));
    assert!(n.pong(Some(&first)).await.is_err());

    let out = ok(n.cli(&["session", "revoke", "--all", "--email", "many@example.org"]));
    assert!(out.contains("revoked 1 sessions"), "{out}");
    assert!(n.pong(Some(&second)).await.is_err());
}

#[tokio::test]
async fn key_export_writes_0600_and_import_respects_the_rotation_history() {
    use std::os::unix::fs::PermissionsExt;
    let mut n = TestNode::start().await;
    let dir = n.dir.path().to_owned();
    let backup = dir.join("backup.key");
    ok(n.cli(&["key", "export", "--out", backup.to_str().unwrap()]));
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // `> FILE` as a shell makes it (0644): narrowed to 0600 before the key is written.
    let redirected = dir.join("redirected.key");
    let file = std::fs::File::create(&redirected).unwrap();
    std::fs::set_permissions(&redirected, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["key", "export"])
        .env("HEARTH_DATA_DIR", &n.config.data_dir)
        .stdout(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(&redirected).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        std::fs::read(&redirected).unwrap(),
        std::fs::read(&backup).unwrap(),
        "the same key"
    );
    n.stop().await;
    let rotated = ok(n.cli(&["key", "rotate"]));
    assert!(rotated.contains("rotated"), "{rotated}");
    let shown = ok(n.cli(&["key", "show"]));
    assert!(
        shown.contains("rotated at 20") && shown.contains("Z from"),
        "{shown}"
    );
    // The backup is the key from before the rotation: the history contradicts it.
    let refused = n.cli(&["key", "import", backup.to_str().unwrap()]);
    assert!(!refused.status.success());
    let e = String::from_utf8_lossy(&refused.stderr);
    assert!(e.contains("rotation history says its key is"), "{e}");
}

/// Security review: `hearth user disable`, `session revoke` and `token revoke` against a
/// running SQLite node left the credential working ~5 s (its cache), a personal access token
/// too. The command now tells the node (notice files in its data dir, read every 200 ms).
#[tokio::test]
async fn an_operators_revocation_reaches_the_running_node_at_once() {
    let n = TestNode::start().await;
    let (token, _, _) = n.sign_up("op-revoke@example.org").await;
    let (pat, _) = crate::tokens::make(&n, &token, &[]).await;
    // Both are cached now.
    n.pong(Some(&token)).await.unwrap();
    n.pong(Some(&pat)).await.unwrap();
    ok(n.cli(&["user", "disable", "op-revoke@example.org"]));
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert!(
        n.pong(Some(&token)).await.is_err(),
        "the session still works"
    );
    assert!(n.pong(Some(&pat)).await.is_err(), "the token still works");

    ok(n.cli(&["user", "enable", "op-revoke@example.org"]));
    let again = n.sign_in("op-revoke@example.org", PASSWORD).await.unwrap();
    n.pong(Some(&again)).await.unwrap();
    ok(n.cli(&[
        "session",
        "revoke",
        "--all",
        "--email",
        "op-revoke@example.org",
    ]));
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert!(
        n.pong(Some(&again)).await.is_err(),
        "revoke --all left a session working"
    );
}
