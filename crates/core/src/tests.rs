//! Pipeline tests: init, unseal, sealed behaviour and routing through the core.

use std::{sync::Arc, time::Duration};

use mayfly_barrier::UnsealKey;
use mayfly_sdk::{Error, Operation, Request, logical::ClientToken};
use serde_json::{Value, json};

use crate::{Core, CoreConfig, registry::Registry};

fn core() -> Arc<Core> {
    let mut registry = Registry::default();
    registry.register("cubbyhole", Arc::new(crate::cubbyhole::factory));
    Core::new(
        Arc::new(mayfly_storage::InmemBackend::new()),
        CoreConfig {
            default_lease_ttl: Duration::from_secs(768 * 3600),
            max_lease_ttl: Duration::from_secs(768 * 3600),
            cluster_name: None,
            version: "0.0.0-test".into(),
            registry,
        },
    )
}

fn request(operation: Operation, path: &str, token: Option<&str>, data: Value) -> Request {
    let mut req = Request::new(operation, path);
    req.client_token = token.map(|t| ClientToken(t.to_owned()));
    if let Value::Object(map) = data {
        req.data = map;
    }
    req
}

async fn unsealed_core() -> (Arc<Core>, String, Vec<UnsealKey>) {
    let core = core();
    let init = core.initialize(3, 2, None).await.unwrap();
    assert!(core.is_sealed());
    for key in &init.keys[..2] {
        core.submit_unseal_key(key).await.unwrap();
    }
    assert!(!core.is_sealed());
    (core, init.root_token, init.keys)
}

#[tokio::test]
async fn root_token_reads_and_writes_cubbyhole() {
    let (core, root, _) = unsealed_core().await;
    assert!(root.starts_with("hvs.") && root.len() == 28, "{root}");
    let write = request(
        Operation::Update,
        "cubbyhole/app",
        Some(&root),
        json!({"pw": "s3cret"}),
    );
    assert!(core.handle_request(write).await.unwrap().is_none());
    let read = core
        .handle_request(request(
            Operation::Read,
            "cubbyhole/app",
            Some(&root),
            json!({}),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.data.unwrap()["pw"], "s3cret");
    let list = core
        .handle_request(request(
            Operation::List,
            "cubbyhole/",
            Some(&root),
            json!({}),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(list.data.unwrap()["keys"], json!(["app"]));
}

#[tokio::test]
async fn missing_or_unknown_tokens_are_denied() {
    let (core, _, _) = unsealed_core().await;
    let no_token = core
        .handle_request(request(Operation::Read, "cubbyhole/x", None, json!({})))
        .await;
    assert!(matches!(no_token, Err(Error::PermissionDenied)));
    let bad = core
        .handle_request(request(
            Operation::Read,
            "cubbyhole/x",
            Some("hvs.nope"),
            json!({}),
        ))
        .await;
    assert!(matches!(bad, Err(Error::InvalidToken)));
    let unknown_mount = core
        .handle_request(request(
            Operation::Read,
            "nowhere/x",
            Some("hvs.nope"),
            json!({}),
        ))
        .await;
    assert!(matches!(unknown_mount, Err(Error::UnsupportedPath)));
}

#[tokio::test]
async fn sealed_core_answers_only_sealed_safe_routes() {
    let (core, root, keys) = unsealed_core().await;
    core.seal().await;
    let read = core
        .handle_request(request(
            Operation::Read,
            "cubbyhole/x",
            Some(&root),
            json!({}),
        ))
        .await;
    assert!(matches!(read, Err(Error::Sealed)));
    let status = core
        .handle_request(request(Operation::Read, "sys/seal-status", None, json!({})))
        .await
        .unwrap()
        .unwrap();
    let body: Value = serde_json::from_slice(&status.raw.unwrap().body).unwrap();
    assert_eq!(body["sealed"], true);
    assert_eq!(body["t"], 2);
    // The data survives a seal/unseal cycle.
    for key in &keys[1..] {
        core.submit_unseal_key(key).await.unwrap();
    }
    assert!(!core.is_sealed());
}

#[tokio::test]
async fn second_init_is_rejected() {
    let (core, _, _) = unsealed_core().await;
    let again = core.initialize(1, 1, None).await;
    assert!(
        matches!(again, Err(Error::InvalidRequest(msg)) if msg.contains("already initialized"))
    );
}
