//! The mail outbox as the domain sees it: mails are queued in the same transaction as the
//! state they report, and the sender (`mail/`) is woken; delivery bookkeeping for the sender
//! and the operator's `mail list`.
use std::sync::Arc;

use tokio::sync::Notify;

use super::model::Mail;
use super::state::{Store, StoreError, WriteTx};
use crate::clock::SharedClock;

/// A mail to queue, in the same transaction as the state it reports.
#[derive(Debug, Clone)]
pub struct OutgoingMail {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

impl OutgoingMail {
    /// Queues the mail in the caller's transaction.
    pub fn enqueue_in(&self, tx: &mut dyn WriteTx, now: u64) -> Result<(), StoreError> {
        tx.enqueue_mail(&self.to, &self.subject, &self.body, now)
    }
}

/// The outbox service.
#[derive(Debug, Clone)]
pub struct Outbox {
    store: Store,
    clock: SharedClock,
    wakeup: Arc<Notify>,
}

impl Outbox {
    /// The outbox over `store`.
    pub fn new(store: Store, clock: SharedClock) -> Self {
        Self {
            store,
            clock,
            wakeup: Arc::new(Notify::new()),
        }
    }

    /// Wakes the sender (call after a transaction that queued mail has committed).
    pub fn queued(&self) {
        self.wakeup.notify_one();
    }

    /// Woken whenever mail is queued.
    pub fn wakeup(&self) -> Arc<Notify> {
        self.wakeup.clone()
    }

    /// Mail due for an attempt now, oldest first.
    pub async fn due(&self, limit: u32) -> Result<Vec<Mail>, StoreError> {
        let now = self.clock.now_ms();
        self.store.read(move |tx| tx.mail_due(now, limit)).await
    }

    /// Records a delivery.
    pub async fn sent(&self, id: u64) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        self.store.write(move |tx| tx.mark_mail_sent(id, now)).await
    }

    /// Records a failed attempt; the next one is due at `next` (unix ms).
    pub async fn failed(&self, id: u64, error: String, next: u64) -> Result<(), StoreError> {
        self.store
            .write(move |tx| tx.mark_mail_failed(id, &error, next))
            .await
    }

    /// Every mail, newest first.
    pub async fn list(&self) -> Result<Vec<Mail>, StoreError> {
        self.store.read(|tx| tx.mail()).await
    }

    /// The clock the outbox runs on.
    pub fn now(&self) -> u64 {
        self.clock.now_ms()
    }
}
