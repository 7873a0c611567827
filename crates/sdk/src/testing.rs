//! Helpers for engine unit tests: an in-memory logical storage and a request builder.

use std::{collections::BTreeMap, sync::Arc, sync::Mutex};

use async_trait::async_trait;
use serde_json::Value;

use crate::{
    error::Result,
    logical::{Operation, Request},
    storage::Storage,
};

/// A logical [`Storage`] in memory, with Vault's list semantics.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    entries: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemoryStorage {
    pub fn new() -> Arc<Self> {
        Arc::new(MemoryStorage::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every key currently stored, for assertions.
    pub fn keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().get(key).cloned())
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.lock().insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.lock().remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let entries = self.lock();
        let mut children: Vec<String> = Vec::new();
        for key in entries.keys().filter(|key| key.starts_with(prefix)) {
            let rest = &key[prefix.len()..];
            let child = match rest.find('/') {
                Some(slash) => &rest[..=slash],
                None => rest,
            };
            if children.last().map(String::as_str) != Some(child) {
                children.push(child.to_owned());
            }
        }
        Ok(children)
    }
}

/// A request as the router would hand it to a mount at `mount_point`, with `storage`.
pub fn request(
    operation: Operation,
    mount_point: &str,
    relative_path: &str,
    data: Value,
    storage: Arc<dyn Storage>,
) -> Request {
    let mut req = Request::new(operation, format!("{mount_point}{relative_path}"));
    req.mount_point = mount_point.to_owned();
    req.storage = Some(storage);
    if let Value::Object(map) = data {
        req.data = map;
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_storage_lists_children() {
        let storage = MemoryStorage::new();
        for key in ["a", "b/c", "b/d", "c/e/f"] {
            storage.put(key, b"x").await.unwrap();
        }
        assert_eq!(storage.list("").await.unwrap(), ["a", "b/", "c/"]);
        assert_eq!(storage.list("b/").await.unwrap(), ["c", "d"]);
        storage.delete("a").await.unwrap();
        assert_eq!(storage.get("a").await.unwrap(), None);
    }
}
