//! `$validate`: the dry run (R4 operation-resource-validate) of `POST [base]/Appointment`.
//!
//! Runs exactly what `POST [base]/Appointment` runs before it calls Salesforce — parsing, the R4
//! rules, the mapping — and stops there: no token is fetched, nothing is booked. As R4 says, the
//! answer is 200 with an OperationOutcome whether or not the resource is valid, including when the
//! body cannot be parsed as an Appointment at all (that is a finding about the resource). A 4xx
//! means the validation itself could not be done: a Content-Type the proxy cannot read (415), a
//! body over the limit (413), or an operation call it cannot honour (400: a `Parameters` body
//! without one `resource`, a `profile` to validate against, `mode=delete`).
//!
//! Participants whose ids come from lookups by external id (`[[ids.lookup]]`) are resolved from
//! the proxy's cache of earlier answers only, never by asking Salesforce: a cached "not found" or
//! "several" is reported as the booking would report it; an answer not cached yet becomes an
//! `information` issue naming the participant (by expression) and the lookup that booking will
//! make, after [`LOOKUPS_PENDING_DIAGNOSTICS`].

use serde_json::Value;

use super::resolve::translate_cached;
use crate::error::ProxyError;
use crate::fhir::format::Format;
use crate::fhir::outcome::{Issue, IssueCode};
use crate::mapping::lookup::is_pending_lookup;
use crate::tenants::Tenant;

/// The `$validate` modes this proxy can check an Appointment for. Both run the same checks: those
/// every Appointment body must pass before it reaches Salesforce.
const MODES: [&str; 2] = ["create", "update"];

/// The text of the first issue of a valid Appointment's answer.
pub const VALID_DIAGNOSTICS: &str = "the Appointment is valid: it passes the R4 rules and the \
     mapping turns it into a complete Salesforce Book Appointment request, which the next issue \
     holds exactly as it would be sent. Nothing was sent to Salesforce.";

/// The text of the first issue of an Appointment that is valid but for lookups not made yet.
pub const LOOKUPS_PENDING_DIAGNOSTICS: &str = "the Appointment passes the R4 rules and the \
     mapping, but some participants get their Salesforce id from a lookup by external id when it \
     is booked, and $validate asks Salesforce nothing: the next issues name them. The request \
     cannot be shown until those ids are known. Nothing was sent to Salesforce.";

/// Validates an Appointment body (raw, or as the `resource` parameter of a `Parameters` body)
/// without calling Salesforce: the issues of the validation (see [`VALID_DIAGNOSTICS`]).
/// `mode` and `profile` are what the URL's query says of them.
///
/// When it is valid, there are two `information` issues: [`VALID_DIAGNOSTICS`], then the Book
/// Appointment request as compact JSON — byte for byte what Salesforce would receive, so a
/// mapping author sees the effect of a mapping. That second issue echoes the sender's own data
/// back to the sender only; it is never logged.
///
/// # Errors
/// 400 when the operation itself cannot be honoured (a `Parameters` body without one
/// `resource`, a `profile`, `mode=delete`); 503 when no parser could run.
pub async fn validate(
    tenant: &Tenant,
    body: &[u8],
    body_format: Format,
    mode: Option<String>,
    profile: bool,
) -> Result<Vec<Issue>, ProxyError> {
    let input = operation_input(body, body_format).map_err(ProxyError::Unparseable)?;
    check_mode(input.mode.or(mode))?;
    if input.profile || profile {
        // R4: "If a profile is nominated, and the server cannot validate against the nominated
        // profile, it SHALL return an error".
        return Err(ProxyError::Unparseable(Issue::general(
            IssueCode::NotSupported,
            "validation against a profile is not supported: this server checks the R4 \
             Appointment rules and its mapping only; leave out the profile parameter",
        )));
    }
    let resource = input.resource.as_deref().unwrap_or(body);
    match translate_cached(resource, body_format, &tenant.mapping, &tenant.salesforce).await {
        Ok((_, book)) => {
            let sent = serde_json::to_string(&book).unwrap_or_default();
            Ok(vec![
                Issue::information(VALID_DIAGNOSTICS),
                Issue::information(sent),
            ])
        }
        // `transient` means no parser could run: the validation itself was not performed.
        Err(ProxyError::Unparseable(issue)) if issue.code != IssueCode::Transient => {
            Ok(vec![issue])
        }
        Err(ProxyError::Unprocessable(issues)) if issues.iter().all(is_pending_lookup) => {
            let mut all = vec![Issue::information(LOOKUPS_PENDING_DIAGNOSTICS)];
            all.extend(issues);
            Ok(all)
        }
        Err(ProxyError::Unprocessable(issues)) => Ok(issues),
        Err(other) => Err(other),
    }
}

/// The operation's inputs, from a `Parameters` body.
#[derive(Debug, Default)]
struct OperationInput {
    /// The `resource` parameter re-serialized, or `None` when the body is the resource itself.
    resource: Option<Vec<u8>>,
    /// The `mode` parameter.
    mode: Option<String>,
    /// Whether a `profile` parameter was given.
    profile: bool,
}

/// Unwraps a JSON `Parameters` body (the operation's formal input). Any other body — including
/// one that is not JSON at all — is the resource itself, left for [`translate`] to judge.
fn operation_input(body: &[u8], format: Format) -> Result<OperationInput, Issue> {
    if format != Format::Json {
        return Ok(OperationInput::default());
    }
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        return Ok(OperationInput::default());
    };
    if object.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Ok(OperationInput::default());
    }
    let malformed = |diagnostics: &str| Issue::general(IssueCode::Invalid, diagnostics);
    let parameters = match object.get("parameter") {
        Some(Value::Array(items)) => items.as_slice(),
        None => &[],
        Some(_) => return Err(malformed("Parameters.parameter must be an array")),
    };
    let mut input = OperationInput::default();
    let mut resources = Vec::new();
    for parameter in parameters {
        let name = parameter.get("name").and_then(Value::as_str);
        match name {
            Some("resource") => resources.push(parameter.get("resource")),
            Some("mode") => {
                input.mode = parameter
                    .get("valueCode")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if input.mode.is_none() {
                    return Err(malformed("the mode parameter needs a valueCode"));
                }
            }
            Some("profile") => input.profile = true,
            _ => {
                return Err(Issue::general(
                    IssueCode::NotSupported,
                    "$validate takes the parameters resource, mode and profile only",
                ));
            }
        }
    }
    match resources.as_slice() {
        [Some(resource)] => {
            input.resource = Some(serde_json::to_vec(resource).unwrap_or_default());
            Ok(input)
        }
        [None] => Err(malformed(
            "the resource parameter must hold the Appointment in its `resource` element",
        )),
        [] => Err(Issue::general(
            IssueCode::Required,
            "the Parameters body has no resource parameter: put the Appointment to validate in \
             parameter[name=resource].resource",
        )),
        _ => Err(malformed(
            "the Parameters body has several resource parameters; $validate checks one resource",
        )),
    }
}

fn check_mode(mode: Option<String>) -> Result<(), ProxyError> {
    match mode.as_deref() {
        None => Ok(()),
        Some(mode) if MODES.contains(&mode) => Ok(()),
        Some("delete") => Err(ProxyError::Unparseable(Issue::general(
            IssueCode::NotSupported,
            "mode=delete is not supported: this server does not delete Appointments",
        ))),
        Some(_) => Err(ProxyError::Unparseable(Issue::general(
            IssueCode::Value,
            "mode must be create, update or delete (R4 ResourceValidationMode)",
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn input(value: Value) -> Result<OperationInput, Issue> {
        operation_input(value.to_string().as_bytes(), Format::Json)
    }

    #[test]
    fn a_parameters_body_is_unwrapped_and_anything_else_is_the_resource() {
        let appointment = json!({"resourceType": "Appointment", "status": "booked"});
        let found = input(json!({
            "resourceType": "Parameters",
            "parameter": [
                {"name": "mode", "valueCode": "create"},
                {"name": "resource", "resource": appointment}
            ]
        }))
        .unwrap();
        let inner: Value = serde_json::from_slice(&found.resource.unwrap()).unwrap();
        assert_eq!(inner, appointment);
        assert_eq!(found.mode.as_deref(), Some("create"));
        assert!(!found.profile);

        for body in [
            &b"not json"[..],
            br#"{"resourceType":"Appointment"}"#,
            b"[]",
        ] {
            assert!(
                operation_input(body, Format::Json)
                    .unwrap()
                    .resource
                    .is_none()
            );
        }
        assert!(
            operation_input(b"<Parameters/>", Format::Xml)
                .unwrap()
                .resource
                .is_none()
        );
    }

    #[test]
    fn parameters_without_exactly_one_resource_are_refused() {
        let cases = [
            (json!({"resourceType": "Parameters"}), IssueCode::Required),
            (
                json!({"resourceType": "Parameters", "parameter": {}}),
                IssueCode::Invalid,
            ),
            (
                json!({"resourceType": "Parameters", "parameter": [{"name": "resource", "valueString": "x"}]}),
                IssueCode::Invalid,
            ),
            (
                json!({"resourceType": "Parameters", "parameter": [
                    {"name": "resource", "resource": {"resourceType": "Appointment"}},
                    {"name": "resource", "resource": {"resourceType": "Appointment"}}
                ]}),
                IssueCode::Invalid,
            ),
            (
                json!({"resourceType": "Parameters", "parameter": [{"name": "colour", "valueString": "red"}]}),
                IssueCode::NotSupported,
            ),
        ];
        for (body, code) in cases {
            assert_eq!(input(body.clone()).unwrap_err().code, code, "{body}");
        }
    }

    #[test]
    fn only_create_and_update_modes_are_checked() {
        assert!(check_mode(None).is_ok());
        assert!(check_mode(Some("create".into())).is_ok());
        assert!(check_mode(Some("update".into())).is_ok());
        for mode in ["delete", "bogus"] {
            let error = check_mode(Some(mode.into())).unwrap_err();
            assert!(matches!(error, ProxyError::Unparseable(_)), "{mode}");
        }
    }
}
