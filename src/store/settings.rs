//! The store's settings, checked (read from `[store]` by the `config` module): which engine, where,
//! and how long claims and records are kept.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

/// The environment variable that holds the PostgreSQL password.
pub const ENV_STORE_PASSWORD: &str = "FSP_STORE__PASSWORD";
/// The default `store.claim_timeout_secs`.
pub const DEFAULT_CLAIM_TIMEOUT_SECS: u64 = 120;
/// The default `store.max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10;
/// The default `store.connect_timeout_secs`.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 5;
/// The default `store.purge_interval_secs`.
pub const DEFAULT_PURGE_INTERVAL_SECS: u64 = 3600;

/// The store, checked.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// SQLite or PostgreSQL.
    pub engine: StoreEngine,
    /// How long an identifier claim holds when its booking is never finished (its process died):
    /// until then a request with that identifier gets a 409. Longer than any request can take.
    pub claim_timeout: Duration,
    /// How long appointment records are kept after their end (or last change); `None`: always.
    pub retention: Option<Duration>,
    /// How often expired rows and records past retention are deleted.
    pub purge_interval: Duration,
    /// Files of the earlier file store to import when the store opens (once each).
    pub imports: Vec<LegacyImport>,
}

/// Which engine, and where.
#[derive(Debug, Clone)]
pub enum StoreEngine {
    /// One SQLite file, embedded (the default).
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// A PostgreSQL database, for several replicas.
    Postgres(PostgresSettings),
}

/// A PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresSettings {
    /// `postgres://user@host:port/database?sslmode=…`, without a password.
    pub url: Url,
    /// The password, from [`ENV_STORE_PASSWORD`] or `store.password_file`.
    pub password: Option<SecretString>,
    /// The most connections the pool opens.
    pub max_connections: usize,
    /// How long a connection may take to open, and a request to wait for a free one.
    pub connect_timeout: Duration,
    /// A CA certificate (PEM) to trust for the database's certificate, beside the system's.
    pub ca_file: Option<PathBuf>,
}

/// A JSON-lines file of the earlier file store, imported into one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyImport {
    /// The tenant (`None`: the one at the FHIR base).
    pub tenant: Option<String>,
    /// The file.
    pub file: PathBuf,
    /// Named in the configuration (must exist), rather than the default name (imported if there).
    pub explicit: bool,
}

impl StoreSettings {
    /// A SQLite store at `path` with every default: 120 s claims, no retention limit, an hourly
    /// purge, nothing to import.
    pub fn sqlite(path: PathBuf) -> StoreSettings {
        StoreSettings {
            engine: StoreEngine::Sqlite { path },
            claim_timeout: Duration::from_secs(DEFAULT_CLAIM_TIMEOUT_SECS),
            retention: None,
            purge_interval: Duration::from_secs(DEFAULT_PURGE_INTERVAL_SECS),
            imports: Vec::new(),
        }
    }
}
