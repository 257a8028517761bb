//! Groups and communities: what the operator creates (`hearth group|community create`) and
//! invites lead into. Only a place's owner invites to it.
use super::Invites;
use crate::domain::error::Reason;
use crate::domain::model::{Community, Group, InviteTarget};
use crate::domain::state::WriteTx;
use crate::domain::validate::display_name;
use crate::domain::{DomainError, ErrorKind};

/// Inside a write: `user` owns the group or community `id`, or the refusal says why.
pub(super) fn check_owner(
    tx: &mut dyn WriteTx,
    target: InviteTarget,
    id: u64,
    user: u64,
) -> Result<(), DomainError> {
    let owner = match target {
        InviteTarget::Group => tx.group(id)?.map(|g| g.owner),
        _ => tx.community(id)?.map(|c| c.owner),
    };
    match owner {
        None => Err(DomainError::new(
            ErrorKind::NotFound,
            Reason::NotFound,
            format!("target_id: no {} has the id {id}", target.as_str()),
        )),
        Some(o) if o != user => Err(DomainError::denied(
            Reason::InviteNotAllowed,
            format!("only the owner of this {} invites to it", target.as_str()),
        )),
        Some(_) => Ok(()),
    }
}

impl Invites {
    /// Operator: creates a group or community owned by `owner`.
    pub async fn create_place(
        &self,
        kind: InviteTarget,
        name: &str,
        owner: u64,
    ) -> Result<u64, DomainError> {
        let name = display_name("name", name)?;
        let (id, now) = (self.ids.next_id(), self.clock.now_ms());
        self.store
            .write(move |tx| {
                match kind {
                    InviteTarget::Group => tx.insert_group(
                        &Group {
                            id,
                            name: name.clone(),
                            owner,
                            members: Vec::new(),
                        },
                        now,
                    )?,
                    _ => tx.insert_community(
                        &Community {
                            id,
                            name: name.clone(),
                            owner,
                        },
                        now,
                    )?,
                }
                Ok::<_, DomainError>(())
            })
            .await?;
        Ok(id)
    }
}
