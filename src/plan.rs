//! Deciding, before anything is written, what happens to every tensor.
//!
//! `make_plan` turns the user's options, the model and the imatrix into a [`Plan`]: per tensor
//! either a byte copy or a pruning step with its score rule, comparison groups, output type and
//! the exact number of weights it will zero. Every check that can fail on the inputs' shapes or
//! statistics (missing or mis-sized imatrix entries, N:M divisibility, non-finite statistics,
//! types that cannot be dequantized, DaSS on a model without a gate) fails here, early.

use std::collections::BTreeSet;
use std::fmt;

use regex::Regex;

use crate::dequant::can_dequantize;
use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use crate::gguf::split::TensorRef;
use crate::gguf::{MetadataEntry, TensorInfo, TensorSpec, Value, ValueType};
use crate::imatrix::Imatrix;
use crate::kernels::{zero_count, Axis, Pattern};
use crate::roles::{classify, Role, TensorRole};
use crate::source::Source;

/// The pruning method (method.md "Scores").
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
}

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

/// The type pruned tensors are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutType {
    /// Float tensors keep their type; quantized ones become F16.
    Auto,
    F32,
    F16,
    Bf16,
}

/// Everything the user chose.
#[derive(Debug, Clone)]
pub struct Options {
    pub method: Method,
    pub pattern: Pattern,
    /// Exponent on the down-projection activation norm in DaSS (method.md: `alpha`).
    pub alpha: f32,
    pub scope: Scope,
    /// When non-empty, only tensors matching one of these are pruned.
    pub include: Vec<Regex>,
    /// Tensors matching one of these are never pruned.
    pub exclude: Vec<Regex>,
    pub outtype: OutType,
}

/// How a pruned tensor's weights are scaled before ranking: `score = |w| * factor`.
#[derive(Debug, Clone, PartialEq)]
pub enum ScoreRule {
    /// `factor = 1`.
    Magnitude,
    /// `factor[c] = sqrt(v_entry[c])` per input column (Wanda).
    Wanda { entry: String },
    /// `factor[r] = v_down[r] ^ (alpha/2)` per output row, from the paired down projection.
    Dass { down_entry: String, alpha: f32 },
}

impl ScoreRule {
    /// A short name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            ScoreRule::Magnitude => "magnitude",
            ScoreRule::Wanda { .. } => "wanda",
            ScoreRule::Dass { .. } => "dass",
        }
    }

    /// The imatrix entry the rule reads, if any.
    pub fn entry(&self) -> Option<&str> {
        match self {
            ScoreRule::Magnitude => None,
            ScoreRule::Wanda { entry } => Some(entry),
            ScoreRule::Dass { down_entry, .. } => Some(down_entry),
        }
    }
}

/// How one tensor is pruned.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneStep {
    pub role: Role,
    pub score: ScoreRule,
    pub axis: Axis,
    pub pattern: Pattern,
    /// Independent matrices in the tensor: experts, or the two halves of phi3's fused
    /// gate+up under DaSS. Each is `rows × cols`, stored one after the other.
    pub matrices: usize,
    pub rows: usize,
    pub cols: usize,
    /// Whether every matrix uses the same imatrix vector (phi3's halves) or its own (experts).
    pub shared_statistics: bool,
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
    pub info: TensorInfo,
    pub action: Action,
}

impl TensorPlan {
    /// The tensor as it will be written.
    pub fn output_spec(&self) -> TensorSpec {
        let mut spec = TensorSpec::from(&self.info);
        if let Action::Prune(step) = &self.action {
            spec.ty = step.out_type;
        }
        spec
    }
}

/// The whole plan: every tensor in file order, and the output metadata.
#[derive(Debug, Clone)]
pub struct Plan {
    pub tensors: Vec<TensorPlan>,
    pub metadata: Vec<MetadataEntry>,
    pub options_summary: OptionsSummary,
}

/// The options as recorded in reports and metadata.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OptionsSummary {
    pub method: &'static str,
    pub pattern: String,
    pub sparsity: f64,
    pub alpha: Option<f32>,
    pub scope: &'static str,
    /// For N:M: the direction groups run in on gate/up and on the other tensors.
    pub nm_orientation_gate_up: Option<&'static str>,
    pub nm_orientation_other: Option<&'static str>,
}

impl Plan {
    /// Weights that will be zeroed, and weights in pruned tensors.
    pub fn totals(&self) -> (u64, u64) {
        self.tensors
            .iter()
            .filter_map(|t| match &t.action {
                Action::Prune(s) => Some((s.zeroed, t.info.n_elements())),
                Action::Copy => None,
            })
            .fold((0, 0), |(z, n), (a, b)| (z + a, n + b))
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
pub fn make_plan(
    model: &Source,
    imatrix: Option<(&Imatrix, &str)>,
    opts: &Options,
) -> Result<Plan> {
    check_options(opts)?;
    let arch = model
        .get("general.architecture")
        .ok_or_else(|| Error::MissingKey("general.architecture".into()))?
        .as_str()?;
    let tensors: Vec<(TensorRef, &TensorInfo)> = model.tensors();
    let names: BTreeSet<&str> = tensors.iter().map(|(_, t)| t.name.as_str()).collect();

    let mut plans = Vec::with_capacity(tensors.len());
    for (source, info) in &tensors {
        let role = classify(&arch, &info.name);
        let action = if selected(&role, &info.name, opts) {
            Action::Prune(plan_tensor(
                &arch,
                info,
                &role,
                &names,
                imatrix.map(|i| i.0),
                opts,
            )?)
        } else {
            Action::Copy
        };
        plans.push(TensorPlan {
            source: *source,
            info: (*info).clone(),
            action,
        });
    }
    if opts.method != Method::Magnitude && imatrix.is_none() {
        return Err(Error::Plan(format!(
            "--method {} needs activation statistics: pass --imatrix FILE",
            opts.method.name()
        )));
    }
    let summary = summarise(opts);
    let mut plan = Plan {
        tensors: plans,
        metadata: Vec::new(),
        options_summary: summary,
    };
    plan.metadata = output_metadata(model, imatrix, &plan)?;
    Ok(plan)
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
                action: Action::Copy,
            })
            .collect(),
        metadata: model.metadata().to_vec(),
        options_summary: OptionsSummary {
            method: "none",
            pattern: "none".into(),
            sparsity: 0.0,
            alpha: None,
            scope: "none",
            nm_orientation_gate_up: None,
            nm_orientation_other: None,
        },
    }
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
    if !opts.alpha.is_finite() || opts.alpha < 0.0 {
        return Err(Error::Plan(format!(
            "alpha {} must be a finite number >= 0",
            opts.alpha
        )));
    }
    Ok(())
}

fn selected(role: &TensorRole, name: &str, opts: &Options) -> bool {
    let in_scope = role.role.is_ffn() || (opts.scope == Scope::All && role.role.is_attention());
    in_scope
        && (opts.include.is_empty() || opts.include.iter().any(|r| r.is_match(name)))
        && !opts.exclude.iter().any(|r| r.is_match(name))
}

fn plan_tensor(
    arch: &str,
    info: &TensorInfo,
    role: &TensorRole,
    names: &BTreeSet<&str>,
    imatrix: Option<&Imatrix>,
    opts: &Options,
) -> Result<PruneStep> {
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
    let (cols, rows, n_mat) = (ne[0] as usize, ne[1] as usize, ne[2] as usize);

    let dass_here = opts.method == Method::Dass && role.role.is_glu_input_side();
    if opts.method == Method::Dass && matches!(role.role, Role::FfnUp) {
        // A lone up projection (no gate in its block) is a non-GLU feed-forward.
        let gate = format!(
            "blk.{}.ffn_gate{}.weight",
            role.block.unwrap_or(0),
            role.variant
        );
        if !names.contains(gate.as_str()) {
            return Err(Error::Plan(format!(
                "DaSS needs a gated (GLU) feed-forward, but '{}' has no '{gate}' beside it \
                 (architecture '{arch}'): use --method wanda or --method magnitude",
                info.name
            )));
        }
    }

    let (score, axis, matrices, rows, shared) = if opts.method == Method::Magnitude {
        (ScoreRule::Magnitude, Axis::Row, n_mat, rows, false)
    } else if dass_here {
        let down = role.down_projection().unwrap_or_default();
        let (m, r, shared) = if role.role == Role::FfnGateUpFused {
            if rows % 2 != 0 {
                return Err(tensor_err(format!(
                    "fused gate+up has {rows} rows, which is not even"
                )));
            }
            (2, rows / 2, true)
        } else {
            (n_mat, rows, false)
        };
        let rule = ScoreRule::Dass {
            down_entry: down,
            alpha: opts.alpha,
        };
        (rule, Axis::Column, m, r, shared)
    } else {
        let rule = ScoreRule::Wanda {
            entry: info.name.clone(),
        };
        (rule, Axis::Row, n_mat, rows, false)
    };

    if let (Some(entry), Some(im)) = (score.entry(), imatrix) {
        // DaSS reads one value per output row; Wanda one per input column.
        let len = if matches!(score, ScoreRule::Dass { .. }) {
            rows
        } else {
            cols
        };
        let wanted = if shared { 1 } else { matrices };
        check_statistics(im, entry, &info.name, len, wanted)?;
    }

    let grouped = match axis {
        Axis::Row => cols,
        Axis::Column => rows,
    };
    if let Pattern::NM { n, m } = opts.pattern {
        if grouped % m != 0 {
            return Err(tensor_err(format!(
                "{n}:{m} groups run along a dimension of {grouped}, which is not a multiple of {m}"
            )));
        }
    }
    let out_type = match (opts.outtype, info.ty) {
        (OutType::Auto, t) if !t.is_quantized() => t,
        (OutType::Auto, _) | (OutType::F16, _) => GgmlType::F16,
        (OutType::F32, _) => GgmlType::F32,
        (OutType::Bf16, _) => GgmlType::BF16,
    };
    let zeroed = zero_count(rows, cols, axis, opts.pattern) * matrices as u64;
    Ok(PruneStep {
        role: role.role,
        score,
        axis,
        pattern: opts.pattern,
        matrices,
        rows,
        cols,
        shared_statistics: shared,
        out_type,
        zeroed,
    })
}

/// The imatrix entry `entry` must exist, hold `matrices` vectors of `len` values, and be
/// finite and non-negative.
fn check_statistics(
    im: &Imatrix,
    entry: &str,
    tensor: &str,
    len: usize,
    matrices: usize,
) -> Result<()> {
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
    Ok(())
}

fn summarise(opts: &Options) -> OptionsSummary {
    let nm = matches!(opts.pattern, Pattern::NM { .. });
    OptionsSummary {
        method: opts.method.name(),
        pattern: pattern_name(opts.pattern),
        sparsity: pattern_sparsity(opts.pattern),
        alpha: (opts.method == Method::Dass).then_some(opts.alpha),
        scope: opts.scope.name(),
        nm_orientation_gate_up: nm.then_some(if opts.method == Method::Dass {
            "output"
        } else {
            "input"
        }),
        nm_orientation_other: nm.then_some("input"),
    }
}

/// `llama_ftype` for a file whose weights are mostly of type `t`.
fn ftype_of(t: GgmlType) -> Option<u32> {
    Some(match t {
        GgmlType::F32 => 0,
        GgmlType::F16 => 1,
        GgmlType::Q4_0 => 2,
        GgmlType::Q4_1 => 3,
        GgmlType::Q8_0 => 7,
        GgmlType::Q5_0 => 8,
        GgmlType::Q5_1 => 9,
        GgmlType::Q2_K => 10,
        GgmlType::Q3_K => 12,
        GgmlType::Q4_K => 15,
        GgmlType::Q5_K => 17,
        GgmlType::Q6_K => 18,
        GgmlType::BF16 => 32,
        _ => return None,
    })
}

/// The input's metadata (the first shard's, less the split keys), `general.file_type`
/// updated when tensor types change, and the `dass.*` keys, typed as gguf-py types them.
fn output_metadata(
    model: &Source,
    imatrix: Option<(&Imatrix, &str)>,
    plan: &Plan,
) -> Result<Vec<MetadataEntry>> {
    let mut out: Vec<MetadataEntry> = model
        .metadata()
        .iter()
        .filter(|kv| !kv.key.starts_with("split.") && !kv.key.starts_with("dass."))
        .cloned()
        .collect();

    let types_change = plan
        .tensors
        .iter()
        .any(|t| matches!(&t.action, Action::Prune(s) if s.out_type != t.info.ty));
    if types_change {
        // The file type names the type holding most weight elements (2-D and larger tensors).
        let mut by_type: std::collections::BTreeMap<GgmlType, u64> = Default::default();
        for t in &plan.tensors {
            if t.info.dims.len() >= 2 {
                *by_type.entry(t.output_spec().ty).or_default() += t.info.n_elements();
            }
        }
        if let Some(ftype) = by_type
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .and_then(|(t, _)| ftype_of(t))
        {
            set(&mut out, "general.file_type", Value::U32(ftype))?;
        }
    }

    let s = &plan.options_summary;
    let (zeroed, total) = plan.totals();
    let achieved = if total == 0 {
        0.0
    } else {
        zeroed as f64 / total as f64
    };
    set(
        &mut out,
        "dass.version",
        Value::string(env!("CARGO_PKG_VERSION")),
    )?;
    set(&mut out, "dass.method", Value::string(s.method))?;
    set(&mut out, "dass.pattern", Value::string(&s.pattern))?;
    set(&mut out, "dass.sparsity", Value::F32(s.sparsity as f32))?;
    if let Some(alpha) = s.alpha {
        set(&mut out, "dass.alpha", Value::F32(alpha))?;
    }
    set(&mut out, "dass.scope", Value::string(s.scope))?;
    if let (Some(g), Some(o)) = (s.nm_orientation_gate_up, s.nm_orientation_other) {
        set(&mut out, "dass.nm_groups.gate_up", Value::string(g))?;
        set(&mut out, "dass.nm_groups.other", Value::string(o))?;
    }
    let pruned = plan
        .tensors
        .iter()
        .filter(|t| matches!(t.action, Action::Prune(_)))
        .count();
    set(&mut out, "dass.pruned_tensors", Value::U32(pruned as u32))?;
    set(
        &mut out,
        "dass.sparsity_achieved",
        Value::F32(achieved as f32),
    )?;
    if let Some((im, file)) = imatrix {
        set(&mut out, "dass.imatrix.file", Value::string(file))?;
        let datasets = im.datasets.iter().map(|d| Value::string(d)).collect();
        set(
            &mut out,
            "dass.imatrix.datasets",
            Value::Array(ValueType::String, datasets),
        )?;
        if let Some(c) = im.chunk_count {
            set(
                &mut out,
                "dass.imatrix.chunk_count",
                Value::U32(c.min(u32::MAX as u64) as u32),
            )?;
        }
    }
    Ok(out)
}

/// Replaces `key`'s value in place, or appends it.
fn set(meta: &mut Vec<MetadataEntry>, key: &str, value: Value) -> Result<()> {
    let entry = MetadataEntry::new(key, &value)?;
    match meta.iter_mut().find(|kv| kv.key == key) {
        Some(kv) => *kv = entry,
        None => meta.push(entry),
    }
    Ok(())
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
        for t in &self.tensors {
            match &t.action {
                Action::Copy => writeln!(f, "  {:<36} {:<6} copy", t.info.name, t.info.ty)?,
                Action::Prune(p) => {
                    let groups = match (p.axis, p.pattern) {
                        (Axis::Row, Pattern::Unstructured { .. }) => "per output row".to_string(),
                        (Axis::Column, Pattern::Unstructured { .. }) => {
                            "per input column".to_string()
                        }
                        (Axis::Row, Pattern::NM { n, m }) => format!("{n}:{m} along each row"),
                        (Axis::Column, Pattern::NM { n, m }) => format!("{n}:{m} down each column"),
                    };
                    let stats = p
                        .score
                        .entry()
                        .map(|e| format!(" [{e}]"))
                        .unwrap_or_default();
                    let mats = if p.matrices > 1 {
                        format!(", {} matrices", p.matrices)
                    } else {
                        String::new()
                    };
                    writeln!(
                        f,
                        "  {:<36} {:<6} prune {} ({}) score {}{stats}, groups {groups}{mats}, zero {} of {}, write {}",
                        t.info.name,
                        t.info.ty,
                        p.role,
                        s.method,
                        p.score.name(),
                        p.zeroed,
                        t.info.n_elements(),
                        p.out_type
                    )?;
                }
            }
        }
        let (z, n) = self.totals();
        writeln!(
            f,
            "total: zero {z} of {n} weights in pruned tensors ({:.2}%)",
            if n == 0 {
                0.0
            } else {
                100.0 * z as f64 / n as f64
            }
        )
    }
}
