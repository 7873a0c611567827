//! The CLI verbs run as a user would: the real binary against a real server, checking exit
//! codes and the exact text scripts depend on.

use serde_json::Value;

use crate::support::{CliOutput, Server, cli, free_port};

/// The value of a `Key    Value` row in a table (with or without a header).
pub(crate) fn row<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?;
        // Columns are separated by at least four spaces; one space means a longer key.
        rest.starts_with("    ").then(|| rest.trim())
    })
}

pub(crate) fn expect_row(out: &CliOutput, key: &str, value: &str) {
    assert_eq!(
        row(&out.stdout, key),
        Some(value),
        "row {key:?} in:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
}

pub(crate) fn ok(out: &CliOutput) {
    assert_eq!(
        out.code, 0,
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        out.code, out.stdout, out.stderr
    );
}

#[tokio::test]
async fn version_unknown_command_and_unreachable_server() {
    let home = tempfile::tempdir().expect("temporary directory");
    for flag in ["version", "-version", "--version"] {
        let out = cli(home.path(), &[], &[flag]).await;
        ok(&out);
        let line = out.stdout.trim_end();
        let rest = line
            .strip_prefix("Mayfly v")
            .unwrap_or_else(|| panic!("{flag}: {line:?}"));
        let (semver, sha) = rest
            .split_once(" (")
            .unwrap_or_else(|| panic!("{flag}: {line:?}"));
        assert_eq!(semver, env!("CARGO_PKG_VERSION"));
        assert_eq!(semver.split('.').count(), 3, "{semver}");
        let sha = sha.strip_suffix(')').expect("closing parenthesis");
        assert!(
            sha == "unknown" || (sha.len() >= 7 && sha.chars().all(|c| c.is_ascii_hexdigit())),
            "sha {sha:?}"
        );
    }

    let unknown = cli(home.path(), &[], &["frobnicate"]).await;
    assert_eq!(unknown.code, 1, "{unknown:?}");
    assert!(
        unknown.stderr.contains("Unknown command: frobnicate"),
        "{}",
        unknown.stderr
    );

    let closed = format!("http://127.0.0.1:{}", free_port());
    let unreachable = cli(home.path(), &[("VAULT_ADDR", &closed)], &["status"]).await;
    assert_eq!(unreachable.code, 2, "{unreachable:?}");
    assert!(
        unreachable.stderr.contains("connection refused"),
        "{}",
        unreachable.stderr
    );
}

#[tokio::test]
async fn init_unseal_status_seal_rotate() {
    let server = Server::file().await;

    let fresh = server.cli(None, &["status"]).await;
    assert_eq!(fresh.code, 2, "{fresh:?}");
    expect_row(&fresh, "Initialized", "false");

    let init = server
        .cli(
            None,
            &[
                "operator",
                "init",
                "-key-shares=3",
                "-key-threshold=2",
                "-format=json",
            ],
        )
        .await;
    ok(&init);
    let init: Value = serde_json::from_str(&init.stdout).expect("init -format=json is JSON");
    let keys: Vec<String> = init["unseal_keys_b64"]
        .as_array()
        .expect("unseal_keys_b64")
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 3);
    assert_eq!(init["unseal_keys_hex"].as_array().map(Vec::len), Some(3));
    assert_eq!(init["unseal_threshold"], 2);
    let token = init["root_token"].as_str().expect("root_token").to_owned();
    assert!(token.starts_with("hvs."), "{token}");

    let sealed = server.cli(None, &["status"]).await;
    assert_eq!(sealed.code, 2, "sealed status exits 2: {sealed:?}");
    expect_row(&sealed, "Sealed", "true");
    expect_row(&sealed, "Unseal Progress", "0/2");
    assert!(sealed.stdout.starts_with("Key "), "{}", sealed.stdout);
    assert!(sealed.stdout.lines().nth(1).unwrap().starts_with("---"));

    let one = server.cli(None, &["operator", "unseal", &keys[0]]).await;
    ok(&one);
    expect_row(&one, "Sealed", "true");
    expect_row(&one, "Unseal Progress", "1/2");
    let reset = server.cli(None, &["operator", "unseal", "-reset"]).await;
    ok(&reset);
    expect_row(&reset, "Unseal Progress", "0/2");

    for key in &keys[1..] {
        let out = server.cli(None, &["operator", "unseal", key]).await;
        ok(&out);
    }
    let unsealed = server.cli(None, &["status"]).await;
    ok(&unsealed);
    expect_row(&unsealed, "Sealed", "false");
    expect_row(&unsealed, "Total Shares", "3");
    expect_row(&unsealed, "Threshold", "2");
    expect_row(&unsealed, "Storage Type", "file");
    assert_eq!(row(&unsealed.stdout, "Unseal Progress"), None);

    let key_status = server.cli(Some(&token), &["operator", "key-status"]).await;
    ok(&key_status);
    expect_row(&key_status, "Key Term", "1");
    assert!(row(&key_status.stdout, "Install Time").is_some());

    let rotate = server.cli(Some(&token), &["operator", "rotate"]).await;
    ok(&rotate);
    assert!(
        rotate.stdout.starts_with("Success! Rotated key\n"),
        "{}",
        rotate.stdout
    );
    expect_row(&rotate, "Key Term", "2");

    let seal = server.cli(Some(&token), &["operator", "seal"]).await;
    ok(&seal);
    assert_eq!(seal.stdout, "Success! Mayfly is sealed.\n");
    let after_seal = server.cli(None, &["status"]).await;
    assert_eq!(after_seal.code, 2, "{after_seal:?}");
    expect_row(&after_seal, "Sealed", "true");

    for key in [&keys[2], &keys[0]] {
        ok(&server.cli(None, &["operator", "unseal", key]).await);
    }
    ok(&server.cli(None, &["status"]).await);
    let term = server.cli(Some(&token), &["operator", "key-status"]).await;
    expect_row(&term, "Key Term", "2");
}

#[tokio::test]
async fn read_write_list_delete() {
    let server = Server::inmem().await;
    let init = server.init_unsealed(1, 1).await;
    let token = Some(init.root_token.as_str());

    let user_file = server.dir().join("user.txt");
    std::fs::write(&user_file, "alice").expect("write value file");
    let user_arg = format!("user=@{}", user_file.display());
    let write = server
        .cli(
            token,
            &["write", "cubbyhole/app", "password=s3cr3t", &user_arg],
        )
        .await;
    ok(&write);
    assert_eq!(write.stdout, "Success! Data written to: cubbyhole/app\n");

    let read = server.cli(token, &["read", "cubbyhole/app"]).await;
    ok(&read);
    assert_eq!(
        read.stdout,
        "Key         Value\n\
         ---         -----\n\
         password    s3cr3t\n\
         user        alice\n"
    );

    let field = server
        .cli(token, &["read", "-field=password", "cubbyhole/app"])
        .await;
    ok(&field);
    assert_eq!(field.stdout, "s3cr3t", "no decoration when piped");

    let json = server
        .cli(token, &["read", "-format=json", "cubbyhole/app"])
        .await;
    ok(&json);
    let json: Value = serde_json::from_str(&json.stdout).expect("read -format=json is JSON");
    assert_eq!(json["data"]["password"], "s3cr3t");
    assert_eq!(json["data"]["user"], "alice");

    let list = server.cli(token, &["list", "cubbyhole/"]).await;
    ok(&list);
    assert_eq!(list.stdout, "Keys\n----\napp\n");

    let delete = server.cli(token, &["delete", "cubbyhole/app"]).await;
    ok(&delete);
    assert_eq!(
        delete.stdout,
        "Success! Data deleted (if it existed) at: cubbyhole/app\n"
    );
    let gone = server.cli(token, &["read", "cubbyhole/app"]).await;
    assert_eq!(gone.code, 2, "{gone:?}");
    assert!(
        gone.stderr.contains("No value found at cubbyhole/app"),
        "{}",
        gone.stderr
    );
    assert!(gone.stdout.is_empty(), "{}", gone.stdout);

    let no_data = server.cli(token, &["write", "cubbyhole/x"]).await;
    assert_eq!(no_data.code, 1, "{no_data:?}");
    assert!(
        no_data.stderr.contains("Must supply data"),
        "{}",
        no_data.stderr
    );

    let denied = server.cli(None, &["read", "cubbyhole/app"]).await;
    assert_eq!(denied.code, 2, "{denied:?}");
    assert!(denied.stderr.contains("Code: 403"), "{}", denied.stderr);
}

#[tokio::test]
async fn address_flags_and_environment() {
    let server = Server::inmem().await;
    server.init_unsealed(1, 1).await;
    let closed = format!("http://127.0.0.1:{}", free_port());
    let real = server.addr();

    let flag = format!("--address={real}");
    let out = cli(
        server.home(),
        &[("VAULT_ADDR", &closed)],
        &["status", &flag],
    )
    .await;
    ok(&out);
    let flag = format!("-address={real}");
    let out = cli(
        server.home(),
        &[("VAULT_ADDR", &closed)],
        &["status", &flag],
    )
    .await;
    ok(&out);

    let out = cli(
        server.home(),
        &[("VAULT_ADDR", &closed), ("MAYFLY_ADDR", &real)],
        &["status"],
    )
    .await;
    ok(&out);
    let out = cli(
        server.home(),
        &[("VAULT_ADDR", &real), ("MAYFLY_ADDR", &closed)],
        &["status"],
    )
    .await;
    assert_eq!(out.code, 2, "MAYFLY_ADDR wins over VAULT_ADDR: {out:?}");
}

#[tokio::test]
async fn generate_root_flow() {
    let server = Server::inmem().await;
    let init = server.init_unsealed(3, 2).await;

    let start = server
        .cli(None, &["operator", "generate-root", "-init"])
        .await;
    ok(&start);
    let nonce = row(&start.stdout, "Nonce").expect("Nonce row").to_owned();
    let otp = row(&start.stdout, "OTP").expect("OTP row").to_owned();
    assert_eq!(otp.len(), 28, "{}", start.stdout);
    expect_row(&start, "Started", "true");
    expect_row(&start, "Progress", "0/2");
    expect_row(&start, "OTP Length", "28");

    let nonce_arg = format!("-nonce={nonce}");
    let step = server
        .cli(
            None,
            &["operator", "generate-root", &nonce_arg, &init.keys[1]],
        )
        .await;
    ok(&step);
    expect_row(&step, "Progress", "1/2");
    expect_row(&step, "Complete", "false");
    let done = server
        .cli(
            None,
            &["operator", "generate-root", &nonce_arg, &init.keys[2]],
        )
        .await;
    ok(&done);
    expect_row(&done, "Complete", "true");
    let encoded = row(&done.stdout, "Encoded Token")
        .expect("Encoded Token row")
        .to_owned();

    let decode = server
        .cli(
            None,
            &[
                "operator",
                "generate-root",
                &format!("-decode={encoded}"),
                &format!("-otp={otp}"),
            ],
        )
        .await;
    ok(&decode);
    let token = decode.stdout.as_str();
    assert!(token.starts_with("hvs."), "{token:?}");
    assert_eq!(token.len(), 28, "{token:?}");

    let lookup = server.get("auth/token/lookup-self", Some(token)).await;
    assert_eq!(lookup.status, 200, "{}", lookup.body);
    assert_eq!(
        lookup.json()["data"]["policies"],
        serde_json::json!(["root"])
    );
}

#[tokio::test]
async fn rekey_flow() {
    let server = Server::inmem().await;
    let init = server.init_unsealed(3, 2).await;
    let token = Some(init.root_token.as_str());

    let start = server
        .cli(
            token,
            &[
                "operator",
                "rekey",
                "-init",
                "-key-shares=1",
                "-key-threshold=1",
            ],
        )
        .await;
    ok(&start);
    expect_row(&start, "Started", "true");
    expect_row(&start, "New Shares", "1");
    expect_row(&start, "New Threshold", "1");
    expect_row(&start, "Rekey Progress", "0/2");

    let step = server
        .cli(token, &["operator", "rekey", &init.keys[0]])
        .await;
    ok(&step);
    expect_row(&step, "Rekey Progress", "1/2");
    let done = server
        .cli(token, &["operator", "rekey", &init.keys[1]])
        .await;
    ok(&done);
    let new_key = done
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("Key 1: "))
        .unwrap_or_else(|| panic!("no new key in:\n{}", done.stdout))
        .to_owned();
    assert!(
        !done.stdout.contains("Key 2: "),
        "one share was asked for:\n{}",
        done.stdout
    );
    assert!(done.stdout.contains("Operation nonce: "), "{}", done.stdout);

    ok(&server.cli(token, &["operator", "seal"]).await);
    let old = server
        .cli(None, &["operator", "unseal", &init.keys[0]])
        .await;
    assert_eq!(old.code, 2, "an old key no longer fits: {old:?}");
    let unseal = server.cli(None, &["operator", "unseal", &new_key]).await;
    ok(&unseal);
    expect_row(&unseal, "Sealed", "false");
    expect_row(&unseal, "Total Shares", "1");
    ok(&server.cli(None, &["status"]).await);
}
