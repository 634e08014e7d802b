//! End-to-end tests of Canopy through its public surfaces: the REST API and
//! the `canopy` binary. One test binary; every test runs on SQLite and on
//! PostgreSQL (see `canopy_testkit::backend_tests!`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod auth;
mod browser_harness;
mod checkpoints;
mod cli;
mod clouds;
mod deletion;
mod faults;
mod four_eye;
mod hardening;
mod history;
mod input;
mod interface;
mod lifecycle;
mod mail;
mod nodes;
mod observability;
mod oidc;
mod openapi;
mod paging;
mod plans;
mod platforms;
mod scim;
mod serve;
mod shutdown;
mod tenants;
mod tidy;
mod ui;
mod urgent;
mod workspaces;
