//! The KV secrets engine over HTTP, both versions: what a mount reports about itself, and the
//! versioned lifecycle of a v2 secret (check-and-set, soft delete, undelete, destroy, patch).

use serde_json::{Value, json};

use crate::support::Server;

/// A server with a v1 mount at `kv1/` and a v2 mount at `kv2/`, and its root token.
async fn server_with_both_versions() -> (Server, String) {
    let server = Server::inmem().await;
    let root = server.root_token().await;
    server
        .put("sys/mounts/kv1", Some(&root), &json!({"type": "kv"}))
        .await
        .expect(204);
    server
        .put(
            "sys/mounts/kv2",
            Some(&root),
            &json!({"type": "kv", "options": {"version": "2"}, "description": "versioned"}),
        )
        .await
        .expect(204);
    (server, root)
}

fn keys(body: &Value) -> Vec<String> {
    body["data"]["keys"]
        .as_array()
        .unwrap_or_else(|| panic!("no keys in {body}"))
        .iter()
        .map(|k| k.as_str().expect("key").to_owned())
        .collect()
}

#[tokio::test]
async fn ui_mounts_tell_clients_which_version_serves_a_path() {
    let (server, root) = server_with_both_versions().await;
    let v2 = server
        .get("sys/internal/ui/mounts/kv2/some/deep/path", Some(&root))
        .await;
    let v2 = v2.expect(200).json();
    let data = &v2["data"];
    assert_eq!(data["path"], "kv2/", "{v2}");
    assert_eq!(data["type"], "kv");
    assert_eq!(data["options"]["version"], "2");
    assert_eq!(data["description"], "versioned");
    assert!(
        data["accessor"]
            .as_str()
            .is_some_and(|a| a.starts_with("kv_"))
    );
    for key in ["default_lease_ttl", "max_lease_ttl"] {
        assert!(data["config"][key].is_u64(), "config.{key} in {v2}");
    }

    let v1 = server
        .get("sys/internal/ui/mounts/kv1/a", Some(&root))
        .await;
    let v1 = v1.expect(200).json();
    assert_eq!(v1["data"]["path"], "kv1/");
    assert_eq!(v1["data"]["type"], "kv");
    // No version option (or "1") means the unversioned engine.
    let version = &v1["data"]["options"]["version"];
    assert!(version.is_null() || version == "1", "{v1}");

    // The whole listing groups mounts by kind.
    let all = server.get("sys/internal/ui/mounts", Some(&root)).await;
    let all = all.expect(200).json();
    for path in ["kv1/", "kv2/", "cubbyhole/", "sys/"] {
        assert!(all["data"]["secret"][path].is_object(), "{path} in {all}");
    }
    assert!(all["data"]["auth"]["token/"].is_object(), "{all}");

    // A path under no mount is refused rather than answered, so the endpoint cannot be used
    // to probe for mounts.
    server
        .get("sys/internal/ui/mounts/nothing/here", Some(&root))
        .await
        .expect(403);
}

#[tokio::test]
async fn v1_mount_reads_writes_lists_and_deletes() {
    let (server, root) = server_with_both_versions().await;
    let root = Some(root.as_str());
    server
        .put("kv1/app/db", root, &json!({"user": "app", "port": 5432}))
        .await
        .expect(204);
    server
        .put("kv1/app/cache", root, &json!({"host": "redis"}))
        .await
        .expect(204);
    let read = server.get("kv1/app/db", root).await;
    let read = read.expect(200).json();
    // No version wrapper: the data is exactly what was written, types preserved.
    assert_eq!(read["data"], json!({"user": "app", "port": 5432}));
    let listed = server.request("LIST", "kv1/app", root, None).await;
    assert_eq!(keys(&listed.expect(200).json()), ["cache", "db"]);
    let top = server.request("LIST", "kv1/", root, None).await;
    assert_eq!(keys(&top.expect(200).json()), ["app/"]);
    // An overwrite replaces the whole secret.
    server
        .put("kv1/app/db", root, &json!({"user": "other"}))
        .await
        .expect(204);
    let read = server.get("kv1/app/db", root).await;
    assert_eq!(read.expect(200).json()["data"], json!({"user": "other"}));
    server
        .request("DELETE", "kv1/app/db", root, None)
        .await
        .expect(204);
    server.get("kv1/app/db", root).await.expect(404);
    let listed = server.request("LIST", "kv1/app", root, None).await;
    assert_eq!(keys(&listed.expect(200).json()), ["cache"]);
}

#[tokio::test]
async fn v2_versions_cas_delete_undelete_destroy_and_metadata() {
    let (server, root) = server_with_both_versions().await;
    let root = Some(root.as_str());

    let v1 = server
        .put(
            "kv2/data/app/db",
            root,
            &json!({"data": {"password": "one"}}),
        )
        .await;
    let v1 = v1.expect(200).json();
    assert_eq!(v1["data"]["version"], 1, "{v1}");
    assert_eq!(v1["data"]["destroyed"], false);
    assert_eq!(v1["data"]["deletion_time"], "");

    // Check-and-set: a writer that read version 1 may write; one that expects a new
    // secret (cas 0) or a stale version may not.
    let stale = server
        .put(
            "kv2/data/app/db",
            root,
            &json!({"options": {"cas": 0}, "data": {"password": "lost update"}}),
        )
        .await;
    assert_eq!(
        stale.expect(400).errors(),
        ["check-and-set parameter did not match the current version"]
    );
    let v2 = server
        .put(
            "kv2/data/app/db",
            root,
            &json!({"options": {"cas": 1}, "data": {"password": "two", "user": "app"}}),
        )
        .await;
    assert_eq!(v2.expect(200).json()["data"]["version"], 2);

    let latest = server.get("kv2/data/app/db", root).await;
    let latest = latest.expect(200).json();
    assert_eq!(
        latest["data"]["data"],
        json!({"password": "two", "user": "app"})
    );
    assert_eq!(latest["data"]["metadata"]["version"], 2);
    let first = server.get("kv2/data/app/db?version=1", root).await;
    let first = first.expect(200).json();
    assert_eq!(first["data"]["data"], json!({"password": "one"}));
    assert_eq!(first["data"]["metadata"]["version"], 1);

    // A soft delete answers 404 but still says which version was deleted and when.
    server
        .request("DELETE", "kv2/data/app/db", root, None)
        .await
        .expect(204);
    let deleted = server.get("kv2/data/app/db", root).await;
    let deleted = deleted.expect(404).json();
    assert_eq!(deleted["data"]["data"], Value::Null, "{deleted}");
    assert_eq!(deleted["data"]["metadata"]["version"], 2);
    assert!(
        deleted["data"]["metadata"]["deletion_time"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{deleted}"
    );
    // Older versions are untouched.
    server
        .get("kv2/data/app/db?version=1", root)
        .await
        .expect(200);

    server
        .put("kv2/undelete/app/db", root, &json!({"versions": [2]}))
        .await
        .expect(204);
    let restored = server.get("kv2/data/app/db", root).await;
    let restored = restored.expect(200).json();
    assert_eq!(restored["data"]["data"]["password"], "two");
    assert_eq!(restored["data"]["metadata"]["deletion_time"], "");

    // Destroy is permanent: no undelete brings it back.
    server
        .put("kv2/destroy/app/db", root, &json!({"versions": [1]}))
        .await
        .expect(204);
    let destroyed = server.get("kv2/data/app/db?version=1", root).await;
    let destroyed = destroyed.expect(404).json();
    assert_eq!(
        destroyed["data"]["metadata"]["destroyed"], true,
        "{destroyed}"
    );
    server
        .put("kv2/undelete/app/db", root, &json!({"versions": [1]}))
        .await
        .expect(204);
    server
        .get("kv2/data/app/db?version=1", root)
        .await
        .expect(404);

    let metadata = server.get("kv2/metadata/app/db", root).await;
    let metadata = metadata.expect(200).json();
    let data = &metadata["data"];
    assert_eq!(data["current_version"], 2, "{metadata}");
    assert_eq!(data["versions"]["1"]["destroyed"], true);
    assert_eq!(data["versions"]["2"]["destroyed"], false);
    assert_eq!(data["versions"]["2"]["deletion_time"], "");

    // Metadata lists folders and secrets; the data path itself does not list.
    server
        .put(
            "kv2/data/app/cache",
            root,
            &json!({"data": {"host": "redis"}}),
        )
        .await
        .expect(200);
    server
        .put("kv2/data/top", root, &json!({"data": {"a": "b"}}))
        .await
        .expect(200);
    let top = server.request("LIST", "kv2/metadata/", root, None).await;
    assert_eq!(keys(&top.expect(200).json()), ["app/", "top"]);
    let app = server.request("LIST", "kv2/metadata/app", root, None).await;
    assert_eq!(keys(&app.expect(200).json()), ["cache", "db"]);

    // Deleting the metadata removes every version.
    server
        .request("DELETE", "kv2/metadata/app/db", root, None)
        .await
        .expect(204);
    server.get("kv2/data/app/db", root).await.expect(404);
    let app = server.request("LIST", "kv2/metadata/app", root, None).await;
    assert_eq!(keys(&app.expect(200).json()), ["cache"]);
}

#[tokio::test]
async fn v2_patch_merges_with_merge_patch_content_type_only() {
    let (server, root) = server_with_both_versions().await;
    let token = Some(root.as_str());
    server
        .put(
            "kv2/data/cfg",
            token,
            &json!({"data": {"keep": "1", "drop": "2", "change": "3"}}),
        )
        .await
        .expect(200);

    let patch = json!({"data": {"drop": null, "change": "three", "add": "4"}});
    let plain = server
        .request_with(
            "PATCH",
            "kv2/data/cfg",
            token,
            &[("Content-Type", "application/json")],
            Some(&patch),
        )
        .await;
    assert_eq!(plain.status, 415, "{}", plain.body);

    let patched = server
        .request_with(
            "PATCH",
            "kv2/data/cfg",
            token,
            &[("Content-Type", "application/merge-patch+json")],
            Some(&patch),
        )
        .await;
    assert_eq!(patched.expect(200).json()["data"]["version"], 2);
    let read = server.get("kv2/data/cfg", token).await;
    assert_eq!(
        read.expect(200).json()["data"]["data"],
        json!({"keep": "1", "change": "three", "add": "4"})
    );

    // Patching needs something to patch.
    let missing = server
        .request_with(
            "PATCH",
            "kv2/data/nothing",
            token,
            &[("Content-Type", "application/merge-patch+json")],
            Some(&patch),
        )
        .await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    // And the check-and-set rule applies to patches too.
    let stale = server
        .request_with(
            "PATCH",
            "kv2/data/cfg",
            token,
            &[("Content-Type", "application/merge-patch+json")],
            Some(&json!({"options": {"cas": 1}, "data": {"x": "y"}})),
        )
        .await;
    assert_eq!(stale.status, 400, "{}", stale.body);
}
