//! `omsyn observe`: a measurement (a known kind's value must be one a device could measure).

use anyhow::Result;
use omsyn_core::service::{Observation, When};

use super::{Ctx, Flagged, written};
use crate::cli::ObserveArgs;

pub(crate) fn run(cx: Ctx<'_>, a: ObserveArgs) -> Result<()> {
    let patient = a.patient.clone();
    let entry = cx
        .svc
        .observe(Observation {
            patient: a.patient,
            visit: a.visit,
            kind: a.kind,
            value: a.value,
            unit: a.unit,
            at: When::text(a.at.as_deref()),
        })
        .flagged()?;
    written(cx, Some(&patient), &entry);
    Ok(())
}
