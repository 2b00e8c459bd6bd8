//! The SMART Backend Services token server: `client_credentials` with a `private_key_jwt` client
//! assertion (RS384 or ES384, verified with the key the assertion's `kid` names in that client's
//! JWKS file), and the access tokens it issues.
//!
//! Access tokens are opaque: 32 random bytes (base64url), kept in the [store](crate::store) by
//! their SHA-256 with the client id, the granted scopes and the expiry, so every replica sharing
//! the store accepts a token any of them issued, and a restart loses none. They are not JWTs, so
//! nobody can read or forge them; they die with their client when a reload removes it. Each
//! replica keeps the tokens it has already found in a small cache, so a request costs no store
//! read. Assertion ids (`jti`) are recorded in the store per client until the assertion could no
//! longer be accepted, so a replayed assertion is refused by every replica.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use moka::future::Cache;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::jwks::KeyUse;
use super::scope::{Scopes, granted_scope_string};
use super::{ClientSettings, Registry};
use crate::store::{Store, TokenRecord};

/// The `client_assertion_type` of a JWT client assertion (RFC 7523).
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Clock skew allowed on an assertion's `exp`/`nbf`, and on a token's.
pub const CLOCK_SKEW_SECS: u64 = 30;
/// The furthest in the future an assertion's `exp` may lie (SMART: no more than five minutes).
pub const MAX_ASSERTION_LIFETIME_SECS: u64 = 300;
/// Tokens a replica keeps found in its cache at most (when full the oldest are looked up in the
/// store again).
const MAX_CACHED_TOKENS: u64 = 100_000;
const TOKEN_BYTES: usize = 32;
/// The length of an issued token: base64url of 32 bytes, no padding.
const TOKEN_LENGTH: usize = 43;

/// A token request's form parameters.
#[derive(Debug, Default)]
pub struct TokenRequest {
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// `client_assertion_type`.
    pub client_assertion_type: Option<String>,
    /// `client_assertion` (never logged).
    pub client_assertion: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
}

impl TokenRequest {
    /// Reads an `application/x-www-form-urlencoded` body.
    ///
    /// # Errors
    /// `invalid_request` when a parameter appears twice (RFC 6749 §3.2).
    pub fn from_form(body: &[u8]) -> Result<TokenRequest, OAuthError> {
        let mut request = TokenRequest::default();
        for (name, value) in url::form_urlencoded::parse(body) {
            let slot = match name.as_ref() {
                "grant_type" => &mut request.grant_type,
                "client_assertion_type" => &mut request.client_assertion_type,
                "client_assertion" => &mut request.client_assertion,
                "scope" => &mut request.scope,
                _ => continue,
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(OAuthError::request(format!(
                    "the parameter {name} appears more than once"
                )));
            }
        }
        Ok(request)
    }
}

/// The token response (RFC 6749 §5.1).
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until it expires (at most 300).
    pub expires_in: u64,
    /// The scopes granted.
    pub scope: String,
    /// The client the token was issued to: for the audit trail, not sent.
    #[serde(skip)]
    pub client_id: String,
}

/// A token endpoint error (RFC 6749 §5.2).
#[derive(Debug, Clone, Serialize)]
pub struct OAuthError {
    /// `invalid_request`, `invalid_client`, `unsupported_grant_type` or `invalid_scope`.
    pub error: &'static str,
    /// Why, for the integrator; never echoes the assertion.
    pub error_description: String,
    /// The client, when its assertion's signature was good (a replay, a scope it may not have):
    /// for the audit trail, not sent.
    #[serde(skip)]
    pub client_id: Option<String>,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError {
            error,
            error_description: description.into(),
            client_id: None,
        }
    }

    fn of_client(mut self, client_id: &str) -> OAuthError {
        self.client_id = Some(client_id.to_owned());
        self
    }

    /// `invalid_request`.
    pub fn request(description: impl Into<String>) -> OAuthError {
        OAuthError::new("invalid_request", description)
    }

    fn client(description: impl Into<String>) -> OAuthError {
        OAuthError::new("invalid_client", description)
    }

    /// The store cannot record the assertion or the token: nothing was issued.
    fn unavailable() -> OAuthError {
        OAuthError::new(
            "temporarily_unavailable",
            "the proxy's store is unavailable, so no token can be issued now; retry shortly",
        )
    }

    /// The HTTP status: 401 for `invalid_client`, 503 for `temporarily_unavailable`, 400
    /// otherwise.
    pub fn status(&self) -> u16 {
        match self.error {
            "invalid_client" => 401,
            "temporarily_unavailable" => 503,
            _ => 400,
        }
    }
}

/// What the proxy remembers about an issued token.
#[derive(Debug)]
pub struct IssuedToken {
    /// The client it was issued to.
    pub client_id: String,
    /// The scopes granted.
    pub scopes: Scopes,
    expires_at: DateTime<Utc>,
}

/// Issued tokens and seen assertion ids, in the store.
pub struct TokenStore {
    store: Store,
    /// Tokens this replica has found in the store already (a cache: the store decides).
    found: Cache<[u8; 32], Arc<IssuedToken>>,
}

impl TokenStore {
    /// Tokens and assertion ids kept in `store`.
    pub fn new(store: Store) -> TokenStore {
        TokenStore {
            store,
            found: Cache::builder()
                .max_capacity(MAX_CACHED_TOKENS)
                .time_to_live(Duration::from_secs(
                    super::settings::MAX_TOKEN_LIFETIME_SECS,
                ))
                .build(),
        }
    }

    /// The unexpired token, if this proxy (any replica sharing the store) issued it.
    ///
    /// # Errors
    /// When the store cannot be asked.
    pub async fn get(
        &self,
        token: &str,
    ) -> Result<Option<Arc<IssuedToken>>, crate::store::StoreError> {
        let key = token_key(token);
        if let Some(issued) = self.found.get(&key).await {
            return Ok((issued.expires_at > Utc::now()).then_some(issued));
        }
        let Some(record) = self.store.find_token(&hex::encode(key)).await? else {
            return Ok(None);
        };
        let issued = Arc::new(IssuedToken {
            client_id: record.client_id,
            scopes: Scopes::parse_lenient(&record.scopes),
            expires_at: record.expires,
        });
        self.found.insert(key, issued.clone()).await;
        Ok(Some(issued))
    }

    /// Verifies a token request and issues a token.
    ///
    /// # Errors
    /// The RFC 6749 error to answer with.
    pub async fn issue(
        &self,
        registry: &Registry,
        form: &TokenRequest,
    ) -> Result<TokenResponse, OAuthError> {
        match form.grant_type.as_deref() {
            Some("client_credentials") => {}
            None => return Err(OAuthError::request("grant_type is missing")),
            Some(_) => {
                return Err(OAuthError::new(
                    "unsupported_grant_type",
                    "only grant_type=client_credentials is supported",
                ));
            }
        }
        if form.client_assertion_type.as_deref() != Some(JWT_BEARER_ASSERTION) {
            return Err(OAuthError::request(format!(
                "client_assertion_type must be {JWT_BEARER_ASSERTION}"
            )));
        }
        let assertion = form
            .client_assertion
            .as_deref()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| OAuthError::request("client_assertion is missing"))?;
        let token_url = registry.token_url().ok_or_else(|| {
            OAuthError::client("this proxy has no auth.public_url, so it cannot check assertions")
        })?;
        let (client, exp, jti) = match verify_assertion(registry, assertion, &token_url) {
            Ok(verified) => verified,
            Err(error) => {
                tracing::info!(reason = %error.error_description, "client assertion refused");
                return Err(error);
            }
        };
        // Recorded until the assertion could no longer be accepted (its exp plus the skew).
        let remember_until = DateTime::from_timestamp((exp + CLOCK_SKEW_SECS + 1) as i64, 0)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let fresh = self
            .store
            .remember_assertion(&client.id, &jti, remember_until)
            .await
            .map_err(|_| OAuthError::unavailable().of_client(&client.id))?;
        if !fresh {
            tracing::warn!(client_id = %client.id, "client assertion replayed (jti already used)");
            return Err(OAuthError::client(
                "this assertion's jti was already used; sign a new assertion for each request",
            )
            .of_client(&client.id));
        }
        let requested = form
            .scope
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                OAuthError::new(
                    "invalid_scope",
                    "scope is missing (e.g. system/Appointment.cu)",
                )
                .of_client(&client.id)
            })?;
        let (granted, scope) = granted_scope_string(requested, &client.scopes);
        if granted.is_empty() {
            return Err(OAuthError::new(
                "invalid_scope",
                "none of the requested scopes is allowed for this client (only system/ scopes \
                 without search constraints are understood)",
            )
            .of_client(&client.id));
        }
        let lifetime = registry.settings().token_lifetime;
        let bytes: [u8; TOKEN_BYTES] = rand::random();
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let key = token_key(&token);
        let expires_at = Utc::now()
            + chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::seconds(300));
        // Recorded before it is handed out: a token the store does not hold would be refused by
        // every other replica.
        self.store
            .insert_token(
                &hex::encode(key),
                &TokenRecord {
                    client_id: client.id.clone(),
                    scopes: scope.clone(),
                    expires: expires_at,
                },
            )
            .await
            .map_err(|_| OAuthError::unavailable().of_client(&client.id))?;
        self.found
            .insert(
                key,
                Arc::new(IssuedToken {
                    client_id: client.id.clone(),
                    scopes: Scopes::parse_lenient(&scope),
                    expires_at,
                }),
            )
            .await;
        tracing::info!(client_id = %client.id, scope = %scope, "access token issued");
        Ok(TokenResponse {
            access_token: token,
            token_type: "bearer".to_owned(),
            expires_in: lifetime.as_secs(),
            scope,
            client_id: client.id.clone(),
        })
    }
}

/// Whether a bearer token has the shape of one this proxy issues (else it is an enterprise JWT).
pub fn is_proxy_token(token: &str) -> bool {
    token.len() == TOKEN_LENGTH && !token.contains('.')
}

fn token_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[derive(Deserialize)]
struct AssertionClaims {
    exp: u64,
    #[serde(default)]
    jti: Option<String>,
}

/// Checks an assertion: its client, key, signature, `iss`, `sub`, `aud`, `exp` and `jti`.
fn verify_assertion<'r>(
    registry: &'r Registry,
    assertion: &str,
    token_url: &str,
) -> Result<(&'r ClientSettings, u64, String), OAuthError> {
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| OAuthError::client("client_assertion is not a signed JWT"))?;
    if !KeyUse::ClientAssertion.accepts(header.alg) {
        return Err(OAuthError::client(
            "the client assertion must be signed with RS384 or ES384",
        ));
    }
    let kid = header
        .kid
        .as_deref()
        .ok_or_else(|| OAuthError::client("the client assertion's header has no kid"))?;
    // Read without verifying only to find the key to verify with.
    let unverified: serde_json::Value = jsonwebtoken::dangerous::insecure_decode_claims(assertion)
        .map_err(|_| OAuthError::client("the client assertion's claims cannot be read"))?;
    let client_id = unverified
        .get("iss")
        .and_then(|v| v.as_str())
        .ok_or_else(|| OAuthError::client("the client assertion has no iss"))?;
    let client = registry
        .client(client_id)
        .ok_or_else(|| OAuthError::client("unknown client"))?;
    let keys = client.jwks.as_ref().ok_or_else(|| {
        OAuthError::client(
            "this client is not registered for SMART Backend Services (no jwks_file)",
        )
    })?;
    let key = keys
        .find(kid)
        .ok_or_else(|| OAuthError::client("the client's JWKS has no key with this kid"))?;
    let decoding = key.for_algorithm(header.alg).ok_or_else(|| {
        OAuthError::client("the key with this kid cannot verify the assertion's alg")
    })?;
    let validation = validation(header.alg, &client.id, token_url);
    let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, decoding, &validation)
        .map_err(|e| {
            OAuthError::client(match e.kind() {
                ErrorKind::ExpiredSignature => "the client assertion has expired".to_owned(),
                ErrorKind::ImmatureSignature => {
                    "the client assertion is not valid yet (nbf)".to_owned()
                }
                ErrorKind::InvalidAudience => {
                    format!("the client assertion's aud must be the token endpoint {token_url}")
                }
                ErrorKind::InvalidIssuer | ErrorKind::InvalidSubject => {
                    "the client assertion's iss and sub must both be the client_id".to_owned()
                }
                ErrorKind::MissingRequiredClaim(claim) => {
                    format!("the client assertion has no {claim}")
                }
                ErrorKind::InvalidSignature => {
                    "the client assertion's signature does not verify".to_owned()
                }
                _ => "the client assertion cannot be verified".to_owned(),
            })
        })?
        .claims;
    let now = unix_now();
    if claims.exp > now + MAX_ASSERTION_LIFETIME_SECS + CLOCK_SKEW_SECS {
        return Err(OAuthError::client(
            "the client assertion's exp is more than 5 minutes in the future",
        ));
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or_else(|| {
            OAuthError::client(
                "the client assertion needs a jti (a unique id, at most 256 characters)",
            )
        })?;
    Ok((client, claims.exp, jti))
}

fn validation(algorithm: Algorithm, client_id: &str, token_url: &str) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = CLOCK_SKEW_SECS;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.set_issuer(&[client_id]);
    validation.sub = Some(client_id.to_owned());
    validation.set_audience(&[token_url]);
    validation
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The SMART configuration document for a FHIR base (`{base}/.well-known/smart-configuration`);
/// `None` when `auth.public_url` is not set (there is no token endpoint to name).
pub fn smart_configuration(registry: &Registry) -> Option<serde_json::Value> {
    let token_endpoint = registry.token_url()?;
    Some(serde_json::json!({
        "token_endpoint": token_endpoint,
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": [
            "system/Appointment.cruds",
            "system/Appointment.cu",
            "system/Appointment.c",
            "system/Appointment.u",
            "system/Appointment.s",
            "system/Slot.s",
            "system/Slot.rs",
            "system/Appointment.write",
            "system/Appointment.read",
            "system/Appointment.*",
            "system/Slot.read"
        ],
        "capabilities": [
            "client-confidential-asymmetric",
            "permission-v1",
            "permission-v2"
        ]
    }))
}
