//! Weights as `verify` compares them: every value as the bit pattern of the output tensor's
//! float type (F32, F16 or BF16), the input's after the conversion convert makes (exact
//! dequantization to f32, then round to nearest even), and the input cut to the kept channels.

use half::{bf16, f16};
use rayon::prelude::*;

use crate::channels::Cut;
use crate::dequant::dequantize;
use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use crate::gguf::TensorInfo;

/// Elements per parallel work item.
const CHUNK: usize = 1 << 16;

/// Whether a pruned tensor can be written in `ty` (convert writes only these).
pub fn is_float(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
}

/// The bits of `ty` that are not the sign: a value is zero when these are all 0.
pub fn magnitude_mask(ty: GgmlType) -> u32 {
    match ty {
        GgmlType::F32 => 0x7FFF_FFFF,
        _ => 0x7FFF,
    }
}

/// A value of float type `ty` given as its bits, as f32 (for messages).
pub fn to_f32(ty: GgmlType, bits: u32) -> f32 {
    match ty {
        GgmlType::F32 => f32::from_bits(bits),
        GgmlType::F16 => f16::from_bits(bits as u16).to_f32(),
        _ => bf16::from_bits(bits as u16).to_f32(),
    }
}

fn encode(ty: GgmlType, x: f32) -> u32 {
    match ty {
        GgmlType::F32 => x.to_bits(),
        GgmlType::F16 => f16::from_f32(x).to_bits().into(),
        _ => bf16::from_f32(x).to_bits().into(),
    }
}

/// Bytes of `n` elements of `ty` (a whole number of blocks).
pub fn bytes_of(ty: GgmlType, n: u64) -> usize {
    (n / ty.block_size() * ty.type_size()) as usize
}

/// `data` (elements of `ty`, a whole number of blocks) as bits of float type `out`: the raw
/// bits when the types agree, otherwise dequantized and rounded to `out`.
pub fn bits(name: &str, ty: GgmlType, data: &[u8], out: GgmlType) -> Result<Vec<u32>> {
    let n = (data.len() as u64 / ty.type_size() * ty.block_size()) as usize;
    let mut bits = vec![0u32; n];
    match (ty, out) {
        (GgmlType::F32, GgmlType::F32) => bits
            .par_chunks_mut(CHUNK)
            .zip(data.par_chunks(CHUNK * 4))
            .for_each(|(b, d)| {
                for (x, c) in b.iter_mut().zip(d.chunks_exact(4)) {
                    *x = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }),
        (GgmlType::F16, GgmlType::F16) | (GgmlType::BF16, GgmlType::BF16) => bits
            .par_chunks_mut(CHUNK)
            .zip(data.par_chunks(CHUNK * 2))
            .for_each(|(b, d)| {
                for (x, c) in b.iter_mut().zip(d.chunks_exact(2)) {
                    *x = u16::from_le_bytes([c[0], c[1]]).into();
                }
            }),
        _ => {
            let chunk_bytes = bytes_of(
                ty,
                (CHUNK as u64 / ty.block_size()).max(1) * ty.block_size(),
            );
            let per_chunk = (chunk_bytes as u64 / ty.type_size() * ty.block_size()) as usize;
            bits.par_chunks_mut(per_chunk)
                .zip(data.par_chunks(chunk_bytes))
                .try_for_each_init(Vec::new, |w: &mut Vec<f32>, (b, d)| -> Result<()> {
                    w.resize(b.len(), 0.0);
                    dequantize(ty, d, w).map_err(|e| Error::Tensor {
                        tensor: name.to_string(),
                        message: e.to_string(),
                    })?;
                    for (x, v) in b.iter_mut().zip(w.iter()) {
                        *x = encode(out, *v);
                    }
                    Ok(())
                })?;
        }
    }
    Ok(bits)
}

/// The dims `info` has after `cut`.
pub fn cut_dims(info: &TensorInfo, cut: &Cut) -> Vec<u64> {
    let mut dims = info.dims.clone();
    match cut {
        Cut::Rows(kept) if dims.len() >= 2 => dims[1] = kept.len() as u64,
        Cut::Rows(_) => {}
        Cut::Columns(kept) => dims[0] = kept.len() as u64,
    }
    dims
}

/// The input tensor cut to the kept rows or columns, as bits of float type `out`.
pub fn cut_bits(info: &TensorInfo, data: &[u8], cut: &Cut, out: GgmlType) -> Result<Vec<u32>> {
    let cols = info.row_len() as usize;
    let row_bytes = bytes_of(info.ty, cols as u64);
    match cut {
        Cut::Rows(kept) => {
            let mut all = Vec::with_capacity(kept.len() * cols);
            for &r in kept.iter() {
                let at = r as usize * row_bytes;
                let row = data.get(at..at + row_bytes).ok_or_else(|| short(info))?;
                all.extend(bits(&info.name, info.ty, row, out)?);
            }
            Ok(all)
        }
        Cut::Columns(kept) => {
            let whole = bits(&info.name, info.ty, data, out)?;
            let mut all = Vec::with_capacity(kept.len() * info.n_rows() as usize);
            for row in whole.chunks(cols.max(1)) {
                for &c in kept.iter() {
                    all.push(*row.get(c as usize).ok_or_else(|| short(info))?);
                }
            }
            Ok(all)
        }
    }
}

fn short(info: &TensorInfo) -> Error {
    Error::Tensor {
        tensor: info.name.clone(),
        message: "a kept channel lies outside the tensor".into(),
    }
}
