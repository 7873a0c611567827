//! TLS for listeners: certificates from PEM files, a minimum version, and client certificates
//! that are requested but never required (the cert auth method decides what they are worth).

use std::{path::PathBuf, sync::Arc};

use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
    client::danger::HandshakeSignatureValid,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, UnixTime, pem::PemObject},
    server::{
        WebPkiClientVerifier,
        danger::{ClientCertVerified, ClientCertVerifier},
    },
};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key}: cannot read {path:?}: {message}")]
    File {
        key: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("invalid TLS configuration: {0}")]
    Config(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMinVersion {
    Tls12,
    Tls13,
}

/// A listener's TLS settings, from `tls_cert_file`, `tls_key_file`, `tls_client_ca_file`
/// and `tls_min_version`.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: Option<PathBuf>,
    pub min_version: TlsMinVersion,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Builds the rustls server configuration for one listener.
pub fn server_config(options: &TlsOptions) -> Result<Arc<ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&options.cert_file)
        .and_then(|iter| iter.collect::<Result<_, _>>())
        .map_err(|err| TlsError::File {
            key: "tls_cert_file",
            path: options.cert_file.clone(),
            message: err.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::File {
            key: "tls_cert_file",
            path: options.cert_file.clone(),
            message: "no certificate found".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&options.key_file).map_err(|err| TlsError::File {
        key: "tls_key_file",
        path: options.key_file.clone(),
        message: err.to_string(),
    })?;
    let versions: &[&'static rustls::SupportedProtocolVersion] = match options.min_version {
        TlsMinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsMinVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let provider = provider();
    let verifier: Arc<dyn ClientCertVerifier> = match &options.client_ca_file {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(path)
                .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                .map_err(|err| TlsError::File {
                    key: "tls_client_ca_file",
                    path: path.clone(),
                    message: err.to_string(),
                })?;
            for ca in cas {
                roots
                    .add(ca)
                    .map_err(|err| TlsError::Config(format!("tls_client_ca_file: {err}")))?;
            }
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|err| TlsError::Config(err.to_string()))?
        }
        None => Arc::new(RequestAnyClientCert {
            provider: provider.clone(),
        }),
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|err| TlsError::Config(err.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|err| TlsError::Config(format!("tls_cert_file/tls_key_file: {err}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Asks for a client certificate without requiring one or judging its issuer: the client
/// must still prove it holds the key (handshake signatures are checked), and the cert auth
/// method later decides whether the certificate means anything.
#[derive(Debug)]
struct RequestAnyClientCert {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for RequestAnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
