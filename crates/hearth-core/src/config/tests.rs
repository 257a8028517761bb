//! Tests of the configuration contract: defaults, example file, key-naming errors, env.
use super::*;

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn key_of(err: ConfigError) -> String {
    match err {
        ConfigError::Key { key, .. } => key,
        other => panic!("expected a key error, got {other}"),
    }
}

#[test]
fn the_example_is_the_defaults_and_names_every_key() {
    let example = Config::from_toml(EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(example, Config::default());
    let toml::Value::Table(defaults) =
        toml::Value::try_from(Config::default()).unwrap_or_else(|e| panic!("{e}"))
    else {
        panic!("not a table")
    };
    for (key, value) in defaults {
        match value {
            toml::Value::Table(section) => {
                assert!(EXAMPLE.contains(&format!("[{key}]")), "[{key}] missing");
                for sub in section.keys() {
                    assert!(
                        EXAMPLE.contains(&format!("\n{sub} =")),
                        "{key}.{sub} missing"
                    );
                }
            }
            _ => assert!(EXAMPLE.contains(&format!("\n{key} =")), "{key} missing"),
        }
    }
    for optional in [
        "[tls]",
        "smtp_url",
        "public_url",
        "extra_ca",
        "[[federation.peers]]",
        "[[oidc.providers]]",
    ] {
        assert!(EXAMPLE.contains(optional), "{optional} is not documented");
    }
}

#[test]
fn unknown_keys_are_named() {
    let e = Config::from_toml("[listen]\nadress = \"1.2.3.4:5\"").err();
    let msg = e.map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("adress"), "{msg}");
    assert!(Config::from_toml("colour = 1").is_err());
}

#[test]
fn bad_values_name_the_key_and_the_expectation() {
    let e = Config::from_toml("[listen]\naddr = \"nope\"")
        .err()
        .map(key_of);
    assert_eq!(e.as_deref(), Some("listen.addr"));
    let msg = Config::from_toml("[accounts]\nregistration = \"maybe\"")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        msg.contains("accounts.registration") && msg.contains("invite"),
        "{msg}"
    );
    let e = Config::from_toml("server_id = \"https://x\"")
        .err()
        .map(key_of);
    assert_eq!(e.as_deref(), Some("server_id"));
}

#[test]
fn environment_overrides_file_and_defaults() {
    let c = Config::load(
        None,
        vars(&[
            ("HEARTH_LISTEN_ADDR", "127.0.0.1:0"),
            ("HEARTH_SERVER_ID", "Alpha.Example.org"),
            ("HEARTH_ACCOUNTS_ALLOW_GUESTS", "true"),
            ("HEARTH_FEDERATION_DENY", "[\"evil.example\"]"),
            ("HEARTH_LOG", "debug"),
            ("PATH", "/bin"),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.listen.addr.port(), 0);
    assert_eq!(c.server_id.to_string(), "alpha.example.org");
    assert!(c.accounts.allow_guests);
    assert_eq!(c.federation.deny.len(), 1);
}

#[test]
fn environment_errors_name_the_type_and_show_the_list_syntax() {
    let e = Config::load(None, vars(&[("HEARTH_PASSWORDS_ARGON2_MEMORY_KIB", "-5")]))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("passwords.argon2_memory_kib")
            && e.contains("a whole number")
            && e.contains("-5"),
        "{e}"
    );
    let e = Config::load(
        None,
        vars(&[("HEARTH_HTTP_CORS_ORIGINS", "http://app.example")]),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        e.contains(r#"HEARTH_HTTP_CORS_ORIGINS='["http://app.example"]'"#),
        "{e}"
    );
    // A credential's value is still never echoed.
    let e = Config::load(None, vars(&[("HEARTH_MAIL_SMTP_PASSWORD", "[1, 2]")]))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(!e.contains("[1, 2]"), "{e}");
    let e = Config::load(
        Some(std::path::Path::new("/no/such/hearth.toml")),
        vars(&[]),
    )
    .err()
    .map(|e| format!("{:#}", anyhow::Error::from(e)))
    .unwrap_or_default();
    assert_eq!(e.matches("No such file").count(), 1, "{e}");
    assert!(e.contains("hearth init"), "{e}");
}

#[test]
fn unknown_variables_are_ignored_with_one_warning_each() {
    // What Kubernetes injects for a Service named `hearth`, a typo and a made-up name.
    let (c, warnings) = Config::load_with_warnings(
        None,
        vars(&[
            ("HEARTH_PORT", "tcp://10.0.0.7:7450"),
            ("HEARTH_SERVICE_HOST", "10.0.0.7"),
            ("HEARTH_PORT_7450_TCP_ADDR", "10.0.0.7"),
            ("HEARTH_LISTEN_ADRR", "0.0.0.0:1"),
            ("HEARTH_LISTEN_PORT", "1"),
            ("HEARTH_ACCOUNTS_ALLOW_GUESTS", "true"),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(c.accounts.allow_guests);
    assert_eq!(c.listen.addr, Config::default().listen.addr);
    // Kubernetes' own variables are not warned about; the typo and the made-up name are.
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings.iter().any(|w| w.contains("HEARTH_LISTEN_PORT:")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("HEARTH_LISTEN_ADRR")
                && w.contains("did you mean HEARTH_LISTEN_ADDR")),
        "{warnings:?}"
    );
}

#[test]
fn values_are_text_unless_the_key_needs_more_and_secrets_are_never_echoed() {
    let c = Config::load(
        None,
        vars(&[
            ("HEARTH_MAIL_SMTP_USERNAME", "bob"),
            ("HEARTH_MAIL_SMTP_PASSWORD", "12345678"),
            ("HEARTH_MAIL_FROM", "true"),
            ("HEARTH_LIMITS_MAX_CONNECTIONS", "64"),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.mail.smtp_password.as_deref(), Some("12345678"));
    assert_eq!(c.mail.from, "true");
    assert_eq!(c.limits.max_connections, 64);

    let e = Config::load(
        None,
        vars(&[("HEARTH_ACCOUNTS_SIGN_INS_PER_IP_PER_MINUTE", "s3cr3t-ish")]),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        e.contains("HEARTH_ACCOUNTS_SIGN_INS_PER_IP_PER_MINUTE"),
        "{e}"
    );
    assert!(e.contains("accounts.sign_ins_per_ip_per_minute"), "{e}");

    let e = Config::from_toml("[mail]\nsmtp_username = \"bob\"\nsmtp_password = 87654321\n")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("mail.smtp_password"), "{e}");
    assert!(!e.contains("87654321"), "{e}");
}

#[test]
fn identity_providers_are_checked_at_start_naming_the_key() {
    let provider = |body: &str| {
        let text = format!("[[oidc.providers]]\nid = \"p\"\n{body}");
        Config::from_toml(&text).err().map(key_of)
    };
    assert_eq!(
        provider("type = \"saml\""),
        Some("oidc.providers[0].type".into())
    );
    assert_eq!(
        provider("type = \"oidc\""),
        Some("oidc.providers[0].issuer".into())
    );
    assert_eq!(
        provider("type = \"oauth\"\nid_field = \"id\""),
        Some("oidc.providers[0].user_url".into())
    );
    assert_eq!(
        provider("type = \"oauth\"\nuser_url = \"https://api.example.org/user\""),
        Some("oidc.providers[0].id_field".into())
    );
    assert_eq!(
        provider("type = \"oidc\"\nissuer = \"http://id.example.org\""),
        Some("oidc.providers[0].issuer".into())
    );
    // Without client credentials an oidc provider cannot tell which app a token is for.
    assert_eq!(
        provider("type = \"oidc\"\nissuer = \"http://id.example.org\"\nallow_http = true"),
        Some("oidc.providers[0].accept_tokens_of_any_app".into())
    );
    assert_eq!(
        provider(
            "type = \"oidc\"\nissuer = \"http://id.example.org\"\nallow_http = true\n\
             accept_tokens_of_any_app = true"
        ),
        None
    );
    assert_eq!(
        provider(
            "type = \"oidc\"\nissuer = \"https://id.example.org\"\nclient_id = \"h\"\n\
             client_secret = \"s\""
        ),
        None
    );
    // An oauth user endpoint never can: it needs the operator's word.
    assert_eq!(
        provider(
            "type = \"oauth\"\nuser_url = \"https://api.example.org/user\"\nid_field = \"id\""
        ),
        Some("oidc.providers[0].accept_tokens_of_any_app".into())
    );
    assert_eq!(
        provider("type = \"oidc\"\nissuer = \"https://id.example.org\"\nclient_id = \"h\""),
        Some("oidc.providers[0].client_secret".into())
    );
}

#[test]
fn debug_output_never_shows_credentials() {
    let c = Config::from_toml(
        "[mail]\nsmtp_url = \"smtp://bob:hunter2-url@mail.example.org:2525\"\n\
         smtp_username = \"bob\"\nsmtp_password = \"hunter2-field\"\n\
         [[oidc.providers]]\nid = \"x\"\ntype = \"oidc\"\nissuer = \"https://id.example.org\"\n\
         client_id = \"hearth\"\nclient_secret = \"hunter2-oidc\"\n\
         [store]\nurl = \"postgres://hearth:hunter2-pg@db.example.org:5432/hearth\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let text = format!("{c:?}");
    assert!(!text.contains("hunter2"), "{text}");
    let shown = c.redacted_toml();
    assert!(
        !shown.contains("hunter2") && shown.contains("db.example.org:5432"),
        "{shown}"
    );
    assert!(text.contains("mail.example.org:2525"), "{text}");
}

#[test]
fn relative_paths_resolve_against_the_config_files_directory() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("hearth.toml");
    std::fs::write(
        &path,
        "data_dir = \"state\"\n[tls]\ncert = \"tls/cert.pem\"\nkey = \"/etc/hearth/key.pem\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let c = Config::load(Some(&path), vars(&[])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.data_dir, dir.path().join("state"));
    let tls = c.tls.unwrap_or_else(|| panic!("tls"));
    assert_eq!(tls.cert, dir.path().join("tls/cert.pem"));
    assert_eq!(tls.key, std::path::PathBuf::from("/etc/hearth/key.pem"));
    // Without a file, relative paths stay relative to the working directory.
    let c = Config::load(None, vars(&[])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.data_dir, std::path::PathBuf::from("./data"));
}

#[test]
fn a_store_ca_file_needs_a_store_url() {
    let err = Config::from_toml("[store]\nca_file = \"/etc/hearth/pg-ca.pem\"\n")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("store.ca_file") && err.contains("set store.url"),
        "{err}"
    );
}
