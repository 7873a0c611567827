//! The backend's shared state and storage layout: keyed hashes, locks, the clock.
//!
//! Layout of the mount's storage:
//!
//! | key | value |
//! |---|---|
//! | `salt` | the mount's random HMAC key for indexes |
//! | `role/<name>` | a [`crate::role::RoleEntry`] |
//! | `role_id/<hmac(salt, role_id)>` | the name of the role owning that RoleID |
//! | `secret_id/<hmac(role key, name)>/<hmac(role key, secret_id)>` | a SecretID's properties |
//! | `accessor/<hmac(salt, accessor)>` | where the SecretID of an accessor lives |
//!
//! SecretIDs and accessors only ever appear as keyed hashes, so reading storage (or a backup
//! of it) reveals no credential.

use std::sync::{Arc, atomic::AtomicBool};

use aws_lc_rs::hmac;
use mayfly_sdk::{Error, Result, Storage, StorageExt};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::{
    sync::{Mutex, MutexGuard, OnceCell, RwLock},
    task::JoinHandle,
};

pub(crate) const SALT_KEY: &str = "salt";
pub(crate) const ROLE_PREFIX: &str = "role/";
pub(crate) const ROLE_ID_PREFIX: &str = "role_id/";
pub(crate) const SECRET_ID_PREFIX: &str = "secret_id/";
pub(crate) const ACCESSOR_PREFIX: &str = "accessor/";

/// Vault refuses to hash longer names and SecretIDs; the same bound keeps requests cheap.
pub(crate) const MAX_HMAC_INPUT: usize = 4096;

/// Lock stripes for SecretIDs: concurrent logins with one SecretID serialize on its stripe,
/// logins with different SecretIDs rarely contend.
const SECRET_LOCK_STRIPES: usize = 64;

/// Where "now" comes from; tests substitute a clock they can move.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(OffsetDateTime::now_utc)
}

/// State shared by every request to one AppRole mount.
pub struct AppRole {
    salt: OnceCell<Vec<u8>>,
    secret_locks: Vec<Mutex<()>>,
    /// Role writers take it exclusively; SecretID creation shares it, so a SecretID is never
    /// written for a role that is being deleted.
    pub(crate) role_lock: RwLock<()>,
    pub(crate) tidy_running: Arc<AtomicBool>,
    pub(crate) tidy_task: std::sync::Mutex<Option<JoinHandle<()>>>,
    clock: Clock,
}

impl AppRole {
    pub fn new(clock: Clock) -> Self {
        AppRole {
            salt: OnceCell::new(),
            secret_locks: (0..SECRET_LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            role_lock: RwLock::new(()),
            tidy_running: Arc::new(AtomicBool::new(false)),
            tidy_task: std::sync::Mutex::new(None),
            clock,
        }
    }

    pub fn now(&self) -> OffsetDateTime {
        (self.clock)()
    }

    /// The mount's index key, created on first use.
    pub async fn salt(&self, storage: &dyn Storage) -> Result<&[u8]> {
        let salt = self
            .salt
            .get_or_try_init(|| async {
                if let Some(stored) = storage.get(SALT_KEY).await? {
                    return Ok::<_, Error>(stored);
                }
                let fresh = random_hex(32)?.into_bytes();
                storage.put(SALT_KEY, &fresh).await?;
                Ok(fresh)
            })
            .await?;
        Ok(salt.as_slice())
    }

    /// Serializes read-modify-write of one SecretID (use counts, deletion).
    pub async fn lock_secret(&self, secret_id_hmac: &str) -> MutexGuard<'_, ()> {
        let stripe = secret_id_hmac
            .get(..2)
            .and_then(|prefix| usize::from_str_radix(prefix, 16).ok())
            .unwrap_or(0)
            % self.secret_locks.len();
        self.secret_locks[stripe].lock().await
    }

    pub async fn role_id_key(&self, storage: &dyn Storage, role_id: &str) -> Result<String> {
        let salt = self.salt(storage).await?;
        Ok(format!("{ROLE_ID_PREFIX}{}", keyed_hash(salt, role_id)?))
    }

    pub async fn accessor_key(&self, storage: &dyn Storage, accessor: &str) -> Result<String> {
        let salt = self.salt(storage).await?;
        Ok(format!("{ACCESSOR_PREFIX}{}", keyed_hash(salt, accessor)?))
    }
}

/// HMAC-SHA256 of `value` under `key`, hex-encoded.
pub(crate) fn keyed_hash(key: &[u8], value: &str) -> Result<String> {
    if value.len() > MAX_HMAC_INPUT {
        return Err(Error::invalid(format!(
            "value is longer than maximum of {MAX_HMAC_INPUT} bytes"
        )));
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    Ok(hex::encode(hmac::sign(&key, value.as_bytes()).as_ref()))
}

/// `bytes` random bytes from the system CSPRNG, hex-encoded.
pub(crate) fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf)
        .map_err(|_| Error::internal("the system random number generator failed"))?;
    Ok(hex::encode(buf))
}

/// The role-ID index entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RoleIdIndex {
    pub name: String,
}

/// The accessor index entry: where the SecretID of an accessor is stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AccessorIndex {
    pub role_name_hmac: String,
    pub secret_id_hmac: String,
}

pub(crate) async fn read_accessor(
    state: &AppRole,
    storage: &dyn Storage,
    accessor: &str,
) -> Result<Option<AccessorIndex>> {
    let key = state.accessor_key(storage, accessor).await?;
    storage.get_json(&key).await
}
