//! Happy paths against the sandbox: JSON and XML in and out, the spec's example through a
//! crosswalk, `Prefer`, and the token cache across bookings.

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn example_appointment_is_booked_and_returned_as_fhir() {
    // Arrange
    let (app, sandbox) = spawn_with_sandbox(example_mapping());

    // Act
    let response = app.post_json(&example_appointment()).await;

    // Assert
    assert_eq!(response.status(), 201);
    assert_eq!(
        response.headers()["content-type"],
        "application/fhir+json; charset=utf-8"
    );
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(response.headers().contains_key("last-modified"));
    assert!(response.headers().contains_key("x-request-id"));
    let body = json_body(response).await;
    let bookings = sandbox.bookings();
    assert_eq!(bookings.len(), 1);
    let id = &bookings[0].id;
    assert_eq!(location, format!("/fhir/Appointment/{id}"));
    assert_eq!(body["resourceType"], "Appointment");
    assert_eq!(body["id"], json!(id));
    assert_eq!(body["status"], "booked");
    assert!(body["meta"]["lastUpdated"].as_str().unwrap().ends_with('Z'));
    let identifiers = body["identifier"].as_array().unwrap();
    assert!(identifiers.contains(&json!({
        "use": "secondary", "system": "urn:salesforce:ServiceAppointment", "value": id
    })));
    // The client's own identifier is kept.
    assert!(
        identifiers
            .iter()
            .any(|i| i["value"] == "A-2025-07-21-0001")
    );
    // What Salesforce received is the documented sample request.
    assert_eq!(bookings[0].request, documented_sample());
}

#[tokio::test]
async fn spec_example_is_booked_through_a_crosswalk() {
    let (app, sandbox) = spawn_with_sandbox(fixture_mapping("spec-crosswalk.toml"));

    let response = app
        .post_appointment(
            fixture("fhir/appointment-example.json"),
            "application/fhir+json",
        )
        .await;

    assert_eq!(response.status(), 201);
    let body = json_body(response).await;
    assert_eq!(body["status"], "booked");
    // FHIR says a client-sent id is ignored on create: the Salesforce id replaces "example".
    assert_eq!(body["id"], json!(sandbox.bookings()[0].id));
    let sent = &sandbox.bookings()[0].request;
    assert_eq!(
        *sent,
        json!({
            "channelId": "0eFxx000000NNOVxx0",
            "description": "Discussion on the results of your recent MRI",
            "startDate": "2013-12-10T09:00:00.000Z",
            "endDate": "2013-12-10T11:00:00.000Z",
            "comment": "Further expand on the results of the MRI and determine the next actions that may be appropriate.",
            "sourceSystem": "cerner",
            "appointmentTypes": ["FOLLOWUP"],
            "serviceCategories": ["gp"],
            "specialties": ["GeneralPractice"],
            "participants": [
                {"reference": "Patient/001xx000012udqQxxQ", "isReferenceRequired": true},
                {"reference": "Practitioner/0bSxx0000005JoaxxE", "isReferenceRequired": true},
                {"reference": "Facility/001xx000012udqhxxA", "isReferenceRequired": true}
            ]
        })
    );
}

#[tokio::test]
async fn xml_in_gives_xml_out() {
    let (app, sandbox) = spawn_with_sandbox(fixture_mapping("spec-crosswalk.toml"));

    let response = app
        .post_appointment(
            fixture("fhir/appointment-example.xml"),
            "application/fhir+xml",
        )
        .await;

    assert_eq!(response.status(), 201);
    assert_eq!(
        response.headers()["content-type"],
        "application/fhir+xml; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let id = &sandbox.bookings()[0].id;
    assert!(
        text.contains("<Appointment xmlns=\"http://hl7.org/fhir\">"),
        "{text}"
    );
    assert!(text.contains(&format!("<id value=\"{id}\"/>")), "{text}");
    assert!(text.contains("<status value=\"booked\"/>"), "{text}");
    assert_eq!(
        sandbox.bookings()[0].request["startDate"],
        "2013-12-10T09:00:00.000Z"
    );
}

#[tokio::test]
async fn accept_and_format_choose_the_answer_format() {
    let (app, _sandbox) = spawn_with_sandbox(example_mapping());

    let xml = app
        .client
        .post(format!("{}/fhir/Appointment", app.address))
        .header("Content-Type", "application/fhir+json")
        .header("Accept", "application/fhir+xml")
        .body(numbered_appointment(1).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(xml.status(), 201);
    let text = xml.text().await.unwrap();
    assert!(
        text.contains("<Appointment xmlns=\"http://hl7.org/fhir\">"),
        "{text}"
    );

    let json = app
        .client
        .post(format!(
            "{}/fhir/Appointment?_format=json&_pretty=true",
            app.address
        ))
        .header("Content-Type", "application/fhir+json")
        .header("Accept", "application/fhir+xml")
        .body(numbered_appointment(2).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 201);
    let text = json.text().await.unwrap();
    assert!(
        text.contains("\n  \"resourceType\": \"Appointment\""),
        "{text}"
    );
}

#[tokio::test]
async fn prefer_header_is_honoured() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let post = |prefer: &'static str, n: usize| {
        app.client
            .post(format!("{}/fhir/Appointment", app.address))
            .header("Content-Type", "application/fhir+json")
            .header("Prefer", prefer)
            .body(numbered_appointment(n).to_string())
            .send()
    };

    let minimal = post("return=minimal", 1).await.unwrap();
    assert_eq!(minimal.status(), 201);
    assert!(minimal.headers().contains_key("location"));
    assert_eq!(minimal.text().await.unwrap(), "");

    let outcome = post("return=OperationOutcome", 2).await.unwrap();
    assert_eq!(outcome.status(), 201);
    let body: Value = json_body(outcome).await;
    assert_outcome(&body, "informational", None);
    let id = &sandbox.bookings()[1].id;
    assert!(
        body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains(id.as_str())
    );

    let representation = post("return=representation", 3).await.unwrap();
    assert_eq!(
        json_body(representation).await["resourceType"],
        "Appointment"
    );
    assert_eq!(sandbox.bookings().len(), 3);
}

#[tokio::test]
async fn one_token_serves_many_bookings_and_an_expired_one_is_replaced_once() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    for n in 0..3 {
        assert_eq!(app.post_json(&numbered_appointment(n)).await.status(), 201);
    }
    assert_eq!(sandbox.token_requests(), 1);

    // The sandbox forgets its sessions: the proxy's cached token now gets 401 INVALID_SESSION_ID.
    sandbox.expire_tokens();
    let response = app.post_json(&numbered_appointment(3)).await;

    assert_eq!(response.status(), 201);
    assert_eq!(sandbox.token_requests(), 2);
    assert_eq!(sandbox.bookings().len(), 4);
}

#[tokio::test]
async fn a_slot_booked_twice_is_refused_with_salesforce_message() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let mut appointment = numbered_appointment(1);
    appointment["slot"] = json!([{"reference": "Slot/24477854-21304876-62852027-2"}]);
    assert_eq!(app.post_json(&appointment).await.status(), 201);

    // Another appointment (its own identifier) for the same slot.
    appointment["identifier"][0]["value"] = json!("A-2");
    let second = app.post_json(&appointment).await;

    assert_eq!(second.status(), 422);
    let body = json_body(second).await;
    assert_outcome(&body, "business-rule", None);
    assert!(
        body.to_string().contains("24477854-21304876-62852027-2"),
        "{body}"
    );
    assert_eq!(sandbox.bookings().len(), 1);
    assert_eq!(
        sandbox.bookings()[0].request["slots"],
        json!([{"id": "24477854-21304876-62852027-2", "reference": "0bSxx0000005JoaxxE"}])
    );
}
