//! Request bytes → the parts of an operation's `Parameters` resource, in JSON or XML.
//!
//! Operations such as `Appointment/$find` take a `Parameters` body whose parts are primitives,
//! codings and references. Only that much is read here, with serde_json and quick-xml, never with
//! fhirbolt's `Resource` parser (which panics on some malformed input): a part that carries a
//! resource is reported as such and left to the operation to refuse. Diagnostics name parameters,
//! never their values.

use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use serde_json::{Map, Value};

use crate::fhir::bundle::value_attribute;
use crate::fhir::format::Format;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::parse::{MAX_MARKUP_ATTRIBUTES, body_text, limit_attributes};

/// The FHIR XML namespace.
const FHIR_NS: &str = "http://hl7.org/fhir";

/// The most parameters one body may carry.
pub const MAX_PARAMETERS: usize = 100;

/// One `Parameters.parameter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    /// `parameter.name`.
    pub name: String,
    /// Its value.
    pub value: ParameterValue,
}

/// A parameter's value, as far as operations here need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParameterValue {
    /// A primitive `value[x]`: the type part of its name (`DateTime`, `Uri`, `String`, …) and its
    /// text.
    Primitive {
        /// `DateTime` for `valueDateTime`, and so on.
        kind: String,
        /// The value.
        text: String,
    },
    /// `valueCoding`, or the codings of a `valueCodeableConcept`: `(system, code)` pairs.
    Codings(Vec<(Option<String>, Option<String>)>),
    /// `valueReference`: its `reference`.
    Reference(Option<String>),
    /// A `resource`, a nested `part`, or a complex value of another type: not read.
    Other(String),
    /// No value at all.
    Missing,
}

/// Reads a `Parameters` body.
///
/// # Errors
/// A single 400-class issue: not JSON or well-formed XML, not a `Parameters` resource, a
/// parameter without a name, or more than [`MAX_PARAMETERS`] parameters.
pub fn read_parameters(body: &[u8], format: Format) -> Result<Vec<Parameter>, Issue> {
    let text = body_text(body)?;
    let parameters = match format {
        Format::Json => read_json(text)?,
        Format::Xml => read_xml(text)?,
    };
    if parameters.len() > MAX_PARAMETERS {
        return Err(Issue::at(
            IssueCode::TooCostly,
            "Parameters.parameter",
            format!("at most {MAX_PARAMETERS} parameters are read"),
        ));
    }
    Ok(parameters)
}

fn structure(diagnostics: impl Into<String>) -> Issue {
    Issue::general(IssueCode::Structure, diagnostics)
}

fn not_parameters() -> Issue {
    Issue::at(
        IssueCode::Invalid,
        "Parameters",
        "the body must be a Parameters resource",
    )
}

fn unnamed(index: usize) -> Issue {
    Issue::at(
        IssueCode::Required,
        format!("Parameters.parameter[{index}].name"),
        "every parameter needs a name",
    )
}

// ---------------------------------------------------------------------------------------------
// JSON

fn read_json(text: &str) -> Result<Vec<Parameter>, Issue> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        structure(format!(
            "the body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if value.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(not_parameters());
    }
    let list = match value.get("parameter") {
        None => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(Issue::at(
                IssueCode::Structure,
                "Parameters.parameter",
                "Parameters.parameter must be an array",
            ));
        }
    };
    list.iter()
        .enumerate()
        .map(|(index, parameter)| {
            let object = parameter.as_object().ok_or_else(|| {
                Issue::at(
                    IssueCode::Structure,
                    format!("Parameters.parameter[{index}]"),
                    "each parameter must be an object",
                )
            })?;
            let name = object
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| unnamed(index))?;
            Ok(Parameter {
                name: name.to_owned(),
                value: json_value(object),
            })
        })
        .collect()
}

fn json_value(object: &Map<String, Value>) -> ParameterValue {
    if object.contains_key("resource") {
        return ParameterValue::Other("resource".to_owned());
    }
    if object.contains_key("part") {
        return ParameterValue::Other("part".to_owned());
    }
    let Some((key, value)) = object.iter().find(|(k, _)| k.starts_with("value")) else {
        return ParameterValue::Missing;
    };
    let kind = &key["value".len()..];
    let text = |v: &Value, name: &str| v.get(name).and_then(Value::as_str).map(str::to_owned);
    match (kind, value) {
        ("Coding", coding) => {
            ParameterValue::Codings(vec![(text(coding, "system"), text(coding, "code"))])
        }
        ("CodeableConcept", concept) => ParameterValue::Codings(
            concept
                .get("coding")
                .and_then(Value::as_array)
                .map(|codings| {
                    codings
                        .iter()
                        .map(|c| (text(c, "system"), text(c, "code")))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        ("Reference", reference) => ParameterValue::Reference(text(reference, "reference")),
        (_, Value::String(s)) => ParameterValue::Primitive {
            kind: kind.to_owned(),
            text: s.clone(),
        },
        (_, Value::Number(n)) => ParameterValue::Primitive {
            kind: kind.to_owned(),
            text: n.to_string(),
        },
        (_, Value::Bool(b)) => ParameterValue::Primitive {
            kind: kind.to_owned(),
            text: b.to_string(),
        },
        _ => ParameterValue::Other(kind.to_owned()),
    }
}

// ---------------------------------------------------------------------------------------------
// XML

/// What is being read inside the current `parameter`.
#[derive(Debug, Default)]
struct Reading {
    name: Option<String>,
    value: Option<ParameterValue>,
    /// The local name of the complex value element being read (`valueCoding`, …).
    complex: Option<String>,
    /// The coding being read inside a complex value.
    coding: (Option<String>, Option<String>),
}

fn read_xml(text: &str) -> Result<Vec<Parameter>, Issue> {
    let mut reader = NsReader::from_str(text);
    reader.config_mut().enable_all_checks(true);
    let mut depth = 0usize;
    let mut parameters = Vec::new();
    let mut current: Option<Reading> = None;
    let mut root_seen = false;
    loop {
        let (namespace, event) = match reader.read_resolved_event() {
            Ok(read) => read,
            Err(_) => return Err(structure("the XML is not well-formed")),
        };
        let in_fhir = matches!(namespace, ResolveResult::Bound(Namespace(n)) if n == FHIR_NS);
        match event {
            Event::DocType(_) | Event::PI(_) | Event::CData(_) => {
                return Err(structure(
                    "DOCTYPE declarations, processing instructions and CDATA sections are not \
                     allowed in FHIR XML",
                ));
            }
            Event::Start(ref start) | Event::Empty(ref start) => {
                limit_attributes(start, MAX_MARKUP_ATTRIBUTES, text, reader.buffer_position())?;
                let empty = matches!(event, Event::Empty(_));
                depth += 1;
                if depth > 16 {
                    return Err(structure("the Parameters XML is nested too deep"));
                }
                let local = start.local_name();
                let local: &str = local.as_ref();
                match depth {
                    1 => {
                        if root_seen || !in_fhir || local != "Parameters" {
                            return Err(not_parameters());
                        }
                        root_seen = true;
                    }
                    2 if local == "parameter" => current = Some(Reading::default()),
                    _ => {
                        if let Some(reading) = current.as_mut() {
                            read_xml_element(reading, depth, local, start);
                        }
                    }
                }
                if empty {
                    depth -= 1;
                    if depth == 1 {
                        finish(&mut current, &mut parameters)?;
                    }
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth == 1 {
                    finish(&mut current, &mut parameters)?;
                }
                if depth == 2
                    && let Some(reading) = current.as_mut()
                {
                    reading.complex = None;
                }
                if depth == 3
                    && let Some(reading) = current.as_mut()
                    && reading.complex.as_deref() == Some("valueCodeableConcept")
                {
                    let coding = std::mem::take(&mut reading.coding);
                    if let Some(ParameterValue::Codings(list)) = reading.value.as_mut()
                        && (coding.0.is_some() || coding.1.is_some())
                    {
                        list.push(coding);
                    }
                }
                if parameters.len() > MAX_PARAMETERS {
                    break;
                }
            }
            Event::Eof => {
                if !root_seen {
                    return Err(structure("the XML has no root element"));
                }
                if depth > 0 {
                    return Err(structure("the XML ends before all elements are closed"));
                }
                break;
            }
            _ => {}
        }
    }
    Ok(parameters)
}

fn read_xml_element(reading: &mut Reading, depth: usize, local: &str, start: &BytesStart) {
    let value = value_attribute(start);
    match (depth, reading.complex.as_deref(), local) {
        (3, _, "name") => reading.name = value,
        (3, _, "resource" | "part") => {
            reading.value = Some(ParameterValue::Other(local.to_owned()))
        }
        (3, _, "valueCoding" | "valueCodeableConcept") => {
            reading.complex = Some(local.to_owned());
            reading.value = Some(ParameterValue::Codings(Vec::new()));
        }
        (3, _, "valueReference") => {
            reading.complex = Some(local.to_owned());
            reading.value = Some(ParameterValue::Reference(None));
        }
        (3, _, element) if element.starts_with("value") => {
            reading.value = Some(match value {
                Some(text) => ParameterValue::Primitive {
                    kind: element["value".len()..].to_owned(),
                    text,
                },
                None => ParameterValue::Other(element["value".len()..].to_owned()),
            });
        }
        (4, Some("valueCoding"), field @ ("system" | "code")) => {
            if let Some(ParameterValue::Codings(list)) = reading.value.as_mut() {
                if list.is_empty() {
                    list.push((None, None));
                }
                if let Some(coding) = list.last_mut() {
                    if field == "system" {
                        coding.0 = value;
                    } else {
                        coding.1 = value;
                    }
                }
            }
        }
        (4, Some("valueReference"), "reference") => {
            reading.value = Some(ParameterValue::Reference(value));
        }
        (5, Some("valueCodeableConcept"), "system") => reading.coding.0 = value,
        (5, Some("valueCodeableConcept"), "code") => reading.coding.1 = value,
        _ => {}
    }
}

fn finish(current: &mut Option<Reading>, parameters: &mut Vec<Parameter>) -> Result<(), Issue> {
    if let Some(reading) = current.take() {
        let index = parameters.len();
        let name = reading
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| unnamed(index))?;
        parameters.push(Parameter {
            name,
            value: reading.value.unwrap_or(ParameterValue::Missing),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expected() -> Vec<Parameter> {
        let primitive = |kind: &str, text: &str| ParameterValue::Primitive {
            kind: kind.into(),
            text: text.into(),
        };
        vec![
            Parameter {
                name: "start".into(),
                value: primitive("DateTime", "2025-09-20T09:00:00Z"),
            },
            Parameter {
                name: "practitioner".into(),
                value: primitive("Uri", "Practitioner/a&b"),
            },
            Parameter {
                name: "visit-type".into(),
                value: ParameterValue::Codings(vec![(Some("http://s".into()), Some("1".into()))]),
            },
            Parameter {
                name: "specialty".into(),
                value: ParameterValue::Codings(vec![
                    (Some("http://s".into()), Some("2".into())),
                    (None, Some("3".into())),
                ]),
            },
            Parameter {
                name: "patient-reference".into(),
                value: ParameterValue::Reference(Some("Patient/p".into())),
            },
            Parameter {
                name: "patient-resource".into(),
                value: ParameterValue::Other("resource".into()),
            },
            Parameter {
                name: "flag".into(),
                value: ParameterValue::Missing,
            },
        ]
    }

    #[test]
    fn json_and_xml_parameters_read_the_same() {
        let json = json!({
            "resourceType": "Parameters",
            "parameter": [
                {"name": "start", "valueDateTime": "2025-09-20T09:00:00Z"},
                {"name": "practitioner", "valueUri": "Practitioner/a&b"},
                {"name": "visit-type", "valueCoding": {"system": "http://s", "code": "1"}},
                {"name": "specialty", "valueCodeableConcept": {"coding": [{"system": "http://s", "code": "2"}, {"code": "3"}]}},
                {"name": "patient-reference", "valueReference": {"reference": "Patient/p"}},
                {"name": "patient-resource", "resource": {"resourceType": "Patient"}},
                {"name": "flag"}
            ]
        });
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<Parameters xmlns="http://hl7.org/fhir">
  <parameter><name value="start"/><valueDateTime value="2025-09-20T09:00:00Z"/></parameter>
  <parameter><name value="practitioner"/><valueUri value="Practitioner/a&amp;b"/></parameter>
  <parameter><name value="visit-type"/><valueCoding><system value="http://s"/><code value="1"/></valueCoding></parameter>
  <parameter><name value="specialty"/><valueCodeableConcept><coding><system value="http://s"/><code value="2"/></coding><coding><code value="3"/></coding></valueCodeableConcept></parameter>
  <parameter><name value="patient-reference"/><valueReference><reference value="Patient/p"/></valueReference></parameter>
  <parameter><name value="patient-resource"/><resource><Patient><id value="x"/></Patient></resource></parameter>
  <parameter><name value="flag"/></parameter>
</Parameters>"#;
        assert_eq!(
            read_parameters(json.to_string().as_bytes(), Format::Json).unwrap(),
            expected()
        );
        assert_eq!(
            read_parameters(xml.as_bytes(), Format::Xml).unwrap(),
            expected()
        );
    }

    #[test]
    fn other_bodies_are_refused() {
        for (body, format, code) in [
            ("{", Format::Json, IssueCode::Structure),
            (
                r#"{"resourceType":"Appointment"}"#,
                Format::Json,
                IssueCode::Invalid,
            ),
            (
                r#"{"resourceType":"Parameters","parameter":{}}"#,
                Format::Json,
                IssueCode::Structure,
            ),
            (
                r#"{"resourceType":"Parameters","parameter":[{"valueUri":"x"}]}"#,
                Format::Json,
                IssueCode::Required,
            ),
            (
                "<Parameters xmlns=\"http://hl7.org/fhir\"><parameter>",
                Format::Xml,
                IssueCode::Structure,
            ),
            (
                "<Parameters><parameter/></Parameters>",
                Format::Xml,
                IssueCode::Invalid,
            ),
            (
                "<Parameters xmlns=\"http://hl7.org/fhir\"><parameter><valueUri value=\"x\"/></parameter></Parameters>",
                Format::Xml,
                IssueCode::Required,
            ),
            ("", Format::Xml, IssueCode::Required),
        ] {
            let issue = read_parameters(body.as_bytes(), format).unwrap_err();
            assert_eq!(issue.code, code, "{body}: {issue:?}");
        }
        let many = json!({
            "resourceType": "Parameters",
            "parameter": (0..=MAX_PARAMETERS).map(|_| json!({"name": "a", "valueString": "b"})).collect::<Vec<_>>()
        });
        let issue = read_parameters(many.to_string().as_bytes(), Format::Json).unwrap_err();
        assert_eq!(issue.code, IssueCode::TooCostly);
    }
}
