use super::*;

mod robustness;

/// A "patient name" planted as a wrong-typed value: it must never come back in diagnostics.
const MARKER: &str = "Zebulon Quixote";

const EXAMPLE_JSON: &[u8] = include_bytes!("../../../tests/fixtures/fhir/appointment-example.json");
const EXAMPLE_XML: &[u8] = include_bytes!("../../../tests/fixtures/fhir/appointment-example.xml");
const REQUEST_JSON: &[u8] =
    include_bytes!("../../../tests/fixtures/fhir/appointment-example-request.json");
const REQUEST_XML: &[u8] =
    include_bytes!("../../../tests/fixtures/fhir/appointment-example-request.xml");
const TWO_DOCTORS_JSON: &[u8] =
    include_bytes!("../../../tests/fixtures/fhir/appointment-example2doctors.json");
const TWO_DOCTORS_XML: &[u8] =
    include_bytes!("../../../tests/fixtures/fhir/appointment-example2doctors.xml");
const NOSHOW_JSON: &[u8] = include_bytes!(
    "../../../tests/fixtures/fhir/invalid/medplum-issue-4444-noshow-with-cancelationReason.json"
);
const SLOT_JSON: &[u8] = include_bytes!("../../../tests/fixtures/fhir/slot-example.json");
const HL7_INVALID_XML: [(&str, &[u8]); 3] = [
    (
        "app-2",
        include_bytes!("../../../tests/fixtures/fhir/invalid/app-2.f1.fail.xml"),
    ),
    (
        "app-3",
        include_bytes!("../../../tests/fixtures/fhir/invalid/app-3.f1.fail.xml"),
    ),
    (
        "app-4",
        include_bytes!("../../../tests/fixtures/fhir/invalid/app-4.f1.fail.xml"),
    ),
];

const MINIMAL_JSON: &str = r#"{"resourceType":"Appointment","status":"booked","participant":[{"status":"accepted","actor":{"reference":"Patient/1"}}]}"#;
const MINIMAL_XML: &str = r#"<Appointment xmlns="http://hl7.org/fhir"><status value="booked"/><participant><actor><reference value="Patient/1"/></actor><status value="accepted"/></participant></Appointment>"#;

#[test]
fn missing_json_statuses_parse_as_absent_so_the_rules_can_name_them() {
    let a = parse_appointment(
        br#"{"resourceType":"Appointment","participant":[{"actor":{"reference":"Patient/1"}},{"status":"accepted","type":[{"text":"x"}]}]}"#,
        Format::Json,
    )
    .unwrap();
    assert_eq!(a.status.value, None);
    assert_eq!(a.participant[0].status.value, None);
    assert_eq!(a.participant[1].status.value.as_deref(), Some("accepted"));
}

#[test]
fn missing_xml_statuses_parse_as_absent_like_json() {
    // (XML, the same in JSON, or None when JSON cannot say it)
    let cases: &[(&str, Option<&str>)] = &[
        (
            r#"<Appointment xmlns="http://hl7.org/fhir"><participant><actor><reference value="Patient/1"/></actor></participant><participant><type><text value="x"/></type><status value="accepted"/></participant></Appointment>"#,
            Some(
                r#"{"resourceType":"Appointment","participant":[{"actor":{"reference":"Patient/1"}},{"status":"accepted","type":[{"text":"x"}]}]}"#,
            ),
        ),
        (
            r#"<?xml version="1.0" encoding="UTF-8"?>
<Appointment xmlns="http://hl7.org/fhir">
  <id value="a"/>
  <participant><status value="accepted"/><actor><reference value="Patient/1"/></actor></participant>
  <participant>
<actor><reference value="Location/1"/></actor>
  </participant>
  <status value="booked"/>
</Appointment>"#,
            Some(
                r#"{"resourceType":"Appointment","id":"a","status":"booked","participant":[{"status":"accepted","actor":{"reference":"Patient/1"}},{"actor":{"reference":"Location/1"}}]}"#,
            ),
        ),
        (
            r#"<Appointment xmlns="http://hl7.org/fhir"><status value="booked"/><participant/></Appointment>"#,
            None,
        ),
        (r#"<Appointment xmlns="http://hl7.org/fhir"/>"#, None),
        (
            r#"<Appointment xmlns="http://hl7.org/fhir"></Appointment>"#,
            Some(r#"{"resourceType":"Appointment","id":"x"}"#),
        ),
    ];
    for (xml, json) in cases {
        let from_xml = parse_appointment(xml.as_bytes(), Format::Xml)
            .unwrap_or_else(|e| panic!("{xml}: {e:?}"));
        let statuses = |a: &Appointment| {
            let mut all = vec![a.status.value.clone()];
            all.extend(a.participant.iter().map(|p| p.status.value.clone()));
            all
        };
        // No placeholder survives parsing.
        assert!(
            statuses(&from_xml)
                .iter()
                .flatten()
                .all(|s| !s.contains("missing-status")),
            "{xml}"
        );
        if let Some(json) = json {
            let mut from_json = parse_appointment(json.as_bytes(), Format::Json).unwrap();
            from_json.id = from_xml.id.clone();
            assert_eq!(from_xml, from_json, "{xml}");
        }
    }
    let empty_participant = parse_appointment(cases[2].0.as_bytes(), Format::Xml).unwrap();
    assert_eq!(empty_participant.status.value.as_deref(), Some("booked"));
    assert_eq!(empty_participant.participant.len(), 1);
    assert_eq!(empty_participant.participant[0].status.value, None);
    let empty_root = parse_appointment(cases[3].0.as_bytes(), Format::Xml).unwrap();
    assert_eq!(empty_root.status.value, None);
    assert!(empty_root.participant.is_empty());
}

#[test]
fn placeholders_are_inserted_in_document_order() {
    let text = "<A><p></p><p/></A>";
    let mut placeholders = StatusPlaceholders::default();
    placeholders.insert(6); // inside the first <p>, found first
    placeholders.expand(10, 14, "<p/>", "p");
    placeholders.insert(3); // the root's, found last
    let e = StatusPlaceholders::ELEMENT;
    assert_eq!(
        placeholders.apply(text, 0),
        format!("<A>{e}<p>{e}</p><p>{e}</p></A>")
    );
    assert_eq!(StatusPlaceholders::default().apply(text, 3), &text[3..]);
}

fn err(body: &[u8], format: Format) -> Issue {
    match parse_appointment(body, format) {
        Ok(_) => panic!(
            "expected an error for {:?}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ),
        Err(issue) => issue,
    }
}

#[test]
fn fixtures_parse_in_both_formats() {
    // (body, format, status, number of participants, start)
    type Case<'a> = (&'a [u8], Format, &'a str, usize, Option<&'a str>);
    let cases: &[Case] = &[
        (
            EXAMPLE_JSON,
            Format::Json,
            "booked",
            3,
            Some("2013-12-10T09:00:00Z"),
        ),
        (
            EXAMPLE_XML,
            Format::Xml,
            "booked",
            3,
            Some("2013-12-10T09:00:00Z"),
        ),
        (REQUEST_JSON, Format::Json, "proposed", 3, None),
        (REQUEST_XML, Format::Xml, "proposed", 3, None),
        (
            TWO_DOCTORS_JSON,
            Format::Json,
            "booked",
            4,
            Some("2013-12-09T09:00:00Z"),
        ),
        (
            TWO_DOCTORS_XML,
            Format::Xml,
            "booked",
            4,
            Some("2013-12-09T09:00:00Z"),
        ),
        (
            NOSHOW_JSON,
            Format::Json,
            "noshow",
            1,
            Some("2024-04-24T22:19:00.000Z"),
        ),
    ];
    for (body, format, status, participants, start) in cases {
        let appointment = parse_appointment(body, *format)
            .unwrap_or_else(|e| panic!("{format:?} fixture with {status}: {e:?}"));
        assert_eq!(appointment.status.value.as_deref(), Some(*status));
        assert_eq!(appointment.participant.len(), *participants);
        assert_eq!(
            appointment.start.as_ref().and_then(|s| s.value.as_deref()),
            *start
        );
    }
}

#[test]
fn json_and_xml_fixtures_parse_to_the_same_appointment() {
    for (json, xml) in [
        (EXAMPLE_JSON, EXAMPLE_XML),
        (REQUEST_JSON, REQUEST_XML),
        (TWO_DOCTORS_JSON, TWO_DOCTORS_XML),
    ] {
        let mut from_json = parse_appointment(json, Format::Json).unwrap();
        let mut from_xml = parse_appointment(xml, Format::Xml).unwrap();
        // The narrative differs in insignificant whitespace between the spec's two files.
        from_json.text = None;
        from_xml.text = None;
        assert_eq!(from_json, from_xml);
    }
}

#[test]
fn minimal_bodies_parse() {
    let json = parse_appointment(MINIMAL_JSON.as_bytes(), Format::Json).unwrap();
    let xml = parse_appointment(MINIMAL_XML.as_bytes(), Format::Xml).unwrap();
    assert_eq!(json, xml);
    assert_eq!(
        json.participant[0]
            .actor
            .as_ref()
            .and_then(|a| a.reference.as_ref())
            .and_then(|r| r.value.as_deref()),
        Some("Patient/1")
    );
}

#[test]
fn tolerated_variations() {
    let cases: &[(String, Format)] = &[
        // Byte-order mark.
        (format!("\u{feff}{MINIMAL_JSON}"), Format::Json),
        (format!("\u{feff}{MINIMAL_XML}"), Format::Xml),
        // resourceType need not come first.
        (
            r#"{"status":"booked","participant":[{"status":"accepted","type":[{"text":"x"}]}],"resourceType":"Appointment"}"#.into(),
            Format::Json,
        ),
        // Lower-case encoding name, which fhirbolt alone rejects.
        (
            format!(r#"<?xml version="1.0" encoding="utf-8"?>{MINIMAL_XML}"#),
            Format::Xml,
        ),
        (
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<!-- c -->\n{MINIMAL_XML}\n"),
            Format::Xml,
        ),
        // Leading whitespace without a declaration; entities and character references.
        (
            format!("\n  {}", MINIMAL_XML.replace("Patient/1", "Patient/&#49;&amp;x")),
            Format::Xml,
        ),
        // null inside a primitive array aligns it with its `_` twin.
        (
            r#"{"resourceType":"Appointment","status":"booked","participant":[{"status":"accepted","type":[{"coding":[{"code":"ATND"}],"text":"x"}]}],"identifier":[{"value":"1"}],"serviceType":[{"coding":[{"code":"52"}]}],"reasonCode":[{"text":"a"}],"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"contained":[{"resourceType":"Patient","id":"p","name":[{"given":["A",null],"_given":[null,{"extension":[{"url":"u","valueString":"b"}]}]}]}]}"#.into(),
            Format::Json,
        ),
    ];
    for (body, format) in cases {
        let parsed = parse_appointment(body.as_bytes(), *format);
        assert!(parsed.is_ok(), "{body}: {parsed:?}");
        assert_eq!(
            parsed.unwrap().status.value.as_deref(),
            Some("booked"),
            "{body}"
        );
    }
}

/// (body, format, code, a diagnostics fragment, expression)
type ErrorCase = (
    String,
    Format,
    IssueCode,
    &'static str,
    Option<&'static str>,
);

fn json_with(fragment: &str) -> String {
    format!(
        r#"{{"resourceType":"Appointment","status":"booked","participant":[{{"status":"accepted","actor":{{"reference":"Patient/1"}}}}]{fragment}}}"#
    )
}

fn xml_with(inside: &str) -> String {
    format!(
        r#"<Appointment xmlns="http://hl7.org/fhir"><status value="booked"/>{inside}<participant><actor><reference value="Patient/1"/></actor><status value="accepted"/></participant></Appointment>"#
    )
}

#[test]
fn json_errors() {
    use IssueCode::{Invalid, Required, Structure};
    let cases: Vec<ErrorCase> = vec![
        ("".into(), Format::Json, Required, "the request body is empty", None),
        (" \r\n\t".into(), Format::Json, Required, "the request body is empty", None),
        ("{".into(), Format::Json, Structure, "ends unexpectedly (line 1, column 1)", None),
        ("{\n  \"a\" 1}".into(), Format::Json, Structure, "not valid JSON (line 2, column 7)", None),
        (format!("{MINIMAL_JSON} x"), Format::Json, Structure, "not valid JSON", None),
        ("[]".into(), Format::Json, Structure, "must be an object", None),
        ("\"Appointment\"".into(), Format::Json, Structure, "must be an object", None),
        ("42".into(), Format::Json, Structure, "must be an object", None),
        (r#"{"status":"booked"}"#.into(), Format::Json, Structure, "no `resourceType`", None),
        (r#"{"resourceType":5}"#.into(), Format::Json, Structure, "`resourceType` must be a string", None),
        (r#"{"resourceType":"Patient","name":[{"family":"Smith"}]}"#.into(), Format::Json, Invalid, "expected an Appointment, got a Patient", None),
        (format!(r#"{{"resourceType":"{MARKER}"}}"#), Format::Json, Invalid, "got an unknown resource type", None),
        (r#"{"resourceType":""}"#.into(), Format::Json, Invalid, "got an unknown resource type", None),
        (format!(r#"{{"resourceType":"{}"}}"#, "A".repeat(65)), Format::Json, Invalid, "got an unknown resource type", None),
        (json_with(r#","status":"cancelled""#), Format::Json, Structure, "duplicate property `status`", None),
        (r#"{"resourceType":"Appointment","status":"booked","participant":[{"status":"accepted","status":"declined"}]}"#.into(), Format::Json, Structure, "duplicate property `status`", None),
        (json_with(r#","description":null"#), Format::Json, Structure, "`description` is null", Some("Appointment.description")),
        (json_with(r#","slot":[]"#), Format::Json, Structure, "`slot` is an empty array", Some("Appointment.slot")),
        (r#"{"resourceType":"Appointment","status":"booked","participant":[]}"#.into(), Format::Json, Structure, "empty array", Some("Appointment.participant")),
        (r#"{"resourceType":"Appointment","status":"booked","participant":[{"status":"accepted","actor":{}}]}"#.into(), Format::Json, Structure, "an empty object", Some("Appointment.participant[0].actor")),
        (r#"{"resourceType":"Appointment","status":"booked","participant":[{"status":"accepted","type":[{"coding":[{"code":null}]}]}]}"#.into(), Format::Json, Structure, "`code` is null", Some("Appointment.participant[0].type[0].coding[0].code")),
        (json_with(&format!(r#","{MARKER}":1"#)), Format::Json, Structure, "not a FHIR element name", Some("Appointment")),
        (json_with(r#","foo":1"#), Format::Json, Structure, "unknown field `foo`", None),
        (json_with(r#","cancellationReason":{"text":"x"}"#), Format::Json, Structure, "unknown field `cancellationReason`", None),
        (json_with(r#","priority":"5""#), Format::Json, Structure, "invalid type: string, expected u32", None),
        (json_with(r#","participant":{"status":"accepted"}"#), Format::Json, Structure, "duplicate property `participant`", None),
        (r#"{"resourceType":"Appointment","status":"booked","participant":{"status":"accepted"}}"#.into(), Format::Json, Structure, "invalid type: map, expected a sequence", None),
        (json_with(r#","contained":[{"resourceType":"Patient","active":"yes"}]"#), Format::Json, Structure, "does not match the R4 Appointment structure", None),
    ];
    check_error_cases(&cases);
}

#[test]
fn xml_errors() {
    use IssueCode::{Invalid, Required, Structure};
    let cases: Vec<ErrorCase> = vec![
        ("".into(), Format::Xml, Required, "the request body is empty", None),
        ("<".into(), Format::Xml, Structure, "not well-formed", None),
        ("<Appointment xmlns=\"http://hl7.org/fhir\">".into(), Format::Xml, Structure, "ends before all elements are closed", None),
        ("<!-- only a comment -->".into(), Format::Xml, Structure, "no root element", None),
        (MINIMAL_XML.replace("</participant>", "</participan>"), Format::Xml, Structure, "an end tag does not match its start tag", None),
        (MINIMAL_XML.replace("<status value=\"booked\"/>", "<status value=\"booked\" value=\"x\"/>"), Format::Xml, Structure, "attribute", None),
        (MINIMAL_XML.replace("<status value=\"booked\"/>", "<status value=booked/>"), Format::Xml, Structure, "not well-formed", None),
        (format!("<!DOCTYPE Appointment [<!ENTITY x \"{MARKER}\">]>{}", MINIMAL_XML.replace("Patient/1", "&x;")), Format::Xml, Structure, "DOCTYPE declarations are not allowed in FHIR XML (line 1, column 1)", None),
        (MINIMAL_XML.replace("Patient/1", "&x;"), Format::Xml, Structure, "undefined entity", None),
        (xml_with("<comment value=\"&#0;\"/>"), Format::Xml, Structure, "undefined entity or invalid character reference", None),
        (xml_with("<?pi data?>"), Format::Xml, Structure, "processing instructions are not allowed", None),
        (xml_with("<comment><![CDATA[x]]></comment>"), Format::Xml, Structure, "CDATA", None),
        (format!("{MINIMAL_XML}<Appointment xmlns=\"http://hl7.org/fhir\"/>"), Format::Xml, Structure, "more than one root element", None),
        (format!("{MINIMAL_XML}trailing"), Format::Xml, Structure, "text outside the root element", None),
        (format!("\n{}", r#"<?xml version="1.0"?><Appointment xmlns="http://hl7.org/fhir"/>"#), Format::Xml, Structure, "the XML declaration must come first in the document (line 2, column 1)", None),
        (format!(r#"<?xml version="1.0" encoding="ISO-8859-1"?>{MINIMAL_XML}"#), Format::Xml, Structure, "encoding=\"UTF-8\"", None),
        (format!(r#"<?xml version="1.1"?>{MINIMAL_XML}"#), Format::Xml, Structure, "version=\"1.0\"", None),
        (MINIMAL_XML.replace(" xmlns=\"http://hl7.org/fhir\"", ""), Format::Xml, Structure, "root element must be in the FHIR namespace", None),
        (MINIMAL_XML.replace("http://hl7.org/fhir", "http://hl7.org/fhir/R5"), Format::Xml, Structure, "root element must be in the FHIR namespace", None),
        ("<Patient xmlns=\"http://hl7.org/fhir\"><name><family value=\"Smith\"/></name></Patient>".into(), Format::Xml, Invalid, "expected an Appointment, got a Patient", None),
        (MINIMAL_XML.replace("<Appointment ", "<f:Appointment xmlns:f=\"http://hl7.org/fhir\" ").replace("</Appointment>", "</f:Appointment>"), Format::Xml, Structure, "attribute `xmlns:f` is not allowed", None),
        (MINIMAL_XML.replace("<Appointment xmlns=\"http://hl7.org/fhir\">", "<Appointment xmlns=\"http://hl7.org/fhir\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">"), Format::Xml, Structure, "attribute `xmlns:xsi` is not allowed", None),
        (xml_with("<comment xmlns=\"urn:other\" value=\"x\"/>"), Format::Xml, Structure, "element `comment` is not in the FHIR namespace", None),
        (xml_with("<foo value=\"x\"/>"), Format::Xml, Structure, "unknown field `foo`", None),
        (xml_with("<priority value=\"high\"/>"), Format::Xml, Structure, "does not match the R4 Appointment structure", None),
        (xml_with("<text>loose</text>"), Format::Xml, Structure, "text outside of div", None),
    ];
    check_error_cases(&cases);
}

fn check_error_cases(cases: &[ErrorCase]) {
    for (body, format, code, fragment, expression) in cases {
        let issue = err(body.as_bytes(), *format);
        assert_eq!(issue.code, *code, "{body}: {issue:?}");
        assert!(
            issue.diagnostics.contains(fragment),
            "{body}: {:?} lacks {fragment:?}",
            issue.diagnostics
        );
        assert_eq!(issue.expression.as_deref(), *expression, "{body}");
        assert!(!issue.diagnostics.contains(MARKER), "{body}: {issue:?}");
        assert!(!issue.diagnostics.contains("Smith"), "{body}: {issue:?}");
    }
}

#[test]
fn not_utf8_is_a_structure_issue_with_the_offset() {
    for format in [Format::Json, Format::Xml] {
        let issue = err(b"{\"a\":\"\xff\xfe\"}", format);
        assert_eq!(issue.code, IssueCode::Structure);
        assert!(
            issue
                .diagnostics
                .contains("not valid UTF-8 (first invalid byte at offset 6)"),
            "{issue:?}"
        );
    }
}

#[test]
fn wrong_typed_values_are_not_echoed() {
    // Each body plants MARKER where fhirbolt's message would quote it (or, for contained
    // resources, print it bare); (body, format, what the message must still say)
    let cases: Vec<(String, Format, &str)> = vec![
        (
            json_with(&format!(r#","priority":"{MARKER}""#)),
            Format::Json,
            "invalid type: string, expected u32",
        ),
        (
            json_with(&format!(r#","minutesDuration":["{MARKER}"]"#)),
            Format::Json,
            "invalid type: sequence",
        ),
        (
            json_with(&format!(r#","description":{{"text":"{MARKER}"}}"#)),
            Format::Json,
            "invalid type: map, expected a string",
        ),
        (
            json_with(&format!(
                r#","extension":[{{"url":"u","valueBoolean":"{MARKER}"}}]"#
            )),
            Format::Json,
            "expected a boolean",
        ),
        (
            json_with(&format!(
                r#","extension":[{{"url":"u","valueDecimal":"{MARKER}"}}]"#
            )),
            Format::Json,
            "invalid type: string",
        ),
        (
            json_with(&format!(
                r#","contained":[{{"resourceType":"Patient","active":"{MARKER}"}}]"#
            )),
            Format::Json,
            "does not match",
        ),
        (
            json_with(&format!(
                r#","contained":[{{"resourceType":"Patient","multipleBirthInteger":"{MARKER}"}}]"#
            )),
            Format::Json,
            "does not match",
        ),
        (
            json_with(
                r#","contained":[{"resourceType":"Patient","multipleBirthInteger":1234.5678}]"#,
            ),
            Format::Json,
            "does not match",
        ),
        (
            json_with(&format!(r#","contained":[{{"resourceType":"{MARKER}"}}]"#)),
            Format::Json,
            "does not match",
        ),
        (
            xml_with(&format!(r#"<priority value="{MARKER}"/>"#)),
            Format::Xml,
            "does not match",
        ),
        (
            xml_with(&format!(r#"<minutesDuration value="{MARKER}"/>"#)),
            Format::Xml,
            "does not match",
        ),
        (
            xml_with(&format!(
                r#"<contained><Patient><active value="{MARKER}"/></Patient></contained>"#
            )),
            Format::Xml,
            "a value is not a valid boolean",
        ),
        (
            xml_with(&format!(
                r#"<contained><Patient><multipleBirthInteger value="{MARKER}"/></Patient></contained>"#
            )),
            Format::Xml,
            "a value is not a valid integer",
        ),
        (
            xml_with(r#"<contained><Patient><active value="1234"/></Patient></contained>"#),
            Format::Xml,
            "a value is not a valid boolean",
        ),
        (
            xml_with(r#"<minutesDuration value="99999999999"/>"#),
            Format::Xml,
            "an integer is out of range",
        ),
    ];
    for (body, format, fragment) in cases {
        let issue = err(body.as_bytes(), format);
        assert_eq!(issue.code, IssueCode::Structure, "{body}");
        assert!(
            issue.diagnostics.contains(fragment),
            "{body}: {:?} lacks {fragment:?}",
            issue.diagnostics
        );
        for secret in [MARKER, "Zebulon", "Quixote", "1234"] {
            assert!(!issue.diagnostics.contains(secret), "{body}: {issue:?}");
        }
    }
}

#[test]
fn sanitize_table() {
    let cases: &[(&str, &str)] = &[
        (
            r#"invalid type: string "Zebulon Quixote", expected u32"#,
            "invalid type: string, expected u32",
        ),
        (
            "invalid value: Zebulon Quixote, expected a boolean",
            "invalid value, expected a boolean",
        ),
        (
            "invalid value: a, expected b, expected a boolean",
            "invalid value, expected a boolean",
        ),
        ("invalid value: Zebulon", "invalid value"),
        ("ParseBoolError", "a value is not a valid boolean"),
        (
            "ParseIntError { kind: InvalidDigit }",
            "a value is not a valid integer",
        ),
        (
            "ParseIntError { kind: PosOverflow }",
            "an integer is out of range",
        ),
        ("ParseIntError { kind: Empty }", "an integer value is empty"),
        (
            "invalid type: integer `5551234`, expected a string",
            "invalid type: integer, expected a string",
        ),
        (
            "invalid type: decimal `12.5`, expected an integer",
            "invalid type: decimal, expected an integer",
        ),
        (
            "invalid type: Zebulon Quixote, expected a string",
            "invalid type: a value, expected a string",
        ),
        (
            "invalid type: map, expected a sequence",
            "invalid type: map, expected a sequence",
        ),
        (
            "unknown field `foo`, expected one of `id`, `meta`",
            "unknown field `foo`",
        ),
        (
            r#"unknown field `foo`, expected one of ["id", "meta"]"#,
            "unknown field `foo`",
        ),
        (
            "unknown field `Zebulon Quixote`, there are no fields",
            "unknown field `…`",
        ),
        (
            "unknown variant `123`, expected one of `a`",
            "unknown variant `…`",
        ),
        ("missing field `status`", "missing field `status`"),
        ("duplicate field `value[x]`", "duplicate field `value[x]`"),
        (
            r#"something "Zebulon \"Q\" Quixote" else"#,
            r#"something "…" else"#,
        ),
        (r#"open "Zebulon Quixote"#, r#"open "…""#),
        ("a `12` b `name` c", "a `…` b `name` c"),
        ("half `Zebulon Quixote", "half `…`"),
        (
            "invalid XML encoding 'utf-8' (expected 'UTF-8')",
            "invalid XML encoding 'utf-8' (expected 'UTF-8')",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(sanitize(input), *expected, "{input}");
    }
    let long = format!("unknown thing {}", "x".repeat(1000));
    let capped = sanitize(&long);
    assert_eq!(capped.chars().count(), MAX_MESSAGE_CHARS + 1);
    assert!(capped.ends_with('…'));
}

#[test]
fn line_column_counts_characters() {
    let text = "ab\ncdé\nf";
    let cases: &[(u64, &str)] = &[
        (0, "line 1, column 1"),
        (2, "line 1, column 3"),
        (3, "line 2, column 1"),
        (8, "line 3, column 1"),
        (9, "line 3, column 2"),
        (999, "line 3, column 2"),
    ];
    for (offset, expected) in cases {
        assert_eq!(line_column(text, *offset), *expected, "{offset}");
    }
}

fn nested_extension_json(levels: usize) -> String {
    let mut inner = r#"{"url":"u","valueString":"v"}"#.to_string();
    for _ in 1..levels {
        inner = format!(r#"{{"url":"u","extension":[{inner}]}}"#);
    }
    json_with(&format!(r#","extension":[{inner}]"#))
}

fn nested_extension_xml(levels: usize) -> String {
    let mut inner = r#"<extension url="u"><valueString value="v"/></extension>"#.to_string();
    for _ in 1..levels {
        inner = format!(r#"<extension url="u">{inner}</extension>"#);
    }
    xml_with(&inner)
}

#[test]
fn depth_limits_hold_exactly_and_deep_documents_parse_without_overflow() {
    // XML: root (1) + extensions + valueString; depth == MAX_XML_DEPTH parses, one more is
    // refused before fhirbolt sees it. On a 2 MiB thread the deepest accepted document would
    // overflow the stack in a debug build: this test would abort without the parser thread.
    let at_limit = nested_extension_xml(MAX_XML_DEPTH - 2);
    let parsed = parse_appointment(at_limit.as_bytes(), Format::Xml).unwrap();
    assert_eq!(parsed.extension.len(), 1);
    let over = nested_extension_xml(MAX_XML_DEPTH - 1);
    let issue = err(over.as_bytes(), Format::Xml);
    assert_eq!(issue.code, IssueCode::Structure);
    assert!(
        issue
            .diagnostics
            .contains("nested more than 64 elements deep"),
        "{issue:?}"
    );

    // JSON: the deepest document serde_json's limit lets through still parses.
    let deepest = (1..80)
        .rev()
        .find(|&n| serde_json::from_str::<Value>(&nested_extension_json(n)).is_ok())
        .unwrap();
    assert!(deepest >= 60, "serde_json's limit changed: {deepest}");
    let parsed =
        parse_appointment(nested_extension_json(deepest).as_bytes(), Format::Json).unwrap();
    assert_eq!(parsed.extension.len(), 1);
    let issue = err(nested_extension_json(deepest + 1).as_bytes(), Format::Json);
    assert_eq!(issue.code, IssueCode::Structure);
    assert!(issue.diagnostics.contains("nested too deeply"), "{issue:?}");
}

#[test]
fn guard_turns_a_panic_into_a_structure_issue() {
    let result: Result<(), Issue> = guarded(|| panic!("payload quoting {MARKER}"));
    let issue = result.unwrap_err();
    assert_eq!(issue.code, IssueCode::Structure);
    assert_eq!(issue.diagnostics, "the resource could not be parsed");
    assert!(!issue.diagnostics.contains(MARKER));
}

/// fhirbolt 0.4 panics (`Option::unwrap` on `None`, fhirbolt-serde `element/de.rs:163`) on an
/// empty JSON array anywhere inside a contained resource. These are the exact inputs found.
const FHIRBOLT_PANICS: [&str; 8] = [
    r#"{"resourceType":"Appointment","status":"booked","contained":[{"resourceType":"Patient","name":[]}]}"#,
    r#"{"resourceType":"Appointment","status":"booked","contained":[{"resourceType":"Patient","contained":[]}]}"#,
    r#"{"resourceType":"Appointment","status":"booked","contained":[{"resourceType":"Patient","extension":[]}]}"#,
    r#"{"resourceType":"Appointment","status":"booked","contained":[{"resourceType":"Patient","name":[{"given":[]}]}]}"#,
    r#"{"resourceType":"Appointment","status":"booked","contained":[{"resourceType":"Patient","active":[]}]}"#,
    r#"{"resourceType":"Appointment","status":"booked","contained":[{"resourceType":"Patient","id":[]}]}"#,
    r#"{"resourceType":"Appointment","status":"booked","contained":[{"resourceType":"Patient","meta":{"tag":[]}}]}"#,
    r#"{"resourceType":"Appointment","status":"booked","contained":[{"resourceType":"Patient","extension":[{"url":"u","valueString":[]}]}]}"#,
];

#[test]
fn regression_fhirbolt_panics_on_empty_arrays_in_contained_resources() {
    for body in FHIRBOLT_PANICS {
        // The shape check stops these before fhirbolt, with a location.
        let issue = err(body.as_bytes(), Format::Json);
        assert_eq!(issue.code, IssueCode::Structure, "{body}");
        assert!(
            issue.diagnostics.contains("empty array"),
            "{body}: {issue:?}"
        );
        assert!(
            issue
                .expression
                .as_deref()
                .is_some_and(|e| e.starts_with("Appointment.contained[0].")),
            "{body}: {issue:?}"
        );
        // Fed to fhirbolt directly, the guard still catches its panic. If this starts
        // returning an ordinary error, fhirbolt has been fixed and this note can go.
        let value: Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            json_to_appointment(value).unwrap_err(),
            could_not_be_parsed(),
            "{body}"
        );
    }
}

#[test]
fn hl7_invariant_examples_are_r5_shaped_and_rejected() {
    // The first R5-only element each file reaches: R5 renamed cancelationReason and added
    // class.
    let first_r5_element = ["`class`", "`class`", "`cancellationReason`"];
    for ((name, body), r5_element) in HL7_INVALID_XML.into_iter().zip(first_r5_element) {
        // As published: the xsi namespace declaration on the root is refused first.
        let issue = err(body, Format::Xml);
        assert_eq!(issue.code, IssueCode::Structure, "{name}");
        assert!(
            issue
                .diagnostics
                .contains("attribute `xmlns:xsi` is not allowed"),
            "{name}: {issue:?}"
        );
        // Without the schema attributes they are still R5: `class` is not an R4 element.
        let text = std::str::from_utf8(body).unwrap().replace(
            r#" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://hl7.org/fhir ../../schema/appointment.xsd""#,
            "",
        );
        let issue = err(text.as_bytes(), Format::Xml);
        assert_eq!(issue.code, IssueCode::Structure, "{name}");
        assert!(
            issue
                .diagnostics
                .contains(&format!("unknown field {r5_element}")),
            "{name}: {issue:?}"
        );
    }
}

#[test]
fn another_resource_type_is_refused_as_invalid() {
    let issue = err(SLOT_JSON, Format::Json);
    assert_eq!(issue.code, IssueCode::Invalid);
    assert_eq!(issue.diagnostics, "expected an Appointment, got a Slot");
}
