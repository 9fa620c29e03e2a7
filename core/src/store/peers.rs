//! What this node knows of its peers: per peer, its store epoch and the log position it
//! acknowledged ([`PeerRecord`]); per peer and document, the heads it is known to hold
//! ([`PeerDocState`]). Knowledge may understate what a peer holds, never overstate it.

use redb::ReadableTable;

use super::batch::WriteBatch;
use super::error::StoreError;
use super::handle::Store;
use super::schema::{PEER_DOCS, PEERS};
use crate::docs::DocumentId;
use crate::identity::NodeId;

/// What this node remembers of a peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerRecord {
    /// The peer's store epoch when last seen (hex); a different epoch voids what we knew.
    pub epoch: String,
    /// Our log position up to which the peer has acknowledged everything we pushed.
    pub acked_seq: u64,
    /// When a session with the peer was last open (ms since the Unix epoch).
    pub last_seen_ms: Option<i64>,
    /// When the peer and we were last fully caught up (ms since the Unix epoch).
    pub caught_up_ms: Option<i64>,
}

/// What a peer is known to hold of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerDocState {
    /// Heads the peer is known to have (it holds all their history).
    pub heads: Vec<[u8; 32]>,
    /// When both sides were last known to be equal (ms since the Unix epoch).
    pub equal_at_ms: Option<i64>,
}

impl PeerDocState {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.heads.len() * 32 + 8);
        for h in &self.heads {
            out.extend_from_slice(h);
        }
        out.extend_from_slice(&self.equal_at_ms.unwrap_or(i64::MIN).to_le_bytes());
        out
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let bad = || StoreError::Corrupt("peer knowledge is malformed".into());
        if bytes.len() < 8 || !(bytes.len() - 8).is_multiple_of(32) {
            return Err(bad());
        }
        let (heads, at) = bytes.split_at(bytes.len() - 8);
        let at = i64::from_le_bytes(at.try_into().map_err(|_| bad())?);
        Ok(PeerDocState {
            heads: heads
                .chunks_exact(32)
                .map(|c| c.try_into().map_err(|_| bad()))
                .collect::<Result<_, _>>()?,
            equal_at_ms: (at != i64::MIN).then_some(at),
        })
    }
}

impl Store {
    /// What we remember of `peer`.
    pub fn peer(&self, peer: &NodeId) -> Result<Option<PeerRecord>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let table = read.open_table(PEERS)?;
            let Some(v) = table.get(peer.as_bytes().as_slice())? else {
                return Ok(None);
            };
            serde_json::from_slice(v.value())
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("peer record: {e}")))
        })
    }

    /// Every peer we remember.
    pub fn peers(&self) -> Result<Vec<(NodeId, PeerRecord)>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let table = read.open_table(PEERS)?;
            let mut out = Vec::new();
            for item in table.iter()? {
                let (k, v) = item?;
                let id = k
                    .value()
                    .try_into()
                    .ok()
                    .and_then(|b: [u8; 32]| NodeId::from_bytes(b).ok())
                    .ok_or_else(|| StoreError::Corrupt("peer id".into()))?;
                let record = serde_json::from_slice(v.value())
                    .map_err(|e| StoreError::Corrupt(format!("peer record: {e}")))?;
                out.push((id, record));
            }
            Ok(out)
        })
    }

    /// What `peer` is known to hold of `doc`.
    pub fn peer_doc(
        &self,
        peer: &NodeId,
        doc: &DocumentId,
    ) -> Result<Option<PeerDocState>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let table = read.open_table(PEER_DOCS)?;
            let key = doc.to_string();
            match table.get((peer.as_bytes().as_slice(), key.as_str()))? {
                Some(v) => PeerDocState::decode(v.value()).map(Some),
                None => Ok(None),
            }
        })
    }

    /// Everything known about what `peer` holds, by document.
    pub fn peer_docs(&self, peer: &NodeId) -> Result<Vec<(DocumentId, PeerDocState)>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let table = read.open_table(PEER_DOCS)?;
            let p = peer.as_bytes().as_slice();
            let mut out = Vec::new();
            for item in table.range((p, "")..=(p, "\u{10FFFF}"))? {
                let (k, v) = item?;
                let id = DocumentId::parse(k.value().1)
                    .map_err(|e| StoreError::Corrupt(format!("peer knowledge: {e}")))?;
                out.push((id, PeerDocState::decode(v.value())?));
            }
            Ok(out)
        })
    }
}

impl WriteBatch<'_> {
    /// Records what `peer` is known to hold of `doc`.
    pub fn put_peer_doc(
        &mut self,
        peer: &NodeId,
        doc: &DocumentId,
        state: &PeerDocState,
    ) -> Result<(), StoreError> {
        let store = self.store;
        store.contain(|| {
            let key = doc.to_string();
            self.tx.open_table(PEER_DOCS)?.insert(
                (peer.as_bytes().as_slice(), key.as_str()),
                state.encode().as_slice(),
            )?;
            Ok(())
        })
    }

    /// What `peer` is known to hold of `doc`, as of this batch.
    pub fn peer_doc(
        &mut self,
        peer: &NodeId,
        doc: &DocumentId,
    ) -> Result<Option<PeerDocState>, StoreError> {
        let store = self.store;
        store.contain(|| {
            let key = doc.to_string();
            let table = self.tx.open_table(PEER_DOCS)?;
            let value = table.get((peer.as_bytes().as_slice(), key.as_str()))?;
            value.map(|v| PeerDocState::decode(v.value())).transpose()
        })
    }

    /// Replaces what we remember of `peer`; `forget_docs` also drops all knowledge of its documents
    /// (its store was recreated: what we knew no longer holds).
    pub fn put_peer(
        &mut self,
        peer: &NodeId,
        record: &PeerRecord,
        forget_docs: bool,
    ) -> Result<(), StoreError> {
        let store = self.store;
        store.contain(|| {
            let json = serde_json::to_vec(record)
                .map_err(|e| StoreError::Corrupt(format!("encoding peer record: {e}")))?;
            self.tx
                .open_table(PEERS)?
                .insert(peer.as_bytes().as_slice(), json.as_slice())?;
            if forget_docs {
                let p = peer.as_bytes().as_slice();
                let mut table = self.tx.open_table(PEER_DOCS)?;
                let keys: Vec<String> = table
                    .range((p, "")..=(p, "\u{10FFFF}"))?
                    .map(|item| item.map(|(k, _)| k.value().1.to_owned()))
                    .collect::<Result<_, _>>()?;
                for k in keys {
                    table.remove((p, k.as_str()))?;
                }
            }
            Ok(())
        })
    }

    /// Forgets what `peer` is known to hold of `doc`.
    pub fn forget_peer_doc(&mut self, peer: &NodeId, doc: &DocumentId) -> Result<(), StoreError> {
        let store = self.store;
        store.contain(|| {
            let key = doc.to_string();
            self.tx
                .open_table(PEER_DOCS)?
                .remove((peer.as_bytes().as_slice(), key.as_str()))?;
            Ok(())
        })
    }
}
