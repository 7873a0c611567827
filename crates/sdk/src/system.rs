//! What an engine may ask of the server it runs in, without linking the core: passwords
//! generated from the server's password policies, and leases registered before the secret
//! they stand for exists.

use std::{collections::BTreeMap, sync::Mutex};

use async_trait::async_trait;

use crate::{
    error::{Error, Result},
    logical::{Request, SecretLease},
    password::PasswordPolicy,
};

/// Services the core offers to engines (Vault's `logical.SystemView`). The router puts one on
/// every request and hands one to [`crate::LogicalBackend::initialize`].
#[async_trait]
pub trait SystemView: Send + Sync {
    /// A password from the named policy (`sys/policies/password/:name`), or from Vault's
    /// default policy when `policy` is `None` or empty. An unknown policy is an invalid request.
    async fn generate_password(&self, policy: Option<&str>) -> Result<String>;

    /// Registers the lease of `secret`, issued for `req`, now instead of when the response
    /// comes back: an engine that registers before it creates what the lease stands for
    /// never leaves it without one, even if the process dies in between. Fills in `lease_id`
    /// and the granted `ttl`, commits `commit_with_lease` with the lease, and returns TTL
    /// warnings. A response whose secret already has a lease ID is not registered again.
    async fn register_lease(&self, req: &Request, secret: &mut SecretLease) -> Result<Vec<String>>;

    /// Revokes a lease registered early whose secret could not be created. The secret
    /// type's revoke handler runs, so it must accept a secret that never came to exist; if
    /// it fails, the lease stays, due, for the expiry worker to retry.
    async fn revoke_lease(&self, lease_id: &str) -> Result<()>;
}

/// A [`SystemView`] for engine tests: policies live in memory.
/// Leases are only named: `register_lease` leaves `commit_with_lease` for the test to apply,
/// and `revoke_lease` records the ID (see [`StaticSystemView::revoked_leases`]).
#[derive(Debug, Default)]
pub struct StaticSystemView {
    policies: Mutex<BTreeMap<String, PasswordPolicy>>,
    registered: Mutex<u64>,
    revoked: Mutex<Vec<String>>,
}

impl StaticSystemView {
    pub fn new() -> Self {
        StaticSystemView::default()
    }

    pub fn with_policy(self, name: &str, policy: PasswordPolicy) -> Self {
        self.policies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned(), policy);
        self
    }

    /// The leases `revoke_lease` was asked to revoke, in order.
    pub fn revoked_leases(&self) -> Vec<String> {
        self.revoked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl SystemView for StaticSystemView {
    async fn generate_password(&self, policy: Option<&str>) -> Result<String> {
        let chosen = match policy.filter(|name| !name.is_empty()) {
            None => PasswordPolicy::vault_default().clone(),
            Some(name) => self
                .policies
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(name)
                .cloned()
                .ok_or_else(|| {
                    Error::invalid(format!("password policy {name:?} does not exist"))
                })?,
        };
        chosen.generate().map_err(Error::internal)
    }

    async fn register_lease(&self, req: &Request, secret: &mut SecretLease) -> Result<Vec<String>> {
        let mut registered = self
            .registered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *registered += 1;
        secret.lease_id = format!("{}/static-{registered}", req.path.trim_end_matches('/'));
        Ok(Vec::new())
    }

    async fn revoke_lease(&self, lease_id: &str) -> Result<()> {
        self.revoked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(lease_id.to_owned());
        Ok(())
    }
}
