//! How the sandbox refuses: every violation at once, parser errors first, 401 for tokens that are
//! missing, unknown or expired, 404 for old API versions, a taken slot.

use super::*;

#[tokio::test]
async fn all_violations_are_reported_together() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    let body = json!({
        "participants": [{"reference": "Patient/bad"}],
        "comment": "x".repeat(300),
    });
    let (status, answer) = book(&sandbox, &token, &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let got: Vec<(&str, &str)> = answer
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["errorCode"].as_str().unwrap(),
                e["message"].as_str().unwrap(),
            )
        })
        .collect();
    let expected_starts = [
        ("INVALID_INPUT", "startDate is required"),
        ("MALFORMED_ID", "participants[0].reference: \"bad\""),
        (
            "INVALID_INPUT",
            "participants must include at least one Facility",
        ),
        (
            "INVALID_INPUT",
            "participants must include at least one Practitioner or Device",
        ),
        ("INVALID_INPUT", "One of workTypeId"),
        ("INVALID_INPUT", "sourceSystem is required"),
        ("INVALID_INPUT", "comment is 300 characters long"),
    ];
    assert_eq!(got.len(), expected_starts.len(), "{answer}");
    for ((code, message), (want_code, want_start)) in got.iter().zip(expected_starts) {
        assert_eq!(*code, want_code, "{message}");
        assert!(
            message.starts_with(want_start),
            "{message:?} vs {want_start:?}"
        );
    }
    assert_eq!(
        answer[0]["fields"],
        json!(["startDate"]),
        "fields name the culprit"
    );
    sandbox.stop().await;
}

#[tokio::test]
async fn parser_errors_come_before_validation() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    let auth = format!("Bearer {token}");
    let mut unknown_top = sample();
    unknown_top["foo"] = json!(1);
    unknown_top.as_object_mut().unwrap().remove("startDate"); // would be INVALID_INPUT
    let mut unknown_in_participant = sample();
    unknown_in_participant["participants"][0]["role"] = json!("patient");
    let mut unknown_in_slot = ehr_sample("s-1");
    unknown_in_slot["slots"][0]["start"] = json!("2013-12-10T09:00:00Z");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not JSON", b"not json".to_vec(), "Invalid JSON body"),
        ("empty", Vec::new(), "Invalid JSON body"),
        ("an array", b"[]".to_vec(), "Expected a JSON object"),
        (
            "unknown top-level field",
            unknown_top.to_string().into_bytes(),
            "Unrecognized field \"foo\"",
        ),
        (
            "unknown participant field",
            unknown_in_participant.to_string().into_bytes(),
            "Unrecognized field \"role\" in participants[0]",
        ),
        (
            "unknown slot field",
            unknown_in_slot.to_string().into_bytes(),
            "Unrecognized field \"start\" in slots[0]",
        ),
    ];
    for (name, body, message) in cases {
        let (status, answer) = book_at(&sandbox, BOOK, Some(&auth), &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
        let errors = answer.as_array().unwrap();
        assert_eq!(errors.len(), 1, "{name}: {answer}");
        assert_eq!(
            errors[0]["errorCode"], "JSON_PARSER_ERROR",
            "{name}: {answer}"
        );
        let text = errors[0]["message"].as_str().unwrap();
        assert!(text.contains(message), "{name}: {text:?}");
    }
    assert!(sandbox.bookings().is_empty());
    sandbox.stop().await;
}

#[tokio::test]
async fn missing_unknown_and_expired_tokens_get_401() {
    let sandbox = start();
    let body = sample().to_string();
    let unknown = "00DSANDBOX00000000!SBXnot-a-token";
    for auth in [
        None,
        Some(format!("Bearer {unknown}")),
        Some("Basic c2FuZGJveA==".to_owned()),
    ] {
        let (status, answer) = book_at(&sandbox, BOOK, auth.as_deref(), body.as_bytes()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(answer, invalid_session(), "{auth:?}");
    }

    let token = fetch_token(&sandbox).await;
    let (status, answer) = book(&sandbox, &token, &sample()).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    // The right token under a scheme Salesforce does not use is still refused.
    let (status, answer) = book_at(
        &sandbox,
        BOOK,
        Some(&format!("Token {token}")),
        body.as_bytes(),
    )
    .await;
    assert_eq!(
        (status, answer),
        (StatusCode::UNAUTHORIZED, invalid_session())
    );

    sandbox.expire_tokens();
    let (status, answer) = book(&sandbox, &token, &sample()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer, invalid_session());

    // The proxy's recovery: a new token works again.
    let fresh = fetch_token(&sandbox).await;
    let (status, answer) = book(&sandbox, &fresh, &sample()).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(sandbox.bookings().len(), 2, "refused calls booked nothing");
    assert_eq!(sandbox.token_requests(), 2);
    sandbox.stop().await;
}

#[tokio::test]
async fn tokens_expire_after_their_lifetime() {
    let sandbox = start_with(SandboxSettings {
        token_lifetime: Duration::from_millis(300),
        ..SandboxSettings::default()
    });
    let token = fetch_token(&sandbox).await;
    let (status, answer) = book(&sandbox, &token, &sample()).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, answer) = book(&sandbox, &token, &sample()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer, invalid_session());
    assert_eq!(sandbox.bookings().len(), 1);
    sandbox.stop().await;
}

#[tokio::test]
async fn unsupported_api_versions_are_not_found() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    let auth = format!("Bearer {token}");
    let body = sample().to_string();
    for version in ["v64.0", "v65", "65.0", "v65.00", "vABC.0", "v6.5"] {
        let path =
            format!("/services/data/{version}/connect/health/appointment-management/appointment");
        let (status, answer) = book_at(&sandbox, &path, Some(&auth), body.as_bytes()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{version}");
        assert_eq!(answer, not_found_body(), "{version}");
    }
    // Authentication comes first, as on Salesforce.
    let path = "/services/data/v64.0/connect/health/appointment-management/appointment";
    let (status, answer) = book_at(&sandbox, path, None, body.as_bytes()).await;
    assert_eq!(
        (status, answer),
        (StatusCode::UNAUTHORIZED, invalid_session())
    );
    assert!(sandbox.bookings().is_empty());
    sandbox.stop().await;
}

#[tokio::test]
async fn a_taken_slot_is_rejected_with_is_success_false() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    let slot = "24477854-21304876-62852027-2";
    let (status, first) = book(&sandbox, &token, &ehr_sample(slot)).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["isSuccess"], true);

    let (status, second) = book(&sandbox, &token, &ehr_sample(slot)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        second,
        json!({
            "id": null,
            "isSuccess": false,
            "status": "Rejected",
            "errorMessages": [format!("Slot {slot} is no longer available")]
        })
    );

    let (status, other) = book(&sandbox, &token, &ehr_sample("another-slot")).await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    let bookings = sandbox.bookings();
    assert_eq!(
        bookings.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(),
        [first["id"].as_str().unwrap(), other["id"].as_str().unwrap()],
        "the rejected booking was not kept"
    );
    sandbox.stop().await;
}
