//! `POST [base]`: batch and transaction Bundles. (Being written.)

use actix_web::{HttpRequest, HttpResponse};

/// Processes a batch or transaction Bundle.
pub async fn process(request: HttpRequest) -> HttpResponse {
    super::not_found(request).await
}
