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
    let e = Config::load(None, vars(&[("HEARTH_NOPE_X", "1")]))
        .err()
        .map(key_of);
    assert_eq!(e.as_deref(), Some("HEARTH_NOPE_X"));
    let e = Config::load(None, vars(&[("HEARTH_LISTEN_PORT", "1")])).err();
    assert!(e
        .map(|e| e.to_string())
        .unwrap_or_default()
        .contains("port"));
}

#[test]
fn debug_output_never_shows_credentials() {
    let c = Config::from_toml(
        "[mail]\nsmtp_url = \"smtp://bob:hunter2-url@mail.example.org:2525\"\n\
         smtp_username = \"bob\"\nsmtp_password = \"hunter2-field\"\n\
         [[oidc.providers]]\nid = \"x\"\ntype = \"oidc\"\nclient_secret = \"hunter2-oidc\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let text = format!("{c:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("mail.example.org:2525"), "{text}");
}
