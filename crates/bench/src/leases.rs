//! The leases suite: token leases at scale. For each server and lease count N, from a fresh
//! data directory: create N tokens (each one a lease), then measure memory and disk, the expiry
//! lag of a batch of tokens all due in the same second while the N are held, a restart to the
//! first served request, and a revoke-prefix of the N.

use std::{
    fmt::Write as _,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    args::Args,
    auth,
    load::Target,
    machine::{self, Machine, ProcCounters},
    report::{millis, thousands},
    server::{self, InitKeys, Kind, Process, Server},
};

/// The issue's goals: a restart serves its first authenticated request within this many
/// seconds whatever the lease count, and tokens due in the same second are 99% gone within
/// this many seconds of it.
pub const RESTART_GOAL_SECS: f64 = 1.0;
pub const EXPIRY_GOAL_SECS: f64 = 2.0;
/// Every background token lives long enough not to expire during the run; `default` is the
/// one policy both servers have without setup.
const BACKGROUND_BODY: &str = r#"{"policies":["default"],"ttl":"768h","no_default_policy":false}"#;
/// The background tokens' lease prefix, and what the revoke-prefix revokes.
const BACKGROUND_PREFIX: &str = "auth/token/create";
/// The expiring tokens are created through this token role, so their leases have their own
/// prefix (`auth/token/create/expiry/`) and can be counted without listing the N others.
const EXPIRY_ROLE: &str = "expiry";
/// How often the expiring tokens are counted.
const EXPIRY_POLL: Duration = Duration::from_millis(100);
/// How often the leases are counted after a revoke-prefix: listing up to N IDs is not free.
const REVOKE_POLL: Duration = Duration::from_secs(1);
/// Counting stops once the count has not moved for this long: the revocation has stopped.
const REVOKE_STALLED: Duration = Duration::from_secs(15);
/// A server counts as idle once it uses less than this share of one core over [`IDLE_WINDOW`].
const IDLE_CPU: f64 = 0.05;
const IDLE_WINDOW: Duration = Duration::from_millis(500);
/// How long to wait for a server to go idle before measuring anyway.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a restarted server may take to serve its first authenticated request.
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// A restart of a server holding N leases, up to its first served authenticated request.
#[derive(Debug, Clone, Serialize)]
pub struct Restart {
    /// Process start until `sys/health` answered.
    pub start_to_health_ms: f64,
    /// The `sys/unseal` request.
    pub unseal_ms: f64,
    /// From the unseal answer to the first 200 of `auth/token/lookup-self`.
    pub unseal_to_first_request_ms: f64,
    /// Process start to the first 200 of `auth/token/lookup-self`.
    pub total_ms: f64,
    /// Resident memory once the restarted server is idle again.
    pub rss_bytes: Option<u64>,
}

/// Tokens created to be due in the same second, then counted until gone. Times are seconds
/// after that second (negative: before it).
#[derive(Debug, Clone, Serialize)]
pub struct Expiry {
    pub tokens: usize,
    /// When half, all but 1%, and all of them were gone; `None`: not within `timeout_secs`.
    pub p50_secs: Option<f64>,
    pub p99_secs: Option<f64>,
    pub all_secs: Option<f64>,
    pub timeout_secs: f64,
    /// `(seconds after the due second, tokens still present)` at every count.
    pub samples: Vec<(f64, usize)>,
}

/// A synchronous `sys/leases/revoke-prefix` of the N background tokens.
#[derive(Debug, Clone, Serialize)]
pub struct Revoke {
    pub leases: usize,
    /// The request's wall time; `None` if it failed or did not answer within `timeout_secs`.
    pub request_secs: Option<f64>,
    /// From sending the request until no lease was left under the prefix.
    pub all_gone_secs: Option<f64>,
    /// Leases under the prefix at the last count.
    pub left: Option<usize>,
    pub timeout_secs: f64,
    /// Why the request has no time: the server's error answer, or no answer in time.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SizeResult {
    pub leases: usize,
    pub create_secs: f64,
    pub create_per_sec: f64,
    /// Resident memory of the server once idle after the creations.
    pub rss_bytes: Option<u64>,
    /// Disk space of the data directory, as `du` counts it.
    pub disk_bytes: u64,
    pub expiry: Expiry,
    pub restart: Restart,
    pub revoke: Revoke,
}

#[derive(Debug, Clone, Serialize)]
pub struct LeaseServerReport {
    pub name: String,
    pub version: String,
    pub storage: String,
    pub sizes: Vec<SizeResult>,
    /// What stopped this server's run early, if anything did.
    pub failure: Option<String>,
}

impl LeaseServerReport {
    fn size(&self, leases: usize) -> Option<&SizeResult> {
        self.sizes.iter().find(|s| s.leases == leases)
    }
}

/// Runs the suite on one server: every size from its own fresh data directory. A failure stops
/// this server's remaining sizes but keeps what was measured.
pub async fn bench_server(
    kind: Kind,
    binary: &Path,
    sizes: &[usize],
    args: &Args,
) -> LeaseServerReport {
    let mut report = LeaseServerReport {
        name: kind.name().to_owned(),
        version: String::new(),
        storage: kind.storage(),
        sizes: Vec::new(),
        failure: None,
    };
    for &leases in sizes {
        let server = match Server::prepare(kind, binary, args.work_dir.as_deref()) {
            Ok(server) => server,
            Err(e) => {
                report.failure = Some(e);
                break;
            }
        };
        if report.version.is_empty() {
            report.version = server.version().await;
        }
        eprintln!(
            "== {}: {}; storage {} in {}; leases suite, {} leases",
            kind.name(),
            report.version,
            kind.storage(),
            server.data_dir().display(),
            thousands(leases as f64)
        );
        match one_size(&server, leases, args).await {
            Ok(result) => report.sizes.push(result),
            Err(e) => {
                let failure = format!(
                    "{} leases: {e}\n--- last lines of its log ---\n{}",
                    thousands(leases as f64),
                    server.log_tail()
                );
                eprintln!("   {}: {failure}", kind.name());
                report.failure = Some(failure);
                break;
            }
        }
    }
    report
}

async fn one_size(server: &Server, leases: usize, args: &Args) -> Result<SizeResult, String> {
    let clients = args.lease_clients;
    let (process, target, keys) = crate::start_fresh(server, clients).await?;
    auth::root_call(
        &target,
        Method::POST,
        &format!("auth/token/roles/{EXPIRY_ROLE}"),
        Some(json!({ "allowed_policies": ["default"] })),
    )
    .await?;

    let created = create_tokens(&target, BACKGROUND_PREFIX, leases, clients, true, || {
        BACKGROUND_BODY.to_owned()
    })
    .await?;
    let create_per_sec = leases as f64 / created.as_secs_f64();
    eprintln!(
        "   created {} tokens in {:.1} s: {create_per_sec:.0}/s",
        thousands(leases as f64),
        created.as_secs_f64()
    );
    settle(target.pid).await;
    let rss_bytes = machine::rss_bytes(target.pid);
    let disk_bytes = machine::disk_usage(&server.data_dir());
    eprintln!(
        "   RSS {}, data directory {}",
        rss_bytes.map_or("?".into(), mib),
        mib(disk_bytes)
    );

    let expiry = expiry(&target, args, create_per_sec).await?;
    settle(target.pid).await;

    let (process, target, restart) = restart(server, process, &keys, clients).await?;
    eprintln!(
        "   restart: health {}, unseal {}, first lookup-self {} later: {} in all; RSS {}",
        millis(restart.start_to_health_ms),
        millis(restart.unseal_ms),
        millis(restart.unseal_to_first_request_ms),
        millis(restart.total_ms),
        restart.rss_bytes.map_or("?".into(), mib)
    );

    let revoke = revoke_prefix(&target, leases, args.lease_timeout).await?;
    eprintln!(
        "   revoke-prefix of {}: request {}, all gone {}{}",
        thousands(leases as f64),
        seconds_or(revoke.request_secs, revoke.timeout_secs),
        seconds_or(revoke.all_gone_secs, revoke.timeout_secs),
        revoke
            .error
            .as_ref()
            .map_or(String::new(), |e| format!(" ({e})"))
    );
    // A revoke-prefix that timed out may still be running: a slow exit then is no reason to
    // lose this size's figures.
    if let Err(e) = process.stop().await {
        eprintln!("   note: {e}");
    }
    Ok(SizeResult {
        leases,
        create_secs: created.as_secs_f64(),
        create_per_sec,
        rss_bytes,
        disk_bytes,
        expiry,
        restart,
        revoke,
    })
}

/// Creates `count` tokens at `POST <path>` with the root token and `clients` concurrent
/// clients, each request's body from `body`; any failure stops the run. Returns the time taken.
async fn create_tokens(
    target: &Arc<Target>,
    path: &str,
    count: usize,
    clients: usize,
    progress: bool,
    body: impl Fn() -> String + Send + Sync + 'static,
) -> Result<Duration, String> {
    let next = Arc::new(AtomicUsize::new(0));
    let body = Arc::new(body);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (target, next, body) = (Arc::clone(target), Arc::clone(&next), Arc::clone(&body));
        let path = path.to_owned();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok(());
                }
                let (status, answer) = target
                    .send(Method::POST, &path, Some(&target.token), Some(body()))
                    .await?;
                if status != StatusCode::OK {
                    // Stops the other clients at their next token.
                    next.store(count, Ordering::Relaxed);
                    return Err(format!(
                        "POST {path}: HTTP {status}: {}",
                        String::from_utf8_lossy(&answer)
                    ));
                }
                if progress && count >= 100_000 && (i + 1) % (count / 10) == 0 {
                    let secs = started.elapsed().as_secs_f64();
                    eprintln!(
                        "   … {} tokens after {secs:.0} s ({:.0}/s)",
                        thousands((i + 1) as f64),
                        (i + 1) as f64 / secs
                    );
                }
            }
        }));
    }
    for task in tasks {
        task.await
            .map_err(|e| format!("a token creator failed: {e}"))??;
    }
    Ok(started.elapsed())
}

/// Waits until the server is idle, so background work left over from one phase (index
/// writes, compaction, OpenBao's lease restore after a restart) is not billed to the next.
async fn settle(pid: u32) {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut before = ProcCounters::read(Some(pid));
    while Instant::now() < deadline {
        tokio::time::sleep(IDLE_WINDOW).await;
        let now = ProcCounters::read(Some(pid));
        if now.since(before).cpu_secs < IDLE_CPU * IDLE_WINDOW.as_secs_f64() {
            return;
        }
        before = now;
    }
    eprintln!("   note: the server was still busy after {SETTLE_TIMEOUT:?}; measuring anyway");
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The TTL, in whole seconds, that makes a token created now fall due at Unix second `due`.
/// Rounding (not truncating) matches Mayfly, which rounds expiry to the nearest second, so
/// there every token is due exactly at `due`; OpenBao keeps the creation instant, so there
/// they fall due within half a second either side.
fn ttl_until(due: f64, now: f64) -> i64 {
    (due - now).round() as i64
}

/// Creates `--expiry-leases` tokens all due in the same second, then counts them every
/// [`EXPIRY_POLL`] until none is left. `create_rate` (tokens/s just measured on this server)
/// sets how far ahead that second is: twice the expected creation time plus five seconds.
async fn expiry(target: &Arc<Target>, args: &Args, create_rate: f64) -> Result<Expiry, String> {
    let tokens = args.expiry_leases;
    let margin = 2.0 * tokens as f64 / create_rate.max(100.0) + 5.0;
    let due = (unix_now() + margin).ceil();
    let path = format!("auth/token/create/{EXPIRY_ROLE}");
    let created = create_tokens(
        target,
        &path,
        tokens,
        args.lease_clients,
        false,
        move || {
            let ttl = ttl_until(due, unix_now());
            json!({ "policies": ["default"], "ttl": format!("{ttl}s") }).to_string()
        },
    )
    .await?;
    let ahead = due - unix_now();
    if ahead < 0.5 {
        return Err(format!(
            "creating {tokens} expiring tokens took {:.1} s, past the second they were due",
            created.as_secs_f64()
        ));
    }
    eprintln!(
        "   created {tokens} tokens due in {ahead:.1} s, in {:.1} s",
        created.as_secs_f64()
    );
    let prefix = format!("{BACKGROUND_PREFIX}/{EXPIRY_ROLE}");
    let present = count_leases(target, &prefix).await?;
    if present != tokens {
        return Err(format!(
            "{tokens} expiring tokens created, but {present} leases under {prefix}/"
        ));
    }
    // Counting starts a second early: with OpenBao some fall due before the second starts.
    tokio::time::sleep(Duration::from_secs_f64((ahead - 1.0).max(0.0))).await;
    let timeout = args.lease_timeout.as_secs_f64();
    let mut samples = Vec::new();
    loop {
        let remaining = count_leases(target, &prefix).await?;
        let at = unix_now() - due;
        samples.push((at, remaining));
        if remaining == 0 || at > timeout {
            break;
        }
        tokio::time::sleep(EXPIRY_POLL).await;
    }
    let result = Expiry {
        tokens,
        p50_secs: gone_by(&samples, tokens, tokens - tokens / 2),
        p99_secs: gone_by(&samples, tokens, tokens - tokens / 100),
        all_secs: gone_by(&samples, tokens, tokens),
        timeout_secs: timeout,
        samples,
    };
    eprintln!(
        "   expiry lag after the due second: half gone {}, 99% {}, all {}",
        seconds_or(result.p50_secs, timeout),
        seconds_or(result.p99_secs, timeout),
        seconds_or(result.all_secs, timeout)
    );
    Ok(result)
}

/// The time of the first sample by which at least `gone` of the `tokens` had disappeared.
/// `samples` are `(time, still present)`.
fn gone_by(samples: &[(f64, usize)], tokens: usize, gone: usize) -> Option<f64> {
    samples
        .iter()
        .find(|(_, remaining)| tokens.saturating_sub(*remaining) >= gone)
        .map(|(at, _)| *at)
}

/// How many leases `sys/leases/lookup/<prefix>/` lists (both servers answer 404 for none).
async fn count_leases(target: &Target, prefix: &str) -> Result<usize, String> {
    let path = format!("sys/leases/lookup/{prefix}/");
    let list = Method::from_bytes(b"LIST").map_err(|e| e.to_string())?;
    let (status, body) = target.send(list, &path, Some(&target.token), None).await?;
    if status == StatusCode::NOT_FOUND {
        return Ok(0);
    }
    if status != StatusCode::OK {
        return Err(format!(
            "LIST {path}: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let answer: Value =
        serde_json::from_slice(&body).map_err(|e| format!("LIST {path}: invalid JSON ({e})"))?;
    answer["data"]["keys"]
        .as_array()
        .map(Vec::len)
        .ok_or_else(|| format!("LIST {path}: no data.keys in the answer"))
}

/// SIGTERM, start again, and time until the root token's `auth/token/lookup-self` is served.
async fn restart(
    server: &Server,
    process: Process,
    keys: &InitKeys,
    clients: usize,
) -> Result<(Process, Arc<Target>, Restart), String> {
    process.stop().await?;
    let base = server.base();
    // A new client, as the old connections died with the process.
    let client = server::http_client(clients)?;
    let mut process = server.start()?;
    server::wait_for_health(&client, base, &mut process).await?;
    let start_to_health = process.started().elapsed();
    let clock = Instant::now();
    server::unseal(&client, base, &keys.unseal_key).await?;
    let unseal = clock.elapsed();
    let target = Arc::new(Target {
        client,
        base: base.to_owned(),
        token: keys.root_token.clone(),
        pid: process.pid(),
    });
    let unsealed = Instant::now();
    loop {
        // Until the server is active this fails or answers 5xx; either way, ask again.
        let answer = target
            .send(
                Method::GET,
                "auth/token/lookup-self",
                Some(&target.token),
                None,
            )
            .await;
        if matches!(answer, Ok((StatusCode::OK, _))) {
            break;
        }
        process.check_alive()?;
        if unsealed.elapsed() > FIRST_REQUEST_TIMEOUT {
            return Err(format!(
                "lookup-self not served within {FIRST_REQUEST_TIMEOUT:?} of the unseal: {answer:?}"
            ));
        }
        tokio::time::sleep(server::POLL_INTERVAL).await;
    }
    let unseal_to_first = unsealed.elapsed();
    let total = process.started().elapsed();
    settle(target.pid).await;
    let times = Restart {
        start_to_health_ms: start_to_health.as_secs_f64() * 1e3,
        unseal_ms: unseal.as_secs_f64() * 1e3,
        unseal_to_first_request_ms: unseal_to_first.as_secs_f64() * 1e3,
        total_ms: total.as_secs_f64() * 1e3,
        rss_bytes: machine::rss_bytes(target.pid),
    };
    Ok((process, target, times))
}

/// Times a synchronous `sys/leases/revoke-prefix/auth/token/create`, then counts the leases
/// left under the prefix until none is. A request that fails or does not answer within
/// `timeout` is a result, not an error: both servers cut requests off after a maximum duration
/// (90 s by default), and whether the revocation goes on in the background shows in the counts.
async fn revoke_prefix(
    target: &Target,
    leases: usize,
    timeout: Duration,
) -> Result<Revoke, String> {
    let mut revoke = Revoke {
        leases,
        request_secs: None,
        all_gone_secs: None,
        left: None,
        timeout_secs: timeout.as_secs_f64(),
        error: None,
    };
    let started = Instant::now();
    let answer = target
        .client
        .put(format!(
            "{}/v1/sys/leases/revoke-prefix/{BACKGROUND_PREFIX}",
            target.base
        ))
        .header("X-Vault-Token", &target.token)
        .timeout(timeout)
        .send()
        .await;
    let took = started.elapsed().as_secs_f64();
    match answer {
        Ok(response) if response.status().is_success() => revoke.request_secs = Some(took),
        Ok(response) => {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            revoke.error = Some(format!(
                "HTTP {} after {took:.0} s: {}",
                status.as_u16(),
                text.trim()
            ));
        }
        Err(e) if e.is_timeout() => revoke.error = Some(format!("no answer within {timeout:?}")),
        Err(e) => return Err(format!("revoke-prefix: {e}")),
    }
    let mut last = (usize::MAX, Instant::now());
    while started.elapsed() < timeout {
        let left = count_leases(target, BACKGROUND_PREFIX).await?;
        revoke.left = Some(left);
        if left == 0 {
            revoke.all_gone_secs = Some(started.elapsed().as_secs_f64());
            break;
        }
        if left != last.0 {
            last = (left, Instant::now());
        } else if last.1.elapsed() > REVOKE_STALLED {
            break;
        }
        tokio::time::sleep(REVOKE_POLL).await;
    }
    Ok(revoke)
}

#[derive(Debug, Clone, Serialize)]
pub struct LeasesReport {
    pub suite: &'static str,
    pub command: String,
    pub machine: Machine,
    pub clients: usize,
    pub expiry_tokens: usize,
    pub mayfly: LeaseServerReport,
    pub openbao: Option<LeaseServerReport>,
    /// Every Mayfly size served its first request after a restart within the goal.
    pub restart_goal_met: Option<bool>,
    /// At every Mayfly size, 99% of the expiring tokens were gone within the goal.
    pub expiry_goal_met: Option<bool>,
}

/// What a table cell shows.
enum Cell {
    Value(f64),
    /// Did not finish within this many seconds.
    Unfinished(f64),
    /// What happened instead of a value.
    Text(String),
    Missing,
}

#[derive(Clone, Copy)]
enum Unit {
    PerSec,
    Bytes,
    Secs,
}

/// One metric of the table: its label, unit, goal (an upper bound in seconds, on Mayfly) and
/// how to read it from a size's result.
struct Metric {
    label: &'static str,
    unit: Unit,
    goal: Option<f64>,
    read: fn(&SizeResult) -> Cell,
}

fn finished(value: Option<f64>, timeout: f64) -> Cell {
    value.map_or(Cell::Unfinished(timeout), Cell::Value)
}

const METRICS: [Metric; 13] = [
    Metric {
        label: "token creation rate",
        unit: Unit::PerSec,
        goal: None,
        read: |s| Cell::Value(s.create_per_sec),
    },
    Metric {
        label: "RSS after creation",
        unit: Unit::Bytes,
        goal: None,
        read: |s| s.rss_bytes.map_or(Cell::Missing, |b| Cell::Value(b as f64)),
    },
    Metric {
        label: "data directory on disk",
        unit: Unit::Bytes,
        goal: None,
        read: |s| Cell::Value(s.disk_bytes as f64),
    },
    Metric {
        label: "restart → first served request",
        unit: Unit::Secs,
        goal: Some(RESTART_GOAL_SECS),
        read: |s| Cell::Value(s.restart.total_ms / 1e3),
    },
    Metric {
        label: "  start → health answers",
        unit: Unit::Secs,
        goal: None,
        read: |s| Cell::Value(s.restart.start_to_health_ms / 1e3),
    },
    Metric {
        label: "  unseal request",
        unit: Unit::Secs,
        goal: None,
        read: |s| Cell::Value(s.restart.unseal_ms / 1e3),
    },
    Metric {
        label: "  unseal → lookup-self served",
        unit: Unit::Secs,
        goal: None,
        read: |s| Cell::Value(s.restart.unseal_to_first_request_ms / 1e3),
    },
    Metric {
        label: "RSS after restart, idle",
        unit: Unit::Bytes,
        goal: None,
        read: |s| {
            s.restart
                .rss_bytes
                .map_or(Cell::Missing, |b| Cell::Value(b as f64))
        },
    },
    Metric {
        label: "expiry lag, half gone",
        unit: Unit::Secs,
        goal: None,
        read: |s| finished(s.expiry.p50_secs, s.expiry.timeout_secs),
    },
    Metric {
        label: "expiry lag p99 (99% gone)",
        unit: Unit::Secs,
        goal: Some(EXPIRY_GOAL_SECS),
        read: |s| finished(s.expiry.p99_secs, s.expiry.timeout_secs),
    },
    Metric {
        label: "expiry lag, all gone",
        unit: Unit::Secs,
        goal: None,
        read: |s| finished(s.expiry.all_secs, s.expiry.timeout_secs),
    },
    Metric {
        label: "revoke-prefix of all N: request",
        unit: Unit::Secs,
        goal: None,
        read: |s| match (&s.revoke.request_secs, &s.revoke.error) {
            (Some(secs), _) => Cell::Value(*secs),
            (None, Some(error)) => Cell::Text(error.clone()),
            (None, None) => Cell::Missing,
        },
    },
    Metric {
        label: "revoke-prefix: all N gone",
        unit: Unit::Secs,
        goal: None,
        read: |s| match (s.revoke.all_gone_secs, s.revoke.left) {
            (Some(secs), _) => Cell::Value(secs),
            (None, Some(left)) => Cell::Text(format!(
                "{} left when counting stopped",
                thousands(left as f64)
            )),
            (None, None) => Cell::Unfinished(s.revoke.timeout_secs),
        },
    },
];

impl LeasesReport {
    pub fn new(
        command: String,
        machine: Machine,
        args: &Args,
        mayfly: LeaseServerReport,
        openbao: Option<LeaseServerReport>,
    ) -> LeasesReport {
        let goal = |ok: fn(&SizeResult) -> bool| {
            (!mayfly.sizes.is_empty()).then(|| mayfly.sizes.iter().all(ok))
        };
        LeasesReport {
            suite: "leases",
            command,
            machine,
            clients: args.lease_clients,
            expiry_tokens: args.expiry_leases,
            restart_goal_met: goal(|s| s.restart.total_ms <= RESTART_GOAL_SECS * 1e3),
            expiry_goal_met: goal(|s| s.expiry.p99_secs.is_some_and(|p| p <= EXPIRY_GOAL_SECS)),
            mayfly,
            openbao,
        }
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let bao = self.openbao.as_ref();
        // Writing to a String cannot fail; the results are ignored for that reason.
        let _ = writeln!(out, "## Token leases at scale: Mayfly vs OpenBao\n");
        let _ = writeln!(out, "- command: `{}`", self.command);
        let _ = writeln!(
            out,
            "- machine: {} cores (nproc), Linux {}, {}; load average at start {}",
            m.nproc, m.kernel, m.cpu, m.load_average
        );
        let _ = writeln!(
            out,
            "- data: {} ({}); tokens created by {} concurrent clients; {} tokens due in the \
             same second for the expiry rows",
            m.data_dir,
            m.data_filesystem,
            self.clients,
            thousands(self.expiry_tokens as f64)
        );
        for server in std::iter::once(&self.mayfly).chain(bao) {
            let _ = writeln!(
                out,
                "- {}: {} — storage `{}`",
                server.name, server.version, server.storage
            );
        }
        let mut sizes: Vec<usize> = std::iter::once(&self.mayfly)
            .chain(bao)
            .flat_map(|s| s.sizes.iter().map(|r| r.leases))
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        let _ = writeln!(
            out,
            "\n| metric | leases (N) | Mayfly | OpenBao | Mayfly/OpenBao | goal (Mayfly) |"
        );
        let _ = writeln!(out, "|---|--:|--:|--:|--:|---|");
        for metric in &METRICS {
            for &n in &sizes {
                let mine = self.mayfly.size(n).map_or(Cell::Missing, metric.read);
                let theirs = bao
                    .and_then(|b| b.size(n))
                    .map_or(Cell::Missing, metric.read);
                let ratio = match (&mine, &theirs) {
                    (Cell::Value(a), Cell::Value(b)) if *b != 0.0 => format!("{:.2}×", a / b),
                    _ => "–".into(),
                };
                let goal = match (metric.goal, &mine) {
                    (Some(limit), Cell::Value(v)) => {
                        let met = *v <= limit;
                        format!("≤ {limit} s: {}", if met { "met" } else { "missed" })
                    }
                    (Some(limit), Cell::Unfinished(_)) => format!("≤ {limit} s: missed"),
                    _ => String::new(),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {ratio} | {goal} |",
                    metric.label,
                    thousands(n as f64),
                    cell(&mine, metric.unit),
                    cell(&theirs, metric.unit),
                );
            }
        }
        let _ = writeln!(
            out,
            "\nMayfly/OpenBao above 1 is better for Mayfly on the creation rate, below 1 on \
             every other row. Expiry lag is counted from the start of the second the tokens \
             were due in; Mayfly rounds expiry to whole seconds, so all of them were due at that \
             instant, while OpenBao keeps the creation instant, so its tokens fell due within \
             ±0.5 s of it (its lag can read up to 0.5 s high, or negative). The restart rows \
             start at process spawn; revoke-prefix revokes the N tokens (the expiring ones are \
             gone by then)."
        );
        for (label, met, limit) in [
            (
                "restart → first served request",
                self.restart_goal_met,
                RESTART_GOAL_SECS,
            ),
            ("expiry lag p99", self.expiry_goal_met, EXPIRY_GOAL_SECS),
        ] {
            if let Some(met) = met {
                let _ = writeln!(
                    out,
                    "\nGoal: {label} ≤ {limit} s at every lease count: **{}**.",
                    if met { "met" } else { "missed" }
                );
            }
        }
        for server in std::iter::once(&self.mayfly).chain(bao) {
            if let Some(failure) = &server.failure {
                let _ = writeln!(out, "\n{} stopped early: {failure}", server.name);
            }
        }
        out
    }
}

fn cell(cell: &Cell, unit: Unit) -> String {
    match (cell, unit) {
        (Cell::Missing, _) => "–".into(),
        (Cell::Unfinished(limit), _) => format!("not within {limit:.0} s"),
        (Cell::Text(text), _) => text.replace('|', "\\|"),
        (Cell::Value(v), Unit::PerSec) => format!("{}/s", thousands(*v)),
        (Cell::Value(v), Unit::Bytes) => mib(*v as u64),
        (Cell::Value(v), Unit::Secs) => secs(*v),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn secs(value: f64) -> String {
    if value.abs() < 1.0 {
        millis(value * 1e3)
    } else {
        format!("{value:.2} s")
    }
}

fn seconds_or(value: Option<f64>, timeout: f64) -> String {
    cell(&finished(value, timeout), Unit::Secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_percentiles_from_counts() {
        // 10,000 tokens: all present before the due second, 60% left 0.1 s into it, 100 left
        // at 0.3 s, 99 at 0.4 s, none at 0.9 s.
        let samples = [
            (-0.5, 10_000),
            (0.0, 10_000),
            (0.1, 6_000),
            (0.2, 5_000),
            (0.3, 100),
            (0.4, 99),
            (0.9, 0),
        ];
        let n = 10_000;
        assert_eq!(gone_by(&samples, n, n - n / 2), Some(0.2));
        assert_eq!(gone_by(&samples, n, n - n / 100), Some(0.3));
        assert_eq!(gone_by(&samples, n, n), Some(0.9));
        // Never all gone: no answer rather than a wrong one.
        assert_eq!(gone_by(&samples[..6], n, n), None);
        assert_eq!(gone_by(&[], 1, 1), None);
        // Counting began after some were already gone.
        assert_eq!(gone_by(&[(0.1, 40)], 100, 50), Some(0.1));
    }

    #[test]
    fn ttl_lands_on_the_due_second() {
        assert_eq!(ttl_until(1000.0, 990.3), 10);
        assert_eq!(ttl_until(1000.0, 990.7), 9);
        // Mayfly's rounding of creation instant + TTL lands on the due second either way.
        for now in [990.3, 990.7, 990.499, 999.2] {
            assert_eq!((now + ttl_until(1000.0, now) as f64).round(), 1000.0);
        }
    }

    fn size(leases: usize, restart_ms: f64, p99: Option<f64>) -> SizeResult {
        SizeResult {
            leases,
            create_secs: 1.0,
            create_per_sec: leases as f64,
            rss_bytes: Some(64 << 20),
            disk_bytes: 10 << 20,
            expiry: Expiry {
                tokens: 100,
                p50_secs: Some(0.25),
                p99_secs: p99,
                all_secs: p99,
                timeout_secs: 300.0,
                samples: Vec::new(),
            },
            restart: Restart {
                start_to_health_ms: 10.0,
                unseal_ms: 5.0,
                unseal_to_first_request_ms: 1.0,
                total_ms: restart_ms,
                rss_bytes: Some(32 << 20),
            },
            revoke: Revoke {
                leases,
                request_secs: Some(2.0),
                all_gone_secs: Some(2.5),
                left: Some(0),
                timeout_secs: 300.0,
                error: None,
            },
        }
    }

    fn server(name: &str, sizes: Vec<SizeResult>) -> LeaseServerReport {
        LeaseServerReport {
            name: name.into(),
            version: "v0".into(),
            storage: "file".into(),
            sizes,
            failure: None,
        }
    }

    #[test]
    fn table_rows_ratios_and_goals() {
        let crate::args::Parsed::Run(args) =
            crate::args::parse(&["--mayfly".to_owned(), "m".to_owned()]).expect("valid flags")
        else {
            panic!("expected a run");
        };
        let machine = Machine::detect(Path::new("/"));
        let mut bao = size(1000, 400.0, None);
        bao.revoke.request_secs = None;
        bao.revoke.error = Some("HTTP 503 after 90 s: too long".into());
        bao.revoke.all_gone_secs = None;
        bao.revoke.left = Some(500);
        let report = LeasesReport::new(
            "bench".into(),
            machine,
            &args,
            server(
                "Mayfly",
                vec![size(1000, 40.0, Some(0.5)), size(2000, 1500.0, Some(0.6))],
            ),
            Some(server("OpenBao", vec![bao])),
        );
        assert_eq!(report.restart_goal_met, Some(false));
        assert_eq!(report.expiry_goal_met, Some(true));
        let text = report.markdown();
        assert!(
            text.contains("| token creation rate | 1,000 | 1,000/s | 1,000/s | 1.00× |  |"),
            "{text}"
        );
        assert!(
            text.contains(
                "| restart → first served request | 1,000 | 40.0 ms | 400 ms | 0.10× | ≤ 1 s: met |"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "| restart → first served request | 2,000 | 1.50 s | – | – | ≤ 1 s: missed |"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "| expiry lag p99 (99% gone) | 1,000 | 500 ms | not within 300 s | – | ≤ 2 s: met |"
            ),
            "{text}"
        );
        assert!(
            text.contains("| RSS after creation | 1,000 | 64.0 MiB |"),
            "{text}"
        );
    }
}
