//! `omsyn bench` (filled in below).
use anyhow::Result;

pub(crate) fn run(_json: bool, _args: &crate::cli::BenchArgs) -> Result<()> {
    anyhow::bail!("not yet")
}
