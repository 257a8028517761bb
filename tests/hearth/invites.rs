//! Issue: invites (tangle.client.auth) over real gRPC: user, group and community invites,
//! every refusal (used up, expired, revoked, unknown), registration invites in `invite` mode
//! (tangle and accounts.v1 SignUp), the operator's CLI, and one winner among 50 callers.
use hearth::clock::Clock;

use futures_util::future::join_all;
use hearth::domain::invites::NewInvite;
use hearth::domain::model::InviteTarget;
use hearth::pb::accounts::v1 as accounts;
use hearth::pb::tangle::client::auth::{self as tangle, invite_preview::TargetInfo, InviteType};
use tonic::Code;

use crate::support::*;

fn invite(kind: InviteType, target_id: u64, max_uses: Option<u32>) -> tangle::CreateInvite {
    tangle::CreateInvite {
        target_type: kind as i32,
        target_id,
        expires_at: None,
        max_uses,
    }
}

async fn create(
    n: &TestNode,
    token: &str,
    req: tangle::CreateInvite,
) -> Result<String, tonic::Status> {
    Ok(n.tangle()
        .create_invite(authed(req, token))
        .await?
        .into_inner()
        .code)
}

async fn use_code(n: &TestNode, token: &str, code: &str) -> Result<(), tonic::Status> {
    n.tangle()
        .use_invite(authed(tangle::UseInvite { code: code.into() }, token))
        .await
        .map(|_| ())
}

async fn lookup(n: &TestNode, code: &str) -> Result<tangle::InvitePreview, tonic::Status> {
    Ok(n.tangle()
        .lookup_invite(tangle::LookupInvite { code: code.into() })
        .await?
        .into_inner())
}

fn sign_up_with(email: &str, code: Option<&str>) -> tangle::SignUp {
    tangle::SignUp {
        email: Some(email.into()),
        password: Some(PASSWORD.into()),
        name: "Invited".into(),
        invite_code: code.map(str::to_owned),
    }
}

#[tokio::test]
async fn a_user_invite_befriends_once_and_every_refusal_says_why() {
    let n = TestNode::start().await;
    let (alice, _, alice_id) = n.sign_up("alice@example.org").await;
    let (bob, _, bob_id) = n.sign_up("bob@example.org").await;
    let (carol, _, _) = n.sign_up("carol@example.org").await;

    let code = create(&n, &alice, invite(InviteType::User, 0, Some(1)))
        .await
        .unwrap();
    assert!(
        code.len() >= 16 && code.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{code}"
    );
    let preview = lookup(&n, &code).await.unwrap();
    assert_eq!(preview.creator_id, alice_id);
    assert_eq!(preview.target_id, alice_id);
    assert_eq!(preview.target_type, InviteType::User as i32);
    assert_eq!(preview.creator.unwrap().name, "Test");
    assert!(matches!(preview.target_info, Some(TargetInfo::User(u)) if u.id == alice_id));
    let expires = preview.expires_at.unwrap();
    let now_s = n.clock.now_ms() / 1000;
    assert!(
        (7 * 86_400 - 5..=7 * 86_400).contains(&(expires - now_s)),
        "7 days by default"
    );

    assert_refused(
        use_code(&n, &alice, &code).await,
        Code::InvalidArgument,
        "FIELD_INVALID",
        "your own invite",
    );
    use_code(&n, &bob, &code).await.unwrap();
    let friends = n
        .domain()
        .store()
        .read(move |tx| tx.are_friends(bob_id, alice_id))
        .await
        .unwrap();
    assert!(friends, "using a USER invite makes the two friends");
    assert_refused(
        use_code(&n, &carol, &code).await,
        Code::FailedPrecondition,
        "INVITE_USED_UP",
        "used up",
    );
    assert_refused(
        lookup(&n, &code).await,
        Code::FailedPrecondition,
        "INVITE_USED_UP",
        "used up",
    );

    // Unknown and malformed codes.
    assert_refused(
        lookup(&n, "AAAAAAAAAAAAAAAA").await,
        Code::NotFound,
        "INVITE_UNKNOWN",
        "no invite",
    );
    assert_refused(
        lookup(&n, "not a code!").await,
        Code::InvalidArgument,
        "FIELD_INVALID",
        "code",
    );

    // Revoked: by the hint ListInvites shows.
    let second = create(&n, &alice, invite(InviteType::User, 0, None))
        .await
        .unwrap();
    let listed = n
        .tangle()
        .list_invites(authed(tangle::ListInvites {}, &alice))
        .await
        .unwrap()
        .into_inner()
        .invites;
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed[0].code,
        format!("{}…", &second[..4]),
        "a hint, never the code"
    );
    n.tangle()
        .revoke_invite(authed(
            tangle::RevokeInvite {
                code: listed[0].code.clone(),
            },
            &alice,
        ))
        .await
        .unwrap();
    assert_refused(
        use_code(&n, &carol, &second).await,
        Code::FailedPrecondition,
        "INVITE_REVOKED",
        "revoked",
    );
    let r = n
        .tangle()
        .revoke_invite(authed(tangle::RevokeInvite { code: code.clone() }, &bob))
        .await;
    assert_refused(r, Code::NotFound, "INVITE_UNKNOWN", "none of your invites");

    // Expired: the clock moves past the week.
    let third = create(&n, &alice, invite(InviteType::User, 0, None))
        .await
        .unwrap();
    n.clock.advance_ms(7 * 24 * 3600 * 1000 + 1);
    assert_refused(
        use_code(&n, &carol, &third).await,
        Code::FailedPrecondition,
        "INVITE_EXPIRED",
        "expired",
    );

    // Bad requests.
    let r = create(&n, &alice, invite(InviteType::Unknown, 0, None)).await;
    assert_refused(r, Code::InvalidArgument, "FIELD_INVALID", "target_type");
    let r = create(&n, &alice, invite(InviteType::User, 0, Some(0))).await;
    assert_refused(r, Code::InvalidArgument, "FIELD_INVALID", "max_uses");
    let r = create(&n, &alice, invite(InviteType::User, bob_id, None)).await;
    assert_refused(
        r,
        Code::PermissionDenied,
        "INVITE_NOT_ALLOWED",
        "befriends its creator",
    );
    let mut past = invite(InviteType::User, 0, None);
    past.expires_at = Some(n.clock.now_ms() / 1000 - 10);
    assert_refused(
        create(&n, &alice, past).await,
        Code::InvalidArgument,
        "FIELD_INVALID",
        "future",
    );
}

#[tokio::test]
async fn group_and_community_invites_need_the_owner_and_make_members() {
    let n = TestNode::start().await;
    let (owner, _, owner_id) = n.sign_up("owner@example.org").await;
    let (guest, _, guest_id) = n.sign_up("guest@example.org").await;
    let group = n
        .domain()
        .invites
        .create_place(InviteTarget::Group, "Book club", owner_id)
        .await
        .unwrap();
    let community = n
        .domain()
        .invites
        .create_place(InviteTarget::Community, "Gardeners", owner_id)
        .await
        .unwrap();

    let r = create(&n, &guest, invite(InviteType::Group, group, None)).await;
    assert_refused(r, Code::PermissionDenied, "INVITE_NOT_ALLOWED", "owner");
    let r = create(&n, &owner, invite(InviteType::Group, 12345, None)).await;
    assert_refused(r, Code::NotFound, "NOT_FOUND", "no group");

    let code = create(&n, &owner, invite(InviteType::Group, group, Some(5)))
        .await
        .unwrap();
    let preview = lookup(&n, &code).await.unwrap();
    match preview.target_info {
        Some(TargetInfo::Chat(g)) => {
            assert_eq!(
                (g.id, g.name.as_str(), g.owner),
                (group, "Book club", false)
            );
            assert_eq!(g.participant_ids, vec![owner_id]);
        }
        other => panic!("expected a group, got {other:?}"),
    }
    // `owner` says whether the caller owns it (a bool, as in the real Osmium types).
    let mine = n
        .tangle()
        .lookup_invite(authed(tangle::LookupInvite { code: code.clone() }, &owner))
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(mine.target_info, Some(TargetInfo::Chat(g)) if g.owner));
    use_code(&n, &guest, &code).await.unwrap();
    let member = n
        .domain()
        .store()
        .read(move |tx| tx.is_member(InviteTarget::Group, group, guest_id))
        .await
        .unwrap();
    assert!(member);
    // Already a member: refused, and no use is spent.
    assert_refused(
        use_code(&n, &guest, &code).await,
        Code::AlreadyExists,
        "ALREADY_MEMBER",
        "already a member",
    );
    let listed = n
        .tangle()
        .list_invites(authed(tangle::ListInvites {}, &owner))
        .await
        .unwrap()
        .into_inner()
        .invites;
    assert_eq!(listed.len(), 1);

    let code = create(&n, &owner, invite(InviteType::Community, community, None))
        .await
        .unwrap();
    let preview = lookup(&n, &code).await.unwrap();
    assert!(matches!(preview.target_info, Some(TargetInfo::Community(c)) if c.name == "Gardeners"));
    use_code(&n, &guest, &code).await.unwrap();

    // A registration invite is not used with UseInvite.
    let (reg, _) = n
        .domain()
        .invites
        .create(None, registration(&n, 1))
        .await
        .unwrap();
    assert_refused(
        use_code(&n, &guest, &reg).await,
        Code::FailedPrecondition,
        "INVITE_WRONG_KIND",
        "SignUp",
    );
}

fn registration(n: &TestNode, uses: u32) -> NewInvite {
    NewInvite {
        target: InviteTarget::Registration,
        target_id: 0,
        expires_at: Some(n.clock.now_ms() + 3_600_000),
        max_uses: Some(uses),
    }
}

#[tokio::test]
async fn invite_mode_signs_up_only_with_a_registration_invite() {
    let n =
        TestNode::start_with(|c| c.accounts.registration = hearth::config::Registration::Invite)
            .await;
    let r = n
        .tangle()
        .sign_up(sign_up_with("nocode@example.org", None))
        .await;
    assert_refused(
        r,
        Code::FailedPrecondition,
        "INVITE_REQUIRED",
        "invite code",
    );
    let r = n
        .tangle()
        .sign_up(sign_up_with("bad@example.org", Some("AAAAAAAAAAAAAAAA")))
        .await;
    assert_refused(r, Code::NotFound, "INVITE_UNKNOWN", "no invite");

    let (code, _) = n
        .domain()
        .invites
        .create(None, registration(&n, 2))
        .await
        .unwrap();
    let preview = lookup(&n, &code).await.unwrap();
    assert_eq!(preview.target_type, InviteType::Registration as i32);
    assert!(preview.creator.is_none() && preview.creator_id == 0);
    let first = n
        .tangle()
        .sign_up(sign_up_with("first@example.org", Some(&code)))
        .await
        .unwrap()
        .into_inner();
    n.public()
        .sign_up(accounts::SignUpRequest {
            email: "second@example.org".into(),
            password: PASSWORD.into(),
            invite_code: code.clone(),
        })
        .await
        .unwrap();
    let r = n
        .tangle()
        .sign_up(sign_up_with("third@example.org", Some(&code)))
        .await;
    assert_refused(r, Code::FailedPrecondition, "INVITE_USED_UP", "used up");
    assert!(
        n.domain().operator.user("third@example.org").await.is_err(),
        "nothing half-written"
    );

    // Users create registration invites only when the node allows it; other kinds do not
    // register anyone.
    let r = create(&n, &first.token, invite(InviteType::Registration, 0, None)).await;
    assert_refused(r, Code::PermissionDenied, "INVITE_NOT_ALLOWED", "operator");
    let user_code = create(&n, &first.token, invite(InviteType::User, 0, None))
        .await
        .unwrap();
    let r = n
        .tangle()
        .sign_up(sign_up_with("fourth@example.org", Some(&user_code)))
        .await;
    assert_refused(
        r,
        Code::InvalidArgument,
        "INVITE_WRONG_KIND",
        "not a registration invite",
    );

    let n = n.restart_with(|c| c.accounts.users_can_invite = true).await;
    let token = n.sign_in("first@example.org", PASSWORD).await.unwrap();
    let code = create(&n, &token, invite(InviteType::Registration, 0, None))
        .await
        .unwrap();
    n.tangle()
        .sign_up(sign_up_with("fifth@example.org", Some(&code)))
        .await
        .unwrap();
    let r = n
        .tangle()
        .sign_up(sign_up_with("sixth@example.org", Some(&code)))
        .await;
    assert_refused(r, Code::FailedPrecondition, "INVITE_USED_UP", "used up");
}

#[tokio::test]
async fn fifty_parallel_uses_of_a_one_use_invite_succeed_once() {
    let n = TestNode::start().await;
    let (alice, _, _) = n.sign_up("popular@example.org").await;
    let mut users = Vec::new();
    for i in 0..50 {
        users.push(n.sign_up(&format!("fan{i}@example.org")).await.0);
    }
    let code = create(&n, &alice, invite(InviteType::User, 0, Some(1)))
        .await
        .unwrap();
    let results = join_all(users.iter().map(|t| use_code(&n, t, &code))).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    for r in results.into_iter().filter_map(Result::err) {
        assert_eq!(reason(&r), "INVITE_USED_UP", "{r:?}");
    }
}

#[tokio::test]
async fn fifty_parallel_sign_ups_with_a_one_use_registration_invite_make_one_account() {
    let n =
        TestNode::start_with(|c| c.accounts.registration = hearth::config::Registration::Invite)
            .await;
    let (code, _) = n
        .domain()
        .invites
        .create(None, registration(&n, 1))
        .await
        .unwrap();
    let tries = (0..50).map(|i| {
        let (mut client, code) = (n.tangle(), code.clone());
        async move {
            client
                .sign_up(sign_up_with(&format!("rush{i}@example.org"), Some(&code)))
                .await
        }
    });
    let results = join_all(tries).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert_eq!(
        n.domain().accounts.list().await.unwrap().len(),
        1,
        "one account, nothing half-written"
    );
}

#[tokio::test]
async fn operators_create_registration_invites_groups_and_communities_from_the_cli() {
    let n =
        TestNode::start_with(|c| c.accounts.registration = hearth::config::Registration::Invite)
            .await;
    let code = hearth(
        &n,
        &[
            "invite",
            "create",
            "--registration",
            "--uses",
            "2",
            "--expires",
            "7d",
        ],
    );
    let a = n
        .tangle()
        .sign_up(sign_up_with("cli1@example.org", Some(&code)))
        .await
        .unwrap();
    let listed = hearth(&n, &["invite", "list"]);
    assert!(
        listed.contains(&format!("{}…", &code[..4])) && listed.contains("used 1/2"),
        "{listed}"
    );

    let group: u64 = hearth(
        &n,
        &[
            "group",
            "create",
            "Operators",
            "--owner",
            "cli1@example.org",
        ],
    )
    .parse()
    .unwrap();
    let community: u64 = hearth(
        &n,
        &["community", "create", "Town", "--owner", "cli1@example.org"],
    )
    .parse()
    .unwrap();
    let token = a.into_inner().token;
    create(&n, &token, invite(InviteType::Group, group, None))
        .await
        .unwrap();
    create(&n, &token, invite(InviteType::Community, community, None))
        .await
        .unwrap();

    hearth(&n, &["invite", "revoke", &code]);
    let r = n
        .tangle()
        .sign_up(sign_up_with("cli2@example.org", Some(&code)))
        .await;
    assert_refused(r, Code::FailedPrecondition, "INVITE_REVOKED", "revoked");
}

fn hearth(n: &TestNode, args: &[&str]) -> String {
    ok(n.cli(args)).trim().to_owned()
}
