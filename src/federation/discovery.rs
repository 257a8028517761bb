//! Finding another node (DESIGN.md §4.2): a static route from config, else DNS SRV
//! `_hearth._tcp.<host>` (hickory), else `/.well-known/hearth/server` (reqwest), else
//! `<host>:<default port>`. Results are cached; failures back off. Private and loopback
//! addresses are refused unless `federation.allow_private_addresses` (`address_guard.rs`).
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use hickory_resolver::error::{ResolveError, ResolveErrorKind};
use hickory_resolver::TokioAsyncResolver;

use crate::address_guard::{guard, is_private, resolver};
use crate::clock::SharedClock;
use crate::config::Federation;
use crate::domain::state::short_lived::{LocalMap, ShortLived};
use crate::identity::server_id::ServerId;

const SUCCESS_TTL_MS: u64 = 60_000;
const MAX_BACKOFF_MS: u64 = 60_000;
const WELL_KNOWN_LIMIT: usize = 4096;
const WELL_KNOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Where to reach a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host name to present for TLS (SNI and certificate check).
    pub host: String,
    /// The address to connect to.
    pub addr: SocketAddr,
    /// How it was found: "static route", "SRV", "well-known" or "default port".
    pub via: &'static str,
    /// Whether to speak TLS.
    pub tls: bool,
}

impl Target {
    /// `http(s)://<addr>`.
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.addr
        )
    }
}

/// Why a node could not be found; lists every lookup that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot find {server}: {}", .tried.join("; "))]
pub struct DiscoveryError {
    /// The name looked up.
    pub server: String,
    /// What was tried and how each failed.
    pub tried: Vec<String>,
}

#[derive(Debug, Clone)]
struct Cached {
    result: Result<Target, DiscoveryError>,
    until: u64,
    failures: u32,
}

/// The discovery service; one per node.
#[derive(Debug)]
pub struct Discovery {
    resolver: TokioAsyncResolver,
    http: reqwest::Client,
    statics: Mutex<HashMap<ServerId, String>>,
    config: Federation,
    clock: SharedClock,
    cache: LocalMap<ServerId, Cached>,
}

/// Names whose discovery result is cached at most (least recently resolved go first).
const MAX_CACHED: usize = 10_000;
/// How long a cache entry (and so its failure count, for backoff) is kept.
const KEEP_MS: u64 = 3600 * 1000;

fn describe(e: &ResolveError) -> String {
    match e.kind() {
        ResolveErrorKind::NoRecordsFound { response_code, .. } => {
            format!("no records ({response_code})")
        }
        _ => e.to_string(),
    }
}

impl Discovery {
    /// Builds discovery from `[federation]`.
    pub fn new(
        config: &Federation,
        extra_ca: Option<&[u8]>,
        clock: SharedClock,
    ) -> Result<Self, String> {
        let resolver = resolver(config)?;
        let dns = guard(resolver.clone(), config.allow_private_addresses);
        let mut http = reqwest::Client::builder()
            .timeout(WELL_KNOWN_TIMEOUT)
            .dns_resolver(dns)
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let same_host = attempt.previous().first().and_then(|u| u.host_str())
                    == attempt.url().host_str();
                if same_host && attempt.previous().len() < 3 {
                    attempt.follow()
                } else {
                    attempt.stop()
                }
            }));
        if let Some(pem) = extra_ca {
            let ca = reqwest::Certificate::from_pem(pem)
                .map_err(|e| format!("federation.extra_ca: {e}"))?;
            http = http.add_root_certificate(ca);
        }
        let statics = config
            .peers
            .iter()
            .filter_map(|p| Some((p.server_id.clone(), p.url.clone()?)))
            .collect();
        Ok(Self {
            resolver,
            http: http
                .build()
                .map_err(|e| format!("federation HTTP client: {e}"))?,
            statics: Mutex::new(statics),
            config: config.clone(),
            cache: LocalMap::new(clock.clone(), MAX_CACHED),
            clock,
        })
    }

    /// Adds or replaces a static route (e.g. from `hearth peer link --url`). Only a changed
    /// route forgets that one server's cached result; nothing else is touched.
    pub fn set_static(&self, server: ServerId, url: String) {
        let changed = match self.statics.lock() {
            Ok(mut s) => s.insert(server.clone(), url.clone()).as_ref() != Some(&url),
            Err(_) => false,
        };
        if changed {
            self.cache.remove(&server);
        }
    }

    /// Forgets cached results for `server` (after it failed to answer).
    pub fn forget(&self, server: &ServerId) {
        self.cache.remove(server);
    }

    /// Names with a cached result (tests check the cache survives unrelated changes).
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// Finds `server`, from the cache when fresh.
    pub async fn resolve(&self, server: &ServerId) -> Result<Target, DiscoveryError> {
        let now = self.clock.now_ms();
        let previous = self.cache.get(server);
        if let Some(hit) = previous.as_ref().filter(|c| c.until > now) {
            return hit.result.clone();
        }
        let result = self.lookup(server).await;
        let failures = match (&result, &previous) {
            (Ok(_), _) => 0,
            (Err(_), Some(p)) => p.failures + 1,
            (Err(_), None) => 1,
        };
        let until = match &result {
            Ok(_) => now + SUCCESS_TTL_MS,
            Err(_) => now + (500u64 << failures.min(10)).min(MAX_BACKOFF_MS),
        };
        self.cache.put(
            server.clone(),
            Cached {
                result: result.clone(),
                until,
                failures,
            },
            KEEP_MS,
        );
        result
    }

    fn tls(&self) -> bool {
        !self.config.allow_plaintext
    }

    async fn lookup(&self, server: &ServerId) -> Result<Target, DiscoveryError> {
        let mut tried = Vec::new();
        let fail = |tried: Vec<String>| DiscoveryError {
            server: server.to_string(),
            tried,
        };
        let static_url = self
            .statics
            .lock()
            .ok()
            .and_then(|s| s.get(server).cloned());
        if let Some(url) = static_url {
            let (tls, host, port) = self
                .parse_url(&url)
                .map_err(|e| fail(vec![format!("static route {url}: {e}")]))?;
            return self
                .target(&host, port, "static route", tls, tried)
                .await
                .map_err(fail);
        }
        let host = server.host().to_owned();
        if let Some(port) = server.port() {
            return self
                .target(&host, port, "explicit port", self.tls(), tried)
                .await
                .map_err(fail);
        }
        if !server.is_ip_literal() {
            match self
                .resolver
                .srv_lookup(format!("_hearth._tcp.{host}."))
                .await
            {
                Ok(srv) => {
                    if let Some(best) = srv
                        .iter()
                        .min_by_key(|r| (r.priority(), std::cmp::Reverse(r.weight())))
                    {
                        let target = best.target().to_utf8().trim_end_matches('.').to_owned();
                        return self
                            .target(&target, best.port(), "SRV", self.tls(), tried)
                            .await
                            .map_err(fail);
                    }
                    tried.push(format!("SRV _hearth._tcp.{host}: empty answer"));
                }
                Err(e) => tried.push(format!("SRV _hearth._tcp.{host}: {}", describe(&e))),
            }
            match self.well_known(&host).await {
                Ok((h, port)) => {
                    return self
                        .target(&h, port, "well-known", self.tls(), tried)
                        .await
                        .map_err(fail)
                }
                Err(e) => tried.push(e),
            }
        }
        self.target(
            &host,
            self.config.default_port,
            "default port",
            self.tls(),
            tried,
        )
        .await
        .map_err(fail)
    }

    /// Where `url` (a caller's own, `federation.accept_caller_urls`) leads, under the same
    /// scheme and private-address rules as a static route.
    pub async fn at_url(&self, url: &str) -> Result<Target, String> {
        let (tls, host, port) = self.parse_url(url)?;
        self.target(&host, port, "the caller's URL", tls, Vec::new())
            .await
            .map_err(|tried| tried.join("; "))
    }

    fn parse_url(&self, url: &str) -> Result<(bool, String, u16), String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
        let tls = match parsed.scheme() {
            "https" => true,
            "http" if self.config.allow_plaintext => false,
            "http" => return Err("http:// needs federation.allow_plaintext = true".into()),
            other => return Err(format!("unsupported scheme {other}")),
        };
        let host = parsed
            .host_str()
            .ok_or("no host")?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = parsed.port_or_known_default().ok_or("no port")?;
        Ok((tls, host, port))
    }

    async fn well_known(&self, host: &str) -> Result<(String, u16), String> {
        let scheme = if self.tls() { "https" } else { "http" };
        let port = self
            .config
            .well_known_port
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        let url = format!("{scheme}://{host}{port}/.well-known/hearth/server");
        let failed = |e: String| format!("well-known {url}: {e}");
        let mut res = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| failed(error_chain(&e)))?;
        if !res.status().is_success() {
            return Err(failed(format!("HTTP {}", res.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| failed(e.to_string()))? {
            body.extend_from_slice(&chunk);
            if body.len() > WELL_KNOWN_LIMIT {
                return Err(failed(format!("larger than {WELL_KNOWN_LIMIT} bytes")));
            }
        }
        parse_well_known(&body).map_err(failed)
    }

    async fn target(
        &self,
        host: &str,
        port: u16,
        via: &'static str,
        tls: bool,
        mut tried: Vec<String>,
    ) -> Result<Target, Vec<String>> {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        let ips: Vec<IpAddr> = match literal.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => match self.resolver.lookup_ip(format!("{host}.")).await {
                Ok(found) => found.iter().collect(),
                Err(e) => {
                    tried.push(format!("A/AAAA {host} (via {via}): {}", describe(&e)));
                    return Err(tried);
                }
            },
        };
        let allowed = ips
            .iter()
            .copied()
            .find(|ip| self.config.allow_private_addresses || !is_private(*ip));
        match allowed {
            Some(ip) => Ok(Target {
                host: host.to_owned(),
                addr: SocketAddr::new(ip, port),
                via,
                tls,
            }),
            None => {
                tried.push(format!(
                    "{host} (via {via}) resolves only to private or loopback addresses {ips:?}; \
                     set federation.allow_private_addresses = true to allow them"
                ));
                Err(tried)
            }
        }
    }
}

/// Parses `/.well-known/hearth/server`: `{"server":"host:port"}`, where `host:port` must be
/// a valid server_id with a port. The error says what is wrong (bounded).
pub fn parse_well_known(body: &[u8]) -> Result<(String, u16), String> {
    #[derive(serde::Deserialize)]
    struct Doc {
        server: String,
    }
    let doc: Doc = serde_json::from_slice(body).map_err(|e| {
        let e: String = e.to_string().chars().take(200).collect();
        format!("not {{\"server\":\"host:port\"}}: {e}")
    })?;
    let id = ServerId::parse(&doc.server).map_err(|_| {
        "`server` is not a host:port (a DNS name or IP literal and a port)".to_owned()
    })?;
    let port = id.port().ok_or("`server` has no :port")?;
    Ok((id.host().to_owned(), port))
}

/// An error and its sources, joined (transport errors hide the useful part in a source).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn id(s: &str) -> ServerId {
        ServerId::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Discovery for a lab: private addresses and plaintext allowed, DNS at a dead port.
    fn lab_discovery() -> Discovery {
        let config = Federation {
            dns_servers: vec!["127.0.0.1:9".parse().unwrap_or_else(|e| panic!("{e}"))],
            allow_private_addresses: true,
            allow_plaintext: true,
            ..Federation::default()
        };
        Discovery::new(&config, None, ManualClock::new()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn an_ipv6_literal_server_id_resolves_to_itself() {
        let d = lab_discovery();
        let target = d
            .resolve(&id("[::1]:7450"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            target.addr,
            "[::1]:7450".parse().unwrap_or_else(|e| panic!("{e}"))
        );
        let refused = Discovery::new(&Federation::default(), None, ManualClock::new())
            .unwrap_or_else(|e| panic!("{e}"))
            .resolve(&id("[::1]:7450"))
            .await;
        assert!(
            refused.is_err(),
            "a loopback literal needs allow_private_addresses"
        );
    }

    #[tokio::test]
    async fn a_static_route_update_forgets_only_that_server() {
        let d = lab_discovery();
        for (name, port) in [("a.hearth.test", 7001), ("b.hearth.test", 7002)] {
            d.set_static(id(name), format!("http://127.0.0.1:{port}"));
            assert!(d.resolve(&id(name)).await.is_ok());
        }
        assert_eq!(d.cached(), 2);
        // The link keeper hands the same routes over every second: nothing is forgotten.
        d.set_static(id("a.hearth.test"), "http://127.0.0.1:7001".into());
        assert_eq!(d.cached(), 2);
        // A changed route forgets that server only.
        d.set_static(id("a.hearth.test"), "http://127.0.0.1:7003".into());
        assert_eq!(d.cached(), 1);
        let target = d
            .resolve(&id("a.hearth.test"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(target.addr.port(), 7003);
    }
}
