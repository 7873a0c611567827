//! A scripted HTTP server for driving the CLI end to end: replies are set
//! per method and path, and every request is recorded (method, path,
//! query, the Vault headers, content type and body) for assertions.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use mayfly_cli::{Captured, run_captured};
use serde_json::{Value, json};

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub token: Option<String>,
    pub vault_request: Option<String>,
    pub namespace: Option<String>,
    pub wrap_ttl: Option<String>,
    pub content_type: Option<String>,
    pub raw_body: String,
    pub body: Option<Value>,
}

#[derive(Default)]
struct Script {
    replies: HashMap<(String, String), (u16, Option<Value>)>,
    seen: Vec<Seen>,
}

type Shared = Arc<Mutex<Script>>;

async fn handler(
    State(script): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let seen = Seen {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        token: header("x-vault-token"),
        vault_request: header("x-vault-request"),
        namespace: header("x-vault-namespace"),
        wrap_ttl: header("x-vault-wrap-ttl"),
        content_type: header("content-type"),
        raw_body: String::from_utf8_lossy(&body).into_owned(),
        body: serde_json::from_slice(&body).ok(),
    };
    let mut script = script.lock().unwrap();
    let reply = script
        .replies
        .get(&(seen.method.clone(), seen.path.clone()))
        .cloned();
    script.seen.push(seen);
    match reply {
        Some((status, Some(body))) => (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            body.to_string(),
        )
            .into_response(),
        Some((status, None)) => StatusCode::from_u16(status).unwrap().into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [("content-type", "application/json")],
            json!({"errors": []}).to_string(),
        )
            .into_response(),
    }
}

pub struct Server {
    pub address: String,
    script: Shared,
}

impl Server {
    pub async fn start() -> Self {
        let script: Shared = Arc::default();
        let app = axum::Router::new()
            .fallback(handler)
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { address, script }
    }

    pub fn reply(&self, method: &str, path: &str, status: u16, body: Option<Value>) {
        self.script
            .lock()
            .unwrap()
            .replies
            .insert((method.to_string(), path.to_string()), (status, body));
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.script.lock().unwrap().seen.clone()
    }

    /// The most recent request.
    pub fn last(&self) -> Seen {
        self.seen().last().cloned().expect("no request was made")
    }

    /// Forgets the requests seen so far.
    pub fn clear(&self) {
        self.script.lock().unwrap().seen.clear();
    }

    pub async fn run(&self, args: &[&str]) -> Captured {
        self.run_with(args, &[], "").await
    }

    pub async fn run_with(&self, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Captured {
        let mut vars: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        vars.insert("VAULT_ADDR".into(), self.address.clone());
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        run_captured(&args, "Mayfly v0.1.0 (test)", vars, stdin.as_bytes()).await
    }
}
