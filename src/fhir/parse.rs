//! Request bytes → a typed R4 `Appointment`, guarded.
//!
//! fhirbolt does the real parsing; this module owns everything around it that a public endpoint
//! needs and fhirbolt does not give:
//! - cheap structural pre-checks that turn the common mistakes into precise messages (JSON syntax
//!   with line and column, duplicate keys, nulls and empty arrays, the wrong resource type; XML
//!   well-formedness, DOCTYPEs, namespaces, the root element);
//! - one pass over each body: JSON is read into a value by a serde visitor that checks the R4 JSON
//!   rules as it goes (duplicate keys included), and fhirbolt then converts that value, never the
//!   text again; a Bundle's entries come out of the Bundle's one pass;
//! - protection of the process: fhirbolt recurses once per nesting level with large frames and
//!   panics on some malformed input, so documents are depth-limited, fhirbolt runs on the parser
//!   threads of [`super::pool`] (a generous stack, off the event loop), and its panics are caught;
//! - privacy: fhirbolt and serde messages can quote values from the body, so every message is
//!   rebuilt or scrubbed before it reaches an [`Issue`] — element names survive, values do not.
//!
//! Every error is a single [`Issue`], normally `structure`, `required` or `invalid` (the caller
//! answers 400); the one exception is `transient` when the parser threads are all busy (503).

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use fhirbolt::model::r4::resources::Appointment;
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
use quick_xml::NsReader;
use quick_xml::events::{BytesDecl, BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::fhir::format::Format;
use crate::fhir::outcome::{Issue, IssueCode};

mod json;
mod xml;
pub(crate) use json::*;
pub use xml::*;

/// The deepest element nesting accepted in XML, counting the root as 1. fhirbolt recurses once per
/// level; the limit keeps that recursion well inside a parser thread's stack
/// ([`super::pool::STACK_SIZE`]). (JSON is bounded by
/// serde_json's own recursion limit of 128 arrays/objects, which is the same order of depth.)
pub const MAX_XML_DEPTH: usize = 64;

/// The FHIR XML namespace.
const FHIR_NS: &str = "http://hl7.org/fhir";

/// The longest fhirbolt message passed on (after scrubbing); the unknown-field messages list every
/// allowed field and would otherwise run to kilobytes.
const MAX_MESSAGE_CHARS: usize = 300;

/// Parses a request body in `format` into an R4 Appointment, on a parser thread (see
/// [`super::pool`]), awaiting it: what request handlers call.
///
/// Never panics (fhirbolt panics are caught and become `structure` issues) and never echoes values
/// from the body in diagnostics. A leading UTF-8 byte-order mark is tolerated.
///
/// # Errors
/// One issue, normally `structure`, `required` or `invalid` (a 400); `transient` (a 503) when
/// the parser threads are all busy and their queue is full.
pub async fn read_appointment(
    body: impl AsRef<[u8]> + Send + 'static,
    format: Format,
) -> Result<Appointment, Issue> {
    super::pool::run(move || parse_appointment_here(body.as_ref(), format)).await
}

/// [`read_appointment`] for callers that are not async (the command line, tests): blocks the
/// calling thread until a parser thread has parsed the body.
///
/// # Errors
/// As [`read_appointment`].
pub fn parse_appointment(body: &[u8], format: Format) -> Result<Appointment, Issue> {
    let body = body.to_vec();
    super::pool::run_blocking(move || parse_appointment_here(&body, format))
}

/// Parses on the calling thread, which must be a parser thread (or have as big a stack): for code
/// that already runs in a parser job (a Bundle's entries).
pub(crate) fn parse_appointment_here(body: &[u8], format: Format) -> Result<Appointment, Issue> {
    let text = body_text(body)?;
    match format {
        Format::Json => parse_json(text),
        Format::Xml => parse_xml(text),
    }
}

/// A request body as text: not empty, UTF-8 (as FHIR requires), a leading byte-order mark dropped
/// (some Windows stacks still send one; it carries no meaning in UTF-8). Shared by every reader of
/// FHIR bodies so they refuse the same bodies with the same words.
///
/// # Errors
/// `required` for an empty body, `structure` for one that is not UTF-8.
pub fn body_text(body: &[u8]) -> Result<&str, Issue> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Issue::general(
            IssueCode::Required,
            "the request body is empty",
        ));
    }
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    std::str::from_utf8(body).map_err(|e| {
        structure(format!(
            "the request body is not valid UTF-8 (first invalid byte at offset {}); FHIR requires UTF-8",
            e.valid_up_to()
        ))
    })
}

fn structure(diagnostics: impl Into<String>) -> Issue {
    Issue::general(IssueCode::Structure, diagnostics)
}

fn could_not_be_parsed() -> Issue {
    structure("the resource could not be parsed")
}

/// Strict mode: unknown elements are errors. It is also the only safe mode here: in fhirbolt 0.4,
/// Compatibility and Lax XML parsing loop forever on any unknown element (see the tests' notes).
fn strict() -> Option<DeserializationConfig> {
    Some(DeserializationConfig {
        mode: DeserializationMode::Strict,
    })
}

// ---------------------------------------------------------------------------------------------
// Running fhirbolt

/// Runs a fhirbolt call on this (parser) thread, catching its panics: fhirbolt 0.4 panics on some
/// malformed input (see the tests), and a panic payload may quote the body, so it is dropped
/// unread.
fn guarded<T>(parse: impl FnOnce() -> Result<T, Issue>) -> Result<T, Issue> {
    catch_unwind(AssertUnwindSafe(parse)).unwrap_or_else(|_| Err(could_not_be_parsed()))
}

fn does_not_match(message: &str) -> Issue {
    structure(format!(
        "the resource does not match the R4 Appointment structure: {}",
        sanitize(message)
    ))
}

// ---------------------------------------------------------------------------------------------
// Message hygiene

/// Turns a fhirbolt/serde message into one that names fields but carries no value from the body.
///
/// serde's standard shapes are rebuilt, because `Unexpected::Other` (which fhirbolt uses for
/// contained resources) prints the offending value verbatim, with no quotes to find. Everything
/// is then scrubbed (see [`scrub`]) and capped.
fn sanitize(message: &str) -> String {
    let message = message.trim();
    let split_expected = |rest: &str| -> (String, Option<String>) {
        // The "expected …" part comes from code, not input; the last one is the real one.
        match rest.rfind(", expected ") {
            Some(i) => (
                rest[..i].to_string(),
                Some(rest[i + ", expected ".len()..].to_string()),
            ),
            None => (rest.to_string(), None),
        }
    };
    let rebuilt = if let Some(rest) = message.strip_prefix("invalid value: ") {
        match split_expected(rest).1 {
            Some(expected) => format!("invalid value, expected {expected}"),
            None => "invalid value".to_string(),
        }
    } else if let Some(rest) = message.strip_prefix("invalid type: ") {
        let (unexpected, expected) = split_expected(rest);
        let kind = unexpected_kind(&unexpected);
        match expected {
            Some(expected) => format!("invalid type: {kind}, expected {expected}"),
            None => format!("invalid type: {kind}"),
        }
    } else if let Some(rest) = message.strip_prefix("unknown field ") {
        // "unknown field `x`, expected one of …": the list is long and the name is what helps.
        format!("unknown field {}", leading_backticked(rest))
    } else if let Some(rest) = message.strip_prefix("unknown variant ") {
        format!("unknown variant {}", leading_backticked(rest))
    } else if let Some(readable) = rust_parse_error(message) {
        readable.to_string()
    } else {
        message.to_string()
    };
    let scrubbed = scrub(&rebuilt);
    if scrubbed.chars().count() > MAX_MESSAGE_CHARS {
        let mut capped: String = scrubbed.chars().take(MAX_MESSAGE_CHARS).collect();
        capped.push('…');
        capped
    } else {
        scrubbed
    }
}

/// fhirbolt's XML reader reports a bad number or boolean with the `Debug` form of Rust's parse
/// error (`ParseIntError { kind: InvalidDigit }`): content-free, but cryptic.
fn rust_parse_error(message: &str) -> Option<&'static str> {
    let readable = match message {
        "ParseBoolError" => "a value is not a valid boolean",
        m if m.starts_with("ParseIntError") => {
            if m.contains("PosOverflow") || m.contains("NegOverflow") {
                "an integer is out of range"
            } else if m.contains("Empty") {
                "an integer value is empty"
            } else {
                "a value is not a valid integer"
            }
        }
        m if m.starts_with("ParseFloatError") => "a value is not a valid decimal",
        _ => return None,
    };
    Some(readable)
}

/// The kind of value serde's `Unexpected` describes, without the value itself.
fn unexpected_kind(unexpected: &str) -> &'static str {
    const KINDS: [&str; 16] = [
        "string",
        "integer",
        "boolean",
        "floating point",
        "character",
        "byte array",
        "unit value",
        "map",
        "sequence",
        "null",
        "decimal",
        "an element",
        "resourceType",
        "number",
        "Option value",
        "enum",
    ];
    KINDS
        .into_iter()
        .find(|kind| {
            unexpected == *kind
                || unexpected
                    .strip_prefix(kind)
                    .is_some_and(|rest| rest.starts_with(' '))
        })
        .unwrap_or("a value")
}

/// The first backtick-quoted segment of `text`, kept when it looks like a field name.
fn leading_backticked(text: &str) -> String {
    let name = text
        .strip_prefix('`')
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name);
    match name {
        Some(name) if is_field_name(name) => format!("`{name}`"),
        _ => "`…`".to_string(),
    }
}

/// serde quotes field names in backticks; these are kept when they look like names (`value[x]`,
/// `_status`). Anything else in backticks (numbers, say) is treated as a value.
fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_$[].:-".contains(&b))
}

/// Replaces every double-quoted segment with `"…"` (serde quotes string values that way) and every
/// backtick-quoted segment that is not a plausible field name with `` `…` ``. An unterminated
/// quote hides the rest of the message.
fn scrub(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                // Skip to the closing quote, honouring backslash escapes (serde uses Debug).
                let mut escaped = false;
                for d in chars.by_ref() {
                    match (escaped, d) {
                        (true, _) => escaped = false,
                        (false, '\\') => escaped = true,
                        (false, '"') => break,
                        _ => {}
                    }
                }
                out.push_str("\"…\"");
            }
            '`' => {
                let inner: String = chars.by_ref().take_while(|&d| d != '`').collect();
                if is_field_name(&inner) {
                    out.push('`');
                    out.push_str(&inner);
                    out.push('`');
                } else {
                    out.push_str("`…`");
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
