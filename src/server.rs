//! Start-up: binds the listener, builds the shared state (one reqwest client, one token cache, the
//! checked mapping) once, and runs the actix-web server.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use tracing_actix_web::TracingLogger;

use crate::audit::{self, FhirBase};
use crate::auth::Auth;
use crate::config::{SalesforceSettings, ServerSettings};
use crate::http::health::Readiness;
use crate::http::tenant::Tenants;
use crate::http::{self, AppState, RedactingRootSpan};
use crate::mapping::Mapping;
use crate::metrics::{self, Metrics};
use crate::salesforce::SalesforceClient;
use crate::store::AppointmentStore;

/// One org as the server runs it: its connection settings, its checked mapping and its store.
pub struct Tenant {
    /// `None` for the tenant at the FHIR base itself, else the URL segment after it.
    pub name: Option<String>,
    /// The Salesforce connection.
    pub salesforce: SalesforceSettings,
    /// The checked mapping.
    pub mapping: Mapping,
    /// The appointment store.
    pub store: Arc<dyn AppointmentStore>,
}

/// A bound, not yet running proxy.
pub struct Application {
    port: u16,
    server: Server,
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
        auth: Arc<Auth>,
    ) -> std::io::Result<Application> {
        let listener = TcpListener::bind(server.listen)?;
        Application::with_tenants(listener, server, tenants, auth)
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
        store: Arc<dyn AppointmentStore>,
        auth: Arc<Auth>,
    ) -> std::io::Result<Application> {
        let tenant = Tenant {
            name: None,
            salesforce,
            mapping,
            store,
        };
        Application::with_tenants(listener, server, vec![tenant], auth)
    }

    /// Builds the proxy for several orgs on an already bound listener: the unnamed tenant (if
    /// any) at the FHIR base, each named one at `{base}/{name}`, each with its own Salesforce
    /// client (token cache, limits) and mapping.
    ///
    /// # Errors
    /// When an HTTP client cannot be built or the listener cannot be used.
    pub fn with_tenants(
        listener: TcpListener,
        server: &ServerSettings,
        tenants: Vec<Tenant>,
        auth: Arc<Auth>,
    ) -> std::io::Result<Application> {
        let port = listener.local_addr()?.port();
        let mut registry = Tenants::default();
        // One registry per application, so proxies in one process (tests) count apart.
        let metrics = Metrics::new();
        for tenant in tenants {
            // One HTTP client per org, shared by every worker: its timeouts are the org's own, and
            // connections to different orgs' hosts would never share a pool anyway.
            let http_client =
                SalesforceClient::http_client(&tenant.salesforce).map_err(std::io::Error::other)?;
            let base_path = match &tenant.name {
                None => server.base_path.clone(),
                Some(name) => format!("{}/{name}", server.base_path),
            };
            let tenant_metrics =
                metrics.salesforce(tenant.name.as_deref().unwrap_or(metrics::DEFAULT_TENANT));
            registry.insert(
                tenant.name,
                Arc::new(AppState {
                    mapping: Arc::new(tenant.mapping),
                    salesforce: SalesforceClient::with_metrics(
                        http_client,
                        tenant.salesforce,
                        tenant_metrics,
                    ),
                    body_limit: server.body_limit,
                    base_path,
                    store: tenant.store,
                    in_flight: Default::default(),
                }),
            );
        }
        let registry = web::Data::new(registry);
        let metrics = web::Data::new(metrics);
        let fhir_base = web::Data::new(FhirBase(server.base_path.clone()));
        let readiness = web::Data::new(Readiness::new(server.readiness_cache, auth.is_enabled()));
        let auth_data = web::Data::from(auth.clone());
        let auth_base = web::Data::new(http::auth::AuthBase(server.base_path.clone()));
        let base_path = server.base_path.clone();
        let server = HttpServer::new(move || {
            let base_path = base_path.clone();
            App::new()
                // Before routing and every handler: who calls, and whether they may.
                .wrap(from_fn(http::auth::authorize))
                .wrap(from_fn(http::request_id_header))
                // Inside the request span (its lines carry the request id), outside every handler.
                .wrap(from_fn(audit::observe))
                .wrap(TracingLogger::<RedactingRootSpan>::new())
                .app_data(registry.clone())
                .app_data(auth_data.clone())
                .app_data(auth_base.clone())
                .app_data(metrics.clone())
                .app_data(fhir_base.clone())
                .app_data(readiness.clone())
                .configure(|cfg| http::configure(cfg, &base_path))
                .default_service(web::to(http::not_found))
        })
        .listen(listener)?
        .run();
        Ok(Application { port, server, auth })
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

    /// Runs until the server is stopped (Ctrl-C, SIGTERM or the handle).
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
