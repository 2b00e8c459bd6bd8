//! FHIR wire formats and content negotiation (R4 http.html §3.1.0.1.9–11).
//!
//! Owns three decisions and nothing else:
//! - which format a request body is in (`Content-Type`; an unsupported type is a 415),
//! - which format the answer is written in (`_format`, which overrides `Accept`; nothing acceptable
//!   is a 406),
//! - how a resource becomes bytes in that format (`serialize`).
//!
//! Header values are not patient data, but they are still caller input: diagnostics echo a media
//! type only when it is made of plain token characters, so odd bytes never reach a response or log.

use std::cmp::Ordering;

use fhirbolt::serde::SerializeResource;

use crate::fhir::outcome::{Issue, IssueCode};

/// A FHIR R4 wire format. Both are always UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// FHIR JSON (`application/fhir+json`).
    Json,
    /// FHIR XML (`application/fhir+xml`).
    Xml,
}

impl Format {
    /// The `Content-Type` this server sends for the format (always the FHIR type, with the charset
    /// spelled out so clients never have to guess).
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/fhir+json; charset=utf-8",
            Format::Xml => "application/fhir+xml; charset=utf-8",
        }
    }
}

/// Media types (lower case, without parameters) that mean FHIR JSON. `application/json+fhir` is the
/// DSTU2 name, which R4 says servers MAY still accept.
const JSON_TYPES: [&str; 3] = [
    "application/fhir+json",
    "application/json",
    "application/json+fhir",
];

/// Media types that mean FHIR XML. `application/xml+fhir` is the DSTU2 name.
const XML_TYPES: [&str; 4] = [
    "application/fhir+xml",
    "application/xml",
    "application/xml+fhir",
    "text/xml",
];

/// The `fhirVersion` parameter values that mean R4 (R4 http.html §3.1.0.1.10 uses the
/// major.minor form; the full release number is accepted too).
const R4_VERSIONS: [&str; 2] = ["4.0", "4.0.1"];

const ACCEPTED_REQUEST_TYPES: &str = "application/fhir+json or application/fhir+xml (also accepted: \
     application/json, application/json+fhir, application/xml, application/xml+fhir, text/xml), \
     optionally with charset=utf-8 and fhirVersion=4.0";

/// Which format a request body is in, from its `Content-Type` header.
///
/// Accepts the FHIR, generic and DSTU2 JSON/XML types, case-insensitively, with optional
/// parameters: `charset` must be `utf-8` and `fhirVersion` must be `4.0` or `4.0.1` when present;
/// other parameters are ignored. A missing or unsupported type is an `Err` with
/// [`IssueCode::NotSupported`]; the caller answers 415.
pub fn request_format(content_type: Option<&str>) -> Result<Format, Issue> {
    let Some(header) = content_type.filter(|h| !h.trim().is_empty()) else {
        return Err(Issue::general(
            IssueCode::NotSupported,
            format!("the request has no Content-Type; send {ACCEPTED_REQUEST_TYPES}"),
        ));
    };
    let unsupported = |why: String| {
        Issue::general(
            IssueCode::NotSupported,
            format!("{why}; send {ACCEPTED_REQUEST_TYPES}"),
        )
    };
    let Some(media) = MediaType::parse(header) else {
        return Err(unsupported("the Content-Type is malformed".into()));
    };
    let Some(format) = format_of(&media.essence) else {
        return Err(unsupported(format!(
            "the Content-Type {} is not supported",
            describe_media_type(&media.essence)
        )));
    };
    if let Some(charset) = media.param("charset")
        && !charset.eq_ignore_ascii_case("utf-8")
    {
        // FHIR mandates UTF-8 (R4 http.html §3.1.0.1.9); anything else would be misread.
        return Err(unsupported("the Content-Type charset must be utf-8".into()));
    }
    if let Some(version) = media.param("fhirversion")
        && !R4_VERSIONS.contains(&version)
    {
        return Err(unsupported(
            "the Content-Type fhirVersion must be 4.0 or 4.0.1: this server speaks FHIR R4".into(),
        ));
    }
    Ok(format)
}

/// Which format the answer is written in.
///
/// `_format` (when given and non-empty) overrides `Accept`; its values are `json`, `xml` and the
/// JSON/XML media types. Because a `+` in a query string decodes to a space,
/// `application/fhir json` is read as `application/fhir+json`.
///
/// `Accept` is read with q-values: `q=0` excludes, the most specific matching range decides each
/// format's quality, the highest quality wins and ties go to the range listed first (a wildcard
/// that covers both formats gives `fallback`). `*/*`, `application/*` and `text/*` are understood;
/// ranges with a `fhirVersion` other than R4, or a charset other than UTF-8, are ignored. An absent
/// or empty `Accept` gives `fallback`.
///
/// Nothing acceptable (or an unknown `_format`) is an `Err` with [`IssueCode::NotSupported`]; the
/// caller answers 406.
pub fn response_format(
    accept: Option<&str>,
    format_param: Option<&str>,
    fallback: Format,
) -> Result<Format, Issue> {
    if let Some(param) = format_param.map(str::trim).filter(|p| !p.is_empty()) {
        return format_from_param(param);
    }
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(fallback);
    };
    negotiate(accept, fallback).ok_or_else(|| {
        Issue::general(
            IssueCode::NotSupported,
            "none of the types in Accept can be produced; this server answers with \
             application/fhir+json or application/fhir+xml (FHIR R4)",
        )
    })
}

/// True when the `_pretty` parameter asks for indented output (`_pretty=true`).
pub fn wants_pretty(pretty_param: Option<&str>) -> bool {
    pretty_param.is_some_and(|p| p.trim().eq_ignore_ascii_case("true"))
}

/// Writes any fhirbolt R4 resource in `format`.
///
/// `pretty` indents JSON; fhirbolt's XML writer always indents, so it has no effect on XML.
///
/// Serializing a well-formed model does not fail, but a model built by hand can be malformed (a
/// required code left at its default, say). Rather than panic or send half a body, that case
/// yields a minimal hand-written OperationOutcome in the same format and logs that it happened.
pub fn serialize<T: SerializeResource>(resource: &T, format: Format, pretty: bool) -> Vec<u8> {
    // The serializers' messages are not kept: they can quote a value of the resource, which may be
    // patient data, and this path is for the operator, who needs to know only that it happened.
    let written = match (format, pretty) {
        (Format::Json, false) => fhirbolt::json::to_vec(resource, None).map_err(drop),
        (Format::Json, true) => fhirbolt::json::to_vec_pretty(resource, None).map_err(drop),
        (Format::Xml, _) => fhirbolt::xml::to_vec(resource, None).map_err(drop),
    };
    match written {
        Ok(bytes) => bytes,
        Err(()) => {
            tracing::error!(
                ?format,
                "a FHIR resource could not be serialized (a required element left empty?); sent \
                 a fallback OperationOutcome"
            );
            serialization_failed_body(format)
        }
    }
}

/// The fallback body for [`serialize`]: an R4 OperationOutcome with one fatal `exception` issue,
/// written by hand so it cannot itself fail.
fn serialization_failed_body(format: Format) -> Vec<u8> {
    const DIAGNOSTICS: &str = "the response could not be serialized";
    match format {
        Format::Json => format!(
            r#"{{"resourceType":"OperationOutcome","issue":[{{"severity":"fatal","code":"exception","diagnostics":"{DIAGNOSTICS}"}}]}}"#
        )
        .into_bytes(),
        Format::Xml => format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><OperationOutcome xmlns="http://hl7.org/fhir"><issue><severity value="fatal"/><code value="exception"/><diagnostics value="{DIAGNOSTICS}"/></issue></OperationOutcome>"#
        )
        .into_bytes(),
    }
}

/// The format a media type essence (lower case `type/subtype`) stands for, if any.
fn format_of(essence: &str) -> Option<Format> {
    if JSON_TYPES.contains(&essence) {
        Some(Format::Json)
    } else if XML_TYPES.contains(&essence) {
        Some(Format::Xml)
    } else {
        None
    }
}

fn format_from_param(param: &str) -> Result<Format, Issue> {
    let unsupported = || {
        Issue::general(
            IssueCode::NotSupported,
            "the _format parameter is not supported; use json, xml, application/fhir+json or \
             application/fhir+xml",
        )
    };
    match param.to_ascii_lowercase().as_str() {
        "json" => return Ok(Format::Json),
        "xml" => return Ok(Format::Xml),
        _ => {}
    }
    // A `+` in a query string decodes to a space, so `_format=application/fhir+json` often
    // arrives as `application/fhir json`; restore it before reading the media type.
    let media = MediaType::parse(&param.replace(' ', "+")).ok_or_else(unsupported)?;
    let format = format_of(&media.essence).ok_or_else(unsupported)?;
    if media
        .param("fhirversion")
        .is_some_and(|v| !R4_VERSIONS.contains(&v))
    {
        return Err(Issue::general(
            IssueCode::NotSupported,
            "the _format fhirVersion must be 4.0 or 4.0.1: this server speaks FHIR R4",
        ));
    }
    Ok(format)
}

/// How closely an `Accept` range matches a format; a more specific range overrides a less
/// specific one (RFC 9110 §12.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Specificity {
    AnyType,
    AnySubtype,
    Exact,
}

/// The quality the `Accept` header gives one format, and the position of the range that decided it.
#[derive(Debug, Clone, Copy)]
struct Preference {
    specificity: Specificity,
    /// Quality in thousandths (RFC 9110 allows at most three decimals), so it compares exactly.
    quality: u16,
    position: usize,
}

fn negotiate(accept: &str, fallback: Format) -> Option<Format> {
    let mut json: Option<Preference> = None;
    let mut xml: Option<Preference> = None;
    for (position, range) in accept.split(',').enumerate() {
        let Some(media) = MediaType::parse(range) else {
            continue; // a malformed range is skipped, not fatal: the others may still match
        };
        let Some(quality) = media.quality() else {
            continue;
        };
        if media
            .param("fhirversion")
            .is_some_and(|v| !R4_VERSIONS.contains(&v))
            || media
                .param("charset")
                .is_some_and(|c| !c.eq_ignore_ascii_case("utf-8"))
        {
            continue; // asks for something this server cannot produce
        }
        for (format, slot) in [(Format::Json, &mut json), (Format::Xml, &mut xml)] {
            let Some(specificity) = media.matches(format) else {
                continue;
            };
            let candidate = Preference {
                specificity,
                quality,
                position,
            };
            *slot = Some(match *slot {
                None => candidate,
                Some(current) => match specificity.cmp(&current.specificity) {
                    Ordering::Greater => candidate,
                    Ordering::Less => current,
                    // Two ranges as specific as each other (e.g. application/json and
                    // application/fhir+json): the better quality counts.
                    Ordering::Equal if candidate.quality > current.quality => candidate,
                    Ordering::Equal => current,
                },
            });
        }
    }
    let acceptable = |p: Option<Preference>| p.filter(|p| p.quality > 0);
    match (acceptable(json), acceptable(xml)) {
        (None, None) => None,
        (Some(_), None) => Some(Format::Json),
        (None, Some(_)) => Some(Format::Xml),
        (Some(j), Some(x)) => match j.quality.cmp(&x.quality) {
            Ordering::Greater => Some(Format::Json),
            Ordering::Less => Some(Format::Xml),
            Ordering::Equal => match j.position.cmp(&x.position) {
                Ordering::Less => Some(Format::Json),
                Ordering::Greater => Some(Format::Xml),
                // One wildcard range covers both: the client does not mind.
                Ordering::Equal => Some(fallback),
            },
        },
    }
}

/// A parsed media type or media range: lower-case essence plus parameters (names lower-cased,
/// values unquoted).
#[derive(Debug)]
struct MediaType {
    essence: String,
    params: Vec<(String, String)>,
}

impl MediaType {
    fn parse(text: &str) -> Option<MediaType> {
        let mut parts = text.split(';');
        let essence = parts.next()?.trim().to_ascii_lowercase();
        let (kind, subtype) = essence.split_once('/')?;
        if !is_token(kind) || !is_token(subtype) {
            return None;
        }
        let mut params = Vec::new();
        for part in parts {
            let part = part.trim();
            if part.is_empty() {
                continue; // a stray `;` is harmless
            }
            let (name, value) = part.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            params.push((name.trim().to_ascii_lowercase(), value.to_string()));
        }
        Some(MediaType { essence, params })
    }

    /// The first value of a parameter (`name` in lower case).
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `q` parameter in thousandths: 1000 when absent, `None` when malformed.
    fn quality(&self) -> Option<u16> {
        let Some(q) = self.param("q") else {
            return Some(1000);
        };
        // RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
        let (whole, fraction) = q.split_once('.').unwrap_or((q, ""));
        if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let thousandths: u16 = format!("{fraction:0<3}").parse().ok()?;
        match whole {
            "0" => Some(thousandths),
            "1" if thousandths == 0 => Some(1000),
            _ => None,
        }
    }

    /// How specifically this range covers `format`, if it covers it at all.
    fn matches(&self, format: Format) -> Option<Specificity> {
        let types: &[&str] = match format {
            Format::Json => &JSON_TYPES,
            Format::Xml => &XML_TYPES,
        };
        if types.contains(&self.essence.as_str()) {
            return Some(Specificity::Exact);
        }
        if self.essence == "*/*" {
            return Some(Specificity::AnyType);
        }
        let kind = self.essence.strip_suffix("/*")?;
        types
            .iter()
            .any(|t| t.split('/').next() == Some(kind))
            .then_some(Specificity::AnySubtype)
    }
}

/// RFC 9110 token characters (`*` included, for ranges).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The media type for a diagnostic: echoed only when short and made of token characters.
fn describe_media_type(essence: &str) -> String {
    if essence.len() <= 100 && essence.split('/').all(is_token) {
        format!("`{essence}`")
    } else {
        "given".to_string()
    }
}

#[cfg(test)]
mod tests;
