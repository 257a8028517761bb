//! The second factor (DESIGN.md §3): TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps, ±1 step
//! of clock skew, each code accepted once per account) with 10 single-use recovery codes.
//! The TOTP secret is stored sealed under the second-factor key, itself stored sealed under
//! the node key (re-sealed when the node key rotates: [`reseal_in`], from `keys::operations::rotate_node_key`);
//! recovery codes are stored as MACs only. A code is checked and marked used inside the
//! write that acts on it ([`check_in`]), so parallel uses of one code let one through.
use std::sync::Arc;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};
use zeroize::Zeroizing;

use super::error::Reason;
use super::model::SecondFactor;
use super::principal::Principal;
use super::state::{Store, StoreError, WriteTx};
use super::DomainError;
use crate::clock::SharedClock;
use crate::identity::key::NodeKey;
use crate::identity::seal;

/// The node secret holding the second-factor key, sealed under the node key.
pub const KEY_SECRET: &str = "second_factor_key";
/// The sealing purpose of [`KEY_SECRET`].
pub const KEY_PURPOSE: &str = "second factor key";
/// Recovery codes an account gets at a time.
pub const RECOVERY_CODES: usize = 10;
const STEP_S: u64 = 30;
const DIGITS: usize = 6;
/// Bytes of a TOTP secret: 160 bits, RFC 4226's recommendation.
const SECRET_LEN: usize = 20;
/// One stored recovery code: a used flag and the code's MAC.
const RECORD: usize = 33;
/// Lowercase base32 without look-alikes' confusion: recovery codes are typed by hand.
const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// How a code matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Used {
    /// A TOTP code.
    Totp,
    /// A recovery code (now used up).
    Recovery,
    /// A passkey (its counter advanced).
    Passkey,
}

impl Used {
    /// The `amr` value (RFC 8176) of a session made with it.
    pub fn amr(self) -> &'static str {
        match self {
            Used::Totp => "otp",
            Used::Recovery => "recovery",
            Used::Passkey => super::passkeys::AMR,
        }
    }
}

/// Inside a node key rotation's write: seals the second-factor key under `new` (it
/// outlives the node key that seals it; every second factor stays as it is).
pub fn reseal_in(tx: &mut dyn WriteTx, old: &NodeKey, new: &NodeKey) -> Result<(), StoreError> {
    if let Some(plain) = tx
        .stored_secret(KEY_SECRET)?
        .and_then(|blob| seal::open(old, KEY_PURPOSE, &blob))
    {
        tx.set_node_secret(KEY_SECRET, &seal::seal(new, KEY_PURPOSE, &plain))?;
    }
    Ok(())
}

/// The key second factors are sealed and MACed under (none: the stored key does not open
/// with this node's key, and no second factor can be checked or set up).
#[derive(Clone)]
pub struct FactorKey(Option<Arc<NodeKey>>);

impl std::fmt::Debug for FactorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FactorKey")
    }
}

impl FactorKey {
    /// The key of this node's store, made on first use; `node` opens it. A node key that
    /// does not open it (a database of another identity) is logged loudly: accounts with a
    /// second factor then cannot sign in with a password on this node, rather than without
    /// their factor.
    pub async fn load(store: &Store, node: &NodeKey) -> Result<Self, DomainError> {
        let fresh = seal::seal(node, KEY_PURPOSE, NodeKey::generate().encode().as_bytes());
        let sealed = store
            .write(move |tx| tx.node_secret(KEY_SECRET, &mut || fresh.clone()))
            .await?;
        let key = seal::open(node, KEY_PURPOSE, &sealed)
            .and_then(|opened| NodeKey::from_text(&opened).ok());
        if key.is_none() {
            tracing::error!("the node secret `{KEY_SECRET}` does not open with this node key: second factors cannot be checked or set up here, so accounts that have one cannot sign in with a password (use the node key of this database)");
        }
        Ok(Self(key.map(Arc::new)))
    }

    fn purpose(user_id: u64) -> String {
        format!("totp secret {user_id}")
    }

    fn get(&self) -> Result<&NodeKey, DomainError> {
        self.0.as_deref().ok_or_else(no_key)
    }

    fn seal(&self, user_id: u64, secret: &[u8]) -> Result<Vec<u8>, DomainError> {
        Ok(seal::seal(self.get()?, &Self::purpose(user_id), secret))
    }

    fn open(&self, user_id: u64, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        seal::open(self.0.as_deref()?, &Self::purpose(user_id), sealed)
    }

    /// The MAC of a recovery code (none without the key: then no code matches).
    fn mac(&self, user_id: u64, code: &str) -> Option<[u8; 32]> {
        let key = self.0.as_deref()?.derive("recovery codes");
        let mut m = match <Hmac<Sha256> as Mac>::new_from_slice(key.as_slice()) {
            Ok(m) => m,
            // HMAC takes keys of any length.
            Err(_) => unreachable!(),
        };
        m.update(&user_id.to_be_bytes());
        m.update(code.as_bytes());
        Some(m.finalize().into_bytes().into())
    }
}

fn no_key() -> DomainError {
    DomainError::unavailable(
        Reason::StoreUnavailable,
        "second factors cannot be set up on this node now (its key does not open them)",
    )
}

fn totp(secret: Vec<u8>, issuer: &str, account: &str) -> TOTP {
    // Unchecked: the secret is always ours (160 bits), and a ':' in an account name would
    // only be refused, not misread, by the checked constructor.
    TOTP::new_unchecked(
        Algorithm::SHA1,
        DIGITS,
        1,
        STEP_S,
        secret,
        Some(issuer.to_owned()),
        account.replace(':', "_"),
    )
}

/// A code as typed: spaces and dashes dropped, lowercase.
fn normalize(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The time step of a code `secret` made that matches `code` at `now_ms` (±1 step), newer
/// than `after`.
fn matching_step(secret: &[u8], code: &str, now_ms: u64, after: Option<u64>) -> Option<u64> {
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(secret.to_vec(), "", "");
    let step = now_ms / 1000 / STEP_S;
    let mut found = None;
    // Every candidate is compared, so the time taken says nothing of which one matched.
    for s in [step.saturating_sub(1), step, step + 1] {
        let good = t.generate(s * STEP_S);
        let fresh = after.is_none_or(|a| s > a);
        if bool::from(good.as_bytes().ct_eq(code.as_bytes())) && fresh && found.is_none() {
            found = Some(s);
        }
    }
    found
}

fn new_recovery_codes(
    key: &FactorKey,
    user_id: u64,
) -> Result<(Vec<String>, Vec<u8>), DomainError> {
    let mut rng = rand::rngs::OsRng;
    let mut shown = Vec::with_capacity(RECOVERY_CODES);
    let mut stored = Vec::with_capacity(RECOVERY_CODES * RECORD);
    for _ in 0..RECOVERY_CODES {
        let mut raw = [0u8; 10];
        rng.fill_bytes(&mut raw);
        let code: String = raw
            .iter()
            .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
            .collect();
        let mac = key.mac(user_id, &code).ok_or_else(no_key)?;
        stored.push(0u8);
        stored.extend_from_slice(&mac);
        shown.push(format!("{}-{}", &code[..5], &code[5..]));
    }
    Ok((shown, stored))
}

/// Inside a write: whether `code` (a TOTP code or a recovery code) is good for `user_id`'s
/// enabled second factor at `now_ms`; a good one is marked used in the same write.
pub fn check_in(
    tx: &mut dyn WriteTx,
    key: &FactorKey,
    user_id: u64,
    code: &str,
    now_ms: u64,
) -> Result<Option<Used>, StoreError> {
    let Some(mut factor) = tx.second_factor_for_update(user_id)?.filter(|f| f.enabled) else {
        return Ok(None);
    };
    let code = normalize(code);
    let secret = key.open(user_id, &factor.sealed_secret).unwrap_or_default();
    if let Some(step) = matching_step(&secret, &code, now_ms, Some(factor.last_step)) {
        factor.last_step = step;
        tx.set_second_factor(user_id, Some(&factor), now_ms)?;
        return Ok(Some(Used::Totp));
    }
    let Some(mac) = key.mac(user_id, &code) else {
        return Ok(None);
    };
    let mut hit = None;
    for (n, record) in factor.recovery.chunks(RECORD).enumerate() {
        let same = bool::from(record[1..].ct_eq(&mac));
        if same && record[0] == 0 && hit.is_none() {
            hit = Some(n);
        }
    }
    let Some(n) = hit else { return Ok(None) };
    factor.recovery[n * RECORD] = 1;
    tx.set_second_factor(user_id, Some(&factor), now_ms)?;
    Ok(Some(Used::Recovery))
}

/// What a password sign-in's second factor came to, inside its write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    /// The account has none: the password suffices.
    NotNeeded,
    /// The account has one (TOTP on, a passkey) and no answer came: ask for it.
    Missing { totp: bool, passkey: bool },
    /// A code came and is wrong, used or out of time.
    Wrong,
    /// A code came and was good (now used).
    Used(Used),
}

impl Factor {
    /// The session's `amr` (RFC 8176): the password, and the factor that joined it.
    pub fn amr(self) -> Vec<&'static str> {
        match self {
            Factor::Used(u) => vec!["pwd", u.amr()],
            _ => vec!["pwd"],
        }
    }
}

/// What answers a second factor: a code (TOTP or recovery), or a passkey's assertion.
#[derive(Debug, Clone)]
pub enum Second {
    Code(String),
    Passkey(Box<super::passkeys::Assertion>),
}

/// Inside a password sign-in's write: what `second` comes to for `user_id` at `now_ms`,
/// given its `factors` (TOTP on, a passkey held) read under its locked row: either one makes
/// a password alone not enough.
pub fn require_in(
    tx: &mut dyn WriteTx,
    key: &FactorKey,
    user_id: u64,
    (totp, passkey): (bool, bool),
    second: Option<&Second>,
    now_ms: u64,
) -> Result<Factor, StoreError> {
    if !totp && !passkey {
        return Ok(Factor::NotNeeded);
    }
    let used = match second {
        None => return Ok(Factor::Missing { totp, passkey }),
        Some(Second::Code(c)) => check_in(tx, key, user_id, c, now_ms)?,
        Some(Second::Passkey(a)) => a
            .check_in(tx, Some(user_id), now_ms)?
            .map(|_| Used::Passkey),
    };
    Ok(used.map_or(Factor::Wrong, Factor::Used))
}

/// The answer to a right password of an account with a second factor and no code.
pub fn required() -> DomainError {
    DomainError::unauthenticated(
        Reason::SecondFactorRequired,
        "this account has a second factor: send a current code from the authenticator app, or a recovery code (`totp`); an account with only a passkey signs in with it (BeginPasskeySignIn)",
    )
}

/// What SetupTotp answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TotpView {
    /// Whether the second factor is on now.
    pub enabled: bool,
    /// The `otpauth://` URL of a setup in progress (shown once, to scan).
    pub url: Option<String>,
    /// Recovery codes just made (shown once), none otherwise.
    pub recovery_codes: Vec<String>,
}

/// What the operator sees of an account's second factor.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FactorStatus {
    /// Confirmed and in force.
    pub enabled: bool,
    /// A setup was started and not confirmed.
    pub pending: bool,
    /// Recovery codes not used yet.
    pub recovery_left: usize,
}

/// The second-factor service.
#[derive(Debug)]
pub struct SecondFactors {
    store: Store,
    clock: SharedClock,
    key: FactorKey,
    issuer: String,
}

impl SecondFactors {
    /// The service; `issuer` names the node in authenticator apps.
    pub fn new(store: Store, clock: SharedClock, key: FactorKey, issuer: String) -> Self {
        Self {
            store,
            clock,
            key,
            issuer,
        }
    }

    /// The key codes are checked with (for sign-ins' writes).
    pub fn key(&self) -> &FactorKey {
        &self.key
    }

    /// The state of `user_id`'s second factor.
    pub async fn status(&self, user_id: u64) -> Result<FactorStatus, DomainError> {
        let factor = self
            .store
            .read(move |tx| Ok::<_, DomainError>(tx.second_factor(user_id)?))
            .await?;
        Ok(factor.map_or_else(FactorStatus::default, |f| FactorStatus {
            enabled: f.enabled,
            pending: !f.enabled,
            recovery_left: f.recovery.chunks(RECORD).filter(|r| r[0] == 0).count(),
        }))
    }

    /// SetupTotp (the Osmium message's meaning):
    /// - `enabled` without a code starts a setup: a new secret, its `otpauth://` URL;
    /// - `enabled` with a code confirms the setup with a first code and turns the factor on
    ///   with 10 new recovery codes; on an account that has it on, a current code (or a
    ///   recovery code) replaces the recovery codes;
    /// - not `enabled` turns it off with a current code or a recovery code (a setup in
    ///   progress is dropped without one).
    pub async fn setup(
        &self,
        p: &Principal,
        email: &str,
        enabled: bool,
        code: Option<&str>,
    ) -> Result<TotpView, DomainError> {
        let (user, now, key) = (p.user_id, self.clock.now_ms(), self.key.clone());
        let code = code.map(normalize).filter(|c| !c.is_empty());
        let (issuer, account) = (self.issuer.clone(), email.to_owned());
        let view = self
            .store
            .write(move |tx| {
                let current = tx.second_factor_for_update(user)?;
                match (enabled, &code, current) {
                    // Start (or restart) a setup.
                    (true, None, None) | (true, None, Some(SecondFactor { enabled: false, .. })) => {
                        let mut secret = Zeroizing::new(vec![0u8; SECRET_LEN]);
                        rand::rngs::OsRng.fill_bytes(&mut secret);
                        let pending = SecondFactor {
                            sealed_secret: key.seal(user, &secret)?,
                            ..SecondFactor::default()
                        };
                        tx.set_second_factor(user, Some(&pending), now)?;
                        let url = totp(secret.to_vec(), &issuer, &account).get_url();
                        Ok(TotpView {
                            enabled: false,
                            url: Some(url),
                            recovery_codes: Vec::new(),
                        })
                    }
                    (true, None, Some(_)) => Err(DomainError::precondition(
                        Reason::SecondFactorRequired,
                        "the second factor is on; send a current code to make new recovery codes",
                    )),
                    // Confirm a setup with its first code.
                    (true, Some(c), Some(mut f)) if !f.enabled => {
                        let secret = key.open(user, &f.sealed_secret).unwrap_or_default();
                        let step = matching_step(&secret, c, now, None).ok_or_else(wrong_code)?;
                        let (shown, stored) = new_recovery_codes(&key, user)?;
                        f.enabled = true;
                        f.last_step = step;
                        f.recovery = stored;
                        tx.set_second_factor(user, Some(&f), now)?;
                        tracing::info!(target: "hearth::audit", event = "second_factor_on", user);
                        Ok(TotpView {
                            enabled: true,
                            url: None,
                            recovery_codes: shown,
                        })
                    }
                    // New recovery codes, for a current code.
                    (true, Some(c), Some(_)) => {
                        check_in(tx, &key, user, c, now)?.ok_or_else(wrong_code)?;
                        let mut f = tx.second_factor_for_update(user)?.unwrap_or_default();
                        let (shown, stored) = new_recovery_codes(&key, user)?;
                        f.recovery = stored;
                        tx.set_second_factor(user, Some(&f), now)?;
                        tracing::info!(target: "hearth::audit", event = "recovery_codes_replaced", user);
                        Ok(TotpView {
                            enabled: true,
                            url: None,
                            recovery_codes: shown,
                        })
                    }
                    (true, Some(_), None) => Err(DomainError::precondition(
                        Reason::CodeInvalid,
                        "no second-factor setup is in progress; send SetupTotp{enabled} first",
                    )),
                    // Off: a setup in progress goes without a code.
                    (false, _, None) => Ok(TotpView::default()),
                    (false, _, Some(f)) if !f.enabled => {
                        tx.set_second_factor(user, None, now)?;
                        Ok(TotpView::default())
                    }
                    (false, None, Some(_)) => Err(DomainError::unauthenticated(
                        Reason::SecondFactorRequired,
                        "send a current code or a recovery code to turn the second factor off",
                    )),
                    (false, Some(c), Some(_)) => {
                        check_in(tx, &key, user, c, now)?.ok_or_else(wrong_code)?;
                        tx.set_second_factor(user, None, now)?;
                        tracing::info!(target: "hearth::audit", event = "second_factor_off", user);
                        Ok(TotpView::default())
                    }
                }
            })
            .await?;
        Ok(view)
    }

    /// The operator's way out for a holder who lost both device and codes: removes the
    /// second factor of `user_id`; returns whether it had one.
    pub async fn reset(&self, user_id: u64) -> Result<bool, DomainError> {
        let now = self.clock.now_ms();
        let had = self
            .store
            .write(move |tx| {
                let had = tx.second_factor_for_update(user_id)?.is_some();
                tx.set_second_factor(user_id, None, now)?;
                Ok::<_, DomainError>(had)
            })
            .await?;
        tracing::info!(target: "hearth::audit", event = "second_factor_reset", user = user_id, had);
        Ok(had)
    }
}

fn wrong_code() -> DomainError {
    DomainError::invalid_because(
        "code",
        Reason::CodeInvalid,
        "the code is wrong, used or from another time; use the current one",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 (8 digits there; the last six are our 6-digit codes,
    /// since truncation takes the value modulo 10^digits).
    #[test]
    fn rfc_6238_test_vectors() {
        let secret = b"12345678901234567890".to_vec();
        let t = totp(secret.clone(), "x", "y");
        for (time, eight) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(t.generate(time), &eight[2..], "T = {time}");
            let step = time / STEP_S;
            assert_eq!(
                matching_step(&secret, &eight[2..], time * 1000, None),
                Some(step)
            );
        }
    }

    #[test]
    fn one_step_of_skew_is_accepted_two_are_not() {
        let secret = b"12345678901234567890".to_vec();
        let t = totp(secret.clone(), "x", "y");
        let now_ms = 1_111_111_111_000;
        let step = now_ms / 1000 / STEP_S;
        for (delta, ok) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let s = step.wrapping_add_signed(delta);
            let code = t.generate(s * STEP_S);
            assert_eq!(
                matching_step(&secret, &code, now_ms, None).is_some(),
                ok,
                "{delta:+} steps"
            );
        }
        // A code of a step already used is refused, and so is any older one.
        let code = t.generate(step * STEP_S);
        assert_eq!(matching_step(&secret, &code, now_ms, Some(step)), None);
        assert_eq!(
            matching_step(&secret, &code, now_ms, Some(step - 1)),
            Some(step)
        );
    }

    #[test]
    fn codes_are_normalized_and_recovery_codes_look_typed() {
        assert_eq!(normalize(" 123 456 "), "123456");
        assert_eq!(normalize("ABCDE-FGHJK"), "abcdefghjk");
        let key = FactorKey(Some(Arc::new(NodeKey::generate())));
        let (shown, stored) = new_recovery_codes(&key, 7).unwrap();
        assert_eq!(shown.len(), RECOVERY_CODES);
        assert_eq!(stored.len(), RECOVERY_CODES * RECORD);
        assert!(shown
            .iter()
            .all(|c| c.len() == 11 && c.as_bytes()[5] == b'-'));
        // Only MACs are kept: no code appears in what is stored.
        for c in &shown {
            let plain = normalize(c);
            assert!(!stored.windows(plain.len()).any(|w| w == plain.as_bytes()));
        }
    }
}
