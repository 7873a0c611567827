//! The database secrets engine through the real binary: connections, roles and credentials
//! that log into the real PostgreSQL, MariaDB and Redis; rollback; root rotation; password
//! policies; and `kill -9` in the middle of concurrent issuance.

use std::{collections::HashSet, sync::Arc, time::Duration};

use mayfly_database::testing::{TestDatabase, TestMySql, TestPostgres, TestRedis, unique};
use serde_json::{Value, json};

use crate::support::{Resp, Server};

const SEED_CREATION: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID \
    UNTIL '{{expiration}}'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\";";

/// Runs `body`, then the database's teardown even if `body` panicked.
async fn with_db<D, F, Fut>(db: D, body: F)
where
    D: TestDatabase + 'static,
    F: FnOnce(Arc<D>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let db = Arc::new(db);
    let outcome = tokio::spawn(body(db.clone())).await;
    db.teardown().await;
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

async fn ok(server: &Server, method: &str, path: &str, token: &str, body: Value) -> Resp {
    let resp = server.request(method, path, Some(token), Some(&body)).await;
    assert!(
        resp.status == 200 || resp.status == 204,
        "{method} {path}: {} {}",
        resp.status,
        resp.body
    );
    resp
}

/// An unsealed server with the database engine mounted at `database/`, its root token and
/// its unseal key.
async fn server_with_engine(options: Value) -> (Server, String, Vec<String>) {
    let server = Server::file().await;
    let init = server.init_unsealed(1, 1).await;
    let token = init.root_token;
    ok(
        &server,
        "POST",
        "sys/mounts/database",
        &token,
        json!({"type": "database", "options": options}),
    )
    .await;
    (server, token, init.keys)
}

#[tokio::test]
async fn postgres_credentials_over_http() {
    with_db(TestPostgres::start().await, |db| async move {
        let (server, token, _) = server_with_engine(json!({})).await;
        ok(
            &server,
            "POST",
            "database/config/pg",
            &token,
            json!({"plugin_name": "postgresql-database-plugin",
                   "connection_url": db.connection_url(), "username": "postgres",
                   "password": "configured-root-pw", "allowed_roles": ["readonly"]}),
        )
        .await;
        let config = server.get("database/config/pg", Some(&token)).await;
        assert_eq!(config.status, 200);
        assert!(
            !config.body.contains("configured-root-pw"),
            "{}",
            config.body
        );
        assert_eq!(config.json()["data"]["allowed_roles"], json!(["readonly"]));

        ok(
            &server,
            "POST",
            "database/roles/readonly",
            &token,
            json!({"db_name": "pg", "creation_statements": SEED_CREATION,
                   "default_ttl": "1h", "max_ttl": "24h"}),
        )
        .await;
        let role = server
            .get("database/roles/readonly", Some(&token))
            .await
            .json();
        assert_eq!(role["data"]["default_ttl"], 3600);
        assert_eq!(role["data"]["revocation_statements"], json!([]));

        let creds = server.get("database/creds/readonly", Some(&token)).await;
        assert_eq!(creds.status, 200, "{}", creds.body);
        let body = creds.json();
        assert_eq!(body["lease_duration"], 3600);
        assert_eq!(body["renewable"], true);
        let username = body["data"]["username"].as_str().unwrap().to_owned();
        let password = body["data"]["password"].as_str().unwrap().to_owned();
        assert!(username.starts_with("v-root-readonly-"), "{username}");
        assert!(
            db.password_works(&username, &password).await,
            "the user logs in"
        );
        let granted: bool = db
            .client
            .query_one(
                "SELECT has_table_privilege($1, 't3', 'SELECT')",
                &[&username],
            )
            .await
            .unwrap()
            .get(0);
        assert!(granted);

        let keys = |resp: Resp| resp.json()["data"]["keys"].clone();
        assert_eq!(
            keys(
                server
                    .request("LIST", "database/config", Some(&token), None)
                    .await
            ),
            json!(["pg"])
        );
        assert_eq!(
            keys(
                server
                    .request("LIST", "database/roles", Some(&token), None)
                    .await
            ),
            json!(["readonly"])
        );
        let unknown = server.get("database/creds/nope", Some(&token)).await;
        assert_eq!(
            (unknown.status, unknown.errors()),
            (400, vec!["unknown role: nope".to_owned()])
        );
        ok(&server, "POST", "database/reset/pg", &token, json!({})).await;

        // The credential has a lease under the role's path; renewing it moves VALID UNTIL.
        let lease_id = body["lease_id"].as_str().unwrap().to_owned();
        assert!(
            lease_id.starts_with("database/creds/readonly/"),
            "{lease_id}"
        );
        let looked = ok(
            &server,
            "PUT",
            "sys/leases/lookup",
            &token,
            json!({"lease_id": lease_id}),
        )
        .await
        .json();
        assert_eq!(looked["data"]["renewable"], true);
        let before = db.expiration(&username).await.expect("VALID UNTIL");
        let renewed = ok(
            &server,
            "PUT",
            "sys/leases/renew",
            &token,
            json!({"lease_id": lease_id, "increment": "20h"}),
        )
        .await
        .json();
        assert_eq!(renewed["lease_id"], lease_id);
        assert_eq!(renewed["lease_duration"], 20 * 3600);
        let after = db.expiration(&username).await.expect("VALID UNTIL");
        assert!(
            after >= before + Duration::from_secs(18 * 3600),
            "VALID UNTIL moved forward: {before:?} -> {after:?}"
        );

        // Revoking the lease drops the user: it can no longer log in, and no role remains.
        ok(
            &server,
            "PUT",
            "sys/leases/revoke",
            &token,
            json!({"lease_id": lease_id}),
        )
        .await;
        assert!(!db.password_works(&username, &password).await);
        assert!(!db.user_exists(&username).await);
        let gone = server
            .put(
                "sys/leases/lookup",
                Some(&token),
                &json!({"lease_id": lease_id}),
            )
            .await;
        assert_eq!(gone.status, 400, "{}", gone.body);
    })
    .await;
}

/// The seed's commands through the CLI: enable, configure, a role with the seed's grant,
/// read creds, renew, revoke by prefix, rotate the root password.
#[tokio::test]
async fn seed_cli_commands_issue_renew_revoke_and_rotate() {
    with_db(TestPostgres::start().await, |db| async move {
        let server = Server::file().await;
        let token = server.init_unsealed(1, 1).await.root_token;
        let root_user = unique("seedroot");
        let root_password = "seed-root-initial-pw";
        db.client
            .batch_execute(&format!(
                "CREATE ROLE \"{root_user}\" WITH LOGIN SUPERUSER PASSWORD '{root_password}'"
            ))
            .await
            .unwrap();
        let cli = |args: Vec<String>| {
            let server = &server;
            let token = token.clone();
            async move {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let out = server.cli(Some(&token), &args).await;
                assert_eq!(out.code, 0, "mayfly {args:?}: {}{}", out.stdout, out.stderr);
                out.stdout
            }
        };
        let words = |text: &str| text.split(' ').map(str::to_owned).collect::<Vec<_>>();
        cli(words("secrets enable database")).await;
        let url = format!(
            "connection_url=postgresql://{{{{username}}}}:{{{{password}}}}@{}:{}/{}?sslmode=disable",
            db.host, db.port, db.database
        );
        cli(vec![
            "write".into(),
            "database/config/myapp".into(),
            "plugin_name=postgresql-database-plugin".into(),
            "allowed_roles=myapp-read,myapp-write".into(),
            url,
            format!("username={root_user}"),
            format!("password={root_password}"),
        ])
        .await;
        cli(vec![
            "write".into(),
            "database/roles/myapp-read".into(),
            "db_name=myapp".into(),
            format!("creation_statements={SEED_CREATION}"),
            "default_ttl=1h".into(),
            "max_ttl=24h".into(),
        ])
        .await;
        let table = cli(words("read database/creds/myapp-read")).await;
        for field in [
            "lease_id",
            "lease_duration",
            "lease_renewable",
            "password",
            "username",
        ] {
            assert!(table.contains(field), "{field} in\n{table}");
        }
        let value = |name: &str| {
            table
                .lines()
                .find_map(|line| {
                    let mut parts = line.split_whitespace();
                    (parts.next() == Some(name)).then(|| parts.next().unwrap_or("").to_owned())
                })
                .unwrap_or_else(|| panic!("no {name} in\n{table}"))
        };
        let (lease_id, username, password) = (value("lease_id"), value("username"), value("password"));
        assert_eq!(value("lease_duration"), "1h");
        assert!(db.password_works(&username, &password).await);

        let renewed = cli(vec!["lease".into(), "renew".into(), lease_id.clone()]).await;
        assert!(renewed.contains(&lease_id), "{renewed}");
        // Without -sync the CLI queues the revocation, as Vault's does.
        cli(words("lease revoke -prefix database/creds/myapp-read")).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while db.user_exists(&username).await {
            assert!(
                std::time::Instant::now() < deadline,
                "revoke -prefix did not drop the user"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        cli(words("write -force database/rotate-root/myapp")).await;
        assert!(
            !db.password_works(&root_user, root_password).await,
            "the old root password no longer works"
        );
        // The rotated password is in use: new credentials still come out.
        let again = cli(words("read -format=json database/creds/myapp-read")).await;
        let again: Value = serde_json::from_str(&again).unwrap();
        let user = again["data"]["username"].as_str().unwrap().to_owned();
        assert!(db.user_exists(&user).await);
        cli(words("lease revoke -sync -prefix database/creds/myapp-read")).await;
        assert!(!db.user_exists(&user).await, "a synchronous revoke -prefix is done on return");
        db.client
            .batch_execute(&format!("DROP ROLE \"{root_user}\""))
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn mysql_credentials_log_in_and_failed_creations_leave_nothing() {
    with_db(TestMySql::start().await, |db| async move {
        let (server, token, _) = server_with_engine(json!({})).await;
        ok(
            &server,
            "POST",
            "database/config/my",
            &token,
            json!({"plugin_name": "mysql-database-plugin", "connection_url": db.connection_url(),
                   "username": db.admin_user, "password": db.admin_password,
                   "allowed_roles": "app-*"}),
        )
        .await;
        let role = unique("app").replace('_', "-");
        ok(
            &server,
            "POST",
            &format!("database/roles/{role}"),
            &token,
            json!({"db_name": "my",
                   "creation_statements": "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'; GRANT SELECT ON mysql.user TO '{{name}}'@'%';",
                   "default_ttl": 600}),
        )
        .await;
        let body = server.get(&format!("database/creds/{role}"), Some(&token)).await.json();
        let username = body["data"]["username"].as_str().unwrap().to_owned();
        let password = body["data"]["password"].as_str().unwrap().to_owned();
        assert!(username.len() <= 32 && username.starts_with("v-root-app-"), "{username}");
        assert!(db.login(&username, &password).await, "the user logs in");
        assert!(!db.login(&username, "wrong-password").await);

        // Its own connection names users after the role, so the check below sees only what
        // this test creates on the shared server.
        configure_mysql_named_by_role(&server, &token, &db, "myf").await;
        let failing = format!("{role}-f");
        ok(
            &server,
            "POST",
            &format!("database/roles/{failing}"),
            &token,
            json!({"db_name": "myf",
                   "creation_statements": "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'; GRANT SELECT ON nope.nope TO '{{name}}'@'%';",
                   "rollback_statements": "DROP USER IF EXISTS '{{name}}'@'%';"}),
        )
        .await;
        let failed = server.get(&format!("database/creds/{failing}"), Some(&token)).await;
        assert_eq!(failed.status, 500, "{}", failed.body);
        assert!(failed.errors()[0].starts_with("failed to create user:"), "{}", failed.body);
        assert!(!failed.body.contains(&db.admin_password));
        assert_eq!(db.users_like(&failing).await, Vec::<String>::new(), "nothing left behind");

        let mut conn = mysql_root(&db).await;
        use mysql_async::prelude::Queryable;
        conn.query_drop(format!("DROP USER '{username}'@'%'")).await.unwrap();
    })
    .await;
}

/// Creations and revocations that arrive together go to MariaDB in batches: every client gets
/// its own outcome, a failing role's creations fail alone and leave nothing, and revoking all
/// at once leaves no user.
#[tokio::test]
async fn mysql_credentials_issued_and_revoked_sixteen_at_a_time() {
    with_db(TestMySql::start().await, |db| async move {
        let (server, token, _) = server_with_engine(json!({})).await;
        let role = unique("app").replace('_', "-");
        configure_mysql_named_by_role(&server, &token, &db, "my").await;
        // Usernames are `<role>-<random>`: neither role's users can match the other's prefix.
        let failing = format!("{role}x");
        let (good_users, failing_users) = (format!("{role}-"), format!("{failing}-"));
        for (name, grant) in [(&role, "mysql.user"), (&failing, "nope.nope")] {
            ok(
                &server,
                "POST",
                &format!("database/roles/{name}"),
                &token,
                json!({"db_name": "my",
                       "creation_statements": format!("CREATE USER '{{{{name}}}}'@'%' IDENTIFIED BY '{{{{password}}}}'; GRANT SELECT ON {grant} TO '{{{{name}}}}'@'%';"),
                       "rollback_statements": "DROP USER IF EXISTS '{{name}}'@'%';"}),
            )
            .await;
        }
        // Every fourth request asks for the failing role.
        let paths: Vec<String> = (0..16)
            .map(|n| {
                let name = if n % 4 == 3 { &failing } else { &role };
                format!("database/creds/{name}")
            })
            .collect();
        let answers = mayfly_database::testing::join_all(
            paths.iter().map(|path| server.get(path, Some(&token))).collect(),
        )
        .await;
        let mut issued = Vec::new();
        for (path, answer) in paths.iter().zip(&answers) {
            if path.ends_with(&failing) {
                assert_eq!(answer.status, 500, "{path}: {}", answer.body);
                continue;
            }
            assert_eq!(answer.status, 200, "{path}: {}", answer.body);
            let body = answer.json();
            let username = body["data"]["username"].as_str().unwrap().to_owned();
            let password = body["data"]["password"].as_str().unwrap().to_owned();
            assert!(db.login(&username, &password).await, "{username} logs in");
            issued.push((username, body["lease_id"].as_str().unwrap().to_owned()));
        }
        assert_eq!(issued.len(), 12);
        assert_eq!(
            db.users_like(&failing_users).await,
            Vec::<String>::new(),
            "failed creations leave nothing behind"
        );
        assert_eq!(db.users_like(&good_users).await.len(), 12);

        let bodies: Vec<Value> = issued
            .iter()
            .map(|(_, lease)| json!({"lease_id": lease}))
            .collect();
        let revoked = mayfly_database::testing::join_all(
            bodies
                .iter()
                .map(|body| server.request("PUT", "sys/leases/revoke", Some(&token), Some(body)))
                .collect(),
        )
        .await;
        for ((username, _), answer) in issued.iter().zip(&revoked) {
            assert_eq!(answer.status, 204, "{username}: {}", answer.body);
            assert!(!db.login(username, "any").await);
        }
        assert_eq!(
            db.users_like(&good_users).await,
            Vec::<String>::new(),
            "no user is left"
        );
    })
    .await;
}

/// A MariaDB connection `name` for roles `app-*` whose usernames are `<role>-<random 8>`, so a
/// test sees only the users of its own roles on the shared server.
async fn configure_mysql_named_by_role(server: &Server, token: &str, db: &TestMySql, name: &str) {
    ok(
        server,
        "POST",
        &format!("database/config/{name}"),
        token,
        json!({"plugin_name": "mysql-database-plugin", "connection_url": db.connection_url(),
               "username": db.admin_user, "password": db.admin_password,
               "allowed_roles": "app-*", "username_template": "{{.RoleName}}-{{random 8}}"}),
    )
    .await;
}

async fn mysql_root(db: &TestMySql) -> mysql_async::Conn {
    mysql_async::Conn::new(
        mysql_async::OptsBuilder::default()
            .ip_or_hostname(db.host.clone())
            .tcp_port(db.port)
            .user(Some(db.admin_user.clone()))
            .pass(Some(db.admin_password.clone()))
            .prefer_socket(false),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn redis_credentials_log_in() {
    with_db(TestRedis::start().await, |db| async move {
        let (server, token, _) = server_with_engine(json!({})).await;
        ok(
            &server,
            "POST",
            "database/config/cache",
            &token,
            json!({"plugin_name": "redis-database-plugin", "host": db.host, "port": db.port,
                   "username": db.admin_user, "password": db.admin_password,
                   "allowed_roles": "*"}),
        )
        .await;
        ok(
            &server,
            "POST",
            "database/roles/reader",
            &token,
            json!({"db_name": "cache", "creation_statements": "[\"~*\", \"+@read\"]"}),
        )
        .await;
        let body = server
            .get("database/creds/reader", Some(&token))
            .await
            .json();
        let username = body["data"]["username"].as_str().unwrap().to_owned();
        let password = body["data"]["password"].as_str().unwrap().to_owned();
        assert!(username.starts_with("V_ROOT_READER_"), "{username}");
        assert!(db.login(&username, &password).await);
        db.default_command(&[b"ACL", b"DELUSER", username.as_bytes()])
            .await;
    })
    .await;
}

#[tokio::test]
async fn root_rotation_survives_restarts_and_kills_the_old_password() {
    with_db(TestMySql::start().await, |db| async move {
        let admin = unique("mayfly_rot");
        let mut root = mysql_root(&db).await;
        use mysql_async::prelude::Queryable;
        root.query_drop(format!(
            "CREATE USER '{admin}'@'%' IDENTIFIED BY 'first-root-pw'; \
             GRANT ALL PRIVILEGES ON *.* TO '{admin}'@'%' WITH GRANT OPTION"
        ))
        .await
        .unwrap();
        let (mut server, token, keys) = server_with_engine(json!({})).await;
        ok(
            &server,
            "POST",
            "database/config/my",
            &token,
            json!({"plugin_name": "mysql-database-plugin", "connection_url": db.connection_url(),
                   "username": admin, "password": "first-root-pw", "allowed_roles": "*"}),
        )
        .await;
        ok(
            &server,
            "POST",
            "database/roles/r",
            &token,
            json!({"db_name": "my", "creation_statements": "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';"}),
        )
        .await;
        let rotated = server.request("POST", "database/rotate-root/my", Some(&token), None).await;
        assert_eq!(rotated.status, 204, "{}", rotated.body);
        assert!(!db.login(&admin, "first-root-pw").await, "the old password no longer works");

        // The new password was stored before anything else: a crash now loses nothing.
        server.kill9();
        server.restart().await;
        server.unseal(&keys).await;
        let body = server.get("database/creds/r", Some(&token)).await;
        assert_eq!(body.status, 200, "the configuration keeps working: {}", body.body);
        let body = body.json();
        let username = body["data"]["username"].as_str().unwrap().to_owned();
        assert!(db.login(&username, body["data"]["password"].as_str().unwrap()).await);
        root.query_drop(format!("DROP USER '{username}'@'%'; DROP USER '{admin}'@'%'"))
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn password_policies_shape_generated_passwords() {
    with_db(TestPostgres::start().await, |db| async move {
        let (server, token, _) = server_with_engine(json!({})).await;
        let policy = "length = 24\nrule \"charset\" {\n  charset = \"abcdef\"\n  min-chars = 4\n}\n\
                      rule \"charset\" {\n  charset = \"0123\"\n  min-chars = 4\n}";
        ok(
            &server,
            "POST",
            "sys/policies/password/hexish",
            &token,
            json!({"policy": policy}),
        )
        .await;
        let read = server
            .get("sys/policies/password/hexish", Some(&token))
            .await
            .json();
        assert_eq!(read["data"]["policy"], policy);
        let generated = server
            .get("sys/policies/password/hexish/generate", Some(&token))
            .await
            .json();
        let sample = generated["data"]["password"].as_str().unwrap();
        assert_eq!(sample.len(), 24);
        assert!(sample.chars().all(|c| "abcdef0123".contains(c)));
        let missing = server
            .get("sys/policies/password/nope/generate", Some(&token))
            .await;
        assert_eq!(
            (missing.status, missing.errors()),
            (404, vec!["policy does not exist".to_owned()])
        );
        let invalid = server
            .request(
                "POST",
                "sys/policies/password/bad",
                Some(&token),
                Some(&json!({"policy": "length = 2"})),
            )
            .await;
        assert_eq!(invalid.status, 400);

        ok(
            &server,
            "POST",
            "database/config/pg",
            &token,
            json!({"plugin_name": "postgresql-database-plugin",
                   "connection_url": db.connection_url(), "username": "postgres",
                   "allowed_roles": "*", "password_policy": "hexish"}),
        )
        .await;
        ok(
            &server,
            "POST",
            "database/roles/p",
            &token,
            json!({"db_name": "pg", "creation_statements": SEED_CREATION}),
        )
        .await;
        let creds = server.get("database/creds/p", Some(&token)).await.json();
        let username = creds["data"]["username"].as_str().unwrap().to_owned();
        let password = creds["data"]["password"].as_str().unwrap().to_owned();
        assert!(password.len() == 24 && password.chars().all(|c| "abcdef0123".contains(c)));
        assert!(db.password_works(&username, &password).await);
        let listed = server
            .request("LIST", "sys/policies/password", Some(&token), None)
            .await;
        assert_eq!(listed.json()["data"]["keys"], json!(["hexish"]));
        ok(
            &server,
            "DELETE",
            "sys/policies/password/hexish",
            &token,
            json!({}),
        )
        .await;
        db.client
            .batch_execute(&format!(
                "DROP OWNED BY \"{username}\"; DROP ROLE \"{username}\""
            ))
            .await
            .unwrap();
    })
    .await;
}

/// Users and leases under a role, as a pair, to compare.
async fn users_and_leases(
    server: &Server,
    token: &str,
    db: &TestPostgres,
    prefix: &str,
    role: &str,
) -> (usize, usize) {
    let users = db.roles_like(prefix).await.len();
    let listed = server
        .request(
            "LIST",
            &format!("sys/leases/lookup/database/creds/{role}/"),
            Some(token),
            None,
        )
        .await;
    let leases = match listed.status {
        404 => 0,
        200 => listed.json()["data"]["keys"].as_array().map_or(0, Vec::len),
        other => panic!("listing leases: {other} {}", listed.body),
    };
    (users, leases)
}

/// Writes role `role` on connection `db_name` with the seed's creation statement and checks
/// that reading its credentials is refused (400) with an error containing `expected`.
async fn seed_role_is_refused(
    server: &Server,
    token: &str,
    role: &str,
    db_name: &str,
    expected: &str,
) {
    ok(
        server,
        "POST",
        &format!("database/roles/{role}"),
        token,
        json!({"db_name": db_name, "creation_statements": SEED_CREATION}),
    )
    .await;
    let refused = server
        .get(&format!("database/creds/{role}"), Some(token))
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.errors()[0].contains(expected),
        "{:?}",
        refused.errors()
    );
}

/// `kill -9` while 32 clients request credentials, ten times. After each restart no user in
/// the database is without a lease, every credential a client received is still there, and
/// every one is revoked at its expiry.
#[tokio::test]
async fn kill_9_during_concurrent_issuance_leaves_no_unowned_users() {
    with_db(TestPostgres::start().await, |db| async move {
        let (mut server, token, keys) =
            server_with_engine(json!({"reconcile_interval": "1s", "expiry_grace": "1s"})).await;
        ok(
            &server,
            "POST",
            "database/config/pg",
            &token,
            json!({"plugin_name": "postgresql-database-plugin",
                   "connection_url": db.connection_url(), "username": "postgres",
                   "allowed_roles": "*"}),
        )
        .await;
        let role = unique("k").replace('_', "");
        let prefix = format!("v-root-{}-", &role[..role.len().min(8)]);
        ok(
            &server,
            "POST",
            &format!("database/roles/{role}"),
            &token,
            json!({"db_name": "pg", "creation_statements": SEED_CREATION,
                   "default_ttl": "6s", "max_ttl": "6s"}),
        )
        .await;
        let mut received_total = 0usize;
        for round in 0..10u64 {
            let url = server.url(&format!("database/creds/{role}"));
            let mut clients = Vec::new();
            for _ in 0..32 {
                let http = server.http().clone();
                let url = url.clone();
                let token = token.clone();
                clients.push(tokio::spawn(async move {
                    let resp = http
                        .get(url)
                        .header("X-Vault-Token", token)
                        .send()
                        .await
                        .ok()?;
                    let body: Value = resp.json().await.ok()?;
                    body["data"]["username"].as_str().map(str::to_owned)
                }));
            }
            // Cut the server down at a different point of the burst each round.
            tokio::time::sleep(Duration::from_millis(20 + 35 * round)).await;
            server.kill9();
            let mut received = HashSet::new();
            for client in clients {
                if let Ok(Some(username)) = client.await {
                    received.insert(username);
                }
            }
            received_total += received.len();
            let at_kill = db.roles_like(&prefix).await;
            println!(
                "round {round}: {} users at the kill, {} received by clients",
                at_kill.len(),
                received.len()
            );
            server.restart().await;
            server.unseal(&keys).await;
            // A lease is stored before its user can exist, so right after the restart no
            // user is without one; a lease whose user the kill prevented expires like the rest.
            let (users, leases) = users_and_leases(&server, &token, &db, &prefix, &role).await;
            assert!(
                users <= leases,
                "round {round}: {users} users but only {leases} leases after the restart"
            );
            let present: HashSet<String> = db.roles_like(&prefix).await.into_iter().collect();
            assert!(
                received.is_subset(&present),
                "round {round}: a credential a client holds was dropped before its expiry: \
                 {:?}",
                received.difference(&present).collect::<Vec<_>>()
            );
            // Every credential goes at its expiry, by its lease.
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                let (users, leases) = users_and_leases(&server, &token, &db, &prefix, &role).await;
                if users == 0 && leases == 0 {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "round {round}: {users} users and {leases} leases outlived their expiry"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        println!("{received_total} credentials received across 10 killed rounds");
        assert!(
            received_total > 0,
            "some requests finished before the kills"
        );
    })
    .await;
}

/// A TCP relay to the real PostgreSQL that the test can cut and restore, to play a database
/// outage without touching the shared server.
struct Relay {
    port: u16,
    target: String,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut relay = Relay {
            port,
            target,
            task: None,
        };
        relay.serve(listener);
        relay
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let target = self.target.clone();
        self.task = Some(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Closes the listener and every relayed connection (the JoinSet aborts them on drop).
    fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    async fn restore(&mut self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(err) if std::time::Instant::now() < deadline => {
                    let _ = err;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => panic!("rebinding the relay: {err}"),
            }
        };
        self.serve(listener);
    }
}

/// The database is down when a credential expires: its lease keeps retrying with backoff,
/// the user is not forgotten, and it is dropped once the database is back.
#[tokio::test]
async fn an_outage_at_expiry_is_retried_until_the_database_returns() {
    with_db(TestPostgres::start().await, |db| async move {
        let (server, token, _) = server_with_engine(json!({})).await;
        ok(
            &server,
            "POST",
            "sys/mounts/database/tune",
            &token,
            json!({"lease_revoke_initial_backoff": 1, "lease_revoke_max_attempts": 30}),
        )
        .await;
        let mut relay = Relay::start(format!("{}:{}", db.host, db.port)).await;
        ok(
            &server,
            "POST",
            "database/config/pg",
            &token,
            json!({"plugin_name": "postgresql-database-plugin",
                   "connection_url": format!(
                       "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/{}?sslmode=disable&connect_timeout=2",
                       relay.port, db.database),
                   "username": "postgres", "allowed_roles": "*"}),
        )
        .await;
        ok(
            &server,
            "POST",
            "database/roles/short",
            &token,
            json!({"db_name": "pg", "creation_statements": SEED_CREATION,
                   "default_ttl": "2s", "max_ttl": "2s"}),
        )
        .await;
        let creds = ok(&server, "GET", "database/creds/short", &token, json!({})).await.json();
        let username = creds["data"]["username"].as_str().unwrap().to_owned();
        let lease_id = creds["lease_id"].as_str().unwrap().to_owned();
        assert!(db.user_exists(&username).await);

        relay.cut();
        // Well past the expiry, with the database unreachable: the lease and the user remain.
        tokio::time::sleep(Duration::from_secs(6)).await;
        let lease = server
            .put("sys/leases/lookup", Some(&token), &json!({"lease_id": lease_id}))
            .await;
        assert_eq!(lease.status, 200, "the lease is kept for retries: {}", lease.body);
        assert!(db.user_exists(&username).await, "the user waits for the database");

        relay.restore().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(40);
        while db.user_exists(&username).await {
            assert!(
                std::time::Instant::now() < deadline,
                "the user was not dropped after the database came back"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let lease = server
            .put("sys/leases/lookup", Some(&token), &json!({"lease_id": lease_id}))
            .await;
        assert_eq!(lease.status, 400, "the lease is gone: {}", lease.body);
        relay.cut();
    })
    .await;
}

/// Injection attempts through every value that reaches a statement: role names, username
/// templates, token display names, password policies and static-role usernames. Each is
/// either quoted safely or refused with a clear error, and the canary table survives.
#[tokio::test]
async fn sql_injection_attempts_are_quoted_or_rejected() {
    with_db(TestPostgres::start().await, |db| async move {
        let (server, token, _) = server_with_engine(json!({})).await;
        db.client
            .batch_execute("CREATE TABLE canary (x int)")
            .await
            .unwrap();
        let canary_alive = || db.scalar::<bool>("SELECT to_regclass('public.canary') IS NOT NULL");
        let config = |extra: Value| {
            let mut body = json!({"plugin_name": "postgresql-database-plugin",
                "connection_url": db.connection_url(), "username": "postgres",
                "allowed_roles": "*"});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            body
        };
        ok(&server, "POST", "database/config/pg", &token, config(json!({}))).await;

        // A role name cannot carry SQL: it is not a valid name.
        let evil_role = server
            .request(
                "POST",
                "database/roles/x\";DROP TABLE canary;--",
                Some(&token),
                Some(&json!({"db_name": "pg", "creation_statements": SEED_CREATION})),
            )
            .await;
        assert!(
            (400..500).contains(&evil_role.status),
            "{} {}",
            evil_role.status,
            evil_role.body
        );

        // A username template that closes the quote is refused before any SQL runs.
        ok(
            &server,
            "POST",
            "database/config/tpl",
            &token,
            config(json!({"username_template":
                "{{.RoleName}}\"; DROP TABLE canary; --"})),
        )
        .await;
        seed_role_is_refused(
            &server,
            &token,
            "tplrole",
            "tpl",
            "generated username contains '\"'",
        )
        .await;
        assert!(db.roles_like("tplrole").await.is_empty());

        // A token display name with SQL in it is sanitized into the username.
        ok(
            &server,
            "POST",
            "database/roles/plain",
            &token,
            json!({"db_name": "pg", "creation_statements": SEED_CREATION}),
        )
        .await;
        ok(
            &server,
            "PUT",
            "sys/policies/acl/creds",
            &token,
            json!({"policy": "path \"database/creds/*\" { capabilities = [\"read\"] }"}),
        )
        .await;
        let evil_token = ok(
            &server,
            "POST",
            "auth/token/create",
            &token,
            json!({"policies": ["creds"], "display_name": "x\"; DROP TABLE canary; --"}),
        )
        .await
        .json()["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let creds = ok(&server, "GET", "database/creds/plain", &evil_token, json!({}))
            .await
            .json();
        let username = creds["data"]["username"].as_str().unwrap().to_owned();
        assert!(
            username
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{username}"
        );
        assert!(db.user_exists(&username).await);

        // A password policy that can produce a quote is refused at issue time.
        ok(
            &server,
            "PUT",
            "sys/policies/password/quotey",
            &token,
            json!({"policy": "length = 20\nrule \"charset\" {\n  charset = \"'\"\n  min-chars = 1\n}\nrule \"charset\" {\n  charset = \"abcdefgh\"\n}\n"}),
        )
        .await;
        ok(
            &server,
            "POST",
            "database/config/pw",
            &token,
            config(json!({"password_policy": "quotey"})),
        )
        .await;
        seed_role_is_refused(
            &server,
            &token,
            "pwrole",
            "pw",
            "generated password contains '\\''",
        )
        .await;
        assert!(db.roles_like("v-root-pwrole").await.is_empty());

        // A static role cannot name a user that would break out of its statements.
        let refused = server
            .request(
                "POST",
                "database/static-roles/victim",
                Some(&token),
                Some(&json!({"db_name": "pg", "username": "victim\"; DROP TABLE canary; --",
                             "rotation_period": "1h"})),
            )
            .await;
        assert_eq!(refused.status, 400, "{}", refused.body);

        assert!(canary_alive().await, "the canary table survived every attempt");
        ok(
            &server,
            "PUT",
            "sys/leases/revoke-prefix/database/creds",
            &token,
            json!({}),
        )
        .await;
        assert!(!db.user_exists(&username).await);
    })
    .await;
}

/// Database credentials in the audit log: issue, renewal and revocation each have a request
/// and a response entry, the credential never appears in plaintext, and with the only
/// device unable to write, a credential request fails and no user or lease is created.
#[tokio::test]
async fn database_credentials_are_audited_and_unauditable_requests_create_nothing() {
    with_db(TestPostgres::start().await, |db| async move {
        let (server, token, _) = server_with_engine(json!({})).await;
        ok(
            &server,
            "POST",
            "database/config/pg",
            &token,
            json!({"plugin_name": "postgresql-database-plugin",
                   "connection_url": db.connection_url(), "username": "postgres",
                   "allowed_roles": "*"}),
        )
        .await;
        let role = unique("aud").replace('_', "");
        ok(
            &server,
            "POST",
            &format!("database/roles/{role}"),
            &token,
            json!({"db_name": "pg", "creation_statements": SEED_CREATION}),
        )
        .await;
        let dir = server.dir().join("audit");
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("audit.log");
        ok(
            &server,
            "PUT",
            "sys/audit/file",
            &token,
            json!({"type": "file", "options": {"file_path": log.to_str().unwrap()}}),
        )
        .await;

        let creds = ok(
            &server,
            "GET",
            &format!("database/creds/{role}"),
            &token,
            json!({}),
        )
        .await
        .json();
        let username = creds["data"]["username"].as_str().unwrap().to_owned();
        let password = creds["data"]["password"].as_str().unwrap().to_owned();
        let lease_id = creds["lease_id"].as_str().unwrap().to_owned();
        ok(
            &server,
            "PUT",
            "sys/leases/renew",
            &token,
            json!({"lease_id": lease_id, "increment": "2h"}),
        )
        .await;
        ok(
            &server,
            "PUT",
            "sys/leases/revoke",
            &token,
            json!({"lease_id": lease_id}),
        )
        .await;
        assert!(!db.user_exists(&username).await);

        let text = std::fs::read_to_string(&log).unwrap();
        for secret in [&username, &password, &token] {
            assert!(
                !text.contains(secret.as_str()),
                "plaintext secret in the audit log"
            );
        }
        let entries: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        for path in [
            format!("database/creds/{role}"),
            "sys/leases/renew".to_owned(),
            "sys/leases/revoke".to_owned(),
        ] {
            for kind in ["request", "response"] {
                assert!(
                    entries
                        .iter()
                        .any(|e| e["type"] == kind && e["request"]["path"] == path.as_str()),
                    "no {kind} entry for {path}"
                );
            }
        }
        let issued = entries
            .iter()
            .find(|e| {
                e["type"] == "response"
                    && e["request"]["path"] == format!("database/creds/{role}").as_str()
            })
            .unwrap();
        assert_eq!(issued["response"]["secret"]["lease_id"], lease_id.as_str());
        assert!(
            issued["response"]["data"]["password"]
                .as_str()
                .unwrap()
                .starts_with("hmac-sha256:")
        );

        // The only device cannot write: the request fails before any user is created.
        ok(&server, "DELETE", "sys/audit/file", &token, json!({})).await;
        let full = dir.join("full.log");
        std::os::unix::fs::symlink("/dev/full", &full).unwrap();
        ok(
            &server,
            "PUT",
            "sys/audit/full",
            &token,
            json!({"type": "file",
                   "options": {"file_path": full.to_str().unwrap(), "skip_test": "true"}}),
        )
        .await;
        let refused = server
            .get(&format!("database/creds/{role}"), Some(&token))
            .await;
        assert_eq!(refused.status, 500, "{}", refused.body);
        let prefix = format!("v-root-{}", &role[..role.len().min(8)]);
        assert!(
            db.roles_like(&prefix).await.is_empty(),
            "no user was created"
        );
    })
    .await;
}
