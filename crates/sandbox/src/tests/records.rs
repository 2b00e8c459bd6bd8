//! The ServiceAppointment records behind bookings, read with SOQL `query` (and its
//! `nextRecordsUrl` paging), the sObject GET, and changed with PATCH as a Salesforce user would.

use reqwest::Method;

use super::*;

const SELECT: &str = "SELECT Id, Status, StatusCategory, SchedStartTime, SchedEndTime, \
    WorkTypeId, Description, Comments, CancellationReason, ParentRecordId, ParentRecordType, \
    LastModifiedDate, SystemModstamp, (SELECT Id, HealthcarePractitionerFacilityId, \
    HealthcarePractitionerFacility.AccountId, IsRequired FROM CarePractnFacilityAppts) \
    FROM ServiceAppointment";

async fn soql(sandbox: &Sandbox, token: &str, statement: &str) -> (StatusCode, Value) {
    let url = url::Url::parse_with_params(
        &format!("{}/services/data/v65.0/query", sandbox.base_url()),
        [("q", statement)],
    )
    .unwrap();
    json_of(client().get(url).bearer_auth(token).send().await.unwrap()).await
}

async fn get(sandbox: &Sandbox, token: &str, path: &str) -> (StatusCode, Value) {
    send(
        sandbox,
        Method::GET,
        path,
        Some(&format!("Bearer {token}")),
        b"",
    )
    .await
}

/// Books the sample at `start` (an hour long) for `patient`; returns the id.
async fn book_for(sandbox: &Sandbox, token: &str, patient: &str, start: &str) -> String {
    let mut body = sample();
    let begin = chrono::DateTime::parse_from_rfc3339(start).unwrap();
    body["startDate"] = json!(start);
    body["endDate"] = json!((begin + chrono::Duration::hours(1)).to_rfc3339());
    body["participants"][0]["reference"] = json!(format!("Patient/{patient}"));
    let (status, answer) = book(sandbox, token, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    answer["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_booking_is_a_service_appointment_with_its_practitioner_junction() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    let (_, booked) = book(&sandbox, &token, &sample()).await;
    let id = booked["id"].as_str().unwrap();
    let (status, answer) = soql(&sandbox, &token, &format!("{SELECT} WHERE Id = '{id}'")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["totalSize"], 1);
    assert_eq!(answer["done"], true);
    assert!(answer.get("nextRecordsUrl").is_none(), "{answer}");
    let record = &answer["records"][0];
    assert_eq!(record["attributes"]["type"], "ServiceAppointment");
    assert_eq!(
        record["attributes"]["url"],
        format!("/services/data/v65.0/sobjects/ServiceAppointment/{id}")
    );
    assert_eq!(record["Id"], id);
    assert_eq!(record["Status"], "Scheduled");
    assert_eq!(record["StatusCategory"], "Scheduled");
    // Salesforce's own datetime form: milliseconds and +0000.
    assert_eq!(record["SchedStartTime"], "2025-07-21T18:00:00.000+0000");
    assert_eq!(record["SchedEndTime"], "2025-07-21T18:30:00.000+0000");
    assert_eq!(record["WorkTypeId"], "08qxx000000Axq6xxC");
    assert_eq!(record["Description"], "Discussion");
    assert_eq!(record["Comments"], "Payload for the testing");
    assert_eq!(record["ParentRecordId"], "001xx000012udqQxxQ");
    assert_eq!(record["ParentRecordType"], "Account");
    assert_eq!(record["CancellationReason"], Value::Null);
    let junctions = &record["CarePractnFacilityAppts"];
    assert_eq!(junctions["totalSize"], 1, "{junctions}");
    let junction = &junctions["records"][0];
    assert_eq!(junction["attributes"]["type"], "CarePractnFacilityAppt");
    assert_eq!(
        junction["HealthcarePractitionerFacilityId"],
        "0bSxx0000005JoaxxE"
    );
    assert_eq!(junction["IsRequired"], true);
    assert_eq!(
        junction["HealthcarePractitionerFacility"]["AccountId"],
        "001xx000012udqhxxA"
    );

    // The same record through the sObject GET, only the fields asked for.
    let (status, flat) = get(
        &sandbox,
        &token,
        &format!("/services/data/v65.0/sobjects/ServiceAppointment/{id}?fields=Id,Status"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{flat}");
    assert_eq!(flat["Id"], id);
    assert_eq!(flat["Status"], "Scheduled");
    assert!(flat.get("SchedStartTime").is_none(), "{flat}");
    let (status, missing) = get(
        &sandbox,
        &token,
        "/services/data/v65.0/sobjects/ServiceAppointment/08pSB0000000999AAA",
    )
    .await;
    assert_eq!((status, missing), (StatusCode::NOT_FOUND, not_found_body()));
}

#[tokio::test]
async fn cancelling_and_a_users_change_show_in_the_record() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    let first = book_for(
        &sandbox,
        &token,
        "001xx000012udqQxxQ",
        "2025-07-21T09:00:00Z",
    )
    .await;
    let second = book_for(
        &sandbox,
        &token,
        "001xx000012udqQxxQ",
        "2025-07-21T11:00:00Z",
    )
    .await;
    let (status, answer) = send(
        &sandbox,
        Method::PATCH,
        &format!("/services/data/v65.0/connect/health/appointment-management/appointment/{first}"),
        Some(&format!("Bearer {token}")),
        json!({"id": first, "status": "Canceled", "cancellationReason": "Patient request"})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // A Salesforce user moves the second one and marks it completed.
    let response = client()
        .patch(format!(
            "{}/services/data/v65.0/sobjects/ServiceAppointment/{second}",
            sandbox.base_url()
        ))
        .bearer_auth(&token)
        .json(&json!({"Status": "Completed", "SchedStartTime": "2025-07-22T10:00:00.000+0000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let (_, answer) = soql(
        &sandbox,
        &token,
        &format!("{SELECT} WHERE Id IN ('{first}', '{second}') ORDER BY SchedStartTime DESC"),
    )
    .await;
    let records = answer["records"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{answer}");
    assert_eq!(records[0]["Id"], second.as_str());
    assert_eq!(records[0]["Status"], "Completed");
    assert_eq!(records[0]["StatusCategory"], "Completed");
    assert_eq!(records[0]["SchedStartTime"], "2025-07-22T10:00:00.000+0000");
    assert_eq!(records[1]["Id"], first.as_str());
    assert_eq!(records[1]["Status"], "Canceled");
    assert_eq!(records[1]["StatusCategory"], "Canceled");
    assert_eq!(records[1]["CancellationReason"], "Patient request");

    assert!(sandbox.edit_appointment(&first, &json!({"Comments": "rebooked by phone"})));
    // An org's own Status value keeps the category the record had.
    assert!(sandbox.edit_appointment(&second, &json!({"Status": "Arrived at desk"})));
    let (_, own) = soql(
        &sandbox,
        &token,
        &format!("SELECT Status, StatusCategory FROM ServiceAppointment WHERE Id = '{second}'"),
    )
    .await;
    assert_eq!(own["records"][0]["Status"], "Arrived at desk");
    assert_eq!(own["records"][0]["StatusCategory"], "Completed");
    assert!(!sandbox.edit_appointment("08pSB0000000999AAA", &json!({"Comments": "x"})));
    let (_, answer) = soql(
        &sandbox,
        &token,
        &format!("SELECT Comments FROM ServiceAppointment WHERE Id = '{first}'"),
    )
    .await;
    assert_eq!(answer["records"][0]["Comments"], "rebooked by phone");
}

#[tokio::test]
async fn searches_filter_sort_limit_count_and_page_with_next_records_urls() {
    let sandbox = start_with(SandboxSettings {
        query_batch_size: 2,
        ..SandboxSettings::default()
    });
    let token = fetch_token(&sandbox).await;
    let patient = "001xx000012udqQxxQ";
    let other = "001xx000012udqRxxQ";
    let mut ids = Vec::new();
    for hour in ["09", "10", "11", "12", "13"] {
        ids.push(
            book_for(
                &sandbox,
                &token,
                patient,
                &format!("2025-07-21T{hour}:00:00Z"),
            )
            .await,
        );
    }
    book_for(&sandbox, &token, other, "2025-07-21T14:00:00Z").await;

    let statement = format!(
        "SELECT Id FROM ServiceAppointment WHERE ParentRecordId = '{patient}' AND \
         SchedStartTime >= 2025-07-21T10:00:00Z AND SchedStartTime < 2025-07-22T00:00:00Z \
         AND Id IN (SELECT ServiceAppointmentId FROM CarePractnFacilityAppt WHERE \
         HealthcarePractitionerFacilityId IN ('0bSxx0000005JoaxxE')) ORDER BY SchedStartTime, Id"
    );
    let (status, page) = soql(&sandbox, &token, &statement).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        page["totalSize"], 4,
        "every match counts, not only this batch"
    );
    assert_eq!(page["done"], false);
    let mut seen: Vec<String> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_owned())
        .collect();
    let mut next = page["nextRecordsUrl"].as_str().unwrap().to_owned();
    assert!(next.starts_with("/services/data/v65.0/query/01g"), "{next}");
    loop {
        let (status, page) = get(&sandbox, &token, &next).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(
            page["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["Id"].as_str().unwrap().to_owned()),
        );
        match page["nextRecordsUrl"].as_str() {
            Some(url) => next = url.to_owned(),
            None => {
                assert_eq!(page["done"], true);
                break;
            }
        }
    }
    assert_eq!(seen, ids[1..].to_vec());
    // A locator can be read again; one the sandbox never gave cannot.
    let (status, again) = get(&sandbox, &token, &next).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["records"][0]["Id"], ids[3].as_str());
    let (status, body) = get(
        &sandbox,
        &token,
        "/services/data/v65.0/query/01gSB0000000999AAA-2",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body[0]["errorCode"], "INVALID_QUERY_LOCATOR");

    let (_, limited) = soql(
        &sandbox,
        &token,
        &format!("SELECT Id FROM ServiceAppointment WHERE ParentRecordId = '{patient}' ORDER BY SchedStartTime DESC LIMIT 1"),
    )
    .await;
    assert_eq!(limited["totalSize"], 1);
    assert_eq!(limited["records"][0]["Id"], ids[4].as_str());
    let (_, counted) = soql(
        &sandbox,
        &token,
        &format!("SELECT COUNT() FROM ServiceAppointment WHERE ParentRecordId = '{patient}'"),
    )
    .await;
    assert_eq!(counted["totalSize"], 5);
    assert_eq!(counted["records"], json!([]));
    let (_, either) = soql(
        &sandbox,
        &token,
        &format!("SELECT Id FROM ServiceAppointment WHERE (ParentRecordId = '{other}' OR Status = 'Completed')"),
    )
    .await;
    assert_eq!(either["totalSize"], 1);
}

#[tokio::test]
async fn string_literals_are_read_with_soql_escapes_and_cannot_break_out() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    let id = book_for(
        &sandbox,
        &token,
        "001xx000012udqQxxQ",
        "2025-07-21T09:00:00Z",
    )
    .await;
    assert!(sandbox.edit_appointment(&id, &json!({"Comments": "O'Brien \\ 50%_off\nnext"})));
    let (status, found) = soql(
        &sandbox,
        &token,
        "SELECT Id FROM ServiceAppointment WHERE Comments = 'O\\'Brien \\\\ 50%_off\\nnext'",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["totalSize"], 1);
    // The quote inside the literal is data: this finds nothing rather than everything.
    let (status, none) = soql(
        &sandbox,
        &token,
        "SELECT Id FROM ServiceAppointment WHERE Comments = 'x\\' OR Id != \\'x'",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{none}");
    assert_eq!(none["totalSize"], 0);
    let (_, liked) = soql(
        &sandbox,
        &token,
        "SELECT Id FROM ServiceAppointment WHERE Comments LIKE '%50\\%\\_off%'",
    )
    .await;
    assert_eq!(liked["totalSize"], 1, "{liked}");
}

#[tokio::test]
async fn statements_it_cannot_read_are_refused_like_salesforce_refuses_them() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    for statement in [
        "SELECT Id FROM ServiceAppointment WHERE Comments = 'x' OR Id = 'y'",
        "SELECT Id FROM ServiceAppointment WHERE Comments = 'unterminated",
        "SELECT Id FROM ServiceAppointment WHERE Comments = '\\q'",
        "SELECT Id FROM ServiceAppointment WHERE Comments = '50\\%'",
        "SELECT Id FROM Account",
        "SELECT Id FROM ServiceAppointment; DELETE",
        "SELECT Id FROM ServiceAppointment WHERE SchedStartTime > 2025-13-45T00:00:00Z",
        "DELETE FROM ServiceAppointment",
        "SELECT Id FROM ServiceAppointment WHERE Id IN (SELECT ServiceAppointmentId FROM \
         CarePractnFacilityAppt WHERE IsRequired = TRUE) AND Id IN (SELECT ServiceAppointmentId \
         FROM CarePractnFacilityAppt WHERE IsRequired = TRUE) AND Id IN (SELECT \
         ServiceAppointmentId FROM CarePractnFacilityAppt WHERE IsRequired = TRUE)",
    ] {
        let (status, body) = soql(&sandbox, &token, statement).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{statement}: {body}");
        assert_eq!(
            body[0]["errorCode"], "MALFORMED_QUERY",
            "{statement}: {body}"
        );
    }
    let (status, body) = soql(&sandbox, &token, "SELECT Nope__c FROM ServiceAppointment").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body[0]["errorCode"], "INVALID_FIELD");
    // A token first, as for every /services/data call.
    let (status, body) = send(
        &sandbox,
        Method::GET,
        "/services/data/v65.0/query?q=SELECT+Id+FROM+ServiceAppointment",
        None,
        b"",
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, invalid_session())
    );
    assert_eq!(sandbox.query_requests(), 11);
    assert_eq!(sandbox.queries().len(), 10);
}
