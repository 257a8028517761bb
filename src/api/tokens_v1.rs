//! tokens.v1: personal access tokens (built in a later version; every RPC says so).
use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::status::unimplemented;
use crate::pb::tokens::v1::{
    tokens_service_server::TokensService, CreateTokenRequest, CreateTokenResponse,
    ForceTokenExpirationRequest, GetTokenRequest, GetTokenResponse, ListTokensResponse,
    RegenerateTokenRequest, RegenerateTokenResponse, UpdateTokenRequest, UpdateTokenResponse,
};

/// The tokens service.
#[derive(Debug, Default, Clone)]
pub struct TokensApi;

type ListStream = Pin<Box<dyn Stream<Item = Result<ListTokensResponse, Status>> + Send>>;

#[tonic::async_trait]
impl TokensService for TokensApi {
    async fn create_token(
        &self,
        _: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenResponse>, Status> {
        Err(unimplemented("tokens.v1.TokensService/CreateToken"))
    }
    async fn update_token(
        &self,
        _: Request<UpdateTokenRequest>,
    ) -> Result<Response<UpdateTokenResponse>, Status> {
        Err(unimplemented("tokens.v1.TokensService/UpdateToken"))
    }
    async fn force_token_expiration(
        &self,
        _: Request<ForceTokenExpirationRequest>,
    ) -> Result<Response<()>, Status> {
        Err(unimplemented(
            "tokens.v1.TokensService/ForceTokenExpiration",
        ))
    }
    async fn regenerate_token(
        &self,
        _: Request<RegenerateTokenRequest>,
    ) -> Result<Response<RegenerateTokenResponse>, Status> {
        Err(unimplemented("tokens.v1.TokensService/RegenerateToken"))
    }
    async fn get_token(
        &self,
        _: Request<GetTokenRequest>,
    ) -> Result<Response<GetTokenResponse>, Status> {
        Err(unimplemented("tokens.v1.TokensService/GetToken"))
    }
    type ListTokensStream = ListStream;
    async fn list_tokens(
        &self,
        _: Request<()>,
    ) -> Result<Response<Self::ListTokensStream>, Status> {
        Err(unimplemented("tokens.v1.TokensService/ListTokens"))
    }
}
