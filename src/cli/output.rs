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
