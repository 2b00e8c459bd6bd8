//! The FHIR side: R4 formats and content negotiation, guarded parsing, the R4 rules fhirbolt does
//! not check, and OperationOutcome building. Knows nothing of Salesforce.

pub mod format;
pub mod outcome;
pub mod parse;
pub mod rules;
