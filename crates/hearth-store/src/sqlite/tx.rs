//! [`Tx`]: one SQLite connection (inside the writer's transaction, or a reader) seen through
//! the store seam's [`ReadTx`] and [`WriteTx`]. Each method delegates to its table's file.
use crate::sqlite::db_err;
use rusqlite::Connection;

use super::{
    access_tokens, account_changes, codes, id_workers, identities, invites, key_rotations, nonces,
    outbox, peer_tokens, peers, second_factors, secrets, sessions, sign_in_throttle, users,
};
use crate::domain::model::{
    AccessToken, AccountChange, CodeRecord, Community, Group, Invite, InviteTarget, KeyRotation,
    Mail, Peer, SecondFactor, Session, SessionCredential, ThrottleRow, User,
};
use crate::domain::state::store::{Gauges, ReadTx, StoreError, WriteTx};

pub(super) struct Tx<'c>(pub &'c Connection);

impl ReadTx for Tx<'_> {
    fn user(&mut self, id: u64) -> Result<Option<User>, StoreError> {
        users::by_id(self.0, id)
    }
    fn user_by_email(&mut self, email: &str) -> Result<Option<User>, StoreError> {
        users::by_email(self.0, email)
    }
    fn user_by_home(&mut self, server: &str, remote: u64) -> Result<Option<User>, StoreError> {
        users::by_home(self.0, server, remote)
    }
    fn users(&mut self) -> Result<Vec<User>, StoreError> {
        users::list(self.0)
    }
    fn account_change(&mut self, user_id: u64) -> Result<AccountChange, StoreError> {
        account_changes::get(self.0, user_id)
    }
    fn second_factor(&mut self, user_id: u64) -> Result<Option<SecondFactor>, StoreError> {
        second_factors::get(self.0, user_id)
    }
    fn user_by_pending_email(&mut self, email: &str) -> Result<Option<u64>, StoreError> {
        account_changes::by_pending_email(self.0, email)
    }
    fn accounts_due_for_deletion(&mut self, now: u64, limit: u32) -> Result<Vec<u64>, StoreError> {
        account_changes::due(self.0, now, limit)
    }
    fn session_credential(
        &mut self,
        hash: &[u8; 32],
    ) -> Result<Option<SessionCredential>, StoreError> {
        sessions::credential(self.0, hash)
    }
    fn session(&mut self, id: u64) -> Result<Option<Session>, StoreError> {
        sessions::by_id(self.0, id)
    }
    fn identity(&mut self, provider: &str, subject: &str) -> Result<Option<u64>, StoreError> {
        identities::user_of(self.0, provider, subject)
    }
    fn sessions_of(&mut self, user_id: u64) -> Result<Vec<Session>, StoreError> {
        sessions::list_for_user(self.0, user_id)
    }
    fn live_sessions(
        &mut self,
        user_id: u64,
        token_id: Option<u64>,
        now: u64,
    ) -> Result<(u32, u32), StoreError> {
        sessions::live(self.0, user_id, token_id, now)
    }
    fn least_active_sessions(
        &mut self,
        user_id: u64,
        token_id: Option<u64>,
        now: u64,
        n: u32,
    ) -> Result<Vec<u64>, StoreError> {
        sessions::least_active(self.0, user_id, token_id, now, n)
    }
    fn code(&mut self, user_id: u64, purpose: &str) -> Result<Option<CodeRecord>, StoreError> {
        codes::get(self.0, user_id, purpose)
    }
    fn mail_due(&mut self, now: u64, limit: u32) -> Result<Vec<Mail>, StoreError> {
        outbox::due(self.0, now, limit)
    }
    fn mail(&mut self) -> Result<Vec<Mail>, StoreError> {
        outbox::list(self.0)
    }
    fn peer(&mut self, server_id: &str) -> Result<Option<Peer>, StoreError> {
        peers::get(self.0, server_id)
    }
    fn peers(&mut self) -> Result<Vec<Peer>, StoreError> {
        peers::list(self.0)
    }
    fn peer_token(&mut self, hash: &[u8; 32]) -> Result<Option<(String, u64)>, StoreError> {
        peer_tokens::get(self.0, hash)
    }
    fn key_rotations(&mut self) -> Result<Vec<KeyRotation>, StoreError> {
        key_rotations::list(self.0)
    }
    fn stored_secret(&mut self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        secrets::get(self.0, name)
    }
    fn gauges(&mut self, now: u64) -> Result<Gauges, StoreError> {
        let active_sessions: i64 = self
            .0
            .query_row(
                "SELECT COUNT(*) FROM sessions WHERE expires_at > ?1",
                [now as i64],
                |r| r.get(0),
            )
            .map_err(db_err)?;
        let (depth, oldest): (i64, Option<i64>) = self
            .0
            .query_row(
                "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE sent_at IS NULL AND body != ''",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(db_err)?;
        Ok(Gauges {
            active_sessions: active_sessions as u64,
            outbox_depth: depth as u64,
            outbox_oldest: oldest.map(|v| v as u64),
        })
    }
    fn sign_in_throttle(
        &mut self,
        email: &str,
        client: &str,
    ) -> Result<(u32, Option<u64>), StoreError> {
        sign_in_throttle::get(self.0, email, client)
    }
    fn access_token_by_hash(&mut self, hash: &[u8; 32]) -> Result<Option<AccessToken>, StoreError> {
        access_tokens::by_hash(self.0, hash)
    }
    fn access_token(&mut self, uuid: &str) -> Result<Option<AccessToken>, StoreError> {
        access_tokens::by_uuid(self.0, uuid)
    }
    fn access_tokens_of(&mut self, user_id: u64) -> Result<Vec<AccessToken>, StoreError> {
        access_tokens::list_for_user(self.0, user_id)
    }
    fn invite_by_hash(&mut self, hash: &[u8; 32]) -> Result<Option<Invite>, StoreError> {
        invites::by_hash(self.0, hash)
    }
    fn invites_by(&mut self, creator: u64, limit: u32) -> Result<Vec<Invite>, StoreError> {
        invites::list_by(self.0, creator, limit)
    }
    fn group(&mut self, id: u64) -> Result<Option<Group>, StoreError> {
        invites::group(self.0, id)
    }
    fn community(&mut self, id: u64) -> Result<Option<Community>, StoreError> {
        invites::community(self.0, id)
    }
    fn are_friends(&mut self, a: u64, b: u64) -> Result<bool, StoreError> {
        invites::friends(self.0, a, b)
    }
    fn is_member(&mut self, target: InviteTarget, id: u64, user: u64) -> Result<bool, StoreError> {
        invites::is_member(self.0, target, id, user)
    }
    fn short_lived(
        &mut self,
        space: &str,
        key: &[u8; 32],
        now: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        secrets::short_lived(self.0, space, key, now)
    }
    fn highest_id(&mut self) -> Result<u64, StoreError> {
        let max: Option<i64> = self.0.query_row(
            "SELECT MAX(m) FROM (SELECT MAX(id) AS m FROM users UNION ALL SELECT MAX(id) FROM sessions \
             UNION ALL SELECT MAX(id) FROM access_tokens UNION ALL SELECT MAX(id) FROM invites)",
            [],
            |r| r.get(0),
        ).map_err(db_err)?;
        Ok(max.unwrap_or(0) as u64)
    }
}

impl WriteTx for Tx<'_> {
    fn insert_user(&mut self, u: &User) -> Result<(), StoreError> {
        users::insert(self.0, u)
    }
    fn user_for_update(&mut self, id: u64) -> Result<Option<User>, StoreError> {
        // The single writer holds every row already.
        users::by_id(self.0, id)
    }
    fn upgrade_guest(&mut self, u: &User) -> Result<bool, StoreError> {
        users::upgrade_guest(self.0, u)
    }
    fn set_password_hash(&mut self, id: u64, hash: &str) -> Result<(), StoreError> {
        users::set_password_hash(self.0, id, hash)
    }
    fn sign_in_rows_for_update(
        &mut self,
        email: &str,
        client: &str,
    ) -> Result<(ThrottleRow, ThrottleRow), StoreError> {
        // The single writer holds every row already.
        Ok((
            sign_in_throttle::row(self.0, email, "*")?,
            sign_in_throttle::row(self.0, email, client)?,
        ))
    }
    fn put_sign_in_rows(
        &mut self,
        email: &str,
        rows: &[(&str, &ThrottleRow)],
        now: u64,
    ) -> Result<(), StoreError> {
        for (client, row) in rows {
            sign_in_throttle::put(self.0, email, client, row, now)?;
        }
        Ok(())
    }
    fn clear_sign_in_throttle(&mut self, email: &str) -> Result<(), StoreError> {
        sign_in_throttle::clear(self.0, email)
    }
    fn sweep_sign_in_throttle(&mut self, before: u64) -> Result<u64, StoreError> {
        sign_in_throttle::sweep(self.0, before)
    }
    fn set_user_disabled(&mut self, id: u64, disabled: bool) -> Result<(), StoreError> {
        users::set_disabled(self.0, id, disabled)
    }
    fn delete_user(&mut self, id: u64) -> Result<bool, StoreError> {
        users::delete(self.0, id)
    }
    fn set_email_verified(&mut self, id: u64) -> Result<(), StoreError> {
        users::set_email_verified(self.0, id)
    }
    fn set_user_name(&mut self, id: u64, name: &str) -> Result<(), StoreError> {
        users::set_name(self.0, id, name)
    }
    fn set_account_change(&mut self, user_id: u64, c: &AccountChange) -> Result<(), StoreError> {
        account_changes::set(self.0, user_id, c)
    }
    fn second_factor_for_update(
        &mut self,
        user_id: u64,
    ) -> Result<Option<SecondFactor>, StoreError> {
        // The single writer holds every row already.
        second_factors::get(self.0, user_id)
    }
    fn set_second_factor(
        &mut self,
        user_id: u64,
        factor: Option<&SecondFactor>,
        now: u64,
    ) -> Result<(), StoreError> {
        second_factors::set(self.0, user_id, factor, now)
    }
    fn confirm_email_change(&mut self, user_id: u64, email: &str) -> Result<bool, StoreError> {
        account_changes::confirm_email(self.0, user_id, email)
    }
    fn insert_identity(
        &mut self,
        provider: &str,
        subject: &str,
        user_id: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        identities::insert(self.0, provider, subject, user_id, now)
    }
    fn insert_session(&mut self, s: &Session) -> Result<(), StoreError> {
        sessions::insert(self.0, s)
    }
    fn insert_session_if_password(
        &mut self,
        s: &Session,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        sessions::insert_if_password(self.0, s, password_hash)
    }
    fn delete_sessions_of(&mut self, user_id: u64, ids: &[u64]) -> Result<Vec<u64>, StoreError> {
        sessions::delete_for_user(self.0, user_id, ids)
    }
    fn delete_all_sessions_of(
        &mut self,
        user_id: u64,
        keep: Option<u64>,
    ) -> Result<Vec<u64>, StoreError> {
        sessions::delete_all_for_user(self.0, user_id, keep)
    }
    fn delete_session(&mut self, id: u64) -> Result<bool, StoreError> {
        sessions::delete(self.0, id)
    }
    fn touch_session(&mut self, id: u64, now: u64) -> Result<(), StoreError> {
        sessions::touch(self.0, id, now)
    }
    fn swap_session_token(
        &mut self,
        id: u64,
        presented: &[u8; 32],
        new: &[u8; 32],
        now: u64,
    ) -> Result<bool, StoreError> {
        sessions::swap_token(self.0, id, presented, new, now)
    }
    fn issue_code(
        &mut self,
        user_id: u64,
        purpose: &str,
        c: &CodeRecord,
        now: u64,
        max_per_hour: u32,
    ) -> Result<bool, StoreError> {
        codes::issue(self.0, user_id, purpose, c, now, max_per_hour)
    }
    fn take_code(
        &mut self,
        user_id: u64,
        purpose: &str,
        mac: &[u8; 32],
        now: u64,
    ) -> Result<bool, StoreError> {
        codes::take(self.0, user_id, purpose, mac, now)
    }
    fn spend_code_try(
        &mut self,
        user_id: u64,
        purpose: &str,
        now: u64,
    ) -> Result<Option<CodeRecord>, StoreError> {
        codes::spend_try(self.0, user_id, purpose, now)
    }
    fn enqueue_mail(
        &mut self,
        recipient: &str,
        subject: &str,
        body: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        outbox::enqueue(self.0, recipient, subject, body, now)
    }
    fn mark_mail_sent(&mut self, id: u64, now: u64) -> Result<(), StoreError> {
        outbox::mark_sent(self.0, id, now)
    }
    fn expire_mail(&mut self, cutoff: u64) -> Result<u64, StoreError> {
        outbox::expire(self.0, cutoff)
    }
    fn mark_mail_failed(&mut self, id: u64, error: &str, next: u64) -> Result<(), StoreError> {
        outbox::mark_failed(self.0, id, error, next)
    }
    fn node_secret(
        &mut self,
        name: &str,
        make: &mut dyn FnMut() -> Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        secrets::get_or_create(self.0, name, make)
    }
    fn set_node_secret(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        secrets::set(self.0, name, value)
    }
    fn put_peer(&mut self, p: &Peer) -> Result<(), StoreError> {
        peers::put(self.0, p)
    }
    fn insert_peer_token(
        &mut self,
        hash: &[u8; 32],
        server_id: &str,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        peer_tokens::insert(self.0, hash, server_id, expires_at)
    }
    fn take_peer_token(&mut self, hash: &[u8; 32]) -> Result<Option<(String, u64)>, StoreError> {
        peer_tokens::take(self.0, hash)
    }
    fn use_nonce(
        &mut self,
        origin: &str,
        nonce: &[u8],
        keep_until: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        nonces::use_once(self.0, origin, nonce, keep_until, now)
    }
    fn insert_key_rotation(&mut self, r: &KeyRotation) -> Result<(), StoreError> {
        key_rotations::insert(self.0, r)
    }
    fn lease_id_worker(
        &mut self,
        holder: &str,
        renew: Option<u16>,
        now: u64,
        expires_at: u64,
    ) -> Result<Option<u16>, StoreError> {
        id_workers::lease(self.0, holder, renew, now, expires_at)
    }
    fn release_id_worker(&mut self, worker: u16, holder: &str) -> Result<(), StoreError> {
        id_workers::release(self.0, worker, holder)
    }
    fn short_lived_for_update(
        &mut self,
        space: &str,
        keys: &[[u8; 32]],
        now: u64,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        // The single writer holds every row already.
        keys.iter()
            .map(|key| secrets::short_lived(self.0, space, key, now))
            .collect()
    }
    fn put_short_lived(
        &mut self,
        space: &str,
        values: &[([u8; 32], Vec<u8>)],
        expires_at: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        secrets::put_short_lived(self.0, space, values, expires_at, now)
    }
    fn hold_job(
        &mut self,
        name: &str,
        holder: &str,
        now: u64,
        expires_at: u64,
    ) -> Result<bool, StoreError> {
        id_workers::hold_job(self.0, name, holder, now, expires_at)
    }
    fn insert_access_token(&mut self, t: &AccessToken, max: u32) -> Result<bool, StoreError> {
        access_tokens::insert_capped(self.0, t, max)
    }
    fn update_access_token(&mut self, t: &AccessToken) -> Result<(), StoreError> {
        access_tokens::update(self.0, t)
    }
    fn touch_access_token(
        &mut self,
        id: u64,
        now: u64,
        ip: Option<&str>,
    ) -> Result<(), StoreError> {
        access_tokens::touch(self.0, id, now, ip)
    }
    fn delete_access_token(&mut self, id: u64) -> Result<bool, StoreError> {
        access_tokens::delete(self.0, id)
    }
    fn insert_session_for_token(
        &mut self,
        s: &Session,
        token_hash: &[u8; 32],
    ) -> Result<bool, StoreError> {
        sessions::insert_for_token(self.0, s, token_hash)
    }
    fn delete_sessions_of_token(&mut self, token_id: u64) -> Result<Vec<u64>, StoreError> {
        sessions::delete_for_token(self.0, token_id)
    }
    fn insert_invite(&mut self, i: &Invite, now: u64, max_live: u32) -> Result<bool, StoreError> {
        invites::insert_capped(self.0, i, now, max_live)
    }
    fn spend_invite(&mut self, id: u64, now: u64) -> Result<bool, StoreError> {
        invites::spend(self.0, id, now)
    }
    fn revoke_invite(&mut self, id: u64, now: u64) -> Result<(), StoreError> {
        invites::revoke(self.0, id, now)
    }
    fn befriend(&mut self, a: u64, b: u64, now: u64) -> Result<bool, StoreError> {
        invites::befriend(self.0, a, b, now)
    }
    fn add_member(&mut self, target: InviteTarget, id: u64, user: u64) -> Result<bool, StoreError> {
        invites::add_member(self.0, target, id, user)
    }
    fn insert_group(&mut self, g: &Group, now: u64) -> Result<(), StoreError> {
        invites::insert_group(self.0, g, now)
    }
    fn insert_community(&mut self, c: &Community, now: u64) -> Result<(), StoreError> {
        invites::insert_community(self.0, c, now)
    }
}
