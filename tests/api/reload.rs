//! Live reload of mapping files: `POST /admin/reload` in process, SIGHUP on the real binary. A good
//! file is used by the next request; a bad one is refused with its reason while the old mapping
//! keeps serving; a request in flight during a reload finishes on the version it started with.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fhir_salesforce_proxy::sandbox::{self, Sandbox};
use serde_json::Value;

use crate::helpers::*;

const DEADLINE: Duration = Duration::from_secs(20);
/// The work type the example mapping sends for the example appointment.
const OLD_WORK_TYPE: &str = "08qxx000000Axq6xxC";
/// The work type of the edited mapping.
const NEW_WORK_TYPE: &str = "08qxx000000Bbbbxx2";

/// A configuration directory: `proxy.toml` for the sandbox's org, `mapping.toml` (the example
/// mapping) and the secret file.
struct ConfigDir {
    dir: tempfile::TempDir,
}

impl ConfigDir {
    fn new(sandbox: &Sandbox, server_section: &str) -> ConfigDir {
        ConfigDir::with_auth(sandbox, server_section, "[auth]\ndisabled = true\n")
    }

    fn with_auth(sandbox: &Sandbox, server_section: &str, auth_section: &str) -> ConfigDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("secret.txt"),
            sandbox::DEFAULT_CLIENT_SECRET,
        )
        .unwrap();
        let config = ConfigDir { dir };
        config.write_mapping(&example_mapping_text());
        std::fs::write(
            config.config_file(),
            format!(
                "{server_section}\n[salesforce]\ntoken_url = \"{}\"\nclient_id = \"{}\"\n\
                 client_secret_file = \"secret.txt\"\n[mapping]\nfile = \"mapping.toml\"\n\
                 {auth_section}",
                sandbox.token_url(),
                sandbox::DEFAULT_CLIENT_ID
            ),
        )
        .unwrap();
        config
    }

    fn config_file(&self) -> PathBuf {
        self.dir.path().join("proxy.toml")
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write_mapping(&self, text: &str) {
        std::fs::write(self.dir.path().join("mapping.toml"), text).unwrap();
    }
}

fn example_mapping_text() -> String {
    std::fs::read_to_string(format!(
        "{}/mappings/example.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn edited_mapping_text() -> String {
    let text = example_mapping_text();
    assert!(text.contains(OLD_WORK_TYPE));
    text.replace(OLD_WORK_TYPE, NEW_WORK_TYPE)
}

fn last_work_type(sandbox: &Sandbox) -> Value {
    sandbox.bookings().last().expect("a booking").request["workTypeId"].clone()
}

fn spawn_with_config(sandbox: &Sandbox, config: &ConfigDir) -> TestApp {
    let file = config.config_file();
    spawn_proxy_with(
        salesforce_settings(&sandbox.token_url()),
        example_mapping(),
        move |s| s.config_file = Some(file),
    )
}

async fn reload(app: &TestApp) -> reqwest::Response {
    reload_with(app, &[]).await
}

/// `POST /admin/reload` with these headers.
async fn reload_with(app: &TestApp, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app.client.post(format!("{}/admin/reload", app.address));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

async fn generation(app: &TestApp) -> Value {
    let status = app
        .client
        .get(format!("{}/status", app.address))
        .send()
        .await
        .unwrap();
    json_body(status).await["mapping_generation"].clone()
}

#[tokio::test]
async fn a_good_mapping_is_used_by_the_next_request_after_a_reload() {
    // Arrange
    let sandbox = start_sandbox();
    let config = ConfigDir::new(&sandbox, "");
    let app = spawn_with_config(&sandbox, &config);
    assert_eq!(app.post_json(&numbered_appointment(1)).await.status(), 201);
    assert_eq!(last_work_type(&sandbox), OLD_WORK_TYPE);
    assert_eq!(generation(&app).await, 1);

    // Act
    config.write_mapping(&edited_mapping_text());
    let answer = reload(&app).await;

    // Assert
    assert_eq!(answer.status(), 200);
    let report = json_body(answer).await;
    assert_eq!(report["generation"], 2, "{report}");
    assert_eq!(report["reloaded"][0]["tenant"], Value::Null, "{report}");
    assert!(
        report["reloaded"][0]["mapping_file"]
            .as_str()
            .unwrap()
            .ends_with("mapping.toml"),
        "{report}"
    );
    assert_eq!(generation(&app).await, 2);
    assert_eq!(app.post_json(&numbered_appointment(2)).await.status(), 201);
    assert_eq!(last_work_type(&sandbox), NEW_WORK_TYPE);
}

#[tokio::test]
async fn a_bad_mapping_is_refused_with_its_reason_and_the_old_one_keeps_serving() {
    let sandbox = start_sandbox();
    let config = ConfigDir::new(&sandbox, "");
    let app = spawn_with_config(&sandbox, &config);
    config.write_mapping(&example_mapping_text().replace(OLD_WORK_TYPE, "not-an-id"));

    let answer = reload(&app).await;

    assert_eq!(answer.status(), 422);
    let body = json_body(answer).await;
    assert_outcome(&body, "invalid", None);
    let diagnostics = body["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(diagnostics.contains("mapping.toml"), "{diagnostics}");
    assert!(diagnostics.contains("line"), "{diagnostics}");
    assert!(diagnostics.contains("not a Salesforce id"), "{diagnostics}");
    assert!(
        diagnostics.contains("generation 1 keeps serving"),
        "{diagnostics}"
    );
    assert_eq!(generation(&app).await, 1);
    assert_eq!(app.post_json(&numbered_appointment(1)).await.status(), 201);
    assert_eq!(last_work_type(&sandbox), OLD_WORK_TYPE);

    // In XML when asked, like every other OperationOutcome.
    let answer = reload_with(&app, &[("Accept", "application/fhir+xml")]).await;
    assert_eq!(answer.status(), 422);
    let text = answer.text().await.unwrap();
    assert!(text.contains("<OperationOutcome"), "{text}");
    assert!(text.contains("not a Salesforce id"), "{text}");
}

#[tokio::test]
async fn a_config_that_cannot_be_loaded_is_refused_and_restart_only_changes_are_reported() {
    let sandbox = start_sandbox();
    let config = ConfigDir::new(&sandbox, "");
    let app = spawn_with_config(&sandbox, &config);
    let good = std::fs::read_to_string(config.config_file()).unwrap();

    std::fs::write(
        config.config_file(),
        format!("[server]\nbody_limit = -1\n{good}"),
    )
    .unwrap();
    let answer = reload(&app).await;
    assert_eq!(answer.status(), 422);
    let body = json_body(answer).await;
    let diagnostics = body["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(diagnostics.contains("proxy.toml"), "{diagnostics}");
    assert!(diagnostics.contains("server.body_limit"), "{diagnostics}");

    // A new tenant and a new listen address are reported, not applied.
    std::fs::write(
        config.config_file(),
        format!(
            "[server]\nlisten = \"127.0.0.1:1\"\n{good}\n[tenants.north.salesforce]\n\
             token_url = \"{}\"\nclient_id = \"x\"\nclient_secret_file = \"secret.txt\"\n\
             [tenants.north.mapping]\nfile = \"mapping.toml\"\n",
            sandbox.token_url()
        ),
    )
    .unwrap();
    let answer = reload(&app).await;
    assert_eq!(answer.status(), 200);
    let report = json_body(answer).await;
    let ignored = report["ignored"].to_string();
    assert!(ignored.contains("server.listen changed"), "{report}");
    assert!(ignored.contains("tenant north is new"), "{report}");
    assert_eq!(report["reloaded"].as_array().unwrap().len(), 1, "{report}");
    let unknown = app
        .client
        .get(format!("{}/fhir/north/metadata", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

/// The SHA-256 of an API key, hex, as `[[auth.clients]]` stores it.
fn sha256_hex(key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

#[tokio::test]
async fn a_reload_puts_in_the_client_list_of_the_file() {
    // Arrange: started with auth off; the file now has an engine and an admin client.
    let sandbox = start_sandbox();
    let clients = format!(
        "[auth]\n[[auth.clients]]\nid = \"engine\"\nscopes = [\"system/Appointment.*\"]\n\
         api_key_sha256 = \"{}\"\n[[auth.clients]]\nid = \"ops\"\nscopes = [\"system/Appointment.rs\"]\nadmin = true\n\
         api_key_sha256 = \"{}\"\n",
        sha256_hex("engine-key-0123456789abcdef"),
        sha256_hex("ops-key-0123456789abcdef")
    );
    let config = ConfigDir::with_auth(&sandbox, "", &clients);
    let app = spawn_with_config(&sandbox, &config);
    assert_eq!(app.post_json(&numbered_appointment(1)).await.status(), 201);

    // Act
    let answer = reload(&app).await;

    // Assert: the clients are in force, for FHIR and for the next reload.
    let status = answer.status();
    let report = json_body(answer).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["clients"], 2);
    assert_eq!(app.post_json(&numbered_appointment(2)).await.status(), 401);
    let with_key = app
        .client
        .post(format!("{}/fhir/Appointment", app.address))
        .header("Content-Type", "application/fhir+json")
        .header("X-Api-Key", "engine-key-0123456789abcdef")
        .body(numbered_appointment(3).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(with_key.status(), 201);
    assert_ne!(reload(&app).await.status(), 200, "reload without a key");
    let by_admin = reload_with(&app, &[("X-Api-Key", "ops-key-0123456789abcdef")]).await;
    assert_eq!(by_admin.status(), 200);
    assert_eq!(json_body(by_admin).await["generation"], 3);
}

#[tokio::test]
async fn a_reload_reads_a_rotated_client_jwks_file() {
    use crate::auth::{
        PUBLIC_URL, access_token, assert_invalid_client, assertion_claims, ec_key, jwks, sign,
        token_request,
    };
    // Arrange: a SMART client whose JWKS file holds its old key; the client's new key is not in
    // force yet.
    let sandbox = start_sandbox();
    let old = ec_key("engine-2025");
    let new = ec_key("engine-2026");
    let clients = format!(
        "[auth]\npublic_url = \"{PUBLIC_URL}\"\n[[auth.clients]]\nid = \"engine\"\n\
         scopes = [\"system/Appointment.*\"]\njwks_file = \"engine.jwks\"\n\
         [[auth.clients]]\nid = \"ops\"\nscopes = [\"system/Appointment.rs\"]\nadmin = true\n\
         api_key_sha256 = \"{}\"\n",
        sha256_hex("ops-key-0123456789abcdef")
    );
    let config = ConfigDir::with_auth(&sandbox, "", &clients);
    let jwks_file = config.path().join("engine.jwks");
    std::fs::write(&jwks_file, jwks(&[&old]).to_string()).unwrap();
    let app = spawn_with_config(&sandbox, &config);
    assert_eq!(reload(&app).await.status(), 200, "the file's clients go in");
    let scope = "system/Appointment.c";
    let signed_new = sign(&new, "engine-2026", &assertion_claims("engine"));
    assert_invalid_client(token_request(&app, &signed_new, scope).await, "kid").await;

    // Act: the client's keys are rotated in its JWKS file, then the proxy is told to reload.
    std::fs::write(&jwks_file, jwks(&[&new]).to_string()).unwrap();
    let answer = reload_with(&app, &[("X-Api-Key", "ops-key-0123456789abcdef")]).await;

    // Assert: the new key gets a token that books; the retired one no longer gets in.
    let status = answer.status();
    let report = json_body(answer).await;
    assert_eq!(status, 200, "{report}");
    // (The harness starts the app with other [server] and [salesforce] values than the file's,
    // and those are reported; nothing about the clients may be.)
    assert!(!report["ignored"].to_string().contains("auth"), "{report}");
    assert_eq!(report["clients"], 2, "{report}");
    let token = access_token(&app, &new, "engine", "engine-2026", scope).await;
    let booked = app
        .client
        .post(format!("{}/fhir/Appointment", app.address))
        .header("Content-Type", "application/fhir+json")
        .bearer_auth(token["access_token"].as_str().unwrap())
        .body(numbered_appointment(1).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(booked.status(), 201);
    assert_eq!(json_body(booked).await["status"], "booked");
    let signed_old = sign(&old, "engine-2025", &assertion_claims("engine"));
    assert_invalid_client(token_request(&app, &signed_old, scope).await, "kid").await;
}

#[tokio::test]
async fn a_proxy_without_a_configuration_file_has_nothing_to_reload() {
    let (app, _sandbox) = spawn_with_sandbox(example_mapping());

    let answer = reload(&app).await;

    assert_eq!(answer.status(), 409);
    assert_outcome(&json_body(answer).await, "not-supported", None);
}

#[tokio::test]
async fn a_request_in_flight_during_a_reload_finishes_on_the_old_mapping() {
    let sandbox = start_sandbox();
    let config = ConfigDir::new(&sandbox, "");
    let app = spawn_with_config(&sandbox, &config);
    let held = start_held(&sandbox, app.post_in_background(&numbered_appointment(1))).await;

    config.write_mapping(&edited_mapping_text());
    assert_eq!(reload(&app).await.status(), 200);
    // A request after the reload books with the new mapping while the first is still held.
    assert_eq!(app.post_json(&numbered_appointment(2)).await.status(), 201);
    assert_eq!(last_work_type(&sandbox), NEW_WORK_TYPE);
    sandbox.release_held();

    let first = held.await.unwrap().unwrap();
    assert_eq!(first.status(), 201);
    let body = json_body(first).await;
    assert_eq!(body["status"], "booked", "{body}");
    let bookings = sandbox.bookings();
    let first_booking = bookings
        .iter()
        .find(|b| b.id == body["id"].as_str().unwrap())
        .expect("the held booking");
    assert_eq!(first_booking.request["workTypeId"], OLD_WORK_TYPE);
}

/// Reads the child's stderr on a thread, line by line, and hands each line over a channel: the
/// pipe is drained for as long as the child lives.
fn drain_lines(stream: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                // Nobody listens any more; keep draining so the child never blocks on a full pipe.
                continue;
            }
        }
    });
    lines
}

/// Waits for a line containing `marker`, returning every line seen up to it.
pub fn wait_for(lines: &std::sync::mpsc::Receiver<String>, marker: &str) -> String {
    let started = Instant::now();
    let mut seen = String::new();
    loop {
        let left = DEADLINE.saturating_sub(started.elapsed());
        match lines.recv_timeout(left) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(marker) {
                    return seen;
                }
            }
            Err(_) => panic!("no line with {marker:?} in time; seen:\n{seen}"),
        }
    }
}

/// The real binary: `serve --config <file>` with its stderr drained line by line.
pub struct Served {
    /// The child.
    pub child: std::process::Child,
    /// Its stderr lines.
    pub lines: std::sync::mpsc::Receiver<String>,
}

impl Served {
    /// Starts `serve` and waits for "proxy started".
    pub fn start(config: &Path) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fhir-salesforce-proxy"))
            // JSON lines: fields read the same with or without a terminal's colours.
            .args(["--log-format", "json", "serve", "--config"])
            .arg(config)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = drain_lines(child.stderr.take().unwrap());
        let served = Served { child, lines };
        wait_for(&served.lines, "proxy started");
        served
    }

    /// Sends a signal (`HUP`, `TERM`) with `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the child to exit: its stderr closing is the signal (the reader thread ends and
    /// the channel disconnects), then its status is collected.
    pub fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            let left = DEADLINE.saturating_sub(started.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(_) => continue,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("the proxy did not exit"),
            }
        }
        self.child.wait().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound and released; the child binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn sighup_reloads_the_real_binary_and_a_bad_file_is_logged_and_refused() {
    let sandbox = start_sandbox();
    let port = free_port();
    let config = ConfigDir::new(
        &sandbox,
        &format!("[server]\nlisten = \"127.0.0.1:{port}\""),
    );
    let served = Served::start(&config.config_file());
    let client = reqwest::Client::new();
    let book = |n: usize| {
        client
            .post(format!("http://127.0.0.1:{port}/fhir/Appointment"))
            .header("Content-Type", "application/fhir+json")
            .body(numbered_appointment(n).to_string())
            .send()
    };

    // A bad file: refused, logged with file and reason, the old mapping keeps booking.
    config.write_mapping(&example_mapping_text().replace(OLD_WORK_TYPE, "not-an-id"));
    served.signal("HUP");
    let log = wait_for(&served.lines, "reload refused");
    assert!(log.contains("mapping.toml"), "{log}");
    assert!(log.contains("not a Salesforce id"), "{log}");
    let audit = wait_for(&served.lines, "security event");
    let audit = audit.lines().last().unwrap();
    assert!(audit.contains(r#""target":"audit""#), "{audit}");
    assert!(audit.contains(r#""via":"SIGHUP""#), "{audit}");
    assert!(audit.contains(r#""outcome":"failure""#), "{audit}");
    assert_eq!(book(1).await.unwrap().status(), 201);
    assert_eq!(last_work_type(&sandbox), OLD_WORK_TYPE);

    // A good file: the next booking uses it.
    config.write_mapping(&edited_mapping_text());
    served.signal("HUP");
    let log = wait_for(&served.lines, "mappings reloaded");
    assert!(log.contains(r#""generation":2"#), "{log}");
    let audit = wait_for(&served.lines, "security event");
    assert!(
        audit
            .lines()
            .last()
            .unwrap()
            .contains(r#""outcome":"success""#),
        "{audit}"
    );
    assert_eq!(book(2).await.unwrap().status(), 201);
    assert_eq!(last_work_type(&sandbox), NEW_WORK_TYPE);
    assert!(config.path().join("appointments.db").is_file());
}
