//! The codes area of the store seam on PostgreSQL.
use super::gates;
use super::rows;
use super::tx::{i, Tx, REDACTED};
use crate::domain::model::{CodeRecord, Mail};
use crate::domain::state::store::{CodesRead, CodesWrite, StoreError};

impl CodesRead for Tx<'_> {
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
}

impl CodesWrite for Tx<'_> {
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
}
