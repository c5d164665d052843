//! The output file's metadata: the input's keys (less the split keys and any earlier `dass.*`),
//! `general.file_type` updated when tensor types change, and the `dass.*` keys that say what
//! was done, typed as gguf-py types them (docs/method.md "What the output records").

use std::collections::BTreeMap;

use crate::channels::{ChannelPlan, ChannelScore};
use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use crate::gguf::{MetadataEntry, Value, ValueType};
use crate::imatrix::Imatrix;
use crate::plan::Plan;

/// The metadata of the pruned output. `input` is the model's metadata (the first shard's for
/// a split model); `imatrix` the statistics and the file name to record.
pub fn output_metadata(
    input: &[MetadataEntry],
    imatrix: Option<(&Imatrix, &str)>,
    plan: &Plan,
) -> Result<Vec<MetadataEntry>> {
    let mut out: Vec<MetadataEntry> = input
        .iter()
        .filter(|kv| !kv.key.starts_with("split.") && !kv.key.starts_with("dass."))
        .cloned()
        .collect();

    if let Some(ftype) = changed_file_type(plan) {
        set(&mut out, "general.file_type", Value::U32(ftype))?;
    }
    set(
        &mut out,
        "dass.version",
        Value::string(env!("CARGO_PKG_VERSION")),
    )?;
    if let Some(channels) = &plan.channels {
        channel_metadata(&mut out, channels)?;
    }
    if plan.options_summary.method != "none" {
        pruning_metadata(&mut out, plan)?;
    }
    if let Some((im, file)) = imatrix {
        set(&mut out, "dass.imatrix.file", Value::string(file))?;
        let datasets = im.datasets.iter().map(|d| Value::string(d)).collect();
        set(
            &mut out,
            "dass.imatrix.datasets",
            Value::Array(ValueType::String, datasets),
        )?;
        if let Some(c) = im.chunk_count {
            set(
                &mut out,
                "dass.imatrix.chunk_count",
                Value::U32(c.min(u32::MAX as u64) as u32),
            )?;
        }
    }
    if let Some(stats) = &plan.stats {
        set(&mut out, "dass.stats.file", Value::string(&stats.file))?;
        set(
            &mut out,
            "dass.stats.chunk_count",
            Value::U32(stats.chunk_count),
        )?;
        let datasets = stats.datasets.iter().map(|d| Value::string(d)).collect();
        set(
            &mut out,
            "dass.stats.datasets",
            Value::Array(ValueType::String, datasets),
        )?;
    }
    if let Some(refit) = &plan.refit {
        set(&mut out, "dass.refit.method", Value::string(&refit.method))?;
        set(&mut out, "dass.refit.damp", Value::F32(refit.damp as f32))?;
        let names = refit.tensors.iter().map(|t| Value::string(t)).collect();
        set(
            &mut out,
            "dass.refit.tensors",
            Value::Array(ValueType::String, names),
        )?;
    }
    Ok(out)
}

/// `{arch}.feed_forward_length` becomes the kept width (in the key's own integer type; an
/// array stays an array) or, for per-layer widths, the model becomes `deci` with arrays of
/// widths and head counts; the `dass.ffn.*` keys say what was removed.
fn channel_metadata(out: &mut Vec<MetadataEntry>, c: &ChannelPlan) -> Result<()> {
    let arch = out
        .iter()
        .find(|kv| kv.key == "general.architecture")
        .map(|kv| kv.as_str())
        .transpose()?
        .unwrap_or_default();
    if c.per_layer {
        as_deci(out, &arch, c)?;
    } else {
        uniform_width(out, &arch, c)?;
    }
    ffn_record(out, c)
}

/// `{arch}.feed_forward_length` becomes the one kept width.
fn uniform_width(out: &mut Vec<MetadataEntry>, arch: &str, c: &ChannelPlan) -> Result<()> {
    let key = format!("{arch}.feed_forward_length");
    let old = out
        .iter()
        .find(|kv| kv.key == key)
        .ok_or_else(|| Error::MissingKey(key.clone()))?
        .value()?;
    let width = c.width as u64;
    let new = match old {
        Value::Array(t, items) => {
            let item = integer_like(items.first(), width).ok_or_else(|| bad_width_key(&key))?;
            Value::Array(t, vec![item; items.len()])
        }
        scalar => integer_like(Some(&scalar), width).ok_or_else(|| bad_width_key(&key))?,
    };
    set(out, &key, new)
}

/// The model re-expressed as llama.cpp's `deci` (llama's graph with a width and head counts per
/// layer): `general.architecture` becomes `deci`, every `{arch}.*` key is renamed `deci.*` in
/// place, and `feed_forward_length`, `attention.head_count` and `attention.head_count_kv` become
/// UINT32 arrays of `block_count` values. Tensors keep their names.
fn as_deci(out: &mut [MetadataEntry], arch: &str, c: &ChannelPlan) -> Result<()> {
    let prefix = format!("{arch}.");
    let blocks = c.blocks.len();
    for kv in out.iter_mut() {
        if kv.key == "general.architecture" {
            *kv = MetadataEntry::new(&kv.key, &Value::string("deci"))?;
        } else if let Some(rest) = kv.key.strip_prefix(&prefix) {
            let value = kv.value()?;
            let new_key = format!("deci.{rest}");
            *kv = match rest {
                "feed_forward_length" => MetadataEntry::new(
                    &new_key,
                    &Value::Array(
                        ValueType::U32,
                        c.blocks
                            .iter()
                            .map(|b| Value::U32(b.kept.len() as u32))
                            .collect(),
                    ),
                )?,
                "attention.head_count" | "attention.head_count_kv" => {
                    let n = kv.as_integer()?;
                    let n = u32::try_from(n).map_err(|_| bad_width_key(&kv.key))?;
                    MetadataEntry::new(
                        &new_key,
                        &Value::Array(ValueType::U32, vec![Value::U32(n); blocks]),
                    )?
                }
                _ => MetadataEntry::new(&new_key, &value)?,
            };
        }
    }
    Ok(())
}

/// The `dass.ffn.*` keys.
fn ffn_record(out: &mut Vec<MetadataEntry>, c: &ChannelPlan) -> Result<()> {
    set(
        out,
        "dass.ffn.allocation",
        Value::string(c.options.allocation.name()),
    )?;
    let widths = c
        .blocks
        .iter()
        .map(|b| Value::U32(b.kept.len() as u32))
        .collect();
    set(out, "dass.ffn.score", Value::string(c.options.score.name()))?;
    set(out, "dass.ffn.original_length", Value::U32(c.n_ff as u32))?;
    set(out, "dass.ffn.target", Value::F32(c.target as f32))?;
    set(
        out,
        "dass.ffn.width_multiple",
        Value::U32(c.options.multiple as u32),
    )?;
    set(out, "dass.ffn.kept", Value::Array(ValueType::U32, widths))?;
    let shares = c
        .blocks
        .iter()
        .map(|b| Value::F32(b.removed_score_share as f32))
        .collect();
    set(
        out,
        "dass.ffn.removed_score_share",
        Value::Array(ValueType::F32, shares),
    )?;
    if c.options.score == ChannelScore::Random {
        set(out, "dass.ffn.seed", Value::U64(c.options.seed))?;
    }
    Ok(())
}

/// `value` in the integer type of `like`, or `None` when that is no integer type or too small.
fn integer_like(like: Option<&Value>, value: u64) -> Option<Value> {
    Some(match like? {
        Value::U32(_) => Value::U32(u32::try_from(value).ok()?),
        Value::I32(_) => Value::I32(i32::try_from(value).ok()?),
        Value::U64(_) => Value::U64(value),
        Value::I64(_) => Value::I64(i64::try_from(value).ok()?),
        Value::U16(_) => Value::U16(u16::try_from(value).ok()?),
        Value::I16(_) => Value::I16(i16::try_from(value).ok()?),
        _ => return None,
    })
}

fn bad_width_key(key: &str) -> Error {
    Error::Plan(format!(
        "metadata key '{key}' is not an integer (or array of integers) that can hold the new width"
    ))
}

/// The `dass.*` keys of zeroing: method, pattern, sparsity, groups, what was achieved.
fn pruning_metadata(out: &mut Vec<MetadataEntry>, plan: &Plan) -> Result<()> {
    let s = &plan.options_summary;
    set(out, "dass.method", Value::string(s.method))?;
    if let Some(auto) = &s.auto {
        set(out, "dass.method_choice", Value::string(&auto.reason))?;
    }
    set(out, "dass.pattern", Value::string(&s.pattern))?;
    set(out, "dass.sparsity", Value::F32(s.sparsity as f32))?;
    if let Some(alpha) = s.alpha {
        set(out, "dass.alpha", Value::F32(alpha))?;
    }
    set(out, "dass.scope", Value::string(s.scope))?;
    // The regexes that narrowed the scope, so that the set of pruned tensors can be told from
    // the file alone (`verify`); absent when none were given.
    for (key, regexes) in [("dass.include", &s.include), ("dass.exclude", &s.exclude)] {
        if !regexes.is_empty() {
            let items = regexes.iter().map(|r| Value::string(r)).collect();
            set(out, key, Value::Array(ValueType::String, items))?;
        }
    }
    if let (Some(g), Some(o)) = (s.nm_orientation_gate_up, s.nm_orientation_other) {
        set(out, "dass.nm_groups.gate_up", Value::string(g))?;
        set(out, "dass.nm_groups.other", Value::string(o))?;
    }
    set(
        out,
        "dass.pruned_tensors",
        Value::U32(plan.pruned_tensors() as u32),
    )?;
    set(
        out,
        "dass.sparsity_achieved",
        Value::F32(plan.totals().sparsity() as f32),
    )
}

/// When pruning changes some tensor's type, the file type of the type holding most weight
/// elements (2-D and larger tensors); `None` when no type changes or no file type names it.
fn changed_file_type(plan: &Plan) -> Option<u32> {
    let types_change = plan.tensors.iter().any(|t| t.output_spec().ty != t.info.ty);
    if !types_change {
        return None;
    }
    let mut by_type: BTreeMap<GgmlType, u64> = BTreeMap::new();
    for t in &plan.tensors {
        if t.info.dims.len() >= 2 {
            *by_type.entry(t.output_spec().ty).or_default() += t.cut_info().n_elements();
        }
    }
    by_type
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .and_then(|(t, _)| t.llama_ftype())
}

/// Replaces `key`'s value in place, or appends it.
fn set(meta: &mut Vec<MetadataEntry>, key: &str, value: Value) -> Result<()> {
    let entry = MetadataEntry::new(key, &value)?;
    match meta.iter_mut().find(|kv| kv.key == key) {
        Some(kv) => *kv = entry,
        None => meta.push(entry),
    }
    Ok(())
}
