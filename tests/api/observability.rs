//! Request ids, `/healthz`, `/readyz` and `/metrics`, over HTTP against the sandbox.

use std::time::Duration;

use fhir_salesforce_proxy::config::SalesforceSettings;
use fhir_salesforce_proxy::sandbox;

use crate::helpers::*;

/// The value of the one series line `series` (name with labels) in a metrics text.
fn series_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

async fn readyz(app: &TestApp) -> (u16, serde_json::Value) {
    let response = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), json_body(response).await)
}

#[tokio::test]
async fn every_answer_has_its_own_request_id_and_a_well_formed_one_is_kept() {
    // Arrange
    let (app, _sandbox) = spawn_with_sandbox(example_mapping());
    let get = |id: Option<&str>| {
        let mut request = app.client.get(format!("{}/fhir/metadata", app.address));
        if let Some(id) = id {
            request = request.header("X-Request-Id", id);
        }
        request.send()
    };

    // Act
    let first = get(None).await.unwrap();
    let second = get(None).await.unwrap();
    let kept = get(Some("engine-7f3a:42")).await.unwrap();
    let replaced = get(Some("Jane Doe <script>")).await.unwrap();
    let not_found = app
        .client
        .get(format!("{}/nothing-here", app.address))
        .send()
        .await
        .unwrap();

    // Assert
    let id = |r: &reqwest::Response| r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id(&first).len(), 36, "a generated UUID: {}", id(&first));
    assert_ne!(id(&first), id(&second));
    assert_eq!(id(&kept), "engine-7f3a:42");
    assert_eq!(id(&replaced).len(), 36);
    assert!(!id(&replaced).contains("Jane"));
    assert_eq!(not_found.status(), 404);
    assert_eq!(id(&not_found).len(), 36);
}

#[tokio::test]
async fn healthz_says_alive() {
    let (app, _sandbox) = spawn_with_sandbox(example_mapping());

    let response = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(json_body(response).await["status"], "alive");
}

#[tokio::test]
async fn readyz_is_ready_when_a_token_can_be_had_and_reuses_the_answer() {
    // Arrange
    let (app, sandbox) = spawn_with_sandbox(example_mapping());

    // Act
    let (status, body) = readyz(&app).await;
    let (again, _) = readyz(&app).await;

    // Assert
    assert_eq!(status, 200, "{body}");
    assert_eq!(again, 200);
    assert_eq!(body["status"], "ready");
    assert_eq!(body["config"], "loaded");
    assert_eq!(body["auth"], "disabled");
    assert_eq!(body["tenants"][0]["tenant"], "default");
    assert_eq!(body["tenants"][0]["fhir_base"], "/fhir");
    assert_eq!(body["tenants"][0]["ready"], true);
    assert_eq!(sandbox.token_requests(), 1);
    let text = body.to_string();
    assert!(!text.contains(sandbox::DEFAULT_CLIENT_SECRET), "{text}");
    assert!(!text.contains("token_url"), "{text}");
}

#[tokio::test]
async fn readyz_is_503_naming_the_tenant_whose_token_is_refused_and_probes_cost_no_calls() {
    // Arrange: `north` has a wrong secret and no token back-off, so only the readiness cache
    // can keep repeated probes from asking the token endpoint again.
    let sandbox = start_sandbox();
    let good = salesforce_settings(&sandbox.token_url());
    let mut bad = SalesforceSettings::with_defaults(
        sandbox.token_url().parse().unwrap(),
        sandbox::DEFAULT_CLIENT_ID,
        "wrong-secret-xyz".to_owned().into(),
    );
    bad.token_failure_backoff = Duration::ZERO;
    let app = spawn_tenants(vec![
        (None, good, example_mapping()),
        (Some("north"), bad, example_mapping()),
    ]);

    // Act
    let (status, body) = readyz(&app).await;
    let requests_after_first = sandbox.token_requests();
    for _ in 0..5 {
        assert_eq!(readyz(&app).await.0, 503);
    }

    // Assert
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not ready");
    assert_eq!(body["failing"], serde_json::json!(["north"]));
    let north = &body["tenants"][1];
    assert_eq!(north["tenant"], "north");
    assert_eq!(north["ready"], false);
    assert!(
        north["reason"].as_str().unwrap().contains("invalid_client"),
        "{body}"
    );
    assert_eq!(body["tenants"][0]["ready"], true);
    assert!(!body.to_string().contains("wrong-secret-xyz"));
    assert_eq!(requests_after_first, 2, "one token request per tenant");
    assert_eq!(
        sandbox.token_requests(),
        2,
        "later probes used the cached answers"
    );
}

#[tokio::test]
async fn metrics_count_bookings_errors_salesforce_calls_tokens_and_api_usage() {
    // Arrange
    let (app, _sandbox) = spawn_with_sandbox(example_mapping());

    // Act
    let booked = app.post_json(&numbered_appointment(9101)).await;
    let bad = app
        .post_appointment("{not json", "application/fhir+json")
        .await;
    let text = app.metrics().await;

    // Assert
    assert_eq!(booked.status(), 201);
    assert_eq!(bad.status(), 400);
    let value = |series: &str| {
        series_value(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert_eq!(
        value(r#"fsp_http_requests_total{interaction="create",status="201"}"#),
        1.0
    );
    assert_eq!(
        value(r#"fsp_http_requests_total{interaction="create",status="400"}"#),
        1.0
    );
    assert_eq!(
        value(r#"fsp_http_request_duration_seconds_count{interaction="create"}"#),
        2.0
    );
    assert_eq!(
        value(r#"fsp_salesforce_call_duration_seconds_count{tenant="default",call="book"}"#),
        1.0
    );
    assert_eq!(
        value(r#"fsp_salesforce_call_duration_seconds_count{tenant="default",call="token"}"#),
        1.0
    );
    assert_eq!(
        value(r#"fsp_salesforce_token_fetches_total{tenant="default"}"#),
        1.0
    );
    assert_eq!(
        series_value(
            &text,
            r#"fsp_salesforce_token_fetch_failures_total{tenant="default"}"#
        ),
        None
    );
    assert_eq!(
        value(r#"fsp_salesforce_api_usage_max{tenant="default"}"#),
        100_000.0
    );
    assert!(value(r#"fsp_salesforce_api_usage_used{tenant="default"}"#) >= 1.0);
    // The scrape itself is the one request in flight.
    assert_eq!(value("fsp_http_requests_in_flight"), 1.0);
}

#[tokio::test]
async fn metrics_count_token_failures_per_tenant() {
    // Arrange
    let sandbox = start_sandbox();
    let mut bad = SalesforceSettings::with_defaults(
        sandbox.token_url().parse().unwrap(),
        sandbox::DEFAULT_CLIENT_ID,
        "wrong-secret".to_owned().into(),
    );
    bad.token_failure_backoff = Duration::ZERO;
    let app = spawn_tenants(vec![(Some("north"), bad, example_mapping())]);

    // Act
    let response = app
        .client
        .post(format!("{}/fhir/north/Appointment", app.address))
        .header("Content-Type", "application/fhir+json")
        .body(numbered_appointment(9102).to_string())
        .send()
        .await
        .unwrap();
    let text = app.metrics().await;

    // Assert
    assert!(response.status().is_server_error(), "{}", response.status());
    assert_eq!(
        series_value(
            &text,
            r#"fsp_salesforce_token_fetch_failures_total{tenant="north"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        series_value(
            &text,
            &format!(
                r#"fsp_http_requests_total{{interaction="create",status="{}"}}"#,
                response.status().as_u16()
            )
        ),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_count_lookup_cache_misses_then_hits() {
    // Arrange: patients found by MRN through one `[[ids.lookup]]` rule.
    let sandbox = sandbox::Sandbox::start(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        sandbox::SandboxSettings {
            external_ids: vec![sandbox::ExternalIdRecords::new(
                "Account",
                "EHR_Patient_Id__c",
                "MRN-METRICS",
                &["001xx000012udqQxxQ"],
            )],
            ..sandbox::SandboxSettings::default()
        },
    )
    .unwrap();
    let mapping = format!(
        "{}\n[[ids.lookup]]\nidentifier_system = \"http://hospital.example.org/mrn\"\n\
         object = \"Account\"\nexternal_id_field = \"EHR_Patient_Id__c\"\n",
        fhir_salesforce_proxy::mapping::EXAMPLE_MAPPING
    );
    let app = spawn_proxy(
        salesforce_settings(&sandbox.token_url()),
        fhir_salesforce_proxy::mapping::Mapping::from_toml(&mapping, "lookup.toml").unwrap(),
    );
    let by_mrn = |n: usize| {
        let mut a = numbered_appointment(n);
        a["participant"][0]["actor"] = serde_json::json!({
            "type": "Patient",
            "identifier": {"system": "http://hospital.example.org/mrn", "value": "MRN-METRICS"}
        });
        a
    };

    // Act
    let first = app.post_json(&by_mrn(9201)).await;
    let second = app.post_json(&by_mrn(9202)).await;
    let text = app.metrics().await;

    // Assert
    assert_eq!(first.status(), 201);
    assert_eq!(second.status(), 201);
    assert_eq!(sandbox.lookup_requests(), 1);
    assert_eq!(
        series_value(&text, r#"fsp_lookup_cache_misses_total{tenant="default"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        series_value(&text, r#"fsp_lookup_cache_hits_total{tenant="default"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        series_value(
            &text,
            r#"fsp_salesforce_call_duration_seconds_count{tenant="default",call="lookup"}"#
        ),
        Some(1.0),
        "{text}"
    );
}
