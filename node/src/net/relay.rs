//! `omsyn relay`: an iroh relay server for nodes that cannot reach each other directly.
//! Plain HTTP (for tests and closed networks) or TLS with the operator's certificate files.
//! A relay forwards end-to-end encrypted QUIC packets: it never sees document contents.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};
use iroh_relay::server::{CertConfig, RelayConfig, Server, ServerConfig, TlsConfig};

/// Starts a relay; returns the server (stop it with `shutdown`) and its URL.
pub async fn start(listen: SocketAddr, tls: Option<(&Path, &Path)>) -> Result<(Server, String)> {
    let mut relay = RelayConfig::new(listen);
    if let Some((cert, key)) = tls {
        relay.tls = Some(TlsConfig::new(
            listen,
            CertConfig::Manual {
                server_config: tls_config(cert, key)?,
            },
        ));
    }
    let mut config = ServerConfig::default();
    config.relay = Some(relay);
    let server = Server::spawn(config)
        .await
        .context("starting the relay server")?;
    let url = match (server.https_addr(), server.http_addr()) {
        (Some(addr), _) => format!("https://{}", host_port(addr)),
        (None, Some(addr)) => format!("http://{}", host_port(addr)),
        (None, None) => anyhow::bail!("the relay server has no address"),
    };
    Ok((server, url))
}

fn tls_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", cert.display()))?;
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading {}", key.display()))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not match")
}

/// `localhost:PORT` for a wildcard bind (the URL must name a host), else the address itself.
fn host_port(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    }
}
