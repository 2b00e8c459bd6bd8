//! End-to-end tests of the sandbox over real HTTP on 127.0.0.1:0 (no other network): the token
//! endpoint and Book here, Update and Cancel in `appointments`, Get Slots in `get_slots`, the JWT
//! bearer grant in `jwt_bearer`.

mod appointments;
mod get_slots;
mod jwt_bearer;
mod records;

use std::net::TcpListener;
use std::time::Duration;

use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};

use super::*;
use crate::id::is_record_id;

mod refusals;

const PATIENT: &str = "Patient/001xx000012udqQxxQ";
const PRACTITIONER: &str = "Practitioner/0bSxx0000005JoaxxE";
const FACILITY: &str = "Facility/001xx000012udqhxxA";
const BOOK: &str = "/services/data/v65.0/connect/health/appointment-management/appointment";

fn start_with(settings: SandboxSettings) -> Sandbox {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    Sandbox::start(listener, settings).expect("start sandbox")
}

fn start() -> Sandbox {
    start_with(SandboxSettings::default())
}

fn client() -> reqwest::Client {
    // No proxy: an HTTP_PROXY in the environment must not take loopback traffic elsewhere.
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// The Action page's sample (§1.4), with the docs' 19-character workTypeId replaced by a valid one.
fn sample() -> Value {
    json!({
        "workTypeId": "08qxx000000Axq6xxC",
        "channelId": "0eFxx000000NNOVxx0",
        "description": "Discussion",
        "startDate": "2025-07-21T18:00:00.000Z",
        "endDate": "2025-07-21T18:30:00.000Z",
        "comment": "Payload for the testing",
        "participants": [
            {"reference": PATIENT},
            {"reference": PRACTITIONER, "isReferenceRequired": true},
            {"reference": FACILITY}
        ]
    })
}

/// The Connect page's external-EHR sample (§1.4) with valid ids and a given slot id.
fn ehr_sample(slot: &str) -> Value {
    json!({
        "startDate": "2013-12-10T09:00:00Z",
        "endDate": "2013-12-10T11:00:00Z",
        "sourceSystem": "cerner",
        "comment": "...",
        "appointmentTypes": ["FOLLOWUP"],
        "serviceCategories": ["serviceCategoryCode1", "serviceCategoryCode2"],
        "serviceTypes": ["serviceTypeCode1", "serviceTypeCode2"],
        "specialties": ["specialityCode"],
        "slots": [{"id": slot, "reference": "0bSxx0000005JoaxxE"}],
        "participants": [
            {"reference": PATIENT},
            {"reference": FACILITY},
            {"reference": PRACTITIONER, "isReferenceRequired": true}
        ]
    })
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    assert_eq!(
        response
            .headers()
            .get("x-sandbox")
            .map(|v| v.to_str().unwrap()),
        Some("fhir-salesforce-proxy sandbox - not Salesforce"),
        "every response is labelled"
    );
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, value)
}

async fn post_form(sandbox: &Sandbox, form: &[(&str, &str)]) -> (StatusCode, Value) {
    json_of(
        client()
            .post(sandbox.token_url())
            .form(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn default_form() -> [(&'static str, &'static str); 3] {
    [
        ("grant_type", "client_credentials"),
        ("client_id", DEFAULT_CLIENT_ID),
        ("client_secret", DEFAULT_CLIENT_SECRET),
    ]
}

async fn fetch_token(sandbox: &Sandbox) -> String {
    let (status, body) = post_form(sandbox, &default_form()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Any method, any path, an optional `Authorization` value, a JSON body.
async fn send(
    sandbox: &Sandbox,
    method: reqwest::Method,
    path: &str,
    auth: Option<&str>,
    body: &[u8],
) -> (StatusCode, Value) {
    let mut request = client()
        .request(method, format!("{}{path}", sandbox.base_url()))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    json_of(request.send().await.unwrap()).await
}

async fn book_at(
    sandbox: &Sandbox,
    path: &str,
    auth: Option<&str>,
    body: &[u8],
) -> (StatusCode, Value) {
    let mut request = client()
        .post(format!("{}{path}", sandbox.base_url()))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    json_of(request.send().await.unwrap()).await
}

async fn book(sandbox: &Sandbox, token: &str, body: &Value) -> (StatusCode, Value) {
    book_at(
        sandbox,
        BOOK,
        Some(&format!("Bearer {token}")),
        body.to_string().as_bytes(),
    )
    .await
}

fn invalid_session() -> Value {
    json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
}

fn not_found_body() -> Value {
    json!([{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
}

#[tokio::test]
async fn root_says_it_is_not_salesforce_and_unknown_paths_are_not_found() {
    let sandbox = start();
    let response = client().get(sandbox.base_url()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["x-sandbox"],
        "fhir-salesforce-proxy sandbox - not Salesforce"
    );
    let text = response.text().await.unwrap();
    assert!(text.contains("This is NOT Salesforce"), "{text}");
    for endpoint in [
        "POST  /services/oauth2/token",
        "POST  .../appointment       Book Appointment",
        "PUT   .../appointment/{id}  Update Appointment",
        "PATCH .../appointment/{id}  Cancel Appointment",
        "POST  .../slots             Get Slots",
    ] {
        assert!(text.contains(endpoint), "{endpoint:?} listed in {text}");
    }

    for (method, path) in [
        (reqwest::Method::GET, "/services/data/v65.0/sobjects"),
        (reqwest::Method::GET, "/services/oauth2/token"),
        (reqwest::Method::GET, BOOK),
        (reqwest::Method::POST, "/"),
        // Update and Cancel have an id; the collection has neither PUT nor PATCH.
        (reqwest::Method::PUT, BOOK),
        (reqwest::Method::PATCH, BOOK),
        (
            reqwest::Method::DELETE,
            "/services/data/v65.0/connect/health/appointment-management/appointment/08pSB0000000001AAA",
        ),
        (
            reqwest::Method::GET,
            "/services/data/v65.0/connect/health/appointment-management/slots",
        ),
    ] {
        let response = client()
            .request(method.clone(), format!("{}{path}", sandbox.base_url()))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(body, not_found_body(), "{method} {path}");
    }
    sandbox.stop().await;
}

#[tokio::test]
async fn token_success_looks_like_salesforce_without_expires_in() {
    let sandbox = start();
    let response = client()
        .post(sandbox.token_url())
        .form(&default_form())
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let mut fields: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "access_token",
            "id",
            "instance_url",
            "issued_at",
            "scope",
            "signature",
            "token_type"
        ],
        "exactly Salesforce's fields, no expires_in"
    );
    assert_eq!(body["instance_url"], sandbox.base_url());
    assert_eq!(
        body["id"],
        format!(
            "{}/id/00DSANDBOX00000000/005SANDBOX00000000",
            sandbox.base_url()
        )
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "api");
    let issued_at: u128 = body["issued_at"].as_str().unwrap().parse().unwrap();
    let now = millis_since_epoch(SystemTime::now());
    assert!(
        now - 60_000 < issued_at && issued_at <= now,
        "milliseconds: {issued_at}"
    );
    assert_eq!(
        body["signature"].as_str().unwrap().len(),
        44,
        "Base64 of 32 bytes"
    );
    let first = body["access_token"].as_str().unwrap().to_owned();
    assert!(first.starts_with("00DSANDBOX00000000!"), "{first}");

    assert_eq!(body["instance_url"], sandbox.base_url());

    let second = fetch_token(&sandbox).await;
    assert_ne!(first, second, "tokens are unique");
    assert_eq!(sandbox.token_requests(), 2);
    sandbox.stop().await;
}

#[tokio::test]
async fn instance_url_follows_the_host_the_client_used() {
    let sandbox = start();
    let port = sandbox.base_url().rsplit(':').next().unwrap().to_owned();
    let response = client()
        .post(sandbox.token_url())
        .header("host", format!("localhost:{port}"))
        .form(&default_form())
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["instance_url"], format!("http://localhost:{port}"));
    sandbox.stop().await;
}

#[tokio::test]
async fn token_accepts_http_basic_client_authentication() {
    let sandbox = start();
    let response = client()
        .post(sandbox.token_url())
        .basic_auth(DEFAULT_CLIENT_ID, Some(DEFAULT_CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["access_token"].is_string(), "{body}");

    let response = client()
        .post(sandbox.token_url())
        .basic_auth(DEFAULT_CLIENT_ID, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_client", "{body}");
    sandbox.stop().await;
}

#[tokio::test]
async fn token_refuses_wrong_client_credentials() {
    let settings = SandboxSettings {
        client_id: "my-client".into(),
        client_secret: SecretString::from("my-secret"),
        ..SandboxSettings::default()
    };
    let sandbox = start_with(settings);
    let expected =
        json!({"error": "invalid_client", "error_description": "invalid client credentials"});
    for (id, secret) in [
        ("my-client", "wrong-secret"),
        ("wrong-client", "my-secret"),
        (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
    ] {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ];
        let (status, body) = post_form(&sandbox, &form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{id}/{secret}");
        assert_eq!(body, expected, "{id}/{secret}");
    }
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "my-client"),
        ("client_secret", "my-secret"),
    ];
    let (status, body) = post_form(&sandbox, &form).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "configured credentials work: {body}"
    );
    assert_eq!(sandbox.token_requests(), 4, "refused requests count too");
    sandbox.stop().await;
}

#[tokio::test]
async fn token_refuses_other_grant_types() {
    let sandbox = start();
    for grant in [
        "password",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "refresh_token",
    ] {
        let form = [
            ("grant_type", grant),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
        ];
        let (status, body) = post_form(&sandbox, &form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{grant}");
        assert_eq!(
            body,
            json!({"error": "unsupported_grant_type", "error_description": "grant type not supported"}),
            "{grant}"
        );
    }
    sandbox.stop().await;
}

#[tokio::test]
async fn token_refuses_missing_or_repeated_parameters() {
    let sandbox = start();
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[
                ("client_id", DEFAULT_CLIENT_ID),
                ("client_secret", DEFAULT_CLIENT_SECRET),
            ],
            "missing required parameter: grant_type",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_secret", DEFAULT_CLIENT_SECRET),
            ],
            "missing required parameter: client_id",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", DEFAULT_CLIENT_ID),
            ],
            "missing required parameter: client_secret",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", DEFAULT_CLIENT_ID),
                ("client_id", DEFAULT_CLIENT_ID),
                ("client_secret", DEFAULT_CLIENT_SECRET),
            ],
            "parameter client_id is repeated",
        ),
    ];
    for (form, description) in cases {
        let (status, body) = post_form(&sandbox, form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{description}");
        assert_eq!(
            body,
            json!({"error": "invalid_request", "error_description": description})
        );
    }

    // A JSON body carries no form parameters, as on Salesforce.
    let response = client()
        .post(sandbox.token_url())
        .json(
            &json!({"grant_type": "client_credentials", "client_id": DEFAULT_CLIENT_ID,
                      "client_secret": DEFAULT_CLIENT_SECRET}),
        )
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request", "{body}");
    assert_eq!(sandbox.token_requests(), 5);
    sandbox.stop().await;
}

#[tokio::test]
async fn books_the_documented_sample() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    let (status, body) = book(&sandbox, &token, &sample()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        body,
        json!({"id": id, "isSuccess": true, "status": "Scheduled", "error": []})
    );
    assert!(
        id.starts_with("08p") && id.len() == 18 && is_record_id(&id),
        "{id}"
    );
    assert_eq!(case_safe(&id[..15]), id, "case-safe suffix is right");

    // The older `OAuth` scheme, a Device instead of a Practitioner, a 256-character comment of
    // multi-byte characters (characters count, not bytes), and a later API version.
    let mut second = sample();
    second["participants"][1] = json!({"reference": "Device/02ixx0000000001xxA"});
    second["comment"] = json!("é".repeat(256));
    let (status, body) = book_at(
        &sandbox,
        "/services/data/v67.0/connect/health/appointment-management/appointment",
        Some(&format!("OAuth {token}")),
        second.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_ne!(body["id"], json!(id), "each booking gets a fresh id");

    let bookings = sandbox.bookings();
    assert_eq!(bookings.len(), 2);
    assert_eq!(
        bookings[0],
        Booking {
            id,
            request: sample()
        }
    );
    assert_eq!(bookings[1].request, second);
    assert_eq!(json!(bookings[1].id), body["id"]);
    assert_eq!(sandbox.token_requests(), 1, "one token serves many calls");
    sandbox.stop().await;
}

#[tokio::test]
async fn every_validation_rule_is_enforced() {
    fn without(name: &str) -> Value {
        let mut body = sample();
        body.as_object_mut().unwrap().remove(name);
        body
    }
    fn with(name: &str, value: Value) -> Value {
        let mut body = sample();
        body[name] = value;
        body
    }
    fn participants(list: &[Value]) -> Value {
        with("participants", Value::Array(list.to_vec()))
    }
    fn plus_participant(extra: Value) -> Value {
        let mut body = sample();
        body["participants"].as_array_mut().unwrap().push(extra);
        body
    }
    let patient = json!({"reference": PATIENT});
    let practitioner = json!({"reference": PRACTITIONER});
    let facility = json!({"reference": FACILITY});
    let mut no_work_type = without("workTypeId");
    no_work_type["appointmentTypes"] = json!(["FOLLOWUP"]);
    let mut nothing_booked = without("workTypeId");
    nothing_booked["sourceSystem"] = json!("cerner");
    nothing_booked["specialties"] = json!(["cardiology"]);

    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "no startDate",
            without("startDate"),
            "INVALID_INPUT",
            "startDate is required",
        ),
        (
            "null startDate",
            with("startDate", Value::Null),
            "INVALID_INPUT",
            "startDate is required",
        ),
        (
            "startDate without zone",
            with("startDate", json!("2025-07-21T18:00:00")),
            "INVALID_INPUT",
            "startDate must be an ISO-8601 date-time with a time zone",
        ),
        (
            "startDate a number",
            with("startDate", json!(5)),
            "INVALID_INPUT",
            "startDate must be a string",
        ),
        (
            "endDate not a date",
            with("endDate", json!("tomorrow")),
            "INVALID_INPUT",
            "endDate must be an ISO-8601 date-time with a time zone",
        ),
        (
            "endDate before startDate",
            with("endDate", json!("2025-07-21T17:00:00Z")),
            "INVALID_INPUT",
            "must be after startDate",
        ),
        (
            "endDate equal to startDate, other zone",
            with("endDate", json!("2025-07-21T20:00:00+02:00")),
            "INVALID_INPUT",
            "must be after startDate",
        ),
        (
            "no participants",
            without("participants"),
            "INVALID_INPUT",
            "participants is required",
        ),
        (
            "participants not an array",
            with("participants", json!({"reference": PATIENT})),
            "INVALID_INPUT",
            "participants must be an array",
        ),
        (
            "participant not an object",
            plus_participant(json!(PATIENT)),
            "INVALID_INPUT",
            "participants[3] must be an object",
        ),
        (
            "participant without reference",
            plus_participant(json!({"isReferenceRequired": true})),
            "INVALID_INPUT",
            "participants[3].reference is required",
        ),
        (
            "reference without kind",
            plus_participant(json!({"reference": "001xx000012udqhxxA"})),
            "INVALID_INPUT",
            "participants[3].reference must be \"Kind/id\"",
        ),
        (
            "unknown kind",
            plus_participant(json!({"reference": "Location/001xx000012udqhxxA"})),
            "INVALID_INPUT",
            "unknown kind \"Location\"",
        ),
        (
            "malformed participant id",
            participants(&[
                json!({"reference": "Patient/001xx"}),
                practitioner.clone(),
                facility.clone(),
            ]),
            "MALFORMED_ID",
            "participants[0].reference: \"001xx\" is not a valid Salesforce id",
        ),
        (
            "isReferenceRequired not a boolean",
            participants(&[
                patient.clone(),
                json!({"reference": PRACTITIONER, "isReferenceRequired": "yes"}),
                facility.clone(),
            ]),
            "INVALID_INPUT",
            "participants[1].isReferenceRequired must be true or false",
        ),
        (
            "two patients",
            participants(&[
                patient.clone(),
                patient.clone(),
                practitioner.clone(),
                facility.clone(),
            ]),
            "INVALID_INPUT",
            "exactly one Patient; found 2",
        ),
        (
            "no patient",
            participants(&[practitioner.clone(), facility.clone()]),
            "INVALID_INPUT",
            "exactly one Patient; found 0",
        ),
        (
            "no facility",
            participants(&[patient.clone(), practitioner.clone()]),
            "INVALID_INPUT",
            "at least one Facility",
        ),
        (
            "no practitioner or device",
            participants(&[patient.clone(), facility.clone()]),
            "INVALID_INPUT",
            "at least one Practitioner or Device",
        ),
        (
            "the docs' 19-character workTypeId",
            with("workTypeId", json!("08qxxG000000Axq6xxC")),
            "MALFORMED_ID",
            "workTypeId: \"08qxxG000000Axq6xxC\" is not a valid Salesforce id",
        ),
        (
            "malformed channelId",
            with("channelId", json!("channel-1")),
            "MALFORMED_ID",
            "channelId: \"channel-1\" is not a valid Salesforce id",
        ),
        (
            "serviceTypes as FHIR codings",
            with(
                "serviceTypes",
                json!([{"code": "X", "system": "http://example.org"}]),
            ),
            "INVALID_INPUT",
            "serviceTypes must be an array of strings",
        ),
        (
            "appointmentTypes not an array",
            with("appointmentTypes", json!("FOLLOWUP")),
            "INVALID_INPUT",
            "appointmentTypes must be an array of strings",
        ),
        (
            "serviceCategories of objects",
            with("serviceCategories", json!([{"code": "C"}])),
            "INVALID_INPUT",
            "are arrays of strings, not objects",
        ),
        (
            "specialties of numbers",
            with("specialties", json!([1])),
            "INVALID_INPUT",
            "specialties must be an array of strings",
        ),
        (
            "nothing says what to book",
            nothing_booked,
            "INVALID_INPUT",
            "One of workTypeId, appointmentTypes, serviceTypes or serviceCategories is required",
        ),
        (
            "codes without sourceSystem",
            no_work_type,
            "INVALID_INPUT",
            "sourceSystem is required when workTypeId is not provided",
        ),
        (
            "comment too long",
            with("comment", json!("x".repeat(257))),
            "INVALID_INPUT",
            "comment is 257 characters long; the maximum is 256",
        ),
        (
            "comment not a string",
            with("comment", json!(["c"])),
            "INVALID_INPUT",
            "comment must be a string",
        ),
        (
            "description not a string",
            with("description", json!(5)),
            "INVALID_INPUT",
            "description must be a string",
        ),
        (
            "slots not an array",
            with("slots", json!("s1")),
            "INVALID_INPUT",
            "slots must be an array",
        ),
        (
            "slot without reference",
            with("slots", json!([{"id": "s1"}])),
            "INVALID_INPUT",
            "slots[0] must be an object with non-empty string id and reference",
        ),
    ];

    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    for (name, body, code, message) in cases {
        let (status, answer) = book(&sandbox, &token, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {answer}");
        let errors = answer
            .as_array()
            .unwrap_or_else(|| panic!("{name}: {answer}"));
        assert_eq!(errors.len(), 1, "{name}: exactly one violation: {answer}");
        assert_eq!(errors[0]["errorCode"], code, "{name}: {answer}");
        let text = errors[0]["message"].as_str().unwrap();
        assert!(
            text.contains(message),
            "{name}: {text:?} should contain {message:?}"
        );
    }
    assert!(sandbox.bookings().is_empty(), "nothing invalid was booked");
    sandbox.stop().await;
}

#[tokio::test]
async fn stop_closes_the_port() {
    let sandbox = start();
    let url = sandbox.base_url();
    assert!(client().get(&url).send().await.is_ok());
    sandbox.stop().await;
    let fresh = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    assert!(
        fresh.get(&url).send().await.is_err(),
        "nothing listens after stop"
    );
}

#[test]
fn start_outside_a_runtime_is_an_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let error = Sandbox::start(listener, SandboxSettings::default()).unwrap_err();
    assert!(error.to_string().contains("tokio runtime"), "{error}");
}

#[test]
fn base_url_reads_an_unspecified_address_as_loopback() {
    assert_eq!(
        base_url_of("0.0.0.0:8081".parse().unwrap()),
        "http://127.0.0.1:8081"
    );
    assert_eq!(
        base_url_of("[::]:8081".parse().unwrap()),
        "http://[::1]:8081"
    );
    assert_eq!(
        base_url_of("127.0.0.1:9".parse().unwrap()),
        "http://127.0.0.1:9"
    );
}

#[test]
fn versions_from_65_0_are_supported() {
    for ok in ["v65.0", "v66.0", "v67.0", "v100.0"] {
        assert!(supported_version(ok), "{ok}");
    }
    for bad in [
        "v64.0", "v65", "65.0", "v65.00", "v.0", "v6.5", "v1000.0", "v65.x", "",
    ] {
        assert!(!supported_version(bad), "{bad}");
    }
}

#[test]
fn appointment_ids_are_valid_case_safe_and_distinct() {
    let a = mint_appointment_id(1);
    let b = mint_appointment_id(62);
    assert_eq!(&a[..15], "08pSB0000000001");
    assert_eq!(&b[..15], "08pSB0000000010");
    for id in [&a, &b] {
        assert!(is_record_id(id) && id.len() == 18, "{id}");
        assert_eq!(&case_safe(&id[..15]), id);
    }
    assert_ne!(a, b);
}

#[test]
fn default_settings_match_the_constants() {
    let settings = SandboxSettings::default();
    assert_eq!(settings.client_id, "sandbox-client");
    assert_eq!(settings.client_secret.expose_secret(), "sandbox-secret");
    assert_eq!(settings.token_lifetime, Duration::from_secs(7200));
    assert_eq!(settings.cancel_statuses, ["Canceled"]);
    assert_eq!(settings.slots_key, SlotsKey::ResourceSlotDetails);
    assert_eq!(settings.slots_key.field_name(), "resourceSlotDetails");
    assert_eq!(SlotsKey::ResourceSlots.field_name(), "resourceSlots");
    assert!(
        !format!("{settings:?}").contains("sandbox-secret"),
        "secret is redacted"
    );
}
