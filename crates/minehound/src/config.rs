//! Evidence in the image config: an `Entrypoint`/`Cmd` that starts a miner,
//! `Env` values naming a pool and wallet, history lines that fetch and run one.
//! The config text goes through the same text rules as files in the layers.

use minehound_detect::{Detection, Detector, FileKind, IMAGE_CONFIG_RULE, Severity, hidden_path};
use minehound_oci::Image;
use minehound_report::{Finding, LayerRef, Status};

/// Prefix of the path of a config finding: `<image config>/Entrypoint+Cmd`,
/// `<image config>/Env`, `<image config>/history[N]`.
pub const IMAGE_CONFIG_PATH: &str = "<image config>";

/// The field name of the command the image runs.
const COMMAND_FIELD: &str = "Entrypoint+Cmd";

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
    let command: Vec<&str> = process
        .entrypoint
        .iter()
        .chain(&process.cmd)
        .map(String::as_str)
        .collect();
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

/// Runs the text rules on the image's config and turns what they find into
/// findings: medium and above become [`IMAGE_CONFIG_RULE`] at `high` or more
/// (a config that starts or fetches a miner runs it in every container);
/// weaker evidence keeps its own rule.
pub(crate) fn config_findings(image: &Image, detector: &mut Detector<'_>) -> Vec<Finding> {
    let platform = image.platform.as_ref().map(|p| p.to_string());
    let mut out = Vec::new();
    for part in parts(image) {
        let detections = match detector.check_file(FileKind::Text, part.text.as_bytes(), false) {
            Ok(checked) => checked.detections,
            // A config line too hostile for the scanner is reported as such.
            Err(err) => vec![Detection {
                rule: IMAGE_CONFIG_RULE.into(),
                detector: "config",
                severity: Severity::Info,
                family: None,
                description: format!("could not check: {err}"),
            }],
        };
        // A command that runs a program from a hiding place: supporting
        // evidence, low alone.
        let mut detections = detections;
        if part.field == COMMAND_FIELD
            && let Some(hidden) = part
                .text
                .split(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | '|' | '\'' | '"'))
                .filter(|word| word.starts_with('/'))
                .find_map(|word| hidden_path(word, FileKind::Script, &detections))
        {
            detections.push(hidden);
        }
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
            let (rule, severity, description) = if d.severity >= Severity::Medium {
                (
                    IMAGE_CONFIG_RULE.to_string(),
                    d.severity.max(Severity::High),
                    format!(
                        "image config {} fetches or starts a miner or names its pool or wallet ({}: {})",
                        part.field, d.rule, d.description
                    ),
                )
            } else {
                (d.rule, d.severity, d.description)
            };
            out.push(Finding {
                rule,
                detector: "config".into(),
                severity,
                family: d.family,
                path: format!("{IMAGE_CONFIG_PATH}/{}", part.field),
                status: Status::Present,
                layer: layer_ref.clone(),
                sha256: None,
                size: part.text.len() as u64,
                platform: platform.clone(),
                description,
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
