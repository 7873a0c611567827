//! `login`: authenticates with a token, AppRole or username/password, then
//! keeps the resulting token in the token helper so later commands use it.

use serde_json::{Map, Value, json};

use super::kv_verbs::parse_kv;
use super::output::{output_secret, print_field, raw_field};
use super::{
    EXIT_OK, EXIT_SERVER, EXIT_USAGE, Spec, bool_field, int_field, parse, str_field, usage_error,
};
use crate::client::Client;
use crate::console::Console;
use crate::flags::FlagSet;
use crate::format::{self, Format};
use crate::token_helper;

pub const SPEC: Spec = Spec {
    help: "\
Usage: mayfly login [options] [AUTH K=V...]

  Authenticates to the server and stores the resulting token in the token
  helper (~/.mayfly-token) so later commands use it.

  The default method is \"token\". Without a token argument the token is
  asked for without echo; \"-\" reads it from standard input:

      $ mayfly login hvs.CAESI...
      $ mayfly login token=hvs.CAESI... lookup=false

  Other methods take K=V pairs; -path names where the method is enabled
  when that is not the method's own name:

      $ mayfly login -method=userpass username=sally
      $ mayfly login -method=approle role_id=... secret_id=...
      $ mayfly login -method=userpass -path=people username=sally

  When the login is wrapped (-wrap-ttl), the token is unwrapped before it
  is stored, unless -token-only or -no-store is given: then the wrapping
  token itself is shown.",
};

/// The auth methods the CLI knows how to drive.
const METHODS: [&str; 3] = ["approle", "token", "userpass"];

pub async fn run(console: &mut Console, args: &[String]) -> i32 {
    let mut fs = FlagSet::new();
    fs.string(
        "method",
        "Type of authentication: token (the default), userpass or approle. This is the \
         method's type; -path says where it is enabled.",
    )
    .string(
        "path",
        "Where the auth method is enabled, without the auth/ prefix. Defaults to the \
         method's type (userpass -> userpass/).",
    )
    .bool(
        "no-store",
        "Do not store the token in the token helper; only display it.",
    )
    .bool(
        "no-print",
        "Do not display the token. It is still stored in the token helper.",
    )
    .bool(
        "token-only",
        "Print only the token, with no decoration and without storing it. A shortcut \
         for -field=token -no-store.",
    );
    let (parsed, mut globals) = match parse(console, &SPEC, fs, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let token_only = parsed.bool("token-only");
    let no_store = token_only || parsed.bool("no-store");
    let no_print = parsed.bool("no-print");
    if token_only {
        globals.field = Some("token".to_string());
    }
    if no_store && no_print {
        return usage_error(
            console,
            &SPEC,
            "-no-store and -no-print cannot be used together",
        );
    }
    let method = parsed.string("method").unwrap_or("").trim_matches('/');
    let method = if method.is_empty() { "token" } else { method };
    if !METHODS.contains(&method) {
        console.err(&format::wrap(&format!(
            "Unknown auth method: {method}. Use \"mayfly auth list\" to see the complete \
             list of auth methods. Additionally, some auth methods are only available \
             via the HTTP API."
        )));
        return EXIT_USAGE;
    }

    let mut auth_args = parsed.args.clone();
    if method == "token"
        && let Some(first) = auth_args.first_mut()
        && !first.contains('=')
    {
        *first = format!("token={first}");
    }
    let config = match parse_kv(console, &auth_args) {
        Ok(map) => strings(map),
        Err(e) => {
            console.err(&format!("Error parsing configuration: {e}"));
            return EXIT_USAGE;
        }
    };
    let mount = config_str(&config, "mount")
        .or(parsed.string("path"))
        .unwrap_or(method)
        .trim_matches('/')
        .to_string();

    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Only the token method logs in with a token; any token lying around
    // from an earlier login must not be sent to other methods.
    let login_client = if method == "token" {
        client.clone()
    } else {
        client.with_token(None)
    };
    let secret = match method {
        "token" => token_login(console, &login_client, &config).await,
        "userpass" => userpass_login(console, &login_client, &config, &mount).await,
        _ => approle_login(&login_client, &config, &mount).await,
    };
    let secret = match secret {
        Ok(s) => s,
        Err(message) => {
            console.err(&format!("Error authenticating: {message}"));
            return EXIT_SERVER;
        }
    };

    let (secret, wrapped) = match extract_token(&client, secret, !no_store).await {
        Ok(v) => v,
        Err(message) => {
            console.err(&format!("Error extracting token: {message}"));
            return EXIT_SERVER;
        }
    };
    if wrapped {
        if token_only {
            return print_field(
                console,
                Format::Table,
                raw_field(&secret, "wrapping_token"),
                "wrapping_token",
            );
        }
        return output_secret(console, &globals, &secret);
    }
    let token = str_field(&secret["auth"], "client_token").to_string();

    if !no_store {
        if let Err(e) = token_helper::store(console, &token) {
            console.err(&format!("Error storing token: {e}"));
            console.err(&format!(
                "{}\n",
                format::wrap(
                    "Authentication was successful, but the token was not persisted. The \
                     resulting token is shown below for your records."
                )
            ));
            output_secret(console, &globals, &secret);
            return EXIT_SERVER;
        }
        warn_about_token_env(console);
    } else if !token_only {
        console.err(&format!(
            "{}\n",
            format::wrap(
                "The token was not stored in token helper. Set the MAYFLY_TOKEN environment \
                 variable or pass the token below with each request to Mayfly."
            )
        ));
    }

    if no_print {
        return EXIT_OK;
    }
    if let Some(field) = globals.field.clone() {
        return print_field(console, globals.format, raw_field(&secret, &field), &field);
    }
    if globals.format == Format::Table {
        console.out(&format!(
            "{}\n",
            format::wrap(
                "Success! You are now authenticated. The token information displayed below \
                 is already stored in the token helper. You do NOT need to run \"mayfly \
                 login\" again. Future Mayfly requests will automatically use this token."
            )
        ));
    }
    output_secret(console, &globals, &secret)
}

/// K=V values as strings, the way the auth handlers read them.
fn strings(map: Map<String, Value>) -> Map<String, Value> {
    map.into_iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s,
                other => format::go_value(&other),
            };
            (k, Value::String(text))
        })
        .collect()
}

fn config_str<'a>(config: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    config.get(key).and_then(Value::as_str)
}

/// Validates a token by looking it up, and presents what the lookup says
/// as if a login had returned it.
async fn token_login(
    console: &mut Console,
    client: &Client,
    config: &Map<String, Value>,
) -> Result<Value, String> {
    // Checked before prompting: typing a token only to hear that another
    // argument was wrong would be annoying.
    let lookup = match config_str(config, "lookup") {
        None => true,
        Some(v) => parse_go_bool(v).ok_or_else(|| {
            format!(
                "Failed to parse \"lookup\" as boolean: strconv.ParseBool: parsing {v:?}: \
                 invalid syntax"
            )
        })?,
    };
    let token = match config_str(config, "token") {
        Some(t) => t.trim().to_string(),
        None => console
            .read_secret("Token (will be hidden): ")
            .map_err(|e| {
                format!("An error occurred attempting to ask for a token. The raw error was: {e}")
            })?,
    };
    if token.is_empty() {
        return Err(
            "a token must be passed to auth, please view the help for more information".to_string(),
        );
    }
    if !lookup {
        return Ok(json!({"auth": {"client_token": token}}));
    }
    let info = client
        .with_token(Some(token.clone()))
        .without_wrapping()
        .request("GET", "auth/token/lookup-self", &[], None)
        .await
        .map_err(|e| format!("error looking up token: {e}"))?
        .ok_or_else(|| "empty response from lookup-self".to_string())?;
    Ok(auth_from_lookup(&info, &token))
}

/// An auth block built from a token lookup: the lookup reports the same
/// facts under different names.
fn auth_from_lookup(info: &Value, token: &str) -> Value {
    let data = info.get("data").unwrap_or(&Value::Null);
    let id = str_field(data, "id");
    let token_policies = data.get("policies").cloned().unwrap_or(Value::Null);
    let identity_policies = data
        .get("identity_policies")
        .cloned()
        .unwrap_or(Value::Null);
    let mut policies: Vec<Value> = Vec::new();
    for list in [&token_policies, &identity_policies] {
        if let Value::Array(items) = list {
            policies.extend(items.iter().cloned());
        }
    }
    let metadata = data
        .get("metadata")
        .filter(|m| m.is_object())
        .or_else(|| data.get("meta").filter(|m| m.is_object()))
        .cloned()
        .unwrap_or(Value::Null);
    json!({
        "auth": {
            "client_token": if id.is_empty() { token } else { id },
            "accessor": str_field(data, "accessor"),
            "policies": if token_policies.is_null() { Value::Null } else { Value::Array(policies) },
            "token_policies": token_policies,
            "identity_policies": identity_policies,
            "metadata": metadata,
            "lease_duration": int_field(data, "ttl"),
            "renewable": bool_field(data, "renewable"),
        }
    })
}

async fn userpass_login(
    console: &mut Console,
    client: &Client,
    config: &Map<String, Value>,
    mount: &str,
) -> Result<Value, String> {
    let username = config_str(config, "username").unwrap_or("");
    if username.is_empty() {
        return Err("'username' must be specified".to_string());
    }
    let password = match config_str(config, "password").filter(|p| !p.is_empty()) {
        Some(p) => p.to_string(),
        None => console
            .read_secret("Password (will be hidden): ")
            .map_err(|e| e.to_string())?,
    };
    let body = json!({ "password": password });
    client
        .request(
            "PUT",
            &format!("auth/{mount}/login/{username}"),
            &[],
            Some(&body),
        )
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "empty response from credential provider".to_string())
}

async fn approle_login(
    client: &Client,
    config: &Map<String, Value>,
    mount: &str,
) -> Result<Value, String> {
    let role_id = config_str(config, "role_id").unwrap_or("");
    if role_id.is_empty() {
        return Err("'role_id' must be specified".to_string());
    }
    let mut body = json!({ "role_id": role_id });
    // Roles created with bind_secret_id=false take no secret ID at all.
    if let Some(secret_id) = config_str(config, "secret_id") {
        body["secret_id"] = Value::String(secret_id.to_string());
    }
    client
        .request("PUT", &format!("auth/{mount}/login"), &[], Some(&body))
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "empty response from credential provider".to_string())
}

/// Gets to the auth block of a login response, unwrapping a wrapped login
/// when `unwrap` is set. The flag in the result says the response is
/// still wrapped.
async fn extract_token(
    client: &Client,
    mut secret: Value,
    unwrap: bool,
) -> Result<(Value, bool), String> {
    // Unwrapping yields another response that could itself be wrapped;
    // a handful of layers is more than any server produces.
    for _ in 0..8 {
        if secret.get("auth").is_some_and(Value::is_object) {
            return Ok((secret, false));
        }
        let Some(wrap) = secret.get("wrap_info").filter(|w| w.is_object()) else {
            return Err("no auth or wrapping info in response".to_string());
        };
        if str_field(wrap, "wrapped_accessor").is_empty() {
            return Err("wrapped response does not contain a token".to_string());
        }
        if !unwrap {
            return Ok((secret, true));
        }
        let wrapping_token = str_field(wrap, "token").to_string();
        secret = client
            .with_token(Some(wrapping_token))
            .without_wrapping()
            .request("PUT", "sys/wrapping/unwrap", &[], None)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "empty response from auth helper".to_string())?;
    }
    Err("too many layers of wrapping".to_string())
}

/// A token in the environment wins over the stored one, which would make
/// the login look ineffective.
fn warn_about_token_env(console: &mut Console) {
    let Some(var) = token_helper::TOKEN_VARS
        .iter()
        .find(|v| console.env(v).is_some())
    else {
        return;
    };
    console.err(&format!(
        "{}\n",
        format::wrap(&format!(
            "WARNING! The {var} environment variable is set! The value of this variable \
             will take precedence; if this is unwanted please unset {var} or update its \
             value accordingly."
        ))
    ));
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_becomes_auth() {
        let info = json!({"data": {
            "id": "hvs.x", "accessor": "acc", "policies": ["default", "dev"],
            "identity_policies": ["team"], "meta": {"user": "bob"}, "ttl": 3600,
            "renewable": true
        }});
        let secret = auth_from_lookup(&info, "hvs.x");
        assert_eq!(
            secret["auth"],
            json!({
                "client_token": "hvs.x", "accessor": "acc",
                "policies": ["default", "dev", "team"],
                "token_policies": ["default", "dev"], "identity_policies": ["team"],
                "metadata": {"user": "bob"}, "lease_duration": 3600, "renewable": true
            })
        );
        let root = auth_from_lookup(&json!({"data": {"id": "root", "policies": ["root"]}}), "r");
        assert_eq!(root["auth"]["identity_policies"], Value::Null);
        assert_eq!(root["auth"]["policies"], json!(["root"]));
    }

    #[test]
    fn bools() {
        assert_eq!(parse_go_bool("false"), Some(false));
        assert_eq!(parse_go_bool("T"), Some(true));
        assert_eq!(parse_go_bool("yes"), None);
    }
}
