//! `verify`: reads a file `convert` wrote and checks what its `dass.*` metadata claims
//! (docs/method.md "Checking an output: verify"; the exit codes and the command line are in
//! src/main.rs).
//!
//! - The layout: the reader parses it (tensor data in bounds, aligned, contiguous; every shard
//!   of a split model). A file it refuses is an error, not a verdict.
//! - Which tensors were pruned: `dass.scope`, `dass.include` and `dass.exclude` select them by
//!   role and name, as convert did; `dass.pruned_tensors` must be their number.
//! - Every pruned tensor: its groups, as the recorded method forms them ([`groups`]), each hold
//!   at least their quota of zeros; with the input, every weight that differs from the input's
//!   (converted to the output type) is zero and no group has more changes than its quota.
//!   `dass.sparsity_achieved` must be the sum of the quotas over the pruned weights.
//! - Removed channels: the widths `dass.ffn.kept` and `{arch}.feed_forward_length` declare are
//!   the shapes of every block's gate, up and down; with the input, the kept rows and columns
//!   are the input's ([`channels`]).
//! - With the input, every other tensor is byte for byte the input's (its kept channels, when
//!   cut), the tensors are the same in the same order, and the metadata is the input's but for
//!   what convert changes (`split.*` dropped, `dass.*` replaced, `general.file_type`, the
//!   feed-forward widths and, for `deci`, the renamed keys and per-layer head counts).
//! - Refitted tensors (`dass.refit.tensors`): every weight may differ from the input's, so they
//!   are checked for everything but that (shape, type, zero quotas); the list must be exactly
//!   what `dass.refit.method` refits (every pruned tensor for `sparsegpt`, every cut
//!   `ffn_down` for `least-squares`). Kept channels are found from the tensors that were not
//!   refitted; a block whose gate, up and down were all refitted cannot be matched, and its
//!   tensors are compared by shape only.
//!
//! One tensor at a time: memory stays near the largest tensor (its output and its input as
//! 32-bit values; one expert at a time for MoE).

mod channels;
mod claims;
mod groups;
mod values;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::channels::Cut;
use crate::error::{Error, Result};
use crate::execute::Progress;
use crate::ggml_type::GgmlType;
use crate::gguf::reader::in_file;
use crate::gguf::split::TensorRef;
use crate::gguf::{GgufModel, MetadataEntry, TensorInfo, Value, ValueType};
use crate::plan::selected;
use crate::roles::{classify, Role};
use crate::source::Source;

use claims::{pattern_label, Claims, Pruning};
use values::{bits, bytes_of, cut_bits, cut_dims, is_float, magnitude_mask, to_f32};

/// Violations listed in a verdict (all are counted).
const MAX_LISTED: usize = 1000;
/// Violations listed per tensor (a broken tensor can break every one of its groups).
const LISTED_PER_TENSOR: usize = 10;

/// One thing the file claims that is not so.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    /// The tensor, or `None` for the file's metadata.
    pub tensor: Option<String>,
    /// Where: a metadata key, or a place in the tensor (expert, row, column, group).
    pub at: String,
    pub expected: String,
    pub found: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tensor {
            Some(t) => write!(f, "tensor '{t}', {}", self.at)?,
            None => write!(f, "{}", self.at)?,
        }
        write!(f, ": expected {}, found {}", self.expected, self.found)
    }
}

/// Violations found so far: every one counted, the first few listed.
#[derive(Debug)]
pub struct Violations {
    listed: Vec<Violation>,
    total: u64,
    limit: usize,
}

impl Violations {
    fn new(limit: usize) -> Self {
        Violations {
            listed: Vec::new(),
            total: 0,
            limit,
        }
    }

    fn push(&mut self, v: Violation) {
        self.total += 1;
        if self.listed.len() < self.limit {
            self.listed.push(v);
        }
    }

    /// A metadata key that says what is not so.
    fn metadata(&mut self, key: &str, expected: &str, found: &str) {
        self.push(Violation {
            tensor: None,
            at: format!("metadata key '{key}'"),
            expected: expected.into(),
            found: found.into(),
        });
    }

    /// A tensor that is not what the metadata says.
    fn tensor(&mut self, tensor: &str, at: &str, expected: &str, found: &str) {
        self.push(Violation {
            tensor: Some(tensor.into()),
            at: at.into(),
            expected: expected.into(),
            found: found.into(),
        });
    }

    fn merge(&mut self, other: Violations) {
        self.total += other.total;
        let room = self.limit.saturating_sub(self.listed.len());
        self.listed.extend(other.listed.into_iter().take(room));
    }
}

/// What `verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub file: String,
    /// The input compared with, when given.
    pub against: Option<String>,
    /// What the metadata claims, in one line (`method dass, pattern 2:4, scope ffn`).
    pub claims: String,
    pub tensors_checked: usize,
    pub pruned_tensors: usize,
    pub groups_checked: u64,
    /// Weights in the pruned tensors, the zeros their quotas require, and the zeros found.
    pub pruned_weights: u64,
    pub zeros_required: u64,
    pub zeros_found: u64,
    /// Weights of the pruned tensors that differ from the input's (with the input).
    pub weights_changed: Option<u64>,
    /// Tensors compared byte for byte (or channel by channel) with the input.
    pub untouched_compared: usize,
    /// Blocks whose channel widths were checked.
    pub channel_blocks: usize,
    /// Tensors refitted (`dass.refit.tensors`): checked for everything but their values.
    pub refitted_tensors: usize,
    /// Blocks whose kept channels could not be found against the input because every one of
    /// their channel tensors was refitted (their tensors were compared by shape only).
    pub channel_blocks_unmatched: usize,
    /// How many violations were found (at most the first 1000 are listed).
    pub violations: u64,
    pub listed: Vec<Violation>,
}

impl Verdict {
    /// True when the file is what its metadata says.
    pub fn ok(&self) -> bool {
        self.violations == 0
    }

    /// The verdict as text, or as JSON.
    pub fn render(&self, json: bool) -> Result<String> {
        if json {
            serde_json::to_string_pretty(self)
                .map(|s| s + "\n")
                .map_err(|e| Error::Usage(format!("encoding the verdict: {e}")))
        } else {
            Ok(self.to_string())
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "verify {}", self.file)?;
        if let Some(a) = &self.against {
            write!(f, " against {a}")?;
        }
        writeln!(f)?;
        writeln!(f, "  claims: {}", self.claims)?;
        writeln!(
            f,
            "  tensors checked {}, pruned {}, groups checked {}, zeros {} (at least {} required) of {} weights",
            self.tensors_checked,
            self.pruned_tensors,
            self.groups_checked,
            self.zeros_found,
            self.zeros_required,
            self.pruned_weights
        )?;
        if let Some(c) = self.weights_changed {
            writeln!(
                f,
                "  against the input: {c} weights changed in the pruned tensors{}, {} other tensors compared",
                if self.refitted_tensors > 0 {
                    " not refitted"
                } else {
                    ""
                },
                self.untouched_compared
            )?;
        }
        if self.channel_blocks > 0 {
            writeln!(
                f,
                "  channel widths checked in {} blocks",
                self.channel_blocks
            )?;
        }
        if self.refitted_tensors > 0 {
            writeln!(
                f,
                "  {} refitted tensors: shapes, types and zero quotas checked, not their values",
                self.refitted_tensors
            )?;
        }
        if self.channel_blocks_unmatched > 0 {
            writeln!(
                f,
                "  {} blocks had gate, up and down refitted: their kept channels cannot be \
                 found in the input, so their tensors were compared by shape only",
                self.channel_blocks_unmatched
            )?;
        }
        for v in &self.listed {
            writeln!(f, "  violation: {v}")?;
        }
        if self.violations as usize > self.listed.len() {
            writeln!(
                f,
                "  ... and {} more",
                self.violations as usize - self.listed.len()
            )?;
        }
        if self.ok() {
            writeln!(f, "OK: no violations")
        } else {
            writeln!(f, "FAILED: {} violations", self.violations)
        }
    }
}

/// Sums over the pruned tensors.
#[derive(Debug, Default)]
struct Tally {
    groups: u64,
    weights: u64,
    required: u64,
    zeros: u64,
    changed: u64,
}

/// Checks the file at `path` (any shard of a split model) against its `dass.*` metadata and,
/// when given, against the input it was made from. Errors are for files that cannot be read
/// or hold no `dass.*` metadata; everything else the file gets wrong is in the verdict.
pub fn verify(path: &Path, against: Option<&Source>, progress: &dyn Progress) -> Result<Verdict> {
    let model = GgufModel::open(path)?;
    let mut v = Violations::new(MAX_LISTED);
    let claims = claims::read(model.metadata(), &mut v).map_err(|e| in_file(path, e))?;
    let arch = match model.get("general.architecture").map(|kv| kv.as_str()) {
        Some(Ok(a)) => a,
        _ => {
            v.metadata("general.architecture", "a string", "absent or not a string");
            String::new()
        }
    };

    let mut pruned = BTreeSet::new();
    if let Some(p) = &claims.pruning {
        for (_, t) in model.tensors() {
            let role = classify(&arch, &t.name);
            if selected(&role, &t.name, p.scope, &p.include, &p.exclude) {
                pruned.insert(t.name.clone());
            }
        }
    }

    let blocks = channels::blocks(&model);
    let refitted = check_refit_list(&model, &claims, &pruned, &blocks, &mut v);
    let mut cuts = BTreeMap::new();
    let mut failed_blocks = BTreeSet::new();
    let mut unmatched = BTreeSet::new();
    if let Some(c) = &claims.channels {
        channels::check_widths(&model, &arch, c, &blocks, &mut v);
        if let Some(src) = against {
            let found =
                channels::infer_cuts(&model, src, &arch, &blocks, &pruned, &refitted, &mut v)?;
            (cuts, failed_blocks, unmatched) = found;
        }
    }

    let inputs: HashMap<String, (TensorRef, TensorInfo)> = against
        .map(|s| {
            s.tensors()
                .into_iter()
                .map(|(r, t)| (t.name.clone(), (r, t.clone())))
                .collect()
        })
        .unwrap_or_default();
    if let Some(src) = against {
        compare_tensor_list(src, &model, &mut v);
        compare_metadata(src, &model, &claims, &arch, &mut v);
    }

    let total: u64 = model.tensors().map(|(_, t)| t.n_bytes).sum();
    progress.phase("verifying", total);
    let mut tally = Tally::default();
    let mut untouched = 0;
    let mut checked = 0;
    for (r, t) in model.tensors() {
        progress.tensor(&t.name);
        checked += 1;
        let data = model.tensor_data(r);
        let block_failed =
            block_of(&t.name).is_some_and(|b| failed_blocks.contains(&b) || unmatched.contains(&b));
        let is_refitted = refitted.contains(&t.name);
        let input = match (against, inputs.get(&t.name)) {
            (Some(src), Some((ir, info))) if !block_failed => Some(Input {
                info,
                data: src.tensor_data(*ir)?,
                cut: cuts.get(&t.name),
            }),
            _ => None,
        };
        let mut tv = Violations::new(LISTED_PER_TENSOR);
        match (&claims.pruning, pruned.contains(&t.name)) {
            (Some(p), true) => {
                let role = classify(&arch, &t.name).role;
                let how = Checked {
                    input: input.as_ref(),
                    refitted: is_refitted,
                };
                check_pruned(t, data, role, p, how, &mut tally, &mut tv)?;
            }
            _ if is_refitted => check_refitted(t, input.as_ref(), &mut tv),
            _ => {
                if let Some(input) = &input {
                    check_untouched(t, data, input, &mut tv)?;
                    untouched += 1;
                }
            }
        }
        v.merge(tv);
        progress.advance(t.n_bytes);
    }

    if let Some(p) = &claims.pruning {
        if p.pruned_tensors as usize != pruned.len() {
            v.metadata(
                "dass.pruned_tensors",
                &format!(
                    "{} (the tensors dass.scope{} select)",
                    pruned.len(),
                    if p.include.is_empty() && p.exclude.is_empty() {
                        ""
                    } else {
                        ", dass.include and dass.exclude"
                    }
                ),
                &p.pruned_tensors.to_string(),
            );
        }
        let achieved = if tally.weights == 0 {
            0.0
        } else {
            (tally.required as f64 / tally.weights as f64) as f32
        };
        if achieved.to_bits() != p.sparsity_achieved.to_bits() {
            v.metadata(
                "dass.sparsity_achieved",
                &format!(
                    "{achieved} ({} quota zeros / {} weights of the pruned tensors)",
                    tally.required, tally.weights
                ),
                &p.sparsity_achieved.to_string(),
            );
        }
    }

    Ok(Verdict {
        file: path.display().to_string(),
        against: against.map(|s| s.describe().join(", ")),
        claims: describe_claims(&claims),
        tensors_checked: checked,
        pruned_tensors: pruned.len(),
        groups_checked: tally.groups,
        pruned_weights: tally.weights,
        zeros_required: tally.required,
        zeros_found: tally.zeros,
        weights_changed: against.map(|_| tally.changed),
        untouched_compared: untouched,
        channel_blocks: if claims.channels.is_some() {
            blocks.len()
        } else {
            0
        },
        refitted_tensors: refitted.len(),
        channel_blocks_unmatched: unmatched.len(),
        violations: v.total,
        listed: v.listed,
    })
}

fn describe_claims(c: &Claims) -> String {
    let mut parts = Vec::new();
    if let Some(p) = &c.pruning {
        let mut s = format!(
            "method {}, pattern {}, scope {}",
            p.method.name(),
            pattern_label(p.pattern),
            p.scope.name()
        );
        for (what, list) in [("include", &p.include), ("exclude", &p.exclude)] {
            if !list.is_empty() {
                let l: Vec<&str> = list.iter().map(|r| r.as_str()).collect();
                s += &format!(", {what} {l:?}");
            }
        }
        parts.push(s);
    }
    if let Some(ch) = &c.channels {
        parts.push(format!(
            "channels {} of {} kept ({})",
            if ch.global {
                format!("{:?}", ch.kept)
            } else {
                ch.kept.first().map_or("?".into(), |w| w.to_string())
            },
            ch.original_length,
            if ch.global { "global" } else { "uniform" }
        ));
    }
    if let Some(r) = &c.refit {
        parts.push(format!(
            "refit {} of {} tensors",
            method_name(r),
            r.tensors.len()
        ));
    }
    if parts.is_empty() {
        "unreadable (see the violations)".into()
    } else {
        parts.join("; ")
    }
}

/// The block number of `blk.N.*`.
fn block_of(name: &str) -> Option<u32> {
    name.strip_prefix("blk.")?.split_once('.')?.0.parse().ok()
}

/// A tensor's namesake in the input, and how the channels cut it.
struct Input<'a> {
    info: &'a TensorInfo,
    data: Cow<'a, [u8]>,
    cut: Option<&'a Cut>,
}

impl Input<'_> {
    /// The dims the output must have.
    fn dims(&self) -> Vec<u64> {
        match self.cut {
            Some(c) => cut_dims(self.info, c),
            None => self.info.dims.clone(),
        }
    }
}

/// How a pruned tensor is checked: against its namesake in the input, when there is one, and
/// whether its kept weights were refitted (then they may all differ from the input's).
#[derive(Clone, Copy)]
struct Checked<'a, 'b> {
    input: Option<&'a Input<'b>>,
    refitted: bool,
}

/// Checks one pruned tensor group by group.
fn check_pruned(
    t: &TensorInfo,
    data: &[u8],
    role: Role,
    p: &Pruning,
    how: Checked<'_, '_>,
    tally: &mut Tally,
    v: &mut Violations,
) -> Result<()> {
    let input = how.input;
    let name = &t.name;
    if let Role::UnsupportedFfn(what) = role {
        v.tensor(
            name,
            "selection",
            "no tensor convert refuses to prune in the selection",
            &format!("{what}, which convert refuses unless excluded"),
        );
        return Ok(());
    }
    let Some((kind, halves)) = groups::grouping(p.method, role, p.pattern) else {
        v.tensor(
            name,
            "groups",
            &format!("a pattern {} can apply", p.method.name()),
            &pattern_label(p.pattern),
        );
        return Ok(());
    };
    if !is_float(t.ty) {
        v.tensor(
            name,
            "type",
            "F32, F16 or BF16 (pruned tensors are written as floats)",
            t.ty.name(),
        );
        return Ok(());
    }
    let ne = t.ne();
    let experts = role.is_experts();
    let shape_ok = ne[3] == 1 && (experts || ne[2] == 1);
    if !shape_ok {
        v.tensor(
            name,
            "shape",
            if experts {
                "a 3-D tensor (one matrix per expert)"
            } else {
                "a 2-D matrix"
            },
            &format!("dims {:?}", t.dims),
        );
        return Ok(());
    }
    let (matrices, rows, cols) = if experts {
        (ne[2] as usize, ne[1] as usize, ne[0] as usize)
    } else if halves {
        if ne[1] % 2 != 0 {
            v.tensor(
                name,
                "shape",
                "an even number of rows (fused gate and up)",
                &format!("dims {:?}", t.dims),
            );
            return Ok(());
        }
        (2, ne[1] as usize / 2, ne[0] as usize)
    } else {
        (1, ne[1] as usize, ne[0] as usize)
    };
    let layout = match kind.layout(rows, cols, p.pattern) {
        Ok(l) => l,
        Err(dim) => {
            v.tensor(
                name,
                "groups",
                &format!(
                    "{} groups along a dimension that is a multiple of M",
                    pattern_label(p.pattern)
                ),
                &format!("a dimension of {dim}"),
            );
            return Ok(());
        }
    };
    let glen = layout.group_len(rows, cols);
    let quota = groups::quota(glen, p.pattern);
    let per_matrix = rows * cols;

    // The input as the output type: cut tensors whole, others a matrix at a time.
    let input = match input {
        Some(i) if i.dims() != t.dims => {
            v.tensor(
                name,
                "shape",
                &format!("dims {:?} (the input's)", i.dims()),
                &format!("{:?}", t.dims),
            );
            None
        }
        other => other,
    };
    // A refitted tensor's weights all may differ: only its zeros are counted.
    let input = input.filter(|_| !how.refitted);
    let whole_cut = match input {
        Some(Input {
            info,
            data,
            cut: Some(cut),
        }) => Some(cut_bits(info, data, cut, t.ty)?),
        _ => None,
    };
    let mask = magnitude_mask(t.ty);
    let matrix_bytes = bytes_of(t.ty, per_matrix as u64);
    for k in 0..matrices {
        let out = bits(
            name,
            t.ty,
            &data[k * matrix_bytes..(k + 1) * matrix_bytes],
            t.ty,
        )?;
        let expected: Option<Cow<'_, [u32]>> = match (&whole_cut, input) {
            (Some(w), _) => Some(Cow::Borrowed(&w[k * per_matrix..(k + 1) * per_matrix])),
            (None, Some(i)) => {
                let b = bytes_of(i.info.ty, per_matrix as u64);
                Some(Cow::Owned(bits(
                    name,
                    i.info.ty,
                    &i.data[k * b..(k + 1) * b],
                    t.ty,
                )?))
            }
            (None, None) => None,
        };
        let counts = groups::count(&out, expected.as_deref(), rows, cols, layout, mask);
        let place = |g: usize| -> String {
            let inner = layout.describe(g, rows, cols);
            if experts {
                format!("expert {k}, {inner}")
            } else if halves {
                let half = if k == 0 { "gate" } else { "up" };
                format!(
                    "{half} half (rows {}..{}), {inner}",
                    k * rows,
                    (k + 1) * rows
                )
            } else {
                inner
            }
        };
        for (g, c) in counts.iter().enumerate() {
            tally.zeros += c.zeros;
            tally.changed += c.changed;
            if c.zeros < quota {
                v.tensor(
                    name,
                    &format!("{}, a group of {glen}", place(g)),
                    &format!("at least {quota} zeros"),
                    &format!("{} zeros", c.zeros),
                );
            }
            if c.changed > quota {
                v.tensor(
                    name,
                    &format!("{}, a group of {glen}", place(g)),
                    &format!("at most {quota} weights changed from the input"),
                    &format!("{} changed", c.changed),
                );
            }
            if c.changed_nonzero > 0 {
                if let Some(exp) = &expected {
                    let (r, col) = layout
                        .members(g, rows, cols)
                        .find(|&(r, col)| {
                            let i = r * cols + col;
                            out[i] != exp[i] && out[i] & mask != 0
                        })
                        .unwrap_or((0, 0));
                    let i = r * cols + col;
                    v.tensor(
                        name,
                        &format!("{}, weight at row {r}, column {col}", place(g)),
                        &format!(
                            "the input's value {} or 0 (a changed weight must be zero)",
                            to_f32(t.ty, exp[i])
                        ),
                        &format!(
                            "{} ({} changed weights of this group are not zero)",
                            to_f32(t.ty, out[i]),
                            c.changed_nonzero
                        ),
                    );
                }
            }
        }
        tally.groups += counts.len() as u64;
        tally.required += quota * counts.len() as u64;
        tally.weights += per_matrix as u64;
    }
    Ok(())
}

/// A refitted tensor that is not pruned (a cut `ffn_down` whose kept columns were refitted):
/// written as a float type, in the input's shape cut to the kept channels when they are known.
fn check_refitted(t: &TensorInfo, input: Option<&Input<'_>>, v: &mut Violations) {
    if !is_float(t.ty) {
        v.tensor(
            &t.name,
            "type",
            "F32, F16 or BF16 (refitted tensors are written as floats)",
            t.ty.name(),
        );
    }
    if let Some(input) = input {
        let want = input.dims();
        if want != t.dims {
            v.tensor(
                &t.name,
                "shape",
                &format!("dims {want:?} (the input's, cut to the kept channels)"),
                &format!("{:?}", t.dims),
            );
        }
    }
}

/// The refitted tensors `dass.refit.tensors` lists, checked against what `dass.refit.method`
/// refits: with `sparsegpt` every pruned tensor, with `least-squares` every block's `ffn_down`
/// (channels removed), and nothing else.
fn check_refit_list(
    model: &GgufModel,
    claims: &Claims,
    pruned: &BTreeSet<String>,
    blocks: &BTreeMap<u32, channels::Block>,
    v: &mut Violations,
) -> BTreeSet<String> {
    let Some(r) = &claims.refit else {
        return BTreeSet::new();
    };
    let listed: BTreeSet<String> = r.tensors.iter().cloned().collect();
    if listed.len() != r.tensors.len() {
        v.metadata(
            "dass.refit.tensors",
            "each tensor once",
            "a tensor listed twice",
        );
    }
    if r.sparsegpt && claims.pruning.is_none() {
        v.metadata(
            "dass.refit.method",
            "no sparsegpt (nothing was pruned: there is no dass.method)",
            "sparsegpt",
        );
    }
    if r.least_squares && claims.channels.is_none() {
        v.metadata(
            "dass.refit.method",
            "no least-squares (no channels were removed: there is no dass.ffn.*)",
            "least-squares",
        );
    }
    let mut expected = BTreeSet::new();
    if r.sparsegpt {
        expected.extend(pruned.iter().cloned());
    }
    if r.least_squares && claims.channels.is_some() {
        expected.extend(blocks.values().filter_map(|b| b.down.clone()));
    }
    for name in listed.difference(&expected) {
        let found = if model.find(name).is_some() {
            "a tensor that method does not refit"
        } else {
            "a tensor the file does not have"
        };
        v.metadata(
            "dass.refit.tensors",
            "only the tensors dass.refit.method refits",
            &format!("'{name}', {found}"),
        );
    }
    for name in expected.difference(&listed) {
        v.metadata(
            "dass.refit.tensors",
            &format!(
                "'{name}' (dass.refit.method '{}' refits it)",
                method_name(r)
            ),
            "absent",
        );
    }
    listed
}

fn method_name(r: &claims::Refit) -> &'static str {
    match (r.least_squares, r.sparsegpt) {
        (true, true) => "least-squares,sparsegpt",
        (true, false) => "least-squares",
        _ => "sparsegpt",
    }
}

/// A tensor that is not pruned must be the input's, cut to the kept channels if it was cut.
fn check_untouched(
    t: &TensorInfo,
    data: &[u8],
    input: &Input<'_>,
    v: &mut Violations,
) -> Result<()> {
    let name = &t.name;
    let want_dims = input.dims();
    if want_dims != t.dims {
        v.tensor(
            name,
            "shape",
            &format!("dims {want_dims:?} (the input's)"),
            &format!("{:?}", t.dims),
        );
        return Ok(());
    }
    let cols = t.row_len() as usize;
    match input.cut {
        None => {
            if t.ty != input.info.ty {
                v.tensor(
                    name,
                    "type",
                    &format!("{} (the input's; the tensor is not pruned)", input.info.ty),
                    t.ty.name(),
                );
            } else if data != &input.data[..] {
                let at = data
                    .iter()
                    .zip(input.data.iter())
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                let row_bytes = bytes_of(t.ty, cols as u64).max(1);
                let place = if t.ty.is_quantized() {
                    format!("byte {at} (row {})", at / row_bytes)
                } else {
                    let e = at / t.ty.type_size() as usize;
                    format!(
                        "byte {at}, element {e} (row {}, column {})",
                        e / cols.max(1),
                        e % cols.max(1)
                    )
                };
                v.tensor(
                    name,
                    &place,
                    "the input's bytes (the tensor is not pruned)",
                    "different bytes",
                );
            }
        }
        Some(cut) if !is_float(t.ty) => {
            // Whole rows of a quantized tensor are copied as they are.
            let rows_ok = match cut {
                Cut::Rows(kept) if t.ty == input.info.ty => {
                    let rb = bytes_of(t.ty, cols as u64);
                    kept.iter().enumerate().find(|&(j, &i)| {
                        data.get(j * rb..(j + 1) * rb)
                            != input.data.get(i as usize * rb..(i as usize + 1) * rb)
                    })
                }
                _ => {
                    v.tensor(
                        name,
                        "type",
                        "a float type (a tensor cut by columns is re-encoded)",
                        t.ty.name(),
                    );
                    return Ok(());
                }
            };
            if let Some((j, &i)) = rows_ok {
                v.tensor(
                    name,
                    &format!("row {j}"),
                    &format!("the input's row {i} (a kept channel)"),
                    "different bytes",
                );
            }
        }
        Some(cut) => {
            let want = cut_bits(input.info, &input.data, cut, t.ty)?;
            let got = bits(name, t.ty, data, t.ty)?;
            if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
                let (r, c) = (i / cols.max(1), i % cols.max(1));
                v.tensor(
                    name,
                    &format!("row {r}, column {c}"),
                    &format!("{} (the input's kept channel)", to_f32(t.ty, want[i])),
                    &to_f32(t.ty, got[i]).to_string(),
                );
            }
        }
    }
    Ok(())
}

/// The same tensors, in the same order (convert adds, removes and renames none).
fn compare_tensor_list(input: &Source, model: &GgufModel, v: &mut Violations) {
    let want: Vec<String> = input
        .tensors()
        .iter()
        .map(|(_, t)| t.name.clone())
        .collect();
    let got: Vec<String> = model.tensors().map(|(_, t)| t.name.clone()).collect();
    if want == got {
        return;
    }
    let (w, g): (BTreeSet<&String>, BTreeSet<&String>) =
        (want.iter().collect(), got.iter().collect());
    let missing: Vec<&&String> = w.difference(&g).collect();
    let extra: Vec<&&String> = g.difference(&w).collect();
    let found = if missing.is_empty() && extra.is_empty() {
        "the same tensors in another order".to_string()
    } else {
        format!("missing {missing:?}, extra {extra:?}")
    };
    v.push(Violation {
        tensor: None,
        at: "tensor list".into(),
        expected: format!("the input's {} tensors in its order", want.len()),
        found,
    });
}

/// The input's metadata less what convert changes.
fn compare_metadata(
    input: &Source,
    model: &GgufModel,
    claims: &Claims,
    arch: &str,
    v: &mut Violations,
) {
    let in_meta = input.metadata();
    let in_arch = in_meta
        .iter()
        .find(|kv| kv.key == "general.architecture")
        .and_then(|kv| kv.as_str().ok())
        .unwrap_or_default();
    let global = claims.channels.as_ref().is_some_and(|c| c.global);
    let deci = global && arch == "deci" && in_arch != "deci";
    let prefix = format!("{in_arch}.");
    let rename = |k: &str| -> String {
        match k.strip_prefix(&prefix) {
            Some(rest) if deci => format!("deci.{rest}"),
            _ => k.to_string(),
        }
    };
    let ffn_key = format!("{arch}.feed_forward_length");
    let blocks = claims.channels.as_ref().map_or(0, |c| c.kept.len());
    let want: Vec<(String, &MetadataEntry)> = in_meta
        .iter()
        .filter(|kv| {
            !(kv.key.starts_with("split.")
                || kv.key.starts_with("dass.")
                || kv.key == "general.file_type")
        })
        .map(|kv| (rename(&kv.key), kv))
        .collect();
    let got: Vec<&MetadataEntry> = model
        .metadata()
        .iter()
        .filter(|kv| !(kv.key.starts_with("dass.") || kv.key == "general.file_type"))
        .collect();
    let want_keys: Vec<&str> = want.iter().map(|(k, _)| k.as_str()).collect();
    let got_keys: Vec<&str> = got.iter().map(|kv| kv.key.as_str()).collect();
    if want_keys != got_keys {
        let (w, g): (BTreeSet<&str>, BTreeSet<&str>) = (
            want_keys.iter().copied().collect(),
            got_keys.iter().copied().collect(),
        );
        let missing: Vec<&&str> = w.difference(&g).collect();
        let extra: Vec<&&str> = g.difference(&w).collect();
        v.push(Violation {
            tensor: None,
            at: "metadata keys".into(),
            expected: "the input's keys in its order (less split.*, with dass.* added)".into(),
            found: if missing.is_empty() && extra.is_empty() {
                "the same keys in another order".into()
            } else {
                format!("missing {missing:?}, extra {extra:?}")
            },
        });
    }
    for (key, kv) in &want {
        let Some(out) = got.iter().find(|o| &o.key == key) else {
            continue;
        };
        let expected: Option<MetadataEntry> = if claims.channels.is_some() && *key == ffn_key {
            None // checked against dass.ffn.kept
        } else if deci && key == "general.architecture" {
            MetadataEntry::new(key, &Value::string("deci")).ok()
        } else if deci
            && (*key == "deci.attention.head_count" || *key == "deci.attention.head_count_kv")
        {
            kv.as_integer()
                .ok()
                .and_then(|n| u32::try_from(n).ok())
                .and_then(|n| {
                    let items = vec![Value::U32(n); blocks];
                    MetadataEntry::new(key, &Value::Array(ValueType::U32, items)).ok()
                })
        } else {
            Some((*kv).clone())
        };
        if let Some(e) = expected {
            if e.value_type != out.value_type || e.raw != out.raw {
                v.metadata(key, &format!("the input's value {}", show(&e)), &show(out));
            }
        }
    }
    check_file_type(input, model, v);
}

/// `general.file_type` is the input's unless a tensor's type changed; then it is the file type
/// of the type holding most weights of the 2-D and larger tensors.
fn check_file_type(input: &Source, model: &GgufModel, v: &mut Violations) {
    let in_types: HashMap<&str, GgmlType> = input
        .tensors()
        .iter()
        .map(|(_, t)| (t.name.as_str(), t.ty))
        .collect::<Vec<_>>()
        .into_iter()
        .collect();
    let changed = model
        .tensors()
        .any(|(_, t)| in_types.get(t.name.as_str()).is_some_and(|ty| *ty != t.ty));
    let input_value = input
        .metadata()
        .iter()
        .find(|kv| kv.key == "general.file_type")
        .and_then(|kv| kv.value().ok());
    let mut by_type: BTreeMap<GgmlType, u64> = BTreeMap::new();
    for (_, t) in model.tensors() {
        if t.dims.len() >= 2 {
            *by_type.entry(t.ty).or_default() += t.n_elements();
        }
    }
    let computed = by_type
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .and_then(|(t, _)| t.llama_ftype())
        .map(Value::U32);
    let want = match (changed, computed) {
        (true, Some(c)) => Some(c),
        _ => input_value,
    };
    let got = model
        .get("general.file_type")
        .and_then(|kv| kv.value().ok());
    if want != got {
        v.metadata(
            "general.file_type",
            &format!(
                "{want:?} ({})",
                if changed {
                    "the type holding most weights"
                } else {
                    "the input's: no tensor changed type"
                }
            ),
            &format!("{got:?}"),
        );
    }
}

/// A metadata value for messages (long values shortened).
fn show(kv: &MetadataEntry) -> String {
    let s = match kv.value() {
        Ok(Value::String(s)) => format!("'{}'", String::from_utf8_lossy(&s)),
        Ok(v) => format!("{v:?}"),
        Err(_) => "an unreadable value".into(),
    };
    if s.len() > 80 {
        let cut = (0..=77).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        format!("{}...", &s[..cut])
    } else {
        s
    }
}
