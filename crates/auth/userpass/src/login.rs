//! Login with a username and password, and the renewal check for tokens it issued.

use std::sync::Arc;

use mayfly_sdk::{
    Auth, Error, Request, Response, Result,
    cidr::remote_addr_allowed,
    framework::FieldData,
    token_fields::{equivalent_policies, login_display_name},
};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::{
    Userpass, password,
    user::{load_user, username},
};

/// Vault's answer to an unknown user and a wrong password alike.
const INVALID_CREDENTIALS: &str = "invalid username or password";

pub(crate) async fn login(
    state: Arc<Userpass>,
    req: Request,
    fields: FieldData,
) -> Result<Option<Response>> {
    let name = username(&fields)?;
    let given = Zeroizing::new(fields.string("password").unwrap_or_default());
    if given.is_empty() {
        return Err(Error::invalid("missing password"));
    }
    let user = load_user(req.storage()?.as_ref(), &name).await?;
    // An unknown user is checked against a dummy hash so the answer takes as long as for
    // a wrong password, and usernames cannot be probed by timing.
    let hash = match &user {
        Some(user) => user.password_hash.clone(),
        None => state.dummy_hash.get().await?,
    };
    let matches = password::verify(given, hash).await?;
    let user = match user {
        Some(user) if matches => user,
        _ => return Err(Error::invalid(INVALID_CREDENTIALS)),
    };

    if !user.token.token_bound_cidrs.is_empty()
        && !remote_addr_allowed(req.remote_addr.as_deref(), &user.token.token_bound_cidrs)
    {
        return Err(Error::PermissionDenied);
    }

    let mut metadata = Map::new();
    metadata.insert("username".into(), name.clone().into());
    let mut internal_data = Map::new();
    internal_data.insert("username".into(), name.clone().into());
    // Renewal refuses once the user's policies differ from what this token was issued with.
    internal_data.insert(
        "policies".into(),
        Value::from(user.token.token_policies.clone()),
    );
    let mut auth = Auth {
        display_name: login_display_name(&req.mount_point, &name),
        metadata: Some(metadata),
        internal_data,
        orphan: true,
        ..Auth::default()
    };
    user.token
        .apply_to_auth(&mut auth, req.remote_addr.as_deref());
    Ok(Some(Response {
        auth: Some(auth),
        ..Response::default()
    }))
}

/// Renewal follows the user's current lifetimes; it fails once the user is gone or their
/// policies changed, so a demoted user must log in again.
pub(crate) async fn renew(req: &Request, mut auth: Auth) -> Result<Auth> {
    let from = |map: Option<&Map<String, Value>>| {
        map.and_then(|map| map.get("username"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let name = from(Some(&auth.internal_data))
        .or_else(|| from(auth.metadata.as_ref()))
        .filter(|name| !name.is_empty())
        .ok_or_else(|| Error::invalid("failed to fetch username during renewal"))?;
    let user = load_user(req.storage()?.as_ref(), &name)
        .await?
        .ok_or_else(|| Error::invalid(format!("user {name:?} does not exist during renewal")))?;
    let issued: Vec<String> = match auth.internal_data.get("policies") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => auth.token_policies.clone(),
    };
    if !equivalent_policies(&user.token.token_policies, &issued) {
        return Err(Error::invalid("policies have changed, not renewing"));
    }
    user.token.apply_to_renewal(&mut auth);
    Ok(auth)
}
