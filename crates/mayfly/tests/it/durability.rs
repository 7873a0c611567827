//! What survives the process: acknowledged writes after `kill -9`, encryption at rest, key
//! rotation across restarts, and in-flight requests during a graceful shutdown.

use std::{path::Path, time::Duration};

use base64::Engine;
use serde_json::{Value, json};
use tokio::{io::AsyncWriteExt, net::TcpStream};

use crate::support::{Server, read_exact_text, read_response};

fn secret_for(round: usize, index: usize) -> Value {
    json!({"value": format!("round-{round}-secret-{index}"), "index": index, "round": round})
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9_across_restarts() {
    let mut server = Server::file().await;
    let init = server.init_unsealed(3, 2).await;
    let token = init.root_token.clone();
    // Different quorums each round: any two of the three keys must open the same barrier.
    let quorums = [[0, 1], [1, 2], [2, 0], [0, 2], [1, 0]];
    const PER_ROUND: usize = 4;

    for (round, quorum) in quorums.iter().enumerate() {
        for index in 0..PER_ROUND {
            let path = format!("cubbyhole/k{}", round * PER_ROUND + index);
            let resp = server
                .put(&path, Some(&token), &secret_for(round, index))
                .await;
            assert_eq!(resp.status, 204, "write {path}: {}", resp.body);
        }

        server.kill9();
        server.restart().await;

        let status = server.seal_status().await;
        assert_eq!(status["initialized"], true, "{status}");
        assert_eq!(status["sealed"], true, "a restarted server starts sealed");
        let sealed_read = server.get("cubbyhole/k0", Some(&token)).await;
        assert_eq!(sealed_read.status, 503);

        let keys: Vec<String> = quorum.iter().map(|&i| init.keys[i].clone()).collect();
        server.unseal(&keys).await;

        for earlier in 0..=round {
            for index in 0..PER_ROUND {
                let path = format!("cubbyhole/k{}", earlier * PER_ROUND + index);
                let resp = server.get(&path, Some(&token)).await;
                assert_eq!(
                    resp.status, 200,
                    "round {round}: {path} lost: {}",
                    resp.body
                );
                assert_eq!(resp.json()["data"], secret_for(earlier, index), "{path}");
            }
        }
    }
}

/// Every regular file below `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read data dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn nothing_secret_is_stored_in_plaintext() {
    let mut server = Server::file().await;
    let init = server.init_unsealed(3, 2).await;
    let canary = "canary-7f3e9c1d-PLAINTEXT-should-never-hit-disk-XYZZY";
    for i in 0..3 {
        let resp = server
            .put(
                &format!("cubbyhole/scan{i}"),
                Some(&init.root_token),
                &json!({"password": canary, "note": "stored encrypted"}),
            )
            .await;
        assert_eq!(resp.status, 204, "{}", resp.body);
    }
    server.stop().await;

    let mut needles: Vec<(String, Vec<u8>)> = vec![
        ("secret value".into(), canary.as_bytes().to_vec()),
        ("root token".into(), init.root_token.as_bytes().to_vec()),
    ];
    for (i, (hex_key, b64_key)) in init.keys.iter().zip(&init.keys_base64).enumerate() {
        let raw = hex::decode(hex_key).expect("hex key");
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(b64_key)
                .expect("base64 key"),
            raw,
            "hex and base64 forms are the same key"
        );
        needles.push((format!("unseal key {i} (hex)"), hex_key.as_bytes().to_vec()));
        needles.push((
            format!("unseal key {i} (base64)"),
            b64_key.as_bytes().to_vec(),
        ));
        needles.push((format!("unseal key {i} (raw bytes)"), raw));
    }

    let files = files_under(&server.data_dir());
    assert!(!files.is_empty(), "the file backend wrote nothing");
    let mut scanned = 0;
    for file in files {
        let bytes = std::fs::read(&file).expect("read stored file");
        scanned += bytes.len();
        for (what, needle) in &needles {
            assert!(
                !contains(&bytes, needle),
                "{what} found in plaintext in {}",
                file.display()
            );
        }
    }
    assert!(scanned > 0, "stored files are empty");
}

#[tokio::test]
async fn rotated_key_is_used_and_survives_restart() {
    let mut server = Server::file().await;
    let init = server.init_unsealed(1, 1).await;
    let token = init.root_token.as_str();

    let status = server.get("sys/key-status", Some(token)).await;
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(status.json()["data"]["term"], 1);

    let before = json!({"written": "before rotation"});
    assert_eq!(
        server
            .put("cubbyhole/before", Some(token), &before)
            .await
            .status,
        204
    );

    let rotate = server.put("sys/rotate", Some(token), &json!({})).await;
    assert_eq!(rotate.status, 204, "{}", rotate.body);
    let status = server.get("sys/key-status", Some(token)).await.json();
    assert_eq!(status["data"]["term"], 2, "{status}");
    assert_eq!(status["term"], 2, "{status}");

    let after = json!({"written": "after rotation"});
    assert_eq!(
        server
            .put("cubbyhole/after", Some(token), &after)
            .await
            .status,
        204
    );
    assert_eq!(
        server.get("cubbyhole/before", Some(token)).await.json()["data"],
        before,
        "data under the old term stays readable"
    );

    server.kill9();
    server.restart().await;
    server.unseal(&init.keys).await;

    let status = server.get("sys/key-status", Some(token)).await.json();
    assert_eq!(status["data"]["term"], 2, "the new term was persisted");
    for (path, expected) in [("cubbyhole/before", &before), ("cubbyhole/after", &after)] {
        let resp = server.get(path, Some(token)).await;
        assert_eq!(resp.status, 200, "{path}: {}", resp.body);
        assert_eq!(&resp.json()["data"], expected, "{path}");
    }
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_0() {
    let mut server = Server::file().await;
    let init = server.init_unsealed(1, 1).await;
    let token = init.root_token.clone();

    let body = json!({"message": "finished after SIGTERM", "padding": "x".repeat(64)}).to_string();
    let (first, second) = body.as_bytes().split_at(body.len() / 2);
    let mut stream = TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .expect("connect");
    let head = format!(
        "PUT /v1/cubbyhole/graceful HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Vault-Token: {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("send head");
    // `100 Continue` is sent once the handler starts reading the body: from here on the
    // request is in flight as far as the server is concerned.
    read_exact_text(&mut stream, "HTTP/1.1 100 Continue\r\n\r\n").await;
    stream.write_all(first).await.expect("send first half");

    server.sigterm();
    // Once the listener is closed the server has begun its shutdown.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .is_ok()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "listener still open 10 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    stream
        .write_all(second)
        .await
        .expect("send second half after SIGTERM");
    let resp = read_response(&mut stream).await;
    assert_eq!(resp.status, 204, "{}\n{}", resp.head, resp.body);

    let status = server.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "exit status after SIGTERM: {status}");

    server.restart().await;
    server.unseal(&init.keys).await;
    let stored = server.get("cubbyhole/graceful", Some(&token)).await;
    assert_eq!(stored.status, 200, "{}", stored.body);
    assert_eq!(
        stored.json()["data"]["message"],
        "finished after SIGTERM",
        "the request finished during shutdown was stored"
    );
}
