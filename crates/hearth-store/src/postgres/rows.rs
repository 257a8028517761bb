//! Rows to domain model types, and the column lists they are read with.
use postgres::Row;

use crate::domain::model::{
    AccessToken, CodeRecord, DeviceFacts, Invite, InviteTarget, Mail, Peer, SecondFactor, Session,
    SessionCredential, User,
};
use crate::domain::scopes::ScopeSet;

pub const USER: &str = "id, email, name, password_hash, email_verified, home_server, \
                        remote_user_id, created_at, disabled";
pub const SESSION: &str = "id, user_id, token_hash, client_id, device_type, device_version, \
                           app_name, app_version, created_at, last_active, expires_at, scopes, \
                           access_token_id, amr";
/// What the credential check reads of a session ([`session_credential`]).
pub const SESSION_CREDENTIAL: &str = "id, user_id, last_active, expires_at, scopes";
pub const TOKEN: &str = "id, uuid, user_id, name, token_hash, scopes, created_at, expires_at, \
                         last_used_at, last_used_ip";
pub const INVITE: &str = "id, code_hash, hint, creator_id, target, target_id, max_uses, uses, \
                          expires_at, revoked_at, created_at";
pub const PEER: &str = "server_id, pinned_key, previous_key, previous_retired_at, url, linked, \
                        state, last_error, link_expires_at, updated_at";
pub const MAIL: &str = "id, recipient, subject, body, created_at, attempts, sent_at, last_error";

fn u(v: i64) -> u64 {
    v as u64
}

fn hash(v: Vec<u8>) -> [u8; 32] {
    v.try_into().unwrap_or([0; 32])
}

/// The columns of [`USER`] of the table named `alias` in a query, each after a comma: what
/// a query appends to its own columns to read a user with [`user_at`].
pub fn user_columns_of(alias: &str) -> String {
    USER.split(", ").map(|c| format!(", {alias}.{c}")).collect()
}

pub fn user(r: &Row) -> User {
    user_at(r, 0)
}

/// A user from the columns of [`USER`] starting at column `at`.
pub fn user_at(r: &Row, at: usize) -> User {
    let home: Option<String> = r.get(at + 5);
    let remote: Option<i64> = r.get(at + 6);
    User {
        id: u(r.get(at)),
        email: r.get(at + 1),
        name: r.get(at + 2),
        password_hash: r.get(at + 3),
        email_verified: r.get(at + 4),
        home: home.zip(remote.map(u)),
        created_at: u(r.get(at + 7)),
        disabled: r.get(at + 8),
    }
}

pub fn session(r: &Row) -> Session {
    Session {
        id: u(r.get(0)),
        user_id: u(r.get(1)),
        token_hash: hash(r.get(2)),
        device: DeviceFacts {
            client_id: r.get::<_, i64>(3) as u32,
            device_type: r.get(4),
            device_version: r.get(5),
            app_name: r.get(6),
            app_version: r.get(7),
        },
        created_at: u(r.get(8)),
        last_active: u(r.get(9)),
        expires_at: u(r.get(10)),
        scopes: ScopeSet::from_stored(r.get(11)),
        access_token_id: r.get::<_, Option<i64>>(12).map(u),
        amr: r.get(13),
    }
}

/// A row of [`SESSION_CREDENTIAL`].
pub fn session_credential(r: &Row) -> SessionCredential {
    SessionCredential {
        id: u(r.get(0)),
        user_id: u(r.get(1)),
        last_active: u(r.get(2)),
        expires_at: u(r.get(3)),
        scopes: ScopeSet::from_stored(r.get(4)),
    }
}

/// A full session's scopes are stored as NULL (every scope, now and later).
pub fn scopes_text(s: &Session) -> Option<String> {
    (s.scopes != ScopeSet::ALL).then(|| s.scopes.to_text())
}

pub fn token(r: &Row) -> AccessToken {
    AccessToken {
        id: u(r.get(0)),
        uuid: r.get(1),
        user_id: u(r.get(2)),
        name: r.get(3),
        token_hash: hash(r.get(4)),
        scopes: ScopeSet::from_text(&r.get::<_, String>(5)),
        created_at: u(r.get(6)),
        expires_at: u(r.get(7)),
        last_used_at: r.get::<_, Option<i64>>(8).map(u),
        last_used_ip: r.get(9),
    }
}

pub fn invite(r: &Row) -> Invite {
    Invite {
        id: u(r.get(0)),
        code_hash: hash(r.get(1)),
        hint: r.get(2),
        creator_id: u(r.get(3)),
        target: InviteTarget::parse(&r.get::<_, String>(4)).unwrap_or(InviteTarget::User),
        target_id: u(r.get(5)),
        max_uses: r.get::<_, Option<i64>>(6).map(|v| v as u32),
        uses: r.get::<_, i64>(7) as u32,
        expires_at: u(r.get(8)),
        revoked_at: r.get::<_, Option<i64>>(9).map(u),
        created_at: u(r.get(10)),
    }
}

pub fn peer(r: &Row) -> Peer {
    let key = |v: Option<Vec<u8>>| v.and_then(|k| k.try_into().ok());
    let previous: Option<[u8; 32]> = key(r.get(2));
    Peer {
        server_id: r.get(0),
        pinned_key: key(r.get(1)),
        previous_key: previous.zip(r.get::<_, Option<i64>>(3).map(u)),
        url: r.get(4),
        linked: r.get(5),
        state: r.get(6),
        last_error: r.get(7),
        link_expires_at: r.get::<_, Option<i64>>(8).map(u),
        updated_at: u(r.get(9)),
    }
}

pub fn mail(r: &Row) -> Mail {
    Mail {
        id: u(r.get(0)),
        recipient: r.get(1),
        subject: r.get(2),
        body: r.get(3),
        created_at: u(r.get(4)),
        attempts: r.get::<_, i64>(5) as u32,
        sent_at: r.get::<_, Option<i64>>(6).map(u),
        last_error: r.get(7),
    }
}

pub fn code(r: &Row) -> CodeRecord {
    CodeRecord {
        mac: hash(r.get(0)),
        expires_at: u(r.get(1)),
        tries_left: r.get::<_, i64>(2) as u32,
    }
}

pub(super) fn second_factor(r: &Row) -> SecondFactor {
    SecondFactor {
        sealed_secret: r.get(0),
        enabled: r.get(1),
        last_step: r.get::<_, i64>(2) as u64,
        recovery: r.get(3),
    }
}
