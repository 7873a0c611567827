//! The CLI end to end against a scripted HTTP server: checks the requests
//! it sends (method, path, headers, body) and the exact output it prints.

mod support;

use std::collections::BTreeMap;

use mayfly_cli::run_captured;
use serde_json::{Value, json};
use support::Server;

fn seal_status(sealed: bool) -> Value {
    json!({
        "type": "shamir", "initialized": true, "sealed": sealed, "t": 3, "n": 5,
        "progress": if sealed { 1 } else { 0 }, "nonce": if sealed { "nonce-1" } else { "" },
        "version": "0.1.0", "migration": false, "recovery_seal": false,
        "storage_type": "redb", "cluster_name": "mayfly-cluster", "cluster_id": "cid"
    })
}

#[tokio::test]
async fn status_unsealed_and_sealed() {
    let server = Server::start().await;
    server.reply("GET", "/v1/sys/seal-status", 200, Some(seal_status(false)));
    let out = server.run(&["status"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "\
Key             Value
---             -----
Seal Type       shamir
Initialized     true
Sealed          false
Total Shares    5
Threshold       3
Version         0.1.0
Storage Type    redb
Cluster Name    mayfly-cluster
Cluster ID      cid
HA Enabled      false
"
    );
    let seen = server.seen();
    assert_eq!(seen[0].vault_request.as_deref(), Some("true"));
    assert_eq!(seen[0].token, None);

    server.reply("GET", "/v1/sys/seal-status", 200, Some(seal_status(true)));
    let out = server.run(&["status", "-format=json"]).await;
    assert_eq!(out.code, 2);
    let printed: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(printed["sealed"], json!(true));
    assert_eq!(printed["ha_enabled"], json!(false));
}

#[tokio::test]
async fn connection_refused_is_exit_2() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let args: Vec<String> = vec!["status".into(), format!("-address={address}")];
    let out = run_captured(&args, "v", BTreeMap::new(), b"").await;
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr,
        format!(
            "Error checking seal status: Get \"{address}/v1/sys/seal-status\": connection refused\n"
        )
    );
}

#[tokio::test]
async fn read_outputs() {
    let server = Server::start().await;
    let secret = json!({
        "request_id": "r1", "lease_id": "", "renewable": false, "lease_duration": 2764800,
        "data": {"password": "hunter2", "user": "bob"}, "wrap_info": null, "warnings": null,
        "auth": null
    });
    server.reply("GET", "/v1/secret/foo", 200, Some(secret.clone()));
    let env = [("VAULT_TOKEN", "hvs.root")];

    let out = server.run_with(&["read", "secret/foo"], &env, "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "\
Key                 Value
---                 -----
refresh_interval    768h
password            hunter2
user                bob
"
    );
    assert_eq!(server.seen()[0].token.as_deref(), Some("hvs.root"));

    let out = server
        .run_with(&["read", "-field=password", "/secret/foo/"], &env, "")
        .await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "hunter2"));

    // The envelope as Vault's CLI prints it: fixed field order, and no
    // auth or wrap_info when the server sent none.
    let out = server
        .run_with(&["read", "--format", "json", "secret/foo"], &env, "")
        .await;
    assert_eq!(
        out.stdout,
        "{\n  \"request_id\": \"r1\",\n  \"lease_id\": \"\",\n  \"lease_duration\": 2764800,\n  \
         \"renewable\": false,\n  \"data\": {\n    \"password\": \"hunter2\",\n    \"user\": \"bob\"\n  \
         },\n  \"warnings\": null\n}\n"
    );

    let out = server
        .run_with(
            &["read", "-format=yaml", "-field=user", "secret/foo"],
            &env,
            "",
        )
        .await;
    assert_eq!(out.stdout, "bob\n");

    let out = server
        .run_with(&["read", "-field=nope", "secret/foo"], &env, "")
        .await;
    assert_eq!(out.code, 1);
    assert_eq!(out.stderr, "Field \"nope\" not present in secret\n");

    let out = server
        .run_with(&["read", "secret/foo", "version=2", "a=b c"], &env, "")
        .await;
    assert_eq!(out.code, 0);
    assert_eq!(server.seen().last().unwrap().query, "a=b+c&version=2");

    let out = server.run(&["read", "secret/missing"]).await;
    assert_eq!(out.code, 2);
    assert_eq!(out.stderr, "No value found at secret/missing\n");

    server.reply(
        "GET",
        "/v1/secret/locked",
        403,
        Some(json!({"errors": ["permission denied"]})),
    );
    let out = server.run(&["read", "secret/locked"]).await;
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr,
        format!(
            "Error reading secret/locked: Error making API request.\n\nURL: GET \
             {}/v1/secret/locked\nCode: 403. Errors:\n\n* permission denied\n",
            server.address
        )
    );
}

#[tokio::test]
async fn write_list_delete() {
    let server = Server::start().await;
    server.reply("PUT", "/v1/secret/foo", 204, None);
    let out = server
        .run_with(
            &["write", "secret/foo", "a=1", "a=2", "-"],
            &[],
            "{\"b\": true}",
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "Success! Data written to: secret/foo\n");
    let seen = server.seen();
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].body, Some(json!({"a": ["1", "2"], "b": true})));

    let out = server.run(&["write", "secret/foo"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(out.stderr, "Must supply data or use -force\n");
    let out = server.run(&["write", "-f", "secret/foo"]).await;
    assert_eq!(out.code, 0);

    server.reply(
        "PUT",
        "/v1/sys/policy-ish",
        200,
        Some(json!({"data": {"name": "x"}, "lease_duration": 0})),
    );
    let out = server.run(&["write", "sys/policy-ish", "k=v"]).await;
    assert_eq!(out.stdout, "Key     Value\n---     -----\nname    x\n");

    server.reply(
        "LIST",
        "/v1/secret/",
        200,
        Some(json!({"data": {"keys": ["foo", "dir/"]}})),
    );
    let out = server.run(&["list", "secret"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    // Sorted, as Vault prints listings.
    assert_eq!(out.stdout, "Keys\n----\ndir/\nfoo\n");
    let out = server.run(&["list", "-format=json", "secret/"]).await;
    assert_eq!(out.stdout, "[\n  \"foo\",\n  \"dir/\"\n]\n");
    let out = server.run(&["list", "empty"]).await;
    assert_eq!(out.code, 2);
    assert_eq!(out.stderr, "No value found at empty/\n");

    server.reply("DELETE", "/v1/secret/foo", 204, None);
    let out = server.run(&["delete", "secret/foo"]).await;
    assert_eq!(out.code, 0);
    assert_eq!(
        out.stdout,
        "Success! Data deleted (if it existed) at: secret/foo\n"
    );
}

#[tokio::test]
async fn operator_init_unseal_seal() {
    let server = Server::start().await;
    server.reply(
        "PUT",
        "/v1/sys/init",
        200,
        Some(json!({"keys": ["aa"], "keys_base64": ["qg=="], "root_token": "hvs.root"})),
    );
    let out = server
        .run(&[
            "operator",
            "init",
            "-key-shares=1",
            "-key-threshold=1",
            "-format=json",
        ])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        server.seen()[0].body,
        Some(json!({"secret_shares": 1, "secret_threshold": 1}))
    );
    let printed: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(printed["unseal_keys_b64"], json!(["qg=="]));
    assert_eq!(printed["unseal_keys_hex"], json!(["aa"]));
    assert_eq!(printed["root_token"], json!("hvs.root"));

    let out = server.run(&["operator", "init", "-key-shares", "1"]).await;
    assert!(
        out.stdout
            .starts_with("Unseal Key 1: qg==\n\nInitial Root Token: hvs.root\n\n")
    );

    server.reply(
        "GET",
        "/v1/sys/init",
        200,
        Some(json!({"initialized": false})),
    );
    let out = server.run(&["operator", "init", "-status"]).await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (2, "Mayfly is not initialized\n")
    );

    server.reply("PUT", "/v1/sys/unseal", 200, Some(seal_status(true)));
    let out = server
        .run_with(&["operator", "unseal"], &[], "key-from-stdin\n")
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        server.seen().last().unwrap().body,
        Some(json!({"key": "key-from-stdin"}))
    );
    assert!(out.stdout.contains("Unseal Progress    1/3\n"));
    assert!(out.stderr.contains("Unseal Key (will be hidden): "));

    let out = server.run(&["operator", "unseal", "-reset"]).await;
    assert_eq!(out.code, 0);
    assert_eq!(
        server.seen().last().unwrap().body,
        Some(json!({"reset": true}))
    );

    server.reply("PUT", "/v1/sys/seal", 204, None);
    let out = server.run(&["operator", "seal"]).await;
    assert_eq!(out.stdout, "Success! Mayfly is sealed.\n");
}

#[tokio::test]
async fn operator_generate_root_flow() {
    let server = Server::start().await;
    let otp = "abcdefghijklmnopqrstuvwxyz01";
    server.reply(
        "PUT",
        "/v1/sys/generate-root/attempt",
        200,
        Some(json!({
            "nonce": "n-1", "started": true, "progress": 0, "required": 1, "complete": false,
            "encoded_token": "", "encoded_root_token": "", "pgp_fingerprint": "",
            "otp": otp, "otp_length": 28
        })),
    );
    let out = server.run(&["operator", "generate-root", "-init"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!(
            "Nonce         n-1\nStarted       true\nProgress      0/1\nComplete      false\n\
             OTP           {otp}\nOTP Length    28\n"
        )
    );

    let token = "hvs.ABCDEFGHIJKLMNOPQRSTUVWX";
    let xored: Vec<u8> = token.bytes().zip(otp.bytes()).map(|(a, b)| a ^ b).collect();
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD_NO_PAD, xored);
    server.reply(
        "PUT",
        "/v1/sys/generate-root/update",
        200,
        Some(json!({
            "nonce": "n-1", "started": true, "progress": 1, "required": 1, "complete": true,
            "encoded_token": encoded, "encoded_root_token": encoded, "otp_length": 28
        })),
    );
    let out = server
        .run(&["operator", "generate-root", "-nonce=n-1", "unseal-key"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("Encoded Token    {encoded}\n"))
    );
    assert_eq!(
        server.seen().last().unwrap().body,
        Some(json!({"key": "unseal-key", "nonce": "n-1"}))
    );

    let decode = format!("-decode={encoded}");
    let otp_flag = format!("-otp={otp}");
    let out = server
        .run(&["operator", "generate-root", &decode, &otp_flag])
        .await;
    assert_eq!((out.code, out.stdout.as_str()), (0, token));

    server.reply(
        "GET",
        "/v1/sys/generate-root/attempt",
        200,
        Some(json!({"started": false, "otp_length": 28})),
    );
    let out = server
        .run(&["operator", "generate-root", "-generate-otp"])
        .await;
    assert_eq!(out.code, 0);
    assert_eq!(out.stdout.trim_end().len(), 28);

    let out = server
        .run(&["operator", "generate-root", "-init", "-cancel"])
        .await;
    assert_eq!(out.code, 1);
}

#[tokio::test]
async fn usage_errors() {
    let server = Server::start().await;
    let out = server.run(&["bogus"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("Unknown command: bogus\n"));

    let out = server.run(&[]).await;
    assert_eq!(out.code, 1);

    let out = server.run(&["help"]).await;
    assert_eq!(out.code, 0);
    assert!(out.stdout.starts_with("Usage: mayfly <command>"));

    let out = server.run(&["--version"]).await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Mayfly v0.1.0 (test)\n")
    );

    let out = server.run(&["read", "-nope", "x"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("flag provided but not defined: -nope\n")
    );

    let out = server.run(&["read"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("Not enough arguments (expected 1, got 0)")
    );

    let out = server.run(&["list", "a", "b"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("Too many arguments (expected 1, got 2)")
    );

    let out = server.run(&["status", "-format=xml"]).await;
    assert_eq!(out.code, 1);

    let out = server.run(&["read", "-h"]).await;
    assert_eq!(out.code, 0);
    assert!(out.stdout.starts_with("Usage: mayfly read"));

    let out = server.run(&["operator", "frobnicate"]).await;
    assert_eq!(out.code, 1);
    assert!(server.seen().is_empty());
}
