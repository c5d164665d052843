//! The statistics file of docs/stats.md (`general.type = dass-stats`, written by `dass-gguf
//! calibrate`): per weight of a block, the sums of its input (`in_sum`), of its squares
//! (`in_sum2`, an imatrix's), the token count (`counts`) and, for the feed-forward inputs, the
//! whole second-moment matrix `in_outer = Σ_t x_t x_tᵀ`.
//!
//! The file is memory-mapped and validated when opened (keys, F32 types, every tensor's dims
//! against its partners, counts above 0, every vector finite) and against the model before
//! planning ([`Stats::check_model`]); a matrix is read, checked finite and converted to f64
//! only when the tensor that needs it is processed ([`Stats::mean_outer`]), so that a large
//! model's file (most of it matrices) is read once.

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use crate::gguf::reader::in_file;
use crate::gguf::{GgufFile, TensorInfo};
use crate::source::Source;

/// `general.type` of a statistics file.
pub const STATS_TYPE: &str = "dass-stats";
/// The `dass.stats.version` this reader understands.
pub const STATS_VERSION: u32 = 1;

const SUM2: &str = ".in_sum2";
const COUNTS: &str = ".counts";
const SUM: &str = ".in_sum";
const OUTER: &str = ".in_outer";

/// One weight's statistics.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    n_in: usize,
    tokens: f64,
    /// The index of its `in_outer` tensor, when the file has one.
    outer: Option<usize>,
}

/// An open, validated statistics file.
#[derive(Debug)]
pub struct Stats {
    file: GgufFile,
    /// `dass.stats.chunk_count`.
    pub chunk_count: u32,
    /// `dass.stats.chunk_size`.
    pub chunk_size: u32,
    /// `dass.stats.datasets`.
    pub datasets: Vec<String>,
    /// `dass.stats.model`: the model file's name as calibrate saw it.
    pub model: String,
    entries: BTreeMap<String, Entry>,
}

fn bad(name: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Stats {
        name: name.into(),
        message: message.into(),
    }
}

impl Stats {
    /// Maps and validates the statistics file at `path`.
    pub fn open(path: &Path) -> Result<Stats> {
        let file = GgufFile::open(path)?;
        Stats::validate(file).map_err(|e| in_file(path, e))
    }

    fn validate(file: GgufFile) -> Result<Stats> {
        let header = file.header();
        let key = |k: &str| header.get(k).ok_or_else(|| Error::MissingKey(k.into()));
        match header.get("general.type").map(|kv| kv.as_str()) {
            Some(Ok(t)) if t == STATS_TYPE => {}
            Some(Ok(t)) => {
                return Err(bad(
                    "general.type",
                    format!("is '{t}': not a statistics file (expected '{STATS_TYPE}')"),
                ))
            }
            Some(Err(e)) => return Err(e),
            None => {
                return Err(bad(
                    "general.type",
                    format!("absent: not a statistics file (expected '{STATS_TYPE}')"),
                ))
            }
        }
        let version = key("dass.stats.version")?.as_u32()?;
        if version != STATS_VERSION {
            return Err(bad(
                "dass.stats.version",
                format!("is {version}; this tool reads version {STATS_VERSION}"),
            ));
        }
        let chunk_count = key("dass.stats.chunk_count")?.as_u32()?;
        let chunk_size = key("dass.stats.chunk_size")?.as_u32()?;
        let datasets = key("dass.stats.datasets")?.as_string_array()?;
        let model = key("dass.stats.model")?.as_str()?;

        // The tensors of each weight, by suffix.
        #[derive(Default)]
        struct Parts {
            sum2: Option<usize>,
            counts: Option<usize>,
            sum: Option<usize>,
            outer: Option<usize>,
        }
        let mut parts: BTreeMap<&str, Parts> = BTreeMap::new();
        for (i, t) in header.tensors.iter().enumerate() {
            if t.ty != GgmlType::F32 {
                return Err(bad(&t.name, format!("is {}; statistics are F32", t.ty)));
            }
            let found = [SUM2, COUNTS, SUM, OUTER]
                .into_iter()
                .find_map(|s| t.name.strip_suffix(s).map(|w| (w, s)));
            let Some((weight, suffix)) = found else {
                return Err(bad(
                    &t.name,
                    "is not a statistics tensor (names end in .in_sum2, .counts, .in_sum or \
                     .in_outer)",
                ));
            };
            let p = parts.entry(weight).or_default();
            let slot = match suffix {
                SUM2 => &mut p.sum2,
                COUNTS => &mut p.counts,
                SUM => &mut p.sum,
                _ => &mut p.outer,
            };
            *slot = Some(i);
        }
        let info = |i: usize| &header.tensors[i];
        let mut entries = BTreeMap::new();
        for (weight, p) in parts {
            let sum2 = p.sum2.ok_or_else(|| {
                bad(
                    format!("{weight}{SUM2}"),
                    "missing, though the file has other statistics of that weight",
                )
            })?;
            let sum2 = info(sum2);
            let ne = sum2.ne();
            if ne[1] > 1 {
                return Err(bad(
                    &sum2.name,
                    format!(
                        "has dims {:?}: statistics of {} experts; mixtures of experts are not \
                         collected (docs/stats.md)",
                        sum2.dims, ne[1]
                    ),
                ));
            }
            let n_in = ne[0] as usize;
            let expect = |t: &TensorInfo, want: [u64; 4]| -> Result<()> {
                if t.ne() == want {
                    Ok(())
                } else {
                    Err(bad(
                        &t.name,
                        format!(
                            "has dims {:?}, but {} has {n_in} inputs: expected {:?}",
                            t.dims,
                            sum2.name,
                            &want[..2]
                        ),
                    ))
                }
            };
            let counts = info(p.counts.ok_or_else(|| {
                bad(
                    format!("{weight}{COUNTS}"),
                    format!("missing ({} has no token count)", sum2.name),
                )
            })?);
            expect(counts, [1, 1, 1, 1])?;
            if let Some(s) = p.sum {
                expect(info(s), [n_in as u64, 1, 1, 1])?;
            }
            if let Some(o) = p.outer {
                expect(info(o), [n_in as u64, n_in as u64, 1, 1])?;
            }
            let tokens = f32_at(file.tensor_data(p.counts.unwrap_or_default()), 0) as f64;
            if !(tokens.is_finite() && tokens > 0.0) {
                return Err(bad(
                    &counts.name,
                    format!("holds {tokens}: a token count must be finite and above 0"),
                ));
            }
            entries.insert(
                weight.to_string(),
                Entry {
                    n_in,
                    tokens,
                    outer: p.outer,
                },
            );
        }
        if entries.is_empty() {
            return Err(bad("tensors", "the file holds no statistics"));
        }
        // Every vector finite, found from the exponent bits. The matrices (most of the file:
        // n_in² values each) are checked when they are read, only if they are used.
        let non_finite = (0..header.tensors.len())
            .into_par_iter()
            .filter(|&i| !info(i).name.ends_with(OUTER))
            .find_map_first(|i| {
                let data = file.tensor_data(i);
                data.chunks_exact(4)
                    .position(|b| {
                        u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & 0x7F80_0000 == 0x7F80_0000
                    })
                    .map(|at| (i, at))
            });
        if let Some((i, at)) = non_finite {
            let t = info(i);
            let n = t.row_len() as usize;
            return Err(non_finite_at(&t.name, at / n.max(1), at % n.max(1)));
        }
        Ok(Stats {
            chunk_count,
            chunk_size,
            datasets,
            model,
            entries,
            file,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The weights the file has statistics of.
    pub fn weights(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(|k| k.as_str())
    }

    /// Every weight the file has statistics of must be a tensor of `model` whose rows are that
    /// long: statistics of another model are refused, naming the first tensor that differs.
    pub fn check_model(&self, model: &Source) -> Result<()> {
        self.check_model_inner(model)
            .map_err(|e| in_file(self.path(), e))
    }

    fn check_model_inner(&self, model: &Source) -> Result<()> {
        let tensors = model.tensors();
        for (weight, e) in &self.entries {
            let Some((_, t)) = tensors.iter().find(|(_, t)| &t.name == weight) else {
                return Err(bad(
                    format!("{weight}{SUM2}"),
                    format!(
                        "the model has no tensor '{weight}': these statistics are of another \
                         model (calibrated on '{}')",
                        self.model
                    ),
                ));
            };
            if t.row_len() as usize != e.n_in {
                return Err(bad(
                    format!("{weight}{SUM2}"),
                    format!(
                        "has {} inputs, but the model's {weight} has rows of {} (dims {:?}): \
                         these statistics are of another model (calibrated on '{}')",
                        e.n_in,
                        t.row_len(),
                        t.dims,
                        self.model
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The input width of `weight`'s statistics.
    pub fn n_in(&self, weight: &str) -> Option<usize> {
        self.entries.get(weight).map(|e| e.n_in)
    }

    /// The tokens `weight`'s statistics were summed over.
    pub fn tokens(&self, weight: &str) -> Option<f64> {
        self.entries.get(weight).map(|e| e.tokens)
    }

    /// The entry whose `in_outer` is `weight`'s input second moment: its own, or the one it
    /// shares (docs/stats.md: `ffn_up` reads `ffn_gate`'s input, `attn_k` and `attn_v` read
    /// `attn_q`'s).
    pub fn outer_entry(&self, weight: &str) -> Option<&str> {
        candidates(weight).into_iter().find_map(|c| {
            self.entries
                .get_key_value(&c)
                .filter(|(_, e)| e.outer.is_some())
                .map(|(k, _)| k.as_str())
        })
    }

    /// What to say when `weight` has no second moment.
    pub fn missing_outer(&self, weight: &str, why: &str) -> Error {
        let names: Vec<String> = candidates(weight)
            .iter()
            .map(|c| format!("{c}{OUTER}"))
            .collect();
        bad(
            names.join(" or "),
            format!(
                "missing: {weight} {why}, which needs the second moment of its input; \
                 calibrate writes it for the feed-forward inputs (and the attention ones with \
                 --attention); or pass --no-refit to use the file as statistics only"
            ),
        )
    }

    /// The mean second moment `H = (C + Cᵀ) / 2 / count` of entry `entry` (which must have
    /// an `in_outer`, see [`Stats::outer_entry`]), f64, row-major; restricted to the inputs
    /// `subset` (ascending) when given. Returns the matrix and its order.
    pub fn mean_outer(&self, entry: &str, subset: Option<&[u32]>) -> Result<(Vec<f64>, usize)> {
        self.mean_outer_inner(entry, subset)
            .map_err(|e| in_file(self.path(), e))
    }

    fn mean_outer_inner(&self, entry: &str, subset: Option<&[u32]>) -> Result<(Vec<f64>, usize)> {
        let e = self
            .entries
            .get(entry)
            .ok_or_else(|| bad(format!("{entry}{SUM2}"), "missing"))?;
        let idx = e
            .outer
            .ok_or_else(|| bad(format!("{entry}{OUTER}"), "missing"))?;
        let data = self.file.tensor_data(idx);
        let n = e.n_in;
        let all: Vec<u32>;
        let pick: &[u32] = match subset {
            Some(s) => s,
            None => {
                all = (0..n as u32).collect();
                &all
            }
        };
        if let Some(&bad_index) = pick.iter().find(|&&i| i as usize >= n) {
            return Err(bad(
                format!("{entry}{OUTER}"),
                format!("has {n} inputs; input {bad_index} was asked for"),
            ));
        }
        let m = pick.len();
        // C[pick][pick] row by row, then (C + Cᵀ) / 2 / count tile by tile.
        let mut h = vec![0.0f64; m * m];
        h.par_chunks_mut(m.max(1)).enumerate().for_each(|(a, row)| {
            let i = pick[a] as usize;
            let c = &data[4 * i * n..4 * (i + 1) * n];
            for (x, &j) in row.iter_mut().zip(pick) {
                *x = f32_at(c, j as usize) as f64;
            }
        });
        if let Some(at) = h.par_iter().position_first(|x| !x.is_finite()) {
            let (a, b) = (at / m, at % m);
            return Err(non_finite_at(
                &format!("{entry}{OUTER}"),
                pick[a] as usize,
                pick[b] as usize,
            ));
        }
        symmetrize(&mut h, m, 0.5 / e.tokens);
        Ok((h, m))
    }
}

fn non_finite_at(tensor: &str, row: usize, column: usize) -> Error {
    bad(
        tensor,
        format!(
            "holds a NaN or infinite value at row {row}, column {column}: the statistics are \
             unusable"
        ),
    )
}

/// The entries that may hold `weight`'s input second moment, its own first.
fn candidates(weight: &str) -> Vec<String> {
    let mut c = vec![weight.to_string()];
    if let Some((block, kind)) = weight.rsplit_once('.').and_then(|(base, suffix)| {
        let (block, kind) = base.rsplit_once('.')?;
        Some((block, format!("{kind}.{suffix}")))
    }) {
        let shared = if let Some(rest) = kind.strip_prefix("ffn_up") {
            Some(format!("ffn_gate{rest}"))
        } else if kind.starts_with("attn_k.") || kind.starts_with("attn_v.") {
            Some(format!("attn_q{}", &kind[6..]))
        } else {
            None
        };
        if let Some(s) = shared {
            c.push(format!("{block}.{s}"));
        }
    }
    c
}

/// `h ← (h + hᵀ) × scale` for a row-major `m × m` matrix, in tiles that stay in cache.
fn symmetrize(h: &mut [f64], m: usize, scale: f64) {
    const TILE: usize = 64;
    for i0 in (0..m).step_by(TILE) {
        for j0 in (i0..m).step_by(TILE) {
            for i in i0..(i0 + TILE).min(m) {
                for j in j0.max(i)..(j0 + TILE).min(m) {
                    let v = (h[i * m + j] + h[j * m + i]) * scale;
                    h[i * m + j] = v;
                    h[j * m + i] = v;
                }
            }
        }
    }
}

fn f32_at(data: &[u8], i: usize) -> f32 {
    let b = &data[4 * i..4 * i + 4];
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::candidates;

    #[test]
    fn shared_inputs_fall_back_as_docs_stats_says() {
        assert_eq!(
            candidates("blk.3.ffn_up.weight"),
            ["blk.3.ffn_up.weight", "blk.3.ffn_gate.weight"]
        );
        assert_eq!(
            candidates("blk.3.ffn_up_shexp.weight"),
            ["blk.3.ffn_up_shexp.weight", "blk.3.ffn_gate_shexp.weight"]
        );
        assert_eq!(
            candidates("blk.0.attn_v.weight"),
            ["blk.0.attn_v.weight", "blk.0.attn_q.weight"]
        );
        assert_eq!(
            candidates("blk.0.ffn_down.weight"),
            ["blk.0.ffn_down.weight"]
        );
        assert_eq!(candidates("output.weight"), ["output.weight"]);
    }
}
