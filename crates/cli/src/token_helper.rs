//! The token helper: the file `login` keeps the token in so later commands
//! run authenticated, and the order in which a token is looked for.
//! Mayfly writes `~/.mayfly-token`; an existing `~/.vault-token` (written
//! by the vault CLI) is still read when Mayfly has not stored one, so
//! switching clients does not force a new login.

use std::path::{Path, PathBuf};

use crate::console::Console;

/// The file `login` writes, relative to `HOME`.
pub const MAYFLY_FILE: &str = ".mayfly-token";
/// The vault CLI's file, read as a fallback.
pub const VAULT_FILE: &str = ".vault-token";

/// The environment variables that override the stored token, in order.
pub const TOKEN_VARS: [&str; 2] = ["MAYFLY_TOKEN", "VAULT_TOKEN"];

/// The token to use: `MAYFLY_TOKEN`, then `VAULT_TOKEN`, then
/// `~/.mayfly-token` if that file exists, else `~/.vault-token`.
pub fn lookup(console: &Console) -> Option<String> {
    if let Some(token) = console.env_any(&TOKEN_VARS) {
        return Some(token.trim().to_string());
    }
    stored(console)
}

/// The token kept on disk, ignoring the environment.
pub fn stored(console: &Console) -> Option<String> {
    let home = Path::new(console.env("HOME")?);
    let own = home.join(MAYFLY_FILE);
    // Once Mayfly has stored a token, that file is authoritative, even if
    // it was emptied to log out.
    let path = if own.exists() {
        own
    } else {
        home.join(VAULT_FILE)
    };
    let text = std::fs::read_to_string(path).ok()?;
    let token = text.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// Writes `token` to `~/.mayfly-token`, readable only by the owner since
/// it is a credential. Returns where it went.
pub fn store(console: &Console, token: &str) -> Result<PathBuf, String> {
    let home = console
        .env("HOME")
        .ok_or_else(|| "error getting user's home directory: $HOME is not defined".to_string())?;
    let path = Path::new(home).join(MAYFLY_FILE);
    write_private(&path, token.trim())
        .map_err(|e| format!("failed to write token to {}: {e}", path.display()))?;
    Ok(path)
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // `mode` only applies to new files; an older file may be wider open.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn console(pairs: &[(&str, &str)]) -> Console {
        let env: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Console::captured(env, Vec::new())
    }

    #[test]
    fn lookup_order() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_string_lossy().into_owned();
        assert_eq!(lookup(&console(&[("HOME", &home)])), None);

        std::fs::write(dir.path().join(VAULT_FILE), "vault-file\n").unwrap();
        assert_eq!(
            lookup(&console(&[("HOME", &home)])).as_deref(),
            Some("vault-file")
        );

        std::fs::write(dir.path().join(MAYFLY_FILE), "mayfly-file").unwrap();
        assert_eq!(
            lookup(&console(&[("HOME", &home)])).as_deref(),
            Some("mayfly-file")
        );
        assert_eq!(
            lookup(&console(&[("HOME", &home), ("VAULT_TOKEN", "v")])).as_deref(),
            Some("v")
        );
        assert_eq!(
            lookup(&console(&[
                ("HOME", &home),
                ("VAULT_TOKEN", "v"),
                ("MAYFLY_TOKEN", " m ")
            ]))
            .as_deref(),
            Some("m")
        );

        // An emptied Mayfly file means "logged out", not "use vault's".
        std::fs::write(dir.path().join(MAYFLY_FILE), "").unwrap();
        assert_eq!(lookup(&console(&[("HOME", &home)])), None);
    }

    #[test]
    fn store_writes_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_string_lossy().into_owned();
        let c = console(&[("HOME", &home)]);
        let path = store(&c, "hvs.abc\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "hvs.abc");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(stored(&c).as_deref(), Some("hvs.abc"));
        assert!(store(&console(&[]), "x").is_err());
    }
}
