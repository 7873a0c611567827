//! The token store: issues, looks up and revokes client tokens, and serves `auth/token/`.

use std::{sync::Arc, time::SystemTime};

use aws_lc_rs::digest;
use mayfly_sdk::{
    Error, Operation, Request, Response, Result, StorageExt,
    framework::{FieldData, FrameworkBackend, Path, handler},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{random::random_base62, view::BarrierView};

/// Vault's service-token prefix; clients and tools recognise tokens by it.
pub const SERVICE_TOKEN_PREFIX: &str = "hvs.";
/// Length of a generated root token, which `generate-root` OTPs must match.
pub const ROOT_TOKEN_LENGTH: usize = 28;

/// A persisted token. The token ID itself is never stored: entries are keyed by its hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenEntry {
    pub version: u32,
    pub accessor: String,
    pub policies: Vec<String>,
    pub path: String,
    pub display_name: String,
    pub creation_time: u64,
    pub ttl_seconds: u64,
    pub num_uses: u64,
    pub parent_hash: Option<String>,
    pub meta: Map<String, Value>,
}

impl TokenEntry {
    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|policy| policy == "root")
    }
}

/// Hashes a token ID to the key its entry is stored under.
pub fn hash_token(token: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

pub struct TokenStore {
    view: BarrierView,
}

impl TokenStore {
    pub fn new(view: BarrierView) -> Self {
        TokenStore { view }
    }

    fn id_key(hash: &str) -> String {
        format!("id/{hash}")
    }

    fn accessor_key(accessor: &str) -> String {
        format!("accessor/{accessor}")
    }

    /// Creates a root token, with a chosen ID (dev mode) or a random one.
    pub async fn create_root(
        &self,
        id: Option<String>,
        path: &str,
    ) -> Result<(String, TokenEntry)> {
        let token = match id {
            Some(id) if !id.is_empty() => id,
            _ => format!(
                "{SERVICE_TOKEN_PREFIX}{}",
                random_base62(ROOT_TOKEN_LENGTH - SERVICE_TOKEN_PREFIX.len())
            ),
        };
        let entry = TokenEntry {
            version: 1,
            accessor: random_base62(24),
            policies: vec!["root".to_owned()],
            path: path.to_owned(),
            display_name: "root".to_owned(),
            creation_time: unix_now(),
            ttl_seconds: 0,
            num_uses: 0,
            parent_hash: None,
            meta: Map::new(),
        };
        let hash = hash_token(&token);
        self.view.put_json(&Self::id_key(&hash), &entry).await?;
        self.view
            .put_json(&Self::accessor_key(&entry.accessor), &hash)
            .await?;
        Ok((token, entry))
    }

    pub async fn lookup(&self, token: &str) -> Result<Option<TokenEntry>> {
        self.view.get_json(&Self::id_key(&hash_token(token))).await
    }

    pub async fn revoke(&self, token: &str) -> Result<()> {
        let hash = hash_token(token);
        if let Some(entry) = self
            .view
            .get_json::<TokenEntry>(&Self::id_key(&hash))
            .await?
        {
            mayfly_sdk::Storage::delete(&self.view, &Self::accessor_key(&entry.accessor)).await?;
        }
        mayfly_sdk::Storage::delete(&self.view, &Self::id_key(&hash)).await
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn rfc3339(unix: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// What `lookup-self` reports about a token.
fn lookup_data(token: &str, entry: &TokenEntry) -> Map<String, Value> {
    let data = json!({
        "accessor": entry.accessor,
        "creation_time": entry.creation_time,
        "creation_ttl": entry.ttl_seconds,
        "display_name": entry.display_name,
        "entity_id": "",
        "expire_time": Value::Null,
        "explicit_max_ttl": 0,
        "id": token,
        "issue_time": rfc3339(entry.creation_time),
        "meta": if entry.meta.is_empty() { Value::Null } else { Value::Object(entry.meta.clone()) },
        "num_uses": entry.num_uses,
        "orphan": entry.parent_hash.is_none(),
        "path": entry.path,
        "policies": entry.policies,
        "renewable": false,
        "ttl": entry.ttl_seconds,
        "type": "service",
    });
    match data {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The `auth/token/` backend. It grows with the token issue; today it answers self-lookups.
pub(crate) fn backend() -> FrameworkBackend<crate::Core> {
    FrameworkBackend::new(
        "The token store issues and manages client tokens.",
        vec![
            Path::new("lookup-self")
                .operation(Operation::Read, handler(lookup_self))
                .operation(Operation::Update, handler(lookup_self))
                .help(
                    "Look up the calling token.",
                    "Returns the properties of the token used in the request.",
                ),
            Path::new("revoke-self")
                .operation(Operation::Update, handler(revoke_self))
                .help(
                    "Revoke the calling token.",
                    "Revokes the token used in the request.",
                ),
        ],
    )
}

async fn lookup_self(
    core: Arc<crate::Core>,
    req: Request,
    _: FieldData,
) -> Result<Option<Response>> {
    let token = req.client_token.as_ref().ok_or(Error::PermissionDenied)?;
    let unsealed = core.unsealed()?;
    let entry = unsealed
        .tokens
        .lookup(&token.0)
        .await?
        .ok_or(Error::InvalidToken)?;
    Ok(Some(Response::with_data(lookup_data(&token.0, &entry))))
}

async fn revoke_self(
    core: Arc<crate::Core>,
    req: Request,
    _: FieldData,
) -> Result<Option<Response>> {
    let token = req.client_token.as_ref().ok_or(Error::PermissionDenied)?;
    core.unsealed()?.tokens.revoke(&token.0).await?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_is_stable_and_hides_the_token() {
        let hash = hash_token("hvs.example");
        assert_eq!(hash, hash_token("hvs.example"));
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains("example"));
    }
}
