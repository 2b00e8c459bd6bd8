//! Proof that bad input cannot hurt the proxy, in plain `cargo test`: property tests that feed
//! structured-but-wrong and raw inputs through every body reader
//! (`fhir_salesforce_proxy::robustness`), and the fuzzers' regression fixtures
//! (`tests/fixtures/fuzz/<reader>/`) as plain tests.
//!
//! Every case runs on a thread with the 2 MiB stack an actix worker has, and must finish before a
//! deadline: a panic, a stack overflow (which aborts the test binary) or a hang fails the suite.
//! Case counts keep the whole suite to a few seconds in a debug build; `PROPTEST_CASES` raises
//! them for a longer local run.

use std::sync::LazyLock;
use std::sync::mpsc;
use std::time::Duration;

use fhir_salesforce_proxy::fhir::format::Format;
use fhir_salesforce_proxy::mapping::Mapping;
use fhir_salesforce_proxy::robustness::{
    MARKERS, Reader, example_mapping, feed, feed_reader, violations,
};
use proptest::prelude::*;
use serde_json::{Value, json};

static MAPPING: LazyLock<Mapping> = LazyLock::new(example_mapping);

/// The patient's name planted in generated inputs; it contains both [`MARKERS`].
const PATIENT: &str = "Zebulon Quixote";

/// An actix worker thread's stack (std's default for spawned threads).
const WORKER_STACK: usize = 2 * 1024 * 1024;

/// Far above what any case needs in a debug build (milliseconds); only a hang reaches it.
const DEADLINE: Duration = Duration::from_secs(60);

const EXAMPLE_JSON: &str = include_str!("../fixtures/fhir/appointment-example.json");
const EXAMPLE_XML: &str = include_str!("../fixtures/fhir/appointment-example.xml");

/// What one body did, summed over the readers and formats that were run.
#[derive(Debug, Default)]
struct Seen {
    accepted: usize,
    refused: usize,
    broken: Vec<String>,
}

/// Feeds `body` to `readers` in `formats` on a worker-sized thread, failing on a hang; a panic in a
/// reader comes back as this thread's panic.
fn run(body: Vec<u8>, readers: &[Reader], formats: &[Format]) -> Seen {
    let (readers, formats) = (readers.to_vec(), formats.to_vec());
    let (done, finished) = mpsc::channel();
    let worker = std::thread::Builder::new()
        .name("robustness-case".into())
        .stack_size(WORKER_STACK)
        .spawn(move || {
            let mut seen = Seen::default();
            for &format in &formats {
                for &reader in &readers {
                    let fed = feed_reader(reader, &body, format, &MAPPING);
                    seen.accepted += fed.accepted.len();
                    seen.refused += fed.refused.len();
                    seen.broken.extend(
                        violations(&fed, &body, &MARKERS)
                            .into_iter()
                            .map(|v| format!("{reader:?} {format:?}: {v}")),
                    );
                }
            }
            // The receiver is gone only after a timeout, which has already failed the case.
            let _ = done.send(seen);
        })
        .expect("a case thread starts");
    match finished.recv_timeout(DEADLINE) {
        Ok(seen) => seen,
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the case thread ended without an answer or a panic"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("a case ran past {DEADLINE:?}: a hang"),
    }
}

const ALL_READERS: &[Reader] = &Reader::ALL;
const BOTH: &[Format] = &[Format::Json, Format::Xml];

fn harmless(body: Vec<u8>, readers: &[Reader], formats: &[Format]) -> Seen {
    let seen = run(body, readers, formats);
    assert!(seen.broken.is_empty(), "{:?}", seen.broken);
    seen
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        // PROPTEST_CASES, when set, wins (ProptestConfig::default reads it).
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(cases),
        // Shrinking a failure is worth it; minutes of it in CI are not.
        max_shrink_iters: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ----- generators -------------------------------------------------------------------------------

/// The documented example with the patient's display replaced by [`PATIENT`].
fn example() -> Value {
    let text = EXAMPLE_JSON.replace("Peter James Chalmers", PATIENT);
    serde_json::from_str(&text).expect("the example fixture is JSON")
}

/// Strings a sender might put anywhere: the patient's name, unicode of every plane, control
/// characters, XML and JSON syntax, huge ones.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(PATIENT.to_owned()),
        Just(format!("Patient/{}", PATIENT.replace(' ', "-"))),
        Just(format!("<{PATIENT}>&amp;\"'")),
        ".{0,40}",
        "[\\u{0}-\\u{1f}\\u{7f}\\u{fffd}\\u{e000}\\u{10ffff}]{0,8}",
        "[0-9T:+.Z-]{0,30}",
        (0usize..300_000).prop_map(|n| format!("{PATIENT} {}", "x".repeat(n))),
    ]
}

/// A value nested `depth` deep, as arrays or as FHIR extensions (the deepest legal shape).
fn nested(depth: usize, extensions: bool) -> Value {
    if !extensions {
        return (0..depth).fold(json!(PATIENT), |inner, _| json!([inner]));
    }
    let innermost = json!([{ "url": "http://example.org/x", "valueString": PATIENT }]);
    (1..depth).fold(
        innermost,
        |inner, _| json!([{ "url": "http://example.org/x", "extension": inner }]),
    )
}

/// A wrong, odd or hostile JSON value.
fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any_text().prop_map(Value::String),
        Just(json!([])),
        Just(json!({})),
        Just(json!([null])),
        Just(json!({ "resourceType": "Patient", "name": [{ "text": PATIENT }] })),
        Just(json!({ "reference": format!("Patient/{}", PATIENT.replace(' ', "")) })),
    ];
    let deep = (0usize..150, any::<bool>()).prop_map(|(depth, ext)| nested(depth, ext));
    let composite = leaf.clone().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop_oneof![4 => leaf, 1 => deep, 2 => composite]
}

/// One change to a JSON document.
#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the value at a (wrapped) path with another.
    Replace(Vec<usize>, Value),
    /// Remove the member or item at a path.
    Remove(Vec<usize>),
    /// Add a member (the key may be an element name or anything at all).
    Insert(Vec<usize>, String, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let path = prop::collection::vec(any::<usize>(), 0..6);
    let key = prop_oneof![
        prop::sample::select(vec![
            "status",
            "_status",
            "participant",
            "actor",
            "reference",
            "start",
            "end",
            "minutesDuration",
            "slot",
            "serviceType",
            "appointmentType",
            "comment",
            "extension",
            "contained",
            "resourceType",
            "identifier",
            "id",
            "meta",
            "text",
            "div",
            "period",
        ])
        .prop_map(str::to_owned),
        any_text(),
    ];
    prop_oneof![
        (path.clone(), any_value()).prop_map(|(p, v)| Mutation::Replace(p, v)),
        path.clone().prop_map(Mutation::Remove),
        (path, key, any_value()).prop_map(|(p, k, v)| Mutation::Insert(p, k, v)),
    ]
}

/// The container at a path, each index taken modulo the children there; stops at leaves.
fn walk<'a>(mut value: &'a mut Value, path: &[usize]) -> &'a mut Value {
    for &step in path {
        let has_children = match &*value {
            Value::Array(items) => !items.is_empty(),
            Value::Object(members) => !members.is_empty(),
            _ => false,
        };
        let is_container = |v: &Value| v.is_array() || v.is_object();
        let next_is_container = match &*value {
            Value::Array(items) if has_children => is_container(&items[step % items.len()]),
            Value::Object(members) if has_children => {
                is_container(members.values().nth(step % members.len()).unwrap())
            }
            _ => false,
        };
        if !next_is_container {
            break;
        }
        value = match value {
            Value::Array(items) => {
                let len = items.len();
                &mut items[step % len]
            }
            Value::Object(members) => {
                let len = members.len();
                members.values_mut().nth(step % len).unwrap()
            }
            _ => unreachable!(),
        };
    }
    value
}

fn apply(document: &mut Value, mutation: Mutation) {
    match mutation {
        Mutation::Replace(path, new) => {
            let (last, parent) = path.split_last().map_or((0, &[][..]), |(l, p)| (*l, p));
            match walk(document, parent) {
                Value::Array(items) if !items.is_empty() => {
                    let len = items.len();
                    items[last % len] = new;
                }
                Value::Object(members) if !members.is_empty() => {
                    let len = members.len();
                    *members.values_mut().nth(last % len).unwrap() = new;
                }
                other => *other = new,
            }
        }
        Mutation::Remove(path) => {
            let (last, parent) = path.split_last().map_or((0, &[][..]), |(l, p)| (*l, p));
            match walk(document, parent) {
                Value::Array(items) if !items.is_empty() => {
                    let len = items.len();
                    items.remove(last % len);
                }
                Value::Object(members) if !members.is_empty() => {
                    let key = members.keys().nth(last % members.len()).unwrap().clone();
                    members.remove(&key);
                }
                _ => {}
            }
        }
        Mutation::Insert(path, key, new) => {
            if let Value::Object(members) = walk(document, &path) {
                members.insert(key, new);
            }
        }
    }
}

/// The example Appointment with a few mutations, sometimes wrapped as a Bundle entry or a
/// `$find`/`$validate` Parameters resource, serialized; sometimes cut short.
fn mutated_json() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(mutation(), 1..5),
        0u8..4,
        prop::option::weighted(0.1, any::<prop::sample::Index>()),
    )
        .prop_map(|(mutations, wrapper, cut)| {
            let mut appointment = example();
            for m in mutations {
                apply(&mut appointment, m);
            }
            let document = match wrapper {
                0 => json!({
                    "resourceType": "Bundle",
                    "type": "transaction",
                    "entry": [{
                        "resource": appointment,
                        "request": { "method": "POST", "url": "Appointment" }
                    }]
                }),
                1 => json!({
                    "resourceType": "Parameters",
                    "parameter": [
                        { "name": "resource", "resource": appointment },
                        { "name": "start", "valueDate": "2025-09-20" },
                        { "name": "end", "valueDate": "2025-09-20" },
                        { "name": "practitioner", "valueUri": format!("Practitioner/{PATIENT}") }
                    ]
                }),
                _ => appointment,
            };
            let mut bytes = serde_json::to_vec(&document).expect("a Value serializes");
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            bytes
        })
}

/// XML element names a sender might use: FHIR's, unknown ones, prefixed, unicode, hostile.
fn xml_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "status",
            "participant",
            "actor",
            "reference",
            "start",
            "end",
            "extension",
            "div",
            "contained",
            "Patient",
            "Appointment",
            "Bundle",
            "entry",
            "resource",
            "request",
            "parameter",
            "valueString",
            "xsi:nil",
            "a:b",
            "Zebulon",
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z_][a-zA-Z0-9_.-]{0,10}",
        "[\\u{c0}-\\u{2ff}\\u{4e00}-\\u{4e10}]{1,4}",
    ]
}

/// One change to an XML document, at a position found by a tag boundary.
#[derive(Debug, Clone)]
enum XmlMutation {
    InsertElement(prop::sample::Index, String, String),
    InsertOpen(prop::sample::Index, String),
    InsertClose(prop::sample::Index, String),
    Nest(prop::sample::Index, String, usize),
    SetValue(prop::sample::Index, String),
    Delete(prop::sample::Index, prop::sample::Index),
    Raw(prop::sample::Index, String),
}

fn xml_mutation() -> impl Strategy<Value = XmlMutation> {
    let at = any::<prop::sample::Index>;
    let raw = prop_oneof![
        Just("&bogus;".to_owned()),
        Just("&#0;".to_owned()),
        Just("&#x10FFFF;".to_owned()),
        Just("<!DOCTYPE x [<!ENTITY a \"b\">]>".to_owned()),
        Just("<![CDATA[Zebulon Quixote]]>".to_owned()),
        Just("<?pi x?>".to_owned()),
        Just("<!-- Zebulon Quixote -->".to_owned()),
        Just(" xmlns=\"urn:x\"".to_owned()),
        Just(" xmlns:f=\"http://hl7.org/fhir\"".to_owned()),
        "[<>/&;\"'=a-z ]{1,12}",
    ];
    prop_oneof![
        (at(), xml_name(), any_text()).prop_map(|(i, n, v)| XmlMutation::InsertElement(i, n, v)),
        (at(), xml_name()).prop_map(|(i, n)| XmlMutation::InsertOpen(i, n)),
        (at(), xml_name()).prop_map(|(i, n)| XmlMutation::InsertClose(i, n)),
        (at(), xml_name(), 0usize..120).prop_map(|(i, n, d)| XmlMutation::Nest(i, n, d)),
        (at(), any_text()).prop_map(|(i, v)| XmlMutation::SetValue(i, v)),
        (at(), at()).prop_map(|(a, b)| XmlMutation::Delete(a, b)),
        (at(), raw).prop_map(|(i, r)| XmlMutation::Raw(i, r)),
    ]
}

/// Escapes text for an attribute value (most of the time: an unescaped value tests the parser).
fn attribute(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
}

fn apply_xml(text: &mut String, mutation: XmlMutation) {
    // Positions just after a `>`: between elements.
    let boundaries: Vec<usize> = text.match_indices('>').map(|(i, _)| i + 1).collect();
    if boundaries.is_empty() {
        return;
    }
    let pick = |i: &prop::sample::Index| boundaries[i.index(boundaries.len())];
    match mutation {
        XmlMutation::InsertElement(i, name, value) => {
            let at = pick(&i);
            text.insert_str(at, &format!("<{name} value=\"{}\"/>", attribute(&value)));
        }
        XmlMutation::InsertOpen(i, name) => text.insert_str(pick(&i), &format!("<{name}>")),
        XmlMutation::InsertClose(i, name) => text.insert_str(pick(&i), &format!("</{name}>")),
        XmlMutation::Nest(i, name, depth) => {
            let nest = format!(
                "{}<valueString value=\"{PATIENT}\"/>{}",
                format!("<{name} url=\"u\">").repeat(depth),
                format!("</{name}>").repeat(depth)
            );
            text.insert_str(pick(&i), &nest);
        }
        XmlMutation::SetValue(i, value) => {
            let values: Vec<(usize, usize)> = text
                .match_indices("value=\"")
                .filter_map(|(start, m)| {
                    let start = start + m.len();
                    text[start..].find('"').map(|len| (start, start + len))
                })
                .collect();
            if !values.is_empty() {
                let (start, end) = values[i.index(values.len())];
                text.replace_range(start..end, &attribute(&value));
            }
        }
        XmlMutation::Delete(a, b) => {
            let (from, to) = (pick(&a), pick(&b));
            text.replace_range(from.min(to)..from.max(to), "");
        }
        XmlMutation::Raw(i, raw) => text.insert_str(pick(&i), &raw),
    }
}

/// The example Appointment in XML with a few mutations, sometimes as a Bundle entry or inside
/// Parameters.
fn mutated_xml() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec(xml_mutation(), 1..5), 0u8..4).prop_map(|(mutations, wrapper)| {
        let appointment = EXAMPLE_XML.replace("Peter James Chalmers", PATIENT);
        let body = appointment
            .split_once("?>")
            .map_or(appointment.as_str(), |(_, body)| body)
            .trim()
            .to_owned();
        let mut text = match wrapper {
            0 => format!(
                "<Bundle xmlns=\"http://hl7.org/fhir\"><type value=\"batch\"/><entry><resource>{}</resource>\
                 <request><method value=\"POST\"/><url value=\"Appointment\"/></request></entry></Bundle>",
                body.replace(" xmlns=\"http://hl7.org/fhir\"", "")
            ),
            1 => format!(
                "<Parameters xmlns=\"http://hl7.org/fhir\"><parameter><name value=\"start\"/>\
                 <valueDate value=\"2025-09-20\"/></parameter><parameter><name value=\"end\"/>\
                 <valueDate value=\"2025-09-20\"/></parameter><parameter><name value=\"practitioner\"/>\
                 <valueUri value=\"Practitioner/{PATIENT}\"/></parameter></Parameters>"
            ),
            _ => appointment,
        };
        for m in mutations {
            apply_xml(&mut text, m);
        }
        text.into_bytes()
    })
}

// ----- properties --------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn mutated_json_appointments_are_answered_without_a_leak(body in mutated_json()) {
        harmless(body, ALL_READERS, &[Format::Json]);
    }

    #[test]
    fn mutated_xml_appointments_are_answered_without_a_leak(body in mutated_xml()) {
        harmless(body, ALL_READERS, &[Format::Xml]);
    }

    #[test]
    fn raw_bytes_are_answered_in_either_format(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            // Mostly syntax: far more likely to get past the first check.
            prop::collection::vec(prop::sample::select(b"{}[]<>/\"=:, \n&;#x0aZ".to_vec()), 0..256),
        ]
    ) {
        harmless(body, ALL_READERS, BOTH);
    }
}

// ----- fixed cases -------------------------------------------------------------------------------

#[test]
fn the_unmutated_examples_are_accepted_so_the_properties_test_something() {
    for (body, format) in [(EXAMPLE_JSON, Format::Json), (EXAMPLE_XML, Format::Xml)] {
        let fed = feed(body.as_bytes(), format, &MAPPING);
        assert!(
            fed.accepted.contains(&"appointment parsed"),
            "{format:?}: {fed:?}"
        );
        assert!(
            fed.accepted.contains(&"booked appointment written"),
            "{format:?}"
        );
    }
    let seen = harmless(
        serde_json::to_vec(&example()).unwrap(),
        &[Reader::Appointment],
        &[Format::Json],
    );
    assert!(seen.accepted >= 2, "{seen:?}");
}

#[test]
fn the_marker_check_can_fail() {
    // A refusal that did quote the body is caught.
    use fhir_salesforce_proxy::error::ProxyError;
    use fhir_salesforce_proxy::fhir::outcome::{Issue, IssueCode};
    use fhir_salesforce_proxy::robustness::Fed;
    let leaky = Fed {
        accepted: Vec::new(),
        refused: vec![ProxyError::Unparseable(Issue::general(
            IssueCode::Structure,
            format!("unknown value {PATIENT}"),
        ))],
    };
    let body = format!(r#"{{"resourceType":"Appointment","status":"{PATIENT}"}}"#);
    assert_eq!(violations(&leaky, body.as_bytes(), &MARKERS).len(), 1);
    // An element name is echoed by design, a value never.
    let named = |diagnostics: &str| Fed {
        accepted: Vec::new(),
        refused: vec![ProxyError::Unparseable(Issue::general(
            IssueCode::Structure,
            diagnostics,
        ))],
    };
    let body = br#"{"resourceType":"Appointment","xZebulon":1,"a":"Quixote"}"#;
    assert!(violations(&named("unknown field `xZebulon`"), body, &MARKERS).is_empty());
    assert_eq!(
        violations(&named("bad value Quixote"), body, &MARKERS).len(),
        1
    );
    let body =
        br#"<Appointment xmlns="http://hl7.org/fhir"><quixoteX value="Zebulon"/></Appointment>"#;
    assert!(violations(&named("unknown field `quixoteX`"), body, &MARKERS).is_empty());
    assert_eq!(violations(&named("got Zebulon"), body, &MARKERS).len(), 1);
}

#[test]
fn deeply_nested_extensions_are_parsed_mapped_and_written_back_on_a_worker_stack() {
    // Up to the deepest Appointment each format accepts and past it, alone and as a Bundle entry;
    // accepted ones are mapped and written back as a booking's answer on the worker-sized thread
    // `run` uses.
    for depth in [1, 30, 62, 63, 64, 70] {
        let mut appointment = example();
        appointment["extension"] = nested(depth, true);
        let bundle = json!({
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{ "resource": appointment, "request": { "method": "POST", "url": "Appointment" } }]
        });
        let extensions = format!(
            "{}<valueString value=\"{PATIENT}\"/>{}",
            "<extension url=\"u\">".repeat(depth),
            "</extension>".repeat(depth)
        );
        let xml = format!(
            "<Appointment xmlns=\"http://hl7.org/fhir\">{extensions}<status value=\"booked\"/></Appointment>"
        );
        let xml_bundle = format!(
            "<Bundle xmlns=\"http://hl7.org/fhir\"><type value=\"batch\"/><entry><resource>\
             <Appointment>{extensions}<status value=\"booked\"/></Appointment></resource></entry></Bundle>"
        );
        let cases = [
            (
                serde_json::to_vec(&appointment).unwrap(),
                Reader::Appointment,
                Format::Json,
            ),
            (
                serde_json::to_vec(&bundle).unwrap(),
                Reader::Bundle,
                Format::Json,
            ),
            (xml.into_bytes(), Reader::Appointment, Format::Xml),
            (xml_bundle.into_bytes(), Reader::Bundle, Format::Xml),
        ];
        for (body, reader, format) in cases {
            let seen = harmless(body, &[reader], &[format]);
            if depth <= 30 {
                // Shallow ones are parsed, so the deep ones test the limits, not a typo.
                assert!(
                    seen.accepted >= 2,
                    "{depth} {reader:?} {format:?}: {seen:?}"
                );
            }
        }
    }
}

/// The fuzzers' regression fixtures: `tests/fixtures/fuzz/<reader>/<name>`, where `<reader>` is a
/// fuzz target's name; each is fed as the target fed it (see `fuzz/fuzz_targets/`).
#[test]
fn fuzz_regression_fixtures_are_answered() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let mut count = 0;
    for (target, readers, formats) in [
        (
            "appointment_json",
            &[Reader::Appointment][..],
            &[Format::Json][..],
        ),
        (
            "appointment_xml",
            &[Reader::Appointment][..],
            &[Format::Xml][..],
        ),
        ("bundle", &[Reader::Bundle][..], BOTH),
        ("parameters", &[Reader::Parameters][..], BOTH),
    ] {
        let Ok(dir) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for file in dir {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                continue;
            }
            let body = std::fs::read(&path).unwrap();
            let seen = run(body, readers, formats);
            assert!(
                seen.broken.is_empty(),
                "{}: {:?}",
                path.display(),
                seen.broken
            );
            count += 1;
        }
    }
    assert!(count > 0, "no fixtures under {}", root.display());
}
