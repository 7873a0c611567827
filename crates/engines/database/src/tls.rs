//! TLS client settings for database connections (rustls with aws-lc-rs): which roots to trust,
//! how much to verify, and an optional client certificate.

use std::sync::Arc;

use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject},
};

use crate::plugin::{DbError, DbResult};

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Encrypt only (libpq `require`/`prefer`, Vault's `insecure_tls`/`tls_skip_verify`).
    Nothing,
    /// The chain must lead to a trusted root; the host name is not checked (`verify-ca`).
    Chain,
    /// Chain and host name (`verify-full`).
    Full,
}

/// What a connection's TLS should look like.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub verify: Verify,
    /// PEM roots; when empty, the Mozilla roots.
    pub ca_pem: Option<String>,
    /// PEM certificate chain and private key for client authentication.
    pub client_cert_pem: Option<String>,
    pub client_key_pem: Option<String>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn roots(ca_pem: Option<&str>) -> DbResult<RootCertStore> {
    let mut store = RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert =
                    cert.map_err(|err| DbError::Config(format!("invalid CA certificate: {err}")))?;
                store
                    .add(cert)
                    .map_err(|err| DbError::Config(format!("invalid CA certificate: {err}")))?;
                added += 1;
            }
            if added == 0 {
                return Err(DbError::Config(
                    "failed to parse root certificate".to_owned(),
                ));
            }
        }
        None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(store)
}

/// Builds a rustls client configuration.
pub fn client_config(settings: &TlsSettings) -> DbResult<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| DbError::Config(format!("TLS setup failed: {err}")))?;
    let builder = match settings.verify {
        Verify::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider()))),
        Verify::Full => builder.with_root_certificates(roots(settings.ca_pem.as_deref())?),
        Verify::Chain => {
            let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots(settings.ca_pem.as_deref())?),
                provider(),
            )
            .build()
            .map_err(|err| DbError::Config(format!("TLS setup failed: {err}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
        }
    };
    match (&settings.client_cert_pem, &settings.client_key_pem) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| DbError::Config(format!("invalid client certificate: {err}")))?;
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                .map_err(|err| DbError::Config(format!("invalid client private key: {err}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|err| DbError::Config(format!("invalid client certificate: {err}")))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(DbError::Config(
            "a client certificate needs both the certificate and its private key".to_owned(),
        )),
    }
}

/// Splits one PEM bundle holding a certificate chain and a private key (MySQL's
/// `tls_certificate_key`).
pub fn split_cert_and_key(bundle: &str) -> DbResult<(String, String)> {
    let mut certs = String::new();
    let mut key = String::new();
    let mut current: Option<&mut String> = None;
    for line in bundle.lines() {
        if line.starts_with("-----BEGIN ") {
            current = Some(if line.contains("PRIVATE KEY") {
                &mut key
            } else {
                &mut certs
            });
        }
        if let Some(target) = current.as_deref_mut() {
            target.push_str(line);
            target.push('\n');
        }
        if line.starts_with("-----END ") {
            current = None;
        }
    }
    if certs.is_empty() || key.is_empty() {
        return Err(DbError::Config(
            "tls_certificate_key must hold a certificate and its private key".to_owned(),
        ));
    }
    Ok((certs, key))
}

/// Accepts any certificate but still checks the handshake signature, so the session is at
/// least bound to the key the server presented.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Full WebPKI verification, except that a certificate issued for another name is accepted.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_each_verification_mode() {
        for verify in [Verify::Nothing, Verify::Chain, Verify::Full] {
            let settings = TlsSettings {
                verify,
                ca_pem: None,
                client_cert_pem: None,
                client_key_pem: None,
            };
            assert!(client_config(&settings).is_ok(), "{verify:?}");
        }
        let bad = TlsSettings {
            verify: Verify::Full,
            ca_pem: Some("not a certificate".to_owned()),
            client_cert_pem: None,
            client_key_pem: None,
        };
        assert!(client_config(&bad).is_err());
    }

    #[test]
    fn splits_a_cert_and_key_bundle() {
        let bundle = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n\
                      -----BEGIN PRIVATE KEY-----\nBBB\n-----END PRIVATE KEY-----\n";
        let (cert, key) = split_cert_and_key(bundle).unwrap();
        assert!(cert.contains("AAA") && !cert.contains("BBB"));
        assert!(key.contains("BBB"));
        assert!(split_cert_and_key("nothing").is_err());
    }
}
