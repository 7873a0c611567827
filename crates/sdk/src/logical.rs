//! Logical requests and responses: the transport-free shape of one API call.

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::{error::Result, storage::Storage};

/// What a request asks to do, after the HTTP method has been interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Read,
    Create,
    Update,
    Patch,
    Delete,
    List,
    Help,
    /// `HEAD`: status only (used by `sys/health`).
    Header,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Patch => "patch",
            Operation::Delete => "delete",
            Operation::List => "list",
            Operation::Help => "help",
            Operation::Header => "header",
        }
    }
}

/// A client token. `Debug` never shows it, so a logged request cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientToken(pub String);

impl fmt::Debug for ClientToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientToken(<redacted>)")
    }
}

/// One logical request.
#[derive(Clone)]
pub struct Request {
    pub id: String,
    pub operation: Operation,
    /// The full request path, without `/v1/` (e.g. `cubbyhole/foo`).
    pub path: String,
    /// The mount serving the request (e.g. `cubbyhole/`); set by the router.
    pub mount_point: String,
    /// Request data: the JSON body, or query parameters for reads.
    pub data: Map<String, Value>,
    pub client_token: Option<ClientToken>,
    /// A stable, non-reversible identifier of the client token, for per-token storage.
    pub client_token_hash: Option<String>,
    pub remote_addr: Option<String>,
    pub wrap_ttl: Option<Duration>,
    /// The mounted engine's storage view; set by the router.
    pub storage: Option<Arc<dyn Storage>>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Data may hold secrets: only its keys are shown.
        f.debug_struct("Request")
            .field("id", &self.id)
            .field("operation", &self.operation)
            .field("path", &self.path)
            .field("mount_point", &self.mount_point)
            .field("data_keys", &self.data.keys().collect::<Vec<_>>())
            .field("remote_addr", &self.remote_addr)
            .finish()
    }
}

impl Request {
    pub fn new(operation: Operation, path: impl Into<String>) -> Self {
        Request {
            id: String::new(),
            operation,
            path: path.into(),
            mount_point: String::new(),
            data: Map::new(),
            client_token: None,
            client_token_hash: None,
            remote_addr: None,
            wrap_ttl: None,
            storage: None,
        }
    }

    /// The path relative to the mount point.
    pub fn relative_path(&self) -> &str {
        self.path
            .strip_prefix(&self.mount_point)
            .unwrap_or(&self.path)
    }

    pub fn storage(&self) -> Result<&Arc<dyn Storage>> {
        self.storage
            .as_ref()
            .ok_or_else(|| crate::Error::internal("request routed without a storage view"))
    }
}

/// The lease part of a response that hands out a secret with a lifetime.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecretLease {
    pub lease_id: String,
    pub ttl: Duration,
    pub renewable: bool,
}

/// The token part of a login or token-creation response.
#[derive(Clone, Default, PartialEq)]
pub struct Auth {
    pub client_token: String,
    pub accessor: String,
    pub policies: Vec<String>,
    pub token_policies: Vec<String>,
    pub metadata: Option<Map<String, Value>>,
    pub lease_duration: Duration,
    pub renewable: bool,
    pub entity_id: String,
    pub token_type: String,
    pub orphan: bool,
    pub num_uses: u64,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("accessor", &self.accessor)
            .field("policies", &self.policies)
            .finish_non_exhaustive()
    }
}

/// A response that is not wrapped in Vault's envelope (`sys/health`, `sys/init`, PEM files…).
#[derive(Debug, Clone, PartialEq)]
pub struct RawResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn json(status: u16, body: &Value) -> Self {
        RawResponse {
            status,
            content_type: "application/json".to_owned(),
            body: serde_json::to_vec(body).unwrap_or_default(),
        }
    }
}

/// One logical response.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub data: Option<Map<String, Value>>,
    pub secret: Option<SecretLease>,
    pub auth: Option<Auth>,
    pub warnings: Vec<String>,
    /// Overrides the status of an enveloped response (202 accepted, 404 with a body…).
    pub status: Option<u16>,
    /// Replaces the envelope entirely.
    pub raw: Option<RawResponse>,
}

impl Response {
    pub fn with_data(data: Map<String, Value>) -> Self {
        Response {
            data: Some(data),
            ..Response::default()
        }
    }

    /// A response built from a JSON object; anything else becomes `{"value": v}`.
    pub fn from_value(value: Value) -> Self {
        match value {
            Value::Object(map) => Response::with_data(map),
            other => {
                let mut map = Map::new();
                map.insert("value".to_owned(), other);
                Response::with_data(map)
            }
        }
    }

    pub fn list(keys: Vec<String>) -> Self {
        let mut map = Map::new();
        map.insert(
            "keys".to_owned(),
            Value::Array(keys.into_iter().map(Value::String).collect()),
        );
        Response::with_data(map)
    }

    pub fn raw(raw: RawResponse) -> Self {
        Response {
            raw: Some(raw),
            ..Response::default()
        }
    }
}

/// A mounted engine or auth method as the router sees it.
#[async_trait]
pub trait LogicalBackend: Send + Sync {
    /// Handles a routed request. `Ok(None)` means "nothing to return" (204 for writes, 404 for
    /// reads and lists).
    async fn handle(&self, req: Request) -> Result<Option<Response>>;

    /// Whether a request would create rather than update (ACL `create` vs `update`).
    async fn exists(&self, _req: &Request) -> Result<Option<bool>> {
        Ok(None)
    }

    /// Relative path patterns (`login`, `login/*`) that need no token.
    fn unauthenticated_paths(&self) -> Vec<String> {
        Vec::new()
    }
}
