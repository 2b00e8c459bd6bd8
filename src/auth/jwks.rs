//! Public keys for verifying JWTs: a JWKS read into keys ready for `jsonwebtoken`, each tied to
//! the algorithms its type allows, and a JWKS fetched from a URL that is refetched when a token
//! names a `kid` it does not hold, at most once per configured interval.
//!
//! A key never decides its own algorithm beyond its type: an RSA key verifies only RS*/PS*, an
//! EC key only the ES* of its curve, and HMAC (`oct`) keys or `alg: none` are never accepted, so a
//! token cannot pick a weaker way to be checked.

use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use url::Url;

/// The largest JWKS document accepted, from a file or a URL.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// How long a JWKS URL may take to answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Which algorithms the keys of a set may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// SMART Backend Services client assertions: RS384 and ES384 only.
    ClientAssertion,
    /// Tokens from an enterprise authorization server: RS256/384/512, PS256/384/512, ES256, ES384.
    AccessToken,
}

impl KeyUse {
    fn algorithms(self) -> &'static [Algorithm] {
        match self {
            KeyUse::ClientAssertion => &[Algorithm::RS384, Algorithm::ES384],
            KeyUse::AccessToken => &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
                Algorithm::ES256,
                Algorithm::ES384,
            ],
        }
    }

    /// Whether a token header's `alg` is one this use accepts at all.
    pub fn accepts(self, algorithm: Algorithm) -> bool {
        self.algorithms().contains(&algorithm)
    }
}

/// One public key with the algorithms it may verify.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: String,
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

impl VerifyingKey {
    /// The decoding key, if it may verify `algorithm`.
    pub fn for_algorithm(&self, algorithm: Algorithm) -> Option<&DecodingKey> {
        self.algorithms.contains(&algorithm).then_some(&self.key)
    }
}

/// The keys of one JWKS, by `kid`.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("KeySet").field("kids", &kids).finish()
    }
}

impl KeySet {
    /// Reads a JWKS document. Every key must have a `kid` (unique), a type fit for `key_use`, and
    /// no private part.
    ///
    /// # Errors
    /// Why the document cannot be used, without echoing key material.
    pub fn parse(document: &[u8], key_use: KeyUse) -> Result<KeySet, String> {
        if document.len() > MAX_JWKS_BYTES {
            return Err(format!("the JWKS is larger than {MAX_JWKS_BYTES} bytes"));
        }
        let raw: serde_json::Value = serde_json::from_slice(document)
            .map_err(|_| "is not JSON (a JWKS: {\"keys\": [...]})".to_owned())?;
        let raw_keys = raw
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or("is not a JWKS: it needs a \"keys\" array")?;
        // A private key in a JWKS given to the proxy means it was copied to the wrong place: refuse
        // it, so the mistake is noticed and the key rotated.
        if raw_keys.iter().any(|k| {
            ["d", "p", "q", "dp", "dq", "qi", "k"]
                .iter()
                .any(|f| k.get(f).is_some())
        }) {
            return Err(
                "holds private or symmetric key material; give the proxy only public keys"
                    .to_owned(),
            );
        }
        let set: JwkSet = serde_json::from_value(raw.clone())
            .map_err(|_| "has a key that cannot be read as a JWK".to_owned())?;
        let mut keys: Vec<VerifyingKey> = Vec::with_capacity(set.keys.len());
        for (index, jwk) in set.keys.iter().enumerate() {
            let key = verifying_key(jwk, key_use).map_err(|e| format!("key {index}: {e}"))?;
            if keys.iter().any(|k| k.kid == key.kid) {
                return Err(format!("key {index}: kid is used by another key"));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err("holds no keys".to_owned());
        }
        Ok(KeySet { keys })
    }

    /// The key with this `kid`.
    pub fn find(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

fn verifying_key(jwk: &Jwk, key_use: KeyUse) -> Result<VerifyingKey, String> {
    let kid = jwk
        .common
        .key_id
        .clone()
        .filter(|k| !k.is_empty())
        .ok_or("has no kid")?;
    let by_type: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return Err("has an unsupported elliptic curve (use P-256 or P-384)".to_owned()),
        },
        _ => return Err("has an unsupported key type (use RSA or EC)".to_owned()),
    };
    let mut algorithms: Vec<Algorithm> = by_type
        .into_iter()
        .filter(|a| key_use.accepts(*a))
        .collect();
    // A key that names its algorithm verifies only that one.
    if let Some(declared) = jwk.common.key_algorithm {
        let declared = Algorithm::try_from(declared).ok();
        algorithms.retain(|a| Some(*a) == declared);
    }
    if algorithms.is_empty() {
        return Err(match key_use {
            KeyUse::ClientAssertion => {
                "cannot verify RS384 or ES384 (use an RSA key or an EC P-384 key)".to_owned()
            }
            KeyUse::AccessToken => "cannot verify any accepted algorithm".to_owned(),
        });
    }
    let key =
        DecodingKey::from_jwk(jwk).map_err(|_| "cannot be read as a public key".to_owned())?;
    Ok(VerifyingKey {
        kid,
        algorithms,
        key,
    })
}

/// Why no key could be found for a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The set holds no key with that `kid` (after a refetch, when one was allowed).
    UnknownKid,
    /// The JWKS URL could not be fetched or read.
    Unavailable,
}

/// A JWKS served at a URL: fetched on first use, refetched when a token names an unknown `kid`
/// but never more often than `min_interval`, so a flood of made-up `kid`s costs the authorization
/// server at most one request per interval.
pub struct RemoteJwks {
    url: Url,
    http: reqwest::Client,
    min_interval: Duration,
    keys: RwLock<Option<KeySet>>,
    // Held across a fetch so that concurrent misses share it.
    fetching: tokio::sync::Mutex<Option<Instant>>,
    fetches: AtomicU64,
}

impl RemoteJwks {
    /// A JWKS at `url`, fetched through `http`.
    pub fn new(url: Url, http: reqwest::Client, min_interval: Duration) -> RemoteJwks {
        RemoteJwks {
            url,
            http,
            min_interval,
            keys: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(None),
            fetches: AtomicU64::new(0),
        }
    }

    /// How many times the URL was fetched.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn cached(&self, kid: &str) -> Option<VerifyingKey> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.as_ref().and_then(|k| k.find(kid)).cloned()
    }

    /// The key with this `kid`, refetching the set once if it is unknown and the last fetch is
    /// older than the minimum interval.
    ///
    /// # Errors
    /// [`KeyError::UnknownKid`] or [`KeyError::Unavailable`].
    pub async fn key(&self, kid: &str) -> Result<VerifyingKey, KeyError> {
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        let mut last_fetch = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        if last_fetch.is_some_and(|at| at.elapsed() < self.min_interval) {
            return Err(KeyError::UnknownKid);
        }
        *last_fetch = Some(Instant::now());
        self.fetches.fetch_add(1, Ordering::Relaxed);
        match self.fetch().await {
            Ok(set) => {
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Some(set);
            }
            Err(reason) => {
                tracing::warn!(jwks_url = %self.url, reason, "fetching the issuer's JWKS failed");
                // Keep the keys already known: a failing refetch must not lock out every client.
                if self
                    .keys
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_none()
                {
                    return Err(KeyError::Unavailable);
                }
            }
        }
        self.cached(kid).ok_or(KeyError::UnknownKid)
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let mut response = self
            .http
            .get(self.url.clone())
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("request failed: {}", without_url(&e)))?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading failed: {}", without_url(&e)))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_JWKS_BYTES {
                return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
            }
        }
        KeySet::parse(&body, KeyUse::AccessToken)
    }
}

fn without_url(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "transport error".to_owned()
    }
}
