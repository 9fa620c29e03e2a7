//! The portable export file: a node's documents in one self-checking file.
//!
//! Layout (all integers little-endian):
//! ```text
//! magic    8 bytes  "OMSYNEX" + format version (2)
//! count    u32      number of documents
//! count ×  u16 id length, id (UTF-8 document id), u32 data length, data (Automerge saved document)
//! sigs     u32      number of signatures
//! sigs ×   32-byte change hash, 64-byte author's signature
//! certs    u32      number of certificates
//! certs ×  u16 length, certificate (of the changes' authors)
//! digest   32 bytes SHA-256 of everything above
//! ```
//! The digest makes a truncated or altered file fail as a whole before anything is imported.
//! Every length is bounded, and every id and document is validated: an export file is hostile input.
//! The signatures and certificates let the importing node verify every change like one received
//! from a peer (and forward it later); version 1 files carry none, so only the importing node's
//! own changes in them can be verified.

use sha2::{Digest, Sha256};

use crate::codec::{ByteReader, Truncated};

use crate::docs::DocumentId;

const MAGIC: &[u8; 7] = b"OMSYNEX";
const VERSION: u8 = 2;
/// Largest number of signatures or certificates in a file.
const MAX_ITEMS: usize = 10_000_000;
/// Largest document accepted in an export file.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024 * 1024;
const MAX_ID_BYTES: usize = 256;

/// An export file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// Not an Omsyn export file.
    #[error("not an Omsyn export file (bad magic bytes)")]
    NotAnExport,
    /// Written by another format version.
    #[error("export format version {found} is not supported (this build reads {VERSION})")]
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
    /// Documents: id and saved bytes.
    pub docs: Vec<(DocumentId, Vec<u8>)>,
    /// Change hash → the author's signature.
    pub signatures: Vec<([u8; 32], [u8; 64])>,
    /// Certificates of the changes' authors (as signed by the organisation).
    pub certificates: Vec<Vec<u8>>,
}

/// Encodes an export file.
pub fn encode(exchange: &Exchange) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&(exchange.docs.len() as u32).to_le_bytes());
    for (id, data) in &exchange.docs {
        let id = id.to_string();
        out.extend_from_slice(&(id.len() as u16).to_le_bytes());
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
    }
    out.extend_from_slice(&(exchange.signatures.len() as u32).to_le_bytes());
    for (hash, signature) in &exchange.signatures {
        out.extend_from_slice(hash);
        out.extend_from_slice(signature);
    }
    out.extend_from_slice(&(exchange.certificates.len() as u32).to_le_bytes());
    for cert in &exchange.certificates {
        out.extend_from_slice(&(cert.len().min(u16::MAX as usize) as u16).to_le_bytes());
        out.extend_from_slice(&cert[..cert.len().min(u16::MAX as usize)]);
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// Decodes and verifies an export file (version 1 or 2). Documents' Automerge bytes are
/// validated later, on load; signatures and certificates by the importer.
pub fn decode(bytes: &[u8]) -> Result<Exchange, ExchangeError> {
    if bytes.len() < MAGIC.len() + 1 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(ExchangeError::NotAnExport);
    }
    let version = bytes[MAGIC.len()];
    if version != VERSION && version != 1 {
        return Err(ExchangeError::UnsupportedVersion {
            found: bytes[MAGIC.len()],
        });
    }
    if bytes.len() < MAGIC.len() + 1 + 4 + 32 {
        return Err(ExchangeError::Truncated);
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != digest {
        return Err(ExchangeError::ChecksumMismatch);
    }
    let mut cursor = ByteReader::new(body, MAGIC.len() + 1);
    let count = cursor.u32_le()? as usize;
    let mut docs = Vec::with_capacity(count.min(100_000));
    for _ in 0..count {
        let id_len = cursor.u16_le()? as usize;
        if id_len > MAX_ID_BYTES {
            return Err(ExchangeError::Malformed(format!(
                "document id of {id_len} bytes"
            )));
        }
        let id = std::str::from_utf8(cursor.take(id_len)?)
            .map_err(|_| ExchangeError::Malformed("document id is not UTF-8".into()))?;
        let id = DocumentId::parse(id).map_err(|e| ExchangeError::Malformed(e.to_string()))?;
        let len = cursor.u32_le()? as usize;
        if len > MAX_DOCUMENT_BYTES {
            return Err(ExchangeError::Malformed(format!(
                "document {id} is {len} bytes; at most {MAX_DOCUMENT_BYTES} are accepted"
            )));
        }
        docs.push((id, cursor.take(len)?.to_vec()));
    }
    let mut exchange = Exchange {
        docs,
        ..Exchange::default()
    };
    if version >= 2 {
        let count = bounded(cursor.u32_le()?)?;
        for _ in 0..count {
            let mut hash = [0u8; 32];
            hash.copy_from_slice(cursor.take(32)?);
            let mut signature = [0u8; 64];
            signature.copy_from_slice(cursor.take(64)?);
            exchange.signatures.push((hash, signature));
        }
        let count = bounded(cursor.u32_le()?)?;
        for _ in 0..count {
            let len = usize::from(cursor.u16_le()?);
            exchange.certificates.push(cursor.take(len)?.to_vec());
        }
    }
    if cursor.position() != body.len() {
        return Err(ExchangeError::Malformed(
            "trailing bytes after the last section".into(),
        ));
    }
    Ok(exchange)
}

fn bounded(count: u32) -> Result<usize, ExchangeError> {
    let count = count as usize;
    if count > MAX_ITEMS {
        return Err(ExchangeError::Malformed(format!(
            "{count} items in a section"
        )));
    }
    Ok(count)
}

impl From<Truncated> for ExchangeError {
    fn from(_: Truncated) -> Self {
        ExchangeError::Truncated
    }
}
