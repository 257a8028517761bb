//! Invites (tangle.client.auth): codes that make the user who uses them a friend of the
//! creator, a member of a group or community, or (REGISTRATION) let them sign up on a node
//! whose registration is `invite`. Codes are random (16 base62 characters, 95 bits), shown
//! once, and looked up by SHA-256; a use is spent by one atomic store operation, so a
//! one-use invite succeeds once however many use it at the same moment.
//!
//! This file keeps the codes (create, list, revoke, the registration check); `using.rs`
//! what a code leads to (a preview, a friendship, a membership); `places.rs` the groups and
//! communities invites lead into.
mod places;
mod using;

use std::sync::Arc;
pub use using::{Preview, PreviewTarget};

use rand::Rng;
use sha2::{Digest, Sha256};

use super::error::Reason;
use super::model::{Invite, InviteTarget};
use super::principal::Principal;
use super::state::ids::IdAllocator;
use super::state::{Store, WriteTx};
use super::{DomainError, ErrorKind};
use crate::clock::{rfc3339, SharedClock};

/// Characters of a code.
const CODE_LEN: usize = 16;
/// Characters of a code kept (and listed) as its hint.
const HINT_LEN: usize = 4;
/// Live invites one creator may have.
pub const MAX_LIVE_PER_CREATOR: u32 = 100;
/// Invites listed at most.
pub const LIST_LIMIT: u32 = 200;
/// An invite created without an expiry lives this long.
pub const DEFAULT_TTL_MS: u64 = 7 * 24 * 3600 * 1000;
/// The longest an invite may live.
pub const MAX_TTL_MS: u64 = 365 * 24 * 3600 * 1000;
/// The most uses one invite may allow.
pub const MAX_USES: u32 = 100_000;

#[derive(Debug, Clone)]
pub struct NewInvite {
    /// What using it does.
    pub target: InviteTarget,
    /// The group or community (the creator, for USER; 0 for REGISTRATION).
    pub target_id: u64,
    /// Expiry (unix ms); `None`: [`DEFAULT_TTL_MS`] from now.
    pub expires_at: Option<u64>,
    /// Uses allowed; `None`: unlimited (one for REGISTRATION).
    pub max_uses: Option<u32>,
}

fn hash(code: &str) -> [u8; 32] {
    Sha256::digest(code.as_bytes()).into()
}

/// A code as a client sent it: base62, at most 64 characters (the length is not checked
/// further, so a wrong guess and a mistyped code answer alike).
fn parse_code(code: &str) -> Result<&str, DomainError> {
    let code = code.trim();
    if code.is_empty() || code.len() > 64 || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(DomainError::invalid(
            "code",
            "must be an invite code: up to 64 letters and digits",
        ));
    }
    Ok(code)
}

fn unknown() -> DomainError {
    DomainError::new(
        ErrorKind::NotFound,
        Reason::InviteUnknown,
        "no invite has this code; check it for typos",
    )
}

/// Whether `i` can be used at `now`; the refusal says why not.
pub fn check_live(i: &Invite, now: u64) -> Result<(), DomainError> {
    if i.revoked_at.is_some() {
        return Err(DomainError::precondition(
            Reason::InviteRevoked,
            "this invite was revoked by its creator",
        ));
    }
    if now >= i.expires_at {
        return Err(DomainError::precondition(
            Reason::InviteExpired,
            format!("this invite expired at {}", rfc3339(i.expires_at)),
        ));
    }
    if i.max_uses.is_some_and(|max| i.uses >= max) {
        return Err(used_up());
    }
    Ok(())
}

fn used_up() -> DomainError {
    DomainError::precondition(Reason::InviteUsedUp, "this invite has been used up")
}

/// The invites service.
#[derive(Debug)]
pub struct Invites {
    store: Store,
    clock: SharedClock,
    ids: Arc<dyn IdAllocator>,
    users_can_invite: bool,
}

impl Invites {
    pub fn new(
        store: Store,
        clock: SharedClock,
        ids: Arc<dyn IdAllocator>,
        config: &crate::config::Accounts,
    ) -> Self {
        Self {
            store,
            clock,
            ids,
            users_can_invite: config.users_can_invite,
        }
    }

    /// Creates an invite; `creator` is `None` for the operator. Returns the code (shown
    /// here once) and the invite.
    pub async fn create(
        &self,
        creator: Option<&Principal>,
        req: NewInvite,
    ) -> Result<(String, Invite), DomainError> {
        let now = self.clock.now_ms();
        let creator_id = creator.map_or(0, |p| p.user_id);
        let expires_at = match req.expires_at {
            None => now + DEFAULT_TTL_MS,
            Some(at) if at <= now => {
                return Err(DomainError::invalid("expires_at", "must be in the future"))
            }
            Some(at) if at > now + MAX_TTL_MS => {
                return Err(DomainError::invalid(
                    "expires_at",
                    "must be at most 365 days from now",
                ))
            }
            Some(at) => at,
        };
        let max_uses = match (req.max_uses, req.target) {
            (Some(n), _) if n == 0 || n > MAX_USES => {
                return Err(DomainError::invalid(
                    "max_uses",
                    format!("must be 1 to {MAX_USES} (leave it out for no limit)"),
                ))
            }
            (None, InviteTarget::Registration) => Some(1),
            (n, _) => n,
        };
        let target_id = match req.target {
            InviteTarget::Registration if creator.is_some() && !self.users_can_invite => {
                return Err(DomainError::denied(
                    Reason::InviteNotAllowed,
                    "only the operator of this node creates registration invites \
                     (`hearth invite create --registration`)",
                ))
            }
            InviteTarget::Registration if req.target_id != 0 => {
                return Err(DomainError::invalid(
                    "target_id",
                    "must be 0 for a REGISTRATION invite",
                ))
            }
            InviteTarget::Registration => 0,
            _ if creator.is_none() => {
                return Err(DomainError::invalid(
                    "target_type",
                    "the operator creates REGISTRATION invites only",
                ))
            }
            InviteTarget::User if req.target_id != 0 && req.target_id != creator_id => {
                return Err(DomainError::denied(
                    Reason::InviteNotAllowed,
                    "target_id: a USER invite befriends its creator; leave target_id 0 or give your own id",
                ))
            }
            InviteTarget::User => creator_id,
            InviteTarget::Group | InviteTarget::Community => req.target_id,
        };
        let code: String = {
            let mut rng = rand::rngs::OsRng;
            (0..CODE_LEN)
                .map(|_| {
                    const A: &[u8] =
                        b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
                    A[rng.gen_range(0..A.len())] as char
                })
                .collect()
        };
        let invite = Invite {
            id: self.ids.next_id(),
            code_hash: hash(&code),
            hint: code[..HINT_LEN].to_owned(),
            creator_id,
            target: req.target,
            target_id,
            max_uses,
            uses: 0,
            expires_at,
            revoked_at: None,
            created_at: now,
        };
        let row = invite.clone();
        self.store
            .write(move |tx| {
                if matches!(row.target, InviteTarget::Group | InviteTarget::Community) {
                    places::check_owner(tx, row.target, row.target_id, row.creator_id)?;
                }
                if !tx.insert_invite(&row, now, MAX_LIVE_PER_CREATOR)? {
                    return Err(DomainError::exhausted(
                        Reason::LimitReached,
                        format!(
                            "you have {MAX_LIVE_PER_CREATOR} live invites; revoke some first (RevokeInvite)"
                        ),
                    ));
                }
                Ok(())
            })
            .await?;
        tracing::info!(target: "hearth::audit", event = "invite_created", creator = creator_id, invite = invite.id, target = invite.target.as_str());
        Ok((code, invite))
    }

    /// The REGISTRATION invite behind a sign-up's `invite_code`, checked before any
    /// password is hashed; spend it with [`Invites::spend_in`] in the sign-up's transaction.
    pub async fn registration(&self, code: &str) -> Result<Invite, DomainError> {
        let h = hash(parse_code(code).map_err(|_| {
            DomainError::invalid("invite_code", "must be an invite code: letters and digits")
        })?);
        let now = self.clock.now_ms();
        let invite = self
            .store
            .read(move |tx| Ok::<_, DomainError>(tx.invite_by_hash(&h)?))
            .await?
            .ok_or_else(unknown)?;
        check_live(&invite, now)?;
        if invite.target != InviteTarget::Registration {
            return Err(DomainError::invalid_because(
                "invite_code",
                Reason::InviteWrongKind,
                "is not a registration invite (use it with UseInvite once signed up)",
            ));
        }
        Ok(invite)
    }

    /// Spends one use of a registration invite in the caller's transaction.
    pub fn spend_in(tx: &mut dyn WriteTx, invite: &Invite, now: u64) -> Result<(), DomainError> {
        match tx.spend_invite(invite.id, now)? {
            true => Ok(()),
            false => Err(used_up()),
        }
    }

    /// The invites `creator_id` made that were not revoked, newest first.
    pub async fn list(&self, creator_id: u64) -> Result<Vec<Invite>, DomainError> {
        self.store
            .read(move |tx| Ok(tx.invites_by(creator_id, LIST_LIMIT)?))
            .await
    }

    /// Revokes one of `creator_id`'s invites, named by its code or by the hint a list shows
    /// (`Ab3d…`; it must name exactly one live invite).
    pub async fn revoke(&self, creator_id: u64, code: &str) -> Result<Invite, DomainError> {
        let given = code.trim().trim_end_matches('…').trim_end_matches("...");
        let given = parse_code(given)?.to_owned();
        let now = self.clock.now_ms();
        let invite = self
            .store
            .write(move |tx| {
                let found = match given.len() {
                    HINT_LEN => {
                        let mut matches: Vec<Invite> = tx
                            .invites_by(creator_id, LIST_LIMIT)?
                            .into_iter()
                            .filter(|i| i.hint == given)
                            .collect();
                        if matches.len() > 1 {
                            return Err(DomainError::invalid(
                                "code",
                                "several of your invites start like this; give the whole code",
                            ));
                        }
                        matches.pop()
                    }
                    _ => tx
                        .invite_by_hash(&hash(&given))?
                        .filter(|i| i.creator_id == creator_id),
                };
                let invite = found.ok_or_else(|| {
                    DomainError::new(
                        ErrorKind::NotFound,
                        Reason::InviteUnknown,
                        "none of your invites has this code",
                    )
                })?;
                tx.revoke_invite(invite.id, now)?;
                Ok(invite)
            })
            .await?;
        tracing::info!(target: "hearth::audit", event = "invite_revoked", creator = creator_id, invite = invite.id);
        Ok(invite)
    }
}
