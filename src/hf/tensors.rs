//! Which GGUF tensors a checkpoint becomes, in which order and type, and how each one's bytes
//! are made from the safetensors data — as llama.cpp's converter does it.
//!
//! Order: checkpoint tensors shard by shard, sorted by name inside each shard (so layer 10
//! comes before layer 2); stacked MoE experts appear where the last expert of their layer
//! completes the group. Transforms: the Q/K row permutation of the Llama classes, Gemma's `+1`
//! on norm weights (in the checkpoint's precision), Gemma 3's embedding trimmed to the
//! vocabulary, experts stacked along a new outer dimension. Types: 1-D tensors, norms, biases
//! and MoE routers F32; every other weight the output type.

use std::collections::HashMap;

use half::f16;
use rayon::prelude::*;

use super::config::{HfClass, HfConfig};
use super::safetensors::{Safetensors, StDtype, StTensor};
use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;

/// What to do to a source tensor's values before encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transform {
    None,
    /// Llama's Q/K row permutation with this many heads.
    Permute(usize),
    /// Gemma's `+1` on norm weights.
    PlusOne,
    /// Keep only the first rows (Gemma 3's embedding, trimmed to the vocabulary).
    FirstRows(usize),
}

/// One GGUF tensor and how to make it.
#[derive(Debug, Clone)]
pub struct TensorRecipe {
    pub name: String,
    /// Shape in PyTorch order (outermost first).
    pub shape: Vec<u64>,
    pub ty: GgmlType,
    /// The source tensors, concatenated in order (one, or the experts of a stack).
    sources: Vec<usize>,
    transform: Transform,
    /// Values of a tensor the converter generates rather than reads (Phi-3's rope factors).
    generated: Vec<f32>,
}

impl TensorRecipe {
    /// GGUF dims (`ne[0]` first).
    pub fn dims(&self) -> Vec<u64> {
        self.shape.iter().rev().copied().collect()
    }
}

/// Names the converter drops before mapping (`filter_tensors` of the text-model classes and
/// the skips in `prepare_tensors`).
fn dropped(name: &str) -> bool {
    const PREFIXES: [&str; 10] = [
        "mlp",
        "vit.",
        "vpm.",
        "siglip2.",
        "conformer.",
        "merger.",
        "resampler.",
        "sound_encoder.",
        "sound_projection.",
        "speech_embeddings.",
    ];
    const PARTS: [&str; 17] = [
        "visual.",
        "vision.",
        "audio.",
        "talker.",
        "vision_",
        "audio_",
        "token2wav.",
        "code2wav.",
        "projector.",
        "pre_mm_projector_norm",
        "image_newline",
        "view_seperator",
        "patch_embed",
        "patch_embedding",
        "patch_merger.",
        "patch_merge_mlp.",
        "model.connector.",
    ];
    const SUFFIXES: [&str; 3] = [
        ".attention.masked_bias",
        ".attention.bias",
        ".rotary_emb.inv_freq",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p))
        || PARTS.iter().any(|p| name.contains(p))
        || SUFFIXES.iter().any(|p| name.ends_with(p))
}

/// The name after the converter's renames (`language_model.` and, for Llama, `text_model.`
/// removed).
fn renamed(name: &str, class: HfClass) -> String {
    let mut n = name.replace("language_model.", "");
    if class.undo_permute() {
        n = n.replace("text_model.", "");
    }
    n
}

/// A mapped checkpoint tensor.
enum Mapped {
    /// A GGUF tensor of its own.
    Tensor(String),
    /// One expert of a layer's stack: (layer, expert, which matrix).
    Expert(u32, usize, &'static str),
    /// Not converted (Gemma's lm_head).
    Skip,
}

fn map_name(name: &str, class: HfClass) -> Option<Mapped> {
    use HfClass::*;
    let gemma23 = matches!(class, Gemma2 | Gemma3);
    match name {
        "model.embed_tokens.weight" => return Some(Mapped::Tensor("token_embd.weight".into())),
        "model.norm.weight" => return Some(Mapped::Tensor("output_norm.weight".into())),
        "lm_head.weight" => {
            return Some(if matches!(class, Gemma | Gemma2) {
                Mapped::Skip
            } else {
                Mapped::Tensor("output.weight".into())
            })
        }
        _ => {}
    }
    let rest = name.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let bid: u32 = layer.parse().ok()?;
    if layer != bid.to_string() {
        return None;
    }
    // Experts first: they are stacked, not mapped one by one.
    if class == Mixtral {
        if let Some(e) = rest.strip_prefix("block_sparse_moe.experts.") {
            let (x, w) = e.split_once('.')?;
            let which = match w {
                "w1.weight" => "w1",
                "w2.weight" => "w2",
                "w3.weight" => "w3",
                _ => return None,
            };
            return Some(Mapped::Expert(bid, x.parse().ok()?, which));
        }
    }
    if class == Qwen3Moe {
        if let Some(e) = rest.strip_prefix("mlp.experts.") {
            let (x, w) = e.split_once('.')?;
            let which = match w {
                "down_proj.weight" => "down_proj",
                "gate_proj.weight" => "gate_proj",
                "up_proj.weight" => "up_proj",
                _ => return None,
            };
            return Some(Mapped::Expert(bid, x.parse().ok()?, which));
        }
    }
    let (base, suffix) = if let Some(b) = rest.strip_suffix(".weight") {
        (b, "weight")
    } else if let Some(b) = rest.strip_suffix(".bias") {
        (b, "bias")
    } else {
        return None;
    };
    let has_qk_norm = matches!(class, Qwen3 | Qwen3Moe | Gemma3);
    let dense_ffn = !matches!(class, Mixtral | Qwen3Moe);
    let gguf = match base {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" if gemma23 => "post_attention_norm",
        "post_attention_layernorm" => "ffn_norm",
        "pre_feedforward_layernorm" if gemma23 => "ffn_norm",
        "post_feedforward_layernorm" if gemma23 => "post_ffw_norm",
        "self_attn.q_proj" if class != Phi3 => "attn_q",
        "self_attn.k_proj" if class != Phi3 => "attn_k",
        "self_attn.v_proj" if class != Phi3 => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "self_attn.q_norm" if has_qk_norm => "attn_q_norm",
        "self_attn.k_norm" if has_qk_norm => "attn_k_norm",
        "self_attn.qkv_proj" => "attn_qkv",
        "mlp.gate_proj" if dense_ffn && class != Phi3 => "ffn_gate",
        "mlp.up_proj" if dense_ffn => "ffn_up",
        "mlp.down_proj" if dense_ffn => "ffn_down",
        "mlp.gate_up_proj" if class == Phi3 => "ffn_up",
        "block_sparse_moe.gate" if class == Mixtral => "ffn_gate_inp",
        "mlp.gate" if class == Qwen3Moe => "ffn_gate_inp",
        _ => return None,
    };
    Some(Mapped::Tensor(format!("blk.{bid}.{gguf}.{suffix}")))
}

/// The output type of a converted tensor (`prepare_tensors`); `weights` is the type chosen
/// for the weights (F32, F16 or BF16).
fn output_type(name: &str, n_dims: usize, weights: GgmlType) -> GgmlType {
    if n_dims <= 1
        || name.ends_with("_norm.weight")
        || name.ends_with(".ffn_gate_inp.weight")
        || !name.ends_with(".weight")
    {
        GgmlType::F32
    } else {
        weights
    }
}

/// The `--outtype auto` choice: the type of the first tensor with two or more dimensions that
/// is BF16 or F16, in conversion order; F16 when there is none.
pub fn auto_weight_type(st: &Safetensors, order: &[(usize, String)]) -> GgmlType {
    for &(i, _) in order {
        let t = &st.tensors()[i];
        if t.shape.len() < 2 {
            continue;
        }
        match t.dtype {
            StDtype::BF16 => return GgmlType::BF16,
            StDtype::F16 => return GgmlType::F16,
            StDtype::F32 => {}
        }
    }
    GgmlType::F16
}

/// Checkpoint tensors in the converter's order, after its filters, with their (renamed) names.
pub fn conversion_order(st: &Safetensors, class: HfClass) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut shard_start = 0;
    let tensors = st.tensors();
    while shard_start < tensors.len() {
        let shard = tensors[shard_start].shard_index();
        let mut end = shard_start;
        while end < tensors.len() && tensors[end].shard_index() == shard {
            end += 1;
        }
        let mut names: Vec<(usize, String)> = (shard_start..end)
            .filter(|&i| !dropped(&tensors[i].name))
            .map(|i| (i, renamed(&tensors[i].name, class)))
            .collect();
        names.sort_by(|a, b| tensors[a.0].name.cmp(&tensors[b.0].name));
        out.extend(names);
        shard_start = end;
    }
    out
}

/// The recipe of every GGUF tensor of the checkpoint from its tensors in [`conversion_order`].
/// `vocab_len` is the vocabulary size the tokenizer path produces (Gemma 3 trims its embedding
/// to it).
pub fn tensor_recipes(
    cfg: &HfConfig,
    st: &Safetensors,
    order: &[(usize, String)],
    weights: GgmlType,
    vocab_len: usize,
) -> Result<Vec<TensorRecipe>> {
    let class = cfg.class;
    let heads = cfg.u32("num_attention_heads")? as usize;
    let kv_heads = cfg.u32("num_key_value_heads")? as usize;
    let n_experts = match class {
        HfClass::Mixtral => cfg.u32("num_local_experts")? as usize,
        HfClass::Qwen3Moe => cfg.u32("num_experts")? as usize,
        _ => 0,
    };
    let mut recipes = Vec::new();
    // Generated tensors come first.
    let mut generated = cfg.phi3_rope_factors()?;
    if let Some(freqs) = cfg.llama3_rope_freqs()? {
        generated.push(("rope_freqs.weight", freqs));
    }
    for (name, values) in generated {
        recipes.push(TensorRecipe {
            shape: vec![values.len() as u64],
            name: name.to_string(),
            ty: GgmlType::F32,
            sources: Vec::new(),
            transform: Transform::None,
            generated: values,
        });
    }
    // Per layer: expert index -> (matrix name -> source tensor).
    let mut experts: HashMap<u32, HashMap<(usize, &'static str), usize>> = HashMap::new();
    for (idx, name) in order {
        let (idx, name) = (*idx, name.as_str());
        let t = &st.tensors()[idx];
        let mapped = map_name(name, class).ok_or_else(|| Error::Tensor {
            tensor: t.name.clone(),
            message: format!(
                "cannot map this checkpoint tensor to a GGUF name for {}",
                class.name()
            ),
        })?;
        match mapped {
            Mapped::Skip => {}
            Mapped::Tensor(gguf) => {
                let mut shape: Vec<u64> = t.shape.iter().map(|&d| d as u64).collect();
                let mut transform = Transform::None;
                if class.undo_permute() {
                    let n = if name.ends_with("q_proj.weight") || name.ends_with("q_proj.bias") {
                        Some(heads)
                    } else if name.ends_with("k_proj.weight") || name.ends_with("k_proj.bias") {
                        Some(kv_heads)
                    } else {
                        None
                    };
                    if let Some(n) = n {
                        let rows = t.shape[0];
                        if n == 0 || rows % n != 0 || (rows / n) % 2 != 0 {
                            return Err(Error::Tensor {
                                tensor: t.name.clone(),
                                message: format!(
                                    "{rows} rows cannot be split into {n} heads of an even size (config.json disagrees with the tensor)"
                                ),
                            });
                        }
                        transform = Transform::Permute(n);
                    }
                }
                if matches!(class, HfClass::Gemma | HfClass::Gemma2 | HfClass::Gemma3)
                    && name.ends_with("norm.weight")
                {
                    transform = Transform::PlusOne;
                }
                if class == HfClass::Gemma3
                    && name.contains("embed_tokens.weight")
                    && (shape[0] as usize) > vocab_len
                {
                    shape[0] = vocab_len as u64;
                    transform = Transform::FirstRows(vocab_len);
                }
                let ty = output_type(&gguf, shape.len(), weights);
                recipes.push(TensorRecipe {
                    name: gguf,
                    shape,
                    ty,
                    sources: vec![idx],
                    transform,
                    generated: Vec::new(),
                });
            }
            Mapped::Expert(bid, x, which) => {
                let group = experts.entry(bid).or_default();
                group.insert((x, which), idx);
                if group.len() >= 3 * n_experts {
                    let group = experts.remove(&bid).unwrap_or_default();
                    let (order, gguf): (&[&str], &[&str]) = if class == HfClass::Mixtral {
                        (
                            &["w1", "w2", "w3"],
                            &["ffn_gate_exps", "ffn_down_exps", "ffn_up_exps"],
                        )
                    } else {
                        (
                            &["down_proj", "gate_proj", "up_proj"],
                            &["ffn_down_exps", "ffn_gate_exps", "ffn_up_exps"],
                        )
                    };
                    for (w, g) in order.iter().zip(gguf) {
                        let mut sources = Vec::with_capacity(n_experts);
                        for x in 0..n_experts {
                            let src = group.iter().find(|((e, m), _)| *e == x && m == w);
                            let Some((_, &s)) = src else {
                                return Err(Error::Tensor {
                                    tensor: format!("layer {bid} expert {x} {w}"),
                                    message: format!(
                                        "missing from the checkpoint (config.json says {n_experts} experts)"
                                    ),
                                });
                            };
                            sources.push(s);
                        }
                        let first = &st.tensors()[sources[0]];
                        for &s in &sources {
                            let e = &st.tensors()[s];
                            if e.shape != first.shape {
                                return Err(Error::Tensor {
                                    tensor: e.name.clone(),
                                    message: format!(
                                        "shape {:?} differs from expert 0's {:?}",
                                        e.shape, first.shape
                                    ),
                                });
                            }
                        }
                        let mut shape = vec![n_experts as u64];
                        shape.extend(first.shape.iter().map(|&d| d as u64));
                        let name = format!("blk.{bid}.{g}.weight");
                        let ty = output_type(&name, shape.len(), weights);
                        recipes.push(TensorRecipe {
                            name,
                            shape,
                            ty,
                            sources,
                            transform: Transform::None,
                            generated: Vec::new(),
                        });
                    }
                }
            }
        }
    }
    if let Some((bid, group)) = experts.iter().next() {
        return Err(Error::checkpoint(
            cfg.dir.join("config.json"),
            format!(
                "layer {bid} has {} expert tensors, but config.json says {n_experts} experts × 3 matrices",
                group.len()
            ),
        ));
    }
    check_shapes(cfg, &recipes)?;
    Ok(recipes)
}

/// The shapes config.json implies, checked against the tensors (a config that disagrees with
/// the checkpoint is an error, not a file llama.cpp refuses later).
fn check_shapes(cfg: &HfConfig, recipes: &[TensorRecipe]) -> Result<()> {
    let hidden = cfg.u32("hidden_size")? as u64;
    let blocks = cfg.block_count()?;
    let bad = |r: &TensorRecipe, what: String| Error::Tensor {
        tensor: r.name.clone(),
        message: format!("shape {:?} disagrees with config.json: {what}", r.shape),
    };
    for r in recipes {
        if let Some(rest) = r.name.strip_prefix("blk.") {
            let bid: u32 = rest
                .split('.')
                .next()
                .and_then(|b| b.parse().ok())
                .unwrap_or(0);
            if bid >= blocks {
                return Err(bad(r, format!("num_hidden_layers is {blocks}")));
            }
        }
        let last = *r.shape.last().unwrap_or(&0);
        let expects_hidden_in = r.name == "token_embd.weight"
            || r.name == "output.weight"
            || r.name.ends_with(".attn_q.weight")
            || r.name.ends_with(".attn_k.weight")
            || r.name.ends_with(".attn_v.weight")
            || r.name.ends_with(".attn_qkv.weight")
            || r.name.ends_with(".ffn_gate.weight")
            || r.name.ends_with(".ffn_up.weight")
            || r.name.ends_with("_exps.weight") && !r.name.ends_with("ffn_down_exps.weight")
            || r.name.ends_with(".ffn_gate_inp.weight")
            || r.name == "output_norm.weight"
            || r.name.ends_with(".attn_norm.weight")
            || r.name.ends_with(".ffn_norm.weight");
        if expects_hidden_in && last != hidden {
            return Err(bad(r, format!("hidden_size is {hidden}")));
        }
    }
    Ok(())
}

impl TensorRecipe {
    /// Rows of the output: every source contributes its outermost dimension (a 1-D tensor one
    /// row per element), the experts of a stack one after the other.
    pub fn n_rows(&self, st: &Safetensors) -> usize {
        match self.sources.first() {
            None => 1,
            Some(&s) => self.source_rows(&st.tensors()[s]) * self.sources.len(),
        }
    }

    /// Output bytes per row.
    pub fn row_bytes(&self, st: &Safetensors) -> usize {
        let elements = match self.sources.first() {
            None => self.generated.len(),
            Some(&s) => row_len(&st.tensors()[s]),
        };
        elements * self.ty.type_size() as usize
    }

    fn source_rows(&self, t: &StTensor) -> usize {
        match self.transform {
            Transform::FirstRows(n) => n,
            _ => t.shape.first().copied().unwrap_or(1),
        }
    }
}

/// Elements in one row of a source tensor (1 for a 1-D tensor).
fn row_len(t: &StTensor) -> usize {
    t.shape.iter().skip(1).product()
}

/// The source row that output row `row` of a `rows`-row tensor comes from under Llama's Q/K
/// permutation: `out[h*D + 2*b + a] = in[h*D + a*(D/2) + b]`.
fn permuted_source_row(row: usize, rows: usize, n_head: usize) -> usize {
    let d = rows / n_head;
    let (h, w) = (row / d, row % d);
    let (b, a) = (w / 2, w % 2);
    h * d + a * (d / 2) + b
}

/// Makes the whole of one planned tensor into `out`.
pub fn produce(st: &Safetensors, r: &TensorRecipe, out: &mut Vec<u8>) -> Result<()> {
    produce_rows(st, r, 0..r.n_rows(st), out)
}

/// Makes output rows `rows` of a planned tensor into `out` (replacing its contents), in
/// parallel over rows. Nothing but `out` is allocated, so a tensor can be streamed in pieces.
pub fn produce_rows(
    st: &Safetensors,
    r: &TensorRecipe,
    rows: std::ops::Range<usize>,
    out: &mut Vec<u8>,
) -> Result<()> {
    out.clear();
    let Some(&first) = r.sources.first() else {
        // A generated tensor is one row.
        if rows.start < rows.end {
            let dst_len = r.generated.len() * r.ty.type_size() as usize;
            out.resize(dst_len, 0);
            encode_f32(&r.generated, r.ty, out);
        }
        return Ok(());
    };
    let per_source = r.source_rows(&st.tensors()[first]);
    let row_out = r.row_bytes(st);
    out.resize(rows.len() * row_out, 0);
    if row_out == 0 {
        return Ok(());
    }
    out.par_chunks_mut(row_out)
        .zip(rows.into_par_iter())
        .with_min_len(64)
        .for_each(|(dst, k)| {
            let t = &st.tensors()[r.sources[k / per_source]];
            let local = k % per_source;
            let src_row = match r.transform {
                Transform::Permute(n_head) => permuted_source_row(local, per_source, n_head),
                _ => local,
            };
            let n = row_len(t) * t.dtype.size();
            let src = &st.data(t)[src_row * n..(src_row + 1) * n];
            convert_row(src, t.dtype, r.transform == Transform::PlusOne, r.ty, dst);
        });
    Ok(())
}

/// Converts one row as the converter does: F16 stays F16 until the output type is applied,
/// every other dtype becomes F32 first (both exact in f32); Gemma's `+1` is rounded to F16
/// for F16 checkpoints; then NumPy's F16 or gguf-py's BF16 rounding.
fn convert_row(src: &[u8], dtype: StDtype, plus_one: bool, ty: GgmlType, dst: &mut [u8]) {
    let identity = !plus_one
        && matches!(
            (dtype, ty),
            (StDtype::F32, GgmlType::F32) | (StDtype::F16, GgmlType::F16)
        );
    if identity {
        // The converter's round trip through NumPy changes nothing here.
        dst.copy_from_slice(src);
        return;
    }
    let out_size = ty.type_size() as usize;
    for (i, d) in dst.chunks_exact_mut(out_size).enumerate() {
        let mut v = match dtype {
            StDtype::F32 => {
                f32::from_le_bytes([src[4 * i], src[4 * i + 1], src[4 * i + 2], src[4 * i + 3]])
            }
            StDtype::F16 => {
                f16::from_bits(u16::from_le_bytes([src[2 * i], src[2 * i + 1]])).to_f32()
            }
            StDtype::BF16 => {
                f32::from_bits((u16::from_le_bytes([src[2 * i], src[2 * i + 1]]) as u32) << 16)
            }
        };
        if plus_one {
            v += 1.0;
            if dtype == StDtype::F16 {
                v = f16::from_f32(v).to_f32();
            }
        }
        encode_one(v, ty, d);
    }
}

/// Encodes `values` into `dst` (exactly `values.len()` elements of `ty`).
fn encode_f32(values: &[f32], ty: GgmlType, dst: &mut [u8]) {
    let size = ty.type_size() as usize;
    for (d, v) in dst.chunks_exact_mut(size).zip(values) {
        encode_one(*v, ty, d);
    }
}

fn encode_one(v: f32, ty: GgmlType, dst: &mut [u8]) {
    match ty {
        GgmlType::F32 => dst.copy_from_slice(&v.to_le_bytes()),
        GgmlType::F16 => dst.copy_from_slice(&f32_to_f16_numpy(v).to_le_bytes()),
        _ => dst.copy_from_slice(&f32_to_bf16_ggufpy(v).to_le_bytes()),
    }
}

/// NumPy's `astype(float16)`: round to nearest even; a NaN keeps its top mantissa bits and is
/// not quieted (unlike `half::f16::from_f32`, which differs for NaN only).
pub fn f32_to_f16_numpy(v: f32) -> u16 {
    let bits = v.to_bits();
    if v.is_nan() {
        let sign = ((bits >> 16) & 0x8000) as u16;
        let mut h = sign | 0x7c00 | ((bits & 0x007f_ffff) >> 13) as u16;
        if h == sign | 0x7c00 {
            h += 1;
        }
        return h;
    }
    f16::from_f32(v).to_bits()
}

/// gguf-py's F32 → BF16: NaN keeps its top bits with the quiet bit set; otherwise round to
/// nearest even on the top 16 bits.
pub fn f32_to_bf16_ggufpy(v: f32) -> u16 {
    let mut n = v.to_bits();
    if n & 0x7fff_ffff > 0x7f80_0000 {
        n = (n & 0xffff_0000) | 0x0040_0000;
    }
    ((n as u64 + (0x7fff + ((n >> 16) & 1) as u64)) >> 16) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_matches_the_reshape_swapaxes_definition() {
        // W.reshape(n, 2, D/2, cols).swapaxes(1, 2).reshape(rows, cols) with 2 heads of 4
        // rows: the rows of a head come out as [0, 2, 1, 3].
        let order: Vec<usize> = (0..8).map(|r| permuted_source_row(r, 8, 2)).collect();
        assert_eq!(order, [0, 2, 1, 3, 4, 6, 5, 7]);
        let order: Vec<usize> = (0..6).map(|r| permuted_source_row(r, 6, 1)).collect();
        assert_eq!(order, [0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn f16_rounding_matches_numpy_including_nan_payloads() {
        assert_eq!(f32_to_f16_numpy(f32::from_bits(0x7f80_0001)), 0x7c01);
        assert_eq!(f32_to_f16_numpy(f32::from_bits(0xffc0_0001)), 0xfe00);
        assert_eq!(f32_to_f16_numpy(f32::from_bits(0x7fc0_0000)), 0x7e00);
        assert_eq!(f32_to_f16_numpy(2.980_232_2e-8), 0x0000);
        assert_eq!(f32_to_f16_numpy(2.980_232_6e-8), 0x0001);
        assert_eq!(f32_to_f16_numpy(65520.0), 0x7c00);
        assert_eq!(f32_to_f16_numpy(f32::INFINITY), 0x7c00);
        assert_eq!(f32_to_f16_numpy(1.0), 0x3c00);
    }

    #[test]
    fn bf16_rounding_matches_gguf_py() {
        assert_eq!(f32_to_bf16_ggufpy(f32::from_bits(0x0000_ffff)), 0x0001);
        assert_eq!(f32_to_bf16_ggufpy(f32::from_bits(0x7f7f_ffff)), 0x7f80);
        assert_eq!(f32_to_bf16_ggufpy(f32::from_bits(0x3f80_8000)), 0x3f80); // tie to even
        assert_eq!(f32_to_bf16_ggufpy(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(f32_to_bf16_ggufpy(f32::from_bits(0x7f80_0001)), 0x7fc0);
    }

    #[test]
    fn llama3_rope_factors_match_the_converter() {
        // Values from llama.cpp's converter under PyTorch (Llama-3.2-1B's rope_scaling).
        let dir = tempfile::tempdir().unwrap();
        let config = serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "hidden_size": 2048, "num_attention_heads": 32, "head_dim": 64,
            "rope_theta": 500000.0,
            "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}});
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        let cfg = HfConfig::open(dir.path()).unwrap();
        let f = cfg.llama3_rope_freqs().unwrap().unwrap();
        let bits: Vec<u32> = f.iter().map(|v| v.to_bits()).collect();
        let mut want = vec![0x3f80_0000u32; 15];
        want.extend([0x3fd3_5ec2, 0x4052_b46f, 0x411a_aaee]);
        want.extend([0x4200_0000; 14]);
        assert_eq!(bits, want);
    }

    #[test]
    fn names_map_per_architecture() {
        let m = |n: &str, c| match map_name(n, c) {
            Some(Mapped::Tensor(s)) => s,
            Some(Mapped::Skip) => "skip".into(),
            Some(Mapped::Expert(b, x, w)) => format!("expert {b} {x} {w}"),
            None => "none".into(),
        };
        assert_eq!(
            m(
                "model.layers.3.post_attention_layernorm.weight",
                HfClass::Llama
            ),
            "blk.3.ffn_norm.weight"
        );
        assert_eq!(
            m(
                "model.layers.3.post_attention_layernorm.weight",
                HfClass::Gemma3
            ),
            "blk.3.post_attention_norm.weight"
        );
        assert_eq!(
            m("model.layers.0.self_attn.q_proj.bias", HfClass::Qwen2),
            "blk.0.attn_q.bias"
        );
        assert_eq!(
            m("model.layers.0.self_attn.q_norm.weight", HfClass::Qwen2),
            "none"
        );
        assert_eq!(
            m("model.layers.1.mlp.gate_up_proj.weight", HfClass::Phi3),
            "blk.1.ffn_up.weight"
        );
        assert_eq!(
            m("model.layers.1.mlp.gate_proj.weight", HfClass::Phi3),
            "none"
        );
        assert_eq!(m("lm_head.weight", HfClass::Gemma2), "skip");
        assert_eq!(m("lm_head.weight", HfClass::Gemma3), "output.weight");
        assert_eq!(
            m(
                "model.layers.2.block_sparse_moe.experts.5.w3.weight",
                HfClass::Mixtral
            ),
            "expert 2 5 w3"
        );
        assert_eq!(
            m("model.layers.02.input_layernorm.weight", HfClass::Llama),
            "none"
        );
    }
}
