//! Reading a request body, linear in its size and bounded by the tenant's limit.

use actix_web::http::header;
use actix_web::{HttpRequest, web};
use futures_util::StreamExt;

use crate::error::ProxyError;

/// Reads the body up to `limit` bytes; a larger body (announced or actual) is a 413.
///
/// # Errors
/// [`ProxyError::PayloadTooLarge`]; [`ProxyError::BodyRead`] when the client's stream fails.
pub async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ProxyError> {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(ProxyError::PayloadTooLarge { limit });
    }
    let mut body = web::BytesMut::with_capacity(announced.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ProxyError::BodyRead)?;
        if body.len() + chunk.len() > limit {
            return Err(ProxyError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
