//! `token`: create, look up, renew and revoke tokens, and show what a
//! token may do on a path.

use serde_json::{Map, Value, json};

use super::output::{envelope, is_wrapped, output_answer, output_secret};
use super::{
    EXIT_OK, EXIT_USAGE, Spec, api_error, arg_count_error, parse, payload, print_data, subcommand,
    usage_error,
};
use crate::client::Client;
use crate::console::Console;
use crate::duration;
use crate::flags::{FlagSet, Parsed};
use crate::format::Format;

const HELP: &str = "\
Usage: mayfly token <subcommand> [options] [args]

  Manages tokens: create them, inspect them, extend or end their lives.
  To log in with a token, use \"mayfly login\".

Subcommands:
    capabilities    Print the capabilities of a token on a path
    create          Create a new token
    lookup          Display information about a token
    renew           Renew a token's lease
    revoke          Revoke a token and its children";

const CREATE: Spec = Spec {
    help: "\
Usage: mayfly token create [options]

  Creates a token as a child of the current one. It gets the current
  token's policies unless -policy names a subset. Metadata (-metadata) is
  written to the audit log whenever the token is used. A -role may
  override the other options.

      $ mayfly token create -policy=dev -ttl=1h
      $ mayfly token create -orphan -period=24h -metadata=team=ops",
};

const LOOKUP: Spec = Spec {
    help: "\
Usage: mayfly token lookup [options] [TOKEN | ACCESSOR]

  Displays information about a token: the current one without arguments,
  another one by its value, or by its accessor with -accessor.",
};

const RENEW: Spec = Spec {
    help: "\
Usage: mayfly token renew [options] [TOKEN | ACCESSOR]

  Renews a token's lease: the current one without arguments, another one
  by its value, or by its accessor with -accessor. -increment asks for a
  TTL from now, which the server may shorten.",
};

const REVOKE: Spec = Spec {
    help: "\
Usage: mayfly token revoke [options] [TOKEN | ACCESSOR]

  Revokes a token, its children and their leases. -self revokes the
  current token, -accessor takes an accessor. -mode=orphan revokes only
  the token and leaves its children as orphans; -mode=path revokes every
  token created under the given path prefix.",
};

const CAPABILITIES: Spec = Spec {
    help: "\
Usage: mayfly token capabilities [options] [TOKEN] PATH

  Prints what a token may do on PATH: the current token without a TOKEN
  argument.

      $ mayfly token capabilities secret/data/app",
};

/// Dispatches `mayfly token ...`.
pub async fn run(console: &mut Console, args: &[String]) -> i32 {
    let known = ["capabilities", "create", "lookup", "renew", "revoke"];
    let (sub, rest) = match subcommand(console, "token", HELP, &known, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    match sub {
        "create" => create(console, rest).await,
        "lookup" => lookup(console, rest).await,
        "renew" => renew(console, rest).await,
        "revoke" => revoke(console, rest).await,
        _ => capabilities(console, rest).await,
    }
}

fn create_flags() -> FlagSet {
    let mut fs = FlagSet::new();
    fs.string(
        "id",
        "Value of the token instead of a generated one. Requires sudo.",
    )
    .string(
        "display-name",
        "Name to associate with the token, used in the names of secrets it creates.",
    )
    .duration(
        "ttl",
        "Initial TTL. Renewals may extend it up to the maximum TTL.",
    )
    .duration(
        "explicit-max-ttl",
        "Hard limit on the token's lifetime that renewals cannot pass.",
    )
    .duration(
        "period",
        "Make a periodic token: every renewal resets its TTL to this. Requires sudo.",
    )
    .bool(
        "renewable",
        "Allow the token to be renewed up to its maximum TTL. The default is true.",
    )
    .bool(
        "orphan",
        "Create the token without a parent, so revoking the current token leaves it \
         alive. Requires root or sudo.",
    )
    .bool(
        "no-default-policy",
        "Leave the \"default\" policy off the token.",
    )
    .int(
        "use-limit",
        "Number of uses after which the token is revoked. 0 means unlimited.",
    )
    .string(
        "role",
        "Token role to create the token against; the role may override other options.",
    )
    .string(
        "type",
        "Type of token: \"service\" (the default) or \"batch\".",
    )
    .map(
        "metadata",
        "Metadata as key=value, written to the audit log when the token is used. May be \
         repeated.",
    )
    .list("policy", "Policy to attach to the token. May be repeated.")
    .string(
        "entity-alias",
        "Entity alias to associate the token with; only together with -role.",
    );
    fs
}

/// The body of a create request, in the Go client's field set.
fn create_body(parsed: &Parsed) -> Value {
    let token_type = parsed.string("type").unwrap_or("service");
    let renewable = if token_type == "batch" {
        // Batch tokens can never be renewed; asking would be an error.
        false
    } else {
        !parsed.is_set("renewable") || parsed.bool("renewable")
    };
    let ttl = |flag: &str| duration::go_string(parsed.duration(flag).unwrap_or(0));
    let mut body = Map::new();
    if let Some(id) = parsed.string("id").filter(|s| !s.is_empty()) {
        body.insert("id".into(), id.into());
    }
    let policies = parsed.list("policy");
    if !policies.is_empty() {
        body.insert("policies".into(), json!(policies));
    }
    let meta = parsed.map("metadata");
    if !meta.is_empty() {
        body.insert("meta".into(), json!(meta));
    }
    body.insert("ttl".into(), ttl("ttl").into());
    body.insert("explicit_max_ttl".into(), ttl("explicit-max-ttl").into());
    body.insert("period".into(), ttl("period").into());
    if parsed.bool("orphan") {
        body.insert("no_parent".into(), true.into());
    }
    if parsed.bool("no-default-policy") {
        body.insert("no_default_policy".into(), true.into());
    }
    body.insert(
        "display_name".into(),
        parsed.string("display-name").unwrap_or("").into(),
    );
    body.insert(
        "num_uses".into(),
        parsed.int("use-limit").unwrap_or(0).into(),
    );
    body.insert("renewable".into(), renewable.into());
    body.insert("type".into(), token_type.into());
    body.insert(
        "entity_alias".into(),
        parsed.string("entity-alias").unwrap_or("").into(),
    );
    Value::Object(body)
}

async fn create(console: &mut Console, args: &[String]) -> i32 {
    let (parsed, globals) = match parse(console, &CREATE, create_flags(), args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if !parsed.args.is_empty() {
        return arg_count_error(console, &CREATE, "0", parsed.args.len());
    }
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let path = match parsed.string("role").filter(|r| !r.is_empty()) {
        Some(role) => format!("auth/token/create/{role}"),
        None => "auth/token/create".to_string(),
    };
    let body = create_body(&parsed);
    match client.request("POST", &path, &[], Some(&body)).await {
        Ok(resp) => output_answer(console, &globals, resp, None),
        Err(e) => api_error(console, "Error creating token", &e),
    }
}

/// The optional TOKEN argument, trimmed.
fn token_arg(parsed: &Parsed) -> Option<String> {
    parsed
        .args
        .first()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

async fn lookup(console: &mut Console, args: &[String]) -> i32 {
    let mut fs = FlagSet::new();
    fs.bool(
        "accessor",
        "Treat the argument as an accessor instead of a token.",
    );
    let (parsed, globals) = match parse(console, &LOOKUP, fs, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let accessor = parsed.bool("accessor");
    let count = parsed.args.len();
    if accessor && count != 1 {
        let which = if count < 1 { "Not enough" } else { "Too many" };
        return usage_error(
            console,
            &LOOKUP,
            &format!("{which} arguments with -accessor (expected 1, got {count})"),
        );
    }
    if count > 1 {
        return arg_count_error(console, &LOOKUP, "0-1", count);
    }
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let result = match (token_arg(&parsed), accessor) {
        (None, _) => {
            client
                .request("GET", "auth/token/lookup-self", &[], None)
                .await
        }
        (Some(a), true) => {
            let body = json!({ "accessor": a });
            client
                .request("POST", "auth/token/lookup-accessor", &[], Some(&body))
                .await
        }
        (Some(t), false) => {
            let body = json!({ "token": t });
            client
                .request("POST", "auth/token/lookup", &[], Some(&body))
                .await
        }
    };
    match result {
        Ok(resp) => output_answer(console, &globals, resp, None),
        Err(e) => api_error(console, "Error looking up token", &e),
    }
}

async fn renew(console: &mut Console, args: &[String]) -> i32 {
    let mut fs = FlagSet::new();
    fs.duration(
        "increment",
        "TTL to ask for, from now. The server may grant less, for instance for periodic \
         tokens. Without it the token's default TTL applies.",
    )
    .alias("i", "increment")
    .bool(
        "accessor",
        "Treat the argument as an accessor instead of a token.",
    );
    let (parsed, globals) = match parse(console, &RENEW, fs, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if parsed.args.len() > 1 {
        return arg_count_error(console, &RENEW, "1", parsed.args.len());
    }
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Increments are whole seconds; anything shorter means "default".
    let increment = duration::whole_seconds(parsed.duration("increment").unwrap_or(0)).max(0);
    let result = match (token_arg(&parsed), parsed.bool("accessor")) {
        (None, _) => {
            let body = json!({ "increment": increment });
            client
                .request("PUT", "auth/token/renew-self", &[], Some(&body))
                .await
        }
        (Some(a), true) => {
            let body = json!({ "accessor": a, "increment": increment });
            client
                .request("POST", "auth/token/renew-accessor", &[], Some(&body))
                .await
        }
        (Some(t), false) => {
            let body = json!({ "increment": increment, "token": t });
            client
                .request("PUT", "auth/token/renew", &[], Some(&body))
                .await
        }
    };
    match result {
        Ok(resp) => output_answer(console, &globals, resp, None),
        Err(e) => api_error(console, "Error renewing token", &e),
    }
}

async fn revoke(console: &mut Console, args: &[String]) -> i32 {
    let mut fs = FlagSet::new();
    fs.bool(
        "accessor",
        "Treat the argument as an accessor instead of a token.",
    )
    .bool("self", "Revoke the current token.")
    .string(
        "mode",
        "What to revoke: \"\" (the token and its children), \"orphan\" (only the token; \
         its children become orphans) or \"path\" (every token under the path prefix).",
    );
    let (parsed, globals) = match parse(console, &REVOKE, fs, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let mode = parsed.string("mode").unwrap_or("");
    let this = parsed.bool("self");
    let accessor = parsed.bool("accessor");
    let count = parsed.args.len();
    if !matches!(mode, "" | "orphan" | "path") {
        return usage_error(console, &REVOKE, &format!("Invalid mode: {mode}"));
    }
    let problem = if this && count > 0 {
        Some(format!(
            "Too many arguments with -self (expected 0, got {count})"
        ))
    } else if !this && count > 1 {
        Some(format!(
            "Too many arguments (expected 1 or -self, got {count})"
        ))
    } else if !this && count < 1 {
        Some(format!(
            "Not enough arguments (expected 1 or -self, got {count})"
        ))
    } else if this && accessor {
        Some("Cannot use -self with -accessor!".to_string())
    } else if this && !mode.is_empty() {
        Some("Cannot use -self with -mode!".to_string())
    } else if accessor && !mode.is_empty() {
        Some(format!("Cannot use -accessor with -mode={mode}!"))
    } else {
        None
    };
    if let Some(message) = problem {
        return usage_error(console, &REVOKE, &message);
    }
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let token = parsed
        .args
        .first()
        .map(|t| t.trim().to_string())
        .unwrap_or_default();
    let result = revoke_request(&client, this, accessor, mode, &token).await;
    if let Err(e) = result {
        return api_error(console, "Error revoking token", &e);
    }
    console.out("Success! Revoked token (if it existed)");
    EXIT_OK
}

async fn revoke_request(
    client: &Client,
    this: bool,
    accessor: bool,
    mode: &str,
    token: &str,
) -> Result<Option<Value>, crate::client::ApiError> {
    if this {
        return client
            .request("PUT", "auth/token/revoke-self", &[], None)
            .await;
    }
    if accessor {
        let body = json!({ "accessor": token });
        return client
            .request("POST", "auth/token/revoke-accessor", &[], Some(&body))
            .await;
    }
    match mode {
        "orphan" => {
            let body = json!({ "token": token });
            client
                .request("PUT", "auth/token/revoke-orphan", &[], Some(&body))
                .await
        }
        "path" => {
            let prefix = token.trim_matches('/');
            client
                .request(
                    "PUT",
                    &format!("sys/leases/revoke-prefix/{prefix}"),
                    &[],
                    None,
                )
                .await
        }
        _ => {
            let body = json!({ "token": token });
            client
                .request("PUT", "auth/token/revoke", &[], Some(&body))
                .await
        }
    }
}

async fn capabilities(console: &mut Console, args: &[String]) -> i32 {
    let (parsed, globals) = match parse(console, &CAPABILITIES, FlagSet::new(), args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let (token, path) = match parsed.args.as_slice() {
        [path] => (None, path.clone()),
        [token, path] => (Some(token.clone()), path.clone()),
        other => return arg_count_error(console, &CAPABILITIES, "1-2", other.len()),
    };
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (endpoint, body) = match token {
        // The Go client names the calling token in the body even for the
        // -self endpoint; servers ignore it there.
        None => (
            "sys/capabilities-self",
            json!({"path": path, "token": client.token().unwrap_or("")}),
        ),
        Some(t) => ("sys/capabilities", json!({"path": path, "token": t})),
    };
    let resp = match client.request("POST", endpoint, &[], Some(&body)).await {
        Ok(v) => envelope(&v.unwrap_or(Value::Null)),
        Err(e) => return api_error(console, "Error listing capabilities", &e),
    };
    if is_wrapped(&resp) {
        return output_secret(console, &globals, &resp);
    }
    let Some(mut caps) = capability_list(&resp, &path) else {
        console.err("No capabilities found");
        return EXIT_USAGE;
    };
    match globals.format {
        Format::Table => {
            caps.sort();
            console.out(&caps.join(", "));
        }
        other => print_data(console, other, &json!(caps)),
    }
    EXIT_OK
}

/// The capabilities listed for `path`, falling back to the legacy
/// single-path `capabilities` field.
fn capability_list(resp: &Value, path: &str) -> Option<Vec<String>> {
    let data = payload(resp);
    let strings = |v: &Value| -> Option<Vec<String>> {
        let items: Vec<String> = v
            .as_array()?
            .iter()
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect();
        (!items.is_empty()).then_some(items)
    };
    data.get(path)
        .and_then(strings)
        .or_else(|| data.get("capabilities").and_then(strings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Parsed {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        create_flags().parse(&args).unwrap()
    }

    #[test]
    fn create_body_defaults() {
        assert_eq!(
            create_body(&parsed(&[])),
            json!({
                "ttl": "0s", "explicit_max_ttl": "0s", "period": "0s", "display_name": "",
                "num_uses": 0, "renewable": true, "type": "service", "entity_alias": ""
            })
        );
    }

    #[test]
    fn create_body_options() {
        let body = create_body(&parsed(&[
            "-policy=a",
            "-policy",
            "b",
            "-metadata=user=bob",
            "-metadata=team=x",
            "-ttl=1h",
            "-period=30",
            "-orphan",
            "-no-default-policy",
            "-use-limit=3",
            "-display-name=ci",
            "-id=custom",
            "-renewable=false",
        ]));
        assert_eq!(body["policies"], json!(["a", "b"]));
        assert_eq!(body["meta"], json!({"team": "x", "user": "bob"}));
        assert_eq!(body["ttl"], json!("1h0m0s"));
        assert_eq!(body["period"], json!("30s"));
        assert_eq!(body["no_parent"], json!(true));
        assert_eq!(body["no_default_policy"], json!(true));
        assert_eq!(body["num_uses"], json!(3));
        assert_eq!(body["display_name"], json!("ci"));
        assert_eq!(body["id"], json!("custom"));
        assert_eq!(body["renewable"], json!(false));
        let batch = create_body(&parsed(&["-type=batch"]));
        assert_eq!(batch["renewable"], json!(false));
    }

    #[test]
    fn capabilities_from_responses() {
        let resp =
            json!({"data": {"secret/foo": ["read", "list"], "capabilities": ["read", "list"]}});
        assert_eq!(
            capability_list(&resp, "secret/foo"),
            Some(vec!["read".to_string(), "list".to_string()])
        );
        let legacy = json!({"capabilities": ["deny"]});
        assert_eq!(
            capability_list(&legacy, "x"),
            Some(vec!["deny".to_string()])
        );
        assert_eq!(capability_list(&json!({"data": {}}), "x"), None);
    }
}
