//! End-to-end tests: each one starts the real `mayfly` binary on its own port and temporary
//! directory and drives it over HTTP, raw TCP or the CLI, as operators and clients would.

mod audit;
mod bad_input;
mod cli;
mod cli_auth;
mod cli_secrets;
mod config;
mod database;
mod durability;
mod http_api;
mod kv;
mod leases;
mod recipe;
mod seal;
mod support;
mod tls;
mod tokens;
mod vaultrs_client;
