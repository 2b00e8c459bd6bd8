//! Tenants: the orgs one proxy serves, each with what booking for it takes (mapping, Salesforce
//! client, store rows), and the registry a reload swaps mappings in.
//!
//! The unnamed tenant answers at the FHIR base (`/fhir/Appointment`), a named one at
//! `{base}/{name}` (`/fhir/north/Appointment`).
//!
//! Each tenant's state sits in an [`ArcSwap`], so a reload can put in a new mapping while
//! requests run: a request takes the state once, when its handler starts, and finishes on that
//! version (mapping included) however many reloads happen meanwhile. Everything but the mapping
//! (Salesforce client, store) is shared between versions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;

use crate::mapping::Mapping;
use crate::salesforce::SalesforceClient;
use crate::store::TenantStore;

/// One org as requests see it: everything a use case needs to book for it.
pub struct Tenant {
    /// The checked mapping (this version's: a reload makes a new [`Tenant`] around the new one).
    pub mapping: Arc<Mapping>,
    /// The Salesforce client (shared HTTP pool and token cache).
    pub salesforce: SalesforceClient,
    /// This tenant's rows of the store: booked appointments by identifier (idempotent creates,
    /// patches) and the identifiers being booked right now (claims, shared by every replica).
    pub store: TenantStore,
    /// Largest accepted body, in bytes.
    pub body_limit: usize,
    /// The FHIR base path this tenant is served at, e.g. `/fhir` or `/fhir/north`.
    pub base_path: String,
}

impl Tenant {
    /// The same tenant with another mapping: the Salesforce client (token cache, limits) and the
    /// store (with its identifier claims) are shared with `self`, so two versions never book the
    /// same identifier at once.
    pub fn with_mapping(&self, mapping: Arc<Mapping>) -> Tenant {
        Tenant {
            mapping,
            salesforce: self.salesforce.clone(),
            body_limit: self.body_limit,
            base_path: self.base_path.clone(),
            store: self.store.clone(),
        }
    }
}

/// Every tenant's state, by name, and the generation of the mappings they serve.
pub struct Tenants {
    unnamed: Option<ArcSwap<Tenant>>,
    named: BTreeMap<String, ArcSwap<Tenant>>,
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
    pub fn insert(&mut self, name: Option<String>, state: Arc<Tenant>) {
        let state = ArcSwap::new(state);
        match name {
            None => self.unnamed = Some(state),
            Some(name) => {
                self.named.insert(name, state);
            }
        }
    }

    /// The tenant of this name (`None`: the one at the FHIR base), as it stands now.
    pub fn get(&self, name: Option<&str>) -> Option<Arc<Tenant>> {
        match name {
            None => self.unnamed.as_ref(),
            Some(name) => self.named.get(name),
        }
        .map(ArcSwap::load_full)
    }

    /// The tenant at the FHIR base, if one is configured.
    pub fn default_state(&self) -> Option<Arc<Tenant>> {
        self.get(None)
    }

    /// The named tenants, in name order.
    pub fn named(&self) -> impl Iterator<Item = (&str, Arc<Tenant>)> {
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
        for (name, mapping) in mappings {
            let slot = match &name {
                None => self.unnamed.as_ref(),
                Some(name) => self.named.get(name),
            };
            if let Some(slot) = slot {
                // Only a reload writes, and reloads are serialized, so this read-modify-write
                // cannot lose another's update.
                let current = slot.load_full();
                slot.store(Arc::new(current.with_mapping(Arc::new(mapping))));
            }
        }
        self.generation.fetch_add(1, Ordering::SeqCst) + 1
    }
}
