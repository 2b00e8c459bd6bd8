//! Starting the proxy (and its Salesforce) for a test.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use fhir_salesforce_proxy::config::{SalesforceSettings, ServerSettings};
use fhir_salesforce_proxy::mapping::{EXAMPLE_APPOINTMENT, EXAMPLE_MAPPING, Mapping};
use fhir_salesforce_proxy::sandbox::{self, Sandbox, SandboxSettings};
use fhir_salesforce_proxy::server::Application;
use serde_json::Value;

/// A running proxy.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// A client for talking to it.
    pub client: reqwest::Client,
    handle: ServerHandle,
}

impl TestApp {
    /// Stops the proxy and waits until it has (a restart in a test).
    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

impl TestApp {
    /// `POST /fhir/Appointment` with a body and content type.
    pub async fn post_appointment(
        &self,
        body: impl Into<reqwest::Body>,
        content_type: &str,
    ) -> reqwest::Response {
        self.client
            .post(format!("{}/fhir/Appointment", self.address))
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .expect("the proxy answers")
    }

    /// `POST /fhir/Appointment` with a FHIR JSON body.
    pub async fn post_json(&self, body: &Value) -> reqwest::Response {
        self.post_appointment(body.to_string(), "application/fhir+json")
            .await
    }
}

/// The example mapping shipped in `mappings/example.toml`.
pub fn example_mapping() -> Mapping {
    Mapping::from_toml(EXAMPLE_MAPPING, "mappings/example.toml").unwrap()
}

/// The example appointment shipped in `examples/appointment.json`.
pub fn example_appointment() -> Value {
    serde_json::from_str(EXAMPLE_APPOINTMENT).unwrap()
}

/// The example appointment with its own business identifier `A-<n>`, so that posting it books
/// anew instead of matching an earlier booking of the example.
pub fn numbered_appointment(n: usize) -> Value {
    let mut a = example_appointment();
    a["identifier"][0]["value"] = Value::String(format!("A-{n}"));
    a
}

/// The Book Appointment Action page's sample request, with an 18-character workTypeId where the
/// docs' sample has a 19-character typo: what the example appointment must become.
pub fn documented_sample() -> Value {
    serde_json::from_slice(&fixture(
        "salesforce/book-appointment-documented-sample.json",
    ))
    .unwrap()
}

/// A test mapping from `tests/fixtures/mappings/`.
pub fn fixture_mapping(name: &str) -> Mapping {
    let path = format!(
        "{}/tests/fixtures/mappings/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    Mapping::load(std::path::Path::new(&path)).unwrap()
}

/// A fixture file's bytes from `tests/fixtures/`.
pub fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Salesforce settings for a token endpoint, with test-friendly timeouts.
pub fn salesforce_settings(token_url: &str) -> SalesforceSettings {
    let mut s = SalesforceSettings::with_defaults(
        token_url.parse().unwrap(),
        sandbox::DEFAULT_CLIENT_ID,
        sandbox::DEFAULT_CLIENT_SECRET.into(),
    );
    s.request_timeout = Duration::from_secs(5);
    s.connect_timeout = Duration::from_secs(1);
    s.throttle_retry_after = Duration::from_secs(42);
    s
}

/// Inbound auth switched off, for every test that is not about auth: the one place it is off
/// (`tests/api/auth.rs` starts proxies with clients through [`spawn_tenants_with_auth`]).
pub fn auth_disabled() -> std::sync::Arc<fhir_salesforce_proxy::auth::Auth> {
    std::sync::Arc::new(fhir_salesforce_proxy::auth::Auth::new(
        fhir_salesforce_proxy::auth::AuthSettings::disabled(),
    ))
}

/// Starts the proxy on port 0 with these settings.
pub fn spawn_proxy(salesforce: SalesforceSettings, mapping: Mapping) -> TestApp {
    spawn_proxy_with(salesforce, mapping, |_| {})
}

/// Starts the proxy on port 0, letting the test adjust the server settings.
pub fn spawn_proxy_with(
    salesforce: SalesforceSettings,
    mapping: Mapping,
    adjust: impl FnOnce(&mut ServerSettings),
) -> TestApp {
    spawn_proxy_full(
        salesforce,
        mapping,
        adjust,
        std::sync::Arc::new(fhir_salesforce_proxy::store::MemoryStore::default()),
    )
}

/// Starts the proxy on port 0 with a given appointment store.
pub fn spawn_proxy_full(
    salesforce: SalesforceSettings,
    mapping: Mapping,
    adjust: impl FnOnce(&mut ServerSettings),
    store: std::sync::Arc<dyn fhir_salesforce_proxy::store::AppointmentStore>,
) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut server = ServerSettings::with_defaults(listener.local_addr().unwrap());
    adjust(&mut server);
    let app = Application::with_listener(
        listener,
        &server,
        salesforce,
        mapping,
        store,
        auth_disabled(),
    )
    .unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        handle,
    }
}

/// Starts a sandbox and a proxy wired to it.
pub fn spawn_with_sandbox(mapping: Mapping) -> (TestApp, Sandbox) {
    let sandbox = Sandbox::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        SandboxSettings::default(),
    )
    .unwrap();
    let app = spawn_proxy(salesforce_settings(&sandbox.token_url()), mapping);
    (app, sandbox)
}

/// Starts a sandbox and a proxy wired to it, letting the test adjust the Salesforce settings
/// (back-off, concurrency bound, timeouts).
pub fn spawn_with_sandbox_using(
    mapping: Mapping,
    adjust: impl FnOnce(&mut SalesforceSettings),
) -> (TestApp, Sandbox) {
    let sandbox = Sandbox::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        SandboxSettings::default(),
    )
    .unwrap();
    let mut settings = salesforce_settings(&sandbox.token_url());
    adjust(&mut settings);
    let app = spawn_proxy(settings, mapping);
    (app, sandbox)
}

/// The response body as JSON (panics with the body text when it is not JSON).
pub async fn json_body(response: reqwest::Response) -> Value {
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Asserts an OperationOutcome with one issue having this code (and expression, when given).
pub fn assert_outcome(body: &Value, code: &str, expression: Option<&str>) {
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    let issues = body["issue"].as_array().expect("issue array");
    let found = issues.iter().any(|i| {
        i["code"] == code
            && expression.is_none_or(|e| {
                i["expression"]
                    .as_array()
                    .is_some_and(|x| x.iter().any(|v| v == e))
            })
    });
    assert!(
        found,
        "no issue with code {code} at {expression:?} in {body}"
    );
}

/// Starts the proxy on port 0 serving several tenants (`None`: the one at the FHIR base), each
/// with its own Salesforce settings, mapping and in-memory store.
pub fn spawn_tenants(tenants: Vec<(Option<&str>, SalesforceSettings, Mapping)>) -> TestApp {
    spawn_tenants_with_auth(tenants, auth_disabled())
}

/// Starts the proxy on port 0 serving several tenants, with this inbound auth.
pub fn spawn_tenants_with_auth(
    tenants: Vec<(Option<&str>, SalesforceSettings, Mapping)>,
    auth: std::sync::Arc<fhir_salesforce_proxy::auth::Auth>,
) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = ServerSettings::with_defaults(listener.local_addr().unwrap());
    let tenants = tenants
        .into_iter()
        .map(
            |(name, salesforce, mapping)| fhir_salesforce_proxy::server::Tenant {
                name: name.map(str::to_owned),
                salesforce,
                mapping,
                store: std::sync::Arc::new(fhir_salesforce_proxy::store::MemoryStore::default()),
            },
        )
        .collect();
    let app = Application::with_tenants(listener, &server, tenants, auth).unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        handle,
    }
}

/// A sandbox with default settings on a free loopback port.
pub fn start_sandbox() -> Sandbox {
    Sandbox::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        SandboxSettings::default(),
    )
    .unwrap()
}
