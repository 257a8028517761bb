//! The codes area of the store seam on SQLite: each operation is its table file's function.
use super::Tx;
use crate::domain::model::{CodeRecord, Mail};
use crate::domain::state::store::{CodesRead, CodesWrite, StoreError};
use crate::sqlite::{codes, outbox};

impl CodesRead for Tx<'_> {
    fn code(&mut self, user_id: u64, purpose: &str) -> Result<Option<CodeRecord>, StoreError> {
        codes::get(self.0, user_id, purpose)
    }
    fn mail_due(&mut self, now: u64, limit: u32) -> Result<Vec<Mail>, StoreError> {
        outbox::due(self.0, now, limit)
    }
    fn mail(&mut self) -> Result<Vec<Mail>, StoreError> {
        outbox::list(self.0)
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
}
