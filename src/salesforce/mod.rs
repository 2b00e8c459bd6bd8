//! The Salesforce side: wire types of the Appointment Management API, record ids, the OAuth token
//! cache and the API client. Knows nothing of FHIR.

pub mod client;
pub mod error;
pub mod id;
pub mod jwt;
pub mod limits;
pub mod lookup;
pub mod token;
pub mod wire;

pub use client::{SalesforceClient, SalesforceError};
