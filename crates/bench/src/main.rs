//! `mayfly-bench`: runs Mayfly and OpenBao one after the other on this machine under the same
//! HTTP workload (durable cubbyhole writes, reads, a timed restart and unseal) and reports
//! Mayfly/OpenBao ratios as a markdown table and, optionally, JSON.

mod args;
mod load;
mod machine;
mod report;
mod server;

use std::{path::Path, process::ExitCode, sync::Arc, time::Instant};

use crate::{
    args::{Args, Parsed, USAGE},
    load::{Target, Workload},
    machine::Machine,
    report::{Report, ServerReport, UnsealTimes},
    server::{Kind, Server},
};

/// How many secrets are read back and compared after the restart and after the writes.
const VERIFY_SAMPLES: usize = 20;

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let args = match args::parse(&raw) {
        Ok(Parsed::Run(args)) => args,
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

    let mayfly = bench_server(Kind::Mayfly, &args.mayfly, &args).await?;
    let openbao = match &args.bao {
        Some(bao) => Some(bench_server(Kind::OpenBao(args.bao_storage), bao, &args).await?),
        None => None,
    };

    let report = Report::new(
        command,
        machine,
        args.duration.as_secs_f64(),
        args.client_threads,
        mayfly,
        openbao,
    );
    print!("{}", report.markdown());
    if let Some(path) = &args.json_out {
        write_json(path, &report)?;
        eprintln!("JSON written to {}", path.display());
    }
    Ok(())
}

fn write_json(path: &Path, report: &Report) -> Result<(), String> {
    let text =
        serde_json::to_string_pretty(report).map_err(|e| format!("serializing the report: {e}"))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    std::fs::write(path, text + "\n").map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Benchmarks one server from a fresh data directory, which is deleted afterwards.
async fn bench_server(kind: Kind, binary: &Path, args: &Args) -> Result<ServerReport, String> {
    let server = Server::prepare(kind, binary, args.work_dir.as_deref())
        .map_err(|e| format!("{}: {e}", kind.name()))?;
    let version = server.version().await;
    eprintln!(
        "== {}: {version}; storage {} in {}",
        kind.name(),
        kind.storage(),
        server.data_dir().display()
    );
    drive(&server, args, version).await.map_err(|e| {
        format!(
            "{}: {e}\n--- last lines of its log ---\n{}",
            kind.name(),
            server.log_tail()
        )
    })
}

async fn drive(server: &Server, args: &Args, version: String) -> Result<ServerReport, String> {
    let base = server.base();
    let connections = args.levels.iter().copied().max().unwrap_or(1).max(16);

    // First life: initialize, unseal, store the secrets the timed restart has to come back to.
    let client = server::http_client(connections)?;
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
    load::verify(&target, &preloaded, VERIFY_SAMPLES)
        .await
        .map_err(|e| format!("a preloaded secret did not survive the restart: {e}"))?;

    let mut levels = Vec::new();
    let mut written = Vec::new();
    let no_keys = Arc::new(Vec::new());
    for &concurrency in &args.levels {
        let (result, keys) = load::run_level(
            &target,
            Workload::Write,
            concurrency,
            args.duration,
            &no_keys,
        )
        .await?;
        progress(&result);
        written.extend(keys);
        levels.push(result);
    }
    load::verify(&target, &written, VERIFY_SAMPLES)
        .await
        .map_err(|e| format!("reading back the benchmark's writes: {e}"))?;
    let written = Arc::new(written);
    for &concurrency in &args.levels {
        let (result, _) = load::run_level(
            &target,
            Workload::Read,
            concurrency,
            args.duration,
            &written,
        )
        .await?;
        progress(&result);
        levels.push(result);
    }
    process.stop().await?;

    Ok(ServerReport {
        name: server.kind().name().to_owned(),
        version,
        storage: server.kind().storage(),
        unseal,
        levels,
    })
}

fn progress(level: &load::LevelResult) {
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
