//! `sys/wrapping/*`: wrap arbitrary data, unwrap, look up and rewrap wrapping tokens.

use std::sync::Arc;

use mayfly_sdk::{
    Error, Operation, Request, Response, Result,
    framework::{Field, FieldData, FieldKind, Path, handler},
};

use crate::Core;

pub(super) fn paths() -> Vec<Path<Core>> {
    let token = || Field::new("token", FieldKind::String, "A wrapping token.");
    vec![
        Path::new("wrapping/wrap")
            .arbitrary_input()
            .operation(Operation::Update, handler(wrap))
            .help(
                "Wrap data.",
                "Stores the request body in a new wrapping token.",
            ),
        Path::new("wrapping/unwrap")
            .field(token())
            .operation(Operation::Update, handler(unwrap))
            .help(
                "Unwrap.",
                "Returns a wrapped response and destroys the wrapping token.",
            ),
        Path::new("wrapping/lookup")
            .field(token())
            .operation(Operation::Update, handler(lookup))
            .operation(Operation::Read, handler(lookup))
            .help(
                "Look up a wrapping token.",
                "Reports when and where a wrapping token was made.",
            ),
        Path::new("wrapping/rewrap")
            .field(token())
            .operation(Operation::Update, handler(rewrap))
            .help(
                "Rewrap.",
                "Moves a wrapped response to a new wrapping token.",
            ),
    ]
}

async fn wrap(_: Arc<Core>, req: Request, _: FieldData) -> Result<Option<Response>> {
    if req.wrap_ttl.is_none() {
        return Err(Error::invalid(
            "endpoint requires response wrapping to be used",
        ));
    }
    // The pipeline wraps this response: its data is the request body.
    Ok(Some(Response::with_data(req.data)))
}

async fn unwrap(core: Arc<Core>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let body_token = fields.string("token").filter(|t| !t.is_empty());
    let caller = req.client_token.as_ref().map(|t| t.0.clone());
    match (body_token, caller) {
        (Some(token), caller) => {
            let spent = caller.as_deref() == Some(token.as_str());
            core.unwrap_response(&token, spent).await
        }
        (None, Some(token)) => core.unwrap_response(&token, true).await,
        (None, None) => Err(Error::invalid(
            "wrapping token is not valid or does not exist",
        )),
    }
}

async fn lookup(core: Arc<Core>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let token = fields
        .string("token")
        .filter(|t| !t.is_empty())
        .or_else(|| req.client_token.as_ref().map(|t| t.0.clone()))
        .ok_or_else(|| Error::invalid("missing \"token\" value in input"))?;
    Ok(Some(Response::with_data(
        core.lookup_wrapping(&token).await?,
    )))
}

async fn rewrap(core: Arc<Core>, req: Request, fields: FieldData) -> Result<Option<Response>> {
    let token = fields
        .string("token")
        .filter(|t| !t.is_empty())
        .or_else(|| req.client_token.as_ref().map(|t| t.0.clone()))
        .ok_or_else(|| Error::invalid("missing \"token\" value in input"))?;
    core.rewrap(&token).await.map(Some)
}
