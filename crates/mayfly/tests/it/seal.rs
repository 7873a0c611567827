//! The seal lifecycle over HTTP: what a sealed server refuses and still answers, bad input to
//! init and unseal, health codes, rekeying and generating a root token from unseal keys.

use base64::Engine;
use serde_json::{Value, json};

use crate::support::{Server, is_uuid};

#[tokio::test]
async fn sealed_server_refuses_every_route_family_with_503() {
    let server = Server::inmem().await;
    let init = server.init_unsealed(1, 1).await;
    let token = init.root_token.as_str();
    assert_eq!(
        server
            .put("cubbyhole/x", Some(token), &json!({"a": "b"}))
            .await
            .status,
        204
    );

    let seal = server.put("sys/seal", Some(token), &json!({})).await;
    assert_eq!(seal.status, 204, "{}", seal.body);

    let refused: &[(&str, &str)] = &[
        ("GET", "cubbyhole/x"),
        ("PUT", "cubbyhole/x"),
        ("LIST", "cubbyhole/x"),
        ("DELETE", "cubbyhole/x"),
        ("GET", "auth/token/lookup-self"),
        ("GET", "sys/key-status"),
        ("PUT", "sys/rotate"),
        ("PUT", "sys/seal"),
        ("PUT", "sys/step-down"),
        ("GET", "sys/generate-root/attempt"),
        ("PUT", "sys/generate-root/attempt"),
        ("GET", "sys/rekey/init"),
        ("PUT", "sys/rekey/init"),
        ("GET", "sys/leader"),
        ("GET", "nope/x"),
    ];
    for (method, path) in refused {
        let body = (*method == "PUT").then(|| json!({"a": "b"}));
        let resp = server
            .request(method, path, Some(token), body.as_ref())
            .await;
        assert_eq!(resp.status, 503, "{method} {path}: {}", resp.body);
        assert_eq!(
            resp.body, r#"{"errors":["Vault is sealed"]}"#,
            "{method} {path}"
        );
        assert_eq!(
            resp.header("content-type"),
            Some("application/json"),
            "{method} {path}"
        );
    }

    let status = server.get("sys/seal-status", None).await;
    assert_eq!(status.status, 200);
    assert_eq!(status.json()["sealed"], true);
    assert_eq!(status.json()["initialized"], true);

    assert_eq!(server.get("sys/health", None).await.status, 503);
    let health = server.get("sys/health?sealedcode=200", None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["sealed"], true);

    let init_status = server.get("sys/init", None).await;
    assert_eq!(init_status.status, 200);
    assert_eq!(init_status.json(), json!({"initialized": true}));
}

#[tokio::test]
async fn init_and_unseal_reject_bad_input() {
    let (server, other) = tokio::join!(Server::inmem(), Server::inmem());
    let (keys, foreign) = tokio::join!(server.init(3, 2), other.init(3, 2));

    let again = server
        .put(
            "sys/init",
            None,
            &json!({"secret_shares": 3, "secret_threshold": 2}),
        )
        .await;
    assert_eq!(again.status, 400, "second init: {}", again.body);

    let assert_untouched = |status: Value| {
        assert_eq!(status["sealed"], true, "{status}");
        assert_eq!(status["progress"], 0, "{status}");
    };

    let short = server.unseal_key("00112233445566778899").await;
    assert_eq!(short.status, 400, "wrong-length key: {}", short.body);
    assert_untouched(server.seal_status().await);

    let garbage = server.unseal_key("this is not a key!").await;
    assert_eq!(garbage.status, 400, "garbage key: {}", garbage.body);
    assert_untouched(server.seal_status().await);

    let missing = server.put("sys/unseal", None, &json!({})).await;
    assert_eq!(missing.status, 400, "missing key: {}", missing.body);
    assert_untouched(server.seal_status().await);

    // One right key, then a key of another server: the quorum does not combine.
    let first = server.unseal_key(&keys.keys[0]).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let first = first.json();
    assert_eq!(first["sealed"], true);
    assert_eq!(first["progress"], 1);
    assert_eq!(first["t"], 2);
    assert_eq!(first["n"], 3);
    let nonce = first["nonce"].as_str().expect("nonce");
    assert!(is_uuid(nonce), "unseal nonce {nonce:?}");

    let wrong = server.unseal_key(&foreign.keys[1]).await;
    assert_eq!(wrong.status, 400, "foreign key: {}", wrong.body);
    assert_untouched(server.seal_status().await);

    // Progress can also be thrown away on purpose.
    let progress = server.unseal_key(&keys.keys[0]).await.json();
    assert_eq!(progress["progress"], 1);
    let reset = server
        .put("sys/unseal", None, &json!({"reset": true}))
        .await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    assert_eq!(reset.json()["progress"], 0);
    assert_eq!(reset.json()["sealed"], true);
    assert_untouched(server.seal_status().await);

    // Field names are matched case-insensitively, and base64 keys work like hex ones.
    let capital = server
        .put("sys/unseal", None, &json!({"Key": keys.keys[1]}))
        .await;
    assert_eq!(capital.status, 200, "{}", capital.body);
    assert_eq!(capital.json()["progress"], 1);
    let done = server.unseal_key(&keys.keys_base64[2]).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.json()["sealed"], false);
    assert_eq!(done.json()["progress"], 0);

    let lookup = server
        .get("auth/token/lookup-self", Some(&keys.root_token))
        .await;
    assert_eq!(lookup.status, 200, "{}", lookup.body);
}

#[tokio::test]
async fn health_codes_overrides_and_body() {
    let server = Server::inmem().await;

    // Not initialized.
    let resp = server.get("sys/health", None).await;
    assert_eq!(resp.status, 501);
    let body = resp.json();
    assert_eq!(body["initialized"], false);
    assert_eq!(body["sealed"], true);
    assert!(body.get("cluster_name").is_none(), "{body}");
    assert_eq!(
        server.get("sys/health?uninitcode=200", None).await.status,
        200
    );
    assert_eq!(
        server.get("sys/health?uninitcode=299", None).await.status,
        299
    );
    let head = server.request("HEAD", "sys/health", None, None).await;
    assert_eq!(head.status, 501);
    assert!(head.body.is_empty(), "HEAD body: {:?}", head.body);

    // Initialized and sealed.
    let keys = server.init(1, 1).await;
    let resp = server.get("sys/health", None).await;
    assert_eq!(resp.status, 503);
    let body = resp.json();
    assert_eq!(body["initialized"], true);
    assert_eq!(body["sealed"], true);
    assert!(body.get("cluster_name").is_none(), "{body}");
    assert!(body.get("cluster_id").is_none(), "{body}");
    assert_eq!(
        server.get("sys/health?sealedcode=200", None).await.status,
        200
    );
    let head = server.request("HEAD", "sys/health", None, None).await;
    assert_eq!(head.status, 503);
    assert!(head.body.is_empty());

    // Active.
    server.unseal(&keys.keys).await;
    let resp = server.get("sys/health", None).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let body = resp.json();
    assert_eq!(body["initialized"], true);
    assert_eq!(body["sealed"], false);
    assert_eq!(body["standby"], false);
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let server_time = body["server_time_utc"]
        .as_u64()
        .unwrap_or_else(|| panic!("server_time_utc is not an integer: {body}"));
    assert!(
        now.abs_diff(server_time) < 60,
        "server_time_utc {server_time}"
    );
    assert!(
        body["cluster_name"].as_str().is_some_and(|s| !s.is_empty()),
        "{body}"
    );
    assert!(body["cluster_id"].as_str().is_some_and(is_uuid), "{body}");

    assert_eq!(
        server.get("sys/health?activecode=299", None).await.status,
        299
    );
    assert_eq!(
        server.get("sys/health?standbyok=true", None).await.status,
        200
    );
    assert_eq!(
        server
            .get("sys/health?standbyok=true&activecode=298", None)
            .await
            .status,
        298
    );
    let head = server.request("HEAD", "sys/health", None, None).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let head = server
        .request("HEAD", "sys/health?activecode=204", None, None)
        .await;
    assert_eq!(head.status, 204);

    for bad in [
        "activecode=abc",
        "sealedcode=abc",
        "uninitcode=12x",
        "standbycode=-1",
    ] {
        let resp = server.get(&format!("sys/health?{bad}"), None).await;
        assert_eq!(resp.status, 400, "{bad}: {}", resp.body);
        assert!(!resp.errors().is_empty(), "{bad}");
    }
}

#[tokio::test]
async fn rekey_replaces_the_unseal_keys() {
    let server = Server::inmem().await;
    let old = server.init_unsealed(3, 2).await;
    let token = old.root_token.as_str();
    let kept = json!({"kept": "across rekey"});
    assert_eq!(
        server
            .put("cubbyhole/kept", Some(token), &kept)
            .await
            .status,
        204
    );

    let start = server
        .put(
            "sys/rekey/init",
            Some(token),
            &json!({"secret_shares": 5, "secret_threshold": 3}),
        )
        .await;
    assert_eq!(start.status, 200, "{}", start.body);
    let start = start.json();
    assert_eq!(start["started"], true);
    assert_eq!(start["n"], 5);
    assert_eq!(start["t"], 3);
    assert_eq!(start["required"], 2);
    let nonce = start["nonce"].as_str().expect("nonce").to_owned();
    assert!(!nonce.is_empty());

    let wrong_nonce = server
        .put(
            "sys/rekey/update",
            Some(token),
            &json!({"key": old.keys[0], "nonce": "not-the-nonce"}),
        )
        .await;
    assert_eq!(wrong_nonce.status, 400, "{}", wrong_nonce.body);

    let step = server
        .put(
            "sys/rekey/update",
            Some(token),
            &json!({"key": old.keys[0], "nonce": nonce}),
        )
        .await;
    assert_eq!(step.status, 200, "{}", step.body);
    assert_eq!(step.json()["progress"], 1);
    assert_ne!(step.json()["complete"], true);

    let done = server
        .put(
            "sys/rekey/update",
            Some(token),
            &json!({"key": old.keys[1], "nonce": nonce}),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let done = done.json();
    assert_eq!(done["complete"], true, "{done}");
    let new_keys: Vec<String> = done["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(new_keys.len(), 5);
    assert_eq!(done["keys_base64"].as_array().map(Vec::len), Some(5));
    for key in &new_keys {
        assert!(!old.keys.contains(key), "a new key repeats an old one");
    }

    assert_eq!(
        server.put("sys/seal", Some(token), &json!({})).await.status,
        204
    );
    let status = server.seal_status().await;
    assert_eq!(status["t"], 3);
    assert_eq!(status["n"], 5);

    // The old shares are no longer a quorum for anything.
    for key in &old.keys[..2] {
        assert_eq!(server.unseal_key(key).await.status, 200);
    }
    let refused = server.unseal_key(&old.keys[2]).await;
    assert_eq!(refused.status, 400, "old keys: {}", refused.body);
    let status = server.seal_status().await;
    assert_eq!(status["sealed"], true);
    assert_eq!(status["progress"], 0);

    server.unseal(&new_keys[2..5]).await;
    let read = server.get("cubbyhole/kept", Some(token)).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.json()["data"], kept);
}

#[tokio::test]
async fn generate_root_yields_a_working_root_token() {
    let server = Server::inmem().await;
    let init = server.init_unsealed(3, 2).await;

    let attempt = server
        .put("sys/generate-root/attempt", None, &json!({}))
        .await;
    assert_eq!(attempt.status, 200, "{}", attempt.body);
    let attempt = attempt.json();
    let otp = attempt["otp"].as_str().expect("otp").to_owned();
    assert_eq!(otp.len(), 28, "otp {otp:?}");
    assert_eq!(attempt["otp_length"], 28);
    assert_eq!(attempt["started"], true);
    assert_eq!(attempt["required"], 2);
    let nonce = attempt["nonce"].as_str().expect("nonce").to_owned();
    assert!(!nonce.is_empty());

    let status = server.get("sys/generate-root/attempt", None).await.json();
    assert_eq!(status["started"], true);
    assert_eq!(status["nonce"], nonce.as_str());
    assert_eq!(status["otp"], "", "the OTP is revealed only once");

    let wrong_nonce = server
        .put(
            "sys/generate-root/update",
            None,
            &json!({"key": init.keys[0], "nonce": "nope"}),
        )
        .await;
    assert_eq!(wrong_nonce.status, 400, "{}", wrong_nonce.body);

    let step = server
        .put(
            "sys/generate-root/update",
            None,
            &json!({"key": init.keys[0], "nonce": nonce}),
        )
        .await
        .json();
    assert_eq!(step["progress"], 1);
    assert_eq!(step["complete"], false);
    let done = server
        .put(
            "sys/generate-root/update",
            None,
            &json!({"key": init.keys_base64[2], "nonce": nonce}),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let done = done.json();
    assert_eq!(done["complete"], true, "{done}");
    let encoded = done["encoded_token"].as_str().expect("encoded_token");
    assert!(!encoded.is_empty());

    let mixed = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(encoded)
        .expect("encoded token is unpadded standard base64");
    assert_eq!(mixed.len(), otp.len());
    let token: String = mixed
        .iter()
        .zip(otp.bytes())
        .map(|(a, b)| char::from(a ^ b))
        .collect();
    assert!(token.starts_with("hvs."), "decoded token {token:?}");
    assert_eq!(token.len(), 28);
    assert_ne!(token, init.root_token);

    let lookup = server.get("auth/token/lookup-self", Some(&token)).await;
    assert_eq!(lookup.status, 200, "{}", lookup.body);
    assert_eq!(lookup.json()["data"]["policies"], json!(["root"]));
    let write = server
        .put(
            "cubbyhole/from-new-root",
            Some(&token),
            &json!({"ok": true}),
        )
        .await;
    assert_eq!(
        write.status, 204,
        "the generated token can act: {}",
        write.body
    );
}
