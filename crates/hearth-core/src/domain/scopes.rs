//! The scopes a personal access token (and a session made from one) may hold: a small fixed
//! set, kept as a bit set so a principal carries it without allocating. The requirement
//! table (`api/auth.rs`) names one scope per method; a test checks every name is here.
//! (No imports from other domain modules: the model uses this.)
use std::fmt;

/// Every scope, with what it covers (shown in errors, the README and the .proto).
pub const SCOPES: &[(&str, &str)] = &[
    (
        "account:read",
        "read the account: IsEmailVerified, ListInvites",
    ),
    (
        "account:write",
        "change the account: CreateInvite, UseInvite, RevokeInvite",
    ),
    ("sessions:read", "list sessions: GetSessions"),
    ("sessions:write", "revoke sessions: RevokeSessions"),
    (
        "tokens:read",
        "see personal access tokens: GetToken, ListTokens",
    ),
    (
        "tokens:write",
        "create, update, expire and regenerate personal access tokens",
    ),
    ("federation", "log into other nodes: Federate"),
];

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScopeSet(u16);

fn bit(name: &str) -> Option<u16> {
    SCOPES.iter().position(|(n, _)| *n == name).map(|i| 1 << i)
}

impl ScopeSet {
    /// Every scope (a full session).
    pub const ALL: ScopeSet = ScopeSet((1 << SCOPES.len()) - 1);
    /// No scope.
    pub const NONE: ScopeSet = ScopeSet(0);

    /// The scopes named in a request; the names that are no scope are returned instead.
    pub fn parse(names: &[String]) -> Result<Self, Vec<String>> {
        let mut set = 0;
        let mut unknown = Vec::new();
        for name in names {
            match bit(name.trim()) {
                Some(b) => set |= b,
                None => unknown.push(name.clone()),
            }
        }
        match unknown.is_empty() {
            true => Ok(ScopeSet(set)),
            false => Err(unknown),
        }
    }

    /// Whether the set holds the scope `name` (false for a name that is no scope).
    pub fn has(self, name: &str) -> bool {
        bit(name).is_some_and(|b| self.0 & b != 0)
    }

    /// Whether every scope of `self` is in `other`.
    pub fn within(self, other: ScopeSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// The scopes of `self` missing from `other`.
    pub fn beyond(self, other: ScopeSet) -> Vec<&'static str> {
        ScopeSet(self.0 & !other.0).names()
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names, in the order of [`SCOPES`].
    pub fn names(self) -> Vec<&'static str> {
        SCOPES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, (n, _))| *n)
            .collect()
    }

    /// The names joined by spaces: how the store keeps a set (names, not bits, so the
    /// order of [`SCOPES`] may change).
    pub fn to_text(self) -> String {
        self.names().join(" ")
    }

    /// A set as [`ScopeSet::to_text`] wrote it; names no longer known are dropped.
    pub fn from_text(text: &str) -> Self {
        ScopeSet(
            text.split_whitespace()
                .filter_map(bit)
                .fold(0, |a, b| a | b),
        )
    }

    /// A session's stored scopes: NULL is a signed-in session's every scope, now and later.
    pub fn from_stored(text: Option<&str>) -> Self {
        text.map_or(ScopeSet::ALL, Self::from_text)
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> ScopeSet {
        let v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        ScopeSet::parse(&v).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn sets_round_trip_and_compare() {
        let s = set(&["tokens:read", "account:read"]);
        assert_eq!(s.names(), ["account:read", "tokens:read"]);
        assert_eq!(ScopeSet::from_text(&s.to_text()), s);
        assert!(s.within(ScopeSet::ALL));
        assert!(!ScopeSet::ALL.within(s));
        assert_eq!(
            set(&["federation", "tokens:read"]).beyond(s),
            ["federation"]
        );
        assert_eq!(ScopeSet::ALL.names().len(), SCOPES.len());
        assert!(s.has("tokens:read") && !s.has("tokens:write") && !s.has("nonsense"));
        let unknown = ScopeSet::parse(&["tokens:read".into(), "admin".into()]);
        assert_eq!(unknown, Err(vec!["admin".to_owned()]));
    }
}
