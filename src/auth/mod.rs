//! Inbound authentication and authorization: who may call the proxy and what they may do.
//!
//! Three ways in, each enabled per client in `[[auth.clients]]`:
//! 1. SMART Backend Services ([`smart`]): the proxy is the token server; a client signs a
//!    `private_key_jwt` assertion (RS384/ES384, keys from its JWKS file) and gets a short-lived
//!    opaque access token.
//! 2. Enterprise JWTs ([`enterprise`]): bearer tokens from the organisation's authorization
//!    server, verified against its JWKS (file or URL).
//! 3. Static API keys (`X-API-Key`), stored as SHA-256 hashes and compared in constant time.
//!
//! Every way ends in an [`Access`]: the client id, the scopes it holds for this request (always
//! cut down to the client's configured scopes), its tenants and whether it is an admin. The
//! client list lives in an [`ArcSwap`] so it can be replaced at runtime; a request keeps the
//! version it authenticated against.

pub mod enterprise;
pub mod failures;
pub mod jwks;
pub mod scope;
pub mod settings;
pub mod smart;

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::interaction::Interaction;
pub use scope::{Scope, Scopes};
pub use settings::{AuthSettings, ClientSettings, IssuerSettings, JwksSource};

/// The path of the token endpoint, below `auth.public_url`.
pub const TOKEN_PATH: &str = "/auth/token";

/// The configured clients and issuers, as one version of the registry.
pub struct Registry {
    settings: AuthSettings,
    by_id: HashMap<String, usize>,
    issuers: Vec<enterprise::Issuer>,
}

impl Registry {
    fn new(settings: AuthSettings, http: &reqwest::Client) -> Registry {
        let by_id = settings
            .clients
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        let issuers = settings
            .issuers
            .iter()
            .map(|i| enterprise::Issuer::new(i.clone(), http.clone()))
            .collect();
        Registry {
            settings,
            by_id,
            issuers,
        }
    }

    /// The client with this id.
    pub fn client(&self, id: &str) -> Option<&ClientSettings> {
        self.by_id.get(id).map(|&i| &self.settings.clients[i])
    }

    /// The settings this version was built from.
    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// The token endpoint's URL (`{public_url}/auth/token`), when `public_url` is set.
    pub fn token_url(&self) -> Option<String> {
        self.settings
            .public_url
            .as_ref()
            .map(|u| format!("{}{TOKEN_PATH}", u.as_str().trim_end_matches('/')))
    }
}

/// What an authenticated request may do.
#[derive(Debug, Clone)]
pub enum Access {
    /// Authentication is disabled (`auth.disabled = true`): everything is allowed.
    Unrestricted,
    /// A known client.
    Client(Grant),
}

/// An authenticated client's rights for one request.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The client id.
    pub client_id: String,
    /// The scopes it holds (already cut down to its configured scopes).
    pub scopes: Scopes,
    /// The tenants it may use (`None`: all; `""`: the one at the FHIR base).
    pub tenants: Option<Vec<String>>,
    /// May call `/admin/*`.
    pub admin: bool,
}

impl Grant {
    fn of(client: &ClientSettings, scopes: Scopes) -> Grant {
        Grant {
            client_id: client.id.clone(),
            scopes: scopes.intersect(&client.scopes),
            tenants: client.tenants.clone(),
            admin: client.admin,
        }
    }
}

/// Why a request is not allowed although its client is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The scopes do not grant the interaction.
    Scope {
        /// The resource type needed.
        resource_type: &'static str,
        /// The v2 letter needed.
        permission: char,
    },
    /// The client is not bound to the tenant in the URL.
    Tenant,
    /// `/admin/*` needs an admin client.
    Admin,
}

impl Access {
    /// Access that permits no interaction: what a handler assumes when the middleware left none
    /// (fails closed).
    pub fn nothing() -> Access {
        Access::Client(Grant {
            client_id: String::new(),
            scopes: Scopes::default(),
            tenants: Some(Vec::new()),
            admin: false,
        })
    }

    /// The client id, for the audit trail (`None` when auth is disabled).
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Access::Unrestricted => None,
            Access::Client(g) => Some(&g.client_id),
        }
    }

    /// Whether this access may perform `interaction`.
    ///
    /// # Errors
    /// The [`Denial`] when the scopes do not cover it.
    pub fn permits(&self, interaction: Interaction) -> Result<(), Denial> {
        let Access::Client(grant) = self else {
            return Ok(());
        };
        match interaction.requirement() {
            None => Ok(()),
            Some((resource_type, permission)) if grant.scopes.grants(resource_type, permission) => {
                Ok(())
            }
            Some((resource_type, permission)) => Err(Denial::Scope {
                resource_type,
                permission: permission.letter(),
            }),
        }
    }

    /// Whether this access may perform a Bundle entry's request; entries the proxy does not serve
    /// are left to the Bundle handler to refuse.
    ///
    /// # Errors
    /// The [`Denial`] when the scopes do not cover it.
    pub fn permits_entry(&self, method: &str, url: &str) -> Result<(), Denial> {
        match Interaction::from_entry(method, url) {
            Some(interaction) => self.permits(interaction),
            None => Ok(()),
        }
    }

    /// Whether this access may use the tenant (`None`: the one at the FHIR base).
    ///
    /// # Errors
    /// [`Denial::Tenant`].
    pub fn permits_tenant(&self, tenant: Option<&str>) -> Result<(), Denial> {
        let Access::Client(grant) = self else {
            return Ok(());
        };
        match &grant.tenants {
            None => Ok(()),
            Some(bound) if bound.iter().any(|t| t == tenant.unwrap_or("")) => Ok(()),
            Some(_) => Err(Denial::Tenant),
        }
    }

    /// Whether this access may call `/admin/*`.
    ///
    /// # Errors
    /// [`Denial::Admin`].
    pub fn permits_admin(&self) -> Result<(), Denial> {
        match self {
            Access::Unrestricted => Ok(()),
            Access::Client(g) if g.admin => Ok(()),
            Access::Client(_) => Err(Denial::Admin),
        }
    }
}

/// The credentials a request carries.
#[derive(Debug, Clone, Copy)]
pub enum Credentials<'a> {
    /// None at all.
    Missing,
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
    /// `X-API-Key: <key>`.
    ApiKey(&'a str),
    /// Both, or an `Authorization` header of another scheme, or one that cannot be read.
    Unusable,
}

/// Why a request could not be authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credentials were sent.
    Missing,
    /// Credentials were sent and are not valid (unknown, expired, wrongly signed, wrong audience
    /// or issuer, unknown client). Which of these is logged, never told to the caller.
    Invalid,
    /// The keys needed to check them could not be fetched (the issuer's JWKS URL).
    Unavailable,
}

/// Inbound auth as the server runs it: the swappable registry, the issued tokens, the seen
/// assertion ids.
pub struct Auth {
    registry: ArcSwap<Registry>,
    tokens: smart::TokenStore,
    http: reqwest::Client,
    failures: failures::FailureLimit,
}

impl Auth {
    /// Builds the runtime state, with issued tokens and seen assertion ids in `store`; logs a
    /// loud warning when authentication is disabled.
    pub fn new(settings: AuthSettings, store: crate::store::Store) -> Auth {
        // One client for every issuer's JWKS URL; no redirects, so a compromised JWKS host
        // cannot bounce the proxy elsewhere.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        warn_if_disabled(&settings);
        let tokens = smart::TokenStore::new(store);
        let failures = failures::FailureLimit::new(settings.failed_attempts_per_minute);
        Auth {
            registry: ArcSwap::from_pointee(Registry::new(settings, &http)),
            tokens,
            http,
            failures,
        }
    }

    /// The counters of failed credentials per client address.
    pub fn failures(&self) -> &failures::FailureLimit {
        &self.failures
    }

    /// Whether `/status` and `/metrics` need an admin client (`auth.status_needs_admin`).
    pub fn status_needs_admin(&self) -> bool {
        let registry = self.registry.load();
        !registry.settings.disabled && registry.settings.status_needs_admin
    }

    /// Whether callers are checked (`false` only with `auth.disabled = true`).
    pub fn is_enabled(&self) -> bool {
        !self.registry.load().settings.disabled
    }

    /// Replaces the clients and issuers (a reload). Requests already authenticated keep the
    /// version they started with; issued tokens stay valid only for clients that still exist,
    /// with their new scopes and tenants.
    pub fn replace_clients(&self, new: AuthSettings) {
        warn_if_disabled(&new);
        self.registry
            .store(Arc::new(Registry::new(new, &self.http)));
    }

    /// The current registry version.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.load_full()
    }

    /// Authenticates a request's credentials.
    ///
    /// # Errors
    /// An [`AuthFailure`] saying whether credentials were missing, invalid or uncheckable.
    pub async fn authenticate(&self, credentials: Credentials<'_>) -> Result<Access, AuthFailure> {
        let registry = self.registry();
        if registry.settings.disabled {
            return Ok(Access::Unrestricted);
        }
        match credentials {
            Credentials::Missing => Err(AuthFailure::Missing),
            Credentials::Unusable => Err(AuthFailure::Invalid),
            Credentials::ApiKey(key) => api_key_client(&registry, key)
                .map(|c| Access::Client(Grant::of(c, c.scopes.clone())))
                .ok_or(AuthFailure::Invalid),
            Credentials::Bearer(token) if smart::is_proxy_token(token) => {
                let issued = self
                    .tokens
                    .get(token)
                    .await
                    .map_err(|_| AuthFailure::Unavailable)?
                    .ok_or(AuthFailure::Invalid)?;
                // The client must still exist and still be allowed in this way.
                let client = registry
                    .client(&issued.client_id)
                    .filter(|c| c.jwks.is_some())
                    .ok_or(AuthFailure::Invalid)?;
                Ok(Access::Client(Grant::of(client, issued.scopes.clone())))
            }
            Credentials::Bearer(token) => {
                let (client_id, scopes) = enterprise::verify(&registry, token).await?;
                let client = registry.client(&client_id).ok_or(AuthFailure::Invalid)?;
                Ok(Access::Client(Grant::of(client, scopes)))
            }
        }
    }

    /// Answers a token request (the SMART Backend Services token endpoint).
    ///
    /// # Errors
    /// The RFC 6749 §5.2 error to answer with.
    pub async fn issue_token(
        &self,
        form: &smart::TokenRequest,
    ) -> Result<smart::TokenResponse, smart::OAuthError> {
        let registry = self.registry();
        self.tokens.issue(&registry, form).await
    }

    /// How many times each issuer's JWKS URL was fetched (for tests and diagnostics), by issuer.
    pub fn jwks_fetches(&self) -> Vec<(String, u64)> {
        self.registry()
            .issuers
            .iter()
            .map(|i| (i.settings().issuer.clone(), i.fetches()))
            .collect()
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("enabled", &self.is_enabled())
            .finish_non_exhaustive()
    }
}

fn warn_if_disabled(settings: &AuthSettings) {
    if settings.disabled {
        tracing::warn!(
            "AUTHENTICATION IS DISABLED (auth.disabled = true): every caller can book, change and \
             read appointments with this proxy's Salesforce credentials; never run like this \
             with patient data"
        );
    }
}

/// A new random API key (`prefix` followed by 48 hex digits, 192 bits from the OS's generator)
/// and the hex SHA-256 that `api_key_sha256` takes.
pub fn new_api_key(prefix: &str) -> (secrecy::SecretString, String) {
    let key = format!("{prefix}{}", hex::encode(rand::random::<[u8; 24]>()));
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    (key.into(), hash)
}

/// The client whose API key hash matches, comparing with every client's hash in constant time.
fn api_key_client<'r>(registry: &'r Registry, key: &str) -> Option<&'r ClientSettings> {
    let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    let mut found = None;
    // Every hash is compared, so the time taken does not tell which (or whether one) matched.
    for client in &registry.settings.clients {
        if let Some(expected) = &client.api_key_sha256
            && bool::from(expected.ct_eq(&hash))
        {
            found = Some(client);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ProxyError;

    fn grant(scopes: &str, tenants: Option<Vec<&str>>) -> Access {
        Access::Client(Grant {
            client_id: "c".to_owned(),
            scopes: Scopes::parse_lenient(scopes),
            tenants: tenants.map(|t| t.into_iter().map(str::to_owned).collect()),
            admin: false,
        })
    }

    #[test]
    fn a_new_api_key_is_random_and_its_hash_lets_it_in() {
        use secrecy::ExposeSecret;
        let (key, hash) = new_api_key("fsp-");
        let (other, _) = new_api_key("fsp-");
        assert!(key.expose_secret().starts_with("fsp-"));
        assert_eq!(key.expose_secret().len(), 4 + 48);
        assert_ne!(key.expose_secret(), other.expose_secret());
        assert_eq!(hash.len(), 64);
        let mut settings = AuthSettings::enabled(None);
        let mut client =
            ClientSettings::with_api_key("c", "unused", &["system/Appointment.c"]).unwrap();
        let mut expected = [0u8; 32];
        hex::decode_to_slice(&hash, &mut expected).unwrap();
        client.api_key_sha256 = Some(expected);
        settings.clients.push(client);
        let registry = Registry::new(settings, &reqwest::Client::new());
        assert!(api_key_client(&registry, key.expose_secret()).is_some());
        assert!(api_key_client(&registry, other.expose_secret()).is_none());
    }

    #[test]
    fn interactions_are_checked_against_their_requirement() {
        let access = grant("system/Appointment.write system/Slot.read", None);
        assert_eq!(access.permits(Interaction::Create), Ok(()));
        assert_eq!(access.permits(Interaction::Validate), Ok(()));
        assert_eq!(access.permits(Interaction::Patch), Ok(()));
        assert_eq!(access.permits(Interaction::SlotSearch), Ok(()));
        assert_eq!(
            access.permits(Interaction::Find),
            Err(Denial::Scope {
                resource_type: "Appointment",
                permission: 's'
            })
        );
        // Authorized entry by entry, and metadata is open.
        assert_eq!(access.permits(Interaction::Bundle), Ok(()));
        assert_eq!(access.permits(Interaction::Capabilities), Ok(()));
        assert!(access.permits_entry("GET", "Appointment/$find").is_err());
        assert!(access.permits_entry("PUT", "Appointment/1").is_ok());
    }

    #[test]
    fn tenants_admin_and_the_fail_closed_default() {
        let bound = grant("system/*.*", Some(vec!["north", ""]));
        assert_eq!(bound.permits_tenant(Some("north")), Ok(()));
        assert_eq!(bound.permits_tenant(None), Ok(()));
        assert_eq!(bound.permits_tenant(Some("south")), Err(Denial::Tenant));
        assert_eq!(bound.permits_admin(), Err(Denial::Admin));
        assert_eq!(Access::Unrestricted.permits_admin(), Ok(()));
        let nothing = Access::nothing();
        assert!(nothing.permits(Interaction::Create).is_err());
        assert!(nothing.permits_tenant(None).is_err());
    }

    #[test]
    fn refusals_are_401_login_403_forbidden_and_503() {
        for (error, status, code) in [
            (
                ProxyError::Unauthenticated { presented: false },
                401,
                "login",
            ),
            (
                ProxyError::Unauthenticated { presented: true },
                401,
                "login",
            ),
            (ProxyError::Forbidden(Denial::Tenant), 403, "forbidden"),
            (ProxyError::AuthUnavailable, 503, "transient"),
        ] {
            let o = error.outcome();
            assert_eq!(o.status.as_u16(), status, "{error:?}");
            assert_eq!(o.issues[0].code.as_str(), code, "{error:?}");
        }
    }

    #[tokio::test]
    async fn api_keys_match_by_hash_only_and_disabled_lets_everyone_in() {
        let mut settings = AuthSettings::enabled(None);
        settings.clients.push(
            ClientSettings::with_api_key("engine", "the-key", &["system/Appointment.c"]).unwrap(),
        );
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::sqlite(&dir.path().join("store.db")).unwrap();
        let auth = Auth::new(settings, store);
        assert!(auth.is_enabled());
        let access = auth
            .authenticate(Credentials::ApiKey("the-key"))
            .await
            .unwrap();
        assert_eq!(access.client_id(), Some("engine"));
        assert_eq!(
            auth.authenticate(Credentials::ApiKey("the-kex"))
                .await
                .err(),
            Some(AuthFailure::Invalid)
        );
        assert_eq!(
            auth.authenticate(Credentials::Missing).await.err(),
            Some(AuthFailure::Missing)
        );
        auth.replace_clients(AuthSettings::disabled());
        assert!(!auth.is_enabled());
        assert!(matches!(
            auth.authenticate(Credentials::Missing).await,
            Ok(Access::Unrestricted)
        ));
    }
}
