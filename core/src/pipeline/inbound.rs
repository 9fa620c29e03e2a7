//! The first step for a change that arrives from a peer or a file: what its bytes alone can
//! prove, before any of its operations is parsed.
//!
//! A change arrives as an Automerge change chunk and its author's signature. Its size is checked
//! first, then its header: only an uncompressed change chunk is taken (a compressed one would
//! make the receiver inflate whatever the sender chose: a 1 MB chunk can become gigabytes), its
//! operations are counted from its columns' run lengths (a few bytes can stand for 2^40 of them:
//! [`super::columns`]), its hash is computed over its bytes exactly as Automerge computes it and
//! checked against the header's checksum, its author is read from the chunk's first fields, and
//! the author's signature of the hash is verified. Only a change that passes all of this is parsed
//! ([`crate::docs::parse_change`]) and judged against the document it would land in.

use sha2::{Digest, Sha256};

use crate::codec::leb128;
use crate::docs::ParsedChange;
use crate::identity::{NodeId, Verifiers};
use crate::sync::wire::SignedChange;
use crate::trust::change_signing_bytes;

/// Largest change accepted: the largest message (four pictures, 1 MiB together, in base64)
/// with room to spare. Nothing a node writes is larger.
pub const MAX_CHANGE_BYTES: usize = 2 * 1024 * 1024;

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const CHUNK_CHANGE: u8 = 1;
const CHUNK_COMPRESSED_CHANGE: u8 = 2;

/// A change whose bytes, hash and author's signature check out; its operations are not parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vouched {
    /// The change chunk.
    pub bytes: Vec<u8>,
    /// Its hash (Automerge's change id).
    pub hash: [u8; 32],
    /// Its author, whose key signed it.
    pub signer: NodeId,
    /// The signature.
    pub signature: [u8; 64],
}

/// Checks what a change's bytes alone can prove. The error says why not, for the sender.
pub fn vouch(bytes: Vec<u8>, signature: [u8; 64]) -> Result<Vouched, String> {
    vouch_with(&mut Verifiers::default(), bytes, signature)
}

/// [`vouch`], with the authors' keys decompressed once across the changes of a message.
pub fn vouch_with(
    keys: &mut Verifiers,
    bytes: Vec<u8>,
    signature: [u8; 64],
) -> Result<Vouched, String> {
    if bytes.len() > MAX_CHANGE_BYTES {
        return Err(format!(
            "a change of {} bytes; at most {MAX_CHANGE_BYTES} are accepted",
            bytes.len()
        ));
    }
    let header = Header::parse(&bytes)?;
    super::columns::check_operation_count(&bytes[header.data_start..])?;
    let hash = header.hash(&bytes);
    if hash[..4] != header.checksum {
        return Err("a change's checksum does not match its bytes".into());
    }
    let signer = keys
        .node(author(&bytes[header.data_start..])?)
        .map_err(|_| "a change's author is not a node key".to_owned())?;
    if !keys.verify(&signer, &change_signing_bytes(&hash), &signature) {
        return Err(format!(
            "a change carries no valid signature of its author {}: forged or altered",
            signer.short()
        ));
    }
    Ok(Vouched {
        bytes,
        hash,
        signer,
        signature,
    })
}

/// A received change taken apart as far as its bytes allow, without the document it lands in:
/// vouched for ([`vouch`]) and then parsed ([`crate::docs::parse_change`]). Made only by
/// [`check`], so holding one means its signature verified.
#[derive(Debug, Clone)]
pub struct Checked {
    vouched: Vouched,
    parsed: ParsedChange,
}

impl Checked {
    /// The change as vouched for.
    pub fn vouched(&self) -> &Vouched {
        &self.vouched
    }

    /// The changes it builds on.
    pub(super) fn deps(&self) -> &[[u8; 32]] {
        &self.parsed.summary.deps
    }

    /// The change parsed.
    pub(super) fn parsed(&self) -> &ParsedChange {
        &self.parsed
    }

    /// When its author says it was made.
    pub(super) fn time_ms(&self) -> i64 {
        self.parsed.summary.time_ms
    }

    pub(super) fn into_parts(self) -> (Vouched, ParsedChange) {
        (self.vouched, self.parsed)
    }
}

/// Vouches for a received change, then parses it: every step of receiving a change that needs
/// nothing but its bytes (the costliest ones: the signature check and Automerge's parse). Pure,
/// so a driver may run it on another thread ahead of the write.
pub fn check(keys: &mut Verifiers, change: SignedChange) -> Result<Checked, String> {
    let vouched = vouch_with(keys, change.bytes, change.signature)?;
    // The chunk is parsed from a copy: the vouched bytes stay whole for explaining a refusal.
    let parsed = crate::docs::parse_change(vouched.bytes.clone()).map_err(|e| e.to_string())?;
    Ok(Checked { vouched, parsed })
}

/// Every change of a message checked ([`check`]); the first that fails refuses them all.
pub fn check_all(keys: &mut Verifiers, changes: Vec<SignedChange>) -> Result<Vec<Checked>, String> {
    changes
        .into_iter()
        .map(|change| check(keys, change))
        .collect()
}

/// An Automerge chunk header: 4 magic bytes, a 4-byte checksum (the hash's first bytes), the
/// chunk type and the data's length as unsigned LEB128.
struct Header {
    checksum: [u8; 4],
    chunk_type: u8,
    length_field: std::ops::Range<usize>,
    data_start: usize,
}

impl Header {
    fn parse(bytes: &[u8]) -> Result<Header, String> {
        if bytes.get(..4) != Some(&MAGIC[..]) {
            return Err("not an Automerge change (bad magic bytes)".into());
        }
        let checksum: [u8; 4] = bytes
            .get(4..8)
            .and_then(|b| b.try_into().ok())
            .ok_or("a change is truncated")?;
        let chunk_type = *bytes.get(8).ok_or("a change is truncated")?;
        match chunk_type {
            CHUNK_CHANGE => {}
            CHUNK_COMPRESSED_CHANGE => {
                return Err(
                    "a compressed change is refused (changes travel uncompressed; the receiver does not inflate what a sender chose)"
                        .into(),
                );
            }
            other => return Err(format!("not a change chunk (type {other})")),
        }
        let (length, width) =
            leb128(bytes.get(9..).unwrap_or_default()).ok_or("a change's length is malformed")?;
        let data_start = 9 + width;
        if usize::try_from(length).ok() != bytes.len().checked_sub(data_start) {
            return Err("a change's length does not match its bytes".into());
        }
        Ok(Header {
            checksum,
            chunk_type,
            length_field: 9..data_start,
            data_start,
        })
    }

    /// SHA-256 over the chunk type, the length and the data, as Automerge hashes a change.
    fn hash(&self, bytes: &[u8]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update([self.chunk_type]);
        hasher.update(&bytes[self.length_field.clone()]);
        hasher.update(&bytes[self.data_start..]);
        hasher.finalize().into()
    }
}

/// The author's key bytes from a change's first fields: its dependencies (a count, then 32-byte
/// hashes), then its actor (a length, then the bytes). Omsyn's actors are node keys of 32 bytes.
fn author(data: &[u8]) -> Result<[u8; 32], String> {
    let malformed = || "a change's header is malformed".to_owned();
    let (deps, width) = leb128(data).ok_or_else(malformed)?;
    let deps_bytes = usize::try_from(deps)
        .ok()
        .and_then(|n| n.checked_mul(32))
        .ok_or_else(malformed)?;
    let at = width.checked_add(deps_bytes).ok_or_else(malformed)?;
    let rest = data.get(at..).ok_or_else(malformed)?;
    let (len, width) = leb128(rest).ok_or_else(malformed)?;
    if len != 32 {
        return Err("a change's author is not a node key".into());
    }
    rest.get(width..width + 32)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(malformed)
}
