//! The WebAuthn side of passkeys: the relying party, the ceremonies' state between their
//! two calls, and an assertion that a write checks against the stored passkey.
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    CredentialID, DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

use crate::domain::error::Reason;
use crate::domain::state::{StoreError, WriteTx};
use crate::domain::DomainError;
use crate::secret::random_base62;

/// How long a begun ceremony can be finished.
pub const TTL_MS: u64 = 300_000;
const ID_LEN: usize = 22;

/// Whether `id` has the shape of a ceremony id (checked before any state is touched).
pub(super) fn is_id(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The relying party this node is, or why there is none.
#[derive(Clone)]
pub struct Relying(Result<Arc<Webauthn>, String>);

impl std::fmt::Debug for Relying {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Ok(_) => f.write_str("Relying(on)"),
            Err(why) => write!(f, "Relying(off: {why})"),
        }
    }
}

impl Relying {
    /// The relying party of `public_url` (its host is the relying party id, its origin the
    /// only one accepted), named `name` in authenticators.
    pub fn of(public_url: Option<&str>, name: &str) -> Self {
        let built = (|| {
            let url = public_url.ok_or("the node has no public URL (set mail.public_url)")?;
            let url =
                Url::parse(url).map_err(|_| format!("the public URL {url} does not parse"))?;
            let id = url.domain().ok_or_else(|| {
                format!("the public URL {url} names no domain (a passkey is bound to a domain name, never an IP address); set mail.public_url to the name people browse to")
            })?;
            let webauthn = WebauthnBuilder::new(id, &url)
                .and_then(|b| b.rp_name(name).build())
                .map_err(|e| format!("the public URL {url} does not make a relying party: {e}"))?;
            Ok::<_, String>(Arc::new(webauthn))
        })();
        Self(built)
    }

    /// The webauthn instance, or PASSKEYS_OFF with the reason.
    pub fn get(&self) -> Result<&Arc<Webauthn>, DomainError> {
        self.0.as_ref().map_err(|why| {
            DomainError::precondition(
                Reason::PasskeysOff,
                format!("passkeys are off on this node: {why}"),
            )
        })
    }
}

/// A begun ceremony: its id and the options for the browser's WebAuthn call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Names the ceremony in the finishing call (single use).
    pub ceremony: String,
    /// JSON: `{"publicKey": …}` as `navigator.credentials.create`/`get` take it, binary
    /// values in unpadded base64url.
    pub options: String,
}

/// A ceremony between its two calls.
#[derive(Serialize, Deserialize)]
pub(super) enum Ceremony {
    Register {
        user_id: u64,
        name: String,
        state: PasskeyRegistration,
    },
    SignIn {
        state: DiscoverableAuthentication,
    },
    /// The second factor of a step flow after a right password.
    Step {
        user_id: u64,
        handoff: String,
        state: PasskeyAuthentication,
    },
}

impl Ceremony {
    /// A new id and the state as stored.
    pub(super) fn to_stored(&self) -> Result<(String, String), DomainError> {
        let id = random_base62(ID_LEN);
        let json = serde_json::to_string(self).map_err(|e| DomainError::internal(e.to_string()))?;
        Ok((id, json))
    }

    pub(super) fn from_stored(json: &str) -> Option<Self> {
        serde_json::from_str(json).ok()
    }
}

pub(super) struct Started {
    pub options: String,
    pub ceremony: Ceremony,
}

fn failed(e: impl std::fmt::Display) -> DomainError {
    DomainError::internal(format!("webauthn: {e}"))
}

fn json(v: &impl Serialize) -> Result<String, DomainError> {
    serde_json::to_string(v).map_err(|e| DomainError::internal(e.to_string()))
}

/// The user handle authenticators keep for `user_id` (and hand back on a discoverable
/// sign-in): the id in the low half of a UUID.
fn handle(user_id: u64) -> Uuid {
    Uuid::from_u64_pair(0, user_id)
}

pub(super) fn start_register(
    w: &Webauthn,
    user_id: u64,
    email: &str,
    name: String,
    exclude: Vec<CredentialID>,
) -> Result<Started, DomainError> {
    let (options, state) = w
        .start_passkey_registration(handle(user_id), email, email, Some(exclude))
        .map_err(failed)?;
    // A passkey signs in alone only when the authenticator keeps it (a discoverable
    // credential). The crate discourages one (its enum for this is not exported); its
    // finishing call does not depend on it, so the request is raised in the JSON.
    let mut options = serde_json::to_value(&options).map_err(failed)?;
    if let Some(sel) = options
        .pointer_mut("/publicKey/authenticatorSelection")
        .and_then(|v| v.as_object_mut())
    {
        sel.insert("residentKey".into(), "required".into());
        sel.insert("requireResidentKey".into(), true.into());
    }
    Ok(Started {
        options: json(&options)?,
        ceremony: Ceremony::Register {
            user_id,
            name,
            state,
        },
    })
}

pub(super) fn finish_register(
    w: &Webauthn,
    credential: &str,
    state: &PasskeyRegistration,
) -> Result<Passkey, DomainError> {
    let reg: RegisterPublicKeyCredential = serde_json::from_str(credential).map_err(|_| {
        DomainError::invalid_because(
            "credential",
            Reason::PasskeyInvalid,
            "must be the JSON of the browser's PublicKeyCredential (binary values in base64url)",
        )
    })?;
    w.finish_passkey_registration(&reg, state).map_err(|e| {
        DomainError::invalid_because(
            "credential",
            Reason::PasskeyInvalid,
            format!("the authenticator's answer did not verify ({e})"),
        )
    })
}

pub(super) fn start_discoverable(w: &Webauthn) -> Result<Started, DomainError> {
    let (mut options, state) = w.start_discoverable_authentication().map_err(failed)?;
    // The crate marks this for autofill (conditional mediation); the page asks with a
    // button instead, which every browser supports.
    options.mediation = None;
    Ok(Started {
        options: json(&options)?,
        ceremony: Ceremony::SignIn { state },
    })
}

pub(super) fn start_known(
    w: &Webauthn,
    user_id: u64,
    handoff: &str,
    keys: &[Passkey],
) -> Result<Started, DomainError> {
    let (options, state) = w.start_passkey_authentication(keys).map_err(failed)?;
    Ok(Started {
        options: json(&options)?,
        ceremony: Ceremony::Step {
            user_id,
            handoff: handoff.to_owned(),
            state,
        },
    })
}

#[derive(Clone)]
enum Proof {
    Discoverable(DiscoverableAuthentication),
    Known(PasskeyAuthentication),
}

/// A browser's answer to a sign-in ceremony, to be checked inside the write that acts on it.
#[derive(Clone)]
pub struct Assertion {
    webauthn: Arc<Webauthn>,
    credential: PublicKeyCredential,
    proof: Proof,
}

impl std::fmt::Debug for Assertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Assertion")
    }
}

fn parse(credential: &str) -> Result<PublicKeyCredential, DomainError> {
    serde_json::from_str(credential).map_err(|_| {
        DomainError::invalid_because(
            "credential",
            Reason::PasskeyInvalid,
            "must be the JSON of the browser's PublicKeyCredential (binary values in base64url)",
        )
    })
}

impl Assertion {
    pub(super) fn discoverable(
        webauthn: Arc<Webauthn>,
        credential: &str,
        state: DiscoverableAuthentication,
    ) -> Result<Self, DomainError> {
        Ok(Self {
            webauthn,
            credential: parse(credential)?,
            proof: Proof::Discoverable(state),
        })
    }

    pub(super) fn known(
        webauthn: Arc<Webauthn>,
        credential: &str,
        state: PasskeyAuthentication,
    ) -> Result<Self, DomainError> {
        Ok(Self {
            webauthn,
            credential: parse(credential)?,
            proof: Proof::Known(state),
        })
    }

    /// The account the authenticator names (a discoverable sign-in), if it names one of ours.
    pub fn user_named(&self) -> Option<u64> {
        let named = self
            .credential
            .get_user_unique_id()
            .and_then(|b| Uuid::from_slice(b).ok())
            .map(|u| u.as_u64_pair());
        match named {
            Some((0, user)) => Some(user),
            _ => None,
        }
    }

    /// Inside a write: whether the assertion verifies against the stored passkey it names,
    /// which must belong to `user_id`; a good one stores the passkey's new counter and
    /// flags. The row is locked first, so of parallel uses each sees the last one's counter.
    pub fn check_in(
        &self,
        tx: &mut dyn WriteTx,
        user_id: Option<u64>,
        now: u64,
    ) -> Result<Option<u64>, StoreError> {
        let Some(row) = tx.passkey_for_update(self.credential.get_credential_id())? else {
            return Ok(None);
        };
        if user_id.is_some_and(|u| u != row.user_id) {
            return Ok(None);
        }
        let Ok(mut key) = serde_json::from_str::<Passkey>(&row.data) else {
            return Ok(None);
        };
        let result = match &self.proof {
            Proof::Discoverable(state) => {
                if self.user_named() != Some(row.user_id) {
                    return Ok(None);
                }
                self.webauthn.finish_discoverable_authentication_v2(
                    &self.credential,
                    state.clone(),
                    &key,
                )
            }
            Proof::Known(state) => self
                .webauthn
                .finish_passkey_authentication(&self.credential, state),
        };
        let result = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(target: "hearth::audit", event = "passkey_refused", user = row.user_id, passkey = row.id, why = %e);
                return Ok(None);
            }
        };
        key.update_credential(&result);
        let data = serde_json::to_string(&key).map_err(|e| StoreError::Backend(e.to_string()))?;
        tx.update_passkey(row.id, &data, now)?;
        Ok(Some(row.user_id))
    }
}
