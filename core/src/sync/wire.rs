//! The sync protocol's wire format, version 3 (version 1 had no certificates or signatures,
//! version 2 no compression and no push inside the `Hello`).
//!
//! Every message travels in a frame: `u32` LE payload length, then the payload, whose first byte is
//! the message tag. Integers inside payloads are LEB128 varints unless stated. Every length is
//! bounded before anything is allocated, and every id is validated: the peer is hostile until each
//! byte has been checked.
//!
//! Two frames carry other frames, and [`FrameDecoder`] unpacks both, so a session sees only plain
//! messages:
//! - a *compressed batch* (tag 14): the varint length of the frames it holds, then those frames
//!   as one raw DEFLATE stream. A push round goes out as one batch: the author blocks, actor ids
//!   and JSON keys that every change of a shift repeats cost their bytes once. Inflating is
//!   bounded by the declared length, which may not exceed [`MAX_INFLATE_RATIO`] times the
//!   compressed bytes nor [`MAX_FRAME_BYTES`]: a compression bomb costs little;
//! - the `Hello`, whose fields may be followed by frames (a node's first push to a peer it knows,
//!   sent with its `Hello` to save a round trip).
//!
//! **Stability rule:** the `Hello` message (tag 1, then the protocol version as `u16` LE) keeps this
//! layout in every version, so two versions can always tell that they differ and say so: a node of
//! another version reads no further than the version, whatever the `Hello` carries.

use std::collections::VecDeque;

use crate::codec::{ByteReader, Truncated, put_varint};
use crate::docs::DocumentId;
use crate::identity::NodeId;
use crate::ids::{PatientId, StaffId};
use crate::time::{Day, Month};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 3;
/// Largest frame accepted or sent (payload bytes).
pub const MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;
/// Largest number of heads in one message (documents rarely have more than a few).
pub const MAX_HEADS: usize = 256;
/// Largest number of changes in one message.
pub const MAX_CHANGES_PER_MESSAGE: usize = 100_000;
/// Largest error text.
pub const MAX_ERROR_TEXT: usize = 1024;
/// Largest certificate or revocation.
pub const MAX_CREDENTIAL_BYTES: usize = 8 * 1024;
/// Largest number of certificates or revocations in one message.
pub const MAX_CREDENTIALS: usize = 4096;
/// Largest ratio of a compressed batch's frames to its compressed bytes. Real pushes compress
/// 2–10×; the bound keeps what a peer can make us inflate within a small multiple of what it sent.
pub const MAX_INFLATE_RATIO: usize = 64;
/// The compressed batch's tag.
const COMPRESSED_TAG: u8 = 14;
/// Most frame bytes put in one compressed batch (a larger push goes as several), each frame
/// counted with [`FRAME_WEIGHT`].
const MAX_BATCH_BYTES: usize = MAX_FRAME_BYTES / 2;
/// What a frame costs its receiver beyond its bytes: its own buffer and its decoded message
/// (about 150 bytes for the smallest). A batch's frames, each counted with this, may come to
/// [`MAX_FRAME_BYTES`] at most: the ratio bound alone let 128 KiB on the wire inflate to 1.4
/// million six-byte frames, some 250 MB held.
pub const FRAME_WEIGHT: usize = 64;

/// An Automerge change with its author's signature of its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedChange {
    /// The raw change.
    pub bytes: Vec<u8>,
    /// ed25519 signature by the change's actor (see [`crate::trust::change_signing_bytes`]).
    pub signature: [u8; 64],
}

/// A change hash (Automerge's SHA-256 change id).
pub type Hash = [u8; 32];

/// Why a session was refused or ended, as sent to the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ErrorCode {
    /// The peers speak different protocol versions.
    VersionMismatch = 1,
    /// A message could not be decoded or broke the protocol.
    Malformed = 2,
    /// The peer is not allowed to send or receive this.
    Refused = 3,
    /// The local node failed (storage).
    Internal = 4,
}

impl ErrorCode {
    fn from_u8(value: u8) -> ErrorCode {
        match value {
            1 => ErrorCode::VersionMismatch,
            2 => ErrorCode::Malformed,
            3 => ErrorCode::Refused,
            _ => ErrorCode::Internal,
        }
    }
}

/// One protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Opens a session. The node's identity comes from the authenticated transport.
    Hello {
        /// Protocol version.
        version: u16,
        /// The sender's store epoch: changes when a store is recreated, voiding what peers know of it.
        epoch: [u8; 16],
        /// The sender's device certificate (empty if it has none: it will be refused).
        certificate: Vec<u8>,
    },
    /// Revocations, sent before any data (and whenever a new one is learned).
    Revocations {
        /// Each as signed by the organisation.
        revocations: Vec<Vec<u8>>,
    },
    /// Certificates of the signers of changes that follow (or the receiver's own, renewed).
    Certificates {
        /// Each as signed by the organisation.
        certificates: Vec<Vec<u8>>,
    },
    /// Signed Automerge changes of one document that the receiver lacks.
    Changes {
        /// The document.
        doc: DocumentId,
        /// Changes in causal order, each with its author's signature.
        changes: Vec<SignedChange>,
    },
    /// From a base: "you no longer need this document" (a visit was reassigned, a block was
    /// registered). The receiver removes it once the base holds its latest version.
    Withdraw {
        /// The document.
        doc: DocumentId,
        /// Whether a block (sperring) of the receiver's user is the reason.
        blocked: bool,
    },
    /// "I refused your changes of this document": a signature or an access rule failed.
    Reject {
        /// The document.
        doc: DocumentId,
        /// Why.
        reason: String,
    },
    /// "I hold this document at these heads" (sent when the sender knows nothing of the peer's copy).
    Offer {
        /// The document.
        doc: DocumentId,
        /// The sender's heads.
        heads: Vec<Hash>,
    },
    /// "I have everything up to the heads you offered; these are mine."
    Have {
        /// The document.
        doc: DocumentId,
        /// The sender's heads.
        heads: Vec<Hash>,
    },
    /// "I lack changes of this document; these are my heads."
    Need {
        /// The document.
        doc: DocumentId,
        /// The sender's heads.
        heads: Vec<Hash>,
    },
    /// "I will not hold this document" (it is outside what I may hold).
    Decline {
        /// The document.
        doc: DocumentId,
    },
    /// End of one push round: everything in the sender's log up to `seq` has been sent or offered.
    PushDone {
        /// Round number (per session).
        round: u64,
        /// The sender's log position.
        seq: u64,
    },
    /// A part of a large push round: "everything sent so far is part `round`; acknowledge it, the
    /// round goes on". The acknowledged parts of an interrupted round are not sent again.
    PartDone {
        /// Part number (shares the numbering of rounds).
        round: u64,
    },
    /// "Everything you sent up to round `round` is durably stored and answered."
    Ack {
        /// The round acknowledged.
        round: u64,
    },
    /// The sender ends the session.
    Error {
        /// Why.
        code: ErrorCode,
        /// For people.
        message: String,
    },
}

/// A frame or message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame's announced length exceeds [`MAX_FRAME_BYTES`].
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME_BYTES}")]
    Oversized(usize),
    /// The message ended early.
    #[error("message truncated")]
    Truncated,
    /// Unknown message tag.
    #[error("unknown message tag {0}")]
    UnknownTag(u8),
    /// A field is out of bounds or invalid.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// Bytes left over after the message.
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
}

/// Encodes a message into a frame (length prefix included).
pub fn encode(message: &Message) -> Vec<u8> {
    let mut out = vec![0u8; 4];
    match message {
        Message::Hello {
            version,
            epoch,
            certificate,
        } => {
            out.push(HELLO_TAG);
            out.extend_from_slice(&version.to_le_bytes());
            out.extend_from_slice(epoch);
            put_bytes(&mut out, certificate);
        }
        Message::Revocations { revocations } => put_list(&mut out, 10, revocations),
        Message::Certificates { certificates } => put_list(&mut out, 11, certificates),
        Message::Changes { doc, changes } => {
            out.push(2);
            put_doc(&mut out, doc);
            put_varint(&mut out, changes.len() as u64);
            for change in changes {
                put_bytes(&mut out, &change.bytes);
                out.extend_from_slice(&change.signature);
            }
        }
        Message::Withdraw { doc, blocked } => {
            out.push(13);
            put_doc(&mut out, doc);
            out.push(u8::from(*blocked));
        }
        Message::Reject { doc, reason } => {
            out.push(12);
            put_doc(&mut out, doc);
            put_text(&mut out, reason);
        }
        Message::Offer { doc, heads } => put_doc_heads(&mut out, 3, doc, heads),
        Message::Have { doc, heads } => put_doc_heads(&mut out, 4, doc, heads),
        Message::Need { doc, heads } => put_doc_heads(&mut out, 5, doc, heads),
        Message::Decline { doc } => {
            out.push(9);
            put_doc(&mut out, doc);
        }
        Message::PushDone { round, seq } => {
            out.push(6);
            put_varint(&mut out, *round);
            put_varint(&mut out, *seq);
        }
        Message::Ack { round } => {
            out.push(7);
            put_varint(&mut out, *round);
        }
        Message::PartDone { round } => {
            out.push(15);
            put_varint(&mut out, *round);
        }
        Message::Error { code, message } => {
            out.push(8);
            out.push(*code as u8);
            put_text(&mut out, message);
        }
    }
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    out
}

/// The size of a frame's header.
pub const FRAME_HEADER_BYTES: usize = 4;

/// Decodes one message payload (without the length prefix).
pub fn decode(payload: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader(ByteReader::new(payload, 0));
    let tag = r.u8()?;
    let message = match tag {
        1 => {
            let version = r.0.u16_le()?;
            if version != PROTOCOL_VERSION {
                // Read no further: a later version's Hello may carry more than ours.
                return Ok(Message::Hello {
                    version,
                    epoch: [0; 16],
                    certificate: Vec::new(),
                });
            }
            r.hello(version)?
        }
        2 => r.changes()?,
        10 => Message::Revocations {
            revocations: r.list()?,
        },
        11 => Message::Certificates {
            certificates: r.list()?,
        },
        13 => Message::Withdraw {
            doc: r.doc()?,
            blocked: match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(DecodeError::Invalid("withdraw flag")),
            },
        },
        12 => Message::Reject {
            doc: r.doc()?,
            reason: r.text()?,
        },
        3..=5 => {
            let doc = r.doc()?;
            let heads = r.heads()?;
            match tag {
                3 => Message::Offer { doc, heads },
                4 => Message::Have { doc, heads },
                _ => Message::Need { doc, heads },
            }
        }
        6 => Message::PushDone {
            round: r.varint()?,
            seq: r.varint()?,
        },
        7 => Message::Ack { round: r.varint()? },
        15 => Message::PartDone { round: r.varint()? },
        8 => {
            let code = ErrorCode::from_u8(r.u8()?);
            let message = r.text()?;
            Message::Error { code, message }
        }
        9 => Message::Decline { doc: r.doc()? },
        other => return Err(DecodeError::UnknownTag(other)),
    };
    if r.0.position() != payload.len() {
        return Err(DecodeError::Trailing(payload.len() - r.0.position()));
    }
    Ok(message)
}

/// Splits a byte stream into frame payloads, refusing oversized frames before buffering them.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    frames: VecDeque<Vec<u8>>,
}

/// Where a frame was found: what it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// On the stream itself: anything.
    Stream,
    /// After a `Hello`'s fields: anything but another `Hello`.
    InHello,
    /// Inside a compressed batch: plain messages only.
    InBatch,
}

impl FrameDecoder {
    /// Adds received bytes; complete frames become available from [`FrameDecoder::next_frame`].
    /// Each frame is copied out once; the bytes after the last complete frame are moved to the
    /// front once per call, not once per frame (a buffer of many small frames costs its length,
    /// not its length squared).
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        self.buffer.extend_from_slice(bytes);
        let mut at = 0;
        let result = loop {
            match frame_at(&self.buffer[at..]) {
                Ok(Some(len)) => {
                    let payload = self.buffer[at + FRAME_HEADER_BYTES..at + len].to_vec();
                    at += len;
                    if let Err(e) = self.accept(payload, Place::Stream) {
                        break Err(e);
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.buffer.drain(..at);
        result
    }

    /// The next complete frame's payload.
    pub fn next_frame(&mut self) -> Option<Vec<u8>> {
        self.frames.pop_front()
    }

    /// Queues one frame's payload, unpacking the frames a `Hello` or a compressed batch holds.
    fn accept(&mut self, payload: Vec<u8>, place: Place) -> Result<(), DecodeError> {
        match (payload.first(), place) {
            (Some(&COMPRESSED_TAG), Place::InBatch) => {
                Err(DecodeError::Invalid("a compressed batch inside another"))
            }
            (Some(&COMPRESSED_TAG), _) => {
                let frames = inflate(&payload[1..])?;
                self.accept_all(&frames, Place::InBatch)
            }
            (Some(&HELLO_TAG), Place::Stream) => {
                let end = hello_end(&payload)?;
                let (hello, rest) = payload.split_at(end);
                self.frames.push_back(hello.to_vec());
                self.accept_all(rest, Place::InHello)
            }
            (Some(&HELLO_TAG), _) => Err(DecodeError::Invalid("a Hello inside another frame")),
            _ => {
                self.frames.push_back(payload);
                Ok(())
            }
        }
    }

    /// Queues every frame of `bytes`, which must hold whole frames only; a batch's frames
    /// weigh [`FRAME_WEIGHT`] each beyond their bytes, [`MAX_FRAME_BYTES`] in all.
    fn accept_all(&mut self, mut bytes: &[u8], place: Place) -> Result<(), DecodeError> {
        let mut weight = 0usize;
        while !bytes.is_empty() {
            let len = frame_at(bytes)?.ok_or(DecodeError::Truncated)?;
            weight += len + FRAME_WEIGHT;
            if place == Place::InBatch && weight > MAX_FRAME_BYTES {
                return Err(DecodeError::Invalid("compressed batch of too many frames"));
            }
            self.accept(bytes[FRAME_HEADER_BYTES..len].to_vec(), place)?;
            bytes = &bytes[len..];
        }
        Ok(())
    }
}

const HELLO_TAG: u8 = 1;

/// The length (header included) of the complete frame at the start of `bytes`, `None` if it has
/// not all arrived yet. Refuses an oversized or empty frame before it is buffered.
fn frame_at(bytes: &[u8]) -> Result<Option<usize>, DecodeError> {
    let Some(header) = bytes.first_chunk::<FRAME_HEADER_BYTES>() else {
        return Ok(None);
    };
    let len = u32::from_le_bytes(*header) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(DecodeError::Oversized(len));
    }
    if len == 0 {
        return Err(DecodeError::Invalid("empty frame"));
    }
    Ok((bytes.len() >= FRAME_HEADER_BYTES + len).then_some(FRAME_HEADER_BYTES + len))
}

/// Where a `Hello`'s own fields end (what follows are frames). A `Hello` of another version
/// ends at its version: it is read no further.
fn hello_end(payload: &[u8]) -> Result<usize, DecodeError> {
    let mut r = Reader(ByteReader::new(payload, 0));
    r.u8()?;
    if r.0.u16_le()? != PROTOCOL_VERSION {
        return Ok(payload.len());
    }
    r.take(16)?;
    r.bytes(MAX_CREDENTIAL_BYTES, "certificate length")?;
    Ok(r.0.position())
}

/// Inflates a compressed batch's body: the declared length, then raw DEFLATE. Refuses a declared
/// length beyond the bounds before inflating anything, and a stream that does not inflate to
/// exactly that length.
fn inflate(body: &[u8]) -> Result<Vec<u8>, DecodeError> {
    use std::io::Read;
    let mut r = Reader(ByteReader::new(body, 0));
    let declared = r.bounded(MAX_FRAME_BYTES, "compressed batch length")?;
    let compressed = &body[r.0.position()..];
    if declared > compressed.len().saturating_mul(MAX_INFLATE_RATIO) + 1024 {
        return Err(DecodeError::Invalid("compressed batch ratio"));
    }
    let mut out = Vec::with_capacity(declared);
    flate2::read::DeflateDecoder::new(compressed)
        .take(declared as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| DecodeError::Invalid("compressed batch stream"))?;
    if out.len() != declared {
        return Err(DecodeError::Invalid("compressed batch length"));
    }
    Ok(out)
}

/// How hard a batch is compressed: the trade between the sender's processor and the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// DEFLATE's default level, for a session's first megabyte (a reconnect, a shift's push):
    /// where the link's bytes cost more than the processor's milliseconds (a rural link of
    /// 384 kbit/s carries 48 B a millisecond).
    Tight,
    /// DEFLATE's fastest level (`gzip -1`), for the rest of a bulk transfer (a first sync's
    /// month): about a third of the default's processor time for about 10 % more bytes
    /// (measured on a base's month: 0.8 s against 2.5 s for 229 MB, 54.3 MB against 49.2 MB).
    /// A bulk sender is bound by its processor on any link faster than a few Mbit/s, and on a
    /// slower one a first sync has time to spare (see BENCHMARKS.md, the first syncs).
    Fast,
}

impl Packing {
    fn level(self) -> flate2::Compression {
        match self {
            Packing::Tight => flate2::Compression::default(),
            Packing::Fast => flate2::Compression::fast(),
        }
    }
}

/// Packs consecutive `frames` into compressed batches where that saves bytes; frames too large
/// for a batch, and batches that would not shrink, go as they are. The order is kept.
pub fn compress(frames: Vec<Vec<u8>>, packing: Packing) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut batch_bytes = 0;
    for frame in frames {
        let weight = frame.len() + FRAME_WEIGHT;
        if batch_bytes + weight > MAX_BATCH_BYTES && !batch.is_empty() {
            out.extend(compress_batch(std::mem::take(&mut batch), packing));
            batch_bytes = 0;
        }
        if weight > MAX_BATCH_BYTES {
            out.push(frame);
            continue;
        }
        batch_bytes += weight;
        batch.push(frame);
    }
    if !batch.is_empty() {
        out.extend(compress_batch(batch, packing));
    }
    out
}

fn compress_batch(frames: Vec<Vec<u8>>, packing: Packing) -> Vec<Vec<u8>> {
    use std::io::Write;
    let raw: Vec<u8> = frames.concat();
    let mut body = vec![0u8; FRAME_HEADER_BYTES];
    body.push(COMPRESSED_TAG);
    put_varint(&mut body, raw.len() as u64);
    let mut encoder = flate2::write::DeflateEncoder::new(body, packing.level());
    // Writing to a Vec cannot fail.
    let Ok(mut frame) = encoder.write_all(&raw).and_then(|()| encoder.finish()) else {
        return frames;
    };
    if frame.len() >= raw.len() {
        return frames;
    }
    let len = (frame.len() - FRAME_HEADER_BYTES) as u32;
    frame[..FRAME_HEADER_BYTES].copy_from_slice(&len.to_le_bytes());
    vec![frame]
}

/// Puts the first of `frames` (whole frames, in order) inside `hello`, an encoded `Hello` frame,
/// after its fields, as many as fit in a frame: the receiver reads them as if they followed it.
/// Returns the rest, to be sent after it.
pub fn embed_in_hello(hello: &mut Vec<u8>, frames: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut rest = Vec::new();
    for frame in frames {
        if rest.is_empty() && hello.len() + frame.len() <= FRAME_HEADER_BYTES + MAX_FRAME_BYTES {
            hello.extend_from_slice(&frame);
        } else {
            rest.push(frame);
        }
    }
    let len = (hello.len() - FRAME_HEADER_BYTES) as u32;
    hello[..FRAME_HEADER_BYTES].copy_from_slice(&len.to_le_bytes());
    rest
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    let mut end = text.len().min(MAX_ERROR_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    put_bytes(out, &text.as_bytes()[..end]);
}

fn put_list(out: &mut Vec<u8>, tag: u8, items: &[Vec<u8>]) {
    out.push(tag);
    put_varint(out, items.len() as u64);
    for item in items {
        put_bytes(out, item);
    }
}

fn put_doc_heads(out: &mut Vec<u8>, tag: u8, doc: &DocumentId, heads: &[Hash]) {
    out.push(tag);
    put_doc(out, doc);
    put_varint(out, heads.len() as u64);
    for h in heads {
        out.extend_from_slice(h);
    }
}

/// Compact document id: kind byte, then 8 patient-id bytes and a u16 LE month index, or for a day
/// log a length-prefixed staff id and an i32 LE day number. 11 bytes for a patient document.
fn put_doc(out: &mut Vec<u8>, doc: &DocumentId) {
    let patient_month = |out: &mut Vec<u8>, kind: u8, p: &PatientId, m: &Month| {
        out.push(kind);
        out.extend_from_slice(&p.to_bytes());
        out.extend_from_slice(&(m.to_index() as u16).to_le_bytes());
    };
    match doc {
        DocumentId::PatientRecord(p) => {
            out.push(1);
            out.extend_from_slice(&p.to_bytes());
        }
        DocumentId::VisitPlan(p, m) => patient_month(out, 2, p, m),
        DocumentId::Journal(p, m) => patient_month(out, 3, p, m),
        DocumentId::Messages(p, m) => patient_month(out, 4, p, m),
        DocumentId::DayLog(s, d) => {
            out.push(5);
            out.push(s.as_str().len() as u8);
            out.extend_from_slice(s.as_str().as_bytes());
            out.extend_from_slice(&d.to_days().to_le_bytes());
        }
        DocumentId::Audit(n, m) => {
            out.push(6);
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(&(m.to_index() as u16).to_le_bytes());
        }
    }
}

impl From<Truncated> for DecodeError {
    fn from(_: Truncated) -> Self {
        DecodeError::Truncated
    }
}

/// The shared cursor plus the protocol's own encodings (varints, heads, document ids).
struct Reader<'a>(ByteReader<'a>);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        Ok(self.0.take(n)?)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.0.u8()?)
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        self.0.varint()?.ok_or(DecodeError::Invalid("varint"))
    }

    fn bounded(&mut self, max: usize, what: &'static str) -> Result<usize, DecodeError> {
        let value = self.varint()?;
        usize::try_from(value)
            .ok()
            .filter(|v| *v <= max)
            .ok_or(DecodeError::Invalid(what))
    }

    fn bytes(&mut self, max: usize, what: &'static str) -> Result<Vec<u8>, DecodeError> {
        let len = self.bounded(max, what)?;
        Ok(self.take(len)?.to_vec())
    }

    fn text(&mut self) -> Result<String, DecodeError> {
        let bytes = self.bytes(MAX_ERROR_TEXT, "text length")?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn list(&mut self) -> Result<Vec<Vec<u8>>, DecodeError> {
        let count = self.bounded(MAX_CREDENTIALS, "credential count")?;
        let mut items = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            items.push(self.bytes(MAX_CREDENTIAL_BYTES, "credential length")?);
        }
        Ok(items)
    }

    /// The rest of a `Hello` of our own protocol version.
    fn hello(&mut self, version: u16) -> Result<Message, DecodeError> {
        let mut epoch = [0u8; 16];
        epoch.copy_from_slice(self.take(16)?);
        let certificate = self.bytes(MAX_CREDENTIAL_BYTES, "certificate length")?;
        Ok(Message::Hello {
            version,
            epoch,
            certificate,
        })
    }

    fn changes(&mut self) -> Result<Message, DecodeError> {
        let doc = self.doc()?;
        let count = self.bounded(MAX_CHANGES_PER_MESSAGE, "change count")?;
        let mut changes = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            let bytes = self.bytes(MAX_FRAME_BYTES, "change length")?;
            let mut signature = [0u8; 64];
            signature.copy_from_slice(self.take(64)?);
            changes.push(SignedChange { bytes, signature });
        }
        Ok(Message::Changes { doc, changes })
    }

    fn heads(&mut self) -> Result<Vec<Hash>, DecodeError> {
        let count = self.bounded(MAX_HEADS, "head count")?;
        let mut heads = Vec::with_capacity(count);
        for _ in 0..count {
            let mut h = [0u8; 32];
            h.copy_from_slice(self.take(32)?);
            heads.push(h);
        }
        Ok(heads)
    }

    fn doc(&mut self) -> Result<DocumentId, DecodeError> {
        let kind = self.u8()?;
        let mut patient = || -> Result<PatientId, DecodeError> {
            let mut b = [0u8; 8];
            b.copy_from_slice(self.take(8)?);
            Ok(PatientId::from_bytes(b))
        };
        if kind == 1 {
            return Ok(DocumentId::PatientRecord(patient()?));
        }
        if (2..=4).contains(&kind) {
            let p = patient()?;
            let index = self.0.u16_le()?;
            let m = Month::from_index(u32::from(index)).ok_or(DecodeError::Invalid("month"))?;
            return Ok(match kind {
                2 => DocumentId::VisitPlan(p, m),
                3 => DocumentId::Journal(p, m),
                _ => DocumentId::Messages(p, m),
            });
        }
        if kind == 5 {
            let len = usize::from(self.u8()?);
            let staff = std::str::from_utf8(self.take(len)?)
                .ok()
                .and_then(|s| StaffId::parse(s).ok())
                .ok_or(DecodeError::Invalid("staff id"))?;
            let mut d = [0u8; 4];
            d.copy_from_slice(self.take(4)?);
            let day = Day::from_days(i32::from_le_bytes(d)).ok_or(DecodeError::Invalid("day"))?;
            return Ok(DocumentId::DayLog(staff, day));
        }
        if kind == 6 {
            let mut n = [0u8; 32];
            n.copy_from_slice(self.take(32)?);
            let node = NodeId::from_bytes(n).map_err(|_| DecodeError::Invalid("node id"))?;
            let index = self.0.u16_le()?;
            let m = Month::from_index(u32::from(index)).ok_or(DecodeError::Invalid("month"))?;
            return Ok(DocumentId::Audit(node, m));
        }
        Err(DecodeError::Invalid("document kind"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Result<Vec<Message>, DecodeError> {
        let mut decoder = FrameDecoder::default();
        decoder.push(bytes)?;
        let mut out = Vec::new();
        while let Some(frame) = decoder.next_frame() {
            out.push(decode(&frame)?);
        }
        Ok(out)
    }

    fn hello() -> Message {
        Message::Hello {
            version: PROTOCOL_VERSION,
            epoch: [7; 16],
            certificate: vec![1; 300],
        }
    }

    /// A push as a shift makes it: many changes repeating the same author block.
    fn push() -> Vec<Message> {
        let mut messages: Vec<Message> = (0..60u8)
            .map(|i| Message::Changes {
                doc: DocumentId::PatientRecord(PatientId::from_bytes([i; 8])),
                changes: vec![SignedChange {
                    bytes: format!(
                        "{{\"author\":{{\"staff\":\"S1\",\"role\":\"nurse\"}},\"n\":{i}}}"
                    )
                    .repeat(8)
                    .into_bytes(),
                    signature: [i; 64],
                }],
            })
            .collect();
        messages.push(Message::PushDone { round: 0, seq: 9 });
        messages
    }

    #[test]
    fn a_compressed_batch_unpacks_to_its_messages_in_order_and_is_smaller() {
        for packing in [Packing::Tight, Packing::Fast] {
            compressed_batch_unpacks_to_its_messages(packing);
        }
    }

    fn compressed_batch_unpacks_to_its_messages(packing: Packing) {
        let frames: Vec<Vec<u8>> = push().iter().map(encode).collect();
        let raw: usize = frames.iter().map(Vec::len).sum();
        let packed = compress(frames, packing);
        assert_eq!(packed.len(), 1, "one batch");
        assert!(
            packed[0].len() * 3 < raw,
            "{} of {raw} bytes",
            packed[0].len()
        );
        assert_eq!(decode_all(&packed.concat()).unwrap(), push());
    }

    #[test]
    fn frames_that_do_not_shrink_go_as_they_are() {
        let frames = vec![encode(&Message::Ack { round: 3 })];
        assert_eq!(compress(frames.clone(), Packing::Tight), frames);
    }

    #[test]
    fn a_hello_carries_the_frames_that_follow_it() {
        let mut frame = encode(&hello());
        let rest = embed_in_hello(
            &mut frame,
            compress(push().iter().map(encode).collect(), Packing::Tight),
        );
        assert!(rest.is_empty());
        let mut expected = vec![hello()];
        expected.extend(push());
        assert_eq!(decode_all(&frame).unwrap(), expected);
    }

    #[test]
    fn a_hello_of_another_version_is_read_no_further_than_its_version() {
        let mut frame = encode(&hello());
        frame[5] = (PROTOCOL_VERSION + 1) as u8;
        embed_in_hello(&mut frame, vec![vec![0xff; 40]]);
        let messages = decode_all(&frame).unwrap();
        assert!(
            matches!(messages[..], [Message::Hello { version, .. }] if version == PROTOCOL_VERSION + 1),
            "{messages:?}"
        );
    }

    /// A batch frame declaring `declared` bytes, holding `body` deflated.
    fn batch(declared: usize, body: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut payload = vec![COMPRESSED_TAG];
        put_varint(&mut payload, declared as u64);
        let mut e = flate2::write::DeflateEncoder::new(payload, flate2::Compression::best());
        e.write_all(body).unwrap();
        let payload = e.finish().unwrap();
        let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
        frame.extend(payload);
        frame
    }

    #[test]
    fn a_compression_bomb_is_refused_before_it_is_inflated() {
        // 8 MiB of zeros deflate to about 8 KB: far beyond the ratio a push ever has.
        let zeros = vec![0u8; MAX_FRAME_BYTES];
        let bomb = batch(MAX_FRAME_BYTES, &zeros);
        assert!(bomb.len() < 16 * 1024);
        assert_eq!(
            decode_all(&bomb).unwrap_err(),
            DecodeError::Invalid("compressed batch ratio")
        );
        // A small declared length over a stream that inflates further stops at the length.
        let liar = batch(100, &zeros[..1_000_000]);
        assert_eq!(
            decode_all(&liar).unwrap_err(),
            DecodeError::Invalid("compressed batch length")
        );
    }

    #[test]
    fn a_batch_of_two_hundred_thousand_tiny_frames_is_refused_and_the_same_frames_packed_by_a_sender_are_not()
     {
        // 200,000 Acks of a few bytes each (1.4 MB, within the ratio bound), which would be
        // 200,000 buffers and messages held.
        let mut round = 1u64;
        let frames: Vec<Vec<u8>> = (0..200_000)
            .map(|_| {
                round = round.wrapping_mul(6364136223846793005).wrapping_add(1);
                encode(&Message::Ack { round: round >> 50 })
            })
            .collect();
        let acks = frames.concat();
        let bomb = batch(acks.len(), &acks);
        assert_eq!(
            decode_all(&bomb).unwrap_err(),
            DecodeError::Invalid("compressed batch of too many frames")
        );
        // The sender splits by the same weight: they go as batches the receiver takes.
        let packed = compress(frames, Packing::Fast);
        assert!(packed.len() > 1);
        assert_eq!(decode_all(&packed.concat()).unwrap().len(), 200_000);
    }

    #[test]
    fn batches_and_hellos_nest_nowhere() {
        let inner = compress(push().iter().map(encode).collect(), Packing::Tight).concat();
        assert_eq!(
            decode_all(&batch(inner.len(), &inner)).unwrap_err(),
            DecodeError::Invalid("a compressed batch inside another")
        );
        let hello = encode(&hello());
        assert_eq!(
            decode_all(&batch(hello.len(), &hello)).unwrap_err(),
            DecodeError::Invalid("a Hello inside another frame")
        );
        let mut twice = encode(&self::hello());
        embed_in_hello(&mut twice, vec![encode(&self::hello())]);
        assert_eq!(
            decode_all(&twice).unwrap_err(),
            DecodeError::Invalid("a Hello inside another frame")
        );
    }
}
