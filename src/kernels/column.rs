//! Groups inside columns (`Axis::Column`), the DaSS layout for ffn_gate / ffn_up.
//!
//! A column is strided in memory (one f32 per row of up to 16 KiB), so walking it weight by
//! weight would touch a cache line per weight. Instead:
//!
//! * Select strategy (unstructured, or N:M with a large M): the matrix is cut into bands of
//!   `glen` rows (one band, all rows, for unstructured) and blocks of [`BLOCK`] columns. A
//!   worker copies one band × block tile row by row (each row segment is contiguous) into a
//!   column-major scratch (8 × 8 register transposes on AVX2), finds each column's [`Limit`](super::select::Limit) there, and
//!   stores it. A second pass then marks the mask row by row, recomputing the scores, fully
//!   contiguous and parallel over rows. Memory beyond the mask: two u32 limits per group and
//!   `BLOCK × glen` u32 of scratch per worker; no full-matrix score buffer.
//! * Rank strategy (N:M with small M): a band of M rows, read row by row, holds complete groups
//!   for every column, so ranks are counted across columns directly (8 columns per AVX2
//!   register), on M × [`CHUNK`] scores at a time.

use rayon::prelude::*;

use super::select::{find_limit, Scratch};
use super::simd::{mark_below, rank_mark_across, scores, transpose_scores, Level, TileScale};
use super::{row_factor, GroupStrategy, Scale};

fn tile_scale(scale: Scale) -> TileScale {
    match scale {
        Scale::None => TileScale::One,
        Scale::PerRow(f) => TileScale::PerRow(f),
        Scale::PerColumn(f) => TileScale::PerColumn(f),
    }
}

/// Columns per tile in the select strategy. Consecutive rows are a page or more apart, so each
/// row segment read costs a TLB miss and a DRAM access whatever its length; 64 columns
/// (256 contiguous bytes per row) amortise that. The per-worker scratch is 64 × rows u32
/// (3.7 MiB for 14336 rows, in L3). On 14336 × 4096, 64 measured ~1.4× faster than 32, and
/// 128 was no faster while doubling the scratch.
const BLOCK: usize = 64;

/// Columns scored at once in the rank strategy: M × 256 u32 stay in L1.
const CHUNK: usize = 256;

pub(super) fn run(
    level: Level,
    w: &[f32],
    rows: usize,
    cols: usize,
    scale: Scale,
    strategy: GroupStrategy,
    zero: &mut [bool],
) {
    match strategy {
        GroupStrategy::Select { glen, k } => select(level, w, rows, cols, scale, glen, k, zero),
        GroupStrategy::Rank { m, n } => rank(level, w, cols, scale, m, n, zero),
    }
}

#[allow(clippy::too_many_arguments)]
fn select(
    level: Level,
    w: &[f32],
    rows: usize,
    cols: usize,
    scale: Scale,
    glen: usize,
    k: usize,
    zero: &mut [bool],
) {
    let bands = rows / glen;
    // Column runs in the tile are padded apart by a cache line: with a stride that is a
    // multiple of 4 KiB (glen = 14336 is one) all the runs written together would map to
    // the same L1 sets and evict each other.
    let stride = glen.next_multiple_of(16) + 16;
    // Limits of group (band, column) at [band * cols + column].
    let mut lim_t = vec![0u32; bands * cols];
    let mut lim_l = vec![0u32; bands * cols];

    // Pass 1: limits, one task per band × column block.
    lim_t
        .par_chunks_mut(cols)
        .zip(lim_l.par_chunks_mut(cols))
        .enumerate()
        .for_each(|(band, (band_t, band_l))| {
            let r0 = band * glen;
            band_t
                .par_chunks_mut(BLOCK)
                .zip(band_l.par_chunks_mut(BLOCK))
                .enumerate()
                .for_each_init(
                    || (vec![0u32; BLOCK * stride], Scratch::default()),
                    |(tile, scratch), (blk, (t, l))| {
                        let c0 = blk * BLOCK;
                        let bw = t.len();
                        let tscale = tile_scale(scale);
                        transpose_scores(
                            level,
                            w,
                            cols,
                            (r0, glen),
                            (c0, bw),
                            tscale,
                            tile,
                            stride,
                        );
                        for j in 0..bw {
                            let lim = find_limit(level, &tile[j * stride..][..glen], k, scratch);
                            t[j] = lim.t;
                            l[j] = lim.l;
                        }
                    },
                );
        });

    // Pass 2: mark row by row against the limits of the row's band.
    zero.par_chunks_mut(cols)
        .zip(w.par_chunks(cols))
        .enumerate()
        .with_min_len(4)
        .for_each(|(r, (zr, wr))| {
            let band = r / glen;
            let t = &lim_t[band * cols..][..cols];
            let l = &lim_l[band * cols..][..cols];
            let f = row_factor(scale, r, 0..cols);
            mark_below(level, wr, f, t, l, (r % glen) as u32, zr);
        });
}

fn rank(level: Level, w: &[f32], cols: usize, scale: Scale, m: usize, n: usize, zero: &mut [bool]) {
    zero.par_chunks_mut(m * cols)
        .zip(w.par_chunks(m * cols))
        .enumerate()
        .for_each_init(
            || vec![0u32; m * CHUNK],
            |s, (band, (zb, wb))| {
                for c0 in (0..cols).step_by(CHUNK) {
                    let width = CHUNK.min(cols - c0);
                    let s = &mut s[..m * width];
                    for i in 0..m {
                        let r = band * m + i;
                        let f = row_factor(scale, r, c0..c0 + width);
                        scores(
                            level,
                            &wb[i * cols + c0..][..width],
                            f,
                            &mut s[i * width..][..width],
                        );
                    }
                    rank_mark_across(level, s, width, m, n, &mut zb[c0..], cols);
                }
            },
        );
}
