//! `omsyn bench store --table-pricing DOCUMENTS`: what each table a note's commit changes costs.
//!
//! A note's commit changes three tables: `chunks` (the sealed change), `docs` (the document's
//! bookkeeping row) and `log` (its position in the change log: the old one removed, the next one
//! inserted). redb writes every page a commit dirtied, and a table's pages are its own, so each
//! table costs at least a leaf, and a branch once it outgrows a page. This prices the layouts
//! with raw redb commits of the same durability as Omsyn's (`Immediate`, redb's defaults), so a
//! layout change can be judged before it is built: the chunk alone (the raw baseline), with the
//! row in a second table, with the log in a third (format 9's layout), with the row and the log
//! sharing one table under key prefixes, and with the row as a tail record in `chunks` right
//! after the document's chunks (format 10); with the document's old log entry the one before
//! (the same leaf), a far one (another leaf, as at a base), or left in place. `documents` other documents' rows and log entries are
//! there first: the size of the tables decides how many pages a change dirties.
//!
//! Like the write benchmark's baseline, this touches redb directly.

use std::path::Path;

use anyhow::{Result, bail};
use redb::{Database, TableDefinition};
use serde_json::json;

use crate::bench::{Samples, median_and_mean, ms, tempfile_dir};

const CHUNKS: TableDefinition<(&str, u64, u32), &[u8]> = TableDefinition::new("chunks");
const DOCS: TableDefinition<&str, &[u8]> = TableDefinition::new("docs");
const LOG: TableDefinition<u64, &str> = TableDefinition::new("log");
const DOCS_AND_LOG: TableDefinition<&str, &[u8]> = TableDefinition::new("docs_and_log");
const DOC: &str = "journal/p-0123456789abcdef/2026-11";
/// A sealed note chunk's size as the write benchmark stores it (signature, nonce, tag included).
const CHUNK_BYTES: usize = 600;
/// A `docs` row: `chunks::DocMeta`, five u64s.
const ROW_BYTES: usize = 40;

/// The layouts priced, in the order they are reported.
#[derive(Clone, Copy)]
enum Layout {
    Raw,
    TwoTables,
    ThreeTables,
    SharedTable,
    /// Format 10: the row as the document's tail record in `chunks`, after its newest chunk.
    Tail,
    /// Format 9's three tables where the old log entry is another leaf's (see [`Log::Far`]).
    ThreeTablesFar,
    /// Format 10 where the old log entry is another leaf's.
    TailFar,
    /// Format 10 with the old log entry left in place (readers would have to skip it).
    TailLogKept,
}

/// Where the document's old log entry is when a commit moves it to the end.
#[derive(Clone, Copy, PartialEq)]
enum Log {
    /// No log.
    None,
    /// The entry before the new one (the document written last time: in the same leaf).
    Previous,
    /// A prepared document's, a different one each commit (as at a base, where the document
    /// written was last written hundreds of commits ago: its entry in another leaf).
    Far,
    /// Left in place.
    Kept,
}

impl Layout {
    const ALL: [Layout; 8] = [
        Layout::Raw,
        Layout::TwoTables,
        Layout::ThreeTables,
        Layout::SharedTable,
        Layout::Tail,
        Layout::ThreeTablesFar,
        Layout::TailFar,
        Layout::TailLogKept,
    ];

    fn name(self) -> &'static str {
        match self {
            Layout::Raw => "chunk only (the raw baseline)",
            Layout::TwoTables => "chunk + row in a second table",
            Layout::ThreeTables => "chunk + row + log, three tables (format 9)",
            Layout::SharedTable => "chunk + row and log in one table",
            Layout::Tail => "chunk + tail record beside it + log (format 10)",
            Layout::ThreeTablesFar => "format 9, the old log entry far",
            Layout::TailFar => "format 10, the old log entry far",
            Layout::TailLogKept => "format 10, the old log entry kept",
        }
    }

    fn log(self) -> Log {
        match self {
            Layout::Raw | Layout::TwoTables => Log::None,
            Layout::ThreeTables | Layout::SharedTable | Layout::Tail => Log::Previous,
            Layout::ThreeTablesFar | Layout::TailFar => Log::Far,
            Layout::TailLogKept => Log::Kept,
        }
    }
}

/// A log entry's key where it shares a table with the rows: sorts before every document id.
fn log_key(seq: u64) -> String {
    format!("\u{0}log/{seq:016x}")
}

pub(crate) fn run(json: bool, documents: u64, writes: usize) -> Result<()> {
    if writes == 0 {
        bail!("--writes must be at least 1");
    }
    let dir = tempfile_dir()?;
    let result = measure(json, &dir, documents, writes);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure(json: bool, dir: &Path, documents: u64, writes: usize) -> Result<()> {
    let dbs = Layout::ALL
        .iter()
        .enumerate()
        .map(|(i, _)| prepare(&dir.join(format!("layout-{i}.redb")), documents))
        .collect::<Result<Vec<_>>>()?;
    let mut samples: Vec<Samples> = Layout::ALL.iter().map(|_| Samples::default()).collect();
    let payload = vec![0x42u8; CHUNK_BYTES];
    for i in 0..writes as u64 {
        for ((layout, db), s) in Layout::ALL.iter().zip(&dbs).zip(&mut samples) {
            s.measure(|| commit(db, *layout, documents, i, &payload))?;
        }
    }
    report(json, documents, writes, samples)
}

/// A store with `documents` other documents' rows and log entries, in every table a layout uses.
fn prepare(path: &Path, documents: u64) -> Result<Database> {
    let db = Database::create(path)?;
    let tx = db.begin_write()?;
    {
        tx.open_table(CHUNKS)?;
        let mut docs = tx.open_table(DOCS)?;
        let mut log = tx.open_table(LOG)?;
        let mut both = tx.open_table(DOCS_AND_LOG)?;
        for i in 0..documents {
            let doc = format!("journal/p-{i:016x}/2026-10");
            docs.insert(doc.as_str(), [0u8; ROW_BYTES].as_slice())?;
            log.insert(i + 1, doc.as_str())?;
            both.insert(doc.as_str(), [0u8; ROW_BYTES].as_slice())?;
            both.insert(log_key(i + 1).as_str(), doc.as_bytes())?;
        }
    }
    tx.commit()?;
    Ok(db)
}

/// The `i`th note's commit in `layout`: its chunk, and the document's row and log position
/// moved from the last one to the next where the layout keeps them.
fn commit(db: &Database, layout: Layout, documents: u64, i: u64, chunk: &[u8]) -> Result<()> {
    let seq = documents + 1 + i;
    let row = [i as u8; ROW_BYTES];
    let tx = db.begin_write()?;
    {
        let mut chunks = tx.open_table(CHUNKS)?;
        chunks.insert((DOC, i, 0), chunk)?;
        match layout {
            Layout::Raw => {}
            Layout::TwoTables => {
                tx.open_table(DOCS)?.insert(DOC, row.as_slice())?;
            }
            Layout::ThreeTables | Layout::ThreeTablesFar => {
                tx.open_table(DOCS)?.insert(DOC, row.as_slice())?;
                move_in_log(&tx, layout.log(), documents, i)?;
            }
            Layout::Tail | Layout::TailFar | Layout::TailLogKept => {
                chunks.insert((DOC, u64::MAX, 0), row.as_slice())?;
                move_in_log(&tx, layout.log(), documents, i)?;
            }
            Layout::SharedTable => {
                let mut both = tx.open_table(DOCS_AND_LOG)?;
                both.insert(DOC, row.as_slice())?;
                if i > 0 {
                    both.remove(log_key(seq - 1).as_str())?;
                }
                both.insert(log_key(seq).as_str(), DOC.as_bytes())?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// Moves the `i`th commit's document to the end of the log, from where `log` says it was.
fn move_in_log(tx: &redb::WriteTransaction, log: Log, documents: u64, i: u64) -> Result<()> {
    let seq = documents + 1 + i;
    let mut table = tx.open_table(LOG)?;
    match log {
        Log::Previous if i > 0 => {
            table.remove(seq - 1)?;
        }
        // A stride prime to any count of documents a run uses: each commit another's entry.
        Log::Far if documents > 0 => {
            table.remove(1 + (i * 7919) % documents)?;
        }
        _ => {}
    }
    table.insert(seq, DOC)?;
    Ok(())
}

fn report(json: bool, documents: u64, writes: usize, samples: Vec<Samples>) -> Result<()> {
    let rows: Vec<(&str, f64, f64, f64)> = Layout::ALL
        .iter()
        .zip(samples)
        .map(|(layout, s)| {
            let bytes = s.disk_bytes as f64 / writes as f64;
            let wall = ms(median_and_mean(s.wall).0);
            (layout.name(), wall, ms(median_and_mean(s.cpu).0), bytes)
        })
        .collect();
    let (_, base_wall, base_cpu, base_bytes) = rows[0];
    if json {
        let layouts: Vec<_> = rows
            .iter()
            .map(|(name, wall, cpu, bytes)| {
                json!({"layout": name, "wall_median_ms": wall, "cpu_median_ms": cpu,
                       "disk_bytes_per_commit": bytes})
            })
            .collect();
        outln!(
            "{}",
            json!({"documents": documents, "commits": writes, "layouts": layouts})
        );
        return Ok(());
    }
    outln!("{writes} commits each, interleaved, in a store of {documents} other documents");
    for (name, wall, cpu, bytes) in rows {
        outln!(
            "{name:48} wall {wall:.3} ms ({:.2}x)  processor {cpu:.3} ms ({:.2}x)  {bytes:.0} B a commit ({:.1} pages of 4 KiB, {:.2}x)",
            wall / base_wall,
            cpu / base_cpu,
            bytes / 4096.0,
            bytes / base_bytes
        );
    }
    Ok(())
}
