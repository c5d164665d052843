//! Groups inside rows (`Axis::Row`): each row is contiguous, so a worker takes whole rows,
//! scores a row into a row-sized scratch buffer and marks its groups in place.

use rayon::prelude::*;

use super::select::{find_limit, mark_limit, Scratch};
use super::simd::{rank_mark_contig, scores, Level};
use super::{row_factor, GroupStrategy, Scale};

/// Rows handed to one rayon task at a time: enough work to amortise the task, small enough
/// to balance two or more threads on short matrices.
const MIN_ROWS_PER_TASK: usize = 4;

pub(super) fn run(
    level: Level,
    w: &[f32],
    cols: usize,
    scale: Scale,
    strategy: GroupStrategy,
    zero: &mut [bool],
) {
    zero.par_chunks_mut(cols)
        .zip(w.par_chunks(cols))
        .enumerate()
        .with_min_len(MIN_ROWS_PER_TASK)
        .for_each_init(
            // Per-task scratch: the row's scores and the selection copy of one group.
            || (vec![0u32; cols], Scratch::default()),
            |(bits, tmp), (r, (zr, wr))| {
                scores(level, wr, row_factor(scale, r, 0..cols), bits);
                match strategy {
                    GroupStrategy::Select { glen, k } => {
                        for (gb, gz) in bits.chunks_exact(glen).zip(zr.chunks_exact_mut(glen)) {
                            mark_limit(gb, find_limit(level, gb, k, tmp), gz);
                        }
                    }
                    GroupStrategy::Rank { m, n } => rank_mark_contig(level, bits, m, n, zr),
                }
            },
        );
}
