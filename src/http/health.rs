//! Probes and metrics at the root of the server, outside the FHIR base: `GET /healthz` (the
//! process is alive), `GET /readyz` (configuration loaded and a Salesforce token obtainable for
//! every org) and `GET /metrics` (Prometheus text).
//!
//! Readiness asks each org's token cache: a cached token counts without a call, and each org's
//! answer is kept for `server.readiness_cache_secs`, so frequent probes cost no API calls. The store
//! is asked at every probe (one trivial query): when it cannot be reached, nothing can be booked.
//! The answers hold tenant names, states, the store's engine and location and the errors' advice;
//! never a token, password or secret.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::auth::Auth;
use crate::metrics::{self, Metrics};
use crate::store::Store;
use crate::tenants::Tenant;
use crate::tenants::Tenants;

/// What `/readyz` needs besides the tenants and inbound auth: how long an org's answer is reused,
/// and the store.
pub struct Readiness {
    cache_for: Duration,
    answers: Mutex<HashMap<String, (Instant, OrgState)>>,
    store: Store,
}

/// One org's readiness.
#[derive(Debug, Clone, Serialize)]
pub struct OrgState {
    /// The tenant (`default` for the one at the FHIR base).
    pub tenant: String,
    /// The FHIR base it is served at.
    pub fhir_base: String,
    /// Whether a Salesforce token can be had.
    pub ready: bool,
    /// Why not, when not (the token error's text: which setting to check).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Readiness {
    /// Answers kept for `cache_for`; `store` asked at each probe.
    pub fn new(cache_for: Duration, store: Store) -> Self {
        Readiness {
            cache_for,
            answers: Mutex::new(HashMap::new()),
            store,
        }
    }

    fn cached(&self, tenant: &str) -> Option<OrgState> {
        let answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        answers
            .get(tenant)
            .filter(|(at, _)| at.elapsed() < self.cache_for)
            .map(|(_, state)| state.clone())
    }

    fn remember(&self, state: &OrgState) {
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        answers.insert(state.tenant.clone(), (Instant::now(), state.clone()));
    }

    async fn check(&self, tenant: String, state: &Tenant) -> OrgState {
        if let Some(cached) = self.cached(&tenant) {
            return cached;
        }
        let answer = state.salesforce.token_obtainable().await;
        let org = OrgState {
            tenant,
            fhir_base: state.base_path.clone(),
            ready: answer.is_ok(),
            reason: answer.err().map(|e| e.to_string()),
        };
        self.remember(&org);
        org
    }
}

/// Every tenant with its label, the one at the FHIR base first.
fn all_tenants(tenants: &Tenants) -> Vec<(String, Arc<Tenant>)> {
    tenants
        .default_state()
        .map(|s| (metrics::DEFAULT_TENANT.to_owned(), s))
        .into_iter()
        .chain(tenants.named().map(|(n, s)| (n.to_owned(), s.clone())))
        .collect()
}

/// `GET /healthz`: 200 while the process serves requests.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "status": "alive" }))
}

/// `GET /readyz`: 200 when the store answers and every org can get a Salesforce token, else 503
/// naming the failing tenants (and the store); the body lists the store, each tenant's state and
/// whether inbound auth is on (read at each probe, since a reload can switch it: switching it
/// off must be visible).
pub async fn readyz(
    tenants: web::Data<Tenants>,
    readiness: web::Data<Readiness>,
    auth: web::Data<Auth>,
) -> HttpResponse {
    let mut orgs = Vec::new();
    for (name, state) in all_tenants(&tenants) {
        orgs.push(readiness.check(name, &state).await);
    }
    let failing: Vec<&str> = orgs
        .iter()
        .filter(|o| !o.ready)
        .map(|o| o.tenant.as_str())
        .collect();
    let store = readiness.store.ping().await;
    let ready = failing.is_empty() && store.is_ok();
    let mut store_state = serde_json::json!({
        "engine": readiness.store.engine_name(),
        "location": readiness.store.description(),
        "ready": store.is_ok(),
    });
    if let Err(error) = &store {
        store_state["reason"] = serde_json::Value::String(error.to_string());
    }
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not ready" },
        "config": "loaded",
        "auth": if auth.is_enabled() { "enabled" } else { "disabled" },
        "store": store_state,
        "failing": failing,
        "tenants": orgs,
    });
    let mut answer = if ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    answer
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// `GET /metrics`: every metric in Prometheus text format, with each org's API usage as
/// Salesforce last reported it.
pub async fn metrics(tenants: web::Data<Tenants>, metrics: web::Data<Metrics>) -> HttpResponse {
    for (name, state) in all_tenants(&tenants) {
        if let Some(usage) = state.salesforce.api_usage() {
            metrics.set_api_usage(&name, usage.used, usage.limit);
        }
    }
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, metrics::CONTENT_TYPE))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(metrics.encode())
}
