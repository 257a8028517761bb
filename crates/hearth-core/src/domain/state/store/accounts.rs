//! The store seam's accounts area: accounts: users, pending address changes, second factors, foreign identities and the sign-in gate.
use super::StoreError;
use crate::domain::model::{AccountChange, SecondFactor, ThrottleRow, User};

/// What a password sign-in's final write holds locked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInHeld {
    /// The user as its locked row has it (`None`: no such user).
    pub user: Option<User>,
    /// Whether the user's TOTP is on.
    pub totp: bool,
    /// Whether the user holds a passkey.
    pub passkey: bool,
    /// The gate's (account-wide, client) throttle rows.
    pub rows: (ThrottleRow, ThrottleRow),
}

/// Reads of the accounts area.
pub trait AccountsRead {
    /// A user by id.
    fn user(&mut self, id: u64) -> Result<Option<User>, StoreError>;
    /// A local user by e-mail (case-insensitive).
    fn user_by_email(&mut self, email: &str) -> Result<Option<User>, StoreError>;
    /// A foreign user by home server and remote id.
    fn user_by_home(&mut self, server: &str, remote: u64) -> Result<Option<User>, StoreError>;
    /// All users, oldest first.
    fn users(&mut self) -> Result<Vec<User>, StoreError>;
    /// The changes waiting for an account (none: the default).
    fn account_change(&mut self, user_id: u64) -> Result<AccountChange, StoreError>;
    /// The second factor of `user_id`, enabled or being set up.
    fn second_factor(&mut self, user_id: u64) -> Result<Option<SecondFactor>, StoreError>;
    /// The account waiting to move to `email`.
    fn user_by_pending_email(&mut self, email: &str) -> Result<Option<u64>, StoreError>;
    /// Accounts whose deletion is due at `now`, oldest first, at most `limit`.
    fn accounts_due_for_deletion(&mut self, now: u64, limit: u32) -> Result<Vec<u64>, StoreError>;
    /// The local user of an external provider's account.
    fn identity(&mut self, provider: &str, subject: &str) -> Result<Option<u64>, StoreError>;
    /// The sign-in throttle rows of `email` account-wide (client `*`; the default row when
    /// absent) and of `client` (`None` when absent), not locked, and with `with_user` the
    /// local user with the address ([`AccountsRead::user_by_email`]), in one round trip
    /// where the backend can: what [`AccountsWrite::swap_sign_in_row`] compares against.
    fn sign_in_rows(
        &mut self,
        email: &str,
        client: &str,
        with_user: bool,
    ) -> Result<(ThrottleRow, Option<ThrottleRow>, Option<User>), StoreError>;
    /// (failures, delayed until) of `client` for `email`; client `*` is account-wide.
    fn sign_in_throttle(
        &mut self,
        email: &str,
        client: &str,
    ) -> Result<(u32, Option<u64>), StoreError>;
}

/// Writes of the accounts area, inside the caller's one transaction.
pub trait AccountsWrite: AccountsRead {
    /// A user by id, its row locked until the transaction ends: every write that adds a
    /// session or changes a password takes it first, so they run one at a time per user.
    fn user_for_update(&mut self, id: u64) -> Result<Option<User>, StoreError>;
    /// [`AccountsWrite::user_for_update`], then the sign-in throttle rows of `email` and
    /// `client` ([`AccountsWrite::sign_in_rows_for_update`]) and the user's second factor's
    /// row, all locked ([`SignInHeld`]). What a password sign-in's final write starts with,
    /// in one round trip where the backend can.
    fn user_factors_and_gate_for_update(
        &mut self,
        id: u64,
        email: &str,
        client: &str,
    ) -> Result<SignInHeld, StoreError>;
    /// Inserts a user; a taken e-mail (or foreign identity) is [`StoreError::Conflict`].
    fn insert_user(&mut self, u: &User) -> Result<(), StoreError>;
    /// Atomic: turns the guest account `u.id` into a full one (e-mail, name, password hash)
    /// only while it is still a guest; returns whether it did. A taken e-mail is
    /// [`StoreError::Conflict`].
    fn upgrade_guest(&mut self, u: &User) -> Result<bool, StoreError>;
    /// Replaces the password hash.
    fn set_password_hash(&mut self, id: u64, hash: &str) -> Result<(), StoreError>;
    /// The sign-in throttle rows of `email` account-wide (client `*`) and of `client`
    /// (default rows when absent), locked until the transaction ends: the gate's rule
    /// (`domain/throttle/`) runs on them alone, however many attempts arrive at once.
    fn sign_in_rows_for_update(
        &mut self,
        email: &str,
        client: &str,
    ) -> Result<(ThrottleRow, ThrottleRow), StoreError>;
    /// Atomic compare-and-set: writes `new` as the throttle row of (`email`, `client`) only
    /// while the row still holds `old` (`None`: there is no row); returns whether it did.
    /// What the sign-in gate takes a slot with, after [`AccountsRead::sign_in_rows`].
    fn swap_sign_in_row(
        &mut self,
        email: &str,
        client: &str,
        old: Option<&ThrottleRow>,
        new: &ThrottleRow,
        now: u64,
    ) -> Result<bool, StoreError>;
    /// Writes throttle rows of `email`, each (client, row) (client `*`: account-wide), in
    /// one statement where the backend can; rows untouched for a day that hold no delay go
    /// in the sweep. Inside a transaction the backend may report its error with the next
    /// statement or the commit (the write fails either way).
    fn put_sign_in_rows(
        &mut self,
        email: &str,
        rows: &[(&str, &ThrottleRow)],
        now: u64,
    ) -> Result<(), StoreError>;
    /// Forgets every delay and failure count of `email` (a password reset).
    fn clear_sign_in_throttle(&mut self, email: &str) -> Result<(), StoreError>;
    /// Forgets throttle rows untouched since `before` that hold no live delay.
    fn sweep_sign_in_throttle(&mut self, before: u64) -> Result<u64, StoreError>;
    /// Disables or enables an account.
    fn set_user_disabled(&mut self, id: u64, disabled: bool) -> Result<(), StoreError>;
    /// Deletes an account with its sessions, codes, tokens and invites; returns whether it
    /// existed.
    fn delete_user(&mut self, id: u64) -> Result<bool, StoreError>;
    /// Marks the e-mail address verified.
    fn set_email_verified(&mut self, id: u64) -> Result<(), StoreError>;
    /// Updates a user's display name.
    fn set_user_name(&mut self, id: u64, name: &str) -> Result<(), StoreError>;
    /// Sets the changes waiting for an account; a pending address in use or pending for
    /// another account is [`StoreError::Conflict`].
    fn set_account_change(&mut self, user_id: u64, c: &AccountChange) -> Result<(), StoreError>;
    /// The second factor of `user_id`, its row locked until the transaction ends (a code is
    /// checked and marked used in one write).
    fn second_factor_for_update(
        &mut self,
        user_id: u64,
    ) -> Result<Option<SecondFactor>, StoreError>;
    /// Sets the second factor of `user_id` (`None`: removes it).
    fn set_second_factor(
        &mut self,
        user_id: u64,
        factor: Option<&SecondFactor>,
        now: u64,
    ) -> Result<(), StoreError>;
    /// Moves an account to its pending address, verified; `false` when it waits for no such
    /// address (a taken one is [`StoreError::Conflict`]).
    fn confirm_email_change(&mut self, user_id: u64, email: &str) -> Result<bool, StoreError>;
    /// Links an external provider's account to a user; a taken pair is
    /// [`StoreError::Conflict`].
    fn insert_identity(
        &mut self,
        provider: &str,
        subject: &str,
        user_id: u64,
        now: u64,
    ) -> Result<(), StoreError>;
}
