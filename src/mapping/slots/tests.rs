use serde_json::{Value, json};

use super::*;
use crate::mapping::EXAMPLE_MAPPING;
use crate::salesforce::wire::AvailableSlot;

const PRACTITIONER: &str = "0bSxx0000005JoaxxE";
const DEVICE: &str = "02ixx0000000001AAA";
const WORK_TYPE: &str = "08qxx000000Axq6xxC";
const CHANNEL: &str = "0eFxx000000NNOVxx0";
const V2_0276: &str = "http://terminology.hl7.org/CodeSystem/v2-0276";
const SERVICE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/service-type";

fn example() -> Mapping {
    Mapping::from_toml(EXAMPLE_MAPPING, "mappings/example.toml").unwrap()
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn query(text: &str) -> SlotQuery {
    SlotQuery::parse(text).unwrap_or_else(|i| panic!("{text}: {i:?}"))
}

fn encoded(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn refused(text: &str) -> Issue {
    SlotQuery::parse(text).expect_err(text)
}

#[test]
fn start_values_cover_their_precision_and_prefixes_make_bounds() {
    // (value, lower bound, upper bound)
    let cases: &[(&str, Option<&str>, Option<&str>)] = &[
        ("ge2025-09-20", Some("2025-09-20T00:00:00Z"), None),
        ("gt2025-09-20", Some("2025-09-21T00:00:00Z"), None),
        (
            "2025-09-20",
            Some("2025-09-20T00:00:00Z"),
            Some("2025-09-21T00:00:00Z"),
        ),
        (
            "eq2025-09",
            Some("2025-09-01T00:00:00Z"),
            Some("2025-10-01T00:00:00Z"),
        ),
        (
            "eq2025",
            Some("2025-01-01T00:00:00Z"),
            Some("2026-01-01T00:00:00Z"),
        ),
        ("lt2025-09-21", None, Some("2025-09-21T00:00:00Z")),
        ("le2025-09-21", None, Some("2025-09-22T00:00:00Z")),
        ("ge2025-09-20T09:00", Some("2025-09-20T09:00:00Z"), None),
        ("gt2025-09-20T09:00", Some("2025-09-20T09:01:00Z"), None),
        ("gt2025-09-20T09:00:00Z", Some("2025-09-20T09:00:01Z"), None),
        (
            "ge2025-09-20T09:00:00.250Z",
            Some("2025-09-20T09:00:00.250Z"),
            None,
        ),
        (
            "ge2025-09-20T11:00:00+02:00",
            Some("2025-09-20T09:00:00Z"),
            None,
        ),
        // `+` decoded to a space by the query string.
        (
            "ge2025-09-20T11:00:00 02:00",
            Some("2025-09-20T09:00:00Z"),
            None,
        ),
        (
            "ge2025-09-20T04:00:00-05:00",
            Some("2025-09-20T09:00:00Z"),
            None,
        ),
        // No zone: UTC.
        ("ge2025-09-20T09:00:00", Some("2025-09-20T09:00:00Z"), None),
    ];
    for (value, lower, upper) in cases {
        let q = query(&encoded(&[("start", value)]));
        assert_eq!(q.lower_bound(), lower.map(at), "{value}");
        assert_eq!(q.upper_bound(), upper.map(at), "{value}");
    }
    // Repeats are ANDed: the narrowest window wins.
    let q = query("start=ge2025-09-19&start=ge2025-09-20&start=lt2025-09-23&start=le2025-09-21");
    assert_eq!(q.lower_bound(), Some(at("2025-09-20T00:00:00Z")));
    assert_eq!(q.upper_bound(), Some(at("2025-09-22T00:00:00Z")));
    assert!(q.matches_start(at("2025-09-21T23:59:00Z")));
    assert!(!q.matches_start(at("2025-09-22T00:00:00Z")));
    assert!(!q.matches_start(at("2025-09-19T12:00:00Z")));
}

#[test]
fn malformed_or_unsupported_start_values_are_refused() {
    let cases: &[(&str, IssueCode)] = &[
        ("2025-9-20", IssueCode::Invalid),
        ("2025-02-30", IssueCode::Invalid),
        ("ge20250920", IssueCode::Invalid),
        ("ge2025-09-20T9:00", IssueCode::Invalid),
        ("ge2025-09-20T25:00", IssueCode::Invalid),
        ("ge2025-09-20T09:00:00+2", IssueCode::Invalid),
        ("ge2025-09-20T09:00:00+15:00", IssueCode::Invalid),
        ("xx2025-09-20", IssueCode::Invalid),
        ("tomorrow", IssueCode::Invalid),
        ("ne2025-09-20", IssueCode::NotSupported),
        ("ap2025-09-20", IssueCode::NotSupported),
        ("ge2025-09-20,ge2025-09-21", IssueCode::NotSupported),
    ];
    for (value, code) in cases {
        let issue = refused(&encoded(&[("start", value)]));
        assert_eq!(issue.code, *code, "{value}: {issue:?}");
        assert!(issue.diagnostics.contains("start"), "{value}: {issue:?}");
        assert!(!issue.diagnostics.contains(value), "{value} echoed");
    }
}

#[test]
fn unknown_parameters_and_modifiers_are_refused_by_name() {
    let issue = refused("start=ge2025-09-20&patient=Patient/123");
    assert_eq!(issue.code, IssueCode::NotSupported);
    assert!(issue.diagnostics.contains("`patient`"), "{issue:?}");
    assert!(!issue.diagnostics.contains("123"));

    let issue = refused("start:missing=true");
    assert_eq!(issue.code, IssueCode::NotSupported);
    assert!(issue.diagnostics.contains("modifiers"), "{issue:?}");

    let issue = refused("%3Cscript%3E=1");
    assert!(!issue.diagnostics.contains("<script>"), "{issue:?}");

    // Format parameters and empty values are not search criteria.
    let q = query("_format=json&_pretty=true&start=&status=&schedule.actor=");
    assert_eq!(q, SlotQuery::default());
}

#[test]
fn tokens_actors_and_statuses_are_read() {
    let q = query(&encoded(&[
        ("schedule.actor", "Practitioner/a,Practitioner/b"),
        ("schedule.actor", "Device/c"),
        ("service-type", "http://s|1,http://s|2"),
        ("appointment-type", &format!("{V2_0276}|FOLLOWUP")),
        ("status", "http://hl7.org/fhir/slotstatus|busy,free"),
    ]));
    assert_eq!(q.actors, ["Practitioner/a", "Practitioner/b", "Device/c"]);
    assert_eq!(
        q.service_types,
        [
            Token {
                system: "http://s".into(),
                code: "1".into()
            },
            Token {
                system: "http://s".into(),
                code: "2".into()
            },
        ]
    );
    assert_eq!(q.appointment_types[0].code, "FOLLOWUP");
    assert_eq!(q.statuses, ["busy", "free"]);
    assert!(q.wants_free());

    for (text, code) in [
        ("service-type=124", IssueCode::Invalid),
        ("appointment-type=http://s|", IssueCode::Invalid),
        ("status=open", IssueCode::Value),
        ("status=http://other|free", IssueCode::Value),
    ] {
        assert_eq!(refused(text).code, code, "{text}");
    }
}

#[test]
fn only_free_slots_in_a_non_empty_window_can_match() {
    assert!(query("start=ge2025-09-20").can_match());
    assert!(!query("start=ge2025-09-20&status=busy").can_match());
    assert!(query("start=ge2025-09-20&status=busy,free").can_match());
    assert!(!query("start=ge2025-09-21&start=lt2025-09-21").can_match());
}

fn search(extra: &[(&str, &str)]) -> SlotQuery {
    let mut pairs = vec![
        ("start", "ge2025-09-20"),
        ("start", "lt2025-09-21"),
        ("schedule.actor", "Practitioner/0bSxx0000005JoaxxE"),
    ];
    pairs.extend_from_slice(extra);
    query(&encoded(&pairs))
}

fn wire(request: &GetSlotsRequest) -> Value {
    serde_json::to_value(request).unwrap()
}

#[test]
fn a_work_type_rule_picks_work_type_and_channel() {
    let follow_up = format!("{V2_0276}|FOLLOWUP");
    let request = slots_request(&search(&[("appointment-type", &follow_up)]), &example()).unwrap();
    assert_eq!(
        wire(&request),
        json!({
            "startDate": "2025-09-20T00:00:00.000Z",
            "endDate": "2025-09-21T00:00:00.000Z",
            "resources": [{"resourceId": PRACTITIONER, "resourceType": "Provider"}],
            "workTypeId": WORK_TYPE,
            "channelId": CHANNEL
        })
    );
}

#[test]
fn without_a_work_type_codes_go_out_translated_with_the_source_system() {
    let general = format!("{SERVICE_TYPE}|124");
    let walk_in = format!("{V2_0276}|WALKIN");
    let request = slots_request(
        &search(&[("service-type", &general), ("appointment-type", &walk_in)]),
        &example(),
    )
    .unwrap();
    assert_eq!(request.work_type_id, None);
    assert_eq!(request.service_types, ["GENERAL_PRACTICE"]);
    assert_eq!(request.appointment_types, ["WALK_IN"]);
    assert_eq!(request.source_system.as_deref(), Some("cerner"));
    assert_eq!(request.channel_id.as_deref(), Some(CHANNEL));
}

#[test]
fn actors_resolve_like_participants() {
    let mapping = Mapping::from_toml(
        &format!(
            "[defaults]\nsource_system = \"ehr\"\n[work_types]\ndefault = \"{WORK_TYPE}\"\n\
             [[ids.table]]\nreference = \"PractitionerRole/dr-who\"\nsalesforce_id = \"{PRACTITIONER}\"\n"
        ),
        "t.toml",
    )
    .unwrap();
    let request = slots_request(
        &query(&encoded(&[
            ("start", "ge2025-09-20T09:00:00Z"),
            (
                "schedule.actor",
                "https://ehr.example/fhir/PractitionerRole/dr-who",
            ),
            ("schedule.actor", &format!("Device/{DEVICE}")),
            // The same provider twice is asked for once.
            ("schedule.actor", &format!("Practitioner/{PRACTITIONER}")),
        ])),
        &mapping,
    )
    .unwrap();
    assert_eq!(
        wire(&request),
        json!({
            "startDate": "2025-09-20T09:00:00.000Z",
            "resources": [
                {"resourceId": PRACTITIONER, "resourceType": "Provider"},
                {"resourceId": DEVICE, "resourceType": "Asset"}
            ],
            "workTypeId": WORK_TYPE
        })
    );
}

#[test]
fn schedules_name_salesforce_resources_and_categories_pick_work_types_or_codes() {
    const CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/service-category";
    let mapping = Mapping::from_toml(
        &format!(
            "[defaults]\nsource_system = \"ehr\"\n\
             [codes.service_category]\nsystems = [\"{CATEGORY}\"]\ntranslate = {{ \"17\" = \"GP\" }}\n\
             [[work_types.rule]]\nelement = \"serviceCategory\"\nsystem = \"{CATEGORY}\"\ncode = \"35\"\n\
             work_type_id = \"{WORK_TYPE}\"\n"
        ),
        "t.toml",
    )
    .unwrap();
    let by_code = slots_request(
        &query(&encoded(&[
            ("start", "ge2025-09-20"),
            (
                "schedule",
                &format!("Schedule/{PRACTITIONER},Schedule/{DEVICE}"),
            ),
            // The same resource named twice is asked for once.
            (
                "schedule",
                &format!("https://p.example/fhir/Schedule/{PRACTITIONER}"),
            ),
            ("service-category", &format!("{CATEGORY}|17")),
        ])),
        &mapping,
    )
    .unwrap();
    assert_eq!(
        wire(&by_code),
        json!({
            "startDate": "2025-09-20T00:00:00.000Z",
            "resources": [{"resourceId": PRACTITIONER}, {"resourceId": DEVICE}],
            "serviceCategories": ["GP"],
            "sourceSystem": "ehr"
        })
    );

    let by_rule = slots_request(
        &query(&encoded(&[
            ("start", "ge2025-09-20"),
            ("schedule", &format!("Schedule/{PRACTITIONER}")),
            ("service-category", &format!("{CATEGORY}|35")),
        ])),
        &mapping,
    )
    .unwrap();
    assert_eq!(by_rule.work_type_id.as_deref(), Some(WORK_TYPE));

    for bad in [
        "Schedule/not-a-salesforce-id",
        &format!("Practitioner/{PRACTITIONER}"),
    ] {
        let found = problems(
            &query(&encoded(&[("start", "ge2025-09-20"), ("schedule", bad)])),
            &mapping,
        );
        assert_eq!(found[0].0, IssueCode::Invalid, "{bad}: {found:?}");
        assert!(found[0].1.contains("schedule value 1"), "{found:?}");
        assert!(!found[0].1.contains("not-a-salesforce-id"));
    }
}

fn problems(query: &SlotQuery, mapping: &Mapping) -> Vec<(IssueCode, String)> {
    slots_request(query, mapping)
        .expect_err("the mapping should fail")
        .into_iter()
        .map(|i| {
            assert_eq!(i.expression, None, "search issues name parameters");
            (i.code, i.diagnostics)
        })
        .collect()
}

#[test]
fn every_problem_is_reported_naming_the_parameter_not_the_value() {
    let follow_up = format!("{V2_0276}|FOLLOWUP");
    let found = problems(
        &query(&encoded(&[
            ("start", "lt2025-09-21"),
            ("schedule.actor", "Practitioner/secret-doctor-42"),
            ("schedule.actor", "Location/001xx000012udqhxxA"),
            ("schedule.actor", "secret-doctor-43"),
            ("appointment-type", &follow_up),
        ])),
        &example(),
    );
    let codes: Vec<IssueCode> = found.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        codes,
        [
            IssueCode::Required,
            IssueCode::NotFound,
            IssueCode::NotSupported,
            IssueCode::Invalid
        ]
    );
    assert!(found[0].1.contains("start"));
    assert!(
        found[1].1.contains("schedule.actor value 1"),
        "{}",
        found[1].1
    );
    assert!(found[2].1.contains("Location"), "{}", found[2].1);
    assert!(
        found[3].1.contains("schedule.actor value 3"),
        "{}",
        found[3].1
    );
    for (_, diagnostics) in &found {
        assert!(!diagnostics.contains("secret"), "{diagnostics}");
    }

    // No visit code is no problem (Get Slots does not need one); no actor is.
    let found = problems(&query("start=ge2025-09-20"), &example());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, IssueCode::Required);
    assert!(found[0].1.contains("schedule.actor"));
}

#[test]
fn rejected_codes_and_a_missing_source_system_are_business_problems() {
    let mapping = Mapping::from_toml(
        &format!("[codes.service_type]\nsystems = [\"{SERVICE_TYPE}\"]\nunmapped = \"reject\"\n"),
        "t.toml",
    )
    .unwrap();
    let found = problems(
        &search(&[("service-type", &format!("{SERVICE_TYPE}|999"))]),
        &mapping,
    );
    let codes: Vec<IssueCode> = found.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, [IssueCode::CodeInvalid, IssueCode::BusinessRule]);
    assert!(found[0].1.contains("service-type"), "{}", found[0].1);
    assert!(!found[0].1.contains("999"));
    assert!(found[1].1.contains("defaults.source_system"));
}

#[test]
fn a_search_by_start_and_practitioner_alone_sends_the_source_system() {
    // What Salesforce requires and nothing more: a start, and a sourceSystem for want of a
    // work type. The example mapping has a default work type; this one has none.
    let mapping = Mapping::from_toml("[defaults]\nsource_system = \"cerner\"\n", "t.toml").unwrap();
    let request = slots_request(
        &query(&format!(
            "start=ge2025-09-20&schedule.actor=Practitioner/{PRACTITIONER}"
        )),
        &mapping,
    )
    .unwrap();
    assert_eq!(request.work_type_id, None);
    assert_eq!(request.source_system.as_deref(), Some("cerner"));
    assert!(request.service_types.is_empty() && request.appointment_types.is_empty());
}

fn answer(resource_id: &str, slots: &[(&str, &str, &str)]) -> ResourceSlots {
    ResourceSlots {
        resource_id: resource_id.to_owned(),
        slots: slots
            .iter()
            .map(|(id, start, end)| AvailableSlot {
                slot_id: (*id).to_owned(),
                slot_start_date: (*start).to_owned(),
                slot_end_date: (*end).to_owned(),
                source_system: None,
            })
            .collect(),
    }
}

fn bundle_json(bundle: &Bundle) -> Value {
    serde_json::from_slice(&fhirbolt::json::to_vec(bundle, None).unwrap()).unwrap()
}

#[test]
fn the_bundle_holds_one_free_slot_per_answer_slot() {
    let q = search(&[]);
    let request = GetSlotsRequest {
        resources: vec![SlotResource {
            resource_id: PRACTITIONER.into(),
            resource_type: Some("Provider".into()),
        }],
        ..Default::default()
    };
    let slots = [answer(
        PRACTITIONER,
        &[
            (
                "0bSxx0000005JoaxxE-20250920T0900",
                "2025-09-20T09:00:00Z",
                "2025-09-20T09:30:00Z",
            ),
            // The Action page's zone-less spelling, read as UTC.
            (
                "ce5b28b6-7c1d",
                "2025-09-20T09:30:00.000",
                "2025-09-20T10:00:00.000",
            ),
            // Not a FHIR id: a minted id, the slotId in the identifier.
            (
                "slot/with spaces",
                "2025-09-20T12:00:00+02:00",
                "2025-09-20T12:30:00+02:00",
            ),
            // Before the FHIR window: Salesforce's window can be wider.
            ("early", "2025-09-19T16:30:00Z", "2025-09-19T17:00:00Z"),
        ],
    )];
    let bundle = search_bundle(
        &slots,
        &request,
        &q,
        "https://p.example/fhir",
        "https://p.example/fhir/Slot?x",
    );
    let value = bundle_json(&bundle);
    assert_eq!(value["type"], "searchset");
    assert_eq!(value["total"], 3);
    assert_eq!(
        value["link"],
        json!([{"relation": "self", "url": "https://p.example/fhir/Slot?x"}])
    );
    let entries = value["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(
        entries[0],
        json!({
            "fullUrl": "https://p.example/fhir/Slot/0bSxx0000005JoaxxE-20250920T0900",
            "resource": {
                "resourceType": "Slot",
                "id": "0bSxx0000005JoaxxE-20250920T0900",
                "identifier": [{"system": SLOT_IDENTIFIER_SYSTEM, "value": "0bSxx0000005JoaxxE-20250920T0900"}],
                "schedule": {
                    "reference": "Schedule/0bSxx0000005JoaxxE",
                    "display": "Salesforce provider (Healthcare Practitioner Facility)"
                },
                "status": "free",
                "start": "2025-09-20T09:00:00Z",
                "end": "2025-09-20T09:30:00Z"
            },
            "search": {"mode": "match"}
        })
    );
    assert_eq!(entries[1]["resource"]["start"], "2025-09-20T09:30:00Z");
    let minted = entries[2]["resource"]["id"].as_str().unwrap();
    assert!(minted.starts_with("sf-") && is_fhir_id(minted), "{minted}");
    assert_eq!(fhir_id("slot/with spaces"), minted, "stable");
    assert_eq!(
        entries[2]["resource"]["identifier"][0]["value"],
        "slot/with spaces"
    );
    assert_eq!(entries[2]["resource"]["start"], "2025-09-20T10:00:00Z");
    assert_eq!(
        entries[2]["fullUrl"],
        format!("https://p.example/fhir/Slot/{minted}")
    );

    // The Bundle is valid R4 in both formats.
    let strict = Some(fhirbolt::serde::DeserializationConfig {
        mode: fhirbolt::serde::DeserializationMode::Strict,
    });
    let xml = fhirbolt::xml::to_vec(&bundle, None).unwrap();
    let back: Bundle = fhirbolt::xml::from_slice(&xml, strict).unwrap();
    assert_eq!(back, bundle);
}

#[test]
fn unreadable_slots_are_left_out_and_reported_in_an_outcome_entry() {
    let slots = [answer(
        "r",
        &[
            ("a", "2025-09-20T09:00:00Z", "2025-09-20T09:30:00Z"),
            ("b", "soon", "2025-09-20T10:00:00Z"),
        ],
    )];
    let value = bundle_json(&search_bundle(
        &slots,
        &GetSlotsRequest::default(),
        &search(&[]),
        "b",
        "b/Slot",
    ));
    assert_eq!(value["total"], 1);
    assert_eq!(
        value["entry"][0]["resource"]["schedule"]["display"],
        "Salesforce resource"
    );
    assert_eq!(value["entry"][1]["search"]["mode"], "outcome");
    assert_eq!(
        value["entry"][1]["resource"]["issue"][0]["severity"],
        "warning"
    );
    assert!(!value.to_string().contains("soon"));
}

#[test]
fn an_empty_answer_is_an_empty_searchset() {
    let value = bundle_json(&search_bundle(
        &[],
        &GetSlotsRequest::default(),
        &search(&[]),
        "b",
        "b/Slot",
    ));
    assert_eq!(value["type"], "searchset");
    assert_eq!(value["total"], 0);
    assert!(value.get("entry").is_none());
}
