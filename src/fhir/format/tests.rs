use super::*;
use crate::fhir::outcome::Severity;
use fhirbolt::model::r4::resources::{Appointment, AppointmentParticipant};

#[test]
fn content_types_carry_the_fhir_type_and_utf8() {
    assert_eq!(
        Format::Json.content_type(),
        "application/fhir+json; charset=utf-8"
    );
    assert_eq!(
        Format::Xml.content_type(),
        "application/fhir+xml; charset=utf-8"
    );
}

#[test]
fn request_format_accepts_fhir_generic_and_legacy_types() {
    let cases: &[(&str, Format)] = &[
        ("application/fhir+json", Format::Json),
        ("application/json", Format::Json),
        ("application/json+fhir", Format::Json),
        ("APPLICATION/FHIR+JSON", Format::Json),
        ("application/fhir+json; charset=utf-8", Format::Json),
        ("application/fhir+json;charset=UTF-8", Format::Json),
        ("application/fhir+json; charset=\"utf-8\"", Format::Json),
        ("application/fhir+json; fhirVersion=4.0", Format::Json),
        (
            "application/fhir+json; fhirversion=4.0.1; charset=utf-8",
            Format::Json,
        ),
        ("application/fhir+json; boundary=ignored", Format::Json),
        ("application/fhir+json;", Format::Json),
        ("  application/json  ", Format::Json),
        ("application/fhir+xml", Format::Xml),
        ("application/xml", Format::Xml),
        ("application/xml+fhir", Format::Xml),
        ("text/xml", Format::Xml),
        ("Text/XML; charset=utf-8", Format::Xml),
        ("application/fhir+xml; fhirVersion=4.0", Format::Xml),
    ];
    for (header, expected) in cases {
        assert_eq!(
            request_format(Some(header)),
            Ok(*expected),
            "Content-Type {header:?}"
        );
    }
}

#[test]
fn request_format_rejects_missing_and_unsupported_types() {
    // (header, a fragment the diagnostics must contain)
    let cases: &[(Option<&str>, &str)] = &[
        (None, "no Content-Type"),
        (Some(""), "no Content-Type"),
        (Some("   "), "no Content-Type"),
        (Some("text/plain"), "`text/plain` is not supported"),
        (Some("application/fhir+turtle"), "is not supported"),
        (
            Some("application/x-www-form-urlencoded"),
            "is not supported",
        ),
        (
            Some("application/fhir+json; charset=iso-8859-1"),
            "charset must be utf-8",
        ),
        (
            Some("application/fhir+json; fhirVersion=3.0"),
            "fhirVersion must be 4.0",
        ),
        (
            Some("application/fhir+xml; fhirVersion=5.0"),
            "fhirVersion must be 4.0",
        ),
        (Some("application/fhir+json; charset"), "malformed"),
        (Some("json"), "malformed"),
        (Some("application/json extra"), "malformed"),
    ];
    for (header, fragment) in cases {
        let issue = request_format(*header).expect_err(&format!("{header:?} must fail"));
        assert_eq!(issue.code, IssueCode::NotSupported, "{header:?}");
        assert_eq!(issue.severity, Severity::Error);
        assert!(
            issue.diagnostics.contains(fragment),
            "{header:?}: {:?} lacks {fragment:?}",
            issue.diagnostics
        );
        // Every rejection tells the client what would work.
        assert!(
            issue.diagnostics.contains("application/fhir+json")
                && issue.diagnostics.contains("application/fhir+xml"),
            "{header:?}: {:?}",
            issue.diagnostics
        );
    }
}

#[test]
fn request_format_does_not_echo_odd_header_bytes() {
    let issue = request_format(Some("text/<script>")).unwrap_err();
    assert!(
        !issue.diagnostics.contains("<script>"),
        "{}",
        issue.diagnostics
    );
}

#[test]
fn response_format_table() {
    use Format::{Json, Xml};
    // (Accept, _format, fallback, expected)
    let cases: &[(Option<&str>, Option<&str>, Format, Format)] = &[
        // No preference at all: the fallback (usually the request's format).
        (None, None, Json, Json),
        (None, None, Xml, Xml),
        (Some(""), None, Xml, Xml),
        (Some("  "), None, Json, Json),
        (Some("*/*"), None, Xml, Xml),
        (Some("*/*"), None, Json, Json),
        (Some("application/*"), None, Xml, Xml),
        (Some("text/*"), None, Json, Xml),
        // Specific types.
        (Some("application/fhir+json"), None, Xml, Json),
        (Some("application/json"), None, Xml, Json),
        (Some("application/json+fhir"), None, Xml, Json),
        (Some("application/fhir+xml"), None, Json, Xml),
        (Some("application/xml"), None, Json, Xml),
        (Some("text/xml"), None, Json, Xml),
        (Some("APPLICATION/FHIR+XML"), None, Json, Xml),
        // q-values: highest wins, ties go to the earlier range.
        (
            Some("application/fhir+xml;q=0.5, application/fhir+json"),
            None,
            Xml,
            Json,
        ),
        (
            Some("application/fhir+json;q=0.4, application/fhir+xml;q=0.9"),
            None,
            Json,
            Xml,
        ),
        (
            Some("application/fhir+xml, application/fhir+json"),
            None,
            Json,
            Xml,
        ),
        (
            Some("application/fhir+json, application/fhir+xml"),
            None,
            Xml,
            Json,
        ),
        (
            Some("application/fhir+xml;q=0.8, application/fhir+json;q=0.8"),
            None,
            Json,
            Xml,
        ),
        // q=0 excludes, even when a wildcard would allow it.
        (Some("application/fhir+json;q=0, */*"), None, Json, Xml),
        (Some("application/fhir+xml;q=0, */*;q=0.1"), None, Xml, Json),
        // A more specific range overrides a wildcard's quality.
        (
            Some("*/*;q=0.9, application/fhir+xml;q=0.2"),
            None,
            Xml,
            Json,
        ),
        // Two JSON types: the better quality counts for JSON.
        (
            Some("application/json;q=0.9, application/fhir+json;q=0.1, application/xml;q=0.5"),
            None,
            Xml,
            Json,
        ),
        // A browser: XML named at 0.9 beats the 0.8 wildcard.
        (
            Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            None,
            Json,
            Xml,
        ),
        // Irrelevant, malformed or foreign-version ranges are skipped.
        (Some("text/html, application/fhir+json"), None, Xml, Json),
        (Some("garbage, application/fhir+xml"), None, Json, Xml),
        (
            Some("application/fhir+json;q=2, application/fhir+xml"),
            None,
            Json,
            Xml,
        ),
        (
            Some("application/fhir+json;q=abc, application/fhir+xml;q=0.1"),
            None,
            Json,
            Xml,
        ),
        (
            Some("application/fhir+json; fhirVersion=3.0, application/fhir+xml"),
            None,
            Json,
            Xml,
        ),
        (
            Some("application/fhir+json; fhirVersion=4.0"),
            None,
            Xml,
            Json,
        ),
        (
            Some("application/fhir+json; fhirVersion=4.0.1"),
            None,
            Xml,
            Json,
        ),
        (Some("application/fhir+xml; charset=utf-8"), None, Json, Xml),
        // _format overrides Accept.
        (Some("application/fhir+xml"), Some("json"), Xml, Json),
        (Some("application/fhir+json"), Some("xml"), Json, Xml),
        (None, Some("JSON"), Xml, Json),
        (None, Some("application/json"), Xml, Json),
        (None, Some("application/fhir+json"), Xml, Json),
        (None, Some("application/fhir json"), Xml, Json),
        (None, Some("text/xml"), Json, Xml),
        (None, Some("application/xml"), Json, Xml),
        (None, Some("application/fhir+xml"), Json, Xml),
        (None, Some("application/fhir xml"), Json, Xml),
        (
            None,
            Some("application/fhir+xml;fhirVersion=4.0"),
            Json,
            Xml,
        ),
        // An empty _format is no _format.
        (Some("application/fhir+xml"), Some(""), Json, Xml),
        // _format rescues an Accept that would otherwise be refused.
        (Some("text/html"), Some("json"), Xml, Json),
    ];
    for (accept, param, fallback, expected) in cases {
        assert_eq!(
            response_format(*accept, *param, *fallback),
            Ok(*expected),
            "Accept {accept:?}, _format {param:?}, fallback {fallback:?}"
        );
    }
}

#[test]
fn response_format_refuses_when_nothing_is_acceptable() {
    // (Accept, _format, a fragment the diagnostics must contain)
    let cases: &[(Option<&str>, Option<&str>, &str)] = &[
        (Some("text/html"), None, "Accept"),
        (Some("application/fhir+turtle"), None, "Accept"),
        (Some("application/fhir+json;q=0"), None, "Accept"),
        (
            Some("application/fhir+json;q=0, application/fhir+xml;q=0.000"),
            None,
            "Accept",
        ),
        (Some("*/*;q=0"), None, "Accept"),
        (
            Some("application/fhir+json; fhirVersion=3.0"),
            None,
            "Accept",
        ),
        (
            Some("application/fhir+xml; charset=iso-8859-1"),
            None,
            "Accept",
        ),
        (Some(",,,"), None, "Accept"),
        (None, Some("html"), "_format"),
        (None, Some("ttl"), "_format"),
        (None, Some("application/fhir+turtle"), "_format"),
        (Some("application/fhir+json"), Some("yaml"), "_format"),
        (
            None,
            Some("application/fhir+json;fhirVersion=5.0"),
            "fhirVersion",
        ),
    ];
    for (accept, param, fragment) in cases {
        let issue = response_format(*accept, *param, Format::Json)
            .expect_err(&format!("Accept {accept:?}, _format {param:?} must fail"));
        assert_eq!(issue.code, IssueCode::NotSupported);
        assert!(
            issue.diagnostics.contains(fragment),
            "{accept:?}/{param:?}: {:?} lacks {fragment:?}",
            issue.diagnostics
        );
    }
}

#[test]
fn quality_parsing_follows_rfc_9110() {
    let cases: &[(&str, Option<u16>)] = &[
        ("a/b", Some(1000)),
        ("a/b;q=1", Some(1000)),
        ("a/b;q=1.000", Some(1000)),
        ("a/b;q=0", Some(0)),
        ("a/b;q=0.5", Some(500)),
        ("a/b; q=0.25", Some(250)),
        ("a/b;Q=0.125", Some(125)),
        ("a/b;q=0.", Some(0)),
        ("a/b;q=1.5", None),
        ("a/b;q=0.1234", None),
        ("a/b;q=-0.5", None),
        ("a/b;q=.5", None),
        ("a/b;q=", None),
    ];
    for (text, expected) in cases {
        let media = MediaType::parse(text).unwrap();
        assert_eq!(media.quality(), *expected, "{text}");
    }
}

#[test]
fn wants_pretty_only_for_true() {
    let cases: &[(Option<&str>, bool)] = &[
        (None, false),
        (Some("true"), true),
        (Some("TRUE"), true),
        (Some(" true "), true),
        (Some("false"), false),
        (Some(""), false),
        (Some("1"), false),
        (Some("yes"), false),
    ];
    for (param, expected) in cases {
        assert_eq!(wants_pretty(*param), *expected, "{param:?}");
    }
}

fn booked() -> Appointment {
    Appointment {
        id: Some("abc".into()),
        status: "booked".into(),
        participant: vec![AppointmentParticipant {
            status: "accepted".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn serialize_json_compact_and_pretty() {
    let compact = serialize(&booked(), Format::Json, false);
    let pretty = serialize(&booked(), Format::Json, true);
    assert!(!compact.contains(&b'\n'), "compact JSON has no newlines");
    assert!(pretty.contains(&b'\n'), "pretty JSON is indented");
    for bytes in [&compact, &pretty] {
        let value: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(value["resourceType"], "Appointment");
        assert_eq!(value["id"], "abc");
        assert_eq!(value["status"], "booked");
        assert_eq!(value["participant"][0]["status"], "accepted");
    }
}

#[test]
fn serialize_xml_round_trips() {
    let bytes = serialize(&booked(), Format::Xml, false);
    let text = std::str::from_utf8(&bytes).unwrap();
    assert!(
        text.contains(r#"<Appointment xmlns="http://hl7.org/fhir">"#),
        "{text}"
    );
    assert!(text.contains(r#"<status value="booked"/>"#), "{text}");
    let back: Appointment = fhirbolt::xml::from_slice(&bytes, None).unwrap();
    assert_eq!(back, booked());
}

#[test]
fn serialize_any_resource_including_operation_outcome() {
    let outcome =
        crate::fhir::outcome::operation_outcome(&[Issue::general(IssueCode::NotSupported, "nope")]);
    let value: serde_json::Value =
        serde_json::from_slice(&serialize(&outcome, Format::Json, false)).unwrap();
    assert_eq!(value["resourceType"], "OperationOutcome");
    assert_eq!(value["issue"][0]["code"], "not-supported");
}

#[test]
fn serialize_failure_yields_a_fallback_outcome_not_a_panic() {
    // A default Appointment has no status (fhirbolt marks the required code as "$invalid"), so
    // fhirbolt refuses to write it.
    let broken = Appointment::default();
    assert!(fhirbolt::json::to_vec(&broken, None).is_err());

    let json = serialize(&broken, Format::Json, true);
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(value["resourceType"], "OperationOutcome");
    assert_eq!(value["issue"][0]["severity"], "fatal");
    assert_eq!(value["issue"][0]["code"], "exception");
    assert_eq!(
        value["issue"][0]["diagnostics"],
        "the response could not be serialized"
    );
    // The fallback is itself a valid R4 OperationOutcome.
    let parsed: fhirbolt::model::r4::resources::OperationOutcome =
        fhirbolt::json::from_slice(&json, None).unwrap();
    assert_eq!(parsed.issue[0].code.value.as_deref(), Some("exception"));

    let xml = serialize(&broken, Format::Xml, false);
    let parsed: fhirbolt::model::r4::resources::OperationOutcome =
        fhirbolt::xml::from_slice(&xml, None).unwrap();
    assert_eq!(parsed.issue[0].severity.value.as_deref(), Some("fatal"));
    assert_eq!(
        parsed.issue[0]
            .diagnostics
            .as_ref()
            .and_then(|d| d.value.as_deref()),
        Some("the response could not be serialized")
    );
}
