//! Settings: the TOML configuration file, its environment overrides, and secrets.
//!
//! Every key can be overridden by an environment variable `FSP_<SECTION>__<KEY>` (for example
//! `FSP_SERVER__LISTEN=0.0.0.0:8080`). The Salesforce client secret is read only from
//! `FSP_SALESFORCE__CLIENT_SECRET` or from the file named by `salesforce.client_secret_file`, and it
//! is a [`SecretString`] from the moment it is read: a secret written into the configuration file
//! itself is refused, so it cannot end up in version control or on a command line. The JWT bearer
//! flow's private key likewise comes only from the file named by `salesforce.private_key_file` and
//! is a [`PrivateKey`] (zeroed on drop, never shown) from the moment it is read.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use figment::value::magic::RelativePathBuf;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::salesforce::jwt::PrivateKey;

mod store;
pub use crate::channel::is_private_channel;
pub use crate::store::settings::{
    ENV_STORE_PASSWORD, LegacyImport, PostgresSettings, StoreEngine, StoreSettings,
};
pub use store::{DEFAULT_STORE_FILE, LEGACY_STORE_FILE};

/// The prefix of every environment override.
pub const ENV_PREFIX: &str = "FSP_";
/// The environment variable that holds the Salesforce client secret.
pub const ENV_CLIENT_SECRET: &str = "FSP_SALESFORCE__CLIENT_SECRET";

/// Why the configuration was refused: where, which key, and why.
#[derive(Debug, thiserror::Error)]
#[error("configuration {source_name}: {key}: {reason}")]
pub struct ConfigError {
    /// The file or environment variable the bad value came from.
    pub source_name: String,
    /// The key, e.g. `server.body_limit`.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

/// All settings of a running proxy.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The HTTP listener and FHIR endpoint.
    pub server: ServerSettings,
    /// The orgs served: the unnamed one (`[salesforce]`, `[mapping]`) first when it is
    /// configured, then the named ones (`[tenants.NAME]`) in name order. Never empty.
    pub tenants: Vec<TenantSettings>,
    /// Where appointments, identifier claims and issued tokens are kept (`[store]`), for every
    /// tenant.
    pub store: StoreSettings,
    /// Who may call (`[auth]`): required, so a proxy never runs open by accident.
    pub auth: crate::auth::AuthSettings,
}

/// One Salesforce org (or source system) served by the proxy, with its own connection, token
/// cache and mapping (its rows in the store are kept apart by its name).
#[derive(Debug, Clone)]
pub struct TenantSettings {
    /// `None` for the tenant served at the FHIR base itself; a name for one served at
    /// `{base}/{name}`.
    pub name: Option<String>,
    /// The Salesforce connection.
    pub salesforce: SalesforceSettings,
    /// The mapping file.
    pub mapping_file: PathBuf,
}

/// Whether `name` can name a tenant: 1–40 lower-case letters, digits, `-` and `_`, starting with a
/// letter or digit. Lower case keeps names apart from FHIR resource types (`Appointment`) in URLs;
/// `metadata` is taken by the CapabilityStatement and `status` by the status page (which would
/// collide with a tenant when the FHIR base is the root).
pub fn is_tenant_name(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && !matches!(name, "metadata" | "status")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The environment variable holding a tenant's client secret:
/// `FSP_TENANTS__<NAME>__SALESFORCE__CLIENT_SECRET`, the name upper-cased with `-` as `_`.
pub fn tenant_secret_variable(name: &str) -> String {
    format!(
        "{ENV_PREFIX}TENANTS__{}__SALESFORCE__CLIENT_SECRET",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

/// The HTTP listener and FHIR endpoint.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Path under which the FHIR endpoints live, e.g. `/fhir` (no trailing slash; may be empty).
    pub base_path: String,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// How long `/readyz` reuses an org's token check, so probes cost no API calls.
    pub readiness_cache: Duration,
    /// The configuration file these settings came from, read again by a reload (`None`: built
    /// in code, as `demo` and tests do; such a proxy has nothing to reload).
    pub config_file: Option<PathBuf>,
    /// How long a shutdown (SIGTERM, Ctrl-C) waits for requests in flight before it drops them.
    pub shutdown_timeout: Duration,
    /// Largest accepted request head (names and values of all headers), in bytes; a larger one is
    /// a 431. Below actix-web's own hard limit ([`ACTIX_MAX_HEAD_BYTES`]).
    pub max_header_bytes: usize,
    /// The longest a request may take from its headers to its answer; a slower one is answered
    /// 504 (or 503 when it cannot have changed anything) and its work is dropped.
    pub request_timeout: Duration,
    /// The most requests handled at once; beyond it a request is answered 503 at once, without
    /// reaching Salesforce (`/healthz`, `/readyz` and `/metrics` are not counted).
    pub max_concurrent_requests: usize,
    /// HTTPS on the listener, when configured.
    pub tls: Option<TlsSettings>,
}

/// `[server.tls]`: the listener's certificate chain and private key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// The Salesforce connection.
#[derive(Debug, Clone)]
pub struct SalesforceSettings {
    /// The OAuth token endpoint (the org's My Domain host for client credentials).
    pub token_url: Url,
    /// API version, e.g. `65.0` (the Appointment Management API exists from 65.0 on).
    pub api_version: String,
    /// The connected app's consumer key.
    pub client_id: String,
    /// How the proxy proves who it is, with the credential that flow needs.
    pub auth: SalesforceAuth,
    /// How long a token is used before a new one is fetched (Salesforce sends no `expires_in`).
    pub token_lifetime: Duration,
    /// After a failed token request, how long requests fail at once with the same error instead of
    /// asking the token endpoint again (zero: every request asks).
    pub token_failure_backoff: Duration,
    /// Fetch a new token in the background once the current one has lived
    /// `salesforce::token::REFRESH_AT` of its lifetime, so no request waits for one.
    pub token_refresh_ahead: bool,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for a whole Salesforce call.
    pub request_timeout: Duration,
    /// The first back-off after Salesforce throttles without a `Retry-After` of its own: for that
    /// long every request to the org is answered 503 without calling it. Doubles for each further
    /// throttle in a row (see `salesforce::limits`).
    pub throttle_retry_after: Duration,
    /// The longest back-off, however many throttles in a row or whatever Salesforce asks.
    pub throttle_max_backoff: Duration,
    /// The most calls to the org in flight at once (Salesforce allows 25 long-running requests
    /// per production org, 5 in Developer Edition).
    pub max_concurrent_requests: usize,
    /// How long a request waits for a place among those calls before it is answered 503.
    pub queue_timeout: Duration,
}

/// The OAuth 2.0 flow the proxy uses, with its credential.
#[derive(Debug, Clone)]
pub enum SalesforceAuth {
    /// `client_credentials`: the connected app's consumer secret; Salesforce answers with a token
    /// for the app's run-as user. Only the org's My Domain host accepts it.
    ClientCredentials {
        /// The consumer secret.
        client_secret: SecretString,
    },
    /// `urn:ietf:params:oauth:grant-type:jwt-bearer`: an assertion signed with a private key.
    JwtBearer(JwtBearerSettings),
}

/// What the JWT bearer flow needs besides the consumer key.
#[derive(Debug, Clone)]
pub struct JwtBearerSettings {
    /// The Salesforce username the tokens are for (`sub`).
    pub username: String,
    /// The assertion's `aud`: `https://login.salesforce.com`, `https://test.salesforce.com` for
    /// sandboxes, or the My Domain URL.
    pub audience: String,
    /// The key whose certificate is uploaded to the connected app.
    pub private_key: PrivateKey,
}

impl SalesforceAuth {
    /// The `salesforce.auth` value naming this flow.
    pub fn name(&self) -> &'static str {
        match self {
            SalesforceAuth::ClientCredentials { .. } => "client_credentials",
            SalesforceAuth::JwtBearer(_) => "jwt_bearer",
        }
    }
}

/// The JWT bearer flow's audience when `salesforce.audience` is not set.
pub const DEFAULT_AUDIENCE: &str = "https://login.salesforce.com";

impl SalesforceSettings {
    /// Settings with every default (client credentials, API 65.0, 1 h token lifetime, 5 s
    /// back-off after a failed token request, no refresh ahead, 5 s connect and 30 s request
    /// timeouts, a 60 s first back-off after a throttle growing to at most 15 min, 20 calls in
    /// flight with a 5 s queue timeout) for the given token endpoint and client.
    pub fn with_defaults(token_url: Url, client_id: &str, client_secret: SecretString) -> Self {
        SalesforceSettings {
            token_url,
            api_version: default_api_version(),
            client_id: client_id.to_owned(),
            auth: SalesforceAuth::ClientCredentials { client_secret },
            token_lifetime: Duration::from_secs(default_token_lifetime()),
            token_failure_backoff: Duration::from_millis(default_failure_backoff()),
            token_refresh_ahead: false,
            connect_timeout: Duration::from_millis(default_connect_timeout()),
            request_timeout: Duration::from_millis(default_request_timeout()),
            throttle_retry_after: Duration::from_secs(default_retry_after()),
            throttle_max_backoff: Duration::from_secs(default_max_backoff()),
            max_concurrent_requests: default_max_concurrent(),
            queue_timeout: Duration::from_millis(default_queue_timeout()),
        }
    }
}

impl ServerSettings {
    /// Settings with the defaults (`/fhir`, 1 MiB bodies, 16 KiB heads, 30 s shutdown, 60 s
    /// request timeout, 256 requests at once, no TLS, no configuration file) on `listen`.
    pub fn with_defaults(listen: SocketAddr) -> Self {
        ServerSettings {
            listen,
            base_path: "/fhir".to_owned(),
            body_limit: DEFAULT_BODY_LIMIT,
            readiness_cache: Duration::from_secs(DEFAULT_READINESS_CACHE_SECS),
            config_file: None,
            shutdown_timeout: Duration::from_secs(DEFAULT_SHUTDOWN_TIMEOUT_SECS),
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            request_timeout: Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECS),
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            tls: None,
        }
    }
}

/// The default `server.shutdown_timeout_secs`.
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u64 = 30;
/// The default `server.max_header_bytes`: 16 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// The default `server.request_timeout_secs`.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 60;
/// The default `server.max_concurrent_requests`.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 256;
/// actix-web's own limit on a request head (128 KiB; it also refuses more than 96 headers): a
/// larger head is answered with a bare 431 before the proxy sees it, so `server.max_header_bytes`
/// must stay below it for the proxy's OperationOutcome to be the answer.
pub const ACTIX_MAX_HEAD_BYTES: usize = 131_072;

/// The default body size limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// The default `server.readiness_cache_secs`.
pub const DEFAULT_READINESS_CACHE_SECS: u64 = 10;

// ---- The file as written -------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileModel {
    #[serde(default)]
    server: ServerModel,
    salesforce: Option<SalesforceModel>,
    mapping: Option<MappingModel>,
    #[serde(default)]
    store: store::StoreModel,
    #[serde(default)]
    tenants: std::collections::BTreeMap<String, TenantModel>,
    #[serde(default)]
    auth: Option<crate::auth::settings::AuthFileModel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantModel {
    salesforce: SalesforceModel,
    mapping: MappingModel,
    #[serde(default)]
    store: store::TenantStoreModel,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ServerModel {
    listen: String,
    base_path: String,
    body_limit: usize,
    readiness_cache_secs: u64,
    shutdown_timeout_secs: u64,
    max_header_bytes: usize,
    request_timeout_secs: u64,
    max_concurrent_requests: usize,
    tls: Option<TlsModel>,
}

impl Default for ServerModel {
    fn default() -> Self {
        ServerModel {
            listen: "127.0.0.1:8080".to_owned(),
            base_path: "/fhir".to_owned(),
            body_limit: DEFAULT_BODY_LIMIT,
            readiness_cache_secs: DEFAULT_READINESS_CACHE_SECS,
            shutdown_timeout_secs: DEFAULT_SHUTDOWN_TIMEOUT_SECS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            request_timeout_secs: DEFAULT_REQUEST_TIMEOUT_SECS,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            tls: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsModel {
    cert_file: RelativePathBuf,
    key_file: RelativePathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SalesforceModel {
    token_url: String,
    #[serde(default = "default_api_version")]
    api_version: String,
    client_id: String,
    #[serde(default)]
    auth: AuthModel,
    // Present here only so that a secret written into the file is caught and refused.
    #[serde(default)]
    client_secret: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    client_secret_file: Option<RelativePathBuf>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default = "default_audience")]
    audience: String,
    // Present here only so that a key written into the file is caught and refused.
    #[serde(default)]
    private_key: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    private_key_file: Option<RelativePathBuf>,
    #[serde(default = "default_token_lifetime")]
    token_lifetime_secs: u64,
    #[serde(default = "default_failure_backoff")]
    token_failure_backoff_ms: u64,
    #[serde(default)]
    token_refresh_ahead: bool,
    #[serde(default = "default_connect_timeout")]
    connect_timeout_ms: u64,
    #[serde(default = "default_request_timeout")]
    request_timeout_ms: u64,
    #[serde(default = "default_retry_after")]
    throttle_retry_after_secs: u64,
    #[serde(default = "default_max_backoff")]
    throttle_max_backoff_secs: u64,
    #[serde(default = "default_max_concurrent")]
    max_concurrent_requests: usize,
    #[serde(default = "default_queue_timeout")]
    queue_timeout_ms: u64,
}

/// `salesforce.auth` as written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum AuthModel {
    #[default]
    ClientCredentials,
    JwtBearer,
}

fn default_audience() -> String {
    DEFAULT_AUDIENCE.to_owned()
}
fn default_failure_backoff() -> u64 {
    5_000
}
fn default_api_version() -> String {
    "65.0".to_owned()
}
fn default_token_lifetime() -> u64 {
    3600
}
fn default_connect_timeout() -> u64 {
    5_000
}
fn default_request_timeout() -> u64 {
    30_000
}
fn default_retry_after() -> u64 {
    60
}
fn default_max_backoff() -> u64 {
    900
}
fn default_max_concurrent() -> usize {
    20
}
fn default_queue_timeout() -> u64 {
    5_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingModel {
    file: RelativePathBuf,
}

impl Settings {
    /// Loads the configuration file, applies `FSP_…` environment overrides, reads the client secret
    /// and checks every value. Relative paths are relative to the configuration file.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file or variable, the key and the reason.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        if !path.is_file() {
            return Err(ConfigError {
                source_name: path.display().to_string(),
                key: "(file)".to_owned(),
                reason: "no such file".to_owned(),
            });
        }
        let figment = Figment::from(Toml::file(path)).merge(
            // The secret is read separately so figment never parses it as a number or array.
            // (The filter sees the key before `split` turns `__` into `.`.)
            Env::prefixed(ENV_PREFIX)
                // Only `FSP_<SECTION>__<KEY>` names are configuration keys: the CLI's own
                // variables (`FSP_LOG_FORMAT`, `FSP_AUDIT_FILE`) and others with the prefix
                // are not, and must not be refused as unknown keys.
                .filter(|k| {
                    let k = k.as_str().to_ascii_lowercase();
                    k.contains("__")
                        && !k.ends_with("salesforce__client_secret")
                        && k != "store__password"
                })
                .split("__"),
        );
        let file_name = path.display().to_string();
        // Where a key's value came from: the environment variable that set it, else the file.
        let source_of = |key: &str| match figment.find_metadata(key) {
            Some(metadata) if metadata.name.contains("environment") => {
                format!("environment variable {}", env_variable(key))
            }
            _ => file_name.clone(),
        };
        let model: FileModel = figment.extract().map_err(|e| {
            let key = if e.path.is_empty() {
                "(top level)".to_owned()
            } else {
                e.path.join(".")
            };
            let from_env = e
                .metadata
                .as_ref()
                .is_some_and(|m| m.name.contains("environment"));
            ConfigError {
                source_name: if from_env {
                    format!("environment variable {}", env_variable(&key))
                } else {
                    file_name.clone()
                },
                key,
                reason: e.kind.to_string(),
            }
        })?;
        Settings::from_model(model, &file_name, &|variable| std::env::var(variable).ok()).map_err(
            |mut error| {
                error.source_name = source_of(&error.key);
                error
            },
        )
    }

    fn from_model(
        model: FileModel,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let fail = |key: &str, reason: String| ConfigError {
            source_name: file.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let listen: SocketAddr = model.server.listen.parse().map_err(|_| {
            fail(
                "server.listen",
                "must be an address with a port, e.g. 127.0.0.1:8080".to_owned(),
            )
        })?;
        let base_path = normalize_base_path(&model.server.base_path).ok_or_else(|| {
            fail(
                "server.base_path",
                "must start with / (e.g. /fhir)".to_owned(),
            )
        })?;
        if model.server.body_limit == 0 {
            return Err(fail(
                "server.body_limit",
                "must be more than 0 bytes".to_owned(),
            ));
        }

        for (key, value) in [
            (
                "server.request_timeout_secs",
                model.server.request_timeout_secs as usize,
            ),
            (
                "server.max_concurrent_requests",
                model.server.max_concurrent_requests,
            ),
        ] {
            if value == 0 {
                return Err(fail(key, "must be more than 0".to_owned()));
            }
        }
        if !(1024..ACTIX_MAX_HEAD_BYTES).contains(&model.server.max_header_bytes) {
            return Err(fail(
                "server.max_header_bytes",
                format!(
                    "must be at least 1024 and less than {ACTIX_MAX_HEAD_BYTES} (actix-web's own \
                     limit, beyond which it answers a bare 431 itself)"
                ),
            ));
        }

        let server = ServerSettings {
            listen,
            base_path,
            body_limit: model.server.body_limit,
            readiness_cache: Duration::from_secs(model.server.readiness_cache_secs),
            config_file: Some(PathBuf::from(file)),
            shutdown_timeout: Duration::from_secs(model.server.shutdown_timeout_secs),
            max_header_bytes: model.server.max_header_bytes,
            request_timeout: Duration::from_secs(model.server.request_timeout_secs),
            max_concurrent_requests: model.server.max_concurrent_requests,
            tls: model.server.tls.map(|tls| TlsSettings {
                cert_file: tls.cert_file.relative(),
                key_file: tls.key_file.relative(),
            }),
        };
        let config_dir = Path::new(file).parent().unwrap_or(Path::new("."));
        let mut tenants = Vec::new();
        let mut tenant_stores = Vec::new();
        match (model.salesforce, model.mapping) {
            (Some(salesforce), Some(mapping)) => tenants.push(tenant_settings(
                None,
                salesforce,
                mapping,
                env(ENV_CLIENT_SECRET),
                file,
            )?),
            (Some(_), None) => {
                return Err(fail(
                    "mapping.file",
                    "missing: [salesforce] needs a [mapping] file beside it".to_owned(),
                ));
            }
            (None, Some(_)) => {
                return Err(fail(
                    "salesforce",
                    "missing: [mapping] needs a [salesforce] connection beside it".to_owned(),
                ));
            }
            (None, None) if model.tenants.is_empty() => {
                return Err(fail(
                    "salesforce",
                    "missing: configure one org with [salesforce] and [mapping], or several with \
                     [tenants.NAME.salesforce] and [tenants.NAME.mapping]"
                        .to_owned(),
                ));
            }
            (None, None) => {}
        }
        for (name, tenant) in model.tenants {
            if !is_tenant_name(&name) {
                return Err(fail(
                    "tenants",
                    "a tenant name must be 1–40 lower-case letters, digits, - or _ (it is a URL \
                     segment: {base}/{name}/Appointment), and not `metadata` or `status`"
                        .to_owned(),
                ));
            }
            let secret = env(&tenant_secret_variable(&name));
            tenant_stores.push((Some(name.clone()), tenant.store));
            tenants.push(tenant_settings(
                Some(name),
                tenant.salesforce,
                tenant.mapping,
                secret,
                file,
            )?);
        }
        let store = store::store_settings(
            model.store,
            tenant_stores,
            config_dir,
            server.request_timeout,
            env(ENV_STORE_PASSWORD),
            &fail,
        )?;
        let tenant_names: Vec<Option<String>> = tenants.iter().map(|t| t.name.clone()).collect();
        let auth = crate::auth::AuthSettings::from_model(model.auth, &tenant_names).map_err(
            |(key, reason)| ConfigError {
                source_name: file.to_owned(),
                key,
                reason,
            },
        )?;
        Ok(Settings {
            server,
            tenants,
            store,
            auth,
        })
    }
}

/// One tenant's settings, checked. Keys in errors carry the tenant's prefix
/// (`tenants.NAME.salesforce.client_id`).
fn tenant_settings(
    name: Option<String>,
    sf: SalesforceModel,
    mapping: MappingModel,
    secret_from_env: Option<String>,
    file: &str,
) -> Result<TenantSettings, ConfigError> {
    let prefix = name
        .as_deref()
        .map(|n| format!("tenants.{n}."))
        .unwrap_or_default();
    let secret_variable = name
        .as_deref()
        .map_or_else(|| ENV_CLIENT_SECRET.to_owned(), tenant_secret_variable);
    let fail = |key: &str, reason: String| ConfigError {
        source_name: file.to_owned(),
        key: format!("{prefix}{key}"),
        reason: reason.replace(ENV_CLIENT_SECRET, &secret_variable),
    };
    let salesforce = salesforce_settings(sf, secret_from_env, &fail)?;
    Ok(TenantSettings {
        name,
        salesforce,
        mapping_file: mapping.file.relative(),
    })
}

/// The `[salesforce]` section (of the file or of a tenant), checked.
fn salesforce_settings(
    sf: SalesforceModel,
    secret_from_env: Option<String>,
    fail: &dyn Fn(&str, String) -> ConfigError,
) -> Result<SalesforceSettings, ConfigError> {
    // The secret or the signed assertion travels to it: never in clear across a network.
    let token_url = Url::parse(&sf.token_url)
        .ok()
        .filter(is_private_channel)
        .ok_or_else(|| {
            fail(
                "salesforce.token_url",
                "must be an https URL, e.g. https://mydomain.my.salesforce.com/services/oauth2/token                  (http only for a loopback host such as a local sandbox: the client secret or                  assertion must not cross a network in clear)"
                    .to_owned(),
            )
        })?;
    check_api_version(&sf.api_version).map_err(|r| fail("salesforce.api_version", r))?;
    if sf.client_id.trim().is_empty() {
        return Err(fail("salesforce.client_id", "is empty".to_owned()));
    }
    if sf.client_secret.is_some() {
        return Err(fail(
            "salesforce.client_secret",
            format!(
                "secrets are not read from the configuration file; set {ENV_CLIENT_SECRET} or \
                 salesforce.client_secret_file"
            ),
        ));
    }
    if sf.private_key.is_some() {
        return Err(fail(
            "salesforce.private_key",
            "keys are not read from the configuration file; name the PEM file with \
             salesforce.private_key_file"
                .to_owned(),
        ));
    }
    let auth = match sf.auth {
        AuthModel::ClientCredentials => {
            if sf.private_key_file.is_some() || sf.username.is_some() {
                return Err(fail(
                    "salesforce.auth",
                    "username and private_key_file are used only by auth = \"jwt_bearer\"; \
                     set it, or remove them for the client credentials flow"
                        .to_owned(),
                ));
            }
            // Salesforce serves this flow only on the org's own host (salesforce-api.md §3.3).
            if matches!(
                token_url.host_str(),
                Some("login.salesforce.com" | "test.salesforce.com")
            ) {
                return Err(fail(
                    "salesforce.token_url",
                    "the client credentials flow is refused on login.salesforce.com and \
                     test.salesforce.com; use the org's My Domain host, e.g. \
                     https://mydomain.my.salesforce.com/services/oauth2/token"
                        .to_owned(),
                ));
            }
            SalesforceAuth::ClientCredentials {
                client_secret: read_client_secret(secret_from_env, sf.client_secret_file, &fail)?,
            }
        }
        AuthModel::JwtBearer => {
            if sf.client_secret_file.is_some() {
                return Err(fail(
                    "salesforce.client_secret_file",
                    "the JWT bearer flow uses no client secret; remove it".to_owned(),
                ));
            }
            let username = sf
                .username
                .filter(|u| !u.trim().is_empty())
                .ok_or_else(|| {
                    fail(
                        "salesforce.username",
                        "missing: auth = \"jwt_bearer\" needs the Salesforce username \
                         the tokens are for"
                            .to_owned(),
                    )
                })?;
            let audience = check_audience(&sf.audience).ok_or_else(|| {
                fail(
                    "salesforce.audience",
                    format!(
                        "must be an http(s) URL: {DEFAULT_AUDIENCE}, \
                             https://test.salesforce.com for sandboxes, or the My Domain URL"
                    ),
                )
            })?;
            let file = sf.private_key_file.ok_or_else(|| {
                fail(
                    "salesforce.private_key_file",
                    "missing: auth = \"jwt_bearer\" needs the PEM file of the RSA key whose \
                     certificate is uploaded to the connected app"
                        .to_owned(),
                )
            })?;
            let private_key = PrivateKey::from_file(&file.relative())
                .map_err(|e| fail("salesforce.private_key_file", e.to_string()))?;
            SalesforceAuth::JwtBearer(JwtBearerSettings {
                username,
                audience,
                private_key,
            })
        }
    };
    for (key, value) in [
        ("salesforce.token_lifetime_secs", sf.token_lifetime_secs),
        ("salesforce.connect_timeout_ms", sf.connect_timeout_ms),
        ("salesforce.request_timeout_ms", sf.request_timeout_ms),
    ] {
        if value == 0 {
            return Err(fail(key, "must be more than 0".to_owned()));
        }
    }
    if sf.max_concurrent_requests == 0 {
        return Err(fail(
            "salesforce.max_concurrent_requests",
            "must be more than 0".to_owned(),
        ));
    }
    if sf.throttle_max_backoff_secs < sf.throttle_retry_after_secs {
        return Err(fail(
            "salesforce.throttle_max_backoff_secs",
            "must be at least salesforce.throttle_retry_after_secs".to_owned(),
        ));
    }

    Ok(SalesforceSettings {
        token_url,
        api_version: sf.api_version,
        client_id: sf.client_id,
        auth,
        token_lifetime: Duration::from_secs(sf.token_lifetime_secs),
        token_failure_backoff: Duration::from_millis(sf.token_failure_backoff_ms),
        token_refresh_ahead: sf.token_refresh_ahead,
        connect_timeout: Duration::from_millis(sf.connect_timeout_ms),
        request_timeout: Duration::from_millis(sf.request_timeout_ms),
        throttle_retry_after: Duration::from_secs(sf.throttle_retry_after_secs),
        throttle_max_backoff: Duration::from_secs(sf.throttle_max_backoff_secs),
        max_concurrent_requests: sf.max_concurrent_requests,
        queue_timeout: Duration::from_millis(sf.queue_timeout_ms),
    })
}

/// The consumer secret from the environment or from `salesforce.client_secret_file`.
fn read_client_secret(
    secret_from_env: Option<String>,
    secret_file: Option<RelativePathBuf>,
    fail: &dyn Fn(&str, String) -> ConfigError,
) -> Result<SecretString, ConfigError> {
    let client_secret = match (secret_from_env, secret_file) {
        (Some(s), _) if !s.is_empty() => SecretString::from(s),
        (_, Some(file)) => {
            let path = file.relative();
            let text = std::fs::read_to_string(&path).map_err(|e| {
                fail(
                    "salesforce.client_secret_file",
                    format!("cannot read {}: {}", path.display(), e.kind()),
                )
            })?;
            let secret = text.trim_end_matches(['\n', '\r']).to_owned();
            if secret.is_empty() {
                return Err(fail(
                    "salesforce.client_secret_file",
                    format!("{} is empty", path.display()),
                ));
            }
            SecretString::from(secret)
        }
        _ => {
            return Err(fail(
                "salesforce.client_secret",
                format!(
                    "missing: set {ENV_CLIENT_SECRET} or salesforce.client_secret_file (or \
                         auth = \"jwt_bearer\" with a private key)"
                ),
            ));
        }
    };
    Ok(client_secret)
}

/// An http(s) audience without a trailing `/` (Salesforce compares `aud` as a string, and its
/// documented values have none).
fn check_audience(audience: &str) -> Option<String> {
    let trimmed = audience.trim().trim_end_matches('/');
    Url::parse(trimmed)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .map(|_| trimmed.to_owned())
}

/// The environment variable that sets a key: `server.listen` → `FSP_SERVER__LISTEN`.
pub fn env_variable(key: &str) -> String {
    let parts: Vec<String> = key.split('.').map(str::to_ascii_uppercase).collect();
    format!("{ENV_PREFIX}{}", parts.join("__"))
}

/// `/fhir/` → `/fhir`, `/` → `` (FHIR at the root); None when it does not start with `/`.
pub fn normalize_base_path(path: &str) -> Option<String> {
    path.starts_with('/')
        .then(|| path.trim_end_matches('/').to_owned())
}

fn check_api_version(version: &str) -> Result<(), String> {
    let parsed = version
        .split_once('.')
        .filter(|(_, minor)| minor.len() == 1 && minor.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|(major, _)| major.parse::<u32>().ok());
    match parsed {
        Some(major) if major >= 65 => Ok(()),
        Some(_) => Err("the Appointment Management API needs version 65.0 or later".to_owned()),
        None => Err("must look like 65.0".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    const MINIMAL: &str = "[auth]\ndisabled = true\n[salesforce]\ntoken_url = \"https://example.my.salesforce.com/services/oauth2/token\"\n\
        client_id = \"abc\"\nclient_secret_file = \"secret.txt\"\n[mapping]\nfile = \"mapping.toml\"\n";

    #[test]
    fn minimal_file_gets_defaults_and_paths_relative_to_it() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "secret.txt", "s3cr3t\n");
        let path = write(dir.path(), "proxy.toml", MINIMAL);
        let s = Settings::load(&path).unwrap();
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.server.base_path, "/fhir");
        assert_eq!(s.server.body_limit, 1024 * 1024);
        assert_eq!(s.tenants[0].salesforce.api_version, "65.0");
        match &s.tenants[0].salesforce.auth {
            SalesforceAuth::ClientCredentials { client_secret } => {
                assert_eq!(client_secret.expose_secret(), "s3cr3t");
            }
            other => panic!("expected client credentials, got {other:?}"),
        }
        assert_eq!(
            s.tenants[0].salesforce.token_failure_backoff,
            Duration::from_millis(5000)
        );
        assert!(!s.tenants[0].salesforce.token_refresh_ahead);
        assert_eq!(
            s.tenants[0].salesforce.token_lifetime,
            Duration::from_secs(3600)
        );
        assert_eq!(s.tenants[0].mapping_file, dir.path().join("mapping.toml"));
        match &s.store.engine {
            StoreEngine::Sqlite { path } => assert_eq!(path, &dir.path().join("appointments.db")),
            other => panic!("expected SQLite, got {other:?}"),
        }
        assert_eq!(s.store.claim_timeout, Duration::from_secs(120));
        assert_eq!(s.store.retention, None);
        assert_eq!(
            s.store.imports,
            [LegacyImport {
                tenant: None,
                file: dir.path().join("appointments.jsonl"),
                explicit: false
            }]
        );
    }

    #[test]
    fn bad_values_name_the_file_key_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "secret.txt", "s3cr3t\n");
        let cases = [
            (
                "[server]\nlisten = \"localhost\"\n",
                "server.listen",
                "port",
            ),
            (
                "[server]\nbase_path = \"fhir\"\n",
                "server.base_path",
                "start with /",
            ),
            (
                "[server]\nbody_limit = \"big\"\n",
                "server.body_limit",
                "invalid type",
            ),
            ("[server]\nlisen = \"x\"\n", "server", "unknown field"),
            (
                "[store]\npath = \"old.jsonl\"\n",
                "store.path",
                "store.import_jsonl",
            ),
            (
                "[store]\npath = \"a.db\"\nurl = \"postgres://fsp@127.0.0.1/fsp\"\n",
                "store",
                "not both",
            ),
            (
                "[store]\nclaim_timeout_secs = 60\n",
                "store.claim_timeout_secs",
                "longer than server.request_timeout_secs",
            ),
            (
                "[store]\nurl = \"postgres://fsp:hunter2@127.0.0.1/fsp\"\n",
                "store.url",
                "FSP_STORE__PASSWORD",
            ),
            (
                "[store]\npassword = \"hunter2\"\n",
                "store.password",
                "FSP_STORE__PASSWORD",
            ),
            (
                "[store]\nmax_connections = 4\n",
                "store.max_connections",
                "only with store.url",
            ),
        ];
        for (extra, key, reason) in cases {
            let path = write(dir.path(), "proxy.toml", &format!("{MINIMAL}{extra}"));
            let e = Settings::load(&path).unwrap_err();
            assert!(e.key.starts_with(key), "{e}");
            assert!(e.reason.contains(reason), "{e}");
            assert!(e.to_string().contains("proxy.toml"), "{e}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        let path = write(
            dir.path(),
            "proxy.toml",
            &MINIMAL.replace(
                "client_id = \"abc\"",
                "client_id = \"abc\"\napi_version = \"64.0\"",
            ),
        );
        let e = Settings::load(&path).unwrap_err();
        assert_eq!(e.key, "salesforce.api_version");
    }

    #[test]
    fn a_token_url_in_clear_is_refused_unless_on_this_machine() {
        let secret = |v: &str| (v == ENV_CLIENT_SECRET).then(|| "x".to_owned());
        let with = |url: &str| MINIMAL.replace("https://example.my.salesforce.com", url);
        let e = from_text(&with("http://example.my.salesforce.com"), &secret).unwrap_err();
        assert_eq!(e.key, "salesforce.token_url");
        assert!(e.reason.contains("https"), "{e}");
        for local in [
            "http://127.0.0.1:9090",
            "http://localhost:9090",
            "http://[::1]:9090",
        ] {
            assert!(from_text(&with(local), &secret).is_ok(), "{local}");
        }
    }

    #[test]
    fn a_postgres_store_takes_its_password_from_the_environment_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "{MINIMAL}[store]\nurl = \"postgres://fsp@db.internal:6432/fsp?sslmode=require\"\n\
             max_connections = 4\nretention_days = 30\n"
        );
        let s = from_text(&text, &|v| {
            (v == ENV_STORE_PASSWORD || v == ENV_CLIENT_SECRET).then(|| "pw-from-env".to_owned())
        })
        .unwrap();
        let StoreEngine::Postgres(pg) = &s.store.engine else {
            panic!("expected PostgreSQL: {:?}", s.store.engine);
        };
        assert_eq!(pg.password.as_ref().unwrap().expose_secret(), "pw-from-env");
        assert_eq!(pg.max_connections, 4);
        assert_eq!(pg.url.host_str(), Some("db.internal"));
        assert_eq!(s.store.retention, Some(Duration::from_secs(30 * 86_400)));
        // The password never shows in the settings' debug text.
        assert!(!format!("{s:?}").contains("pw-from-env"));

        write(dir.path(), "db.password", "pw-from-file\n");
        let path = write(
            dir.path(),
            "proxy.toml",
            &format!(
                "{MINIMAL}[store]\nurl = \"postgres://fsp@127.0.0.1/fsp\"\n\
                 password_file = \"db.password\"\n"
            ),
        );
        let model: FileModel = Figment::from(Toml::file(&path)).extract().unwrap();
        let s = Settings::from_model(model, &path.display().to_string(), &|v| {
            (v == ENV_CLIENT_SECRET).then(|| "x".to_owned())
        })
        .unwrap();
        let StoreEngine::Postgres(pg) = &s.store.engine else {
            panic!("expected PostgreSQL");
        };
        assert_eq!(
            pg.password.as_ref().unwrap().expose_secret(),
            "pw-from-file"
        );
    }

    #[test]
    fn a_secret_in_the_file_is_refused_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "proxy.toml",
            &MINIMAL.replace(
                "client_secret_file = \"secret.txt\"",
                "client_secret = \"hunter2\"",
            ),
        );
        let e = Settings::load(&path).unwrap_err();
        assert_eq!(e.key, "salesforce.client_secret");
        assert!(e.reason.contains(ENV_CLIENT_SECRET));
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn missing_secret_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "proxy.toml", MINIMAL);
        let e = Settings::load(&path).unwrap_err();
        assert_eq!(e.key, "salesforce.client_secret_file");
    }

    const JWT_MINIMAL: &str = "[auth]\ndisabled = true\n[salesforce]\ntoken_url = \"https://login.salesforce.com/services/oauth2/token\"\n\
        client_id = \"abc\"\nauth = \"jwt_bearer\"\nusername = \"integration@example.com\"\n\
        private_key_file = \"keys/salesforce.pem\"\n[mapping]\nfile = \"mapping.toml\"\n";

    fn write_test_key(dir: &Path) {
        std::fs::create_dir_all(dir.join("keys")).unwrap();
        write(
            dir,
            "keys/salesforce.pem",
            &crate::salesforce::jwt::test_keys::trusted().private_pem,
        );
    }

    #[test]
    fn jwt_bearer_reads_the_key_file_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        write_test_key(dir.path());
        let path = write(dir.path(), "proxy.toml", JWT_MINIMAL);
        let s = Settings::load(&path).unwrap().tenants.remove(0).salesforce;
        let SalesforceAuth::JwtBearer(jwt) = &s.auth else {
            panic!("expected jwt_bearer, got {:?}", s.auth);
        };
        assert_eq!(jwt.username, "integration@example.com");
        assert_eq!(jwt.audience, "https://login.salesforce.com");
        assert_eq!(s.auth.name(), "jwt_bearer");
        // The key is usable and never shown.
        jwt.private_key
            .sign(&crate::salesforce::jwt::Claims::new(
                "abc",
                "u",
                "a",
                std::time::SystemTime::now(),
            ))
            .unwrap();
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("PRIVATE KEY") && !shown.contains("MII"),
            "{shown}"
        );
    }

    #[test]
    fn jwt_bearer_options_are_read() {
        let dir = tempfile::tempdir().unwrap();
        write_test_key(dir.path());
        let extra = JWT_MINIMAL.replace(
            "[mapping]",
            "audience = \"https://test.salesforce.com/\"\ntoken_failure_backoff_ms = 250\n\
             token_refresh_ahead = true\n[mapping]",
        );
        let path = write(dir.path(), "proxy.toml", &extra);
        let s = Settings::load(&path).unwrap().tenants.remove(0).salesforce;
        let SalesforceAuth::JwtBearer(jwt) = &s.auth else {
            panic!("expected jwt_bearer");
        };
        assert_eq!(
            jwt.audience, "https://test.salesforce.com",
            "trailing / dropped"
        );
        assert_eq!(s.token_failure_backoff, Duration::from_millis(250));
        assert!(s.token_refresh_ahead);
    }

    #[test]
    fn auth_settings_are_checked_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        write_test_key(dir.path());
        write(dir.path(), "secret.txt", "s3cr3t\n");
        write(
            dir.path(),
            "public.pem",
            &crate::salesforce::jwt::test_keys::trusted().public_pem,
        );
        write(dir.path(), "garbage.pem", "hunter2\n");
        let cases: [(String, &str, &str); 10] = [
            (
                JWT_MINIMAL.replace("username = \"integration@example.com\"\n", ""),
                "salesforce.username",
                "missing",
            ),
            (
                JWT_MINIMAL.replace("private_key_file = \"keys/salesforce.pem\"\n", ""),
                "salesforce.private_key_file",
                "missing",
            ),
            (
                JWT_MINIMAL.replace("keys/salesforce.pem", "public.pem"),
                "salesforce.private_key_file",
                "not a PEM RSA private key",
            ),
            (
                JWT_MINIMAL.replace("keys/salesforce.pem", "garbage.pem"),
                "salesforce.private_key_file",
                "garbage.pem",
            ),
            (
                JWT_MINIMAL.replace("keys/salesforce.pem", "absent.pem"),
                "salesforce.private_key_file",
                "cannot read",
            ),
            (
                JWT_MINIMAL.replace("[mapping]", "private_key = \"hunter2\"\n[mapping]"),
                "salesforce.private_key",
                "private_key_file",
            ),
            (
                JWT_MINIMAL.replace(
                    "[mapping]",
                    "client_secret_file = \"secret.txt\"\n[mapping]",
                ),
                "salesforce.client_secret_file",
                "no client secret",
            ),
            (
                JWT_MINIMAL.replace(
                    "[mapping]",
                    "audience = \"login.salesforce.com\"\n[mapping]",
                ),
                "salesforce.audience",
                "http(s) URL",
            ),
            (
                MINIMAL.replace(
                    "client_id = \"abc\"",
                    "client_id = \"abc\"\nusername = \"u\"",
                ),
                "salesforce.auth",
                "jwt_bearer",
            ),
            (
                MINIMAL.replace("example.my.salesforce.com", "login.salesforce.com"),
                "salesforce.token_url",
                "My Domain",
            ),
        ];
        for (text, key, reason) in cases {
            let path = write(dir.path(), "proxy.toml", &text);
            let e = Settings::load(&path).unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert!(e.reason.contains(reason), "{e}");
            let shown = e.to_string();
            assert!(
                !shown.contains("hunter2") && !shown.contains("MII"),
                "{shown}"
            );
        }
        let path = write(
            dir.path(),
            "proxy.toml",
            &JWT_MINIMAL.replace("jwt_bearer", "password"),
        );
        let e = Settings::load(&path).unwrap_err();
        assert_eq!(e.key, "salesforce.auth", "{e}");
        assert!(e.reason.contains("jwt_bearer"), "{e}");
    }

    #[test]
    fn base_path_is_normalized() {
        assert_eq!(normalize_base_path("/fhir/").as_deref(), Some("/fhir"));
        assert_eq!(normalize_base_path("/").as_deref(), Some(""));
        assert_eq!(normalize_base_path("fhir"), None);
    }

    const TWO_TENANTS: &str = "[auth]\ndisabled = true\n[tenants.north.salesforce]\n\
        token_url = \"https://north.my.salesforce.com/services/oauth2/token\"\n\
        client_id = \"north-app\"\nclient_secret_file = \"north.secret\"\n\
        [tenants.north.mapping]\nfile = \"north.toml\"\n\
        [tenants.south-2.salesforce]\n\
        token_url = \"https://south.my.salesforce.com/services/oauth2/token\"\n\
        client_id = \"south-app\"\n\
        [tenants.south-2.mapping]\nfile = \"south.toml\"\n\
        [tenants.south-2.store]\nimport_jsonl = \"south-store.jsonl\"\n";

    fn from_text(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let model: FileModel = Figment::from(Toml::string(text)).extract().unwrap();
        Settings::from_model(model, "/etc/fsp/proxy.toml", env)
    }

    #[test]
    fn tenants_have_their_own_connection_mapping_store_and_secret_variable() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "north.secret", "n0rth\n");
        let path = write(dir.path(), "proxy.toml", TWO_TENANTS);
        // The south secret comes from its own variable (checked through `from_model`, so the
        // test does not touch the process environment).
        let model: FileModel = Figment::from(Toml::file(&path)).extract().unwrap();
        let env = |variable: &str| {
            (variable == "FSP_TENANTS__SOUTH_2__SALESFORCE__CLIENT_SECRET")
                .then(|| "s0uth".to_owned())
        };
        let s = Settings::from_model(model, &path.display().to_string(), &env).unwrap();
        let names: Vec<Option<&str>> = s.tenants.iter().map(|t| t.name.as_deref()).collect();
        assert_eq!(names, [Some("north"), Some("south-2")]);
        let secret = |t: &TenantSettings| match &t.salesforce.auth {
            SalesforceAuth::ClientCredentials { client_secret } => {
                client_secret.expose_secret().to_owned()
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(secret(&s.tenants[0]), "n0rth");
        assert_eq!(secret(&s.tenants[1]), "s0uth");
        assert_eq!(s.tenants[1].salesforce.client_id, "south-app");
        assert_eq!(s.tenants[0].mapping_file, dir.path().join("north.toml"));
        let imports: Vec<(Option<&str>, PathBuf, bool)> = s
            .store
            .imports
            .iter()
            .map(|i| (i.tenant.as_deref(), i.file.clone(), i.explicit))
            .collect();
        assert_eq!(
            imports,
            [
                (None, dir.path().join("appointments.jsonl"), false),
                (
                    Some("north"),
                    dir.path().join("appointments-north.jsonl"),
                    false
                ),
                (Some("south-2"), dir.path().join("south-store.jsonl"), true),
            ]
        );
        assert_eq!(
            tenant_secret_variable("south-2"),
            "FSP_TENANTS__SOUTH_2__SALESFORCE__CLIENT_SECRET"
        );

        // The earlier per-tenant store file is refused, saying where it goes now.
        let old = TWO_TENANTS.replace("import_jsonl = \"south", "path = \"south");
        let e = from_text(&old, &|_| Some("x".to_owned())).unwrap_err();
        assert_eq!(e.key, "tenants.south-2.store.path");
        assert!(
            e.reason.contains("tenants.south-2.store.import_jsonl"),
            "{e}"
        );

        // An unnamed tenant beside named ones comes first.
        let both = format!(
            "{MINIMAL}{}",
            TWO_TENANTS.replace("[auth]\ndisabled = true\n", "")
        );
        let s = from_text(&both, &|_| Some("x".to_owned())).unwrap();
        let names: Vec<Option<&str>> = s.tenants.iter().map(|t| t.name.as_deref()).collect();
        assert_eq!(names, [None, Some("north"), Some("south-2")]);
    }

    #[test]
    fn tenant_errors_name_the_tenant_key_and_its_own_secret_variable() {
        let err = from_text(TWO_TENANTS, &|_| None).unwrap_err();
        // North's secret file does not exist here; the first problem is reported with its key.
        assert_eq!(
            err.key, "tenants.north.salesforce.client_secret_file",
            "{err}"
        );
        // North's variable wins over its file; south has neither.
        let err = from_text(TWO_TENANTS, &|v| {
            v.contains("NORTH").then(|| "n".to_owned())
        })
        .unwrap_err();
        assert_eq!(err.key, "tenants.south-2.salesforce.client_secret", "{err}");
        assert!(
            err.reason
                .contains("FSP_TENANTS__SOUTH_2__SALESFORCE__CLIENT_SECRET"),
            "{err}"
        );
        let err = from_text(
            &TWO_TENANTS.replace("client_secret_file = \"north.secret\"\n", ""),
            &|v| v.contains("SOUTH").then(|| "s".to_owned()),
        )
        .unwrap_err();
        assert_eq!(err.key, "tenants.north.salesforce.client_secret");
        assert!(
            err.reason
                .contains("FSP_TENANTS__NORTH__SALESFORCE__CLIENT_SECRET"),
            "{err}"
        );
        for bad in ["North", "metadata", "-x", "a/b"] {
            let text = TWO_TENANTS.replace("tenants.north.", &format!("tenants.\"{bad}\"."));
            let err = from_text(&text, &|_| Some("s".to_owned())).unwrap_err();
            assert_eq!(err.key, "tenants", "{bad}: {err}");
        }
        let err = from_text("[server]\nlisten = \"127.0.0.1:1\"\n", &|_| None).unwrap_err();
        assert_eq!(err.key, "salesforce");
        assert!(err.reason.contains("[tenants.NAME"), "{err}");
        let err = from_text(
            &MINIMAL.replace("[mapping]\nfile = \"mapping.toml\"\n", ""),
            &|_| Some("s".to_owned()),
        )
        .unwrap_err();
        assert_eq!(err.key, "mapping.file");
    }

    #[test]
    fn server_limits_shutdown_and_tls_keys_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "secret.txt", "s3cr3t\n");
        let with = |server: &str| {
            let path = write(
                dir.path(),
                "proxy.toml",
                &format!("[server]\n{server}\n{MINIMAL}"),
            );
            Settings::load(&path).map(|s| (s.server, path))
        };
        let (s, path) = with(
            "max_header_bytes = 4096\nrequest_timeout_secs = 7\nmax_concurrent_requests = 3\n\
             shutdown_timeout_secs = 9\n[server.tls]\ncert_file = \"tls/c.pem\"\n\
             key_file = \"tls/k.pem\"",
        )
        .unwrap();
        assert_eq!(s.max_header_bytes, 4096);
        assert_eq!(s.request_timeout, Duration::from_secs(7));
        assert_eq!(s.max_concurrent_requests, 3);
        assert_eq!(s.shutdown_timeout, Duration::from_secs(9));
        assert_eq!(
            s.tls,
            Some(TlsSettings {
                cert_file: dir.path().join("tls/c.pem"),
                key_file: dir.path().join("tls/k.pem"),
            })
        );
        assert_eq!(s.config_file, Some(path));

        let (s, _) = with("").unwrap();
        assert_eq!(s.max_header_bytes, DEFAULT_MAX_HEADER_BYTES);
        assert_eq!(s.request_timeout, Duration::from_secs(60));
        assert_eq!(s.max_concurrent_requests, 256);
        assert_eq!(s.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(s.tls, None);

        for (keys, key, reason) in [
            (
                "max_header_bytes = 200000",
                "server.max_header_bytes",
                "131072",
            ),
            ("max_header_bytes = 10", "server.max_header_bytes", "1024"),
            (
                "max_concurrent_requests = 0",
                "server.max_concurrent_requests",
                "more than 0",
            ),
            (
                "request_timeout_secs = 0",
                "server.request_timeout_secs",
                "more than 0",
            ),
            (
                "[server.tls]\ncert_file = \"c.pem\"",
                "server.tls",
                "key_file",
            ),
        ] {
            let e = with(keys).unwrap_err();
            assert!(e.key.starts_with(key), "{e}");
            assert!(e.to_string().contains(reason), "{e}");
        }
    }

    #[test]
    fn load_management_keys_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "secret.txt", "s3cr3t\n");
        let with = |keys: &str| {
            let text = MINIMAL.replace(
                "client_id = \"abc\"",
                &format!("client_id = \"abc\"\n{keys}"),
            );
            Settings::load(&write(dir.path(), "proxy.toml", &text))
        };
        // Read through Debug so the test does not depend on where the settings sit.
        let read = format!(
            "{:?}",
            with(
                "throttle_retry_after_secs = 5\nthrottle_max_backoff_secs = 40\n\
                  max_concurrent_requests = 7\nqueue_timeout_ms = 250"
            )
            .unwrap()
        );
        assert!(read.contains("throttle_retry_after: 5s"), "{read}");
        assert!(read.contains("throttle_max_backoff: 40s"), "{read}");
        assert!(read.contains("max_concurrent_requests: 7"), "{read}");
        assert!(read.contains("queue_timeout: 250ms"), "{read}");
        let defaults = format!("{:?}", with("").unwrap());
        assert!(
            defaults.contains("throttle_max_backoff: 900s"),
            "{defaults}"
        );
        assert!(
            defaults.contains("max_concurrent_requests: 20"),
            "{defaults}"
        );
        assert!(defaults.contains("queue_timeout: 5s"), "{defaults}");
        let e = with("max_concurrent_requests = 0").unwrap_err();
        assert_eq!(e.key, "salesforce.max_concurrent_requests", "{e}");
        let e = with("throttle_retry_after_secs = 60\nthrottle_max_backoff_secs = 30").unwrap_err();
        assert_eq!(e.key, "salesforce.throttle_max_backoff_secs", "{e}");
        assert!(e.reason.contains("throttle_retry_after_secs"), "{e}");
    }
}
