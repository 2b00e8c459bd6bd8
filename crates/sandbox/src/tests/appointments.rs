//! Update (`PUT …/appointment/{id}`) and Cancel (`PATCH …/appointment/{id}`) over real HTTP,
//! with the stored state read back through [`Sandbox::appointment`] and
//! [`Sandbox::cancellations`].

use super::*;

fn at(id: &str) -> String {
    format!("{BOOK}/{id}")
}

async fn put(sandbox: &Sandbox, token: &str, id: &str, body: &Value) -> (StatusCode, Value) {
    let auth = format!("Bearer {token}");
    let body = body.to_string();
    send(
        sandbox,
        reqwest::Method::PUT,
        &at(id),
        Some(&auth),
        body.as_bytes(),
    )
    .await
}

async fn patch(sandbox: &Sandbox, token: &str, id: &str, body: &Value) -> (StatusCode, Value) {
    let auth = format!("Bearer {token}");
    let body = body.to_string();
    send(
        sandbox,
        reqwest::Method::PATCH,
        &at(id),
        Some(&auth),
        body.as_bytes(),
    )
    .await
}

/// Books `body`, insisting it works, and returns the new id.
async fn booked(sandbox: &Sandbox, token: &str, body: &Value) -> String {
    let (status, answer) = book(sandbox, token, body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    answer["id"].as_str().unwrap().to_owned()
}

/// `body` as an Update of appointment `id`.
fn update_of(id: &str, mut body: Value) -> Value {
    body["id"] = json!(id);
    body
}

/// The Connect page's Update sample times (§2.1) on the Action page's Book sample.
fn rescheduled(id: &str) -> Value {
    let mut body = update_of(id, sample());
    body["startDate"] = json!("2025-09-20T00:15:00Z");
    body["endDate"] = json!("2025-09-20T00:45:00Z");
    body["timeZone"] = json!("America/Indiana/Indianapolis");
    body
}

fn cancel_body(id: &str, status: &str) -> Value {
    json!({
        "id": id,
        "status": status,
        "cancellationReason": "Patient requested cancellation.",
        "comment": "Patient will call back to reschedule."
    })
}

fn scheduled(id: &str, request: Value) -> StoredAppointment {
    StoredAppointment {
        id: id.to_owned(),
        request,
        status: "Scheduled".to_owned(),
        cancelled: false,
        cancellation: None,
    }
}

fn rejected(id: Option<&str>, slot: &str) -> Value {
    json!({
        "id": id,
        "isSuccess": false,
        "status": "Rejected",
        "errorMessages": [format!("Slot {slot} is no longer available")]
    })
}

fn invalid_input(field: &str, message: &str) -> Value {
    json!([{"errorCode": "INVALID_INPUT", "message": message, "fields": [field]}])
}

fn no_such_appointment(id: &str) -> Value {
    json!([{
        "errorCode": "NOT_FOUND",
        "message": format!("The requested resource does not exist: no appointment has id {id}")
    }])
}

#[tokio::test]
async fn update_reschedules_and_answers_with_the_action_array() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    let id = booked(&sandbox, &token, &sample()).await;
    let other = booked(&sandbox, &token, &ehr_sample("slot-other")).await;

    let body = rescheduled(&id);
    let (status, answer) = put(&sandbox, &token, &id, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!([{"id": id, "isSuccess": true, "status": "Scheduled", "errorMessages": []}])
    );
    assert_eq!(sandbox.appointment(&id), Some(scheduled(&id, body)));
    assert_eq!(
        sandbox.appointment(&other),
        Some(scheduled(&other, ehr_sample("slot-other"))),
        "the other appointment is untouched"
    );
    assert_eq!(
        sandbox.bookings()[0],
        Booking {
            id: id.clone(),
            request: sample()
        },
        "the booking log keeps what was booked"
    );

    // Salesforce takes the 15-character form of an id in a URL; the body's id must equal it.
    let short = &id[..15];
    let mut again = update_of(short, sample());
    again["comment"] = json!("second update");
    let (status, answer) = put(&sandbox, &token, short, &again).await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::OK,
            json!([{"id": id, "isSuccess": true, "status": "Scheduled", "errorMessages": []}])
        )
    );
    assert_eq!(sandbox.appointment(short), Some(scheduled(&id, again)));
    assert!(sandbox.cancellations().is_empty());
    sandbox.stop().await;
}

#[tokio::test]
async fn update_of_an_unknown_id_is_not_found() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    let id = booked(&sandbox, &token, &sample()).await;
    // Well-formed but never booked, a 15-character form of nothing, and not an id at all.
    let never = mint_appointment_id(9);
    for unknown in [never.as_str(), &never[..15], "not-an-id"] {
        let (status, answer) = put(&sandbox, &token, unknown, &rescheduled(unknown)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}");
        assert_eq!(answer, no_such_appointment(unknown), "{unknown}");
    }
    assert_eq!(sandbox.appointment(&never), None);
    assert_eq!(sandbox.appointment(&id), Some(scheduled(&id, sample())));
    sandbox.stop().await;
}

#[tokio::test]
async fn update_refuses_another_id_a_missing_end_and_every_book_rule() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    let id = booked(&sandbox, &token, &sample()).await;
    let other = booked(&sandbox, &token, &ehr_sample("s-1")).await;

    let mut no_id = rescheduled(&id);
    no_id.as_object_mut().unwrap().remove("id");
    let mut no_end = rescheduled(&id);
    no_end.as_object_mut().unwrap().remove("endDate");
    let mut numeric_id = rescheduled(&id);
    numeric_id["id"] = json!(8);
    let cases = [
        (
            "a body for another appointment",
            rescheduled(&other),
            invalid_input(
                "id",
                &format!("id \"{other}\" does not match the appointment id in the URL, \"{id}\""),
            ),
        ),
        (
            "no id",
            no_id,
            invalid_input(
                "id",
                &format!("id is required and must equal the appointment id in the URL, \"{id}\""),
            ),
        ),
        (
            "id not a string",
            numeric_id,
            invalid_input("id", "id must be a string; got a number"),
        ),
        (
            "no endDate (required on Update)",
            no_end,
            invalid_input("endDate", "endDate is required"),
        ),
    ];
    for (name, body, expected) in cases {
        let (status, answer) = put(&sandbox, &token, &id, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(answer, expected, "{name}");
    }

    // Book's rules, word for word: the same violation gets the same answer from both.
    let mut long_comment = sample();
    long_comment["comment"] = json!("x".repeat(257));
    let mut codings = sample();
    codings["serviceTypes"] = json!([{"code": "X", "system": "http://example.org"}]);
    let mut no_patient = sample();
    no_patient["participants"] = json!([{"reference": PRACTITIONER}, {"reference": FACILITY}]);
    let mut bad_work_type = sample();
    bad_work_type["workTypeId"] = json!("08qxxG000000Axq6xxC");
    let mut slot_without_reference = ehr_sample("s-2");
    slot_without_reference["slots"] = json!([{"id": "s-2"}]);
    for (name, violating) in [
        ("comment too long", long_comment),
        ("codings", codings),
        ("no patient", no_patient),
        ("19-character workTypeId", bad_work_type),
        ("slot without reference", slot_without_reference),
    ] {
        let (book_status, book_answer) = book(&sandbox, &token, &violating).await;
        let (status, answer) = put(&sandbox, &token, &id, &update_of(&id, violating)).await;
        assert_eq!(
            (status, book_status),
            (StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST),
            "{name}"
        );
        assert_eq!(answer, book_answer, "{name}");
        assert!(
            answer.as_array().is_some_and(|errors| !errors.is_empty()),
            "{name}: {answer}"
        );
    }

    // The parser stage too: an unknown field fails the parse, and `id` is known to Update only.
    let mut unknown = rescheduled(&id);
    unknown["reason"] = json!("moved");
    let (status, answer) = put(&sandbox, &token, &id, &unknown).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer,
        json!([{
            "errorCode": "JSON_PARSER_ERROR",
            "message": "Unrecognized field \"reason\", not marked as ignorable"
        }])
    );
    let (status, answer) = book(&sandbox, &token, &update_of(&id, sample())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer,
        json!([{
            "errorCode": "JSON_PARSER_ERROR",
            "message": "Unrecognized field \"id\", not marked as ignorable"
        }]),
        "Book has no id field"
    );

    assert_eq!(
        sandbox.appointment(&id),
        Some(scheduled(&id, sample())),
        "nothing refused changed it"
    );
    assert_eq!(sandbox.bookings().len(), 2);
    sandbox.stop().await;
}

#[tokio::test]
async fn update_into_a_slot_held_by_another_appointment_is_rejected() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    let first = booked(&sandbox, &token, &ehr_sample("slot-a")).await;
    let second = booked(&sandbox, &token, &ehr_sample("slot-b")).await;

    let (status, answer) = put(
        &sandbox,
        &token,
        &second,
        &update_of(&second, ehr_sample("slot-a")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, rejected(Some(&second), "slot-a"));
    assert_eq!(
        sandbox.appointment(&second),
        Some(scheduled(&second, ehr_sample("slot-b"))),
        "a rejected update changes nothing"
    );
    // …and the second appointment still holds its own slot.
    let (status, answer) = book(&sandbox, &token, &ehr_sample("slot-b")).await;
    assert_eq!((status, answer), (StatusCode::OK, rejected(None, "slot-b")));

    // Keeping one's own slot is no conflict.
    let mut same_slot = update_of(&first, ehr_sample("slot-a"));
    same_slot["comment"] = json!("same slot, new comment");
    let (status, answer) = put(&sandbox, &token, &first, &same_slot).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer[0]["isSuccess"], true, "{answer}");
    assert_eq!(
        sandbox.appointment(&first),
        Some(scheduled(&first, same_slot))
    );
    sandbox.stop().await;
}

#[tokio::test]
async fn update_frees_the_slots_the_appointment_no_longer_lists() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    let id = booked(&sandbox, &token, &ehr_sample("slot-1")).await;

    let moved = update_of(&id, ehr_sample("slot-2"));
    let (status, answer) = put(&sandbox, &token, &id, &moved).await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::OK,
            json!([{"id": id, "isSuccess": true, "status": "Scheduled", "errorMessages": []}])
        )
    );
    assert_eq!(sandbox.appointment(&id), Some(scheduled(&id, moved)));

    // slot-1 is free again; slot-2 is now taken.
    let (status, answer) = book(&sandbox, &token, &ehr_sample("slot-1")).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, answer) = book(&sandbox, &token, &ehr_sample("slot-2")).await;
    assert_eq!((status, answer), (StatusCode::OK, rejected(None, "slot-2")));

    // An update listing no slots at all frees them all.
    let mut no_slots = update_of(&id, ehr_sample("unused"));
    no_slots.as_object_mut().unwrap().remove("slots");
    let (status, answer) = put(&sandbox, &token, &id, &no_slots).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = book(&sandbox, &token, &ehr_sample("slot-2")).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    sandbox.stop().await;
}

#[tokio::test]
async fn a_cancelled_appointment_cannot_be_updated() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    let id = booked(&sandbox, &token, &ehr_sample("slot-1")).await;
    let cancel = cancel_body(&id, "Canceled");
    let (status, answer) = patch(&sandbox, &token, &id, &cancel).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let (status, answer) = put(&sandbox, &token, &id, &update_of(&id, ehr_sample("slot-1"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        json!({
            "id": id,
            "isSuccess": false,
            "status": "Canceled",
            "errorMessages": [format!("Appointment {id} is cancelled (Canceled) and cannot be updated")]
        })
    );
    assert_eq!(
        sandbox.appointment(&id),
        Some(StoredAppointment {
            id: id.clone(),
            request: ehr_sample("slot-1"),
            status: "Canceled".to_owned(),
            cancelled: true,
            cancellation: Some(cancel),
        })
    );
    // The refused update did not take the slot back.
    let (status, answer) = book(&sandbox, &token, &ehr_sample("slot-1")).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    sandbox.stop().await;
}

#[tokio::test]
async fn cancel_with_the_default_status_cancels_and_says_so() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    let id = booked(&sandbox, &token, &ehr_sample("slot-1")).await;
    let kept = booked(&sandbox, &token, &sample()).await;

    let body = cancel_body(&id, "Canceled");
    let (status, answer) = patch(&sandbox, &token, &id, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!({"id": id, "isSuccess": true, "status": "Canceled", "errorMessages": []})
    );
    assert_eq!(
        sandbox.appointment(&id),
        Some(StoredAppointment {
            id: id.clone(),
            request: ehr_sample("slot-1"),
            status: "Canceled".to_owned(),
            cancelled: true,
            cancellation: Some(body),
        })
    );
    assert_eq!(sandbox.appointment(&kept), Some(scheduled(&kept, sample())));
    assert_eq!(sandbox.cancellations(), [id.as_str()]);

    // The Connect page's minimal body, `{id, status}`, by the 15-character id.
    let short = &kept[..15];
    let minimal = json!({"id": short, "status": "Canceled"});
    let (status, answer) = patch(&sandbox, &token, short, &minimal).await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::OK,
            json!({"id": kept, "isSuccess": true, "status": "Canceled", "errorMessages": []})
        )
    );
    assert_eq!(sandbox.cancellations(), [id, kept.clone()]);
    assert_eq!(
        sandbox.appointment(&kept).unwrap().cancellation,
        Some(minimal)
    );
    sandbox.stop().await;
}

#[tokio::test]
async fn cancel_status_must_be_exactly_a_configured_one() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    let id = booked(&sandbox, &token, &sample()).await;
    for word in [
        "Cancelled",
        "canceled",
        "CANCELED",
        " Canceled",
        "Scheduled",
    ] {
        let (status, answer) = patch(&sandbox, &token, &id, &cancel_body(&id, word)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{word:?}");
        assert_eq!(
            answer,
            json!([{
                "errorCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                "message": format!(
                    "status: bad value for restricted picklist field: {word} (this org's \
                     cancellation statuses: Canceled)"
                ),
                "fields": ["status"]
            }]),
            "{word:?}"
        );
    }
    assert_eq!(sandbox.appointment(&id), Some(scheduled(&id, sample())));
    assert!(sandbox.cancellations().is_empty());
    sandbox.stop().await;

    // An org spelling it the Action page's way.
    let sandbox = start_with(SandboxSettings {
        cancel_statuses: vec!["Cancelled".to_owned(), "Cancelled by patient".to_owned()],
        ..SandboxSettings::default()
    });
    let token = fetch_token(&sandbox).await;
    let id = booked(&sandbox, &token, &sample()).await;
    let (status, answer) = patch(&sandbox, &token, &id, &cancel_body(&id, "Canceled")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer,
        json!([{
            "errorCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            "message": "status: bad value for restricted picklist field: Canceled (this org's \
                        cancellation statuses: Cancelled, Cancelled by patient)",
            "fields": ["status"]
        }])
    );
    let (status, answer) = patch(
        &sandbox,
        &token,
        &id,
        &cancel_body(&id, "Cancelled by patient"),
    )
    .await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::OK,
            json!({"id": id, "isSuccess": true, "status": "Cancelled by patient", "errorMessages": []})
        )
    );
    assert_eq!(
        sandbox.appointment(&id).unwrap().status,
        "Cancelled by patient"
    );
    sandbox.stop().await;
}

#[tokio::test]
async fn cancel_refuses_malformed_bodies_and_unknown_ids() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    let id = booked(&sandbox, &token, &sample()).await;
    let other = booked(&sandbox, &token, &ehr_sample("s-1")).await;

    let cases = [
        (
            "another appointment's id",
            cancel_body(&other, "Canceled"),
            invalid_input(
                "id",
                &format!("id \"{other}\" does not match the appointment id in the URL, \"{id}\""),
            ),
        ),
        (
            "no status",
            json!({"id": id}),
            invalid_input(
                "status",
                "status is required: the cancellation status to set (one of: Canceled)",
            ),
        ),
        (
            "null status",
            json!({"id": id, "status": null}),
            invalid_input(
                "status",
                "status is required: the cancellation status to set (one of: Canceled)",
            ),
        ),
        (
            "status not a string",
            json!({"id": id, "status": true}),
            invalid_input("status", "status must be a string; got a boolean"),
        ),
        (
            "cancellationReason as a FHIR CodeableConcept",
            json!({"id": id, "status": "Canceled", "cancellationReason": {"coding": []}}),
            invalid_input(
                "cancellationReason",
                "cancellationReason must be a string; got an object",
            ),
        ),
        (
            "every problem at once",
            json!({"status": "cancelled", "comment": 1}),
            json!([
                {
                    "errorCode": "INVALID_INPUT",
                    "message": format!(
                        "id is required and must equal the appointment id in the URL, \"{id}\""
                    ),
                    "fields": ["id"]
                },
                {
                    "errorCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    "message": "status: bad value for restricted picklist field: cancelled \
                                (this org's cancellation statuses: Canceled)",
                    "fields": ["status"]
                },
                {
                    "errorCode": "INVALID_INPUT",
                    "message": "comment must be a string; got a number",
                    "fields": ["comment"]
                }
            ]),
        ),
        (
            "a FHIR-style field",
            json!({"id": id, "status": "Canceled", "cancelationReason": "pat"}),
            json!([{
                "errorCode": "JSON_PARSER_ERROR",
                "message": "Unrecognized field \"cancelationReason\", not marked as ignorable"
            }]),
        ),
    ];
    for (name, body, expected) in cases {
        let (status, answer) = patch(&sandbox, &token, &id, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(answer, expected, "{name}");
    }

    let never = mint_appointment_id(7);
    let (status, answer) = patch(&sandbox, &token, &never, &cancel_body(&never, "Canceled")).await;
    assert_eq!(
        (status, answer),
        (StatusCode::NOT_FOUND, no_such_appointment(&never))
    );

    assert_eq!(sandbox.appointment(&id), Some(scheduled(&id, sample())));
    assert!(sandbox.cancellations().is_empty());
    sandbox.stop().await;
}

#[tokio::test]
async fn cancelling_twice_is_not_successful_the_second_time() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    let id = booked(&sandbox, &token, &sample()).await;
    let first = cancel_body(&id, "Canceled");
    let (status, answer) = patch(&sandbox, &token, &id, &first).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let second = json!({"id": id, "status": "Canceled", "comment": "again"});
    let (status, answer) = patch(&sandbox, &token, &id, &second).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        json!({
            "id": id,
            "isSuccess": false,
            "status": "Canceled",
            "errorMessages": [format!("Appointment {id} is already cancelled (Canceled)")]
        })
    );
    assert_eq!(sandbox.cancellations(), [id.as_str()], "cancelled once");
    assert_eq!(
        sandbox.appointment(&id).unwrap().cancellation,
        Some(first),
        "the first cancellation is the one kept"
    );
    sandbox.stop().await;
}

#[tokio::test]
async fn cancel_frees_the_slot_for_another_booking() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    let slot = "24477854-21304876-62852027-2";
    let id = booked(&sandbox, &token, &ehr_sample(slot)).await;
    let (status, answer) = book(&sandbox, &token, &ehr_sample(slot)).await;
    assert_eq!((status, answer), (StatusCode::OK, rejected(None, slot)));

    let (status, answer) = patch(&sandbox, &token, &id, &cancel_body(&id, "Canceled")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = book(&sandbox, &token, &ehr_sample(slot)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let again = answer["id"].as_str().unwrap();
    assert_ne!(again, id, "a new appointment, not the old one revived");
    assert_eq!(
        sandbox.appointment(again),
        Some(scheduled(again, ehr_sample(slot)))
    );
    assert!(sandbox.appointment(&id).unwrap().cancelled);
    sandbox.stop().await;
}

#[tokio::test]
async fn the_new_endpoints_need_a_live_token_then_a_version() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    let id = booked(&sandbox, &token, &ehr_sample("slot-1")).await;
    let slots_path = "/services/data/v65.0/connect/health/appointment-management/slots";
    let slots_body = json!({
        "startDate": "2025-09-20T09:00:00Z",
        "endDate": "2025-09-20T10:00:00Z",
        "resources": [{"resourceId": "0bSxx0000005JoaxxE"}],
        "workTypeId": "08qxx000000Axq6xxC"
    });
    let calls = [
        (reqwest::Method::PUT, at(&id), rescheduled(&id)),
        (
            reqwest::Method::PATCH,
            at(&id),
            cancel_body(&id, "Canceled"),
        ),
        (reqwest::Method::POST, slots_path.to_owned(), slots_body),
    ];

    sandbox.expire_tokens();
    for (method, path, body) in &calls {
        let body = body.to_string();
        for auth in [
            None,
            Some(format!("Bearer {token}")), // expired
            Some("Bearer 00DSANDBOX00000000!SBXnot-a-token".to_owned()),
        ] {
            let (status, answer) = send(
                &sandbox,
                method.clone(),
                path,
                auth.as_deref(),
                body.as_bytes(),
            )
            .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {auth:?}");
            assert_eq!(answer, invalid_session(), "{method} {auth:?}");
        }
        // Authentication comes before the version check, as on Salesforce.
        let old = path.replace("/v65.0/", "/v64.0/");
        let (status, answer) = send(&sandbox, method.clone(), &old, None, body.as_bytes()).await;
        assert_eq!(
            (status, answer),
            (StatusCode::UNAUTHORIZED, invalid_session()),
            "{method}"
        );
    }

    let fresh = format!("Bearer {}", fetch_token(&sandbox).await);
    for (method, path, body) in &calls {
        let old = path.replace("/v65.0/", "/v64.0/");
        let body = body.to_string();
        let (status, answer) = send(
            &sandbox,
            method.clone(),
            &old,
            Some(&fresh),
            body.as_bytes(),
        )
        .await;
        assert_eq!(
            (status, answer),
            (StatusCode::NOT_FOUND, not_found_body()),
            "{method} {old}"
        );
    }
    assert_eq!(
        sandbox.appointment(&id),
        Some(scheduled(&id, ehr_sample("slot-1"))),
        "no refused call changed anything"
    );
    assert!(sandbox.cancellations().is_empty());
    sandbox.stop().await;
}
