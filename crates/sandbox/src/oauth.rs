//! The sandbox's OAuth 2.0 token endpoint (`salesforce-api.md` §3.2, §3.3, §3.5): reading the
//! request, checking the client (client credentials) or the signed assertion (JWT bearer),
//! minting tokens.
//!
//! Tokens and the response `signature` come from `std` hashing and a tiny Base64, which is enough
//! for opaque, unique, unguessable-in-practice sandbox tokens; they are not cryptographic. JWT
//! assertions are verified for real (RS256, with `jsonwebtoken`) against the configured public key.

use std::collections::hash_map::{DefaultHasher, RandomState};
use std::hash::{BuildHasher, Hash, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;
use serde_json::Value;

use super::{SandboxJwtBearer, SandboxSettings};

/// The JWT bearer grant's `grant_type` (RFC 7523, as the OAuth 2.0 JWT Bearer Flow page names it).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The token endpoint's error body: `{"error", "error_description"}` (HTTP 400).
#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct TokenErrorResponse {
    error: String,
    error_description: Option<String>,
}

/// The grant where the proxy authenticates as itself with a secret.
pub(super) const CLIENT_CREDENTIALS: &str = "client_credentials";

/// The latest `exp` accepted, in seconds from now: Salesforce wants "the expiration time of the
/// assertion within 3 minutes".
pub(super) const MAX_ASSERTION_SECS: u64 = 180;

/// Salesforce's descriptions for refused assertions (§3.2).
pub(super) const AUDIENCE_INVALID: &str = "audience is invalid";
pub(super) const EXPIRED: &str = "expired authorization code";
pub(super) const NOT_APPROVED: &str = "user hasn't approved this consumer";
pub(super) const INVALID_ASSERTION: &str = "invalid assertion";

/// Why a token request was refused (RFC 6749 §5.2 codes, as Salesforce uses them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TokenError {
    /// A parameter is missing, repeated or malformed.
    InvalidRequest(String),
    /// A grant other than `client_credentials`, or JWT bearer on a sandbox not set up for it.
    UnsupportedGrantType,
    /// The client id or secret is wrong.
    InvalidClient,
    /// A JWT assertion whose `iss` is not the sandbox's client id.
    InvalidClientId,
    /// A JWT assertion refused, with Salesforce's description.
    InvalidGrant(&'static str),
}

impl TokenError {
    /// The `{"error","error_description"}` body Salesforce answers with (HTTP 400).
    pub(super) fn body(&self) -> TokenErrorResponse {
        let (error, description) = match self {
            TokenError::InvalidRequest(d) => ("invalid_request", d.clone()),
            // Salesforce's own wording for this case.
            TokenError::UnsupportedGrantType => (
                "unsupported_grant_type",
                "grant type not supported".to_owned(),
            ),
            TokenError::InvalidClient => {
                ("invalid_client", "invalid client credentials".to_owned())
            }
            TokenError::InvalidClientId => {
                ("invalid_client_id", "client identifier invalid".to_owned())
            }
            TokenError::InvalidGrant(d) => ("invalid_grant", (*d).to_owned()),
        };
        TokenErrorResponse {
            error: error.to_owned(),
            error_description: Some(description),
        }
    }
}

/// Reads a token request and checks its client: `Ok` when a token should be issued.
///
/// `content_type` and `authorization` are the request's headers; `body` its bytes. Parameters are
/// read only from a form-encoded body (a JSON body has none, which is how Salesforce treats it).
/// The client authenticates with `client_id`/`client_secret` in the body or with HTTP Basic
/// (RFC 6749 §2.3.1), not both.
pub(super) fn check_token_request(
    content_type: Option<&str>,
    authorization: Option<&str>,
    body: &[u8],
    settings: &SandboxSettings,
) -> Result<(), TokenError> {
    let is_form = content_type.is_some_and(|ct| {
        ct.split(';').next().is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    });
    let mut params: Vec<(String, String)> = Vec::new();
    if is_form {
        for (name, value) in url::form_urlencoded::parse(body) {
            // RFC 6749 §3.2: parameters must not be repeated; a repeat hides which one counts.
            if params.iter().any(|(n, _)| *n == name) {
                return Err(TokenError::InvalidRequest(format!(
                    "parameter {name} is repeated"
                )));
            }
            params.push((name.into_owned(), value.into_owned()));
        }
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };

    match param("grant_type") {
        None => {
            return Err(TokenError::InvalidRequest(
                "missing required parameter: grant_type".to_owned(),
            ));
        }
        Some(CLIENT_CREDENTIALS) => {}
        Some(JWT_BEARER_GRANT) => {
            return match &settings.jwt_bearer {
                Some(jwt) => check_assertion(
                    param("assertion"),
                    &settings.client_id,
                    jwt,
                    SystemTime::now(),
                ),
                None => Err(TokenError::UnsupportedGrantType),
            };
        }
        Some(_) => return Err(TokenError::UnsupportedGrantType),
    }

    let basic = authorization.and_then(|value| {
        let (scheme, credentials) = value.trim().split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("Basic")
            .then(|| credentials.trim())
    });
    let (client_id, client_secret) = match basic {
        Some(encoded) => {
            if param("client_secret").is_some() {
                return Err(TokenError::InvalidRequest(
                    "client credentials sent both in the Authorization header and in the body"
                        .to_owned(),
                ));
            }
            let malformed =
                || TokenError::InvalidRequest("malformed Basic Authorization header".to_owned());
            let decoded = base64_decode(encoded).ok_or_else(malformed)?;
            let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
            let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
            (id.to_owned(), secret.to_owned())
        }
        None => {
            let missing = |name: &str| {
                TokenError::InvalidRequest(format!("missing required parameter: {name}"))
            };
            let id = param("client_id").ok_or_else(|| missing("client_id"))?;
            let secret = param("client_secret").ok_or_else(|| missing("client_secret"))?;
            (id.to_owned(), secret.to_owned())
        }
    };

    let id_ok = credential_matches(&client_id, &settings.client_id);
    let secret_ok = credential_matches(&client_secret, settings.client_secret.expose_secret());
    // Both compared before deciding, so timing does not tell which one was wrong.
    if id_ok & secret_ok {
        Ok(())
    } else {
        Err(TokenError::InvalidClient)
    }
}

/// Checks a JWT bearer assertion in the order Salesforce must: the connected app (`iss`) first,
/// since its certificate is what verifies the signature; then `aud`, the signature, `exp` (not
/// past, at most [`MAX_ASSERTION_SECS`] ahead) and the user (`sub`).
pub(super) fn check_assertion(
    assertion: Option<&str>,
    client_id: &str,
    jwt: &SandboxJwtBearer,
    now: SystemTime,
) -> Result<(), TokenError> {
    let assertion = assertion.ok_or_else(|| {
        TokenError::InvalidRequest("missing required parameter: assertion".to_owned())
    })?;
    let invalid = || TokenError::InvalidGrant(INVALID_ASSERTION);
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| invalid())?;
    if header.alg != Algorithm::RS256 {
        return Err(invalid());
    }
    // Read before the signature is checked only to find the app and compare plain strings; nothing
    // is granted until the signature verifies.
    let claims: serde_json::Map<String, Value> =
        jsonwebtoken::dangerous::insecure_decode_claims(assertion).map_err(|_| invalid())?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(client_id) {
        return Err(TokenError::InvalidClientId);
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => *aud == jwt.audience,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(&jwt.audience)),
        _ => false,
    };
    if !audience_ok {
        return Err(TokenError::InvalidGrant(AUDIENCE_INVALID));
    }
    let key = DecodingKey::from_rsa_pem(jwt.public_key_pem.as_bytes()).map_err(|_| invalid())?;
    // The claims are checked here, with Salesforce's wording, not by the library.
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(assertion, &key, &validation).map_err(|_| invalid())?;
    let now_secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    match claims.get("exp").and_then(Value::as_u64) {
        Some(exp) if exp > now_secs && exp <= now_secs + MAX_ASSERTION_SECS => {}
        _ => return Err(TokenError::InvalidGrant(EXPIRED)),
    }
    if text("sub") != Some(jwt.username.as_str()) {
        return Err(TokenError::InvalidGrant(NOT_APPROVED));
    }
    Ok(())
}

/// Whether `pem` is a public key (or certificate) that can verify RS256 assertions.
pub(super) fn usable_public_key(pem: &str) -> bool {
    DecodingKey::from_rsa_pem(pem.as_bytes()).is_ok()
}

/// RFC 6749 says Basic credentials are form-encoded first, but many clients skip that step; both
/// the raw and the decoded form are accepted so either kind of client works.
fn credential_matches(given: &str, expected: &str) -> bool {
    let decoded: String =
        url::form_urlencoded::parse(format!("v={}", given.replace('&', "%26")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
    constant_time_eq(given.as_bytes(), expected.as_bytes())
        | constant_time_eq(decoded.as_bytes(), expected.as_bytes())
}

/// Compares without stopping at the first difference: a secret check should not leak, even here.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh opaque access token shaped like Salesforce's (`<org id>!<opaque>`), so a proxy that
/// mishandles the `!` shows it here.
///
/// `serial` keeps tokens unique; the hashes (std's per-instance random SipHash keys over the
/// serial and the clock) keep them unpredictable enough for a sandbox.
pub(super) fn mint_access_token(org_id: &str, serial: u64, now_nanos: u128) -> String {
    let hash = || RandomState::new().hash_one((serial, now_nanos));
    format!("{org_id}!SBX{serial:x}.{:016x}{:016x}", hash(), hash())
}

/// Stand-in for Salesforce's `signature` (Base64 of HMAC-SHA256(secret, id + issued_at)): a
/// deterministic 32-byte keyed hash, Base64-encoded, with the same look. Not verifiable as an
/// HMAC; the proxy has no reason to verify it.
pub(super) fn signature(secret: &str, identity_url: &str, issued_at: &str) -> String {
    let mut bytes = Vec::with_capacity(32);
    for round in 0u8..4 {
        let mut hasher = DefaultHasher::new();
        (round, secret, identity_url, issued_at).hash(&mut hasher);
        bytes.extend_from_slice(&hasher.finish().to_be_bytes());
    }
    base64_encode(&bytes)
}

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard Base64 with padding.
pub(super) fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64_ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard Base64 (padding optional); `None` on any other character.
pub(super) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let digits = text.trim_end_matches('=').as_bytes();
    if digits.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            let value = BASE64_ALPHABET.iter().position(|a| a == c)?;
            n |= (value as u32) << (18 - 6 * i);
        }
        // 2 digits carry 1 byte, 3 carry 2, 4 carry 3.
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), encoded, "encode {plain:?}");
            assert_eq!(
                base64_decode(encoded).as_deref(),
                Some(plain.as_bytes()),
                "decode {encoded:?}"
            );
        }
        assert_eq!(base64_decode("Zm9v!"), None);
        assert_eq!(base64_decode("Z"), None);
    }

    #[test]
    fn tokens_are_unique_and_shaped_like_salesforce() {
        let a = mint_access_token("00DSANDBOX00000000", 1, 5);
        let b = mint_access_token("00DSANDBOX00000000", 1, 5);
        assert_ne!(a, b, "same serial and clock still give different tokens");
        assert!(a.starts_with("00DSANDBOX00000000!SBX1."), "{a}");
    }

    #[test]
    fn form_encoded_basic_credentials_are_decoded() {
        assert!(credential_matches("s%26cret+x", "s&cret x"));
        assert!(credential_matches("a+b", "a+b"), "raw form also accepted");
        assert!(!credential_matches("wrong", "s&cret x"));
    }
}
