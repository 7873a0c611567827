//! KV version 1: one JSON object per path, overwritten by every write, never versioned.

use std::{sync::Arc, time::Duration};

use mayfly_sdk::{
    Error, LogicalBackend, Operation, Request, Response, Result, SecretLease, StorageExt,
    framework::{FieldData, FrameworkBackend, Mounted, Path, existence, handler},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::convert::duration_seconds;

/// Vault's system default lease TTL (768h), reported when the router has not filled in the
/// mount's own default: a mount's effective default is never zero in Vault.
const SYSTEM_DEFAULT_LEASE_TTL: Duration = Duration::from_secs(768 * 3600);

/// Every v1 entry lives under this prefix, so a later in-place upgrade to v2 (which keeps its
/// records under `v2/`) can never collide with a user's path.
const PREFIX: &str = "v1/";

/// The stateless v1 engine; everything it knows is in the mount's storage.
pub(crate) struct KvV1;

/// One stored secret.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    /// Layout version of this record, so the format can evolve without guessing.
    version: u32,
    data: Map<String, Value>,
}

const ENTRY_VERSION: u32 = 1;

pub(crate) fn mounted() -> Arc<dyn LogicalBackend> {
    Arc::new(Mounted {
        state: Arc::new(KvV1),
        framework: Arc::new(backend()),
    })
}

pub(crate) fn backend() -> FrameworkBackend<KvV1> {
    FrameworkBackend::new(
        "The kv backend reads and writes arbitrary secrets to the backend. The secrets are \
         encrypted before they are stored. TTLs can be set on a per-secret basis; they are \
         returned when the secret is read as a hint to re-read it, and revoke nothing.",
        vec![
            Path::new(r"(?P<path>.*)")
                .arbitrary_input()
                .operation(Operation::Read, handler(read))
                .operation(Operation::Update, handler(write))
                .operation(Operation::Delete, handler(delete))
                .operation(Operation::List, handler(list))
                .existence_check(existence(exists))
                .help(
                    "Pass-through secret storage to the storage backend, allowing you to \
                     read/write arbitrary data into secret storage.",
                    "The pass-through backend reads and writes arbitrary data into secret \
                     storage, encrypting it along the way. A TTL can be specified when writing \
                     with the \"ttl\" field; reads report it as the lease duration, as a hint \
                     to re-read the secret before it expires.",
                ),
        ],
    )
}

fn storage_key(fields: &FieldData) -> String {
    format!("{PREFIX}{}", fields.string("path").unwrap_or_default())
}

async fn exists(_: Arc<KvV1>, req: Request, fields: FieldData) -> Result<bool> {
    Ok(req.storage()?.get(&storage_key(&fields)).await?.is_some())
}

async fn read(_: Arc<KvV1>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let Some(entry) = req
        .storage()?
        .get_json::<Entry>(&storage_key(&fields))
        .await?
    else {
        return Ok(None);
    };
    let ttl = advisory_ttl(&entry.data).unwrap_or_else(|| default_ttl(&req));
    Ok(Some(Response {
        data: Some(entry.data),
        // The lease is advisory: no lease ID, never renewable, and the core must not register it.
        secret: Some(SecretLease {
            ttl,
            ..SecretLease::default()
        }),
        ..Response::default()
    }))
}

/// The refresh interval a writer stored with the secret: `ttl`, or `lease` when there is no
/// `ttl`. An unparsable value means the mount default, as in Vault; a negative one means zero,
/// because clients reject negative lease durations.
fn advisory_ttl(data: &Map<String, Value>) -> Option<Duration> {
    let raw = data.get("ttl").or_else(|| data.get("lease"))?;
    let seconds = duration_seconds(raw).ok()?;
    Some(Duration::from_secs(u64::try_from(seconds).unwrap_or(0)))
}

fn default_ttl(req: &Request) -> Duration {
    match req.mount_ttls.default_lease_ttl {
        Duration::ZERO => SYSTEM_DEFAULT_LEASE_TTL,
        ttl => ttl,
    }
}

async fn write(_: Arc<KvV1>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    crate::writable_key(fields.string("path").unwrap_or_default())?;
    if req.data.is_empty() {
        return Err(Error::invalid("missing data fields"));
    }
    let entry = Entry {
        version: ENTRY_VERSION,
        data: req.data.clone(),
    };
    req.storage()?
        .put_json(&storage_key(&fields), &entry)
        .await?;
    Ok(None)
}

async fn delete(_: Arc<KvV1>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    req.storage()?.delete(&storage_key(&fields)).await?;
    Ok(None)
}

async fn list(_: Arc<KvV1>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let mut prefix = fields.string("path").unwrap_or_default();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    let keys = req.storage()?.list(&format!("{PREFIX}{prefix}")).await?;
    if keys.is_empty() {
        return Ok(None);
    }
    Ok(Some(Response::list(keys)))
}
