//! Syncing in the background: the daemon's accept and dial loops from `omsyn_node::net` on the
//! node's runtime, and a task that turns their events into [`NodeEvent`]s (noticing conflicts that
//! arrived with the changes).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use omsyn_core::{NodeId, Repo};
use omsyn_node::net::NetOptions;
use omsyn_node::net::daemon::{self, OnRevoked, Shared};
use omsyn_node::net::events::NetEvent;
use omsyn_node::net::ticket::Ticket;
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;

use crate::error::OmsynError;
use crate::events::{EventSink, NodeEvent};
use crate::types::{CareTask, OpenConflict};

/// What the sync tasks share with the node object.
#[derive(Debug, Clone)]
pub(crate) struct SyncContext {
    pub(crate) repo: Arc<Repo>,
    /// The front door every app call goes through (the same repo).
    pub(crate) service: Arc<omsyn_core::service::Service>,
    pub(crate) sink: EventSink,
    /// Peers with a live session, and how many sessions (a peer may dial while we dial it).
    pub(crate) connected: Arc<Mutex<BTreeMap<NodeId, usize>>>,
    /// Conflicts the app has been told about.
    pub(crate) known_conflicts: Arc<Mutex<BTreeSet<String>>>,
    /// Tasks the app has been told about, as it was told of them ([`told`]).
    pub(crate) known_tasks: Arc<Mutex<BTreeMap<String, String>>>,
    /// Set (with the reason) by the session that learns this node was revoked, before anything
    /// else happens: calls check it, and every session and the daemon stop on it.
    pub(crate) revoked: Arc<tokio::sync::watch::Sender<Option<String>>>,
    /// The store's commit watch, made once when the node opened (the store has one hook).
    pub(crate) changed: tokio::sync::watch::Receiver<u64>,
}

/// Background sync while it runs.
#[derive(Debug)]
pub(crate) struct SyncRunner {
    pub(crate) shared: Shared,
    pub(crate) ticket: String,
    stop: Arc<Notify>,
    daemon: JoinHandle<anyhow::Result<()>>,
    forwarder: JoinHandle<()>,
}

impl SyncRunner {
    /// Binds the endpoint and starts serving, dialling `peers`. Runs on the node's runtime.
    pub(crate) async fn start(
        ctx: SyncContext,
        options: NetOptions,
        peers: Vec<Ticket>,
    ) -> Result<SyncRunner, OmsynError> {
        let shared = bind(&ctx, &options).await?;
        let ticket = shared
            .net
            .ticket()
            .map_err(|e| OmsynError::Network(format!("{e:#}")))?
            .to_string();
        let stop = Arc::new(Notify::new());
        let forwarder = tokio::spawn(forward(
            shared.events.subscribe(),
            ctx.clone(),
            stop.clone(),
        ));
        let until_stopped = {
            let stop = stop.clone();
            async move { stop.notified().await }
        };
        let sink = ctx.sink.clone();
        let served = shared.clone();
        let daemon = tokio::spawn(async move {
            let result = daemon::run(served, peers, until_stopped).await;
            if let Err(e) = &result {
                sink.send(NodeEvent::SyncStopped {
                    error: Some(format!("{e:#}")),
                });
            }
            result
        });
        Ok(SyncRunner {
            shared,
            ticket,
            stop,
            daemon,
            forwarder,
        })
    }

    /// Ends every session and closes the endpoint.
    pub(crate) async fn stop(self) {
        self.stop.notify_one();
        let _ = self.daemon.await;
        self.forwarder.abort();
    }
}

/// Binds an endpoint for this node; a revoked node reports instead of exiting the app.
pub(crate) async fn bind(ctx: &SyncContext, options: &NetOptions) -> Result<Shared, OmsynError> {
    Shared::start(
        ctx.repo.clone(),
        options,
        OnRevoked::Report(ctx.revoked.clone()),
        ctx.changed.clone(),
    )
    .await
    .map_err(|e| OmsynError::Network(format!("{e:#}")))
}

/// One session with a peer until both are caught up. With `forward_events` its events reach the
/// app from here (when background sync runs, its own forwarder already delivers them).
pub(crate) async fn sync_once(
    ctx: &SyncContext,
    shared: &Shared,
    ticket: &Ticket,
    forward_events: bool,
) -> Result<omsyn_node::net::driver::Outcome, OmsynError> {
    let stop = Notify::new();
    let mut events = shared.events.subscribe();
    let session = daemon::sync_with(shared, ticket, omsyn_node::net::driver::IDLE_LIMIT);
    tokio::pin!(session);
    let outcome = loop {
        tokio::select! {
            outcome = &mut session => break outcome,
            event = events.recv(), if forward_events => {
                if let Ok(event) = event {
                    handle(ctx, &stop, event).await;
                }
            }
        }
    };
    while forward_events && let Ok(event) = events.try_recv() {
        handle(ctx, &stop, event).await;
    }
    outcome.map_err(|e| {
        if let Some(reason) = ctx.revoked.borrow().clone() {
            OmsynError::Revoked(reason)
        } else {
            OmsynError::Network(format!("{e:#}"))
        }
    })
}

/// Turns the network's events into the app's, until the channel closes.
async fn forward(mut events: broadcast::Receiver<NetEvent>, ctx: SyncContext, stop: Arc<Notify>) {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(count)) => {
                ctx.sink.send(NodeEvent::EventsLost { count });
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        handle(&ctx, &stop, event).await;
    }
}

async fn handle(ctx: &SyncContext, stop: &Notify, event: NetEvent) {
    match event {
        NetEvent::PeerConnected { peer, role, name } => {
            if let Ok(mut c) = ctx.connected.lock() {
                *c.entry(peer).or_default() += 1;
            }
            ctx.sink.send(NodeEvent::PeerConnected {
                peer: peer.to_string(),
                name,
                role: role.into(),
            });
        }
        NetEvent::PeerLost { peer, error } => {
            if last_session_ended(ctx, peer) {
                ctx.sink.send(NodeEvent::PeerLost {
                    peer: peer.to_string(),
                    error,
                });
            }
        }
        NetEvent::DocumentReceived { doc, .. } => document_received(ctx, &doc).await,
        NetEvent::CaughtUp { peer, stats } | NetEvent::Progress { peer, stats } => {
            ctx.sink.send(NodeEvent::SyncProgress {
                peer: peer.to_string(),
                docs_received: stats.docs_received,
                docs_sent: stats.docs_sent,
                bytes_received: stats.bytes_received,
                bytes_sent: stats.bytes_sent,
            })
        }
        NetEvent::Refused {
            peer,
            doc,
            reason,
            by_peer,
        } => ctx.sink.send(NodeEvent::ChangesRefused {
            peer: peer.to_string(),
            document: doc.to_string(),
            reason,
            by_peer,
        }),
        NetEvent::Withdrawn { doc } => {
            if let Some(patient) = doc.patient() {
                ctx.sink.send(NodeEvent::PatientWithdrawn {
                    patient: patient.to_string(),
                });
            }
        }
        NetEvent::Revoked { reason } => {
            // The session already set the flag (and the daemon stops on it); end the forwarder's
            // runner too.
            stop.notify_one();
            ctx.sink.send(NodeEvent::Revoked { reason });
        }
    }
}

/// Counts a session with `peer` as ended; whether it was the last. Only sessions that got as far
/// as verifying the peer count, so the last one to end makes the peer lost.
fn last_session_ended(ctx: &SyncContext, peer: NodeId) -> bool {
    ctx.connected
        .lock()
        .is_ok_and(|mut c| match c.get_mut(&peer) {
            Some(1) => c.remove(&peer).is_some(),
            Some(n) => {
                *n -= 1;
                false
            }
            None => false,
        })
}

/// Tells the app a document changed and, for a patient's, what it changed in her conflicts and
/// tasks.
async fn document_received(ctx: &SyncContext, doc: &omsyn_core::DocumentId) {
    let patient = doc.patient().cloned();
    ctx.sink.send(NodeEvent::DocumentChanged {
        document: doc.to_string(),
        patient: patient.as_ref().map(|p| p.to_string()),
    });
    if let Some(patient) = patient {
        let ctx = ctx.clone();
        let _ = tokio::task::spawn_blocking(move || {
            announce_conflicts(&ctx, Some(&patient));
            announce_tasks(&ctx, Some(&patient));
        })
        .await;
    }
}

/// What the app was told of a task: whose it is, when it is due or reaches the base, and how many
/// claimed it. A change in any of them is worth telling.
pub(crate) fn told(task: &omsyn_core::escalation::Task) -> String {
    format!(
        "{:?}|{:?}|{:?}|{}|{}",
        task.owner,
        task.due,
        task.escalates_at,
        task.escalated,
        task.claims.len()
    )
}

/// Tells the app about tasks for its user that are new to it or changed since it was told
/// (someone else claimed one, another call went unanswered), for one patient or all, through
/// the need gate (`Service::tasks_to_tell`); forgets the ones that closed. An app that misses
/// an event still finds every task in `tasks()`.
pub(crate) fn announce_tasks(ctx: &SyncContext, patient: Option<&omsyn_core::ids::PatientId>) {
    let Ok(mut known) = ctx.known_tasks.lock() else {
        return;
    };
    let Ok(tasks) = ctx.service.tasks_to_tell(patient, &mut known, told) else {
        return;
    };
    let me = ctx.repo.profile().staff_id.clone();
    for task in &tasks {
        ctx.sink.send(NodeEvent::TaskChanged {
            task: CareTask::new(task, me.as_ref()),
        });
    }
}

/// Tells the app about conflicts it has not been told about (one patient's, or all), through
/// the need gate (`Service::conflicts_to_tell`).
pub(crate) fn announce_conflicts(ctx: &SyncContext, patient: Option<&omsyn_core::ids::PatientId>) {
    let Ok(mut known) = ctx.known_conflicts.lock() else {
        return;
    };
    let Ok(conflicts) = ctx.service.conflicts_to_tell(patient, &mut known) else {
        return;
    };
    for conflict in &conflicts {
        ctx.sink.send(NodeEvent::ConflictAppeared {
            conflict: OpenConflict::from(conflict),
        });
    }
}
