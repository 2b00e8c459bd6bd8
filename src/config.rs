//! Settings: the TOML configuration file, its environment overrides, and secrets.
//!
//! Every key can be overridden by an environment variable `FSP_<SECTION>__<KEY>` (for example
//! `FSP_SERVER__LISTEN=0.0.0.0:8080`). The Salesforce client secret is read only from
//! `FSP_SALESFORCE__CLIENT_SECRET` or from the file named by `salesforce.client_secret_file`, and it
//! is a [`SecretString`] from the moment it is read: a secret written into the configuration file
//! itself is refused, so it cannot end up in version control or on a command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use figment::value::magic::RelativePathBuf;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

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
    /// The Salesforce connection.
    pub salesforce: SalesforceSettings,
    /// The mapping file.
    pub mapping_file: PathBuf,
    /// The appointment store file (identifier → booking records, for idempotent creates and
    /// patches).
    pub store_path: PathBuf,
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
    /// The connected app's consumer secret.
    pub client_secret: SecretString,
    /// How long a token is used before a new one is fetched (Salesforce sends no `expires_in`).
    pub token_lifetime: Duration,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for a whole Salesforce call.
    pub request_timeout: Duration,
    /// The `Retry-After` sent when Salesforce throttles.
    pub throttle_retry_after: Duration,
}

impl SalesforceSettings {
    /// Settings with every default (API 65.0, 1 h token lifetime, 5 s connect and 30 s request
    /// timeouts, 60 s Retry-After) for the given token endpoint and client.
    pub fn with_defaults(token_url: Url, client_id: &str, client_secret: SecretString) -> Self {
        SalesforceSettings {
            token_url,
            api_version: default_api_version(),
            client_id: client_id.to_owned(),
            client_secret,
            token_lifetime: Duration::from_secs(default_token_lifetime()),
            connect_timeout: Duration::from_millis(default_connect_timeout()),
            request_timeout: Duration::from_millis(default_request_timeout()),
            throttle_retry_after: Duration::from_secs(default_retry_after()),
        }
    }
}

impl ServerSettings {
    /// Settings with the defaults (`/fhir`, 1 MiB bodies) on `listen`.
    pub fn with_defaults(listen: SocketAddr) -> Self {
        ServerSettings {
            listen,
            base_path: "/fhir".to_owned(),
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }
}

/// The default body size limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

// ---- The file as written -------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileModel {
    #[serde(default)]
    server: ServerModel,
    salesforce: SalesforceModel,
    mapping: MappingModel,
    #[serde(default)]
    store: StoreModel,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreModel {
    path: Option<RelativePathBuf>,
}

/// The store file's name when `store.path` is not set: beside the configuration file.
pub const DEFAULT_STORE_FILE: &str = "appointments.jsonl";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ServerModel {
    listen: String,
    base_path: String,
    body_limit: usize,
}

impl Default for ServerModel {
    fn default() -> Self {
        ServerModel {
            listen: "127.0.0.1:8080".to_owned(),
            base_path: "/fhir".to_owned(),
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SalesforceModel {
    token_url: String,
    #[serde(default = "default_api_version")]
    api_version: String,
    client_id: String,
    // Present here only so that a secret written into the file is caught and refused.
    #[serde(default)]
    client_secret: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    client_secret_file: Option<RelativePathBuf>,
    #[serde(default = "default_token_lifetime")]
    token_lifetime_secs: u64,
    #[serde(default = "default_connect_timeout")]
    connect_timeout_ms: u64,
    #[serde(default = "default_request_timeout")]
    request_timeout_ms: u64,
    #[serde(default = "default_retry_after")]
    throttle_retry_after_secs: u64,
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
                .filter(|k| !k.as_str().eq_ignore_ascii_case("salesforce__client_secret"))
                .split("__"),
        );
        let file_name = path.display().to_string();
        let model: FileModel = figment.extract().map_err(|e| {
            let source_name = e
                .metadata
                .as_ref()
                .and_then(|m| m.source.as_ref())
                .map(|s| s.to_string())
                .unwrap_or_else(|| file_name.clone());
            let key = if e.path.is_empty() {
                "(top level)".to_owned()
            } else {
                e.path.join(".")
            };
            ConfigError {
                source_name,
                key,
                reason: e.kind.to_string(),
            }
        })?;
        let secret_from_env = std::env::var(ENV_CLIENT_SECRET).ok();
        Settings::from_model(model, &file_name, secret_from_env)
    }

    fn from_model(
        model: FileModel,
        file: &str,
        secret_from_env: Option<String>,
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

        let sf = model.salesforce;
        let token_url = Url::parse(&sf.token_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                fail(
                    "salesforce.token_url",
                    "must be an http(s) URL, e.g. https://mydomain.my.salesforce.com/services/oauth2/token"
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
        let client_secret = match (secret_from_env, sf.client_secret_file) {
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
                    format!("missing: set {ENV_CLIENT_SECRET} or salesforce.client_secret_file"),
                ));
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

        Ok(Settings {
            server: ServerSettings {
                listen,
                base_path,
                body_limit: model.server.body_limit,
            },
            salesforce: SalesforceSettings {
                token_url,
                api_version: sf.api_version,
                client_id: sf.client_id,
                client_secret,
                token_lifetime: Duration::from_secs(sf.token_lifetime_secs),
                connect_timeout: Duration::from_millis(sf.connect_timeout_ms),
                request_timeout: Duration::from_millis(sf.request_timeout_ms),
                throttle_retry_after: Duration::from_secs(sf.throttle_retry_after_secs),
            },
            mapping_file: model.mapping.file.relative(),
            store_path: match model.store.path {
                Some(p) => p.relative(),
                None => Path::new(file)
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join(DEFAULT_STORE_FILE),
            },
        })
    }
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

    const MINIMAL: &str = "[salesforce]\ntoken_url = \"https://example.my.salesforce.com/services/oauth2/token\"\n\
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
        assert_eq!(s.salesforce.api_version, "65.0");
        assert_eq!(s.salesforce.client_secret.expose_secret(), "s3cr3t");
        assert_eq!(s.salesforce.token_lifetime, Duration::from_secs(3600));
        assert_eq!(s.mapping_file, dir.path().join("mapping.toml"));
        assert_eq!(s.store_path, dir.path().join("appointments.jsonl"));
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
        ];
        for (extra, key, reason) in cases {
            let path = write(dir.path(), "proxy.toml", &format!("{MINIMAL}{extra}"));
            let e = Settings::load(&path).unwrap_err();
            assert!(e.key.starts_with(key), "{e}");
            assert!(e.reason.contains(reason), "{e}");
            assert!(e.to_string().contains("proxy.toml"), "{e}");
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

    #[test]
    fn base_path_is_normalized() {
        assert_eq!(normalize_base_path("/fhir/").as_deref(), Some("/fhir"));
        assert_eq!(normalize_base_path("/").as_deref(), Some(""));
        assert_eq!(normalize_base_path("fhir"), None);
    }
}
