//! The command line: `serve`, `demo`, `sandbox`, `translate`, `check-mapping`, `api-key`,
//! `import-store`.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use fhir_salesforce_proxy::auth::{self, Auth, AuthSettings, ClientSettings};
use fhir_salesforce_proxy::booking::resolve::{NO_LOOKUPS_NOTE, translate};
use fhir_salesforce_proxy::config::{SalesforceSettings, ServerSettings, Settings, StoreSettings};
use fhir_salesforce_proxy::fhir::format::Format;
use fhir_salesforce_proxy::fhir::outcome::operation_outcome;
use fhir_salesforce_proxy::mapping::{EXAMPLE_MAPPING, Mapping};
use fhir_salesforce_proxy::sandbox::{self, Sandbox, SandboxSettings};
use fhir_salesforce_proxy::server::{Application, Tenant};
use fhir_salesforce_proxy::signals;
use fhir_salesforce_proxy::store::Store;
use fhir_salesforce_proxy::telemetry::{self, LogFormat};
use secrecy::ExposeSecret;

/// Book Salesforce Health Cloud appointments with FHIR R4.
#[derive(Parser)]
#[command(name = "fhir-salesforce-proxy", version, about)]
struct Cli {
    /// Log line format (logs go to standard error).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "FSP_LOG_FORMAT"
    )]
    log_format: LogFormat,
    /// Write the audit trail (a JSON line per FHIR interaction and security event) to this file,
    /// appended, instead of to standard error with the other logs; it is then written whatever
    /// RUST_LOG says, and reopened on every reload (for log rotation).
    #[arg(long, global = true, value_name = "FILE", env = "FSP_AUDIT_FILE")]
    audit_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy with a configuration file.
    Serve {
        /// The TOML configuration file (see examples/proxy.toml).
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the proxy against a built-in Salesforce sandbox with the example mapping: no
    /// credentials, no network.
    Demo {
        /// Where the proxy listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Run only the built-in Salesforce sandbox (not Salesforce), to test an integration against.
    Sandbox {
        /// Where the sandbox listens, e.g. 127.0.0.1:9090.
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Make a new random API key: prints the key (for the client) and the `api_key_sha256` line
    /// for its `[[auth.clients]]` entry (the proxy keeps only the hash).
    ApiKey,
    /// Print the Book Appointment request an Appointment (JSON or XML) becomes, or the
    /// OperationOutcome saying why it cannot (exit code 1).
    Translate {
        /// The Appointment file.
        appointment: PathBuf,
        /// The mapping file.
        #[arg(long)]
        mapping: PathBuf,
    },
    /// Load and check a mapping file.
    CheckMapping {
        /// The mapping file.
        file: PathBuf,
    },
    /// Import a JSON-lines file of the earlier file store (`appointments.jsonl`) into the store
    /// the configuration names; appointments the store holds already are kept as they are.
    ImportStore {
        /// The TOML configuration file (its `[store]` is imported into).
        #[arg(long)]
        config: PathBuf,
        /// The tenant the file belonged to (default: the one at the FHIR base).
        #[arg(long)]
        tenant: Option<String>,
        /// The JSON-lines file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(message) = telemetry::init(cli.log_format, cli.audit_file.as_deref()) {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Serve { config } => serve(&config),
        Command::Demo { listen } => demo(listen),
        Command::Sandbox { listen } => run_sandbox(listen),
        Command::Translate {
            appointment,
            mapping,
        } => return translate_file(&appointment, &mapping),
        Command::CheckMapping { file } => check_mapping(&file),
        Command::ImportStore {
            config,
            tenant,
            file,
        } => import_store(&config, tenant.as_deref(), &file),
        Command::ApiKey => {
            print_new_api_key();
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn serve(config: &Path) -> Result<(), String> {
    let settings = Settings::load(config).map_err(|e| e.to_string())?;
    let mut tenants = Vec::with_capacity(settings.tenants.len());
    for tenant in settings.tenants {
        // Every mapping and store is checked before the proxy listens: a bad one stops start-up.
        let name = tenant
            .name
            .as_deref()
            .map(|n| format!("tenant {n}: "))
            .unwrap_or_default();
        let mapping = Mapping::load(&tenant.mapping_file).map_err(|e| format!("{name}{e}"))?;
        tenants.push(Tenant {
            name: tenant.name,
            salesforce: tenant.salesforce,
            mapping,
        });
    }
    let names: Vec<String> = tenants.iter().filter_map(|t| t.name.clone()).collect();
    actix_web::rt::System::new().block_on(async move {
        // Before the listener: a store that cannot be opened stops the start.
        let store = open_store(&settings.store).await?;
        let _purge = store.spawn_purge(settings.store.retention, settings.store.purge_interval);
        let auth = Arc::new(Auth::new(settings.auth, store.clone()));
        // Before "proxy started": a SIGHUP sent on seeing that line must reload, not kill.
        let signals = signals::Signals::install().map_err(|e| e.to_string())?;
        let app = Application::build(&settings.server, tenants, store, auth)
            .map_err(|e| format!("cannot start on {}: {e}", settings.server.listen))?;
        let scheme = if settings.server.tls.is_some() { "https" } else { "http" };
        tracing::info!(listen = %settings.server.listen, scheme, base = %settings.server.base_path, tenants = ?names, "proxy started");
        // SIGHUP reloads the mappings; SIGTERM and Ctrl-C drain and stop (exit 0).
        signals.run(app).await.map_err(|e| e.to_string())
    })
}

fn demo(listen: SocketAddr) -> Result<(), String> {
    actix_web::rt::System::new().block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let sandbox =
            Sandbox::start(listener, SandboxSettings::default()).map_err(|e| e.to_string())?;
        let token_url = sandbox.token_url().parse().map_err(|e| format!("{e}"))?;
        let salesforce = SalesforceSettings::with_defaults(
            token_url,
            sandbox::DEFAULT_CLIENT_ID,
            sandbox::DEFAULT_CLIENT_SECRET.into(),
        );
        let mapping = Mapping::from_toml(EXAMPLE_MAPPING, "mappings/example.toml (embedded)")
            .map_err(|e| e.to_string())?;
        let server = ServerSettings::with_defaults(listen);
        // The demo's sandbox forgets everything when it stops, so its store (the embedded engine,
        // as `serve` uses it) lives in a temporary directory, removed when the demo stops.
        let store_dir = tempfile::tempdir().map_err(|e| format!("cannot make a directory: {e}"))?;
        let store = Store::sqlite(&store_dir.path().join("appointments.db"))
            .map_err(|e| format!("cannot open the store: {e}"))?;
        let tenant = Tenant {
            name: None,
            salesforce,
            mapping,
        };
        // A fresh random key each run: the demo is authenticated like any proxy, and the key is
        // good only for this process.
        let (api_key, _) = auth::new_api_key("demo-");
        let api_key = api_key.expose_secret().to_owned();
        let mut auth = AuthSettings::enabled(None);
        let scopes = ["system/Appointment.*", "system/Slot.*"];
        let client = ClientSettings::with_api_key("demo", &api_key, &scopes);
        auth.clients.push(client.map_err(|e| e.to_string())?);
        let auth = Arc::new(Auth::new(auth, store.clone()));
        let app = Application::build(&server, vec![tenant], store, auth).map_err(|e| {
            format!("cannot listen on {listen}: {e} (choose another with --listen)")
        })?;
        println!(
            "fhir-salesforce-proxy demo: FHIR endpoint http://{listen}/fhir, Salesforce sandbox \
             (not Salesforce) at {}\n\nBook the example appointment:\n\n  curl -sS -X POST \
             http://{listen}/fhir/Appointment -H 'Content-Type: application/fhir+json' \
             -H 'X-API-Key: {api_key}' --data-binary @examples/appointment.json\n\nRead it back as \
             Salesforce holds it, and search the patient's appointments:\n\n  curl -sS \
             http://{listen}/fhir/Appointment/ID -H 'X-API-Key: {api_key}'\n  curl -sS \
             'http://{listen}/fhir/Appointment?patient=Patient/pat-1001' -H 'X-API-Key: \
             {api_key}'\n\nStop with Ctrl-C.",
            sandbox.base_url()
        );
        let result = signals::run_until_signalled(app)
            .await
            .map_err(|e| e.to_string());
        sandbox.stop().await;
        drop(store_dir);
        result
    })
}

/// Opens the configured store (importing any earlier file store), logging which it is.
async fn open_store(settings: &StoreSettings) -> Result<Store, String> {
    let store = Store::open(settings)
        .await
        .map_err(|e| format!("cannot open the store: {e}"))?;
    tracing::info!(store = %store.description(), "store opened");
    Ok(store)
}

fn import_store(config: &Path, tenant: Option<&str>, file: &Path) -> Result<(), String> {
    let settings = Settings::load(config).map_err(|e| e.to_string())?;
    if !settings.tenants.iter().any(|t| t.name.as_deref() == tenant) {
        return Err(match tenant {
            Some(name) => format!("{}: there is no tenant {name}", config.display()),
            None => format!(
                "{}: there is no tenant at the FHIR base; name one with --tenant",
                config.display()
            ),
        });
    }
    actix_web::rt::System::new().block_on(async move {
        let store = open_store(&settings.store).await?;
        let report = store
            .tenant(tenant)
            .import_legacy(file)
            .await
            .map_err(|e| e.to_string())?;
        if report.already_imported {
            println!("{}: imported before; nothing done", report.source);
        } else {
            println!(
                "{}: {} appointments, {} imported into {}{}, {} kept as the store had them",
                report.source,
                report.in_file,
                report.imported,
                store.description(),
                tenant.map(|t| format!(" (tenant {t})")).unwrap_or_default(),
                report.kept
            );
        }
        Ok(())
    })
}

fn run_sandbox(listen: SocketAddr) -> Result<(), String> {
    actix_web::rt::System::new().block_on(async move {
        let listener =
            TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        println!(
            "Salesforce sandbox (not Salesforce) at http://{listen}\n  token URL: \
             http://{listen}/services/oauth2/token (client credentials: {} / {})",
            sandbox::DEFAULT_CLIENT_ID,
            sandbox::DEFAULT_CLIENT_SECRET
        );
        sandbox::run(listener, SandboxSettings::default())
            .await
            .map_err(|e| e.to_string())
    })
}

fn translate_file(appointment: &Path, mapping: &Path) -> ExitCode {
    let mapping = match Mapping::load(mapping) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let body = match std::fs::read(appointment) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", appointment.display());
            return ExitCode::from(2);
        }
    };
    // XML starts with `<` (after any byte-order mark or whitespace); everything else is JSON.
    let format = match body
        .iter()
        .find(|b| !b.is_ascii_whitespace() && **b != 0xEF && **b != 0xBB && **b != 0xBF)
    {
        Some(b'<') => Format::Xml,
        _ => Format::Json,
    };
    match translate(&body, format, &mapping) {
        Ok((_, request)) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&request).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            let decided = error.outcome();
            let outcome = operation_outcome(&decided.issues);
            let text = fhirbolt::json::to_string_pretty(&outcome, None).unwrap_or_default();
            println!("{text}");
            let needs_lookups = decided
                .issues
                .first()
                .is_some_and(|i| i.diagnostics == NO_LOOKUPS_NOTE);
            if needs_lookups {
                // Not a fault of the appointment: only the running proxy can ask Salesforce.
                eprintln!(
                    "error: the request needs Salesforce ids from lookups by external id, which \
                     translate does not make; the running proxy makes them when it books"
                );
            } else {
                eprintln!(
                    "error: the appointment cannot be booked (HTTP {} from the proxy)",
                    decided.status.as_u16()
                );
            }
            ExitCode::from(1)
        }
    }
}

fn check_mapping(file: &Path) -> Result<(), String> {
    let mapping = Mapping::load(file).map_err(|e| e.to_string())?;
    println!(
        "{}: OK ({} work type rules, {} id table entries, {} coded elements)",
        file.display(),
        mapping.work_type_rules.len(),
        mapping.references.len() + mapping.identifiers.len(),
        mapping.codes.len()
    );
    Ok(())
}

fn print_new_api_key() {
    let (key, hash) = auth::new_api_key("fsp-");
    println!(
        "API key, for the client (shown once; the proxy stores only its hash):\n\n  {}\n\nFor \
         its [[auth.clients]] entry:\n\n  api_key_sha256 = \"{hash}\"",
        key.expose_secret()
    );
}
