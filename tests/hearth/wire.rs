//! The wire contract of DESIGN.md §1: packages, names and field numbers that existing
//! clients depend on, checked on the descriptor set the node serves through reflection.
use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorSet};

fn set() -> FileDescriptorSet {
    FileDescriptorSet::decode(hearth::pb::FILE_DESCRIPTOR_SET).unwrap()
}

/// The message `full` (e.g. "auth.Peer" or "protocol.auth.v1.AuthStep.Form.FormField").
fn message(set: &FileDescriptorSet, full: &str) -> DescriptorProto {
    for file in &set.file {
        let package = file.package();
        let Some(rest) = full.strip_prefix(&format!("{package}.")) else {
            continue;
        };
        let mut parts = rest.split('.');
        let top = parts.next().unwrap_or_default();
        let mut current = file.message_type.iter().find(|m| m.name() == top).cloned();
        for part in parts {
            current =
                current.and_then(|m| m.nested_type.iter().find(|n| n.name() == part).cloned());
        }
        if let Some(m) = current {
            return m;
        }
    }
    panic!("message {full} is not in the descriptor set")
}

fn assert_fields(full: &str, expected: &[(&str, i32)]) {
    let m = message(&set(), full);
    for (name, number) in expected {
        let field = m
            .field
            .iter()
            .find(|f| f.name() == *name)
            .unwrap_or_else(|| panic!("{full}.{name} missing"));
        assert_eq!(field.number(), *number, "{full}.{name}");
    }
}

#[test]
fn field_numbers_match_the_seeds_and_extensions() {
    assert_fields(
        "auth.Peer",
        &[
            ("url", 1),
            ("name", 2),
            ("participant_address", 4),
            ("operator_address", 6),
        ],
    );
    let peer = message(&set(), "auth.Peer");
    let reserved: Vec<i32> = peer.reserved_range.iter().map(|r| r.start()).collect();
    assert!(
        reserved.contains(&3) && reserved.contains(&5),
        "auth.Peer reserves 3 and 5"
    );
    assert_fields(
        "auth.ChallengeRequest",
        &[
            ("client", 1),
            ("operator_address", 2),
            ("client_challenge", 3),
        ],
    );
    assert_fields(
        "auth.ChallengeResponse",
        &[
            ("server", 1),
            ("server_challenge", 2),
            ("server_signature", 4),
        ],
    );
    assert_fields(
        "auth.SignedChallenge",
        &[
            ("client", 1),
            ("signed_server_challenge", 2),
            ("operator_address", 3),
        ],
    );
    assert_fields(
        "auth.v1alpha1.Account",
        &[
            ("provider", 1),
            ("type", 2),
            ("provider_account_id", 3),
            ("access_token", 4),
        ],
    );
    assert_fields(
        "protocol.auth.v1.AuthStep",
        &[
            ("fallback_url", 1),
            ("can_go_back", 2),
            ("choice", 3),
            ("form", 4),
            ("session", 5),
            ("waiting", 6),
        ],
    );
    assert_fields(
        "protocol.auth.v1.AuthStep.Form.FormField",
        &[("name", 1), ("type", 2)],
    );
    assert_fields(
        "protocol.auth.v1.NextStepRequest",
        &[("auth_id", 1), ("choice", 2), ("form", 3)],
    );
    assert_fields(
        "protocol.auth.v1.NextStepRequest.FormFields",
        &[("bytes", 1), ("string", 2), ("number", 3)],
    );
    assert_fields(
        "protocol.auth.v1.Session",
        &[("user_id", 1), ("session_token", 2), ("guest_token", 3)],
    );
    assert_fields(
        "protocol.auth.v1.TokenData",
        &[
            ("user_id", 1),
            ("server_id", 2),
            ("username", 3),
            ("avatar", 4),
            ("issued_at", 5),
            ("expires_at", 6),
            ("nonce", 7),
        ],
    );
    assert_fields(
        "protocol.auth.v1.KeyResponse",
        &[("key", 1), ("history", 2)],
    );
    assert_fields(
        "protocol.auth.v1.KeyRotation",
        &[("old_key", 1), ("new_key", 2), ("at", 3), ("sig", 4)],
    );
    assert_fields(
        "protocol.auth.v1.LoginFederatedRequest",
        &[("auth_token", 1), ("server_id", 2)],
    );
    assert_fields("protocol.harmonytypes.v1.Token", &[("sig", 1), ("data", 2)]);
    assert_fields(
        "accounts.v1.SignUpRequest",
        &[("email", 1), ("password", 2), ("invite_code", 3)],
    );
    assert_fields(
        "accounts.v1.NewPasswordRequest",
        &[("data", 1), ("password", 2), ("code", 3)],
    );
    assert_fields("tokens.v1.TokenMetadata", &[("name", 1), ("expires_at", 2)]);
    assert_fields("tokens.v1.TokenPermissions", &[("scopes", 1)]);
    for m in ["tokens.v1.GetTokenResponse", "tokens.v1.ListTokensResponse"] {
        assert_fields(
            m,
            &[
                ("token_uuid", 1),
                ("token_metadata", 2),
                ("token_permissions", 3),
                ("last_used_at", 4),
                ("last_used_ip", 5),
                ("created_at", 6),
            ],
        );
    }
    assert_fields("tangle.client.auth.Authorize", &[("token", 5)]);
    assert_fields(
        "tangle.client.auth.SignUp",
        &[
            ("email", 1),
            ("password", 2),
            ("name", 3),
            ("invite_code", 4),
        ],
    );
    assert_fields(
        "tangle.client.auth.Session",
        &[("id", 1), ("last_active", 7), ("country", 8), ("region", 9)],
    );
    assert_fields(
        "tangle.client.auth.InvitePreview",
        &[
            ("code", 1),
            ("expires_at", 5),
            ("community", 7),
            ("chat", 8),
            ("user", 9),
        ],
    );
    assert_fields(
        "tangle.client.types.User",
        &[("id", 1), ("name", 2), ("username", 3), ("bot", 6)],
    );
    assert_fields(
        "tangle.client.types.Community",
        &[
            ("id", 1),
            ("owner", 2),
            ("name", 3),
            ("permissions", 5),
            ("username", 7),
        ],
    );
}

#[test]
fn fixed64_ids_and_the_registration_invite_type() {
    use prost_types::field_descriptor_proto::Type;
    let s = set();
    for (msg, field) in [
        ("tangle.client.types.User", "id"),
        ("tangle.client.auth.Authorization", "session_id"),
        ("tangle.client.types.Community", "permissions"),
    ] {
        let f = message(&s, msg)
            .field
            .into_iter()
            .find(|f| f.name() == field)
            .unwrap();
        assert_eq!(f.r#type(), Type::Fixed64, "{msg}.{field}");
    }
    // `owner` is whether the caller owns it, a bool in the real Osmium protos.
    for (msg, number) in [
        ("tangle.client.types.Group", 3),
        ("tangle.client.types.Community", 2),
    ] {
        let f = message(&s, msg)
            .field
            .into_iter()
            .find(|f| f.name() == "owner")
            .unwrap();
        assert_eq!(
            (f.number(), f.r#type()),
            (number, Type::Bool),
            "{msg}.owner"
        );
    }
    let invite_type = s
        .file
        .iter()
        .filter(|f| f.package() == "tangle.client.auth")
        .flat_map(|f| f.enum_type.iter())
        .find(|e| e.name() == "InviteType")
        .unwrap();
    let numbers: Vec<(&str, i32)> = invite_type
        .value
        .iter()
        .map(|v| (v.name(), v.number()))
        .collect();
    assert_eq!(
        numbers,
        [
            ("UNKNOWN", 0),
            ("COMMUNITY", 1),
            ("GROUP", 2),
            ("USER", 3),
            ("REGISTRATION", 4)
        ]
    );
}
