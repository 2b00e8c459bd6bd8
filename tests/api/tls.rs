//! HTTPS on the listener: with `[server.tls]` the proxy serves FHIR over TLS with the configured
//! certificate, and a plain-HTTP request to the same port gets no FHIR answer.

use std::net::TcpListener;

use actix_web::dev::ServerHandle;
use fhir_salesforce_proxy::config::{ServerSettings, TlsSettings};
use fhir_salesforce_proxy::server::Application;

use crate::helpers::*;

/// A proxy on https://localhost:PORT with a fresh self-signed certificate, and a client that
/// trusts exactly that certificate.
struct TlsApp {
    port: u16,
    client: reqwest::Client,
    handle: ServerHandle,
    _dir: tempfile::TempDir,
}

impl Drop for TlsApp {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

fn spawn_tls(token_url: &str) -> TlsApp {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let tls = TlsSettings {
        cert_file: dir.path().join("cert.pem"),
        key_file: dir.path().join("key.pem"),
    };
    std::fs::write(&tls.cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&tls.key_file, cert.signing_key.serialize_pem()).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut server = ServerSettings::with_defaults(listener.local_addr().unwrap());
    server.tls = Some(tls);
    let store = fhir_salesforce_proxy::store::Store::sqlite(&dir.path().join("store.db")).unwrap();
    let app = Application::with_listener(
        listener,
        &server,
        salesforce_settings(token_url),
        example_mapping(),
        store.clone(),
        auth_disabled(&store),
    )
    .unwrap();
    let port = app.port();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    TlsApp {
        port,
        client,
        handle,
        _dir: dir,
    }
}

#[tokio::test]
async fn with_tls_configured_the_proxy_books_and_answers_metadata_over_https() {
    let sandbox = start_sandbox();
    let app = spawn_tls(&sandbox.token_url());

    for host in ["localhost", "127.0.0.1"] {
        let metadata = app
            .client
            .get(format!("https://{host}:{}/fhir/metadata", app.port))
            .send()
            .await
            .unwrap();
        assert_eq!(metadata.status(), 200);
        let body = json_body(metadata).await;
        assert_eq!(body["resourceType"], "CapabilityStatement", "{body}");
    }
    let booked = app
        .client
        .post(format!("https://localhost:{}/fhir/Appointment", app.port))
        .header("Content-Type", "application/fhir+json")
        .body(example_appointment().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(booked.status(), 201);
    assert_eq!(json_body(booked).await["status"], "booked");
    assert_eq!(sandbox.bookings().len(), 1);
}

#[tokio::test]
async fn plain_http_to_the_tls_port_gets_no_fhir_answer() {
    let sandbox = start_sandbox();
    let app = spawn_tls(&sandbox.token_url());

    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/fhir/metadata", app.port))
        .send()
        .await;

    match plain {
        Err(_) => {}
        Ok(response) => {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            panic!("plain HTTP was answered: {status} {text}");
        }
    }
    // An untrusting client refuses the self-signed certificate.
    let untrusting = reqwest::Client::new()
        .get(format!("https://localhost:{}/fhir/metadata", app.port))
        .send()
        .await;
    assert!(untrusting.is_err());
}

#[test]
fn serve_refuses_to_start_with_a_tls_file_it_cannot_use_naming_file_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{}/mappings/example.toml", env!("CARGO_MANIFEST_DIR")),
        dir.path().join("mapping.toml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("key.pem"), "hunter2\n").unwrap();
    let config = dir.path().join("proxy.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:0\"\n[server.tls]\ncert_file = \"absent.pem\"\n\
         key_file = \"key.pem\"\n[salesforce]\n\
         token_url = \"https://x.my.salesforce.com/services/oauth2/token\"\nclient_id = \"abc\"\n\
         [mapping]\nfile = \"mapping.toml\"\n[auth]\ndisabled = true\n",
    )
    .unwrap();

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fhir-salesforce-proxy"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("FSP_SALESFORCE__CLIENT_SECRET", "s")
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("server.tls"), "{stderr}");
    assert!(stderr.contains("absent.pem: cannot read"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
