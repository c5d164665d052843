//! The update SparseGPT (Frantar & Alistarh, 2023) makes to the weights a mask keeps, with the
//! mask fixed beforehand by one of the pruning rules (docs/method.md "Refitting with second
//! moments").
//!
//! With `U` the upper Cholesky factor of `H⁻¹` (`H⁻¹ = Uᵀ U`, `H` the damped second moment of
//! the tensor's input), columns are visited in order; for each row `r` whose weight at column
//! `i` is masked, `err = W[r][i] / U[i][i]`, `W[r][i..] -= err · U[i][i..]`, then `W[r][i] = 0`.
//! The zeroed weight's error is spread over the columns not yet visited, which absorb it as
//! well as least squares allows. Rows are independent; the columns go in blocks of
//! [`BLOCK`], the updates of columns past a block made at once as one matrix product (the
//! "lazy batch" update of the paper).

use faer::linalg::matmul::matmul;
use faer::linalg::triangular_inverse::invert_lower_triangular;
use faer::{Accum, Mat, MatMut, MatRef, Par};
use rayon::prelude::*;

use super::moment::{cholesky, Damped};
use crate::error::Result;

/// Columns updated together before the rest of the row is.
pub const BLOCK: usize = 128;

/// Rows handed to one task.
const ROWS_PER_TASK: usize = 16;

/// Rows and columns copied together when a matrix changes layout.
const TILE: usize = 64;

/// `U`, the upper Cholesky factor of `H⁻¹`, row-major `n × n` (zero below the diagonal).
#[derive(Debug, Clone, PartialEq)]
pub struct Factor {
    pub n: usize,
    pub u: Vec<f64>,
}

impl Factor {
    /// `U` for the damped second moment `h`; an error naming `tensor` when `h` is not
    /// positive definite.
    ///
    /// Computed without forming `H⁻¹`: with `J` the reversal permutation and
    /// `J H J = L Lᵀ` (lower Cholesky factor `L`), `H⁻¹ = (J L⁻¹ J)ᵀ (J L⁻¹ J)` and
    /// `J L⁻¹ J` is upper triangular with a positive diagonal, so it is `U` (the factor is
    /// unique). One factorization and one triangular inverse instead of a factorization, an
    /// inverse and a second factorization.
    pub fn new(h: &Damped, tensor: &str, damp: f64) -> Result<Factor> {
        let n = h.n;
        let r = |i: usize| n - 1 - i;
        // (J H J)[i][j] = H[r(i)][r(j)] = H[r(j)][r(i)] (symmetric): read along H's rows.
        let reversed = Mat::from_fn(n, n, |i, j| h.at(r(j), r(i)));
        let llt = cholesky(reversed.as_ref(), tensor, damp)?;
        drop(reversed);
        let mut l_inv = Mat::<f64>::zeros(n, n);
        invert_lower_triangular(l_inv.as_mut(), llt.L(), Par::rayon(0));
        drop(llt);
        // U[i][j] = L⁻¹[r(i)][r(j)] for j >= i (the lower triangle of L⁻¹), tile by tile: a
        // tile's rows of U and its columns of L⁻¹ stay in cache together.
        let mut u = vec![0.0f64; n * n];
        u.par_chunks_mut(n * TILE)
            .enumerate()
            .for_each(|(t, rows)| {
                let i0 = t * TILE;
                let i1 = (i0 + TILE).min(n);
                for j0 in (i0..n).step_by(TILE) {
                    for j in j0..(j0 + TILE).min(n) {
                        let col = l_inv.col_as_slice(r(j));
                        for i in i0..i1.min(j + 1) {
                            rows[(i - i0) * n + j] = col[r(i)];
                        }
                    }
                }
            });
        if u.iter().any(|x| !x.is_finite()) {
            return Err(super::moment::not_positive_definite(tensor, damp));
        }
        Ok(Factor { n, u })
    }

    fn view(&self) -> MatRef<'_, f64> {
        MatRef::from_row_major_slice(&self.u, self.n, self.n)
    }
}

/// Updates `w` (`rows × f.n`, row-major) for the fixed `mask` (`true`: the weight is zeroed):
/// masked weights end exactly `0.0`, the others absorb their error.
pub fn update(w: &mut [f64], mask: &[bool], f: &Factor) {
    let n = f.n;
    assert_eq!(w.len(), mask.len(), "one mask entry per weight");
    if n == 0 {
        return;
    }
    assert_eq!(w.len() % n, 0, "rows of n weights");
    w.par_chunks_mut(n * ROWS_PER_TASK)
        .zip(mask.par_chunks(n * ROWS_PER_TASK))
        .for_each(|(w, mask)| update_rows(w, mask, f));
}

/// [`update`] on a few rows, one task.
fn update_rows(w: &mut [f64], mask: &[bool], f: &Factor) {
    let n = f.n;
    let rows = w.len() / n;
    let u = &f.u;
    let mut err = vec![0.0f64; rows * BLOCK];
    for i1 in (0..n).step_by(BLOCK) {
        let i2 = (i1 + BLOCK).min(n);
        let b = i2 - i1;
        let mut any = false;
        for r in 0..rows {
            let row = &mut w[r * n..(r + 1) * n];
            let m = &mask[r * n..(r + 1) * n];
            let e = &mut err[r * b..(r + 1) * b];
            e.iter_mut().for_each(|x| *x = 0.0);
            for i in i1..i2 {
                if !m[i] {
                    continue;
                }
                let ui = &u[i * n..(i + 1) * n];
                let x = row[i] / ui[i];
                if x != 0.0 {
                    for (wc, uc) in row[i..i2].iter_mut().zip(&ui[i..i2]) {
                        *wc -= x * uc;
                    }
                    any = true;
                }
                e[i - i1] = x;
                row[i] = 0.0;
            }
        }
        if any && i2 < n {
            // W[:, i2..] -= Err · U[i1..i2, i2..]
            let dst =
                MatMut::from_row_major_slice_mut(w, rows, n).submatrix_mut(0, i2, rows, n - i2);
            let lhs = MatRef::from_row_major_slice(&err[..rows * b], rows, b);
            let rhs = f.view().submatrix(i1, i2, b, n - i2);
            matmul(dst, Accum::Add, lhs, rhs, -1.0, Par::Seq);
        }
    }
}
