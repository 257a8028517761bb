//! GetJWT (auth.v1alpha1): a front end that signed a user in with an external provider
//! presents the provider's access token; Hearth checks it with the provider and answers
//! with its own JWT. `oidc` providers: discovery (cached), userinfo `sub` must equal the
//! account id, and with client credentials, introspection must show the token active and
//! issued to this client. `oauth` providers: a user endpoint and its id field. Users are
//! keyed by (provider, subject), apart from local e-mail accounts unless the provider links
//! by verified e-mail. The network is [`ProviderNetwork`]; access tokens are never logged.
use std::sync::Arc;

use serde_json::Value;
use zeroize::Zeroizing;

use super::error::Reason;
use super::jwts::Jwts;
use super::model::{DeviceFacts, User};
use super::sessions::Sessions;
use super::state::ids::IdAllocator;
use super::state::short_lived::{LocalMap, ShortLived};
use super::state::{Store, StoreError};
use super::{DomainError, ErrorKind};
use crate::clock::SharedClock;
use crate::config::OidcProvider;

/// How long a provider's discovery document is kept.
const DISCOVERY_TTL_MS: u64 = 3600 * 1000;

/// Why a call to a provider failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No answer (refused, timed out, private address, bad TLS…).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// An HTTP status other than 2xx.
    #[error("answered HTTP {0}")]
    Status(u16),
    /// Not JSON, or larger than the cap.
    #[error("answered something that is not a JSON object under the size cap")]
    BadBody,
}

/// The network as the exchange sees it (implemented over HTTP in `providers.rs`).
#[async_trait::async_trait]
pub trait ProviderNetwork: Send + Sync + std::fmt::Debug {
    /// GET `url` (with `bearer` as the access token) and parse a JSON object.
    async fn get_json(
        &self,
        url: &str,
        bearer: Option<&str>,
        allow_http: bool,
    ) -> Result<Value, ProviderError>;
    /// POST `form` to `url` with HTTP basic client authentication; parse a JSON object.
    async fn post_form(
        &self,
        url: &str,
        client: (&str, &str),
        form: &[(&str, &str)],
        allow_http: bool,
    ) -> Result<Value, ProviderError>;
}

/// The account GetJWT presents.
#[derive(Debug)]
pub struct Account {
    /// `[[oidc.providers]] id`.
    pub provider: String,
    /// `oidc` or `oauth`.
    pub kind: String,
    /// The provider's id of the account.
    pub subject: String,
    /// The provider's access token (never logged).
    pub access_token: Zeroizing<String>,
}

/// What a provider said about the account.
struct Verified {
    name: Option<String>,
    verified_email: Option<String>,
}

fn down(p: &OidcProvider, e: ProviderError) -> DomainError {
    DomainError::unavailable(
        Reason::ProviderUnavailable,
        format!("the provider `{}` could not be asked: {e}", p.id),
    )
}

/// The JSON value as text (strings as they are, numbers printed), for id comparisons.
fn as_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The exchange service.
#[derive(Debug)]
pub struct Oidc {
    providers: Vec<OidcProvider>,
    network: Arc<dyn ProviderNetwork>,
    discovery: LocalMap<String, Value>,
    store: Store,
    clock: SharedClock,
    ids: Arc<dyn IdAllocator>,
    sessions: Arc<Sessions>,
    jwts: Arc<Jwts>,
}

impl Oidc {
    /// The service over the configured providers.
    pub fn new(
        config: &crate::config::Config,
        network: Arc<dyn ProviderNetwork>,
        store: Store,
        clock: SharedClock,
        ids: Arc<dyn IdAllocator>,
        sessions: Arc<Sessions>,
        jwts: Arc<Jwts>,
    ) -> Self {
        Self {
            providers: config.oidc.providers.clone(),
            network,
            discovery: LocalMap::new(clock.clone(), 64),
            store,
            clock,
            ids,
            sessions,
            jwts,
        }
    }

    /// Checks `account` with its provider and returns a Hearth JWT for its local user.
    pub async fn exchange(&self, a: Account, device: DeviceFacts) -> Result<String, DomainError> {
        let p = self
            .providers
            .iter()
            .find(|p| p.id == a.provider)
            .ok_or_else(|| {
                DomainError::invalid_because(
                    "account.provider",
                    Reason::ProviderUnknown,
                    format!(
                        "no provider `{}` is configured here",
                        super::validate::printable(&a.provider, 64)
                    ),
                )
            })?;
        if p.kind != a.kind {
            return Err(DomainError::invalid_because(
                "account.type",
                Reason::ProviderTypeMismatch,
                format!("the provider `{}` is of type `{}`", p.id, p.kind),
            ));
        }
        if a.subject.is_empty() || a.subject.len() > 255 || a.access_token.is_empty() {
            return Err(DomainError::invalid(
                "account.provider_account_id",
                "provider_account_id (1 to 255 bytes) and access_token are required",
            ));
        }
        let verified = match p.kind.as_str() {
            "oidc" => self.check_oidc(p, &a).await?,
            _ => self.check_oauth(p, &a).await?,
        };
        let user = self.user_for(p, &a.subject, verified).await?;
        if user.disabled {
            return Err(DomainError::account_disabled());
        }
        let (_, mut session) = self.sessions.new_session(user.id, device, "oidc");
        session.expires_at = self.clock.now_ms() + self.jwts.lifetime_secs() * 1000;
        let row = session.clone();
        self.store
            .write(move |tx| {
                tx.insert_session(&row)?;
                Ok::<_, DomainError>(crate::domain::sessions::make_room(tx, &row)?)
            })
            .await
            .map(|ended| self.sessions.announce_ended(&ended))?;
        tracing::info!(target: "hearth::audit", event = "jwt_issued", provider = %p.id, user = user.id, session = session.id);
        Ok(self.jwts.issue(user.id, session.id))
    }

    async fn discovery(&self, p: &OidcProvider) -> Result<Value, DomainError> {
        let issuer = p.issuer.clone().unwrap_or_default();
        if let Some(doc) = self.discovery.get(&issuer) {
            return Ok(doc);
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let doc = self
            .network
            .get_json(&url, None, p.allow_http)
            .await
            .map_err(|e| down(p, e))?;
        if doc.get("issuer").and_then(Value::as_str) != Some(issuer.as_str()) {
            return Err(down(
                p,
                ProviderError::Unreachable("its discovery document names another issuer".into()),
            ));
        }
        self.discovery.put(issuer, doc.clone(), DISCOVERY_TTL_MS);
        Ok(doc)
    }

    fn endpoint(p: &OidcProvider, doc: &Value, name: &str) -> Result<String, DomainError> {
        doc.get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                down(
                    p,
                    ProviderError::Unreachable(format!("no {name} in its discovery document")),
                )
            })
    }

    async fn check_oidc(&self, p: &OidcProvider, a: &Account) -> Result<Verified, DomainError> {
        let doc = self.discovery(p).await?;
        if let (Some(id), Some(secret)) = (&p.client_id, &p.client_secret) {
            let url = Self::endpoint(p, &doc, "introspection_endpoint")?;
            let form = [
                ("token", a.access_token.as_str()),
                ("token_type_hint", "access_token"),
            ];
            let info = match self
                .network
                .post_form(&url, (id, secret), &form, p.allow_http)
                .await
            {
                Ok(info) => info,
                // RFC 7662 answers 200 with `active: false` for a bad token; a 400 is the
                // provider refusing this one. A 401 is about this node's own credentials.
                Err(ProviderError::Status(400)) => {
                    return Err(DomainError::unauthenticated(
                        Reason::ProviderTokenRejected,
                        format!("the provider `{}` refused this access token", p.id),
                    ))
                }
                Err(e) => return Err(down(p, e)),
            };
            if info.get("active").and_then(Value::as_bool) != Some(true) {
                return Err(DomainError::unauthenticated(
                    Reason::ProviderTokenInactive,
                    "the provider says this access token is not active (expired or revoked)",
                ));
            }
            if info.get("client_id").and_then(Value::as_str) != Some(id.as_str()) {
                return Err(DomainError::denied(
                    Reason::ProviderTokenOtherClient,
                    format!("this access token was issued to another application, not to `{id}`"),
                ));
            }
        }
        let url = Self::endpoint(p, &doc, "userinfo_endpoint")?;
        let info = self.ask_user(p, &url, a).await?;
        Self::same_subject(&info, "sub", a)?;
        let verified_email = match info.get("email_verified").and_then(Value::as_bool) {
            Some(true) => info.get("email").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        };
        Ok(Verified {
            name: as_text(info.get("name").or_else(|| info.get("preferred_username"))),
            verified_email,
        })
    }

    async fn check_oauth(&self, p: &OidcProvider, a: &Account) -> Result<Verified, DomainError> {
        let url = p.user_url.clone().unwrap_or_default();
        let info = self.ask_user(p, &url, a).await?;
        Self::same_subject(&info, p.id_field.as_deref().unwrap_or("id"), a)?;
        Ok(Verified {
            name: as_text(info.get("name").or_else(|| info.get("login"))),
            verified_email: None,
        })
    }

    async fn ask_user(
        &self,
        p: &OidcProvider,
        url: &str,
        a: &Account,
    ) -> Result<Value, DomainError> {
        match self
            .network
            .get_json(url, Some(&a.access_token), p.allow_http)
            .await
        {
            Ok(v) => Ok(v),
            // The provider's verdict on the token (400: malformed or unknown to it); only a
            // provider that cannot be asked is UNAVAILABLE, which tells clients to retry.
            Err(ProviderError::Status(400 | 401 | 403)) => Err(DomainError::unauthenticated(
                Reason::ProviderTokenRejected,
                format!("the provider `{}` refused this access token", p.id),
            )),
            Err(e) => Err(down(p, e)),
        }
    }

    fn same_subject(info: &Value, field: &str, a: &Account) -> Result<(), DomainError> {
        if as_text(info.get(field)).as_deref() == Some(a.subject.as_str()) {
            return Ok(());
        }
        Err(DomainError::denied(
            Reason::ProviderSubjectMismatch,
            "account.provider_account_id: the access token belongs to another account",
        ))
    }

    /// The local user of (provider, subject): linked, found by verified e-mail (when the
    /// provider links by it), or created (when `auto_register`).
    async fn user_for(
        &self,
        p: &OidcProvider,
        subject: &str,
        v: Verified,
    ) -> Result<User, DomainError> {
        let (provider, subject) = (p.id.clone(), subject.to_owned());
        let link_email = p.link_verified_email.then_some(v.verified_email).flatten();
        let name: String = v
            .name
            .filter(|n| super::validate::display_name("name", n).is_ok())
            .unwrap_or_else(|| format!("{provider} user"));
        let fresh = User {
            id: self.ids.next_id(),
            email: None,
            name,
            password_hash: None,
            email_verified: false,
            home: None,
            disabled: false,
            created_at: self.clock.now_ms(),
        };
        let (auto, now) = (p.auto_register, self.clock.now_ms());
        self.store
            .write(move |tx| {
                if let Some(id) = tx.identity(&provider, &subject)? {
                    return tx.user(id)?.ok_or_else(|| DomainError::internal("identity without user"));
                }
                // Only an address the local account proved: someone who signed up with the
                // victim's address and never verified it must not receive the victim.
                let linked = match &link_email {
                    Some(e) => tx.user_by_email(e)?.filter(|u| u.email_verified),
                    None => None,
                };
                let user = match linked {
                    Some(u) => u,
                    None if auto => {
                        tx.insert_user(&fresh)?;
                        fresh.clone()
                    }
                    None => {
                        return Err(DomainError::denied(
                            Reason::AccountNotRegistered,
                            "this provider account has no account here, and this node does not create them (auto_register = false)",
                        ))
                    }
                };
                match tx.insert_identity(&provider, &subject, user.id, now) {
                    Ok(()) => Ok(user),
                    Err(StoreError::Conflict(_)) => Err(DomainError::new(
                        ErrorKind::Unavailable,
                        Reason::ProviderUnavailable,
                        "another sign-in of this account ran at the same moment; try again",
                    )),
                    Err(e) => Err(e.into()),
                }
            })
            .await
    }
}
