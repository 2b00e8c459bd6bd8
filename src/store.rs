//! The appointment store: which business identifiers were booked as which Salesforce record, and
//! the last FHIR representation of each appointment the proxy booked or changed.
//!
//! Engines retry a POST when an answer is slow; the store is what lets the proxy answer the retry
//! with the earlier booking instead of booking twice, and what a JSON Patch is applied to
//! (Salesforce offers no read of an appointment). [`AppointmentStore`] is a small async trait so
//! a store shared by several replicas can be added; [`FileStore`] is the embedded default: an
//! append-only JSON-lines file (created with mode 0600: it holds appointment data) replayed at
//! start-up, so it survives a restart.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// One appointment as the proxy last saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAppointment {
    /// The Salesforce record id (also the FHIR id).
    pub id: String,
    /// The appointment's business identifiers as `system|value`.
    pub identifiers: Vec<String>,
    /// The FHIR Appointment as last answered, in FHIR JSON.
    pub resource: serde_json::Value,
}

/// Why the store failed. Never carries the data itself.
#[derive(Debug, thiserror::Error)]
#[error("the appointment store failed: {0}")]
pub struct StoreError(String);

impl StoreError {
    /// A stored record that no longer reads as an Appointment.
    pub fn corrupt() -> StoreError {
        StoreError("a stored appointment is not a valid Appointment".to_owned())
    }
}

/// Where booked appointments are remembered.
pub trait AppointmentStore: Send + Sync {
    /// Every appointment booked with this identifier (`system|value`).
    fn find_by_identifier<'a>(
        &'a self,
        identifier: &'a str,
    ) -> BoxFuture<'a, Result<Vec<StoredAppointment>, StoreError>>;

    /// The appointment with this Salesforce id.
    fn get<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredAppointment>, StoreError>>;

    /// Records (or replaces) an appointment.
    fn put(&self, record: StoredAppointment) -> BoxFuture<'_, Result<(), StoreError>>;
}

#[derive(Default)]
struct Index {
    by_id: HashMap<String, StoredAppointment>,
}

impl Index {
    fn find(&self, identifier: &str) -> Vec<StoredAppointment> {
        let mut found: Vec<StoredAppointment> = self
            .by_id
            .values()
            .filter(|r| r.identifiers.iter().any(|i| i == identifier))
            .cloned()
            .collect();
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found
    }
}

/// A store in memory only: for the demo and tests.
#[derive(Default)]
pub struct MemoryStore {
    index: Mutex<Index>,
}

impl AppointmentStore for MemoryStore {
    fn find_by_identifier<'a>(
        &'a self,
        identifier: &'a str,
    ) -> BoxFuture<'a, Result<Vec<StoredAppointment>, StoreError>> {
        Box::pin(async move { Ok(lock(&self.index)?.find(identifier)) })
    }

    fn get<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredAppointment>, StoreError>> {
        Box::pin(async move { Ok(lock(&self.index)?.by_id.get(id).cloned()) })
    }

    fn put(&self, record: StoredAppointment) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            lock(&self.index)?.by_id.insert(record.id.clone(), record);
            Ok(())
        })
    }
}

/// The embedded default: an append-only JSON-lines file, one record per line, the last line for
/// an id winning. Each write is flushed and synced before the booking is answered.
pub struct FileStore {
    path: PathBuf,
    inner: Mutex<(Index, File)>,
}

impl FileStore {
    /// Opens (or creates) the store file and replays it. A torn last line (a crash mid-write) is
    /// skipped; any other unreadable line refuses to start, since silently forgetting bookings
    /// would let retries book twice.
    ///
    /// # Errors
    /// When the file cannot be opened or holds an unreadable record.
    pub fn open(path: &Path) -> Result<FileStore, StoreError> {
        let mut index = Index::default();
        if path.exists() {
            let file = File::open(path).map_err(|e| io_error(path, &e))?;
            let lines: Vec<String> = BufReader::new(file)
                .lines()
                .collect::<Result<_, _>>()
                .map_err(|e| io_error(path, &e))?;
            let last = lines.len().saturating_sub(1);
            for (n, line) in lines.iter().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<StoredAppointment>(line) {
                    Ok(record) => {
                        index.by_id.insert(record.id.clone(), record);
                    }
                    Err(_) if n == last => {
                        tracing::warn!(
                            line = n + 1,
                            "skipping a torn last record in the appointment store"
                        );
                    }
                    Err(_) => {
                        return Err(StoreError(format!(
                            "{}: line {} is not a stored appointment",
                            path.display(),
                            n + 1
                        )));
                    }
                }
            }
        }
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(path).map_err(|e| io_error(path, &e))?;
        Ok(FileStore {
            path: path.to_owned(),
            inner: Mutex::new((index, file)),
        })
    }
}

impl AppointmentStore for FileStore {
    fn find_by_identifier<'a>(
        &'a self,
        identifier: &'a str,
    ) -> BoxFuture<'a, Result<Vec<StoredAppointment>, StoreError>> {
        Box::pin(async move { Ok(lock(&self.inner)?.0.find(identifier)) })
    }

    fn get<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredAppointment>, StoreError>> {
        Box::pin(async move { Ok(lock(&self.inner)?.0.by_id.get(id).cloned()) })
    }

    fn put(&self, record: StoredAppointment) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut line = serde_json::to_vec(&record).map_err(|e| StoreError(e.to_string()))?;
            line.push(b'\n');
            let mut guard = lock(&self.inner)?;
            let (index, file) = &mut *guard;
            // One small write while holding the lock; a sync makes it survive a crash.
            file.write_all(&line)
                .and_then(|()| file.sync_data())
                .map_err(|e| io_error(&self.path, &e))?;
            index.by_id.insert(record.id.clone(), record);
            Ok(())
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, StoreError> {
    mutex
        .lock()
        .map_err(|_| StoreError("a previous writer panicked".to_owned()))
}

fn io_error(path: &Path, error: &std::io::Error) -> StoreError {
    StoreError(format!("{}: {}", path.display(), error.kind()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(id: &str, identifier: &str) -> StoredAppointment {
        StoredAppointment {
            id: id.to_owned(),
            identifiers: vec![identifier.to_owned()],
            resource: json!({"resourceType": "Appointment", "id": id}),
        }
    }

    #[tokio::test]
    async fn file_store_survives_a_reopen_and_keeps_the_latest_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.jsonl");
        {
            let store = FileStore::open(&path).unwrap();
            store.put(record("08pA", "sys|1")).await.unwrap();
            store.put(record("08pB", "sys|2")).await.unwrap();
            let mut changed = record("08pA", "sys|1");
            changed.resource["status"] = json!("cancelled");
            store.put(changed).await.unwrap();
        }
        let store = FileStore::open(&path).unwrap();
        let found = store.find_by_identifier("sys|1").await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].resource["status"], "cancelled");
        assert_eq!(
            store.get("08pB").await.unwrap().unwrap().identifiers,
            vec!["sys|2"]
        );
        assert!(store.find_by_identifier("sys|3").await.unwrap().is_empty());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[tokio::test]
    async fn a_torn_last_line_is_skipped_but_a_corrupt_middle_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.jsonl");
        let good = serde_json::to_string(&record("08pA", "sys|1")).unwrap();
        std::fs::write(&path, format!("{good}\n{{\"id\":\"08pB\",\"identi")).unwrap();
        let store = FileStore::open(&path).unwrap();
        assert!(store.get("08pA").await.unwrap().is_some());
        assert!(store.get("08pB").await.unwrap().is_none());

        std::fs::write(&path, format!("garbage\n{good}\n")).unwrap();
        let error = FileStore::open(&path).err().unwrap();
        assert!(error.to_string().contains("line 1"), "{error}");
    }

    #[tokio::test]
    async fn several_appointments_can_share_an_identifier() {
        let store = MemoryStore::default();
        store.put(record("08pA", "sys|1")).await.unwrap();
        store.put(record("08pB", "sys|1")).await.unwrap();
        let ids: Vec<String> = store
            .find_by_identifier("sys|1")
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, vec!["08pA", "08pB"]);
    }
}
