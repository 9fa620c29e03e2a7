//! `omsyn tasks`: the escalation tasks this node derives (see `omsyn_core::escalation`), claiming
//! and completing them, and the node's escalation waits.

use anyhow::Result;
use omsyn_core::escalation::{Priority, Task};
use omsyn_core::service::TaskScope;
use serde_json::json;

use super::{Ctx, Flagged};
use crate::cli::{TaskAction, TasksArgs};
use crate::output::emit;

pub(crate) fn run(cx: Ctx<'_>, args: TasksArgs) -> Result<()> {
    let (svc, json) = (cx.svc, cx.json);
    match args.action {
        Some(TaskAction::Claim { task }) => {
            let (entry, task) = svc.claim_task(&task).flagged()?;
            let me = svc.repo().profile().staff_id.clone();
            let others: Vec<String> = me
                .map(|me| task.also_claimed_by(&me).iter().map(|c| c.who()).collect())
                .unwrap_or_default();
            let id = &task.id;
            emit(
                json,
                &json!({"id": id, "entry": entry.id, "also_claimed_by": others}),
                || {
                    let mut text = format!("claimed {id}: {}", task.summary);
                    if !others.is_empty() {
                        text += &format!("\nALSO CLAIMED BY {}", others.join(", "));
                    }
                    text
                },
            );
            Ok(())
        }
        Some(TaskAction::Done { task, note }) => {
            let entry = svc.complete_task(&task, &note).flagged()?;
            let id = task.trim();
            emit(json, &json!({"id": id, "entry": entry.id}), || {
                format!("completed {id}")
            });
            Ok(())
        }
        Some(TaskAction::Policy {
            alarm_ack,
            alert_ack,
            call_retry,
            call_attempts,
        }) => policy(cx, [alarm_ack, alert_ack, call_retry, call_attempts]),
        None => list(cx, args.all, args.patient.as_deref()),
    }
}

/// `omsyn tasks policy`: the node's escalation waits, changed where given.
fn policy(
    cx: Ctx<'_>,
    [alarm_ack, alert_ack, call_retry, call_attempts]: [Option<u32>; 4],
) -> Result<()> {
    let repo = cx.svc.repo();
    let policy = if [alarm_ack, alert_ack, call_retry, call_attempts]
        .iter()
        .any(Option::is_some)
    {
        repo.update_escalation_policy(|p| {
            let set = |value: Option<u32>, field: &mut u32| *field = value.unwrap_or(*field);
            set(alarm_ack, &mut p.alarm_ack_minutes);
            set(alert_ack, &mut p.alert_ack_minutes);
            set(call_retry, &mut p.call_retry_minutes);
            set(call_attempts, &mut p.call_attempts);
        })?
    } else {
        repo.escalation_policy()?
    };
    emit(cx.json, &policy, || {
        format!(
            "alarm unclaimed → base after {} min\nother alert unclaimed → base after {} min\n\
             unanswered video call → call again after {} min\n\
             {} unanswered calls → physical visit for the zone",
            policy.alarm_ack_minutes,
            policy.alert_ack_minutes,
            policy.call_retry_minutes,
            policy.call_attempts
        )
    });
    Ok(())
}

fn list(cx: Ctx<'_>, all: bool, patient: Option<&str>) -> Result<()> {
    let scope = if all { TaskScope::All } else { TaskScope::Mine };
    let tasks: Vec<Task> = cx.svc.tasks(scope, patient).flagged()?;
    let me = cx.svc.repo().profile().staff_id.clone();
    emit(cx.json, &json!({ "tasks": tasks }), || {
        if tasks.is_empty() && all {
            return "no tasks".into();
        }
        if tasks.is_empty() {
            // A home unit owns none (its alarms go to the nurses and the base): say where to look.
            return "no tasks for this node to take (`omsyn tasks --all` lists every open task it holds)"
                .into();
        }
        let mut text: String = tasks
            .iter()
            .map(|t| describe(t, me.as_ref(), cx.ids))
            .collect();
        if !cx.ids {
            text.push_str(
                "(`omsyn tasks --ids` shows each task's id for `omsyn tasks claim|done`)\n",
            );
        }
        text
    });
    Ok(())
}

/// A task as people read it: priority, the patient by name, whose it is, what to do; `ids`
/// adds the task's id (for `tasks claim`/`done`) and the patient's.
fn describe(task: &Task, me: Option<&omsyn_core::ids::StaffId>, ids: bool) -> String {
    let patient = task
        .patient_name
        .as_deref()
        .unwrap_or(task.patient.as_str());
    let priority = match task.priority {
        Priority::Urgent => "URGENT",
        Priority::High => "HIGH",
        Priority::Normal => "normal",
    };
    let mut line = format!(
        "{priority:<6} {patient} for {}: {}",
        task.owner_label(),
        task.summary
    );
    if ids {
        line += &format!("  [{} {}]", task.id, task.patient);
    }
    if task.escalated {
        line += "\n    ESCALATED: it reached the base";
    } else if let Some(at) = task
        .escalates_at
        .filter(|_| task.is_open() && task.claims.is_empty())
    {
        line += &format!(
            "\n    reaches the base at {} if nobody claims it",
            crate::output::hhmm(&at)
        );
    }
    if let Some(due) = task.due.filter(|_| task.is_open()) {
        line += &format!("\n    due at {}", crate::output::hhmm(&due));
    }
    for claim in &task.claims {
        line += &format!(
            "\n    claimed by {} at {}",
            claim.who(),
            crate::output::hhmm(&claim.at)
        );
    }
    if let Some(done) = &task.done {
        line += &format!(
            "\n    done by {} at {}",
            done.who(),
            crate::output::hhmm(&done.at)
        );
    }
    if let Some(me) = me {
        let others = task.also_claimed_by(me);
        if !others.is_empty() {
            let names: Vec<String> = others.iter().map(|c| c.who()).collect();
            line += &format!(
                "\n    ALSO CLAIMED BY {}: you are not alone",
                names.join(", ")
            );
        }
    }
    line + "\n"
}
