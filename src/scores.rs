//! Score matrices for the rules that are not `|w| × one factor` (docs/method.md "Scores"):
//! RIA's relative importance and the gate/up hybrid. The kernels then select on these scores
//! as they select on weights (a score is non-negative, so `|score|` is the score).
//!
//! Arithmetic, in the order the specification gives it (the NumPy reference does the same):
//!
//! * RIA: `S_row[r]` and `S_col[c]` are the sums of `|w|` over a row and over a column,
//!   accumulated in f64 in index order and rounded once to f32; then, in f32,
//!   `(|w| / S_col[c] + |w| / S_row[r]) * g[c]`, where a term whose sum is 0 (its whole row or
//!   column is zero, so `|w| = 0` too) is 0.
//! * hybrid: `(|w| * col[c]) * row[r]` in f32.

use rayon::prelude::*;

use crate::rules::Score;

/// Columns per worker when summing columns: each worker walks every row over its own block
/// of columns, so every sum is accumulated in row order whoever computes it.
const COLUMN_BLOCK: usize = 256;

/// Fills `out` (resized to `rows * cols`) with the scores of the `rows × cols` row-major
/// matrix `w` under `score`, with the factors of [`crate::rules::Rule::row_and_column`].
///
/// # Panics
/// If `score` is computed by the kernels instead (magnitude, Wanda, DaSS), or on lengths
/// that do not match the shape.
pub fn fill(
    score: Score,
    w: &[f32],
    rows: usize,
    cols: usize,
    (row_factor, col_factor): (&[f32], &[f32]),
    out: &mut Vec<f32>,
) {
    assert_eq!(w.len(), rows * cols, "weights: expected rows * cols values");
    out.resize(rows * cols, 0.0);
    if rows == 0 || cols == 0 {
        return;
    }
    match score {
        Score::Ria => {
            assert_eq!(col_factor.len(), cols, "RIA needs one factor per column");
            let row_sum = row_sums(w, cols);
            let col_sum = column_sums(w, rows, cols);
            out.par_chunks_mut(cols)
                .zip(w.par_chunks(cols))
                .zip(row_sum.par_iter())
                .for_each(|((o, w), &s_row)| {
                    for (c, (o, &x)) in o.iter_mut().zip(w).enumerate() {
                        let a = x.abs();
                        *o = (share(a, col_sum[c]) + share(a, s_row)) * col_factor[c];
                    }
                });
        }
        Score::Hybrid => {
            assert_eq!(
                row_factor.len(),
                rows,
                "the hybrid needs one factor per row"
            );
            assert_eq!(
                col_factor.len(),
                cols,
                "the hybrid needs one factor per column"
            );
            out.par_chunks_mut(cols)
                .zip(w.par_chunks(cols))
                .zip(row_factor.par_iter())
                .for_each(|((o, w), &f_row)| {
                    for ((o, &x), &f_col) in o.iter_mut().zip(w).zip(col_factor) {
                        *o = (x.abs() * f_col) * f_row;
                    }
                });
        }
        Score::Magnitude | Score::Wanda | Score::Dass => {
            unreachable!("{} scores are computed by the kernels", score.name())
        }
    }
}

/// `a / sum`, or 0 when the sum is 0 (then `a` is 0 too).
fn share(a: f32, sum: f32) -> f32 {
    if sum == 0.0 {
        0.0
    } else {
        a / sum
    }
}

/// Per row, the sum of `|w|` in f64 in column order, rounded to f32.
fn row_sums(w: &[f32], cols: usize) -> Vec<f32> {
    w.par_chunks(cols)
        .map(|row| row.iter().map(|&x| f64::from(x.abs())).sum::<f64>() as f32)
        .collect()
}

/// Per column, the sum of `|w|` in f64 in row order, rounded to f32.
fn column_sums(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut sums = vec![0f32; cols];
    sums.par_chunks_mut(COLUMN_BLOCK)
        .enumerate()
        .for_each(|(b, out)| {
            let c0 = b * COLUMN_BLOCK;
            let mut acc = vec![0f64; out.len()];
            for r in 0..rows {
                let row = &w[r * cols + c0..r * cols + c0 + out.len()];
                for (a, &x) in acc.iter_mut().zip(row) {
                    *a += f64::from(x.abs());
                }
            }
            for (o, a) in out.iter_mut().zip(acc) {
                *o = a as f32;
            }
        });
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification, written out element by element.
    fn reference(
        score: Score,
        w: &[f32],
        rows: usize,
        cols: usize,
        rf: &[f32],
        cf: &[f32],
    ) -> Vec<f32> {
        let mut out = vec![0f32; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                let a = w[r * cols + c].abs();
                out[r * cols + c] = match score {
                    Score::Ria => {
                        let mut s_row = 0f64;
                        for k in 0..cols {
                            s_row += f64::from(w[r * cols + k].abs());
                        }
                        let mut s_col = 0f64;
                        for k in 0..rows {
                            s_col += f64::from(w[k * cols + c].abs());
                        }
                        let t = |s: f64| if s == 0.0 { 0.0 } else { a / s as f32 };
                        (t(s_col) + t(s_row)) * cf[c]
                    }
                    Score::Hybrid => a * cf[c] * rf[r],
                    _ => unreachable!(),
                };
            }
        }
        out
    }

    /// A small deterministic generator (xorshift), so the test needs no crate.
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut x = seed | 1;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let v = (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                match i % 11 {
                    0 => 0.0,
                    1 => -0.0,
                    2 => f32::from_bits(1 + (x as u32 & 0xff)), // a denormal
                    3 => 0.25,                                  // ties
                    _ => v,
                }
            })
            .collect()
    }

    #[test]
    fn matches_the_specification_on_odd_shapes_zeros_ties_and_denormals() {
        for (rows, cols) in [(1, 1), (3, 7), (17, 300), (260, 5), (64, 513)] {
            let w = values(rows * cols, (rows * 31 + cols) as u64);
            let rf: Vec<f32> = values(rows, 9).iter().map(|x| x.abs()).collect();
            let cf: Vec<f32> = values(cols, 5).iter().map(|x| x.abs() * 3.0).collect();
            for score in [Score::Ria, Score::Hybrid] {
                let mut got = Vec::new();
                fill(score, &w, rows, cols, (&rf, &cf), &mut got);
                let want = reference(score, &w, rows, cols, &rf, &cf);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{score:?} {rows}×{cols}");
                assert!(got.iter().all(|x| x.is_finite() && *x >= 0.0));
            }
        }
    }

    #[test]
    fn a_zero_row_or_column_scores_zero_instead_of_nan() {
        // Row 0 and column 1 are zero.
        let w = [0.0, 0.0, 0.0, 2.0, 0.0, -1.0];
        let mut out = Vec::new();
        fill(Score::Ria, &w, 2, 3, (&[], &[1.0, 1.0, 1.0]), &mut out);
        assert_eq!(
            out,
            vec![0.0, 0.0, 0.0, 1.0 + 2.0 / 3.0, 0.0, 1.0 + 1.0 / 3.0]
        );
    }

    #[test]
    fn relative_importance_favours_a_weight_large_for_its_row_and_column() {
        // Same |w| = 1 everywhere but row 1 is otherwise large: its weights matter less.
        let w = [1.0, 1.0, 1.0, 8.0];
        let mut out = Vec::new();
        fill(Score::Ria, &w, 2, 2, (&[], &[1.0, 1.0]), &mut out);
        assert!(out[0] > out[2], "{out:?}");
    }
}
