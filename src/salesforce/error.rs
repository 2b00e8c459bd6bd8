//! What can go wrong talking to Salesforce, as one error type the client, the limits and the
//! lookups share.

use super::token::TokenError;

/// What went wrong talking to Salesforce. Messages may hold what Salesforce said; they go back to
/// the caller that sent the request and are never logged.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SalesforceError {
    /// No access token could be had.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Salesforce refused the request's content (HTTP 400/422).
    #[error("Salesforce refused the request")]
    Rejected {
        /// Salesforce's messages.
        messages: Vec<String>,
    },
    /// Salesforce answered `isSuccess: false`.
    #[error("Salesforce did not book the appointment")]
    Unsuccessful {
        /// Salesforce's status, e.g. `Rejected`.
        status: Option<String>,
        /// Salesforce's messages.
        messages: Vec<String>,
    },
    /// Salesforce refused the token again after a fresh one was fetched.
    #[error("Salesforce refused the proxy's session even with a fresh token")]
    SessionRefused,
    /// 403 `REQUEST_LIMIT_EXCEEDED`, or 429/503 from a Connect resource: the org's API limits are
    /// exhausted or it is overloaded. The org is backed off from then on.
    #[error("Salesforce is throttling this org's API requests")]
    Throttled {
        /// The back-off just started: Salesforce's `Retry-After`, else the configured one.
        retry_after_secs: u64,
    },
    /// The org is backed off after a throttle; nothing was sent to Salesforce.
    #[error("the proxy is holding this org's requests back after Salesforce throttled it")]
    BackingOff {
        /// What remains of the back-off, in whole seconds rounded up.
        retry_after_secs: u64,
    },
    /// No place among the calls in flight came free within the queue timeout; nothing was sent.
    #[error("too many requests to this org are in flight")]
    Busy {
        /// `salesforce.max_concurrent_requests`.
        max_in_flight: usize,
        /// When to try again.
        retry_after_secs: u64,
    },
    /// `UNABLE_TO_LOCK_ROW`: Salesforce could not lock a record and rolled the transaction back.
    #[error("Salesforce could not lock a record (UNABLE_TO_LOCK_ROW)")]
    RowLocked,
    /// Any other 403.
    #[error("Salesforce refused access: check the run-as user's permissions")]
    Forbidden,
    /// 404: the resource does not exist in this org or API version.
    #[error(
        "Salesforce has no Appointment Management resource here: check salesforce.api_version \
         (65.0 or later) and that Intelligent Appointment Management is enabled"
    )]
    NotFound,
    /// 404 on one record's resource: Salesforce holds no appointment with that id.
    #[error("Salesforce holds no appointment with this id")]
    NoSuchRecord,
    /// A 5xx or another unexpected status.
    #[error("Salesforce failed with HTTP {status}")]
    Server {
        /// The HTTP status.
        status: u16,
    },
    /// The connection could not be made or was dropped.
    #[error("Salesforce could not be reached or dropped the connection")]
    Unreachable,
    /// No answer within the request timeout.
    #[error("Salesforce did not answer in time")]
    Timeout,
    /// Salesforce refused a query as too costly (`QUERY_TIMEOUT`, `QUERY_TOO_COMPLICATED`,
    /// `EXCEEDED_ID_LIMIT`).
    #[error("Salesforce refused the search as too costly")]
    TooCostly,
    /// Salesforce refused a query the proxy built (`MALFORMED_QUERY`, `INVALID_FIELD`, …): the
    /// org lacks a field or object the proxy reads, or the proxy is wrong.
    #[error("Salesforce refused the proxy's query")]
    QueryRefused {
        /// Salesforce's messages.
        messages: Vec<String>,
    },
    /// An expired or unknown query locator (`INVALID_QUERY_LOCATOR`): a next link older than
    /// Salesforce keeps results (two days).
    #[error("the page asked for is no longer available")]
    PageExpired,
    /// An answer that is none of the documented shapes.
    #[error("Salesforce answered with a body the proxy cannot read")]
    BadResponse,
}
