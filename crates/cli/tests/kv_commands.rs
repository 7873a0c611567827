//! `kv` against a scripted server: the version preflight, the v1 and v2
//! request shapes, and Vault's sectioned output.

mod support;

use serde_json::{Value, json};
use support::Server;

const ENV: [(&str, &str); 1] = [("VAULT_TOKEN", "hvs.root")];

fn mount_info(path: &str, version: Option<&str>) -> Value {
    let options = match version {
        Some(v) => json!({"version": v}),
        None => Value::Null,
    };
    json!({"data": {"path": path, "type": "kv", "options": options}})
}

fn version_metadata(version: u64) -> Value {
    json!({
        "created_time": "2024-03-01T10:00:00.5Z", "custom_metadata": null,
        "deletion_time": "", "destroyed": false, "version": version
    })
}

/// A server where `secret/` is KV v2 and `kv1/` is KV v1.
async fn kv_server() -> Server {
    let server = Server::start().await;
    for path in ["secret/app", "secret"] {
        server.reply(
            "GET",
            &format!("/v1/sys/internal/ui/mounts/{path}"),
            200,
            Some(mount_info("secret/", Some("2"))),
        );
    }
    for path in ["kv1/app", "kv1"] {
        server.reply(
            "GET",
            &format!("/v1/sys/internal/ui/mounts/{path}"),
            200,
            Some(mount_info("kv1/", None)),
        );
    }
    server
}

#[tokio::test]
async fn v2_get_and_put() {
    let server = kv_server().await;
    server.reply(
        "GET",
        "/v1/secret/data/app",
        200,
        Some(json!({
            "request_id": "r", "lease_id": "", "lease_duration": 0, "renewable": false,
            "data": {"data": {"password": "hunter2", "user": "bob"},
                     "metadata": version_metadata(3)},
            "warnings": null
        })),
    );
    let out = server
        .run_with(&["kv", "get", "secret/app"], &ENV, "")
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "\
= Secret Path =
secret/data/app

======= Metadata =======
Key                Value
---                -----
created_time       2024-03-01T10:00:00.5Z
custom_metadata    <nil>
deletion_time      n/a
destroyed          false
version            3

====== Data ======
Key         Value
---         -----
password    hunter2
user        bob
"
    );
    let seen = server.seen();
    assert_eq!(seen[0].path, "/v1/sys/internal/ui/mounts/secret/app");
    assert_eq!(seen[0].token.as_deref(), Some("hvs.root"));
    assert_eq!(seen[1].path, "/v1/secret/data/app");

    // -mount names the mount; -version picks a version; -field one key.
    let out = server
        .run_with(
            &[
                "kv",
                "get",
                "-mount=secret",
                "-version=2",
                "-field=user",
                "app",
            ],
            &ENV,
            "",
        )
        .await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "bob"));
    let seen = server.seen();
    assert_eq!(
        seen[seen.len() - 2].path,
        "/v1/sys/internal/ui/mounts/secret"
    );
    assert_eq!(server.last().query, "version=2");
    let out = server
        .run_with(&["kv", "get", "-field=data", "secret/app"], &ENV, "")
        .await;
    assert_eq!(out.stdout, "map[password:hunter2 user:bob]");

    let out = server
        .run_with(&["kv", "get", "-format=json", "secret/app"], &ENV, "")
        .await;
    let printed: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(printed["data"]["data"]["user"], json!("bob"));

    let out = server
        .run_with(&["kv", "get", "secret/missing"], &ENV, "")
        .await;
    assert_eq!(out.code, 2);
    assert_eq!(out.stderr, "No value found at secret/missing\n");

    server.reply(
        "PUT",
        "/v1/secret/data/app",
        200,
        Some(json!({"data": version_metadata(4)})),
    );
    let out = server
        .run_with(
            &[
                "kv",
                "put",
                "-cas=3",
                "secret/app",
                "user=bob",
                "password=-",
            ],
            &ENV,
            "n3w",
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        server.last().body,
        Some(json!({"data": {"user": "bob", "password": "n3w"}, "options": {"cas": 3}}))
    );
    assert_eq!(
        out.stdout,
        "\
= Secret Path =
secret/data/app

======= Metadata =======
Key                Value
---                -----
created_time       2024-03-01T10:00:00.5Z
custom_metadata    <nil>
deletion_time      n/a
destroyed          false
version            4
"
    );
    let out = server
        .run_with(
            &["kv", "put", "-field=version", "secret/app", "a=1"],
            &ENV,
            "",
        )
        .await;
    assert_eq!(out.stdout, "4");
    assert_eq!(
        server.last().body,
        Some(json!({"data": {"a": "1"}, "options": {}}))
    );

    let out = server
        .run_with(&["kv", "put", "secret/app"], &ENV, "")
        .await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("Must supply data\n"));
}

#[tokio::test]
async fn v1_and_preflight_fallbacks() {
    let server = kv_server().await;
    server.reply(
        "GET",
        "/v1/kv1/app",
        200,
        Some(json!({"lease_duration": 2764800, "data": {"a": "1", "ttl": "1h"}})),
    );
    let out = server.run_with(&["kv", "get", "kv1/app"], &ENV, "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "=== Data ===\nKey    Value\n---    -----\na      1\nttl    1h\n"
    );

    server.reply("PUT", "/v1/kv1/app", 204, None);
    let out = server
        .run_with(&["kv", "put", "-mount=kv1", "app", "a=1"], &ENV, "")
        .await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Success! Data written to: kv1/app\n")
    );
    assert_eq!(server.last().body, Some(json!({"a": "1"})));

    // No preflight endpoint (404): plain v1 paths, silently.
    server.reply("PUT", "/v1/old/app", 204, None);
    let out = server
        .run_with(&["kv", "put", "old/app", "a=1"], &ENV, "")
        .await;
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    assert_eq!(server.last().path, "/v1/old/app");

    // Any other preflight failure is reported as is.
    server.reply(
        "GET",
        "/v1/sys/internal/ui/mounts/locked/app",
        403,
        Some(json!({"errors": ["preflight capability check returned 403"]})),
    );
    let out = server
        .run_with(&["kv", "get", "locked/app"], &ENV, "")
        .await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.starts_with("Error making API request."));
    assert!(
        out.stderr
            .contains("* preflight capability check returned 403")
    );

    for (args, message, code) in [
        (
            &["kv", "patch", "kv1/app", "a=2"][..],
            "K/V engine mount must be version 2 for patch support\n",
            2,
        ),
        (
            &["kv", "undelete", "-versions=1", "kv1/app"][..],
            "Undelete not supported on KV Version 1\n",
            1,
        ),
        (
            &["kv", "destroy", "-versions=1", "kv1/app"][..],
            "Destroy not supported on KV Version 1\n",
            1,
        ),
        (
            &["kv", "metadata", "get", "kv1/app"][..],
            "Metadata not supported on KV Version 1\n",
            1,
        ),
    ] {
        let out = server.run_with(args, &ENV, "").await;
        assert_eq!((out.code, out.stderr.as_str()), (code, message), "{args:?}");
    }

    server.reply("DELETE", "/v1/kv1/app", 204, None);
    let out = server
        .run_with(&["kv", "delete", "kv1/app"], &ENV, "")
        .await;
    assert_eq!(
        out.stdout,
        "Success! Data deleted (if it existed) at: kv1/app\n"
    );
    server.reply(
        "LIST",
        "/v1/kv1",
        200,
        Some(json!({"data": {"keys": ["z", "app"]}})),
    );
    let out = server.run_with(&["kv", "list", "kv1"], &ENV, "").await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "Keys\n----\napp\nz\n"));
}

#[tokio::test]
async fn v2_patch_delete_and_versions() {
    let server = kv_server().await;
    server.reply(
        "PATCH",
        "/v1/secret/data/app",
        200,
        Some(json!({"data": version_metadata(5)})),
    );
    let out = server
        .run_with(
            &[
                "kv",
                "patch",
                "-cas=4",
                "-remove-data=old",
                "secret/app",
                "a=2",
            ],
            &ENV,
            "",
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let seen = server.last();
    assert_eq!(seen.method, "PATCH");
    assert_eq!(
        seen.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(
        seen.body,
        Some(json!({"data": {"a": "2", "old": null}, "options": {"cas": 4}}))
    );
    assert!(out.stdout.contains("version            5\n"));

    // A server without PATCH: read, merge, write back with check-and-set.
    server.reply(
        "PATCH",
        "/v1/secret/data/app",
        405,
        Some(json!({"errors": []})),
    );
    server.reply(
        "GET",
        "/v1/secret/data/app",
        200,
        Some(json!({"data": {"data": {"a": "1", "b": "x"}, "metadata": version_metadata(5)}})),
    );
    server.reply(
        "PUT",
        "/v1/secret/data/app",
        200,
        Some(json!({"data": version_metadata(6)})),
    );
    server.clear();
    let out = server
        .run_with(&["kv", "patch", "secret/app", "a=2"], &ENV, "")
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let methods: Vec<String> = server.seen().iter().map(|s| s.method.clone()).collect();
    assert_eq!(methods, vec!["GET", "PATCH", "GET", "PUT"]);
    assert_eq!(
        server.last().body,
        Some(json!({"data": {"a": "2", "b": "x"}, "options": {"cas": 5}}))
    );
    let out = server
        .run_with(
            &["kv", "patch", "-method=patch", "secret/app", "a=2"],
            &ENV,
            "",
        )
        .await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .starts_with("Error writing data to secret/data/app: Error making API request.")
    );
    let out = server
        .run_with(
            &["kv", "patch", "-method=merge", "secret/app", "a=2"],
            &ENV,
            "",
        )
        .await;
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (2, "Unsupported method provided to -method flag: merge\n")
    );

    server.reply("DELETE", "/v1/secret/data/app", 204, None);
    let out = server
        .run_with(&["kv", "delete", "secret/app"], &ENV, "")
        .await;
    assert_eq!(
        out.stdout,
        "Success! Data deleted (if it existed) at: secret/data/app\n"
    );
    server.reply("PUT", "/v1/secret/delete/app", 204, None);
    let out = server
        .run_with(
            &["kv", "delete", "-versions=1,2", "-versions=3", "secret/app"],
            &ENV,
            "",
        )
        .await;
    assert_eq!(out.code, 0);
    assert_eq!(server.last().path, "/v1/secret/delete/app");
    assert_eq!(
        server.last().body,
        Some(json!({"versions": ["1", "2", "3"]}))
    );

    for op in ["undelete", "destroy"] {
        server.reply("PUT", &format!("/v1/secret/{op}/app"), 204, None);
        let out = server
            .run_with(&["kv", op, "-versions=2", "secret/app"], &ENV, "")
            .await;
        assert_eq!(
            (out.code, out.stdout.clone()),
            (0, format!("Success! Data written to: secret/{op}/app\n"))
        );
        assert_eq!(server.last().body, Some(json!({"versions": ["2"]})));
        let out = server.run_with(&["kv", op, "secret/app"], &ENV, "").await;
        assert_eq!(out.code, 1);
        assert!(out.stderr.starts_with(&format!(
            "No versions provided, use the \"-versions\" flag to specify the version to {op}.\n"
        )));
    }

    server.reply(
        "LIST",
        "/v1/secret/metadata/app",
        200,
        Some(json!({"data": {"keys": ["db", "api/"]}})),
    );
    let out = server
        .run_with(&["kv", "list", "secret/app"], &ENV, "")
        .await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Keys\n----\napi/\ndb\n")
    );
    let out = server
        .run_with(&["kv", "list", "-format=json", "secret/app"], &ENV, "")
        .await;
    assert_eq!(out.stdout, "[\n  \"db\",\n  \"api/\"\n]\n");
    server.reply(
        "GET",
        "/v1/sys/internal/ui/mounts/secret/nothing",
        200,
        Some(mount_info("secret/", Some("2"))),
    );
    let out = server
        .run_with(&["kv", "list", "secret/nothing"], &ENV, "")
        .await;
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (2, "No value found at secret/metadata/nothing\n")
    );
}

#[tokio::test]
async fn v2_metadata() {
    let server = kv_server().await;
    server.reply(
        "GET",
        "/v1/secret/metadata/app",
        200,
        Some(json!({"data": {
            "cas_required": false, "created_time": "2024-03-01T10:00:00Z", "current_version": 2,
            "custom_metadata": {"owner": "ops"}, "delete_version_after": "0s",
            "max_versions": 0, "oldest_version": 0, "updated_time": "2024-03-02T10:00:00Z",
            "versions": {
                "10": {"created_time": "t10", "deletion_time": "", "destroyed": false},
                "2": {"created_time": "t2", "deletion_time": "d2", "destroyed": true}
            }
        }})),
    );
    let out = server
        .run_with(&["kv", "metadata", "get", "secret/app"], &ENV, "")
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "\
== Metadata Path ==
secret/metadata/app

========== Metadata ==========
Key                     Value
---                     -----
cas_required            false
created_time            2024-03-01T10:00:00Z
current_version         2
custom_metadata         map[owner:ops]
delete_version_after    0s
max_versions            0
oldest_version          0
updated_time            2024-03-02T10:00:00Z

====== Version 2 ======
Key              Value
---              -----
created_time     t2
deletion_time    d2
destroyed        true

===== Version 10 =====
Key              Value
---              -----
created_time     t10
deletion_time    n/a
destroyed        false
"
    );

    server.reply("PUT", "/v1/secret/metadata/app", 204, None);
    let out = server
        .run_with(
            &[
                "kv",
                "metadata",
                "put",
                "-max-versions=5",
                "-cas-required",
                "-delete-version-after=3h25m19s",
                "-custom-metadata=owner=ops",
                "-custom-metadata=tier=1",
                "secret/app",
            ],
            &ENV,
            "",
        )
        .await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Success! Data written to: secret/metadata/app\n")
    );
    assert_eq!(
        server.last().body,
        Some(json!({
            "max_versions": 5, "delete_version_after": "3h25m19s", "cas_required": true,
            "custom_metadata": {"owner": "ops", "tier": "1"}
        }))
    );
    let out = server
        .run_with(
            &[
                "kv",
                "metadata",
                "put",
                "-cas-required=false",
                "-mount=secret",
                "app",
            ],
            &ENV,
            "",
        )
        .await;
    assert_eq!(out.code, 0);
    assert_eq!(server.last().body, Some(json!({"cas_required": false})));

    server.reply("DELETE", "/v1/secret/metadata/app", 204, None);
    let out = server
        .run_with(&["kv", "metadata", "delete", "secret/app"], &ENV, "")
        .await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (
            0,
            "Success! Data deleted (if it existed) at: secret/metadata/app\n"
        )
    );

    let out = server.run_with(&["kv", "metadata"], &ENV, "").await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("Usage: mayfly kv metadata <subcommand>")
    );
}

#[tokio::test]
async fn deleted_version_and_wrapping() {
    let server = kv_server().await;
    // A deleted version answers 404 with its metadata and no data.
    let mut deleted = version_metadata(2);
    deleted["deletion_time"] = json!("2024-03-05T00:00:00Z");
    server.reply(
        "GET",
        "/v1/secret/data/app",
        404,
        Some(json!({"data": {"data": null, "metadata": deleted}})),
    );
    let out = server
        .run_with(&["kv", "get", "secret/app"], &ENV, "")
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.ends_with("version            2\n\n"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("Data =="));
    let out = server
        .run_with(&["kv", "get", "-field=a", "secret/app"], &ENV, "")
        .await;
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (2, "No data found at secret/data/app\n")
    );

    // With -wrap-ttl the preflight is not wrapped, the read is, and the
    // wrapping token is what gets printed.
    server.reply(
        "GET",
        "/v1/secret/data/app",
        200,
        Some(json!({"wrap_info": {
            "token": "hvs.w", "accessor": "a", "ttl": 60,
            "creation_time": "2024-03-05T00:00:00Z", "creation_path": "secret/data/app"
        }})),
    );
    server.clear();
    let out = server
        .run_with(&["kv", "get", "-wrap-ttl=1m", "secret/app"], &ENV, "")
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let seen = server.seen();
    assert_eq!(seen[0].wrap_ttl, None);
    assert_eq!(seen[1].wrap_ttl.as_deref(), Some("1m0s"));
    assert!(
        out.stdout
            .contains("wrapping_token:                  hvs.w\n")
    );
}
