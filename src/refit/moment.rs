//! The matrix every refit solves with: the mean second moment of a tensor's input,
//! `H = C / count` (`C = Σ_t x_t x_tᵀ` from the statistics file), damped as SparseGPT damps it
//! (docs/method.md "Refitting with second moments"):
//!
//! - a zero diagonal entry (an input that was 0 on every calibration token) is set to 1, so
//!   that the matrix stays invertible;
//! - then `λ = damp × mean(diag(H))` is added to the diagonal.
//!
//! Everything is f64, row-major `n × n`.

use faer::linalg::solvers::{DenseSolveCore, Llt};
use faer::{Mat, MatRef, Side};

use crate::error::{Error, Result};

/// A damped second moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Damped {
    /// Its order (the tensor's input width).
    pub n: usize,
    /// `H + λI`, row-major (and symmetric: every source of it is).
    pub h: Vec<f64>,
    /// The `λ` that was added.
    pub lambda: f64,
    /// The inputs whose diagonal was 0 (set to 1 before damping).
    pub dead: Vec<bool>,
}

impl Damped {
    /// Damps the mean second moment `h` (`n × n`, row-major, symmetric): dead inputs' zero
    /// diagonal set to 1, then `damp × mean(diag)` added to the diagonal.
    pub fn new(mut h: Vec<f64>, n: usize, damp: f64) -> Damped {
        assert_eq!(
            h.len(),
            n * n,
            "a second moment of order {n} has n * n entries"
        );
        let dead: Vec<bool> = (0..n).map(|i| h[i * n + i] == 0.0).collect();
        for i in (0..n).filter(|&i| dead[i]) {
            h[i * n + i] = 1.0;
        }
        let mean = if n == 0 {
            0.0
        } else {
            (0..n).map(|i| h[i * n + i]).sum::<f64>() / n as f64
        };
        let lambda = damp * mean;
        for i in 0..n {
            h[i * n + i] += lambda;
        }
        Damped { n, h, lambda, dead }
    }

    /// The matrix as a faer view (symmetric, so its rows are its columns: viewed column-major,
    /// faer reads it contiguously).
    pub fn view(&self) -> MatRef<'_, f64> {
        MatRef::from_column_major_slice(&self.h, self.n, self.n)
    }

    /// The entry at row `i`, column `j`.
    pub fn at(&self, i: usize, j: usize) -> f64 {
        self.h[i * self.n + j]
    }
}

/// The Cholesky factor of `a` (read from its lower triangle), or an error naming `tensor` that
/// suggests a larger `--damp`.
pub fn cholesky(a: MatRef<'_, f64>, tensor: &str, damp: f64) -> Result<Llt<f64>> {
    a.llt(Side::Lower)
        .map_err(|_| not_positive_definite(tensor, damp))
}

/// The inverse of the symmetric positive definite `a`.
pub fn inverse(a: MatRef<'_, f64>, tensor: &str, damp: f64) -> Result<Mat<f64>> {
    Ok(cholesky(a, tensor, damp)?.inverse())
}

/// The error for a matrix the damping did not make positive definite.
pub fn not_positive_definite(tensor: &str, damp: f64) -> Error {
    Error::Tensor {
        tensor: tensor.to_string(),
        message: format!(
            "the damped second moment of its input is not positive definite (the Cholesky \
             factorization failed at --damp {damp}): the statistics are nearly singular; pass a \
             larger --damp (e.g. {})",
            if damp > 0.0 { damp * 10.0 } else { 0.01 }
        ),
    }
}
