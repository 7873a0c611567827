//! The encrypting view of storage: logical get/put/list over ciphertext in the physical backend,
//! plus keyring rotation. Holds the keyring and root key in memory while unsealed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use mayfly_storage::{Backend, Durability, Entry, TxOp};
use time::OffsetDateTime;

use crate::keyring::{KeyBytes, Keyring, keys_equal};
use crate::{Error, KEYRING_PATH, Result, SEAL_CONFIG_PATH, unpoison};

/// Physical keys owned by the seal; logical callers may not touch them.
const RESERVED: [&str; 2] = [SEAL_CONFIG_PATH, KEYRING_PATH];

/// One write inside [`Barrier::transaction`].
#[derive(Clone, PartialEq, Eq)]
pub enum BarrierOp {
    Put { key: String, value: Vec<u8> },
    Delete(String),
}

impl std::fmt::Debug for BarrierOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values are plaintext secrets: print only their size.
        match self {
            Self::Put { key, value } => f
                .debug_struct("Put")
                .field("key", key)
                .field("value_len", &value.len())
                .finish(),
            Self::Delete(key) => f.debug_tuple("Delete").field(key).finish(),
        }
    }
}

/// The active keyring term, as reported by `sys/key-status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    pub term: u32,
    pub install_time: OffsetDateTime,
    pub encryptions: u64,
}

struct Unsealed {
    root_key: KeyBytes,
    keyring: Keyring,
}

/// AES-256-GCM keyring barrier over a physical backend.
///
/// The in-memory keys sit behind a std lock that is never held across an await, so sealing is
/// synchronous and immediate; multi-step changes of the stored keyring (init, unseal, rotate,
/// rekey) are serialized by an async mutex instead.
pub struct Barrier {
    backend: Arc<dyn Backend>,
    state: RwLock<Option<Unsealed>>,
    encryptions: AtomicU64,
    keyring_write: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barrier")
            .field("backend", &self.backend.kind())
            .field("sealed", &self.is_sealed())
            .finish()
    }
}

fn check_logical_key(key: &str) -> Result<()> {
    if RESERVED.contains(&key) {
        return Err(Error::Internal(format!(
            "{key:?} is reserved for the seal and not writable through the barrier"
        )));
    }
    Ok(())
}

impl Barrier {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self {
            backend,
            state: RwLock::new(None),
            encryptions: AtomicU64::new(0),
            keyring_write: tokio::sync::Mutex::new(()),
        }
    }

    pub fn is_sealed(&self) -> bool {
        self.read().is_none()
    }

    fn read(&self) -> RwLockReadGuard<'_, Option<Unsealed>> {
        unpoison(self.state.read())
    }

    fn ensure_unsealed(&self) -> Result<()> {
        if self.is_sealed() {
            return Err(Error::Sealed);
        }
        Ok(())
    }

    fn encrypt(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        let state = self.read();
        let unsealed = state.as_ref().ok_or(Error::Sealed)?;
        let ciphertext = unsealed.keyring.encrypt(key, value)?;
        self.encryptions.fetch_add(1, Ordering::Relaxed);
        Ok(ciphertext)
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check_logical_key(key)?;
        self.ensure_unsealed()?;
        let Some(ciphertext) = self.backend.get(key).await? else {
            return Ok(None);
        };
        let state = self.read();
        let unsealed = state.as_ref().ok_or(Error::Sealed)?;
        unsealed.keyring.decrypt(key, &ciphertext).map(Some)
    }

    pub async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        check_logical_key(key)?;
        let value = self.encrypt(key, value)?;
        self.backend
            .put(Entry {
                key: key.to_owned(),
                value,
            })
            .await?;
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        check_logical_key(key)?;
        self.ensure_unsealed()?;
        self.backend.delete(key).await?;
        Ok(())
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.ensure_unsealed()?;
        let mut children = self.backend.list(prefix).await?;
        children.retain(|child| !is_reserved_child(prefix, child));
        Ok(children)
    }

    pub async fn list_page(&self, prefix: &str, after: &str, limit: usize) -> Result<Vec<String>> {
        self.ensure_unsealed()?;
        // Over-fetch by the number of hidden keys so filtering cannot shorten a full page.
        let fetch = if limit == 0 {
            0
        } else {
            limit.saturating_add(RESERVED.len())
        };
        let mut children = self.backend.list_page(prefix, after, fetch).await?;
        children.retain(|child| !is_reserved_child(prefix, child));
        if limit != 0 {
            children.truncate(limit);
        }
        Ok(children)
    }

    /// Encrypts every put and applies all ops in one physical transaction.
    pub async fn transaction(&self, ops: Vec<BarrierOp>) -> Result<()> {
        self.transaction_with(ops, Durability::Immediate).await
    }

    /// [`transaction`](Self::transaction) with a choice of [`Durability`].
    pub async fn transaction_with(
        &self,
        ops: Vec<BarrierOp>,
        durability: Durability,
    ) -> Result<()> {
        self.ensure_unsealed()?;
        let mut physical = Vec::with_capacity(ops.len());
        for op in ops {
            physical.push(match op {
                BarrierOp::Put { key, value } => {
                    check_logical_key(&key)?;
                    let value = self.encrypt(&key, &value)?;
                    TxOp::Put(Entry { key, value })
                }
                BarrierOp::Delete(key) => {
                    check_logical_key(&key)?;
                    TxOp::Delete(key)
                }
            });
        }
        self.backend.transaction_with(physical, durability).await?;
        Ok(())
    }

    /// Adds a new key term and makes it the active one. Older terms stay in the keyring so
    /// existing values remain readable.
    pub async fn rotate(&self) -> Result<KeyStatus> {
        let _write = self.keyring_write.lock().await;
        let (rotated, blob) = {
            let state = self.read();
            let unsealed = state.as_ref().ok_or(Error::Sealed)?;
            let mut rotated = unsealed.keyring.clone();
            rotated.rotate()?;
            let blob = rotated.seal_with(&unsealed.root_key)?;
            (rotated, blob)
        };
        // Persist before switching: a value must never be written under a term that a restart
        // would not know.
        self.backend
            .put(Entry {
                key: KEYRING_PATH.to_owned(),
                value: blob,
            })
            .await?;
        let mut state = unpoison(self.state.write());
        // Sealed meanwhile: the new keyring is stored and the next unseal will load it.
        let unsealed = state.as_mut().ok_or(Error::Sealed)?;
        unsealed.keyring = rotated;
        self.encryptions.store(0, Ordering::Relaxed);
        let term = unsealed.keyring.active_term();
        drop(state);
        tracing::info!(term, "barrier keyring rotated");
        self.key_status()
    }

    pub fn key_status(&self) -> Result<KeyStatus> {
        let state = self.read();
        let keyring = &state.as_ref().ok_or(Error::Sealed)?.keyring;
        Ok(KeyStatus {
            term: keyring.active_term(),
            install_time: keyring.active()?.install_time,
            encryptions: self.encryptions.load(Ordering::Relaxed),
        })
    }

    // ----- seal-side operations -------------------------------------------------------------

    /// Serializes changes to the stored keyring and root key.
    pub(crate) async fn lock_keyring(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.keyring_write.lock().await
    }

    pub(crate) fn unseal_with(&self, root_key: KeyBytes, keyring: Keyring) {
        *unpoison(self.state.write()) = Some(Unsealed { root_key, keyring });
        self.encryptions.store(0, Ordering::Relaxed);
    }

    /// Drops (and thereby wipes) the in-memory keys.
    pub(crate) fn seal(&self) {
        *unpoison(self.state.write()) = None;
    }

    pub(crate) fn root_key_matches(&self, candidate: &KeyBytes) -> Result<bool> {
        let state = self.read();
        let unsealed = state.as_ref().ok_or(Error::Sealed)?;
        Ok(keys_equal(candidate.as_ref(), unsealed.root_key.as_ref()))
    }

    /// The current keyring encrypted under `root_key`, for storing alongside a new root key.
    pub(crate) fn keyring_blob_for(&self, root_key: &KeyBytes) -> Result<Vec<u8>> {
        let state = self.read();
        state
            .as_ref()
            .ok_or(Error::Sealed)?
            .keyring
            .seal_with(root_key)
    }

    pub(crate) fn replace_root_key(&self, root_key: KeyBytes) {
        if let Some(unsealed) = unpoison(self.state.write()).as_mut() {
            unsealed.root_key = root_key;
        }
    }
}

fn is_reserved_child(prefix: &str, child: &str) -> bool {
    RESERVED
        .iter()
        .any(|r| r.strip_prefix(prefix) == Some(child))
}

#[cfg(test)]
mod tests {
    use mayfly_storage::InmemBackend;

    use super::*;
    use crate::ShamirSeal;

    async fn unsealed() -> (Arc<InmemBackend>, Arc<Barrier>) {
        let backend = Arc::new(InmemBackend::new());
        let barrier = Arc::new(Barrier::new(backend.clone()));
        let seal = ShamirSeal::new(backend.clone(), barrier.clone());
        let init = seal.initialize(1, 1).await.unwrap();
        seal.submit_unseal_key(&init.keys[0]).await.unwrap();
        assert!(!barrier.is_sealed());
        (backend, barrier)
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[tokio::test]
    async fn round_trip_and_plaintext_never_stored() {
        let (backend, barrier) = unsealed().await;
        let secret = b"super-secret-plaintext-value";
        barrier.put("secret/a", secret).await.unwrap();
        assert_eq!(barrier.get("secret/a").await.unwrap().unwrap(), secret);
        assert_eq!(barrier.get("secret/missing").await.unwrap(), None);

        let physical = backend.get("secret/a").await.unwrap().unwrap();
        assert!(!contains(&physical, secret));
        assert_eq!(physical[0], 1);

        barrier.delete("secret/a").await.unwrap();
        assert_eq!(barrier.get("secret/a").await.unwrap(), None);
    }

    #[tokio::test]
    async fn list_and_transaction() {
        // Long enough that random ciphertext cannot contain it by chance.
        const SECOND: &[u8] = b"value written in a transaction";
        let (backend, barrier) = unsealed().await;
        barrier.put("core/mounts", b"m").await.unwrap();
        barrier
            .transaction(vec![
                BarrierOp::Put {
                    key: "kv/a".into(),
                    value: b"1".to_vec(),
                },
                BarrierOp::Put {
                    key: "kv/b/c".into(),
                    value: SECOND.to_vec(),
                },
                BarrierOp::Put {
                    key: "kv/d".into(),
                    value: b"3".to_vec(),
                },
            ])
            .await
            .unwrap();
        barrier
            .transaction(vec![BarrierOp::Delete("kv/d".into())])
            .await
            .unwrap();
        assert_eq!(barrier.list("kv/").await.unwrap(), vec!["a", "b/"]);
        assert_eq!(barrier.list_page("kv/", "a", 1).await.unwrap(), vec!["b/"]);
        assert_eq!(barrier.get("kv/b/c").await.unwrap().unwrap(), SECOND);
        assert!(!contains(
            &backend.get("kv/b/c").await.unwrap().unwrap(),
            SECOND
        ));

        // Seal internals are hidden from and protected against logical access.
        assert_eq!(barrier.list("core/").await.unwrap(), vec!["mounts"]);
        assert_eq!(
            barrier.list_page("core/", "", 1).await.unwrap(),
            vec!["mounts"]
        );
        for key in RESERVED {
            assert!(matches!(
                barrier.put(key, b"x").await,
                Err(Error::Internal(_))
            ));
            assert!(matches!(barrier.delete(key).await, Err(Error::Internal(_))));
            assert!(matches!(barrier.get(key).await, Err(Error::Internal(_))));
            let op = BarrierOp::Delete(key.to_owned());
            assert!(matches!(
                barrier.transaction(vec![op]).await,
                Err(Error::Internal(_))
            ));
        }
    }

    #[tokio::test]
    async fn rotate_adds_term_and_keeps_old_readable() {
        let (backend, barrier) = unsealed().await;
        let before = barrier.key_status().unwrap();
        assert_eq!(before.term, 1);
        barrier.put("a", b"old").await.unwrap();
        barrier.put("b", b"old2").await.unwrap();
        assert_eq!(barrier.key_status().unwrap().encryptions, 2);

        let status = barrier.rotate().await.unwrap();
        assert_eq!(status.term, 2);
        assert_eq!(status.encryptions, 0);
        assert!(status.install_time >= before.install_time);
        barrier.put("c", b"new").await.unwrap();
        assert_eq!(barrier.key_status().unwrap().encryptions, 1);

        let old = backend.get("a").await.unwrap().unwrap();
        let new = backend.get("c").await.unwrap().unwrap();
        assert_eq!(&old[1..5], &1u32.to_be_bytes());
        assert_eq!(&new[1..5], &2u32.to_be_bytes());
        assert_eq!(barrier.get("a").await.unwrap().unwrap(), b"old");
        assert_eq!(barrier.get("c").await.unwrap().unwrap(), b"new");
    }

    #[tokio::test]
    async fn rotated_keyring_survives_reseal() {
        let backend = Arc::new(InmemBackend::new());
        let barrier = Arc::new(Barrier::new(backend.clone()));
        let seal = ShamirSeal::new(backend.clone(), barrier.clone());
        let keys = seal.initialize(1, 1).await.unwrap().keys;
        seal.submit_unseal_key(&keys[0]).await.unwrap();
        barrier.put("a", b"1").await.unwrap();
        barrier.rotate().await.unwrap();
        barrier.put("b", b"2").await.unwrap();
        seal.seal();
        seal.submit_unseal_key(&keys[0]).await.unwrap();
        assert_eq!(barrier.key_status().unwrap().term, 2);
        assert_eq!(barrier.get("a").await.unwrap().unwrap(), b"1");
        assert_eq!(barrier.get("b").await.unwrap().unwrap(), b"2");
    }

    #[tokio::test]
    async fn tampered_or_moved_ciphertext_fails() {
        let (backend, barrier) = unsealed().await;
        barrier.put("x/one", b"payload").await.unwrap();
        let physical = backend.get("x/one").await.unwrap().unwrap();

        for i in [5, 17, physical.len() - 1] {
            let mut tampered = physical.clone();
            tampered[i] ^= 0x01;
            backend
                .put(Entry {
                    key: "x/one".into(),
                    value: tampered,
                })
                .await
                .unwrap();
            match barrier.get("x/one").await {
                Err(Error::Decrypt { key }) => assert_eq!(key, "x/one"),
                other => panic!("expected Decrypt, got {other:?}"),
            }
        }

        backend
            .put(Entry {
                key: "x/two".into(),
                value: physical,
            })
            .await
            .unwrap();
        assert!(matches!(
            barrier.get("x/two").await,
            Err(Error::Decrypt { .. })
        ));

        // A term the keyring does not know is a decryption failure too.
        barrier.put("x/three", b"v").await.unwrap();
        let mut unknown = backend.get("x/three").await.unwrap().unwrap();
        unknown[1..5].copy_from_slice(&9u32.to_be_bytes());
        backend
            .put(Entry {
                key: "x/three".into(),
                value: unknown,
            })
            .await
            .unwrap();
        assert!(matches!(
            barrier.get("x/three").await,
            Err(Error::Decrypt { .. })
        ));
    }

    #[tokio::test]
    async fn sealed_refuses_everything() {
        let backend = Arc::new(InmemBackend::new());
        let barrier = Barrier::new(backend);
        assert!(barrier.is_sealed());
        assert!(matches!(barrier.get("a").await, Err(Error::Sealed)));
        assert!(matches!(barrier.put("a", b"v").await, Err(Error::Sealed)));
        assert!(matches!(barrier.delete("a").await, Err(Error::Sealed)));
        assert!(matches!(barrier.list("").await, Err(Error::Sealed)));
        assert!(matches!(
            barrier.list_page("", "", 10).await,
            Err(Error::Sealed)
        ));
        let op = BarrierOp::Delete("a".into());
        assert!(matches!(
            barrier.transaction(vec![op]).await,
            Err(Error::Sealed)
        ));
        assert!(matches!(barrier.rotate().await, Err(Error::Sealed)));
        assert!(matches!(barrier.key_status(), Err(Error::Sealed)));
        assert!(!format!("{barrier:?}").is_empty());
    }
}
