//! Removed channels (docs/method.md "Removing channels"): the widths the `dass.ffn.*` keys and
//! `{arch}.feed_forward_length` declare against the shapes of every block's gate, up and down,
//! and, with the input, which of the input's channels each block kept.
//!
//! The file records each block's width, not which channels it kept, so with `--against` they
//! are found: output channel `j` (gate row `j`, up row `j` — rows `j` and `w + j` of phi3's
//! fused up — and down column `j`) is matched to the first input channel after the previous
//! match whose rows and column equal it, weight for weight, after conversion to the output
//! type; where the tensor is pruned too, a zero in the output matches any input weight. Kept
//! channels keep their order, so this finds the kept set whenever one exists; it can only
//! pick a wrong channel when two channels agree on every weight the output still has. A
//! refitted tensor (`dass.refit.tensors`) no longer holds the input's weights and is left out
//! of the matching; a block whose gate, up and down were all refitted cannot be matched.

use std::collections::{BTreeMap, BTreeSet};

use super::values::{bits, bytes_of, is_float, magnitude_mask};
use super::{claims, Violations};
use crate::channels::{block_and_kind, Cut, FfnBlock};
use crate::error::Result;
use crate::gguf::split::TensorRef;
use crate::gguf::{GgufModel, TensorInfo};
use crate::source::Source;
use std::sync::Arc;

/// The feed-forward tensors of one block of the output, by name.
pub type Block = FfnBlock<String>;

/// The blocks that have a down projection, by block number.
pub fn blocks(model: &GgufModel) -> BTreeMap<u32, Block> {
    let mut blocks: BTreeMap<u32, Block> = BTreeMap::new();
    for (_, t) in model.tensors() {
        let Some((b, kind)) = block_and_kind(&t.name) else {
            continue;
        };
        if let Some(slot) = blocks.entry(b).or_default().slot(kind) {
            *slot = Some(t.name.clone());
        }
    }
    blocks.retain(|_, b| b.down.is_some());
    blocks
}

fn info<'a>(model: &'a GgufModel, name: &str) -> Option<&'a TensorInfo> {
    model.find(name).map(|(_, t)| t)
}

/// Checks the declared widths against the tensors' shapes and the architecture keys.
pub fn check_widths(
    model: &GgufModel,
    arch: &str,
    c: &claims::Channels,
    blocks: &BTreeMap<u32, Block>,
    v: &mut Violations,
) {
    if c.kept.len() != blocks.len() {
        v.metadata(
            "dass.ffn.kept",
            &format!("a width for each of the {} blocks", blocks.len()),
            &format!("{} widths", c.kept.len()),
        );
        return;
    }
    if c.shares != blocks.len() {
        v.metadata(
            "dass.ffn.removed_score_share",
            &format!("a share for each of the {} blocks", blocks.len()),
            &format!("{} shares", c.shares),
        );
    }
    let fused = arch == "phi3";
    for ((b, block), &w) in blocks.iter().zip(&c.kept) {
        let at = format!("dass.ffn.kept[{b}]");
        if w == 0 || w > c.original_length {
            v.metadata(
                &at,
                &format!("a width in 1..={}", c.original_length),
                &w.to_string(),
            );
        }
        if c.width_multiple == 0 || (w % c.width_multiple != 0 && w != c.original_length) {
            v.metadata(
                &at,
                &format!(
                    "a multiple of dass.ffn.width_multiple {} (or the original {})",
                    c.width_multiple, c.original_length
                ),
                &w.to_string(),
            );
        }
        let down = block.down.as_deref().and_then(|n| info(model, n));
        let n_embd = down.and_then(|d| d.dims.get(1).copied());
        let mut shape = |name: &Option<String>, want: Vec<Option<u64>>, what: &str| {
            let Some(t) = name.as_deref().and_then(|n| info(model, n)) else {
                return;
            };
            let ok = t.dims.len() == want.len()
                && t.dims
                    .iter()
                    .zip(&want)
                    .all(|(d, w)| w.is_none_or(|w| *d == w));
            if !ok {
                let want: Vec<String> = want
                    .iter()
                    .map(|w| w.map_or("_".into(), |w| w.to_string()))
                    .collect();
                v.tensor(
                    &t.name,
                    "shape",
                    &format!("dims [{}] ({what}, block width {w})", want.join(", ")),
                    &format!("{:?}", t.dims),
                );
            }
        };
        shape(&block.down, vec![Some(w), None], "columns are channels");
        shape(&block.gate, vec![n_embd, Some(w)], "rows are channels");
        let up_rows = if fused { 2 * w } else { w };
        shape(
            &block.up,
            vec![n_embd, Some(up_rows)],
            if fused {
                "rows are gate then up channels"
            } else {
                "rows are channels"
            },
        );
        shape(&block.gate_bias, vec![Some(w)], "one per channel");
        shape(&block.up_bias, vec![Some(w)], "one per channel");
    }
    check_length_keys(model, arch, c, v);
}

/// `{arch}.feed_forward_length` says the kept width (uniform), or the model is `deci` with a
/// width per layer (global).
fn check_length_keys(model: &GgufModel, arch: &str, c: &claims::Channels, v: &mut Violations) {
    if !c.global && arch == "deci" {
        v.metadata(
            "general.architecture",
            "not 'deci' (dass.ffn.allocation is uniform; convert writes deci only for global)",
            "'deci'",
        );
    }
    if c.global && arch != "deci" {
        v.metadata(
            "general.architecture",
            "'deci' (dass.ffn.allocation is global: widths per layer)",
            &format!("'{arch}'"),
        );
        return;
    }
    let key = format!("{arch}.feed_forward_length");
    let Some(kv) = model.get(&key) else {
        v.metadata(&key, "present", "absent");
        return;
    };
    let widths: Option<Vec<i128>> = match kv.value() {
        Ok(crate::gguf::Value::Array(_, items)) => items
            .iter()
            .map(|i| {
                crate::gguf::MetadataEntry::new(&key, i)
                    .ok()
                    .and_then(|e| e.as_integer().ok())
            })
            .collect(),
        Ok(_) => kv.as_integer().ok().map(|n| vec![n; c.kept.len()]),
        Err(_) => None,
    };
    let want: Vec<i128> = c.kept.iter().map(|&w| w.into()).collect();
    match widths {
        Some(w) if w == want => {}
        Some(w) if !c.global && w.len() == want.len() => v.metadata(
            &key,
            &format!("the kept width {:?}", c.kept.first()),
            &format!("{:?}", w.first()),
        ),
        found => v.metadata(
            &key,
            &format!("the widths of dass.ffn.kept {:?}", c.kept),
            &found.map_or("an unreadable value".into(), |w| format!("{w:?}")),
        ),
    }
    if !c.global && c.kept.windows(2).any(|p| p[0] != p[1]) {
        v.metadata(
            "dass.ffn.kept",
            "one width for every block (dass.ffn.allocation is uniform)",
            &format!("{:?}", c.kept),
        );
    }
}

/// One tensor of the output and its namesake in the input.
struct Pair<'a> {
    out: &'a TensorInfo,
    out_ref: TensorRef,
    input: &'a TensorInfo,
    in_data: std::borrow::Cow<'a, [u8]>,
    /// Pruned too: a zero in the output matches any input weight.
    pruned: bool,
    /// Refitted: its weights are not the input's, so it says nothing about which channel is
    /// which.
    refitted: bool,
}

/// The cut of every block tensor (by name), the blocks whose channels are not the input's
/// (each recorded as a violation), and the blocks that could not be matched (every channel
/// tensor refitted).
pub type InferredCuts = (BTreeMap<String, Cut>, BTreeSet<u32>, BTreeSet<u32>);

/// Finds, per block, the input channels the output kept; returns the cut of every block tensor
/// (for comparing them with the input), and records a violation for every block whose channels
/// are not the input's. Blocks that failed or could not be matched are left out of the
/// comparison.
pub fn infer_cuts(
    model: &GgufModel,
    input: &Source,
    arch: &str,
    blocks: &BTreeMap<u32, Block>,
    pruned: &BTreeSet<String>,
    refitted: &BTreeSet<String>,
    v: &mut Violations,
) -> Result<InferredCuts> {
    let fused = arch == "phi3";
    let in_tensors = input.tensors();
    let find_in = |name: &str| in_tensors.iter().find(|(_, t)| t.name == name);
    let mut cuts = BTreeMap::new();
    let mut failed = BTreeSet::new();
    let mut unmatched = BTreeSet::new();
    for (&b, block) in blocks {
        let pair = |name: &Option<String>| -> Result<Option<Pair<'_>>> {
            let Some(name) = name else { return Ok(None) };
            let (Some((out_ref, out)), Some((r, t))) = (model.find(name), find_in(name)) else {
                return Ok(None);
            };
            Ok(Some(Pair {
                out,
                out_ref,
                input: t,
                in_data: input.tensor_data(*r)?,
                pruned: pruned.contains(name),
                refitted: refitted.contains(name),
            }))
        };
        let (down, gate, up) = (pair(&block.down)?, pair(&block.gate)?, pair(&block.up)?);
        let (Some(down), Some(up)) = (down, up) else {
            continue;
        };
        if down.refitted && up.refitted && gate.as_ref().is_none_or(|g| g.refitted) {
            unmatched.insert(b);
            continue;
        }
        match match_channels(model, &down, gate.as_ref(), &up, fused)? {
            Ok(kept) => {
                let kept = Arc::new(kept);
                let n_ff = down.input.dims[0] as u32;
                let up_rows = if fused {
                    kept.iter()
                        .copied()
                        .chain(kept.iter().map(|&i| i + n_ff))
                        .collect()
                } else {
                    kept.to_vec()
                };
                let mut put = |name: &Option<String>, cut: Cut| {
                    if let Some(n) = name {
                        cuts.insert(n.clone(), cut);
                    }
                };
                put(&block.gate, Cut::Rows(kept.clone()));
                put(&block.up, Cut::Rows(Arc::new(up_rows)));
                put(&block.down, Cut::Columns(kept.clone()));
                put(&block.gate_bias, Cut::Columns(kept.clone()));
                put(&block.up_bias, Cut::Columns(kept));
            }
            Err(message) => {
                failed.insert(b);
                v.tensor(
                    down.out.name.as_str(),
                    &format!("block {b}"),
                    "every kept channel to be one of the input's, in order",
                    &message,
                );
            }
        }
    }
    Ok((cuts, failed, unmatched))
}

/// The kept input channels of one block, or why there are none.
fn match_channels(
    model: &GgufModel,
    down: &Pair<'_>,
    gate: Option<&Pair<'_>>,
    up: &Pair<'_>,
    fused: bool,
) -> Result<std::result::Result<Vec<u32>, String>> {
    let ne = down.input.ne();
    let (n_ff, n_embd) = (ne[0] as usize, ne[1] as usize);
    let width = down.out.dims[0] as usize;
    if down.out.dims.get(1) != down.input.dims.get(1) || width > n_ff {
        return Ok(Err(format!(
            "{} has dims {:?}, the input's {:?}",
            down.out.name, down.out.dims, down.input.dims
        )));
    }
    if !is_float(down.out.ty) && down.out.ty != down.input.ty {
        return Ok(Err(format!("{} has type {}", down.out.name, down.out.ty)));
    }
    // Down columns, as rows of the transposed matrices.
    let out_ty = if is_float(down.out.ty) {
        down.out.ty
    } else {
        crate::ggml_type::GgmlType::F32
    };
    let out_data = model.tensor_data(down.out_ref);
    let d_out = transpose(
        &bits(&down.out.name, down.out.ty, out_data, out_ty)?,
        width,
        n_embd,
    );
    let d_in = transpose(
        &bits(&down.input.name, down.input.ty, &down.in_data, out_ty)?,
        n_ff,
        n_embd,
    );
    let mask = magnitude_mask(out_ty);
    let same = |o: &[u32], i: &[u32], pruned: bool| {
        o.iter()
            .zip(i)
            .all(|(a, b)| a == b || (pruned && a & mask == 0))
    };
    let rows = |p: &Pair<'_>, n_rows: usize| -> RowView {
        RowView {
            cols: p.input.row_len() as usize,
            n_rows,
            pruned: p.pruned,
        }
    };
    let up_in_rows = if fused { 2 * n_ff } else { n_ff };
    let up_view = rows(up, up_in_rows);
    let gate_view = gate.map(|g| rows(g, n_ff));
    let mut kept = Vec::with_capacity(width);
    let mut i = 0usize;
    for j in 0..width {
        let col_out = &d_out[j * n_embd..(j + 1) * n_embd];
        let mut found = false;
        while i < n_ff {
            let col_in = &d_in[i * n_embd..(i + 1) * n_embd];
            let mut ok = down.refitted || same(col_out, col_in, down.pruned);
            if ok {
                if let (Some(g), Some(view)) = (gate.filter(|g| !g.refitted), &gate_view) {
                    ok = view.row_matches(model, g, j, i)?;
                }
            }
            if ok && !up.refitted {
                ok = up_view.row_matches(model, up, j, i)?;
                if ok && fused {
                    ok = up_view.row_matches(model, up, width + j, n_ff + i)?;
                }
            }
            i += 1;
            if ok {
                kept.push((i - 1) as u32);
                found = true;
                break;
            }
        }
        if !found {
            let after = kept
                .last()
                .map_or("the start".into(), |k| format!("channel {k}"));
            return Ok(Err(format!(
                "output channel {j} (gate/up row {j}, down column {j}) equals no input channel \
                 after {after}"
            )));
        }
    }
    Ok(Ok(kept))
}

/// Compares rows of an output tensor with rows of its input.
struct RowView {
    cols: usize,
    n_rows: usize,
    pruned: bool,
}

impl RowView {
    /// Whether output row `j` is input row `i` (weight for weight after conversion; a zero in
    /// the output matches anything when the tensor is pruned).
    fn row_matches(&self, model: &GgufModel, p: &Pair<'_>, j: usize, i: usize) -> Result<bool> {
        if i >= self.n_rows {
            return Ok(false);
        }
        let out_data = model.tensor_data(p.out_ref);
        let out_row = bytes_of(p.out.ty, self.cols as u64);
        let in_row = bytes_of(p.input.ty, self.cols as u64);
        let (Some(o), Some(x)) = (
            out_data.get(j * out_row..(j + 1) * out_row),
            p.in_data.get(i * in_row..(i + 1) * in_row),
        ) else {
            return Ok(false);
        };
        if p.out.ty == p.input.ty && (!p.pruned || !is_float(p.out.ty)) {
            return Ok(o == x);
        }
        if !is_float(p.out.ty) {
            return Ok(false);
        }
        let mask = magnitude_mask(p.out.ty);
        let o = bits(&p.out.name, p.out.ty, o, p.out.ty)?;
        let x = bits(&p.input.name, p.input.ty, x, p.out.ty)?;
        Ok(o.iter()
            .zip(&x)
            .all(|(a, b)| a == b || (self.pruned && a & mask == 0)))
    }
}

/// The `rows × cols` row-major matrix `m` as `cols × rows`.
fn transpose(m: &[u32], cols: usize, rows: usize) -> Vec<u32> {
    let mut t = vec![0u32; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
}
