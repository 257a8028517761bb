//! Business rules, free of tonic, prost and SQL. Each service owns one area and holds only
//! what it needs; [`Services`] builds them once over the node's state and is what `api/`,
//! the background jobs and the CLI call. Services depend on each other one way only:
//! accounts → sessions, codes, invites; codes → outbox; access tokens → sessions;
//! credentials → sessions, access tokens; federation login → peers, sessions; passkeys →
//! sessions; flows → accounts, codes, credentials (a passkey answers a flow's step through
//! the flow, never the other way).
pub mod access_tokens;
pub mod accounts;
pub mod activity;
pub mod codes;
mod credential_cache;
pub mod credentials;
pub mod error;
pub mod federation;
pub mod flows;
pub mod hash_pool;
pub mod invites;
pub mod jwts;
pub mod keyring;
pub mod model;
pub mod oidc;
pub mod operator;
pub mod outbox;
pub mod passkeys;
pub mod passwords;
pub mod principal;
pub mod rate_limit;
pub mod scopes;
pub mod second_factor;
pub mod session_index;
pub mod sessions;
pub mod settings;
pub mod state;
pub mod throttle;
pub mod validate;

use std::net::IpAddr;
use std::sync::Arc;

use rand::RngCore;
use zeroize::Zeroizing;

pub use error::{DomainError, ErrorKind, Reason};
pub use principal::{CredentialKind, Principal, Requirement};

use crate::clock::SharedClock;
use crate::config::Config;
use crate::identity::jwt::JwtKeys;
use crate::identity::key::NodeKey;
use federation::challenge::{PeerChallenge, MAX_PENDING};
use federation::links::Links;
use federation::login::FederationLogin;
use federation::notices::Notices;
use federation::peers::Peers;
use federation::{PeerHello, PeerNetwork};
use model::{DeviceFacts, KeyRotation};
use state::feeds::{LocalFeeds, StepFeeds};
use state::ids::{Snowflake, WorkerLease};
use state::jobs::{JobLeases, LocalJobs};
use state::revocations::{LocalRevocations, Revocations};
use state::shared_map::SharedMap;
use state::short_lived::LocalMap;
use state::Store;

/// Client budgets kept at most (sign-in per IP, and the API's per IP × class).
const MAX_BUCKETS: usize = 300_000;

/// Facts about the request that rules depend on, taken from transport metadata by `api/`.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The client's IP (after trusted-proxy handling), when known.
    pub ip: Option<IpAddr>,
    /// Device facts for a new session.
    pub device: DeviceFacts,
}

/// What the services are built over: the store and the node-local state interfaces. Each
/// has a single-node implementation ([`NodeState::local`]); a cluster supplies shared ones.
#[derive(Clone)]
pub struct NodeState {
    /// The store seam.
    pub store: Store,
    /// Injected time.
    pub clock: SharedClock,
    /// Revocation notices.
    pub revocations: Arc<dyn Revocations>,
    /// "One node runs this job".
    pub jobs: Arc<dyn JobLeases>,
    /// Step flows (Harmony BeginAuth …).
    pub flows: Arc<dyn SharedMap<flows::FlowState>>,
    /// Which step flow waits for which user's e-mail link.
    pub flow_waits: Arc<dyn SharedMap<String>>,
    /// Pending peer challenges (GetChallenge, then Authenticate on any node).
    pub challenges: Arc<dyn SharedMap<String>>,
    /// Passkey ceremonies between their begin and finish calls.
    pub ceremonies: Arc<dyn SharedMap<String>>,
    /// Per-client budgets of costly calls (sign-ins per IP, the API's per-IP limits).
    pub buckets: Arc<dyn SharedMap<rate_limit::Bucket>>,
    /// Step-flow change notices.
    pub feeds: Arc<dyn StepFeeds>,
}

impl std::fmt::Debug for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeState")
            .field("store", &self.store)
            .field("revocations", &self.revocations)
            .field("jobs", &self.jobs)
            .field("feeds", &self.feeds)
            .finish_non_exhaustive()
    }
}

impl NodeState {
    /// The single-node state over `store`.
    pub fn local(store: Store, clock: SharedClock) -> Self {
        Self {
            store,
            revocations: Arc::new(LocalRevocations::default()),
            jobs: Arc::new(LocalJobs),
            flows: Arc::new(LocalMap::<String, flows::FlowState>::new(
                clock.clone(),
                flows::MAX_FLOWS,
            )),
            flow_waits: Arc::new(LocalMap::<String, String>::new(
                clock.clone(),
                flows::MAX_FLOWS,
            )),
            challenges: Arc::new(LocalMap::<String, String>::new(clock.clone(), MAX_PENDING)),
            ceremonies: Arc::new(LocalMap::<String, String>::new(
                clock.clone(),
                passkeys::MAX_CEREMONIES,
            )),
            buckets: Arc::new(LocalMap::<String, rate_limit::Bucket>::new(
                clock.clone(),
                MAX_BUCKETS,
            )),
            feeds: Arc::new(LocalFeeds::new(clock.clone(), flows::MAX_FLOWS)),
            clock,
        }
    }
}

/// The keys the services sign with.
#[derive(Debug, Clone)]
pub struct Keys {
    /// The node's identity key.
    pub node: NodeKey,
    /// The JWT signing keys.
    pub jwt: JwtKeys,
}

/// The networks the services reach other parties through.
#[derive(Debug, Clone)]
pub struct Networks {
    /// Other Hearth nodes.
    pub peers: Arc<dyn PeerNetwork>,
    /// Identity providers (GetJWT).
    pub providers: Arc<dyn oidc::ProviderNetwork>,
}

/// Every service of the node, built once.
#[derive(Debug)]
pub struct Services {
    /// Sign-up, sign-in, accounts.
    pub accounts: Arc<accounts::Accounts>,
    /// An account holder's own settings: password, e-mail address, deletion.
    pub settings: Arc<settings::Settings>,
    /// Second factors (TOTP and recovery codes).
    pub second_factors: Arc<second_factor::SecondFactors>,
    /// Passkeys (WebAuthn).
    pub passkeys: Arc<passkeys::Passkeys>,
    pub sessions: Arc<sessions::Sessions>,
    /// Bearer credential → principal.
    pub credentials: Arc<credentials::Credentials>,
    /// Personal access tokens.
    pub access_tokens: Arc<access_tokens::AccessTokens>,
    /// Invites, friendships, groups and communities.
    pub invites: Arc<invites::Invites>,
    /// Harmony step-by-step auth flows.
    pub flows: Arc<flows::Flows>,
    /// Hearth's JWTs.
    pub jwts: Arc<jwts::Jwts>,
    /// GetJWT: provider access tokens for Hearth JWTs.
    pub oidc: Arc<oidc::Oidc>,
    /// E-mail codes, verification, reset.
    pub codes: Arc<codes::Codes>,
    /// The mail outbox.
    pub outbox: outbox::Outbox,
    /// Peers, pins and policy.
    pub peers: Arc<Peers>,
    /// The peer challenge, both halves.
    pub challenge: Arc<PeerChallenge>,
    /// Cross-node login.
    pub login: Arc<FederationLogin>,
    /// The link keeper.
    pub links: Arc<Links>,
    /// Revocation notices to and from other nodes.
    pub notices: Arc<Notices>,
    /// The operator's account actions.
    pub operator: operator::Operator,
    config: Arc<Config>,
    state: NodeState,
    keys: Arc<keyring::KeyRing>,
    id_lease: WorkerLease,
}

impl Services {
    /// Builds the services over `state`. `holder` names this process for its id-worker
    /// lease (the node and each CLI command hold their own).
    pub async fn new(
        config: Arc<Config>,
        state: NodeState,
        keys: Keys,
        networks: Networks,
        holder: String,
    ) -> Result<Self, DomainError> {
        let network = networks.peers;
        let (store, clock) = (state.store.clone(), state.clock.clone());
        let pw = config.passwords.clone();
        let hasher = tokio::task::spawn_blocking(move || passwords::Hasher::new(&pw))
            .await
            .map_err(|e| DomainError::internal(e.to_string()))??;
        let hasher = Arc::new(hasher);
        let code_key = store
            .write(|tx| {
                tx.node_secret("email_code_hmac", &mut || {
                    let mut k = vec![0u8; 32];
                    rand::rngs::OsRng.fill_bytes(&mut k);
                    k
                })
            })
            .await
            .map_err(DomainError::from)?;
        let factors = Arc::new(second_factor::SecondFactors::new(
            store.clone(),
            clock.clone(),
            second_factor::FactorKey::load(&store, &keys.node).await?,
            config.server_id.to_string(),
        ));
        let floor = store.read(|tx| tx.highest_id()).await?;
        let key_history = store.read(|tx| tx.key_rotations()).await?;
        let hello = PeerHello::of(&config, &keys.node);
        let keys = Arc::new(keyring::KeyRing::new(
            keys.node,
            key_history,
            keys.jwt,
            config.jwt.lifetime_secs,
        ));
        let id_lease = WorkerLease::acquire(&store, clock.clone(), holder).await?;
        let ids: Arc<dyn state::ids::IdAllocator> =
            Arc::new(Snowflake::new(clock.clone(), id_lease.worker(), floor));
        let outbox = outbox::Outbox::new(store.clone(), clock.clone());
        let sessions = Arc::new(sessions::Sessions::new(
            store.clone(),
            clock.clone(),
            ids.clone(),
            &config.sessions,
            config.accounts.require_email_verification,
            state.revocations.clone(),
        ));
        let codes = Arc::new(codes::Codes::new(
            store.clone(),
            clock.clone(),
            config.clone(),
            Zeroizing::new(code_key),
            hasher.clone(),
            state.revocations.clone(),
            outbox.clone(),
        ));
        let passkeys = Arc::new(passkeys::Passkeys::new(
            store.clone(),
            clock.clone(),
            ids.clone(),
            state.ceremonies.clone(),
            passkeys::Relying::of(
                config.mail.public_url.as_deref(),
                &config.server_id.to_string(),
            ),
            sessions.clone(),
            config.accounts.require_email_verification,
        ));
        let access_tokens = Arc::new(access_tokens::AccessTokens::new(
            store.clone(),
            clock.clone(),
            ids.clone(),
            sessions.clone(),
            state.revocations.clone(),
            &config,
        ));
        let invites = Arc::new(invites::Invites::new(
            store.clone(),
            clock.clone(),
            ids.clone(),
            &config.accounts,
        ));
        let accounts = Arc::new(accounts::Accounts::new(
            store.clone(),
            clock.clone(),
            ids.clone(),
            config.accounts.clone(),
            hasher.clone(),
            sessions.clone(),
            codes.clone(),
            invites.clone(),
            outbox.clone(),
            state.feeds.clone(),
            factors.clone(),
        ));
        let settings = Arc::new(settings::Settings::new(
            store.clone(),
            clock.clone(),
            accounts.clone(),
            hasher,
            codes.clone(),
            sessions.clone(),
            outbox.clone(),
            factors.clone(),
            config.accounts.delete_grace_days,
        ));
        let peers = Arc::new(Peers::new(
            store.clone(),
            clock.clone(),
            config.federation.clone(),
            network.clone(),
            rate_limit::RateLimiter::new(state.buckets.clone(), state.clock.clone()),
        ));
        let notices = Notices::new(
            store.clone(),
            clock.clone(),
            config.server_id.clone(),
            keys.clone(),
            peers.clone(),
            network.clone(),
            sessions.clone(),
            state.jobs.clone(),
            state.revocations.as_ref(),
        );
        let challenge = Arc::new(PeerChallenge::new(
            store.clone(),
            clock.clone(),
            keys.clone(),
            hello,
            state.challenges.clone(),
            peers.clone(),
            network.clone(),
            notices.clone(),
        ));
        let login = Arc::new(FederationLogin::new(
            store.clone(),
            clock.clone(),
            ids.clone(),
            config.server_id.clone(),
            keys.clone(),
            peers.clone(),
            sessions.clone(),
            config.federation.require_second_factor,
        ));
        let links = Links::new(
            peers.clone(),
            challenge.clone(),
            network,
            clock,
            state.jobs.clone(),
            notices.clone(),
        );
        let jwts = Arc::new(jwts::Jwts::new(
            keys.clone(),
            &config,
            store.clone(),
            state.clock.clone(),
            state.revocations.as_ref(),
        ));
        let oidc = Arc::new(oidc::Oidc::new(
            &config,
            networks.providers,
            store.clone(),
            state.clock.clone(),
            ids.clone(),
            sessions.clone(),
            jwts.clone(),
        ));
        let credentials = Arc::new(credentials::Credentials::new(
            sessions.clone(),
            access_tokens.clone(),
            jwts.clone(),
        ));
        let flows = Arc::new(flows::Flows::new(
            state.flows.clone(),
            state.flow_waits.clone(),
            state.feeds.clone(),
            state.clock.clone(),
            &config,
            accounts.clone(),
            codes.clone(),
            credentials.clone(),
            rate_limit::RateLimiter::new(state.buckets.clone(), state.clock.clone()),
        ));
        Ok(Self {
            credentials,
            flows,
            jwts,
            oidc,
            access_tokens,
            invites,
            operator: operator::Operator::new(
                store.clone(),
                state.revocations.clone(),
                codes.clone(),
            ),
            accounts,
            settings,
            second_factors: factors,
            passkeys,
            sessions,
            codes,
            outbox,
            peers,
            challenge,
            login,
            notices,
            links,
            config,
            state,
            keys,
            id_lease,
        })
    }

    /// The store (tests and the CLI read through it).
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// The node state the services run over.
    pub fn state(&self) -> &NodeState {
        &self.state
    }

    /// The clock in use.
    pub fn clock(&self) -> &SharedClock {
        &self.state.clock
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The node's identity key now.
    pub fn node_key(&self) -> NodeKey {
        self.keys.current().node.clone()
    }

    /// This node's key rotation records, oldest first.
    pub fn key_history(&self) -> Vec<KeyRotation> {
        self.keys.current().history.clone()
    }

    /// The keys it signs with (a cluster swaps them when another node rotates).
    pub fn key_ring(&self) -> &Arc<keyring::KeyRing> {
        &self.keys
    }

    /// The port other nodes reach this one on (the bound listen port).
    pub fn advertised_port(&self) -> u16 {
        self.config.listen.addr.port()
    }

    /// This process's id-worker lease (renewed by the node, released by the CLI).
    pub fn id_lease(&self) -> &WorkerLease {
        &self.id_lease
    }
}
