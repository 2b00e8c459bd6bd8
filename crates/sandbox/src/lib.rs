//! A local stand-in for a Salesforce org, for the demo and the integration tests. **It is not
//! Salesforce**: every response carries `X-Sandbox: fhir-salesforce-proxy sandbox - not
//! Salesforce`, and `GET /` says so in plain text.
//!
//! It serves what the proxy calls (see `salesforce-api.md`), under
//! `/services/data/vNN.N/connect/health/appointment-management` (`…` below; NN.N ≥ 65.0):
//! - `POST /services/oauth2/token`: the client-credentials grant (§3.3) and, when
//!   [`SandboxSettings::jwt_bearer`] is set, the JWT bearer grant (§3.2: RS256 verified against the
//!   configured public key; `iss` = the client id, `aud`, `exp` not past and at most 3 minutes
//!   ahead, `sub` = the configured username; refusals with Salesforce's codes and descriptions),
//!   answering like Salesforce: no `expires_in`, `instance_url` pointing back at the sandbox.
//! - `POST …/appointment`: Book Appointment (§1), checking the documented rules strictly (module
//!   `booking`), answering 201 `{"id":"08p…","isSuccess":true,"status":"Scheduled","error":[]}`,
//!   or 200 `isSuccess:false`, `status` `Rejected`, when a slot is already taken (the other
//!   documented output shape).
//! - `PUT …/appointment/{id}`: Update Appointment (§2.1): Book's rules plus `id`, equal to the
//!   URL's, and a required `endDate`; answering 200 with the Action page's one-element array
//!   `[{"id","isSuccess":true,"status":"Scheduled","errorMessages":[]}]`, so a proxy meets both
//!   output shapes; 200 `isSuccess:false` (an object) for a cancelled appointment or a slot held by
//!   another one. Slots the appointment no longer lists are freed.
//! - `PATCH …/appointment/{id}`: Cancel Appointment (§2.2), `{"id","status","cancellationReason"?,
//!   "comment"?}` with `status` exactly one of [`SandboxSettings::cancel_statuses`] (else 400
//!   `INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST`); answering 200
//!   `{"id","isSuccess":true,"status":"<as sent>","errorMessages":[]}` and freeing the slots, or
//!   200 `isSuccess:false` when already cancelled.
//! - `POST …/slots`: Get Slots (§2.3): free 30-minute slots, 09:00–17:00 UTC, for each resource
//!   asked for, minus booked ones (module `slots`), under `resourceSlotDetails` or
//!   `resourceSlots` ([`SandboxSettings::slots_key`]).
//! - `GET /services/data/vNN.N/sobjects/{Object}/{Field}/{value}`: sObject Rows by External ID
//!   (§4.5) from [`SandboxSettings::external_ids`]: 200, 404 or 300 (module `sobjects`), counted
//!   by [`Sandbox::lookup_requests`].
//! - `GET /services/data/vNN.N/query?q=SOQL` and `GET …/query/{locator}`: SOQL over the
//!   ServiceAppointment records of what it booked, with their CarePractnFacilityAppt junctions
//!   (modules `records`, `soql`, `query`), paged with `nextRecordsUrl`; `GET` and `PATCH
//!   /services/data/vNN.N/sobjects/ServiceAppointment/{id}` read and change one record as a
//!   Salesforce user would ([`Sandbox::edit_appointment`] does the same for tests).
//!
//! Every `/services/data` call answers 401 `INVALID_SESSION_ID` for a missing, unknown or expired
//! token, then 404 `NOT_FOUND` for a version before 65.0, then 400 with a platform error array for
//! a body that breaks a rule. Update and Cancel answer 404 `NOT_FOUND` for an id the sandbox did not
//! book. Everything else is 404 `NOT_FOUND`. State lives in memory only; tests read it back through
//! [`Sandbox::bookings`], [`Sandbox::appointment`], [`Sandbox::cancellations`] and
//! [`Sandbox::token_requests`].
//!
//! Every `/services/data` answer carries `Sforce-Limit-Info: api-usage=N/LIMIT`, N counting the
//! calls received. Tests can switch on faults (throttling, 500s, held calls, dropped connections)
//! with [`Sandbox::set_fault`]; see module `faults`.

mod booking;
mod cancel;
pub mod faults;
pub mod id;
mod oauth;
mod platform;
mod query;
mod records;
mod settings;
mod slots;
mod sobjects;
mod soql;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix_web::dev::{Server, ServerHandle};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use self::booking::Action;
pub use self::faults::{ApiCall, Fault};
use self::records::Record;
pub use self::settings::{SandboxJwtBearer, SandboxSettings, SlotsKey};
pub use self::sobjects::ExternalIdRecords;
use crate::id::case_safe;
use crate::platform::PlatformError;

/// The production login URL, the JWT bearer grant's default audience.
pub const DEFAULT_AUDIENCE: &str = "https://login.salesforce.com";

/// The client id a default sandbox accepts.
pub const DEFAULT_CLIENT_ID: &str = "sandbox-client";
/// The client secret a default sandbox accepts. Not a secret: the sandbox is local and fake.
pub const DEFAULT_CLIENT_SECRET: &str = "sandbox-secret";

/// The header on every sandbox response, so nobody mistakes it for a real org.
const SANDBOX_HEADER: &str = "X-Sandbox";
const SANDBOX_LABEL: &str = "fhir-salesforce-proxy sandbox - not Salesforce";
const TOKEN_PATH: &str = "/services/oauth2/token";
const BOOK_PATH: &str =
    "/services/data/{version}/connect/health/appointment-management/appointment";
/// Update (PUT) and Cancel (PATCH) share this path and tell each other apart by method.
const APPOINTMENT_PATH: &str =
    "/services/data/{version}/connect/health/appointment-management/appointment/{id}";
const SLOTS_PATH: &str = "/services/data/{version}/connect/health/appointment-management/slots";
/// The status of a booked or updated appointment; the output samples spell it so (or lower-case).
const SCHEDULED: &str = "Scheduled";
/// Fake org and user ids, spelled so they read as sandbox ids (18 characters, like real ones).
const ORG_ID: &str = "00DSANDBOX00000000";
const USER_ID: &str = "005SANDBOX00000000";
/// "This action is available in API version 65.0 and later." (§1.1)
const FIRST_VERSION: u32 = 65;
const INDEX_TEXT: &str = "fhir-salesforce-proxy sandbox\n\
\n\
This is NOT Salesforce. It is a local stand-in for a Salesforce Health Cloud org, for demos and\n\
tests of fhir-salesforce-proxy. Nothing booked here reaches a real org; everything is kept in\n\
memory and forgotten when it stops.\n\
\n\
POST  /services/oauth2/token  (grant_type=client_credentials)\n\
\n\
Under /services/data/vNN.N/connect/health/appointment-management (NN.N >= 65.0), with a token:\n\
POST  .../appointment       Book Appointment\n\
PUT   .../appointment/{id}  Update Appointment\n\
PATCH .../appointment/{id}  Cancel Appointment\n\
POST  .../slots             Get Slots (30-minute slots, 09:00-17:00 UTC)\n\
\n\
Under /services/data/vNN.N, with a token:\n\
GET   /query?q=SOQL                          ServiceAppointment records (a subset of SOQL)\n\
GET   /query/{locator}                       the next batch of a query\n\
GET   /sobjects/ServiceAppointment/{id}      one record\n\
PATCH /sobjects/ServiceAppointment/{id}      change it, as a Salesforce user would\n";

/// One appointment the sandbox booked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    /// The minted 18-character `08p…` id that was answered.
    pub id: String,
    /// The request body as received.
    pub request: Value,
}

/// An appointment as the sandbox holds it now, after any Update or Cancel (a [`Booking`] stays as
/// it was booked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAppointment {
    /// The 18-character `08p…` id minted when it was booked.
    pub id: String,
    /// The body of the last Book or Update that succeeded on it.
    pub request: Value,
    /// `Scheduled`, or the cancellation status it was cancelled with.
    pub status: String,
    /// Whether it was cancelled; then it can be neither updated nor cancelled again.
    pub cancelled: bool,
    /// The Cancel body that cancelled it.
    pub cancellation: Option<Value>,
}

/// A running sandbox, serving on a listener it was given.
///
/// Dropping it asks the server to stop; [`Sandbox::stop`] also waits until it has.
pub struct Sandbox {
    base_url: String,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<io::Result<()>>,
    shared: web::Data<Shared>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Binds nothing itself: serves on the given listener, spawned on the current tokio runtime.
    ///
    /// # Errors
    /// When the listener's address cannot be read, the server cannot use it, there is no
    /// current tokio runtime, or the JWT bearer public key cannot be read.
    pub fn start(listener: TcpListener, settings: SandboxSettings) -> io::Result<Sandbox> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            io::Error::other("Sandbox::start must be called inside a tokio runtime")
        })?;
        check_settings(&settings)?;
        let base_url = base_url_of(listener.local_addr()?);
        let shared = web::Data::new(Shared::new(settings, base_url.clone()));
        // One worker is plenty for tests, and tests start many sandboxes at once; signals stay
        // with the embedding program.
        let server = build_server(listener, shared.clone(), 1, true)?;
        let handle = server.handle();
        let task = runtime.spawn(server);
        Ok(Sandbox {
            base_url,
            handle,
            task,
            shared,
        })
    }

    /// `http://127.0.0.1:PORT` (the bound address, with an unspecified IP read as loopback).
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// [`Self::base_url`] + `/services/oauth2/token`.
    pub fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.base_url)
    }

    /// What was booked, in order.
    pub fn bookings(&self) -> Vec<Booking> {
        self.shared.lock().bookings.clone()
    }

    /// The appointment with this id (18 characters, or its 15-character form) as it is now.
    pub fn appointment(&self, id: &str) -> Option<StoredAppointment> {
        let state = self.shared.lock();
        state
            .find(id)
            .map(|index| state.appointments[index].clone())
    }

    /// The ids of the appointments cancelled, in the order they were cancelled.
    pub fn cancellations(&self) -> Vec<String> {
        self.shared.lock().cancellations.clone()
    }

    /// How many token requests were answered, refused ones included.
    pub fn token_requests(&self) -> usize {
        self.shared.lock().token_requests
    }

    /// Forgets every issued token, as if all sessions had timed out: the next API call gets 401
    /// `INVALID_SESSION_ID`, which exercises the proxy's re-authenticate-and-retry path.
    pub fn expire_tokens(&self) {
        self.shared.lock().tokens.clear();
    }

    /// Stops the server (letting in-flight requests finish) and waits until it has.
    pub async fn stop(mut self) {
        self.handle.stop(true).await;
        // The server's own result carries nothing a test could act on after a stop.
        let _ = (&mut self.task).await;
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // The command is sent on call; the returned future only waits for completion, which a
        // synchronous drop cannot do.
        drop(self.handle.stop(false));
    }
}

/// For the CLI `sandbox --listen ADDR`: runs until the server stops.
///
/// # Errors
/// When the listener cannot be used or the server fails.
pub async fn run(listener: TcpListener, settings: SandboxSettings) -> io::Result<()> {
    check_settings(&settings)?;
    let base_url = base_url_of(listener.local_addr()?);
    tracing::info!(%base_url, "sandbox (not Salesforce) listening");
    let shared = web::Data::new(Shared::new(settings, base_url));
    // Ctrl-C / SIGTERM stop it gracefully: this is the whole program.
    build_server(listener, shared, 2, false)?.await
}

/// Refuses settings the token endpoint could not work with.
fn check_settings(settings: &SandboxSettings) -> io::Result<()> {
    match &settings.jwt_bearer {
        Some(jwt) if !oauth::usable_public_key(&jwt.public_key_pem) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "jwt_bearer.public_key_pem is not a PEM RSA public key",
        )),
        _ => Ok(()),
    }
}

/// The listener's address as a URL a client on this machine can use.
fn base_url_of(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

fn build_server(
    listener: TcpListener,
    shared: web::Data<Shared>,
    workers: usize,
    embedded: bool,
) -> io::Result<Server> {
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .wrap(DefaultHeaders::new().add((SANDBOX_HEADER, SANDBOX_LABEL)))
            .wrap(actix_web::middleware::from_fn(faults::apply))
            .route("/", web::get().to(index))
            .route(TOKEN_PATH, web::post().to(token))
            .route(BOOK_PATH, web::post().to(book))
            .route(APPOINTMENT_PATH, web::put().to(update))
            .route(APPOINTMENT_PATH, web::patch().to(cancel))
            .route(SLOTS_PATH, web::post().to(get_slots))
            .route(query::QUERY_PATH, web::get().to(query::query))
            .route(
                &format!("{}/", query::QUERY_PATH),
                web::get().to(query::query),
            )
            .route(query::QUERY_MORE_PATH, web::get().to(query::query_more))
            .route(query::RECORD_PATH, web::get().to(query::get_record))
            .route(query::RECORD_PATH, web::patch().to(query::patch_record))
            .route(
                sobjects::SOBJECT_BY_EXTERNAL_ID_PATH,
                web::get().to(sobjects::get_by_external_id),
            )
            .default_service(web::to(not_found))
    })
    .workers(workers);
    if embedded {
        // Idle keep-alive connections from a test's client pool must not hold up `stop`.
        server = server.disable_signals().shutdown_timeout(1);
    }
    Ok(server.listen(listener)?.run())
}

/// State shared by all workers.
struct Shared {
    settings: SandboxSettings,
    /// Used for `instance_url` when a request has no usable `Host` header.
    bound_base_url: String,
    token_serial: AtomicU64,
    state: Mutex<State>,
    /// Faults switched on by tests, and the count of API calls.
    faults: faults::Faults,
    /// sObject-by-external-id requests received.
    lookup_requests: AtomicUsize,
    /// Query and query-more requests received.
    query_requests: AtomicUsize,
}

#[derive(Default)]
struct State {
    /// Issued token → when it stops being accepted (`None`: a lifetime too long to represent).
    tokens: HashMap<String, Option<Instant>>,
    token_requests: usize,
    bookings: Vec<Booking>,
    /// Every appointment booked, as it is now, in booking order (the order of `bookings`).
    appointments: Vec<StoredAppointment>,
    /// Slot id → index in `appointments` of the live appointment holding it. Another booking of
    /// the slot is rejected; cancelling or moving the appointment frees it.
    taken_slots: HashMap<String, usize>,
    /// Ids cancelled, in order.
    cancellations: Vec<String>,
    /// The ServiceAppointment records of `appointments`, index for index.
    records: Vec<Record>,
    /// SOQL statements received, in order.
    queries: Vec<String>,
    /// Rows of open queries not yet answered.
    cursors: query::Cursors,
}

impl State {
    /// The index of the appointment `id` names: its 18-character id exactly, or its 15-character
    /// case-sensitive form, since Salesforce takes either in a URL.
    fn find(&self, id: &str) -> Option<usize> {
        self.appointments
            .iter()
            .position(|a| a.id == id || (id.len() == 15 && a.id.starts_with(id)))
    }

    /// Frees every slot the appointment at `index` holds.
    fn release_slots(&mut self, index: usize) {
        self.taken_slots.retain(|_, holder| *holder != index);
    }
}

impl Shared {
    fn new(settings: SandboxSettings, bound_base_url: String) -> Self {
        Shared {
            settings,
            bound_base_url,
            token_serial: AtomicU64::new(0),
            state: Mutex::new(State::default()),
            faults: faults::Faults::default(),
            lookup_requests: AtomicUsize::new(0),
            query_requests: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking handler leaves plain data behind, still fit for tests to read.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(INDEX_TEXT)
}

/// A Salesforce platform error body: `[{"message","errorCode"}]`.
fn platform_error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json([PlatformError {
        message: message.to_owned(),
        error_code: code.to_owned(),
        fields: Vec::new(),
    }])
}

fn resource_not_found() -> HttpResponse {
    platform_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

async fn not_found() -> HttpResponse {
    resource_not_found()
}

/// Update or Cancel of an id the sandbox never booked: Salesforce's wording, plus the id.
fn appointment_not_found(id: &str) -> HttpResponse {
    platform_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        &format!("The requested resource does not exist: no appointment has id {id}"),
    )
}

/// The documented `isSuccess:false` output: a 200 object with `errorMessages` (not `error`), so a
/// proxy that trusts the HTTP status alone books nothing and says it did.
fn not_successful(id: Option<&str>, status: &str, message: String) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "id": id,
        "isSuccess": false,
        "status": status,
        "errorMessages": [message],
    }))
}

fn header_str(req: &HttpRequest, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The URL this request reached the sandbox at, so `instance_url` works for the client whichever
/// name it used (`localhost`, a container name…); the bound address when `Host` is unusable.
fn request_base_url(req: &HttpRequest, shared: &Shared) -> String {
    header_str(req, header::HOST)
        .filter(|host| {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b))
        })
        .map_or_else(
            || shared.bound_base_url.clone(),
            |host| format!("http://{host}"),
        )
}

fn millis_since_epoch(now: SystemTime) -> u128 {
    now.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

async fn token(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let checked = oauth::check_token_request(
        header_str(&req, header::CONTENT_TYPE),
        header_str(&req, header::AUTHORIZATION),
        &body,
        &shared.settings,
    );
    // RFC 6749 §5.1: token responses must not be cached.
    let no_store = CacheControl(vec![CacheDirective::NoStore]);
    if let Err(error) = checked {
        shared.lock().token_requests += 1;
        tracing::info!(error = ?error, "sandbox refused a token request");
        return HttpResponse::BadRequest()
            .insert_header(no_store)
            .json(error.body());
    }

    let now = SystemTime::now();
    let serial = shared.token_serial.fetch_add(1, Ordering::Relaxed) + 1;
    let nanos = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let access_token = oauth::mint_access_token(ORG_ID, serial, nanos);
    let base_url = request_base_url(&req, &shared);
    let identity_url = format!("{base_url}/id/{ORG_ID}/{USER_ID}");
    let issued_at = millis_since_epoch(now).to_string();
    let signature = oauth::signature(
        shared.settings.client_secret.expose_secret(),
        &identity_url,
        &issued_at,
    );
    {
        let mut state = shared.lock();
        state.token_requests += 1;
        let instant = Instant::now();
        // Forget dead tokens as new ones come, so a long demo does not grow without bound.
        state
            .tokens
            .retain(|_, expiry| expiry.is_none_or(|e| e > instant));
        let expiry = instant.checked_add(shared.settings.token_lifetime);
        state.tokens.insert(access_token.clone(), expiry);
    }
    HttpResponse::Ok()
        .insert_header(no_store)
        // The OAuth 2.0 Client Credentials Flow page's response: no `expires_in`.
        .json(json!({
            "access_token": access_token,
            "signature": signature,
            "scope": "api",
            "instance_url": base_url,
            "id": identity_url,
            "token_type": "Bearer",
            "issued_at": issued_at,
        }))
}

/// Whether the request carries a live token (`Bearer` or Salesforce's older `OAuth` scheme).
fn authorised(req: &HttpRequest, shared: &Shared) -> bool {
    let Some((scheme, token)) =
        header_str(req, header::AUTHORIZATION).and_then(|v| v.trim().split_once(' '))
    else {
        return false;
    };
    if !(scheme.eq_ignore_ascii_case("Bearer") || scheme.eq_ignore_ascii_case("OAuth")) {
        return false;
    }
    let token = token.trim();
    let mut state = shared.lock();
    match state.tokens.get(token) {
        None => false,
        Some(expiry) if expiry.is_none_or(|e| Instant::now() < e) => true,
        Some(_) => {
            state.tokens.remove(token);
            false
        }
    }
}

/// `vNN.N` with NN.N ≥ 65.0, the first version with this resource.
fn supported_version(version: &str) -> bool {
    let Some((major, minor)) = version
        .strip_prefix('v')
        .and_then(|rest| rest.split_once('.'))
    else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (2..=3).contains(&major.len())
        && digits(major)
        && minor.len() == 1
        && digits(minor)
        && major.parse::<u32>().is_ok_and(|m| m >= FIRST_VERSION)
}

/// What every `/services/data` resource checks before reading a body; `Some` is the answer.
fn refuse_call(req: &HttpRequest, version: &str, shared: &Shared) -> Option<HttpResponse> {
    // Salesforce authenticates before it routes a versioned resource, so a bad token wins.
    if !authorised(req, shared) {
        return Some(platform_error(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        ));
    }
    if !supported_version(version) {
        return Some(resource_not_found());
    }
    None
}

async fn book(
    req: HttpRequest,
    version: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    if let Some(refusal) = refuse_call(&req, &version, &shared) {
        return refusal;
    }
    let valid = match booking::validate(&body, Action::Book) {
        Ok(valid) => valid,
        Err(errors) => return HttpResponse::BadRequest().json(errors),
    };

    let mut state = shared.lock();
    if let Some(taken) = valid
        .slot_ids
        .iter()
        .find(|id| state.taken_slots.contains_key(*id))
    {
        return not_successful(
            None,
            "Rejected",
            format!("Slot {taken} is no longer available"),
        );
    }
    let id = mint_appointment_id(state.bookings.len() as u64 + 1);
    let index = state.appointments.len();
    for slot in valid.slot_ids {
        state.taken_slots.insert(slot, index);
    }
    state.bookings.push(Booking {
        id: id.clone(),
        request: valid.request.clone(),
    });
    let serial = state.records.len() + 1;
    state.records.push(Record::booked(
        &id,
        serial,
        &valid.request,
        chrono::Utc::now(),
    ));
    state.appointments.push(StoredAppointment {
        id: id.clone(),
        request: valid.request,
        status: SCHEDULED.to_owned(),
        cancelled: false,
        cancellation: None,
    });
    drop(state);
    tracing::info!(%id, "sandbox booked an appointment");
    HttpResponse::Created().json(json!({
        "id": id,
        "isSuccess": true,
        "status": SCHEDULED,
        "error": [],
    }))
}

/// Update Appointment: `PUT …/appointment/{id}`.
async fn update(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let (version, url_id) = path.into_inner();
    if let Some(refusal) = refuse_call(&req, &version, &shared) {
        return refusal;
    }
    let valid = match booking::validate(&body, Action::Update { url_id: &url_id }) {
        Ok(valid) => valid,
        Err(errors) => return HttpResponse::BadRequest().json(errors),
    };

    let mut guard = shared.lock();
    let state = &mut *guard;
    let Some(index) = state.find(&url_id) else {
        return appointment_not_found(&url_id);
    };
    let current = &state.appointments[index];
    let id = current.id.clone();
    if current.cancelled {
        return not_successful(
            Some(&id),
            &current.status,
            format!(
                "Appointment {id} is cancelled ({}) and cannot be updated",
                current.status
            ),
        );
    }
    // Its own slots it may keep; one held by another appointment is not available. On refusal
    // nothing changes: the appointment keeps its time and its slots.
    if let Some(taken) = valid.slot_ids.iter().find(|slot| {
        state
            .taken_slots
            .get(*slot)
            .is_some_and(|holder| *holder != index)
    }) {
        return not_successful(
            Some(&id),
            "Rejected",
            format!("Slot {taken} is no longer available"),
        );
    }
    state.release_slots(index);
    for slot in valid.slot_ids {
        state.taken_slots.insert(slot, index);
    }
    state.records[index].apply_request(&valid.request, chrono::Utc::now());
    let appointment = &mut state.appointments[index];
    appointment.request = valid.request;
    appointment.status = SCHEDULED.to_owned();
    drop(guard);
    tracing::info!(%id, "sandbox updated an appointment");
    // The Update Action page's sample shape: a one-element array, `errorMessages`.
    HttpResponse::Ok().json(json!([{
        "id": id,
        "isSuccess": true,
        "status": SCHEDULED,
        "errorMessages": [],
    }]))
}

/// Cancel Appointment: `PATCH …/appointment/{id}`.
async fn cancel(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let (version, url_id) = path.into_inner();
    if let Some(refusal) = refuse_call(&req, &version, &shared) {
        return refusal;
    }
    let valid = match cancel::validate(&body, &url_id, &shared.settings.cancel_statuses) {
        Ok(valid) => valid,
        Err(errors) => return HttpResponse::BadRequest().json(errors),
    };

    let mut guard = shared.lock();
    let state = &mut *guard;
    let Some(index) = state.find(&url_id) else {
        return appointment_not_found(&url_id);
    };
    let appointment = &mut state.appointments[index];
    let id = appointment.id.clone();
    if appointment.cancelled {
        return not_successful(
            Some(&id),
            &appointment.status,
            format!(
                "Appointment {id} is already cancelled ({})",
                appointment.status
            ),
        );
    }
    appointment.status.clone_from(&valid.status);
    appointment.cancelled = true;
    let reason = valid
        .request
        .get("cancellationReason")
        .and_then(Value::as_str)
        .map(str::to_owned);
    appointment.cancellation = Some(valid.request);
    state.records[index].cancel(&valid.status, reason.as_deref(), chrono::Utc::now());
    state.release_slots(index);
    state.cancellations.push(id.clone());
    drop(guard);
    tracing::info!(%id, "sandbox cancelled an appointment");
    // The Cancel Action page's sample shape: an object with `errorMessages`.
    HttpResponse::Ok().json(json!({
        "id": id,
        "isSuccess": true,
        "status": valid.status,
        "errorMessages": [],
    }))
}

/// Get Slots: `POST …/slots`.
async fn get_slots(
    req: HttpRequest,
    version: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    if let Some(refusal) = refuse_call(&req, &version, &shared) {
        return refusal;
    }
    let query = match slots::validate(&body) {
        Ok(query) => query,
        Err(errors) => return HttpResponse::BadRequest().json(errors),
    };
    let details = {
        let state = shared.lock();
        slots::available(&query, |slot| state.taken_slots.contains_key(slot))
    };
    let mut answer = serde_json::Map::new();
    answer.insert(
        shared.settings.slots_key.field_name().to_owned(),
        json!(details),
    );
    HttpResponse::Ok().json(Value::Object(answer))
}

/// The `serial`-th ServiceAppointment id: `08p` (the key prefix in the docs' samples), `SB0`
/// standing for the sandbox's pod, nine base-62 digits, then the case-safe suffix.
fn mint_appointment_id(serial: u64) -> String {
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut record = [b'0'; 9];
    let mut n = serial;
    for slot in record.iter_mut().rev() {
        *slot = DIGITS[(n % 62) as usize];
        n /= 62;
    }
    let id15 = format!("08pSB0{}", String::from_utf8_lossy(&record));
    case_safe(&id15)
}
