//! `GET /fhir/Slot`: free slots from the sandbox's Get Slots as a FHIR searchset, booked through
//! `POST /fhir/Appointment` and gone from the next search; both documented answer shapes; every
//! malformed search refused before Salesforce hears of it; Salesforce's failures as FHIR.

use std::net::TcpListener;

use fhir_salesforce_proxy::sandbox::{Sandbox, SandboxSettings, SlotsKey};
use fhirbolt::model::r4::resources::Bundle;
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

/// The example appointment's practitioner (NPI 1234567893 in the example mapping).
const PRACTITIONER: &str = "0bSxx0000005JoaxxE";
const FOLLOW_UP: &str = "http://terminology.hl7.org/CodeSystem/v2-0276|FOLLOWUP";
const SLOTS_PATH: &str = "/services/data/v65.0/connect/health/appointment-management/slots";

/// One practitioner's day, 2025-09-20 UTC, for the example mapping's follow-up work type.
fn one_day() -> Vec<(&'static str, String)> {
    vec![
        ("start", "ge2025-09-20".to_owned()),
        ("start", "lt2025-09-21".to_owned()),
        ("schedule.actor", format!("Practitioner/{PRACTITIONER}")),
        ("appointment-type", FOLLOW_UP.to_owned()),
        ("status", "free".to_owned()),
    ]
}

async fn search(app: &TestApp, query: &[(&str, String)]) -> reqwest::Response {
    app.client
        .get(format!("{}/fhir/Slot", app.address))
        .query(query)
        .send()
        .await
        .expect("the proxy answers")
}

/// The entries of a searchset answer in JSON. (The XML test below checks the Bundle with fhirbolt:
/// fhirbolt 0.4's JSON reader fails on any `Bundle.entry` element that follows `resource`, which is
/// where R4 and fhirbolt's own writer put `search`.)
async fn slots_of(response: reqwest::Response) -> Vec<Value> {
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/fhir+json; charset=utf-8"
    );
    let body = json_body(response).await;
    assert_eq!(body["resourceType"], "Bundle");
    assert_eq!(body["type"], "searchset");
    let entries = body["entry"].as_array().cloned().unwrap_or_default();
    assert_eq!(body["total"], json!(entries.len()), "{body}");
    entries
}

fn sandbox_with(settings: SandboxSettings) -> (TestApp, Sandbox) {
    let sandbox = Sandbox::start(TcpListener::bind("127.0.0.1:0").unwrap(), settings).unwrap();
    let app = spawn_proxy(salesforce_settings(&sandbox.token_url()), example_mapping());
    (app, sandbox)
}

#[tokio::test]
async fn a_found_slot_can_be_booked_and_is_gone_from_the_next_search() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());

    let entries = slots_of(search(&app, &one_day()).await).await;

    // 09:00–17:00 UTC in 30-minute slots.
    assert_eq!(entries.len(), 16);
    let first = &entries[0];
    let id = format!("{PRACTITIONER}-20250920T0900");
    assert_eq!(
        *first,
        json!({
            "fullUrl": format!("{}/fhir/Slot/{id}", app.address),
            "resource": {
                "resourceType": "Slot",
                "id": id,
                "identifier": [{"system": "urn:salesforce:slotId", "value": id}],
                "schedule": {
                    "reference": format!("Schedule/{PRACTITIONER}"),
                    "display": "Salesforce provider (Healthcare Practitioner Facility)"
                },
                "status": "free",
                "start": "2025-09-20T09:00:00Z",
                "end": "2025-09-20T09:30:00Z"
            },
            "search": {"mode": "match"}
        })
    );
    assert_eq!(entries[15]["resource"]["end"], "2025-09-20T17:00:00Z");

    // Book the 10:30 slot with the example appointment moved onto it.
    let slot = &entries[3]["resource"];
    let slot_id = slot["id"].as_str().unwrap().to_owned();
    let mut appointment = example_appointment();
    appointment["start"] = slot["start"].clone();
    appointment["end"] = slot["end"].clone();
    appointment["slot"] = json!([{"reference": format!("Slot/{slot_id}")}]);
    let booked = app.post_json(&appointment).await;
    assert_eq!(booked.status(), 201);
    assert_eq!(
        sandbox.bookings()[0].request["slots"],
        json!([{"id": slot_id, "reference": PRACTITIONER}])
    );

    let after = slots_of(search(&app, &one_day()).await).await;
    assert_eq!(after.len(), 15);
    assert!(
        after
            .iter()
            .all(|e| e["resource"]["id"] != slot_id.as_str()),
        "the booked slot is still offered"
    );
    // One token served the searches and the booking.
    assert_eq!(sandbox.token_requests(), 1);
}

#[tokio::test]
async fn both_documented_answer_keys_are_read() {
    for key in [SlotsKey::ResourceSlotDetails, SlotsKey::ResourceSlots] {
        let (app, _sandbox) = sandbox_with(SandboxSettings {
            slots_key: key,
            ..SandboxSettings::default()
        });
        let mut query = one_day();
        query[0].1 = "ge2025-09-20T16:00:00Z".to_owned();
        let entries = slots_of(search(&app, &query).await).await;
        let starts: Vec<&str> = entries
            .iter()
            .map(|e| e["resource"]["start"].as_str().unwrap())
            .collect();
        assert_eq!(
            starts,
            ["2025-09-20T16:00:00Z", "2025-09-20T16:30:00Z"],
            "{key:?}"
        );
    }
}

#[tokio::test]
async fn the_searchset_comes_in_xml_too() {
    let (app, _sandbox) = spawn_with_sandbox(example_mapping());
    let mut query = one_day();
    query.push(("_format", "xml".to_owned()));

    let response = search(&app, &query).await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/fhir+xml; charset=utf-8"
    );
    let strict = Some(DeserializationConfig {
        mode: DeserializationMode::Strict,
    });
    let bundle: Bundle =
        fhirbolt::xml::from_slice(&response.bytes().await.unwrap(), strict).expect("an R4 Bundle");
    assert_eq!(bundle.r#type.value.as_deref(), Some("searchset"));
    assert_eq!(bundle.entry.len(), 16);
    assert_eq!(bundle.total.and_then(|t| t.value), Some(16));
    let Some(fhirbolt::model::r4::Resource::Slot(slot)) = &bundle.entry[0].resource else {
        panic!("the first entry is not a Slot");
    };
    assert_eq!(slot.status.value.as_deref(), Some("free"));
    assert_eq!(slot.start.value.as_deref(), Some("2025-09-20T09:00:00Z"));
    assert_eq!(
        bundle.entry[0]
            .search
            .as_ref()
            .and_then(|s| s.mode.as_ref())
            .and_then(|m| m.value.as_deref()),
        Some("match")
    );
}

#[tokio::test]
async fn only_free_slots_are_known_so_other_statuses_find_nothing_without_asking_salesforce() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let mut query = one_day();
    query[4].1 = "busy".to_owned();

    let entries = slots_of(search(&app, &query).await).await;

    assert!(entries.is_empty());
    assert_eq!(sandbox.token_requests(), 0);
}

#[tokio::test]
async fn malformed_searches_are_400_and_unresolvable_actors_422_before_salesforce_is_called() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    // No lower bound on start (only `lt`).
    let mut query = one_day();
    query.remove(0);
    let response = search(&app, &query).await;
    assert_eq!(response.status(), 400);
    let body = json_body(response).await;
    assert_outcome(&body, "required", None);
    assert!(
        body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("start"),
        "{body}"
    );

    // An actor the mapping cannot resolve: named by parameter, not by value.
    let mut query = one_day();
    query[2].1 = "Practitioner/dr-zebulon-quixote".to_owned();
    let response = search(&app, &query).await;
    assert_eq!(response.status(), 422);
    let body = json_body(response).await;
    assert_outcome(&body, "not-found", None);
    assert!(body.to_string().contains("schedule.actor"), "{body}");
    assert!(!body.to_string().contains("zebulon"), "{body}");

    // A parameter this search does not know.
    let mut query = one_day();
    query.push(("patient", "Patient/pat-1001".to_owned()));
    let response = search(&app, &query).await;
    assert_eq!(response.status(), 400);
    let body = json_body(response).await;
    assert_outcome(&body, "not-supported", None);
    assert!(body.to_string().contains("`patient`"), "{body}");
    assert!(!body.to_string().contains("pat-1001"), "{body}");

    // A malformed date, in the format asked for.
    let mut query = one_day();
    query[0].1 = "ge20-09-2025".to_owned();
    query.push(("_format", "xml".to_owned()));
    let response = search(&app, &query).await;
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(text.contains("<OperationOutcome"), "{text}");
    assert!(text.contains(r#"<code value="invalid"/>"#), "{text}");

    assert_eq!(sandbox.token_requests(), 0, "Salesforce was called");
}

#[tokio::test]
async fn the_get_slots_request_is_exact_and_salesforce_failures_are_fhir_errors() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "token-1",
            "instance_url": server.uri(),
            "token_type": "Bearer",
            "issued_at": "1764124800000"
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(SLOTS_PATH))
        .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(SLOTS_PATH))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!([
            {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
        ])))
        .mount(&server)
        .await;
    let app = spawn_proxy(
        salesforce_settings(&format!("{}/services/oauth2/token", server.uri())),
        example_mapping(),
    );

    let failed = search(&app, &one_day()).await;
    assert_eq!(failed.status(), 502);
    assert_outcome(&json_body(failed).await, "exception", None);

    let throttled = search(&app, &one_day()).await;
    assert_eq!(throttled.status(), 503);
    assert_eq!(throttled.headers()["retry-after"], "42");
    assert_outcome(&json_body(throttled).await, "throttled", None);

    let sent: Vec<Value> = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == SLOTS_PATH)
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(sent.len(), 2, "each search was sent once, never repeated");
    assert_eq!(
        sent[0],
        json!({
            "startDate": "2025-09-20T00:00:00.000Z",
            "endDate": "2025-09-21T00:00:00.000Z",
            "resources": [{"resourceId": PRACTITIONER, "resourceType": "Provider"}],
            "workTypeId": "08qxx000000Axq6xxC",
            "channelId": "0eFxx000000NNOVxx0"
        })
    );
}

#[tokio::test]
async fn a_slots_schedule_finds_the_same_slots_again() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let by_actor = slots_of(search(&app, &one_day()).await).await;
    let schedule = by_actor[0]["resource"]["schedule"]["reference"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(schedule, format!("Schedule/{PRACTITIONER}"));

    let by_schedule = slots_of(
        search(
            &app,
            &[
                ("start", "ge2025-09-20".to_owned()),
                ("start", "lt2025-09-21".to_owned()),
                ("schedule", schedule),
                ("appointment-type", FOLLOW_UP.to_owned()),
            ],
        )
        .await,
    )
    .await;

    let ids = |entries: &[Value]| -> Vec<String> {
        entries
            .iter()
            .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(by_schedule.len(), 16);
    assert_eq!(ids(&by_schedule), ids(&by_actor));
    // The wire shape (the resource without a type) is checked in `mapping::slots`.
    assert!(sandbox.bookings().is_empty());
}

/// The `link` of a searchset answer, by relation.
fn link(body: &Value, relation: &str) -> Option<String> {
    body["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == relation)
        .and_then(|l| l["url"].as_str())
        .map(str::to_owned)
}

#[tokio::test]
async fn count_pages_a_search_with_next_and_previous_links() {
    let (app, _sandbox) = spawn_with_sandbox(example_mapping());
    let mut query = one_day();
    query.push(("_count", "6".to_owned()));
    let first = json_body(search(&app, &query).await).await;
    assert_eq!(first["total"], 16, "total counts every match");
    let page: Vec<Value> = first["entry"].as_array().unwrap().clone();
    assert_eq!(page.len(), 6);
    assert!(link(&first, "previous").is_none());

    // Follow the next links as a client library does, to the end.
    let mut ids: Vec<String> = page
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect();
    let mut next = link(&first, "next");
    let mut pages = 1;
    while let Some(url) = next {
        assert!(
            url.starts_with(&format!("{}/fhir/Slot?", app.address)),
            "{url}"
        );
        let body = json_body(app.client.get(&url).send().await.unwrap()).await;
        assert_eq!(body["total"], 16);
        assert!(link(&body, "previous").is_some(), "{body}");
        ids.extend(
            body["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["resource"]["id"].as_str().unwrap().to_owned()),
        );
        next = link(&body, "next");
        pages += 1;
    }
    assert_eq!(pages, 3);
    let all: Vec<String> = slots_of(search(&app, &one_day()).await)
        .await
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids, all,
        "the pages together are the whole answer, in order"
    );
}

#[tokio::test]
async fn unknown_parameters_are_refused_unless_lenient_handling_is_asked_for() {
    let (app, _sandbox) = spawn_with_sandbox(example_mapping());
    let mut query = one_day();
    query.push(("_sort", "start".to_owned()));
    let strict = search(&app, &query).await;
    assert_eq!(strict.status(), 400);
    let body = json_body(strict).await;
    assert!(body.to_string().contains("`_sort`"), "{body}");

    let lenient = app
        .client
        .get(format!("{}/fhir/Slot", app.address))
        .query(&query)
        .header("Prefer", "handling=lenient")
        .send()
        .await
        .unwrap();
    assert_eq!(lenient.status(), 200);
    let body = json_body(lenient).await;
    assert_eq!(body["total"], 16);
    // The self link shows what was used, not what was ignored.
    let own = link(&body, "self").unwrap();
    assert!(
        !own.contains("_sort") && own.contains("schedule.actor"),
        "{own}"
    );
}

#[tokio::test]
async fn a_search_by_start_and_practitioner_alone_finds_slots() {
    // No visit code: Get Slots needs none when the mapping's source system is sent (the example
    // mapping has no default work type).
    let (app, _sandbox) = spawn_with_sandbox(example_mapping());
    let entries = slots_of(
        search(
            &app,
            &[
                ("start", "ge2025-09-20".to_owned()),
                ("start", "lt2025-09-21".to_owned()),
                ("schedule.actor", format!("Practitioner/{PRACTITIONER}")),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(entries.len(), 16);
}
