//! Progress bars on standard error, one per layer, only on a terminal.

use std::collections::HashMap;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use minehound::Progress;

pub struct LayerBars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl LayerBars {
    pub fn new() -> Self {
        LayerBars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
        }
    }
}

fn short(layer: &str) -> &str {
    let start = layer.find(':').map_or(0, |i| i + 1);
    &layer[start..(start + 12).min(layer.len())]
}

impl Progress for LayerBars {
    fn layer_started(&self, layer: &str, total: Option<u64>) {
        let bar = self.multi.add(ProgressBar::new(total.unwrap_or(0)));
        let template = if total.is_some() {
            "{prefix} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}"
        } else {
            "{prefix} {bytes} {bytes_per_sec}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_prefix(short(layer).to_string());
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(layer.to_string(), bar);
        }
    }

    fn layer_advanced(&self, layer: &str, bytes: u64) {
        if let Ok(bars) = self.bars.lock()
            && let Some(bar) = bars.get(layer)
        {
            bar.inc(bytes);
        }
    }

    fn layer_finished(&self, layer: &str) {
        if let Ok(mut bars) = self.bars.lock()
            && let Some(bar) = bars.remove(layer)
        {
            bar.finish_and_clear();
        }
    }
}
