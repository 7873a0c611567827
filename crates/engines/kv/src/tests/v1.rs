//! KV v1 behaviour, against responses recorded from OpenBao.

use std::time::Duration;

use mayfly_sdk::Operation::{self, Delete, List, Read, Update};
use serde_json::json;

use super::Harness;

#[tokio::test]
async fn crud_and_list() {
    let kv = Harness::v1();
    let steps = [
        (Read, "foo", json!({}), json!({"status": 404})),
        (
            Update,
            "foo",
            json!({"a": "b", "n": {"x": 1}}),
            json!({"status": 204}),
        ),
        (
            Read,
            "foo",
            json!({}),
            json!({"status": 200, "data": {"a": "b", "n": {"x": 1}}, "lease_id": "",
                   "renewable": false, "lease_duration": 2_764_800}),
        ),
        // A write replaces the whole object.
        (Update, "foo", json!({"c": true}), json!({"status": 204})),
        (
            Read,
            "foo",
            json!({}),
            json!({"status": 200, "data": {"c": true}}),
        ),
        (Update, "dir/x", json!({"a": 1}), json!({"status": 204})),
        (Update, "dir/sub/y", json!({"a": 1}), json!({"status": 204})),
        (
            List,
            "",
            json!({}),
            json!({"status": 200, "data": {"keys": ["dir/", "foo"]}}),
        ),
        (
            List,
            "dir/",
            json!({}),
            json!({"status": 200, "data": {"keys": ["sub/", "x"]}}),
        ),
        (
            List,
            "dir",
            json!({}),
            json!({"status": 200, "data": {"keys": ["sub/", "x"]}}),
        ),
        (List, "nothing/", json!({}), json!({"status": 404})),
        (List, "foo/", json!({}), json!({"status": 404})),
        (Delete, "foo", json!({}), json!({"status": 204})),
        (Delete, "foo", json!({}), json!({"status": 204})),
        (Read, "foo", json!({}), json!({"status": 404})),
        (Read, "", json!({}), json!({"status": 404})),
    ];
    for (operation, path, body, expected) in steps {
        kv.check(operation, path, body, expected).await;
    }
}

#[tokio::test]
async fn bad_writes_are_refused() {
    let kv = Harness::v1();
    kv.check(
        Update,
        "foo",
        json!({}),
        json!({"status": 400, "error": "missing data fields"}),
    )
    .await;
    kv.check(
        Update,
        "",
        json!({"a": 1}),
        json!({"status": 400, "error": "missing path"}),
    )
    .await;
    kv.check(
        Update,
        "dir/",
        json!({"a": 1}),
        json!({"status": 400, "error": "cannot write to a path ending in '/'"}),
    )
    .await;
    assert!(kv.stored_keys().is_empty());
}

#[tokio::test]
async fn ttl_in_the_data_is_the_advisory_lease_duration() {
    let kv = Harness::v1();
    // (stored ttl/lease fields, lease_duration OpenBao reports with the 768h default)
    let cases = [
        (json!({"ttl": "1h"}), 3600),
        (json!({"ttl": 90}), 90),
        (json!({"ttl": "90"}), 90),
        (json!({"ttl": "1d"}), 86_400),
        (json!({"ttl": "1.5h"}), 5400),
        (json!({"ttl": ""}), 0),
        (json!({"ttl": null}), 0),
        (json!({"lease": "30m"}), 1800),
        (json!({"ttl": "1m", "lease": "30m"}), 60),
        // Unparsable: the mount default, and `lease` is not consulted.
        (json!({"ttl": "xyz", "lease": "30m"}), 2_764_800),
        (json!({"ttl": 1.7}), 2_764_800),
        (json!({"ttl": true}), 2_764_800),
        // OpenBao reports -5; clients reject negative durations, so zero.
        (json!({"ttl": "-5"}), 0),
        (json!({"other": 1}), 2_764_800),
    ];
    for (data, want) in cases {
        kv.check(Update, "t", data.clone(), json!({"status": 204}))
            .await;
        kv.check(
            Read,
            "t",
            json!({}),
            json!({"status": 200, "data": data, "lease_duration": want, "lease_id": "",
                   "renewable": false}),
        )
        .await;
    }
}

#[tokio::test]
async fn the_mount_default_ttl_applies_and_the_max_does_not_cap() {
    let kv = Harness::v1();
    kv.call(Update, "plain", json!({"a": 1})).await.unwrap();
    kv.call(Update, "long", json!({"ttl": "5h"})).await.unwrap();
    for (path, want) in [("plain", 7200), ("long", 18_000)] {
        let mut req = kv.request(Read, path, json!({}));
        req.mount_ttls.default_lease_ttl = Duration::from_secs(7200);
        req.mount_ttls.max_lease_ttl = Duration::from_secs(3 * 3600);
        let seen = super::seen(Operation::Read, kv.backend.handle(req).await);
        assert_eq!(seen["lease_duration"], want, "{path}: {seen}");
    }
}

#[tokio::test]
async fn existence_and_storage_are_per_path() {
    let kv = Harness::v1();
    let exists = |path: &'static str| {
        let req = kv.request(Update, path, json!({"a": 1}));
        let backend = kv.backend.clone();
        async move { backend.exists(&req).await.unwrap() }
    };
    assert_eq!(exists("foo").await, Some(false));
    kv.call(Update, "foo", json!({"a": 1})).await.unwrap();
    assert_eq!(exists("foo").await, Some(true));
    // Values are stored as versioned records, under the v1 prefix only.
    assert_eq!(kv.stored_keys(), ["v1/foo"]);
    let raw = mayfly_sdk::Storage::get(kv.storage.as_ref(), "v1/foo")
        .await
        .unwrap()
        .unwrap();
    let record: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(record, json!({"version": 1, "data": {"a": 1}}));
}

#[tokio::test]
async fn other_operations_and_help() {
    let kv = Harness::v1();
    kv.check(
        Operation::Patch,
        "foo",
        json!({"a": 1}),
        json!({"status": 405}),
    )
    .await;
    let help = kv.data(Operation::Help, "foo", json!({})).await;
    assert!(help["help"].as_str().unwrap().starts_with("Pass-through"));
}
