//! What an imatrix says about a model's activations, summarised per layer and tensor role for
//! the reports: the mean of each weight's input mean squares, and their spread over the input
//! columns. For `ffn_down` the columns are the intermediate channels, so its row is the
//! distribution of `v_down` that DaSS weighs channels with and channel removal cuts.

use serde::{Deserialize, Serialize};

use crate::imatrix::Imatrix;

/// Quantiles of a set of values (linear interpolation between the closest ranks, as NumPy's
/// default `quantile`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    pub min: f64,
    pub p10: f64,
    pub p25: f64,
    pub median: f64,
    pub p75: f64,
    pub p90: f64,
    pub max: f64,
}

impl Quantiles {
    /// The quantiles of the finite values of `values`; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Quantiles> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let pos = q * (v.len() - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = pos.ceil() as usize;
            v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
        };
        Some(Quantiles {
            min: v[0],
            p10: at(0.10),
            p25: at(0.25),
            median: at(0.5),
            p75: at(0.75),
            p90: at(0.90),
            max: v[v.len() - 1],
        })
    }
}

/// One imatrix entry of a block's weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationRow {
    /// The weight's name, e.g. `blk.3.ffn_down.weight`.
    pub name: String,
    pub block: u32,
    /// The weight's role: the part of the name between the block and `.weight`.
    pub role: String,
    /// Input columns (times experts for MoE weights).
    pub columns: usize,
    /// Mean over the columns of the input's mean square.
    pub mean: f64,
    /// Columns whose value is not finite (left out of `mean` and `quantiles`).
    pub non_finite: usize,
    /// The spread of the columns' mean squares; `None` when no value is finite.
    pub quantiles: Option<Quantiles>,
}

/// Every block weight of an imatrix, in block then role order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activations {
    pub rows: Vec<ActivationRow>,
}

impl Activations {
    /// Summarises `imatrix`: its `blk.N.ROLE.weight` entries (others, such as `output.weight`,
    /// belong to no layer and are left out).
    pub fn of(imatrix: &Imatrix) -> Activations {
        let mut rows: Vec<ActivationRow> = imatrix
            .entries
            .values()
            .filter_map(|e| {
                let (block, role) = block_role(&e.name)?;
                let finite = e.mean_sq.iter().filter(|x| x.is_finite());
                let n_finite = finite.clone().count();
                let sum: f64 = finite.map(|&x| f64::from(x)).sum();
                Some(ActivationRow {
                    name: e.name.clone(),
                    block,
                    role: role.to_string(),
                    columns: e.mean_sq.len(),
                    mean: if n_finite > 0 {
                        sum / n_finite as f64
                    } else {
                        f64::NAN
                    },
                    non_finite: e.mean_sq.len() - n_finite,
                    quantiles: Quantiles::of(e.mean_sq.iter().map(|&x| f64::from(x))),
                })
            })
            .collect();
        rows.sort_by(|a, b| (a.block, &a.role).cmp(&(b.block, &b.role)));
        Activations { rows }
    }

    /// The rows of role `role`, in block order.
    pub fn role(&self, role: &str) -> impl Iterator<Item = &ActivationRow> {
        let role = role.to_string();
        self.rows.iter().filter(move |r| r.role == role)
    }

    /// The roles present, in the order they first appear.
    pub fn roles(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for r in &self.rows {
            if !out.contains(&r.role.as_str()) {
                out.push(&r.role);
            }
        }
        out
    }
}

/// `blk.N.ROLE.weight` → (N, ROLE).
pub fn block_role(name: &str) -> Option<(u32, &str)> {
    let rest = name.strip_prefix("blk.")?;
    let (block, rest) = rest.split_once('.')?;
    let role = rest.strip_suffix(".weight")?;
    Some((block.parse().ok()?, role))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain definition: sort, then interpolate at q * (n - 1).
    fn reference(values: &[f64], q: f64) -> f64 {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let pos = q * (v.len() as f64 - 1.0);
        let (lo, frac) = (pos.floor(), pos - pos.floor());
        let lo = lo as usize;
        if frac == 0.0 {
            v[lo]
        } else {
            v[lo] * (1.0 - frac) + v[lo + 1] * frac
        }
    }

    #[test]
    fn quantiles_match_the_plain_definition() {
        // What NumPy 2.4 prints for np.quantile([4, 1, 10, 3, 2], [0, .1, .25, .5, .75, .9, 1]).
        let q = Quantiles::of([4.0, 1.0, 10.0, 3.0, 2.0]).unwrap();
        assert_eq!(
            [q.min, q.p10, q.p25, q.median, q.p75, q.p90, q.max],
            [1.0, 1.4, 2.0, 3.0, 4.0, 7.6000000000000005, 10.0]
        );
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for n in [1usize, 2, 3, 7, 100, 1001] {
            let values: Vec<f64> = (0..n)
                .map(|i| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    match i % 5 {
                        0 => 0.0,
                        1 => f64::from(f32::MIN_POSITIVE) / 8.0, // a denormal f32
                        2 => 1.0,                                // ties
                        _ => (seed >> 11) as f64 / (1u64 << 53) as f64 * 1e3,
                    }
                })
                .collect();
            let q = Quantiles::of(values.iter().copied()).unwrap();
            let got = [q.min, q.p10, q.p25, q.median, q.p75, q.p90, q.max];
            let want = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0].map(|p| reference(&values, p));
            for (g, w) in got.iter().zip(want) {
                assert!(
                    (g - w).abs() <= 1e-12 * w.abs().max(1.0),
                    "n {n}: {got:?} {want:?}"
                );
            }
        }
    }

    #[test]
    fn non_finite_values_are_left_out() {
        let q = Quantiles::of([f64::NAN, 2.0, f64::INFINITY, 1.0]).unwrap();
        assert_eq!((q.min, q.median, q.max), (1.0, 1.5, 2.0));
        assert_eq!(Quantiles::of([f64::NAN]), None);
        assert_eq!(Quantiles::of([]), None);
    }

    #[test]
    fn names() {
        assert_eq!(block_role("blk.12.ffn_down.weight"), Some((12, "ffn_down")));
        assert_eq!(
            block_role("blk.0.ffn_down_exps.weight"),
            Some((0, "ffn_down_exps"))
        );
        assert_eq!(block_role("output.weight"), None);
        assert_eq!(block_role("blk.x.attn_q.weight"), None);
        assert_eq!(block_role("blk.1.attn_q.bias"), None);
    }
}
