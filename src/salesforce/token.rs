//! OAuth 2.0 access tokens for Salesforce: the token request (client credentials or JWT bearer),
//! the token cache, the back-off after a failure and the optional refresh ahead of expiry.
//!
//! Salesforce's token response carries no `expires_in`, so a token lives in the cache for the
//! configured lifetime, and a 401 `INVALID_SESSION_ID` evicts it early (see
//! [`TokenCache::evict`]). Concurrent requests on a cold cache share one token request: moka's
//! `try_get_with` runs a single initializer per key and hands its result to every waiter. After a
//! failed token request, requests fail at once with the same error for
//! `salesforce.token_failure_backoff_ms`, so a wrong setting does not turn every incoming request
//! into a token request. With `salesforce.token_refresh_ahead`, one background task per token
//! fetches the next one at [`REFRESH_AT`] of the lifetime while the current one is still served.
//! Tokens, secrets and assertions are [`SecretString`]s; nothing here logs them.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime};

use moka::future::Cache;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::jwt::{Claims, JWT_BEARER_GRANT};
use super::wire::{TokenErrorResponse, TokenResponse};
use crate::config::{SalesforceAuth, SalesforceSettings};
use crate::metrics::SalesforceMetrics;

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

/// Why no token could be had. Texts say which setting to check, never the secret, key or
/// assertion.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// The token endpoint refused the credentials or the grant.
    #[error("Salesforce refused the token request ({error}): {advice}")]
    Refused {
        /// The OAuth error code, e.g. `invalid_client`, `invalid_grant`.
        error: String,
        /// What to check, read from the flow and Salesforce's description.
        advice: Advice,
    },
    /// The JWT assertion could not be signed.
    #[error("the JWT bearer assertion could not be signed: check salesforce.private_key_file")]
    Signing,
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
    /// The token answer names an `instance_url` that is not https (and not on this machine): the
    /// token would cross the network in clear, so it is not used.
    #[error(
        "the Salesforce token answer names an instance_url that is not https, so the access \
         token would cross the network in clear; it was not used: check salesforce.token_url"
    )]
    InsecureInstance,
}

/// Which setting a refused token request points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advice {
    /// Client credentials refused for a reason Salesforce does not tell apart.
    ClientCredentials,
    /// Client credentials sent to a host that does not serve that flow.
    MyDomain,
    /// JWT bearer: `invalid_client` / `invalid_client_id`, the `iss` is no connected app.
    ConsumerKey,
    /// JWT bearer: "audience is invalid".
    Audience,
    /// JWT bearer: "user hasn't approved this consumer" (also an unknown username).
    UserApproval,
    /// JWT bearer: "expired authorization code", the assertion's `exp` as Salesforce's clock sees it.
    Clock,
    /// JWT bearer: the signature does not verify with the uploaded certificate.
    Key,
    /// JWT bearer: any other refusal.
    JwtSettings,
}

impl fmt::Display for Advice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Advice::ClientCredentials => {
                "check salesforce.client_id, the client secret and that the connected app allows \
                 the client credentials flow with a run-as user"
            }
            Advice::MyDomain => {
                "check salesforce.token_url: the client credentials flow is served only on the \
                 org's My Domain host"
            }
            Advice::ConsumerKey => {
                "check salesforce.client_id: it must be the connected app's consumer key"
            }
            Advice::Audience => {
                "check salesforce.audience: https://login.salesforce.com for production, \
                 https://test.salesforce.com for sandboxes, or the My Domain URL"
            }
            Advice::UserApproval => {
                "check salesforce.username and that the connected app pre-authorizes that user \
                 (admin approved users, with the user's profile or permission set assigned)"
            }
            Advice::Clock => {
                "check this machine's clock: the assertion had expired or was dated too far \
                 ahead when Salesforce read it"
            }
            Advice::Key => {
                "check salesforce.private_key_file: it must hold the key of the certificate \
                 uploaded to the connected app"
            }
            Advice::JwtSettings => {
                "check salesforce.client_id, salesforce.username, salesforce.audience and \
                 salesforce.private_key_file"
            }
        })
    }
}

/// What a refusal points at, from the flow, the error code and Salesforce's description (which is
/// read, never repeated: it may quote the request).
fn advice(auth: &SalesforceAuth, error: &str, description: &str) -> Advice {
    let description = description.to_ascii_lowercase();
    match auth {
        SalesforceAuth::ClientCredentials { .. } => {
            if description.contains("not supported on this domain") {
                Advice::MyDomain
            } else {
                Advice::ClientCredentials
            }
        }
        SalesforceAuth::JwtBearer(_) => match error {
            "invalid_client" | "invalid_client_id" => Advice::ConsumerKey,
            _ if description.contains("audience") => Advice::Audience,
            _ if description.contains("approved") => Advice::UserApproval,
            _ if description.contains("expired") => Advice::Clock,
            _ if description.contains("assertion") || description.contains("signature") => {
                Advice::Key
            }
            _ => Advice::JwtSettings,
        },
    }
}

/// The fraction of the token lifetime after which `token_refresh_ahead` fetches the next token:
/// late enough to cost few token requests, early enough that a slow or failed refresh can be
/// retried before the current token runs out.
pub const REFRESH_AT: f64 = 0.8;

/// The shortest wait before a failed refresh ahead is tried again, whatever the back-off.
const MIN_REFRESH_RETRY: Duration = Duration::from_secs(1);

/// The token cache of one Salesforce org. Clones share it.
#[derive(Clone)]
pub struct TokenCache {
    inner: Arc<Inner>,
}

struct Inner {
    cache: Cache<(), Arc<AccessToken>>,
    http: reqwest::Client,
    settings: Arc<SalesforceSettings>,
    /// When the last token request failed and with what, until one succeeds.
    last_failure: Mutex<Option<(Instant, TokenError)>>,
    /// Where token requests are counted.
    metrics: SalesforceMetrics,
}

impl TokenCache {
    /// An empty cache whose entries live for the configured token lifetime; token requests go
    /// through `http`.
    pub fn new(http: reqwest::Client, settings: Arc<SalesforceSettings>) -> Self {
        TokenCache::with_metrics(http, settings, SalesforceMetrics::disabled())
    }

    /// A cache like [`TokenCache::new`] that counts its token requests in `metrics`.
    pub fn with_metrics(
        http: reqwest::Client,
        settings: Arc<SalesforceSettings>,
        metrics: SalesforceMetrics,
    ) -> Self {
        TokenCache {
            inner: Arc::new(Inner {
                cache: Cache::builder()
                    .max_capacity(1)
                    .time_to_live(settings.token_lifetime)
                    .build(),
                http,
                settings,
                last_failure: Mutex::new(None),
                metrics,
            }),
        }
    }

    /// The cached token, or a new one; concurrent callers on a cold cache share one request.
    ///
    /// # Errors
    /// A [`TokenError`] when the token request fails; nothing is cached then. Within the back-off
    /// after a failure, the same error at once without a request; after it, the next call asks
    /// again.
    pub async fn get(&self) -> Result<Arc<AccessToken>, TokenError> {
        let inner = &self.inner;
        if let Some(token) = inner.cache.get(&()).await {
            return Ok(token);
        }
        if let Some(error) = inner.recent_failure() {
            tracing::debug!("a token request failed moments ago; answering its error again");
            return Err(error);
        }
        inner
            .cache
            .try_get_with((), async {
                let fetched = inner.fetch().await;
                inner.remember(&fetched);
                let token = Arc::new(fetched?);
                if inner.settings.token_refresh_ahead {
                    // Its own span, not the request's: the task outlives the request that
                    // started it, and its lines belong to no request.
                    let span = tracing::info_span!(parent: None, "salesforce.token_refresh_ahead");
                    span.follows_from(tracing::Span::current());
                    tokio::spawn(tracing::Instrument::instrument(
                        refresh_ahead(
                            Arc::downgrade(inner),
                            Arc::downgrade(&token),
                            Instant::now(),
                        ),
                        span,
                    ));
                }
                Ok::<_, TokenError>(token)
            })
            .await
            .map_err(|e| (*e).clone())
    }

    /// Evicts `used` after Salesforce refused it, unless another request already replaced it.
    pub async fn evict(&self, used: &Arc<AccessToken>) {
        let cache = &self.inner.cache;
        if let Some(current) = cache.get(&()).await
            && Arc::ptr_eq(&current, used)
        {
            cache.invalidate(&()).await;
        }
    }
}

impl Inner {
    /// One token request, counted.
    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        let started = Instant::now();
        let fetched = fetch(&self.http, &self.settings).await;
        self.metrics.token_fetch(fetched.is_ok(), started.elapsed());
        fetched
    }

    /// The last failure's error while its back-off lasts.
    fn recent_failure(&self) -> Option<TokenError> {
        let backoff = self.settings.token_failure_backoff;
        let last = self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        last.as_ref()
            .filter(|(at, _)| at.elapsed() < backoff)
            .map(|(_, error)| error.clone())
    }

    /// Starts the back-off after a failure; ends it after a success.
    fn remember(&self, fetched: &Result<AccessToken, TokenError>) {
        let mut last = self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *last = fetched
            .as_ref()
            .err()
            .map(|error| (Instant::now(), error.clone()));
    }
}

/// Fetches the token after `token` at [`REFRESH_AT`] of its lifetime and puts it in the cache,
/// then does the same for each new token. `token` is still served meanwhile. A failed refresh is
/// retried after the back-off while `token` lives; once it has expired, the next request fetches
/// in the foreground (and starts a new task). Only the cached token's task acts: after an
/// eviction or once the cache is gone, the task ends.
async fn refresh_ahead(inner: Weak<Inner>, mut token: Weak<AccessToken>, mut obtained: Instant) {
    let Some((lifetime, retry)) = inner.upgrade().map(|i| {
        (
            i.settings.token_lifetime,
            i.settings.token_failure_backoff.max(MIN_REFRESH_RETRY),
        )
    }) else {
        return;
    };
    let mut due = obtained + lifetime.mul_f64(REFRESH_AT);
    loop {
        tokio::time::sleep_until(due.into()).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        match inner.cache.get(&()).await {
            Some(current) if std::ptr::eq(Arc::as_ptr(&current), token.as_ptr()) => {}
            _ => return,
        }
        match inner.fetch().await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                token = Arc::downgrade(&fresh);
                obtained = Instant::now();
                inner.cache.insert((), fresh).await;
                tracing::info!("refreshed the Salesforce access token ahead of its expiry");
                due = obtained + lifetime.mul_f64(REFRESH_AT);
            }
            Err(error) => {
                tracing::warn!(%error, "refreshing the Salesforce access token ahead of its expiry failed; the current token is still used");
                due = Instant::now() + retry;
                if due >= obtained + lifetime {
                    return;
                }
            }
        }
    }
}

/// One token request with the configured flow.
async fn fetch(
    http: &reqwest::Client,
    settings: &SalesforceSettings,
) -> Result<AccessToken, TokenError> {
    tracing::debug!(
        flow = settings.auth.name(),
        "requesting a Salesforce access token"
    );
    let assertion: SecretString;
    let form: Vec<(&str, &str)> = match &settings.auth {
        SalesforceAuth::ClientCredentials { client_secret } => vec![
            ("grant_type", "client_credentials"),
            ("client_id", settings.client_id.as_str()),
            ("client_secret", client_secret.expose_secret()),
        ],
        SalesforceAuth::JwtBearer(jwt) => {
            let claims = Claims::new(
                &settings.client_id,
                &jwt.username,
                &jwt.audience,
                SystemTime::now(),
            );
            assertion = jwt
                .private_key
                .sign(&claims)
                .map_err(|_| TokenError::Signing)?;
            // The consumer key travels inside the assertion as `iss`: no client_id, no secret.
            vec![
                ("grant_type", JWT_BEARER_GRANT),
                ("assertion", assertion.expose_secret()),
            ]
        }
    };
    let response = http
        .post(settings.token_url.clone())
        .form(&form)
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
        let instance_url =
            Url::parse(&token.instance_url).map_err(|_| TokenError::BadResponse {
                status: status.as_u16(),
            })?;
        // Every API call carries the token to this host: never in clear across a network.
        if !crate::channel::is_private_channel(&instance_url) {
            return Err(TokenError::InsecureInstance);
        }
        tracing::info!(
            flow = settings.auth.name(),
            "obtained a Salesforce access token"
        );
        return Ok(AccessToken {
            value: SecretString::from(token.access_token),
            instance_url,
        });
    }
    match serde_json::from_slice::<TokenErrorResponse>(&body) {
        Ok(e) => {
            // The OAuth error code is safe to log; the description may echo the request.
            let error = sanitize_code(&e.error);
            let advice = advice(
                &settings.auth,
                &error,
                e.error_description.as_deref().unwrap_or_default(),
            );
            tracing::warn!(oauth_error = %error, ?advice, http_status = status.as_u16(), "Salesforce refused the token request");
            Err(TokenError::Refused { error, advice })
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

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use secrecy::SecretSlice;

    use super::*;
    use crate::config::{DEFAULT_AUDIENCE, JwtBearerSettings};
    use crate::salesforce::jwt::PrivateKey;
    use crate::salesforce::jwt::test_keys::{self, KeyPair};
    use crate::sandbox::{DEFAULT_CLIENT_ID, Sandbox, SandboxJwtBearer, SandboxSettings};

    const USER: &str = "integration@example.com";

    /// A sandbox trusting the test key for [`USER`], its tokens living `lifetime`.
    fn sandbox(lifetime: Duration) -> Sandbox {
        Sandbox::start(
            TcpListener::bind("127.0.0.1:0").unwrap(),
            SandboxSettings {
                token_lifetime: lifetime,
                jwt_bearer: Some(SandboxJwtBearer::new(
                    &test_keys::trusted().public_pem,
                    USER,
                )),
                ..SandboxSettings::default()
            },
        )
        .unwrap()
    }

    /// JWT bearer settings for `sandbox`, signing with `key`.
    fn jwt_settings(sandbox: &Sandbox, key: &KeyPair) -> SalesforceSettings {
        let mut s = SalesforceSettings::with_defaults(
            sandbox.token_url().parse().unwrap(),
            DEFAULT_CLIENT_ID,
            SecretString::from("unused"),
        );
        let pem = SecretSlice::from(key.private_pem.as_bytes().to_vec());
        s.auth = SalesforceAuth::JwtBearer(JwtBearerSettings {
            username: USER.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            private_key: PrivateKey::from_pem(&pem, "test key").unwrap(),
        });
        s
    }

    fn cache(settings: SalesforceSettings) -> TokenCache {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        TokenCache::new(http, Arc::new(settings))
    }

    #[test]
    fn each_documented_refusal_points_at_its_setting() {
        let secret = SalesforceAuth::ClientCredentials {
            client_secret: SecretString::from("x"),
        };
        let jwt = SalesforceAuth::JwtBearer(JwtBearerSettings {
            username: USER.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            private_key: PrivateKey::from_pem(
                &SecretSlice::from(test_keys::trusted().private_pem.as_bytes().to_vec()),
                "k",
            )
            .unwrap(),
        });
        let cases = [
            (
                &secret,
                "invalid_client",
                "invalid client credentials",
                Advice::ClientCredentials,
                "salesforce.client_id",
            ),
            (
                &secret,
                "invalid_grant",
                "request not supported on this domain",
                Advice::MyDomain,
                "salesforce.token_url",
            ),
            (
                &jwt,
                "invalid_client_id",
                "client identifier invalid",
                Advice::ConsumerKey,
                "salesforce.client_id",
            ),
            (
                &jwt,
                "invalid_client",
                "invalid client credentials",
                Advice::ConsumerKey,
                "salesforce.client_id",
            ),
            (
                &jwt,
                "invalid_grant",
                "audience is invalid",
                Advice::Audience,
                "salesforce.audience",
            ),
            (
                &jwt,
                "invalid_grant",
                "user hasn't approved this consumer",
                Advice::UserApproval,
                "salesforce.username",
            ),
            (
                &jwt,
                "invalid_grant",
                "expired authorization code",
                Advice::Clock,
                "clock",
            ),
            (
                &jwt,
                "invalid_grant",
                "invalid assertion",
                Advice::Key,
                "salesforce.private_key_file",
            ),
            (
                &jwt,
                "inactive_user",
                "",
                Advice::JwtSettings,
                "salesforce.username",
            ),
        ];
        for (auth, error, description, expected, setting) in cases {
            let got = advice(auth, error, description);
            assert_eq!(got, expected, "{error}: {description}");
            let text = TokenError::Refused {
                error: error.to_owned(),
                advice: got,
            }
            .to_string();
            assert!(text.contains(setting), "{text}");
            assert!(text.contains(error), "{text}");
        }
    }

    #[tokio::test]
    async fn a_token_for_an_instance_url_in_clear_is_not_used() {
        use wiremock::matchers::method;
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "access_token": "00Dxx!secret-token",
                "instance_url": "http://na1.salesforce.example",
                "id": "https://login.salesforce.com/id/00Dxx/005xx",
                "token_type": "Bearer",
                "scope": "api"
            })))
            .mount(&server)
            .await;
        let settings = SalesforceSettings::with_defaults(
            format!("{}/services/oauth2/token", server.uri())
                .parse()
                .unwrap(),
            DEFAULT_CLIENT_ID,
            SecretString::from("s"),
        );
        let error = cache(settings).get().await.unwrap_err();
        assert!(matches!(error, TokenError::InsecureInstance), "{error:?}");
        let text = error.to_string();
        assert!(text.contains("not https"), "{text}");
        assert!(!text.contains("secret-token"), "{text}");
    }

    #[tokio::test]
    async fn a_jwt_bearer_token_is_fetched_once_and_reused() {
        let sandbox = sandbox(Duration::from_secs(3600));
        let tokens = cache(jwt_settings(&sandbox, test_keys::trusted()));
        let first = tokens.get().await.unwrap();
        let second = tokens.get().await.unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(
            first.instance_url.as_str(),
            format!("{}/", sandbox.base_url())
        );
        assert_eq!(sandbox.token_requests(), 1);
        sandbox.stop().await;
    }

    #[tokio::test]
    async fn a_failed_token_request_is_not_repeated_within_the_back_off() {
        let sandbox = sandbox(Duration::from_secs(3600));
        let mut settings = jwt_settings(&sandbox, test_keys::stranger());
        settings.token_failure_backoff = Duration::from_secs(600);
        let tokens = cache(settings);
        for _ in 0..5 {
            match tokens.get().await {
                Err(TokenError::Refused { error, advice }) => {
                    assert_eq!(error, "invalid_grant");
                    assert_eq!(advice, Advice::Key);
                }
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
        assert_eq!(
            sandbox.token_requests(),
            1,
            "one request, four fast failures"
        );
        sandbox.stop().await;
    }

    #[tokio::test]
    async fn without_a_back_off_every_call_asks_again() {
        let sandbox = sandbox(Duration::from_secs(3600));
        let mut settings = jwt_settings(&sandbox, test_keys::stranger());
        settings.token_failure_backoff = Duration::ZERO;
        let tokens = cache(settings);
        for _ in 0..3 {
            assert!(tokens.get().await.is_err());
        }
        assert_eq!(sandbox.token_requests(), 3);
        sandbox.stop().await;
    }

    #[tokio::test]
    async fn after_the_back_off_the_next_call_asks_again() {
        let sandbox = sandbox(Duration::from_secs(3600));
        let mut settings = jwt_settings(&sandbox, test_keys::stranger());
        settings.token_failure_backoff = Duration::from_millis(200);
        let tokens = cache(settings);
        let started = Instant::now();
        assert!(tokens.get().await.is_err());
        assert_eq!(sandbox.token_requests(), 1);
        // Calls fail fast until the back-off is over; then one asks again.
        let deadline = Instant::now() + Duration::from_secs(10);
        while sandbox.token_requests() < 2 {
            assert!(Instant::now() < deadline, "no second token request");
            assert!(tokens.get().await.is_err());
            // Polling interval, not a stand-in for the signal checked above.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(sandbox.token_requests(), 2);
        sandbox.stop().await;
    }

    #[tokio::test]
    async fn refresh_ahead_replaces_the_token_before_it_expires() {
        let lifetime = Duration::from_secs(2);
        let sandbox = sandbox(lifetime);
        let mut settings = jwt_settings(&sandbox, test_keys::trusted());
        settings.token_lifetime = lifetime;
        settings.token_refresh_ahead = true;
        let tokens = cache(settings);
        let first = tokens.get().await.unwrap();
        let obtained = Instant::now();
        // Nothing calls the token endpoint but the background task: wait for its request…
        let deadline = obtained + Duration::from_secs(10);
        let second = loop {
            let current = tokens.get().await.unwrap();
            if !Arc::ptr_eq(&current, &first) {
                break current;
            }
            assert!(Instant::now() < deadline, "no refresh ahead");
            // Polling interval, not a stand-in for the signal checked above.
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        // …which came before the first token's lifetime was over, and was the only one.
        assert!(obtained.elapsed() < lifetime, "refreshed only after expiry");
        assert_ne!(first.value.expose_secret(), second.value.expose_secret());
        assert_eq!(sandbox.token_requests(), 2, "get() itself never fetched");
        sandbox.stop().await;
    }
}
