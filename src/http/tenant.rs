//! Tenants: the orgs one proxy serves, and the extractor that picks a request's org from its URL.
//!
//! The unnamed tenant answers at the FHIR base (`/fhir/Appointment`), a named one at
//! `{base}/{name}` (`/fhir/north/Appointment`). Each has its own [`AppState`]: Salesforce client
//! and token cache, mapping, store. A request for a tenant that does not exist is a 404
//! OperationOutcome before any handler runs.
//!
//! Each tenant's state sits in an [`ArcSwap`], so a reload ([`crate::reload`]) can put in a new
//! mapping while requests run: the extractor takes the state once, when the handler starts, and
//! the request finishes on that version (mapping included) however many reloads happen meanwhile.
//! Everything but the mapping (Salesforce client, store) is shared between versions.

use std::collections::BTreeMap;
use std::future::{Ready, ready};
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;

use actix_web::dev::Payload;
use actix_web::error::InternalError;
use actix_web::{FromRequest, HttpRequest, web};

use super::AppState;
use super::response;
use crate::error::ProxyError;
use crate::mapping::Mapping;

pub use super::routes::TENANT_SEGMENT;

/// Every tenant's state, by name, and the generation of the mappings they serve.
pub struct Tenants {
    unnamed: Option<ArcSwap<AppState>>,
    named: BTreeMap<String, ArcSwap<AppState>>,
    /// 1 at start, one more after each reload that put new mappings in.
    generation: AtomicU64,
}

impl Default for Tenants {
    fn default() -> Self {
        Tenants {
            unnamed: None,
            named: BTreeMap::new(),
            generation: AtomicU64::new(1),
        }
    }
}

impl Tenants {
    /// Adds a tenant (`None`: the one at the FHIR base).
    pub fn insert(&mut self, name: Option<String>, state: Arc<AppState>) {
        let state = ArcSwap::new(state);
        match name {
            None => self.unnamed = Some(state),
            Some(name) => {
                self.named.insert(name, state);
            }
        }
    }

    /// The tenant at the FHIR base, if one is configured.
    pub fn default_state(&self) -> Option<Arc<AppState>> {
        self.unnamed.as_ref().map(ArcSwap::load_full)
    }

    /// The named tenants, in name order.
    pub fn named(&self) -> impl Iterator<Item = (&str, Arc<AppState>)> {
        self.named.iter().map(|(n, s)| (n.as_str(), s.load_full()))
    }

    /// Whether a tenant of this name (`None`: the one at the FHIR base) is served.
    pub fn contains(&self, name: Option<&str>) -> bool {
        match name {
            None => self.unnamed.is_some(),
            Some(name) => self.named.contains_key(name),
        }
    }

    /// The names of the tenants served (`None`: the one at the FHIR base), unnamed first.
    pub fn names(&self) -> Vec<Option<String>> {
        self.unnamed
            .iter()
            .map(|_| None)
            .chain(self.named.keys().map(|n| Some(n.clone())))
            .collect()
    }

    /// The generation of the mappings served: 1 at start, one more per successful reload.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Puts new mappings in, all checked beforehand, and returns the new generation. Requests
    /// already running keep the state they took; later ones get the new mapping. Names not
    /// served are skipped (tenants are added only by a restart).
    pub fn replace_mappings(&self, mappings: Vec<(Option<String>, Mapping)>) -> u64 {
        let mappings: Vec<_> = mappings
            .into_iter()
            .map(|(n, m)| (n, Arc::new(m)))
            .collect();
        for (name, mapping) in mappings {
            let slot = match &name {
                None => self.unnamed.as_ref(),
                Some(name) => self.named.get(name),
            };
            if let Some(slot) = slot {
                // Only a reload writes, and reloads are serialized, so this read-modify-write
                // cannot lose another's update.
                let current = slot.load_full();
                slot.store(Arc::new(current.with_mapping(mapping)));
            }
        }
        self.generation.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The tenant a request is for: the one its URL names, else the unnamed one. The state is
    /// taken now, once: the request runs on this version of the mapping to its end.
    ///
    /// # Errors
    /// [`ProxyError::UnknownTenant`] when there is no such tenant.
    pub fn for_request(&self, request: &HttpRequest) -> Result<Arc<AppState>, ProxyError> {
        match request.match_info().get(TENANT_SEGMENT) {
            Some(name) => self
                .named
                .get(name)
                .map(ArcSwap::load_full)
                .ok_or(ProxyError::UnknownTenant { named: true }),
            None => self
                .unnamed
                .as_ref()
                .map(ArcSwap::load_full)
                .ok_or(ProxyError::UnknownTenant { named: false }),
        }
    }
}

impl AppState {
    /// The same tenant with another mapping: the Salesforce client (token cache, limits) and the
    /// store (with its identifier claims) are shared with `self`, so two versions never book the
    /// same identifier at once.
    pub fn with_mapping(&self, mapping: Arc<Mapping>) -> AppState {
        AppState {
            mapping,
            salesforce: self.salesforce.clone(),
            body_limit: self.body_limit,
            base_path: self.base_path.clone(),
            store: self.store.clone(),
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
