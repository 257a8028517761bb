//! Logging: `[log] level` (or `HEARTH_LOG`, which wins) and `[log] format` (`text` for
//! people, `json` for collectors), written to stderr. An unknown level is an error that
//! names it, never a silent "log nothing".
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{Log, LogFormat};

const LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace", "off"];

/// The filter for `text`: a level (`info`) or directives naming targets
/// (`info,hearth=debug`); anything else is refused with what is expected.
pub fn filter(text: &str) -> Result<EnvFilter, String> {
    let text = text.trim();
    let plausible = text.split(',').all(|part| {
        let level = part.rsplit('=').next().unwrap_or_default().trim();
        LEVELS.contains(&level.to_ascii_lowercase().as_str())
    });
    if text.is_empty() || !plausible {
        return Err(format!(
            "`{}` is not a log level (expected error, warn, info, debug, trace or off, or \
             directives such as info,hearth=debug)",
            crate::domain::validate::printable(text, 80)
        ));
    }
    EnvFilter::try_new(text).map_err(|e| format!("`{text}`: {e}"))
}

/// Installs the global subscriber from `config`, with `HEARTH_LOG` winning over its level.
/// The error names the setting to fix.
pub fn init(config: &Log, env_level: Option<String>) -> Result<(), String> {
    let filter = match env_level {
        Some(level) => filter(&level).map_err(|e| format!("HEARTH_LOG: {e}"))?,
        None => filter(&config.level).map_err(|e| format!("config key `log.level`: {e}"))?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match config.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    installed.map_err(|e| format!("logging: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_directives_are_accepted_and_typos_named() {
        for ok in [
            "info",
            "DEBUG",
            "warn,hearth=trace",
            "hearth::audit=info",
            "off",
        ] {
            assert!(filter(ok).is_ok(), "{ok}");
        }
        for bad in ["verbose", "", "loud,hearth=debug", "hearth=lots"] {
            let e = filter(bad).err().unwrap_or_default();
            assert!(e.contains("is not a log level"), "{bad}: {e}");
        }
    }
}
