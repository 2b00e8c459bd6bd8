//! The sandbox's reading of a Cancel Appointment body (`salesforce-api.md` §2.2):
//! `{"id","status","cancellationReason"?,"comment"?}`.
//!
//! The Connect page lists `id` and `status`; the Action page adds `cancellationReason` and
//! `comment`, so all four are known to the parser. `status` is a value of the org's restricted
//! ServiceAppointment status picklist: the pages spell the cancellation status `canceled` and
//! `Cancelled`, so which word an org accepts is configuration
//! ([`super::SandboxSettings::cancel_statuses`]), and it is compared exactly, as a restricted
//! picklist is, so a proxy sending the wrong word fails here rather than against a real org.

use serde_json::{Map, Value};

use super::booking::{check_string, check_url_id, field, invalid, parse_object, type_name};
use crate::platform::PlatformError;

/// Error code for a value outside a restricted picklist (`salesforce-api.md` §4.3).
pub(super) const RESTRICTED_PICKLIST: &str = "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST";

/// Every field of the Cancel Appointment request on either documentation page.
const CANCEL_FIELDS: &[&str] = &["id", "status", "cancellationReason", "comment"];

/// A body that passed every rule.
#[derive(Debug)]
pub(super) struct ValidCancel {
    /// The request as sent, kept for [`super::StoredAppointment::cancellation`].
    pub request: Value,
    /// The cancellation status to set, one of the configured ones.
    pub status: String,
}

/// Checks a Cancel Appointment body for the appointment `url_id`, with `statuses` the org's
/// cancellation statuses. On refusal, returns the platform errors to answer 400 with.
pub(super) fn validate(
    body: &[u8],
    url_id: &str,
    statuses: &[String],
) -> Result<ValidCancel, Vec<PlatformError>> {
    let map = parse_object(body, &[CANCEL_FIELDS], &[])?;
    let mut errors = Vec::new();
    check_url_id(&map, url_id, &mut errors);
    let status = check_status(&map, statuses, &mut errors);
    check_string(&map, "cancellationReason", &mut errors);
    check_string(&map, "comment", &mut errors);
    match status {
        Some(status) if errors.is_empty() => Ok(ValidCancel {
            request: Value::Object(map),
            status,
        }),
        _ => Err(errors),
    }
}

/// `status`: required, and exactly one of `statuses`.
fn check_status(
    object: &Map<String, Value>,
    statuses: &[String],
    errors: &mut Vec<PlatformError>,
) -> Option<String> {
    let allowed = if statuses.is_empty() {
        "none configured".to_owned()
    } else {
        statuses.join(", ")
    };
    let status = match field(object, "status") {
        None => {
            errors.push(invalid(
                "status",
                format!("status is required: the cancellation status to set (one of: {allowed})"),
            ));
            return None;
        }
        Some(Value::String(status)) => status,
        Some(other) => {
            errors.push(invalid(
                "status",
                format!("status must be a string; got {}", type_name(other)),
            ));
            return None;
        }
    };
    if statuses.iter().any(|s| s == status) {
        return Some(status.clone());
    }
    // Salesforce's wording for a restricted picklist, plus what would have been accepted, since
    // the Canceled/Cancelled spelling is the mistake this check exists to catch.
    errors.push(PlatformError {
        message: format!(
            "status: bad value for restricted picklist field: {status} (this org's cancellation \
             statuses: {allowed})"
        ),
        error_code: RESTRICTED_PICKLIST.to_owned(),
        fields: vec!["status".to_owned()],
    });
    None
}
