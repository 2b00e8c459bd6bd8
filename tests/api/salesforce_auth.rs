//! Authenticating to Salesforce with the OAuth 2.0 JWT bearer flow, over HTTP: the proxy started on
//! port 0 against the sandbox (or wiremock) on 127.0.0.1, with RSA keys generated at test time.
//! A booking works; every refusal is a 502 OperationOutcome naming the setting to check and
//! holding neither the assertion nor the key; a failed token request is not repeated within the
//! back-off; and with refresh ahead a new token arrives before the old one expires.

use std::net::TcpListener;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fhir_salesforce_proxy::config::{JwtBearerSettings, SalesforceAuth, SalesforceSettings};
use fhir_salesforce_proxy::salesforce::jwt::{JWT_BEARER_GRANT, PrivateKey};
use fhir_salesforce_proxy::sandbox::{
    DEFAULT_CLIENT_ID, Sandbox, SandboxJwtBearer, SandboxSettings,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rsa::RsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use secrecy::SecretSlice;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

const USER: &str = "integration@example.com";
const LOGIN: &str = "https://login.salesforce.com";
const TOKEN_PATH: &str = "/services/oauth2/token";
const BOOK_PATH: &str = "/services/data/v65.0/connect/health/appointment-management/appointment";

/// An RSA key pair as PEM (private PKCS#8, public SPKI).
struct Keys {
    private_pem: String,
    public_pem: String,
}

fn generate() -> Keys {
    let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("RSA keygen");
    Keys {
        private_pem: key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
        public_pem: key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    }
}

/// The key whose "certificate" the sandbox's connected app holds.
fn trusted() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(generate)
}

/// A key the org has never seen.
fn stranger() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(generate)
}

/// A sandbox whose connected app trusts [`trusted`] for [`USER`] at [`LOGIN`].
fn jwt_sandbox(token_lifetime: Duration) -> Sandbox {
    Sandbox::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        SandboxSettings {
            token_lifetime,
            jwt_bearer: Some(SandboxJwtBearer::new(&trusted().public_pem, USER)),
            ..SandboxSettings::default()
        },
    )
    .unwrap()
}

/// Proxy settings for the JWT bearer flow at `token_url`.
fn jwt_settings(
    token_url: &str,
    keys: &Keys,
    username: &str,
    audience: &str,
) -> SalesforceSettings {
    let mut s = salesforce_settings(token_url);
    let pem = SecretSlice::from(keys.private_pem.as_bytes().to_vec());
    s.auth = SalesforceAuth::JwtBearer(JwtBearerSettings {
        username: username.to_owned(),
        audience: audience.to_owned(),
        private_key: PrivateKey::from_pem(&pem, "test key").unwrap(),
    });
    s
}

/// Asserts that `text` holds nothing of a JWT or of either test key.
fn assert_no_credentials(text: &str) {
    // Every JWT starts with the Base64 of `{"`.
    assert!(
        !text.contains("eyJ"),
        "an assertion or token leaked: {text}"
    );
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    for keys in [trusted(), stranger()] {
        for line in keys.private_pem.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!text.contains(line), "key material leaked: {text}");
        }
    }
}

/// The diagnostics of a 502 OperationOutcome (after checking that it is one).
async fn bad_gateway_diagnostics(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 502);
    let text = response.text().await.unwrap();
    assert_no_credentials(&text);
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_outcome(&body, "exception", None);
    body["issue"][0]["diagnostics"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_booking_works_with_jwt_bearer_auth() {
    let sandbox = jwt_sandbox(Duration::from_secs(3600));
    let app = spawn_proxy(
        jwt_settings(&sandbox.token_url(), trusted(), USER, LOGIN),
        example_mapping(),
    );

    let first = app.post_json(&numbered_appointment(1)).await;
    assert_eq!(first.status(), 201);
    let body = json_body(first).await;
    assert_eq!(body["resourceType"], "Appointment");
    let second = app.post_json(&numbered_appointment(2)).await;
    assert_eq!(second.status(), 201);

    let bookings = sandbox.bookings();
    assert_eq!(bookings.len(), 2);
    assert_eq!(body["id"], json!(bookings[0].id), "{body}");
    assert_eq!(body["status"], "booked");
    assert_eq!(sandbox.token_requests(), 1, "one token for both bookings");
}

#[tokio::test]
async fn each_refusal_is_a_502_naming_the_setting_and_never_the_credentials() {
    let sandbox = jwt_sandbox(Duration::from_secs(3600));
    let url = sandbox.token_url();
    let wrong_client = {
        let mut s = jwt_settings(&url, trusted(), USER, LOGIN);
        s.client_id = "someone-elses-consumer-key".to_owned();
        s
    };
    let cases = [
        (
            "wrong key",
            jwt_settings(&url, stranger(), USER, LOGIN),
            "invalid_grant",
            "salesforce.private_key_file",
        ),
        (
            "wrong audience",
            jwt_settings(&url, trusted(), USER, "https://test.salesforce.com"),
            "invalid_grant",
            "salesforce.audience",
        ),
        (
            "unknown user",
            jwt_settings(&url, trusted(), "nobody@example.com", LOGIN),
            "invalid_grant",
            "salesforce.username",
        ),
        (
            "wrong consumer key",
            wrong_client,
            "invalid_client_id",
            "salesforce.client_id",
        ),
    ];
    for (case, settings, code, setting) in cases {
        let app = spawn_proxy(settings, example_mapping());
        let diagnostics =
            bad_gateway_diagnostics(app.post_json(&numbered_appointment(1)).await).await;
        assert!(diagnostics.contains(setting), "{case}: {diagnostics}");
        assert!(diagnostics.contains(code), "{case}: {diagnostics}");
    }
    assert!(sandbox.bookings().is_empty());
    assert_eq!(sandbox.token_requests(), 4);
}

#[tokio::test]
async fn within_the_back_off_requests_fail_fast_without_asking_again() {
    let sandbox = jwt_sandbox(Duration::from_secs(3600));
    let mut settings = jwt_settings(&sandbox.token_url(), stranger(), USER, LOGIN);
    settings.token_failure_backoff = Duration::from_secs(600);
    let app = spawn_proxy(settings, example_mapping());

    let first = bad_gateway_diagnostics(app.post_json(&numbered_appointment(1)).await).await;
    for n in 2..=6 {
        let again = bad_gateway_diagnostics(app.post_json(&numbered_appointment(n)).await).await;
        assert_eq!(again, first, "the same answer while the back-off lasts");
    }
    assert_eq!(
        sandbox.token_requests(),
        1,
        "one token request for six bookings"
    );
    // The proxy itself keeps serving.
    let metadata = app
        .client
        .get(format!("{}/fhir/metadata", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(metadata.status(), 200);
}

/// A wiremock org whose token endpoint refuses once ("user hasn't approved this consumer", as
/// before an admin pre-authorizes the user), then issues tokens; Book Appointment succeeds.
async fn org_that_approves_after_one_refusal() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant",
            "error_description": "user hasn't approved this consumer"
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "00Dxx0000001gPL!AR8AQJXg5oj8jXSgxJfA0lBog",
            "instance_url": server.uri(),
            "id": format!("{}/id/00Dxx0000001gPLEAY/005xx000001SwiUAAS", server.uri()),
            "token_type": "Bearer",
            "scope": "api"
        })))
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(BOOK_PATH))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": "08pxx0000004KhxxAE", "isSuccess": true, "status": "Scheduled", "error": []
        })))
        .mount(&server)
        .await;
    server
}

async fn token_calls(server: &MockServer) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == TOKEN_PATH)
        .collect()
}

#[tokio::test]
async fn after_the_back_off_the_next_request_asks_again_and_books() {
    let server = org_that_approves_after_one_refusal().await;
    let mut settings = jwt_settings(
        &format!("{}{TOKEN_PATH}", server.uri()),
        trusted(),
        USER,
        LOGIN,
    );
    settings.token_failure_backoff = Duration::from_millis(300);
    let app = spawn_proxy(settings, example_mapping());

    let refused = bad_gateway_diagnostics(app.post_json(&numbered_appointment(1)).await).await;
    assert!(refused.contains("salesforce.username"), "{refused}");
    // Requests fail fast until the back-off is over; the first one after it gets a token.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 2;
    loop {
        let response = app.post_json(&numbered_appointment(n)).await;
        if response.status() == 201 {
            assert_eq!(json_body(response).await["resourceType"], "Appointment");
            break;
        }
        assert_eq!(bad_gateway_diagnostics(response).await, refused);
        assert_eq!(token_calls(&server).await.len(), 1, "asked again too early");
        assert!(Instant::now() < deadline, "never asked again");
        n += 1;
        // Polling interval; the signal is the answer above.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let calls = token_calls(&server).await;
    assert_eq!(calls.len(), 2);

    // What went over the wire: the JWT bearer grant with a valid assertion and nothing else.
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&calls[1].body)
        .into_owned()
        .collect();
    let names: Vec<&str> = form.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["grant_type", "assertion"],
        "no client secret, no client id"
    );
    assert_eq!(form[0].1, JWT_BEARER_GRANT);
    let header = jsonwebtoken::decode_header(&form[1].1).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[LOGIN]);
    validation.set_issuer(&[DEFAULT_CLIENT_ID]);
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<Value>(
        &form[1].1,
        &DecodingKey::from_rsa_pem(trusted().public_pem.as_bytes()).unwrap(),
        &validation,
    )
    .expect("signed with the configured key, iss and aud as configured, not expired")
    .claims;
    assert_eq!(claims["sub"], USER);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exp = claims["exp"].as_u64().unwrap();
    assert!(
        exp > now && exp <= now + 180,
        "exp {exp} within 3 minutes of {now}"
    );
}

#[tokio::test]
async fn refresh_ahead_fetches_the_next_token_before_expiry_without_a_request() {
    // The sandbox accepts a token for exactly as long as the proxy is told it lives.
    let lifetime = Duration::from_secs(2);
    let sandbox = jwt_sandbox(lifetime);
    let mut settings = jwt_settings(&sandbox.token_url(), trusted(), USER, LOGIN);
    settings.token_lifetime = lifetime;
    settings.token_refresh_ahead = true;
    let app = spawn_proxy(settings, example_mapping());

    assert_eq!(app.post_json(&numbered_appointment(1)).await.status(), 201);
    let obtained = Instant::now();
    assert_eq!(sandbox.token_requests(), 1);

    // No request is sent to the proxy now: only its background refresh can ask for a token.
    let deadline = obtained + Duration::from_secs(10);
    while sandbox.token_requests() < 2 {
        assert!(Instant::now() < deadline, "no refresh ahead");
        // Polling interval; the signal is the sandbox's count.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        obtained.elapsed() < lifetime,
        "the refresh came only after the first token expired"
    );

    // The next booking finds a live token: no token request, no 401 and retry.
    assert_eq!(app.post_json(&numbered_appointment(2)).await.status(), 201);
    assert_eq!(sandbox.token_requests(), 2);
    assert_eq!(sandbox.bookings().len(), 2);
}
