//! The one mapping from a logical error to an HTTP status and Vault's `{"errors":[...]}` body.

use mayfly_sdk::Error;

/// Status code and client-visible messages for an error.
///
/// Internal errors are logged here with their detail and answered with a generic message,
/// because their text can contain anything, secrets included.
pub fn status_and_messages(err: &Error, request_id: &str) -> (u16, Vec<String>) {
    match err {
        Error::InvalidRequest(message) => (400, vec![message.clone()]),
        Error::PermissionDenied => (403, vec!["permission denied".to_owned()]),
        Error::InvalidToken => (
            403,
            vec!["permission denied".to_owned(), "invalid token".to_owned()],
        ),
        Error::UnsupportedPath => (404, vec!["unsupported path".to_owned()]),
        Error::NotFound => (404, Vec::new()),
        Error::UnsupportedOperation => (405, vec!["unsupported operation".to_owned()]),
        Error::Conflict(message) => (409, vec![message.clone()]),
        Error::QuotaExceeded(message) => (429, vec![message.clone()]),
        Error::Sealed => (503, vec!["Vault is sealed".to_owned()]),
        Error::Upstream(message) => (502, vec![message.clone()]),
        Error::Coded { status, message } => (*status, vec![message.clone()]),
        Error::Internal(detail) => {
            tracing::error!(request_id, error = %detail, "Request failed with an internal error.");
            (
                500,
                vec![format!(
                    "internal error; see the server log for request {request_id}"
                )],
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_kind_has_vaults_status() {
        let cases = [
            (Error::invalid("bad"), 400),
            (Error::PermissionDenied, 403),
            (Error::InvalidToken, 403),
            (Error::UnsupportedPath, 404),
            (Error::NotFound, 404),
            (Error::UnsupportedOperation, 405),
            (Error::Conflict("x".into()), 409),
            (Error::QuotaExceeded("x".into()), 429),
            (Error::Upstream("x".into()), 502),
            (Error::Sealed, 503),
            (
                Error::Coded {
                    status: 412,
                    message: "x".into(),
                },
                412,
            ),
        ];
        for (err, status) in cases {
            assert_eq!(status_and_messages(&err, "r").0, status, "{err:?}");
        }
    }

    #[test]
    fn internal_detail_is_not_sent() {
        let (status, messages) = status_and_messages(&Error::internal("password=hunter2"), "r1");
        assert_eq!(status, 500);
        assert!(messages.iter().all(|m| !m.contains("hunter2")));
    }
}
