//! What an invite leads to: the preview anyone holding a code may see, and using it, which
//! makes the user a friend of the creator (USER) or a member of a group or community, and
//! spends one use in the same write.
use super::{check_live, hash, parse_code, unknown, used_up, Invites};
use crate::domain::error::Reason;
use crate::domain::model::{Community, Group, Invite, InviteTarget, User};
use crate::domain::principal::Principal;
use crate::domain::{DomainError, ErrorKind};

/// What an invite leads to, for a preview.
#[derive(Debug, Clone)]
pub enum PreviewTarget {
    /// Nothing to show (a registration).
    None,
    /// The user to befriend.
    User(User),
    Group(Group),
    Community(Community),
}

/// An invite with what a preview shows of it.
#[derive(Debug, Clone)]
pub struct Preview {
    pub invite: Invite,
    /// Its creator (none for the operator's).
    pub creator: Option<User>,
    pub target: PreviewTarget,
}

impl Invites {
    /// What an invite leads to. Public: anyone holding the code may look.
    pub async fn lookup(&self, code: &str) -> Result<Preview, DomainError> {
        let h = hash(parse_code(code)?);
        let now = self.clock.now_ms();
        self.store
            .read(move |tx| {
                let invite = tx.invite_by_hash(&h)?.ok_or_else(unknown)?;
                check_live(&invite, now)?;
                let creator = match invite.creator_id {
                    0 => None,
                    id => tx.user(id)?,
                };
                let target = match invite.target {
                    InviteTarget::Registration => PreviewTarget::None,
                    InviteTarget::User => creator
                        .clone()
                        .map_or(PreviewTarget::None, PreviewTarget::User),
                    InviteTarget::Group => tx
                        .group(invite.target_id)?
                        .map_or(PreviewTarget::None, PreviewTarget::Group),
                    InviteTarget::Community => tx
                        .community(invite.target_id)?
                        .map_or(PreviewTarget::None, PreviewTarget::Community),
                };
                Ok(Preview {
                    invite,
                    creator,
                    target,
                })
            })
            .await
    }

    /// Uses an invite: the caller becomes the creator's friend, or a member of the group or
    /// community. Spends one use; nothing is written when the caller already is one.
    pub async fn use_invite(&self, p: &Principal, code: &str) -> Result<Invite, DomainError> {
        let h = hash(parse_code(code)?);
        let (user, now) = (p.user_id, self.clock.now_ms());
        let invite =
            self.store
                .write(move |tx| {
                    let invite = tx.invite_by_hash(&h)?.ok_or_else(unknown)?;
                    check_live(&invite, now)?;
                    let added =
                        match invite.target {
                            InviteTarget::Registration => return Err(DomainError::precondition(
                                Reason::InviteWrongKind,
                                "this is a registration invite: give it to SignUp as invite_code",
                            )),
                            InviteTarget::User if invite.target_id == user => {
                                return Err(DomainError::invalid(
                                    "code",
                                    "this is your own invite; share it with someone else",
                                ))
                            }
                            InviteTarget::User => tx.befriend(invite.target_id, user, now)?,
                            t => tx.add_member(t, invite.target_id, user)?,
                        };
                    if !added {
                        return Err(DomainError::new(
                            ErrorKind::AlreadyExists,
                            Reason::AlreadyMember,
                            match invite.target {
                                InviteTarget::User => "you are already friends",
                                _ => "you are already a member",
                            },
                        ));
                    }
                    // The guard: the use is spent in the same transaction, or nothing is kept.
                    if !tx.spend_invite(invite.id, now)? {
                        return Err(used_up());
                    }
                    Ok(invite)
                })
                .await?;
        tracing::info!(target: "hearth::audit", event = "invite_used", user, invite = invite.id, target = invite.target.as_str());
        Ok(invite)
    }
}
