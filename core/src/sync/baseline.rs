//! The baselines that Omsyn's protocol is measured against: per-document Automerge sync with
//! saved sync states — one Automerge sync session per document, as samod/automerge-repo run it.
//! Nodes never use these; they exist so the benchmarks compare against the real algorithm rather
//! than an estimate.
//!
//! - [`InMemoryPerDocumentSync`] (`omsyn bench sync`): every document already loaded, as samod
//!   keeps them, and no store in the loop — the strongest form of the baseline.
//! - [`PerDocumentSync`] (`omsyn bench field`): reads each document through the store for every
//!   message and writes what it receives durably, which is weaker (it pays loads, decryption and
//!   commits Omsyn's measurement pays too, but per message).

use std::collections::BTreeMap;

use automerge::sync;

use crate::docs::{DocError, Document, DocumentId};
use crate::identity::NodeId;
use crate::store::{Store, StoreError};

/// Per-document Automerge sync towards one peer with every document held in memory: a loaded
/// Automerge document and a sync state per document, as samod keeps them while it runs.
#[derive(Debug)]
pub struct InMemoryPerDocumentSync {
    actor: NodeId,
    docs: BTreeMap<DocumentId, (Document, sync::State)>,
}

/// Why an Automerge sync message could not be applied by the in-memory baseline.
#[derive(Debug, thiserror::Error)]
#[error("baseline: {0}")]
pub struct ReceiveError(#[from] DocError);

impl InMemoryPerDocumentSync {
    /// Loads `ids` from the store (this is the part samod did before the session: not timed).
    pub fn load(store: &Store, ids: &[DocumentId]) -> Result<Self, StoreError> {
        let mut this = InMemoryPerDocumentSync {
            actor: store.actor(),
            docs: BTreeMap::new(),
        };
        this.refresh(store, ids)?;
        Ok(this)
    }

    /// Takes the store's current version of `ids` (documents changed locally through the store;
    /// samod would have applied those edits to its in-memory copy), keeping their sync states.
    pub fn refresh(&mut self, store: &Store, ids: &[DocumentId]) -> Result<(), StoreError> {
        for id in ids {
            let Some(doc) = store.load(id)? else {
                continue;
            };
            match self.docs.get_mut(id) {
                Some((held, _)) => *held = doc,
                None => {
                    self.docs.insert(id.clone(), (doc, sync::State::new()));
                }
            }
        }
        Ok(())
    }

    /// A reconnect: each state is replaced by what Automerge persists of it (the shared heads),
    /// as a new connection starts from saved sync states.
    pub fn reconnect(&mut self) {
        for (_, state) in self.docs.values_mut() {
            *state = sync::State::decode(&state.encode()).unwrap_or_default();
        }
    }

    /// One sync message per document that has something to say, all documents at once.
    pub fn generate(&mut self) -> Vec<(DocumentId, Vec<u8>)> {
        self.docs
            .iter_mut()
            .filter_map(|(id, (doc, state))| doc.sync_generate(state).map(|m| (id.clone(), m)))
            .collect()
    }

    /// Applies the peer's messages to the documents in memory; a document not held yet starts
    /// empty (the peer shares one created since).
    pub fn receive(&mut self, messages: Vec<(DocumentId, Vec<u8>)>) -> Result<(), ReceiveError> {
        for (id, bytes) in messages {
            let (doc, state) = self
                .docs
                .entry(id.clone())
                .or_insert_with(|| (Document::new(id, self.actor), sync::State::new()));
            doc.sync_receive(state, &bytes)?;
        }
        Ok(())
    }

    /// The heads held of `id`, if it is held.
    pub fn heads(&self, id: &DocumentId) -> Option<Vec<[u8; 32]>> {
        self.document(id).map(Document::head_hashes)
    }

    /// The document `id`, if it is held.
    pub fn document(&self, id: &DocumentId) -> Option<&Document> {
        self.docs.get(id).map(|(doc, _)| doc)
    }

    /// How many documents are held.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// Whether no document is held.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }
}

/// Per-document sync states towards one peer.
#[derive(Debug, Default)]
pub struct PerDocumentSync {
    states: BTreeMap<DocumentId, sync::State>,
}

impl PerDocumentSync {
    /// Fresh states (first contact).
    pub fn new() -> Self {
        Self::default()
    }

    /// The persisted form of every state (Automerge's `State::encode`: the shared heads), for a
    /// benchmark that runs each side in a process of its own.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (id, state) in &self.states {
            let (id, state) = (id.to_string(), state.encode());
            out.extend_from_slice(&(id.len() as u32).to_le_bytes());
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(&(state.len() as u32).to_le_bytes());
            out.extend_from_slice(&state);
        }
        out
    }

    /// Reads what [`PerDocumentSync::encode`] wrote; `None` if it is not that.
    pub fn decode(mut bytes: &[u8]) -> Option<Self> {
        let mut states = BTreeMap::new();
        let take = |n: usize, bytes: &mut &[u8]| -> Option<Vec<u8>> {
            let (head, rest) = bytes.split_at_checked(n)?;
            *bytes = rest;
            Some(head.to_vec())
        };
        while !bytes.is_empty() {
            let n = u32::from_le_bytes(take(4, &mut bytes)?.try_into().ok()?) as usize;
            let id = DocumentId::parse(std::str::from_utf8(&take(n, &mut bytes)?).ok()?).ok()?;
            let n = u32::from_le_bytes(take(4, &mut bytes)?.try_into().ok()?) as usize;
            states.insert(id, sync::State::decode(&take(n, &mut bytes)?).ok()?);
        }
        Some(PerDocumentSync { states })
    }

    /// One sync message per document that has something to say.
    pub fn generate(
        &mut self,
        store: &Store,
        docs: &[DocumentId],
    ) -> Result<Vec<(DocumentId, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for id in docs {
            let state = self.states.entry(id.clone()).or_default();
            let message = store.with_doc(id, |d| d.sync_generate(state))?.flatten();
            if let Some(m) = message {
                out.push((id.clone(), m));
            }
        }
        Ok(out)
    }

    /// Applies received messages in one durable write.
    pub fn receive(
        &mut self,
        store: &Store,
        messages: Vec<(DocumentId, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        let mut batch = store.write()?;
        for (id, bytes) in messages {
            let state = self.states.entry(id.clone()).or_default();
            batch.doc(&id)?.sync_receive(state, &bytes)?;
        }
        crate::pipeline::commit(batch, &crate::pipeline::DeriveContext::of(store, None))
    }
}
