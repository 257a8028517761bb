//! Sign-in throttling (DESIGN.md §3): the sign-in gate's policy — a progressive delay per
//! (address, client IP), and an account-wide lock after 100 consecutive failures from
//! anywhere — applied by the writes of the gate's rows (a compare-and-set as an attempt
//! begins, the rows locked in the write that ends it), and the slots an
//! attempt holds while its password is evaluated. The per-IP sign-in budget is charged
//! with the request's other budgets (`api/rate_limits.rs`, the flows' forms).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};

use super::error::Reason;
use super::model::{LockPolicy, SignInGate, ThrottleRow, User};
use super::state::feeds::StepFeeds;
use super::state::{Store, StoreError, WriteTx};
use super::DomainError;
use crate::clock::SharedClock;

/// The per-account policy.
pub const POLICY: LockPolicy = LockPolicy {
    free_failures: 5,
    base_delay_ms: 1000,
    max_delay_ms: 5 * 60 * 1000,
    lock_after: 100,
    lock_ms: 24 * 3600 * 1000,
    stale_in_flight_ms: 60 * 1000,
};

/// The gate, a compare-and-set of the client's row (in a [`Store::write_each`], or inside
/// any write): refuses while the address is locked account-wide or this client of it is
/// delayed, and otherwise takes one of the client's in-flight slots unless all
/// [`LockPolicy::slots`] are taken. Keyed by the address whether
/// or not an account has it, so unknown addresses answer alike.
pub fn begin_in(
    tx: &mut dyn WriteTx,
    email: &str,
    client: &str,
    now: u64,
    p: &LockPolicy,
) -> Result<SignInGate, StoreError> {
    Ok(gate_in(tx, email, client, now, p, false)?.0)
}

/// Rounds the gate reads and swaps before it answers Busy: a lost round means another
/// attempt changed the row meanwhile (took or gave back a slot), so the waiting attempt is
/// woken again or looks again within 100 ms.
const GATE_ROUNDS: usize = 8;

/// [`begin_in`], and with `read_user`, when it allows the attempt, the local account with
/// the address, read with the gate's rows (a sign-in reads it next anyway); and whether the
/// slot it took was the last free one.
fn gate_in(
    tx: &mut dyn WriteTx,
    email: &str,
    client: &str,
    now: u64,
    p: &LockPolicy,
    read_user: bool,
) -> Result<(SignInGate, Option<User>, bool), StoreError> {
    // A compare-and-set: no row is held while the policy runs, so the gate costs a read and
    // a conditional write, and a Busy or Locked answer writes nothing.
    for _ in 0..GATE_ROUNDS {
        let (account, stored, user) = tx.sign_in_rows(email, client, read_user)?;
        let mut row = stored.unwrap_or_default();
        for r in [&account, &row] {
            if let Some(until) = r.locked_until.filter(|u| *u > now) {
                let failures = r.failures;
                return Ok((SignInGate::Locked { failures, until }, None, false));
            }
        }
        // A count older than the stale limit is the leftover of a crash.
        let stale = row.in_flight == 0
            || row
                .in_flight_since
                .is_none_or(|since| since.saturating_add(p.stale_in_flight_ms) <= now);
        let in_flight = if stale { 0 } else { row.in_flight };
        if in_flight >= p.slots(row.failures) {
            return Ok((SignInGate::Busy, None, true));
        }
        row.in_flight = in_flight + 1;
        if stale {
            row.in_flight_since = Some(now);
        }
        if tx.swap_sign_in_row(email, client, stored.as_ref(), &row, now)? {
            return Ok((SignInGate::Allowed, user, full(&row, p)));
        }
    }
    Ok((SignInGate::Busy, None, true))
}

/// Whether an attempt may be waiting for a slot of `row`: only while every slot was taken
/// can one have been answered Busy, and until a slot is given back no count falls (a later
/// slot taken only raises it), so the first give-back after a Busy answer sees it full.
fn full(row: &ThrottleRow, p: &LockPolicy) -> bool {
    row.in_flight >= p.slots(row.failures)
}

/// Gives the slot back and records the outcome: success clears the client's delay and the
/// account-wide count; failure counts one for both, sets the client's delay and, at
/// `lock_after` consecutive failures, the account-wide lock. True when an attempt may be
/// waiting for the slot (see [`Slot::done`]).
pub fn finish_in(
    tx: &mut dyn WriteTx,
    email: &str,
    client: &str,
    ok: bool,
    now: u64,
    p: &LockPolicy,
) -> Result<bool, StoreError> {
    let rows = tx.sign_in_rows_for_update(email, client)?;
    finish_with(tx, email, client, rows, ok, now, p)
}

/// [`finish_in`] over the (account-wide, client) rows the write already holds locked.
pub fn finish_with(
    tx: &mut dyn WriteTx,
    email: &str,
    client: &str,
    (mut account, mut row): (ThrottleRow, ThrottleRow),
    ok: bool,
    now: u64,
    p: &LockPolicy,
) -> Result<bool, StoreError> {
    let waited = full(&row, p);
    row.in_flight = row.in_flight.saturating_sub(1);
    if ok {
        row.failures = 0;
        row.locked_until = None;
        account = ThrottleRow::default();
    } else {
        row.failures += 1;
        row.locked_until = p.delay_until(row.failures, now);
        account.failures += 1;
        if account.failures >= p.lock_after {
            account.locked_until = Some(now + p.lock_ms);
        }
    }
    tx.put_sign_in_rows(email, &[(ACCOUNT, &account), (client, &row)], now)?;
    Ok(waited)
}

/// Gives the slot back and records nothing: the password was right and the attempt stops
/// to ask for the second factor (neither a success, which would clear the delays wrong
/// codes earned, nor a failure of the holder). `row` is the client's row, which the write
/// holds locked.
pub fn release_in(
    tx: &mut dyn WriteTx,
    email: &str,
    client: &str,
    mut row: ThrottleRow,
    now: u64,
) -> Result<bool, StoreError> {
    let waited = full(&row, &POLICY);
    row.in_flight = row.in_flight.saturating_sub(1);
    tx.put_sign_in_rows(email, &[(client, &row)], now)?;
    Ok(waited)
}

/// The client name of the account-wide throttle row.
const ACCOUNT: &str = "*";

/// How long a sign-in waits for a free slot of its account (other attempts in flight) before
/// it is refused. Waiting is on real time: slots free up when real work ends.
pub const SLOT_WAIT: Duration = Duration::from_secs(5);

/// A held sign-in slot of one account. Record the outcome with [`Slot::finish`], or with
/// [`finish_in`] inside the write that acts on it and then [`Slot::done`]; a slot dropped
/// unfinished (the request was cancelled, or failed) is recorded as a failure, so
/// cancelling cannot dodge the count.
#[derive(Debug)]
pub struct Slot {
    store: Store,
    clock: SharedClock,
    email: String,
    client: String,
    waiters: SlotWaiters,
    name: String,
    finished: bool,
}

/// Wake-ups for sign-ins waiting on a slot: a freed slot is announced as a change of the
/// feed named after its (address, client), so waiting attempts re-check the gate at once —
/// on every node of a cluster, whose feeds carry changes between nodes — instead of polling
/// the store (a slower poll still catches anything missed).
///
/// Attempts of one (address, client) that found every slot taken wait in one line per node,
/// first come first served: only the head re-checks the gate, so a freed slot costs one gate
/// write rather than one per waiting attempt (64 sign-ins to one account made 56 writes per
/// sign-in before). The gate in the store stays the only judge of who may run.
#[derive(Debug, Clone)]
pub struct SlotWaiters {
    feeds: Arc<dyn StepFeeds>,
    lines: Arc<Mutex<HashMap<String, Line>>>,
}

/// One line: the lock its head holds, how many attempts stand in it, and, when the last
/// head left with the last free slot, the feed's count its gate read had seen.
#[derive(Debug)]
struct Line {
    head: Arc<tokio::sync::Mutex<()>>,
    standing: usize,
    filled_at: Option<u64>,
}

/// Lines kept at once; past it a waiting attempt re-checks the gate on its own, as every
/// attempt did before lines. Each line holds at least one live request.
const MAX_LINES: usize = 4096;

impl SlotWaiters {
    /// Wake-ups through `feeds`.
    pub fn new(feeds: Arc<dyn StepFeeds>) -> Self {
        Self {
            feeds,
            lines: Arc::default(),
        }
    }

    /// The feed of (`email`, `client`): a hash, so addresses never travel in notices.
    fn name(email: &str, client: &str) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest([email.as_bytes(), b"\0", client.as_bytes()].concat());
        format!("slot {}", hex::encode(digest))
    }

    /// Whether attempts of `name` stand in line now.
    fn has_line(&self, name: &str) -> bool {
        self.lines.lock().is_ok_and(|l| l.contains_key(name))
    }

    /// Records, for the next head of `name`'s line, that a gate read at feed count `seen`
    /// left every slot taken (`Some`), or that slots may be free (`None`).
    fn set_filled(&self, name: &str, filled_at: Option<u64>) {
        if let Some(line) = self
            .lines
            .lock()
            .ok()
            .as_mut()
            .and_then(|l| l.get_mut(name))
        {
            line.filled_at = filled_at;
        }
    }

    /// Whether the gate was last read full at feed count `seen`: then a new head has
    /// nothing to ask until a notice comes.
    fn filled_at(&self, name: &str, seen: u64) -> bool {
        self.lines
            .lock()
            .is_ok_and(|l| l.get(name).and_then(|l| l.filled_at) == Some(seen))
    }

    /// Stands in the line of `name` until first in it; `None` when no line could be kept.
    async fn wait_first(&self, name: &str) -> Option<Place> {
        let (ticket, head) = {
            let mut lines = self.lines.lock().ok()?;
            if !lines.contains_key(name) && lines.len() >= MAX_LINES {
                return None;
            }
            let line = lines.entry(name.to_owned()).or_insert_with(|| Line {
                head: Arc::default(),
                standing: 0,
                filled_at: None,
            });
            line.standing += 1;
            let ticket = Ticket {
                lines: self.lines.clone(),
                name: name.to_owned(),
            };
            (ticket, line.head.clone())
        };
        let first = head.lock_owned().await;
        Some(Place {
            _first: first,
            _ticket: ticket,
        })
    }
}

/// An attempt standing in a line; leaving (even by being cancelled) removes an empty line.
struct Ticket {
    lines: Arc<Mutex<HashMap<String, Line>>>,
    name: String,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Ok(mut lines) = self.lines.lock() {
            if let Some(line) = lines.get_mut(&self.name) {
                line.standing -= 1;
                if line.standing == 0 {
                    lines.remove(&self.name);
                }
            }
        }
    }
}

/// First place in a line; dropping it lets the next attempt check the gate.
struct Place {
    _first: tokio::sync::OwnedMutexGuard<()>,
    _ticket: Ticket,
}

impl Slot {
    /// Waits for and takes a slot of the sign-in gate of (`email`, `client`), or says why
    /// not. `email` is canonical; whether an account has it makes no difference.
    pub async fn take(
        store: &Store,
        clock: &SharedClock,
        waiters: &SlotWaiters,
        email: &str,
        client: &str,
    ) -> Result<Self, DomainError> {
        Ok(
            Self::take_reading(store, clock, waiters, email, client, false)
                .await?
                .0,
        )
    }

    /// [`Slot::take`], and the account with the address, read in the write that takes the
    /// slot when `read_user` (a sign-in reads it next anyway: one round trip to the store,
    /// not two).
    pub async fn take_reading(
        store: &Store,
        clock: &SharedClock,
        waiters: &SlotWaiters,
        email: &str,
        client: &str,
        read_user: bool,
    ) -> Result<(Self, Option<User>), DomainError> {
        let started = Instant::now();
        let name = SlotWaiters::name(email, client);
        let mut freed = waiters
            .feeds
            .subscribe(&name, SLOT_WAIT.as_millis() as u64 * 2);
        // Held from the first busy answer until this attempt leaves.
        let mut place = None;
        // Ask the gate at once, unless attempts of this (address, client) already stand in
        // line: then stand behind them, first come first served.
        let mut wait = waiters.has_line(&name);
        loop {
            if wait {
                let left = SLOT_WAIT.saturating_sub(started.elapsed());
                if left.is_zero() {
                    break;
                }
                // Once first in line, ask again at once (a slot may have freed meanwhile),
                // unless the head before left with the last free slot and no notice came
                // since: that read would only answer Busy (a store read per sign-in).
                if place.is_none() {
                    match tokio::time::timeout(left, waiters.wait_first(&name)).await {
                        Ok(Some(first)) => {
                            place = Some(first);
                            let seen = *freed.borrow_and_update();
                            if waiters.filled_at(&name, seen) {
                                until_freed(&mut freed).await;
                            }
                        }
                        Ok(None) => until_freed(&mut freed).await,
                        Err(_) => break,
                    }
                } else {
                    until_freed(&mut freed).await;
                }
            }
            wait = true;
            // Changes from here on wake the wait above: none is missed.
            let seen = *freed.borrow_and_update();
            let now = clock.now_ms();
            let (e, c) = (email.to_owned(), client.to_owned());
            let (gate, user, filled) = store
                .write_each(move |tx| gate_in(tx, &e, &c, now, &POLICY, read_user))
                .await?;
            if place.is_some() {
                waiters.set_filled(&name, filled.then_some(seen));
            }
            match gate {
                SignInGate::Allowed => {
                    let slot = Self {
                        store: store.clone(),
                        clock: clock.clone(),
                        email: email.to_owned(),
                        client: client.to_owned(),
                        waiters: waiters.clone(),
                        name,
                        finished: false,
                    };
                    return Ok((slot, user));
                }
                SignInGate::Locked { failures, until } => {
                    tracing::info!(target: "hearth::audit", event = "sign_in_throttled", failures, %client);
                    return Err(refusal(failures, until, now));
                }
                SignInGate::Busy => {}
            }
        }
        Err(DomainError::exhausted(
            Reason::AccountThrottled,
            "too many sign-ins for this account are in progress; try again shortly",
        ))
    }

    /// The outcome was committed; nothing more to record. `waited` is what [`finish_in`]
    /// (or [`release_in`]) answered: only then may an attempt wait for this slot, on this
    /// node or another, and only then is it told (a notice costs every node of a cluster a
    /// wake-up; a waiter also looks again every 100 ms).
    pub fn done(mut self, waited: bool) {
        self.finished = true;
        if waited {
            self.waiters.feeds.publish(&self.name);
        }
    }

    /// Records the outcome in its own transaction.
    pub async fn finish(mut self, ok: bool) -> Result<(), DomainError> {
        self.finished = true;
        self.record(ok).await
    }

    /// Writes the outcome and wakes the attempts waiting for this slot (the one path of
    /// `finish` and of a slot dropped unfinished).
    fn record(&self, ok: bool) -> impl std::future::Future<Output = Result<(), DomainError>> {
        let (store, now, waiters) = (
            self.store.clone(),
            self.clock.now_ms(),
            self.waiters.clone(),
        );
        let (email, client, name) = (self.email.clone(), self.client.clone(), self.name.clone());
        async move {
            let waited = store
                .write_counted(move |tx| Ok(finish_in(tx, &email, &client, ok, now, &POLICY)?))
                .await;
            // When the write failed, who may wait is unknown: tell them.
            if !matches!(waited, Ok(false)) {
                waiters.feeds.publish(&name);
            }
            waited.map(drop)
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let failed = self.record(false);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = failed.await;
            });
        }
    }
}

/// Waits for news of a freed slot, or 100 ms (a notice may come from a node that died).
async fn until_freed(freed: &mut tokio::sync::watch::Receiver<u64>) {
    tokio::select! {
        _ = freed.changed() => {}
        () = tokio::time::sleep(Duration::from_millis(100)) => {}
    }
}

/// The error for an account that may not try yet.
pub fn refusal(failures: u32, until: u64, now: u64) -> DomainError {
    let secs = until.saturating_sub(now).div_ceil(1000);
    if failures >= POLICY.lock_after {
        DomainError::exhausted(
            Reason::AccountLocked,
            format!(
                "this account is locked after {} failed sign-ins; reset the password or wait {secs} s",
                POLICY.lock_after
            ),
        )
    } else {
        DomainError::exhausted(
            Reason::AccountThrottled,
            format!("too many failed sign-ins for this account; try again in {secs} s"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn delays_grow_then_lock() {
        assert_eq!(POLICY.locked_until(4, 0), None);
        assert_eq!(POLICY.locked_until(5, 0), Some(1000));
        assert_eq!(POLICY.locked_until(6, 0), Some(2000));
        assert_eq!(POLICY.locked_until(99, 0), Some(POLICY.max_delay_ms));
        assert_eq!(POLICY.locked_until(100, 0), Some(POLICY.lock_ms));
    }

    #[tokio::test]
    async fn a_line_has_one_head_and_leaves_nothing_behind() {
        let feeds = crate::domain::state::feeds::LocalFeeds::new(ManualClock::new(), 10);
        let waiters = SlotWaiters::new(Arc::new(feeds));
        let lines = || waiters.lines.lock().map(|l| l.len()).unwrap_or(usize::MAX);
        let first = waiters.wait_first("a").await;
        assert!(first.is_some());
        // A second attempt waits behind the first; cancelled, it leaves its line.
        let second = tokio::time::timeout(Duration::from_millis(20), waiters.wait_first("a"));
        assert!(second.await.is_err(), "the head holds the line");
        assert_eq!(lines(), 1);
        drop(first);
        assert_eq!(lines(), 0, "an empty line is removed");
        // Past the cap an attempt gets no line (it re-checks the gate on its own).
        let mut held = Vec::new();
        for n in 0..MAX_LINES {
            held.push(waiters.wait_first(&n.to_string()).await);
        }
        assert!(held.iter().all(Option::is_some));
        assert!(waiters.wait_first("one more").await.is_none());
        drop(held);
        assert_eq!(lines(), 0);
    }
}
