//! Node identity, pure and free of I/O: the ed25519 key and addresses (`key`), the one
//! canonicalisation of server names (`server_id`), and the exact bytes both halves of the
//! peer challenge and key rotations sign (`proofs`), Hearth's EdDSA JWTs (`jwt`), and the
//! sealing of keys a cluster's nodes hand each other through the database (`seal`).
pub mod jwt;
pub mod key;
pub mod proofs;
pub mod seal;
pub mod server_id;
