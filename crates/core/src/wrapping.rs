//! Response wrapping: a response stored in the cubbyhole of a single-use token, so it can be
//! handed over without the intermediary ever seeing it.

use std::time::Duration;

use mayfly_sdk::{Auth, Error, RawResponse, Response, Result, SecretLease, StorageExt, WrapInfo};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;

use crate::{
    Core,
    token::{NewToken, TokenEntry},
};

/// The policy of wrapping tokens.
pub const WRAPPING_POLICY: &str = "response-wrapping";
const RESPONSE_KEY: &str = "response";

/// A response as kept in a wrapping token's cubbyhole. Core-private: the wire shape is the
/// HTTP layer's business, so what is stored is the logical response.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StoredResponse {
    version: u32,
    data: Option<Map<String, Value>>,
    warnings: Vec<String>,
    status: Option<u16>,
    lease: Option<StoredLease>,
    auth: Option<StoredAuth>,
    raw: Option<StoredRaw>,
    creation_path: String,
    creation_time: String,
    creation_ttl: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredLease {
    lease_id: String,
    ttl: u64,
    renewable: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredAuth {
    client_token: String,
    accessor: String,
    policies: Vec<String>,
    token_policies: Vec<String>,
    metadata: Option<Map<String, Value>>,
    lease_duration: u64,
    renewable: bool,
    token_type: String,
    orphan: bool,
    num_uses: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredRaw {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl StoredResponse {
    fn from_response(response: &Response) -> Self {
        StoredResponse {
            version: 1,
            data: response.data.clone(),
            warnings: response.warnings.clone(),
            status: response.status,
            lease: response.secret.as_ref().map(|secret| StoredLease {
                lease_id: secret.lease_id.clone(),
                ttl: secret.ttl.as_secs(),
                renewable: secret.renewable,
            }),
            auth: response.auth.as_ref().map(|auth| StoredAuth {
                client_token: auth.client_token.clone(),
                accessor: auth.accessor.clone(),
                policies: auth.policies.clone(),
                token_policies: auth.token_policies.clone(),
                metadata: auth.metadata.clone(),
                lease_duration: auth.lease_duration.as_secs(),
                renewable: auth.renewable,
                token_type: auth.token_type.clone(),
                orphan: auth.orphan,
                num_uses: auth.num_uses,
            }),
            raw: response.raw.as_ref().map(|raw| StoredRaw {
                status: raw.status,
                content_type: raw.content_type.clone(),
                body: raw.body.clone(),
            }),
            ..StoredResponse::default()
        }
    }

    fn into_response(self) -> Response {
        Response {
            data: self.data,
            warnings: self.warnings,
            status: self.status,
            secret: self.lease.map(|lease| SecretLease {
                lease_id: lease.lease_id,
                ttl: Duration::from_secs(lease.ttl),
                renewable: lease.renewable,
                ..SecretLease::default()
            }),
            auth: self.auth.map(|auth| Auth {
                client_token: auth.client_token,
                accessor: auth.accessor,
                policies: auth.policies,
                token_policies: auth.token_policies,
                metadata: auth.metadata,
                lease_duration: Duration::from_secs(auth.lease_duration),
                renewable: auth.renewable,
                token_type: auth.token_type,
                orphan: auth.orphan,
                num_uses: auth.num_uses,
                ..Auth::default()
            }),
            raw: self.raw.map(|raw| RawResponse {
                status: raw.status,
                content_type: raw.content_type,
                body: raw.body,
            }),
            wrap_info: None,
        }
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

impl Core {
    /// Wraps `response` (which may be `None`: an empty response) in a new single-use token.
    pub(crate) async fn wrap_response(
        &self,
        response: Option<&Response>,
        ttl: Duration,
        creation_path: &str,
    ) -> Result<Response> {
        if ttl.is_zero() {
            return Err(Error::invalid("wrapping TTL must be greater than zero"));
        }
        let creation_time = now_rfc3339();
        let (token, entry) = self
            .issue_token(NewToken {
                policies: vec![WRAPPING_POLICY.to_owned()],
                path: creation_path.to_owned(),
                display_name: WRAPPING_POLICY.to_owned(),
                ttl,
                num_uses: 1,
                renewable: false,
                ..NewToken::default()
            })
            .await?;
        let mut stored = response
            .map(StoredResponse::from_response)
            .unwrap_or(StoredResponse {
                version: 1,
                ..StoredResponse::default()
            });
        stored.creation_path = creation_path.to_owned();
        stored.creation_time = creation_time.clone();
        stored.creation_ttl = ttl.as_secs();
        let cubbyhole = self.cubbyhole_view()?;
        cubbyhole
            .put_json(&format!("{}/{RESPONSE_KEY}", entry.id_hash), &stored)
            .await?;
        Ok(Response {
            wrap_info: Some(WrapInfo {
                token,
                accessor: entry.accessor,
                ttl,
                creation_time,
                creation_path: creation_path.to_owned(),
                wrapped_accessor: response
                    .and_then(|r| r.auth.as_ref())
                    .map(|auth| auth.accessor.clone())
                    .unwrap_or_default(),
            }),
            ..Response::default()
        })
    }

    fn cubbyhole_view(&self) -> Result<std::sync::Arc<crate::view::BarrierView>> {
        let router = self.unsealed()?.mounts.router();
        router
            .entries()
            .find(|entry| entry.kind == "cubbyhole")
            .and_then(|entry| router.get(&entry.path))
            .map(|route| route.storage.clone())
            .ok_or_else(|| Error::internal("no cubbyhole mount"))
    }

    /// The live wrapping token named by `token`, or Vault's "not valid" error.
    async fn wrapping_entry(&self, token: &str) -> Result<TokenEntry> {
        let entry = self.unsealed()?.tokens.lookup(token).await?;
        entry
            .filter(|entry| entry.policies.iter().any(|p| p == WRAPPING_POLICY))
            .ok_or_else(|| Error::invalid("wrapping token is not valid or does not exist"))
    }

    async fn stored_response(&self, entry: &TokenEntry) -> Result<StoredResponse> {
        self.cubbyhole_view()?
            .get_json(&format!("{}/{RESPONSE_KEY}", entry.id_hash))
            .await?
            .ok_or_else(|| Error::invalid("wrapping token is not valid or does not exist"))
    }

    /// Returns the wrapped response and destroys the wrapping token. `spent_by_pipeline` is
    /// set when the wrapping token authenticated this very request, which already used its
    /// single use; otherwise the use is spent here, so two concurrent unwraps cannot both win.
    pub(crate) async fn unwrap_response(
        &self,
        token: &str,
        spent_by_pipeline: bool,
    ) -> Result<Option<Response>> {
        let unsealed = self.unsealed()?;
        let hash = unsealed.tokens.hash(token);
        let entry = self.wrapping_entry(token).await?;
        if !spent_by_pipeline
            && unsealed.tokens.spend_use(&hash).await? == crate::token::UseOutcome::Invalid
        {
            return Err(Error::invalid(
                "wrapping token is not valid or does not exist",
            ));
        }
        let stored = self.stored_response(&entry).await?;
        self.revoke_token_tree(&hash).await?;
        let empty = stored.data.is_none()
            && stored.auth.is_none()
            && stored.lease.is_none()
            && stored.raw.is_none()
            && stored.warnings.is_empty();
        Ok((!empty).then(|| stored.into_response()))
    }

    pub(crate) async fn lookup_wrapping(&self, token: &str) -> Result<Map<String, Value>> {
        let entry = self.wrapping_entry(token).await?;
        let stored = self.stored_response(&entry).await?;
        let mut data = Map::new();
        data.insert("creation_path".into(), stored.creation_path.into());
        data.insert("creation_time".into(), stored.creation_time.into());
        data.insert("creation_ttl".into(), stored.creation_ttl.into());
        Ok(data)
    }

    pub(crate) async fn rewrap(&self, token: &str) -> Result<Response> {
        let entry = self.wrapping_entry(token).await?;
        let stored = self.stored_response(&entry).await?;
        let ttl = Duration::from_secs(stored.creation_ttl);
        let path = stored.creation_path.clone();
        let original = stored.into_response();
        let is_empty = original.data.is_none() && original.auth.is_none();
        let wrapped = self
            .wrap_response((!is_empty).then_some(&original), ttl, &path)
            .await?;
        self.revoke_token_tree(&entry.id_hash).await?;
        Ok(wrapped)
    }
}
