//! The `hearth` command line: `serve` runs a node through `Node::start`; the other commands
//! are operator tools that work on the data dir directly.
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use hearth::clock::SystemClock;
use hearth::config::{Config, Registration};
use hearth::domain::Domain;
use hearth::federation::key::NodeKey;
use hearth::store::{outbox, sessions::DeviceFacts, Store};
use hearth::Node;

/// Hearth: a self-hosted, federated auth homeserver.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Config file (TOML). Without it, built-in defaults; HEARTH_* variables override both.
    #[arg(long, short, global = true, env = "HEARTH_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node.
    Serve,
    /// Write a commented config file with every option.
    Init {
        /// Where to write it.
        #[arg(default_value = "hearth.toml")]
        path: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Manage local accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage sessions.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Inspect the mail outbox.
    #[command(subcommand)]
    Mail(MailCommand),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a local account (password from a prompt, or one line on stdin).
    Add {
        /// The account's e-mail address.
        #[arg(long)]
        email: String,
    },
    /// List every account.
    List,
}

#[derive(Subcommand)]
enum SessionCommand {
    /// Sign a local account in and print the session token.
    Issue {
        /// The account's e-mail address.
        #[arg(long)]
        email: String,
    },
    /// Revoke a session by id.
    Revoke {
        /// The session id (from `tangle GetSessions` or `session issue`).
        id: u64,
    },
}

#[derive(Subcommand)]
enum MailCommand {
    /// List queued and sent mail, newest first.
    List,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    Ok(Config::load(path, std::env::vars())?)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => serve(load_config(cli.config.as_deref())?).await,
        Command::Init { path, force } => init(&path, force),
        Command::User(cmd) => {
            let domain = open_domain(load_config(cli.config.as_deref())?).await?;
            match cmd {
                UserCommand::Add { email } => {
                    let password = read_password()?;
                    let user = domain.add_user(&email, &password).await?;
                    println!("created user {} <{}>", user.id, email.trim().to_lowercase());
                }
                UserCommand::List => {
                    println!("{:<20} {:<32} {:<9} HOME", "ID", "E-MAIL", "VERIFIED");
                    for u in domain.list_users().await? {
                        let home = u
                            .home
                            .map(|(s, id)| format!("{s} (user {id})"))
                            .unwrap_or_else(|| "local".into());
                        println!(
                            "{:<20} {:<32} {:<9} {}",
                            u.id,
                            u.email.unwrap_or_else(|| format!("({})", u.name)),
                            u.email_verified,
                            home
                        );
                    }
                }
            }
            Ok(())
        }
        Command::Session(cmd) => {
            let domain = open_domain(load_config(cli.config.as_deref())?).await?;
            match cmd {
                SessionCommand::Issue { email } => {
                    let device = DeviceFacts {
                        app_name: "hearth-cli".into(),
                        ..DeviceFacts::default()
                    };
                    let (token, row) = domain.issue_session_for(&email, device).await?;
                    eprintln!("session {} for {email}:", row.id);
                    println!("{}", token.expose());
                }
                SessionCommand::Revoke { id } => {
                    if !domain.revoke_session_by_id(id).await? {
                        bail!("no session has id {id}");
                    }
                    println!("revoked session {id}");
                }
            }
            Ok(())
        }
        Command::Mail(MailCommand::List) => {
            let config = load_config(cli.config.as_deref())?;
            let store = open_store(&config)?;
            let mails = store.read(outbox::list).await?;
            if mails.is_empty() {
                println!("the outbox is empty");
            }
            for m in mails {
                let state = match (m.sent_at, &m.last_error) {
                    (Some(_), _) => "sent".to_owned(),
                    (None, Some(e)) => format!("retrying after {} attempts: {e}", m.attempts),
                    (None, None) => "queued".to_owned(),
                };
                println!(
                    "--- #{} to {} ({state})\nSubject: {}\n\n{}",
                    m.id, m.recipient, m.subject, m.body
                );
            }
            Ok(())
        }
    }
}

fn open_store(config: &Config) -> anyhow::Result<Store> {
    let path = config.database_path();
    if !path.exists() {
        bail!(
            "no database at {} (config key `data_dir`); run `hearth serve` once first",
            path.display()
        );
    }
    Ok(Store::open(&path, 1)?)
}

async fn open_domain(config: Config) -> anyhow::Result<Domain> {
    let store = open_store(&config)?;
    let (key, _) = NodeKey::load_or_generate(&config.data_dir)?;
    Ok(Domain::new(store, Arc::new(config), Arc::new(SystemClock), key).await?)
}

fn read_password() -> anyhow::Result<zeroize::Zeroizing<String>> {
    if std::io::stdin().is_terminal() {
        let first = zeroize::Zeroizing::new(rpassword::prompt_password("Password: ")?);
        let second = zeroize::Zeroizing::new(rpassword::prompt_password("Repeat password: ")?);
        if first != second {
            bail!("the passwords do not match");
        }
        return Ok(first);
    }
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    Ok(zeroize::Zeroizing::new(
        line.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

fn init(path: &Path, force: bool) -> anyhow::Result<()> {
    if path.exists() && !force {
        bail!("{} exists; pass --force to overwrite it", path.display());
    }
    std::fs::write(path, hearth::config::EXAMPLE)
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "wrote {}; edit it, then run: hearth serve --config {}",
        path.display(),
        path.display()
    );
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let open_registration = config.accounts.registration == Registration::Open;
    let data_dir = config.data_dir.clone();
    let node = Node::start(config).await?;
    let addr = node.addr();
    let domain = node.domain().clone();
    if open_registration && !addr.ip().is_loopback() {
        tracing::warn!(
            "REGISTRATION IS OPEN on non-loopback address {addr}: anyone who can reach it can create an account. \
             Set accounts.registration = \"invite\" or \"closed\" unless that is what you want."
        );
    }
    println!(
        "Hearth {} — node {} ({})",
        env!("CARGO_PKG_VERSION"),
        domain.config().server_id,
        domain.node_key().address()
    );
    println!("listening on {addr}");
    println!("  gRPC and gRPC-Web: {}", node.url());
    println!("  health: {0}/healthz   metrics: {0}/metrics", node.url());
    println!(
        "  data: {} (hearth.sqlite3, node.key{})",
        data_dir.display(),
        if node.key_created() { ", new key" } else { "" }
    );
    println!("Next steps:");
    println!("  hearth user add --email you@example.org     # create an account");
    println!("  grpcurl -plaintext {addr} list                # every service, via reflection");
    println!("Stop with Ctrl-C.");
    shutdown_signal().await;
    eprintln!("shutting down…");
    node.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
