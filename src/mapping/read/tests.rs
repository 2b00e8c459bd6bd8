use serde_json::{Value, json};

use super::*;
use crate::mapping::{EXAMPLE_APPOINTMENT, EXAMPLE_MAPPING};
use crate::salesforce::records::parse_page;

fn mapping() -> Mapping {
    Mapping::from_toml(EXAMPLE_MAPPING, "example.toml").unwrap()
}

fn stored() -> Appointment {
    fhirbolt::json::from_str(EXAMPLE_APPOINTMENT, None).unwrap()
}

/// The sandbox's record of the example booking, with `changes` applied.
fn record(changes: Value) -> VersionedRecord {
    let mut record = json!({
        "Id": "08pSB0000000001AAA",
        "Status": "Scheduled",
        "StatusCategory": "Scheduled",
        "SchedStartTime": "2025-07-21T18:00:00.000+0000",
        "SchedEndTime": "2025-07-21T18:30:00.000+0000",
        "WorkTypeId": "08qxx000000Axq6xxC",
        "Description": "Discussion",
        "Comments": "Payload for the testing",
        "CancellationReason": null,
        "ParentRecordId": "001xx000012udqQxxQ",
        "ParentRecordType": "Account",
        "SystemModstamp": "2025-07-20T10:00:05.000+0000",
        "CarePractnFacilityAppts": {"totalSize": 1, "done": true, "records": [{
            "HealthcarePractitionerFacilityId": "0bSxx0000005JoaxxE",
            "IsRequired": true,
            "HealthcarePractitionerFacility": {"AccountId": "001xx000012udqhxxA"}
        }]}
    });
    for (name, value) in changes.as_object().unwrap() {
        record[name] = value.clone();
    }
    let page = json!({"totalSize": 1, "done": true, "records": [record]});
    parse_page(page.to_string().as_bytes())
        .unwrap()
        .records
        .remove(0)
}

fn json_of(appointment: Appointment) -> Value {
    fhirbolt::json::to_json_value(appointment, None).unwrap()
}

#[test]
fn a_record_alone_is_named_through_the_mapping_tables() {
    let read = record(json!({}));
    let appointment = json_of(appointment_from_record(
        &read,
        None,
        &mapping(),
        &KnownIds::default(),
    ));
    assert_eq!(appointment["id"], "08pSB0000000001AAA");
    assert_eq!(appointment["status"], "booked");
    assert_eq!(appointment["meta"]["versionId"], read.version.as_str());
    assert_eq!(
        appointment["meta"]["lastUpdated"],
        "2025-07-20T10:00:05.000Z"
    );
    assert_eq!(appointment["start"], "2025-07-21T18:00:00.000Z");
    assert_eq!(appointment["end"], "2025-07-21T18:30:00.000Z");
    assert_eq!(appointment["description"], "Discussion");
    assert_eq!(appointment["comment"], "Payload for the testing");
    assert_eq!(
        appointment["identifier"],
        json!([{"use": "secondary", "system": "urn:salesforce:ServiceAppointment", "value": "08pSB0000000001AAA"}])
    );
    // The work type rule read backwards.
    assert_eq!(
        appointment["appointmentType"]["coding"],
        json!([{"system": "http://terminology.hl7.org/CodeSystem/v2-0276", "code": "FOLLOWUP"}])
    );
    let actors: Vec<&Value> = appointment["participant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["actor"])
        .collect();
    assert_eq!(
        actors,
        vec![
            &json!({"reference": "Patient/pat-1001"}),
            &json!({"type": "Practitioner", "identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}}),
            &json!({"reference": "Location/001xx000012udqhxxA"}),
        ]
    );
    assert_eq!(appointment["participant"][1]["required"], "required");
}

#[test]
fn the_stored_representation_fills_in_what_salesforce_does_not_keep() {
    let read = record(json!({}));
    let appointment = json_of(appointment_from_record(
        &read,
        Some(stored()),
        &mapping(),
        &KnownIds::default(),
    ));
    let original = json_of(stored());
    // Every participant is still in Salesforce: kept as the client wrote it.
    assert_eq!(appointment["participant"], original["participant"]);
    assert_eq!(appointment["appointmentType"], original["appointmentType"]);
    assert_eq!(appointment["identifier"][0], original["identifier"][0]);
    assert_eq!(appointment["identifier"][1]["value"], "08pSB0000000001AAA");
    // Times as Salesforce holds them (the same instants, in UTC).
    assert_eq!(appointment["start"], "2025-07-21T18:00:00.000Z");
}

#[test]
fn changes_made_in_salesforce_win() {
    let read = record(json!({
        "Status": "Canceled",
        "StatusCategory": "Canceled",
        "CancellationReason": "Patient called to cancel",
        "SchedStartTime": "2025-07-22T09:00:00.000+0000",
        "SchedEndTime": "2025-07-22T09:30:00.000+0000",
        "Comments": null,
        "CarePractnFacilityAppts": {"totalSize": 1, "done": true, "records": [{
            "HealthcarePractitionerFacilityId": "0bSxx0000005JobxxE",
            "IsRequired": false,
            "HealthcarePractitionerFacility": {"AccountId": "001xx000012udqhxxA"}
        }]}
    }));
    let appointment = json_of(appointment_from_record(
        &read,
        Some(stored()),
        &mapping(),
        &KnownIds::default(),
    ));
    assert_eq!(appointment["status"], "cancelled");
    assert_eq!(
        appointment["cancelationReason"],
        json!({"text": "Patient called to cancel"})
    );
    assert_eq!(appointment["start"], "2025-07-22T09:00:00.000Z");
    assert!(appointment.get("comment").is_none(), "{appointment}");
    let participants = appointment["participant"].as_array().unwrap();
    assert_eq!(participants.len(), 3, "{appointment}");
    // The practitioner was replaced in Salesforce: the old one is gone, the new one is named by
    // its Salesforce id (the mapping has no entry for it).
    assert!(
        !participants
            .iter()
            .any(|p| p["actor"]["display"] == "Dr Test Practitioner")
    );
    assert_eq!(
        participants[2],
        json!({"actor": {"reference": "Practitioner/0bSxx0000005JobxxE"}, "required": "optional", "status": "accepted"})
    );
}

#[test]
fn an_orgs_own_status_is_read_through_its_category() {
    let mapping = mapping();
    assert_eq!(
        fhir_status_of(Some("Cancelled by clinic"), Some("Canceled"), &mapping),
        "cancelled"
    );
    assert_eq!(
        fhir_status_of(Some("Completed"), None, &mapping),
        "fulfilled"
    );
    assert_eq!(
        fhir_status_of(Some("Arrived at desk"), Some("CheckedIn"), &mapping),
        "checked-in"
    );
    assert_eq!(fhir_status_of(Some("Odd"), None, &mapping), "booked");
    let custom = Mapping::from_toml(
        "[response.status_category]\nCannotComplete = \"noshow\"\n",
        "custom.toml",
    )
    .unwrap();
    assert_eq!(
        fhir_status_of(Some("Other"), Some("CannotComplete"), &custom),
        "noshow"
    );
    let refused = Mapping::from_toml(
        "[response.status_category]\nCanceled = \"gone\"\n",
        "bad.toml",
    )
    .unwrap_err();
    assert!(
        refused.to_string().contains("not an R4 Appointment status"),
        "{refused}"
    );
}

#[test]
fn reads_back_kinds_as_their_usual_fhir_types() {
    let mapping = mapping();
    assert_eq!(fhir_type_for("Facility", &mapping), "Location");
    assert_eq!(fhir_type_for("Practitioner", &mapping), "Practitioner");
    assert_eq!(fhir_type_for("Patient", &mapping), "Patient");
}
