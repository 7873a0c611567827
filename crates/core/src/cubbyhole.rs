//! The cubbyhole engine: private storage per token, invisible to every other token.

use std::sync::Arc;

use mayfly_sdk::{
    Error, LogicalBackend, Operation, Request, Response, Result, StorageExt,
    framework::{FieldData, FrameworkBackend, Mounted, Path, handler},
};
use serde_json::{Map, Value};

use crate::registry::BackendContext;

pub struct Cubbyhole;

/// Builds a cubbyhole mount.
pub fn factory(_: BackendContext) -> Result<Arc<dyn LogicalBackend>> {
    Ok(Arc::new(Mounted {
        state: Arc::new(Cubbyhole),
        framework: Arc::new(backend()),
    }))
}

fn backend() -> FrameworkBackend<Cubbyhole> {
    FrameworkBackend::new(
        "The cubbyhole engine stores secrets that only the token which wrote them can read.",
        vec![
            Path::new(r"(?P<path>.*)")
                .arbitrary_input()
                .operation(Operation::Read, handler(read))
                .operation(Operation::Update, handler(write))
                .operation(Operation::Delete, handler(delete))
                .operation(Operation::List, handler(list))
                .help(
                    "Pass-through secret storage to a token-specific cubbyhole.",
                    "Data written here is readable only with the token that wrote it, and is \
                 destroyed with that token.",
                ),
        ],
    )
}

/// The storage key of `path` for the calling token: each token gets its own subtree.
fn token_key(req: &Request, path: &str) -> Result<String> {
    let owner = req
        .client_token_hash
        .as_deref()
        .ok_or(Error::PermissionDenied)?;
    Ok(format!("{owner}/{path}"))
}

fn secret_path(req: &Request, fields: &FieldData) -> Result<String> {
    let path = fields.string("path").unwrap_or_default();
    if path.is_empty() && req.operation != Operation::List {
        return Err(Error::invalid("missing path"));
    }
    Ok(path)
}

async fn read(_: Arc<Cubbyhole>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let key = token_key(&req, &secret_path(&req, &fields)?)?;
    let data: Option<Map<String, Value>> = req.storage()?.get_json(&key).await?;
    Ok(data.map(Response::with_data))
}

async fn write(_: Arc<Cubbyhole>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let path = secret_path(&req, &fields)?;
    if req.data.is_empty() {
        return Err(Error::invalid("missing data fields"));
    }
    let key = token_key(&req, &path)?;
    req.storage()?.put_json(&key, &req.data).await?;
    Ok(None)
}

async fn delete(_: Arc<Cubbyhole>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let key = token_key(&req, &secret_path(&req, &fields)?)?;
    req.storage()?.delete(&key).await?;
    Ok(None)
}

async fn list(_: Arc<Cubbyhole>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let mut prefix = secret_path(&req, &fields)?;
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    let keys = req.storage()?.list(&token_key(&req, &prefix)?).await?;
    Ok(Some(Response::list(keys)))
}
