//! A step a client cannot render, finished on the node's page (Harmony's `fallback_url`):
//! the second factor of an account with a passkey. The page names the flow by a handoff id,
//! never by the flow's own id (which would let the page read the session the flow ends
//! with); the handoff only lets a passkey of the flow's account answer the step.
use super::answers::Input;
use super::steps::{At, Step};
use super::{unknown_flow, Flows, FLOW_ID_LEN};
use crate::domain::passkeys::Assertion;
use crate::domain::{DomainError, RequestContext};
use crate::secret::random_base62;

fn key(handoff: &str) -> String {
    format!("passkey:{handoff}")
}

impl Flows {
    /// A new handoff id for flow `id`, live as long as a flow.
    pub(super) async fn hand_over(&self, id: &str) -> Result<String, DomainError> {
        let handoff = random_base62(FLOW_ID_LEN);
        let sh = &self.shared;
        sh.waiting
            .put(&key(&handoff), id.to_owned(), sh.lifetime_ms)
            .await?;
        Ok(handoff)
    }

    /// The flow `handoff` names, if it still waits for a passkey: its id, state and step.
    async fn handed(&self, handoff: &str) -> Result<(String, super::FlowState), DomainError> {
        if !super::is_flow_id(handoff) {
            return Err(unknown_flow());
        }
        let id = self
            .shared
            .waiting
            .get(&key(handoff))
            .await?
            .ok_or_else(unknown_flow)?;
        let s = self.load(&id).await?;
        match s.at() {
            At::SecondFactor {
                handoff: Some(h), ..
            } if h == handoff => Ok((id, s)),
            _ => Err(unknown_flow()),
        }
    }

    /// The account whose passkey may answer the step handed over as `handoff`.
    pub async fn handoff_user(&self, handoff: &str) -> Result<u64, DomainError> {
        let (_, s) = self.handed(handoff).await?;
        match s.at() {
            At::SecondFactor { proof, .. } => Ok(proof.user_id),
            _ => Err(unknown_flow()),
        }
    }

    /// Answers the step handed over as `handoff` with a passkey's assertion: the flow ends
    /// with a session, which its client (not the page) receives.
    pub async fn answer_with_passkey(
        &self,
        handoff: &str,
        assertion: Assertion,
        ctx: &RequestContext,
    ) -> Result<Step, DomainError> {
        let (id, s) = self.handed(handoff).await?;
        let here = s.at().clone();
        let step = self
            .advance(&id, s, here, Input::Passkey(Box::new(assertion)), ctx)
            .await?;
        self.shared
            .waiting
            .put(&key(handoff), String::new(), 0)
            .await?;
        Ok(step)
    }
}
