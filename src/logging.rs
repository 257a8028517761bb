//! Logging: `[log] level` (or `HEARTH_LOG`, which wins) and `[log] format` (`text` for
//! people, `json` for collectors), written to stderr. An unknown level is an error that
//! names it, never a silent "log nothing".
//!
//! Lines are handed to a writer thread through a bounded queue (tracing-appender's
//! non-blocking writer), so a request never waits for stderr: a slow or stalled reader (a
//! full pipe, a busy journald) costs dropped lines, counted in
//! `hearth_log_lines_dropped_total`, not stalled requests.
use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};

use crate::config::log_filter::filter;
use crate::config::{Log, LogFormat};

/// Lines the queue holds before it drops new ones (a few MB at most).
const QUEUED_LINES: usize = 8192;

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();
/// Held until [`flush`]: dropping it writes out what is queued.
static WRITER: Mutex<Option<WorkerGuard>> = Mutex::new(None);

/// Installs the global subscriber from `config`, with `HEARTH_LOG` winning over its level.
/// The error names the setting to fix.
pub fn init(config: &Log, env_level: Option<String>) -> Result<(), String> {
    let filter = match env_level {
        Some(level) => filter(&level).map_err(|e| format!("HEARTH_LOG: {e}"))?,
        None => filter(&config.level).map_err(|e| format!("config key `log.level`: {e}"))?,
    };
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(QUEUED_LINES)
        .lossy(true)
        .thread_name("hearth-log")
        // Lines that queued up while the thread wrote go out in one write: the thread
        // flushes whenever the queue is empty.
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let _ = DROPPED.set(writer.error_counter());
    if let Ok(mut held) = WRITER.lock() {
        *held = Some(guard);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let installed = match config.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    installed.map_err(|e| format!("logging: {e}"))
}

/// Lines dropped because the queue to stderr was full.
pub fn dropped_lines() -> u64 {
    DROPPED.get().map_or(0, |c| c.dropped_lines() as u64)
}

/// Writes out the queued lines; call before the process exits.
pub fn flush() {
    if let Ok(mut held) = WRITER.lock() {
        held.take();
    }
}
