//! The imatrix of a model whose feed-forward channels were removed: the input imatrix, in its
//! own format, with each `ffn_down` entry cut to the kept channels (the column statistics of
//! `ffn_down` are the channels' statistics). `llama-quantize --imatrix` refuses entries whose
//! length differs from the tensor's rows, so this file is what it needs next. Every other entry,
//! and all metadata, is copied unchanged. From a statistics file (docs/stats.md) the result is a
//! standard imatrix GGUF (only `in_sum2` and `counts`, the `imatrix.*` keys llama-imatrix
//! writes), which `llama-quantize --imatrix` reads.

use std::path::{Path, PathBuf};

use crate::channels::ChannelPlan;
use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use crate::gguf::split::TensorRef;
use crate::gguf::{GgufLayout, GgufModel, GgufWriter, MetadataEntry, TensorSpec, Value, ValueType};
use crate::imatrix::ImatrixFormat;
use crate::output_file::write_whole;

/// Where the cut imatrix goes by default: beside `output`, named after it, in the input's
/// format (`model.gguf` → `model.imatrix.gguf` or `model.imatrix.dat`).
pub fn default_path(output: &Path, format: ImatrixFormat) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let ext = match format {
        ImatrixFormat::Gguf | ImatrixFormat::Stats => "gguf",
        ImatrixFormat::Dat { .. } => "dat",
    };
    output.with_file_name(format!("{stem}.imatrix.{ext}"))
}

/// Writes `input` (an imatrix of `format`) to `out` with the `ffn_down` entries cut to the
/// channels `channels` keeps, atomically. `inputs` are the files `out` may not be.
pub fn write_cut_imatrix(
    input: &Path,
    format: ImatrixFormat,
    channels: &ChannelPlan,
    out: &Path,
    inputs: &[&Path],
    overwrite: bool,
) -> Result<()> {
    match format {
        ImatrixFormat::Gguf => write_gguf(input, channels, out, inputs, overwrite),
        ImatrixFormat::Stats => write_from_stats(input, channels, out, inputs, overwrite),
        ImatrixFormat::Dat { .. } => write_dat(input, channels, out, inputs, overwrite),
    }
}

/// The kept channels of the weight whose statistics are `entry`, checked against its length.
fn kept_for<'a>(channels: &'a ChannelPlan, entry: &str, len: usize) -> Result<Option<&'a [u32]>> {
    match channels.kept_for_down(entry) {
        Some(_) if len != channels.n_ff => Err(Error::Imatrix(format!(
            "entry '{entry}' has {len} values per matrix, but the model has {} channels",
            channels.n_ff
        ))),
        kept => Ok(kept),
    }
}

fn gather_f32(values: &[u8], kept: &[u32]) -> Vec<u8> {
    kept.iter()
        .flat_map(|&i| {
            let at = i as usize * 4;
            values[at..at + 4].to_vec()
        })
        .collect()
}

fn write_gguf(
    input: &Path,
    channels: &ChannelPlan,
    out: &Path,
    inputs: &[&Path],
    overwrite: bool,
) -> Result<()> {
    let im = GgufModel::open(input)?;
    let mut specs = Vec::new();
    let mut cuts = Vec::new();
    for (_, t) in im.tensors() {
        let mut spec = TensorSpec::from(t);
        let entry = t
            .name
            .strip_suffix(".in_sum2")
            .or_else(|| t.name.strip_suffix(".in_sum"));
        let kept = match entry {
            Some(e) => kept_for(channels, e, t.row_len() as usize)?,
            None => None,
        };
        if let Some(kept) = kept {
            if t.ty != GgmlType::F32 {
                return Err(Error::Tensor {
                    tensor: t.name.clone(),
                    message: format!("imatrix tensors must be F32, this one is {}", t.ty),
                });
            }
            spec.dims[0] = kept.len() as u64;
        }
        specs.push(spec);
        cuts.push(kept);
    }
    let layout = GgufLayout::new(im.metadata().to_vec(), specs)?;
    let chosen = im
        .tensors()
        .zip(cuts)
        .map(|((r, t), kept)| (r, t.row_len() as usize, kept));
    write_cut(&im, layout, chosen, out, inputs, overwrite)
}

/// Writes `layout` to `out`, each tensor's data taken from `im` and, where a kept list is
/// given, every row (of `row_len` f32) cut to those columns.
fn write_cut<'a>(
    im: &GgufModel,
    layout: GgufLayout,
    chosen: impl IntoIterator<Item = (TensorRef, usize, Option<&'a [u32]>)>,
    out: &Path,
    inputs: &[&Path],
    overwrite: bool,
) -> Result<()> {
    let mut writer = GgufWriter::create(out, layout, inputs, overwrite)?;
    for (r, row_len, kept) in chosen {
        let data = im.tensor_data(r);
        match kept {
            None => writer.write_tensor(data)?,
            Some(kept) => {
                let cut: Vec<u8> = data
                    .chunks(row_len * 4)
                    .flat_map(|values| gather_f32(values, kept))
                    .collect();
                writer.write_tensor(&cut)?;
            }
        }
    }
    writer.commit()
}

/// The metadata of a standard imatrix GGUF, as llama-imatrix writes it: `general.type =
/// imatrix`, `imatrix.datasets`, `imatrix.chunk_count`, `imatrix.chunk_size`.
pub fn standard_header<S: AsRef<str>>(
    datasets: &[S],
    chunk_count: u32,
    chunk_size: u32,
) -> Result<Vec<MetadataEntry>> {
    Ok(vec![
        MetadataEntry::new("general.type", &Value::string("imatrix"))?,
        MetadataEntry::new(
            "imatrix.datasets",
            &Value::Array(
                ValueType::String,
                datasets.iter().map(|d| Value::string(d.as_ref())).collect(),
            ),
        )?,
        MetadataEntry::new("imatrix.chunk_count", &Value::U32(chunk_count))?,
        MetadataEntry::new("imatrix.chunk_size", &Value::U32(chunk_size))?,
    ])
}

/// The `in_sum2` and `counts` of a statistics file as a standard imatrix GGUF, the `ffn_down`
/// entries cut: `general.type = imatrix`, `imatrix.datasets`, `imatrix.chunk_count` and
/// `imatrix.chunk_size` (the statistics file's `dass.stats.*` values), tensors in the file's
/// order.
fn write_from_stats(
    input: &Path,
    channels: &ChannelPlan,
    out: &Path,
    inputs: &[&Path],
    overwrite: bool,
) -> Result<()> {
    let stats = GgufModel::open(input)?;
    let required = |key: &str| {
        stats
            .get(key)
            .ok_or_else(|| Error::MissingKey(format!("{key} (in {})", input.display())))
    };
    let datasets = required("dass.stats.datasets")?.as_string_array()?;
    let metadata = standard_header(
        &datasets,
        required("dass.stats.chunk_count")?.as_u32()?,
        required("dass.stats.chunk_size")?.as_u32()?,
    )?;
    let mut specs = Vec::new();
    let mut chosen = Vec::new();
    for (r, t) in stats.tensors() {
        let kept = if let Some(e) = t.name.strip_suffix(".in_sum2") {
            kept_for(channels, e, t.row_len() as usize)?
        } else if t.name.ends_with(".counts") {
            None
        } else {
            continue;
        };
        let mut spec = TensorSpec::from(t);
        if let Some(kept) = kept {
            spec.dims[0] = kept.len() as u64;
        }
        specs.push(spec);
        chosen.push((r, t.row_len() as usize, kept));
    }
    let layout = GgufLayout::new(metadata, specs)?;
    write_cut(&stats, layout, chosen, out, inputs, overwrite)
}

fn write_dat(
    input: &Path,
    channels: &ChannelPlan,
    out: &Path,
    inputs: &[&Path],
    overwrite: bool,
) -> Result<()> {
    let bytes = std::fs::read(input).map_err(|e| Error::io("reading", input, e))?;
    let bad = || Error::Imatrix(format!("{}: malformed legacy imatrix", input.display()));
    let i32_at = |pos: usize| -> Result<i32> {
        let b = bytes.get(pos..pos + 4).ok_or_else(bad)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut outb = Vec::with_capacity(bytes.len());
    let n = i32_at(0)?;
    outb.extend_from_slice(&bytes[0..4]);
    let mut pos = 4;
    for _ in 0..n.max(0) {
        let name_len = usize::try_from(i32_at(pos)?).map_err(|_| bad())?;
        let name = bytes.get(pos + 4..pos + 4 + name_len).ok_or_else(bad)?;
        let name = String::from_utf8_lossy(name).into_owned();
        let head_end = pos + 4 + name_len + 8;
        let nval = usize::try_from(i32_at(head_end - 4)?).map_err(|_| bad())?;
        let values = bytes.get(head_end..head_end + 4 * nval).ok_or_else(bad)?;
        match kept_for(channels, &name, nval)? {
            None => outb.extend_from_slice(&bytes[pos..head_end + 4 * nval]),
            Some(kept) => {
                outb.extend_from_slice(&bytes[pos..head_end - 4]);
                outb.extend_from_slice(&(kept.len() as i32).to_le_bytes());
                outb.extend(gather_f32(values, kept));
            }
        }
        pos = head_end + 4 * nval;
    }
    // The trailer (chunk count and dataset), if any, as it was.
    outb.extend_from_slice(&bytes[pos..]);

    write_whole(out, &outb, inputs, overwrite)
}
