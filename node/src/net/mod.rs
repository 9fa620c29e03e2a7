//! The network side of a node: the iroh endpoint, tickets, the per-peer session driver, the daemon.
//!
//! **Boundary:** this module is the only one that knows iroh. It converts iroh's `EndpointId` to
//! omsyn-core's `NodeId` at the edge; the protocol itself lives in `omsyn_core::sync`.

pub mod addrs;
pub mod admission;
pub mod daemon;
pub mod driver;
pub mod events;
mod inflow;
pub mod relay;
pub mod shared;
pub mod ticket;

use anyhow::{Context, Result};
use iroh::address_lookup::memory::MemoryLookup;
use iroh::endpoint::{PortmapperConfig, presets};
use iroh::{Endpoint, EndpointAddr, NetReportConfig, RelayMode, RelayUrl, SecretKey};
use omsyn_core::{NodeId, Repo};
use std::net::SocketAddr;

use ticket::Ticket;

/// The sync protocol's ALPN. The version in it changes only with an incompatible handshake;
/// protocol versions are negotiated in `Hello` so that two versions can say they differ.
pub const ALPN: &[u8] = b"omsyn/sync/1";

/// How to set up the endpoint.
#[derive(Debug, Clone, Default)]
pub struct NetOptions {
    /// Address to bind UDP on (default 0.0.0.0:0).
    pub listen: Option<SocketAddr>,
    /// A relay to use (home relay, and for reaching peers behind NAT).
    pub relay: Option<String>,
    /// Discover peers on the local network with mDNS.
    pub mdns: bool,
    /// Use only the relay: no direct UDP paths (for tests that prove the relay path works).
    pub relay_only: bool,
    /// A private CA (PEM) to trust for an HTTPS relay, instead of the public web roots.
    pub relay_ca: Option<std::path::PathBuf>,
}

/// A bound endpoint plus the lookup we feed peer addresses into.
#[derive(Debug, Clone)]
pub struct Net {
    pub endpoint: Endpoint,
    pub lookup: MemoryLookup,
    pub relay: Option<RelayUrl>,
    /// Local-network discovery, when enabled: the daemon dials the peers it announces.
    pub mdns: Option<iroh_mdns_address_lookup::MdnsAddressLookup>,
}

pub fn node_id(id: iroh::EndpointId) -> Result<NodeId> {
    NodeId::from_bytes(*id.as_bytes()).context("peer id")
}

fn endpoint_id(id: &NodeId) -> Result<iroh::EndpointId> {
    iroh::EndpointId::from_bytes(id.as_bytes()).context("node id")
}

/// Binds an endpoint with the node's key. No n0 service (relays, DNS, pkarr) is contacted unless
/// configured: the Minimal preset plus explicit options, with port mapping and HTTPS probes off.
pub async fn bind(repo: &Repo, options: &NetOptions) -> Result<Net> {
    let secret = SecretKey::from_bytes(&repo.identity().key.secret_bytes());
    let secret_public = secret.public();
    let lookup = MemoryLookup::new();
    let relay: Option<RelayUrl> = options
        .relay
        .as_deref()
        .map(|r| {
            r.parse()
                .with_context(|| format!("--relay: invalid relay url {r:?}"))
        })
        .transpose()?;
    let mut builder = Endpoint::builder(presets::Minimal)
        .secret_key(secret)
        .alpns(vec![ALPN.to_vec()])
        .portmapper_config(PortmapperConfig::Disabled)
        .transport_config(transport_config()?)
        // Probes go only to configured relays; without them no home relay is ever chosen.
        .net_report_config(if relay.is_some() {
            NetReportConfig::default()
        } else {
            NetReportConfig::minimal()
        })
        .address_lookup(lookup.clone())
        .relay_mode(match &relay {
            Some(url) => RelayMode::custom([url.clone()]),
            None => RelayMode::Disabled,
        });
    if let Some(ca) = &options.relay_ca {
        use rustls::pki_types::pem::PemObject;
        let roots = rustls::pki_types::CertificateDer::pem_file_iter(ca)
            .with_context(|| format!("--relay-ca {}", ca.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("--relay-ca {}: not a PEM certificate", ca.display()))?;
        builder = builder.ca_tls_config(iroh::tls::CaTlsConfig::custom_roots(roots));
    }
    if options.relay_only {
        builder = builder.clear_ip_transports();
    } else if let Some(addr) = options.listen {
        builder = builder
            .clear_ip_transports()
            .bind_addr(addr)
            .with_context(|| format!("--listen {addr}"))?;
    }
    let mdns = if options.mdns {
        let mdns = iroh_mdns_address_lookup::MdnsAddressLookup::builder()
            .build(secret_public)
            .context("starting mDNS discovery")?;
        builder = builder.address_lookup(mdns.clone());
        Some(mdns)
    } else {
        None
    };
    let endpoint = builder
        .bind()
        .await
        .context("binding the network endpoint")?;
    Ok(Net {
        endpoint,
        lookup,
        relay,
        mdns,
    })
}

/// A phone walks out of coverage without saying goodbye: keep-alives every few seconds and a short
/// idle timeout notice a dead peer within [`IDLE_TIMEOUT`], so the daemon starts reconnecting then.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(3);
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The QUIC settings of every node's endpoint (and the benchmarks' baseline).
pub fn transport_config() -> Result<iroh::endpoint::QuicTransportConfig> {
    let idle = iroh::endpoint::IdleTimeout::try_from(IDLE_TIMEOUT).context("idle timeout")?;
    let mut builder = iroh::endpoint::QuicTransportConfig::builder()
        .keep_alive_interval(KEEP_ALIVE)
        .max_idle_timeout(Some(idle))
        .initial_rtt(initial_rtt())
        .congestion_controller_factory(congestion()?);
    // Most sessions carry a few kilobytes: path MTU probes (four sizes up to 1,452 B, each
    // echoed by the peer) were a third of a shift's bytes on a 384 kbit/s link, queued ahead of
    // the push, while what they buy — up to 252 B more per datagram — pays off only in bulk
    // transfers. `OMSYN_MTU_DISCOVERY=on` turns them back on, for measuring.
    if env_flag("OMSYN_MTU_DISCOVERY") != Some(true) {
        builder = builder.mtu_discovery_config(None);
    }
    Ok(builder.build())
}

/// A number from the environment, for measuring a transport setting (see BENCHMARKS.md).
fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// `on`/`off` from the environment, for measuring a transport setting.
fn env_flag(name: &str) -> Option<bool> {
    match std::env::var(name).ok().as_deref() {
        Some("on") => Some(true),
        Some("off") => Some(false),
        _ => None,
    }
}

/// The round trip assumed before one is measured: it sets how long a lost handshake packet
/// waits to be sent again (about three times this). `OMSYN_INITIAL_RTT_MS` overrides it, for
/// measuring (see BENCHMARKS.md).
fn initial_rtt() -> std::time::Duration {
    std::time::Duration::from_millis(env_number("OMSYN_INITIAL_RTT_MS").unwrap_or(INITIAL_RTT_MS))
}

/// QUIC's own default (RFC 9002).
const INITIAL_RTT_MS: u64 = 333;

type Congestion = std::sync::Arc<dyn noq_proto::congestion::ControllerFactory + Send + Sync>;

/// The congestion window a connection starts with, in bytes: twenty datagrams of QUIC's
/// minimum size, twice RFC 9002's ten. A reconnect's push (a shift of 62 entries is about 10 KB
/// with its `Hello`) then leaves in the first flight after the handshake: with ten, the sender
/// stalled a round trip for the last few datagrams, and its pacer, which spreads a window over
/// a round trip, sent slower than a 384 kbit/s link.
const INITIAL_WINDOW: u64 = 20 * 1200;

/// The congestion controller: QUIC's default (cubic) unless `OMSYN_CONGESTION` names `newreno`
/// or `bbr`, for measuring them on a given link (see BENCHMARKS.md). It starts with
/// [`INITIAL_WINDOW`], or `OMSYN_INITIAL_WINDOW` bytes (cubic and newreno; bbr sizes its own).
fn congestion() -> Result<Congestion> {
    use noq_proto::congestion::{Bbr3Config, CubicConfig, NewRenoConfig};
    let window = env_number("OMSYN_INITIAL_WINDOW").unwrap_or(INITIAL_WINDOW);
    Ok(match std::env::var("OMSYN_CONGESTION").ok().as_deref() {
        None | Some("" | "cubic") => {
            std::sync::Arc::new(CubicConfig::default().initial_window(window).clone())
        }
        Some("newreno") => {
            std::sync::Arc::new(NewRenoConfig::default().initial_window(window).clone())
        }
        Some("bbr") => std::sync::Arc::new(Bbr3Config::default()),
        Some(other) => anyhow::bail!("OMSYN_CONGESTION={other}: expected cubic, newreno or bbr"),
    })
}

impl Net {
    /// This node's ticket as of now: its id, the addresses another machine can dial it at (a
    /// socket bound to every interface is named by each interface's address, read afresh), and
    /// its relay.
    pub fn ticket(&self) -> Result<Ticket> {
        let addr = self.endpoint.addr();
        let observed: Vec<SocketAddr> = addr.ip_addrs().copied().collect();
        Ok(Ticket {
            node: node_id(self.endpoint.id())?,
            addrs: addrs::ticket_addrs(
                &self.endpoint.bound_sockets(),
                &addrs::interface_addrs(),
                &observed,
            ),
            relay: addr
                .relay_urls()
                .next()
                .cloned()
                .or_else(|| self.relay.clone())
                .map(|u| u.to_string()),
        })
    }

    /// Logs the new ticket whenever this node's addresses change (an interface came up or went
    /// away, the relay saw a new public address): peers given the old one may need the new one.
    /// Runs until the endpoint is dropped.
    pub async fn announce_address_changes(self) {
        use iroh::Watcher;
        use tokio_stream::StreamExt;
        let mut last = self.ticket().ok();
        let mut changes = self.endpoint.watch_addr().stream_updates_only();
        while changes.next().await.is_some() {
            let Ok(ticket) = self.ticket() else { continue };
            if last.as_ref() != Some(&ticket) {
                tracing::info!(%ticket, "this node's addresses changed");
                last = Some(ticket);
            }
        }
    }

    /// Makes a ticket's addresses known to the endpoint, so the node can be dialled by id.
    pub fn learn(&self, ticket: &Ticket) -> Result<iroh::EndpointId> {
        let id = endpoint_id(&ticket.node)?;
        let mut addr = EndpointAddr::new(id);
        for a in &ticket.addrs {
            addr = addr.with_ip_addr(*a);
        }
        if let Some(r) = &ticket.relay {
            let url: RelayUrl = r
                .parse()
                .with_context(|| format!("relay url {r:?} in ticket"))?;
            addr = addr.with_relay_url(url);
        }
        self.lookup.add_endpoint_info(addr);
        Ok(id)
    }
}

pub use crate::clock::now_ms;

/// This node was revoked: destroys its store key (crypto-shredding) and data. Nothing more may be
/// served or written by a revoked device.
pub fn wipe(repo: &omsyn_core::Repo) {
    let dir = repo.data_dir();
    match repo.wipe() {
        Ok(destroyed) => tracing::error!(
            data = %dir.display(),
            destroyed = ?destroyed,
            "keys destroyed, store removed; this node is wiped"
        ),
        Err(e) => {
            tracing::error!(error = %e, "wiping the node failed; destroy the device's data by hand")
        }
    }
}
