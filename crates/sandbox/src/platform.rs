//! Salesforce's REST error body: an array of `{"message", "errorCode", "fields"?}` (the REST API
//! Developer Guide's "Status Codes and Error Responses").

use serde::Serialize;

/// One element of a platform error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlatformError {
    /// What a person reads.
    pub message: String,
    /// The machine code, e.g. `INVALID_SESSION_ID`.
    #[serde(rename = "errorCode")]
    pub error_code: String,
    /// The fields concerned, when there are any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}
