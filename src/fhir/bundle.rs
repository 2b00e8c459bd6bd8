//! Request bytes → a `batch` or `transaction` Bundle's type and raw entries, in JSON or XML.
//!
//! A Bundle is never handed to fhirbolt as a whole: its `Resource` parser panics on some malformed
//! entries, its JSON reader cannot read primitives that follow `resource` in an entry, and one bad
//! entry would sink the whole Bundle where FHIR wants a per-entry answer. So this module reads
//! only the Bundle's frame (its type, and each entry's `request`) and cuts each entry's resource
//! out as it stands: a JSON value, or a standalone XML document with the FHIR namespace. The
//! resource is then parsed on its own through the guarded Appointment parser, exactly as a single
//! Appointment is, so every check and message is the same in and out of a Bundle.
//!
//! Diagnostics name elements, never values: an entry can carry patient data.

use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use serde_json::Value;

use crate::fhir::format::Format;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::fhir::parse::{
    MAX_MARKUP_ATTRIBUTES, MAX_XML_DEPTH, body_text, json_to_appointment, limit_attributes,
    parse_appointment_here, read_json_bundle, wrong_resource_type,
};

/// The FHIR XML namespace.
const FHIR_NS: &str = "http://hl7.org/fhir";

/// The Bundle types this server processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleType {
    /// Each entry on its own.
    Batch,
    /// All entries or none (as far as Salesforce allows: see README).
    Transaction,
}

/// A Bundle as read: its type and its entries in order.
#[derive(Debug, Clone, PartialEq)]
pub struct RawBundle {
    /// `Bundle.type`.
    pub bundle_type: BundleType,
    /// `Bundle.entry`, in document order.
    pub entries: Vec<RawEntry>,
}

/// One entry, not yet interpreted.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawEntry {
    /// `entry.request`, when present.
    pub request: Option<EntryRequest>,
    /// `entry.resource`, when present.
    pub resource: Option<EntryResource>,
}

/// `entry.request`: what to do with the entry. Missing strings are empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntryRequest {
    /// `request.method` (`POST`, `PUT`, `PATCH`, …).
    pub method: String,
    /// `request.url`, e.g. `Appointment` or `Appointment/123`.
    pub url: String,
    /// `request.ifNoneExist`, the conditional-create query.
    pub if_none_exist: Option<String>,
}

/// An entry's resource, cut out of the Bundle as it was sent.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryResource {
    /// The resource's JSON object, and its first problem as [`crate::fhir::parse`] checks a
    /// resource (found while the Bundle was read: the resource is read once).
    Json {
        /// The resource.
        value: Value,
        /// What is wrong with it, its expression relative to the resource.
        issue: Option<Issue>,
    },
    /// A standalone XML document holding only the resource, with the FHIR namespace declared on
    /// its root and whitespace in front so line and column numbers match the Bundle's.
    Xml {
        /// The root element's local name (the resource type).
        resource_type: String,
        /// The document.
        document: String,
    },
}

impl EntryResource {
    /// The resource type, when one is named.
    pub fn resource_type(&self) -> Option<&str> {
        match self {
            EntryResource::Json { value, .. } => value.get("resourceType").and_then(Value::as_str),
            EntryResource::Xml { resource_type, .. } => Some(resource_type),
        }
    }

    /// Parses the resource as an Appointment, on this thread (a Bundle is read in one parser job,
    /// see [`crate::fhir::pool`]): a JSON resource straight from the value read with the Bundle,
    /// an XML one from its standalone document.
    ///
    /// # Errors
    /// The parser's issue, with expressions relative to the Appointment.
    pub fn appointment(self) -> Result<fhirbolt::model::r4::resources::Appointment, Issue> {
        match self {
            EntryResource::Json {
                issue: Some(issue), ..
            } => Err(issue),
            EntryResource::Json { value, issue: None } => {
                match value.get("resourceType").and_then(Value::as_str) {
                    Some("Appointment") => json_to_appointment(value),
                    Some(kind) => Err(wrong_resource_type(kind)),
                    None => Err(Issue::general(
                        IssueCode::Structure,
                        "the resource has no `resourceType` property; expected \"resourceType\": \
                         \"Appointment\"",
                    )),
                }
            }
            EntryResource::Xml { document, .. } => {
                parse_appointment_here(document.as_bytes(), Format::Xml)
            }
        }
    }

    /// A `Binary` resource's `contentType` and `data` (Base64), the way a JSON Patch travels in a
    /// Bundle; `None` for anything else.
    pub fn binary(&self) -> Option<(String, String)> {
        match self {
            EntryResource::Json { value, .. } => {
                if value.get("resourceType").and_then(Value::as_str) != Some("Binary") {
                    return None;
                }
                let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
                Some((field("contentType")?, field("data")?))
            }
            EntryResource::Xml {
                resource_type,
                document,
            } => {
                if resource_type != "Binary" {
                    return None;
                }
                let (content_type, data) = binary_values(document)?;
                Some((content_type?, data?))
            }
        }
    }
}

/// Reads a Bundle in `format`.
///
/// # Errors
/// A single 400-class issue: the body is not JSON or well-formed XML, is not a Bundle, or is not
/// of type `batch` or `transaction`; `Bundle.entry` or an entry is not the right shape.
pub fn read_bundle(body: &[u8], format: Format) -> Result<RawBundle, Issue> {
    let text = body_text(body)?;
    match format {
        Format::Json => read_json(text),
        Format::Xml => read_xml(text),
    }
}

fn structure(diagnostics: impl Into<String>) -> Issue {
    Issue::general(IssueCode::Structure, diagnostics)
}

fn not_a_bundle() -> Issue {
    Issue::at(
        IssueCode::Invalid,
        "Bundle",
        "POST [base] takes a Bundle of type batch or transaction",
    )
}

fn bundle_type(value: Option<&str>) -> Result<BundleType, Issue> {
    match value {
        Some("batch") => Ok(BundleType::Batch),
        Some("transaction") => Ok(BundleType::Transaction),
        _ => Err(Issue::at(
            IssueCode::NotSupported,
            "Bundle.type",
            "only batch and transaction Bundles can be processed",
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// JSON

fn read_json(text: &str) -> Result<RawBundle, Issue> {
    let (mut value, issues) = read_json_bundle(text)?;
    if value.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(not_a_bundle());
    }
    let bundle_type = bundle_type(value.get("type").and_then(Value::as_str))?;
    let mut issues = issues.into_iter().peekable();
    let entries = match value.get_mut("entry").map(Value::take) {
        None => Vec::new(),
        Some(Value::Array(entries)) => entries
            .into_iter()
            .enumerate()
            .map(|(index, entry)| {
                let issue = issues.next_if(|(i, _)| *i == index).map(|(_, issue)| issue);
                json_entry(index, entry, issue)
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(Issue::at(
                IssueCode::Structure,
                "Bundle.entry",
                "Bundle.entry must be an array",
            ));
        }
    };
    Ok(RawBundle {
        bundle_type,
        entries,
    })
}

fn json_entry(index: usize, mut entry: Value, issue: Option<Issue>) -> Result<RawEntry, Issue> {
    if !entry.is_object() {
        return Err(Issue::at(
            IssueCode::Structure,
            format!("Bundle.entry[{index}]"),
            "each entry must be an object",
        ));
    }
    let request = entry.get("request").map(|request| {
        let text = |name: &str| request.get(name).and_then(Value::as_str).map(str::to_owned);
        EntryRequest {
            method: text("method").unwrap_or_default(),
            url: text("url").unwrap_or_default(),
            if_none_exist: text("ifNoneExist"),
        }
    });
    Ok(RawEntry {
        request,
        resource: entry
            .get_mut("resource")
            .map(Value::take)
            .map(|value| EntryResource::Json { value, issue }),
    })
}

// ---------------------------------------------------------------------------------------------
// XML

/// Where the reader is inside the Bundle frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Other,
    Entry,
    EntryResource,
    EntryRequest,
}

fn read_xml(text: &str) -> Result<RawBundle, Issue> {
    let mut reader = NsReader::from_str(text);
    reader.config_mut().enable_all_checks(true);
    // (local name, place) of every open element.
    let mut open: Vec<Place> = Vec::new();
    let mut bundle_type_value: Option<String> = None;
    let mut entries: Vec<RawEntry> = Vec::new();
    let mut root_seen = false;

    loop {
        let event_start = reader.buffer_position();
        let (namespace, event) = match reader.read_resolved_event() {
            Ok(read) => read,
            Err(_) => {
                return Err(structure(format!(
                    "the XML is not well-formed ({})",
                    line_column(text, reader.error_position())
                )));
            }
        };
        let in_fhir = matches!(namespace, ResolveResult::Bound(Namespace(n)) if n == FHIR_NS);
        let at = || line_column(text, event_start);
        match event {
            Event::DocType(_) => {
                return Err(structure(format!(
                    "DOCTYPE declarations are not allowed in FHIR XML ({})",
                    at()
                )));
            }
            Event::PI(_) | Event::CData(_) => {
                return Err(structure(format!(
                    "processing instructions and CDATA sections are not allowed in FHIR XML ({})",
                    at()
                )));
            }
            Event::Start(ref start) | Event::Empty(ref start) => {
                limit_attributes(start, MAX_MARKUP_ATTRIBUTES, text, event_start)?;
                let empty = matches!(event, Event::Empty(_));
                let depth = open.len() + 1;
                // Bundle, entry and resource wrap the resource's own depth limit.
                if depth > MAX_XML_DEPTH + 3 {
                    return Err(structure(format!("the XML is nested too deep ({})", at())));
                }
                let name = start.local_name();
                let name = name.as_ref();
                if depth == 1 {
                    if root_seen {
                        return Err(structure(format!(
                            "the XML has more than one root element ({})",
                            at()
                        )));
                    }
                    root_seen = true;
                    if !in_fhir || name != "Bundle" {
                        return Err(not_a_bundle());
                    }
                }
                let parent = open.last().copied();
                let place = match (depth, parent, name) {
                    (2, _, "type") => {
                        bundle_type_value = value_attribute(start);
                        Place::Other
                    }
                    (2, _, "entry") => {
                        entries.push(RawEntry::default());
                        Place::Entry
                    }
                    (3, Some(Place::Entry), "resource") => Place::EntryResource,
                    (3, Some(Place::Entry), "request") => {
                        if let Some(entry) = entries.last_mut() {
                            entry.request = Some(EntryRequest::default());
                        }
                        Place::EntryRequest
                    }
                    (4, Some(Place::EntryRequest), field) => {
                        let value = value_attribute(start);
                        if let Some(request) = entries.last_mut().and_then(|e| e.request.as_mut()) {
                            match field {
                                "method" => request.method = value.unwrap_or_default(),
                                "url" => request.url = value.unwrap_or_default(),
                                "ifNoneExist" => request.if_none_exist = value,
                                _ => {}
                            }
                        }
                        Place::Other
                    }
                    (4, Some(Place::EntryResource), _) => {
                        // The resource itself: cut it out whole; its content is the resource
                        // parser's business.
                        let from = offset(event_start);
                        let resource_type = name.to_owned();
                        if !empty {
                            reader.read_to_end(start.name()).map_err(|_| {
                                structure(format!(
                                    "the XML is not well-formed inside the resource that starts at {}",
                                    at()
                                ))
                            })?;
                        }
                        let to = offset(reader.buffer_position());
                        let document = standalone(text, from, to, start);
                        if let Some(entry) = entries.last_mut() {
                            entry.resource = Some(EntryResource::Xml {
                                resource_type,
                                document,
                            });
                        }
                        continue;
                    }
                    _ => Place::Other,
                };
                if !empty {
                    open.push(place);
                }
            }
            Event::End(_) => {
                open.pop();
            }
            Event::Eof => {
                if !root_seen {
                    return Err(structure("the XML has no root element"));
                }
                if !open.is_empty() {
                    return Err(structure("the XML ends before all elements are closed"));
                }
                break;
            }
            Event::Decl(_) | Event::Text(_) | Event::Comment(_) | Event::GeneralRef(_) => {}
        }
    }
    Ok(RawBundle {
        bundle_type: bundle_type(bundle_type_value.as_deref())?,
        entries,
    })
}

/// The element's `value` attribute, unescaped (FHIR XML keeps primitive values there).
pub(crate) fn value_attribute(start: &BytesStart) -> Option<String> {
    start
        .try_get_attribute("value")
        .ok()
        .flatten()
        .and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
}

/// The resource at `text[from..to]` as a document of its own: the FHIR namespace declared on its
/// root (it was inherited from the Bundle), and whitespace in front so that positions in the
/// parser's messages are positions in the Bundle.
fn standalone(text: &str, from: usize, to: usize, start: &BytesStart) -> String {
    let element = &text[from..to];
    let declares_namespace = start
        .attributes()
        .flatten()
        .any(|a| a.key.as_ref() == "xmlns");
    let (line, column) = position(text, from);
    let mut document = String::with_capacity(line + column + element.len() + 32);
    document.extend(std::iter::repeat_n('\n', line.saturating_sub(1)));
    document.extend(std::iter::repeat_n(' ', column.saturating_sub(1)));
    if declares_namespace {
        document.push_str(element);
    } else {
        // `<` + the qualified name, then the declaration, then the rest of the tag.
        let name_end = 1 + start.name().as_ref().len();
        document.push_str(&element[..name_end]);
        document.push_str(" xmlns=\"");
        document.push_str(FHIR_NS);
        document.push('"');
        document.push_str(&element[name_end..]);
    }
    document
}

/// A `Binary` document's `contentType` and `data` values.
fn binary_values(document: &str) -> Option<(Option<String>, Option<String>)> {
    let mut reader = NsReader::from_str(document);
    let mut depth = 0usize;
    let (mut content_type, mut data) = (None, None);
    loop {
        match reader.read_event().ok()? {
            Event::Start(start) => {
                depth += 1;
                if depth == 2 {
                    read_binary_field(&start, &mut content_type, &mut data);
                }
            }
            Event::Empty(start) if depth == 1 => {
                read_binary_field(&start, &mut content_type, &mut data);
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Eof => return Some((content_type, data)),
            _ => {}
        }
    }
}

fn read_binary_field(
    start: &BytesStart,
    content_type: &mut Option<String>,
    data: &mut Option<String>,
) {
    match start.local_name().as_ref() {
        "contentType" => *content_type = value_attribute(start),
        "data" => *data = value_attribute(start),
        _ => {}
    }
}

/// A reader position as an index into the document (always in range for an in-memory reader).
fn offset(position: u64) -> usize {
    usize::try_from(position).unwrap_or(usize::MAX)
}

/// Line and column (1-based, column in characters) of a byte offset.
fn position(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn line_column(text: &str, at: u64) -> String {
    let (line, column) = position(text, offset(at));
    format!("line {line}, column {column}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const APPOINTMENT_XML: &str = r#"<Appointment><status value="booked"/><participant><actor><reference value="Patient/p1"/></actor><status value="accepted"/></participant></Appointment>"#;

    fn xml_bundle(kind: &str, entries: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Bundle xmlns=\"http://hl7.org/fhir\">\n  \
             <type value=\"{kind}\"/>\n{entries}</Bundle>"
        )
    }

    #[test]
    fn json_bundles_keep_entry_order_requests_and_resources() {
        let body = json!({
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": {"resourceType": "Appointment", "status": "booked"},
                 "request": {"method": "POST", "url": "Appointment", "ifNoneExist": "identifier=a|b"}},
                {"request": {"method": "DELETE", "url": "Appointment/1"}},
                {}
            ]
        });
        let read = read_bundle(body.to_string().as_bytes(), Format::Json).unwrap();
        assert_eq!(read.bundle_type, BundleType::Transaction);
        assert_eq!(read.entries.len(), 3);
        let first = &read.entries[0];
        assert_eq!(
            first.request,
            Some(EntryRequest {
                method: "POST".into(),
                url: "Appointment".into(),
                if_none_exist: Some("identifier=a|b".into()),
            })
        );
        assert_eq!(
            first.resource.as_ref().unwrap().resource_type(),
            Some("Appointment")
        );
        assert_eq!(read.entries[1].request.as_ref().unwrap().method, "DELETE");
        assert_eq!(read.entries[2], RawEntry::default());
    }

    #[test]
    fn xml_bundles_read_like_json_ones() {
        let body = xml_bundle(
            "batch",
            &format!(
                "  <entry>\n    <fullUrl value=\"urn:uuid:1\"/>\n    <resource>\n      {APPOINTMENT_XML}\n    </resource>\n    \
                 <request><method value=\"POST\"/><url value=\"Appointment\"/><ifNoneExist value=\"identifier=http://x|1&amp;2\"/></request>\n  </entry>\n  \
                 <entry><request><method value=\"PUT\"/><url value=\"Appointment/9\"/></request></entry>\n"
            ),
        );
        let read = read_bundle(body.as_bytes(), Format::Xml).unwrap();
        assert_eq!(read.bundle_type, BundleType::Batch);
        assert_eq!(read.entries.len(), 2);
        let request = read.entries[0].request.as_ref().unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.if_none_exist.as_deref(),
            Some("identifier=http://x|1&2"),
            "entities are unescaped"
        );
        let resource = read.entries[0].resource.as_ref().unwrap();
        assert_eq!(resource.resource_type(), Some("Appointment"));
        let appointment = resource.clone().appointment().expect("the cut-out parses");
        assert_eq!(appointment.status.value.as_deref(), Some("booked"));
        assert_eq!(read.entries[1].resource, None);
        assert_eq!(
            read.entries[1].request.as_ref().unwrap().url,
            "Appointment/9"
        );
    }

    #[test]
    fn positions_in_an_entry_are_positions_in_the_bundle() {
        // A bad element on line 6 of the Bundle.
        let body = xml_bundle(
            "batch",
            "  <entry>\n    <resource>\n      <Appointment>\n <bogus value=\"x\"/><status value=\"booked\"/></Appointment>\n    </resource>\n  </entry>\n",
        );
        let read = read_bundle(body.as_bytes(), Format::Xml).unwrap();
        let EntryResource::Xml { document, .. } = read.entries[0].resource.as_ref().unwrap() else {
            panic!("an XML resource");
        };
        let line_of_bogus = body.lines().position(|l| l.contains("bogus")).unwrap();
        assert_eq!(
            document.lines().position(|l| l.contains("bogus")),
            Some(line_of_bogus)
        );
        let issue = read.entries[0]
            .resource
            .clone()
            .unwrap()
            .appointment()
            .unwrap_err();
        assert_eq!(issue.code, IssueCode::Structure, "{issue:?}");
    }

    #[test]
    fn xml_binary_patches_are_read() {
        let body = xml_bundle(
            "batch",
            "<entry><resource><Binary><contentType value=\"application/json-patch+json\"/><data value=\"W10=\"/></Binary></resource>\
             <request><method value=\"PATCH\"/><url value=\"Appointment/1\"/></request></entry>",
        );
        let read = read_bundle(body.as_bytes(), Format::Xml).unwrap();
        assert_eq!(
            read.entries[0].resource.as_ref().unwrap().binary(),
            Some(("application/json-patch+json".into(), "W10=".into()))
        );
        let json = EntryResource::Json {
            value: json!({"resourceType": "Binary", "contentType": "a", "data": "b"}),
            issue: None,
        };
        assert_eq!(json.binary(), Some(("a".into(), "b".into())));
        assert_eq!(
            EntryResource::Json {
                value: json!({"resourceType": "Appointment"}),
                issue: None
            }
            .binary(),
            None
        );
    }

    #[test]
    fn frames_that_are_not_batches_or_transactions_are_refused() {
        let cases: Vec<(String, Format, IssueCode)> = vec![
            ("{".into(), Format::Json, IssueCode::Structure),
            (
                r#"{"resourceType":"Appointment"}"#.into(),
                Format::Json,
                IssueCode::Invalid,
            ),
            (
                r#"{"resourceType":"Bundle","type":"collection"}"#.into(),
                Format::Json,
                IssueCode::NotSupported,
            ),
            (
                r#"{"resourceType":"Bundle","type":"batch","entry":{}}"#.into(),
                Format::Json,
                IssueCode::Structure,
            ),
            (
                r#"{"resourceType":"Bundle","type":"batch","entry":[1]}"#.into(),
                Format::Json,
                IssueCode::Structure,
            ),
            (
                "<Bundle xmlns=\"http://hl7.org/fhir\"><type value=\"batch\"/>".into(),
                Format::Xml,
                IssueCode::Structure,
            ),
            (
                "<Bundle><type value=\"batch\"/></Bundle>".into(),
                Format::Xml,
                IssueCode::Invalid,
            ),
            (
                "<Appointment xmlns=\"http://hl7.org/fhir\"/>".into(),
                Format::Xml,
                IssueCode::Invalid,
            ),
            (
                xml_bundle("searchset", ""),
                Format::Xml,
                IssueCode::NotSupported,
            ),
            (
                "<!DOCTYPE x [<!ENTITY a \"b\">]><Bundle xmlns=\"http://hl7.org/fhir\"/>".into(),
                Format::Xml,
                IssueCode::Structure,
            ),
            ("   ".into(), Format::Xml, IssueCode::Required),
        ];
        for (body, format, code) in cases {
            let issue = read_bundle(body.as_bytes(), format).unwrap_err();
            assert_eq!(issue.code, code, "{body}: {issue:?}");
        }
    }

    #[test]
    fn deep_xml_is_refused_without_recursion() {
        let depth = MAX_XML_DEPTH + 10;
        let body = format!(
            "<Bundle xmlns=\"http://hl7.org/fhir\"><type value=\"batch\"/>{}{}</Bundle>",
            "<extension>".repeat(depth),
            "</extension>".repeat(depth)
        );
        let issue = read_bundle(body.as_bytes(), Format::Xml).unwrap_err();
        assert!(issue.diagnostics.contains("nested"), "{issue:?}");
    }
}
