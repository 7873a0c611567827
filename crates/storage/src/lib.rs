//! Physical storage: a flat, ordered key → bytes map with transactions, and its backends.
//!
//! This crate knows nothing about encryption, mounts, tokens or leases: values are opaque bytes
//! and keys are `/`-separated strings. The barrier encrypts everything before it reaches here.

mod children;
pub mod file;
pub mod inmem;
pub mod testing;
mod wal;

use async_trait::async_trait;

pub use crate::file::{FileBackend, FileOptions};
pub use crate::inmem::InmemBackend;

/// Errors of the physical layer. Messages never contain stored values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("storage i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage backend error: {0}")]
    Backend(String),
    #[error("invalid storage key {0:?}")]
    InvalidKey(String),
    #[error("storage backend is closed")]
    Closed,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One key and its value.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may be secrets (or ciphertext of them): never print them.
        f.debug_struct("Entry")
            .field("key", &self.key)
            .field("value_len", &self.value.len())
            .finish()
    }
}

/// One write inside a [`Backend::transaction`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxOp {
    Put(Entry),
    Delete(String),
}

/// How soon an acknowledged write must survive a crash of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Before it is acknowledged.
    #[default]
    Immediate,
    /// By the next `Immediate` write's sync or the backend's next checkpoint (well under a
    /// second on the file backend), whichever comes first. It is visible at once; a crash
    /// before then loses it together with every later `Deferred` write, never alone, and never
    /// an `Immediate` write acknowledged after it. For records of something already done
    /// elsewhere whose loss only makes the server do it again.
    Deferred,
}

/// A physical storage backend.
///
/// Semantics shared by every implementation (checked by [`testing::exercise_backend`]):
/// * `put` overwrites; `delete` of a missing key succeeds.
/// * `list(prefix)` returns the *immediate children* of `prefix`, sorted: a key
///   `prefix + "a"` yields `"a"`, a key `prefix + "b/c"` yields `"b/"` (once, however many keys
///   lie below `b/`). This is Vault's `physical.Backend.List`.
/// * `list_page(prefix, after, limit)` returns the same children in the same order, starting
///   strictly after `after` (`""` = from the start), at most `limit` of them (0 = no limit).
/// * `transaction(ops)` applies every op or none, atomically and in order.
/// * An acknowledged write (`Ok` returned) is durable for durable backends: it survives a crash
///   of the process (the file backend fsyncs before acknowledging), unless it was written with
///   [`Durability::Deferred`].
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    async fn put(&self, entry: Entry) -> Result<()>;
    async fn delete(&self, key: &str) -> Result<()>;
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;
    async fn list_page(&self, prefix: &str, after: &str, limit: usize) -> Result<Vec<String>>;
    async fn transaction(&self, ops: Vec<TxOp>) -> Result<()>;
    /// [`transaction`](Self::transaction) with a choice of [`Durability`]; a backend that
    /// has only one kind of write ignores it.
    async fn transaction_with(&self, ops: Vec<TxOp>, durability: Durability) -> Result<()> {
        let _ = durability;
        self.transaction(ops).await
    }
    /// The backend's Vault name (`"inmem"`, `"file"`), reported by `sys/seal-status`.
    fn kind(&self) -> &'static str;
}
