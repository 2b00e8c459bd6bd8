//! Tenants: the orgs one proxy serves, and the extractor that picks a request's org from its URL.
//!
//! The unnamed tenant answers at the FHIR base (`/fhir/Appointment`), a named one at
//! `{base}/{name}` (`/fhir/north/Appointment`). Each has its own [`AppState`]: Salesforce client
//! and token cache, mapping, store. A request for a tenant that does not exist is a 404
//! OperationOutcome before any handler runs.

use std::collections::BTreeMap;
use std::future::{Ready, ready};
use std::ops::Deref;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::error::InternalError;
use actix_web::{FromRequest, HttpRequest, web};

use super::AppState;
use super::response;
use crate::error::ProxyError;

/// The path segment that names the tenant in tenant routes.
pub const TENANT_SEGMENT: &str = "tenant";

/// Every tenant's state, by name.
#[derive(Default)]
pub struct Tenants {
    unnamed: Option<Arc<AppState>>,
    named: BTreeMap<String, Arc<AppState>>,
}

impl Tenants {
    /// Adds a tenant (`None`: the one at the FHIR base).
    pub fn insert(&mut self, name: Option<String>, state: Arc<AppState>) {
        match name {
            None => self.unnamed = Some(state),
            Some(name) => {
                self.named.insert(name, state);
            }
        }
    }

    /// The tenant at the FHIR base, if one is configured.
    pub fn default_state(&self) -> Option<Arc<AppState>> {
        self.unnamed.clone()
    }

    /// The named tenants, in name order.
    pub fn named(&self) -> impl Iterator<Item = (&str, &Arc<AppState>)> {
        self.named.iter().map(|(n, s)| (n.as_str(), s))
    }

    /// The tenant a request is for: the one its URL names, else the unnamed one.
    ///
    /// # Errors
    /// [`ProxyError::UnknownTenant`] when there is no such tenant.
    pub fn for_request(&self, request: &HttpRequest) -> Result<Arc<AppState>, ProxyError> {
        match request.match_info().get(TENANT_SEGMENT) {
            Some(name) => self
                .named
                .get(name)
                .cloned()
                .ok_or(ProxyError::UnknownTenant { named: true }),
            None => self
                .unnamed
                .clone()
                .ok_or(ProxyError::UnknownTenant { named: false }),
        }
    }
}

/// The state of the tenant a request is for; a handler parameter. Extraction fails with the
/// FHIR 404 for an unknown tenant, rendered in the format the client asked for.
pub struct Tenant(pub Arc<AppState>);

impl Deref for Tenant {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.0
    }
}

impl FromRequest for Tenant {
    type Error = actix_web::Error;
    type Future = Ready<Result<Tenant, actix_web::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = match request.app_data::<web::Data<Tenants>>() {
            Some(tenants) => tenants.for_request(request),
            None => Err(ProxyError::UnknownTenant { named: false }),
        };
        ready(found.map(Tenant).map_err(|error| {
            let rendering =
                response::negotiate(request, None).unwrap_or_else(|(_, rendering)| rendering);
            InternalError::from_response("unknown tenant", response::error(&error, rendering))
                .into()
        }))
    }
}
