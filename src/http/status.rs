//! `GET /status`: the state of the proxy's connection to Salesforce, as plain JSON, at the root of
//! the server (not under the FHIR base: it is not a FHIR resource).
//!
//! For each org (tenant): the API usage Salesforce last reported (`Sforce-Limit-Info`), whether the proxy is
//! holding requests back after a throttle and until when, and the calls in flight. It holds no
//! patient data, no secrets and no Salesforce hostnames, so it can be scraped by monitoring.

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::salesforce::SalesforceClient;
use crate::salesforce::limits::LimitsSnapshot;
use crate::tenants::Tenants;

/// The per-org part of the status, for any org's client: API usage, back-off and calls in flight.
pub fn org_status(client: &SalesforceClient) -> LimitsSnapshot {
    client.limits_snapshot()
}

/// One org in the answer: where it is served, and its [`org_status`].
#[derive(Debug, Clone, Serialize)]
pub struct OrgEntry {
    /// The FHIR base the org is served at, e.g. `/fhir`.
    pub fhir_base: String,
    /// Its status.
    #[serde(flatten)]
    pub status: LimitsSnapshot,
}

/// `GET /status`: `{"orgs":[…]}` with one [`OrgEntry`] per tenant served, the unnamed one first.
pub async fn status(tenants: web::Data<Tenants>) -> HttpResponse {
    let orgs: Vec<OrgEntry> = tenants
        .default_state()
        .into_iter()
        .chain(tenants.named().map(|(_, state)| state))
        .map(|state| OrgEntry {
            fhir_base: state.base_path.clone(),
            status: org_status(&state.salesforce),
        })
        .collect();
    HttpResponse::Ok()
        // Always the state now, never a cached copy.
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "orgs": orgs, "mapping_generation": tenants.generation() }))
}
