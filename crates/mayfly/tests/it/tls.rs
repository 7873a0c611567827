//! A TLS listener with a certificate from a private CA: TLS 1.3 only, client certificates
//! requested but not required, and the CLI trusting the CA through `-ca-cert`.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

use crate::support::{Options, Server, Storage, TlsFiles, read};

/// Writes a CA and a server certificate for `localhost`/`127.0.0.1` into `dir`.
fn tls_files(dir: &Path) -> TlsFiles {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Mayfly test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
        .expect("CA certificate");

    let server_key = KeyPair::generate().expect("server key");
    let server_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server params");
    let server_cert = server_params
        .signed_by(&server_key, &ca)
        .expect("server certificate");

    let cert_file = dir.join("server.pem");
    let key_file = dir.join("server-key.pem");
    std::fs::write(&cert_file, server_cert.pem()).expect("write cert");
    std::fs::write(&key_file, server_key.serialize_pem()).expect("write key");
    TlsFiles {
        cert_file,
        key_file,
        ca_pem: ca.pem().into_bytes(),
        listener_extra: "  tls_min_version = \"tls13\"".to_owned(),
    }
}

fn client(ca_pem: &[u8]) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem).expect("CA")])
}

#[tokio::test]
async fn tls_listener_serves_clients_with_and_without_certificates() {
    let certs = tempfile::tempdir().expect("temporary directory");
    let tls = tls_files(certs.path());
    let ca_file = certs.path().join("ca.pem");
    std::fs::write(&ca_file, &tls.ca_pem).expect("write CA");
    let server = Server::start(Options {
        tls: Some(tls.clone()),
        ..Options::new(Storage::Inmem)
    })
    .await;
    assert!(server.addr().starts_with("https://"));
    let init = server.init_unsealed(1, 1).await;

    // No client certificate: it is requested, not required.
    let plain = client(&tls.ca_pem).build().expect("client");
    let resp = read(
        plain
            .get(server.url("sys/seal-status"))
            .send()
            .await
            .expect("TLS request without a client certificate"),
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["sealed"], false);

    // Any self-signed client certificate is accepted at the TLS layer.
    let client_cert = rcgen::generate_simple_self_signed(vec!["some-client".to_owned()])
        .expect("client certificate");
    let identity_pem = format!(
        "{}{}",
        client_cert.cert.pem(),
        client_cert.signing_key.serialize_pem()
    );
    let with_cert = client(&tls.ca_pem)
        .identity(reqwest::Identity::from_pem(identity_pem.as_bytes()).expect("identity"))
        .build()
        .expect("client");
    let resp = read(
        with_cert
            .get(server.url("auth/token/lookup-self"))
            .header("X-Vault-Token", &init.root_token)
            .send()
            .await
            .expect("TLS request with a client certificate"),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.body);

    // The certificate is valid for the DNS name too.
    let by_name = plain
        .get(format!(
            "https://localhost:{}/v1/sys/seal-status",
            server.port()
        ))
        .send()
        .await
        .expect("request by host name");
    assert_eq!(by_name.status(), 200);

    // tls_min_version = "tls13" turns TLS 1.2 clients away.
    let old = client(&tls.ca_pem)
        .tls_version_max(reqwest::tls::Version::TLS_1_2)
        .build()
        .expect("client");
    assert!(
        old.get(server.url("sys/seal-status")).send().await.is_err(),
        "a TLS 1.2-only client must not get through"
    );
    let ca_arg = format!("-ca-cert={}", ca_file.display());
    let status = server.cli(None, &["status", &ca_arg]).await;
    assert_eq!(status.code, 0, "{status:?}");
    assert!(
        status
            .stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Sealed", "false"]),
        "{}",
        status.stdout
    );
    let no_ca = server.cli(None, &["status"]).await;
    assert_eq!(
        no_ca.code, 2,
        "without the CA the CLI cannot verify: {no_ca:?}"
    );
}
