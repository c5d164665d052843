//! Pruning-mask kernels: which weights of an f32 matrix to set to zero.
//!
//! This implements the comparison rules of `docs/method.md` for one 2-D matrix:
//!
//! * a weight's score is `|w| * factor` in f32 (one IEEE multiply, identical on every path);
//! * weights compete inside groups (a row, a column, or M consecutive weights along one of
//!   them); the lowest scores are zeroed, and among equal scores the lower index inside the
//!   group goes first (a stable ascending sort);
//! * a group of `g` weights at sparsity `s` loses exactly `floor(g * s)`; under N:M every
//!   group of M loses exactly N.
//!
//! Internally a score is its f32 bit pattern with the sign bit cleared: for non-negative
//! floats that integer orders exactly like the value (denormals are ordinary values, `-0.0`
//! equals `+0.0`), so comparing `(bits, index)` is a strict total order with the tie rule
//! built in, and no float comparison is ever made.
//!
//! Algorithms (all linear per group, no sort):
//!
//! * **Select strategy** (unstructured; N:M with M above [`RANK_MAX_M`]): per group, the
//!   threshold is found by selection, not sorting: for groups of 4096 or more, a fixed sample
//!   brackets it and one vectorised pass keeps the few keys inside the bracket, among which
//!   `select_nth_unstable` picks it; shorter groups (and the rare missed bracket) use
//!   `select_nth_unstable` on the whole group. The result is a per-group limit key
//!   (see `select.rs`). Rows: whole rows per worker (`row.rs`). Columns: tiles of 64 columns
//!   copied row segment by row segment into a column-major scratch, then a second, row-wise
//!   marking pass (`column.rs`).
//! * **Rank strategy** (N:M, M ≤ [`RANK_MAX_M`]): weight i of a group is zeroed iff its rank
//!   (the number of keys before it in (score, index) order) is below N; O(M) compares per
//!   weight, branch-free, vectorised across groups (AVX2: in-register rotations for rows
//!   with M ∈ {2, 4, 8}, vertical compares over 8 columns for column groups with any M).
//!
//! Work is split with rayon inside the matrix (rows, column blocks, or bands of M rows); every
//! group is computed the same way whoever computes it, so results do not depend on the number
//! of threads. The score computation, the tile transpose, the sampling filter pass and the
//! N:M rank counts have AVX2 versions chosen at run time; [`select_zeros_at`] runs a chosen
//! [`Level`] so tests can compare the paths.
//!
//! Memory: no full-matrix score buffer is ever made (scores are recomputed where needed,
//! which costs one multiply per weight). Beyond the mask, a worker holds one row of u32
//! scores (row groups), one 64-column tile of u32 (column groups: 64 × rows), or M × 256 u32
//! (column N:M), plus selection scratch of at most one group; column groups also keep two
//! u32 per group (the limits) between the two passes.

mod column;
mod row;
mod select;
mod simd;

#[cfg(test)]
mod tests;

use std::ops::Range;

pub use simd::Level;

use simd::Factor;

/// How many weights of each group are zeroed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pattern {
    /// `floor(g * sparsity)` of every group of `g` weights (a whole row or column);
    /// `0 <= sparsity < 1`.
    Unstructured { sparsity: f64 },
    /// `n` of every `m` consecutive weights along the group axis; `0 < n < m`.
    NM { n: usize, m: usize },
}

/// Which weights compete. The matrix is `rows × cols`, row-major (row r = output channel,
/// contiguous).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Groups lie inside a row: the whole row (unstructured) or M consecutive columns (N:M).
    Row,
    /// Groups lie inside a column: the whole column (unstructured) or M consecutive rows (N:M).
    Column,
}

/// Per-weight importance factor: `score[r][c] = |w[r][c]| * factor`.
#[derive(Debug, Clone, Copy)]
pub enum Scale<'a> {
    /// Factor 1: magnitude pruning.
    None,
    /// One factor per row (`len == rows`), e.g. DaSS's `v_down[r]^(alpha/2)` on gate/up.
    PerRow(&'a [f32]),
    /// One factor per column (`len == cols`), e.g. Wanda's `sqrt(v[c])`.
    PerColumn(&'a [f32]),
}

/// Largest M for which N:M uses rank counting (O(M) compares per weight); above it each group
/// goes through linear-time selection instead, so the cost stays linear in the group size.
pub const RANK_MAX_M: usize = 16;

/// How one matrix is processed, derived from shape and pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GroupStrategy {
    /// Groups of `glen` consecutive weights along the axis; zero the `k` lowest of each.
    Select { glen: usize, k: usize },
    /// Groups of `m`; zero each weight whose rank is below `n`.
    Rank { m: usize, n: usize },
}

impl GroupStrategy {
    /// `group_len` is the length of the grouped dimension (cols for rows, rows for columns).
    fn new(group_len: usize, pattern: Pattern) -> GroupStrategy {
        match pattern {
            Pattern::Unstructured { sparsity } => GroupStrategy::Select {
                glen: group_len,
                k: select::quota(group_len, sparsity),
            },
            Pattern::NM { n, m } if m <= RANK_MAX_M => GroupStrategy::Rank { m, n },
            Pattern::NM { n, m } => GroupStrategy::Select { glen: m, k: n },
        }
    }

    /// Zeros per group and groups per line of the grouped dimension.
    fn per_line(self, group_len: usize) -> u64 {
        match self {
            GroupStrategy::Select { glen, k } if glen > 0 => (group_len / glen * k) as u64,
            GroupStrategy::Select { .. } => 0,
            GroupStrategy::Rank { m, n } => (group_len / m * n) as u64,
        }
    }
}

/// Panics on a pattern outside its documented range (cheap, checked in release builds too:
/// a wrong pattern would otherwise silently produce a wrong mask).
fn check_pattern(pattern: Pattern) {
    match pattern {
        Pattern::Unstructured { sparsity } => assert!(
            (0.0..1.0).contains(&sparsity),
            "sparsity must be in [0, 1), got {sparsity}"
        ),
        Pattern::NM { n, m } => assert!(0 < n && n < m, "N:M needs 0 < N < M, got {n}:{m}"),
    }
}

/// The lines and group length for an axis: (number of lines, length of each line).
fn lines(rows: usize, cols: usize, axis: Axis) -> (usize, usize) {
    match axis {
        Axis::Row => (rows, cols),
        Axis::Column => (cols, rows),
    }
}

/// Number of weights `select_zeros` will zero for this shape (known before running: sum over
/// groups of `floor(g * s)`, or N per group of M).
///
/// For N:M the grouped dimension should be a multiple of M (an incomplete trailing group
/// counts nothing here; [`select_zeros`] rejects such shapes).
///
/// # Panics
/// If the pattern is out of range (`sparsity` outside `[0, 1)`, or not `0 < n < m`).
pub fn zero_count(rows: usize, cols: usize, axis: Axis, pattern: Pattern) -> u64 {
    check_pattern(pattern);
    let (nlines, group_len) = lines(rows, cols, axis);
    nlines as u64 * GroupStrategy::new(group_len, pattern).per_line(group_len)
}

/// Marks in `zero` (len rows*cols, row-major, overwritten) the weights to set to zero.
/// Preconditions checked by the caller and by debug_asserts here: all weights and factors
/// finite, factors >= 0, N:M grouped dimension divisible by M. Returns the number marked
/// (== [`zero_count`]).
///
/// Uses the instruction set reported by [`simd_level`]; the result is the same on every path.
///
/// # Panics
/// On inconsistent lengths (`w`, `zero`, scale factors), an out-of-range pattern, an N:M
/// grouped dimension that is not a multiple of M, or a dimension of 2^31 or more. These O(1)
/// checks run in release builds too; the O(n) finiteness checks are debug-only.
pub fn select_zeros(
    w: &[f32],
    rows: usize,
    cols: usize,
    scale: Scale,
    axis: Axis,
    pattern: Pattern,
    zero: &mut [bool],
) -> u64 {
    select_zeros_at(Level::active(), w, rows, cols, scale, axis, pattern, zero)
}

/// [`select_zeros`] on a chosen instruction set (tests and benchmarks compare the paths).
#[allow(clippy::too_many_arguments)]
pub fn select_zeros_at(
    level: Level,
    w: &[f32],
    rows: usize,
    cols: usize,
    scale: Scale,
    axis: Axis,
    pattern: Pattern,
    zero: &mut [bool],
) -> u64 {
    let n = rows.checked_mul(cols).expect("rows * cols overflows");
    assert_eq!(w.len(), n, "weights: expected rows * cols = {n} values");
    assert_eq!(zero.len(), n, "mask: expected rows * cols = {n} entries");
    // Tie limits and row indices are compared as i32 lanes.
    assert!(
        rows <= i32::MAX as usize && cols <= i32::MAX as usize,
        "dimension too large"
    );
    match scale {
        Scale::None => {}
        Scale::PerRow(f) => assert_eq!(f.len(), rows, "PerRow needs one factor per row"),
        Scale::PerColumn(f) => assert_eq!(f.len(), cols, "PerColumn needs one factor per column"),
    }
    check_pattern(pattern);
    let (_, group_len) = lines(rows, cols, axis);
    if let Pattern::NM { m, .. } = pattern {
        assert!(
            group_len % m == 0,
            "N:M needs the grouped dimension ({group_len}) to be a multiple of M = {m}"
        );
    }
    debug_assert!(w.iter().all(|x| x.is_finite()), "non-finite weight");
    debug_assert!(
        match scale {
            Scale::None => true,
            Scale::PerRow(f) | Scale::PerColumn(f) => f.iter().all(|x| x.is_finite() && *x >= 0.0),
        },
        "factors must be finite and >= 0"
    );

    let count = zero_count(rows, cols, axis, pattern);
    if count == 0 {
        // s = 0 or tiny groups: nothing to rank, skip reading the weights.
        zero.fill(false);
        return 0;
    }
    let strategy = GroupStrategy::new(group_len, pattern);
    match axis {
        Axis::Row => row::run(level, w, cols, scale, strategy, zero),
        Axis::Column => column::run(level, w, rows, cols, scale, strategy, zero),
    }
    debug_assert_eq!(zero.iter().filter(|&&z| z).count() as u64, count);
    count
}

/// Which instruction set the score kernel uses on this machine (`"avx2"` or `"portable"`),
/// for reports. Set `DASS_GGUF_FORCE_PORTABLE=1` (read once) to force the portable path.
pub fn simd_level() -> &'static str {
    Level::active().name()
}

/// The factor for columns `cols` of row `r`.
fn row_factor<'a>(scale: Scale<'a>, r: usize, cols: Range<usize>) -> Factor<'a> {
    match scale {
        // Multiplying by 1.0 is exact, so this is |w| bit for bit.
        Scale::None => Factor::Const(1.0),
        Scale::PerRow(f) => Factor::Const(f[r]),
        Scale::PerColumn(f) => Factor::Slice(&f[cols]),
    }
}
