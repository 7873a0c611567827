//! What an engine may ask of the server it runs in, without linking the core: today,
//! passwords generated from the server's password policies.

use std::{collections::BTreeMap, sync::Mutex};

use async_trait::async_trait;

use crate::{
    error::{Error, Result},
    password::PasswordPolicy,
};

/// Services the core offers to engines (Vault's `logical.SystemView`). The router puts one on
/// every request and hands one to [`crate::LogicalBackend::initialize`].
#[async_trait]
pub trait SystemView: Send + Sync {
    /// A password from the named policy (`sys/policies/password/:name`), or from Vault's
    /// default policy when `policy` is `None` or empty. An unknown policy is an invalid request.
    async fn generate_password(&self, policy: Option<&str>) -> Result<String>;
}

/// A [`SystemView`] for engine tests: policies live in memory.
#[derive(Debug, Default)]
pub struct StaticSystemView {
    policies: Mutex<BTreeMap<String, PasswordPolicy>>,
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
}

#[async_trait]
impl SystemView for StaticSystemView {
    async fn generate_password(&self, policy: Option<&str>) -> Result<String> {
        let chosen = match policy.filter(|name| !name.is_empty()) {
            None => PasswordPolicy::vault_default(),
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
}
