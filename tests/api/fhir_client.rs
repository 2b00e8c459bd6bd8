//! A real FHIR client library (fhir-kit-client, from npm, under `tests/clients/fhir-kit`) creating,
//! reading, searching with paging and updating through the proxy, against the sandbox.
//!
//! It needs Node.js and `npm ci --prefix tests/clients/fhir-kit` (which `.ci/run` does). Without
//! them the test says so loudly and does nothing; with `FSP_TEST_REQUIRE_FHIR_CLIENT` set (CI
//! sets it) a missing client is a failure.

use std::path::PathBuf;

use serde_json::Value;

use crate::helpers::*;
use crate::reads::spawn_reading;

fn client_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/fhir-kit")
}

/// Whether the client can run here; says why not.
fn client_available() -> bool {
    let installed = client_dir().join("node_modules/fhir-kit-client").is_dir();
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if installed && node {
        return true;
    }
    let why = if node {
        "fhir-kit-client is not installed (npm ci --prefix tests/clients/fhir-kit)"
    } else {
        "Node.js is not installed"
    };
    if std::env::var_os("FSP_TEST_REQUIRE_FHIR_CLIENT").is_some() {
        panic!("FSP_TEST_REQUIRE_FHIR_CLIENT is set but {why}");
    }
    eprintln!("\n*** SKIPPED: the fhir-kit-client test cannot run: {why} ***\n");
    false
}

#[tokio::test]
async fn fhir_kit_client_books_reads_searches_pages_and_updates() {
    if !client_available() {
        return;
    }
    // Batches of two rows: the client's pages of two cross Salesforce batches.
    let (app, sandbox) = spawn_reading(2);
    let appointment = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(appointment.path(), example_appointment().to_string()).unwrap();
    // Off the test's runtime thread, which serves the proxy meanwhile.
    let (base, file) = (
        format!("{}/fhir", app.address),
        appointment.path().to_owned(),
    );
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(client_dir().join("read-and-search.mjs"))
            .arg(base)
            .arg(file)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the client failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();
    let created: Vec<String> = serde_json::from_value(seen["created"].clone()).unwrap();
    assert_eq!(created.len(), 3);
    assert_eq!(sandbox.bookings().len(), 3);
    assert_eq!(seen["read"]["id"], created[0].as_str());
    assert_eq!(seen["read"]["status"], "booked");
    assert_eq!(seen["read"]["start"], "2025-09-01T09:00:00.000Z");
    assert!(
        seen["read"]["versionId"]
            .as_str()
            .is_some_and(|v| v.len() == 16)
    );
    assert_eq!(
        seen["first"]["ids"],
        serde_json::json!([created[0], created[1]])
    );
    assert_eq!(seen["first"]["total"], 3);
    assert_eq!(seen["first"]["next"], true);
    assert_eq!(seen["second"]["ids"], serde_json::json!([created[2]]));
    assert_eq!(seen["second"]["next"], false);
    assert_eq!(seen["posted"], serde_json::json!([created[2]]));
    assert_eq!(seen["stale"], 412);
    assert_eq!(seen["updated"]["id"], created[0].as_str());
    assert_eq!(seen["updated"]["start"], "2025-09-01T10:00:00Z");
    assert_eq!(
        sandbox.appointment(&created[0]).unwrap().request["startDate"],
        "2025-09-01T10:00:00.000Z"
    );
    assert_eq!(seen["cancelled"]["id"], created[1].as_str());
    assert_eq!(seen["cancelled"]["status"], "cancelled");
    assert_eq!(seen["cancelled"]["reread"], "cancelled");
    assert_eq!(sandbox.cancellations(), vec![created[1].clone()]);
}
