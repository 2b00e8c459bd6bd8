//! `POST [base]/Appointment/$validate`: the dry run ([`crate::booking::validate`]). As R4 says,
//! the answer is 200 with an OperationOutcome whether or not the resource is valid; a 4xx means
//! the validation itself could not be done (415, 413, or an operation call it cannot honour).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::body::read_resource;
use super::response::{self, Failure, OrRender, query_param};
use super::tenant::RequestTenant;
use crate::booking;
use crate::fhir::outcome::IssueCode;

/// Validates the posted Appointment (raw, or as the `resource` parameter of a `Parameters` body)
/// without calling Salesforce, and answers 200 with the OperationOutcome of the validation.
#[tracing::instrument(level = "debug", name = "fhir.validate_appointment", skip_all)]
pub async fn validate(
    request: HttpRequest,
    payload: web::Payload,
    tenant: RequestTenant,
) -> Result<HttpResponse, Failure> {
    let (body_format, body, rendering) =
        read_resource(&request, payload, tenant.body_limit).await?;
    let mode = query_param(&request, "mode");
    let profile = query_param(&request, "profile").is_some();
    let issues = booking::validate::validate(&tenant, &body, body_format, mode, profile)
        .await
        .or_render(rendering)?;
    tracing::info!(
        valid = issues.iter().all(|i| i.code == IssueCode::Informational),
        issues = issues.len(),
        "appointment validated"
    );
    Ok(response::outcome(StatusCode::OK, &issues, rendering))
}
