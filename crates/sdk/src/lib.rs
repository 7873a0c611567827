//! The plugin boundary: what an engine or auth method sees of Mayfly.
//!
//! Engines depend on this crate only. It defines logical requests and responses, the typed
//! error every handler returns, the logical storage an engine writes to, and the path-table
//! framework (`framework::Path`) engines declare their API with. It knows nothing of HTTP,
//! of encryption, or of the core's mount table.

pub mod cidr;
pub mod duration;
pub mod error;
pub mod framework;
pub mod inline_wake;
pub mod logical;
pub mod password;
pub mod storage;
pub mod system;
pub mod template;
pub mod testing;
pub mod token_fields;
pub mod ttl;

pub use crate::error::{Error, Result};
pub use crate::logical::{
    Auth, LogicalBackend, MountContext, MountTtls, Operation, RawResponse, Request, Response,
    SecretLease, StorageChange, WrapInfo,
};
pub use crate::storage::{Storage, StorageExt};
pub use crate::system::SystemView;
