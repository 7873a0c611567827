//! The recipe operators follow to hand an application its secrets: a policy, a kv-v2 mount,
//! an AppRole whose SecretID travels wrapped, a login, and a token that can read exactly what
//! it was given and dies on schedule. Everything over plain HTTP, as an application would.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Resp, Server, eventually, is_uuid};

/// Read access to the application's subtree of `secret/` and nothing else.
const APP_POLICY: &str = r#"
path "secret/data/app/*" {
  capabilities = ["read"]
}
"#;

const INVALID_CREDENTIALS: &str = "invalid role or secret ID";

/// Logs in to `auth/approle` without a token, as an application does.
async fn approle_login(server: &Server, role_id: &str, secret_id: &str) -> Resp {
    server
        .put(
            "auth/approle/login",
            None,
            &json!({"role_id": role_id, "secret_id": secret_id}),
        )
        .await
}

fn client_token(login: &Value) -> String {
    login["auth"]["client_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no client token in {login}"))
        .to_owned()
}

/// Enables AppRole with role `app` (policy `app`, TTL 2 s, max 4 s) and returns its RoleID.
async fn approle_with_app_role(server: &Server, root: &str) -> String {
    server
        .put("sys/auth/approle", Some(root), &json!({"type": "approle"}))
        .await
        .expect(204);
    server
        .put(
            "auth/approle/role/app",
            Some(root),
            &json!({"token_policies": "app", "token_ttl": "2s", "token_max_ttl": "4s"}),
        )
        .await
        .expect(204);
    let role_id = server
        .get("auth/approle/role/app/role-id", Some(root))
        .await;
    let role_id = role_id.expect(200).json()["data"]["role_id"]
        .as_str()
        .expect("role_id")
        .to_owned();
    assert!(is_uuid(&role_id), "role_id {role_id:?}");
    role_id
}

#[tokio::test]
async fn approle_recipe_end_to_end() {
    let server = Server::file().await;
    let root = server.root_token().await;
    let root = root.as_str();

    // The operator's part: a kv-v2 mount, two secrets, a policy for one of them.
    server
        .put("sys/mounts/secret", Some(root), &json!({"type": "kv-v2"}))
        .await
        .expect(204);
    server
        .put(
            "sys/policies/acl/app",
            Some(root),
            &json!({"policy": APP_POLICY}),
        )
        .await
        .expect(204);
    let db = json!({"username": "app", "password": "s3cr3t-db"});
    let written = server
        .put("secret/data/app/db", Some(root), &json!({"data": db}))
        .await;
    assert_eq!(written.expect(200).json()["data"]["version"], 1);
    server
        .put(
            "secret/data/other",
            Some(root),
            &json!({"data": {"not": "yours"}}),
        )
        .await
        .expect(200);
    let role_id = approle_with_app_role(&server, root).await;

    // The SecretID is handed over wrapped: whoever carries the answer only sees a
    // single-use wrapping token, never the SecretID.
    let wrapped = server
        .request_with(
            "PUT",
            "auth/approle/role/app/secret-id",
            Some(root),
            &[("X-Vault-Wrap-TTL", "60s")],
            None,
        )
        .await;
    let wrapped = wrapped.expect(200).json();
    assert_eq!(wrapped["data"], Value::Null, "{wrapped}");
    assert!(
        !wrapped.to_string().contains("secret_id\""),
        "the SecretID leaked into the wrapped answer: {wrapped}"
    );
    let wrap_info = &wrapped["wrap_info"];
    assert_eq!(wrap_info["ttl"], 60, "{wrapped}");
    assert_eq!(
        wrap_info["creation_path"],
        "auth/approle/role/app/secret-id"
    );
    let wrapping_token = wrap_info["token"].as_str().expect("wrapping token");

    let unwrapped = server
        .put(
            "sys/wrapping/unwrap",
            Some(root),
            &json!({"token": wrapping_token}),
        )
        .await;
    let unwrapped = unwrapped.expect(200).json();
    let secret_id = unwrapped["data"]["secret_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no secret_id in {unwrapped}"))
        .to_owned();
    assert!(unwrapped["data"]["secret_id_accessor"].is_string());
    // Single use: a second unwrap (an attacker who copied the token) fails.
    let again = server
        .put(
            "sys/wrapping/unwrap",
            Some(root),
            &json!({"token": wrapping_token}),
        )
        .await;
    assert_eq!(
        again.expect(400).errors(),
        ["wrapping token is not valid or does not exist"]
    );

    // The application's part: log in and use the token.
    let login = approle_login(&server, &role_id, &secret_id).await;
    let logged_in_at = Instant::now();
    let login = login.expect(200).json();
    let auth = &login["auth"];
    assert_eq!(auth["policies"], json!(["app", "default"]), "{login}");
    assert_eq!(auth["token_policies"], json!(["app", "default"]));
    assert_eq!(auth["lease_duration"], 2);
    assert_eq!(auth["renewable"], true);
    assert_eq!(auth["metadata"]["role_name"], "app");
    let app = client_token(&login);
    let app = app.as_str();

    let read = server.get("secret/data/app/db", Some(app)).await;
    assert_eq!(read.expect(200).json()["data"]["data"], db);
    server.get("secret/data/other", Some(app)).await.expect(403);
    server.get("sys/mounts", Some(app)).await.expect(403);
    server
        .put(
            "secret/data/app/db",
            Some(app),
            &json!({"data": {"password": "mine now"}}),
        )
        .await
        .expect(403);
    // Clients (the CLI's `kv` commands among them) ask which KV version serves a path.
    let preflight = server
        .get("sys/internal/ui/mounts/secret/app/db", Some(app))
        .await;
    let preflight = preflight.expect(200).json();
    assert_eq!(preflight["data"]["options"]["version"], "2", "{preflight}");
    assert_eq!(preflight["data"]["type"], "kv");
    assert_eq!(preflight["data"]["path"], "secret/");

    // The token dies at its TTL, without anyone revoking it. Expiry has one-second
    // granularity, so a 2 s token lives more than 1 s.
    eventually(Duration::from_secs(6), "the app token expires", || async {
        let status = server.get("auth/token/lookup-self", Some(app)).await.status;
        assert!(
            status == 200 || status == 403,
            "lookup-self answered {status}"
        );
        (status == 403).then_some(())
    })
    .await;
    let lived = logged_in_at.elapsed();
    assert!(
        lived >= Duration::from_secs(1),
        "the token died after {lived:?}"
    );
    server
        .get("secret/data/app/db", Some(app))
        .await
        .expect(403);

    // The SecretID has unlimited uses, so the application can log in again.
    let second = approle_login(&server, &role_id, &secret_id).await;
    let second = client_token(&second.expect(200).json());
    let read = server.get("secret/data/app/db", Some(&second)).await;
    assert_eq!(read.expect(200).json()["data"]["data"], db);

    // Renewing cannot outlive the role's token_max_ttl (4 s from login).
    let renewed = server
        .put(
            "auth/token/renew-self",
            Some(&second),
            &json!({"increment": "1h"}),
        )
        .await;
    let renewed = renewed.expect(200).json();
    let lease = renewed["auth"]["lease_duration"].as_u64().expect("lease");
    assert!((1..=4).contains(&lease), "renewed to {lease}s: {renewed}");
    assert!(
        renewed["warnings"].to_string().contains("capped"),
        "{renewed}"
    );

    // Revoking a token revokes what it created: a parent made by root hands out a child,
    // and once the parent is revoked the child is refused too.
    server
        .put(
            "sys/policies/acl/issuer",
            Some(root),
            &json!({"policy": format!(
                "{APP_POLICY}\npath \"auth/token/create\" {{\n  capabilities = [\"update\"]\n}}\n"
            )}),
        )
        .await
        .expect(204);
    let parent = server
        .put(
            "auth/token/create",
            Some(root),
            &json!({"policies": ["issuer"]}),
        )
        .await;
    let parent = client_token(&parent.expect(200).json());
    let child = server
        .put("auth/token/create", Some(&parent), &json!({}))
        .await;
    let child = child.expect(200).json();
    assert_eq!(child["auth"]["policies"], json!(["default", "issuer"]));
    assert_eq!(child["auth"]["orphan"], false);
    let child = client_token(&child);
    server
        .get("secret/data/app/db", Some(&child))
        .await
        .expect(200);
    server
        .put("auth/token/revoke", Some(root), &json!({"token": parent}))
        .await
        .expect(204);
    for token in [&parent, &child] {
        server
            .get("auth/token/lookup-self", Some(token))
            .await
            .expect(403);
        server
            .get("secret/data/app/db", Some(token))
            .await
            .expect(403);
    }
}

#[tokio::test]
async fn approle_refuses_wrong_and_spent_secret_ids_alike() {
    let server = Server::inmem().await;
    let root = server.root_token().await;
    server
        .put(
            "sys/policies/acl/app",
            Some(&root),
            &json!({"policy": APP_POLICY}),
        )
        .await
        .expect(204);
    let role_id = approle_with_app_role(&server, &root).await;

    // Every mismatch gets the same answer, so a caller cannot tell which half was wrong.
    let wrong_secret = approle_login(&server, &role_id, "not-the-secret-id").await;
    assert_eq!(wrong_secret.expect(400).errors(), [INVALID_CREDENTIALS]);
    let generated = server
        .put("auth/approle/role/app/secret-id", Some(&root), &json!({}))
        .await;
    let valid_secret = generated.expect(200).json()["data"]["secret_id"]
        .as_str()
        .expect("secret_id")
        .to_owned();
    let wrong_role = approle_login(
        &server,
        "00000000-0000-0000-0000-000000000000",
        &valid_secret,
    )
    .await;
    assert_eq!(wrong_role.expect(400).errors(), [INVALID_CREDENTIALS]);

    // A SecretID limited to one use logs in once.
    let single = server
        .put(
            "auth/approle/role/app/secret-id",
            Some(&root),
            &json!({"num_uses": 1}),
        )
        .await;
    let single = single.expect(200).json();
    assert_eq!(single["data"]["secret_id_num_uses"], 1, "{single}");
    let single = single["data"]["secret_id"].as_str().expect("secret_id");
    let first = approle_login(&server, &role_id, single).await;
    let token = client_token(&first.expect(200).json());
    server
        .get("auth/token/lookup-self", Some(&token))
        .await
        .expect(200);
    let second = approle_login(&server, &role_id, single).await;
    assert_eq!(second.expect(400).errors(), [INVALID_CREDENTIALS]);
    // The unlimited one keeps working.
    approle_login(&server, &role_id, &valid_secret)
        .await
        .expect(200);
}
