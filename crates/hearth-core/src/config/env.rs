//! `HEARTH_<SECTION>_<KEY>` overrides. A variable names a top-level key (`HEARTH_SERVER_ID`)
//! or a section and a key (`HEARTH_LISTEN_ADDR`). A value is taken as text first and read as
//! a TOML value (`true`, `5`, `["a"]`) only when the key needs one, so a numeric password
//! stays a password. Variables that name no key are ignored with a warning (orchestrators
//! inject their own `HEARTH_*` names, e.g. Kubernetes' `HEARTH_PORT` for a Service named
//! `hearth`), with the nearest key when one looks like a typo.

const PREFIX: &str = "HEARTH_";
const TOP_LEVEL: &[&str] = &["server_id", "data_dir"];
const SECTIONS: &[&str] = &[
    "listen",
    "tls",
    "accounts",
    "passwords",
    "sessions",
    "mail",
    "federation",
    "oidc",
    "jwt",
    "limits",
    "store",
    "log",
    "metrics",
    "http",
    "tokens",
    "flows",
];

/// Variables that configure the process rather than the node, and so are not config keys.
const NOT_KEYS: &[&str] = &["HEARTH_CONFIG", "HEARTH_LOG"];

/// One override taken from the environment.
#[derive(Debug, Clone)]
pub(super) struct Override {
    /// The variable, e.g. `HEARTH_LISTEN_ADDR`.
    pub name: String,
    /// The section (`None` for a top-level key).
    pub section: Option<&'static str>,
    /// The key inside the section.
    pub key: String,
    /// The value as given.
    pub raw: String,
    /// Whether the value is currently taken as TOML (else as text).
    pub as_toml: bool,
}

impl Override {
    /// The dotted key, as config errors name it.
    pub fn dotted(&self) -> String {
        match self.section {
            Some(s) => format!("{s}.{}", self.key),
            None => self.key.clone(),
        }
    }

    fn value(&self) -> toml::Value {
        if self.as_toml {
            parse_value(&self.raw)
        } else {
            toml::Value::String(self.raw.clone())
        }
    }

    /// Writes the override into `table`.
    pub fn apply(&self, table: &mut toml::Table) {
        let target = match self.section {
            None => table,
            Some(section) => {
                let entry = table
                    .entry(section.to_owned())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if !entry.is_table() {
                    *entry = toml::Value::Table(toml::Table::new());
                }
                match entry {
                    toml::Value::Table(t) => t,
                    _ => return,
                }
            }
        };
        target.insert(self.key.clone(), self.value());
    }

    /// Whether reading the value as TOML would change it.
    pub fn could_be_toml(&self) -> bool {
        !self.as_toml && !matches!(parse_value(&self.raw), toml::Value::String(_))
    }
}

/// Splits `vars` into overrides of known sections and the names of variables that name no
/// section or top-level key.
pub(super) fn overrides(
    vars: impl IntoIterator<Item = (String, String)>,
) -> (Vec<Override>, Vec<String>) {
    let (mut found, mut ignored) = (Vec::new(), Vec::new());
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        if NOT_KEYS.contains(&name.as_str()) || kubernetes_service(rest) {
            continue;
        }
        let rest = rest.to_ascii_lowercase();
        if TOP_LEVEL.contains(&rest.as_str()) {
            found.push(Override {
                name,
                section: None,
                key: rest,
                raw,
                as_toml: false,
            });
            continue;
        }
        let split = SECTIONS.iter().find_map(|s| {
            rest.strip_prefix(s)
                .and_then(|k| k.strip_prefix('_'))
                .map(|k| (*s, k.to_owned()))
        });
        match split {
            Some((section, key)) => found.push(Override {
                name,
                section: Some(section),
                key,
                raw,
                as_toml: false,
            }),
            None => ignored.push(name),
        }
    }
    (found, ignored)
}

/// What Kubernetes injects for a Service named `hearth` (`HEARTH_PORT`,
/// `HEARTH_PORT_7450_TCP_ADDR`, `HEARTH_SERVICE_HOST`, `HEARTH_SERVICE_PORT_GRPC`, …): no
/// key is named so, and warning about them on every start and CLI command only adds noise.
fn kubernetes_service(rest: &str) -> bool {
    let port_var = |tail: &str| {
        let mut parts = tail.split('_');
        parts
            .next()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            && parts
                .next()
                .is_some_and(|p| matches!(p, "TCP" | "UDP" | "SCTP"))
    };
    rest == "PORT"
        || rest == "SERVICE_HOST"
        || rest == "SERVICE_PORT"
        || rest.starts_with("SERVICE_PORT_")
        || rest.strip_prefix("PORT_").is_some_and(port_var)
}

fn parse_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

/// The variable name nearest to `name` among the given keys of `section`, when it is close
/// enough to be a typo (edit distance at most 2).
pub(super) fn nearest(name: &str, candidates: &[String]) -> Option<String> {
    candidates
        .iter()
        .map(|c| {
            (
                distance(&name.to_ascii_uppercase(), &c.to_ascii_uppercase()),
                c,
            )
        })
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.clone())
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Every `HEARTH_*` name of a key that the defaults spell out, for typo suggestions.
pub(super) fn known_names(defaults: &toml::Table) -> Vec<String> {
    let mut names = Vec::new();
    for (key, value) in defaults {
        match value {
            toml::Value::Table(section) => {
                for sub in section.keys() {
                    names.push(format!("{PREFIX}{}_{}", key, sub).to_ascii_uppercase());
                }
            }
            _ => names.push(format!("{PREFIX}{key}").to_ascii_uppercase()),
        }
    }
    names
}
