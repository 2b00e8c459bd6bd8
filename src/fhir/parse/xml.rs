//! The XML reader: a linear check of the document (declaration, namespace, depth, attributes)
//! before fhirbolt reads it.

use super::*;

// ---------------------------------------------------------------------------------------------
// XML

pub(super) fn parse_xml(text: &str) -> Result<Appointment, Issue> {
    let plan = check_xml(text)?;
    // The declaration (already checked) is cut off: fhirbolt insists on an upper-case
    // encoding="UTF-8", but encoding names are case-insensitive and many writers say "utf-8".
    let content = plan.placeholders.apply(text, plan.content_start);
    let appointment = guarded(move || {
        fhirbolt::xml::from_slice::<Appointment>(content.as_bytes(), strict())
            .map_err(|e| does_not_match(&e.to_string()))
    })?;
    Ok(clear_missing_statuses(appointment))
}

/// What the XML pre-pass learnt: where the content after the declaration starts (0 without one)
/// and where required statuses are missing.
#[derive(Debug, Default)]
pub(super) struct XmlPlan {
    content_start: usize,
    placeholders: StatusPlaceholders,
}

/// The XML side of [`fill_missing_statuses`]: fhirbolt refuses an Appointment or participant
/// without `status` with a message that cannot say which, so a placeholder `status` element is
/// put where one is missing and removed after parsing; the rules then report the missing status
/// with its FHIRPath.
#[derive(Debug, Default)]
pub(super) struct StatusPlaceholders {
    /// (start, end, replacement) byte ranges of the document.
    edits: Vec<(usize, usize, String)>,
}

impl StatusPlaceholders {
    pub(super) const ELEMENT: &str = "<status value=\"\u{E000}missing-status\"/>";

    /// Inserts a placeholder at `offset`, the start of an element's content.
    pub(super) fn insert(&mut self, offset: usize) {
        self.edits.push((offset, offset, Self::ELEMENT.to_string()));
    }

    /// Rewrites the empty element `tag` (e.g. `<participant/>`) spanning `start..end` into an
    /// element holding only a placeholder.
    pub(super) fn expand(&mut self, start: usize, end: usize, tag: &str, qualified_name: &str) {
        let open = tag.trim_end_matches("/>");
        let replacement = format!("{open}>{}</{qualified_name}>", Self::ELEMENT);
        self.edits.push((start, end, replacement));
    }

    /// The document from `from`, with the placeholders in place.
    pub(super) fn apply(&self, text: &str, from: usize) -> String {
        // The root's placeholder is found last but goes first; edits never overlap.
        let mut edits: Vec<&(usize, usize, String)> = self.edits.iter().collect();
        edits.sort_by_key(|(start, _, _)| *start);
        let mut out = String::with_capacity(text.len() - from + edits.len() * 40);
        let mut at = from;
        for (start, end, replacement) in edits {
            out.push_str(&text[at..*start]);
            out.push_str(replacement);
            at = *end;
        }
        out.push_str(&text[at..]);
        out
    }
}

/// Line and column (1-based, column in characters) of a byte offset, for XML messages.
pub(super) fn line_column(text: &str, offset: u64) -> String {
    let offset = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(text.len());
    let before = text.as_bytes()[..offset].split(|&b| b == b'\n');
    let (mut line, mut column) = (0, 0);
    for segment in before {
        line += 1;
        column = String::from_utf8_lossy(segment).chars().count() + 1;
    }
    format!("line {line}, column {column}")
}

/// Element and attribute names are echoed only when they look like names.
pub(super) fn describe_name(name: &str) -> String {
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
    if plain {
        format!("`{name}`")
    } else {
        "with an unusual name".to_string()
    }
}

/// The well-formedness and shape pre-pass over the whole XML document.
pub(super) fn check_xml(text: &str) -> Result<XmlPlan, Issue> {
    let mut reader = NsReader::from_str(text);
    reader.config_mut().enable_all_checks(true);
    let mut plan = XmlPlan::default();
    // Where the content of the root and of the current participant starts, and whether a
    // `status` child has been seen there (for the placeholders).
    let mut root_content: Option<usize> = None;
    let mut root_status = false;
    let mut participant_content: Option<usize> = None;
    let mut participant_status = false;
    let mut first_event = true;
    let mut depth = 0usize;
    let mut root_seen = false;
    // Depth of the narrative `div` while inside it; its XHTML is fhirbolt's business.
    let mut div_depth: Option<usize> = None;

    loop {
        let event_start = reader.buffer_position();
        let (namespace, event) = match reader.read_resolved_event() {
            Ok((ns, event)) => (resolved_is_fhir(&ns), event),
            Err(error) => {
                let at = line_column(text, reader.error_position());
                return Err(structure(format!(
                    "the XML is not well-formed: {} ({at})",
                    describe_xml_error(&error)
                )));
            }
        };
        let at = || line_column(text, event_start);
        let was_first = std::mem::replace(&mut first_event, false);
        match event {
            Event::Decl(decl) => {
                if !was_first || event_start != 0 {
                    return Err(structure(format!(
                        "the XML declaration must come first in the document ({})",
                        at()
                    )));
                }
                check_decl(&decl)?;
                plan.content_start = offset(reader.buffer_position());
            }
            Event::DocType(_) => {
                return Err(structure(format!(
                    "DOCTYPE declarations are not allowed in FHIR XML ({})",
                    at()
                )));
            }
            Event::PI(_) => {
                return Err(structure(format!(
                    "processing instructions are not allowed in FHIR XML ({})",
                    at()
                )));
            }
            Event::CData(_) => {
                return Err(structure(format!(
                    "CDATA sections are not supported in FHIR XML ({})",
                    at()
                )));
            }
            Event::Start(ref start) | Event::Empty(ref start) => {
                if depth == 0 {
                    if root_seen {
                        return Err(structure(format!(
                            "the XML has more than one root element ({})",
                            at()
                        )));
                    }
                    root_seen = true;
                    check_root(start, namespace)?;
                }
                depth += 1;
                if depth > MAX_XML_DEPTH {
                    return Err(structure(format!(
                        "the XML is nested more than {MAX_XML_DEPTH} elements deep ({})",
                        at()
                    )));
                }
                if div_depth.is_none() && start.local_name().as_ref() == "div" {
                    div_depth = Some(depth);
                }
                if div_depth.is_none() && depth > 1 && !namespace {
                    return Err(structure(format!(
                        "element {} is not in the FHIR namespace http://hl7.org/fhir ({})",
                        describe_name(start.name().as_ref()),
                        at()
                    )));
                }
                check_attributes(start, div_depth.is_some(), text, event_start)?;
                let empty = matches!(event, Event::Empty(_));
                let name = start.local_name();
                match (depth, name.as_ref()) {
                    (1, _) if empty => {
                        let (from, to) = (offset(event_start), offset(reader.buffer_position()));
                        let qualified = start.name();
                        plan.placeholders
                            .expand(from, to, &text[from..to], qualified.as_ref());
                    }
                    (1, _) => root_content = Some(offset(reader.buffer_position())),
                    (2, "status") => root_status = true,
                    (2, "participant") if empty => {
                        let (from, to) = (offset(event_start), offset(reader.buffer_position()));
                        let qualified = start.name();
                        plan.placeholders
                            .expand(from, to, &text[from..to], qualified.as_ref());
                    }
                    (2, "participant") => {
                        participant_content = Some(offset(reader.buffer_position()));
                        participant_status = false;
                    }
                    (3, "status") if participant_content.is_some() => participant_status = true,
                    _ => {}
                }
                if empty {
                    depth -= 1;
                    if div_depth.is_some_and(|d| d > depth) {
                        div_depth = None;
                    }
                }
            }
            Event::End(_) => {
                match depth {
                    2 => {
                        if let Some(content) = participant_content.take()
                            && !participant_status
                        {
                            plan.placeholders.insert(content);
                        }
                    }
                    1 => {
                        if let Some(content) = root_content
                            && !root_status
                        {
                            plan.placeholders.insert(content);
                        }
                    }
                    _ => {}
                }
                // check_end_names guarantees this matches an open element.
                depth = depth.saturating_sub(1);
                if div_depth.is_some_and(|d| d > depth) {
                    div_depth = None;
                }
            }
            Event::Text(ref t) if depth == 0 && !t.bytes().all(|b| b.is_ascii_whitespace()) => {
                return Err(structure(format!(
                    "the XML has text outside the root element ({})",
                    at()
                )));
            }
            Event::GeneralRef(reference) => {
                if depth == 0 {
                    return Err(structure(format!(
                        "the XML has text outside the root element ({})",
                        at()
                    )));
                }
                // Only the five predefined entities and character references exist without a
                // DTD, and DTDs are refused.
                let known = match reference.resolve_char_ref() {
                    Ok(Some(_)) => true,
                    Ok(None) => matches!(&*reference, "lt" | "gt" | "amp" | "apos" | "quot"),
                    Err(_) => false,
                };
                if !known {
                    return Err(structure(format!(
                        "the XML has an undefined entity or invalid character reference ({})",
                        at()
                    )));
                }
            }
            Event::Eof => {
                if !root_seen {
                    return Err(structure("the XML has no root element"));
                }
                if depth > 0 {
                    return Err(structure(format!(
                        "the XML ends before all elements are closed ({})",
                        at()
                    )));
                }
                return Ok(plan);
            }
            Event::Text(_) | Event::Comment(_) => {}
        }
    }
}

/// A reader position as an index into the document (always in range for an in-memory reader).
pub(super) fn offset(position: u64) -> usize {
    usize::try_from(position).unwrap_or(usize::MAX)
}

pub(super) fn resolved_is_fhir(ns: &ResolveResult) -> bool {
    matches!(ns, ResolveResult::Bound(Namespace(n)) if *n == FHIR_NS)
}

pub(super) fn check_decl(decl: &BytesDecl) -> Result<(), Issue> {
    let version_ok = decl.version().is_ok_and(|v| v == "1.0");
    if !version_ok {
        return Err(structure("the XML declaration must say version=\"1.0\""));
    }
    if let Some(encoding) = decl.encoding() {
        let utf8 = encoding.is_ok_and(|e| e.eq_ignore_ascii_case("utf-8"));
        if !utf8 {
            return Err(structure(
                "the XML declaration must say encoding=\"UTF-8\" (or leave it out); FHIR requires UTF-8",
            ));
        }
    }
    if let Some(standalone) = decl.standalone()
        && !standalone.is_ok_and(|s| s == "yes" || s == "no")
    {
        return Err(structure(
            "the XML declaration's standalone must be yes or no",
        ));
    }
    Ok(())
}

pub(super) fn check_root(start: &BytesStart, in_fhir_namespace: bool) -> Result<(), Issue> {
    if !in_fhir_namespace {
        return Err(structure(
            "the root element must be in the FHIR namespace: <Appointment xmlns=\"http://hl7.org/fhir\">",
        ));
    }
    let name = start.local_name();
    if name.as_ref() != "Appointment" {
        return Err(wrong_resource_type(name.as_ref()));
    }
    Ok(())
}

/// The most attributes a FHIR element may carry: it has only `value`, `id`, `url` and namespace
/// declarations, so this leaves room to spare.
pub const MAX_ATTRIBUTES: usize = 8;
/// The most attributes an element of the narrative's XHTML (or of a Bundle's or Parameters'
/// frame, whose resources are checked again on their own) may carry.
pub const MAX_MARKUP_ATTRIBUTES: usize = 64;

/// Refuses an element with more than `max` attributes, counting them in one pass and stopping
/// at the first one too many. XML parsers check attributes for duplicates pairwise: unbounded,
/// a megabyte of attributes on one element costs seconds of CPU (quadratic), so the count comes
/// before anything else looks at them.
///
/// # Errors
/// A `structure` issue naming the limit and the position.
pub(crate) fn limit_attributes(
    start: &BytesStart,
    max: usize,
    text: &str,
    offset: u64,
) -> Result<(), Issue> {
    if start.attributes().with_checks(false).nth(max).is_some() {
        return Err(structure(format!(
            "an element has more than {max} attributes, more than FHIR XML ever needs ({})",
            line_column(text, offset)
        )));
    }
    Ok(())
}

/// Attributes must be few (see [`limit_attributes`]) and well-formed (unique, quoted, with valid
/// references). Outside the narrative, FHIR elements carry only unprefixed attributes (`value`,
/// `id`, `url`) and the default namespace; fhirbolt rejects prefixed ones (`xmlns:xsi`,
/// `xsi:schemaLocation`) with a vague namespace error, so they are named here.
pub(super) fn check_attributes(
    start: &BytesStart,
    in_div: bool,
    text: &str,
    offset: u64,
) -> Result<(), Issue> {
    let max = if in_div {
        MAX_MARKUP_ATTRIBUTES
    } else {
        MAX_ATTRIBUTES
    };
    limit_attributes(start, max, text, offset)?;
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|_| {
            structure(format!(
                "the XML is not well-formed: a malformed or repeated attribute ({})",
                line_column(text, offset)
            ))
        })?;
        if attribute
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .is_err()
        {
            return Err(structure(format!(
                "the XML has an undefined entity or invalid character reference in an attribute ({})",
                line_column(text, offset)
            )));
        }
        if !in_div && attribute.key.as_ref().contains(':') {
            return Err(structure(format!(
                "attribute {} is not allowed on a FHIR element: use only the default namespace and \
                 the value, id and url attributes ({})",
                describe_name(attribute.key.as_ref()),
                line_column(text, offset)
            )));
        }
    }
    Ok(())
}

/// A quick-xml error, described without any part of the input.
pub(super) fn describe_xml_error(error: &quick_xml::Error) -> String {
    use quick_xml::errors::IllFormedError;
    match error {
        // Fixed phrases such as "tag not closed: `>` not found before end of input".
        quick_xml::Error::Syntax(syntax) => syntax.to_string(),
        quick_xml::Error::IllFormed(ill) => match ill {
            IllFormedError::MissingDeclVersion(_) => "the XML declaration has no version".into(),
            IllFormedError::UnknownVersion => "unknown XML version".into(),
            IllFormedError::MissingDoctypeName => "a DOCTYPE without a name".into(),
            IllFormedError::MissingEndTag(_) => "an element is not closed".into(),
            IllFormedError::UnmatchedEndTag(_) => "an end tag has no start tag".into(),
            IllFormedError::MismatchedEndTag { .. } => {
                "an end tag does not match its start tag".into()
            }
            IllFormedError::DoubleHyphenInComment => "a comment contains `--`".into(),
            IllFormedError::UnclosedReference => "an unclosed entity or character reference".into(),
        },
        quick_xml::Error::InvalidAttr(_) => "a malformed or repeated attribute".into(),
        quick_xml::Error::Escape(_) => "an undefined entity or invalid character reference".into(),
        quick_xml::Error::Namespace(_) => "an invalid namespace declaration".into(),
        quick_xml::Error::Encoding(_) => "an encoding error".into(),
        _ => "unreadable input".into(),
    }
}
