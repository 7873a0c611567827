//! One server under test: its temporary directory and config, its process (start, SIGTERM), and
//! the bootstrap calls every Vault-compatible server answers the same way (health, init, unseal).

use std::{
    fmt, fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::Stdio,
    str::FromStr,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tempfile::TempDir;

/// How long a server may take to answer its first health check after starting.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a server may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an unsealed server may take to become active (raft elects itself leader first).
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// OpenBao's `max_request_json_strings` listener setting: the default, 1,000, would refuse the
/// auth suite's creation of a token with 1,000 policies. Requests are still counted against it.
const BAO_MAX_JSON_STRINGS: usize = 100_000;
/// Health is polled this often, which bounds the resolution of the restart timings.
pub const POLL_INTERVAL: Duration = Duration::from_millis(2);

/// OpenBao's durable single-node storages. OpenBao dropped Vault's `file` storage; `raft`
/// (integrated storage) is the one it recommends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaoStorage {
    Raft,
    Pebbledb,
}

impl FromStr for BaoStorage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "raft" => Ok(Self::Raft),
            "pebbledb" => Ok(Self::Pebbledb),
            other => Err(format!(
                "unknown OpenBao storage {other:?} (expected raft or pebbledb)"
            )),
        }
    }
}

impl fmt::Display for BaoStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Raft => "raft",
            Self::Pebbledb => "pebbledb",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Mayfly,
    OpenBao(BaoStorage),
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Mayfly => "Mayfly",
            Self::OpenBao(_) => "OpenBao",
        }
    }

    /// The storage stanza's type, as the config names it.
    pub fn storage(self) -> String {
        match self {
            Self::Mayfly => "file".to_owned(),
            Self::OpenBao(storage) => storage.to_string(),
        }
    }
}

/// A configured, not necessarily running, server. Dropping it deletes its data.
pub struct Server {
    binary: PathBuf,
    dir: TempDir,
    config: PathBuf,
    log: PathBuf,
    base: String,
}

impl Server {
    /// Creates a fresh data directory and a config listening on free loopback ports.
    pub fn prepare(kind: Kind, binary: &Path, work_dir: Option<&Path>) -> Result<Server, String> {
        let dir = match work_dir {
            Some(parent) => {
                fs::create_dir_all(parent)
                    .map_err(|e| format!("creating {}: {e}", parent.display()))?;
                tempfile::Builder::new()
                    .prefix("mayfly-bench-")
                    .tempdir_in(parent)
            }
            None => tempfile::Builder::new().prefix("mayfly-bench-").tempdir(),
        }
        .map_err(|e| format!("creating a temporary directory: {e}"))?;
        let data = dir.path().join("data");
        fs::create_dir_all(&data).map_err(|e| format!("creating {}: {e}", data.display()))?;
        let (port, cluster_port) = free_port_pair()?;
        let config = dir.path().join("server.hcl");
        fs::write(&config, render_config(kind, &data, port, cluster_port))
            .map_err(|e| format!("writing {}: {e}", config.display()))?;
        Ok(Server {
            binary: binary.to_owned(),
            log: dir.path().join("server.log"),
            dir,
            config,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Where the audit suite's file device writes: beside the data directory, on the same disk.
    pub fn audit_log(&self) -> PathBuf {
        self.dir.path().join("audit.log")
    }

    /// Starts the server process; its output goes to a log inside the temporary directory.
    pub fn start(&self) -> Result<Process, String> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("opening {}: {e}", self.log.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("opening {}: {e}", self.log.display()))?;
        let started = Instant::now();
        let child = tokio::process::Command::new(&self.binary)
            .arg("server")
            .arg(format!("-config={}", self.config.display()))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // A benchmark that fails half-way must not leave a server running.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.binary.display()))?;
        let pid = child
            .id()
            .ok_or_else(|| format!("{} exited at once", self.binary.display()))?;
        Ok(Process {
            child,
            pid,
            started,
        })
    }

    /// The last lines of the server's log, to explain a failure.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Reads the server binary's `version` output.
    pub async fn version(&self) -> String {
        let output = tokio::process::Command::new(&self.binary)
            .arg("version")
            .stdin(Stdio::null())
            .output()
            .await;
        match output {
            Ok(output) => {
                let text = String::from_utf8_lossy(&output.stdout);
                let text = if text.trim().is_empty() {
                    String::from_utf8_lossy(&output.stderr).into_owned()
                } else {
                    text.into_owned()
                };
                text.lines().next().unwrap_or("").trim().to_owned()
            }
            Err(e) => format!("unknown ({e})"),
        }
    }
}

/// Two distinct free loopback ports: the API listener and OpenBao's cluster listener.
fn free_port_pair() -> Result<(u16, u16), String> {
    // Both sockets stay bound until both ports are known, so the two cannot coincide.
    let first = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a port: {e}"))?;
    let second = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a port: {e}"))?;
    let port = |l: &TcpListener| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string());
    Ok((port(&first)?, port(&second)?))
}

fn hcl_string(path: &Path) -> String {
    path.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

fn render_config(kind: Kind, data: &Path, port: u16, cluster_port: u16) -> String {
    let data = hcl_string(data);
    match kind {
        Kind::Mayfly => format!(
            r#"storage "file" {{
  path = "{data}"
}}

listener "tcp" {{
  address     = "127.0.0.1:{port}"
  tls_disable = true
}}
"#
        ),
        Kind::OpenBao(storage) => {
            // Raft needs a node id and a cluster address even for a single node.
            let node_id = match storage {
                BaoStorage::Raft => "\n  node_id = \"bench\"",
                BaoStorage::Pebbledb => "",
            };
            format!(
                r#"storage "{storage}" {{
  path = "{data}"{node_id}
}}

listener "tcp" {{
  address         = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cluster_port}"
  tls_disable     = true
  # The default (1000 strings per JSON body) refuses creating a token with 1,000 policies.
  max_request_json_strings = {BAO_MAX_JSON_STRINGS}
}}

api_addr      = "http://127.0.0.1:{port}"
cluster_addr  = "http://127.0.0.1:{cluster_port}"
disable_mlock = true

# The audit suite enables its file device through the API, as it does on Mayfly.
unsafe_allow_api_audit_creation = true
"#
            )
        }
    }
}

/// A running server process.
pub struct Process {
    child: tokio::process::Child,
    pid: u32,
    started: Instant,
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(format!("the server exited early ({status})")),
            Ok(None) => Ok(()),
            Err(e) => Err(format!("checking the server process: {e}")),
        }
    }

    /// Sends SIGTERM and waits for a graceful exit; returns how long that took.
    pub async fn stop(mut self) -> Result<Duration, String> {
        let sent = Instant::now();
        // `kill(1)` rather than a libc binding keeps the crate on workspace dependencies.
        let status = tokio::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await
            .map_err(|e| format!("running kill: {e}"))?;
        if !status.success() {
            return Err(format!("kill -TERM {} failed ({status})", self.pid));
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(Ok(_)) => Ok(sent.elapsed()),
            Ok(Err(e)) => Err(format!("waiting for the server to exit: {e}")),
            Err(_) => {
                let _ = self.child.kill().await;
                Err(format!(
                    "the server did not exit within {STOP_TIMEOUT:?} of SIGTERM; killed it"
                ))
            }
        }
    }
}

/// Builds the HTTP client the benchmark shares: keep-alive, enough idle connections for the
/// highest concurrency, and no Nagle delay on small requests.
pub fn http_client(max_connections: usize) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(max_connections)
        .pool_idle_timeout(None)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))
}

/// The status code of `GET /v1/sys/health`, or `None` while nothing answers.
async fn health_status(client: &reqwest::Client, base: &str) -> Option<u16> {
    let response = client
        .get(format!("{base}/v1/sys/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    Some(response.status().as_u16())
}

/// Polls until the server answers health at all; returns the status code it gave.
pub async fn wait_for_health(
    client: &reqwest::Client,
    base: &str,
    process: &mut Process,
) -> Result<u16, String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = health_status(client, base).await {
            return Ok(status);
        }
        process.check_alive()?;
        if Instant::now() > deadline {
            return Err(format!("no health answer within {START_TIMEOUT:?}"));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Polls until health says 200: unsealed and active.
pub async fn wait_until_active(
    client: &reqwest::Client,
    base: &str,
    process: &mut Process,
) -> Result<(), String> {
    let deadline = Instant::now() + ACTIVE_TIMEOUT;
    let mut last = None;
    loop {
        last = health_status(client, base).await.or(last);
        if last == Some(200) {
            return Ok(());
        }
        process.check_alive()?;
        if Instant::now() > deadline {
            return Err(format!(
                "not active within {ACTIVE_TIMEOUT:?} (last health status {last:?})"
            ));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// What `sys/init` hands out that the benchmark needs.
pub struct InitKeys {
    pub unseal_key: String,
    pub root_token: String,
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Value,
) -> Result<Value, String> {
    let response = client
        .request(method, &url)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| format!("{url}: reading the answer: {e}"))?;
    if !status.is_success() {
        return Err(format!("{url}: HTTP {status}: {text}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("{url}: invalid JSON answer ({e}): {text}"))
}

/// Initializes with a single unseal key share.
pub async fn init(client: &reqwest::Client, base: &str) -> Result<InitKeys, String> {
    let answer = call(
        client,
        reqwest::Method::PUT,
        format!("{base}/v1/sys/init"),
        json!({ "secret_shares": 1, "secret_threshold": 1 }),
    )
    .await?;
    let unseal_key = answer["keys"][0]
        .as_str()
        .ok_or("sys/init answered without keys")?
        .to_owned();
    let root_token = answer["root_token"]
        .as_str()
        .ok_or("sys/init answered without a root token")?
        .to_owned();
    Ok(InitKeys {
        unseal_key,
        root_token,
    })
}

/// Submits the unseal key and checks the server reports itself unsealed.
pub async fn unseal(client: &reqwest::Client, base: &str, key: &str) -> Result<(), String> {
    let answer = call(
        client,
        reqwest::Method::PUT,
        format!("{base}/v1/sys/unseal"),
        json!({ "key": key }),
    )
    .await?;
    match answer["sealed"].as_bool() {
        Some(false) => Ok(()),
        _ => Err(format!("still sealed after the unseal key: {answer}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_name_storage_and_ports() {
        let data = Path::new("/tmp/x\"y/data");
        let mayfly = render_config(Kind::Mayfly, data, 8200, 8201);
        assert!(mayfly.contains(r#"storage "file""#), "{mayfly}");
        assert!(mayfly.contains(r#"path = "/tmp/x\"y/data""#), "{mayfly}");
        assert!(mayfly.contains("127.0.0.1:8200"));
        assert!(!mayfly.contains("8201"), "Mayfly has no cluster listener");

        let raft = render_config(Kind::OpenBao(BaoStorage::Raft), data, 8200, 8201);
        assert!(raft.contains(r#"storage "raft""#), "{raft}");
        assert!(raft.contains(r#"node_id = "bench""#), "{raft}");
        assert!(raft.contains(r#"cluster_addr  = "http://127.0.0.1:8201""#));
        assert!(raft.contains("max_request_json_strings = 100000"), "{raft}");
        assert!(!mayfly.contains("max_request_json_strings"), "{mayfly}");
        assert!(
            raft.contains("unsafe_allow_api_audit_creation = true"),
            "{raft}"
        );

        let pebble = render_config(Kind::OpenBao(BaoStorage::Pebbledb), data, 1, 2);
        assert!(pebble.contains(r#"storage "pebbledb""#), "{pebble}");
        assert!(!pebble.contains("node_id"));
    }

    #[test]
    fn port_pair_is_distinct() {
        let (a, b) = free_port_pair().expect("loopback ports are available");
        assert_ne!(a, b);
    }
}
