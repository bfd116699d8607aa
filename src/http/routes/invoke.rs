//! `GET|POST|PUT|DELETE /v1.0/actors/{type}/{id}/method/{method}` (facts
//! §2): the body is the call's data, every header its metadata; the reply's
//! data is the body, its metadata the headers.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use tonic::Code;

use super::{ActorPath, Shared, read_body};
use crate::api::ApiError;
use crate::error::Error;
use crate::http::error::{HttpError, Op, http_status};
use crate::http::{headers, path};
use crate::service::front_door::ERROR_RESPONSE_HEADER;
use crate::service::status::app_code;
use crate::transport::InvokeRequest;

pub async fn invoke(State(ctx): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let names = match ActorPath::read(&parts.uri) {
        Ok(names) => names,
        Err(refused) => return refused.into_response(),
    };
    let data = match read_body(body, ctx.max_body_bytes).await {
        Ok(data) => data,
        Err(e) => {
            return HttpError::bad_request(format!("failed to read body: {e}")).into_response();
        }
    };
    let metadata = headers::invoke_metadata(&parts.headers, ctx.token_checked, ctx.api.app_id());
    let method = path::clean(&names.name);
    let call = InvokeRequest {
        id: String::new(),
        actor_type: names.actor_type,
        actor_id: names.actor_id,
        method: method.clone(),
        data: data.into(),
        metadata,
    };
    // No deadline: an HTTP caller has none to give (daprd sets none
    // either). A caller that hangs up drops this future, and with it the
    // pending entry (R10).
    match ctx.api.invoke(call, None).await {
        Ok(reply) => reply_response(reply.data, &reply.metadata, false),
        Err(ApiError::Call(Error::AppError { payload, metadata })) => {
            reply_response(payload, &metadata, true)
        }
        Err(ApiError::Call(Error::AppFailed { code, .. })) if app_code(code) == Code::NotFound => {
            HttpError::new(
                http_status(Code::NotFound),
                "ERR_ACTOR_INVOKE_METHOD",
                format!("error invoke actor method: actor method not found: {method}"),
            )
            .into_response()
        }
        Err(e) => HttpError::from_api(e, Op::Invoke).into_response(),
    }
}

/// 200 with the app's data; an app error (`error: true`) is still 200, its
/// payload the body, marked by `X-Daprerrorresponseheader: true`.
fn reply_response(data: Vec<u8>, metadata: &HashMap<String, String>, app_error: bool) -> Response {
    let mut response = Response::new(Body::from(data));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers::reply_headers(metadata, headers);
    headers.insert(header::CONTENT_TYPE, headers::content_type(metadata));
    if app_error {
        headers.insert(ERROR_RESPONSE_HEADER, HeaderValue::from_static("true"));
    }
    response
}
