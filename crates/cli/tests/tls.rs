//! TLS trust options against a local HTTPS server with a self-signed
//! certificate: `-ca-cert`, `VAULT_CACERT` and `-tls-skip-verify`.

use std::collections::BTreeMap;
use std::sync::Arc;

use mayfly_cli::run_captured;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// Serves every request with a fixed unsealed seal-status body. Returns
/// the address and the PEM of the certificate.
async fn start_tls_server() -> (String, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let pem = certified.cert.pem();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"type":"shamir","initialized":true,"sealed":false,"t":1,"n":1,"progress":0,"nonce":"","version":"0.1.0","storage_type":"redb"}"#;
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (format!("https://localhost:{port}"), pem)
}

async fn status(args: &[&str], env: &[(&str, &str)]) -> mayfly_cli::Captured {
    let mut all = vec!["status".to_string()];
    all.extend(args.iter().map(|s| s.to_string()));
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    run_captured(&all, "v", env, b"").await
}

#[tokio::test]
async fn tls_trust_options() {
    let (address, pem) = start_tls_server().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pem).unwrap();
    let ca = ca.to_string_lossy().into_owned();
    let addr_flag = format!("-address={address}");

    let out = status(&[&addr_flag], &[]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.starts_with("Error checking seal status: Get \""),
        "{out:?}"
    );

    let ca_flag = format!("-ca-cert={ca}");
    let out = status(&[&addr_flag, &ca_flag], &[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("Sealed          false"));

    let out = status(&[], &[("VAULT_ADDR", &address), ("VAULT_CACERT", &ca)]).await;
    assert_eq!(out.code, 0, "{out:?}");

    let out = status(&[&addr_flag, "-tls-skip-verify"], &[]).await;
    assert_eq!(out.code, 0, "{out:?}");

    let out = status(
        &[],
        &[("VAULT_ADDR", &address), ("VAULT_SKIP_VERIFY", "true")],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");

    let out = status(&[&addr_flag, "-ca-cert=/nonexistent/ca.pem"], &[]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.starts_with("Error loading CA certificate"));
}
