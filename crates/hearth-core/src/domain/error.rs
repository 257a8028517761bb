//! The one domain error: a kind (which `api::status` maps to exactly one gRPC code), a
//! stable reason code (sent as `google.rpc.ErrorInfo.reason`) and a message safe to show the
//! caller. `Internal` details are only logged.
use std::fmt;

use super::state::StoreError;

/// The kind of failure; each maps to one gRPC code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A request field is wrong.
    InvalidArgument,
    /// No valid credential.
    Unauthenticated,
    /// A valid credential that may not do this.
    PermissionDenied,
    /// The thing does not exist (only where saying so leaks nothing).
    NotFound,
    /// The thing exists already.
    AlreadyExists,
    /// The request is fine but the state does not allow it now.
    FailedPrecondition,
    /// Throttled.
    ResourceExhausted,
    /// A dependency (another node, DNS) could not be reached.
    Unavailable,
    /// Not built yet.
    Unimplemented,
    /// The request took longer than the node allows.
    DeadlineExceeded,
    /// A bug or an I/O failure.
    Internal,
}

macro_rules! reasons {
    ($($variant:ident => $text:literal,)*) => {
        /// Stable reason codes. Clients may match on them; never rename one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Reason { $(
            #[doc = $text]
            $variant,
        )* }

        impl Reason {
            /// Every reason, for documentation and tests.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];

            /// The code as sent on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $(Reason::$variant => $text,)* }
            }
        }
    };
}

reasons! {
    FieldInvalid => "FIELD_INVALID",
    CredentialMissing => "CREDENTIAL_MISSING",
    CredentialMalformed => "CREDENTIAL_MALFORMED",
    CredentialWrongKind => "CREDENTIAL_WRONG_KIND",
    CredentialInsufficient => "CREDENTIAL_INSUFFICIENT",
    SessionUnknown => "SESSION_UNKNOWN",
    SessionExpired => "SESSION_EXPIRED",
    SessionIdle => "SESSION_IDLE",
    SessionRefreshed => "SESSION_REFRESHED",
    BadCredentials => "BAD_CREDENTIALS",
    AccountThrottled => "ACCOUNT_THROTTLED",
    AccountLocked => "ACCOUNT_LOCKED",
    IpThrottled => "IP_THROTTLED",
    AccountGone => "ACCOUNT_GONE",
    EmailNotVerified => "EMAIL_NOT_VERIFIED",
    EmailTaken => "EMAIL_TAKEN",
    NotYourAccount => "NOT_YOUR_ACCOUNT",
    RegistrationClosed => "REGISTRATION_CLOSED",
    InviteRequired => "INVITE_REQUIRED",
    GuestsDisabled => "GUESTS_DISABLED",
    CodeInvalid => "CODE_INVALID",
    SessionNotYours => "SESSION_NOT_YOURS",
    FederationDenied => "FEDERATION_DENIED",
    FederationSelf => "FEDERATION_SELF",
    ForeignAccount => "FOREIGN_ACCOUNT",
    PeerKeyChanged => "PEER_KEY_CHANGED",
    PeerNameMismatch => "PEER_NAME_MISMATCH",
    PeerProofInvalid => "PEER_PROOF_INVALID",
    PeerExpectsOtherKey => "PEER_EXPECTS_OTHER_KEY",
    PeerUnreachable => "PEER_UNREACHABLE",
    PeerRefused => "PEER_REFUSED",
    ChallengeUnknown => "CHALLENGE_UNKNOWN",
    ChallengesFull => "CHALLENGES_FULL",
    PeerTokenUnknown => "PEER_TOKEN_UNKNOWN",
    TokenSignatureInvalid => "TOKEN_SIGNATURE_INVALID",
    TokenAudienceMismatch => "TOKEN_AUDIENCE_MISMATCH",
    TokenNotYetValid => "TOKEN_NOT_YET_VALID",
    TokenLifetimeInvalid => "TOKEN_LIFETIME_INVALID",
    TokenExpired => "TOKEN_EXPIRED",
    TokenReplayed => "TOKEN_REPLAYED",
    HomeSessionEnded => "HOME_SESSION_ENDED",
    NoticeRefused => "NOTICE_REFUSED",
    NoticeSignatureInvalid => "NOTICE_SIGNATURE_INVALID",
    PeerThrottled => "PEER_THROTTLED",
    NotFound => "NOT_FOUND",
    Unimplemented => "UNIMPLEMENTED",
    RequestTimeout => "REQUEST_TIMEOUT",
    NodeBusy => "NODE_BUSY",
    AccountDisabled => "ACCOUNT_DISABLED",
    ScopeUnknown => "SCOPE_UNKNOWN",
    ScopeNotHeld => "SCOPE_NOT_HELD",
    AccessTokenUnknown => "ACCESS_TOKEN_UNKNOWN",
    LimitReached => "LIMIT_REACHED",
    InviteUnknown => "INVITE_UNKNOWN",
    InviteExpired => "INVITE_EXPIRED",
    InviteUsedUp => "INVITE_USED_UP",
    InviteRevoked => "INVITE_REVOKED",
    InviteWrongKind => "INVITE_WRONG_KIND",
    InviteNotAllowed => "INVITE_NOT_ALLOWED",
    AlreadyMember => "ALREADY_MEMBER",
    JwtInvalid => "JWT_INVALID",
    ProviderUnknown => "PROVIDER_UNKNOWN",
    ProviderTypeMismatch => "PROVIDER_TYPE_MISMATCH",
    ProviderSubjectMismatch => "PROVIDER_SUBJECT_MISMATCH",
    ProviderTokenRejected => "PROVIDER_TOKEN_REJECTED",
    ProviderTokenInactive => "PROVIDER_TOKEN_INACTIVE",
    ProviderTokenOtherClient => "PROVIDER_TOKEN_OTHER_CLIENT",
    ProviderUnavailable => "PROVIDER_UNAVAILABLE",
    AccountNotRegistered => "ACCOUNT_NOT_REGISTERED",
    FlowUnknown => "FLOW_UNKNOWN",
    FlowBusy => "FLOW_BUSY",
    StepNoBack => "STEP_NO_BACK",
    PasswordNotSet => "PASSWORD_NOT_SET",
    SecondFactorRequired => "SECOND_FACTOR_REQUIRED",
    PasskeysOff => "PASSKEYS_OFF",
    PasskeyInvalid => "PASSKEY_INVALID",
    PasskeyTaken => "PASSKEY_TAKEN",
    CeremonyUnknown => "CEREMONY_UNKNOWN",
    StoreUnavailable => "STORE_UNAVAILABLE",
    FrameInvalid => "FRAME_INVALID",
    MethodNotServed => "METHOD_NOT_SERVED",
    Internal => "INTERNAL",
}

/// Every way a domain operation can fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainError {
    /// Which gRPC code it maps to.
    pub kind: ErrorKind,
    /// The stable reason code.
    pub reason: Reason,
    /// For `InvalidArgument`: the field, as the caller named it.
    pub field: Option<&'static str>,
    /// What is wrong and what to do (safe to send); for `Internal`, the logged detail.
    pub message: String,
}

impl fmt::Display for DomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, self.field) {
            (ErrorKind::Internal, _) => write!(f, "internal error: {}", self.message),
            (_, Some(field)) => write!(f, "{field}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for DomainError {}

impl DomainError {
    /// An error of `kind` with `reason`.
    pub fn new(kind: ErrorKind, reason: Reason, message: impl Into<String>) -> Self {
        Self {
            kind,
            reason,
            field: None,
            message: message.into(),
        }
    }

    /// A request field is wrong.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            ..Self::new(ErrorKind::InvalidArgument, Reason::FieldInvalid, message)
        }
    }

    /// A request field is wrong, with a more specific reason.
    pub fn invalid_because(
        field: &'static str,
        reason: Reason,
        message: impl Into<String>,
    ) -> Self {
        Self {
            reason,
            ..Self::invalid(field, message)
        }
    }

    /// No valid credential.
    pub fn unauthenticated(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, reason, message)
    }

    /// Not allowed.
    pub fn denied(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PermissionDenied, reason, message)
    }

    /// Not allowed in the current state.
    pub fn precondition(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::FailedPrecondition, reason, message)
    }

    /// Throttled.
    pub fn exhausted(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceExhausted, reason, message)
    }

    /// A dependency is unreachable.
    pub fn unavailable(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, reason, message)
    }

    /// The thing does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, Reason::NotFound, message)
    }

    /// A bug or an I/O failure; `detail` is logged, never sent.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, Reason::Internal, detail)
    }

    /// The refusal for an account the operator disabled.
    pub fn account_disabled() -> Self {
        Self::denied(
            Reason::AccountDisabled,
            "this account is disabled; ask the operator of this node",
        )
    }

    /// True for this kind.
    pub fn is(&self, kind: ErrorKind) -> bool {
        self.kind == kind
    }
}

impl From<StoreError> for DomainError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) if what.contains("e-mail") => Self::new(
                ErrorKind::AlreadyExists,
                Reason::EmailTaken,
                format!("{what} is already taken"),
            ),
            StoreError::Conflict(what) => Self::new(
                ErrorKind::AlreadyExists,
                Reason::FieldInvalid,
                format!("{what} is already taken"),
            ),
            StoreError::Closed | StoreError::Unreachable(_) => Self::unavailable(
                Reason::StoreUnavailable,
                "the node cannot reach its storage right now; try again shortly",
            ),
            StoreError::Contended => Self::unavailable(
                Reason::NodeBusy,
                "too many parallel changes of the same records; try again shortly",
            ),
            other => Self::internal(other.to_string()),
        }
    }
}
