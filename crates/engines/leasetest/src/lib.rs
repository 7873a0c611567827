//! `lease-test`: a secrets engine for tests and benchmarks of the lease manager, never built
//! into production binaries (the `mayfly` binary includes it only with its `test-engines`
//! feature).
//!
//! It hands out a made-up credential per request with a lease of the requested TTL, keeps no
//! state per credential (so it is as cheap as an engine can be), and records every revocation
//! in a *ledger* in its storage, so a test can check that each secret was revoked exactly once
//! and when. `config` switches make revocation or renewal fail, or slow, to exercise retries,
//! backoff and irrevocable leases.
//!
//! | path | operation | what |
//! |---|---|---|
//! | `creds/:name` | read, update | a new secret; `ttl`, `max_ttl`, `renewable` choose its lease |
//! | `config` | read, update | `fail_revoke`, `fail_renew`, `revoke_delay_ms`, `ledger` |
//! | `ledger` | read | `revocations`: username → revocation times (Unix ms) |
//! | `ledger` | delete | empties the ledger |

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime},
};

use mayfly_sdk::{
    Error, LogicalBackend, Operation, Request, Response, Result, SecretLease, Storage, StorageExt,
    framework::{
        Field, FieldData, FieldKind, FrameworkBackend, Mounted, Path, SecretType, generic_name,
        handler, secret_handler,
    },
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The Vault-style type name it is mounted as.
pub const TYPE_NAME: &str = "lease-test";
/// The secret type of its credentials.
pub const SECRET_TYPE: &str = "creds";

/// The failure switches, persisted in the engine's storage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Config {
    pub fail_revoke: bool,
    pub fail_renew: bool,
    pub revoke_delay_ms: u64,
    /// Record revocations (on by default; a benchmark may turn it off).
    pub ledger: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            fail_revoke: false,
            fail_renew: false,
            revoke_delay_ms: 0,
            ledger: true,
        }
    }
}

/// One mount's state: the configuration, cached after its first read.
#[derive(Default)]
pub struct LeaseTest {
    config: Mutex<Option<Config>>,
}

impl LeaseTest {
    async fn config(&self, storage: &dyn Storage) -> Result<Config> {
        if let Some(config) = self
            .config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Ok(config);
        }
        let config: Config = storage.get_json("config").await?.unwrap_or_default();
        *self.config.lock().unwrap_or_else(PoisonError::into_inner) = Some(config.clone());
        Ok(config)
    }
}

/// Builds a mount of the engine.
pub fn new_backend() -> Result<Arc<dyn LogicalBackend>> {
    Ok(Arc::new(Mounted {
        state: Arc::new(LeaseTest::default()),
        framework: Arc::new(backend()),
    }))
}

fn backend() -> FrameworkBackend<LeaseTest> {
    FrameworkBackend::new(
        "Issues cheap leased secrets for testing the lease manager.",
        vec![
            Path::new(format!("creds/{}", generic_name("name")))
                .field(Field::new("name", FieldKind::String, "Any name."))
                .field(Field::new(
                    "ttl",
                    FieldKind::Duration,
                    "Lease TTL (0: the mount's).",
                ))
                .field(Field::new(
                    "max_ttl",
                    FieldKind::Duration,
                    "Maximum TTL (0: the mount's).",
                ))
                .field(
                    Field::new("renewable", FieldKind::Bool, "Whether renewal is allowed.")
                        .default_value(json!(true)),
                )
                .operation(Operation::Read, handler(issue))
                .operation(Operation::Update, handler(issue))
                .help(
                    "Issue a secret.",
                    "Returns a made-up credential with a lease.",
                ),
            Path::new("config")
                .field(Field::new(
                    "fail_revoke",
                    FieldKind::Bool,
                    "Revocations fail.",
                ))
                .field(Field::new("fail_renew", FieldKind::Bool, "Renewals fail."))
                .field(Field::new(
                    "revoke_delay_ms",
                    FieldKind::Int,
                    "Each revocation takes this long.",
                ))
                .field(Field::new("ledger", FieldKind::Bool, "Record revocations."))
                .operation(Operation::Read, handler(read_config))
                .operation(Operation::Update, handler(write_config))
                .help(
                    "Failure switches.",
                    "Makes revocation or renewal fail or slow.",
                ),
            Path::new("ledger")
                .operation(Operation::Read, handler(read_ledger))
                .operation(Operation::Delete, handler(clear_ledger))
                .help(
                    "Revocation ledger.",
                    "Every revocation of every secret, with its time.",
                ),
        ],
    )
    .with_secret(SecretType {
        name: SECRET_TYPE,
        renew: Some(secret_handler(renew)),
        revoke: secret_handler(revoke),
    })
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A hexadecimal name unique enough for tests: time plus a process-wide counter.
fn username() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("lt-{:x}-{n:x}", unix_ms())
}

async fn issue(_: Arc<LeaseTest>, _: Request, fields: FieldData) -> Result<Option<Response>> {
    let ttl = fields.duration("ttl").unwrap_or_default();
    let max_ttl = fields.duration("max_ttl").unwrap_or_default();
    let username = username();
    let mut internal = Map::new();
    internal.insert("username".into(), username.clone().into());
    internal.insert("ttl".into(), ttl.as_secs().into());
    internal.insert("max_ttl".into(), max_ttl.as_secs().into());
    let mut data = Map::new();
    data.insert("username".into(), username.into());
    data.insert("password".into(), format!("pw-{:x}", unix_ms()).into());
    Ok(Some(Response {
        data: Some(data),
        secret: Some(SecretLease {
            ttl,
            max_ttl,
            renewable: fields.bool("renewable").unwrap_or(true),
            secret_type: SECRET_TYPE.to_owned(),
            internal_data: internal,
            ..SecretLease::default()
        }),
        ..Response::default()
    }))
}

fn seconds(secret: &SecretLease, key: &str) -> Duration {
    Duration::from_secs(
        secret
            .internal_data
            .get(key)
            .and_then(Value::as_u64)
            .unwrap_or(0),
    )
}

async fn renew(
    state: Arc<LeaseTest>,
    req: Request,
    secret: SecretLease,
) -> Result<Option<Response>> {
    let config = state.config(req.storage()?.as_ref()).await?;
    if config.fail_renew {
        return Err(Error::Upstream(
            "lease-test: the target refused the renewal (fail_renew is set)".into(),
        ));
    }
    let renewed = SecretLease {
        ttl: seconds(&secret, "ttl"),
        max_ttl: seconds(&secret, "max_ttl"),
        ..secret
    };
    Ok(Some(Response {
        secret: Some(renewed),
        ..Response::default()
    }))
}

async fn revoke(
    state: Arc<LeaseTest>,
    req: Request,
    secret: SecretLease,
) -> Result<Option<Response>> {
    let storage = req.storage()?.clone();
    let config = state.config(storage.as_ref()).await?;
    if config.revoke_delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(config.revoke_delay_ms)).await;
    }
    if config.fail_revoke {
        return Err(Error::Upstream(
            "lease-test: the target is unavailable (fail_revoke is set)".into(),
        ));
    }
    let username = secret
        .internal_data
        .get("username")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if config.ledger && !username.is_empty() {
        // One key per revocation (never read-modify-write), so a double revocation shows.
        let key = format!("ledger/{username}@{}@{:x}", unix_ms(), rand_suffix());
        storage.put(&key, b"").await?;
    }
    Ok(None)
}

fn rand_suffix() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

async fn read_config(
    state: Arc<LeaseTest>,
    req: Request,
    _: FieldData,
) -> Result<Option<Response>> {
    let config = state.config(req.storage()?.as_ref()).await?;
    let value = serde_json::to_value(config).map_err(Error::internal)?;
    Ok(Some(Response::from_value(value)))
}

async fn write_config(
    state: Arc<LeaseTest>,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let storage = req.storage()?.clone();
    let mut config = state.config(storage.as_ref()).await?;
    if let Some(fail) = fields.bool("fail_revoke") {
        config.fail_revoke = fail;
    }
    if let Some(fail) = fields.bool("fail_renew") {
        config.fail_renew = fail;
    }
    if let Some(delay) = fields.int("revoke_delay_ms") {
        config.revoke_delay_ms = u64::try_from(delay.max(0)).unwrap_or(0);
    }
    if let Some(ledger) = fields.bool("ledger") {
        config.ledger = ledger;
    }
    storage.put_json("config", &config).await?;
    *state.config.lock().unwrap_or_else(PoisonError::into_inner) = Some(config);
    Ok(None)
}

async fn read_ledger(_: Arc<LeaseTest>, req: Request, _: FieldData) -> Result<Option<Response>> {
    let storage = req.storage()?;
    let mut revocations: Map<String, Value> = Map::new();
    for key in storage.list("ledger/").await? {
        let mut parts = key.splitn(3, '@');
        let (Some(username), Some(at)) = (parts.next(), parts.next()) else {
            continue;
        };
        let at: u64 = at.parse().unwrap_or(0);
        if let Value::Array(times) = revocations
            .entry(username.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            times.push(at.into());
        }
    }
    Ok(Some(Response::from_value(
        json!({ "revocations": revocations }),
    )))
}

async fn clear_ledger(_: Arc<LeaseTest>, req: Request, _: FieldData) -> Result<Option<Response>> {
    let storage = req.storage()?;
    for key in storage.list("ledger/").await? {
        storage.delete(&format!("ledger/{key}")).await?;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(operation: Operation, path: &str, storage: &Arc<dyn Storage>) -> Request {
        let mut req = Request::new(operation, format!("lt/{path}"));
        req.mount_point = "lt/".into();
        req.storage = Some(storage.clone());
        req
    }

    #[tokio::test]
    async fn issues_records_and_fails_on_demand() {
        let storage: Arc<dyn Storage> = mayfly_sdk::testing::MemoryStorage::new();
        let backend = new_backend().unwrap();
        let mut req = request(Operation::Read, "creds/app", &storage);
        req.data.insert("ttl".into(), "60s".into());
        let response = backend.handle(req).await.unwrap().unwrap();
        let secret = response.secret.unwrap();
        assert_eq!(secret.ttl, Duration::from_secs(60));
        assert_eq!(secret.secret_type, SECRET_TYPE);

        let mut config = request(Operation::Update, "config", &storage);
        config.data.insert("fail_revoke".into(), true.into());
        backend.handle(config).await.unwrap();
        let failed = backend
            .revoke_secret(
                request(Operation::Revoke, "creds/app", &storage),
                secret.clone(),
            )
            .await;
        assert!(matches!(failed, Err(Error::Upstream(_))));

        let mut config = request(Operation::Update, "config", &storage);
        config.data.insert("fail_revoke".into(), false.into());
        backend.handle(config).await.unwrap();
        backend
            .revoke_secret(request(Operation::Revoke, "creds/app", &storage), secret)
            .await
            .unwrap();
        let ledger = backend
            .handle(request(Operation::Read, "ledger", &storage))
            .await
            .unwrap()
            .unwrap();
        let revocations = &ledger.data.unwrap()["revocations"];
        assert_eq!(revocations.as_object().unwrap().len(), 1);
    }
}
