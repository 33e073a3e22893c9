//! From what is known of a review's images and launch details to one
//! answer: the denials (each naming the container, the image and its
//! digest, the file, the rule and the layer), the warnings for lower
//! findings, and the audit annotations.

use std::collections::BTreeMap;

use minehound::{Detection, ImageExemption, Severity};

use super::image::ImageOutcome;
use super::{AdmissionSettings, PendingPolicy, UnresolvedPolicy};
use crate::job::{FindingBrief, Verdict};

/// Warnings past this many are summed up in one (the API server truncates
/// long lists).
const MAX_WARNINGS: usize = 8;

/// How a review ends.
#[derive(Debug, Default)]
pub struct Decision {
    denials: Vec<String>,
    warnings: Vec<String>,
    /// `reference@digest` → `clean` | severity | `pending` | `unresolved`.
    images: BTreeMap<String, String>,
    exemptions: Vec<String>,
}

impl Decision {
    /// Whether the review allows the request.
    pub fn allowed(&self) -> bool {
        self.denials.is_empty()
    }

    /// The denial message: every reason, in order.
    pub fn message(&self) -> String {
        format!("minehound: {}", self.denials.join("; "))
    }

    /// The warnings, at most [`MAX_WARNINGS`].
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self.warnings.iter().take(MAX_WARNINGS).cloned().collect();
        if self.warnings.len() > MAX_WARNINGS {
            out.push(format!(
                "minehound: {} more warnings",
                self.warnings.len() - MAX_WARNINGS
            ));
        }
        out
    }

    /// Audit annotations (the API server prefixes each key with the webhook's name).
    pub fn audit(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        out.insert(
            "decision".to_string(),
            if self.allowed() { "allowed" } else { "denied" }.to_string(),
        );
        if !self.images.is_empty() {
            let images: Vec<String> = self
                .images
                .iter()
                .map(|(image, verdict)| format!("{image}={verdict}"))
                .collect();
            out.insert("images".to_string(), images.join(","));
        }
        if !self.exemptions.is_empty() {
            out.insert("exemptions".to_string(), self.exemptions.join("; "));
        }
        out
    }

    /// Denies for a reason that is not an image's or a launch detail's.
    pub fn refuse(mut self, reason: String) -> Decision {
        self.denials.push(reason);
        self
    }

    /// Allows without judging, saying why in the audit log.
    pub fn exempt(&mut self, why: String) {
        self.exemptions.push(why);
    }

    /// Judges one image, named by `who` (`container "web"`).
    pub fn image(
        &mut self,
        who: &str,
        outcome: &ImageOutcome,
        exemption: Option<&ImageExemption>,
        settings: &AdmissionSettings,
    ) {
        match outcome {
            ImageOutcome::Judged {
                name,
                digest,
                verdict,
            } => {
                self.images
                    .insert(name.pinned(digest), verdict.verdict.clone());
                let image = format!("image {name} ({digest})");
                let (deny, warn) = split(verdict, settings.fail_on, exemption);
                if let Some(exemption) = exemption
                    && verdict.findings > 0
                {
                    self.exemptions.push(format!(
                        "{image} exempt by {}: {}",
                        exemption.entry, exemption.reason
                    ));
                }
                if let Some(first) = deny.first() {
                    let more = match deny.len() {
                        1 => String::new(),
                        n => format!(" (and {} more)", n - 1),
                    };
                    self.denials.push(format!(
                        "{who}: {image} carries a miner: {}{more}",
                        describe(first)
                    ));
                } else if verdict_fails_without_details(verdict, settings) {
                    self.denials.push(format!(
                        "{who}: {image} is judged {} by its scan",
                        verdict.verdict
                    ));
                }
                for finding in warn {
                    self.warnings
                        .push(format!("minehound: {who}: {image}: {}", describe(finding)));
                }
            }
            ImageOutcome::Pending { name, digest, why } => {
                self.images
                    .insert(name.pinned(digest), "pending".to_string());
                let text = format!(
                    "{who}: image {name} ({digest}) has no verdict yet: {why}; it is being scanned, try again shortly (controllers retry on their own)"
                );
                match settings.pending {
                    PendingPolicy::Deny => self.denials.push(text),
                    PendingPolicy::Warn => self.warnings.push(format!("minehound: {text}")),
                    PendingPolicy::Allow => {}
                }
            }
            ImageOutcome::Unresolved { image, reason } => {
                self.images.insert(image.clone(), "unresolved".to_string());
                let text = format!("{who}: image {image} cannot be judged: {reason}");
                match settings.unresolved {
                    UnresolvedPolicy::Deny => self.denials.push(text),
                    UnresolvedPolicy::Allow => self.warnings.push(format!("minehound: {text}")),
                }
            }
        }
    }

    /// Judges what the text rules found in one launch field of a container.
    pub fn launch(
        &mut self,
        who: &str,
        field: &str,
        detections: &[Detection],
        exemption: Option<&ImageExemption>,
        settings: &AdmissionSettings,
    ) {
        for d in detections {
            let text = format!(
                "{who} {field}: {} {} ({})",
                d.severity, d.rule, d.description
            );
            let excused =
                exemption.is_some_and(|e| d.severity < Severity::Critical || e.covers_critical);
            if d.severity >= settings.fail_on && !excused {
                self.denials.push(text);
            } else {
                self.warnings.push(format!("minehound: {text}"));
            }
        }
    }
}

/// The verdict's findings that deny and those that warn, given the gate and
/// an exemption (which never excuses a critical finding unless it names the
/// digest).
fn split<'v>(
    verdict: &'v Verdict,
    fail_on: Severity,
    exemption: Option<&ImageExemption>,
) -> (Vec<&'v FindingBrief>, Vec<&'v FindingBrief>) {
    verdict.top_findings.iter().partition(|f| {
        let excused =
            exemption.is_some_and(|e| f.severity < Severity::Critical || e.covers_critical);
        f.severity >= fail_on && !excused
    })
}

/// A verdict recorded without its findings (by an older minehound) that is at
/// or above the gate.
fn verdict_fails_without_details(verdict: &Verdict, settings: &AdmissionSettings) -> bool {
    verdict.top_findings.is_empty()
        && verdict
            .verdict
            .parse::<Severity>()
            .is_ok_and(|s| s >= settings.fail_on)
}

/// `critical MH-XMRIG-ELF /usr/local/bin/xmrig in layer 1 (sha256:3f0c…)`.
fn describe(f: &FindingBrief) -> String {
    let mut text = format!("{} {} {}", f.severity, f.rule, f.path);
    if f.status == minehound::Status::Deleted {
        text.push_str(" (deleted by a later layer, still shipped)");
    }
    text.push_str(&format!(" in layer {}", f.layer_index));
    if let Some(digest) = &f.layer_digest {
        let short = digest.get(..19).unwrap_or(digest);
        text.push_str(&format!(" ({short}…)"));
    }
    if let Some(platform) = &f.platform {
        text.push_str(&format!(" for {platform}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use minehound::{ImageName, Status};

    fn verdict(findings: &[(Severity, &str)]) -> Verdict {
        Verdict {
            verdict: findings
                .iter()
                .map(|f| f.0)
                .max()
                .map_or("clean", |s| s.as_str())
                .to_string(),
            fails: false,
            findings: findings.len() as u64,
            suppressed: 0,
            layers: 2,
            layers_cached: 0,
            top_findings: findings
                .iter()
                .map(|(severity, rule)| FindingBrief {
                    rule: rule.to_string(),
                    severity: *severity,
                    path: "/usr/bin/x".into(),
                    status: Status::Present,
                    layer_index: 1,
                    layer_digest: Some(format!("sha256:{}", "c".repeat(64))),
                    platform: None,
                })
                .collect(),
        }
    }

    fn judged(v: Verdict) -> ImageOutcome {
        ImageOutcome::Judged {
            name: ImageName::parse("evil:1").unwrap(),
            digest: format!("sha256:{}", "d".repeat(64)),
            verdict: v,
        }
    }

    #[test]
    fn findings_at_the_gate_deny_and_lower_ones_warn() {
        let settings = AdmissionSettings::default();
        let mut d = Decision::default();
        d.image(
            "container \"c\"",
            &judged(verdict(&[
                (Severity::Critical, "MH-XMRIG-ELF"),
                (Severity::Low, "MH-L"),
            ])),
            None,
            &settings,
        );
        assert!(!d.allowed());
        let message = d.message();
        for part in [
            "container \"c\"",
            "docker.io/library/evil:1",
            "sha256:dddd",
            "critical MH-XMRIG-ELF /usr/bin/x in layer 1 (sha256:cccccccccccc…)",
        ] {
            assert!(message.contains(part), "{part} not in {message}");
        }
        assert_eq!(d.warnings().len(), 1);
        assert!(d.warnings()[0].contains("low MH-L"));
        assert_eq!(d.audit()["decision"], "denied");
        assert!(d.audit()["images"].ends_with("=critical"));
    }

    #[test]
    fn exemptions_never_excuse_critical_unless_they_name_the_digest() {
        let settings = AdmissionSettings::default();
        let exemption = |covers_critical| ImageExemption {
            reason: "reviewed".into(),
            entry: "allow.yaml:3".into(),
            expires: None,
            covers_critical,
        };
        let mut d = Decision::default();
        d.image(
            "c",
            &judged(verdict(&[(Severity::High, "MH-H")])),
            Some(&exemption(false)),
            &settings,
        );
        assert!(d.allowed(), "{}", d.message());
        assert!(d.audit()["exemptions"].contains("allow.yaml:3"));
        let critical = judged(verdict(&[(Severity::Critical, "MH-C")]));
        let mut d = Decision::default();
        d.image("c", &critical, Some(&exemption(false)), &settings);
        assert!(!d.allowed());
        let mut d = Decision::default();
        d.image("c", &critical, Some(&exemption(true)), &settings);
        assert!(d.allowed());
    }

    #[test]
    fn pending_and_unresolved_follow_their_policies() {
        let pending = ImageOutcome::Pending {
            name: ImageName::parse("app:1").unwrap(),
            digest: "sha256:x".into(),
            why: "its scan is under way".into(),
        };
        let unresolved = ImageOutcome::Unresolved {
            image: "app:1".into(),
            reason: "connection refused".into(),
        };
        let mut settings = AdmissionSettings::default();
        let mut d = Decision::default();
        d.image("c", &pending, None, &settings);
        assert!(!d.allowed() && d.message().contains("try again shortly"));
        settings.pending = PendingPolicy::Warn;
        settings.unresolved = UnresolvedPolicy::Allow;
        let mut d = Decision::default();
        d.image("c", &pending, None, &settings);
        d.image("c", &unresolved, None, &settings);
        assert!(d.allowed());
        assert_eq!(d.warnings().len(), 2);
        assert!(d.warnings()[1].contains("connection refused"));
    }
}
