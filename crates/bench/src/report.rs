//! The results: a markdown comparison table for people, and the same data as JSON for tools.

use std::fmt::Write as _;

use serde::Serialize;

use crate::{
    load::{LevelResult, Workload},
    machine::Machine,
};

/// The throughput the project's issue sets for durable writes at 64 writers on the 2-core box.
pub const WRITE_GOAL_OPS: f64 = 5000.0;
pub const WRITE_GOAL_WRITERS: usize = 64;

/// The auth/ACL issue's goal: at least this many times OpenBao's throughput on every one of
/// [`AUTH_GOAL_WORKLOADS`].
pub const AUTH_GOAL_RATIO: f64 = 4.0;
pub const AUTH_GOAL_WORKLOADS: [Workload; 4] = [
    Workload::AppRoleLogin,
    Workload::TokenCreate,
    Workload::KvWrite,
    Workload::KvRead,
];

/// A restart/unseal row of the table: its label and how to read its value.
type UnsealRow = (&'static str, fn(&UnsealTimes) -> f64);

/// Timings of a restart of a server holding the preloaded secrets.
#[derive(Debug, Clone, Serialize)]
pub struct UnsealTimes {
    pub preloaded_secrets: usize,
    /// SIGTERM until the process exited.
    pub stop_ms: f64,
    /// Process start until `sys/health` answered (sealed).
    pub start_to_sealed_health_ms: f64,
    /// Wall time of the single `sys/unseal` request.
    pub unseal_request_ms: f64,
    /// Start of the unseal request until health answered 200 (OpenBao's raft must also elect
    /// itself leader).
    pub unseal_to_active_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerReport {
    pub name: String,
    pub version: String,
    pub storage: String,
    /// Present when the storage suite ran.
    pub unseal: Option<UnsealTimes>,
    pub levels: Vec<LevelResult>,
}

impl ServerReport {
    fn level(&self, workload: Workload, concurrency: usize) -> Option<&LevelResult> {
        self.levels
            .iter()
            .find(|level| level.workload == workload && level.concurrency == concurrency)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ComparisonRow {
    pub workload: Workload,
    pub concurrency: usize,
    pub mayfly_ops_per_sec: f64,
    pub openbao_ops_per_sec: Option<f64>,
    /// Mayfly ops/s divided by OpenBao ops/s: above 1 means Mayfly is faster.
    pub ratio: Option<f64>,
    pub mayfly_p99_ms: f64,
    pub openbao_p99_ms: Option<f64>,
}

/// One auth-suite workload checked against the ≥ 4× OpenBao goal.
#[derive(Debug, Clone, Serialize)]
pub struct GoalRow {
    pub workload: Workload,
    pub ratio: Option<f64>,
    /// Reached the ratio, with no failed request on either server.
    pub met: bool,
}

/// What the extra policies of a many-policy token cost per request on one server: the same KV
/// v2 reads with a one-policy token and with the many-policy token.
#[derive(Debug, Clone, Serialize)]
pub struct AclCost {
    pub server: String,
    pub policies: usize,
    pub one_policy_ops_per_sec: f64,
    pub many_policies_ops_per_sec: f64,
    pub one_policy_cpu_us_per_op: f64,
    pub many_policies_cpu_us_per_op: f64,
    /// Server CPU per request, many-policy token minus one-policy token.
    pub extra_cpu_us_per_op: f64,
    pub one_policy_mean_ms: f64,
    pub many_policies_mean_ms: f64,
    /// Mean latency, many-policy token minus one-policy token.
    pub extra_mean_ms: f64,
}

impl AclCost {
    fn of(server: &ServerReport) -> Option<AclCost> {
        let one = server
            .levels
            .iter()
            .find(|l| l.workload == Workload::AclRead { policies: 1 })?;
        let (many, policies) = server.levels.iter().find_map(|l| match l.workload {
            Workload::AclRead { policies } if policies > 1 => Some((l, policies)),
            _ => None,
        })?;
        Some(AclCost {
            server: server.name.clone(),
            policies,
            one_policy_ops_per_sec: one.ops_per_sec,
            many_policies_ops_per_sec: many.ops_per_sec,
            one_policy_cpu_us_per_op: one.server_cpu_us_per_op,
            many_policies_cpu_us_per_op: many.server_cpu_us_per_op,
            extra_cpu_us_per_op: many.server_cpu_us_per_op - one.server_cpu_us_per_op,
            one_policy_mean_ms: one.latency_ms.mean,
            many_policies_mean_ms: many.latency_ms.mean,
            extra_mean_ms: many.latency_ms.mean - one.latency_ms.mean,
        })
    }
}

/// Mayfly's in-process ACL microbenchmark, `mayfly_core::policy::bench_acl_check`: checks
/// against one ACL compiled from 1,000 policies × 20 rules.
#[derive(Debug, Clone, Serialize)]
pub struct AclMicro {
    pub iterations: u32,
    pub total_ms: f64,
    pub ns_per_check: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub command: String,
    pub machine: Machine,
    pub duration_secs: f64,
    pub concurrency: Vec<usize>,
    pub client_threads: usize,
    pub mayfly: ServerReport,
    pub openbao: Option<ServerReport>,
    pub comparison: Vec<ComparisonRow>,
    /// Whether Mayfly reached the durable-write goal; absent when 64 writers were not run.
    pub write_goal_met: Option<bool>,
    /// The auth-suite workloads against the ≥ 4× OpenBao goal; empty without OpenBao or the
    /// auth suite.
    pub auth_goal: Vec<GoalRow>,
    /// Whether every row of `auth_goal` met it; absent when it is empty.
    pub auth_goal_met: Option<bool>,
    pub acl_cost: Vec<AclCost>,
    pub acl_micro: Option<AclMicro>,
}

impl Report {
    pub fn new(
        command: String,
        machine: Machine,
        duration_secs: f64,
        client_threads: usize,
        mayfly: ServerReport,
        openbao: Option<ServerReport>,
        acl_micro: Option<AclMicro>,
    ) -> Report {
        let mut comparison = Vec::new();
        for level in &mayfly.levels {
            let peer = openbao
                .as_ref()
                .and_then(|bao| bao.level(level.workload, level.concurrency));
            comparison.push(ComparisonRow {
                workload: level.workload,
                concurrency: level.concurrency,
                mayfly_ops_per_sec: level.ops_per_sec,
                openbao_ops_per_sec: peer.map(|p| p.ops_per_sec),
                ratio: peer
                    .filter(|p| p.ops_per_sec > 0.0)
                    .map(|p| level.ops_per_sec / p.ops_per_sec),
                mayfly_p99_ms: level.latency_ms.p99,
                openbao_p99_ms: peer.map(|p| p.latency_ms.p99),
            });
        }
        let write_goal_met = mayfly
            .level(Workload::Write, WRITE_GOAL_WRITERS)
            .map(|level| level.errors == 0 && level.ops_per_sec >= WRITE_GOAL_OPS);
        let mut auth_goal = Vec::new();
        if let Some(bao) = &openbao {
            for workload in AUTH_GOAL_WORKLOADS {
                let Some(mine) = mayfly.levels.iter().find(|l| l.workload == workload) else {
                    continue;
                };
                let theirs = bao.levels.iter().find(|l| l.workload == workload);
                let ratio = theirs
                    .filter(|t| t.ops_per_sec > 0.0)
                    .map(|t| mine.ops_per_sec / t.ops_per_sec);
                let clean = mine.errors == 0 && theirs.is_some_and(|t| t.errors == 0);
                auth_goal.push(GoalRow {
                    workload,
                    ratio,
                    met: clean && ratio.is_some_and(|r| r >= AUTH_GOAL_RATIO),
                });
            }
        }
        let auth_goal_met = (!auth_goal.is_empty()).then(|| auth_goal.iter().all(|row| row.met));
        let acl_cost = std::iter::once(&mayfly)
            .chain(openbao.as_ref())
            .filter_map(AclCost::of)
            .collect();
        let mut concurrency: Vec<usize> = mayfly.levels.iter().map(|l| l.concurrency).collect();
        concurrency.sort_unstable();
        concurrency.dedup();
        Report {
            command,
            machine,
            duration_secs,
            concurrency,
            client_threads,
            mayfly,
            openbao,
            comparison,
            write_goal_met,
            auth_goal,
            auth_goal_met,
            acl_cost,
            acl_micro,
        }
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let bao = self.openbao.as_ref();
        // Writing to a String cannot fail; the results are ignored for that reason.
        let _ = writeln!(out, "## Mayfly vs OpenBao\n");
        let _ = writeln!(out, "- command: `{}`", self.command);
        let _ = writeln!(
            out,
            "- machine: {} cores (nproc), Linux {}, {}; load average at start {}",
            m.nproc, m.kernel, m.cpu, m.load_average
        );
        let _ = writeln!(
            out,
            "- data: {} ({}); {} s per level; load generator on {} thread(s)",
            m.data_dir, m.data_filesystem, self.duration_secs, self.client_threads
        );
        for server in std::iter::once(&self.mayfly).chain(bao) {
            let _ = writeln!(
                out,
                "- {}: {} — storage `{}`",
                server.name, server.version, server.storage
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "| workload | clients | Mayfly ops/s | OpenBao ops/s | ratio (Mayfly/OpenBao) | Mayfly p99 | OpenBao p99 |"
        );
        let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|");
        for row in &self.comparison {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                row.workload.label(),
                row.concurrency,
                thousands(row.mayfly_ops_per_sec),
                row.openbao_ops_per_sec.map_or("–".into(), thousands),
                row.ratio.map_or("–".into(), |r| format!("{r:.2}×")),
                millis(row.mayfly_p99_ms),
                row.openbao_p99_ms.map_or("–".into(), millis),
            );
        }
        let unseal_rows: [UnsealRow; 4] = [
            ("restart: start → health answers (sealed)", |u| {
                u.start_to_sealed_health_ms
            }),
            ("unseal request", |u| u.unseal_request_ms),
            ("unseal → active (health 200)", |u| u.unseal_to_active_ms),
            ("stop: SIGTERM → exit", |u| u.stop_ms),
        ];
        let mayfly_unseal = self.mayfly.unseal.as_ref();
        for (i, (label, value)) in unseal_rows.into_iter().enumerate() {
            let Some(unseal) = mayfly_unseal else {
                break;
            };
            let label = if i == 0 {
                format!("{label}, {} secrets stored", unseal.preloaded_secrets)
            } else {
                label.to_owned()
            };
            let mine = value(unseal);
            let theirs = bao.and_then(|b| b.unseal.as_ref()).map(value);
            let _ = writeln!(
                out,
                "| {label} | – | {} | {} | {} | – | – |",
                millis(mine),
                theirs.map_or("–".into(), millis),
                theirs
                    .filter(|t| *t > 0.0)
                    .map_or("–".into(), |t| format!("{:.2}×", mine / t)),
            );
        }
        let _ = writeln!(
            out,
            "\nOps rows: ratio above 1 means Mayfly is faster.{}",
            if mayfly_unseal.is_some() {
                " Restart/unseal rows hold times, not rates: there a ratio below 1 means Mayfly \
                 is faster."
            } else {
                ""
            }
        );
        if let Some(met) = self.write_goal_met {
            let achieved = self
                .mayfly
                .level(Workload::Write, WRITE_GOAL_WRITERS)
                .map_or(0.0, |l| l.ops_per_sec);
            let _ = writeln!(
                out,
                "\nGoal: ≥ {} durable writes/s at {WRITE_GOAL_WRITERS} writers — Mayfly did {}: **{}**.",
                thousands(WRITE_GOAL_OPS),
                thousands(achieved),
                if met { "met" } else { "missed" }
            );
        }
        if let Some(met) = self.auth_goal_met {
            let _ = writeln!(
                out,
                "\nGoal: ≥ {AUTH_GOAL_RATIO:.0}× OpenBao on every auth-suite throughput: **{}**.\n",
                if met { "met" } else { "missed" }
            );
            for row in &self.auth_goal {
                let _ = writeln!(
                    out,
                    "- {}: {} — {}",
                    row.workload.label(),
                    row.ratio.map_or("–".into(), |r| format!("{r:.2}×")),
                    if row.met { "met" } else { "missed" }
                );
            }
        }
        if !self.acl_cost.is_empty() {
            let policies = self.acl_cost[0].policies;
            let _ = writeln!(
                out,
                "\n### Cost of many policies\n\nThe same KV v2 reads with a token holding 1 policy \
                 and with one holding {} policies (neither with `default`); the difference is \
                 what the extra policies cost per request.\n",
                thousands(policies as f64)
            );
            let _ = writeln!(
                out,
                "| server | policies | ops/s, 1 policy | ops/s, many | server CPU/op, 1 policy | server CPU/op, many | extra CPU per request | mean latency, 1 policy | mean latency, many | extra latency per request |"
            );
            let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
            for cost in &self.acl_cost {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {:.0} µs | {:.0} µs | {:+.0} µs | {} | {} | {:+.2} ms |",
                    cost.server,
                    thousands(cost.policies as f64),
                    thousands(cost.one_policy_ops_per_sec),
                    thousands(cost.many_policies_ops_per_sec),
                    cost.one_policy_cpu_us_per_op,
                    cost.many_policies_cpu_us_per_op,
                    cost.extra_cpu_us_per_op,
                    millis(cost.one_policy_mean_ms),
                    millis(cost.many_policies_mean_ms),
                    cost.extra_mean_ms,
                );
            }
        }
        if let Some(micro) = &self.acl_micro {
            let _ = writeln!(
                out,
                "\nIn-process ACL microbenchmark (`mayfly_core::policy::bench_acl_check`, one ACL of \
                 1,000 policies × 20 rules, release build): {} checks in {:.1} ms, **{:.0} ns per \
                 check**.",
                thousands(f64::from(micro.iterations)),
                micro.total_ms,
                micro.ns_per_check
            );
        }

        let _ = writeln!(out, "\n### Details\n");
        let _ = writeln!(
            out,
            "| server | workload | clients | ops | errors | p50 | p90 | p99 | max | server CPU | server CPU/op | disk written/op | client CPU |"
        );
        let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        for server in std::iter::once(&self.mayfly).chain(bao) {
            for l in &server.levels {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0}% | {:.0} µs | {} | {:.0}% |",
                    server.name,
                    l.workload.label(),
                    l.concurrency,
                    l.ops,
                    l.errors,
                    millis(l.latency_ms.p50),
                    millis(l.latency_ms.p90),
                    millis(l.latency_ms.p99),
                    millis(l.latency_ms.max),
                    100.0 * l.server_cpu_secs / l.seconds,
                    l.server_cpu_us_per_op,
                    bytes(l.server_disk_write_bytes_per_op),
                    100.0 * l.client_cpu_secs / l.seconds,
                );
            }
        }
        let _ = writeln!(
            out,
            "\nCPU columns are percent of one core over the level (200% = both cores)."
        );
        for server in std::iter::once(&self.mayfly).chain(bao) {
            for l in server.levels.iter().filter(|l| l.errors > 0) {
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
        out
    }
}

/// `12345.6` → `12,346`.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Milliseconds with precision that suits the magnitude.
pub fn millis(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

fn bytes(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.1} KiB", value / 1024.0)
    } else {
        format!("{value:.0} B")
    }
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
            latency_ms: Latency {
                p99: 2.0,
                ..Latency::default()
            },
            server_cpu_secs: 5.0,
            server_cpu_us_per_op: 100.0,
            server_disk_write_bytes_per_op: 4096.0,
            client_cpu_secs: 2.0,
        }
    }

    fn server(name: &str, write64: f64) -> ServerReport {
        ServerReport {
            name: name.into(),
            version: "v0".into(),
            storage: "file".into(),
            unseal: Some(UnsealTimes {
                preloaded_secrets: 2000,
                stop_ms: 5.0,
                start_to_sealed_health_ms: 20.0,
                unseal_request_ms: 10.0,
                unseal_to_active_ms: 12.0,
            }),
            levels: vec![
                level(Workload::Write, 64, write64),
                level(Workload::Read, 64, 20000.0),
            ],
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
    fn ratios_and_goal() {
        let report = Report::new(
            "bench".into(),
            machine(),
            10.0,
            1,
            server("Mayfly", 6000.0),
            Some(server("OpenBao", 2000.0)),
            None,
        );
        assert_eq!(report.comparison[0].ratio, Some(3.0));
        assert_eq!(report.write_goal_met, Some(true));
        let text = report.markdown();
        assert!(
            text.contains("| durable write | 64 | 6,000 | 2,000 | 3.00× |"),
            "{text}"
        );
        assert!(text.contains("**met**"), "{text}");
        let json = serde_json::to_value(&report).expect("the report serializes");
        assert_eq!(json["comparison"][0]["ratio"], 3.0);
        assert_eq!(report.auth_goal_met, None, "the auth suite did not run");
        assert!(!text.contains("Cost of many policies"), "{text}");
    }

    /// An auth-suite server: `speed` scales its throughput, `acl_cpu` is its CPU per request
    /// with the many-policy token.
    fn auth_server(name: &str, speed: f64, acl_cpu: f64) -> ServerReport {
        let mut levels: Vec<LevelResult> = AUTH_GOAL_WORKLOADS
            .iter()
            .map(|w| level(*w, 16, 1000.0 * speed))
            .collect();
        levels.push(level(Workload::AclRead { policies: 1 }, 16, 1000.0 * speed));
        let mut many = level(Workload::AclRead { policies: 1001 }, 16, 500.0 * speed);
        many.server_cpu_us_per_op = acl_cpu;
        many.latency_ms.mean = 3.0;
        levels.push(many);
        ServerReport {
            name: name.into(),
            version: "v0".into(),
            storage: "file".into(),
            unseal: None,
            levels,
        }
    }

    #[test]
    fn auth_goal_and_acl_cost() {
        let mut mayfly = auth_server("Mayfly", 5.0, 150.0);
        // Token creates only 3× faster: that row misses.
        mayfly.levels[1].ops_per_sec = 3000.0;
        let micro = AclMicro {
            iterations: 1000,
            total_ms: 0.5,
            ns_per_check: 500.0,
        };
        let report = Report::new(
            "bench".into(),
            machine(),
            10.0,
            1,
            mayfly,
            Some(auth_server("OpenBao", 1.0, 5100.0)),
            Some(micro),
        );
        assert_eq!(report.auth_goal.len(), 4);
        assert!(report.auth_goal[0].met);
        assert!(!report.auth_goal[1].met);
        assert_eq!(report.auth_goal_met, Some(false));
        assert_eq!(report.write_goal_met, None);
        assert_eq!(report.acl_cost.len(), 2);
        assert_eq!(report.acl_cost[0].policies, 1001);
        assert_eq!(report.acl_cost[0].extra_cpu_us_per_op, 50.0);
        assert_eq!(report.acl_cost[1].extra_cpu_us_per_op, 5000.0);
        let text = report.markdown();
        assert!(text.contains("- AppRole login: 5.00× — met"), "{text}");
        assert!(text.contains("- token create: 3.00× — missed"), "{text}");
        assert!(
            text.contains("| KV v2 read, token with 1,001 policies | 16 | 2,500 | 500 | 5.00× |"),
            "{text}"
        );
        assert!(text.contains("| OpenBao | 1,001 |"), "{text}");
        assert!(text.contains("+5000 µs"), "{text}");
        assert!(text.contains("**500 ns per check**"), "{text}");
        assert!(
            !text.contains("restart:"),
            "no storage suite, no restart rows: {text}"
        );
    }

    #[test]
    fn mayfly_alone() {
        let report = Report::new(
            "b".into(),
            machine(),
            1.0,
            1,
            server("Mayfly", 10.0),
            None,
            None,
        );
        assert_eq!(report.comparison[0].ratio, None);
        assert_eq!(report.write_goal_met, Some(false));
        assert!(report.markdown().contains("| 10 | – | – |"));
    }

    #[test]
    fn number_formats() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1234567.0), "1,234,567");
        assert_eq!(millis(0.123), "0.12 ms");
        assert_eq!(millis(12.34), "12.3 ms");
        assert_eq!(millis(1234.0), "1234 ms");
    }
}
