//! The `[auth]` section: who may call the proxy, as written in the configuration file and as
//! checked at load. Every refusal names the key (`auth.clients[0].scopes`) and the reason.
//!
//! Secure by default: a configuration without clients is refused unless it says
//! `disabled = true`; API keys are stored only as SHA-256 hashes (a key written in clear is
//! refused); JWKS files must hold public keys only; a client can only come in the ways its entry
//! names.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use figment::value::magic::RelativePathBuf;
use serde::Deserialize;
use url::Url;

use super::jwks::{KeySet, KeyUse};
use super::scope::Scopes;

/// The longest (and default) lifetime of a proxy-issued access token: SMART says `expires_in`
/// SHOULD NOT exceed 300 seconds.
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 300;
/// The default least time between two fetches of an issuer's JWKS URL.
pub const DEFAULT_JWKS_REFETCH_MIN_SECS: u64 = 60;

/// `[auth]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFileModel {
    #[serde(default)]
    disabled: bool,
    #[serde(default)]
    public_url: Option<String>,
    #[serde(default = "default_token_lifetime")]
    token_lifetime_secs: u64,
    #[serde(default)]
    clients: Vec<ClientModel>,
    #[serde(default)]
    issuers: Vec<IssuerModel>,
    #[serde(default = "default_failed_attempts")]
    failed_attempts_per_minute: u32,
    #[serde(default)]
    status_needs_admin: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientModel {
    id: String,
    #[serde(default)]
    tenants: Option<Vec<String>>,
    scopes: Vec<String>,
    #[serde(default)]
    jwks_file: Option<RelativePathBuf>,
    #[serde(default)]
    api_key_sha256: Option<String>,
    // Present only so that a key written in clear is caught and refused.
    #[serde(default)]
    api_key: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    admin: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerModel {
    issuer: String,
    audience: String,
    #[serde(default)]
    jwks_file: Option<RelativePathBuf>,
    #[serde(default)]
    jwks_url: Option<String>,
    #[serde(default)]
    client_claim: Option<String>,
    #[serde(default = "default_refetch")]
    jwks_refetch_min_secs: u64,
}

/// The default `auth.failed_attempts_per_minute`: far more than a misconfigured client makes
/// before someone looks, far fewer than guessing needs.
pub const DEFAULT_FAILED_ATTEMPTS_PER_MINUTE: u32 = 20;

fn default_failed_attempts() -> u32 {
    DEFAULT_FAILED_ATTEMPTS_PER_MINUTE
}

fn default_token_lifetime() -> u64 {
    MAX_TOKEN_LIFETIME_SECS
}
fn default_refetch() -> u64 {
    DEFAULT_JWKS_REFETCH_MIN_SECS
}

/// Who may call, checked.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `auth.disabled = true`: every request is let in (never in production).
    pub disabled: bool,
    /// The proxy's external base URL (no trailing `/`); the token endpoint is
    /// `{public_url}/auth/token` and that is the `aud` client assertions must carry.
    pub public_url: Option<Url>,
    /// Lifetime of proxy-issued access tokens (at most 300 s).
    pub token_lifetime: Duration,
    /// The clients.
    pub clients: Vec<ClientSettings>,
    /// The enterprise authorization servers whose tokens are accepted.
    pub issuers: Vec<IssuerSettings>,
    /// Failed credentials allowed per client address per minute before its requests are
    /// refused with 429 (`None`: no limit). Read at start.
    pub failed_attempts_per_minute: Option<std::num::NonZeroU32>,
    /// `/status` and `/metrics` need an admin client's credentials.
    pub status_needs_admin: bool,
}

/// One client that may call.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The client id (SMART `client_id`, the enterprise token's client claim, the audit name).
    pub id: String,
    /// The tenants it may use: `None` for all; `""` names the tenant at the FHIR base.
    pub tenants: Option<Vec<String>>,
    /// The most it may ever be granted.
    pub scopes: Scopes,
    /// SMART Backend Services: the public keys its assertions are signed with.
    pub jwks: Option<Arc<KeySet>>,
    /// A static API key, as the SHA-256 of the key.
    pub api_key_sha256: Option<[u8; 32]>,
    /// An enterprise issuer (`[[auth.issuers]].issuer`) whose tokens may name this client.
    pub issuer: Option<String>,
    /// May call `/admin/*`.
    pub admin: bool,
}

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// Read at load.
    File(Arc<KeySet>),
    /// Fetched on first use and refetched on an unknown `kid`.
    Url(Url),
}

/// An enterprise authorization server.
#[derive(Debug, Clone)]
pub struct IssuerSettings {
    /// The exact `iss` of its tokens.
    pub issuer: String,
    /// The `aud` its tokens must carry for this proxy.
    pub audience: String,
    /// Its public keys.
    pub jwks: JwksSource,
    /// The claim naming the client; `None`: `client_id`, else `azp`.
    pub client_claim: Option<String>,
    /// Least time between two fetches of `jwks_url`.
    pub jwks_refetch_min: Duration,
}

impl ClientSettings {
    /// A client that comes in with a static API key and may use every tenant (the demo, tests).
    ///
    /// # Errors
    /// A scope that grants nothing, with the reason.
    pub fn with_api_key(id: &str, key: &str, scopes: &[&str]) -> Result<ClientSettings, String> {
        use sha2::Digest;
        let scopes = Scopes::parse_strict(scopes.iter().copied())
            .map_err(|(scope, e)| format!("`{scope}`: {e}"))?;
        Ok(ClientSettings {
            id: id.to_owned(),
            tenants: None,
            scopes,
            jwks: None,
            api_key_sha256: Some(sha2::Sha256::digest(key.as_bytes()).into()),
            issuer: None,
            admin: false,
        })
    }
}

impl AuthSettings {
    /// Authentication switched off (tests and explicit configurations only).
    pub fn disabled() -> AuthSettings {
        AuthSettings {
            disabled: true,
            ..AuthSettings::enabled(None)
        }
    }

    /// Authentication on, with no clients yet, tokens living 300 s, 20 failed credentials a
    /// minute per address, `/status` and `/metrics` open.
    pub fn enabled(public_url: Option<Url>) -> AuthSettings {
        AuthSettings {
            disabled: false,
            public_url,
            token_lifetime: Duration::from_secs(MAX_TOKEN_LIFETIME_SECS),
            clients: Vec::new(),
            issuers: Vec::new(),
            failed_attempts_per_minute: std::num::NonZeroU32::new(
                DEFAULT_FAILED_ATTEMPTS_PER_MINUTE,
            ),
            status_needs_admin: false,
        }
    }

    /// Checks the `[auth]` section; `tenants` are the configured tenants (`None`: the one at the
    /// FHIR base). Relative paths are relative to the configuration file.
    ///
    /// # Errors
    /// The key (below `auth.`) and the reason.
    pub fn from_model(
        model: Option<AuthFileModel>,
        tenants: &[Option<String>],
    ) -> Result<AuthSettings, (String, String)> {
        let fail = |key: &str, reason: &str| (key.to_owned(), reason.to_owned());
        let Some(model) = model else {
            return Err(fail(
                "auth",
                "missing: say who may call with [[auth.clients]] (and [[auth.issuers]] for \
                 enterprise tokens), or set auth.disabled = true to run without authentication \
                 (never with patient data)",
            ));
        };
        if model.disabled {
            if !model.clients.is_empty() || !model.issuers.is_empty() {
                return Err(fail(
                    "auth.disabled",
                    "is true but clients or issuers are configured too; remove one or the other \
                     so it is clear whether callers are checked",
                ));
            }
            return Ok(AuthSettings::disabled());
        }
        if !(1..=MAX_TOKEN_LIFETIME_SECS).contains(&model.token_lifetime_secs) {
            return Err(fail(
                "auth.token_lifetime_secs",
                "must be 1 to 300 seconds (SMART: expires_in should not exceed 300)",
            ));
        }
        let public_url = match &model.public_url {
            None => None,
            Some(text) => Some(check_url(text).map_err(|r| fail("auth.public_url", &r))?),
        };
        let mut issuers: Vec<IssuerSettings> = Vec::new();
        for (i, issuer) in model.issuers.into_iter().enumerate() {
            let key = |k: &str| format!("auth.issuers[{i}].{k}");
            let checked = issuer_settings(issuer, &key)?;
            if issuers.iter().any(|x| x.issuer == checked.issuer) {
                return Err((key("issuer"), "is configured twice".to_owned()));
            }
            issuers.push(checked);
        }
        if model.clients.is_empty() {
            return Err(fail(
                "auth.clients",
                "missing: with no [[auth.clients]] nobody could call; add clients or set \
                 auth.disabled = true",
            ));
        }
        let mut clients: Vec<ClientSettings> = Vec::new();
        for (i, client) in model.clients.into_iter().enumerate() {
            let key = |k: &str| format!("auth.clients[{i}].{k}");
            let checked = client_settings(client, &key, tenants, &issuers)?;
            if clients.iter().any(|c| c.id == checked.id) {
                return Err((key("id"), "is used by another client".to_owned()));
            }
            if checked.api_key_sha256.is_some()
                && clients
                    .iter()
                    .any(|c| c.api_key_sha256 == checked.api_key_sha256)
            {
                return Err((
                    key("api_key_sha256"),
                    "is the same key as another client's; give each client its own".to_owned(),
                ));
            }
            if checked.jwks.is_some() && public_url.is_none() {
                return Err(fail(
                    "auth.public_url",
                    "missing: clients with jwks_file sign assertions for the token endpoint \
                     {public_url}/auth/token, so the proxy's external URL must be set",
                ));
            }
            clients.push(checked);
        }
        Ok(AuthSettings {
            disabled: false,
            public_url,
            token_lifetime: Duration::from_secs(model.token_lifetime_secs),
            clients,
            issuers,
            failed_attempts_per_minute: std::num::NonZeroU32::new(model.failed_attempts_per_minute),
            status_needs_admin: model.status_needs_admin,
        })
    }
}

fn client_settings(
    client: ClientModel,
    key: &dyn Fn(&str) -> String,
    tenants: &[Option<String>],
    issuers: &[IssuerSettings],
) -> Result<ClientSettings, (String, String)> {
    let id = client.id;
    if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err((
            key("id"),
            "must be 1–128 printable characters without spaces".to_owned(),
        ));
    }
    if client.api_key.is_some() {
        return Err((
            key("api_key"),
            "API keys are not written into the configuration; put the hex SHA-256 of the key in \
             api_key_sha256 (e.g. printf %s \"$KEY\" | sha256sum)"
                .to_owned(),
        ));
    }
    if client.scopes.is_empty() {
        return Err((key("scopes"), "must name at least one scope".to_owned()));
    }
    let scopes = Scopes::parse_strict(client.scopes.iter().map(String::as_str))
        .map_err(|(scope, e)| (key("scopes"), format!("`{scope}`: {e}")))?;
    if let Some(bound) = &client.tenants {
        if bound.is_empty() {
            return Err((
                key("tenants"),
                "is empty: omit it for every tenant, or name at least one".to_owned(),
            ));
        }
        for name in bound {
            let exists = tenants.iter().any(|t| t.as_deref().unwrap_or("") == name);
            if !exists {
                return Err((
                    key("tenants"),
                    format!(
                        "`{name}` is not a configured tenant (\"\" names the one at the FHIR base)"
                    ),
                ));
            }
        }
    }
    let api_key_sha256 = match &client.api_key_sha256 {
        None => None,
        Some(text) => {
            let bytes = hex::decode(text.trim()).ok().filter(|b| b.len() == 32);
            let bytes = bytes.ok_or_else(|| {
                (
                    key("api_key_sha256"),
                    "must be the 64 hex digits of the SHA-256 of the key".to_owned(),
                )
            })?;
            let mut hash = [0u8; 32];
            hash.copy_from_slice(&bytes);
            Some(hash)
        }
    };
    let jwks = match client.jwks_file {
        None => None,
        Some(file) => Some(Arc::new(
            read_jwks(&file.relative(), KeyUse::ClientAssertion)
                .map_err(|r| (key("jwks_file"), r))?,
        )),
    };
    if let Some(issuer) = &client.issuer
        && !issuers.iter().any(|i| &i.issuer == issuer)
    {
        return Err((
            key("issuer"),
            "names no [[auth.issuers]] entry (it must equal one's issuer exactly)".to_owned(),
        ));
    }
    if jwks.is_none() && api_key_sha256.is_none() && client.issuer.is_none() {
        return Err((
            key("id"),
            "has no way in: give it jwks_file (SMART Backend Services), issuer (enterprise \
             tokens) or api_key_sha256"
                .to_owned(),
        ));
    }
    Ok(ClientSettings {
        id,
        tenants: client.tenants,
        scopes,
        jwks,
        api_key_sha256,
        issuer: client.issuer,
        admin: client.admin,
    })
}

fn issuer_settings(
    issuer: IssuerModel,
    key: &dyn Fn(&str) -> String,
) -> Result<IssuerSettings, (String, String)> {
    if issuer.issuer.trim().is_empty() {
        return Err((key("issuer"), "is empty".to_owned()));
    }
    if issuer.audience.trim().is_empty() {
        return Err((key("audience"), "is empty".to_owned()));
    }
    let jwks = match (issuer.jwks_file, issuer.jwks_url) {
        (Some(file), None) => JwksSource::File(Arc::new(
            read_jwks(&file.relative(), KeyUse::AccessToken).map_err(|r| (key("jwks_file"), r))?,
        )),
        (None, Some(url)) => JwksSource::Url(check_url(&url).map_err(|r| (key("jwks_url"), r))?),
        _ => {
            return Err((
                key("jwks_file"),
                "give exactly one of jwks_file and jwks_url".to_owned(),
            ));
        }
    };
    if issuer
        .client_claim
        .as_deref()
        .is_some_and(|c| c.trim().is_empty())
    {
        return Err((key("client_claim"), "is empty".to_owned()));
    }
    Ok(IssuerSettings {
        issuer: issuer.issuer,
        audience: issuer.audience,
        jwks,
        client_claim: issuer.client_claim,
        jwks_refetch_min: Duration::from_secs(issuer.jwks_refetch_min_secs),
    })
}

fn read_jwks(path: &Path, key_use: KeyUse) -> Result<KeySet, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read {}: {}", path.display(), e.kind()))?;
    KeySet::parse(&bytes, key_use).map_err(|r| format!("{}: {r}", path.display()))
}

/// An https URL, or http on a loopback host (a local test IdP); no query, no fragment, no
/// trailing `/`.
fn check_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim_end_matches('/')).map_err(|_| "is not a URL".to_owned())?;
    if !crate::channel::is_private_channel(&url) {
        return Err(
            "must be an https URL (http only for a loopback host such as 127.0.0.1)".to_owned(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err("must not carry a query, fragment or credentials".to_owned());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::Figment;
    use figment::providers::{Format, Toml};

    #[derive(Deserialize)]
    struct Wrapper {
        auth: Option<AuthFileModel>,
    }

    fn check(text: &str) -> Result<AuthSettings, (String, String)> {
        let w: Wrapper = Figment::from(Toml::string(text)).extract().unwrap();
        AuthSettings::from_model(w.auth, &[None, Some("north".to_owned())])
    }

    const KEY_HASH: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    #[test]
    fn no_auth_section_is_refused_and_disabled_must_be_explicit() {
        let e = check("").unwrap_err();
        assert_eq!(e.0, "auth");
        assert!(e.1.contains("auth.disabled = true"), "{e:?}");
        assert!(check("[auth]\ndisabled = true\n").unwrap().disabled);
        let e = check("[auth]\n").unwrap_err();
        assert_eq!(e.0, "auth.clients");
    }

    #[test]
    fn an_api_key_client_is_read() {
        let s = check(&format!(
            "[auth]\n[[auth.clients]]\nid = \"engine\"\nscopes = [\"system/Appointment.cu\"]\n\
             api_key_sha256 = \"{KEY_HASH}\"\ntenants = [\"north\", \"\"]\n"
        ))
        .unwrap();
        assert!(!s.disabled);
        assert_eq!(s.clients[0].id, "engine");
        assert_eq!(
            s.clients[0].tenants.as_deref(),
            Some(&["north".to_owned(), String::new()][..])
        );
        assert_eq!(s.token_lifetime, Duration::from_secs(300));
    }

    #[test]
    fn bad_entries_are_refused_naming_key_and_reason() {
        let client = |extra: &str| {
            format!(
                "[auth]\n[[auth.clients]]\nid = \"engine\"\nscopes = [\"system/Appointment.cu\"]\n{extra}"
            )
        };
        let cases = [
            (client(""), "auth.clients[0].id", "no way in"),
            (
                client("api_key = \"plain\"\n"),
                "auth.clients[0].api_key",
                "SHA-256",
            ),
            (
                client("api_key_sha256 = \"abc\"\n"),
                "auth.clients[0].api_key_sha256",
                "64 hex",
            ),
            (
                client(&format!(
                    "api_key_sha256 = \"{KEY_HASH}\"\ntenants = [\"south\"]\n"
                )),
                "auth.clients[0].tenants",
                "`south`",
            ),
            (
                client("issuer = \"https://idp.example\"\n"),
                "auth.clients[0].issuer",
                "no [[auth.issuers]]",
            ),
            (
                format!(
                    "[auth]\n[[auth.clients]]\nid = \"e\"\nscopes = [\"system/Appointment.rs?status=booked\"]\napi_key_sha256 = \"{KEY_HASH}\"\n"
                ),
                "auth.clients[0].scopes",
                "constraints",
            ),
            (
                format!("{}token_lifetime_secs = 301\n", "[auth]\n"),
                "auth.token_lifetime_secs",
                "300",
            ),
            (
                format!(
                    "[auth]\ndisabled = true\n[[auth.clients]]\nid = \"e\"\nscopes = [\"system/*.*\"]\napi_key_sha256 = \"{KEY_HASH}\"\n"
                ),
                "auth.disabled",
                "remove one",
            ),
            (
                "[auth]\npublic_url = \"http://proxy.example\"\n".to_owned(),
                "auth.public_url",
                "https",
            ),
            (
                format!(
                    "[auth]\n[[auth.issuers]]\nissuer = \"https://idp\"\naudience = \"fsp\"\n{}",
                    "jwks_url = \"http://idp.example/jwks\"\n"
                ),
                "auth.issuers[0].jwks_url",
                "https",
            ),
        ];
        for (text, key, reason) in cases {
            let e = check(&text).unwrap_err();
            assert_eq!(e.0, key, "{text}");
            assert!(e.1.contains(reason), "{text}: {}", e.1);
        }
    }

    #[test]
    fn a_jwks_with_a_private_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(
            &path,
            r#"{"keys":[{"kty":"EC","crv":"P-384","kid":"k","x":"AA","y":"AA","d":"AA"}]}"#,
        )
        .unwrap();
        let e = check(&format!(
            "[auth]\npublic_url = \"https://proxy.example\"\n[[auth.clients]]\nid = \"e\"\n\
             scopes = [\"system/*.*\"]\njwks_file = \"{}\"\n",
            path.display()
        ))
        .unwrap_err();
        assert_eq!(e.0, "auth.clients[0].jwks_file");
        assert!(e.1.contains("private"), "{}", e.1);
    }
}
