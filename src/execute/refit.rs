//! The refit steps of a plan, as execution meets them (docs/method.md "Refitting with second
//! moments"): the least-squares refit of a cut `ffn_down`'s kept columns, and SparseGPT's
//! update of a pruned matrix's kept weights. Each reads its second moment from the mapped
//! statistics file only while its tensor is processed; SparseGPT's factor is kept for the next
//! tensor with the same input (gate and up share theirs).

use std::sync::Arc;

use rayon::prelude::*;

use super::dequantize_parallel;
use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use crate::gguf::TensorInfo;
use crate::refit::{refit_kept, update, Damped, Factor, TensorRefit};
use crate::stats::Stats;

/// The smallest magnitude that rounds to infinity in F16.
const F16_ROUNDS_TO_INF: f32 = 65520.0;

/// The least-squares refit of a cut down projection: its kept columns, f32 (rounded to
/// nearest even from f64), row-major `rows × kept.len()`.
pub(super) fn refit_columns(
    info: &TensorInfo,
    data: &[u8],
    kept: &[u32],
    stats: &Stats,
    r: &TensorRefit,
) -> Result<Vec<f32>> {
    let (h, n) = stats.mean_outer(&r.matrix, None)?;
    let h = Damped::new(h, n, r.damp);
    let mut w32 = vec![0.0f32; info.n_elements() as usize];
    dequantize_parallel(info, data, &mut w32)?;
    let w: Vec<f64> = w32.par_iter().map(|&x| f64::from(x)).collect();
    drop(w32);
    let rows = info.n_rows() as usize;
    let out = refit_kept(&w, rows, &h, kept, &info.name, r.damp)?;
    Ok(out.par_iter().map(|&x| x as f32).collect())
}

/// Which input a factor is of: the statistics entry, and the kept inputs when cut.
type InputKey = (String, Option<Vec<u32>>);

/// SparseGPT's factors of the last inputs seen (gate and up read the same one).
pub(super) struct Factors<'a> {
    stats: Option<&'a Stats>,
    /// The two most recent, the most recent last.
    recent: Vec<(InputKey, Arc<Factor>)>,
}

impl<'a> Factors<'a> {
    pub(super) fn new(stats: Option<&'a Stats>) -> Self {
        Factors {
            stats,
            recent: Vec::new(),
        }
    }

    /// The factor for `tensor`'s input as `r` names it, restricted to the inputs `kept` (a
    /// cut down projection's kept channels).
    pub(super) fn get(
        &mut self,
        tensor: &str,
        r: &TensorRefit,
        kept: Option<&[u32]>,
    ) -> Result<Arc<Factor>> {
        let key = (r.matrix.clone(), kept.map(|k| k.to_vec()));
        if let Some(i) = self.recent.iter().position(|(k, _)| *k == key) {
            let hit = self.recent.remove(i);
            self.recent.push(hit);
        } else {
            let stats = self.stats.ok_or_else(|| {
                Error::Plan("internal error: refitting without a statistics file".into())
            })?;
            let (h, n) = stats.mean_outer(&r.matrix, kept)?;
            let factor = Factor::new(&Damped::new(h, n, r.damp), tensor, r.damp)?;
            if self.recent.len() == 2 {
                self.recent.remove(0);
            }
            self.recent.push((key, Arc::new(factor)));
        }
        Ok(self.recent.last().expect("just pushed").1.clone())
    }
}

/// SparseGPT's update of one matrix (`rows × f.n` f32 weights, in place) for the fixed mask
/// `zero`: masked weights end exactly 0, the others absorb their error.
pub(super) fn update_masked(weights: &mut [f32], zero: &[bool], f: &Factor) {
    let mut w: Vec<f64> = weights.par_iter().map(|&x| f64::from(x)).collect();
    update(&mut w, zero, f);
    weights
        .par_iter_mut()
        .zip(w.par_iter())
        .for_each(|(o, &x)| *o = x as f32);
}

/// Refitted weights must be finite, and fit in F16 when written as F16.
pub(super) fn check_refitted(values: &[f32], out: GgmlType, tensor: &str) -> Result<()> {
    let limit = if out == GgmlType::F16 {
        F16_ROUNDS_TO_INF
    } else {
        f32::INFINITY
    };
    let bad = values
        .par_iter()
        .position_first(|x| !x.is_finite() || x.abs() >= limit);
    match bad {
        None => Ok(()),
        Some(i) => Err(Error::Tensor {
            tensor: tensor.to_string(),
            message: format!(
                "refitting made weight {i} {}, which {} cannot hold: pass a larger --damp{}",
                values[i],
                out,
                if out == GgmlType::F16 {
                    ", or --outtype f32 or bf16"
                } else {
                    ""
                }
            ),
        }),
    }
}
