//! The Salesforce API client: one shared reqwest client, the token cache, the Book Appointment call
//! and the classification of everything Salesforce (or the network) can answer.
//!
//! Booking is not idempotent, so a call is repeated only when Salesforce surely did not act on it:
//! once after a 401 `INVALID_SESSION_ID` (the session is checked before any processing), or once
//! after the connection was refused (no byte reached Salesforce). A timeout, a dropped connection
//! or a 5xx is reported, never retried: the booking may have happened.

use std::sync::Arc;

use secrecy::ExposeSecret;

use super::token::{AccessToken, TokenCache, TokenError};
use super::wire::{AppointmentOutcome, BookAppointmentRequest, parse_platform_errors};
use crate::config::SalesforceSettings;

/// Largest Salesforce response body read; the documented answers are a few hundred bytes.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

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
    /// 403 `REQUEST_LIMIT_EXCEEDED` or 429: the org's API limits are exhausted.
    #[error("Salesforce is throttling this org's API requests")]
    Throttled {
        /// How long the caller should wait (configured; Salesforce sends no Retry-After).
        retry_after_secs: u64,
    },
    /// Any other 403.
    #[error("Salesforce refused access: check the run-as user's permissions")]
    Forbidden,
    /// 404: the resource does not exist in this org or API version.
    #[error(
        "Salesforce has no Appointment Management resource here: check salesforce.api_version \
         (65.0 or later) and that Intelligent Appointment Management is enabled"
    )]
    NotFound,
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
    /// An answer that is none of the documented shapes.
    #[error("Salesforce answered with a body the proxy cannot read")]
    BadResponse,
}

/// The client of one Salesforce org.
#[derive(Clone)]
pub struct SalesforceClient {
    http: reqwest::Client,
    settings: Arc<SalesforceSettings>,
    tokens: TokenCache,
}

impl SalesforceClient {
    /// A client using the shared `http` client (whose pool and timeouts every call shares).
    pub fn new(http: reqwest::Client, settings: SalesforceSettings) -> Self {
        let tokens = TokenCache::new(&settings);
        SalesforceClient {
            http,
            settings: Arc::new(settings),
            tokens,
        }
    }

    /// Builds the one reqwest client the process uses, with the configured timeouts.
    ///
    /// # Errors
    /// When the TLS backend cannot be initialised.
    pub fn http_client(settings: &SalesforceSettings) -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .user_agent(concat!("fhir-salesforce-proxy/", env!("CARGO_PKG_VERSION")))
            .build()
    }

    /// The settings this client uses.
    pub fn settings(&self) -> &SalesforceSettings {
        &self.settings
    }

    /// Books an appointment (`POST …/connect/health/appointment-management/appointment`).
    ///
    /// # Errors
    /// A [`SalesforceError`] for every answer other than `isSuccess: true` with an id.
    #[tracing::instrument(name = "salesforce.book_appointment", skip_all)]
    pub async fn book_appointment(
        &self,
        request: &BookAppointmentRequest,
    ) -> Result<AppointmentOutcome, SalesforceError> {
        let mut retried = false;
        loop {
            let token = self.tokens.get(&self.http, &self.settings).await?;
            let url = self.appointment_url(&token);
            let sent = self
                .http
                .post(url)
                .bearer_auth(token.value.expose_secret())
                .json(request)
                .send()
                .await;
            let response = match sent {
                Ok(r) => r,
                Err(e) if e.is_timeout() => return Err(SalesforceError::Timeout),
                // Refused before a byte was sent: Salesforce cannot have acted.
                Err(e) if e.is_connect() && !retried => {
                    tracing::warn!("connection to Salesforce failed; retrying once");
                    retried = true;
                    continue;
                }
                Err(_) => return Err(SalesforceError::Unreachable),
            };
            let status = response.status().as_u16();
            let body = read_capped(response).await?;
            tracing::info!(http_status = status, "Salesforce answered");
            match classify(status, &body, self.settings.throttle_retry_after.as_secs()) {
                Answer::SessionInvalid if !retried => {
                    // A 401 is decided before any processing: safe to repeat with a new token.
                    tracing::info!("Salesforce refused the cached token; fetching a new one");
                    self.tokens.evict(&token).await;
                    retried = true;
                }
                Answer::SessionInvalid => return Err(SalesforceError::SessionRefused),
                Answer::Done(result) => return result,
            }
        }
    }

    fn appointment_url(&self, token: &AccessToken) -> String {
        format!(
            "{}/services/data/v{}/connect/health/appointment-management/appointment",
            token.instance_url.as_str().trim_end_matches('/'),
            self.settings.api_version
        )
    }
}

enum Answer {
    SessionInvalid,
    Done(Result<AppointmentOutcome, SalesforceError>),
}

/// Decides what an HTTP answer from Book Appointment means.
fn classify(status: u16, body: &[u8], retry_after_secs: u64) -> Answer {
    let result = match status {
        200..=299 => match AppointmentOutcome::parse(body) {
            Ok(o) if o.is_success && o.id.is_some() => Ok(o),
            Ok(o) if o.is_success => Err(SalesforceError::BadResponse),
            Ok(o) => Err(SalesforceError::Unsuccessful {
                status: o.status,
                messages: o.errors,
            }),
            Err(_) => Err(SalesforceError::BadResponse),
        },
        401 => return Answer::SessionInvalid,
        400 | 422 => Err(SalesforceError::Rejected {
            messages: messages(body),
        }),
        403 if parse_platform_errors(body)
            .iter()
            .any(|e| e.error_code == "REQUEST_LIMIT_EXCEEDED") =>
        {
            Err(SalesforceError::Throttled { retry_after_secs })
        }
        403 => Err(SalesforceError::Forbidden),
        429 => Err(SalesforceError::Throttled { retry_after_secs }),
        404 => Err(SalesforceError::NotFound),
        other => Err(SalesforceError::Server { status: other }),
    };
    Answer::Done(result)
}

/// Salesforce's messages from a platform error array or an Appointment Management Output.
fn messages(body: &[u8]) -> Vec<String> {
    let platform = parse_platform_errors(body);
    if !platform.is_empty() {
        return platform
            .into_iter()
            .map(|e| format!("{}: {}", e.error_code, e.message))
            .collect();
    }
    AppointmentOutcome::parse(body)
        .map(|o| o.errors)
        .unwrap_or_default()
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, SalesforceError> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(SalesforceError::BadResponse);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) if e.is_timeout() => return Err(SalesforceError::Timeout),
            Err(_) => return Err(SalesforceError::Unreachable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(status: u16, body: &str) -> Result<AppointmentOutcome, SalesforceError> {
        match classify(status, body.as_bytes(), 60) {
            Answer::Done(r) => r,
            Answer::SessionInvalid => panic!("unexpected session answer"),
        }
    }

    #[test]
    fn classifies_every_documented_answer() {
        assert_eq!(
            done(
                201,
                r#"{"id":"08pxx0000004KhxxAE","isSuccess":true,"status":"scheduled","error":{}}"#
            )
            .unwrap()
            .id
            .as_deref(),
            Some("08pxx0000004KhxxAE")
        );
        assert!(matches!(
            done(200, r#"[{"isSuccess":false,"status":"Rejected","errorMessages":["taken"]}]"#),
            Err(SalesforceError::Unsuccessful { messages, .. }) if messages == vec!["taken".to_owned()]
        ));
        assert!(matches!(
            done(400, r#"[{"errorCode":"INVALID_INPUT","message":"startDate is required"}]"#),
            Err(SalesforceError::Rejected { messages }) if messages == vec!["INVALID_INPUT: startDate is required".to_owned()]
        ));
        assert!(matches!(
            done(
                403,
                r#"[{"errorCode":"REQUEST_LIMIT_EXCEEDED","message":"TotalRequests Limit exceeded."}]"#
            ),
            Err(SalesforceError::Throttled {
                retry_after_secs: 60
            })
        ));
        assert!(matches!(done(403, "[]"), Err(SalesforceError::Forbidden)));
        assert!(matches!(
            done(429, ""),
            Err(SalesforceError::Throttled { .. })
        ));
        assert!(matches!(done(404, ""), Err(SalesforceError::NotFound)));
        assert!(matches!(
            done(500, ""),
            Err(SalesforceError::Server { status: 500 })
        ));
        assert!(matches!(
            done(200, "<html>"),
            Err(SalesforceError::BadResponse)
        ));
        assert!(matches!(
            done(200, r#"{"isSuccess":true}"#),
            Err(SalesforceError::BadResponse)
        ));
        assert!(matches!(classify(401, b"", 60), Answer::SessionInvalid));
    }
}
