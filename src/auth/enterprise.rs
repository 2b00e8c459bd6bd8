//! Bearer JWTs from the organisation's own authorization server (`[[auth.issuers]]`): verified
//! against its JWKS (a file, or a URL refetched on an unknown `kid`), with its issuer, the
//! proxy's audience and the expiry checked. The client the token names (`client_id`, else `azp`,
//! or the configured claim) must be a configured client bound to that issuer; its rights are the
//! token's scopes (`scope` or `scp`) cut down to the client's.

use jsonwebtoken::Validation;
use serde_json::{Map, Value};

use super::jwks::{KeyError, KeyUse, RemoteJwks, VerifyingKey};
use super::scope::Scopes;
use super::smart::CLOCK_SKEW_SECS;
use super::{AuthFailure, IssuerSettings, JwksSource, Registry};

/// One issuer as the server runs it.
pub struct Issuer {
    settings: IssuerSettings,
    remote: Option<RemoteJwks>,
}

impl Issuer {
    /// An issuer; a JWKS URL is not fetched until a token needs it.
    pub fn new(settings: IssuerSettings, http: reqwest::Client) -> Issuer {
        let remote = match &settings.jwks {
            JwksSource::File(_) => None,
            JwksSource::Url(url) => Some(RemoteJwks::new(
                url.clone(),
                http,
                settings.jwks_refetch_min,
            )),
        };
        Issuer { settings, remote }
    }

    /// Its settings.
    pub fn settings(&self) -> &IssuerSettings {
        &self.settings
    }

    /// How many times its JWKS URL was fetched (0 for a file).
    pub fn fetches(&self) -> u64 {
        self.remote.as_ref().map_or(0, RemoteJwks::fetches)
    }

    async fn key(&self, kid: &str) -> Result<VerifyingKey, KeyError> {
        match (&self.settings.jwks, &self.remote) {
            (_, Some(remote)) => remote.key(kid).await,
            (JwksSource::File(keys), None) => keys.find(kid).cloned().ok_or(KeyError::UnknownKid),
            (JwksSource::Url(_), None) => Err(KeyError::Unavailable),
        }
    }
}

/// Verifies an enterprise token; the client id it names and the scopes it carries.
///
/// # Errors
/// [`AuthFailure::Invalid`] for any token that does not verify or names no client bound to its
/// issuer; [`AuthFailure::Unavailable`] when the issuer's keys cannot be fetched.
pub async fn verify(registry: &Registry, token: &str) -> Result<(String, Scopes), AuthFailure> {
    let refuse = |reason: &str| {
        // The reason, never the token.
        tracing::info!(reason, "bearer token refused");
        AuthFailure::Invalid
    };
    let header = jsonwebtoken::decode_header(token).map_err(|_| refuse("not a JWT"))?;
    if !KeyUse::AccessToken.accepts(header.alg) {
        return Err(refuse("algorithm not accepted"));
    }
    let kid = header.kid.as_deref().ok_or_else(|| refuse("no kid"))?;
    let unverified: Value = jsonwebtoken::dangerous::insecure_decode_claims(token)
        .map_err(|_| refuse("claims unreadable"))?;
    let iss = unverified
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| refuse("no iss"))?;
    let issuer = registry
        .issuers
        .iter()
        .find(|i| i.settings.issuer == iss)
        .ok_or_else(|| refuse("unknown issuer"))?;
    let key = match issuer.key(kid).await {
        Ok(key) => key,
        Err(KeyError::UnknownKid) => return Err(refuse("unknown kid")),
        Err(KeyError::Unavailable) => return Err(AuthFailure::Unavailable),
    };
    let decoding = key
        .for_algorithm(header.alg)
        .ok_or_else(|| refuse("key cannot verify this alg"))?;
    let mut validation = Validation::new(header.alg);
    validation.leeway = CLOCK_SKEW_SECS;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.set_issuer(&[&issuer.settings.issuer]);
    validation.set_audience(&[&issuer.settings.audience]);
    let claims = jsonwebtoken::decode::<Map<String, Value>>(token, decoding, &validation)
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            refuse(match e.kind() {
                ErrorKind::ExpiredSignature => "expired",
                ErrorKind::InvalidAudience => "wrong audience",
                ErrorKind::InvalidIssuer => "wrong issuer",
                ErrorKind::InvalidSignature => "bad signature",
                ErrorKind::ImmatureSignature => "not valid yet",
                _ => "does not verify",
            })
        })?
        .claims;
    let client_id = match &issuer.settings.client_claim {
        Some(claim) => claims.get(claim).and_then(Value::as_str),
        None => claims
            .get("client_id")
            .and_then(Value::as_str)
            .or_else(|| claims.get("azp").and_then(Value::as_str)),
    }
    .ok_or_else(|| refuse("no client claim"))?;
    // Deny by default: the client must be configured and allowed in through this issuer.
    registry
        .client(client_id)
        .filter(|c| c.issuer.as_deref() == Some(iss))
        .ok_or_else(|| refuse("client not configured for this issuer"))?;
    Ok((client_id.to_owned(), token_scopes(&claims)))
}

/// `scope` (space-separated) and `scp` (an array, or a space-separated string as some servers
/// send it).
fn token_scopes(claims: &Map<String, Value>) -> Scopes {
    let mut words: Vec<String> = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(s)) => words.push(s.clone()),
            Some(Value::Array(items)) => {
                words.extend(items.iter().filter_map(Value::as_str).map(str::to_owned))
            }
            _ => {}
        }
    }
    Scopes::parse_lenient(&words.join(" "))
}
