//! Graceful shutdown of the real binary: on SIGTERM it stops accepting connections, lets a
//! request in flight finish with its answer, and exits 0.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use fhir_salesforce_proxy::sandbox::Fault;

use crate::helpers::*;
use crate::reload::{Served, free_port, wait_for};

const DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn sigterm_drains_a_booking_in_flight_refuses_new_connections_and_exits_0() {
    // Arrange: the real binary, a booking held in the sandbox.
    let sandbox = start_sandbox();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{}/mappings/example.toml", env!("CARGO_MANIFEST_DIR")),
        dir.path().join("mapping.toml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("secret.txt"),
        fhir_salesforce_proxy::sandbox::DEFAULT_CLIENT_SECRET,
    )
    .unwrap();
    let config = dir.path().join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nshutdown_timeout_secs = 25\n\
             [salesforce]\ntoken_url = \"{}\"\nclient_id = \"{}\"\n\
             client_secret_file = \"secret.txt\"\n[mapping]\nfile = \"mapping.toml\"\n\
             [auth]\ndisabled = true\n",
            sandbox.token_url(),
            fhir_salesforce_proxy::sandbox::DEFAULT_CLIENT_ID
        ),
    )
    .unwrap();
    let mut served = Served::start(&config);
    sandbox.set_fault(Fault::Hold);
    let held = tokio::spawn(async move {
        let client = reqwest::Client::new();
        let response = client
            .post(format!("http://127.0.0.1:{port}/fhir/Appointment"))
            .header("Content-Type", "application/fhir+json")
            .body(numbered_appointment(1).to_string())
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, json_body(response).await)
    });
    tokio::time::timeout(DEADLINE, sandbox.wait_until_held(1))
        .await
        .expect("the booking reaches the sandbox");

    // Act
    served.signal("TERM");

    // Assert: the drain starts and new connections are refused (polled: the listener closes
    // just after the log line, and nothing signals it).
    let log = wait_for(&served.lines, "draining requests in flight");
    assert!(log.contains("SIGTERM"), "{log}");
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            started.elapsed() < DEADLINE,
            "new connections are still accepted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served.child.try_wait().unwrap().is_none(), "exited early");

    sandbox.release_held();
    let (status, body) = held.await.unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "booked", "{body}");
    assert_eq!(sandbox.bookings().len(), 1);

    wait_for(&served.lines, "drain finished");
    let exit = served.wait_for_exit();
    assert_eq!(exit.code(), Some(0));
}
