//! The built-in defaults: what `hearth serve` runs with when no file or variable says
//! otherwise (DESIGN.md §7), and what `hearth init` writes out commented.
use super::*;

impl Default for Config {
    fn default() -> Self {
        Self {
            server_id: ServerId::localhost(),
            data_dir: PathBuf::from("./data"),
            listen: Listen {
                addr: SocketAddr::from(([127, 0, 0, 1], 7450)),
                trusted_proxies: Vec::new(),
            },
            tls: None,
            accounts: Accounts {
                registration: Registration::Open,
                allow_guests: false,
                require_email_verification: false,
                sign_ins_per_ip_per_minute: 30,
                codes_per_hour: 5,
                users_can_invite: false,
                delete_grace_days: 7,
            },
            passwords: Passwords {
                argon2_memory_kib: 19_456,
                argon2_iterations: 2,
                argon2_parallelism: 1,
                max_concurrent_hashes: 0,
            },
            sessions: Sessions {
                idle_timeout_secs: 30 * 24 * 3600,
                lifetime_secs: 90 * 24 * 3600,
                memory_index_max: 1_000_000,
            },
            mail: Mail {
                smtp_url: None,
                smtp_username: None,
                smtp_password: None,
                from: "hearth@localhost".into(),
                public_url: None,
            },
            federation: Federation {
                policy: FederationPolicy::Open,
                deny: Vec::new(),
                dns_servers: Vec::new(),
                allow_private_addresses: false,
                allow_plaintext: false,
                require_second_factor: false,
                extra_ca: None,
                default_port: 7450,
                well_known_port: None,
                calls_per_peer_per_minute: 120,
                accept_caller_urls: false,
                peers: Vec::new(),
            },
            oidc: Oidc::default(),
            jwt: Jwt {
                audience: "hearth".into(),
                lifetime_secs: 3600,
            },
            metrics: MetricsConfig::default(),
            http: HttpConfig::default(),
            tokens: Tokens {
                max_lifetime_days: 366,
            },
            flows: Flows {
                lifetime_secs: 1800,
            },
            log: Log {
                level: "info".into(),
                format: LogFormat::Text,
            },
            store: StoreConfig {
                url: None,
                ca_file: None,
                synchronous: Synchronous::Full,
            },
            limits: Limits {
                max_connections: 4096,
                header_read_timeout_secs: 10,
                idle_timeout_secs: 120,
                request_timeout_secs: 30,
                max_concurrent_streams: 100,
                max_requests_in_flight: 1024,
                hashing_calls_per_ip_per_minute: 30,
                mail_calls_per_ip_per_minute: 10,
                peer_calls_per_ip_per_minute: 120,
                flow_calls_per_ip_per_minute: 120,
                session_calls_per_ip_per_minute: 60,
                node_calls_per_ip_per_minute: 1200,
                socket_frames_per_second: 50,
            },
        }
    }
}

macro_rules! defaults_from_config {
    ($($t:ident . $f:ident),*) => {$(
        impl Default for $t {
            fn default() -> Self { Config::default().$f }
        }
    )*};
}
defaults_from_config!(
    Listen.listen,
    Accounts.accounts,
    Passwords.passwords,
    Sessions.sessions,
    Mail.mail,
    Federation.federation,
    Jwt.jwt,
    Limits.limits,
    StoreConfig.store,
    Tokens.tokens,
    Flows.flows,
    Log.log
);
