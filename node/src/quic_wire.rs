//! What a QUIC datagram carries, read from the parts of its packets' headers that are sent in
//! the clear (RFC 9000 §17): each packet's kind and size. The link proxy logs it with every
//! datagram, so a test can tell a client's 0-RTT data (sent before the server could answer)
//! from what it sent after the handshake by what the packets are, not by when they were seen —
//! a timing a loaded machine can stretch.
//!
//! Nothing here decrypts anything: the kinds and lengths of long-header packets are not
//! protected, and a short-header (1-RTT) packet runs to the datagram's end.

use std::fmt;

/// A QUIC packet's kind, as its header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Initial,
    ZeroRtt,
    Handshake,
    Retry,
    /// A server's list of the versions it speaks (version 0): the rest of the datagram.
    VersionNegotiation,
    /// A short-header packet, protected with the 1-RTT keys.
    OneRtt,
    /// A long header of a version this does not know, or bytes that do not parse as QUIC: the
    /// rest of the datagram.
    Other,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Initial => "initial",
            Kind::ZeroRtt => "0rtt",
            Kind::Handshake => "handshake",
            Kind::Retry => "retry",
            Kind::VersionNegotiation => "vn",
            Kind::OneRtt => "1rtt",
            Kind::Other => "other",
        }
    }
}

/// The packets of one datagram, in order, with their sizes in bytes (headers included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Packets(pub(crate) Vec<(Kind, usize)>);

impl fmt::Display for Packets {
    /// `initial:1162,0rtt:38`: what the link's log shows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (kind, len)) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{}:{len}", kind.name())?;
        }
        Ok(())
    }
}

const LONG_HEADER: u8 = 0x80;
const VERSION_1: u32 = 0x0000_0001;
const VERSION_2: u32 = 0x6b33_43cf;

/// The packets a datagram carries. Coalesced long-header packets (RFC 9000 §12.2) are each
/// named; whatever cannot be parsed ends the list as [`Kind::Other`], so the sizes always add
/// up to the datagram's.
pub(crate) fn packets(datagram: &[u8]) -> Packets {
    let mut out = Vec::new();
    let mut rest = datagram;
    while !rest.is_empty() {
        let (kind, len) = match long_packet(rest) {
            Some(packet) => packet,
            None if rest[0] & LONG_HEADER == 0 => (Kind::OneRtt, rest.len()),
            None => (Kind::Other, rest.len()),
        };
        out.push((kind, len));
        rest = &rest[len..];
    }
    Packets(out)
}

/// A long-header packet at the start of `bytes`: its kind and its length, or `None` if it is
/// not one or does not fit.
fn long_packet(bytes: &[u8]) -> Option<(Kind, usize)> {
    let first = *bytes.first()?;
    if first & LONG_HEADER == 0 {
        return None;
    }
    let mut r = Reader { bytes, at: 1 };
    let version = u32::from_be_bytes(r.take(4)?.try_into().ok()?);
    if version == 0 {
        return Some((Kind::VersionNegotiation, bytes.len()));
    }
    let kind = kind_of(version, (first >> 4) & 0b11)?;
    let dcid_len = r.take(1)?[0];
    r.take(usize::from(dcid_len))?;
    let scid_len = r.take(1)?[0];
    r.take(usize::from(scid_len))?;
    if kind == Kind::Retry {
        return Some((kind, bytes.len()));
    }
    if kind == Kind::Initial {
        let token_len = r.varint()?;
        r.take(usize::try_from(token_len).ok()?)?;
    }
    let payload = usize::try_from(r.varint()?).ok()?;
    let len = r.at.checked_add(payload)?;
    (len <= bytes.len()).then_some((kind, len))
}

/// The packet kind a long header's two type bits name in `version` (QUIC v2 numbers them
/// differently, RFC 9369 §3.2).
fn kind_of(version: u32, bits: u8) -> Option<Kind> {
    let kinds = match version {
        VERSION_1 => [Kind::Initial, Kind::ZeroRtt, Kind::Handshake, Kind::Retry],
        VERSION_2 => [Kind::Retry, Kind::Initial, Kind::ZeroRtt, Kind::Handshake],
        _ => return None,
    };
    Some(kinds[usize::from(bits)])
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let taken = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(taken)
    }

    /// A variable-length integer (RFC 9000 §16): the first byte's two high bits give its size.
    fn varint(&mut self) -> Option<u64> {
        let first = self.take(1)?[0];
        let len = 1usize << (first >> 6);
        let mut value = u64::from(first & 0x3f);
        for &b in self.take(len - 1)? {
            value = (value << 8) | u64::from(b);
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 1 long-header packet of `kind_bits` with an 8-byte destination and source
    /// connection id and `payload` bytes after the length (which is given in two bytes).
    fn long(kind_bits: u8, payload: usize) -> Vec<u8> {
        let mut p = vec![0xc0 | (kind_bits << 4)];
        p.extend_from_slice(&VERSION_1.to_be_bytes());
        p.push(8);
        p.extend_from_slice(&[1; 8]);
        p.push(8);
        p.extend_from_slice(&[2; 8]);
        if kind_bits == 0 {
            p.push(0); // no token
        }
        let len = u16::try_from(payload).expect("a payload of under 16 KiB") | 0x4000;
        p.extend_from_slice(&len.to_be_bytes());
        p.extend(std::iter::repeat_n(0xaa, payload));
        p
    }

    #[test]
    fn coalesced_initial_and_zero_rtt_packets_are_each_named_with_their_size() {
        let initial = long(0, 300);
        let zero_rtt = long(1, 800);
        let datagram = [initial.clone(), zero_rtt.clone()].concat();
        let parsed = packets(&datagram);
        assert_eq!(
            parsed,
            Packets(vec![
                (Kind::Initial, initial.len()),
                (Kind::ZeroRtt, zero_rtt.len())
            ])
        );
        // 23 B of header before the token and length fields, one of token length, two of length.
        assert_eq!(parsed.to_string(), "initial:326,0rtt:825");
    }

    #[test]
    fn a_short_header_packet_after_a_handshake_packet_runs_to_the_datagrams_end() {
        let handshake = long(2, 100);
        let datagram = [handshake.clone(), vec![0x40; 57]].concat();
        assert_eq!(
            packets(&datagram),
            Packets(vec![(Kind::Handshake, handshake.len()), (Kind::OneRtt, 57)])
        );
    }

    #[test]
    fn a_length_beyond_the_datagram_or_an_unknown_version_is_other_and_the_sizes_add_up() {
        let mut cut = long(1, 800);
        cut.truncate(500);
        assert_eq!(packets(&cut), Packets(vec![(Kind::Other, 500)]));
        let mut unknown = long(0, 10);
        unknown[1..5].copy_from_slice(&0xdead_beef_u32.to_be_bytes());
        assert_eq!(
            packets(&unknown),
            Packets(vec![(Kind::Other, unknown.len())])
        );
        assert_eq!(packets(&[]), Packets(vec![]));
        assert_eq!(packets(&[0xc0]), Packets(vec![(Kind::Other, 1)]));
    }

    #[test]
    fn a_version_negotiation_packet_runs_to_the_datagrams_end() {
        let mut p = long(0, 10);
        p[1..5].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(
            packets(&p),
            Packets(vec![(Kind::VersionNegotiation, p.len())])
        );
    }

    #[test]
    fn version_2_numbers_its_packet_kinds_differently() {
        let mut p = long(2, 10); // v1's Handshake bits, no token field
        p[1..5].copy_from_slice(&VERSION_2.to_be_bytes());
        // In v2 those bits name 0-RTT, whose header has no token either.
        assert_eq!(packets(&p), Packets(vec![(Kind::ZeroRtt, p.len())]));
    }
}
