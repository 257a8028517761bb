//! [`Tx`]: one PostgreSQL transaction seen through the store seam. This file has the read
//! operations (and the query helpers); `write.rs` the writes, `gates.rs` the larger atomic
//! ones.
use postgres::types::ToSql;
use std::cell::RefCell;
use std::collections::HashMap;

use postgres::{Client, Row, Statement};

use super::rows;
use crate::domain::model::{
    AccessToken, AccountChange, CodeRecord, Community, Group, Invite, InviteTarget, KeyRotation,
    Mail, Peer, SecondFactor, Session, SessionCredential, User,
};
use crate::domain::state::store::{Gauges, ReadTx, StoreError};

pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A connection seen through the seam: inside a transaction the pool opened for a write,
/// or on its own for a read.
pub(super) struct Tx<'a>(pub &'a mut Client);

/// A driver error as the seam's error; a unique violation names `what` was taken.
pub(super) fn fail(e: postgres::Error, what: &'static str) -> StoreError {
    match e.code() {
        Some(c) if *c == postgres::error::SqlState::UNIQUE_VIOLATION => StoreError::Conflict(what),
        _ => backend(e),
    }
}

pub(super) fn backend(e: postgres::Error) -> StoreError {
    use postgres::error::SqlState;
    // The driver's Display says only "db error"; the server's message says what failed.
    match e.as_db_error() {
        Some(db)
            if *db.code() == SqlState::T_R_SERIALIZATION_FAILURE
                || *db.code() == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            super::note_lost_race();
            StoreError::Backend(format!("{} ({})", db.message(), db.code().code()))
        }
        // Class 08 (connection exception) and 57P01-57P03 (the server shuts down or starts).
        Some(db)
            if db.code().code().starts_with("08")
                || matches!(db.code().code(), "57P01" | "57P02" | "57P03") =>
        {
            StoreError::Unreachable(db.message().to_owned())
        }
        Some(db) => StoreError::Backend(format!("{} ({})", db.message(), db.code().code())),
        // No answer from the server at all: the connection is gone.
        None => StoreError::Unreachable(e.to_string()),
    }
}

thread_local! {
    /// The statements prepared on this pool thread's connection, by their SQL: each is
    /// parsed and planned once per connection, and a query is one round trip, not two.
    /// Emptied whenever the thread's connection is made again ([`forget_prepared`]).
    static PREPARED: RefCell<HashMap<String, Statement>> = RefCell::new(HashMap::new());
}

/// Statements one connection keeps at most (every operation's SQL fits many times over).
const MAX_PREPARED: usize = 512;

/// Forgets this thread's prepared statements (its connection is gone).
pub(super) fn forget_prepared() {
    PREPARED.with(|p| p.borrow_mut().clear());
}

impl Tx<'_> {
    fn prepared(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(s) = PREPARED.with(|p| p.borrow().get(sql).cloned()) {
            return Ok(s);
        }
        let s = self.0.prepare(sql)?;
        PREPARED.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < MAX_PREPARED {
                p.insert(sql.to_owned(), s.clone());
            }
        });
        Ok(s)
    }

    pub(super) fn rows(&mut self, sql: &str, p: Params<'_>) -> Result<Vec<Row>, StoreError> {
        let rows = self
            .prepared(sql)
            .and_then(|s| self.0.query(&s, p))
            .map_err(backend);
        super::widen_race();
        rows
    }

    pub(super) fn row(&mut self, sql: &str, p: Params<'_>) -> Result<Option<Row>, StoreError> {
        let row = self
            .prepared(sql)
            .and_then(|s| self.0.query_opt(&s, p))
            .map_err(backend);
        super::widen_race();
        row
    }

    pub(super) fn exec(&mut self, sql: &str, p: Params<'_>) -> Result<u64, StoreError> {
        self.prepared(sql)
            .and_then(|s| self.0.execute(&s, p))
            .map_err(backend)
    }

    pub(super) fn exec_unique(
        &mut self,
        sql: &str,
        p: Params<'_>,
        what: &'static str,
    ) -> Result<u64, StoreError> {
        self.prepared(sql)
            .and_then(|s| self.0.execute(&s, p))
            .map_err(|e| fail(e, what))
    }

    fn ids(&mut self, sql: &str, p: Params<'_>) -> Result<Vec<u64>, StoreError> {
        Ok(self
            .rows(sql, p)?
            .iter()
            .map(|r| r.get::<_, i64>(0) as u64)
            .collect())
    }

    pub(super) fn returning_ids(
        &mut self,
        sql: &str,
        p: Params<'_>,
    ) -> Result<Vec<u64>, StoreError> {
        self.ids(sql, p)
    }
}

fn i(v: u64) -> i64 {
    v as i64
}

impl ReadTx for Tx<'_> {
    fn user(&mut self, id: u64) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {} FROM users WHERE id = $1", rows::USER);
        Ok(self.row(&sql, &[&i(id)])?.as_ref().map(rows::user))
    }
    fn user_by_email(&mut self, email: &str) -> Result<Option<User>, StoreError> {
        let sql = format!(
            "SELECT {} FROM users WHERE lower(email) = lower($1) AND home_server IS NULL",
            rows::USER
        );
        Ok(self.row(&sql, &[&email])?.as_ref().map(rows::user))
    }
    fn user_by_home(&mut self, server: &str, remote: u64) -> Result<Option<User>, StoreError> {
        let sql = format!(
            "SELECT {} FROM users WHERE home_server = $1 AND remote_user_id = $2",
            rows::USER
        );
        Ok(self
            .row(&sql, &[&server, &i(remote)])?
            .as_ref()
            .map(rows::user))
    }
    fn second_factor(&mut self, user_id: u64) -> Result<Option<SecondFactor>, StoreError> {
        let sql =
            "SELECT secret, enabled, last_step, recovery FROM second_factors WHERE user_id = $1";
        Ok(self
            .row(sql, &[&i(user_id)])?
            .map(|r| rows::second_factor(&r)))
    }
    fn account_change(&mut self, user_id: u64) -> Result<AccountChange, StoreError> {
        let sql = "SELECT pending_email, delete_at FROM account_changes WHERE user_id = $1";
        Ok(self
            .row(sql, &[&i(user_id)])?
            .map(|r| AccountChange {
                pending_email: r.get(0),
                delete_at: r.get::<_, Option<i64>>(1).map(|v| v as u64),
            })
            .unwrap_or_default())
    }
    fn user_by_pending_email(&mut self, email: &str) -> Result<Option<u64>, StoreError> {
        let sql = "SELECT user_id FROM account_changes WHERE pending_email = $1";
        Ok(self.row(sql, &[&email])?.map(|r| r.get::<_, i64>(0) as u64))
    }
    fn accounts_due_for_deletion(&mut self, now: u64, limit: u32) -> Result<Vec<u64>, StoreError> {
        self.ids(
            "SELECT user_id FROM account_changes WHERE delete_at IS NOT NULL AND delete_at <= $1 \
             ORDER BY delete_at LIMIT $2",
            &[&i(now), &i64::from(limit)],
        )
    }
    fn users(&mut self) -> Result<Vec<User>, StoreError> {
        let sql = format!("SELECT {} FROM users ORDER BY id", rows::USER);
        Ok(self.rows(&sql, &[])?.iter().map(rows::user).collect())
    }
    fn session_credential(
        &mut self,
        hash: &[u8; 32],
    ) -> Result<Option<SessionCredential>, StoreError> {
        let sql = format!(
            "SELECT {} FROM sessions WHERE token_hash = $1",
            rows::SESSION_CREDENTIAL
        );
        Ok(self
            .row(&sql, &[&&hash[..]])?
            .as_ref()
            .map(rows::session_credential))
    }
    fn session(&mut self, id: u64) -> Result<Option<Session>, StoreError> {
        let sql = format!("SELECT {} FROM sessions WHERE id = $1", rows::SESSION);
        Ok(self.row(&sql, &[&i(id)])?.as_ref().map(rows::session))
    }
    fn identity(&mut self, provider: &str, subject: &str) -> Result<Option<u64>, StoreError> {
        let r = self.row(
            "SELECT user_id FROM identities WHERE provider = $1 AND subject = $2",
            &[&provider, &subject],
        )?;
        Ok(r.map(|r| r.get::<_, i64>(0) as u64))
    }
    fn live_sessions(
        &mut self,
        user_id: u64,
        token_id: Option<u64>,
        now: u64,
    ) -> Result<(u32, u32), StoreError> {
        let row = self.row(
            "SELECT (SELECT COUNT(*) FROM sessions WHERE user_id = $1 AND expires_at > $3), \
                    (SELECT COUNT(*) FROM sessions WHERE $2::bigint IS NOT NULL \
                       AND access_token_id = $2 AND expires_at > $3)",
            &[&i(user_id), &token_id.map(i), &i(now)],
        )?;
        Ok(row.map_or((0, 0), |r| {
            (r.get::<_, i64>(0) as u32, r.get::<_, i64>(1) as u32)
        }))
    }

    fn least_active_sessions(
        &mut self,
        user_id: u64,
        token_id: Option<u64>,
        now: u64,
        n: u32,
    ) -> Result<Vec<u64>, StoreError> {
        self.ids(
            "SELECT id FROM sessions WHERE user_id = $1 AND expires_at > $2 \
               AND ($3::bigint IS NULL OR access_token_id = $3) \
             ORDER BY last_active, id LIMIT $4",
            &[&i(user_id), &i(now), &token_id.map(i), &i64::from(n)],
        )
    }

    fn sessions_of(&mut self, user_id: u64) -> Result<Vec<Session>, StoreError> {
        let sql = format!(
            "SELECT {} FROM sessions WHERE user_id = $1 ORDER BY id DESC",
            rows::SESSION
        );
        Ok(self
            .rows(&sql, &[&i(user_id)])?
            .iter()
            .map(rows::session)
            .collect())
    }
    fn code(&mut self, user_id: u64, purpose: &str) -> Result<Option<CodeRecord>, StoreError> {
        let r = self.row(
            "SELECT code_mac, expires_at, tries_left FROM email_codes \
             WHERE user_id = $1 AND purpose = $2",
            &[&i(user_id), &purpose],
        )?;
        Ok(r.as_ref().map(rows::code))
    }
    fn mail_due(&mut self, now: u64, limit: u32) -> Result<Vec<Mail>, StoreError> {
        let sql = format!(
            "SELECT {} FROM outbox WHERE sent_at IS NULL AND next_attempt_at <= $1 \
             ORDER BY id LIMIT $2",
            rows::MAIL
        );
        Ok(self
            .rows(&sql, &[&i(now), &i64::from(limit)])?
            .iter()
            .map(rows::mail)
            .collect())
    }
    fn mail(&mut self) -> Result<Vec<Mail>, StoreError> {
        let sql = format!("SELECT {} FROM outbox ORDER BY id DESC", rows::MAIL);
        Ok(self.rows(&sql, &[])?.iter().map(rows::mail).collect())
    }
    fn peer(&mut self, server_id: &str) -> Result<Option<Peer>, StoreError> {
        let sql = format!("SELECT {} FROM peers WHERE server_id = $1", rows::PEER);
        Ok(self.row(&sql, &[&server_id])?.as_ref().map(rows::peer))
    }
    fn peers(&mut self) -> Result<Vec<Peer>, StoreError> {
        let sql = format!("SELECT {} FROM peers ORDER BY server_id", rows::PEER);
        Ok(self.rows(&sql, &[])?.iter().map(rows::peer).collect())
    }
    fn peer_token(&mut self, hash: &[u8; 32]) -> Result<Option<(String, u64)>, StoreError> {
        let r = self.row(
            "SELECT server_id, expires_at FROM peer_tokens WHERE token_hash = $1",
            &[&&hash[..]],
        )?;
        Ok(r.map(|r| (r.get(0), r.get::<_, i64>(1) as u64)))
    }
    fn stored_secret(&mut self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let r = self.row("SELECT value FROM node_secrets WHERE name = $1", &[&name])?;
        Ok(r.map(|r| r.get(0)))
    }
    fn key_rotations(&mut self) -> Result<Vec<KeyRotation>, StoreError> {
        let rows = self.rows(
            "SELECT old_key, new_key, at, sig FROM key_rotations ORDER BY seq",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| KeyRotation {
                old_key: r.get::<_, Vec<u8>>(0).try_into().unwrap_or([0; 32]),
                new_key: r.get::<_, Vec<u8>>(1).try_into().unwrap_or([0; 32]),
                at: r.get::<_, i64>(2) as u64,
                sig: r.get(3),
            })
            .collect())
    }
    fn short_lived(
        &mut self,
        space: &str,
        key: &[u8; 32],
        now: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let r = self.row(
            "SELECT value FROM short_lived WHERE space = $1 AND key = $2 AND expires_at > $3",
            &[&space, &&key[..], &i(now)],
        )?;
        Ok(r.map(|r| r.get(0)))
    }
    fn highest_id(&mut self) -> Result<u64, StoreError> {
        let r = self.row(
            "SELECT GREATEST((SELECT MAX(id) FROM users), (SELECT MAX(id) FROM sessions), \
             (SELECT MAX(id) FROM access_tokens), (SELECT MAX(id) FROM invites))",
            &[],
        )?;
        Ok(r.and_then(|r| r.get::<_, Option<i64>>(0)).unwrap_or(0) as u64)
    }
    fn gauges(&mut self, now: u64) -> Result<Gauges, StoreError> {
        let a = self.row(
            "SELECT COUNT(*) FROM sessions WHERE expires_at > $1",
            &[&i(now)],
        )?;
        let b = self.row(
            "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE sent_at IS NULL AND body != ''",
            &[],
        )?;
        Ok(Gauges {
            active_sessions: a.map_or(0, |r| r.get::<_, i64>(0) as u64),
            outbox_depth: b.as_ref().map_or(0, |r| r.get::<_, i64>(0) as u64),
            outbox_oldest: b.and_then(|r| r.get::<_, Option<i64>>(1)).map(|v| v as u64),
        })
    }
    fn sign_in_throttle(
        &mut self,
        email: &str,
        client: &str,
    ) -> Result<(u32, Option<u64>), StoreError> {
        let r = self.row(
            "SELECT failures, locked_until FROM sign_in_throttle WHERE email = $1 AND client = $2",
            &[&email, &client],
        )?;
        Ok(r.map_or((0, None), |r| {
            (
                r.get::<_, i64>(0) as u32,
                r.get::<_, Option<i64>>(1).map(|v| v as u64),
            )
        }))
    }
    fn access_token_by_hash(&mut self, hash: &[u8; 32]) -> Result<Option<AccessToken>, StoreError> {
        let sql = format!(
            "SELECT {} FROM access_tokens WHERE token_hash = $1",
            rows::TOKEN
        );
        Ok(self.row(&sql, &[&&hash[..]])?.as_ref().map(rows::token))
    }
    fn access_token(&mut self, uuid: &str) -> Result<Option<AccessToken>, StoreError> {
        let sql = format!("SELECT {} FROM access_tokens WHERE uuid = $1", rows::TOKEN);
        Ok(self.row(&sql, &[&uuid])?.as_ref().map(rows::token))
    }
    fn access_tokens_of(&mut self, user_id: u64) -> Result<Vec<AccessToken>, StoreError> {
        let sql = format!(
            "SELECT {} FROM access_tokens WHERE user_id = $1 ORDER BY id DESC",
            rows::TOKEN
        );
        Ok(self
            .rows(&sql, &[&i(user_id)])?
            .iter()
            .map(rows::token)
            .collect())
    }
    fn invite_by_hash(&mut self, hash: &[u8; 32]) -> Result<Option<Invite>, StoreError> {
        let sql = format!("SELECT {} FROM invites WHERE code_hash = $1", rows::INVITE);
        Ok(self.row(&sql, &[&&hash[..]])?.as_ref().map(rows::invite))
    }
    fn invites_by(&mut self, creator: u64, limit: u32) -> Result<Vec<Invite>, StoreError> {
        let sql = format!(
            "SELECT {} FROM invites WHERE creator_id = $1 AND revoked_at IS NULL \
             ORDER BY id DESC LIMIT $2",
            rows::INVITE
        );
        Ok(self
            .rows(&sql, &[&i(creator), &i64::from(limit)])?
            .iter()
            .map(rows::invite)
            .collect())
    }
    fn group(&mut self, id: u64) -> Result<Option<Group>, StoreError> {
        let Some(r) = self.row("SELECT name, owner FROM groups WHERE id = $1", &[&i(id)])? else {
            return Ok(None);
        };
        let members = self.ids(
            "SELECT user_id FROM group_members WHERE group_id = $1 ORDER BY user_id LIMIT $2",
            &[&i(id), &i64::from(Group::MEMBERS_SHOWN)],
        )?;
        Ok(Some(Group {
            id,
            name: r.get(0),
            owner: r.get::<_, i64>(1) as u64,
            members,
        }))
    }
    fn community(&mut self, id: u64) -> Result<Option<Community>, StoreError> {
        let r = self.row(
            "SELECT name, owner FROM communities WHERE id = $1",
            &[&i(id)],
        )?;
        Ok(r.map(|r| Community {
            id,
            name: r.get(0),
            owner: r.get::<_, i64>(1) as u64,
        }))
    }
    fn are_friends(&mut self, a: u64, b: u64) -> Result<bool, StoreError> {
        let r = self.row(
            "SELECT 1 FROM friendships WHERE user_a = $1 AND user_b = $2",
            &[&i(a.min(b)), &i(a.max(b))],
        )?;
        Ok(r.is_some())
    }
    fn is_member(&mut self, target: InviteTarget, id: u64, user: u64) -> Result<bool, StoreError> {
        let sql = match target {
            InviteTarget::Group => {
                "SELECT 1 FROM group_members WHERE group_id = $1 AND user_id = $2"
            }
            _ => "SELECT 1 FROM community_members WHERE community_id = $1 AND user_id = $2",
        };
        Ok(self.row(sql, &[&i(id), &i(user)])?.is_some())
    }
}
