//! Batch and transaction Bundles at `POST [base]`, against the sandbox.

use serde_json::{Value, json};

use crate::helpers::*;

fn appointment(n: u32) -> Value {
    let mut a = example_appointment();
    a["identifier"] = json!([{"system": "urn:test:bundle", "value": format!("appt-{n}")}]);
    a
}

fn create_entry(resource: Value) -> Value {
    json!({"resource": resource, "request": {"method": "POST", "url": "Appointment"}})
}

async fn post_bundle(app: &TestApp, bundle: &Value) -> reqwest::Response {
    app.client
        .post(format!("{}/fhir", app.address))
        .header("Content-Type", "application/fhir+json")
        .body(bundle.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_batch_books_each_entry_on_its_own_in_request_order() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let mut bad = appointment(2);
    bad["comment"] = json!("x".repeat(300));
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            create_entry(appointment(1)),
            create_entry(bad),
            {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Appointment", "colour": "red"}, "request": {"method": "POST", "url": "Appointment"}},
            {"resource": appointment(5)},
            create_entry(appointment(6)),
        ]
    });

    let response = post_bundle(&app, &bundle).await;

    assert_eq!(response.status(), 200);
    let body = json_body(response).await;
    assert_eq!(body["type"], "batch-response");
    let entries = body["entry"].as_array().unwrap();
    let statuses: Vec<&str> = entries
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        vec![
            "201 Created",
            "422 Unprocessable Entity",
            "400 Bad Request",
            "400 Bad Request",
            "400 Bad Request",
            "201 Created"
        ]
    );
    assert_outcome(
        &entries[1]["response"]["outcome"],
        "too-long",
        Some("Bundle.entry[1].resource.comment"),
    );
    assert_outcome(
        &entries[2]["response"]["outcome"],
        "not-supported",
        Some("Bundle.entry[2].request.url"),
    );
    assert_outcome(&entries[3]["response"]["outcome"], "structure", None);
    assert_outcome(
        &entries[4]["response"]["outcome"],
        "required",
        Some("Bundle.entry[4].request"),
    );
    let bookings = sandbox.bookings();
    assert_eq!(bookings.len(), 2);
    assert_eq!(
        entries[0]["response"]["location"],
        format!("/fhir/Appointment/{}", bookings[0].id)
    );
    // R4: a response entry's fullUrl is absolute.
    assert_eq!(
        entries[0]["fullUrl"],
        format!("{}/fhir/Appointment/{}", app.address, bookings[0].id)
    );
    assert_eq!(entries[5]["resource"]["id"], json!(bookings[1].id));
}

#[tokio::test]
async fn a_transaction_books_all_or_cancels_what_it_booked() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    // A slot taken beforehand, so that the transaction's third booking fails at Salesforce.
    let mut taken = appointment(0);
    taken["slot"] = json!([{"reference": "Slot/slot-1"}]);
    assert_eq!(app.post_json(&taken).await.status(), 201);
    let mut third = appointment(3);
    third["slot"] = json!([{"reference": "Slot/slot-1"}]);
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [create_entry(appointment(1)), create_entry(appointment(2)), create_entry(third)]
    });

    let response = post_bundle(&app, &bundle).await;

    assert_eq!(response.status(), 422);
    let body = json_body(response).await;
    assert_eq!(body["resourceType"], "OperationOutcome");
    assert_outcome(&body, "business-rule", Some("Bundle.entry[2]"));
    let bookings = sandbox.bookings();
    assert_eq!(bookings.len(), 3, "the taken slot, then entries 0 and 1");
    let undone = vec![bookings[1].id.clone(), bookings[2].id.clone()];
    assert_eq!(sandbox.cancellations(), undone);
    let text = body.to_string();
    for id in &undone {
        assert!(
            text.contains(&format!("booked as {id} and was cancelled again")),
            "{text}"
        );
    }

    // Retrying the whole transaction after the slot problem is fixed books afresh.
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [create_entry(appointment(1)), create_entry(appointment(2))]
    });
    let response = post_bundle(&app, &bundle).await;
    assert_eq!(response.status(), 200);
    let body = json_body(response).await;
    assert_eq!(body["type"], "transaction-response");
    let statuses: Vec<&str> = body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["201 Created", "201 Created"]);
    assert_eq!(sandbox.bookings().len(), 5);
    for entry in body["entry"].as_array().unwrap() {
        let full_url = entry["fullUrl"].as_str().unwrap();
        let id = entry["resource"]["id"].as_str().unwrap();
        assert_eq!(full_url, format!("{}/fhir/Appointment/{id}", app.address));
    }
}

#[tokio::test]
async fn a_transaction_with_an_invalid_entry_books_nothing() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let mut bad = appointment(2);
    bad["participant"][0]["actor"]["reference"] = json!("Patient/unknown");
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            create_entry(appointment(1)),
            create_entry(bad),
            {"resource": appointment(3), "request": {"method": "PUT", "url": "Appointment/08pSB0000000001AAA"}}
        ]
    });

    let response = post_bundle(&app, &bundle).await;

    assert_eq!(response.status(), 422);
    let body = json_body(response).await;
    assert_outcome(
        &body,
        "not-found",
        Some("Bundle.entry[1].resource.participant[0].actor"),
    );
    assert_outcome(&body, "not-supported", Some("Bundle.entry[2].request"));
    assert!(sandbox.bookings().is_empty());
    assert_eq!(sandbox.token_requests(), 0);
}

#[tokio::test]
async fn other_bundles_and_bodies_are_refused() {
    let (app, _sandbox) = spawn_with_sandbox(example_mapping());
    let response = post_bundle(
        &app,
        &json!({"resourceType": "Bundle", "type": "collection"}),
    )
    .await;
    assert_eq!(response.status(), 400);
    assert_outcome(
        &json_body(response).await,
        "not-supported",
        Some("Bundle.type"),
    );

    let response = post_bundle(&app, &example_appointment()).await;
    assert_eq!(response.status(), 400);
    assert_outcome(&json_body(response).await, "invalid", Some("Bundle"));

    let response = post_bundle(
        &app,
        &json!({"resourceType": "Bundle", "type": "batch", "entry": {}}),
    )
    .await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn a_batch_can_cancel_with_a_json_patch_entry() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let booked = json_body(app.post_json(&appointment(1)).await).await;
    let id = booked["id"].as_str().unwrap();
    use base64::Engine;
    let patch = base64::engine::general_purpose::STANDARD
        .encode(json!([{"op": "replace", "path": "/status", "value": "cancelled"}]).to_string());
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{
            "resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": patch},
            "request": {"method": "PATCH", "url": format!("Appointment/{id}")}
        }]
    });

    let response = post_bundle(&app, &bundle).await;

    assert_eq!(response.status(), 200);
    let body = json_body(response).await;
    assert_eq!(body["entry"][0]["response"]["status"], "200 OK");
    assert_eq!(body["entry"][0]["resource"]["status"], "cancelled");
    assert_eq!(sandbox.cancellations(), vec![id.to_owned()]);
}

/// An Appointment as FHIR XML, without an XML declaration, for embedding in a Bundle.
fn appointment_xml(appointment: &Value) -> String {
    let typed: fhirbolt::model::r4::resources::Appointment =
        fhirbolt::json::from_json_value(appointment.clone(), None).unwrap();
    let xml = String::from_utf8(fhirbolt::xml::to_vec(&typed, None).unwrap()).unwrap();
    match xml.strip_prefix("<?xml") {
        Some(rest) => rest[rest.find("?>").unwrap() + 2..].to_owned(),
        None => xml,
    }
}

#[tokio::test]
async fn an_xml_batch_is_read_and_answered_in_xml() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let mut bad = appointment(2);
    bad["comment"] = json!("x".repeat(300));
    let entry = |resource: String| {
        format!(
            "<entry><resource>{resource}</resource><request><method value=\"POST\"/>\
             <url value=\"Appointment\"/></request></entry>"
        )
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Bundle xmlns=\"http://hl7.org/fhir\">\
         <type value=\"batch\"/>{}{}{}</Bundle>",
        entry(appointment_xml(&appointment(1))),
        entry(appointment_xml(&bad)),
        entry("<Appointment><colour value=\"red\"/></Appointment>".to_owned()),
    );

    let response = app
        .client
        .post(format!("{}/fhir", app.address))
        .header("Content-Type", "application/fhir+xml")
        .header("Accept", "application/fhir+xml")
        .body(body)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/fhir+xml")
    );
    let strict = Some(fhirbolt::serde::DeserializationConfig {
        mode: fhirbolt::serde::DeserializationMode::Strict,
    });
    let bundle: fhirbolt::model::r4::resources::Bundle =
        fhirbolt::xml::from_slice(&response.bytes().await.unwrap(), strict).expect("an R4 Bundle");
    // Back to JSON to read it like the other tests.
    let body: Value =
        serde_json::from_slice(&fhirbolt::json::to_vec(&bundle, None).unwrap()).unwrap();
    assert_eq!(body["type"], "batch-response");
    let statuses: Vec<&str> = body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["201 Created", "422 Unprocessable Entity", "400 Bad Request"]
    );
    assert_outcome(
        &body["entry"][1]["response"]["outcome"],
        "too-long",
        Some("Bundle.entry[1].resource.comment"),
    );
    assert_outcome(&body["entry"][2]["response"]["outcome"], "structure", None);
    let bookings = sandbox.bookings();
    assert_eq!(bookings.len(), 1);
    assert_eq!(body["entry"][0]["resource"]["id"], json!(bookings[0].id));
}

#[tokio::test]
async fn a_malformed_xml_bundle_is_a_400_and_books_nothing() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    for (body, code) in [
        (
            "<Bundle xmlns=\"http://hl7.org/fhir\"><type value=\"batch\"/><entry>",
            "structure",
        ),
        (
            "<Bundle xmlns=\"http://hl7.org/fhir\"><type value=\"history\"/></Bundle>",
            "not-supported",
        ),
        ("<Appointment xmlns=\"http://hl7.org/fhir\"/>", "invalid"),
    ] {
        let response = app
            .client
            .post(format!("{}/fhir", app.address))
            .header("Content-Type", "application/fhir+xml")
            .header("Accept", "application/fhir+json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        assert_outcome(&json_body(response).await, code, None);
    }
    assert!(sandbox.bookings().is_empty());
}
