//! KV v2's persisted records and where they live in the mount's storage.
//!
//! Layout, all under `v2/` so that it can never collide with v1 entries (`v1/`):
//! `v2/config` (mount settings), `v2/metadata/<key>` (one record per key, listing-friendly so
//! `LIST metadata/` is a storage list) and `v2/versions/<n>/<key>` (one record per version;
//! the number comes first so that no key name can be mistaken for another key's version).
//! Every record carries a `version` field: the layout version of that record.

use std::collections::BTreeMap;

use mayfly_sdk::{Error, Result, Storage, StorageExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::timefmt::rfc3339_nano;

pub(crate) const CONFIG_KEY: &str = "v2/config";
const METADATA_PREFIX: &str = "v2/metadata/";
const VERSIONS_PREFIX: &str = "v2/versions/";

/// Layout version written into every record.
pub(crate) const RECORD_VERSION: u32 = 1;

/// Versions kept per key when neither the key nor the mount sets `max_versions`.
pub(crate) const DEFAULT_MAX_VERSIONS: u32 = 10;

/// The value of the mount's `delete_version_after` that switches automatic deletion off for
/// every key (Vault stores any negative setting as -1s).
pub(crate) const DELETE_VERSION_AFTER_DISABLED: i64 = -1;

pub(crate) fn metadata_key(key: &str) -> String {
    format!("{METADATA_PREFIX}{key}")
}

pub(crate) fn version_key(key: &str, number: u64) -> String {
    format!("{VERSIONS_PREFIX}{number}/{key}")
}

/// Mount-wide settings (`config`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Config {
    pub version: u32,
    /// 0 means the default (10).
    pub max_versions: u32,
    pub cas_required: bool,
    /// Seconds; 0 means unset, -1 means disabled for every key.
    pub delete_version_after: i64,
}

impl Config {
    pub async fn load(storage: &dyn Storage) -> Result<Config> {
        Ok(storage.get_json(CONFIG_KEY).await?.unwrap_or_default())
    }

    pub async fn save(&mut self, storage: &dyn Storage) -> Result<()> {
        self.version = RECORD_VERSION;
        storage.put_json(CONFIG_KEY, self).await
    }
}

/// What is known about one version of a key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VersionMetadata {
    /// Unix nanoseconds.
    pub created_time: i64,
    /// Unix nanoseconds; a time in the future is a scheduled deletion.
    #[serde(default)]
    pub deletion_time: Option<i64>,
    #[serde(default)]
    pub destroyed: bool,
}

impl VersionMetadata {
    /// Soft-deleted (a deletion time that has passed) or destroyed: the data is not served.
    pub fn is_gone(&self, now: i64) -> bool {
        self.destroyed || self.is_deleted(now)
    }

    pub fn is_deleted(&self, now: i64) -> bool {
        self.deletion_time.is_some_and(|at| at < now)
    }
}

/// Everything about one key except its data (`metadata/<key>`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct KeyMetadata {
    pub version: u32,
    pub key: String,
    pub current_version: u64,
    /// Vault's sliding-window marker: 0 until versions start being trimmed, then the oldest
    /// version number still kept.
    pub oldest_version: u64,
    /// 0 means the mount's setting.
    pub max_versions: u32,
    pub cas_required: bool,
    /// Seconds; 0 means unset.
    pub delete_version_after: i64,
    pub custom_metadata: BTreeMap<String, String>,
    /// Unix nanoseconds.
    pub created_time: i64,
    /// Unix nanoseconds of the latest version's creation.
    pub updated_time: i64,
    pub versions: BTreeMap<u64, VersionMetadata>,
}

impl KeyMetadata {
    pub fn new(key: &str) -> Self {
        KeyMetadata {
            version: RECORD_VERSION,
            key: key.to_owned(),
            ..KeyMetadata::default()
        }
    }

    pub async fn load(storage: &dyn Storage, key: &str) -> Result<Option<KeyMetadata>> {
        storage.get_json(&metadata_key(key)).await
    }

    pub async fn save(&mut self, storage: &dyn Storage) -> Result<()> {
        self.version = RECORD_VERSION;
        storage.put_json(&metadata_key(&self.key), self).await
    }

    /// The storage key and value [`KeyMetadata::save`] would write, for a caller that writes
    /// it together with other entries.
    pub fn encode(&mut self) -> Result<(String, Vec<u8>)> {
        self.version = RECORD_VERSION;
        let key = metadata_key(&self.key);
        let value = encode(&key, self)?;
        Ok((key, value))
    }

    /// Records a new version and slides the window of kept versions. Returns the range of
    /// version numbers whose data must now be removed from storage, if any.
    ///
    /// The window is the larger of the key's and the mount's `max_versions` (Vault's rule),
    /// or 10 when neither is set.
    pub fn add_version(
        &mut self,
        created_time: i64,
        deletion_time: Option<i64>,
        config_max_versions: u32,
    ) -> Option<std::ops::RangeInclusive<u64>> {
        self.current_version += 1;
        self.versions.insert(
            self.current_version,
            VersionMetadata {
                created_time,
                deletion_time,
                destroyed: false,
            },
        );
        self.updated_time = created_time;
        if self.created_time == 0 {
            self.created_time = created_time;
        }
        let max_versions = match self.max_versions.max(config_max_versions) {
            0 => DEFAULT_MAX_VERSIONS,
            max => max,
        };
        let max_versions = u64::from(max_versions);
        if self.current_version - self.oldest_version < max_versions {
            return None;
        }
        let last_removed = self.current_version - max_versions;
        let first_removed = self.oldest_version;
        self.versions.retain(|number, _| *number > last_removed);
        self.oldest_version = last_removed + 1;
        Some(first_removed..=last_removed)
    }

    /// When a version created (or undeleted) at `from` should be deleted automatically: after
    /// the smaller of the key's and the mount's non-zero `delete_version_after`.
    pub fn deletion_time(&self, from: i64, config: &Config) -> Option<i64> {
        if config.delete_version_after < 0 {
            return None;
        }
        let after = [self.delete_version_after, config.delete_version_after]
            .into_iter()
            .filter(|seconds| *seconds > 0)
            .min()?;
        Some(from.saturating_add(after.saturating_mul(1_000_000_000)))
    }

    /// `custom_metadata` as Vault shows it: `null` when there is none.
    pub fn custom_metadata_json(&self) -> Value {
        if self.custom_metadata.is_empty() {
            return Value::Null;
        }
        Value::Object(
            self.custom_metadata
                .iter()
                .map(|(key, value)| (key.clone(), Value::String(value.clone())))
                .collect(),
        )
    }

    /// The metadata of one version as the data, subkeys and write endpoints show it.
    pub fn version_json(&self, number: u64, meta: &VersionMetadata) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert(
            "created_time".into(),
            Value::String(rfc3339_nano(meta.created_time)),
        );
        out.insert("custom_metadata".into(), self.custom_metadata_json());
        out.insert(
            "deletion_time".into(),
            Value::String(meta.deletion_time.map(rfc3339_nano).unwrap_or_default()),
        );
        out.insert("destroyed".into(), Value::Bool(meta.destroyed));
        out.insert("version".into(), Value::from(number));
        out
    }
}

/// A record as [`StorageExt::put_json`] would store it.
pub(crate) fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value)
        .map_err(|err| Error::internal(format!("cannot encode entry {key:?}: {err}")))
}

/// The data of one version (`versions/<n>/<key>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VersionEntry {
    pub version: u32,
    /// An object, or `null` when the client wrote `"data": null` (Vault keeps that too).
    pub data: Value,
    /// Unix nanoseconds.
    pub created_time: i64,
}
