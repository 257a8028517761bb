//! The store seam's codes area: one-time codes (verification, reset, change of address) and the mail outbox that carries them.
use super::StoreError;
use crate::domain::model::{CodeRecord, Mail};

/// Reads of the codes area.
pub trait CodesRead {
    /// The live code for (user, purpose), if any (expired ones included; callers check).
    fn code(&mut self, user_id: u64, purpose: &str) -> Result<Option<CodeRecord>, StoreError>;
    /// Mail due for an attempt at `now`, oldest first.
    fn mail_due(&mut self, now: u64, limit: u32) -> Result<Vec<Mail>, StoreError>;
    /// All mail, newest first.
    fn mail(&mut self) -> Result<Vec<Mail>, StoreError>;
}

/// Writes of the codes area, inside the caller's one transaction.
pub trait CodesWrite: CodesRead {
    /// Atomic: issues a code for (user, purpose) unless `max_per_hour` were issued in the
    /// current hour; a code replacing a live one keeps its remaining tries. Returns whether
    /// it issued.
    fn issue_code(
        &mut self,
        user_id: u64,
        purpose: &str,
        c: &CodeRecord,
        now: u64,
        max_per_hour: u32,
    ) -> Result<bool, StoreError>;
    /// Atomic: deletes the live code whose HMAC is `mac`; returns whether it did.
    fn take_code(
        &mut self,
        user_id: u64,
        purpose: &str,
        mac: &[u8; 32],
        now: u64,
    ) -> Result<bool, StoreError>;
    /// Atomic: spends one try of the live code for (user, purpose) and returns it, or `None`
    /// when there is no live code with tries left. Only a returned code may be compared.
    fn spend_code_try(
        &mut self,
        user_id: u64,
        purpose: &str,
        now: u64,
    ) -> Result<Option<CodeRecord>, StoreError>;
    /// Queues a mail for sending now.
    fn enqueue_mail(
        &mut self,
        recipient: &str,
        subject: &str,
        body: &str,
        now: u64,
    ) -> Result<(), StoreError>;
    /// Marks a mail sent and drops its text (the envelope stays).
    fn mark_mail_sent(&mut self, id: u64, now: u64) -> Result<(), StoreError>;
    /// Drops the text of undelivered mail queued at or before `cutoff` and stops retrying
    /// it; returns how many.
    fn expire_mail(&mut self, cutoff: u64) -> Result<u64, StoreError>;
    /// Records a failed attempt and when to try again.
    fn mark_mail_failed(&mut self, id: u64, error: &str, next: u64) -> Result<(), StoreError>;
}
