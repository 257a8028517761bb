//! `HEARTH_<SECTION>_<KEY>` overrides. A variable names a top-level key (`HEARTH_SERVER_ID`)
//! or a section and a key (`HEARTH_LISTEN_ADDR`); its value is read as a TOML value when it
//! parses as one (`true`, `5`, `["a"]`) and as a string otherwise.
use super::ConfigError;

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
];

/// Variables that configure the process rather than the node, and so are not config keys.
const NOT_KEYS: &[&str] = &["HEARTH_CONFIG", "HEARTH_LOG"];

pub(super) fn apply(
    table: &mut toml::Table,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        if NOT_KEYS.contains(&name.as_str()) {
            continue;
        }
        let rest = rest.to_ascii_lowercase();
        let value = parse_value(&raw);
        if TOP_LEVEL.contains(&rest.as_str()) {
            table.insert(rest, value);
            continue;
        }
        let Some((section, key)) = SECTIONS.iter().find_map(|s| {
            rest.strip_prefix(s)
                .and_then(|k| k.strip_prefix('_'))
                .map(|k| (*s, k))
        }) else {
            return Err(ConfigError::key(
                name.clone(),
                "this environment variable names no config key \
                 (expected HEARTH_<SECTION>_<KEY>, e.g. HEARTH_LISTEN_ADDR)",
            ));
        };
        let entry = table
            .entry(section.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(section_table) = entry else {
            return Err(ConfigError::key(section, "expected a table"));
        };
        section_table.insert(key.to_owned(), value);
    }
    Ok(())
}

fn parse_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}
