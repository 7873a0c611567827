//! Configuration files the server must refuse (with a message that points at the mistake) or
//! accept with a warning.

use crate::support::{Options, Server, Storage, free_port, run_server_expecting_exit};

fn listener(port: u16) -> String {
    format!("listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\n")
}

#[tokio::test]
async fn bad_duration_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("bad-duration.hcl");
    std::fs::write(
        &config,
        format!(
            "storage \"inmem\" {{}}\n{}default_lease_ttl = \"abc\"\n",
            listener(free_port())
        ),
    )
    .expect("write config");
    let out =
        run_server_expecting_exit(dir.path(), &[&format!("-config={}", config.display())]).await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("default_lease_ttl"), "{}", out.stderr);
    assert!(out.stderr.contains("abc"), "{}", out.stderr);
}

#[tokio::test]
async fn hcl_syntax_error_names_the_line() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("broken.hcl");
    std::fs::write(
        &config,
        format!(
            "storage \"inmem\" {{}}\n{}\nui = = true\n",
            listener(free_port())
        ),
    )
    .expect("write config");
    let out =
        run_server_expecting_exit(dir.path(), &[&format!("-config={}", config.display())]).await;
    assert_ne!(out.code, 0, "{out:?}");
    // The listener block takes lines 2-5 and a blank line follows, so the error is on line 7.
    assert!(out.stderr.contains("line 7"), "{}", out.stderr);
}

#[tokio::test]
async fn missing_config_and_missing_flags_are_usage_errors() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let missing = dir.path().join("does-not-exist.hcl");
    let out =
        run_server_expecting_exit(dir.path(), &[&format!("-config={}", missing.display())]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("does-not-exist.hcl"), "{}", out.stderr);

    let out = run_server_expecting_exit(dir.path(), &[]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("Usage: mayfly server"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn unknown_keys_only_warn() {
    let server = Server::start(Options {
        top_extra: "mystery_knob = true\n".to_owned(),
        ..Options::new(Storage::Inmem)
    })
    .await;
    let health = server.get("sys/health", None).await;
    assert_eq!(health.status, 501, "the server runs: {}", health.body);
    let log = server.stderr();
    assert!(
        log.contains("unknown key \"mystery_knob\""),
        "no warning in the log:\n{log}"
    );
    assert!(log.contains("WARN"), "{log}");
}
