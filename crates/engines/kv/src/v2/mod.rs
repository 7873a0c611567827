//! KV version 2: versioned secrets with check-and-set, soft deletion, destruction and expiry.
//!
//! The route table mirrors Vault's: `config`, `data/`, `metadata/`, `delete/`, `undelete/`,
//! `destroy/`, `subkeys/`, and a catch-all that answers 404 with a hint for v1-style paths.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    sync::Arc,
};

use mayfly_sdk::{
    LogicalBackend, Operation, RawResponse, Request, Response, Result,
    framework::{
        Field, FieldData, FieldKind, FrameworkBackend, Mounted, Path, existence, handler,
        match_all_after,
    },
};
use serde_json::{Map, Value};
use tokio::sync::{Mutex, RwLock};

use crate::timefmt::now_nanos;

mod config;
mod data;
mod metadata;
pub(crate) mod model;
mod versions;

/// How many lock stripes serialize writes to the same key; keys hash onto them.
const LOCK_STRIPES: usize = 64;

/// The clock the engine reads; tests substitute one they can move.
pub(crate) type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// A v2 mount's in-memory state: locks and a clock. Everything else is in storage.
pub(crate) struct KvV2 {
    /// Reads of a key take its stripe shared and writes take it exclusively, so a read never
    /// sees metadata that points at version data a concurrent destroy just removed, and two
    /// writes never hand out the same version number.
    stripes: Vec<RwLock<()>>,
    /// Serializes read-modify-write of the mount configuration.
    config_lock: Mutex<()>,
    clock: Clock,
}

impl KvV2 {
    pub(crate) fn new(clock: Clock) -> Self {
        KvV2 {
            stripes: (0..LOCK_STRIPES).map(|_| RwLock::new(())).collect(),
            config_lock: Mutex::new(()),
            clock,
        }
    }

    fn stripe(&self, key: &str) -> &RwLock<()> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        // The remainder is below LOCK_STRIPES, so it always fits in usize.
        let index = usize::try_from(hasher.finish() % LOCK_STRIPES as u64).unwrap_or(0);
        &self.stripes[index]
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }
}

pub(crate) fn mounted() -> Arc<dyn LogicalBackend> {
    mounted_with_clock(Arc::new(now_nanos))
}

pub(crate) fn mounted_with_clock(clock: Clock) -> Arc<dyn LogicalBackend> {
    Arc::new(Mounted {
        state: Arc::new(KvV2::new(clock)),
        framework: Arc::new(backend()),
    })
}

const BACKEND_HELP: &str = "This backend provides a versioned key-value store. The kv backend \
reads and writes arbitrary secrets to the storage backend. The secrets are encrypted before they \
are stored. Each key can have a configured number of versions, and versions can be retrieved \
based on their version numbers.";

fn path_field() -> Field {
    Field::new("path", FieldKind::String, "Location of the secret.")
}

pub(crate) fn backend() -> FrameworkBackend<KvV2> {
    FrameworkBackend::new(
        BACKEND_HELP,
        vec![
            config::path(),
            data::path(),
            metadata::path(),
            versions::delete_path(),
            versions::undelete_path(),
            versions::destroy_path(),
            data::subkeys_path(),
            // Last, so that every real route matches first.
            invalid_path(),
        ],
    )
}

/// The secret's key from the `path` capture.
fn key(fields: &FieldData) -> String {
    fields.string("path").unwrap_or_default()
}

/// Whether the key has metadata: ACL tells `create` from `update` by it, as Vault does.
async fn key_exists(_: Arc<KvV2>, req: Request, fields: FieldData) -> Result<bool> {
    Ok(
        model::KeyMetadata::load(req.storage()?.as_ref(), &key(&fields))
            .await?
            .is_some(),
    )
}

fn key_existence() -> mayfly_sdk::framework::ExistenceCheck<KvV2> {
    existence(key_exists)
}

/// A 404 that still carries data (a deleted or destroyed version's metadata), which clients
/// read as "exists but unavailable" rather than "never existed".
fn not_found_with(data: Map<String, Value>) -> Response {
    Response {
        data: Some(data),
        status: Some(404),
        ..Response::default()
    }
}

/// A 404 with an empty body, as Vault answers a patch of something that does not exist.
fn not_found_empty() -> Response {
    Response::raw(RawResponse {
        status: 404,
        content_type: "application/json".to_owned(),
        body: Vec::new(),
    })
}

fn invalid_path() -> Path<KvV2> {
    let mut path = Path::new(match_all_after("rest"));
    for operation in [
        Operation::Read,
        Operation::Update,
        Operation::Patch,
        Operation::Delete,
        Operation::List,
    ] {
        path = path.operation(operation, handler(invalid));
    }
    path.arbitrary_input().help(
        "Invalid path for a versioned K/V secrets engine.",
        "Use the data/, metadata/, delete/, undelete/, destroy/, subkeys/ and config paths.",
    )
}

/// Paths outside the v2 API: most likely a v1-style request. Vault answers 404 with a warning
/// naming the `kv` subcommand to use, which the CLI prints.
async fn invalid(_: Arc<KvV2>, req: Request, _: FieldData) -> Result<Option<Response>> {
    let warning = match req.relative_path() {
        "metadata" | "data" | "delete" | "undelete" | "destroy" => {
            "Non-listing operations on the root of a K/V v2 mount are not supported.".to_owned()
        }
        _ => {
            let subcommand = match req.operation {
                Operation::Create | Operation::Update => "put",
                Operation::Patch => "patch",
                Operation::List => "list",
                Operation::Delete => "delete",
                _ => "get",
            };
            format!(
                "Invalid path for a versioned K/V secrets engine. See the API docs for the \
                 appropriate API endpoints to use. If using the Vault CLI, use 'vault kv \
                 {subcommand}' for this operation."
            )
        }
    };
    Ok(Some(Response {
        warnings: vec![warning],
        status: Some(404),
        ..Response::default()
    }))
}
