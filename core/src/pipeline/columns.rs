//! A received change's operations counted from its columns' run lengths, before Automerge
//! expands them.
//!
//! Automerge keeps a change's operations in columns, most of them run-length encoded: a run of
//! 2^40 equal operations takes a few bytes. Its parser expands every run, one operation at a
//! time (`Change::from_bytes` counts them, `decode` collects them), so a crafted change of a
//! hundred bytes, signed by any key, would keep a receiver busy for hours or exhaust its memory.
//! Here each column's run headers are read without expanding anything, and a change that would
//! expand to more than [`MAX_OPERATIONS`] items in any column is refused. The layout is
//! Automerge's change chunk (<https://alexjg.github.io/automerge-storage-docs/>): dependencies,
//! actor, sequence number, start op, time, message, other actors, then the columns' specs and
//! lengths, then their data.

use crate::codec::ByteReader;

/// The most operations (and, in a grouped column, predecessors) one change may expand to. A
/// node's changes put keys at a document's root, each with its own key and value bytes; the
/// largest it writes (a month's plan from a work list) has a few thousand.
pub const MAX_OPERATIONS: u64 = 100_000;

/// What a column's type says about how its items are stored (the spec's low three bits).
const GROUP: u64 = 0;
const DELTA: u64 = 3;
const BOOLEAN: u64 = 4;
const STRING: u64 = 5;
const VALUE: u64 = 7;
/// A spec bit for a deflated column (Automerge refuses one in a change before expanding it).
const DEFLATE: u64 = 8;

/// Refuses a change chunk's data (what follows its header) whose columns expand to more than
/// [`MAX_OPERATIONS`] items, or whose layout cannot be read.
pub(super) fn check_operation_count(data: &[u8]) -> Result<(), String> {
    let r = &mut ByteReader::new(data, 0);
    let deps = uleb(r)?;
    take(r, deps.checked_mul(32).ok_or_else(malformed)?)?;
    let actor = uleb(r)?;
    take(r, actor)?;
    uleb(r)?; // sequence number
    uleb(r)?; // start op
    sleb(r)?; // time
    let message = uleb(r)?;
    take(r, message)?;
    for _ in 0..uleb(r)? {
        let other = uleb(r)?;
        take(r, other)?;
    }
    let columns = uleb(r)?;
    let mut specs = Vec::new();
    for _ in 0..columns {
        specs.push((uleb(r)?, uleb(r)?));
    }
    for (spec, len) in specs {
        let column = take(r, len)?;
        if spec & DEFLATE != 0 || spec & 7 == VALUE {
            continue;
        }
        let (items, sum) = count(spec & 7, column)?;
        let most = items.max(sum);
        if most > MAX_OPERATIONS {
            return Err(format!(
                "a change whose columns expand to {most} operations; at most {MAX_OPERATIONS} are accepted"
            ));
        }
    }
    Ok(())
}

/// The items a column holds and, for a group column, the sum of its cardinalities (the items
/// its grouped columns hold per operation), read from its run headers.
fn count(kind: u64, column: &[u8]) -> Result<(u64, u64), String> {
    let r = &mut ByteReader::new(column, 0);
    let (mut items, mut sum) = (0u64, 0u64);
    if kind == BOOLEAN {
        // Runs of false and true in turn, each a count.
        while r.remaining() > 0 {
            items = items.saturating_add(uleb(r)?);
        }
        return Ok((items, 0));
    }
    while r.remaining() > 0 {
        let header = sleb(r)?;
        if header > 0 {
            // A run: one value, repeated.
            let n = header.unsigned_abs();
            let each = value(r, kind)?;
            items = items.saturating_add(n);
            sum = sum.saturating_add(n.saturating_mul(each));
        } else if header < 0 {
            // Literals: each value written out.
            for _ in 0..header.unsigned_abs() {
                sum = sum.saturating_add(value(r, kind)?);
                items = items.saturating_add(1);
            }
        } else {
            // Nulls: a count.
            items = items.saturating_add(uleb(r)?);
        }
        if items.max(sum) > MAX_OPERATIONS {
            break;
        }
    }
    Ok((items, if kind == GROUP { sum } else { 0 }))
}

fn malformed() -> String {
    "a change's columns are malformed".to_owned()
}

/// An unsigned LEB128 (counts, lengths, run values).
fn uleb(r: &mut ByteReader<'_>) -> Result<u64, String> {
    r.varint().ok().flatten().ok_or_else(malformed)
}

/// A signed LEB128 (Automerge's run headers, deltas and times).
fn sleb(r: &mut ByteReader<'_>) -> Result<i64, String> {
    let (mut value, mut shift) = (0i64, 0u32);
    loop {
        let byte = r.u8().map_err(|_| malformed())?;
        value |= i64::from(byte & 0x7f)
            .checked_shl(shift)
            .ok_or_else(malformed)?;
        shift += 7;
        if byte & 0x80 == 0 {
            if shift < 64 && byte & 0x40 != 0 {
                value |= -1i64 << shift;
            }
            return Ok(value);
        }
        if shift >= 70 {
            return Err(malformed());
        }
    }
}

/// The next `len` bytes (a length read from the bytes themselves: checked, never trusted).
fn take<'a>(r: &mut ByteReader<'a>, len: u64) -> Result<&'a [u8], String> {
    let len = usize::try_from(len).map_err(|_| malformed())?;
    r.take(len).map_err(|_| malformed())
}

/// One value of a run-length column of `kind`: a string is skipped (0 for the sum), a number
/// read (a delta's sign dropped: only a group's sum is used).
fn value(r: &mut ByteReader<'_>, kind: u64) -> Result<u64, String> {
    match kind {
        STRING => {
            let len = uleb(r)?;
            take(r, len)?;
            Ok(0)
        }
        DELTA => sleb(r).map(i64::unsigned_abs),
        _ => uleb(r),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn signed_leb128_reads_what_automerge_writes() {
        for (bytes, value) in [
            (&[0x00][..], 0i64),
            (&[0x01][..], 1),
            (&[0x7f][..], -1),
            (&[0x80, 0x01][..], 128),
            (&[0x80, 0x7f][..], -128),
            (&[0x3f][..], 63),
            (&[0x40][..], -64),
        ] {
            let mut r = ByteReader::new(bytes, 0);
            assert_eq!(sleb(&mut r).unwrap(), value, "{bytes:?}");
        }
    }

    #[test]
    fn a_run_counts_its_length_and_a_group_its_cardinalities() {
        // A run of 5 × 2, then literals 1 and 3, then 4 nulls.
        let column = [0x05, 0x02, 0x7e, 0x01, 0x03, 0x00, 0x04];
        assert_eq!(count(GROUP, &column).unwrap(), (11, 14));
        assert_eq!(count(2, &column).unwrap(), (11, 0));
        // A truncated run is malformed, not a panic.
        assert!(count(2, &[0x05]).is_err());
    }
}
