//! The invites area of the store seam on PostgreSQL.
use super::rows;
use super::tx::{i, Tx, LIVE};
use crate::domain::model::{Community, Group, Invite, InviteTarget};
use crate::domain::state::store::{InvitesRead, InvitesWrite, StoreError};

impl InvitesRead for Tx<'_> {
    fn invite_by_hash(&mut self, hash: &[u8; 32]) -> Result<Option<Invite>, StoreError> {
        let sql = format!("SELECT {} FROM invites WHERE code_hash = $1", rows::INVITE);
        Ok(self.row(&sql, &[&&hash[..]])?.as_ref().map(rows::invite))
    }
    fn invites_by(&mut self, creator: u64, limit: u32) -> Result<Vec<Invite>, StoreError> {
        let sql = format!(
            "SELECT {} FROM invites WHERE creator_id = $1 AND revoked_at IS NULL \
             ORDER BY id DESC LIMIT $2",
            rows::INVITE
        );
        Ok(self
            .rows(&sql, &[&i(creator), &i64::from(limit)])?
            .iter()
            .map(rows::invite)
            .collect())
    }
    fn group(&mut self, id: u64) -> Result<Option<Group>, StoreError> {
        let Some(r) = self.row("SELECT name, owner FROM groups WHERE id = $1", &[&i(id)])? else {
            return Ok(None);
        };
        let members = self.ids(
            "SELECT user_id FROM group_members WHERE group_id = $1 ORDER BY user_id LIMIT $2",
            &[&i(id), &i64::from(Group::MEMBERS_SHOWN)],
        )?;
        Ok(Some(Group {
            id,
            name: r.get(0),
            owner: r.get::<_, i64>(1) as u64,
            members,
        }))
    }
    fn community(&mut self, id: u64) -> Result<Option<Community>, StoreError> {
        let r = self.row(
            "SELECT name, owner FROM communities WHERE id = $1",
            &[&i(id)],
        )?;
        Ok(r.map(|r| Community {
            id,
            name: r.get(0),
            owner: r.get::<_, i64>(1) as u64,
        }))
    }
    fn are_friends(&mut self, a: u64, b: u64) -> Result<bool, StoreError> {
        let r = self.row(
            "SELECT 1 FROM friendships WHERE user_a = $1 AND user_b = $2",
            &[&i(a.min(b)), &i(a.max(b))],
        )?;
        Ok(r.is_some())
    }
    fn is_member(&mut self, target: InviteTarget, id: u64, user: u64) -> Result<bool, StoreError> {
        let sql = match target {
            InviteTarget::Group => {
                "SELECT 1 FROM group_members WHERE group_id = $1 AND user_id = $2"
            }
            _ => "SELECT 1 FROM community_members WHERE community_id = $1 AND user_id = $2",
        };
        Ok(self.row(sql, &[&i(id), &i(user)])?.is_some())
    }
}

impl InvitesWrite for Tx<'_> {
    fn insert_invite(&mut self, v: &Invite, now: u64, max_live: u32) -> Result<bool, StoreError> {
        let sql = format!(
            "INSERT INTO invites ({}) \
             SELECT $3::bigint, $4::bytea, $5::text, $1::bigint, $6::text, $7::bigint, \
                    $8::bigint, 0, $9::bigint, NULL, $2::bigint \
             WHERE (SELECT COUNT(*) FROM invites WHERE creator_id = $1 AND {LIVE}) < $10",
            rows::INVITE
        );
        let n = self.exec_unique(
            &sql,
            &[
                &i(v.creator_id),
                &i(now),
                &i(v.id),
                &&v.code_hash[..],
                &v.hint,
                &v.target.as_str(),
                &i(v.target_id),
                &v.max_uses.map(i64::from),
                &i(v.expires_at),
                &i64::from(max_live),
            ],
            "that invite code",
        )?;
        Ok(n > 0)
    }
    fn spend_invite(&mut self, id: u64, now: u64) -> Result<bool, StoreError> {
        let sql = format!("UPDATE invites SET uses = uses + 1 WHERE id = $1 AND {LIVE}");
        Ok(self.exec(&sql, &[&i(id), &i(now)])? > 0)
    }
    fn revoke_invite(&mut self, id: u64, now: u64) -> Result<(), StoreError> {
        self.exec(
            "UPDATE invites SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            &[&i(id), &i(now)],
        )?;
        Ok(())
    }
    fn befriend(&mut self, a: u64, b: u64, now: u64) -> Result<bool, StoreError> {
        Ok(self.exec(
            "INSERT INTO friendships (user_a, user_b, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
            &[&i(a.min(b)), &i(a.max(b)), &i(now)],
        )? > 0)
    }
    fn add_member(&mut self, target: InviteTarget, id: u64, user: u64) -> Result<bool, StoreError> {
        let sql = match target {
            InviteTarget::Group => {
                "INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
            }
            _ => {
                "INSERT INTO community_members (community_id, user_id) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING"
            }
        };
        Ok(self.exec(sql, &[&i(id), &i(user)])? > 0)
    }
    fn insert_group(&mut self, g: &Group, now: u64) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO groups (id, name, owner, created_at) VALUES ($1, $2, $3, $4)",
            &[&i(g.id), &g.name, &i(g.owner), &i(now)],
        )?;
        self.add_member(InviteTarget::Group, g.id, g.owner)?;
        Ok(())
    }
    fn insert_community(&mut self, c: &Community, now: u64) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO communities (id, name, owner, created_at) VALUES ($1, $2, $3, $4)",
            &[&i(c.id), &c.name, &i(c.owner), &i(now)],
        )?;
        self.add_member(InviteTarget::Community, c.id, c.owner)?;
        Ok(())
    }
}
