//! Dequantization of ggml tensor data to `f32`.
//!
//! Every kernel mirrors ggml's reference `dequantize_row_*` in `ggml-quants.c`: the same
//! operands, the same evaluation order and the same intermediate `f32` roundings (Rust never
//! contracts `a*b + c` into a fused multiply-add), so the output is bit-for-bit what ggml's
//! generic C code produces. Sources are read byte-wise in little-endian order, so they may sit at
//! any alignment (tensor data comes straight from a memory map).
//!
//! The functions here are pure and single-threaded; callers parallelise over slices.

// Index loops mirror ggml's C loops one-to-one, which keeps the evaluation order auditable.
#![allow(clippy::needless_range_loop)]

use half::f16;
use half::slice::HalfFloatSliceExt;
use thiserror::Error;

use crate::ggml_type::GgmlType;

/// Why [`dequantize`] refused its input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DequantError {
    /// There is no `f32` conversion for this type (integer types, IQ grid types, …).
    #[error("cannot dequantize tensors of type {0}")]
    Unsupported(GgmlType),
    /// The source is not a whole number of blocks, or the destination does not hold exactly
    /// the number of elements those blocks encode.
    #[error(
        "{ty}: {src_bytes} source bytes do not decode to {dst_elements} elements \
         (blocks of {block_size} elements in {type_size} bytes)"
    )]
    LengthMismatch {
        ty: GgmlType,
        src_bytes: usize,
        dst_elements: usize,
        block_size: usize,
        type_size: usize,
    },
}

/// A whole-slice kernel; lengths are validated by [`dequantize`] before it is called.
type Kernel = fn(&[u8], &mut [f32]);

/// The kernel for `ty`, or `None` when the type cannot be dequantized. This is the single
/// source of truth for [`can_dequantize`] and [`dequantize`].
fn kernel(ty: GgmlType) -> Option<Kernel> {
    use GgmlType::*;
    Some(match ty {
        F32 => f32_row,
        F16 => f16_row,
        BF16 => bf16_row,
        Q4_0 => |s, d| each_block(s, d, q4_0),
        Q4_1 => |s, d| each_block(s, d, q4_1),
        Q5_0 => |s, d| each_block(s, d, q5_0),
        Q5_1 => |s, d| each_block(s, d, q5_1),
        Q8_0 => |s, d| each_block(s, d, q8_0),
        Q2_K => |s, d| each_block(s, d, q2_k),
        Q3_K => |s, d| each_block(s, d, q3_k),
        Q4_K => |s, d| each_block(s, d, q4_k),
        Q5_K => |s, d| each_block(s, d, q5_k),
        Q6_K => |s, d| each_block(s, d, q6_k),
        TQ1_0 => |s, d| each_block(s, d, tq1_0),
        TQ2_0 => |s, d| each_block(s, d, tq2_0),
        IQ4_NL => |s, d| each_block(s, d, iq4_nl),
        IQ4_XS => |s, d| each_block(s, d, iq4_xs),
        MXFP4 => |s, d| each_block(s, d, mxfp4),
        // Integer tensors are not weights to prune; the rest have no kernel (yet).
        Q8_1 | Q8_K | IQ2_XXS | IQ2_XS | IQ3_XXS | IQ1_S | IQ3_S | IQ2_S | IQ1_M | I8 | I16
        | I32 | I64 | F64 | NVFP4 | Q1_0 | Q2_0 => return None,
    })
}

/// True when [`dequantize`] can convert tensors of type `ty`.
pub fn can_dequantize(ty: GgmlType) -> bool {
    kernel(ty).is_some()
}

/// Converts `src`, a run of whole `ty` blocks in file (little-endian) layout at any alignment,
/// into `dst`, which must hold exactly the number of elements those blocks encode.
///
/// The result is bit-for-bit equal to ggml's reference `dequantize_row_*` for the type.
pub fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), DequantError> {
    let run = kernel(ty).ok_or(DequantError::Unsupported(ty))?;
    let block_size = ty.block_size() as usize;
    let type_size = ty.type_size() as usize;
    let fits = src.len() % type_size == 0
        && (src.len() / type_size).checked_mul(block_size) == Some(dst.len());
    if !fits {
        return Err(DequantError::LengthMismatch {
            ty,
            src_bytes: src.len(),
            dst_elements: dst.len(),
            block_size,
            type_size,
        });
    }
    run(src, dst);
    Ok(())
}

/// Applies a per-block kernel over matching chunks. The fixed-size array arguments let the
/// compiler drop bounds checks inside the kernels.
#[inline(always)]
fn each_block<const TS: usize, const BS: usize>(
    src: &[u8],
    dst: &mut [f32],
    block: fn(&[u8; TS], &mut [f32; BS]),
) {
    debug_assert_eq!(src.len() / TS * BS, dst.len());
    for (b, y) in src.chunks_exact(TS).zip(dst.chunks_exact_mut(BS)) {
        let b: &[u8; TS] = b.try_into().expect("chunks_exact yields TS bytes");
        let y: &mut [f32; BS] = y.try_into().expect("chunks_exact_mut yields BS floats");
        block(b, y);
    }
}

/// The IEEE half at `b[i..i+2]` (ggml's `GGML_FP16_TO_FP32`; all IEEE conversions agree).
#[inline(always)]
fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]])).to_f32()
}

// ---------------------------------------------------------------------------------------------
// Plain float types

fn f32_row(src: &[u8], dst: &mut [f32]) {
    if cfg!(target_endian = "little") {
        if let Ok(v) = bytemuck::try_cast_slice::<u8, f32>(src) {
            dst.copy_from_slice(v);
            return;
        }
    }
    for (c, y) in src.chunks_exact(4).zip(dst.iter_mut()) {
        *y = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
}

/// Elements staged per round when the F16 source is misaligned.
const F16_STAGE: usize = 1024;

/// IEEE half → single. Signalling NaNs come out quiet, as from ggml's conversion (which
/// multiplies by 2^-112); numpy's `astype`, used by gguf-py, keeps them signalling.
fn f16_row(src: &[u8], dst: &mut [f32]) {
    if cfg!(target_endian = "little") {
        if let Ok(h) = bytemuck::try_cast_slice::<u8, f16>(src) {
            h.convert_to_f32_slice(dst);
            return;
        }
    }
    // Misaligned (or big-endian): copy into an aligned stack buffer so the vectorised
    // conversion still does the work.
    let mut stage = [f16::ZERO; F16_STAGE];
    for (s, y) in src.chunks(2 * F16_STAGE).zip(dst.chunks_mut(F16_STAGE)) {
        let stage = &mut stage[..y.len()];
        for (h, c) in stage.iter_mut().zip(s.chunks_exact(2)) {
            *h = f16::from_bits(u16::from_le_bytes([c[0], c[1]]));
        }
        stage.convert_to_f32_slice(y);
    }
}

/// ggml's `GGML_BF16_TO_FP32` is a bare `bits << 16`. `half`'s bf16 conversion additionally
/// sets the quiet bit of signalling NaNs, so it is not used here.
fn bf16_row(src: &[u8], dst: &mut [f32]) {
    for (c, y) in src.chunks_exact(2).zip(dst.iter_mut()) {
        *y = f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16);
    }
}

// ---------------------------------------------------------------------------------------------
// 32-element blocks

/// `block_q4_0 {half d; u8 qs[16]}`
fn q4_0(b: &[u8; 18], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        let x0 = (qs[j] & 0x0F) as i32 - 8;
        let x1 = (qs[j] >> 4) as i32 - 8;
        y[j] = x0 as f32 * d;
        y[j + 16] = x1 as f32 * d;
    }
}

/// `block_q4_1 {half d; half m; u8 qs[16]}`
fn q4_1(b: &[u8; 20], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qs = &b[4..20];
    for j in 0..16 {
        let x0 = qs[j] & 0x0F;
        let x1 = qs[j] >> 4;
        y[j] = x0 as f32 * d + m;
        y[j + 16] = x1 as f32 * d + m;
    }
}

/// `block_q5_0 {half d; u8 qh[4]; u8 qs[16]}`
fn q5_0(b: &[u8; 22], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let qs = &b[6..22];
    for j in 0..16 {
        let xh0 = (((qh >> j) << 4) & 0x10) as u8;
        let xh1 = ((qh >> (j + 12)) & 0x10) as u8;
        let x0 = ((qs[j] & 0x0F) | xh0) as i32 - 16;
        let x1 = ((qs[j] >> 4) | xh1) as i32 - 16;
        y[j] = x0 as f32 * d;
        y[j + 16] = x1 as f32 * d;
    }
}

/// `block_q5_1 {half d; half m; u8 qh[4]; u8 qs[16]}`
fn q5_1(b: &[u8; 24], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let qs = &b[8..24];
    for j in 0..16 {
        let xh0 = (((qh >> j) << 4) & 0x10) as u8;
        let xh1 = ((qh >> (j + 12)) & 0x10) as u8;
        let x0 = (qs[j] & 0x0F) | xh0;
        let x1 = (qs[j] >> 4) | xh1;
        y[j] = x0 as f32 * d + m;
        y[j + 16] = x1 as f32 * d + m;
    }
}

/// `block_q8_0 {half d; i8 qs[32]}`
fn q8_0(b: &[u8; 34], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    for j in 0..32 {
        y[j] = b[2 + j] as i8 as f32 * d;
    }
}

/// ggml's `kvalues_iq4nl`: the non-linear 4-bit code book.
const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// `block_iq4_nl {half d; u8 qs[16]}`
fn iq4_nl(b: &[u8; 18], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        y[j] = d * KVALUES_IQ4NL[(qs[j] & 0x0F) as usize] as f32;
        y[j + 16] = d * KVALUES_IQ4NL[(qs[j] >> 4) as usize] as f32;
    }
}

/// ggml's `kvalues_mxfp4`: E2M1 values, doubled (hence the halved scale below).
const KVALUES_MXFP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// ggml's `ggml_e8m0_to_fp32_half`: `2^(e-127) / 2`, built from bits. e = 0 and 1 give the
/// subnormals 2^-128 and 2^-127; e = 255 gives 2^127 (ggml does not special-case NaN).
#[inline(always)]
fn e8m0_to_f32_half(e: u8) -> f32 {
    let bits = if e < 2 {
        0x0020_0000u32 << e
    } else {
        u32::from(e - 1) << 23
    };
    f32::from_bits(bits)
}

/// `block_mxfp4 {u8 e; u8 qs[16]}`
fn mxfp4(b: &[u8; 17], y: &mut [f32; 32]) {
    let d = e8m0_to_f32_half(b[0]);
    let qs = &b[1..17];
    for j in 0..16 {
        let x0 = KVALUES_MXFP4[(qs[j] & 0x0F) as usize];
        let x1 = KVALUES_MXFP4[(qs[j] >> 4) as usize];
        y[j] = x0 as f32 * d;
        y[j + 16] = x1 as f32 * d;
    }
}

// ---------------------------------------------------------------------------------------------
// 256-element super-blocks

/// `block_q2_K {u8 scales[16]; u8 qs[64]; half d; half dmin}`
fn q2_k(b: &[u8; 84], y: &mut [f32; 256]) {
    let scales = &b[0..16];
    let qs = &b[16..80];
    let d = f16_at(b, 80);
    let min = f16_at(b, 82);
    // Output sub-block k (16 elements) is ggml's `is`: half n, shift 2j, q[0..16] or q[16..32].
    for (k, out) in y.chunks_exact_mut(16).enumerate() {
        let (n, j, h) = (k / 8, (k % 8) / 2, k % 2);
        let sc = scales[k];
        let dl = d * (sc & 0x0F) as f32;
        let ml = min * (sc >> 4) as f32;
        let q = &qs[32 * n + 16 * h..32 * n + 16 * h + 16];
        // A u32 shift vectorises; per-byte shifts by a variable amount do not.
        let shift = 2 * j as u32;
        for l in 0..16 {
            out[l] = dl * ((u32::from(q[l]) >> shift) & 3) as f32 - ml;
        }
    }
}

/// `block_q3_K {u8 hmask[32]; u8 qs[64]; u8 scales[12]; half d}`
fn q3_k(b: &[u8; 110], y: &mut [f32; 256]) {
    let hm = &b[0..32];
    let qs = &b[32..96];
    let s = &b[96..108];
    let d_all = f16_at(b, 108);
    // Same sub-block walk as Q2_K; the hmask bit advances with every (n, j) pair.
    for (k, out) in y.chunks_exact_mut(16).enumerate() {
        let (n, j, h) = (k / 8, (k % 8) / 2, k % 2);
        // Six-bit scale k: low nibble from bytes 0..8, high bit pair from bytes 8..12.
        let lo4 = if k < 8 { s[k] & 0x0F } else { s[k - 8] >> 4 };
        let hi2 = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
        let dl = d_all * ((lo4 | (hi2 << 4)) as i32 - 32) as f32;
        let q = &qs[32 * n + 16 * h..32 * n + 16 * h + 16];
        let hmk = &hm[16 * h..16 * h + 16];
        let shift = 2 * j as u32;
        let mbit = (4 * n + j) as u32;
        for l in 0..16 {
            let low = ((u32::from(q[l]) >> shift) & 3) as i32;
            // ggml subtracts 4 when the mask bit is clear.
            let high = (((u32::from(hmk[l]) >> mbit) & 1) ^ 1) as i32 * 4;
            out[l] = dl * (low - high) as f32;
        }
    }
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` of Q4_K/Q5_K.
#[inline(always)]
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// `block_q4_K {half d; half dmin; u8 scales[12]; u8 qs[128]}`
fn q4_k(b: &[u8; 144], y: &mut [f32; 256]) {
    let d = f16_at(b, 0);
    let min = f16_at(b, 2);
    let scales = &b[4..16];
    let qs = &b[16..144];
    for c in 0..4 {
        let (sc, m) = scale_min_k4(2 * c, scales);
        let (d1, m1) = (d * sc as f32, min * m as f32);
        let (sc, m) = scale_min_k4(2 * c + 1, scales);
        let (d2, m2) = (d * sc as f32, min * m as f32);
        let q = &qs[32 * c..32 * c + 32];
        let (lo, hi) = y[64 * c..64 * c + 64].split_at_mut(32);
        for l in 0..32 {
            lo[l] = d1 * (q[l] & 0x0F) as f32 - m1;
        }
        for l in 0..32 {
            hi[l] = d2 * (q[l] >> 4) as f32 - m2;
        }
    }
}

/// `block_q5_K {half d; half dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}`
fn q5_k(b: &[u8; 176], y: &mut [f32; 256]) {
    let d = f16_at(b, 0);
    let min = f16_at(b, 2);
    let scales = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    for c in 0..4 {
        let (sc, m) = scale_min_k4(2 * c, scales);
        let (d1, m1) = (d * sc as f32, min * m as f32);
        let (sc, m) = scale_min_k4(2 * c + 1, scales);
        let (d2, m2) = (d * sc as f32, min * m as f32);
        let u1 = 1u8 << (2 * c);
        let u2 = 2u8 << (2 * c);
        let ql = &qs[32 * c..32 * c + 32];
        let (lo, hi) = y[64 * c..64 * c + 64].split_at_mut(32);
        for l in 0..32 {
            let high = if qh[l] & u1 != 0 { 16 } else { 0 };
            lo[l] = d1 * ((ql[l] & 0x0F) + high) as f32 - m1;
        }
        for l in 0..32 {
            let high = if qh[l] & u2 != 0 { 16 } else { 0 };
            hi[l] = d2 * ((ql[l] >> 4) + high) as f32 - m2;
        }
    }
}

/// `block_q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; half d}`
fn q6_k(b: &[u8; 210], y: &mut [f32; 256]) {
    let d = f16_at(b, 208);
    for n in 0..2 {
        let ql = &b[64 * n..64 * n + 64];
        let qh = &b[128 + 32 * n..128 + 32 * n + 32];
        let sc = &b[192 + 8 * n..192 + 8 * n + 8];
        let out = &mut y[128 * n..128 * n + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            // `d * sc * q` in C is `(d * sc) * q`.
            out[l] = d * sc[is] as i8 as f32 * q1 as f32;
            out[l + 32] = d * sc[is + 2] as i8 as f32 * q2 as f32;
            out[l + 64] = d * sc[is + 4] as i8 as f32 * q3 as f32;
            out[l + 96] = d * sc[is + 6] as i8 as f32 * q4 as f32;
        }
    }
}

/// The base-3 digit of a TQ1_0 byte selected by multiplying with `3^n` (mod 256): the byte
/// holds a fixed-point fraction whose leading ternary digit is `(q * 3) >> 8`.
#[inline(always)]
fn trit(byte: u8, pow3: u8) -> f32 {
    let q = byte.wrapping_mul(pow3);
    let xi = ((u16::from(q) * 3) >> 8) as i16;
    (xi - 1) as f32
}

/// `block_tq1_0 {u8 qs[48]; u8 qh[4]; half d}`
fn tq1_0(b: &[u8; 54], y: &mut [f32; 256]) {
    const POW3: [u8; 6] = [1, 3, 9, 27, 81, 243];
    let qs = &b[0..48];
    let qh = &b[48..52];
    let d = f16_at(b, 52);
    // qs[0..32]: five trits each → y[0..160]
    for n in 0..5 {
        for m in 0..32 {
            y[32 * n + m] = trit(qs[m], POW3[n]) * d;
        }
    }
    // qs[32..48]: five trits each → y[160..240]
    for n in 0..5 {
        for m in 0..16 {
            y[160 + 16 * n + m] = trit(qs[32 + m], POW3[n]) * d;
        }
    }
    // qh[0..4]: four trits each → y[240..256]
    for n in 0..4 {
        for j in 0..4 {
            y[240 + 4 * n + j] = trit(qh[j], POW3[n]) * d;
        }
    }
}

/// `block_tq2_0 {u8 qs[64]; half d}`
fn tq2_0(b: &[u8; 66], y: &mut [f32; 256]) {
    let d = f16_at(b, 64);
    for j in 0..2 {
        for l in 0..4 {
            let out = &mut y[128 * j + 32 * l..128 * j + 32 * l + 32];
            for m in 0..32 {
                let q = ((b[32 * j + m] >> (2 * l)) & 3) as i32;
                out[m] = (q - 1) as f32 * d;
            }
        }
    }
}

/// `block_iq4_xs {half d; u16 scales_h; u8 scales_l[4]; u8 qs[128]}`
fn iq4_xs(b: &[u8; 136], y: &mut [f32; 256]) {
    let d = f16_at(b, 0);
    let scales_h = u16::from_le_bytes([b[2], b[3]]);
    let scales_l = &b[4..8];
    let qs = &b[8..136];
    for ib in 0..8 {
        let lo = (scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F;
        let hi = ((scales_h >> (2 * ib)) & 3) as u8;
        let ls = (lo | (hi << 4)) as i32;
        let dl = d * (ls - 32) as f32;
        let q = &qs[16 * ib..16 * ib + 16];
        let out = &mut y[32 * ib..32 * ib + 32];
        for j in 0..16 {
            out[j] = dl * KVALUES_IQ4NL[(q[j] & 0x0F) as usize] as f32;
            out[j + 16] = dl * KVALUES_IQ4NL[(q[j] >> 4) as usize] as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use GgmlType::*;

    const SUPPORTED: [GgmlType; 18] = [
        F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, TQ1_0, TQ2_0,
        IQ4_NL, IQ4_XS, MXFP4,
    ];

    /// Small deterministic generator, so the tests need no extra dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    fn h(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_bits().to_le_bytes()
    }

    fn deq(ty: GgmlType, src: &[u8]) -> Vec<f32> {
        let n = src.len() / ty.type_size() as usize * ty.block_size() as usize;
        let mut out = vec![f32::NAN; n];
        dequantize(ty, src, &mut out).unwrap();
        out
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Random blocks with every f16 scale field replaced by a finite value, so the
    /// element-wise references below are comparable without NaN noise.
    fn random_blocks(ty: GgmlType, n: usize, rng: &mut Rng) -> Vec<u8> {
        let ts = ty.type_size() as usize;
        let mut v = rng.bytes(ts * n);
        let f16_fields: &[usize] = match ty {
            Q4_0 | Q5_0 | Q8_0 | IQ4_NL | IQ4_XS => &[0],
            Q4_1 | Q5_1 | Q4_K | Q5_K => &[0, 2],
            Q2_K => &[80, 82],
            Q3_K => &[108],
            Q6_K => &[208],
            TQ1_0 => &[52],
            TQ2_0 => &[64],
            _ => &[],
        };
        for (i, blk) in v.chunks_exact_mut(ts).enumerate() {
            for &o in f16_fields {
                let x = ((i % 7) as f32 - 3.0) * 0.013 + 0.001 * o as f32;
                blk[o..o + 2].copy_from_slice(&h(x));
            }
        }
        v
    }

    #[test]
    fn kernel_block_sizes_match_the_type_table() {
        // A kernel with the wrong const sizes would be caught here via the length check.
        let mut rng = Rng(1);
        for &ty in &SUPPORTED {
            let src = random_blocks(ty, 3, &mut rng);
            let out = deq(ty, &src);
            assert_eq!(out.len(), 3 * ty.block_size() as usize, "{ty}");
        }
    }

    #[test]
    fn supported_set_is_exactly_the_expected_one() {
        for &ty in GgmlType::all() {
            assert_eq!(can_dequantize(ty), SUPPORTED.contains(&ty), "{ty}");
            let r = dequantize(ty, &[], &mut []);
            if can_dequantize(ty) {
                assert_eq!(r, Ok(()));
            } else {
                assert_eq!(r, Err(DequantError::Unsupported(ty)));
            }
        }
        for ty in [I8, I16, I32, I64, F64] {
            assert!(!can_dequantize(ty));
        }
    }

    #[test]
    fn length_errors() {
        let mut out = [0f32; 64];
        // 17 bytes: not a whole Q4_0 block.
        assert!(matches!(
            dequantize(Q4_0, &[0; 17], &mut out[..32]),
            Err(DequantError::LengthMismatch {
                src_bytes: 17,
                dst_elements: 32,
                ..
            })
        ));
        // One block, but room for two.
        assert!(matches!(
            dequantize(Q4_0, &[0; 18], &mut out),
            Err(DequantError::LengthMismatch { .. })
        ));
        // Two blocks, room for one.
        assert!(dequantize(Q4_K, &[0; 288], &mut [0f32; 256]).is_err());
        assert!(dequantize(F16, &[0; 3], &mut out[..1]).is_err());
        assert!(dequantize(F32, &[0; 8], &mut out[..1]).is_err());
        // Unsupported wins over a length problem.
        assert_eq!(
            dequantize(I32, &[0; 3], &mut out),
            Err(DequantError::Unsupported(I32))
        );
        let msg = dequantize(Q4_0, &[0; 17], &mut out[..32])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("Q4_0") && msg.contains("17"), "{msg}");
    }

    #[test]
    fn q4_0_hand_block() {
        let mut b = h(1.0).to_vec();
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let y = deq(Q4_0, &b);
        for j in 0..16 {
            assert_eq!(y[j], j as f32 - 8.0);
            assert_eq!(y[j + 16], 7.0 - j as f32);
        }
        // Negative scale flips signs; d = 0 gives +0 / -0 exactly as `q * 0.0` does.
        b[..2].copy_from_slice(&h(-0.5));
        let y = deq(Q4_0, &b);
        assert_eq!(y[0], 4.0);
        assert_eq!(y[15], -3.5);
        b[..2].copy_from_slice(&h(0.0));
        let y = deq(Q4_0, &b);
        assert_eq!(y[0].to_bits(), (-0.0f32).to_bits());
        assert_eq!(y[8].to_bits(), 0);
    }

    #[test]
    fn q4_1_hand_block() {
        let mut b = h(0.5).to_vec();
        b.extend(h(-1.0));
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let y = deq(Q4_1, &b);
        for j in 0..16 {
            assert_eq!(y[j], j as f32 * 0.5 - 1.0);
            assert_eq!(y[j + 16], (15 - j) as f32 * 0.5 - 1.0);
        }
    }

    #[test]
    fn q5_0_hand_block() {
        let mut b = h(1.0).to_vec();
        b.extend(0xFFFF_0000u32.to_le_bytes()); // high bit only for elements 16..32
        b.extend((0..16u8).map(|j| j | (j << 4)));
        let y = deq(Q5_0, &b);
        for j in 0..16 {
            assert_eq!(y[j], j as f32 - 16.0);
            assert_eq!(y[j + 16], j as f32);
        }
    }

    #[test]
    fn q5_1_hand_block() {
        let mut b = h(2.0).to_vec();
        b.extend(h(0.5));
        b.extend(0x0000_FFFFu32.to_le_bytes()); // high bit only for elements 0..16
        b.extend((0..16u8).map(|j| j | (j << 4)));
        let y = deq(Q5_1, &b);
        for j in 0..16 {
            assert_eq!(y[j], (j + 16) as f32 * 2.0 + 0.5);
            assert_eq!(y[j + 16], j as f32 * 2.0 + 0.5);
        }
    }

    #[test]
    fn q8_0_hand_block() {
        let mut b = h(0.25).to_vec();
        b.extend((0..32i32).map(|j| (j * 8 - 128) as i8 as u8));
        let y = deq(Q8_0, &b);
        for j in 0..32 {
            assert_eq!(y[j], (j as i32 * 8 - 128) as f32 * 0.25);
        }
    }

    #[test]
    fn iq4_nl_hand_block() {
        let mut b = h(0.5).to_vec();
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let y = deq(IQ4_NL, &b);
        for j in 0..16 {
            assert_eq!(y[j], 0.5 * KVALUES_IQ4NL[j] as f32);
            assert_eq!(y[j + 16], 0.5 * KVALUES_IQ4NL[15 - j] as f32);
        }
        assert_eq!(y[0], -63.5);
        assert_eq!(y[16], 56.5);
    }

    #[test]
    fn mxfp4_hand_block() {
        // e = 127 is a scale of 1.0, halved to 0.5 because the code book is doubled.
        let mut b = vec![127u8];
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let y = deq(MXFP4, &b);
        let e2m1 = [
            0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0,
        ];
        for j in 0..16 {
            assert_eq!(y[j], e2m1[j]);
            assert_eq!(y[j + 16], e2m1[15 - j]);
        }
        assert_eq!(y[8].to_bits(), 0); // code 8 is "-0" in E2M1 but ggml's table has +0
        assert_eq!(e8m0_to_f32_half(0), 2f64.powi(-128) as f32);
        assert_eq!(e8m0_to_f32_half(1), 2f64.powi(-127) as f32);
        assert_eq!(e8m0_to_f32_half(2), 2f32.powi(-126));
        assert_eq!(e8m0_to_f32_half(128), 1.0);
        assert_eq!(e8m0_to_f32_half(255), 2f32.powi(127));
    }

    #[test]
    fn q2_k_hand_block() {
        // Every qs byte holds q = 0,1,2,3 at shifts 0,2,4,6; sub-block k has scale k%16 and
        // min 1, so element i is d*(k%16)*q - dmin with k = i/16 and q = (i%128)/32.
        let mut b: Vec<u8> = (0..16u8).map(|k| k | (1 << 4)).collect();
        b.extend([0b11_10_01_00u8; 64]);
        b.extend(h(0.5));
        b.extend(h(0.25));
        let y = deq(Q2_K, &b);
        for i in 0..256 {
            let k = (i / 16) as f32;
            let q = ((i % 128) / 32) as f32;
            assert_eq!(y[i], 0.5 * k * q - 0.25, "element {i}");
        }
    }

    #[test]
    fn q3_k_hand_block() {
        // All 2-bit values 2, hmask bits set only for even bit positions (m = 1,4,16,64), all
        // scales 33 (= +1 after the -32 offset) and d = 1: q = 2 or 2-4 = -2.
        let mut b = vec![0b0101_0101u8; 32];
        b.extend([0b10_10_10_10u8; 64]);
        let lo = 33 & 0x0F; // low nibbles of both halves
        let hi = (33 >> 4) & 3; // high bit pairs
        b.extend([lo | (lo << 4); 8]);
        b.extend([hi | (hi << 2) | (hi << 4) | (hi << 6); 4]);
        b.extend(h(1.0));
        let y = deq(Q3_K, &b);
        for i in 0..256 {
            let bit = 4 * (i / 128) + (i % 128) / 32; // which hmask bit
            let expect = if bit % 2 == 0 { 2.0 } else { -2.0 };
            assert_eq!(y[i], expect, "element {i}");
        }
    }

    #[test]
    fn q4_k_hand_block() {
        // Scales/mins: sub-block j has scale j+1 and min 2j (j<4 direct, j>=4 packed).
        let mut sc = [0u8; 12];
        for j in 0..8u8 {
            let (s, m) = (j + 1, 2 * j);
            if j < 4 {
                sc[j as usize] = s;
                sc[j as usize + 4] = m;
            } else {
                sc[j as usize + 4] = (s & 0x0F) | ((m & 0x0F) << 4);
                sc[j as usize - 4] |= (s >> 4) << 6;
                sc[j as usize] |= (m >> 4) << 6;
            }
        }
        let mut b = h(0.5).to_vec();
        b.extend(h(0.125));
        b.extend(sc);
        b.extend((0..128u32).map(|i| ((i % 16) | ((15 - i % 16) << 4)) as u8));
        let y = deq(Q4_K, &b);
        for i in 0..256 {
            let j = i / 32;
            let l = i % 32;
            let q = if j % 2 == 0 { l % 16 } else { 15 - l % 16 };
            let expect = 0.5 * (j + 1) as f32 * q as f32 - 0.125 * (2 * j) as f32;
            assert_eq!(y[i], expect, "element {i}");
        }
    }

    #[test]
    fn q6_k_hand_block() {
        // ql nibbles all 5, qh pairs all 2 → q = 5 | 32 = 37 → 5 after the -32 offset.
        let mut b = vec![0x55u8; 128];
        b.extend([0b10_10_10_10u8; 64]);
        b.extend((0..16i8).map(|k| (k - 8) as u8));
        b.extend(h(0.5));
        let y = deq(Q6_K, &b);
        for i in 0..256 {
            let k = (i / 16) as f32 - 8.0;
            assert_eq!(y[i], 0.5 * k * 5.0, "element {i}");
        }
    }

    #[test]
    fn tq2_0_hand_block() {
        // q = 0,1,2,3 at shifts 0,2,4,6 → -1, 0, 1, 2 per group of 32.
        let mut b = vec![0b11_10_01_00u8; 64];
        b.extend(h(1.5));
        let y = deq(TQ2_0, &b);
        for i in 0..256 {
            assert_eq!(y[i], ((i % 128) / 32) as f32 * 1.5 - 1.5, "element {i}");
        }
    }

    #[test]
    fn tq1_0_hand_block() {
        // Packing as ggml's quantizer does: the trits t0..t4 (t0 leading) form
        // v = sum t_k * 3^(4-k), stored as ceil(v * 256 / 243).
        let pack = |t: &[u8]| -> u8 {
            let mut v = 0u16;
            for k in 0..5 {
                v = v * 3 + u16::from(*t.get(k).unwrap_or(&0));
            }
            (v * 256).div_ceil(243) as u8
        };
        let trits: Vec<u8> = (0..256u32).map(|i| ((i * 7 + i / 5) % 3) as u8).collect();
        let mut b = vec![0u8; 54];
        for m in 0..32 {
            let t: Vec<u8> = (0..5).map(|n| trits[32 * n + m]).collect();
            b[m] = pack(&t);
        }
        for m in 0..16 {
            let t: Vec<u8> = (0..5).map(|n| trits[160 + 16 * n + m]).collect();
            b[32 + m] = pack(&t);
        }
        for j in 0..4 {
            let t: Vec<u8> = (0..4).map(|n| trits[240 + 4 * n + j]).collect();
            b[48 + j] = pack(&t);
        }
        b[52..54].copy_from_slice(&h(2.0));
        let y = deq(TQ1_0, &b);
        for i in 0..256 {
            assert_eq!(y[i], (trits[i] as f32 - 1.0) * 2.0, "element {i}");
        }
    }

    #[test]
    fn iq4_xs_hand_block() {
        // Sub-block ib has ls = 30 + ib (dl = d * (ib - 2)); all nibbles j → kvalues[j].
        let mut scales_h = 0u16;
        let mut scales_l = [0u8; 4];
        for ib in 0..8 {
            let ls = 30 + ib as u16;
            scales_l[ib / 2] |= ((ls & 0x0F) as u8) << (4 * (ib % 2));
            scales_h |= ((ls >> 4) & 3) << (2 * ib);
        }
        let mut b = h(0.25).to_vec();
        b.extend(scales_h.to_le_bytes());
        b.extend(scales_l);
        for _ in 0..8 {
            b.extend((0..16u8).map(|j| j | (j << 4)));
        }
        let y = deq(IQ4_XS, &b);
        for i in 0..256 {
            let dl = 0.25 * ((i / 32) as f32 - 2.0);
            assert_eq!(y[i], dl * KVALUES_IQ4NL[i % 16] as f32, "element {i}");
        }
    }

    /// Element-wise reference for the K-quants, indexed per output element rather than by
    /// the loop nest the kernels use, built from formats.md §2.3.
    fn k_reference(ty: GgmlType, b: &[u8], i: usize) -> f32 {
        let f = |o: usize| f16_at(b, o);
        match ty {
            Q2_K => {
                let (n, r) = (i / 128, i % 128);
                let (j, hh, l) = (r / 32, (r % 32) / 16, r % 16);
                let sc = b[i / 16];
                let q = (b[16 + 32 * n + 16 * hh + l] >> (2 * j)) & 3;
                f(80) * (sc & 0xF) as f32 * q as f32 - f(82) * (sc >> 4) as f32
            }
            Q3_K => {
                let (n, r) = (i / 128, i % 128);
                let j = r / 32;
                let q = ((b[32 + 32 * n + r % 32] >> (2 * j)) & 3) as i32;
                let hbit = (b[r % 32] >> (4 * n + j)) & 1;
                let k = i / 16;
                let s = &b[96..108];
                let lo4 = if k < 8 { s[k] & 0xF } else { s[k - 8] >> 4 };
                let hi2 = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
                let sc = (lo4 | hi2 << 4) as i32 - 32;
                f(108) * sc as f32 * (q - if hbit == 1 { 0 } else { 4 }) as f32
            }
            Q4_K | Q5_K => {
                let (c, r) = (i / 64, i % 64);
                let sub = 2 * c + r / 32;
                let (sc, m) = scale_min_k4(sub, &b[4..16]);
                let qs_off = if ty == Q4_K { 16 } else { 48 };
                let mut q = (b[qs_off + 32 * c + r % 32] >> (4 * (r / 32))) & 0xF;
                if ty == Q5_K && (b[16 + r % 32] >> sub) & 1 == 1 {
                    q += 16;
                }
                f(0) * sc as f32 * q as f32 - f(2) * m as f32
            }
            Q6_K => {
                let (n, r) = (i / 128, i % 128);
                let (g, l) = (r / 32, r % 32);
                let ql = b[64 * n + 32 * (g % 2) + l];
                let lo = if g < 2 { ql & 0xF } else { ql >> 4 };
                let hi = (b[128 + 32 * n + l] >> (2 * g)) & 3;
                let q = (lo | hi << 4) as i32 - 32;
                f(208) * b[192 + i / 16] as i8 as f32 * q as f32
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn k_quants_match_element_wise_reference() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for ty in [Q2_K, Q3_K, Q4_K, Q5_K, Q6_K] {
            let ts = ty.type_size() as usize;
            let src = random_blocks(ty, 64, &mut rng);
            let y = deq(ty, &src);
            for (bi, blk) in src.chunks_exact(ts).enumerate() {
                for i in 0..256 {
                    let want = k_reference(ty, blk, i);
                    assert_eq!(
                        y[256 * bi + i].to_bits(),
                        want.to_bits(),
                        "{ty} block {bi} element {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn unaligned_source_gives_identical_results() {
        let mut rng = Rng(42);
        for &ty in &SUPPORTED {
            // Enough elements to cross the F16 staging buffer boundary.
            let n_blocks = 3000 / ty.block_size() as usize + 1;
            let src = random_blocks(ty, n_blocks, &mut rng);
            let want = deq(ty, &src);
            for shift in 1..4 {
                let mut buf = vec![0u8; src.len() + shift];
                buf[shift..].copy_from_slice(&src);
                let got = deq(ty, &buf[shift..]);
                assert_eq!(bits(&got), bits(&want), "{ty} at offset {shift}");
            }
        }
    }

    #[test]
    fn f16_special_values_match_half() {
        let specials: [u16; 12] = [
            0x0000, 0x8000, // ±0
            0x0001, 0x83FF, // smallest / largest-magnitude subnormals
            0x0400, 0x7BFF, // smallest normal, max finite
            0x7C00, 0xFC00, // ±inf
            0x7E00, 0xFE01, // quiet NaNs with payloads
            0x7C01, 0x3C00, // signalling NaN, 1.0
        ];
        // Every bit pattern, plus the specials, aligned and not.
        let all: Vec<u16> = (0..=u16::MAX).chain(specials).collect();
        let src: Vec<u8> = all.iter().flat_map(|v| v.to_le_bytes()).collect();
        let want: Vec<u32> = all
            .iter()
            .map(|&v| f16::from_bits(v).to_f32().to_bits())
            .collect();
        let mut buf = vec![0u8; src.len() + 1];
        buf[1..].copy_from_slice(&src);
        assert_eq!(bits(&deq(F16, &src)), want);
        assert_eq!(bits(&deq(F16, &buf[1..])), want);
        assert_eq!(deq(F16, &src[2..4])[0], 2f32.powi(-24));
        assert_eq!(deq(F16, &0x7C00u16.to_le_bytes())[0], f32::INFINITY);
    }

    #[test]
    fn bf16_is_a_bare_shift_and_f32_is_a_copy() {
        let vals: [u16; 5] = [0x3F80, 0xFF80, 0x7F81, 0x0001, 0x8000];
        let src: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let y = deq(BF16, &src);
        for (v, y) in vals.iter().zip(&y) {
            // 0x7F81 is a signalling NaN: ggml keeps its bits unchanged.
            assert_eq!(y.to_bits(), u32::from(*v) << 16);
        }
        let f: [u32; 3] = [0x7F80_0001, 0x3F80_0000, 0x0000_0001];
        let src: Vec<u8> = f.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(bits(&deq(F32, &src)), f);
        assert_eq!(bits(&deq(F32, &[0u8, 0, 0, 0, 128][1..])), [0x8000_0000]);
    }
}
