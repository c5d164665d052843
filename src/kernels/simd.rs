//! Instruction-set selection and the innermost loops.
//!
//! Every kernel has a portable version and, on x86-64, an AVX2 version. Both compute the same
//! integers (score bit patterns, ranks, integer comparisons), never a rounding-dependent
//! value, so their masks are identical by construction; the tests still compare them on every
//! input because "by construction" is what bugs hide behind.
//!
//! Scores are handled as bit patterns: a score is `|w| * f` with `f >= 0`, a non-negative f32
//! (or `-0.0` when `f` is `-0.0`, which passes the `f >= 0` check; clearing the sign bit maps
//! it to `+0.0`, the same value). For non-negative floats the IEEE bit pattern, read as an
//! integer, orders exactly like the value, denormals included, and it is at most
//! `0x7fff_ffff`, so it also compares correctly as a signed `i32` (which AVX2 compares natively).

use std::sync::OnceLock;

/// Clears the sign bit: `abs` for an f32 bit pattern.
pub(crate) const ABS_MASK: u32 = 0x7fff_ffff;

/// The score of one weight as an integer key: `(|w| * f)` with the sign bit cleared.
///
/// One IEEE multiply, no fused operation (Rust never contracts), no flush-to-zero: the AVX2
/// path performs exactly the same operations lane by lane.
#[inline(always)]
pub(crate) fn score_bits(w: f32, f: f32) -> u32 {
    (w.abs() * f).to_bits() & ABS_MASK
}

/// An instruction set the kernels can use.
///
/// A value can only be obtained for an instruction set this CPU supports ([`Level::avx2`]
/// checks at run time), which is what makes passing it to the kernels sound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Level(Kind);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
enum Kind {
    Portable,
    Avx2,
}

impl Level {
    /// Plain Rust, any target.
    pub const PORTABLE: Level = Level(Kind::Portable);

    /// AVX2, when this CPU has it.
    pub fn avx2() -> Option<Level> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                return Some(Level(Kind::Avx2));
            }
        }
        None
    }

    /// Every level this CPU can run, portable first (for tests that compare them).
    pub fn available() -> Vec<Level> {
        let mut all = vec![Level::PORTABLE];
        all.extend(Level::avx2());
        all
    }

    /// The level [`super::select_zeros`] uses: the best one available, unless the environment
    /// variable `DASS_GGUF_FORCE_PORTABLE` is set to something other than empty or `0`.
    /// Read once per process so a run never mixes paths.
    pub fn active() -> Level {
        static ACTIVE: OnceLock<Level> = OnceLock::new();
        *ACTIVE.get_or_init(|| {
            let forced = std::env::var_os("DASS_GGUF_FORCE_PORTABLE")
                .is_some_and(|v| !v.is_empty() && v != "0");
            if forced {
                Level::PORTABLE
            } else {
                Level::avx2().unwrap_or(Level::PORTABLE)
            }
        })
    }

    /// `"avx2"` or `"portable"`.
    pub fn name(self) -> &'static str {
        match self.0 {
            Kind::Portable => "portable",
            Kind::Avx2 => "avx2",
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn is_avx2(self) -> bool {
        self.0 == Kind::Avx2
    }
}

/// The importance factor of a run of weights: one value for all (a row under `PerRow`, or
/// `1.0` without scale) or one per weight (a row segment under `PerColumn`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Factor<'a> {
    Const(f32),
    Slice(&'a [f32]),
}

impl Factor<'_> {
    #[inline(always)]
    fn at(&self, i: usize) -> f32 {
        match self {
            Factor::Const(f) => *f,
            Factor::Slice(s) => s[i],
        }
    }

    fn covers(&self, n: usize) -> bool {
        match self {
            Factor::Const(_) => true,
            Factor::Slice(s) => s.len() == n,
        }
    }

    /// The factors from weight `from` on (the AVX2 loops hand their tails to portable code).
    #[cfg(target_arch = "x86_64")]
    fn tail(self, from: usize) -> Self {
        match self {
            Factor::Const(f) => Factor::Const(f),
            Factor::Slice(s) => Factor::Slice(&s[from..]),
        }
    }
}

/// `out[i] = score_bits(w[i], f[i])`.
pub(crate) fn scores(level: Level, w: &[f32], f: Factor, out: &mut [u32]) {
    assert!(out.len() == w.len() && f.covers(w.len()));
    #[cfg(target_arch = "x86_64")]
    if level.is_avx2() {
        // SAFETY: an AVX2 `Level` exists only when the CPU has AVX2; lengths checked above.
        unsafe { avx2::scores(w, f, out) };
        return;
    }
    let _ = level;
    portable::scores(w, f, out);
}

/// Marks the weights of one row against per-column limits (column groups, second pass):
/// `zero[c] = (score(w[c]), r) < (t[c], l[c])` in lexicographic order, i.e. the score is below
/// the column's threshold score, or equal to it with row-in-group `r` before the column's tie
/// limit. Scores are recomputed here so the first pass needs no full-matrix buffer.
pub(crate) fn mark_below(
    level: Level,
    w: &[f32],
    f: Factor,
    t: &[u32],
    l: &[u32],
    r: u32,
    zero: &mut [bool],
) {
    let n = w.len();
    assert!(t.len() == n && l.len() == n && zero.len() == n && f.covers(n));
    #[cfg(target_arch = "x86_64")]
    if level.is_avx2() {
        // SAFETY: the CPU has AVX2 (see `Level`); lengths checked above.
        unsafe { avx2::mark_below(w, f, t, l, r, zero) };
        return;
    }
    let _ = level;
    portable::mark_below(w, f, t, l, r, zero);
}

/// The per-weight factor source of a tile: by row, by column or none. A copy of the public
/// `Scale` so the kernels stay independent of the API module.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TileScale<'a> {
    One,
    PerRow(&'a [f32]),
    PerColumn(&'a [f32]),
}

impl TileScale<'_> {
    #[inline(always)]
    fn at(&self, r: usize, c: usize) -> f32 {
        match self {
            TileScale::One => 1.0,
            TileScale::PerRow(f) => f[r],
            TileScale::PerColumn(f) => f[c],
        }
    }
}

/// Scores of the tile rows `r0..r0 + h` × columns `c0..c0 + bw` of the row-major matrix `w`
/// (`cols` columns), written transposed: `tile[j * stride + i]` is the score of
/// `w[r0 + i][c0 + j]`. This turns a block of columns into contiguous per-column runs while
/// reading the matrix only in contiguous row segments.
#[allow(clippy::too_many_arguments)]
pub(crate) fn transpose_scores(
    level: Level,
    w: &[f32],
    cols: usize,
    (r0, h): (usize, usize),
    (c0, bw): (usize, usize),
    scale: TileScale,
    tile: &mut [u32],
    stride: usize,
) {
    assert!(h > 0 && bw > 0 && c0 + bw <= cols && (r0 + h) * cols <= w.len());
    assert!(h <= stride && tile.len() >= (bw - 1) * stride + h);
    match scale {
        TileScale::One => {}
        TileScale::PerRow(f) => assert!(f.len() >= r0 + h),
        TileScale::PerColumn(f) => assert!(f.len() >= c0 + bw),
    }
    #[cfg(target_arch = "x86_64")]
    if level.is_avx2() {
        // SAFETY: the CPU has AVX2; every index is inside the bounds checked above.
        unsafe { avx2::transpose_scores(w, cols, (r0, h), (c0, bw), scale, tile, stride) };
        return;
    }
    let _ = level;
    portable::transpose_scores(w, cols, (r0, h), (c0, bw), 0, scale, tile, stride);
}

/// One pass over a group for the sampling selection: returns how many keys are below `lo`,
/// and the number `n` of keys in `[lo, hi]`, whose indices (ascending) are left in
/// `idx[..n]`. `idx` is grown as needed and never shrunk (contents past `n` are garbage).
pub(crate) fn filter_range(
    level: Level,
    bits: &[u32],
    lo: u32,
    hi: u32,
    idx: &mut Vec<u32>,
) -> (usize, usize) {
    assert!(bits.len() <= i32::MAX as usize);
    if idx.len() < bits.len() {
        idx.resize(bits.len(), 0);
    }
    #[cfg(target_arch = "x86_64")]
    if level.is_avx2() {
        // SAFETY: the CPU has AVX2; `idx` is at least as long as `bits` (ensured above).
        return unsafe { avx2::filter_range(bits, lo, hi, idx) };
    }
    let _ = level;
    portable::filter_range(bits, 0, lo, hi, idx, 0)
}

/// N:M along a contiguous run: `bits` is a sequence of groups of `m` keys; marks in each
/// group the `n` lowest (ties to the lower index).
pub(crate) fn rank_mark_contig(level: Level, bits: &[u32], m: usize, n: usize, zero: &mut [bool]) {
    assert!(zero.len() == bits.len() && m > 0 && bits.len() % m == 0);
    #[cfg(target_arch = "x86_64")]
    if level.is_avx2() && matches!(m, 2 | 4 | 8) {
        // SAFETY: the CPU has AVX2; lengths checked above; m divides 8.
        unsafe { avx2::rank_mark_contig(bits, m, n, zero) };
        return;
    }
    let _ = level;
    portable::rank_mark_contig(bits, m, n, zero);
}

/// N:M across rows: `s` holds `m` rows of `width` keys (`s[i * width + c]`); in each column
/// the group is the `m` keys of that column. Marks `zero[i * zstride + c]`.
pub(crate) fn rank_mark_across(
    level: Level,
    s: &[u32],
    width: usize,
    m: usize,
    n: usize,
    zero: &mut [bool],
    zstride: usize,
) {
    assert!(m > 0 && s.len() == m * width && width <= zstride);
    assert!(zero.len() >= (m - 1) * zstride + width);
    #[cfg(target_arch = "x86_64")]
    if level.is_avx2() {
        // SAFETY: the CPU has AVX2; lengths checked above.
        unsafe { avx2::rank_mark_across(s, width, m, n, zero, zstride) };
        return;
    }
    let _ = level;
    portable::rank_mark_across(s, width, 0, m, n, zero, zstride);
}

/// Rank of key `i` inside a group under the order (key, index): how many keys go before it.
#[inline(always)]
fn rank_in(g: impl Fn(usize) -> u32, m: usize, i: usize) -> usize {
    let si = g(i);
    let before = (0..i).filter(|&j| g(j) <= si).count();
    let after = (i + 1..m).filter(|&j| g(j) < si).count();
    before + after
}

mod portable {
    use super::{rank_in, score_bits, Factor, TileScale};

    pub(super) fn scores(w: &[f32], f: Factor, out: &mut [u32]) {
        match f {
            Factor::Const(f) => {
                for (o, &x) in out.iter_mut().zip(w) {
                    *o = score_bits(x, f);
                }
            }
            Factor::Slice(fs) => {
                for ((o, &x), &f) in out.iter_mut().zip(w).zip(fs) {
                    *o = score_bits(x, f);
                }
            }
        }
    }

    pub(super) fn mark_below(
        w: &[f32],
        f: Factor,
        t: &[u32],
        l: &[u32],
        r: u32,
        zero: &mut [bool],
    ) {
        for c in 0..w.len() {
            // `t + 1` never wraps: the "zero everything" limit has `l == 0`.
            let lim = t[c].wrapping_add(u32::from(r < l[c]));
            zero[c] = score_bits(w[c], f.at(c)) < lim;
        }
    }

    /// Keys `from..` of `bits`; candidates are appended at `idx[n0..]`. Branch-free: the
    /// index is always written and the count advanced by the comparison.
    pub(super) fn filter_range(
        bits: &[u32],
        from: usize,
        lo: u32,
        hi: u32,
        idx: &mut [u32],
        n0: usize,
    ) -> (usize, usize) {
        let mut below = 0;
        let mut n = n0;
        for (i, &x) in bits.iter().enumerate().skip(from) {
            below += usize::from(x < lo);
            idx[n] = i as u32;
            n += usize::from(lo <= x && x <= hi);
        }
        (below, n)
    }

    /// Columns `j0..bw` of the tile (the AVX2 version hands over its leftover columns).
    /// Rows in runs of 8 so that each column's scratch is written 8 entries at a time.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn transpose_scores(
        w: &[f32],
        cols: usize,
        (r0, h): (usize, usize),
        (c0, bw): (usize, usize),
        j0: usize,
        scale: TileScale,
        tile: &mut [u32],
        stride: usize,
    ) {
        for i0 in (0..h).step_by(8) {
            let rows = i0..(i0 + 8).min(h);
            for j in j0..bw {
                let c = c0 + j;
                for i in rows.clone() {
                    let r = r0 + i;
                    tile[j * stride + i] = score_bits(w[r * cols + c], scale.at(r, c));
                }
            }
        }
    }

    pub(super) fn rank_mark_contig(bits: &[u32], m: usize, n: usize, zero: &mut [bool]) {
        // A constant M lets the compiler unroll the rank loops for the common patterns.
        match m {
            2 => contig_fixed::<2>(bits, n, zero),
            4 => contig_fixed::<4>(bits, n, zero),
            8 => contig_fixed::<8>(bits, n, zero),
            _ => {
                for (g, z) in bits.chunks_exact(m).zip(zero.chunks_exact_mut(m)) {
                    for (i, zi) in z.iter_mut().enumerate() {
                        *zi = rank_in(|j| g[j], m, i) < n;
                    }
                }
            }
        }
    }

    fn contig_fixed<const M: usize>(bits: &[u32], n: usize, zero: &mut [bool]) {
        for (g, z) in bits.chunks_exact(M).zip(zero.chunks_exact_mut(M)) {
            for (i, zi) in z.iter_mut().enumerate() {
                *zi = rank_in(|j| g[j], M, i) < n;
            }
        }
    }

    /// Columns `from..width`. Ranks are accumulated row pair by row pair over a run of
    /// columns, so every inner loop is a plain element-wise compare the compiler vectorises.
    pub(super) fn rank_mark_across(
        s: &[u32],
        width: usize,
        from: usize,
        m: usize,
        n: usize,
        zero: &mut [bool],
        zstride: usize,
    ) {
        const RUN: usize = 64;
        let mut rank = [0u32; RUN];
        for c0 in (from..width).step_by(RUN) {
            let len = RUN.min(width - c0);
            let rank = &mut rank[..len];
            for i in 0..m {
                rank.fill(0);
                let si = &s[i * width + c0..][..len];
                for j in 0..m {
                    let sj = &s[j * width + c0..][..len];
                    // j before i: an equal key goes first too (the lower index wins the tie).
                    if j < i {
                        for ((r, &a), &b) in rank.iter_mut().zip(sj).zip(si) {
                            *r += u32::from(a <= b);
                        }
                    } else if j > i {
                        for ((r, &a), &b) in rank.iter_mut().zip(sj).zip(si) {
                            *r += u32::from(a < b);
                        }
                    }
                }
                let z = &mut zero[i * zstride + c0..][..len];
                for (zc, &r) in z.iter_mut().zip(rank.iter()) {
                    *zc = (r as usize) < n;
                }
            }
        }
    }
}

/// `BYTE_MASKS[b]` spreads the 8 bits of `b` into 8 bytes of 0/1: turns a `movemask` result
/// into 8 `bool`s with one store.
#[cfg(target_arch = "x86_64")]
static BYTE_MASKS: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        let mut bit = 0;
        while bit < 8 {
            if (b >> bit) & 1 == 1 {
                table[b] |= 1 << (8 * bit);
            }
            bit += 1;
        }
        b += 1;
    }
    table
};

/// `COMPRESS[b]` lists the positions of the set bits of `b`, lowest first (then zeros): the
/// lane permutation that packs the selected lanes of a vector to its front.
#[cfg(target_arch = "x86_64")]
static COMPRESS: [[u32; 8]; 256] = {
    let mut table = [[0u32; 8]; 256];
    let mut b = 0;
    while b < 256 {
        let mut n = 0;
        let mut bit = 0;
        while bit < 8 {
            if (b >> bit) & 1 == 1 {
                table[b][n] = bit as u32;
                n += 1;
            }
            bit += 1;
        }
        b += 1;
    }
    table
};

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! AVX2 versions. Each function requires AVX2 (`#[target_feature]`) and the length
    //! preconditions its safe wrapper checks; tails shorter than 8 go to the portable code.

    use super::{portable, Factor, TileScale, ABS_MASK, BYTE_MASKS, COMPRESS};

    /// How far ahead (in rows) the tile transpose prefetches.
    const PREFETCH_ROWS: usize = 16;
    use std::arch::x86_64::*;

    /// Scores of 8 weights: `and(mul(and(x, mask), f), mask)`, the lane-wise twin of
    /// `score_bits`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn score8(x: __m256, f: __m256) -> __m256i {
        let mask = _mm256_castsi256_ps(_mm256_set1_epi32(ABS_MASK as i32));
        _mm256_castps_si256(_mm256_and_ps(
            _mm256_mul_ps(_mm256_and_ps(x, mask), f),
            mask,
        ))
    }

    /// Factors for lanes `i..i+8`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn factor8(f: &Factor, i: usize) -> __m256 {
        match f {
            Factor::Const(c) => _mm256_set1_ps(*c),
            Factor::Slice(s) => {
                debug_assert!(i + 8 <= s.len());
                unsafe { _mm256_loadu_ps(s.as_ptr().add(i)) }
            }
        }
    }

    /// Stores 8 lanes of an all-ones/all-zeros mask as 8 `bool`s.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn store_mask8(zero: *mut bool, mask: __m256i) {
        let bits = _mm256_movemask_ps(_mm256_castsi256_ps(mask)) as usize;
        // Bytes 0/1 are valid `bool`s; x86 is little-endian, so byte k is lane k.
        unsafe { zero.cast::<u64>().write_unaligned(BYTE_MASKS[bits]) };
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn scores(w: &[f32], f: Factor, out: &mut [u32]) {
        let n = w.len();
        let mut i = 0;
        while i + 8 <= n {
            unsafe {
                let x = _mm256_loadu_ps(w.as_ptr().add(i));
                let s = score8(x, factor8(&f, i));
                _mm256_storeu_si256(out.as_mut_ptr().add(i).cast(), s);
            }
            i += 8;
        }
        portable::scores(&w[i..], f.tail(i), &mut out[i..]);
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn mark_below(
        w: &[f32],
        f: Factor,
        t: &[u32],
        l: &[u32],
        r: u32,
        zero: &mut [bool],
    ) {
        let n = w.len();
        // Row indices and tie limits are below 2^31 (checked by the caller), so the signed
        // compare is exact.
        let rv = _mm256_set1_epi32(r as i32);
        let mut i = 0;
        while i + 8 <= n {
            unsafe {
                let s = score8(_mm256_loadu_ps(w.as_ptr().add(i)), factor8(&f, i));
                let tv = _mm256_loadu_si256(t.as_ptr().add(i).cast());
                let lv = _mm256_loadu_si256(l.as_ptr().add(i).cast());
                // lim = t + (r < l): subtracting the all-ones compare adds 1.
                let lim = _mm256_sub_epi32(tv, _mm256_cmpgt_epi32(lv, rv));
                // Unsigned s < lim  <=>  not (max(s, lim) == s); lim may be u32::MAX.
                let ge = _mm256_cmpeq_epi32(_mm256_max_epu32(s, lim), s);
                let lt = _mm256_xor_si256(ge, _mm256_set1_epi32(-1));
                store_mask8(zero.as_mut_ptr().add(i), lt);
            }
            i += 8;
        }
        portable::mark_below(&w[i..], f.tail(i), &t[i..], &l[i..], r, &mut zero[i..]);
    }

    /// 8 × 8 blocks: load 8 row segments, score them, transpose in registers, store 8
    /// column runs of 8. Rows are prefetched [`PREFETCH_ROWS`] ahead because consecutive
    /// rows sit a page or more apart, where the hardware prefetcher does not follow.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn transpose_scores(
        w: &[f32],
        cols: usize,
        (r0, h): (usize, usize),
        (c0, bw): (usize, usize),
        scale: TileScale,
        tile: &mut [u32],
        stride: usize,
    ) {
        let wp = w.as_ptr();
        let tp = tile.as_mut_ptr();
        let full_cols = bw - bw % 8;
        let mut i = 0;
        while i + 8 <= h {
            unsafe {
                for p in 0..8 {
                    let r = r0 + i + PREFETCH_ROWS + p;
                    if r < r0 + h {
                        let row = wp.add(r * cols + c0).cast::<i8>();
                        _mm_prefetch::<_MM_HINT_T0>(row);
                        _mm_prefetch::<_MM_HINT_T0>(row.add(4 * bw - 1));
                    }
                }
                let mut j = 0;
                while j < full_cols {
                    let mut v = [_mm256_setzero_ps(); 8];
                    for (p, vp) in v.iter_mut().enumerate() {
                        let r = r0 + i + p;
                        let x = _mm256_loadu_ps(wp.add(r * cols + c0 + j));
                        let f = match scale {
                            TileScale::One => _mm256_set1_ps(1.0),
                            TileScale::PerRow(f) => _mm256_set1_ps(*f.get_unchecked(r)),
                            TileScale::PerColumn(f) => _mm256_loadu_ps(f.as_ptr().add(c0 + j)),
                        };
                        *vp = _mm256_castsi256_ps(score8(x, f));
                    }
                    let t = transpose8(v);
                    for (q, tq) in t.iter().enumerate() {
                        _mm256_storeu_ps(tp.add((j + q) * stride + i).cast(), *tq);
                    }
                    j += 8;
                }
            }
            i += 8;
        }
        // Leftover rows (all columns), then leftover columns of the full row runs.
        if i < h {
            portable::transpose_scores(
                w,
                cols,
                (r0 + i, h - i),
                (c0, bw),
                0,
                scale,
                &mut tile[i..],
                stride,
            );
        }
        if full_cols < bw && i > 0 {
            portable::transpose_scores(w, cols, (r0, i), (c0, bw), full_cols, scale, tile, stride);
        }
    }

    /// 8 × 8 transpose of 32-bit lanes: `out[j][p] = v[p][j]`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn transpose8(v: [__m256; 8]) -> [__m256; 8] {
        let t0 = _mm256_unpacklo_ps(v[0], v[1]);
        let t1 = _mm256_unpackhi_ps(v[0], v[1]);
        let t2 = _mm256_unpacklo_ps(v[2], v[3]);
        let t3 = _mm256_unpackhi_ps(v[2], v[3]);
        let t4 = _mm256_unpacklo_ps(v[4], v[5]);
        let t5 = _mm256_unpackhi_ps(v[4], v[5]);
        let t6 = _mm256_unpacklo_ps(v[6], v[7]);
        let t7 = _mm256_unpackhi_ps(v[6], v[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ]
    }

    /// 8 keys per step: two compares give "below" (summed per lane) and "inside"; the
    /// inside lanes' indices are packed to the front with a permutation from
    /// [`COMPRESS`] and stored as a full vector, and the count advances by their number.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn filter_range(
        bits: &[u32],
        lo: u32,
        hi: u32,
        idx: &mut [u32],
    ) -> (usize, usize) {
        let len = bits.len();
        // Keys are at most 0x7fff_ffff: clamping hi keeps the signed compares exact.
        let lov = _mm256_set1_epi32(lo as i32);
        let hiv = _mm256_set1_epi32(hi.min(ABS_MASK) as i32);
        let mut lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let eight = _mm256_set1_epi32(8);
        let mut below = _mm256_setzero_si256();
        let mut n = 0;
        let mut i = 0;
        while i + 8 <= len {
            unsafe {
                let v = _mm256_loadu_si256(bits.as_ptr().add(i).cast());
                let lt = _mm256_cmpgt_epi32(lov, v);
                let gt = _mm256_cmpgt_epi32(v, hiv);
                below = _mm256_sub_epi32(below, lt);
                let outside = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_or_si256(lt, gt)));
                let inside = (!outside & 0xff) as usize;
                let perm = _mm256_loadu_si256(COMPRESS[inside].as_ptr().cast());
                let packed = _mm256_permutevar8x32_epi32(lane, perm);
                // n <= i, so the store ends by i + 8 <= len <= idx.len().
                _mm256_storeu_si256(idx.as_mut_ptr().add(n).cast(), packed);
                n += inside.count_ones() as usize;
            }
            lane = _mm256_add_epi32(lane, eight);
            i += 8;
        }
        let mut lanes = [0u32; 8];
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), below) };
        let below: usize = lanes.iter().map(|&c| c as usize).sum();
        let (tail_below, n) = portable::filter_range(bits, i, lo, hi, idx, n);
        (below + tail_below, n)
    }

    /// Groups of m in {2, 4, 8} consecutive lanes: one register holds 8/m whole groups. For
    /// each rotation d (1..m) inside the groups, lane i meets lane j = (i + d) mod m and counts
    /// it as "before" if its key is smaller, or equal with j < i (the lanes that wrapped).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn rank_mark_contig(bits: &[u32], m: usize, n: usize, zero: &mut [bool]) {
        let len = bits.len();
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let low = _mm256_set1_epi32(m as i32 - 1);
        let within = _mm256_and_si256(lane, low);
        let base = _mm256_sub_epi32(lane, within);
        let mut perm = [_mm256_setzero_si256(); 7];
        let mut wrapped = [_mm256_setzero_si256(); 7];
        for d in 1..m {
            let shifted = _mm256_add_epi32(within, _mm256_set1_epi32(d as i32));
            perm[d - 1] = _mm256_add_epi32(base, _mm256_and_si256(shifted, low));
            wrapped[d - 1] = _mm256_cmpgt_epi32(shifted, low);
        }
        let ones = _mm256_set1_epi32(-1);
        let nv = _mm256_set1_epi32(n as i32);
        let mut i = 0;
        while i + 8 <= len {
            unsafe {
                let v = _mm256_loadu_si256(bits.as_ptr().add(i).cast());
                let mut rank = _mm256_setzero_si256();
                for d in 0..m - 1 {
                    let u = _mm256_permutevar8x32_epi32(v, perm[d]);
                    let lt = _mm256_cmpgt_epi32(v, u);
                    let le = _mm256_xor_si256(_mm256_cmpgt_epi32(u, v), ones);
                    rank = _mm256_sub_epi32(rank, _mm256_blendv_epi8(lt, le, wrapped[d]));
                }
                store_mask8(zero.as_mut_ptr().add(i), _mm256_cmpgt_epi32(nv, rank));
            }
            i += 8;
        }
        portable::rank_mark_contig(&bits[i..], m, n, &mut zero[i..]);
    }

    /// Groups run down the columns: lane c of row vector i is element i of column c's group,
    /// so 8 columns are ranked at once with plain vertical compares, for any m.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn rank_mark_across(
        s: &[u32],
        width: usize,
        m: usize,
        n: usize,
        zero: &mut [bool],
        zstride: usize,
    ) {
        let ones = _mm256_set1_epi32(-1);
        let nv = _mm256_set1_epi32(n as i32);
        let p = s.as_ptr();
        let mut c = 0;
        while c + 8 <= width {
            for i in 0..m {
                unsafe {
                    let si = _mm256_loadu_si256(p.add(i * width + c).cast());
                    let mut rank = _mm256_setzero_si256();
                    for j in 0..i {
                        let sj = _mm256_loadu_si256(p.add(j * width + c).cast());
                        let le = _mm256_xor_si256(_mm256_cmpgt_epi32(sj, si), ones);
                        rank = _mm256_sub_epi32(rank, le);
                    }
                    for j in i + 1..m {
                        let sj = _mm256_loadu_si256(p.add(j * width + c).cast());
                        rank = _mm256_sub_epi32(rank, _mm256_cmpgt_epi32(si, sj));
                    }
                    let z = _mm256_cmpgt_epi32(nv, rank);
                    store_mask8(zero.as_mut_ptr().add(i * zstride + c), z);
                }
            }
            c += 8;
        }
        portable::rank_mark_across(s, width, c, m, n, zero, zstride);
    }
}
