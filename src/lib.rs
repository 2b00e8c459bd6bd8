//! fhir-salesforce-proxy: lets EHRs and interface engines book appointments in Salesforce Health
//! Cloud by speaking plain FHIR R4.
//!
//! A request flows `http` → `fhir` (parse, R4 rules) → `mapping` (pure: Appointment → Book
//! Appointment request) → `salesforce` (token cache, API call) → `mapping` (outcome → Appointment)
//! → `http` (FHIR answer). Every failure becomes one [`error::ProxyError`] whose single `match`
//! decides the HTTP status and OperationOutcome issue code.

pub mod auth;
pub mod booking;
pub mod channel;
pub mod config;
pub mod error;
pub mod fhir;
pub mod http;
pub mod interaction;
pub mod mapping;
pub mod metrics;
pub mod reload;
#[cfg(feature = "robustness")]
pub mod robustness;
pub mod salesforce;
/// The local stand-in for a Salesforce org (the `salesforce-sandbox` crate of this workspace).
pub use salesforce_sandbox as sandbox;
pub mod server;
pub mod signals;
pub mod store;
pub mod telemetry;
pub mod tenants;
pub mod tls;
