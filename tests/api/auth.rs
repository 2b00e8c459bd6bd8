//! Inbound auth over HTTP: API keys, SMART Backend Services (assertion → token → FHIR call),
//! enterprise JWTs against a JWKS served by wiremock on 127.0.0.1, scopes and tenants per
//! interaction and per Bundle entry, the open endpoints, and auth switched off. Keys are
//! generated at test time.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use fhir_salesforce_proxy::auth::jwks::{KeySet, KeyUse};
use fhir_salesforce_proxy::auth::{
    Auth, AuthSettings, ClientSettings, IssuerSettings, JwksSource, Scopes,
};
use fhir_salesforce_proxy::sandbox::Sandbox;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::RsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

pub(crate) const PUBLIC_URL: &str = "https://proxy.example";
pub(crate) const TOKEN_AUD: &str = "https://proxy.example/auth/token";
const ENGINE_KEY: &str = "engine-0123456789abcdef0123456789abcdef";
const READER_KEY: &str = "reader-0123456789abcdef0123456789abcdef";
const NORTH_KEY: &str = "north-0123456789abcdef0123456789abcdef";
const BATCH_KEY: &str = "batch-0123456789abcdef0123456789abcdef";
const ADMIN_KEY: &str = "admin-0123456789abcdef0123456789abcdef";
const IDP: &str = "https://idp.test";
const IDP_AUDIENCE: &str = "fhir-salesforce-proxy";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A signing key and its public JWK.
pub(crate) struct TestKey {
    encoding: EncodingKey,
    algorithm: Algorithm,
    jwk: Value,
}

fn rsa_key(kid: &str) -> TestKey {
    use rsa::pkcs8::{EncodePrivateKey as _, LineEnding};
    // One RSA key for the whole binary: generating one takes a while.
    static KEY: LazyLock<RsaPrivateKey> =
        LazyLock::new(|| RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap());
    let pem = KEY.to_pkcs8_pem(LineEnding::LF).unwrap();
    TestKey {
        encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        algorithm: Algorithm::RS384,
        jwk: json!({
            "kty": "RSA", "kid": kid,
            "n": b64(&KEY.n().to_bytes_be()), "e": b64(&KEY.e().to_bytes_be()),
        }),
    }
}

pub(crate) fn ec_key(kid: &str) -> TestKey {
    use p384::pkcs8::{EncodePrivateKey as _, LineEnding};
    let secret = p384::SecretKey::random(&mut rsa::rand_core::OsRng);
    let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
    let point =
        p384::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
    TestKey {
        encoding: EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        algorithm: Algorithm::ES384,
        jwk: json!({
            "kty": "EC", "crv": "P-384", "kid": kid,
            "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()),
        }),
    }
}

pub(crate) fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
}

pub(crate) fn sign(key: &TestKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(key.algorithm);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

fn scopes(list: &[&str]) -> Scopes {
    Scopes::parse_strict(list.iter().copied()).unwrap()
}

fn smart_client(id: &str, key: &TestKey, scope_list: &[&str]) -> ClientSettings {
    ClientSettings {
        id: id.to_owned(),
        tenants: None,
        scopes: scopes(scope_list),
        jwks: Some(Arc::new(
            KeySet::parse(jwks(&[key]).to_string().as_bytes(), KeyUse::ClientAssertion).unwrap(),
        )),
        api_key_sha256: None,
        issuer: None,
        admin: false,
    }
}

/// The SMART clients' keys: RSA `rsa-1` for `smart-rsa`, EC `ec-1` for `smart-ec`.
struct Keys {
    rsa: TestKey,
    ec: TestKey,
}

fn keys() -> Keys {
    Keys {
        rsa: rsa_key("rsa-1"),
        ec: ec_key("ec-1"),
    }
}

/// Every kind of client the tests use.
fn settings(keys: &Keys, issuers: Vec<IssuerSettings>) -> AuthSettings {
    let mut s = AuthSettings::enabled(Some(PUBLIC_URL.parse().unwrap()));
    let all = ["system/Appointment.*", "system/Slot.*"];
    s.clients
        .push(ClientSettings::with_api_key("engine", ENGINE_KEY, &all).unwrap());
    s.clients
        .push(ClientSettings::with_api_key("reader", READER_KEY, &["system/Slot.rs"]).unwrap());
    let mut north = ClientSettings::with_api_key("north-only", NORTH_KEY, &all).unwrap();
    north.tenants = Some(vec!["north".to_owned()]);
    s.clients.push(north);
    s.clients.push(
        ClientSettings::with_api_key("batcher", BATCH_KEY, &["system/Appointment.c"]).unwrap(),
    );
    let mut admin =
        ClientSettings::with_api_key("operator", ADMIN_KEY, &["system/Slot.s"]).unwrap();
    admin.admin = true;
    s.clients.push(admin);
    s.clients.push(smart_client(
        "smart-rsa",
        &keys.rsa,
        &["system/Appointment.cruds", "system/Slot.rs"],
    ));
    // v1 syntax in the client's configuration; bound to the tenant at the FHIR base only.
    let mut ec = smart_client("smart-ec", &keys.ec, &["system/Appointment.write"]);
    ec.tenants = Some(vec![String::new()]);
    s.clients.push(ec);
    let mut enterprise = ClientSettings::with_api_key("unused", "x", &all).unwrap();
    enterprise.id = "enterprise-app".to_owned();
    enterprise.api_key_sha256 = None;
    enterprise.issuer = Some(IDP.to_owned());
    s.clients.push(enterprise);
    s.issuers = issuers;
    s
}

fn start(auth: AuthSettings) -> (TestApp, Sandbox, Arc<Auth>) {
    let sandbox = start_sandbox();
    let app = spawn_tenants_with_auth(
        vec![
            (
                None,
                salesforce_settings(&sandbox.token_url()),
                example_mapping(),
            ),
            (
                Some("north"),
                salesforce_settings(&sandbox.token_url()),
                example_mapping(),
            ),
        ],
        auth,
    );
    let auth = app.auth.clone();
    (app, sandbox, auth)
}

/// `POST {path}` with an appointment and optional headers.
async fn book(app: &TestApp, path: &str, n: usize, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app
        .client
        .post(format!("{}{path}", app.address))
        .header("Content-Type", "application/fhir+json")
        .body(numbered_appointment(n).to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// Books appointment `n` at the FHIR base with `token` as the bearer token.
async fn book_with_token(app: &TestApp, n: usize, token: &str) -> reqwest::Response {
    book(
        app,
        "/fhir/Appointment",
        n,
        &[("Authorization", &bearer(token))],
    )
    .await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn www_authenticate(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn assert_booked(response: reqwest::Response) {
    assert_eq!(response.status(), 201);
    let body = json_body(response).await;
    assert_eq!(body["resourceType"], "Appointment", "{body}");
    assert_eq!(body["status"], "booked", "{body}");
}

/// Asserts a 401 OperationOutcome (code `login`) with the challenge; the body never holds
/// `secret`.
async fn assert_unauthenticated(response: reqwest::Response, presented: bool, secret: &str) {
    assert_eq!(response.status(), 401);
    let challenge = www_authenticate(&response);
    assert!(
        challenge.starts_with("Bearer realm=\"fhir-salesforce-proxy\""),
        "{challenge}"
    );
    assert_eq!(
        challenge.contains("error=\"invalid_token\""),
        presented,
        "{challenge}"
    );
    let text = response.text().await.unwrap();
    assert!(secret.is_empty() || !text.contains(secret), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_outcome(&body, "login", None);
}

async fn assert_forbidden(response: reqwest::Response, says: &str) {
    assert_eq!(response.status(), 403);
    let challenge = www_authenticate(&response);
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    let body = json_body(response).await;
    assert_outcome(&body, "forbidden", None);
    assert!(
        body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains(says),
        "{body}"
    );
}

pub(crate) fn assertion_claims(client: &str) -> Value {
    json!({
        "iss": client, "sub": client, "aud": TOKEN_AUD,
        "exp": now() + 240, "jti": format!("jti-{}", rand::random::<u64>()),
    })
}

pub(crate) async fn token_request(
    app: &TestApp,
    assertion: &str,
    scope: &str,
) -> reqwest::Response {
    token_request_at(&app.client, &app.address, assertion, scope).await
}

/// A token request to the proxy at `address` (`http://127.0.0.1:PORT`).
pub(crate) async fn token_request_at(
    client: &reqwest::Client,
    address: &str,
    assertion: &str,
    scope: &str,
) -> reqwest::Response {
    client
        .post(format!("{address}/auth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap()
}

/// Asserts a refused token request: `invalid_client` (401) whose description says `says`.
pub(crate) async fn assert_invalid_client(response: reqwest::Response, says: &str) {
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = json_body(response).await;
    assert_eq!(body["error"], "invalid_client", "{body}");
    assert!(
        body["error_description"].as_str().unwrap().contains(says),
        "{body}"
    );
    assert!(body.get("access_token").is_none(), "{body}");
}

pub(crate) async fn access_token(
    app: &TestApp,
    key: &TestKey,
    client: &str,
    kid: &str,
    scope: &str,
) -> Value {
    let response = token_request(app, &sign(key, kid, &assertion_claims(client)), scope).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    json_body(response).await
}

// ---- API keys ---------------------------------------------------------------------------

#[tokio::test]
async fn an_api_key_books_and_a_wrong_or_missing_one_is_a_401_outcome() {
    let keys = keys();
    let (app, sandbox, _) = start(settings(&keys, vec![]));

    assert_booked(book(&app, "/fhir/Appointment", 1, &[("X-API-Key", ENGINE_KEY)]).await).await;
    assert_eq!(sandbox.bookings().len(), 1);

    let wrong = "engine-0123456789abcdef0123456789abcdeX";
    let response = book(&app, "/fhir/Appointment", 2, &[("X-API-Key", wrong)]).await;
    assert_unauthenticated(response, true, wrong).await;
    let response = book(&app, "/fhir/Appointment", 3, &[]).await;
    assert_unauthenticated(response, false, "").await;
    // Both kinds of credential at once are ambiguous: refused, not guessed.
    let response = book(
        &app,
        "/fhir/Appointment",
        4,
        &[("X-API-Key", ENGINE_KEY), ("Authorization", "Bearer abc")],
    )
    .await;
    assert_unauthenticated(response, true, ENGINE_KEY).await;
    assert_eq!(
        sandbox.bookings().len(),
        1,
        "nothing refused reached Salesforce"
    );
}

#[tokio::test]
async fn a_401_is_rendered_in_the_negotiated_format() {
    let keys = keys();
    let (app, _sandbox, _) = start(settings(&keys, vec![]));
    let response = app
        .client
        .get(format!("{}/fhir/Slot?status=free", app.address))
        .header("Accept", "application/fhir+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(www_authenticate(&response).contains("realm"));
    let text = response.text().await.unwrap();
    assert!(text.contains("<OperationOutcome"), "{text}");
    assert!(text.contains("<code value=\"login\"/>"), "{text}");
}

#[tokio::test]
async fn scopes_and_tenants_limit_api_key_clients() {
    let keys = keys();
    let (app, sandbox, _) = start(settings(&keys, vec![]));
    let response = book(&app, "/fhir/Appointment", 1, &[("X-API-Key", READER_KEY)]).await;
    assert_forbidden(response, "system/Appointment.c").await;
    let response = book(&app, "/fhir/Appointment", 2, &[("X-API-Key", NORTH_KEY)]).await;
    assert_forbidden(response, "tenant").await;
    assert!(sandbox.bookings().is_empty());
    assert_booked(
        book(
            &app,
            "/fhir/north/Appointment",
            3,
            &[("X-API-Key", NORTH_KEY)],
        )
        .await,
    )
    .await;
}

#[tokio::test]
async fn admin_paths_need_an_admin_client() {
    let keys = keys();
    let (app, _sandbox, _) = start(settings(&keys, vec![]));
    let post = |key: &'static str| {
        app.client
            .post(format!("{}/admin/reload", app.address))
            .header("X-API-Key", key)
            .send()
    };
    let response = post(ENGINE_KEY).await.unwrap();
    assert_forbidden(response, "admin").await;
    let response = app
        .client
        .post(format!("{}/admin/reload", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // An admin gets past auth to the endpoint itself (whatever it answers).
    let response = post(ADMIN_KEY).await.unwrap();
    assert!(
        ![401, 403].contains(&response.status().as_u16()),
        "{}",
        response.status()
    );
}

// ---- SMART Backend Services ------------------------------------------------------------

#[tokio::test]
async fn rs384_and_es384_assertions_get_tokens_that_book() {
    let keys = keys();
    let (app, sandbox, _) = start(settings(&keys, vec![]));

    let token = access_token(
        &app,
        &keys.rsa,
        "smart-rsa",
        "rsa-1",
        "system/Appointment.cu system/Patient.read",
    )
    .await;
    assert_eq!(token["token_type"], "bearer");
    assert!(token["expires_in"].as_u64().unwrap() <= 300, "{token}");
    assert_eq!(token["scope"], "system/Appointment.cu", "{token}");
    let access = token["access_token"].as_str().unwrap();
    let response = book_with_token(&app, 1, access).await;
    assert_booked(response).await;

    // v2 request against a v1-configured client: narrowed to what it may have.
    let token = access_token(
        &app,
        &keys.ec,
        "smart-ec",
        "ec-1",
        "system/Appointment.cruds",
    )
    .await;
    assert_eq!(token["scope"], "system/Appointment.cud", "{token}");
    let access = token["access_token"].as_str().unwrap();
    let response = book_with_token(&app, 2, access).await;
    assert_booked(response).await;
    assert_eq!(sandbox.bookings().len(), 2);

    // A token that was never issued.
    let forged = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let response = book_with_token(&app, 3, forged).await;
    assert_unauthenticated(response, true, forged).await;
}

#[tokio::test]
async fn bad_assertions_are_refused_as_invalid_client() {
    let keys = keys();
    let (app, _sandbox, _) = start(settings(&keys, vec![]));
    let scope = "system/Appointment.c";
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = assertion_claims("smart-rsa");
        change(&mut claims);
        sign(&keys.rsa, "rsa-1", &claims)
    };

    let expired = with(&|c| c["exp"] = json!(now() - 120));
    assert_invalid_client(token_request(&app, &expired, scope).await, "expired").await;
    let far = with(&|c| c["exp"] = json!(now() + 600));
    assert_invalid_client(token_request(&app, &far, scope).await, "5 minutes").await;
    let audience = with(&|c| c["aud"] = json!("https://elsewhere.example/token"));
    assert_invalid_client(token_request(&app, &audience, scope).await, TOKEN_AUD).await;
    let no_jti = with(&|c| {
        c.as_object_mut().unwrap().remove("jti");
    });
    assert_invalid_client(token_request(&app, &no_jti, scope).await, "jti").await;
    let unknown_kid = sign(&keys.rsa, "rsa-9", &assertion_claims("smart-rsa"));
    assert_invalid_client(token_request(&app, &unknown_kid, scope).await, "kid").await;
    // Signed by another key under the client's kid.
    let impostor = ec_key("ec-1");
    let wrong_signature = sign(&impostor, "ec-1", &assertion_claims("smart-ec"));
    assert_invalid_client(
        token_request(&app, &wrong_signature, scope).await,
        "signature",
    )
    .await;
    let stranger = sign(&keys.rsa, "rsa-1", &assertion_claims("stranger"));
    assert_invalid_client(
        token_request(&app, &stranger, scope).await,
        "unknown client",
    )
    .await;

    // The same assertion twice: the second is a replay.
    let once = with(&|_| {});
    assert_eq!(token_request(&app, &once, scope).await.status(), 200);
    assert_invalid_client(token_request(&app, &once, scope).await, "already used").await;

    // Scopes the client may not have, and other grant types.
    let response = token_request(&app, &with(&|_| {}), "system/Patient.read").await;
    assert_eq!(response.status(), 400);
    assert_eq!(json_body(response).await["error"], "invalid_scope");
    let response = app
        .client
        .post(format!("{}/auth/token", app.address))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(json_body(response).await["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn a_token_is_limited_to_its_scopes_and_its_clients_tenants() {
    let keys = keys();
    let (app, sandbox, _) = start(settings(&keys, vec![]));
    let token = access_token(&app, &keys.ec, "smart-ec", "ec-1", "system/Appointment.c").await;
    let auth = bearer(token["access_token"].as_str().unwrap());

    let response = app
        .client
        .get(format!("{}/fhir/Slot?status=free", app.address))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_forbidden(response, "system/Slot.s").await;
    let response = book(
        &app,
        "/fhir/north/Appointment",
        1,
        &[("Authorization", &auth)],
    )
    .await;
    assert_forbidden(response, "tenant").await;
    assert!(sandbox.bookings().is_empty());
}

#[tokio::test]
async fn a_reload_that_removes_a_client_ends_its_tokens_and_keys() {
    let keys = keys();
    let (app, _sandbox, auth) = start(settings(&keys, vec![]));
    let token = access_token(
        &app,
        &keys.rsa,
        "smart-rsa",
        "rsa-1",
        "system/Appointment.c",
    )
    .await;
    let access = bearer(token["access_token"].as_str().unwrap());

    let mut fewer = settings(&keys, vec![]);
    fewer
        .clients
        .retain(|c| c.id != "smart-rsa" && c.id != "engine");
    auth.replace_clients(fewer);

    let response = book(&app, "/fhir/Appointment", 1, &[("Authorization", &access)]).await;
    assert_unauthenticated(response, true, "").await;
    let response = book(&app, "/fhir/Appointment", 2, &[("X-API-Key", ENGINE_KEY)]).await;
    assert_unauthenticated(response, true, ENGINE_KEY).await;
    assert_booked(
        book(
            &app,
            "/fhir/north/Appointment",
            3,
            &[("X-API-Key", NORTH_KEY)],
        )
        .await,
    )
    .await;
}

// ---- Enterprise JWTs --------------------------------------------------------------------

fn issuer(jwks_url: String, refetch_min: Duration) -> IssuerSettings {
    IssuerSettings {
        issuer: IDP.to_owned(),
        audience: IDP_AUDIENCE.to_owned(),
        jwks: JwksSource::Url(jwks_url.parse().unwrap()),
        client_claim: None,
        jwks_refetch_min: refetch_min,
    }
}

fn idp_claims() -> Value {
    json!({
        "iss": IDP, "aud": IDP_AUDIENCE, "exp": now() + 300, "iat": now(),
        "client_id": "enterprise-app", "scope": "system/Appointment.cruds system/Slot.rs",
    })
}

fn idp_token(key: &TestKey, kid: &str, change: &dyn Fn(&mut Value)) -> String {
    let mut claims = idp_claims();
    change(&mut claims);
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
}

#[tokio::test]
async fn enterprise_tokens_are_verified_and_an_unknown_kid_refetches_the_jwks() {
    let keys = keys();
    let idp = MockServer::start().await;
    let first = rsa_key("idp-1");
    let rotated = ec_key("idp-2");
    // The first fetch sees only idp-1; later ones see the rotated set too.
    Mock::given(method("GET"))
        .and(path("/jwks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks(&[&first])))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&idp)
        .await;
    Mock::given(method("GET"))
        .and(path("/jwks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks(&[&first, &rotated])))
        .mount(&idp)
        .await;
    let (app, sandbox, auth) = start(settings(
        &keys,
        vec![issuer(format!("{}/jwks", idp.uri()), Duration::ZERO)],
    ));
    let fetches = || auth.jwks_fetches()[0].1;

    let token = idp_token(&first, "idp-1", &|_| {});
    assert_booked(book_with_token(&app, 1, &token).await).await;
    assert_eq!(fetches(), 1);

    // Signed with the rotated key: unknown until the JWKS is fetched again.
    let mut header = Header::new(Algorithm::ES384);
    header.kid = Some("idp-2".to_owned());
    let token = jsonwebtoken::encode(&header, &idp_claims(), &rotated.encoding).unwrap();
    assert_booked(book_with_token(&app, 2, &token).await).await;
    assert_eq!(fetches(), 2);
    assert_eq!(idp.received_requests().await.unwrap().len(), 2);

    let refused: [(&str, String); 5] = [
        (
            "expired",
            idp_token(&first, "idp-1", &|c| c["exp"] = json!(now() - 120)),
        ),
        (
            "audience",
            idp_token(&first, "idp-1", &|c| c["aud"] = json!("someone-else")),
        ),
        (
            "issuer",
            idp_token(&first, "idp-1", &|c| c["iss"] = json!("https://other.test")),
        ),
        (
            "client",
            idp_token(&first, "idp-1", &|c| c["client_id"] = json!("stranger")),
        ),
        // A configured client, but not one allowed in through this issuer.
        (
            "binding",
            idp_token(&first, "idp-1", &|c| c["client_id"] = json!("engine")),
        ),
    ];
    for (n, (case, token)) in refused.iter().enumerate() {
        let response = book_with_token(&app, 10 + n, token).await;
        assert_eq!(response.status(), 401, "{case}");
        assert_unauthenticated(response, true, token).await;
    }
    assert_eq!(sandbox.bookings().len(), 2);

    // The token's scopes are cut down to the client's, and checked per interaction.
    let narrow = idp_token(&first, "idp-1", &|c| c["scope"] = json!("system/Slot.rs"));
    let response = book_with_token(&app, 20, &narrow).await;
    assert_forbidden(response, "system/Appointment.c").await;
    let scp = idp_token(&first, "idp-1", &|c| {
        c.as_object_mut().unwrap().remove("scope");
        c["scp"] = json!(["system/Appointment.c"]);
    });
    assert_booked(book_with_token(&app, 21, &scp).await).await;
}

#[tokio::test]
async fn a_flood_of_unknown_kids_fetches_the_jwks_at_most_once_per_interval() {
    let keys = keys();
    let idp = MockServer::start().await;
    let first = rsa_key("idp-1");
    Mock::given(method("GET"))
        .and(path("/jwks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks(&[&first])))
        .mount(&idp)
        .await;
    let (app, _sandbox, auth) = start(settings(
        &keys,
        vec![issuer(
            format!("{}/jwks", idp.uri()),
            Duration::from_secs(3600),
        )],
    ));

    let good = idp_token(&first, "idp-1", &|_| {});
    assert_booked(book_with_token(&app, 1, &good).await).await;
    for n in 0..5 {
        let bogus = idp_token(&first, &format!("made-up-{n}"), &|_| {});
        let response = book_with_token(&app, 2 + n, &bogus).await;
        assert_unauthenticated(response, true, &bogus).await;
    }
    assert_eq!(auth.jwks_fetches()[0].1, 1);
    assert_eq!(idp.received_requests().await.unwrap().len(), 1);
}

// ---- Bundles ----------------------------------------------------------------------------

fn bundle(kind: &str) -> Value {
    json!({
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            {
                "resource": numbered_appointment(101),
                "request": { "method": "POST", "url": "Appointment" }
            },
            {
                "resource": numbered_appointment(102),
                "request": { "method": "PUT", "url": "Appointment/08p000000000001AAA" }
            }
        ]
    })
}

async fn post_bundle(app: &TestApp, body: &Value, key: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/fhir", app.address))
        .header("Content-Type", "application/fhir+json")
        .header("X-API-Key", key)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_batch_entry_outside_the_scopes_gets_its_own_403_and_the_others_proceed() {
    let keys = keys();
    let (app, sandbox, _) = start(settings(&keys, vec![]));
    let response = post_bundle(&app, &bundle("batch"), BATCH_KEY).await;
    assert_eq!(response.status(), 200);
    let body = json_body(response).await;
    assert_eq!(body["type"], "batch-response", "{body}");
    assert_eq!(
        body["entry"][0]["response"]["status"], "201 Created",
        "{body}"
    );
    assert_eq!(
        body["entry"][1]["response"]["status"], "403 Forbidden",
        "{body}"
    );
    assert_eq!(
        body["entry"][1]["response"]["outcome"]["issue"][0]["code"], "forbidden",
        "{body}"
    );
    assert_eq!(sandbox.bookings().len(), 1);
}

#[tokio::test]
async fn a_transaction_with_a_denied_entry_is_refused_before_anything_is_sent() {
    let keys = keys();
    let (app, sandbox, _) = start(settings(&keys, vec![]));
    let response = post_bundle(&app, &bundle("transaction"), BATCH_KEY).await;
    assert_eq!(response.status(), 403);
    let body = json_body(response).await;
    assert_outcome(&body, "forbidden", Some("Bundle.entry[1]"));
    assert!(sandbox.bookings().is_empty(), "nothing reached Salesforce");
}

// ---- Open endpoints and auth switched off ----------------------------------------------

#[tokio::test]
async fn metadata_and_smart_configuration_are_open() {
    let keys = keys();
    let (app, _sandbox, _) = start(settings(&keys, vec![]));
    let get = |path: &str| app.client.get(format!("{}{path}", app.address)).send();

    let response = get("/fhir/metadata").await.unwrap();
    assert_eq!(response.status(), 200);
    let statement = json_body(response).await;
    assert_eq!(statement["resourceType"], "CapabilityStatement");
    // rest.security tells a client where to get a token (SMART App Launch conformance).
    let security = &statement["rest"][0]["security"];
    assert_eq!(
        security["service"][0]["coding"][0]["code"], "SMART-on-FHIR",
        "{security}"
    );
    assert_eq!(
        security["extension"][0]["extension"][0]["valueUri"], TOKEN_AUD,
        "{security}"
    );
    for base in ["/fhir", "/fhir/north"] {
        let response = get(&format!("{base}/.well-known/smart-configuration"))
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{base}");
        let body = json_body(response).await;
        assert_eq!(body["token_endpoint"], TOKEN_AUD, "{body}");
        assert_eq!(
            body["token_endpoint_auth_methods_supported"],
            json!(["private_key_jwt"])
        );
        assert_eq!(
            body["token_endpoint_auth_signing_alg_values_supported"],
            json!(["RS384", "ES384"])
        );
        assert_eq!(body["grant_types_supported"], json!(["client_credentials"]));
        let capabilities = body["capabilities"].as_array().unwrap();
        for c in [
            "client-confidential-asymmetric",
            "permission-v1",
            "permission-v2",
        ] {
            assert!(capabilities.contains(&json!(c)), "{body}");
        }
    }
    let response = get("/fhir/nowhere/.well-known/smart-configuration")
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    // Paths that do not exist need credentials too: nothing is learnt without them.
    assert_eq!(get("/fhir/Patient").await.unwrap().status(), 401);
}

#[tokio::test]
async fn with_auth_disabled_anyone_books_and_readyz_says_so() {
    let sandbox = start_sandbox();
    let app = spawn_tenants_with_auth(
        vec![(
            None,
            salesforce_settings(&sandbox.token_url()),
            example_mapping(),
        )],
        AuthSettings::disabled(),
    );
    assert!(!app.auth.is_enabled());
    assert_booked(book(&app, "/fhir/Appointment", 1, &[]).await).await;
    let response = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    let body = json_body(response).await;
    assert_eq!(body["auth"], "disabled", "{body}");
    // With nothing to authenticate, the CapabilityStatement announces no security.
    let statement = json_body(
        app.client
            .get(format!("{}/fhir/metadata", app.address))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        statement["rest"][0].get("security").is_none(),
        "{statement}"
    );
}

#[tokio::test]
async fn without_a_public_url_smart_discovery_says_what_is_missing() {
    let sandbox = start_sandbox();
    let mut settings = AuthSettings::enabled(None);
    settings.clients.push(
        ClientSettings::with_api_key("engine", ENGINE_KEY, &["system/Appointment.*"]).unwrap(),
    );
    let app = spawn_tenants_with_auth(
        vec![(
            None,
            salesforce_settings(&sandbox.token_url()),
            example_mapping(),
        )],
        settings,
    );
    let response = app
        .client
        .get(format!(
            "{}/fhir/.well-known/smart-configuration",
            app.address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let outcome = json_body(response).await;
    assert_outcome(&outcome, "not-supported", None);
    let text = outcome["issue"][0]["diagnostics"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("auth.public_url"), "{text}");
    // API keys still work without it.
    assert_booked(book(&app, "/fhir/Appointment", 1, &[("x-api-key", ENGINE_KEY)]).await).await;
}

#[tokio::test]
async fn readyz_shows_a_reload_that_switches_auth_off() {
    let keys = keys();
    let (app, _sandbox, auth) = start(settings(&keys, vec![]));
    let readyz = || async {
        json_body(
            app.client
                .get(format!("{}/readyz", app.address))
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    assert_eq!(readyz().await["auth"], "enabled");
    auth.replace_clients(AuthSettings::disabled());
    let body = readyz().await;
    assert_eq!(body["auth"], "disabled", "{body}");
}

#[tokio::test]
async fn an_address_that_guesses_is_held_back_with_429_before_anything_is_checked() {
    let keys = keys();
    let mut s = settings(&keys, vec![]);
    s.failed_attempts_per_minute = std::num::NonZeroU32::new(5);
    let (app, sandbox, _) = start(s);
    // Five failures are the budget; the sixth is still checked (and refused), and from then on
    // the address waits.
    for n in 0..6 {
        let guess = format!("guess-{n:040}");
        let refused = book(&app, "/fhir/Appointment", n, &[("X-API-Key", &guess)]).await;
        assert_eq!(refused.status(), 401, "guess {n}");
    }
    let held = book(&app, "/fhir/Appointment", 9, &[("X-API-Key", "guess-7")]).await;
    assert_eq!(held.status(), 429);
    let wait: u64 = held.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_outcome(&json_body(held).await, "throttled", None);
    // Even the right key from that address waits: it is not checked while held back.
    let right = book(&app, "/fhir/Appointment", 10, &[("X-API-Key", ENGINE_KEY)]).await;
    assert_eq!(right.status(), 429);
    // Requests without credentials cost nothing and are not held back: they get their 401.
    assert_eq!(book(&app, "/fhir/Appointment", 11, &[]).await.status(), 401);
    // The token endpoint from that address is held back too, unchecked.
    let forged = sign(&keys.ec, "smart-ec", &assertion_claims("smart-ec"));
    let answer = token_request(&app, &forged, "system/Appointment.c").await;
    assert_eq!(answer.status(), 429);
    assert!(answer.headers().get("retry-after").is_some());
    assert!(sandbox.bookings().is_empty());

    let metrics = app.metrics().await;
    for line in [
        r#"fsp_auth_failures_total{kind="credentials"} 6"#,
        r#"fsp_auth_held_back_total{kind="credentials"} 2"#,
        r#"fsp_auth_held_back_total{kind="token"} 1"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no `{line}` in\n{metrics}"
        );
    }
}

#[tokio::test]
async fn refused_token_requests_count_against_the_address_too() {
    let keys = keys();
    let mut s = settings(&keys, vec![]);
    s.failed_attempts_per_minute = std::num::NonZeroU32::new(3);
    let (app, _sandbox, _) = start(s);
    let stranger = rsa_key("stranger");
    for _ in 0..3 {
        let forged = sign(&stranger, "smart-rsa", &assertion_claims("smart-rsa"));
        assert_invalid_client(
            token_request(&app, &forged, "system/Appointment.c").await,
            "",
        )
        .await;
    }
    let forged = sign(&stranger, "smart-rsa", &assertion_claims("smart-rsa"));
    let refused = token_request(&app, &forged, "system/Appointment.c").await;
    assert_eq!(
        refused.status(),
        401,
        "the fourth failure is still answered…"
    );
    let held = token_request(
        &app,
        &sign(&keys.rsa, "smart-rsa", &assertion_claims("smart-rsa")),
        "system/Appointment.c",
    )
    .await;
    assert_eq!(
        held.status(),
        429,
        "…and then the address waits, even with a good assertion"
    );
    assert_eq!(held.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn status_and_metrics_can_be_kept_for_admin_clients() {
    let keys = keys();
    let mut s = settings(&keys, vec![]);
    s.status_needs_admin = true;
    let (app, _sandbox, _) = start(s);
    for path in ["/status", "/metrics"] {
        let get = |key: Option<&str>| {
            let mut request = app.client.get(format!("{}{path}", app.address));
            if let Some(key) = key {
                request = request.header("X-API-Key", key);
            }
            request.send()
        };
        assert_eq!(get(None).await.unwrap().status(), 401, "{path}");
        assert_eq!(get(Some(ENGINE_KEY)).await.unwrap().status(), 403, "{path}");
        assert_eq!(get(Some(ADMIN_KEY)).await.unwrap().status(), 200, "{path}");
    }
    // The probes stay open for the orchestrator.
    let health = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn reading_needs_the_r_scope_and_searching_the_s_scope() {
    let keys = keys();
    let (app, sandbox, _) = start(settings(&keys, vec![]));
    assert_booked(book(&app, "/fhir/Appointment", 1, &[("X-API-Key", ENGINE_KEY)]).await).await;
    let id = sandbox.bookings()[0].id.clone();
    let get = |path: String, key: &'static str| {
        app.client
            .get(format!("{}/fhir/{path}", app.address))
            .header("X-API-Key", key)
            .send()
    };
    let asked = sandbox.query_requests();
    // Create only: neither a read nor a search, and Salesforce is not asked.
    assert_forbidden(
        get(format!("Appointment/{id}"), BATCH_KEY).await.unwrap(),
        "system/Appointment.r",
    )
    .await;
    assert_forbidden(
        get("Appointment?patient=Patient/pat-1001".to_owned(), BATCH_KEY)
            .await
            .unwrap(),
        "system/Appointment.s",
    )
    .await;
    assert_eq!(sandbox.query_requests(), asked);
    let read = get(format!("Appointment/{id}"), ENGINE_KEY).await.unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(json_body(read).await["id"], id.as_str());
    let searched = get(
        "Appointment?patient=Patient/pat-1001".to_owned(),
        ENGINE_KEY,
    )
    .await
    .unwrap();
    assert_eq!(searched.status(), 200);
    assert_eq!(json_body(searched).await["total"], 1);
}
