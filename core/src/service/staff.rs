//! Who works here: the staff directory from enrolment certificates, and who usually visits a
//! patient (for keeping continuity when a coordinator reassigns).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::docs::journal::{self, EntryBody};
use crate::docs::{DocumentId, access_facts as access};
use crate::ids::{PatientId, StaffId};
use crate::remedy::Remedy;
use crate::repo::ListedStaff;
use crate::{Day, RepoError, Role};

use super::{Service, ServiceError};

/// A staff member with an enrolled device that is not revoked, or named by a work list imported
/// here (as a nurse, with the list's role as competence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffMember {
    /// The staff id (HPR or employee number).
    pub id: StaffId,
    /// The name the certificate gives.
    pub name: String,
    /// Nurse or base.
    pub role: Role,
    /// The zone the certificate names.
    pub zone: Option<String>,
    /// Competence (e.g. `sykepleier`), if the certificate states it.
    pub competence: Option<String>,
}

/// What registering a staff member did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// She was not in the directory.
    New,
    /// She was, as given: nothing changed.
    Unchanged,
    /// She was, as this (another name, competence or zone); now as given.
    Changed(StaffMember),
}

/// Who knows a patient: her care team, and who performed her visits lately.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsualStaff {
    /// The active care team's staff ids.
    pub care_team: Vec<StaffId>,
    /// Who performed her visits in the last 28 days, most visits first: (id, name, visits).
    pub recent: Vec<(StaffId, String, usize)>,
}

/// How far back "usually visits" looks.
const USUAL_STAFF_DAYS: i64 = 28;

impl Service {
    /// The care team, blocks and explicit accesses the patient's record holds.
    fn access_facts(&self, patient: &PatientId) -> Result<access::AccessFacts, ServiceError> {
        Ok(self
            .repo
            .store()
            .with_doc(&DocumentId::PatientRecord(patient.clone()), access::read)
            .map_err(RepoError::from)?
            .unwrap_or_default())
    }

    /// Adds `staff` to the patient's care team (`join`) or removes her. Refused when she is
    /// already on it or not on it (without listing the team: that is a read of the record,
    /// which `show` makes through the gate).
    pub fn set_team_member(
        &self,
        patient: &str,
        staff: &str,
        join: bool,
    ) -> Result<(PatientId, StaffId), ServiceError> {
        let patient = self.patient(patient)?;
        // One joining must be someone this node knows (a typo would give the record a member
        // nobody is); one leaving may have left the directory since.
        let staff = if join {
            let mut known = self.known_staff("staff", &[staff.to_owned()])?;
            known.remove(0)
        } else {
            self.staff_member("staff", staff)?
        };
        self.act(|repo, now, _| {
            repo.transaction(|tx| {
                // Checked under the write's lock: two coordinators adding her at once are one
                // addition and one refusal, not two additions the second of which names itself.
                let team: Vec<StaffId> = (self.access_facts(&patient)?.team.into_iter())
                    .filter(|m| m.active)
                    .map(|m| m.staff)
                    .collect();
                match (join, team.contains(&staff)) {
                    (true, true) => Err(ServiceError::invalid(
                        "add",
                        format!("{staff} is already on the care team"),
                    )),
                    (false, false) => Err(ServiceError::invalid(
                        "remove",
                        format!("{staff} is not on the care team"),
                    )
                    .with_remedy(Remedy::ShowPatient {
                        patient: patient.clone(),
                    })),
                    _ => Ok(tx.set_team_member(now, &patient, &staff, join)?),
                }
            })
        })?;
        Ok((patient, staff))
    }

    /// Registers a staff member as a work list would name her — for staff whose devices are not
    /// enrolled yet, so visits can be planned for them and reports name them. A certificate's
    /// name wins once her device is enrolled. Kept in the base's staff file, not synced.
    pub fn add_staff(
        &self,
        id: &str,
        name: &str,
        role: Option<&str>,
        zone: Option<&str>,
    ) -> Result<(StaffMember, Registered), ServiceError> {
        let id = self.staff_member("id", id)?;
        super::required("name", name, "the staff member's name")?;
        // The planner reads a competence ("sykepleier" makes an authorised nurse); a device's
        // role typed here would make her one who is not, silently.
        if let Some(role) = role.map(|r| r.trim().to_lowercase())
            && [Role::Base, Role::Nurse, Role::HomeUnit]
                .iter()
                .any(|device| device.as_str() == role.replace(' ', "-"))
        {
            return Err(ServiceError::invalid(
                "role",
                format!(
                    "{role} is a device's role, not a competence: give their competence \
                     (sykepleier or vernepleier for an authorised nurse, helsefagarbeider, \
                     assistent…)"
                ),
            ));
        }
        if let Some(enrolled) = self.enrolled_staff()?.remove(&id) {
            return Err(ServiceError::invalid(
                "id",
                format!(
                    "{} is enrolled as {}: their phone's certificate names them, and visits \
                     may be planned for them already",
                    enrolled.id, enrolled.name
                ),
            ));
        }
        let before = (self.repo.listed_staff().remove(id.as_str()))
            .map(|listed| listed_member(id.clone(), listed));
        let listed = ListedStaff {
            name: name.trim().to_owned(),
            role: role.map(str::trim).unwrap_or_default().to_owned(),
            zone: zone
                .map(str::trim)
                .filter(|z| !z.is_empty())
                .map(str::to_owned),
        };
        self.repo
            .remember_listed_staff(BTreeMap::from([(id.to_string(), listed.clone())]))
            .map_err(|e| {
                RepoError::from(crate::store::StoreError::Io(format!(
                    "writing the staff file: {e}"
                )))
            })?;
        let member = listed_member(id, listed);
        let registered = match before {
            None => Registered::New,
            Some(before) if before == member => Registered::Unchanged,
            Some(before) => Registered::Changed(before),
        };
        Ok((member, registered))
    }

    /// Staff ids as typed, each one a staff member this node knows (its staff directory): a plan
    /// names people who exist. A refusal names who would be accepted.
    pub fn known_staff(
        &self,
        field: &'static str,
        values: &[String],
    ) -> Result<Vec<StaffId>, ServiceError> {
        let ids = values
            .iter()
            .map(|v| self.staff_member(field, v))
            .collect::<Result<Vec<_>, _>>()?;
        if ids.is_empty() {
            return Ok(ids);
        }
        let known = self.staff_directory(None)?;
        let Some(unknown) = ids.iter().find(|id| !known.iter().any(|m| &m.id == *id)) else {
            return Ok(ids);
        };
        const SHOWN: usize = 8;
        let mut some: Vec<String> = (known.iter().take(SHOWN))
            .map(|m| format!("{} ({})", m.id, m.name))
            .collect();
        if known.len() > SHOWN {
            some.push(format!("and {} more", known.len() - SHOWN));
        }
        let listed = if some.is_empty() {
            "none yet".to_owned()
        } else {
            some.join(", ")
        };
        Err(ServiceError::invalid(
            field,
            format!(
                "{unknown} is no staff member this node knows (an enrolled device, an imported \
                 work list, or one added to the base's staff directory); known: {listed}"
            ),
        )
        .with_remedy(Remedy::AddStaff {
            staff: unknown.clone(),
        }))
    }

    /// Names for staff ids, as far as this node knows them: its certificates' (every author of
    /// what it holds sent one) and its work lists' (not patient data: no gate).
    pub fn staff_names(&self) -> Result<BTreeMap<String, String>, ServiceError> {
        Ok(self.repo.staff_names()?)
    }

    /// The staff directory (of one zone, or all), by staff id.
    pub fn staff_directory(&self, zone: Option<&str>) -> Result<Vec<StaffMember>, ServiceError> {
        let mut staff = self.enrolled_staff()?;
        // Staff the work lists name whose devices are not enrolled: named all the same.
        for (id, listed) in self.repo.listed_staff() {
            let Ok(id) = StaffId::parse(&id) else {
                continue;
            };
            staff
                .entry(id.clone())
                .or_insert_with(|| listed_member(id, listed));
        }
        Ok((staff.into_values())
            .filter(|m| zone.is_none() || m.zone.as_deref() == zone)
            .collect())
    }

    /// Staff with an enrolled device (a nurse's or a base's) that is not revoked, as their
    /// certificates name them.
    fn enrolled_staff(&self) -> Result<BTreeMap<StaffId, StaffMember>, ServiceError> {
        let store = self.repo.store();
        let mut staff = BTreeMap::new();
        for cert in store.certificates().map_err(RepoError::from)? {
            let grant = cert.grant();
            let Some(id) = &grant.staff_id else { continue };
            let revoked = (store.revocation(&grant.node).map_err(RepoError::from)?).is_some();
            if revoked || grant.role == Role::HomeUnit {
                continue;
            }
            staff.insert(
                id.clone(),
                StaffMember {
                    id: id.clone(),
                    name: grant.name.clone(),
                    role: grant.role,
                    zone: grant.zone.clone(),
                    competence: grant.competence.clone(),
                },
            );
        }
        Ok(staff)
    }

    /// A patient's care team and who performed her visits in the last 28 days: a logged read.
    pub fn usual_staff(&self, patient: &str, what: &str) -> Result<UsualStaff, ServiceError> {
        let patient = self.patient(patient)?;
        self.open(&patient, what)?;
        let now = self.now();
        let store = self.repo.store();
        let facts = self.access_facts(&patient)?;
        let since = now.unix_millis() - USUAL_STAFF_DAYS * 24 * 3600 * 1000;
        // The window spans this month and at most the one before.
        let this_month = now.day().month();
        let mut months = vec![this_month];
        if let Some(first) = Day::from_unix_millis(since).map(|d| d.month())
            && first != this_month
        {
            months.insert(0, first);
        }
        let mut recent: BTreeMap<StaffId, (String, usize)> = BTreeMap::new();
        for month in months {
            let doc = DocumentId::Journal(patient.clone(), month);
            let Some(j) = store
                .with_doc(&doc, journal::read)
                .map_err(RepoError::from)?
            else {
                continue;
            };
            for e in j
                .standing()
                .into_iter()
                .filter(|e| e.event_time.unix_millis() >= since)
            {
                if let (EntryBody::VisitPerformed { .. }, Some(staff)) = (&e.body, &e.author.staff)
                {
                    recent
                        .entry(staff.clone())
                        .or_insert_with(|| (e.author.name.clone(), 0))
                        .1 += 1;
                }
            }
        }
        let mut recent: Vec<_> = recent
            .into_iter()
            .map(|(id, (name, visits))| (id, name, visits))
            .collect();
        recent.sort_by_key(|(_, _, visits)| std::cmp::Reverse(*visits));
        let care_team = facts
            .team
            .iter()
            .filter(|m| m.active)
            .map(|m| m.staff.clone())
            .collect();
        Ok(UsualStaff { care_team, recent })
    }
}

/// A staff member as a work list (or `staff add`) names them.
fn listed_member(id: StaffId, listed: ListedStaff) -> StaffMember {
    StaffMember {
        id,
        name: listed.name,
        role: Role::Nurse,
        zone: listed.zone,
        competence: (!listed.role.is_empty()).then_some(listed.role),
    }
}
