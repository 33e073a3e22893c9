//! [`ScanRequest`]: what [`Scanner::scan`](crate::Scanner::scan) scans, and
//! who watches.

use std::sync::Arc;

use minehound_oci::{PlatformChoice, RegistryOptions, Target};

use crate::progress::{CancelToken, Progress, Watch};

/// What to scan, and who watches: built with [`ScanRequest::new`] and its
/// setters.
#[derive(Clone)]
#[non_exhaustive]
pub struct ScanRequest {
    /// The target.
    pub target: Target,
    /// The target as the user wrote it, for the report.
    pub target_name: String,
    /// Which platforms of a multi-platform image.
    pub platform: PlatformChoice,
    /// How to reach registries (credentials, TLS, retries).
    pub registry: RegistryOptions,
    /// Who hears about layer progress, if anyone.
    pub progress: Option<Arc<dyn Progress>>,
    /// Stops the scan when cancelled.
    pub cancel: Option<CancelToken>,
}

impl std::fmt::Debug for ScanRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanRequest")
            .field("target", &self.target)
            .field("platform", &self.platform)
            .field("registry", &self.registry)
            .field("progress", &self.progress.is_some())
            .field("cancel", &self.cancel)
            .finish()
    }
}

impl ScanRequest {
    /// A request for `target` on the host's platform.
    pub fn new(target: Target, target_name: impl Into<String>) -> Self {
        ScanRequest {
            target,
            target_name: target_name.into(),
            platform: PlatformChoice::Host,
            registry: RegistryOptions::default(),
            progress: None,
            cancel: None,
        }
    }

    /// Stops the scan when `cancel` is cancelled.
    pub fn cancel(mut self, cancel: CancelToken) -> Self {
        self.cancel = Some(cancel);
        self
    }

    pub(crate) fn watch(&self) -> Watch<'_> {
        Watch {
            progress: self.progress.as_ref(),
            cancel: self.cancel.as_ref(),
        }
    }

    /// Reports layer progress to `progress`.
    pub fn progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Sets how registries are reached.
    pub fn registry(mut self, registry: RegistryOptions) -> Self {
        self.registry = registry;
        self
    }

    /// Chooses platforms.
    pub fn platform(mut self, platform: PlatformChoice) -> Self {
        self.platform = platform;
        self
    }
}
