//! Audit devices against the real server: what the log records, that no secret is in it,
//! failing closed when nothing can record, the tamper-evident chain checked by
//! `mayfly audit verify`, log rotation on SIGHUP, and the `audit` CLI.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
};

use serde_json::{Value, json};

use crate::support::{CliOutput, Server};

/// Enables a file device at `name/` writing to `path`, with extra options.
async fn enable_file(server: &Server, root: &str, name: &str, path: &Path, extra: Value) -> u16 {
    let mut options = json!({ "file_path": path.to_str().expect("UTF-8 path") });
    if let (Value::Object(options), Value::Object(extra)) = (&mut options, extra) {
        options.extend(extra);
    }
    let resp = server
        .put(
            &format!("sys/audit/{name}"),
            Some(root),
            &json!({ "type": "file", "options": options }),
        )
        .await;
    resp.status
}

/// The request and response entries of a log, parsed.
fn entries(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("every line is JSON"))
        .filter(|entry| matches!(entry["type"].as_str(), Some("request" | "response")))
        .collect()
}

fn ok(out: &CliOutput) {
    assert_eq!(
        out.code, 0,
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        out.code, out.stdout, out.stderr
    );
}

async fn mount_kv(server: &Server, root: &str) {
    let resp = server
        .put(
            "sys/mounts/secret",
            Some(root),
            &json!({"type": "kv", "options": {"version": "2"}}),
        )
        .await;
    assert_eq!(resp.status, 204, "{}", resp.body);
}

/// Enables AppRole with one role; returns its role ID and a new secret ID.
async fn approle(server: &Server, root: &str) -> (String, String) {
    let resp = server
        .put("sys/auth/approle", Some(root), &json!({"type": "approle"}))
        .await;
    assert_eq!(resp.status, 204, "{}", resp.body);
    let resp = server
        .put(
            "auth/approle/role/app",
            Some(root),
            &json!({"token_policies": ["default"], "token_ttl": "1h", "token_max_ttl": "4h"}),
        )
        .await;
    assert!(resp.status < 300, "{}", resp.body);
    let role_id = server
        .get("auth/approle/role/app/role-id", Some(root))
        .await
        .json()["data"]["role_id"]
        .as_str()
        .expect("role_id")
        .to_owned();
    let secret_id = server
        .put("auth/approle/role/app/secret-id", Some(root), &json!({}))
        .await
        .json()["data"]["secret_id"]
        .as_str()
        .expect("secret_id")
        .to_owned();
    (role_id, secret_id)
}

async fn accessor_count(server: &Server, root: &str) -> usize {
    let resp = server
        .request("LIST", "auth/token/accessors", Some(root), None)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    resp.json()["data"]["keys"].as_array().expect("keys").len()
}

#[tokio::test]
async fn issuance_renewal_and_revocation_are_recorded_with_secrets_hashed() {
    let server = Server::file().await;
    let root = server.init_unsealed(1, 1).await.root_token;
    let log = server.dir().join("audit/audit.log");
    mount_kv(&server, &root).await;
    let (role_id, secret_id) = approle(&server, &root).await;
    assert_eq!(
        enable_file(&server, &root, "file", &log, json!({})).await,
        204
    );

    // A KV secret written and read back.
    let password = "correct-horse-battery-staple-7731";
    let resp = server
        .put(
            "secret/data/db",
            Some(&root),
            &json!({"data": {"username": "app", "password": password}}),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let kv_write_id = resp.json()["request_id"].as_str().unwrap().to_owned();
    let resp = server.get("secret/data/db", Some(&root)).await;
    assert_eq!(resp.json()["data"]["data"]["password"], password);

    // A token: created, renewed, revoked.
    let resp = server
        .put(
            "auth/token/create",
            Some(&root),
            &json!({"policies": ["default"], "ttl": "1h"}),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let created = resp.json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let created_accessor = resp.json()["auth"]["accessor"].as_str().unwrap().to_owned();
    let resp = server
        .put("auth/token/renew-self", Some(&created), &json!({}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let resp = server
        .put(
            "auth/token/revoke-accessor",
            Some(&root),
            &json!({"accessor": created_accessor}),
        )
        .await;
    assert_eq!(resp.status, 204, "{}", resp.body);

    // An AppRole login, its renewal, and its revocation.
    let resp = server
        .put(
            "auth/approle/login",
            None,
            &json!({"role_id": role_id, "secret_id": secret_id}),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let login_token = resp.json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = server
        .put("auth/token/renew-self", Some(&login_token), &json!({}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let resp = server
        .put("auth/token/revoke-self", Some(&login_token), &json!({}))
        .await;
    assert_eq!(resp.status, 204, "{}", resp.body);

    // A wrapped secret and its unwrapping.
    let resp = server
        .http()
        .post(server.url("sys/wrapping/wrap"))
        .header("X-Vault-Token", &root)
        .header("X-Vault-Wrap-TTL", "5m")
        .json(&json!({"api_key": "wrapped-api-key-5521"}))
        .send()
        .await
        .unwrap();
    let wrapped: Value = resp.json().await.unwrap();
    let wrapping_token = wrapped["wrap_info"]["token"].as_str().unwrap().to_owned();
    let resp = server
        .put("sys/wrapping/unwrap", Some(&wrapping_token), &json!({}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.json()["data"]["api_key"], "wrapped-api-key-5521");

    // Every request has exactly one request and one response entry, in that order.
    let logged = entries(&log);
    let mut pairs: HashMap<String, Vec<&str>> = HashMap::new();
    for entry in &logged {
        let id = entry["request"]["id"]
            .as_str()
            .expect("request id")
            .to_owned();
        pairs
            .entry(id)
            .or_default()
            .push(entry["type"].as_str().unwrap());
    }
    for (id, kinds) in &pairs {
        assert_eq!(kinds, &["request", "response"], "request {id}");
    }
    assert!(
        pairs.contains_key(&kv_write_id),
        "the KV write is logged by its request ID"
    );
    let responses = |path: &str| -> Vec<&Value> {
        logged
            .iter()
            .filter(|e| e["type"] == "response" && e["request"]["path"] == path)
            .collect()
    };
    for path in [
        "secret/data/db",
        "auth/token/create",
        "auth/token/renew-self",
        "auth/token/revoke-accessor",
        "auth/approle/login",
        "auth/token/revoke-self",
        "sys/wrapping/wrap",
        "sys/wrapping/unwrap",
    ] {
        assert!(!responses(path).is_empty(), "no response entry for {path}");
    }
    let issued = &responses("auth/token/create")[0]["response"]["auth"];
    assert!(
        issued["client_token"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:")
    );
    assert!(
        issued["accessor"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:")
    );
    let login = &responses("auth/approle/login")[0];
    assert_eq!(login["request"]["mount_type"], "approle");
    assert!(
        login["response"]["auth"]["client_token"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:")
    );
    let wrap = &responses("sys/wrapping/wrap")[0]["response"]["wrap_info"];
    assert_eq!(wrap["ttl"], 300);
    assert!(wrap["token"].as_str().unwrap().starts_with("hmac-sha256:"));

    // No secret, password or token in clear, anywhere in the file.
    let text = fs::read_to_string(&log).unwrap();
    for secret in [
        root.as_str(),
        password,
        created.as_str(),
        created_accessor.as_str(),
        login_token.as_str(),
        secret_id.as_str(),
        role_id.as_str(),
        wrapping_token.as_str(),
        "wrapped-api-key-5521",
    ] {
        assert!(
            !text.contains(secret),
            "{secret:?} appears in the audit log"
        );
    }

    // An operator holding the leaked password finds every use of it.
    let resp = server
        .put(
            "sys/audit-hash/file",
            Some(&root),
            &json!({"input": password}),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let hash = resp.json()["data"]["hash"].as_str().unwrap().to_owned();
    assert_eq!(resp.json()["hash"], json!(hash), "data is injected");
    let uses = text.lines().filter(|line| line.contains(&hash)).count();
    assert!(
        uses >= 3,
        "write request, write response and read response: {uses}"
    );

    let out = server
        .cli(None, &["audit", "verify", log.to_str().unwrap()])
        .await;
    ok(&out);
    assert!(out.stdout.contains("intact"), "{}", out.stdout);
}

#[tokio::test]
async fn a_full_disk_with_no_other_device_refuses_requests_and_issues_nothing() {
    let server = Server::file().await;
    let root = server.init_unsealed(1, 1).await.root_token;
    mount_kv(&server, &root).await;
    let (role_id, secret_id) = approle(&server, &root).await;
    let before = accessor_count(&server, &root).await;

    // The log path leads to /dev/full: every write fails with ENOSPC, even for root.
    let dir = server.dir().join("audit");
    fs::create_dir_all(&dir).unwrap();
    let log = dir.join("audit.log");
    std::os::unix::fs::symlink("/dev/full", &log).unwrap();
    let refused = enable_file(&server, &root, "file", &log, json!({})).await;
    assert_eq!(refused, 400, "the device cannot write its first line");
    assert_eq!(
        enable_file(&server, &root, "file", &log, json!({"skip_test": "true"})).await,
        204
    );

    let resp = server
        .put("auth/token/create", Some(&root), &json!({"ttl": "1h"}))
        .await;
    assert_eq!(resp.status, 500, "{}", resp.body);
    assert!(resp.json().get("auth").is_none());
    let resp = server
        .put(
            "auth/approle/login",
            None,
            &json!({"role_id": role_id, "secret_id": secret_id}),
        )
        .await;
    assert_eq!(resp.status, 500, "{}", resp.body);
    let resp = server
        .put(
            "secret/data/refused",
            Some(&root),
            &json!({"data": {"password": "never-stored"}}),
        )
        .await;
    assert_eq!(resp.status, 500, "{}", resp.body);
    // Health is never audited, so load balancers still see the server.
    assert_eq!(server.get("sys/health", None).await.status, 200);

    // The disk is "freed": a regular file replaces the device, and SIGHUP reopens it.
    fs::remove_file(&log).unwrap();
    fs::write(&log, b"").unwrap();
    server.sighup();
    let mut count = None;
    for _ in 0..100 {
        let resp = server
            .request("LIST", "auth/token/accessors", Some(&root), None)
            .await;
        if resp.status == 200 {
            count = Some(resp.json()["data"]["keys"].as_array().unwrap().len());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(count, Some(before), "no token was issued while unaudited");
    let resp = server.get("secret/data/refused", Some(&root)).await;
    assert_eq!(
        resp.status, 404,
        "the refused write did not happen: {}",
        resp.body
    );
    // The secret ID was not spent by the refused login.
    let resp = server
        .put(
            "auth/approle/login",
            None,
            &json!({"role_id": role_id, "secret_id": secret_id}),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
}

#[tokio::test]
async fn a_removed_log_directory_blocks_requests_until_it_can_be_recreated() {
    let server = Server::file().await;
    let root = server.init_unsealed(1, 1).await.root_token;
    let dir = server.dir().join("logs");
    let log = dir.join("audit.log");
    assert_eq!(
        enable_file(&server, &root, "file", &log, json!({})).await,
        204
    );
    let before = accessor_count(&server, &root).await;

    // The directory is removed and a plain file takes its name, so the log cannot be
    // created again when SIGHUP reopens it.
    fs::remove_dir_all(&dir).unwrap();
    fs::write(&dir, b"not a directory").unwrap();
    server.sighup();
    // Until the signal is handled, the deleted file still takes entries; read-only requests
    // tell when it has been.
    let mut refused = false;
    for _ in 0..250 {
        if server.get("sys/mounts", Some(&root)).await.status == 500 {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        refused,
        "requests must fail once the log cannot be reopened"
    );
    let resp = server
        .put("auth/token/create", Some(&root), &json!({"ttl": "1h"}))
        .await;
    assert_eq!(resp.status, 500, "{}", resp.body);

    // Once the path is usable again, the next request recreates the log and goes through.
    fs::remove_file(&dir).unwrap();
    assert_eq!(
        accessor_count(&server, &root).await,
        before,
        "nothing was issued"
    );
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.starts_with("{\"type\":\"mayfly-audit-header\""),
        "{text}"
    );
    let out = server
        .cli(None, &["audit", "verify", log.to_str().unwrap()])
        .await;
    ok(&out);
}

#[tokio::test]
async fn with_one_device_down_the_other_records_and_failures_are_counted() {
    let server = Server::file().await;
    let root = server.init_unsealed(1, 1).await.root_token;
    let good = server.dir().join("good.log");
    assert_eq!(
        enable_file(&server, &root, "good", &good, json!({})).await,
        204
    );
    assert_eq!(
        enable_file(
            &server,
            &root,
            "full",
            Path::new("/dev/full"),
            json!({"skip_test": "true"})
        )
        .await,
        204
    );
    let resp = server
        .put("auth/token/create", Some(&root), &json!({"ttl": "1h"}))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(
        entries(&good)
            .iter()
            .any(|e| e["request"]["path"] == "auth/token/create" && e["type"] == "response")
    );
    let listed = server.get("sys/audit", Some(&root)).await.json();
    assert!(
        listed["data"]["full/"]["failures"].as_u64().unwrap() >= 2,
        "{listed}"
    );
    assert_eq!(listed["data"]["good/"]["failures"], 0);
    assert!(server.stderr().contains("Audit device failed to record"));
}

/// Writes a log with a few entries and a checkpoint, stops the server (which signs the tail)
/// and returns the log's lines and the device's public key.
async fn finished_log(server: &mut Server) -> (PathBuf, Vec<String>, String) {
    let root = server.init_unsealed(1, 1).await.root_token;
    let log = server.dir().join("audit.log");
    assert_eq!(
        enable_file(server, &root, "file", &log, json!({})).await,
        204
    );
    for i in 0..5 {
        let resp = server
            .put(
                &format!("cubbyhole/item{i}"),
                Some(&root),
                &json!({"v": "x"}),
            )
            .await;
        assert_eq!(resp.status, 204, "{}", resp.body);
    }
    let out = server
        .cli(Some(&root), &["audit", "list", "-format=json"])
        .await;
    ok(&out);
    let listed: Value = serde_json::from_str(&out.stdout).unwrap();
    let key = listed["file/"]["public_key"].as_str().unwrap().to_owned();
    server.stop().await;
    let lines = fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    (log, lines, key)
}

fn write_lines(path: &Path, lines: &[String]) {
    fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[tokio::test]
async fn verify_passes_an_untouched_log_and_finds_edits_deletions_and_swaps() {
    let mut server = Server::file().await;
    let (log, lines, key) = finished_log(&mut server).await;
    let verify = |args: Vec<String>| {
        let home = server.home().to_owned();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            crate::support::cli(&home, &[], &args).await
        }
    };
    let arg = |path: &Path| path.to_str().unwrap().to_owned();

    let out = verify(vec![
        "audit".into(),
        "verify".into(),
        format!("-public-key={key}"),
        arg(&log),
    ])
    .await;
    ok(&out);
    assert!(out.stdout.contains("unsigned_tail    0"), "{}", out.stdout);

    let wrong_key = "00".repeat(32);
    let out = verify(vec![
        "audit".into(),
        "verify".into(),
        format!("-public-key={wrong_key}"),
        arg(&log),
    ])
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);

    // An entry in the middle: its number is what the verifier must report.
    let middle = lines
        .iter()
        .position(|l| l.contains("\"path\":\"cubbyhole/item2\""))
        .expect("an entry for item2");
    let line_no = middle + 1;

    let edited_path = server.dir().join("edited.log");
    let mut edited = lines.clone();
    edited[middle] = edited[middle].replace("cubbyhole/item2", "cubbyhole/item9");
    write_lines(&edited_path, &edited);
    let out = verify(vec!["audit".into(), "verify".into(), arg(&edited_path)]).await;
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(&format!("at line {line_no}:")) && out.stderr.contains("modified"),
        "{}",
        out.stderr
    );

    let deleted_path = server.dir().join("deleted.log");
    let mut deleted = lines.clone();
    deleted.remove(middle);
    write_lines(&deleted_path, &deleted);
    let out = verify(vec!["audit".into(), "verify".into(), arg(&deleted_path)]).await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains(&format!("at line {line_no}:")) && out.stderr.contains("missing"),
        "{}",
        out.stderr
    );

    let swapped_path = server.dir().join("swapped.log");
    let mut swapped = lines.clone();
    swapped.swap(middle, middle + 1);
    write_lines(&swapped_path, &swapped);
    let out = verify(vec!["audit".into(), "verify".into(), arg(&swapped_path)]).await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains(&format!("at line {line_no}:")) && out.stderr.contains("out of order"),
        "{}",
        out.stderr
    );

    let out = verify(vec![
        "audit".into(),
        "verify".into(),
        "-format=json".into(),
        arg(&swapped_path),
    ])
    .await;
    assert_eq!(out.code, 2);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["intact"], false);
    assert_eq!(report["breach"]["kind"], "reordered");
    assert_eq!(report["breach"]["line"], line_no);

    let out = verify(vec![
        "audit".into(),
        "verify".into(),
        arg(&server.dir().join("none.log")),
    ])
    .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
}

#[tokio::test]
async fn logrotate_rename_and_sighup_keep_logging_on_one_chain() {
    let server = Server::file().await;
    let root = server.init_unsealed(1, 1).await.root_token;
    let log = server.dir().join("audit.log");
    let rotated = server.dir().join("audit.log.1");
    assert_eq!(
        enable_file(&server, &root, "file", &log, json!({})).await,
        204
    );
    server
        .put("cubbyhole/before", Some(&root), &json!({"v": "1"}))
        .await;
    fs::rename(&log, &rotated).unwrap();
    server.sighup();
    let mut reopened = false;
    for _ in 0..100 {
        if log.exists() {
            reopened = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(reopened, "SIGHUP reopens the log at its path");
    let resp = server
        .put("cubbyhole/after", Some(&root), &json!({"v": "2"}))
        .await;
    assert_eq!(resp.status, 204);
    assert!(
        entries(&rotated)
            .iter()
            .any(|e| e["request"]["path"] == "cubbyhole/before")
    );
    assert!(
        entries(&log)
            .iter()
            .any(|e| e["request"]["path"] == "cubbyhole/after")
    );
    // The old file ends with a checkpoint; both verify, together and apart.
    let old = fs::read_to_string(&rotated).unwrap();
    assert!(
        old.lines()
            .last()
            .unwrap()
            .contains("mayfly-audit-checkpoint")
    );
    let out = server
        .cli(
            None,
            &[
                "audit",
                "verify",
                rotated.to_str().unwrap(),
                log.to_str().unwrap(),
            ],
        )
        .await;
    ok(&out);
    let out = server
        .cli(None, &["audit", "verify", log.to_str().unwrap()])
        .await;
    ok(&out);
    assert!(
        out.stdout.contains("continues an earlier one"),
        "{}",
        out.stdout
    );
    // Given in the wrong order, the link between them breaks.
    let out = server
        .cli(
            None,
            &[
                "audit",
                "verify",
                log.to_str().unwrap(),
                rotated.to_str().unwrap(),
            ],
        )
        .await;
    assert_eq!(out.code, 2);
}

#[tokio::test]
async fn devices_and_their_chain_survive_a_restart() {
    let mut server = Server::file().await;
    let keys = server.init_unsealed(1, 1).await;
    let root = keys.root_token.clone();
    let log = server.dir().join("audit.log");
    assert_eq!(
        enable_file(&server, &root, "file", &log, json!({})).await,
        204
    );
    server
        .put("cubbyhole/one", Some(&root), &json!({"v": "1"}))
        .await;
    server.stop().await;
    server.restart().await;
    server.unseal(&keys.keys[..1]).await;
    let resp = server.get("sys/audit", Some(&root)).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        resp.json()["file/"]["options"]["file_path"],
        log.to_str().unwrap()
    );
    server
        .put("cubbyhole/two", Some(&root), &json!({"v": "2"}))
        .await;
    let paths: Vec<String> = entries(&log)
        .iter()
        .map(|e| e["request"]["path"].as_str().unwrap().to_owned())
        .collect();
    assert!(paths.contains(&"cubbyhole/one".to_owned()));
    assert!(paths.contains(&"cubbyhole/two".to_owned()));
    let out = server
        .cli(None, &["audit", "verify", log.to_str().unwrap()])
        .await;
    ok(&out);
    assert!(out.stdout.contains("headers          2"), "{}", out.stdout);
}

#[tokio::test]
async fn audit_commands_enable_list_and_disable_devices() {
    let server = Server::file().await;
    let root = server.init_unsealed(1, 1).await.root_token;
    let out = server.cli(Some(&root), &["audit", "list"]).await;
    assert_eq!(out.code, 2);
    assert_eq!(out.stdout.trim(), "No audit devices are enabled.");

    let log = server.dir().join("cli.log");
    let file_path = format!("file_path={}", log.display());
    let out = server
        .cli(
            Some(&root),
            &[
                "audit",
                "enable",
                "-description=main log",
                "file",
                &file_path,
                "mode=0640",
            ],
        )
        .await;
    ok(&out);
    assert_eq!(
        out.stdout.trim(),
        "Success! Enabled the file audit device at: file/"
    );
    let out = server
        .cli(
            Some(&root),
            &[
                "audit",
                "enable",
                "-path=stdout-copy",
                "file",
                "file_path=stdout",
            ],
        )
        .await;
    ok(&out);

    let out = server.cli(Some(&root), &["audit", "list"]).await;
    ok(&out);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("Path") && lines[0].contains("Description"),
        "{}",
        out.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("file/") && l.contains("main log"))
    );
    assert!(lines.iter().any(|l| l.starts_with("stdout-copy/")));

    let out = server
        .cli(Some(&root), &["audit", "list", "-detailed"])
        .await;
    ok(&out);
    assert!(out.stdout.contains("Replication"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("{file_path} mode=0640")),
        "{}",
        out.stdout
    );
    let listed = server.get("sys/audit", Some(&root)).await.json();
    let key = listed["file/"]["public_key"].as_str().unwrap();
    assert!(out.stdout.contains(key), "{}", out.stdout);

    let out = server
        .cli(Some(&root), &["audit", "enable", "file", &file_path])
        .await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("path already in use"), "{}", out.stderr);
    let out = server.cli(Some(&root), &["audit", "enable"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("audit type missing"), "{}", out.stderr);

    let out = server
        .cli(Some(&root), &["audit", "disable", "stdout-copy"])
        .await;
    ok(&out);
    assert_eq!(
        out.stdout.trim(),
        "Success! Disabled audit device (if it was enabled) at: stdout-copy/"
    );
    let out = server
        .cli(Some(&root), &["audit", "disable", "file/"])
        .await;
    ok(&out);
    let out = server
        .cli(Some(&root), &["audit", "list", "-format=json"])
        .await;
    ok(&out);
    assert_eq!(out.stdout.trim(), "{}");

    // The stdout device wrote to the server's standard output, chained like any other.
    let mode = fs::metadata(&log).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o640
    );
    let out = server
        .cli(None, &["audit", "verify", log.to_str().unwrap()])
        .await;
    ok(&out);
    assert!(out.stdout.contains("unsigned_tail    0"), "{}", out.stdout);
}

#[tokio::test]
async fn a_socket_device_streams_the_chained_log() {
    use tokio::io::AsyncBufReadExt;

    let server = Server::file().await;
    let root = server.init_unsealed(1, 1).await.root_token;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let accept = tokio::spawn(async move { listener.accept().await.unwrap().0 });
    let resp = server
        .put(
            "sys/audit/net",
            Some(&root),
            &json!({"type": "socket", "options": {"address": address, "socket_type": "tcp"}}),
        )
        .await;
    assert_eq!(resp.status, 204, "{}", resp.body);
    let stream = accept.await.unwrap();
    server
        .put("cubbyhole/over-tcp", Some(&root), &json!({"v": "1"}))
        .await;
    let mut reader = tokio::io::BufReader::new(stream);
    let mut received = Vec::new();
    while received.len() < 3 {
        let mut line = String::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            reader.read_line(&mut line),
        )
        .await
        .expect("a line within 10 s")
        .unwrap();
        assert!(read > 0, "connection closed");
        received.push(line);
    }
    assert!(received[0].contains("mayfly-audit-header"));
    assert!(received[1].contains("cubbyhole/over-tcp") && received[1].contains("\"request\""));
    let mut verifier = mayfly_audit::Verifier::new(None).unwrap();
    verifier
        .verify_file("socket", received.concat().as_bytes())
        .unwrap();

    let refused = server
        .put(
            "sys/audit/nowhere",
            Some(&root),
            &json!({"type": "socket", "options": {"address": "127.0.0.1:1"}}),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
}
