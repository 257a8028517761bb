//! `hearth invite …`, `hearth group …`, `hearth community …`: the operator's registration
//! invites, and the groups and communities that user invites lead to.
use anyhow::bail;
use clap::Subcommand;
use hearth::domain::invites::NewInvite;
use hearth::domain::model::InviteTarget;
use hearth::domain::Services;
use serde_json::json;

use super::output::{json_lines, time};

#[derive(Subcommand)]
pub enum InviteCommand {
    /// Create an invite and print its code (shown once).
    Create {
        /// A registration invite: SignUp with it as invite_code when registration = "invite".
        #[arg(long, required = true)]
        registration: bool,
        /// How many accounts it may create.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// How long it lives: a number with s, m, h or d (e.g. 7d).
        #[arg(long, default_value = "7d")]
        expires: String,
    },
    /// List the operator's invites that were not revoked.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Revoke one of the operator's invites by its code or listed hint.
    Revoke {
        /// The code, or its first characters as `invite list` shows them.
        code: String,
    },
}

#[derive(Subcommand)]
pub enum PlaceCommand {
    /// Create one, owned by an account, and print its id (its owner invites people with
    /// tangle CreateInvite).
    Create {
        /// Its name.
        name: String,
        /// The owner's e-mail address.
        #[arg(long)]
        owner: String,
    },
}

/// `7d`, `12h`, `30m`, `90s` as milliseconds.
pub fn duration_ms(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = match digits.parse() {
        Ok(n) if n > 0 => n,
        _ => bail!("`{text}` is not a duration: give a number with s, m, h or d, e.g. 7d"),
    };
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("`{text}` has no unit: use s, m, h or d, e.g. 7d"),
    };
    Ok(n.saturating_mul(unit_ms))
}

pub async fn invite(domain: &Services, cmd: InviteCommand) -> anyhow::Result<()> {
    match cmd {
        InviteCommand::Create { uses, expires, .. } => {
            let expires_at = domain.clock().now_ms() + duration_ms(&expires)?;
            let (code, i) = domain
                .invites
                .create(
                    None,
                    NewInvite {
                        target: InviteTarget::Registration,
                        target_id: 0,
                        expires_at: Some(expires_at),
                        max_uses: Some(uses),
                    },
                )
                .await?;
            eprintln!(
                "registration invite for {uses} account(s), valid until {}:",
                time(i.expires_at)
            );
            println!("{code}");
        }
        InviteCommand::List { json } => {
            let invites = domain.invites.list(0).await?;
            if json {
                json_lines(invites.iter().map(|i| {
                    json!({
                        "hint": i.hint, "target": i.target.as_str(), "uses": i.uses,
                        "max_uses": i.max_uses, "expires_at": time(i.expires_at),
                        "created_at": time(i.created_at),
                    })
                }));
                return Ok(());
            }
            if invites.is_empty() {
                println!("no invites");
            }
            for i in invites {
                let max = i.max_uses.map_or("∞".to_owned(), |m| m.to_string());
                println!(
                    "{}…  {}  used {}/{max}  expires {}",
                    i.hint,
                    i.target.as_str(),
                    i.uses,
                    time(i.expires_at)
                );
            }
        }
        InviteCommand::Revoke { code } => {
            let i = domain.invites.revoke(0, &code).await?;
            println!("revoked invite {}…", i.hint);
        }
    }
    Ok(())
}

pub async fn place(domain: &Services, kind: InviteTarget, cmd: PlaceCommand) -> anyhow::Result<()> {
    let PlaceCommand::Create { name, owner } = cmd;
    let owner = domain.operator.user(&owner).await?;
    let id = domain.invites.create_place(kind, &name, owner.id).await?;
    eprintln!("created {} owned by user {}:", kind.as_str(), owner.id);
    println!("{id}");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        assert_eq!(super::duration_ms("7d").ok(), Some(7 * 86_400_000));
        assert_eq!(super::duration_ms("90s").ok(), Some(90_000));
        assert!(super::duration_ms("7").is_err());
        assert!(super::duration_ms("d").is_err());
        assert!(super::duration_ms("0h").is_err());
    }
}
