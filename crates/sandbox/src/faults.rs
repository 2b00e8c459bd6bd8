//! Switchable faults, and the API usage header, for every `/services/data` call of the sandbox.
//!
//! A middleware in front of the resources counts each call (the count is what
//! `Sforce-Limit-Info: api-usage=N/LIMIT` reports on every answer, as Salesforce does on every REST
//! answer, `salesforce-api.md` §4.4), records it for [`Sandbox::api_calls`], then answers it
//! according to the [`Fault`] switched on, if any, instead of the resource: throttled, a 500, held
//! until the test releases it, or dropped without an answer. Tests switch faults with
//! [`Sandbox::set_fault`], [`Sandbox::set_fault_for`] and [`Sandbox::clear_fault`], and wait for
//! held calls by signal ([`Sandbox::wait_until_held`]), never by sleeping. The token endpoint is
//! never faulted: Salesforce's limits count API calls, not logins.

use std::sync::{Mutex, MutexGuard, PoisonError};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use tokio::sync::watch;

use super::{Sandbox, Shared, platform_error};

/// The header Salesforce reports the org's API usage in.
pub const LIMIT_INFO_HEADER: &str = "sforce-limit-info";
/// The daily allocation the sandbox reports until [`Sandbox::set_api_limit`] changes it
/// (an Enterprise org with 100 licences gets about this many).
pub const DEFAULT_API_LIMIT: u64 = 100_000;
/// The path under which every call is counted and may be faulted.
const API_PREFIX: &str = "/services/data/";

/// How the sandbox misbehaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 403 `[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]`,
    /// as Salesforce throttles (no `Retry-After`: Salesforce sends none).
    Throttle,
    /// 503, as a Connect resource answers "Too many requests in an hour", with a `Retry-After`
    /// when given.
    Unavailable {
        /// The `Retry-After` seconds to send, if any.
        retry_after_secs: Option<u64>,
    },
    /// 500 with a platform error of this code and message.
    ServerError {
        /// The `errorCode`.
        error_code: String,
        /// The `message`.
        message: String,
    },
    /// Held until [`Sandbox::release_held`] (or [`Sandbox::clear_fault`]), then answered
    /// normally: a slow org, released by the test rather than by a clock.
    Hold,
    /// The connection is closed without an answer, after the request was read (so the proxy
    /// cannot know whether Salesforce acted on it).
    DropConnection,
}

impl Fault {
    /// 500 `UNABLE_TO_LOCK_ROW`: a record was locked by another transaction, this one was rolled
    /// back.
    pub fn row_locked() -> Fault {
        Fault::ServerError {
            error_code: "UNABLE_TO_LOCK_ROW".to_owned(),
            message: "unable to obtain exclusive access to this record or 1 records".to_owned(),
        }
    }
}

/// One `/services/data` call as the sandbox received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCall {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
}

impl ApiCall {
    /// Whether it was a Book Appointment call (`POST …/appointment`).
    pub fn is_booking(&self) -> bool {
        self.method == "POST" && self.path.ends_with("/appointment-management/appointment")
    }
}

/// The faults' state, shared by all workers.
pub(super) struct Faults {
    state: Mutex<FaultState>,
    /// Bumped to release every held call.
    release: watch::Sender<u64>,
    /// How many calls are held now.
    held: watch::Sender<usize>,
}

struct FaultState {
    /// The fault and how many more calls it applies to (`None`: until cleared).
    fault: Option<(Fault, Option<usize>)>,
    limit: u64,
    calls: Vec<ApiCall>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            state: Mutex::new(FaultState {
                fault: None,
                limit: DEFAULT_API_LIMIT,
                calls: Vec::new(),
            }),
            release: watch::Sender::new(0),
            held: watch::Sender::new(0),
        }
    }
}

/// What the middleware does with one call.
enum Plan {
    Pass,
    Hold(watch::Receiver<u64>),
    Answer(Fault),
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, FaultState> {
        // Plain data: fine to read after a panic elsewhere.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts and records a call; decides its fate; returns it with the usage header's value.
    fn arrive(&self, method: &str, path: &str) -> (Plan, String) {
        let mut state = self.lock();
        state.calls.push(ApiCall {
            method: method.to_owned(),
            path: path.to_owned(),
        });
        let used = state.calls.len() as u64;
        let usage = format!("api-usage={used}/{}", state.limit);
        let fault = match state.fault.take() {
            Some((fault, remaining)) => {
                // Put back unless this was its last call.
                match remaining {
                    None => state.fault = Some((fault.clone(), None)),
                    Some(n) if n > 1 => state.fault = Some((fault.clone(), Some(n - 1))),
                    Some(_) => {}
                }
                Some(fault)
            }
            // Over the daily allocation, Salesforce throttles every call.
            None if used > state.limit => Some(Fault::Throttle),
            None => None,
        };
        let plan = match fault {
            None => Plan::Pass,
            // Subscribed under the lock, so a release after this decision is not missed.
            Some(Fault::Hold) => Plan::Hold(self.release.subscribe()),
            Some(other) => Plan::Answer(other),
        };
        (plan, usage)
    }

    fn release_all(&self) {
        let _state = self.lock();
        self.release.send_modify(|generation| *generation += 1);
    }
}

/// Counts a held call for as long as it is held, including when its client gives up.
struct HeldGuard<'a>(&'a watch::Sender<usize>);

impl Drop for HeldGuard<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// The middleware: counts, faults, and adds `Sforce-Limit-Info` to every `/services/data` answer.
pub(super) async fn apply(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let shared = request.app_data::<web::Data<Shared>>().cloned();
    let Some(shared) = shared.filter(|_| request.path().starts_with(API_PREFIX)) else {
        return Ok(next.call(request).await?.map_into_boxed_body());
    };
    let faults = &shared.faults;
    let (plan, usage) = faults.arrive(request.method().as_str(), request.path());
    let mut response = match plan {
        Plan::Pass => next.call(request).await?.map_into_boxed_body(),
        Plan::Hold(mut release) => {
            let start = *release.borrow_and_update();
            faults.held.send_modify(|n| *n += 1);
            let guard = HeldGuard(&faults.held);
            // An error means the sender is gone, i.e. the sandbox is going away: answer then.
            let _ = release.wait_for(|generation| *generation != start).await;
            drop(guard);
            next.call(request).await?.map_into_boxed_body()
        }
        Plan::Answer(Fault::DropConnection) => {
            tracing::info!("sandbox dropping a connection unanswered (fault switched on)");
            return Ok(request.into_response(dropped_connection()));
        }
        Plan::Answer(fault) => request.into_response(fault_response(&fault)),
    };
    if let Ok(value) = HeaderValue::from_str(&usage) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(LIMIT_INFO_HEADER), value);
    }
    Ok(response)
}

/// The answer to a faulted call (every fault but [`Fault::Hold`] and [`Fault::DropConnection`]).
fn fault_response(fault: &Fault) -> HttpResponse {
    match fault {
        Fault::Throttle => platform_error(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        ),
        Fault::Unavailable { retry_after_secs } => {
            let mut response = platform_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "Too many requests in an hour, or the server is down for maintenance",
            );
            if let Some(secs) = retry_after_secs {
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(*secs));
            }
            response
        }
        Fault::ServerError {
            error_code,
            message,
        } => platform_error(StatusCode::INTERNAL_SERVER_ERROR, error_code, message),
        // Not reached: the middleware handles these itself.
        Fault::Hold | Fault::DropConnection => HttpResponse::InternalServerError().finish(),
    }
}

/// A response whose body fails before its first byte: actix then closes the connection without
/// writing the status line, so the client sees the connection dropped after its request.
fn dropped_connection() -> HttpResponse {
    HttpResponse::Ok().streaming(futures_util::stream::once(async {
        Err::<web::Bytes, _>(std::io::Error::other(
            "sandbox fault: connection dropped on purpose",
        ))
    }))
}

impl Sandbox {
    /// Answers every `/services/data` call with `fault` until [`Self::clear_fault`].
    pub fn set_fault(&self, fault: Fault) {
        self.shared.faults.lock().fault = Some((fault, None));
    }

    /// Answers the next `calls` `/services/data` calls with `fault`, then behaves again.
    pub fn set_fault_for(&self, fault: Fault, calls: usize) {
        self.shared.faults.lock().fault = (calls > 0).then_some((fault, Some(calls)));
    }

    /// Switches faults off and releases every held call.
    pub fn clear_fault(&self) {
        self.shared.faults.lock().fault = None;
        self.shared.faults.release_all();
    }

    /// Lets every call held by [`Fault::Hold`] go on (to a normal answer).
    pub fn release_held(&self) {
        self.shared.faults.release_all();
    }

    /// How many calls are held now.
    pub fn held_calls(&self) -> usize {
        *self.shared.faults.held.borrow()
    }

    /// Waits until at least `calls` calls are held: the signal that they reached the sandbox.
    /// Callers bound the wait with their own timeout.
    pub async fn wait_until_held(&self, calls: usize) {
        let mut held = self.shared.faults.held.subscribe();
        // The sender lives as long as the sandbox, which `self` keeps alive.
        let _ = held.wait_for(|n| *n >= calls).await;
    }

    /// Every `/services/data` call received, in order, faulted ones included.
    pub fn api_calls(&self) -> Vec<ApiCall> {
        self.shared.faults.lock().calls.clone()
    }

    /// The daily API allocation reported in `Sforce-Limit-Info`; past it every call is throttled.
    pub fn set_api_limit(&self, limit: u64) {
        self.shared.faults.lock().limit = limit;
    }
}
