//! The HTTP client for the server's Vault-compatible API: where to connect,
//! which token to present, TLS trust, and turning failures into the error
//! text Vault users already know how to read.

use std::fmt;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

/// Used when neither `-address` nor the environment names a server; the
/// dev server listens on plain HTTP.
pub const DEFAULT_ADDRESS: &str = "http://127.0.0.1:8200";

/// Vault's own default, also the client's overall request budget.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How to reach the server.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub address: String,
    pub token: Option<String>,
    pub ca_cert: Option<String>,
    pub skip_verify: bool,
    /// Sent as `X-Vault-Namespace`, already in canonical `a/b/` form.
    pub namespace: Option<String>,
    /// Sent as `X-Vault-Wrap-TTL` so the server wraps the response.
    pub wrap_ttl: Option<String>,
}

/// The body of a request.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    None,
    Json(&'a Value),
    /// A JSON merge patch, which PATCH endpoints require by content type.
    MergePatch(&'a Value),
}

/// A failed API call.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// The server answered with an error status.
    Response {
        method: String,
        url: String,
        status: u16,
        errors: Vec<String>,
        /// The body was not the `{"errors": [...]}` shape.
        raw: bool,
    },
    /// No usable answer: connection refused, TLS failure, timeout, or an
    /// answer that was not JSON.
    Transport {
        method: String,
        url: String,
        cause: String,
    },
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Response {
                method,
                url,
                status,
                errors,
                raw,
            } => {
                let label = if *raw { "Raw Message" } else { "Errors" };
                write!(
                    f,
                    "Error making API request.\n\nURL: {method} {url}\nCode: {status}. {label}:\n\n"
                )?;
                if *raw {
                    write!(f, "{}", errors.join("\n"))
                } else {
                    let lines: Vec<String> = errors.iter().map(|e| format!("* {e}")).collect();
                    write!(f, "{}", lines.join("\n"))
                }
            }
            ApiError::Transport { method, url, cause } => {
                write!(f, "{} {url:?}: {cause}", go_method_name(method))
            }
        }
    }
}

impl std::error::Error for ApiError {}

/// `GET` → `Get`, matching how Go's HTTP client names the request in its
/// transport errors.
fn go_method_name(method: &str) -> String {
    let mut chars = method.chars();
    match chars.next() {
        Some(first) => {
            first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
        }
        None => String::new(),
    }
}

/// An HTTP client bound to one server and token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    address: String,
    token: Option<String>,
    namespace: Option<String>,
    wrap_ttl: Option<String>,
}

impl Client {
    pub fn new(settings: &Settings) -> Result<Self, String> {
        let base = Url::parse(&settings.address)
            .map_err(|e| format!("Error parsing address {:?}: {e}", settings.address))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(format!(
                "Error parsing address {:?}: scheme must be http or https",
                settings.address
            ));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("mayfly-cli/", env!("CARGO_PKG_VERSION")));
        if is_loopback(&base) {
            // Like Go's proxy handling: a local server is never reached
            // through a proxy from the environment.
            builder = builder.no_proxy();
        }
        if let Some(path) = &settings.ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| format!("Error loading CA certificate {path}: {e}"))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("Error loading CA certificate {path}: {e}"))?;
            if certs.is_empty() {
                return Err(format!(
                    "Error loading CA certificate {path}: no PEM certificates found"
                ));
            }
            // The given CA replaces the system roots, as with Vault.
            builder = builder.tls_certs_only(certs);
        }
        if settings.skip_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| format!("Error creating HTTP client: {}", root_cause(&e)))?;
        Ok(Self {
            http,
            base,
            address: settings.address.clone(),
            token: settings.token.clone(),
            namespace: settings.namespace.clone(),
            wrap_ttl: settings.wrap_ttl.clone(),
        })
    }

    /// The address as given by the user.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The token requests are sent with, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The same client presenting another token (or none).
    pub fn with_token(&self, token: Option<String>) -> Client {
        Client {
            token,
            ..self.clone()
        }
    }

    /// The same client without response wrapping, for the helper calls a
    /// command makes on its own behalf (mount lookups, token lookups,
    /// unwrapping) whose answers it needs to read itself.
    pub fn without_wrapping(&self) -> Client {
        Client {
            wrap_ttl: None,
            ..self.clone()
        }
    }

    /// The URL for an API path such as `sys/seal-status`.
    pub fn url(&self, path: &str, query: &[(String, String)]) -> Url {
        let mut url = self.base.clone();
        let prefix = self.base.path().trim_end_matches('/');
        url.set_path(&format!("{prefix}/v1/{}", path.trim_start_matches('/')));
        url.set_query(None);
        url.set_fragment(None);
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        url
    }

    /// Sends one request. A success with an empty body (204) is `None`.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Option<Value>, ApiError> {
        let body = body.map_or(Body::None, Body::Json);
        self.send(method, path, query, body).await
    }

    /// Like [`Client::request`] with full control over the body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        body: Body<'_>,
    ) -> Result<Option<Value>, ApiError> {
        let exchange = self.exchange(method, path, query, body).await?;
        exchange.into_result()
    }

    /// Like [`Client::request`], but a 404 is "nothing there" rather than an
    /// error, unless its body still carries data or warnings worth showing.
    pub async fn request_optional(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Option<Value>, ApiError> {
        let body = body.map_or(Body::None, Body::Json);
        let exchange = self.exchange(method, path, query, body).await?;
        if exchange.status != StatusCode::NOT_FOUND {
            return exchange.into_result();
        }
        let parsed: Option<Value> = serde_json::from_slice(&exchange.body).ok();
        let non_empty = |v: &Value, key: &str| match v.get(key) {
            Some(Value::Object(m)) => !m.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            _ => false,
        };
        Ok(parsed.filter(|v| non_empty(v, "data") || non_empty(v, "warnings")))
    }

    async fn exchange(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        body: Body<'_>,
    ) -> Result<Exchange, ApiError> {
        let url = self.url(path, query);
        let url_text = url.to_string();
        let transport = |cause: String| ApiError::Transport {
            method: method.to_string(),
            url: url_text.clone(),
            cause,
        };
        let http_method = Method::from_bytes(method.as_bytes())
            .map_err(|e| transport(format!("invalid method: {e}")))?;
        let mut req = self
            .http
            .request(http_method, url.clone())
            .header("X-Vault-Request", "true");
        if let Some(token) = &self.token {
            req = req.header("X-Vault-Token", token);
        }
        if let Some(namespace) = &self.namespace {
            req = req.header("X-Vault-Namespace", namespace);
        }
        if let Some(ttl) = &self.wrap_ttl {
            req = req.header("X-Vault-Wrap-TTL", ttl);
        }
        match body {
            Body::None => {}
            Body::Json(v) => req = req.json(v),
            Body::MergePatch(v) => {
                req = req
                    .header("Content-Type", "application/merge-patch+json")
                    .body(v.to_string());
            }
        }
        let resp = req.send().await.map_err(|e| transport(describe(&e)))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| transport(format!("error reading response: {}", describe(&e))))?
            .to_vec();
        Ok(Exchange {
            method: method.to_string(),
            url: url_text,
            status,
            body,
        })
    }
}

/// One completed request/response pair.
struct Exchange {
    method: String,
    url: String,
    status: StatusCode,
    body: Vec<u8>,
}

impl Exchange {
    fn into_result(self) -> Result<Option<Value>, ApiError> {
        if !self.status.is_success() {
            return Err(response_error(
                &self.method,
                &self.url,
                self.status,
                &self.body,
            ));
        }
        if self.status == StatusCode::NO_CONTENT || self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&self.body)
            .map(Some)
            .map_err(|e| ApiError::Transport {
                method: self.method,
                url: self.url,
                cause: format!("error parsing response JSON: {e}"),
            })
    }
}

fn response_error(method: &str, url: &str, status: StatusCode, body: &[u8]) -> ApiError {
    let parsed: Option<Vec<String>> = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("errors").cloned())
        .and_then(|errors| match errors {
            Value::Array(items) => Some(
                items
                    .into_iter()
                    .map(|item| match item {
                        Value::String(s) => s,
                        other => other.to_string(),
                    })
                    .collect(),
            ),
            Value::Null => Some(Vec::new()),
            _ => None,
        });
    let (errors, raw) = match parsed {
        Some(errors) => (errors, false),
        None => (vec![String::from_utf8_lossy(body).into_owned()], true),
    };
    ApiError::Response {
        method: method.to_string(),
        url: url.to_string(),
        status: status.as_u16(),
        errors,
        raw,
    }
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// A short reason for a transport failure: reqwest's top-level message
/// only says a request failed, the useful part is at the bottom.
fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return "request timed out".to_string();
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused".to_string(),
                std::io::ErrorKind::ConnectionReset => {
                    return "connection reset by peer".to_string();
                }
                _ => {}
            }
        }
        source = e.source();
    }
    root_cause(err)
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(address: &str) -> Client {
        Client::new(&Settings {
            address: address.to_string(),
            ..Settings::default()
        })
        .unwrap()
    }

    #[test]
    fn urls() {
        let c = client("http://127.0.0.1:8200");
        assert_eq!(
            c.url("secret/foo", &[]).as_str(),
            "http://127.0.0.1:8200/v1/secret/foo"
        );
        let q = vec![("version".to_string(), "2".to_string())];
        assert_eq!(
            c.url("/secret/data/a b", &q).as_str(),
            "http://127.0.0.1:8200/v1/secret/data/a%20b?version=2"
        );
        let c = client("https://vault.example.com/prefix/");
        assert_eq!(
            c.url("sys/health", &[]).as_str(),
            "https://vault.example.com/prefix/v1/sys/health"
        );
    }

    #[test]
    fn bad_addresses() {
        assert!(
            Client::new(&Settings {
                address: "not a url".into(),
                ..Settings::default()
            })
            .is_err()
        );
        assert!(
            Client::new(&Settings {
                address: "ftp://x".into(),
                ..Settings::default()
            })
            .is_err()
        );
    }

    #[test]
    fn error_text() {
        let e = response_error(
            "GET",
            "http://127.0.0.1:8200/v1/secret/foo",
            StatusCode::FORBIDDEN,
            br#"{"errors":["permission denied"]}"#,
        );
        assert_eq!(
            e.to_string(),
            "Error making API request.\n\nURL: GET http://127.0.0.1:8200/v1/secret/foo\n\
             Code: 403. Errors:\n\n* permission denied"
        );
        let e = response_error("PUT", "http://x/v1/y", StatusCode::BAD_GATEWAY, b"oops");
        assert_eq!(
            e.to_string(),
            "Error making API request.\n\nURL: PUT http://x/v1/y\nCode: 502. Raw Message:\n\noops"
        );
        let e = ApiError::Transport {
            method: "GET".into(),
            url: "http://x/v1/y".into(),
            cause: "connection refused".into(),
        };
        assert_eq!(e.to_string(), "Get \"http://x/v1/y\": connection refused");
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback(&Url::parse("http://localhost:1").unwrap()));
        assert!(is_loopback(&Url::parse("http://127.0.0.1:1").unwrap()));
        assert!(is_loopback(&Url::parse("http://[::1]:1").unwrap()));
        assert!(!is_loopback(&Url::parse("http://10.0.0.1:1").unwrap()));
    }
}
