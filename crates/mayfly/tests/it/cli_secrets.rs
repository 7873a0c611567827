//! The CLI's `secrets` and `kv` commands against the real server: mounting, tuning, moving and
//! unmounting engines, and `kv` working the same on v1 and v2 mounts without being told which.

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

/// The mount paths in the first column of `secrets list`.
fn listed_paths(out: &CliOutput) -> Vec<String> {
    ok(out);
    out.stdout
        .lines()
        .skip(2)
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn secrets_enable_list_tune_move_disable() {
    let server = Server::inmem().await;
    let root = server.root_token().await;
    let token = Some(root.as_str());

    let enable = server
        .cli(token, &["secrets", "enable", "-path=kv1", "kv"])
        .await;
    ok(&enable);
    assert_eq!(
        enable.stdout,
        "Success! Enabled the kv secrets engine at: kv1/\n"
    );
    let twice = server
        .cli(token, &["secrets", "enable", "-path=kv1", "kv"])
        .await;
    assert_eq!(twice.code, 2, "{twice:?}");
    let list = server.cli(token, &["secrets", "list"]).await;
    assert_eq!(
        listed_paths(&list),
        ["cubbyhole/", "kv1/", "sys/"],
        "{}",
        list.stdout
    );
    let mounts = json_out(
        &server
            .cli(token, &["secrets", "list", "-format=json"])
            .await,
    );
    assert_eq!(mounts["kv1/"]["type"], "kv", "{mounts}");

    let tune = server
        .cli(token, &["secrets", "tune", "-max-lease-ttl=1h", "kv1"])
        .await;
    ok(&tune);
    assert_eq!(tune.stdout, "Success! Tuned the secrets engine at: kv1/\n");
    let tuned = server.get("sys/mounts/kv1/tune", token).await;
    assert_eq!(tuned.expect(200).json()["data"]["max_lease_ttl"], 3600);

    // Data moves with the mount.
    ok(&server.cli(token, &["kv", "put", "kv1/app", "k=v"]).await);
    let moved = server.cli(token, &["secrets", "move", "kv1", "kv2"]).await;
    ok(&moved);
    assert!(
        moved
            .stdout
            .contains("Success! Finished moving secrets engine kv1/ to kv2/"),
        "{}",
        moved.stdout
    );
    let read = server
        .cli(token, &["kv", "get", "-field=k", "kv2/app"])
        .await;
    ok(&read);
    assert_eq!(read.stdout, "v");
    // The tuning moved too.
    let tuned = server.get("sys/mounts/kv2/tune", token).await;
    assert_eq!(tuned.expect(200).json()["data"]["max_lease_ttl"], 3600);
    let list = server.cli(token, &["secrets", "list"]).await;
    assert_eq!(listed_paths(&list), ["cubbyhole/", "kv2/", "sys/"]);

    let disable = server.cli(token, &["secrets", "disable", "kv2"]).await;
    ok(&disable);
    assert_eq!(
        disable.stdout,
        "Success! Disabled the secrets engine (if it existed) at: kv2/\n"
    );
    let list = server.cli(token, &["secrets", "list"]).await;
    assert_eq!(listed_paths(&list), ["cubbyhole/", "sys/"]);
    // A fresh mount at the same path starts empty.
    ok(&server
        .cli(token, &["secrets", "enable", "-path=kv2", "kv"])
        .await);
    let empty = server.cli(token, &["kv", "get", "kv2/app"]).await;
    assert_eq!(empty.code, 2, "{empty:?}");
}

#[tokio::test]
async fn kv_commands_work_the_same_on_v1_and_v2_mounts() {
    let server = Server::inmem().await;
    let root = server.root_token().await;
    let token = Some(root.as_str());
    ok(&server
        .cli(token, &["secrets", "enable", "-path=secret", "kv-v2"])
        .await);
    ok(&server
        .cli(token, &["secrets", "enable", "-path=legacy", "kv"])
        .await);

    for mount in ["secret", "legacy"] {
        let versioned = mount == "secret";
        let path = format!("{mount}/app/db");
        let put = server
            .cli(token, &["kv", "put", &path, "user=app", "pass=s3cr3t"])
            .await;
        ok(&put);
        if versioned {
            // v2 answers with the new version's metadata.
            expect_row(&put, "version", "1");
        } else {
            assert_eq!(put.stdout, format!("Success! Data written to: {path}\n"));
        }
        ok(&server
            .cli(
                token,
                &["kv", "put", &format!("{mount}/app/cache"), "host=redis"],
            )
            .await);

        let get = json_out(
            &server
                .cli(token, &["kv", "get", "-format=json", &path])
                .await,
        );
        let data = if versioned {
            assert_eq!(get["data"]["metadata"]["version"], 1, "{get}");
            &get["data"]["data"]
        } else {
            &get["data"]
        };
        assert_eq!(*data, json!({"user": "app", "pass": "s3cr3t"}), "{mount}");
        let table = server.cli(token, &["kv", "get", &path]).await;
        ok(&table);
        assert_eq!(
            row(&table.stdout, "pass"),
            Some("s3cr3t"),
            "{}",
            table.stdout
        );
        let field = server
            .cli(token, &["kv", "get", "-field=user", &path])
            .await;
        ok(&field);
        assert_eq!(field.stdout, "app");

        let list = server
            .cli(token, &["kv", "list", &format!("{mount}/app")])
            .await;
        ok(&list);
        assert_eq!(list.stdout, "Keys\n----\ncache\ndb\n", "{mount}");

        let delete = server.cli(token, &["kv", "delete", &path]).await;
        ok(&delete);
        let expected_path = if versioned {
            "secret/data/app/db".to_owned()
        } else {
            path.clone()
        };
        assert_eq!(
            delete.stdout,
            format!("Success! Data deleted (if it existed) at: {expected_path}\n")
        );
        let after = server.cli(token, &["kv", "get", &path]).await;
        // No data is shown any more; v2 still shows when the version was deleted.
        assert_eq!(row(&after.stdout, "pass"), None, "{mount}: {after:?}");
        if versioned {
            let deleted_at = row(&after.stdout, "deletion_time").expect("deletion_time row");
            assert_ne!(deleted_at, "n/a");
        } else {
            assert_eq!(after.code, 2, "{after:?}");
            assert!(
                after.stderr.contains("No value found at legacy/app/db"),
                "{}",
                after.stderr
            );
        }
    }

    // v2 only: a soft delete can be undone, and versions stay readable by number.
    ok(&server
        .cli(token, &["kv", "put", "secret/app/db", "pass=two"])
        .await);
    ok(&server
        .cli(token, &["kv", "undelete", "-versions=1", "secret/app/db"])
        .await);
    let v1 = server
        .cli(
            token,
            &["kv", "get", "-version=1", "-field=pass", "secret/app/db"],
        )
        .await;
    ok(&v1);
    assert_eq!(v1.stdout, "s3cr3t");
    let latest = server
        .cli(token, &["kv", "get", "-field=pass", "secret/app/db"])
        .await;
    ok(&latest);
    assert_eq!(latest.stdout, "two");
}
