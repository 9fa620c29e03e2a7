//! Printing results: human-readable text by default, one JSON document with `--json`.

use serde::Serialize;

/// Prints `value` as JSON, or `text()` for people.
pub(crate) fn emit<T: Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) {
    if json {
        match serde_json::to_string_pretty(value) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: could not encode output as JSON: {e}"),
        }
    } else {
        let text = text();
        if !text.is_empty() {
            println!("{}", text.trim_end());
        }
    }
}

/// Reports an error: always on stderr, and as `{"error": ...}` on stdout with `--json` so a
/// script reading stdout sees one JSON document either way.
pub(crate) fn error(json: bool, err: &anyhow::Error) {
    let chain: Vec<String> = err.chain().map(|e| e.to_string()).collect();
    eprintln!("error: {}", chain.join(": "));
    if json {
        println!("{}", serde_json::json!({ "error": chain.join(": ") }));
    }
}
