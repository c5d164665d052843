//! The moments of one projection's input over the calibration tokens (docs/stats.md):
//! `Σ x`, `Σ x²` per column, the token count and, where asked, the whole `Σ x xᵀ`.
//!
//! Sums are kept in f64. The outer product is accumulated as one matrix product per call
//! (`Xᵀ X` for the call's rows `X`), upper triangle only, with faer on the rayon pool.

use faer::linalg::matmul::triangular::{matmul, BlockStructure};
use faer::{Accum, Mat, Par};

/// Why a batch of rows was not added.
#[derive(Debug, Clone, PartialEq)]
pub enum MomentError {
    /// The rows are not a whole number of `n`-wide rows.
    Width { n: usize, len: usize },
    /// A value is NaN or infinite (row, column of the batch).
    NonFinite { row: usize, col: usize },
}

impl std::fmt::Display for MomentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MomentError::Width { n, len } => {
                write!(f, "{len} values are not a whole number of rows of {n}")
            }
            MomentError::NonFinite { row, col } => {
                write!(f, "a non-finite activation (row {row}, column {col})")
            }
        }
    }
}

/// The running sums for one input of width `n`.
#[derive(Debug, Clone)]
pub struct InputMoments {
    n: usize,
    count: u64,
    sum: Vec<f64>,
    sum2: Vec<f64>,
    /// `Σ x xᵀ`, upper triangle (row <= column) valid.
    outer: Option<Mat<f64>>,
}

impl InputMoments {
    /// Empty sums for an input of width `n`, with the outer product when `with_outer`.
    pub fn new(n: usize, with_outer: bool) -> Self {
        InputMoments {
            n,
            count: 0,
            sum: vec![0.0; n],
            sum2: vec![0.0; n],
            outer: with_outer.then(|| Mat::zeros(n, n)),
        }
    }

    /// Bytes the sums hold (what a caller should budget per input).
    pub fn bytes(n: usize, with_outer: bool) -> u64 {
        let n = n as u64;
        16 * n + if with_outer { 8 * n * n } else { 0 }
    }

    /// Adds the rows of `rows` (row-major, `n` values per row, each row one token).
    /// Nothing is added when any value is not finite.
    pub fn add_rows(&mut self, rows: &[f32]) -> Result<(), MomentError> {
        let n = self.n;
        if n == 0 || rows.len() % n != 0 {
            return Err(MomentError::Width { n, len: rows.len() });
        }
        if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
            return Err(MomentError::NonFinite {
                row: i / n,
                col: i % n,
            });
        }
        let k = rows.len() / n;
        for row in rows.chunks_exact(n) {
            for ((s, s2), &x) in self.sum.iter_mut().zip(self.sum2.iter_mut()).zip(row) {
                let x = f64::from(x);
                *s += x;
                *s2 += x * x;
            }
        }
        if let Some(outer) = self.outer.as_mut() {
            let x = Mat::<f64>::from_fn(k, n, |t, c| f64::from(rows[t * n + c]));
            matmul(
                outer.as_mut(),
                BlockStructure::TriangularUpper,
                Accum::Add,
                x.transpose(),
                BlockStructure::Rectangular,
                x.as_ref(),
                BlockStructure::Rectangular,
                1.0,
                Par::rayon(0),
            );
        }
        self.count += k as u64;
        Ok(())
    }

    /// The input width.
    pub fn width(&self) -> usize {
        self.n
    }

    /// Tokens added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// `Σ x` per column.
    pub fn sum(&self) -> &[f64] {
        &self.sum
    }

    /// `Σ x²` per column.
    pub fn sum2(&self) -> &[f64] {
        &self.sum2
    }

    /// Whether the outer product is kept.
    pub fn has_outer(&self) -> bool {
        self.outer.is_some()
    }

    /// `Σ x xᵀ`, whole and symmetric, row-major, as f32 (what the statistics file stores).
    pub fn outer_f32(&self) -> Option<Vec<f32>> {
        let m = self.outer.as_ref()?;
        let n = self.n;
        let mut out = vec![0f32; n * n];
        for r in 0..n {
            for c in r..n {
                let v = m[(r, c)] as f32;
                out[r * n + c] = v;
                out[c * n + r] = v;
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64 as uniform f32 in [-1, 1).
    fn values(seed: u64, len: usize) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// The plain definition: a loop over tokens for every pair of columns.
    fn reference(rows: &[f32], n: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut sum = vec![0.0; n];
        let mut sum2 = vec![0.0; n];
        let mut outer = vec![0.0; n * n];
        for row in rows.chunks_exact(n) {
            for i in 0..n {
                let xi = f64::from(row[i]);
                sum[i] += xi;
                sum2[i] += xi * xi;
                for j in 0..n {
                    outer[i * n + j] += xi * f64::from(row[j]);
                }
            }
        }
        (sum, sum2, outer)
    }

    fn check_against_reference(batches: &[Vec<f32>], n: usize) {
        let mut m = InputMoments::new(n, true);
        let mut all = Vec::new();
        for b in batches {
            m.add_rows(b).unwrap();
            all.extend_from_slice(b);
        }
        let (sum, sum2, outer) = reference(&all, n);
        assert_eq!(m.count(), (all.len() / n) as u64);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + b.abs());
        for i in 0..n {
            assert!(close(m.sum()[i], sum[i]), "sum {i}");
            assert!(close(m.sum2()[i], sum2[i]), "sum2 {i}");
        }
        let full = m.outer_f32().unwrap();
        // The product sums in another order: equal to within one f32 rounding.
        for i in 0..n * n {
            let want = outer[i] as f32;
            assert!(
                (full[i] - want).abs() <= f32::EPSILON * want.abs(),
                "outer {i}: {} vs {want}",
                full[i]
            );
        }
    }

    #[test]
    fn random_batches_match_the_plain_definition() {
        // Widths below and above faer's blocking sizes, and batches of 1 and many rows.
        for &(n, rows_per_batch) in &[(1, 3), (7, 1), (33, 17), (130, 64)] {
            let batches: Vec<Vec<f32>> = (0..3)
                .map(|b| values(n as u64 * 31 + b, n * rows_per_batch))
                .collect();
            check_against_reference(&batches, n);
        }
    }

    #[test]
    fn zeros_ties_and_denormals_are_summed_exactly() {
        let n = 5;
        let tiny = f32::from_bits(1); // the smallest denormal
        let rows = vec![
            0.0, -0.0, tiny, 1.0, 1.0, //
            0.0, 0.0, -tiny, 1.0, 1.0, //
            0.0, 0.0, tiny, 1.0, 1.0,
        ];
        check_against_reference(std::slice::from_ref(&rows), n);
        let mut m = InputMoments::new(n, true);
        m.add_rows(&rows).unwrap();
        assert_eq!(m.sum2()[0], 0.0);
        assert_eq!(m.sum()[2], f64::from(tiny));
        assert_eq!(m.sum2()[3], 3.0);
        // A tie stays a tie: the two equal columns have equal sums and products.
        let full = m.outer_f32().unwrap();
        assert_eq!(full[3 * n + 3], full[4 * n + 4]);
        assert_eq!(full[3 * n + 4], 3.0);
    }

    #[test]
    fn non_finite_values_and_ragged_rows_are_refused_and_add_nothing() {
        let mut m = InputMoments::new(3, true);
        m.add_rows(&[1.0, 2.0, 3.0]).unwrap();
        let before = m.outer_f32();
        assert_eq!(
            m.add_rows(&[1.0, 2.0, 3.0, 4.0, f32::NAN, 6.0]),
            Err(MomentError::NonFinite { row: 1, col: 1 })
        );
        assert_eq!(
            m.add_rows(&[f32::INFINITY, 0.0, 0.0]),
            Err(MomentError::NonFinite { row: 0, col: 0 })
        );
        assert_eq!(
            m.add_rows(&[1.0, 2.0]),
            Err(MomentError::Width { n: 3, len: 2 })
        );
        assert_eq!(m.count(), 1);
        assert_eq!(m.outer_f32(), before);
        assert_eq!(m.sum(), &[1.0, 2.0, 3.0]);
    }

    #[test]
    fn without_the_outer_product_only_the_diagonal_is_kept() {
        let mut m = InputMoments::new(4, false);
        m.add_rows(&values(9, 40)).unwrap();
        assert!(!m.has_outer());
        assert!(m.outer_f32().is_none());
        assert_eq!(m.count(), 10);
        assert_eq!(InputMoments::bytes(4, false), 64);
        assert_eq!(InputMoments::bytes(4, true), 64 + 128);
    }
}
