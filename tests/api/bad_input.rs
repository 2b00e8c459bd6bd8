//! Every bad input gets an OperationOutcome with the right status and expression, and nothing
//! reaches Salesforce (the sandbox sees neither a token request nor a booking).

use futures_util::stream;
use serde_json::{Value, json};

use crate::helpers::*;

async fn assert_nothing_sent(sandbox: &fhir_salesforce_proxy::sandbox::Sandbox) {
    assert!(
        sandbox.bookings().is_empty(),
        "a booking reached Salesforce"
    );
    assert_eq!(sandbox.token_requests(), 0, "a token was requested");
}

#[tokio::test]
async fn unparseable_bodies_are_400_structure() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_xml = format!(
        "<Appointment xmlns=\"http://hl7.org/fhir\">{}{}</Appointment>",
        "<extension>".repeat(20_000),
        "</extension>".repeat(20_000)
    );
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("truncated JSON", b"{\"resourceType\": \"Appointment\", \"status\"".to_vec(), "application/fhir+json", "structure"),
        ("not JSON", b"hello".to_vec(), "application/json", "structure"),
        ("JSON array", b"[]".to_vec(), "application/fhir+json", "structure"),
        ("no resourceType", br#"{"status":"booked"}"#.to_vec(), "application/fhir+json", "structure"),
        ("unknown element", br#"{"resourceType":"Appointment","status":"booked","colour":"red","participant":[{"status":"accepted","type":[{"text":"x"}]}]}"#.to_vec(), "application/fhir+json", "structure"),
        ("wrong type for status", br#"{"resourceType":"Appointment","status":42}"#.to_vec(), "application/fhir+json", "structure"),
        ("deeply nested JSON", deep_json.into_bytes(), "application/fhir+json", "structure"),
        ("malformed XML", b"<Appointment xmlns=\"http://hl7.org/fhir\"><status value=\"booked\">".to_vec(), "application/fhir+xml", "structure"),
        ("XML with DOCTYPE", b"<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"aaaa\">]><Appointment xmlns=\"http://hl7.org/fhir\"/>".to_vec(), "application/fhir+xml", "structure"),
        ("deeply nested XML", deep_xml.into_bytes(), "application/xml", "structure"),
        ("JSON sent as XML", serde_json::to_vec(&example_appointment()).unwrap(), "application/fhir+xml", "structure"),
        ("not UTF-8", vec![0xff, 0xfe, 0x00, 0x7b], "application/fhir+json", "structure"),
    ];
    for (name, body, content_type, code) in cases {
        let response = app.post_appointment(body, content_type).await;
        assert_eq!(response.status(), 400, "{name}");
        assert_outcome(&json_or_xml_body(response).await, code, None);
    }
    // The workers survived all of it.
    assert_eq!(app.post_json(&example_appointment()).await.status(), 201);
    assert_eq!(sandbox.bookings().len(), 1);
}

/// Parses an XML OperationOutcome loosely into the same JSON shape `assert_outcome` reads.
async fn json_or_xml_body(response: reqwest::Response) -> Value {
    let is_xml = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("xml");
    let text = response.text().await.unwrap();
    if !is_xml {
        return serde_json::from_str(&text).unwrap();
    }
    let resource: fhirbolt::model::r4::Resource = fhirbolt::xml::from_str(&text, None).unwrap();
    serde_json::from_str(&fhirbolt::json::to_string(&resource, None).unwrap()).unwrap()
}

#[tokio::test]
async fn wrong_resource_type_is_400_invalid() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let response = app
        .post_json(&json!({"resourceType": "Patient", "name": [{"family": "Chalmers"}]}))
        .await;
    assert_eq!(response.status(), 400);
    let body = json_body(response).await;
    assert_outcome(&body, "invalid", None);
    assert!(body.to_string().contains("Patient"), "{body}");
    assert!(!body.to_string().contains("Chalmers"), "{body}");

    let response = app
        .post_appointment(
            &b"<Patient xmlns=\"http://hl7.org/fhir\"><active value=\"true\"/></Patient>"[..],
            "application/fhir+xml",
        )
        .await;
    assert_eq!(response.status(), 400);
    assert_outcome(&json_or_xml_body(response).await, "invalid", None);
    assert_nothing_sent(&sandbox).await;
}

#[tokio::test]
async fn values_from_the_body_are_not_echoed_in_errors() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let mut a = example_appointment();
    // A patient's name where a number belongs: the parser's own message would quote it.
    a["minutesDuration"] = json!("Peter James Chalmers");
    let response = app.post_json(&a).await;
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(!text.contains("Chalmers"), "{text}");

    let mut a = example_appointment();
    a["participant"][0]["actor"]["reference"] = json!("Patient/MRN-SECRET-4711");
    let response = app.post_json(&a).await;
    assert_eq!(response.status(), 422);
    let text = response.text().await.unwrap();
    assert!(!text.contains("MRN-SECRET-4711"), "{text}");
    assert!(text.contains("Appointment.participant[0].actor"), "{text}");
    assert_nothing_sent(&sandbox).await;
}

#[tokio::test]
async fn rule_failures_are_422_with_expressions() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation, &str, &str)> = vec![
        (
            "status missing",
            Box::new(|a| {
                a.as_object_mut().unwrap().remove("status");
            }),
            "required",
            "Appointment.status",
        ),
        (
            "status not in value set",
            Box::new(|a| a["status"] = json!("no-show")),
            "code-invalid",
            "Appointment.status",
        ),
        (
            "participant missing",
            Box::new(|a| {
                a.as_object_mut().unwrap().remove("participant");
            }),
            "required",
            "Appointment.participant",
        ),
        (
            "participant status missing",
            Box::new(|a| {
                a["participant"][1]
                    .as_object_mut()
                    .unwrap()
                    .remove("status");
            }),
            "required",
            "Appointment.participant[1].status",
        ),
        (
            "participant without type or actor",
            Box::new(|a| a["participant"][2] = json!({"status": "accepted"})),
            "invariant",
            "Appointment.participant[2]",
        ),
        (
            "start without end",
            Box::new(|a| {
                a.as_object_mut().unwrap().remove("end");
            }),
            "invariant",
            "Appointment",
        ),
        (
            "booked without dates",
            Box::new(|a| {
                let o = a.as_object_mut().unwrap();
                o.remove("start");
                o.remove("end");
            }),
            "invariant",
            "Appointment",
        ),
        (
            "cancelationReason on booked",
            Box::new(|a| a["cancelationReason"] = json!({"text": "patient"})),
            "invariant",
            "Appointment.cancelationReason",
        ),
        (
            "start without zone",
            Box::new(|a| a["start"] = json!("2025-07-21T14:00:00")),
            "value",
            "Appointment.start",
        ),
        (
            "date-only end",
            Box::new(|a| a["end"] = json!("2025-07-21")),
            "value",
            "Appointment.end",
        ),
        (
            "unresolvable practitioner",
            Box::new(|a| a["participant"][1]["actor"]["identifier"]["value"] = json!("999")),
            "not-found",
            "Appointment.participant[1].actor",
        ),
        (
            "no location",
            Box::new(|a| {
                a["participant"].as_array_mut().unwrap().remove(2);
            }),
            "required",
            "Appointment.participant",
        ),
        (
            "comment too long",
            Box::new(|a| a["comment"] = json!("x".repeat(257))),
            "too-long",
            "Appointment.comment",
        ),
        (
            "cancelled appointment",
            Box::new(|a| a["status"] = json!("cancelled")),
            "business-rule",
            "Appointment.status",
        ),
    ];
    for (name, mutate, code, expression) in cases {
        let mut a = example_appointment();
        mutate(&mut a);
        let response = app.post_json(&a).await;
        assert_eq!(response.status(), 422, "{name}");
        assert_outcome(&json_body(response).await, code, Some(expression));
    }
    assert_nothing_sent(&sandbox).await;
}

#[tokio::test]
async fn noshow_with_cancelation_reason_passes_app_4_and_reaches_mapping() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let mut a = example_appointment();
    a["status"] = json!("noshow");
    a["cancelationReason"] = json!({"text": "did not come"});
    let response = app.post_json(&a).await;
    // R4 accepts it (app-4 with `noshow`); booking refuses a no-show as a business rule.
    assert_eq!(response.status(), 422);
    let body = json_body(response).await;
    assert_outcome(&body, "business-rule", Some("Appointment.status"));
    assert!(!body.to_string().contains("app-4"), "{body}");
    assert_nothing_sent(&sandbox).await;
}

#[tokio::test]
async fn unsupported_media_types_and_formats_are_refused() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let body = example_appointment().to_string();

    let response = app.post_appointment(body.clone(), "text/plain").await;
    assert_eq!(response.status(), 415);
    assert_outcome(&json_body(response).await, "not-supported", None);

    let response = app
        .post_appointment(body.clone(), "application/fhir+json; fhirVersion=3.0")
        .await;
    assert_eq!(response.status(), 415);

    let response = app
        .client
        .post(format!("{}/fhir/Appointment", app.address))
        .header("Content-Type", "application/fhir+json")
        .header("Accept", "text/html")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 406);
    assert_outcome(&json_body(response).await, "not-supported", None);

    let response = app
        .client
        .post(format!("{}/fhir/Appointment", app.address))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415, "no Content-Type");
    assert_nothing_sent(&sandbox).await;
}

#[tokio::test]
async fn oversized_bodies_are_413_whether_announced_or_streamed() {
    let sandbox = fhir_salesforce_proxy::sandbox::Sandbox::start(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        Default::default(),
    )
    .unwrap();
    let app = spawn_proxy_with(
        salesforce_settings(&sandbox.token_url()),
        example_mapping(),
        |s| {
            s.body_limit = 4096;
        },
    );

    // Announced by Content-Length.
    let response = app
        .post_appointment(vec![b' '; 5000], "application/fhir+json")
        .await;
    assert_eq!(response.status(), 413);
    assert_outcome(&json_body(response).await, "too-long", None);

    // Streamed without a length (chunked): the limit applies as the bytes arrive.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..10).map(|_| Ok(vec![b' '; 1000])).collect();
    let response = app
        .client
        .post(format!("{}/fhir/Appointment", app.address))
        .header("Content-Type", "application/fhir+json")
        .body(reqwest::Body::wrap_stream(stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_outcome(&json_body(response).await, "too-long", None);

    // A body under the limit still books.
    assert_eq!(app.post_json(&example_appointment()).await.status(), 201);
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_in_fhir() {
    let (app, _sandbox) = spawn_with_sandbox(example_mapping());

    let response = app
        .client
        .get(format!("{}/fhir/Patient/1", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_outcome(&json_body(response).await, "not-supported", None);

    let response = app
        .client
        .delete(format!("{}/fhir/Appointment", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET, HEAD, POST, PUT");
    assert_outcome(&json_body(response).await, "not-supported", None);
}
