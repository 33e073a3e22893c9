//! The HTTP API: Harbor's scanner endpoints, Distribution notifications,
//! image verdicts, health, metrics and the OpenAPI description.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::json;

use crate::authorization::Authorization;
use crate::checks::valid_digest;
use crate::harbor::{self, ReportKind};
use crate::job::{JobState, Origin};
use crate::notify;
use crate::service::{Service, SubmitError};
use crate::{AuthorizationType, ServerState};

/// Largest request body taken (a scan request or a notification envelope).
const BODY_LIMIT: usize = 1024 * 1024;

pub(crate) fn router(state: Arc<ServerState>) -> Router {
    let api = Router::new()
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/scan", post(accept_scan))
        .route("/api/v1/scan/{id}/report", get(scan_report))
        .route("/api/v1/notifications", post(notifications))
        .route("/api/v1/images/{digest}", get(image_verdict))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            require_token,
        ));
    // The API server calls webhooks with no credentials of its own: the
    // admission endpoints are open (TLS and the NetworkPolicy guard them).
    let admission = Router::new()
        .route("/k8s/admission", post(crate::admission::admission_review))
        .route("/k8s/imagereview", post(crate::admission::image_review));
    Router::new()
        .merge(api)
        .merge(admission)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/openapi.json", get(openapi_json))
        .route("/api/openapi.yaml", get(openapi_yaml))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// An answer in the spec's error shape.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({ "error": { "message": message.into() } });
    with_type(status, harbor::ERROR, body.to_string())
}

fn with_type(
    status: StatusCode,
    content_type: &str,
    body: impl Into<axum::body::Body>,
) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

pub(crate) fn json_answer(
    status: StatusCode,
    content_type: &str,
    value: &impl Serialize,
) -> Response {
    match serde_json::to_string(value) {
        Ok(text) => with_type(status, content_type, text),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the answer: {e}"),
        ),
    }
}

/// Logs every request: method, path, status and time; never headers.
async fn log_request(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if path == "/healthz" || path == "/readyz" || path == "/metrics" {
        tracing::debug!(%method, %path, status, ms, "request");
    } else {
        tracing::info!(%method, %path, status, ms, "request");
    }
    response
}

/// The service's own API takes `Authorization: Bearer TOKEN` when a token is set.
async fn require_token(
    State(state): State<Arc<ServerState>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &state.api_token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                "this API needs \"Authorization: Bearer TOKEN\" with the service's token",
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    next.run(request).await
}

/// Compares without an early exit, so timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn metadata(State(state): State<Arc<ServerState>>) -> Response {
    let signatures = state.service.scanner.signatures();
    let version = signatures.version().to_string();
    let mut properties = serde_json::Map::new();
    let mut put = |k: &str, v: String| {
        properties.insert(k.to_string(), v.into());
    };
    put(
        "harbor.scanner-adapter/scanner-type",
        "cryptocurrency-miner".into(),
    );
    put(
        "harbor.scanner-adapter/registry-authorization-type",
        match state.harbor_authorization {
            AuthorizationType::Basic => "Basic",
            AuthorizationType::Bearer => "Bearer",
        }
        .into(),
    );
    if let Some(date) = signatures_date(&version) {
        put(
            "harbor.scanner-adapter/vulnerability-database-updated-at",
            date,
        );
    }
    put("minehound/signatures-version", version);
    put(
        "minehound/fail-on",
        state.service.settings.fail_on.as_str().to_string(),
    );
    let body = json!({
        "scanner": harbor::ScannerInfo::this(),
        "capabilities": [{
            "type": "vulnerability",
            "consumes_mime_types": harbor::CONSUMES,
            "produces_mime_types": [
                harbor::REPORT_V11,
                format!("{}; version=1.0", harbor::REPORT_HARBOR_JSON),
                harbor::REPORT_RAW,
            ],
        }],
        "properties": properties,
    });
    json_answer(StatusCode::OK, harbor::METADATA, &body)
}

/// `2026.11.27.2` → `2026-11-27T00:00:00Z`: when the signature set was cut.
fn signatures_date(version: &str) -> Option<String> {
    let mut parts = version.split('.');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    let date: jiff::civil::Date = format!("{y}-{m:0>2}-{d:0>2}").parse().ok()?;
    Some(format!("{date}T00:00:00Z"))
}

/// A JSON request body as `T`, or the answer that refuses it: 415 when it is
/// not JSON (`media_type` says what to send), 400 when the JSON is malformed,
/// 422 when it is JSON of the wrong shape.
fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
    media_type: &str,
    what: &str,
) -> Result<T, Box<Response>> {
    if !is_json(headers) {
        return Err(Box::new(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("send the {what} as {media_type}"),
        )));
    }
    serde_json::from_slice(body).map_err(|e| {
        Box::new(if e.is_data() {
            error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("not a valid {what}: {e}"),
            )
        } else {
            error(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}"))
        })
    })
}

/// Whether a request body's `Content-Type` is JSON of some kind (or absent).
fn is_json(headers: &HeaderMap) -> bool {
    match headers.get(header::CONTENT_TYPE).map(|v| v.to_str()) {
        None => true,
        Some(Ok(value)) => {
            let essence = value.split(';').next().unwrap_or("").trim();
            essence == "application/json" || essence.ends_with("+json")
        }
        Some(Err(_)) => false,
    }
}

async fn accept_scan(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: harbor::ScanRequest = match json_body(
        &headers,
        &body,
        &format!("{}; version=1.1", harbor::SCAN_REQUEST),
        "scan request",
    ) {
        Ok(r) => r,
        Err(answer) => return *answer,
    };
    let authorization = match request
        .registry
        .authorization
        .as_deref()
        .filter(|a| !a.is_empty())
        .map(Authorization::parse)
        .transpose()
    {
        Ok(a) => a,
        Err(message) => return error(StatusCode::UNPROCESSABLE_ENTITY, message),
    };
    match state
        .service
        .submit(
            Origin::Harbor,
            &request.registry.url,
            request.artifact,
            authorization,
            false,
        )
        .await
    {
        Ok(job) => json_answer(
            StatusCode::ACCEPTED,
            harbor::SCAN_RESPONSE,
            &json!({ "id": job.id }),
        ),
        Err(e) => submit_error(e),
    }
}

fn submit_error(e: SubmitError) -> Response {
    match e {
        SubmitError::Invalid(message) => error(StatusCode::UNPROCESSABLE_ENTITY, message),
        SubmitError::AlreadyPending => error(
            StatusCode::CONFLICT,
            "a scan of this digest is queued or running",
        ),
        SubmitError::QueueFull => {
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the scan queue is full; try again later",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
            response
        }
        SubmitError::Store(e) => store_unavailable(format!("cannot record the scan job: {e}")),
    }
}

/// The store (a database restarting, say) cannot answer now: 503 with a
/// time to come back, as for a full queue.
pub(crate) fn store_unavailable(message: String) -> Response {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

async fn scan_report(
    State(state): State<Arc<ServerState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let job = match state.service.job(&id).await {
        Ok(Some(job)) => job,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no scan request with id {id:?}"),
            );
        }
        Err(e) => return store_unavailable(format!("the scan {id} cannot be looked up now: {e}")),
    };
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (kind, content_type) = harbor::negotiate(accept);
    match job.state {
        JobState::Queued | JobState::Running => {
            let mut response = Response::new(axum::body::Body::empty());
            *response.status_mut() = StatusCode::FOUND;
            response.headers_mut().insert(
                "Refresh-After",
                HeaderValue::from(state.refresh_after.as_secs().max(1)),
            );
            response
        }
        JobState::Failed => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            job.error.unwrap_or_else(|| "the scan failed".into()),
        ),
        JobState::Finished => {
            let text = match state.service.report(&id).await {
                Ok(Some(bytes)) => bytes,
                Ok(None) => {
                    return error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("the report of scan {id} is missing"),
                    );
                }
                Err(e) => {
                    return store_unavailable(format!(
                        "the report of scan {id} cannot be read now: {e}"
                    ));
                }
            };
            match kind {
                ReportKind::Raw => with_type(StatusCode::OK, &content_type, text),
                ReportKind::Harbor => {
                    let report: minehound::Report = match serde_json::from_slice(&text) {
                        Ok(r) => r,
                        Err(e) => {
                            return error(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                format!("the report of scan {id} is damaged: {e}"),
                            );
                        }
                    };
                    let generated_at = job.finished_at.clone().unwrap_or_default();
                    let harbor = harbor::harbor_report(&report, &job.artifact, &generated_at);
                    json_answer(StatusCode::OK, &content_type, &harbor)
                }
            }
        }
    }
}

async fn notifications(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let envelope: notify::Envelope =
        match json_body(&headers, &body, notify::ENVELOPE, "notification envelope") {
            Ok(e) => e,
            Err(answer) => return *answer,
        };
    let pushed = notify::pushed_manifests(&envelope, state.notification_registry.as_deref());
    let (mut queued, mut already, mut invalid) = (Vec::new(), 0usize, Vec::new());
    for push in pushed {
        match state
            .service
            .submit(
                Origin::Notification,
                &push.registry,
                push.artifact,
                None,
                true,
            )
            .await
        {
            Ok(job) => queued.push(json!({"id": job.id, "digest": job.artifact.digest})),
            Err(SubmitError::AlreadyPending) => already += 1,
            Err(SubmitError::Invalid(message)) => invalid.push(message),
            // Distribution delivers again until it gets a 2xx.
            Err(e) => return submit_error(e),
        }
    }
    let ignored = envelope.events.len() - queued.len() - already - invalid.len();
    if !invalid.is_empty() {
        tracing::warn!(events = ?invalid, "notification events that name no scannable image");
    }
    json_answer(
        StatusCode::OK,
        "application/json",
        &json!({
            "queued": queued,
            "already_queued": already,
            "ignored": ignored,
            "invalid": invalid,
        }),
    )
}

async fn image_verdict(
    State(state): State<Arc<ServerState>>,
    Path(digest): Path<String>,
) -> Response {
    if !valid_digest(&digest) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{digest:?} is not a sha256 digest"),
        );
    }
    match state.service.image(&digest).await {
        Ok(Some(record)) => json_answer(StatusCode::OK, "application/json", &record),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("no scan of {digest} is known"),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the verdict of {digest} cannot be read: {e}"),
        ),
        Err(e) => store_unavailable(format!("the verdict of {digest} cannot be read now: {e}")),
    }
}

async fn healthz() -> Response {
    json_answer(StatusCode::OK, "application/json", &json!({"status": "ok"}))
}

async fn readyz(State(state): State<Arc<ServerState>>) -> Response {
    let service: &Service = &state.service;
    let writable = service.store.ready().await;
    let accepting = writable && service.accepting().await.unwrap_or(false);
    let status = if writable && accepting {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_answer(
        status,
        "application/json",
        &json!({
            "status": if status == StatusCode::OK { "ready" } else { "not ready" },
            "state_dir_writable": writable,
            "queue_has_room": accepting,
        }),
    )
}

async fn metrics(State(state): State<Arc<ServerState>>) -> Response {
    // The queue depth is the store's (every replica's, with a database).
    let _ = state.service.accepting().await;
    with_type(
        StatusCode::OK,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        state.service.metrics.encode(),
    )
}

async fn openapi_json() -> Response {
    json_answer(StatusCode::OK, "application/json", &crate::openapi_json())
}

async fn openapi_yaml() -> Response {
    with_type(StatusCode::OK, "application/yaml", crate::OPENAPI_YAML)
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_versions_read_as_dates() {
        assert_eq!(
            signatures_date("2026.11.27.2").as_deref(),
            Some("2026-11-27T00:00:00Z")
        );
        assert_eq!(signatures_date("custom"), None);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
