//! `omsyn bench link`: a user-space UDP proxy that behaves like a bad link — one-way delay,
//! random loss, duplication, reordering and a rate limit with a bounded queue — for tests and
//! benchmarks of real nodes over a rural path (the kernel here has no netem).
//!
//! A client dials the proxy's `--listen` address; every datagram goes on to `--to` from a socket
//! of the proxy's own per client (so replies find their way back), and both directions pass
//! through a [`Link`] with the same settings and independent seeded random streams. Commands on
//! standard input change the path while it runs: `down` (every datagram is lost, as when a phone
//! leaves the Wi-Fi), `up`, and `stats` (one JSON line of counters on standard output).
//!
//! The impairment itself is [`Link`]: a sans-IO queue that decides, for each datagram and the
//! time it arrived, when (and whether, and how often) it leaves. With the same seed and the same
//! arrivals it decides the same way, so a failure can be replayed.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::io::AsyncBufReadExt;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What the link does to every datagram, in each direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Impairment {
    /// One-way delay.
    pub(crate) delay: Duration,
    /// Probability that a datagram is lost.
    pub(crate) loss: f64,
    /// Probability that a datagram arrives twice.
    pub(crate) duplicate: f64,
    /// Probability that a datagram is held back long enough for later ones to overtake it.
    pub(crate) reorder: f64,
    /// Link rate in kbit/s (IP and UDP headers included); 0 for unlimited.
    pub(crate) rate_kbit: u64,
    /// Longest a datagram waits for the link before it is dropped (a router's buffer).
    pub(crate) queue: Duration,
}

/// IPv4 and UDP headers: what a datagram costs on the link beyond its payload.
const HEADER_BYTES: usize = 28;
/// How far a reordered datagram falls behind: up to this on top of its delay.
const REORDER_MAX: Duration = Duration::from_millis(40);
/// A duplicate follows its original this much later.
const DUPLICATE_GAP: Duration = Duration::from_millis(1);

/// Counters of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct LinkStats {
    /// Datagrams offered to the link.
    pub(crate) packets_in: u64,
    /// Their payload bytes.
    pub(crate) bytes_in: u64,
    /// Lost at random.
    pub(crate) lost: u64,
    /// Dropped because the queue was full.
    pub(crate) queue_drops: u64,
    /// Dropped because the path was down.
    pub(crate) down_drops: u64,
    /// Extra copies sent.
    pub(crate) duplicated: u64,
    /// Held back to be overtaken.
    pub(crate) reordered: u64,
    /// Datagrams delivered (copies included).
    pub(crate) packets_out: u64,
    /// Their payload bytes.
    pub(crate) bytes_out: u64,
}

/// One direction of the link: datagrams in, datagrams due out.
#[derive(Debug)]
pub(crate) struct Link {
    impairment: Impairment,
    rng: StdRng,
    /// When the link finishes sending what it has accepted so far (the rate limit's clock).
    busy_until: Option<Instant>,
    due: BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>>,
    order: u64,
    up: bool,
    stats: LinkStats,
}

impl Link {
    /// A link with its own random stream (`seed`).
    pub(crate) fn new(impairment: Impairment, seed: u64) -> Link {
        Link {
            impairment,
            rng: StdRng::seed_from_u64(seed),
            busy_until: None,
            due: BinaryHeap::new(),
            order: 0,
            up: true,
            stats: LinkStats::default(),
        }
    }

    /// Cuts or restores the path. Cutting it loses what is in flight too: a radio out of range
    /// delivers nothing.
    pub(crate) fn set_up(&mut self, up: bool) {
        self.up = up;
        if !up {
            self.stats.down_drops += self.due.len() as u64;
            self.due.clear();
            self.busy_until = None;
        }
    }

    /// Counters so far.
    pub(crate) fn stats(&self) -> LinkStats {
        self.stats
    }

    /// A datagram arrived at `now`: decides its fate.
    pub(crate) fn admit(&mut self, now: Instant, datagram: Vec<u8>) {
        self.stats.packets_in += 1;
        self.stats.bytes_in += datagram.len() as u64;
        // Draw every decision for every datagram, so one setting never shifts the others' stream.
        let lost = self.rng.random_bool(self.impairment.loss.clamp(0.0, 1.0));
        let duplicated = self
            .rng
            .random_bool(self.impairment.duplicate.clamp(0.0, 1.0));
        let reordered = self
            .rng
            .random_bool(self.impairment.reorder.clamp(0.0, 1.0));
        let lag = REORDER_MAX.mul_f64(self.rng.random::<f64>());
        if !self.up {
            self.stats.down_drops += 1;
            return;
        }
        let Some(sent) = self.transmit(now, datagram.len()) else {
            self.stats.queue_drops += 1;
            return;
        };
        if lost {
            self.stats.lost += 1;
            return;
        }
        let mut arrives = sent + self.impairment.delay;
        if reordered {
            self.stats.reordered += 1;
            arrives += lag;
        }
        if duplicated {
            self.stats.duplicated += 1;
            self.push(arrives + DUPLICATE_GAP, datagram.clone());
        }
        self.push(arrives, datagram);
    }

    /// When the datagram has been serialised onto the link, or `None` if the queue is full.
    fn transmit(&mut self, now: Instant, len: usize) -> Option<Instant> {
        if self.impairment.rate_kbit == 0 {
            return Some(now);
        }
        let start = self.busy_until.map_or(now, |b| b.max(now));
        if start.duration_since(now) > self.impairment.queue {
            return None;
        }
        let bits = ((len + HEADER_BYTES) * 8) as f64;
        let sent = start + Duration::from_secs_f64(bits / (self.impairment.rate_kbit as f64 * 1e3));
        self.busy_until = Some(sent);
        Some(sent)
    }

    fn push(&mut self, at: Instant, datagram: Vec<u8>) {
        self.order += 1;
        self.due.push(Reverse((at, self.order, datagram)));
    }

    /// When the next datagram is due out.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The next datagram due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.next_due()? > now {
            return None;
        }
        let Reverse((_, _, datagram)) = self.due.pop()?;
        self.stats.packets_out += 1;
        self.stats.bytes_out += datagram.len() as u64;
        Some(datagram)
    }
}

/// Largest datagram relayed (QUIC's stay far below it).
const MAX_DATAGRAM: usize = 65_535;
/// Most clients the proxy keeps a socket for.
const MAX_CLIENTS: usize = 64;

/// Both directions plus where each client's datagrams go.
struct Proxy {
    listen: Arc<UdpSocket>,
    to: SocketAddr,
    /// Client → server, with the client each datagram came from.
    up: Link,
    up_from: BTreeMap<u64, SocketAddr>,
    /// Server → client.
    down: Link,
    down_to: BTreeMap<u64, SocketAddr>,
    clients: BTreeMap<SocketAddr, Arc<UdpSocket>>,
    replies: mpsc::Sender<(SocketAddr, Vec<u8>)>,
    readers: tokio::task::JoinSet<()>,
}

/// `omsyn bench link`.
pub(crate) fn run_args(args: &crate::cli::LinkArgs) -> Result<()> {
    for (name, p) in [
        ("--loss", args.loss),
        ("--duplicate", args.duplicate),
        ("--reorder", args.reorder),
    ] {
        anyhow::ensure!(
            (0.0..=1.0).contains(&p),
            "{name} {p}: a probability is between 0 and 1"
        );
    }
    let impairment = Impairment {
        delay: Duration::from_millis(args.delay_ms),
        loss: args.loss,
        duplicate: args.duplicate,
        reorder: args.reorder,
        rate_kbit: args.rate_kbit,
        queue: Duration::from_millis(args.queue_ms),
    };
    run(args.listen, args.to, impairment, args.seed)
}

/// Runs the proxy until standard input closes; prints `{"listen": ADDR}` once bound.
pub(crate) fn run(
    listen: SocketAddr,
    to: SocketAddr,
    impairment: Impairment,
    seed: u64,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let socket = UdpSocket::bind(listen)
            .await
            .with_context(|| format!("--listen {listen}"))?;
        outln!("{}", json!({ "listen": socket.local_addr()?.to_string() }));
        flush_stdout();
        let (replies, mut replies_rx) = mpsc::channel(1024);
        let mut proxy = Proxy {
            listen: Arc::new(socket),
            to,
            // Independent streams per direction, both fixed by the seed.
            up: Link::new(impairment, seed.wrapping_mul(2)),
            up_from: BTreeMap::new(),
            down: Link::new(impairment, seed.wrapping_mul(2).wrapping_add(1)),
            down_to: BTreeMap::new(),
            clients: BTreeMap::new(),
            replies,
            readers: tokio::task::JoinSet::new(),
        };
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let next = [proxy.up.next_due(), proxy.down.next_due()]
                .into_iter()
                .flatten()
                .min();
            let wake = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                received = proxy.listen.recv_from(&mut buf) => {
                    let (n, from) = received.context("receiving")?;
                    proxy.handle_from_client(from, buf[..n].to_vec()).await?;
                }
                Some((client, datagram)) = replies_rx.recv() => {
                    proxy.handle_from_server(client, datagram);
                }
                line = stdin.next_line() => {
                    match line.context("reading commands")? {
                        None => break,
                        Some(command) => proxy.command(command.trim()),
                    }
                }
                () = wake => proxy.deliver().await,
            }
        }
        proxy.readers.shutdown().await;
        Ok(())
    })
}

fn flush_stdout() {
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

/// Hands every datagram the server sends to `client`'s socket on to the proxy, until the proxy
/// stops. A datagram that reached the server's address while nothing listened there (a server
/// restarting) comes back as an ICMP "port unreachable", which the kernel reports on the next
/// call on this connected socket as "connection refused" (or "unreachable", for a host or
/// network that was briefly gone): that call fails, the socket does not. A real path carries the
/// server's later replies, so the proxy does too (stopping here made a restarted home unit
/// unreachable through the link for good).
async fn relay_replies(
    socket: Arc<UdpSocket>,
    client: SocketAddr,
    replies: mpsc::Sender<(SocketAddr, Vec<u8>)>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match socket.recv(&mut buf).await {
            Ok(n) => {
                if replies.send((client, buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
            Err(e) if reported_by_icmp(&e) => {
                tracing::debug!(%client, error = %e, "a datagram to the server came back undelivered");
            }
            Err(e) => {
                tracing::warn!(%client, error = %e, "no more replies to this client");
                return;
            }
        }
    }
}

/// An error that tells of one earlier datagram (an ICMP error), not of the socket.
fn reported_by_icmp(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionRefused, HostUnreachable, NetworkUnreachable};
    matches!(
        e.kind(),
        ConnectionRefused | HostUnreachable | NetworkUnreachable
    )
}

impl Proxy {
    async fn handle_from_client(&mut self, from: SocketAddr, datagram: Vec<u8>) -> Result<()> {
        if !self.clients.contains_key(&from) {
            if self.clients.len() >= MAX_CLIENTS {
                return Ok(());
            }
            let unspecified: SocketAddr = match self.to {
                SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
                SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
            };
            let socket = Arc::new(UdpSocket::bind(unspecified).await.context("binding")?);
            let (reader, replies) = (socket.clone(), self.replies.clone());
            self.readers.spawn(relay_replies(reader, from, replies));
            // Replies come only from the server: connect filters out anyone else.
            socket.connect(self.to).await.context("connecting")?;
            self.clients.insert(from, socket);
        }
        let order = self.up.order + 1;
        admit_logged(&mut self.up, "to_server", datagram);
        // Remember whose datagram each queued one is (a duplicate shares its original's sender).
        for o in order..=self.up.order {
            self.up_from.insert(o, from);
        }
        Ok(())
    }

    fn handle_from_server(&mut self, client: SocketAddr, datagram: Vec<u8>) {
        let order = self.down.order + 1;
        admit_logged(&mut self.down, "to_client", datagram);
        for o in order..=self.down.order {
            self.down_to.insert(o, client);
        }
    }

    /// Sends every datagram that is due, in both directions.
    async fn deliver(&mut self) {
        let now = Instant::now();
        while let Some((order, datagram)) = pop_with_order(&mut self.up, now) {
            if let Some(socket) = self
                .up_from
                .remove(&order)
                .and_then(|c| self.clients.get(&c))
            {
                let _ = socket.send(&datagram).await;
            }
        }
        while let Some((order, datagram)) = pop_with_order(&mut self.down, now) {
            if let Some(client) = self.down_to.remove(&order) {
                let _ = self.listen.send_to(&datagram, client).await;
            }
        }
    }

    fn command(&mut self, command: &str) {
        match command {
            "down" | "up" => {
                let up = command == "up";
                self.up.set_up(up);
                self.down.set_up(up);
                // What was queued is gone, and so is the bookkeeping of whose it was.
                if !up {
                    self.up_from.clear();
                    self.down_to.clear();
                }
                outln!("{}", json!({ "path": command }));
            }
            "stats" => {
                outln!(
                    "{}",
                    json!({ "to_server": self.up.stats(), "to_client": self.down.stats() })
                );
            }
            other => outln!(
                "{}",
                json!({ "error": format!("unknown command {other:?}") })
            ),
        }
        flush_stdout();
    }
}

/// Admits a datagram to one direction and logs its fate at debug level
/// (`OMSYN_LOG=omsyn::link=debug`): `bench field --timeline` shows what was on the wire when.
fn admit_logged(link: &mut Link, way: &str, datagram: Vec<u8>) {
    let (bytes, before) = (datagram.len(), link.stats());
    // Read only when the line is logged: parsing every datagram's headers costs the proxy
    // nothing it needs otherwise.
    let packets = tracing::enabled!(tracing::Level::DEBUG)
        .then(|| crate::quic_wire::packets(&datagram).to_string());
    let now = Instant::now();
    link.admit(now, datagram);
    let after = link.stats();
    let fate = if after.lost > before.lost {
        "lost"
    } else if after.queue_drops > before.queue_drops {
        "dropped (queue full)"
    } else if after.down_drops > before.down_drops {
        "dropped (path down)"
    } else {
        "queued"
    };
    let queued_ms = link
        .busy_until
        .map_or(0, |b| b.saturating_duration_since(now).as_millis());
    let packets = packets.as_deref();
    tracing::debug!(way, bytes, fate, queued_ms, packets, "datagram");
}

/// The next due datagram with its queue order (which says whose it is).
fn pop_with_order(link: &mut Link, now: Instant) -> Option<(u64, Vec<u8>)> {
    let Reverse((at, order, _)) = link.due.peek()?;
    if *at > now {
        return None;
    }
    let order = *order;
    link.pop_due(now).map(|d| (order, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn impairment() -> Impairment {
        Impairment {
            delay: Duration::from_millis(150),
            loss: 0.1,
            duplicate: 0.05,
            reorder: 0.05,
            rate_kbit: 1000,
            queue: Duration::from_millis(500),
        }
    }

    /// Feeds `n` datagrams of 1,000 bytes, one per millisecond, to a link with no rate limit;
    /// returns what came out, in order.
    fn run_link(seed: u64, n: u64) -> (Vec<u64>, LinkStats) {
        let unlimited = Impairment {
            rate_kbit: 0,
            ..impairment()
        };
        let mut link = Link::new(unlimited, seed);
        let start = Instant::now();
        for i in 0..n {
            let mut datagram = vec![0u8; 1000];
            datagram[..8].copy_from_slice(&i.to_le_bytes());
            link.admit(start + Duration::from_millis(i), datagram);
        }
        let mut out = Vec::new();
        while let Some(at) = link.next_due() {
            let d = link.pop_due(at).expect("due");
            out.push(u64::from_le_bytes(d[..8].try_into().expect("8 bytes")));
        }
        (out, link.stats())
    }

    #[test]
    fn the_same_seed_gives_the_same_losses_duplicates_and_order() {
        assert_eq!(run_link(7, 500), run_link(7, 500));
        assert_ne!(run_link(7, 500).0, run_link(8, 500).0);
    }

    #[test]
    fn a_link_loses_duplicates_and_reorders_about_as_often_as_asked() {
        let (out, stats) = run_link(1, 2000);
        let (lost, dup) = (stats.lost as f64 / 2000.0, stats.duplicated as f64 / 2000.0);
        assert!((0.07..0.13).contains(&lost), "{stats:?}");
        assert!((0.02..0.08).contains(&dup), "{stats:?}");
        assert!(
            out.windows(2).any(|w| w[0] > w[1]),
            "something was overtaken"
        );
        assert_eq!(stats.packets_out as usize, out.len());
    }

    #[test]
    fn the_rate_limit_spaces_datagrams_and_a_full_queue_drops() {
        let mut link = Link::new(
            Impairment {
                loss: 0.0,
                duplicate: 0.0,
                reorder: 0.0,
                ..impairment()
            },
            1,
        );
        let now = Instant::now();
        // 1,028 bytes at 1 Mbit/s take 8.2 ms: 100 at once queue for 822 ms, past the 500 ms
        // buffer, so the last ones are dropped.
        for _ in 0..100 {
            link.admit(now, vec![0; 1000]);
        }
        let stats = link.stats();
        assert_eq!(stats.queue_drops, 100 - 61, "{stats:?}");
        let first = link.next_due().expect("queued");
        assert!(
            first >= now + Duration::from_millis(158),
            "delay plus one datagram's time"
        );
    }

    #[test]
    fn a_path_that_is_down_delivers_nothing_until_it_is_up_again() {
        let lossless = Impairment {
            loss: 0.0,
            ..impairment()
        };
        let mut link = Link::new(lossless, 3);
        let now = Instant::now();
        link.admit(now, vec![1; 10]);
        link.set_up(false);
        link.admit(now, vec![2; 10]);
        assert_eq!(link.next_due(), None, "what was in flight is lost too");
        link.set_up(true);
        link.admit(now, vec![3; 10]);
        assert!(link.next_due().is_some());
        assert_eq!(link.stats().down_drops, 2);
    }
}
