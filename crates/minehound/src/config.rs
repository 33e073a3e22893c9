//! Evidence in the image config: an `Entrypoint`/`Cmd` that starts a miner,
//! `Env` values naming a pool and wallet, history lines that fetch and run one.
//! The config text goes through the same text rules as files in the layers.

use minehound_detect::{
    Detection, Detector, FileKind, IMAGE_CONFIG_RULE, LAUNCH_RULE, Severity, hidden_path,
};
use minehound_oci::Image;
use minehound_report::{Finding, LayerRef, Status};

/// Prefix of the path of a config finding: `<image config>/Entrypoint+Cmd`,
/// `<image config>/Env`, `<image config>/history[N]`.
pub const IMAGE_CONFIG_PATH: &str = "<image config>";

/// The field name of the command the image runs.
pub(crate) const COMMAND_FIELD: &str = "Entrypoint+Cmd";

/// One piece of config text and where it sits.
struct Part {
    field: String,
    text: String,
    /// The layer a history line made, when it made one.
    layer: Option<usize>,
}

fn parts(image: &Image) -> Vec<Part> {
    let process = &image.process;
    let mut out = Vec::new();
    let command = process.command();
    if !command.is_empty() {
        out.push(Part {
            field: COMMAND_FIELD.into(),
            text: command.join(" "),
            layer: None,
        });
    }
    if !process.env.is_empty() {
        out.push(Part {
            field: "Env".into(),
            text: process.env.join("\n"),
            layer: None,
        });
    }
    for (index, line) in process.history.iter().enumerate() {
        out.push(Part {
            field: format!("history[{index}]"),
            text: line.created_by.clone(),
            layer: line.layer,
        });
    }
    out
}

/// What the text rules say of one piece of launch text: `what` names it in
/// descriptions (`image config Env`), `command` says it is a command line.
/// Medium and above becomes `rule` at `high` or more (text that starts or
/// fetches a miner runs it in every container); weaker evidence keeps its own
/// rule; a command that runs a program from a hiding place adds that
/// evidence. The image config and a container's launch details share it.
pub(crate) fn launch_detections(
    detector: &mut Detector<'_>,
    rule: &str,
    what: &str,
    text: &str,
    command: bool,
) -> Vec<Detection> {
    let mut detections = match detector.check_file(FileKind::Text, text.as_bytes(), false) {
        Ok(checked) => checked.detections,
        // Text too hostile for the scanner is reported as such.
        Err(err) => vec![Detection {
            rule: rule.into(),
            detector: "config",
            severity: Severity::Info,
            family: None,
            description: format!("could not check: {err}"),
        }],
    };
    // A command that runs a program from a hiding place: supporting
    // evidence, low alone.
    if command
        && let Some(hidden) = text
            .split(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | '|' | '\'' | '"'))
            .filter(|word| word.starts_with('/'))
            .find_map(|word| hidden_path(word, FileKind::Script, &detections))
    {
        detections.push(hidden);
    }
    for d in &mut detections {
        if d.severity >= Severity::Medium {
            d.description = format!(
                "{what} fetches or starts a miner or names its pool or wallet ({}: {})",
                d.rule, d.description
            );
            d.rule = rule.to_string();
            d.severity = d.severity.max(Severity::High);
        }
    }
    detections
}

impl crate::Scanner {
    /// Checks how a container is launched, with the text rules the image
    /// config goes through: `what` names the text in descriptions
    /// (`container "app" command`), `command` says it is a command line (so
    /// a program run from a hiding place counts too). What the rules find at
    /// medium or above comes back as [`LAUNCH_RULE`] at `high` or more.
    /// Admission webhooks call it for a pod's `command`, `args`, `env`, hooks
    /// and probes.
    ///
    /// ```
    /// let scanner = minehound::ScannerBuilder::new().jobs(1).build()?;
    /// let found = scanner.check_launch(
    ///     "container \"app\" command",
    ///     "sh -c ./xmrig -o stratum+tcp://pool.supportxmr.com:3333 -u 41vHA8Yx8aAV78UZXmhdJ1T8iX8Tyzaikg2ntQ15VHR6fFJDjJpZctt27AoKa1DVJ727yPDqPa2wLh1hZMEUbB1RHwGN28L --donate-level 1",
    ///     true,
    /// );
    /// assert!(found.iter().any(|d| d.rule == minehound::LAUNCH_RULE));
    /// # Ok::<(), minehound::Error>(())
    /// ```
    ///
    /// A check that panics (a crafted text) is contained: it answers one
    /// `high` detection saying so, since a launch that could not be checked
    /// must not pass.
    pub fn check_launch(&self, what: &str, text: &str, command: bool) -> Vec<Detection> {
        let mut detector = self.detector();
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            launch_detections(&mut detector, LAUNCH_RULE, what, text, command)
        }));
        checked.unwrap_or_else(|panic| {
            vec![Detection {
                rule: LAUNCH_RULE.to_string(),
                detector: "config",
                severity: Severity::High,
                family: None,
                description: format!(
                    "internal error in the {} while checking the {what}: {}; it was not checked, so it is not trusted",
                    detector.stage().component(),
                    crate::panic_message(&*panic)
                ),
            }]
        })
    }
}

/// Runs the text rules on the image's config and turns what they find into
/// findings (see [`launch_detections`]).
pub(crate) fn config_findings(image: &Image, detector: &mut Detector<'_>) -> Vec<Finding> {
    let platform = image.platform.as_ref().map(|p| p.to_string());
    let mut out = Vec::new();
    for part in parts(image) {
        let detections = launch_detections(
            detector,
            IMAGE_CONFIG_RULE,
            &format!("image config {}", part.field),
            &part.text,
            part.field == COMMAND_FIELD,
        );
        let top = image.layers.len().saturating_sub(1);
        let layer = image.layers.get(part.layer.unwrap_or(top));
        let layer_ref = LayerRef {
            index: layer.map_or(0, |l| l.index),
            digest: layer.and_then(|l| l.display_digest()).map(str::to_string),
            created_by: if part.field.starts_with("history") {
                Some(part.text.clone())
            } else {
                layer.and_then(|l| l.created_by.clone())
            },
        };
        for d in detections {
            out.push(Finding {
                rule: d.rule,
                detector: "config".into(),
                severity: d.severity,
                family: d.family,
                path: format!("{IMAGE_CONFIG_PATH}/{}", part.field),
                status: Status::Present,
                layer: layer_ref.clone(),
                sha256: None,
                size: part.text.len() as u64,
                platform: platform.clone(),
                description: d.description,
                suppression: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use minehound_oci::{BlobLocation, HistoryLine, ImageProcess, Layer};

    #[test]
    fn history_lines_point_at_the_layer_they_made() {
        let layer = |index| Layer {
            index,
            location: BlobLocation::ArchivePath(format!("l{index}")),
            digest: Some(format!("sha256:{index}")),
            diff_id: None,
            media_type: None,
            size: None,
            created_by: None,
        };
        let line = |text: &str, layer| HistoryLine {
            created_by: text.into(),
            layer,
        };
        let image = Image {
            reference: None,
            manifest_digest: None,
            config_digest: None,
            platform: None,
            config: Vec::new(),
            process: ImageProcess {
                entrypoint: vec!["/app".into()],
                cmd: Vec::new(),
                env: vec!["A=1".into()],
                working_dir: None,
                history: vec![
                    line("ADD x /", Some(0)),
                    line("ENV A=1", None),
                    line("RUN make", Some(1)),
                ],
            },
            layers: vec![layer(0), layer(1)],
        };
        let parts = parts(&image);
        let fields: Vec<_> = parts.iter().map(|p| (p.field.as_str(), p.layer)).collect();
        assert_eq!(
            fields,
            [
                ("Entrypoint+Cmd", None),
                ("Env", None),
                ("history[0]", Some(0)),
                ("history[1]", None),
                ("history[2]", Some(1)),
            ]
        );
    }
}
