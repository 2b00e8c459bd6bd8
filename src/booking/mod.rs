//! The use cases: create, read, search, change (update, cancel, patch, conditional update), batch
//! and transaction Bundles, `$validate`, slot search and `$find`. Each takes parsed input and a [`Tenant`] and returns a
//! result or a [`ProxyError`]; none knows HTTP, so each is testable without a server.
//!
//! Arrows point one way: `http` → `booking` → (`mapping`, `salesforce`, `store`) → `fhir`. Every
//! use case that sends an Appointment goes through the one resolve-then-map step of
//! [`resolve`].
//!
//! [`Tenant`]: crate::tenants::Tenant
//! [`ProxyError`]: crate::error::ProxyError

pub mod bundle;
pub mod change;
pub mod create;
pub mod query;
pub mod read;
pub mod resolve;
pub mod search;
pub mod validate;

use fhirbolt::model::r4::resources::Appointment;

/// What a successful interaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// A new booking in Salesforce (HTTP 201).
    Booked,
    /// An earlier booking with the same business identifier, answered again; nothing was sent.
    Found,
    /// An appointment rescheduled or cancelled.
    Changed,
}

/// The result of a successful interaction.
#[derive(Debug)]
pub struct Done {
    /// What was done.
    pub effect: Effect,
    /// The appointment as it now stands.
    pub appointment: Appointment,
    /// The same appointment in compact FHIR JSON, as recorded in the store, when this use case
    /// wrote it: a JSON answer reuses it instead of serializing the appointment again.
    pub json: Option<String>,
}

impl Done {
    /// The Salesforce id (the FHIR id).
    pub fn id(&self) -> &str {
        self.appointment
            .id
            .as_ref()
            .and_then(|i| i.value.as_deref())
            .unwrap_or_default()
    }

    /// `meta.lastUpdated`.
    pub fn last_updated(&self) -> Option<&str> {
        self.appointment
            .meta
            .as_ref()
            .and_then(|m| m.last_updated.as_ref())
            .and_then(|l| l.value.as_deref())
    }
}
