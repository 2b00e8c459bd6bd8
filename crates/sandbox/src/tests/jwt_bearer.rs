//! The JWT bearer grant (`salesforce-api.md` §3.2) over HTTP: a valid assertion gets a token that
//! books; each broken claim gets Salesforce's documented error; keys are generated at test time.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};

use super::*;
use crate::oauth::JWT_BEARER_GRANT;
use test_keys::KeyPair;

const USER: &str = "integration@example.com";
const AUDIENCE: &str = "https://test.salesforce.com";

fn jwt_sandbox(public_key_pem: &str) -> Sandbox {
    start_with(SandboxSettings {
        jwt_bearer: Some(SandboxJwtBearer {
            public_key_pem: public_key_pem.to_owned(),
            username: USER.to_owned(),
            audience: AUDIENCE.to_owned(),
        }),
        ..SandboxSettings::default()
    })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims that the sandbox accepts; tests break one at a time.
fn good_claims() -> Value {
    json!({"iss": DEFAULT_CLIENT_ID, "sub": USER, "aud": AUDIENCE, "exp": now_secs() + 120})
}

fn sign_with(pair: &KeyPair, alg: Algorithm, claims: &Value) -> String {
    let key = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(b"not an RSA key"),
        _ => EncodingKey::from_rsa_pem(pair.private_pem.as_bytes()).unwrap(),
    };
    jsonwebtoken::encode(&Header::new(alg), claims, &key).unwrap()
}

fn sign(claims: &Value) -> String {
    sign_with(test_keys::trusted(), Algorithm::RS256, claims)
}

async fn grant(sandbox: &Sandbox, assertion: &str) -> (StatusCode, Value) {
    post_form(
        sandbox,
        &[("grant_type", JWT_BEARER_GRANT), ("assertion", assertion)],
    )
    .await
}

#[tokio::test]
async fn a_valid_assertion_gets_a_token_that_books() {
    let sandbox = jwt_sandbox(&test_keys::trusted().public_pem);
    let (status, body) = grant(&sandbox, &sign(&good_claims())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["instance_url"], sandbox.base_url());
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("expires_in").is_none(), "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert!(token.starts_with("00DSANDBOX00000000!"), "{token}");
    let (status, answer) = book(&sandbox, token, &sample()).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    // An audience sent as a one-element array (RFC 7519 allows it) is read the same way.
    let mut claims = good_claims();
    claims["aud"] = json!([AUDIENCE]);
    let (status, body) = grant(&sandbox, &sign(&claims)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(sandbox.token_requests(), 2);
    sandbox.stop().await;
}

#[tokio::test]
async fn each_broken_assertion_gets_salesforces_error() {
    let sandbox = jwt_sandbox(&test_keys::trusted().public_pem);
    let with = |name: &str, value: Value| {
        let mut claims = good_claims();
        claims[name] = value;
        sign(&claims)
    };
    let without = |name: &str| {
        let mut claims = good_claims();
        claims.as_object_mut().unwrap().remove(name);
        sign(&claims)
    };
    let grant_error = |d: &str| json!({"error": "invalid_grant", "error_description": d});
    let cases: Vec<(&str, String, Value)> = vec![
        (
            "unknown consumer key",
            with("iss", json!("someone-else")),
            json!({"error": "invalid_client_id", "error_description": "client identifier invalid"}),
        ),
        (
            "no iss",
            without("iss"),
            json!({"error": "invalid_client_id", "error_description": "client identifier invalid"}),
        ),
        (
            "production audience on a test org",
            with("aud", json!("https://login.salesforce.com")),
            grant_error("audience is invalid"),
        ),
        ("no aud", without("aud"), grant_error("audience is invalid")),
        (
            "signed by another key",
            sign_with(test_keys::stranger(), Algorithm::RS256, &good_claims()),
            grant_error("invalid assertion"),
        ),
        (
            "HS256 instead of RS256",
            sign_with(test_keys::trusted(), Algorithm::HS256, &good_claims()),
            grant_error("invalid assertion"),
        ),
        (
            "not a JWT",
            "not.a.jwt".to_owned(),
            grant_error("invalid assertion"),
        ),
        (
            "expired a second ago",
            with("exp", json!(now_secs() - 1)),
            grant_error("expired authorization code"),
        ),
        (
            "exp more than 3 minutes ahead",
            with("exp", json!(now_secs() + 240)),
            grant_error("expired authorization code"),
        ),
        (
            "no exp",
            without("exp"),
            grant_error("expired authorization code"),
        ),
        (
            "unknown user",
            with("sub", json!("someone@example.com")),
            grant_error("user hasn't approved this consumer"),
        ),
    ];
    let count = cases.len();
    for (case, assertion, expected) in cases {
        let (status, body) = grant(&sandbox, &assertion).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {body}");
        assert_eq!(body, expected, "{case}");
    }
    let (status, body) = post_form(&sandbox, &[("grant_type", JWT_BEARER_GRANT)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": "invalid_request", "error_description": "missing required parameter: assertion"})
    );
    assert_eq!(sandbox.token_requests(), count + 1, "refusals count too");
    sandbox.stop().await;
}

#[tokio::test]
async fn the_signature_is_checked_before_the_user() {
    // A stranger's key with an unknown user must not learn that the user is unknown.
    let sandbox = jwt_sandbox(&test_keys::trusted().public_pem);
    let mut claims = good_claims();
    claims["sub"] = json!("someone@example.com");
    let (_, body) = grant(
        &sandbox,
        &sign_with(test_keys::stranger(), Algorithm::RS256, &claims),
    )
    .await;
    assert_eq!(body["error_description"], "invalid assertion");
    sandbox.stop().await;
}

#[tokio::test]
async fn a_pkcs1_public_key_works_too() {
    let sandbox = jwt_sandbox(&test_keys::trusted_public_pkcs1());
    let (status, body) = grant(&sandbox, &sign(&good_claims())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    sandbox.stop().await;
}

#[tokio::test]
async fn an_unusable_public_key_refuses_to_start() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let e = Sandbox::start(
        listener,
        SandboxSettings {
            jwt_bearer: Some(SandboxJwtBearer::new("not a key", USER)),
            ..SandboxSettings::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("public_key_pem"), "{e}");
}

#[test]
fn jwt_bearer_settings_default_to_the_production_audience() {
    let s = SandboxJwtBearer::new("pem", USER);
    assert_eq!(s.audience, "https://login.salesforce.com");
    assert_eq!(s.username, USER);
    assert!(SandboxSettings::default().jwt_bearer.is_none());
}

/// RSA key pairs made at test time, never checked in.
mod test_keys {
    use std::sync::OnceLock;

    use rsa::RsaPrivateKey;
    use rsa::pkcs1::EncodeRsaPublicKey as _;
    use rsa::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};

    /// A private key (PKCS#8 PEM) and its public key (SPKI PEM).
    pub(super) struct KeyPair {
        pub(super) private_pem: String,
        pub(super) public_pem: String,
        key: RsaPrivateKey,
    }

    fn generate() -> KeyPair {
        let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("RSA keygen");
        KeyPair {
            private_pem: key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
            public_pem: key
                .to_public_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap(),
            key,
        }
    }

    /// The key the sandbox trusts.
    pub(super) fn trusted() -> &'static KeyPair {
        static KEY: OnceLock<KeyPair> = OnceLock::new();
        KEY.get_or_init(generate)
    }

    /// A key nobody trusts.
    pub(super) fn stranger() -> &'static KeyPair {
        static KEY: OnceLock<KeyPair> = OnceLock::new();
        KEY.get_or_init(generate)
    }

    /// The trusted key's public half in PKCS#1 form (`BEGIN RSA PUBLIC KEY`).
    pub(super) fn trusted_public_pkcs1() -> String {
        trusted()
            .key
            .to_public_key()
            .to_pkcs1_pem(LineEnding::LF)
            .unwrap()
    }
}
