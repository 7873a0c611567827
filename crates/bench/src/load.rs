//! The workloads: small secrets written (each acknowledged write is durable on both servers)
//! or read, AppRole logins and token creates, each run by a fixed number of concurrent clients
//! for a fixed time, with the latency of every operation and the server's CPU and disk use over
//! the run.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode, header};
use serde::Serialize;
use serde_json::Value;

use crate::machine::ProcCounters;

/// Vault's token header; both servers take it.
const TOKEN_HEADER: &str = "X-Vault-Token";

/// The body of every `auth/token/create` of the token-create workload.
const TOKEN_CREATE_BODY: &str = r#"{"policies":["app"],"ttl":"1h"}"#;

/// One server to load: the shared client, where it listens, the root token, and its process id
/// (for CPU and disk counters).
pub struct Target {
    pub client: reqwest::Client,
    pub base: String,
    pub token: String,
    pub pid: u32,
}

impl Target {
    /// Sends one request to `/v1/<path>` and returns the status and the body, which is always
    /// read in full so the connection can be reused.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> Result<(StatusCode, Vec<u8>), String> {
        let mut request = self
            .client
            .request(method.clone(), format!("{}/v1/{path}", self.base));
        if let Some(token) = token {
            request = request.header(TOKEN_HEADER, token);
        }
        if let Some(body) = body {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("{method} {path}: reading the body: {e}"))?;
        Ok((status, body.to_vec()))
    }

    /// Like [`Target::send`], but anything other than 200 (or, with `any_success`, any other
    /// 2xx: a server may answer a write with 204 or with 200 and a body) is an error.
    async fn expect(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
        any_success: bool,
    ) -> Result<Vec<u8>, String> {
        let (status, body) = self.send(method.clone(), path, token, body).await?;
        if status == StatusCode::OK || (any_success && status.is_success()) {
            Ok(body)
        } else {
            Err(format!(
                "{method} {path}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            ))
        }
    }

    /// One operation of `workload`; `key` is the secret it writes or reads, if any.
    async fn operation(&self, workload: Workload, plan: &Plan, key: &str) -> Result<(), String> {
        let token = Some(plan.token.as_str());
        match workload {
            Workload::Write => {
                let path = format!("cubbyhole/{key}");
                let body = Some(secret_body(key));
                self.expect(Method::PUT, &path, token, body, true).await?;
            }
            Workload::Read => {
                let path = format!("cubbyhole/{key}");
                self.expect(Method::GET, &path, token, None, false).await?;
            }
            Workload::AppRoleLogin => {
                let body = Some(plan.login_body.clone());
                self.expect(Method::PUT, "auth/approle/login", None, body, false)
                    .await?;
            }
            Workload::TokenCreate => {
                let body = Some(TOKEN_CREATE_BODY.to_owned());
                self.expect(Method::POST, "auth/token/create", token, body, false)
                    .await?;
            }
            Workload::KvWrite => {
                let path = format!("kv/data/{key}");
                let body = Some(kv_body(key));
                self.expect(Method::PUT, &path, token, body, true).await?;
            }
            Workload::KvRead | Workload::AclRead { .. } => {
                let path = format!("kv/data/{key}");
                self.expect(Method::GET, &path, token, None, false).await?;
            }
        }
        Ok(())
    }
}

/// A secret of about 100 bytes of JSON, derived from its key so a read can be checked.
pub fn secret_body(key: &str) -> String {
    let hash = fnv1a(key.as_bytes());
    format!(
        r#"{{"username":"svc-{:08x}","password":"{:016x}{:016x}","note":"synthetic benchmark secret"}}"#,
        hash as u32,
        splitmix64(hash),
        splitmix64(hash ^ 0x5bd1_e995)
    )
}

/// The body of a KV v2 write of `key`: the same secret, under `data`.
pub fn kv_body(key: &str) -> String {
    format!(r#"{{"data":{}}}"#, secret_body(key))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A small, fast mixer: good enough to spread reads over the key set and make passwords look
/// random. Nothing here needs cryptographic randomness.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// `PUT cubbyhole/<new key>` with the root token.
    Write,
    /// `GET cubbyhole/<written key>` with the root token.
    Read,
    /// `PUT auth/approle/login` with one RoleID and SecretID.
    AppRoleLogin,
    /// `POST auth/token/create` (policy `app`, TTL 1h) with the root token.
    TokenCreate,
    /// `PUT kv/data/<new key>` with a non-root token.
    KvWrite,
    /// `GET kv/data/<written key>` with a non-root token.
    KvRead,
    /// `GET kv/data/<written key>` with a token holding `policies` policies and no `default`.
    AclRead { policies: usize },
}

impl Workload {
    pub fn label(self) -> String {
        match self {
            Self::Write => "durable write".into(),
            Self::Read => "read".into(),
            Self::AppRoleLogin => "AppRole login".into(),
            Self::TokenCreate => "token create".into(),
            Self::KvWrite => "KV v2 write".into(),
            Self::KvRead => "KV v2 read".into(),
            Self::AclRead { policies: 1 } => "KV v2 read, token with 1 policy".into(),
            Self::AclRead { policies } => format!(
                "KV v2 read, token with {} policies",
                crate::report::thousands(policies as f64)
            ),
        }
    }

    /// Each operation writes a new key, which the level returns.
    fn writes_keys(self) -> bool {
        matches!(self, Self::Write | Self::KvWrite)
    }

    /// Each operation reads a key picked from those written earlier.
    fn reads_keys(self) -> bool {
        matches!(self, Self::Read | Self::KvRead | Self::AclRead { .. })
    }
}

/// What the clients of a level use besides the workload itself.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The token every authenticated request carries.
    pub token: String,
    /// The keys readers pick from.
    pub keys: Arc<Vec<String>>,
    /// The JSON body of an AppRole login.
    pub login_body: String,
}

/// Latency percentiles of one level, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    /// Summarises latencies given in microseconds.
    pub fn from_micros(mut samples: Vec<u32>) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let ms = |us: u32| f64::from(us) / 1000.0;
        let sum: u64 = samples.iter().map(|&us| u64::from(us)).sum();
        Latency {
            mean: sum as f64 / samples.len() as f64 / 1000.0,
            p50: ms(percentile(&samples, 0.50)),
            p90: ms(percentile(&samples, 0.90)),
            p99: ms(percentile(&samples, 0.99)),
            max: ms(samples[samples.len() - 1]),
        }
    }
}

/// Nearest-rank percentile of sorted, non-empty samples.
fn percentile(sorted: &[u32], fraction: f64) -> u32 {
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The outcome of one workload at one concurrency level.
#[derive(Debug, Clone, Serialize)]
pub struct LevelResult {
    pub workload: Workload,
    pub concurrency: usize,
    /// Successful operations.
    pub ops: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub seconds: f64,
    pub ops_per_sec: f64,
    pub latency_ms: Latency,
    pub server_cpu_secs: f64,
    pub server_cpu_us_per_op: f64,
    pub server_disk_write_bytes_per_op: f64,
    /// CPU the load generator itself used: on two shared cores this is capacity the server
    /// did not get.
    pub client_cpu_secs: f64,
}

#[derive(Default)]
struct WorkerOutcome {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
    written: Vec<String>,
}

impl WorkerOutcome {
    fn record(&mut self, started: Instant, result: Result<(), String>) -> bool {
        match result {
            Ok(()) => {
                let micros = started.elapsed().as_micros();
                self.latencies_us
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
                true
            }
            Err(message) => {
                self.errors += 1;
                self.first_error.get_or_insert(message);
                false
            }
        }
    }
}

/// Opens `count` keep-alive connections before the clock starts, so connection setup is not
/// part of the measurement.
async fn warm_connections(target: &Arc<Target>, count: usize) {
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let target = Arc::clone(target);
        tasks.push(tokio::spawn(async move {
            let url = format!("{}/v1/sys/health", target.base);
            if let Ok(response) = target.client.get(url).send().await {
                let _ = response.bytes().await;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// Runs `workload` with `concurrency` clients for `duration`. Writers put new keys
/// `bench/c<concurrency>w<writer>/<i>` and return them in the second value; readers pick keys
/// at random from `plan.keys`, which must not be empty.
pub async fn run_level(
    target: &Arc<Target>,
    workload: Workload,
    concurrency: usize,
    duration: Duration,
    plan: &Arc<Plan>,
) -> Result<(LevelResult, Vec<String>), String> {
    if workload.reads_keys() && plan.keys.is_empty() {
        return Err("nothing to read: no key was written".into());
    }
    warm_connections(target, concurrency).await;

    let server_before = ProcCounters::read(Some(target.pid));
    let client_before = ProcCounters::read(None);
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let target = Arc::clone(target);
        let plan = Arc::clone(plan);
        tasks.push(tokio::spawn(async move {
            let mut outcome = WorkerOutcome::default();
            let prefix = format!("bench/c{concurrency}w{worker}");
            let mut state = splitmix64(worker as u64 + 1);
            let mut i = 0u64;
            while Instant::now() < deadline {
                let key = if workload.writes_keys() {
                    format!("{prefix}/{i}")
                } else if workload.reads_keys() {
                    state = splitmix64(state);
                    plan.keys[(state % plan.keys.len() as u64) as usize].clone()
                } else {
                    String::new()
                };
                let started = Instant::now();
                let result = target.operation(workload, &plan, &key).await;
                if outcome.record(started, result) && workload.writes_keys() {
                    outcome.written.push(key);
                }
                i += 1;
            }
            outcome
        }));
    }

    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    let mut written = Vec::new();
    for task in tasks {
        let outcome = task
            .await
            .map_err(|e| format!("a load worker failed: {e}"))?;
        latencies.extend(outcome.latencies_us);
        errors += outcome.errors;
        if first_error.is_none() {
            first_error = outcome.first_error;
        }
        written.extend(outcome.written);
    }
    let seconds = start.elapsed().as_secs_f64();
    let server = ProcCounters::read(Some(target.pid)).since(server_before);
    let client = ProcCounters::read(None).since(client_before);

    let ops = latencies.len() as u64;
    let per_op = |total: f64| if ops == 0 { 0.0 } else { total / ops as f64 };
    let result = LevelResult {
        workload,
        concurrency,
        ops,
        errors,
        first_error,
        seconds,
        ops_per_sec: ops as f64 / seconds,
        latency_ms: Latency::from_micros(latencies),
        server_cpu_secs: server.cpu_secs,
        server_cpu_us_per_op: per_op(server.cpu_secs * 1e6),
        server_disk_write_bytes_per_op: per_op(server.disk_write_bytes as f64),
        client_cpu_secs: client.cpu_secs,
    };
    Ok((result, written))
}

/// Writes `count` secrets under `preload/` with a few concurrent writers; any error fails.
pub async fn preload(target: &Arc<Target>, count: usize) -> Result<Vec<String>, String> {
    const WRITERS: usize = 16;
    let keys: Vec<String> = (0..count).map(|i| format!("preload/{i}")).collect();
    let keys = Arc::new(keys);
    let mut tasks = Vec::with_capacity(WRITERS);
    for writer in 0..WRITERS {
        let target = Arc::clone(target);
        let keys = Arc::clone(&keys);
        tasks.push(tokio::spawn(async move {
            let plan = Plan {
                token: target.token.clone(),
                ..Plan::default()
            };
            for key in keys.iter().skip(writer).step_by(WRITERS) {
                target.operation(Workload::Write, &plan, key).await?;
            }
            Ok::<(), String>(())
        }));
    }
    for task in tasks {
        task.await
            .map_err(|e| format!("a preload writer failed: {e}"))??;
    }
    Ok(Arc::unwrap_or_clone(keys))
}

/// Where [`verify`] reads secrets back from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// `cubbyhole/<key>`: the secret is the response's `data`.
    Cubbyhole,
    /// `kv/data/<key>` (KV v2): the secret is the response's `data.data`.
    KvV2,
}

/// Reads up to `samples` keys spread over `keys` with `token` and checks each holds what was
/// written.
pub async fn verify(
    target: &Target,
    store: Store,
    token: &str,
    keys: &[String],
    samples: usize,
) -> Result<(), String> {
    if keys.is_empty() {
        return Ok(());
    }
    let step = (keys.len() / samples.max(1)).max(1);
    let picks = keys
        .iter()
        .step_by(step)
        .chain(keys.last())
        .take(samples + 1);
    for key in picks {
        let path = match store {
            Store::Cubbyhole => format!("cubbyhole/{key}"),
            Store::KvV2 => format!("kv/data/{key}"),
        };
        let body = target
            .expect(Method::GET, &path, Some(token), None, false)
            .await?;
        let answer: Value =
            serde_json::from_slice(&body).map_err(|e| format!("GET {path}: invalid JSON ({e})"))?;
        let expected: Value = serde_json::from_str(&secret_body(key))
            .map_err(|e| format!("the benchmark's own secret is not JSON: {e}"))?;
        let found = match store {
            Store::Cubbyhole => &answer["data"],
            Store::KvV2 => &answer["data"]["data"],
        };
        if *found != expected {
            return Err(format!("GET {path}: expected data {expected}, got {found}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_small_json_objects() {
        for key in ["preload/0", "bench/c64w63/123456"] {
            let body = secret_body(key);
            assert!(
                (90..=110).contains(&body.len()),
                "{} bytes: {body}",
                body.len()
            );
            let value: Value = serde_json::from_str(&body).expect("the body is JSON");
            assert!(value.is_object());
        }
        assert_ne!(secret_body("a"), secret_body("b"));
        let kv: Value = serde_json::from_str(&kv_body("a")).expect("the KV body is JSON");
        assert_eq!(
            kv["data"],
            serde_json::from_str::<Value>(&secret_body("a")).expect("JSON")
        );
        assert_eq!(secret_body("a"), secret_body("a"));
    }

    #[test]
    fn workload_labels_and_keys() {
        assert_eq!(Workload::Write.label(), "durable write");
        assert_eq!(
            Workload::AclRead { policies: 1 }.label(),
            "KV v2 read, token with 1 policy"
        );
        assert_eq!(
            Workload::AclRead { policies: 1001 }.label(),
            "KV v2 read, token with 1,001 policies"
        );
        assert!(Workload::KvWrite.writes_keys() && !Workload::KvWrite.reads_keys());
        assert!(Workload::AclRead { policies: 2 }.reads_keys());
        let login = Workload::AppRoleLogin;
        assert!(!login.reads_keys() && !login.writes_keys());
        let json = serde_json::to_value(Workload::AclRead { policies: 3 }).expect("serializes");
        assert_eq!(json["acl_read"]["policies"], 3);
        assert_eq!(
            serde_json::to_value(Workload::Write).expect("json"),
            "write"
        );
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        let latency = Latency::from_micros(samples);
        assert_eq!(latency.p50, 50.0);
        assert_eq!(latency.p90, 90.0);
        assert_eq!(latency.p99, 99.0);
        assert_eq!(latency.max, 100.0);
        assert!((latency.mean - 50.5).abs() < 1e-9);

        let one = Latency::from_micros(vec![1500]);
        assert_eq!((one.p50, one.p99, one.max), (1.5, 1.5, 1.5));
        assert_eq!(Latency::from_micros(Vec::new()).p99, 0.0);
    }
}
