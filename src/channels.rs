//! Removing whole feed-forward channels (docs/method.md "Removing channels"): which
//! intermediate channels of each block go, so that the file has a smaller
//! `feed_forward_length` and every llama.cpp build does less work.
//!
//! Channel `i` of a GLU block is row `i` of `ffn_gate` and `ffn_up` (rows `i` and `n_ff + i`
//! of phi3's fused `ffn_up`), column `i` of `ffn_down` and entry `i` of the gate and up biases.
//! Each block's channels are scored ([`ChannelScore`]) from its tensors, read one at a time
//! through the map, and the imatrix; the lowest scores go (ties: the lower index first), and
//! every block keeps the same width.

use std::collections::BTreeMap;
use std::sync::Arc;

use rayon::prelude::*;

use crate::activations::Quantiles;
use crate::dequant::{can_dequantize, dequantize};
use crate::error::{Error, Result};
use crate::gguf::split::TensorRef;
use crate::gguf::TensorInfo;
use crate::imatrix::Imatrix;
use crate::refit::Damped;
use crate::rules::statistics;
use crate::source::Source;
use crate::stats::Stats;

/// How many channels each block keeps, before rounding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Keep {
    /// A share of the block's channels, in (0, 1].
    Fraction(f64),
    /// A number of channels.
    Width(usize),
}

impl std::str::FromStr for Keep {
    type Err = String;

    /// `0.75` (a share in (0, 1]) or `1152` (a width: an integer above 1).
    fn from_str(s: &str) -> std::result::Result<Keep, String> {
        let err = || format!("'{s}' is neither a share in (0, 1] nor a width");
        if let Ok(w) = s.parse::<usize>() {
            if w > 1 {
                return Ok(Keep::Width(w));
            }
        }
        let f: f64 = s.parse().map_err(|_| err())?;
        if f > 0.0 && f <= 1.0 {
            Ok(Keep::Fraction(f))
        } else {
            Err(err())
        }
    }
}

/// How channel `i` of a block is scored; the lowest scores are removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelScore {
    /// `v_down[i] * ||W_down[:, i]||^2`: the mean square of the channel's contribution to the
    /// block's output.
    Energy,
    /// `v_down[i]`: the mean square of the channel's activation alone.
    Activation,
    /// `v_down[i]^(alpha/2) * sum_c (|W_gate[i][c]| + |W_up[i][c]|) * sqrt(v_in[c])`: DaSS's
    /// channel factor times Wanda's importance of the channel's gate and up rows.
    Dass,
    /// `||W_gate[i]||^2 + ||W_up[i]||^2 + ||W_down[:, i]||^2`, no statistics (a baseline).
    Weight,
    /// A seeded pseudo-random number per channel (a baseline).
    Random,
    /// Least squares with the second moments of a statistics file: channels go greedily, the
    /// cheapest first, each costing `‖W_down[:, j]‖² / Hinv[j][j]` given that the others are
    /// refitted ([`crate::refit::choose_lsq`]).
    Lsq,
}

impl ChannelScore {
    /// The name used on the command line and in metadata.
    pub fn name(self) -> &'static str {
        match self {
            ChannelScore::Energy => "energy",
            ChannelScore::Activation => "activation",
            ChannelScore::Dass => "dass",
            ChannelScore::Weight => "weight",
            ChannelScore::Random => "random",
            ChannelScore::Lsq => "lsq",
        }
    }

    /// Whether the score reads the imatrix.
    pub fn needs_statistics(self) -> bool {
        matches!(
            self,
            ChannelScore::Energy | ChannelScore::Activation | ChannelScore::Dass
        )
    }
}

/// How the kept channels are spread over the blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    /// Every block keeps the same width (every architecture).
    Uniform,
    /// One budget for the whole model: the blocks' channels compete by score, in units of
    /// the width multiple, and every block keeps at least one unit. The output is written as
    /// llama.cpp's `deci` architecture, which reads a width per layer.
    Global,
}

impl Allocation {
    /// The name used on the command line and in metadata.
    pub fn name(self) -> &'static str {
        match self {
            Allocation::Uniform => "uniform",
            Allocation::Global => "global",
        }
    }
}

/// What the user chose for channel removal.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelOptions {
    pub keep: Keep,
    pub allocation: Allocation,
    /// Widths are rounded to a multiple of this (K-quants need 256 for `ffn_down`).
    pub multiple: usize,
    pub score: ChannelScore,
    /// DaSS's exponent, for [`ChannelScore::Dass`].
    pub alpha: f32,
    /// The seed of [`ChannelScore::Random`].
    pub seed: u64,
}

/// The architectures whose feed-forward width this tool can change: one width for every layer,
/// read from `{arch}.feed_forward_length`, gated feed-forward named as llama.cpp names it.
pub const SUPPORTED_ARCHITECTURES: [&str; 7] = [
    "llama", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3",
];

/// The width every block keeps: `keep` applied to `n_ff` and rounded to the nearest multiple of
/// `multiple` (halves up), at most `n_ff`. Keeping everything keeps `n_ff` whatever the
/// multiple. Returns the width and the unrounded target.
pub fn resolve_width(n_ff: usize, keep: Keep, multiple: usize) -> Result<(usize, f64)> {
    let target = target_width(n_ff, keep, multiple)?;
    if target >= n_ff as f64 {
        return Ok((n_ff, target));
    }
    let m = multiple as f64;
    let rounded = ((target / m + 0.5).floor() * m).min(n_ff as f64) as usize;
    if rounded == 0 {
        return Err(Error::Plan(format!(
            "--keep-ffn keeps {target:.1} of {n_ff} channels, which rounds to 0 at a multiple \
             of {multiple}: keep more, lower --width-multiple, or use --allocate global"
        )));
    }
    Ok((rounded, target))
}

/// The channels per block `keep` asks for, before rounding.
fn target_width(n_ff: usize, keep: Keep, multiple: usize) -> Result<f64> {
    if multiple == 0 {
        return Err(Error::Plan("--width-multiple must be at least 1".into()));
    }
    Ok(match keep {
        Keep::Fraction(f) if f > 0.0 && f <= 1.0 => f * n_ff as f64,
        Keep::Fraction(f) => {
            return Err(Error::Plan(format!(
                "--keep-ffn {f} is outside (0, 1]: give a share of the channels or a width"
            )))
        }
        Keep::Width(w) if w == 0 || w > n_ff => {
            return Err(Error::Plan(format!(
                "--keep-ffn {w}: a width must be between 1 and the model's {n_ff} channels"
            )))
        }
        Keep::Width(w) => w as f64,
    })
}

/// One tensor of a block, as the model holds it.
#[derive(Debug, Clone)]
struct Part {
    source: TensorRef,
    info: TensorInfo,
}

/// The feed-forward tensors of one block, each as a `T`: the tensors channel removal cuts.
#[derive(Debug, Clone)]
pub struct FfnBlock<T> {
    pub gate: Option<T>,
    /// phi3's fused gate+up when the architecture fuses them.
    pub up: Option<T>,
    pub down: Option<T>,
    pub gate_bias: Option<T>,
    pub up_bias: Option<T>,
}

impl<T> Default for FfnBlock<T> {
    fn default() -> Self {
        FfnBlock {
            gate: None,
            up: None,
            down: None,
            gate_bias: None,
            up_bias: None,
        }
    }
}

impl<T> FfnBlock<T> {
    /// The slot of the tensor `kind` (the name after `blk.N.`), if it is one of the five.
    pub fn slot(&mut self, kind: &str) -> Option<&mut Option<T>> {
        Some(match kind {
            "ffn_gate.weight" => &mut self.gate,
            "ffn_up.weight" => &mut self.up,
            "ffn_down.weight" => &mut self.down,
            "ffn_gate.bias" => &mut self.gate_bias,
            "ffn_up.bias" => &mut self.up_bias,
            _ => return None,
        })
    }
}

/// `blk.N.KIND` as `(N, KIND)`; `None` for names outside the blocks.
pub fn block_and_kind(name: &str) -> Option<(u32, &str)> {
    let (b, kind) = name.strip_prefix("blk.")?.split_once('.')?;
    Some((b.parse().ok()?, kind))
}

type Block = FfnBlock<Part>;

/// Which channels one block keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockChannels {
    pub block: u32,
    /// Channels before removal.
    pub n_ff: usize,
    /// The kept channels, ascending.
    pub kept: Arc<Vec<u32>>,
    /// The share of the block's total score that the removed channels held.
    pub removed_score_share: f64,
    /// The spread of the block's channel scores (for the reports).
    pub scores: Option<Quantiles>,
    /// The highest score among the removed channels: where the cut fell.
    pub highest_removed: Option<f64>,
    /// The lowest score among the kept channels.
    pub lowest_kept: Option<f64>,
}

/// How a tensor is cut: which rows, or which columns, stay.
#[derive(Debug, Clone, PartialEq)]
pub enum Cut {
    Rows(Arc<Vec<u32>>),
    Columns(Arc<Vec<u32>>),
}

/// The channel decision for the whole model.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelPlan {
    pub options: ChannelOptions,
    /// Channels per block before removal (every block has the same).
    pub n_ff: usize,
    /// The width every block keeps (uniform), or the largest one (global); the target per
    /// block before rounding.
    pub width: usize,
    pub target: f64,
    /// Whether the output must be written as `deci` (per-layer widths).
    pub per_layer: bool,
    pub blocks: Vec<BlockChannels>,
    /// The cut of every tensor that changes shape, by name.
    pub cuts: BTreeMap<String, Cut>,
}

impl ChannelPlan {
    /// The cut of tensor `name`, if it changes.
    pub fn cut(&self, name: &str) -> Option<&Cut> {
        self.cuts.get(name)
    }

    /// The kept channels of the block whose down projection is `down_entry`, for cutting its
    /// statistics.
    pub fn kept_for_down(&self, down_entry: &str) -> Option<&[u32]> {
        match self.cuts.get(down_entry)? {
            Cut::Columns(kept) => Some(kept),
            Cut::Rows(_) => None,
        }
    }
}

/// The statistics channel scores read: the imatrix, and the statistics file with the damping
/// for [`ChannelScore::Lsq`].
#[derive(Clone, Copy)]
pub struct ChannelStatistics<'a> {
    pub imatrix: Option<&'a Imatrix>,
    pub stats: Option<&'a Stats>,
    pub damp: f64,
}

/// Decides which channels every block keeps. Reads each block's tensors once, one at a time.
pub fn plan_channels(
    model: &Source,
    arch: &str,
    statistics: ChannelStatistics<'_>,
    opts: &ChannelOptions,
) -> Result<ChannelPlan> {
    let imatrix = statistics.imatrix;
    if opts.score.needs_statistics() && imatrix.is_none() {
        return Err(Error::Plan(format!(
            "--channel-score {} needs activation statistics: pass --imatrix FILE",
            opts.score.name()
        )));
    }
    if opts.score == ChannelScore::Lsq {
        if statistics.stats.is_none() {
            return Err(Error::Plan(
                "--channel-score lsq needs the second moments of the channels: pass --stats \
                 FILE (a statistics file from dass-gguf calibrate, docs/stats.md)"
                    .into(),
            ));
        }
        if opts.allocation == Allocation::Global {
            return Err(Error::Plan(
                "--channel-score lsq removes each block's channels greedily down to the \
                 block's width, which --allocate global has not chosen yet (it compares scores \
                 across blocks to choose widths): use --allocate uniform with lsq, or another \
                 --channel-score with global"
                    .into(),
            ));
        }
    }
    let fused = arch == "phi3";
    let blocks = find_blocks(model)?;
    if !SUPPORTED_ARCHITECTURES.contains(&arch) {
        return Err(Error::Plan(format!(
            "--keep-ffn: architecture '{arch}' \
                     is not supported (supported: {})",
            SUPPORTED_ARCHITECTURES.join(", ")
        )));
    }
    if blocks.is_empty() {
        return Err(Error::Plan(
            "--keep-ffn: the model has no feed-forward blocks (blk.N.ffn_down.weight)".into(),
        ));
    }

    let mut n_ff = None;
    let mut scored = Vec::with_capacity(blocks.len());
    for (&b, block) in &blocks {
        let this = check_block(b, block, fused)?;
        if *n_ff.get_or_insert(this) != this {
            return Err(Error::Plan(format!(
                "--keep-ffn: block {b} has {this} feed-forward channels, block {} has {}; \
                 this model's layers already have different widths",
                blocks.keys().next().unwrap_or(&0),
                n_ff.unwrap_or(0)
            )));
        }
        let scores = match (opts.score, statistics.stats) {
            (ChannelScore::Lsq, Some(stats)) => {
                let width = resolve_width(this, opts.keep, opts.multiple)?.0;
                let choice = lsq_block(model, block, stats, statistics.damp, width)?;
                Scored {
                    scores: choice.scores,
                    kept: Some(choice.kept),
                }
            }
            _ => Scored {
                scores: score_block(model, b, block, this, fused, imatrix, opts)?,
                kept: None,
            },
        };
        scored.push((b, scores));
    }
    let n_ff = n_ff.unwrap_or(0);
    let target = target_width(n_ff, opts.keep, opts.multiple)?;
    let widths = match opts.allocation {
        Allocation::Uniform => vec![resolve_width(n_ff, opts.keep, opts.multiple)?.0; scored.len()],
        Allocation::Global => {
            if arch != "llama" {
                return Err(Error::Plan(format!(
                    "--allocate global writes per-layer widths, which stock llama.cpp reads only \
                     for the 'deci' architecture, whose graph is llama's; architecture '{arch}' \
                     is not supported (supported: llama, including Mistral and SmolLM); use \
                     --allocate uniform"
                )));
            }
            // Scores relative to their block's median score: comparable across blocks whose
            // activations differ in scale, and not swayed by a block's few outlier channels
            // (a share of the block's total starves blocks with massive activations).
            let shares: Vec<Vec<f64>> = scored
                .iter()
                .map(|(_, s)| {
                    let s = &s.scores;
                    let median = median(s);
                    s.iter()
                        .map(|x| if median > 0.0 { x / median } else { *x })
                        .collect()
                })
                .collect();
            let all: Vec<&[f64]> = shares.iter().map(|s| s.as_slice()).collect();
            global_widths(&all, target * scored.len() as f64, opts.multiple)
        }
    };

    let mut plan = ChannelPlan {
        options: opts.clone(),
        n_ff,
        width: widths.iter().copied().max().unwrap_or(0),
        target,
        per_layer: opts.allocation == Allocation::Global,
        blocks: Vec::new(),
        cuts: BTreeMap::new(),
    };
    for ((b, Scored { scores, kept }), width) in scored.into_iter().zip(widths) {
        let kept = Arc::new(kept.unwrap_or_else(|| keep_highest(&scores, width)));
        let total: f64 = scores.iter().sum();
        let kept_sum: f64 = kept.iter().map(|&i| scores[i as usize]).sum();
        let mut is_kept = vec![false; scores.len()];
        for &i in kept.iter() {
            is_kept[i as usize] = true;
        }
        let extreme = |keep: bool, pick: fn(f64, f64) -> f64| {
            scores
                .iter()
                .zip(&is_kept)
                .filter(|(_, &k)| k == keep)
                .map(|(&s, _)| s)
                .reduce(pick)
        };
        let highest_removed = extreme(false, f64::max);
        let lowest_kept = extreme(true, f64::min);
        let block = &blocks[&b];
        let rows_of_up = if fused {
            let both: Vec<u32> = kept
                .iter()
                .copied()
                .chain(kept.iter().map(|&i| i + n_ff as u32))
                .collect();
            Arc::new(both)
        } else {
            kept.clone()
        };
        let mut cut = |part: &Option<Part>, c: Cut| {
            if let Some(p) = part {
                plan.cuts.insert(p.info.name.clone(), c);
            }
        };
        cut(&block.gate, Cut::Rows(kept.clone()));
        cut(&block.up, Cut::Rows(rows_of_up));
        cut(&block.down, Cut::Columns(kept.clone()));
        cut(&block.gate_bias, Cut::Columns(kept.clone()));
        cut(&block.up_bias, Cut::Columns(kept.clone()));
        plan.blocks.push(BlockChannels {
            block: b,
            n_ff,
            kept,
            removed_score_share: if total > 0.0 {
                (total - kept_sum).max(0.0) / total
            } else {
                0.0
            },
            scores: Quantiles::of(scores.iter().copied()),
            highest_removed,
            lowest_kept,
        });
    }
    Ok(plan)
}

/// A block's channel scores and, when the score chose them itself (lsq), its kept channels.
struct Scored {
    scores: Vec<f64>,
    kept: Option<Vec<u32>>,
}

/// `--channel-score lsq` on one block: the greedy least-squares choice of its `width` channels
/// from its down projection and the damped second moment of the channels.
fn lsq_block(
    model: &Source,
    block: &Block,
    stats: &Stats,
    damp: f64,
    width: usize,
) -> Result<crate::refit::LsqChoice> {
    let down = block.down.as_ref().expect("checked by check_block");
    let name = &down.info.name;
    let entry = stats
        .outer_entry(name)
        .ok_or_else(|| stats.missing_outer(name, "is scored by --channel-score lsq"))?;
    let (h, n) = stats.mean_outer(entry, None)?;
    let h = Damped::new(h, n, damp);
    let rows = down.info.ne()[1] as usize;
    let w = weights_f64(model, down.source, &down.info)?;
    crate::refit::choose_lsq(&w, rows, &h, width, name, damp)
}

/// A matrix's weights, dequantized exactly, as f64 (row-major, `ne[0]` per row).
pub(crate) fn weights_f64(
    model: &Source,
    source: TensorRef,
    info: &TensorInfo,
) -> Result<Vec<f64>> {
    let data = model.tensor_data(source)?;
    let mut w = vec![0.0f32; info.n_elements() as usize];
    crate::execute::dequantize_parallel(info, &data, &mut w)?;
    Ok(w.into_par_iter().map(f64::from).collect())
}

/// Every block's feed-forward tensors; MoE experts are refused.
fn find_blocks(model: &Source) -> Result<BTreeMap<u32, Block>> {
    let mut blocks: BTreeMap<u32, Block> = BTreeMap::new();
    for (source, info) in model.tensors() {
        let Some((b, kind)) = block_and_kind(&info.name) else {
            continue;
        };
        if kind.starts_with("ffn_") && (kind.contains("_exps") || kind.contains("_shexp")) {
            return Err(Error::Plan(format!(
                "--keep-ffn: '{}' belongs to a mixture of experts; removing expert channels is \
                 not supported",
                info.name
            )));
        }
        let part = Some(Part {
            source,
            info: info.clone(),
        });
        let block = blocks.entry(b).or_default();
        if let Some(slot) = block.slot(kind) {
            *slot = part;
        }
    }
    blocks.retain(|_, b| b.gate.is_some() || b.up.is_some() || b.down.is_some());
    Ok(blocks)
}

/// The block's channel count, after checking that its tensors agree on it.
fn check_block(b: u32, block: &Block, fused: bool) -> Result<usize> {
    let missing = |what: &str| {
        Error::Plan(format!(
            "--keep-ffn: block {b} has no {what}; only gated feed-forwards (gate, up, down) \
             can lose channels"
        ))
    };
    let down = block
        .down
        .as_ref()
        .ok_or_else(|| missing("ffn_down.weight"))?;
    let up = block.up.as_ref().ok_or_else(|| missing("ffn_up.weight"))?;
    if !fused && block.gate.is_none() {
        return Err(missing("ffn_gate.weight"));
    }
    let two_d = |p: &Part| -> Result<(usize, usize)> {
        let ne = p.info.ne();
        if ne[2] != 1 || ne[3] != 1 {
            return Err(Error::Tensor {
                tensor: p.info.name.clone(),
                message: format!("has dims {:?}; a 2-D matrix was expected", p.info.dims),
            });
        }
        if !can_dequantize(p.info.ty) {
            return Err(Error::CannotDequantize {
                tensor: p.info.name.clone(),
                ty: p.info.ty,
            });
        }
        Ok((ne[0] as usize, ne[1] as usize))
    };
    let (n_ff, n_embd) = two_d(down)?;
    if n_ff == 0 || n_embd == 0 {
        return Err(Error::Tensor {
            tensor: down.info.name.clone(),
            message: format!("has dims {:?}: no channels to remove", down.info.dims),
        });
    }
    let wrong = |p: &Part, expected: String| Error::Tensor {
        tensor: p.info.name.clone(),
        message: format!(
            "has dims {:?}, but {} has {n_ff} channels: expected {expected}",
            p.info.dims, down.info.name
        ),
    };
    let up_rows = if fused { 2 * n_ff } else { n_ff };
    if two_d(up)? != (n_embd, up_rows) {
        return Err(wrong(up, format!("[{n_embd}, {up_rows}]")));
    }
    if let Some(gate) = &block.gate {
        if two_d(gate)? != (n_embd, n_ff) {
            return Err(wrong(gate, format!("[{n_embd}, {n_ff}]")));
        }
    }
    for bias in [&block.gate_bias, &block.up_bias].into_iter().flatten() {
        if bias.info.dims != [up_rows as u64] && bias.info.dims != [n_ff as u64] {
            return Err(wrong(bias, format!("[{n_ff}]")));
        }
        if !can_dequantize(bias.info.ty) {
            return Err(Error::CannotDequantize {
                tensor: bias.info.name.clone(),
                ty: bias.info.ty,
            });
        }
    }
    if fused && block.up_bias.is_some() {
        return Err(Error::Plan(format!(
            "--keep-ffn: block {b} of phi3 has an ffn_up bias; cutting a fused gate+up bias is \
             not supported"
        )));
    }
    Ok(n_ff)
}

/// Rows of a matrix handled together when scoring.
const ROWS_PER_TASK: usize = 64;

/// The score of every channel of block `b`.
fn score_block(
    model: &Source,
    b: u32,
    block: &Block,
    n_ff: usize,
    fused: bool,
    imatrix: Option<&Imatrix>,
    opts: &ChannelOptions,
) -> Result<Vec<f64>> {
    let down = block.down.as_ref().expect("checked by check_block");
    let up = block.up.as_ref().expect("checked by check_block");
    let v_down = || -> Result<Vec<f64>> {
        let im = imatrix.expect("checked by plan_channels");
        let v = statistics(im, &down.info.name, &down.info.name, n_ff, 1)?;
        Ok(v[0].iter().map(|&x| x as f64).collect())
    };
    let scores = match opts.score {
        ChannelScore::Activation => v_down()?,
        ChannelScore::Energy => {
            let norms = column_sums(model, down, |w| w * w)?;
            let v = v_down()?;
            norms.iter().zip(&v).map(|(n, v)| n * v).collect()
        }
        ChannelScore::Weight => {
            let mut s = column_sums(model, down, |w| w * w)?;
            add_row_sums(model, block, fused, n_ff, None, &mut s, |w| w * w)?;
            s
        }
        ChannelScore::Dass => {
            let im = imatrix.expect("checked by plan_channels");
            // The block input's statistics: the gate's entry (phi3: the fused up's).
            let input = block.gate.as_ref().unwrap_or(up);
            let n_embd = input.info.ne()[0] as usize;
            let v_in = statistics(im, &input.info.name, &input.info.name, n_embd, 1)?;
            let sqrt_in: Vec<f64> = v_in[0].iter().map(|&x| (x as f64).sqrt()).collect();
            let mut s = vec![0.0; n_ff];
            add_row_sums(model, block, fused, n_ff, Some(&sqrt_in), &mut s, f64::abs)?;
            let v = v_down()?;
            let exponent = opts.alpha as f64 / 2.0;
            s.iter()
                .zip(&v)
                .map(|(s, v)| s * v.powf(exponent))
                .collect()
        }
        ChannelScore::Random => (0..n_ff)
            .map(|i| random_score(opts.seed, b, i as u32))
            .collect(),
        // Chosen with the statistics file in plan_channels, which refuses lsq without one.
        ChannelScore::Lsq => {
            return Err(Error::Plan("--channel-score lsq needs --stats FILE".into()))
        }
    };
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(Error::Tensor {
            tensor: down.info.name.clone(),
            message: format!(
                "channel {i} has a {} score of {}: its weights or statistics are not finite",
                opts.score.name(),
                scores[i]
            ),
        });
    }
    Ok(scores)
}

/// `task` on every group of [`ROWS_PER_TASK`] rows of a matrix, dequantized to f32 (the rows,
/// then the row length), in parallel; the results in row order.
fn map_row_groups<T: Send>(
    model: &Source,
    part: &Part,
    task: impl Fn(&[f32], usize) -> T + Sync,
) -> Result<Vec<T>> {
    let data = model.tensor_data(part.source)?;
    let cols = part.info.ne()[0] as usize;
    let row_bytes = (cols as u64 / part.info.ty.block_size() * part.info.ty.type_size()) as usize;
    data.par_chunks(row_bytes * ROWS_PER_TASK)
        .map(|chunk| -> Result<T> {
            let mut w = vec![0.0f32; chunk.len() / row_bytes * cols];
            dequantize(part.info.ty, chunk, &mut w).map_err(|e| dequant_error(part, e))?;
            Ok(task(&w, cols))
        })
        .collect()
}

/// `sum_r f(W[r][c])` for every column `c` of a matrix, in f64, the same whatever the number
/// of threads (fixed row groups, summed in order).
fn column_sums(model: &Source, part: &Part, f: impl Fn(f64) -> f64 + Sync) -> Result<Vec<f64>> {
    let partials = map_row_groups(model, part, |w, cols| {
        let mut sums = vec![0.0f64; cols];
        for row in w.chunks(cols) {
            for (s, &x) in sums.iter_mut().zip(row) {
                *s += f(x as f64);
            }
        }
        sums
    })?;
    let cols = part.info.ne()[0] as usize;
    let mut out = vec![0.0f64; cols];
    for p in partials {
        for (o, x) in out.iter_mut().zip(p) {
            *o += x;
        }
    }
    Ok(out)
}

/// Adds `sum_c f(W[i][c]) * weight[c]` (weight 1 when `None`) of channel `i`'s gate and up rows
/// to `scores[i]`.
fn add_row_sums(
    model: &Source,
    block: &Block,
    fused: bool,
    n_ff: usize,
    weight: Option<&[f64]>,
    scores: &mut [f64],
    f: impl Fn(f64) -> f64 + Sync + Copy,
) -> Result<()> {
    let up = block.up.as_ref().expect("checked by check_block");
    for part in [block.gate.as_ref(), Some(up)].into_iter().flatten() {
        let sums = row_sums(model, part, weight, f)?;
        // phi3's fused up holds the gate rows, then the up rows, of the same channels.
        for (k, s) in sums.iter().enumerate() {
            let i = if fused { k % n_ff } else { k };
            scores[i] += s;
        }
    }
    Ok(())
}

/// `sum_c f(W[r][c]) * weight[c]` for every row `r`, in f64.
fn row_sums(
    model: &Source,
    part: &Part,
    weight: Option<&[f64]>,
    f: impl Fn(f64) -> f64 + Sync,
) -> Result<Vec<f64>> {
    let per_task = map_row_groups(model, part, |w, cols| -> Vec<f64> {
        w.chunks(cols)
            .map(|row| match weight {
                Some(k) => row.iter().zip(k).map(|(&x, k)| f(x as f64) * k).sum(),
                None => row.iter().map(|&x| f(x as f64)).sum(),
            })
            .collect()
    })?;
    Ok(per_task.into_iter().flatten().collect())
}

fn dequant_error(part: &Part, e: crate::dequant::DequantError) -> Error {
    Error::Tensor {
        tensor: part.info.name.clone(),
        message: e.to_string(),
    }
}

/// A pseudo-random score in [0, 1) for channel `i` of block `b` (SplitMix64 of the seed, the
/// block and the channel): reproducible, and the same in the NumPy reference.
pub fn random_score(seed: u64, b: u32, i: u32) -> f64 {
    let mut z = seed ^ ((b as u64) << 32 | i as u64);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The median of `s` (the lower middle value for an even length).
pub(crate) fn median(s: &[f64]) -> f64 {
    let mut sorted = s.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted
        .get((sorted.len().max(1) - 1) / 2)
        .copied()
        .unwrap_or(0.0)
}

/// Per-block widths for one budget of `budget` channels over all blocks: channels are taken in
/// units of `multiple` (a block's channels sorted by score, highest first; a unit's value is
/// the sum of its scores), every block keeps its best unit, and the remaining units go to the
/// highest values over all blocks (equal values: the earlier block, then the earlier unit).
/// The total is `budget` rounded to the nearest unit, at least one unit per block. (A width of
/// 0 is never chosen: llama.cpp's `deci` graph skips the whole layer, attention included, when
/// a layer has no feed-forward.)
pub fn global_widths(scores: &[&[f64]], budget: f64, multiple: usize) -> Vec<usize> {
    let multiple = multiple.max(1);
    // Units of each block, in the order a block gives them up last to first.
    let mut units: Vec<(f64, usize, usize)> = Vec::new(); // (value, block, unit index)
    let mut widths = Vec::with_capacity(scores.len());
    for (b, s) in scores.iter().enumerate() {
        let mut sorted: Vec<f64> = s.to_vec();
        sorted.sort_by(|x, y| y.total_cmp(x));
        let n_units = s.len().div_ceil(multiple);
        for u in 1..n_units {
            let value: f64 = sorted[u * multiple..((u + 1) * multiple).min(s.len())]
                .iter()
                .sum();
            units.push((value, b, u));
        }
        widths.push(multiple.min(s.len()));
    }
    let total_units = (budget / multiple as f64 + 0.5).floor().max(0.0) as usize;
    let extra = total_units.saturating_sub(scores.len());
    units.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
    for &(_, b, u) in units.iter().take(extra) {
        let len = scores[b].len();
        widths[b] += ((u + 1) * multiple).min(len) - u * multiple;
    }
    widths
}

/// The `width` channels with the highest scores, ascending. The lowest scores are removed
/// first and, among equal scores, the lower index (as pruning breaks ties).
pub fn keep_highest(scores: &[f64], width: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..scores.len() as u32).collect();
    order.sort_by(|&a, &b| {
        scores[a as usize]
            .total_cmp(&scores[b as usize])
            .then(a.cmp(&b))
    });
    let removed = scores.len().saturating_sub(width);
    let mut kept = order.split_off(removed);
    kept.sort_unstable();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_round_to_the_nearest_multiple() {
        assert_eq!(
            resolve_width(1536, Keep::Fraction(0.75), 256).unwrap().0,
            1280
        );
        assert_eq!(
            resolve_width(1536, Keep::Fraction(0.875), 256).unwrap().0,
            1280
        );
        assert_eq!(
            resolve_width(1536, Keep::Fraction(0.625), 256).unwrap().0,
            1024
        );
        assert_eq!(
            resolve_width(1536, Keep::Fraction(0.75), 1).unwrap().0,
            1152
        );
        assert_eq!(
            resolve_width(4864, Keep::Fraction(0.75), 256).unwrap().0,
            3584
        );
        assert_eq!(
            resolve_width(1536, Keep::Fraction(1.0), 256).unwrap().0,
            1536
        );
        assert_eq!(
            resolve_width(1000, Keep::Fraction(1.0), 256).unwrap().0,
            1000
        );
        assert_eq!(resolve_width(1536, Keep::Width(1000), 256).unwrap().0, 1024);
        assert_eq!(resolve_width(1536, Keep::Width(1536), 256).unwrap().0, 1536);
        // Halves go up; never above n_ff.
        assert_eq!(resolve_width(1536, Keep::Width(384), 256).unwrap().0, 512);
        assert_eq!(
            resolve_width(1000, Keep::Fraction(0.99), 256).unwrap().0,
            1000
        );
    }

    #[test]
    fn keeps_parse_as_shares_or_widths() {
        assert_eq!("0.75".parse::<Keep>(), Ok(Keep::Fraction(0.75)));
        assert_eq!("1".parse::<Keep>(), Ok(Keep::Fraction(1.0)));
        assert_eq!("1152".parse::<Keep>(), Ok(Keep::Width(1152)));
        for bad in ["0", "-1", "1.5", "x", "", "nan"] {
            assert!(bad.parse::<Keep>().is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_keeps_are_refused() {
        for keep in [
            Keep::Fraction(0.0),
            Keep::Fraction(-0.5),
            Keep::Fraction(1.5),
            Keep::Fraction(f64::NAN),
            Keep::Width(0),
            Keep::Width(1537),
            Keep::Fraction(0.05), // 76.8 rounds to 0 at 256
        ] {
            assert!(resolve_width(1536, keep, 256).is_err(), "{keep:?}");
        }
        assert!(resolve_width(1536, Keep::Fraction(0.5), 0).is_err());
    }

    #[test]
    fn lowest_scores_go_first_ties_to_the_lower_index() {
        assert_eq!(keep_highest(&[3.0, 1.0, 2.0, 0.5], 2), vec![0, 2]);
        assert_eq!(keep_highest(&[1.0, 1.0, 1.0, 1.0], 3), vec![1, 2, 3]);
        assert_eq!(keep_highest(&[0.0, -0.0, 5.0], 1), vec![2]);
        assert_eq!(keep_highest(&[2.0, 1.0], 2), vec![0, 1]);
        assert_eq!(keep_highest(&[2.0, 1.0], 0), Vec::<u32>::new());
    }

    #[test]
    fn a_global_budget_goes_where_the_scores_are() {
        let strong = [9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0];
        let weak = [0.9, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1];
        // 8 of 16 channels in units of 2: each block keeps one unit, then the best units.
        assert_eq!(global_widths(&[&strong, &weak], 8.0, 2), vec![6, 2]);
        // Everything kept; a budget below one unit per block still keeps one unit each.
        assert_eq!(global_widths(&[&strong, &weak], 16.0, 2), vec![8, 8]);
        assert_eq!(global_widths(&[&strong, &weak], 1.0, 2), vec![2, 2]);
        // Units of one channel: the exact global top k (plus the floor of one per block).
        assert_eq!(global_widths(&[&strong, &weak], 6.0, 1), vec![5, 1]);
        // A unit value is the sum of its channels; equal values go to the earlier block.
        assert_eq!(
            global_widths(&[&[1.0, 1.0], &[1.0, 1.0]], 3.0, 1),
            vec![2, 1]
        );
        // A block whose width is not a multiple: its last unit is short.
        assert_eq!(
            global_widths(&[&[5.0, 4.0, 3.0], &[0.0, 0.0]], 5.0, 2),
            vec![3, 2]
        );
    }

    #[test]
    fn random_scores_are_reproducible_and_spread() {
        let a: Vec<f64> = (0..1000).map(|i| random_score(7, 3, i)).collect();
        let b: Vec<f64> = (0..1000).map(|i| random_score(7, 3, i)).collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = a.iter().sum::<f64>() / a.len() as f64;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
        assert_ne!(random_score(7, 3, 0), random_score(8, 3, 0));
        assert_ne!(random_score(7, 3, 0), random_score(7, 4, 0));
    }
}
