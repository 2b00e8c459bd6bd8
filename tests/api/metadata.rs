//! `GET /fhir/metadata`: the CapabilityStatement in JSON and XML, its ETag, and the FHIR errors
//! around it.

use fhir_salesforce_proxy::sandbox::Sandbox;
use fhirbolt::model::r4::resources::CapabilityStatement;
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};

use crate::helpers::*;

fn strict() -> Option<DeserializationConfig> {
    Some(DeserializationConfig {
        mode: DeserializationMode::Strict,
    })
}

async fn get(app: &TestApp, path_and_query: &str, accept: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .get(format!("{}/fhir/{path_and_query}", app.address));
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    request.send().await.expect("the proxy answers")
}

fn codes(values: &[fhirbolt::model::r4::types::Code]) -> Vec<String> {
    values.iter().filter_map(|c| c.value.clone()).collect()
}

fn assert_nothing_sent(sandbox: &Sandbox) {
    assert_eq!(
        sandbox.token_requests(),
        0,
        "metadata must not call Salesforce"
    );
}

#[tokio::test]
async fn the_statement_comes_in_json_and_xml_and_tells_what_this_build_serves() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());

    let json = get(&app, "metadata", Some("application/fhir+json")).await;
    assert_eq!(json.status(), 200);
    assert_eq!(
        json.headers()["content-type"],
        "application/fhir+json; charset=utf-8"
    );
    let json_etag = json.headers()["etag"].to_str().unwrap().to_owned();
    let from_json: CapabilityStatement =
        fhirbolt::json::from_slice(&json.bytes().await.unwrap(), strict()).unwrap();

    let xml = get(&app, "metadata?_format=xml", None).await;
    assert_eq!(xml.status(), 200);
    assert_eq!(
        xml.headers()["content-type"],
        "application/fhir+xml; charset=utf-8"
    );
    let xml_etag = xml.headers()["etag"].to_str().unwrap().to_owned();
    let from_xml: CapabilityStatement =
        fhirbolt::xml::from_slice(&xml.bytes().await.unwrap(), strict()).unwrap();

    // One statement, two spellings: same content, same (weak) ETag.
    assert_eq!(from_json, from_xml);
    assert_eq!(json_etag, xml_etag);
    assert!(json_etag.starts_with("W/\""), "{json_etag}");

    let s = from_json;
    assert_eq!(s.kind.value.as_deref(), Some("instance"));
    assert_eq!(s.status.value.as_deref(), Some("active"));
    assert_eq!(s.fhir_version.value.as_deref(), Some("4.0.1"));
    assert_eq!(
        codes(&s.format),
        [
            "json",
            "xml",
            "application/fhir+json",
            "application/fhir+xml"
        ]
    );
    assert_eq!(codes(&s.patch_format), ["application/json-patch+json"]);
    let software = s.software.as_ref().unwrap();
    assert_eq!(
        software.name.value.as_deref(),
        Some("fhir-salesforce-proxy")
    );
    assert_eq!(
        software.version.as_ref().and_then(|v| v.value.as_deref()),
        Some(env!("CARGO_PKG_VERSION"))
    );
    let implementation_url = s
        .implementation
        .as_ref()
        .and_then(|i| i.url.as_ref())
        .and_then(|u| u.value.clone());
    assert_eq!(implementation_url, Some(format!("{}/fhir", app.address)));

    let rest = &s.rest[0];
    assert_eq!(rest.mode.value.as_deref(), Some("server"));
    let system: Vec<_> = rest
        .interaction
        .iter()
        .filter_map(|i| i.code.value.clone())
        .collect();
    assert_eq!(system, ["transaction", "batch"]);
    let appointment = rest
        .resource
        .iter()
        .find(|r| r.r#type.value.as_deref() == Some("Appointment"))
        .expect("Appointment is described");
    let interactions: Vec<_> = appointment
        .interaction
        .iter()
        .filter_map(|i| i.code.value.clone())
        .collect();
    assert_eq!(
        interactions,
        ["create", "read", "update", "patch", "search-type"]
    );
    assert_eq!(
        appointment
            .conditional_create
            .as_ref()
            .and_then(|b| b.value),
        Some(true)
    );
    assert_eq!(
        appointment.operation[0].definition.value.as_deref(),
        Some("http://hl7.org/fhir/OperationDefinition/Resource-validate")
    );
    assert_eq!(
        appointment.operation[1].definition.value.as_deref(),
        Some("http://fhir.org/guides/argonaut-scheduling/OperationDefinition/appointment-find")
    );
    let slot = rest
        .resource
        .iter()
        .find(|r| r.r#type.value.as_deref() == Some("Slot"))
        .expect("Slot is described");
    let params: Vec<_> = slot
        .search_param
        .iter()
        .filter_map(|p| p.name.value.clone())
        .collect();
    assert_eq!(
        params,
        [
            "start",
            "schedule",
            "service-type",
            "service-category",
            "appointment-type",
            "status",
            "_count"
        ]
    );
    assert_nothing_sent(&sandbox);
}

#[tokio::test]
async fn the_etag_is_stable_and_if_none_match_gets_304() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let first = get(&app, "metadata", None).await;
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let second = get(&app, "metadata?_pretty=true", None).await;
    assert_eq!(second.headers()["etag"], etag.as_str(), "same content");

    let revalidated = app
        .client
        .get(format!("{}/fhir/metadata", app.address))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);
    assert_eq!(revalidated.headers()["etag"], etag.as_str());
    assert_eq!(revalidated.text().await.unwrap(), "");

    let stale = app
        .client
        .get(format!("{}/fhir/metadata", app.address))
        .header("If-None-Match", "W/\"0000000000000000\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
    assert_eq!(
        json_body(stale).await["resourceType"],
        "CapabilityStatement"
    );
    assert_nothing_sent(&sandbox);
}

#[tokio::test]
async fn unacceptable_formats_methods_and_modes_get_operation_outcomes() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());

    let html = get(&app, "metadata", Some("text/html")).await;
    assert_eq!(html.status(), 406);
    assert_outcome(&json_body(html).await, "not-supported", None);

    let post = app
        .client
        .post(format!("{}/fhir/metadata", app.address))
        .header("Accept", "application/fhir+json")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    assert_outcome(&json_body(post).await, "not-supported", None);

    let terminology = get(&app, "metadata?mode=terminology", None).await;
    assert_eq!(terminology.status(), 400);
    let body = json_body(terminology).await;
    assert_outcome(&body, "not-supported", None);
    assert!(body.to_string().contains("mode=full"), "{body}");

    let full = get(&app, "metadata?mode=full", None).await;
    assert_eq!(full.status(), 200);
    assert_nothing_sent(&sandbox);
}
