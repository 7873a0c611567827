//! What the server does with mistakes and hostile input: a broken policy does not replace a
//! working one, paths cannot climb out of a mount, expired tokens stop working, and no
//! token or SecretID ever reaches the log.

use std::time::Duration;

use serde_json::json;

use crate::support::{Options, Server, Storage, eventually, raw_request};

const READER_POLICY: &str = "path \"secret/data/*\" {\n  capabilities = [\"read\"]\n}\n";

#[tokio::test]
async fn a_policy_with_a_syntax_error_is_refused_and_the_old_one_stays() {
    let server = Server::inmem().await;
    let root = server.root_token().await;
    let root = Some(root.as_str());
    server
        .put("sys/mounts/secret", root, &json!({"type": "kv-v2"}))
        .await
        .expect(204);
    server
        .put("secret/data/db", root, &json!({"data": {"password": "p"}}))
        .await
        .expect(200);
    server
        .put(
            "sys/policies/acl/reader",
            root,
            &json!({"policy": READER_POLICY}),
        )
        .await
        .expect(204);
    let token = server
        .put("auth/token/create", root, &json!({"policies": ["reader"]}))
        .await;
    let token = token.expect(200).json()["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_owned();

    // An unclosed list: the message says where the parser gave up.
    let unclosed = "path \"secret/data/*\" {\n  capabilities = [\"read\"\n}\n";
    let refused = server
        .put(
            "sys/policies/acl/reader",
            root,
            &json!({"policy": unclosed}),
        )
        .await;
    let message = refused.expect(400).errors().join(" ");
    assert!(
        message.contains("line 3, column 1"),
        "no position in {message:?}"
    );
    // A valid file with a nonsense capability: the position points at the bad block.
    let bad_capability =
        format!("{READER_POLICY}path \"sys/*\" {{\n  capabilities = [\"fly\"]\n}}\n");
    let refused = server
        .put(
            "sys/policies/acl/reader",
            root,
            &json!({"policy": bad_capability}),
        )
        .await;
    let message = refused.expect(400).errors().join(" ");
    assert!(message.contains("line 5"), "no line in {message:?}");
    assert!(message.contains("fly"), "no culprit in {message:?}");
    // Through the legacy endpoint, with the `rules` field, the same.
    let refused = server
        .put("sys/policy/reader", root, &json!({"rules": unclosed}))
        .await;
    assert!(refused.expect(400).errors().join(" ").contains("line 3"));

    // The stored policy is unchanged and still grants what it did.
    let stored = server.get("sys/policies/acl/reader", root).await;
    assert_eq!(stored.expect(200).json()["data"]["policy"], READER_POLICY);
    let read = server.get("secret/data/db", Some(&token)).await;
    assert_eq!(read.expect(200).json()["data"]["data"]["password"], "p");
    server
        .put("secret/data/db", Some(&token), &json!({"data": {}}))
        .await
        .expect(403);
}

#[tokio::test]
async fn parent_references_in_kv_paths_are_refused() {
    let server = Server::inmem().await;
    let root = server.root_token().await;
    server
        .put("sys/mounts/secret", Some(&root), &json!({"type": "kv-v2"}))
        .await
        .expect(204);
    server
        .put(
            "secret/data/app/db",
            Some(&root),
            &json!({"data": {"k": "v"}}),
        )
        .await
        .expect(200);

    // HTTP clients normalise `..` away, so these go over a raw socket, written as an
    // attacker would: plain, percent-encoded, and on a write.
    for (method, path, body) in [
        ("GET", "/v1/secret/data/app/../app/db", ""),
        ("GET", "/v1/secret/data/%2E%2E/data/app/db", ""),
        (
            "GET",
            "/v1/secret/data/app/%2e%2e/%2e%2e/metadata/app/db",
            "",
        ),
        (
            "POST",
            "/v1/secret/data/../../sys/policies/acl/x",
            "{\"data\":{}}",
        ),
    ] {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Vault-Token: {root}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let resp = raw_request(server.port(), &request).await;
        assert_eq!(resp.status, 400, "{method} {path}: {}", resp.body);
        assert_eq!(
            resp.json()["errors"],
            json!(["path cannot contain parent references"]),
            "{method} {path}"
        );
    }
    // Dots inside a name are just a name.
    server
        .put(
            "secret/data/app/v1..2",
            Some(&root),
            &json!({"data": {"k": "dots"}}),
        )
        .await
        .expect(200);
    let read = server.get("secret/data/app/v1..2", Some(&root)).await;
    assert_eq!(read.expect(200).json()["data"]["data"]["k"], "dots");
    // Nothing was written outside the mount.
    server
        .get("sys/policies/acl/x", Some(&root))
        .await
        .expect(404);
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let server = Server::inmem().await;
    let root = server.root_token().await;
    let created = server
        .put(
            "auth/token/create",
            Some(&root),
            &json!({"policies": ["default"], "ttl": "1s"}),
        )
        .await;
    let created = created.expect(200).json();
    assert_eq!(created["auth"]["lease_duration"], 1);
    let token = created["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_owned();

    let refused = eventually(Duration::from_secs(5), "the 1 s token expires", || async {
        let resp = server.get("auth/token/lookup-self", Some(&token)).await;
        assert!(
            resp.status == 200 || resp.status == 403,
            "{}: {}",
            resp.status,
            resp.body
        );
        (resp.status == 403).then_some(resp)
    })
    .await;
    assert!(refused.errors().contains(&"permission denied".to_owned()));
    // Expired means gone, for every use: renewal cannot bring it back.
    let renew = server
        .put("auth/token/renew-self", Some(&token), &json!({}))
        .await;
    assert_eq!(renew.status, 403, "{}", renew.body);
    server
        .put("auth/token/lookup", Some(&root), &json!({"token": token}))
        .await
        .expect(403);
}

#[tokio::test]
async fn tokens_and_secret_ids_never_reach_the_log() {
    // The most verbose level, so that anything that logs requests is included.
    let mut options = Options::new(Storage::Inmem);
    options.top_extra = "log_level = \"trace\"".to_owned();
    let server = Server::start(options).await;
    let root = server.root_token().await;
    let as_root = Some(root.as_str());

    server
        .put("sys/auth/approle", as_root, &json!({"type": "approle"}))
        .await
        .expect(204);
    server
        .put(
            "auth/approle/role/app",
            as_root,
            &json!({"token_policies": "default"}),
        )
        .await
        .expect(204);
    let role_id = server.get("auth/approle/role/app/role-id", as_root).await;
    let role_id = role_id.expect(200).json()["data"]["role_id"]
        .as_str()
        .expect("role_id")
        .to_owned();
    let secret = server
        .put("auth/approle/role/app/secret-id", as_root, &json!({}))
        .await;
    let secret_id = secret.expect(200).json()["data"]["secret_id"]
        .as_str()
        .expect("secret_id")
        .to_owned();
    let login = server
        .put(
            "auth/approle/login",
            None,
            &json!({"role_id": role_id, "secret_id": secret_id}),
        )
        .await;
    let app = login.expect(200).json()["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let wrapped = server
        .request_with(
            "PUT",
            "sys/wrapping/wrap",
            as_root,
            &[("X-Vault-Wrap-TTL", "5m")],
            Some(&json!({"k": "v"})),
        )
        .await;
    let wrapping_token = wrapped.expect(200).json()["wrap_info"]["token"]
        .as_str()
        .expect("wrapping token")
        .to_owned();

    // Successes and every kind of failure with those credentials in play.
    server
        .get("auth/token/lookup-self", Some(&app))
        .await
        .expect(200);
    server.get("sys/mounts", Some(&app)).await.expect(403);
    server
        .put(
            "auth/token/lookup",
            as_root,
            &json!({"token": format!("{app}x")}),
        )
        .await
        .expect(403);
    server
        .put(
            "auth/approle/login",
            None,
            &json!({"role_id": role_id, "secret_id": format!("{secret_id}x")}),
        )
        .await
        .expect(400);
    server
        .get("auth/token/lookup-self", Some(&format!("{root}x")))
        .await
        .expect(403);
    server
        .put(
            "sys/mounts/bad",
            as_root,
            &json!({"type": "no-such-engine"}),
        )
        .await
        .expect(400);
    server
        .put(
            "sys/wrapping/unwrap",
            as_root,
            &json!({"token": wrapping_token}),
        )
        .await
        .expect(200);
    server
        .put(
            "sys/wrapping/unwrap",
            as_root,
            &json!({"token": wrapping_token}),
        )
        .await
        .expect(400);
    server
        .put("auth/token/revoke-self", Some(&app), &json!({}))
        .await
        .expect(204);

    let log = server.stderr();
    assert!(
        log.contains("Mount enabled"),
        "the log is being written:\n{log}"
    );
    for (what, value) in [
        ("root token", root.as_str()),
        ("approle token", app.as_str()),
        ("wrapping token", wrapping_token.as_str()),
        ("SecretID", secret_id.as_str()),
    ] {
        // Also without the `hvs.` prefix, in case something strips it before logging.
        let bare = value.strip_prefix("hvs.").unwrap_or(value);
        assert!(
            !log.contains(bare),
            "the {what} appears in the server log:\n{log}"
        );
    }
}
