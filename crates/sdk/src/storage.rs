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
/// Parses JSON from bytes. Validating the UTF-8 once and parsing the `str` costs less than
/// `serde_json::from_slice`, which validates every string on its own: for a stored lease,
/// a fifth of its decoding.
pub fn from_json_bytes<T: DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        // For serde_json's own error, with its position.
        Err(_) => serde_json::from_slice(bytes),
    }
}

#[async_trait]
pub trait StorageExt: Storage {
    async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.get(key).await? {
            None => Ok(None),
            Some(bytes) => from_json_bytes(&bytes)
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::from_json_bytes;

    #[test]
    fn json_from_bytes_matches_serde_json() {
        let text = json!({"a": "é\u{1F600}", "b": [1, "x\"y"], "c": {"d": null}}).to_string();
        let parsed: Value = from_json_bytes(text.as_bytes()).unwrap();
        assert_eq!(
            parsed,
            serde_json::from_slice::<Value>(text.as_bytes()).unwrap()
        );
        let invalid = [b'"', 0xff, b'"'];
        let err = from_json_bytes::<Value>(&invalid).unwrap_err();
        assert!(err.to_string().contains("invalid unicode"), "{err}");
    }
}
