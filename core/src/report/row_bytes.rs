//! The day index's rows as bytes (store format 9; JSON before). The index keeps a row per
//! visit, performer and deviation of every day held — 150,000 sealed rows in a month of a
//! municipality — so each byte of a row counts: a visit's row is about 70 bytes here where its
//! JSON took about 280. Every row starts with the version of its encoding ([`ROW_FORMAT`]), so a
//! later one can be told from this one.
//!
//! Texts and lists are LEB128-length-prefixed; ids are their 8 random bytes; a timestamp is its
//! Unix seconds (zigzag LEB128), nanoseconds (LEB128) and UTC offset in seconds (zigzag LEB128),
//! exact where its RFC 3339 text took 25 bytes. Decoding checks every length: a row that does
//! not decode is reported as corrupt, never trusted.

use super::lines::{DeviationLine, VisitLine, VisitOutcome};
use crate::codec::{ByteReader, put_varint, unzigzag, zigzag};
use crate::docs::plan::VisitKind;
use crate::ids::{PatientId, VisitId};
use crate::store::StoreError;
use crate::time::Timestamp;

/// The encoding every row written by this build starts with.
const ROW_FORMAT: u8 = 1;

/// A visit's day-index row: the report's line and, beside it, who performed the visit as the
/// report counts them (staff ids, which the line's JSON does not carry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct VisitRow {
    pub(super) line: VisitLine,
    pub(super) performers: Vec<String>,
}

/// A visit's row: the report's line and who performed it (staff ids).
pub(super) fn encode_visit(row: &VisitRow) -> Vec<u8> {
    let line = &row.line;
    let mut w = Writer::new();
    w.0.extend_from_slice(&line.visit.to_bytes());
    w.0.extend_from_slice(&line.patient.to_bytes());
    w.text(&line.patient_name);
    w.optional_text(line.zone.as_deref());
    w.time(&line.start);
    w.time(&line.end);
    w.0.push(kind_code(line.kind));
    w.texts(&line.staff);
    w.0.push(outcome_code(line.outcome));
    w.texts(&line.performed_by);
    w.texts(&row.performers);
    w.0
}

/// The row [`encode_visit`] wrote. The line's own `performers` stay empty, as its JSON had them:
/// the report takes the row's.
pub(super) fn decode_visit(bytes: &[u8]) -> Result<VisitRow, StoreError> {
    let mut r = Reader::new(bytes)?;
    let visit = VisitId::from_bytes(r.id()?);
    let patient = PatientId::from_bytes(r.id()?);
    let patient_name = r.text()?;
    let zone = r.optional_text()?;
    let (start, end) = (r.time()?, r.time()?);
    let kind = kind_of(r.byte()?)?;
    let staff = r.texts()?;
    let outcome = outcome_of(r.byte()?)?;
    let performed_by = r.texts()?;
    let performers = r.texts()?;
    r.finish()?;
    let line = VisitLine {
        visit,
        patient,
        patient_name,
        zone,
        start,
        end,
        kind,
        staff,
        outcome,
        performed_by,
        performers: Vec::new(),
    };
    Ok(VisitRow { line, performers })
}

/// A performer's row: who performed a visit, as continuity counts them.
pub(super) fn encode_performer(who: &str) -> Vec<u8> {
    let mut w = Writer::new();
    w.text(who);
    w.0
}

/// The performer [`encode_performer`] wrote.
pub(super) fn decode_performer(bytes: &[u8]) -> Result<String, StoreError> {
    let mut r = Reader::new(bytes)?;
    let who = r.text()?;
    r.finish()?;
    Ok(who)
}

/// A deviation's row.
pub(super) fn encode_deviation(line: &DeviationLine) -> Vec<u8> {
    let mut w = Writer::new();
    w.time(&line.at);
    w.text(&line.by);
    match &line.patient {
        Some(patient) => {
            w.0.push(1);
            w.0.extend_from_slice(&patient.to_bytes());
        }
        None => w.0.push(0),
    }
    w.text(&line.text);
    w.0
}

/// The deviation [`encode_deviation`] wrote.
pub(super) fn decode_deviation(bytes: &[u8]) -> Result<DeviationLine, StoreError> {
    let mut r = Reader::new(bytes)?;
    let at = r.time()?;
    let by = r.text()?;
    let patient = match r.byte()? {
        0 => None,
        1 => Some(PatientId::from_bytes(r.id()?)),
        _ => return Err(corrupt("an unknown patient marker")),
    };
    let text = r.text()?;
    r.finish()?;
    Ok(DeviationLine {
        at,
        by,
        patient,
        text,
    })
}

fn kind_code(kind: VisitKind) -> u8 {
    match kind {
        VisitKind::Physical => 0,
        VisitKind::Digital => 1,
    }
}

fn kind_of(code: u8) -> Result<VisitKind, StoreError> {
    match code {
        0 => Ok(VisitKind::Physical),
        1 => Ok(VisitKind::Digital),
        _ => Err(corrupt("an unknown visit kind")),
    }
}

const OUTCOMES: [VisitOutcome; 5] = [
    VisitOutcome::Done,
    VisitOutcome::Missed,
    VisitOutcome::Cancelled,
    VisitOutcome::CancelledButPerformed,
    VisitOutcome::Open,
];

fn outcome_code(outcome: VisitOutcome) -> u8 {
    OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(0) as u8
}

fn outcome_of(code: u8) -> Result<VisitOutcome, StoreError> {
    OUTCOMES
        .get(usize::from(code))
        .copied()
        .ok_or_else(|| corrupt("an unknown visit outcome"))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("a day row: {what}"))
}

/// A row being encoded, its version written first.
struct Writer(Vec<u8>);

impl Writer {
    fn new() -> Self {
        let mut out = Vec::with_capacity(96);
        out.push(ROW_FORMAT);
        Writer(out)
    }

    fn text(&mut self, text: &str) {
        put_varint(&mut self.0, text.len() as u64);
        self.0.extend_from_slice(text.as_bytes());
    }

    /// `None` as 0; `Some(text)` as its length plus one, then the text.
    fn optional_text(&mut self, text: Option<&str>) {
        match text {
            None => self.0.push(0),
            Some(text) => {
                put_varint(&mut self.0, text.len() as u64 + 1);
                self.0.extend_from_slice(text.as_bytes());
            }
        }
    }

    fn texts(&mut self, texts: &[String]) {
        put_varint(&mut self.0, texts.len() as u64);
        for text in texts {
            self.text(text);
        }
    }

    fn time(&mut self, at: &Timestamp) {
        let (secs, nanos, offset) = at.to_parts();
        put_varint(&mut self.0, zigzag(secs));
        put_varint(&mut self.0, u64::from(nanos));
        put_varint(&mut self.0, zigzag(i64::from(offset)));
    }
}

/// A row being decoded, its version checked.
struct Reader<'a>(ByteReader<'a>);

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Result<Self, StoreError> {
        match bytes.first() {
            Some(&ROW_FORMAT) => Ok(Reader(ByteReader::new(bytes, 1))),
            _ => Err(corrupt("an unknown encoding")),
        }
    }

    fn byte(&mut self) -> Result<u8, StoreError> {
        self.0.u8().map_err(|_| corrupt("truncated"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        self.0.take(n).map_err(|_| corrupt("truncated"))
    }

    fn varint(&mut self) -> Result<u64, StoreError> {
        self.0
            .varint()
            .ok()
            .flatten()
            .ok_or_else(|| corrupt("truncated"))
    }

    fn id(&mut self) -> Result<[u8; 8], StoreError> {
        self.take(8)?.try_into().map_err(|_| corrupt("truncated"))
    }

    fn utf8(&mut self, len: u64) -> Result<String, StoreError> {
        let len = usize::try_from(len).map_err(|_| corrupt("truncated"))?;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| corrupt("a text is not UTF-8"))
    }

    fn text(&mut self) -> Result<String, StoreError> {
        let len = self.varint()?;
        self.utf8(len)
    }

    fn optional_text(&mut self) -> Result<Option<String>, StoreError> {
        match self.varint()? {
            0 => Ok(None),
            len => self.utf8(len - 1).map(Some),
        }
    }

    fn texts(&mut self) -> Result<Vec<String>, StoreError> {
        let count = self.varint()?;
        // Each text takes at least a byte: no hostile count makes a large allocation.
        let mut out = Vec::with_capacity(count.min(self.0.remaining() as u64) as usize);
        for _ in 0..count {
            out.push(self.text()?);
        }
        Ok(out)
    }

    fn time(&mut self) -> Result<Timestamp, StoreError> {
        let secs = unzigzag(self.varint()?);
        let nanos = u32::try_from(self.varint()?).map_err(|_| corrupt("a time out of range"))?;
        let offset =
            i32::try_from(unzigzag(self.varint()?)).map_err(|_| corrupt("a time out of range"))?;
        Timestamp::from_parts(secs, nanos, offset).ok_or_else(|| corrupt("a time out of range"))
    }

    /// The row ends here: bytes left over mean it is not what this encoding wrote.
    fn finish(&self) -> Result<(), StoreError> {
        match self.0.remaining() {
            0 => Ok(()),
            _ => Err(corrupt("bytes after its end")),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    fn visit_row(outcome: VisitOutcome, zone: Option<&str>) -> VisitRow {
        VisitRow {
            line: VisitLine {
                visit: VisitId::from_bytes([1, 2, 3, 4, 5, 6, 7, 8]),
                patient: PatientId::from_bytes([9; 8]),
                patient_name: String::new(),
                zone: zone.map(str::to_owned),
                // Fractions of a second and offsets either side of UTC come back exactly.
                start: at("2026-11-15T07:30:00.123456789+01:00"),
                end: at("1969-12-31T23:59:59-09:30"),
                kind: VisitKind::Digital,
                staff: vec!["S00010".into(), "Åse Ø".into()],
                outcome,
                performed_by: vec!["Kari Nordmann".into()],
                performers: Vec::new(),
            },
            performers: vec!["S00010".into()],
        }
    }

    #[test]
    fn every_row_kind_decodes_to_what_was_encoded() {
        for outcome in OUTCOMES {
            for zone in [None, Some(""), Some("Sone 1")] {
                let row = visit_row(outcome, zone);
                let back = decode_visit(&encode_visit(&row)).unwrap();
                assert_eq!(back, row);
                // Timestamps compare as instants: their offsets and text must match too.
                assert_eq!(
                    (back.line.start.to_string(), back.line.end.to_string()),
                    (row.line.start.to_string(), row.line.end.to_string())
                );
            }
        }
        assert_eq!(
            decode_performer(&encode_performer("K0001")).unwrap(),
            "K0001"
        );
        for patient in [None, Some(PatientId::from_bytes([7; 8]))] {
            let line = DeviationLine {
                at: at("2026-03-29T02:30:00+02:00"),
                by: "Nurse".into(),
                patient,
                text: "fall i badet\nlegevakt varslet".into(),
            };
            assert_eq!(decode_deviation(&encode_deviation(&line)).unwrap(), line);
        }
    }

    #[test]
    fn a_visit_row_is_a_quarter_of_its_json() {
        let row = visit_row(VisitOutcome::Done, None);
        let json = serde_json::to_vec(&row.line).unwrap();
        assert!(
            encode_visit(&row).len() * 3 < json.len(),
            "{} bytes against {} of JSON",
            encode_visit(&row).len(),
            json.len()
        );
    }

    #[test]
    fn a_row_of_another_encoding_cut_short_or_run_on_is_corrupt_not_misread() {
        let bytes = encode_visit(&visit_row(VisitOutcome::Open, Some("Sone 2")));
        let json = serde_json::to_vec(&visit_row(VisitOutcome::Open, None).line).unwrap();
        assert!(decode_visit(&json).is_err(), "a format-8 JSON row");
        for len in 0..bytes.len() {
            assert!(decode_visit(&bytes[..len]).is_err(), "cut to {len} bytes");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_visit(&longer).is_err());
        assert!(
            decode_performer(&bytes).is_err(),
            "a visit row is no performer row"
        );
    }
}
