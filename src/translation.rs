//! The request-independent core of a booking: bytes → Appointment (parsed, R4-checked) → Book
//! Appointment request. Shared by the HTTP handler and the `translate` command, so both give the
//! same answer for the same input.

use fhirbolt::model::r4::resources::Appointment;

use crate::error::ProxyError;
use crate::fhir::format::Format;
use crate::fhir::parse::parse_appointment;
use crate::fhir::rules::{RuleOptions, check_appointment};
use crate::mapping::{Mapping, book_request};
use crate::salesforce::wire::BookAppointmentRequest;

/// Parses, checks and maps an Appointment body.
///
/// # Errors
/// [`ProxyError::Unparseable`] when the body is not an Appointment (400; 503 when no parser
/// thread could be started, a `transient` issue), or
/// [`ProxyError::Unprocessable`] (422) with every R4 rule or mapping problem found.
pub fn translate(
    body: &[u8],
    format: Format,
    mapping: &Mapping,
) -> Result<(Appointment, BookAppointmentRequest), ProxyError> {
    let appointment = parse_appointment(body, format).map_err(ProxyError::Unparseable)?;
    let request = check_and_map(&appointment, mapping)?;
    Ok((appointment, request))
}

/// Checks a parsed Appointment against the R4 rules and maps it.
///
/// # Errors
/// [`ProxyError::Unprocessable`] (422) with every R4 rule or mapping problem found.
pub fn check_and_map(
    appointment: &Appointment,
    mapping: &Mapping,
) -> Result<BookAppointmentRequest, ProxyError> {
    let issues = check_appointment(
        appointment,
        &RuleOptions {
            allow_end_from_duration: mapping.end_from_duration,
        },
    );
    // R4 problems come first: mapping an invalid resource would only add noise.
    if !issues.is_empty() {
        return Err(ProxyError::Unprocessable(issues));
    }
    book_request(appointment, mapping).map_err(ProxyError::Unprocessable)
}
