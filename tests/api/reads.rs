//! Reading appointments as Salesforce holds them now (`GET Appointment/{id}`), their versions
//! (`ETag`, `If-None-Match`, `If-Match`), and conditional update, against the sandbox.

use std::net::TcpListener;

use fhir_salesforce_proxy::sandbox::{Fault, Sandbox, SandboxSettings};
use serde_json::{Value, json};

use crate::helpers::*;

/// A proxy on the example mapping and a sandbox answering queries in batches of `batch`.
pub fn spawn_reading(batch: usize) -> (TestApp, Sandbox) {
    let sandbox = Sandbox::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        SandboxSettings {
            query_batch_size: batch,
            ..SandboxSettings::default()
        },
    )
    .unwrap();
    let app = spawn_proxy(salesforce_settings(&sandbox.token_url()), example_mapping());
    (app, sandbox)
}

/// Books the example appointment; returns the booked resource.
pub async fn book(app: &TestApp, body: &Value) -> Value {
    let response = app.post_json(body).await;
    assert_eq!(response.status(), 201);
    json_body(response).await
}

async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app.client.get(format!("{}/fhir/{path}", app.address));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_read_after_booking_answers_the_appointment_with_its_version() {
    let (app, sandbox) = spawn_reading(2000);
    let booked = book(&app, &example_appointment()).await;
    let id = booked["id"].as_str().unwrap();

    let response = get(&app, &format!("Appointment/{id}"), &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/fhir+json; charset=utf-8"
    );
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let last_modified = response.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(last_modified.ends_with(" GMT"), "{last_modified}");
    let read = json_body(response).await;
    assert_eq!(read["resourceType"], "Appointment");
    assert_eq!(read["id"], id);
    assert_eq!(read["status"], "booked");
    let version = read["meta"]["versionId"].as_str().unwrap();
    assert_eq!(etag, format!("W/\"{version}\""));
    // What the client sent, as Salesforce holds it: the same instants, the same participants.
    assert_eq!(read["start"], "2025-07-21T18:00:00.000Z");
    assert_eq!(read["end"], "2025-07-21T18:30:00.000Z");
    assert_eq!(read["participant"], booked["participant"]);
    assert_eq!(read["identifier"], booked["identifier"]);
    assert_eq!(read["description"], "Discussion");
    let query = sandbox.queries().pop().unwrap();
    assert!(query.contains(&format!("WHERE Id IN ('{id}')")), "{query}");

    // The same version again: 304, no body, the tag repeated.
    let response = get(
        &app,
        &format!("Appointment/{id}"),
        &[("If-None-Match", &etag)],
    )
    .await;
    assert_eq!(response.status(), 304);
    assert_eq!(response.headers()["etag"].to_str().unwrap(), etag);
    assert!(response.text().await.unwrap().is_empty());
    // XML too.
    let response = get(&app, &format!("Appointment/{id}?_format=xml"), &[]).await;
    assert_eq!(response.status(), 200);
    let xml = response.text().await.unwrap();
    assert!(xml.contains(&format!("<id value=\"{id}\"/>")), "{xml}");
    let metrics = app.metrics().await;
    for line in [
        r#"fsp_http_requests_total{interaction="read",status="200"} 2"#,
        r#"fsp_http_requests_total{interaction="read",status="304"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert!(metrics.contains(r#"call="query""#), "{metrics}");
}

#[tokio::test]
async fn a_change_made_in_salesforce_shows_in_the_next_read() {
    let (app, sandbox) = spawn_reading(2000);
    let booked = book(&app, &example_appointment()).await;
    let id = booked["id"].as_str().unwrap();
    let first = json_body(get(&app, &format!("Appointment/{id}"), &[]).await).await;

    // A call-centre agent cancels it in Salesforce and writes why.
    assert!(sandbox.edit_appointment(
        id,
        &json!({"Status": "Canceled", "CancellationReason": "Patient called", "SchedStartTime": "2025-07-22T09:00:00.000+0000"})
    ));
    let response = get(
        &app,
        &format!("Appointment/{id}"),
        &[(
            "If-None-Match",
            &format!("W/\"{}\"", first["meta"]["versionId"].as_str().unwrap()),
        )],
    )
    .await;
    assert_eq!(response.status(), 200, "a changed record is not 304");
    let read = json_body(response).await;
    assert_eq!(read["status"], "cancelled");
    assert_eq!(read["cancelationReason"]["text"], "Patient called");
    assert_eq!(read["start"], "2025-07-22T09:00:00.000Z");
    assert_ne!(read["meta"]["versionId"], first["meta"]["versionId"]);
}

#[tokio::test]
async fn ids_nobody_holds_are_not_found_and_reads_follow_salesforces_failures() {
    let (app, sandbox) = spawn_reading(2000);
    for id in ["08pSB0000000999AAA", "not-a-salesforce-id", "08p"] {
        let response = get(&app, &format!("Appointment/{id}"), &[]).await;
        assert_eq!(response.status(), 404, "{id}");
        assert_outcome(&json_body(response).await, "not-found", None);
    }
    let booked = book(&app, &example_appointment()).await;
    let id = booked["id"].as_str().unwrap();

    // A read changes nothing: a dropped connection is tried once more.
    sandbox.set_fault_for(Fault::DropConnection, 1);
    let response = get(&app, &format!("Appointment/{id}"), &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(json_body(response).await["id"], id);

    sandbox.set_fault(Fault::Throttle);
    let response = get(&app, &format!("Appointment/{id}"), &[]).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_outcome(&json_body(response).await, "throttled", None);
}

#[tokio::test]
async fn if_match_refuses_a_stale_change_and_sends_nothing() {
    let (app, sandbox) = spawn_reading(2000);
    let booked = book(&app, &example_appointment()).await;
    let id = booked["id"].as_str().unwrap().to_owned();
    let read = json_body(get(&app, &format!("Appointment/{id}"), &[]).await).await;
    let etag = format!("W/\"{}\"", read["meta"]["versionId"].as_str().unwrap());

    // Someone changes it in Salesforce meanwhile.
    assert!(sandbox.edit_appointment(&id, &json!({"Comments": "moved by phone"})));
    let mut change = booked.clone();
    change["start"] = json!("2025-07-21T15:00:00-04:00");
    change["end"] = json!("2025-07-21T15:30:00-04:00");
    let put = |if_match: String, body: Value| {
        app.client
            .put(format!("{}/fhir/Appointment/{id}", app.address))
            .header("Content-Type", "application/fhir+json")
            .header("If-Match", if_match)
            .body(body.to_string())
            .send()
    };
    let response = put(etag.clone(), change.clone()).await.unwrap();
    assert_eq!(response.status(), 412);
    let outcome = json_body(response).await;
    assert_outcome(&outcome, "conflict", None);
    assert_eq!(
        sandbox.appointment(&id).unwrap().request["startDate"],
        "2025-07-21T18:00:00.000Z",
        "nothing was sent to Salesforce"
    );
    let patch = app
        .client
        .patch(format!("{}/fhir/Appointment/{id}", app.address))
        .header("Content-Type", "application/json-patch+json")
        .header("If-Match", &etag)
        .body(r#"[{"op":"replace","path":"/status","value":"cancelled"}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 412);
    assert!(sandbox.cancellations().is_empty());

    // With the version it has now, the change goes through.
    let now = json_body(get(&app, &format!("Appointment/{id}"), &[]).await).await;
    let current = format!("W/\"{}\"", now["meta"]["versionId"].as_str().unwrap());
    let response = put(current, change).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        sandbox.appointment(&id).unwrap().request["startDate"],
        "2025-07-21T19:00:00.000Z"
    );
}

#[tokio::test]
async fn a_conditional_update_changes_the_one_match_and_refuses_none_or_several() {
    let (app, sandbox) = spawn_reading(2000);
    let booked = book(&app, &example_appointment()).await;
    let id = booked["id"].as_str().unwrap().to_owned();
    let put = |query: &str, body: &Value| {
        app.client
            .put(format!("{}/fhir/Appointment?{query}", app.address))
            .header("Content-Type", "application/fhir+json")
            .body(body.to_string())
            .send()
    };
    let mut cancel = booked.clone();
    cancel["status"] = json!("cancelled");

    let none = put(
        "identifier=http://hospital.example.org/fhir/appointment-id|NOPE",
        &cancel,
    )
    .await
    .unwrap();
    assert_eq!(none.status(), 404);
    assert_outcome(&json_body(none).await, "not-found", None);

    // A second booking with another identifier, then an OR list naming both: two matches.
    let mut second = example_appointment();
    second["identifier"][0]["value"] = json!("A-2025-07-21-0002");
    second["start"] = json!("2025-07-21T16:00:00-04:00");
    second["end"] = json!("2025-07-21T16:30:00-04:00");
    book(&app, &second).await;
    let several = put(
        "identifier=http://hospital.example.org/fhir/appointment-id|A-2025-07-21-0001,http://hospital.example.org/fhir/appointment-id|A-2025-07-21-0002",
        &cancel,
    )
    .await
    .unwrap();
    assert_eq!(several.status(), 412);
    assert_outcome(&json_body(several).await, "multiple-matches", None);
    assert!(sandbox.cancellations().is_empty());

    let refused = put("status=booked", &cancel).await.unwrap();
    assert_eq!(refused.status(), 400);

    let one = put(
        "identifier=http://hospital.example.org/fhir/appointment-id|A-2025-07-21-0001",
        &cancel,
    )
    .await
    .unwrap();
    assert_eq!(one.status(), 200);
    assert_eq!(json_body(one).await["status"], "cancelled");
    assert_eq!(sandbox.cancellations(), vec![id]);
}

/// A wiremock org answering every query with `answer`.
async fn query_org(answer: wiremock::ResponseTemplate) -> (TestApp, wiremock::MockServer) {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "token-1",
            "instance_url": server.uri(),
            "id": format!("{}/id/00D000000000001AAA/005000000000001AAA", server.uri()),
            "token_type": "Bearer",
            "issued_at": "1764124800000",
            "signature": "c2lnbmF0dXJl",
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/services/data/v65.0/query"))
        .respond_with(answer)
        .mount(&server)
        .await;
    let mut settings = salesforce_settings(&format!("{}/services/oauth2/token", server.uri()));
    settings.request_timeout = std::time::Duration::from_millis(500);
    let app = spawn_proxy(settings, example_mapping());
    (app, server)
}

#[tokio::test]
async fn salesforces_refusals_of_a_query_become_fhir_answers() {
    let error = |status: u16, code: &str| {
        wiremock::ResponseTemplate::new(status)
            .set_body_json(json!([{"errorCode": code, "message": "as Salesforce words it"}]))
    };
    for (answer, status, code) in [
        (error(400, "QUERY_TIMEOUT"), 400, "too-costly"),
        (error(400, "QUERY_TOO_COMPLICATED"), 400, "too-costly"),
        (error(400, "INVALID_FIELD"), 502, "exception"),
        (error(400, "MALFORMED_QUERY"), 502, "exception"),
        (error(500, "UNKNOWN_EXCEPTION"), 502, "exception"),
        (
            wiremock::ResponseTemplate::new(200).set_body_string("<html>"),
            502,
            "exception",
        ),
        (
            wiremock::ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(2)),
            504,
            "timeout",
        ),
    ] {
        let (app, server) = query_org(answer).await;
        let response = app
            .client
            .get(format!(
                "{}/fhir/Appointment?patient=Patient/pat-1001",
                app.address
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{code}");
        let body = json_body(response).await;
        assert_outcome(&body, code, None);
        drop(server);
    }
}

#[tokio::test]
async fn an_expired_session_is_renewed_once_for_a_read() {
    let (app, sandbox) = spawn_reading(2000);
    let booked = book(&app, &example_appointment()).await;
    let id = booked["id"].as_str().unwrap();
    let tokens = sandbox.token_requests();
    sandbox.expire_tokens();
    let response = get(&app, &format!("Appointment/{id}"), &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(json_body(response).await["id"], id);
    assert_eq!(sandbox.token_requests(), tokens + 1);
}

#[tokio::test]
async fn which_records_a_tenant_may_read_follows_the_documented_rule() {
    let sandbox = start_sandbox();
    let settings = || salesforce_settings(&sandbox.token_url());
    // Two proxies on one org, each with its own store: one shows every patient appointment, the
    // other only those it booked.
    let everything = spawn_proxy(settings(), example_mapping());
    let mut own = example_mapping();
    own.readable = fhir_salesforce_proxy::mapping::file::ReadableAppointments::BookedHere;
    let booked_here = spawn_proxy(settings(), own);

    let theirs = book(&everything, &numbered_appointment(1)).await;
    let theirs = theirs["id"].as_str().unwrap();
    let mine = book(&booked_here, &numbered_appointment(2)).await;
    let mine = mine["id"].as_str().unwrap();

    assert_eq!(
        get(&everything, &format!("Appointment/{mine}"), &[])
            .await
            .status(),
        200
    );
    assert_eq!(
        get(&booked_here, &format!("Appointment/{mine}"), &[])
            .await
            .status(),
        200
    );
    let refused = get(&booked_here, &format!("Appointment/{theirs}"), &[]).await;
    assert_eq!(refused.status(), 404);
    assert_outcome(&json_body(refused).await, "not-found", None);
    let search = |app: &TestApp| {
        app.client
            .get(format!(
                "{}/fhir/Appointment?patient=Patient/pat-1001",
                app.address
            ))
            .send()
    };
    let all = json_body(search(&everything).await.unwrap()).await;
    assert_eq!(all["entry"].as_array().unwrap().len(), 2);
    assert_eq!(all["total"], 2);
    let only = json_body(search(&booked_here).await.unwrap()).await;
    assert_eq!(only["entry"].as_array().unwrap().len(), 1);
    assert_eq!(only["entry"][0]["resource"]["id"], mine);
    assert!(only.get("total").is_none(), "{only}");

    // A record whose parent is not an Account is no patient appointment: nobody reads it.
    assert!(sandbox.edit_appointment(theirs, &json!({"ParentRecordType": "WorkOrder"})));
    assert_eq!(
        get(&everything, &format!("Appointment/{theirs}"), &[])
            .await
            .status(),
        404
    );
    let all = json_body(search(&everything).await.unwrap()).await;
    assert_eq!(all["total"], 1);
}
