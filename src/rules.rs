//! The pruning rules, in one place (docs/method.md "Scores" and "Groups"): for each
//! method and tensor role, how a weight is scored, which weights compete with each other, and
//! the factors taken from the imatrix — looked up, checked and computed once, here.
//!
//! Every rule scores a weight as `|w| * factor`, where the factor is 1 (magnitude), a value
//! per input column (Wanda: `sqrt(v_W[c])`) or a value per output row (DaSS on gate/up:
//! `v_down[r]^(alpha/2)`). Adding a method means a variant of [`Method`] and its arm in
//! [`rule_for`] (and the command line's list of methods); nothing else.

use std::collections::BTreeSet;

use crate::channels::ChannelPlan;
use crate::error::{Error, Result};
use crate::gguf::TensorInfo;
use crate::imatrix::Imatrix;
use crate::kernels::{Axis, Scale};
use crate::roles::{Role, TensorRole};

/// The pruning method (docs/method.md "Scores").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Dass,
    Wanda,
    Magnitude,
}

impl Method {
    /// The name used on the command line and in metadata.
    pub fn name(self) -> &'static str {
        match self {
            Method::Dass => "dass",
            Method::Wanda => "wanda",
            Method::Magnitude => "magnitude",
        }
    }

    /// Whether the method reads activation statistics (an imatrix).
    pub fn needs_statistics(self) -> bool {
        self != Method::Magnitude
    }

    /// Whether the method has the `alpha` exponent.
    pub fn uses_alpha(self) -> bool {
        self == Method::Dass
    }

    /// The axis groups run along on a GLU's gate and up projections (reported in the
    /// metadata as the N:M orientation); every other tensor is grouped per row.
    pub fn gate_up_axis(self) -> Axis {
        match self {
            Method::Dass => Axis::Column,
            Method::Wanda | Method::Magnitude => Axis::Row,
        }
    }
}

/// How the weights of one tensor are scored, named as reports name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Score {
    /// `|w|`.
    Magnitude,
    /// `|w[r][c]| * sqrt(v_W[c])`, the tensor's own input statistics.
    Wanda,
    /// `|w[r][c]| * v_down[r]^(alpha/2)`, the paired down projection's statistics.
    Dass,
}

impl Score {
    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Score::Magnitude => "magnitude",
            Score::Wanda => "wanda",
            Score::Dass => "dass",
        }
    }
}

/// The importance factors of a tensor's matrices, computed from the imatrix.
#[derive(Debug, Clone, PartialEq)]
pub enum Factors {
    /// Factor 1 everywhere.
    None,
    /// One vector of `rows` factors per matrix (or one shared by all of them).
    PerRow(Vec<Vec<f32>>),
    /// One vector of `cols` factors per matrix (or one shared by all of them).
    PerColumn(Vec<Vec<f32>>),
}

/// The rule for one tensor: score, groups and factors.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub score: Score,
    /// The imatrix entry the factors come from.
    pub entry: Option<String>,
    /// Groups lie inside rows or inside columns.
    pub axis: Axis,
    /// Independent matrices in the tensor: experts, or the two halves of phi3's fused
    /// gate+up under DaSS. Each is `rows × cols`, stored one after the other.
    pub matrices: usize,
    pub rows: usize,
    pub cols: usize,
    pub factors: Factors,
}

impl Rule {
    /// The factors of matrix `k`, as the kernels take them.
    pub fn scale(&self, k: usize) -> Scale<'_> {
        let pick = |v: &'_ [Vec<f32>]| -> usize {
            if v.len() == 1 {
                0
            } else {
                k
            }
        };
        match &self.factors {
            Factors::None => Scale::None,
            Factors::PerRow(v) => Scale::PerRow(&v[pick(v)]),
            Factors::PerColumn(v) => Scale::PerColumn(&v[pick(v)]),
        }
    }
}

/// What a rule needs to know about the tensor and the model around it.
pub struct TensorContext<'a> {
    pub arch: &'a str,
    pub info: &'a TensorInfo,
    pub role: &'a TensorRole,
    /// The names of every tensor in the model (to find a block's gate).
    pub names: &'a BTreeSet<&'a str>,
    /// The channels kept when channels are removed: statistics indexed by channel (the down
    /// projection's) are cut to them.
    pub channels: Option<&'a ChannelPlan>,
}

/// The rule `method` applies to a tensor of shape `[cols, rows, n_mat]`. `imatrix` may be
/// absent only for methods that do not need statistics (the plan refuses the others first).
pub fn rule_for(
    method: Method,
    alpha: f32,
    t: &TensorContext<'_>,
    (cols, rows, n_mat): (usize, usize, usize),
    imatrix: Option<&Imatrix>,
) -> Result<Rule> {
    let info = t.info;
    let role = t.role;
    if method == Method::Dass && matches!(role.role, Role::FfnUp) {
        // A lone up projection (no gate in its block) is a non-GLU feed-forward.
        let gate = format!(
            "blk.{}.ffn_gate{}.weight",
            role.block.unwrap_or(0),
            role.variant
        );
        if !t.names.contains(gate.as_str()) {
            return Err(Error::Plan(format!(
                "DaSS needs a gated (GLU) feed-forward, but '{}' has no '{gate}' beside it \
                 (architecture '{}'): use --method wanda or --method magnitude",
                info.name, t.arch
            )));
        }
    }
    let plain = |score: Score, entry: Option<String>| Rule {
        score,
        entry,
        axis: Axis::Row,
        matrices: n_mat,
        rows,
        cols,
        factors: Factors::None,
    };
    let mut rule = match method {
        Method::Magnitude => plain(Score::Magnitude, None),
        Method::Dass if role.role.is_glu_input_side() => {
            let (matrices, rows) = if role.role == Role::FfnGateUpFused {
                if rows % 2 != 0 {
                    return Err(Error::Tensor {
                        tensor: info.name.clone(),
                        message: format!("fused gate+up has {rows} rows, which is not even"),
                    });
                }
                (2, rows / 2)
            } else {
                (n_mat, rows)
            };
            Rule {
                score: Score::Dass,
                entry: role.down_projection(),
                axis: method.gate_up_axis(),
                matrices,
                rows,
                cols,
                factors: Factors::None,
            }
        }
        Method::Dass | Method::Wanda => plain(Score::Wanda, Some(info.name.clone())),
    };
    if let (Some(entry), Some(im)) = (rule.entry.as_deref(), imatrix) {
        // Statistics of the removed channels go with them.
        let kept = t
            .channels
            .and_then(|c| c.kept_for_down(entry).map(|k| (k, c.n_ff)));
        let stats = |len: usize, matrices: usize| -> Result<Vec<Vec<f32>>> {
            Ok(match kept {
                Some((kept, n_ff)) => statistics(im, entry, &info.name, n_ff, matrices)?
                    .into_iter()
                    .map(|v| kept.iter().map(|&i| v[i as usize]).collect())
                    .collect(),
                None => statistics(im, entry, &info.name, len, matrices)?
                    .into_iter()
                    .map(|v| v.to_vec())
                    .collect(),
            })
        };
        rule.factors = match rule.score {
            // One value per output row; phi3's two halves share the down projection's.
            Score::Dass => {
                let shared = role.role == Role::FfnGateUpFused;
                let wanted = if shared { 1 } else { rule.matrices };
                let exponent = alpha / 2.0;
                Factors::PerRow(map(stats(rule.rows, wanted)?, |x| x.powf(exponent)))
            }
            Score::Wanda => Factors::PerColumn(map(stats(rule.cols, rule.matrices)?, f32::sqrt)),
            Score::Magnitude => Factors::None,
        };
    }
    Ok(rule)
}

fn map(mut vectors: Vec<Vec<f32>>, f: impl Fn(f32) -> f32 + Copy) -> Vec<Vec<f32>> {
    for v in &mut vectors {
        for x in v.iter_mut() {
            *x = f(*x);
        }
    }
    vectors
}

/// The imatrix entry `entry`, which must exist, hold `matrices` vectors of `len` values (or
/// one vector shared by all), and be finite and non-negative; one slice per matrix it holds.
pub(crate) fn statistics<'a>(
    im: &'a Imatrix,
    entry: &str,
    tensor: &str,
    len: usize,
    matrices: usize,
) -> Result<Vec<&'a [f32]>> {
    let e = im.get(entry).ok_or_else(|| {
        Error::Plan(format!(
            "tensor '{tensor}' needs imatrix entry '{entry}', which the imatrix does not have"
        ))
    })?;
    let ok = e.mean_sq.len() == len * matrices && (e.n_mat == 1 || e.n_mat == matrices);
    if !ok {
        return Err(Error::Plan(format!(
            "tensor '{tensor}' needs imatrix entry '{entry}' with {matrices} × {len} values, \
             but it has {} ({} matrices of {})",
            e.mean_sq.len(),
            e.n_mat,
            e.len_per_matrix()
        )));
    }
    if let Some((i, v)) = e
        .mean_sq
        .iter()
        .enumerate()
        .find(|(_, v)| !v.is_finite() || **v < 0.0)
    {
        return Err(Error::Plan(format!(
            "imatrix entry '{entry}' (for tensor '{tensor}') holds {v} at index {i}: \
             statistics must be finite and non-negative"
        )));
    }
    e.per_expert(len)
}
