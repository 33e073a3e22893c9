//! Kubernetes admission: the API server asks whether a pod (or a workload
//! whose pod template it carries) may be created, and minehound answers by
//! the content of every image it names and by how each container is
//! launched.
//!
//! - `POST /k8s/admission`: a validating webhook, `AdmissionReview`
//!   `admission.k8s.io/v1`.
//! - `POST /k8s/imagereview`: the API server's ImagePolicyWebhook,
//!   `ImageReview` `imagepolicy.k8s.io/v1alpha1`.
//!
//! Handlers are total: parse, judge, answer; every well-formed review gets a
//! review back with its uid, within the budget, whatever the registry or a
//! scan does.

mod decision;
mod image;
mod review;
mod workload;

use std::time::Duration;

use minehound::Severity;

pub(crate) use review::{admission_review, image_review};

/// What to answer while an image's scan has not ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PendingPolicy {
    /// Refuse, saying the scan is under way (controllers retry on their own).
    #[default]
    Deny,
    /// Allow, with a warning.
    Warn,
    /// Allow.
    Allow,
}

/// What to answer for an image that cannot be resolved, pulled or scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnresolvedPolicy {
    /// Refuse, with the reason.
    #[default]
    Deny,
    /// Allow, with a warning.
    Allow,
}

/// How admission reviews are judged.
#[derive(Debug, Clone)]
pub struct AdmissionSettings {
    /// The longest a review may take (default 8 s, under the API server's
    /// default 10 s webhook timeout); a shorter `?timeout=` from the API
    /// server shortens it.
    pub budget: Duration,
    /// What an image still being scanned gets.
    pub pending: PendingPolicy,
    /// What an image that cannot be resolved or scanned gets.
    pub unresolved: UnresolvedPolicy,
    /// Findings at or above this deny; lower ones warn.
    pub fail_on: Severity,
    /// Namespaces whose objects pass unjudged.
    pub exempt_namespaces: Vec<String>,
}

impl AdmissionSettings {
    /// Namespaces always exempt: the control plane's.
    pub const SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        AdmissionSettings {
            budget: Duration::from_secs(8),
            pending: PendingPolicy::Deny,
            unresolved: UnresolvedPolicy::Deny,
            fail_on: Severity::High,
            exempt_namespaces: Self::SYSTEM_NAMESPACES.map(String::from).to_vec(),
        }
    }
}
