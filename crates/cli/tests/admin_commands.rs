//! `policy`, `secrets`, `auth` and `lease` against a scripted server: the
//! requests they send and what they print.

mod support;

use serde_json::{Value, json};
use support::Server;

const ENV: [(&str, &str); 1] = [("VAULT_TOKEN", "hvs.root")];

#[tokio::test]
async fn policy_write_read_list_delete() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dev.hcl");
    let rules = "path \"secret/*\" {\n  capabilities = [\"read\"]\n}\n";
    std::fs::write(&file, rules).unwrap();

    server.reply("PUT", "/v1/sys/policies/acl/dev", 204, None);
    let out = server
        .run_with(
            &["policy", "write", "Dev", file.to_str().unwrap()],
            &ENV,
            "",
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "Success! Uploaded policy: dev\n");
    assert_eq!(
        out.stderr,
        "Policy name was converted from \"Dev\" to \"dev\"\n"
    );
    assert_eq!(server.last().body, Some(json!({"policy": rules})));

    let out = server
        .run_with(&["policy", "write", "dev", "-"], &ENV, "path \"x\" {}\n")
        .await;
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    assert_eq!(
        server.last().body,
        Some(json!({"policy": "path \"x\" {}\n"}))
    );

    let out = server
        .run_with(&["policy", "write", "dev", "/nonexistent.hcl"], &ENV, "")
        .await;
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr,
        "Error opening policy file: open /nonexistent.hcl: no such file or directory\n"
    );

    server.reply(
        "GET",
        "/v1/sys/policies/acl/dev",
        200,
        Some(json!({"data": {"name": "dev", "policy": rules}})),
    );
    let out = server.run_with(&["policy", "read", "DEV"], &ENV, "").await;
    assert_eq!((out.code, out.stdout.as_str()), (0, rules));
    let out = server
        .run_with(&["policy", "read", "-format=yaml", "dev"], &ENV, "")
        .await;
    assert_eq!(
        out.stdout,
        "policy: |\n  path \"secret/*\" {\n    capabilities = [\"read\"]\n  }\n"
    );
    let out = server.run_with(&["policy", "read", "gone"], &ENV, "").await;
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (2, "No policy named: gone\n")
    );

    server.reply(
        "LIST",
        "/v1/sys/policies/acl",
        200,
        Some(json!({"data": {"keys": ["default", "dev", "root"]}})),
    );
    let out = server.run_with(&["policy", "list"], &ENV, "").await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "default\ndev\nroot\n"));
    let out = server
        .run_with(&["policy", "list", "-format=json"], &ENV, "")
        .await;
    assert_eq!(out.stdout, "[\n  \"default\",\n  \"dev\",\n  \"root\"\n]\n");

    server.reply("DELETE", "/v1/sys/policies/acl/dev", 204, None);
    let out = server
        .run_with(&["policy", "delete", "dev"], &ENV, "")
        .await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Success! Deleted policy: dev\n")
    );
    server.reply(
        "DELETE",
        "/v1/sys/policies/acl/root",
        400,
        Some(json!({"errors": ["cannot delete \"root\" policy"]})),
    );
    let out = server
        .run_with(&["policy", "delete", "root"], &ENV, "")
        .await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .starts_with("Error deleting root: Error making API request.")
    );

    let out = server
        .run_with(&["policy", "write", "only-name"], &ENV, "")
        .await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("Not enough arguments (expected 2, got 1)")
    );
}

#[tokio::test]
async fn policy_fmt_rewrites_files() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.hcl");
    std::fs::write(
        &file,
        "# owners: ops\npath \"secret/*\" {\ncapabilities=[\"read\",\"list\"]\n  max_wrapping_ttl = \"90s\"\n}\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let out = server.run(&["policy", "fmt", path]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, format!("Success! Formatted policy: {path}\n"));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "# owners: ops\npath \"secret/*\" {\n  capabilities     = [\"read\", \"list\"]\n  max_wrapping_ttl = \"90s\"\n}\n"
    );
    assert!(server.seen().is_empty(), "fmt never talks to the server");

    std::fs::write(&file, "path \"x\" {\n  capabilities = [\"read\"\n}\n").unwrap();
    let out = server.run(&["policy", "fmt", path]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with("failed to parse policy: At 3:1: "),
        "{}",
        out.stderr
    );
    std::fs::write(&file, "path \"x\" {\n  capabilities = [\"reed\"]\n}\n").unwrap();
    let out = server.run(&["policy", "fmt", path]).await;
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            1,
            "failed to parse policy: path \"x\": invalid capability \"reed\"\n"
        )
    );
    // A file that failed to parse is left alone.
    assert!(std::fs::read_to_string(&file).unwrap().contains("reed"));

    let home = dir.path().to_str().unwrap();
    std::fs::write(dir.path().join("h.hcl"), "path \"a\" {}").unwrap();
    let out = server
        .run_with(&["policy", "fmt", "~/h.hcl"], &[("HOME", home)], "")
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("h.hcl")).unwrap(),
        "path \"a\" {}\n"
    );
}

fn mounts_listing() -> Value {
    let mounts = json!({
        "sys/": {"type": "system", "description": "system endpoints", "accessor": "system_1",
                 "uuid": "u-sys", "local": false, "seal_wrap": true,
                 "config": {"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false},
                 "options": null, "plugin_version": "", "running_plugin_version": "v0.1.0+builtin",
                 "running_sha256": "", "deprecation_status": "", "external_entropy_access": false},
        "kv/": {"type": "kv", "description": "", "accessor": "kv_2", "uuid": "u-kv",
                "local": false, "seal_wrap": false, "external_entropy_access": false,
                "config": {"default_lease_ttl": 3600, "max_lease_ttl": 0, "force_no_cache": false,
                           "listing_visibility": ""},
                "options": {"version": "2"}, "plugin_version": "",
                "running_plugin_version": "v0.1.0+builtin", "running_sha256": "",
                "deprecation_status": "supported"}
    });
    let mut resp = json!({"request_id": "r", "lease_id": "", "lease_duration": 0,
                          "renewable": false, "warnings": null, "data": mounts.clone()});
    // Servers also copy the listing to the top level.
    for (k, v) in mounts.as_object().unwrap() {
        resp[k] = v.clone();
    }
    resp
}

#[tokio::test]
async fn secrets_commands() {
    let server = Server::start().await;
    server.reply("POST", "/v1/sys/mounts/kv", 204, None);
    let out = server
        .run_with(
            &[
                "secrets",
                "enable",
                "-path=kv/",
                "-version=2",
                "-description=team secrets",
                "-max-lease-ttl=48h",
                "kv",
            ],
            &ENV,
            "",
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "Success! Enabled the kv secrets engine at: kv/\n"
    );
    assert_eq!(
        server.last().body,
        Some(json!({
            "type": "kv", "description": "team secrets",
            "config": {"options": null, "default_lease_ttl": "0s", "max_lease_ttl": "48h0m0s",
                       "force_no_cache": false},
            "local": false, "seal_wrap": false, "external_entropy_access": false,
            "options": {"version": "2"}
        }))
    );
    server.reply(
        "POST",
        "/v1/sys/mounts/transit",
        400,
        Some(json!({"errors": ["path is already in use at transit/"]})),
    );
    let out = server
        .run_with(&["secrets", "enable", "transit"], &ENV, "")
        .await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .starts_with("Error enabling: Error making API request.")
    );

    server.reply("GET", "/v1/sys/mounts", 200, Some(mounts_listing()));
    let out = server.run_with(&["secrets", "list"], &ENV, "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "\
Path    Type      Accessor    Description
----    ----      --------    -----------
kv/     kv        kv_2        n/a
sys/    system    system_1    system endpoints
"
    );
    let out = server
        .run_with(&["secrets", "list", "-detailed"], &ENV, "")
        .await;
    assert_eq!(
        out.stdout,
        "\
Path    Plugin    Accessor    Default TTL    Max TTL    Force No Cache    Replication    Seal Wrap    External Entropy Access    Options           Description         UUID     Version    Running Version    Running SHA256    Deprecation Status
----    ------    --------    -----------    -------    --------------    -----------    ---------    -----------------------    -------           -----------         ----     -------    ---------------    --------------    ------------------
kv/     kv        kv_2        3600           system     false             replicated     false        false                      map[version:2]    n/a                 u-kv     n/a        v0.1.0+builtin     n/a               supported
sys/    system    system_1    n/a            n/a        false             replicated     true         false                      map[]             system endpoints    u-sys    n/a        v0.1.0+builtin     n/a               n/a
"
    );
    let out = server
        .run_with(&["secrets", "list", "-format=json"], &ENV, "")
        .await;
    let printed: Value = serde_json::from_str(&out.stdout).unwrap();
    let paths: Vec<&String> = printed.as_object().unwrap().keys().collect();
    assert_eq!(paths, vec!["kv/", "sys/"]);
    let fields: Vec<&String> = printed["kv/"].as_object().unwrap().keys().collect();
    assert_eq!(fields[..4], ["uuid", "type", "description", "accessor"]);
    assert_eq!(
        printed["kv/"]["config"],
        json!({"default_lease_ttl": 3600, "max_lease_ttl": 0, "force_no_cache": false})
    );

    server.reply("POST", "/v1/sys/mounts/kv/tune", 204, None);
    let out = server
        .run_with(
            &[
                "secrets",
                "tune",
                "-default-lease-ttl=1h",
                "-max-lease-ttl=system",
                "-audit-non-hmac-request-keys=a",
                "-audit-non-hmac-request-keys=b",
                "kv",
            ],
            &ENV,
            "",
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "Success! Tuned the secrets engine at: kv/\n");
    assert_eq!(
        server.last().body,
        Some(json!({
            "options": null, "default_lease_ttl": "1h0m0s", "max_lease_ttl": "system",
            "force_no_cache": false, "audit_non_hmac_request_keys": ["a", "b"]
        }))
    );

    server.reply("DELETE", "/v1/sys/mounts/kv", 204, None);
    let out = server
        .run_with(&["secrets", "disable", "/kv/"], &ENV, "")
        .await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (
            0,
            "Success! Disabled the secrets engine (if it existed) at: kv/\n"
        )
    );

    server.reply(
        "POST",
        "/v1/sys/remount",
        200,
        Some(json!({"data": {"migration_id": "m-1"}, "migration_id": "m-1"})),
    );
    server.reply(
        "GET",
        "/v1/sys/remount/status/m-1",
        200,
        Some(json!({"data": {"migration_id": "m-1", "migration_info": {
            "source_mount": "kv/", "target_mount": "kv2/", "status": "success"}}})),
    );
    let out = server
        .run_with(&["secrets", "move", "kv", "kv2"], &ENV, "")
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "Started moving secrets engine kv/ to kv2/, with migration ID m-1\n\
         Success! Finished moving secrets engine kv/ to kv2/, with migration ID m-1\n"
    );
    let seen = server.seen();
    let remount = seen.iter().find(|s| s.path == "/v1/sys/remount").unwrap();
    assert_eq!(remount.body, Some(json!({"from": "kv/", "to": "kv2/"})));

    let out = server.run_with(&["secrets", "move", "kv"], &ENV, "").await;
    assert_eq!(out.code, 1);
    let out = server.run_with(&["secrets", "list", "x"], &ENV, "").await;
    assert_eq!(out.code, 1);
}

#[tokio::test]
async fn auth_commands() {
    let server = Server::start().await;
    server.reply("POST", "/v1/sys/auth/people", 204, None);
    let out = server
        .run_with(
            &[
                "auth",
                "enable",
                "-path=people",
                "-token-type=batch",
                "-default-lease-ttl=30m",
                "userpass",
            ],
            &ENV,
            "",
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "Success! Enabled userpass auth method at: people/\n"
    );
    assert_eq!(
        server.last().body,
        Some(json!({
            "type": "userpass", "description": "",
            "config": {"options": null, "default_lease_ttl": "30m0s", "max_lease_ttl": "0s",
                       "force_no_cache": false, "token_type": "batch"},
            "local": false, "seal_wrap": false, "external_entropy_access": false,
            "options": null
        }))
    );
    let out = server
        .run_with(&["auth", "enable", "-force-no-cache", "userpass"], &ENV, "")
        .await;
    assert_eq!(out.code, 1, "secrets-only flag");

    let auths = json!({
        "token/": {"type": "token", "description": "token based credentials",
                   "accessor": "auth_token_1", "uuid": "u-t", "local": false,
                   "seal_wrap": false, "external_entropy_access": false, "options": null,
                   "config": {"default_lease_ttl": 0, "max_lease_ttl": 0,
                              "token_type": "default-service"},
                   "plugin_version": ""},
        "people/": {"type": "userpass", "description": "", "accessor": "auth_userpass_2",
                    "uuid": "u-p", "local": true, "seal_wrap": false, "options": {},
                    "config": {"default_lease_ttl": 1800, "max_lease_ttl": 0,
                               "token_type": "batch"},
                    "plugin_version": "v1.2.3"}
    });
    server.reply("GET", "/v1/sys/auth", 200, Some(json!({"data": auths})));
    let out = server.run_with(&["auth", "list"], &ENV, "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "\
Path       Type        Accessor           Description                Version
----       ----        --------           -----------                -------
people/    userpass    auth_userpass_2    n/a                        v1.2.3
token/     token       auth_token_1       token based credentials    n/a
"
    );
    let out = server
        .run_with(&["auth", "list", "-detailed"], &ENV, "")
        .await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with(
        "Path       Plugin      Accessor           Default TTL    Max TTL    Token Type         Replication"
    ));
    assert!(lines[2].starts_with(
        "people/    userpass    auth_userpass_2    1800           system     batch              local"
    ));

    server.reply("POST", "/v1/sys/mounts/auth/people/tune", 204, None);
    let out = server
        .run_with(
            &[
                "auth",
                "tune",
                "-description=humans",
                "-token-type=service",
                "people/",
            ],
            &ENV,
            "",
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "Success! Tuned the auth method at: people/\n");
    assert_eq!(
        server.last().body,
        Some(json!({
            "options": null, "default_lease_ttl": "", "description": "humans",
            "max_lease_ttl": "", "force_no_cache": false, "token_type": "service"
        }))
    );

    server.reply("DELETE", "/v1/sys/auth/people", 204, None);
    let out = server
        .run_with(&["auth", "disable", "people"], &ENV, "")
        .await;
    assert_eq!(
        out.stdout,
        "Success! Disabled the auth method (if it existed) at: people/\n"
    );
    server.reply(
        "DELETE",
        "/v1/sys/auth/token",
        400,
        Some(json!({"errors": ["token credential backend cannot be disabled"]})),
    );
    let out = server
        .run_with(&["auth", "disable", "token"], &ENV, "")
        .await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .starts_with("Error disabling auth method at token/: Error making API request.")
    );

    // A server that moves mounts synchronously has no migration to follow.
    server.reply("POST", "/v1/sys/remount", 204, None);
    let out = server
        .run_with(&["auth", "move", "auth/people", "auth/humans"], &ENV, "")
        .await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (
            0,
            "Success! Moved auth method auth/people/ to: auth/humans/\n"
        )
    );
}

#[tokio::test]
async fn lease_lookup_renew_and_revoke() {
    let server = Server::start().await;
    let id = "database/creds/ro/abc";
    server.reply(
        "PUT",
        "/v1/sys/leases/lookup",
        200,
        Some(json!({
            "request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0,
            "data": {
                "id": id, "issue_time": "2024-01-01T00:00:00Z",
                "expire_time": "2024-01-01T01:00:00Z", "last_renewal": null,
                "renewable": true, "ttl": 3599
            },
            "wrap_info": null, "warnings": null, "auth": null
        })),
    );
    let out = server.run_with(&["lease", "lookup", id], &ENV, "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(server.last().body, Some(json!({"lease_id": id})));
    assert_eq!(
        out.stdout,
        "\
Key             Value
---             -----
expire_time     2024-01-01T01:00:00Z
id              database/creds/ro/abc
issue_time      2024-01-01T00:00:00Z
last_renewal    <nil>
renewable       true
ttl             59m59s
"
    );
    let out = server.run_with(&["lease", "lookup"], &ENV, "").await;
    assert_eq!((out.code, out.stderr.as_str()), (1, "Missing ID!\n"));

    server.reply(
        "PUT",
        "/v1/sys/leases/renew",
        200,
        Some(json!({
            "request_id": "r", "lease_id": id, "renewable": true, "lease_duration": 600,
            "data": null, "wrap_info": null,
            "warnings": ["TTL of \"1h\" exceeded the effective max_ttl of \"10m\"; TTL value is capped accordingly"],
            "auth": null
        })),
    );
    let out = server
        .run_with(&["lease", "renew", "-increment=1h", id], &ENV, "")
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        server.last().body,
        Some(json!({"lease_id": id, "increment": 3600}))
    );
    assert!(
        out.stdout.contains("lease_duration     10m"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("exceeded the effective max_ttl"),
        "{}",
        out.stderr
    );

    server.reply("PUT", &format!("/v1/sys/leases/revoke/{id}"), 202, None);
    let out = server.run_with(&["lease", "revoke", id], &ENV, "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "All revocation operations queued successfully!\n"
    );
    assert_eq!(server.last().body, Some(json!({"sync": false})));

    server.reply("PUT", &format!("/v1/sys/leases/revoke/{id}"), 204, None);
    let out = server
        .run_with(&["lease", "revoke", "-sync", id], &ENV, "")
        .await;
    assert_eq!(out.stdout, format!("Success! Revoked lease: {id}\n"));
    assert_eq!(server.last().body, Some(json!({"sync": true})));

    server.reply(
        "PUT",
        "/v1/sys/leases/revoke-prefix/database/creds",
        204,
        None,
    );
    let out = server
        .run_with(
            &["lease", "revoke", "-prefix", "-sync", "database/creds"],
            &ENV,
            "",
        )
        .await;
    assert_eq!(
        out.stdout,
        "Success! Revoked any leases with prefix: database/creds\n"
    );

    let out = server
        .run_with(&["lease", "revoke", "-force", "database/creds"], &ENV, "")
        .await;
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "Specifying -force requires also specifying -prefix\n")
    );
    server.reply(
        "PUT",
        "/v1/sys/leases/revoke-force/database/creds",
        204,
        None,
    );
    let out = server
        .run_with(
            &["lease", "revoke", "-f", "-prefix", "database/creds"],
            &ENV,
            "",
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "Success! Force revoked any leases with prefix: database/creds\n"
    );
    assert!(out.stderr.starts_with("Warning! Force-removing leases"));
    assert_eq!(server.last().body, None);

    server.reply(
        "PUT",
        "/v1/sys/leases/revoke/nope",
        400,
        Some(json!({"errors": ["boom"]})),
    );
    let out = server
        .run_with(&["lease", "revoke", "-sync", "nope"], &ENV, "")
        .await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.starts_with("Error revoking lease nope: "),
        "{}",
        out.stderr
    );
}
