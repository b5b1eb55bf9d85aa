//! Reading a request's body before any handler sees it: within a size cap (413) and
//! a deadline (408), and refusing a body that is not well-formed HTTP (400), so that
//! a slow or broken sender holds nothing but its own connection.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::error_response;
use super::listener::Activity;

/// What a listener accepts as a body.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    pub max_bytes: usize,
    pub read_timeout: Duration,
}

/// Middleware: buffers the body, then passes the request on with the whole body.
pub async fn buffer(State(limits): State<BodyLimits>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limits.max_bytes as u64) {
        return closing(error_response(StatusCode::PAYLOAD_TOO_LARGE, too_large(limits.max_bytes)));
    }
    let read = tokio::time::timeout(limits.read_timeout, Limited::new(body, limits.max_bytes).collect()).await;
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return closing(error_response(StatusCode::PAYLOAD_TOO_LARGE, too_large(limits.max_bytes)));
        }
        Ok(Err(e)) => return closing(error_response(StatusCode::BAD_REQUEST, format!("malformed request body: {e}"))),
        Err(_) => {
            let reason = format!("the request body did not arrive within {} ms", limits.read_timeout.as_millis());
            return closing(error_response(StatusCode::REQUEST_TIMEOUT, reason));
        }
    };
    if let Some(activity) = parts.extensions.get::<Activity>() {
        activity.working();
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

fn too_large(limit: usize) -> String {
    format!("body larger than {limit} bytes")
}

/// The rest of such a request cannot be trusted to frame the next one: close.
fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
