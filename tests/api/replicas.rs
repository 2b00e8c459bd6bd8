//! The real binary as it runs in production: two replicas on one PostgreSQL (one booking per
//! identifier, tokens and replayed assertions known to both), `kill -9` in the middle of a burst
//! of bookings (nothing answered 201 is lost), and the earlier file store imported on upgrade.

use std::collections::HashMap;
use std::path::Path;
use std::sync::LazyLock;

use fhir_salesforce_proxy::sandbox::Sandbox;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::auth::{PUBLIC_URL, TestKey, assertion_claims, ec_key, jwks, sign, token_request_at};
use crate::helpers::*;
use crate::process::{self, BIN, Proxy};

const SALESFORCE_SECRET: &str = "sandbox-secret";
const API_KEY: &str = "replica-key-5c1e7d20a9b84f3e";

static SMART_KEY: LazyLock<TestKey> = LazyLock::new(|| ec_key("replica-smart"));

/// Writes `proxy.toml` (and its mapping and JWKS) into `dir`: the sandbox's org, `store` as the
/// `[store]` section's body, an API-key client and a SMART client.
fn write_config(dir: &Path, port: u16, sandbox: &Sandbox, store: &str) -> std::path::PathBuf {
    std::fs::copy(
        format!("{}/mappings/example.toml", env!("CARGO_MANIFEST_DIR")),
        dir.join("mapping.toml"),
    )
    .unwrap();
    std::fs::write(dir.join("smart.jwks"), jwks(&[&SMART_KEY]).to_string()).unwrap();
    let key_hash = hex::encode(Sha256::digest(API_KEY.as_bytes()));
    let config = dir.join(format!("proxy-{port}.toml"));
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\
             [salesforce]\ntoken_url = \"{}\"\nclient_id = \"sandbox-client\"\n\
             [mapping]\nfile = \"mapping.toml\"\n\
             [store]\n{store}\n\
             [auth]\npublic_url = \"{PUBLIC_URL}\"\n\
             [[auth.clients]]\nid = \"engine\"\nscopes = [\"system/Appointment.*\"]\n\
             api_key_sha256 = \"{key_hash}\"\n\
             [[auth.clients]]\nid = \"smart\"\nscopes = [\"system/Appointment.*\"]\n\
             jwks_file = \"smart.jwks\"\n",
            sandbox.token_url()
        ),
    )
    .unwrap();
    config
}

/// An appointment with its own identifier, which also travels in its comment (the Book request's
/// `comment`), so the sandbox's bookings say which identifier each was for.
fn tagged(tag: &str) -> Value {
    let mut a = example_appointment();
    a["identifier"][0]["value"] = json!(tag);
    a["comment"] = json!(tag);
    a
}

fn book(
    client: &reqwest::Client,
    address: &str,
    body: &Value,
    auth: (&str, String),
) -> impl std::future::Future<Output = reqwest::Result<reqwest::Response>> + use<> {
    client
        .post(format!("{address}/fhir/Appointment"))
        .header("Content-Type", "application/fhir+json")
        .header(auth.0, auth.1)
        .body(body.to_string())
        .send()
}

fn api_key() -> (&'static str, String) {
    ("X-API-Key", API_KEY.to_owned())
}

/// How many times the sandbox booked each identifier.
fn bookings_by_tag(sandbox: &Sandbox) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for booking in sandbox.bookings() {
        let tag = booking.request["comment"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        *counts.entry(tag).or_insert(0) += 1;
    }
    counts
}

async fn start_replica(dir: &Path, sandbox: &Sandbox, pg: &TestPostgres) -> Proxy {
    let port = process::free_port();
    let store = format!("url = \"{}\"", pg.url);
    let config = write_config(dir, port, sandbox, &store);
    let mut env = vec![("FSP_SALESFORCE__CLIENT_SECRET", SALESFORCE_SECRET)];
    if let Some(password) = &pg.password {
        env.push(("FSP_STORE__PASSWORD", password.as_str()));
    }
    process::serve(&config, port, &[], &env).await
}

#[tokio::test]
async fn two_replicas_on_one_postgres_book_once_and_share_tokens_and_replays() {
    let Some(pg) = test_postgres().await else {
        return;
    };
    let sandbox = start_sandbox();
    let dir = tempfile::tempdir().unwrap();
    let one = start_replica(dir.path(), &sandbox, &pg).await;
    let two = start_replica(dir.path(), &sandbox, &pg).await;
    let client = reqwest::Client::new();

    // The same identifier posted to both at once: booked once. The first booking is held in
    // Salesforce so the two surely overlap.
    let first = start_held(
        &sandbox,
        book(&client, &one.address(), &tagged("same"), api_key()),
    )
    .await;
    let second = book(&client, &two.address(), &tagged("same"), api_key())
        .await
        .unwrap();
    assert_eq!(second.status(), 409, "{}", second.text().await.unwrap());
    sandbox.release_held();
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status(), 201);
    let booked = json_body(first).await;
    let again = book(&client, &two.address(), &tagged("same"), api_key())
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(json_body(again).await["id"], booked["id"]);

    // A burst of identifiers, each posted to both replicas at the same moment.
    let mut posts = Vec::new();
    for n in 0..20 {
        let body = tagged(&format!("burst-{n}"));
        for replica in [&one, &two] {
            posts.push(tokio::spawn(book(
                &client,
                &replica.address(),
                &body,
                api_key(),
            )));
        }
    }
    for post in posts {
        let status = post.await.unwrap().unwrap().status().as_u16();
        assert!([200, 201, 409].contains(&status), "{status}");
    }
    let counts = bookings_by_tag(&sandbox);
    assert_eq!(counts.len(), 21, "{counts:?}");
    assert!(
        counts.values().all(|&n| n == 1),
        "an identifier was booked twice: {counts:?}"
    );

    // A token issued by one replica works on the other.
    let assertion = sign(&SMART_KEY, "replica-smart", &assertion_claims("smart"));
    let issued =
        token_request_at(&client, &one.address(), &assertion, "system/Appointment.c").await;
    assert_eq!(issued.status(), 200);
    let token = json_body(issued).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = book(
        &client,
        &two.address(),
        &tagged("with-token"),
        ("Authorization", format!("Bearer {token}")),
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), 201);

    // The same assertion replayed to the other replica is refused.
    let replayed =
        token_request_at(&client, &two.address(), &assertion, "system/Appointment.c").await;
    assert_eq!(replayed.status(), 401);
    let body = json_body(replayed).await;
    assert_eq!(body["error"], "invalid_client");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{body}"
    );

    // No replica wrote the database password into its log.
    if let Some(password) = &pg.password {
        for line in one.finish().into_iter().chain(two.finish()) {
            assert!(!line.contains(password.as_str()), "{line}");
        }
    }
}

#[tokio::test]
async fn after_kill_9_mid_burst_every_answered_booking_is_still_known() {
    let sandbox = start_sandbox();
    let dir = tempfile::tempdir().unwrap();
    let port = process::free_port();
    let config = write_config(dir.path(), port, &sandbox, "path = \"appointments.db\"");
    let env = [("FSP_SALESFORCE__CLIENT_SECRET", SALESFORCE_SECRET)];
    let mut proxy = process::serve(&config, port, &[], &env).await;
    let client = reqwest::Client::new();

    // A burst of bookings; once some have been answered, the process is killed outright.
    let (answered, mut answers) = tokio::sync::mpsc::unbounded_channel();
    for n in 0..120 {
        let tag = format!("kill-{n}");
        let request = book(&client, &proxy.address(), &tagged(&tag), api_key());
        let answered = answered.clone();
        tokio::spawn(async move {
            let result = match request.await {
                Ok(response) if response.status() == 201 => {
                    let id = json_body(response).await["id"].as_str().map(str::to_owned);
                    id.map(|id| (201, Some(id)))
                }
                Ok(response) => Some((response.status().as_u16(), None)),
                Err(_) => None,
            };
            let _ = answered.send((tag, result));
        });
    }
    drop(answered);
    let mut created: HashMap<String, String> = HashMap::new();
    let mut unanswered = Vec::new();
    while let Some((tag, result)) = answers.recv().await {
        match result {
            Some((201, Some(id))) => {
                created.insert(tag, id);
                if created.len() == 30 {
                    proxy.kill_9();
                }
            }
            Some((status, _)) => panic!("{tag}: {status} before the kill"),
            None => unanswered.push(tag),
        }
    }
    assert!(created.len() >= 30, "{} answered", created.len());
    assert!(
        !unanswered.is_empty(),
        "the kill came after the burst, not in it"
    );

    // It starts again on the same file, cleanly.
    let proxy = process::serve(&config, port, &[], &env).await;
    for (tag, id) in &created {
        let retry = book(&client, &proxy.address(), &tagged(tag), api_key())
            .await
            .unwrap();
        assert_eq!(retry.status(), 200, "{tag} was answered 201 as {id}");
        assert_eq!(json_body(retry).await["id"], id.as_str());
    }
    // What was in flight when the process died was either never sent (it books now), or its
    // claim is still held (409, until it expires): never booked twice.
    for tag in &unanswered {
        let status = book(&client, &proxy.address(), &tagged(tag), api_key())
            .await
            .unwrap()
            .status()
            .as_u16();
        assert!([200, 201, 409].contains(&status), "{tag}: {status}");
    }
    let counts = bookings_by_tag(&sandbox);
    assert!(counts.values().all(|&n| n == 1), "booked twice: {counts:?}");
    let log = proxy.finish().join("\n");
    assert!(log.contains("store opened"), "{log}");
}

#[tokio::test]
async fn the_earlier_file_store_is_imported_at_first_start_and_by_command() {
    let sandbox = start_sandbox();
    let dir = tempfile::tempdir().unwrap();
    // What the earlier version left beside its configuration.
    let earlier = json!({
        "id": "08pxx0000000IMPAAA",
        "identifiers": ["http://hospital.example.org/fhir/appointment-id|OLD-1"],
        "resource": {"resourceType": "Appointment", "id": "08pxx0000000IMPAAA",
                     "status": "booked", "meta": {"lastUpdated": "2026-11-01T09:00:00.000Z"},
                     "participant": [{"actor": {"reference": "Patient/pat-1001"},
                                      "status": "accepted"}]}
    });
    std::fs::write(
        dir.path().join("appointments.jsonl"),
        format!("{earlier}\n"),
    )
    .unwrap();
    let port = process::free_port();
    // Default [store]: appointments.db beside the configuration.
    let config = write_config(dir.path(), port, &sandbox, "");
    let env = [("FSP_SALESFORCE__CLIENT_SECRET", SALESFORCE_SECRET)];
    let proxy = process::serve(&config, port, &[], &env).await;
    let client = reqwest::Client::new();
    let retry = book(&client, &proxy.address(), &tagged("OLD-1"), api_key())
        .await
        .unwrap();
    assert_eq!(retry.status(), 200, "the earlier booking is known");
    assert_eq!(json_body(retry).await["id"], "08pxx0000000IMPAAA");
    assert!(sandbox.bookings().is_empty());
    let log = proxy.finish().join("\n");
    assert!(log.contains("imported the earlier file store"), "{log}");
    assert!(log.contains("appointments=1"), "{log}");

    // The command imports another file, and says what it did; a second run does nothing.
    let other = dir.path().join("north.jsonl");
    let mut second = earlier.clone();
    second["id"] = json!("08pxx0000000IMPBBB");
    second["resource"]["id"] = json!("08pxx0000000IMPBBB");
    std::fs::write(&other, format!("{second}\n")).unwrap();
    let run = || {
        std::process::Command::new(BIN)
            .args(["import-store", "--config", config.to_str().unwrap()])
            .arg(&other)
            .env("FSP_SALESFORCE__CLIENT_SECRET", SALESFORCE_SECRET)
            .output()
            .unwrap()
    };
    let output = run();
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("1 appointments, 1 imported"), "{printed}");
    let output = run();
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("imported before"),
        "{output:?}"
    );
}

#[tokio::test]
async fn a_store_that_cannot_be_reached_stops_the_start_naming_it_but_not_its_password() {
    let sandbox = start_sandbox();
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens there.
    let db_port = process::free_port();
    let config = write_config(
        dir.path(),
        process::free_port(),
        &sandbox,
        &format!("url = \"postgres://fsp@127.0.0.1:{db_port}/fsp\"\nconnect_timeout_secs = 2"),
    );
    let output = std::process::Command::new(BIN)
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("FSP_SALESFORCE__CLIENT_SECRET", SALESFORCE_SECRET)
        .env("FSP_STORE__PASSWORD", "pg-secret-hunter2")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot open the store"), "{stderr}");
    assert!(
        stderr.contains(&format!("PostgreSQL 127.0.0.1:{db_port}/fsp")),
        "{stderr}"
    );
    assert!(!stderr.contains("pg-secret-hunter2"), "{stderr}");
    assert!(!stderr.contains("proxy started"), "{stderr}");
}
