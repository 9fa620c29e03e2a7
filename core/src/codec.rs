//! A bounds-checked cursor over untrusted bytes, shared by the wire decoder and the export-file
//! decoder: every read checks the remaining length first, so hostile input ends in an error.

/// The input ended before a read was satisfied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Truncated;

/// Reads little-endian values from a byte slice.
#[derive(Debug)]
pub(crate) struct ByteReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    pub(crate) fn new(bytes: &'a [u8], pos: usize) -> Self {
        ByteReader { bytes, pos }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left to read.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Truncated> {
        let end = self.pos.checked_add(n).ok_or(Truncated)?;
        let out = self.bytes.get(self.pos..end).ok_or(Truncated)?;
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Truncated> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16_le(&mut self) -> Result<u16, Truncated> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32_le(&mut self) -> Result<u32, Truncated> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An unsigned LEB128 value as [`put_varint`] writes it; `None` if it runs past 64 bits.
    pub(crate) fn varint(&mut self) -> Result<Option<u64>, Truncated> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(Some(value));
            }
        }
        Ok(None)
    }
}

/// Appends `value` as unsigned LEB128: one byte for values below 128.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A signed value as an unsigned one for [`put_varint`], small magnitudes small (zigzag).
pub(crate) fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// The signed value [`zigzag`] made.
pub(crate) fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// An unsigned LEB128 value and how many bytes it took (at most 10): Automerge's chunk lengths,
/// read by the change pipeline and by the store's salvage of damaged documents.
pub(crate) fn leb128(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn varints_and_zigzag_round_trip_at_their_byte_boundaries() {
        let values = [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ];
        for value in values {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(
                out.len(),
                (64 - value.leading_zeros() as usize).div_ceil(7).max(1)
            );
            assert_eq!(ByteReader::new(&out, 0).varint(), Ok(Some(value)));
            assert_eq!(
                ByteReader::new(&out[..out.len() - 1], 0).varint(),
                Err(Truncated)
            );
        }
        for value in [0, 1, -1, 63, -64, 64, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(value)), value);
        }
        assert_eq!(zigzag(-1), 1, "small magnitudes stay small");
        assert_eq!(ByteReader::new(&[0xff; 11], 0).varint(), Ok(None));
    }
}
