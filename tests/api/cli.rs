//! The command line, run as a user would: `translate`, `check-mapping`, `serve` and `demo`.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

use fhir_salesforce_proxy::sandbox::{Sandbox, SandboxSettings};
use serde_json::{Value, json};

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_fhir-salesforce-proxy");

fn repo(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// Kills the child when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn translate_prints_the_documented_sample_for_the_example() {
    let output = Command::new(BIN)
        .args([
            "translate",
            &repo("examples/appointment.json"),
            "--mapping",
            &repo("mappings/example.toml"),
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, documented_sample());
}

#[test]
fn translate_says_when_only_lookups_are_missing() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("lookups.toml");
    let text = std::fs::read_to_string(repo("mappings/example.toml")).unwrap()
        + "\n[[ids.lookup]]\ntype = \"Location\"\nobject = \"Account\"\n\
           external_id_field = \"EHR_Location_Id__c\"\n";
    std::fs::write(&mapping, text).unwrap();
    let output = Command::new(BIN)
        .args([
            "translate",
            &repo("examples/appointment.json"),
            "--mapping",
            mapping.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("translate does not make"), "{stderr}");
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["resourceType"], "OperationOutcome");
    assert!(
        printed["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("lookup by external id"),
        "{printed}"
    );
}

#[test]
fn translate_reads_xml_and_explains_failures_with_exit_code_1() {
    let output = Command::new(BIN)
        .args([
            "translate",
            &repo("tests/fixtures/fhir/appointment-example.xml"),
            "--mapping",
            &repo("tests/fixtures/mappings/spec-crosswalk.toml"),
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["appointmentTypes"], json!(["FOLLOWUP"]));

    // The spec's example through the example mapping: its references have no Salesforce ids.
    let output = Command::new(BIN)
        .args([
            "translate",
            &repo("tests/fixtures/fhir/appointment-example.json"),
            "--mapping",
            &repo("mappings/example.toml"),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let outcome: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_outcome(
        &outcome,
        "not-found",
        Some("Appointment.participant[0].actor"),
    );
    assert_outcome(
        &outcome,
        "not-found",
        Some("Appointment.participant[2].actor"),
    );
}

#[test]
fn check_mapping_accepts_the_example_and_names_line_and_reason_of_a_bad_file() {
    let output = Command::new(BIN)
        .args(["check-mapping", &repo("mappings/example.toml")])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("OK"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[defaults]\nsource_system = \"cerner\"\nchannel_id = \"not-an-id\"\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["check-mapping", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.toml, line 3"), "{stderr}");
    assert!(stderr.contains("not a Salesforce id"), "{stderr}");
}

#[test]
fn serve_refuses_a_bad_config_with_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxy.toml");
    std::fs::write(
        &config,
        "[server]\nbody_limit = -1\n[salesforce]\ntoken_url = \"https://x.my.salesforce.com/services/oauth2/token\"\n\
         client_id = \"abc\"\n[mapping]\nfile = \"m.toml\"\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("FSP_SALESFORCE__CLIENT_SECRET", "s")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("proxy.toml"), "{stderr}");
    assert!(stderr.contains("server.body_limit"), "{stderr}");
}

/// Reads the child's stream on a thread until a line containing `marker` appears (the signal that
/// it is ready), and keeps draining it afterwards so the child never writes into a closed pipe.
async fn wait_for_line(
    stream: impl std::io::Read + Send + 'static,
    marker: &'static str,
) -> String {
    let (ready, seen) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut ready = Some(ready);
        let mut text = String::new();
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if ready.is_none() {
                continue; // already signalled: only drain
            }
            text.push_str(&line);
            text.push('\n');
            if line.contains(marker)
                && let Some(sender) = ready.take()
            {
                let _ = sender.send(Ok(std::mem::take(&mut text)));
            }
        }
        if let Some(sender) = ready {
            let _ = sender.send(Err(text));
        }
    });
    match seen.await.unwrap() {
        Ok(text) => text,
        Err(text) => panic!("the process ended before printing {marker:?}:\n{text}"),
    }
}

#[tokio::test]
async fn serve_books_through_a_configured_org_with_environment_overrides() {
    let sandbox = Sandbox::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        SandboxSettings::default(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo("mappings/example.toml"),
        dir.path().join("mapping.toml"),
    )
    .unwrap();
    // The client's key as `api-key` makes it: the key for the client, the hash for the file.
    let made = Command::new(BIN).arg("api-key").output().unwrap();
    assert!(made.status.success());
    let printed = String::from_utf8(made.stdout).unwrap();
    let key = printed
        .split_whitespace()
        .find(|word| word.starts_with("fsp-"))
        .expect("a key")
        .to_owned();
    let hash_line = printed
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("api_key_sha256 = "))
        .expect("a line for the configuration");
    let config = dir.path().join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:1\"\n[salesforce]\ntoken_url = \"{}\"\nclient_id = \"sandbox-client\"\n\
             [mapping]\nfile = \"mapping.toml\"\n\
             [[auth.clients]]\nid = \"engine\"\nscopes = [\"system/Appointment.c\"]\n{hash_line}\n",
            sandbox.token_url()
        ),
    )
    .unwrap();
    assert!(!std::fs::read_to_string(&config).unwrap().contains(&key));
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("FSP_SALESFORCE__CLIENT_SECRET", "sandbox-secret")
        .env("FSP_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("FSP_SERVER__BASE_PATH", "/r4")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _running = Running(child);
    let log = wait_for_line(stderr, "proxy started").await;
    assert!(!log.contains("sandbox-secret"), "{log}");

    let post = |key: Option<&str>| {
        let mut request = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/r4/Appointment"))
            .header("Content-Type", "application/fhir+json")
            .body(example_appointment().to_string());
        if let Some(key) = key {
            request = request.header("X-API-Key", key);
        }
        request.send()
    };
    assert_eq!(post(None).await.unwrap().status(), 401);
    assert!(sandbox.bookings().is_empty());
    let response = post(Some(&key)).await.unwrap();

    assert_eq!(response.status(), 201);
    let id = sandbox.bookings()[0].id.clone();
    assert_eq!(
        response.headers()["location"],
        format!("/r4/Appointment/{id}").as_str()
    );
}

#[tokio::test]
async fn serve_books_for_a_named_tenant_with_its_own_secret_variable() {
    let sandbox = Sandbox::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        SandboxSettings::default(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo("mappings/example.toml"),
        dir.path().join("mapping.toml"),
    )
    .unwrap();
    let config = dir.path().join("proxy.toml");
    let port = free_port();
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\
             [tenants.east-1.salesforce]\ntoken_url = \"{}\"\nclient_id = \"sandbox-client\"\n\
             [tenants.east-1.mapping]\nfile = \"mapping.toml\"\n[auth]\ndisabled = true\n",
            sandbox.token_url()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config", config.to_str().unwrap()])
        .env(
            "FSP_TENANTS__EAST_1__SALESFORCE__CLIENT_SECRET",
            "sandbox-secret",
        )
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _running = Running(child);
    let log = wait_for_line(stderr, "proxy started").await;
    assert!(log.contains("east-1"), "the tenants are logged: {log}");
    assert!(!log.contains("sandbox-secret"), "{log}");

    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/fhir/east-1/Appointment"))
        .header("Content-Type", "application/fhir+json")
        .body(example_appointment().to_string())
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 201);
    let id = sandbox.bookings()[0].id.clone();
    assert_eq!(
        response.headers()["location"],
        format!("/fhir/east-1/Appointment/{id}").as_str()
    );
    // The store sits beside the configuration, and holds the tenant's booking.
    assert!(dir.path().join("appointments.db").is_file());
    let store =
        fhir_salesforce_proxy::store::Store::sqlite(&dir.path().join("appointments.db")).unwrap();
    assert!(
        store
            .tenant(Some("east-1"))
            .get(&id)
            .await
            .unwrap()
            .is_some()
    );
    assert!(store.tenant(None).get(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn demo_prints_a_curl_line_that_books_the_example() {
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["demo", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _running = Running(child);
    let printed = wait_for_line(stdout, "curl").await;
    let expected_url = format!("http://127.0.0.1:{port}/fhir/Appointment");
    assert!(printed.contains(&expected_url), "{printed}");
    assert!(
        printed.contains("--data-binary @examples/appointment.json"),
        "{printed}"
    );

    let key = printed
        .split("-H 'X-API-Key: ")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no API key in the curl line: {printed}"));
    assert!(key.len() >= 32, "a long random key: {key}");
    let body = std::fs::read(repo("examples/appointment.json")).unwrap();
    let client = reqwest::Client::new();

    // Without the key the demo refuses, like any proxy.
    let refused = client
        .post(&expected_url)
        .header("Content-Type", "application/fhir+json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_outcome(&json_body(refused).await, "login", None);

    // Do what the printed line does.
    let response = client
        .post(&expected_url)
        .header("Content-Type", "application/fhir+json")
        .header("X-API-Key", key)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body = json_body(response).await;
    assert_eq!(body["status"], "booked");
    assert!(body["id"].as_str().unwrap().starts_with("08p"));
}

#[tokio::test]
async fn every_environment_variable_readme_documents_works_on_the_real_binary() {
    let sandbox = start_sandbox();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo("mappings/example.toml"),
        dir.path().join("mapping.toml"),
    )
    .unwrap();
    let (file_port, env_port) = (free_port(), free_port());
    let config = dir.path().join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{file_port}\"\n\
             [salesforce]\ntoken_url = \"{}\"\nclient_id = \"sandbox-client\"\n\
             [mapping]\nfile = \"mapping.toml\"\n[auth]\ndisabled = true\n",
            sandbox.token_url()
        ),
    )
    .unwrap();
    let audit = dir.path().join("audit.jsonl");
    let store = dir.path().join("from-env.db");
    let env = [
        ("FSP_LOG_FORMAT", "json"),
        ("FSP_AUDIT_FILE", audit.to_str().unwrap()),
        ("FSP_SALESFORCE__CLIENT_SECRET", "sandbox-secret"),
        // A configuration key, FSP_<SECTION>__<KEY>, overriding the file.
        ("FSP_SERVER__LISTEN", &format!("127.0.0.1:{env_port}")),
        ("FSP_STORE__PATH", store.to_str().unwrap()),
        ("RUST_LOG", "info"),
        ("NO_COLOR", "1"),
    ];
    let proxy = crate::process::serve(&config, env_port, &[], &env).await;
    let response = reqwest::Client::new()
        .post(format!("{}/fhir/Appointment", proxy.address()))
        .header("Content-Type", "application/fhir+json")
        .body(example_appointment().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let lines = proxy.finish();
    assert!(
        lines
            .iter()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "FSP_LOG_FORMAT=json: {lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains('\u{1b}')), "NO_COLOR");
    let audit = std::fs::read_to_string(&audit).unwrap();
    assert!(
        audit.contains("\"interaction\":\"create\""),
        "FSP_AUDIT_FILE: {audit}"
    );
    assert!(store.is_file(), "FSP_STORE__PATH");
    assert!(!dir.path().join("appointments.db").exists());

    // A bad value from the environment is named by its variable, not by the file.
    let output = Command::new(BIN)
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("FSP_SALESFORCE__CLIENT_SECRET", "sandbox-secret")
        .env("FSP_SERVER__BODY_LIMIT", "big")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("environment variable FSP_SERVER__BODY_LIMIT"),
        "{stderr}"
    );
    assert!(!stderr.contains("proxy.toml"), "{stderr}");
}
