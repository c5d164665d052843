//! `sweep`: which pruning settings suit the user's own model, measured. Every candidate is
//! converted as `convert` would convert it, measured with the user's `llama-perplexity` on the
//! user's text (the same text, context and chunks for every candidate and for the model as it
//! is), and the table says which is best and whether the difference is within the noise
//! llama-perplexity prints. The candidates' files live in a temporary directory that is removed
//! whatever happens; with `apply`, the best one is moved to its final name.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::convert::{Job, Request};
use crate::error::{Error, Result};
use crate::execute::Progress;
use crate::imatrix::ImatrixFormat;
use crate::imatrix_cut;
use crate::output_file::{check_target, parent_dir, sweep_dir_prefix};
use crate::perplexity::{Measured, Perplexity};
use crate::plan;

/// The label of the model as it is, measured first.
const AS_IT_IS: &str = "the model as it is";

/// One setting to try: a label (the options as the user would type them) and the options.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub label: String,
    pub options: plan::Options,
}

/// What to sweep.
pub struct SweepRequest {
    /// A GGUF model (any shard of a split model).
    pub input: PathBuf,
    pub imatrix: Option<PathBuf>,
    pub candidates: Vec<Candidate>,
    pub perplexity: Perplexity,
    /// Move the best candidate's file here (and its cut imatrix beside it).
    pub apply: Option<PathBuf>,
    /// Replace an existing `apply` file.
    pub force: bool,
}

/// Told about each step: measuring the input, then each candidate.
pub trait Steps {
    /// Step `label` begins, `done` of `total` being finished.
    fn step(&self, done: usize, total: usize, label: &str);
    /// A conversion's own progress.
    fn conversion(&self) -> &dyn Progress;
}

/// One measured model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub label: String,
    pub size_bytes: u64,
    #[serde(flatten)]
    pub measured: Measured,
    /// Converting and measuring, in seconds.
    pub seconds: f64,
}

/// The result of a sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub model: PathBuf,
    pub text: PathBuf,
    pub ctx: usize,
    pub chunks: Option<usize>,
    /// The input model as it is.
    pub baseline: Row,
    pub candidates: Vec<Row>,
    /// Index of the lowest perplexity in `candidates`.
    pub best: usize,
    /// Where the best candidate was written (`apply`).
    pub applied: Option<PathBuf>,
}

/// Runs the sweep: checks everything that can be checked first (the candidates' plans, the
/// `apply` path), then measures the input and every candidate in turn.
pub fn sweep(request: SweepRequest, steps: &dyn Steps) -> Result<Outcome> {
    if request.candidates.is_empty() {
        return Err(Error::Usage("sweep: no candidate settings to try".into()));
    }
    if request.input.is_dir() {
        return Err(Error::Usage(format!(
            "sweep measures a GGUF model, and {} is a directory: convert the checkpoint with \
             `dass-gguf convert` first",
            request.input.display()
        )));
    }
    let mut inputs = vec![request.input.as_path()];
    inputs.extend(request.imatrix.as_deref());
    if let Some(target) = &request.apply {
        check_target(target, &inputs, request.force)?;
    }
    // The candidates' files go beside the final output (so that the best can be renamed into
    // place), or to the system's temporary directory.
    let work = match request.apply.as_deref().map(parent_dir) {
        Some(dir) => tempfile::Builder::new()
            .prefix(&sweep_dir_prefix(true))
            .tempdir_in(dir)
            .map_err(|e| Error::io("creating a directory in", dir, e))?,
        None => tempfile::Builder::new()
            .prefix(&sweep_dir_prefix(false))
            .tempdir()
            .map_err(|e| Error::io("creating a directory in", std::env::temp_dir(), e))?,
    };
    let model_path = |i: usize| work.path().join(format!("candidate-{i}.gguf"));
    // Every plan first: a candidate that cannot be made fails before hours of measuring.
    let jobs = request
        .candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Job::prepare(Request {
                input: request.input.clone(),
                output: model_path(i),
                imatrix: request.imatrix.clone(),
                stats: None,
                options: c.options.clone(),
                pruning_requested: true,
                report: None,
                imatrix_out: None,
                dry_run: false,
                force: true,
            })
            .map_err(|e| candidate_error(&c.label, e))
        })
        .collect::<Result<Vec<_>>>()?;

    let total = request.candidates.len() + 1;
    steps.step(0, total, AS_IT_IS);
    let t0 = Instant::now();
    let baseline = Row {
        label: AS_IT_IS.into(),
        size_bytes: model_bytes(&request.input)?,
        measured: request.perplexity.measure(&request.input)?,
        seconds: t0.elapsed().as_secs_f64(),
    };

    let mut rows: Vec<Row> = Vec::new();
    // The best candidate so far: its index and files (the others are removed when measured).
    let mut best: Option<(usize, Files)> = None;
    for (i, (c, job)) in request.candidates.iter().zip(jobs).enumerate() {
        steps.step(i + 1, total, &c.label);
        let t0 = Instant::now();
        let files = Files {
            model: model_path(i),
            imatrix: job.cut_imatrix().map(|(f, p)| (f, p.to_path_buf())),
        };
        job.run(steps.conversion())
            .map_err(|e| candidate_error(&c.label, e))?;
        let measured = request
            .perplexity
            .measure(&files.model)
            .map_err(|e| candidate_error(&c.label, e))?;
        rows.push(Row {
            label: c.label.clone(),
            size_bytes: std::fs::metadata(&files.model)
                .map_err(|e| Error::io("reading the size of", &files.model, e))?
                .len(),
            measured,
            seconds: t0.elapsed().as_secs_f64(),
        });
        let better = best
            .as_ref()
            .is_none_or(|(b, _)| measured.ppl < rows[*b].measured.ppl);
        let loser = if better {
            best.replace((i, files)).map(|(_, f)| f)
        } else {
            Some(files)
        };
        if let Some(f) = loser {
            f.remove();
        }
    }
    let (best, best_files) = best.expect("at least one candidate");

    let applied = match &request.apply {
        Some(target) => {
            best_files.place(target)?;
            Some(target.clone())
        }
        None => None,
    };
    Ok(Outcome {
        model: request.input.clone(),
        text: request.perplexity.text.clone(),
        ctx: request.perplexity.ctx,
        chunks: request.perplexity.chunks,
        baseline,
        candidates: rows,
        best,
        applied,
    })
}

fn candidate_error(label: &str, e: Error) -> Error {
    Error::Candidate {
        label: label.to_string(),
        error: Box::new(e),
    }
}

/// The size of a model: its file, or all shards of a split model.
fn model_bytes(input: &Path) -> Result<u64> {
    Ok(crate::gguf::GgufModel::open(input)?.file_size())
}

/// A candidate's files: the model and, when channels were removed, its cut imatrix.
struct Files {
    model: PathBuf,
    imatrix: Option<(ImatrixFormat, PathBuf)>,
}

impl Files {
    /// Removes them (a failure only leaves them to the temporary directory's removal).
    fn remove(&self) {
        let _ = std::fs::remove_file(&self.model);
        if let Some((_, im)) = &self.imatrix {
            let _ = std::fs::remove_file(im);
        }
    }

    /// Moves them to `target` and the cut imatrix's usual place beside it: renames inside one
    /// file system, since the candidates were written beside `target`.
    fn place(&self, target: &Path) -> Result<()> {
        if let Some((format, im)) = &self.imatrix {
            let to = imatrix_cut::default_path(target, *format);
            std::fs::rename(im, &to).map_err(|e| Error::io("renaming", &to, e))?;
        }
        std::fs::rename(&self.model, target).map_err(|e| Error::io("renaming", target, e))
    }
}

impl Outcome {
    /// A Markdown table with the model as it is first, then a line on the best candidate.
    pub fn table(&self) -> String {
        let mut s = format!(
            "perplexity of {} on {} (-c {}{}), measured with llama-perplexity\n\n",
            self.model.display(),
            self.text.display(),
            self.ctx,
            self.chunks
                .map(|n| format!(", {n} chunks"))
                .unwrap_or_default()
        );
        s += "| settings | size (MB) | PPL | ± | vs. the model as it is |\n|---|---|---|---|---|\n";
        let row = |r: &Row, vs: String| {
            format!(
                "| {} | {:.1} | {:.4} | {:.4} | {vs} |\n",
                r.label,
                r.size_bytes as f64 / 1e6,
                r.measured.ppl,
                r.measured.plus_minus
            )
        };
        s += &row(&self.baseline, String::new());
        let base = self.baseline.measured.ppl;
        for (i, r) in self.candidates.iter().enumerate() {
            let mark = if i == self.best { " (best)" } else { "" };
            s += &row(
                r,
                format!("{:+.1}%{mark}", (r.measured.ppl / base - 1.0) * 100.0),
            );
        }
        let b = &self.candidates[self.best];
        s += &format!(
            "\nbest: {} (PPL {:.4} ± {:.4})",
            b.label, b.measured.ppl, b.measured.plus_minus
        );
        let close: Vec<&str> = self
            .candidates
            .iter()
            .enumerate()
            .filter(|(i, r)| {
                *i != self.best && r.measured.ppl - b.measured.ppl < b.measured.plus_minus
            })
            .map(|(_, r)| r.label.as_str())
            .collect();
        if !close.is_empty() {
            s += &format!(
                "; within its ± (the noise llama-perplexity estimates): {}",
                close.join(", ")
            );
        }
        s += "\n";
        if let Some(p) = &self.applied {
            s += &format!("written: {}\n", p.display());
        }
        s
    }
}
