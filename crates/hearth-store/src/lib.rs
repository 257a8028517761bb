//! Storage backends behind the domain's store seam (`domain::state::store`). Each backend
//! implements `Backend`, `ReadTx` and `WriteTx`, and passes the conformance suite.
pub mod postgres;
pub mod sqlite;

// The core's modules under the paths the backends name them by (`crate::domain::…`).
use hearth_core::{clock, config, domain};
