//! What `dass-gguf inspect` reports about a model GGUF, an imatrix or a safetensors file.
//!
//! Each report is a plain serialisable struct (for `--json`) with a `Display` for people.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

use crate::dequant::{can_dequantize, dequantize};
use crate::error::{Error, Result};
use crate::gguf::{GgufModel, TensorInfo, Value, GGUF_MAGIC};
use crate::imatrix::{Imatrix, ImatrixFormat};
use crate::mapped::MappedInput;
use crate::plan::Zeroed;

/// What kind of file a path holds, judged from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    GgufModel,
    GgufImatrix,
    LegacyImatrix,
    Safetensors,
}

/// Looks at the start of a file to tell what it is. GGUF files are told apart by
/// `general.type`; a file starting with an 8-byte length and `{` is safetensors; anything
/// else is tried as a legacy imatrix.
pub fn detect(path: &Path) -> Result<FileKind> {
    let mut head = [0u8; 9];
    let mut f = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let n = read_up_to(&mut f, &mut head).map_err(|e| Error::io("reading", path, e))?;
    if n >= 4 && head[..4] == GGUF_MAGIC {
        let model = GgufModel::open(path)?;
        let is_imatrix = model
            .get("general.type")
            .and_then(|kv| kv.as_str().ok())
            .is_some_and(|t| t == "imatrix" || t == crate::stats::STATS_TYPE);
        return Ok(if is_imatrix {
            FileKind::GgufImatrix
        } else {
            FileKind::GgufModel
        });
    }
    if n == 9 && head[8] == b'{' {
        return Ok(FileKind::Safetensors);
    }
    Ok(FileKind::LegacyImatrix)
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// One tensor row of a model report.
#[derive(Debug, Clone, Serialize)]
pub struct TensorRow {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub dims: Vec<u64>,
    pub bytes: u64,
    /// Fraction of elements exactly zero after dequantization (with `--zeros`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zero_fraction: Option<f64>,
}

/// Totals for one tensor type.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TypeTotal {
    pub tensors: u64,
    pub elements: u64,
    pub bytes: u64,
}

/// Everything `inspect` says about a model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    pub files: Vec<String>,
    pub version: u32,
    pub alignment: u64,
    pub architecture: Option<String>,
    /// `{arch}.*` keys plus a few general ones, decoded.
    pub hyperparameters: BTreeMap<String, serde_json::Value>,
    /// Every metadata key with its GGUF type and (arrays shortened) value.
    pub metadata: Vec<MetadataRow>,
    pub tensors: Vec<TensorRow>,
    pub totals_by_type: BTreeMap<String, TypeTotal>,
    pub total_elements: u64,
    pub total_bytes: u64,
}

/// A metadata key, its value type and value.
#[derive(Debug, Clone, Serialize)]
pub struct MetadataRow {
    pub key: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub value: serde_json::Value,
    #[serde(skip)]
    display: String,
}

const GENERAL_KEYS: [&str; 4] = [
    "general.name",
    "general.file_type",
    "general.quantization_version",
    "general.size_label",
];

/// Builds the report of a model. With `zeros`, every tensor is dequantized to count exact
/// zeros; `progress` is called with the bytes of each finished chunk.
pub fn inspect_model(
    model: &GgufModel,
    zeros: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ModelReport> {
    let first = model.shards()[0].header();
    let architecture = first.architecture();
    let mut metadata = Vec::new();
    let mut hyperparameters = BTreeMap::new();
    for kv in model.metadata() {
        let value = kv.value()?;
        let is_hparam = GENERAL_KEYS.contains(&kv.key.as_str())
            || architecture
                .as_ref()
                .is_some_and(|a| kv.key.starts_with(&format!("{a}.")));
        if is_hparam {
            hyperparameters.insert(kv.key.clone(), value.to_json(64));
        }
        if kv.key == "tokenizer.ggml.tokens" {
            if let Value::Array(_, items) = &value {
                hyperparameters.insert("vocab_size".into(), items.len().into());
            }
        }
        let ty = match &value {
            Value::Array(elem, _) => format!("array[{elem}]"),
            v => v.value_type().to_string(),
        };
        metadata.push(MetadataRow {
            key: kv.key.clone(),
            ty,
            value: value.to_json(16),
            display: value.to_string(),
        });
    }

    let infos: Vec<_> = model.tensors().collect();
    let zero_fractions: Vec<Option<f64>> = if zeros {
        infos
            .iter()
            .map(|(r, t)| zero_fraction(t, model.tensor_data(*r), progress).map(Some))
            .collect::<Result<_>>()?
    } else {
        vec![None; infos.len()]
    };
    let mut totals_by_type: BTreeMap<String, TypeTotal> = BTreeMap::new();
    let mut tensors = Vec::with_capacity(infos.len());
    for ((_, t), zero_fraction) in infos.iter().zip(zero_fractions) {
        let total = totals_by_type.entry(t.ty.to_string()).or_default();
        total.tensors += 1;
        total.elements += t.n_elements();
        total.bytes += t.n_bytes;
        tensors.push(TensorRow {
            name: t.name.clone(),
            ty: t.ty.to_string(),
            dims: t.dims.clone(),
            bytes: t.n_bytes,
            zero_fraction,
        });
    }
    Ok(ModelReport {
        files: model
            .shards()
            .iter()
            .map(|s| s.path().display().to_string())
            .collect(),
        version: first.version,
        alignment: first.alignment,
        architecture,
        hyperparameters,
        metadata,
        total_elements: totals_by_type.values().map(|t| t.elements).sum(),
        total_bytes: totals_by_type.values().map(|t| t.bytes).sum(),
        tensors,
        totals_by_type,
    })
}

/// Elements dequantized per work item when counting zeros: bounded memory per thread.
const ZERO_CHUNK_ELEMENTS: u64 = 1 << 16;

/// Fraction of a tensor's elements that are exactly zero (either sign) after dequantization.
pub fn zero_fraction(t: &TensorInfo, data: &[u8], progress: &(dyn Fn(u64) + Sync)) -> Result<f64> {
    if !can_dequantize(t.ty) {
        return Err(Error::CannotDequantize {
            tensor: t.name.clone(),
            ty: t.ty,
        });
    }
    let blocks_per_chunk = (ZERO_CHUNK_ELEMENTS / t.ty.block_size()).max(1);
    let chunk_bytes = (blocks_per_chunk * t.ty.type_size()) as usize;
    let zeros: u64 = data
        .par_chunks(chunk_bytes)
        .map_init(Vec::new, |buf: &mut Vec<f32>, chunk| {
            let n = chunk.len() as u64 / t.ty.type_size() * t.ty.block_size();
            buf.resize(n as usize, 0.0);
            dequantize(t.ty, chunk, buf).map_err(|e| Error::Tensor {
                tensor: t.name.clone(),
                message: e.to_string(),
            })?;
            progress(chunk.len() as u64);
            Ok(buf.iter().filter(|x| **x == 0.0).count() as u64)
        })
        .sum::<Result<u64>>()?;
    Ok(Zeroed {
        zeroed: zeros,
        weights: t.n_elements(),
    }
    .sparsity())
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

impl fmt::Display for ModelReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "GGUF model: {}", self.files.join(", "))?;
        writeln!(
            f,
            "  version {}, alignment {}, architecture {}",
            self.version,
            self.alignment,
            self.architecture.as_deref().unwrap_or("(none)")
        )?;
        writeln!(f, "\nHyperparameters:")?;
        for (k, v) in &self.hyperparameters {
            writeln!(f, "  {k:<48} {v}")?;
        }
        writeln!(f, "\nMetadata ({} keys):", self.metadata.len())?;
        for m in &self.metadata {
            let mut shown = m.display.clone();
            if shown.len() > 120 {
                let cut = (0..=117)
                    .rev()
                    .find(|i| shown.is_char_boundary(*i))
                    .unwrap_or(0);
                shown.truncate(cut);
                shown.push_str("...");
            }
            writeln!(f, "  {:<48} {:<14} {}", m.key, m.ty, shown)?;
        }
        let with_zeros = self.tensors.iter().any(|t| t.zero_fraction.is_some());
        writeln!(f, "\nTensors ({}):", self.tensors.len())?;
        write!(
            f,
            "  {:<40} {:<8} {:<24} {:>12}",
            "name", "type", "dims", "bytes"
        )?;
        writeln!(f, "{}", if with_zeros { "    zeros" } else { "" })?;
        for t in &self.tensors {
            let dims = format!("{:?}", t.dims);
            write!(
                f,
                "  {:<40} {:<8} {:<24} {:>12}",
                t.name, t.ty, dims, t.bytes
            )?;
            match t.zero_fraction {
                Some(z) => writeln!(f, "  {:>6.2}%", z * 100.0)?,
                None => writeln!(f)?,
            }
        }
        writeln!(f, "\nTotals by type:")?;
        for (ty, t) in &self.totals_by_type {
            writeln!(
                f,
                "  {ty:<8} {:>5} tensors {:>14} elements {:>12}",
                t.tensors,
                t.elements,
                human_bytes(t.bytes)
            )?;
        }
        writeln!(
            f,
            "  all      {:>5} tensors {:>14} elements {:>12}",
            self.tensors.len(),
            self.total_elements,
            human_bytes(self.total_bytes)
        )
    }
}

/// One entry of an imatrix report.
#[derive(Debug, Clone, Serialize)]
pub struct ImatrixRow {
    pub name: String,
    /// Values per matrix.
    pub len: usize,
    pub n_mat: usize,
    /// Tokens seen per matrix (GGUF) or `ncall` (legacy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ncall: Option<i32>,
    pub has_in_sum: bool,
}

/// Everything `inspect` says about an imatrix.
#[derive(Debug, Clone, Serialize)]
pub struct ImatrixReport {
    pub file: String,
    pub format: String,
    pub datasets: Vec<String>,
    pub chunk_count: Option<u64>,
    pub chunk_size: Option<u64>,
    pub entries: Vec<ImatrixRow>,
}

/// Builds the report of an imatrix.
pub fn inspect_imatrix(path: &Path, im: &Imatrix) -> ImatrixReport {
    ImatrixReport {
        file: path.display().to_string(),
        format: match im.format {
            ImatrixFormat::Gguf => "gguf".into(),
            ImatrixFormat::Stats => "dass-stats (statistics file; its in_sum2 and counts)".into(),
            ImatrixFormat::Dat { trailer: true } => "dat (legacy, with trailer)".into(),
            ImatrixFormat::Dat { trailer: false } => "dat (legacy, no trailer)".into(),
        },
        datasets: im.datasets.clone(),
        chunk_count: im.chunk_count,
        chunk_size: im.chunk_size,
        entries: im
            .entries
            .values()
            .map(|e| ImatrixRow {
                name: e.name.clone(),
                len: e.len_per_matrix(),
                n_mat: e.n_mat,
                counts: e.counts.clone(),
                ncall: e.ncall,
                has_in_sum: e.mean.is_some(),
            })
            .collect(),
    }
}

impl fmt::Display for ImatrixReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "imatrix: {}", self.file)?;
        writeln!(f, "  format      {}", self.format)?;
        writeln!(f, "  datasets    {}", self.datasets.join(", "))?;
        let opt = |v: Option<u64>| v.map_or("(not recorded)".to_string(), |v| v.to_string());
        writeln!(f, "  chunks      {}", opt(self.chunk_count))?;
        writeln!(f, "  chunk size  {}", opt(self.chunk_size))?;
        writeln!(f, "\nEntries ({}):", self.entries.len())?;
        writeln!(
            f,
            "  {:<40} {:>8} {:>6} {:>12}",
            "name", "len", "n_mat", "count"
        )?;
        for e in &self.entries {
            let count = match (&e.counts, e.ncall) {
                (Some(c), _) if c.len() == 1 => format!("{}", c[0]),
                (Some(c), _) => format!("{} (sum)", c.iter().map(|v| *v as f64).sum::<f64>()),
                (None, Some(n)) => format!("ncall {n}"),
                (None, None) => "-".into(),
            };
            let extra = if e.has_in_sum { "  +in_sum" } else { "" };
            writeln!(
                f,
                "  {:<40} {:>8} {:>6} {:>12}{extra}",
                e.name, e.len, e.n_mat, count
            )?;
        }
        Ok(())
    }
}

/// One tensor of a safetensors header.
#[derive(Debug, Clone, Serialize)]
pub struct SafetensorsRow {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
}

/// The header of a safetensors file.
#[derive(Debug, Clone, Serialize)]
pub struct SafetensorsReport {
    pub file: String,
    pub metadata: BTreeMap<String, String>,
    pub tensors: Vec<SafetensorsRow>,
}

/// Reads only the header of a safetensors file.
pub fn inspect_safetensors(path: &Path) -> Result<SafetensorsReport> {
    let map = MappedInput::open(path)?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&map)
        .map_err(|e| Error::Safetensors(format!("{}: {e}", path.display())))?;
    let infos = meta.tensors();
    let tensors = meta
        .offset_keys()
        .into_iter()
        .filter_map(|name| {
            infos.get(&name).map(|i| SafetensorsRow {
                dtype: format!("{:?}", i.dtype),
                shape: i.shape.clone(),
                name,
            })
        })
        .collect();
    Ok(SafetensorsReport {
        file: path.display().to_string(),
        metadata: meta
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        tensors,
    })
}

impl fmt::Display for SafetensorsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "safetensors: {}", self.file)?;
        for (k, v) in &self.metadata {
            writeln!(f, "  {k}: {v}")?;
        }
        writeln!(f, "\nTensors ({}):", self.tensors.len())?;
        for t in &self.tensors {
            writeln!(f, "  {:<56} {:<6} {:?}", t.name, t.dtype, t.shape)?;
        }
        Ok(())
    }
}

/// Bytes a `--zeros` pass will dequantize, for sizing a progress bar.
pub fn zeros_work(model: &GgufModel) -> u64 {
    model.tensors().map(|(_, t)| t.n_bytes).sum()
}

/// What `inspect` found in a file.
pub enum Inspection {
    Model(ModelReport),
    Imatrix(ImatrixReport),
    Safetensors(SafetensorsReport),
}

impl Inspection {
    /// The report as text for people, or as pretty-printed JSON.
    pub fn render(&self, json: bool) -> Result<String> {
        fn one<T: Serialize + fmt::Display>(report: &T, json: bool) -> Result<String> {
            Ok(if json {
                let mut s = serde_json::to_string_pretty(report)
                    .map_err(|e| Error::Usage(format!("encoding the report as JSON: {e}")))?;
                s.push('\n');
                s
            } else {
                report.to_string()
            })
        }
        match self {
            Inspection::Model(r) => one(r, json),
            Inspection::Imatrix(r) => one(r, json),
            Inspection::Safetensors(r) => one(r, json),
        }
    }
}

/// Inspects the file at `path`, whatever it holds. With `zeros` (model GGUF files only) every
/// tensor is dequantized to count exact zeros: `start` is told the bytes that pass will read,
/// and `progress` each finished chunk.
pub fn inspect_path(
    path: &Path,
    zeros: bool,
    start: impl FnOnce(u64),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Inspection> {
    if path.is_dir() {
        return Err(Error::Usage(format!(
            "{} is a directory: inspect reads one file (for a Hugging Face checkpoint, one of its .safetensors files)",
            path.display()
        )));
    }
    let kind = detect(path)?;
    if zeros && kind != FileKind::GgufModel {
        return Err(Error::Usage(
            "--zeros applies to model GGUF files only".into(),
        ));
    }
    Ok(match kind {
        FileKind::GgufModel => {
            let model = GgufModel::open(path)?;
            if zeros {
                start(zeros_work(&model));
            }
            Inspection::Model(inspect_model(&model, zeros, progress)?)
        }
        FileKind::GgufImatrix => Inspection::Imatrix(inspect_imatrix(path, &Imatrix::open(path)?)),
        FileKind::LegacyImatrix => {
            let im = Imatrix::open(path).map_err(|e| {
                Error::Usage(format!(
                    "{} is neither GGUF nor safetensors, and reading it as a legacy imatrix failed: {e}",
                    path.display()
                ))
            })?;
            Inspection::Imatrix(inspect_imatrix(path, &im))
        }
        FileKind::Safetensors => Inspection::Safetensors(inspect_safetensors(path)?),
    })
}
