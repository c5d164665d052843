//! Cutting removed channels out of a tensor's bytes: kept rows are copied whole (in any type:
//! a ggml row is a whole number of blocks), kept columns element by element (plain float
//! types: their bits unchanged), or, for a quantized tensor, dequantized, gathered and
//! encoded in the type the plan chose.

use half::{bf16, f16};
use rayon::prelude::*;

use crate::channels::Cut;
use crate::dequant::dequantize;
use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use crate::gguf::TensorInfo;

/// The bytes of `info` (data `data`) with only the kept rows or columns, encoded as
/// `cut_info.ty`, in `out` (a buffer to reuse: it is resized, its old bytes overwritten).
pub(super) fn cut_tensor_into(
    info: &TensorInfo,
    data: &[u8],
    cut: &Cut,
    cut_info: &TensorInfo,
    mut out: Vec<u8>,
) -> Result<Vec<u8>> {
    let cols = info.row_len() as usize;
    let row_bytes = (cols as u64 / info.ty.block_size() * info.ty.type_size()) as usize;
    let tensor_err = |message: String| Error::Tensor {
        tensor: info.name.clone(),
        message,
    };
    if data.len() != row_bytes * info.n_rows() as usize {
        return Err(tensor_err(format!(
            "has {} bytes of data, expected {}",
            data.len(),
            row_bytes * info.n_rows() as usize
        )));
    }
    match cut {
        Cut::Rows(kept) => {
            out.resize(kept.len() * row_bytes, 0);
            out.par_chunks_mut(row_bytes.max(1))
                .zip(kept.par_iter())
                .for_each(|(o, &r)| {
                    let at = r as usize * row_bytes;
                    o.copy_from_slice(&data[at..at + row_bytes]);
                });
            Ok(out)
        }
        Cut::Columns(kept) if !info.ty.is_quantized() && cut_info.ty == info.ty => {
            let size = info.ty.type_size() as usize;
            let out_row = kept.len() * size;
            out.resize(out_row * info.n_rows() as usize, 0);
            out.par_chunks_mut(out_row.max(1))
                .zip(data.par_chunks(row_bytes.max(1)))
                .for_each(|(o, row)| {
                    for (dst, &c) in o.chunks_exact_mut(size).zip(kept.iter()) {
                        let at = c as usize * size;
                        dst.copy_from_slice(&row[at..at + size]);
                    }
                });
            Ok(out)
        }
        Cut::Columns(kept) => {
            let size = cut_info.ty.type_size() as usize;
            if !matches!(cut_info.ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
                return Err(tensor_err(format!(
                    "cannot write a cut tensor as {}",
                    cut_info.ty
                )));
            }
            let out_row = kept.len() * size;
            out.resize(out_row * info.n_rows() as usize, 0);
            out.par_chunks_mut(out_row.max(1))
                .zip(data.par_chunks(row_bytes.max(1)))
                .try_for_each_init(
                    || vec![0f32; cols],
                    |w, (o, row)| -> Result<()> {
                        dequantize(info.ty, row, w).map_err(|e| tensor_err(e.to_string()))?;
                        for (dst, &c) in o.chunks_exact_mut(size).zip(kept.iter()) {
                            let x = w[c as usize];
                            match cut_info.ty {
                                GgmlType::F32 => dst.copy_from_slice(&x.to_le_bytes()),
                                GgmlType::F16 => {
                                    dst.copy_from_slice(&f16::from_f32(x).to_bits().to_le_bytes())
                                }
                                _ => {
                                    dst.copy_from_slice(&bf16::from_f32(x).to_bits().to_le_bytes())
                                }
                            }
                        }
                        Ok(())
                    },
                )?;
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn cut_tensor(
        info: &TensorInfo,
        data: &[u8],
        cut: &Cut,
        cut_info: &TensorInfo,
    ) -> Result<Vec<u8>> {
        // A dirty, oversized buffer to reuse: the result must not depend on it.
        cut_tensor_into(info, data, cut, cut_info, vec![0xAB; 1000])
    }

    fn info(ty: GgmlType, dims: &[u64]) -> TensorInfo {
        let n: u64 = dims.iter().product();
        TensorInfo {
            name: "t".into(),
            dims: dims.to_vec(),
            ty,
            offset: 0,
            n_bytes: ty.bytes_for(n).unwrap(),
        }
    }

    #[test]
    fn rows_and_columns_of_a_float_matrix_keep_their_bits() {
        // 3 rows of 4 F32 columns: value = 10 * row + col.
        let t = info(GgmlType::F32, &[4, 3]);
        let data: Vec<u8> = (0..12)
            .flat_map(|i| ((i / 4 * 10 + i % 4) as f32).to_le_bytes())
            .collect();
        let f32s = |b: Vec<u8>| -> Vec<f32> {
            b.chunks(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
        let rows = Cut::Rows(Arc::new(vec![0, 2]));
        let out = cut_tensor(&t, &data, &rows, &info(GgmlType::F32, &[4, 2])).unwrap();
        assert_eq!(f32s(out), [0., 1., 2., 3., 20., 21., 22., 23.]);
        let cols = Cut::Columns(Arc::new(vec![1, 3]));
        let out = cut_tensor(&t, &data, &cols, &info(GgmlType::F32, &[2, 3])).unwrap();
        assert_eq!(f32s(out), [1., 3., 11., 13., 21., 23.]);
    }

    #[test]
    fn quantized_columns_are_dequantized_and_encoded() {
        // One Q8_0 block per row (32 values), scale 1.0 in F16, quants 0..31 and 31..0.
        let t = info(GgmlType::Q8_0, &[32, 2]);
        let mut data = Vec::new();
        for r in 0..2 {
            data.extend_from_slice(&f16::from_f32(1.0).to_bits().to_le_bytes());
            for c in 0..32i8 {
                data.push(if r == 0 { c } else { 31 - c } as u8);
            }
        }
        let cols = Cut::Columns(Arc::new(vec![0, 5, 31]));
        let out = cut_tensor(&t, &data, &cols, &info(GgmlType::F16, &[3, 2])).unwrap();
        let vals: Vec<f32> = out
            .chunks(2)
            .map(|c| f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
            .collect();
        assert_eq!(vals, [0., 5., 31., 31., 26., 0.]);
        // Whole rows of a quantized tensor are copied as they are.
        let rows = Cut::Rows(Arc::new(vec![1]));
        let out = cut_tensor(&t, &data, &rows, &info(GgmlType::Q8_0, &[32, 1])).unwrap();
        assert_eq!(out, data[34..]);
    }

    #[test]
    fn a_short_tensor_is_an_error() {
        let t = info(GgmlType::F16, &[4, 2]);
        let cut = Cut::Rows(Arc::new(vec![0]));
        assert!(cut_tensor(&t, &[0u8; 6], &cut, &info(GgmlType::F16, &[4, 1])).is_err());
    }
}
