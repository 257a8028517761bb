//! Loading the configuration: built-in defaults, then the file, then `HEARTH_*` overrides
//! (see `env.rs`), then the checks that span keys. Errors name the key; values given for
//! credentials are never echoed.
use std::path::{Path, PathBuf};

use super::{env, Config, ConfigError};

impl Config {
    /// Loads defaults, then `path` (if any), then `HEARTH_*` variables from `vars`.
    pub fn load(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let (config, warnings) = Self::load_with_warnings(path, vars)?;
        for w in warnings {
            tracing::warn!("{w}");
        }
        Ok(config)
    }

    /// Like [`Config::load`], returning the warnings instead of logging them (tests).
    pub fn load_with_warnings(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Self, Vec<String>), ConfigError> {
        let table = match path {
            Some(path) => Self::read_table(path)?,
            None => toml::Table::new(),
        };
        let (mut config, warnings) = Self::with_overrides(table, vars)?;
        if let Some(dir) = path.and_then(Path::parent) {
            config.resolve_paths(dir);
        }
        Ok((config, warnings))
    }

    /// The effective settings as TOML, with credentials (SMTP password and URL userinfo,
    /// OIDC client secrets) replaced by `<redacted>`.
    pub fn redacted_toml(&self) -> String {
        let mut copy = self.clone();
        let hide = |s: &mut Option<String>| {
            if s.is_some() {
                *s = Some("<redacted>".into());
            }
        };
        hide(&mut copy.mail.smtp_password);
        for url in [&mut copy.mail.smtp_url, &mut copy.store.url]
            .into_iter()
            .flatten()
        {
            if let Some((scheme, rest)) = url.split_once("://") {
                if let Some((_, host)) = rest.rsplit_once('@') {
                    *url = format!("{scheme}://<redacted>@{host}");
                }
            }
        }
        for p in &mut copy.oidc.providers {
            hide(&mut p.client_secret);
        }
        toml::to_string_pretty(&copy).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }

    /// Makes relative paths relative to `dir` (the config file's directory), so the node
    /// finds its data whatever directory it was started from.
    fn resolve_paths(&mut self, dir: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        resolve(&mut self.data_dir);
        if let Some(tls) = &mut self.tls {
            resolve(&mut tls.cert);
            resolve(&mut tls.key);
        }
        if let Some(ca) = &mut self.federation.extra_ca {
            resolve(ca);
        }
        if let Some(ca) = &mut self.store.ca_file {
            resolve(ca);
        }
    }

    fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|reason| ConfigError::Read {
            path: path.to_owned(),
            reason,
        })?;
        text.parse::<toml::Table>()
            .map_err(|e| ConfigError::Syntax {
                path: path.to_owned(),
                message: e.to_string(),
            })
    }

    /// Applies environment overrides: text first, TOML where the key needs it; variables
    /// that name no key are dropped with a warning (and a suggestion for a likely typo).
    fn with_overrides(
        table: toml::Table,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Self, Vec<String>), ConfigError> {
        let (mut overrides, ignored) = env::overrides(vars);
        let known = match toml::Value::try_from(Config::default()) {
            Ok(toml::Value::Table(t)) => env::known_names(&t),
            _ => Vec::new(),
        };
        let mut unknown = ignored;
        loop {
            let mut attempt = table.clone();
            for o in &overrides {
                o.apply(&mut attempt);
            }
            let err = match Self::from_table(attempt) {
                Ok(config) => {
                    let warnings = unknown
                        .iter()
                        .map(|name| match env::nearest(name, &known) {
                            Some(near) => format!(
                                "ignoring environment variable {name}: it names no config key (did you mean {near}?)"
                            ),
                            None => format!(
                                "ignoring environment variable {name}: it names no config key"
                            ),
                        })
                        .collect();
                    return Ok((config, warnings));
                }
                Err(e) => e,
            };
            let ConfigError::Key { key, message } = &err else {
                return Err(err);
            };
            let Some(i) = overrides.iter().position(|o| &o.dotted() == key) else {
                return Err(err);
            };
            if message.starts_with("unknown field") {
                unknown.push(overrides.remove(i).name);
            } else if overrides[i].could_be_toml() {
                overrides[i].as_toml = true;
            } else {
                let o = &overrides[i];
                let dotted = o.dotted();
                let leaf = o.key.as_str();
                let credential = ["password", "secret", "smtp_url"]
                    .iter()
                    .any(|c| leaf.contains(c));
                let message = if credential {
                    message.replace(&o.raw, "<the value given>")
                } else {
                    message.clone()
                };
                // Lists and tables come from the environment as TOML.
                let hint = match message.contains("expected a sequence") {
                    true => format!(
                        "; a list is written as TOML, e.g. {}='[\"{}\"]'",
                        o.name,
                        o.raw.replace('"', "")
                    ),
                    false => String::new(),
                };
                return Err(ConfigError::key(
                    dotted,
                    format!(
                        "{message} (set by the environment variable {}){hint}",
                        o.name
                    ),
                ));
            }
        }
    }

    /// Loads from TOML text (tests and `init` checks).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let table = text
            .parse::<toml::Table>()
            .map_err(|e| ConfigError::Syntax {
                path: PathBuf::from("<text>"),
                message: e.to_string(),
            })?;
        Self::from_table(table)
    }

    fn from_table(table: toml::Table) -> Result<Self, ConfigError> {
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                let leaf = key.rsplit('.').next().unwrap_or_default();
                let message = if leaf.contains("password") || leaf.contains("secret") {
                    // Never echo what was given for a credential.
                    "has the wrong type or form (expected text)".to_owned()
                } else {
                    plain_types(e.into_inner().message())
                };
                ConfigError::key(key, message)
            })?;
        config.validate()?;
        Ok(config)
    }

    /// `[[oidc.providers]]`: each stops start-up naming the key that is wrong.
    fn validate_providers(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for (i, p) in self.oidc.providers.iter().enumerate() {
            let key = |k: &str| format!("oidc.providers[{i}].{k}");
            if p.id.is_empty() || !seen.insert(p.id.as_str()) {
                return Err(ConfigError::key(key("id"), "must be set and unique"));
            }
            let urls: Vec<(&str, &Option<String>)> = match p.kind.as_str() {
                "oidc" if p.issuer.is_none() => {
                    return Err(ConfigError::key(
                        key("issuer"),
                        "an oidc provider needs its issuer URL",
                    ))
                }
                "oidc" => vec![("issuer", &p.issuer)],
                "oauth" if p.user_url.is_none() => {
                    return Err(ConfigError::key(
                        key("user_url"),
                        "an oauth provider needs its user endpoint",
                    ))
                }
                "oauth" if p.id_field.is_none() => {
                    return Err(ConfigError::key(
                        key("id_field"),
                        "an oauth provider needs the name of its id field",
                    ))
                }
                "oauth" => vec![("user_url", &p.user_url)],
                other => {
                    return Err(ConfigError::key(
                        key("type"),
                        format!("`{other}` is not a provider type (oidc or oauth)"),
                    ))
                }
            };
            for (name, url) in urls {
                let url = url.as_deref().unwrap_or_default();
                let ok =
                    url.starts_with("https://") || (p.allow_http && url.starts_with("http://"));
                if !ok {
                    return Err(ConfigError::key(
                        key(name),
                        format!(
                            "`{url}` must be an https:// URL (http:// only with allow_http = true)"
                        ),
                    ));
                }
            }
            if p.client_id.is_some() != p.client_secret.is_some() {
                return Err(ConfigError::key(
                    key("client_secret"),
                    "set both client_id and client_secret (introspection), or neither",
                ));
            }
            let checks_the_app = p.kind == "oidc" && p.client_id.is_some();
            if !checks_the_app && !p.accept_tokens_of_any_app {
                let why = match p.kind.as_str() {
                    "oidc" => "without client_id and client_secret Hearth cannot check which application a token was issued to: set them (introspection)",
                    _ => "an oauth user endpoint does not say which application a token was issued to",
                };
                return Err(ConfigError::key(
                    key("accept_tokens_of_any_app"),
                    format!("{why}, or set accept_tokens_of_any_app = true to accept tokens any app obtained for the user"),
                ));
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for origin in &self.http.cors_origins {
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            let ok = origin == "*" || rest.is_some_and(|r| !r.is_empty() && !r.contains('/'));
            if !ok {
                return Err(ConfigError::key(
                    "http.cors_origins",
                    format!(
                        "`{origin}` is not an origin (expected \"*\" or scheme://host[:port], e.g. https://app.example.org)"
                    ),
                ));
            }
        }
        super::log_filter::filter(&self.log.level).map_err(|e| ConfigError::key("log.level", e))?;
        let p = &self.passwords;
        if p.argon2_memory_kib < 8 * p.argon2_parallelism.max(1) {
            return Err(ConfigError::key(
                "passwords.argon2_memory_kib",
                "must be at least 8 KiB per lane of argon2_parallelism",
            ));
        }
        if p.argon2_iterations == 0 || p.argon2_parallelism == 0 {
            return Err(ConfigError::key(
                "passwords.argon2_iterations",
                "argon2_iterations and argon2_parallelism must be at least 1",
            ));
        }
        if self.sessions.idle_timeout_secs == 0 || self.sessions.lifetime_secs == 0 {
            return Err(ConfigError::key(
                "sessions.lifetime_secs",
                "session lifetimes must be at least 1 second",
            ));
        }
        self.validate_providers()?;
        if self.store.ca_file.is_some() && self.store.url.is_none() {
            return Err(ConfigError::key(
                "store.ca_file",
                "is for TLS to PostgreSQL: set store.url (with sslmode=require) too, or remove it",
            ));
        }
        if !(60..=86_400).contains(&self.flows.lifetime_secs) {
            return Err(ConfigError::key(
                "flows.lifetime_secs",
                "must be 60 to 86400 seconds",
            ));
        }
        if !(1..=3660).contains(&self.tokens.max_lifetime_days) {
            return Err(ConfigError::key(
                "tokens.max_lifetime_days",
                "must be 1 to 3660 days",
            ));
        }
        if self.accounts.sign_ins_per_ip_per_minute == 0 {
            return Err(ConfigError::key(
                "accounts.sign_ins_per_ip_per_minute",
                "must be at least 1",
            ));
        }
        if self.mail.smtp_username.is_some() != self.mail.smtp_password.is_some() {
            return Err(ConfigError::key(
                "mail.smtp_password",
                "set both mail.smtp_username and mail.smtp_password, or neither",
            ));
        }
        if let Some(url) = &self.mail.smtp_url {
            if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                return Err(ConfigError::key(
                    "mail.smtp_url",
                    format!("`{url}` must start with smtp:// or smtps://"),
                ));
            }
        }
        if self.server_id.is_ip_literal() && !self.federation.allow_private_addresses {
            return Err(ConfigError::key(
                "server_id",
                "an IP literal is only allowed with federation.allow_private_addresses = true",
            ));
        }
        Ok(())
    }
}

/// serde's type names as an operator reads them.
fn plain_types(message: &str) -> String {
    [
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u32", "expected a whole number, 0 or more"),
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected usize", "expected a whole number, 0 or more"),
        ("expected a boolean", "expected true or false"),
    ]
    .iter()
    .fold(message.to_owned(), |m, (from, to)| m.replace(from, to))
}
