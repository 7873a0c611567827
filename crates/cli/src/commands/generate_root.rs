//! `operator generate-root`: minting a new root token from a quorum of
//! unseal keys, and decoding the one-time-pad-protected result locally.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rand::RngExt as _;
use serde_json::{Value, json};

use super::{
    EXIT_OK, EXIT_SERVER, EXIT_USAGE, Globals, Spec, api_error, arg_count_error, bool_field,
    int_field, parse, print_data, print_raw, prompt_secret, str_field,
};
use crate::console::Console;
use crate::flags::FlagSet;
use crate::format::{self, Format};

/// Root tokens are a 4-character prefix plus 24 random characters, and
/// the one-time pad must be exactly as long as the token.
const DEFAULT_OTP_LENGTH: usize = 28;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

const ATTEMPT: &str = "sys/generate-root/attempt";

const SPEC: Spec = Spec {
    help: "\
Usage: mayfly operator generate-root [options] [KEY]

  Generates a new root token from a quorum of unseal keys.

    Start, letting the server create the one-time password (OTP):
      $ mayfly operator generate-root -init

    Provide each unseal key (asked for without echo when KEY is omitted):
      $ mayfly operator generate-root -nonce=NONCE KEY

    Decode the encoded token printed once the quorum is reached:
      $ mayfly operator generate-root -decode=ENCODED -otp=OTP

  Also: -status shows progress, -cancel aborts, -generate-otp prints a
  fresh OTP of the right length.",
};

pub async fn run(console: &mut Console, args: &[String]) -> i32 {
    let mut fs = FlagSet::new();
    fs.bool("init", "Start a root token generation.")
        .bool("cancel", "Cancel the root token generation in progress.")
        .bool("status", "Show the progress of the current generation.")
        .string(
            "decode",
            "Decode this encoded token with -otp. Use \"-\" to read it from stdin.",
        )
        .bool("generate-otp", "Print a new one-time password and exit.")
        .string("otp", "The one-time password, for -decode (or -init).")
        .string("nonce", "Nonce of the generation in progress.");
    let (parsed, globals) = match parse(console, &SPEC, fs, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let modes = ["init", "cancel", "status", "decode", "generate-otp"];
    let chosen: Vec<&str> = modes
        .iter()
        .copied()
        .filter(|m| parsed.is_set(m) && (parsed.bool(m) || parsed.string(m).is_some()))
        .collect();
    if chosen.len() > 1 {
        console.err("Only one of -init, -cancel, -status, -decode or -generate-otp may be given");
        return EXIT_USAGE;
    }
    let mode = chosen.first().copied().unwrap_or("update");
    if mode != "update" && !parsed.args.is_empty() {
        return arg_count_error(console, &SPEC, "0", parsed.args.len());
    }
    if mode == "decode" {
        return decode(
            console,
            &globals,
            parsed.string("decode"),
            parsed.string("otp"),
        );
    }
    let client = match globals.client(console) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match mode {
        "generate-otp" => {
            // An unreachable server or one that does not report a length
            // still gets an OTP of the standard token length.
            let length = match client.request("GET", ATTEMPT, &[], None).await {
                Ok(Some(v)) if int_field(&v, "otp_length") > 0 => {
                    usize::try_from(int_field(&v, "otp_length")).unwrap_or(DEFAULT_OTP_LENGTH)
                }
                _ => DEFAULT_OTP_LENGTH,
            };
            console.out(&generate_otp(length));
            EXIT_OK
        }
        "status" => match client.request("GET", ATTEMPT, &[], None).await {
            Ok(v) => print_status(console, &globals, &v.unwrap_or(Value::Null)),
            Err(e) => api_error(console, "Error getting root generation status", &e),
        },
        "cancel" => match client.request("DELETE", ATTEMPT, &[], None).await {
            Ok(_) => {
                console.out("Success! Root token generation canceled (if it was started)");
                EXIT_OK
            }
            Err(e) => api_error(console, "Error canceling root token generation", &e),
        },
        "init" => {
            let body = match parsed.string("otp").filter(|o| !o.is_empty()) {
                Some(otp) => json!({"otp": otp}),
                None => json!({}),
            };
            match client.request("PUT", ATTEMPT, &[], Some(&body)).await {
                Ok(v) => print_status(console, &globals, &v.unwrap_or(Value::Null)),
                Err(e) => api_error(console, "Error initializing root generation", &e),
            }
        }
        _ => {
            if parsed.args.len() > 1 {
                return arg_count_error(console, &SPEC, "0-1", parsed.args.len());
            }
            let nonce = match parsed.string("nonce").filter(|n| !n.is_empty()) {
                Some(n) => n.to_string(),
                None => {
                    let status = match client.request("GET", ATTEMPT, &[], None).await {
                        Ok(v) => v.unwrap_or(Value::Null),
                        Err(e) => {
                            return api_error(console, "Error getting root generation status", &e);
                        }
                    };
                    if !bool_field(&status, "started") {
                        console.err(
                            "No root generation is in progress. Start one with \
                             \"mayfly operator generate-root -init\".",
                        );
                        return EXIT_SERVER;
                    }
                    str_field(&status, "nonce").to_string()
                }
            };
            let key = match parsed.args.first() {
                Some(k) => k.trim().to_string(),
                None => {
                    console.err(&format!("Operation nonce: {nonce}"));
                    match prompt_secret(console, "Unseal Key (will be hidden): ") {
                        Ok(k) => k,
                        Err(code) => return code,
                    }
                }
            };
            let body = json!({"key": key, "nonce": nonce});
            match client
                .request("PUT", "sys/generate-root/update", &[], Some(&body))
                .await
            {
                Ok(v) => print_status(console, &globals, &v.unwrap_or(Value::Null)),
                Err(e) => api_error(console, "Error posting unseal key", &e),
            }
        }
    }
}

fn decode(
    console: &mut Console,
    globals: &Globals,
    encoded: Option<&str>,
    otp: Option<&str>,
) -> i32 {
    let Some(encoded) = encoded.filter(|e| !e.is_empty()) else {
        console.err("Missing encoded value: use -decode=<string> to supply it");
        return EXIT_USAGE;
    };
    let Some(otp) = otp.filter(|o| !o.is_empty()) else {
        console.err("Missing otp: use -otp to supply it");
        return EXIT_USAGE;
    };
    let encoded = if encoded == "-" {
        match console.read_stdin() {
            Ok(text) => text.trim().to_string(),
            Err(e) => {
                console.err(&format!("Error reading from stdin: {e}"));
                return EXIT_USAGE;
            }
        }
    } else {
        encoded.to_string()
    };
    let token = match decode_token(&encoded, otp) {
        Ok(t) => t,
        Err(e) => {
            console.err(&format!("Error decoding root token: {e}"));
            return EXIT_USAGE;
        }
    };
    match globals.format {
        Format::Table => print_raw(console, &token),
        other => print_data(console, other, &json!({"token": token})),
    }
    EXIT_OK
}

/// Reverses the server's encoding: base64 (padding optional), then XOR
/// with the OTP byte by byte.
pub fn decode_token(encoded: &str, otp: &str) -> Result<String, String> {
    let trimmed = encoded.trim().trim_end_matches('=');
    let bytes = STANDARD_NO_PAD
        .decode(trimmed)
        .map_err(|e| format!("invalid base64: {e}"))?;
    if bytes.len() != otp.len() {
        return Err(format!(
            "the encoded token is {} bytes but the OTP is {} characters",
            bytes.len(),
            otp.len()
        ));
    }
    let plain: Vec<u8> = bytes
        .iter()
        .zip(otp.as_bytes())
        .map(|(a, b)| a ^ b)
        .collect();
    String::from_utf8(plain).map_err(|_| "the OTP does not match this encoded token".to_string())
}

/// The inverse of [`decode_token`], padded as standard base64.
#[cfg(test)]
fn encode_token(token: &str, otp: &str) -> String {
    let xored: Vec<u8> = token
        .as_bytes()
        .iter()
        .zip(otp.as_bytes())
        .map(|(a, b)| a ^ b)
        .collect();
    base64::engine::general_purpose::STANDARD.encode(xored)
}

/// A random base62 string; only the server's token alphabet, so the
/// XOR of token and OTP stays within printable bytes.
pub fn generate_otp(length: usize) -> String {
    let mut rng = rand::rng();
    (0..length)
        .map(|_| char::from(BASE62[rng.random_range(0..BASE62.len())]))
        .collect()
}

fn print_status(console: &mut Console, globals: &Globals, status: &Value) -> i32 {
    match globals.format {
        Format::Table => {
            if !str_field(status, "otp").is_empty() {
                console.err(&format::wrap(
                    "A One-Time-Password has been generated for you and is shown in \
                     the OTP field. You will need this value to decode the resulting \
                     root token, so keep it safe.",
                ));
            }
            console.out(&status_table(status));
        }
        other => print_data(console, other, status),
    }
    EXIT_OK
}

fn status_table(status: &Value) -> String {
    let mut rows: Vec<(String, String)> = vec![
        ("Nonce".into(), str_field(status, "nonce").into()),
        ("Started".into(), bool_field(status, "started").to_string()),
        (
            "Progress".into(),
            format!(
                "{}/{}",
                int_field(status, "progress"),
                int_field(status, "required")
            ),
        ),
        (
            "Complete".into(),
            bool_field(status, "complete").to_string(),
        ),
    ];
    let fingerprint = str_field(status, "pgp_fingerprint");
    if !fingerprint.is_empty() {
        rows.push(("PGP Fingerprint".into(), fingerprint.into()));
    }
    let encoded = str_field(status, "encoded_token");
    let encoded_root = str_field(status, "encoded_root_token");
    if !encoded.is_empty() {
        rows.push(("Encoded Token".into(), encoded.into()));
    } else if !encoded_root.is_empty() {
        rows.push(("Encoded Root Token".into(), encoded_root.into()));
    }
    let otp = str_field(status, "otp");
    if !otp.is_empty() {
        rows.push(("OTP".into(), otp.into()));
    }
    let otp_length = int_field(status, "otp_length");
    if otp_length != 0 {
        rows.push(("OTP Length".into(), otp_length.to_string()));
    }
    format::pairs(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_round_trip() {
        let otp = generate_otp(DEFAULT_OTP_LENGTH);
        assert_eq!(otp.len(), DEFAULT_OTP_LENGTH);
        assert!(otp.bytes().all(|b| b.is_ascii_alphanumeric()));
        let token = "hvs.abcdefghijklmnopqrstuvwx";
        assert_eq!(token.len(), DEFAULT_OTP_LENGTH);
        let padded = encode_token(token, &otp);
        assert_eq!(decode_token(&padded, &otp).unwrap(), token);
        let unpadded = padded.trim_end_matches('=');
        assert_eq!(decode_token(unpadded, &otp).unwrap(), token);
    }

    #[test]
    fn decode_known_vector() {
        // "ab" XOR "AB" = [0x20, 0x20] = "ICA" in unpadded base64.
        assert_eq!(decode_token("ICA", "AB").unwrap(), "ab");
        assert_eq!(decode_token("ICA=", "AB").unwrap(), "ab");
    }

    #[test]
    fn decode_rejects_mismatches() {
        assert!(decode_token("ICA", "ABC").is_err());
        assert!(decode_token("!!!", "AB").is_err());
    }

    #[test]
    fn status_rows() {
        let status = json!({
            "nonce": "n1", "started": true, "progress": 1, "required": 3,
            "complete": false, "encoded_token": "", "otp": "otp123", "otp_length": 28
        });
        assert_eq!(
            status_table(&status),
            "Nonce         n1\nStarted       true\nProgress      1/3\nComplete      false\n\
             OTP           otp123\nOTP Length    28"
        );
        let done = json!({
            "nonce": "n1", "started": true, "progress": 3, "required": 3,
            "complete": true, "encoded_token": "ENC", "otp_length": 28
        });
        assert!(status_table(&done).contains("Encoded Token    ENC"));
    }
}
