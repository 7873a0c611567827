//! The workloads: small cubbyhole secrets written (each acknowledged write is durable on both
//! servers) or read by a fixed number of concurrent clients for a fixed time, with the latency of
//! every operation and the server's CPU and disk use over the run.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::{StatusCode, header};
use serde::Serialize;
use serde_json::Value;

use crate::machine::ProcCounters;

/// Vault's token header; both servers take it.
const TOKEN_HEADER: &str = "X-Vault-Token";

/// One server to load: the shared client, where it listens, the token, and its process id
/// (for CPU and disk counters).
pub struct Target {
    pub client: reqwest::Client,
    pub base: String,
    pub token: String,
    pub pid: u32,
}

impl Target {
    fn url(&self, key: &str) -> String {
        format!("{}/v1/cubbyhole/{key}", self.base)
    }

    async fn put(&self, key: &str) -> Result<(), String> {
        let response = self
            .client
            .put(self.url(key))
            .header(TOKEN_HEADER, &self.token)
            .header(header::CONTENT_TYPE, "application/json")
            .body(secret_body(key))
            .send()
            .await
            .map_err(|e| format!("PUT {key}: {e}"))?;
        expect_status(response, StatusCode::NO_CONTENT, "PUT", key).await
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, String> {
        let response = self
            .client
            .get(self.url(key))
            .header(TOKEN_HEADER, &self.token)
            .send()
            .await
            .map_err(|e| format!("GET {key}: {e}"))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("GET {key}: reading the body: {e}"))?;
        if status != StatusCode::OK {
            return Err(format!(
                "GET {key}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(body.to_vec())
    }
}

/// Accepts `expected` or any other 2xx (a server may answer a write with 200 and a body); the
/// body is always drained so the connection can be reused.
async fn expect_status(
    response: reqwest::Response,
    expected: StatusCode,
    method: &str,
    key: &str,
) -> Result<(), String> {
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    if status == expected || status.is_success() {
        Ok(())
    } else {
        Err(format!(
            "{method} {key}: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        ))
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
#[serde(rename_all = "lowercase")]
pub enum Workload {
    Write,
    Read,
}

impl Workload {
    pub fn label(self) -> &'static str {
        match self {
            Self::Write => "durable write",
            Self::Read => "read",
        }
    }
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
/// at random from `keys`, which must not be empty.
pub async fn run_level(
    target: &Arc<Target>,
    workload: Workload,
    concurrency: usize,
    duration: Duration,
    keys: &Arc<Vec<String>>,
) -> Result<(LevelResult, Vec<String>), String> {
    if workload == Workload::Read && keys.is_empty() {
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
        let keys = Arc::clone(keys);
        tasks.push(tokio::spawn(async move {
            let mut outcome = WorkerOutcome::default();
            match workload {
                Workload::Write => {
                    let prefix = format!("bench/c{concurrency}w{worker}");
                    let mut i = 0u64;
                    while Instant::now() < deadline {
                        let key = format!("{prefix}/{i}");
                        let started = Instant::now();
                        let result = target.put(&key).await;
                        if outcome.record(started, result) {
                            outcome.written.push(key);
                        }
                        i += 1;
                    }
                }
                Workload::Read => {
                    let mut state = splitmix64(worker as u64 + 1);
                    while Instant::now() < deadline {
                        state = splitmix64(state);
                        let key = &keys[(state % keys.len() as u64) as usize];
                        let started = Instant::now();
                        let result = target.get(key).await.map(drop);
                        outcome.record(started, result);
                    }
                }
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
            for key in keys.iter().skip(writer).step_by(WRITERS) {
                target.put(key).await?;
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

/// Reads up to `samples` keys spread over `keys` and checks each holds what was written.
pub async fn verify(target: &Target, keys: &[String], samples: usize) -> Result<(), String> {
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
        let body = target.get(key).await?;
        let answer: Value =
            serde_json::from_slice(&body).map_err(|e| format!("GET {key}: invalid JSON ({e})"))?;
        let expected: Value = serde_json::from_str(&secret_body(key))
            .map_err(|e| format!("the benchmark's own secret is not JSON: {e}"))?;
        if answer["data"] != expected {
            return Err(format!(
                "GET {key}: expected data {expected}, got {}",
                answer["data"]
            ));
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
        assert_eq!(secret_body("a"), secret_body("a"));
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
