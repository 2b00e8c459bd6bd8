//! What the proxy writes down, read from the real binary's standard error: JSON lines with the
//! request id on every line of a request, one audit line per interaction (and per Bundle entry),
//! and no patient data, token or secret anywhere, through success and every error path.

use std::net::TcpListener;
use std::process::Command;
use std::sync::LazyLock;

use fhir_salesforce_proxy::sandbox::{ExternalIdRecords, Fault, Sandbox, SandboxSettings};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::auth::{PUBLIC_URL, TestKey, assertion_claims, ec_key, jwks, sign};
use crate::helpers::*;
use crate::process::{self, BIN, Proxy};

const API_KEY: &str = "key-4b1d9e0c7a2f4e8b9d3c";
const SALESFORCE_SECRET: &str = "sandbox-secret";
/// Text that stands for patient data, tokens and secrets; none of it may reach a log line.
const MARKERS: [&str; 8] = [
    "PHIMARK",
    "pat-1001",
    "Test Patient",
    "1901-02-03",
    "555-0199",
    "A-PHI-77",
    API_KEY,
    SALESFORCE_SECRET,
];

/// The key of the SMART client `smart-1`.
static SMART_KEY: LazyLock<TestKey> = LazyLock::new(|| ec_key("smart-1"));

fn repo(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// Starts `serve` with JSON logs at trace level against `sandbox`, API-key auth on, and waits
/// for "proxy started" while draining stderr on a thread for the whole run.
async fn start(sandbox: &Sandbox, dir: &std::path::Path) -> Proxy {
    start_with(sandbox, dir, &[], "trace").await
}

/// [`start`] with more arguments before `serve` and another `RUST_LOG`.
async fn start_with(
    sandbox: &Sandbox,
    dir: &std::path::Path,
    global_args: &[&str],
    rust_log: &str,
) -> Proxy {
    let mapping = std::fs::read_to_string(repo("mappings/example.toml")).unwrap()
        + "\n[[ids.lookup]]\nidentifier_system = \"http://hospital.example.org/mrn\"\n\
           object = \"Account\"\nexternal_id_field = \"EHR_Patient_Id__c\"\n";
    std::fs::write(dir.join("mapping.toml"), mapping).unwrap();
    let port = process::free_port();
    let key_hash = hex::encode(Sha256::digest(API_KEY.as_bytes()));
    std::fs::write(dir.join("smart.jwks"), jwks(&[&SMART_KEY]).to_string()).unwrap();
    std::fs::write(
        dir.join("proxy.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\
             [salesforce]\ntoken_url = \"{}\"\nclient_id = \"sandbox-client\"\n\
             [mapping]\nfile = \"mapping.toml\"\n\
             [store]\npath = \"appointments.db\"\n\
             [auth]\npublic_url = \"{PUBLIC_URL}\"\n[[auth.clients]]\nid = \"engine-1\"\n\
             scopes = [\"system/Appointment.*\", \"system/Slot.read\"]\n\
             api_key_sha256 = \"{key_hash}\"\nadmin = true\n\
             [[auth.clients]]\nid = \"smart-1\"\nscopes = [\"system/Appointment.*\"]\n\
             jwks_file = \"smart.jwks\"\n",
            sandbox.token_url()
        ),
    )
    .unwrap();
    let mut args = vec!["--log-format", "json"];
    args.extend_from_slice(global_args);
    process::serve(
        &dir.join("proxy.toml"),
        port,
        &args,
        &[
            ("FSP_SALESFORCE__CLIENT_SECRET", SALESFORCE_SECRET),
            ("RUST_LOG", rust_log),
        ],
    )
    .await
}

/// An appointment full of patient-data markers that books (its patient is in the crosswalk).
fn phi_appointment(identifier: &str) -> Value {
    let mut a = example_appointment();
    a["identifier"][0]["value"] = json!(identifier);
    a["comment"] = json!("PHIMARK-COMMENT call +1-555-0199");
    a["description"] = json!("PHIMARK-DESCRIPTION");
    a["patientInstruction"] = json!("PHIMARK-INSTRUCTION born 1901-02-03");
    a["participant"][0]["actor"]["display"] = json!("Test Patient PHIMARK-NAME");
    a
}

struct Sent {
    status: u16,
    request_id: String,
}

async fn send(
    client: &reqwest::Client,
    request: reqwest::RequestBuilder,
    authenticated: bool,
) -> Sent {
    let request = if authenticated {
        request.header("X-Api-Key", API_KEY)
    } else {
        request
    };
    let response = client
        .execute(request.build().unwrap())
        .await
        .expect("the proxy answers");
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let status = response.status().as_u16();
    let _ = response.bytes().await;
    Sent { status, request_id }
}

#[tokio::test]
async fn logs_carry_request_ids_and_audit_lines_and_never_patient_data_tokens_or_secrets() {
    // Arrange
    let sandbox = Sandbox::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        SandboxSettings {
            external_ids: vec![ExternalIdRecords::new(
                "Account",
                "EHR_Patient_Id__c",
                "PHIMARK-MRN-FOUND",
                &["001xx000012udqQxxQ"],
            )],
            ..SandboxSettings::default()
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let proxy = start(&sandbox, dir.path()).await;
    let base = format!("http://127.0.0.1:{}/fhir", proxy.port);
    let c = reqwest::Client::new();
    let fhir_json = "application/fhir+json";
    let post = |path: &str, body: String, content_type: &str| {
        c.post(format!("{base}{path}"))
            .header("Content-Type", content_type)
            .body(body)
    };
    let mut unknown = phi_appointment("A-PHI-77-2");
    unknown["participant"][0]["actor"]["reference"] = json!("Patient/PHIMARK-REF-UNKNOWN");
    let mut looked_up = phi_appointment("A-PHI-77-3");
    looked_up["participant"][0]["actor"] = json!({
        "type": "Patient",
        "identifier": {"system": "http://hospital.example.org/mrn", "value": "PHIMARK-MRN-404"},
        "display": "PHIMARK-NAME-2"
    });
    let mut rule_failure = phi_appointment("A-PHI-77-4");
    rule_failure["end"] = json!("2025-07-21T13:00:00-04:00");
    let wrong_type = json!({
        "resourceType": "Patient",
        "name": [{"family": "PHIMARK-FAMILY", "given": ["PHIMARK-GIVEN"]}],
        "birthDate": "1901-02-03",
        "telecom": [{"system": "phone", "value": "+1-555-0199"}]
    });
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": phi_appointment("A-PHI-77-5"),
             "request": {"method": "POST", "url": "Appointment"}},
            {"resource": unknown.clone(),
             "request": {"method": "POST", "url": "Appointment"}}
        ]
    });

    // Act: success first, then every error path in reach, throttling last (it holds the org).
    let booked = send(
        &c,
        post(
            "/Appointment",
            phi_appointment("A-PHI-77-1").to_string(),
            fhir_json,
        ),
        true,
    )
    .await;
    let mut failures = Vec::new();
    for (body, content_type) in [
        (
            "{\"resourceType\":\"Appointment\",\"comment\":\"PHIMARK-JSON".to_owned(),
            fhir_json,
        ),
        (
            "<Appointment xmlns=\"http://hl7.org/fhir\"><comment value=\"PHIMARK-XML\"/><status"
                .to_owned(),
            "application/fhir+xml",
        ),
        (wrong_type.to_string(), fhir_json),
        (rule_failure.to_string(), fhir_json),
        (unknown.to_string(), fhir_json),
        (looked_up.to_string(), fhir_json),
    ] {
        failures.push(send(&c, post("/Appointment", body, content_type), true).await);
    }
    let validated = send(
        &c,
        post("/Appointment/$validate", unknown.to_string(), fhir_json),
        true,
    )
    .await;
    let batch = send(&c, post("", bundle.to_string(), fhir_json), true).await;
    let slots = send(
        &c,
        c.get(format!(
            "{base}/Slot?schedule.actor=Practitioner/PHIMARK-PRACT&start=ge2025-07-21\
             &patient=Patient/PHIMARK-QUERY&identifier=PHIMARK-QID"
        )),
        true,
    )
    .await;
    let booked_id = sandbox.bookings()[0].id.clone();
    let read = send(&c, c.get(format!("{base}/Appointment/{booked_id}")), true).await;
    let searched = send(
        &c,
        c.get(format!(
            "{base}/Appointment?patient=Patient/PHIMARK-SEARCH,Patient/pat-1001\
             &identifier=http://hospital.example.org|PHIMARK-SID,http://hospital.example.org/fhir/appointment-id|A-PHI-77-1"
        )),
        true,
    )
    .await;
    let bogus_token = send(
        &c,
        post(
            "/Appointment",
            phi_appointment("A-PHI-77-6").to_string(),
            fhir_json,
        )
        .header("Authorization", "Bearer PHIMARK-TOKEN.eyJhbGciOi.PHIMARK"),
        false,
    )
    .await;
    let bogus_key = send(
        &c,
        post(
            "/Appointment",
            phi_appointment("A-PHI-77-7").to_string(),
            fhir_json,
        )
        .header("X-Api-Key", "PHIMARK-KEY-0000"),
        false,
    )
    .await;
    sandbox.set_fault(Fault::ServerError {
        error_code: "UNKNOWN_EXCEPTION".to_owned(),
        message: "PHIMARK-SALESFORCE-MESSAGE".to_owned(),
    });
    let server_error = send(
        &c,
        post(
            "/Appointment",
            phi_appointment("A-PHI-77-8").to_string(),
            fhir_json,
        ),
        true,
    )
    .await;
    sandbox.set_fault(Fault::row_locked());
    let row_locked = send(
        &c,
        post(
            "/Appointment",
            phi_appointment("A-PHI-77-9").to_string(),
            fhir_json,
        ),
        true,
    )
    .await;
    sandbox.set_fault(Fault::Throttle);
    let throttled = send(
        &c,
        post(
            "/Appointment",
            phi_appointment("A-PHI-77-10").to_string(),
            fhir_json,
        ),
        true,
    )
    .await;
    let lines = proxy.finish();

    // Assert: the paths were the ones meant.
    assert_eq!(booked.status, 201);
    let statuses: Vec<u16> = failures.iter().map(|f| f.status).collect();
    assert_eq!(statuses, [400, 400, 400, 422, 422, 422], "{statuses:?}");
    assert_eq!(
        validated.status, 200,
        "$validate answers its findings with 200"
    );
    assert_eq!(batch.status, 200);
    assert_eq!(slots.status, 400);
    assert_eq!(read.status, 200);
    assert_eq!(searched.status, 200);
    assert_eq!(bogus_token.status, 401);
    assert_eq!(bogus_key.status, 401);
    assert_eq!(server_error.status, 502);
    assert_eq!(row_locked.status, 503);
    assert_eq!(throttled.status, 503);

    // No marker anywhere, at trace level.
    let all = lines.join("\n");
    for marker in MARKERS {
        let found: Vec<&String> = lines.iter().filter(|l| l.contains(marker)).collect();
        assert!(found.is_empty(), "{marker} was logged: {found:#?}");
    }
    assert!(all.contains("proxy started"));
    // The filter really was `trace` (dependencies' trace lines included).
    assert!(
        lines
            .iter()
            .filter(|l| l.contains("\"level\":\"TRACE\""))
            .count()
            > 10,
        "{all}"
    );

    // Every line the proxy wrote while serving a request carries that request's id.
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let root_id = |line: &Value| -> Option<String> {
        line["spans"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == "http_request")?
            .get("request_id")?
            .as_str()
            .map(str::to_owned)
    };
    let sent: Vec<&Sent> = [
        &booked,
        &validated,
        &batch,
        &slots,
        &bogus_token,
        &bogus_key,
        &server_error,
        &row_locked,
        &throttled,
    ]
    .into_iter()
    .chain(failures.iter())
    .collect();
    for s in &sent {
        let own: Vec<&Value> = parsed
            .iter()
            .filter(|l| root_id(l).as_deref() == Some(s.request_id.as_str()))
            .collect();
        assert!(
            own.iter().any(|l| l["message"] == "request finished"),
            "no lines for request {} ({})",
            s.request_id,
            s.status
        );
    }
    for line in &parsed {
        let target = line["target"].as_str().unwrap_or_default();
        if line["spans"].is_array() && target.starts_with("fhir_salesforce_proxy") {
            assert!(
                root_id(line).is_some_and(|id| !id.is_empty())
                    || line["spans"][0]["name"] == "salesforce.token_refresh_ahead",
                "a request-scoped line without the request id: {line}"
            );
        }
    }

    // One audit line per interaction, one more per Bundle entry, with the ids and outcome.
    let audit: Vec<&Value> = parsed.iter().filter(|l| l["target"] == "audit").collect();
    let audit_of = |id: &str| -> Vec<&Value> {
        audit
            .iter()
            .copied()
            .filter(|l| l["request_id"] == id)
            .collect()
    };
    let booking = audit_of(&booked.request_id);
    assert_eq!(booking.len(), 1, "{booking:#?}");
    let line = booking[0];
    assert_eq!(line["client_id"], "engine-1");
    assert_eq!(line["tenant"], "default");
    assert_eq!(line["interaction"], "create");
    assert_eq!(line["http_status"], 201);
    assert_eq!(line["outcome"], "success");
    let booked_id = sandbox.bookings()[0].id.clone();
    assert_eq!(line["fhir_ids"], booked_id.as_str());
    assert_eq!(line["salesforce_ids"], booked_id.as_str());
    assert!(line["duration_ms"].is_u64(), "{line}");
    assert!(line["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    for failure in &failures {
        let lines = audit_of(&failure.request_id);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["outcome"], "failure");
        assert_eq!(lines[0]["http_status"], failure.status);
        assert_eq!(lines[0]["client_id"], "engine-1");
    }
    let batch_lines = audit_of(&batch.request_id);
    assert_eq!(batch_lines.len(), 3, "{batch_lines:#?}");
    assert_eq!(batch_lines[0]["interaction"], "bundle");
    assert_eq!(batch_lines[1]["bundle_entry"], 0);
    assert_eq!(batch_lines[1]["interaction"], "create");
    assert_eq!(batch_lines[1]["http_status"], 201);
    assert_eq!(batch_lines[2]["bundle_entry"], 1);
    assert_eq!(batch_lines[2]["outcome"], "failure");
    let refused = audit_of(&bogus_token.request_id);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["client_id"], "-");
    assert_eq!(refused[0]["http_status"], 401);
    assert_eq!(
        audit_of(&validated.request_id)[0]["interaction"],
        "validate"
    );
    assert_eq!(audit_of(&slots.request_id)[0]["interaction"], "search-slot");
    let read_line = audit_of(&read.request_id);
    assert_eq!(read_line[0]["interaction"], "read");
    assert_eq!(read_line[0]["salesforce_ids"], booked_id.as_str());
    assert_eq!(
        audit_of(&searched.request_id)[0]["interaction"],
        "search-type"
    );
}

#[tokio::test]
async fn an_audit_file_gets_the_audit_trail_whatever_the_log_level_and_stderr_does_not() {
    // `warn` for everything but the proxy's own start-up line would drop the audit trail's
    // `info` lines; `info` would put them on standard error too.
    for rust_log in ["warn,fhir_salesforce_proxy=info", "info"] {
        audit_file_holds_the_trail(rust_log).await;
    }
}

async fn audit_file_holds_the_trail(rust_log: &str) {
    // Arrange
    let sandbox = Sandbox::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        SandboxSettings::default(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let audit_file = dir.path().join("audit.jsonl");
    let proxy = start_with(
        &sandbox,
        dir.path(),
        &["--audit-file", audit_file.to_str().unwrap()],
        rust_log,
    )
    .await;
    let base = format!("http://127.0.0.1:{}/fhir", proxy.port);
    let c = reqwest::Client::new();
    let post = || {
        c.post(format!("{base}/Appointment"))
            .header("Content-Type", "application/fhir+json")
            .body(phi_appointment("A-PHI-77-1").to_string())
    };

    // Act: one booking; the file is rotated (renamed, then a reload, as logrotate would signal
    // with SIGHUP); a token request with a forged assertion; one call refused for want of a key.
    let booked = send(&c, post(), true).await;
    let rotated = dir.path().join("audit.jsonl.1");
    std::fs::rename(&audit_file, &rotated).unwrap();
    let root = format!("http://127.0.0.1:{}", proxy.port);
    let reload = send(&c, c.post(format!("{root}/admin/reload")), true).await;
    let token_request = |assertion: &str| {
        c.post(format!("{root}/auth/token")).form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("scope", "system/Appointment.c"),
        ])
    };
    let forged = send(&c, token_request("eyJhbGciOiJFUzM4NCJ9.e30.c2ln"), false).await;
    let assertion = sign(&SMART_KEY, "smart-1", &assertion_claims("smart-1"));
    let issued = send(&c, token_request(&assertion), false).await;
    let replayed = send(&c, token_request(&assertion), false).await;
    let refused = send(&c, post(), false).await;
    // A known client refused for its scope (its token grants Appointment.c, not Slot.s): the
    // refusal is attributed to it.
    let second = sign(&SMART_KEY, "smart-1", &assertion_claims("smart-1"));
    let token: Value = c
        .execute(token_request(&second).build().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = token["access_token"].as_str().unwrap();
    let denied = send(
        &c,
        c.get(format!("{base}/Slot?start=ge2025-09-20"))
            .bearer_auth(access),
        false,
    )
    .await;
    let stderr = proxy.finish();

    // Assert: each file holds its audit lines, as JSON, and nothing else.
    assert_eq!(
        (booked.status, reload.status, refused.status),
        (201, 200, 401),
        "{rust_log}"
    );
    assert_eq!(
        (forged.status, issued.status, replayed.status),
        (401, 200, 401)
    );
    let text =
        std::fs::read_to_string(&rotated).unwrap() + &std::fs::read_to_string(&audit_file).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 8, "{rust_log}: {text}");
    assert_eq!(denied.status, 403);
    let line = &lines[7];
    assert_eq!(line["message"], "FHIR interaction", "{line}");
    assert_eq!(line["interaction"], "search-slot", "{line}");
    assert_eq!(line["request_id"], denied.request_id.as_str(), "{line}");
    assert_eq!(line["http_status"], 403, "{line}");
    assert_eq!(
        line["client_id"], "smart-1",
        "a refusal names the client: {line}"
    );
    assert_eq!(
        std::fs::read_to_string(&rotated).unwrap().lines().count(),
        1
    );
    // Who changed what the proxy runs with, and who asked for access.
    // (A token request's client is named once its assertion's signature was good.)
    for (line, sent, event, status, outcome, client) in [
        (&lines[1], &reload, "reload", 200, "success", "engine-1"),
        (&lines[2], &forged, "token", 401, "failure", "-"),
        (&lines[3], &issued, "token", 200, "success", "smart-1"),
        (&lines[4], &replayed, "token", 401, "failure", "smart-1"),
    ] {
        assert_eq!(line["target"], "audit", "{line}");
        assert_eq!(line["message"], "security event", "{line}");
        assert_eq!(line["event"], event, "{line}");
        assert_eq!(line["request_id"], sent.request_id.as_str(), "{line}");
        assert_eq!(line["http_status"], status, "{line}");
        assert_eq!(line["outcome"], outcome, "{line}");
        assert_eq!(line["client_id"], client, "{line}");
    }
    for (line, sent, status, client) in [
        (&lines[0], &booked, 201, "engine-1"),
        (&lines[5], &refused, 401, "-"),
    ] {
        assert_eq!(line["target"], "audit", "{line}");
        assert_eq!(line["message"], "FHIR interaction", "{line}");
        assert_eq!(line["interaction"], "create", "{line}");
        assert_eq!(line["request_id"], sent.request_id.as_str(), "{line}");
        assert_eq!(line["http_status"], status, "{line}");
        assert_eq!(line["client_id"], client, "{line}");
    }
    let salesforce_id = sandbox.bookings()[0].id.clone();
    assert_eq!(lines[0]["salesforce_ids"], salesforce_id.as_str());
    for marker in MARKERS {
        assert!(!text.contains(marker), "{marker} in the audit file");
    }
    let signature = assertion.rsplit('.').next().unwrap();
    assert!(
        !text.contains(signature),
        "the client assertion in the audit file"
    );
    assert!(
        !stderr.iter().any(|l| l.contains(signature)),
        "the client assertion in the log"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&audit_file).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the audit file is readable by others: {mode:o}"
        );
    }
    // Standard error still has the diagnostic log but no audit line.
    assert!(
        stderr.iter().any(|l| l.contains("proxy started")),
        "{rust_log}"
    );
    assert!(
        !stderr.iter().any(|l| l.contains("\"target\":\"audit\"")),
        "{rust_log}: {stderr:?}"
    );
}

#[test]
fn an_audit_file_that_cannot_be_opened_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir").join("audit.jsonl");

    let output = Command::new(BIN)
        .args(["--audit-file", missing.to_str().unwrap(), "demo"])
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot open the audit file") && stderr.contains("no-such-dir"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "demo started anyway");
}
