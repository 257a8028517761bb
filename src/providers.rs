//! The network side of GetJWT: HTTP calls to identity providers (discovery documents,
//! userinfo, introspection, `oauth` user endpoints), implementing the domain's
//! [`ProviderNetwork`]. Every call has a timeout and a response-size cap, follows no
//! redirect, and obeys the same private-address rule as federation (one resolver for host
//! names, one check for IP literals). Access tokens travel only in headers and forms and
//! are never logged.
use std::time::Duration;

use serde_json::Value;

use crate::address_guard::{check_literal, guarded_dns};
use crate::config::Federation;
use crate::domain::oidc::{ProviderError, ProviderNetwork};

/// The longest a provider may take to answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer read.
const MAX_BODY: usize = 64 * 1024;

/// The HTTP client for identity providers.
#[derive(Debug)]
pub struct Providers {
    http: reqwest::Client,
    allow_private: bool,
}

impl Providers {
    /// A client under `[federation]`'s DNS servers and private-address rule.
    pub fn new(federation: &Federation) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(guarded_dns(federation)?)
            .build()
            .map_err(|e| format!("provider HTTP client: {e}"))?;
        Ok(Self {
            http,
            allow_private: federation.allow_private_addresses,
        })
    }

    fn url(&self, url: &str, allow_http: bool) -> Result<reqwest::Url, ProviderError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| ProviderError::Unreachable(format!("{url}: {e}")))?;
        match parsed.scheme() {
            "https" => {}
            "http" if allow_http => {}
            _ => {
                return Err(ProviderError::Unreachable(format!(
                    "{url} is not https (http:// needs allow_http = true)"
                )))
            }
        }
        check_literal(&parsed, self.allow_private).map_err(ProviderError::Unreachable)?;
        Ok(parsed)
    }

    async fn json(&self, req: reqwest::RequestBuilder) -> Result<Value, ProviderError> {
        let mut res = req
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| ProviderError::Unreachable(without_url(&e)))?;
        if !res.status().is_success() {
            return Err(ProviderError::Status(res.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res
            .chunk()
            .await
            .map_err(|e| ProviderError::Unreachable(without_url(&e)))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_BODY {
                return Err(ProviderError::BadBody);
            }
        }
        match serde_json::from_slice(&body) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(ProviderError::BadBody),
        }
    }
}

/// reqwest's error text without the URL (which may carry a query).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "the provider");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

#[async_trait::async_trait]
impl ProviderNetwork for Providers {
    async fn get_json(
        &self,
        url: &str,
        bearer: Option<&str>,
        allow_http: bool,
    ) -> Result<Value, ProviderError> {
        let mut req = self.http.get(self.url(url, allow_http)?);
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        self.json(req).await
    }

    async fn post_form(
        &self,
        url: &str,
        client: (&str, &str),
        form: &[(&str, &str)],
        allow_http: bool,
    ) -> Result<Value, ProviderError> {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let req = self
            .http
            .post(self.url(url, allow_http)?)
            .basic_auth(client.0, Some(client.1))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body);
        self.json(req).await
    }
}
