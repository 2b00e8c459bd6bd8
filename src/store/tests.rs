//! The store's behaviour, checked on both engines: every test runs on a fresh SQLite file and,
//! when `FSP_TEST_POSTGRES_URL` names a PostgreSQL database, on a fresh schema of it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::json;

use super::settings::{LegacyImport, PostgresSettings, StoreEngine, StoreSettings};
use super::*;

/// The variable naming a PostgreSQL database the tests may create schemas in.
pub const ENV_TEST_POSTGRES_URL: &str = "FSP_TEST_POSTGRES_URL";
/// Its password, if it needs one.
pub const ENV_TEST_POSTGRES_PASSWORD: &str = "FSP_TEST_POSTGRES_PASSWORD";
/// Set (as CI does) to make a missing PostgreSQL a failure instead of a loud skip.
pub const ENV_TEST_REQUIRE_POSTGRES: &str = "FSP_TEST_REQUIRE_POSTGRES";

/// A store for one test and what keeps it alive (the SQLite file's directory).
struct TestStore {
    store: Store,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite_with(adjust: impl FnOnce(&mut StoreSettings)) -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = StoreSettings::sqlite(dir.path().join("store.db"));
    adjust(&mut settings);
    TestStore {
        store: Store::open(&settings).await.unwrap(),
        _dir: Some(dir),
    }
}

/// PostgreSQL settings for a schema of its own, or `None` (said loudly) when no database is
/// configured.
async fn postgres_settings() -> Option<StoreSettings> {
    let Ok(base) = std::env::var(ENV_TEST_POSTGRES_URL) else {
        assert!(
            std::env::var_os(ENV_TEST_REQUIRE_POSTGRES).is_none(),
            "{ENV_TEST_REQUIRE_POSTGRES} is set but {ENV_TEST_POSTGRES_URL} is not: the \
             PostgreSQL store tests cannot run"
        );
        eprintln!(
            "\n*** PostgreSQL store tests NOT RUN: set {ENV_TEST_POSTGRES_URL} (see .ci/run) ***\n"
        );
        return None;
    };
    let password = std::env::var(ENV_TEST_POSTGRES_PASSWORD).ok();
    let schema = format!("t_{}", hex::encode(rand::random::<[u8; 8]>()));
    let mut config: tokio_postgres::Config = base.parse().unwrap();
    if let Some(p) = &password {
        config.password(p);
    }
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let mut url = url::Url::parse(&base).unwrap();
    url.query_pairs_mut()
        .append_pair("options", &format!("-csearch_path={schema}"));
    let mut settings = StoreSettings::sqlite("unused".into());
    settings.engine = StoreEngine::Postgres(PostgresSettings {
        url,
        password: password.map(Into::into),
        max_connections: 8,
        connect_timeout: Duration::from_secs(5),
        ca_file: None,
    });
    Some(settings)
}

/// Runs `check` on a SQLite store and, when configured, on a PostgreSQL one.
async fn on_both<F, Fut>(adjust: impl Fn(&mut StoreSettings), check: F)
where
    F: Fn(Store) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let sqlite = sqlite_with(&adjust).await;
    check(sqlite.store.clone()).await;
    if let Some(mut settings) = postgres_settings().await {
        adjust(&mut settings);
        check(Store::open(&settings).await.unwrap()).await;
    }
}

fn record(id: &str, identifiers: &[&str]) -> AppointmentRecord {
    let resource = json!({
        "resourceType": "Appointment",
        "id": id,
        "status": "booked",
        "start": "2025-07-21T18:00:00Z",
        "end": "2025-07-21T18:30:00Z",
        "participant": [
            {"actor": {"reference": "Patient/p1"}, "status": "accepted"},
            {"actor": {"reference": "Practitioner/d1"}, "status": "accepted"}
        ]
    });
    AppointmentRecord::from_json(
        id.to_owned(),
        identifiers.iter().map(|s| (*s).to_owned()).collect(),
        &resource,
        Utc::now(),
    )
}

fn ids(found: &[StoredAppointment]) -> Vec<&str> {
    found.iter().map(|f| f.id.as_str()).collect()
}

fn claimed(outcome: ClaimOutcome) -> Claim {
    match outcome {
        ClaimOutcome::Claimed(claim) => claim,
        other => panic!("expected a claim, got {other:?}"),
    }
}

#[tokio::test]
async fn records_are_found_by_identifier_and_id_and_tenants_are_kept_apart() {
    on_both(
        |_| {},
        |store| async move {
            let north = store.tenant(Some("north"));
            let south = store.tenant(Some("south"));
            north
                .record(&record("08pA", &["s|1", "s|2"]), None)
                .await
                .unwrap();
            north.record(&record("08pB", &["s|2"]), None).await.unwrap();
            south.record(&record("08pS", &["s|1"]), None).await.unwrap();

            let found = north.find_by_identifiers(&["s|2".into()]).await.unwrap();
            assert_eq!(ids(&found), ["08pA", "08pB"]);
            let found = north
                .find_by_identifiers(&["s|1".into(), "s|2".into(), "s|1".into()])
                .await
                .unwrap();
            assert_eq!(ids(&found), ["08pA", "08pB"]);
            assert_eq!(
                ids(&south.find_by_identifiers(&["s|1".into()]).await.unwrap()),
                ["08pS"]
            );
            assert!(store.tenant(None).get("08pA").await.unwrap().is_none());
            let a = north.get("08pA").await.unwrap().unwrap();
            let resource: serde_json::Value = serde_json::from_str(&a.resource).unwrap();
            assert_eq!(resource["status"], "booked");

            // A new record for an id replaces its identifiers.
            north.record(&record("08pA", &["s|3"]), None).await.unwrap();
            assert_eq!(
                ids(&north.find_by_identifiers(&["s|1".into()]).await.unwrap()),
                Vec::<&str>::new()
            );
            assert_eq!(
                ids(&north.find_by_identifiers(&["s|3".into()]).await.unwrap()),
                ["08pA"]
            );
            store.ping().await.unwrap();
        },
    )
    .await;
}

#[tokio::test]
async fn a_claim_holds_until_recorded_or_dropped_and_then_the_booking_is_found() {
    on_both(
        |_| {},
        |store| async move {
            let tenant = store.tenant(None);
            let keys = vec!["s|A".to_owned(), "s|B".to_owned()];
            let first = claimed(tenant.claim(&keys).await.unwrap());
            // Any one of the identifiers is enough to be refused.
            match tenant.claim(&["s|B".to_owned()]).await.unwrap() {
                ClaimOutcome::Busy { expires_in } => {
                    assert!(expires_in <= Duration::from_secs(120), "{expires_in:?}");
                    assert!(expires_in > Duration::from_secs(100), "{expires_in:?}");
                }
                other => panic!("expected busy, got {other:?}"),
            }
            // Another tenant's identifiers are its own.
            drop(claimed(
                store.tenant(Some("other")).claim(&keys).await.unwrap(),
            ));

            tenant
                .record(&record("08pA", &["s|A", "s|B"]), Some(first))
                .await
                .unwrap();
            match tenant.claim(&["s|A".to_owned()]).await.unwrap() {
                ClaimOutcome::Booked(found) => assert_eq!(ids(&found), ["08pA"]),
                other => panic!("expected the booking, got {other:?}"),
            }

            // A claim dropped without a record is released. SQLite's one writer takes the
            // release before the next claim; PostgreSQL releases on a task of its own, so the
            // test waits (boundedly) for it to land.
            drop(claimed(tenant.claim(&["s|C".to_owned()]).await.unwrap()));
            let mut again = tenant.claim(&["s|C".to_owned()]).await.unwrap();
            if store.engine_name() == "postgresql" {
                for _ in 0..200 {
                    if matches!(again, ClaimOutcome::Claimed(_)) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    again = tenant.claim(&["s|C".to_owned()]).await.unwrap();
                }
            }
            claimed(again);
            // An explicit release is done when it returns.
            claimed(tenant.claim(&["s|E".to_owned()]).await.unwrap())
                .release()
                .await
                .unwrap();
            claimed(tenant.claim(&["s|E".to_owned()]).await.unwrap());
            // A kept claim stays.
            claimed(tenant.claim(&["s|D".to_owned()]).await.unwrap()).keep();
            assert!(matches!(
                tenant.claim(&["s|D".to_owned()]).await.unwrap(),
                ClaimOutcome::Busy { .. }
            ));
            // No identifiers, nothing to claim.
            claimed(tenant.claim(&[]).await.unwrap());
        },
    )
    .await;
}

#[tokio::test]
async fn a_claim_left_behind_expires() {
    // A claim that expires at once: the process that took it is as good as dead.
    on_both(
        |s| s.claim_timeout = Duration::ZERO,
        |store| async move {
            let tenant = store.tenant(None);
            claimed(tenant.claim(&["s|A".to_owned()]).await.unwrap()).keep();
            claimed(tenant.claim(&["s|A".to_owned()]).await.unwrap());
        },
    )
    .await;
}

#[tokio::test]
async fn concurrent_claims_of_one_identifier_give_it_to_exactly_one() {
    on_both(
        |_| {},
        |store| async move {
            let tenant = store.tenant(None);
            let tasks: Vec<_> = (0..24)
                .map(|_| {
                    let tenant = tenant.clone();
                    tokio::spawn(async move {
                        match tenant.claim(&["s|same".to_owned()]).await.unwrap() {
                            ClaimOutcome::Claimed(c) => {
                                c.keep();
                                1
                            }
                            _ => 0,
                        }
                    })
                })
                .collect();
            let mut won = 0;
            for task in tasks {
                won += task.await.unwrap();
            }
            assert_eq!(won, 1);
        },
    )
    .await;
}

#[tokio::test]
async fn tokens_and_assertions_are_kept_by_hash_until_they_expire() {
    on_both(
        |_| {},
        |store| async move {
            let token = TokenRecord {
                client_id: "ehr".into(),
                scopes: "system/Appointment.cu".into(),
                expires: Utc::now() + chrono::Duration::seconds(300),
            };
            store.insert_token("aa11", &token).await.unwrap();
            let found = store.find_token("aa11").await.unwrap().unwrap();
            assert_eq!(found.client_id, "ehr");
            assert_eq!(found.scopes, "system/Appointment.cu");
            assert!(store.find_token("bb22").await.unwrap().is_none());
            let expired = TokenRecord {
                expires: Utc::now() - chrono::Duration::seconds(1),
                ..token
            };
            store.insert_token("cc33", &expired).await.unwrap();
            assert!(store.find_token("cc33").await.unwrap().is_none());

            let until = Utc::now() + chrono::Duration::seconds(300);
            assert!(store.remember_assertion("ehr", "j1", until).await.unwrap());
            assert!(!store.remember_assertion("ehr", "j1", until).await.unwrap());
            assert!(
                store
                    .remember_assertion("other", "j1", until)
                    .await
                    .unwrap()
            );
        },
    )
    .await;
}

#[tokio::test]
async fn purge_deletes_records_past_retention_and_expired_rows() {
    on_both(
        |_| {},
        |store| async move {
            let tenant = store.tenant(None);
            let long_ago = Utc.with_ymd_and_hms(2020, 1, 1, 9, 0, 0).unwrap();
            let mut old = record("08pOld", &["s|old"]);
            old.end = Some(long_ago);
            old.updated = long_ago;
            tenant.record(&old, None).await.unwrap();
            // Ended long ago but changed recently: kept.
            let mut changed = record("08pChanged", &["s|changed"]);
            changed.end = Some(long_ago);
            tenant.record(&changed, None).await.unwrap();
            tenant
                .record(&record("08pNew", &["s|new"]), None)
                .await
                .unwrap();
            store
                .insert_token(
                    "dead",
                    &TokenRecord {
                        client_id: "c".into(),
                        scopes: String::new(),
                        expires: long_ago,
                    },
                )
                .await
                .unwrap();

            // Without retention only expired rows go.
            let report = store.purge(None).await.unwrap();
            assert_eq!(report.appointments, 0);
            assert!(report.expired >= 1, "{report:?}");
            assert!(tenant.get("08pOld").await.unwrap().is_some());

            let report = store
                .purge(Some(Duration::from_secs(30 * 86_400)))
                .await
                .unwrap();
            assert_eq!(report.appointments, 1);
            assert!(tenant.get("08pOld").await.unwrap().is_none());
            assert!(
                tenant
                    .find_by_identifiers(&["s|old".into()])
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert!(tenant.get("08pChanged").await.unwrap().is_some());
            assert!(tenant.get("08pNew").await.unwrap().is_some());
        },
    )
    .await;
}

fn legacy_line(id: &str, identifier: &str, status: &str) -> String {
    json!({
        "id": id,
        "identifiers": [identifier],
        "resource": {"resourceType": "Appointment", "id": id, "status": status,
                     "meta": {"lastUpdated": "2025-07-01T10:00:00.000Z"},
                     "participant": [{"actor": {"reference": "Patient/p"}, "status": "accepted"}]}
    })
    .to_string()
}

#[tokio::test]
async fn the_earlier_file_store_is_imported_once_and_loses_nothing() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let file = dir.path().join("appointments.jsonl");
    std::fs::write(
        &file,
        format!(
            "{}\n{}\n{}\n{}\n{{\"id\":\"08pT\",\"identi",
            legacy_line("08pA", "s|1", "booked"),
            legacy_line("08pB", "s|2", "booked"),
            legacy_line("08pA", "s|1", "cancelled"),
            legacy_line("08pK", "s|9", "booked"),
        ),
    )
    .unwrap();
    let import = file.clone();
    on_both(
        move |s| {
            s.imports = vec![LegacyImport {
                tenant: Some("north".into()),
                file: import.clone(),
                explicit: true,
            }];
        },
        |store| {
            let file = file.clone();
            async move {
                // Opening imported it; the torn last line was skipped.
                let north = store.tenant(Some("north"));
                let a = north.get("08pA").await.unwrap().unwrap();
                let resource: serde_json::Value = serde_json::from_str(&a.resource).unwrap();
                assert_eq!(
                    resource["status"], "cancelled",
                    "the last line for an id wins"
                );
                assert_eq!(
                    a.updated,
                    Utc.with_ymd_and_hms(2025, 7, 1, 10, 0, 0).unwrap()
                );
                assert_eq!(
                    ids(&north.find_by_identifiers(&["s|2".into()]).await.unwrap()),
                    ["08pB"]
                );
                assert!(north.get("08pT").await.unwrap().is_none());
                // Once only.
                let again = north.import_legacy(&file).await.unwrap();
                assert!(again.already_imported, "{again:?}");
            }
        },
    )
    .await;

    // Records the store holds already win over the file's.
    let store = sqlite_with(|_| {}).await;
    let _ = &store._dir;
    let tenant = store.store.tenant(None);
    tenant
        .record(&record("08pK", &["s|newer"]), None)
        .await
        .unwrap();
    let report = tenant
        .import_legacy(&dir.path().join("appointments.jsonl"))
        .await
        .unwrap();
    assert_eq!((report.in_file, report.imported, report.kept), (3, 2, 1));
    assert_eq!(
        ids(&tenant
            .find_by_identifiers(&["s|newer".into()])
            .await
            .unwrap()),
        ["08pK"]
    );

    // An unreadable line in the middle refuses the import, naming the line, and imports nothing.
    let broken = dir.path().join("broken.jsonl");
    std::fs::write(
        &broken,
        format!("garbage\n{}\n", legacy_line("08pZ", "s|z", "booked")),
    )
    .unwrap();
    let error = tenant.import_legacy(&broken).await.unwrap_err();
    assert!(error.to_string().contains("line 1"), "{error}");
    assert!(tenant.get("08pZ").await.unwrap().is_none());
}

#[tokio::test]
async fn the_sqlite_file_is_private_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    {
        let store = Store::sqlite(&path).unwrap();
        let writes: Vec<_> = (0..50)
            .map(|n| {
                let tenant = store.tenant(None);
                tokio::spawn(async move {
                    tenant
                        .record(&record(&format!("08p{n}"), &[&format!("s|{n}")]), None)
                        .await
                })
            })
            .collect();
        for write in writes {
            write.await.unwrap().unwrap();
        }
    }
    let store = Store::sqlite(&path).unwrap();
    let tenant = store.tenant(None);
    for n in [0, 17, 49] {
        let found = tenant
            .find_by_identifiers(&[format!("s|{n}")])
            .await
            .unwrap();
        assert_eq!(ids(&found), [format!("08p{n}").as_str()]);
    }
    assert_eq!(store.engine_name(), "sqlite");
    assert!(store.description().contains("store.db"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn a_store_that_cannot_be_opened_says_which_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let error = Store::sqlite(&dir.path().join("no-such-dir/store.db")).unwrap_err();
    let text = error.to_string();
    assert!(text.starts_with("SQLite "), "{text}");
    assert!(text.contains("no-such-dir"), "{text}");

    // A PostgreSQL server that is not there: named by host, port and database, never the
    // password.
    let mut settings = StoreSettings::sqlite("unused".into());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    settings.engine = StoreEngine::Postgres(PostgresSettings {
        url: format!("postgres://fsp@127.0.0.1:{port}/fsp")
            .parse()
            .unwrap(),
        password: Some("hunter2".to_owned().into()),
        max_connections: 2,
        connect_timeout: Duration::from_secs(2),
        ca_file: None,
    });
    let text = Store::open(&settings).await.unwrap_err().to_string();
    assert!(
        text.contains(&format!("PostgreSQL 127.0.0.1:{port}/fsp")),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}
