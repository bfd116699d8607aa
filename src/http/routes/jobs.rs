//! Reminders (`/v1.0/actors/{type}/{id}/reminders/{name}`: create, get,
//! delete) and timers (`…/timers/{name}`: create, delete), facts §1, §4.
//!
//! `data` is any JSON, kept as its text (as daprd keeps it) and sent to the
//! app as that text in the BytesValue Any. daprd keeps gRPC bytes as the JSON
//! string of their base64, so a base64 string over HTTP (what the Python SDK
//! sends) is the same data as its bytes over gRPC: it is stored as those
//! bytes, and both protocols read it back alike.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{ActorPath, Refused, Shared, no_content, read_body};
use crate::api::jobs::JobName;
use crate::http::error::{HttpError, Op};
use crate::http::json;
use crate::runtime::jobs::{FailurePolicy, ReminderSpec, TimerSpec};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReminderBody {
    due_time: Option<String>,
    period: Option<String>,
    ttl: Option<String>,
    data: Option<Value>,
    overwrite: Option<bool>,
    /// daprd reads `failure_policy`; the Python SDK sends `failurePolicy`,
    /// which daprd drops. Both are honoured here (issue 14).
    #[serde(alias = "failure_policy")]
    failure_policy: Option<PolicyBody>,
}

#[derive(Deserialize)]
struct PolicyBody {
    drop: Option<Value>,
    constant: Option<ConstantBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConstantBody {
    interval: Option<String>,
    #[serde(alias = "max_retries")]
    max_retries: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimerBody {
    due_time: Option<String>,
    period: Option<String>,
    ttl: Option<String>,
    callback: Option<String>,
    data: Option<Value>,
}

pub async fn create_reminder(State(ctx): State<Shared>, request: Request) -> Response {
    let (names, body) = match read_json::<ReminderBody>(&ctx, request).await {
        Ok(read) => read,
        Err(refused) => return refused.into_response(),
    };
    let spec = match reminder_spec(body) {
        Ok(spec) => spec,
        Err(refused) => return refused.into_response(),
    };
    let outcome = ctx.api.register_reminder(job(&names), spec).await;
    answer(outcome, Op::ReminderCreate)
}

pub async fn create_timer(State(ctx): State<Shared>, request: Request) -> Response {
    let (names, body) = match read_json::<TimerBody>(&ctx, request).await {
        Ok(read) => read,
        Err(refused) => return refused.into_response(),
    };
    let (data, data_is_json) = job_data(body.data);
    let spec = TimerSpec {
        due_time: body.due_time.unwrap_or_default(),
        period: body.period.unwrap_or_default(),
        ttl: body.ttl.unwrap_or_default(),
        callback: body.callback.unwrap_or_default(),
        data,
        data_is_json,
    };
    let outcome = ctx.api.register_timer(job(&names), spec).await;
    answer(outcome, Op::TimerCreate)
}

pub async fn delete_reminder(State(ctx): State<Shared>, request: Request) -> Response {
    let names = match read_delete(&ctx, request).await {
        Ok(names) => names,
        Err(refused) => return refused.into_response(),
    };
    answer(
        ctx.api.unregister_reminder(job(&names)).await,
        Op::ReminderDelete,
    )
}

pub async fn delete_timer(State(ctx): State<Shared>, request: Request) -> Response {
    let names = match read_delete(&ctx, request).await {
        Ok(names) => names,
        Err(refused) => return refused.into_response(),
    };
    answer(ctx.api.unregister_timer(job(&names)).await, Op::TimerDelete)
}

/// 200 `{"actorID","actorType","data","dueTime","period","ttl"}`, empty
/// fields left out; the due time, period and ttl as registered.
pub async fn get_reminder(State(ctx): State<Shared>, request: Request) -> Response {
    let names = match ActorPath::read_checked(request.uri()) {
        Ok(names) => names,
        Err(refused) => return refused.into_response(),
    };
    let reminder = match ctx.api.get_reminder(job(&names)).await {
        Ok(reminder) => reminder,
        Err(e) => return HttpError::from_api(e, Op::ReminderGet).into_response(),
    };
    let schedule = &reminder.schedule;
    let mut body = Map::new();
    body.insert("actorID".into(), names.actor_id.clone().into());
    body.insert("actorType".into(), names.actor_type.clone().into());
    if !reminder.data.is_empty() {
        let data = match reminder.data_is_json {
            // Stored from a parsed value, so it parses back.
            true => serde_json::from_slice(&reminder.data).unwrap_or(Value::Null),
            false => STANDARD.encode(&reminder.data).into(),
        };
        body.insert("data".into(), data);
    }
    for (key, value) in [
        ("dueTime", schedule.due_time()),
        ("period", schedule.period()),
        ("ttl", schedule.ttl()),
    ] {
        if !value.is_empty() {
            body.insert(key.into(), value.into());
        }
    }
    let mut response = Response::new(json::encode(&Value::Object(body)).into());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn job(names: &ActorPath) -> JobName<'_> {
    JobName {
        actor_type: &names.actor_type,
        actor_id: &names.actor_id,
        name: &names.name,
    }
}

fn answer(outcome: Result<(), crate::api::ApiError>, op: Op) -> Response {
    match outcome {
        Ok(()) => no_content(),
        Err(e) => HttpError::from_api(e, op).into_response(),
    }
}

/// The route's names and its JSON body.
async fn read_json<T: serde::de::DeserializeOwned>(
    ctx: &Shared,
    request: Request,
) -> Result<(ActorPath, T), Refused> {
    let (parts, body) = request.into_parts();
    let names = ActorPath::read_checked(&parts.uri)?;
    let bytes = read_body(body, ctx.max_body_bytes)
        .await
        .map_err(HttpError::malformed)?;
    let body = serde_json::from_slice(&bytes).map_err(HttpError::malformed)?;
    Ok((names, body))
}

/// A delete's names; its body, if any, is read (within the limit) and
/// ignored.
async fn read_delete(ctx: &Shared, request: Request) -> Result<ActorPath, Refused> {
    let (parts, body) = request.into_parts();
    let names = ActorPath::read_checked(&parts.uri)?;
    read_body(body, ctx.max_body_bytes).await.map_err(|e| {
        HttpError::new(
            http::StatusCode::BAD_REQUEST,
            "ERR_BODY_READ",
            format!("failed to read request body: {e}"),
        )
    })?;
    Ok(names)
}

fn reminder_spec(body: ReminderBody) -> Result<ReminderSpec, HttpError> {
    let (data, data_is_json) = job_data(body.data);
    Ok(ReminderSpec {
        due_time: body.due_time.unwrap_or_default(),
        period: body.period.unwrap_or_default(),
        ttl: body.ttl.unwrap_or_default(),
        data,
        data_is_json,
        // RM2: unset means replace.
        overwrite: body.overwrite.unwrap_or(true),
        policy: match body.failure_policy {
            None => FailurePolicy::default(),
            Some(policy) => failure_policy(policy)?,
        },
    })
}

/// A timer's or reminder's JSON `data` as the runtime keeps it, and whether
/// it is JSON text: none for none or `null`; the bytes of a canonical base64
/// string (the same data as those bytes over gRPC); else the JSON text, as
/// Go would write the value.
fn job_data(data: Option<Value>) -> (Vec<u8>, bool) {
    match data {
        None | Some(Value::Null) => (Vec::new(), false),
        Some(Value::String(text)) => match STANDARD.decode(&text) {
            // Only canonical base64 is what daprd would store for the bytes.
            Ok(bytes) if STANDARD.encode(&bytes) == text => (bytes, false),
            _ => (json::marshal(&Value::String(text)), true),
        },
        Some(other) => (json::marshal(&other), true),
    }
}

fn failure_policy(policy: PolicyBody) -> Result<FailurePolicy, HttpError> {
    match (policy.drop, policy.constant) {
        (Some(_), None) => Ok(FailurePolicy::Drop),
        (None, Some(constant)) => Ok(FailurePolicy::Constant {
            interval: match constant.interval {
                None => Duration::ZERO,
                Some(text) => interval(&text).ok_or_else(|| {
                    HttpError::malformed(format!("invalid failure policy interval {text:?}"))
                })?,
            },
            max_retries: constant.max_retries,
        }),
        (None, None) => Ok(FailurePolicy::default()),
        (Some(_), Some(_)) => Err(HttpError::malformed(
            "failure policy must be either drop or constant",
        )),
    }
}

/// A protobuf JSON duration (`1s`, `0.5s`), or a Go-style one (`500ms`).
fn interval(text: &str) -> Option<Duration> {
    if let Some(seconds) = text.strip_suffix('s').and_then(|s| s.parse::<f64>().ok()) {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    humantime::parse_duration(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_data_is_bytes_for_base64_and_json_text_for_the_rest() {
        assert_eq!(job_data(None), (Vec::new(), false));
        assert_eq!(job_data(Some(Value::Null)), (Vec::new(), false));
        assert_eq!(
            job_data(Some("cnN0YXRl".into())),
            (b"rstate".to_vec(), false)
        );
        assert_eq!(
            job_data(Some("not base64!".into())),
            (b"\"not base64!\"".to_vec(), true)
        );
        assert_eq!(
            job_data(Some(serde_json::json!({"n": 7, "a": [1.0]}))),
            (b"{\"a\":[1],\"n\":7}".to_vec(), true)
        );
    }

    #[test]
    fn failure_policies_read_both_spellings_of_their_fields() {
        let body: ReminderBody = serde_json::from_str(
            r#"{"failurePolicy":{"constant":{"interval":"2s","maxRetries":5}}}"#,
        )
        .unwrap();
        assert_eq!(
            reminder_spec(body).unwrap().policy,
            FailurePolicy::Constant {
                interval: Duration::from_secs(2),
                max_retries: Some(5)
            }
        );
        let body: ReminderBody = serde_json::from_str(r#"{"failure_policy":{"drop":{}}}"#).unwrap();
        assert_eq!(reminder_spec(body).unwrap().policy, FailurePolicy::Drop);
        assert_eq!(interval("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(interval("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(interval("-1s"), None);
    }
}
