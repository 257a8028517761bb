//! Keys, in the order they depend on each other: `files` (the node key and the JWT keys in
//! the data dir), `cluster` (a cluster's one identity in its shared database, followed by
//! every node), `operations` (what `hearth key …` does with both).
pub mod cluster;
pub mod files;
pub mod operations;
