//! The invites area of the store seam on SQLite: each operation is its table file's function.
use super::Tx;
use crate::domain::model::{Community, Group, Invite, InviteTarget};
use crate::domain::state::store::{InvitesRead, InvitesWrite, StoreError};
use crate::sqlite::invites;

impl InvitesRead for Tx<'_> {
    fn invite_by_hash(&mut self, hash: &[u8; 32]) -> Result<Option<Invite>, StoreError> {
        invites::by_hash(self.0, hash)
    }
    fn invites_by(&mut self, creator: u64, limit: u32) -> Result<Vec<Invite>, StoreError> {
        invites::list_by(self.0, creator, limit)
    }
    fn group(&mut self, id: u64) -> Result<Option<Group>, StoreError> {
        invites::group(self.0, id)
    }
    fn community(&mut self, id: u64) -> Result<Option<Community>, StoreError> {
        invites::community(self.0, id)
    }
    fn are_friends(&mut self, a: u64, b: u64) -> Result<bool, StoreError> {
        invites::friends(self.0, a, b)
    }
    fn is_member(&mut self, target: InviteTarget, id: u64, user: u64) -> Result<bool, StoreError> {
        invites::is_member(self.0, target, id, user)
    }
}

impl InvitesWrite for Tx<'_> {
    fn insert_invite(&mut self, i: &Invite, now: u64, max_live: u32) -> Result<bool, StoreError> {
        invites::insert_capped(self.0, i, now, max_live)
    }
    fn spend_invite(&mut self, id: u64, now: u64) -> Result<bool, StoreError> {
        invites::spend(self.0, id, now)
    }
    fn revoke_invite(&mut self, id: u64, now: u64) -> Result<(), StoreError> {
        invites::revoke(self.0, id, now)
    }
    fn befriend(&mut self, a: u64, b: u64, now: u64) -> Result<bool, StoreError> {
        invites::befriend(self.0, a, b, now)
    }
    fn add_member(&mut self, target: InviteTarget, id: u64, user: u64) -> Result<bool, StoreError> {
        invites::add_member(self.0, target, id, user)
    }
    fn insert_group(&mut self, g: &Group, now: u64) -> Result<(), StoreError> {
        invites::insert_group(self.0, g, now)
    }
    fn insert_community(&mut self, c: &Community, now: u64) -> Result<(), StoreError> {
        invites::insert_community(self.0, c, now)
    }
}
