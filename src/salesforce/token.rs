//! OAuth 2.0 access tokens for Salesforce: the client-credentials request and the token cache.
//!
//! Salesforce's token response carries no `expires_in`, so a token lives in the cache for the
//! configured lifetime, and a 401 `INVALID_SESSION_ID` evicts it early (see
//! [`TokenCache::evict`]). Concurrent requests on a cold cache share one token request: moka's
//! `try_get_with` runs a single initializer per key and hands its result to every waiter.
//! Tokens and secrets are [`SecretString`]s; nothing here logs them.

use std::fmt;
use std::sync::Arc;

use moka::future::Cache;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::wire::{TokenErrorResponse, TokenResponse};
use crate::config::SalesforceSettings;

/// A bearer token and the API base it belongs to.
pub struct AccessToken {
    /// The bearer token.
    pub value: SecretString,
    /// The org's API base from `instance_url`.
    pub instance_url: Url,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"[redacted]")
            .field("instance_url", &self.instance_url.as_str())
            .finish()
    }
}

/// Why no token could be had. Texts say which setting to check, never the secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// The token endpoint refused the credentials or the grant.
    #[error(
        "Salesforce refused the token request ({error}): check salesforce.client_id, the client \
         secret and that the connected app allows the client credentials flow with a run-as user"
    )]
    Refused {
        /// The OAuth error code, e.g. `invalid_client`, `invalid_grant`.
        error: String,
    },
    /// The token endpoint could not be reached.
    #[error("the Salesforce token endpoint could not be reached: check salesforce.token_url")]
    Unreachable,
    /// The token endpoint took too long.
    #[error("the Salesforce token endpoint did not answer in time")]
    Timeout,
    /// The token endpoint answered something that is not a token.
    #[error(
        "the Salesforce token endpoint answered HTTP {status} without a usable token: check \
         salesforce.token_url"
    )]
    BadResponse {
        /// The HTTP status it answered with.
        status: u16,
    },
}

/// The token cache of one Salesforce org.
#[derive(Clone)]
pub struct TokenCache {
    cache: Cache<(), Arc<AccessToken>>,
}

impl TokenCache {
    /// An empty cache whose entries live for the configured token lifetime.
    pub fn new(settings: &SalesforceSettings) -> Self {
        TokenCache {
            cache: Cache::builder()
                .max_capacity(1)
                .time_to_live(settings.token_lifetime)
                .build(),
        }
    }

    /// The cached token, or a new one; concurrent callers on a cold cache share one request.
    ///
    /// # Errors
    /// A [`TokenError`] when the token request fails; nothing is cached then, so the next call
    /// tries again.
    pub async fn get(
        &self,
        http: &reqwest::Client,
        settings: &SalesforceSettings,
    ) -> Result<Arc<AccessToken>, TokenError> {
        self.cache
            .try_get_with((), async { fetch(http, settings).await.map(Arc::new) })
            .await
            .map_err(|e| (*e).clone())
    }

    /// Evicts `used` after Salesforce refused it, unless another request already replaced it.
    pub async fn evict(&self, used: &Arc<AccessToken>) {
        if let Some(current) = self.cache.get(&()).await
            && Arc::ptr_eq(&current, used)
        {
            self.cache.invalidate(&()).await;
        }
    }
}

/// The OAuth 2.0 client-credentials request.
async fn fetch(
    http: &reqwest::Client,
    settings: &SalesforceSettings,
) -> Result<AccessToken, TokenError> {
    tracing::debug!("requesting a Salesforce access token");
    let response = http
        .post(settings.token_url.clone())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", settings.client_id.as_str()),
            ("client_secret", settings.client_secret.expose_secret()),
        ])
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                TokenError::Timeout
            } else {
                TokenError::Unreachable
            }
        })?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| {
        if e.is_timeout() {
            TokenError::Timeout
        } else {
            TokenError::Unreachable
        }
    })?;
    if status.is_success() {
        let token: TokenResponse =
            serde_json::from_slice(&body).map_err(|_| TokenError::BadResponse {
                status: status.as_u16(),
            })?;
        let instance_url = Url::parse(&token.instance_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or(TokenError::BadResponse {
                status: status.as_u16(),
            })?;
        tracing::info!("obtained a Salesforce access token");
        return Ok(AccessToken {
            value: SecretString::from(token.access_token),
            instance_url,
        });
    }
    match serde_json::from_slice::<TokenErrorResponse>(&body) {
        Ok(e) => {
            // The OAuth error code is safe to log; the description may echo the client id.
            let error = sanitize_code(&e.error);
            tracing::warn!(oauth_error = %error, http_status = status.as_u16(), "Salesforce refused the token request");
            Err(TokenError::Refused { error })
        }
        Err(_) => {
            tracing::warn!(
                http_status = status.as_u16(),
                "Salesforce token endpoint answered without a token"
            );
            Err(TokenError::BadResponse {
                status: status.as_u16(),
            })
        }
    }
}

/// OAuth error codes are short ASCII words; anything else is not echoed.
fn sanitize_code(code: &str) -> String {
    if code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        code.to_owned()
    } else {
        "unrecognised error".to_owned()
    }
}
