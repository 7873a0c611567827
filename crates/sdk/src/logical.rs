//! Logical requests and responses: the transport-free shape of one API call.

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::{error::Result, storage::Storage, system::SystemView};

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
    /// The core renewing a lease the engine issued (never sent by clients).
    Renew,
    /// The core revoking a lease the engine issued (never sent by clients).
    Revoke,
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
            Operation::Renew => "renew",
            Operation::Revoke => "revoke",
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
    /// The mount's Vault type name (`kv`, `approle`…); set by the router.
    pub mount_type: String,
    /// The effective TTL bounds of the mount; set by the router.
    pub mount_ttls: MountTtls,
    /// The accessor of the calling token, safe to log and store.
    pub client_token_accessor: Option<String>,
    /// Request headers a backend may need (lower-case names); never the token header.
    pub headers: std::collections::BTreeMap<String, String>,
    /// Whether the caller's policies grant `sudo` on this path (or the caller is root).
    pub root_privileges: bool,
    /// The calling token's display name (`token`, `root`, `approle`…), for generated names.
    pub display_name: String,
    /// Services of the server (password policies…); set by the router.
    pub system: Option<Arc<dyn SystemView>>,
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
            mount_type: String::new(),
            mount_ttls: MountTtls::default(),
            client_token_accessor: None,
            headers: std::collections::BTreeMap::new(),
            root_privileges: false,
            display_name: String::new(),
            system: None,
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

    pub fn system(&self) -> Result<&Arc<dyn SystemView>> {
        self.system
            .as_ref()
            .ok_or_else(|| crate::Error::internal("request routed without a system view"))
    }
}

/// What a mount gets when it is set up (after unseal, or when enabled): its own storage and the
/// server's services, for work that happens outside requests (recovery, background loops).
#[derive(Clone)]
pub struct MountContext {
    /// The mount path, e.g. `database/`.
    pub mount_point: String,
    pub storage: Arc<dyn Storage>,
    pub system: Arc<dyn SystemView>,
}

/// The lease part of a response that hands out a secret with a lifetime.
///
/// An engine sets `secret_type` (one of the secret types it declared) and whatever it will need
/// to renew or revoke the secret in `internal_data`; the core then registers a lease and fills
/// in `lease_id`. Without a `secret_type` the TTL is only advisory (KV v1) and nothing is
/// registered.
#[derive(Clone, Default, PartialEq)]
pub struct SecretLease {
    /// Set by the core when it registers the lease.
    pub lease_id: String,
    pub ttl: Duration,
    /// The engine's (role's) maximum; zero means the mount's.
    pub max_ttl: Duration,
    pub renewable: bool,
    pub secret_type: String,
    /// Kept encrypted in the lease; handed back on renewal and revocation.
    pub internal_data: Map<String, Value>,
    /// Writes to the mount's own storage that the core commits in the same transaction as
    /// the lease, so an engine's record of the secret and the lease exist together or not at
    /// all (the database engine marks its creation intent issued this way).
    pub commit_with_lease: Vec<StorageChange>,
}

/// One write to a mount's storage, applied by the core with a lease.
#[derive(Clone, PartialEq)]
pub enum StorageChange {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

impl fmt::Debug for StorageChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values can hold credentials: only keys are shown.
        match self {
            StorageChange::Put { key, .. } => f.debug_struct("Put").field("key", key).finish(),
            StorageChange::Delete { key } => f.debug_struct("Delete").field("key", key).finish(),
        }
    }
}

impl fmt::Debug for SecretLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Internal data can hold credentials (a database username): only its keys are shown.
        f.debug_struct("SecretLease")
            .field("lease_id", &self.lease_id)
            .field("ttl", &self.ttl)
            .field("renewable", &self.renewable)
            .field("secret_type", &self.secret_type)
            .field(
                "internal_keys",
                &self.internal_data.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The token part of a response.
///
/// A login handler fills in what the token should be (policies, TTLs, limits, metadata); the
/// core then creates the token and fills in `client_token`, `accessor` and `lease_duration`.
#[derive(Clone, Default, PartialEq)]
pub struct Auth {
    pub client_token: String,
    pub accessor: String,
    pub display_name: String,
    /// Policies the token gets, sorted; `default` is added by the core unless suppressed.
    pub policies: Vec<String>,
    pub token_policies: Vec<String>,
    pub identity_policies: Vec<String>,
    pub metadata: Option<Map<String, Value>>,
    /// Requested TTL; zero means the mount's (or system's) default.
    pub ttl: Duration,
    /// Upper bound on renewals from this login; zero means the mount's (or system's) maximum.
    pub max_ttl: Duration,
    /// Hard cap that no renewal can pass; zero means none.
    pub explicit_max_ttl: Duration,
    /// A periodic token renews to this period forever; zero means not periodic.
    pub period: Duration,
    pub num_uses: u64,
    pub renewable: bool,
    pub no_default_policy: bool,
    /// CIDRs the token may be used from; empty means anywhere.
    pub bound_cidrs: Vec<String>,
    /// `service` (default) or `batch`.
    pub token_type: String,
    /// Opaque data the issuing backend gets back when the token is renewed.
    pub internal_data: Map<String, Value>,
    pub lease_duration: Duration,
    pub entity_id: String,
    pub orphan: bool,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("accessor", &self.accessor)
            .field("display_name", &self.display_name)
            .field("policies", &self.policies)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// The TTL bounds in force for a request's mount, after system defaults are applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MountTtls {
    pub default_lease_ttl: Duration,
    pub max_lease_ttl: Duration,
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
    /// Set when the response was wrapped: the envelope then carries only this.
    pub wrap_info: Option<WrapInfo>,
}

/// Where a wrapped response can be fetched from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WrapInfo {
    pub token: String,
    pub accessor: String,
    pub ttl: Duration,
    /// RFC 3339 with nanoseconds.
    pub creation_time: String,
    pub creation_path: String,
    /// The accessor of the token inside a wrapped login response.
    pub wrapped_accessor: String,
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

    /// Renews a lease on a secret this backend issued. The response's `secret` carries the
    /// TTL the backend grants (and may carry new internal data); the core caps it.
    async fn renew_secret(&self, _req: Request, _secret: SecretLease) -> Result<Option<Response>> {
        Err(crate::Error::invalid("lease is not renewable"))
    }

    /// Revokes a secret this backend issued (drops the database user…). Must be idempotent:
    /// a secret that is already gone counts as revoked. The changes returned are committed
    /// in the transaction that deletes the lease (the engine's own record of the secret, say).
    async fn revoke_secret(
        &self,
        _req: Request,
        _secret: SecretLease,
    ) -> Result<Vec<StorageChange>> {
        Ok(Vec::new())
    }

    /// Called once the mount is live (after unseal, or when it is enabled), before any request
    /// is routed to it. A backend starts its background work and recovers here; an error is
    /// logged and the mount stays usable.
    async fn initialize(&self, _ctx: MountContext) -> Result<()> {
        Ok(())
    }

    /// Called when the mount goes away (seal, disable, rebuild): stop background work and close
    /// connections. Requests may still be in flight.
    async fn cleanup(&self) {}

    /// Called when a token this backend issued at login is renewed. The backend may refuse
    /// (the role is gone) or adjust the TTLs; by default the token renews unchanged.
    async fn renew_auth(&self, _req: Request, auth: Auth) -> Result<Auth> {
        Ok(auth)
    }
}
