//! Every reader of untrusted request bodies in one call, for the fuzz targets (`fuzz/`) and the
//! property tests (`tests/robustness.rs`): proof that bad input cannot hurt the proxy.
//!
//! [`feed`] runs a body through what the FHIR endpoints do with it before Salesforce is asked
//! anything: the guarded Appointment parser, the R4 rules and the mapping (as `create`,
//! `$validate` and the `translate` command do), the Bundle reader with each entry's resource
//! parsed and mapped in turn (as `POST [base]` does), the Parameters reader with `$find`'s query
//! built and mapped, and the answer a booking would send back, written in JSON and XML.
//! [`violations`] then checks the promises the proxy makes about any input: every refusal is a
//! [`ProxyError`] whose [`ProxyError::outcome`] is an error status with at least one coded issue,
//! and no refusal's text repeats what the caller marked as patient data.
//!
//! Panics and hangs are the fuzzer's and the test harness's to notice: [`feed`] does not catch
//! them, so that one escaping from any reader fails loudly.

use chrono::{DateTime, Utc};

use crate::booking::resolve::check_and_map;
use crate::error::ProxyError;
use crate::fhir::bundle::read_bundle;
use crate::fhir::format::{Format, serialize};
use crate::fhir::parameters::read_parameters;
use crate::fhir::parse::parse_appointment;
use crate::mapping::find::{FindQuery, find_request};
use crate::mapping::lookup::needed_lookups;
use crate::mapping::{EXAMPLE_MAPPING, Mapping, book_request, booked_appointment};

/// What became of one body: the readers that accepted it and every refusal, in order.
#[derive(Debug, Default)]
pub struct Fed {
    /// The steps that succeeded, e.g. `"appointment mapped"`.
    pub accepted: Vec<&'static str>,
    /// Every refusal, as the endpoint would answer it.
    pub refused: Vec<ProxyError>,
}

/// The example mapping (`mappings/example.toml`), which the fuzz targets and tests map with.
///
/// # Panics
/// Never in a built crate: the file is embedded and its own tests load it.
pub fn example_mapping() -> Mapping {
    Mapping::from_toml(EXAMPLE_MAPPING, "mappings/example.toml")
        .unwrap_or_else(|error| panic!("the embedded example mapping is invalid: {}", error.reason))
}

/// Marker strings planted in the fuzz seeds and the generated inputs as a patient's name: no
/// refusal may repeat them.
pub const MARKERS: [&str; 2] = ["Zebulon", "Quixote"];

/// The body readers of the FHIR endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// An Appointment (create, update, `$validate`, `translate`): parsed, R4-checked, mapped and
    /// written back as a booking's answer.
    Appointment,
    /// A batch or transaction Bundle: its frame, then each entry's resource as an Appointment.
    Bundle,
    /// A Parameters body, read as `Appointment/$find`'s input and mapped to Get Slots.
    Parameters,
}

impl Reader {
    /// Every reader.
    pub const ALL: [Reader; 3] = [Reader::Appointment, Reader::Bundle, Reader::Parameters];
}

/// Runs `body`, read as `format`, through `reader` and what follows it.
pub fn feed_reader(reader: Reader, body: &[u8], format: Format, mapping: &Mapping) -> Fed {
    let mut fed = Fed::default();
    match reader {
        Reader::Appointment => appointment(body, format, mapping, &mut fed),
        Reader::Bundle => bundle(body, format, mapping, &mut fed),
        Reader::Parameters => parameters(body, format, mapping, &mut fed),
    }
    fed
}

/// Runs `body`, read as `format`, through every body reader and what follows each.
///
/// All readers see every body: a body that is not a Bundle still exercises the Bundle reader's
/// refusal paths.
pub fn feed(body: &[u8], format: Format, mapping: &Mapping) -> Fed {
    let mut fed = Fed::default();
    for reader in Reader::ALL {
        let one = feed_reader(reader, body, format, mapping);
        fed.accepted.extend(one.accepted);
        fed.refused.extend(one.refused);
    }
    fed
}

fn appointment(body: &[u8], format: Format, mapping: &Mapping, fed: &mut Fed) {
    match parse_appointment(body, format) {
        Err(issue) => fed.refused.push(ProxyError::Unparseable(issue)),
        Ok(parsed) => {
            fed.accepted.push("appointment parsed");
            map(&parsed, mapping, fed);
            // What a successful create or update sends back is the submitted resource with
            // Salesforce's id: it must be writable in both formats whatever was submitted.
            let now = DateTime::<Utc>::UNIX_EPOCH;
            let booked = booked_appointment(&parsed, "08pxx0000000001AAA", None, mapping, now);
            for answer_format in [Format::Json, Format::Xml] {
                serialize(&booked, answer_format, false);
            }
            fed.accepted.push("booked appointment written");
        }
    }
}

/// The rules and the mapping, as a booking runs them; the mapping alone too, because it must be
/// total even over Appointments the rules refuse.
fn map(parsed: &fhirbolt::model::r4::resources::Appointment, mapping: &Mapping, fed: &mut Fed) {
    match check_and_map(parsed, mapping) {
        Ok(_) => fed.accepted.push("appointment mapped"),
        Err(error) => fed.refused.push(error),
    }
    if let Err(issues) = book_request(parsed, mapping) {
        fed.refused.push(ProxyError::Unprocessable(issues));
    }
    needed_lookups(parsed, mapping);
}

fn bundle(body: &[u8], format: Format, mapping: &Mapping, fed: &mut Fed) {
    // As the handler does: the Bundle and its entries are read in one parser job.
    let body = body.to_vec();
    let read = crate::fhir::pool::run_blocking(move || {
        let bundle = read_bundle(&body, format)?;
        Ok(bundle
            .entries
            .into_iter()
            .filter_map(|entry| entry.resource)
            .map(|resource| {
                resource.resource_type();
                resource.binary();
                resource.appointment()
            })
            .collect::<Vec<_>>())
    });
    match read {
        Err(issue) => fed.refused.push(ProxyError::Unparseable(issue)),
        Ok(entries) => {
            fed.accepted.push("bundle read");
            for entry in entries {
                match entry {
                    Err(issue) => fed.refused.push(ProxyError::Unparseable(issue)),
                    Ok(parsed) => {
                        fed.accepted.push("bundle entry parsed");
                        map(&parsed, mapping, fed);
                    }
                }
            }
        }
    }
}

fn parameters(body: &[u8], format: Format, mapping: &Mapping, fed: &mut Fed) {
    let read = read_parameters(body, format).and_then(|p| FindQuery::from_parameters(&p));
    match read {
        Err(issue) => fed.refused.push(ProxyError::Unparseable(issue)),
        Ok(find) => {
            fed.accepted.push("parameters read");
            match find_request(&find, mapping) {
                Ok(_) => fed.accepted.push("find mapped"),
                Err(issues) => fed.refused.push(ProxyError::Unprocessable(issues)),
            }
        }
    }
}

/// The promises broken by `fed`'s refusals of `body`, described without quoting any of them (an
/// empty list when all are kept): each answer is a 4xx or 5xx with at least one issue, each issue
/// has a code and diagnostics, and no marker appears (ASCII case-insensitively) in an error's
/// text, diagnostics or expression, except inside a name the body uses as an element name or
/// resource type. Those are echoed by design (`fhir::parse`): they say where the problem is, and a
/// FHIR element name is never patient data; a value never is echoed.
pub fn violations(fed: &Fed, body: &[u8], markers: &[&str]) -> Vec<String> {
    let body = String::from_utf8_lossy(body);
    let leaks = |text: &str| markers.iter().any(|m| leaks_marker(text, m, &body));
    let mut broken = Vec::new();
    for (index, error) in fed.refused.iter().enumerate() {
        let outcome = error.outcome();
        if !(outcome.status.is_client_error() || outcome.status.is_server_error()) {
            broken.push(format!("refusal {index}: status {}", outcome.status));
        }
        if outcome.issues.is_empty() {
            broken.push(format!("refusal {index}: no issue"));
        }
        if leaks(&error.to_string()) {
            broken.push(format!("refusal {index}: a marker in the error text"));
        }
        for (i, issue) in outcome.issues.iter().enumerate() {
            if issue.code.as_str().is_empty() || issue.diagnostics.trim().is_empty() {
                broken.push(format!(
                    "refusal {index}, issue {i}: no code or diagnostics"
                ));
            }
            if leaks(&issue.diagnostics) || issue.expression.as_deref().is_some_and(leaks) {
                broken.push(format!("refusal {index}, issue {i}: a marker in the issue"));
            }
        }
    }
    broken
}

/// Whether `text` holds `marker` other than inside a name that `body` uses as an element name or
/// resource type.
fn leaks_marker(text: &str, marker: &str, body: &str) -> bool {
    // ASCII lower-casing keeps byte offsets, so positions found in `lower` hold in `text`.
    let (lower, marker) = (text.to_ascii_lowercase(), marker.to_ascii_lowercase());
    let is_name_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    lower.match_indices(&marker).any(|(at, found)| {
        let bytes = text.as_bytes();
        let start = bytes[..at]
            .iter()
            .rposition(|&b| !is_name_byte(b))
            .map_or(0, |i| i + 1);
        let end = at
            + found.len()
            + bytes[at + found.len()..]
                .iter()
                .position(|&b| !is_name_byte(b))
                .unwrap_or(bytes.len() - at - found.len());
        !is_name_in(body, &text[start..end])
    })
}

/// Whether `body` uses `name` as an XML element name, a JSON property name or a `resourceType`.
fn is_name_in(body: &str, name: &str) -> bool {
    body.match_indices(name).any(|(at, _)| {
        let (before, after) = (&body[..at], &body[at + name.len()..]);
        let xml_tag = (before.ends_with('<') || before.ends_with(':'))
            && after.starts_with(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>');
        let quoted = (before.ends_with('"') || before.ends_with("\"_")) && after.starts_with('"');
        let json_key = quoted && after[1..].trim_start().starts_with(':');
        let resource_type = quoted
            && before[..before.len() - 1]
                .trim_end()
                .strip_suffix(':')
                .is_some_and(|b| b.trim_end().ends_with("\"resourceType\""));
        xml_tag || json_key || resource_type
    })
}

/// [`feed_reader`] then [`violations`] with [`MARKERS`]; panics naming the broken promises
/// (never the input), which is how a fuzz target reports them.
///
/// # Panics
/// When a promise is broken, and whenever a reader panics.
pub fn assert_harmless(reader: Reader, body: &[u8], format: Format, mapping: &Mapping) {
    let fed = feed_reader(reader, body, format, mapping);
    let broken = violations(&fed, body, &MARKERS);
    assert!(broken.is_empty(), "{reader:?} in {format:?}: {broken:?}");
}
