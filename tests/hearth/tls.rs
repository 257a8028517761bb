//! TLS and signals on a real `hearth serve` process: SIGHUP reloads the certificate (and
//! never stops the node), TLS file errors name the config key, a key that does not belong
//! to the certificate is said in words.
use std::process::Command;
use std::time::Duration;

use crate::served::Served;

fn self_signed() -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    (c.cert.pem(), c.key_pair.serialize_pem())
}

async fn healthz_trusting(cert_pem: &str, port: &str) -> Result<u16, reqwest::Error> {
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    Ok(client
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await?
        .status()
        .as_u16())
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (cert_a, key_a) = self_signed();
    std::fs::write(&cert, &cert_a).unwrap();
    std::fs::write(&key, &key_a).unwrap();
    let node = Served::start_in(
        &dir.path().join("data"),
        &[
            ("HEARTH_TLS_CERT", cert.to_str().unwrap()),
            ("HEARTH_TLS_KEY", key.to_str().unwrap()),
        ],
    );
    let port = node.port().to_owned();
    assert_eq!(healthz_trusting(&cert_a, &port).await.unwrap(), 200);

    let (cert_b, key_b) = self_signed();
    std::fs::write(&cert, &cert_b).unwrap();
    std::fs::write(&key, &key_b).unwrap();
    node.hangup();
    let mut served_b = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if healthz_trusting(&cert_b, &port).await.is_ok() {
            served_b = true;
            break;
        }
    }
    assert!(served_b, "the new certificate was not served after SIGHUP");
    assert!(healthz_trusting(&cert_a, &port).await.is_err());
    let log = node.stop();
    assert!(
        log.contains("SIGHUP: reloaded the TLS certificate"),
        "{log}"
    );
}

#[test]
fn sighup_does_not_stop_a_plaintext_node() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Served::start_in(&dir.path().join("data"), &[]);
    node.hangup();
    std::thread::sleep(Duration::from_millis(300));
    assert!(node.is_running(), "SIGHUP stopped the node");
    let log = node.stop();
    assert!(log.contains("nothing to reload"), "{log}");
}

#[test]
fn tls_file_errors_name_the_key_and_a_mismatch_is_said_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_a, _) = self_signed();
    let (_, key_b) = self_signed();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, cert_a).unwrap();
    std::fs::write(&key, key_b).unwrap();
    let run = |cert: &str, key: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .arg("serve")
            .env("HEARTH_DATA_DIR", dir.path().join("data"))
            .env("HEARTH_LISTEN_ADDR", "127.0.0.1:0")
            .env("HEARTH_TLS_CERT", cert)
            .env("HEARTH_TLS_KEY", key)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = run("nope.pem", key.to_str().unwrap());
    assert!(e.contains("tls.cert: nope.pem: No such file"), "{e}");
    let e = run(cert.to_str().unwrap(), key.to_str().unwrap());
    assert!(
        e.contains("tls.key does not belong to the certificate"),
        "{e}"
    );
}

#[test]
fn plaintext_on_a_non_loopback_address_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let node = Served::start_in(
        &dir.path().join("data"),
        &[("HEARTH_LISTEN_ADDR", "0.0.0.0:0")],
    );
    std::thread::sleep(Duration::from_millis(200));
    let log = node.stop();
    assert!(log.contains("serving PLAINTEXT"), "{log}");
}
