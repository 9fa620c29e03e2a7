//! `omsyn check [--repair]`: verify the store, and rebuild what concurrent writes damaged.

use std::path::Path;

use anyhow::{Result, bail};
use omsyn_core::Repo;
use omsyn_core::store::{Damage, Store, StoreKey, StoreKeys};
use serde_json::json;

use crate::output::emit;

/// Verifies every page checksum of the store in `data`, then decodes every document (a running
/// daemon does this part; see [`check_open`]). With `repair`, rebuilds the damaged documents.
pub(crate) fn check(data: &Path, key_file: Option<&Path>, json: bool, repair: bool) -> Result<()> {
    match verify_pages(data, key_file) {
        Ok(_) => {}
        Err(e) if crate::open::is_locked(&e) => return crate::client::forward(data),
        Err(e) => return Err(e),
    }
    let repo = crate::open::open_repo(data, key_file)?;
    check_open(&repo, json, repair)
}

/// `omsyn check` against an open node (in this process, or inside the daemon for a forwarded
/// command): every document is decoded from disk, not from the daemon's cache.
pub(crate) fn check_open(repo: &Repo, json: bool, repair: bool) -> Result<()> {
    let damage = repo.damaged_documents()?;
    let documents = repo.stats()?.documents;
    if damage.is_empty() {
        emit(json, &json!({ "ok": true, "documents": documents }), || {
            format!("every page checksum and all {documents} documents verified")
        });
        return Ok(());
    }
    if !repair {
        bail!(
            "{} of {documents} documents do not load:\n{}{}",
            damage.len(),
            list(&damage),
            advice(&damage)
        );
    }
    let report = repo.repair(omsyn_node::clock::now())?;
    emit(
        json,
        &json!({ "ok": report.left.is_empty(), "documents": documents, "repair": report }),
        || {
            let mut text = String::new();
            for doc in &report.repaired {
                text.push_str(&format!(
                "repaired {}: {} of this node's changes made again, every entry kept (logged in the access log)\n",
                doc.doc,
                doc.remade.len()
            ));
            }
            text.trim_end().to_owned()
        },
    );
    if !report.left.is_empty() {
        bail!("not repaired:\n{}", report.left.join("\n"));
    }
    Ok(())
}

/// At `omsyn run`'s start: verifies every page, and repairs (logging it) what a repair can
/// rebuild without losing a change; refuses to start on anything else.
pub(crate) fn at_start(data: &Path, key_file: Option<&Path>) -> Result<()> {
    if !Repo::store_path(data).exists() {
        return Ok(());
    }
    match verify_pages(data, key_file) {
        // Another `omsyn run` holds it: the forwarded command says so.
        Err(e) if crate::open::is_locked(&e) => return Ok(()),
        Err(e) => return Err(e),
        // Compaction only gives space back: a node that cannot do it now still starts.
        Ok(store) => {
            if let Err(e) = compact(data, store) {
                tracing::warn!(error = %e, "the store file was not compacted");
            }
        }
    }
    let repo = crate::open::open_repo(data, key_file)?;
    let damage = repo.damaged_documents()?;
    if damage.is_empty() {
        return Ok(());
    }
    if damage.iter().all(Damage::repairable) {
        let report = repo.repair(omsyn_node::clock::now())?;
        for doc in &report.repaired {
            tracing::warn!(
                doc = %doc.doc,
                remade = doc.remade.len(),
                "repaired a document damaged by concurrent writes; every entry kept"
            );
        }
        return Ok(());
    }
    bail!("{}{}", list(&damage), advice(&damage))
}

fn list(damage: &[Damage]) -> String {
    damage.iter().map(|d| format!("  {d}\n")).collect()
}

fn advice(damage: &[Damage]) -> &'static str {
    if damage.iter().any(Damage::repairable) {
        "run `omsyn check --repair` to rebuild them (every entry is kept; the repair is logged)"
    } else {
        "these cannot be rebuilt here; restore them from a peer that holds them"
    }
}

/// Gives the file back the space its free pages hold, when that is worth a start-up's time (see
/// [`Store::compact_if_worthwhile`]); logs what it did.
pub(crate) fn compact(data: &Path, mut store: Store) -> Result<()> {
    let path = Repo::store_path(data);
    let before = std::fs::metadata(&path)?.len();
    // Below 16 MiB free, a start-up's time is worth more than the disk.
    if store.compact_if_worthwhile(before, 16 << 20)? {
        drop(store);
        let after = std::fs::metadata(&path)?.len();
        tracing::info!(before, after, "compacted the store file");
    }
    Ok(())
}

/// Verifies every page checksum (reads the whole file); returns the store, opened alone.
pub(crate) fn verify_pages(data: &Path, key_file: Option<&Path>) -> Result<Store> {
    let identity = omsyn_core::Identity::load(data)?;
    let epoch = rand::Rng::random(&mut omsyn_node::clock::rng());
    let data_key = match crate::open::host_key(key_file)? {
        Some(key) => key,
        None => StoreKey::load_file(&StoreKey::path(data))?,
    };
    let keys = StoreKeys {
        signer: identity.key,
        data: data_key,
    };
    Ok(Store::verify_pages(&Repo::store_path(data), &keys, epoch)?)
}
