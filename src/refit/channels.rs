//! Removing feed-forward channels with least squares (docs/method.md "Refitting with second
//! moments"): the down projection `W` (`rows = n_embd` outputs, `n = n_ff` columns, one per
//! channel) and the damped second moment `H` of its input (the channels).
//!
//! - [`refit_kept`]: given the kept channels `K` (the others `R` go), the columns of the kept
//!   channels that best reproduce `W x` over the calibration tokens:
//!   `W' = W H[:,K] H[K,K]⁻¹ = W_K + W_R H[R,K] H[K,K]⁻¹`.
//! - [`choose_lsq`]: which channels go, greedily (optimal brain surgeon): with `Hinv = H⁻¹`,
//!   removing channel `j` when the others are refitted costs `‖W[:, j]‖² / Hinv[j][j]`; the
//!   cheapest goes (ties: the lower index), then `Hinv` and `W` are updated as if it had been
//!   refitted, until the block's width is reached.

use faer::linalg::matmul::matmul;
use faer::linalg::solvers::Solve;
use faer::{Accum, Mat, MatMut, MatRef, Par};
use rayon::prelude::*;

use super::moment::{cholesky, inverse, not_positive_definite, Damped};
use crate::error::Result;

/// The down projection's kept columns refitted: `W_K + W_R H[R,K] H[K,K]⁻¹`, row-major
/// `rows × kept.len()`. `w` is `rows × h.n`, row-major; `kept` ascending.
pub fn refit_kept(
    w: &[f64],
    rows: usize,
    h: &Damped,
    kept: &[u32],
    tensor: &str,
    damp: f64,
) -> Result<Vec<f64>> {
    let n = h.n;
    assert_eq!(w.len(), rows * n, "W is rows × n");
    let mut is_kept = vec![false; n];
    for &k in kept {
        is_kept[k as usize] = true;
    }
    let removed: Vec<usize> = (0..n).filter(|&i| !is_kept[i]).collect();
    let kept: Vec<usize> = kept.iter().map(|&k| k as usize).collect();
    let (nk, nr) = (kept.len(), removed.len());

    // W_K, to which the removed channels' contribution is added.
    let mut out = vec![0.0f64; rows * nk];
    out.par_chunks_mut(nk.max(1))
        .zip(w.par_chunks(n.max(1)))
        .for_each(|(o, row)| {
            for (o, &k) in o.iter_mut().zip(&kept) {
                *o = row[k];
            }
        });
    if nr == 0 || nk == 0 || rows == 0 {
        return Ok(out);
    }
    // T = H[K,K]⁻¹ H[K,R]   (nk × nr). H is symmetric: each column is read along a row of H.
    let hkk = Mat::from_fn(nk, nk, |a, b| h.at(kept[b], kept[a]));
    let mut t = Mat::from_fn(nk, nr, |a, b| h.at(removed[b], kept[a]));
    cholesky(hkk.as_ref(), tensor, damp)?.solve_in_place(t.as_mut());
    drop(hkk);
    // W_R   (rows × nr, row-major)
    let mut wr = vec![0.0f64; rows * nr];
    wr.par_chunks_mut(nr)
        .zip(w.par_chunks(n))
        .for_each(|(o, row)| {
            for (o, &c) in o.iter_mut().zip(&removed) {
                *o = row[c];
            }
        });
    // out += W_R Tᵀ
    let dst = MatMut::from_row_major_slice_mut(&mut out, rows, nk);
    matmul(
        dst,
        Accum::Add,
        MatRef::from_row_major_slice(&wr, rows, nr),
        t.as_ref().transpose(),
        1.0,
        Par::rayon(0),
    );
    Ok(out)
}

/// Which channels a block keeps under `--channel-score lsq`, and each channel's score.
#[derive(Debug, Clone, PartialEq)]
pub struct LsqChoice {
    /// The kept channels, ascending.
    pub kept: Vec<u32>,
    /// Per channel: for a removed one, what removing it cost when it went; for a kept one,
    /// what removing it would cost after the others went (both `‖W[:, j]‖² / Hinv[j][j]` with
    /// `W` and `Hinv` as they were then).
    pub scores: Vec<f64>,
}

/// Greedy least-squares channel removal down to `width` channels. `w` is the down projection,
/// `rows × h.n`, row-major.
pub fn choose_lsq(
    w: &[f64],
    rows: usize,
    h: &Damped,
    width: usize,
    tensor: &str,
    damp: f64,
) -> Result<LsqChoice> {
    let n = h.n;
    assert_eq!(w.len(), rows * n, "W is rows × n");
    let width = width.min(n);
    // Hinv = H⁻¹, kept as Hinv0 - Σ g gᵀ: each removal is a rank-one downdate, and only the
    // diagonal and the removed channel's row are ever needed.
    let hinv0 = inverse(h.view(), tensor, damp)?;
    let mut diag: Vec<f64> = (0..n).map(|i| hinv0[(i, i)]).collect();
    let mut downdates: Vec<Vec<f64>> = Vec::with_capacity(n - width);
    // Wᵀ: channel j's column of W as a contiguous row.
    let mut wt = vec![0.0f64; n * rows];
    for r in 0..rows {
        for j in 0..n {
            wt[j * rows + r] = w[r * n + j];
        }
    }
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>();
    let mut norms: Vec<f64> = wt.chunks(rows.max(1)).map(norm).collect();
    if rows == 0 {
        norms = vec![0.0; n];
    }
    let mut alive = vec![true; n];
    let mut scores = vec![0.0f64; n];
    for _ in 0..n - width {
        let mut best: Option<(usize, f64)> = None;
        for j in (0..n).filter(|&j| alive[j]) {
            if diag[j].is_nan() || diag[j] <= 0.0 {
                return Err(not_positive_definite(tensor, damp));
            }
            let cost = cost_of(j, norms[j], diag[j], h);
            if best.is_none_or(|(_, c)| cost < c) {
                best = Some((j, cost));
            }
        }
        let Some((j, cost)) = best else { break };
        let d = diag[j];
        scores[j] = cost;
        alive[j] = false;
        // Row j of the current Hinv.
        let mut row: Vec<f64> = hinv0.col(j).iter().copied().collect();
        for g in &downdates {
            let gj = g[j];
            if gj != 0.0 {
                row.iter_mut().zip(g).for_each(|(x, y)| *x -= gj * y);
            }
        }
        // W ← W − W[:, j] Hinv[j, :] / Hinv[j][j]: the others absorb channel j.
        let wj: Vec<f64> = wt[j * rows..(j + 1) * rows].to_vec();
        wt.par_chunks_mut(rows.max(1))
            .zip(norms.par_iter_mut())
            .enumerate()
            .for_each(|(k, (col, nk))| {
                if k == j {
                    col.iter_mut().for_each(|x| *x = 0.0);
                    *nk = 0.0;
                    return;
                }
                let c = row[k] / d;
                if c != 0.0 {
                    col.iter_mut().zip(&wj).for_each(|(x, y)| *x -= c * y);
                    *nk = norm(col);
                }
            });
        // Hinv ← Hinv − Hinv[:, j] Hinv[j, :] / Hinv[j][j].
        let s = d.sqrt();
        let g: Vec<f64> = row.iter().map(|x| x / s).collect();
        diag.iter_mut().zip(&g).for_each(|(x, y)| *x -= y * y);
        diag[j] = 0.0;
        downdates.push(g);
    }
    for j in (0..n).filter(|&j| alive[j]) {
        if diag[j].is_nan() || diag[j] <= 0.0 {
            return Err(not_positive_definite(tensor, damp));
        }
        scores[j] = cost_of(j, norms[j], diag[j], h);
    }
    let kept = (0..n as u32).filter(|&j| alive[j as usize]).collect();
    Ok(LsqChoice { kept, scores })
}

/// What removing channel `j` costs: `‖W[:, j]‖² / Hinv[j][j]`, and 0 for a dead channel (an
/// input that was 0 on every token: removing it changes nothing the statistics saw, while the
/// 1 put on its diagonal would give it an arbitrary cost).
fn cost_of(j: usize, norm: f64, diag: f64, h: &Damped) -> f64 {
    if h.dead[j] {
        0.0
    } else {
        norm / diag
    }
}
