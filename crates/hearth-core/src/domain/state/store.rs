//! The store seam: the domain reads and writes state only through [`ReadTx`] and [`WriteTx`],
//! run by a [`Backend`] (`hearth-store`: SQLite, or PostgreSQL for a cluster). Each rule that guards a write is one
//! named atomic operation here, so no rule depends on one writer ordering reads and writes.
use std::fmt;
use std::path::PathBuf;

use super::super::model::{
    AccessToken, AccountChange, CodeRecord, Community, Group, Invite, InviteTarget, KeyRotation,
    Mail, Peer, SecondFactor, Session, SessionCredential, ThrottleRow, User,
};

/// A storage failure. Callers map it to INTERNAL unless a variant says otherwise.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend said no (its message; never a secret).
    #[error("database error: {0}")]
    Backend(String),
    /// A uniqueness rule failed (the thing is named).
    #[error("{0} is already taken")]
    Conflict(&'static str),
    /// The database belongs to a newer Hearth.
    #[error("the database {path} has schema version {found}, but this Hearth knows only up to {known}: it was written by a newer Hearth. Run that version, or restore a backup")]
    TooNew {
        path: PathBuf,
        /// Its version.
        found: i64,
        /// Ours.
        known: i64,
    },
    /// The backend is gone (shutting down, or its writer died).
    #[error("the database is closed")]
    Closed,
    /// The database cannot be reached right now (a lost connection, a restart); calls
    /// answer UNAVAILABLE while the backend reconnects.
    #[error("the database cannot be reached: {0}")]
    Unreachable(String),
    /// A write lost its race with parallel writes of the same rows too often; trying again
    /// later may succeed.
    #[error("the database kept refusing this write under contention")]
    Contended,
}

/// Read operations, per table.
pub trait ReadTx {
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
    /// What the credential check needs of the session whose token hashes to `hash`.
    fn session_credential(
        &mut self,
        hash: &[u8; 32],
    ) -> Result<Option<SessionCredential>, StoreError>;
    /// A session by id.
    fn session(&mut self, id: u64) -> Result<Option<Session>, StoreError>;
    /// How many sessions of `user_id`, and of personal access token `token_id`, are live
    /// at `now` (the session caps count them inside the write that inserts one).
    fn live_sessions(
        &mut self,
        user_id: u64,
        token_id: Option<u64>,
        now: u64,
    ) -> Result<(u32, u32), StoreError>;
    /// The ids of the `n` least recently active live sessions of `user_id` (of personal
    /// access token `token_id` only, when given).
    fn least_active_sessions(
        &mut self,
        user_id: u64,
        token_id: Option<u64>,
        now: u64,
        n: u32,
    ) -> Result<Vec<u64>, StoreError>;
    /// The local user of an external provider's account.
    fn identity(&mut self, provider: &str, subject: &str) -> Result<Option<u64>, StoreError>;
    /// A user's sessions, newest first.
    fn sessions_of(&mut self, user_id: u64) -> Result<Vec<Session>, StoreError>;
    /// The live code for (user, purpose), if any (expired ones included; callers check).
    fn code(&mut self, user_id: u64, purpose: &str) -> Result<Option<CodeRecord>, StoreError>;
    /// Mail due for an attempt at `now`, oldest first.
    fn mail_due(&mut self, now: u64, limit: u32) -> Result<Vec<Mail>, StoreError>;
    /// All mail, newest first.
    fn mail(&mut self) -> Result<Vec<Mail>, StoreError>;
    /// One peer by server_id.
    fn peer(&mut self, server_id: &str) -> Result<Option<Peer>, StoreError>;
    /// Every peer, by name.
    fn peers(&mut self) -> Result<Vec<Peer>, StoreError>;
    /// The (server_id, expiry) of a peer token.
    fn peer_token(&mut self, hash: &[u8; 32]) -> Result<Option<(String, u64)>, StoreError>;
    /// This node's key rotations, oldest first.
    fn key_rotations(&mut self) -> Result<Vec<KeyRotation>, StoreError>;
    /// The node secret `name`, if it exists (read-only; see `WriteTx::node_secret`).
    fn stored_secret(&mut self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// The highest snowflake id stored (0 when empty).
    fn highest_id(&mut self) -> Result<u64, StoreError>;
    /// Live sessions, queued mails and the oldest queued mail's time, for metrics.
    fn gauges(&mut self, now: u64) -> Result<Gauges, StoreError>;
    /// (failures, delayed until) of `client` for `email`; client `*` is account-wide.
    fn sign_in_throttle(
        &mut self,
        email: &str,
        client: &str,
    ) -> Result<(u32, Option<u64>), StoreError>;

    /// The personal access token whose value hashes to `hash`.
    fn access_token_by_hash(&mut self, hash: &[u8; 32]) -> Result<Option<AccessToken>, StoreError>;
    /// A personal access token by uuid.
    fn access_token(&mut self, uuid: &str) -> Result<Option<AccessToken>, StoreError>;
    /// A user's personal access tokens, newest first.
    fn access_tokens_of(&mut self, user_id: u64) -> Result<Vec<AccessToken>, StoreError>;

    /// The invite whose code hashes to `hash`.
    fn invite_by_hash(&mut self, hash: &[u8; 32]) -> Result<Option<Invite>, StoreError>;
    /// A creator's invites that were not revoked, newest first, at most `limit`.
    fn invites_by(&mut self, creator: u64, limit: u32) -> Result<Vec<Invite>, StoreError>;
    /// A group with up to [`Group::MEMBERS_SHOWN`] members.
    fn group(&mut self, id: u64) -> Result<Option<Group>, StoreError>;
    fn community(&mut self, id: u64) -> Result<Option<Community>, StoreError>;
    /// Whether two users are friends.
    fn are_friends(&mut self, a: u64, b: u64) -> Result<bool, StoreError>;
    /// Whether `user` is a member of the group or community `id`.
    fn is_member(&mut self, target: InviteTarget, id: u64, user: u64) -> Result<bool, StoreError>;
    /// The live short-lived value of (`space`, `key`) at `now`.
    fn short_lived(
        &mut self,
        space: &str,
        key: &[u8; 32],
        now: u64,
    ) -> Result<Option<Vec<u8>>, StoreError>;
}

/// Write operations, per table; every method runs inside the caller's one transaction.
pub trait WriteTx: ReadTx {
    /// A user by id, its row locked until the transaction ends: every write that adds a
    /// session or changes a password takes it first, so they run one at a time per user.
    fn user_for_update(&mut self, id: u64) -> Result<Option<User>, StoreError>;
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
    /// (`domain/throttle.rs`) runs on them alone, however many attempts arrive at once.
    fn sign_in_rows_for_update(
        &mut self,
        email: &str,
        client: &str,
    ) -> Result<(ThrottleRow, ThrottleRow), StoreError>;
    /// Writes throttle rows of `email`, each (client, row) (client `*`: account-wide), in
    /// one statement where the backend can; rows untouched for a day that hold no delay go
    /// in the sweep.
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
    fn insert_session(&mut self, s: &Session) -> Result<(), StoreError>;
    /// Atomic: inserts a session only while its user's password hash is still
    /// `password_hash` (the one the sign-in verified), so no session made with a password
    /// outlives a reset of it. Returns whether it inserted.
    fn insert_session_if_password(
        &mut self,
        s: &Session,
        password_hash: &str,
    ) -> Result<bool, StoreError>;
    /// Deletes the listed sessions of `user_id`; returns the ids that were deleted.
    fn delete_sessions_of(&mut self, user_id: u64, ids: &[u64]) -> Result<Vec<u64>, StoreError>;
    /// Deletes every session of `user_id` except `keep`; returns the deleted ids.
    fn delete_all_sessions_of(
        &mut self,
        user_id: u64,
        keep: Option<u64>,
    ) -> Result<Vec<u64>, StoreError>;
    /// Deletes one session by id; returns whether it existed.
    fn delete_session(&mut self, id: u64) -> Result<bool, StoreError>;
    /// Records activity at `now` (never moves `last_active` back: stamps arrive in batches).
    fn touch_session(&mut self, id: u64, now: u64) -> Result<(), StoreError>;
    /// Atomic compare-and-swap: gives session `id` the token hash `new` only if its hash is
    /// still `presented`; returns whether it did.
    fn swap_session_token(
        &mut self,
        id: u64,
        presented: &[u8; 32],
        new: &[u8; 32],
        now: u64,
    ) -> Result<bool, StoreError>;

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

    /// The node secret `name`, created from `make` on first use.
    fn node_secret(
        &mut self,
        name: &str,
        make: &mut dyn FnMut() -> Vec<u8>,
    ) -> Result<Vec<u8>, StoreError>;

    /// Replaces the node secret `name` (a key rotation updates the cluster's public key).
    fn set_node_secret(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError>;

    /// Inserts or replaces a peer row.
    fn put_peer(&mut self, p: &Peer) -> Result<(), StoreError>;
    /// Stores a peer token hash for `server_id`.
    fn insert_peer_token(
        &mut self,
        hash: &[u8; 32],
        server_id: &str,
        expires_at: u64,
    ) -> Result<(), StoreError>;
    /// Atomic delete-returning: removes the peer token and returns its (server_id, expiry),
    /// so of many callers presenting one token exactly one gets it.
    fn take_peer_token(&mut self, hash: &[u8; 32]) -> Result<Option<(String, u64)>, StoreError>;

    /// Atomic: records a federation nonce; `Conflict` when it was used before. Also forgets
    /// nonces whose tokens expired.
    fn use_nonce(
        &mut self,
        origin: &str,
        nonce: &[u8],
        keep_until: u64,
        now: u64,
    ) -> Result<(), StoreError>;

    /// Appends a key rotation record.
    fn insert_key_rotation(&mut self, r: &KeyRotation) -> Result<(), StoreError>;

    /// Atomic: leases a free snowflake worker number for `holder` until `expires_at`
    /// (expired leases are free), or renews `holder`'s lease on `worker` if given.
    fn lease_id_worker(
        &mut self,
        holder: &str,
        renew: Option<u16>,
        now: u64,
        expires_at: u64,
    ) -> Result<Option<u16>, StoreError>;
    /// Gives a worker lease back.
    fn release_id_worker(&mut self, worker: u16, holder: &str) -> Result<(), StoreError>;
    /// The live short-lived values of (`space`, each of `keys`) at `now`, in the keys'
    /// order, their rows locked until the transaction ends, so a read-change-write of them
    /// runs alone. Callers pass keys sorted, so two writers never deadlock.
    fn short_lived_for_update(
        &mut self,
        space: &str,
        keys: &[[u8; 32]],
        now: u64,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError>;
    /// Stores short-lived values (key, value) until `expires_at` (and sweeps some expired
    /// ones), in one statement where the backend can.
    fn put_short_lived(
        &mut self,
        space: &str,
        values: &[([u8; 32], Vec<u8>)],
        expires_at: u64,
        now: u64,
    ) -> Result<(), StoreError>;
    /// Atomic: takes or renews the lease of job `name` for `holder` until `expires_at`,
    /// unless another holder's lease is still live at `now`; returns whether `holder` holds it.
    fn hold_job(
        &mut self,
        name: &str,
        holder: &str,
        now: u64,
        expires_at: u64,
    ) -> Result<bool, StoreError>;

    /// Atomic: inserts a personal access token unless its owner already has `max`; returns
    /// whether it inserted.
    fn insert_access_token(&mut self, t: &AccessToken, max: u32) -> Result<bool, StoreError>;
    /// Writes a token's name, value hash, scopes and expiry (read it in the same
    /// transaction first, so no parallel change is lost).
    fn update_access_token(&mut self, t: &AccessToken) -> Result<(), StoreError>;
    /// Records a use of a token.
    fn touch_access_token(&mut self, id: u64, now: u64, ip: Option<&str>)
        -> Result<(), StoreError>;
    /// Deletes a token; returns whether it existed.
    fn delete_access_token(&mut self, id: u64) -> Result<bool, StoreError>;
    /// Atomic: inserts a session made from token `s.access_token_id` only while that token
    /// still has the value `token_hash` and outlives the session; returns whether it did.
    fn insert_session_for_token(
        &mut self,
        s: &Session,
        token_hash: &[u8; 32],
    ) -> Result<bool, StoreError>;
    /// Deletes every session made from token `token_id`; returns their ids.
    fn delete_sessions_of_token(&mut self, token_id: u64) -> Result<Vec<u64>, StoreError>;

    /// Atomic: inserts an invite unless its creator has `max_live` live ones; returns
    /// whether it inserted.
    fn insert_invite(&mut self, i: &Invite, now: u64, max_live: u32) -> Result<bool, StoreError>;
    /// Atomic: spends one use of invite `id` if it is live (not revoked, expired or used
    /// up) at `now`; returns whether it did. Of many parallel callers on a one-use invite,
    /// exactly one gets `true`.
    fn spend_invite(&mut self, id: u64, now: u64) -> Result<bool, StoreError>;
    fn revoke_invite(&mut self, id: u64, now: u64) -> Result<(), StoreError>;
    /// Makes two users friends; false when they already were.
    fn befriend(&mut self, a: u64, b: u64, now: u64) -> Result<bool, StoreError>;
    /// Adds `user` to the group or community `id`; false when already a member.
    fn add_member(&mut self, target: InviteTarget, id: u64, user: u64) -> Result<bool, StoreError>;
    /// Inserts a group, its owner its first member.
    fn insert_group(&mut self, g: &Group, now: u64) -> Result<(), StoreError>;
    /// Inserts a community, its owner its first member.
    fn insert_community(&mut self, c: &Community, now: u64) -> Result<(), StoreError>;
}

/// Figures the store keeps for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Sessions not yet expired.
    pub active_sessions: u64,
    /// Mails waiting to be delivered.
    pub outbox_depth: u64,
    /// When the oldest of them was queued (unix ms).
    pub outbox_oldest: Option<u64>,
}

/// Time spent in store operations, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// Read operations so far.
    pub reads: u64,
    /// Their total time (µs), queueing included.
    pub read_micros: u64,
    /// Write transactions so far.
    pub writes: u64,
    /// Their total time (µs), queueing for the writer included.
    pub write_micros: u64,
}

/// A job for the backend's writer: returns true to commit, false to roll back. A backend
/// may run it more than once, each time in a fresh transaction (PostgreSQL retries one that
/// lost a serialization race); only the last run's transaction commits.
pub type WriteJob = Box<dyn FnMut(&mut dyn WriteTx) -> bool + Send>;
/// A job for one of the backend's readers.
pub type ReadJob = Box<dyn FnOnce(&mut dyn ReadTx) + Send>;

/// What a storage backend provides: one write transaction at a time per job, and reads.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + fmt::Debug {
    /// Runs `job` in one write transaction, isolated from every other (serializable);
    /// commits if it returns true.
    async fn write(&self, job: WriteJob) -> Result<(), StoreError>;
    /// Runs `job`, whose operations each lock the rows they read and write (the
    /// `*_for_update` operations of [`WriteTx`] and single-statement ones), in one write
    /// transaction that needs no further isolation: hot rows (a client's budget, the
    /// sign-in gate) queue on their row locks instead of retrying. By default, [`Backend::write`].
    async fn write_locked(&self, job: WriteJob) -> Result<(), StoreError> {
        self.write(job).await
    }
    /// [`Backend::write_locked`] whose commit is as durable as [`Backend::write`]'s: for a
    /// job whose reads all lock their rows and that writes what must not be lost (a
    /// sign-in's session, behind its user's row lock).
    async fn write_rows(&self, job: WriteJob) -> Result<(), StoreError> {
        self.write(job).await
    }
    /// Runs `job` on a read-only snapshot.
    async fn read(&self, job: ReadJob) -> Result<(), StoreError>;
    /// Runs `job`, a point lookup (a few probes of unique indexes, never a scan), where it
    /// costs least. By default it is just a read.
    async fn lookup(&self, job: ReadJob) -> Result<(), StoreError> {
        self.read(job).await
    }
    /// Whether the backend can still serve (the writer is alive).
    fn is_ready(&self) -> bool;
    /// Makes sure rewritten or deleted data no longer lingers in the backend's files (for
    /// SQLite: checkpoints and truncates the write-ahead log).
    async fn scrub(&self) -> Result<(), StoreError>;
    /// Stops accepting writes.
    fn close(&self);
}
