//! The pruning rules, in one place (docs/method.md "Scores" and "Groups"): for each
//! method and tensor role, how a weight is scored, which weights compete with each other, and
//! the factors taken from the imatrix — looked up, checked and computed once, here.
//!
//! Most rules score a weight as `|w| * factor`, where the factor is 1 (magnitude), a value
//! per input column (Wanda: `sqrt(v_W[c])`) or a value per output row (DaSS on gate/up:
//! `v_down[r]^(alpha/2)`); the kernels compute those scores on the fly. RIA (relative
//! importance) and the gate/up hybrid need more than one factor per weight: their scores are
//! computed as a matrix first (`crate::scores`). Adding a method means a variant of [`Method`]
//! and its arm in [`rule_for`] (and the command line's list of methods), and its row in
//! `verify`'s table of groups (`src/verify/groups.rs`, which follows docs/method.md on its own
//! so that files are checked against the page, not against this code).

use std::collections::BTreeSet;

use crate::channels::ChannelPlan;
use crate::error::{Error, Result};
use crate::gguf::TensorInfo;
use crate::imatrix::Imatrix;
use crate::kernels::{zero_count, Axis, Pattern, Scale};
use crate::roles::{Role, TensorRole};

/// The pruning method (docs/method.md "Scores").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Dass,
    Wanda,
    Magnitude,
    Ria,
    Hybrid,
}

impl Method {
    /// The name used on the command line and in metadata.
    pub fn name(self) -> &'static str {
        match self {
            Method::Dass => "dass",
            Method::Wanda => "wanda",
            Method::Magnitude => "magnitude",
            Method::Ria => "ria",
            Method::Hybrid => "hybrid",
        }
    }

    /// Whether the method reads activation statistics (an imatrix).
    pub fn needs_statistics(self) -> bool {
        self != Method::Magnitude
    }

    /// Whether the method has the `alpha` exponent.
    pub fn uses_alpha(self) -> bool {
        matches!(self, Method::Dass | Method::Ria | Method::Hybrid)
    }

    /// The axis groups run along on a GLU's gate and up projections (reported in the
    /// metadata as the N:M orientation); every other tensor is grouped per row.
    pub fn gate_up_axis(self) -> Axis {
        match self {
            Method::Dass => Axis::Column,
            Method::Wanda | Method::Magnitude | Method::Ria | Method::Hybrid => Axis::Row,
        }
    }

    /// Whether the method needs the gate beside an up projection (its score reads the
    /// intermediate channel's statistics, which only a GLU has).
    fn needs_glu(self) -> bool {
        matches!(self, Method::Dass | Method::Hybrid)
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
    /// `(|w[r][c]| / S_col[c] + |w[r][c]| / S_row[r]) * v_W[c]^(alpha/2)`: RIA's relative
    /// importance (the weight's share of its column's and of its row's absolute sum) times
    /// the input statistics.
    Ria,
    /// `(|w[r][c]| * sqrt(v_W[c])) * v_down[r]^(alpha/2)`: Wanda's and DaSS's factors together.
    Hybrid,
}

impl Score {
    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Score::Magnitude => "magnitude",
            Score::Wanda => "wanda",
            Score::Dass => "dass",
            Score::Ria => "ria",
            Score::Hybrid => "hybrid",
        }
    }

    /// Whether the kernels can compute the score on the fly (`|w| * one factor`); the
    /// others are computed as a matrix first ([`crate::scores`]).
    pub fn is_scaled_magnitude(self) -> bool {
        matches!(self, Score::Magnitude | Score::Wanda | Score::Dass)
    }
}

/// Which weights compete with each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Groups {
    /// Inside one row or one column (whole, or runs of M under N:M).
    Along(Axis),
    /// The whole matrix is one group (unstructured only): RIA's and the hybrid's choice, where
    /// scores are comparable across rows and columns.
    Matrix,
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
    /// Both (the hybrid): per row and per column, each one vector per matrix or shared.
    RowAndColumn {
        rows: Vec<Vec<f32>>,
        cols: Vec<Vec<f32>>,
    },
}

/// The rule for one tensor: score, groups and factors.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub score: Score,
    /// The imatrix entry the factors come from.
    pub entry: Option<String>,
    /// Who competes with whom.
    pub groups: Groups,
    /// Independent matrices in the tensor: experts, or the two halves of phi3's fused
    /// gate+up under DaSS. Each is `rows × cols`, stored one after the other.
    pub matrices: usize,
    pub rows: usize,
    pub cols: usize,
    pub factors: Factors,
}

impl Rule {
    /// The factors of matrix `k`, as the kernels take them (for the scores they compute on
    /// the fly; the hybrid's two factors are read with [`Rule::row_and_column`]).
    pub fn scale(&self, k: usize) -> Scale<'_> {
        match &self.factors {
            Factors::None => Scale::None,
            Factors::PerRow(v) => Scale::PerRow(pick(v, k)),
            Factors::PerColumn(v) => Scale::PerColumn(pick(v, k)),
            Factors::RowAndColumn { .. } => {
                unreachable!("the hybrid's scores are computed as a matrix, not by the kernels")
            }
        }
    }

    /// The row and column factors of matrix `k` (empty when the rule has not that kind).
    pub fn row_and_column(&self, k: usize) -> (&[f32], &[f32]) {
        match &self.factors {
            Factors::None => (&[], &[]),
            Factors::PerRow(v) => (pick(v, k), &[]),
            Factors::PerColumn(v) => (&[], pick(v, k)),
            Factors::RowAndColumn { rows, cols } => (pick(rows, k), pick(cols, k)),
        }
    }

    /// The number of weights one matrix loses under `pattern`.
    pub fn zero_count(&self, pattern: Pattern) -> u64 {
        match self.groups {
            Groups::Along(axis) => zero_count(self.rows, self.cols, axis, pattern),
            Groups::Matrix => zero_count(1, self.rows * self.cols, Axis::Row, pattern),
        }
    }
}

/// Vector `k` of a per-matrix list, or the one vector all matrices share.
fn pick(v: &[Vec<f32>], k: usize) -> &[f32] {
    if v.len() == 1 {
        &v[0]
    } else {
        &v[k]
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

/// The rule `method` applies under `pattern` to a tensor of shape `[cols, rows, n_mat]`.
/// `imatrix` may be absent only for methods that do not need statistics (the plan refuses the
/// others first).
pub fn rule_for(
    method: Method,
    alpha: f32,
    pattern: Pattern,
    t: &TensorContext<'_>,
    (cols, rows, n_mat): (usize, usize, usize),
    imatrix: Option<&Imatrix>,
) -> Result<Rule> {
    let info = t.info;
    let role = t.role;
    if method.needs_glu() && matches!(role.role, Role::FfnUp) {
        // A lone up projection (no gate in its block) is a non-GLU feed-forward.
        let gate = format!(
            "blk.{}.ffn_gate{}.weight",
            role.block.unwrap_or(0),
            role.variant
        );
        if !t.names.contains(gate.as_str()) {
            return Err(Error::Plan(format!(
                "{} needs a gated (GLU) feed-forward, but '{}' has no '{gate}' beside it \
                 (architecture '{}'): use --method wanda, ria or magnitude",
                method.name(),
                info.name,
                t.arch
            )));
        }
    }
    let glu_input = role.role.is_glu_input_side();
    let unstructured = matches!(pattern, Pattern::Unstructured { .. });
    if method == Method::Hybrid && glu_input && !unstructured {
        return Err(Error::Usage(format!(
            "--method hybrid has no N:M form: N:M groups lie inside one row or one column of \
             '{}', where one of its two factors is constant, so it would rank exactly as wanda \
             (groups along rows) or dass (along columns); use one of those with --pattern",
            info.name
        )));
    }
    // phi3's fused gate+up is two matrices (gate rows, then up rows) for the rules that look
    // at rows or sums of a matrix; statistics of both halves are shared.
    let split_fused =
        role.role == Role::FfnGateUpFused && (method == Method::Ria || method.needs_glu());
    let (matrices, rows) = if split_fused {
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
    let own = Some(info.name.clone());
    let (score, entry, groups) = match method {
        Method::Magnitude => (Score::Magnitude, None, Groups::Along(Axis::Row)),
        Method::Dass if glu_input => (
            Score::Dass,
            role.down_projection(),
            Groups::Along(method.gate_up_axis()),
        ),
        Method::Dass | Method::Wanda => (Score::Wanda, own, Groups::Along(Axis::Row)),
        Method::Hybrid if glu_input => (Score::Hybrid, own, Groups::Matrix),
        Method::Hybrid => (Score::Wanda, own, Groups::Along(Axis::Row)),
        Method::Ria if unstructured => (Score::Ria, own, Groups::Matrix),
        Method::Ria => (Score::Ria, own, Groups::Along(Axis::Row)),
    };
    let mut rule = Rule {
        score,
        entry,
        groups,
        matrices,
        rows,
        cols,
        factors: Factors::None,
    };
    let Some(im) = imatrix else {
        return Ok(rule);
    };
    let exponent = alpha / 2.0;
    // Statistics of the removed channels go with them.
    let stats = |entry: &str, len: usize, wanted: usize| -> Result<Vec<Vec<f32>>> {
        let kept = t
            .channels
            .and_then(|c| c.kept_for_down(entry).map(|k| (k, c.n_ff)));
        Ok(match kept {
            Some((kept, n_ff)) => statistics(im, entry, &info.name, n_ff, wanted)?
                .into_iter()
                .map(|v| kept.iter().map(|&i| v[i as usize]).collect())
                .collect(),
            None => statistics(im, entry, &info.name, len, wanted)?
                .into_iter()
                .map(|v| v.to_vec())
                .collect(),
        })
    };
    // One vector per matrix; the halves of a split fused gate+up share one.
    let wanted = if split_fused { 1 } else { rule.matrices };
    let down = || {
        role.down_projection()
            .expect("a GLU input has a down projection")
    };
    rule.factors = match rule.score {
        Score::Magnitude => Factors::None,
        Score::Dass => Factors::PerRow(map(stats(&down(), rule.rows, wanted)?, |x| {
            x.powf(exponent)
        })),
        Score::Wanda => Factors::PerColumn(map(stats(&info.name, cols, wanted)?, f32::sqrt)),
        Score::Ria => {
            Factors::PerColumn(map(stats(&info.name, cols, wanted)?, |x| x.powf(exponent)))
        }
        Score::Hybrid => Factors::RowAndColumn {
            rows: map(stats(&down(), rule.rows, wanted)?, |x| x.powf(exponent)),
            cols: map(stats(&info.name, cols, wanted)?, f32::sqrt),
        },
    };
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
