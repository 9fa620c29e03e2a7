//! Documents whose changes a peer refused (`Reject`), remembered per peer until it takes them.
//!
//! What the peer holds of such a document is left as it was (the round's `Ack` records nothing
//! of it), and the document is sent again at the start of every session with that peer: a change
//! refused for now — a phone's clock ahead of the base's, a certificate the base had not heard
//! of — arrives once it would be taken, and one refused for good costs a resend a session, not
//! a rescan of the log. A store written before this table has none (read as empty).

use redb::TableDefinition;

use super::batch::WriteBatch;
use super::error::StoreError;
use super::handle::Store;
use crate::docs::DocumentId;
use crate::identity::NodeId;

/// (peer node id, document id) → nothing.
pub(super) const REFUSED: TableDefinition<(&[u8], &str), ()> = TableDefinition::new("refused");

impl Store {
    /// Documents `peer` refused changes of, not yet taken since.
    pub fn refused(&self, peer: &NodeId) -> Result<Vec<DocumentId>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let table = match read.open_table(REFUSED) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            let p = peer.as_bytes().as_slice();
            table
                .range((p, "")..=(p, "\u{10FFFF}"))?
                .map(|item| {
                    let (k, _) = item?;
                    DocumentId::parse(k.value().1)
                        .map_err(|e| StoreError::Corrupt(format!("refused document id: {e}")))
                })
                .collect()
        })
    }
}

impl WriteBatch<'_> {
    /// Records that `peer` refused changes of `doc` (`true`), or took them since (`false`).
    /// Durable: a refusal forgotten in a crash would never be sent again.
    pub fn set_refused(
        &mut self,
        peer: &NodeId,
        doc: &DocumentId,
        refused: bool,
    ) -> Result<(), StoreError> {
        let store = self.store;
        store.contain(|| {
            let key = doc.to_string();
            let mut table = self.tx.open_table(REFUSED)?;
            let k = (peer.as_bytes().as_slice(), key.as_str());
            let changed = match refused {
                true => table.insert(k, ())?.is_none(),
                false => table.remove(k)?.is_some(),
            };
            if changed {
                self.durable = true;
            }
            Ok(())
        })
    }
}
