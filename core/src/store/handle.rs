//! The [`Store`] value every operation goes through: the redb database, the document cache, the
//! keys, the commit hook; and [`Store::contain`], which turns a panic inside redb into an error.
//! Opening is in `open.rs`; each other concept adds its own methods in its own file.

use std::path::Path;
use std::sync::Mutex;

use redb::Database;

use super::cache::Cache;
use super::crypt::{Cipher, StoreKey, sealed_value_error};
use super::db::DbHandle;
use super::error::StoreError;
use crate::docs::DocumentId;
use crate::identity::{NodeId, NodeKey};

/// The store. Safe to share between threads; writes are serialised by redb.
pub struct Store {
    pub(super) db: DbHandle,
    pub(super) actor: NodeId,
    pub(super) signer: NodeKey,
    pub(super) cipher: Cipher,
    pub(super) cache: Mutex<Cache>,
    pub(super) poisoned: std::sync::atomic::AtomicBool,
    pub(super) epoch: [u8; 16],
    pub(super) commit_hook: Mutex<Option<CommitHook>>,
    /// What the last commit the hook was told of changed.
    pub(super) last_commit: Mutex<Option<std::sync::Arc<Committed>>>,
    /// This node's own certificates (its history and the newest), once read (every write asks
    /// which was in force): `None` until read.
    pub(super) own_certs: Mutex<Option<std::sync::Arc<Vec<crate::trust::Certificate>>>>,
    /// Where documents the cache let go of are dropped (`None`: on the spot).
    pub(super) disposer: Mutex<Option<Disposer>>,
}

/// What a store needs to be opened: the local node's signing key (every change it makes is
/// signed with it) and the key its contents are encrypted with.
#[derive(Debug, Clone)]
pub struct StoreKeys {
    /// The local node's key.
    pub signer: NodeKey,
    /// The encryption key.
    pub data: StoreKey,
}

/// Called after every durable commit that changed what a listener acts on — documents,
/// certificates, revocations, what is withheld or withdrawn, a patient removed — with what it
/// changed. Not after a commit of peer knowledge or derived rows alone: those wake nobody.
pub type CommitHook = Box<dyn Fn(&Committed) + Send + Sync>;

/// Takes documents the cache no longer keeps, to drop them elsewhere: dropping one is freeing
/// all of its Automerge op set, which a write otherwise pays on its way to the caller. This
/// crate starts no threads; the node gives it one ([`Store::set_disposer`]).
pub type Disposer = Box<dyn Fn(Vec<std::sync::Arc<crate::docs::Document>>) + Send + Sync>;

/// What one commit changed, as the commit hook is told ([`Store::last_commit`] keeps the last).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// The store's log position after the commit.
    pub seq: u64,
    /// The documents it entered in the change log, in log order: they hold the positions right
    /// before `seq`, up to it (writes are serialised), so a reader that had pushed up to
    /// `seq - documents.len()` needs no log read to know what to push next.
    pub documents: Vec<DocumentId>,
    /// How many commits since the store was opened stored a revocation, this one included (see
    /// [`Store::revocation_commits`]).
    pub revocation_commits: u64,
}

/// What a reader of [`Store::last_commit`] is told after `held` when a commit tells it `told`
/// (`told.revocation_commits` counted after `held`'s). Commits tell it after the write lock is
/// released, so two writers can tell out of order: the later commit is kept whichever told last
/// (a session woken by the earlier one would push up to it and never learn of the later), with
/// the count of revocations as of both.
fn later_of(held: Option<&Committed>, told: Committed) -> Committed {
    match held {
        Some(held) if held.seq > told.seq => Committed {
            revocation_commits: told.revocation_commits,
            ..held.clone()
        },
        _ => told,
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("actor", &self.actor)
            .field("epoch", &hex::encode(self.epoch))
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A store on `db`, the file at `path` (`None`: in memory).
    pub(super) fn from_db(db: Database, path: Option<&Path>, keys: &StoreKeys) -> Store {
        Store {
            db: DbHandle::new(db, path.map(Path::to_path_buf)),
            actor: keys.signer.id(),
            signer: keys.signer.clone(),
            cipher: Cipher::new(&keys.data),
            cache: Mutex::new(Cache::default()),
            poisoned: std::sync::atomic::AtomicBool::new(false),
            epoch: [0; 16],
            commit_hook: Mutex::new(None),
            last_commit: Mutex::new(None),
            own_certs: Mutex::new(None),
            disposer: Mutex::new(None),
        }
    }

    /// Runs a store operation, turning a panic inside redb (which a plain open allows on pages
    /// damaged outside redb) into a `Corrupt` error. After one, the store refuses further work:
    /// redb's in-memory state may be inconsistent, and nothing more should be written.
    pub(super) fn contain<T>(
        &self,
        f: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        use std::sync::atomic::Ordering;
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(StoreError::Corrupt(
                "an earlier operation found this store damaged; run `omsyn check`".into(),
            ));
        }
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
                self.poisoned.store(true, Ordering::SeqCst);
                Err(StoreError::Corrupt(panic_text(&panic)))
            });
        if let Err(StoreError::Disk(_)) = &result {
            // A full disk, a failed fsync: redb may refuse all work from now on, until the
            // database is opened again (see `db.rs`).
            self.db.note_failure();
        }
        result
    }

    /// The node that authors changes made through this store.
    pub fn actor(&self) -> NodeId {
        self.actor
    }

    /// The store's epoch: random, fixed when the store was created.
    pub fn epoch(&self) -> [u8; 16] {
        self.epoch
    }

    /// Registers the function called after every durable commit (the daemon wakes its sync
    /// sessions with it). Replaces any earlier one.
    pub fn set_commit_hook(&self, hook: CommitHook) {
        *self.commit_hook.lock().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    /// What the last commit that the hook was told of changed (`None` before the first): a
    /// session woken by the hook learns from it which documents to push without reading the
    /// log — unless commits came in between, which its position tells it.
    pub fn last_commit(&self) -> Option<std::sync::Arc<Committed>> {
        self.last_commit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many commits since the store was opened stored a revocation, as the last commit
    /// told. A live session compares it with what it saw last: the hook wakes it once for
    /// commits close together and it reads only the last of them, which may not be the one that
    /// stored the revocation.
    pub fn revocation_commits(&self) -> u64 {
        self.last_commit().map_or(0, |c| c.revocation_commits)
    }

    /// Keeps what a commit changed (up to `seq`: `documents`, and a revocation if
    /// `stored_revocation`) as the last commit, and tells the hook. Called by a commit once
    /// durable.
    pub(super) fn tell(&self, seq: u64, documents: Vec<DocumentId>, stored_revocation: bool) {
        let committed = {
            let mut last = self.last_commit.lock().unwrap_or_else(|p| p.into_inner());
            let before = last.as_ref().map_or(0, |c| c.revocation_commits);
            let told = Committed {
                seq,
                documents,
                revocation_commits: before + u64::from(stored_revocation),
            };
            let kept = std::sync::Arc::new(later_of(last.as_deref(), told));
            *last = Some(kept.clone());
            kept
        };
        if let Some(hook) = self
            .commit_hook
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            hook(&committed);
        }
    }

    /// Registers where documents the cache lets go of are dropped (see [`Disposer`]). Replaces
    /// any earlier one.
    pub fn set_disposer(&self, disposer: Disposer) {
        *self.disposer.lock().unwrap_or_else(|p| p.into_inner()) = Some(disposer);
    }

    /// Hands `evicted` to the disposer, or drops them here if there is none. Called with the
    /// cache's lock released.
    pub(super) fn dispose(&self, evicted: super::cache::Evicted) {
        if evicted.is_empty() {
            return;
        }
        match self
            .disposer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(disposer) => disposer(evicted),
            None => drop(evicted),
        }
    }

    /// Drops every cached document: the next read of each loads it from disk, as after
    /// opening the store (a benchmark that must not find documents warm uses it).
    pub fn clear_cache(&self) {
        let evicted = self.lock_cache().clear();
        self.dispose(evicted);
    }

    pub(super) fn lock_cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A poisoned cache only means a panic elsewhere mid-operation; its contents are still
        // consistent with disk (see the module invariant), so keep using it.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn open_value(&self, place: &[u8], sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.cipher
            .open(place, sealed)
            .ok_or_else(|| sealed_value_error(&String::from_utf8_lossy(place)))
    }
}

pub(super) fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown failure".into());
    format!("damaged store file (redb: {detail})")
}

#[cfg(test)]
mod tests {
    use super::{Committed, later_of};
    use crate::DocumentId;
    use crate::ids::PatientId;

    fn commit(seq: u64, revocation_commits: u64) -> Committed {
        Committed {
            seq,
            documents: vec![DocumentId::PatientRecord(PatientId::from_bytes(
                [seq as u8; 8],
            ))],
            revocation_commits,
        }
    }

    #[test]
    fn a_commit_told_after_a_later_one_does_not_hide_it_nor_its_revocation() {
        // Commit 11 told first; commit 10, which stored a revocation, told after it.
        let later = commit(11, 0);
        let kept = later_of(Some(&later), commit(10, 1));
        assert_eq!((kept.seq, &kept.documents), (11, &later.documents));
        assert_eq!(
            kept.revocation_commits, 1,
            "the earlier commit's revocation is kept"
        );
        let kept = later_of(Some(&commit(10, 1)), commit(11, 1));
        assert_eq!((kept.seq, kept.revocation_commits), (11, 1));
        assert_eq!(later_of(None, commit(3, 0)).seq, 3);
    }
}
