//! Per-key async locks: serialise work on one lease or one token without a global lock, so
//! a slow operation on one key never delays any other.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// A set of locks created on demand and dropped once nobody holds or waits for them, so the
/// map only ever holds the keys currently in use.
#[derive(Default)]
pub struct KeyedLocks {
    map: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

/// Holds the lock of one key until dropped.
pub struct KeyGuard {
    locks: Arc<KeyedLocks>,
    key: String,
    mutex: Arc<AsyncMutex<()>>,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    pub fn new() -> Arc<Self> {
        Arc::new(KeyedLocks::default())
    }

    fn entry(&self, key: &str) -> Arc<AsyncMutex<()>> {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.to_owned())
            .or_default()
            .clone()
    }

    /// Waits for the lock of `key`.
    pub async fn lock(self: &Arc<Self>, key: &str) -> KeyGuard {
        let mutex = self.entry(key);
        let guard = mutex.clone().lock_owned().await;
        KeyGuard {
            locks: self.clone(),
            key: key.to_owned(),
            mutex,
            guard: Some(guard),
        }
    }

    /// The lock of `key` if nobody holds it now.
    pub fn try_lock(self: &Arc<Self>, key: &str) -> Option<KeyGuard> {
        let mutex = self.entry(key);
        match mutex.clone().try_lock_owned() {
            Ok(guard) => Some(KeyGuard {
                locks: self.clone(),
                key: key.to_owned(),
                mutex,
                guard: Some(guard),
            }),
            Err(_) => {
                self.release(key, &mutex);
                None
            }
        }
    }

    /// Forgets `key`'s mutex when `mutex` is the last reference besides the map's.
    fn release(&self, key: &str, mutex: &Arc<AsyncMutex<()>>) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        // Two references: the map's and ours. Anyone else holding or waiting has a third.
        if Arc::strong_count(mutex) == 2 {
            map.remove(key);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        self.guard.take();
        self.locks.release(&self.key, &self.mutex);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_per_key_and_no_leftovers() {
        let locks = KeyedLocks::new();
        let a = locks.lock("a").await;
        assert!(locks.try_lock("a").is_none());
        let b = locks.try_lock("b").expect("another key is free");
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move {
                let _held = locks.lock("a").await;
            })
        };
        tokio::task::yield_now().await;
        drop(a);
        waiter.await.unwrap();
        drop(b);
        assert_eq!(locks.len(), 0);
    }
}
