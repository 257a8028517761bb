//! Federation across several real nodes in one process (and once as three processes),
//! discovering each other through a real DNS authority serving `*.hearth.test`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cases;
mod dns;
mod linking;
mod mesh;
mod peers;
mod processes;
mod revocation;
mod support;
