//! The two admission endpoints: read the review, judge what it asks to run,
//! answer with the request's uid.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use futures_util::future::join_all;
use kube_core::DynamicObject;
use kube_core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube_core::response::StatusSummary;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::decision::Decision;
use super::image::{self, ImageOutcome};
use super::workload::{self, ContainerSpec};
use crate::ServerState;
use crate::api::{error, json_answer};

/// More distinct images than this in one object is refused, not looked up.
const MAX_IMAGES: usize = 64;

/// `POST /k8s/admission`: a validating admission webhook.
pub(crate) async fn admission_review(
    State(state): State<Arc<ServerState>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let deadline = started + budget(&state, query.as_deref());
    let review: AdmissionReview<DynamicObject> = match read_review(
        &state,
        "admission",
        &body,
        ("admission.k8s.io/v1", "AdmissionReview"),
        |r: &AdmissionReview<DynamicObject>| (&r.types.api_version, &r.types.kind),
    ) {
        Ok(review) => review,
        Err(answer) => return *answer,
    };
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(request) => request,
        Err(_) => {
            return bad_request(
                &state,
                "admission",
                "the AdmissionReview has no request".into(),
            );
        }
    };
    let decision = judge_request(&state, &request, deadline).await;
    let mut response = AdmissionResponse::from(&request);
    if !decision.allowed() {
        response = response.deny(decision.message());
        response.result.code = 403;
        response.result.reason = "Forbidden".into();
        response.result.status = Some(StatusSummary::Failure);
    }
    let warnings = decision.warnings();
    response.warnings = (!warnings.is_empty()).then_some(warnings);
    response.audit_annotations = decision.audit().into_iter().collect();
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        uid = %request.uid,
        kind = %request.kind.kind,
        namespace = request.namespace.as_deref().unwrap_or(""),
        name = %request.name,
        operation = ?request.operation,
        dry_run = request.dry_run,
        allowed = decision.allowed(),
        ms = seconds * 1000.0,
        "admission review"
    );
    state
        .service
        .metrics
        .admission_answered("admission", decision.allowed(), seconds);
    json_answer(StatusCode::OK, "application/json", &response.into_review())
}

/// How long this review may take: the service's budget, or less when the
/// API server's own `?timeout=` leaves less (with room for the answer).
fn budget(state: &ServerState, query: Option<&str>) -> Duration {
    let mut budget = state.admission.budget;
    let timeout = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("timeout="))
        .and_then(parse_go_duration);
    if let Some(timeout) = timeout {
        let room = timeout
            .mul_f64(0.8)
            .min(timeout.saturating_sub(Duration::from_millis(500)));
        budget = budget.min(room.max(Duration::from_millis(200)));
    }
    budget
}

/// `10s`, `1m0s`, `500ms`: the forms Go's `time.Duration` prints.
fn parse_go_duration(text: &str) -> Option<Duration> {
    if text.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        total += Duration::try_from_secs_f64(value * seconds).ok()?;
        rest = &rest[unit..];
    }
    Some(total)
}

/// A review body as `T`, of the one API version and kind the endpoint
/// takes; else the 400 that refuses it.
fn read_review<T: serde::de::DeserializeOwned>(
    state: &ServerState,
    endpoint: &'static str,
    body: &[u8],
    (api_version, kind): (&str, &str),
    type_of: impl Fn(&T) -> (&String, &String),
) -> Result<T, Box<Response>> {
    let review: T = serde_json::from_slice(body)
        .map_err(|e| Box::new(bad_request(state, endpoint, format!("not an {kind}: {e}"))))?;
    let (got_version, got_kind) = type_of(&review);
    if got_version != api_version || got_kind != kind {
        let message = format!("expected an {api_version} {kind}, got {got_version} {got_kind}");
        return Err(Box::new(bad_request(state, endpoint, message)));
    }
    Ok(review)
}

fn bad_request(state: &ServerState, endpoint: &'static str, message: String) -> Response {
    tracing::warn!(endpoint, error = %message, "malformed admission request");
    state.service.metrics.admission_malformed(endpoint);
    error(StatusCode::BAD_REQUEST, message)
}

/// Judges what `request` asks to run.
async fn judge_request(
    state: &Arc<ServerState>,
    request: &AdmissionRequest<DynamicObject>,
    deadline: Instant,
) -> Decision {
    let mut decision = Decision::default();
    if matches!(request.operation, Operation::Delete | Operation::Connect) {
        return decision;
    }
    if let Some(namespace) = request.namespace.as_deref()
        && state
            .admission
            .exempt_namespaces
            .iter()
            .any(|n| n == namespace)
    {
        decision.exempt(format!("namespace {namespace} is exempt"));
        return decision;
    }
    let Some(object) = request.object.as_ref() else {
        return decision;
    };
    let containers = match containers_of(object) {
        Ok(containers) => containers,
        Err(e) => return decision.refuse(e),
    };
    let containers = match (&request.operation, request.old_object.as_ref()) {
        (Operation::Update, Some(old)) => {
            workload::added(containers, &containers_of(old).unwrap_or_default())
        }
        _ => containers,
    };
    judge_containers(state, containers, deadline, request.dry_run, decision).await
}

fn containers_of(object: &DynamicObject) -> Result<Vec<ContainerSpec>, String> {
    let value =
        serde_json::to_value(object).map_err(|e| format!("the object cannot be read: {e}"))?;
    workload::containers(&value)
}

/// Judges the images and launch details of `containers` into `decision`.
async fn judge_containers(
    state: &Arc<ServerState>,
    containers: Vec<ContainerSpec>,
    deadline: Instant,
    dry_run: bool,
    mut decision: Decision,
) -> Decision {
    // Each image once, however many containers run it.
    let mut images: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in &containers {
        if let Some(image) = &c.image {
            images.entry(image.clone()).or_default().push(who(c));
        }
    }
    if images.len() > MAX_IMAGES {
        return decision.refuse(format!(
            "the object names {} images; at most {MAX_IMAGES} are judged in one review",
            images.len()
        ));
    }
    let service = &state.service;
    let lookups = images
        .keys()
        .map(|image| image::judge(service, &state.resolver, image, deadline, dry_run));
    let launch = {
        let scanner = service.scanner.clone();
        let texts: Vec<(String, &'static str, String, bool)> = containers
            .iter()
            .flat_map(|c| {
                c.launch
                    .iter()
                    .map(|l| (who(c), l.field, l.text.clone(), l.command))
            })
            .collect();
        tokio::task::spawn_blocking(move || {
            texts
                .into_iter()
                .map(|(who, field, text, command)| {
                    let found = scanner.check_launch(&format!("{who} {field}"), &text, command);
                    (who, field, found)
                })
                .collect::<Vec<_>>()
        })
    };
    let (outcomes, launch) = tokio::join!(join_all(lookups), launch);
    let today = jiff::ZonedDateTime::now().date();
    let mut exemptions = BTreeMap::new();
    for (whos, outcome) in images.values().zip(&outcomes) {
        let exemption = match (outcome, &service.settings.allowlist) {
            (
                ImageOutcome::Judged { name, digest, .. }
                | ImageOutcome::Pending { name, digest, .. },
                Some(allowlist),
            ) => allowlist.image_exemption(&name.name(), &name.to_string(), Some(digest), today),
            _ => None,
        };
        decision.image(
            &whos.join(", "),
            outcome,
            exemption.as_ref(),
            &state.admission,
        );
        for who in whos {
            exemptions.insert(who.clone(), exemption.clone());
        }
    }
    match launch {
        Ok(found) => {
            for (who, field, detections) in found {
                let exemption = exemptions.get(&who).cloned().flatten();
                decision.launch(
                    &who,
                    field,
                    &detections,
                    exemption.as_ref(),
                    &state.admission,
                );
            }
        }
        Err(e) => decision = decision.refuse(format!("launch details could not be checked: {e}")),
    }
    decision
}

/// `container "web"`, `init container "setup"`, `ephemeral container "debug"`.
fn who(c: &ContainerSpec) -> String {
    let kind = if c.at.contains(".initContainers[") {
        "init container"
    } else if c.at.contains(".ephemeralContainers[") {
        "ephemeral container"
    } else {
        "container"
    };
    format!("{kind} \"{}\"", c.name)
}

/// An ImageReview (`imagepolicy.k8s.io/v1alpha1`), as the API server's
/// ImagePolicyWebhook sends it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageReview {
    api_version: String,
    kind: String,
    spec: ImageReviewSpec,
}

#[derive(Debug, Deserialize)]
struct ImageReviewSpec {
    #[serde(default)]
    containers: Vec<ImageReviewContainer>,
    #[serde(default)]
    namespace: String,
}

#[derive(Debug, Deserialize)]
struct ImageReviewContainer {
    #[serde(default)]
    image: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageReviewAnswer {
    api_version: &'static str,
    kind: &'static str,
    status: ImageReviewStatus,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageReviewStatus {
    allowed: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    reason: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    audit_annotations: BTreeMap<String, String>,
}

/// `POST /k8s/imagereview`: the API server's ImagePolicyWebhook backend.
pub(crate) async fn image_review(
    State(state): State<Arc<ServerState>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let deadline = started + budget(&state, query.as_deref());
    let review: ImageReview = match read_review(
        &state,
        "imagereview",
        &body,
        ("imagepolicy.k8s.io/v1alpha1", "ImageReview"),
        |r: &ImageReview| (&r.api_version, &r.kind),
    ) {
        Ok(review) => review,
        Err(answer) => return *answer,
    };
    let namespace = review.spec.namespace;
    let decision = if state.admission.exempt_namespaces.contains(&namespace) {
        let mut decision = Decision::default();
        decision.exempt(format!("namespace {namespace} is exempt"));
        decision
    } else {
        // The review names images only: they are judged as containers
        // without launch details.
        let containers = review
            .spec
            .containers
            .into_iter()
            .enumerate()
            .filter(|(_, c)| !c.image.trim().is_empty())
            .map(|(i, c)| ContainerSpec {
                at: format!("spec.containers[{i}]"),
                name: format!("#{}", i + 1),
                image: Some(c.image),
                launch: Vec::new(),
            })
            .collect();
        judge_containers(&state, containers, deadline, false, Decision::default()).await
    };
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        namespace = %namespace,
        allowed = decision.allowed(),
        ms = seconds * 1000.0,
        "image review"
    );
    state
        .service
        .metrics
        .admission_answered("imagereview", decision.allowed(), seconds);
    let answer = ImageReviewAnswer {
        api_version: "imagepolicy.k8s.io/v1alpha1",
        kind: "ImageReview",
        status: ImageReviewStatus {
            allowed: decision.allowed(),
            reason: if decision.allowed() {
                String::new()
            } else {
                decision.message()
            },
            audit_annotations: decision.audit(),
        },
    };
    json_answer(StatusCode::OK, "application/json", &answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("1m0s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("2.5s"), Some(Duration::from_millis(2500)));
        for bad in ["", "s", "10", "10x", "-1s"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }
}
