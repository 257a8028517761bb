//! Sign-in throttling (DESIGN.md §3): the sign-in gate's policy — a progressive delay per
//! (address, client IP), and an account-wide lock after 100 consecutive failures from
//! anywhere — applied by the writes of the gate's rows (a compare-and-set as an attempt
//! begins, the rows locked in the write that ends it), and the slots an
//! attempt holds while its password is evaluated. The per-IP sign-in budget is charged
//! with the request's other budgets (`api/rate_limits.rs`, the flows' forms).
mod slots;

pub use slots::{Slot, SlotWaiters, SLOT_WAIT};

use super::error::Reason;
use super::model::{LockPolicy, SignInGate, ThrottleRow, User};
use super::state::{StoreError, WriteTx};
use super::DomainError;

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
        let row = match admit(&account, &stored.unwrap_or_default(), now, p) {
            Admit::Locked { failures, until } => {
                return Ok((SignInGate::Locked { failures, until }, None, false))
            }
            Admit::Busy => return Ok((SignInGate::Busy, None, true)),
            Admit::Taken(row) => row,
        };
        if tx.swap_sign_in_row(email, client, stored.as_ref(), &row, now)? {
            return Ok((SignInGate::Allowed, user, full(&row, p)));
        }
    }
    Ok((SignInGate::Busy, None, true))
}

/// What the gate's rule makes of the rows it read.
enum Admit {
    Locked {
        failures: u32,
        until: u64,
    },
    Busy,
    /// The client's row with one more slot taken.
    Taken(ThrottleRow),
}

/// The gate's rule over the (account-wide, client) rows: refuses while the address is locked
/// account-wide or this client of it is delayed, and otherwise takes one of the client's
/// slots unless all [`LockPolicy::slots`] are taken.
fn admit(account: &ThrottleRow, row: &ThrottleRow, now: u64, p: &LockPolicy) -> Admit {
    for r in [account, row] {
        if let Some(until) = r.locked_until.filter(|u| *u > now) {
            let failures = r.failures;
            return Admit::Locked { failures, until };
        }
    }
    // A count older than the stale limit is the leftover of a crash.
    let stale = row.in_flight == 0
        || row
            .in_flight_since
            .is_none_or(|since| since.saturating_add(p.stale_in_flight_ms) <= now);
    let in_flight = if stale { 0 } else { row.in_flight };
    if in_flight >= p.slots(row.failures) {
        return Admit::Busy;
    }
    let mut row = *row;
    row.in_flight = in_flight + 1;
    if stale {
        row.in_flight_since = Some(now);
    }
    Admit::Taken(row)
}

/// Whether an attempt may be waiting for a slot of `row`: only while every slot was taken
/// can one have been answered Busy, and until a slot is given back no count falls (a later
/// slot taken only raises it), so the first give-back after a Busy answer sees it full.
fn full(row: &ThrottleRow, p: &LockPolicy) -> bool {
    row.in_flight >= p.slots(row.failures)
}

/// What the write that ended an attempt did with its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freed {
    /// Given back to the gate; `true` when an attempt may be waiting for it (see
    /// [`Slot::done`]).
    Back(bool),
    /// Kept taken, as the gate would have let one more attempt take it, for the next
    /// attempt in this node's line ([`Slot::done`] hands it on).
    HandedOn,
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
    let freed = finish_with(tx, email, client, rows, ok, now, p, false)?;
    Ok(freed == Freed::Back(true))
}

/// [`finish_in`] over the (account-wide, client) rows the write already holds locked; with
/// `hand_on` (an attempt of this node waits for a slot of the client, see
/// [`Slot::may_hand_on`]) the slot stays taken for it when the gate's rule, run on the
/// rows as this write leaves them, would let one more attempt in: the same rows as a give
/// back and a gate's take, without the waiting attempt's read, swap and wake-up.
#[allow(clippy::too_many_arguments)]
pub fn finish_with(
    tx: &mut dyn WriteTx,
    email: &str,
    client: &str,
    (mut account, mut row): (ThrottleRow, ThrottleRow),
    ok: bool,
    now: u64,
    p: &LockPolicy,
    hand_on: bool,
) -> Result<Freed, StoreError> {
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
    let mut freed = Freed::Back(waited);
    if let (true, Admit::Taken(taken)) = (hand_on, admit(&account, &row, now, p)) {
        row = taken;
        freed = Freed::HandedOn;
    }
    tx.put_sign_in_rows(email, &[(ACCOUNT, &account), (client, &row)], now)?;
    Ok(freed)
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

    #[test]
    fn delays_grow_then_lock() {
        assert_eq!(POLICY.locked_until(4, 0), None);
        assert_eq!(POLICY.locked_until(5, 0), Some(1000));
        assert_eq!(POLICY.locked_until(6, 0), Some(2000));
        assert_eq!(POLICY.locked_until(99, 0), Some(POLICY.max_delay_ms));
        assert_eq!(POLICY.locked_until(100, 0), Some(POLICY.lock_ms));
    }
}
