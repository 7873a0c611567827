//! The `mayfly` command-line client: the Vault CLI's verbs and output,
//! spoken over the server's Vault-compatible HTTP API.

mod client;
mod commands;
mod console;
mod duration;
mod flags;
mod format;
mod hcl_format;
mod token_helper;

use std::collections::BTreeMap;

use commands::{EXIT_OK, EXIT_USAGE};
use console::Console;

const USAGE: &str = "\
Usage: mayfly <command> [options] [args]

Common commands:
    read        Read data and retrieve secrets
    write       Write data, configuration, and secrets
    delete      Delete secrets and configuration
    list        List data or secrets
    login       Authenticate locally
    status      Print seal and HA status
    server      Start a Mayfly server
    unwrap      Unwrap a wrapped secret
    version     Print the Mayfly version

Other commands:
    audit       Interact with audit devices
    auth        Interact with auth methods
    kv          Interact with the key/value secrets engine
    lease       Interact with leases
    operator    Perform operator-specific tasks
    policy      Interact with policies
    secrets     Interact with secrets engines
    token       Interact with tokens

Global options (accepted by every command):
    -address=<url>      Server address (MAYFLY_ADDR or VAULT_ADDR;
                        default http://127.0.0.1:8200)
    -format=<fmt>       Output format: table, json or yaml (VAULT_FORMAT)
    -field=<name>       Print only this field of the response
    -tls-skip-verify    Skip TLS certificate verification (VAULT_SKIP_VERIFY)
    -ca-cert=<file>     CA certificate to trust (VAULT_CACERT)
    -wrap-ttl=<dur>     Wrap the response in a single-use token (VAULT_WRAP_TTL)
    -namespace=<ns>     Namespace of the request (VAULT_NAMESPACE); also -ns

The token is taken from MAYFLY_TOKEN, then VAULT_TOKEN, then ~/.mayfly-token
(written by \"mayfly login\") or, if that does not exist, ~/.vault-token.
Run \"mayfly <command> -h\" for help on a command.";

/// Runs the CLI with real standard streams and environment. `args`
/// excludes the program name; `version` is what `mayfly version` prints.
/// Returns the process exit code: 0 success, 1 usage error, 2 server or
/// connection error (and, for `status`, a sealed server).
pub async fn run(args: Vec<String>, version: &str) -> i32 {
    let mut console = Console::real();
    run_with(&mut console, &args, version).await
}

/// What a captured run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the CLI against in-memory streams: `env` stands in for the process
/// environment (so `VAULT_ADDR`, `VAULT_TOKEN`, `HOME` come from it) and
/// `stdin` is what the command may read. Nothing counts as a terminal, so
/// prompts read a line from `stdin` and `-field` output has no newline.
pub async fn run_captured(
    args: &[String],
    version: &str,
    env: BTreeMap<String, String>,
    stdin: &[u8],
) -> Captured {
    let mut console = Console::captured(env, stdin.to_vec());
    let code = run_with(&mut console, args, version).await;
    let (stdout, stderr) = console.into_captured();
    Captured {
        code,
        stdout,
        stderr,
    }
}

async fn run_with(console: &mut Console, args: &[String], version: &str) -> i32 {
    let Some((command, rest)) = args.split_first() else {
        console.err(USAGE);
        return EXIT_USAGE;
    };
    match command.as_str() {
        "version" | "-version" | "--version" | "-v" => {
            console.out(version);
            EXIT_OK
        }
        "help" | "-h" | "-help" | "--help" => {
            console.out(USAGE);
            EXIT_OK
        }
        "status" => commands::status::run(console, rest).await,
        "operator" => commands::operator::run(console, rest).await,
        "read" => commands::kv_verbs::read(console, rest).await,
        "write" => commands::kv_verbs::write(console, rest).await,
        "list" => commands::kv_verbs::list(console, rest).await,
        "delete" => commands::kv_verbs::delete(console, rest).await,
        "login" => commands::login::run(console, rest).await,
        "unwrap" => commands::unwrap::run(console, rest).await,
        "audit" => commands::audit::run(console, rest).await,
        "auth" => commands::auth::run(console, rest).await,
        "kv" => commands::kv::run(console, rest).await,
        "lease" => commands::lease::run(console, rest).await,
        "policy" => commands::policy::run(console, rest).await,
        "secrets" => commands::secrets::run(console, rest).await,
        "token" => commands::token::run(console, rest).await,
        other => {
            console.err(&format!("Unknown command: {other}"));
            console.err("");
            console.err(USAGE);
            EXIT_USAGE
        }
    }
}
