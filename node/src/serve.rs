//! The network commands: `omsyn run`, `omsyn sync`, `omsyn relay`, and `omsyn status`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use omsyn_core::Repo;
use omsyn_core::service::{Service, SyncState};
use serde_json::json;

use crate::net::daemon::{self, OnRevoked, Shared};
use crate::net::ticket::Ticket;
use crate::net::{self, NetOptions};
use crate::output::{emit, fmt_ms, moment};

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn parse_tickets(peers: &[String]) -> Result<Vec<Ticket>> {
    peers
        .iter()
        .map(|p| {
            p.parse::<Ticket>()
                .map_err(|e| anyhow::anyhow!("--peer: {e}"))
        })
        .collect()
}

/// The daemon's network side: a revoked daemon wipes its data and exits with code 3.
pub(crate) async fn shared(repo: Arc<Repo>, options: &NetOptions) -> Result<Shared> {
    let changed = daemon::watch_commits(&repo);
    daemon::dispose_off_path(&repo);
    Shared::start(repo, options, OnRevoked::ExitProcess, changed).await
}

/// `options` for one sync with the peer `ticket` names, with the relay the ticket names when
/// none was given: an endpoint without a relay cannot dial one, so a peer reachable only
/// through its relay (a home unit behind a carrier's NAT) would never be reached from its
/// ticket alone. Only for the sync the user asked for with that ticket: a daemon takes no
/// relay from a ticket (a ticket is an unsigned hint; a crafted one would have it keep a
/// connection to any relay), it says what to add.
fn with_ticket_relay(mut options: NetOptions, ticket: &Ticket) -> NetOptions {
    if options.relay.is_none() {
        options.relay.clone_from(&ticket.relay);
    }
    options
}

/// The network options the command line gave.
pub(crate) fn net_options(args: &crate::cli::NetArgs) -> NetOptions {
    NetOptions {
        listen: args.listen,
        relay: args.relay.clone(),
        mdns: !args.no_mdns,
        relay_only: args.relay_only,
        relay_ca: args.relay_ca.clone(),
    }
}

/// `omsyn run [--http ADDR [--http-public]]`: the dashboard serves patient data, so a
/// non-loopback address needs saying so.
pub(crate) fn run_command(
    service: Arc<Service>,
    json: bool,
    net: &crate::cli::NetArgs,
    peers: &[String],
    (http, http_public): (Option<std::net::SocketAddr>, bool),
    dispatch: crate::control::Dispatch,
) -> Result<()> {
    if let Some(addr) = http
        && !addr.ip().is_loopback()
        && !http_public
    {
        anyhow::bail!(
            "--http {addr} is not a loopback address: the dashboard shows patient data; add --http-public to serve it there anyway"
        );
    }
    run(service, json, net_options(net), peers, http, dispatch)
}

/// `omsyn run`: prints the id and ticket (and the dashboard's URL with `--http`), then serves
/// until interrupted.
pub(crate) fn run(
    service: Arc<Service>,
    json: bool,
    options: NetOptions,
    peers: &[String],
    http: Option<std::net::SocketAddr>,
    dispatch: crate::control::Dispatch,
) -> Result<()> {
    let tickets = parse_tickets(peers)?;
    if options.relay.is_none()
        && let Some(relay) = tickets.iter().find_map(|t| t.relay.as_deref())
    {
        tracing::warn!(
            relay,
            "a peer's ticket names a relay, and this node runs without one: it reaches that peer only at the ticket's addresses (add --relay {relay} to reach it through the relay too)"
        );
    }
    let repo = service.repo().clone();
    let data = repo.data_dir().to_owned();
    warn_about_enrolment(&repo);
    runtime()?.block_on(async move {
        let shared = shared(repo, &options).await?;
        let listener = crate::control::bind(&data)?;
        let control = tokio::spawn(crate::control::serve(
            listener,
            shared.clone(),
            service.clone(),
            dispatch,
        ));
        let dashboard = match http {
            Some(addr) => Some(crate::http::bind(addr).await?),
            None => None,
        };
        let url = dashboard.as_ref().map(|d| d.url.clone());
        let web =
            dashboard.map(|d| tokio::spawn(crate::http::serve(d, shared.clone(), service.clone())));
        let ticket = shared.net.ticket()?;
        // One line per fact, flushed at once: scripts and tests read the ticket from here.
        if json {
            outln!(
                "{}",
                json!({ "id": ticket.node, "ticket": ticket.to_string(), "dashboard": url })
            );
        } else {
            outln!("id:        {}", ticket.node);
            outln!("ticket:    {ticket}");
            if let Some(url) = &url {
                outln!("dashboard: {url}");
            }
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let result = daemon::run(shared, tickets, shutdown_signal()).await;
        control.abort();
        if let Some(web) = web {
            web.abort();
        }
        result
    })
}

/// Peers refuse a node that is not enrolled or whose certificate expired: say so at start.
fn warn_about_enrolment(repo: &Repo) {
    match repo.certificate() {
        Ok(Some(cert)) => {
            let left = cert.grant().not_after_ms - omsyn_node::clock::now().unix_millis();
            if left <= 0 {
                tracing::warn!(
                    "this node's certificate has expired: peers will refuse it until a base renews it (omsyn enroll)"
                );
            }
        }
        Ok(None) => tracing::warn!(
            "this node is not enrolled: peers will refuse it (omsyn enroll request, approve at a base, install)"
        ),
        Err(e) => tracing::warn!(error = %e, "reading this node's certificate failed"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// What `omsyn sync` was asked for.
pub(crate) struct SyncRequest<'a> {
    /// The peer's ticket, as given.
    pub(crate) peer: &'a str,
    /// Show progress on stderr even when it is not a terminal.
    pub(crate) progress: bool,
    /// Give up when the peer sends nothing for this long.
    pub(crate) idle_limit: std::time::Duration,
}

/// `omsyn sync`: one session with one peer until both are caught up; prints a summary, and
/// progress on stderr while data arrives (`progress`, or a terminal; not for a command the daemon
/// runs, whose output returns at its end).
pub(crate) fn sync_once(
    repo: Arc<Repo>,
    json: bool,
    options: NetOptions,
    request: SyncRequest<'_>,
    daemon: Option<&Shared>,
) -> Result<()> {
    use std::io::IsTerminal;
    let SyncRequest {
        peer,
        progress,
        idle_limit,
    } = request;
    let ticket: Ticket = peer.parse().map_err(|e| anyhow::anyhow!("--peer: {e}"))?;
    let options = with_ticket_relay(options, &ticket);
    let terminal = std::io::stderr().is_terminal();
    let show = daemon.is_none() && (progress || (terminal && !json));
    let once = |shared: Shared| {
        let target = ticket.clone();
        async move {
            if show {
                // The dial can take seconds on a bad path: say what is being waited for.
                eprintln!("connecting to {} ...", target.node.short());
            }
            let shown =
                show.then(|| tokio::spawn(show_progress(shared.events.subscribe(), terminal)));
            let outcome = daemon::sync_with(&shared, &target, idle_limit)
                .await
                .map_err(|e| unreached_hint(e, &target));
            if let Some(shown) = shown {
                shown.abort();
                if terminal {
                    eprint!("\r\x1b[K");
                }
            }
            outcome
        }
    };
    let outcome = match daemon {
        // Inside the daemon (a forwarded command): use its endpoint and runtime.
        Some(shared) => tokio::runtime::Handle::current().block_on(once(shared.clone()))?,
        None => runtime()?.block_on(async move {
            let shared = shared(repo, &options).await?;
            tracing::debug!("endpoint bound");
            let endpoint = shared.net.endpoint.clone();
            let outcome = once(shared).await;
            endpoint.close().await;
            outcome
        })?,
    };
    emit(json, &outcome, || summary(&ticket, &outcome));
    if !outcome.caught_up {
        anyhow::bail!("the session ended before both sides were caught up");
    }
    Ok(())
}

/// A peer never reached: say what to check, not only what the network said.
fn unreached_hint(e: anyhow::Error, target: &Ticket) -> anyhow::Error {
    if !e
        .chain()
        .any(|c| c.to_string().starts_with("connecting to"))
    {
        return e;
    }
    e.context(format!(
        "could not reach {}: is `omsyn run` running there, and is the ticket its current one (`omsyn ticket` there)?",
        target.node.short()
    ))
}

/// What one sync did, for people.
fn summary(ticket: &Ticket, outcome: &net::driver::Outcome) -> String {
    let s = &outcome.stats;
    let ended = if outcome.caught_up {
        ""
    } else {
        " (ended before catching up)"
    };
    format!(
        "synced with {}: {} documents sent, {} received; {} bytes sent, {} received ({} and {} of changes); {} round trip(s); {} ms{ended}",
        ticket.node.short(),
        s.docs_sent,
        s.docs_received,
        s.bytes_sent,
        s.bytes_received,
        s.change_bytes_sent,
        s.change_bytes_received,
        s.rounds_to_catch_up.max(1),
        outcome.millis,
    )
}

/// Prints each progress event of the session on stderr: rewriting one line on a terminal, a line
/// each otherwise. Ends when aborted or when the session's events stop.
async fn show_progress(
    mut events: tokio::sync::broadcast::Receiver<net::events::NetEvent>,
    terminal: bool,
) {
    use tokio::sync::broadcast::error::RecvError;
    let started = std::time::Instant::now();
    loop {
        let stats = match events.recv().await {
            Ok(net::events::NetEvent::Progress { stats, .. }) => stats,
            Ok(_) | Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        };
        let line = format!(
            "received {} documents, {:.1} MB ({} documents, {:.1} MB sent), {:.0} s",
            stats.docs_received,
            stats.bytes_received as f64 / 1e6,
            stats.docs_sent,
            stats.bytes_sent as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
        if terminal {
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
    }
}

/// `omsyn ticket`: the daemon's live ticket when `omsyn run` serves this data directory (the
/// command is forwarded to it); otherwise the ticket `omsyn run --listen ADDR --relay URL` will
/// have, which names addresses only when the port is given (else it is chosen at start).
pub(crate) fn ticket(
    repo: &Repo,
    json: bool,
    listen: Option<std::net::SocketAddr>,
    relay: Option<&str>,
    daemon: Option<&Shared>,
) -> Result<()> {
    let ticket = match daemon {
        Some(shared) => shared.net.ticket()?,
        None => {
            let bound: Vec<_> = listen.into_iter().filter(|a| a.port() != 0).collect();
            if bound.is_empty() {
                tracing::warn!(
                    "no `omsyn run` serves {}, and without --listen ADDR:PORT the port is unknown: this ticket names no address (give `omsyn run` and this command the same --listen)",
                    repo.data_dir().display()
                );
            }
            Ticket {
                node: repo.id(),
                addrs: net::addrs::reachable_at(&bound),
                relay: relay.map(str::to_owned),
            }
        }
    };
    let text = ticket.to_string();
    emit(
        json,
        &json!({
            "id": ticket.node,
            "ticket": text,
            "served": daemon.is_some(),
            "addrs": ticket.addrs,
            "relay": ticket.relay,
        }),
        || text.clone(),
    );
    Ok(())
}

/// `omsyn relay`: runs a relay server until interrupted.
pub(crate) fn relay(
    json: bool,
    listen: std::net::SocketAddr,
    tls: Option<(PathBuf, PathBuf)>,
) -> Result<()> {
    runtime()?.block_on(async move {
        let tls_paths = tls.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
        let (server, url) = net::relay::start(listen, tls_paths).await?;
        if json {
            outln!("{}", json!({ "relay": url }));
        } else {
            outln!("relay: {url}");
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        shutdown_signal().await;
        server.shutdown().await.context("stopping the relay")?;
        Ok(())
    })
}

/// `omsyn status`: peers seen and when, and per peer the patients it needs with when each was
/// last in sync with it.
pub(crate) fn status(svc: &Service, json: bool) -> Result<()> {
    let repo = svc.repo();
    let state = svc.sync_status()?;
    let peers: Vec<_> = state
        .peers
        .iter()
        .map(|p| {
            let grant = p.certificate.as_ref().map(|c| c.grant());
            let patients: Vec<_> = p
                .patients
                .iter()
                .map(|f| json!({ "patient": f.patient, "name": f.name, "last_synced": f.synced_ms.and_then(moment) }))
                .collect();
            json!({
                "id": p.id,
                "name": grant.map(|g| g.name.clone()),
                "role": grant.map(|g| g.role),
                "last_seen": p.record.last_seen_ms.and_then(moment),
                "caught_up": p.record.caught_up_ms.and_then(moment),
                "acked_seq": p.record.acked_seq,
                "patients": patients,
            })
        })
        .collect();
    let value = json!({ "id": repo.id(), "seq": repo.log_position()?, "peers": peers });
    emit(json, &value, || status_text(repo.id(), &state));
    Ok(())
}

fn status_text(id: omsyn_core::NodeId, state: &SyncState) -> String {
    let never = || "never".to_owned();
    let mut s = format!("node {id}\n");
    if state.peers.is_empty() {
        s.push_str("no peers seen yet\n");
    }
    for p in &state.peers {
        let who = p
            .certificate
            .as_ref()
            .map(|c| format!(" ({}, {})", c.grant().name, c.grant().role))
            .unwrap_or_default();
        s.push_str(&format!(
            "peer {}{who}  last seen {}  caught up {}\n",
            p.id.short(),
            p.record.last_seen_ms.map_or_else(never, fmt_ms),
            p.record.caught_up_ms.map_or_else(never, fmt_ms),
        ));
        for f in &p.patients {
            s.push_str(&format!(
                "  {} ({}): last synced {}\n",
                f.name,
                f.patient,
                f.synced_ms.map_or_else(never, fmt_ms)
            ));
        }
    }
    s
}
