//! fhirbolt's panics and other malformed input: every body is answered with one issue that never
//! echoes a value.

use super::*;

// ----- robustness -------------------------------------------------------------------------

/// Parses and returns the issue, if any, asserting the universal guarantees: a single issue
/// that never carries the marker.
fn parse_quietly(body: &[u8], format: Format) -> Option<Issue> {
    let issue = parse_appointment(body, format).err()?;
    assert!(!issue.diagnostics.contains("Zebulon"), "{issue:?}");
    assert!(issue.diagnostics.chars().count() < 600, "{issue:?}");
    Some(issue)
}

fn trimmed_len(bytes: &[u8]) -> usize {
    bytes.len()
        - bytes
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_whitespace())
            .count()
}

#[test]
fn truncated_fixtures_are_structure_errors() {
    let fixtures: [(&[u8], Format); 6] = [
        (EXAMPLE_JSON, Format::Json),
        (REQUEST_JSON, Format::Json),
        (TWO_DOCTORS_JSON, Format::Json),
        (EXAMPLE_XML, Format::Xml),
        (REQUEST_XML, Format::Xml),
        (TWO_DOCTORS_XML, Format::Xml),
    ];
    let mut checked = 0;
    for (bytes, format) in fixtures {
        let end = trimmed_len(bytes);
        let cuts = (1..end).step_by(23).chain(end.saturating_sub(3)..end);
        for cut in cuts {
            let issue = parse_quietly(&bytes[..cut], format)
                .unwrap_or_else(|| panic!("{format:?} cut at {cut} parsed"));
            assert_eq!(
                issue.code,
                IssueCode::Structure,
                "{format:?} cut at {cut}: {issue:?}"
            );
            checked += 1;
        }
    }
    assert!(checked > 500, "{checked}");
}

#[test]
fn flipped_bytes_never_panic() {
    let replacements = [
        b'{', b'}', b'[', b']', b'"', b'<', b'>', b'/', b'&', b':', b',', 0, 0xff,
    ];
    let mut outcomes = [0usize; 2];
    for (bytes, format) in [(EXAMPLE_JSON, Format::Json), (EXAMPLE_XML, Format::Xml)] {
        for position in (0..bytes.len()).step_by(41) {
            for replacement in replacements {
                let mut mutated = bytes.to_vec();
                mutated[position] = replacement;
                let failed = parse_quietly(&mutated, format).is_some();
                outcomes[usize::from(failed)] += 1;
            }
        }
    }
    // Most mutations break the document; some (inside a string) do not.
    assert!(outcomes[1] > 200 && outcomes[0] > 0, "{outcomes:?}");
}

#[test]
fn pathological_inputs_are_refused() {
    let deep_json_array = format!(
        r#"{{"resourceType":"Appointment","extension":{}{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let deep_json_object = format!(
        r#"{{"resourceType":"Appointment","a":{}1{}}}"#,
        r#"{"a":"#.repeat(10_000),
        "}".repeat(10_000)
    );
    let deep_xml = xml_with(&format!(
        "{}{}",
        r#"<extension url="u">"#.repeat(10_000),
        "</extension>".repeat(10_000)
    ));
    let deep_div = xml_with(&format!(
        r#"<text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml">{}{}</div></text>"#,
        "<b>".repeat(10_000),
        "</b>".repeat(10_000)
    ));
    let cases: Vec<(String, Format, &str)> = vec![
        (deep_json_array, Format::Json, "nested too deeply"),
        (deep_json_object, Format::Json, "nested too deeply"),
        ("[".repeat(100_000), Format::Json, "nested too deeply"),
        (deep_xml, Format::Xml, "nested more than 64"),
        (deep_div, Format::Xml, "nested more than 64"),
        (
            json_with(&format!(r#","{}":1"#, "a".repeat(100_000))),
            Format::Json,
            "not a FHIR element name",
        ),
        (
            xml_with(&format!("<{}/>", "a".repeat(100_000))),
            Format::Xml,
            "unknown field `…`",
        ),
    ];
    for (body, format, fragment) in cases {
        let issue = parse_quietly(body.as_bytes(), format).expect("refused");
        assert_eq!(issue.code, IssueCode::Structure, "{fragment}");
        assert!(
            issue.diagnostics.contains(fragment),
            "{fragment}: {issue:?}"
        );
    }
}

#[test]
fn huge_strings_are_fine() {
    let big = "x".repeat(1 << 20);
    let json = json_with(&format!(r#","description":"{big}""#));
    let xml = xml_with(&format!(r#"<description value="{big}"/>"#));
    for (body, format) in [(json, Format::Json), (xml, Format::Xml)] {
        let parsed = parse_appointment(body.as_bytes(), format).unwrap();
        assert_eq!(
            parsed.description.and_then(|d| d.value).map(|d| d.len()),
            Some(1 << 20)
        );
    }
}

#[test]
fn wrong_types_for_every_field_never_panic_or_leak() {
    let example: Value = serde_json::from_slice(EXAMPLE_JSON).unwrap();
    let replacements: Vec<Value> = [
        "42",
        "0",
        "-1",
        "1.5",
        "1e400",
        "true",
        "\"\"",
        "\"Zebulon Quixote\"",
        "[]",
        "{}",
        "null",
        "[\"Zebulon Quixote\"]",
        "{\"x\":\"Zebulon Quixote\"}",
        "[null]",
        "[[]]",
        "[{\"url\":\"Zebulon Quixote\"}]",
        "[{\"resourceType\":\"Patient\",\"name\":\"Zebulon Quixote\"}]",
    ]
    .iter()
    .map(|r| serde_json::from_str(r).unwrap())
    .collect();
    let mut mutants = Vec::new();
    let top_keys: Vec<String> = example.as_object().unwrap().keys().cloned().collect();
    for key in top_keys
        .iter()
        .chain(["contained".to_string(), "_status".to_string()].iter())
    {
        for replacement in &replacements {
            let mut mutant = example.clone();
            mutant[key.as_str()] = replacement.clone();
            mutants.push(mutant);
        }
    }
    let participant_keys = [
        "actor",
        "type",
        "required",
        "status",
        "period",
        "_status",
        "extension",
    ];
    for key in participant_keys {
        for replacement in &replacements {
            let mut mutant = example.clone();
            mutant["participant"][0][key] = replacement.clone();
            mutants.push(mutant);
        }
    }
    let mut refused = 0;
    for mutant in &mutants {
        let body = serde_json::to_vec(mutant).unwrap();
        if let Some(issue) = parse_quietly(&body, Format::Json) {
            assert_ne!(issue.code, IssueCode::Transient);
            refused += 1;
        }
    }
    assert!(mutants.len() > 400, "{}", mutants.len());
    // Strings are valid for many fields, everything else is not.
    assert!(
        refused > mutants.len() / 2,
        "{refused} of {}",
        mutants.len()
    );
}

#[test]
fn xml_wrong_values_and_shapes_never_panic_or_leak() {
    let text = std::str::from_utf8(EXAMPLE_XML).unwrap();
    // (body, whether it must be refused)
    let mut mutants: Vec<(String, bool)> = Vec::new();
    // Every value attribute in turn gets the marker, an empty value or a number.
    let values: Vec<(usize, usize)> = text
        .match_indices("value=\"")
        .map(|(i, m)| {
            let start = i + m.len();
            (start, start + text[start..].find('"').unwrap())
        })
        .collect();
    for (start, end) in &values {
        for replacement in [MARKER, "", "-1", "99999999999", "&amp;", "true", "&bogus;"] {
            let must_fail = replacement == "&bogus;";
            let body = format!("{}{replacement}{}", &text[..*start], &text[*end..]);
            mutants.push((body, must_fail));
        }
    }
    // Every empty element (`<name value="…"/>`) in turn repeated, stripped of its value,
    // given a child, or closed with the wrong name.
    for (end, _) in text.match_indices("/>") {
        let start = text[..end].rfind('<').unwrap();
        let tag = &text[start..end + 2];
        let name = tag[1..].split([' ', '/']).next().unwrap();
        let (before, after) = (&text[..start], &text[end + 2..]);
        mutants.push((format!("{before}{tag}{tag}{after}"), false));
        mutants.push((format!("{before}<{name}/>{after}"), false));
        mutants.push((
            format!("{before}<{name}><value value=\"{MARKER}\"/></{name}>{after}"),
            false,
        ));
        mutants.push((
            format!("{before}<{name}><extension url=\"u\"/></{name}>{after}"),
            false,
        ));
        mutants.push((format!("{before}<{name}></{name}x>{after}"), true));
        mutants.push((format!("{before}<{name} value=\"{MARKER}\">{after}"), true));
    }
    for inside in [
        format!(r#"<contained><Patient><active value="{MARKER}"/></Patient></contained>"#),
        format!(r#"<contained><Patient><birthDate value="{MARKER}"/></Patient></contained>"#),
        format!(
            r#"<contained><Patient><name><given value="{MARKER}"/><given/></name></Patient></contained>"#
        ),
        "<contained><Patient/></contained>".to_string(),
        "<contained/>".to_string(),
        "<contained><Patient><contained/></Patient></contained>".to_string(),
        "<contained><Patient><name/><name/></Patient></contained>".to_string(),
        format!(r#"<contained><{MARKER}/></contained>"#).replace(' ', ""),
        "<extension/>".to_string(),
        r#"<extension url="u"><valueString value="a"/><valueString value="b"/></extension>"#
            .to_string(),
        format!(r#"<extension url="u"><valueBoolean value="{MARKER}"/></extension>"#),
    ] {
        mutants.push((xml_with(&inside), false));
    }
    assert!(mutants.len() > 300, "{}", mutants.len());
    let mut refused = 0;
    for (mutant, must_fail) in &mutants {
        match parse_quietly(mutant.as_bytes(), Format::Xml) {
            Some(issue) => {
                refused += 1;
                assert!(
                    matches!(issue.code, IssueCode::Structure | IssueCode::Required),
                    "{mutant}: {issue:?}"
                );
            }
            None => assert!(!must_fail, "{mutant} parsed"),
        }
    }
    assert!(
        refused > mutants.len() / 4,
        "{refused} of {}",
        mutants.len()
    );
}
