//! HTTPS on the listener: reads `[server.tls]`'s PEM certificate chain and private key into a
//! rustls 0.23 server configuration with the ring provider, TLS 1.2 and 1.3 only. A file that
//! cannot be used stops start-up with an error naming the file and the reason (never its content).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsSettings;

/// Why the TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("server.tls: {file}: {reason}")]
pub struct TlsError {
    /// The file at fault.
    pub file: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

impl TlsError {
    fn new(file: &Path, reason: impl Into<String>) -> Self {
        TlsError {
            file: file.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The rustls configuration for the listener: the certificate chain and key of `settings`,
/// TLS 1.2 and 1.3 (older versions are not offered), no client certificates.
///
/// # Errors
/// A [`TlsError`] naming the file that cannot be read, holds no certificate or key, or whose key
/// does not fit the certificate.
pub fn server_config(settings: &TlsSettings) -> Result<ServerConfig, TlsError> {
    let certs = read_certs(&settings.cert_file)?;
    let key = read_key(&settings.key_file)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::new(&settings.cert_file, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        // rustls says whether the key is unusable or does not match the leaf certificate.
        .map_err(|e| {
            TlsError::new(
                &settings.key_file,
                format!("cannot be used with the certificate in server.tls.cert_file: {e}"),
            )
        })
}

fn read_certs(file: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(file)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::new(file, format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::new(
            file,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

fn read_key(file: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(file)?;
    // The error names the PEM problem, never the key material.
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        TlsError::new(
            file,
            format!("holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })
}

fn read(file: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(file).map_err(|e| TlsError::new(file, format!("cannot read: {}", e.kind())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path, cert: &str, key: &str) -> TlsSettings {
        std::fs::write(dir.join("cert.pem"), cert).unwrap();
        std::fs::write(dir.join("key.pem"), key).unwrap();
        TlsSettings {
            cert_file: dir.join("cert.pem"),
            key_file: dir.join("key.pem"),
        }
    }

    #[test]
    fn a_self_signed_pair_loads() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let s = settings(
            dir.path(),
            &cert.cert.pem(),
            &cert.signing_key.serialize_pem(),
        );
        server_config(&s).unwrap();
    }

    #[test]
    fn errors_name_the_file_and_reason_without_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let key_pem = cert.signing_key.serialize_pem();

        let e = server_config(&settings(dir.path(), "hunter2", &key_pem)).unwrap_err();
        assert!(e.file.ends_with("cert.pem"), "{e}");
        assert!(e.reason.contains("no PEM certificate"), "{e}");

        let e = server_config(&settings(dir.path(), &cert.cert.pem(), "hunter2")).unwrap_err();
        assert!(e.file.ends_with("key.pem"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");

        let wrong_key = other.signing_key.serialize_pem();
        let e = server_config(&settings(dir.path(), &cert.cert.pem(), &wrong_key)).unwrap_err();
        assert!(e.file.ends_with("key.pem"), "{e}");
        assert!(!e.to_string().contains("PRIVATE KEY"), "{e}");

        let mut missing = settings(dir.path(), &cert.cert.pem(), &key_pem);
        missing.cert_file = dir.path().join("absent.pem");
        let e = server_config(&missing).unwrap_err();
        assert!(e.to_string().contains("absent.pem: cannot read"), "{e}");
    }
}
