//! The webhook receiver over TLS with client-certificate and bearer-token authentication:
//! a client with the right certificate and token gets 200 and its events reach the intake;
//! a wrong token gets 401; a client without a certificate cannot complete the handshake.

mod fake_intake;

use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kaudit_agent::config::{AgentConfig, Overrides, Secret};
use kaudit_agent::telemetry::Metrics;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let server_key = rcgen::KeyPair::generate().expect("server key");
    let server = rcgen::CertificateParams::new(vec!["localhost".into()])
        .expect("server params")
        .signed_by(&server_key, &ca, &ca_key)
        .expect("server cert");
    let client_key = rcgen::KeyPair::generate().expect("client key");
    let client = rcgen::CertificateParams::new(vec!["kube-apiserver".into()])
        .expect("client params")
        .signed_by(&client_key, &ca, &ca_key)
        .expect("client cert");
    Pki {
        ca: ca.pem(),
        server_cert: server.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client.pem(),
        client_key: client_key.serialize_pem(),
    }
}

/// An intake that acknowledges and counts event lines.
fn sink() -> (u16, Arc<AtomicU64>) {
    let lines = Arc::new(AtomicU64::new(0));
    let counter = lines.clone();
    let port = fake_intake::start(move |body| {
        if let Some(plain) = body {
            counter.fetch_add(
                plain.iter().filter(|&&b| b == b'\n').count() as u64,
                Ordering::SeqCst,
            );
        }
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"
    });
    (port, lines)
}

fn client_config(pki: &Pki, with_certificate: bool) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pki.ca.as_bytes()) {
        roots.add(cert.expect("ca pem")).expect("root");
    }
    let builder =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
    let config = if with_certificate {
        let certs = CertificateDer::pem_slice_iter(pki.client_cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("client pem");
        let key = PrivateKeyDer::from_pem_slice(pki.client_key.as_bytes()).expect("client key");
        builder.with_client_auth_cert(certs, key).expect("client auth")
    } else {
        builder.with_no_client_auth()
    };
    Arc::new(config)
}

/// POSTs `body` over TLS; the status code, or `None` when the connection fails.
async fn post(port: u16, config: Arc<rustls::ClientConfig>, token: &str, body: &str) -> Option<u16> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.ok()?;
    let request = format!(
        "POST /k8s-audit HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn the_webhook_requires_the_client_certificate_and_the_token() {
    let pki = pki();
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    let (intake_port, received) = sink();
    let webhook_port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let overrides = Overrides {
        listen: Some(format!("127.0.0.1:{webhook_port}").parse().expect("addr")),
        tls_cert: Some(write(dir, "server.pem", &pki.server_cert)),
        tls_key: Some(write(dir, "server.key", &pki.server_key)),
        tls_client_ca: Some(write(dir, "ca.pem", &pki.ca)),
        webhook_token_file: Some(write(dir, "token", "s3cret\n")),
        intake_url: Some(format!("http://127.0.0.1:{intake_port}")),
        intake_key: Some(Secret::new("key".into())),
        state_dir: Some(dir.join("state")),
        ..Overrides::default()
    };
    let config = AgentConfig::load(None, overrides, None).expect("config");
    let metrics = Arc::new(Metrics::new());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let body = r#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[
        {"level":"Metadata","auditID":"a-1","stage":"ResponseComplete","requestURI":"/api/v1/pods","verb":"list","user":{"username":"admin"},"stageTimestamp":"2024-05-01T10:11:12.123456Z","requestReceivedTimestamp":"2024-05-01T10:11:12.000000Z"},
        {"level":"Metadata","auditID":"a-2","stage":"ResponseComplete","requestURI":"/healthz","verb":"get","user":{"username":"admin"},"stageTimestamp":"2024-05-01T10:11:13.123456Z","requestReceivedTimestamp":"2024-05-01T10:11:13.000000Z"}]}"#;
    let outcome = Arc::new(Mutex::new(Vec::new()));
    let results = outcome.clone();
    let watched = received.clone();
    runtime
        .block_on(kaudit_agent::run_until(config, metrics.clone(), async move {
            // Wait for the listener, then try the three clients.
            let deadline = Instant::now() + Duration::from_secs(30);
            while tokio::net::TcpStream::connect(("127.0.0.1", webhook_port))
                .await
                .is_err()
            {
                assert!(Instant::now() < deadline, "the webhook receiver did not start");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let mut answers = Vec::new();
            answers.push(post(webhook_port, client_config(&pki, true), "s3cret", body).await);
            answers.push(post(webhook_port, client_config(&pki, true), "wrong", body).await);
            answers.push(post(webhook_port, client_config(&pki, false), "s3cret", body).await);
            *results.lock().expect("lock") = answers;
            while watched.load(Ordering::SeqCst) < 2 {
                assert!(Instant::now() < deadline, "the events did not reach the intake");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }))
        .expect("agent");
    let results = outcome.lock().expect("lock").clone();
    assert_eq!(results, vec![Some(200), Some(401), None]);
    assert_eq!(received.load(Ordering::SeqCst), 2);
    assert_eq!(Metrics::get(&metrics.webhook_events), 2);
    assert_eq!(Metrics::get(&metrics.webhook_rejected), 1);
}
