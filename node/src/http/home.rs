//! The home unit's local API, for the tablet app and the welfare technology in the home:
//! today's visits (when, in the home or by video, who is coming), messages to and from the care
//! team with their pictures, and device reports (dispenser, alarm button, measurement devices). A malformed report
//! gets a 4xx with the reason and nothing is stored; a report delivered twice is stored once.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use omsyn_core::docs::messages::{Message, Recipient};
use omsyn_core::docs::plan::VisitKind;
use omsyn_core::repo::{DeviceReport, DoseEventKind};
use omsyn_core::service::{self, Service, When};
use serde::Deserialize;
use serde_json::json;

use super::Http;
use super::api::{ApiError, answer, bad_request, blocking, error, json_body, service_error};

/// `GET /api/home/today`: today's visits for this home's patient, with who is coming.
pub(crate) async fn today(State(http): State<Http>) -> Response {
    answer(
        blocking(&http, |svc| {
            let patient = svc.home_patient()?;
            let day = svc.today();
            let report = svc.report_as("home: today's visits", day, None)?;
            // What the report knows (a certificate's or a work list's name), then the staff
            // directory's names over it (every zone's: staff visit across zones).
            let mut names = report.staff_names.clone();
            names.extend(
                (svc.staff_directory(None)?.into_iter()).map(|m| (m.id.to_string(), m.name)),
            );
            let visits: Vec<_> = report
                .visits
                .into_iter()
                .filter(|v| v.patient == patient)
                .map(|v| {
                    let coming: Vec<_> = v
                        .staff
                        .iter()
                        .map(|s| json!({ "id": s, "name": names.get(s) }))
                        .collect();
                    json!({
                        "visit": v.visit, "start": v.start, "end": v.end,
                        "kind": v.kind.as_str(), "video": v.kind == VisitKind::Digital,
                        "state": v.outcome.as_str(), "coming": coming,
                    })
                })
                .collect();
            Ok(json!({ "patient": patient, "day": day, "visits": visits }))
        })
        .await,
    )
}

/// `GET /api/home/messages`: the messages about this home's patient.
pub(crate) async fn messages(State(http): State<Http>) -> Response {
    answer(
        blocking(&http, |svc| {
            let patient = svc.home_patient()?;
            let messages = svc.messages(patient.as_str(), "messages (home)")?;
            let messages: Vec<_> = messages.iter().map(message_json).collect();
            Ok(json!({ "messages": messages }))
        })
        .await,
    )
}

/// A message as the tablet lists it: pictures by link, not inline.
fn message_json(m: &Message) -> serde_json::Value {
    let pictures: Vec<_> = m
        .attachments
        .iter()
        .enumerate()
        .map(|(n, a)| {
            json!({
                "content_type": a.content_type, "name": a.name, "size": a.size,
                "url": format!("/api/home/messages/{}/pictures/{n}", m.id),
            })
        })
        .collect();
    json!({
        "id": m.id, "author": m.author, "to": m.to, "sent_at": m.sent_at,
        "in_reply_to": m.in_reply_to, "text": m.text, "pictures": pictures,
    })
}

/// `GET /api/home/messages/{message}/pictures/{n}`: one picture's bytes, with its type.
pub(crate) async fn picture(
    State(http): State<Http>,
    Path((message, n)): Path<(String, usize)>,
) -> Response {
    let result = blocking(&http, move |svc| {
        let patient = svc.home_patient()?;
        svc.message_picture(&patient, &message, n, "message picture (home)")
    })
    .await
    .and_then(|p| p.ok_or_else(|| error(StatusCode::NOT_FOUND, "no such picture")))
    .map(|(picture, bytes)| (picture.content_type, bytes));
    match result {
        Ok((content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; sandbox".to_owned(),
                ),
                (header::CACHE_CONTROL, "no-store".to_owned()),
                (header::CONTENT_DISPOSITION, "inline".to_owned()),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// A picture as the tablet sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPicture {
    /// `image/jpeg`, `image/png` or `image/webp`.
    content_type: String,
    name: Option<String>,
    /// The bytes, base64.
    data: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMessage {
    #[serde(default)]
    text: String,
    /// `care-team` (default) or `base`.
    to: Option<String>,
    #[serde(default)]
    pictures: Vec<NewPicture>,
}

/// `POST /api/home/messages {"text": ..., "to": "care-team" | "base", "pictures": [{"content_type",
/// "name", "data" (base64)}]}`: every picture is checked before anything is stored.
pub(crate) async fn send_message(State(http): State<Http>, body: axum::body::Bytes) -> Response {
    let message: NewMessage = match json_body(&body) {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    let to = match message.to.as_deref().unwrap_or("care-team") {
        "care-team" => Recipient::CareTeam,
        "base" => Recipient::Base,
        other => {
            return bad_request("to", format!("{other:?}: expected care-team or base"))
                .into_response();
        }
    };
    let mut pictures = Vec::new();
    for (n, p) in message.pictures.iter().enumerate() {
        use base64::Engine;
        match base64::engine::general_purpose::STANDARD.decode(&p.data) {
            Ok(bytes) => pictures.push((p.content_type.clone(), p.name.clone(), bytes)),
            Err(e) => {
                return bad_request(
                    &format!("pictures[{n}]"),
                    format!("data is not base64: {e}"),
                )
                .into_response();
            }
        }
    }
    answer(
        blocking(&http, move |svc| {
            let patient = svc.home_patient()?;
            let sent = svc.send_message(service::NewMessage {
                patient: patient.to_string(),
                to,
                text: message.text,
                in_reply_to: None,
                pictures,
            })?;
            Ok(json!({ "message": message_json(&sent) }))
        })
        .await,
    )
}

/// A device report as devices send it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Report {
    device: String,
    event_id: String,
    /// When it happened (RFC 3339); default now.
    at: Option<String>,
    /// `dose-dispensed`, `dose-taken`, `dose-missed`, `device-error`, `power-failure`, `alarm` or
    /// `measurement`.
    kind: String,
    medication: Option<String>,
    slot: Option<String>,
    code: Option<String>,
    measurement: Option<String>,
    #[serde(default, deserialize_with = "text_or_number")]
    value: Option<String>,
    unit: Option<String>,
}

/// A measurement's value as a device sends it: text (`"128/82"`, `"96"`) or a JSON number (`96`,
/// `37.5`), kept as the text it reads as; the measurement's own check judges it.
fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Value {
        Text(String),
        Number(serde_json::Number),
    }
    Ok(Option::<Value>::deserialize(d)?.map(|v| match v {
        Value::Text(text) => text,
        Value::Number(number) => number.to_string(),
    }))
}

fn required<'a>(field: &'a Option<String>, name: &str, kind: &str) -> Result<&'a str, ApiError> {
    field
        .as_deref()
        .ok_or_else(|| bad_request(name, format!("required for {kind}")))
}

fn parse_report(svc: &Service, r: &Report) -> Result<DeviceReport, ApiError> {
    let dose = |kind| -> Result<DeviceReport, ApiError> {
        Ok(DeviceReport::Dose {
            kind,
            medication: svc
                .medication(required(&r.medication, "medication", &r.kind)?)
                .map_err(service_error)?,
            slot: required(&r.slot, "slot", &r.kind)?.to_owned(),
        })
    };
    let report = match r.kind.as_str() {
        "dose-dispensed" => dose(DoseEventKind::Dispensed)?,
        "dose-taken" => dose(DoseEventKind::Taken)?,
        "dose-missed" => dose(DoseEventKind::Missed)?,
        "device-error" => DeviceReport::Error {
            code: required(&r.code, "code", &r.kind)?.to_owned(),
        },
        "power-failure" => DeviceReport::PowerFailure,
        "alarm" => DeviceReport::Alarm,
        "measurement" => DeviceReport::Measurement {
            kind: required(&r.measurement, "measurement", &r.kind)?.to_owned(),
            value: required(&r.value, "value", &r.kind)?.to_owned(),
            unit: r.unit.clone(),
        },
        other => {
            return Err(bad_request(
                "kind",
                format!(
                    "{other:?}: expected dose-dispensed, dose-taken, dose-missed, device-error, power-failure, alarm or measurement"
                ),
            ));
        }
    };
    Ok(report)
}

/// `POST /api/home/device-events`: 201 with the entry, 200 `{"duplicate": true}` for a report
/// already stored, 4xx (nothing stored) for a malformed one.
pub(crate) async fn device_event(State(http): State<Http>, body: axum::body::Bytes) -> Response {
    let parsed =
        json_body::<Report>(&body).and_then(|r| parse_report(&http.service, &r).map(|p| (r, p)));
    let (raw, report) = match parsed {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let result = blocking(&http, move |svc| {
        svc.device_report(
            &raw.device,
            &raw.event_id,
            &When::text(raw.at.as_deref()),
            &report,
        )
    })
    .await;
    match result {
        Ok(Some(entry)) => {
            (StatusCode::CREATED, axum::Json(json!({ "entry": entry }))).into_response()
        }
        Ok(None) => axum::Json(json!({ "duplicate": true })).into_response(),
        Err(e) => e.into_response(),
    }
}
