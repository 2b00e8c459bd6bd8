//! The store: what must survive a restart and be shared by every replica of the proxy.
//!
//! - **Appointments** booked or changed through the proxy: by Salesforce id, with their business
//!   identifiers (`system|value`, what lets a retried POST be answered with the earlier booking
//!   instead of booking twice) and the FHIR representation last answered (what a JSON Patch is
//!   applied to). Status, start, end, patient and actors are kept in columns of their own (the
//!   patient and start indexed, for searches).
//! - **Identifier claims**: "this identifier is being booked right now", taken before Salesforce
//!   is called and removed once the booking is recorded (or failed). Two requests, on one replica
//!   or on two, given the same identifier at the same moment: one books, the other gets a 409. A
//!   claim left behind by a process that died expires after `store.claim_timeout_secs`.
//! - **SMART access tokens** the proxy issued (by their SHA-256, never the token) and the
//!   client-assertion ids (`jti`) already used, so any replica accepts a token another issued and
//!   refuses an assertion another saw.
//!
//! Two engines behind this one interface: [SQLite](sqlite) embedded (the default: one file, nothing
//! to install or start) and [PostgreSQL](postgres) for several replicas. Both run the versioned
//! schema embedded in the binary (`migrations/`) when they open, and neither blocks an actix worker:
//! SQLite works on threads of its own, PostgreSQL through an async connection pool.
//!
//! Writes are durable before they are answered: SQLite commits with a synced write-ahead log,
//! and concurrent writes share one commit (group commit, so durability costs one sync per batch,
//! not per booking); PostgreSQL commits synchronously and groups concurrent commits itself.
//!
//! Errors never carry patient data, a token or a password: only what failed and the engine's
//! reason.

mod legacy;
mod postgres;
pub mod settings;
mod sqlite;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::metrics::StoreMetrics;
use settings::{StoreEngine, StoreSettings};

pub use legacy::ImportReport;

/// An appointment as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAppointment {
    /// The Salesforce record id (also the FHIR id).
    pub id: String,
    /// The FHIR Appointment as last answered, in FHIR JSON.
    pub resource: String,
    /// When it was last booked or changed through the proxy.
    pub updated: DateTime<Utc>,
}

/// What is written for an appointment: the record and the values searches and retention need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppointmentRecord {
    /// The Salesforce record id.
    pub id: String,
    /// Its business identifiers as `system|value` (replacing those recorded before).
    pub identifiers: Vec<String>,
    /// The FHIR Appointment in FHIR JSON.
    pub resource: String,
    /// `Appointment.status`.
    pub status: Option<String>,
    /// `Appointment.start`.
    pub start: Option<DateTime<Utc>>,
    /// `Appointment.end`.
    pub end: Option<DateTime<Utc>>,
    /// The patient participant's reference (`Patient/123`).
    pub patient: Option<String>,
    /// Every participant's reference.
    pub actors: Vec<String>,
    /// When it was booked or changed.
    pub updated: DateTime<Utc>,
}

impl AppointmentRecord {
    /// The participants' references as the JSON array the `actors` column keeps.
    fn actors_json(&self) -> String {
        serde_json::to_string(&self.actors).unwrap_or_else(|_| "[]".to_owned())
    }

    /// When retention may delete it: the later of its end and its last change.
    fn keep_until(&self) -> DateTime<Utc> {
        self.end.map_or(self.updated, |end| end.max(self.updated))
    }
}

/// Why the store failed: which operation, and the engine's reason (never a value, a token or a
/// password). Clones share the text (a failed group commit fails every write in it).
#[derive(Clone, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(Arc<str>);

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreError({})", self.0)
    }
}

impl StoreError {
    fn new(text: impl Into<String>) -> StoreError {
        StoreError(Arc::from(text.into()))
    }

    /// The store's own threads or pool are gone (the process is stopping).
    fn closed() -> StoreError {
        StoreError::new("the store is closed")
    }

    /// A stored record that no longer reads as what was written.
    pub fn corrupt() -> StoreError {
        StoreError::new("a stored appointment is not a valid Appointment")
    }
}

/// What a claim on identifiers found.
#[derive(Debug)]
pub enum ClaimOutcome {
    /// The identifiers are this request's to book; dropping the claim without recording releases
    /// them.
    Claimed(Claim),
    /// Appointments with these identifiers are booked already (by id).
    Booked(Vec<StoredAppointment>),
    /// Another request (on this replica or another) is booking one of them right now.
    Busy {
        /// When the other claim expires at the latest, should its process have died.
        expires_in: Duration,
    },
}

/// Identifiers claimed for one booking. Released when dropped, unless the booking was recorded
/// ([`TenantStore::record`]) or the claim is [kept](Claim::keep).
pub struct Claim {
    store: Option<TenantStore>,
    owner: String,
    keys: Vec<String>,
}

impl fmt::Debug for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claim").field("owner", &self.owner).finish()
    }
}

impl Claim {
    /// Leaves the claim in the store until it expires: for a booking that Salesforce made but the
    /// store could not record, so that a retry meanwhile is refused rather than booked again.
    pub fn keep(mut self) {
        self.store = None;
    }

    /// Releases the claim now (a booking that definitely failed), done when this returns.
    ///
    /// # Errors
    /// When the store fails; the claim then expires.
    pub async fn release(self) -> Result<(), StoreError> {
        let store = self.store.clone();
        match (store, self.take()) {
            (Some(store), Some(held)) => store.release(held).await,
            _ => Ok(()),
        }
    }

    fn take(mut self) -> Option<Held> {
        self.store.take().map(|_| Held {
            owner: std::mem::take(&mut self.owner),
            keys: std::mem::take(&mut self.keys),
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            store.release_detached(Held {
                owner: std::mem::take(&mut self.owner),
                keys: std::mem::take(&mut self.keys),
            });
        }
    }
}

/// The rows of a claim: its identifiers, and the owner they are held by (a release deletes only
/// rows it still owns: an expired claim may have been taken over).
#[derive(Debug, Clone)]
struct Held {
    owner: String,
    keys: Vec<String>,
}

/// What a purge deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PurgeReport {
    /// Appointment records past the retention period.
    pub appointments: u64,
    /// Expired claims, tokens and assertion ids.
    pub expired: u64,
}

/// An access token the proxy issued, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The client it was issued to.
    pub client_id: String,
    /// The scopes granted, space-separated.
    pub scopes: String,
    /// When it expires.
    pub expires: DateTime<Utc>,
}

/// The operations the store times and counts, as the `operation` label names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Appointments by business identifier.
    Find,
    /// An appointment by id.
    Get,
    /// Claiming identifiers for a booking.
    Claim,
    /// Recording an appointment.
    Record,
    /// Releasing a claim.
    Release,
    /// Recording an issued token.
    IssueToken,
    /// Looking up an issued token.
    FindToken,
    /// Recording a client-assertion id.
    Assertion,
    /// Deleting expired rows and records past retention.
    Purge,
    /// Importing a JSON-lines file of the earlier file store.
    Import,
    /// Checking that the store answers.
    Ping,
}

impl Operation {
    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Find => "find",
            Operation::Get => "get",
            Operation::Claim => "claim",
            Operation::Record => "record",
            Operation::Release => "release",
            Operation::IssueToken => "issue_token",
            Operation::FindToken => "find_token",
            Operation::Assertion => "assertion",
            Operation::Purge => "purge",
            Operation::Import => "import",
            Operation::Ping => "ping",
        }
    }
}

enum Engine {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Postgres),
}

struct Inner {
    engine: Engine,
    description: String,
    claim_timeout: Duration,
    metrics: StoreMetrics,
}

/// The store of a running proxy, shared by every tenant (each [`TenantStore`] sees only its own
/// rows). Clones share the engine.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("engine", &self.inner.description)
            .finish()
    }
}

/// Dispatches one operation to the engine, timing it and counting its failures.
macro_rules! on_engine {
    ($store:expr, $op:expr, |$engine:ident| $body:expr) => {{
        let store: &Store = $store;
        let started = Instant::now();
        let result = match &store.inner.engine {
            Engine::Sqlite($engine) => $body.await,
            Engine::Postgres($engine) => $body.await,
        };
        store
            .inner
            .metrics
            .observe($op.name(), started.elapsed(), result.is_ok());
        if let Err(error) = &result {
            tracing::warn!(operation = $op.name(), %error, "store operation failed");
        }
        result
    }};
}

impl Store {
    /// Opens the configured store: creates the SQLite file (mode 0600) or connects to
    /// PostgreSQL, brings the schema up to date, and imports any JSON-lines file of the earlier
    /// file store not imported yet.
    ///
    /// # Errors
    /// When the store cannot be opened or migrated, naming the store (never a password) and the
    /// reason.
    pub async fn open(settings: &StoreSettings) -> Result<Store, StoreError> {
        let store = match &settings.engine {
            StoreEngine::Sqlite { path } => Store::open_sqlite(path, settings.claim_timeout)?,
            StoreEngine::Postgres(pg) => {
                let description = format!("PostgreSQL {}", postgres::describe(&pg.url));
                let engine = postgres::Postgres::open(pg)
                    .await
                    .map_err(|e| StoreError::new(format!("{description}: {e}")))?;
                Store::with_engine(
                    Engine::Postgres(engine),
                    description,
                    settings.claim_timeout,
                )
            }
        };
        for import in &settings.imports {
            let tenant = store.tenant(import.tenant.as_deref());
            if !import.file.exists() {
                if import.explicit {
                    return Err(StoreError::new(format!(
                        "{}: the file to import does not exist",
                        import.file.display()
                    )));
                }
                continue;
            }
            let report = tenant.import_legacy(&import.file).await?;
            report.log(import.tenant.as_deref());
        }
        Ok(store)
    }

    /// A SQLite store at `path` with default settings and nothing to import (the demo, tests,
    /// benchmarks). Opening SQLite waits for nothing but the file, so this is not async.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn sqlite(path: &Path) -> Result<Store, StoreError> {
        Store::open_sqlite(path, StoreSettings::sqlite(path.to_owned()).claim_timeout)
    }

    fn open_sqlite(path: &Path, claim_timeout: Duration) -> Result<Store, StoreError> {
        let description = format!("SQLite {}", path.display());
        let engine = sqlite::Sqlite::open(path)
            .map_err(|e| StoreError::new(format!("{description}: {e}")))?;
        Ok(Store::with_engine(
            Engine::Sqlite(engine),
            description,
            claim_timeout,
        ))
    }

    fn with_engine(engine: Engine, description: String, claim_timeout: Duration) -> Store {
        Store {
            inner: Arc::new(Inner {
                engine,
                description,
                claim_timeout,
                metrics: StoreMetrics::new(),
            }),
        }
    }

    /// Which store this is, for logs, `/readyz` and errors: the engine and where (never a
    /// password).
    pub fn description(&self) -> &str {
        &self.inner.description
    }

    /// `sqlite` or `postgresql`.
    pub fn engine_name(&self) -> &'static str {
        match self.inner.engine {
            Engine::Sqlite(_) => "sqlite",
            Engine::Postgres(_) => "postgresql",
        }
    }

    /// The latency and error counts of the store's operations.
    pub fn metrics(&self) -> &StoreMetrics {
        &self.inner.metrics
    }

    /// The rows of one tenant (`None`: the one at the FHIR base).
    pub fn tenant(&self, name: Option<&str>) -> TenantStore {
        TenantStore {
            store: self.clone(),
            tenant: Arc::from(name.unwrap_or_default()),
        }
    }

    /// Whether the store answers now.
    ///
    /// # Errors
    /// Why not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_engine!(self, Operation::Ping, |e| e.ping())
    }

    /// Deletes expired claims, tokens and assertion ids, and (with a retention period)
    /// appointment records whose end and last change are both older than that.
    ///
    /// # Errors
    /// When the store fails; what was deleted before stays deleted.
    pub async fn purge(&self, retention: Option<Duration>) -> Result<PurgeReport, StoreError> {
        let now = Utc::now();
        let cutoff = retention
            .and_then(|r| chrono::Duration::from_std(r).ok())
            .map(|r| now - r);
        on_engine!(self, Operation::Purge, |e| e.purge(now, cutoff))
    }

    /// Runs [`Store::purge`] now and then every `interval`, in the background, for as long as
    /// the returned task is not aborted.
    pub fn spawn_purge(
        &self,
        retention: Option<Duration>,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match store.purge(retention).await {
                    Ok(report) if report.appointments > 0 => tracing::info!(
                        appointments = report.appointments,
                        expired = report.expired,
                        "store purged: appointment records past the retention period deleted"
                    ),
                    Ok(report) => {
                        tracing::debug!(expired = report.expired, "store purged");
                    }
                    // Logged by the operation itself; the next tick tries again.
                    Err(_) => {}
                }
            }
        })
    }

    /// Records an access token the proxy issued, by its SHA-256.
    ///
    /// # Errors
    /// When the store fails (the token must then not be handed out).
    pub async fn insert_token(
        &self,
        token_sha256: &str,
        token: &TokenRecord,
    ) -> Result<(), StoreError> {
        on_engine!(self, Operation::IssueToken, |e| e
            .insert_token(token_sha256, token))
    }

    /// The unexpired token with this SHA-256, if the proxy (any replica) issued it.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn find_token(&self, token_sha256: &str) -> Result<Option<TokenRecord>, StoreError> {
        on_engine!(self, Operation::FindToken, |e| e
            .find_token(token_sha256, Utc::now()))
    }

    /// Records that a client used an assertion id, until `expires`; `false` when it had been
    /// recorded before (a replay).
    ///
    /// # Errors
    /// When the store fails.
    pub async fn remember_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        on_engine!(self, Operation::Assertion, |e| e
            .remember_assertion(client_id, jti, expires))
    }
}

/// One tenant's appointments and claims. Clones share the store.
#[derive(Clone)]
pub struct TenantStore {
    store: Store,
    tenant: Arc<str>,
}

impl fmt::Debug for TenantStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantStore")
            .field("tenant", &self.tenant)
            .finish()
    }
}

impl TenantStore {
    /// The store this tenant's rows are in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Every appointment carrying one of these identifiers, each once, in id order.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn find_by_identifiers(
        &self,
        identifiers: &[String],
    ) -> Result<Vec<StoredAppointment>, StoreError> {
        if identifiers.is_empty() {
            return Ok(Vec::new());
        }
        let keys = distinct(identifiers);
        on_engine!(&self.store, Operation::Find, |e| e
            .find_by_identifiers(&self.tenant, &keys))
    }

    /// The appointment with this Salesforce id.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn get(&self, id: &str) -> Result<Option<StoredAppointment>, StoreError> {
        on_engine!(&self.store, Operation::Get, |e| e.get(&self.tenant, id))
    }

    /// Claims identifiers for a booking about to be sent to Salesforce, unless an appointment
    /// with one of them is recorded already or another request holds one of them. Durable when
    /// it returns: the claim holds across replicas. Without identifiers there is nothing to claim.
    ///
    /// # Errors
    /// When the store fails: then nothing may be booked, since it could not be recorded.
    pub async fn claim(&self, identifiers: &[String]) -> Result<ClaimOutcome, StoreError> {
        let owner = hex::encode(rand::random::<[u8; 16]>());
        if identifiers.is_empty() {
            return Ok(ClaimOutcome::Claimed(Claim {
                store: None,
                owner,
                keys: Vec::new(),
            }));
        }
        let keys = distinct(identifiers);
        let now = Utc::now();
        let expires = now
            + chrono::Duration::from_std(self.store.inner.claim_timeout)
                .unwrap_or(chrono::Duration::MAX);
        let outcome = on_engine!(&self.store, Operation::Claim, |e| e.claim(
            &self.tenant,
            &keys,
            &owner,
            now,
            expires
        ))?;
        Ok(match outcome {
            ClaimResult::Claimed => ClaimOutcome::Claimed(Claim {
                store: Some(self.clone()),
                owner,
                keys,
            }),
            ClaimResult::Booked(found) => ClaimOutcome::Booked(found),
            ClaimResult::Busy(until) => ClaimOutcome::Busy {
                expires_in: (until - now).to_std().unwrap_or(Duration::ZERO),
            },
        })
    }

    /// Records an appointment (replacing what was recorded for its id, identifiers included) and
    /// releases the claim it was booked under, in one durable commit.
    ///
    /// # Errors
    /// When the store fails; the claim is then released (dropped) unless the caller keeps it.
    pub async fn record(
        &self,
        record: &AppointmentRecord,
        claim: Option<Claim>,
    ) -> Result<(), RecordFailure> {
        let held = claim.and_then(Claim::take);
        let result = on_engine!(&self.store, Operation::Record, |e| e.record(
            &self.tenant,
            record,
            held.as_ref()
        ));
        result.map_err(|error| RecordFailure {
            error,
            claim: held.map(|held| Claim {
                store: Some(self.clone()),
                owner: held.owner,
                keys: held.keys,
            }),
        })
    }

    /// Imports a JSON-lines file of the earlier file store into this tenant, unless it was
    /// imported before: records already in the store win over the file's.
    ///
    /// # Errors
    /// When the file cannot be read or holds an unreadable record, or the store fails; then
    /// nothing is imported.
    pub async fn import_legacy(&self, file: &Path) -> Result<ImportReport, StoreError> {
        let source = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_owned());
        let parsed = legacy::read_file(file)?;
        let source = source.display().to_string();
        on_engine!(&self.store, Operation::Import, |e| e.import(
            &self.tenant,
            &source,
            parsed
        ))
    }

    async fn release(&self, held: Held) -> Result<(), StoreError> {
        on_engine!(&self.store, Operation::Release, |e| e
            .release(&self.tenant, &held))
    }

    fn release_detached(&self, held: Held) {
        match &self.store.inner.engine {
            Engine::Sqlite(e) => e.release_detached(&self.tenant, held),
            Engine::Postgres(e) => e.release_detached(&self.tenant, held),
        }
    }
}

/// A failed [`TenantStore::record`]: the error, and the claim the booking was made under (still
/// held), which the caller keeps or drops.
#[derive(Debug)]
pub struct RecordFailure {
    /// Why the record could not be written.
    pub error: StoreError,
    /// The claim, if the booking had one.
    pub claim: Option<Claim>,
}

/// What an engine's claim found (see [`ClaimOutcome`]).
enum ClaimResult {
    Claimed,
    Booked(Vec<StoredAppointment>),
    /// Held by another request until this time.
    Busy(DateTime<Utc>),
}

/// The identifiers in order, each once.
fn distinct(identifiers: &[String]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::with_capacity(identifiers.len());
    for identifier in identifiers {
        if !keys.contains(identifier) {
            keys.push(identifier.clone());
        }
    }
    keys
}

/// Unix milliseconds.
fn millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

/// From Unix milliseconds.
fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests;
