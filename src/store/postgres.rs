//! The engine for several replicas: PostgreSQL through a bounded async connection pool
//! (deadpool), TLS (rustls, certificate and host name verified) unless the URL says
//! `sslmode=disable`.
//!
//! Every operation is one transaction on a pooled connection. Claims rely on the primary key of
//! `identifier_claim`: the claim is inserted first (an insert that meets a row another transaction
//! is deleting waits for it), then the appointments are looked for in a fresh snapshot, so two
//! replicas claiming one identifier at the same moment cannot both go on to book it.
//! Concurrent commits share their WAL flushes (PostgreSQL's own group commit).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use secrecy::ExposeSecret;
use tokio_postgres::config::SslMode;
use url::Url;

use super::settings::PostgresSettings;
use super::{
    AppointmentRecord, ClaimResult, Held, ImportReport, PurgeReport, StoreError, StoredAppointment,
    TokenRecord, from_millis, millis,
};

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

/// The advisory lock replicas take while migrating, so two starting at once migrate in turn.
const MIGRATION_LOCK: i64 = 0x0f5b_7a11_0000_0001;
/// Appointment records deleted per transaction by a purge.
const PURGE_CHUNK: i64 = 1000;

/// The URL without credentials or query: `host:port/database`, for logs and errors.
pub(super) fn describe(url: &Url) -> String {
    format!(
        "{}:{}{}",
        url.host_str().unwrap_or("localhost"),
        url.port().unwrap_or(5432),
        url.path()
    )
}

pub(super) struct Postgres {
    pool: Pool,
}

impl Postgres {
    /// Connects (one connection at once, so a database that cannot be reached stops the start),
    /// and brings the schema up to date.
    pub(super) async fn open(settings: &PostgresSettings) -> Result<Postgres, StoreError> {
        let mut config: tokio_postgres::Config = settings
            .url
            .as_str()
            .parse()
            .map_err(|e| StoreError::new(format!("store.url cannot be used: {e}")))?;
        if let Some(password) = &settings.password {
            config.password(password.expose_secret());
        }
        config.connect_timeout(settings.connect_timeout);
        config.application_name("fhir-salesforce-proxy");
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = if config.get_ssl_mode() == SslMode::Disable {
            Manager::from_config(config, tokio_postgres::NoTls, manager_config)
        } else {
            let tls = tls_config(settings)?;
            Manager::from_config(
                config,
                tokio_postgres_rustls::MakeRustlsConnect::new(tls),
                manager_config,
            )
        };
        let timeout = Some(settings.connect_timeout);
        let pool = Pool::builder(manager)
            .max_size(settings.max_connections)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::new(format!("cannot build the connection pool: {e}")))?;
        let mut client = pool.get().await.map_err(|e| pool_error(&e))?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(|e| pg_error(&e))?;
        let migrated = embedded::migrations::runner()
            .set_grouped(true)
            .run_async(&mut **client)
            .await;
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(|e| pg_error(&e))?;
        migrated.map_err(|e| {
            StoreError::new(format!("the schema cannot be brought up to date: {e}"))
        })?;
        Ok(Postgres { pool })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| pool_error(&e))
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .simple_query("SELECT 1")
            .await
            .map(|_| ())
            .map_err(|e| pg_error(&e))
    }

    pub(super) async fn find_by_identifiers(
        &self,
        tenant: &str,
        keys: &[String],
    ) -> Result<Vec<StoredAppointment>, StoreError> {
        let client = self.client().await?;
        find(&client, tenant, keys).await.map_err(|e| pg_error(&e))
    }

    pub(super) async fn get(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<StoredAppointment>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT id, resource, updated_ms FROM appointment WHERE tenant = $1 AND id = $2",
            )
            .await
            .map_err(|e| pg_error(&e))?;
        let row = client
            .query_opt(&statement, &[&tenant, &id])
            .await
            .map_err(|e| pg_error(&e))?;
        Ok(row.map(|r| stored(&r)))
    }

    pub(super) async fn claim(
        &self,
        tenant: &str,
        keys: &[String],
        owner: &str,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> Result<ClaimResult, StoreError> {
        let mut client = self.client().await?;
        let run = async {
            let tx = client.transaction().await?;
            let expired = tx
                .prepare_cached(
                    "DELETE FROM identifier_claim WHERE tenant = $1 AND identifier = ANY($2) \
                     AND expires_ms <= $3",
                )
                .await?;
            tx.execute(&expired, &[&tenant, &keys, &millis(now)])
                .await?;
            // First the claim, then the look for a recorded booking: the insert waits for a
            // transaction that is recording one of these identifiers (and deleting its claim),
            // and the look that follows sees what it committed.
            let insert = tx
                .prepare_cached(
                    "INSERT INTO identifier_claim (tenant, identifier, owner, expires_ms) \
                     SELECT $1, k, $3, $4 FROM unnest($2::text[]) AS k ON CONFLICT DO NOTHING",
                )
                .await?;
            let inserted = tx
                .execute(&insert, &[&tenant, &keys, &owner, &millis(expires)])
                .await?;
            let booked = find(&tx, tenant, keys).await?;
            if !booked.is_empty() {
                tx.rollback().await?;
                return Ok(ClaimResult::Booked(booked));
            }
            if inserted < keys.len() as u64 {
                let held = tx
                    .prepare_cached(
                        "SELECT MAX(expires_ms) FROM identifier_claim WHERE tenant = $1 AND \
                         identifier = ANY($2) AND owner <> $3",
                    )
                    .await?;
                let until: Option<i64> =
                    tx.query_one(&held, &[&tenant, &keys, &owner]).await?.get(0);
                tx.rollback().await?;
                return Ok(ClaimResult::Busy(until.map_or(now, from_millis)));
            }
            tx.commit().await?;
            Ok(ClaimResult::Claimed)
        };
        run.await.map_err(|e: tokio_postgres::Error| pg_error(&e))
    }

    pub(super) async fn record(
        &self,
        tenant: &str,
        record: &AppointmentRecord,
        claim: Option<&Held>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let run = async {
            let tx = client.transaction().await?;
            upsert(&tx, tenant, record).await?;
            if let Some(claim) = claim {
                release(&tx, tenant, claim).await?;
            }
            tx.commit().await
        };
        run.await.map_err(|e| pg_error(&e))
    }

    pub(super) async fn release(&self, tenant: &str, claim: &Held) -> Result<(), StoreError> {
        let client = self.client().await?;
        release(&client, tenant, claim)
            .await
            .map_err(|e| pg_error(&e))
    }

    /// Releases a claim in the background (from a `Drop`); a claim it cannot release expires.
    pub(super) fn release_detached(&self, tenant: &str, claim: Held) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = self.pool.clone();
        let tenant = tenant.to_owned();
        runtime.spawn(async move {
            if let Ok(client) = pool.get().await
                && let Err(error) = release(&client, &tenant, &claim).await
            {
                tracing::warn!(error = %pg_error(&error), "a claim could not be released; it expires");
            }
        });
    }

    pub(super) async fn insert_token(
        &self,
        token_sha256: &str,
        token: &TokenRecord,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO issued_token (token_sha256, client_id, scopes, expires_ms) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (token_sha256) DO NOTHING",
            )
            .await
            .map_err(|e| pg_error(&e))?;
        client
            .execute(
                &statement,
                &[
                    &token_sha256,
                    &token.client_id,
                    &token.scopes,
                    &millis(token.expires),
                ],
            )
            .await
            .map(|_| ())
            .map_err(|e| pg_error(&e))
    }

    pub(super) async fn find_token(
        &self,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT client_id, scopes, expires_ms FROM issued_token \
                 WHERE token_sha256 = $1 AND expires_ms > $2",
            )
            .await
            .map_err(|e| pg_error(&e))?;
        let row = client
            .query_opt(&statement, &[&token_sha256, &millis(now)])
            .await
            .map_err(|e| pg_error(&e))?;
        Ok(row.map(|r| TokenRecord {
            client_id: r.get(0),
            scopes: r.get(1),
            expires: from_millis(r.get(2)),
        }))
    }

    pub(super) async fn remember_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO seen_assertion (client_id, jti, expires_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (client_id, jti) DO NOTHING",
            )
            .await
            .map_err(|e| pg_error(&e))?;
        client
            .execute(&statement, &[&client_id, &jti, &millis(expires)])
            .await
            .map(|inserted| inserted == 1)
            .map_err(|e| pg_error(&e))
    }

    pub(super) async fn purge(
        &self,
        now: DateTime<Utc>,
        cutoff: Option<DateTime<Utc>>,
    ) -> Result<PurgeReport, StoreError> {
        let client = self.client().await?;
        let mut report = PurgeReport::default();
        for table in ["identifier_claim", "issued_token", "seen_assertion"] {
            report.expired += client
                .execute(
                    &format!("DELETE FROM {table} WHERE expires_ms <= $1"),
                    &[&millis(now)],
                )
                .await
                .map_err(|e| pg_error(&e))?;
        }
        let Some(cutoff) = cutoff.map(millis) else {
            return Ok(report);
        };
        let statement = client
            .prepare_cached(
                "DELETE FROM appointment WHERE (tenant, id) IN (SELECT tenant, id FROM \
                 appointment WHERE keep_until_ms < $1 LIMIT $2)",
            )
            .await
            .map_err(|e| pg_error(&e))?;
        loop {
            let deleted = client
                .execute(&statement, &[&cutoff, &PURGE_CHUNK])
                .await
                .map_err(|e| pg_error(&e))?;
            report.appointments += deleted;
            if deleted < PURGE_CHUNK as u64 {
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
        let mut client = self.client().await?;
        let run = async {
            let tx = client.transaction().await?;
            // Replicas starting together import in turn; the second finds it done.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&(MIGRATION_LOCK + 1)])
                .await?;
            let done = tx
                .query_opt(
                    "SELECT appointments FROM legacy_import WHERE tenant = $1 AND source = $2",
                    &[&tenant, &source],
                )
                .await?;
            if done.is_some() {
                tx.rollback().await?;
                return Ok(ImportReport::already(source));
            }
            let mut report = ImportReport::new(source, records.len());
            for record in &records {
                let exists = tx
                    .query_opt(
                        "SELECT 1 FROM appointment WHERE tenant = $1 AND id = $2",
                        &[&tenant, &record.id],
                    )
                    .await?
                    .is_some();
                if exists {
                    report.kept += 1;
                } else {
                    upsert(&tx, tenant, record).await?;
                    report.imported += 1;
                }
            }
            tx.execute(
                "INSERT INTO legacy_import (tenant, source, imported_ms, appointments) \
                 VALUES ($1, $2, $3, $4)",
                &[
                    &tenant,
                    &source,
                    &millis(Utc::now()),
                    &(report.imported as i64),
                ],
            )
            .await?;
            tx.commit().await?;
            Ok(report)
        };
        run.await.map_err(|e: tokio_postgres::Error| pg_error(&e))
    }
}

/// The roots a database certificate is checked against: the system's, plus `store.ca_file`.
fn tls_config(settings: &PostgresSettings) -> Result<rustls::ClientConfig, StoreError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(file) = &settings.ca_file {
        let bytes = std::fs::read(file).map_err(|e| {
            StoreError::new(format!("store.ca_file {}: {}", file.display(), e.kind()))
        })?;
        for cert in CertificateDer::pem_slice_iter(&bytes) {
            let cert = cert.map_err(|e| {
                StoreError::new(format!("store.ca_file {}: not PEM: {e}", file.display()))
            })?;
            roots
                .add(cert)
                .map_err(|e| StoreError::new(format!("store.ca_file {}: {e}", file.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| StoreError::new(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// PostgreSQL's reason: its SQLSTATE and message (never the DETAIL, which can quote values),
/// or the connection's failure.
fn pg_error(error: &tokio_postgres::Error) -> StoreError {
    match error.as_db_error() {
        Some(db) => StoreError::new(format!(
            "PostgreSQL refused: {} (SQLSTATE {})",
            db.message(),
            db.code().code()
        )),
        None if error.is_closed() => StoreError::new("PostgreSQL closed the connection"),
        None => StoreError::new(format!("PostgreSQL failed: {error}")),
    }
}

fn pool_error(error: &PoolError) -> StoreError {
    match error {
        PoolError::Backend(e) => pg_error(e),
        PoolError::Timeout(_) => StoreError::new(
            "no database connection became free or could be made in time (store.max_connections)",
        ),
        PoolError::Closed => StoreError::closed(),
        _ => StoreError::new("the database connection pool failed"),
    }
}

fn stored(row: &tokio_postgres::Row) -> StoredAppointment {
    StoredAppointment {
        id: row.get(0),
        resource: row.get(1),
        updated: from_millis(row.get(2)),
    }
}

async fn find(
    c: &impl GenericClient,
    tenant: &str,
    keys: &[String],
) -> Result<Vec<StoredAppointment>, tokio_postgres::Error> {
    let statement = c
        .prepare_cached(
            "SELECT a.id, a.resource, a.updated_ms FROM appointment a WHERE a.tenant = $1 AND \
             a.id IN (SELECT appointment_id FROM appointment_identifier WHERE tenant = $1 AND \
             identifier = ANY($2)) ORDER BY a.id",
        )
        .await?;
    let rows = c.query(&statement, &[&tenant, &keys]).await?;
    Ok(rows.iter().map(stored).collect())
}

async fn upsert(
    c: &impl GenericClient,
    tenant: &str,
    record: &AppointmentRecord,
) -> Result<(), tokio_postgres::Error> {
    let statement = c
        .prepare_cached(
            "INSERT INTO appointment (tenant, id, resource, status, start_ms, end_ms, patient, \
             actors, updated_ms, keep_until_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
             $10) ON CONFLICT (tenant, id) DO UPDATE SET resource = excluded.resource, \
             status = excluded.status, start_ms = excluded.start_ms, end_ms = excluded.end_ms, \
             patient = excluded.patient, actors = excluded.actors, \
             updated_ms = excluded.updated_ms, keep_until_ms = excluded.keep_until_ms",
        )
        .await?;
    c.execute(
        &statement,
        &[
            &tenant,
            &record.id,
            &record.resource,
            &record.status,
            &record.start.map(millis),
            &record.end.map(millis),
            &record.patient,
            &record.actors_json(),
            &millis(record.updated),
            &millis(record.keep_until()),
        ],
    )
    .await?;
    let delete = c
        .prepare_cached(
            "DELETE FROM appointment_identifier WHERE tenant = $1 AND appointment_id = $2",
        )
        .await?;
    c.execute(&delete, &[&tenant, &record.id]).await?;
    let insert = c
        .prepare_cached(
            "INSERT INTO appointment_identifier (tenant, identifier, appointment_id) SELECT $1, \
             v, $3 FROM unnest($2::text[]) AS v ON CONFLICT DO NOTHING",
        )
        .await?;
    c.execute(&insert, &[&tenant, &record.identifiers, &record.id])
        .await?;
    Ok(())
}

async fn release(
    c: &impl GenericClient,
    tenant: &str,
    claim: &Held,
) -> Result<(), tokio_postgres::Error> {
    let statement = c
        .prepare_cached(
            "DELETE FROM identifier_claim WHERE tenant = $1 AND identifier = ANY($2) AND              owner = $3",
        )
        .await?;
    c.execute(&statement, &[&tenant, &claim.keys, &claim.owner])
        .await
        .map(|_| ())
}
