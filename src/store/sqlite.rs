//! The embedded engine: SQLite in one file, in write-ahead-log mode, synced on every commit that
//! records something (see [`Durability`]).
//!
//! SQLite is a blocking library, and actix workers must never block, so the store works on threads
//! of its own and callers await answers over channels:
//! - one **writer** thread owns the only writing connection. It takes every write waiting in its
//!   queue (up to [`MAX_BATCH`]) into one transaction and commits once: concurrent bookings share
//!   one sync of the log (group commit). Each write is answered only after that commit is
//!   durable (or, for a batch of claims alone, written to the log: see [`Durability`]). Writes
//!   almost never fail, so a batch runs without savepoints (which cost a copy of every page a
//!   write touches); when one does fail, the batch is rolled back and run again with
//!   each write in a savepoint of its own, so that the failure undoes that write alone.
//! - [`READERS`] **reader** threads, each with its own connection, answer reads; in WAL mode they
//!   read the last commit while the writer writes the next.
//!
//! The log is copied back into the database file by SQLite's own automatic checkpoint, every
//! 1,000 pages, on the writer.
//!
//! The queues are tokio's channels, received with `blocking_recv`: an idle thread parks at once.
//! (crossbeam's channels, and std's, which are a port of them, yield the CPU a few times before
//! parking: on a busy core each yield is a context switch, about 5 % of a booking's CPU.)

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::oneshot;

use super::{
    AppointmentRecord, ClaimResult, Held, ImportReport, PurgeReport, StoreError, StoredAppointment,
    TokenRecord, from_millis, millis,
};

mod embedded {
    refinery::embed_migrations!("migrations/sqlite");
}

/// Reader threads (and connections).
const READERS: usize = 2;
/// The most writes committed together.
const MAX_BATCH: usize = 256;
/// How long a connection waits for a lock another process holds (another `import-store`, say).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Appointment records deleted per transaction by a purge, so it never holds up bookings long.
const PURGE_CHUNK: usize = 1000;

/// When a write reaches the disk.
///
/// A sync costs a virtual disk tens to hundreds of µs of the process's own CPU, and at a low rate
/// every batch holds one write: a booking's claim and its record would each pay one. A claim is
/// needed only while its booking runs: written to the log (without a sync) it is already seen by
/// every connection and every process on the file, and survives this process dying; the next
/// synced commit, at the latest the booking's own record, puts it on disk. Only a crash of the
/// machine in between loses it, and with it a protection that lasts `claim_timeout_secs` anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// On disk before it is answered: appointments, tokens, assertion ids, purges, imports.
    Synced,
    /// In the log when answered, on disk with the next synced commit: claims and their release.
    WithNextSync,
}

/// One write waiting for the writer.
type WriteJob = Box<dyn Write>;
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// A write: run (perhaps twice, see the module's documentation) inside the batch's transaction,
/// then answered with the commit's outcome.
trait Write: Send {
    /// Runs the write (in a savepoint of its own when `isolated`); whether it succeeded.
    fn run(&mut self, connection: &Connection, isolated: bool) -> bool;
    /// Answers the caller: the write's result if the batch was committed, else why not.
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
    /// When the write must reach the disk.
    fn durability(&self) -> Durability;
}

/// A write of `f`, answered on `answer`.
struct Pending<T, F> {
    f: F,
    durability: Durability,
    result: Option<Result<T, StoreError>>,
    answer: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Write for Pending<T, F>
where
    T: Send,
    F: FnMut(&Connection) -> rusqlite::Result<T> + Send,
{
    fn run(&mut self, connection: &Connection, isolated: bool) -> bool {
        let result = if isolated {
            in_savepoint(connection, &mut self.f)
        } else {
            guarded(|| (self.f)(connection))
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let _ = self.answer.send(match (commit, self.result) {
            (Err(error), _) => Err(error),
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(StoreError::closed()),
        });
    }

    fn durability(&self) -> Durability {
        self.durability
    }
}

/// The SQLite engine: channels to its writer and readers. When the last handle is dropped, the
/// threads finish their queues and close their connections.
pub(super) struct Sqlite {
    writes: UnboundedSender<WriteJob>,
    reads: UnboundedSender<ReadJob>,
}

impl Sqlite {
    /// Opens (or creates, mode 0600) the database file, brings the schema up to date and starts
    /// the threads.
    pub(super) fn open(path: &Path) -> Result<Sqlite, StoreError> {
        create_private(path)?;
        let mut writer = connect(path)?;
        embedded::migrations::runner()
            .set_grouped(true)
            .run(&mut writer)
            .map_err(|e| {
                StoreError::new(format!("the schema cannot be brought up to date: {e}"))
            })?;
        // The writer walks the indexes of every booking: a larger page cache keeps their upper
        // levels in memory (the readers keep SQLite's default 2 MiB each).
        writer
            .execute_batch("PRAGMA cache_size = -8192;")
            .map_err(|e| engine_error(&e))?;
        let (writes, mut queue) = unbounded_channel::<WriteJob>();
        spawn("store-writer", move || write_loop(&writer, &mut queue))?;
        let (reads, queue) = unbounded_channel::<ReadJob>();
        // The readers take turns waiting on the one queue.
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..READERS {
            let connection = connect(path)?;
            let queue = Arc::clone(&queue);
            spawn(&format!("store-reader-{n}"), move || {
                loop {
                    let next = queue
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .blocking_recv();
                    let Some(job) = next else { break };
                    job(&connection);
                }
            })?;
        }
        Ok(Sqlite { writes, reads })
    }

    /// Runs `f` on a reader connection.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, answered) = oneshot::channel();
        let job: ReadJob = Box::new(move |connection| {
            let _ = answer.send(guarded(|| f(connection)));
        });
        self.reads.send(job).map_err(|_| StoreError::closed())?;
        answered.await.map_err(|_| StoreError::closed())?
    }

    /// Runs `f` in the writer's next transaction, answered once that has been committed and
    /// synced.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.write_with(Durability::Synced, f).await
    }

    /// Runs `f` in the writer's next transaction, answered once that has been committed (to the
    /// log; synced with the next synced commit).
    async fn write_with<T: Send + 'static>(
        &self,
        durability: Durability,
        f: impl FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.writes
            .send(write_job(durability, f, answer))
            .map_err(|_| StoreError::closed())?;
        answered.await.map_err(|_| StoreError::closed())?
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(()))).await
    }

    pub(super) async fn find_by_identifiers(
        &self,
        tenant: &str,
        keys: &[String],
    ) -> Result<Vec<StoredAppointment>, StoreError> {
        let tenant = tenant.to_owned();
        let keys = keys.to_vec();
        self.read(move |c| find(c, &tenant, &keys)).await
    }

    pub(super) async fn get(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<StoredAppointment>, StoreError> {
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        self.read(move |c| {
            c.prepare_cached(
                "SELECT id, resource, updated_ms FROM appointment WHERE tenant = ?1 AND id = ?2",
            )?
            .query_row(params![tenant, id], stored)
            .optional()
        })
        .await
    }

    pub(super) async fn claim(
        &self,
        tenant: &str,
        keys: &[String],
        owner: &str,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> Result<ClaimResult, StoreError> {
        let (tenant, keys, owner) = (tenant.to_owned(), keys.to_vec(), owner.to_owned());
        // One writer: nothing can come between these statements, on this replica or another
        // (a second process on the same file waits for the write lock).
        self.write_with(Durability::WithNextSync, move |c| {
            let booked = find(c, &tenant, &keys)?;
            if !booked.is_empty() {
                return Ok(ClaimResult::Booked(booked));
            }
            // Takes each identifier unless a live claim holds it (an expired one is taken over):
            // one statement per identifier.
            let mut take = c.prepare_cached(
                "INSERT INTO identifier_claim (tenant, identifier, owner, expires_ms) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (tenant, identifier) DO UPDATE SET \
                 owner = excluded.owner, expires_ms = excluded.expires_ms \
                 WHERE identifier_claim.expires_ms <= ?5",
            )?;
            let mut busy = false;
            for key in &keys {
                busy |=
                    take.execute(params![tenant, key, owner, millis(expires), millis(now)])? == 0;
            }
            if !busy {
                return Ok(ClaimResult::Claimed);
            }
            // Held by another request: give back what this one took, and say until when.
            release(
                c,
                &tenant,
                &Held {
                    owner: owner.clone(),
                    keys: keys.clone(),
                },
            )?;
            let mut held = c.prepare_cached(
                "SELECT max(expires_ms) FROM identifier_claim WHERE tenant = ?1 AND \
                 identifier = ?2",
            )?;
            let mut until = millis(now);
            for key in &keys {
                if let Some(ms) =
                    held.query_row(params![tenant, key], |r| r.get::<_, Option<i64>>(0))?
                {
                    until = until.max(ms);
                }
            }
            Ok(ClaimResult::Busy(from_millis(until)))
        })
        .await
    }

    pub(super) async fn record(
        &self,
        tenant: &str,
        record: &AppointmentRecord,
        claim: Option<&Held>,
    ) -> Result<(), StoreError> {
        let tenant = tenant.to_owned();
        let record = record.clone();
        let claim = claim.cloned();
        self.write(move |c| {
            upsert(c, &tenant, &record)?;
            if let Some(claim) = &claim {
                release(c, &tenant, claim)?;
            }
            Ok(())
        })
        .await
    }

    pub(super) async fn release(&self, tenant: &str, claim: &Held) -> Result<(), StoreError> {
        let (tenant, claim) = (tenant.to_owned(), claim.clone());
        self.write_with(Durability::WithNextSync, move |c| {
            release(c, &tenant, &claim)
        })
        .await
    }

    /// Releases a claim without waiting for the commit (from a `Drop`).
    pub(super) fn release_detached(&self, tenant: &str, claim: Held) {
        let tenant = tenant.to_owned();
        let (answer, _) = oneshot::channel();
        // A closed store has nothing left to release.
        let _ = self.writes.send(write_job(
            Durability::WithNextSync,
            move |c| release(c, &tenant, &claim),
            answer,
        ));
    }

    pub(super) async fn insert_token(
        &self,
        token_sha256: &str,
        token: &TokenRecord,
    ) -> Result<(), StoreError> {
        let (hash, token) = (token_sha256.to_owned(), token.clone());
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO issued_token (token_sha256, client_id, scopes, expires_ms) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (token_sha256) DO NOTHING",
            )?
            .execute(params![
                hash,
                token.client_id,
                token.scopes,
                millis(token.expires)
            ])
            .map(|_| ())
        })
        .await
    }

    pub(super) async fn find_token(
        &self,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let hash = token_sha256.to_owned();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT client_id, scopes, expires_ms FROM issued_token \
                 WHERE token_sha256 = ?1 AND expires_ms > ?2",
            )?
            .query_row(params![hash, millis(now)], |r| {
                Ok(TokenRecord {
                    client_id: r.get(0)?,
                    scopes: r.get(1)?,
                    expires: from_millis(r.get(2)?),
                })
            })
            .optional()
        })
        .await
    }

    pub(super) async fn remember_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (client_id, jti) = (client_id.to_owned(), jti.to_owned());
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO seen_assertion (client_id, jti, expires_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (client_id, jti) DO NOTHING",
            )?
            .execute(params![client_id, jti, millis(expires)])
            .map(|inserted| inserted == 1)
        })
        .await
    }

    pub(super) async fn purge(
        &self,
        now: DateTime<Utc>,
        cutoff: Option<DateTime<Utc>>,
    ) -> Result<PurgeReport, StoreError> {
        let now_ms = millis(now);
        let expired = self
            .write(move |c| {
                let mut n = 0;
                for table in ["identifier_claim", "issued_token", "seen_assertion"] {
                    n += c.execute(
                        &format!("DELETE FROM {table} WHERE expires_ms <= ?1"),
                        params![now_ms],
                    )?;
                }
                Ok(n as u64)
            })
            .await?;
        let mut report = PurgeReport {
            appointments: 0,
            expired,
        };
        let Some(cutoff) = cutoff.map(millis) else {
            return Ok(report);
        };
        loop {
            // In chunks, each its own commit, so bookings never wait behind a long purge.
            let deleted = self
                .write(move |c| {
                    c.prepare_cached(
                        "DELETE FROM appointment WHERE rowid IN (SELECT rowid FROM appointment \
                         WHERE keep_until_ms < ?1 LIMIT ?2)",
                    )?
                    .execute(params![cutoff, PURGE_CHUNK as i64])
                })
                .await?;
            report.appointments += deleted as u64;
            if deleted < PURGE_CHUNK {
                return Ok(report);
            }
        }
    }

    pub(super) async fn import(
        &self,
        tenant: &str,
        source: &str,
        records: Vec<AppointmentRecord>,
    ) -> Result<ImportReport, StoreError> {
        let (tenant, source) = (tenant.to_owned(), source.to_owned());
        self.write(move |c| {
            let done = c
                .prepare_cached(
                    "SELECT appointments FROM legacy_import WHERE tenant = ?1 AND source = ?2",
                )?
                .query_row(params![tenant, source], |r| r.get::<_, i64>(0))
                .optional()?;
            if done.is_some() {
                return Ok(ImportReport::already(&source));
            }
            let mut report = ImportReport::new(&source, records.len());
            for record in &records {
                let exists = c
                    .prepare_cached("SELECT 1 FROM appointment WHERE tenant = ?1 AND id = ?2")?
                    .query_row(params![tenant, record.id], |_| Ok(()))
                    .optional()?
                    .is_some();
                if exists {
                    report.kept += 1;
                } else {
                    upsert(c, &tenant, record)?;
                    report.imported += 1;
                }
            }
            c.prepare_cached(
                "INSERT INTO legacy_import (tenant, source, imported_ms, appointments) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                tenant,
                source,
                millis(Utc::now()),
                report.imported as i64
            ])?;
            Ok(report)
        })
        .await
    }
}

/// A write job that runs `f` in the batch's transaction and answers once the batch is committed.
fn write_job<T: Send + 'static>(
    durability: Durability,
    f: impl FnMut(&Connection) -> rusqlite::Result<T> + Send + 'static,
    answer: oneshot::Sender<Result<T, StoreError>>,
) -> WriteJob {
    Box::new(Pending {
        f,
        durability,
        result: None,
        answer,
    })
}

/// The writer: waits for a write, takes every other one waiting with it, and commits them
/// together.
fn write_loop(connection: &Connection, queue: &mut UnboundedReceiver<WriteJob>) {
    let mut writer = Writer::new(connection);
    while let Some(first) = queue.blocking_recv() {
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let committed = writer.run_batch(&mut batch);
        for job in batch {
            job.finish(committed.clone());
        }
    }
}

/// The writer's connection, and the `synchronous` level last set on it.
struct Writer<'c> {
    connection: &'c Connection,
    /// `Some(true)` for FULL, `Some(false)` for NORMAL. Set again only when a batch needs the
    /// other level: a pragma is compiled anew each time it runs, which cost about a fifteenth of
    /// the writer's time when it was set before every batch.
    synced: Option<bool>,
}

impl<'c> Writer<'c> {
    fn new(connection: &'c Connection) -> Self {
        Writer {
            connection,
            synced: None,
        }
    }

    /// Runs a batch in one transaction and commits it: first without savepoints; if a write
    /// fails, again from the start with each write in a savepoint. The commit is synced unless
    /// every write in the batch can wait for the next synced one ([`Durability`]).
    fn run_batch(&mut self, batch: &mut [WriteJob]) -> Result<(), StoreError> {
        let connection = self.connection;
        let statement = |sql: &str| -> Result<(), StoreError> {
            connection
                .prepare_cached(sql)
                .and_then(|mut s| s.execute([]))
                .map(|_| ())
                .map_err(|e| engine_error(&e))
        };
        let synced = batch
            .iter()
            .any(|job| job.durability() == Durability::Synced);
        // Set between transactions; FULL syncs the log at each commit, NORMAL leaves that to the
        // next FULL commit or checkpoint.
        if self.synced != Some(synced) {
            connection
                .execute_batch(if synced {
                    "PRAGMA synchronous = FULL"
                } else {
                    "PRAGMA synchronous = NORMAL"
                })
                .map_err(|e| engine_error(&e))?;
            self.synced = Some(synced);
        }
        let commit = || {
            statement("COMMIT").inspect_err(|_| {
                let _ = statement("ROLLBACK");
            })
        };
        statement("BEGIN IMMEDIATE")?;
        if batch.iter_mut().all(|job| job.run(connection, false)) {
            return commit();
        }
        // Undone whole (it may have failed half-way); SQLite may have rolled it back already.
        let _ = statement("ROLLBACK");
        if batch.len() == 1 {
            // Nothing was kept, and the write's own error answers it.
            return Ok(());
        }
        statement("BEGIN IMMEDIATE")?;
        for job in batch.iter_mut() {
            job.run(connection, true);
        }
        commit()
    }
}

/// Runs one write in a savepoint, so that its failure undoes it alone.
fn in_savepoint<T>(
    connection: &Connection,
    f: &mut impl FnMut(&Connection) -> rusqlite::Result<T>,
) -> Result<T, StoreError> {
    connection
        .execute_batch("SAVEPOINT job")
        .map_err(|e| engine_error(&e))?;
    match guarded(|| f(connection)) {
        Ok(value) => {
            connection
                .execute_batch("RELEASE job")
                .map_err(|e| engine_error(&e))?;
            Ok(value)
        }
        Err(error) => {
            let _ = connection.execute_batch("ROLLBACK TO job; RELEASE job");
            Err(error)
        }
    }
}

/// Runs `f`, turning an error or a panic into a [`StoreError`]: a panic must not kill a store
/// thread (every later call would fail).
fn guarded<T>(f: impl FnOnce() -> rusqlite::Result<T>) -> Result<T, StoreError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.map_err(|e| engine_error(&e)),
        Err(_) => Err(StoreError::new("a store operation panicked")),
    }
}

/// SQLite's reason, without the statement or any value.
fn engine_error(error: &rusqlite::Error) -> StoreError {
    match error {
        rusqlite::Error::SqliteFailure(failure, _) => {
            StoreError::new(format!("SQLite failed: {failure}"))
        }
        other => StoreError::new(format!("SQLite failed: {}", kind_of(other))),
    }
}

fn kind_of(error: &rusqlite::Error) -> &'static str {
    match error {
        rusqlite::Error::QueryReturnedNoRows => "no row",
        rusqlite::Error::InvalidColumnType(..) | rusqlite::Error::FromSqlConversionFailure(..) => {
            "a stored value has an unexpected type"
        }
        _ => "an unexpected error",
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .map(|_| ())
        .map_err(|e| StoreError::new(format!("cannot start a store thread: {e}")))
}

/// Creates the file with mode 0600 if it does not exist: it holds appointment data.
fn create_private(path: &Path) -> Result<(), StoreError> {
    if path.exists() {
        warn_if_readable_by_others(path);
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        // Created meanwhile by another process: fine.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::new(format!("cannot create the file: {e}"))),
    }
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                file = %path.display(),
                "the store file can be read by other users; it holds appointment data (chmod 600)"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| engine_error(&e))?;
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| engine_error(&e))?;
    let mode: String = connection
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| engine_error(&e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::new(format!(
            "SQLite cannot use write-ahead logging on this file (journal mode {mode})"
        )));
    }
    // FULL: a commit is synced to disk before it is answered (NORMAL would survive a crash of the
    // process but not of the machine).
    // A log that grew under load is cut back to 64 MiB once checkpointed.
    connection
        .execute_batch(
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
             PRAGMA journal_size_limit = 67108864;",
        )
        .map_err(|e| engine_error(&e))?;
    // No re-planning of a statement for each new set of values: the plans of these few
    // statements do not depend on them, and re-preparing cost a tenth of a booking's writes.
    connection
        .set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .map_err(|e| engine_error(&e))?;
    connection.set_prepared_statement_cache_capacity(64);
    Ok(connection)
}

fn stored(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredAppointment> {
    Ok(StoredAppointment {
        id: row.get(0)?,
        resource: row.get(1)?,
        updated: from_millis(row.get(2)?),
    })
}

fn find(c: &Connection, tenant: &str, keys: &[String]) -> rusqlite::Result<Vec<StoredAppointment>> {
    let mut statement = c.prepare_cached(
        "SELECT a.id, a.resource, a.updated_ms FROM appointment_identifier i \
         JOIN appointment a ON a.tenant = i.tenant AND a.id = i.appointment_id \
         WHERE i.tenant = ?1 AND i.identifier = ?2",
    )?;
    let mut found: Vec<StoredAppointment> = Vec::new();
    for key in keys {
        for record in statement.query_map(params![tenant, key], stored)? {
            let record = record?;
            if !found.iter().any(|f| f.id == record.id) {
                found.push(record);
            }
        }
    }
    found.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(found)
}

fn upsert(c: &Connection, tenant: &str, record: &AppointmentRecord) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO appointment (tenant, id, resource, status, start_ms, end_ms, patient, \
         actors, updated_ms, keep_until_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (tenant, id) DO UPDATE SET resource = excluded.resource, \
         status = excluded.status, start_ms = excluded.start_ms, end_ms = excluded.end_ms, \
         patient = excluded.patient, actors = excluded.actors, \
         updated_ms = excluded.updated_ms, keep_until_ms = excluded.keep_until_ms",
    )?
    .execute(params![
        tenant,
        record.id,
        record.resource,
        record.status,
        record.start.map(millis),
        record.end.map(millis),
        record.patient,
        record.actors_json(),
        millis(record.updated),
        millis(record.keep_until()),
    ])?;
    c.prepare_cached(
        "DELETE FROM appointment_identifier WHERE tenant = ?1 AND appointment_id = ?2",
    )?
    .execute(params![tenant, record.id])?;
    let mut identifier = c.prepare_cached(
        "INSERT OR IGNORE INTO appointment_identifier (tenant, identifier, appointment_id) \
         VALUES (?1, ?2, ?3)",
    )?;
    for key in &record.identifiers {
        identifier.execute(params![tenant, key, record.id])?;
    }
    Ok(())
}

fn release(c: &Connection, tenant: &str, claim: &Held) -> rusqlite::Result<()> {
    let mut delete = c.prepare_cached(
        "DELETE FROM identifier_claim WHERE tenant = ?1 AND identifier = ?2 AND owner = ?3",
    )?;
    for key in &claim.keys {
        delete.execute(params![tenant, key, claim.owner])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Connection {
        let connection = Connection::open_in_memory().unwrap();
        connection
            .execute_batch("CREATE TABLE t (x INTEGER)")
            .unwrap();
        connection
    }

    /// A synced write that inserts `x`, then fails when `fail`.
    fn insert(x: i64, fail: bool) -> (WriteJob, oneshot::Receiver<Result<(), StoreError>>) {
        insert_with(Durability::Synced, x, fail)
    }

    /// A write of `durability` that inserts `x`, then fails when `fail`.
    fn insert_with(
        durability: Durability,
        x: i64,
        fail: bool,
    ) -> (WriteJob, oneshot::Receiver<Result<(), StoreError>>) {
        let (answer, answered) = oneshot::channel();
        let job = write_job(
            durability,
            move |c| {
                c.execute("INSERT INTO t (x) VALUES (?1)", [x])?;
                if fail {
                    return Err(rusqlite::Error::QueryReturnedNoRows);
                }
                Ok(())
            },
            answer,
        );
        (job, answered)
    }

    fn rows(c: &Connection) -> Vec<i64> {
        let mut statement = c.prepare("SELECT x FROM t ORDER BY x").unwrap();
        statement
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn finish(batch: Vec<WriteJob>, committed: Result<(), StoreError>) {
        for job in batch {
            job.finish(committed.clone());
        }
    }

    #[test]
    fn a_failing_write_is_undone_alone_and_the_others_are_committed() {
        let c = table();
        let (a, a_answer) = insert(1, false);
        let (b, b_answer) = insert(2, true);
        let (d, d_answer) = insert(3, false);
        let mut batch = vec![a, b, d];
        let committed = Writer::new(&c).run_batch(&mut batch);
        assert!(committed.is_ok());
        finish(batch, committed);
        assert_eq!(rows(&c), [1, 3]);
        assert!(a_answer.blocking_recv().unwrap().is_ok());
        assert!(b_answer.blocking_recv().unwrap().is_err());
        assert!(d_answer.blocking_recv().unwrap().is_ok());
    }

    /// The connection's `synchronous` setting: 2 is FULL (synced at commit), 1 NORMAL.
    fn synchronous(c: &Connection) -> i64 {
        c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap()
    }

    fn unsynced_insert(x: i64) -> (WriteJob, oneshot::Receiver<Result<(), StoreError>>) {
        insert_with(Durability::WithNextSync, x, false)
    }

    #[test]
    fn a_batch_is_synced_unless_every_write_in_it_may_wait_for_the_next_sync() {
        let c = table();
        let mut writer = Writer::new(&c);
        let mut answers = Vec::new();
        let mut run = |jobs: Vec<(WriteJob, oneshot::Receiver<Result<(), StoreError>>)>| {
            let (mut batch, these): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
            let committed = writer.run_batch(&mut batch);
            finish(batch, committed);
            answers.extend(these);
            synchronous(&c)
        };
        assert_eq!(
            run(vec![unsynced_insert(1), unsynced_insert(2)]),
            1,
            "claims alone: committed without a sync"
        );
        assert_eq!(
            run(vec![insert(3, false), unsynced_insert(4)]),
            2,
            "a record among them: the commit is synced"
        );
        assert_eq!(run(vec![insert(5, false)]), 2);
        assert_eq!(
            run(vec![unsynced_insert(6)]),
            1,
            "back to unsynced after synced batches"
        );
        assert_eq!(rows(&c), [1, 2, 3, 4, 5, 6]);
        for answer in answers {
            assert!(answer.blocking_recv().unwrap().is_ok());
        }
    }

    #[test]
    fn the_sync_level_is_set_only_when_a_batch_needs_the_other() {
        let c = table();
        let mut writer = Writer::new(&c);
        let (a, _a) = insert(1, false);
        writer.run_batch(&mut [a]).unwrap();
        // Changed behind the writer's back: a writer that set the level before every batch
        // would put it back to FULL for the next synced batch.
        c.execute_batch("PRAGMA synchronous = OFF").unwrap();
        let (b, _b) = insert(2, false);
        writer.run_batch(&mut [b]).unwrap();
        assert_eq!(synchronous(&c), 0, "the same level again: no pragma run");
        let (d, _d) = unsynced_insert(3);
        writer.run_batch(&mut [d]).unwrap();
        assert_eq!(synchronous(&c), 1);
    }

    #[test]
    fn a_write_failing_alone_leaves_nothing_half_done() {
        let c = table();
        let (b, b_answer) = insert(2, true);
        let mut batch = vec![b];
        let committed = Writer::new(&c).run_batch(&mut batch);
        finish(batch, committed);
        assert!(rows(&c).is_empty());
        assert!(b_answer.blocking_recv().unwrap().is_err());
        // The connection is usable afterwards: no transaction was left open.
        let (a, a_answer) = insert(1, false);
        let mut batch = vec![a];
        let committed = Writer::new(&c).run_batch(&mut batch);
        finish(batch, committed);
        assert_eq!(rows(&c), [1]);
        assert!(a_answer.blocking_recv().unwrap().is_ok());
    }
}
