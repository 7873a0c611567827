//! The Shamir seal: the root key's split into unseal keys, unseal progress, and rekeying.

use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use blahaj::{Share, Sharks};
use mayfly_storage::{Backend, Entry, TxOp};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::barrier::Barrier;
use crate::keyring::{KEY_LEN, KeyBytes, Keyring, key_from_slice, keys_equal, random_key};
use crate::{Error, KEYRING_PATH, Result, SEAL_CONFIG_PATH, unpoison};

/// A Shamir share is the x coordinate followed by one y byte per root-key byte.
const SHARE_LEN: usize = KEY_LEN + 1;

/// How the root key is split. Stored in plaintext: it holds no secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealConfig {
    pub secret_shares: u8,
    pub secret_threshold: u8,
}

impl SealConfig {
    pub fn new(secret_shares: u8, secret_threshold: u8) -> Result<Self> {
        let config = Self {
            secret_shares,
            secret_threshold,
        };
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        let invalid = |msg: &str| Err(Error::InvalidSealConfig(msg.to_owned()));
        if self.secret_shares == 0 {
            return invalid("shares must be at least one");
        }
        if self.secret_threshold == 0 {
            return invalid("threshold must be at least one");
        }
        if self.secret_threshold > self.secret_shares {
            return invalid("threshold cannot be larger than shares");
        }
        if self.secret_shares > 1 && self.secret_threshold == 1 {
            return invalid("threshold must be greater than one for multiple shares");
        }
        Ok(())
    }

    /// A single unseal key is the root key itself; otherwise keys are Shamir shares.
    fn key_len(&self) -> usize {
        if self.secret_shares == 1 {
            KEY_LEN
        } else {
            SHARE_LEN
        }
    }

    fn to_json(self) -> Result<Vec<u8>> {
        serde_json::to_vec(&self).map_err(|e| Error::Internal(format!("seal config: {e}")))
    }
}

/// One unseal key (a share of the root key, or the root key itself for a 1-of-1 seal).
#[derive(Clone)]
pub struct UnsealKey(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for UnsealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnsealKey(..)")
    }
}

impl UnsealKey {
    pub fn hex(&self) -> String {
        hex::encode(&*self.0)
    }

    pub fn base64(&self) -> String {
        STANDARD.encode(&*self.0)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Parses hex first, then standard base64 (as Vault's unseal endpoint does).
    pub fn decode(text: &str) -> Result<Self> {
        let text = text.trim();
        let bytes =
            match hex::decode(text) {
                Ok(bytes) => Zeroizing::new(bytes),
                Err(_) => Zeroizing::new(STANDARD.decode(text).map_err(|_| {
                    Error::InvalidShare("unseal key is neither hex nor base64".into())
                })?),
            };
        if bytes.len() != KEY_LEN && bytes.len() != SHARE_LEN {
            return Err(Error::InvalidShare(format!(
                "unseal key must be {KEY_LEN} or {SHARE_LEN} bytes, got {}",
                bytes.len()
            )));
        }
        Ok(Self(bytes))
    }

    fn same_as(&self, other: &Self) -> bool {
        keys_equal(&self.0, &other.0)
    }
}

/// The unseal keys produced by initialization.
#[derive(Debug, Clone)]
pub struct InitResult {
    pub keys: Vec<UnsealKey>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsealStatus {
    pub sealed: bool,
    pub threshold: u8,
    pub shares: u8,
    pub progress: u8,
    /// Identifies the unseal attempt in progress; empty when none is.
    pub nonce: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RekeyStatus {
    pub started: bool,
    pub nonce: String,
    /// Threshold of the new split.
    pub threshold: u8,
    /// Share count of the new split.
    pub shares: u8,
    pub progress: u8,
    /// Current threshold: how many current keys complete the rekey.
    pub required: u8,
}

#[derive(Debug, Clone)]
pub enum RekeyProgress {
    InProgress(RekeyStatus),
    Complete { nonce: String, keys: Vec<UnsealKey> },
}

/// Keys submitted so far toward a threshold.
#[derive(Default)]
struct Pending {
    nonce: String,
    keys: Vec<UnsealKey>,
}

impl Pending {
    fn progress(&self) -> u8 {
        u8::try_from(self.keys.len()).unwrap_or(u8::MAX)
    }

    /// Records `key` unless it was already submitted; validates it against `config` first.
    fn accept(&mut self, config: &SealConfig, key: &UnsealKey) -> Result<()> {
        let expected = config.key_len();
        if key.0.len() != expected {
            return Err(Error::InvalidShare(format!(
                "unseal key must be {expected} bytes for this seal, got {}",
                key.0.len()
            )));
        }
        // Share x = 0 is never issued (it would be the secret itself).
        if expected == SHARE_LEN && key.0[0] == 0 {
            return Err(Error::InvalidShare(
                "unseal key has no valid share index".into(),
            ));
        }
        if self.keys.iter().any(|k| k.same_as(key)) {
            return Ok(());
        }
        if self.keys.is_empty() && self.nonce.is_empty() {
            self.nonce = uuid::Uuid::new_v4().to_string();
        }
        self.keys.push(key.clone());
        Ok(())
    }

    fn reached(&self, config: &SealConfig) -> bool {
        self.keys.len() >= usize::from(config.secret_threshold)
    }

    fn take(&mut self) -> Vec<UnsealKey> {
        std::mem::take(&mut self.keys)
    }
}

struct Rekey {
    nonce: String,
    config: SealConfig,
    pending: Pending,
}

#[derive(Default)]
struct SealState {
    unseal: Pending,
    rekey: Option<Rekey>,
    /// Last configuration read or written, for the synchronous status calls.
    config: Option<SealConfig>,
}

/// Owns the root key split, unseal progress and rekey state.
pub struct ShamirSeal {
    backend: Arc<dyn Backend>,
    barrier: Arc<Barrier>,
    state: Mutex<SealState>,
}

impl std::fmt::Debug for ShamirSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShamirSeal")
            .field("barrier", &self.barrier)
            .finish_non_exhaustive()
    }
}

/// Splits `root_key` into unseal keys per `config`.
fn split(config: &SealConfig, root_key: &KeyBytes) -> Vec<UnsealKey> {
    if config.secret_shares == 1 {
        return vec![UnsealKey(Zeroizing::new(root_key.to_vec()))];
    }
    Sharks(config.secret_threshold)
        .dealer(root_key.as_ref())
        .take(usize::from(config.secret_shares))
        .map(|share| UnsealKey(Zeroizing::new(Vec::from(&share))))
        .collect()
}

/// Recombines already validated keys into a candidate root key.
fn combine(config: &SealConfig, keys: &[UnsealKey]) -> Result<KeyBytes> {
    if config.secret_shares == 1 {
        return keys
            .first()
            .and_then(|k| key_from_slice(&k.0))
            .ok_or(Error::InvalidUnsealKey);
    }
    let mut shares = Vec::with_capacity(keys.len());
    let mut seen = [false; 256];
    for key in keys {
        let share = Share::try_from(key.0.as_slice()).map_err(|_| Error::InvalidUnsealKey)?;
        // Two different keys with the same x cannot both be genuine; interpolation would
        // silently produce garbage.
        let x = usize::from(share.x.0);
        if seen[x] {
            return Err(Error::InvalidUnsealKey);
        }
        seen[x] = true;
        shares.push(share);
    }
    if shares.len() < usize::from(config.secret_threshold) {
        return Err(Error::InvalidUnsealKey);
    }
    let secret = Zeroizing::new(
        Sharks(config.secret_threshold)
            .recover(&shares)
            .map_err(|_| Error::InvalidUnsealKey)?,
    );
    key_from_slice(&secret).ok_or(Error::InvalidUnsealKey)
}

impl ShamirSeal {
    pub fn new(backend: Arc<dyn Backend>, barrier: Arc<Barrier>) -> Self {
        Self {
            backend,
            barrier,
            state: Mutex::new(SealState::default()),
        }
    }

    pub fn barrier(&self) -> &Arc<Barrier> {
        &self.barrier
    }

    fn lock(&self) -> MutexGuard<'_, SealState> {
        unpoison(self.state.lock())
    }

    /// The stored seal configuration; `None` while uninitialized.
    pub async fn config(&self) -> Result<Option<SealConfig>> {
        let config = match self.backend.get(SEAL_CONFIG_PATH).await? {
            None => None,
            Some(raw) => {
                let config: SealConfig = serde_json::from_slice(&raw)
                    .map_err(|e| Error::Internal(format!("stored seal config is corrupt: {e}")))?;
                config.validate()?;
                Some(config)
            }
        };
        self.lock().config = config;
        Ok(config)
    }

    async fn require_config(&self) -> Result<SealConfig> {
        self.config().await?.ok_or(Error::NotInitialized)
    }

    /// Creates the root key and a fresh keyring, and returns the unseal keys. The barrier stays
    /// sealed.
    pub async fn initialize(&self, shares: u8, threshold: u8) -> Result<InitResult> {
        let config = SealConfig::new(shares, threshold)?;
        let _write = self.barrier.lock_keyring().await;
        if self.backend.get(SEAL_CONFIG_PATH).await?.is_some() {
            return Err(Error::AlreadyInitialized);
        }
        let root_key = random_key()?;
        let blob = Keyring::generate()?.seal_with(&root_key)?;
        let keys = split(&config, &root_key);
        self.backend
            .transaction(vec![
                TxOp::Put(Entry {
                    key: KEYRING_PATH.to_owned(),
                    value: blob,
                }),
                TxOp::Put(Entry {
                    key: SEAL_CONFIG_PATH.to_owned(),
                    value: config.to_json()?,
                }),
            ])
            .await?;
        {
            let mut state = self.lock();
            state.config = Some(config);
            state.unseal = Pending::default();
        }
        tracing::info!(shares, threshold, "seal initialized");
        Ok(InitResult { keys })
    }

    fn unseal_status(&self, config: &SealConfig) -> UnsealStatus {
        let sealed = self.barrier.is_sealed();
        let state = self.lock();
        let (progress, nonce) = if sealed {
            (state.unseal.progress(), state.unseal.nonce.clone())
        } else {
            (0, String::new())
        };
        UnsealStatus {
            sealed,
            threshold: config.secret_threshold,
            shares: config.secret_shares,
            progress,
            nonce,
        }
    }

    /// Adds one unseal key; at the threshold, recombines the root key and opens the keyring.
    pub async fn submit_unseal_key(&self, key: &UnsealKey) -> Result<UnsealStatus> {
        let config = self.require_config().await?;
        if !self.barrier.is_sealed() {
            return Ok(self.unseal_status(&config));
        }
        let keys = {
            let mut state = self.lock();
            state.unseal.accept(&config, key)?;
            if !state.unseal.reached(&config) {
                drop(state);
                return Ok(self.unseal_status(&config));
            }
            // Whatever the outcome, this attempt is over: a failed combination starts afresh.
            let keys = state.unseal.take();
            state.unseal.nonce.clear();
            keys
        };

        let _write = self.barrier.lock_keyring().await;
        if !self.barrier.is_sealed() {
            return Ok(self.unseal_status(&config));
        }
        let root_key = combine(&config, &keys)?;
        let blob = self
            .backend
            .get(KEYRING_PATH)
            .await?
            .ok_or_else(|| Error::Internal("stored keyring is missing".into()))?;
        let keyring = Keyring::open_with(&root_key, &blob)?;
        self.barrier.unseal_with(root_key, keyring);
        tracing::info!("barrier unsealed");
        Ok(self.unseal_status(&config))
    }

    pub fn reset_unseal(&self) {
        self.lock().unseal = Pending::default();
    }

    pub async fn status(&self) -> Result<UnsealStatus> {
        Ok(match self.config().await? {
            Some(config) => self.unseal_status(&config),
            None => UnsealStatus {
                sealed: self.barrier.is_sealed(),
                threshold: 0,
                shares: 0,
                progress: 0,
                nonce: String::new(),
            },
        })
    }

    /// Wipes the in-memory keys and abandons any unseal or rekey in progress.
    pub fn seal(&self) {
        self.barrier.seal();
        let mut state = self.lock();
        state.unseal = Pending::default();
        state.rekey = None;
        drop(state);
        tracing::info!("barrier sealed");
    }

    /// Checks that `keys` reach the threshold and combine to the current root key.
    pub async fn verify_shares(&self, keys: &[UnsealKey]) -> Result<()> {
        let config = self.require_config().await?;
        let mut pending = Pending::default();
        for key in keys {
            pending.accept(&config, key)?;
        }
        let root_key = combine(&config, &pending.keys)?;
        if self.barrier.root_key_matches(&root_key)? {
            Ok(())
        } else {
            Err(Error::InvalidUnsealKey)
        }
    }

    fn rekey_status_of(rekey: &Rekey, required: u8) -> RekeyStatus {
        RekeyStatus {
            started: true,
            nonce: rekey.nonce.clone(),
            threshold: rekey.config.secret_threshold,
            shares: rekey.config.secret_shares,
            progress: rekey.pending.progress(),
            required,
        }
    }

    /// Starts replacing the root key and its split with a `threshold`-of-`shares` one.
    pub async fn rekey_init(&self, shares: u8, threshold: u8) -> Result<RekeyStatus> {
        let new_config = SealConfig::new(shares, threshold)?;
        let current = self.require_config().await?;
        if self.barrier.is_sealed() {
            return Err(Error::Sealed);
        }
        let mut state = self.lock();
        if state.rekey.is_some() {
            return Err(Error::RekeyInProgress);
        }
        let rekey = Rekey {
            nonce: uuid::Uuid::new_v4().to_string(),
            config: new_config,
            pending: Pending::default(),
        };
        let status = Self::rekey_status_of(&rekey, current.secret_threshold);
        state.rekey = Some(rekey);
        Ok(status)
    }

    pub fn rekey_status(&self) -> RekeyStatus {
        let state = self.lock();
        let required = state.config.map_or(0, |c| c.secret_threshold);
        match &state.rekey {
            Some(rekey) => Self::rekey_status_of(rekey, required),
            None => RekeyStatus {
                required,
                ..RekeyStatus::default()
            },
        }
    }

    pub fn rekey_cancel(&self) {
        self.lock().rekey = None;
    }

    /// Adds one current unseal key to the rekey; at the current threshold, installs a new root
    /// key and returns its unseal keys.
    pub async fn rekey_update(&self, key: &UnsealKey, nonce: &str) -> Result<RekeyProgress> {
        let current = self.require_config().await?;
        if self.barrier.is_sealed() {
            return Err(Error::Sealed);
        }
        let (keys, new_config) = {
            let mut state = self.lock();
            let rekey = state.rekey.as_mut().ok_or(Error::RekeyNotInProgress)?;
            if rekey.nonce != nonce {
                return Err(Error::InvalidNonce);
            }
            rekey.pending.accept(&current, key)?;
            if !rekey.pending.reached(&current) {
                let status = Self::rekey_status_of(rekey, current.secret_threshold);
                return Ok(RekeyProgress::InProgress(status));
            }
            (rekey.pending.take(), rekey.config)
        };

        let _write = self.barrier.lock_keyring().await;
        let old_root = combine(&current, &keys)?;
        if !self.barrier.root_key_matches(&old_root)? {
            return Err(Error::InvalidUnsealKey);
        }
        // Cancelled or restarted while waiting for the keyring lock: do not act on it.
        if self.lock().rekey.as_ref().map(|r| r.nonce.as_str()) != Some(nonce) {
            return Err(Error::RekeyNotInProgress);
        }
        let new_root = random_key()?;
        let blob = self.barrier.keyring_blob_for(&new_root)?;
        let new_keys = split(&new_config, &new_root);
        self.backend
            .transaction(vec![
                TxOp::Put(Entry {
                    key: KEYRING_PATH.to_owned(),
                    value: blob,
                }),
                TxOp::Put(Entry {
                    key: SEAL_CONFIG_PATH.to_owned(),
                    value: new_config.to_json()?,
                }),
            ])
            .await?;
        self.barrier.replace_root_key(new_root);
        {
            let mut state = self.lock();
            state.rekey = None;
            state.config = Some(new_config);
        }
        tracing::info!(
            shares = new_config.secret_shares,
            threshold = new_config.secret_threshold,
            "root key rekeyed"
        );
        Ok(RekeyProgress::Complete {
            nonce: nonce.to_owned(),
            keys: new_keys,
        })
    }
}

#[cfg(test)]
mod tests {
    use mayfly_storage::InmemBackend;

    use super::*;

    struct Fixture {
        backend: Arc<InmemBackend>,
        barrier: Arc<Barrier>,
        seal: ShamirSeal,
    }

    fn fixture() -> Fixture {
        let backend = Arc::new(InmemBackend::new());
        let barrier = Arc::new(Barrier::new(backend.clone()));
        let seal = ShamirSeal::new(backend.clone(), barrier.clone());
        Fixture {
            backend,
            barrier,
            seal,
        }
    }

    async fn unseal_with(seal: &ShamirSeal, keys: &[&UnsealKey]) -> Result<UnsealStatus> {
        let mut status = seal.status().await?;
        for key in keys {
            status = seal.submit_unseal_key(key).await?;
        }
        Ok(status)
    }

    fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
        if k == 0 {
            return vec![vec![]];
        }
        (k - 1..n)
            .flat_map(|last| {
                subsets(last, k - 1).into_iter().map(move |mut s| {
                    s.push(last);
                    s
                })
            })
            .collect()
    }

    #[tokio::test]
    async fn every_threshold_subset_unseals_and_no_smaller_one_does() {
        let f = fixture();
        let keys = f.seal.initialize(5, 3).await.unwrap().keys;
        assert_eq!(keys.len(), 5);
        assert!(keys.iter().all(|k| k.as_bytes().len() == SHARE_LEN));
        assert!(f.barrier.is_sealed());
        assert_eq!(
            f.seal.config().await.unwrap(),
            Some(SealConfig::new(5, 3).unwrap())
        );

        let threes = subsets(5, 3);
        assert_eq!(threes.len(), 10);
        for subset in threes {
            let picked: Vec<_> = subset.iter().map(|&i| &keys[i]).collect();
            let status = unseal_with(&f.seal, &picked).await.unwrap();
            assert!(!status.sealed, "subset {subset:?}");
            assert_eq!(status.progress, 0);
            assert!(status.nonce.is_empty());
            f.seal.seal();
        }
        for subset in subsets(5, 2) {
            let picked: Vec<_> = subset.iter().map(|&i| &keys[i]).collect();
            let status = unseal_with(&f.seal, &picked).await.unwrap();
            assert!(status.sealed);
            assert_eq!(status.progress, 2);
            assert!(!status.nonce.is_empty());
            // A third, foreign share completes the count but not the key.
            let mut forged = keys[subset[0]].as_bytes().to_vec();
            forged[0] = 200;
            let forged = UnsealKey(Zeroizing::new(forged));
            assert!(matches!(
                f.seal.submit_unseal_key(&forged).await,
                Err(Error::InvalidUnsealKey)
            ));
            assert!(f.barrier.is_sealed());
            assert_eq!(f.seal.status().await.unwrap().progress, 0);
        }
        let status = unseal_with(&f.seal, &[&keys[4], &keys[0], &keys[2]])
            .await
            .unwrap();
        assert!(!status.sealed);
    }

    #[tokio::test]
    async fn duplicates_lengths_and_reset() {
        let f = fixture();
        let keys = f.seal.initialize(3, 2).await.unwrap().keys;
        let status = f.seal.submit_unseal_key(&keys[0]).await.unwrap();
        assert_eq!(status.progress, 1);
        let nonce = status.nonce.clone();
        let status = f.seal.submit_unseal_key(&keys[0]).await.unwrap();
        assert_eq!(
            (status.progress, status.nonce.as_str()),
            (1, nonce.as_str())
        );

        let short = UnsealKey(Zeroizing::new(vec![7; KEY_LEN]));
        assert!(matches!(
            f.seal.submit_unseal_key(&short).await,
            Err(Error::InvalidShare(_))
        ));
        assert_eq!(f.seal.status().await.unwrap().progress, 1);

        f.seal.reset_unseal();
        let status = f.seal.status().await.unwrap();
        assert_eq!((status.progress, status.nonce.as_str()), (0, ""));

        let status = unseal_with(&f.seal, &[&keys[1], &keys[2]]).await.unwrap();
        assert!(!status.sealed);
        // Already unsealed: a further key changes nothing.
        let again = f.seal.submit_unseal_key(&keys[0]).await.unwrap();
        assert_eq!(again, status);
    }

    #[tokio::test]
    async fn one_of_one_and_wrong_root_key() {
        let f = fixture();
        let keys = f.seal.initialize(1, 1).await.unwrap().keys;
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].as_bytes().len(), KEY_LEN);

        let wrong = UnsealKey(Zeroizing::new(random_key().unwrap().to_vec()));
        assert!(matches!(
            f.seal.submit_unseal_key(&wrong).await,
            Err(Error::InvalidUnsealKey)
        ));
        assert!(f.barrier.is_sealed());
        assert_eq!(f.seal.status().await.unwrap().progress, 0);

        let status = f.seal.submit_unseal_key(&keys[0]).await.unwrap();
        assert!(!status.sealed);
    }

    #[tokio::test]
    async fn many_shares() {
        let f = fixture();
        let keys = f.seal.initialize(255, 255).await.unwrap().keys;
        assert_eq!(keys.len(), 255);
        let all: Vec<_> = keys.iter().rev().collect();
        let status = unseal_with(&f.seal, &all[..254]).await.unwrap();
        assert!(status.sealed);
        assert_eq!(status.progress, 254);
        let status = f.seal.submit_unseal_key(all[254]).await.unwrap();
        assert!(!status.sealed);
    }

    #[tokio::test]
    async fn config_validation() {
        let f = fixture();
        for (shares, threshold) in [(0, 0), (0, 1), (3, 0), (3, 4), (3, 1), (255, 1)] {
            assert!(
                matches!(
                    f.seal.initialize(shares, threshold).await,
                    Err(Error::InvalidSealConfig(_))
                ),
                "{shares}/{threshold}"
            );
        }
        match SealConfig::new(5, 1) {
            Err(Error::InvalidSealConfig(msg)) => {
                assert_eq!(
                    msg,
                    "threshold must be greater than one for multiple shares"
                )
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(f.seal.config().await.unwrap(), None);
        let status = f.seal.status().await.unwrap();
        assert!(status.sealed);
        assert_eq!(status.shares, 0);
        assert!(matches!(
            f.seal
                .submit_unseal_key(&UnsealKey(Zeroizing::new(vec![1; 33])))
                .await,
            Err(Error::NotInitialized)
        ));

        f.seal.initialize(2, 2).await.unwrap();
        assert!(matches!(
            f.seal.initialize(2, 2).await,
            Err(Error::AlreadyInitialized)
        ));
        let stored = f.backend.get(SEAL_CONFIG_PATH).await.unwrap().unwrap();
        let stored: SealConfig = serde_json::from_slice(&stored).unwrap();
        assert_eq!(stored, SealConfig::new(2, 2).unwrap());
    }

    #[test]
    fn unseal_key_encodings() {
        let key = UnsealKey(Zeroizing::new((0..33).collect()));
        let from_hex = UnsealKey::decode(&key.hex()).unwrap();
        let from_b64 = UnsealKey::decode(&format!(" {}\n", key.base64())).unwrap();
        assert_eq!(from_hex.as_bytes(), key.as_bytes());
        assert_eq!(from_b64.as_bytes(), key.as_bytes());
        assert!(matches!(
            UnsealKey::decode("abcd"),
            Err(Error::InvalidShare(_))
        ));
        assert!(matches!(
            UnsealKey::decode("not a key!"),
            Err(Error::InvalidShare(_))
        ));
        let long = hex::encode([0xAB; 40]);
        match UnsealKey::decode(&long) {
            Err(e) => assert!(!e.to_string().contains(&long[..8])),
            Ok(_) => panic!("40-byte key accepted"),
        }
        assert_eq!(format!("{key:?}"), "UnsealKey(..)");
    }

    #[tokio::test]
    async fn seal_then_unseal_again() {
        let f = fixture();
        let keys = f.seal.initialize(3, 2).await.unwrap().keys;
        unseal_with(&f.seal, &[&keys[0], &keys[1]]).await.unwrap();
        f.barrier.put("k", b"v").await.unwrap();
        f.seal.submit_unseal_key(&keys[2]).await.unwrap();
        f.seal.seal();
        assert!(f.barrier.is_sealed());
        assert!(matches!(f.barrier.get("k").await, Err(Error::Sealed)));
        assert!(matches!(f.barrier.put("k", b"w").await, Err(Error::Sealed)));
        assert!(matches!(f.barrier.list("").await, Err(Error::Sealed)));
        assert!(matches!(f.barrier.key_status(), Err(Error::Sealed)));
        let status = f.seal.status().await.unwrap();
        assert_eq!((status.sealed, status.progress), (true, 0));
        unseal_with(&f.seal, &[&keys[2], &keys[0]]).await.unwrap();
        assert_eq!(f.barrier.get("k").await.unwrap().unwrap(), b"v");
    }

    #[tokio::test]
    async fn verify_shares() {
        let f = fixture();
        let keys = f.seal.initialize(5, 3).await.unwrap().keys;
        assert!(matches!(
            f.seal.verify_shares(&keys[..3]).await,
            Err(Error::Sealed)
        ));
        unseal_with(&f.seal, &[&keys[0], &keys[1], &keys[2]])
            .await
            .unwrap();
        f.seal.verify_shares(&keys[2..]).await.unwrap();
        f.seal.verify_shares(&keys).await.unwrap();
        assert!(matches!(
            f.seal.verify_shares(&keys[..2]).await,
            Err(Error::InvalidUnsealKey)
        ));
        let other = fixture();
        let foreign = other.seal.initialize(5, 3).await.unwrap().keys;
        assert!(matches!(
            f.seal.verify_shares(&foreign[..3]).await,
            Err(Error::InvalidUnsealKey)
        ));
        let mixed = [keys[0].clone(), keys[1].clone(), foreign[2].clone()];
        assert!(matches!(
            f.seal.verify_shares(&mixed).await,
            Err(Error::InvalidUnsealKey)
        ));
    }

    #[tokio::test]
    async fn rekey_replaces_the_split() {
        let f = fixture();
        let old = f.seal.initialize(3, 2).await.unwrap().keys;
        assert!(matches!(f.seal.rekey_init(5, 3).await, Err(Error::Sealed)));
        unseal_with(&f.seal, &[&old[0], &old[1]]).await.unwrap();
        f.barrier.put("data", b"kept").await.unwrap();
        f.barrier.rotate().await.unwrap();
        let keyring_before = f.backend.get(KEYRING_PATH).await.unwrap().unwrap();

        assert!(matches!(
            f.seal.rekey_update(&old[0], "nonce").await,
            Err(Error::RekeyNotInProgress)
        ));
        assert_eq!(f.seal.rekey_status().required, 2);
        assert!(!f.seal.rekey_status().started);
        assert!(matches!(
            f.seal.rekey_init(5, 1).await,
            Err(Error::InvalidSealConfig(_))
        ));
        let status = f.seal.rekey_init(5, 3).await.unwrap();
        assert!(status.started);
        assert_eq!(
            (status.shares, status.threshold, status.required),
            (5, 3, 2)
        );
        assert!(matches!(
            f.seal.rekey_init(5, 3).await,
            Err(Error::RekeyInProgress)
        ));
        let nonce = status.nonce;
        assert!(matches!(
            f.seal.rekey_update(&old[0], "wrong").await,
            Err(Error::InvalidNonce)
        ));

        // Wrong current shares: rejected and progress starts over, rekey still running.
        let foreign = fixture().seal.initialize(3, 2).await.unwrap().keys;
        f.seal.rekey_update(&old[0], &nonce).await.unwrap();
        assert!(matches!(
            f.seal.rekey_update(&foreign[1], &nonce).await,
            Err(Error::InvalidUnsealKey)
        ));
        let status = f.seal.rekey_status();
        assert!(status.started);
        assert_eq!(status.progress, 0);

        match f.seal.rekey_update(&old[2], &nonce).await.unwrap() {
            RekeyProgress::InProgress(s) => assert_eq!(s.progress, 1),
            RekeyProgress::Complete { .. } => panic!("completed early"),
        }
        let new = match f.seal.rekey_update(&old[1], &nonce).await.unwrap() {
            RekeyProgress::Complete { nonce: n, keys } => {
                assert_eq!(n, nonce);
                keys
            }
            RekeyProgress::InProgress(_) => panic!("not completed"),
        };
        assert_eq!(new.len(), 5);
        assert!(!f.seal.rekey_status().started);
        assert_eq!(f.seal.rekey_status().required, 3);
        assert_ne!(
            f.backend.get(KEYRING_PATH).await.unwrap().unwrap(),
            keyring_before
        );
        assert_eq!(
            f.seal.config().await.unwrap(),
            Some(SealConfig::new(5, 3).unwrap())
        );
        f.seal.verify_shares(&new[1..4]).await.unwrap();
        assert!(f.seal.verify_shares(&old[..2]).await.is_err());

        f.seal.seal();
        assert!(matches!(
            unseal_with(&f.seal, &[&old[0], &old[1], &old[2]]).await,
            Err(Error::InvalidUnsealKey)
        ));
        assert!(f.barrier.is_sealed());
        unseal_with(&f.seal, &[&new[4], &new[0], &new[2]])
            .await
            .unwrap();
        assert_eq!(f.barrier.get("data").await.unwrap().unwrap(), b"kept");
        assert_eq!(f.barrier.key_status().unwrap().term, 2);
    }

    #[tokio::test]
    async fn rekey_cancel_and_one_of_one() {
        let f = fixture();
        let old = f.seal.initialize(1, 1).await.unwrap().keys;
        f.seal.submit_unseal_key(&old[0]).await.unwrap();
        let first = f.seal.rekey_init(3, 2).await.unwrap();
        f.seal.rekey_cancel();
        assert!(!f.seal.rekey_status().started);
        let second = f.seal.rekey_init(1, 1).await.unwrap();
        assert_ne!(first.nonce, second.nonce);
        let new = match f.seal.rekey_update(&old[0], &second.nonce).await.unwrap() {
            RekeyProgress::Complete { keys, .. } => keys,
            RekeyProgress::InProgress(_) => panic!("1-of-1 rekey must complete at once"),
        };
        assert_eq!(new.len(), 1);
        f.seal.seal();
        assert!(f.seal.submit_unseal_key(&old[0]).await.is_err());
        assert!(!f.seal.submit_unseal_key(&new[0]).await.unwrap().sealed);
    }
}
