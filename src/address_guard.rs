//! The private-address rule of `[federation]` and the DNS that applies it, for every call
//! this node makes to an address someone else named: peers (`federation/discovery.rs`) and
//! identity providers (`providers.rs`). An address that is not globally reachable is
//! refused unless `federation.allow_private_addresses`, whether it comes from DNS or is
//! written in a URL.
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, Protocol, ResolverConfig, ResolverOpts};
use hickory_resolver::TokioAsyncResolver;

use crate::config::Federation;

/// True for every address that is not globally reachable by the IANA IPv4 and IPv6
/// special-purpose address registries (loopback, private, shared 100.64/10, link-local,
/// documentation, benchmarking, reserved, multicast, ULA, …), and for IPv6 forms that embed
/// such an IPv4 address (mapped, compatible, NAT64, 6to4). Federation and discovery refuse
/// them unless `federation.allow_private_addresses`.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 192 && b == 0 && c == 2)
                || (a == 192 && b == 88 && c == 99)
                || (a == 198 && (b == 18 || b == 19))
                || (a == 198 && b == 51 && c == 100)
                || (a == 203 && b == 0 && c == 113)
                || a >= 240
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            let embedded_v4 = |hi: u16, lo: u16| {
                is_private(IpAddr::V4(std::net::Ipv4Addr::new(
                    (hi >> 8) as u8,
                    hi as u8,
                    (lo >> 8) as u8,
                    lo as u8,
                )))
            };
            v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                || (seg[0] & 0xffc0) == 0xfec0
                || (seg[0] == 0x2001 && seg[1] < 0x0200)
                || (seg[0] == 0x2001 && seg[1] == 0x0db8)
                || (seg[0] == 0x0100 && seg[1..4] == [0, 0, 0])
                || (seg[0] & 0xfff0) == 0x3ff0
                || seg[0] == 0x5f00
                || (seg[0] == 0x0064 && seg[1] == 0xff9b && seg[2] == 1)
                || (seg[0..6] == [0, 0, 0, 0, 0, 0xffff] && embedded_v4(seg[6], seg[7]))
                || (seg[0..6] == [0, 0, 0, 0, 0, 0] && embedded_v4(seg[6], seg[7]))
                || (seg[0..6] == [0x64, 0xff9b, 0, 0, 0, 0] && embedded_v4(seg[6], seg[7]))
                || (seg[0] == 0x2002 && embedded_v4(seg[1], seg[2]))
        }
    }
}

/// Hands reqwest our resolver, so well-known lookups see the same DNS (and the same
/// private-address rule) as everything else.
#[derive(Debug, Clone)]
struct ReqwestDns {
    resolver: TokioAsyncResolver,
    allow_private: bool,
}

impl reqwest::dns::Resolve for ReqwestDns {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        Box::pin(async move {
            let ips = this
                .resolver
                .lookup_ip(format!("{}.", name.as_str()))
                .await?;
            let addrs: Vec<SocketAddr> = ips
                .iter()
                .filter(|ip| this.allow_private || !is_private(*ip))
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if addrs.is_empty() {
                return Err("only private addresses (refused by federation.allow_private_addresses = false)".into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The DNS resolver of `[federation]` (`dns_servers`, else the system's).
pub fn resolver(config: &Federation) -> Result<TokioAsyncResolver, String> {
    if config.dns_servers.is_empty() {
        return TokioAsyncResolver::tokio_from_system_conf()
            .map_err(|e| format!("system DNS resolver: {e}"));
    }
    let mut rc = ResolverConfig::new();
    for addr in &config.dns_servers {
        rc.add_name_server(NameServerConfig::new(*addr, Protocol::Udp));
    }
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 1;
    Ok(TokioAsyncResolver::tokio(rc, opts))
}

/// A reqwest resolver that applies the private-address rule of `[federation]` to every
/// host name; pair it with [`check_literal`] for URLs that name an IP address.
pub fn guarded_dns(
    config: &Federation,
) -> Result<Arc<impl reqwest::dns::Resolve + 'static>, String> {
    Ok(guard(resolver(config)?, config.allow_private_addresses))
}

/// [`guarded_dns`] over a resolver the caller also uses itself.
pub fn guard(
    resolver: TokioAsyncResolver,
    allow_private: bool,
) -> Arc<impl reqwest::dns::Resolve + 'static> {
    Arc::new(ReqwestDns {
        resolver,
        allow_private,
    })
}

/// Refuses a URL whose host is a private IP literal unless `allow_private` (a literal never
/// reaches the resolver, so the rule is applied here).
pub fn check_literal(url: &reqwest::Url, allow_private: bool) -> Result<(), String> {
    let host = url.host_str().unwrap_or_default();
    let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() else {
        return Ok(());
    };
    if is_private(ip) && !allow_private {
        return Err(format!(
            "{ip} is a private or loopback address (refused by federation.allow_private_addresses = false)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_purpose_addresses_are_private() {
        for text in [
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "192.0.0.8",
            "192.0.2.5",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::10.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "2002:a00:1::",
            "3fff::1",
            "5f00::1",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            let ip: IpAddr = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(is_private(ip), "{text} counts as public");
        }
        for text in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.1",
            "100.128.0.1",
            "198.20.0.1",
            "2606:4700::1111",
            "2a00:1450::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::",
        ] {
            let ip: IpAddr = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(!is_private(ip), "{text} counts as private");
        }
    }
}
