//! `login`, `token`, `unwrap` and the global wrapping and namespace
//! options against a scripted server: the requests they send and what
//! they print.

mod support;

use serde_json::{Value, json};
use support::Server;

fn login_auth(token: &str) -> Value {
    json!({
        "request_id": "r", "lease_id": "", "lease_duration": 0, "renewable": false,
        "data": null, "warnings": null, "wrap_info": null,
        "auth": {
            "client_token": token, "accessor": "acc-1", "policies": ["default", "dev"],
            "token_policies": ["default", "dev"], "identity_policies": null,
            "metadata": {"username": "sally"}, "lease_duration": 3600, "renewable": true,
            "entity_id": "", "token_type": "service", "orphan": true, "num_uses": 0
        }
    })
}

fn lookup_self(id: &str) -> Value {
    json!({
        "request_id": "r", "lease_id": "", "lease_duration": 0, "renewable": false,
        "data": {
            "accessor": "acc-self", "creation_time": 1700000000, "creation_ttl": 7200,
            "display_name": "token", "entity_id": "", "expire_time": null,
            "explicit_max_ttl": 0, "id": id, "meta": {"team": "ops"}, "num_uses": 0,
            "orphan": false, "path": "auth/token/create", "policies": ["default"],
            "renewable": true, "ttl": 7199, "type": "service"
        },
        "warnings": null, "auth": null
    })
}

const SUCCESS: &str = "\
Success! You are now authenticated. The token information displayed below is
already stored in the token helper. You do NOT need to run \"mayfly login\"
again. Future Mayfly requests will automatically use this token.

";

#[tokio::test]
async fn login_with_token_validates_and_stores() {
    let server = Server::start().await;
    server.reply(
        "GET",
        "/v1/auth/token/lookup-self",
        200,
        Some(lookup_self("hvs.given")),
    );
    let home = tempfile::tempdir().unwrap();
    let home_s = home.path().to_str().unwrap();
    let env = [("HOME", home_s)];

    let out = server.run_with(&["login", "hvs.given"], &env, "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!(
            "{SUCCESS}\
Key                  Value
---                  -----
token                hvs.given
token_accessor       acc-self
token_duration       1h59m59s
token_renewable      true
token_policies       [\"default\"]
identity_policies    []
policies             [\"default\"]
token_meta_team      ops
"
        )
    );
    assert_eq!(out.stderr, "");
    let seen = server.last();
    assert_eq!(seen.token.as_deref(), Some("hvs.given"));
    let stored = home.path().join(".mayfly-token");
    assert_eq!(std::fs::read_to_string(&stored).unwrap(), "hvs.given");

    // Later commands pick the stored token up.
    let out = server.run_with(&["token", "lookup"], &env, "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(server.last().token.as_deref(), Some("hvs.given"));
    assert!(
        out.stdout.contains("creation_ttl        2h\n"),
        "{}",
        out.stdout
    );

    // The token can come from a hidden prompt or from standard input.
    std::fs::remove_file(&stored).unwrap();
    let out = server.run_with(&["login"], &env, "hvs.given\n").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr, "Token (will be hidden): \n");
    let out = server.run_with(&["login", "-"], &env, "hvs.given\n").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(server.last().token.as_deref(), Some("hvs.given"));

    // -token-only prints the bare token and stores nothing.
    std::fs::remove_file(&stored).unwrap();
    let out = server
        .run_with(&["login", "-token-only", "hvs.given"], &env, "")
        .await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "hvs.given"));
    assert!(!stored.exists());

    // -no-store warns and still shows the token.
    let out = server
        .run_with(&["login", "-no-store", "hvs.given"], &env, "")
        .await;
    assert_eq!(out.code, 0);
    assert!(!stored.exists());
    assert!(
        out.stderr
            .starts_with("The token was not stored in token helper.")
    );
    assert!(out.stdout.contains("token                hvs.given\n"));

    // A token in the environment would shadow the stored one: say so.
    let out = server
        .run_with(
            &["login", "-format=json", "hvs.given"],
            &[("HOME", home_s), ("VAULT_TOKEN", "hvs.env")],
            "",
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .starts_with("WARNING! The VAULT_TOKEN environment variable is set!")
    );
    let printed: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(printed["auth"]["client_token"], json!("hvs.given"));
    assert_eq!(printed["auth"]["lease_duration"], json!(7199));
    assert_eq!(printed["auth"]["metadata"], json!({"team": "ops"}));
    assert_eq!(printed["request_id"], json!(""));

    let out = server
        .run_with(&["login", "-no-store", "-no-print", "x"], &env, "")
        .await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("-no-store and -no-print cannot be used together\n")
    );

    server.reply(
        "GET",
        "/v1/auth/token/lookup-self",
        403,
        Some(json!({"errors": ["permission denied"]})),
    );
    let out = server.run_with(&["login", "hvs.bad"], &env, "").await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .starts_with("Error authenticating: error looking up token: Error making API request.")
    );
}

#[tokio::test]
async fn login_with_userpass_and_approle() {
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();
    let home_s = home.path().to_str().unwrap();
    // A stored token must not leak into logins with other methods.
    std::fs::write(home.path().join(".mayfly-token"), "hvs.old").unwrap();
    let env = [("HOME", home_s)];

    server.reply(
        "PUT",
        "/v1/auth/userpass/login/sally",
        200,
        Some(login_auth("hvs.sally")),
    );
    let out = server
        .run_with(
            &["login", "-method=userpass", "username=sally", "password=pw"],
            &env,
            "",
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let seen = server.last();
    assert_eq!(seen.token, None);
    assert_eq!(seen.body, Some(json!({"password": "pw"})));
    assert_eq!(
        out.stdout,
        format!(
            "{SUCCESS}\
Key                    Value
---                    -----
token                  hvs.sally
token_accessor         acc-1
token_duration         1h
token_renewable        true
token_policies         [\"default\" \"dev\"]
identity_policies      []
policies               [\"default\" \"dev\"]
token_meta_username    sally
"
        )
    );
    assert_eq!(
        std::fs::read_to_string(home.path().join(".mayfly-token")).unwrap(),
        "hvs.sally"
    );

    // Missing password: asked for without echo.
    server.reply(
        "PUT",
        "/v1/auth/people/login/sally",
        200,
        Some(login_auth("hvs.sally2")),
    );
    let out = server
        .run_with(
            &[
                "login",
                "-method=userpass",
                "-path=people",
                "-field=token",
                "username=sally",
            ],
            &env,
            "secret-pw\n",
        )
        .await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "hvs.sally2"));
    assert_eq!(out.stderr, "Password (will be hidden): \n");
    assert_eq!(server.last().body, Some(json!({"password": "secret-pw"})));

    let out = server
        .run_with(&["login", "-method=userpass", "password=x"], &env, "")
        .await;
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr,
        "Error authenticating: 'username' must be specified\n"
    );

    server.reply(
        "PUT",
        "/v1/auth/approle/login",
        200,
        Some(login_auth("hvs.app")),
    );
    let out = server
        .run_with(
            &[
                "login",
                "-method=approle",
                "-token-only",
                "role_id=rid",
                "secret_id=sid",
            ],
            &env,
            "",
        )
        .await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "hvs.app"));
    let seen = server.last();
    assert_eq!(seen.method, "PUT");
    assert_eq!(seen.token, None);
    assert_eq!(
        seen.body,
        Some(json!({"role_id": "rid", "secret_id": "sid"}))
    );

    server.reply(
        "PUT",
        "/v1/auth/approle/login",
        400,
        Some(json!({"errors": ["invalid role or secret ID"]})),
    );
    let out = server
        .run_with(
            &["login", "-method=approle", "role_id=r", "secret_id=bad"],
            &env,
            "",
        )
        .await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("* invalid role or secret ID"));

    let out = server
        .run_with(&["login", "-method=github", "token=x"], &env, "")
        .await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("Unknown auth method: github."));
}

#[tokio::test]
async fn wrapped_login_is_unwrapped_before_storing() {
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();
    let env = [("HOME", home.path().to_str().unwrap())];
    let wrapped = json!({
        "request_id": "", "lease_id": "", "lease_duration": 0, "renewable": false,
        "data": null, "warnings": null, "auth": null,
        "wrap_info": {
            "token": "hvs.wrapping", "accessor": "wacc", "ttl": 120,
            "creation_time": "2024-05-06T07:08:09.5Z",
            "creation_path": "auth/userpass/login/sally", "wrapped_accessor": "acc-1"
        }
    });
    server.reply("PUT", "/v1/auth/userpass/login/sally", 200, Some(wrapped));
    server.reply(
        "PUT",
        "/v1/sys/wrapping/unwrap",
        200,
        Some(login_auth("hvs.inner")),
    );
    let out = server
        .run_with(
            &[
                "login",
                "-wrap-ttl=2m",
                "-method=userpass",
                "username=sally",
                "password=pw",
            ],
            &env,
            "",
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let seen = server.seen();
    assert_eq!(seen[0].wrap_ttl.as_deref(), Some("2m0s"));
    assert_eq!(seen[1].path, "/v1/sys/wrapping/unwrap");
    assert_eq!(seen[1].token.as_deref(), Some("hvs.wrapping"));
    assert_eq!(seen[1].wrap_ttl, None);
    assert_eq!(
        std::fs::read_to_string(home.path().join(".mayfly-token")).unwrap(),
        "hvs.inner"
    );

    // With -no-store the wrapping token itself is shown.
    server.clear();
    let out = server
        .run_with(
            &[
                "login",
                "-no-store",
                "-method=userpass",
                "username=sally",
                "password=pw",
            ],
            &env,
            "",
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(server.seen().len(), 1);
    assert_eq!(
        out.stdout,
        "\
Key                              Value
---                              -----
wrapping_token:                  hvs.wrapping
wrapping_accessor:               wacc
wrapping_token_ttl:              2m
wrapping_token_creation_time:    2024-05-06 07:08:09.5 +0000 UTC
wrapping_token_creation_path:    auth/userpass/login/sally
wrapped_accessor:                acc-1
"
    );
    let out = server
        .run_with(
            &[
                "login",
                "-token-only",
                "-method=userpass",
                "username=sally",
                "password=pw",
            ],
            &env,
            "",
        )
        .await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "hvs.wrapping"));
}

#[tokio::test]
async fn wrap_ttl_and_namespace_headers() {
    let server = Server::start().await;
    server.reply(
        "GET",
        "/v1/secret/x",
        200,
        Some(json!({
            "request_id": "", "lease_id": "", "lease_duration": 0, "renewable": false,
            "data": null, "warnings": null, "auth": null,
            "wrap_info": {
                "token": "hvs.w", "accessor": "wa", "ttl": 300,
                "creation_time": "2024-01-02T03:04:05.123456789Z",
                "creation_path": "secret/x", "wrapped_accessor": ""
            }
        })),
    );
    let out = server
        .run(&["read", "-wrap-ttl=5m", "-namespace=/team/a", "secret/x"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let seen = server.last();
    assert_eq!(seen.wrap_ttl.as_deref(), Some("5m0s"));
    assert_eq!(seen.namespace.as_deref(), Some("team/a/"));
    assert_eq!(
        out.stdout,
        "\
Key                              Value
---                              -----
wrapping_token:                  hvs.w
wrapping_accessor:               wa
wrapping_token_ttl:              5m
wrapping_token_creation_time:    2024-01-02 03:04:05.123456789 +0000 UTC
wrapping_token_creation_path:    secret/x
"
    );

    let out = server
        .run(&[
            "read",
            "-wrap-ttl=90",
            "-ns=ops",
            "-field=wrapping_token",
            "secret/x",
        ])
        .await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "hvs.w"));
    let seen = server.last();
    assert_eq!(seen.wrap_ttl.as_deref(), Some("1m30s"));
    assert_eq!(seen.namespace.as_deref(), Some("ops/"));

    let out = server
        .run_with(
            &["read", "-format=json", "secret/x"],
            &[("VAULT_WRAP_TTL", "1h"), ("VAULT_NAMESPACE", "env-ns")],
            "",
        )
        .await;
    assert_eq!(out.code, 0);
    let seen = server.last();
    assert_eq!(seen.wrap_ttl.as_deref(), Some("1h0m0s"));
    assert_eq!(seen.namespace.as_deref(), Some("env-ns/"));
    let printed: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(printed["wrap_info"]["wrapped_accessor"], json!(""));
    assert!(printed.get("auth").is_none());

    let out = server.run(&["read", "secret/x"]).await;
    assert_eq!(out.code, 0);
    let seen = server.last();
    assert_eq!((seen.wrap_ttl, seen.namespace), (None, None));

    let out = server.run(&["read", "-wrap-ttl=soon", "secret/x"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with(
        "invalid value \"soon\" for flag -wrap-ttl: time: invalid duration \"soon\"\n"
    ));
}

fn created_token() -> Value {
    json!({
        "request_id": "r", "lease_id": "", "lease_duration": 0, "renewable": false,
        "data": null, "warnings": ["Policy \"dev\" does not exist"],
        "auth": {
            "client_token": "hvs.child", "accessor": "acc-child", "policies": ["default", "dev"],
            "token_policies": ["default", "dev"], "metadata": {"team": "ops"},
            "lease_duration": 3600, "renewable": true
        }
    })
}

#[tokio::test]
async fn token_create() {
    let server = Server::start().await;
    server.reply("POST", "/v1/auth/token/create", 200, Some(created_token()));
    let env = [("VAULT_TOKEN", "hvs.parent")];
    let out = server
        .run_with(
            &[
                "token",
                "create",
                "-policy=default",
                "-policy=dev",
                "-ttl=1h",
                "-metadata=team=ops",
                "-orphan",
            ],
            &env,
            "",
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let seen = server.last();
    assert_eq!(seen.token.as_deref(), Some("hvs.parent"));
    assert_eq!(
        seen.body,
        Some(json!({
            "policies": ["default", "dev"], "meta": {"team": "ops"}, "ttl": "1h0m0s",
            "explicit_max_ttl": "0s", "period": "0s", "no_parent": true, "display_name": "",
            "num_uses": 0, "renewable": true, "type": "service", "entity_alias": ""
        }))
    );
    assert_eq!(
        out.stdout,
        "\
Key                  Value
---                  -----
token                hvs.child
token_accessor       acc-child
token_duration       1h
token_renewable      true
token_policies       [\"default\" \"dev\"]
identity_policies    []
policies             [\"default\" \"dev\"]
token_meta_team      ops
"
    );
    assert_eq!(
        out.stderr,
        "WARNING! The following warnings were returned from Mayfly:\n\n  * Policy \"dev\" does not exist\n\n"
    );

    server.reply(
        "POST",
        "/v1/auth/token/create/ci",
        200,
        Some(created_token()),
    );
    let out = server
        .run_with(&["token", "create", "-role=ci", "-field=token"], &env, "")
        .await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "hvs.child"));
    assert_eq!(server.last().path, "/v1/auth/token/create/ci");

    let out = server
        .run_with(&["token", "create", "-format=json"], &env, "")
        .await;
    let printed: Value = serde_json::from_str(&out.stdout).unwrap();
    let keys: Vec<&String> = printed["auth"].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        vec![
            "client_token",
            "accessor",
            "policies",
            "token_policies",
            "identity_policies",
            "metadata",
            "orphan",
            "entity_id",
            "lease_duration",
            "renewable",
            "mfa_requirement"
        ]
    );

    let out = server
        .run_with(&["token", "create", "extra"], &env, "")
        .await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("Too many arguments (expected 0, got 1)")
    );
    let out = server
        .run_with(&["token", "create", "-metadata=novalue"], &env, "")
        .await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with(
        "invalid value \"novalue\" for flag -metadata: missing = in KV pair: \"novalue\""
    ));
}

#[tokio::test]
async fn token_lookup_renew_revoke_capabilities() {
    let server = Server::start().await;
    let env = [("VAULT_TOKEN", "hvs.me")];
    server.reply(
        "POST",
        "/v1/auth/token/lookup",
        200,
        Some(lookup_self("hvs.other")),
    );
    let out = server
        .run_with(&["token", "lookup", "hvs.other"], &env, "")
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(server.last().body, Some(json!({"token": "hvs.other"})));
    assert_eq!(
        out.stdout,
        "\
Key                 Value
---                 -----
accessor            acc-self
creation_time       1700000000
creation_ttl        2h
display_name        token
entity_id           n/a
expire_time         <nil>
explicit_max_ttl    0s
id                  hvs.other
meta                map[team:ops]
num_uses            0
orphan              false
path                auth/token/create
policies            [default]
renewable           true
ttl                 1h59m59s
type                service
"
    );
    server.reply(
        "POST",
        "/v1/auth/token/lookup-accessor",
        200,
        Some(lookup_self("")),
    );
    let out = server
        .run_with(&["token", "lookup", "-accessor", "acc"], &env, "")
        .await;
    assert_eq!(out.code, 0);
    assert_eq!(server.last().body, Some(json!({"accessor": "acc"})));
    let out = server
        .run_with(&["token", "lookup", "-accessor"], &env, "")
        .await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("Not enough arguments with -accessor (expected 1, got 0)")
    );

    let renewed = created_token();
    server.reply(
        "PUT",
        "/v1/auth/token/renew-self",
        200,
        Some(renewed.clone()),
    );
    server.reply("PUT", "/v1/auth/token/renew", 200, Some(renewed.clone()));
    server.reply("POST", "/v1/auth/token/renew-accessor", 200, Some(renewed));
    let out = server.run_with(&["token", "renew"], &env, "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(server.last().body, Some(json!({"increment": 0})));
    assert!(out.stdout.contains("token_duration       1h\n"));
    let out = server
        .run_with(&["token", "renew", "-i", "2h30s", "hvs.x"], &env, "")
        .await;
    assert_eq!(out.code, 0);
    assert_eq!(
        server.last().body,
        Some(json!({"increment": 7230, "token": "hvs.x"}))
    );
    let out = server
        .run_with(
            &["token", "renew", "-accessor", "-increment=1m", "acc"],
            &env,
            "",
        )
        .await;
    assert_eq!(out.code, 0);
    assert_eq!(
        server.last().body,
        Some(json!({"accessor": "acc", "increment": 60}))
    );

    for (path, method) in [
        ("/v1/auth/token/revoke", "PUT"),
        ("/v1/auth/token/revoke-self", "PUT"),
        ("/v1/auth/token/revoke-orphan", "PUT"),
        ("/v1/auth/token/revoke-accessor", "POST"),
        ("/v1/sys/leases/revoke-prefix/auth/token/create", "PUT"),
    ] {
        server.reply(method, path, 204, None);
    }
    let cases: [(&[&str], &str, Option<Value>); 5] = [
        (
            &["token", "revoke", "hvs.x"],
            "/v1/auth/token/revoke",
            Some(json!({"token": "hvs.x"})),
        ),
        (
            &["token", "revoke", "-self"],
            "/v1/auth/token/revoke-self",
            None,
        ),
        (
            &["token", "revoke", "-mode=orphan", "hvs.x"],
            "/v1/auth/token/revoke-orphan",
            Some(json!({"token": "hvs.x"})),
        ),
        (
            &["token", "revoke", "-accessor", "acc"],
            "/v1/auth/token/revoke-accessor",
            Some(json!({"accessor": "acc"})),
        ),
        (
            &["token", "revoke", "-mode=path", "auth/token/create/"],
            "/v1/sys/leases/revoke-prefix/auth/token/create",
            None,
        ),
    ];
    for (args, path, body) in cases {
        let out = server.run_with(args, &env, "").await;
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
        assert_eq!(out.stdout, "Success! Revoked token (if it existed)\n");
        let seen = server.last();
        assert_eq!((seen.path.as_str(), seen.body), (path, body), "{args:?}");
    }
    for (args, message) in [
        (
            &["token", "revoke"][..],
            "Not enough arguments (expected 1 or -self, got 0)",
        ),
        (
            &["token", "revoke", "-self", "x"][..],
            "Too many arguments with -self (expected 0, got 1)",
        ),
        (
            &["token", "revoke", "-self", "-accessor"][..],
            "Cannot use -self with -accessor!",
        ),
        (
            &["token", "revoke", "-accessor", "-mode=orphan", "a"][..],
            "Cannot use -accessor with -mode=orphan!",
        ),
        (
            &["token", "revoke", "-mode=all", "a"][..],
            "Invalid mode: all",
        ),
    ] {
        let out = server.run_with(args, &env, "").await;
        assert_eq!(out.code, 1, "{args:?}");
        assert!(out.stderr.starts_with(message), "{args:?}: {}", out.stderr);
    }

    server.reply(
        "POST",
        "/v1/sys/capabilities-self",
        200,
        Some(json!({
            "secret/foo": ["update", "read"], "capabilities": ["update", "read"],
            "data": {"secret/foo": ["update", "read"], "capabilities": ["update", "read"]}
        })),
    );
    let out = server
        .run_with(&["token", "capabilities", "secret/foo"], &env, "")
        .await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "read, update\n"));
    assert_eq!(
        server.last().body,
        Some(json!({"path": "secret/foo", "token": "hvs.me"}))
    );
    let out = server
        .run_with(
            &["token", "capabilities", "-format=json", "secret/foo"],
            &env,
            "",
        )
        .await;
    assert_eq!(out.stdout, "[\n  \"update\",\n  \"read\"\n]\n");
    server.reply(
        "POST",
        "/v1/sys/capabilities",
        200,
        Some(json!({"data": {"secret/foo": ["deny"]}})),
    );
    let out = server
        .run_with(&["token", "capabilities", "hvs.o", "secret/foo"], &env, "")
        .await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "deny\n"));
    assert_eq!(
        server.last().body,
        Some(json!({"path": "secret/foo", "token": "hvs.o"}))
    );
    let out = server.run_with(&["token", "capabilities"], &env, "").await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("Not enough arguments (expected 1-2, got 0)")
    );

    let out = server.run_with(&["token"], &env, "").await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("Usage: mayfly token <subcommand>"));
    let out = server.run_with(&["token", "frob"], &env, "").await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("Unknown command: token frob\n"));
}

#[tokio::test]
async fn unwrap_token_placement_and_output() {
    let server = Server::start().await;
    server.reply(
        "PUT",
        "/v1/sys/wrapping/unwrap",
        200,
        Some(json!({
            "request_id": "r", "lease_id": "", "lease_duration": 0, "renewable": false,
            "data": {"foo": "bar", "ttl": 3600}, "warnings": null, "auth": null
        })),
    );
    let expected = "Key    Value\n---    -----\nfoo    bar\nttl    1h\n";

    // With another token in use, the wrapping token travels in the body.
    let out = server
        .run_with(&["unwrap", "hvs.wrap"], &[("VAULT_TOKEN", "hvs.me")], "")
        .await;
    assert_eq!((out.code, out.stdout.as_str()), (0, expected));
    let seen = server.last();
    assert_eq!(seen.token.as_deref(), Some("hvs.me"));
    assert_eq!(seen.body, Some(json!({"token": "hvs.wrap"})));

    // Without one, the wrapping token authenticates the call itself.
    let out = server.run(&["unwrap", "hvs.wrap"]).await;
    assert_eq!(out.code, 0);
    let seen = server.last();
    assert_eq!(seen.token.as_deref(), Some("hvs.wrap"));
    assert_eq!(seen.raw_body, "");

    // Without an argument, the current token is the wrapping token.
    let out = server
        .run_with(
            &["unwrap", "-field=foo"],
            &[("VAULT_TOKEN", "hvs.wrap")],
            "",
        )
        .await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "bar"));
    let seen = server.last();
    assert_eq!(seen.token.as_deref(), Some("hvs.wrap"));
    assert_eq!(seen.raw_body, "");

    server.reply("PUT", "/v1/sys/wrapping/unwrap", 204, None);
    let out = server.run(&["unwrap", "hvs.wrap"]).await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (
            0,
            "Successfully unwrapped. There was no data in the wrapped secret.\n"
        )
    );

    server.reply(
        "PUT",
        "/v1/sys/wrapping/unwrap",
        200,
        Some(json!({"data": {"keys": ["b", "a/"]}})),
    );
    let out = server.run(&["unwrap", "hvs.wrap"]).await;
    assert_eq!(out.stdout, "Keys\n----\na/\nb\n");

    server.reply(
        "PUT",
        "/v1/sys/wrapping/unwrap",
        400,
        Some(json!({"errors": ["wrapping token is not valid or does not exist"]})),
    );
    let out = server.run(&["unwrap", "hvs.used"]).await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .starts_with("Error unwrapping: Error making API request.")
    );
    let out = server.run(&["unwrap", "a", "b"]).await;
    assert_eq!(out.code, 1);
}
