//! KV v2 behaviour, against responses recorded from OpenBao.

use mayfly_sdk::Operation::{self, Delete, List, Patch, Read, Update};
use serde_json::{Value, json};

use super::{Harness, keys};

/// What a write returns: the new version's metadata.
fn written(version: u64) -> Value {
    json!({"status": 200, "data": {"created_time": "<time>", "custom_metadata": null,
           "deletion_time": "", "destroyed": false, "version": version}})
}

#[tokio::test]
async fn versions_accumulate_and_stay_readable() {
    let kv = Harness::v2();
    let steps = [
        (Read, "data/foo", json!({}), json!({"status": 404})),
        (
            Update,
            "data/foo",
            json!({"data": {"a": "b", "n": {"x": 1}}}),
            written(1),
        ),
        (
            Read,
            "data/foo",
            json!({}),
            json!({"status": 200, "data": {"data": {"a": "b", "n": {"x": 1}},
                   "metadata": {"created_time": "<time>", "custom_metadata": null,
                                "deletion_time": "", "destroyed": false, "version": 1}}}),
        ),
        (Update, "data/foo", json!({"data": {"a": "c"}}), written(2)),
        (
            Read,
            "data/foo",
            json!({}),
            json!({"data": {"data": {"a": "c"}, "metadata": {"version": 2}}}),
        ),
        (
            Read,
            "data/foo",
            json!({"version": "1"}),
            json!({"data": {"data": {"a": "b", "n": {"x": 1}}, "metadata": {"version": 1}}}),
        ),
        // Zero and negative numbers mean the latest version, as in Vault.
        (
            Read,
            "data/foo",
            json!({"version": "0"}),
            json!({"data": {"metadata": {"version": 2}}}),
        ),
        (
            Read,
            "data/foo",
            json!({"version": "-1"}),
            json!({"data": {"metadata": {"version": 2}}}),
        ),
        (
            Read,
            "data/foo",
            json!({"version": "99"}),
            json!({"status": 404}),
        ),
        // An empty object and null are both stored as given.
        (Update, "data/foo", json!({"data": {}}), written(3)),
        (Read, "data/foo", json!({}), json!({"data": {"data": {}}})),
        (Update, "data/foo", json!({"data": null}), written(4)),
        (
            Read,
            "data/foo",
            json!({}),
            json!({"status": 200, "data": {"data": null, "metadata": {"version": 4}}}),
        ),
    ];
    for (operation, path, body, expected) in steps {
        kv.check(operation, path, body, expected).await;
    }
    let write = kv.data(Update, "data/foo", json!({"data": {"z": 1}})).await;
    assert_eq!(
        keys(&write),
        [
            "created_time",
            "custom_metadata",
            "deletion_time",
            "destroyed",
            "version"
        ]
    );
    let read = kv.data(Read, "data/foo", json!({})).await;
    assert_eq!(keys(&read), ["data", "metadata"]);
    assert_eq!(
        read["metadata"], write,
        "a read shows the same metadata the write returned"
    );
}

#[tokio::test]
async fn bad_input_is_an_invalid_request() {
    let kv = Harness::v2();
    kv.call(Update, "data/foo", json!({"data": {"a": 1}}))
        .await
        .unwrap();
    let cases = [
        (Update, "data/foo", json!({"a": "c"}), "no data provided"),
        (Update, "data/foo", json!({}), "no data provided"),
        (
            Update,
            "data/foo",
            json!({"data": "x"}),
            "error converting input for field \"data\"",
        ),
        (
            Update,
            "data/foo",
            json!({"data": [1]}),
            "error converting input for field \"data\"",
        ),
        (
            Update,
            "data/foo",
            json!({"data": {}, "options": "x"}),
            "error converting input for field \"options\"",
        ),
        (
            Update,
            "data/foo",
            json!({"data": {}, "options": {"cas": "x"}}),
            "error parsing check-and-set parameter",
        ),
        (
            Update,
            "data/foo",
            json!({"data": {}, "options": {"cas": 1.5}}),
            "error parsing check-and-set parameter",
        ),
        (
            Update,
            "data/foo",
            json!({"data": {}, "options": {"cas": [1]}}),
            "error parsing check-and-set parameter",
        ),
        (Update, "data/", json!({"data": {}}), "missing path"),
        (
            Update,
            "data/dir/",
            json!({"data": {}}),
            "cannot write to a path ending in '/'",
        ),
        (
            Update,
            "metadata/dir/",
            json!({"max_versions": 1}),
            "cannot write to a path ending in '/'",
        ),
        (
            Read,
            "data/foo",
            json!({"version": "abc"}),
            "error converting input for field \"version\"",
        ),
        (
            Read,
            "subkeys/foo",
            json!({"depth": "x"}),
            "error converting input for field \"depth\"",
        ),
        (
            Patch,
            "data/foo",
            json!({"options": {"cas": 1}}),
            "no data provided",
        ),
        (
            Patch,
            "data/foo",
            json!({"data": "x"}),
            "error converting input for field \"data\"",
        ),
        (
            Update,
            "delete/foo",
            json!({}),
            "No version number provided",
        ),
        (
            Update,
            "delete/foo",
            json!({"versions": []}),
            "No version number provided",
        ),
        (
            Update,
            "undelete/foo",
            json!({}),
            "No version number provided",
        ),
        (
            Update,
            "destroy/foo",
            json!({}),
            "no version number provided",
        ),
        (
            Update,
            "delete/foo",
            json!({"versions": "1,x"}),
            "error converting input for field \"versions\"",
        ),
        (
            Update,
            "delete/foo",
            json!({"versions": [1.5]}),
            "error converting input for field \"versions\"",
        ),
        (
            Update,
            "metadata/foo",
            json!({"max_versions": -1}),
            "max_versions must be between 0 and",
        ),
        (
            Update,
            "metadata/foo",
            json!({"max_versions": "abc"}),
            "error converting input for field \"max_versions\"",
        ),
        (
            Update,
            "metadata/foo",
            json!({"delete_version_after": -5}),
            "cannot provide negative value '-5'",
        ),
        (
            Update,
            "metadata/foo",
            json!({"delete_version_after": "-5s"}),
            "cannot provide negative value '-5'",
        ),
        (
            Update,
            "metadata/foo",
            json!({"delete_version_after": "soon"}),
            "error converting input for field \"delete_version_after\"",
        ),
        (
            Update,
            "metadata/foo",
            json!({"custom_metadata": "x=y"}),
            "error converting input for field \"custom_metadata\"",
        ),
        (
            Update,
            "config",
            json!({"max_versions": -1}),
            "max_versions must be between 0 and",
        ),
        (
            Update,
            "config",
            json!({"delete_version_after": "later"}),
            "error converting input for field \"delete_version_after\"",
        ),
    ];
    for (operation, path, body, message) in cases {
        let seen = kv.seen(operation, path, body.clone()).await;
        assert_eq!(seen["status"], 400, "{operation:?} {path} {body}: {seen}");
        let error = seen["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(message),
            "{operation:?} {path} {body}: {error:?} lacks {message:?}"
        );
    }
    // Nothing above created a version or a key.
    kv.check(
        Read,
        "metadata/foo",
        json!({}),
        json!({"data": {"current_version": 1, "max_versions": 0}}),
    )
    .await;
}

#[tokio::test]
async fn check_and_set() {
    let kv = Harness::v2();
    let mismatch = json!({"status": 400, "error": "check-and-set parameter did not match the current version"});
    let required =
        json!({"status": 400, "error": "check-and-set parameter required for this call"});
    let steps = [
        // cas 0: only while the key does not exist.
        (
            Update,
            "data/k",
            json!({"data": {"v": 1}, "options": {"cas": 0}}),
            written(1),
        ),
        (
            Update,
            "data/k",
            json!({"data": {"v": 2}, "options": {"cas": 0}}),
            mismatch.clone(),
        ),
        (
            Update,
            "data/k",
            json!({"data": {"v": 2}, "options": {"cas": 2}}),
            mismatch.clone(),
        ),
        (
            Update,
            "data/k",
            json!({"data": {"v": 2}, "options": {"cas": -1}}),
            mismatch.clone(),
        ),
        (
            Update,
            "data/k",
            json!({"data": {"v": 2}, "options": {"cas": null}}),
            mismatch.clone(),
        ),
        (
            Update,
            "data/k",
            json!({"data": {"v": 2}, "options": {"cas": 1}}),
            written(2),
        ),
        // Numeric strings are accepted, as Vault decodes weakly.
        (
            Update,
            "data/k",
            json!({"data": {"v": 3}, "options": {"cas": "2"}}),
            written(3),
        ),
        // Other options and a null options object are ignored.
        (
            Update,
            "data/k",
            json!({"data": {"v": 4}, "options": {"other": 1}}),
            written(4),
        ),
        (
            Update,
            "data/k",
            json!({"data": {"v": 5}, "options": null}),
            written(5),
        ),
        // Required per key.
        (
            Update,
            "metadata/k",
            json!({"cas_required": true}),
            json!({"status": 204}),
        ),
        (
            Update,
            "data/k",
            json!({"data": {"v": 6}}),
            required.clone(),
        ),
        (
            Update,
            "data/k",
            json!({"data": {"v": 6}, "options": {"cas": 5}}),
            written(6),
        ),
        (
            Update,
            "metadata/k",
            json!({"cas_required": false}),
            json!({"status": 204}),
        ),
        (Update, "data/k", json!({"data": {"v": 7}}), written(7)),
        // Required by the mount: every key, including new ones.
        (
            Update,
            "config",
            json!({"cas_required": true}),
            json!({"status": 204}),
        ),
        (
            Update,
            "data/new",
            json!({"data": {"v": 1}}),
            required.clone(),
        ),
        (
            Update,
            "data/new",
            json!({"data": {"v": 1}, "options": {"cas": 0}}),
            written(1),
        ),
        (Patch, "data/new", json!({"data": {"v": 2}}), required),
        (
            Update,
            "metadata/new",
            json!({"cas_required": false}),
            json!({"status": 200, "data": null, "warnings": ["\"cas_required\" set to false, but is mandated by backend config. This value will be ignored."]}),
        ),
    ];
    for (operation, path, body, expected) in steps {
        kv.check(operation, path, body, expected).await;
    }
}

#[tokio::test]
async fn patch_merges_into_the_latest_version() {
    let kv = Harness::v2();
    kv.check(
        Patch,
        "data/p",
        json!({"data": {"a": 1}}),
        json!({"status": 404, "body": ""}),
    )
    .await;
    kv.call(
        Update,
        "data/p",
        json!({"data": {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]}}),
    )
    .await
    .unwrap();
    let steps = [
        (
            Patch,
            "data/p",
            json!({"data": {"a": null, "b": {"c": 5, "x": {"y": 1, "z": null}}, "e": [3], "f": "new"}}),
            written(2),
        ),
        (
            Read,
            "data/p",
            json!({}),
            json!({"data": {"data": {"b": {"c": 5, "d": 3, "x": {"y": 1}}, "e": [3], "f": "new"}}}),
        ),
        (
            Patch,
            "data/p",
            json!({"data": {"a": 1}, "options": {"cas": 1}}),
            json!({"status": 400, "error": "check-and-set parameter did not match the current version"}),
        ),
        (
            Patch,
            "data/p",
            json!({"data": {"a": 1}, "options": {"cas": 2}}),
            written(3),
        ),
        (
            Read,
            "data/p",
            json!({"version": "1"}),
            json!({"data": {"data": {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]}}}),
        ),
        (Delete, "data/p", json!({}), json!({"status": 204})),
        // A deleted latest version: 404 whose body is the version metadata itself.
        (
            Patch,
            "data/p",
            json!({"data": {"a": 2}}),
            json!({"status": 404, "data": {"created_time": "<time>", "custom_metadata": null,
                   "deletion_time": "<time>", "destroyed": false, "version": 3}}),
        ),
    ];
    for (operation, path, body, expected) in steps {
        kv.check(operation, path, body, expected).await;
    }
    // A key with metadata but no version yet has nothing to patch.
    kv.call(Update, "metadata/empty", json!({"max_versions": 2}))
        .await
        .unwrap();
    kv.check(
        Patch,
        "data/empty",
        json!({"data": {"a": 1}}),
        json!({"status": 404, "body": ""}),
    )
    .await;
    // Keys keep their order through a patch.
    kv.call(
        Update,
        "data/order",
        json!({"data": {"z": 1, "a": 2, "m": 3}}),
    )
    .await
    .unwrap();
    kv.call(Patch, "data/order", json!({"data": {"z": 9, "a": null}}))
        .await
        .unwrap();
    let read = kv.data(Read, "data/order", json!({})).await;
    assert_eq!(keys(&read["data"]), ["z", "m"]);
}

#[tokio::test]
async fn soft_delete_and_undelete() {
    let kv = Harness::v2();
    for value in 1..=3 {
        kv.call(Update, "data/d", json!({"data": {"a": value}}))
            .await
            .unwrap();
    }
    let deleted = |version: u64| {
        json!({"status": 404, "data": {"data": null, "metadata": {"created_time": "<time>",
               "custom_metadata": null, "deletion_time": "<time>", "destroyed": false,
               "version": version}}})
    };
    let steps = [
        // Latest version via DELETE on data/.
        (Delete, "data/d", json!({}), json!({"status": 204})),
        (Read, "data/d", json!({}), deleted(3)),
        (
            Read,
            "data/d",
            json!({"version": "2"}),
            json!({"status": 200, "data": {"data": {"a": 2}}}),
        ),
        // Deleting again changes nothing and still succeeds.
        (Delete, "data/d", json!({}), json!({"status": 204})),
        // Chosen versions; unknown and negative numbers are ignored.
        (
            Update,
            "delete/d",
            json!({"versions": [1, 2, 99, -1]}),
            json!({"status": 204}),
        ),
        (Read, "data/d", json!({"version": "1"}), deleted(1)),
        (
            Read,
            "subkeys/d",
            json!({"version": "2"}),
            json!({"status": 404, "data": {"subkeys": null, "metadata": {"version": 2}}}),
        ),
        // Every accepted shape of the versions list.
        (
            Update,
            "undelete/d",
            json!({"versions": "1,2"}),
            json!({"status": 204}),
        ),
        (
            Read,
            "data/d",
            json!({"version": "1"}),
            json!({"status": 200, "data": {"data": {"a": 1},
         "metadata": {"deletion_time": ""}}}),
        ),
        (
            Update,
            "undelete/d",
            json!({"versions": 3}),
            json!({"status": 204}),
        ),
        (
            Read,
            "data/d",
            json!({}),
            json!({"status": 200, "data": {"data": {"a": 3}}}),
        ),
        (
            Update,
            "delete/d",
            json!({"versions": ["2"]}),
            json!({"status": 204}),
        ),
        (Read, "data/d", json!({"version": "2"}), deleted(2)),
        // Keys that do not exist: nothing to do, no error.
        (
            Update,
            "delete/none",
            json!({"versions": [1]}),
            json!({"status": 204}),
        ),
        (
            Update,
            "undelete/none",
            json!({"versions": [1]}),
            json!({"status": 204}),
        ),
        (
            Update,
            "destroy/none",
            json!({"versions": [1]}),
            json!({"status": 204}),
        ),
        (Delete, "data/none", json!({}), json!({"status": 204})),
    ];
    for (operation, path, body, expected) in steps {
        kv.check(operation, path, body, expected).await;
    }
    assert!(!kv.stored_keys().iter().any(|key| key.ends_with("/none")));
}

#[tokio::test]
async fn destroy_removes_the_data_for_good() {
    let kv = Harness::v2();
    kv.call(Update, "data/x", json!({"data": {"secret": "one"}}))
        .await
        .unwrap();
    kv.call(Update, "data/x", json!({"data": {"secret": "two"}}))
        .await
        .unwrap();
    assert!(kv.stored_keys().contains(&"v2/versions/1/x".to_owned()));

    kv.check(
        Update,
        "destroy/x",
        json!({"versions": [1, 7]}),
        json!({"status": 204}),
    )
    .await;
    assert!(!kv.stored_keys().contains(&"v2/versions/1/x".to_owned()));
    assert!(kv.stored_keys().contains(&"v2/versions/2/x".to_owned()));
    let destroyed = json!({"status": 404, "data": {"data": null, "metadata": {
        "created_time": "<time>", "custom_metadata": null, "deletion_time": "",
        "destroyed": true, "version": 1}}});
    kv.check(Read, "data/x", json!({"version": "1"}), destroyed.clone())
        .await;
    // Destroyed is final: undelete does not bring it back.
    kv.check(
        Update,
        "undelete/x",
        json!({"versions": [1]}),
        json!({"status": 204}),
    )
    .await;
    kv.check(Read, "data/x", json!({"version": "1"}), destroyed)
        .await;
    let meta = kv.data(Read, "metadata/x", json!({})).await;
    assert_eq!(meta["versions"]["1"]["destroyed"], true);
    assert_eq!(meta["versions"]["2"]["destroyed"], false);
    // No stored value still holds the destroyed secret, in any record.
    for key in kv.stored_keys() {
        let raw = mayfly_sdk::Storage::get(kv.storage.as_ref(), &key)
            .await
            .unwrap()
            .unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("one"), "{key}");
    }
}

#[tokio::test]
async fn metadata_has_vaults_shape() {
    let kv = Harness::v2();
    kv.check(Read, "metadata/m", json!({}), json!({"status": 404}))
        .await;
    for value in 1..=2 {
        kv.call(Update, "data/m", json!({"data": {"a": value}}))
            .await
            .unwrap();
    }
    kv.call(Delete, "data/m", json!({})).await.unwrap();
    let meta = kv.data(Read, "metadata/m", json!({})).await;
    assert_eq!(
        keys(&meta),
        [
            "cas_required",
            "created_time",
            "current_version",
            "custom_metadata",
            "delete_version_after",
            "max_versions",
            "oldest_version",
            "updated_time",
            "versions"
        ]
    );
    assert!(
        super::matches(
            &meta,
            &json!({"cas_required": false, "created_time": "<time>", "current_version": 2,
                "custom_metadata": null, "delete_version_after": "0s", "max_versions": 0,
                "oldest_version": 0, "updated_time": "<time>",
                "versions": {
                    "1": {"created_time": "<time>", "deletion_time": "", "destroyed": false},
                    "2": {"created_time": "<time>", "deletion_time": "<time>", "destroyed": false}}}),
        ),
        "{meta}"
    );
    assert_eq!(
        keys(&meta["versions"]["1"]),
        ["created_time", "deletion_time", "destroyed"]
    );
    assert_eq!(meta["created_time"], meta["versions"]["1"]["created_time"]);
    assert_eq!(meta["updated_time"], meta["versions"]["2"]["created_time"]);

    // Settings written through metadata/ are shown as stored, durations in Go's format.
    kv.check(
        Update,
        "metadata/m",
        json!({"max_versions": 3, "cas_required": true, "delete_version_after": "1h30m",
               "custom_metadata": {"owner": "ops", "n": 5, "b": true}}),
        json!({"status": 204}),
    )
    .await;
    kv.check(
        Read,
        "metadata/m",
        json!({}),
        json!({"data": {"max_versions": 3, "cas_required": true, "delete_version_after": "1h30m0s",
               "custom_metadata": {"b": "1", "n": "5", "owner": "ops"}}}),
    )
    .await;
    // Metadata written for a key with no versions creates the key, but no version.
    kv.check(
        Update,
        "metadata/fresh",
        json!({"max_versions": 2}),
        json!({"status": 204}),
    )
    .await;
    kv.check(
        Read,
        "metadata/fresh",
        json!({}),
        json!({"data": {"current_version": 0, "oldest_version": 0, "max_versions": 2,
               "versions": {}, "created_time": "<time>", "updated_time": "<time>"}}),
    )
    .await;
    kv.check(Read, "data/fresh", json!({}), json!({"status": 404}))
        .await;
    // A write that sets nothing does not create the key.
    kv.check(
        Update,
        "metadata/nothing",
        json!({}),
        json!({"status": 204}),
    )
    .await;
    kv.check(Read, "metadata/nothing", json!({}), json!({"status": 404}))
        .await;
    // Version numbers sort as Go sorts map keys.
    for value in 0..9 {
        kv.call(Update, "data/many", json!({"data": {"a": value}}))
            .await
            .unwrap();
    }
    kv.call(Update, "data/many", json!({"data": {"a": 10}}))
        .await
        .unwrap();
    let many = kv.data(Read, "metadata/many", json!({})).await;
    assert_eq!(keys(&many["versions"])[..3], ["1", "10", "2"]);
}

#[tokio::test]
async fn custom_metadata_is_shown_validated_and_patched() {
    let kv = Harness::v2();
    kv.call(Update, "data/c", json!({"data": {"a": 1}}))
        .await
        .unwrap();
    kv.check(
        Update,
        "metadata/c",
        json!({"custom_metadata": {"team": "db", "tier": "1"}}),
        json!({"status": 204}),
    )
    .await;
    // Every version-metadata view carries the key's custom metadata.
    let custom = json!({"team": "db", "tier": "1"});
    kv.check(
        Read,
        "data/c",
        json!({}),
        json!({"data": {"metadata": {"custom_metadata": custom}}}),
    )
    .await;
    kv.check(
        Update,
        "data/c",
        json!({"data": {"a": 2}}),
        json!({"data": {"custom_metadata": custom, "version": 2}}),
    )
    .await;
    kv.check(
        Read,
        "subkeys/c",
        json!({}),
        json!({"data": {"metadata": {"custom_metadata": custom}}}),
    )
    .await;

    let steps = [
        (
            Patch,
            "metadata/c",
            json!({"custom_metadata": {"tier": null, "env": "prod"}, "max_versions": 4}),
            json!({"status": 204}),
        ),
        (
            Read,
            "metadata/c",
            json!({}),
            json!({"data": {"custom_metadata": {"env": "prod", "team": "db"}, "max_versions": 4}}),
        ),
        // A patch leaves unmentioned settings alone.
        (
            Patch,
            "metadata/c",
            json!({"delete_version_after": "1h"}),
            json!({"status": 204}),
        ),
        (
            Read,
            "metadata/c",
            json!({}),
            json!({"data": {"custom_metadata": {"env": "prod", "team": "db"}, "max_versions": 4,
                "delete_version_after": "1h0m0s"}}),
        ),
        // Unlike OpenBao, "0s" clears the setting (Vault fixed this).
        (
            Patch,
            "metadata/c",
            json!({"delete_version_after": "0s"}),
            json!({"status": 204}),
        ),
        (
            Read,
            "metadata/c",
            json!({}),
            json!({"data": {"delete_version_after": "0s"}}),
        ),
        (
            Patch,
            "metadata/c",
            json!({"custom_metadata": null}),
            json!({"status": 204}),
        ),
        (
            Read,
            "metadata/c",
            json!({}),
            json!({"data": {"custom_metadata": null, "max_versions": 4}}),
        ),
        (
            Patch,
            "metadata/missing",
            json!({"max_versions": 1}),
            json!({"status": 404, "body": ""}),
        ),
        // A full write replaces custom metadata; null or {} clear it.
        (
            Update,
            "metadata/c",
            json!({"custom_metadata": {"a": "b"}}),
            json!({"status": 204}),
        ),
        (
            Update,
            "metadata/c",
            json!({"custom_metadata": null}),
            json!({"status": 204}),
        ),
        (
            Read,
            "metadata/c",
            json!({}),
            json!({"data": {"custom_metadata": null}}),
        ),
        (
            Update,
            "metadata/c",
            json!({"custom_metadata": {"x": ""}}),
            json!({"status": 400, "error": "1 error occurred:\n\t* custom_metadata validation failed: length of value for key \"x\" is 0 but must be 0 < len(value) <= 512\n\n"}),
        ),
        (
            Update,
            "metadata/c",
            json!({"custom_metadata": {"x": null}}),
            json!({"status": 400, "error": "1 error occurred:\n\t* custom_metadata validation failed: length of value for key \"x\" is 0 but must be 0 < len(value) <= 512\n\n"}),
        ),
        (
            Update,
            "metadata/c",
            json!({"custom_metadata": {"x": {"y": 1}}}),
            json!({"status": 400, "error": "custom_metadata validation failed: '' expected type 'string', got unconvertible type 'map[string]interface {}'"}),
        ),
        (
            Update,
            "metadata/c",
            json!({"custom_metadata": {"": "v", "k": "bad\u{7}", "k\u{1}": "v"}}),
            json!({"status": 400, "error": "3 errors occurred:\n\t* custom_metadata validation failed: length of key \"\" is 0 but must be 0 < len(key) <= 128\n\t* custom_metadata validation failed: value for key \"k\" contains unprintable characters\n\t* custom_metadata validation failed: key \"k\\x01\" (k\u{1}) contains unprintable characters\n\n"}),
        ),
    ];
    for (operation, path, body, expected) in steps {
        kv.check(operation, path, body, expected).await;
    }
    let too_many: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    kv.check(
        Update,
        "metadata/c",
        json!({"custom_metadata": too_many}),
        json!({"status": 400, "error": "1 error occurred:\n\t* custom_metadata validation failed: payload must contain at most 64 keys, provided 65\n\n"}),
    )
    .await;
    // Patching past the limit is refused too, and changes nothing.
    let sixty_four: serde_json::Map<String, Value> =
        (0..64).map(|i| (format!("k{i}"), json!("v"))).collect();
    kv.check(
        Update,
        "metadata/c",
        json!({"custom_metadata": sixty_four}),
        json!({"status": 204}),
    )
    .await;
    let seen = kv
        .seen(
            Patch,
            "metadata/c",
            json!({"custom_metadata": {"extra": "v"}}),
        )
        .await;
    assert_eq!(seen["status"], 400, "{seen}");
    let meta = kv.data(Read, "metadata/c", json!({})).await;
    assert_eq!(meta["custom_metadata"].as_object().unwrap().len(), 64);
}

#[tokio::test]
async fn max_versions_trims_old_versions() {
    let kv = Harness::v2();
    // The key's and the mount's max_versions: the larger one wins (Vault's rule).
    kv.call(Update, "config", json!({"max_versions": 3}))
        .await
        .unwrap();
    kv.call(Update, "metadata/mv", json!({"max_versions": 2}))
        .await
        .unwrap();
    for value in 1..=5 {
        kv.call(Update, "data/mv", json!({"data": {"i": value}}))
            .await
            .unwrap();
    }
    let meta = kv.data(Read, "metadata/mv", json!({})).await;
    assert_eq!(meta["oldest_version"], 3);
    assert_eq!(meta["current_version"], 5);
    assert_eq!(keys(&meta["versions"]), ["3", "4", "5"]);
    kv.check(
        Read,
        "data/mv",
        json!({"version": "2"}),
        json!({"status": 404}),
    )
    .await;
    kv.check(
        Read,
        "data/mv",
        json!({"version": "3"}),
        json!({"data": {"data": {"i": 3}}}),
    )
    .await;
    let versions = |kv: &Harness| {
        kv.stored_keys()
            .into_iter()
            .filter(|key| key.starts_with("v2/versions/"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        versions(&kv),
        ["v2/versions/3/mv", "v2/versions/4/mv", "v2/versions/5/mv"]
    );

    // Shrinking the window trims several versions at the next write.
    kv.call(Update, "config", json!({"max_versions": 0}))
        .await
        .unwrap();
    kv.call(Update, "metadata/mv", json!({"max_versions": 1}))
        .await
        .unwrap();
    kv.check(Update, "data/mv", json!({"data": {"i": 6}}), written(6))
        .await;
    let meta = kv.data(Read, "metadata/mv", json!({})).await;
    assert_eq!(meta["oldest_version"], 6);
    assert_eq!(keys(&meta["versions"]), ["6"]);
    assert_eq!(versions(&kv), ["v2/versions/6/mv"]);

    // Without any setting, ten versions are kept; oldest_version stays 0 until trimming starts.
    for value in 1..=9 {
        kv.call(Update, "data/dflt", json!({"data": {"i": value}}))
            .await
            .unwrap();
    }
    kv.check(
        Read,
        "metadata/dflt",
        json!({}),
        json!({"data": {"oldest_version": 0}}),
    )
    .await;
    kv.call(Update, "data/dflt", json!({"data": {"i": 10}}))
        .await
        .unwrap();
    kv.check(
        Read,
        "metadata/dflt",
        json!({}),
        json!({"data": {"oldest_version": 1}}),
    )
    .await;
    kv.call(Update, "data/dflt", json!({"data": {"i": 11}}))
        .await
        .unwrap();
    let meta = kv.data(Read, "metadata/dflt", json!({})).await;
    assert_eq!(meta["oldest_version"], 2);
    assert_eq!(meta["versions"].as_object().unwrap().len(), 10);
}

#[tokio::test]
async fn delete_version_after_expires_versions() {
    let kv = Harness::v2();
    kv.call(Update, "metadata/e", json!({"delete_version_after": "3s"}))
        .await
        .unwrap();
    let write = kv.data(Update, "data/e", json!({"data": {"a": 1}})).await;
    assert_ne!(
        write["deletion_time"], "",
        "a scheduled deletion is shown at once"
    );
    kv.check(
        Read,
        "data/e",
        json!({}),
        json!({"status": 200, "data": {"data": {"a": 1}}}),
    )
    .await;
    kv.advance(4);
    kv.check(
        Read,
        "data/e",
        json!({}),
        json!({"status": 404, "data": {"data": null, "metadata": {"deletion_time": write["deletion_time"]}}}),
    )
    .await;
    // Undelete restores it with a new deadline counted from now.
    kv.call(Update, "undelete/e", json!({"versions": [1]}))
        .await
        .unwrap();
    let read = kv.data(Read, "data/e", json!({})).await;
    assert_ne!(read["metadata"]["deletion_time"], write["deletion_time"]);
    assert_ne!(read["metadata"]["deletion_time"], "");

    // The smaller of the key's and the mount's setting applies.
    kv.call(Update, "config", json!({"delete_version_after": "2s"}))
        .await
        .unwrap();
    kv.check(
        Read,
        "config",
        json!({}),
        json!({"data": {"delete_version_after": "2s"}}),
    )
    .await;
    kv.call(Update, "data/e", json!({"data": {"a": 2}}))
        .await
        .unwrap();
    kv.advance(2);
    kv.check(Read, "data/e", json!({}), json!({"status": 404}))
        .await;

    // A negative mount setting turns expiry off for every key.
    kv.call(Update, "config", json!({"delete_version_after": "-5s"}))
        .await
        .unwrap();
    kv.check(
        Read,
        "config",
        json!({}),
        json!({"data": {"delete_version_after": "-1s"}}),
    )
    .await;
    kv.check(Update, "data/e", json!({"data": {"a": 3}}), written(3))
        .await;
    kv.advance(3600);
    kv.check(
        Read,
        "data/e",
        json!({}),
        json!({"status": 200, "data": {"data": {"a": 3}}}),
    )
    .await;
}

#[tokio::test]
async fn config_reads_and_writes() {
    let kv = Harness::v2();
    let config = kv.data(Read, "config", json!({})).await;
    assert_eq!(
        config,
        json!({"cas_required": false, "delete_version_after": "0s", "max_versions": 0})
    );
    kv.check(Update, "config", json!({}), json!({"status": 204}))
        .await;
    assert!(
        kv.stored_keys().is_empty(),
        "an empty config write stores nothing"
    );
    kv.check(
        Update,
        "config",
        json!({"max_versions": "5", "cas_required": "true", "delete_version_after": "1d"}),
        json!({"status": 204}),
    )
    .await;
    kv.check(
        Read,
        "config",
        json!({}),
        json!({"data": {"cas_required": true, "delete_version_after": "24h0m0s", "max_versions": 5}}),
    )
    .await;
    // Each write changes only what it names; zero clears delete_version_after.
    kv.call(Update, "config", json!({"delete_version_after": 0}))
        .await
        .unwrap();
    kv.check(
        Read,
        "config",
        json!({}),
        json!({"data": {"cas_required": true, "delete_version_after": "0s", "max_versions": 5}}),
    )
    .await;
    kv.check(Delete, "config", json!({}), json!({"status": 405}))
        .await;
}

#[tokio::test]
async fn metadata_delete_removes_everything() {
    let kv = Harness::v2();
    for value in 1..=3 {
        kv.call(Update, "data/gone", json!({"data": {"a": value}}))
            .await
            .unwrap();
    }
    kv.call(Update, "data/kept", json!({"data": {"a": 1}}))
        .await
        .unwrap();
    kv.call(Update, "destroy/gone", json!({"versions": [2]}))
        .await
        .unwrap();
    kv.check(Delete, "metadata/gone", json!({}), json!({"status": 204}))
        .await;
    kv.check(Read, "metadata/gone", json!({}), json!({"status": 404}))
        .await;
    kv.check(
        Read,
        "data/gone",
        json!({"version": "1"}),
        json!({"status": 404}),
    )
    .await;
    assert_eq!(kv.stored_keys(), ["v2/metadata/kept", "v2/versions/1/kept"]);
    kv.check(Delete, "metadata/gone", json!({}), json!({"status": 204}))
        .await;
    // The key can start over from version 1.
    kv.check(Update, "data/gone", json!({"data": {"a": 1}}), written(1))
        .await;
}

#[tokio::test]
async fn listing_goes_through_metadata() {
    let kv = Harness::v2();
    kv.check(List, "metadata/", json!({}), json!({"status": 404}))
        .await;
    for key in ["b", "a", "dir/x", "dir/sub/y"] {
        kv.call(Update, &format!("data/{key}"), json!({"data": {"v": 1}}))
            .await
            .unwrap();
    }
    kv.call(Update, "metadata/only-meta", json!({"max_versions": 1}))
        .await
        .unwrap();
    let steps = [
        (
            List,
            "metadata/",
            json!({}),
            json!({"status": 200, "data": {"keys": ["a", "b", "dir/", "only-meta"]}}),
        ),
        (
            List,
            "metadata/dir/",
            json!({}),
            json!({"status": 200, "data": {"keys": ["sub/", "x"]}}),
        ),
        (
            List,
            "metadata/dir",
            json!({}),
            json!({"status": 200, "data": {"keys": ["sub/", "x"]}}),
        ),
        (
            List,
            "metadata/dir/sub/",
            json!({}),
            json!({"status": 200, "data": {"keys": ["y"]}}),
        ),
        (List, "metadata/a/", json!({}), json!({"status": 404})),
        (List, "metadata/none/", json!({}), json!({"status": 404})),
        (
            List,
            "metadata/",
            json!({"limit": "2"}),
            json!({"data": {"keys": ["a", "b"]}}),
        ),
        (
            List,
            "metadata/",
            json!({"after": "b", "limit": 1}),
            json!({"data": {"keys": ["dir/"]}}),
        ),
        (
            List,
            "metadata/",
            json!({"after": "zz"}),
            json!({"status": 404}),
        ),
        // v2 lists only through metadata/.
        (List, "data/", json!({}), json!({"status": 405})),
        (List, "subkeys/", json!({}), json!({"status": 405})),
    ];
    for (operation, path, body, expected) in steps {
        kv.check(operation, path, body, expected).await;
    }
    kv.call(Delete, "metadata/dir/sub/y", json!({}))
        .await
        .unwrap();
    kv.check(
        List,
        "metadata/dir/",
        json!({}),
        json!({"data": {"keys": ["x"]}}),
    )
    .await;
}

#[tokio::test]
async fn subkeys_strip_values() {
    let kv = Harness::v2();
    kv.call(
        Update,
        "data/sk",
        json!({"data": {"a": 1, "b": {"c": {"d": 1, "e": {}}, "f": [1]}, "g": {}, "h": null}}),
    )
    .await
    .unwrap();
    kv.call(Update, "data/sk", json!({"data": {"only": {"one": "x"}}}))
        .await
        .unwrap();
    // Expected structures as OpenBao returns them.
    let cases = [
        (
            json!({"version": "1"}),
            json!({"a": null, "b": {"c": {"d": null, "e": null}, "f": null}, "g": null, "h": null}),
        ),
        (
            json!({"version": "1", "depth": "1"}),
            json!({"a": null, "b": null, "g": null, "h": null}),
        ),
        (
            json!({"version": "1", "depth": "2"}),
            json!({"a": null, "b": {"c": null, "f": null}, "g": null, "h": null}),
        ),
        (
            json!({"version": "1", "depth": "-1"}),
            json!({"a": null, "b": null, "g": null, "h": null}),
        ),
        (json!({}), json!({"only": {"one": null}})),
    ];
    for (query, subkeys) in cases {
        let data = kv.data(Read, "subkeys/sk", query.clone()).await;
        assert_eq!(data["subkeys"], subkeys, "{query}");
        assert_eq!(keys(&data), ["metadata", "subkeys"]);
    }
    kv.check(
        Read,
        "subkeys/sk",
        json!({"version": "3"}),
        json!({"status": 404}),
    )
    .await;
    kv.check(Read, "subkeys/none", json!({}), json!({"status": 404}))
        .await;
    kv.call(Delete, "data/sk", json!({})).await.unwrap();
    kv.check(
        Read,
        "subkeys/sk",
        json!({}),
        json!({"status": 404, "data": {"metadata": {"version": 2, "deletion_time": "<time>"}, "subkeys": null}}),
    )
    .await;
}

#[tokio::test]
async fn other_paths_point_to_the_v2_api() {
    let kv = Harness::v2();
    let hint = |subcommand: &str| {
        json!({"status": 404, "data": null, "warnings": [format!(
            "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate \
             API endpoints to use. If using the Vault CLI, use 'vault kv {subcommand}' for this operation."
        )]})
    };
    let root = json!({"status": 404, "warnings": ["Non-listing operations on the root of a K/V v2 mount are not supported."]});
    let cases = [
        (Read, "foo", hint("get")),
        (Update, "foo", hint("put")),
        (Patch, "foo", hint("patch")),
        (Delete, "foo", hint("delete")),
        (List, "", hint("list")),
        (List, "config/", hint("list")),
        (Read, "config/", hint("get")),
        (Read, "subkeys", hint("get")),
        (Read, "data", root.clone()),
        (Read, "metadata", root.clone()),
        (Update, "destroy", root),
        (Delete, "config", json!({"status": 405})),
        (Read, "delete/foo", json!({"status": 405})),
    ];
    for (operation, path, expected) in cases {
        kv.check(operation, path, json!({}), expected).await;
    }
}

#[tokio::test]
async fn existence_checks_tell_create_from_update() {
    let kv = Harness::v2();
    let exists = |operation: Operation, path: &str| {
        let req = kv.request(operation, path, json!({"data": {}}));
        let backend = kv.backend.clone();
        async move { backend.exists(&req).await.unwrap() }
    };
    assert_eq!(exists(Update, "data/k").await, Some(false));
    assert_eq!(exists(Update, "metadata/k").await, Some(false));
    kv.call(Update, "data/k", json!({"data": {"a": 1}}))
        .await
        .unwrap();
    assert_eq!(exists(Update, "data/k").await, Some(true));
    assert_eq!(exists(Patch, "data/k").await, Some(true));
    assert_eq!(exists(Update, "metadata/k").await, Some(true));
    // Paths without an existence check leave the decision to the core.
    assert_eq!(exists(Update, "config").await, None);
    assert_eq!(exists(Update, "destroy/k").await, None);
}

#[tokio::test]
async fn records_are_versioned_and_a_create_is_served() {
    let kv = Harness::v2();
    // The core sends Create when the existence check says "new"; the write handler serves it.
    kv.check(
        Operation::Create,
        "data/r",
        json!({"data": {"a": 1}}),
        written(1),
    )
    .await;
    kv.call(Update, "config", json!({"max_versions": 4}))
        .await
        .unwrap();
    for key in kv.stored_keys() {
        let raw = mayfly_sdk::Storage::get(kv.storage.as_ref(), &key)
            .await
            .unwrap()
            .unwrap();
        let record: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(record["version"], 1, "{key}: {record}");
    }
    // Unknown body fields are reported, as Vault does for data writes.
    kv.check(
        Update,
        "data/r",
        json!({"data": {"a": 2}, "extra": 5}),
        json!({"status": 200, "warnings": ["Endpoint ignored these unrecognized parameters: [extra]"]}),
    )
    .await;
}
