//! The security barrier: the only crate that holds encryption keys.
//!
//! [`Barrier`] encrypts every logical value with the active keyring term before it reaches
//! physical storage; [`ShamirSeal`] owns the root key that protects the keyring, its split into
//! unseal keys, unseal progress and rekeying.

mod barrier;
mod keyring;
mod seal;

pub use crate::barrier::{Barrier, BarrierOp, KeyStatus};
pub use crate::seal::{
    InitResult, RekeyProgress, RekeyStatus, SealConfig, ShamirSeal, UnsealKey, UnsealStatus,
};
pub use mayfly_storage::Durability;

/// Physical key of the seal configuration (plaintext JSON, holds no secret).
pub const SEAL_CONFIG_PATH: &str = "core/seal-config";
/// Physical key of the keyring, encrypted with the root key.
pub const KEYRING_PATH: &str = "core/keyring";

/// Errors of the barrier and the seal. No message ever contains key material.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Vault is sealed")]
    Sealed,
    #[error("Vault is not initialized")]
    NotInitialized,
    #[error("Vault is already initialized")]
    AlreadyInitialized,
    #[error("unseal keys do not combine to the root key")]
    InvalidUnsealKey,
    #[error("invalid unseal key: {0}")]
    InvalidShare(String),
    #[error("invalid seal configuration: {0}")]
    InvalidSealConfig(String),
    #[error("failed to decrypt the value stored at {key:?}")]
    Decrypt { key: String },
    #[error("no rekey is in progress")]
    RekeyNotInProgress,
    #[error("a rekey is already in progress")]
    RekeyInProgress,
    #[error("nonce does not match the operation in progress")]
    InvalidNonce,
    #[error(transparent)]
    Storage(#[from] mayfly_storage::Error),
    #[error("barrier internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Recovers a guard from a poisoned std lock: every critical section in this crate leaves the
/// state consistent before it can panic, so the data behind the lock is still valid.
fn unpoison<G>(result: std::sync::LockResult<G>) -> G {
    result.unwrap_or_else(std::sync::PoisonError::into_inner)
}
