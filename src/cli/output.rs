//! How the CLI prints: times as UTC RFC 3339 (`2026-11-24T07:35:00Z`), lists as aligned
//! text or JSON lines (`--json`), and every text from the database escaped.
pub use hearth::clock::rfc3339 as time;
pub use hearth::domain::validate::printable;

/// Prints one JSON object per line.
pub fn json_lines(rows: impl IntoIterator<Item = serde_json::Value>) {
    for row in rows {
        println!("{row}");
    }
}

/// Whether standard output may receive a secret: never a terminal (it would stay in the
/// scroll-back and on screen); a file the shell just made for `> FILE` is narrowed to mode
/// 0600 first (shells create it 0644 under the usual umask), and refused if it cannot be.
/// Pipes are the receiver's to keep safe.
pub fn secret_stdout(what: &str) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    use std::os::unix::fs::PermissionsExt;
    if std::io::stdout().is_terminal() {
        anyhow::bail!(
            "refusing to print {what} to a terminal: write it to a file with `--out FILE` (mode 0600), or redirect it"
        );
    }
    let Ok(path) = std::fs::read_link("/proc/self/fd/1") else {
        return Ok(());
    };
    let Ok(meta) = std::fs::metadata(&path) else {
        return Ok(());
    };
    if !meta.is_file() || meta.permissions().mode() & 0o077 == 0 {
        return Ok(());
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
        anyhow::anyhow!(
            "refusing to write {what} to {}: other users can read it (mode {:o}) and it could not be narrowed to 0600 ({e}); use `--out FILE`",
            path.display(),
            meta.permissions().mode() & 0o777
        )
    })
}
