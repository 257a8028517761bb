//! Node identity, pure and free of I/O: the ed25519 key and addresses (`key`), the one
//! canonicalisation of server names (`server_id`), and the exact bytes both halves of the
//! peer challenge and key rotations sign (`proofs`), and Hearth's EdDSA JWTs (`jwt`).
pub mod jwt;
pub mod key;
pub mod proofs;
pub mod server_id;
