//! The HTTP layer: Vault's wire protocol over the core. The only crate that knows HTTP,
//! TLS listeners and Vault's JSON envelopes.
//!
//! `handler` turns an HTTP request into a logical request and the core's answer into Vault's
//! JSON; `error` is the one place errors become status codes; `listener` accepts plain and
//! TLS connections and drains them on shutdown.

pub mod error;
pub mod handler;
pub mod listener;
pub mod tls;

pub use crate::handler::{HttpLimits, HttpState};
pub use crate::listener::serve;
pub use crate::tls::{TlsError, TlsMinVersion, TlsOptions, server_config};
