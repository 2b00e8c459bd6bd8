//! What the route table answers for paths and methods around the ones served: unsupported
//! resource types, unknown operations, truthful `Allow` headers, `HEAD` wherever `GET` works,
//! and the metadata with a trailing slash.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::*;

async fn send(app: &TestApp, method: Method, path: &str) -> reqwest::Response {
    app.client
        .request(method, format!("{}{path}", app.address))
        .header("Content-Type", "application/fhir+json")
        .body(example_appointment().to_string())
        .send()
        .await
        .unwrap()
}

fn diagnostics(body: &Value) -> &str {
    body["issue"][0]["diagnostics"].as_str().unwrap_or_default()
}

fn spawn_two_tenants() -> (TestApp, fhir_salesforce_proxy::sandbox::Sandbox) {
    let sandbox = start_sandbox();
    let app = spawn_tenants(vec![
        (
            None,
            salesforce_settings(&sandbox.token_url()),
            example_mapping(),
        ),
        (
            Some("north"),
            salesforce_settings(&sandbox.token_url()),
            example_mapping(),
        ),
    ]);
    (app, sandbox)
}

#[tokio::test]
async fn an_unsupported_resource_type_is_a_404_not_supported_whatever_the_method() {
    let (app, sandbox) = spawn_two_tenants();
    for (method, path) in [
        (Method::GET, "/fhir/Patient"),
        (Method::POST, "/fhir/Patient"),
        (Method::GET, "/fhir/Patient/123"),
        (Method::PUT, "/fhir/Observation/1/_history/2"),
        (Method::GET, "/fhir/north/Patient"),
        (Method::POST, "/fhir/north/Encounter"),
    ] {
        let response = send(&app, method.clone(), path).await;
        assert_eq!(response.status(), 404, "{method} {path}");
        assert!(response.headers().get("allow").is_none(), "{method} {path}");
        let body = json_body(response).await;
        assert_outcome(&body, "not-supported", None);
        let text = diagnostics(&body);
        assert!(
            text.contains("resource type") && text.contains("Appointment"),
            "{text}"
        );
        assert!(
            !text.contains("tenant"),
            "{path}: a type is not a tenant: {text}"
        );
    }
    // A lower-case segment is a tenant name, and an unknown one says so.
    let response = send(&app, Method::POST, "/fhir/south/Appointment").await;
    assert_eq!(response.status(), 404);
    let body = json_body(response).await;
    assert_outcome(&body, "not-found", None);
    assert!(diagnostics(&body).contains("tenant"), "{body}");
    assert!(sandbox.bookings().is_empty());
}

#[tokio::test]
async fn an_unknown_operation_is_a_400_naming_those_served() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    for (method, path) in [
        (Method::POST, "/fhir/Appointment/$no-such-op"),
        (Method::GET, "/fhir/Appointment/$hold"),
        (Method::POST, "/fhir/Appointment/$book"),
    ] {
        let response = send(&app, method.clone(), path).await;
        assert_eq!(response.status(), 400, "{method} {path}");
        assert!(response.headers().get("allow").is_none(), "{method} {path}");
        let body = json_body(response).await;
        assert_outcome(&body, "not-supported", None);
        let text = diagnostics(&body);
        assert!(
            text.contains("$validate") && text.contains("$find"),
            "{text}"
        );
    }
    assert!(sandbox.bookings().is_empty());
}

#[tokio::test]
async fn every_allow_header_names_the_methods_served_there() {
    let (app, _sandbox) = spawn_with_sandbox(example_mapping());
    for (method, path, allow) in [
        (Method::DELETE, "/fhir/metadata", "GET, HEAD"),
        (Method::POST, "/fhir/metadata/", "GET, HEAD"),
        (Method::DELETE, "/fhir/Appointment", "GET, HEAD, POST, PUT"),
        (
            Method::DELETE,
            "/fhir/Appointment/08pxx0000004KhxxAE",
            "GET, HEAD, PUT, PATCH",
        ),
        (Method::GET, "/fhir/Appointment/_search", "POST"),
        (Method::GET, "/fhir/Appointment/$validate", "POST"),
        (Method::PUT, "/fhir/Appointment/$find", "GET, HEAD, POST"),
        (Method::POST, "/fhir/Slot", "GET, HEAD"),
        (Method::GET, "/fhir", "POST"),
        (Method::GET, "/fhir/", "POST"),
    ] {
        let response = send(&app, method.clone(), path).await;
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
        assert_outcome(&json_body(response).await, "not-supported", None);
    }
}

#[tokio::test]
async fn head_works_wherever_get_does_and_metadata_takes_a_trailing_slash() {
    let (app, _sandbox) = spawn_with_sandbox(example_mapping());
    let get = send(&app, Method::GET, "/fhir/metadata").await;
    assert_eq!(get.status(), 200);
    let etag = get.headers()["etag"].to_str().unwrap().to_owned();
    let statement = json_body(get).await;
    assert_eq!(statement["resourceType"], "CapabilityStatement");

    let head = send(&app, Method::HEAD, "/fhir/metadata").await;
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["etag"].to_str().unwrap(), etag);
    assert!(head.bytes().await.unwrap().is_empty(), "HEAD has no body");

    let slashed = send(&app, Method::GET, "/fhir/metadata/").await;
    assert_eq!(slashed.status(), 200);
    assert_eq!(json_body(slashed).await, statement);

    // A Slot search and $find answer HEAD as GET (here: the same 400 for a search without a
    // start), never 405.
    for path in ["/fhir/Slot", "/fhir/Appointment/$find"] {
        let get = send(&app, Method::GET, path).await.status();
        let head = send(&app, Method::HEAD, path).await.status();
        assert_eq!(head, get, "{path}");
        assert_ne!(head, 405, "{path}");
    }
}
