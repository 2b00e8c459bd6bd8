//! `[store]`: where appointments, identifier claims and issued tokens are kept (see
//! [`crate::store`]): a SQLite file (`path`, the default) or a PostgreSQL database (`url`), whose
//! password comes only from [`ENV_STORE_PASSWORD`] or `store.password_file`.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use figment::value::magic::RelativePathBuf;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use super::ConfigError;
use crate::store::settings::{
    DEFAULT_CLAIM_TIMEOUT_SECS, DEFAULT_CONNECT_TIMEOUT_SECS, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_PURGE_INTERVAL_SECS, ENV_STORE_PASSWORD, LegacyImport, PostgresSettings, StoreEngine,
    StoreSettings,
};

/// The SQLite file's name when neither `store.path` nor `store.url` is set: beside the
/// configuration file.
pub const DEFAULT_STORE_FILE: &str = "appointments.db";
/// The earlier file store's default file for the tenant at the FHIR base (imported at start when
/// it is there).
pub const LEGACY_STORE_FILE: &str = "appointments.jsonl";
/// `[store]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StoreModel {
    path: Option<RelativePathBuf>,
    url: Option<String>,
    // Present here only so that a password written into the file is caught and refused.
    password: Option<serde::de::IgnoredAny>,
    password_file: Option<RelativePathBuf>,
    ca_file: Option<RelativePathBuf>,
    max_connections: Option<usize>,
    connect_timeout_secs: Option<u64>,
    claim_timeout_secs: Option<u64>,
    retention_days: Option<u64>,
    purge_interval_secs: Option<u64>,
    import_jsonl: Option<RelativePathBuf>,
}

/// `[tenants.NAME.store]` as written: only the file of the earlier store to import.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TenantStoreModel {
    // The earlier per-tenant store file: caught, to say where it goes now.
    path: Option<serde::de::IgnoredAny>,
    import_jsonl: Option<RelativePathBuf>,
}

/// Checks `[store]` and the tenants' `[tenants.NAME.store]` sections.
pub(super) fn store_settings(
    model: StoreModel,
    tenants: Vec<(Option<String>, TenantStoreModel)>,
    config_dir: &Path,
    request_timeout: Duration,
    password_from_env: Option<String>,
    fail: &dyn Fn(&str, String) -> ConfigError,
) -> Result<StoreSettings, ConfigError> {
    if model.password.is_some() {
        return Err(fail(
            "store.password",
            format!(
                "secrets are not read from the configuration file; set {ENV_STORE_PASSWORD} or \
                 store.password_file"
            ),
        ));
    }
    let engine = match (model.path, model.url) {
        (Some(_), Some(_)) => {
            return Err(fail(
                "store",
                "set store.path (SQLite) or store.url (PostgreSQL), not both".to_owned(),
            ));
        }
        (path, None) => {
            for (key, set) in [
                ("store.password_file", model.password_file.is_some()),
                ("store.ca_file", model.ca_file.is_some()),
                ("store.max_connections", model.max_connections.is_some()),
            ] {
                if set {
                    return Err(fail(
                        key,
                        "is used only with store.url (PostgreSQL)".to_owned(),
                    ));
                }
            }
            let path = path.map_or_else(|| config_dir.join(DEFAULT_STORE_FILE), |p| p.relative());
            if path.extension().is_some_and(|e| e == "jsonl") {
                return Err(fail(
                    "store.path",
                    format!(
                        "{} looks like the JSON-lines file of the earlier file store; store.path \
                         now names the SQLite database (default {DEFAULT_STORE_FILE} beside the \
                         configuration file): move that file to store.import_jsonl, and it is \
                         imported once at start",
                        path.display()
                    ),
                ));
            }
            StoreEngine::Sqlite { path }
        }
        (None, Some(url)) => StoreEngine::Postgres(PostgresSettings {
            url: postgres_url(&url).map_err(|reason| fail("store.url", reason))?,
            password: read_password(password_from_env, model.password_file, fail)?,
            max_connections: match model.max_connections {
                Some(0) => return Err(fail("store.max_connections", "must be more than 0".into())),
                Some(n) => n,
                None => DEFAULT_MAX_CONNECTIONS,
            },
            connect_timeout: Duration::from_secs(
                match model
                    .connect_timeout_secs
                    .unwrap_or(DEFAULT_CONNECT_TIMEOUT_SECS)
                {
                    0 => {
                        return Err(fail(
                            "store.connect_timeout_secs",
                            "must be more than 0".into(),
                        ));
                    }
                    n => n,
                },
            ),
            ca_file: model.ca_file.map(|f| f.relative()),
        }),
    };
    let claim_timeout = Duration::from_secs(
        model
            .claim_timeout_secs
            .unwrap_or(DEFAULT_CLAIM_TIMEOUT_SECS),
    );
    if claim_timeout <= request_timeout {
        return Err(fail(
            "store.claim_timeout_secs",
            format!(
                "must be longer than server.request_timeout_secs ({} s): a claim must outlive the \
                 request that holds it, or a retry could book the same appointment again",
                request_timeout.as_secs()
            ),
        ));
    }
    let purge_interval = Duration::from_secs(
        model
            .purge_interval_secs
            .unwrap_or(DEFAULT_PURGE_INTERVAL_SECS),
    );
    if purge_interval.is_zero() {
        return Err(fail(
            "store.purge_interval_secs",
            "must be more than 0".to_owned(),
        ));
    }
    let retention = match model.retention_days {
        None | Some(0) => None,
        Some(days) if days > 36_500 => {
            return Err(fail(
                "store.retention_days",
                "must be at most 36500 (0 keeps records for ever)".to_owned(),
            ));
        }
        Some(days) => Some(Duration::from_secs(days * 86_400)),
    };
    let mut imports = vec![legacy_import(None, model.import_jsonl, config_dir)];
    for (name, tenant) in tenants {
        let prefix = format!("tenants.{}.store", name.as_deref().unwrap_or_default());
        if tenant.path.is_some() {
            return Err(fail(
                &format!("{prefix}.path"),
                format!(
                    "every tenant's appointments are now kept in the one [store] (each apart by \
                     tenant); the earlier per-tenant JSON-lines file is imported from \
                     {prefix}.import_jsonl"
                ),
            ));
        }
        imports.push(legacy_import(name, tenant.import_jsonl, config_dir));
    }
    Ok(StoreSettings {
        engine,
        claim_timeout,
        retention,
        purge_interval,
        imports,
    })
}

/// The file of the earlier store to import for a tenant: the configured one, else that store's
/// default name beside the configuration file.
fn legacy_import(
    tenant: Option<String>,
    configured: Option<RelativePathBuf>,
    config_dir: &Path,
) -> LegacyImport {
    match configured {
        Some(file) => LegacyImport {
            tenant,
            file: file.relative(),
            explicit: true,
        },
        None => LegacyImport {
            file: config_dir.join(match &tenant {
                None => LEGACY_STORE_FILE.to_owned(),
                Some(name) => format!("appointments-{name}.jsonl"),
            }),
            tenant,
            explicit: false,
        },
    }
}

/// A `postgres://` URL without a password, and with TLS unless the database is on this machine.
fn postgres_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|_| {
        "must be a PostgreSQL URL, e.g. postgres://fsp@db.internal:5432/fsp?sslmode=require"
            .to_owned()
    })?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err("must start with postgres:// (or postgresql://)".to_owned());
    }
    if url.password().is_some() {
        return Err(format!(
            "must not carry a password (it would be written in the configuration and in \
             process listings); set {ENV_STORE_PASSWORD} or store.password_file"
        ));
    }
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    if param("password").is_some() {
        return Err(format!(
            "must not carry a password parameter; set {ENV_STORE_PASSWORD} or store.password_file"
        ));
    }
    let sslmode = param("sslmode");
    if let Some(mode) = &sslmode
        && !matches!(mode.as_str(), "disable" | "prefer" | "require")
    {
        return Err(
            "sslmode must be disable, prefer or require (with require the server's \
                    certificate and host name are verified)"
                .to_owned(),
        );
    }
    let local = param("host").is_some_and(|h| h.starts_with('/'))
        || match url.host() {
            None => true,
            // `postgres:` is no special scheme to the URL parser: an IPv4 address stays text.
            Some(url::Host::Domain(d)) => {
                d.is_empty()
                    || d.eq_ignore_ascii_case("localhost")
                    || d.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
            }
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        };
    if !local && sslmode.as_deref() != Some("require") {
        return Err(
            "a database on another host must be reached over TLS, so that neither its password \
             nor appointment data cross the network in clear: add ?sslmode=require"
                .to_owned(),
        );
    }
    Ok(url)
}

/// The PostgreSQL password from the environment or from `store.password_file`, if any (a
/// database may trust its clients by other means).
fn read_password(
    from_env: Option<String>,
    file: Option<RelativePathBuf>,
    fail: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Option<SecretString>, ConfigError> {
    if let Some(password) = from_env.filter(|p| !p.is_empty()) {
        return Ok(Some(SecretString::from(password)));
    }
    let Some(file) = file else {
        return Ok(None);
    };
    let path = file.relative();
    let text = std::fs::read_to_string(&path).map_err(|e| {
        fail(
            "store.password_file",
            format!("cannot read {}: {}", path.display(), e.kind()),
        )
    })?;
    let password = text.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err(fail(
            "store.password_file",
            format!("{} is empty", path.display()),
        ));
    }
    Ok(Some(SecretString::from(password)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_carry_no_password_and_use_tls_off_this_machine() {
        assert!(postgres_url("postgres://fsp@127.0.0.1:5432/fsp").is_ok());
        assert!(postgres_url("postgres://fsp@localhost/fsp").is_ok());
        assert!(postgres_url("postgres://fsp@[::1]:5433/fsp").is_ok());
        assert!(postgres_url("postgres://fsp@db.internal/fsp?sslmode=require").is_ok());
        assert!(postgres_url("postgres:///fsp?host=/var/run/postgresql&user=fsp").is_ok());
        let refused = [
            ("postgres://fsp:hunter2@127.0.0.1/fsp", "password"),
            ("postgres://fsp@127.0.0.1/fsp?password=hunter2", "password"),
            ("postgres://fsp@db.internal/fsp", "sslmode=require"),
            (
                "postgres://fsp@db.internal/fsp?sslmode=prefer",
                "sslmode=require",
            ),
            (
                "postgres://fsp@db/fsp?sslmode=verify-full",
                "sslmode must be",
            ),
            ("mysql://fsp@127.0.0.1/fsp", "postgres://"),
            ("not a url", "PostgreSQL URL"),
        ];
        for (url, reason) in refused {
            let error = postgres_url(url).expect_err(url);
            assert!(error.contains(reason), "{url}: {error}");
            assert!(!error.contains("hunter2"), "{error}");
        }
    }
}
