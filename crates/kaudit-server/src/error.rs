//! [`ApiError`]: the one error type of every HTTP handler, rendered as `{"error": "..."}`.
//!
//! A 4xx carries the reason the client needs; a 5xx carries a generic text and the real
//! error goes to the log (never with request bodies, keys or tokens).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kaudit_proto::ErrorBody;
use kaudit_store::StoreError;

/// An error answered to an HTTP client.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the request is malformed; the text says where and why.
    BadRequest(String),
    /// 401: no valid intake key or API token.
    Unauthorized,
    /// 403: the token's role may not do this.
    Forbidden,
    /// 404: no such object.
    NotFound(String),
    /// 409: a name is taken.
    Conflict(String),
    /// 413: the body or its decompressed size is over the limit.
    TooLarge(String),
    /// 415: an unsupported `Content-Encoding`.
    UnsupportedEncoding(String),
    /// 422: a rule file or policy that does not load; the text names the position.
    Unprocessable(String),
    /// 500: something failed on our side; the error is logged, not sent.
    Internal(anyhow::Error),
    /// 503: the server is shutting down or the store is closed.
    Unavailable,
}

impl ApiError {
    /// The HTTP status of the error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The text sent to the client.
    pub fn message(&self) -> String {
        match self {
            ApiError::BadRequest(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::TooLarge(m)
            | ApiError::UnsupportedEncoding(m)
            | ApiError::Unprocessable(m) => m.clone(),
            ApiError::Unauthorized => "missing, unknown or revoked credentials".to_owned(),
            ApiError::Forbidden => "this needs an admin token".to_owned(),
            ApiError::Internal(_) => "internal error (see the server log)".to_owned(),
            ApiError::Unavailable => "service unavailable, retry later".to_owned(),
        }
    }

    /// Wraps an internal failure.
    pub fn internal(err: impl Into<anyhow::Error>) -> ApiError {
        ApiError::Internal(err.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Internal(err) => tracing::error!(error = %format!("{err:#}"), "request failed"),
            ApiError::Unavailable => tracing::warn!("request refused: unavailable"),
            _ => {}
        }
        let mut response = (
            status,
            axum::Json(ErrorBody {
                error: self.message(),
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            StoreError::InvalidCursor => ApiError::BadRequest("invalid cursor".to_owned()),
            StoreError::InvalidQuery(reason) => ApiError::BadRequest(reason),
            StoreError::Conflict { .. } => ApiError::Conflict(err.to_string()),
            StoreError::Closed => ApiError::Unavailable,
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(err: tokio::task::JoinError) -> ApiError {
        ApiError::Internal(anyhow::anyhow!("background task failed: {err}"))
    }
}
