//! Prefix-scoped logical storage over the barrier: what each mount and core subsystem writes to.

use std::sync::Arc;

use async_trait::async_trait;
use mayfly_barrier::{Barrier, BarrierOp};
use mayfly_sdk::{Error, Result, Storage};
use serde::Serialize;

/// A view of the barrier under one prefix (e.g. `logical/<mount uuid>/`). Keys given to it
/// are relative; it cannot reach anything outside its prefix.
pub struct BarrierView {
    barrier: Arc<Barrier>,
    prefix: String,
}

impl BarrierView {
    pub fn new(barrier: Arc<Barrier>, prefix: impl Into<String>) -> Self {
        BarrierView {
            barrier,
            prefix: prefix.into(),
        }
    }

    /// A narrower view below this one.
    pub fn sub_view(&self, prefix: &str) -> BarrierView {
        BarrierView {
            barrier: self.barrier.clone(),
            prefix: format!("{}{prefix}", self.prefix),
        }
    }

    /// Children of `prefix` after `after`, at most `limit` (0 = all), in key order.
    pub async fn list_page(&self, prefix: &str, after: &str, limit: usize) -> Result<Vec<String>> {
        self.barrier
            .list_page(&self.full_key(prefix)?, after, limit)
            .await
            .map_err(barrier_error)
    }

    /// Writes and deletes several keys atomically.
    pub async fn transaction(&self, ops: Vec<mayfly_barrier::BarrierOp>) -> Result<()> {
        let mut full = Vec::with_capacity(ops.len());
        for op in ops {
            full.push(match op {
                mayfly_barrier::BarrierOp::Put { key, value } => mayfly_barrier::BarrierOp::Put {
                    key: self.full_key(&key)?,
                    value,
                },
                mayfly_barrier::BarrierOp::Delete(key) => {
                    mayfly_barrier::BarrierOp::Delete(self.full_key(&key)?)
                }
            });
        }
        self.barrier.transaction(full).await.map_err(barrier_error)
    }

    pub fn barrier(&self) -> &Arc<Barrier> {
        &self.barrier
    }

    fn full_key(&self, key: &str) -> Result<String> {
        // A relative key that climbs out of the view would break isolation between mounts.
        if key.split('/').any(|segment| segment == "..") {
            return Err(Error::invalid("path cannot contain parent references"));
        }
        // Every storage call builds one of these: concatenation, not `format!`, whose machinery
        // cost several times the copy.
        let mut full = String::with_capacity(self.prefix.len() + key.len());
        full.push_str(&self.prefix);
        full.push_str(key);
        Ok(full)
    }
}

/// Writes staged across several views and committed atomically in one barrier transaction, so
/// that an object and its indexes (a token, its lease, the lease's time index, a counter) are
/// never seen half-written, even after a crash.
#[derive(Default)]
pub struct Txn {
    ops: Vec<BarrierOp>,
    durability: mayfly_barrier::Durability,
}

impl Txn {
    pub fn new() -> Self {
        Txn::default()
    }

    pub fn put(&mut self, view: &BarrierView, key: &str, value: Vec<u8>) -> Result<()> {
        self.ops.push(BarrierOp::Put {
            key: view.full_key(key)?,
            value,
        });
        Ok(())
    }

    pub fn put_json<T: Serialize + ?Sized>(
        &mut self,
        view: &BarrierView,
        key: &str,
        value: &T,
    ) -> Result<()> {
        let bytes = serde_json::to_vec(value)
            .map_err(|err| Error::internal(format!("cannot encode entry {key:?}: {err}")))?;
        self.put(view, key, bytes)
    }

    pub fn delete(&mut self, view: &BarrierView, key: &str) -> Result<()> {
        self.ops.push(BarrierOp::Delete(view.full_key(key)?));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Lets the commit be acknowledged before it is durable (see
    /// [`Durability::Deferred`](mayfly_barrier::Durability::Deferred)).
    pub fn defer_durability(&mut self) {
        self.durability = mayfly_barrier::Durability::Deferred;
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Applies every staged write or none.
    pub async fn commit(self, barrier: &Barrier) -> Result<()> {
        if self.ops.is_empty() {
            return Ok(());
        }
        barrier
            .transaction_with(self.ops, self.durability)
            .await
            .map_err(barrier_error)
    }
}

pub(crate) fn barrier_error(err: mayfly_barrier::Error) -> Error {
    match err {
        mayfly_barrier::Error::Sealed => Error::Sealed,
        other => Error::internal(other),
    }
}

#[async_trait]
impl Storage for BarrierView {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.barrier
            .get(&self.full_key(key)?)
            .await
            .map_err(barrier_error)
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.barrier
            .put(&self.full_key(key)?, value)
            .await
            .map_err(barrier_error)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.barrier
            .delete(&self.full_key(key)?)
            .await
            .map_err(barrier_error)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.barrier
            .list(&self.full_key(prefix)?)
            .await
            .map_err(barrier_error)
    }

    async fn put_all(&self, entries: Vec<(String, Vec<u8>)>) -> Result<()> {
        self.transaction(
            entries
                .into_iter()
                .map(|(key, value)| mayfly_barrier::BarrierOp::Put { key, value })
                .collect(),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use mayfly_barrier::{Barrier, ShamirSeal};
    use mayfly_sdk::Storage;

    use super::*;

    #[tokio::test]
    async fn put_all_writes_every_entry_under_the_prefix() {
        let physical: Arc<dyn mayfly_storage::Backend> =
            Arc::new(mayfly_storage::InmemBackend::new());
        let barrier = Arc::new(Barrier::new(physical.clone()));
        let seal = ShamirSeal::new(physical, barrier.clone());
        let init = seal.initialize(1, 1).await.unwrap();
        seal.submit_unseal_key(&init.keys[0]).await.unwrap();
        let view = BarrierView::new(barrier.clone(), "logical/x/");
        view.put_all(vec![
            ("a".to_owned(), b"1".to_vec()),
            ("b/c".to_owned(), b"2".to_vec()),
        ])
        .await
        .unwrap();
        assert_eq!(view.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(view.get("b/c").await.unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(
            barrier.get("logical/x/b/c").await.unwrap().as_deref(),
            Some(&b"2"[..])
        );
        // A key climbing out of the view fails the whole write.
        let escaping = view
            .put_all(vec![
                ("d".to_owned(), b"3".to_vec()),
                ("../y".to_owned(), b"4".to_vec()),
            ])
            .await;
        assert!(escaping.is_err());
        assert_eq!(view.get("d").await.unwrap(), None);
    }
}
