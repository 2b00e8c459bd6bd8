//! `POST /fhir/Appointment/$validate`: the dry run. Valid, invalid and unparseable Appointments all
//! get 200 with an OperationOutcome; only a validation that cannot be performed gets a 4xx; and
//! Salesforce hears nothing of any of it.

use fhir_salesforce_proxy::sandbox::Sandbox;
use fhirbolt::model::r4::resources::OperationOutcome;
use serde_json::{Value, json};

use crate::helpers::*;

async fn validate(
    app: &TestApp,
    body: impl Into<reqwest::Body>,
    content_type: &str,
) -> reqwest::Response {
    app.client
        .post(format!("{}/fhir/Appointment/$validate", app.address))
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .expect("the proxy answers")
}

fn assert_nothing_sent(sandbox: &Sandbox) {
    assert!(
        sandbox.bookings().is_empty(),
        "a booking reached Salesforce"
    );
    assert_eq!(sandbox.token_requests(), 0, "a token was requested");
}

/// Asserts the two `information` issues of a valid Appointment and returns the request JSON the
/// second one holds.
fn valid_outcome_request(body: &Value) -> Value {
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    let issues = body["issue"].as_array().unwrap();
    assert_eq!(issues.len(), 2, "{body}");
    for issue in issues {
        assert_eq!(issue["severity"], "information", "{body}");
        assert_eq!(issue["code"], "informational", "{body}");
    }
    let first = issues[0]["diagnostics"].as_str().unwrap();
    assert!(first.contains("is valid"), "{first}");
    assert!(first.contains("Nothing was sent to Salesforce"), "{first}");
    serde_json::from_str(issues[1]["diagnostics"].as_str().unwrap())
        .expect("the second issue holds the request JSON")
}

#[tokio::test]
async fn a_valid_appointment_gets_the_exact_book_appointment_request() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());

    let response = validate(
        &app,
        example_appointment().to_string(),
        "application/fhir+json",
    )
    .await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/fhir+json; charset=utf-8"
    );
    let body = json_body(response).await;
    assert_eq!(valid_outcome_request(&body), documented_sample());
    // Exactly the bytes the client would send: compact serde JSON, in the documented key order.
    let text = body["issue"][1]["diagnostics"].as_str().unwrap();
    assert!(
        text.starts_with(r#"{"workTypeId":"08qxx000000Axq6xxC","channelId":"#),
        "{text}"
    );
    assert_nothing_sent(&sandbox);
}

#[tokio::test]
async fn a_parameters_body_is_validated_like_the_bare_resource() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let parameters = json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "mode", "valueCode": "create"},
            {"name": "resource", "resource": example_appointment()}
        ]
    });

    let response = validate(&app, parameters.to_string(), "application/fhir+json").await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        valid_outcome_request(&json_body(response).await),
        documented_sample()
    );
    assert_nothing_sent(&sandbox);
}

#[tokio::test]
async fn xml_in_gives_an_xml_outcome_with_the_request() {
    let (app, sandbox) = spawn_with_sandbox(fixture_mapping("spec-crosswalk.toml"));

    let response = validate(
        &app,
        fixture("fhir/appointment-example.xml"),
        "application/fhir+xml",
    )
    .await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/fhir+xml; charset=utf-8"
    );
    let outcome: OperationOutcome =
        fhirbolt::xml::from_slice(&response.bytes().await.unwrap(), None).unwrap();
    assert_eq!(outcome.issue.len(), 2);
    let request: Value = serde_json::from_str(
        outcome.issue[1]
            .diagnostics
            .as_ref()
            .and_then(|d| d.value.as_deref())
            .unwrap(),
    )
    .unwrap();
    // What `booking.rs` shows the sandbox receives for the same file and mapping.
    assert_eq!(request["startDate"], "2013-12-10T09:00:00.000Z");
    assert_eq!(request["appointmentTypes"], json!(["FOLLOWUP"]));
    assert_eq!(request["sourceSystem"], "cerner");
    assert_eq!(
        request["participants"][0],
        json!({"reference": "Patient/001xx000012udqQxxQ", "isReferenceRequired": true})
    );
    assert_nothing_sent(&sandbox);
}

#[tokio::test]
async fn invalid_appointments_get_200_with_every_issue_and_its_expression() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());

    // R4 rules: app-2 (start without end) and a participant status outside its value set.
    let mut broken = example_appointment();
    broken.as_object_mut().unwrap().remove("end");
    broken["participant"][1]["status"] = json!("maybe");
    let response = validate(&app, broken.to_string(), "application/fhir+json").await;
    assert_eq!(response.status(), 200);
    let body = json_body(response).await;
    assert_outcome(&body, "invariant", Some("Appointment"));
    assert_outcome(
        &body,
        "code-invalid",
        Some("Appointment.participant[1].status"),
    );
    assert!(
        body["issue"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["severity"] == "error")
    );

    // Mapping: a patient with no Salesforce id is named by expression, not by value.
    let mut unknown = example_appointment();
    unknown["participant"][0]["actor"]["reference"] = json!("Patient/zebulon-quixote");
    let response = validate(&app, unknown.to_string(), "application/fhir+json").await;
    assert_eq!(response.status(), 200);
    let body = json_body(response).await;
    assert_outcome(&body, "not-found", Some("Appointment.participant[0].actor"));
    assert_eq!(body["issue"].as_array().unwrap().len(), 1, "{body}");
    assert!(!body.to_string().contains("zebulon"), "{body}");
    assert_nothing_sent(&sandbox);
}

#[tokio::test]
async fn unparseable_bodies_are_still_200_with_the_structure_issue() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let cases: [(&[u8], &str); 4] = [
        (b"hello", "application/fhir+json"),
        (
            br#"{"resourceType": "Appointment", "status""#,
            "application/json",
        ),
        (
            br#"{"resourceType":"Appointment","status":"booked","colour":"red"}"#,
            "application/fhir+json",
        ),
        (
            b"<Appointment xmlns=\"http://hl7.org/fhir\"><status value=\"booked\">",
            "application/fhir+xml",
        ),
    ];
    for (body, content_type) in cases {
        let response = validate(&app, body.to_vec(), content_type).await;
        assert_eq!(response.status(), 200, "{content_type}");
        if content_type.contains("xml") {
            let outcome: OperationOutcome =
                fhirbolt::xml::from_slice(&response.bytes().await.unwrap(), None).unwrap();
            assert_eq!(outcome.issue[0].code.value.as_deref(), Some("structure"));
            assert_eq!(outcome.issue[0].severity.value.as_deref(), Some("error"));
        } else {
            let body = json_body(response).await;
            assert_outcome(&body, "structure", None);
            assert_eq!(body["issue"][0]["severity"], "error");
        }
    }
    assert_nothing_sent(&sandbox);
}

#[tokio::test]
async fn a_validation_that_cannot_be_performed_is_a_4xx() {
    let sandbox = Sandbox::start(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        Default::default(),
    )
    .unwrap();
    let app = spawn_proxy_with(
        salesforce_settings(&sandbox.token_url()),
        example_mapping(),
        |server| server.body_limit = 4096,
    );

    let response = validate(&app, example_appointment().to_string(), "text/plain").await;
    assert_eq!(response.status(), 415);
    assert_outcome(&json_body(response).await, "not-supported", None);

    let response = validate(&app, vec![b' '; 5000], "application/fhir+json").await;
    assert_eq!(response.status(), 413);
    assert_outcome(&json_body(response).await, "too-long", None);

    let cases = [
        (
            json!({"resourceType": "Parameters", "parameter": [{"name": "mode", "valueCode": "create"}]}),
            "required",
        ),
        (
            json!({"resourceType": "Parameters", "parameter": [
                {"name": "resource", "resource": example_appointment()},
                {"name": "profile", "valueUri": "http://example.org/StructureDefinition/x"}
            ]}),
            "not-supported",
        ),
        (
            json!({"resourceType": "Parameters", "parameter": [
                {"name": "resource", "resource": example_appointment()},
                {"name": "mode", "valueCode": "delete"}
            ]}),
            "not-supported",
        ),
    ];
    for (parameters, code) in cases {
        let response = validate(&app, parameters.to_string(), "application/fhir+json").await;
        assert_eq!(response.status(), 400, "{parameters}");
        assert_outcome(&json_body(response).await, code, None);
    }
    assert_nothing_sent(&sandbox);
}
