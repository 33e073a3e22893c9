//! One image a pod names, judged within the review's budget: the reference
//! normalised as `docker pull` does, resolved to a digest through its
//! registry, and the verdict for that digest; an image not scanned yet is
//! scanned right then, on the service's workers and layer cache.

use std::sync::Arc;

use minehound::{DigestResolver, ImageName};
use tokio::time::Instant;

use crate::harbor::Artifact;
use crate::job::{JobState, Origin, Verdict};
use crate::service::{Service, SubmitError};

/// What is known of one image when the review must answer.
#[derive(Debug, Clone)]
pub enum ImageOutcome {
    /// Scanned: the verdict for its digest.
    Judged {
        /// The normalised reference.
        name: ImageName,
        /// The manifest (or index) digest.
        digest: String,
        /// The latest verdict for it.
        verdict: Verdict,
    },
    /// Its scan has not ended within the budget (or, in a dry run, was not
    /// started).
    Pending {
        /// The normalised reference.
        name: ImageName,
        /// The digest being scanned.
        digest: String,
        /// Why there is no verdict yet.
        why: String,
    },
    /// It could not be resolved, pulled or scanned.
    Unresolved {
        /// The reference as the pod wrote it.
        image: String,
        /// Why.
        reason: String,
    },
}

/// Judges `image` by `deadline`. With `dry_run`, nothing is queued.
pub async fn judge(
    service: &Arc<Service>,
    resolver: &DigestResolver,
    image: &str,
    deadline: Instant,
    dry_run: bool,
) -> ImageOutcome {
    let unresolved = |reason: String| ImageOutcome::Unresolved {
        image: image.to_string(),
        reason,
    };
    let name = match ImageName::parse(image) {
        Ok(name) => name,
        Err(e) => return unresolved(format!("{e}")),
    };
    let digest = match &name.digest {
        Some(digest) => digest.clone(),
        None => match resolve(resolver, &name, deadline).await {
            Ok(digest) => digest,
            Err(reason) => return unresolved(reason),
        },
    };
    let pending = |why: &str| ImageOutcome::Pending {
        name: name.clone(),
        digest: digest.clone(),
        why: why.to_string(),
    };
    let record = match service.image(&digest).await {
        Ok(record) => record,
        Err(e) => return unresolved(format!("the verdict of {digest} cannot be read: {e}")),
    };
    if let Some(verdict) = record.as_ref().and_then(|r| r.verdict.clone()) {
        return ImageOutcome::Judged {
            name,
            digest,
            verdict,
        };
    }
    if record.as_ref().is_some_and(|r| !r.status.ended()) {
        if dry_run {
            return pending("its scan is under way");
        }
    } else if dry_run {
        return pending("it has not been scanned, and a dry run queues no scan");
    } else {
        let artifact = Artifact {
            repository: name.repository.clone(),
            digest: digest.clone(),
            tag: name.tag.clone(),
            ..Artifact::default()
        };
        let registry_url = format!("https://{}", name.registry);
        match service
            .submit(Origin::Admission, &registry_url, artifact, None, true)
            .await
        {
            Ok(_) | Err(SubmitError::AlreadyPending) => {}
            Err(SubmitError::QueueFull) => return pending("the scan queue is full"),
            Err(SubmitError::Invalid(reason)) => return unresolved(reason),
            Err(SubmitError::Store(e)) => {
                return unresolved(format!("cannot record the scan job: {e}"));
            }
        }
    }
    match service.wait_for_image(&digest, deadline).await {
        Ok(Some(record)) => match (record.verdict, record.status) {
            (Some(verdict), _) => ImageOutcome::Judged {
                name,
                digest,
                verdict,
            },
            (None, JobState::Failed) => unresolved(format!(
                "its scan failed: {}",
                record.error.as_deref().unwrap_or("no reason recorded")
            )),
            _ => pending("its scan is under way"),
        },
        Ok(None) => pending("its scan is under way"),
        Err(e) => unresolved(format!("the verdict of {digest} cannot be read: {e}")),
    }
}

/// The digest `name` has now in its registry, by `deadline`.
async fn resolve(
    resolver: &DigestResolver,
    name: &ImageName,
    deadline: Instant,
) -> Result<String, String> {
    match tokio::time::timeout_at(deadline, resolver.resolve(&name.to_string())).await {
        Ok(Ok(digest)) => Ok(digest),
        Ok(Err(e)) => Err(format!(
            "cannot resolve it to a digest: {}",
            crate::checks::error_chain(&e)
        )),
        Err(_) => Err("its registry did not answer within the admission budget".into()),
    }
}
