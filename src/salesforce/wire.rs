//! Wire types of the Health Cloud Appointment Management API (Connect REST, v65.0+) and of
//! Salesforce's OAuth token endpoint, with the API's own field names.
//!
//! Salesforce documents this API on two pages that disagree (see `salesforce-api.md` §1.5): the
//! answer may be an object or a one-element array, errors come under `error` or `errorMessages`
//! (an array, or an empty object), and `status` comes in any case. [`AppointmentOutcome::parse`]
//! accepts every documented shape.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The Book Appointment request body (`POST …/connect/health/appointment-management/appointment`).
///
/// Field order follows the documentation's sample, so a translated request reads like it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookAppointmentRequest {
    /// The visit type (WorkType id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_type_id: Option<String>,
    /// The engagement channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
    /// Free-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Start, ISO-8601 in UTC with milliseconds.
    pub start_date: String,
    /// End, ISO-8601 in UTC with milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    /// Comment, at most 256 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The external system whose code sets the codes below belong to (e.g. `cerner`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_system: Option<String>,
    /// IANA time zone the appointment is created in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Appointment type codes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub appointment_types: Vec<String>,
    /// Service category codes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_categories: Vec<String>,
    /// Service type codes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_types: Vec<String>,
    /// Practitioner specialty codes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub specialties: Vec<String>,
    /// External (EHR) slots this appointment fills.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<SlotReference>,
    /// Patient, Facility and Practitioner/Device references.
    pub participants: Vec<Participant>,
}

/// The Update Appointment request body (`PUT …/appointment/{id}`): Book's fields plus the id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateAppointmentRequest {
    /// The appointment's record id (also in the URL).
    pub id: String,
    /// Everything else, as for Book Appointment.
    #[serde(flatten)]
    pub appointment: BookAppointmentRequest,
}

/// The Cancel Appointment request body (`PATCH …/appointment/{id}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelAppointmentRequest {
    /// The appointment's record id (also in the URL).
    pub id: String,
    /// The org's cancellation status word (`Canceled` or `Cancelled`, per the org's picklist).
    pub status: String,
    /// Why it was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<String>,
    /// A comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// The Get Slots request body (`POST …/appointment-management/slots`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetSlotsRequest {
    /// Window start, ISO-8601.
    pub start_date: String,
    /// Window end, ISO-8601.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    /// The providers or assets to look at.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<SlotResource>,
    /// The visit type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_type_id: Option<String>,
    /// Appointment type codes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub appointment_types: Vec<String>,
    /// Service type codes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_types: Vec<String>,
    /// Service category codes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_categories: Vec<String>,
    /// The external system the codes come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_system: Option<String>,
    /// The engagement channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
}

/// One resource in a Get Slots request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotResource {
    /// Healthcare Practitioner Facility id for a provider, Asset id for an asset.
    pub resource_id: String,
    /// `Provider` or `Asset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
}

/// The free slots of one resource, from a Get Slots answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSlots {
    /// The resource's id.
    pub resource_id: String,
    /// Its free slots.
    pub slots: Vec<AvailableSlot>,
}

/// One free slot.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AvailableSlot {
    /// The slot id to book with.
    pub slot_id: String,
    /// Start, ISO-8601 (Salesforce's samples sometimes omit the zone).
    pub slot_start_date: String,
    /// End, ISO-8601.
    pub slot_end_date: String,
    /// The external system, when the slot is an EHR's.
    #[serde(default)]
    pub source_system: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSlotsWire {
    resource_id: String,
    #[serde(default)]
    available_slots: Vec<AvailableSlot>,
}

/// Reads a Get Slots answer: an object or a one-element array, with the list under
/// `resourceSlotDetails` (the samples) or `resourceSlots` (the property table).
///
/// # Errors
/// When the body is neither shape.
pub fn parse_slots(body: &[u8]) -> Result<Vec<ResourceSlots>, OutcomeShapeError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| OutcomeShapeError)?;
    let object = match value {
        Value::Array(mut items) if items.len() == 1 => items.pop().unwrap_or(Value::Null),
        other => other,
    };
    let list = object
        .get("resourceSlotDetails")
        .or_else(|| object.get("resourceSlots"))
        .cloned()
        .ok_or(OutcomeShapeError)?;
    let list: Vec<ResourceSlotsWire> =
        serde_json::from_value(list).map_err(|_| OutcomeShapeError)?;
    Ok(list
        .into_iter()
        .map(|r| ResourceSlots {
            resource_id: r.resource_id,
            slots: r.available_slots,
        })
        .collect())
}

/// One participant: `{"reference": "Patient/001…", "isReferenceRequired": true}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    /// `<Kind>/<Salesforce id>`.
    pub reference: String,
    /// Whether this participant must attend (from FHIR `participant.required`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_reference_required: Option<bool>,
}

/// One slot: the EHR slot id and the practitioner it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotReference {
    /// The slot id from Get Slots.
    pub id: String,
    /// The practitioner's Salesforce id (as in `participants`).
    pub reference: String,
}

/// What Salesforce answered to a booking, whichever documented shape it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppointmentOutcome {
    /// The appointment's record id, when there is one.
    pub id: Option<String>,
    /// `isSuccess`; absent counts as false.
    pub is_success: bool,
    /// `status` as sent (compare case-insensitively).
    pub status: Option<String>,
    /// Messages from `error` or `errorMessages`.
    pub errors: Vec<String>,
}

impl AppointmentOutcome {
    /// Reads an Appointment Management Output: an object or a one-element array, errors under
    /// `error` or `errorMessages` as an array (of strings or of `{message}` objects) or an object.
    ///
    /// # Errors
    /// When the body is not JSON or has neither an object nor a one-element array at the top.
    pub fn parse(body: &[u8]) -> Result<Self, OutcomeShapeError> {
        let value: Value = serde_json::from_slice(body).map_err(|_| OutcomeShapeError)?;
        let object = match value {
            Value::Object(map) => map,
            Value::Array(mut items) if items.len() == 1 => match items.pop() {
                Some(Value::Object(map)) => map,
                _ => return Err(OutcomeShapeError),
            },
            _ => return Err(OutcomeShapeError),
        };
        let mut errors = Vec::new();
        for key in ["error", "errorMessages"] {
            if let Some(v) = object.get(key) {
                collect_messages(v, &mut errors);
            }
        }
        Ok(AppointmentOutcome {
            id: object
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            is_success: object
                .get("isSuccess")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            status: object
                .get("status")
                .and_then(Value::as_str)
                .map(str::to_owned),
            errors,
        })
    }
}

/// The body was not any documented Appointment Management Output shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Salesforce answered with a body that is not an Appointment Management Output")]
pub struct OutcomeShapeError;

/// Pulls human messages out of an error value of undocumented shape: strings, `{message}` or
/// `{errorCode, message}` objects, arrays of either, or `{code, message}`.
fn collect_messages(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) if !s.is_empty() => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| collect_messages(i, out)),
        Value::Object(map) => {
            let message = map.get("message").and_then(Value::as_str);
            let code = map
                .get("errorCode")
                .or_else(|| map.get("code"))
                .and_then(Value::as_str);
            match (code, message) {
                (Some(c), Some(m)) => out.push(format!("{c}: {m}")),
                (None, Some(m)) => out.push(m.to_owned()),
                (Some(c), None) => out.push(c.to_owned()),
                (None, None) => map.values().for_each(|v| collect_messages(v, out)),
            }
        }
        _ => {}
    }
}

/// One element of a Salesforce platform error body: `[{"message","errorCode","fields"?}]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformError {
    /// Human message.
    pub message: String,
    /// Machine code, e.g. `INVALID_SESSION_ID`, `REQUEST_LIMIT_EXCEEDED`.
    pub error_code: String,
    /// Fields concerned, when Salesforce names them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

/// Reads a platform error body (an array, or a single object), empty when it is neither.
pub fn parse_platform_errors(body: &[u8]) -> Vec<PlatformError> {
    if let Ok(list) = serde_json::from_slice::<Vec<PlatformError>>(body) {
        return list;
    }
    serde_json::from_slice::<PlatformError>(body)
        .map(|e| vec![e])
        .unwrap_or_default()
}

/// A successful OAuth token response. Salesforce sends no `expires_in`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The bearer token.
    pub access_token: String,
    /// The org's API base, e.g. `https://mydomain.my.salesforce.com`.
    pub instance_url: String,
    /// The identity URL.
    #[serde(default)]
    pub id: Option<String>,
    /// `Bearer`.
    #[serde(default)]
    pub token_type: Option<String>,
    /// Milliseconds since the epoch, as a string.
    #[serde(default)]
    pub issued_at: Option<String>,
    /// HMAC of id + issued_at.
    #[serde(default)]
    pub signature: Option<String>,
    /// Granted scopes.
    #[serde(default)]
    pub scope: Option<String>,
}

/// An OAuth error: `{"error": "invalid_client", "error_description": "…"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenErrorResponse {
    /// The RFC 6749 error code.
    pub error: String,
    /// Salesforce's explanation.
    #[serde(default)]
    pub error_description: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_documented_outcome_shape() {
        // Connect page: an object with `error` as an (empty) object.
        let o = AppointmentOutcome::parse(
            br#"{"id":"08pxx0000004KhxxAE","isSuccess":true,"status":"scheduled","error":{}}"#,
        )
        .unwrap();
        assert_eq!(o.id.as_deref(), Some("08pxx0000004KhxxAE"));
        assert!(o.is_success);
        assert!(o.errors.is_empty());

        // Action page sample: a one-element array with `error`.
        let o = AppointmentOutcome::parse(
            br#"[{"id":"08pxx000000Axq6xxC","isSuccess":true,"status":"scheduled","error":[]}]"#,
        )
        .unwrap();
        assert_eq!(o.status.as_deref(), Some("scheduled"));

        // Update Action sample: `errorMessages`, capitalised status.
        let o = AppointmentOutcome::parse(
            br#"[{"id":"08pxx000000Axq6xxC","isSuccess":false,"status":"Rejected","errorMessages":["Slot no longer available"]}]"#,
        )
        .unwrap();
        assert!(!o.is_success);
        assert_eq!(o.errors, vec!["Slot no longer available".to_owned()]);

        // Undocumented element shapes: objects with message and code.
        let o = AppointmentOutcome::parse(
            br#"{"isSuccess":false,"error":[{"errorCode":"INVALID_INPUT","message":"bad slot"}]}"#,
        )
        .unwrap();
        assert_eq!(o.errors, vec!["INVALID_INPUT: bad slot".to_owned()]);
        assert_eq!(o.id, None);
    }

    /// The answers the sandbox (a separate crate, written from the same pages) gives: the proxy
    /// reads each, so a field the two spell differently shows here and in the integration tests.
    #[test]
    fn reads_the_shapes_the_sandbox_answers() {
        let id = "08pSB0000000001YAA";
        let booked = AppointmentOutcome::parse(
            format!(r#"{{"id":"{id}","isSuccess":true,"status":"Scheduled","error":[]}}"#)
                .as_bytes(),
        )
        .unwrap();
        let updated = AppointmentOutcome::parse(
            format!(
                r#"[{{"id":"{id}","isSuccess":true,"status":"Scheduled","errorMessages":[]}}]"#
            )
            .as_bytes(),
        )
        .unwrap();
        for outcome in [&booked, &updated] {
            assert!(outcome.is_success);
            assert_eq!(outcome.id.as_deref(), Some(id));
            assert_eq!(outcome.status.as_deref(), Some("Scheduled"));
            assert!(outcome.errors.is_empty());
        }
        let cancelled = AppointmentOutcome::parse(
            format!(r#"{{"id":"{id}","isSuccess":true,"status":"Canceled","errorMessages":[]}}"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(cancelled.status.as_deref(), Some("Canceled"));
        let rejected = AppointmentOutcome::parse(
            br#"{"isSuccess":false,"status":"Rejected","errorMessages":["Slot s-1 is no longer available"]}"#,
        )
        .unwrap();
        assert!(!rejected.is_success);
        assert_eq!(rejected.id, None);
        assert_eq!(rejected.errors, ["Slot s-1 is no longer available"]);
    }

    #[test]
    fn reads_both_get_slots_shapes() {
        let details = br#"{"resourceSlotDetails":[{"resourceId":"0bSxx000000000xxAQ","availableSlots":[{"slotId":"ce5b28b6","slotStartDate":"2025-09-20T00:15:00Z","slotEndDate":"2025-09-20T00:45:00Z","sourceSystem":null}]}]}"#;
        let slots = parse_slots(details).unwrap();
        assert_eq!(slots[0].resource_id, "0bSxx000000000xxAQ");
        assert_eq!(slots[0].slots[0].slot_id, "ce5b28b6");
        let table =
            br#"[{"resourceSlots":[{"resourceId":"0bSxx000000000xxAQ","availableSlots":[]}]}]"#;
        assert_eq!(parse_slots(table).unwrap()[0].slots.len(), 0);
        assert!(parse_slots(br#"{"slots":[]}"#).is_err());
    }

    #[test]
    fn update_request_puts_the_id_beside_the_book_fields() {
        let update = UpdateAppointmentRequest {
            id: "08pxx0000004KGGAAA".into(),
            appointment: BookAppointmentRequest {
                start_date: "2025-09-20T00:15:00.000Z".into(),
                ..Default::default()
            },
        };
        assert_eq!(
            serde_json::to_value(&update).unwrap(),
            serde_json::json!({"id": "08pxx0000004KGGAAA", "startDate": "2025-09-20T00:15:00.000Z", "participants": []})
        );
        let cancel = CancelAppointmentRequest {
            id: "08pxx0000004KGGAAA".into(),
            status: "Canceled".into(),
            cancellation_reason: Some("pat".into()),
            comment: None,
        };
        assert_eq!(
            serde_json::to_value(&cancel).unwrap(),
            serde_json::json!({"id": "08pxx0000004KGGAAA", "status": "Canceled", "cancellationReason": "pat"})
        );
    }

    #[test]
    fn rejects_shapes_that_are_not_an_outcome() {
        assert!(AppointmentOutcome::parse(b"not json").is_err());
        assert!(AppointmentOutcome::parse(b"[]").is_err());
        assert!(AppointmentOutcome::parse(b"[{},{}]").is_err());
        assert!(AppointmentOutcome::parse(b"42").is_err());
    }

    #[test]
    fn book_request_omits_absent_fields() {
        let request = BookAppointmentRequest {
            start_date: "2025-07-21T18:00:00.000Z".into(),
            participants: vec![Participant {
                reference: "Patient/001xx000012udqQxxQ".into(),
                is_reference_required: None,
            }],
            ..Default::default()
        };
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "startDate": "2025-07-21T18:00:00.000Z",
                "participants": [{"reference": "Patient/001xx000012udqQxxQ"}]
            })
        );
    }

    #[test]
    fn platform_errors_come_as_array_or_object() {
        let e = parse_platform_errors(
            br#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
        );
        assert_eq!(e[0].error_code, "INVALID_SESSION_ID");
        let e = parse_platform_errors(br#"{"message":"m","errorCode":"REQUEST_LIMIT_EXCEEDED"}"#);
        assert_eq!(e[0].error_code, "REQUEST_LIMIT_EXCEEDED");
        assert!(parse_platform_errors(b"<html>").is_empty());
    }
}
