//! The default method, `auto`: which rule suits this model, read from its statistics
//! (docs/method.md "The default: auto").
//!
//! Measured on four models, no single rule stays within 2% of the best at 50%, 4:8 and 2:4:
//! the rules that weigh the intermediate channel's statistics (DaSS, the hybrid) win on the
//! models whose feed-forward input has a few outlier columns, and lose (even to magnitude)
//! where it has none, where RIA wins. The measure is the *input spread*: per feed-forward
//! block, the largest mean square of the block's input (the imatrix entry of `ffn_gate`) over
//! its median; the model's spread is the median of its blocks' spreads. (The same measure on
//! `ffn_down`'s input, tried first, failed on the fourth model: docs/method.md.)

use crate::channels::median;
use crate::error::{Error, Result};
use crate::imatrix::Imatrix;
use crate::kernels::Pattern;
use crate::roles::{Role, TensorRole};
use crate::rules::Method;

/// At or above this input spread, the intermediate channels' statistics pick the rule: near
/// the geometric midpoint (74.7) of the spreads of Qwen2.5-0.5B (38.0, where RIA wins) and
/// SmolLM2-135M (146.8, where DaSS and the hybrid win), the closest pair on either side
/// (Qwen2.5-Coder-1.5B: 33.4; Gemma 3 270M: 227.4). Fitted to four models: `sweep` checks it
/// on yours.
pub const SPREAD_THRESHOLD: f64 = 75.0;

/// N:M patterns with groups at least this long are chosen like 4:8; shorter ones like 2:4.
const LONG_GROUPS: usize = 8;

/// What `auto` chose, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AutoChoice {
    /// The rule chosen.
    pub method: &'static str,
    /// The model's input spread (absent for a model without a gated feed-forward; `null` in
    /// JSON when more than half of some block's input columns are always 0).
    pub input_spread: Option<f64>,
    /// The decision in words, as recorded in the metadata (`dass.method_choice`).
    pub reason: String,
}

/// Chooses the rule for a model whose tensors have `roles` (each with its name), from the
/// imatrix, for `pattern`.
pub fn choose<'a>(
    imatrix: &Imatrix,
    roles: impl IntoIterator<Item = &'a TensorRole>,
    pattern: Pattern,
) -> Result<(Method, AutoChoice)> {
    // The gates of the gated blocks (their imatrix entries hold the block's input), once each.
    let mut gates: Vec<String> = roles
        .into_iter()
        .filter(|r| {
            matches!(
                r.role,
                Role::FfnGate | Role::FfnGateUpFused | Role::FfnGateExps
            )
        })
        .filter_map(input_entry)
        .collect();
    gates.sort();
    gates.dedup();
    if gates.is_empty() {
        return Ok((
            Method::Ria,
            AutoChoice {
                method: Method::Ria.name(),
                input_spread: None,
                reason: "auto: no gated feed-forward, so no intermediate-channel statistics \
                         to weigh: ria"
                    .into(),
            },
        ));
    }
    let mut spreads = Vec::new();
    for gate in &gates {
        let entry = imatrix.get(gate).ok_or_else(|| {
            Error::Imatrix(format!(
                "--method auto reads the statistics of every '{gate}' to choose a rule, but \
                 the imatrix has no such entry; name a method with --method"
            ))
        })?;
        let n = entry.len_per_matrix().max(1);
        for v in entry.mean_sq.chunks(n) {
            spreads.push(spread(v).ok_or_else(|| {
                Error::Imatrix(format!(
                    "entry '{gate}' holds a value that is not a finite number >= 0"
                ))
            })?);
        }
    }
    let model_spread = median(&spreads);
    let outliers = model_spread >= SPREAD_THRESHOLD;
    let (method, why_pattern) = match (outliers, pattern) {
        (false, _) => (Method::Ria, "any pattern"),
        (true, Pattern::Unstructured { .. }) => (Method::Hybrid, "unstructured"),
        (true, Pattern::NM { m, .. }) if m >= LONG_GROUPS => (Method::Wanda, "N:M with M >= 8"),
        (true, Pattern::NM { .. }) => (Method::Dass, "N:M with M < 8"),
    };
    let reason = format!(
        "auto: input spread {} {} {SPREAD_THRESHOLD} ({}), {why_pattern}: {}",
        if model_spread.is_finite() {
            format!("{model_spread:.1}")
        } else {
            "infinite".into()
        },
        if outliers { ">=" } else { "<" },
        if outliers {
            "a few input columns carry most of the activation"
        } else {
            "no outlier input columns"
        },
        method.name()
    );
    Ok((
        method,
        AutoChoice {
            method: method.name(),
            input_spread: model_spread.is_finite().then_some(model_spread),
            reason,
        },
    ))
}

/// The imatrix entry that holds the input of the gated block `r` belongs to: its gate's (or
/// phi3's fused gate+up's) own entry.
fn input_entry(r: &TensorRole) -> Option<String> {
    let gate = match r.role {
        Role::FfnGateUpFused => "ffn_up",
        _ => "ffn_gate",
    };
    r.block
        .map(|b| format!("blk.{b}.{gate}{}.weight", r.variant))
}

/// Largest value over the median (infinite when the median is 0); `None` when a value is not a
/// finite number >= 0.
fn spread(v: &[f32]) -> Option<f64> {
    if v.iter().any(|x| !x.is_finite() || *x < 0.0) {
        return None;
    }
    let values: Vec<f64> = v.iter().map(|&x| f64::from(x)).collect();
    let max = values.iter().copied().fold(0.0, f64::max);
    let mid = median(&values);
    Some(if mid > 0.0 { max / mid } else { f64::INFINITY })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imatrix::{ImatrixEntry, ImatrixFormat};
    use crate::roles::classify;
    use std::collections::BTreeMap;

    fn imatrix(entries: &[(&str, Vec<f32>)]) -> Imatrix {
        Imatrix {
            format: ImatrixFormat::Gguf,
            datasets: vec![],
            chunk_count: None,
            chunk_size: None,
            entries: entries
                .iter()
                .map(|(name, v)| {
                    (
                        name.to_string(),
                        ImatrixEntry {
                            name: name.to_string(),
                            n_mat: 1,
                            mean_sq: v.clone(),
                            counts: None,
                            ncall: None,
                            mean: None,
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>(),
        }
    }

    /// 1s with one outlier of `peak`: spread `peak`.
    fn channels(peak: f32) -> Vec<f32> {
        let mut v = vec![1.0; 9];
        v[4] = peak;
        v
    }

    fn glu_roles(blocks: usize) -> Vec<TensorRole> {
        (0..blocks)
            .flat_map(|b| {
                ["ffn_gate", "ffn_up", "ffn_down"]
                    .map(|t| classify("llama", &format!("blk.{b}.{t}.weight")))
            })
            .collect()
    }

    const FIFTY: Pattern = Pattern::Unstructured { sparsity: 0.5 };

    #[test]
    fn the_median_block_decides() {
        // Spreads 10, 90, 200: the median, 90, is above the threshold.
        let im = imatrix(&[
            ("blk.0.ffn_gate.weight", channels(10.0)),
            ("blk.1.ffn_gate.weight", channels(90.0)),
            ("blk.2.ffn_gate.weight", channels(200.0)),
        ]);
        let roles = glu_roles(3);
        let (m, c) = choose(&im, &roles, FIFTY).unwrap();
        assert_eq!((m, c.input_spread), (Method::Hybrid, Some(90.0)));
        assert!(c.reason.contains("90.0 >= 75"), "{}", c.reason);
        let nm = |n, m| Pattern::NM { n, m };
        assert_eq!(choose(&im, &roles, nm(2, 4)).unwrap().0, Method::Dass);
        assert_eq!(choose(&im, &roles, nm(4, 8)).unwrap().0, Method::Wanda);
        assert_eq!(choose(&im, &roles, nm(8, 16)).unwrap().0, Method::Wanda);
    }

    #[test]
    fn even_activation_picks_ria_for_every_pattern() {
        let im = imatrix(&[
            ("blk.0.ffn_gate.weight", channels(74.0)),
            ("blk.1.ffn_gate.weight", channels(5.0)),
        ]);
        let roles = glu_roles(2);
        for p in [
            FIFTY,
            Pattern::NM { n: 2, m: 4 },
            Pattern::NM { n: 4, m: 8 },
        ] {
            let (m, c) = choose(&im, &roles, p).unwrap();
            assert_eq!(m, Method::Ria);
            // The lower middle of two blocks.
            assert_eq!(c.input_spread, Some(5.0));
        }
    }

    #[test]
    fn threshold_is_inclusive_and_dead_channels_count_as_outliers() {
        let roles = glu_roles(1);
        let at = imatrix(&[("blk.0.ffn_gate.weight", channels(75.0))]);
        assert_eq!(choose(&at, &roles, FIFTY).unwrap().0, Method::Hybrid);
        let mut dead = vec![0.0; 9];
        dead[0] = 3.0;
        let dead = imatrix(&[("blk.0.ffn_gate.weight", dead)]);
        let (m, c) = choose(&dead, &roles, FIFTY).unwrap();
        assert_eq!((m, c.input_spread), (Method::Hybrid, None));
        assert!(c.reason.contains("infinite"), "{}", c.reason);
    }

    #[test]
    fn no_gate_means_ria_and_missing_or_bad_entries_are_errors() {
        let plain: Vec<TensorRole> = ["ffn_up", "ffn_down"]
            .map(|t| classify("gpt2", &format!("blk.0.{t}.weight")))
            .to_vec();
        let (m, c) = choose(&imatrix(&[]), &plain, FIFTY).unwrap();
        assert_eq!((m, c.input_spread), (Method::Ria, None));

        let roles = glu_roles(2);
        let one = imatrix(&[("blk.0.ffn_gate.weight", channels(3.0))]);
        let e = choose(&one, &roles, FIFTY).unwrap_err().to_string();
        assert!(e.contains("'blk.1.ffn_gate.weight'"), "{e}");

        for bad in [f32::NAN, -1.0, f32::INFINITY] {
            let mut v = channels(3.0);
            v[2] = bad;
            let im = imatrix(&[
                ("blk.0.ffn_gate.weight", v),
                ("blk.1.ffn_gate.weight", channels(3.0)),
            ]);
            let e = choose(&im, &roles, FIFTY).unwrap_err().to_string();
            assert!(e.contains("blk.0.ffn_gate.weight"), "{bad}: {e}");
        }
    }
}
