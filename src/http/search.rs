//! `GET [base]/Appointment?…` and `POST [base]/Appointment/_search`: appointments as Salesforce
//! holds them now ([`crate::booking::query::search`]), as a `searchset` Bundle.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::body::read_body;
use super::metadata::base_url;
use super::response::{self, Failure, OrRender};
use super::tenant::RequestTenant;
use crate::booking;
use crate::error::ProxyError;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::mapping::search::AppointmentQuery;

/// Searches appointments. A `POST …/_search` takes its parameters as a form body
/// (`application/x-www-form-urlencoded`), added to any in the URL.
///
/// 200 with a `searchset` Bundle; 400 for a search that cannot be evaluated (naming the
/// parameter) or that Salesforce could not answer from an index (`too-costly`).
#[tracing::instrument(level = "debug", name = "fhir.search_appointments", skip_all)]
pub async fn search(
    request: HttpRequest,
    payload: web::Payload,
    tenant: RequestTenant,
) -> Result<HttpResponse, Failure> {
    let rendering = response::negotiate(&request, None)?;
    let mut parameters = request.query_string().to_owned();
    if request.method() == actix_web::http::Method::POST {
        let form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        let body = read_body(&request, payload, tenant.body_limit)
            .await
            .or_render(rendering)?;
        if !body.is_empty() {
            if !form {
                return Err(Failure::new(
                    ProxyError::UnsupportedMediaType(Issue::general(
                        IssueCode::NotSupported,
                        "POST Appointment/_search takes its parameters as \
                         application/x-www-form-urlencoded",
                    )),
                    rendering,
                ));
            }
            let body = std::str::from_utf8(&body).map_err(|_| {
                Failure::new(
                    ProxyError::Unparseable(Issue::general(
                        IssueCode::Structure,
                        "the form body is not UTF-8",
                    )),
                    rendering,
                )
            })?;
            if !parameters.is_empty() {
                parameters.push('&');
            }
            parameters.push_str(body);
        }
    }
    let query = AppointmentQuery::parse(&parameters)
        .map_err(ProxyError::Unparseable)
        .or_render(rendering)?;
    let found = booking::query::search(&tenant, &query)
        .await
        .or_render(rendering)?;
    let base = base_url(&request, &tenant.base_path);
    let bundle = booking::query::searchset(found, &query, &base);
    Ok(response::resource(StatusCode::OK, &bundle, rendering))
}
