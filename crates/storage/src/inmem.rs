//! The in-memory backend: a sorted map under a lock, for dev mode and tests.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;

use crate::children::{Children, Step};
use crate::{Backend, Entry, Result, TxOp};

/// Volatile storage: everything is lost when the value is dropped.
#[derive(Debug, Default)]
pub struct InmemBackend {
    map: RwLock<BTreeMap<String, Vec<u8>>>,
}

impl InmemBackend {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.map.read().expect("inmem storage lock poisoned")
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.map.write().expect("inmem storage lock poisoned")
    }
}

#[async_trait]
impl Backend for InmemBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.read().get(key).cloned())
    }

    async fn put(&self, entry: Entry) -> Result<()> {
        self.write().insert(entry.key, entry.value);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.write().remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.list_page(prefix, "", 0).await
    }

    async fn list_page(&self, prefix: &str, after: &str, limit: usize) -> Result<Vec<String>> {
        let map = self.read();
        let mut children = Children::new(prefix, after, limit);
        let mut from = children.start();
        'scan: loop {
            let lower = from.as_ref().map(String::as_str);
            for key in map
                .range::<str, _>((lower, Bound::Unbounded))
                .map(|(k, _)| k)
            {
                match children.feed(key) {
                    Step::Next => {}
                    Step::Seek(next) => {
                        from = Bound::Included(next);
                        continue 'scan;
                    }
                    Step::Done => break 'scan,
                }
            }
            break;
        }
        Ok(children.finish())
    }

    async fn transaction(&self, ops: Vec<TxOp>) -> Result<()> {
        // One guard for the whole batch: no reader can observe a partial transaction.
        let mut map = self.write();
        for op in ops {
            match op {
                TxOp::Put(entry) => {
                    map.insert(entry.key, entry.value);
                }
                TxOp::Delete(key) => {
                    map.remove(&key);
                }
            }
        }
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "inmem"
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::testing::{exercise_backend, exercise_concurrent_writers};

    #[tokio::test]
    async fn conformance() {
        exercise_backend(&InmemBackend::new()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers() {
        exercise_concurrent_writers(Arc::new(InmemBackend::new())).await;
    }

    #[tokio::test]
    async fn kind_is_inmem() {
        assert_eq!(InmemBackend::new().kind(), "inmem");
    }
}
