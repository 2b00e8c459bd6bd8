//! The Salesforce side: wire types of the Appointment Management API and of ServiceAppointment
//! records, SOQL statements, record ids, the OAuth token cache and the API client. Knows nothing of FHIR.

pub mod client;
pub mod error;
pub mod id;
pub mod jwt;
pub mod limits;
pub mod lookup;
pub mod records;
pub mod soql;
pub mod token;
pub mod wire;

pub use client::{SalesforceClient, SalesforceError};
