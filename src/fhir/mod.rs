//! The FHIR side: R4 formats and content negotiation, guarded parsing, the R4 rules fhirbolt does
//! not check, search syntax, and OperationOutcome building. Knows nothing of Salesforce.

pub mod bundle;
pub mod capability;
pub mod format;
pub mod outcome;
pub mod parameters;
pub mod parse;
pub mod pool;
pub mod rules;
pub mod search;

/// The R4 AppointmentStatus codes (required binding). `noshow` has no hyphen.
pub const APPOINTMENT_STATUSES: [&str; 10] = [
    "proposed",
    "pending",
    "booked",
    "arrived",
    "fulfilled",
    "cancelled",
    "noshow",
    "entered-in-error",
    "checked-in",
    "waitlist",
];
