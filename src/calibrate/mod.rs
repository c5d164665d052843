//! `dass-gguf calibrate`: run a model through llama.cpp itself (linked as a library, with an
//! evaluation callback as `llama-imatrix` uses) over calibration text, and keep the moments of
//! the feed-forward inputs, second-moment matrices included (docs/stats.md).
//!
//! The token stream is `llama-imatrix`'s: the text tokenized with the model's special tokens
//! added, cut into chunks of `ctx` tokens, the first token of each chunk replaced by BOS when
//! the model adds one, every chunk evaluated on its own with all outputs requested (so the
//! last block sees every token). Its diagonals are therefore the imatrix `llama-imatrix` writes.
//!
//! Only the part that calls llama.cpp needs the `calibrate` cargo feature; what it collects
//! ([`collector`]) and writes ([`write`]) is plain Rust.

pub mod collector;
#[cfg(feature = "calibrate")]
mod llama;
pub mod write;

use std::path::PathBuf;

use serde::Serialize;

#[cfg(feature = "calibrate")]
pub use run::run;

/// What to calibrate on and where the statistics go.
#[derive(Debug, Clone)]
pub struct CalibrateOptions {
    pub model: PathBuf,
    /// Calibration text, concatenated in this order.
    pub texts: Vec<PathBuf>,
    /// At most this many chunks (all the text gives when absent).
    pub chunks: Option<usize>,
    /// Tokens per chunk.
    pub ctx: usize,
    pub output: PathBuf,
    /// Also write the diagonals as a standard imatrix here.
    pub export_imatrix: Option<PathBuf>,
    /// Keep the attention inputs' matrices too.
    pub attention: bool,
    /// llama.cpp's threads (all cores when absent).
    pub threads: Option<usize>,
    pub quiet: bool,
    pub force: bool,
}

/// What a run did, for the summary and `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrateSummary {
    pub model: PathBuf,
    pub output: PathBuf,
    pub export_imatrix: Option<PathBuf>,
    pub chunks: usize,
    pub chunk_size: usize,
    pub tokens: u64,
    pub text_tokens: usize,
    pub seconds: f64,
    pub tokens_per_second: f64,
    /// Weights whose input moments were kept.
    pub weights: usize,
    /// Of those, how many with the whole second-moment matrix.
    pub matrices: usize,
    /// Bytes the sums took while collecting (f64).
    pub collect_bytes: u64,
    /// Bytes of the statistics file.
    pub output_bytes: u64,
}

/// Without the `calibrate` feature there is no llama.cpp to run.
#[cfg(not(feature = "calibrate"))]
pub fn run(_: &CalibrateOptions) -> crate::error::Result<CalibrateSummary> {
    Err(crate::error::Error::Calibrate(
        "this dass-gguf was built without llama.cpp: build it with \
         `cargo build --release --features calibrate` (README, \"Statistics for refitting\")"
            .into(),
    ))
}

#[cfg(feature = "calibrate")]
mod run {
    use std::time::Instant;

    use super::collector::{Collector, OuterPlan};
    use super::llama::{Llama, LlamaModel};
    use super::write::{write_imatrix, write_stats, StatsHeader};
    use super::{CalibrateOptions, CalibrateSummary};
    use crate::error::{Error, Result};
    use crate::gguf::GgufModel;
    use crate::output_file::check_target;

    /// `MemAvailable` of /proc/meminfo, in bytes (None where there is no such file).
    fn available_memory() -> Option<u64> {
        let text = std::fs::read_to_string("/proc/meminfo").ok()?;
        let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// Runs the model over the text and writes the statistics (and the imatrix, if asked).
    pub fn run(opts: &CalibrateOptions) -> Result<CalibrateSummary> {
        let inputs: Vec<&std::path::Path> = std::iter::once(opts.model.as_path())
            .chain(opts.texts.iter().map(|p| p.as_path()))
            .collect();
        check_target(&opts.output, &inputs, opts.force)?;
        if let Some(im) = &opts.export_imatrix {
            check_target(im, &inputs, opts.force)?;
            if im == &opts.output {
                return Err(Error::Usage(
                    "--export-imatrix must name another file than -o".into(),
                ));
            }
        }
        if opts.ctx < 16 {
            return Err(Error::Usage(format!(
                "--ctx {} is below 16: llama.cpp's batches of fewer than 16 tokens are not \
                 collected (as llama-imatrix)",
                opts.ctx
            )));
        }
        if opts.chunks == Some(0) {
            return Err(Error::Usage("--chunks 0 collects nothing".into()));
        }

        // What the file holds, read with our own reader: which inputs keep a matrix.
        let file = GgufModel::open(&opts.model)?;
        let tensors: Vec<_> = file.tensors().map(|(_, t)| t.clone()).collect();
        drop(file);
        let plan = OuterPlan::for_model(&tensors, opts.attention)?;
        let collect_bytes = plan.bytes();
        let matrices = plan.weights.len();
        if let Some(available) = available_memory() {
            if collect_bytes > available {
                return Err(Error::Calibrate(format!(
                    "the {matrices} second-moment matrices need {:.1} GiB while collecting \
                     (f64), and {:.1} GiB are available",
                    collect_bytes as f64 / (1u64 << 30) as f64,
                    available as f64 / (1u64 << 30) as f64
                )));
            }
        }

        let mut text = String::new();
        for p in &opts.texts {
            let bytes = std::fs::read(p).map_err(|e| Error::io("reading", p, e))?;
            let s = String::from_utf8(bytes).map_err(|e| {
                Error::Calibrate(format!(
                    "{}: not UTF-8 text (byte {})",
                    p.display(),
                    e.utf8_error().valid_up_to()
                ))
            })?;
            text.push_str(&s);
        }

        let llama = Llama::init();
        let model = LlamaModel::load(&llama, &opts.model)?;
        let tokens = model.tokenize(&text)?;
        let available = tokens.len() / opts.ctx;
        if available == 0 {
            return Err(Error::Calibrate(format!(
                "the text tokenizes to {} tokens, fewer than one chunk of {}",
                tokens.len(),
                opts.ctx
            )));
        }
        let n_chunks = opts.chunks.map_or(available, |c| c.min(available));
        if !opts.quiet {
            eprintln!(
                "calibrate: {} chunks of {} tokens; {} second-moment matrices, {:.1} MiB while \
                 collecting",
                n_chunks,
                opts.ctx,
                matrices,
                collect_bytes as f64 / (1u64 << 20) as f64
            );
        }

        let threads = opts
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let mut ctx = model.context(opts.ctx, threads, Collector::new(plan))?;
        let bar = crate::progress::tokens_bar(opts.quiet, (n_chunks * opts.ctx) as u64);
        let start = Instant::now();
        let bos = model.bos_if_added();
        for c in 0..n_chunks {
            let mut chunk = tokens[c * opts.ctx..(c + 1) * opts.ctx].to_vec();
            if let Some(bos) = bos {
                chunk[0] = bos;
            }
            ctx.eval_chunk(&chunk)?;
            bar.inc(opts.ctx as u64);
        }
        let seconds = start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let collector = ctx.into_collector();
        drop(model);
        let entries = collector.finish(&tensors)?;

        let header = StatsHeader {
            chunk_count: n_chunks as u32,
            chunk_size: opts.ctx as u32,
            datasets: opts.texts.iter().map(|p| p.display().to_string()).collect(),
            model: opts
                .model
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        write_stats(&opts.output, &inputs, &header, &entries, opts.force)?;
        if let Some(im) = &opts.export_imatrix {
            write_imatrix(im, &inputs, &header, &entries, opts.force)?;
        }
        let output_bytes = std::fs::metadata(&opts.output).map_or(0, |m| m.len());
        let tokens_done = (n_chunks * opts.ctx) as u64;
        Ok(CalibrateSummary {
            model: opts.model.clone(),
            output: opts.output.clone(),
            export_imatrix: opts.export_imatrix.clone(),
            chunks: n_chunks,
            chunk_size: opts.ctx,
            tokens: tokens_done,
            text_tokens: tokens.len(),
            seconds,
            tokens_per_second: tokens_done as f64 / seconds.max(1e-9),
            weights: entries.len(),
            matrices,
            collect_bytes,
            output_bytes,
        })
    }
}
