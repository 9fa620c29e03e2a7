//! Which peers may hold which patients, until the Trust work replaces it with need-based sharing:
//! `<data>/sharing.json`, either `{"share": "all"}` (the default when the file is missing) or
//! `{"share": "listed", "peers": {"<node id>": ["p-…", …]}}`. Sessions read it when they start,
//! so a change applies to the next session without restarting `omsyn run`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use omsyn_core::NodeId;
use omsyn_core::ids::PatientId;
use omsyn_core::sync::{ShareAll, SharePatients, SharePolicy};
use serde::{Deserialize, Serialize};

const FILE: &str = "sharing.json";

/// The file's contents.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "share", rename_all = "kebab-case")]
pub(crate) enum Sharing {
    /// Every document with every peer.
    #[default]
    All,
    /// Listed patients with listed peers only.
    Listed {
        /// Peer → patients it may hold.
        peers: BTreeMap<NodeId, Vec<PatientId>>,
    },
}

fn path(data: &Path) -> PathBuf {
    data.join(FILE)
}

/// Reads the sharing configuration (missing file: share all).
pub(crate) fn load(data: &Path) -> Result<Sharing> {
    let file = path(data);
    match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is malformed", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Sharing::All),
        Err(e) => Err(e).with_context(|| format!("reading {}", file.display())),
    }
}

/// Writes it atomically (temporary file, then rename).
pub(crate) fn save(data: &Path, sharing: &Sharing) -> Result<()> {
    let file = path(data);
    let tmp = file.with_extension("json.partial");
    std::fs::write(&tmp, serde_json::to_vec_pretty(sharing)?)?;
    std::fs::rename(&tmp, &file).with_context(|| format!("writing {}", file.display()))
}

/// The policy sessions use.
pub(crate) fn policy(data: &Path) -> Result<Arc<dyn SharePolicy>> {
    Ok(match load(data)? {
        Sharing::All => Arc::new(ShareAll),
        Sharing::Listed { peers } => {
            let mut policy = SharePatients::new();
            for (peer, patients) in peers {
                for p in patients {
                    policy.grant(peer, p);
                }
            }
            Arc::new(policy)
        }
    })
}
