//! Hearth's core: the domain (accounts, sessions, codes, tokens, invites, federation rules,
//! flows), identity (node keys, proofs, sealing), the config contract and the clock. The
//! store seam's traits (`domain::state::store`) are here; their implementations are in
//! `hearth-store`, and every transport is in the `hearth` crate above both. This crate's
//! manifest names no transport or driver, so the layering is the compiler's to enforce.
pub mod clock;
pub mod config;
pub mod domain;
pub mod identity;
pub mod secret;
