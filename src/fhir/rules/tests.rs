use super::*;
use fhirbolt::model::r4::types::{CodeableConcept, Meta, PositiveInt, UnsignedInt, Uri};

const EXAMPLE_JSON: &[u8] = include_bytes!("../../../tests/fixtures/fhir/appointment-example.json");
const REQUEST_JSON: &[u8] =
    include_bytes!("../../../tests/fixtures/fhir/appointment-example-request.json");
const TWO_DOCTORS_JSON: &[u8] =
    include_bytes!("../../../tests/fixtures/fhir/appointment-example2doctors.json");
const NOSHOW_JSON: &[u8] = include_bytes!(
    "../../../tests/fixtures/fhir/invalid/medplum-issue-4444-noshow-with-cancelationReason.json"
);

/// The R4 spec's booked appointment (Patient, Practitioner and Location; start and end).
fn example() -> Appointment {
    fhirbolt::json::from_slice(EXAMPLE_JSON, None).unwrap()
}

/// Expected (code, expression) pairs, in any order.
type Expected = Vec<(IssueCode, &'static str)>;

fn check(appointment: &Appointment) -> Vec<(IssueCode, String)> {
    check_with(appointment, RuleOptions::default())
}

fn check_with(appointment: &Appointment, options: RuleOptions) -> Vec<(IssueCode, String)> {
    let mut found: Vec<(IssueCode, String)> = check_appointment(appointment, &options)
        .into_iter()
        .map(|issue| {
            (
                issue.code,
                issue.expression.expect("every issue has an expression"),
            )
        })
        .collect();
    found.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.as_str().cmp(b.0.as_str())));
    found
}

fn expected(pairs: &[(IssueCode, &str)]) -> Vec<(IssueCode, String)> {
    let mut pairs: Vec<(IssueCode, String)> =
        pairs.iter().map(|(c, e)| (*c, e.to_string())).collect();
    pairs.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.as_str().cmp(b.0.as_str())));
    pairs
}

fn code(value: &str) -> Code {
    value.into()
}

fn instant(value: &str) -> Option<Instant> {
    Some(value.into())
}

fn concept() -> CodeableConcept {
    CodeableConcept {
        text: Some("x".into()),
        ..Default::default()
    }
}

fn reference(value: &str) -> Option<Box<Reference>> {
    Some(Box::new(Reference {
        reference: Some(value.into()),
        ..Default::default()
    }))
}

#[test]
fn spec_examples_are_valid() {
    for (name, bytes) in [
        ("appointment-example", EXAMPLE_JSON),
        ("appointment-example-request", REQUEST_JSON),
        ("appointment-example2doctors", TWO_DOCTORS_JSON),
        ("medplum #4444: noshow with cancelationReason", NOSHOW_JSON),
    ] {
        let appointment: Appointment = fhirbolt::json::from_slice(bytes, None).unwrap();
        assert_eq!(check(&appointment), vec![], "{name}");
    }
}

#[test]
fn one_mutation_per_rule() {
    use IssueCode::{CodeInvalid, Invariant, Required, Value};
    type Mutation = fn(&mut Appointment);
    let cases: Vec<(&str, Mutation, Expected)> = vec![
        (
            "status missing",
            |a| a.status = Code::default(),
            vec![(Required, "Appointment.status")],
        ),
        (
            "status empty",
            |a| a.status = code(""),
            vec![(Value, "Appointment.status")],
        ),
        (
            "status unknown",
            |a| a.status = code("done"),
            vec![(CodeInvalid, "Appointment.status")],
        ),
        (
            "status no-show (hyphen)",
            |a| a.status = code("no-show"),
            vec![(CodeInvalid, "Appointment.status")],
        ),
        (
            "status wrong case",
            |a| a.status = code("Booked"),
            vec![(CodeInvalid, "Appointment.status")],
        ),
        (
            "participant missing",
            |a| a.participant.clear(),
            vec![(Required, "Appointment.participant")],
        ),
        (
            "participant status missing",
            |a| a.participant[1].status = Code::default(),
            vec![(Required, "Appointment.participant[1].status")],
        ),
        (
            "participant status empty",
            |a| a.participant[2].status = code(""),
            vec![(Value, "Appointment.participant[2].status")],
        ),
        (
            "participant status unknown",
            |a| a.participant[0].status = code("confirmed"),
            vec![(CodeInvalid, "Appointment.participant[0].status")],
        ),
        (
            "participant required unknown",
            |a| a.participant[0].required = Some(code("true")),
            vec![(CodeInvalid, "Appointment.participant[0].required")],
        ),
        (
            "participant required empty",
            |a| a.participant[0].required = Some(code("")),
            vec![(Value, "Appointment.participant[0].required")],
        ),
        (
            "participant required absent is fine",
            |a| a.participant[0].required = None,
            vec![],
        ),
        (
            "app-1: neither type nor actor",
            |a| a.participant[0].actor = None,
            vec![(Invariant, "Appointment.participant[0]")],
        ),
        (
            "app-1: type alone is fine",
            |a| {
                a.participant[1].actor = None;
            },
            vec![],
        ),
        (
            "actor is an Organization",
            |a| a.participant[0].actor = reference("Organization/1"),
            vec![(Value, "Appointment.participant[0].actor")],
        ),
        (
            "actor is an absolute Group URL",
            |a| {
                a.participant[2].actor =
                    reference("https://ehr.example.org/fhir/Group/7/_history/2")
            },
            vec![(Value, "Appointment.participant[2].actor")],
        ),
        (
            "actor type says Organization",
            |a| {
                a.participant[0].actor = Some(Box::new(Reference {
                    r#type: Some(Uri::from("Organization")),
                    display: Some("Acme".into()),
                    ..Default::default()
                }));
            },
            vec![(Value, "Appointment.participant[0].actor")],
        ),
        (
            "actor reference and type disagree",
            |a| {
                a.participant[0].actor.as_mut().unwrap().r#type = Some(Uri::from("Organization"));
            },
            vec![(Value, "Appointment.participant[0].actor")],
        ),
        (
            "actor reference empty",
            |a| a.participant[0].actor = reference(""),
            vec![(Value, "Appointment.participant[0].actor.reference")],
        ),
        (
            "app-2: start without end",
            |a| a.end = None,
            vec![(Invariant, "Appointment"), (Invariant, "Appointment")],
        ),
        (
            "app-2: end without start",
            |a| a.start = None,
            vec![(Invariant, "Appointment"), (Invariant, "Appointment")],
        ),
        (
            "app-2 alone: start without end while proposed",
            |a| {
                a.end = None;
                a.status = code("proposed");
            },
            vec![(Invariant, "Appointment")],
        ),
        (
            "app-3: booked without times",
            |a| {
                a.start = None;
                a.end = None;
            },
            vec![(Invariant, "Appointment")],
        ),
        (
            "app-3: waitlist without times is fine",
            |a| {
                a.start = None;
                a.end = None;
                a.status = code("waitlist");
            },
            vec![],
        ),
        (
            "app-3: cancelled without times is fine",
            |a| {
                a.start = None;
                a.end = None;
                a.status = code("cancelled");
            },
            vec![],
        ),
        (
            "app-4: cancelationReason on a booked appointment",
            |a| a.cancelation_reason = Some(Box::new(concept())),
            vec![(Invariant, "Appointment.cancelationReason")],
        ),
        (
            "app-4: cancelationReason when cancelled is fine",
            |a| {
                a.cancelation_reason = Some(Box::new(concept()));
                a.status = code("cancelled");
            },
            vec![],
        ),
        (
            "app-4: cancelationReason when noshow is fine (R4 spec typo)",
            |a| {
                a.cancelation_reason = Some(Box::new(concept()));
                a.status = code("noshow");
            },
            vec![],
        ),
        (
            "app-4: no-show is an invalid code and breaks app-4",
            |a| {
                a.cancelation_reason = Some(Box::new(concept()));
                a.status = code("no-show");
            },
            vec![
                (CodeInvalid, "Appointment.status"),
                (Invariant, "Appointment.cancelationReason"),
            ],
        ),
        (
            "start date only",
            |a| a.start = instant("2013-12-10"),
            vec![(Value, "Appointment.start")],
        ),
        (
            "start without zone",
            |a| a.start = instant("2013-12-10T09:00:00"),
            vec![(Value, "Appointment.start")],
        ),
        (
            "end impossible date",
            |a| a.end = instant("2013-02-30T09:00:00Z"),
            vec![(Value, "Appointment.end")],
        ),
        (
            "start empty",
            |a| a.start = instant(""),
            vec![(Value, "Appointment.start")],
        ),
        (
            "end empty",
            |a| a.end = instant(""),
            vec![(Value, "Appointment.end")],
        ),
        (
            "meta.lastUpdated not an instant",
            |a| {
                a.meta = Some(Box::new(Meta {
                    last_updated: instant("yesterday"),
                    ..Default::default()
                }));
            },
            vec![(Value, "Appointment.meta.lastUpdated")],
        ),
        (
            "meta.lastUpdated valid",
            |a| {
                a.meta = Some(Box::new(Meta {
                    last_updated: instant("2024-01-01T00:00:00.123+01:00"),
                    ..Default::default()
                }));
            },
            vec![],
        ),
        (
            "minutesDuration zero",
            |a| a.minutes_duration = Some(PositiveInt::from(0u32)),
            vec![(Value, "Appointment.minutesDuration")],
        ),
        (
            "minutesDuration too big",
            |a| a.minutes_duration = Some(PositiveInt::from(2_147_483_648u32)),
            vec![(Value, "Appointment.minutesDuration")],
        ),
        (
            "minutesDuration at the limit",
            |a| a.minutes_duration = Some(PositiveInt::from(2_147_483_647u32)),
            vec![],
        ),
        (
            "priority too big",
            |a| a.priority = Some(UnsignedInt::from(u32::MAX)),
            vec![(Value, "Appointment.priority")],
        ),
        (
            "priority zero is fine",
            |a| a.priority = Some(UnsignedInt::from(0u32)),
            vec![],
        ),
        (
            "description empty",
            |a| a.description = Some("".into()),
            vec![(Value, "Appointment.description")],
        ),
        (
            "comment empty",
            |a| a.comment = Some("".into()),
            vec![(Value, "Appointment.comment")],
        ),
        (
            "patientInstruction empty",
            |a| a.patient_instruction = Some("".into()),
            vec![(Value, "Appointment.patientInstruction")],
        ),
        (
            "everything at once",
            |a| {
                a.status = code("no-show");
                a.participant[0].status = Code::default();
                a.participant[1].actor = None;
                a.participant[1].r#type.clear();
                a.participant[2].actor = reference("Organization/1");
                a.end = None;
                a.start = instant("2013-12-10");
                a.comment = Some("".into());
            },
            vec![
                (CodeInvalid, "Appointment.status"),
                (Required, "Appointment.participant[0].status"),
                (Invariant, "Appointment.participant[1]"),
                (Value, "Appointment.participant[2].actor"),
                (Value, "Appointment.start"),
                (Invariant, "Appointment"),
                (Invariant, "Appointment"),
                (Value, "Appointment.comment"),
            ],
        ),
    ];
    for (name, mutate, want) in cases {
        let mut appointment = example();
        mutate(&mut appointment);
        assert_eq!(check(&appointment), expected(&want), "{name}");
    }
}

/// The HL7 build's invariant tests (tests/fixtures/fhir/invalid/app-*.f1.fail.xml) are R5
/// resources, which an R4 parser refuses outright (see parse.rs). These are the same cases in
/// R4 shape: each breaks exactly the invariant its file is named after.
#[test]
fn hl7_invariant_tests_in_r4_shape() {
    type Mutation = fn(&mut Appointment);
    let cases: [(&str, Mutation, Expected); 3] = [
        (
            "app-2.f1: cancelled, end without start",
            |a| {
                a.status = code("cancelled");
                a.start = None;
            },
            vec![(IssueCode::Invariant, "Appointment")],
        ),
        (
            "app-3.f1: booked without start and end",
            |a| {
                a.start = None;
                a.end = None;
            },
            vec![(IssueCode::Invariant, "Appointment")],
        ),
        (
            "app-4.f1: booked with a cancelation reason",
            |a| a.cancelation_reason = Some(Box::new(concept())),
            vec![(IssueCode::Invariant, "Appointment.cancelationReason")],
        ),
    ];
    for (name, mutate, want) in cases {
        let mut appointment = example();
        mutate(&mut appointment);
        let issues = check_appointment(&appointment, &RuleOptions::default());
        let key = &name[..5];
        assert!(
            issues.iter().all(|i| i.diagnostics.starts_with(key)),
            "{name}: {issues:?}"
        );
        assert_eq!(check(&appointment), expected(&want), "{name}");
    }
}

#[test]
fn app_2_and_app_3_are_told_apart() {
    let mut appointment = example();
    appointment.end = None;
    let issues = check_appointment(&appointment, &RuleOptions::default());
    let texts: Vec<&str> = issues.iter().map(|i| i.diagnostics.as_str()).collect();
    assert_eq!(
        texts,
        vec![
            "app-2: either start and end are specified, or neither (start is present, end is missing)",
            "app-3: only proposed, cancelled or waitlist appointments can be missing start and end",
        ]
    );
}

#[test]
fn end_from_duration_is_an_opt_in_deviation() {
    use IssueCode::Invariant;
    let allow = RuleOptions {
        allow_end_from_duration: true,
    };
    // (name, start, end, minutesDuration, options, expected)
    type Case = (&'static str, bool, bool, Option<u32>, RuleOptions, Expected);
    let cases: Vec<Case> = vec![
        (
            "strict: start + duration, no end",
            true,
            false,
            Some(30),
            RuleOptions::default(),
            vec![(Invariant, "Appointment"), (Invariant, "Appointment")],
        ),
        (
            "opt-in: start + duration, no end",
            true,
            false,
            Some(30),
            allow,
            vec![],
        ),
        (
            "opt-in: start, no end, no duration",
            true,
            false,
            None,
            allow,
            vec![(Invariant, "Appointment"), (Invariant, "Appointment")],
        ),
        (
            "opt-in: end + duration, no start",
            false,
            true,
            Some(30),
            allow,
            vec![(Invariant, "Appointment"), (Invariant, "Appointment")],
        ),
        (
            "opt-in: neither, booked",
            false,
            false,
            Some(30),
            allow,
            vec![(Invariant, "Appointment")],
        ),
        ("opt-in: both", true, true, Some(30), allow, vec![]),
    ];
    for (name, start, end, duration, options, want) in cases {
        let mut appointment = example();
        if !start {
            appointment.start = None;
        }
        if !end {
            appointment.end = None;
        }
        appointment.minutes_duration = duration.map(PositiveInt::from);
        assert_eq!(check_with(&appointment, options), expected(&want), "{name}");
    }
}

#[test]
fn primitives_with_only_extensions_count_as_absent() {
    let mut appointment = example();
    appointment.status = Code {
        id: Some("s".into()),
        ..Default::default()
    };
    appointment.end = Some(Instant {
        id: Some("e".into()),
        ..Default::default()
    });
    assert_eq!(
        check(&appointment),
        expected(&[
            (IssueCode::Required, "Appointment.status"),
            (IssueCode::Invariant, "Appointment"),
        ])
    );
}

#[test]
fn diagnostics_never_echo_values() {
    let secret = "Zebulon Quixote";
    let mut appointment = example();
    appointment.status = code(secret);
    appointment.participant[0].status = code(&format!("{secret}-{}", "x".repeat(70)));
    appointment.participant[0].required = Some(code("Quixote!"));
    appointment.participant[1].actor = reference("Quixote/123");
    appointment.participant[2].actor = reference(&format!("http://x/{secret}/1"));
    appointment.start = instant("Quixote");
    appointment.end = instant("2013-12-10T09:00:00+99:00");
    appointment.meta = Some(Box::new(Meta {
        last_updated: instant("Quixote"),
        ..Default::default()
    }));
    let issues = check_appointment(&appointment, &RuleOptions::default());
    assert_eq!(issues.len(), 7, "{issues:#?}");
    for issue in &issues {
        assert!(!issue.diagnostics.contains("Quixote"), "{issue:?}");
        assert!(!issue.diagnostics.contains("Zebulon"), "{issue:?}");
    }
    let unknown = issues
        .iter()
        .filter(|i| i.diagnostics.contains("an unknown code"))
        .count();
    assert_eq!(unknown, 3, "{issues:#?}");
}

#[test]
fn diagnostics_name_the_rule_and_plain_codes() {
    let mut appointment = example();
    appointment.status = code("no-show");
    appointment.participant[0].status = code("confirmed");
    let issues = check_appointment(&appointment, &RuleOptions::default());
    assert_eq!(
        issues[0].diagnostics,
        "Appointment.status has the code `no-show`, which is not in the R4 AppointmentStatus \
         value set (proposed | pending | booked | arrived | fulfilled | cancelled | noshow | \
         entered-in-error | checked-in | waitlist) (R4 spells it noshow)"
    );
    assert_eq!(
        issues[1].diagnostics,
        "Appointment.participant[0].status has the code `confirmed`, which is not in the R4 \
         ParticipationStatus value set (accepted | declined | tentative | needs-action)"
    );
    assert!(
        issues
            .iter()
            .all(|i| i.severity == crate::fhir::outcome::Severity::Error)
    );
}

#[test]
fn instants() {
    let cases: &[(&str, bool)] = &[
        ("2013-12-10T09:00:00Z", true),
        ("2013-12-10T09:00:00.5Z", true),
        ("2013-12-10T09:00:00.123456789Z", true),
        ("2013-12-10T09:00:00+01:00", true),
        ("2013-12-10T09:00:00-05:30", true),
        ("2013-12-10T09:00:00+14:00", true),
        ("2013-12-10T09:00:00-00:00", true),
        ("2024-02-29T23:59:59Z", true),
        ("0001-01-01T00:00:00Z", true),
        ("2013-12-10", false),
        ("2013-12-10T09:00", false),
        ("2013-12-10T09:00Z", false),
        ("2013-12-10T09:00:00", false),
        ("2013-12-10T09:00:00.Z", false),
        ("2013-12-10t09:00:00Z", false),
        ("2013-12-10T09:00:00z", false),
        ("2013-12-10 09:00:00Z", false),
        ("2013-12-10T09:00:00+0100", false),
        ("2013-12-10T09:00:00+14:30", false),
        ("2013-12-10T09:00:00+15:00", false),
        ("2013-12-10T09:00:00+01:60", false),
        ("2023-02-29T09:00:00Z", false),
        ("2013-13-10T09:00:00Z", false),
        ("2013-12-32T09:00:00Z", false),
        ("2013-12-10T24:00:00Z", false),
        ("2013-12-10T09:60:00Z", false),
        ("0000-01-01T00:00:00Z", false),
        ("-2013-12-10T09:00:00Z", false),
        ("20131210T090000Z", false),
        ("2013-12-10T09:00:00Z ", false),
        (" 2013-12-10T09:00:00Z", false),
        ("", false),
        ("２０１３-12-10T09:00:00Z", false),
    ];
    for (text, valid) in cases {
        assert_eq!(parse_instant(text).is_some(), *valid, "{text}");
    }
    let parsed = parse_instant("2013-12-10T09:00:00.250-05:00").unwrap();
    assert_eq!(parsed.to_rfc3339(), "2013-12-10T09:00:00.250-05:00");
    assert_eq!(parsed.offset().local_minus_utc(), -5 * 3600);
}

#[test]
fn reference_target_types() {
    let cases: &[(&str, Option<&str>)] = &[
        ("Patient/example", Some("Patient")),
        ("Practitioner/f202", Some("Practitioner")),
        ("Location/1/_history/2", Some("Location")),
        (
            "https://ehr.example.org/fhir/HealthcareService/abc-1.2",
            Some("HealthcareService"),
        ),
        ("http://x/fhir/Device/9/_history/1", Some("Device")),
        ("Organization/1", Some("Organization")),
        ("Patient/1?x=y", Some("Patient")),
        ("#contained-1", None),
        ("urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a", None),
        ("Patient?identifier=http://x|1", None),
        ("Patient", None),
        ("Patient/", None),
        ("patient/1", None),
        ("Smith, John", None),
        ("Patient/has space", None),
        ("", None),
    ];
    for (reference, want) in cases {
        assert_eq!(reference_target_type(reference), *want, "{reference}");
    }
    let declared: &[(&str, Option<&str>)] = &[
        ("Patient", Some("Patient")),
        (
            "http://hl7.org/fhir/StructureDefinition/Organization",
            Some("Organization"),
        ),
        ("http://example.org/logical/Thing", None),
        ("patient", None),
    ];
    for (value, want) in declared {
        assert_eq!(declared_target_type(value), *want, "{value}");
    }
}

#[test]
fn every_allowed_actor_type_passes() {
    for target in ACTOR_TYPES {
        let mut appointment = example();
        appointment.participant[0].actor = reference(&format!("{target}/1"));
        appointment.participant[1].actor = Some(Box::new(Reference {
            r#type: Some(Uri::from(target)),
            display: Some("x".into()),
            ..Default::default()
        }));
        assert_eq!(check(&appointment), vec![], "{target}");
    }
}

#[test]
fn every_status_code_is_accepted_with_times() {
    for status in APPOINTMENT_STATUSES {
        let mut appointment = example();
        appointment.status = code(status);
        assert_eq!(check(&appointment), vec![], "{status}");
    }
    for status in PARTICIPATION_STATUSES {
        let mut appointment = example();
        appointment.participant[0].status = code(status);
        assert_eq!(check(&appointment), vec![], "{status}");
    }
    for required in PARTICIPANT_REQUIRED {
        let mut appointment = example();
        appointment.participant[0].required = Some(code(required));
        assert_eq!(check(&appointment), vec![], "{required}");
    }
}
