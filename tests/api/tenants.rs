//! Several tenants in one proxy: each named tenant at `/fhir/{name}` with its own Salesforce org
//! (token cache), mapping and store; the unnamed one at `/fhir`; unknown tenants are 404s.

use fhir_salesforce_proxy::mapping::{EXAMPLE_MAPPING, Mapping};
use serde_json::{Value, json};

use crate::helpers::*;

/// The example mapping's follow-up work type, and the one the south org uses instead.
const NORTH_WORK_TYPE: &str = "08qxx000000Axq6xxC";
const SOUTH_WORK_TYPE: &str = "08qxx000000Axq6SSS";

fn south_mapping() -> Mapping {
    Mapping::from_toml(
        &EXAMPLE_MAPPING.replace(NORTH_WORK_TYPE, SOUTH_WORK_TYPE),
        "south.toml",
    )
    .unwrap()
}

async fn book(app: &TestApp, tenant: &str, n: usize) -> reqwest::Response {
    app.client
        .post(format!("{}/fhir/{tenant}/Appointment", app.address))
        .header("Content-Type", "application/fhir+json")
        .body(numbered_appointment(n).to_string())
        .send()
        .await
        .expect("the proxy answers")
}

#[tokio::test]
async fn two_tenants_book_concurrently_each_in_its_own_org_with_its_own_token() {
    let (north, south) = (start_sandbox(), start_sandbox());
    let app = spawn_tenants(vec![
        (
            Some("north"),
            salesforce_settings(&north.token_url()),
            example_mapping(),
        ),
        (
            Some("south"),
            salesforce_settings(&south.token_url()),
            south_mapping(),
        ),
    ]);

    let requests = (0..10).map(|n| {
        let tenant = if n % 2 == 0 { "north" } else { "south" };
        book(&app, tenant, n)
    });
    let responses = futures_util::future::join_all(requests).await;

    for (n, response) in responses.into_iter().enumerate() {
        let tenant = if n % 2 == 0 { "north" } else { "south" };
        assert_eq!(response.status(), 201, "request {n}");
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let body = json_body(response).await;
        let id = body["id"].as_str().unwrap();
        assert!(
            location.ends_with(&format!("/fhir/{tenant}/Appointment/{id}")),
            "{location}"
        );
    }
    for (sandbox, work_type) in [(&north, NORTH_WORK_TYPE), (&south, SOUTH_WORK_TYPE)] {
        let bookings = sandbox.bookings();
        assert_eq!(bookings.len(), 5);
        assert!(
            bookings
                .iter()
                .all(|b| b.request["workTypeId"] == json!(work_type)),
            "each org gets its own mapping's work type"
        );
        assert_eq!(
            sandbox.token_requests(),
            1,
            "each org has its own token cache"
        );
    }
}

#[tokio::test]
async fn each_tenant_keeps_its_own_store_and_metadata() {
    let (north, south) = (start_sandbox(), start_sandbox());
    let app = spawn_tenants(vec![
        (
            Some("north"),
            salesforce_settings(&north.token_url()),
            example_mapping(),
        ),
        (
            Some("south"),
            salesforce_settings(&south.token_url()),
            south_mapping(),
        ),
    ]);
    // The same business identifier in two orgs is two appointments.
    assert_eq!(book(&app, "north", 7).await.status(), 201);
    assert_eq!(book(&app, "south", 7).await.status(), 201);
    assert_eq!(
        book(&app, "north", 7).await.status(),
        200,
        "already booked there"
    );
    assert_eq!(north.bookings().len(), 1);
    assert_eq!(south.bookings().len(), 1);

    let statement: Value = json_body(
        app.client
            .get(format!("{}/fhir/south/metadata", app.address))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(statement["resourceType"], "CapabilityStatement");
    assert!(
        statement["implementation"]["url"]
            .as_str()
            .unwrap()
            .ends_with("/fhir/south"),
        "{}",
        statement["implementation"]
    );
}

#[tokio::test]
async fn unknown_tenants_and_the_base_without_a_tenant_are_404s() {
    let north = start_sandbox();
    let app = spawn_tenants(vec![(
        Some("north"),
        salesforce_settings(&north.token_url()),
        example_mapping(),
    )]);

    for (path, text) in [
        ("/fhir/west/Appointment", "no tenant of that name"),
        ("/fhir/Appointment", "{base}/{tenant}/Appointment"),
    ] {
        let response = app
            .client
            .post(format!("{}{path}", app.address))
            .header("Content-Type", "application/fhir+json")
            .body(numbered_appointment(1).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let body = json_body(response).await;
        assert_outcome(&body, "not-found", None);
        assert!(body.to_string().contains(text), "{path}: {body}");
    }
    // XML is honoured for the 404 too.
    let response = app
        .client
        .get(format!("{}/fhir/west/Slot?_format=xml", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(
        response.text().await.unwrap().contains("<OperationOutcome"),
        "an XML OperationOutcome"
    );
    assert!(north.bookings().is_empty());
    assert_eq!(north.token_requests(), 0);
}

#[tokio::test]
async fn the_unnamed_tenant_keeps_its_urls_beside_named_ones() {
    let (base, north) = (start_sandbox(), start_sandbox());
    let app = spawn_tenants(vec![
        (
            None,
            salesforce_settings(&base.token_url()),
            example_mapping(),
        ),
        (
            Some("north"),
            salesforce_settings(&north.token_url()),
            example_mapping(),
        ),
    ]);
    assert_eq!(app.post_json(&numbered_appointment(1)).await.status(), 201);
    assert_eq!(book(&app, "north", 2).await.status(), 201);
    assert_eq!(base.bookings().len(), 1);
    assert_eq!(north.bookings().len(), 1);
}

#[tokio::test]
async fn a_throttled_org_answers_503_while_another_keeps_booking_and_status_shows_both() {
    let (north, south) = (start_sandbox(), start_sandbox());
    let app = spawn_tenants(vec![
        (
            Some("north"),
            salesforce_settings(&north.token_url()),
            example_mapping(),
        ),
        (
            Some("south"),
            salesforce_settings(&south.token_url()),
            south_mapping(),
        ),
    ]);
    north.set_fault(fhir_salesforce_proxy::sandbox::Fault::Throttle);

    let throttled = book(&app, "north", 1).await;
    assert_eq!(throttled.status(), 503);
    let retry_after: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0);
    assert_outcome(&json_body(throttled).await, "throttled", None);
    let north_calls = north.api_calls().len();

    // South books on; north is held back without being asked again.
    for n in 2..6 {
        assert_eq!(book(&app, "south", n).await.status(), 201);
        let held_back = book(&app, "north", n).await;
        assert_eq!(held_back.status(), 503);
        assert!(held_back.headers().contains_key("retry-after"));
    }
    assert_eq!(south.bookings().len(), 4);
    assert_eq!(
        north.api_calls().len(),
        north_calls,
        "north was not called again"
    );
    assert!(north.bookings().is_empty());

    let status = json_body(
        app.client
            .get(format!("{}/status", app.address))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let orgs = status["orgs"].as_array().unwrap();
    let bases: Vec<&str> = orgs
        .iter()
        .map(|o| o["fhir_base"].as_str().unwrap())
        .collect();
    assert_eq!(bases, ["/fhir/north", "/fhir/south"]);
    assert_eq!(orgs[0]["backing_off"], true, "{status}");
    assert_eq!(orgs[1]["backing_off"], false, "{status}");
}
