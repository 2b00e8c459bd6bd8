//! No double bookings (conditional and retried creates, across a restart), and cancel and
//! reschedule through PUT and JSON Patch, against the sandbox.

use std::net::TcpListener;

use fhir_salesforce_proxy::sandbox::{Sandbox, SandboxSettings};
use fhir_salesforce_proxy::store::Store;
use serde_json::{Value, json};

use crate::helpers::*;

async fn post_with(app: &TestApp, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app
        .client
        .post(format!("{}/fhir/Appointment", app.address))
        .header("Content-Type", "application/fhir+json")
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_retried_post_books_once_even_across_a_restart() {
    let sandbox = Sandbox::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        SandboxSettings::default(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("appointments.db");
    let start = || {
        spawn_proxy_full(
            salesforce_settings(&sandbox.token_url()),
            example_mapping(),
            |_| {},
            Store::sqlite(&path).unwrap(),
        )
    };

    let first = start();
    let booked = post_with(&first, &example_appointment(), &[]).await;
    assert_eq!(booked.status(), 201);
    let booked = json_body(booked).await;
    first.stop().await;

    let second = start();
    let retried = post_with(&second, &example_appointment(), &[]).await;

    assert_eq!(retried.status(), 200);
    let retried = json_body(retried).await;
    assert_eq!(retried["id"], booked["id"]);
    assert_eq!(retried["status"], "booked");
    assert_eq!(sandbox.bookings().len(), 1, "the retry was booked again");
}

#[tokio::test]
async fn if_none_exist_matches_none_one_or_several() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let criterion = "identifier=http://hospital.example.org/fhir/appointment-id|A-2025-07-21-0001";

    // None yet: a normal create.
    let first = post_with(
        &app,
        &example_appointment(),
        &[("If-None-Exist", criterion)],
    )
    .await;
    assert_eq!(first.status(), 201);
    let first = json_body(first).await;

    // One: 200 with that appointment, nothing sent.
    let mut other = example_appointment();
    other["identifier"] = json!([{"system": "urn:x", "value": "other"}]);
    let again = post_with(&app, &other, &[("If-None-Exist", criterion)]).await;
    assert_eq!(again.status(), 200);
    assert!(again.headers().get("location").is_none());
    assert_eq!(json_body(again).await["id"], first["id"]);
    assert_eq!(sandbox.bookings().len(), 1);

    // Two more bookings, one per identifier: "urn:x|third" with a plain create...
    let mut third = example_appointment();
    third["identifier"] = json!([{"system": "urn:x", "value": "third"}]);
    assert_eq!(post_with(&app, &third, &[]).await.status(), 201);
    // ...and "urn:x|other", which the answer above did not record, with a conditional create,
    assert_eq!(
        post_with(&app, &other, &[("If-None-Exist", "identifier=urn:x|other")])
            .await
            .status(),
        201
    );
    // ...and an appointment carrying both identifiers that point at two bookings is a 412.
    let mut ambiguous = example_appointment();
    ambiguous["identifier"] = json!([
        {"system": "urn:x", "value": "third"},
        {"system": "urn:x", "value": "other"}
    ]);
    let response = post_with(&app, &ambiguous, &[]).await;
    assert_eq!(response.status(), 412);
    assert_outcome(&json_body(response).await, "multiple-matches", None);
    assert_eq!(sandbox.bookings().len(), 3);
}

#[tokio::test]
async fn if_none_exist_with_an_or_list_matches_any_of_its_identifiers() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let system = "http://hospital.example.org/fhir/appointment-id";
    let booked = json_body(post_with(&app, &numbered_appointment(1), &[]).await).await;
    // `S|X,S|A-1` (R4: a comma means OR): the second matches the booking.
    let either = format!("identifier={system}|X-9,{system}|A-1");
    let again = post_with(
        &app,
        &numbered_appointment(2),
        &[("If-None-Exist", &either)],
    )
    .await;
    assert_eq!(again.status(), 200);
    assert_eq!(json_body(again).await["id"], booked["id"]);
    assert_eq!(sandbox.bookings().len(), 1);

    // Two earlier bookings in the list: 412, nothing booked.
    assert_eq!(
        post_with(&app, &numbered_appointment(3), &[])
            .await
            .status(),
        201
    );
    let both = format!("identifier={system}|A-1,{system}|A-3");
    let several = post_with(&app, &numbered_appointment(4), &[("If-None-Exist", &both)]).await;
    assert_eq!(several.status(), 412);
    assert_outcome(&json_body(several).await, "multiple-matches", None);
    assert_eq!(sandbox.bookings().len(), 2);

    // None of them: booked.
    let none = format!("identifier={system}|N-1,{system}|N-2");
    let fresh = post_with(&app, &numbered_appointment(5), &[("If-None-Exist", &none)]).await;
    assert_eq!(fresh.status(), 201);
    assert_eq!(sandbox.bookings().len(), 3);
}

#[tokio::test]
async fn a_query_on_post_appointment_is_a_conditional_create_never_ignored() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let booked = json_body(post_with(&app, &numbered_appointment(1), &[]).await).await;
    let post_to = |query: &str| {
        app.client
            .post(format!("{}/fhir/Appointment?{query}", app.address))
            .header("Content-Type", "application/fhir+json")
            .body(numbered_appointment(2).to_string())
            .send()
    };
    // Honoured exactly like If-None-Exist.
    let matched = post_to(
        "identifier=http%3A%2F%2Fhospital.example.org%2Ffhir%2Fappointment-id%7CA-1&_format=json",
    )
    .await
    .unwrap();
    assert_eq!(matched.status(), 200);
    assert_eq!(json_body(matched).await["id"], booked["id"]);
    // `_format` and `_pretty` alone are no condition: a plain booking.
    assert_eq!(post_to("_pretty=true").await.unwrap().status(), 201);
    // Anything else is refused, naming it.
    let refused = post_to("patient=Patient/pat-1001").await.unwrap();
    assert_eq!(refused.status(), 400);
    let body = json_body(refused).await;
    let text = body["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(text.contains("`patient`"), "{text}");
    assert!(!text.contains("pat-1001"), "{text}");
    // A condition in both places is refused too.
    let twice = app
        .client
        .post(format!(
            "{}/fhir/Appointment?identifier=http://hospital.example.org/fhir/appointment-id|A-1",
            app.address
        ))
        .header("Content-Type", "application/fhir+json")
        .header(
            "If-None-Exist",
            "identifier=http://hospital.example.org/fhir/appointment-id|A-1",
        )
        .body(numbered_appointment(3).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 400);
    assert_eq!(sandbox.bookings().len(), 2);
}

#[tokio::test]
async fn if_none_exist_other_than_identifier_is_a_400() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    for criterion in [
        "patient=Patient/1",
        "identifier=nosystem",
        "identifier=a|b&status=booked",
    ] {
        let response = post_with(
            &app,
            &example_appointment(),
            &[("If-None-Exist", criterion)],
        )
        .await;
        assert_eq!(response.status(), 400, "{criterion}");
        assert_outcome(&json_body(response).await, "not-supported", None);
    }
    assert!(sandbox.bookings().is_empty());
}

async fn book(app: &TestApp) -> Value {
    let response = post_with(app, &example_appointment(), &[]).await;
    assert_eq!(response.status(), 201);
    json_body(response).await
}

async fn put(app: &TestApp, id: &str, body: &Value) -> reqwest::Response {
    app.client
        .put(format!("{}/fhir/Appointment/{id}", app.address))
        .header("Content-Type", "application/fhir+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn patch(app: &TestApp, id: &str, body: &Value, content_type: &str) -> reqwest::Response {
    app.client
        .patch(format!("{}/fhir/Appointment/{id}", app.address))
        .header("Content-Type", content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn put_with_new_times_reschedules_through_salesforce_update() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let mut appointment = book(&app).await;
    let id = appointment["id"].as_str().unwrap().to_owned();
    appointment["start"] = json!("2025-07-22T09:00:00Z");
    appointment["end"] = json!("2025-07-22T09:30:00Z");

    let response = put(&app, &id, &appointment).await;

    assert_eq!(response.status(), 200);
    let body = json_body(response).await;
    assert_eq!(body["id"], json!(id));
    assert_eq!(body["status"], "booked");
    assert_eq!(body["start"], "2025-07-22T09:00:00Z");
    let stored = sandbox.appointment(&id).unwrap();
    assert_eq!(stored.request["startDate"], "2025-07-22T09:00:00.000Z");
    assert_eq!(stored.request["endDate"], "2025-07-22T09:30:00.000Z");
    assert_eq!(stored.request["id"], json!(id));
}

#[tokio::test]
async fn put_with_status_cancelled_cancels_with_the_mapped_status_word() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let mut appointment = book(&app).await;
    let id = appointment["id"].as_str().unwrap().to_owned();
    appointment["status"] = json!("cancelled");
    appointment["cancelationReason"] = json!({"text": "Patient requested cancellation."});

    let response = put(&app, &id, &appointment).await;

    assert_eq!(response.status(), 200);
    assert_eq!(json_body(response).await["status"], "cancelled");
    assert_eq!(sandbox.cancellations(), vec![id.clone()]);
    let stored = sandbox.appointment(&id).unwrap();
    assert_eq!(
        stored.cancellation.unwrap(),
        json!({"id": id, "status": "Canceled", "cancellationReason": "Patient requested cancellation."})
    );
}

#[tokio::test]
async fn a_put_or_cancel_of_an_id_salesforce_does_not_hold_is_a_404_not_a_502() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let unknown = "08pxx0000009ZZZAAA";
    let mut appointment = example_appointment();
    appointment["id"] = json!(unknown);
    for status in ["booked", "cancelled"] {
        appointment["status"] = json!(status);
        let response = put(&app, unknown, &appointment).await;
        assert_eq!(response.status(), 404, "{status}");
        let body = json_body(response).await;
        assert_outcome(&body, "not-found", None);
        let text = body["issue"][0]["diagnostics"].as_str().unwrap();
        assert!(text.contains("no appointment with this id"), "{text}");
        assert!(!text.contains("api_version"), "{text}");
    }
    assert!(sandbox.cancellations().is_empty());
}

#[tokio::test]
async fn json_patch_cancels_a_booked_appointment() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let id = book(&app).await["id"].as_str().unwrap().to_owned();

    let response = patch(
        &app,
        &id,
        &json!([
            {"op": "replace", "path": "/status", "value": "cancelled"},
            {"op": "add", "path": "/cancelationReason", "value": {"text": "pat-mv"}}
        ]),
        "application/json-patch+json",
    )
    .await;

    assert_eq!(response.status(), 200);
    let body = json_body(response).await;
    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["cancelationReason"]["text"], "pat-mv");
    assert_eq!(sandbox.cancellations(), vec![id.clone()]);

    // Cancelling again: Salesforce says isSuccess false.
    let again = patch(
        &app,
        &id,
        &json!([{"op": "replace", "path": "/status", "value": "cancelled"}]),
        "application/json-patch+json",
    )
    .await;
    assert_eq!(again.status(), 422);
}

#[tokio::test]
async fn bad_updates_and_patches_are_refused_before_salesforce() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let appointment = book(&app).await;
    let id = appointment["id"].as_str().unwrap().to_owned();

    // Body id differs from the URL id.
    let response = put(&app, "08pSB0000000009ZZZ", &appointment).await;
    assert_eq!(response.status(), 400);
    assert_outcome(
        &json_body(response).await,
        "invalid",
        Some("Appointment.id"),
    );

    // No id in the body.
    let mut no_id = appointment.clone();
    no_id.as_object_mut().unwrap().remove("id");
    assert_eq!(put(&app, &id, &no_id).await.status(), 400);

    // PATCH of an appointment this proxy never booked.
    let response = patch(
        &app,
        "08pSB0000000009ZZZ",
        &json!([]),
        "application/json-patch+json",
    )
    .await;
    assert_eq!(response.status(), 404);
    assert_outcome(&json_body(response).await, "not-found", None);

    // PATCH that is not JSON Patch, or fails.
    assert_eq!(
        patch(&app, &id, &json!([]), "application/fhir+json")
            .await
            .status(),
        415
    );
    assert_eq!(
        patch(
            &app,
            &id,
            &json!({"op": "x"}),
            "application/json-patch+json"
        )
        .await
        .status(),
        400
    );
    let response = patch(
        &app,
        &id,
        &json!([{"op": "test", "path": "/status", "value": "proposed"}]),
        "application/json-patch+json",
    )
    .await;
    assert_eq!(response.status(), 422);
    // A patch that breaks the resource.
    let response = patch(
        &app,
        &id,
        &json!([{"op": "remove", "path": "/participant"}]),
        "application/json-patch+json",
    )
    .await;
    assert_eq!(response.status(), 422);

    assert!(sandbox.cancellations().is_empty());
    assert_eq!(
        sandbox.appointment(&id).unwrap().request["startDate"],
        "2025-07-21T18:00:00.000Z"
    );
}
