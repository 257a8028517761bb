//! The slots a sign-in attempt holds while its password is evaluated: taking one through
//! the gate, waiting for one in this node's line, handing one on to the next in line and
//! giving one back.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{finish_in, gate_in, refusal, release_in, Freed, POLICY};
use crate::clock::SharedClock;
use crate::domain::error::Reason;
use crate::domain::model::{SignInGate, User};
use crate::domain::state::feeds::StepFeeds;
use crate::domain::state::Store;
use crate::domain::DomainError;

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
    /// The account, as the write that handed this slot on left it (see [`Slot::done`]).
    user: Option<User>,
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
/// head left with the last free slot, the feed's count its gate read had seen; the slots
/// handed on to it that no head has taken yet, what wakes its head for them, and how many
/// slots in a row were handed on rather than given back to the gate.
#[derive(Debug)]
struct Line {
    head: Arc<tokio::sync::Mutex<()>>,
    standing: usize,
    filled_at: Option<u64>,
    handed: Vec<Handed>,
    wake: Arc<tokio::sync::Notify>,
    run: u32,
}

/// Slots handed on in a row to one line before the next freed one goes back to the gate,
/// where every node's waiting attempts may take it: attempts waiting on other nodes of a
/// cluster get a turn at least at every fifth freed slot.
const HAND_ON_RUN: u32 = 4;

/// A slot handed on to a line; one no head took (the line emptied) is given back.
#[derive(Debug)]
struct Handed(Option<Slot>);

impl Drop for Handed {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            slot.give_back();
        }
    }
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

    /// `f` over the line of `name`, if attempts stand in it.
    fn with_line<R>(&self, name: &str, f: impl FnOnce(&mut Line) -> R) -> Option<R> {
        self.lines.lock().ok()?.get_mut(name).map(f)
    }

    /// Records, for the next head of `name`'s line, that a gate read at feed count `seen`
    /// left every slot taken (`Some`), or that slots may be free (`None`).
    fn set_filled(&self, name: &str, filled_at: Option<u64>) {
        self.with_line(name, |l| l.filled_at = filled_at);
    }

    /// Whether the gate was last read full at feed count `seen`: then a new head has
    /// nothing to ask until a notice comes.
    fn filled_at(&self, name: &str, seen: u64) -> bool {
        self.with_line(name, |l| l.filled_at) == Some(Some(seen))
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
                handed: Vec::new(),
                wake: Arc::default(),
                run: 0,
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

    /// What wakes the head of `name`'s line when a slot is handed on to it.
    fn wake_of(&self, name: &str) -> Option<Arc<tokio::sync::Notify>> {
        self.with_line(name, |l| l.wake.clone())
    }

    /// Whether a slot of `name` freed now may be handed on: attempts stand in its line and
    /// fewer than [`HAND_ON_RUN`] slots in a row were.
    fn may_hand_on(&self, name: &str) -> bool {
        self.with_line(name, |l| l.standing > 0 && l.run < HAND_ON_RUN) == Some(true)
    }

    /// Hands `slot` on to the line of `name` and wakes its head; gives it back when no
    /// attempt stands there any more.
    fn hand_on(&self, name: &str, slot: Slot) {
        let handed = Handed(Some(slot));
        let Ok(mut lines) = self.lines.lock() else {
            return;
        };
        match lines.get_mut(name).filter(|l| l.standing > 0) {
            Some(line) => {
                line.run += 1;
                line.handed.push(handed);
                line.wake.notify_one();
            }
            None => {
                // Given back, outside the lock.
                drop(lines);
                drop(handed);
            }
        }
    }

    /// Whether a slot handed on to the line of `name` waits for its head.
    fn has_handed(&self, name: &str) -> bool {
        self.with_line(name, |l| !l.handed.is_empty()) == Some(true)
    }

    /// A slot handed on to the line of `name`, taken by its head.
    fn take_handed(&self, name: &str) -> Option<Slot> {
        let mut handed = self.with_line(name, |l| l.handed.pop())??;
        handed.0.take()
    }

    /// A slot of `name` went back to the gate: the next may be handed on again.
    fn gave_back(&self, name: &str) {
        self.with_line(name, |l| l.run = 0);
    }
}

/// An attempt standing in a line; leaving (even by being cancelled) removes an empty line.
struct Ticket {
    lines: Arc<Mutex<HashMap<String, Line>>>,
    name: String,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut emptied = None;
        if let Ok(mut lines) = self.lines.lock() {
            if let Some(line) = lines.get_mut(&self.name) {
                line.standing -= 1;
                if line.standing == 0 {
                    emptied = lines.remove(&self.name);
                }
            }
        }
        // Slots handed on to an emptied line are given back, outside the lock.
        drop(emptied);
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
        // What wakes this attempt, first in line, for a slot handed on to it.
        let mut wake = None;
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
                            wake = waiters.wake_of(&name);
                            let seen = *freed.borrow_and_update();
                            if !waiters.has_handed(&name) && waiters.filled_at(&name, seen) {
                                until_freed(&mut freed, wake.as_deref()).await;
                            }
                        }
                        Ok(None) => until_freed(&mut freed, None).await,
                        Err(_) => break,
                    }
                } else {
                    until_freed(&mut freed, wake.as_deref()).await;
                }
                // A slot an attempt of this node handed on: taken without the gate, with the
                // account that attempt's write held locked, unless its address changed.
                if let Some(mut slot) = place.as_ref().and_then(|_| waiters.take_handed(&name)) {
                    let carried = slot.user.take().filter(|u| {
                        u.email
                            .as_deref()
                            .is_some_and(|a| a.eq_ignore_ascii_case(email))
                    });
                    let e = email.to_owned();
                    let user = match (read_user, carried) {
                        (false, _) => Ok(None),
                        (true, Some(user)) => Ok(Some(user)),
                        (true, None) => store.read(move |tx| tx.user_by_email(&e)).await,
                    };
                    return match user {
                        Ok(user) => Ok((slot, user)),
                        Err(e) => {
                            slot.give_back();
                            Err(e.into())
                        }
                    };
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
                        user: None,
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

    /// Whether the write that ends this attempt may hand its slot on (see [`finish_with`]):
    /// attempts of this node wait in its line.
    pub fn may_hand_on(&self) -> bool {
        self.waiters.may_hand_on(&self.name)
    }

    /// The outcome was committed; nothing more to record. `freed` is what [`finish_with`]
    /// (or [`release_in`], as [`Freed::Back`]) answered. A slot given back with attempts
    /// maybe waiting, on this node or another, is announced (a notice costs every node of a
    /// cluster a wake-up; a waiter also looks again every 100 ms); one kept taken goes to
    /// the head of this node's line with `user`, the account as the write left it (`None`:
    /// that attempt reads it).
    pub fn done(mut self, freed: Freed, user: Option<User>) {
        match freed {
            Freed::Back(waited) => {
                self.finished = true;
                self.waiters.gave_back(&self.name);
                if waited {
                    self.waiters.feeds.publish(&self.name);
                }
            }
            // This slot, still taken and unfinished, goes to whoever takes it from the line.
            Freed::HandedOn => {
                self.user = user;
                let (waiters, name) = (self.waiters.clone(), self.name.clone());
                waiters.hand_on(&name, self);
            }
        }
    }

    /// Gives a slot handed on that no attempt took back to the gate, recording nothing.
    fn give_back(mut self) {
        self.finished = true;
        detach(self.record(None));
    }

    /// Records the outcome in its own transaction.
    pub async fn finish(mut self, ok: bool) -> Result<(), DomainError> {
        self.finished = true;
        self.record(Some(ok)).await
    }

    /// Gives the slot back with the outcome (`None`: recording nothing) and wakes the
    /// attempts waiting for it (the one path of `finish`, of a slot dropped unfinished and
    /// of one handed on that no attempt took).
    fn record(
        &self,
        outcome: Option<bool>,
    ) -> impl std::future::Future<Output = Result<(), DomainError>> {
        let (store, now, waiters) = (
            self.store.clone(),
            self.clock.now_ms(),
            self.waiters.clone(),
        );
        let (email, client, name) = (self.email.clone(), self.client.clone(), self.name.clone());
        async move {
            let waited = store
                .write_counted(move |tx| {
                    Ok::<_, DomainError>(match outcome {
                        Some(ok) => finish_in(tx, &email, &client, ok, now, &POLICY)?,
                        None => {
                            let (_, row) = tx.sign_in_rows_for_update(&email, &client)?;
                            release_in(tx, &email, &client, row, now)?
                        }
                    })
                })
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
        detach(self.record(Some(false)));
    }
}

/// Runs `write` on its own, when there is a runtime to run it.
fn detach(write: impl std::future::Future<Output = Result<(), DomainError>> + Send + 'static) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            let _ = write.await;
        });
    }
}

/// Waits for news of a freed slot, for a slot handed on to this line's head (`handed`), or
/// 100 ms (a notice may come from a node that died).
async fn until_freed(
    freed: &mut tokio::sync::watch::Receiver<u64>,
    handed: Option<&tokio::sync::Notify>,
) {
    let handed = async {
        match handed {
            Some(n) => n.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = freed.changed() => {}
        () = handed => {}
        () = tokio::time::sleep(Duration::from_millis(100)) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

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
