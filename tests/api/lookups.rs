//! Participants resolved by external id (`[[ids.lookup]]`): sObject Rows by External ID against
//! the sandbox, the answer booked; none or several matches a 422 naming the participant, never
//! the id; answers cached (positive and negative) and concurrent lookups of one key coalesced;
//! transactions, `$validate` and the Slot search resolving the same way.

use std::net::TcpListener;

use fhir_salesforce_proxy::mapping::{EXAMPLE_MAPPING, Mapping};
use fhir_salesforce_proxy::sandbox::{ExternalIdRecords, Sandbox, SandboxSettings};
use serde_json::{Value, json};

use crate::helpers::*;

const PATIENT: &str = "001xx000012udqQxxQ";
const OTHER_PATIENT: &str = "001xx000012udqRxxQ";
const PRACTITIONER: &str = "0bSxx0000005JoaxxE";
const FIELD: &str = "EHR_Patient_Id__c";

/// The example mapping, plus: Patient ids are the `EHR_Patient_Id__c` of an Account, and
/// Practitioner ids the `NPI__c` of a HealthcareProvider.
fn lookup_mapping() -> Mapping {
    let text = format!(
        "{EXAMPLE_MAPPING}\n\
         [[ids.lookup]]\ntype = \"Patient\"\nobject = \"Account\"\nexternal_id_field = \"{FIELD}\"\n\
         [[ids.lookup]]\ntype = \"Practitioner\"\nobject = \"HealthcareProvider\"\n\
         external_id_field = \"NPI__c\"\n"
    );
    Mapping::from_toml(&text, "lookups.toml").unwrap()
}

/// A sandbox knowing these Accounts by `EHR_Patient_Id__c`, and a proxy wired to it.
fn spawn_with_records(records: &[(&str, &[&str])]) -> (TestApp, Sandbox) {
    spawn_with_records_and(records, lookup_mapping())
}

/// As [`spawn_with_records`], with this mapping.
fn spawn_with_records_and(records: &[(&str, &[&str])], mapping: Mapping) -> (TestApp, Sandbox) {
    let mut external_ids: Vec<ExternalIdRecords> = records
        .iter()
        .map(|(value, ids)| ExternalIdRecords::new("Account", FIELD, value, ids))
        .collect();
    external_ids.push(ExternalIdRecords::new(
        "HealthcareProvider",
        "NPI__c",
        "npi-7",
        &[PRACTITIONER],
    ));
    let sandbox = Sandbox::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        SandboxSettings {
            external_ids,
            ..SandboxSettings::default()
        },
    )
    .unwrap();
    let app = spawn_proxy(salesforce_settings(&sandbox.token_url()), mapping);
    (app, sandbox)
}

/// The example appointment numbered `n`, for the patient with this EHR id.
fn appointment_for(n: usize, ehr_id: &str) -> Value {
    let mut a = numbered_appointment(n);
    a["participant"][0]["actor"]["reference"] = json!(format!("Patient/{ehr_id}"));
    a
}

fn patient_reference(request: &Value) -> &Value {
    &request["participants"][0]["reference"]
}

/// Every issue's diagnostics, joined, to check what an answer does not say.
fn diagnostics(body: &Value) -> String {
    body["issue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["diagnostics"].as_str().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_looked_up_patient_is_booked_with_its_salesforce_id_and_the_answer_is_reused() {
    let (app, sandbox) = spawn_with_records(&[("MRN-0001", &[PATIENT])]);

    let response = app.post_json(&appointment_for(1, "MRN-0001")).await;
    assert_eq!(response.status(), 201);
    let bookings = sandbox.bookings();
    assert_eq!(bookings.len(), 1);
    assert_eq!(
        patient_reference(&bookings[0].request),
        &json!(format!("Patient/{PATIENT}"))
    );
    // The other participants kept their static table and passthrough ids.
    assert_eq!(
        bookings[0].request["participants"][1]["reference"],
        json!(format!("Practitioner/{PRACTITIONER}"))
    );
    assert_eq!(
        bookings[0].request["participants"][2]["reference"],
        json!("Facility/001xx000012udqhxxA")
    );
    assert_eq!(sandbox.lookup_requests(), 1);

    // Another appointment of the same patient: booked from the cache.
    let response = app.post_json(&appointment_for(2, "MRN-0001")).await;
    assert_eq!(response.status(), 201);
    assert_eq!(sandbox.bookings().len(), 2);
    assert_eq!(
        patient_reference(&sandbox.bookings()[1].request),
        &json!(format!("Patient/{PATIENT}"))
    );
    assert_eq!(sandbox.lookup_requests(), 1);
}

#[tokio::test]
async fn an_unknown_patient_is_a_422_naming_the_participant_not_the_id_and_is_cached_too() {
    let (app, sandbox) = spawn_with_records(&[]);

    for n in 1..=2 {
        let response = app.post_json(&appointment_for(n, "MRN-UNKNOWN-77")).await;
        assert_eq!(response.status(), 422);
        let body = json_body(response).await;
        assert_outcome(&body, "not-found", Some("Appointment.participant[0].actor"));
        let text = diagnostics(&body);
        assert!(
            text.contains("Patient") && text.contains("Account") && text.contains(FIELD),
            "{text}"
        );
        assert!(!text.contains("MRN-UNKNOWN-77"), "{text}");
    }
    assert!(sandbox.bookings().is_empty());
    // The second refusal came from the cached "not found".
    assert_eq!(sandbox.lookup_requests(), 1);
}

#[tokio::test]
async fn a_value_made_of_dots_is_not_found_and_no_other_resource_is_called() {
    // `..` or `.` in a path is a dot-segment, encoded or not: `…/sobjects/Account/EHR…/..`
    // would call `…/sobjects/Account/`. Such a value finds nothing and calls nothing.
    let (app, sandbox) = spawn_with_records(&[("MRN-1", &[PATIENT])]);
    for (n, value) in [".", "..", "..."].into_iter().enumerate() {
        let response = app.post_json(&appointment_for(n, value)).await;
        assert_eq!(response.status(), 422, "{value}");
        let body = json_body(response).await;
        assert_outcome(&body, "not-found", Some("Appointment.participant[0].actor"));
    }
    let calls = sandbox.api_calls();
    assert!(
        !calls.iter().any(|c| c.path.contains("/sobjects")),
        "{calls:?}"
    );
    assert!(sandbox.bookings().is_empty());
}

#[tokio::test]
async fn a_patient_several_accounts_claim_is_a_422_saying_it_is_ambiguous() {
    let (app, sandbox) = spawn_with_records(&[("MRN-TWICE", &[PATIENT, OTHER_PATIENT])]);

    let response = app.post_json(&appointment_for(1, "MRN-TWICE")).await;

    assert_eq!(response.status(), 422);
    let body = json_body(response).await;
    assert_outcome(
        &body,
        "multiple-matches",
        Some("Appointment.participant[0].actor"),
    );
    let text = diagnostics(&body);
    assert!(text.contains("ambiguous") && text.contains(FIELD), "{text}");
    assert!(!text.contains("MRN-TWICE"), "{text}");
    assert!(sandbox.bookings().is_empty());
    assert_eq!(sandbox.lookup_requests(), 1);
}

#[tokio::test]
async fn values_travel_url_encoded_and_come_back_intact() {
    // A value with a space, a slash and a plus sign: one path segment at Salesforce.
    let mapping = format!(
        "{EXAMPLE_MAPPING}\n[[ids.lookup]]\nidentifier_system = \"http://hospital.example.org/mrn\"\n\
         object = \"Account\"\nexternal_id_field = \"{FIELD}\"\n"
    );
    let (app, sandbox) = spawn_with_records_and(
        &[("MRN 12/3+4", &[PATIENT])],
        Mapping::from_toml(&mapping, "by-identifier.toml").unwrap(),
    );
    let mut a = numbered_appointment(1);
    a["participant"][0]["actor"] = json!({
        "type": "Patient",
        "identifier": {"system": "http://hospital.example.org/mrn", "value": "MRN 12/3+4"}
    });

    let response = app.post_json(&a).await;

    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    assert_eq!(
        patient_reference(&sandbox.bookings()[0].request),
        &json!(format!("Patient/{PATIENT}"))
    );
}

#[tokio::test]
async fn a_hundred_concurrent_bookings_of_one_uncached_patient_make_one_lookup() {
    let (app, sandbox) = spawn_with_records(&[("MRN-BUSY", &[PATIENT])]);

    let bodies: Vec<Value> = (1..=100).map(|n| appointment_for(n, "MRN-BUSY")).collect();
    let responses = futures_util::future::join_all(bodies.iter().map(|b| app.post_json(b))).await;

    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    assert_eq!(sandbox.bookings().len(), 100);
    assert!(
        sandbox
            .bookings()
            .iter()
            .all(|b| patient_reference(&b.request) == &json!(format!("Patient/{PATIENT}")))
    );
    assert_eq!(sandbox.lookup_requests(), 1);
}

#[tokio::test]
async fn a_transaction_looks_up_every_entry_before_booking_any() {
    let (app, sandbox) = spawn_with_records(&[("MRN-0001", &[PATIENT])]);
    let entry = |resource: Value| json!({"resource": resource, "request": {"method": "POST", "url": "Appointment"}});
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [entry(appointment_for(1, "MRN-0001")), entry(appointment_for(2, "MRN-NONE"))]
    });

    let response = app
        .client
        .post(format!("{}/fhir", app.address))
        .header("Content-Type", "application/fhir+json")
        .body(bundle.to_string())
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 422);
    let body = json_body(response).await;
    assert_outcome(
        &body,
        "not-found",
        Some("Bundle.entry[1].resource.participant[0].actor"),
    );
    assert!(sandbox.bookings().is_empty());
    assert_eq!(sandbox.lookup_requests(), 2);
}

#[tokio::test]
async fn validate_uses_cached_answers_only() {
    let (app, sandbox) = spawn_with_records(&[("MRN-0001", &[PATIENT])]);
    let validate = |body: Value| {
        let app = &app;
        async move {
            let response = app
                .client
                .post(format!("{}/fhir/Appointment/$validate", app.address))
                .header("Content-Type", "application/fhir+json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            json_body(response).await
        }
    };

    // Not cached: the participant is named as one to be looked up; Salesforce hears nothing.
    let body = validate(appointment_for(1, "MRN-0001")).await;
    assert_eq!(body["issue"][0]["severity"], "information", "{body}");
    assert_outcome(
        &body,
        "informational",
        Some("Appointment.participant[0].actor"),
    );
    assert!(!diagnostics(&body).contains("MRN-0001"));
    assert_eq!(sandbox.lookup_requests(), 0);
    assert_eq!(sandbox.token_requests(), 0);

    // After a booking, the cached answer completes the request.
    assert_eq!(
        app.post_json(&appointment_for(2, "MRN-0001"))
            .await
            .status(),
        201
    );
    let body = validate(appointment_for(3, "MRN-0001")).await;
    let sent: Value = serde_json::from_str(body["issue"][1]["diagnostics"].as_str().unwrap())
        .unwrap_or_else(|_| panic!("{body}"));
    assert_eq!(
        patient_reference(&sent),
        &json!(format!("Patient/{PATIENT}"))
    );
    assert_eq!(sandbox.lookup_requests(), 1);
}

#[tokio::test]
async fn slot_search_actors_are_looked_up_like_participants() {
    let (app, sandbox) = spawn_with_records(&[]);

    let response = app
        .client
        .get(format!("{}/fhir/Slot", app.address))
        .query(&[
            ("start", "ge2025-09-20"),
            ("start", "lt2025-09-21"),
            ("schedule.actor", "Practitioner/npi-7"),
            (
                "appointment-type",
                "http://terminology.hl7.org/CodeSystem/v2-0276|FOLLOWUP",
            ),
        ])
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let body = json_body(response).await;
    assert!(body["total"].as_u64().unwrap() > 0, "{body}");
    assert_eq!(sandbox.lookup_requests(), 1);

    let response = app
        .client
        .get(format!("{}/fhir/Slot", app.address))
        .query(&[
            ("start", "ge2025-09-20"),
            ("schedule.actor", "Practitioner/npi-unknown"),
            (
                "appointment-type",
                "http://terminology.hl7.org/CodeSystem/v2-0276|FOLLOWUP",
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body = json_body(response).await;
    assert_outcome(&body, "not-found", None);
    assert!(diagnostics(&body).contains("schedule.actor value 1"));
}
