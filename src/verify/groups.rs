//! Who competes with whom, as docs/method.md "Groups" writes it down (read from the page here,
//! not taken from `crate::rules`, so that a file is checked against the specification rather
//! than against the code that wrote it), and the per-group counts of zeros and changes.

use rayon::prelude::*;

use crate::kernels::Pattern;
use crate::roles::Role;
use crate::rules::Method;

/// The groups of one matrix (`rows × cols`, row-major).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Runs of `len` consecutive weights inside each row (`len == cols`: whole rows).
    Rows { len: usize },
    /// Runs of `len` consecutive weights down each column (`len == rows`: whole columns).
    Columns { len: usize },
    /// The whole matrix.
    Matrix,
}

/// How a tensor of `role` is grouped under `method` (docs/method.md "Groups"), and whether a
/// fused gate+up is two matrices. `None` when the method has no such form (the hybrid's N:M
/// on gate/up).
pub fn grouping(method: Method, role: Role, pattern: Pattern) -> Option<(Kind, bool)> {
    let unstructured = matches!(pattern, Pattern::Unstructured { .. });
    let glu_input = role.is_glu_input_side();
    let kind = match method {
        Method::Wanda | Method::Magnitude => Kind::Rows,
        Method::Dass if glu_input => Kind::Columns,
        Method::Dass => Kind::Rows,
        Method::Hybrid if glu_input && !unstructured => return None,
        Method::Hybrid if glu_input => Kind::Matrix,
        Method::Hybrid => Kind::Rows,
        Method::Ria if unstructured => Kind::Matrix,
        Method::Ria => Kind::Rows,
    };
    // "phi3 stores gate and up fused in one ffn_up ... Under DaSS, RIA and the hybrid it is
    // pruned as two matrices."
    let halves = role == Role::FfnGateUpFused
        && matches!(method, Method::Dass | Method::Ria | Method::Hybrid);
    Some((kind, halves))
}

/// The direction of a tensor's groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rows,
    Columns,
    Matrix,
}

impl Kind {
    /// The layout of a `rows × cols` matrix under `pattern`; `Err` names the dimension an N:M
    /// run does not divide.
    pub fn layout(self, rows: usize, cols: usize, pattern: Pattern) -> Result<Layout, usize> {
        let m = match pattern {
            Pattern::NM { m, .. } => Some(m),
            Pattern::Unstructured { .. } => None,
        };
        match (self, m) {
            (Kind::Rows, None) => Ok(Layout::Rows { len: cols }),
            (Kind::Columns, None) => Ok(Layout::Columns { len: rows }),
            (Kind::Matrix, _) => Ok(Layout::Matrix),
            (Kind::Rows, Some(m)) if cols % m == 0 => Ok(Layout::Rows { len: m }),
            (Kind::Columns, Some(m)) if rows % m == 0 => Ok(Layout::Columns { len: m }),
            (Kind::Rows, Some(_)) => Err(cols),
            (Kind::Columns, Some(_)) => Err(rows),
        }
    }
}

impl Layout {
    /// Weights per group.
    pub fn group_len(self, rows: usize, cols: usize) -> usize {
        match self {
            Layout::Rows { len } | Layout::Columns { len } => len,
            Layout::Matrix => rows * cols,
        }
    }

    /// Where group `g` lies, for messages (rows and columns of the matrix).
    pub fn describe(self, g: usize, rows: usize, cols: usize) -> String {
        match self {
            Layout::Rows { len } if len == cols => format!("row {g}"),
            Layout::Rows { len } => {
                let per_row = cols / len;
                let (r, k) = (g / per_row, g % per_row);
                format!("row {r}, columns {}..{}", k * len, (k + 1) * len)
            }
            Layout::Columns { len } if len == rows => format!("column {g}"),
            Layout::Columns { len } => {
                let (band, c) = (g / cols, g % cols);
                format!("column {c}, rows {}..{}", band * len, (band + 1) * len)
            }
            Layout::Matrix => "the whole matrix".into(),
        }
    }

    /// The (row, column) of every weight of group `g`, in index order.
    pub fn members(
        self,
        g: usize,
        rows: usize,
        cols: usize,
    ) -> Box<dyn Iterator<Item = (usize, usize)>> {
        match self {
            Layout::Rows { len } => {
                let per_row = cols / len;
                let (r, k) = (g / per_row, g % per_row);
                Box::new((k * len..(k + 1) * len).map(move |c| (r, c)))
            }
            Layout::Columns { len } => {
                let (band, c) = (g / cols, g % cols);
                Box::new((band * len..(band + 1) * len).map(move |r| (r, c)))
            }
            Layout::Matrix => Box::new((0..rows).flat_map(move |r| (0..cols).map(move |c| (r, c)))),
        }
    }
}

/// The zeros a group of `len` weights must have under `pattern` (docs/method.md "Ties and
/// quotas"): `floor(len * s)` with the product in f64, or N of every M.
pub fn quota(len: usize, pattern: Pattern) -> u64 {
    match pattern {
        Pattern::Unstructured { sparsity } => {
            let k = (len as f64 * sparsity).floor();
            if k <= 0.0 {
                0
            } else {
                (k as u64).min(len as u64)
            }
        }
        Pattern::NM { n, .. } => n as u64,
    }
}

/// What one group holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    /// Weights that are zero (either sign).
    pub zeros: u64,
    /// Weights whose bits differ from the input's (with `--against`).
    pub changed: u64,
    /// Of those, the ones that are not zero (each one a violation).
    pub changed_nonzero: u64,
}

impl std::ops::AddAssign for Count {
    fn add_assign(&mut self, o: Count) {
        self.zeros += o.zeros;
        self.changed += o.changed;
        self.changed_nonzero += o.changed_nonzero;
    }
}

/// Counts per group of one matrix: `out` the written bits, `input` the expected bits of the
/// input (same length) when known, `mask` the non-sign bits of the type.
pub fn count(
    out: &[u32],
    input: Option<&[u32]>,
    rows: usize,
    cols: usize,
    layout: Layout,
    mask: u32,
) -> Vec<Count> {
    let at = |i: usize| -> Count {
        let zero = out[i] & mask == 0;
        let changed = input.is_some_and(|inp| inp[i] != out[i]);
        Count {
            zeros: zero.into(),
            changed: changed.into(),
            changed_nonzero: (changed && !zero).into(),
        }
    };
    if rows == 0 || cols == 0 {
        return Vec::new();
    }
    match layout {
        Layout::Rows { len } => {
            let per_row = cols / len;
            let mut counts = vec![Count::default(); rows * per_row];
            counts
                .par_chunks_mut(per_row)
                .enumerate()
                .for_each(|(r, groups)| {
                    for c in 0..cols {
                        groups[c / len] += at(r * cols + c);
                    }
                });
            counts
        }
        Layout::Columns { len } => {
            const TILE: usize = 64;
            let mut counts = vec![Count::default(); rows / len * cols];
            counts
                .par_chunks_mut(cols)
                .enumerate()
                .for_each(|(band, groups)| {
                    groups
                        .par_chunks_mut(TILE)
                        .enumerate()
                        .for_each(|(t, tile)| {
                            for r in band * len..(band + 1) * len {
                                for (k, g) in tile.iter_mut().enumerate() {
                                    *g += at(r * cols + t * TILE + k);
                                }
                            }
                        });
                });
            counts
        }
        Layout::Matrix => {
            let total = (0..rows)
                .into_par_iter()
                .map(|r| {
                    let mut c = Count::default();
                    for i in r * cols..(r + 1) * cols {
                        c += at(i);
                    }
                    c
                })
                .reduce(Count::default, |mut a, b| {
                    a += b;
                    a
                });
            vec![total]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern_nm(n: usize, m: usize) -> Pattern {
        Pattern::NM { n, m }
    }

    #[test]
    fn groups_follow_the_method_page() {
        let un = Pattern::Unstructured { sparsity: 0.5 };
        let nm = pattern_nm(2, 4);
        assert_eq!(
            grouping(Method::Dass, Role::FfnGate, nm),
            Some((Kind::Columns, false))
        );
        assert_eq!(
            grouping(Method::Dass, Role::FfnDown, un),
            Some((Kind::Rows, false))
        );
        assert_eq!(
            grouping(Method::Ria, Role::AttnQ, un),
            Some((Kind::Matrix, false))
        );
        assert_eq!(
            grouping(Method::Ria, Role::AttnQ, nm),
            Some((Kind::Rows, false))
        );
        assert_eq!(grouping(Method::Hybrid, Role::FfnUp, nm), None);
        assert_eq!(
            grouping(Method::Hybrid, Role::FfnDown, nm),
            Some((Kind::Rows, false))
        );
        assert_eq!(
            grouping(Method::Hybrid, Role::FfnGateUpFused, un),
            Some((Kind::Matrix, true))
        );
        assert_eq!(
            grouping(Method::Wanda, Role::FfnGateUpFused, un),
            Some((Kind::Rows, false))
        );
    }

    #[test]
    fn quotas_are_floors_and_n() {
        assert_eq!(quota(100, Pattern::Unstructured { sparsity: 0.29 }), 28);
        assert_eq!(quota(7, Pattern::Unstructured { sparsity: 0.5 }), 3);
        assert_eq!(quota(8, pattern_nm(4, 8)), 4);
    }

    #[test]
    fn counts_per_group_in_each_layout() {
        // 4 rows × 4 columns; zeros on the diagonal and at (0, 1).
        let mut out = vec![1u32; 16];
        for i in 0..4 {
            out[i * 4 + i] = 0;
        }
        out[1] = 0x8000_0000; // -0.0 is zero too
        let mask = 0x7FFF_FFFF;
        let zeros = |l: Layout| -> Vec<u64> {
            count(&out, None, 4, 4, l, mask)
                .iter()
                .map(|c| c.zeros)
                .collect()
        };
        assert_eq!(zeros(Layout::Rows { len: 4 }), [2, 1, 1, 1]);
        assert_eq!(zeros(Layout::Rows { len: 2 }), [2, 0, 1, 0, 0, 1, 0, 1]);
        assert_eq!(zeros(Layout::Columns { len: 4 }), [1, 2, 1, 1]);
        assert_eq!(zeros(Layout::Columns { len: 2 }), [1, 2, 0, 0, 0, 0, 1, 1]);
        assert_eq!(zeros(Layout::Matrix), [5]);
        // Against an input that differs at (2, 3) (still 1: a non-zero change) and (2, 2).
        let mut input = out.clone();
        input[2 * 4 + 3] = 7;
        input[2 * 4 + 2] = 9;
        let c = count(&out, Some(&input), 4, 4, Layout::Rows { len: 4 }, mask);
        assert_eq!(
            c[2],
            Count {
                zeros: 1,
                changed: 2,
                changed_nonzero: 1
            }
        );
        assert_eq!(
            Layout::Columns { len: 2 }.describe(5, 4, 4),
            "column 1, rows 2..4"
        );
        let members: Vec<_> = Layout::Rows { len: 2 }.members(3, 4, 4).collect();
        assert_eq!(members, [(1, 2), (1, 3)]);
    }
}
