//! Shared machinery: starting the real `mayfly` binary on a free port with its own temporary
//! directory, talking to it over HTTP (or raw TCP), and running the CLI against it.

use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use reqwest::{Method, header::HeaderMap};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The binary under test.
pub const MAYFLY: &str = env!("CARGO_BIN_EXE_mayfly");

/// How long a server gets to start answering, or to exit after a signal.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(10);

/// Between polls of something that is expected to change soon.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Environment variables a developer's shell may carry that would change what the binary does.
fn is_ambient(name: &str) -> bool {
    name.starts_with("VAULT_")
        || name.starts_with("MAYFLY_")
        || name.eq_ignore_ascii_case("http_proxy")
        || name.eq_ignore_ascii_case("https_proxy")
        || name.eq_ignore_ascii_case("all_proxy")
}

/// A command for the binary with a clean environment: no inherited Vault/Mayfly settings and
/// `HOME` pointing into the test's own directory (dev mode and the CLI use `~/.vault-token`).
pub fn mayfly_command(home: &Path) -> Command {
    let mut command = Command::new(MAYFLY);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_ambient) {
            command.env_remove(name);
        }
    }
    command.env("HOME", home);
    command
}

/// A port nobody is listening on right now. Another process may grab it before the server
/// binds it, so [`Server::start`] retries with a new port when binding fails.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    File,
    Inmem,
}

/// TLS material for the listener, and the CA the test clients should trust.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub ca_pem: Vec<u8>,
    /// Extra lines for the listener block, e.g. `tls_min_version = "tls13"`.
    pub listener_extra: String,
}

/// How to configure a server.
#[derive(Debug, Clone)]
pub struct Options {
    pub storage: Storage,
    pub tls: Option<TlsFiles>,
    /// Extra top-level configuration lines.
    pub top_extra: String,
}

impl Options {
    pub fn new(storage: Storage) -> Self {
        Options {
            storage,
            tls: None,
            top_extra: String::new(),
        }
    }
}

/// An HTTP answer, fully read.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|err| {
            panic!(
                "response ({}) is not JSON: {err}: {:?}",
                self.status, self.body
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Panics, showing the body, unless the status is `status`; returns `self` for chaining.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }

    /// The `errors` array of a Vault error body.
    pub fn errors(&self) -> Vec<String> {
        match self.json().get("errors") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|e| e.as_str().unwrap_or_default().to_owned())
                .collect(),
            other => panic!("no errors array in {:?}: {other:?}", self.body),
        }
    }
}

/// The result of `sys/init`.
#[derive(Debug, Clone)]
pub struct InitKeys {
    pub keys: Vec<String>,
    pub keys_base64: Vec<String>,
    pub root_token: String,
}

/// What a finished CLI run produced.
#[derive(Debug)]
pub struct CliOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A running `mayfly server`, killed (SIGKILL) when dropped.
pub struct Server {
    dir: TempDir,
    options: Options,
    child: Option<Child>,
    port: u16,
    starts: u32,
    http: reqwest::Client,
}

impl Server {
    pub async fn start(options: Options) -> Server {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut server = Server {
            dir,
            options,
            child: None,
            port: 0,
            starts: 0,
            http: reqwest::Client::new(),
        };
        server.launch().await;
        server
    }

    pub async fn file() -> Server {
        Server::start(Options::new(Storage::File)).await
    }

    pub async fn inmem() -> Server {
        Server::start(Options::new(Storage::Inmem)).await
    }

    /// Starts the server process again on the same data directory, after it stopped.
    pub async fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "restart() needs the previous process to have exited"
        );
        self.launch().await;
    }

    fn config_text(&self, port: u16) -> String {
        let storage = match self.options.storage {
            Storage::File => format!(
                "storage \"file\" {{\n  path = {:?}\n}}\n",
                self.data_dir().display().to_string()
            ),
            Storage::Inmem => "storage \"inmem\" {}\n".to_owned(),
        };
        let tls = match &self.options.tls {
            None => "  tls_disable = true\n".to_owned(),
            Some(tls) => format!(
                "  tls_cert_file = {:?}\n  tls_key_file = {:?}\n{}\n",
                tls.cert_file.display().to_string(),
                tls.key_file.display().to_string(),
                tls.listener_extra
            ),
        };
        format!(
            "{storage}listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n{tls}}}\n{}\n",
            self.options.top_extra
        )
    }

    fn client_for(options: &Options) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30));
        if let Some(tls) = &options.tls {
            let ca = reqwest::Certificate::from_pem(&tls.ca_pem).expect("CA certificate");
            builder = builder.tls_certs_only([ca]);
        }
        builder.build().expect("HTTP client")
    }

    /// Spawns the process and waits until it answers `sys/health`. A fresh port is chosen on
    /// every start, so connections pooled for the previous process are never reused.
    async fn launch(&mut self) {
        const ATTEMPTS: u32 = 5;
        for attempt in 1..=ATTEMPTS {
            let port = free_port();
            self.starts += 1;
            let config = self.dir.path().join("server.hcl");
            fs::write(&config, self.config_text(port)).expect("write config");
            let stdout = fs::File::create(self.stdout_path()).expect("stdout log");
            let stderr = fs::File::create(self.stderr_path()).expect("stderr log");
            let child = mayfly_command(self.dir.path())
                .arg("server")
                .arg(format!("-config={}", config.display()))
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .spawn()
                .expect("spawn mayfly server");
            self.child = Some(child);
            self.port = port;
            self.http = Self::client_for(&self.options);
            match self.wait_ready().await {
                Ok(()) => return,
                Err(log) if attempt < ATTEMPTS && log.contains("cannot listen on") => {
                    // Someone took the port between our probe and the server's bind.
                    continue;
                }
                Err(log) => panic!("server did not start:\n{log}"),
            }
        }
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_DEADLINE;
        let url = self.url("sys/health?uninitcode=200&sealedcode=200");
        loop {
            if let Ok(resp) = self.http.get(&url).send().await
                && resp.status().as_u16() == 200
            {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                return Err(format!("exited with {status}:\n{}", self.stderr()));
            }
            if Instant::now() > deadline {
                self.kill9();
                return Err(format!("no answer within the deadline:\n{}", self.stderr()));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `HOME` of the server and of CLI runs made through [`Server::cli`].
    pub fn home(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn stdout_path(&self) -> PathBuf {
        self.dir
            .path()
            .join(format!("server-{}.stdout", self.starts))
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir
            .path()
            .join(format!("server-{}.stderr", self.starts))
    }

    /// What the current (or last) process wrote to standard error: its log.
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` (or `https://` with TLS).
    pub fn addr(&self) -> String {
        let scheme = if self.options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The full URL of an API path such as `sys/health`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.addr())
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// Sends SIGTERM: the server should stop accepting, finish in-flight requests and exit 0.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// SIGHUP: the server reopens its audit files (log rotation) and keeps running.
    pub fn sighup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -HUP failed: {status}");
    }

    /// SIGKILL, as a crash or power cut would end it; waits for the process to be gone.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the process to exit on its own and returns how it exited.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("server is running");
        loop {
            if let Some(status) = child.try_wait().expect("wait for server") {
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                panic!("server did not exit within {timeout:?}");
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Graceful stop: SIGTERM, then the exit status must be 0.
    pub async fn stop(&mut self) {
        self.sigterm();
        let status = self.wait_exit(STARTUP_DEADLINE).await;
        assert!(status.success(), "server exited with {status}");
    }

    /// Sends one request. `path` is relative to `/v1/` and may carry a query string.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let method = Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let mut req = self.http.request(method, self.url(path));
        if let Some(token) = token {
            req = req.header("X-Vault-Token", token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        read(req.send().await.expect("request failed")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.request("GET", path, token, None).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.request("PUT", path, token, Some(body)).await
    }

    pub async fn seal_status(&self) -> Value {
        let resp = self.get("sys/seal-status", None).await;
        assert_eq!(resp.status, 200, "{}", resp.body);
        resp.json()
    }

    /// `PUT sys/init`; the server must accept it.
    pub async fn init(&self, shares: u8, threshold: u8) -> InitKeys {
        let resp = self
            .put(
                "sys/init",
                None,
                &json!({"secret_shares": shares, "secret_threshold": threshold}),
            )
            .await;
        assert_eq!(resp.status, 200, "init: {}", resp.body);
        let body = resp.json();
        let strings = |key: &str| -> Vec<String> {
            body[key]
                .as_array()
                .unwrap_or_else(|| panic!("init response lacks {key}: {body}"))
                .iter()
                .map(|k| k.as_str().expect("key string").to_owned())
                .collect()
        };
        let keys = InitKeys {
            keys: strings("keys"),
            keys_base64: strings("keys_base64"),
            root_token: body["root_token"].as_str().expect("root token").to_owned(),
        };
        assert_eq!(keys.keys.len(), usize::from(shares));
        assert_eq!(keys.keys_base64.len(), usize::from(shares));
        keys
    }

    /// Submits one key to `sys/unseal` and returns the response.
    pub async fn unseal_key(&self, key: &str) -> Resp {
        self.put("sys/unseal", None, &json!({"key": key})).await
    }

    /// Submits `keys` in order; the last one must unseal the server.
    pub async fn unseal(&self, keys: &[String]) {
        for (i, key) in keys.iter().enumerate() {
            let resp = self.unseal_key(key).await;
            assert_eq!(resp.status, 200, "unseal: {}", resp.body);
            let sealed = resp.json()["sealed"].as_bool().expect("sealed flag");
            assert_eq!(
                sealed,
                i + 1 < keys.len(),
                "after key {}: {}",
                i + 1,
                resp.body
            );
        }
    }

    /// Initializes and unseals with the first `threshold` keys.
    pub async fn init_unsealed(&self, shares: u8, threshold: u8) -> InitKeys {
        let keys = self.init(shares, threshold).await;
        self.unseal(&keys.keys[..usize::from(threshold)]).await;
        keys
    }

    /// Sends one request with extra headers (`X-Vault-Wrap-TTL`, a PATCH content type) and a
    /// raw body, which [`Server::request`] does not allow.
    pub async fn request_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Resp {
        let method = Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let mut req = self.http.request(method, self.url(path));
        if let Some(token) = token {
            req = req.header("X-Vault-Token", token);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(body) = body {
            req = req.body(body.to_string());
        }
        read(req.send().await.expect("request failed")).await
    }

    /// Initializes with one key, unseals, and returns the root token: the usual start of a
    /// test that is about what happens after unsealing.
    pub async fn root_token(&self) -> String {
        self.init_unsealed(1, 1).await.root_token
    }

    /// Runs the CLI against this server with `VAULT_ADDR` (and `VAULT_TOKEN` if given) set.
    pub async fn cli(&self, token: Option<&str>, args: &[&str]) -> CliOutput {
        let mut env = vec![("VAULT_ADDR", self.addr())];
        if let Some(token) = token {
            env.push(("VAULT_TOKEN", token.to_owned()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        cli(self.home(), &env, args).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub async fn read(resp: reqwest::Response) -> Resp {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.text().await.expect("read response body");
    Resp {
        status,
        headers,
        body,
    }
}

/// Runs `mayfly ARGS` (the CLI) with `HOME=home` and `env`, and captures what it printed.
pub async fn cli(home: &Path, env: &[(&str, &str)], args: &[&str]) -> CliOutput {
    let mut command = tokio::process::Command::from(mayfly_command(home));
    command
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .unwrap_or_else(|_| panic!("mayfly {args:?} did not finish"))
        .expect("run mayfly CLI");
    CliOutput {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `mayfly server ARGS` to completion (for configurations that must be refused).
pub async fn run_server_expecting_exit(home: &Path, args: &[&str]) -> CliOutput {
    let mut command = tokio::process::Command::from(mayfly_command(home));
    command
        .arg("server")
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(STARTUP_DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| panic!("mayfly server {args:?} kept running"))
        .expect("run mayfly server");
    CliOutput {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A response read off a raw socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl RawResponse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("body is not JSON: {err}: {:?}", self.body))
    }
}

/// Parses one HTTP/1.1 response with a `Content-Length` out of `bytes`, skipping interim
/// `1xx` responses. `None` while it is incomplete.
pub fn parse_response(bytes: &[u8]) -> Option<RawResponse> {
    let mut rest = bytes;
    loop {
        let end = rest.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&rest[..end]).into_owned();
        let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
        let after = &rest[end + 4..];
        if (100..200).contains(&status) {
            rest = after;
            continue;
        }
        let length = head
            .lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if after.len() < length {
            return None;
        }
        return Some(RawResponse {
            status,
            head,
            body: String::from_utf8_lossy(&after[..length]).into_owned(),
        });
    }
}

/// Reads from `stream` until a complete response has arrived.
pub async fn read_response(stream: &mut TcpStream) -> RawResponse {
    let mut buffer = Vec::new();
    let work = async {
        loop {
            if let Some(resp) = parse_response(&buffer) {
                return resp;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.expect("read from server");
            assert!(
                n > 0,
                "connection closed before a full response: {:?}",
                String::from_utf8_lossy(&buffer)
            );
            buffer.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .expect("response within 10 s")
}

/// Reads until the server has sent exactly `expected` (used for `100 Continue`).
pub async fn read_exact_text(stream: &mut TcpStream, expected: &str) {
    let mut buffer = vec![0u8; expected.len()];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut buffer))
        .await
        .expect("server answered within 10 s")
        .expect("read from server");
    assert_eq!(String::from_utf8_lossy(&buffer), expected);
}

/// Sends `request` verbatim on a new connection and reads one response.
pub async fn raw_request(port: u16, request: &str) -> RawResponse {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    read_response(&mut stream).await
}

/// Calls `attempt` until it yields `Some`, at most until `timeout` has passed, then panics
/// naming `what`. For state that changes on the server's own schedule (a TTL running out).
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        tokio::time::sleep(POLL_INTERVAL * 5).await;
    }
}

/// Whether `s` looks like a UUID (8-4-4-4-12 hex digits).
pub fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}
