//! Starting the proxy (and its Salesforce) for a test.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use fhir_salesforce_proxy::auth::{Auth, AuthSettings};
use fhir_salesforce_proxy::config::{SalesforceSettings, ServerSettings};
use fhir_salesforce_proxy::mapping::{EXAMPLE_APPOINTMENT, EXAMPLE_MAPPING, Mapping};
use fhir_salesforce_proxy::sandbox::{self, Sandbox, SandboxSettings};
use fhir_salesforce_proxy::server::Application;
use fhir_salesforce_proxy::store::Store;
use serde_json::Value;

/// A running proxy.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// A client for talking to it.
    pub client: reqwest::Client,
    /// Its store.
    pub store: Store,
    /// Its inbound auth (to replace clients as a reload would).
    pub auth: std::sync::Arc<Auth>,
    handle: ServerHandle,
    /// The store's directory, when the proxy has a store of its own.
    _store_dir: Option<tempfile::TempDir>,
}

/// A store of its own for one test: SQLite in a fresh temporary directory.
pub fn test_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::sqlite(&dir.path().join("appointments.db")).unwrap();
    (store, dir)
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

    /// `GET /metrics`, checked to be a 200 in the OpenMetrics text format.
    pub async fn metrics(&self) -> String {
        let response = self
            .client
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/openmetrics-text")
        );
        response.text().await.unwrap()
    }

    /// The request of [`TestApp::post_json`], sent in the background.
    pub fn post_in_background(&self, body: &Value) -> tokio::task::JoinHandle<reqwest::Response> {
        let request = self
            .client
            .post(format!("{}/fhir/Appointment", self.address))
            .header("Content-Type", "application/fhir+json")
            .body(body.to_string());
        tokio::spawn(async move { request.send().await.unwrap() })
    }
}

/// How long a test waits for something the proxy or the sandbox will surely do.
pub const HELD_DEADLINE: Duration = Duration::from_secs(30);

/// Has the sandbox hold the next Salesforce call, starts `request` (one that makes such a call)
/// in the background, and returns once the sandbox holds it; the call goes on after
/// `sandbox.release_held()`. Panics if the call does not reach the sandbox in time.
pub async fn start_held<T: Send + 'static>(
    sandbox: &Sandbox,
    request: impl std::future::Future<Output = T> + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    sandbox.set_fault_for(sandbox::Fault::Hold, 1);
    let started = tokio::spawn(request);
    tokio::time::timeout(HELD_DEADLINE, sandbox.wait_until_held(1))
        .await
        .expect("the request's Salesforce call reaches the sandbox");
    started
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
pub fn auth_disabled(store: &Store) -> std::sync::Arc<Auth> {
    std::sync::Arc::new(Auth::new(AuthSettings::disabled(), store.clone()))
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
    let (store, dir) = test_store();
    let mut app = spawn_proxy_full(salesforce, mapping, adjust, store);
    app._store_dir = Some(dir);
    app
}

/// Starts the proxy on port 0 with a given store (kept by the caller).
pub fn spawn_proxy_full(
    salesforce: SalesforceSettings,
    mapping: Mapping,
    adjust: impl FnOnce(&mut ServerSettings),
    store: Store,
) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut server = ServerSettings::with_defaults(listener.local_addr().unwrap());
    adjust(&mut server);
    let auth = auth_disabled(&store);
    let app = Application::with_listener(
        listener,
        &server,
        salesforce,
        mapping,
        store.clone(),
        auth.clone(),
    )
    .unwrap();
    running(app, store, auth, None)
}

/// A started application as a [`TestApp`].
fn running(
    app: Application,
    store: Store,
    auth: std::sync::Arc<Auth>,
    store_dir: Option<tempfile::TempDir>,
) -> TestApp {
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        store,
        auth,
        handle,
        _store_dir: store_dir,
    }
}

/// Starts a sandbox and a proxy wired to it.
pub fn spawn_with_sandbox(mapping: Mapping) -> (TestApp, Sandbox) {
    spawn_with_sandbox_using(mapping, |_| {})
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
/// with its own Salesforce settings and mapping, sharing a store of their own.
pub fn spawn_tenants(tenants: Vec<(Option<&str>, SalesforceSettings, Mapping)>) -> TestApp {
    spawn_tenants_with_auth(tenants, AuthSettings::disabled())
}

/// Starts the proxy on port 0 serving several tenants, with this inbound auth.
pub fn spawn_tenants_with_auth(
    tenants: Vec<(Option<&str>, SalesforceSettings, Mapping)>,
    auth: AuthSettings,
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
            },
        )
        .collect();
    let (store, dir) = test_store();
    let auth = std::sync::Arc::new(Auth::new(auth, store.clone()));
    let app =
        Application::with_tenants(listener, &server, tenants, store.clone(), auth.clone()).unwrap();
    running(app, store, auth, Some(dir))
}

/// A sandbox with default settings on a free loopback port.
pub fn start_sandbox() -> Sandbox {
    Sandbox::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        SandboxSettings::default(),
    )
    .unwrap()
}

/// A PostgreSQL schema of its own for one test, in the database `FSP_TEST_POSTGRES_URL` names
/// (`.ci/run` starts one). `None` when none is configured, said loudly; CI sets
/// `FSP_TEST_REQUIRE_POSTGRES`, which makes a missing one a failure.
pub struct TestPostgres {
    /// `postgres://user@host:port/db?options=-csearch_path%3D<schema>`.
    pub url: url::Url,
    /// The password, if the database needs one.
    pub password: Option<String>,
    /// Where the server listens.
    pub address: std::net::SocketAddr,
}

impl TestPostgres {
    /// The store settings for this schema, reaching the server at `port` on 127.0.0.1 (the
    /// server's own, or a [`Forwarder`]'s).
    pub fn settings_via(&self, port: u16) -> fhir_salesforce_proxy::config::StoreSettings {
        let mut url = self.url.clone();
        url.set_port(Some(port)).unwrap();
        let mut settings = fhir_salesforce_proxy::config::StoreSettings::sqlite("unused".into());
        settings.engine = fhir_salesforce_proxy::config::StoreEngine::Postgres(
            fhir_salesforce_proxy::config::PostgresSettings {
                url,
                password: self.password.clone().map(Into::into),
                max_connections: 8,
                connect_timeout: Duration::from_secs(2),
                ca_file: None,
            },
        );
        settings
    }
}

/// See [`TestPostgres`].
pub async fn test_postgres() -> Option<TestPostgres> {
    let Ok(base) = std::env::var("FSP_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("FSP_TEST_REQUIRE_POSTGRES").is_none(),
            "FSP_TEST_REQUIRE_POSTGRES is set but FSP_TEST_POSTGRES_URL is not"
        );
        eprintln!(
            "\n*** PostgreSQL test NOT RUN: set FSP_TEST_POSTGRES_URL (see .ci/postgres) ***\n"
        );
        return None;
    };
    let password = std::env::var("FSP_TEST_POSTGRES_PASSWORD").ok();
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
    let host = url.host_str().unwrap().to_owned();
    let address = format!("{host}:{}", url.port().unwrap_or(5432))
        .parse()
        .unwrap();
    Some(TestPostgres {
        url,
        password,
        address,
    })
}

/// A TCP forwarder on 127.0.0.1 that a test can cut (every connection dropped, nothing
/// listening) and restore: a database lost and found again while the proxy runs.
pub struct Forwarder {
    /// The port it listens on.
    pub port: u16,
    target: std::net::SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Forwarder {
    /// Forwards a free port to `target`.
    pub async fn start(target: std::net::SocketAddr) -> Forwarder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        Forwarder {
            port,
            target,
            task: Some(tokio::spawn(forward(listener, target))),
        }
    }

    /// Drops every forwarded connection and stops listening.
    pub async fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    pub fn restore(&mut self) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket
            .bind(format!("127.0.0.1:{}", self.port).parse().unwrap())
            .unwrap();
        let listener = socket.listen(64).unwrap();
        self.task = Some(tokio::spawn(forward(listener, self.target)));
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn forward(listener: tokio::net::TcpListener, target: std::net::SocketAddr) {
    // Aborting this task drops the set, which aborts (and closes) every connection.
    let mut connections = tokio::task::JoinSet::new();
    while let Ok((mut inbound, _)) = listener.accept().await {
        connections.spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}
