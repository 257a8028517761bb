//! The one integration-test binary of the `hearth` crate: real nodes on real sockets with
//! temporary data dirs, started through `Node::start`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod account_pages;
mod accounts;
mod browser;
mod chromium;
mod cli;
mod cluster;
mod codes;
mod conformance;
mod connections;
mod errors;
mod flows;
mod foundation;
mod hardening;
mod invites;
mod jwt;
mod layering;
mod mail;
mod oidc;
mod operations;
mod osmium;
mod pages;
mod pg;
mod pg_faults;
mod properties;
mod second_factor;
mod served;
mod sessions;
mod settings;
mod support;
mod tls;
mod tokens;
mod transports;
mod wire;
