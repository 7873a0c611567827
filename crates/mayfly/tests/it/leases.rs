//! Leases end to end, on the real binary with file storage and the `lease-test` engine: every
//! lease expires on time and exactly once across `kill -9`, revoke-prefix survives a crash,
//! quotas hold under concurrency, and the CLI's `lease` commands work.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::support::{Resp, Server};

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// Mounts `lease-test` at `path`, or explains why the binary cannot.
async fn mount_lease_test(server: &Server, token: &str, path: &str) {
    let resp = server
        .put(
            &format!("sys/mounts/{path}"),
            Some(token),
            &json!({"type": "lease-test"}),
        )
        .await;
    assert_eq!(
        resp.status, 204,
        "mounting lease-test failed ({}); the binary must be built with the `test-engines` \
         feature, which `cargo test` turns on",
        resp.body
    );
}

/// A secret just issued: its lease, its engine username, and when (client time) it was
/// asked for and answered.
#[derive(Debug, Clone)]
struct Issued {
    lease_id: String,
    username: String,
    ttl_ms: u64,
    sent_ms: u64,
    received_ms: u64,
}

/// Issues `count` secrets from `path` with `ttl(i)` seconds, `concurrency` at a time.
async fn issue_many(
    server: &Server,
    token: &str,
    path: &str,
    count: usize,
    concurrency: usize,
    ttl: impl Fn(usize) -> u64,
) -> Vec<Issued> {
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        let permit = permits.clone().acquire_owned().await.expect("semaphore");
        let http = server.http().clone();
        let url = server.url(path);
        let token = token.to_owned();
        let ttl_secs = ttl(i);
        tasks.push(tokio::spawn(async move {
            let sent_ms = unix_ms();
            let resp = http
                .put(&url)
                .header("X-Vault-Token", &token)
                .json(&json!({"ttl": ttl_secs}))
                .send()
                .await
                .expect("issue request");
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.expect("JSON answer");
            drop(permit);
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["lease_duration"], ttl_secs, "{body}");
            assert_eq!(body["renewable"], true, "{body}");
            Issued {
                lease_id: body["lease_id"].as_str().expect("lease_id").to_owned(),
                username: body["data"]["username"]
                    .as_str()
                    .expect("username")
                    .to_owned(),
                ttl_ms: ttl_secs * 1000,
                sent_ms,
                received_ms: unix_ms(),
            }
        }));
    }
    let mut issued = Vec::with_capacity(count);
    for task in tasks {
        issued.push(task.await.expect("issue task"));
    }
    issued
}

/// The engine's ledger: username → revocation times.
async fn ledger(server: &Server, token: &str, mount: &str) -> HashMap<String, Vec<u64>> {
    let resp = server.get(&format!("{mount}/ledger"), Some(token)).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    resp.json()["data"]["revocations"]
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(user, times)| {
                    let times = times
                        .as_array()
                        .map(|t| t.iter().filter_map(Value::as_u64).collect())
                        .unwrap_or_default();
                    (user.clone(), times)
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn lease_count(server: &Server, token: &str) -> i64 {
    let resp = server.get("sys/leases/count", Some(token)).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    resp.json()["data"]["lease_count"]
        .as_i64()
        .expect("lease_count")
}

/// Polls `check` until it holds or `timeout` passes.
async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn after_kill_9_ten_thousand_leases_each_expire_on_time_exactly_once() {
    const LEASES: usize = 10_000;
    let mut server = Server::file().await;
    let init = server.init_unsealed(1, 1).await;
    let token = init.root_token.clone();
    mount_lease_test(&server, &token, "lt").await;

    // TTLs spread over 30 s so expiry is spread too; long enough to outlive the crash.
    let started = Instant::now();
    let issued = issue_many(&server, &token, "lt/creds/app", LEASES, 32, |i| {
        60 + (i % 30) as u64
    })
    .await;
    let creation = started.elapsed();
    assert_eq!(lease_count(&server, &token).await, LEASES as i64 + 1);

    server.kill9();
    server.restart().await;
    server.unseal(&init.keys).await;
    // Served at once after the restart, with every lease still there.
    assert_eq!(lease_count(&server, &token).await, LEASES as i64 + 1);
    let sample = &issued[LEASES / 2];
    let lookup = server
        .put(
            "sys/leases/lookup",
            Some(&token),
            &json!({"lease_id": sample.lease_id}),
        )
        .await;
    assert_eq!(lookup.status, 200, "{}", lookup.body);

    let last_expiry = issued
        .iter()
        .map(|lease| lease.received_ms + lease.ttl_ms)
        .max()
        .expect("leases");
    let wait =
        Duration::from_millis(last_expiry.saturating_sub(unix_ms())) + Duration::from_secs(60);
    eventually(wait, "every lease to be revoked", || async {
        lease_count(&server, &token).await == 1
    })
    .await;

    let revoked = ledger(&server, &token, "lt").await;
    let mut late = Vec::new();
    for lease in &issued {
        let times = revoked
            .get(&lease.username)
            .unwrap_or_else(|| panic!("{} was never revoked", lease.lease_id));
        assert_eq!(
            times.len(),
            1,
            "{} revoked {} times",
            lease.lease_id,
            times.len()
        );
        let at = times[0];
        // Never before it expired (the server set its expiry after the request was sent).
        assert!(
            at + 5 >= lease.sent_ms + lease.ttl_ms,
            "{} revoked {} ms early",
            lease.lease_id,
            lease.sent_ms + lease.ttl_ms - at
        );
        // The expiry lies between request and answer plus the TTL: measure from the
        // earlier end, so the lag is never understated.
        late.push(at.saturating_sub(lease.sent_ms + lease.ttl_ms));
    }
    assert_eq!(
        revoked.len(),
        LEASES,
        "only the issued secrets were revoked"
    );
    late.sort_unstable();
    let p99 = late[late.len() * 99 / 100];
    eprintln!(
        "10,000 leases: created in {:.1} s; revocation lag p50 {} ms, p99 {p99} ms, max {} ms",
        creation.as_secs_f64(),
        late[late.len() / 2],
        late[late.len() - 1]
    );
    assert!(p99 <= 5_000, "revocations ran late: p99 {p99} ms");
}

#[tokio::test]
async fn a_revoke_prefix_cut_short_by_kill_9_finishes_after_the_restart() {
    const LEASES: usize = 600;
    let mut server = Server::file().await;
    let init = server.init_unsealed(1, 1).await;
    let token = init.root_token.clone();
    mount_lease_test(&server, &token, "lt").await;
    let issued = issue_many(&server, &token, "lt/creds/doomed", LEASES, 32, |_| 3600).await;
    let keep = issue_many(&server, &token, "lt/creds/kept", 10, 8, |_| 3600).await;
    // A slow target, so the revocation is still going when the server dies.
    let resp = server
        .put("lt/config", Some(&token), &json!({"revoke_delay_ms": 200}))
        .await;
    assert_eq!(resp.status, 204, "{}", resp.body);

    let http = server.http().clone();
    let url = server.url("sys/leases/revoke-prefix/lt/creds/doomed");
    let revoking = {
        let token = token.clone();
        tokio::spawn(async move {
            http.put(url)
                .header("X-Vault-Token", token)
                .json(&json!({}))
                .send()
                .await
        })
    };
    eventually(Duration::from_secs(60), "revocation to start", || async {
        !ledger(&server, &token, "lt").await.is_empty()
    })
    .await;
    server.kill9();
    let _ = revoking.await;

    server.restart().await;
    server.unseal(&init.keys).await;
    let done_before = ledger(&server, &token, "lt").await.len();
    assert!(
        done_before < LEASES,
        "the crash came too late to test anything"
    );
    let resp = server
        .put("lt/config", Some(&token), &json!({"revoke_delay_ms": 0}))
        .await;
    assert_eq!(resp.status, 204, "{}", resp.body);
    eventually(
        Duration::from_secs(120),
        "the rest to be revoked",
        || async { lease_count(&server, &token).await == 1 + keep.len() as i64 },
    )
    .await;
    let revoked = ledger(&server, &token, "lt").await;
    for lease in &issued {
        assert!(
            revoked.contains_key(&lease.username),
            "{} survived the interrupted revoke-prefix",
            lease.lease_id
        );
    }
    for lease in &keep {
        assert!(!revoked.contains_key(&lease.username));
    }
    // Only a revocation in flight at the moment of the crash can have run twice.
    let twice = revoked.values().filter(|times| times.len() > 1).count();
    assert!(twice <= 64, "{twice} secrets were revoked more than once");
}

#[tokio::test]
async fn a_lease_count_quota_is_never_exceeded_under_concurrent_requests() {
    let server = Server::file().await;
    let init = server.init_unsealed(1, 1).await;
    let token = init.root_token.clone();
    mount_lease_test(&server, &token, "lt").await;
    let resp = server
        .put(
            "sys/quotas/lease-count/lt-cap",
            Some(&token),
            &json!({"path": "lt/", "max_leases": 25}),
        )
        .await;
    assert_eq!(resp.status, 204, "{}", resp.body);

    let mut tasks = Vec::new();
    for i in 0..120 {
        let http = server.http().clone();
        let url = server.url(&format!("lt/creds/c{i}"));
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let resp = http
                .put(&url)
                .header("X-Vault-Token", &token)
                .json(&json!({"ttl": "1h"}))
                .send()
                .await
                .expect("request");
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap_or_default())
        }));
    }
    let (mut created, mut refused) = (0, 0);
    for task in tasks {
        match task.await.expect("task") {
            (200, _) => created += 1,
            (429, body) => {
                assert!(body.contains("lease count quota exceeded"), "{body}");
                refused += 1;
            }
            (status, body) => panic!("unexpected {status}: {body}"),
        }
    }
    assert_eq!((created, refused), (25, 95));
    assert_eq!(lease_count(&server, &token).await, 26);
    let quota = server
        .get("sys/quotas/lease-count/lt-cap", Some(&token))
        .await
        .json();
    assert_eq!(quota["data"]["lease_count"], 25, "{quota}");
    // While the quota is full every request that might create a lease under it is refused,
    // reads of the engine included; deleting the quota lifts that.
    let resp = server
        .request(
            "DELETE",
            "sys/quotas/lease-count/lt-cap",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(resp.status, 204, "{}", resp.body);
    // Refused requests created nothing: the engine revoked nothing either.
    assert!(ledger(&server, &token, "lt").await.is_empty());
}

fn assert_status(resp: &Resp, status: u16) {
    assert_eq!(resp.status, status, "{}", resp.body);
}

#[tokio::test]
async fn lease_endpoints_and_cli_commands() {
    let server = Server::inmem().await;
    let init = server.init_unsealed(1, 1).await;
    let token = init.root_token.clone();
    mount_lease_test(&server, &token, "lt").await;
    let issued = server
        .put(
            "lt/creds/web",
            Some(&token),
            &json!({"ttl": "10m", "max_ttl": "1h"}),
        )
        .await;
    assert_status(&issued, 200);
    let body = issued.json();
    let lease_id = body["lease_id"].as_str().expect("lease_id").to_owned();
    assert!(lease_id.starts_with("lt/creds/web/"), "{lease_id}");
    assert_eq!(body["lease_duration"], 600);

    let out = server
        .cli(Some(&token), &["lease", "lookup", &lease_id])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&format!("id              {lease_id}")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("renewable       true"),
        "{}",
        out.stdout
    );

    let out = server
        .cli(
            Some(&token),
            &[
                "lease",
                "renew",
                "-increment=30m",
                "-format=json",
                &lease_id,
            ],
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let renewed: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(renewed["lease_id"], lease_id.as_str());
    assert_eq!(renewed["lease_duration"], 1800);

    let out = server
        .cli(Some(&token), &["list", "sys/leases/lookup/lt/creds/web/"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains(lease_id.trim_start_matches("lt/creds/web/")),
        "{}",
        out.stdout
    );

    let out = server
        .cli(Some(&token), &["lease", "revoke", "-sync", &lease_id])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout.trim(),
        format!("Success! Revoked lease: {lease_id}")
    );
    let gone = server
        .put(
            "sys/leases/lookup",
            Some(&token),
            &json!({"lease_id": lease_id}),
        )
        .await;
    assert_status(&gone, 400);
    assert_eq!(gone.errors(), ["invalid lease"]);
    let empty = server
        .request("LIST", "sys/leases/lookup/lt/creds/", Some(&token), None)
        .await;
    assert_status(&empty, 404);

    // Queued revocation answers 202; the worker does the rest.
    let queued = server
        .put("lt/creds/web", Some(&token), &json!({"ttl": "10m"}))
        .await
        .json();
    let queued_id = queued["lease_id"].as_str().expect("lease_id");
    let resp = server
        .put(
            &format!("sys/leases/revoke/{queued_id}"),
            Some(&token),
            &json!({"sync": false}),
        )
        .await;
    assert_status(&resp, 202);
    eventually(Duration::from_secs(10), "the queued revocation", || async {
        server
            .put(
                "sys/leases/lookup",
                Some(&token),
                &json!({"lease_id": queued_id}),
            )
            .await
            .status
            == 400
    })
    .await;

    // A lease that cannot be revoked keeps its mount: disabling it fails and says why.
    let resp = server
        .put("lt/config", Some(&token), &json!({"fail_revoke": true}))
        .await;
    assert_status(&resp, 204);
    let stuck = server
        .put("lt/creds/stuck", Some(&token), &json!({"ttl": "10m"}))
        .await
        .json();
    let stuck_id = stuck["lease_id"].as_str().expect("lease_id");
    let refused = server
        .request("DELETE", "sys/mounts/lt", Some(&token), None)
        .await;
    assert_status(&refused, 400);
    assert!(refused.errors()[0].contains(stuck_id), "{}", refused.body);
    let out = server
        .cli(
            Some(&token),
            &["lease", "revoke", "-force", "-prefix", "lt/"],
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let resp = server
        .request("DELETE", "sys/mounts/lt", Some(&token), None)
        .await;
    assert_status(&resp, 204);
}
