//! `hearth user …`, `hearth session …` and `hearth mail …`: accounts, sessions and the
//! outbox, through the same services the node runs.
use anyhow::bail;
use clap::Subcommand;
use hearth::domain::accounts::cli_device;
use hearth::domain::Services;
use serde_json::json;

use super::output::{json_lines, printable, time};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a local account (password from a prompt, or one line on stdin).
    Add {
        /// The account's e-mail address.
        #[arg(long)]
        email: String,
    },
    /// List every account.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Refuse the account's sign-ins and sign it out everywhere.
    Disable {
        /// The account's e-mail address.
        email: String,
    },
    /// Let a disabled account sign in again.
    Enable {
        /// The account's e-mail address.
        email: String,
    },
    /// Delete the account with its sessions and codes.
    Delete {
        /// The account's e-mail address.
        email: String,
    },
    /// Lift every sign-in delay and lock of the account.
    Unlock {
        /// The account's e-mail address.
        email: String,
    },
    /// Mark the account's e-mail address verified.
    Verify {
        /// The account's e-mail address.
        email: String,
    },
    /// Send the account a password reset mail (the operator never sets a password).
    ResetPassword {
        /// The account's e-mail address.
        email: String,
    },
    /// Show or remove the account's second factor (TOTP and recovery codes).
    Mfa {
        #[command(subcommand)]
        cmd: MfaCommand,
    },
    /// List the account's passkeys, or remove one (`passkeys EMAIL remove ID`).
    Passkeys {
        /// The account's e-mail address.
        email: String,
        #[command(subcommand)]
        cmd: Option<PasskeyCommand>,
    },
}

#[derive(Subcommand)]
pub enum PasskeyCommand {
    /// Remove a passkey (a lost device): it signs in no more.
    Remove {
        /// The passkey's id, as the list shows it.
        id: u64,
    },
}

#[derive(Subcommand)]
pub enum MfaCommand {
    /// Whether the account has a second factor, and its recovery codes left.
    Show {
        /// The account's e-mail address.
        email: String,
    },
    /// Remove the second factor of a holder who lost both device and recovery codes
    /// (check who asks first: the account then signs in with its password alone).
    Reset {
        /// The account's e-mail address.
        email: String,
    },
}

#[derive(Subcommand)]
pub enum SessionCommand {
    /// Sign a local account in and print the session token.
    Issue {
        /// The account's e-mail address.
        #[arg(long)]
        email: String,
    },
    /// List an account's sessions.
    List {
        /// The account's e-mail address.
        #[arg(long)]
        email: String,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a session by id, or every session of an account (`--all --email E`).
    Revoke {
        /// The session id (from `session list`, `tangle GetSessions` or `session issue`).
        #[arg(required_unless_present = "all")]
        id: Option<u64>,
        /// Revoke every session of `--email`.
        #[arg(long, requires = "email")]
        all: bool,
        /// The account, with `--all`.
        #[arg(long)]
        email: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum MailCommand {
    /// List queued and sent mail, newest first.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

/// Reads a new password: from a prompt (asked twice) or one line on stdin.
pub fn read_password() -> anyhow::Result<zeroize::Zeroizing<String>> {
    use std::io::{BufRead, IsTerminal};
    if std::io::stdin().is_terminal() {
        let first = zeroize::Zeroizing::new(rpassword::prompt_password("Password: ")?);
        let second = zeroize::Zeroizing::new(rpassword::prompt_password("Repeat password: ")?);
        if first != second {
            bail!("the passwords do not match");
        }
        return Ok(first);
    }
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(zeroize::Zeroizing::new(
        line.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

pub async fn user(domain: &Services, cmd: UserCommand) -> anyhow::Result<()> {
    let op = &domain.operator;
    match cmd {
        UserCommand::Add { email } => {
            let password = read_password()?;
            let user = domain.accounts.add_user(&email, &password).await?;
            println!(
                "created user {} <{}>",
                user.id,
                user.email.unwrap_or_default()
            );
        }
        UserCommand::List { json } => {
            let users = domain.accounts.list().await?;
            if json {
                json_lines(users.iter().map(|u| {
                    json!({
                        "id": u.id, "email": u.email, "name": u.name,
                        "email_verified": u.email_verified, "disabled": u.disabled,
                        "home": u.home.as_ref().map(|(s, id)| json!({"server": s, "user_id": id})),
                        "created_at": time(u.created_at),
                    })
                }));
                return Ok(());
            }
            println!(
                "{:<20} {:<32} {:<9} {:<9} {:<21} HOME",
                "ID", "E-MAIL", "VERIFIED", "DISABLED", "CREATED"
            );
            for u in users {
                let home = u
                    .home
                    .map(|(s, id)| format!("{s} (user {id})"))
                    .unwrap_or_else(|| "local".into());
                // Names may come from other nodes: never let them drive the terminal.
                println!(
                    "{:<20} {:<32} {:<9} {:<9} {:<21} {}",
                    u.id,
                    printable(&u.email.unwrap_or_else(|| format!("({})", u.name)), 80),
                    u.email_verified,
                    u.disabled,
                    time(u.created_at),
                    printable(&home, 120)
                );
            }
        }
        UserCommand::Disable { email } => {
            let u = op.set_disabled(&email, true).await?;
            println!("disabled {} and signed it out everywhere", u.id);
        }
        UserCommand::Enable { email } => {
            let u = op.set_disabled(&email, false).await?;
            println!("enabled {}", u.id);
        }
        UserCommand::Delete { email } => {
            let u = op.delete(&email).await?;
            println!("deleted {} with its sessions and codes", u.id);
        }
        UserCommand::Unlock { email } => {
            let u = op.unlock(&email).await?;
            println!("lifted every sign-in delay of {}", u.id);
        }
        UserCommand::Verify { email } => {
            let u = op.verify(&email).await?;
            println!("marked the address of {} verified", u.id);
        }
        UserCommand::ResetPassword { email } => {
            let u = op.send_reset(&email).await?;
            println!("queued a password reset mail for {}", u.id);
        }
        UserCommand::Mfa {
            cmd: MfaCommand::Show { email },
        } => {
            let u = op.user(&email).await?;
            let f = domain.second_factors.status(u.id).await?;
            match (f.enabled, f.pending) {
                (true, _) => println!(
                    "{}: second factor on (TOTP), {} of {} recovery codes unused",
                    u.id,
                    f.recovery_left,
                    hearth::domain::second_factor::RECOVERY_CODES
                ),
                (false, true) => println!("{}: a second-factor setup is in progress", u.id),
                (false, false) => println!("{}: no second factor", u.id),
            }
        }
        UserCommand::Mfa {
            cmd: MfaCommand::Reset { email },
        } => {
            let u = op.user(&email).await?;
            match domain.second_factors.reset(u.id).await? {
                true => println!(
                    "removed the second factor of {}: it signs in with its password alone",
                    u.id
                ),
                false => println!("{} had no second factor", u.id),
            }
        }
        UserCommand::Passkeys { email, cmd } => {
            let u = op.user(&email).await?;
            match cmd {
                None => {
                    let keys = domain.passkeys.list(u.id).await?;
                    if keys.is_empty() {
                        println!("{}: no passkeys", u.id);
                    }
                    for k in keys {
                        let used = k.last_used_at.map(time).unwrap_or_else(|| "never".into());
                        println!(
                            "{}  {}  added {}  last used {}{}",
                            k.id,
                            printable(&k.name, 64),
                            time(k.created_at),
                            used,
                            if k.backed_up { "  synced" } else { "" }
                        );
                    }
                }
                Some(PasskeyCommand::Remove { id }) => {
                    domain.passkeys.remove(u.id, id).await?;
                    println!("removed passkey {id} of {}", u.id);
                }
            }
        }
    }
    Ok(())
}

pub async fn session(domain: &Services, cmd: SessionCommand) -> anyhow::Result<()> {
    match cmd {
        SessionCommand::Issue { email } => {
            let (token, row) = domain
                .sessions
                .issue_for_email(&email, cli_device())
                .await?;
            eprintln!("session {} for {email}:", row.id);
            println!("{}", token.expose());
        }
        SessionCommand::List { email, json } => {
            let sessions = domain.operator.sessions(&email).await?;
            if json {
                json_lines(sessions.iter().map(|s| {
                    json!({
                        "id": s.id, "user_id": s.user_id,
                        "app_name": s.device.app_name, "device_type": s.device.device_type,
                        "created_at": time(s.created_at), "last_active": time(s.last_active),
                        "expires_at": time(s.expires_at), "amr": s.amr,
                    })
                }));
                return Ok(());
            }
            println!(
                "{:<20} {:<21} {:<21} {:<21} {:<13} APP",
                "ID", "CREATED", "LAST ACTIVE", "EXPIRES", "MADE BY"
            );
            for s in sessions {
                let amr = if s.amr.is_empty() { "-" } else { &s.amr };
                println!(
                    "{:<20} {:<21} {:<21} {:<21} {:<13} {}",
                    s.id,
                    time(s.created_at),
                    time(s.last_active),
                    time(s.expires_at),
                    amr,
                    printable(&s.device.app_name, 40)
                );
            }
        }
        SessionCommand::Revoke {
            all: true,
            email: Some(email),
            ..
        } => {
            let n = domain.operator.revoke_all(&email).await?;
            println!("revoked {n} sessions of {email}");
        }
        SessionCommand::Revoke { id: Some(id), .. } => {
            if !domain.sessions.revoke_by_id(id).await? {
                bail!("session {id} does not exist or was already revoked");
            }
            println!("revoked session {id}");
        }
        SessionCommand::Revoke { .. } => bail!("give a session id, or --all --email E"),
    }
    Ok(())
}

pub async fn mail(domain: &Services, cmd: MailCommand) -> anyhow::Result<()> {
    let MailCommand::List { json } = cmd;
    let mails = domain.outbox.list().await?;
    if json {
        json_lines(mails.iter().map(|m| {
            json!({
                "id": m.id, "to": m.recipient, "subject": m.subject, "body": m.body,
                "queued_at": time(m.created_at), "sent_at": m.sent_at.map(time),
                "attempts": m.attempts, "last_error": m.last_error,
            })
        }));
        return Ok(());
    }
    if mails.is_empty() {
        println!("the outbox is empty");
    }
    for m in mails {
        let state = match (m.sent_at, &m.last_error) {
            (Some(at), _) => format!("sent at {}", time(at)),
            (None, Some(e)) => format!(
                "queued at {}, retrying after {} attempts: {}",
                time(m.created_at),
                m.attempts,
                printable(e, 200)
            ),
            (None, None) => format!("queued at {}", time(m.created_at)),
        };
        println!(
            "--- #{} to {} ({state})\nSubject: {}\n\n{}",
            m.id,
            printable(&m.recipient, 254),
            printable(&m.subject, 200),
            m.body
        );
    }
    Ok(())
}
