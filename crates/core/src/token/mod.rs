//! The token store: issues, looks up, uses up, renews and revokes client tokens.
//!
//! Tokens are stored under a salted HMAC of their ID (`h<hex>`), never under the ID itself,
//! with secondary indexes by accessor, by parent (for tree revocation) and by expiry time.

mod backend;
mod roles;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, SystemTime},
};

use aws_lc_rs::hmac;
use mayfly_barrier::BarrierOp;
use mayfly_sdk::{Error, Result, Storage, StorageExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    random::{random_base62, random_bytes},
    view::BarrierView,
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

    /// Seconds left to live; 0 for tokens that never expire.
    pub fn ttl_remaining(&self, now: i64) -> u64 {
        self.expire_time
            .map(|expire| (expire - now).max(0) as u64)
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

pub struct TokenStore {
    view: BarrierView,
    salt: hmac::Key,
    /// Serialises read-modify-write of use counts and renewals.
    updates: tokio::sync::Mutex<()>,
    /// Decoded entries by hash. Every request looks its token up, and every change to an
    /// entry goes through this store, so the cache is kept exact rather than expiring. Entries
    /// are shared so a lookup does not copy them (a token may hold many policies).
    cache: std::sync::Mutex<HashMap<String, Arc<TokenEntry>>>,
}

/// Beyond this many cached entries the cache starts over; lookups then refill it.
const CACHE_LIMIT: usize = 100_000;

const SALT_KEY: &str = "salt";

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn expiry_key(expire_time: i64, hash: &str) -> String {
    format!("expire/{expire_time:020}-{hash}")
}

impl TokenStore {
    /// Opens the store, creating its HMAC salt on first use.
    pub async fn open(view: BarrierView) -> Result<Self> {
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
            updates: tokio::sync::Mutex::new(()),
            cache: std::sync::Mutex::new(HashMap::new()),
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<TokenEntry>>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn remember(&self, entry: Arc<TokenEntry>) {
        let mut cache = self.cache();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(entry.id_hash.clone(), entry);
    }

    fn forget(&self, hash: &str) {
        self.cache().remove(hash);
    }

    /// Writes an entry and keeps the cache in step.
    async fn put_entry(&self, entry: &TokenEntry) -> Result<()> {
        // Forget first: if the write fails, the next lookup reads what storage really holds.
        self.forget(&entry.id_hash);
        self.view
            .put_json(&Self::id_key(&entry.id_hash), entry)
            .await?;
        self.remember(Arc::new(entry.clone()));
        Ok(())
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

    /// Creates and persists a token; returns the token ID (shown once) and its entry.
    pub async fn create(&self, new: NewToken) -> Result<(String, TokenEntry)> {
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
        let now = unix_now();
        let mut policies = new.policies;
        policies.sort();
        policies.dedup();
        let entry = TokenEntry {
            version: 1,
            id_hash: hash.clone(),
            accessor: random_base62(24),
            parent_hash: new.parent_hash,
            policies,
            path: new.path,
            display_name: new.display_name,
            meta: new.meta,
            num_uses: new.num_uses,
            creation_time: now,
            creation_ttl: new.ttl.as_secs(),
            expire_time: (!new.ttl.is_zero()).then(|| now + new.ttl.as_secs() as i64),
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
        // The entry and its indexes go in one transaction, so one commit (one fsync) makes the
        // token durable, and there is never a live token without its indexes.
        let mut ops = Vec::with_capacity(4);
        if let Some(parent) = &entry.parent_hash {
            ops.push(BarrierOp::Put {
                key: Self::parent_key(parent, &hash),
                value: Vec::new(),
            });
        }
        if let Some(expire) = entry.expire_time {
            ops.push(BarrierOp::Put {
                key: expiry_key(expire, &hash),
                value: Vec::new(),
            });
        }
        let accessor_key = Self::accessor_key(&entry.accessor);
        ops.push(BarrierOp::Put {
            value: encode(&accessor_key, &hash)?,
            key: accessor_key,
        });
        let id_key = Self::id_key(&hash);
        ops.push(BarrierOp::Put {
            value: encode(&id_key, &entry)?,
            key: id_key,
        });
        let entry = Arc::new(entry);
        // Forget first: if the write fails, the next lookup reads what storage really holds.
        self.forget(&hash);
        self.view.transaction(ops).await?;
        self.remember(Arc::clone(&entry));
        Ok((token, Arc::unwrap_or_clone(entry)))
    }

    /// Creates a root token (init, dev mode, generate-root).
    pub async fn create_root(&self, id: Option<String>) -> Result<(String, TokenEntry)> {
        self.create(NewToken {
            id,
            policies: vec!["root".to_owned()],
            path: "auth/token/root".to_owned(),
            display_name: "root".to_owned(),
            renewable: false,
            ..NewToken::default()
        })
        .await
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
        let cached = self.cache().get(hash).cloned();
        let entry = match cached {
            Some(entry) => Some(entry),
            None => {
                let stored: Option<TokenEntry> = self.view.get_json(&Self::id_key(hash)).await?;
                stored.map(|entry| {
                    let entry = Arc::new(entry);
                    self.remember(Arc::clone(&entry));
                    entry
                })
            }
        };
        Ok(entry.filter(|entry| !entry.is_expired(unix_now())))
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
        let _guard = self.updates.lock().await;
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

    /// Persists a renewed entry, moving its expiry index.
    pub async fn save_renewal(&self, old: &TokenEntry, renewed: &TokenEntry) -> Result<()> {
        let _guard = self.updates.lock().await;
        if let Some(expire) = renewed.expire_time {
            self.view
                .put(&expiry_key(expire, &renewed.id_hash), b"")
                .await?;
        }
        self.put_entry(renewed).await?;
        if let Some(expire) = old.expire_time
            && Some(expire) != renewed.expire_time
        {
            self.view.delete(&expiry_key(expire, &old.id_hash)).await?;
        }
        Ok(())
    }

    /// Revokes a token and every descendant, depth first. Returns the hashes revoked, so the
    /// caller can clean up what hangs off them (cubbyholes, leases). Unknown → nothing.
    pub async fn revoke_tree(&self, hash: &str) -> Result<Vec<String>> {
        let mut revoked = Vec::new();
        // An explicit stack instead of recursion: trees can be deep.
        let mut stack = vec![(hash.to_owned(), false)];
        while let Some((current, children_done)) = stack.pop() {
            if children_done {
                self.delete_one(&current).await?;
                revoked.push(current);
                continue;
            }
            stack.push((current.clone(), true));
            for child in self.view.list(&format!("parent/{current}/")).await? {
                stack.push((child.trim_end_matches('/').to_owned(), false));
            }
        }
        Ok(revoked)
    }

    /// Revokes one token; its children become orphans.
    pub async fn revoke_orphan(&self, hash: &str) -> Result<Vec<String>> {
        for child in self.view.list(&format!("parent/{hash}/")).await? {
            let child_key = Self::id_key(&child);
            if let Some(mut entry) = self.view.get_json::<TokenEntry>(&child_key).await? {
                entry.parent_hash = None;
                self.put_entry(&entry).await?;
            }
            self.view.delete(&Self::parent_key(hash, &child)).await?;
        }
        self.delete_one(hash).await?;
        Ok(vec![hash.to_owned()])
    }

    async fn delete_one(&self, hash: &str) -> Result<()> {
        let entry: Option<TokenEntry> = self.view.get_json(&Self::id_key(hash)).await?;
        // The entry goes first, so a crash half-way leaves only dangling indexes, which
        // `tidy` removes; never a live token without its indexes.
        self.forget(hash);
        self.view.delete(&Self::id_key(hash)).await?;
        if let Some(entry) = entry {
            self.view
                .delete(&Self::accessor_key(&entry.accessor))
                .await?;
            if let Some(parent) = &entry.parent_hash {
                self.view.delete(&Self::parent_key(parent, hash)).await?;
            }
            if let Some(expire) = entry.expire_time {
                self.view.delete(&expiry_key(expire, hash)).await?;
            }
        }
        Ok(())
    }

    /// Hashes of tokens whose expiry time has passed, oldest first, at most `limit`.
    pub async fn expired(&self, now: i64, limit: usize) -> Result<Vec<String>> {
        let mut due = Vec::new();
        for key in self.view.list_page("expire/", "", limit).await? {
            let Some((time, hash)) = key.split_once('-') else {
                continue;
            };
            match time.parse::<i64>() {
                Ok(time) if time <= now => due.push(hash.to_owned()),
                _ => break,
            }
        }
        Ok(due)
    }

    /// Hashes of tokens created under a path prefix (`auth/approle/`), for revoking
    /// everything an auth mount issued.
    pub async fn hashes_with_path_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let mut found = Vec::new();
        let mut after = String::new();
        loop {
            let page = self.view.list_page("id/", &after, 1000).await?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            for hash in page {
                let entry: Option<TokenEntry> = self.view.get_json(&Self::id_key(&hash)).await?;
                if entry.is_some_and(|entry| entry.path.starts_with(prefix)) {
                    found.push(hash);
                }
            }
            after = last;
        }
        Ok(found)
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

/// A value as [`StorageExt::put_json`] would store it.
fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value)
        .map_err(|err| Error::internal(format!("cannot encode entry {key:?}: {err}")))
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
pub fn lookup_data(token_id: &str, entry: &TokenEntry) -> Map<String, Value> {
    let now = unix_now();
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
    data.insert("ttl", entry.ttl_remaining(now).into());
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
