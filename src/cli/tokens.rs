//! `hearth token …`: the operator's view of personal access tokens (never their values).
use clap::Subcommand;
use hearth::domain::Services;
use serde_json::json;

use super::output::{json_lines, printable, time};

#[derive(Subcommand)]
pub enum TokenCommand {
    /// List an account's personal access tokens (never their values).
    List {
        /// The account's e-mail address.
        #[arg(long)]
        email: String,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a personal access token by uuid, with the sessions made from it.
    Revoke {
        /// The token's uuid (from `token list` or the owner's ListTokens).
        uuid: String,
    },
}

pub async fn token(domain: &Services, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::List { email, json } => {
            let user = domain.operator.user(&email).await?;
            let tokens = domain.access_tokens.list_of(user.id).await?;
            if json {
                json_lines(tokens.iter().map(|t| {
                    json!({
                        "uuid": t.uuid, "name": t.name, "scopes": t.scopes.names(),
                        "created_at": time(t.created_at), "expires_at": time(t.expires_at),
                        "last_used_at": t.last_used_at.map(time), "last_used_ip": t.last_used_ip,
                    })
                }));
                return Ok(());
            }
            if tokens.is_empty() {
                println!("{email} has no personal access tokens");
                return Ok(());
            }
            println!(
                "{:<36} {:<21} {:<21} {:<24} NAME / SCOPES",
                "UUID", "EXPIRES", "LAST USED", "FROM"
            );
            for t in tokens {
                println!(
                    "{:<36} {:<21} {:<21} {:<24} {} / {}",
                    t.uuid,
                    time(t.expires_at),
                    t.last_used_at.map(time).unwrap_or_else(|| "never".into()),
                    printable(t.last_used_ip.as_deref().unwrap_or("-"), 24),
                    printable(&t.name, 64),
                    t.scopes.names().join(" ")
                );
            }
        }
        TokenCommand::Revoke { uuid } => {
            let t = domain.access_tokens.revoke(&uuid).await?;
            println!(
                "revoked token {} ({}) of user {}",
                t.uuid,
                printable(&t.name, 64),
                t.user_id
            );
        }
    }
    Ok(())
}
