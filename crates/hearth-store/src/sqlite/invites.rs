//! The `invites` table and what invites lead to: `friendships`, `groups` (+ members) and
//! `communities` (+ members).
use crate::sqlite::db_err;
use rusqlite::{params, Connection, Row};

use super::{optional, unique, StoreError};
use crate::domain::model::{Community, Group, Invite, InviteTarget};

const COLUMNS: &str = "id, code_hash, hint, creator_id, target, target_id, max_uses, uses, \
                       expires_at, revoked_at, created_at";

fn from_row(r: &Row<'_>) -> Result<Invite, rusqlite::Error> {
    let hash: Vec<u8> = r.get(1)?;
    let target: String = r.get(4)?;
    Ok(Invite {
        id: r.get::<_, i64>(0)? as u64,
        code_hash: hash.try_into().unwrap_or([0; 32]),
        hint: r.get(2)?,
        creator_id: r.get::<_, i64>(3)? as u64,
        target: InviteTarget::parse(&target).unwrap_or(InviteTarget::User),
        target_id: r.get::<_, i64>(5)? as u64,
        max_uses: r.get(6)?,
        uses: r.get(7)?,
        expires_at: r.get::<_, i64>(8)? as u64,
        revoked_at: r.get::<_, Option<i64>>(9)?.map(|v| v as u64),
        created_at: r.get::<_, i64>(10)? as u64,
    })
}

/// The SQL for "this invite can still be used at ?now".
const LIVE: &str =
    "revoked_at IS NULL AND expires_at > ?2 AND (max_uses IS NULL OR uses < max_uses)";

/// Inserts `i` unless its creator has `max_live` live invites; returns whether it did.
pub fn insert_capped(
    tx: &Connection,
    i: &Invite,
    now: u64,
    max_live: u32,
) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            &format!(
                "INSERT INTO invites ({COLUMNS}) \
                 SELECT ?3, ?4, ?5, ?1, ?6, ?7, ?8, 0, ?9, NULL, ?2 \
                 WHERE (SELECT COUNT(*) FROM invites WHERE creator_id = ?1 AND {LIVE}) < ?10"
            ),
            params![
                i.creator_id as i64,
                now as i64,
                i.id as i64,
                &i.code_hash[..],
                i.hint,
                i.target.as_str(),
                i.target_id as i64,
                i.max_uses,
                i.expires_at as i64,
                max_live,
            ],
        )
        .map_err(|e| unique(e, "that invite code"))?;
    Ok(n > 0)
}

/// The invite whose code hashes to `hash`.
pub fn by_hash(c: &Connection, hash: &[u8; 32]) -> Result<Option<Invite>, StoreError> {
    optional(c.query_row(
        &format!("SELECT {COLUMNS} FROM invites WHERE code_hash = ?1"),
        [&hash[..]],
        from_row,
    ))
}

/// A creator's invites that were not revoked, newest first, at most `limit`.
pub fn list_by(c: &Connection, creator: u64, limit: u32) -> Result<Vec<Invite>, StoreError> {
    let mut stmt = c
        .prepare(&format!(
            "SELECT {COLUMNS} FROM invites WHERE creator_id = ?1 AND revoked_at IS NULL \
         ORDER BY id DESC LIMIT ?2"
        ))
        .map_err(db_err)?;
    let rows = stmt
        .query_map(params![creator as i64, limit], from_row)
        .map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

/// Spends one use of the live invite `id`; returns whether it could.
pub fn spend(tx: &Connection, id: u64, now: u64) -> Result<bool, StoreError> {
    Ok(tx
        .execute(
            &format!("UPDATE invites SET uses = uses + 1 WHERE id = ?1 AND {LIVE}"),
            params![id as i64, now as i64],
        )
        .map_err(db_err)?
        > 0)
}

/// Revokes invite `id`.
pub fn revoke(tx: &Connection, id: u64, now: u64) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE invites SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id as i64, now as i64],
    )
    .map_err(db_err)?;
    Ok(())
}

/// Makes two users friends; returns false when they already were.
pub fn befriend(tx: &Connection, a: u64, b: u64, now: u64) -> Result<bool, StoreError> {
    let (lo, hi) = (a.min(b) as i64, a.max(b) as i64);
    Ok(tx
        .execute(
            "INSERT OR IGNORE INTO friendships (user_a, user_b, created_at) VALUES (?1, ?2, ?3)",
            params![lo, hi, now as i64],
        )
        .map_err(db_err)?
        > 0)
}

/// Whether two users are friends.
pub fn friends(c: &Connection, a: u64, b: u64) -> Result<bool, StoreError> {
    let (lo, hi) = (a.min(b) as i64, a.max(b) as i64);
    Ok(optional(c.query_row(
        "SELECT 1 FROM friendships WHERE user_a = ?1 AND user_b = ?2",
        params![lo, hi],
        |_| Ok(()),
    ))?
    .is_some())
}

/// Inserts a group with its owner as the first member.
pub fn insert_group(tx: &Connection, g: &Group, now: u64) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO groups (id, name, owner, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![g.id as i64, g.name, g.owner as i64, now as i64],
    )
    .map_err(db_err)?;
    add_member(tx, InviteTarget::Group, g.id, g.owner)?;
    Ok(())
}

/// Inserts a community with its owner as the first member.
pub fn insert_community(tx: &Connection, c: &Community, now: u64) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO communities (id, name, owner, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![c.id as i64, c.name, c.owner as i64, now as i64],
    )
    .map_err(db_err)?;
    add_member(tx, InviteTarget::Community, c.id, c.owner)?;
    Ok(())
}

/// Adds a member to a group or community; returns false when already one.
pub fn add_member(
    tx: &Connection,
    kind: InviteTarget,
    target: u64,
    user: u64,
) -> Result<bool, StoreError> {
    let sql = match kind {
        InviteTarget::Group => {
            "INSERT OR IGNORE INTO group_members (group_id, user_id) VALUES (?1, ?2)"
        }
        _ => "INSERT OR IGNORE INTO community_members (community_id, user_id) VALUES (?1, ?2)",
    };
    Ok(tx
        .execute(sql, params![target as i64, user as i64])
        .map_err(db_err)?
        > 0)
}

/// A group with up to [`Group::MEMBERS_SHOWN`] members.
pub fn group(c: &Connection, id: u64) -> Result<Option<Group>, StoreError> {
    let Some((name, owner)) = optional(c.query_row(
        "SELECT name, owner FROM groups WHERE id = ?1",
        [id as i64],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)),
    ))?
    else {
        return Ok(None);
    };
    let mut stmt = c
        .prepare("SELECT user_id FROM group_members WHERE group_id = ?1 ORDER BY user_id LIMIT ?2")
        .map_err(db_err)?;
    let members = stmt
        .query_map(params![id as i64, Group::MEMBERS_SHOWN], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(db_err)?
        .map(|r| r.map(|v| v as u64))
        .collect::<Result<_, _>>()
        .map_err(db_err)?;
    Ok(Some(Group {
        id,
        name,
        owner,
        members,
    }))
}

pub fn community(c: &Connection, id: u64) -> Result<Option<Community>, StoreError> {
    optional(c.query_row(
        "SELECT name, owner FROM communities WHERE id = ?1",
        [id as i64],
        |r| {
            Ok(Community {
                id,
                name: r.get(0)?,
                owner: r.get::<_, i64>(1)? as u64,
            })
        },
    ))
}

/// Whether `user` is a member of the group or community `target`.
pub fn is_member(
    c: &Connection,
    kind: InviteTarget,
    target: u64,
    user: u64,
) -> Result<bool, StoreError> {
    let sql = match kind {
        InviteTarget::Group => "SELECT 1 FROM group_members WHERE group_id = ?1 AND user_id = ?2",
        _ => "SELECT 1 FROM community_members WHERE community_id = ?1 AND user_id = ?2",
    };
    Ok(optional(c.query_row(sql, params![target as i64, user as i64], |_| Ok(())))?.is_some())
}
