//! The audit trail: one line per FHIR interaction on the tracing target `audit`, so operators can
//! route and ship it apart from the diagnostic log.
//!
//! This module owns the values other parts of the proxy leave in request/response extensions for
//! the audit line: [`ClientId`] (put there by inbound auth) and the ids a handler names.

/// The authenticated client's id, put into the request extensions by inbound auth.
///
/// The audit line reads it; when auth is off or the request is not authenticated the line says
/// `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(pub String);
