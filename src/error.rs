//! The one error type at the edge. [`ProxyError::outcome`] is the single `match` that decides, for
//! every failure, the HTTP status and the OperationOutcome issues the client receives.

use actix_web::http::StatusCode;

use crate::fhir::outcome::{Issue, IssueCode};
use crate::salesforce::SalesforceError;
use crate::salesforce::token::TokenError;
use crate::store::StoreError;

/// Everything that can go wrong with a FHIR request.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The URL names a tenant this proxy does not serve (`named`), or names none and there is
    /// no tenant at the FHIR base.
    #[error("unknown tenant")]
    UnknownTenant {
        /// Whether the URL named a tenant.
        named: bool,
    },
    /// The request's Content-Type cannot be read.
    #[error("unsupported media type")]
    UnsupportedMediaType(Issue),
    /// No acceptable response format.
    #[error("not acceptable")]
    NotAcceptable(Issue),
    /// The body is larger than the configured limit.
    #[error("request body too large")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body cannot be parsed as the expected resource, or the request is malformed.
    #[error("unparseable request")]
    Unparseable(Issue),
    /// The resource breaks R4 rules or what Book Appointment needs.
    #[error("unprocessable resource")]
    Unprocessable(Vec<Issue>),
    /// Salesforce (or the way to it) failed.
    #[error(transparent)]
    Salesforce(#[from] SalesforceError),
    /// An external-id lookup (`[[ids.lookup]]`) failed before anything was booked or changed.
    #[error("an external-id lookup failed")]
    Lookup(SalesforceError),
    /// Reading or searching appointments in Salesforce failed; nothing was changed.
    #[error("reading from Salesforce failed")]
    Reading(SalesforceError),
    /// `If-Match` names a version the appointment no longer has.
    #[error("the appointment has changed")]
    VersionConflict {
        /// The version it has now.
        current: String,
    },
    /// A conditional update matched several appointments.
    #[error("several appointments match the update's criteria")]
    AmbiguousUpdate,
    /// A search parameter or value the proxy cannot search with.
    #[error("unsupported search")]
    Search(Issue),
    /// No such FHIR endpoint.
    #[error("not found")]
    NotFound,
    /// The endpoint exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A resource type this proxy does not serve (`{base}/Patient`).
    #[error("resource type not supported")]
    UnsupportedType {
        /// Its name as it may be shown (see [`crate::fhir::search::printable`]).
        name: String,
    },
    /// An operation on Appointment this proxy does not serve (`Appointment/$hold`).
    #[error("operation not supported")]
    UnknownOperation {
        /// Its name as it may be shown.
        name: String,
    },
    /// The body could not be read from the client.
    #[error("the request body could not be read")]
    BodyRead,
    /// A conditional create matched more than one booked appointment.
    #[error("several appointments match")]
    MultipleMatches,
    /// The same business identifier is being booked by another request right now (on this
    /// replica or another).
    #[error("a booking with this identifier is in progress")]
    InProgress {
        /// When that request's claim expires at the latest, should its process have died.
        expires_in: std::time::Duration,
    },
    /// Salesforce booked (or changed) the appointment, but the store could not record it.
    #[error("booked in Salesforce but not recorded")]
    NotRecorded {
        /// The Salesforce id.
        id: String,
        /// A new booking (its identifiers stay claimed), rather than a change.
        booked: bool,
    },
    /// No appointment with that id was booked through this proxy.
    #[error("unknown appointment")]
    UnknownAppointment,
    /// The body's id differs from the URL's (or is missing on an update).
    #[error("id mismatch")]
    IdMismatch,
    /// A JSON Patch that cannot be applied or does not leave a valid Appointment.
    #[error("the patch cannot be applied")]
    Patch(Issue),
    /// No credentials (`presented: false`), or credentials that are not valid.
    #[error("authentication required")]
    Unauthenticated {
        /// Whether the request carried credentials at all.
        presented: bool,
    },
    /// Authenticated, but the client's scopes, tenants or role do not cover the request.
    #[error("forbidden")]
    Forbidden(crate::auth::Denial),
    /// The client's address has sent too many credentials that were not valid; it is held back.
    #[error("too many failed credentials")]
    TooManyFailures {
        /// Seconds until its next attempt is checked.
        retry_after_secs: u64,
    },
    /// The keys needed to check the credentials could not be obtained (an issuer's JWKS URL).
    #[error("authentication is unavailable")]
    AuthUnavailable,
    /// The appointment store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request head (all header names and values) is larger than `server.max_header_bytes`.
    #[error("request headers too large")]
    HeadersTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The request took longer than `server.request_timeout_secs` and was abandoned.
    #[error("request timed out")]
    RequestTimeout {
        /// The limit in seconds.
        secs: u64,
        /// Whether the interaction books or changes appointments, so Salesforce may have acted.
        may_have_acted: bool,
    },
    /// `server.max_concurrent_requests` requests are being handled; this one was not started.
    #[error("too many requests at once")]
    Overloaded {
        /// The bound.
        max: usize,
    },
    /// A mapping reload was refused; the previous mappings keep serving.
    #[error("reload refused")]
    ReloadRefused {
        /// The generation still serving.
        generation: u64,
        /// Each problem: the file and the reason.
        problems: Vec<String>,
    },
    /// A reload was asked of a proxy started without a configuration file (`demo`).
    #[error("nothing to reload")]
    NothingToReload,
    /// SMART discovery was asked of a proxy without `auth.public_url`.
    #[error("SMART Backend Services not configured")]
    SmartNotConfigured,
    /// A transaction Bundle was refused before anything was booked, or failed part-way and was
    /// undone.
    #[error("transaction failed: {}", .0.cause)]
    Transaction(Box<TransactionFailure>),
}

/// Why a transaction failed, and what it undid.
#[derive(Debug)]
pub struct TransactionFailure {
    /// The entry's failure that decides the status (and `Retry-After`).
    pub cause: ProxyError,
    /// Every issue: each failed entry's, at its place in the Bundle, and what was undone.
    pub issues: Vec<Issue>,
    /// The ids booked (and cancelled again) by the entries before the one that failed, in order.
    pub booked: Vec<String>,
}

/// What the client receives for an error.
#[derive(Debug)]
pub struct ErrorOutcome {
    /// The HTTP status.
    pub status: StatusCode,
    /// The OperationOutcome issues.
    pub issues: Vec<Issue>,
    /// Seconds for a `Retry-After` header, when retrying later can help.
    pub retry_after: Option<u64>,
}

impl ProxyError {
    /// The status, issues and Retry-After for this error: the only place they are decided.
    pub fn outcome(&self) -> ErrorOutcome {
        use SalesforceError as Sf;
        let (status, issues, retry_after) = match self {
            ProxyError::UnsupportedMediaType(issue) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                vec![issue.clone()],
                None,
            ),
            ProxyError::NotAcceptable(issue) => {
                (StatusCode::NOT_ACCEPTABLE, vec![issue.clone()], None)
            }
            ProxyError::PayloadTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                vec![Issue::general(
                    IssueCode::TooLong,
                    format!("the request body is larger than the limit of {limit} bytes"),
                )],
                None,
            ),
            // The parser could not be started (no thread to run it on): the server's condition,
            // not the request's, so the client may send the same body again.
            ProxyError::Unparseable(issue) if issue.code == IssueCode::Transient => (
                StatusCode::SERVICE_UNAVAILABLE,
                vec![issue.clone()],
                Some(1),
            ),
            ProxyError::Unparseable(issue) => (StatusCode::BAD_REQUEST, vec![issue.clone()], None),
            ProxyError::Unprocessable(issues) => {
                (StatusCode::UNPROCESSABLE_ENTITY, issues.clone(), None)
            }
            ProxyError::Transaction(failure) => {
                let decided = failure.cause.outcome();
                (decided.status, failure.issues.clone(), decided.retry_after)
            }
            ProxyError::UnknownTenant { named } => (
                StatusCode::NOT_FOUND,
                vec![Issue::general(
                    IssueCode::NotFound,
                    if *named {
                        "this proxy serves no tenant of that name: see the tenants in its \
                         configuration ({base}/{tenant}/Appointment)"
                    } else {
                        "this proxy serves several tenants and none at the base itself: use \
                         {base}/{tenant}/Appointment"
                    },
                )],
                None,
            ),
            ProxyError::NotFound => (
                StatusCode::NOT_FOUND,
                vec![Issue::general(
                    IssueCode::NotSupported,
                    "no FHIR endpoint here: this proxy serves POST [base]/Appointment",
                )],
                None,
            ),
            ProxyError::UnsupportedType { name } => (
                StatusCode::NOT_FOUND,
                vec![Issue::general(
                    IssueCode::NotSupported,
                    format!(
                        "the resource type {name} is not supported here: this proxy serves \
                         Appointment (and Slot searches)"
                    ),
                )],
                None,
            ),
            ProxyError::UnknownOperation { name } => (
                StatusCode::BAD_REQUEST,
                vec![Issue::general(
                    IssueCode::NotSupported,
                    format!(
                        "the operation {name} is not supported on Appointment: this proxy serves \
                         $validate and $find"
                    ),
                )],
                None,
            ),
            ProxyError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                vec![Issue::general(
                    IssueCode::NotSupported,
                    "this endpoint does not support that HTTP method",
                )],
                None,
            ),
            ProxyError::BodyRead => (
                StatusCode::BAD_REQUEST,
                vec![Issue::general(
                    IssueCode::Structure,
                    "the request body could not be read completely",
                )],
                None,
            ),
            ProxyError::MultipleMatches => (
                StatusCode::PRECONDITION_FAILED,
                vec![Issue::general(
                    IssueCode::MultipleMatches,
                    "more than one booked appointment carries this identifier",
                )],
                None,
            ),
            ProxyError::InProgress { expires_in } => (
                StatusCode::CONFLICT,
                vec![Issue::general(
                    IssueCode::Conflict,
                    format!(
                        "an appointment with the same identifier is being booked right now; retry \
                         when that request has been answered (should the process booking it \
                         have stopped, its claim on the identifier expires within {} s)",
                        expires_in.as_secs_f64().ceil() as u64
                    ),
                )],
                Some(1),
            ),
            // Never a 201 that is not durable: the booking exists in Salesforce, the proxy's
            // record of it does not, and resending would book it again once the claim expires.
            ProxyError::NotRecorded { id, booked: true } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                vec![Issue::general(
                    IssueCode::Exception,
                    format!(
                        "Salesforce booked the appointment as {id}, but the proxy's store could \
                         not record it: do not send this request again (it would book a second \
                         appointment); its identifier stays claimed for store.claim_timeout_secs"
                    ),
                )],
                None,
            ),
            ProxyError::NotRecorded { id, booked: false } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                vec![Issue::general(
                    IssueCode::Exception,
                    format!(
                        "Salesforce changed appointment {id}, but the proxy's store could not \
                         record the change (a JSON Patch would apply to the version before it); \
                         sending the whole resource again with PUT is safe"
                    ),
                )],
                None,
            ),
            // The id is the client's to fix; nothing was changed, and resending cannot help.
            ProxyError::Salesforce(Sf::NoSuchRecord) => (
                StatusCode::NOT_FOUND,
                vec![Issue::general(
                    IssueCode::NotFound,
                    "Salesforce holds no appointment with this id (it answered NOT_FOUND); \
                     nothing was changed",
                )],
                None,
            ),
            ProxyError::UnknownAppointment => (
                StatusCode::NOT_FOUND,
                vec![Issue::general(
                    IssueCode::NotFound,
                    "no appointment with this id was booked through this proxy (Salesforce offers \
                     no read of appointments, so only those can be patched)",
                )],
                None,
            ),
            ProxyError::IdMismatch => (
                StatusCode::BAD_REQUEST,
                vec![Issue::at(
                    IssueCode::Invalid,
                    "Appointment.id",
                    "the resource's id must be present and equal to the id in the URL",
                )],
                None,
            ),
            ProxyError::Patch(issue) => {
                (StatusCode::UNPROCESSABLE_ENTITY, vec![issue.clone()], None)
            }
            ProxyError::Store(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                vec![Issue::general(
                    IssueCode::Transient,
                    "the proxy's store is unavailable, so nothing was sent to Salesforce (a \
                     booking that could not be recorded is not made); retry later",
                )],
                Some(STORE_RETRY_AFTER_SECS),
            ),
            // Salesforce refused a lookup the mapping composed (its object or field, most likely):
            // the proxy's configuration is at fault, not the sender's request.
            ProxyError::Lookup(Sf::Rejected { messages }) => (
                StatusCode::BAD_GATEWAY,
                salesforce_issues(
                    IssueCode::Exception,
                    "Salesforce refused a lookup by external id, so nothing was booked or \
                     changed; check the object and external_id_field of the mapping's \
                     ids.lookup rules",
                    messages,
                ),
                None,
            ),
            // Otherwise the status, code and Retry-After of the same failure on any call, with
            // words that say the failure came before any booking.
            ProxyError::Lookup(e) => {
                let same = ProxyError::Salesforce(e.clone()).outcome();
                let code = same
                    .issues
                    .first()
                    .map_or(IssueCode::Exception, |issue| issue.code);
                (
                    same.status,
                    vec![Issue::general(
                        code,
                        format!(
                            "looking up a participant's Salesforce id by external id failed, so \
                             nothing was booked or changed: {e}"
                        ),
                    )],
                    same.retry_after,
                )
            }
            ProxyError::Reading(Sf::Timeout) => (
                StatusCode::GATEWAY_TIMEOUT,
                vec![Issue::general(
                    IssueCode::Timeout,
                    "Salesforce did not answer the read in time; nothing was changed",
                )],
                None,
            ),
            ProxyError::Reading(Sf::Unreachable) => (
                StatusCode::BAD_GATEWAY,
                vec![Issue::general(
                    IssueCode::Transient,
                    "Salesforce could not be reached or dropped the connection twice while \
                     reading; nothing was changed",
                )],
                None,
            ),
            ProxyError::Reading(Sf::TooCostly) => (
                StatusCode::BAD_REQUEST,
                vec![Issue::general(
                    IssueCode::TooCostly,
                    "Salesforce refused this search as too costly (QUERY_TIMEOUT or \
                     QUERY_TOO_COMPLICATED); narrow it with a patient, a practitioner or a \
                     shorter date range",
                )],
                None,
            ),
            ProxyError::Reading(Sf::PageExpired) => (
                StatusCode::GONE,
                vec![Issue::general(
                    IssueCode::NotFound,
                    "this page of search results is no longer available (Salesforce keeps a \
                     search's results for two days); run the search again",
                )],
                None,
            ),
            ProxyError::Reading(Sf::QueryRefused { messages }) => (
                StatusCode::BAD_GATEWAY,
                salesforce_issues(
                    IssueCode::Exception,
                    "Salesforce refused the proxy's query for ServiceAppointment records (the \
                     org may lack a field the proxy reads, or the run-as user may not see it)",
                    messages,
                ),
                None,
            ),
            ProxyError::Reading(e) => ProxyError::Salesforce(e.clone()).outcome().into_parts(),
            ProxyError::Salesforce(
                e @ (Sf::TooCostly | Sf::QueryRefused { .. } | Sf::PageExpired),
            ) => ProxyError::Reading(e.clone()).outcome().into_parts(),
            ProxyError::VersionConflict { current } => (
                StatusCode::PRECONDITION_FAILED,
                vec![Issue::general(
                    IssueCode::Conflict,
                    format!(
                        "the appointment has changed since the version in If-Match: it is now \
                         version {current}; read it again and apply the change to that version"
                    ),
                )],
                None,
            ),
            ProxyError::AmbiguousUpdate => (
                StatusCode::PRECONDITION_FAILED,
                vec![Issue::general(
                    IssueCode::MultipleMatches,
                    "several appointments match the conditional update's criteria; nothing was \
                     changed",
                )],
                None,
            ),
            ProxyError::Search(issue) => (StatusCode::BAD_REQUEST, vec![issue.clone()], None),
            // Salesforce read the request and refused its content: the sender can fix it.
            ProxyError::Salesforce(Sf::Rejected { messages }) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                salesforce_issues(
                    IssueCode::BusinessRule,
                    "Salesforce refused the booking",
                    messages,
                ),
                None,
            ),
            ProxyError::Salesforce(Sf::Unsuccessful { messages, .. }) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                salesforce_issues(
                    IssueCode::BusinessRule,
                    "Salesforce did not book the appointment (isSuccess: false)",
                    messages,
                ),
                None,
            ),
            // Throttled and not acted on: Salesforce refuses before it processes anything.
            ProxyError::Salesforce(Sf::Throttled { retry_after_secs }) => (
                StatusCode::SERVICE_UNAVAILABLE,
                vec![Issue::general(
                    IssueCode::Throttled,
                    format!(
                        "Salesforce is throttling this org's API requests (REQUEST_LIMIT_EXCEEDED, \
                         or it is overloaded) and did not act on this one; retry after \
                         {retry_after_secs} seconds (until then the proxy forwards nothing to \
                         this org)"
                    ),
                )],
                Some(*retry_after_secs),
            ),
            ProxyError::Salesforce(Sf::BackingOff { retry_after_secs }) => (
                StatusCode::SERVICE_UNAVAILABLE,
                vec![Issue::general(
                    IssueCode::Throttled,
                    format!(
                        "Salesforce throttled this org's API requests, so the proxy is holding \
                         them back and did not send this one (nothing was booked or changed); \
                         retry after {retry_after_secs} seconds"
                    ),
                )],
                Some(*retry_after_secs),
            ),
            ProxyError::Salesforce(Sf::Busy {
                max_in_flight,
                retry_after_secs,
            }) => (
                StatusCode::SERVICE_UNAVAILABLE,
                vec![Issue::general(
                    IssueCode::Throttled,
                    format!(
                        "{max_in_flight} requests to this org's Salesforce are in flight and none \
                         finished in time, so this one was not sent (nothing was booked or \
                         changed); retry after {retry_after_secs} seconds"
                    ),
                )],
                Some(*retry_after_secs),
            ),
            // Salesforce rolled the transaction back: the request had no effect, so it is safe to
            // send again (by the client, which knows whether it still wants it; never the proxy).
            ProxyError::Salesforce(Sf::RowLocked) => (
                StatusCode::SERVICE_UNAVAILABLE,
                vec![Issue::general(
                    IssueCode::Transient,
                    "Salesforce could not lock a record this request needed \
                     (UNABLE_TO_LOCK_ROW) and rolled its transaction back, so nothing was booked \
                     or changed; it is safe to send the same request again",
                )],
                Some(ROW_LOCK_RETRY_AFTER_SECS),
            ),
            ProxyError::Salesforce(Sf::Timeout) => (
                StatusCode::GATEWAY_TIMEOUT,
                vec![Issue::general(
                    IssueCode::Timeout,
                    "Salesforce did not answer in time; the appointment may or may not have been \
                     booked, so check before sending it again",
                )],
                None,
            ),
            ProxyError::Salesforce(Sf::Token(TokenError::Timeout)) => (
                StatusCode::GATEWAY_TIMEOUT,
                vec![Issue::general(
                    IssueCode::Timeout,
                    TokenError::Timeout.to_string(),
                )],
                None,
            ),
            ProxyError::Salesforce(Sf::Unreachable) => (
                StatusCode::BAD_GATEWAY,
                vec![Issue::general(
                    IssueCode::Transient,
                    "Salesforce could not be reached or dropped the connection; the appointment \
                     may or may not have been booked, so check before sending it again",
                )],
                None,
            ),
            ProxyError::HeadersTooLarge { limit } => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                vec![Issue::general(
                    IssueCode::TooLong,
                    format!("the request headers are larger than the limit of {limit} bytes"),
                )],
                None,
            ),
            // The handler was dropped mid-way: a booking or change may have reached Salesforce.
            ProxyError::RequestTimeout {
                secs,
                may_have_acted: true,
            } => (
                StatusCode::GATEWAY_TIMEOUT,
                vec![Issue::general(
                    IssueCode::Timeout,
                    format!(
                        "the proxy stopped working on this request after {secs} seconds; \
                         Salesforce may or may not have booked or changed the appointment, so \
                         check before sending it again"
                    ),
                )],
                None,
            ),
            ProxyError::RequestTimeout {
                secs,
                may_have_acted: false,
            } => (
                StatusCode::SERVICE_UNAVAILABLE,
                vec![Issue::general(
                    IssueCode::Transient,
                    format!(
                        "the proxy stopped working on this request after {secs} seconds; it \
                         books or changes nothing, so it is safe to send again"
                    ),
                )],
                Some(1),
            ),
            ProxyError::Overloaded { max } => (
                StatusCode::SERVICE_UNAVAILABLE,
                vec![Issue::general(
                    IssueCode::Transient,
                    format!(
                        "the proxy is handling {max} requests already, its limit, so it did not \
                         start this one (nothing was sent to Salesforce); retry shortly"
                    ),
                )],
                Some(1),
            ),
            // The files on disk are at fault, not the request; nothing changed.
            ProxyError::ReloadRefused {
                generation,
                problems,
            } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                problems
                    .iter()
                    .map(|p| {
                        Issue::general(
                            IssueCode::Invalid,
                            format!("reload refused, generation {generation} keeps serving: {p}"),
                        )
                    })
                    .collect(),
                None,
            ),
            // The token endpoint's URL is the audience every client assertion must name; taken
            // from a request's Host it would be whatever the caller claims.
            ProxyError::SmartNotConfigured => (
                StatusCode::NOT_FOUND,
                vec![Issue::general(
                    IssueCode::NotSupported,
                    "SMART Backend Services is not offered here: the proxy's auth.public_url is \
                     not set, and without it there is no token endpoint URL to announce or to \
                     check client assertions against",
                )],
                None,
            ),
            ProxyError::NothingToReload => (
                StatusCode::CONFLICT,
                vec![Issue::general(
                    IssueCode::NotSupported,
                    "this proxy was started without a configuration file (demo), so there is \
                     nothing to reload",
                )],
                None,
            ),
            // Never says which check failed or echoes the credential: the log says which.
            ProxyError::Unauthenticated { presented: false } => (
                StatusCode::UNAUTHORIZED,
                vec![Issue::general(
                    IssueCode::Login,
                    "this endpoint needs authentication: send Authorization: Bearer <access \
                     token> (SMART Backend Services or your organisation's authorization server) \
                     or an X-API-Key header",
                )],
                None,
            ),
            ProxyError::Unauthenticated { presented: true } => (
                StatusCode::UNAUTHORIZED,
                vec![Issue::general(
                    IssueCode::Login,
                    "the credentials sent are not valid for this proxy (unknown, expired, or not \
                     issued for it); send one Authorization: Bearer or one X-API-Key header",
                )],
                None,
            ),
            ProxyError::Forbidden(denial) => (
                StatusCode::FORBIDDEN,
                vec![Issue::general(
                    IssueCode::Forbidden,
                    match denial {
                        crate::auth::Denial::Scope {
                            resource_type,
                            permission,
                        } => format!(
                            "the client's scopes do not grant this interaction: it needs \
                             system/{resource_type}.{permission} (or a v1 scope that includes it)"
                        ),
                        crate::auth::Denial::Tenant => {
                            "the client is not allowed to use this tenant".to_owned()
                        }
                        crate::auth::Denial::Admin => {
                            "only admin clients may call /admin endpoints".to_owned()
                        }
                    },
                )],
                None,
            ),
            // Nothing was checked: not even the credentials this request carries.
            ProxyError::TooManyFailures { retry_after_secs } => (
                StatusCode::TOO_MANY_REQUESTS,
                vec![Issue::general(
                    IssueCode::Throttled,
                    format!(
                        "too many credentials from this address were not valid; requests with \
                         credentials from it are refused for {retry_after_secs} s"
                    ),
                )],
                Some(*retry_after_secs),
            ),
            ProxyError::AuthUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                vec![Issue::general(
                    IssueCode::Transient,
                    "the keys needed to check these credentials could not be obtained from \
                     their issuer; retry later",
                )],
                Some(5),
            ),
            // The proxy's own credentials or configuration are at fault: the sender cannot fix it.
            ProxyError::Salesforce(
                e @ (Sf::Token(_)
                | Sf::SessionRefused
                | Sf::Forbidden
                | Sf::NotFound
                | Sf::Server { .. }
                | Sf::BadResponse),
            ) => (
                StatusCode::BAD_GATEWAY,
                vec![Issue::general(IssueCode::Exception, e.to_string())],
                None,
            ),
        };
        ErrorOutcome {
            status,
            issues,
            retry_after,
        }
    }
}

impl ErrorOutcome {
    fn into_parts(self) -> (StatusCode, Vec<Issue>, Option<u64>) {
        (self.status, self.issues, self.retry_after)
    }
}

/// The `Retry-After` when the store is unavailable: a database restart or failover takes seconds.
const STORE_RETRY_AFTER_SECS: u64 = 5;

/// The `Retry-After` for `UNABLE_TO_LOCK_ROW`: locks are held for the length of a transaction,
/// seconds at most.
const ROW_LOCK_RETRY_AFTER_SECS: u64 = 2;

fn salesforce_issues(code: IssueCode, summary: &str, messages: &[String]) -> Vec<Issue> {
    if messages.is_empty() {
        return vec![Issue::general(code, summary)];
    }
    messages
        .iter()
        .map(|m| Issue::general(code, format!("{summary}: {m}")))
        .collect()
}

#[cfg(test)]
mod tests;
