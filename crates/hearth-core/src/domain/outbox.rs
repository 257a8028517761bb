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
    pub to: String,
    pub subject: String,
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
    delivered: Arc<std::sync::atomic::AtomicBool>,
}

impl Outbox {
    /// The outbox over `store`.
    pub fn new(store: Store, clock: SharedClock) -> Self {
        Self {
            store,
            clock,
            wakeup: Arc::new(Notify::new()),
            delivered: Arc::default(),
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

    /// Records a delivery; the mail's text is dropped.
    pub async fn sent(&self, id: u64) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        self.store
            .write(move |tx| tx.mark_mail_sent(id, now))
            .await?;
        self.delivered
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Records a failed attempt; the next one is due at `next` (unix ms).
    pub async fn failed(&self, id: u64, error: String, next: u64) -> Result<(), StoreError> {
        self.store
            .write(move |tx| tx.mark_mail_failed(id, &error, next))
            .await
    }

    /// Drops the text of mail older than `max_age_ms` that was not delivered (its codes
    /// have expired), and scrubs the store's files when any mail text was dropped since the
    /// last sweep (delivered mail included). Returns how many mails it expired.
    pub async fn sweep(&self, max_age_ms: u64) -> Result<u64, StoreError> {
        let cutoff = self.clock.now_ms().saturating_sub(max_age_ms);
        let n = self.store.write(move |tx| tx.expire_mail(cutoff)).await?;
        let delivered = self
            .delivered
            .swap(false, std::sync::atomic::Ordering::Relaxed);
        if n > 0 || delivered {
            self.store.scrub().await?;
        }
        Ok(n)
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
