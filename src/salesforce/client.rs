//! The Salesforce API client: one shared reqwest client, the token cache, the Book Appointment call
//! and the classification of everything Salesforce (or the network) can answer.
//!
//! Booking is not idempotent, so a call is repeated only when Salesforce surely did not act on it:
//! once after a 401 `INVALID_SESSION_ID` (the session is checked before any processing), or once
//! after the connection was refused (no byte reached Salesforce). A timeout, a dropped connection
//! or a 5xx is reported, never retried: the booking may have happened. `UNABLE_TO_LOCK_ROW` is
//! reported too (Salesforce rolled the transaction back, so the caller may safely send it again).
//!
//! Every call also goes through the org's [`OrgLimits`]: no call while the org is backed off after
//! a throttle, at most `salesforce.max_concurrent_requests` in flight, and the `Sforce-Limit-Info`
//! of each answer recorded.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use secrecy::ExposeSecret;

pub use super::error::SalesforceError;
use super::limits::{self, ApiUsage, LimitsSnapshot, OrgLimits};
use super::lookup::{self, LookupAnswer, LookupCache, LookupCacheSettings};
use super::records::{QueryPage, is_locator, parse_page};
use super::token::{TokenCache, TokenError};
use super::wire::{
    AppointmentOutcome, BookAppointmentRequest, CancelAppointmentRequest, GetSlotsRequest,
    ResourceSlots, UpdateAppointmentRequest, parse_platform_errors, parse_slots,
};
use crate::config::SalesforceSettings;
use crate::metrics::{CallKind, SalesforceMetrics};

/// Largest Salesforce response body read; the documented answers are a few hundred bytes.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// Largest query answer read: a batch of 200 records with their junctions is well under it.
const MAX_QUERY_BYTES: usize = 8 * 1024 * 1024;
/// The batch asked of every query (Salesforce's minimum: pages are cut by the proxy anyway).
const QUERY_BATCH_OPTIONS: &str = "batchSize=200";

/// The client of one Salesforce org.
#[derive(Clone)]
pub struct SalesforceClient {
    http: reqwest::Client,
    settings: Arc<SalesforceSettings>,
    tokens: TokenCache,
    limits: OrgLimits,
    /// External-id answers of this org, made on first use with the mapping's settings.
    lookups: Arc<OnceLock<LookupCache>>,
    /// Where call latencies, token fetches and lookup-cache hits are counted.
    metrics: SalesforceMetrics,
}

impl SalesforceClient {
    /// A client using the shared `http` client (whose pool and timeouts every call shares).
    pub fn new(http: reqwest::Client, settings: SalesforceSettings) -> Self {
        SalesforceClient::with_metrics(http, settings, SalesforceMetrics::disabled())
    }

    /// A client like [`SalesforceClient::new`] that records its calls in `metrics`.
    pub fn with_metrics(
        http: reqwest::Client,
        settings: SalesforceSettings,
        metrics: SalesforceMetrics,
    ) -> Self {
        let settings = Arc::new(settings);
        let tokens = TokenCache::with_metrics(http.clone(), settings.clone(), metrics.clone());
        let limits = OrgLimits::new(&settings);
        SalesforceClient {
            http,
            settings,
            tokens,
            limits,
            lookups: Arc::default(),
            metrics,
        }
    }

    /// Where this client counts what it does.
    pub fn metrics(&self) -> &SalesforceMetrics {
        &self.metrics
    }

    /// Whether an access token can be had now: the cached one counts without a call; else one
    /// token request is made (or, within the back-off after a failure, its error repeated).
    ///
    /// # Errors
    /// The [`TokenError`] saying why not.
    pub async fn token_obtainable(&self) -> Result<(), TokenError> {
        self.tokens.get().await.map(|_| ())
    }

    /// The org's API usage from the latest `Sforce-Limit-Info` Salesforce sent, if any yet.
    pub fn api_usage(&self) -> Option<ApiUsage> {
        self.limits.api_usage()
    }

    /// API usage, back-off and calls in flight, as they are now (no secrets, no PHI).
    pub fn limits_snapshot(&self) -> LimitsSnapshot {
        self.limits.snapshot()
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
    #[tracing::instrument(level = "debug", name = "salesforce.book_appointment", skip_all)]
    pub async fn book_appointment(
        &self,
        request: &BookAppointmentRequest,
    ) -> Result<AppointmentOutcome, SalesforceError> {
        let (status, body) = self
            .call(
                CallKind::Book,
                reqwest::Method::POST,
                APPOINTMENT_PATH,
                request,
            )
            .await?;
        outcome(status, &body, self.retry_after())
    }

    /// Reschedules or otherwise changes an appointment (`PUT …/appointment/{id}`).
    ///
    /// # Errors
    /// A [`SalesforceError`] for every answer other than `isSuccess: true`.
    #[tracing::instrument(level = "debug", name = "salesforce.update_appointment", skip_all)]
    pub async fn update_appointment(
        &self,
        request: &UpdateAppointmentRequest,
    ) -> Result<AppointmentOutcome, SalesforceError> {
        let path = format!("{APPOINTMENT_PATH}/{}", encode_segment(&request.id));
        let (status, body) = self
            .call(CallKind::Update, reqwest::Method::PUT, &path, request)
            .await?;
        on_record(outcome(status, &body, self.retry_after()))
    }

    /// Cancels an appointment (`PATCH …/appointment/{id}`).
    ///
    /// # Errors
    /// A [`SalesforceError`] for every answer other than `isSuccess: true`.
    #[tracing::instrument(level = "debug", name = "salesforce.cancel_appointment", skip_all)]
    pub async fn cancel_appointment(
        &self,
        request: &CancelAppointmentRequest,
    ) -> Result<AppointmentOutcome, SalesforceError> {
        let path = format!("{APPOINTMENT_PATH}/{}", encode_segment(&request.id));
        let (status, body) = self
            .call(CallKind::Cancel, reqwest::Method::PATCH, &path, request)
            .await?;
        on_record(outcome(status, &body, self.retry_after()))
    }

    /// Finds free slots (`POST …/appointment-management/slots`).
    ///
    /// # Errors
    /// A [`SalesforceError`] for every answer but a readable list of slots.
    #[tracing::instrument(level = "debug", name = "salesforce.get_slots", skip_all)]
    pub async fn get_slots(
        &self,
        request: &GetSlotsRequest,
    ) -> Result<Vec<ResourceSlots>, SalesforceError> {
        let (status, body) = self
            .call(CallKind::Slots, reqwest::Method::POST, SLOTS_PATH, request)
            .await?;
        if (200..300).contains(&status) {
            parse_slots(&body).map_err(|_| SalesforceError::BadResponse)
        } else {
            Err(classify_failure(status, &body, self.retry_after()))
        }
    }

    /// Finds the record of `object` whose external id `field` holds `value`
    /// (`GET …/sobjects/{object}/{field}/{value}?fields=Id`, asking for the `Id` only so no other
    /// field, patient data included, comes back). A read: the 401 retry applies as for any call.
    ///
    /// # Errors
    /// A [`SalesforceError`] for every answer but 200 with a record id, 404 (not found) or 300
    /// (several records).
    #[tracing::instrument(
        level = "debug",
        name = "salesforce.get_by_external_id",
        skip_all,
        fields(object = %object, field = %field)
    )]
    pub async fn get_by_external_id(
        &self,
        object: &str,
        field: &str,
        value: &str,
    ) -> Result<LookupAnswer, SalesforceError> {
        // A value made only of dots would be a dot-segment (`.`, `..`) however it is encoded:
        // URL parsers resolve `%2E` as `.`, and the call would go to another resource. No record
        // can be found by it, so none is asked for.
        if value.is_empty() || value.bytes().all(|b| b == b'.') {
            return Ok(LookupAnswer::NotFound);
        }
        // Object and field names were checked as API names when the mapping was loaded; encoding
        // them too costs nothing and keeps the path intact whatever a caller passes.
        let path = format!(
            "/sobjects/{}/{}/{}?fields=Id",
            lookup::encode_path_segment(object),
            lookup::encode_path_segment(field),
            lookup::encode_path_segment(value)
        );
        let (status, body) = self
            .call(CallKind::Lookup, reqwest::Method::GET, &path, &())
            .await?;
        match status {
            200 => lookup::record_id(&body)
                .map(LookupAnswer::Found)
                .ok_or(SalesforceError::BadResponse),
            300 => Ok(LookupAnswer::Ambiguous),
            404 => Ok(LookupAnswer::NotFound),
            _ => Err(classify_failure(status, &body, self.retry_after())),
        }
    }

    /// Runs a SOQL statement (`GET …/query?q=`), built by [`super::soql`] only, and reads the
    /// first page. A read: also repeated once after a dropped connection.
    ///
    /// # Errors
    /// [`SalesforceError::TooCostly`], [`SalesforceError::QueryRefused`] for a 400, and every
    /// other failure as for any call.
    #[tracing::instrument(level = "debug", name = "salesforce.query", skip_all)]
    pub async fn query(&self, soql: &str) -> Result<QueryPage, SalesforceError> {
        let encoded: String = url::form_urlencoded::byte_serialize(soql.as_bytes()).collect();
        let path = format!("/query?q={encoded}");
        self.query_at(&path).await
    }

    /// The page behind a query locator (`GET …/query/{locator}`), as [`Self::query`] answered it
    /// in `next`.
    ///
    /// # Errors
    /// [`SalesforceError::PageExpired`] for a locator Salesforce no longer knows, or one that is
    /// not a locator at all (nothing is sent then); the rest as [`Self::query`].
    #[tracing::instrument(level = "debug", name = "salesforce.query_more", skip_all)]
    pub async fn query_more(&self, locator: &str) -> Result<QueryPage, SalesforceError> {
        if !is_locator(locator) {
            return Err(SalesforceError::PageExpired);
        }
        self.query_at(&format!("/query/{locator}")).await
    }

    async fn query_at(&self, path: &str) -> Result<QueryPage, SalesforceError> {
        let (status, body) = self
            .call(CallKind::Query, reqwest::Method::GET, path, &())
            .await?;
        if status == 200 {
            return parse_page(&body).map_err(|_| SalesforceError::BadResponse);
        }
        let errors = parse_platform_errors(&body);
        let code = |wanted: &[&str]| {
            errors
                .iter()
                .any(|e| wanted.contains(&e.error_code.as_str()))
        };
        if code(&[
            "QUERY_TIMEOUT",
            "QUERY_TOO_COMPLICATED",
            "EXCEEDED_ID_LIMIT",
        ]) {
            return Err(SalesforceError::TooCostly);
        }
        if code(&["INVALID_QUERY_LOCATOR"]) {
            return Err(SalesforceError::PageExpired);
        }
        match classify_failure(status, &body, self.retry_after()) {
            SalesforceError::Rejected { messages } => {
                Err(SalesforceError::QueryRefused { messages })
            }
            other => Err(other),
        }
    }

    /// This org's lookup cache, made with `settings` on first use (one client serves one
    /// mapping, so the first settings are the only ones).
    pub fn lookup_cache(&self, settings: &LookupCacheSettings) -> &LookupCache {
        self.lookups.get_or_init(|| LookupCache::new(settings))
    }

    fn retry_after(&self) -> u64 {
        self.settings.throttle_retry_after.as_secs()
    }

    /// Sends one Connect call with this module's retry policy: one more try with a fresh token
    /// after a 401, one more try after a refused connection, nothing else repeated. Refused
    /// without sending while the org is backed off or too busy; a throttle starts the back-off
    /// and is returned as [`SalesforceError::Throttled`].
    async fn call<T: serde::Serialize>(
        &self,
        kind: CallKind,
        method: reqwest::Method,
        path: &str,
        body: &T,
    ) -> Result<(u16, Vec<u8>), SalesforceError> {
        self.limits.check_backoff()?;
        let _admission = self.limits.admit().await?;
        // Timed from the admission on: the latency of Salesforce (and the token it needed), not
        // of the proxy's own queue.
        let started = Instant::now();
        let result = self.call_admitted(kind, method, path, body).await;
        self.metrics.call(kind, started.elapsed());
        result
    }

    /// [`SalesforceClient::call`] once a place among the calls in flight is held.
    async fn call_admitted<T: serde::Serialize>(
        &self,
        kind: CallKind,
        method: reqwest::Method,
        path: &str,
        body: &T,
    ) -> Result<(u16, Vec<u8>), SalesforceError> {
        // A query changes nothing: it may be sent again after a dropped connection too.
        let read = kind == CallKind::Query;
        // A throttle may have answered another call while this one waited for its place.
        self.limits.check_backoff()?;
        let mut retried = false;
        loop {
            let token = self.tokens.get().await?;
            let url = format!(
                "{}/services/data/v{}{path}",
                token.instance_url.as_str().trim_end_matches('/'),
                self.settings.api_version
            );
            let mut builder = self
                .http
                .request(method.clone(), url)
                .bearer_auth(token.value.expose_secret());
            // A GET (external-id lookup, query) carries no body.
            if method != reqwest::Method::GET {
                builder = builder.json(body);
            }
            if read {
                builder = builder.header("Sforce-Query-Options", QUERY_BATCH_OPTIONS);
            }
            let sent = builder.send().await;
            let response = match sent {
                Ok(r) => r,
                Err(e) if e.is_timeout() => return Err(SalesforceError::Timeout),
                // Refused before a byte was sent: Salesforce cannot have acted.
                Err(e) if e.is_connect() && !retried => {
                    tracing::warn!("connection to Salesforce failed; retrying once");
                    retried = true;
                    continue;
                }
                Err(_) if read && !retried => {
                    tracing::warn!("Salesforce dropped the connection of a query; retrying once");
                    retried = true;
                    continue;
                }
                Err(_) => return Err(SalesforceError::Unreachable),
            };
            let status = response.status().as_u16();
            let headers = response.headers();
            if let Some(info) = header_text(headers, limits::LIMIT_INFO_HEADER) {
                self.limits.record_limit_info(info);
            }
            let salesforce_retry_after =
                header_text(headers, "retry-after").and_then(limits::parse_retry_after);
            let cap = if read {
                MAX_QUERY_BYTES
            } else {
                MAX_RESPONSE_BYTES
            };
            let body = match read_capped(response, cap).await {
                // A read whose answer was cut off can be asked again.
                Err(SalesforceError::Unreachable) if read && !retried => {
                    retried = true;
                    continue;
                }
                other => other?,
            };
            // Success is in the audit line; anything else is worth a line of its own.
            if (200..300).contains(&status) {
                tracing::debug!(http_status = status, "Salesforce answered");
            } else {
                tracing::info!(http_status = status, "Salesforce answered");
            }
            if status == 401 && !retried {
                // A 401 is decided before any processing: safe to repeat with a new token.
                tracing::info!("Salesforce refused the cached token; fetching a new one");
                self.tokens.evict(&token).await;
                retried = true;
                continue;
            }
            if is_throttle(status, &body) {
                let retry_after_secs = self.limits.throttled(salesforce_retry_after);
                tracing::warn!(
                    http_status = status,
                    backoff_secs = retry_after_secs,
                    "Salesforce is throttling this org; holding its requests back"
                );
                return Err(SalesforceError::Throttled { retry_after_secs });
            }
            self.limits.answered();
            return Ok((status, body));
        }
    }
}

/// The Connect path of Book, Update and Cancel (after `/services/data/vNN.N`).
const APPOINTMENT_PATH: &str = "/connect/health/appointment-management/appointment";
/// The Connect path of Get Slots.
const SLOTS_PATH: &str = "/connect/health/appointment-management/slots";

/// Percent-encodes an id for a path segment (Salesforce ids need none; anything else must not
/// be able to change the path).
fn encode_segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// Reads an Appointment Management Output answer.
fn outcome(
    status: u16,
    body: &[u8],
    retry_after_secs: u64,
) -> Result<AppointmentOutcome, SalesforceError> {
    if !(200..300).contains(&status) {
        return Err(classify_failure(status, body, retry_after_secs));
    }
    match AppointmentOutcome::parse(body) {
        Ok(o) if o.is_success && o.id.is_some() => Ok(o),
        Ok(o) if o.is_success => Err(SalesforceError::BadResponse),
        Ok(o) => Err(SalesforceError::Unsuccessful {
            status: o.status,
            messages: o.errors,
        }),
        Err(_) => Err(SalesforceError::BadResponse),
    }
}

/// A header's value when it is text.
fn header_text<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether an answer says the org is throttled: 403 `REQUEST_LIMIT_EXCEEDED` (REST), or 429 or 503
/// ("Too many requests…", Connect).
fn is_throttle(status: u16, body: &[u8]) -> bool {
    match status {
        403 => parse_platform_errors(body)
            .iter()
            .any(|e| e.error_code == "REQUEST_LIMIT_EXCEEDED"),
        429 | 503 => true,
        _ => false,
    }
}

/// Whether an error answer is `UNABLE_TO_LOCK_ROW`: as the error code, or inside the message of
/// another (`CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY`), as Salesforce reports it from triggers.
fn is_row_lock(body: &[u8]) -> bool {
    const ROW_LOCK: &str = "UNABLE_TO_LOCK_ROW";
    parse_platform_errors(body)
        .iter()
        .any(|e| e.error_code == ROW_LOCK || e.message.contains(ROW_LOCK))
}

/// What a non-2xx answer (other than 401, which the retry handles) means.
/// A 404 on one record's resource (`…/appointment/{id}`) is that record missing (Salesforce's
/// `NOT_FOUND`), not the API: only a 404 on the collection says the resource is not there.
fn on_record(
    result: Result<AppointmentOutcome, SalesforceError>,
) -> Result<AppointmentOutcome, SalesforceError> {
    result.map_err(|error| match error {
        SalesforceError::NotFound => SalesforceError::NoSuchRecord,
        other => other,
    })
}

fn classify_failure(status: u16, body: &[u8], retry_after_secs: u64) -> SalesforceError {
    match status {
        _ if is_throttle(status, body) => SalesforceError::Throttled { retry_after_secs },
        // Before 400's arm: the request was fine, the record was busy, nothing was changed.
        400..=599 if is_row_lock(body) => SalesforceError::RowLocked,
        400 | 422 => SalesforceError::Rejected {
            messages: messages(body),
        },
        403 => SalesforceError::Forbidden,
        404 => SalesforceError::NotFound,
        401 => SalesforceError::SessionRefused,
        other => SalesforceError::Server { status: other },
    }
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

async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, SalesforceError> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > cap {
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
        outcome(status, body.as_bytes(), 60)
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
            done(503, ""),
            Err(SalesforceError::Throttled { .. })
        ));
        assert!(matches!(
            done(
                500,
                r#"[{"errorCode":"UNABLE_TO_LOCK_ROW","message":"unable to obtain exclusive access to this record"}]"#
            ),
            Err(SalesforceError::RowLocked)
        ));
        assert!(matches!(
            done(
                400,
                r#"[{"errorCode":"CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY","message":"trigger: UNABLE_TO_LOCK_ROW, unable to obtain exclusive access"}]"#
            ),
            Err(SalesforceError::RowLocked)
        ));
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
    }
}
