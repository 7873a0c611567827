//! Token lifecycle on the core: who is calling, issuing tokens (also from logins), renewing
//! them through their auth method, and revoking them with everything that hangs off them.

use std::time::{Duration, SystemTime};

use mayfly_sdk::{
    Auth, Error, MountTtls, Request, Result,
    ttl::{TtlRequest, calculate_ttl},
};

use crate::{
    Core,
    mounts::delete_tree,
    token::{NewToken, TokenEntry, finalize_policies, sanitize_display_name},
};

impl Core {
    /// The system-wide TTL bounds from the server config.
    pub fn system_ttls(&self) -> MountTtls {
        MountTtls {
            default_lease_ttl: self.config.default_lease_ttl,
            max_lease_ttl: self.config.max_lease_ttl,
        }
    }

    /// Effective TTL bounds of a mount (system values when it is unknown).
    pub fn mount_ttls(&self, mount_path: &str) -> MountTtls {
        let system = self.system_ttls();
        self.unsealed()
            .ok()
            .and_then(|unsealed| {
                unsealed
                    .mounts
                    .router()
                    .get(mount_path)
                    .map(|route| route.entry.ttls(system))
            })
            .unwrap_or(system)
    }

    /// The calling token's entry; the pipeline has already checked it is valid.
    pub async fn caller(&self, req: &Request) -> Result<TokenEntry> {
        let hash = req
            .client_token_hash
            .as_deref()
            .ok_or(Error::PermissionDenied)?;
        self.unsealed()?
            .tokens
            .lookup_hash(hash)
            .await?
            .ok_or(Error::InvalidToken)
    }

    /// Warnings for policies that do not exist, as Vault gives on token creation.
    pub async fn missing_policy_warnings(&self, policies: &[String]) -> Result<Vec<String>> {
        let store = &self.unsealed()?.policies;
        let mut warnings = Vec::new();
        for policy in policies {
            if !store.exists(policy).await? {
                warnings.push(format!("Policy {policy:?} does not exist"));
            }
        }
        Ok(warnings)
    }

    /// Creates the token a login response asked for; fills in the token fields of `auth`.
    pub(crate) async fn complete_login(
        &self,
        mount_path: &str,
        login_path: &str,
        auth: &mut Auth,
    ) -> Result<Vec<String>> {
        let ttls = self.mount_ttls(mount_path);
        let now = self.clock.now();
        let decision = calculate_ttl(
            ttls,
            TtlRequest {
                backend_ttl: auth.ttl,
                backend_max_ttl: auth.max_ttl,
                period: auth.period,
                explicit_max_ttl: auth.explicit_max_ttl,
                ..TtlRequest::issued_at(now)
            },
            now,
        )?;
        // Auth methods name their tokens themselves (`approle`, `userpass-alice`).
        let display_name = if auth.display_name.is_empty() {
            mount_path
                .trim_start_matches("auth/")
                .trim_end_matches('/')
                .replace('/', "-")
        } else {
            sanitize_display_name(&auth.display_name)
        };
        let mut requested = auth.policies.clone();
        requested.extend(auth.token_policies.iter().cloned());
        let policies = finalize_policies(requested, auth.no_default_policy);
        if policies.iter().any(|policy| policy == "root") {
            return Err(Error::PermissionDenied);
        }
        let metadata = auth.metadata.clone().unwrap_or_default();
        let (token, entry) = self
            .issue_token(NewToken {
                policies: policies.clone(),
                path: login_path.to_owned(),
                display_name: display_name.clone(),
                meta: metadata,
                ttl: decision.ttl,
                explicit_max_ttl: auth.explicit_max_ttl,
                period: auth.period,
                backend_max_ttl: auth.max_ttl,
                num_uses: auth.num_uses as i64,
                renewable: auth.renewable || auth.ttl.is_zero(),
                bound_cidrs: auth.bound_cidrs.clone(),
                auth_mount: Some(mount_path.to_owned()),
                internal_data: auth.internal_data.clone(),
                no_default_policy: auth.no_default_policy,
                ..NewToken::default()
            })
            .await?;
        auth.client_token = token;
        auth.accessor = entry.accessor.clone();
        auth.display_name = display_name;
        auth.policies = policies.clone();
        auth.token_policies = policies;
        auth.lease_duration = decision.ttl;
        auth.renewable = entry.renewable;
        auth.orphan = true;
        auth.token_type = "service".to_owned();
        let mut warnings = decision.warnings;
        warnings.extend(self.missing_policy_warnings(&auth.token_policies).await?);
        Ok(warnings)
    }

    /// Renews a token, asking the auth method that issued it first. Returns the saved entry,
    /// the granted TTL and any warnings.
    pub async fn renew_token(
        &self,
        entry: TokenEntry,
        increment: Duration,
    ) -> Result<(TokenEntry, Duration, Vec<String>)> {
        if entry.expire_time.is_none() || !entry.renewable {
            return Err(Error::invalid("lease is not renewable"));
        }
        let unsealed = self.unsealed()?;
        let (mut backend_ttl, mut backend_max_ttl, mut period) = (
            Duration::ZERO,
            Duration::from_secs(entry.backend_max_ttl),
            Duration::from_secs(entry.period),
        );
        let mount_path = entry
            .auth_mount
            .clone()
            .unwrap_or_else(|| "auth/token/".to_owned());
        if let Some(mount) = &entry.auth_mount {
            let route = unsealed
                .mounts
                .router()
                .get(mount)
                .cloned()
                .ok_or_else(|| Error::invalid("the auth method that issued this token is gone"))?;
            let auth = Auth {
                policies: entry.policies.clone(),
                token_policies: entry.policies.clone(),
                metadata: Some(entry.meta.clone()),
                max_ttl: backend_max_ttl,
                period,
                explicit_max_ttl: Duration::from_secs(entry.explicit_max_ttl),
                internal_data: entry.internal_data.clone(),
                display_name: entry.display_name.clone(),
                accessor: entry.accessor.clone(),
                renewable: true,
                ..Auth::default()
            };
            let mut req = Request::new(mayfly_sdk::Operation::Update, format!("{mount}login"));
            req.mount_point = mount.clone();
            req.mount_type = route.entry.kind.clone();
            req.mount_ttls = route.entry.ttls(self.system_ttls());
            req.storage = Some(route.storage.clone());
            let renewed = route.backend.renew_auth(req, auth).await?;
            let original: Vec<String> = entry
                .policies
                .iter()
                .filter(|p| *p != "default")
                .cloned()
                .collect();
            let now: Vec<String> = finalize_policies(
                renewed
                    .policies
                    .iter()
                    .chain(renewed.token_policies.iter())
                    .cloned()
                    .collect(),
                true,
            )
            .into_iter()
            .filter(|p| p != "default")
            .collect();
            if !now.is_empty() && now != original {
                return Err(Error::invalid("policies have changed, not renewing"));
            }
            backend_ttl = renewed.ttl;
            backend_max_ttl = renewed.max_ttl;
            period = renewed.period;
        }
        let now = self.clock.now();
        let decision = calculate_ttl(
            self.mount_ttls(&mount_path),
            TtlRequest {
                increment,
                backend_ttl,
                backend_max_ttl,
                period,
                explicit_max_ttl: Duration::from_secs(entry.explicit_max_ttl),
                issued_at: SystemTime::UNIX_EPOCH
                    + Duration::from_secs(entry.creation_time.max(0) as u64),
            },
            now,
        )?;
        let mut renewed = entry.clone();
        let now_ms = self.clock.unix_ms();
        renewed.expire_time = Some(crate::clock::expiry_secs(now_ms, decision.ttl));
        renewed.last_renewal = Some(now_ms.div_euclid(1000));
        self.save_token_renewal(&renewed).await?;
        Ok((renewed, decision.ttl, decision.warnings))
    }

    /// Deletes the cubbyholes of revoked tokens. Failures only leave unreachable data.
    pub async fn after_token_revocation(&self, hashes: &[String]) {
        let Ok(unsealed) = self.unsealed() else {
            return;
        };
        let router = unsealed.mounts.router();
        let Some(cubbyhole) = router.entries().find(|entry| entry.kind == "cubbyhole") else {
            return;
        };
        let Some(route) = router.get(&cubbyhole.path) else {
            return;
        };
        for hash in hashes {
            if let Err(err) = delete_tree(&route.storage, &format!("{hash}/")).await {
                tracing::warn!(error = %err, "Failed to delete a revoked token's cubbyhole.");
            }
        }
    }
}
