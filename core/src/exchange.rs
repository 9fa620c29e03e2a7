//! The portable export file: a node's documents in one self-checking file.
//!
//! Layout (all integers little-endian):
//! ```text
//! magic    8 bytes  "OMSYNEX" + format version (4)
//! count    u32      number of documents
//! count ×  u16 id length, id (UTF-8 document id), u32 number of changes,
//!          and per change: u32 length, the Automerge change, its author's 64-byte signature
//! certs    u32      number of certificates
//! certs ×  u16 length, certificate (of the changes' authors)
//! revs     u32      number of revocations (not in version 3)
//! revs ×   u16 length, revocation (every one the exporting node holds)
//! digest   32 bytes SHA-256 of everything above
//! ```
//! A file carries the revocations its node knew, as a session sends them ahead of any data: a
//! node that reads the file before hearing of one judges a revoked device's changes as it would
//! in a session. Version 3 files (without them) are still read.
//! The digest makes a truncated or altered file fail as a whole before anything is imported.
//! An export file is hostile input: every length is bounded and checked against what is left of
//! the file, and the file carries each document as its signed changes — exactly what a peer sends
//! — so the importer runs them through the same change pipeline ([`crate::pipeline`]): nothing is
//! parsed before its signature is checked, and nothing is inflated (versions 1 and 2 carried
//! saved documents, whose compressed columns an importer had to inflate before it could check
//! anything; they are refused).

use sha2::{Digest, Sha256};

use crate::codec::{ByteReader, Truncated};
use crate::docs::DocumentId;
use crate::pipeline::MAX_CHANGE_BYTES;
use crate::sync::wire::SignedChange;

const MAGIC: &[u8; 7] = b"OMSYNEX";
const VERSION: u8 = 4;
/// The last version without revocations, still read.
const VERSION_WITHOUT_REVOCATIONS: u8 = 3;
const MAX_ID_BYTES: usize = 256;

/// An export file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// Not an Omsyn export file.
    #[error("not an Omsyn export file (bad magic bytes)")]
    NotAnExport,
    /// Written by another format version.
    #[error(
        "export format version {found} is not supported (this build reads {VERSION}; export again with this build)"
    )]
    UnsupportedVersion {
        /// Version in the file.
        found: u8,
    },
    /// Shorter than its own header says.
    #[error("export file is truncated")]
    Truncated,
    /// The checksum does not match.
    #[error("export file is damaged: checksum mismatch")]
    ChecksumMismatch,
    /// A field is out of bounds or invalid.
    #[error("export file is malformed: {0}")]
    Malformed(String),
}

/// The contents of an export file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exchange {
    /// Documents: id and every change with its author's signature, in causal order.
    pub docs: Vec<(DocumentId, Vec<SignedChange>)>,
    /// Certificates of the changes' authors (as signed by the organisation).
    pub certificates: Vec<Vec<u8>>,
    /// Revocations the exporting node held (as signed by the organisation).
    pub revocations: Vec<Vec<u8>>,
}

/// Encodes an export file.
pub fn encode(exchange: &Exchange) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&(exchange.docs.len() as u32).to_le_bytes());
    for (id, changes) in &exchange.docs {
        let id = id.to_string();
        out.extend_from_slice(&(id.len() as u16).to_le_bytes());
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&(changes.len() as u32).to_le_bytes());
        for change in changes {
            out.extend_from_slice(&(change.bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(&change.bytes);
            out.extend_from_slice(&change.signature);
        }
    }
    for section in [&exchange.certificates, &exchange.revocations] {
        out.extend_from_slice(&(section.len() as u32).to_le_bytes());
        for item in section {
            let len = item.len().min(u16::MAX as usize);
            out.extend_from_slice(&(len as u16).to_le_bytes());
            out.extend_from_slice(&item[..len]);
        }
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// Decodes and verifies an export file. The changes are checked by the importer's pipeline.
pub fn decode(bytes: &[u8]) -> Result<Exchange, ExchangeError> {
    if bytes.len() < MAGIC.len() + 1 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(ExchangeError::NotAnExport);
    }
    let version = bytes[MAGIC.len()];
    if version != VERSION && version != VERSION_WITHOUT_REVOCATIONS {
        return Err(ExchangeError::UnsupportedVersion { found: version });
    }
    if bytes.len() < MAGIC.len() + 1 + 4 + 32 {
        return Err(ExchangeError::Truncated);
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != digest {
        return Err(ExchangeError::ChecksumMismatch);
    }
    let mut cursor = ByteReader::new(body, MAGIC.len() + 1);
    // Every item takes at least a few bytes, so no count can exceed what is left of the file:
    // a count is checked against that before anything is reserved for it.
    let count = bounded(cursor.u32_le()?, &cursor, 6)?;
    let mut exchange = Exchange::default();
    for _ in 0..count {
        exchange.docs.push(decode_document(&mut cursor)?);
    }
    exchange.certificates = decode_items(&mut cursor)?;
    if version == VERSION {
        exchange.revocations = decode_items(&mut cursor)?;
    }
    if cursor.position() != body.len() {
        return Err(ExchangeError::Malformed(
            "trailing bytes after the last section".into(),
        ));
    }
    Ok(exchange)
}

/// A section of items of up to 64 KiB each (certificates, revocations).
fn decode_items(cursor: &mut ByteReader<'_>) -> Result<Vec<Vec<u8>>, ExchangeError> {
    let count = bounded(cursor.u32_le()?, cursor, 2)?;
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        let len = usize::from(cursor.u16_le()?);
        items.push(cursor.take(len)?.to_vec());
    }
    Ok(items)
}

fn decode_document(
    cursor: &mut ByteReader<'_>,
) -> Result<(DocumentId, Vec<SignedChange>), ExchangeError> {
    let id_len = cursor.u16_le()? as usize;
    if id_len > MAX_ID_BYTES {
        return Err(ExchangeError::Malformed(format!(
            "document id of {id_len} bytes"
        )));
    }
    let id = std::str::from_utf8(cursor.take(id_len)?)
        .map_err(|_| ExchangeError::Malformed("document id is not UTF-8".into()))?;
    let id = DocumentId::parse(id).map_err(|e| ExchangeError::Malformed(e.to_string()))?;
    let count = bounded(cursor.u32_le()?, cursor, 4 + 64)?;
    let mut changes = Vec::with_capacity(count);
    for _ in 0..count {
        let len = cursor.u32_le()? as usize;
        if len > MAX_CHANGE_BYTES {
            return Err(ExchangeError::Malformed(format!(
                "a change of {id} is {len} bytes; at most {MAX_CHANGE_BYTES} are accepted"
            )));
        }
        let bytes = cursor.take(len)?.to_vec();
        let mut signature = [0u8; 64];
        signature.copy_from_slice(cursor.take(64)?);
        changes.push(SignedChange { bytes, signature });
    }
    Ok((id, changes))
}

/// A count of items of at least `min_item_bytes` each, no more than the rest of the file holds.
fn bounded(
    count: u32,
    cursor: &ByteReader<'_>,
    min_item_bytes: usize,
) -> Result<usize, ExchangeError> {
    let count = count as usize;
    if count.saturating_mul(min_item_bytes) > cursor.remaining() {
        return Err(ExchangeError::Malformed(format!(
            "{count} items in a section, more than the file holds"
        )));
    }
    Ok(count)
}

impl From<Truncated> for ExchangeError {
    fn from(_: Truncated) -> Self {
        ExchangeError::Truncated
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn a_file_carries_its_revocations_and_one_of_the_version_before_reads_without_them() {
        let exchange = Exchange {
            docs: Vec::new(),
            certificates: vec![vec![1; 40]],
            revocations: vec![vec![2; 30], vec![3; 31]],
        };
        let file = encode(&exchange);
        assert_eq!(decode(&file).unwrap(), exchange);
        // Version 3: the same file up to its certificates, no revocations section.
        let body = &file[..file.len() - 32];
        let mut old = body[..body.len() - (4 + 2 + 30 + 2 + 31)].to_vec();
        old[MAGIC.len()] = VERSION_WITHOUT_REVOCATIONS;
        let digest = Sha256::digest(&old);
        old.extend_from_slice(&digest);
        let read = decode(&old).unwrap();
        assert_eq!(read.certificates, exchange.certificates);
        assert!(read.revocations.is_empty());
        // A revocations section that claims more than the file holds is refused.
        let mut lying = body.to_vec();
        let at = lying.len() - (4 + 2 + 30 + 2 + 31);
        lying[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let digest = Sha256::digest(&lying);
        lying.extend_from_slice(&digest);
        assert!(matches!(decode(&lying), Err(ExchangeError::Malformed(_))));
    }
}
