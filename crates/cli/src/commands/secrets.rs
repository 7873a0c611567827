//! `secrets`: enable, disable, list, tune and move secrets engines.

use super::Spec;
use super::mounts::{self, Kind, Texts};
use crate::console::Console;

const HELP: &str = "\
Usage: mayfly secrets <subcommand> [options] [args]

  Manages secrets engines: the mounts that store, generate or encrypt
  data.

Subcommands:
    disable    Disable a secrets engine
    enable     Enable a secrets engine
    list       List enabled secrets engines
    move       Move a secrets engine to a new path
    tune       Tune a secrets engine's configuration";

const ENABLE: Spec = Spec {
    help: "\
Usage: mayfly secrets enable [options] TYPE

  Enables a secrets engine of the given type, at -path or at a path named
  after the type.

      $ mayfly secrets enable -path=kv -version=2 kv
      $ mayfly secrets enable -description=\"team secrets\" -path=team kv-v2",
};

const DISABLE: Spec = Spec {
    help: "\
Usage: mayfly secrets disable [options] PATH

  Disables the secrets engine at PATH. Its leases are revoked and its data
  is deleted.

      $ mayfly secrets disable kv/",
};

const LIST: Spec = Spec {
    help: "\
Usage: mayfly secrets list [options]

  Lists the enabled secrets engines. -detailed adds TTLs, replication and
  plugin details.",
};

const TUNE: Spec = Spec {
    help: "\
Usage: mayfly secrets tune [options] PATH

  Changes the configuration of the secrets engine at PATH. Only the
  options given are changed.

      $ mayfly secrets tune -default-lease-ttl=72h pki/",
};

const MOVE: Spec = Spec {
    help: "\
Usage: mayfly secrets move [options] SOURCE DESTINATION

  Moves the secrets engine at SOURCE to DESTINATION, keeping its
  configuration and data. Its leases are revoked.

      $ mayfly secrets move secret/ generic/",
};

/// What `secrets` prints about itself and its subcommands.
const TEXTS: Texts = Texts {
    group: "secrets",
    help: HELP,
    enable: ENABLE,
    disable: DISABLE,
    list: LIST,
    tune: TUNE,
    move_: MOVE,
    detailed: "Show TTLs, replication, options and plugin details of each engine.",
};

/// Dispatches `mayfly secrets ...`.
pub async fn run(console: &mut Console, args: &[String]) -> i32 {
    mounts::run(console, Kind::Secrets, &TEXTS, args).await
}
