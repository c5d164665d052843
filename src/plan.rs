//! Deciding, before anything is written, what happens to every tensor.
//!
//! [`make_plan`] turns the user's options, the model and the imatrix into a [`Plan`]: per
//! tensor either a byte copy or a [`PruneStep`] with its rule (score, groups and factors, from
//! [`crate::rules`]), output type and the exact number of weights it will zero. Every check
//! that can fail on the inputs' shapes or statistics (missing or mis-sized imatrix entries, N:M
//! divisibility, non-finite statistics, types that cannot be dequantized, DaSS on a model
//! without a gate) fails here, early. The output's metadata comes from [`crate::metadata`].

use std::collections::BTreeSet;
use std::fmt;

use regex::Regex;

use crate::auto::{self, AutoChoice};
use crate::channels::{plan_channels, ChannelOptions, ChannelPlan, ChannelStatistics, Cut};
use crate::dequant::can_dequantize;
use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use crate::gguf::split::TensorRef;
use crate::gguf::{MetadataEntry, TensorInfo, TensorSpec};
use crate::imatrix::Imatrix;
use crate::kernels::{Axis, Pattern};
use crate::metadata::output_metadata;
use crate::out_type::OutType;
use crate::refit::{RefitOptions, TensorRefit, LEAST_SQUARES, SPARSEGPT};
use crate::roles::{classify, Role, TensorRole};
use crate::rules::{rule_for, Groups, Method, Rule, TensorContext};
use crate::source::Source;
use crate::stats::Stats;

/// Which tensors are candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// gate, up and down of every block (and of experts and shared experts).
    Ffn,
    /// The feed-forward tensors plus attention q/k/v/output (and fused qkv).
    All,
}

impl Scope {
    /// The name used on the command line and in metadata.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Ffn => "ffn",
            Scope::All => "all",
        }
    }
}

/// The method asked for: one by name, or `auto` (the default), which reads the model's
/// statistics to choose ([`crate::auto`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodChoice {
    Auto,
    Named(Method),
}

impl MethodChoice {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            MethodChoice::Auto => "auto",
            MethodChoice::Named(m) => m.name(),
        }
    }

    /// Whether the method reads activation statistics (an imatrix).
    fn needs_statistics(self) -> bool {
        match self {
            MethodChoice::Auto => true,
            MethodChoice::Named(m) => m.needs_statistics(),
        }
    }

    /// Whether `--alpha` can matter (for `auto`: when it chooses a method that has it).
    pub fn uses_alpha(self) -> bool {
        match self {
            MethodChoice::Auto => true,
            MethodChoice::Named(m) => m.uses_alpha(),
        }
    }
}

/// Everything the user chose.
#[derive(Debug, Clone)]
pub struct Options {
    pub method: MethodChoice,
    pub pattern: Pattern,
    /// Exponent on the down-projection activation norm in DaSS (docs/method.md "Scores": `alpha`).
    pub alpha: f32,
    pub scope: Scope,
    /// When non-empty, only tensors matching one of these are pruned.
    pub include: Vec<Regex>,
    /// Tensors matching one of these are never pruned.
    pub exclude: Vec<Regex>,
    pub outtype: OutType,
    /// Whether weights are zeroed at all (false: only channels are removed).
    pub prune: bool,
    /// Remove whole feed-forward channels first (docs/method.md "Removing channels").
    pub channels: Option<ChannelOptions>,
    /// Refitting with the second moments of a statistics file, when one is given
    /// (docs/method.md "Refitting with second moments").
    pub refit: RefitOptions,
}

/// How one tensor is pruned.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneStep {
    pub role: Role,
    /// Score, groups, matrices and factors.
    pub rule: Rule,
    pub pattern: Pattern,
    pub out_type: GgmlType,
    /// Exactly how many weights will be zeroed.
    pub zeroed: u64,
}

/// What happens to one tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Copy,
    Prune(PruneStep),
}

/// One tensor of the plan.
#[derive(Debug, Clone)]
pub struct TensorPlan {
    pub source: TensorRef,
    /// The tensor as the input holds it.
    pub info: TensorInfo,
    /// Rows or columns removed with their channels, and the tensor after that (its dims, and
    /// its type: a quantized tensor cut by columns is re-encoded, as pruned tensors are).
    pub cut: Option<(Cut, TensorInfo)>,
    /// What happens next to the (cut) tensor.
    pub action: Action,
    /// The weights that stay are refitted with the second moment of the tensor's input: the
    /// kept columns of a cut `ffn_down` by least squares, a pruned tensor's kept weights by
    /// SparseGPT's update.
    pub refit: Option<TensorRefit>,
}

impl TensorPlan {
    /// The tensor that pruning sees: after the cut, if any.
    pub fn cut_info(&self) -> &TensorInfo {
        self.cut
            .as_ref()
            .map(|(_, info)| info)
            .unwrap_or(&self.info)
    }

    /// The tensor as it will be written.
    pub fn output_spec(&self) -> TensorSpec {
        let mut spec = TensorSpec::from(self.cut_info());
        if let Action::Prune(step) = &self.action {
            spec.ty = step.out_type;
        }
        spec
    }

    /// The type the tensor's values are re-encoded in, when they are (pruned, or cut by
    /// columns from a quantized type); `None` when its bytes are copied or sliced unchanged.
    pub fn reencoded_as(&self) -> Option<GgmlType> {
        match &self.action {
            Action::Prune(step) => Some(step.out_type),
            Action::Copy if self.refit.is_some() => Some(self.cut_info().ty),
            Action::Copy => self
                .cut
                .as_ref()
                .filter(|(_, info)| info.ty != self.info.ty)
                .map(|(_, info)| info.ty),
        }
    }
}

/// The whole plan: every tensor in file order, and the output metadata.
#[derive(Debug, Clone)]
pub struct Plan {
    pub tensors: Vec<TensorPlan>,
    pub metadata: Vec<MetadataEntry>,
    pub options_summary: OptionsSummary,
    /// The channels every block keeps, when channels are removed.
    pub channels: Option<ChannelPlan>,
    /// The statistics file, when one was given.
    pub stats: Option<StatsRecord>,
    /// What was refitted, when anything was.
    pub refit: Option<RefitRecord>,
}

/// The statistics file as the output records it (`dass.stats.*`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StatsRecord {
    /// Its file name.
    pub file: String,
    pub chunk_count: u32,
    pub datasets: Vec<String>,
}

/// What was refitted, as the output records it (`dass.refit.*`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RefitRecord {
    /// `least-squares` (kept channels of `ffn_down`), `sparsegpt` (kept weights of pruned
    /// tensors), or both, comma-separated in that order.
    pub method: String,
    pub damp: f64,
    /// Every refitted tensor, in file order.
    pub tensors: Vec<String>,
}

/// The options as recorded in reports and metadata.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OptionsSummary {
    pub method: &'static str,
    /// How `auto` chose the method, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto: Option<AutoChoice>,
    pub pattern: String,
    pub sparsity: f64,
    pub alpha: Option<f32>,
    pub scope: &'static str,
    /// The `--include` and `--exclude` regexes, as given (empty when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// For N:M: the direction groups run in on gate/up and on the other tensors.
    pub nm_orientation_gate_up: Option<&'static str>,
    pub nm_orientation_other: Option<&'static str>,
}

/// Weights zeroed out of weights considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Zeroed {
    pub zeroed: u64,
    pub weights: u64,
}

impl Zeroed {
    /// `zeroed / weights` (0 when there are no weights): the one place this ratio is made.
    pub fn sparsity(self) -> f64 {
        if self.weights == 0 {
            0.0
        } else {
            self.zeroed as f64 / self.weights as f64
        }
    }
}

impl Plan {
    /// Weights that will be zeroed, and weights in pruned tensors.
    pub fn totals(&self) -> Zeroed {
        self.tensors
            .iter()
            .filter_map(|t| match &t.action {
                Action::Prune(s) => Some((s.zeroed, t.cut_info().n_elements())),
                Action::Copy => None,
            })
            .fold(Zeroed::default(), |acc, (z, n)| Zeroed {
                zeroed: acc.zeroed + z,
                weights: acc.weights + n,
            })
    }

    /// How many tensors are pruned.
    pub fn pruned_tensors(&self) -> usize {
        self.tensors
            .iter()
            .filter(|t| matches!(t.action, Action::Prune(_)))
            .count()
    }
}

/// Names the pattern as the metadata and reports do: `unstructured` or `N:M`.
pub fn pattern_name(p: Pattern) -> String {
    match p {
        Pattern::Unstructured { .. } => "unstructured".into(),
        Pattern::NM { n, m } => format!("{n}:{m}"),
    }
}

/// The fraction of each group that is zeroed.
pub fn pattern_sparsity(p: Pattern) -> f64 {
    match p {
        Pattern::Unstructured { sparsity } => sparsity,
        Pattern::NM { n, m } => n as f64 / m as f64,
    }
}

/// Builds the plan and checks everything that can be checked before reading weights.
/// `imatrix` is the statistics and the file name recorded in the metadata; `stats` the
/// statistics file (docs/stats.md) and its name, for refitting and `--channel-score lsq`.
pub fn make_plan(
    model: &Source,
    imatrix: Option<(&Imatrix, &str)>,
    stats: Option<(&Stats, &str)>,
    opts: &Options,
) -> Result<Plan> {
    check_options(opts)?;
    if let Some((s, _)) = stats {
        s.check_model(model)?;
    }
    if opts.prune && opts.method.needs_statistics() && imatrix.is_none() {
        return Err(Error::Plan(format!(
            "--method {}{} needs activation statistics: pass --imatrix FILE (or choose \
             --method magnitude)",
            opts.method.name(),
            if opts.method == MethodChoice::Auto {
                " (the default)"
            } else {
                ""
            }
        )));
    }
    let arch = model
        .get("general.architecture")
        .ok_or_else(|| Error::MissingKey("general.architecture".into()))?
        .as_str()?;
    let tensors: Vec<(TensorRef, &TensorInfo)> = model.tensors();
    let names: BTreeSet<&str> = tensors.iter().map(|(_, t)| t.name.as_str()).collect();
    let roles: Vec<TensorRole> = tensors
        .iter()
        .map(|(_, t)| classify(&arch, &t.name))
        .collect();
    let (method, auto) = match (opts.method, imatrix) {
        (MethodChoice::Named(m), _) => (m, None),
        (MethodChoice::Auto, Some((im, _))) if opts.prune => {
            let (m, why) = auto::choose(im, &roles, opts.pattern)?;
            (m, Some(why))
        }
        // Nothing is zeroed (only channels are removed): no rule is used.
        (MethodChoice::Auto, _) => (Method::Magnitude, None),
    };
    let channels = match &opts.channels {
        Some(c) => {
            let statistics = ChannelStatistics {
                imatrix: imatrix.map(|i| i.0),
                stats: stats.map(|s| s.0),
                damp: opts.refit.damp,
            };
            Some(plan_channels(model, &arch, statistics, c)?)
        }
        None => None,
    };
    let refit_with = stats.map(|s| s.0).filter(|_| opts.refit.refit);

    let mut plans = Vec::with_capacity(tensors.len());
    for ((source, info), role) in tensors.iter().zip(&roles) {
        // A cut down projection whose kept columns are refitted is written as pruned tensors are.
        let refit_channels = refit_with.is_some()
            && role.role == Role::FfnDown
            && matches!(
                channels.as_ref().and_then(|c| c.cut(&info.name)),
                Some(Cut::Columns(_))
            );
        let cut = channels.as_ref().and_then(|c| c.cut(&info.name)).map(|c| {
            let mut cut = cut_info(info, c, opts.outtype);
            if refit_channels {
                cut.ty = opts.outtype.for_pruned(info.ty);
                cut.n_bytes = cut.ty.bytes_for(cut.n_elements()).unwrap_or(0);
            }
            (c.clone(), cut)
        });
        let action =
            if opts.prune && selected(role, &info.name, opts.scope, &opts.include, &opts.exclude) {
                let context = TensorContext {
                    arch: &arch,
                    info: cut.as_ref().map(|(_, i)| i).unwrap_or(info),
                    role,
                    names: &names,
                    channels: channels.as_ref(),
                };
                Action::Prune(plan_tensor(&context, imatrix.map(|i| i.0), method, opts)?)
            } else {
                Action::Copy
            };
        let pruned = matches!(action, Action::Prune(_));
        let refit = match refit_with {
            Some(s) => plan_refit(s, role, info, refit_channels, pruned, opts.refit.damp)?,
            None => None,
        };
        plans.push(TensorPlan {
            source: *source,
            info: (*info).clone(),
            cut,
            action,
            refit,
        });
    }
    let mut plan = Plan {
        tensors: plans,
        metadata: Vec::new(),
        options_summary: if opts.prune {
            summarise(opts, method, auto)
        } else {
            OptionsSummary::none()
        },
        channels,
        stats: stats.map(|(s, file)| StatsRecord {
            file: file.to_string(),
            chunk_count: s.chunk_count,
            datasets: s.datasets.clone(),
        }),
        refit: None,
    };
    plan.refit = refit_record(&plan.tensors, opts.refit.damp);
    plan.metadata = output_metadata(model.metadata(), imatrix, &plan)?;
    Ok(plan)
}

/// How tensor `info` (as the input holds it) is refitted with the statistics file: its kept
/// columns by least squares (`channels`: a cut `ffn_down`), its kept weights by SparseGPT's
/// update (`pruned`). Every such tensor needs the second moment of its input; a missing one
/// is an error naming it.
fn plan_refit(
    stats: &Stats,
    role: &TensorRole,
    info: &TensorInfo,
    channels: bool,
    pruned: bool,
    damp: f64,
) -> Result<Option<TensorRefit>> {
    if !channels && !pruned {
        return Ok(None);
    }
    if role.role.is_experts() {
        return Err(Error::Tensor {
            tensor: info.name.clone(),
            message: "mixtures of experts have no second moments (docs/stats.md), so their \
                      weights cannot be refitted: exclude them (--exclude '_exps') or pass \
                      --no-refit"
                .into(),
        });
    }
    let why = if channels {
        "loses channels and has its kept columns refitted"
    } else {
        "is pruned and has its kept weights refitted"
    };
    let matrix = stats
        .outer_entry(&info.name)
        .ok_or_else(|| stats.missing_outer(&info.name, why))?;
    let n = stats.n_in(matrix).unwrap_or(0);
    if n != info.row_len() as usize {
        return Err(Error::Stats {
            name: format!("{matrix}.in_outer"),
            message: format!(
                "has {n} inputs, but {} (whose input it is) has rows of {}",
                info.name,
                info.row_len()
            ),
        });
    }
    Ok(Some(TensorRefit {
        matrix: matrix.to_string(),
        channels,
        masked: pruned,
        damp,
    }))
}

/// What the plan refits, for the metadata and the report; `None` when nothing is.
fn refit_record(tensors: &[TensorPlan], damp: f64) -> Option<RefitRecord> {
    let refitted: Vec<&TensorRefit> = tensors.iter().filter_map(|t| t.refit.as_ref()).collect();
    if refitted.is_empty() {
        return None;
    }
    let mut method = Vec::new();
    if refitted.iter().any(|r| r.channels) {
        method.push(LEAST_SQUARES);
    }
    if refitted.iter().any(|r| r.masked) {
        method.push(SPARSEGPT);
    }
    Some(RefitRecord {
        method: method.join(","),
        damp,
        tensors: tensors
            .iter()
            .filter(|t| t.refit.is_some())
            .map(|t| t.info.name.clone())
            .collect(),
    })
}

/// A plan that prunes nothing: every tensor copied, the metadata unchanged (no `dass.*` keys).
/// This is plain conversion of a checkpoint, as llama.cpp's converter does it.
pub fn conversion_plan(model: &Source) -> Plan {
    Plan {
        tensors: model
            .tensors()
            .into_iter()
            .map(|(source, info)| TensorPlan {
                source,
                info: info.clone(),
                cut: None,
                action: Action::Copy,
                refit: None,
            })
            .collect(),
        metadata: model.metadata().to_vec(),
        options_summary: OptionsSummary::none(),
        channels: None,
        stats: None,
        refit: None,
    }
}

impl OptionsSummary {
    /// Nothing is zeroed.
    fn none() -> Self {
        OptionsSummary {
            method: "none",
            auto: None,
            pattern: "none".into(),
            sparsity: 0.0,
            alpha: None,
            scope: "none",
            include: Vec::new(),
            exclude: Vec::new(),
            nm_orientation_gate_up: None,
            nm_orientation_other: None,
        }
    }
}

/// The tensor `info` after `cut`: fewer rows or columns; a quantized tensor cut by columns is
/// re-encoded in `outtype`'s type for pruned tensors (F16 by default).
fn cut_info(info: &TensorInfo, cut: &Cut, outtype: OutType) -> TensorInfo {
    let mut out = info.clone();
    match cut {
        Cut::Rows(kept) => out.dims[1] = kept.len() as u64,
        Cut::Columns(kept) => {
            out.dims[0] = kept.len() as u64;
            if info.ty.is_quantized() {
                out.ty = outtype.for_pruned(info.ty);
            }
        }
    }
    out.n_bytes = out.ty.bytes_for(out.n_elements()).unwrap_or(0);
    out
}

fn check_options(opts: &Options) -> Result<()> {
    match opts.pattern {
        Pattern::Unstructured { sparsity } if !(0.0..1.0).contains(&sparsity) => {
            return Err(Error::Plan(format!(
                "sparsity {sparsity} is outside [0, 1)"
            )))
        }
        Pattern::NM { n, m } if n == 0 || n >= m => {
            return Err(Error::Plan(format!(
                "pattern {n}:{m} must zero at least 1 and fewer than M of every M weights"
            )))
        }
        _ => {}
    }
    if !(opts.refit.damp.is_finite() && opts.refit.damp >= 0.0) {
        return Err(Error::Plan(format!(
            "--damp {} must be a finite number >= 0",
            opts.refit.damp
        )));
    }
    if !opts.alpha.is_finite() || opts.alpha < 0.0 {
        return Err(Error::Plan(format!(
            "alpha {} must be a finite number >= 0",
            opts.alpha
        )));
    }
    Ok(())
}

/// Whether tensor `name` of role `role` is pruned under `scope`, `include` and `exclude`
/// (docs/method.md "What is pruned"); `verify` asks the same question of a written file.
pub(crate) fn selected(
    role: &TensorRole,
    name: &str,
    scope: Scope,
    include: &[Regex],
    exclude: &[Regex],
) -> bool {
    let in_scope = role.role.is_ffn() || (scope == Scope::All && role.role.is_attention());
    in_scope
        && (include.is_empty() || include.iter().any(|r| r.is_match(name)))
        && !exclude.iter().any(|r| r.is_match(name))
}

fn plan_tensor(
    t: &TensorContext<'_>,
    imatrix: Option<&Imatrix>,
    method: Method,
    opts: &Options,
) -> Result<PruneStep> {
    let (info, role) = (t.info, t.role);
    let tensor_err = |message: String| Error::Tensor {
        tensor: info.name.clone(),
        message,
    };
    if let Role::UnsupportedFfn(what) = role.role {
        return Err(tensor_err(format!(
            "{what} cannot be pruned yet; exclude it with --exclude '{}'",
            regex::escape(&info.name)
        )));
    }
    if !can_dequantize(info.ty) {
        return Err(Error::CannotDequantize {
            tensor: info.name.clone(),
            ty: info.ty,
        });
    }
    let ne = info.ne();
    let experts = role.role.is_experts();
    let shape_ok = if experts {
        ne[3] == 1
    } else {
        ne[2] == 1 && ne[3] == 1
    };
    if !shape_ok {
        return Err(tensor_err(format!(
            "has dims {:?}, which is not the {} shape its role {} needs",
            info.dims,
            if experts { "3-D" } else { "2-D" },
            role.role
        )));
    }
    if ne[0] >= 1 << 31 || ne[1] >= 1 << 31 {
        // The kernels index groups with 32-bit positions (see kernels::select_zeros).
        return Err(tensor_err(format!(
            "has dims {:?}; matrices with 2^31 or more rows or columns are not supported",
            info.dims
        )));
    }
    let shape = (ne[0] as usize, ne[1] as usize, ne[2] as usize);
    let rule = rule_for(method, opts.alpha, opts.pattern, t, shape, imatrix)?;

    let grouped = match rule.groups {
        Groups::Along(Axis::Row) => rule.cols,
        Groups::Along(Axis::Column) => rule.rows,
        Groups::Matrix => rule.rows * rule.cols,
    };
    if matches!(rule.groups, Groups::Matrix) && grouped >= 1 << 31 {
        // The kernels index a group with 32-bit positions.
        return Err(tensor_err(format!(
            "has {grouped} weights per matrix; {} compares a whole matrix at once, which is \
             supported up to 2^31 weights",
            method.name()
        )));
    }
    if let Pattern::NM { n, m } = opts.pattern {
        if grouped % m != 0 {
            return Err(tensor_err(format!(
                "{n}:{m} groups run along a dimension of {grouped}, which is not a multiple of {m}"
            )));
        }
    }
    let zeroed = rule.zero_count(opts.pattern) * rule.matrices as u64;
    Ok(PruneStep {
        role: role.role,
        rule,
        pattern: opts.pattern,
        out_type: opts.outtype.for_pruned(info.ty),
        zeroed,
    })
}

fn summarise(opts: &Options, method: Method, auto: Option<AutoChoice>) -> OptionsSummary {
    let nm = matches!(opts.pattern, Pattern::NM { .. });
    OptionsSummary {
        method: method.name(),
        auto,
        pattern: pattern_name(opts.pattern),
        sparsity: pattern_sparsity(opts.pattern),
        alpha: method.uses_alpha().then_some(opts.alpha),
        scope: opts.scope.name(),
        include: opts
            .include
            .iter()
            .map(|r| r.as_str().to_string())
            .collect(),
        exclude: opts
            .exclude
            .iter()
            .map(|r| r.as_str().to_string())
            .collect(),
        nm_orientation_gate_up: nm.then_some(orientation(method.gate_up_axis())),
        nm_orientation_other: nm.then_some(orientation(Axis::Row)),
    }
}

/// The dimension N:M groups run along on a tensor grouped on `axis`: rows hold the input
/// dimension, columns the output dimension.
pub(crate) fn orientation(axis: Axis) -> &'static str {
    match axis {
        Axis::Row => "input",
        Axis::Column => "output",
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.options_summary;
        writeln!(
            f,
            "plan: method {}, pattern {}, sparsity {}, scope {}{}",
            s.method,
            s.pattern,
            s.sparsity,
            s.scope,
            s.alpha.map(|a| format!(", alpha {a}")).unwrap_or_default()
        )?;
        if let Some(auto) = &s.auto {
            writeln!(f, "{}", auto.reason)?;
        }
        if let Some(c) = &self.channels {
            if c.per_layer {
                let total: usize = c.blocks.iter().map(|b| b.kept.len()).sum();
                writeln!(
                    f,
                    "channels: keep {total} of {} over {} blocks, widths per block (written as deci; target {:.1} per block, in units of {}), score {}",
                    c.n_ff * c.blocks.len(), c.blocks.len(), c.target, c.options.multiple, c.options.score.name()
                )?;
            } else {
                writeln!(
                    f,
                    "channels: keep {} of {} per block (target {:.1}, rounded to a multiple of {}), score {}",
                    c.width, c.n_ff, c.target, c.options.multiple, c.options.score.name()
                )?;
            }
            for b in &c.blocks {
                writeln!(
                    f,
                    "  blk.{:<4} width {:>6} -> {:<6} removed score share {:.4}",
                    b.block,
                    b.n_ff,
                    b.kept.len(),
                    b.removed_score_share
                )?;
            }
        }
        for t in &self.tensors {
            if let Some((cut, info)) = &t.cut {
                let (what, n) = match cut {
                    Cut::Rows(k) => ("rows", k.len()),
                    Cut::Columns(k) => ("columns", k.len()),
                };
                writeln!(
                    f,
                    "  {:<36} {:<6} cut to {n} {what}: dims {:?}, {}",
                    t.info.name, t.info.ty, info.dims, info.ty
                )?;
            }
            match &t.action {
                Action::Copy if t.cut.is_some() => {}
                Action::Copy => writeln!(f, "  {:<36} {:<6} copy", t.info.name, t.info.ty)?,
                Action::Prune(p) => {
                    let groups = match (p.rule.groups, p.pattern) {
                        (Groups::Matrix, _) => "per matrix".to_string(),
                        (Groups::Along(Axis::Row), Pattern::Unstructured { .. }) => {
                            "per output row".to_string()
                        }
                        (Groups::Along(Axis::Column), Pattern::Unstructured { .. }) => {
                            "per input column".to_string()
                        }
                        (Groups::Along(Axis::Row), Pattern::NM { n, m }) => {
                            format!("{n}:{m} along each row")
                        }
                        (Groups::Along(Axis::Column), Pattern::NM { n, m }) => {
                            format!("{n}:{m} down each column")
                        }
                    };
                    let stats = p
                        .rule
                        .entry
                        .as_ref()
                        .map(|e| format!(" [{e}]"))
                        .unwrap_or_default();
                    let mats = if p.rule.matrices > 1 {
                        format!(", {} matrices", p.rule.matrices)
                    } else {
                        String::new()
                    };
                    writeln!(
                        f,
                        "  {:<36} {:<6} prune {} ({}) score {}{stats}, groups {groups}{mats}, zero {} of {}, write {}",
                        t.info.name,
                        t.cut_info().ty,
                        p.role,
                        s.method,
                        p.rule.score.name(),
                        p.zeroed,
                        t.cut_info().n_elements(),
                        p.out_type
                    )?;
                }
            }
            if let Some(r) = &t.refit {
                let mut how = Vec::new();
                if r.channels {
                    how.push("kept columns by least squares");
                }
                if r.masked {
                    how.push("kept weights by SparseGPT's update");
                }
                writeln!(
                    f,
                    "  {:<36} {:<6} refit {} [{}.in_outer]",
                    t.info.name,
                    "",
                    how.join(", then "),
                    r.matrix
                )?;
            }
        }
        if let Some(r) = &self.refit {
            writeln!(
                f,
                "refit: {} tensors ({}), damp {}",
                r.tensors.len(),
                r.method,
                r.damp
            )?;
        }
        let z = self.totals();
        writeln!(
            f,
            "total: zero {} of {} weights in pruned tensors ({:.2}%)",
            z.zeroed,
            z.weights,
            100.0 * z.sparsity()
        )
    }
}
