//! The output file's metadata: the input's keys (less the split keys and any earlier `dass.*`),
//! `general.file_type` updated when tensor types change, and the `dass.*` keys that say what
//! was done, typed as gguf-py types them (docs/method.md "What the output records").

use std::collections::BTreeMap;

use crate::error::Result;
use crate::ggml_type::GgmlType;
use crate::gguf::{MetadataEntry, Value, ValueType};
use crate::imatrix::Imatrix;
use crate::plan::{Action, Plan};

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

    let s = &plan.options_summary;
    set(
        &mut out,
        "dass.version",
        Value::string(env!("CARGO_PKG_VERSION")),
    )?;
    set(&mut out, "dass.method", Value::string(s.method))?;
    set(&mut out, "dass.pattern", Value::string(&s.pattern))?;
    set(&mut out, "dass.sparsity", Value::F32(s.sparsity as f32))?;
    if let Some(alpha) = s.alpha {
        set(&mut out, "dass.alpha", Value::F32(alpha))?;
    }
    set(&mut out, "dass.scope", Value::string(s.scope))?;
    if let (Some(g), Some(o)) = (s.nm_orientation_gate_up, s.nm_orientation_other) {
        set(&mut out, "dass.nm_groups.gate_up", Value::string(g))?;
        set(&mut out, "dass.nm_groups.other", Value::string(o))?;
    }
    set(
        &mut out,
        "dass.pruned_tensors",
        Value::U32(plan.pruned_tensors() as u32),
    )?;
    set(
        &mut out,
        "dass.sparsity_achieved",
        Value::F32(plan.totals().sparsity() as f32),
    )?;
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
    Ok(out)
}

/// When pruning changes some tensor's type, the file type of the type holding most weight
/// elements (2-D and larger tensors); `None` when no type changes or no file type names it.
fn changed_file_type(plan: &Plan) -> Option<u32> {
    let types_change = plan
        .tensors
        .iter()
        .any(|t| matches!(&t.action, Action::Prune(s) if s.out_type != t.info.ty));
    if !types_change {
        return None;
    }
    let mut by_type: BTreeMap<GgmlType, u64> = BTreeMap::new();
    for t in &plan.tensors {
        if t.info.dims.len() >= 2 {
            *by_type.entry(t.output_spec().ty).or_default() += t.info.n_elements();
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
