//! What every session task of a node shares ([`Shared`]: the repo, the store's commit watch, the
//! endpoint, the organisation key, the event channel, what a revoked node does). Apart from
//! `daemon.rs`, which runs the sessions, so the driver of one session needs nothing of the
//! daemon's loops.

use std::sync::Arc;

use anyhow::Result;
use omsyn_core::Repo;
use tokio::sync::{broadcast, watch};

use super::events::NetEvent;
use super::{Net, NetOptions};

/// What a node does when a peer tells it that it was revoked. Either way its data is destroyed
/// first (crypto-shredding).
#[derive(Debug, Clone)]
pub enum OnRevoked {
    /// Exit the process with code 3 (the daemon: nothing more may be served).
    ExitProcess,
    /// Record the reason in this flag, send [`NetEvent::Revoked`] and stop: every session and
    /// [`super::daemon::run`] end as soon as the flag is set (an embedding app then refuses every call, destroys
    /// its keystore key and tells the user).
    Report(Arc<watch::Sender<Option<String>>>),
}

/// Everything a session task needs.
#[derive(Debug, Clone)]
pub struct Shared {
    pub repo: Arc<Repo>,
    pub changed: watch::Receiver<u64>,
    pub net: Net,
    /// The organisation key, on the base that holds it: renews the certificates of peers.
    pub org: Option<Arc<omsyn_core::trust::OrgKey>>,
    /// What happens in sessions, for whoever subscribes.
    pub events: broadcast::Sender<NetEvent>,
    /// What to do when this node learns it was revoked.
    pub on_revoked: OnRevoked,
}

/// How many events a subscriber may fall behind before it loses the oldest.
const EVENT_BACKLOG: usize = 1024;

impl Shared {
    /// Binds the endpoint; loads the organisation key when this node holds it (a base holding it
    /// renews the certificates of the devices it meets). `changed` is the store's commit watch
    /// ([`watch_commits`], made once per open store: the store has one commit hook).
    pub async fn start(
        repo: Arc<Repo>,
        options: &NetOptions,
        on_revoked: OnRevoked,
        changed: watch::Receiver<u64>,
    ) -> Result<Shared> {
        let net = super::bind(&repo, options).await?;
        let org = omsyn_core::trust::OrgKey::load(repo.data_dir())?.map(Arc::new);
        Ok(Shared {
            changed,
            repo,
            net,
            org,
            events: broadcast::channel(EVENT_BACKLOG).0,
            on_revoked,
        })
    }

    /// Tells subscribers, if any.
    pub fn emit(&self, event: NetEvent) {
        let _ = self.events.send(event);
    }
}

/// Wires the store's commit hook to a watch channel sessions listen on: the log position of the
/// last commit that changed something (what it changed, each session reads from
/// `Store::last_commit` when it wakes; the watch keeps only the newest value anyway).
pub fn watch_commits(repo: &Repo) -> watch::Receiver<u64> {
    let (tx, rx) = watch::channel(0u64);
    repo.store().set_commit_hook(Box::new(move |committed| {
        let _ = tx.send(committed.seq);
    }));
    rx
}

/// Gives the store a thread of its own to drop the documents its cache lets go of: freeing a
/// patient record's Automerge document takes 40–60 µs, which a session's write otherwise pays
/// per document evicted before it can answer the peer. The thread ends with the store. If it
/// cannot be started, documents are dropped where they are evicted, as before.
pub fn dispose_off_path(repo: &Repo) {
    let (tx, rx) = std::sync::mpsc::channel::<Vec<Arc<omsyn_core::docs::Document>>>();
    let started = std::thread::Builder::new()
        .name("omsyn-dispose".into())
        .spawn(move || rx.into_iter().for_each(drop));
    match started {
        Ok(_) => repo.store().set_disposer(Box::new(move |evicted| {
            // The thread is gone only if it panicked: the documents are dropped here then.
            let _ = tx.send(evicted);
        })),
        Err(e) => tracing::warn!(error = %e, "no thread to drop evicted documents on"),
    }
}

/// Completes once this node learns it was revoked (never for [`OnRevoked::ExitProcess`]: the
/// process exits).
pub(super) async fn revoked(on_revoked: &OnRevoked) {
    match on_revoked {
        OnRevoked::Report(flag) => {
            let mut seen = flag.subscribe();
            let _ = seen.wait_for(Option::is_some).await;
        }
        OnRevoked::ExitProcess => std::future::pending().await,
    }
}
