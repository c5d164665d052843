//! llama.cpp importance-matrix files, in both formats `llama-imatrix` writes (formats.md §4).
//!
//! - GGUF (the default since mid-2025): `general.type = "imatrix"`, per weight `W` an F32
//!   tensor `W.in_sum2` (`[n_in, n_mat]`, raw sums of squared inputs), `W.counts`
//!   (`[1, n_mat]`, tokens seen per expert) and optionally `W.in_sum` (raw sums).
//! - A statistics file of docs/stats.md (`general.type = "dass-stats"`): its `W.in_sum2` and
//!   `W.counts` are an imatrix's (same layout); its keys are `dass.stats.*`, and its `W.in_sum`
//!   and `W.in_outer` are left to [`crate::stats`].
//! - Legacy `.dat`: entries of name, `ncall` and values stored as mean square × `ncall`,
//!   then an optional trailer with the chunk count and the dataset name.
//!
//! Both are normalised to the mean square of each input column, per expert:
//! `in_sum2 / counts` (GGUF; a count of 0 is taken as 1, as docs/method.md says) and
//! `values / ncall` (`.dat`, as llama-quantize does).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use crate::gguf::reader::in_file;
use crate::gguf::{GgufHeader, TensorInfo, GGUF_MAGIC};
use crate::mapped::MappedInput;

/// Which file format an imatrix was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImatrixFormat {
    Gguf,
    /// A statistics file of docs/stats.md (`general.type = dass-stats`): its `in_sum2` and
    /// `counts` are an imatrix's (its `in_sum` and `in_outer` are not read here).
    Stats,
    /// The legacy binary format; `trailer` says whether chunk count and dataset were present.
    Dat {
        trailer: bool,
    },
}

/// The statistics of one weight.
#[derive(Debug, Clone, PartialEq)]
pub struct ImatrixEntry {
    /// The weight's tensor name, e.g. `blk.0.ffn_down.weight`.
    pub name: String,
    /// Number of matrices (experts) the values cover. Always 1 for `.dat` files, which do not
    /// record it: see [`ImatrixEntry::per_expert`].
    pub n_mat: usize,
    /// Mean square of each input column, expert-major (`n_mat` vectors of equal length).
    pub mean_sq: Vec<f32>,
    /// Tokens seen per expert (GGUF format only).
    pub counts: Option<Vec<f32>>,
    /// Number of calls the values were scaled by (`.dat` format only).
    pub ncall: Option<i32>,
    /// Mean of each input column, when the file has `in_sum` (GGUF format only).
    pub mean: Option<Vec<f32>>,
}

impl ImatrixEntry {
    /// Length of one expert's vector as the file records it.
    pub fn len_per_matrix(&self) -> usize {
        self.mean_sq.len() / self.n_mat.max(1)
    }

    /// The mean squares split per expert for a weight whose rows are `n_in` long. Fails when
    /// the length is not a whole number of `n_in` vectors, or disagrees with the file's `n_mat`.
    pub fn per_expert(&self, n_in: usize) -> Result<Vec<&[f32]>> {
        let ok = n_in > 0
            && self.mean_sq.len() % n_in == 0
            && (self.n_mat == 1 || self.mean_sq.len() == n_in * self.n_mat);
        if !ok {
            return Err(Error::Imatrix(format!(
                "entry '{}' has {} values ({} matrices), which does not fit a weight with rows of {}",
                self.name,
                self.mean_sq.len(),
                self.n_mat,
                n_in
            )));
        }
        Ok(self.mean_sq.chunks(n_in).collect())
    }
}

/// A whole imatrix file, normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct Imatrix {
    pub format: ImatrixFormat,
    /// Calibration datasets (file names) recorded in the file.
    pub datasets: Vec<String>,
    /// Chunks the statistics were computed over, when recorded.
    pub chunk_count: Option<u64>,
    /// Tokens per chunk (GGUF format only).
    pub chunk_size: Option<u64>,
    /// Entries by weight name.
    pub entries: BTreeMap<String, ImatrixEntry>,
}

const SUFFIX_SUM2: &str = ".in_sum2";
const SUFFIX_COUNTS: &str = ".counts";
const SUFFIX_SUM: &str = ".in_sum";

impl Imatrix {
    /// Reads an imatrix file in either format (GGUF when it starts with the GGUF magic).
    pub fn open(path: &Path) -> Result<Self> {
        let map = MappedInput::open(path)?;
        Self::parse(&map).map_err(|e| in_file(path, e))
    }

    /// Parses an imatrix held in memory.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.starts_with(&GGUF_MAGIC) {
            Self::parse_gguf(bytes)
        } else {
            Self::parse_dat(bytes)
        }
    }

    /// The entry for weight `name`.
    pub fn get(&self, name: &str) -> Option<&ImatrixEntry> {
        self.entries.get(name)
    }

    fn parse_gguf(bytes: &[u8]) -> Result<Self> {
        let header = GgufHeader::parse(bytes)?;
        let format = match header.get("general.type").map(|kv| kv.as_str()) {
            Some(Ok(t)) if t == "imatrix" => ImatrixFormat::Gguf,
            Some(Ok(t)) if t == crate::stats::STATS_TYPE => ImatrixFormat::Stats,
            Some(Ok(t)) => {
                return Err(Error::Imatrix(format!(
                    "this GGUF file is not an imatrix (nor a statistics file): general.type is \
                     '{t}'"
                )))
            }
            Some(Err(e)) => return Err(e),
            None => {
                return Err(Error::Imatrix(
                    "this GGUF file is not an imatrix: it has no general.type key".into(),
                ))
            }
        };
        // A statistics file records the same facts under its own keys.
        let prefix = match format {
            ImatrixFormat::Stats => "dass.stats",
            _ => "imatrix",
        };
        let datasets = match header.get(&format!("{prefix}.datasets")) {
            Some(kv) => kv.as_string_array()?,
            None => Vec::new(),
        };
        let count_key = |key: &str| -> Result<Option<u64>> {
            match header.get(key) {
                None => Ok(None),
                Some(kv) => u64::try_from(kv.as_integer()?)
                    .map(Some)
                    .map_err(|_| Error::Imatrix(format!("{key} is negative"))),
            }
        };
        let chunk_count = count_key(&format!("{prefix}.chunk_count"))?;
        let chunk_size = count_key(&format!("{prefix}.chunk_size"))?;

        let f32_data = |t: &TensorInfo| -> Result<Vec<f32>> {
            if t.ty != GgmlType::F32 {
                return Err(Error::Imatrix(format!(
                    "tensor '{}' is {}, but imatrix tensors must be F32",
                    t.name, t.ty
                )));
            }
            let start = (header.data_offset + t.offset) as usize;
            let raw = &bytes[start..start + t.n_bytes as usize];
            Ok(raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        let find = |name: &str| header.tensors.iter().find(|t| t.name == name);

        let mut entries = BTreeMap::new();
        let mut weights: Vec<&str> = Vec::new();
        for t in &header.tensors {
            if let Some(w) = t.name.strip_suffix(SUFFIX_SUM2) {
                weights.push(w);
            } else if let Some(w) = t.name.strip_suffix(SUFFIX_COUNTS) {
                if find(&format!("{w}{SUFFIX_SUM2}")).is_none() {
                    return Err(Error::Imatrix(format!(
                        "'{}' has no partner '{w}{SUFFIX_SUM2}'",
                        t.name
                    )));
                }
            }
        }
        for w in weights {
            let sum2_t = find(&format!("{w}{SUFFIX_SUM2}")).expect("listed above");
            let counts_name = format!("{w}{SUFFIX_COUNTS}");
            let counts_t = find(&counts_name).ok_or_else(|| {
                Error::Imatrix(format!("'{}' has no partner '{counts_name}'", sum2_t.name))
            })?;
            let ne = sum2_t.ne();
            if ne[2] != 1 || ne[3] != 1 {
                return Err(Error::Imatrix(format!(
                    "'{}' has dims {:?}; expected [n_in, n_mat]",
                    sum2_t.name, sum2_t.dims
                )));
            }
            let (n_in, n_mat) = (ne[0] as usize, ne[1] as usize);
            let counts = f32_data(counts_t)?;
            if counts.len() != n_mat || counts_t.ne()[0] != 1 {
                return Err(Error::Imatrix(format!(
                    "'{counts_name}' has dims {:?}, but '{}' has {} matrices (expected [1, {}])",
                    counts_t.dims, sum2_t.name, n_mat, n_mat
                )));
            }
            if let Some(bad) = counts.iter().find(|c| !c.is_finite() || **c < 0.0) {
                return Err(Error::Imatrix(format!(
                    "'{counts_name}' holds an invalid count {bad}"
                )));
            }
            let divisor = |e: usize| if counts[e] == 0.0 { 1.0 } else { counts[e] };
            let normalise = |raw: Vec<f32>| -> Vec<f32> {
                raw.iter()
                    .enumerate()
                    .map(|(i, v)| v / divisor(i / n_in))
                    .collect()
            };
            let mean_sq = normalise(f32_data(sum2_t)?);
            let mean = match find(&format!("{w}{SUFFIX_SUM}")) {
                None => None,
                Some(_) if format == ImatrixFormat::Stats => None,
                Some(t) if t.dims == sum2_t.dims => Some(normalise(f32_data(t)?)),
                Some(t) => {
                    return Err(Error::Imatrix(format!(
                        "'{}' has dims {:?}, but '{}' has {:?}",
                        t.name, t.dims, sum2_t.name, sum2_t.dims
                    )))
                }
            };
            entries.insert(
                w.to_string(),
                ImatrixEntry {
                    name: w.to_string(),
                    n_mat,
                    mean_sq,
                    counts: Some(counts),
                    ncall: None,
                    mean,
                },
            );
        }
        if entries.is_empty() {
            return Err(Error::Imatrix(
                "no data in file: there are no '<weight>.in_sum2' tensors (llama.cpp refuses this too)"
                    .into(),
            ));
        }
        Ok(Imatrix {
            format,
            datasets,
            chunk_count,
            chunk_size,
            entries,
        })
    }

    fn parse_dat(bytes: &[u8]) -> Result<Self> {
        let mut r = DatReader { bytes, pos: 0 };
        let n_entries = r.i32("entry count")?;
        // Smallest entry: name length, one name byte, ncall, nval.
        if n_entries == 0 {
            return Err(Error::Imatrix(
                "legacy imatrix has no entries (llama.cpp refuses this too: \"no data in file\")"
                    .into(),
            ));
        }
        if n_entries < 0 || (n_entries as u64) * 13 > r.remaining() as u64 {
            return Err(Error::Imatrix(format!(
                "legacy imatrix claims {n_entries} entries, which the file cannot hold \
                 (or this is not an imatrix file at all)"
            )));
        }
        let mut entries = BTreeMap::new();
        let mut seen = HashSet::new();
        for i in 0..n_entries {
            let name_len = r.i32("name length")?;
            if name_len <= 0 || name_len as usize > r.remaining() || name_len > 4096 {
                return Err(Error::Imatrix(format!(
                    "entry {i} at offset {} has a bad name length {name_len}",
                    r.pos - 4
                )));
            }
            let name_bytes = r.take(name_len as usize, "entry name")?;
            let name = String::from_utf8(name_bytes.to_vec())
                .map_err(|_| Error::Imatrix(format!("entry {i}: name is not valid UTF-8")))?;
            if !seen.insert(name.clone()) {
                return Err(Error::Imatrix(format!("duplicate entry '{name}'")));
            }
            let ncall = r.i32("ncall")?;
            let nval = r.i32("value count")?;
            if nval <= 0 || (nval as u64) * 4 > r.remaining() as u64 {
                return Err(Error::Imatrix(format!(
                    "entry '{name}' claims {nval} values, which the file cannot hold"
                )));
            }
            let raw = r.take(nval as usize * 4, "values")?;
            let divisor = if ncall > 0 { ncall as f32 } else { 1.0 };
            let mean_sq = raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) / divisor)
                .collect();
            entries.insert(
                name.clone(),
                ImatrixEntry {
                    name,
                    n_mat: 1,
                    mean_sq,
                    counts: None,
                    ncall: Some(ncall),
                    mean: None,
                },
            );
        }
        let mut datasets = Vec::new();
        let mut chunk_count = None;
        let trailer = r.remaining() > 0;
        if trailer {
            let chunks = r.i32("trailer chunk count")?;
            let len = r.i32("trailer dataset length")?;
            if len < 0 || len as usize > r.remaining() {
                return Err(Error::Imatrix(format!(
                    "trailer dataset name length {len} does not fit the file"
                )));
            }
            let name = r.take(len as usize, "dataset name")?;
            if r.remaining() != 0 {
                return Err(Error::Imatrix(format!(
                    "{} unexpected bytes after the trailer",
                    r.remaining()
                )));
            }
            chunk_count = u64::try_from(chunks).ok();
            datasets.push(String::from_utf8_lossy(name).into_owned());
        }
        Ok(Imatrix {
            format: ImatrixFormat::Dat { trailer },
            datasets,
            chunk_count,
            chunk_size: None,
            entries,
        })
    }
}

struct DatReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> DatReader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::Truncated {
                what: format!("legacy imatrix {what}"),
                offset: self.pos as u64,
                needed: n as u64,
                available: self.remaining() as u64,
            });
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn i32(&mut self, what: &str) -> Result<i32> {
        let b = self.take(4, what)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}
