//! The OAuth 2.0 JWT bearer flow's assertion (`salesforce-api.md` §3.2): an RS256-signed JWT with
//! `iss` = the consumer key, `sub` = the username, `aud` = the login URL, and an `exp` less than
//! three minutes ahead, signed with the private key whose certificate is uploaded to the connected
//! app.
//!
//! The key is read from a file into a [`SecretSlice`] and kept only as a [`PrivateKey`], whose
//! `Debug` shows nothing and whose bytes are zeroed on drop; an assertion is a [`SecretString`]
//! (it is a credential for as long as it is valid). Neither is ever logged or put in an error.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretBox, SecretSlice, SecretString};
use serde::Serialize;

/// The `grant_type` of the JWT bearer flow (RFC 7523).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// How far ahead of now an assertion's `exp` is set. Salesforce wants it "within 3 minutes"; two
/// leave a minute for clock skew between this machine and Salesforce in either direction.
pub const ASSERTION_VALIDITY: Duration = Duration::from_secs(120);

/// The claims Salesforce reads from an assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claims {
    /// The connected app's consumer key.
    pub iss: String,
    /// The Salesforce username the token is for.
    pub sub: String,
    /// `https://login.salesforce.com`, `https://test.salesforce.com` or the My Domain URL.
    pub aud: String,
    /// Expiry in seconds since the Unix epoch.
    pub exp: u64,
}

impl Claims {
    /// The claims of an assertion made at `now`.
    pub fn new(client_id: &str, username: &str, audience: &str, now: SystemTime) -> Claims {
        let exp = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(ASSERTION_VALIDITY)
            .as_secs();
        Claims {
            iss: client_id.to_owned(),
            sub: username.to_owned(),
            aud: audience.to_owned(),
            exp,
        }
    }
}

/// An RSA private key that signs assertions. Cloning shares it; `Debug` shows nothing of it.
#[derive(Clone)]
pub struct PrivateKey(Arc<SecretBox<EncodingKey>>);

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey([redacted])")
    }
}

/// Why a private key file cannot be used. Texts describe the file, never its contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("cannot read {path}: {kind}")]
    Unreadable {
        /// The file.
        path: String,
        /// What went wrong, e.g. "entity not found".
        kind: String,
    },
    /// The key is protected by a passphrase, which the proxy does not take.
    #[error(
        "{path} holds a passphrase-protected key; store it decrypted (e.g. `openssl pkey -in \
         encrypted.key -out {path}`) and protect the file instead"
    )]
    Encrypted {
        /// The file.
        path: String,
    },
    /// Not a PEM RSA private key (PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`).
    #[error(
        "{path} is not a PEM RSA private key (BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY); the \
         JWT bearer flow needs the RSA key whose certificate is uploaded to the connected app"
    )]
    NotRsaPrivateKey {
        /// The file.
        path: String,
    },
}

impl PrivateKey {
    /// Reads a PEM RSA private key from a file, checking that it can sign.
    ///
    /// # Errors
    /// A [`KeyError`] naming the file (never quoting it) when it cannot be read or used.
    pub fn from_file(path: &Path) -> Result<PrivateKey, KeyError> {
        let shown = path.display().to_string();
        let pem = std::fs::read(path)
            .map(SecretSlice::from)
            .map_err(|e| KeyError::Unreadable {
                path: shown.clone(),
                kind: e.kind().to_string(),
            })?;
        PrivateKey::from_pem(&pem, &shown)
    }

    /// A key from PEM text; `name` says where it came from in errors.
    ///
    /// # Errors
    /// A [`KeyError`] when the text is not a usable RSA private key.
    pub fn from_pem(pem: &SecretSlice<u8>, name: &str) -> Result<PrivateKey, KeyError> {
        let bytes = pem.expose_secret();
        // `ENCRYPTED PRIVATE KEY` (PKCS#8) or a `Proc-Type: 4,ENCRYPTED` header (OpenSSL's PKCS#1).
        if bytes.windows(9).any(|w| w == b"ENCRYPTED") {
            return Err(KeyError::Encrypted {
                path: name.to_owned(),
            });
        }
        let not_rsa = || KeyError::NotRsaPrivateKey {
            path: name.to_owned(),
        };
        let key = EncodingKey::from_rsa_pem(bytes).map_err(|_| not_rsa())?;
        let key = PrivateKey(Arc::new(SecretBox::new(Box::new(key))));
        // A public key or a truncated one passes the PEM reading above; only signing tells.
        key.sign(&Claims::new("probe", "probe", "probe", UNIX_EPOCH))
            .map_err(|_| not_rsa())?;
        Ok(key)
    }

    /// Signs `claims` as an RS256 JWT.
    ///
    /// # Errors
    /// When the key cannot sign (not after [`PrivateKey::from_pem`] accepted it).
    pub fn sign(&self, claims: &Claims) -> Result<SecretString, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            claims,
            self.0.expose_secret(),
        )
        .map(SecretString::from)
    }
}

/// RSA key pairs made at test time, shared by a test binary's unit tests.
#[cfg(test)]
pub(crate) mod test_keys {
    use std::sync::OnceLock;

    use rsa::RsaPrivateKey;
    use rsa::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};

    /// A private key (PKCS#8 PEM) and its public key (SPKI PEM).
    pub(crate) struct KeyPair {
        pub(crate) private_pem: String,
        pub(crate) public_pem: String,
        pub(crate) key: RsaPrivateKey,
    }

    fn generate() -> KeyPair {
        let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("RSA keygen");
        KeyPair {
            private_pem: key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
            public_pem: key
                .to_public_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap(),
            key,
        }
    }

    /// The key the sandbox trusts in tests.
    pub(crate) fn trusted() -> &'static KeyPair {
        static KEY: OnceLock<KeyPair> = OnceLock::new();
        KEY.get_or_init(generate)
    }

    /// A key nobody trusts.
    pub(crate) fn stranger() -> &'static KeyPair {
        static KEY: OnceLock<KeyPair> = OnceLock::new();
        KEY.get_or_init(generate)
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation};
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    use rsa::pkcs8::LineEnding;
    use serde_json::Value;

    use super::*;

    fn key_from(pem: &str) -> Result<PrivateKey, KeyError> {
        PrivateKey::from_pem(&SecretSlice::from(pem.as_bytes().to_vec()), "key.pem")
    }

    #[test]
    fn claims_carry_the_settings_and_expire_two_minutes_ahead() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let c = Claims::new(
            "3MVG9consumer",
            "integration@example.com",
            "https://test.salesforce.com",
            now,
        );
        assert_eq!(c.iss, "3MVG9consumer");
        assert_eq!(c.sub, "integration@example.com");
        assert_eq!(c.aud, "https://test.salesforce.com");
        assert_eq!(c.exp, 1_700_000_120);
        assert!(ASSERTION_VALIDITY < Duration::from_secs(180));
        let json = serde_json::to_value(&c).unwrap();
        let mut names: Vec<_> = json.as_object().unwrap().keys().collect();
        names.sort();
        assert_eq!(
            names,
            ["aud", "exp", "iss", "sub"],
            "only the claims Salesforce reads"
        );
    }

    #[test]
    fn an_assertion_is_rs256_and_verifies_with_the_public_key() {
        let pair = test_keys::trusted();
        let key = key_from(&pair.private_pem).unwrap();
        let claims = Claims::new(
            "cid",
            "user@example.com",
            "https://login.salesforce.com",
            SystemTime::now(),
        );
        let jwt = key.sign(&claims).unwrap();
        let jwt = jwt.expose_secret();
        let header = jsonwebtoken::decode_header(jwt).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&["https://login.salesforce.com"]);
        validation.set_issuer(&["cid"]);
        let data = jsonwebtoken::decode::<Value>(
            jwt,
            &DecodingKey::from_rsa_pem(pair.public_pem.as_bytes()).unwrap(),
            &validation,
        )
        .unwrap();
        assert_eq!(data.claims["sub"], "user@example.com");
        assert_eq!(data.claims["exp"], claims.exp);
        // The other key's public half refuses it.
        assert!(
            jsonwebtoken::decode::<Value>(
                jwt,
                &DecodingKey::from_rsa_pem(test_keys::stranger().public_pem.as_bytes()).unwrap(),
                &validation,
            )
            .is_err()
        );
    }

    #[test]
    fn pkcs1_keys_are_read_too() {
        let pkcs1 = test_keys::trusted()
            .key
            .to_pkcs1_pem(LineEnding::LF)
            .unwrap()
            .to_string();
        assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        key_from(&pkcs1).unwrap();
    }

    #[test]
    fn unusable_keys_are_refused_without_quoting_them() {
        let public = &test_keys::trusted().public_pem;
        let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkq\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let cases = [
            (public.as_str(), "not a PEM RSA private key"),
            ("hunter2", "not a PEM RSA private key"),
            (encrypted, "passphrase-protected"),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----\n",
                "not a PEM RSA private key",
            ),
        ];
        for (pem, reason) in cases {
            let e = key_from(pem).unwrap_err().to_string();
            assert!(e.contains("key.pem"), "{e}");
            assert!(e.contains(reason), "{e}");
            assert!(!e.contains("MII") && !e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = PrivateKey::from_file(Path::new("/nonexistent/dir/key.pem")).unwrap_err();
        assert!(matches!(e, KeyError::Unreadable { .. }));
        assert!(e.to_string().contains("/nonexistent/dir/key.pem"), "{e}");
    }

    #[test]
    fn debug_shows_nothing_of_the_key() {
        let key = key_from(&test_keys::trusted().private_pem).unwrap();
        assert_eq!(format!("{key:?}"), "PrivateKey([redacted])");
    }
}
