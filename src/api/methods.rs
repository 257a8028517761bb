//! The one method table (DESIGN.md §2): every served method and HTTP route has one row with
//! its auth requirement, its rate-limit cost class, its metrics label (the path), whether it
//! streams, and where the Osmium socket carries it. Every transport (gRPC, gRPC-Web, hRPC,
//! the Osmium socket) is an adapter that turns its request into a path of this table and
//! runs the same pipeline, so a method is authorised, limited, counted and logged the same
//! way whichever transport carried it. A test checks the table against the served
//! descriptor set.
use std::collections::HashMap;
use std::sync::OnceLock;

use crate::domain::Requirement;

use Requirement::{AnyCredential, Public, Scope, SessionOnly, TokenOnly};

/// What a method costs, for the per-client budgets of `rate_limits.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cost {
    /// A password hash.
    Hashing,
    Mail,
    /// Logins of other nodes' users (a key fetch, a signature check, a write), tokens for
    /// other nodes (Federate: a signature and a write), and calls to identity providers
    /// (GetJWT).
    Peer,
    /// Calls between nodes (a signature each); the domain also charges the authenticated
    /// peer, so many nodes behind one address do not share one budget.
    Node,
    /// Flow state and invite look-ups.
    Flow,
    /// A new session from a credential (TokenAuthorization, RefreshSession): a write each.
    Session,
}

impl Cost {
    /// The class's name in refusals and budget keys.
    pub fn name(self) -> &'static str {
        match self {
            Cost::Hashing => crate::domain::rate_limit::HASHING,
            Cost::Mail => crate::domain::rate_limit::MAIL,
            Cost::Peer => "federation",
            Cost::Node => "node",
            Cost::Flow => "flow",
            Cost::Session => "session",
        }
    }
}

/// How the Osmium socket carries a method: the `ClientMessage` member that asks for it and
/// the `RPCResult` member that answers it (0: the answer is `()`, no member).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Osmium {
    /// `ClientMessage.message` member number.
    pub member: u32,
    /// `RPCResult.result` member number, 0 for `()`.
    pub result: u32,
}

/// What a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A unary protobuf method (gRPC, gRPC-Web, hRPC POST).
    Unary,
    /// A server-streaming method (gRPC, gRPC-Web, hRPC over a WebSocket).
    ServerStream,
    /// A plain HTTP route (always public).
    Http,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Method {
    /// `/<package>.<Service>/<Method>`, or an HTTP route; also the metrics label.
    pub path: &'static str,
    /// Who may call it.
    pub need: Requirement,
    /// The budget it is charged to, per client address; `None`: free.
    pub cost: Option<Cost>,
    /// Unary, stream or HTTP route.
    pub kind: Kind,
    /// Where the Osmium socket carries it.
    pub osmium: Option<Osmium>,
    /// Counted in `hearth_sign_ins` by outcome.
    pub sign_in: bool,
}

impl Method {
    const fn new(path: &'static str, need: Requirement) -> Self {
        Method {
            path,
            need,
            cost: None,
            kind: Kind::Unary,
            osmium: None,
            sign_in: false,
        }
    }
    const fn http(path: &'static str) -> Self {
        Method {
            kind: Kind::Http,
            ..Method::new(path, Public)
        }
    }
    const fn cost(self, cost: Cost) -> Self {
        Method {
            cost: Some(cost),
            ..self
        }
    }
    const fn stream(self) -> Self {
        Method {
            kind: Kind::ServerStream,
            ..self
        }
    }
    const fn osmium(self, member: u32, result: u32) -> Self {
        Method {
            osmium: Some(Osmium { member, result }),
            ..self
        }
    }
    const fn sign_in(self) -> Self {
        Method {
            sign_in: true,
            ..self
        }
    }

    /// The label of its metrics series.
    pub fn label(&self) -> &'static str {
        self.path
    }

    /// Whether hRPC serves it (every protobuf method but reflection, a gRPC-only protocol).
    pub fn hrpc(&self) -> bool {
        self.kind != Kind::Http && !self.path.starts_with("/grpc.reflection.")
    }
}

const fn m(path: &'static str, need: Requirement) -> Method {
    Method::new(path, need)
}

/// Every served method and route.
pub const METHODS: &[Method] = &[
    m("/auth.Auth/GetChallenge", Public).cost(Cost::Node),
    m("/auth.Auth/Authenticate", Public).cost(Cost::Node),
    m("/auth.Auth/TokenRefresh", Public).cost(Cost::Node),
    m("/auth.Auth/Signout", Public),
    m("/auth.v1alpha1.AuthAPI/GetJWT", Public).cost(Cost::Peer),
    // A signature and a write (the grant that revocation notices follow) each.
    m(
        "/protocol.auth.v1.AuthService/Federate",
        Scope("federation"),
    )
    .cost(Cost::Peer),
    m("/protocol.auth.v1.AuthService/LoginFederated", Public).cost(Cost::Peer),
    m("/protocol.auth.v1.AuthService/Key", Public),
    m("/protocol.auth.v1.AuthService/RevokeFederated", Public).cost(Cost::Node),
    m("/protocol.auth.v1.AuthService/BeginAuth", Public).cost(Cost::Flow),
    m("/protocol.auth.v1.AuthService/NextStep", Public).cost(Cost::Flow),
    m("/protocol.auth.v1.AuthService/StepBack", Public).cost(Cost::Flow),
    m("/protocol.auth.v1.AuthService/StreamSteps", Public)
        .cost(Cost::Flow)
        .stream(),
    m("/protocol.auth.v1.AuthService/CheckLoggedIn", AnyCredential),
    m("/test.v1.TestAuthService/Pong", AnyCredential),
    m("/test.v1.TestNoAuthService/Ping", Public),
    m("/tangle.client.auth.Auth/SignIn", Public)
        .cost(Cost::Hashing)
        .osmium(2, 4)
        .sign_in(),
    m("/tangle.client.auth.Auth/SignUp", Public)
        .cost(Cost::Hashing)
        .osmium(3, 4),
    m("/tangle.client.auth.Auth/Authorize", Public).osmium(20, 4),
    m(
        "/tangle.client.auth.Auth/GetSessions",
        Scope("sessions:read"),
    )
    .osmium(41, 19),
    m(
        "/tangle.client.auth.Auth/RevokeSessions",
        Scope("sessions:write"),
    )
    .osmium(42, 0),
    m("/tangle.client.auth.Auth/ResetPassword", Public)
        .cost(Cost::Mail)
        .osmium(45, 0),
    m("/tangle.client.auth.Auth/VerifyEmail", Public).osmium(46, 0),
    m("/tangle.client.auth.Auth/ResendEmailVerification", Public)
        .cost(Cost::Mail)
        .osmium(47, 0),
    m("/tangle.client.auth.Auth/LookupInvite", Public)
        .cost(Cost::Flow)
        .osmium(15, 23),
    m("/tangle.client.auth.Auth/UseInvite", Scope("account:write"))
        .cost(Cost::Flow)
        .osmium(16, 0),
    m(
        "/tangle.client.auth.Auth/CreateInvite",
        Scope("account:write"),
    ),
    m(
        "/tangle.client.auth.Auth/ListInvites",
        Scope("account:read"),
    ),
    m(
        "/tangle.client.auth.Auth/RevokeInvite",
        Scope("account:write"),
    ),
    m("/tangle.client.auth.Auth/GetAccount", Scope("account:read")).osmium(75, 32),
    m("/tangle.client.auth.Auth/ChangePassword", SessionOnly)
        .cost(Cost::Hashing)
        .osmium(76, 0),
    m("/tangle.client.auth.Auth/ChangeEmail", SessionOnly)
        .cost(Cost::Mail)
        .osmium(77, 0),
    m("/tangle.client.auth.Auth/DeleteAccount", SessionOnly).osmium(85, 0),
    // Each call may check a code: budgeted like a password check.
    m("/tangle.client.auth.Auth/SetupTotp", SessionOnly)
        .cost(Cost::Hashing)
        .osmium(83, 36),
    m(
        "/tangle.client.auth.Auth/ListPasskeys",
        Scope("account:read"),
    ),
    // A begun ceremony is held state; a finished one verifies a signature and writes.
    m(
        "/tangle.client.auth.Auth/BeginPasskeyRegistration",
        SessionOnly,
    )
    .cost(Cost::Flow),
    m(
        "/tangle.client.auth.Auth/FinishPasskeyRegistration",
        SessionOnly,
    )
    .cost(Cost::Hashing),
    m("/tangle.client.auth.Auth/RemovePasskey", SessionOnly),
    m("/tangle.client.auth.Auth/BeginPasskeySignIn", Public).cost(Cost::Flow),
    m("/tangle.client.auth.Auth/FinishPasskeySignIn", Public)
        .cost(Cost::Hashing)
        .sign_in(),
    m("/tangle.client.auth.Auth/FinishPasskeyStep", Public)
        .cost(Cost::Hashing)
        .sign_in(),
    m(
        "/tokens.v1.TokensService/CreateToken",
        Scope("tokens:write"),
    ),
    m(
        "/tokens.v1.TokensService/UpdateToken",
        Scope("tokens:write"),
    ),
    m(
        "/tokens.v1.TokensService/ForceTokenExpiration",
        Scope("tokens:write"),
    ),
    m(
        "/tokens.v1.TokensService/RegenerateToken",
        Scope("tokens:write"),
    ),
    m("/tokens.v1.TokensService/GetToken", Scope("tokens:read")),
    m("/tokens.v1.TokensService/ListTokens", Scope("tokens:read")).stream(),
    m(
        "/accounts.v1.AccountsService/IsEmailVerified",
        Scope("account:read"),
    ),
    m("/accounts.v1.AccountsService/RefreshSession", SessionOnly).cost(Cost::Session),
    m("/accounts.v1.AccountsService/TokenAuthorization", TokenOnly).cost(Cost::Session),
    m("/accounts.v1.PublicAccountsService/SignIn", Public)
        .cost(Cost::Hashing)
        .sign_in(),
    m("/accounts.v1.PublicAccountsService/SignUp", Public).cost(Cost::Hashing),
    m("/accounts.v1.PublicAccountsService/ResetPassword", Public).cost(Cost::Mail),
    m("/accounts.v1.PublicAccountsService/NewPassword", Public).cost(Cost::Hashing),
    m("/grpc.health.v1.Health/Check", Public),
    m("/grpc.health.v1.Health/Watch", Public).stream(),
    m(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        Public,
    ),
    m(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        Public,
    ),
    Method::http("/healthz"),
    Method::http("/readyz"),
    Method::http("/metrics"),
    Method::http("/"),
    Method::http("/pages.css"),
    Method::http("/sign-in"),
    Method::http("/sign-in/code"),
    Method::http("/passkeys.js"),
    Method::http("/sign-in/passkey"),
    Method::http("/sign-in/passkey/finish"),
    Method::http("/account/passkeys"),
    Method::http("/account/passkeys/add"),
    Method::http("/account/passkeys/finish"),
    Method::http("/account/passkeys/remove"),
    Method::http("/sign-out"),
    Method::http("/register"),
    Method::http("/email/verify"),
    Method::http("/email/resend"),
    Method::http("/reset"),
    Method::http("/reset/confirm"),
    Method::http("/account"),
    Method::http("/account/sessions/end"),
    Method::http("/account/sessions/end-others"),
    Method::http("/account/password"),
    Method::http("/account/email"),
    Method::http("/account/delete"),
    Method::http("/account/second-factor"),
    Method::http("/account/tokens"),
    Method::http("/account/tokens/create"),
    Method::http("/account/tokens/expire"),
    Method::http("/.well-known/hearth/server"),
    Method::http("/.well-known/jwks.json"),
    Method::http("/_harmony/server"),
];

/// The Osmium `Initialize` member: answered by the socket itself (it names the socket's
/// device and asks for entry points; no service runs), so it has no row.
pub const OSMIUM_INITIALIZE: u32 = 19;
/// `RPCResult.initialized`.
pub const OSMIUM_INITIALIZED: u32 = 14;

fn by_path() -> &'static HashMap<&'static str, &'static Method> {
    static TABLE: OnceLock<HashMap<&'static str, &'static Method>> = OnceLock::new();
    TABLE.get_or_init(|| METHODS.iter().map(|m| (m.path, m)).collect())
}

/// The row of `path`; `None` for a path the node does not serve (it never reaches a
/// handler).
pub fn find(path: &str) -> Option<&'static Method> {
    by_path().get(path).copied()
}

/// The row the Osmium socket's `ClientMessage` member `member` asks for.
pub fn osmium(member: u32) -> Option<&'static Method> {
    static TABLE: OnceLock<HashMap<u32, &'static Method>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            METHODS
                .iter()
                .filter_map(|m| Some((m.osmium?.member, m)))
                .collect()
        })
        .get(&member)
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Every method of the descriptor set, with whether the server streams.
    fn served() -> Vec<(String, bool)> {
        let set = prost_types::FileDescriptorSet::decode(crate::pb::FILE_DESCRIPTOR_SET)
            .unwrap_or_default();
        let mut served = Vec::new();
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                    served.push((path, method.server_streaming()));
                }
            }
        }
        served
    }

    #[test]
    fn every_served_method_has_exactly_one_row_of_its_kind() {
        let served = served();
        assert!(served.len() > 30, "the descriptor set lists our services");
        for (path, streams) in &served {
            let rows: Vec<_> = METHODS.iter().filter(|m| m.path == path).collect();
            assert_eq!(rows.len(), 1, "{path} has {} rows, not one", rows.len());
            let kind = if *streams {
                Kind::ServerStream
            } else {
                Kind::Unary
            };
            assert_eq!(
                rows[0].kind, kind,
                "{path}: the table says {:?}",
                rows[0].kind
            );
        }
        for m in METHODS {
            assert!(
                m.kind == Kind::Http
                    || m.path.starts_with("/grpc.")
                    || served.iter().any(|(p, _)| p == m.path),
                "{} is in the table but not served",
                m.path
            );
        }
    }

    #[test]
    fn every_scope_in_the_table_is_a_scope_tokens_can_hold() {
        use crate::domain::scopes::ScopeSet;
        for m in METHODS {
            if let Scope(s) = m.need {
                assert!(
                    ScopeSet::ALL.has(s),
                    "{} needs `{s}`, which is no scope",
                    m.path
                );
            }
        }
    }

    #[test]
    fn costly_methods_are_public_or_need_a_credential_and_http_routes_are_free() {
        for m in METHODS {
            if m.kind == Kind::Http {
                assert_eq!(m.cost, None, "{}", m.path);
                assert_eq!(m.need, Public, "{}", m.path);
            }
        }
    }

    #[test]
    fn osmium_members_are_unique_and_unary() {
        let mut seen = std::collections::HashSet::new();
        for m in METHODS {
            if let Some(o) = m.osmium {
                assert!(seen.insert(o.member), "member {} twice", o.member);
                assert_eq!(m.kind, Kind::Unary, "{}", m.path);
                assert_ne!(o.member, OSMIUM_INITIALIZE);
            }
        }
        assert_eq!(
            osmium(2).map(|m| m.path),
            Some("/tangle.client.auth.Auth/SignIn")
        );
        assert_eq!(osmium(99), None);
        // Every auth and settings member DESIGN.md §1 lists has its row.
        for member in [2, 3, 15, 16, 20, 41, 42, 45, 46, 47, 75, 76, 77, 83, 85] {
            assert!(osmium(member).is_some(), "member {member} has no row");
        }
    }

    #[test]
    fn unknown_paths_are_not_served() {
        assert_eq!(
            find("/test.v1.TestNoAuthService/Ping").map(|m| m.need),
            Some(Public)
        );
        assert_eq!(find("/test.v1.TestNoAuthService/PingX"), None);
        assert_eq!(find("/nothing/here"), None);
        assert_eq!(find("/healthz").map(|m| m.kind), Some(Kind::Http));
    }
}
