//! The audit suite: what a file audit device costs. Each server runs KV reads and AppRole
//! logins at every concurrency level without an audit device and with a file device enabled
//! just for that run, alternating the two in [`ROUNDS`] short rounds so that both see the same
//! server state and, as far as possible, the same load from the rest of the machine. The
//! report gives each server's audit cost and compares the two servers with auditing on.

use std::{fmt::Write as _, path::Path, sync::Arc, time::Duration};

use reqwest::Method;
use serde::Serialize;
use serde_json::json;

use crate::{
    args::Args,
    auth,
    load::{self, LevelResult, Plan, Target, Workload},
    machine::Machine,
    report::thousands,
    server::{Kind, Server},
};

/// The goal: a file audit device costs at most this share of Mayfly's throughput.
pub const COST_GOAL: f64 = 0.20;
/// Unmeasured load before a workload's first level, so that level does not run cold.
const WARM_UP: Duration = Duration::from_secs(1);
/// Where the device is mounted.
const DEVICE: &str = "bench-file";
/// Off/on alternations per level; each run lasts `--duration / ROUNDS`.
const ROUNDS: u32 = 4;

/// One workload at one level, without and with the audit device.
#[derive(Debug, Clone, Serialize)]
pub struct AuditPair {
    pub workload: Workload,
    pub concurrency: usize,
    pub without: LevelResult,
    pub with: LevelResult,
    /// Share of throughput lost to the device: `1 - with/without`.
    pub cost: f64,
    /// The cost is within [`COST_GOAL`] and no request failed, with or without the device.
    pub within_goal: bool,
}

impl AuditPair {
    fn new(
        workload: Workload,
        concurrency: usize,
        without: LevelResult,
        with: LevelResult,
    ) -> Self {
        let cost = if without.ops_per_sec > 0.0 {
            1.0 - with.ops_per_sec / without.ops_per_sec
        } else {
            0.0
        };
        let clean = without.errors == 0 && with.errors == 0;
        AuditPair {
            workload,
            concurrency,
            within_goal: clean && cost <= COST_GOAL,
            without,
            with,
            cost,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditServerReport {
    pub name: String,
    pub version: String,
    pub storage: String,
    pub pairs: Vec<AuditPair>,
}

impl AuditServerReport {
    fn pair(&self, workload: Workload, concurrency: usize) -> Option<&AuditPair> {
        self.pairs
            .iter()
            .find(|p| p.workload == workload && p.concurrency == concurrency)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub suite: &'static str,
    pub command: String,
    pub machine: Machine,
    pub duration_secs: f64,
    pub client_threads: usize,
    pub mayfly: AuditServerReport,
    pub openbao: Option<AuditServerReport>,
    /// Mayfly's highest audit cost over all levels.
    pub worst_cost: f64,
    /// Every one of Mayfly's rows is within the goal.
    pub goal_met: bool,
}

impl AuditReport {
    pub fn new(
        command: String,
        machine: Machine,
        duration_secs: f64,
        client_threads: usize,
        mayfly: AuditServerReport,
        openbao: Option<AuditServerReport>,
    ) -> AuditReport {
        let worst_cost = mayfly
            .pairs
            .iter()
            .map(|p| p.cost)
            .fold(f64::NEG_INFINITY, f64::max)
            .max(0.0);
        AuditReport {
            suite: "audit",
            command,
            machine,
            duration_secs,
            client_threads,
            goal_met: mayfly.pairs.iter().all(|p| p.within_goal),
            worst_cost,
            mayfly,
            openbao,
        }
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let bao = self.openbao.as_ref();
        // Writing to a String cannot fail; the results are ignored for that reason.
        let _ = writeln!(out, "## Audit cost: a file audit device on and off\n");
        let _ = writeln!(out, "- command: `{}`", self.command);
        let _ = writeln!(
            out,
            "- machine: {} cores (nproc), Linux {}, {}; load average at start {}",
            m.nproc, m.kernel, m.cpu, m.load_average
        );
        let _ = writeln!(
            out,
            "- data and audit log: {} ({}); {} s per run; load generator on {} thread(s)",
            m.data_dir, m.data_filesystem, self.duration_secs, self.client_threads
        );
        for server in std::iter::once(&self.mayfly).chain(bao) {
            let _ = writeln!(
                out,
                "- {}: {} — storage `{}`",
                server.name, server.version, server.storage
            );
        }
        let _ = writeln!(
            out,
            "\n| workload | clients | Mayfly, no audit | Mayfly, file audit | Mayfly audit cost \
             | OpenBao, no audit | OpenBao, file audit | OpenBao audit cost \
             | with audit: Mayfly/OpenBao | Mayfly cost ≤ {:.0}% |",
            COST_GOAL * 100.0
        );
        let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|");
        for pair in &self.mayfly.pairs {
            let peer = bao.and_then(|b| b.pair(pair.workload, pair.concurrency));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                pair.workload.label(),
                pair.concurrency,
                ops(&pair.without),
                ops(&pair.with),
                percent(pair.cost),
                peer.map_or("–".into(), |p| ops(&p.without)),
                peer.map_or("–".into(), |p| ops(&p.with)),
                peer.map_or("–".into(), |p| percent(p.cost)),
                peer.filter(|p| p.with.ops_per_sec > 0.0)
                    .map_or("–".into(), |p| format!(
                        "{:.2}×",
                        pair.with.ops_per_sec / p.with.ops_per_sec
                    )),
                if pair.within_goal { "met" } else { "missed" },
            );
        }
        let _ = writeln!(
            out,
            "\nThroughput in successful operations per second. Audit cost = 1 − (ops/s with the \
             device ÷ ops/s without), measured back to back at each level; negative means the \
             run with the device happened to be faster (noise)."
        );
        let _ = writeln!(
            out,
            "\nGoal: a file audit device costs ≤ {:.0}% of Mayfly's throughput at every level (a \
             level with a failed request misses) — worst level {}: **{}**.",
            COST_GOAL * 100.0,
            percent(self.worst_cost),
            if self.goal_met { "met" } else { "missed" }
        );
        let _ = writeln!(out, "\n### Details\n");
        let _ = writeln!(
            out,
            "| server | workload | clients | audit | ops | errors | p50 | p99 | server CPU | server CPU/op | disk written/op |"
        );
        let _ = writeln!(out, "|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|");
        for server in std::iter::once(&self.mayfly).chain(bao) {
            for pair in &server.pairs {
                for (audit, l) in [("off", &pair.without), ("file", &pair.with)] {
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {audit} | {} | {} | {:.2} ms | {:.2} ms | {:.0}% | {:.0} µs | {:.0} B |",
                        server.name,
                        l.workload.label(),
                        l.concurrency,
                        l.ops,
                        l.errors,
                        l.latency_ms.p50,
                        l.latency_ms.p99,
                        100.0 * l.server_cpu_secs / l.seconds,
                        l.server_cpu_us_per_op,
                        l.server_disk_write_bytes_per_op,
                    );
                }
            }
        }
        for server in std::iter::once(&self.mayfly).chain(bao) {
            for pair in &server.pairs {
                for l in [&pair.without, &pair.with]
                    .into_iter()
                    .filter(|l| l.errors > 0)
                {
                    let _ = writeln!(
                        out,
                        "\n{} {} ×{}: {} errors; first: {}",
                        server.name,
                        l.workload.label(),
                        l.concurrency,
                        l.errors,
                        l.first_error.as_deref().unwrap_or("?")
                    );
                }
            }
        }
        out
    }
}

fn ops(level: &LevelResult) -> String {
    thousands(level.ops_per_sec)
}

fn percent(fraction: f64) -> String {
    format!("{:.1}%", fraction * 100.0)
}

/// Several runs of one level as one: counts and times add up; latency percentiles are the
/// runs' percentiles weighted by their operations (an approximation: the samples themselves
/// are not kept).
fn merge(runs: &[LevelResult]) -> LevelResult {
    let mut total = runs[0].clone();
    for run in &runs[1..] {
        total.ops += run.ops;
        total.errors += run.errors;
        total.first_error = total.first_error.or_else(|| run.first_error.clone());
        total.seconds += run.seconds;
        total.server_cpu_secs += run.server_cpu_secs;
        total.client_cpu_secs += run.client_cpu_secs;
        total.latency_ms.max = total.latency_ms.max.max(run.latency_ms.max);
    }
    let ops = total.ops.max(1) as f64;
    let weighted = |pick: fn(&LevelResult) -> f64| {
        runs.iter().map(|r| pick(r) * r.ops as f64).sum::<f64>() / ops
    };
    total.latency_ms.mean = weighted(|r| r.latency_ms.mean);
    total.latency_ms.p50 = weighted(|r| r.latency_ms.p50);
    total.latency_ms.p90 = weighted(|r| r.latency_ms.p90);
    total.latency_ms.p99 = weighted(|r| r.latency_ms.p99);
    total.server_disk_write_bytes_per_op = weighted(|r| r.server_disk_write_bytes_per_op);
    total.ops_per_sec = total.ops as f64 / total.seconds;
    total.server_cpu_us_per_op = total.server_cpu_secs * 1e6 / ops;
    total
}

/// Enables the file device; each enable starts a new log file.
async fn enable_device(target: &Target, log: &Path) -> Result<(), String> {
    let body = json!({"type": "file", "options": {"file_path": log.display().to_string()}});
    auth::root_call(
        target,
        Method::PUT,
        &format!("sys/audit/{DEVICE}"),
        Some(body),
    )
    .await
    .map(drop)
}

async fn disable_device(target: &Target, log: &Path) -> Result<(), String> {
    auth::root_call(target, Method::DELETE, &format!("sys/audit/{DEVICE}"), None).await?;
    // The old file only takes disk space; the next enable writes a new one.
    let _ = std::fs::remove_file(log);
    Ok(())
}

/// Runs the audit suite on one server from a fresh data directory.
pub async fn bench_server(
    kind: Kind,
    binary: &Path,
    args: &Args,
) -> Result<AuditServerReport, String> {
    let server = Server::prepare(kind, binary, args.work_dir.as_deref())
        .map_err(|e| format!("{}: {e}", kind.name()))?;
    let version = server.version().await;
    eprintln!(
        "== {}: {version}; storage {} in {}; audit suite",
        kind.name(),
        kind.storage(),
        server.data_dir().display()
    );
    let pairs = drive(&server, args).await.map_err(|e| {
        format!(
            "{} (audit suite): {e}\n--- last lines of its log ---\n{}",
            kind.name(),
            server.log_tail()
        )
    })?;
    Ok(AuditServerReport {
        name: kind.name().to_owned(),
        version,
        storage: kind.storage(),
        pairs,
    })
}

/// The auth suite's setup (AppRole role, KV v2 mount, non-root KV token), then each workload
/// at each level without and with the device, alternated over [`ROUNDS`] slices.
async fn drive(server: &Server, args: &Args) -> Result<Vec<AuditPair>, String> {
    let connections = args.levels.iter().copied().max().unwrap_or(1).max(16);
    let (process, target, _) = crate::start_fresh(server, connections).await?;
    let setup = auth::setup(&target).await?;
    // A short unmeasured run of KV writes gives the reads their keys and warms the server up.
    let kv = Plan {
        token: setup.kv_token,
        ..Plan::default()
    };
    let (_, keys) = load::run_level(
        &target,
        Workload::KvWrite,
        16,
        WARM_UP,
        &Arc::new(kv.clone()),
    )
    .await?;
    let plans = [
        (
            Workload::KvRead,
            Plan {
                keys: Arc::new(keys),
                ..kv
            },
        ),
        (
            Workload::AppRoleLogin,
            Plan {
                login_body: setup.login_body,
                ..Plan::default()
            },
        ),
    ];
    let log = server.audit_log();
    let mut pairs = Vec::new();
    for (workload, plan) in plans {
        let plan = Arc::new(plan);
        load::run_level(&target, workload, 4, WARM_UP, &plan).await?;
        for &concurrency in &args.levels {
            let slice = args.duration / ROUNDS;
            let mut without = Vec::new();
            let mut with = Vec::new();
            for _ in 0..ROUNDS {
                let (result, _) =
                    load::run_level(&target, workload, concurrency, slice, &plan).await?;
                without.push(result);
                enable_device(&target, &log).await?;
                let (result, _) =
                    load::run_level(&target, workload, concurrency, slice, &plan).await?;
                with.push(result);
                disable_device(&target, &log).await?;
            }
            let pair = AuditPair::new(workload, concurrency, merge(&without), merge(&with));
            let (without, with, cost) = (&pair.without, &pair.with, pair.cost);
            eprintln!(
                "   {} ×{concurrency}: {:.0} ops/s without audit, {:.0} with a file device \
                 ({:.1}% cost; {} + {} errors)",
                workload.label(),
                without.ops_per_sec,
                with.ops_per_sec,
                cost * 100.0,
                without.errors,
                with.errors
            );
            pairs.push(pair);
        }
    }
    process.stop().await?;
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Latency;

    fn level(workload: Workload, concurrency: usize, ops_per_sec: f64) -> LevelResult {
        LevelResult {
            workload,
            concurrency,
            ops: (ops_per_sec * 10.0) as u64,
            errors: 0,
            first_error: None,
            seconds: 10.0,
            ops_per_sec,
            latency_ms: Latency::default(),
            server_cpu_secs: 5.0,
            server_cpu_us_per_op: 100.0,
            server_disk_write_bytes_per_op: 1500.0,
            client_cpu_secs: 2.0,
        }
    }

    fn pair(without: f64, with: f64) -> AuditPair {
        AuditPair::new(
            Workload::KvRead,
            16,
            level(Workload::KvRead, 16, without),
            level(Workload::KvRead, 16, with),
        )
    }

    fn server(name: &str, pairs: Vec<AuditPair>) -> AuditServerReport {
        AuditServerReport {
            name: name.into(),
            version: "v0".into(),
            storage: "file".into(),
            pairs,
        }
    }

    fn machine() -> Machine {
        Machine {
            nproc: 2,
            kernel: "6.1".into(),
            cpu: "cpu".into(),
            load_average: "0 0 0".into(),
            data_dir: "/tmp".into(),
            data_filesystem: "ext4".into(),
        }
    }

    #[test]
    fn runs_merge_into_one_level() {
        let mut a = level(Workload::KvRead, 16, 1000.0);
        a.latency_ms.p99 = 2.0;
        let mut b = level(Workload::KvRead, 16, 3000.0);
        b.latency_ms.p99 = 4.0;
        let merged = merge(&[a, b]);
        assert_eq!(merged.ops, 40_000);
        assert!((merged.ops_per_sec - 2000.0).abs() < 1e-9);
        assert!((merged.latency_ms.p99 - 3.5).abs() < 1e-9);
        assert!((merged.server_cpu_us_per_op - 250.0).abs() < 1e-9);
    }

    #[test]
    fn costs_goal_and_comparison() {
        let report = AuditReport::new(
            "bench --audit".into(),
            machine(),
            10.0,
            1,
            server("Mayfly", vec![pair(10000.0, 9000.0)]),
            Some(server("OpenBao", vec![pair(3000.0, 2000.0)])),
        );
        assert!((report.worst_cost - 0.1).abs() < 1e-9);
        assert!(report.goal_met);
        let text = report.markdown();
        assert!(
            text.contains(
                "| KV v2 read | 16 | 10,000 | 9,000 | 10.0% | 3,000 | 2,000 | 33.3% | 4.50× | met |"
            ),
            "{text}"
        );
        assert!(text.contains("**met**"), "{text}");

        let report = AuditReport::new(
            "b".into(),
            machine(),
            10.0,
            1,
            server("Mayfly", vec![pair(10000.0, 7000.0)]),
            None,
        );
        assert!(!report.goal_met);
        assert!(
            report
                .markdown()
                .contains("| 30.0% | – | – | – | – | missed |")
        );
    }
}
