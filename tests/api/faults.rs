//! Salesforce misbehaving, simulated with wiremock on 127.0.0.1: retries only where Salesforce
//! surely did not act, one token request for many concurrent callers, every failure as FHIR.

use std::io::Read;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::*;

const BOOK_PATH: &str = "/services/data/v65.0/connect/health/appointment-management/appointment";
const TOKEN_PATH: &str = "/services/oauth2/token";

/// A wiremock "org" whose token endpoint answers `token-N` tokens pointing back at itself.
async fn org() -> MockServer {
    MockServer::start().await
}

fn token_response(server: &MockServer, token: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": token,
        "instance_url": server.uri(),
        "id": format!("{}/id/00D000000000001AAA/005000000000001AAA", server.uri()),
        "token_type": "Bearer",
        "issued_at": "1764124800000",
        "signature": "c2lnbmF0dXJl",
        "scope": "api"
    }))
}

async fn mount_token(server: &MockServer, token: &str, expected_calls: u64) {
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(token_response(server, token))
        .expect(expected_calls)
        .named("token")
        .mount(server)
        .await;
}

/// Salesforce's Book Appointment endpoint answering `response`, expected `times` times (checked
/// when the server is dropped).
async fn mount_book(server: &MockServer, response: ResponseTemplate, times: u64) {
    Mock::given(method("POST"))
        .and(path(BOOK_PATH))
        .respond_with(response)
        .expect(times)
        .mount(server)
        .await;
}

/// A Salesforce REST error answer: an array with one error.
fn salesforce_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!([{ "errorCode": code, "message": message }]))
}

/// Salesforce's answer to an expired or revoked session: a 401 before any processing.
fn session_expired() -> ResponseTemplate {
    salesforce_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
}

fn booked(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "id": id, "isSuccess": true, "status": "Scheduled", "error": []
    }))
}

fn proxy_for(server: &MockServer) -> TestApp {
    spawn_proxy(
        salesforce_settings(&format!("{}{TOKEN_PATH}", server.uri())),
        example_mapping(),
    )
}

async fn book_calls(server: &MockServer) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == BOOK_PATH)
        .collect()
}

#[tokio::test]
async fn an_invalid_session_is_retried_once_with_a_fresh_token() {
    let server = org().await;
    mount_token(&server, "token-1", 2).await;
    Mock::given(method("POST"))
        .and(path(BOOK_PATH))
        .respond_with(session_expired())
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    mount_book(&server, booked("08pxx0000004KhxxAE"), 1).await;
    let app = proxy_for(&server);

    let response = app.post_json(&example_appointment()).await;

    assert_eq!(response.status(), 201);
    assert_eq!(json_body(response).await["id"], "08pxx0000004KhxxAE");
    let calls = book_calls(&server).await;
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].headers["authorization"], "Bearer token-1");
    // The request sent is the same both times: only the session changed.
    assert_eq!(calls[0].body, calls[1].body);
}

#[tokio::test]
async fn a_second_invalid_session_is_a_502_not_a_loop() {
    let server = org().await;
    mount_token(&server, "token-1", 2).await;
    mount_book(&server, session_expired(), 2).await;
    let app = proxy_for(&server);

    let response = app.post_json(&example_appointment()).await;

    assert_eq!(response.status(), 502);
    let body = json_body(response).await;
    assert_outcome(&body, "exception", None);
    assert!(!body.to_string().contains("token-1"));
}

#[tokio::test]
async fn fifty_concurrent_requests_on_a_cold_cache_cause_one_token_request() {
    let server = org().await;
    // The token answer is slow so that all fifty requests wait on the same fetch.
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(token_response(&server, "token-1").set_delay(Duration::from_millis(300)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(BOOK_PATH))
        .and(header("authorization", "Bearer token-1"))
        .respond_with(booked("08pxx0000004KhxxAE"))
        .expect(50)
        .mount(&server)
        .await;
    let app = Arc::new(proxy_for(&server));

    let tasks: Vec<_> = (0..50)
        .map(|n| {
            let app = app.clone();
            tokio::spawn(async move { app.post_json(&numbered_appointment(n)).await.status() })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 201);
    }
    server.verify().await;
}

#[tokio::test]
async fn both_documented_response_shapes_are_read() {
    let shapes = [
        json!({"id": "08pxx0000004KhxxAE", "isSuccess": true, "status": "scheduled", "error": {}}),
        json!([{"id": "08pxx0000004KhxxAE", "isSuccess": true, "status": "Scheduled", "error": []}]),
        json!([{"id": "08pxx0000004KhxxAE", "isSuccess": true, "status": "SCHEDULED", "errorMessages": []}]),
    ];
    for shape in shapes {
        let server = org().await;
        mount_token(&server, "token-1", 1).await;
        Mock::given(method("POST"))
            .and(path(BOOK_PATH))
            .respond_with(ResponseTemplate::new(200).set_body_json(shape.clone()))
            .expect(1)
            .mount(&server)
            .await;
        let app = proxy_for(&server);

        let response = app.post_json(&example_appointment()).await;

        assert_eq!(response.status(), 201, "{shape}");
        let body = json_body(response).await;
        assert_eq!(body["id"], "08pxx0000004KhxxAE", "{shape}");
        assert_eq!(body["status"], "booked", "{shape}");
    }
}

#[tokio::test]
async fn is_success_false_is_a_422_with_salesforce_messages_even_on_2xx() {
    let server = org().await;
    mount_token(&server, "token-1", 1).await;
    mount_book(
        &server,
        ResponseTemplate::new(200).set_body_json(json!([{
            "id": null, "isSuccess": false, "status": "Rejected",
            "errorMessages": ["The selected time slot is no longer available."]
        }])),
        1,
    )
    .await;
    let app = proxy_for(&server);

    let response = app.post_json(&example_appointment()).await;

    assert_eq!(response.status(), 422);
    let body = json_body(response).await;
    assert_outcome(&body, "business-rule", None);
    assert!(
        body.to_string()
            .contains("The selected time slot is no longer available.")
    );
}

#[tokio::test]
async fn salesforce_400_is_a_422_with_its_messages() {
    let server = org().await;
    mount_token(&server, "token-1", 1).await;
    mount_book(
        &server,
        salesforce_error(400, "INVALID_INPUT", "Work type is inactive."),
        1,
    )
    .await;
    let app = proxy_for(&server);

    let response = app.post_json(&example_appointment()).await;

    assert_eq!(response.status(), 422);
    let body = json_body(response).await;
    assert!(
        body.to_string()
            .contains("INVALID_INPUT: Work type is inactive."),
        "{body}"
    );
}

#[tokio::test]
async fn server_errors_are_502_and_never_retried() {
    let server = org().await;
    mount_token(&server, "token-1", 1).await;
    mount_book(
        &server,
        salesforce_error(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred."),
        1,
    )
    .await;
    let app = proxy_for(&server);

    let response = app.post_json(&example_appointment()).await;

    assert_eq!(response.status(), 502);
    let body = json_body(response).await;
    assert_outcome(&body, "exception", None);
    assert!(body.to_string().contains("500"), "{body}");
}

#[tokio::test]
async fn a_slow_salesforce_is_a_504_and_not_retried() {
    let server = org().await;
    mount_token(&server, "token-1", 1).await;
    mount_book(
        &server,
        booked("08pxx0000004KhxxAE").set_delay(Duration::from_secs(10)),
        1,
    )
    .await;
    let app = proxy_for(&server); // request timeout: 5 s

    let response = app.post_json(&example_appointment()).await;

    assert_eq!(response.status(), 504);
    let body = json_body(response).await;
    assert_outcome(&body, "timeout", None);
    assert!(
        body.to_string().contains("may or may not have been booked"),
        "{body}"
    );
}

#[tokio::test]
async fn throttling_is_a_503_with_retry_after() {
    let server = org().await;
    mount_token(&server, "token-1", 1).await;
    mount_book(
        &server,
        salesforce_error(
            403,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        ),
        1,
    )
    .await;
    let app = proxy_for(&server);

    let response = app.post_json(&example_appointment()).await;

    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "42");
    assert_outcome(&json_body(response).await, "throttled", None);
}

#[tokio::test]
async fn a_refused_token_is_a_502_naming_the_setting_and_is_tried_again_next_time() {
    let server = org().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_client", "error_description": "invalid client credentials"
        })))
        .expect(2)
        .mount(&server)
        .await;
    // No back-off after the failure, so the next request asks again (salesforce_auth tests the
    // back-off).
    let mut settings = salesforce_settings(&format!("{}{TOKEN_PATH}", server.uri()));
    settings.token_failure_backoff = Duration::ZERO;
    let app = spawn_proxy(settings, example_mapping());

    for _ in 0..2 {
        let response = app.post_json(&example_appointment()).await;
        assert_eq!(response.status(), 502);
        let body = json_body(response).await;
        let text = body.to_string();
        assert!(text.contains("invalid_client"), "{text}");
        assert!(text.contains("salesforce.client_id"), "{text}");
        assert!(!text.contains("sandbox-secret"), "{text}");
    }
    assert!(book_calls(&server).await.is_empty());
}

#[tokio::test]
async fn the_client_secret_goes_only_to_the_token_endpoint() {
    let server = org().await;
    mount_token(&server, "token-1", 1).await;
    mount_book(&server, booked("08pxx0000004KhxxAE"), 1).await;
    let app = proxy_for(&server);
    assert_eq!(app.post_json(&example_appointment()).await.status(), 201);

    let requests = server.received_requests().await.unwrap();
    let token_request = requests
        .iter()
        .find(|r| r.url.path() == TOKEN_PATH)
        .unwrap();
    let form = String::from_utf8(token_request.body.clone()).unwrap();
    assert!(form.contains("grant_type=client_credentials"), "{form}");
    assert!(form.contains("client_secret=sandbox-secret"), "{form}");
    let book = &book_calls(&server).await[0];
    let sent: Value = serde_json::from_slice(&book.body).unwrap();
    assert_eq!(sent["workTypeId"], "08qxx000000Axq6xxC");
    assert!(!String::from_utf8_lossy(&book.body).contains("sandbox-secret"));
}

#[tokio::test]
async fn an_unreachable_token_endpoint_is_a_502() {
    // A port that was just free: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = spawn_proxy(
        salesforce_settings(&format!("http://127.0.0.1:{port}{TOKEN_PATH}")),
        example_mapping(),
    );
    let response = app.post_json(&example_appointment()).await;
    assert_eq!(response.status(), 502);
    let body = json_body(response).await;
    assert!(body.to_string().contains("salesforce.token_url"), "{body}");
}

#[tokio::test]
async fn a_dropped_connection_is_a_502_and_the_booking_is_not_repeated() {
    // An "instance" that reads the request and closes the connection without answering.
    let instance = TcpListener::bind("127.0.0.1:0").unwrap();
    let instance_url = format!("http://{}", instance.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for stream in instance.incoming() {
            let Ok(mut stream) = stream else { break };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            drop(stream);
        }
    });
    let server = org().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "token-1", "instance_url": instance_url, "token_type": "Bearer"
        })))
        .mount(&server)
        .await;
    let app = proxy_for(&server);

    let response = app.post_json(&example_appointment()).await;

    assert_eq!(response.status(), 502);
    let body = json_body(response).await;
    assert_outcome(&body, "transient", None);
    assert!(
        body.to_string().contains("may or may not have been booked"),
        "{body}"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "the booking was sent again"
    );
}
