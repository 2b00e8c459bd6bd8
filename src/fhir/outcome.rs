//! OperationOutcome issues: the one vocabulary every layer uses to say what is wrong, and the only
//! place an R4 `OperationOutcome` resource is built.
//!
//! Issue codes come from the R4 IssueType value set (`http://hl7.org/fhir/issue-type`). Diagnostics
//! are written for integration engineers and must never carry patient data: they name the element
//! (by FHIRPath `expression`), never its value.

use fhirbolt::model::r4::resources::{OperationOutcome, OperationOutcomeIssue};

/// How bad an issue is (R4 `IssueSeverity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The processing had to stop.
    Fatal,
    /// The request cannot be processed as it is.
    Error,
    /// Processing went on, but something looks wrong.
    Warning,
    /// Purely informational.
    Information,
}

impl Severity {
    /// The R4 code.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// The R4 `IssueType` codes this proxy uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueCode {
    /// `invalid`: content invalid in a way no narrower code describes.
    Invalid,
    /// `structure`: the body cannot be parsed as the resource.
    Structure,
    /// `required`: a required element is missing.
    Required,
    /// `value`: an element's value is not valid for its type or value set.
    Value,
    /// `invariant`: a FHIR invariant (app-1 … app-4) does not hold.
    Invariant,
    /// `security`: the request was refused for security reasons.
    Security,
    /// `login`: authentication failed.
    Login,
    /// `forbidden`: authenticated but not allowed.
    Forbidden,
    /// `processing`: the request could not be processed.
    Processing,
    /// `not-supported`: the content type, method or operation is not supported.
    NotSupported,
    /// `duplicate`: the resource already exists.
    Duplicate,
    /// `multiple-matches`: a conditional operation matched more than one resource.
    MultipleMatches,
    /// `not-found`: a referenced item could not be found.
    NotFound,
    /// `too-long`: a value or body exceeds a size limit.
    TooLong,
    /// `code-invalid`: a code is not known or not allowed.
    CodeInvalid,
    /// `business-rule`: the content breaks a business rule (here: Salesforce's or the mapping's).
    BusinessRule,
    /// `conflict`: the content conflicts with the current state.
    Conflict,
    /// `transient`: a temporary failure; the request may succeed later.
    Transient,
    /// `no-store`: the server's storage is unavailable.
    NoStore,
    /// `incomplete`: the processing was left incomplete.
    Incomplete,
    /// `too-costly`: the request would cost too much to process.
    TooCostly,
    /// `exception`: an unexpected failure, upstream or internal.
    Exception,
    /// `timeout`: an upstream call took too long.
    Timeout,
    /// `throttled`: the upstream is throttling; retry later.
    Throttled,
    /// `informational`: no problem, just information.
    Informational,
}

impl IssueCode {
    /// The R4 code.
    pub fn as_str(self) -> &'static str {
        match self {
            IssueCode::Invalid => "invalid",
            IssueCode::Structure => "structure",
            IssueCode::Required => "required",
            IssueCode::Value => "value",
            IssueCode::Invariant => "invariant",
            IssueCode::Security => "security",
            IssueCode::Login => "login",
            IssueCode::Forbidden => "forbidden",
            IssueCode::Processing => "processing",
            IssueCode::NotSupported => "not-supported",
            IssueCode::Duplicate => "duplicate",
            IssueCode::MultipleMatches => "multiple-matches",
            IssueCode::NotFound => "not-found",
            IssueCode::TooLong => "too-long",
            IssueCode::CodeInvalid => "code-invalid",
            IssueCode::BusinessRule => "business-rule",
            IssueCode::Conflict => "conflict",
            IssueCode::Transient => "transient",
            IssueCode::NoStore => "no-store",
            IssueCode::Incomplete => "incomplete",
            IssueCode::TooCostly => "too-costly",
            IssueCode::Exception => "exception",
            IssueCode::Timeout => "timeout",
            IssueCode::Throttled => "throttled",
            IssueCode::Informational => "informational",
        }
    }
}

/// One problem (or note) about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// How bad it is.
    pub severity: Severity,
    /// What kind of problem it is.
    pub code: IssueCode,
    /// A human explanation; names elements, never echoes their values.
    pub diagnostics: String,
    /// The FHIRPath of the offending element, e.g. `Appointment.participant[1].actor`.
    pub expression: Option<String>,
}

impl Issue {
    /// An error about the element at `expression`.
    pub fn at(
        code: IssueCode,
        expression: impl Into<String>,
        diagnostics: impl Into<String>,
    ) -> Self {
        Issue {
            severity: Severity::Error,
            code,
            diagnostics: diagnostics.into(),
            expression: Some(expression.into()),
        }
    }

    /// An error that concerns no single element.
    pub fn general(code: IssueCode, diagnostics: impl Into<String>) -> Self {
        Issue {
            severity: Severity::Error,
            code,
            diagnostics: diagnostics.into(),
            expression: None,
        }
    }

    /// An informational note.
    pub fn information(diagnostics: impl Into<String>) -> Self {
        Issue {
            severity: Severity::Information,
            code: IssueCode::Informational,
            diagnostics: diagnostics.into(),
            expression: None,
        }
    }
}

/// Builds the R4 `OperationOutcome` for a list of issues (an empty list becomes one
/// informational "all OK" issue, since `issue` is 1..*).
pub fn operation_outcome(issues: &[Issue]) -> OperationOutcome {
    let issue = if issues.is_empty() {
        vec![to_fhir(&Issue::information("All OK"))]
    } else {
        issues.iter().map(to_fhir).collect()
    };
    OperationOutcome {
        issue,
        ..Default::default()
    }
}

fn to_fhir(issue: &Issue) -> OperationOutcomeIssue {
    OperationOutcomeIssue {
        severity: issue.severity.as_str().into(),
        code: issue.code.as_str().into(),
        diagnostics: Some(issue.diagnostics.as_str().into()),
        expression: issue.expression.iter().map(|e| e.as_str().into()).collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_carries_code_severity_and_expression() {
        let outcome = operation_outcome(&[Issue::at(
            IssueCode::Required,
            "Appointment.participant[0].status",
            "participant status is required",
        )]);
        let json = fhirbolt::json::to_string(&outcome, None).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["resourceType"], "OperationOutcome");
        assert_eq!(value["issue"][0]["severity"], "error");
        assert_eq!(value["issue"][0]["code"], "required");
        assert_eq!(
            value["issue"][0]["expression"][0],
            "Appointment.participant[0].status"
        );
    }

    #[test]
    fn empty_issue_list_still_yields_one_issue() {
        let outcome = operation_outcome(&[]);
        assert_eq!(outcome.issue.len(), 1);
        assert_eq!(
            outcome.issue[0].code.value.as_deref(),
            Some("informational")
        );
    }
}
