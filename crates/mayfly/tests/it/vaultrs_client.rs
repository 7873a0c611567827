//! The server driven by `vaultrs`, a real Rust Vault client: it parses every answer into its
//! own typed structs, so a missing or mistyped field in one of ours fails here first.

use std::collections::HashMap;

use vaultrs::{
    api::{
        ResponseWrapper, auth::approle::requests::GenerateNewSecretIDRequest,
        sys::requests::EnableEngineRequest,
    },
    client::{Client, VaultClient, VaultClientSettingsBuilder},
    error::ClientError,
};

use crate::support::Server;

/// A client for `server` with `token`, independent of any `VAULT_*` variables around.
fn client(server: &Server, token: &str) -> VaultClient {
    let settings = VaultClientSettingsBuilder::default()
        .address(server.addr())
        .token(token)
        .ca_certs(Vec::new())
        .identity(None)
        .verify(true)
        .build()
        .expect("vaultrs settings");
    VaultClient::new(settings).expect("vaultrs client")
}

fn secret(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The HTTP status of a request refused with Vault's `{"errors": [...]}` body.
fn api_status(err: &ClientError) -> u16 {
    match err {
        ClientError::APIError { code, .. } => *code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn vaultrs_kv2_approle_login_and_token_lookup() {
    let server = Server::inmem().await;
    let root_token = server.root_token().await;
    let root = client(&server, &root_token);

    // Mounts, with the options vaultrs sends.
    let mut kv2 = EnableEngineRequest::builder();
    kv2.options(HashMap::from([("version".to_owned(), "2".to_owned())]))
        .description("app secrets");
    vaultrs::sys::mount::enable(&root, "secret", "kv", Some(&mut kv2))
        .await
        .expect("enable kv v2");
    let mounts = vaultrs::sys::mount::list(&root).await.expect("list mounts");
    let secret_mount = &mounts["secret/"];
    assert_eq!(secret_mount.mount_type, "kv");
    assert_eq!(secret_mount.description, "app secrets");
    assert_eq!(
        secret_mount.options.as_ref().and_then(|o| o.get("version")),
        Some(&"2".to_owned())
    );

    // KV v2 through vaultrs' typed API.
    let first = vaultrs::kv2::set(&root, "secret", "app/db", &secret(&[("password", "one")]))
        .await
        .expect("kv2 set");
    assert_eq!(first.version, 1);
    assert!(!first.destroyed);
    let second = vaultrs::kv2::set(
        &root,
        "secret",
        "app/db",
        &secret(&[("password", "two"), ("user", "app")]),
    )
    .await
    .expect("kv2 set again");
    assert_eq!(second.version, 2);
    vaultrs::kv2::set(&root, "secret", "app/cache", &secret(&[("host", "redis")]))
        .await
        .expect("kv2 set cache");
    let latest: HashMap<String, String> = vaultrs::kv2::read(&root, "secret", "app/db")
        .await
        .expect("kv2 read");
    assert_eq!(latest, secret(&[("password", "two"), ("user", "app")]));
    let old: HashMap<String, String> = vaultrs::kv2::read_version(&root, "secret", "app/db", 1)
        .await
        .expect("kv2 read version");
    assert_eq!(old, secret(&[("password", "one")]));
    let mut listed = vaultrs::kv2::list(&root, "secret", "app")
        .await
        .expect("kv2 list");
    listed.sort();
    assert_eq!(listed, ["cache", "db"]);
    let metadata = vaultrs::kv2::read_metadata(&root, "secret", "app/db")
        .await
        .expect("kv2 metadata");
    assert_eq!(metadata.current_version, 2);
    assert_eq!(metadata.versions.len(), 2);

    vaultrs::kv2::delete_latest(&root, "secret", "app/cache")
        .await
        .expect("kv2 delete latest");
    let gone = vaultrs::kv2::read::<HashMap<String, String>>(&root, "secret", "app/cache")
        .await
        .expect_err("a deleted secret is not readable");
    // Vault's 404 for a soft-deleted secret carries its metadata rather than `errors`, so
    // vaultrs reports it as a bare server response rather than an API error.
    match &gone {
        ClientError::RestClientError { source } => assert!(
            format!("{source:?}").contains("ServerResponseError { code: 404"),
            "{source:?}"
        ),
        other => panic!("expected a 404, got {other:?}"),
    }

    // AppRole, set up and used through vaultrs.
    vaultrs::sys::auth::enable(&root, "approle", "approle", None)
        .await
        .expect("enable approle");
    vaultrs::sys::policy::set(
        &root,
        "app",
        "path \"secret/data/app/*\" {\n  capabilities = [\"read\"]\n}\n",
    )
    .await
    .expect("write policy");
    let mut role = vaultrs::api::auth::approle::requests::SetAppRoleRequest::builder();
    role.token_policies(vec!["app".to_owned()])
        .token_ttl("10m")
        .token_max_ttl("30m");
    vaultrs::auth::approle::role::set(&root, "approle", "app", Some(&mut role))
        .await
        .expect("create role");
    let role_id = vaultrs::auth::approle::role::read_id(&root, "approle", "app")
        .await
        .expect("read role id")
        .role_id;
    let generated = vaultrs::auth::approle::role::secret::generate(&root, "approle", "app", None)
        .await
        .expect("generate secret id");
    assert!(!generated.secret_id_accessor.is_empty());

    let anonymous = client(&server, "");
    let auth = vaultrs::auth::approle::login(&anonymous, "approle", &role_id, &generated.secret_id)
        .await
        .expect("approle login");
    assert_eq!(auth.policies, ["app", "default"]);
    assert_eq!(auth.token_policies, ["app", "default"]);
    assert_eq!(auth.lease_duration, 600);
    assert!(auth.renewable);
    assert_eq!(auth.token_type, "service");
    assert_eq!(
        auth.metadata.as_ref().and_then(|m| m.get("role_name")),
        Some(&"app".to_owned())
    );

    // The application's own client, with the token it logged in with.
    let app = client(&server, &auth.client_token);
    let db: HashMap<String, String> = vaultrs::kv2::read(&app, "secret", "app/db")
        .await
        .expect("app reads its secret");
    assert_eq!(db["password"], "two");
    let refused = vaultrs::kv2::set(&app, "secret", "app/db", &secret(&[("password", "x")]))
        .await
        .expect_err("the app may not write");
    assert_eq!(api_status(&refused), 403, "{refused:?}");

    let me = vaultrs::token::lookup_self(&app)
        .await
        .expect("lookup-self");
    assert_eq!(me.accessor, auth.accessor);
    assert_eq!(me.policies, ["app", "default"]);
    assert_eq!(me.path, "auth/approle/login");
    assert_eq!(
        me.meta.as_ref().and_then(|m| m.get("role_name")),
        Some(&"app".to_owned())
    );
    assert!(me.ttl > 590 && me.ttl <= 600, "ttl {}", me.ttl);
    // The trait's own lookup/renew go through the same endpoints.
    assert_eq!(app.lookup().await.expect("lookup").id, auth.client_token);
    let renewed = app.renew(Some("20m")).await.expect("renew-self");
    assert_eq!(renewed.lease_duration, 1200);

    // Wrapping through vaultrs: the SecretID comes back only from the unwrap.
    let wrapped = GenerateNewSecretIDRequest::builder()
        .mount("approle")
        .role_name("app")
        .build()
        .expect("request")
        .wrap(&root)
        .await
        .expect("wrapped secret id");
    assert_eq!(
        wrapped.info.creation_path,
        "auth/approle/role/app/secret-id"
    );
    let looked_up = wrapped.lookup(&root).await.expect("wrapping lookup");
    assert_eq!(looked_up.creation_path, "auth/approle/role/app/secret-id");
    let unwrapped = wrapped.unwrap(&root).await.expect("unwrap");
    let second_login =
        vaultrs::auth::approle::login(&anonymous, "approle", &role_id, &unwrapped.secret_id)
            .await
            .expect("login with the unwrapped secret id");
    assert_eq!(second_login.policies, ["app", "default"]);
    let again = wrapped.unwrap(&root).await.expect_err("single use");
    assert_eq!(api_status(&again), 400, "{again:?}");

    // Revoking through the client ends the app's access.
    app.revoke().await.expect("revoke-self");
    let after = vaultrs::token::lookup_self(&app)
        .await
        .expect_err("revoked token");
    assert_eq!(api_status(&after), 403, "{after:?}");
}
