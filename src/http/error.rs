//! The one error type of the HTTP edge: a status and a one-line reason for the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::media::sdp::SdpError;
use crate::media::MediaError;
use crate::protocol::ErrorCode;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    reason: String,
    /// Seconds a refused client should wait (`Retry-After`).
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self { status, reason: reason.into(), retry_after: None }
    }

    /// `429` with the time to wait.
    pub fn too_many(reason: &str, wait: std::time::Duration) -> Self {
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        Self { status: StatusCode::TOO_MANY_REQUESTS, reason: format!("{reason}; try again in {seconds} s"), retry_after: Some(seconds) }
    }

    pub fn unauthorized(reason: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, reason)
    }
}

impl From<MediaError> for ApiError {
    fn from(e: MediaError) -> Self {
        use crate::media::MediaError as M;
        let status = match &e {
            M::Sdp(SdpError::Unparsable(_)) => StatusCode::BAD_REQUEST,
            M::Sdp(SdpError::NoUsableCodec) => StatusCode::NOT_ACCEPTABLE,
            M::UnknownSession => StatusCode::NOT_FOUND,
            M::UnknownToken => StatusCode::UNAUTHORIZED,
            M::RoomClosed | M::ServerFull(_) => StatusCode::SERVICE_UNAVAILABLE,
            M::Policy(e) => match e.code {
                ErrorCode::Forbidden | ErrorCode::Waiting => StatusCode::FORBIDDEN,
                ErrorCode::PasswordRequired | ErrorCode::WrongPassword | ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
                ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RoomFull => StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::NotFound => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_REQUEST,
            },
            M::Negotiation(_) => StatusCode::BAD_REQUEST,
            M::Element(_) | M::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() && !matches!(e, M::Policy(_) | M::RoomClosed | M::ServerFull(_)) {
            tracing::error!(error = %e, "request failed inside the server");
            return Self::new(status, "internal error; see the server log");
        }
        Self::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let line = self.reason.replace(['\r', '\n'], " ");
        let mut r = (self.status, format!("{line}\n")).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            // The password limiter's pause is a minute.
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(self.retry_after.unwrap_or(60)));
        }
        r
    }
}
