//! The CLI's identity commands against the real server: `login` and the token it stores,
//! `token create`, `auth enable`/`list`, `policy`, and wrapped answers with `unwrap`.

use std::os::unix::fs::PermissionsExt;

use serde_json::{Value, json};

use crate::{
    cli::{expect_row, ok, row},
    support::{CliOutput, Server},
};

fn json_out(out: &CliOutput) -> Value {
    ok(out);
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|err| panic!("not JSON ({err}):\n{}", out.stdout))
}

/// A failure the server refused: exit 2, with the status code in the message.
fn refused(out: &CliOutput, code: u16) {
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains(&format!("Code: {code}")),
        "expected {code} in:\n{}",
        out.stderr
    );
}

const READER_POLICY: &str = "path \"secret/data/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n";

#[tokio::test]
async fn login_with_userpass_stores_the_token_for_later_commands() {
    let server = Server::inmem().await;
    let root = server.root_token().await;
    let as_root = Some(root.as_str());

    let enabled = server.cli(as_root, &["auth", "enable", "userpass"]).await;
    ok(&enabled);
    assert_eq!(
        enabled.stdout,
        "Success! Enabled userpass auth method at: userpass/\n"
    );
    ok(&server
        .cli(as_root, &["secrets", "enable", "-path=secret", "kv-v2"])
        .await);
    ok(&server
        .cli(as_root, &["kv", "put", "secret/app", "db=hunter2"])
        .await);
    let policy_file = server.dir().join("reader.hcl");
    std::fs::write(&policy_file, READER_POLICY).expect("write policy file");
    ok(&server
        .cli(
            as_root,
            &[
                "policy",
                "write",
                "reader",
                &policy_file.display().to_string(),
            ],
        )
        .await);
    ok(&server
        .cli(
            as_root,
            &[
                "write",
                "auth/userpass/users/alice",
                "password=pw",
                "policies=reader",
            ],
        )
        .await);

    // No VAULT_TOKEN from here on: the CLI must use what `login` stored.
    let token_file = server.home().join(".mayfly-token");
    assert!(!token_file.exists());
    let wrong = server
        .cli(
            None,
            &[
                "login",
                "-method=userpass",
                "username=alice",
                "password=nope",
            ],
        )
        .await;
    refused(&wrong, 400);
    assert!(!token_file.exists(), "a failed login stored something");

    let login = server
        .cli(
            None,
            &["login", "-method=userpass", "username=alice", "password=pw"],
        )
        .await;
    ok(&login);
    assert!(
        login
            .stdout
            .starts_with("Success! You are now authenticated."),
        "{}",
        login.stdout
    );
    expect_row(&login, "token_policies", r#"["default" "reader"]"#);
    expect_row(&login, "token_meta_username", "alice");
    let token = row(&login.stdout, "token").expect("token row").to_owned();
    assert!(token.starts_with("hvs."), "{token}");
    let stored = std::fs::read_to_string(&token_file).expect("token file written");
    assert_eq!(stored.trim(), token);
    let mode = std::fs::metadata(&token_file)
        .expect("token file metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the token file is private");

    let lookup = json_out(&server.cli(None, &["token", "lookup", "-format=json"]).await);
    assert_eq!(lookup["data"]["display_name"], "userpass-alice");
    assert_eq!(lookup["data"]["policies"], json!(["default", "reader"]));
    assert_eq!(lookup["data"]["path"], "auth/userpass/login/alice");

    let secret = server
        .cli(None, &["kv", "get", "-field=db", "secret/app"])
        .await;
    ok(&secret);
    assert_eq!(secret.stdout, "hunter2");
    let write = server
        .cli(None, &["kv", "put", "secret/app", "db=mine"])
        .await;
    refused(&write, 403);

    // An explicit VAULT_TOKEN still wins over the stored one.
    let explicit = json_out(
        &server
            .cli(as_root, &["token", "lookup", "-format=json"])
            .await,
    );
    assert_eq!(explicit["data"]["policies"], json!(["root"]));
}

#[tokio::test]
async fn token_create_auth_methods_and_wrapped_secret_ids() {
    let server = Server::inmem().await;
    let root = server.root_token().await;
    let as_root = Some(root.as_str());

    let created = json_out(
        &server
            .cli(
                as_root,
                &["token", "create", "-policy=x", "-ttl=1h", "-format=json"],
            )
            .await,
    );
    let auth = &created["auth"];
    assert_eq!(auth["policies"], json!(["default", "x"]), "{created}");
    assert_eq!(auth["lease_duration"], 3600);
    assert_eq!(auth["orphan"], false);
    // The policy does not exist yet; the server says so but still issues the token.
    assert!(
        created["warnings"].to_string().contains("\\\"x\\\""),
        "{created}"
    );
    let token = auth["client_token"].as_str().expect("client_token");
    let lookup = server.get("auth/token/lookup-self", Some(token)).await;
    assert_eq!(
        lookup.expect(200).json()["data"]["policies"],
        json!(["default", "x"])
    );

    let enabled = server.cli(as_root, &["auth", "enable", "approle"]).await;
    ok(&enabled);
    assert_eq!(
        enabled.stdout,
        "Success! Enabled approle auth method at: approle/\n"
    );
    let again = server.cli(as_root, &["auth", "enable", "approle"]).await;
    refused(&again, 400);
    let listed = server.cli(as_root, &["auth", "list"]).await;
    ok(&listed);
    let paths: Vec<&str> = listed
        .stdout
        .lines()
        .skip(2)
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(paths, ["approle/", "token/"], "{}", listed.stdout);
    let listed = json_out(&server.cli(as_root, &["auth", "list", "-format=json"]).await);
    assert_eq!(listed["approle/"]["type"], "approle", "{listed}");

    // A SecretID generated with -wrap-ttl: the output is the wrapping token, and `unwrap`
    // turns it into the SecretID exactly once.
    ok(&server
        .cli(
            as_root,
            &["write", "auth/approle/role/app", "token_policies=x"],
        )
        .await);
    let wrapped = server
        .cli(
            as_root,
            &[
                "write",
                "-wrap-ttl=60s",
                "-force",
                "auth/approle/role/app/secret-id",
            ],
        )
        .await;
    ok(&wrapped);
    expect_row(&wrapped, "wrapping_token_ttl:", "1m");
    expect_row(
        &wrapped,
        "wrapping_token_creation_path:",
        "auth/approle/role/app/secret-id",
    );
    assert!(
        !wrapped.stdout.contains("secret_id_accessor"),
        "{}",
        wrapped.stdout
    );
    let wrapping_token = row(&wrapped.stdout, "wrapping_token:")
        .expect("wrapping_token row")
        .to_owned();

    let unwrapped = server
        .cli(as_root, &["unwrap", "-format=json", &wrapping_token])
        .await;
    let unwrapped = json_out(&unwrapped);
    let secret_id = unwrapped["data"]["secret_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no secret_id in {unwrapped}"))
        .to_owned();
    let twice = server.cli(as_root, &["unwrap", &wrapping_token]).await;
    refused(&twice, 400);

    // The unwrapped SecretID logs in, through the CLI as well.
    let role_id = server
        .cli(
            as_root,
            &["read", "-field=role_id", "auth/approle/role/app/role-id"],
        )
        .await;
    ok(&role_id);
    let login = server
        .cli(
            None,
            &[
                "login",
                "-method=approle",
                "-format=json",
                &format!("role_id={}", role_id.stdout),
                &format!("secret_id={secret_id}"),
            ],
        )
        .await;
    let login = json_out(&login);
    assert_eq!(
        login["auth"]["policies"],
        json!(["default", "x"]),
        "{login}"
    );
    assert_eq!(login["auth"]["metadata"]["role_name"], "app");
}

#[tokio::test]
async fn policy_write_read_list_delete() {
    let server = Server::inmem().await;
    let root = server.root_token().await;
    let as_root = Some(root.as_str());
    let file = server.dir().join("reader.hcl");
    std::fs::write(&file, READER_POLICY).expect("write policy file");
    let file = file.display().to_string();

    let write = server
        .cli(as_root, &["policy", "write", "reader", &file])
        .await;
    ok(&write);
    assert_eq!(write.stdout, "Success! Uploaded policy: reader\n");
    let read = server.cli(as_root, &["policy", "read", "reader"]).await;
    ok(&read);
    assert_eq!(read.stdout.trim_end(), READER_POLICY.trim_end());
    let list = server.cli(as_root, &["policy", "list"]).await;
    ok(&list);
    assert_eq!(list.stdout, "default\nreader\nroot\n");

    // The policy is live: a token holding it gets exactly its capabilities.
    let token = server
        .put(
            "auth/token/create",
            as_root,
            &json!({"policies": ["reader"]}),
        )
        .await;
    let token = token.expect(200).json()["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let caps = server
        .cli(Some(&token), &["token", "capabilities", "secret/data/app"])
        .await;
    ok(&caps);
    assert_eq!(caps.stdout, "list, read\n");

    // A broken file is refused with its position, and the stored policy stays.
    let broken = server.dir().join("broken.hcl");
    std::fs::write(
        &broken,
        "path \"secret/*\" {\n  capabilities = [\"read\"\n}\n",
    )
    .expect("write broken policy");
    let bad = server
        .cli(
            as_root,
            &["policy", "write", "reader", &broken.display().to_string()],
        )
        .await;
    refused(&bad, 400);
    assert!(bad.stderr.contains("line 3"), "{}", bad.stderr);
    let read = server.cli(as_root, &["policy", "read", "reader"]).await;
    assert_eq!(read.stdout.trim_end(), READER_POLICY.trim_end());

    let delete = server.cli(as_root, &["policy", "delete", "reader"]).await;
    ok(&delete);
    assert_eq!(delete.stdout, "Success! Deleted policy: reader\n");
    let gone = server.cli(as_root, &["policy", "read", "reader"]).await;
    assert_eq!(gone.code, 2, "{gone:?}");
    assert!(
        gone.stderr.contains("No policy named: reader"),
        "{}",
        gone.stderr
    );
    let list = server.cli(as_root, &["policy", "list"]).await;
    assert_eq!(list.stdout, "default\nroot\n");
    // The built-in policies cannot be deleted.
    let root_policy = server.cli(as_root, &["policy", "delete", "root"]).await;
    refused(&root_policy, 400);
}
