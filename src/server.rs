//! Start-up: binds the listener, builds the shared state (one reqwest client, one token cache, the
//! checked mapping) once, and runs the actix-web server.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use tracing_actix_web::TracingLogger;

use crate::auth::Auth;
use crate::config::{SalesforceSettings, ServerSettings};
use crate::http::health::Readiness;
use crate::http::request_id::RedactingRootSpan;
use crate::http::{self, audit};
use crate::mapping::Mapping;
use crate::metrics::{self, Metrics};
use crate::reload::Reloader;
use crate::salesforce::SalesforceClient;
use crate::store::Store;
use crate::tenants::Tenants;

/// One org as the server runs it: its connection settings and its checked mapping (its rows in
/// the store are kept apart by its name).
pub struct Tenant {
    /// `None` for the tenant at the FHIR base itself, else the URL segment after it.
    pub name: Option<String>,
    /// The Salesforce connection.
    pub salesforce: SalesforceSettings,
    /// The checked mapping.
    pub mapping: Mapping,
}

/// A bound, not yet running proxy.
pub struct Application {
    port: u16,
    server: Server,
    reloader: Arc<Reloader>,
    shutdown_timeout: Duration,
    auth: Arc<Auth>,
}

impl Application {
    /// Binds `server.listen` and builds the proxy.
    ///
    /// # Errors
    /// When the address cannot be bound or the HTTP client cannot be built.
    pub fn build(
        server: &ServerSettings,
        tenants: Vec<Tenant>,
        store: Store,
        auth: Arc<Auth>,
    ) -> std::io::Result<Application> {
        let listener = TcpListener::bind(server.listen)?;
        Application::with_tenants(listener, server, tenants, store, auth)
    }

    /// Builds the proxy on an already bound listener (tests bind port 0).
    ///
    /// # Errors
    /// When the HTTP client cannot be built or the listener cannot be used.
    pub fn with_listener(
        listener: TcpListener,
        server: &ServerSettings,
        salesforce: SalesforceSettings,
        mapping: Mapping,
        store: Store,
        auth: Arc<Auth>,
    ) -> std::io::Result<Application> {
        let tenant = Tenant {
            name: None,
            salesforce,
            mapping,
        };
        Application::with_tenants(listener, server, vec![tenant], store, auth)
    }

    /// Builds the proxy for several orgs on an already bound listener: the unnamed tenant (if
    /// any) at the FHIR base, each named one at `{base}/{name}`, each with its own Salesforce
    /// client (token cache, limits) and mapping, all with their rows in `store`.
    ///
    /// # Errors
    /// When an HTTP client cannot be built or the listener cannot be used.
    pub fn with_tenants(
        listener: TcpListener,
        server: &ServerSettings,
        tenants: Vec<Tenant>,
        store: Store,
        auth: Arc<Auth>,
    ) -> std::io::Result<Application> {
        let port = listener.local_addr()?.port();
        let mut registry = Tenants::default();
        // What a reload must not change without a restart, as the proxy starts with it.
        let mut salesforce_running = BTreeMap::new();
        // One registry per application, so proxies in one process (tests) count apart.
        let metrics = Metrics::with_store(store.metrics());
        for tenant in tenants {
            // One HTTP client per org, shared by every worker: its timeouts are the org's own, and
            // connections to different orgs' hosts would never share a pool anyway.
            let http_client =
                SalesforceClient::http_client(&tenant.salesforce).map_err(std::io::Error::other)?;
            salesforce_running.insert(tenant.name.clone(), format!("{:?}", tenant.salesforce));
            let base_path = match &tenant.name {
                None => server.base_path.clone(),
                Some(name) => format!("{}/{name}", server.base_path),
            };
            let tenant_metrics =
                metrics.salesforce(tenant.name.as_deref().unwrap_or(metrics::DEFAULT_TENANT));
            let tenant_store = store.tenant(tenant.name.as_deref());
            registry.insert(
                tenant.name,
                Arc::new(crate::tenants::Tenant {
                    mapping: Arc::new(tenant.mapping),
                    salesforce: SalesforceClient::with_metrics(
                        http_client,
                        tenant.salesforce,
                        tenant_metrics,
                    ),
                    body_limit: server.body_limit,
                    base_path,
                    store: tenant_store,
                }),
            );
        }
        let registry = web::Data::new(registry);
        let reloader = Arc::new(Reloader::new(
            server,
            salesforce_running,
            registry.clone(),
            auth.clone(),
        ));
        let reloader_data = web::Data::from(reloader.clone());
        let limits = web::Data::new(http::limit::Limits::new(server));
        let tls = match &server.tls {
            Some(tls) => Some(crate::tls::server_config(tls).map_err(std::io::Error::other)?),
            None => None,
        };
        let shutdown_timeout = server.shutdown_timeout;
        // actix's own timeout for a request's head to arrive (a bare 408 past it): slow-header
        // clients must not hold connections for the whole request timeout.
        let head_timeout = server.request_timeout.min(HEAD_TIMEOUT);
        let metrics = web::Data::new(metrics);
        let route_table = web::Data::new(http::routes::RouteTable::new(&server.base_path));
        let readiness = web::Data::new(Readiness::new(server.readiness_cache, store));
        let statements = web::Data::new(http::metadata::StatementCache::default());
        let auth_data = web::Data::from(auth.clone());
        let base_path = server.base_path.clone();
        let server = HttpServer::new(move || {
            let base_path = base_path.clone();
            App::new()
                // Before routing and every handler: who calls, and whether they may.
                .wrap(from_fn(http::auth::authorize))
                // Innermost: its refusals still get a request id, a span and an audit line.
                .wrap(from_fn(http::limit::limits))
                .wrap(from_fn(http::request_id::request_id_header))
                // Inside the request span (its lines carry the request id), outside every handler.
                .wrap(from_fn(audit::observe))
                // What the request is, from the route table, once: everything inside reads it.
                .wrap(from_fn(http::routes::classify))
                .wrap(TracingLogger::<RedactingRootSpan>::new())
                .app_data(registry.clone())
                .app_data(auth_data.clone())
                .app_data(reloader_data.clone())
                .app_data(limits.clone())
                .app_data(metrics.clone())
                .app_data(route_table.clone())
                .app_data(readiness.clone())
                .app_data(statements.clone())
                .configure(|cfg| http::configure(cfg, &base_path))
                .default_service(web::to(http::not_found))
        })
        .shutdown_timeout(shutdown_timeout.as_secs())
        .client_request_timeout(head_timeout)
        // Signals belong to `signals::run_until_signalled` (SIGHUP reloads; the drain is logged).
        .disable_signals();
        let server = match tls {
            Some(config) => server.listen_rustls_0_23(listener, config)?,
            None => server.listen(listener)?,
        }
        .run();
        Ok(Application {
            port,
            server,
            reloader,
            shutdown_timeout,
            auth,
        })
    }

    /// The reloader of this proxy's mappings (SIGHUP, `POST /admin/reload`).
    pub fn reloader(&self) -> Arc<Reloader> {
        self.reloader.clone()
    }

    /// How long a graceful stop waits for requests in flight.
    pub fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
    }

    /// Inbound auth, to replace its client list on a reload ([`Auth::replace_clients`]).
    pub fn auth(&self) -> Arc<Auth> {
        self.auth.clone()
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Runs until the server is stopped through its handle (signals are handled by
    /// `signals::run_until_signalled`).
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// The longest actix waits for a request's head (`client_request_timeout`), unless the request
/// timeout is shorter.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
