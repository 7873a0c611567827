//! The token store: issues, looks up, uses up, renews and revokes client tokens.
//!
//! Tokens are stored under a salted HMAC of their ID (`h<hex>`), never under the ID itself,
//! with secondary indexes by accessor and by parent (for tree revocation). A token's expiry is
//! its lease's business: the core writes a token and its lease in one transaction, and the
//! expiration manager revokes the token when the lease runs out.

mod backend;
mod roles;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use aws_lc_rs::hmac;
use mayfly_sdk::{Error, Result, Storage, StorageExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    clock::Clock,
    keyed_lock::{KeyGuard, KeyedLocks},
    random::{random_base62, random_bytes},
    view::{BarrierView, Txn},
};

pub(crate) use backend::backend;
pub use roles::TokenRole;

/// Vault's service-token prefix; clients and tools recognise tokens by it.
pub const SERVICE_TOKEN_PREFIX: &str = "hvs.";
/// Length of a generated token, which `generate-root` OTPs must match.
pub const ROOT_TOKEN_LENGTH: usize = 28;

/// A persisted token. The token ID itself is never stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenEntry {
    pub version: u32,
    /// The salted HMAC of the token ID; the storage key.
    pub id_hash: String,
    pub accessor: String,
    pub parent_hash: Option<String>,
    pub policies: Vec<String>,
    /// The path that created it (`auth/token/create`, `auth/approle/login`).
    pub path: String,
    pub display_name: String,
    pub meta: Map<String, Value>,
    /// Remaining uses: 0 = unlimited, -1 = used up (being revoked).
    pub num_uses: i64,
    /// Unix seconds.
    pub creation_time: i64,
    /// TTL at creation, seconds; 0 = never expires.
    pub creation_ttl: u64,
    /// Unix seconds; `None` = never.
    pub expire_time: Option<i64>,
    pub last_renewal: Option<i64>,
    pub explicit_max_ttl: u64,
    pub period: u64,
    /// The issuing backend's maximum TTL at login, seconds (0 = the mount's).
    pub backend_max_ttl: u64,
    pub renewable: bool,
    pub bound_cidrs: Vec<String>,
    pub role: Option<String>,
    /// The auth mount that issued the token (`auth/approle/`), consulted on renewal.
    pub auth_mount: Option<String>,
    pub internal_data: Map<String, Value>,
    #[serde(default)]
    pub no_default_policy: bool,
}

impl TokenEntry {
    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|policy| policy == "root")
    }

    pub fn is_expired(&self, now: i64) -> bool {
        self.expire_time.is_some_and(|expire| expire <= now)
    }

    /// Whole seconds left to live at `now_ms`; 0 for tokens that never expire. Counted in
    /// milliseconds because expiry is rounded to the nearest second: from whole seconds a
    /// fresh token could show one second more than it was given.
    pub fn ttl_remaining(&self, now_ms: i64) -> u64 {
        self.expire_time
            .map(|expire| (expire * 1000 - now_ms).max(0) as u64 / 1000)
            .unwrap_or(0)
    }
}

/// What a new token should be.
#[derive(Debug, Clone, Default)]
pub struct NewToken {
    /// A chosen ID (dev mode, `id` on create); otherwise random.
    pub id: Option<String>,
    pub policies: Vec<String>,
    pub parent_hash: Option<String>,
    pub path: String,
    pub display_name: String,
    pub meta: Map<String, Value>,
    /// Zero = never expires.
    pub ttl: Duration,
    pub explicit_max_ttl: Duration,
    pub period: Duration,
    pub backend_max_ttl: Duration,
    pub num_uses: i64,
    pub renewable: bool,
    pub bound_cidrs: Vec<String>,
    pub role: Option<String>,
    pub auth_mount: Option<String>,
    pub internal_data: Map<String, Value>,
    pub no_default_policy: bool,
}

impl NewToken {
    /// A root token (init, dev mode, generate-root): never expires.
    pub fn root(id: Option<String>) -> Self {
        NewToken {
            id,
            policies: vec!["root".to_owned()],
            path: "auth/token/root".to_owned(),
            display_name: "root".to_owned(),
            renewable: false,
            ..NewToken::default()
        }
    }
}

pub struct TokenStore {
    view: BarrierView,
    salt: hmac::Key,
    clock: Clock,
    /// Serialise read-modify-write of one token (use counts, renewal, deletion), so a write
    /// never resurrects a token another task just deleted.
    locks: Arc<KeyedLocks>,
    /// Decoded entries by hash. Every request looks its token up, and every change to an
    /// entry goes through this store, so the cache is kept exact rather than expiring. Entries
    /// are shared so a lookup does not copy them (a token may hold many policies).
    cache: std::sync::Mutex<Cache>,
}

/// Decoded entries plus a counter bumped by every eviction: a lookup that read storage
/// before an eviction must not cache what it read, or a revoked token could live on in the
/// cache.
#[derive(Default)]
struct Cache {
    entries: HashMap<String, Arc<TokenEntry>>,
    evictions: u64,
}

/// Beyond this many cached entries the cache starts over; lookups then refill it.
const CACHE_LIMIT: usize = 100_000;

const SALT_KEY: &str = "salt";

impl TokenStore {
    /// Opens the store, creating its HMAC salt on first use.
    pub async fn open(view: BarrierView, clock: Clock) -> Result<Self> {
        let salt = match view.get(SALT_KEY).await? {
            Some(salt) => salt,
            None => {
                let salt = random_bytes::<32>().to_vec();
                view.put(SALT_KEY, &salt).await?;
                salt
            }
        };
        Ok(TokenStore {
            view,
            salt: hmac::Key::new(hmac::HMAC_SHA256, &salt),
            clock,
            locks: KeyedLocks::new(),
            cache: std::sync::Mutex::new(Cache::default()),
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Serialises changes to one token's entry.
    pub(crate) async fn lock(&self, hash: &str) -> KeyGuard {
        self.locks.lock(hash).await
    }

    /// Caches an entry after the transaction that wrote it committed.
    pub(crate) fn remember(&self, entry: &TokenEntry) {
        let mut cache = self.cache();
        Self::insert(&mut cache, Arc::new(entry.clone()));
    }

    fn insert(cache: &mut Cache, entry: Arc<TokenEntry>) {
        if cache.entries.len() >= CACHE_LIMIT {
            cache.entries.clear();
        }
        cache.entries.insert(entry.id_hash.clone(), entry);
    }

    /// Drops a cached entry. Callers that delete or change a token forget it before and after
    /// the write commits.
    pub(crate) fn forget(&self, hash: &str) {
        let mut cache = self.cache();
        cache.evictions += 1;
        cache.entries.remove(hash);
    }

    /// Writes an entry and keeps the cache in step.
    async fn put_entry(&self, entry: &TokenEntry) -> Result<()> {
        // Forget first: if the write fails, the next lookup reads what storage really holds.
        self.forget(&entry.id_hash);
        self.view
            .put_json(&Self::id_key(&entry.id_hash), entry)
            .await?;
        self.remember(entry);
        Ok(())
    }

    /// Reads an entry from storage and caches it unless something was evicted meanwhile.
    async fn load(&self, hash: &str) -> Result<Option<Arc<TokenEntry>>> {
        let evictions = self.cache().evictions;
        let stored: Option<TokenEntry> = self.view.get_json(&Self::id_key(hash)).await?;
        let stored = stored.map(Arc::new);
        if let Some(entry) = &stored {
            let mut cache = self.cache();
            if cache.evictions == evictions {
                Self::insert(&mut cache, Arc::clone(entry));
            }
        }
        Ok(stored)
    }

    /// The storage identifier of a token: safe to store and to log.
    pub fn hash(&self, token: &str) -> String {
        format!("h{}", hex::encode(hmac::sign(&self.salt, token.as_bytes())))
    }

    fn id_key(hash: &str) -> String {
        format!("id/{hash}")
    }

    fn accessor_key(accessor: &str) -> String {
        format!("accessor/{accessor}")
    }

    fn parent_key(parent: &str, child: &str) -> String {
        format!("parent/{parent}/{child}")
    }

    /// Builds a new token's entry without writing anything; returns the token ID (shown
    /// once) and the entry. [`TokenStore::stage_create`] then writes it.
    pub async fn prepare(&self, new: NewToken) -> Result<(String, TokenEntry)> {
        let token = match new.id {
            Some(id) if !id.is_empty() => id,
            _ => format!(
                "{SERVICE_TOKEN_PREFIX}{}",
                random_base62(ROOT_TOKEN_LENGTH - SERVICE_TOKEN_PREFIX.len())
            ),
        };
        let hash = self.hash(&token);
        if self.view.get(&Self::id_key(&hash)).await?.is_some() {
            return Err(Error::invalid("cannot create a token with a duplicate ID"));
        }
        let now_ms = self.clock.unix_ms();
        let now = now_ms.div_euclid(1000);
        let mut policies = new.policies;
        policies.sort();
        policies.dedup();
        let entry = TokenEntry {
            version: 1,
            id_hash: hash,
            accessor: random_base62(24),
            parent_hash: new.parent_hash,
            policies,
            path: new.path,
            display_name: new.display_name,
            meta: new.meta,
            num_uses: new.num_uses,
            creation_time: now,
            creation_ttl: new.ttl.as_secs(),
            expire_time: (!new.ttl.is_zero()).then(|| crate::clock::expiry_secs(now_ms, new.ttl)),
            last_renewal: None,
            explicit_max_ttl: new.explicit_max_ttl.as_secs(),
            period: new.period.as_secs(),
            backend_max_ttl: new.backend_max_ttl.as_secs(),
            renewable: new.renewable,
            bound_cidrs: new.bound_cidrs,
            role: new.role,
            auth_mount: new.auth_mount,
            internal_data: new.internal_data,
            no_default_policy: new.no_default_policy,
        };
        Ok((token, entry))
    }

    /// Stages the writes that create `entry`: the entry and its accessor and parent indexes.
    pub(crate) fn stage_create(&self, entry: &TokenEntry, txn: &mut Txn) -> Result<()> {
        if let Some(parent) = &entry.parent_hash {
            txn.put(
                &self.view,
                &Self::parent_key(parent, &entry.id_hash),
                Vec::new(),
            )?;
        }
        txn.put_json(
            &self.view,
            &Self::accessor_key(&entry.accessor),
            &entry.id_hash,
        )?;
        txn.put_json(&self.view, &Self::id_key(&entry.id_hash), entry)
    }

    /// Stages an update of an existing entry (renewal).
    pub(crate) fn stage_update(&self, entry: &TokenEntry, txn: &mut Txn) -> Result<()> {
        txn.put_json(&self.view, &Self::id_key(&entry.id_hash), entry)
    }

    /// Stages the deletion of a token and its indexes. `parent` names the parent link to
    /// remove even when the entry itself is already gone, so a half-deleted tree still
    /// shrinks.
    pub(crate) fn stage_delete(
        &self,
        hash: &str,
        entry: Option<&TokenEntry>,
        parent: Option<&str>,
        txn: &mut Txn,
    ) -> Result<()> {
        txn.delete(&self.view, &Self::id_key(hash))?;
        if let Some(entry) = entry {
            txn.delete(&self.view, &Self::accessor_key(&entry.accessor))?;
            if let Some(parent) = &entry.parent_hash {
                txn.delete(&self.view, &Self::parent_key(parent, hash))?;
            }
        }
        if let Some(parent) = parent {
            txn.delete(&self.view, &Self::parent_key(parent, hash))?;
        }
        Ok(())
    }

    /// A stored entry whether or not it has expired: what revocation works from.
    pub(crate) async fn entry_any(&self, hash: &str) -> Result<Option<TokenEntry>> {
        if let Some(entry) = self.cache().entries.get(hash).cloned() {
            return Ok(Some(Arc::unwrap_or_clone(entry)));
        }
        Ok(self.load(hash).await?.map(Arc::unwrap_or_clone))
    }

    /// Up to `limit` children of a token after `after`, in key order.
    pub(crate) async fn children_page(
        &self,
        hash: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<String>> {
        self.view
            .list_page(&format!("parent/{hash}/"), after, limit)
            .await
    }

    /// Turns a token's children into orphans (before the token itself is revoked alone).
    pub(crate) async fn orphan_children(&self, hash: &str) -> Result<()> {
        loop {
            let children = self.children_page(hash, "", 256).await?;
            if children.is_empty() {
                return Ok(());
            }
            for child in children {
                let _guard = self.lock(&child).await;
                let mut txn = Txn::new();
                let stored: Option<TokenEntry> = self.view.get_json(&Self::id_key(&child)).await?;
                if let Some(mut entry) = stored {
                    entry.parent_hash = None;
                    self.stage_update(&entry, &mut txn)?;
                }
                txn.delete(&self.view, &Self::parent_key(hash, &child))?;
                self.forget(&child);
                txn.commit(self.view.barrier()).await?;
                self.forget(&child);
            }
        }
    }

    /// A live token's entry; expired tokens are not live. A token whose last use is being
    /// spent stays visible to the request spending it; [`TokenStore::spend_use`] refuses it
    /// to every other request.
    pub async fn lookup(&self, token: &str) -> Result<Option<TokenEntry>> {
        self.lookup_hash(&self.hash(token)).await
    }

    pub async fn lookup_hash(&self, hash: &str) -> Result<Option<TokenEntry>> {
        Ok(self
            .lookup_hash_shared(hash)
            .await?
            .map(Arc::unwrap_or_clone))
    }

    /// [`TokenStore::lookup`] without copying the entry, for the request pipeline.
    pub async fn lookup_shared(&self, token: &str) -> Result<Option<Arc<TokenEntry>>> {
        self.lookup_hash_shared(&self.hash(token)).await
    }

    pub async fn lookup_hash_shared(&self, hash: &str) -> Result<Option<Arc<TokenEntry>>> {
        let cached = self.cache().entries.get(hash).cloned();
        let entry = match cached {
            Some(entry) => Some(entry),
            None => self.load(hash).await?,
        };
        Ok(entry.filter(|entry| !entry.is_expired(self.clock.unix_secs())))
    }

    pub async fn lookup_accessor(&self, accessor: &str) -> Result<Option<TokenEntry>> {
        let hash: Option<String> = self.view.get_json(&Self::accessor_key(accessor)).await?;
        match hash {
            Some(hash) => self.lookup_hash(&hash).await,
            None => Ok(None),
        }
    }

    /// Counts one use of a use-limited token. Returns `false` when the token has no use
    /// left (the request must be refused) and `Some(true)`-like `last` when this was the last.
    pub async fn spend_use(&self, hash: &str) -> Result<UseOutcome> {
        let _guard = self.lock(hash).await;
        let Some(mut entry) = self.lookup_hash(hash).await? else {
            return Ok(UseOutcome::Invalid);
        };
        match entry.num_uses {
            0 => Ok(UseOutcome::Unlimited),
            1 => {
                entry.num_uses = -1;
                self.put_entry(&entry).await?;
                Ok(UseOutcome::LastUse)
            }
            n if n > 1 => {
                entry.num_uses = n - 1;
                self.put_entry(&entry).await?;
                Ok(UseOutcome::Counted)
            }
            _ => Ok(UseOutcome::Invalid),
        }
    }

    /// Every accessor, for `auth/token/accessors`.
    pub async fn accessors(&self) -> Result<Vec<String>> {
        self.view.list("accessor/").await
    }

    /// Removes index entries that point at tokens which no longer exist.
    pub async fn tidy(&self) -> Result<TidyReport> {
        let mut report = TidyReport::default();
        for accessor in self.view.list("accessor/").await? {
            let key = Self::accessor_key(&accessor);
            let hash: Option<String> = self.view.get_json(&key).await?;
            let live = match &hash {
                Some(hash) => self.view.get(&Self::id_key(hash)).await?.is_some(),
                None => false,
            };
            if !live {
                self.view.delete(&key).await?;
                report.accessors += 1;
            }
        }
        for parent in self.view.list("parent/").await? {
            let parent = parent.trim_end_matches('/');
            let parent_live = self.view.get(&Self::id_key(parent)).await?.is_some();
            for child in self.view.list(&format!("parent/{parent}/")).await? {
                let child_live = self.view.get(&Self::id_key(&child)).await?.is_some();
                if !parent_live || !child_live {
                    self.view.delete(&Self::parent_key(parent, &child)).await?;
                    report.parent_links += 1;
                }
            }
        }
        Ok(report)
    }

    pub async fn role(&self, name: &str) -> Result<Option<TokenRole>> {
        self.view.get_json(&format!("roles/{name}")).await
    }

    pub async fn put_role(&self, role: &TokenRole) -> Result<()> {
        self.view
            .put_json(&format!("roles/{}", role.name), role)
            .await
    }

    pub async fn delete_role(&self, name: &str) -> Result<()> {
        self.view.delete(&format!("roles/{name}")).await
    }

    pub async fn role_names(&self) -> Result<Vec<String>> {
        self.view.list("roles/").await
    }
}

/// The outcome of counting a use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UseOutcome {
    Unlimited,
    Counted,
    /// This request is the token's last; revoke it afterwards.
    LastUse,
    Invalid,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct TidyReport {
    pub accessors: usize,
    pub parent_links: usize,
}

/// Vault's `display_name` cleaning: anything but letters, digits and `-` becomes `-`.
pub fn sanitize_display_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Sorted policy list with `default` added unless suppressed; root tokens get only `root`.
pub fn finalize_policies(mut policies: Vec<String>, no_default_policy: bool) -> Vec<String> {
    policies.retain(|policy| !policy.is_empty());
    if policies.iter().any(|policy| policy == "root") {
        return vec!["root".to_owned()];
    }
    if !no_default_policy && !policies.iter().any(|policy| policy == "default") {
        policies.push("default".to_owned());
    }
    policies.sort();
    policies.dedup();
    policies
}

/// Lookup output shared by `lookup`, `lookup-self` and `lookup-accessor`.
pub fn lookup_data(token_id: &str, entry: &TokenEntry, now_ms: i64) -> Map<String, Value> {
    let rfc = |unix: i64| -> Value {
        time::OffsetDateTime::from_unix_timestamp(unix)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .map(Value::String)
            .unwrap_or(Value::Null)
    };
    let mut data: BTreeMap<&str, Value> = BTreeMap::new();
    data.insert("accessor", entry.accessor.clone().into());
    data.insert("creation_time", entry.creation_time.into());
    data.insert("creation_ttl", entry.creation_ttl.into());
    data.insert("display_name", entry.display_name.clone().into());
    data.insert("entity_id", "".into());
    data.insert(
        "expire_time",
        entry.expire_time.map(rfc).unwrap_or(Value::Null),
    );
    data.insert("explicit_max_ttl", entry.explicit_max_ttl.into());
    data.insert("id", token_id.into());
    data.insert("issue_time", rfc(entry.creation_time));
    data.insert(
        "meta",
        if entry.meta.is_empty() {
            Value::Null
        } else {
            Value::Object(entry.meta.clone())
        },
    );
    data.insert("num_uses", entry.num_uses.max(0).into());
    data.insert("orphan", entry.parent_hash.is_none().into());
    data.insert("path", entry.path.clone().into());
    data.insert("policies", entry.policies.clone().into());
    data.insert("renewable", entry.renewable.into());
    data.insert("ttl", entry.ttl_remaining(now_ms).into());
    data.insert("type", "service".into());
    if let Some(last) = entry.last_renewal {
        data.insert("last_renewal", rfc(last));
        data.insert("last_renewal_time", last.into());
    }
    if entry.period > 0 {
        data.insert("period", entry.period.into());
    }
    if let Some(role) = &entry.role {
        data.insert("role", role.clone().into());
    }
    if !entry.bound_cidrs.is_empty() {
        data.insert("bound_cidrs", entry.bound_cidrs.clone().into());
    }
    data.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[cfg(test)]
mod tests;
