use super::*;
use serde_json::{Value, json};

const PATIENT: &str = "001xx000012udqQxxQ";
const PRACTITIONER: &str = "0bSxx0000005JoaxxE";
const FACILITY: &str = "001xx000012udqhxxA";
const WORK_TYPE: &str = "08qxx000000Axq6xxC";

fn mapping(extra: &str) -> Mapping {
    Mapping::from_toml(
        &format!(
            "[defaults]\nsource_system = \"cerner\"\n\
             [codes.service_type]\nsystems = [\"http://terminology.hl7.org/CodeSystem/service-type\"]\n\
             translate = {{ \"124\" = \"GP\" }}\n{extra}"
        ),
        "test.toml",
    )
    .unwrap()
}

/// A valid appointment whose participants are Salesforce ids (passthrough).
fn appointment() -> Value {
    json!({
        "resourceType": "Appointment",
        "status": "booked",
        "serviceType": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/service-type", "code": "124"}]}],
        "start": "2025-07-21T18:00:00Z",
        "end": "2025-07-21T18:30:00Z",
        "participant": [
            {"actor": {"reference": format!("Patient/{PATIENT}")}, "status": "accepted"},
            {"actor": {"reference": format!("Practitioner/{PRACTITIONER}")}, "required": "required", "status": "accepted"},
            {"actor": {"reference": format!("Location/{FACILITY}")}, "required": "optional", "status": "accepted"}
        ]
    })
}

fn map(value: Value, mapping: &Mapping) -> Result<BookAppointmentRequest, Vec<Issue>> {
    let a: Appointment = fhirbolt::json::from_json_value(value, None).unwrap();
    book_request(&a, mapping)
}

fn issues(value: Value, mapping: &Mapping) -> Vec<(IssueCode, String)> {
    map(value, mapping)
        .expect_err("mapping should fail")
        .into_iter()
        .map(|i| (i.code, i.expression.unwrap_or_default()))
        .collect()
}

#[test]
fn maps_codes_participants_dates_and_source_system() {
    let r = map(appointment(), &mapping("")).unwrap();
    assert_eq!(r.work_type_id, None);
    assert_eq!(r.source_system.as_deref(), Some("cerner"));
    assert_eq!(r.service_types, vec!["GP"]);
    assert_eq!(r.start_date, "2025-07-21T18:00:00.000Z");
    assert_eq!(r.end_date.as_deref(), Some("2025-07-21T18:30:00.000Z"));
    assert_eq!(
        serde_json::to_value(&r.participants).unwrap(),
        json!([
            {"reference": format!("Patient/{PATIENT}")},
            {"reference": format!("Practitioner/{PRACTITIONER}"), "isReferenceRequired": true},
            {"reference": format!("Facility/{FACILITY}"), "isReferenceRequired": false}
        ])
    );
}

#[test]
fn dates_go_out_in_utc_with_milliseconds() {
    let mut a = appointment();
    a["start"] = json!("2025-07-21T14:00:00.5-04:00");
    a["end"] = json!("2025-07-21T20:30:00+02:00");
    let r = map(a, &mapping("")).unwrap();
    assert_eq!(r.start_date, "2025-07-21T18:00:00.500Z");
    assert_eq!(r.end_date.as_deref(), Some("2025-07-21T18:30:00.000Z"));
}

#[test]
fn end_is_computed_from_minutes_duration_when_the_mapping_allows_it() {
    let mut a = appointment();
    a.as_object_mut().unwrap().remove("end");
    a["minutesDuration"] = json!(45);
    let r = map(a.clone(), &mapping("[dates]\nend_from_duration = true\n")).unwrap();
    assert_eq!(r.end_date.as_deref(), Some("2025-07-21T18:45:00.000Z"));
    let r = map(a, &mapping("")).unwrap();
    assert_eq!(r.end_date, None);
}

#[test]
fn work_type_rule_picks_work_type_and_channel_and_suppresses_codes_when_asked() {
    let rule = format!(
        "[[work_types.rule]]\nelement = \"serviceType\"\nsystem = \"http://terminology.hl7.org/CodeSystem/service-type\"\n\
         code = \"124\"\nwork_type_id = \"{WORK_TYPE}\"\nchannel_id = \"0eFxx000000NNOVxx0\"\n"
    );
    let r = map(appointment(), &mapping(&rule)).unwrap();
    assert_eq!(r.work_type_id.as_deref(), Some(WORK_TYPE));
    assert_eq!(r.channel_id.as_deref(), Some("0eFxx000000NNOVxx0"));
    assert_eq!(r.service_types, vec!["GP"]);
    assert_eq!(r.source_system.as_deref(), Some("cerner"));

    // `[codes]` after `[codes.service_type]` still opens the same table in TOML.
    let r = map(
        appointment(),
        &mapping(&format!("{rule}[codes]\nsend = \"without-work-type\"\n")),
    )
    .unwrap();
    assert!(r.service_types.is_empty());
    assert_eq!(r.source_system, None);
}

#[test]
fn default_work_type_applies_when_no_rule_matches() {
    let r = map(
        appointment(),
        &mapping(&format!("[work_types]\ndefault = \"{WORK_TYPE}\"\n")),
    )
    .unwrap();
    assert_eq!(r.work_type_id.as_deref(), Some(WORK_TYPE));
}

#[test]
fn static_table_resolves_references_and_identifiers() {
    let m = mapping(&format!(
        "[[ids.table]]\nreference = \"Patient/p1\"\nsalesforce_id = \"{PATIENT}\"\n\
         [[ids.table]]\nidentifier = \"urn:npi|42\"\nsalesforce_id = \"{PRACTITIONER}\"\n"
    ));
    let mut a = appointment();
    a["participant"][0]["actor"] = json!({"reference": "https://ehr.example/fhir/Patient/p1"});
    a["participant"][1]["actor"] =
        json!({"type": "Practitioner", "identifier": {"system": "urn:npi", "value": "42"}});
    let r = map(a, &m).unwrap();
    assert_eq!(r.participants[0].reference, format!("Patient/{PATIENT}"));
    assert_eq!(
        r.participants[1].reference,
        format!("Practitioner/{PRACTITIONER}")
    );
}

#[test]
fn looked_up_ids_are_booked_and_failed_lookups_name_the_participant() {
    use crate::mapping::lookup::{LookupAnswer, ResolvedIds, is_pending_lookup, needed_lookups};
    let m = mapping(
        "[[ids.lookup]]\ntype = \"Patient\"\nobject = \"Account\"\n\
         external_id_field = \"EHR_Patient_Id__c\"\n\
         [[ids.lookup]]\ntype = \"Practitioner\"\nobject = \"HealthcareProvider\"\n\
         external_id_field = \"NPI__c\"\n",
    );
    let mut value = appointment();
    value["participant"][0]["actor"] = json!({"reference": "Patient/MRN-0042"});
    value["participant"][1]["actor"] = json!({"reference": "Practitioner/npi-7"});
    value["slot"] = json!([{"reference": "Slot/s-1"}]);
    let a: Appointment = fhirbolt::json::from_json_value(value, None).unwrap();
    let keys = needed_lookups(&a, &m);
    assert_eq!(keys.len(), 2);
    let patient = keys[0].clone();
    let practitioner = keys[1].clone();
    assert_eq!(
        (patient.field.as_str(), patient.value.as_str()),
        ("EHR_Patient_Id__c", "MRN-0042")
    );
    let with = |p: Option<LookupAnswer>, d: Option<LookupAnswer>| {
        let resolved: ResolvedIds = [(patient.clone(), p), (practitioner.clone(), d)]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        book_request_with(&a, &m, &resolved)
    };
    let found = |id: &str| Some(LookupAnswer::Found(id.to_owned()));

    let r = with(found(PATIENT), found(PRACTITIONER)).unwrap();
    assert_eq!(r.participants[0].reference, format!("Patient/{PATIENT}"));
    assert_eq!(
        r.participants[1].reference,
        format!("Practitioner/{PRACTITIONER}")
    );
    assert_eq!(r.slots[0].reference, PRACTITIONER);

    let issues = with(Some(LookupAnswer::NotFound), found(PRACTITIONER)).unwrap_err();
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].code, IssueCode::NotFound);
    assert_eq!(
        issues[0].expression.as_deref(),
        Some("Appointment.participant[0].actor")
    );
    assert!(issues[0].diagnostics.contains("Patient"));
    assert!(issues[0].diagnostics.contains("Account"));
    assert!(!issues[0].diagnostics.contains("MRN-0042"));

    let issues = with(found(PATIENT), Some(LookupAnswer::Ambiguous)).unwrap_err();
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].code, IssueCode::MultipleMatches);
    assert_eq!(
        issues[0].expression.as_deref(),
        Some("Appointment.participant[1].actor")
    );

    // Not asked (a dry run): notes only, and the slot does not report a missing practitioner.
    let issues = with(None, None).unwrap_err();
    assert_eq!(issues.len(), 2, "{issues:?}");
    assert!(issues.iter().all(is_pending_lookup), "{issues:?}");
}

#[test]
fn slots_carry_the_practitioner_id() {
    let mut a = appointment();
    a["slot"] = json!([{"reference": "Slot/24477854-21304876-62852027-2"}]);
    let r = map(a.clone(), &mapping("")).unwrap();
    assert_eq!(
        serde_json::to_value(&r.slots).unwrap(),
        json!([{"id": "24477854-21304876-62852027-2", "reference": PRACTITIONER}])
    );
    let r = map(a, &mapping("[slots]\nreference = \"prefixed\"\n")).unwrap();
    assert_eq!(r.slots[0].reference, format!("Practitioner/{PRACTITIONER}"));

    // A slot found by search whose Salesforce id is no FHIR id: the identifier wins.
    let mut a = appointment();
    a["slot"] = json!([{
        "reference": "Slot/sf-1a2b",
        "identifier": {"system": "urn:salesforce:slotId", "value": "slot id with spaces"}
    }]);
    let r = map(a, &mapping("")).unwrap();
    assert_eq!(r.slots[0].id, "slot id with spaces");
}

#[test]
fn declined_type_only_and_other_actors_are_left_out() {
    let mut a = appointment();
    let list = a["participant"].as_array_mut().unwrap();
    list.push(json!({"actor": {"reference": "RelatedPerson/mum"}, "status": "accepted"}));
    list.push(json!({"type": [{"text": "interpreter"}], "status": "needs-action"}));
    list.push(
        json!({"actor": {"reference": "Practitioner/0bSxx0000005JobxxE"}, "status": "declined"}),
    );
    let r = map(a.clone(), &mapping("")).unwrap();
    assert_eq!(r.participants.len(), 3);
    assert_eq!(
        issues(a, &mapping("[participants]\nother_actors = \"reject\"\n")),
        vec![(
            IssueCode::BusinessRule,
            "Appointment.participant[3].actor".to_owned()
        )]
    );
}

#[test]
fn every_broken_book_rule_is_reported_with_its_expression() {
    let m = mapping("");
    type Mutation = Box<dyn Fn(&mut Value)>;
    type Case = (&'static str, Mutation, Vec<(IssueCode, &'static str)>);
    let cases: Vec<Case> = vec![
        (
            "unresolvable patient",
            Box::new(|a| a["participant"][0]["actor"]["reference"] = json!("Patient/123")),
            vec![(IssueCode::NotFound, "Appointment.participant[0].actor")],
        ),
        (
            "no location",
            Box::new(|a| {
                a["participant"].as_array_mut().unwrap().remove(2);
            }),
            vec![(IssueCode::Required, "Appointment.participant")],
        ),
        (
            "no practitioner or device",
            Box::new(|a| {
                a["participant"].as_array_mut().unwrap().remove(1);
            }),
            vec![(IssueCode::Required, "Appointment.participant")],
        ),
        (
            "two patients",
            Box::new(|a| {
                a["participant"].as_array_mut().unwrap().push(
                    json!({"actor": {"reference": "Patient/001xx000012udqRxxQ"}, "status": "accepted"}),
                );
            }),
            vec![(IssueCode::BusinessRule, "Appointment.participant")],
        ),
        (
            "contained actor",
            Box::new(|a| a["participant"][1]["actor"] = json!({"reference": "#p1"})),
            vec![
                (IssueCode::Required, "Appointment.participant[1].actor"),
                (IssueCode::Required, "Appointment.participant"),
            ],
        ),
        (
            "no start",
            Box::new(|a| {
                a.as_object_mut().unwrap().remove("start");
            }),
            vec![(IssueCode::Required, "Appointment.start")],
        ),
        (
            "end before start",
            Box::new(|a| a["end"] = json!("2025-07-21T17:00:00Z")),
            vec![(IssueCode::Value, "Appointment.end")],
        ),
        (
            "comment too long",
            Box::new(|a| a["comment"] = json!("é".repeat(257))),
            vec![(IssueCode::TooLong, "Appointment.comment")],
        ),
        (
            "no work type and no codes",
            Box::new(|a| {
                a.as_object_mut().unwrap().remove("serviceType");
            }),
            vec![(IssueCode::BusinessRule, "Appointment")],
        ),
        (
            "cancelled status",
            Box::new(|a| a["status"] = json!("cancelled")),
            vec![(IssueCode::BusinessRule, "Appointment.status")],
        ),
        (
            "slot without practitioner",
            Box::new(|a| {
                a["slot"] = json!([{"reference": "Slot/1"}]);
                a["participant"][1]["actor"]["reference"] = json!("Device/02ixx0000000001AAA");
            }),
            vec![(IssueCode::BusinessRule, "Appointment.slot[0]")],
        ),
    ];
    for (name, mutate, expected) in cases {
        let mut a = appointment();
        mutate(&mut a);
        let expected: Vec<(IssueCode, String)> = expected
            .into_iter()
            .map(|(c, e)| (c, e.to_owned()))
            .collect();
        assert_eq!(issues(a, &m), expected, "{name}");
    }
}

#[test]
fn a_256_character_comment_is_accepted() {
    let mut a = appointment();
    a["comment"] = json!("é".repeat(256));
    assert!(map(a, &mapping("")).is_ok());
}

#[test]
fn missing_source_system_is_reported_when_no_work_type() {
    let m = Mapping::from_toml(
        "[codes.service_type]\nsystems = [\"http://terminology.hl7.org/CodeSystem/service-type\"]\n",
        "t",
    )
    .unwrap();
    assert_eq!(
        issues(appointment(), &m),
        vec![(IssueCode::BusinessRule, "Appointment".to_owned())]
    );
}

#[test]
fn unmapped_code_policy_send_drop_reject() {
    let mut a = appointment();
    a["serviceType"][0]["coding"][0]["code"] = json!("999");
    let with = |policy: &str| mapping("").with_unmapped(policy);
    assert_eq!(
        map(a.clone(), &with("send")).unwrap().service_types,
        vec!["999"]
    );
    // Dropping the only code leaves neither a work type nor codes.
    assert_eq!(
        issues(a.clone(), &with("drop")),
        vec![(IssueCode::BusinessRule, "Appointment".to_owned())]
    );
    assert_eq!(
        issues(a, &with("reject")),
        vec![
            (
                IssueCode::CodeInvalid,
                "Appointment.serviceType[0].coding[0]".to_owned()
            ),
            (IssueCode::BusinessRule, "Appointment".to_owned())
        ]
    );
}

trait WithUnmapped {
    fn with_unmapped(self, policy: &str) -> Mapping;
}
impl WithUnmapped for Mapping {
    fn with_unmapped(mut self, policy: &str) -> Mapping {
        let rule = self.codes.get_mut(&CodedElement::ServiceType).unwrap();
        rule.unmapped = match policy {
            "send" => UnmappedCode::Send,
            "drop" => UnmappedCode::Drop,
            _ => UnmappedCode::Reject,
        };
        self
    }
}
