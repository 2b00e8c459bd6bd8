//! Reading a request body, linear in its size and bounded by the tenant's limit.

use actix_web::http::header;
use actix_web::{HttpRequest, web};
use futures_util::StreamExt;

use super::response::{self, Failure, OrRender, Rendering};
use crate::error::ProxyError;
use crate::fhir::format::Format;

/// What every handler of a resource body starts with: the answer's rendering (negotiated from
/// `Accept`, `_format` and the body's own format), the body's format and the body itself.
///
/// # Errors
/// 406 when no answer format fits, 415 for a Content-Type that is no FHIR format, 413 past
/// `limit`; each rendered as negotiated.
pub async fn read_resource(
    request: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<(Format, web::BytesMut, Rendering), Failure> {
    let (body_format, rendering) = response::formats(request)?;
    let body_format = body_format
        .map_err(ProxyError::UnsupportedMediaType)
        .or_render(rendering)?;
    let body = read_body(request, payload, limit)
        .await
        .or_render(rendering)?;
    Ok((body_format, body, rendering))
}

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
