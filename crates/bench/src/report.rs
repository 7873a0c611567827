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
    pub unseal: UnsealTimes,
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
}

impl Report {
    pub fn new(
        command: String,
        machine: Machine,
        duration_secs: f64,
        client_threads: usize,
        mayfly: ServerReport,
        openbao: Option<ServerReport>,
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
        let mut concurrency: Vec<usize> = mayfly.levels.iter().map(|l| l.concurrency).collect();
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
        for (i, (label, value)) in unseal_rows.into_iter().enumerate() {
            let label = if i == 0 {
                format!(
                    "{label}, {} secrets stored",
                    self.mayfly.unseal.preloaded_secrets
                )
            } else {
                label.to_owned()
            };
            let mine = value(&self.mayfly.unseal);
            let theirs = bao.map(|b| value(&b.unseal));
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
            "\nOps rows: ratio above 1 means Mayfly is faster. Restart/unseal rows hold times, not \
             rates: there a ratio below 1 means Mayfly is faster."
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
fn thousands(value: f64) -> String {
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
fn millis(ms: f64) -> String {
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
            unseal: UnsealTimes {
                preloaded_secrets: 2000,
                stop_ms: 5.0,
                start_to_sealed_health_ms: 20.0,
                unseal_request_ms: 10.0,
                unseal_to_active_ms: 12.0,
            },
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
    }

    #[test]
    fn mayfly_alone() {
        let report = Report::new("b".into(), machine(), 1.0, 1, server("Mayfly", 10.0), None);
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
