//! Stored ACL policies and the cache of compiled ACLs per policy set.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use mayfly_sdk::{Error, Result, Storage, StorageExt};
use serde::{Deserialize, Serialize};

use crate::{
    policy::{Acl, DEFAULT_POLICY, Policy, parse_policy},
    view::BarrierView,
};

/// The policy every response-wrapping token gets: it can read its own cubbyhole response and
/// unwrap, nothing else.
const RESPONSE_WRAPPING_POLICY: &str = r#"
path "cubbyhole/response" {
  capabilities = ["create", "read"]
}

path "sys/wrapping/unwrap" {
  capabilities = ["update"]
}
"#;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredPolicy {
    version: u32,
    name: String,
    policy: String,
}

/// Policies live at `sys/policy/<name>` in the barrier; compiled ACLs are cached per sorted
/// policy set and the whole cache is dropped on any policy change.
pub struct PolicyStore {
    view: BarrierView,
    policies: Mutex<HashMap<String, Option<Arc<Policy>>>>,
    acls: Mutex<HashMap<Vec<String>, Arc<Acl>>>,
    changes: tokio::sync::Mutex<()>,
}

/// Names that cannot be written or deleted through the API.
fn is_immutable(name: &str) -> bool {
    matches!(name, "root" | "response-wrapping")
}

impl PolicyStore {
    pub async fn open(view: BarrierView) -> Result<Self> {
        let store = PolicyStore {
            view,
            policies: Mutex::new(HashMap::new()),
            acls: Mutex::new(HashMap::new()),
            changes: tokio::sync::Mutex::new(()),
        };
        if store.view.get("default").await?.is_none() {
            store.save("default", DEFAULT_POLICY).await?;
        }
        Ok(store)
    }

    fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        mutex
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn save(&self, name: &str, text: &str) -> Result<()> {
        self.view
            .put_json(
                name,
                &StoredPolicy {
                    version: 1,
                    name: name.to_owned(),
                    policy: text.to_owned(),
                },
            )
            .await
    }

    /// Parses, validates and stores a policy. A policy that does not parse changes nothing.
    pub async fn put(&self, name: &str, text: &str) -> Result<()> {
        let name = name.to_lowercase();
        if is_immutable(&name) {
            return Err(Error::invalid(format!("cannot update {name} policy")));
        }
        parse_policy(&name, text).map_err(|err| Error::invalid(err.to_string()))?;
        let _guard = self.changes.lock().await;
        self.save(&name, text).await?;
        self.invalidate();
        Ok(())
    }

    pub async fn delete(&self, name: &str) -> Result<()> {
        let name = name.to_lowercase();
        if is_immutable(&name) || name == "default" {
            return Err(Error::invalid(format!("cannot delete {name} policy")));
        }
        let _guard = self.changes.lock().await;
        self.view.delete(&name).await?;
        self.invalidate();
        Ok(())
    }

    fn invalidate(&self) {
        Self::lock(&self.policies).clear();
        Self::lock(&self.acls).clear();
    }

    /// The raw text of a policy, as written.
    pub async fn text(&self, name: &str) -> Result<Option<String>> {
        let name = name.to_lowercase();
        if name == "response-wrapping" {
            return Ok(Some(RESPONSE_WRAPPING_POLICY.to_owned()));
        }
        let stored: Option<StoredPolicy> = self.view.get_json(&name).await?;
        Ok(stored.map(|stored| stored.policy))
    }

    pub async fn names(&self) -> Result<Vec<String>> {
        let mut names = self.view.list("").await?;
        names.push("root".to_owned());
        names.sort();
        Ok(names)
    }

    async fn policy(&self, name: &str) -> Result<Option<Arc<Policy>>> {
        if let Some(cached) = Self::lock(&self.policies).get(name) {
            return Ok(cached.clone());
        }
        let parsed = match self.text(name).await? {
            Some(text) => Some(Arc::new(parse_policy(name, &text).map_err(|err| {
                Error::internal(format!("stored policy {name:?} does not parse: {err}"))
            })?)),
            None => None,
        };
        Self::lock(&self.policies).insert(name.to_owned(), parsed.clone());
        Ok(parsed)
    }

    pub async fn exists(&self, name: &str) -> Result<bool> {
        Ok(name == "root" || self.policy(name).await?.is_some())
    }

    /// The compiled ACL of a set of policy names; unknown names contribute nothing.
    pub async fn acl(&self, names: &[String]) -> Result<Arc<Acl>> {
        // Token entries hold their policies sorted and deduplicated: then the names are the
        // cache key as they are, and a hit copies nothing (a token may hold many policies).
        if names.windows(2).all(|pair| pair[0] < pair[1])
            && let Some(acl) = Self::lock(&self.acls).get(names)
        {
            return Ok(acl.clone());
        }
        let mut key: Vec<String> = names.to_vec();
        key.sort();
        key.dedup();
        if let Some(acl) = Self::lock(&self.acls).get(&key) {
            return Ok(acl.clone());
        }
        let mut policies = Vec::with_capacity(key.len());
        let mut root = false;
        for name in &key {
            if name == "root" {
                root = true;
            } else if let Some(policy) = self.policy(name).await? {
                policies.push(policy);
            }
        }
        let acl = Arc::new(if root {
            Acl::new(&[Arc::new(Policy::root())])
        } else {
            Acl::new(&policies)
        });
        Self::lock(&self.acls).insert(key, acl.clone());
        Ok(acl)
    }
}

#[cfg(test)]
mod tests {
    use mayfly_barrier::{Barrier, ShamirSeal};
    use mayfly_sdk::Operation;
    use serde_json::Map;

    use super::*;
    use crate::policy::AclRequest;

    async fn store() -> PolicyStore {
        let physical: Arc<dyn mayfly_storage::Backend> =
            Arc::new(mayfly_storage::InmemBackend::new());
        let barrier = Arc::new(Barrier::new(physical.clone()));
        let seal = ShamirSeal::new(physical, barrier.clone());
        let init = seal.initialize(1, 1).await.unwrap();
        seal.submit_unseal_key(&init.keys[0]).await.unwrap();
        PolicyStore::open(BarrierView::new(barrier, "sys/policy/"))
            .await
            .unwrap()
    }

    fn reads(acl: &Acl, path: &str) -> bool {
        acl.allows(&AclRequest {
            path,
            operation: Operation::Read,
            data: &Map::new(),
            wrap_ttl: None,
        })
        .allowed
    }

    #[tokio::test]
    async fn compiled_acls_are_cached_per_policy_set_whatever_the_order() {
        let store = store().await;
        store
            .put("a", r#"path "a/*" { capabilities = ["read"] }"#)
            .await
            .unwrap();
        store
            .put("b", r#"path "b/*" { capabilities = ["read"] }"#)
            .await
            .unwrap();
        let names = |list: &[&str]| list.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let sorted = store.acl(&names(&["a", "b"])).await.unwrap();
        assert!(reads(&sorted, "a/x") && reads(&sorted, "b/x") && !reads(&sorted, "c/x"));
        let unsorted = store.acl(&names(&["b", "a", "b"])).await.unwrap();
        assert!(Arc::ptr_eq(&sorted, &unsorted));
        assert!(Arc::ptr_eq(
            &sorted,
            &store.acl(&names(&["a", "b"])).await.unwrap()
        ));

        // A policy change drops the compiled ACLs that used it.
        store
            .put("a", r#"path "a/*" { capabilities = ["deny"] }"#)
            .await
            .unwrap();
        let changed = store.acl(&names(&["a", "b"])).await.unwrap();
        assert!(!Arc::ptr_eq(&sorted, &changed));
        assert!(!reads(&changed, "a/x") && reads(&changed, "b/x"));
    }
}
