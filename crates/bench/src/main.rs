//! `mayfly-bench`: runs Mayfly and OpenBao one after the other on this machine under the same
//! HTTP workloads and reports Mayfly/OpenBao ratios as a markdown table and, optionally, JSON.
//! The storage suite: durable cubbyhole writes, reads, a timed restart and unseal. The auth
//! suite: AppRole logins, token creates, KV v2 writes and reads with a non-root token, and the
//! cost of a token holding many policies. The audit suite (`audit.rs`) and the leases suite
//! (`leases.rs`) have reports of their own.

mod args;
mod audit;
mod auth;
mod database;
mod http1;
mod leases;
mod load;
mod machine;
mod report;
mod server;

use std::{path::Path, process::ExitCode, sync::Arc, time::Instant};

use crate::{
    args::{Args, Parsed, Suite, USAGE},
    load::{LevelResult, Plan, Store, Target, Workload},
    machine::Machine,
    report::{AclMicro, Report, ServerReport, UnsealTimes},
    server::{Kind, Server},
};

/// How many secrets are read back and compared after the restart and after the writes.
const VERIFY_SAMPLES: usize = 20;

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let args = match args::parse(&raw) {
        Ok(Parsed::Run(args)) => *args,
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // The load generator gets a fixed number of threads (one by default) so it cannot take
    // both cores from the server it measures; its CPU use is reported per level.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let command = shell_words(std::env::args());
    let work_dir = match &args.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            dir.clone()
        }
        None => std::env::temp_dir(),
    };
    let machine = Machine::detect(&work_dir);
    if machine.data_filesystem == "tmpfs" || machine.data_filesystem == "ramfs" {
        eprintln!(
            "warning: {} is on {}: fsync costs nothing there, so 'durable' writes are not; \
             pass --work-dir on a real disk",
            work_dir.display(),
            machine.data_filesystem
        );
    }

    if args.suite == Suite::Database {
        return database::run(&args, command, machine).await;
    }
    let bao_kind = Kind::OpenBao(args.bao_storage);
    match args.suite {
        Suite::Audit => {
            let mayfly = audit::bench_server(Kind::Mayfly, &args.mayfly, &args).await?;
            let openbao = match &args.bao {
                Some(bao) => Some(audit::bench_server(bao_kind, bao, &args).await?),
                None => None,
            };
            let report = audit::AuditReport::new(
                command,
                machine,
                args.duration.as_secs_f64(),
                args.client_threads,
                mayfly,
                openbao,
            );
            return emit(&report.markdown(), &report, &args);
        }
        Suite::Leases => {
            let mayfly =
                leases::bench_server(Kind::Mayfly, &args.mayfly, &args.lease_sizes, &args).await;
            let openbao = match &args.bao {
                Some(bao) if !args.bao_lease_sizes.is_empty() => {
                    Some(leases::bench_server(bao_kind, bao, &args.bao_lease_sizes, &args).await)
                }
                _ => None,
            };
            let report = leases::LeasesReport::new(command, machine, &args, mayfly, openbao);
            return emit(&report.markdown(), &report, &args);
        }
        Suite::Storage | Suite::Auth | Suite::All | Suite::Database => {}
    }

    let mayfly = bench_server(Kind::Mayfly, &args.mayfly, &args).await?;
    let openbao = match &args.bao {
        Some(bao) => Some(bench_server(bao_kind, bao, &args).await?),
        None => None,
    };

    let acl_micro = if args.suite.auth() && args.acl_micro > 0 {
        Some(acl_micro(args.acl_micro).await?)
    } else {
        None
    };

    let report = Report::new(
        command,
        machine,
        args.duration.as_secs_f64(),
        args.client_threads,
        mayfly,
        openbao,
        acl_micro,
    );
    emit(&report.markdown(), &report, &args)
}

/// Prints a suite's markdown and writes its JSON if asked to.
fn emit(markdown: &str, report: &impl serde::Serialize, args: &Args) -> Result<(), String> {
    print!("{markdown}");
    if let Some(path) = &args.json_out {
        write_json(path, report)?;
        eprintln!("JSON written to {}", path.display());
    }
    Ok(())
}

fn write_json(path: &Path, report: &impl serde::Serialize) -> Result<(), String> {
    let text =
        serde_json::to_string_pretty(report).map_err(|e| format!("serializing the report: {e}"))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    std::fs::write(path, text + "\n").map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Times `iterations` checks of Mayfly's in-process ACL microbenchmark (1,000 policies × 20
/// rules), here in this release binary, while no server runs.
async fn acl_micro(iterations: u32) -> Result<AclMicro, String> {
    let elapsed =
        tokio::task::spawn_blocking(move || mayfly_core::policy::bench_acl_check(iterations))
            .await
            .map_err(|e| format!("the ACL microbenchmark failed: {e}"))?;
    let micro = AclMicro {
        iterations,
        total_ms: elapsed.as_secs_f64() * 1e3,
        ns_per_check: elapsed.as_secs_f64() * 1e9 / f64::from(iterations),
    };
    eprintln!(
        "== ACL microbenchmark: {iterations} checks in {:.1} ms, {:.0} ns per check",
        micro.total_ms, micro.ns_per_check
    );
    Ok(micro)
}

/// Benchmarks one server: each selected suite starts it from a fresh data directory, which is
/// deleted afterwards.
async fn bench_server(kind: Kind, binary: &Path, args: &Args) -> Result<ServerReport, String> {
    let mut version = None;
    let mut unseal = None;
    let mut levels = Vec::new();
    let suites: [(&str, bool); 2] = [
        ("storage", args.suite.storage()),
        ("auth", args.suite.auth()),
    ];
    for (suite, _) in suites.into_iter().filter(|(_, selected)| *selected) {
        let server = Server::prepare(kind, binary, args.work_dir.as_deref())
            .map_err(|e| format!("{}: {e}", kind.name()))?;
        let version = match &version {
            Some(version) => version,
            None => version.insert(server.version().await),
        };
        eprintln!(
            "== {}: {version}; storage {} in {}; {suite} suite",
            kind.name(),
            kind.storage(),
            server.data_dir().display()
        );
        let outcome = match suite {
            "storage" => storage_suite(&server, args).await.map(|(times, results)| {
                unseal = Some(times);
                results
            }),
            _ => auth_suite(&server, args).await,
        };
        let results = outcome.map_err(|e| {
            format!(
                "{} ({suite} suite): {e}\n--- last lines of its log ---\n{}",
                kind.name(),
                server.log_tail()
            )
        })?;
        levels.extend(results);
    }
    Ok(ServerReport {
        name: kind.name().to_owned(),
        version: version.unwrap_or_default(),
        storage: kind.storage(),
        unseal,
        levels,
    })
}

/// Starts a fresh server, initializes and unseals it; returns the process and a target
/// holding the root token.
async fn start_fresh(
    server: &Server,
    connections: usize,
) -> Result<(server::Process, Arc<Target>, server::InitKeys), String> {
    let client = server::http_client(connections)?;
    let base = server.base();
    let mut process = server.start()?;
    server::wait_for_health(&client, base, &mut process).await?;
    let keys = server::init(&client, base).await?;
    server::unseal(&client, base, &keys.unseal_key).await?;
    server::wait_until_active(&client, base, &mut process).await?;
    let target = Arc::new(Target {
        client,
        base: base.to_owned(),
        token: keys.root_token.clone(),
        pid: process.pid(),
    });
    Ok((process, target, keys))
}

/// Durable cubbyhole writes and reads at every concurrency level, around a timed restart and
/// unseal.
async fn storage_suite(
    server: &Server,
    args: &Args,
) -> Result<(UnsealTimes, Vec<LevelResult>), String> {
    let base = server.base();
    let connections = args.levels.iter().copied().max().unwrap_or(1).max(16);

    // First life: initialize, unseal, store the secrets the timed restart has to come back to.
    let (process, target, keys) = start_fresh(server, connections).await?;
    let clock = Instant::now();
    let preloaded = load::preload(&target, args.preload).await?;
    eprintln!(
        "   preloaded {} secrets in {:.2} s",
        preloaded.len(),
        clock.elapsed().as_secs_f64()
    );
    let stop = process.stop().await?;

    // Second life: the timed restart. A new client, as the old connections died with the
    // process.
    let client = server::http_client(connections)?;
    let mut process = server.start()?;
    let status = server::wait_for_health(&client, base, &mut process).await?;
    let start_to_health = process.started().elapsed();
    if status != 503 {
        return Err(format!(
            "after a restart health should say sealed (503), it said {status}"
        ));
    }
    let clock = Instant::now();
    server::unseal(&client, base, &keys.unseal_key).await?;
    let unseal_request = clock.elapsed();
    server::wait_until_active(&client, base, &mut process).await?;
    let unseal_to_active = clock.elapsed();
    let unseal = UnsealTimes {
        preloaded_secrets: preloaded.len(),
        stop_ms: stop.as_secs_f64() * 1e3,
        start_to_sealed_health_ms: start_to_health.as_secs_f64() * 1e3,
        unseal_request_ms: unseal_request.as_secs_f64() * 1e3,
        unseal_to_active_ms: unseal_to_active.as_secs_f64() * 1e3,
    };
    eprintln!(
        "   restart: health after {:.1} ms, unseal request {:.1} ms, active after {:.1} ms",
        unseal.start_to_sealed_health_ms, unseal.unseal_request_ms, unseal.unseal_to_active_ms
    );
    let target = Arc::new(Target {
        client,
        base: base.to_owned(),
        token: keys.root_token,
        pid: process.pid(),
    });
    let root = target.token.clone();
    load::verify(&target, Store::Cubbyhole, &root, &preloaded, VERIFY_SAMPLES)
        .await
        .map_err(|e| format!("a preloaded secret did not survive the restart: {e}"))?;

    let mut levels = Vec::new();
    let mut written = Vec::new();
    let writes = Arc::new(Plan {
        token: root.clone(),
        ..Plan::default()
    });
    for &concurrency in &args.levels {
        let (result, keys) = load::run_level(
            &target,
            Workload::Write,
            concurrency,
            args.duration,
            &writes,
        )
        .await?;
        progress(&result);
        written.extend(keys);
        levels.push(result);
    }
    load::verify(&target, Store::Cubbyhole, &root, &written, VERIFY_SAMPLES)
        .await
        .map_err(|e| format!("reading back the benchmark's writes: {e}"))?;
    let reads = Arc::new(Plan {
        token: root,
        keys: Arc::new(written),
        ..Plan::default()
    });
    for &concurrency in &args.levels {
        let (result, _) =
            load::run_level(&target, Workload::Read, concurrency, args.duration, &reads).await?;
        progress(&result);
        levels.push(result);
    }
    process.stop().await?;
    Ok((unseal, levels))
}

/// AppRole logins, token creates, KV v2 writes and reads with a non-root token, then the same
/// reads with a one-policy token and with a token holding many policies; all at
/// `--auth-clients` concurrent clients.
async fn auth_suite(server: &Server, args: &Args) -> Result<Vec<LevelResult>, String> {
    let clients = args.auth_clients;
    let (process, target, _) = start_fresh(server, clients.max(16)).await?;
    let setup = auth::setup(&target).await?;
    let mut levels = Vec::new();
    let mut run = async |workload: Workload, plan: Plan| -> Result<Vec<String>, String> {
        let (result, written) =
            load::run_level(&target, workload, clients, args.duration, &Arc::new(plan)).await?;
        progress(&result);
        levels.push(result);
        Ok(written)
    };

    run(
        Workload::AppRoleLogin,
        Plan {
            login_body: setup.login_body.clone(),
            ..Plan::default()
        },
    )
    .await?;
    run(
        Workload::TokenCreate,
        Plan {
            token: target.token.clone(),
            ..Plan::default()
        },
    )
    .await?;
    let kv = Plan {
        token: setup.kv_token.clone(),
        ..Plan::default()
    };
    let written = run(Workload::KvWrite, kv.clone()).await?;
    load::verify(&target, Store::KvV2, &kv.token, &written, VERIFY_SAMPLES)
        .await
        .map_err(|e| format!("reading back the KV writes: {e}"))?;
    let keys = Arc::new(written);
    run(
        Workload::KvRead,
        Plan {
            keys: Arc::clone(&keys),
            ..kv
        },
    )
    .await?;

    let acl = auth::acl_setup(&target, args.acl_policies, args.acl_rules).await?;
    for (token, policies) in [(acl.one_policy, 1), (acl.many_policies, acl.count)] {
        // Also the first use of each token, so neither server compiles its ACL on the clock.
        load::verify(&target, Store::KvV2, &token, &keys, VERIFY_SAMPLES)
            .await
            .map_err(|e| format!("reading with a {policies}-policy token: {e}"))?;
        run(
            Workload::AclRead { policies },
            Plan {
                token,
                keys: Arc::clone(&keys),
                ..Plan::default()
            },
        )
        .await?;
    }
    process.stop().await?;
    Ok(levels)
}

fn progress(level: &LevelResult) {
    eprintln!(
        "   {} ×{}: {:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
        level.workload.label(),
        level.concurrency,
        level.ops_per_sec,
        level.latency_ms.p50,
        level.latency_ms.p99,
        level.errors
    );
}

/// The command line as a shell would need it typed, for the report.
fn shell_words(words: impl Iterator<Item = String>) -> String {
    words
        .map(|word| {
            let plain = !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
            if plain {
                word
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_quotes_only_when_needed() {
        let words = ["bench", "--work-dir", "/a b", "it's", "--duration=10"];
        assert_eq!(
            shell_words(words.iter().map(|w| w.to_string())),
            r"bench --work-dir '/a b' 'it'\''s' --duration=10"
        );
    }
}
