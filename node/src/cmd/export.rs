//! `omsyn export [FILE | --fhir DIR] [--patient P]`: patient data leaving the node, through
//! the need gate, every patient exported logged.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::{Ctx, Flagged};
use crate::client::user_path;
use crate::output::emit;

pub(crate) fn file(cx: Ctx<'_>, file: Option<PathBuf>, patient: Option<&str>) -> Result<()> {
    let json = cx.json;
    // The need gate decides which patients leave, and logs the export naming each.
    let bytes = cx.svc.export(patient).flagged()?;
    match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => {
            // Patient data: readable by the owner only. Written beside the target and renamed,
            // so a failure never leaves a half-written file under the real name.
            write_private_atomically(&path, &bytes)?;
            emit(json, &json!({ "file": path, "bytes": bytes.len() }), || {
                format!("wrote {} bytes to {}", bytes.len(), path.display())
            });
        }
        None => {
            if json {
                bail!("--json prints a summary on stdout; give a FILE for the export itself");
            }
            if crate::client::stdout_is_terminal() {
                bail!(
                    "refusing to write a binary export to a terminal; give a FILE or redirect stdout"
                );
            }
            crate::output::write_binary(&bytes).context("writing to stdout")?;
        }
    }
    Ok(())
}

/// `omsyn export --fhir DIR`: one FHIR R4 Bundle per patient held (or the one named), each
/// export logged in the access log.
pub(crate) fn fhir(cx: Ctx<'_>, dir: &Path, patient: Option<&str>) -> Result<()> {
    let json = cx.json;
    let dir = &user_path(dir);
    // A base's act, through the need gate; every patient exported is logged.
    let patients = cx.svc.export_fhir(patient).flagged()?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut totals = std::collections::BTreeMap::<String, usize>::new();
    for (patient, export) in &patients {
        let path = dir.join(format!("{patient}.json"));
        write_private_atomically(&path, &serde_json::to_vec_pretty(&export.bundle)?)?;
        for (kind, n) in &export.counts {
            *totals.entry(kind.clone()).or_default() += n;
        }
    }
    emit(
        json,
        &json!({ "dir": dir, "bundles": patients.len(), "resources": totals }),
        || {
            let list: Vec<String> = totals.iter().map(|(k, n)| format!("{n} {k}")).collect();
            format!(
                "wrote {} FHIR R4 bundle(s) to {}: {}",
                patients.len(),
                dir.display(),
                list.join(", ")
            )
        },
    );
    Ok(())
}

/// Patient data: readable by the owner only, written beside the target and renamed, so a
/// failure never leaves a half-written file under the real name.
fn write_private_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let path = &user_path(path);
    let tmp = path.with_extension("partial");
    write_private(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("writing {}", path.display()))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
