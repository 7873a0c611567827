//! Logical storage as an engine sees it: a private, already-encrypted key space.

use async_trait::async_trait;
use serde::{Serialize, de::DeserializeOwned};

use crate::error::{Error, Result};

/// The storage view handed to a mounted engine. Keys are relative to the engine's own
/// space; the core prefixes them and the barrier encrypts them, so an engine can neither see
/// another mount's data nor store anything in plaintext.
#[async_trait]
pub trait Storage: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    async fn put(&self, key: &str, value: &[u8]) -> Result<()>;
    async fn delete(&self, key: &str) -> Result<()>;
    /// Immediate children of `prefix`, folders ending with `/`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;

    /// Writes several entries, in order. The core's storage writes them in one transaction,
    /// so either all are written or none, at the cost of a single durable commit; the default
    /// writes them one by one.
    async fn put_all(&self, entries: Vec<(String, Vec<u8>)>) -> Result<()> {
        for (key, value) in entries {
            self.put(&key, &value).await?;
        }
        Ok(())
    }
}

/// JSON helpers over any [`Storage`].
#[async_trait]
pub trait StorageExt: Storage {
    async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.get(key).await? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|err| Error::internal(format!("corrupt entry at {key:?}: {err}"))),
        }
    }

    async fn put_json<T: Serialize + Sync>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value)
            .map_err(|err| Error::internal(format!("cannot encode entry {key:?}: {err}")))?;
        self.put(key, &bytes).await
    }
}

impl<S: Storage + ?Sized> StorageExt for S {}
