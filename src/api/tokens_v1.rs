//! tokens.v1: personal access tokens. Decodes, calls `domain::access_tokens`, encodes; a
//! token's value leaves only in CreateToken and RegenerateToken.
use crate::api::status::status;
use std::pin::Pin;
use std::sync::Arc;

use prost_types::Timestamp;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::context::principal;
use crate::domain::access_tokens::{NewToken, TokenChange};
use crate::domain::model::AccessToken;
use crate::domain::{DomainError, Services};
use crate::pb::tokens::v1::{
    tokens_service_server::TokensService, CreateTokenRequest, CreateTokenResponse,
    ForceTokenExpirationRequest, GetTokenRequest, GetTokenResponse, ListTokensResponse,
    RegenerateTokenRequest, RegenerateTokenResponse, TokenMetadata, TokenPermissions, TokenUuid,
    TokenValue, UpdateTokenRequest, UpdateTokenResponse,
};

/// The tokens service.
#[derive(Debug, Clone)]
pub struct TokensApi {
    access_tokens: Arc<crate::domain::access_tokens::AccessTokens>,
}

impl TokensApi {
    /// The adapter over the services it calls.
    pub fn new(s: &Services) -> Self {
        Self {
            access_tokens: s.access_tokens.clone(),
        }
    }
}

type ListStream = Pin<Box<dyn Stream<Item = Result<ListTokensResponse, Status>> + Send>>;

/// Unix ms as a wire timestamp (also the pages').
pub(crate) fn timestamp(ms: u64) -> Timestamp {
    Timestamp {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

/// A wire timestamp as unix ms; before 1970 or unnormalised is a bad field.
fn unix_ms(t: &Timestamp) -> Result<u64, DomainError> {
    if t.seconds < 0 || !(0..1_000_000_000).contains(&t.nanos) {
        return Err(DomainError::invalid(
            "token_metadata.expires_at",
            "must be a time after 1970 with nanos in 0..1e9",
        ));
    }
    Ok((t.seconds as u64).saturating_mul(1000) + t.nanos as u64 / 1_000_000)
}

fn uuid(t: &AccessToken) -> Option<TokenUuid> {
    Some(TokenUuid {
        uuid: t.uuid.clone(),
    })
}

fn metadata(t: &AccessToken) -> Option<TokenMetadata> {
    Some(TokenMetadata {
        name: t.name.clone(),
        expires_at: Some(timestamp(t.expires_at)),
    })
}

fn permissions(t: &AccessToken) -> Option<TokenPermissions> {
    Some(TokenPermissions {
        scopes: t.scopes.names().into_iter().map(str::to_owned).collect(),
    })
}

fn described(t: &AccessToken) -> GetTokenResponse {
    GetTokenResponse {
        token_uuid: uuid(t),
        token_metadata: metadata(t),
        token_permissions: permissions(t),
        last_used_at: t.last_used_at.map(timestamp),
        last_used_ip: t.last_used_ip.clone().unwrap_or_default(),
        created_at: Some(timestamp(t.created_at)),
    }
}

fn uuid_of(u: Option<TokenUuid>) -> String {
    u.map(|u| u.uuid).unwrap_or_default()
}

#[tonic::async_trait]
impl TokensService for TokensApi {
    async fn create_token(
        &self,
        req: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenResponse>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let meta = r.token_metadata.unwrap_or_default();
        let new = NewToken {
            name: meta.name,
            expires_at: meta
                .expires_at
                .as_ref()
                .map(unix_ms)
                .transpose()
                .map_err(status)?,
            scopes: r.token_permissions.map(|p| p.scopes).unwrap_or_default(),
        };
        let (value, t) = self.access_tokens.create(&p, new).await.map_err(status)?;
        Ok(Response::new(CreateTokenResponse {
            token_uuid: uuid(&t),
            token_metadata: metadata(&t),
            token_permissions: permissions(&t),
            token_value: Some(TokenValue {
                token: value.expose().to_owned(),
            }),
        }))
    }

    async fn update_token(
        &self,
        req: Request<UpdateTokenRequest>,
    ) -> Result<Response<UpdateTokenResponse>, Status> {
        let p = principal(&req)?;
        let r = req.into_inner();
        let meta = r.token_metadata;
        let change = TokenChange {
            name: meta
                .as_ref()
                .map(|m| m.name.clone())
                .filter(|n| !n.is_empty()),
            expires_at: meta
                .as_ref()
                .and_then(|m| m.expires_at.as_ref())
                .map(unix_ms)
                .transpose()
                .map_err(status)?,
            scopes: r.token_permissions.map(|p| p.scopes),
        };
        let t = self
            .access_tokens
            .update(&p, &uuid_of(r.token_uuid), change)
            .await
            .map_err(status)?;
        Ok(Response::new(UpdateTokenResponse {
            token_uuid: uuid(&t),
            token_metadata: metadata(&t),
            token_permissions: permissions(&t),
        }))
    }

    async fn force_token_expiration(
        &self,
        req: Request<ForceTokenExpirationRequest>,
    ) -> Result<Response<()>, Status> {
        let p = principal(&req)?;
        let id = uuid_of(req.into_inner().token_uuid);
        self.access_tokens.expire(&p, &id).await.map_err(status)?;
        Ok(Response::new(()))
    }

    async fn regenerate_token(
        &self,
        req: Request<RegenerateTokenRequest>,
    ) -> Result<Response<RegenerateTokenResponse>, Status> {
        let p = principal(&req)?;
        let id = uuid_of(req.into_inner().token_uuid);
        let (value, _) = self
            .access_tokens
            .regenerate(&p, &id)
            .await
            .map_err(status)?;
        Ok(Response::new(RegenerateTokenResponse {
            token_value: Some(TokenValue {
                token: value.expose().to_owned(),
            }),
        }))
    }

    async fn get_token(
        &self,
        req: Request<GetTokenRequest>,
    ) -> Result<Response<GetTokenResponse>, Status> {
        let p = principal(&req)?;
        let id = uuid_of(req.into_inner().token_uuid);
        let t = self.access_tokens.get(&p, &id).await.map_err(status)?;
        Ok(Response::new(described(&t)))
    }

    type ListTokensStream = ListStream;
    async fn list_tokens(
        &self,
        req: Request<()>,
    ) -> Result<Response<Self::ListTokensStream>, Status> {
        let p = principal(&req)?;
        let tokens = self.access_tokens.list(&p).await.map_err(status)?;
        let items = tokens.iter().map(|t| {
            let d = described(t);
            Ok(ListTokensResponse {
                token_uuid: d.token_uuid,
                token_metadata: d.token_metadata,
                token_permissions: d.token_permissions,
                last_used_at: d.last_used_at,
                last_used_ip: d.last_used_ip,
                created_at: d.created_at,
            })
        });
        Ok(Response::new(Box::pin(tokio_stream::iter(
            items.collect::<Vec<_>>(),
        ))))
    }
}
