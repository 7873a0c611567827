//! Vault's audit entries: `auth`, `request` and `response` objects, with every secret hashed
//! by the device's salt before the bytes exist.
//!
//! The `auth` and `request` parts are serialized once per device when the request is logged
//! and reused for the response entry, so a request costs one hashing pass per device; a
//! token's `auth` part is cached by the device across requests.

use std::{borrow::Cow, sync::Arc};

use mayfly_audit::{Hashed, Salt};
use mayfly_sdk::{Auth, Error, Operation, Request, Response, WrapInfo};
use serde::Serialize;
use serde_json::{Map, Value};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::device::{CallerParts, Device, FormatConfig};
use crate::{
    mounts::{MountClass, MountEntry},
    token::TokenEntry,
};

/// What the request entry is built from.
pub(crate) struct RequestContext<'a> {
    pub req: &'a Request,
    /// The calling token, once it has been looked up.
    pub token: Option<&'a TokenEntry>,
    /// The mount serving the request.
    pub mount: Option<&'a MountEntry>,
    /// The ACL's decision, once it was made.
    pub allowed: Option<bool>,
}

/// The mount fields both the request and the response object carry.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MountInfo<'a> {
    pub mount_point: &'a str,
    pub mount_type: &'a str,
    pub mount_accessor: &'a str,
    pub mount_class: &'static str,
}

impl<'a> MountInfo<'a> {
    pub(crate) fn of(mount: Option<&'a MountEntry>) -> MountInfo<'a> {
        match mount {
            None => MountInfo::default(),
            Some(mount) => MountInfo {
                mount_point: &mount.path,
                mount_type: &mount.kind,
                mount_accessor: &mount.accessor,
                mount_class: match mount.class {
                    MountClass::Secret => "secret",
                    MountClass::Auth => "auth",
                },
            },
        }
    }
}

/// A device's serialized `auth` and `request` objects for one request.
pub(crate) struct RequestParts {
    auth: Arc<CallerParts>,
    request: Vec<u8>,
}

/// The response-side facts a device needs that the request parts do not carry.
pub(crate) struct ResponseContext<'a> {
    pub operation: Operation,
    pub mount: MountInfo<'a>,
    pub non_hmac_keys: &'a [String],
}

pub(crate) fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// The text of an error as the audit log records it. Internal errors are not described:
/// their detail can contain anything, and it is in the server log under the request ID.
pub(crate) fn error_text(err: &Error) -> String {
    match err {
        Error::Internal(_) => "internal error".to_owned(),
        other => other.to_string(),
    }
}

fn hash_or_raw<'a>(salt: Option<&Salt>, value: &'a str) -> Cow<'a, str> {
    match salt {
        Some(salt) => Cow::Owned(salt.hash(value)),
        None => Cow::Borrowed(value),
    }
}

fn hash_accessor<'a>(format: &FormatConfig, salt: Option<&Salt>, value: &'a str) -> Cow<'a, str> {
    if format.hmac_accessor {
        hash_or_raw(salt, value)
    } else {
        Cow::Borrowed(value)
    }
}

#[derive(Serialize)]
struct PolicyResults {
    allowed: bool,
}

#[derive(Serialize)]
struct AuthObject<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    client_token: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    accessor: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "str::is_empty")]
    display_name: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    policies: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    token_policies: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a Map<String, Value>>,
    #[serde(skip_serializing_if = "str::is_empty")]
    entity_id: &'a str,
    token_type: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    token_ttl: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_issue_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_results: Option<PolicyResults>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

#[derive(Serialize)]
struct Namespace {
    id: &'static str,
}

#[derive(Serialize)]
struct RequestObject<'a> {
    id: &'a str,
    operation: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    mount_point: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    mount_type: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    mount_accessor: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    mount_class: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_token: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_token_accessor: Option<Cow<'a, str>>,
    namespace: Namespace,
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Hashed<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote_address: Option<&'a str>,
    #[serde(skip_serializing_if = "is_zero")]
    wrap_ttl: u64,
}

#[derive(Serialize)]
struct SecretObject<'a> {
    lease_id: &'a str,
}

#[derive(Serialize)]
struct WrapObject<'a> {
    ttl: u64,
    token: Cow<'a, str>,
    accessor: Cow<'a, str>,
    creation_time: &'a str,
    creation_path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    wrapped_accessor: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct ResponseObject<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    mount_point: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    mount_type: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    mount_accessor: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    mount_class: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth: Option<AuthObject<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<SecretObject<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Hashed<'a>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    wrap_info: Option<WrapObject<'a>>,
}

/// The calling token's `auth` object. `client_token` and `accessor` come hashed already,
/// since the `request` object repeats them.
fn caller_auth<'a>(
    ctx: &'a RequestContext<'a>,
    client_token: Option<Cow<'a, str>>,
    accessor: Option<Cow<'a, str>>,
) -> AuthObject<'a> {
    let Some(token) = ctx.token else {
        // Vault's shape for a request made without a valid token.
        return AuthObject {
            client_token: None,
            accessor: None,
            display_name: "",
            policies: &[],
            token_policies: &[],
            metadata: None,
            entity_id: "",
            token_type: "default",
            token_ttl: 0,
            token_issue_time: None,
            policy_results: None,
        };
    };
    AuthObject {
        client_token,
        accessor,
        display_name: &token.display_name,
        policies: &token.policies,
        token_policies: &token.policies,
        metadata: (!token.meta.is_empty()).then_some(&token.meta),
        entity_id: "",
        token_type: "service",
        token_ttl: token.creation_ttl,
        token_issue_time: OffsetDateTime::from_unix_timestamp(token.creation_time)
            .ok()
            .and_then(|time| time.format(&Rfc3339).ok()),
        policy_results: ctx.allowed.map(|allowed| PolicyResults { allowed }),
    }
}

/// The caller's hashed token and accessor and its serialized `auth` object, from the
/// device's cache when the token was seen before.
fn caller_parts(device: &Device, ctx: &RequestContext<'_>) -> Arc<CallerParts> {
    let build = || {
        let salt = device.hashing_salt();
        let req = ctx.req;
        let client_token = req.client_token.as_ref().map(|t| hash_or_raw(salt, &t.0));
        let accessor = req
            .client_token_accessor
            .as_deref()
            .map(|a| hash_accessor(&device.format, salt, a));
        let auth = to_json(&caller_auth(
            ctx,
            client_token.as_deref().map(Cow::Borrowed),
            accessor.as_deref().map(Cow::Borrowed),
        ));
        CallerParts {
            auth,
            client_token: client_token.map(Cow::into_owned),
            accessor: accessor.map(Cow::into_owned),
        }
    };
    match (ctx.token, &ctx.req.client_token) {
        (Some(token), Some(_)) => device.caller_parts((token.id_hash.clone(), ctx.allowed), build),
        _ => Arc::new(build()),
    }
}

/// Serializes a device's `auth` and `request` objects.
pub(crate) fn request_parts(
    device: &Device,
    ctx: &RequestContext<'_>,
    mount: MountInfo<'_>,
) -> RequestParts {
    let salt = device.hashing_salt();
    let req = ctx.req;
    let keep: &[String] = ctx
        .mount
        .map(|m| m.config.audit_non_hmac_request_keys.as_slice())
        .unwrap_or(&[]);
    let caller = caller_parts(device, ctx);
    let request = RequestObject {
        id: &req.id,
        operation: req.operation.as_str(),
        mount_point: mount.mount_point,
        mount_type: mount.mount_type,
        mount_accessor: mount.mount_accessor,
        mount_class: mount.mount_class,
        client_token: caller.client_token.as_deref().map(Cow::Borrowed),
        client_token_accessor: caller.accessor.as_deref().map(Cow::Borrowed),
        namespace: Namespace { id: "root" },
        path: &req.path,
        data: (!req.data.is_empty()).then(|| Hashed::map(&req.data, salt, keep)),
        remote_address: req.remote_addr.as_deref(),
        wrap_ttl: req.wrap_ttl.map(|ttl| ttl.as_secs()).unwrap_or(0),
    };
    let request = to_json(&request);
    RequestParts {
        auth: caller,
        request,
    }
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain structs and JSON values into memory cannot fail.
    serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
}

fn push_member(out: &mut Vec<u8>, name: &str, json: &[u8]) {
    out.push(b',');
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    out.extend_from_slice(json);
}

/// Starts a line: the device's prefix, then the entry up to its `request` object. The time is
/// RFC 3339 and the kind a fixed word, so neither needs escaping.
fn entry_start(
    prefix: &str,
    time: &str,
    kind: &str,
    parts: &RequestParts,
    extra: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        prefix.len() + parts.auth.auth.len() + parts.request.len() + 400 + extra,
    );
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(b"{\"time\":\"");
    out.extend_from_slice(time.as_bytes());
    out.extend_from_slice(b"\",\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.push(b'"');
    push_member(&mut out, "auth", &parts.auth.auth);
    push_member(&mut out, "request", &parts.request);
    out
}

fn entry_end(mut out: Vec<u8>, error: Option<&str>) -> Vec<u8> {
    if let Some(error) = error {
        push_member(&mut out, "error", &to_json(&error));
    }
    out.push(b'}');
    out
}

/// The request entry, after the device's prefix.
pub(crate) fn request_entry(
    prefix: &str,
    time: &str,
    parts: &RequestParts,
    error: Option<&str>,
) -> Vec<u8> {
    entry_end(entry_start(prefix, time, "request", parts, 0), error)
}

fn issued_auth<'a>(device: &Device, auth: &'a Auth) -> AuthObject<'a> {
    let salt = device.hashing_salt();
    AuthObject {
        client_token: (!auth.client_token.is_empty())
            .then(|| hash_or_raw(salt, &auth.client_token)),
        accessor: (!auth.accessor.is_empty())
            .then(|| hash_accessor(&device.format, salt, &auth.accessor)),
        display_name: &auth.display_name,
        policies: &auth.policies,
        token_policies: &auth.token_policies,
        metadata: auth.metadata.as_ref().filter(|m| !m.is_empty()),
        entity_id: &auth.entity_id,
        token_type: if auth.token_type.is_empty() {
            "service"
        } else {
            &auth.token_type
        },
        token_ttl: auth.lease_duration.as_secs(),
        token_issue_time: None,
        policy_results: None,
    }
}

fn wrap_object<'a>(device: &Device, wrap: &'a WrapInfo) -> WrapObject<'a> {
    let salt = device.hashing_salt();
    WrapObject {
        ttl: wrap.ttl.as_secs(),
        token: hash_or_raw(salt, &wrap.token),
        accessor: hash_accessor(&device.format, salt, &wrap.accessor),
        creation_time: &wrap.creation_time,
        creation_path: &wrap.creation_path,
        wrapped_accessor: (!wrap.wrapped_accessor.is_empty())
            .then(|| hash_accessor(&device.format, salt, &wrap.wrapped_accessor)),
    }
}

/// A response's data as logged: raw responses as Vault's `http_*` fields, list responses
/// elided to counts when the device asks for it.
fn response_data<'a>(
    device: &Device,
    ctx: &ResponseContext<'_>,
    response: &'a Response,
) -> Option<Cow<'a, Map<String, Value>>> {
    if let Some(raw) = &response.raw {
        let mut data = Map::new();
        data.insert(
            "http_content_type".into(),
            Value::String(raw.content_type.clone()),
        );
        data.insert(
            "http_raw_body".into(),
            Value::String(String::from_utf8_lossy(&raw.body).into_owned()),
        );
        data.insert("http_status_code".into(), Value::from(raw.status));
        return Some(Cow::Owned(data));
    }
    let data = response.data.as_ref()?;
    if device.format.elide_list_responses && ctx.operation == Operation::List {
        let mut elided = data.clone();
        if let Some(Value::Array(keys)) = data.get("keys") {
            elided.insert("keys".into(), Value::from(keys.len()));
        }
        if let Some(Value::Object(info)) = data.get("key_info") {
            elided.insert("key_info".into(), Value::from(info.len()));
        }
        return Some(Cow::Owned(elided));
    }
    Some(Cow::Borrowed(data))
}

/// The response entry: the request parts again, the response, and the error if any.
pub(crate) fn response_entry(
    device: &Device,
    time: &str,
    parts: &RequestParts,
    ctx: &ResponseContext<'_>,
    response: Option<&Response>,
    error: Option<&str>,
) -> Vec<u8> {
    let salt = device.hashing_salt();
    let data = response.and_then(|response| response_data(device, ctx, response));
    let object = ResponseObject {
        mount_point: ctx.mount.mount_point,
        mount_type: ctx.mount.mount_type,
        mount_accessor: ctx.mount.mount_accessor,
        mount_class: ctx.mount.mount_class,
        auth: response
            .and_then(|r| r.auth.as_ref())
            .map(|auth| issued_auth(device, auth)),
        secret: response
            .and_then(|r| r.secret.as_ref())
            .filter(|secret| !secret.lease_id.is_empty())
            .map(|secret| SecretObject {
                lease_id: &secret.lease_id,
            }),
        data: data
            .as_deref()
            .map(|data| Hashed::map(data, salt, ctx.non_hmac_keys)),
        warnings: response.map(|r| r.warnings.as_slice()).unwrap_or(&[]),
        wrap_info: response
            .and_then(|r| r.wrap_info.as_ref())
            .map(|wrap| wrap_object(device, wrap)),
    };
    let object = to_json(&object);
    let mut out = entry_start(&device.format.prefix, time, "response", parts, object.len());
    push_member(&mut out, "response", &object);
    entry_end(out, error)
}
