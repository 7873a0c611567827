//! The token store as clients use it: creating tokens with limits, looking them up by ID or
//! accessor, renewing within caps, revoking with and without their children, and the rules
//! that stop a token from handing out more than it has.

use serde_json::{Value, json};

use crate::support::{Resp, Server};

/// What an ordinary, non-root token gets: read on `secret/`, and the right to create child
/// tokens (with or without a parent) but nothing else in the token store.
const ISSUER_POLICY: &str = r#"
path "secret/*" {
  capabilities = ["read", "list"]
}
path "auth/token/create" {
  capabilities = ["update"]
}
path "auth/token/create-orphan" {
  capabilities = ["update"]
}
"#;

fn client_token(resp: &Resp) -> String {
    resp.expect(200).json()["auth"]["client_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no client token in {}", resp.body))
        .to_owned()
}

fn accessor(resp: &Resp) -> String {
    resp.json()["auth"]["accessor"]
        .as_str()
        .unwrap_or_else(|| panic!("no accessor in {}", resp.body))
        .to_owned()
}

/// A child of `token` with the `issuer` policy.
async fn issue(server: &Server, token: &str) -> Resp {
    server
        .put(
            "auth/token/create",
            Some(token),
            &json!({"policies": ["issuer"]}),
        )
        .await
}

/// A server with the `issuer` policy, and its root token.
async fn server_with_issuer_policy() -> (Server, String) {
    let server = Server::inmem().await;
    let root = server.root_token().await;
    server
        .put(
            "sys/policies/acl/issuer",
            Some(&root),
            &json!({"policy": ISSUER_POLICY}),
        )
        .await
        .expect(204);
    (server, root)
}

async fn lookup_self(server: &Server, token: &str) -> Value {
    let resp = server.get("auth/token/lookup-self", Some(token)).await;
    resp.expect(200).json()["data"].clone()
}

#[tokio::test]
async fn create_with_limits_then_look_up_by_id_and_accessor() {
    let (server, root) = server_with_issuer_policy().await;
    let created = server
        .put(
            "auth/token/create",
            Some(&root),
            &json!({
                "policies": ["issuer"],
                "ttl": "1h",
                "num_uses": 3,
                "meta": {"team": "payments"},
                "display_name": "ci job",
            }),
        )
        .await;
    let token = client_token(&created);
    let body = created.json();
    let auth = &body["auth"];
    assert!(token.starts_with("hvs."), "{token}");
    assert_eq!(auth["policies"], json!(["default", "issuer"]));
    assert_eq!(auth["lease_duration"], 3600);
    assert_eq!(auth["renewable"], true);
    assert_eq!(auth["orphan"], false);
    assert_eq!(auth["num_uses"], 3);
    assert_eq!(auth["metadata"], json!({"team": "payments"}));
    let token_accessor = accessor(&created);

    // Root looks it up by ID: that does not spend one of the token's uses.
    let looked = server
        .put("auth/token/lookup", Some(&root), &json!({"token": token}))
        .await;
    let data = looked.expect(200).json()["data"].clone();
    assert_eq!(data["id"], token);
    assert_eq!(data["accessor"], token_accessor);
    assert_eq!(data["display_name"], "token-ci-job");
    assert_eq!(data["meta"], json!({"team": "payments"}));
    assert_eq!(data["num_uses"], 3);
    assert_eq!(data["path"], "auth/token/create");
    assert_eq!(data["policies"], json!(["default", "issuer"]));
    assert_eq!(data["creation_ttl"], 3600);
    let ttl = data["ttl"].as_u64().expect("ttl");
    assert!((3590..=3600).contains(&ttl), "ttl {ttl}");
    assert!(data["expire_time"].is_string(), "{data}");

    // By accessor, the answer is the same except that it never reveals the token.
    let by_accessor = server
        .put(
            "auth/token/lookup-accessor",
            Some(&root),
            &json!({"accessor": token_accessor}),
        )
        .await;
    let by_accessor = by_accessor.expect(200).json()["data"].clone();
    assert_eq!(by_accessor["id"], "");
    assert_eq!(by_accessor["accessor"], token_accessor);
    assert_eq!(by_accessor["display_name"], "token-ci-job");
    assert!(!by_accessor.to_string().contains(&token));

    // Each request the token makes spends a use; lookup-self reports what is left.
    assert_eq!(lookup_self(&server, &token).await["num_uses"], 2);
    assert_eq!(lookup_self(&server, &token).await["num_uses"], 1);
    assert_eq!(lookup_self(&server, &token).await["num_uses"], 0);
    let spent = server.get("auth/token/lookup-self", Some(&token)).await;
    assert!(
        spent
            .expect(403)
            .errors()
            .contains(&"permission denied".to_owned())
    );

    // Looking up a token that does not exist is refused, not an empty answer.
    server
        .put(
            "auth/token/lookup-accessor",
            Some(&root),
            &json!({"accessor": token_accessor}),
        )
        .await
        .expect(403);
}

#[tokio::test]
async fn renewal_is_capped_by_explicit_max_ttl_and_periodic_tokens_renew_to_their_period() {
    let (server, root) = server_with_issuer_policy().await;
    let capped = server
        .put(
            "auth/token/create",
            Some(&root),
            &json!({"policies": ["issuer"], "ttl": "1h", "explicit_max_ttl": "2h"}),
        )
        .await;
    let capped = client_token(&capped);
    let renewed = server
        .put(
            "auth/token/renew-self",
            Some(&capped),
            &json!({"increment": "5h"}),
        )
        .await;
    let renewed = renewed.expect(200).json();
    let lease = renewed["auth"]["lease_duration"].as_u64().expect("lease");
    assert!((7100..=7200).contains(&lease), "renewed to {lease}s");
    assert_eq!(renewed["auth"]["client_token"], capped);
    let warnings = renewed["warnings"].as_array().expect("a warning").clone();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("capped"))),
        "{warnings:?}"
    );
    assert_eq!(
        lookup_self(&server, &capped).await["explicit_max_ttl"],
        7200
    );

    // A periodic token renews to its period whatever increment is asked for.
    let periodic = server
        .put(
            "auth/token/create",
            Some(&root),
            &json!({"policies": ["issuer"], "period": "1h"}),
        )
        .await;
    let periodic = client_token(&periodic);
    let data = lookup_self(&server, &periodic).await;
    assert_eq!(data["period"], 3600);
    assert_eq!(data["renewable"], true);
    let renewed = server
        .put(
            "auth/token/renew-self",
            Some(&periodic),
            &json!({"increment": "3h"}),
        )
        .await;
    assert_eq!(renewed.expect(200).json()["auth"]["lease_duration"], 3600);

    // Only root (or sudo) may make periodic tokens.
    let refused = server
        .put(
            "auth/token/create",
            Some(&periodic),
            &json!({"period": "1h"}),
        )
        .await;
    assert_eq!(
        refused.expect(400).errors(),
        ["root or sudo privileges required to create periodic token"]
    );
}

#[tokio::test]
async fn revoke_by_accessor_and_revoke_orphan_keep_children_alive() {
    let (server, root) = server_with_issuer_policy().await;

    // Revoking by accessor: an operator who never saw the token can still kill it.
    let victim = issue(&server, &root).await;
    let victim_accessor = accessor(&victim);
    let victim = client_token(&victim);
    server
        .put(
            "auth/token/revoke-accessor",
            Some(&root),
            &json!({"accessor": victim_accessor}),
        )
        .await
        .expect(204);
    server
        .get("auth/token/lookup-self", Some(&victim))
        .await
        .expect(403);

    // revoke-orphan kills the parent only; its child lives on as an orphan.
    let parent = client_token(&issue(&server, &root).await);
    let child = client_token(&issue(&server, &parent).await);
    assert_eq!(lookup_self(&server, &child).await["orphan"], false);
    server
        .put(
            "auth/token/revoke-orphan",
            Some(&root),
            &json!({"token": parent}),
        )
        .await
        .expect(204);
    server
        .get("auth/token/lookup-self", Some(&parent))
        .await
        .expect(403);
    assert_eq!(lookup_self(&server, &child).await["orphan"], true);

    // revoke-orphan needs root or sudo.
    let refused = server
        .put(
            "auth/token/revoke-orphan",
            Some(&child),
            &json!({"token": child}),
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
}

#[tokio::test]
async fn accessors_listing_is_for_root_only() {
    let (server, root) = server_with_issuer_policy().await;
    let mut accessors = Vec::new();
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let created = server
            .put(
                "auth/token/create",
                Some(&root),
                &json!({"policies": ["issuer"]}),
            )
            .await;
        accessors.push(accessor(&created));
        tokens.push(client_token(&created));
    }
    let listed = server
        .request("LIST", "auth/token/accessors", Some(&root), None)
        .await;
    let keys = listed.expect(200).json()["data"]["keys"].clone();
    let keys: Vec<&str> = keys
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for accessor in &accessors {
        assert!(keys.contains(&accessor.as_str()), "{accessor} in {keys:?}");
    }
    // The root token's own accessor is listed too; no token ID ever is.
    assert_eq!(keys.len(), accessors.len() + 1, "{keys:?}");
    for token in &tokens {
        assert!(!listed.body.contains(token.as_str()));
    }

    server
        .request("LIST", "auth/token/accessors", Some(&tokens[0]), None)
        .await
        .expect(403);
}

#[tokio::test]
async fn a_token_cannot_hand_out_more_than_it_has() {
    let (server, root) = server_with_issuer_policy().await;
    server
        .put(
            "sys/policies/acl/admin",
            Some(&root),
            &json!({"policy": "path \"*\" {\n  capabilities = [\"sudo\", \"read\"]\n}\n"}),
        )
        .await
        .expect(204);
    let issuer = server
        .put(
            "auth/token/create",
            Some(&root),
            &json!({"policies": ["issuer"]}),
        )
        .await;
    let issuer = client_token(&issuer);

    let escalate = server
        .put(
            "auth/token/create",
            Some(&issuer),
            &json!({"policies": ["admin"]}),
        )
        .await;
    assert_eq!(
        escalate.expect(400).errors(),
        ["child policies must be subset of parent's policies"]
    );
    let root_child = server
        .put(
            "auth/token/create",
            Some(&issuer),
            &json!({"policies": ["root"]}),
        )
        .await;
    root_child.expect(400);

    // A subset, or nothing (inheriting the parent's), is fine.
    let narrower = server
        .put(
            "auth/token/create",
            Some(&issuer),
            &json!({"policies": ["default"]}),
        )
        .await;
    assert_eq!(
        narrower.expect(200).json()["auth"]["policies"],
        json!(["default"])
    );

    // no_parent needs root or sudo; the create-orphan endpoint is the way for others.
    let orphan = server
        .put(
            "auth/token/create",
            Some(&issuer),
            &json!({"no_parent": true}),
        )
        .await;
    assert_eq!(
        orphan.expect(400).errors(),
        ["root or sudo privileges required to create orphan token"]
    );
    let via_endpoint = server
        .put("auth/token/create-orphan", Some(&issuer), &json!({}))
        .await;
    assert_eq!(via_endpoint.expect(200).json()["auth"]["orphan"], true);
    let by_root = server
        .put(
            "auth/token/create",
            Some(&root),
            &json!({"no_parent": true, "policies": ["issuer"]}),
        )
        .await;
    assert_eq!(by_root.expect(200).json()["auth"]["orphan"], true);
}

#[tokio::test]
async fn capabilities_self_reports_what_the_policies_allow() {
    let (server, root) = server_with_issuer_policy().await;
    let issuer = server
        .put(
            "auth/token/create",
            Some(&root),
            &json!({"policies": ["issuer"]}),
        )
        .await;
    let issuer = client_token(&issuer);

    let caps = server
        .put(
            "sys/capabilities-self",
            Some(&issuer),
            &json!({"paths": ["secret/data/db", "sys/mounts", "auth/token/create"]}),
        )
        .await;
    let caps = caps.expect(200).json();
    assert_eq!(
        caps["data"]["secret/data/db"],
        json!(["list", "read"]),
        "{caps}"
    );
    assert_eq!(caps["data"]["sys/mounts"], json!(["deny"]));
    assert_eq!(caps["data"]["auth/token/create"], json!(["update"]));
    // Old clients read the answer at the top level of the body.
    assert_eq!(caps["sys/mounts"], json!(["deny"]));

    // With one path, `capabilities` repeats that path's answer, as older clients expect.
    let single = server
        .put(
            "sys/capabilities-self",
            Some(&issuer),
            &json!({"path": "secret/data/db"}),
        )
        .await;
    let single = single.expect(200).json();
    assert_eq!(single["data"]["capabilities"], json!(["list", "read"]));

    let as_root = server
        .put(
            "sys/capabilities-self",
            Some(&root),
            &json!({"paths": ["sys/mounts"]}),
        )
        .await;
    assert_eq!(
        as_root.expect(200).json()["data"]["sys/mounts"],
        json!(["root"])
    );
}
