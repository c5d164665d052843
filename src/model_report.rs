//! `dass-gguf report`: the report of a model before (or after) pruning, from its imatrix and a
//! sweep's results, without converting anything. The page is the one `convert --report
//! FILE.html` writes, less the parts only a conversion knows.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::activations::Activations;
use crate::error::{Error, Result};
use crate::gguf::{GgufModel, Value};
use crate::html::Page;
use crate::imatrix::Imatrix;
use crate::output_file::write_whole;
use crate::report::ReportFormat;
use crate::sweep;

/// What to report on.
pub struct ModelReportRequest {
    /// A GGUF model (any shard of a split model).
    pub model: PathBuf,
    pub imatrix: Option<PathBuf>,
    /// The JSON `sweep --json` wrote.
    pub sweep: Option<PathBuf>,
    /// The page (`.html`) or JSON file to write.
    pub output: PathBuf,
}

/// The JSON form of the report.
#[derive(Serialize)]
struct ModelReport<'a> {
    tool: String,
    model: Vec<String>,
    facts: &'a [(String, String)],
    imatrix: Option<String>,
    activations: Option<&'a Activations>,
    sweep: Option<&'a sweep::Outcome>,
}

/// Reads the inputs, checks that the imatrix belongs to the model, and writes the report.
pub fn write_model_report(r: &ModelReportRequest) -> Result<()> {
    if r.model.is_dir() {
        return Err(Error::Usage(format!(
            "{}: a directory; report reads GGUF models (for a checkpoint, `convert --report \
             FILE.html` writes the report of its conversion)",
            r.model.display()
        )));
    }
    let model = GgufModel::open(&r.model)?;
    let mut inputs: Vec<PathBuf> = model
        .shards()
        .iter()
        .map(|s| s.path().to_path_buf())
        .collect();
    let imatrix = match &r.imatrix {
        Some(p) => {
            let im = Imatrix::open(p)?;
            check_imatrix(&model, &im, p)?;
            inputs.push(p.clone());
            Some(im)
        }
        None => None,
    };
    let sweep = match &r.sweep {
        Some(p) => {
            inputs.push(p.clone());
            Some(read_sweep(p)?)
        }
        None => None,
    };
    let activations = imatrix.as_ref().map(Activations::of);
    let mut facts = model_facts(&model);
    if let (Some(p), Some(im)) = (&r.imatrix, &imatrix) {
        let mut about = format!("{} ({} entries", p.display(), im.entries.len());
        if let Some(n) = im.chunk_count {
            about += &format!(", {n} chunks");
        }
        if let Some(n) = im.chunk_size {
            about += &format!(" of {n} tokens");
        }
        facts.push(("imatrix".into(), about + ")"));
    }
    let model_names: Vec<String> = inputs
        .iter()
        .take(model.shards().len())
        .map(|p| p.display().to_string())
        .collect();
    let text = match ReportFormat::of(&r.output) {
        ReportFormat::Html => Page {
            title: format!("dass-gguf report: {}", r.model.display()),
            facts,
            report: None,
            activations: activations.as_ref(),
            sweep: sweep.as_ref(),
        }
        .render()?,
        ReportFormat::Json => {
            let json = ModelReport {
                tool: format!("dass-gguf {}", env!("CARGO_PKG_VERSION")),
                model: model_names,
                facts: &facts,
                imatrix: r.imatrix.as_ref().map(|p| p.display().to_string()),
                activations: activations.as_ref(),
                sweep: sweep.as_ref(),
            };
            serde_json::to_string_pretty(&json)
                .map_err(|e| Error::Usage(format!("encoding the report: {e}")))?
                + "\n"
        }
    };
    let refs: Vec<&Path> = inputs.iter().map(|p| p.as_path()).collect();
    write_whole(&r.output, text.as_bytes(), &refs, true)
}

/// Every `blk.*` entry of the imatrix must be a weight of the model with as many input
/// columns (per expert) as the entry has values.
fn check_imatrix(model: &GgufModel, im: &Imatrix, path: &Path) -> Result<()> {
    let tensors: std::collections::HashMap<&str, &crate::gguf::TensorInfo> =
        model.tensors().map(|(_, t)| (t.name.as_str(), t)).collect();
    for e in im.entries.values().filter(|e| e.name.starts_with("blk.")) {
        let Some(t) = tensors.get(e.name.as_str()) else {
            return Err(Error::Imatrix(format!(
                "{}: entry '{}' names no tensor of {} (is it the imatrix of another model?)",
                path.display(),
                e.name,
                model.shards()[0].path().display()
            )));
        };
        e.per_expert(t.row_len() as usize).map_err(|err| {
            Error::Imatrix(format!(
                "{}: entry '{}' does not fit the tensor {:?} of the model: {err}",
                path.display(),
                e.name,
                t.dims
            ))
        })?;
    }
    Ok(())
}

fn read_sweep(path: &Path) -> Result<sweep::Outcome> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    let outcome: sweep::Outcome = serde_json::from_slice(&bytes).map_err(|e| {
        Error::Usage(format!(
            "{}: not the JSON `sweep --json` writes: {e}",
            path.display()
        ))
    })?;
    if outcome.best >= outcome.candidates.len() {
        return Err(Error::Usage(format!(
            "{}: best is candidate {} of {}",
            path.display(),
            outcome.best,
            outcome.candidates.len()
        )));
    }
    Ok(outcome)
}

/// The model's name, shape and any `dass.*` record, for the summary table.
fn model_facts(model: &GgufModel) -> Vec<(String, String)> {
    let shards = model.shards();
    let size: u64 = shards
        .iter()
        .map(|s| std::fs::metadata(s.path()).map(|m| m.len()).unwrap_or(0))
        .sum();
    let mut facts = vec![(
        "model".to_string(),
        format!(
            "{}{} ({:.1} MB, {} tensors)",
            shards[0].path().display(),
            if shards.len() > 1 {
                format!(" and {} more shards", shards.len() - 1)
            } else {
                String::new()
            },
            size as f64 / 1e6,
            model.tensors().count()
        ),
    )];
    let show = |key: &str| {
        model
            .get(key)
            .and_then(|e| e.value().ok())
            .map(|v| short(&v))
    };
    let arch = model
        .get("general.architecture")
        .and_then(|e| e.as_str().ok())
        .unwrap_or_default();
    for (label, key) in [
        ("name", "general.name".to_string()),
        ("architecture", "general.architecture".to_string()),
        ("blocks", format!("{arch}.block_count")),
        ("embedding width", format!("{arch}.embedding_length")),
        ("feed-forward width", format!("{arch}.feed_forward_length")),
    ] {
        if let Some(v) = show(&key) {
            facts.push((label.to_string(), v));
        }
    }
    for e in model
        .metadata()
        .iter()
        .filter(|e| e.key.starts_with("dass."))
    {
        if let Ok(v) = e.value() {
            facts.push((e.key.clone(), short(&v)));
        }
    }
    facts
}

/// A metadata value in one short line (long arrays cut).
fn short(v: &Value) -> String {
    match v {
        Value::String(s) => String::from_utf8_lossy(s).into_owned(),
        other => other.to_string(),
    }
}
