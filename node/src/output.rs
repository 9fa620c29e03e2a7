//! Printing results: human-readable text by default, one JSON document with `--json`.
//!
//! Output goes to stdout/stderr, or — while a command runs on behalf of another process through
//! the daemon's control socket — into a per-thread capture that is sent back to that process.

use std::cell::RefCell;

use serde::Serialize;

/// Captured output of a command run for a forwarding client.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Captured {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    /// Binary output (an export written to stdout), base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) binary: Option<String>,
}

thread_local! {
    static CAPTURE: RefCell<Option<Captured>> = const { RefCell::new(None) };
    /// Whether this command printed its JSON document already (see [`error`]).
    static PRINTED_JSON: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with this thread's output captured.
pub(crate) fn capture<T>(f: impl FnOnce() -> T) -> (T, Captured) {
    /// Ends the capture however `f` ends (a panic included): threads of the blocking pool are
    /// reused, and the next job's output must reach its own stream.
    struct End;
    impl Drop for End {
        fn drop(&mut self) {
            CAPTURE.with(|c| *c.borrow_mut() = None);
        }
    }
    CAPTURE.with(|c| *c.borrow_mut() = Some(Captured::default()));
    PRINTED_JSON.with(|p| p.set(false));
    let _end = End;
    let out = f();
    let captured = CAPTURE.with(|c| c.borrow_mut().take()).unwrap_or_default();
    (out, captured)
}

#[derive(Clone, Copy)]
enum Stream {
    Out,
    Err,
}

/// People's text (a note, a name, a message) reaches the terminal as text, never as terminal
/// commands: control characters (an escape sequence that recolours, moves the cursor or sets
/// the window title) and bidirectional overrides (which reorder what is shown) are written as
/// visible escapes. Line breaks and tabs stay.
fn printable(line: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    };
    if !line.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 8);
    for c in line.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Writes one line to the capture if this thread has one, else to the real stream.
fn write(stream: Stream, line: &str) {
    let line = &*printable(line);
    let captured = CAPTURE.with(|c| match c.borrow_mut().as_mut() {
        Some(cap) => {
            let buffer = match stream {
                Stream::Out => &mut cap.stdout,
                Stream::Err => &mut cap.stderr,
            };
            buffer.push_str(line);
            buffer.push('\n');
            true
        }
        None => false,
    });
    // A closed pipe (`omsyn … | head`) is not an error worth a panic: the reader has all it wanted.
    use std::io::Write;
    match (captured, stream) {
        (true, _) => {}
        (false, Stream::Out) => {
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
        (false, Stream::Err) => {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }
}

/// Writes binary output (an export) to stdout, or into the capture if this thread has one.
pub(crate) fn write_binary(bytes: &[u8]) -> std::io::Result<()> {
    use base64::Engine;
    let captured = CAPTURE.with(|c| match c.borrow_mut().as_mut() {
        Some(cap) => {
            cap.binary = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
            true
        }
        None => false,
    });
    if captured {
        return Ok(());
    }
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

fn out(line: &str) {
    write(Stream::Out, line);
}

/// Prints one line on stdout (or into the capture), never panicking on a closed pipe.
pub(crate) fn print_line(line: &str) {
    out(line);
}

/// `println!` for the binary: see [`print_line`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::print_line(&format!($($arg)*))
    };
}

fn err(line: &str) {
    write(Stream::Err, line);
}

/// Prints `value` as JSON, or `text()` for people.
pub(crate) fn emit<T: Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) {
    if json {
        match serde_json::to_string_pretty(value) {
            Ok(s) => {
                out(&s);
                PRINTED_JSON.with(|p| p.set(true));
            }
            Err(e) => err(&format!("error: could not encode output as JSON: {e}")),
        }
    } else {
        let text = text();
        if !text.is_empty() {
            out(text.trim_end());
        }
    }
}

/// A write's answer: with `--json` the value; for people the new id alone on stdout (what a
/// script keeps: `V=$(omsyn visit plan …)`) and, on stderr, what was written in words.
pub(crate) fn emit_written<T: Serialize>(
    json: bool,
    value: &T,
    id: &str,
    said: impl FnOnce() -> String,
) {
    emit(json, value, || id.to_owned());
    if !json {
        err(&said());
    }
}

/// Reports an error: always on stderr, and as `{"error": ...}` on stdout with `--json` so a
/// script reading stdout sees one JSON document either way. A command that fails after printing
/// its result (a repair that left documents, a log chain that does not verify, a sync that did
/// not catch up) has said what failed in that document: a second one would make stdout two.
pub(crate) fn error(json: bool, e: &anyhow::Error) {
    let remedy = remedy_in(e);
    let mut message = describe(e);
    if let Some(remedy) = remedy {
        message = format!("{message} ({})", remedy_hint(remedy));
    }
    err(&format!("error: {message}"));
    if json && !PRINTED_JSON.with(std::cell::Cell::get) {
        let answer = match remedy {
            Some(remedy) => serde_json::json!({ "error": message, "remedy": remedy }),
            None => serde_json::json!({ "error": message }),
        };
        out(&answer.to_string());
    }
}

/// A service refusal of one flag, as the CLI reports it: `--FIELD: reason` names the flag to
/// fix, and the remedy core named, if any, is said as a command ([`error`]).
#[derive(Debug)]
pub(crate) struct FlagRefused {
    pub(crate) flag: String,
    pub(crate) reason: String,
    pub(crate) remedy: Option<omsyn_core::remedy::Remedy>,
}

impl std::fmt::Display for FlagRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "--{}: {}", self.flag, self.reason)
    }
}

impl std::error::Error for FlagRefused {}

/// The step core named for the error, wherever in its chain.
fn remedy_in(e: &anyhow::Error) -> Option<&omsyn_core::remedy::Remedy> {
    use omsyn_core::RepoError;
    use omsyn_core::repo::AccessDenied;
    e.chain().find_map(|cause| {
        if let Some(refused) = cause.downcast_ref::<FlagRefused>() {
            refused.remedy.as_ref()
        } else if let Some(RepoError::AccessDenied(denied)) = cause.downcast_ref::<RepoError>() {
            denied.remedy.as_ref()
        } else {
            let denied = cause.downcast_ref::<AccessDenied>()?;
            denied.remedy.as_ref()
        }
    })
}

/// A remedy as the CLI says it: the command that takes the step.
fn remedy_hint(remedy: &omsyn_core::remedy::Remedy) -> String {
    use omsyn_core::remedy::Remedy;
    match remedy {
        Remedy::AskExplicitAccess { patient } => {
            format!("`omsyn access ask --patient {patient} --reason …`")
        }
        Remedy::ListVisits => "`omsyn visit list` shows the day's visits".into(),
        Remedy::ShowPatient { patient } => {
            format!("`omsyn show --patient {patient}` shows the care team")
        }
        Remedy::AddStaff { staff } => format!(
            "`omsyn staff add --id {staff} --name NAME` adds them; `omsyn staff list` lists those known"
        ),
    }
}

/// An error's chain as one line, each cause once: libraries often wrap an error in one that
/// repeats its text ("timed out: timed out: timed out"), and a cause already said by the
/// context above it adds nothing.
fn describe(e: &anyhow::Error) -> String {
    let mut said: Vec<String> = Vec::new();
    for cause in e.chain().map(|c| c.to_string()) {
        let repeats = |s: &String| *s == cause || s.ends_with(&format!(": {cause}"));
        if !said.iter().any(repeats) {
            said.push(cause);
        }
    }
    said.join(": ")
}

/// A moment (ms since the Unix epoch) as people read it, in the host's time zone.
pub(crate) fn fmt_ms(ms: i64) -> String {
    // In the node's zone, with its offset: a base on a UTC server still shows Norway's time.
    omsyn_node::clock::at_millis(ms).map_or_else(|| ms.to_string(), |t| t.to_string())
}

/// A stored moment as people read it: the same instant in the node's zone (a time keeps the
/// offset its writer had; a listing mixing `+00:00` and `+01:00` reads as two clocks).
pub(crate) fn local(t: &omsyn_core::Timestamp) -> omsyn_core::Timestamp {
    omsyn_node::clock::zone().show(t)
}

/// The clock time of a moment in the node's zone (`OMSYN_TZ`): `14:05`.
pub(crate) fn hhmm(t: &omsyn_core::Timestamp) -> String {
    local(t).hhmm()
}

/// A moment given in milliseconds, as JSON shows every moment: RFC 3339 with the node zone's
/// offset (README, "What `--json` prints").
pub(crate) fn moment(ms: i64) -> Option<omsyn_core::Timestamp> {
    omsyn_node::clock::at_millis(ms)
}

/// A node as JSON names it — its own id, and whom it serves by the name of each kind — with
/// `more` fields beside.
pub(crate) fn node_json(
    id: &omsyn_core::identity::NodeId,
    profile: &omsyn_core::identity::NodeProfile,
    more: serde_json::Value,
) -> serde_json::Value {
    let mut node = serde_json::json!({
        "id": id, "role": profile.role, "name": profile.name, "staff": profile.staff_id,
        "patient": profile.patient, "zone": profile.zone,
    });
    if let (Some(node), serde_json::Value::Object(more)) = (node.as_object_mut(), more) {
        node.extend(more);
    }
    node
}

/// An explicit access as JSON shows it (stored with its end in milliseconds).
pub(crate) fn access_json(
    patient: &omsyn_core::ids::PatientId,
    a: &omsyn_core::docs::access_facts::ExplicitAccess,
) -> serde_json::Value {
    serde_json::json!({
        "id": a.id, "patient": patient, "staff": a.staff, "device": a.device,
        "reason": a.reason, "at": a.at, "until": moment(a.until_ms),
    })
}

/// A block as JSON shows it (stored with its lifting as a pair).
pub(crate) fn block_json(
    patient: &omsyn_core::ids::PatientId,
    b: &omsyn_core::docs::access_facts::Block,
) -> serde_json::Value {
    let lifted = b
        .lifted
        .as_ref()
        .map(|(by, at)| serde_json::json!({ "by": by, "at": at }));
    serde_json::json!({
        "id": b.id, "patient": patient, "staff": b.staff, "by": b.by, "at": b.at, "lifted": lifted,
    })
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[derive(Debug)]
    struct Repeats(&'static str, Option<Box<Repeats>>);

    impl std::fmt::Display for Repeats {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Repeats {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn an_error_chain_says_each_cause_once() {
        let inner = Repeats("timed out", Some(Box::new(Repeats("timed out", None))));
        let e = anyhow::Error::new(inner).context("connecting to 0ec92febd6");
        assert_eq!(describe(&e), "connecting to 0ec92febd6: timed out");
        let distinct = anyhow::anyhow!("disk full").context("writing the store");
        assert_eq!(describe(&distinct), "writing the store: disk full");
    }
}
