//! The seam's write operations on PostgreSQL (the larger atomic ones are in `gates.rs`).
use super::gates;
use super::read::Tx;
use super::rows;
use super::short_lived;
use crate::domain::model::{
    AccessToken, AccountChange, CodeRecord, Community, Group, Invite, InviteTarget, KeyRotation,
    Peer, SecondFactor, Session, ThrottleRow, User,
};
use crate::domain::state::store::{ReadTx, StoreError, WriteTx};

fn i(v: u64) -> i64 {
    v as i64
}

/// Text for mail whose body was dropped (as SQLite's outbox writes it).
const REDACTED: &str = "(redacted: delivered or expired)";

/// The SQL for "this invite can still be used at $2".
const LIVE: &str =
    "revoked_at IS NULL AND expires_at > $2 AND (max_uses IS NULL OR uses < max_uses)";

impl WriteTx for Tx<'_> {
    fn user_for_update(&mut self, id: u64) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {} FROM users WHERE id = $1 FOR UPDATE", rows::USER);
        Ok(self.row(&sql, &[&i(id)])?.as_ref().map(rows::user))
    }
    fn insert_user(&mut self, u: &User) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO users ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            rows::USER
        );
        self.exec_unique(
            &sql,
            &[
                &i(u.id),
                &u.email,
                &u.name,
                &u.password_hash,
                &u.email_verified,
                &u.home.as_ref().map(|h| h.0.clone()),
                &u.home.as_ref().map(|h| h.1 as i64),
                &i(u.created_at),
                &u.disabled,
            ],
            "that e-mail address",
        )?;
        Ok(())
    }
    fn upgrade_guest(&mut self, u: &User) -> Result<bool, StoreError> {
        let n = self.exec_unique(
            "UPDATE users SET email = $2, name = $3, password_hash = $4 WHERE id = $1 \
             AND email IS NULL AND password_hash IS NULL AND home_server IS NULL",
            &[&i(u.id), &u.email, &u.name, &u.password_hash],
            "that e-mail address",
        )?;
        Ok(n > 0)
    }
    fn set_password_hash(&mut self, id: u64, hash: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE users SET password_hash = $2 WHERE id = $1",
            &[&i(id), &hash],
        )?;
        Ok(())
    }
    fn sign_in_rows_for_update(
        &mut self,
        email: &str,
        client: &str,
    ) -> Result<(ThrottleRow, ThrottleRow), StoreError> {
        gates::sign_in_rows_for_update(self, email, client)
    }
    fn put_sign_in_rows(
        &mut self,
        email: &str,
        rows: &[(&str, &ThrottleRow)],
        now: u64,
    ) -> Result<(), StoreError> {
        gates::put_sign_in_rows(self, email, rows, now)
    }
    fn clear_sign_in_throttle(&mut self, email: &str) -> Result<(), StoreError> {
        self.exec("DELETE FROM sign_in_throttle WHERE email = $1", &[&email])?;
        Ok(())
    }
    fn sweep_sign_in_throttle(&mut self, before: u64) -> Result<u64, StoreError> {
        self.exec(
            "DELETE FROM sign_in_throttle WHERE updated_at < $1 \
             AND (locked_until IS NULL OR locked_until < $1)",
            &[&i(before)],
        )
    }
    fn second_factor_for_update(
        &mut self,
        user_id: u64,
    ) -> Result<Option<SecondFactor>, StoreError> {
        let sql = "SELECT secret, enabled, last_step, recovery FROM second_factors \
                   WHERE user_id = $1 FOR UPDATE";
        Ok(self
            .row(sql, &[&i(user_id)])?
            .map(|r| rows::second_factor(&r)))
    }
    fn set_second_factor(
        &mut self,
        user_id: u64,
        factor: Option<&SecondFactor>,
        now: u64,
    ) -> Result<(), StoreError> {
        match factor {
            None => self.exec(
                "DELETE FROM second_factors WHERE user_id = $1",
                &[&i(user_id)],
            )?,
            Some(f) => self.exec(
                "INSERT INTO second_factors \
                 (user_id, secret, enabled, last_step, recovery, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id) DO UPDATE SET \
                 secret = excluded.secret, enabled = excluded.enabled, \
                 last_step = excluded.last_step, recovery = excluded.recovery, \
                 updated_at = excluded.updated_at",
                &[
                    &i(user_id),
                    &f.sealed_secret,
                    &f.enabled,
                    &i(f.last_step),
                    &f.recovery,
                    &i(now),
                ],
            )?,
        };
        Ok(())
    }
    fn set_account_change(&mut self, user_id: u64, c: &AccountChange) -> Result<(), StoreError> {
        if c == &AccountChange::default() {
            self.exec(
                "DELETE FROM account_changes WHERE user_id = $1",
                &[&i(user_id)],
            )?;
            return Ok(());
        }
        if let Some(email) = &c.pending_email {
            let taken = self.row(
                "SELECT 1 FROM users WHERE lower(email) = lower($1)",
                &[email],
            )?;
            if taken.is_some() {
                return Err(StoreError::Conflict("that e-mail address"));
            }
        }
        self.exec_unique(
            "INSERT INTO account_changes (user_id, pending_email, delete_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET pending_email = $2, delete_at = $3",
            &[&i(user_id), &c.pending_email, &c.delete_at.map(i)],
            "that e-mail address",
        )?;
        Ok(())
    }
    fn confirm_email_change(&mut self, user_id: u64, email: &str) -> Result<bool, StoreError> {
        let moved = self.exec_unique(
            "UPDATE users SET email = $2, email_verified = TRUE WHERE id = $1 AND EXISTS \
             (SELECT 1 FROM account_changes WHERE user_id = $1 AND pending_email = $2)",
            &[&i(user_id), &email],
            "that e-mail address",
        )?;
        self.exec(
            "UPDATE account_changes SET pending_email = NULL WHERE user_id = $1 AND pending_email = $2",
            &[&i(user_id), &email],
        )?;
        self.exec(
            "DELETE FROM account_changes WHERE user_id = $1 AND pending_email IS NULL AND delete_at IS NULL",
            &[&i(user_id)],
        )?;
        Ok(moved > 0)
    }
    fn set_user_disabled(&mut self, id: u64, disabled: bool) -> Result<(), StoreError> {
        self.exec(
            "UPDATE users SET disabled = $2 WHERE id = $1",
            &[&i(id), &disabled],
        )?;
        Ok(())
    }
    fn delete_user(&mut self, id: u64) -> Result<bool, StoreError> {
        self.exec("DELETE FROM invites WHERE creator_id = $1", &[&i(id)])?;
        Ok(self.exec("DELETE FROM users WHERE id = $1", &[&i(id)])? > 0)
    }
    fn set_email_verified(&mut self, id: u64) -> Result<(), StoreError> {
        self.exec(
            "UPDATE users SET email_verified = TRUE WHERE id = $1",
            &[&i(id)],
        )?;
        Ok(())
    }
    fn set_user_name(&mut self, id: u64, name: &str) -> Result<(), StoreError> {
        self.exec("UPDATE users SET name = $2 WHERE id = $1", &[&i(id), &name])?;
        Ok(())
    }
    fn insert_identity(
        &mut self,
        provider: &str,
        subject: &str,
        user_id: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        self.exec_unique(
            "INSERT INTO identities (provider, subject, user_id, created_at) VALUES ($1, $2, $3, $4)",
            &[&provider, &subject, &i(user_id), &i(now)],
            "that provider account",
        )?;
        Ok(())
    }
    fn insert_session(&mut self, s: &Session) -> Result<(), StoreError> {
        gates::insert_session_where(self, s, "$14::text = ''", &"").map(|_| ())
    }
    fn insert_session_if_password(
        &mut self,
        s: &Session,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        gates::insert_session_where(
            self,
            s,
            "EXISTS (SELECT 1 FROM users WHERE id = $2 AND password_hash = $14::text)",
            &password_hash,
        )
    }
    fn delete_sessions_of(&mut self, user_id: u64, ids: &[u64]) -> Result<Vec<u64>, StoreError> {
        let ids: Vec<i64> = ids.iter().map(|v| *v as i64).collect();
        self.returning_ids(
            "DELETE FROM sessions WHERE user_id = $1 AND id = ANY($2) RETURNING id",
            &[&i(user_id), &ids],
        )
    }
    fn delete_all_sessions_of(
        &mut self,
        user_id: u64,
        keep: Option<u64>,
    ) -> Result<Vec<u64>, StoreError> {
        let keep = keep.map_or(-1, |k| k as i64);
        self.returning_ids(
            "DELETE FROM sessions WHERE user_id = $1 AND id != $2 RETURNING id",
            &[&i(user_id), &keep],
        )
    }
    fn delete_session(&mut self, id: u64) -> Result<bool, StoreError> {
        Ok(self.exec("DELETE FROM sessions WHERE id = $1", &[&i(id)])? > 0)
    }
    fn touch_session(&mut self, id: u64, now: u64) -> Result<(), StoreError> {
        self.exec(
            "UPDATE sessions SET last_active = GREATEST(last_active, $2) WHERE id = $1",
            &[&i(id), &i(now)],
        )?;
        Ok(())
    }
    fn swap_session_token(
        &mut self,
        id: u64,
        presented: &[u8; 32],
        new: &[u8; 32],
        now: u64,
    ) -> Result<bool, StoreError> {
        Ok(self.exec(
            "UPDATE sessions SET token_hash = $3, last_active = $4 WHERE id = $1 AND token_hash = $2",
            &[&i(id), &&presented[..], &&new[..], &i(now)],
        )? > 0)
    }
    fn issue_code(
        &mut self,
        user_id: u64,
        purpose: &str,
        c: &CodeRecord,
        now: u64,
        max_per_hour: u32,
    ) -> Result<bool, StoreError> {
        gates::issue_code(self, user_id, purpose, c, now, max_per_hour)
    }
    fn take_code(
        &mut self,
        user_id: u64,
        purpose: &str,
        mac: &[u8; 32],
        now: u64,
    ) -> Result<bool, StoreError> {
        Ok(self.exec(
            "DELETE FROM email_codes WHERE user_id = $1 AND purpose = $2 AND code_mac = $3 \
             AND expires_at > $4",
            &[&i(user_id), &purpose, &&mac[..], &i(now)],
        )? > 0)
    }
    fn spend_code_try(
        &mut self,
        user_id: u64,
        purpose: &str,
        now: u64,
    ) -> Result<Option<CodeRecord>, StoreError> {
        let r = self.row(
            "UPDATE email_codes SET tries_left = tries_left - 1 \
             WHERE user_id = $1 AND purpose = $2 AND tries_left > 0 AND expires_at > $3 \
             RETURNING code_mac, expires_at, tries_left",
            &[&i(user_id), &purpose, &i(now)],
        )?;
        Ok(r.as_ref().map(rows::code))
    }
    fn enqueue_mail(
        &mut self,
        recipient: &str,
        subject: &str,
        body: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO outbox (recipient, subject, body, created_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $4)",
            &[&recipient, &subject, &body, &i(now)],
        )?;
        Ok(())
    }
    fn mark_mail_sent(&mut self, id: u64, now: u64) -> Result<(), StoreError> {
        self.exec(
            "UPDATE outbox SET sent_at = $2, attempts = attempts + 1, last_error = NULL, \
             subject = $3, body = '' WHERE id = $1",
            &[&i(id), &i(now), &REDACTED],
        )?;
        Ok(())
    }
    fn expire_mail(&mut self, cutoff: u64) -> Result<u64, StoreError> {
        self.exec(
            "UPDATE outbox SET subject = $2, body = '', next_attempt_at = $3, \
             last_error = 'expired before delivery' \
             WHERE sent_at IS NULL AND created_at <= $1 AND body != ''",
            &[&i(cutoff), &REDACTED, &i64::MAX],
        )
    }
    fn mark_mail_failed(&mut self, id: u64, error: &str, next: u64) -> Result<(), StoreError> {
        self.exec(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3 \
             WHERE id = $1",
            &[&i(id), &error, &i(next)],
        )?;
        Ok(())
    }
    fn node_secret(
        &mut self,
        name: &str,
        make: &mut dyn FnMut() -> Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        let value = make();
        // One value wins even when nodes start together: insert if absent, then read.
        self.exec(
            "INSERT INTO node_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &value],
        )?;
        Ok(self.stored_secret(name)?.unwrap_or(value))
    }
    fn set_node_secret(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO node_secrets (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            &[&name, &value],
        )?;
        Ok(())
    }
    fn put_peer(&mut self, p: &Peer) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO peers ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (server_id) DO UPDATE SET pinned_key = excluded.pinned_key, \
             previous_key = excluded.previous_key, \
             previous_retired_at = excluded.previous_retired_at, url = excluded.url, \
             linked = excluded.linked, state = excluded.state, \
             last_error = excluded.last_error, link_expires_at = excluded.link_expires_at, \
             updated_at = excluded.updated_at",
            rows::PEER
        );
        self.exec(
            &sql,
            &[
                &p.server_id,
                &p.pinned_key.map(|k| k.to_vec()),
                &p.previous_key.map(|(k, _)| k.to_vec()),
                &p.previous_key.map(|(_, at)| at as i64),
                &p.url,
                &p.linked,
                &p.state,
                &p.last_error,
                &p.link_expires_at.map(i),
                &i(p.updated_at),
            ],
        )?;
        Ok(())
    }
    fn insert_peer_token(
        &mut self,
        hash: &[u8; 32],
        server_id: &str,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO peer_tokens (token_hash, server_id, expires_at) VALUES ($1, $2, $3)",
            &[&&hash[..], &server_id, &i(expires_at)],
        )?;
        Ok(())
    }
    fn take_peer_token(&mut self, hash: &[u8; 32]) -> Result<Option<(String, u64)>, StoreError> {
        let r = self.row(
            "DELETE FROM peer_tokens WHERE token_hash = $1 RETURNING server_id, expires_at",
            &[&&hash[..]],
        )?;
        Ok(r.map(|r| (r.get(0), r.get::<_, i64>(1) as u64)))
    }
    fn use_nonce(
        &mut self,
        origin: &str,
        nonce: &[u8],
        keep_until: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        self.exec("DELETE FROM used_nonces WHERE expires_at < $1", &[&i(now)])?;
        self.exec_unique(
            "INSERT INTO used_nonces (origin, nonce, expires_at) VALUES ($1, $2, $3)",
            &[&origin, &nonce, &i(keep_until)],
            "this token's nonce",
        )?;
        Ok(())
    }
    fn insert_key_rotation(&mut self, r: &KeyRotation) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO key_rotations (old_key, new_key, at, sig) VALUES ($1, $2, $3, $4)",
            &[&&r.old_key[..], &&r.new_key[..], &i(r.at), &r.sig],
        )?;
        Ok(())
    }
    fn lease_id_worker(
        &mut self,
        holder: &str,
        renew: Option<u16>,
        now: u64,
        expires_at: u64,
    ) -> Result<Option<u16>, StoreError> {
        gates::lease_worker(self, holder, renew, now, expires_at)
    }
    fn release_id_worker(&mut self, worker: u16, holder: &str) -> Result<(), StoreError> {
        self.exec(
            "DELETE FROM id_workers WHERE worker = $1 AND holder = $2",
            &[&i64::from(worker), &holder],
        )?;
        Ok(())
    }
    fn short_lived_for_update(
        &mut self,
        space: &str,
        keys: &[[u8; 32]],
        now: u64,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        short_lived::for_update(self, space, keys, now)
    }
    fn put_short_lived(
        &mut self,
        space: &str,
        values: &[([u8; 32], Vec<u8>)],
        expires_at: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        short_lived::put(self, space, values, expires_at, now)
    }
    fn hold_job(
        &mut self,
        name: &str,
        holder: &str,
        now: u64,
        expires_at: u64,
    ) -> Result<bool, StoreError> {
        let held = self.row(
            "INSERT INTO job_leases AS j (name, holder, expires_at) VALUES ($1, $2, $4::bigint) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                 expires_at = excluded.expires_at \
             WHERE j.holder = excluded.holder OR j.expires_at <= $3::bigint RETURNING 1",
            &[&name, &holder, &i(now), &i(expires_at)],
        )?;
        Ok(held.is_some())
    }
    fn insert_access_token(&mut self, t: &AccessToken, max: u32) -> Result<bool, StoreError> {
        let sql = format!(
            "INSERT INTO access_tokens ({}) \
             SELECT $1::bigint, $2::text, $3::bigint, $4::text, $5::bytea, $6::text, $7::bigint, \
                    $8::bigint, NULL, NULL \
             WHERE (SELECT COUNT(*) FROM access_tokens WHERE user_id = $3) < $9",
            rows::TOKEN
        );
        let n = self.exec_unique(
            &sql,
            &[
                &i(t.id),
                &t.uuid,
                &i(t.user_id),
                &t.name,
                &&t.token_hash[..],
                &t.scopes.to_text(),
                &i(t.created_at),
                &i(t.expires_at),
                &i64::from(max),
            ],
            "that token",
        )?;
        Ok(n > 0)
    }
    fn update_access_token(&mut self, t: &AccessToken) -> Result<(), StoreError> {
        self.exec(
            "UPDATE access_tokens SET name = $2, token_hash = $3, scopes = $4, expires_at = $5 \
             WHERE id = $1",
            &[
                &i(t.id),
                &t.name,
                &&t.token_hash[..],
                &t.scopes.to_text(),
                &i(t.expires_at),
            ],
        )?;
        Ok(())
    }
    fn touch_access_token(
        &mut self,
        id: u64,
        now: u64,
        ip: Option<&str>,
    ) -> Result<(), StoreError> {
        self.exec(
            "UPDATE access_tokens SET last_used_at = $2, last_used_ip = $3 WHERE id = $1",
            &[&i(id), &i(now), &ip],
        )?;
        Ok(())
    }
    fn delete_access_token(&mut self, id: u64) -> Result<bool, StoreError> {
        Ok(self.exec("DELETE FROM access_tokens WHERE id = $1", &[&i(id)])? > 0)
    }
    fn insert_session_for_token(
        &mut self,
        s: &Session,
        token_hash: &[u8; 32],
    ) -> Result<bool, StoreError> {
        gates::insert_session_where(
            self,
            s,
            "EXISTS (SELECT 1 FROM access_tokens WHERE id = $13 AND user_id = $2 \
             AND token_hash = $14::bytea AND expires_at > $9 AND expires_at >= $11)",
            &&token_hash[..],
        )
    }
    fn delete_sessions_of_token(&mut self, token_id: u64) -> Result<Vec<u64>, StoreError> {
        self.returning_ids(
            "DELETE FROM sessions WHERE access_token_id = $1 RETURNING id",
            &[&i(token_id)],
        )
    }
    fn insert_invite(&mut self, v: &Invite, now: u64, max_live: u32) -> Result<bool, StoreError> {
        let sql = format!(
            "INSERT INTO invites ({}) \
             SELECT $3::bigint, $4::bytea, $5::text, $1::bigint, $6::text, $7::bigint, \
                    $8::bigint, 0, $9::bigint, NULL, $2::bigint \
             WHERE (SELECT COUNT(*) FROM invites WHERE creator_id = $1 AND {LIVE}) < $10",
            rows::INVITE
        );
        let n = self.exec_unique(
            &sql,
            &[
                &i(v.creator_id),
                &i(now),
                &i(v.id),
                &&v.code_hash[..],
                &v.hint,
                &v.target.as_str(),
                &i(v.target_id),
                &v.max_uses.map(i64::from),
                &i(v.expires_at),
                &i64::from(max_live),
            ],
            "that invite code",
        )?;
        Ok(n > 0)
    }
    fn spend_invite(&mut self, id: u64, now: u64) -> Result<bool, StoreError> {
        let sql = format!("UPDATE invites SET uses = uses + 1 WHERE id = $1 AND {LIVE}");
        Ok(self.exec(&sql, &[&i(id), &i(now)])? > 0)
    }
    fn revoke_invite(&mut self, id: u64, now: u64) -> Result<(), StoreError> {
        self.exec(
            "UPDATE invites SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            &[&i(id), &i(now)],
        )?;
        Ok(())
    }
    fn befriend(&mut self, a: u64, b: u64, now: u64) -> Result<bool, StoreError> {
        Ok(self.exec(
            "INSERT INTO friendships (user_a, user_b, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
            &[&i(a.min(b)), &i(a.max(b)), &i(now)],
        )? > 0)
    }
    fn add_member(&mut self, target: InviteTarget, id: u64, user: u64) -> Result<bool, StoreError> {
        let sql = match target {
            InviteTarget::Group => {
                "INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
            }
            _ => {
                "INSERT INTO community_members (community_id, user_id) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING"
            }
        };
        Ok(self.exec(sql, &[&i(id), &i(user)])? > 0)
    }
    fn insert_group(&mut self, g: &Group, now: u64) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO groups (id, name, owner, created_at) VALUES ($1, $2, $3, $4)",
            &[&i(g.id), &g.name, &i(g.owner), &i(now)],
        )?;
        self.add_member(InviteTarget::Group, g.id, g.owner)?;
        Ok(())
    }
    fn insert_community(&mut self, c: &Community, now: u64) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO communities (id, name, owner, created_at) VALUES ($1, $2, $3, $4)",
            &[&i(c.id), &c.name, &i(c.owner), &i(now)],
        )?;
        self.add_member(InviteTarget::Community, c.id, c.owner)?;
        Ok(())
    }
}
