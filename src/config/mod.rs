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

mod salesforce;
pub use salesforce::*;

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

#[cfg(test)]
mod tests;
