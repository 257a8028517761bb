//! The store seam's invites area: invites, friendships, groups and communities.
use super::StoreError;
use crate::domain::model::{Community, Group, Invite, InviteTarget};

/// Reads of the invites area.
pub trait InvitesRead {
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
}

/// Writes of the invites area, inside the caller's one transaction.
pub trait InvitesWrite: InvitesRead {
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
