//! The services the core offers engines (`SystemView`): passwords from the server's policies,
//! and leases an engine registers before it creates what they stand for.

use std::sync::Weak;

use async_trait::async_trait;
use mayfly_sdk::{Error, Request, Result, SecretLease, SystemView};

use crate::{Core, expiration::Mode, sys::password_policies::generate_from};

/// The core's services as engines see them. Holds the core weakly: engines live inside the
/// core's mount table.
pub(crate) struct CoreSystemView {
    pub(crate) core: Weak<Core>,
}

#[async_trait]
impl SystemView for CoreSystemView {
    async fn generate_password(&self, policy: Option<&str>) -> Result<String> {
        let core = self.core.upgrade().ok_or(Error::Sealed)?;
        generate_from(&core, policy).await.map_err(|err| match err {
            Error::Coded { status: 404, .. } => Error::invalid(format!(
                "password policy {:?} does not exist",
                policy.unwrap_or_default()
            )),
            other => other,
        })
    }

    async fn register_lease(&self, req: &Request, secret: &mut SecretLease) -> Result<Vec<String>> {
        let core = self.core.upgrade().ok_or(Error::Sealed)?;
        let route = core
            .unsealed()?
            .mounts
            .router()
            .get(&req.mount_point)
            .cloned()
            .ok_or_else(|| Error::internal(format!("no mount at {:?}", req.mount_point)))?;
        core.register_secret(&route, &req.path, req.client_token_hash.as_deref(), secret)
            .await
    }

    async fn revoke_lease(&self, lease_id: &str) -> Result<()> {
        let core = self.core.upgrade().ok_or(Error::Sealed)?;
        core.revoke_lease(lease_id, Mode::Worker).await
    }
}
