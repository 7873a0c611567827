//! `mayfly server`: loads the config, opens storage, builds the core, serves the listeners,
//! reopens audit files on SIGHUP, and shuts down gracefully on SIGINT/SIGTERM.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use mayfly_core::{Core, CoreConfig};
use mayfly_http::{HttpLimits, HttpState, TlsMinVersion, TlsOptions};
use tokio::{net::TcpListener, sync::watch};

use crate::config::{Config, ListenerConfig, LogFormat, TlsVersion};

const USAGE: &str = "Usage: mayfly server [options]

  Starts a Mayfly server that responds to API requests.

Options:
  -config=<path>               Path to a configuration file (HCL or JSON).
  -dev                         Development mode: in-memory, initialized, unsealed.
  -dev-root-token-id=<string>  Root token ID to use in dev mode.
  -dev-listen-address=<addr>   Address to listen on in dev mode (127.0.0.1:8200).
  -log-level=<level>           trace, debug, info, warn or error.
  -log-format=<format>         text or json.
";

struct ServerFlags {
    config: Option<PathBuf>,
    dev: bool,
    dev_root_token_id: Option<String>,
    dev_listen_address: String,
    log_level: Option<String>,
    log_format: Option<String>,
}

fn parse_flags(args: &[String]) -> Result<ServerFlags, String> {
    let mut flags = ServerFlags {
        config: None,
        dev: false,
        dev_root_token_id: None,
        dev_listen_address: "127.0.0.1:8200".to_owned(),
        log_level: None,
        log_format: None,
    };
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (flag, None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match &inline {
                Some(value) => Ok(value.clone()),
                None => iter
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("flag needs an argument: -{name}")),
            }
        };
        match name {
            "config" => flags.config = Some(PathBuf::from(value(name)?)),
            "dev" => flags.dev = inline.as_deref().is_none_or(|v| v == "true" || v == "1"),
            "dev-root-token-id" => flags.dev_root_token_id = Some(value(name)?),
            "dev-listen-address" => flags.dev_listen_address = value(name)?,
            "log-level" => flags.log_level = Some(value(name)?),
            "log-format" => flags.log_format = Some(value(name)?),
            "h" | "help" => return Err(String::new()),
            other => return Err(format!("flag provided but not defined: -{other}")),
        }
    }
    if flags.config.is_none() && !flags.dev {
        return Err("a configuration file must be given with -config, or use -dev".to_owned());
    }
    Ok(flags)
}

fn dev_config(address: &str) -> Config {
    let (mut config, _) = Config::parse(
        r#"storage "inmem" {}
           listener "tcp" { tls_disable = true }"#,
        crate::config::ConfigFormat::Hcl,
    )
    .expect("the built-in dev configuration is valid");
    config.listeners[0].address = address.to_owned();
    config
}

fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MAYFLY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Runs the server; returns the process exit code.
pub(crate) async fn run(args: &[String]) -> i32 {
    let flags = match parse_flags(args) {
        Ok(flags) => flags,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("Error: {message}\n");
            }
            eprint!("{USAGE}");
            return if message.is_empty() { 0 } else { 1 };
        }
    };
    let (mut config, warnings) = match &flags.config {
        Some(path) if !flags.dev => match Config::load(path) {
            Ok(loaded) => loaded,
            Err(err) => {
                eprintln!("Error loading configuration from {}: {err}", path.display());
                return 1;
            }
        },
        _ => (dev_config(&flags.dev_listen_address), Vec::new()),
    };
    if let Some(format) = &flags.log_format {
        config.log_format = match format.as_str() {
            "json" => LogFormat::Json,
            "text" | "standard" => LogFormat::Text,
            other => {
                eprintln!("Error: unknown log format {other:?}");
                return 1;
            }
        };
    }
    let level = flags
        .log_level
        .clone()
        .or_else(|| config.log_level.clone())
        .unwrap_or_else(|| "info".to_owned());
    init_logging(&level, config.log_format);
    for warning in warnings {
        tracing::warn!("Configuration: {warning}.");
    }
    match serve(flags, config).await {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("Error: {message}");
            1
        }
    }
}

async fn serve(flags: ServerFlags, config: Config) -> Result<(), String> {
    let storage = crate::registry::open_storage(&config.storage)?;
    let core = Core::new(
        storage,
        CoreConfig {
            default_lease_ttl: config.default_lease_ttl,
            max_lease_ttl: config.max_lease_ttl,
            cluster_name: config.cluster_name.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            registry: crate::registry::builtin_backends(),
        },
    );

    let mut bound = Vec::new();
    for listener in &config.listeners {
        bound.push(bind(listener).await?);
    }

    if flags.dev {
        start_dev(&core, flags.dev_root_token_id.clone(), &bound).await?;
    }

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for (listener_config, tcp, tls) in bound {
        let limits = HttpLimits {
            max_request_size: listener_config
                .max_request_size
                .unwrap_or(mayfly_http::handler::DEFAULT_MAX_REQUEST_SIZE),
            max_request_duration: listener_config
                .max_request_duration
                .unwrap_or(mayfly_http::handler::DEFAULT_MAX_REQUEST_DURATION),
        };
        let state = Arc::new(HttpState {
            core: core.clone(),
            limits,
        });
        let mut rx = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            mayfly_http::serve(tcp, tls, state, shutdown).await
        }));
    }
    tracing::info!("Mayfly server started.");

    wait_for_signal(&core).await;
    tracing::info!("Shutting down: finishing in-flight requests.");
    let _ = shutdown_tx.send(true);
    for task in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "Listener stopped with an error."),
            Err(err) => tracing::warn!(error = %err, "Listener task failed."),
        }
    }
    // The audit chains end with a signed checkpoint, so a clean stop leaves no unsigned tail.
    core.shutdown().await;
    // Storage is closed when the last reference to the core drops; give writers a moment.
    drop(core);
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}

type BoundListener = (
    ListenerConfig,
    TcpListener,
    Option<Arc<rustls::ServerConfig>>,
);

async fn bind(listener: &ListenerConfig) -> Result<BoundListener, String> {
    let address: SocketAddr = tokio::net::lookup_host(&listener.address)
        .await
        .ok()
        .and_then(|mut addresses| addresses.next())
        .ok_or_else(|| {
            format!(
                "listener.tcp.address: cannot resolve {:?}",
                listener.address
            )
        })?;
    let tcp = TcpListener::bind(address)
        .await
        .map_err(|err| format!("listener.tcp.address: cannot listen on {address}: {err}"))?;
    let tls = if listener.tls_disable {
        None
    } else {
        let options = TlsOptions {
            cert_file: listener.tls_cert_file.clone().unwrap_or_default(),
            key_file: listener.tls_key_file.clone().unwrap_or_default(),
            client_ca_file: listener.tls_client_ca_file.clone(),
            min_version: match listener.tls_min_version {
                TlsVersion::Tls12 => TlsMinVersion::Tls12,
                TlsVersion::Tls13 => TlsMinVersion::Tls13,
            },
        };
        Some(mayfly_http::server_config(&options).map_err(|err| err.to_string())?)
    };
    let local = tcp.local_addr().map_err(|err| err.to_string())?;
    println!(
        "Listener: tcp (addr: \"{local}\", tls: \"{}\")",
        if tls.is_some() { "enabled" } else { "disabled" }
    );
    Ok((listener.clone(), tcp, tls))
}

async fn start_dev(
    core: &Arc<Core>,
    root_token_id: Option<String>,
    bound: &[BoundListener],
) -> Result<(), String> {
    let init = core
        .initialize(1, 1, root_token_id)
        .await
        .map_err(|err| format!("dev mode init failed: {err}"))?;
    for key in &init.keys {
        core.submit_unseal_key(key)
            .await
            .map_err(|err| format!("dev mode unseal failed: {err}"))?;
    }
    // As in Vault's dev mode, a KV version 2 engine waits at secret/.
    let mut secret = mayfly_core::mounts::MountEntry::new(
        mayfly_core::mounts::MountClass::Secret,
        "secret/",
        "kv",
        "key/value secret storage",
    );
    secret.options.insert("version".into(), "2".into());
    core.unsealed()
        .map_err(|err| format!("dev mode: {err}"))?
        .mounts
        .enable(secret)
        .await
        .map_err(|err| format!("dev mode: cannot mount secret/: {err}"))?;
    let address = bound
        .first()
        .and_then(|(_, tcp, _)| tcp.local_addr().ok())
        .map(|addr| format!("http://{addr}"))
        .unwrap_or_default();
    // Like Vault's dev mode, the CLI on this machine is logged in right away.
    if let Some(home) = std::env::var_os("HOME") {
        let _ = std::fs::write(PathBuf::from(home).join(".vault-token"), &init.root_token);
    }
    let unseal_key = init
        .keys
        .first()
        .map(|key| key.base64())
        .unwrap_or_default();
    println!(
        "WARNING! dev mode is enabled! In this mode, Mayfly runs entirely in-memory
and starts unsealed with a single unseal key. The root token is already
authenticated to the CLI, so you can immediately begin using Mayfly.

You may need to set the following environment variables:

    $ export VAULT_ADDR='{address}'

The unseal key and root token are displayed below in case you want to
seal/unseal Mayfly or re-authenticate.

Unseal Key: {unseal_key}
Root Token: {}

Development mode should NOT be used in production installations!
",
        init.root_token
    );
    Ok(())
}

/// Waits for SIGTERM or SIGINT. SIGHUP meanwhile reopens the audit files, so that logrotate
/// can move them away and have new ones started, as with Vault.
async fn wait_for_signal(core: &Arc<Core>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt), Ok(mut hangup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        // Without signal handlers the process can still be stopped; it just won't drain.
        std::future::pending::<()>().await;
        return;
    };
    loop {
        tokio::select! {
            _ = terminate.recv() => return,
            _ = interrupt.recv() => return,
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: reopening audit devices.");
                core.reload_audit().await;
            }
        }
    }
}

/// The dev config is built from the same parser as real configs, so it stays valid.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StorageConfig;

    #[test]
    fn dev_config_is_inmem_and_plain_http() {
        let config = dev_config("127.0.0.1:9999");
        assert_eq!(config.storage, StorageConfig::Inmem);
        assert_eq!(config.listeners[0].address, "127.0.0.1:9999");
        assert!(config.listeners[0].tls_disable);
    }

    #[test]
    fn flags_accept_single_and_double_dashes() {
        let args: Vec<String> = [
            "--dev",
            "-dev-root-token-id=root",
            "-dev-listen-address",
            "127.0.0.1:1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let flags = parse_flags(&args).unwrap();
        assert!(flags.dev);
        assert_eq!(flags.dev_root_token_id.as_deref(), Some("root"));
        assert_eq!(flags.dev_listen_address, "127.0.0.1:1");
        assert!(parse_flags(&["-bogus".to_string()]).is_err());
        assert!(parse_flags(&[]).is_err());
    }
}
