//! auth.v1alpha1.AuthAPI: the OAuth/OIDC token exchange (built in a later version).
use tonic::{Request, Response, Status};

use super::status::unimplemented;
use crate::pb::auth::v1alpha1::{auth_api_server::AuthApi, GetJwtRequest, GetJwtResponse};

/// The OIDC exchange service.
#[derive(Debug, Default, Clone)]
pub struct OidcApi;

#[tonic::async_trait]
impl AuthApi for OidcApi {
    async fn get_jwt(&self, _: Request<GetJwtRequest>) -> Result<Response<GetJwtResponse>, Status> {
        Err(unimplemented("auth.v1alpha1.AuthAPI/GetJWT"))
    }
}
