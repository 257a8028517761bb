//! Logging: `[log] level` (or `HEARTH_LOG`, which wins) and `[log] format` (`text` for
//! people, `json` for collectors), written to stderr. An unknown level is an error that
//! names it, never a silent "log nothing".
use std::io::IsTerminal;

use crate::config::log_filter::filter;
use crate::config::{Log, LogFormat};

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
