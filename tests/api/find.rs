//! `Appointment/$find`: proposed Appointments from the sandbox's Get Slots, by GET and by POST of
//! `Parameters` (JSON and XML); one of them booked as it is, and gone from the next call; every
//! malformed call refused before Salesforce hears of it.

use fhirbolt::model::r4::resources::Bundle;
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
use serde_json::{Value, json};

use crate::helpers::*;

/// The example mapping's practitioner, as a Salesforce id.
const PRACTITIONER: &str = "0bSxx0000005JoaxxE";
const FOLLOW_UP: &str = "http://terminology.hl7.org/CodeSystem/v2-0276|FOLLOWUP";

fn one_day() -> Vec<(&'static str, String)> {
    vec![
        ("start", "2025-09-20".to_owned()),
        ("end", "2025-09-20".to_owned()),
        ("practitioner", format!("Practitioner/{PRACTITIONER}")),
        ("visit-type", FOLLOW_UP.to_owned()),
        ("patient-reference", "Patient/pat-1001".to_owned()),
    ]
}

async fn find(app: &TestApp, query: &[(&str, String)]) -> reqwest::Response {
    app.client
        .get(format!("{}/fhir/Appointment/$find", app.address))
        .query(query)
        .send()
        .await
        .expect("the proxy answers")
}

async fn proposed(response: reqwest::Response) -> Vec<Value> {
    assert_eq!(response.status(), 200);
    let body = json_body(response).await;
    assert_eq!(body["resourceType"], "Bundle");
    assert_eq!(body["type"], "searchset");
    let entries = body["entry"].as_array().cloned().unwrap_or_default();
    assert_eq!(body["total"], json!(entries.len()), "{body}");
    entries.into_iter().map(|e| e["resource"].clone()).collect()
}

#[tokio::test]
async fn a_proposed_appointment_can_be_booked_as_it_is_and_is_gone_from_the_next_find() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());

    let found = proposed(find(&app, &one_day()).await).await;

    // 09:00–17:00 UTC in 30-minute slots.
    assert_eq!(found.len(), 16);
    let slot_id = format!("{PRACTITIONER}-20250920T1030");
    assert_eq!(
        found[3],
        json!({
            "resourceType": "Appointment",
            "status": "proposed",
            "appointmentType": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v2-0276", "code": "FOLLOWUP"
            }]},
            "start": "2025-09-20T10:30:00Z",
            "end": "2025-09-20T11:00:00Z",
            "slot": [{
                "reference": format!("Slot/{slot_id}"),
                "identifier": {"system": "urn:salesforce:slotId", "value": slot_id}
            }],
            "participant": [
                {"actor": {"reference": format!("Practitioner/{PRACTITIONER}")}, "required": "required", "status": "needs-action"},
                {"actor": {"reference": "Patient/pat-1001"}, "status": "needs-action"}
            ]
        })
    );
    assert!(sandbox.bookings().is_empty(), "$find books nothing");

    // Book it: add the location the example appointment is at, and say booked.
    let location = example_appointment()["participant"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["actor"]["reference"]
                .as_str()
                .is_some_and(|r| r.starts_with("Location/"))
        })
        .cloned()
        .expect("the example has a location");
    let mut booking = found[3].clone();
    booking["status"] = json!("booked");
    booking["participant"]
        .as_array_mut()
        .unwrap()
        .push(location);
    let response = app.post_json(&booking).await;
    assert_eq!(response.status(), 201, "{}", json_body(response).await);
    let sent = &sandbox.bookings()[0].request;
    assert_eq!(
        sent["slots"],
        json!([{"id": slot_id, "reference": PRACTITIONER}])
    );
    assert_eq!(sent["workTypeId"], "08qxx000000Axq6xxC");

    let after = proposed(find(&app, &one_day()).await).await;
    assert_eq!(after.len(), 15);
    assert!(after.iter().all(|a| a["start"] != "2025-09-20T10:30:00Z"));
}

#[tokio::test]
async fn parameters_in_json_and_xml_find_the_same_and_xml_can_be_answered() {
    let (app, _sandbox) = spawn_with_sandbox(example_mapping());
    let by_get = proposed(find(&app, &one_day()).await).await;
    let json_parameters = json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "start", "valueDate": "2025-09-20"},
            {"name": "end", "valueDate": "2025-09-20"},
            {"name": "practitioner", "valueReference": {"reference": format!("Practitioner/{PRACTITIONER}")}},
            {"name": "visit-type", "valueCoding": {"system": "http://terminology.hl7.org/CodeSystem/v2-0276", "code": "FOLLOWUP"}},
            {"name": "patient-reference", "valueUri": "Patient/pat-1001"}
        ]
    });
    let by_json = proposed(
        app.client
            .post(format!("{}/fhir/Appointment/$find", app.address))
            .header("Content-Type", "application/fhir+json")
            .body(json_parameters.to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(by_json, by_get);

    let xml_parameters = format!(
        "<Parameters xmlns=\"http://hl7.org/fhir\">\
         <parameter><name value=\"start\"/><valueDateTime value=\"2025-09-20T16:00:00Z\"/></parameter>\
         <parameter><name value=\"end\"/><valueDateTime value=\"2025-09-20T17:00:00Z\"/></parameter>\
         <parameter><name value=\"practitioner\"/><valueUri value=\"Practitioner/{PRACTITIONER}\"/></parameter>\
         <parameter><name value=\"visit-type\"/><valueString value=\"{FOLLOW_UP}\"/></parameter>\
         </Parameters>"
    );
    let response = app
        .client
        .post(format!("{}/fhir/Appointment/$find", app.address))
        .header("Content-Type", "application/fhir+xml")
        .header("Accept", "application/fhir+xml")
        .body(xml_parameters)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let strict = Some(DeserializationConfig {
        mode: DeserializationMode::Strict,
    });
    let bundle: Bundle =
        fhirbolt::xml::from_slice(&response.bytes().await.unwrap(), strict).expect("an R4 Bundle");
    let starts: Vec<String> = bundle
        .entry
        .iter()
        .map(|e| match e.resource.as_ref() {
            Some(fhirbolt::model::r4::Resource::Appointment(a)) => {
                assert_eq!(a.status.value.as_deref(), Some("proposed"));
                a.start.as_ref().and_then(|s| s.value.clone()).unwrap()
            }
            other => panic!("not an Appointment: {other:?}"),
        })
        .collect();
    assert_eq!(starts, ["2025-09-20T16:00:00Z", "2025-09-20T16:30:00Z"]);
}

#[tokio::test]
async fn malformed_calls_are_refused_before_salesforce_is_asked() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let without = |name: &str| -> Vec<(&'static str, String)> {
        one_day().into_iter().filter(|(n, _)| *n != name).collect()
    };
    let with = |name: &'static str, value: &str| {
        let mut query = one_day();
        query.push((name, value.to_owned()));
        query
    };
    for (query, status, code) in [
        (without("start"), 400, "required"),
        (without("practitioner"), 400, "required"),
        (with("end", "2025-09-21"), 400, "invalid"),
        (
            with("location-string", "Secret Clinic"),
            400,
            "not-supported",
        ),
        (
            with("practitioner", "Practitioner/not-known"),
            422,
            "not-found",
        ),
    ] {
        let response = find(&app, &query).await;
        assert_eq!(response.status(), status, "{query:?}");
        let body = json_body(response).await;
        assert_outcome(&body, code, None);
        assert!(!body.to_string().contains("Secret"), "{body}");
        assert!(!body.to_string().contains("not-known"), "{body}");
    }
    for (content_type, body, status) in [
        (
            "application/fhir+json",
            "{\"resourceType\":\"Patient\"}",
            400,
        ),
        (
            "application/fhir+xml",
            "<Parameters xmlns=\"http://hl7.org/fhir\">",
            400,
        ),
        ("text/plain", "start=2025-09-20", 415),
    ] {
        let response = app
            .client
            .post(format!("{}/fhir/Appointment/$find", app.address))
            .header("Content-Type", content_type)
            .header("Accept", "application/fhir+json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{content_type}");
        assert_eq!(
            json_body(response).await["resourceType"],
            "OperationOutcome"
        );
    }
    let response = app
        .client
        .delete(format!("{}/fhir/Appointment/$find", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET, HEAD, POST");
    assert_eq!(sandbox.token_requests(), 0, "Salesforce was never asked");
}

#[tokio::test]
async fn find_pages_with_count_and_needs_no_visit_type() {
    let (app, _sandbox) = spawn_with_sandbox(example_mapping());
    let mut query: Vec<(&str, String)> = one_day()
        .into_iter()
        .filter(|(name, _)| *name != "visit-type")
        .collect();
    query.push(("_count", "10".to_owned()));
    let response = find(&app, &query).await;
    assert_eq!(response.status(), 200);
    let body = json_body(response).await;
    assert_eq!(body["total"], 16);
    assert_eq!(body["entry"].as_array().unwrap().len(), 10);
    let next = body["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .and_then(|l| l["url"].as_str())
        .unwrap()
        .to_owned();
    let rest = json_body(app.client.get(&next).send().await.unwrap()).await;
    assert_eq!(rest["entry"].as_array().unwrap().len(), 6);

    // By POST the page size is in the URL, and the next link is the same search as a GET.
    let parameters = json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "start", "valueDate": "2025-09-20"},
            {"name": "end", "valueDate": "2025-09-20"},
            {"name": "practitioner", "valueReference": {"reference": format!("Practitioner/{PRACTITIONER}")}}
        ]
    });
    let posted = app
        .client
        .post(format!("{}/fhir/Appointment/$find?_count=10", app.address))
        .header("Content-Type", "application/fhir+json")
        .body(parameters.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    let body = json_body(posted).await;
    assert_eq!(body["entry"].as_array().unwrap().len(), 10);
    let next = body["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .and_then(|l| l["url"].as_str())
        .unwrap()
        .to_owned();
    let rest = json_body(app.client.get(&next).send().await.unwrap()).await;
    assert_eq!(rest["entry"].as_array().unwrap().len(), 6, "{next}");
}
