//! `omsyn org`, `omsyn enroll`, `omsyn revoke`: the organisation key, enrolling devices and
//! revoking them.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use omsyn_core::service::Service;
use omsyn_core::trust::{Certificate, EnrollmentRequest, OrgKey, Revocation};
use omsyn_core::{NodeId, Repo, Role};
use serde_json::json;

use crate::cli::{EnrollCmd, OrgCmd};
use crate::client::read_input;
use crate::output::fmt_ms;
use crate::output::{emit, moment};

const HOUR_MS: i64 = 3600 * 1000;

/// A credential given on the command line as text, or as the path of a file (or `-`) holding it.
fn text_or_file(value: &str, prefix: &str) -> Result<String> {
    if value.trim().starts_with(prefix) {
        return Ok(value.trim().to_owned());
    }
    let bytes = read_input(Path::new(value))?;
    String::from_utf8(bytes)
        .map(|s| s.trim().to_owned())
        .map_err(|_| anyhow!("{value} is not text"))
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    std::fs::write(crate::client::user_path(path), format!("{text}\n"))
        .with_context(|| format!("writing {}", path.display()))
}

fn org_key(repo: &Repo) -> Result<OrgKey> {
    OrgKey::load(repo.data_dir())?.ok_or_else(|| {
        anyhow!(
            "this node does not hold the organisation key ({}): approve and revoke at the admin base; \
             if this is the admin base, create the organisation first: `omsyn org create --name NAME`",
            OrgKey::path(repo.data_dir()).display()
        )
    })
}

/// `omsyn org create|show`.
pub(crate) fn org(svc: &Service, json: bool, cmd: OrgCmd) -> Result<()> {
    match cmd {
        OrgCmd::Create {
            name,
            valid_hours,
            explicit_access_hours,
        } => create(svc, json, &name, valid_hours, explicit_access_hours),
        OrgCmd::Show => show(svc, json),
    }
}

/// `omsyn org create`: the organisation key, made on the admin base, which enrols itself.
fn create(
    svc: &Service,
    json: bool,
    name: &str,
    valid_hours: u32,
    explicit_access_hours: Option<u32>,
) -> Result<()> {
    let repo = svc.repo();
    if repo.profile().role != Role::Base {
        bail!(
            "the organisation key belongs on a base, not a {}",
            repo.profile().role
        );
    }
    // Checked before the key is made: a key without the base's own certificate would be
    // half an organisation.
    if repo
        .profile()
        .zone
        .as_deref()
        .is_none_or(|z| z.trim().is_empty())
    {
        bail!(
            "this base has no zone, and a base's certificate names the zone it serves: \
                     make the admin base with one (`omsyn init --role base --name NAME --zone \"Sone 1\"` \
                     in a new data directory)"
        );
    }
    if let Some(cert) = repo.certificate()? {
        bail!(
            "this node is already enrolled in {} ({})",
            cert.grant().org_name,
            cert.grant().org
        );
    }
    let policy = omsyn_core::trust::OrgPolicy {
        explicit_access_max_ms: explicit_access_hours.map(|h| i64::from(h) * HOUR_MS),
    };
    let org = OrgKey::create(repo.data_dir(), name, policy, &mut *svc.rng())?;
    let cert = org.approve(
        &repo.enrollment_request(),
        svc.now().unix_millis(),
        i64::from(valid_hours) * HOUR_MS,
    )?;
    repo.install_certificate(&cert)?;
    emit(json, &json!({ "id": org.id(), "name": org.name() }), || {
        format!(
            "created organisation \"{}\"\norg id: {}\nkey:    {} (owner-only; back it up offline)\nthis base is enrolled; enrol devices with `omsyn enroll approve`",
            org.name(),
            org.id(),
            OrgKey::path(repo.data_dir()).display()
        )
    });
    Ok(())
}

/// `omsyn org show`: the organisation, its members and its revocations.
fn show(svc: &Service, json: bool) -> Result<()> {
    let repo = svc.repo();
    let own = repo.certificate()?;
    let members = repo.known_certificates()?;
    let revoked = repo.revocations()?;
    let member_rows: Vec<_> = members
                .iter()
                .map(|c| {
                    let g = c.grant();
                    json!({ "id": g.node, "role": g.role, "name": g.name, "staff": g.staff_id,
                            "patient": g.patient, "zone": g.zone, "valid_until": moment(g.not_after_ms) })
                })
                .collect();
    let revoked_rows: Vec<_> = revoked
                .iter()
                .map(|r| json!({ "device": r.body().node, "reason": r.body().reason, "at": moment(r.body().at_ms) }))
                .collect();
    let value = json!({
        "id": own.as_ref().map(|c| c.grant().org),
        "name": own.as_ref().map(|c| c.grant().org_name.clone()),
        "valid_until": own.as_ref().and_then(|c| moment(c.grant().not_after_ms)),
        "members": member_rows,
        "revoked": revoked_rows,
    });
    emit(json, &value, || {
        let Some(own) = &own else {
            return "this node is not enrolled: run `omsyn enroll request` and take the request to a base".into();
        };
        let g = own.grant();
        let mut s = format!(
            "organisation \"{}\" ({})\nthis node's certificate is valid until {}\nknown members:\n",
            g.org_name,
            g.org.short(),
            fmt_ms(g.not_after_ms)
        );
        for c in &members {
            let g = c.grant();
            let _ = writeln!(
                s,
                "  {}  {:<9} {}{}",
                g.node.short(),
                g.role.as_str(),
                g.name,
                g.zone
                    .as_ref()
                    .map(|z| format!(" ({z})"))
                    .unwrap_or_default()
            );
        }
        for r in &revoked {
            let _ = writeln!(
                s,
                "  {}  REVOKED: {}",
                r.body().node.short(),
                r.body().reason
            );
        }
        s
    });
    Ok(())
}

/// `omsyn enroll request|approve|install`.
pub(crate) fn enroll(svc: &Service, json: bool, cmd: EnrollCmd) -> Result<()> {
    let repo = svc.repo();
    match cmd {
        EnrollCmd::Request { out } => {
            let text = repo.enrollment_request().to_text();
            if let Some(path) = &out {
                write_text(path, &text)?;
            }
            emit(
                json,
                &json!({ "request": text, "device": repo.id() }),
                || {
                    format!(
                        "{text}\n(take this request to a base: `omsyn enroll approve REQUEST`; then run `omsyn enroll install CERTIFICATE` here)"
                    )
                },
            );
            Ok(())
        }
        EnrollCmd::Approve {
            request,
            valid_hours,
            competence,
            out,
        } => approve(
            svc,
            json,
            &request,
            valid_hours,
            competence.as_deref(),
            out.as_deref(),
        ),
        EnrollCmd::Install { certificate } => {
            let cert = Certificate::from_text(&text_or_file(&certificate, "omsyn-cert1:")?)
                .context("the certificate")?;
            repo.install_certificate(&cert)?;
            let g = cert.grant();
            emit(
                json,
                &json!({ "org": g.org, "valid_until": moment(g.not_after_ms) }),
                || {
                    format!(
                        "enrolled in \"{}\" as {} until {} (renewed whenever this node syncs with a base)",
                        g.org_name,
                        g.role,
                        fmt_ms(g.not_after_ms)
                    )
                },
            );
            Ok(())
        }
    }
}

/// `omsyn enroll approve`: a certificate for the request's device, signed with the organisation
/// key (this base keeps it too, so the device's staff member is known here before it syncs).
fn approve(
    svc: &Service,
    json: bool,
    request: &str,
    valid_hours: u32,
    competence: Option<&str>,
    out: Option<&std::path::Path>,
) -> Result<()> {
    let repo = svc.repo();
    let org = org_key(repo)?;
    let request = EnrollmentRequest::from_text(&text_or_file(request, "omsyn-enroll1:")?)
        .context("the enrolment request")?;
    let begins = repo.enrolment_begins(&request, svc.now().unix_millis())?;
    let cert = org.approve_with_competence(
        &request,
        begins,
        i64::from(valid_hours) * HOUR_MS,
        competence,
    )?;
    repo.remember_issued(&cert)?;
    let text = cert.to_text();
    if let Some(path) = out {
        write_text(path, &text)?;
    }
    let p = request.profile();
    emit(
        json,
        &json!({ "certificate": text, "device": request.node() }),
        || {
            format!(
                "{text}\n(enrols {} \"{}\"{} as {} from {} until {}: install it on the device with `omsyn enroll install`)",
                request.node().short(),
                p.name,
                p.staff_id
                    .as_ref()
                    .map(|s| format!(", staff {s}"))
                    .unwrap_or_default(),
                p.role,
                fmt_ms(cert.grant().not_before_ms),
                fmt_ms(cert.grant().not_after_ms)
            )
        },
    );
    Ok(())
}

/// The node `target` names: a whole node id, or the short id (its first hex digits) that
/// `org show`, `status` and `sync` print when exactly one certificate held here starts with it.
/// `None` when `target` is not hex (a revocation's text or file).
fn enrolled_node(repo: &Repo, target: &str) -> Result<Option<NodeId>> {
    let target = target.trim();
    if let Ok(node) = NodeId::parse(target) {
        return Ok(Some(node));
    }
    let short_hex =
        (10..64).contains(&target.len()) && target.bytes().all(|b| b.is_ascii_hexdigit());
    if !short_hex {
        return Ok(None);
    }
    // The devices this base knows: by their certificates, and the peers it has met.
    let known: std::collections::BTreeSet<NodeId> = repo
        .known_certificates()?
        .into_iter()
        .map(|c| c.grant().node)
        .chain(repo.peers()?.into_iter().map(|(n, _)| n))
        .collect();
    let matches: Vec<NodeId> = known
        .into_iter()
        .filter(|n| n.to_string().starts_with(&target.to_ascii_lowercase()))
        .collect();
    match matches.as_slice() {
        [one] => Ok(Some(*one)),
        [] => bail!(
            "no device enrolled here has an id starting with {target} (`omsyn org show` lists them)"
        ),
        many => bail!(
            "{} devices have ids starting with {target}: give more digits ({})",
            many.len(),
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The longest reason a revocation may give.
const MAX_REASON_CHARS: usize = 500;

/// `omsyn revoke NODE --reason R` or `omsyn revoke REVOCATION`.
pub(crate) fn revoke(
    svc: &Service,
    json: bool,
    target: &str,
    reason: Option<&str>,
    out: Option<&Path>,
) -> Result<()> {
    let repo = svc.repo();
    let revocation = match enrolled_node(repo, target)? {
        Some(node) => {
            let reason = reason
                .filter(|r| !r.trim().is_empty())
                .ok_or_else(|| anyhow!("--reason is required: say why the device is revoked"))?;
            // It travels with every export file and session: a line, not a document.
            if reason.chars().count() > MAX_REASON_CHARS {
                bail!("--reason: at most {MAX_REASON_CHARS} characters (a line saying why)");
            }
            if node == repo.id() {
                bail!("a base cannot revoke itself");
            }
            org_key(repo)?.revoke(node, reason, svc.now().unix_millis())
        }
        None if !target.trim().starts_with("omsyn-revoke1:")
            && target != "-"
            && !crate::client::user_path(Path::new(target)).exists() =>
        {
            bail!(
                "{target} is neither a device's id (64 hex digits, or at least the first 10 that \
                 `omsyn org show` prints), a revocation (`omsyn-revoke1:...`), nor a file holding one"
            )
        }
        None => Revocation::from_text(&text_or_file(target, "omsyn-revoke1:")?).context(
            "expected a node id (64 hex digits, or the short id `omsyn org show` prints) or a revocation",
        )?,
    };
    let new = repo.add_revocation(&revocation)?;
    let text = revocation.to_text();
    if let Some(path) = out {
        write_text(path, &text)?;
    }
    let b = revocation.body();
    emit(
        json,
        &json!({ "device": b.node, "reason": b.reason, "new": new, "revocation": text }),
        || {
            // The device as its certificate names it, where this node holds one.
            let device = match repo.store().certificate(&b.node) {
                Ok(Some(cert)) => format!("{} ({})", cert.grant().name, b.node.short()),
                _ => b.node.to_string(),
            };
            format!(
                "{}revoked {device}: {}\n{text}\n(it spreads to every node this one syncs with, ahead of any data; carry the text to nodes that are offline)",
                if new { "" } else { "already " },
                b.reason
            )
        },
    );
    Ok(())
}
