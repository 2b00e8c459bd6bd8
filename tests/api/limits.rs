//! The limits that protect the process, each answered with an OperationOutcome: body size (413),
//! head size (431; past actix-web's own limits a bare 431), the request timeout (504 when a
//! booking may have reached Salesforce, 503 when nothing could have changed) and the bound on
//! requests handled at once (503 with Retry-After, nothing sent to Salesforce).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use fhir_salesforce_proxy::config::ServerSettings;
use fhir_salesforce_proxy::sandbox::{Fault, Sandbox};

use crate::helpers::*;

const DEADLINE: Duration = Duration::from_secs(20);

fn spawn_limited(adjust: impl FnOnce(&mut ServerSettings)) -> (TestApp, Sandbox) {
    let sandbox = start_sandbox();
    let app = spawn_proxy_with(
        salesforce_settings(&sandbox.token_url()),
        example_mapping(),
        adjust,
    );
    (app, sandbox)
}

fn diagnostics(body: &serde_json::Value) -> String {
    body["issue"][0]["diagnostics"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_outcome_in_json_or_xml() {
    let (app, sandbox) = spawn_limited(|s| s.body_limit = 1000);
    let body = " ".repeat(2000) + &example_appointment().to_string();

    let response = app
        .post_appointment(body.clone(), "application/fhir+json")
        .await;

    assert_eq!(response.status(), 413);
    let outcome = json_body(response).await;
    assert_outcome(&outcome, "too-long", None);
    assert!(diagnostics(&outcome).contains("1000 bytes"), "{outcome}");

    let response = app
        .client
        .post(format!("{}/fhir/Appointment", app.address))
        .header("Content-Type", "application/fhir+xml")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let text = response.text().await.unwrap();
    assert!(text.contains("<OperationOutcome"), "{text}");
    assert!(text.contains("too-long"), "{text}");
    assert!(sandbox.api_calls().is_empty());
}

#[tokio::test]
async fn headers_over_the_limit_are_a_431_outcome() {
    let (app, sandbox) = spawn_limited(|s| s.max_header_bytes = 2048);

    let response = app
        .client
        .post(format!("{}/fhir/Appointment", app.address))
        .header("Content-Type", "application/fhir+json")
        .header("X-Padding", "p".repeat(3000))
        .body(example_appointment().to_string())
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 431);
    let outcome = json_body(response).await;
    assert_outcome(&outcome, "too-long", None);
    assert!(diagnostics(&outcome).contains("2048 bytes"), "{outcome}");
    assert!(sandbox.api_calls().is_empty());

    // Just under the limit passes.
    let response = app
        .client
        .post(format!("{}/fhir/Appointment", app.address))
        .header("Content-Type", "application/fhir+json")
        .header("X-Padding", "p".repeat(1000))
        .body(numbered_appointment(1).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

/// Sends a raw request head and returns what came back (possibly nothing, when the server closed
/// the connection before reading all of it).
fn raw_exchange(address: &str, head: String) -> String {
    let mut stream = TcpStream::connect(address.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    // The server may answer and close before it has read everything; that is what is tested.
    let _ = stream.write_all(head.as_bytes());
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn past_actix_webs_own_head_limits_the_answer_is_a_bare_431() {
    let (app, _sandbox) = spawn_limited(|_| {});
    let address = app.address.clone();

    // More than 96 headers, each small: actix refuses before the proxy sees the request.
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let head = format!("GET /fhir/metadata HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    let answer = tokio::task::spawn_blocking({
        let address = address.clone();
        move || raw_exchange(&address, head)
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(!answer.contains("OperationOutcome"), "{answer}");

    // A head over 128 KiB: the same.
    let head = format!(
        "GET /fhir/metadata HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(140 * 1024)
    );
    let answer = tokio::task::spawn_blocking(move || raw_exchange(&address, head))
        .await
        .unwrap();
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    assert!(!answer.contains("OperationOutcome"), "{answer}");

    // The proxy still serves.
    let response = app
        .client
        .get(format!("{}/fhir/metadata", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_booking_past_the_request_timeout_is_a_504_saying_its_outcome_is_unknown() {
    let (app, sandbox) = spawn_limited(|s| s.request_timeout = Duration::from_secs(1));
    sandbox.set_fault(Fault::Hold);

    let response = app.post_json(&numbered_appointment(1)).await;

    assert_eq!(response.status(), 504);
    // The id to ask about this request with, like on every other answer.
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert!(request_id.is_some_and(|id| id.len() >= 8));
    let outcome = json_body(response).await;
    assert_outcome(&outcome, "timeout", None);
    let text = diagnostics(&outcome);
    assert!(text.contains("after 1 seconds"), "{text}");
    assert!(text.contains("may or may not have booked"), "{text}");
    // The booking did reach Salesforce: that is why the answer cannot say it failed.
    assert_eq!(sandbox.held_calls(), 1);
    sandbox.clear_fault();
}

#[tokio::test]
async fn a_search_past_the_request_timeout_is_a_503_saying_it_is_safe_to_repeat() {
    let (app, sandbox) = spawn_limited(|s| s.request_timeout = Duration::from_secs(1));
    sandbox.set_fault(Fault::Hold);

    let response = app
        .client
        .get(format!("{}/fhir/Slot", app.address))
        .query(&[
            ("start", "ge2025-09-20"),
            ("start", "lt2025-09-21"),
            ("schedule.actor", "Practitioner/0bSxx0000005JoaxxE"),
            (
                "appointment-type",
                "http://terminology.hl7.org/CodeSystem/v2-0276|FOLLOWUP",
            ),
            ("status", "free"),
        ])
        .header("Accept", "application/fhir+xml")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let text = response.text().await.unwrap();
    assert!(text.contains("<OperationOutcome"), "{text}");
    assert!(text.contains("transient"), "{text}");
    assert!(text.contains("safe to send again"), "{text}");
    sandbox.clear_fault();
}

#[tokio::test]
async fn past_the_bound_on_requests_at_once_a_request_gets_503_and_nothing_is_sent() {
    let (app, sandbox) = spawn_limited(|s| s.max_concurrent_requests = 2);
    sandbox.set_fault(Fault::Hold);
    let held: Vec<_> = (1..=2)
        .map(|n| {
            let client = app.client.clone();
            let url = format!("{}/fhir/Appointment", app.address);
            tokio::spawn(async move {
                client
                    .post(url)
                    .header("Content-Type", "application/fhir+json")
                    .body(numbered_appointment(n).to_string())
                    .send()
                    .await
                    .unwrap()
            })
        })
        .collect();
    tokio::time::timeout(DEADLINE, sandbox.wait_until_held(2))
        .await
        .expect("two bookings reach the sandbox");

    let third = app.post_json(&numbered_appointment(3)).await;

    assert_eq!(third.status(), 503);
    assert_eq!(third.headers()["retry-after"], "1");
    let outcome = json_body(third).await;
    assert_outcome(&outcome, "transient", None);
    assert!(
        diagnostics(&outcome).contains("nothing was sent to Salesforce"),
        "{outcome}"
    );
    assert_eq!(sandbox.api_calls().len(), 2, "the third reached Salesforce");
    // Probes are not counted: they answer while the proxy is full.
    let alive = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(alive.status(), 200);

    sandbox.clear_fault();
    for task in held {
        assert_eq!(task.await.unwrap().status(), 201);
    }
    assert_eq!(app.post_json(&numbered_appointment(4)).await.status(), 201);
}
