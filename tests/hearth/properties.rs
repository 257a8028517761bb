//! Property-based tests of every parser of outside bytes: bearer tokens, server ids, the
//! federation TokenData and its signature, the key rotation chain, the well-known document,
//! config TOML and environment values, the Osmium socket's envelopes. None may panic; what they accept must be canonical.
use hearth::config::Config;
use hearth::federation::discovery::parse_well_known;
use hearth::identity::key::{verify, NodeKey};
use hearth::identity::proofs::{follow_chain, Rotation};
use hearth::identity::server_id::ServerId;
use hearth::pb::protocol::auth::v1::TokenData;
use hearth::secret::{BearerSecret, SecretKind};
use proptest::prelude::*;

fn kinds() -> impl Strategy<Value = SecretKind> {
    prop_oneof![
        Just(SecretKind::Session),
        Just(SecretKind::PersonalAccessToken),
        Just(SecretKind::Peer),
        Just(SecretKind::Refresh),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn osmium_frames_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = hearth::api::osmium::parse(frame.into());
    }

    #[test]
    fn an_osmium_envelope_reads_back_its_id_and_member(
        id in any::<u32>(),
        member in 2u32..200,
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut frame = Vec::new();
        prost::encoding::uint32::encode(1, &id, &mut frame);
        prost::encoding::bytes::encode(member, &body, &mut frame);
        let m = hearth::api::osmium::parse(frame.into()).unwrap();
        prop_assert_eq!(m.id, id);
        let (got, bytes) = m.member.unwrap();
        prop_assert_eq!(got, member);
        prop_assert_eq!(&bytes[..], &body[..]);
    }

    #[test]
    fn bearer_parsing_never_panics(text in any::<String>()) {
        let _ = BearerSecret::parse(&text);
    }

    #[test]
    fn bearer_tokens_round_trip_and_a_changed_character_is_caught(
        kind in kinds(),
        at in any::<prop::sample::Index>(),
        with in proptest::char::range('0', 'z'),
    ) {
        let token = BearerSecret::generate(kind);
        let text = token.expose().to_owned();
        let parsed = BearerSecret::parse(&text).unwrap();
        prop_assert_eq!(parsed.kind(), kind);
        prop_assert_eq!(parsed.hash(), token.hash());
        let prefix = kind.prefix().len() + 1;
        let i = prefix + at.index(text.len() - prefix);
        let mut changed: Vec<char> = text.chars().collect();
        prop_assume!(changed[i] != with && with.is_ascii_alphanumeric());
        changed[i] = with;
        let changed: String = changed.into_iter().collect();
        prop_assert!(BearerSecret::parse(&changed).is_err(), "{} accepted", changed);
    }

    #[test]
    fn server_ids_parse_to_a_canonical_form(text in any::<String>()) {
        if let Ok(id) = ServerId::parse(&text) {
            let again = ServerId::parse(&id.to_string());
            prop_assert_eq!(again.as_ref(), Ok(&id));
        }
    }

    #[test]
    fn server_ids_from_name_like_text(text in "[a-zA-Z0-9.:\\[\\]-]{0,40}") {
        if let Ok(id) = ServerId::parse(&text) {
            prop_assert_eq!(ServerId::parse(&id.to_string()).ok(), Some(id));
        }
    }

    #[test]
    fn token_data_decoding_and_verifying_never_panic_nor_accept_noise(
        data in proptest::collection::vec(any::<u8>(), 0..300),
        sig in proptest::collection::vec(any::<u8>(), 0..80),
        key in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        use prost::Message;
        let _ = TokenData::decode(data.as_slice());
        prop_assert!(!verify(&key, &data, &sig));
        let real = NodeKey::generate();
        prop_assert!(!verify(&real.public(), &data, &sig));
    }

    #[test]
    fn a_rotation_chain_of_noise_is_never_followed(
        links in proptest::collection::vec(
            (
                proptest::collection::vec(any::<u8>(), 0..40),
                proptest::collection::vec(any::<u8>(), 0..40),
                any::<u64>(),
                proptest::collection::vec(any::<u8>(), 0..70),
            ),
            0..5,
        ),
    ) {
        let pinned = NodeKey::generate().public();
        let offered = NodeKey::generate().public();
        let history: Vec<Rotation> = links
            .into_iter()
            .map(|(old_key, new_key, at, sig)| Rotation { old_key, new_key, at, sig })
            .collect();
        prop_assert!(follow_chain(&pinned, &offered, &history).is_err());
    }

    #[test]
    fn rotation_histories_of_any_length_are_bounded(len in 0usize..3000, pick in any::<u8>()) {
        use hearth::identity::proofs::MAX_ROTATIONS;
        let (a, b) = (NodeKey::generate(), NodeKey::generate());
        // A history that cycles between two keys, every record on the path: the most
        // costly shape to follow. Signatures are left out (zeros): only the length is tested.
        let history: Vec<Rotation> = (0..len as u64)
            .map(|i| {
                let (from, to) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
                Rotation {
                    old_key: from.public().to_vec(),
                    new_key: to.public().to_vec(),
                    at: i,
                    sig: vec![pick; 64],
                }
            })
            .collect();
        let r = follow_chain(&a.public(), &b.public(), &history);
        if len > MAX_ROTATIONS {
            prop_assert!(r.unwrap_err().to_string().contains("records"));
        } else if len > 0 {
            prop_assert!(r.is_err(), "a bad signature is never followed");
        }
    }

    #[test]
    fn well_known_documents_parse_to_valid_targets(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok((host, port)) = parse_well_known(&body) {
            let joined = format!("{host}:{port}");
            prop_assert!(port > 0);
            prop_assert!(ServerId::parse(&joined).is_ok());
        }
    }

    #[test]
    fn well_known_documents_with_any_server_text(server in any::<String>()) {
        let body = serde_json::json!({ "server": server }).to_string();
        match parse_well_known(body.as_bytes()) {
            Ok((host, port)) => {
                let joined = format!("{host}:{port}");
                prop_assert!(ServerId::parse(&joined).is_ok());
            }
            Err(e) => prop_assert!(e.len() < 300),
        }
    }

    #[test]
    fn config_toml_never_panics(text in any::<String>()) {
        let _ = Config::from_toml(&text);
    }

    #[test]
    fn config_toml_with_plausible_keys(
        section in prop_oneof![Just("listen"), Just("limits"), Just("mail"), Just("accounts"), Just("store")],
        key in "[a-z_]{1,30}",
        value in any::<String>(),
    ) {
        let text = format!("[{section}]\n{key} = {}\n", toml::Value::String(value));
        let _ = Config::from_toml(&text);
    }

    #[test]
    fn environment_values_never_panic(
        name in "HEARTH_[A-Z_]{0,30}",
        value in any::<String>(),
    ) {
        let vars = vec![(name, value)];
        let _ = Config::load_with_warnings(None, vars);
    }
}
