//! The `mayfly` binary: `mayfly server …` runs the server; every other verb is the CLI.

mod config;
mod registry;
mod server;

use std::process::ExitCode;

/// `Mayfly v<semver> (<git sha>)`, as `mayfly version` prints it.
pub(crate) fn version_string() -> String {
    format!(
        "Mayfly v{} ({})",
        env!("CARGO_PKG_VERSION"),
        env!("MAYFLY_GIT_SHA")
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("Error starting the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let code = if args.first().map(String::as_str) == Some("server") {
        runtime.block_on(server::run(&args[1..]))
    } else {
        runtime.block_on(mayfly_cli::run(args, &version_string()))
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
