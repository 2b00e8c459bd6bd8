//! Live reload and the process's signals.
//!
//! A reload (SIGHUP, or `POST /admin/reload`) reads the configuration file again (with its
//! `[auth]` client list, checked as it loads), loads and checks every tenant's mapping file, and
//! only when all of them are good puts the mappings and the clients in (see
//! [`Tenants::replace_mappings`] and [`Auth::replace_clients`]); one bad file refuses the whole
//! reload, which is logged with the file and the reason, and what is in place keeps serving. Requests in flight finish
//! on the version they started with. Settings that need a restart (every `[server]` key, a
//! tenant's `[salesforce]` connection, tenants added or removed) are not applied: the reload
//! reports them as ignored. Each successful reload makes a new generation, shown in the reload's
//! answer, its log line and `GET /status`.
//!
//! [`run_until_signalled`] runs a server the way `serve` and `demo` do: SIGHUP reloads, SIGTERM or
//! Ctrl-C stop accepting and drain requests in flight for `server.shutdown_timeout_secs`, a second
//! one stops at once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use actix_web::web;
use serde::Serialize;

use crate::auth::Auth;
use crate::config::{ServerSettings, Settings};
use crate::error::ProxyError;
use crate::mapping::Mapping;
use crate::tenants::Tenants;

/// What a successful reload did.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    /// The generation now serving.
    pub generation: u64,
    /// The mappings put in, one per tenant.
    pub reloaded: Vec<ReloadedMapping>,
    /// The inbound clients now configured (`[[auth.clients]]`).
    pub clients: usize,
    /// Changes found in the file that take effect only after a restart.
    pub ignored: Vec<String>,
}

/// One tenant's new mapping.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadedMapping {
    /// The tenant (`null`: the one at the FHIR base).
    pub tenant: Option<String>,
    /// The mapping file read.
    pub mapping_file: String,
}

/// Reloads the mappings of a running proxy from its configuration file.
pub struct Reloader {
    config_file: Option<PathBuf>,
    tenants: web::Data<Tenants>,
    auth: Arc<Auth>,
    /// The settings the proxy runs with; held while a reload runs, so reloads never overlap.
    running: Mutex<Running>,
}

/// What a reload cannot change, as the proxy started with it.
struct Running {
    server: ServerSettings,
    /// Each tenant's `[salesforce]` settings as debug text (secrets show redacted, so a changed
    /// secret or key file is not seen: those are read at start only).
    salesforce: BTreeMap<Option<String>, String>,
}

impl Reloader {
    /// A reloader for the tenants of a proxy started with `server` (whose `config_file` is read
    /// again) and with these `[salesforce]` settings per tenant, as debug text; `auth` gets the
    /// file's client list on each successful reload.
    pub fn new(
        server: &ServerSettings,
        salesforce: BTreeMap<Option<String>, String>,
        tenants: web::Data<Tenants>,
        auth: Arc<Auth>,
    ) -> Self {
        Reloader {
            config_file: server.config_file.clone(),
            tenants,
            auth,
            running: Mutex::new(Running {
                server: server.clone(),
                salesforce,
            }),
        }
    }

    /// The generation serving now.
    pub fn generation(&self) -> u64 {
        self.tenants.generation()
    }

    /// Reads the configuration and every mapping again, and puts the mappings in if all are good.
    /// Logs the result either way. Blocking (file reads and parsing): call it off the workers.
    ///
    /// # Errors
    /// [`ProxyError::ReloadRefused`] naming each bad file and why (nothing changed then);
    /// [`ProxyError::NothingToReload`] when the proxy was started without a configuration file.
    pub fn reload(&self) -> Result<ReloadReport, ProxyError> {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(config_file) = &self.config_file else {
            return Err(ProxyError::NothingToReload);
        };
        let generation = self.tenants.generation();
        let refuse = |problems: Vec<String>| {
            for problem in &problems {
                tracing::error!(generation, %problem, "reload refused; the current mappings keep serving");
            }
            ProxyError::ReloadRefused {
                generation,
                problems,
            }
        };
        let settings = Settings::load(config_file).map_err(|e| refuse(vec![e.to_string()]))?;

        let mut ignored = changed_server_keys(&running.server, &settings.server);
        let mut problems = Vec::new();
        let mut mappings = Vec::new();
        let mut reloaded = Vec::new();
        let mut seen = Vec::new();
        for tenant in &settings.tenants {
            let label = tenant_label(tenant.name.as_deref());
            seen.push(tenant.name.clone());
            if !self.tenants.contains(tenant.name.as_deref()) {
                ignored.push(format!("{label} is new: it is served after a restart"));
                continue;
            }
            if running.salesforce.get(&tenant.name) != Some(&format!("{:?}", tenant.salesforce)) {
                ignored.push(format!(
                    "{label}: its [salesforce] connection changed: that takes a restart"
                ));
            }
            match Mapping::load(&tenant.mapping_file) {
                Ok(mapping) => {
                    reloaded.push(ReloadedMapping {
                        tenant: tenant.name.clone(),
                        mapping_file: tenant.mapping_file.display().to_string(),
                    });
                    mappings.push((tenant.name.clone(), mapping));
                }
                Err(e) => problems.push(format!("{label}: {e}")),
            }
        }
        for name in self.tenants.names() {
            if !seen.contains(&name) {
                ignored.push(format!(
                    "{} was removed from the file: it is served until a restart",
                    tenant_label(name.as_deref())
                ));
            }
        }
        if !problems.is_empty() {
            return Err(refuse(problems));
        }
        let clients = settings.auth.clients.len();
        self.auth.replace_clients(settings.auth);
        let generation = self.tenants.replace_mappings(mappings);
        let tenants: Vec<_> = reloaded
            .iter()
            .map(|r| tenant_label(r.tenant.as_deref()))
            .collect();
        tracing::info!(generation, ?tenants, clients, ?ignored, "mappings reloaded");
        Ok(ReloadReport {
            generation,
            reloaded,
            clients,
            ignored,
        })
    }
}

fn tenant_label(name: Option<&str>) -> String {
    match name {
        None => "the tenant at the FHIR base".to_owned(),
        Some(name) => format!("tenant {name}"),
    }
}

/// The `[server]` keys whose value in the file differs from the running one, each with a note
/// that it takes a restart.
fn changed_server_keys(running: &ServerSettings, file: &ServerSettings) -> Vec<String> {
    let mut changed = Vec::new();
    let mut check = |key: &str, differs: bool| {
        if differs {
            changed.push(format!("server.{key} changed: that takes a restart"));
        }
    };
    check("listen", running.listen != file.listen);
    check("base_path", running.base_path != file.base_path);
    check("body_limit", running.body_limit != file.body_limit);
    check(
        "shutdown_timeout_secs",
        running.shutdown_timeout != file.shutdown_timeout,
    );
    check(
        "max_header_bytes",
        running.max_header_bytes != file.max_header_bytes,
    );
    check(
        "request_timeout_secs",
        running.request_timeout != file.request_timeout,
    );
    check(
        "max_concurrent_requests",
        running.max_concurrent_requests != file.max_concurrent_requests,
    );
    check("tls", running.tls != file.tls);
    changed
}

/// Reloads off the worker threads (the files are read and parsed synchronously).
///
/// # Errors
/// Those of [`Reloader::reload`].
pub async fn reload_in_background(reloader: Arc<Reloader>) -> Result<ReloadReport, ProxyError> {
    let generation = reloader.generation();
    let reload = move || {
        // Log rotation's usual signal is SIGHUP: the audit file is reopened even when the
        // mappings cannot be reloaded (or there is no configuration file, as in `demo`).
        crate::telemetry::reopen_audit_file();
        reloader.reload()
    };
    match actix_web::rt::task::spawn_blocking(reload).await {
        Ok(result) => result,
        // The reload panicked: nothing was swapped (the swap is its last step).
        Err(_) => Err(ProxyError::ReloadRefused {
            generation,
            problems: vec!["the reload failed unexpectedly; see the log".to_owned()],
        }),
    }
}
