//! The `[log] level` filter: checked when the config loads and used by the logger, so a level
//! the config accepted is the level the node logs at.
use tracing_subscriber::EnvFilter;

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
            text.chars().take(80).collect::<String>().escape_debug()
        ));
    }
    EnvFilter::try_new(crates_of_hearth(text)).map_err(|e| format!("`{text}`: {e}"))
}

/// A directive for the target `hearth` also names the crates under it (`hearth_core`,
/// `hearth_store`), whose events carry their own crate's name: `hearth=debug` keeps meaning
/// "all of Hearth" as it did before the crates were split.
fn crates_of_hearth(text: &str) -> String {
    text.split(',')
        .flat_map(|part| match part.trim().strip_prefix("hearth=") {
            Some(level) => vec![
                part.trim().to_owned(),
                format!("hearth_core={level}"),
                format!("hearth_store={level}"),
            ],
            None => vec![part.to_owned()],
        })
        .collect::<Vec<_>>()
        .join(",")
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
        let f = filter("info,hearth=debug")
            .unwrap_or_else(|e| panic!("{e}"))
            .to_string();
        assert!(
            f.contains("hearth_core=debug") && f.contains("hearth_store=debug"),
            "{f}"
        );
        for bad in ["verbose", "", "loud,hearth=debug", "hearth=lots"] {
            let e = filter(bad).err().unwrap_or_default();
            assert!(e.contains("is not a log level"), "{bad}: {e}");
        }
    }
}
