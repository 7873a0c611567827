//! `lease`: look up, renew and revoke the leases of secrets and tokens.

use serde_json::json;

use super::output::output_answer;
use super::{EXIT_OK, EXIT_SERVER, EXIT_USAGE, Spec, arg_count_error, parse, subcommand};
use crate::console::Console;
use crate::duration;
use crate::flags::FlagSet;
use crate::format::Format;

const HELP: &str = "\
Usage: mayfly lease <subcommand> [options] [args]

  Manages the leases of secrets and tokens: look them up, renew them,
  revoke them. To list leases, use \"mayfly list sys/leases/lookup/<prefix>\".

Subcommands:
    lookup    Look up the lease of a secret
    renew     Renew the lease of a secret
    revoke    Revoke leases and their secrets";

const LOOKUP: Spec = Spec {
    help: "\
Usage: mayfly lease lookup [options] ID

  Looks up a lease by its ID: when it was issued, when it expires, and
  whether it can be renewed.

      $ mayfly lease lookup database/creds/readonly/2f6a614c...",
};

const RENEW: Spec = Spec {
    help: "\
Usage: mayfly lease renew [options] ID

  Renews the lease of a secret, extending the time it can be used before
  it is revoked. -increment asks for a TTL from now; the server may grant
  less, and never more than the lease's maximum TTL from its issue time.

      $ mayfly lease renew -increment=1h database/creds/readonly/2f6a614c...",
};

const REVOKE: Spec = Spec {
    help: "\
Usage: mayfly lease revoke [options] ID

  Revokes secrets by lease ID, or every lease whose ID starts with a
  prefix (-prefix). Without -sync the revocation is queued and retried
  by the server until it succeeds, across restarts; with -sync the
  command waits and reports failures. -force (with -prefix) deletes the
  leases even where the secrets engine fails to revoke them.

      $ mayfly lease revoke database/creds/readonly/2f6a614c...
      $ mayfly lease revoke -prefix aws/creds/deploy
      $ mayfly lease revoke -force -prefix consul/creds",
};

/// Dispatches `mayfly lease ...`.
pub async fn run(console: &mut Console, args: &[String]) -> i32 {
    let known = ["lookup", "renew", "revoke"];
    let (sub, rest) = match subcommand(console, "lease", HELP, &known, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    match sub {
        "lookup" => lookup(console, rest).await,
        "renew" => renew(console, rest).await,
        _ => revoke(console, rest).await,
    }
}

/// The one lease ID argument, or the exit code after saying what is wrong.
fn lease_id(console: &mut Console, spec: &Spec, args: &[String]) -> Result<String, i32> {
    match args {
        [] => {
            console.err("Missing ID!");
            Err(EXIT_USAGE)
        }
        [id] => Ok(id.trim().to_owned()),
        _ => Err(arg_count_error(console, spec, "1", args.len())),
    }
}

async fn lookup(console: &mut Console, args: &[String]) -> i32 {
    let (parsed, globals) = match parse(console, &LOOKUP, FlagSet::new(), args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let id = match lease_id(console, &LOOKUP, &parsed.args) {
        Ok(id) => id,
        Err(code) => return code,
    };
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let body = json!({ "lease_id": id });
    match client
        .request("PUT", "sys/leases/lookup", &[], Some(&body))
        .await
    {
        Ok(resp) => output_answer(console, &globals, resp, None),
        Err(e) => {
            console.err(&format!("error looking up lease id {id}: {e}"));
            EXIT_SERVER
        }
    }
}

async fn renew(console: &mut Console, args: &[String]) -> i32 {
    let mut fs = FlagSet::new();
    fs.duration(
        "increment",
        "TTL to ask for, from now (\"1h\", \"90s\"). The server may grant less. Without \
         it the secrets engine's TTL applies.",
    );
    let (parsed, globals) = match parse(console, &RENEW, fs, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let id = match lease_id(console, &RENEW, &parsed.args) {
        Ok(id) => id,
        Err(code) => return code,
    };
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let increment = duration::whole_seconds(parsed.duration("increment").unwrap_or(0)).max(0);
    let body = json!({ "lease_id": id, "increment": increment });
    match client
        .request("PUT", "sys/leases/renew", &[], Some(&body))
        .await
    {
        Ok(resp) => output_answer(console, &globals, resp, None),
        Err(e) => {
            console.err(&format!("Error renewing {id}: {e}"));
            EXIT_SERVER
        }
    }
}

async fn revoke(console: &mut Console, args: &[String]) -> i32 {
    let mut fs = FlagSet::new();
    fs.bool(
        "force",
        "Delete the leases even if the secrets engine fails to revoke their secrets. For \
         recovery when the secrets were removed by hand; requires -prefix.",
    )
    .alias("f", "force")
    .bool(
        "prefix",
        "Treat the ID as a prefix and revoke every lease under it.",
    )
    .bool(
        "sync",
        "Wait for the revocation and report failures, instead of queueing it.",
    );
    let (parsed, globals) = match parse(console, &REVOKE, fs, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let id = match parsed.args.as_slice() {
        [id] => id.trim().to_owned(),
        other => return arg_count_error(console, &REVOKE, "1", other.len()),
    };
    let (force, prefix, sync) = (
        parsed.bool("force"),
        parsed.bool("prefix"),
        parsed.bool("sync"),
    );
    if force && !prefix {
        console.err("Specifying -force requires also specifying -prefix");
        return EXIT_USAGE;
    }
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let path = if force {
        format!("sys/leases/revoke-force/{id}")
    } else if prefix {
        format!("sys/leases/revoke-prefix/{id}")
    } else {
        format!("sys/leases/revoke/{id}")
    };
    let body = (!force).then(|| json!({ "sync": sync }));
    if force {
        console.err(
            "Warning! Force-removing leases can cause Mayfly to become out of sync with \
             secret engines!",
        );
    }
    if let Err(e) = client.request("PUT", &path, &[], body.as_ref()).await {
        let what = if force {
            format!("Error force revoking leases with prefix {id}")
        } else if prefix {
            format!("Error revoking leases with prefix {id}")
        } else {
            format!("Error revoking lease {id}")
        };
        console.err(&format!("{what}: {e}"));
        return EXIT_SERVER;
    }
    if globals.format == Format::Table {
        console.out(&if force {
            format!("Success! Force revoked any leases with prefix: {id}")
        } else if sync && prefix {
            format!("Success! Revoked any leases with prefix: {id}")
        } else if sync {
            format!("Success! Revoked lease: {id}")
        } else {
            "All revocation operations queued successfully!".to_owned()
        });
    }
    EXIT_OK
}
