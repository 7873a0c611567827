//! Engine tests: requests driven through the real path tables against in-memory storage.
//!
//! Each call is reduced to what a client would see over HTTP (status, data, warnings, error),
//! applying the core's rule that a read or list with nothing to return is a 404, so the tables
//! read like the responses recorded from OpenBao.

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

use mayfly_sdk::{
    Error, LogicalBackend, Operation, Request, Response, Result,
    testing::{MemoryStorage, request},
};
use serde_json::{Map, Value, json};

mod v1;
mod v2;

const MOUNT: &str = "secret/";

/// 2023-11-14T22:13:20Z: a fixed start keeps timestamps in assertions reproducible.
const START: i64 = 1_700_000_000_000_000_000;

/// Every read of the clock moves it on by a microsecond, as real time would between
/// requests; tests jump further with [`Harness::advance`].
const TICK: i64 = 1_000;

pub(crate) struct Harness {
    pub backend: Arc<dyn LogicalBackend>,
    pub storage: Arc<MemoryStorage>,
    clock: Arc<AtomicI64>,
}

impl Harness {
    pub fn v1() -> Self {
        let options = Map::from_iter([("version".to_owned(), json!("1"))]);
        Harness::with_backend(crate::new_backend(&options).unwrap())
    }

    pub fn v2() -> Self {
        let clock = Arc::new(AtomicI64::new(START));
        let reader = clock.clone();
        let backend = crate::v2::mounted_with_clock(Arc::new(move || {
            reader.fetch_add(TICK, Ordering::SeqCst)
        }));
        Harness {
            backend,
            storage: MemoryStorage::new(),
            clock,
        }
    }

    fn with_backend(backend: Arc<dyn LogicalBackend>) -> Self {
        Harness {
            backend,
            storage: MemoryStorage::new(),
            clock: Arc::new(AtomicI64::new(START)),
        }
    }

    pub fn advance(&self, seconds: i64) {
        self.clock
            .fetch_add(seconds * 1_000_000_000, Ordering::SeqCst);
    }

    pub fn request(&self, operation: Operation, path: &str, body: Value) -> Request {
        request(operation, MOUNT, path, body, self.storage.clone())
    }

    pub async fn call(
        &self,
        operation: Operation,
        path: &str,
        body: Value,
    ) -> Result<Option<Response>> {
        self.backend
            .handle(self.request(operation, path, body))
            .await
    }

    /// The call as a client would see it: `{status, data, warnings, error}`.
    pub async fn seen(&self, operation: Operation, path: &str, body: Value) -> Value {
        seen(operation, self.call(operation, path, body).await)
    }

    /// Runs one call and asserts that what a client sees matches `expected` (see [`matches`]).
    pub async fn check(&self, operation: Operation, path: &str, body: Value, expected: Value) {
        let actual = self.seen(operation, path, body.clone()).await;
        assert!(
            matches(&actual, &expected),
            "{operation:?} {path} {body}\n  got:  {actual}\n  want: {expected}"
        );
    }

    /// The data of a successful call.
    pub async fn data(&self, operation: Operation, path: &str, body: Value) -> Value {
        let seen = self.seen(operation, path, body).await;
        assert_eq!(seen["status"], 200, "{operation:?} {path}: {seen}");
        seen["data"].clone()
    }

    pub fn stored_keys(&self) -> Vec<String> {
        self.storage.keys()
    }
}

/// Reduces a handler's result to what the HTTP layer would send.
pub(crate) fn seen(operation: Operation, result: Result<Option<Response>>) -> Value {
    match result {
        Err(Error::InvalidRequest(message)) => json!({"status": 400, "error": message}),
        Err(Error::UnsupportedOperation) => json!({"status": 405}),
        Err(Error::UnsupportedPath) => json!({"status": 404, "error": "unsupported path"}),
        Err(Error::NotFound) => json!({"status": 404}),
        Err(other) => json!({"status": 500, "error": other.to_string()}),
        Ok(None) if matches!(operation, Operation::Read | Operation::List) => {
            json!({"status": 404})
        }
        Ok(None) => json!({"status": 204}),
        Ok(Some(response)) => {
            if let Some(raw) = response.raw {
                return json!({"status": raw.status, "body": String::from_utf8_lossy(&raw.body)});
            }
            let mut out = json!({
                "status": response.status.unwrap_or(200),
                "data": response.data,
            });
            if !response.warnings.is_empty() {
                out["warnings"] = json!(response.warnings);
            }
            if let Some(secret) = response.secret {
                out["lease_id"] = json!(secret.lease_id);
                out["lease_duration"] = json!(secret.ttl.as_secs());
                out["renewable"] = json!(secret.renewable);
            }
            out
        }
    }
}

/// `expected` is a pattern: objects match when each listed key matches (others are ignored,
/// so tables state only what matters), `"<time>"` matches any RFC 3339 UTC timestamp, and
/// everything else must be equal. Use [`keys`] where the exact key set matters.
pub(crate) fn matches(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::String(text), Value::String(pattern)) if pattern == "<time>" => is_timestamp(text),
        (Value::Object(actual), Value::Object(expected)) => expected.iter().all(|(key, want)| {
            matches(actual.get(key).unwrap_or(&Value::Null), want)
                && (actual.contains_key(key) || want.is_null())
        }),
        (Value::Array(actual), Value::Array(expected)) => {
            actual.len() == expected.len()
                && actual.iter().zip(expected).all(|(a, e)| matches(a, e))
        }
        _ => actual == expected,
    }
}

fn is_timestamp(text: &str) -> bool {
    text.len() >= 20
        && text.ends_with('Z')
        && text.as_bytes()[4] == b'-'
        && text.as_bytes()[10] == b'T'
}

/// The keys of an object, in order.
pub(crate) fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .map(|map| map.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn kv_version_reads_mount_options() {
    let cases = [
        (json!({}), 1),
        (json!({"version": ""}), 1),
        (json!({"version": "1"}), 1),
        (json!({"version": 1}), 1),
        (json!({"version": "2"}), 2),
        (json!({"version": 2}), 2),
        (json!({"version": "3"}), 0),
        (json!({"version": " 2"}), 0),
        (json!({"version": true}), 0),
    ];
    for (options, want) in cases {
        let options = options.as_object().unwrap().clone();
        assert_eq!(crate::kv_version(&options), want, "{options:?}");
        assert_eq!(
            crate::new_backend(&options).is_ok(),
            want != 0,
            "{options:?}"
        );
    }
}
