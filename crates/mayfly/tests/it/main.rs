//! End-to-end tests: each one starts the real `mayfly` binary on its own port and temporary
//! directory and drives it over HTTP, raw TCP or the CLI, as operators and clients would.

mod cli;
mod config;
mod database;
mod durability;
mod http_api;
mod seal;
mod support;
mod tls;
