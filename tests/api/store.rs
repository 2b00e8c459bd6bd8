//! The store under the proxy, over HTTP: a 201 is recorded before it is answered, two proxies on
//! one store book an identifier once, and a store lost while running answers 503 and books
//! nothing.

use fhir_salesforce_proxy::sandbox::Fault;
use fhir_salesforce_proxy::store::Store;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn a_201_is_answered_once_the_booking_is_recorded() {
    let (app, _sandbox) = spawn_with_sandbox(example_mapping());
    let answer = app.post_json(&numbered_appointment(1)).await;
    assert_eq!(answer.status(), 201);
    let booked = json_body(answer).await;
    let id = booked["id"].as_str().unwrap();

    let tenant = app.store.tenant(None);
    let stored = tenant.get(id).await.unwrap().expect("recorded");
    let stored: Value = serde_json::from_str(&stored.resource).unwrap();
    assert_eq!(stored, booked, "the store holds what was answered");
    let found = tenant
        .find_by_identifiers(&["http://hospital.example.org/fhir/appointment-id|A-1".to_owned()])
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, id);
}

#[tokio::test]
async fn two_proxies_on_one_store_book_an_identifier_once() {
    // Two replicas of the proxy behind a load balancer, sharing one store.
    let (store, _dir) = test_store();
    let sandbox = start_sandbox();
    let start = || {
        spawn_proxy_full(
            salesforce_settings(&sandbox.token_url()),
            example_mapping(),
            |_| {},
            store.clone(),
        )
    };
    let (one, two) = (start(), start());

    // The first replica's booking is held in Salesforce; the engine's retry reaches the second.
    let first = start_held(&sandbox, one.post_in_background(&example_appointment())).await;
    let retry = two.post_json(&example_appointment()).await;
    assert_eq!(retry.status(), 409);
    assert_eq!(retry.headers()["retry-after"], "1");
    let outcome = json_body(retry).await;
    assert_outcome(&outcome, "conflict", None);
    let text = outcome["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(text.contains("being booked right now"), "{text}");
    assert!(
        text.contains("its claim on the identifier expires within"),
        "the claim's expiry is named: {text}"
    );

    sandbox.release_held();
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status(), 201);
    let booked = json_body(first).await;

    // Now the retry finds the booking the other replica recorded.
    let retry = two.post_json(&example_appointment()).await;
    assert_eq!(retry.status(), 200);
    assert_eq!(json_body(retry).await["id"], booked["id"]);
    assert_eq!(sandbox.bookings().len(), 1);
}

#[tokio::test]
async fn a_failed_booking_frees_its_identifier_at_once() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    sandbox.set_fault_for(Fault::row_locked(), 1);
    let refused = app.post_json(&example_appointment()).await;
    assert_eq!(refused.status(), 503);
    // Not 409: the claim went with the failure.
    let booked = app.post_json(&example_appointment()).await;
    assert_eq!(booked.status(), 201);
    assert_eq!(sandbox.bookings().len(), 1);
}

#[tokio::test]
async fn readyz_and_metrics_show_the_store() {
    let (app, _sandbox) = spawn_with_sandbox(example_mapping());
    assert_eq!(app.post_json(&numbered_appointment(1)).await.status(), 201);
    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let ready = json_body(ready).await;
    assert_eq!(ready["store"]["engine"], "sqlite");
    assert_eq!(ready["store"]["ready"], true);
    assert!(
        ready["store"]["location"]
            .as_str()
            .unwrap()
            .ends_with("appointments.db"),
        "{ready}"
    );
    let metrics = app.metrics().await;
    // A new booking is one claim (which also looks for an earlier booking) and one record.
    for operation in ["claim", "record"] {
        let line =
            format!("fsp_store_operation_duration_seconds_count{{operation=\"{operation}\"}} 1");
        assert!(
            metrics.lines().any(|l| l == line),
            "no `{line}` in\n{metrics}"
        );
    }
    assert!(
        !metrics.lines().any(|l| l
            .starts_with("fsp_store_operation_duration_seconds_count{operation=\"find\"}")
            && !l.ends_with(" 0")),
        "a booking made a read besides its claim:\n{metrics}"
    );
}

#[tokio::test]
async fn a_store_lost_while_running_answers_503_books_nothing_and_comes_back() {
    let Some(pg) = test_postgres().await else {
        return;
    };
    let mut link = Forwarder::start(pg.address).await;
    let store = Store::open(&pg.settings_via(link.port)).await.unwrap();
    let sandbox = start_sandbox();
    let app = spawn_proxy_full(
        salesforce_settings(&sandbox.token_url()),
        example_mapping(),
        |_| {},
        store,
    );
    assert_eq!(app.post_json(&numbered_appointment(1)).await.status(), 201);

    link.cut().await;
    let answer = app.post_json(&numbered_appointment(2)).await;
    assert_eq!(answer.status(), 503);
    assert_eq!(answer.headers()["retry-after"], "5");
    let outcome = json_body(answer).await;
    assert_outcome(&outcome, "transient", None);
    let text = outcome["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(text.contains("store is unavailable"), "{text}");
    assert!(text.contains("nothing was sent to Salesforce"), "{text}");
    assert_eq!(
        sandbox.bookings().len(),
        1,
        "nothing booked that could not be recorded"
    );

    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let ready = json_body(ready).await;
    assert_eq!(ready["store"]["ready"], false, "{ready}");
    assert_eq!(ready["store"]["engine"], "postgresql");
    if let Some(password) = &pg.password {
        assert!(!ready.to_string().contains(password.as_str()), "{ready}");
    }
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("fsp_store_errors_total{operation=\"claim\"}")),
        "{metrics}"
    );

    // The database is back: the pool connects again and the same request books.
    link.restore();
    let answer = app.post_json(&numbered_appointment(2)).await;
    assert_eq!(answer.status(), 201);
    assert_eq!(sandbox.bookings().len(), 2);
}
