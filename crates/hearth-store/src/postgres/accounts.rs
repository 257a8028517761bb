//! The accounts area of the store seam on PostgreSQL.
use super::gates;
use super::rows;
use super::tx::{i, Tx};
use crate::domain::model::{AccountChange, SecondFactor, ThrottleRow, User};
use crate::domain::state::store::{AccountsRead, AccountsWrite, SignInHeld, StoreError};

impl AccountsRead for Tx<'_> {
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
    fn identity(&mut self, provider: &str, subject: &str) -> Result<Option<u64>, StoreError> {
        let r = self.row(
            "SELECT user_id FROM identities WHERE provider = $1 AND subject = $2",
            &[&provider, &subject],
        )?;
        Ok(r.map(|r| r.get::<_, i64>(0) as u64))
    }
    fn sign_in_rows(
        &mut self,
        email: &str,
        client: &str,
        with_user: bool,
    ) -> Result<(ThrottleRow, Option<ThrottleRow>, Option<User>), StoreError> {
        gates::sign_in_rows(self, email, client, with_user)
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
}

impl AccountsWrite for Tx<'_> {
    fn user_for_update(&mut self, id: u64) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {} FROM users WHERE id = $1 FOR UPDATE", rows::USER);
        Ok(self.row(&sql, &[&i(id)])?.as_ref().map(rows::user))
    }
    fn user_factors_and_gate_for_update(
        &mut self,
        id: u64,
        email: &str,
        client: &str,
    ) -> Result<SignInHeld, StoreError> {
        gates::user_factors_and_gate_for_update(self, id, email, client)
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
    fn swap_sign_in_row(
        &mut self,
        email: &str,
        client: &str,
        old: Option<&ThrottleRow>,
        new: &ThrottleRow,
        now: u64,
    ) -> Result<bool, StoreError> {
        gates::swap_sign_in_row(self, email, client, old, new, now)
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
}
