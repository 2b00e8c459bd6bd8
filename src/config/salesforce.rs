//! `[salesforce]` (of the file or of a tenant): the connection settings, the model as written,
//! and their checks.

use super::*;

/// The Salesforce connection.
#[derive(Debug, Clone)]
pub struct SalesforceSettings {
    /// The OAuth token endpoint (the org's My Domain host for client credentials).
    pub token_url: Url,
    /// API version, e.g. `65.0` (the Appointment Management API exists from 65.0 on).
    pub api_version: String,
    /// The connected app's consumer key.
    pub client_id: String,
    /// How the proxy proves who it is, with the credential that flow needs.
    pub auth: SalesforceAuth,
    /// How long a token is used before a new one is fetched (Salesforce sends no `expires_in`).
    pub token_lifetime: Duration,
    /// After a failed token request, how long requests fail at once with the same error instead of
    /// asking the token endpoint again (zero: every request asks).
    pub token_failure_backoff: Duration,
    /// Fetch a new token in the background once the current one has lived
    /// `salesforce::token::REFRESH_AT` of its lifetime, so no request waits for one.
    pub token_refresh_ahead: bool,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for a whole Salesforce call.
    pub request_timeout: Duration,
    /// The first back-off after Salesforce throttles without a `Retry-After` of its own: for that
    /// long every request to the org is answered 503 without calling it. Doubles for each further
    /// throttle in a row (see `salesforce::limits`).
    pub throttle_retry_after: Duration,
    /// The longest back-off, however many throttles in a row or whatever Salesforce asks.
    pub throttle_max_backoff: Duration,
    /// The most calls to the org in flight at once (Salesforce allows 25 long-running requests
    /// per production org, 5 in Developer Edition).
    pub max_concurrent_requests: usize,
    /// How long a request waits for a place among those calls before it is answered 503.
    pub queue_timeout: Duration,
}

/// The OAuth 2.0 flow the proxy uses, with its credential.
#[derive(Debug, Clone)]
pub enum SalesforceAuth {
    /// `client_credentials`: the connected app's consumer secret; Salesforce answers with a token
    /// for the app's run-as user. Only the org's My Domain host accepts it.
    ClientCredentials {
        /// The consumer secret.
        client_secret: SecretString,
    },
    /// `urn:ietf:params:oauth:grant-type:jwt-bearer`: an assertion signed with a private key.
    JwtBearer(JwtBearerSettings),
}

/// What the JWT bearer flow needs besides the consumer key.
#[derive(Debug, Clone)]
pub struct JwtBearerSettings {
    /// The Salesforce username the tokens are for (`sub`).
    pub username: String,
    /// The assertion's `aud`: `https://login.salesforce.com`, `https://test.salesforce.com` for
    /// sandboxes, or the My Domain URL.
    pub audience: String,
    /// The key whose certificate is uploaded to the connected app.
    pub private_key: PrivateKey,
}

impl SalesforceAuth {
    /// The `salesforce.auth` value naming this flow.
    pub fn name(&self) -> &'static str {
        match self {
            SalesforceAuth::ClientCredentials { .. } => "client_credentials",
            SalesforceAuth::JwtBearer(_) => "jwt_bearer",
        }
    }
}

/// The JWT bearer flow's audience when `salesforce.audience` is not set.
pub const DEFAULT_AUDIENCE: &str = "https://login.salesforce.com";

impl SalesforceSettings {
    /// Settings with every default (client credentials, API 65.0, 1 h token lifetime, 5 s
    /// back-off after a failed token request, no refresh ahead, 5 s connect and 30 s request
    /// timeouts, a 60 s first back-off after a throttle growing to at most 15 min, 20 calls in
    /// flight with a 5 s queue timeout) for the given token endpoint and client.
    pub fn with_defaults(token_url: Url, client_id: &str, client_secret: SecretString) -> Self {
        SalesforceSettings {
            token_url,
            api_version: default_api_version(),
            client_id: client_id.to_owned(),
            auth: SalesforceAuth::ClientCredentials { client_secret },
            token_lifetime: Duration::from_secs(default_token_lifetime()),
            token_failure_backoff: Duration::from_millis(default_failure_backoff()),
            token_refresh_ahead: false,
            connect_timeout: Duration::from_millis(default_connect_timeout()),
            request_timeout: Duration::from_millis(default_request_timeout()),
            throttle_retry_after: Duration::from_secs(default_retry_after()),
            throttle_max_backoff: Duration::from_secs(default_max_backoff()),
            max_concurrent_requests: default_max_concurrent(),
            queue_timeout: Duration::from_millis(default_queue_timeout()),
        }
    }
}
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SalesforceModel {
    token_url: String,
    #[serde(default = "default_api_version")]
    api_version: String,
    client_id: String,
    #[serde(default)]
    auth: AuthModel,
    // Present here only so that a secret written into the file is caught and refused.
    #[serde(default)]
    client_secret: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    client_secret_file: Option<RelativePathBuf>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default = "default_audience")]
    audience: String,
    // Present here only so that a key written into the file is caught and refused.
    #[serde(default)]
    private_key: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    private_key_file: Option<RelativePathBuf>,
    #[serde(default = "default_token_lifetime")]
    token_lifetime_secs: u64,
    #[serde(default = "default_failure_backoff")]
    token_failure_backoff_ms: u64,
    #[serde(default)]
    token_refresh_ahead: bool,
    #[serde(default = "default_connect_timeout")]
    connect_timeout_ms: u64,
    #[serde(default = "default_request_timeout")]
    request_timeout_ms: u64,
    #[serde(default = "default_retry_after")]
    throttle_retry_after_secs: u64,
    #[serde(default = "default_max_backoff")]
    throttle_max_backoff_secs: u64,
    #[serde(default = "default_max_concurrent")]
    max_concurrent_requests: usize,
    #[serde(default = "default_queue_timeout")]
    queue_timeout_ms: u64,
}

/// `salesforce.auth` as written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum AuthModel {
    #[default]
    ClientCredentials,
    JwtBearer,
}

pub(super) fn default_audience() -> String {
    DEFAULT_AUDIENCE.to_owned()
}
pub(super) fn default_failure_backoff() -> u64 {
    5_000
}
pub(super) fn default_api_version() -> String {
    "65.0".to_owned()
}
pub(super) fn default_token_lifetime() -> u64 {
    3600
}
pub(super) fn default_connect_timeout() -> u64 {
    5_000
}
pub(super) fn default_request_timeout() -> u64 {
    30_000
}
pub(super) fn default_retry_after() -> u64 {
    60
}
pub(super) fn default_max_backoff() -> u64 {
    900
}
pub(super) fn default_max_concurrent() -> usize {
    20
}
pub(super) fn default_queue_timeout() -> u64 {
    5_000
}

/// The `[salesforce]` section (of the file or of a tenant), checked.
pub(super) fn salesforce_settings(
    sf: SalesforceModel,
    secret_from_env: Option<String>,
    fail: &dyn Fn(&str, String) -> ConfigError,
) -> Result<SalesforceSettings, ConfigError> {
    // The secret or the signed assertion travels to it: never in clear across a network.
    let token_url = Url::parse(&sf.token_url)
        .ok()
        .filter(is_private_channel)
        .ok_or_else(|| {
            fail(
                "salesforce.token_url",
                "must be an https URL, e.g. https://mydomain.my.salesforce.com/services/oauth2/token                  (http only for a loopback host such as a local sandbox: the client secret or                  assertion must not cross a network in clear)"
                    .to_owned(),
            )
        })?;
    check_api_version(&sf.api_version).map_err(|r| fail("salesforce.api_version", r))?;
    if sf.client_id.trim().is_empty() {
        return Err(fail("salesforce.client_id", "is empty".to_owned()));
    }
    if sf.client_secret.is_some() {
        return Err(fail(
            "salesforce.client_secret",
            format!(
                "secrets are not read from the configuration file; set {ENV_CLIENT_SECRET} or \
                 salesforce.client_secret_file"
            ),
        ));
    }
    if sf.private_key.is_some() {
        return Err(fail(
            "salesforce.private_key",
            "keys are not read from the configuration file; name the PEM file with \
             salesforce.private_key_file"
                .to_owned(),
        ));
    }
    let auth = match sf.auth {
        AuthModel::ClientCredentials => {
            if sf.private_key_file.is_some() || sf.username.is_some() {
                return Err(fail(
                    "salesforce.auth",
                    "username and private_key_file are used only by auth = \"jwt_bearer\"; \
                     set it, or remove them for the client credentials flow"
                        .to_owned(),
                ));
            }
            // Salesforce serves this flow only on the org's own host (salesforce-api.md §3.3).
            if matches!(
                token_url.host_str(),
                Some("login.salesforce.com" | "test.salesforce.com")
            ) {
                return Err(fail(
                    "salesforce.token_url",
                    "the client credentials flow is refused on login.salesforce.com and \
                     test.salesforce.com; use the org's My Domain host, e.g. \
                     https://mydomain.my.salesforce.com/services/oauth2/token"
                        .to_owned(),
                ));
            }
            SalesforceAuth::ClientCredentials {
                client_secret: read_client_secret(secret_from_env, sf.client_secret_file, &fail)?,
            }
        }
        AuthModel::JwtBearer => {
            if sf.client_secret_file.is_some() {
                return Err(fail(
                    "salesforce.client_secret_file",
                    "the JWT bearer flow uses no client secret; remove it".to_owned(),
                ));
            }
            let username = sf
                .username
                .filter(|u| !u.trim().is_empty())
                .ok_or_else(|| {
                    fail(
                        "salesforce.username",
                        "missing: auth = \"jwt_bearer\" needs the Salesforce username \
                         the tokens are for"
                            .to_owned(),
                    )
                })?;
            let audience = check_audience(&sf.audience).ok_or_else(|| {
                fail(
                    "salesforce.audience",
                    format!(
                        "must be an http(s) URL: {DEFAULT_AUDIENCE}, \
                             https://test.salesforce.com for sandboxes, or the My Domain URL"
                    ),
                )
            })?;
            let file = sf.private_key_file.ok_or_else(|| {
                fail(
                    "salesforce.private_key_file",
                    "missing: auth = \"jwt_bearer\" needs the PEM file of the RSA key whose \
                     certificate is uploaded to the connected app"
                        .to_owned(),
                )
            })?;
            let private_key = PrivateKey::from_file(&file.relative())
                .map_err(|e| fail("salesforce.private_key_file", e.to_string()))?;
            SalesforceAuth::JwtBearer(JwtBearerSettings {
                username,
                audience,
                private_key,
            })
        }
    };
    for (key, value) in [
        ("salesforce.token_lifetime_secs", sf.token_lifetime_secs),
        ("salesforce.connect_timeout_ms", sf.connect_timeout_ms),
        ("salesforce.request_timeout_ms", sf.request_timeout_ms),
    ] {
        if value == 0 {
            return Err(fail(key, "must be more than 0".to_owned()));
        }
    }
    if sf.max_concurrent_requests == 0 {
        return Err(fail(
            "salesforce.max_concurrent_requests",
            "must be more than 0".to_owned(),
        ));
    }
    if sf.throttle_max_backoff_secs < sf.throttle_retry_after_secs {
        return Err(fail(
            "salesforce.throttle_max_backoff_secs",
            "must be at least salesforce.throttle_retry_after_secs".to_owned(),
        ));
    }

    Ok(SalesforceSettings {
        token_url,
        api_version: sf.api_version,
        client_id: sf.client_id,
        auth,
        token_lifetime: Duration::from_secs(sf.token_lifetime_secs),
        token_failure_backoff: Duration::from_millis(sf.token_failure_backoff_ms),
        token_refresh_ahead: sf.token_refresh_ahead,
        connect_timeout: Duration::from_millis(sf.connect_timeout_ms),
        request_timeout: Duration::from_millis(sf.request_timeout_ms),
        throttle_retry_after: Duration::from_secs(sf.throttle_retry_after_secs),
        throttle_max_backoff: Duration::from_secs(sf.throttle_max_backoff_secs),
        max_concurrent_requests: sf.max_concurrent_requests,
        queue_timeout: Duration::from_millis(sf.queue_timeout_ms),
    })
}

/// The consumer secret from the environment or from `salesforce.client_secret_file`.
pub(super) fn read_client_secret(
    secret_from_env: Option<String>,
    secret_file: Option<RelativePathBuf>,
    fail: &dyn Fn(&str, String) -> ConfigError,
) -> Result<SecretString, ConfigError> {
    let client_secret = match (secret_from_env, secret_file) {
        (Some(s), _) if !s.is_empty() => SecretString::from(s),
        (_, Some(file)) => {
            let path = file.relative();
            let text = std::fs::read_to_string(&path).map_err(|e| {
                fail(
                    "salesforce.client_secret_file",
                    format!("cannot read {}: {}", path.display(), e.kind()),
                )
            })?;
            let secret = text.trim_end_matches(['\n', '\r']).to_owned();
            if secret.is_empty() {
                return Err(fail(
                    "salesforce.client_secret_file",
                    format!("{} is empty", path.display()),
                ));
            }
            SecretString::from(secret)
        }
        _ => {
            return Err(fail(
                "salesforce.client_secret",
                format!(
                    "missing: set {ENV_CLIENT_SECRET} or salesforce.client_secret_file (or \
                         auth = \"jwt_bearer\" with a private key)"
                ),
            ));
        }
    };
    Ok(client_secret)
}

/// An http(s) audience without a trailing `/` (Salesforce compares `aud` as a string, and its
/// documented values have none).
pub(super) fn check_audience(audience: &str) -> Option<String> {
    let trimmed = audience.trim().trim_end_matches('/');
    Url::parse(trimmed)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .map(|_| trimmed.to_owned())
}

pub(super) fn check_api_version(version: &str) -> Result<(), String> {
    let parsed = version
        .split_once('.')
        .filter(|(_, minor)| minor.len() == 1 && minor.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|(major, _)| major.parse::<u32>().ok());
    match parsed {
        Some(major) if major >= 65 => Ok(()),
        Some(_) => Err("the Appointment Management API needs version 65.0 or later".to_owned()),
        None => Err("must look like 65.0".to_owned()),
    }
}
