//! Command-line flags of `mayfly-bench`, parsed by hand to keep the crate's dependencies to the
//! workspace's own.

use std::{path::PathBuf, time::Duration};

use crate::{database, server::BaoStorage};

pub const USAGE: &str = "Usage: mayfly-bench --mayfly PATH [--bao PATH] [options]

Starts each server in turn on this machine (never both at once), drives the same HTTP
workload at it, and prints a markdown table of Mayfly/OpenBao ratios.

Options:
  --mayfly PATH           The mayfly binary to benchmark (required).
  --bao PATH              OpenBao's bao binary; without it only Mayfly runs.
  --bao-storage KIND      OpenBao's durable storage: raft (default) or pebbledb.
                          (OpenBao no longer ships a `file` storage.)
  --suite NAME            storage (cubbyhole writes and reads, restart and unseal), auth
                          (AppRole logins, token creates, KV v2 with a non-root token, the
                          cost of many policies), all (storage and auth; the default), audit
                          (KV v2 reads and AppRole logins with and without a file audit
                          device), leases (token leases at scale: creation, restart, expiry
                          lag, revoke-prefix) or database (dynamic PostgreSQL and MariaDB
                          credentials beside raw SQL; needs both databases). audit, leases and
                          database run only when named.
  --duration SECS         Seconds per workload and concurrency level (default 10).
  --concurrency LIST      Storage and audit suites: comma-separated concurrency levels
                          (default 1,16,64).
  --preload N             Storage suite: secrets written before the timed restart and unseal
                          (default 2000).
  --auth-clients N        Auth suite: concurrent clients of every workload (default 16).
  --acl-policies N        Auth suite: policies of the many-policy token (default 1000).
  --acl-rules N           Auth suite: path rules per such policy (default 20).
  --acl-micro N           Checks timed by the in-process ACL microbenchmark
                          (mayfly_core::policy::bench_acl_check) in the auth suite; 0 skips it
                          (default 1000000).
  --db-clients LIST       Database suite: concurrent clients per level (default 1,4,16).
  --db-kinds LIST         Database suite: postgres, mysql (MariaDB) or both (default).
  --db-forms LIST         Database suite: grant (per-user GRANT), role (group role) or both
                          (default).
  --lease-sizes LIST      Leases suite: Mayfly's lease counts (default 10000,100000,1000000).
  --bao-lease-sizes LIST  Leases suite: OpenBao's lease counts, or none (default
                          10000,100000).
  --lease-clients N       Leases suite: concurrent token creators (default 64).
  --expiry-leases N       Leases suite: tokens made due in the same second (default 10000).
  --lease-timeout SECS    Leases suite: how long expiry or a revoke-prefix may take before it
                          is reported as not finished (default 300).
  --client-threads N      Worker threads of the load generator (default 1).
  --work-dir DIR          Where the servers' temporary data directories go (default: the
                          system temp dir). It must be a real disk for writes to be durable.
  --json-out PATH         Also write every result as JSON to PATH.
  -h, --help              Show this help.
";

#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    pub mayfly: PathBuf,
    pub bao: Option<PathBuf>,
    pub bao_storage: BaoStorage,
    pub suite: Suite,
    pub duration: Duration,
    pub levels: Vec<usize>,
    pub preload: usize,
    pub auth_clients: usize,
    pub acl_policies: usize,
    pub acl_rules: usize,
    pub acl_micro: u32,
    /// Boxed so that `Parsed` stays small.
    pub database: Box<database::Options>,
    pub lease_sizes: Vec<usize>,
    pub bao_lease_sizes: Vec<usize>,
    pub lease_clients: usize,
    pub expiry_leases: usize,
    pub lease_timeout: Duration,
    pub client_threads: usize,
    pub work_dir: Option<PathBuf>,
    pub json_out: Option<PathBuf>,
}

/// Which group of workloads to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// Durable cubbyhole writes and reads, and the timed restart and unseal.
    Storage,
    /// AppRole logins, token creates, KV v2 writes and reads with a non-root token, and the
    /// cost of a token holding many policies.
    Auth,
    /// Storage and auth.
    All,
    /// Dynamic database credentials and their revocation, beside raw SQL.
    Database,
    /// KV v2 reads and AppRole logins with and without a file audit device.
    Audit,
    /// Token leases at scale: creation, restart, expiry lag and revoke-prefix.
    Leases,
}

impl Suite {
    pub fn storage(self) -> bool {
        matches!(self, Suite::Storage | Suite::All)
    }

    pub fn auth(self) -> bool {
        matches!(self, Suite::Auth | Suite::All)
    }
}

impl std::str::FromStr for Suite {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "storage" => Ok(Suite::Storage),
            "auth" => Ok(Suite::Auth),
            "all" => Ok(Suite::All),
            "database" => Ok(Suite::Database),
            "audit" => Ok(Suite::Audit),
            "leases" => Ok(Suite::Leases),
            other => Err(format!(
                "unknown suite {other:?} (expected storage, auth, audit, leases, database or all)"
            )),
        }
    }
}

/// What the command line asked for: a run, or just the help text.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    Run(Box<Args>),
    Help,
}

/// Parses `--flag value` and `--flag=value` forms (one or two leading dashes).
pub fn parse(args: &[String]) -> Result<Parsed, String> {
    let mut mayfly = None;
    let mut bao = None;
    let mut bao_storage = BaoStorage::Raft;
    let mut suite = Suite::All;
    let mut duration = Duration::from_secs(10);
    let mut levels = vec![1, 16, 64];
    let mut preload = 2000;
    let mut auth_clients = 16;
    let mut acl_policies = 1000;
    let mut acl_rules = 20;
    let mut acl_micro = 1_000_000;
    let mut database = Box::<database::Options>::default();
    let mut lease_sizes = vec![10_000, 100_000, 1_000_000];
    let mut bao_lease_sizes = vec![10_000, 100_000];
    let mut lease_clients = 64;
    let mut expiry_leases = 10_000;
    let mut lease_timeout = Duration::from_secs(300);
    let mut client_threads = 1;
    let mut work_dir = None;
    let mut json_out = None;

    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (flag, None),
        };
        let mut value = || -> Result<String, String> {
            match &inline {
                Some(value) => Ok(value.clone()),
                None => iter
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("--{name} needs a value")),
            }
        };
        match name {
            "mayfly" => mayfly = Some(PathBuf::from(value()?)),
            "bao" => bao = Some(PathBuf::from(value()?)),
            "bao-storage" => bao_storage = value()?.parse()?,
            "suite" => suite = value()?.parse()?,
            "duration" => {
                let secs: f64 = number(name, &value()?)?;
                if !(secs.is_finite() && secs > 0.0) {
                    return Err("--duration must be a positive number of seconds".into());
                }
                duration = Duration::from_secs_f64(secs);
            }
            "concurrency" => levels = positive_list(name, &value()?)?,
            "lease-sizes" => lease_sizes = positive_list(name, &value()?)?,
            "bao-lease-sizes" => {
                bao_lease_sizes = match value()?.as_str() {
                    "none" => Vec::new(),
                    list => positive_list(name, list)?,
                }
            }
            "lease-clients" => lease_clients = positive(name, &value()?)?,
            "expiry-leases" => expiry_leases = positive(name, &value()?)?,
            "lease-timeout" => {
                lease_timeout = Duration::from_secs(positive(name, &value()?)? as u64)
            }
            "preload" => preload = number(name, &value()?)?,
            "auth-clients" => auth_clients = positive(name, &value()?)?,
            "acl-policies" => acl_policies = positive(name, &value()?)?,
            "acl-rules" => {
                acl_rules = number(name, &value()?)?;
                if acl_rules < 2 {
                    return Err("--acl-rules must be at least 2".into());
                }
            }
            "acl-micro" => acl_micro = number(name, &value()?)?,
            "db-clients" | "db-kinds" | "db-forms" => database.set(name, &value()?)?,
            "client-threads" => {
                client_threads = number(name, &value()?)?;
                if client_threads == 0 {
                    return Err("--client-threads must be at least 1".into());
                }
            }
            "work-dir" => work_dir = Some(PathBuf::from(value()?)),
            "json-out" => json_out = Some(PathBuf::from(value()?)),
            "h" | "help" => return Ok(Parsed::Help),
            other => return Err(format!("unknown flag --{other}")),
        }
    }
    let mayfly = mayfly.ok_or("--mayfly PATH is required")?;
    Ok(Parsed::Run(Box::new(Args {
        mayfly,
        bao,
        bao_storage,
        suite,
        duration,
        levels,
        preload,
        auth_clients,
        acl_policies,
        acl_rules,
        acl_micro,
        database,
        lease_sizes,
        bao_lease_sizes,
        lease_clients,
        expiry_leases,
        lease_timeout,
        client_threads,
        work_dir,
        json_out,
    })))
}

fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("--{flag}: {text:?} is not a valid number"))
}

fn positive(flag: &str, text: &str) -> Result<usize, String> {
    match number(flag, text)? {
        0 => Err(format!("--{flag} must be at least 1")),
        n => Ok(n),
    }
}

/// A comma-separated list of positive numbers, e.g. `1,16,64`.
fn positive_list(flag: &str, text: &str) -> Result<Vec<usize>, String> {
    let list = text
        .split(',')
        .map(|item| positive(flag, item.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    match list.is_empty() {
        true => Err(format!("--{flag} needs at least one number")),
        false => Ok(list),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Parsed, String> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn defaults_and_both_flag_forms() {
        let Parsed::Run(args) =
            parse_strs(&["--mayfly", "/m", "-bao=/b", "--duration=2.5"]).expect("valid flags")
        else {
            panic!("expected a run");
        };
        assert_eq!(args.mayfly, PathBuf::from("/m"));
        assert_eq!(args.bao, Some(PathBuf::from("/b")));
        assert_eq!(args.duration, Duration::from_millis(2500));
        assert_eq!(args.levels, [1, 16, 64]);
        assert_eq!(args.preload, 2000);
        assert_eq!(args.bao_storage, BaoStorage::Raft);
        assert_eq!(args.client_threads, 1);
        assert_eq!(args.suite, Suite::All);
        assert_eq!(
            (args.auth_clients, args.acl_policies, args.acl_rules),
            (16, 1000, 20)
        );
        assert_eq!(args.acl_micro, 1_000_000);
        assert_eq!(args.lease_sizes, [10_000, 100_000, 1_000_000]);
        assert_eq!(args.bao_lease_sizes, [10_000, 100_000]);
        assert_eq!((args.lease_clients, args.expiry_leases), (64, 10_000));
        assert_eq!(args.lease_timeout, Duration::from_secs(300));
    }

    #[test]
    fn explicit_suites_and_lease_flags() {
        let Parsed::Run(args) = parse_strs(&[
            "--mayfly",
            "m",
            "--suite=leases",
            "--lease-sizes",
            "2000, 5000",
            "--bao-lease-sizes=none",
            "--expiry-leases",
            "500",
            "--lease-timeout=60",
        ])
        .expect("valid flags") else {
            panic!("expected a run");
        };
        assert_eq!(args.suite, Suite::Leases);
        assert!(!args.suite.storage() && !args.suite.auth());
        assert_eq!(args.lease_sizes, [2000, 5000]);
        assert!(args.bao_lease_sizes.is_empty());
        assert_eq!(args.expiry_leases, 500);
        assert_eq!(args.lease_timeout, Duration::from_secs(60));
        let Parsed::Run(args) = parse_strs(&["--mayfly", "m", "--suite", "audit"]).expect("valid")
        else {
            panic!("expected a run");
        };
        assert_eq!(args.suite, Suite::Audit);
        assert!(!args.suite.storage() && !args.suite.auth());
    }

    #[test]
    fn suite_and_auth_flags() {
        let Parsed::Run(args) = parse_strs(&[
            "--mayfly",
            "m",
            "--suite",
            "auth",
            "--auth-clients=8",
            "--acl-policies",
            "50",
            "--acl-rules",
            "5",
            "--acl-micro",
            "0",
        ])
        .expect("valid flags") else {
            panic!("expected a run");
        };
        assert_eq!(args.suite, Suite::Auth);
        assert!(args.suite.auth() && !args.suite.storage());
        assert_eq!(
            (args.auth_clients, args.acl_policies, args.acl_rules),
            (8, 50, 5)
        );
        assert_eq!(args.acl_micro, 0);
    }

    #[test]
    fn database_suite_flags() {
        let Parsed::Run(args) = parse_strs(&[
            "--mayfly",
            "m",
            "--suite=database",
            "--db-clients",
            "1,4",
            "--db-kinds=postgres",
            "--db-forms",
            "role",
        ])
        .expect("valid flags") else {
            panic!("expected a run");
        };
        assert_eq!(args.suite, Suite::Database);
        assert!(!args.suite.storage() && !args.suite.auth());
        assert_eq!(args.database.clients, [1, 4]);
        assert_eq!(args.database.kinds, [database::DbKind::Postgres]);
        assert_eq!(args.database.forms, [database::Form::Role]);
        assert!(parse_strs(&["--mayfly", "m", "--db-kinds", "oracle"]).is_err());
    }

    #[test]
    fn levels_and_storage() {
        let Parsed::Run(args) = parse_strs(&[
            "--mayfly",
            "m",
            "--concurrency",
            "2, 8",
            "--bao-storage",
            "pebbledb",
        ])
        .expect("valid flags") else {
            panic!("expected a run");
        };
        assert_eq!(args.levels, [2, 8]);
        assert_eq!(args.bao_storage, BaoStorage::Pebbledb);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse_strs(&[]).is_err(), "--mayfly is required");
        assert!(parse_strs(&["--mayfly", "m", "--duration", "0"]).is_err());
        assert!(parse_strs(&["--mayfly", "m", "--concurrency", "1,0"]).is_err());
        assert!(parse_strs(&["--mayfly", "m", "--bao-storage", "file"]).is_err());
        assert!(parse_strs(&["--mayfly", "m", "--bogus"]).is_err());
        assert!(parse_strs(&["--mayfly"]).is_err());
        assert!(parse_strs(&["--mayfly", "m", "--suite", "acl"]).is_err());
        assert!(parse_strs(&["--mayfly", "m", "--auth-clients", "0"]).is_err());
        assert!(parse_strs(&["--mayfly", "m", "--acl-rules", "1"]).is_err());
        assert!(parse_strs(&["--mayfly", "m", "--lease-sizes", "10,x"]).is_err());
        assert!(parse_strs(&["--mayfly", "m", "--bao-lease-sizes", ""]).is_err());
        assert_eq!(parse_strs(&["--help"]), Ok(Parsed::Help));
    }
}
