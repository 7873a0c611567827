//! The broker in the pipeline: what is recorded, what is hashed, and failing closed.

use std::sync::{Arc, atomic::Ordering};

use mayfly_audit::Verifier;
use mayfly_sdk::{Error, Operation};
use serde_json::{Value, json};

use crate::{
    Core,
    tests::{request, unsealed_core},
};

async fn accessor_count(core: &Arc<Core>, root: &str) -> usize {
    let list = core
        .handle_request(request(
            Operation::List,
            "auth/token/accessors/",
            Some(root),
            json!({}),
        ))
        .await
        .unwrap()
        .unwrap();
    list.data.unwrap()["keys"].as_array().unwrap().len()
}

async fn create_token(core: &Arc<Core>, root: &str) -> Result<String, Error> {
    let response = core
        .handle_request(request(
            Operation::Update,
            "auth/token/create",
            Some(root),
            json!({"policies": ["default"], "meta": {"user": "bob"}}),
        ))
        .await?;
    Ok(response.unwrap().auth.unwrap().client_token)
}

#[tokio::test]
async fn every_request_gets_a_request_and_a_response_entry_with_secrets_hashed() {
    let (core, root, _) = unsealed_core().await;
    let sink = core
        .unsealed()
        .unwrap()
        .audit
        .add_memory_device("mem/", &[])
        .await;
    let token = create_token(&core, &root).await.unwrap();
    core.handle_request(request(
        Operation::Update,
        "cubbyhole/app",
        Some(&token),
        json!({"password": "hunter2", "port": 5432}),
    ))
    .await
    .unwrap();

    let entries = sink.entries();
    assert_eq!(entries.len(), 4, "{entries:#?}");
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["request", "response", "request", "response"]);
    assert_eq!(entries[0]["request"], entries[1]["request"]);
    assert_eq!(entries[0]["request"]["path"], "auth/token/create");
    assert_eq!(entries[0]["request"]["mount_type"], "token");
    assert_eq!(entries[0]["request"]["mount_class"], "auth");
    assert_eq!(entries[0]["auth"]["policies"], json!(["root"]));
    assert_eq!(entries[0]["auth"]["policy_results"]["allowed"], true);

    let hash = core.unsealed().unwrap().audit.hash("mem/", &token).unwrap();
    assert_eq!(entries[1]["response"]["auth"]["client_token"], json!(hash));
    assert_eq!(entries[1]["response"]["auth"]["metadata"]["user"], "bob");
    assert_eq!(entries[2]["auth"]["client_token"], json!(hash));
    assert_eq!(entries[2]["request"]["client_token"], json!(hash));
    let root_hash = core.unsealed().unwrap().audit.hash("mem/", &root).unwrap();
    assert_eq!(entries[0]["auth"]["client_token"], json!(root_hash));
    assert!(
        entries[2]["request"]["data"]["password"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:")
    );
    assert_eq!(entries[2]["request"]["data"]["port"], 5432);

    let text = sink.text();
    for secret in [token.as_str(), root.as_str(), "hunter2"] {
        assert!(!text.contains(secret), "{secret} in the log");
    }
    let mut verifier = Verifier::new(None).unwrap();
    verifier.verify_file("mem", text.as_bytes()).unwrap();
    assert_eq!(verifier.summary().entries, 4);
}

#[tokio::test]
async fn a_failed_check_is_recorded_with_its_error() {
    let (core, _, _) = unsealed_core().await;
    let sink = core
        .unsealed()
        .unwrap()
        .audit
        .add_memory_device("mem/", &[])
        .await;
    let denied = core
        .handle_request(request(
            Operation::Read,
            "cubbyhole/x",
            Some("hvs.bogus"),
            json!({}),
        ))
        .await;
    assert!(matches!(denied, Err(Error::InvalidToken)));
    let entries = sink.entries();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["error"], "invalid token");
    assert_eq!(entries[1]["error"], "invalid token");
    assert_eq!(entries[0]["auth"], json!({"token_type": "default"}));
    assert!(
        entries[0]["request"]["client_token"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:")
    );
}

#[tokio::test]
async fn health_and_the_seal_lifecycle_are_not_audited() {
    let (core, root, _) = unsealed_core().await;
    let sink = core
        .unsealed()
        .unwrap()
        .audit
        .add_memory_device("mem/", &[])
        .await;
    sink.fail.store(true, Ordering::SeqCst);
    for path in ["sys/health", "sys/seal-status", "sys/leader"] {
        core.handle_request(request(Operation::Read, path, None, json!({})))
            .await
            .unwrap();
    }
    assert!(sink.text().is_empty());
    // Everything else fails while the only device is down.
    let denied = core
        .handle_request(request(
            Operation::Read,
            "sys/mounts",
            Some(&root),
            json!({}),
        ))
        .await;
    assert!(matches!(denied, Err(Error::Internal(_))));
    core.handle_request(request(
        Operation::Update,
        "sys/seal",
        Some(&root),
        json!({}),
    ))
    .await
    .unwrap();
    assert!(core.is_sealed());
}

#[tokio::test]
async fn nothing_is_issued_when_no_device_can_record_the_request() {
    let (core, root, _) = unsealed_core().await;
    let before = accessor_count(&core, &root).await;
    let sink = core
        .unsealed()
        .unwrap()
        .audit
        .add_memory_device("mem/", &[])
        .await;
    sink.fail.store(true, Ordering::SeqCst);
    let refused = create_token(&core, &root).await;
    assert!(matches!(refused, Err(Error::Internal(_))), "{refused:?}");
    sink.fail.store(false, Ordering::SeqCst);
    assert_eq!(accessor_count(&core, &root).await, before);
}

#[tokio::test]
async fn a_token_whose_response_cannot_be_recorded_is_revoked() {
    let (core, root, _) = unsealed_core().await;
    let before = accessor_count(&core, &root).await;
    let sink = core
        .unsealed()
        .unwrap()
        .audit
        .add_memory_device("mem/", &[])
        .await;
    sink.fail_responses.store(true, Ordering::SeqCst);
    let refused = create_token(&core, &root).await;
    assert!(matches!(refused, Err(Error::Internal(_))), "{refused:?}");
    sink.fail_responses.store(false, Ordering::SeqCst);
    assert_eq!(accessor_count(&core, &root).await, before);
}

#[tokio::test]
async fn one_working_device_is_enough_and_the_other_failures_are_counted() {
    let (core, root, _) = unsealed_core().await;
    let audit = &core.unsealed().unwrap().audit;
    let good = audit.add_memory_device("good/", &[]).await;
    let bad = audit.add_memory_device("bad/", &[]).await;
    bad.fail.store(true, Ordering::SeqCst);
    create_token(&core, &root).await.unwrap();
    assert_eq!(good.entries().len(), 2);
    let failures: Vec<(String, u64)> = audit
        .list()
        .into_iter()
        .map(|d| (d.entry.path, d.failures))
        .collect();
    assert!(failures.contains(&("bad/".to_owned(), 1)), "{failures:?}");
    assert!(failures.contains(&("good/".to_owned(), 0)), "{failures:?}");
}

#[tokio::test]
async fn raw_devices_keep_values_and_non_hmac_keys_stay_clear() {
    let (core, root, _) = unsealed_core().await;
    core.handle_request(request(
        Operation::Update,
        "sys/mounts/cubbyhole/tune",
        Some(&root),
        json!({"audit_non_hmac_request_keys": ["visible"]}),
    ))
    .await
    .unwrap();
    let audit = &core.unsealed().unwrap().audit;
    let hashed = audit.add_memory_device("hashed/", &[]).await;
    let raw = audit
        .add_memory_device("raw/", &[("log_raw", "true")])
        .await;
    core.handle_request(request(
        Operation::Update,
        "cubbyhole/x",
        Some(&root),
        json!({"visible": "shown", "secret": "hidden"}),
    ))
    .await
    .unwrap();
    let entry = &hashed.entries()[0];
    assert_eq!(entry["request"]["data"]["visible"], "shown");
    assert_ne!(entry["request"]["data"]["secret"], "hidden");
    let entry = &raw.entries()[0];
    assert_eq!(entry["request"]["data"]["secret"], "hidden");
    assert_eq!(entry["auth"]["client_token"], json!(root));
}

#[tokio::test]
async fn list_responses_can_be_elided_and_accessors_left_clear() {
    let (core, root, _) = unsealed_core().await;
    for key in ["a", "b", "c"] {
        core.handle_request(request(
            Operation::Update,
            &format!("cubbyhole/{key}"),
            Some(&root),
            json!({"v": "1"}),
        ))
        .await
        .unwrap();
    }
    let sink = core
        .unsealed()
        .unwrap()
        .audit
        .add_memory_device(
            "mem/",
            &[("elide_list_responses", "true"), ("hmac_accessor", "false")],
        )
        .await;
    core.handle_request(request(
        Operation::List,
        "cubbyhole/",
        Some(&root),
        json!({}),
    ))
    .await
    .unwrap();
    let entries = sink.entries();
    assert_eq!(entries[1]["response"]["data"]["keys"], 3);
    let accessor = entries[0]["auth"]["accessor"].as_str().unwrap();
    assert!(!accessor.starts_with("hmac-sha256:"), "{accessor}");
}

#[tokio::test]
async fn devices_are_managed_through_sys_audit() {
    let (core, root, _) = unsealed_core().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let enable = |body: Value| {
        core.handle_request(request(
            Operation::Update,
            "sys/audit/file",
            Some(&root),
            body,
        ))
    };
    let missing = enable(json!({"type": "file", "options": {}})).await;
    assert!(matches!(missing, Err(Error::InvalidRequest(m)) if m == "file_path is required"));
    let bad_type = enable(json!({"type": "bogus"})).await;
    assert!(matches!(bad_type, Err(Error::InvalidRequest(_))));
    enable(json!({
        "type": "file",
        "description": "main log",
        "options": {"file_path": path.to_str().unwrap(), "log_raw": false},
    }))
    .await
    .unwrap();
    let again = enable(json!({"type": "file", "options": {"file_path": "discard"}})).await;
    assert!(matches!(again, Err(Error::InvalidRequest(m)) if m == "path already in use"));

    let listed = core
        .handle_request(request(
            Operation::Read,
            "sys/audit",
            Some(&root),
            json!({}),
        ))
        .await
        .unwrap()
        .unwrap()
        .data
        .unwrap();
    let device = &listed["file/"];
    assert_eq!(device["type"], "file");
    assert_eq!(device["description"], "main log");
    assert_eq!(device["options"]["log_raw"], "false");
    let public_key = device["public_key"].as_str().unwrap().to_owned();

    let hashed = core
        .handle_request(request(
            Operation::Update,
            "sys/audit-hash/file",
            Some(&root),
            json!({"input": "hunter2"}),
        ))
        .await
        .unwrap()
        .unwrap()
        .data
        .unwrap();
    let unknown = core
        .handle_request(request(
            Operation::Update,
            "sys/audit-hash/nope",
            Some(&root),
            json!({"input": "x"}),
        ))
        .await;
    assert!(matches!(unknown, Err(Error::InvalidRequest(_))));

    core.handle_request(request(
        Operation::Delete,
        "sys/audit/file",
        Some(&root),
        json!({}),
    ))
    .await
    .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(hashed["hash"].as_str().unwrap()));
    assert!(!text.contains("hunter2"));
    let mut verifier = Verifier::new(Some(&public_key)).unwrap();
    verifier.verify_file("audit.log", text.as_bytes()).unwrap();
    let summary = verifier.summary();
    assert!(summary.checkpoints >= 1, "{summary:?}");
    assert_eq!(summary.unsigned_tail, 0, "{summary:?}");
}

#[tokio::test]
async fn devices_and_their_chains_survive_a_seal() {
    let (core, root, keys) = unsealed_core().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    core.handle_request(request(
        Operation::Update,
        "sys/audit/file",
        Some(&root),
        json!({"type": "file", "options": {"file_path": path.to_str().unwrap()}}),
    ))
    .await
    .unwrap();
    core.handle_request(request(
        Operation::Read,
        "sys/mounts",
        Some(&root),
        json!({}),
    ))
    .await
    .unwrap();
    core.seal().await;
    for key in &keys[..2] {
        core.submit_unseal_key(key).await.unwrap();
    }
    core.handle_request(request(
        Operation::Read,
        "sys/mounts",
        Some(&root),
        json!({}),
    ))
    .await
    .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let mut verifier = Verifier::new(None).unwrap();
    verifier.verify_file("audit.log", text.as_bytes()).unwrap();
    let summary = verifier.summary();
    assert_eq!(summary.headers, 2, "{text}");
    assert_eq!(summary.public_keys.len(), 1);
    // A read before and one after the seal. The enable request itself was logged (or not)
    // by the devices that existed when it started, so both of its entries stay together.
    assert_eq!(summary.entries, 4, "{text}");
}

#[tokio::test]
async fn prefixed_lines_keep_vaults_entries_and_verify() {
    let (core, root, _) = unsealed_core().await;
    let sink = core
        .unsealed()
        .unwrap()
        .audit
        .add_memory_device("mem/", &[("prefix", "@cee: ")])
        .await;
    core.handle_request(request(
        Operation::Read,
        "sys/mounts",
        Some(&root),
        json!({}),
    ))
    .await
    .unwrap();
    let text = sink.text();
    assert!(
        text.lines().all(|line| line.starts_with("@cee: {")),
        "{text}"
    );
    let entries: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(&line["@cee: ".len()..]).unwrap())
        .collect();
    assert_eq!(entries[1]["type"], "request");
    assert_eq!(entries[2]["type"], "response");
    let mut verifier = Verifier::new(None).unwrap();
    verifier.verify_file("mem", text.as_bytes()).unwrap();
    assert_eq!(verifier.summary().entries, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_writes_and_keep_one_chain() {
    let (core, root, _) = unsealed_core().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    core.handle_request(request(
        Operation::Update,
        "sys/audit/file",
        Some(&root),
        json!({"type": "file", "options": {"file_path": path.to_str().unwrap()}}),
    ))
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let core = core.clone();
        let root = root.clone();
        tasks.push(tokio::spawn(async move {
            core.handle_request(request(
                Operation::Update,
                &format!("cubbyhole/k{i}"),
                Some(&root),
                json!({"v": "x"}),
            ))
            .await
            .unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let mut verifier = Verifier::new(None).unwrap();
    verifier.verify_file("audit.log", text.as_bytes()).unwrap();
    assert_eq!(verifier.summary().entries, 400);
    for i in 0..200 {
        let needle = format!("\"path\":\"cubbyhole/k{i}\"");
        assert_eq!(
            text.matches(&needle).count(),
            2,
            "request and response of k{i}"
        );
    }
}
