//! The JSON report of `convert --report` and the short human summary.

use std::fmt;

use serde::Serialize;

use crate::convert::{Outcome, PrunedTensor};
use crate::plan::{OptionsSummary, Plan};

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

/// Everything `convert --report` writes.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool: String,
    pub input: Vec<String>,
    pub output: String,
    pub imatrix: Option<String>,
    pub options: OptionsSummary,
    pub tensors: Vec<PrunedTensor>,
    pub totals: Totals,
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
    ) -> Self {
        let (zeroed, total) = plan.totals();
        Report {
            tool: format!("dass-gguf {}", env!("CARGO_PKG_VERSION")),
            input,
            output,
            imatrix,
            options: plan.options_summary.clone(),
            totals: Totals {
                pruned_tensors: outcome.pruned.len(),
                copied_tensors: outcome.copied,
                weights_in_pruned_tensors: total,
                zeroed,
                sparsity: if total == 0 {
                    0.0
                } else {
                    zeroed as f64 / total as f64
                },
                output_bytes: outcome.output_bytes,
            },
            tensors: outcome.pruned,
            seconds: outcome.seconds,
            threads: rayon::current_num_threads(),
            simd: crate::kernels::simd_level(),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.totals;
        if t.pruned_tensors == 0 && self.options.method == "none" {
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
