//! `unwrap`: exchanges a single-use wrapping token for the response it
//! wraps and prints that response like `read` would.

use serde_json::{Value, json};

use super::output::{envelope, output_list, output_secret, print_field, raw_field};
use super::{EXIT_OK, Spec, api_error, arg_count_error, parse};
use crate::console::Console;
use crate::flags::FlagSet;
use crate::format::Format;

pub const SPEC: Spec = Spec {
    help: "\
Usage: mayfly unwrap [options] [TOKEN]

  Unwraps a wrapped response. The wrapping token is TOKEN or, without
  one, the current token (for instance when it was exported as
  VAULT_TOKEN). A wrapping token works once.

      $ mayfly unwrap hvs.CAES...",
};

pub async fn run(console: &mut Console, args: &[String]) -> i32 {
    let (parsed, globals) = match parse(console, &SPEC, FlagSet::new(), args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if parsed.args.len() > 1 {
        return arg_count_error(console, &SPEC, "0-1", parsed.args.len());
    }
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let wrapping_token = parsed
        .args
        .first()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    // The wrapping token either authenticates the call itself or, when
    // another token is in use, travels in the body: never both, because
    // using it twice would burn it.
    let (client, body) = match (wrapping_token, client.token()) {
        (None, _) => (client.clone(), None),
        (Some(wt), None) => (client.with_token(Some(wt)), None),
        (Some(wt), Some(current)) if wt == current => (client.clone(), None),
        (Some(wt), Some(_)) => (client.clone(), Some(json!({ "token": wt }))),
    };
    let secret = match client
        .request_optional("PUT", "sys/wrapping/unwrap", &[], body.as_ref())
        .await
    {
        Ok(v) => v.map(|v| envelope(&v)),
        Err(e) => return api_error(console, "Error unwrapping", &e),
    };
    let Some(secret) = secret else {
        if globals.format == Format::Table {
            console.out("Successfully unwrapped. There was no data in the wrapped secret.");
        }
        return EXIT_OK;
    };
    if let Some(field) = &globals.field {
        return print_field(console, globals.format, raw_field(&secret, field), field);
    }
    // A wrapped LIST answer prints as a list again.
    let is_list = secret
        .get("data")
        .and_then(|d| d.get("keys"))
        .is_some_and(Value::is_array);
    if is_list {
        return output_list(console, &globals, Some(&secret), "sys/wrapping/unwrap");
    }
    output_secret(console, &globals, &secret)
}
