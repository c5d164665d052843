//! Choosing the k lowest keys of one group in linear time.
//!
//! Instead of a list of positions, a group's choice is summarised as a [`Limit`]: the key of
//! the first weight that survives, in the order (score, index). A weight is zeroed iff its
//! (score, index) is below that limit. Storing a limit instead of marks lets column groups
//! find their limits on a transposed tile and then mark the mask row by row, contiguously.

use super::simd::{filter_range, Level};

/// The first surviving key of a group in the order (score bits, index in group).
///
/// A weight with score bits `s` at index `i` is zeroed iff `s < t || (s == t && i < l)`,
/// which is `s < t + (i < l)` (`t + 1` is only formed when `l > 0`, so it never wraps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit {
    pub t: u32,
    pub l: u32,
}

impl Limit {
    /// Zero nothing: no score is below 0 and no index below 0.
    pub const NONE: Limit = Limit { t: 0, l: 0 };
    /// Zero everything: every score (at most `0x7fff_ffff`) is below `u32::MAX`.
    pub const ALL: Limit = Limit { t: u32::MAX, l: 0 };

    /// Whether the weight with score bits `s` at index `i` is zeroed (the marking loops
    /// inline this rule in vectorisable form; tests use this scalar statement of it).
    #[cfg(test)]
    pub fn zeroes(self, s: u32, i: usize) -> bool {
        s < self.t.wrapping_add(u32::from(i < self.l as usize))
    }
}

/// How many of `g` weights a sparsity `s` zeroes: `floor(g * s)`, with the product taken in
/// f64 as the reference implementations do (`int(g * s)` in Python). For `s < 1` the rounded
/// product stays below `g` (even for the largest f64 below 1), so the clamp to `0..=g` is
/// only a guard.
pub(crate) fn quota(g: usize, s: f64) -> usize {
    let k = (g as f64 * s).floor();
    if k >= g as f64 {
        g
    } else if k > 0.0 {
        k as usize
    } else {
        0
    }
}

/// Groups at least this long use the sampling selection; shorter ones plain
/// `select_nth_unstable`, for which the sample would cost as much as it saves.
pub(crate) const SAMPLE_MIN: usize = 4096;

/// Reusable per-worker buffers for [`find_limit`], each at most one group long.
#[derive(Default)]
pub(crate) struct Scratch {
    /// Copy consumed by `select_nth_unstable`.
    tmp: Vec<u32>,
    /// The sample, then the candidates' keys.
    vals: Vec<u32>,
    /// The candidates' indices, in index order.
    idx: Vec<u32>,
}

/// The limit that zeroes exactly the `k` lowest of `bits` (ties to the lower index).
pub(crate) fn find_limit(level: Level, bits: &[u32], k: usize, scratch: &mut Scratch) -> Limit {
    let g = bits.len();
    if k == 0 {
        Limit::NONE
    } else if k >= g {
        Limit::ALL
    } else if g >= SAMPLE_MIN {
        sample_limit(level, bits, k, scratch)
    } else {
        nth_limit(bits, k, scratch)
    }
}

/// `select_nth_unstable` on a copy of the whole group: expected linear time, no extra
/// assumptions. The baseline the sampling path falls back to.
pub(crate) fn nth_limit(bits: &[u32], k: usize, scratch: &mut Scratch) -> Limit {
    debug_assert!(0 < k && k < bits.len());
    let (t, pos) = nth_key(bits, k, &mut scratch.tmp);
    Limit { t, l: pos as u32 }
}

/// The (k+1)-th smallest value of `vals` in (value, position) order, and its position.
///
/// `select_nth_unstable` finds the value `t`; the copies of `t` that sort before it are then
/// the first `q` copies in position order, so its position is that of the (q+1)-th copy.
fn nth_key(vals: &[u32], k: usize, tmp: &mut Vec<u32>) -> (u32, usize) {
    tmp.clear();
    tmp.extend_from_slice(vals);
    let (lowest, &mut t, _) = tmp.select_nth_unstable(k);
    let q = k - lowest.iter().filter(|&&x| x < t).count();
    let pos = vals
        .iter()
        .enumerate()
        .filter(|&(_, &x)| x == t)
        .nth(q)
        .map(|(i, _)| i)
        .expect("the threshold occurs at least q + 1 times");
    (t, pos)
}

/// Selection by sampling (the Floyd–Rivest idea), for long groups.
///
/// A fixed, evenly spaced sample (256 to 1024 keys) gives two keys `lo <= hi` that bracket the
/// threshold with high probability (±2.5 standard deviations of the sample quantile). One
/// vectorised pass counts the keys below `lo` and collects, in index order, the indices of
/// the keys in `[lo, hi]` (typically under a tenth of the group); the threshold is then
/// selected among those alone. If the bracket missed (unusual data), the whole group goes
/// through [`nth_limit`]: the sample only affects speed, never the result.
pub(crate) fn sample_limit(level: Level, bits: &[u32], k: usize, scratch: &mut Scratch) -> Limit {
    let g = bits.len();
    debug_assert!(0 < k && k < g && g <= u32::MAX as usize);
    let n_sample = (g / 16).clamp(256, 1024);
    let Scratch { tmp, vals, idx } = scratch;

    vals.clear();
    // Evenly spaced, at the centres of n_sample equal slices (u64: no overflow on 32-bit).
    let at = |i: usize| ((2 * i as u64 + 1) * g as u64 / (2 * n_sample as u64)) as usize;
    vals.extend((0..n_sample).map(|i| bits[at(i)]));
    let p = k as f64 / g as f64;
    let centre = p * n_sample as f64;
    let delta = 2.5 * (n_sample as f64 * p * (1.0 - p)).sqrt() + 2.0;
    // Sample ranks of the bracket; out of the sample's range it is open on that side.
    let lo_rank = (centre - delta).floor();
    let hi_rank = (centre + delta).floor() as usize;
    let (lo, upper, hi_in_upper) = if lo_rank < 0.0 {
        (0, &mut vals[..], hi_rank)
    } else {
        let lo_rank = lo_rank as usize;
        let (_, &mut lo, upper) = vals.select_nth_unstable(lo_rank);
        (lo, upper, hi_rank - lo_rank - 1)
    };
    let hi = if hi_in_upper >= upper.len() {
        u32::MAX
    } else {
        *upper.select_nth_unstable(hi_in_upper).1
    };

    let (below, n) = filter_range(level, bits, lo, hi, idx);
    if below > k || k - below >= n {
        return nth_limit(bits, k, scratch);
    }
    vals.clear();
    vals.extend(idx[..n].iter().map(|&i| bits[i as usize]));
    let (t, pos) = nth_key(vals, k - below, tmp);
    Limit { t, l: idx[pos] }
}

/// Marks `zero[i] = limit.zeroes(bits[i], i)`, in two runs so each loop is a plain compare
/// against a constant that the compiler vectorises.
pub(crate) fn mark_limit(bits: &[u32], limit: Limit, zero: &mut [bool]) {
    assert_eq!(bits.len(), zero.len());
    let split = (limit.l as usize).min(bits.len());
    let (head_b, tail_b) = bits.split_at(split);
    let (head_z, tail_z) = zero.split_at_mut(split);
    // Before the tie limit a key equal to t is zeroed; from it on only keys below t are.
    // (In the head, l > 0 so t is a real score and t + 1 does not wrap.)
    if !head_b.is_empty() {
        let t1 = limit.t + 1;
        for (z, &b) in head_z.iter_mut().zip(head_b) {
            *z = b < t1;
        }
    }
    for (z, &b) in tail_z.iter_mut().zip(tail_b) {
        *z = b < limit.t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_is_floor_of_f64_product() {
        assert_eq!(quota(10, 0.0), 0);
        assert_eq!(quota(10, 0.5), 5);
        assert_eq!(quota(10, 0.999), 9);
        assert_eq!(quota(7, 0.5), 3);
        // 100 * 0.29 = 28.999999999999996 in f64: the reference zeroes 28.
        assert_eq!(quota(100, 0.29), 28);
        // The largest f64 below 1 still leaves one weight standing.
        assert_eq!(quota(3, 1.0 - f64::EPSILON / 2.0), 2);
        assert_eq!(quota(14336, 1.0 - f64::EPSILON / 2.0), 14335);
        assert_eq!(quota(0, 0.5), 0);
    }

    #[test]
    fn limit_ties_go_to_lower_index() {
        let bits = [5, 3, 3, 1, 3, 3];
        let mut scratch = Scratch::default();
        for k in 0..=bits.len() {
            let lim = find_limit(Level::PORTABLE, &bits, k, &mut scratch);
            let mut zero = [false; 6];
            mark_limit(&bits, lim, &mut zero);
            let mut order: Vec<usize> = (0..6).collect();
            order.sort_by_key(|&i| bits[i]);
            let mut want = [false; 6];
            for &i in &order[..k] {
                want[i] = true;
            }
            assert_eq!(zero, want, "k = {k}");
            for (i, &b) in bits.iter().enumerate() {
                assert_eq!(lim.zeroes(b, i), want[i]);
            }
        }
    }

    /// The sampling and the plain selections agree with each other and with a stable sort,
    /// on keys that share high digits, differ only in low ones, tie, or are laid out so
    /// the evenly spaced sample is misleading (the fallback path).
    #[test]
    fn sample_matches_nth() {
        let mut state = 12345u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut scratch = Scratch::default();
        for trial in 0..120 {
            let g = SAMPLE_MIN + (next() % 12000) as usize;
            let spread: u32 = match trial % 6 {
                0 => 3,
                1 => 1 << 10,
                2 => 1 << 20,
                3 => 0x7f80_0000,
                _ => 1,
            };
            // Keys are score bits: bit 31 is always clear.
            let base = (next() % (0x7fff_ffff - spread as u64)) as u32;
            let mut bits: Vec<u32> = (0..g)
                .map(|_| base + (next() % spread as u64) as u32)
                .collect();
            if trial % 6 == 5 {
                // Sampled positions hold the largest keys: the bracket misses.
                let step = g / 256;
                for (i, b) in bits.iter_mut().enumerate() {
                    *b = if i % step == step / 2 {
                        1 << 30
                    } else {
                        i as u32 % 1000
                    };
                }
            }
            let mut order: Vec<usize> = (0..g).collect();
            order.sort_by_key(|&i| bits[i]);
            for k in [1, 7, g / 3, g / 2, g - 9, g - 1] {
                let want = (bits[order[k]], order[k] as u32);
                for level in Level::available() {
                    let a = sample_limit(level, &bits, k, &mut scratch);
                    assert_eq!((a.t, a.l), want, "g = {g}, k = {k}, {}", level.name());
                }
                let b = nth_limit(&bits, k, &mut scratch);
                assert_eq!((b.t, b.l), want, "g = {g}, k = {k}");
            }
        }
    }
}
