//! Searching appointments in Salesforce (`GET Appointment?…`, `POST Appointment/_search`): each
//! parameter and their combinations, paging across Salesforce batches, and SOQL injection
//! attempts, against the sandbox.

use fhir_salesforce_proxy::sandbox::Sandbox;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::reads::{book, spawn_reading};

const OTHER_PATIENT: &str = "Patient/001xx000012udqRxxQ";
const OTHER_PRACTITIONER: &str = "Practitioner/0bSxx0000005JobxxE";
const OTHER_LOCATION: &str = "Location/001xx000012udqixxA";

/// The example appointment numbered `n`, starting at `start` (UTC) for half an hour.
fn at(n: usize, start: &str) -> Value {
    let mut a = numbered_appointment(n);
    let begin = chrono::DateTime::parse_from_rfc3339(start).unwrap();
    a["start"] = json!(start);
    a["end"] = json!((begin + chrono::Duration::minutes(30)).to_rfc3339());
    a
}

/// Another patient, seen by another practitioner at another location.
fn elsewhere(n: usize, start: &str) -> Value {
    let mut a = at(n, start);
    a["participant"] = json!([
        {"actor": {"reference": OTHER_PATIENT}, "status": "accepted"},
        {"actor": {"reference": OTHER_PRACTITIONER}, "required": "required", "status": "accepted"},
        {"actor": {"reference": OTHER_LOCATION}, "status": "accepted"}
    ]);
    a
}

async fn search(app: &TestApp, query: &str) -> reqwest::Response {
    app.client
        .get(format!("{}/fhir/Appointment?{query}", app.address))
        .send()
        .await
        .unwrap()
}

/// The ids of a searchset, in order, after checking its shape.
async fn found(app: &TestApp, query: &str) -> (Vec<String>, Value) {
    let response = search(app, query).await;
    assert_eq!(response.status(), 200, "{query}");
    let bundle = json_body(response).await;
    assert_eq!(bundle["resourceType"], "Bundle", "{bundle}");
    assert_eq!(bundle["type"], "searchset");
    let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
    let ids = entries
        .iter()
        .map(|e| {
            let id = e["resource"]["id"].as_str().unwrap().to_owned();
            assert_eq!(
                e["fullUrl"],
                format!("{}/fhir/Appointment/{id}", app.address),
                "absolute fullUrl"
            );
            assert_eq!(e["search"]["mode"], "match");
            id
        })
        .collect();
    (ids, bundle)
}

struct Booked {
    first: String,
    second: String,
    other: String,
    cancelled: String,
}

/// Four bookings: three for pat-1001 on the 21st, 22nd and 23rd (the last cancelled in
/// Salesforce), one for another patient, practitioner and location on the 21st.
async fn four(app: &TestApp, sandbox: &Sandbox) -> Booked {
    let id = |v: Value| v["id"].as_str().unwrap().to_owned();
    let first = id(book(app, &at(1, "2025-07-21T18:00:00Z")).await);
    let second = id(book(app, &at(2, "2025-07-22T18:00:00Z")).await);
    let other = id(book(app, &elsewhere(3, "2025-07-21T20:00:00Z")).await);
    let cancelled = id(book(app, &at(4, "2025-07-23T18:00:00Z")).await);
    assert!(sandbox.edit_appointment(&cancelled, &json!({"Status": "Canceled"})));
    Booked {
        first,
        second,
        other,
        cancelled,
    }
}

#[tokio::test]
async fn each_parameter_and_their_combinations_find_what_salesforce_holds() {
    let (app, sandbox) = spawn_reading(2000);
    let b = four(&app, &sandbox).await;
    let ours = "patient=Patient/pat-1001";

    let (ids, bundle) = found(&app, ours).await;
    assert_eq!(
        ids,
        [b.first.clone(), b.second.clone(), b.cancelled.clone()]
    );
    assert_eq!(bundle["total"], 3);
    assert_eq!(
        bundle["link"][0],
        json!({"relation": "self", "url": format!("{}/fhir/Appointment?patient=Patient%2Fpat-1001", app.address)})
    );
    assert_eq!(
        bundle["entry"][0]["resource"]["participant"][0]["actor"]["reference"],
        "Patient/pat-1001"
    );

    for (query, expected) in [
        (format!("{ours}&date=2025-07-21"), vec![&b.first]),
        (
            format!("{ours}&date=ge2025-07-22"),
            vec![&b.second, &b.cancelled],
        ),
        (
            format!("{ours}&date=ge2025-07-22&_sort=-date"),
            vec![&b.cancelled, &b.second],
        ),
        (
            format!("{ours}&date=lt2025-07-22T18:00:00Z"),
            vec![&b.first],
        ),
        (
            format!("{ours}&date=le2025-07-22T18:00"),
            vec![&b.first, &b.second],
        ),
        (format!("{ours}&date=gt2025-07-22"), vec![&b.cancelled]),
        (format!("{ours}&status=cancelled"), vec![&b.cancelled]),
        (
            format!("{ours}&status=booked,fulfilled"),
            vec![&b.first, &b.second],
        ),
        (
            format!(
                "{ours}&appointment-type=http://terminology.hl7.org/CodeSystem/v2-0276|FOLLOWUP"
            ),
            vec![&b.first, &b.second, &b.cancelled],
        ),
        (format!("{ours}&appointment-type=WALKIN"), vec![]),
        (format!("{ours}&practitioner={OTHER_PRACTITIONER}"), vec![]),
        (format!("practitioner={OTHER_PRACTITIONER}"), vec![&b.other]),
        (
            "practitioner=Practitioner/0bSxx0000005JoaxxE&date=2025-07-21".to_owned(),
            vec![&b.first],
        ),
        (format!("location={OTHER_LOCATION}"), vec![&b.other]),
        (
            format!("location=Location/001xx000012udqhxxA&location={OTHER_LOCATION}"),
            vec![],
        ),
        (format!("actor={OTHER_PATIENT}"), vec![&b.other]),
        (
            format!("actor=Patient/pat-1001,{OTHER_PATIENT}&date=2025-07-21"),
            vec![&b.first, &b.other],
        ),
        (
            "identifier=http://hospital.example.org/fhir/appointment-id|A-2".to_owned(),
            vec![&b.second],
        ),
        (
            format!("identifier=urn:salesforce:ServiceAppointment|{}", b.other),
            vec![&b.other],
        ),
        (
            format!("_id={},{}", b.first, b.other),
            vec![&b.first, &b.other],
        ),
        (format!("_id={}&patient=Patient/pat-1001", b.other), vec![]),
        (
            "date=ge2025-07-21&date=lt2025-07-23".to_owned(),
            vec![&b.first, &b.other, &b.second],
        ),
    ] {
        let (ids, _) = found(&app, &query).await;
        assert_eq!(ids.iter().collect::<Vec<_>>(), expected, "{query}");
    }

    // The same through POST _search, with the parameters as a form.
    let response = app
        .client
        .post(format!("{}/fhir/Appointment/_search", app.address))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("{ours}&status=cancelled"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let bundle = json_body(response).await;
    assert_eq!(bundle["entry"][0]["resource"]["id"], b.cancelled.as_str());
    assert_eq!(bundle["entry"][0]["resource"]["status"], "cancelled");
}

#[tokio::test]
async fn what_has_no_salesforce_id_matches_nothing_without_asking_salesforce() {
    let (app, sandbox) = spawn_reading(2000);
    four(&app, &sandbox).await;
    let asked = sandbox.query_requests();
    for query in [
        "patient=Patient/nobody-we-know",
        "identifier=http://hospital.example.org/fhir/appointment-id|never-booked",
        "_id=not-a-salesforce-id",
        "practitioner=Practitioner/unknown&date=2025-07-21",
    ] {
        let (ids, bundle) = found(&app, query).await;
        assert!(ids.is_empty(), "{query}");
        assert_eq!(bundle["total"], 0, "{query}");
    }
    assert_eq!(sandbox.query_requests(), asked);
}

#[tokio::test]
async fn searches_salesforce_cannot_answer_well_are_refused_by_name() {
    let (app, _sandbox) = spawn_reading(2000);
    for (query, code, says) in [
        ("date=ge2025-07-21", "too-costly", "bounded on both sides"),
        ("status=booked", "too-costly", "needs _id"),
        ("", "too-costly", "needs _id"),
        (
            "subject=Patient/pat-1001",
            "not-supported",
            "`subject` is not supported",
        ),
        ("patient:missing=true", "not-supported", "modifiers"),
        (
            "patient=Patient/pat-1001&_sort=status",
            "not-supported",
            "_sort takes",
        ),
        ("patient=Practitioner/x", "invalid", "references to Patient"),
        (
            "actor=Patient/pat-1001,Location/001xx000012udqhxxA",
            "not-supported",
            "different kinds",
        ),
        (
            "practitioner=Practitioner/0bSxx0000005JoaxxE&location=Location/001xx000012udqhxxA&actor=Location/001xx000012udqixxA",
            "not-supported",
            "at most two",
        ),
        (
            "patient=Patient/pat-1001&date=1600-01-01",
            "value",
            "1700-01-01",
        ),
        (
            "patient=Patient/pat-1001&_page=garbage",
            "not-found",
            "no longer available",
        ),
    ] {
        let response = search(&app, query).await;
        let status = response.status().as_u16();
        let body = json_body(response).await;
        assert!(status == 400 || status == 410, "{query}: {status} {body}");
        assert_outcome(&body, code, None);
        assert!(body.to_string().contains(says), "{query}: {body}");
    }
}

#[tokio::test]
async fn pages_follow_next_links_across_salesforce_batches() {
    // Salesforce answers at most three rows at a time; the client asks for pages of three.
    let (app, _sandbox) = spawn_reading(3);
    let mut booked = Vec::new();
    for n in 0..8 {
        let v = book(&app, &at(10 + n, &format!("2025-08-0{}T09:00:00Z", n + 1))).await;
        booked.push(v["id"].as_str().unwrap().to_owned());
    }
    let mut url = format!(
        "{}/fhir/Appointment?patient=Patient/pat-1001&_count=3",
        app.address
    );
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let response = app.client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let bundle = json_body(response).await;
        assert_eq!(bundle["total"], 8);
        pages += 1;
        let entries = bundle["entry"].as_array().unwrap();
        assert!(entries.len() <= 3);
        seen.extend(
            entries
                .iter()
                .map(|e| e["resource"]["id"].as_str().unwrap().to_owned()),
        );
        let next = bundle["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_owned());
        match next {
            Some(next) => {
                assert!(next.contains("patient=Patient%2Fpat-1001"), "{next}");
                assert!(
                    next.contains("_count=3") && next.contains("_page="),
                    "{next}"
                );
                url = next;
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, booked);

    // A page size that does not divide the batches, newest first.
    let (ids, bundle) = found(&app, "patient=Patient/pat-1001&_count=5&_sort=-date").await;
    let mut newest_first = booked.clone();
    newest_first.reverse();
    assert_eq!(ids, newest_first[..5].to_vec());
    let next = bundle["link"][1]["url"].as_str().unwrap().to_owned();
    let rest = json_body(app.client.get(&next).send().await.unwrap()).await;
    let rest: Vec<&str> = rest["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        rest,
        newest_first[5..]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    // _total=none leaves it out.
    let (_, bundle) = found(&app, "patient=Patient/pat-1001&_total=none").await;
    assert!(bundle.get("total").is_none(), "{bundle}");
}

#[tokio::test]
async fn soql_injection_attempts_never_change_the_query() {
    let (app, sandbox) = spawn_reading(2000);
    let b = four(&app, &sandbox).await;
    let attempts = [
        "_id=x'%20OR%20Id%20!%3D%20'",
        "_id=08pSB0000000001AAA'%20OR%20''%3D'",
        "patient=Patient/pat-1001'%20OR%20ParentRecordId%20!%3D%20'",
        "patient=Patient/001xx000012udqQxxQ%5C'%20OR%20Id%20!%3D%20null%20--",
        "identifier=http://hospital.example.org/fhir/appointment-id|A-1'%20OR%20'1'%3D'1",
        "identifier=http://hospital.example.org/fhir/appointment-id|%25",
        "identifier=http://hospital.example.org/fhir/appointment-id|A-_",
        "identifier=urn:salesforce:ServiceAppointment|x'%0AOR%20Id%20!%3D%20'",
        "practitioner=Practitioner/0bSxx0000005JoaxxE)%20OR%20(Id%20!%3D%20null&date=2025-07-21",
        "location=Location/SELECT%20Id%20FROM%20Account",
        "actor=Patient/pat-1001%5C",
        "date=2025-07-21T00:00:00Z%20OR%20Id%20!%3D%20null",
        "status=booked'%20OR%20Status%20!%3D%20'&patient=Patient/pat-1001",
        "appointment-type=FOLLOWUP'%20OR%20''%3D'&patient=Patient/pat-1001",
    ];
    for query in attempts {
        let response = search(&app, query).await;
        let status = response.status().as_u16();
        let body = json_body(response).await;
        match status {
            // Either refused as malformed, or a search for exactly that text: nothing found.
            400 => assert_eq!(body["resourceType"], "OperationOutcome", "{query}"),
            200 => assert!(
                body["entry"].as_array().is_none_or(|e| e.is_empty()),
                "{query} found appointments: {body}"
            ),
            other => panic!("{query}: {other} {body}"),
        }
    }
    // Every statement that reached Salesforce was one the sandbox could read (no
    // MALFORMED_QUERY reached a client as a 502), and none carries the injected text outside a
    // quoted, escaped literal.
    for statement in sandbox.queries() {
        for injected in [
            "OR Id",
            "OR ParentRecordId",
            "OR Status",
            "OR ''",
            "--",
            "FROM Account",
        ] {
            assert!(!statement.contains(injected), "{statement}");
        }
    }
    // And the honest searches still work after all that.
    let (ids, _) = found(&app, "patient=Patient/pat-1001&date=2025-07-21").await;
    assert_eq!(ids, [b.first]);
}
