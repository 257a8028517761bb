//! The `hearth` command line: `serve` runs a node through `Node::start`; the other commands
//! are operator tools that work on the data dir directly.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use hearth::config::{Config, Registration};
use hearth::domain::federation::PeerNetwork;
use hearth::domain::Services;
use hearth::federation::client::PeerClient;
use hearth::identity::key::{address_of, parse_address};
use hearth::identity::server_id::ServerId;
use hearth::Node;

/// mimalloc rather than glibc's malloc: under load glibc spent a seventh of the CPU in
/// malloc/free (arena contention between the async workers and the blocking threads);
/// `scripts/bench.sh` measures with the same allocator (benches/common).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;

use cli::accounts::{MailCommand, SessionCommand, UserCommand};
use cli::invites::{InviteCommand, PlaceCommand};
use cli::keys::KeyCommand;
use cli::open::{open_domain, open_federation};
use cli::output::{json_lines, printable, time};
use cli::tokens::TokenCommand;
use hearth::domain::model::InviteTarget;

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
        /// The data dir to write into it (default `./data`, beside the file), e.g.
        /// /var/lib/hearth for the systemd unit.
        #[arg(long)]
        data_dir: Option<PathBuf>,
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
    /// Inspect and revoke personal access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Create registration invites.
    #[command(subcommand)]
    Invite(InviteCommand),
    /// Create groups (user invites can lead to them).
    #[command(subcommand)]
    Group(PlaceCommand),
    /// Create communities (user invites can lead to them).
    #[command(subcommand)]
    Community(PlaceCommand),
    /// Manage the node key.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Manage federation peers.
    #[command(subcommand)]
    Peer(PeerCommand),
    /// Check the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the config (file and HEARTH_* variables) and print the effective settings,
    /// credentials redacted.
    Check,
}

#[derive(Subcommand)]
enum PeerCommand {
    /// List known peers: link state, pinned key, last error.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Ask for a link with SERVER (the running node links within a second).
    Link {
        /// The peer's server_id.
        server: String,
        /// A static route, e.g. https://beta.example.org:7450 (else discovery).
        #[arg(long)]
        url: Option<String>,
    },
    /// Drop the link with SERVER.
    Unlink {
        /// The peer's server_id.
        server: String,
    },
    /// Pin SERVER's key: the given one, or the one it serves now (after checking it yourself).
    Pin {
        /// The peer's server_id.
        server: String,
        /// The key to pin, as ed25519:<64 hex>; without it, fetch the current key.
        #[arg(long)]
        key: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli));
    hearth::logging::flush();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the configuration and starts logging as it says (once per process); warnings about
/// the environment are logged once logging runs.
fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    let (config, warnings) = Config::load_with_warnings(path, std::env::vars())?;
    hearth::logging::init(&config.log, std::env::var("HEARTH_LOG").ok())
        .map_err(anyhow::Error::msg)?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    Ok(config)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => serve(load_config(cli.config.as_deref())?, cli.config.as_deref()).await,
        Command::Init {
            path,
            force,
            data_dir,
        } => init(&path, force, data_dir.as_deref()),
        Command::Config(ConfigCommand::Check) => {
            let config = load_config(cli.config.as_deref())?;
            // The files the config names must be usable too, not only its syntax.
            if let Some(tls) = &config.tls {
                hearth::server::tls_acceptor(&tls.cert, &tls.key).map_err(|e| {
                    anyhow::anyhow!("{e}\nfix the [tls] files, or remove [tls] to serve plaintext")
                })?;
            }
            eprintln!("the configuration is valid; the effective settings follow");
            print!("{}", config.redacted_toml());
            Ok(())
        }
        Command::Key(cmd) => cli::keys::key(load_config(cli.config.as_deref())?, cmd).await,
        Command::Peer(cmd) => peer_command(load_config(cli.config.as_deref())?, cmd).await,
        other => {
            let domain = open_domain(load_config(cli.config.as_deref())?).await?;
            let result = operate(&domain, other).await;
            let _ = domain.id_lease().release().await;
            result
        }
    }
}

/// The commands that work through the services over the data dir.
async fn operate(domain: &Services, cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::User(cmd) => cli::accounts::user(domain, cmd).await,
        Command::Session(cmd) => cli::accounts::session(domain, cmd).await,
        Command::Mail(cmd) => cli::accounts::mail(domain, cmd).await,
        Command::Token(cmd) => cli::tokens::token(domain, cmd).await,
        Command::Invite(cmd) => cli::invites::invite(domain, cmd).await,
        Command::Group(cmd) => cli::invites::place(domain, InviteTarget::Group, cmd).await,
        Command::Community(cmd) => cli::invites::place(domain, InviteTarget::Community, cmd).await,
        _ => bail!("this command does not run on the services"),
    }
}

fn server_id(text: &str) -> anyhow::Result<ServerId> {
    Ok(ServerId::parse(text)?)
}

async fn peer_command(config: Config, cmd: PeerCommand) -> anyhow::Result<()> {
    let (domain, client) = open_federation(config).await?;
    let result = peer_command_on(&domain, &client, cmd).await;
    let _ = domain.id_lease().release().await;
    result
}

async fn peer_command_on(
    domain: &Services,
    client: &PeerClient,
    cmd: PeerCommand,
) -> anyhow::Result<()> {
    match cmd {
        PeerCommand::List { json: true } => {
            json_lines(domain.peers.list().await?.into_iter().map(|p| {
                serde_json::json!({
                    "server_id": p.server_id, "state": p.state, "linked": p.linked,
                    "pinned_key": p.pinned_key.map(|k| address_of(&k)),
                    "url": p.url, "last_error": p.last_error,
                    "link_expires_at": p.link_expires_at.map(time),
                    "updated_at": time(p.updated_at),
                })
            }));
        }
        PeerCommand::List { json: false } => {
            println!(
                "{:<32} {:<9} {:<26} LAST ERROR",
                "SERVER", "STATE", "PINNED KEY"
            );
            for p in domain.peers.list().await? {
                let key = p
                    .pinned_key
                    .map(|k| address_of(&k)[..24].to_owned() + "…")
                    .unwrap_or_else(|| "-".into());
                let state = if p.linked || p.state != "new" {
                    p.state
                } else {
                    "seen".into()
                };
                println!(
                    "{:<32} {:<9} {:<26} {}",
                    p.server_id,
                    state,
                    key,
                    printable(&p.last_error.unwrap_or_default(), 300)
                );
            }
        }
        PeerCommand::Link { server, url } => {
            domain
                .peers
                .set_link(&server_id(&server)?, true, url)
                .await?;
            println!("{server} will be linked (a running node picks this up within a second)");
        }
        PeerCommand::Unlink { server } => {
            domain
                .peers
                .set_link(&server_id(&server)?, false, None)
                .await?;
            println!("{server} unlinked");
        }
        PeerCommand::Pin { server, key } => {
            let id = server_id(&server)?;
            let key = match key {
                Some(k) => parse_address(&k)
                    .context("--key: expected ed25519: followed by 64 lowercase hex digits")?,
                None => client.fetch_key(&id).await?.key,
            };
            domain.peers.pin(&id, key).await?;
            println!("pinned {server} to {}", address_of(&key));
        }
    }
    Ok(())
}

fn init(path: &Path, force: bool, data_dir: Option<&Path>) -> anyhow::Result<()> {
    if path.exists() && !force {
        bail!("{} exists; pass --force to overwrite it", path.display());
    }
    let text = match data_dir {
        Some(dir) => {
            let dir = toml::Value::String(dir.display().to_string());
            hearth::config::EXAMPLE.replacen(
                "data_dir = \"./data\"",
                &format!("data_dir = {dir}"),
                1,
            )
        }
        None => hearth::config::EXAMPLE.to_owned(),
    };
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "wrote {}; edit it, then run: hearth serve --config {}",
        path.display(),
        path.display()
    );
    Ok(())
}

/// A line of the start-up banner. A node whose stdout is closed (started with `>&-`, or
/// piped into a reader that left) serves on: the banner is for a person watching, and
/// `println!` would end the process on a broken pipe.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

async fn serve(config: Config, config_path: Option<&Path>) -> anyhow::Result<()> {
    let open_registration = config.accounts.registration == Registration::Open;
    let data_dir = config.data_dir.clone();
    let json = config.log.format == hearth::config::LogFormat::Json;
    let node = Node::start(config).await?;
    let addr = node.addr();
    let domain = node.services().clone();
    if open_registration && !addr.ip().is_loopback() {
        tracing::warn!(
            "REGISTRATION IS OPEN on non-loopback address {addr}: anyone who can reach it can create an account. \
             Set accounts.registration = \"invite\" or \"closed\" unless that is what you want."
        );
    }
    let data = std::path::absolute(&data_dir).unwrap_or(data_dir);
    // The commands as this node was started: through cargo, by path, or from PATH, with
    // the same --config.
    let me = cli_invocation();
    let with_config = config_path.map_or(String::new(), |p| format!(" --config {}", p.display()));
    let plaintext = if node.url().starts_with("https") {
        ""
    } else {
        "-plaintext "
    };
    let next = [
        format!("{me} user add{with_config} --email you@example.org     # create an account"),
        format!("curl {}/healthz", node.url()),
        format!("grpcurl {plaintext}{addr} list   # every service, via reflection"),
    ];
    if json {
        // The one plain line scripts read (DESIGN §7); the rest as a log event, like every
        // other line of a JSON-logging node.
        say!("listening on {addr}");
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            url = node.url(),
            data_dir = %data.display(),
            new_key = node.key_created(),
            next_steps = ?next,
            "started"
        );
    } else {
        say!(
            "Hearth {} — node {} ({})",
            env!("CARGO_PKG_VERSION"),
            domain.config().server_id,
            domain.node_key().address()
        );
        say!("listening on {addr}");
        say!(
            "  gRPC, gRPC-Web, hRPC and the Osmium socket: {}",
            node.url()
        );
        say!(
            "  in a browser (sign in, register, your account): {}/",
            node.url()
        );
        say!("  health: {0}/healthz   metrics: {0}/metrics", node.url());
        say!(
            "  data: {} (hearth.sqlite3, node.key{})",
            data.display(),
            if node.key_created() { ", new key" } else { "" }
        );
        say!("Next steps:");
        for step in &next {
            say!("  {step}");
        }
        say!("Stop with Ctrl-C.");
    }
    shutdown_signal().await;
    match json {
        true => tracing::info!("shutting down"),
        false => {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "shutting down…");
        }
    }
    node.shutdown().await;
    Ok(())
}

/// How to run the CLI the way this process was started: `cargo run [--release] --` from a
/// cargo target dir, the bare name when it came from PATH, else the path it was run by.
fn cli_invocation() -> String {
    let exe = std::env::current_exe().unwrap_or_default();
    let exe = exe.to_string_lossy();
    if exe.contains("/target/release/") {
        return "cargo run --release --".to_owned();
    }
    if exe.contains("/target/debug/") {
        return "cargo run --".to_owned();
    }
    let arg0 = std::env::args()
        .next()
        .unwrap_or_else(|| "hearth".to_owned());
    match arg0.contains('/') {
        true => arg0,
        false => "hearth".to_owned(),
    }
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
