//! One HTTP request in, one Vault-shaped response out.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use mayfly_core::Core;
use mayfly_sdk::{
    Error, Operation, Request, Response, duration::parse_duration, logical::ClientToken,
};
use serde_json::{Map, Value, json};

use crate::error::status_and_messages;

/// Vault's default maximum request body.
pub const DEFAULT_MAX_REQUEST_SIZE: u64 = 32 * 1024 * 1024;
/// Vault's default maximum request duration.
pub const DEFAULT_MAX_REQUEST_DURATION: Duration = Duration::from_secs(90);

/// Per-listener limits.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub max_request_size: u64,
    pub max_request_duration: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_request_size: DEFAULT_MAX_REQUEST_SIZE,
            max_request_duration: DEFAULT_MAX_REQUEST_DURATION,
        }
    }
}

/// What every request handler shares.
pub struct HttpState {
    pub core: Arc<Core>,
    pub limits: HttpLimits,
}

/// Routes whose `data` is also copied to the top level of the JSON body, as old clients expect.
const DATA_INJECTED_EXACT: &[&str] = &[
    "sys/audit",
    "sys/auth",
    "sys/capabilities",
    "sys/capabilities-accessor",
    "sys/capabilities-self",
    "sys/config/cors",
    "sys/config/auditing/request-headers",
    "sys/ha-status",
    "sys/key-status",
    "sys/mounts",
    "sys/policy",
    "sys/rekey/backup",
    "sys/rekey/recovery-key-backup",
    "sys/remount",
    "sys/rotate",
    "sys/rotate/keyring",
    "sys/wrapping/wrap",
];
const DATA_INJECTED_PREFIXES: &[&str] = &[
    "sys/audit/",
    "sys/audit-hash/",
    "sys/auth/",
    "sys/config/auditing/request-headers/",
    "sys/mounts/",
    "sys/policy/",
];

fn injects_data(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    DATA_INJECTED_EXACT.contains(&path)
        || DATA_INJECTED_PREFIXES
            .iter()
            .any(|prefix| path.starts_with(prefix))
}

type HttpResponse = hyper::Response<Full<Bytes>>;

/// Serves one request. Never fails: every error becomes a Vault error body.
pub async fn handle(
    state: Arc<HttpState>,
    remote: SocketAddr,
    req: hyper::Request<Incoming>,
) -> Result<HttpResponse, std::convert::Infallible> {
    let request_id = mayfly_core::random::uuid();
    let is_head = req.method() == Method::HEAD;
    let deadline = state.limits.max_request_duration;
    let work = serve(state, remote, req, &request_id);
    let result = match tokio::time::timeout(deadline, work).await {
        Ok(result) => result,
        Err(_) => Err(Error::Coded {
            status: 503,
            message: "request took longer than the server's maximum request duration".into(),
        }),
    };
    let mut response = match result {
        Ok(response) => response,
        Err(err) => {
            let (status, messages) = status_and_messages(&err, &request_id);
            json_response(status, &json!({ "errors": messages }))
        }
    };
    if is_head {
        *response.body_mut() = Full::new(Bytes::new());
    }
    Ok(response)
}

async fn serve(
    state: Arc<HttpState>,
    remote: SocketAddr,
    req: hyper::Request<Incoming>,
    request_id: &str,
) -> Result<HttpResponse, Error> {
    let (parts, body) = req.into_parts();
    let Some(raw_path) = parts.uri.path().strip_prefix("/v1/") else {
        return Err(Error::UnsupportedPath);
    };
    let path = decode_path(raw_path)?;
    let query = parse_query(parts.uri.query())?;

    let mut operation = match parts.method.as_str() {
        "GET" => Operation::Read,
        "LIST" => Operation::List,
        "POST" | "PUT" => Operation::Update,
        "PATCH" => Operation::Patch,
        "DELETE" => Operation::Delete,
        "HEAD" => Operation::Header,
        _ => {
            return Ok(json_response(405, &json!({ "errors": [] })));
        }
    };
    if operation == Operation::Patch && !is_merge_patch(&parts.headers) {
        return Err(Error::Coded {
            status: 415,
            message: "PATCH requires the Content-Type application/merge-patch+json".into(),
        });
    }

    let mut data = Map::new();
    let mut path = path;
    if matches!(
        operation,
        Operation::Read | Operation::List | Operation::Header
    ) {
        for (key, value) in query {
            if key == "list" && operation == Operation::Read {
                if parse_bool(&value).ok_or_else(|| Error::invalid("invalid list parameter"))? {
                    operation = Operation::List;
                }
                continue;
            }
            if key == "help" && parse_bool(&value).unwrap_or(false) {
                operation = Operation::Help;
                continue;
            }
            data.insert(key, Value::String(value));
        }
        if operation == Operation::List && !path.ends_with('/') {
            path.push('/');
        }
    } else {
        let body = read_body(body, &parts.headers, state.limits.max_request_size).await?;
        data = parse_body(&body, &parts.headers)?;
    }

    let mut logical = Request::new(operation, path);
    logical.id = request_id.to_owned();
    logical.data = data;
    logical.client_token = client_token(&parts.headers).map(ClientToken);
    logical.remote_addr = Some(remote.ip().to_string());
    logical.wrap_ttl = wrap_ttl(&parts.headers)?;

    let response = state.core.handle_request(logical.clone()).await?;
    Ok(render(&logical, request_id, response))
}

/// Percent-decodes the path and refuses parent references, which could escape a mount.
fn decode_path(raw: &str) -> Result<String, Error> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| Error::invalid("path is not valid UTF-8"))?
        .into_owned();
    if decoded.split('/').any(|segment| segment == "..") {
        return Err(Error::invalid("path cannot contain parent references"));
    }
    Ok(decoded)
}

fn parse_query(query: Option<&str>) -> Result<Vec<(String, String)>, Error> {
    match query {
        None | Some("") => Ok(Vec::new()),
        Some(query) => serde_urlencoded::from_str(query)
            .map_err(|err| Error::invalid(format!("invalid query string: {err}"))),
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "" | "1" | "t" | "true" => Some(true),
        "0" | "f" | "false" => Some(false),
        _ => None,
    }
}

fn is_merge_patch(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim().starts_with("application/merge-patch+json"))
}

async fn read_body(body: Incoming, headers: &HeaderMap, limit: u64) -> Result<Bytes, Error> {
    let too_large = || Error::Coded {
        status: 413,
        message: format!("request body is larger than the limit of {limit} bytes"),
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(err) => Err(Error::invalid(format!(
            "failed to read request body: {err}"
        ))),
    }
}

fn parse_body(body: &[u8], headers: &HeaderMap) -> Result<Map<String, Value>, Error> {
    let trimmed = body.trim_ascii_start();
    if trimmed.is_empty() {
        return Ok(Map::new());
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    if is_form && !matches!(trimmed[0], b'{' | b'[') {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(trimmed)
            .map_err(|err| Error::invalid(format!("failed to parse form input: {err}")))?;
        return Ok(pairs
            .into_iter()
            .map(|(key, value)| (key, Value::String(value)))
            .collect());
    }
    match mayfly_sdk::storage::from_json_bytes::<Value>(trimmed) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(Error::invalid(
            "failed to parse JSON input: the body must be a JSON object",
        )),
        Err(err) => Err(Error::invalid(format!("failed to parse JSON input: {err}"))),
    }
}

fn client_token(headers: &HeaderMap) -> Option<String> {
    if let Some(token) = headers.get("x-vault-token").and_then(|v| v.to_str().ok())
        && !token.is_empty()
    {
        return Some(token.to_owned());
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(|token| token.trim().to_owned())
        .filter(|token| !token.is_empty())
}

fn wrap_ttl(headers: &HeaderMap) -> Result<Option<Duration>, Error> {
    let Some(value) = headers.get("x-vault-wrap-ttl") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| Error::invalid("error parsing X-Vault-Wrap-TTL header"))?;
    parse_duration(text)
        .map(Some)
        .map_err(|_| Error::invalid("error parsing X-Vault-Wrap-TTL header"))
}

fn render(req: &Request, request_id: &str, response: Option<Response>) -> HttpResponse {
    let Some(response) = response else {
        return empty_response(204);
    };
    if let Some(raw) = response.raw {
        let mut out = hyper::Response::new(Full::new(Bytes::from(raw.body)));
        *out.status_mut() = StatusCode::from_u16(raw.status).unwrap_or(StatusCode::OK);
        if let Ok(value) = HeaderValue::from_str(&raw.content_type) {
            out.headers_mut().insert(header::CONTENT_TYPE, value);
        }
        out.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return out;
    }
    if let Some(wrap) = &response.wrap_info {
        let mut wrap_info = json!({
            "token": wrap.token,
            "accessor": wrap.accessor,
            "ttl": wrap.ttl.as_secs(),
            "creation_time": wrap.creation_time,
            "creation_path": wrap.creation_path,
        });
        if !wrap.wrapped_accessor.is_empty() {
            wrap_info["wrapped_accessor"] = json!(wrap.wrapped_accessor);
        }
        let body = json!({
            "request_id": "",
            "lease_id": "",
            "renewable": false,
            "lease_duration": 0,
            "data": Value::Null,
            "wrap_info": wrap_info,
            "warnings": Value::Null,
            "auth": Value::Null,
        });
        return json_response(200, &body);
    }
    let (lease_id, renewable, lease_duration) = match &response.secret {
        Some(secret) => (
            secret.lease_id.clone(),
            secret.renewable,
            secret.ttl.as_secs(),
        ),
        None => (String::new(), false, 0),
    };
    let auth = response.auth.as_ref().map(|auth| {
        let mut value = json!({
            "client_token": auth.client_token,
            "accessor": auth.accessor,
            "policies": auth.policies,
            "metadata": auth.metadata,
            "lease_duration": auth.lease_duration.as_secs(),
            "renewable": auth.renewable,
            "entity_id": auth.entity_id,
            "token_type": auth.token_type,
            "orphan": auth.orphan,
            "mfa_requirement": Value::Null,
            "num_uses": auth.num_uses,
        });
        if !auth.token_policies.is_empty() {
            value["token_policies"] = json!(auth.token_policies);
        }
        value
    });
    let warnings = if response.warnings.is_empty() {
        Value::Null
    } else {
        json!(response.warnings)
    };
    let mut body = json!({
        "request_id": request_id,
        "lease_id": lease_id,
        "renewable": renewable,
        "lease_duration": lease_duration,
        "data": response.data,
        "wrap_info": Value::Null,
        "warnings": warnings,
        "auth": auth,
    });
    if injects_data(&req.path)
        && let (Some(data), Value::Object(top)) = (&response.data, &mut body)
    {
        for (key, value) in data {
            top.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    json_response(response.status.unwrap_or(200), &body)
}

fn empty_response(status: u16) -> HttpResponse {
    let mut out = hyper::Response::new(Full::new(Bytes::new()));
    *out.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::NO_CONTENT);
    set_json_headers(out.headers_mut());
    out
}

fn json_response(status: u16, body: &Value) -> HttpResponse {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{\"errors\":[]}".to_vec());
    let mut out = hyper::Response::new(Full::new(Bytes::from(bytes)));
    *out.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    set_json_headers(out.headers_mut());
    out
}

fn set_json_headers(headers: &mut HeaderMap) {
    // Exactly `application/json`: some clients compare the header as a plain string.
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_decoded_and_parent_references_refused() {
        assert_eq!(decode_path("secret/a%20b").unwrap(), "secret/a b");
        assert!(decode_path("secret/../sys/seal").is_err());
        assert!(decode_path("secret/%2E%2E/x").is_err());
        assert_eq!(decode_path("secret/a..b").unwrap(), "secret/a..b");
    }

    #[test]
    fn bodies_parse_as_json_or_form() {
        let mut headers = HeaderMap::new();
        assert_eq!(parse_body(b"", &headers).unwrap().len(), 0);
        assert_eq!(parse_body(br#"{"a":1}"#, &headers).unwrap()["a"], 1);
        assert!(parse_body(b"[1]", &headers).is_err());
        assert!(parse_body(b"{not json", &headers).is_err());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        assert_eq!(parse_body(b"a=1&b=x", &headers).unwrap()["b"], "x");
    }

    #[test]
    fn tokens_come_from_either_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(client_token(&headers).as_deref(), Some("abc"));
        headers.insert("x-vault-token", HeaderValue::from_static("def"));
        assert_eq!(client_token(&headers).as_deref(), Some("def"));
    }

    #[test]
    fn wrap_ttl_header_is_validated() {
        let mut headers = HeaderMap::new();
        headers.insert("x-vault-wrap-ttl", HeaderValue::from_static("5m"));
        assert_eq!(wrap_ttl(&headers).unwrap(), Some(Duration::from_secs(300)));
        headers.insert("x-vault-wrap-ttl", HeaderValue::from_static("-5"));
        assert!(wrap_ttl(&headers).is_err());
    }

    #[test]
    fn data_injection_routes() {
        assert!(injects_data("sys/mounts"));
        assert!(injects_data("sys/mounts/secret"));
        assert!(injects_data("sys/key-status"));
        assert!(!injects_data("sys/health"));
        assert!(!injects_data("cubbyhole/x"));
    }
}
