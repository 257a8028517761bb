//! `server_id`: a lowercase DNS name with an optional `:port` (DESIGN.md §4.1). This is the
//! one place where names are canonicalised; everything else compares canonical values.
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A canonical server_id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerId {
    host: String,
    port: Option<u16>,
}

/// Why a text is not a server_id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a server_id: {reason} (expected a DNS name with an optional :port, e.g. alpha.example.org or alpha.example.org:7450)")]
pub struct ServerIdError {
    text: String,
    reason: &'static str,
}

impl ServerId {
    /// `localhost`, the default name.
    pub fn localhost() -> Self {
        Self {
            host: "localhost".into(),
            port: None,
        }
    }

    /// Parses and canonicalises: lowercases, drops one trailing dot, refuses schemes, paths,
    /// userinfo and malformed labels. IP literals parse; callers decide whether to allow them.
    pub fn parse(text: &str) -> Result<Self, ServerIdError> {
        let err = |reason| ServerIdError {
            text: text.to_owned(),
            reason,
        };
        if text.is_empty() {
            return Err(err("it is empty"));
        }
        if text.contains("://") {
            return Err(err("it has a scheme"));
        }
        if text.contains(['/', '?', '#']) {
            return Err(err("it has a path"));
        }
        if text.contains('@') {
            return Err(err("it has userinfo"));
        }
        let (host, port) = split_port(text).map_err(err)?;
        let host = host.to_ascii_lowercase();
        let host = host.strip_suffix('.').unwrap_or(&host).to_owned();
        if host.starts_with('[') {
            let inner = host.trim_start_matches('[').trim_end_matches(']');
            let ip: IpAddr = inner.parse().map_err(|_| err("bad IPv6 literal"))?;
            return Ok(Self {
                host: format!("[{ip}]"),
                port,
            });
        }
        if host.parse::<IpAddr>().is_ok() {
            return Ok(Self { host, port });
        }
        if host.len() > 253 {
            return Err(err("the name is longer than 253 characters"));
        }
        for label in host.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(err("a label is empty or longer than 63 characters"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(err("only letters, digits, '-' and '.' are allowed"));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(err("a label starts or ends with '-'"));
            }
        }
        Ok(Self { host, port })
    }

    /// The host part (a DNS name, an IPv4 literal or a bracketed IPv6 literal).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The explicit port, if any.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// True for an IP literal rather than a DNS name.
    pub fn is_ip_literal(&self) -> bool {
        self.host.starts_with('[') || self.host.parse::<IpAddr>().is_ok()
    }
}

fn split_port(text: &str) -> Result<(&str, Option<u16>), &'static str> {
    let (host, port) = if let Some(end) = text.strip_prefix('[').and_then(|_| text.find(']')) {
        match &text[end + 1..] {
            "" => (text, None),
            rest => (
                &text[..=end],
                Some(rest.strip_prefix(':').ok_or("bad port")?),
            ),
        }
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return Err("an IPv6 literal needs brackets"),
            None => (text, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err("the port is not a number from 1 to 65535"),
            Ok(n) => Some(n),
        },
    };
    Ok((host, port))
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

impl std::str::FromStr for ServerId {
    type Err = ServerIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for ServerId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ServerId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        let id = ServerId::parse("Alpha.Hearth.Test.:7450").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(id.to_string(), "alpha.hearth.test:7450");
        assert_eq!(id.host(), "alpha.hearth.test");
        assert_eq!(id.port(), Some(7450));
        assert_eq!(
            ServerId::parse("[::1]:80").map(|s| s.to_string()),
            Ok("[::1]:80".into())
        );
        assert!(ServerId::parse("127.0.0.1").is_ok_and(|s| s.is_ip_literal()));
    }

    #[test]
    fn refusals_say_why() {
        for (text, why) in [
            ("https://a.org", "scheme"),
            ("a.org/x", "path"),
            ("u@a.org", "userinfo"),
            ("a..org", "label"),
            ("-a.org", "'-'"),
            ("a_b.org", "letters"),
            ("a.org:0", "port"),
            ("a.org:99999", "port"),
            ("", "empty"),
        ] {
            let e = ServerId::parse(text).err().map(|e| e.to_string());
            assert!(
                e.as_deref().is_some_and(|m| m.contains(why)),
                "{text}: {e:?}"
            );
        }
    }
}
