//! One shape of JSON: every command's `--json` output is checked against README's table ("What
//! `--json` prints") and against the rules above it — one object, an object's own id is `id` and a
//! reference is named after what it refers to, every moment in RFC 3339 with an offset, no arrays
//! of pairs. A command added without a row in the table, or left out of this tour, fails here.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::cli::{Node, planned_day, str_of, transfer};
use crate::network::{Daemon, sync};

/// Commands that print no JSON document of their own: a benchmark's measurements (see
/// BENCHMARKS.md), a shell script, a manual page, the demo's story, servers' event lines.
const NOT_JSON: &[&str] = &[
    "bench",
    "completions",
    "man",
    "demo",
    "relay",
    "run",
    "help",
];

/// The one-letter kinds of Omsyn's ids, the name a field referring to one carries, and its
/// plural (a list of them).
const KINDS: &[(char, &str, &str)] = &[
    ('p', "patient", "patients"),
    ('v', "visit", "visits"),
    ('e', "entry", "entries"),
    ('d', "vedtak", "vedtak"),
    ('t', "tiltak", "tiltak"),
    ('m', "medication", "medications"),
    ('f', "flag", "flags"),
    ('c', "contact", "contacts"),
    ('x', "conflict", "conflicts"),
    ('o', "task", "tasks"),
];

/// Every command's output on the tour, by command path (`visit list`).
#[derive(Default)]
struct Tour {
    commands: BTreeSet<String>,
    seen: BTreeMap<String, Value>,
}

impl Tour {
    /// Runs `args` with `--json` on `node`, asserts success, and keeps the output under its
    /// command path.
    fn ok(&mut self, node: &Node, args: &[&str]) -> Value {
        let value = node.ok(args);
        self.keep(args, value.clone());
        value
    }

    fn keep(&mut self, args: &[&str], value: Value) {
        let mut path = String::new();
        for word in args {
            let longer = if path.is_empty() {
                (*word).to_owned()
            } else {
                format!("{path} {word}")
            };
            if !self.commands.contains(&longer) {
                break;
            }
            path = longer;
        }
        assert!(!path.is_empty(), "{args:?} names no command");
        self.seen.entry(path).or_insert(value);
    }
}

/// The command paths `omsyn --help` lists, recursively, with whether each runs on its own
/// (`omsyn audit`) or only names a group (`omsyn patient`, whose usage ends in `<COMMAND>`).
fn commands(prefix: &[&str]) -> Vec<(String, bool)> {
    let mut help = std::process::Command::new(env!("CARGO_BIN_EXE_omsyn"));
    let out = help.args(prefix).arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let usage = text.lines().find(|l| l.starts_with("Usage:")).unwrap();
    let mut all = Vec::new();
    if !prefix.is_empty() {
        all.push((prefix.join(" "), !usage.trim_end().ends_with("<COMMAND>")));
    }
    let Some(list) = text.split("Commands:\n").nth(1) else {
        return all;
    };
    for line in list.lines().take_while(|l| l.starts_with("  ")) {
        let name = line.split_whitespace().next().unwrap();
        if name == "help" || (prefix.is_empty() && NOT_JSON.contains(&name)) {
            continue;
        }
        let mut deeper = prefix.to_vec();
        deeper.push(name);
        all.extend(commands(&deeper));
    }
    all
}

/// README's table: command path → its top-level keys, `?` marking a key that may be absent.
fn readme_table() -> BTreeMap<String, Vec<String>> {
    let readme = include_str!("../../../README.md");
    let section = readme
        .split("### What `--json` prints")
        .nth(1)
        .expect("README has a section \"What `--json` prints\"");
    let mut table = BTreeMap::new();
    for row in section.lines().take_while(|l| !l.starts_with('#')) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Some(command) = cells.get(1).and_then(|c| c.strip_prefix("`omsyn ")) else {
            continue;
        };
        let keys = cells[2]
            .split(',')
            .map(|k| k.trim().trim_matches('`').replace("`?", "?"))
            .filter(|k| !k.is_empty())
            .collect();
        table.insert(command.trim_end_matches('`').to_owned(), keys);
    }
    table
}

/// The rules every document obeys, wherever in it a value sits. Returns what breaks them.
fn broken_rules(path: &str, key: &str, value: &Value, problems: &mut Vec<String>) {
    let at = |what: String| format!("{path}: {what}");
    match value {
        Value::Array(items) => {
            if items.iter().any(Value::is_array) {
                problems.push(at(format!("`{key}` is an array of arrays (pairs?)")));
            }
            for item in items {
                broken_rules(path, key, item, problems);
            }
        }
        Value::Object(fields) => {
            for (name, item) in fields {
                // A journal entry's body is the record as written and signed, with the record's
                // own field names (`corrects`, `plan_revisions_seen`): README says so.
                if name == "body" {
                    continue;
                }
                if name.ends_with("_ms") {
                    problems.push(at(format!(
                        "`{name}`: a moment is RFC 3339, not milliseconds"
                    )));
                }
                broken_rules(path, name, item, problems);
            }
        }
        Value::Number(n) if n.as_i64().is_some_and(|n| n.abs() >= 1_000_000_000_000) => {
            problems.push(at(format!("`{key}` = {n} looks like epoch milliseconds")));
        }
        Value::String(s) => {
            if looks_like_a_moment(s) && !is_rfc3339_in_norway(s) {
                problems.push(at(format!(
                    "`{key}` = {s:?} is a moment not in RFC 3339 with Norway's offset then"
                )));
            }
            // A node's id (64 hex digits): the node's own `id`, or a `device`, or the `org` (its
            // key's id); `prev` chains the access log by hash.
            if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                let names_a_node = ["id", "device", "devices", "org", "prev"].contains(&key)
                    || key.ends_with("_device");
                if !names_a_node {
                    problems.push(at(format!("`{key}` holds a node id; name it `device`")));
                }
            }
            if let Some((kind, plural)) = id_kind(s) {
                let names_it = |k: &str| key == k || key.ends_with(&format!("_{k}"));
                if key != "id" && !names_it(kind) && !names_it(plural) {
                    problems.push(at(format!(
                        "`{key}` holds a {kind} id; name it `id` (its own) or `{kind}`"
                    )));
                }
            }
        }
        _ => {}
    }
}

fn looks_like_a_moment(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 16
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b' ')
        && b[13] == b':'
}

/// RFC 3339 with the offset Norway's zone had at that instant (the nodes run in Europe/Oslo): a
/// moment shown in UTC, or in the wrong season's offset, is refused.
fn is_rfc3339_in_norway(s: &str) -> bool {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) else {
        return false;
    };
    let norway = omsyn_core::time::Zone::OSLO.at_millis(t.timestamp_millis());
    s.as_bytes()[10] == b'T'
        && norway.is_some_and(|n| n.offset_secs() == t.offset().local_minus_utc())
}

/// The kind of a prefixed id (`v-0123456789abcdef` → `visit`), with its plural.
fn id_kind(s: &str) -> Option<(&'static str, &'static str)> {
    let (prefix, hex) = s.split_once('-')?;
    let mut chars = prefix.chars();
    let letter = chars.next()?;
    if chars.next().is_some() || hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    KINDS
        .iter()
        .find(|(k, ..)| *k == letter)
        .map(|(_, one, many)| (*one, *many))
}

/// A tour of every command that prints JSON, on a base, a nurse's phone and a home unit.
fn tour() -> Tour {
    let mut t = Tour {
        commands: commands(&[]).into_iter().map(|(c, _)| c).collect(),
        ..Tour::default()
    };
    let (base, patient, slot, visit) = planned_day();
    let nurse = Node::new("nurse", "Kari Nordmann", "S1");
    let request = t.ok(&nurse, &["enroll", "request"]);
    let cert = t.ok(&base, &["enroll", "approve", str_of(&request, "request")]);
    t.ok(&nurse, &["enroll", "install", str_of(&cert, "certificate")]);
    let home = Node::home_unit("Heim Nilsen", &patient);
    base.enroll(&home);
    t.ok(&base, &["id"]);
    t.ok(&base, &["check"]);
    t.ok(&base, &["org", "show"]);
    let fresh = Node::new("base", "Base Vest", "K2");
    t.ok(&fresh, &["org", "create", "--name", "Vestkommune"]);
    let p = &patient;
    records(&mut t, &base, p);
    visits(&mut t, &base, &nurse, p, &visit);
    journal(&mut t, &base, &nurse, p, &slot, &visit);
    access(&mut t, &base, &nurse, p);
    exchange(&mut t, &base, &nurse);
    t
}

fn records(t: &mut Tour, base: &Node, p: &str) {
    t.ok(
        base,
        &["patient", "add", "--name", "Per Hansen", "--zone", "Sone 1"],
    );
    t.ok(base, &["patient", "list"]);
    t.ok(
        base,
        &[
            "patient",
            "set",
            "--patient",
            p,
            "--field",
            "phone",
            "--value",
            "12345678",
        ],
    );
    let flag = t.ok(base, &["patient", "flag", "--patient", p, "--kind", "hund"]);
    let flag = str_of(&flag, "id").to_owned();
    t.ok(
        base,
        &[
            "patient",
            "unflag",
            "--patient",
            p,
            "--flag",
            &flag,
            "--reason",
            "borte",
        ],
    );
    t.ok(
        base,
        &[
            "patient",
            "contact",
            "--patient",
            p,
            "--name",
            "Ola",
            "--relation",
            "sønn",
        ],
    );
    t.ok(
        base,
        &["plan", "add", "--patient", p, "--description", "Sårstell"],
    );
    t.ok(
        base,
        &[
            "med",
            "add",
            "--patient",
            p,
            "--name",
            "Paracet",
            "--dose",
            "1",
            "--slot",
            "20:00",
        ],
    );
    t.ok(base, &["staff", "add", "--id", "S2", "--name", "Per Olsen"]);
    t.ok(base, &["staff", "list"]);
    t.ok(base, &["team", "--patient", p, "--add", "S2"]);
    let block = t.ok(base, &["block", "--patient", p, "--staff", "S2"]);
    t.ok(
        base,
        &["unblock", "--patient", p, "--block", str_of(&block, "id")],
    );
    t.ok(base, &["plan", "suggest", "--date", "2026-11-23"]);
}

fn visits(t: &mut Tour, base: &Node, nurse: &Node, p: &str, visit: &str) {
    let second = t.ok(
        base,
        &[
            "visit",
            "plan",
            "--patient",
            p,
            "--start",
            "2026-11-23T12:00:00+01:00",
            "--end",
            "2026-11-23T12:30:00+01:00",
            "--kind",
            "digital",
            "--staff",
            "S1",
        ],
    );
    let second = str_of(&second, "id").to_owned();
    t.ok(
        base,
        &[
            "visit",
            "move",
            "--visit",
            &second,
            "--start",
            "2026-11-23T12:10:00+01:00",
            "--end",
            "2026-11-23T12:40:00+01:00",
        ],
    );
    t.ok(
        base,
        &["visit", "assign", "--visit", &second, "--staff", "S1"],
    );
    let third = t.ok(
        base,
        &[
            "visit",
            "plan",
            "--patient",
            p,
            "--start",
            "2026-11-23T15:00:00+01:00",
            "--end",
            "2026-11-23T15:30:00+01:00",
            "--kind",
            "physical",
            "--staff",
            "S1",
        ],
    );
    t.ok(
        base,
        &[
            "visit",
            "cancel",
            "--visit",
            str_of(&third, "id"),
            "--reason",
            "innlagt",
        ],
    );
    t.ok(base, &["visit", "list", "--date", "2026-11-23"]);
    t.ok(base, &["import-worklist", &worklist(base)]);
    transfer(base, nurse);
    t.ok(
        nurse,
        &[
            "visit",
            "done",
            "--visit",
            visit,
            "--arrival",
            "2026-11-23T08:02:00+01:00",
        ],
    );
    t.ok(
        nurse,
        &[
            "visit",
            "missed",
            "--visit",
            &second,
            "--reason",
            "no-answer",
            "--at",
            "2026-11-23T12:15:00+01:00",
        ],
    );
    t.ok(nurse, &["daylog", "shift-start"]);
    t.ok(nurse, &["daylog", "visit-start", "--visit", visit]);
    t.ok(nurse, &["daylog", "visit-end", "--visit", visit]);
    t.ok(nurse, &["daylog", "travel", "--minutes", "12", "--km", "4"]);
    t.ok(
        nurse,
        &["daylog", "deviation", "--text", "Bilen startet ikke"],
    );
    t.ok(nurse, &["daylog", "shift-end"]);
}

/// A work list of one row (the fixture's first), written beside the node; returns its path.
fn worklist(node: &Node) -> String {
    let fixture = include_str!("../../../tests/fixtures/worklist-S-1day.csv");
    let file = node.path().join("list.csv");
    let rows: Vec<&str> = fixture.lines().take(2).collect();
    std::fs::write(&file, rows.join("\n")).unwrap();
    file.to_str().unwrap().to_owned()
}

fn journal(t: &mut Tour, base: &Node, nurse: &Node, p: &str, slot: &str, visit: &str) {
    let note = t.ok(
        nurse,
        &[
            "note",
            "add",
            "--patient",
            p,
            "--text",
            "Alt vel",
            "--visit",
            visit,
        ],
    );
    t.ok(
        nurse,
        &[
            "note",
            "correct",
            "--patient",
            p,
            "--entry",
            str_of(&note, "id"),
            "--text",
            "Alt vel, sov godt",
        ],
    );
    t.ok(
        nurse,
        &[
            "observe",
            "--patient",
            p,
            "--kind",
            "pulse",
            "--value",
            "70",
        ],
    );
    let given = ["med", "give", "--patient", p, "--slot", slot];
    t.ok(
        nurse,
        &[&given[..], &["--at", "2026-11-23T08:05:00+01:00"]].concat(),
    );
    // A second nurse gives the same dose: a safety conflict to resolve.
    let other = Node::new("nurse", "Per Olsen", "S5");
    base.enroll(&other);
    base.ok(&["team", "--patient", p, "--add", "S5"]);
    transfer(base, &other);
    other.ok(&[&given[..], &["--at", "2026-11-23T08:20:00+01:00"]].concat());
    transfer(&other, base);
    t.ok(
        nurse,
        &[
            "med",
            "not-given",
            "--patient",
            p,
            "--slot",
            slot,
            "--reason",
            "sov",
        ],
    );
    t.ok(
        nurse,
        &[
            "message",
            "send",
            "--patient",
            p,
            "--to",
            "base",
            "--text",
            "Ring meg",
        ],
    );
    transfer(nurse, base);
    t.ok(base, &["show", "--patient", p]);
    t.ok(base, &["day-report", "--date", "2026-11-23"]);
    let conflicts = t.ok(base, &["conflicts"]);
    let conflict = conflicts["conflicts"][0]["id"]
        .as_str()
        .expect("a dose given twice")
        .to_owned();
    t.ok(
        base,
        &[
            "conflicts",
            "resolve",
            "--conflict",
            &conflict,
            "--note",
            "Sjekket: gitt én gang",
        ],
    );
    let tasks = t.ok(base, &["tasks", "--all"]);
    let task = tasks["tasks"][0]["id"]
        .as_str()
        .expect("a call to make again")
        .to_owned();
    t.ok(base, &["tasks", "claim", &task]);
    t.ok(base, &["tasks", "done", &task, "--note", "Ringte, alt vel"]);
    t.ok(base, &["tasks", "policy"]);
}

fn access(t: &mut Tour, base: &Node, nurse: &Node, p: &str) {
    let stranger = t.ok(
        base,
        &["patient", "add", "--name", "Eva Berg", "--zone", "Sone 2"],
    );
    transfer(base, nurse);
    t.ok(
        nurse,
        &[
            "access",
            "ask",
            "--patient",
            str_of(&stranger, "id"),
            "--reason",
            "akutt",
        ],
    );
    transfer(nurse, base);
    t.ok(base, &["access", "list"]);
    t.ok(base, &["audit", "--patient", p]);
    t.ok(base, &["audit", "verify"]);
    t.ok(nurse, &["purge"]);
}

fn exchange(t: &mut Tour, base: &Node, nurse: &Node) {
    let file = base.path().join("all.omsyn");
    t.ok(base, &["export", file.to_str().unwrap()]);
    t.ok(nurse, &["import", file.to_str().unwrap()]);
    let daemon = Daemon::run(base, &[]);
    let ticket = daemon.ticket();
    t.keep(&["sync"], sync(nurse, &ticket, &[]));
    t.ok(nurse, &["status"]);
    t.ok(base, &["ticket"]);
    drop(daemon);
    let phone = Node::new("nurse", "Lise Lund", "S3");
    base.enroll(&phone);
    t.ok(
        base,
        &["revoke", &phone.id(), "--reason", "mistet telefonen"],
    );
    let blank = Node::blank();
    t.ok(
        &blank,
        &[
            "init",
            "--role",
            "nurse",
            "--name",
            "Anne Holm",
            "--staff-id",
            "S4",
        ],
    );
}

#[test]
fn an_error_with_json_is_exactly_one_error_document_on_stdout() {
    let node = Node::new("base", "Base", "K1");
    let refused_at_run = node.run(&["--json", "show", "--patient", "nobody"]);
    let refused_by_clap = node.run(&["--json", "visit", "plan", "--kind", "sideways"]);
    for out in [refused_at_run, refused_by_clap] {
        assert!(!out.status.success());
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not one JSON document ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        let fields = doc.as_object().unwrap();
        assert_eq!(fields.len(), 1, "{doc}");
        assert!(
            doc["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{doc}"
        );
    }
}

#[test]
fn every_command_prints_one_json_shape_as_readme_documents_it() {
    let tour = tour();
    let table = readme_table();
    let mut problems = Vec::new();
    for (command, runs_alone) in commands(&[]) {
        if !runs_alone {
            continue;
        }
        if !table.contains_key(&command) {
            problems.push(format!("{command}: no row in README's `--json` table"));
        }
        if !tour.seen.contains_key(&command) {
            problems.push(format!("{command}: not run by this test's tour"));
        }
    }
    for command in table.keys() {
        if !tour.commands.contains(command) {
            problems.push(format!(
                "{command}: a README row for a command that does not exist"
            ));
        }
    }
    for (command, value) in &tour.seen {
        if !value.is_object() {
            problems.push(format!("{command}: prints {value}, not one JSON object"));
            continue;
        }
        broken_rules(command, "", value, &mut problems);
        let Some(documented) = table.get(command) else {
            continue;
        };
        let keys: BTreeSet<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let required: BTreeSet<&str> = documented
            .iter()
            .filter(|k| !k.ends_with('?'))
            .map(String::as_str)
            .collect();
        let allowed: BTreeSet<&str> = documented.iter().map(|k| k.trim_end_matches('?')).collect();
        if !required.is_subset(&keys) || !keys.is_subset(&allowed) {
            problems.push(format!(
                "{command}: prints keys {keys:?}; README says {documented:?}"
            ));
        }
    }
    let shown: String = tour
        .seen
        .iter()
        .map(|(c, v)| format!("omsyn {c}: {v}\n"))
        .collect();
    assert!(problems.is_empty(), "{}\n\n{shown}", problems.join("\n"));
}
