//! The baseline that Omsyn's protocol is measured against (`omsyn bench sync`): per-document
//! Automerge sync with saved sync states — one Automerge sync session per document, as
//! samod/automerge-repo run it. Nodes never use this; it exists so the benchmark compares against
//! the real algorithm rather than an estimate.

use std::collections::BTreeMap;

use automerge::sync;

use crate::docs::DocumentId;
use crate::store::{Store, StoreError};

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

    /// What a reconnect keeps: Automerge's persisted form of each state (the shared heads).
    pub fn saved_and_restored(&self) -> Self {
        PerDocumentSync {
            states: self
                .states
                .iter()
                .filter_map(|(id, s)| {
                    sync::State::decode(&s.encode())
                        .ok()
                        .map(|s| (id.clone(), s))
                })
                .collect(),
        }
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
