//! Get Slots (`POST …/slots`) over real HTTP: the documented shapes, the rules, and the round
//! trip find a slot → book it → it is gone → cancel → it is back.

use super::*;

const SLOTS: &str = "/services/data/v65.0/connect/health/appointment-management/slots";
/// The practitioner of the samples; `ehr_sample`'s slots reference it.
const RESOURCE: &str = "0bSxx0000005JoaxxE";
/// The Get Slots example's resource id.
const OTHER_RESOURCE: &str = "0bSxx000000000xxAQ";

async fn get_slots(sandbox: &Sandbox, token: &str, body: &Value) -> (StatusCode, Value) {
    let auth = format!("Bearer {token}");
    let body = body.to_string();
    send(
        sandbox,
        reqwest::Method::POST,
        SLOTS,
        Some(&auth),
        body.as_bytes(),
    )
    .await
}

/// A request for `resources` between `start` and `end`, by visit type.
fn request(start: &str, end: &str, resources: &[&str]) -> Value {
    let resources: Vec<Value> = resources
        .iter()
        .map(|r| json!({"resourceId": r, "resourceType": "Provider"}))
        .collect();
    json!({
        "startDate": start,
        "endDate": end,
        "resources": resources,
        "workTypeId": "08qxx000000Axq6xxC",
        "channelId": "0eFxx000000NNOVxx0"
    })
}

/// One slot of the answer, as the documented example spells it.
fn slot(resource: &str, start: &str, end: &str) -> Value {
    let compact: String = start[..16]
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    json!({
        "slotId": format!("{resource}-{compact}"),
        "slotStartDate": start,
        "slotEndDate": end,
        "sourceSystem": null
    })
}

fn details(resource: &str, slots: Vec<Value>) -> Value {
    json!({"resourceId": resource, "availableSlots": slots})
}

#[test]
fn the_slot_helper_spells_ids_like_the_sandbox() {
    assert_eq!(
        slot(RESOURCE, "2025-09-20T09:00:00Z", "2025-09-20T09:30:00Z")["slotId"],
        "0bSxx0000005JoaxxE-20250920T0900"
    );
}

#[tokio::test]
async fn slots_for_one_resource_in_the_documented_shape() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    // 08:00–10:00: the day opens at 09:00.
    let (status, answer) = get_slots(
        &sandbox,
        &token,
        &request("2025-09-20T08:00:00Z", "2025-09-20T10:00:00Z", &[RESOURCE]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!({"resourceSlotDetails": [{
            "resourceId": "0bSxx0000005JoaxxE",
            "availableSlots": [
                {
                    "slotId": "0bSxx0000005JoaxxE-20250920T0900",
                    "slotStartDate": "2025-09-20T09:00:00Z",
                    "slotEndDate": "2025-09-20T09:30:00Z",
                    "sourceSystem": null
                },
                {
                    "slotId": "0bSxx0000005JoaxxE-20250920T0930",
                    "slotStartDate": "2025-09-20T09:30:00Z",
                    "slotEndDate": "2025-09-20T10:00:00Z",
                    "sourceSystem": null
                }
            ]
        }]})
    );

    // A whole day: sixteen slots, 09:00 to 17:00.
    let (status, answer) = get_slots(
        &sandbox,
        &token,
        &request("2025-09-20T00:00:00Z", "2025-09-21T00:00:00Z", &[RESOURCE]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let expected: Vec<Value> = (0..16)
        .map(|k| {
            let (h, m) = (9 + k / 2, 30 * (k % 2));
            let (eh, em) = (9 + (k + 1) / 2, 30 * ((k + 1) % 2));
            slot(
                RESOURCE,
                &format!("2025-09-20T{h:02}:{m:02}:00Z"),
                &format!("2025-09-20T{eh:02}:{em:02}:00Z"),
            )
        })
        .collect();
    assert_eq!(
        expected.last().unwrap()["slotEndDate"],
        "2025-09-20T17:00:00Z"
    );
    assert_eq!(
        answer,
        json!({"resourceSlotDetails": [details(RESOURCE, expected)]})
    );
    sandbox.stop().await;
}

#[tokio::test]
async fn slots_for_two_resources_in_the_order_asked() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    // The EHR way (codes and a source system), with every Resources Input field.
    let body = json!({
        "startDate": "2025-09-20T16:00:00Z",
        "endDate": "2025-09-20T18:00:00Z",
        "resources": [
            {
                "resourceId": OTHER_RESOURCE,
                "serviceTerritoryId": "0Hhxx0000000001xxA",
                "serviceResourceId": "0Hnxx0000000001xxA",
                "resourceType": "Provider",
                "assetCategory": "Imaging"
            },
            {"resourceId": RESOURCE, "resourceType": "device"}
        ],
        "appointmentTypes": ["FOLLOWUP"],
        "serviceTypes": ["serviceTypeCode1"],
        "serviceCategories": ["serviceCategoryCode1"],
        "sourceSystem": "Salesforce"
    });
    let (status, answer) = get_slots(&sandbox, &token, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let afternoon = |resource| {
        details(
            resource,
            vec![
                slot(resource, "2025-09-20T16:00:00Z", "2025-09-20T16:30:00Z"),
                slot(resource, "2025-09-20T16:30:00Z", "2025-09-20T17:00:00Z"),
            ],
        )
    };
    assert_eq!(
        answer,
        json!({"resourceSlotDetails": [afternoon(OTHER_RESOURCE), afternoon(RESOURCE)]})
    );
    sandbox.stop().await;
}

#[tokio::test]
async fn slots_key_switches_to_the_property_table_spelling() {
    let sandbox = start_with(SandboxSettings {
        slots_key: SlotsKey::ResourceSlots,
        ..SandboxSettings::default()
    });
    let token = fetch_token(&sandbox).await;
    let (status, answer) = get_slots(
        &sandbox,
        &token,
        &request("2025-09-20T09:00:00Z", "2025-09-20T09:30:00Z", &[RESOURCE]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!({"resourceSlots": [details(
            RESOURCE,
            vec![slot(RESOURCE, "2025-09-20T09:00:00Z", "2025-09-20T09:30:00Z")]
        )]})
    );
    sandbox.stop().await;
}

#[tokio::test]
async fn zone_less_dates_are_read_as_utc() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    // The Action page's own zone-less startDate; 09:30 would end after 09:45.
    let (status, answer) = get_slots(
        &sandbox,
        &token,
        &request(
            "2025-07-14T00:12:00.7912",
            "2025-07-14T09:45:00",
            &[RESOURCE],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let nine = json!({"resourceSlotDetails": [details(
        RESOURCE,
        vec![slot(RESOURCE, "2025-07-14T09:00:00Z", "2025-07-14T09:30:00Z")]
    )]});
    assert_eq!(answer, nine);
    // The same window with zones: 11:45 in Paris is 09:45 UTC.
    let (status, answer) = get_slots(
        &sandbox,
        &token,
        &request(
            "2025-07-14T02:12:00+02:00",
            "2025-07-14T11:45:00+02:00",
            &[RESOURCE],
        ),
    )
    .await;
    assert_eq!((status, answer), (StatusCode::OK, nine));
    sandbox.stop().await;
}

#[tokio::test]
async fn get_slots_enforces_its_rules() {
    fn with(name: &str, value: Value) -> Value {
        let mut body = request("2025-09-20T09:00:00Z", "2025-09-20T10:00:00Z", &[RESOURCE]);
        body[name] = value;
        body
    }
    fn without(name: &str) -> Value {
        let mut body = request("2025-09-20T09:00:00Z", "2025-09-20T10:00:00Z", &[RESOURCE]);
        body.as_object_mut().unwrap().remove(name);
        body
    }
    fn error(code: &str, field: &str, message: &str) -> Value {
        json!({"errorCode": code, "message": message, "fields": [field]})
    }
    let malformed = |i: usize, name: &str, id: &str| {
        error(
            "MALFORMED_ID",
            "resources",
            &format!(
                "resources[{i}].{name}: \"{id}\" is not a valid Salesforce id (15 or 18 letters \
                 and digits)"
            ),
        )
    };
    let mut codes_only = without("workTypeId");
    codes_only["serviceTypes"] = json!(["serviceTypeCode1"]);
    let source_required = error(
        "INVALID_INPUT",
        "sourceSystem",
        "sourceSystem is required when workTypeId is not provided",
    );

    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "no startDate",
            without("startDate"),
            json!([error("INVALID_INPUT", "startDate", "startDate is required")]),
        ),
        (
            "a date without a time",
            with("startDate", json!("2025-09-20")),
            json!([error(
                "INVALID_INPUT",
                "startDate",
                "startDate must be an ISO-8601 date-time, for example 2025-09-20T09:00:00Z \
                 (without a zone it is read as UTC); got \"2025-09-20\""
            )]),
        ),
        (
            "endDate before startDate",
            with("endDate", json!("2025-09-20T08:00:00Z")),
            json!([error(
                "INVALID_INPUT",
                "endDate",
                "endDate (2025-09-20 08:00:00 UTC) must be after startDate (2025-09-20 09:00:00 \
                 UTC)"
            )]),
        ),
        (
            "no resources",
            without("resources"),
            json!([error(
                "INVALID_INPUT",
                "resources",
                "resources is required by the sandbox, which has no catalogue to search: list \
                 the resources to find slots for, as [{\"resourceId\": \"0bS…\"}]"
            )]),
        ),
        (
            "no resource listed",
            with("resources", json!([])),
            json!([error(
                "INVALID_INPUT",
                "resources",
                "resources must list at least one resource"
            )]),
        ),
        (
            "resources not an array",
            with("resources", json!({"resourceId": RESOURCE})),
            json!([error(
                "INVALID_INPUT",
                "resources",
                "resources must be an array of {resourceId, serviceTerritoryId, \
                 serviceResourceId, resourceType, assetCategory} objects; got an object"
            )]),
        ),
        (
            "a resource as a bare id",
            with("resources", json!([RESOURCE])),
            json!([error(
                "INVALID_INPUT",
                "resources",
                "resources[0] must be an object with a resourceId; got a string"
            )]),
        ),
        (
            "no resourceId",
            with("resources", json!([{"resourceType": "Provider"}])),
            json!([error(
                "INVALID_INPUT",
                "resources",
                "resources[0].resourceId is required: the Healthcare Practitioner Facility id \
                 of a provider, or the Asset id of a device"
            )]),
        ),
        (
            "malformed ids in a resource",
            with(
                "resources",
                json!([
                    {"resourceId": RESOURCE},
                    {"resourceId": "Practitioner/0bSxx0000005JoaxxE", "serviceTerritoryId": "t-1"}
                ]),
            ),
            json!([
                malformed(1, "resourceId", "Practitioner/0bSxx0000005JoaxxE"),
                malformed(1, "serviceTerritoryId", "t-1")
            ]),
        ),
        (
            "resourceType not a string",
            with(
                "resources",
                json!([{"resourceId": RESOURCE, "resourceType": 1}]),
            ),
            json!([error(
                "INVALID_INPUT",
                "resources",
                "resources[0].resourceType must be a string; got a number"
            )]),
        ),
        (
            "the property table's assestCategory typo",
            with(
                "resources",
                json!([{"resourceId": RESOURCE, "assestCategory": "Imaging"}]),
            ),
            json!([{
                "errorCode": "JSON_PARSER_ERROR",
                "message": "Unrecognized field \"assestCategory\" in resources[0], not marked \
                            as ignorable"
            }]),
        ),
        (
            "specialties, which Get Slots does not take",
            with("specialties", json!(["cardiology"])),
            json!([{
                "errorCode": "JSON_PARSER_ERROR",
                "message": "Unrecognized field \"specialties\", not marked as ignorable"
            }]),
        ),
        (
            // §2.3: without a work type only a sourceSystem is required, not codes.
            "neither a work type nor a sourceSystem",
            without("workTypeId"),
            json!([source_required.clone()]),
        ),
        (
            "codes without sourceSystem",
            codes_only,
            json!([source_required]),
        ),
        (
            "serviceTypes as FHIR codings",
            with("serviceTypes", json!([{"code": "X"}])),
            json!([error(
                "INVALID_INPUT",
                "serviceTypes",
                "serviceTypes must be an array of strings (codes such as \"FOLLOWUP\"); \
                 appointmentTypes, serviceTypes, serviceCategories and specialties are arrays of \
                 strings, not objects: element 0 is an object"
            )]),
        ),
        (
            "malformed channelId",
            with("channelId", json!("web")),
            json!([error(
                "MALFORMED_ID",
                "channelId",
                "channelId: \"web\" is not a valid Salesforce id (15 or 18 letters and digits)"
            )]),
        ),
    ];

    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    for (name, body, expected) in cases {
        let (status, answer) = get_slots(&sandbox, &token, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {answer}");
        assert_eq!(answer, expected, "{name}");
    }

    // A sourceSystem stands in for the work type; no codes are needed.
    let mut by_source = without("workTypeId");
    by_source["sourceSystem"] = json!("Salesforce");
    let (status, answer) = get_slots(&sandbox, &token, &by_source).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let auth = format!("Bearer {token}");
    let (status, answer) = send(&sandbox, reqwest::Method::POST, SLOTS, Some(&auth), b"[]").await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::BAD_REQUEST,
            json!([{
                "errorCode": "JSON_PARSER_ERROR",
                "message": "Expected a JSON object at the top level of the request body"
            }])
        )
    );
    sandbox.stop().await;
}

#[tokio::test]
async fn a_booked_slot_leaves_the_answer_until_it_is_freed() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    let query = request(
        "2025-09-20T09:00:00Z",
        "2025-09-20T10:00:00Z",
        &[RESOURCE, OTHER_RESOURCE],
    );
    let (status, answer) = get_slots(&sandbox, &token, &query).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let first = &answer["resourceSlotDetails"][0]["availableSlots"][0];
    let slot_id = first["slotId"].as_str().unwrap().to_owned();
    assert_eq!(slot_id, "0bSxx0000005JoaxxE-20250920T0900");

    // Book it the way a client would: the slot's id and times, its resource as the reference.
    let mut body = ehr_sample(&slot_id);
    body["startDate"] = first["slotStartDate"].clone();
    body["endDate"] = first["slotEndDate"].clone();
    let (status, booked) = book(&sandbox, &token, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{booked}");
    let id = booked["id"].as_str().unwrap().to_owned();

    let nine_thirty = slot(RESOURCE, "2025-09-20T09:30:00Z", "2025-09-20T10:00:00Z");
    let nine = slot(RESOURCE, "2025-09-20T09:00:00Z", "2025-09-20T09:30:00Z");
    let other_resource = details(
        OTHER_RESOURCE,
        vec![
            slot(
                OTHER_RESOURCE,
                "2025-09-20T09:00:00Z",
                "2025-09-20T09:30:00Z",
            ),
            slot(
                OTHER_RESOURCE,
                "2025-09-20T09:30:00Z",
                "2025-09-20T10:00:00Z",
            ),
        ],
    );
    let (status, answer) = get_slots(&sandbox, &token, &query).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        json!({"resourceSlotDetails": [
            details(RESOURCE, vec![nine_thirty.clone()]),
            other_resource.clone()
        ]}),
        "only the booked resource's 09:00 is gone"
    );

    // Moving the appointment to 09:30 swaps which slot is free.
    let mut moved = ehr_sample("0bSxx0000005JoaxxE-20250920T0930");
    moved["id"] = json!(id);
    let (status, answer) = send(
        &sandbox,
        reqwest::Method::PUT,
        &format!("{BOOK}/{id}"),
        Some(&format!("Bearer {token}")),
        moved.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, answer) = get_slots(&sandbox, &token, &query).await;
    assert_eq!(
        answer,
        json!({"resourceSlotDetails": [
            details(RESOURCE, vec![nine.clone()]),
            other_resource.clone()
        ]})
    );

    // Cancelling gives it back.
    let (status, answer) = send(
        &sandbox,
        reqwest::Method::PATCH,
        &format!("{BOOK}/{id}"),
        Some(&format!("Bearer {token}")),
        json!({"id": id, "status": "Canceled"})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, answer) = get_slots(&sandbox, &token, &query).await;
    assert_eq!(
        answer,
        json!({"resourceSlotDetails": [
            details(RESOURCE, vec![nine, nine_thirty]),
            other_resource
        ]})
    );
    sandbox.stop().await;
}

#[tokio::test]
async fn long_windows_are_cut_at_fourteen_days_and_five_hundred_slots() {
    let sandbox = start();
    let token = fetch_token(&sandbox).await;
    let (status, answer) = get_slots(
        &sandbox,
        &token,
        &request(
            "2025-09-01T00:00:00Z",
            "2025-12-01T00:00:00Z",
            &[RESOURCE, OTHER_RESOURCE, "0bSxx0000005JobxxE"],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let lists = answer["resourceSlotDetails"].as_array().unwrap();
    let counts: Vec<usize> = lists
        .iter()
        .map(|r| r["availableSlots"].as_array().unwrap().len())
        .collect();
    assert_eq!(counts, [224, 224, 52], "14 days × 16, then 500 in all");
    assert_eq!(
        lists[0]["availableSlots"][223],
        slot(RESOURCE, "2025-09-14T16:30:00Z", "2025-09-14T17:00:00Z")
    );
    assert_eq!(
        lists[2]["availableSlots"][51],
        slot(
            "0bSxx0000005JobxxE",
            "2025-09-04T10:30:00Z",
            "2025-09-04T11:00:00Z"
        )
    );
    sandbox.stop().await;
}
