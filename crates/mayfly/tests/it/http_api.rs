//! Vault's HTTP conventions as clients rely on them: methods, tokens, envelopes, status codes,
//! path handling, body limits, and a slow client not holding up anyone else.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::{io::AsyncWriteExt, net::TcpStream};

use crate::support::{Server, is_uuid, raw_request, read, read_response};

#[tokio::test]
async fn methods_tokens_envelopes_and_status_codes() {
    let server = Server::inmem().await;
    let init = server.init_unsealed(1, 1).await;
    let token = init.root_token.as_str();

    // A write answers 204 with no body; PUT and POST are the same operation.
    let put = server
        .put("cubbyhole/a", Some(token), &json!({"v": "put"}))
        .await;
    assert_eq!(put.status, 204, "{}", put.body);
    assert!(put.body.is_empty());
    let post = server
        .request(
            "POST",
            "cubbyhole/b",
            Some(token),
            Some(&json!({"v": "post"})),
        )
        .await;
    assert_eq!(post.status, 204, "{}", post.body);
    assert_eq!(
        server
            .request("POST", "cubbyhole/c/d", Some(token), Some(&json!({"v": 1})))
            .await
            .status,
        204
    );

    // The read envelope.
    let read_a = server.get("cubbyhole/a", Some(token)).await;
    assert_eq!(read_a.status, 200);
    assert_eq!(read_a.header("content-type"), Some("application/json"));
    assert_eq!(read_a.header("cache-control"), Some("no-store"));
    let body = read_a.json();
    assert!(
        body["request_id"].as_str().is_some_and(is_uuid),
        "request_id: {body}"
    );
    assert_eq!(body["lease_id"], "");
    assert_eq!(body["renewable"], false);
    assert_eq!(body["lease_duration"], 0);
    assert_eq!(body["data"], json!({"v": "put"}));
    let read_b = server.get("cubbyhole/b", Some(token)).await.json();
    assert_eq!(read_b["data"], json!({"v": "post"}));
    assert_ne!(
        read_b["request_id"], body["request_id"],
        "every request gets its own id"
    );

    // Both token headers work.
    let bearer = server
        .http()
        .get(server.url("cubbyhole/a"))
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await
        .expect("bearer request");
    let bearer = read(bearer).await;
    assert_eq!(bearer.status, 200, "{}", bearer.body);
    assert_eq!(bearer.json()["data"], json!({"v": "put"}));

    // LIST and GET ?list=true are the same.
    let listed = server.request("LIST", "cubbyhole", Some(token), None).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let keys = listed.json()["data"]["keys"].clone();
    assert_eq!(keys, json!(["a", "b", "c/"]));
    let via_get = server.get("cubbyhole/?list=true", Some(token)).await;
    assert_eq!(via_get.status, 200, "{}", via_get.body);
    assert_eq!(via_get.json()["data"]["keys"], keys);
    let bad_list = server.get("cubbyhole/?list=notabool", Some(token)).await;
    assert_eq!(bad_list.status, 400, "{}", bad_list.body);

    // Missing data, tokens and paths.
    let missing = server.get("cubbyhole/missing", Some(token)).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body, r#"{"errors":[]}"#);
    assert_eq!(missing.header("content-type"), Some("application/json"));
    assert_eq!(missing.header("cache-control"), Some("no-store"));
    let no_token = server.get("cubbyhole/a", None).await;
    assert_eq!(no_token.status, 403, "{}", no_token.body);
    assert!(no_token.errors().contains(&"permission denied".to_owned()));
    let bad_token = server
        .get("cubbyhole/a", Some("hvs.not-a-real-token"))
        .await;
    assert_eq!(bad_token.status, 403, "{}", bad_token.body);
    assert!(!bad_token.errors().is_empty());
    let unknown = server.get("nope/x", Some(token)).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let outside_api = read(
        server
            .http()
            .get(format!("{}/v2/sys/health", server.addr()))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(outside_api.status, 404);

    // Method and body errors.
    let foo = server
        .request("FOO", "cubbyhole/a", Some(token), None)
        .await;
    assert_eq!(foo.status, 405, "{}", foo.body);
    let patch = server
        .request(
            "PATCH",
            "cubbyhole/a",
            Some(token),
            Some(&json!({"v": "x"})),
        )
        .await;
    assert_eq!(patch.status, 415, "{}", patch.body);
    let malformed = read(
        server
            .http()
            .put(server.url("cubbyhole/a"))
            .header("X-Vault-Token", token)
            .header("Content-Type", "application/json")
            .body("{\"v\": ")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(malformed.status, 400, "{}", malformed.body);
    assert!(!malformed.errors().is_empty());
    let wrong_type = server
        .put(
            "sys/init",
            None,
            &json!({"secret_shares": "abc", "secret_threshold": 1}),
        )
        .await;
    assert_eq!(wrong_type.status, 400, "{}", wrong_type.body);
    assert!(
        wrong_type
            .errors()
            .iter()
            .any(|e| e.contains("secret_shares")),
        "{}",
        wrong_type.body
    );
    // Nothing above changed the stored value.
    assert_eq!(
        server.get("cubbyhole/a", Some(token)).await.json()["data"],
        json!({"v": "put"})
    );

    // Some sys routes repeat `data` at the top level for older clients.
    let key_status = server.get("sys/key-status", Some(token)).await;
    assert_eq!(key_status.status, 200);
    assert_eq!(key_status.header("cache-control"), Some("no-store"));
    let key_status = key_status.json();
    assert_eq!(key_status["data"]["term"], 1, "{key_status}");
    assert_eq!(key_status["term"], 1, "{key_status}");
}

#[tokio::test]
async fn paths_are_percent_decoded_and_parent_references_refused() {
    let server = Server::inmem().await;
    let init = server.init_unsealed(1, 1).await;
    let token = init.root_token.as_str();

    let write = server
        .put("cubbyhole/a%20b", Some(token), &json!({"spaced": true}))
        .await;
    assert_eq!(write.status, 204, "{}", write.body);
    let read_back = server.get("cubbyhole/a%20b", Some(token)).await;
    assert_eq!(read_back.status, 200, "{}", read_back.body);
    assert_eq!(read_back.json()["data"], json!({"spaced": true}));
    let listed = server
        .request("LIST", "cubbyhole/", Some(token), None)
        .await;
    assert_eq!(listed.json()["data"]["keys"], json!(["a b"]));

    // HTTP clients normalise `..` away, so these go over a raw socket.
    for path in [
        "/v1/cubbyhole/../sys/seal-status",
        "/v1/cubbyhole/%2E%2E/sys/seal-status",
        "/v1/cubbyhole/x/..",
    ] {
        let resp = raw_request(
            server.port(),
            &format!(
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Vault-Token: {token}\r\n\
                 Connection: close\r\n\r\n"
            ),
        )
        .await;
        assert_eq!(resp.status, 400, "{path}: {}", resp.body);
        assert_eq!(
            resp.json(),
            json!({"errors": ["path cannot contain parent references"]}),
            "{path}"
        );
    }
}

#[tokio::test]
async fn oversized_body_gets_413_and_the_server_carries_on() {
    let server = Server::inmem().await;
    let init = server.init_unsealed(1, 1).await;
    let token = init.root_token.as_str();

    let mut body = String::with_capacity(33 * 1024 * 1024 + 16);
    body.push_str("{\"blob\":\"");
    body.extend(std::iter::repeat_n('x', 33 * 1024 * 1024));
    body.push_str("\"}");
    let sent = server
        .http()
        .put(server.url("cubbyhole/big"))
        .header("X-Vault-Token", token)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await;
    match sent {
        Ok(resp) => {
            let resp = read(resp).await;
            assert_eq!(resp.status, 413, "{}", resp.body);
            assert_eq!(resp.header("content-type"), Some("application/json"));
            let errors = resp.errors();
            assert_eq!(errors.len(), 1, "{}", resp.body);
            assert!(errors[0].contains("larger than"), "{}", resp.body);
        }
        Err(err) => panic!("no 413 response to an oversized body: {err:?}"),
    }

    // Declared length over the limit, without sending the body at all.
    let resp = raw_request(
        server.port(),
        &format!(
            "PUT /v1/cubbyhole/big HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Vault-Token: {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            33 * 1024 * 1024
        ),
    )
    .await;
    assert_eq!(resp.status, 413, "{}", resp.body);
    assert!(resp.json()["errors"].is_array());

    let after = server
        .put("cubbyhole/small", Some(token), &json!({"fine": true}))
        .await;
    assert_eq!(after.status, 204, "{}", after.body);
    assert_eq!(server.get("cubbyhole/big", Some(token)).await.status, 404);
    assert_eq!(
        server.get("cubbyhole/small", Some(token)).await.json()["data"],
        json!({"fine": true})
    );
}

#[tokio::test]
async fn a_stalled_client_does_not_block_others() {
    let server = Server::inmem().await;
    let init = server.init_unsealed(1, 1).await;

    let mut stalled = TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .expect("connect");
    stalled
        .write_all(b"GET /v1/sys/seal-sta")
        .await
        .expect("send half a request line");

    let work = async {
        for i in 0..10 {
            let health = server.get("sys/health", None).await;
            assert_eq!(health.status, 200, "request {i}");
            let write = server
                .put(
                    &format!("cubbyhole/while-stalled-{i}"),
                    Some(&init.root_token),
                    &json!({"i": i}),
                )
                .await;
            assert_eq!(write.status, 204, "request {i}");
        }
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .expect("other clients were served while one connection stalled");

    // The stalled connection is still served once it completes its request.
    stalled
        .write_all(b"tus HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .expect("finish the request");
    let resp = read_response(&mut stalled).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let status: Value = resp.json();
    assert_eq!(status["sealed"], false);
}
