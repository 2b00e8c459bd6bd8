//! Bodies of a megabyte in every shape a reader can choke on (attributes, elements, nesting, keys,
//! arrays, entities, long strings; JSON and XML; Appointments, Bundles, Parameters): each is
//! answered with a FHIR answer by a deadline, while `/healthz` keeps answering. A reader that is
//! not linear in its input shows up here as a missed deadline: 95,000 attributes took 11.5 s
//! before attributes per element were capped.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

/// Just under the proxy's default body limit (1 MiB), so the body is read and parsed.
const SIZE: usize = 1_000_000;

/// The time each body must be answered in. A linear reader takes a small fraction of it for a
/// megabyte even unoptimised; a quadratic one takes many times it.
fn deadline() -> Duration {
    Duration::from_secs(if cfg!(debug_assertions) { 3 } else { 1 })
}

fn repeat_to(unit: &str, size: usize) -> String {
    unit.repeat(size / unit.len())
}

const XML_HEAD: &str = "<Appointment xmlns=\"http://hl7.org/fhir\">";

/// (what it is, path, content type, body).
fn bodies() -> Vec<(&'static str, &'static str, &'static str, String)> {
    let json = "application/fhir+json";
    let xml = "application/fhir+xml";
    let mut example = example_appointment();
    example["comment"] = json!(repeat_to("x", SIZE - 2_000));
    let long_string = example.to_string();
    let many_keys = {
        let keys: String = (0..SIZE / 16).map(|i| format!("\"k{i:08}\":1,")).collect();
        format!("{{\"resourceType\":\"Appointment\",{keys}\"status\":\"booked\"}}")
    };
    let duplicate_keys = format!(
        "{{\"resourceType\":\"Appointment\",{}\"status\":\"booked\"}}",
        repeat_to("\"status\":\"booked\",", SIZE)
    );
    let nested_arrays = format!("{}{}", "[".repeat(SIZE / 2), "]".repeat(SIZE / 2));
    let nested_objects = repeat_to("{\"a\":", SIZE);
    let participant = json!({"actor": {"reference": "Patient/pat-1001"}, "status": "accepted"});
    let many_participants = {
        let mut a = example_appointment();
        let one = participant.to_string();
        a["participant"] = Value::Array(vec![participant.clone(); SIZE / one.len()]);
        a.to_string()
    };
    let escapes = {
        let mut a = example_appointment();
        a["comment"] = json!("\u{e9}\u{1F600}\\".repeat(SIZE / 12));
        a.to_string()
    };
    let attributes: String = (0..SIZE / 11).map(|i| format!(" a{i:06}=\"\"")).collect();
    let many_attributes = format!("<Appointment xmlns=\"http://hl7.org/fhir\"{attributes}/>");
    let repeated_attributes = format!(
        "<Appointment xmlns=\"http://hl7.org/fhir\"{}/>",
        repeat_to(" a=\"\"", SIZE)
    );
    let many_elements = format!(
        "{XML_HEAD}{}</Appointment>",
        repeat_to("<comment value=\"x\"/>", SIZE)
    );
    let nested_elements = format!("{XML_HEAD}{}", repeat_to("<extension url=\"u\">", SIZE));
    let entities = format!(
        "{XML_HEAD}<comment value=\"{}\"/><status value=\"booked\"/></Appointment>",
        repeat_to("&amp;&#x41;", SIZE)
    );
    let long_attribute = format!(
        "{XML_HEAD}<comment value=\"{}\"/><status value=\"booked\"/></Appointment>",
        repeat_to("y", SIZE)
    );
    let div = format!(
        "{XML_HEAD}<text><status value=\"generated\"/><div xmlns=\"http://www.w3.org/1999/xhtml\">{}</div></text><status value=\"booked\"/></Appointment>",
        repeat_to("<p>a</p>", SIZE)
    );
    let entry = json!({"resource": example_appointment(), "request": {"method": "POST", "url": "Appointment"}});
    let bundle_json = json!({
        "resourceType": "Bundle",
        "type": "batch",
        "entry": vec![entry.clone(); SIZE / entry.to_string().len()]
    })
    .to_string();
    let bundle_attributes = format!(
        "<Bundle xmlns=\"http://hl7.org/fhir\"{attributes}><type value=\"batch\"/></Bundle>"
    );
    let bundle_entries = format!(
        "<Bundle xmlns=\"http://hl7.org/fhir\"><type value=\"batch\"/>{}</Bundle>",
        repeat_to(
            "<entry><request><method value=\"POST\"/><url value=\"Appointment\"/></request></entry>",
            SIZE
        )
    );
    // Distinct practitioners, each a well-formed Salesforce id.
    let parameters: Vec<Value> = (0..SIZE / 80)
        .map(|i| json!({"name": "practitioner", "valueString": format!("Practitioner/0bSxx0{i:012}")}))
        .collect();
    let parameters_json =
        json!({"resourceType": "Parameters", "parameter": parameters}).to_string();
    let parameters_attributes =
        format!("<Parameters xmlns=\"http://hl7.org/fhir\"><parameter{attributes}/></Parameters>");
    vec![
        ("a long string", "/fhir/Appointment", json, long_string),
        ("many keys", "/fhir/Appointment", json, many_keys),
        (
            "one key repeated",
            "/fhir/Appointment",
            json,
            duplicate_keys,
        ),
        ("nested arrays", "/fhir/Appointment", json, nested_arrays),
        ("nested objects", "/fhir/Appointment", json, nested_objects),
        (
            "many array items",
            "/fhir/Appointment",
            json,
            many_participants,
        ),
        (
            "escapes and wide characters",
            "/fhir/Appointment",
            json,
            escapes,
        ),
        ("attributes", "/fhir/Appointment", xml, many_attributes),
        (
            "one attribute repeated",
            "/fhir/Appointment",
            xml,
            repeated_attributes,
        ),
        ("elements", "/fhir/Appointment", xml, many_elements),
        ("nested elements", "/fhir/Appointment", xml, nested_elements),
        ("entities", "/fhir/Appointment", xml, entities),
        ("a long attribute", "/fhir/Appointment", xml, long_attribute),
        ("narrative markup", "/fhir/Appointment", xml, div),
        ("a batch of many entries", "/fhir", json, bundle_json),
        ("Bundle attributes", "/fhir", xml, bundle_attributes),
        ("Bundle entries", "/fhir", xml, bundle_entries),
        (
            "many parameters",
            "/fhir/Appointment/$find",
            json,
            parameters_json,
        ),
        (
            "Parameters attributes",
            "/fhir/Appointment/$find",
            xml,
            parameters_attributes,
        ),
    ]
}

#[tokio::test]
async fn a_megabyte_of_any_shape_is_answered_in_time_and_health_keeps_answering() {
    let (app, sandbox) = spawn_with_sandbox(example_mapping());
    let client = reqwest::Client::builder()
        .timeout(deadline())
        .build()
        .unwrap();
    let health = format!("{}/healthz", app.address);
    for (what, path, content_type, body) in bodies() {
        assert!(body.len() <= 1024 * 1024, "{what}: {} bytes", body.len());
        let url = format!("{}{path}", app.address);
        let sent = client
            .post(&url)
            .header("Content-Type", content_type)
            .header("Accept", "application/fhir+json")
            .body(body)
            .send();
        // While the body is being read, the probe answers at once.
        let probe = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            client.get(&health).send().await
        };
        let started = std::time::Instant::now();
        let (answer, probe) = tokio::join!(sent, probe);
        let answer = answer.unwrap_or_else(|e| panic!("{what}: no answer in time: {e}"));
        // For `--nocapture`: how far from the deadline each shape is.
        eprintln!("{what}: {} in {:?}", answer.status(), started.elapsed());
        let status = answer.status().as_u16();
        assert!(
            (400..500).contains(&status) || status == 200,
            "{what}: {status}"
        );
        let text = answer.text().await.unwrap();
        let outcome: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: not JSON: {text}"));
        assert!(
            ["OperationOutcome", "Bundle"]
                .contains(&outcome["resourceType"].as_str().unwrap_or_default()),
            "{what}: {outcome}"
        );
        let probe = probe.unwrap_or_else(|e| panic!("{what}: /healthz did not answer: {e}"));
        assert_eq!(probe.status(), 200, "{what}");
    }
    assert!(sandbox.bookings().is_empty(), "nothing of this may book");
}
