//! `auth`: enable, disable, list, tune and move auth methods.

use super::Spec;
use super::mounts::{self, Kind, Texts};
use crate::console::Console;

const HELP: &str = "\
Usage: mayfly auth <subcommand> [options] [args]

  Manages auth methods: the mounts users and machines log in through. To
  log in, use \"mayfly login\".

Subcommands:
    disable    Disable an auth method
    enable     Enable an auth method
    list       List enabled auth methods
    move       Move an auth method to a new path
    tune       Tune an auth method's configuration";

const ENABLE: Spec = Spec {
    help: "\
Usage: mayfly auth enable [options] TYPE

  Enables an auth method of the given type, at -path or at a path named
  after the type.

      $ mayfly auth enable userpass
      $ mayfly auth enable -path=machines approle",
};

const DISABLE: Spec = Spec {
    help: "\
Usage: mayfly auth disable [options] PATH

  Disables the auth method at PATH. Every token it issued is revoked.

      $ mayfly auth disable userpass/",
};

const LIST: Spec = Spec {
    help: "\
Usage: mayfly auth list [options]

  Lists the enabled auth methods. -detailed adds TTLs, token types,
  replication and plugin details.",
};

const TUNE: Spec = Spec {
    help: "\
Usage: mayfly auth tune [options] PATH

  Changes the configuration of the auth method at PATH. Only the options
  given are changed.

      $ mayfly auth tune -default-lease-ttl=30m approle/",
};

const MOVE: Spec = Spec {
    help: "\
Usage: mayfly auth move [options] SOURCE DESTINATION

  Moves the auth method at SOURCE to DESTINATION, keeping its
  configuration. Tokens it issued are revoked.

      $ mayfly auth move auth/approle/ auth/machines/",
};

/// What `auth` prints about itself and its subcommands.
const TEXTS: Texts = Texts {
    group: "auth",
    help: HELP,
    enable: ENABLE,
    disable: DISABLE,
    list: LIST,
    tune: TUNE,
    move_: MOVE,
    detailed: "Show TTLs, token types, replication and plugin details of each method.",
};

/// Dispatches `mayfly auth ...`.
pub async fn run(console: &mut Console, args: &[String]) -> i32 {
    mounts::run(console, Kind::Auth, &TEXTS, args).await
}
