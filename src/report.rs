//! The report of `convert --report` (JSON, or HTML through [`crate::html`]) and the short
//! human summary.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::activations::{Activations, Quantiles};
use crate::channels::ChannelPlan;
use crate::execute::Outcome;
use crate::gguf::TensorInfo;
use crate::html::Page;
use crate::kernels::{Axis, Pattern};
use crate::plan::{Action, OptionsSummary, Plan, PruneStep, RefitRecord, StatsRecord, Zeroed};
use crate::rules::Groups;

/// What happened to one pruned tensor: a row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct PrunedTensor {
    pub name: String,
    pub role: &'static str,
    pub score: &'static str,
    pub grouping: String,
    pub in_type: String,
    pub out_type: String,
    pub matrices: usize,
    pub elements: u64,
    pub zeroed: u64,
    pub sparsity: f64,
}

impl PrunedTensor {
    /// The row of tensor `info`, pruned by `step`.
    pub fn new(info: &TensorInfo, step: &PruneStep) -> Self {
        let rule = &step.rule;
        let grouping = match (rule.groups, step.pattern) {
            (Groups::Matrix, _) => "matrix".to_string(),
            (Groups::Along(Axis::Row), Pattern::Unstructured { .. }) => "row".to_string(),
            (Groups::Along(Axis::Column), Pattern::Unstructured { .. }) => "column".to_string(),
            (Groups::Along(Axis::Row), Pattern::NM { n, m }) => {
                format!("{n}:{m} along rows (input dimension)")
            }
            (Groups::Along(Axis::Column), Pattern::NM { n, m }) => {
                format!("{n}:{m} along columns (output dimension)")
            }
        };
        let elements = info.n_elements();
        PrunedTensor {
            name: info.name.clone(),
            role: step.role.name(),
            score: rule.score.name(),
            grouping,
            in_type: info.ty.to_string(),
            out_type: step.out_type.to_string(),
            matrices: rule.matrices,
            elements,
            zeroed: step.zeroed,
            sparsity: Zeroed {
                zeroed: step.zeroed,
                weights: elements,
            }
            .sparsity(),
        }
    }
}

/// Totals over the pruned tensors.
#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    pub pruned_tensors: usize,
    pub copied_tensors: usize,
    pub weights_in_pruned_tensors: u64,
    pub zeroed: u64,
    /// `zeroed / weights_in_pruned_tensors`.
    pub sparsity: f64,
    pub output_bytes: u64,
}

/// One block's channels in the report.
#[derive(Debug, Clone, Serialize)]
pub struct LayerChannels {
    pub block: u32,
    pub channels: usize,
    pub kept: usize,
    /// The share of the block's total channel score held by the removed channels.
    pub removed_score_share: f64,
    /// The spread of the block's channel scores.
    pub score_quantiles: Option<Quantiles>,
    /// The highest score among the removed channels (where the cut fell).
    pub highest_removed_score: Option<f64>,
    /// The lowest score among the kept channels.
    pub lowest_kept_score: Option<f64>,
}

/// What channel removal did.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelReport {
    pub score: &'static str,
    pub allocation: &'static str,
    pub original_width: usize,
    pub target: f64,
    pub width_multiple: usize,
    pub width: usize,
    pub layers: Vec<LayerChannels>,
}

impl ChannelReport {
    fn new(c: &ChannelPlan) -> Self {
        ChannelReport {
            score: c.options.score.name(),
            allocation: c.options.allocation.name(),
            original_width: c.n_ff,
            target: c.target,
            width_multiple: c.options.multiple,
            width: c.width,
            layers: c
                .blocks
                .iter()
                .map(|b| LayerChannels {
                    block: b.block,
                    channels: b.n_ff,
                    kept: b.kept.len(),
                    removed_score_share: b.removed_score_share,
                    score_quantiles: b.scores,
                    highest_removed_score: b.highest_removed,
                    lowest_kept_score: b.lowest_kept,
                })
                .collect(),
        }
    }
}

impl fmt::Display for ChannelReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mean = if self.layers.is_empty() {
            0.0
        } else {
            self.layers
                .iter()
                .map(|l| l.removed_score_share)
                .sum::<f64>()
                / self.layers.len() as f64
        };
        let kept: usize = self.layers.iter().map(|l| l.kept).sum();
        let widths = if self.allocation == "uniform" {
            format!("{} in each of {} blocks", self.width, self.layers.len())
        } else {
            let min = self.layers.iter().map(|l| l.kept).min().unwrap_or(0);
            format!(
                "{kept} over {} blocks, {min} to {} per block (deci)",
                self.layers.len(),
                self.width
            )
        };
        writeln!(
            f,
            "feed-forward channels: kept {widths} of {} (target {:.1} per block, rounded to a multiple of {}); score {}; the removed channels held {:.2}% of the score on average",
            self.original_width,
            self.target,
            self.width_multiple,
            self.score,
            100.0 * mean
        )
    }
}

/// Everything `convert --report` writes.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool: String,
    pub input: Vec<String>,
    pub output: String,
    pub imatrix: Option<String>,
    /// The statistics file, when one was given.
    pub stats: Option<StatsRecord>,
    pub options: OptionsSummary,
    /// What was refitted with the statistics file's second moments.
    pub refit: Option<RefitRecord>,
    /// Channel removal, when asked for.
    pub channels: Option<ChannelReport>,
    pub tensors: Vec<PrunedTensor>,
    pub totals: Totals,
    /// The imatrix per layer and role, when one was given.
    pub activations: Option<Activations>,
    pub seconds: f64,
    pub threads: usize,
    pub simd: &'static str,
}

impl Report {
    /// Builds the report of a finished conversion.
    pub fn new(
        input: Vec<String>,
        output: String,
        imatrix: Option<String>,
        plan: &Plan,
        outcome: Outcome,
        activations: Option<Activations>,
    ) -> Self {
        let totals = plan.totals();
        let tensors: Vec<PrunedTensor> = plan
            .tensors
            .iter()
            .filter_map(|t| match &t.action {
                Action::Prune(step) => Some(PrunedTensor::new(t.cut_info(), step)),
                Action::Copy => None,
            })
            .collect();
        Report {
            tool: format!("dass-gguf {}", env!("CARGO_PKG_VERSION")),
            input,
            output,
            imatrix,
            stats: plan.stats.clone(),
            options: plan.options_summary.clone(),
            refit: plan.refit.clone(),
            channels: plan.channels.as_ref().map(ChannelReport::new),
            totals: Totals {
                pruned_tensors: outcome.pruned,
                copied_tensors: outcome.copied,
                weights_in_pruned_tensors: totals.weights,
                zeroed: totals.zeroed,
                sparsity: totals.sparsity(),
                output_bytes: outcome.output_bytes,
            },
            tensors,
            activations,
            seconds: outcome.seconds,
            threads: rayon::current_num_threads(),
            simd: crate::kernels::simd_level(),
        }
    }
}

/// What a report file holds, by its extension: `.html` / `.htm` a page, anything else JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Json,
    Html,
}

impl ReportFormat {
    pub fn of(path: &Path) -> ReportFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm") => {
                ReportFormat::Html
            }
            _ => ReportFormat::Json,
        }
    }
}

impl Report {
    /// The HTML page of this report.
    pub fn html_page(&self) -> Page<'_> {
        let t = &self.totals;
        let mut facts = vec![
            ("tool".to_string(), self.tool.clone()),
            ("input".to_string(), self.input.join(", ")),
            ("output".to_string(), self.output.clone()),
            (
                "imatrix".to_string(),
                self.imatrix.clone().unwrap_or_else(|| "none".into()),
            ),
            (
                "method".to_string(),
                match &self.options.auto {
                    Some(_) => format!("{} (chosen by auto)", self.options.method),
                    None => self.options.method.to_string(),
                },
            ),
            ("pattern".to_string(), self.options.pattern.clone()),
            (
                "zeroed".to_string(),
                if t.pruned_tensors == 0 {
                    format!("nothing; {} tensors copied or cut", t.copied_tensors)
                } else {
                    format!(
                        "{} of {} weights in {} pruned tensors ({:.2}%); {} tensors copied",
                        t.zeroed,
                        t.weights_in_pruned_tensors,
                        t.pruned_tensors,
                        100.0 * t.sparsity,
                        t.copied_tensors
                    )
                },
            ),
        ];
        if let Some(c) = &self.channels {
            let kept: usize = c.layers.iter().map(|l| l.kept).sum();
            let before: usize = c.layers.iter().map(|l| l.channels).sum();
            facts.push((
                "feed-forward channels".to_string(),
                format!(
                    "kept {kept} of {before} (score {}, {})",
                    c.score, c.allocation
                ),
            ));
        }
        if let Some(r) = &self.refit {
            facts.push((
                "refitted".to_string(),
                format!(
                    "{} tensors ({}, damp {}) with the second moments of {}",
                    r.tensors.len(),
                    r.method,
                    r.damp,
                    self.stats
                        .as_ref()
                        .map_or("the statistics file", |s| &s.file)
                ),
            ));
        }
        facts.push((
            "output size".to_string(),
            format!(
                "{} bytes ({:.1} MiB)",
                t.output_bytes,
                t.output_bytes as f64 / (1 << 20) as f64
            ),
        ));
        facts.push((
            "time".to_string(),
            format!(
                "{:.2} s on {} threads ({})",
                self.seconds, self.threads, self.simd
            ),
        ));
        Page {
            title: format!("dass-gguf report: {}", self.output),
            facts,
            report: Some(self),
            activations: None,
            sweep: None,
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.totals;
        if let Some(c) = &self.channels {
            write!(f, "{}: {c}", self.output)?;
        }
        if t.pruned_tensors == 0 && self.options.method == "none" && self.channels.is_some() {
            // Channels removed, nothing zeroed: the line above says it all.
        } else if t.pruned_tensors == 0 && self.options.method == "none" {
            // A checkpoint converted without pruning.
            writeln!(
                f,
                "{}: converted {} tensors, nothing pruned",
                self.output, t.copied_tensors
            )?;
        } else {
            writeln!(
                f,
                "{}: {} {} over {} tensors: zeroed {} of {} weights ({:.2}%), {} tensors copied",
                self.output,
                self.options.method,
                self.options.pattern,
                t.pruned_tensors,
                t.zeroed,
                t.weights_in_pruned_tensors,
                100.0 * t.sparsity,
                t.copied_tensors
            )?;
        }
        if let Some(r) = &self.refit {
            writeln!(
                f,
                "{}: refitted {} tensors with the second moments of {} ({}, damp {})",
                self.output,
                r.tensors.len(),
                self.stats
                    .as_ref()
                    .map_or("the statistics file", |s| &s.file),
                r.method,
                r.damp
            )?;
        }
        writeln!(
            f,
            "wrote {:.1} MiB in {:.2} s ({} threads, {})",
            t.output_bytes as f64 / (1 << 20) as f64,
            self.seconds,
            self.threads,
            self.simd
        )
    }
}
