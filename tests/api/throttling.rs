//! Throttling and faults against the sandbox, over HTTP: the back-off after Salesforce throttles,
//! the bound on calls in flight, the API usage in `GET /status`, and the faults that must never be
//! retried (`UNABLE_TO_LOCK_ROW`, a dropped connection). Waits are on signals (the sandbox's held
//! calls) or deadline loops, never on a sleep standing in for one.

use std::time::{Duration, Instant};

use fhir_salesforce_proxy::sandbox::{Fault, Sandbox};
use serde_json::Value;

use crate::helpers::*;

/// Longest any wait for a signal may take before the test fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(20);

/// Book Appointment calls the sandbox received (faulted ones included).
fn booking_calls(sandbox: &Sandbox) -> usize {
    sandbox
        .api_calls()
        .iter()
        .filter(|c| c.is_booking())
        .count()
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn status(app: &TestApp) -> Value {
    let response = app
        .client
        .get(format!("{}/status", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    json_body(response).await
}

fn diagnostics(body: &Value) -> String {
    body["issue"][0]["diagnostics"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_throttled_org_answers_503_and_is_not_called_again_during_the_back_off() {
    let (app, sandbox) = spawn_with_sandbox_using(example_mapping(), |s| {
        s.throttle_retry_after = Duration::from_secs(30);
    });
    sandbox.set_fault(Fault::Throttle);

    let first = app.post_json(&numbered_appointment(1)).await;

    assert_eq!(first.status(), 503);
    assert_eq!(retry_after(&first), 30);
    let body = json_body(first).await;
    assert_outcome(&body, "throttled", None);
    assert!(
        diagnostics(&body).contains("REQUEST_LIMIT_EXCEEDED"),
        "{body}"
    );
    assert_eq!(sandbox.api_calls().len(), 1);

    // Within the back-off: answered at once, with what remains of it, Salesforce not called.
    let second = app.post_json(&numbered_appointment(2)).await;

    assert_eq!(second.status(), 503);
    let wait = retry_after(&second);
    assert!((1..=30).contains(&wait), "Retry-After {wait}");
    let body = json_body(second).await;
    assert_outcome(&body, "throttled", None);
    assert!(
        diagnostics(&body).contains("did not send this one"),
        "{body}"
    );
    assert_eq!(sandbox.api_calls().len(), 1, "{:?}", sandbox.api_calls());
    assert!(sandbox.bookings().is_empty());

    let status = status(&app).await;
    let org = &status["orgs"][0];
    assert_eq!(org["fhir_base"], "/fhir");
    assert_eq!(org["backing_off"], true, "{status}");
    assert!(org["backing_off_until"].is_string(), "{status}");
    assert_eq!(org["consecutive_throttles"], 1);
}

#[tokio::test]
async fn the_back_off_ends_and_booking_works_again() {
    let (app, sandbox) = spawn_with_sandbox_using(example_mapping(), |s| {
        s.throttle_retry_after = Duration::from_millis(300);
    });
    sandbox.set_fault_for(Fault::Throttle, 1);

    let throttled = app.post_json(&numbered_appointment(1)).await;
    assert_eq!(throttled.status(), 503);
    assert_eq!(retry_after(&throttled), 1, "rounded up to a whole second");

    // Deadline loop: every attempt inside the back-off is answered by the proxy itself.
    let started = Instant::now();
    let booked = loop {
        let response = app.post_json(&numbered_appointment(1)).await;
        if response.status() != 503 {
            break response;
        }
        let body = json_body(response).await;
        assert!(
            diagnostics(&body).contains("did not send this one"),
            "{body}"
        );
        assert!(started.elapsed() < DEADLINE, "the back-off never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    assert_eq!(booked.status(), 201);
    assert_eq!(sandbox.bookings().len(), 1);
    // The throttled call and the one that booked: nothing in between reached Salesforce.
    assert_eq!(booking_calls(&sandbox), 2, "{:?}", sandbox.api_calls());
    let status = status(&app).await;
    assert_eq!(status["orgs"][0]["backing_off"], false, "{status}");
    assert_eq!(status["orgs"][0]["consecutive_throttles"], 0, "{status}");
}

#[tokio::test]
async fn salesforce_s_own_retry_after_on_a_503_sets_the_back_off() {
    let (app, sandbox) = spawn_with_sandbox_using(example_mapping(), |s| {
        s.throttle_retry_after = Duration::from_secs(1);
    });
    sandbox.set_fault(Fault::Unavailable {
        retry_after_secs: Some(7),
    });

    let first = app.post_json(&numbered_appointment(1)).await;

    assert_eq!(first.status(), 503);
    assert_eq!(retry_after(&first), 7);
    assert_outcome(&json_body(first).await, "throttled", None);
    let second = app.post_json(&numbered_appointment(2)).await;
    assert_eq!(second.status(), 503);
    assert!((1..=7).contains(&retry_after(&second)));
    assert_eq!(sandbox.api_calls().len(), 1);
}

#[tokio::test]
async fn past_the_bound_on_calls_in_flight_a_request_waits_then_gets_503() {
    let (app, sandbox) = spawn_with_sandbox_using(example_mapping(), |s| {
        s.max_concurrent_requests = 2;
        s.queue_timeout = Duration::from_millis(300);
        // The held calls must outlive the queue timeout by far.
        s.request_timeout = Duration::from_secs(60);
    });
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
        .expect("two calls reach the sandbox");
    let org = status(&app).await["orgs"][0].clone();
    assert_eq!(org["in_flight"], 2, "{org}");
    assert_eq!(org["max_concurrent_requests"], 2, "{org}");

    let started = Instant::now();
    let third = app.post_json(&numbered_appointment(3)).await;

    assert_eq!(third.status(), 503);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "answered before the queue timeout"
    );
    assert_eq!(retry_after(&third), 1);
    let body = json_body(third).await;
    assert_outcome(&body, "throttled", None);
    assert!(
        diagnostics(&body).contains("2 requests to this org's Salesforce are in flight"),
        "{body}"
    );
    assert_eq!(sandbox.api_calls().len(), 2, "the third was sent");

    sandbox.clear_fault();
    for task in held {
        assert_eq!(task.await.unwrap().status(), 201);
    }
    let fourth = app.post_json(&numbered_appointment(4)).await;
    assert_eq!(fourth.status(), 201);
    assert_eq!(sandbox.bookings().len(), 3);
    assert_eq!(status(&app).await["orgs"][0]["in_flight"], 0);
}

#[tokio::test]
async fn a_queued_request_goes_through_when_a_place_comes_free() {
    let (app, sandbox) = spawn_with_sandbox_using(example_mapping(), |s| {
        s.max_concurrent_requests = 1;
        s.queue_timeout = Duration::from_secs(30);
        s.request_timeout = Duration::from_secs(60);
    });
    let first = start_held(&sandbox, app.post_in_background(&numbered_appointment(1))).await;
    let second = app.post_in_background(&numbered_appointment(2));
    // Deadline loop on the proxy's own count: the second request is waiting for the place.
    let started = Instant::now();
    while status(&app).await["orgs"][0]["queued"] != 1 {
        assert!(
            started.elapsed() < DEADLINE,
            "the second request never queued"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sandbox.api_calls().len(), 1);

    sandbox.release_held();

    assert_eq!(first.await.unwrap().unwrap().status(), 201);
    assert_eq!(second.await.unwrap().status(), 201);
    assert_eq!(sandbox.bookings().len(), 2);
}

#[tokio::test]
async fn status_shows_the_api_usage_salesforce_reported_and_no_secrets() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());

    let before = status(&app).await;
    assert_eq!(before["orgs"][0]["api_usage"], Value::Null, "{before}");
    assert_eq!(app.post_json(&numbered_appointment(1)).await.status(), 201);
    let after_one = status(&app).await;
    sandbox.set_api_limit(5_000);
    assert_eq!(app.post_json(&numbered_appointment(2)).await.status(), 201);
    let after_two = status(&app).await;

    let usage = &after_one["orgs"][0]["api_usage"];
    assert_eq!(usage["used"], 1, "{after_one}");
    assert_eq!(usage["limit"], 100_000, "{after_one}");
    assert!(usage["seen_at"].as_str().unwrap().ends_with('Z'), "{usage}");
    let usage = &after_two["orgs"][0]["api_usage"];
    assert_eq!(usage["used"], 2, "{after_two}");
    assert_eq!(usage["limit"], 5_000, "{after_two}");
    assert_eq!(after_two["orgs"][0]["backing_off"], false);
    let text = after_two.to_string();
    for secret_or_phi in [
        "sandbox-secret",
        "sandbox-client",
        &sandbox.base_url(),
        "A-2",
        "Bearer",
    ] {
        assert!(!text.contains(secret_or_phi), "{secret_or_phi} in {text}");
    }
}

#[tokio::test]
async fn an_org_past_its_daily_allocation_is_throttled() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    sandbox.set_api_limit(1);

    assert_eq!(app.post_json(&numbered_appointment(1)).await.status(), 201);
    let over = app.post_json(&numbered_appointment(2)).await;

    assert_eq!(over.status(), 503);
    assert_eq!(retry_after(&over), 42, "the configured back-off");
    assert_outcome(&json_body(over).await, "throttled", None);
    assert_eq!(sandbox.bookings().len(), 1);
}

#[tokio::test]
async fn unable_to_lock_row_is_reported_as_safe_to_resend_and_never_retried() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    sandbox.set_fault(Fault::row_locked());

    let response = app.post_json(&numbered_appointment(1)).await;

    assert_eq!(response.status(), 503);
    assert_eq!(retry_after(&response), 2);
    let body = json_body(response).await;
    assert_outcome(&body, "transient", None);
    let text = diagnostics(&body);
    assert!(text.contains("UNABLE_TO_LOCK_ROW"), "{body}");
    assert!(text.contains("nothing was booked"), "{body}");
    assert!(
        text.contains("safe to send the same request again"),
        "{body}"
    );
    assert_eq!(booking_calls(&sandbox), 1, "the proxy retried");
    assert!(sandbox.bookings().is_empty());

    // Not a throttle: the org is not backed off, and resending as told books it.
    sandbox.clear_fault();
    let again = app.post_json(&numbered_appointment(1)).await;
    assert_eq!(again.status(), 201);
    assert_eq!(sandbox.bookings().len(), 1);
}

#[tokio::test]
async fn a_dropped_connection_on_a_booking_is_a_502_and_not_retried() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    sandbox.set_fault(Fault::DropConnection);

    let response = app.post_json(&numbered_appointment(1)).await;

    assert_eq!(response.status(), 502);
    assert!(response.headers().get("retry-after").is_none());
    let body = json_body(response).await;
    assert_outcome(&body, "transient", None);
    assert!(
        diagnostics(&body).contains("may or may not have been booked"),
        "{body}"
    );
    assert_eq!(booking_calls(&sandbox), 1, "the proxy retried a booking");
}

#[tokio::test]
async fn a_throttled_org_does_not_hold_back_another_org() {
    // Two proxies, one org each, until one proxy serves several (then: two tenants of one).
    let (throttled_app, throttled_org) = spawn_with_sandbox_using(example_mapping(), |s| {
        s.throttle_retry_after = Duration::from_secs(30);
    });
    let (other_app, other_org) = spawn_with_sandbox(example_mapping());
    throttled_org.set_fault(Fault::Throttle);

    let refused = throttled_app.post_json(&numbered_appointment(1)).await;
    let booked = other_app.post_json(&numbered_appointment(1)).await;

    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(booked.status(), 201);
    assert_eq!(other_org.bookings().len(), 1);
    assert_eq!(status(&other_app).await["orgs"][0]["backing_off"], false);
}
